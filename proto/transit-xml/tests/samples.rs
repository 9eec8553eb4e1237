//! The checked-in samples equal the encoder's output, decode back to the same values, and the
//! fixture journey round-trips for several movements.
//!
//! Regenerate the files after a deliberate change with
//! `UPDATE_SAMPLES=1 cargo test -p transit-xml --test samples`.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;

use transit_contract::fixtures::journey;
use transit_contract::Timestamp;
use transit_xml::samples::samples;
use transit_xml::{decode_inbound, decode_outbound, encode_inbound, encode_outbound};

fn files_under(dir: &Path, prefix: &str, out: &mut BTreeSet<String>) {
    for entry in fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().into_owned();
        let rel = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}/{name}")
        };
        if entry.file_type().unwrap().is_dir() {
            files_under(&entry.path(), &rel, out);
        } else if name.ends_with(".xml") {
            out.insert(rel);
        }
    }
}

#[test]
fn checked_in_samples_equal_the_encoder_output() {
    let dir = common::samples_dir();
    let update = std::env::var_os("UPDATE_SAMPLES").is_some();
    let mut stale = Vec::new();
    for s in samples() {
        let path = dir.join(&s.file);
        if update {
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(&path, &s.bytes).unwrap();
            continue;
        }
        match fs::read(&path) {
            Ok(on_disk) if on_disk == s.bytes => {}
            _ => stale.push(s.file.clone()),
        }
    }
    assert!(
        stale.is_empty(),
        "samples differ from the encoder: {stale:?}; run UPDATE_SAMPLES=1 cargo test -p transit-xml --test samples"
    );
    // No file is left over from an older sample set.
    let mut on_disk = BTreeSet::new();
    files_under(&dir, "", &mut on_disk);
    let generated: BTreeSet<String> = samples().into_iter().map(|s| s.file).collect();
    assert_eq!(on_disk, generated, "stale files under schemas/xml/samples");
}

#[test]
fn every_sample_decodes_and_inbound_ones_validate() {
    let all = samples();
    assert_eq!(all.len(), 8 + 8 + 7);
    let mut inbound_kinds = BTreeSet::new();
    let mut outbound_kinds = BTreeSet::new();
    for s in &all {
        if s.file.starts_with("outbound/") {
            let m = decode_outbound(&s.bytes).unwrap_or_else(|e| panic!("{}: {e}", s.file));
            assert_eq!(encode_outbound(&m), s.bytes, "{}", s.file);
            outbound_kinds.insert(m.kind());
        } else {
            let m = decode_inbound(&s.bytes).unwrap_or_else(|e| panic!("{}: {e}", s.file));
            m.validate().unwrap_or_else(|e| panic!("{}: {e}", s.file));
            assert_eq!(encode_inbound(&m), s.bytes, "{}", s.file);
            inbound_kinds.insert(m.kind());
        }
    }
    // One sample of every message type of the set.
    assert_eq!(inbound_kinds.len(), transit_xml::INBOUND_ROOTS.len());
    assert_eq!(outbound_kinds.len(), transit_xml::OUTBOUND_ROOTS.len());
}

#[test]
fn the_fixture_journey_round_trips() {
    let base: Timestamp = "2024-03-01T08:00:00Z".parse().unwrap();
    for serial in [1, 2, 99_999] {
        for m in journey(base, serial).messages() {
            let xml = encode_inbound(&m);
            let back = decode_inbound(&xml).unwrap_or_else(|e| panic!("{}: {e}", m.kind()));
            assert_eq!(back, m, "{}", String::from_utf8_lossy(&xml));
            assert_eq!(back.content_digest(), m.content_digest());
        }
    }
}

#[test]
fn samples_are_readable_utf8_with_real_accents() {
    let s = samples();
    let incident = s.iter().find(|s| s.file == "other/incident.xml").unwrap();
    let text = String::from_utf8(incident.bytes.clone()).unwrap();
    assert!(text.contains("Lomé"), "{text}");
    assert!(
        text.contains("\n    <Latitude>6.4261000</Latitude>"),
        "{text}"
    );
    let error = s
        .iter()
        .find(|s| s.file == "outbound/functional-error.xml")
        .unwrap();
    let text = String::from_utf8(error.bytes.clone()).unwrap();
    assert!(
        text.contains(
            "<ErrorPointer>/TransitDeclaration/GoodsItem[2]/CommodityCode</ErrorPointer>"
        ),
        "{text}"
    );
}
