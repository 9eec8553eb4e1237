//! Writes the committed seed corpora under `fuzz/seeds/` from the contract's fixture journey,
//! so that the seeds are real messages, events and headers that cannot drift by hand:
//!
//!   cd fuzz && cargo +stable run --example make_seeds
//!
//! `xml_message` is also seeded at run time from `schemas/xml/samples/` (ops/fuzz.sh); its
//! committed seeds are hand-written hostile documents, which this program leaves alone.

use std::fs;
use std::path::Path;

use transit_auth::{generate_keypair, sign, KeyId};
use transit_contract::fixtures;
use transit_contract::{GuaranteeEvent, InboundMessage, MovementEvent, Timestamp};
use transit_rules::{decide, guarantee_needed, Context, Decision, GuaranteeState, MovementState};
use transit_xml::samples::{samples, SAMPLES_BASE_TIME};

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    fs::create_dir_all(dir).expect("create the seed directory");
    fs::write(dir.join(name), bytes).expect("write a seed");
}

/// Every inbound sample, decoded: the journey and one message of each other type.
fn inbound_samples() -> Vec<(String, InboundMessage)> {
    samples()
        .into_iter()
        .filter_map(|s| {
            let msg = transit_xml::decode_inbound(&s.bytes).ok()?;
            let stem = s.file.replace('/', "-").replace(".xml", "");
            Some((stem, msg))
        })
        .collect()
}

fn json_seeds(root: &Path) {
    let dir = root.join("json_message");
    for (stem, msg) in inbound_samples() {
        write(
            &dir,
            &format!("{stem}.json"),
            &transit_auth::canonical_json(&msg),
        );
    }
    // One pretty-printed, as a person or another JSON library would send it.
    let (_, declaration) = inbound_samples()
        .into_iter()
        .find(|(stem, _)| stem.contains("transit-declaration"))
        .expect("the samples have a declaration");
    let pretty = serde_json::to_vec_pretty(&declaration).expect("serialise");
    write(&dir, "pretty-transit-declaration.json", &pretty);
}

fn signature_seeds(root: &Path) {
    let dir = root.join("signature_header");
    let (key, _) = generate_keypair([7; 32]);
    let key_id: KeyId = "tg-dev-1".parse().expect("a valid key id");
    for (i, (_, msg)) in inbound_samples().into_iter().take(3).enumerate() {
        let header = sign(&key, key_id.clone(), &msg).to_string();
        write(&dir, &format!("header-{i}.txt"), header.as_bytes());
    }
    let sig = sign(&key, key_id, &inbound_samples()[0].1).signature_base64();
    // The parameters in another order, with the optional white space around `;`.
    let reordered = format!("\tsig={sig} ;alg=Ed25519;  keyId=bf-ouaga.2026-01 ");
    write(&dir, "header-reordered.txt", reordered.as_bytes());
}

fn event_seeds(root: &Path) {
    let dir = root.join("stored_event");
    let movement_types: Vec<&str> = MovementEvent::event_types().collect();
    let guarantee_types: Vec<&str> = GuaranteeEvent::event_types().collect();
    let base: Timestamp = SAMPLES_BASE_TIME.parse().expect("a valid time");
    let mut movement = MovementState::default();
    let mut guarantee: Option<GuaranteeState> = None;
    let mut n = 0;
    for msg in fixtures::journey_messages(base, 1) {
        let needs_guarantee = guarantee_needed(&msg, &movement).is_some();
        let ctx = Context {
            recorded_at: msg.sent_at,
        };
        let g = guarantee.as_ref().filter(|_| needs_guarantee);
        let Ok(Decision::Append {
            movement: m_events,
            guarantee: g_events,
            meta,
        }) = decide(&msg, &movement, g, &ctx)
        else {
            panic!("the fixture journey is accepted: {}", msg.kind());
        };
        for e in &m_events {
            let index = movement_types
                .iter()
                .position(|t| *t == e.event_type())
                .expect("a known type");
            let mut seed = vec![index as u8, e.schema_version() as u8];
            seed.extend(e.encode(&meta));
            write(&dir, &format!("{n:02}-{}.bin", e.event_type()), &seed);
            movement.apply(&meta, e);
            n += 1;
        }
        for e in &g_events {
            let index = movement_types.len()
                + guarantee_types
                    .iter()
                    .position(|t| *t == e.event_type())
                    .expect("a known type");
            let mut seed = vec![index as u8, e.schema_version() as u8];
            seed.extend(e.encode(&meta));
            write(&dir, &format!("{n:02}-{}.bin", e.event_type()), &seed);
            guarantee
                .get_or_insert_with(GuaranteeState::default)
                .apply(&meta, e);
            n += 1;
        }
    }
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds");
    json_seeds(&root);
    signature_seeds(&root);
    event_seeds(&root);
}
