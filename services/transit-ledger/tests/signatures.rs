//! Signed submissions over real HTTP (issue 5): a submission is recorded only with a valid
//! signature by a registered key that may sign for its sender, checked at the ledger's clock;
//! the key id, public key and signature are recorded with it; every refusal has its code and
//! status (401 until the signature verified, 403 after) and appends nothing. Authorization by
//! country runs on the authenticated sender: a Togolese key cannot record a Burkinabè crossing.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;

use base64::Engine as _;
use common::{base, dev_key, dev_registry_path, dev_signature, signature_by, Server, BASE_MS};
use reqwest::StatusCode;
use serde_json::{json, Value};
use transit_auth::{KeyEntry, KeyRegistry, SecretKeyFile};
use transit_contract::fixtures;
use transit_contract::ids::Timestamp;
use transit_contract::messages::{InboundMessage, MessageBody, Sender};
use transit_ledger::ledger::RecordedSubmission;

const MINUTE_MS: i64 = 60_000;
const DAY_MS: i64 = 24 * 60 * MINUTE_MS;

fn at(millis: i64) -> Timestamp {
    Timestamp::from_unix_millis(millis).unwrap()
}

/// A key made for a test from a fixed seed, with its registry entry (valid from a year before
/// the fixtures' base time, for TG, unless `change` says otherwise).
fn test_key(id: &str, seed: u8, change: impl FnOnce(&mut KeyEntry)) -> (SecretKeyFile, KeyEntry) {
    let (signing_key, public_key) = transit_auth::generate_keypair([seed; 32]);
    let mut entry = KeyEntry {
        id: id.parse().unwrap(),
        country: "TG".parse().unwrap(),
        offices: None,
        public_key,
        not_before: at(BASE_MS - 365 * DAY_MS),
        not_after: None,
        revoked_at: None,
        comment: String::new(),
    };
    change(&mut entry);
    let secret = SecretKeyFile {
        key_id: entry.id.clone(),
        signing_key,
    };
    (secret, entry)
}

/// The development registry plus `extra` entries.
fn registry_with(extra: &[&KeyEntry]) -> Arc<KeyRegistry> {
    let mut text = std::fs::read_to_string(dev_registry_path()).unwrap();
    for entry in extra {
        text.push('\n');
        text.push_str(&entry.to_toml());
    }
    Arc::new(KeyRegistry::from_toml_str(&text).unwrap())
}

fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or_default()
}

/// The movement's recorded event types; none when the movement is unknown.
async fn movement_types(server: &Server, j: &fixtures::Journey) -> Vec<String> {
    let (status, body) = server.get(&format!("/v1/movements/{}/events", j.mrn)).await;
    if status == StatusCode::NOT_FOUND {
        return Vec::new();
    }
    assert_eq!(status, StatusCode::OK, "{body}");
    body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["eventType"].as_str().unwrap().to_owned())
        .collect()
}

/// Records the guarantee, the declaration and the release of `j`, signed by their senders.
async fn release(server: &Server, j: &fixtures::Journey) {
    for m in [&j.guarantee_registration, &j.declaration, &j.release] {
        server.post(m).await;
    }
}

/// `m` sent by another office of the same or another country.
fn sent_by(m: &InboundMessage, office: &str) -> InboundMessage {
    let office: transit_contract::ids::OfficeCode = office.parse().unwrap();
    let mut m = m.clone();
    m.sender = Sender {
        country: office.country(),
        office,
    };
    m
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_submission_is_recorded_with_its_key_id_public_key_and_signature() {
    let server = Server::start().await;
    let j = fixtures::journey(base(), 501);
    let signature = dev_signature(&j.guarantee_registration);
    let (status, body) = server
        .submit_signed(&j.guarantee_registration, Some(&signature))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    // The same message content as XML has the same canonical bytes, hence the same signature.
    let (status, body) = server.submit_xml(&j.declaration).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (_, events) = server
        .get(&format!("/v1/guarantees/{}/events", j.grn))
        .await;
    let metadata = &events["events"][0]["metadata"];
    let recorded = &metadata["submission"]["signature"];
    let tg = dev_key("tg-dev-1");
    assert_eq!(recorded["keyId"], json!("tg-dev-1"), "{metadata}");
    assert_eq!(recorded["algorithm"], json!("Ed25519"));
    assert_eq!(
        recorded["publicKey"],
        json!(transit_auth::public_key_base64(&tg.verifying_key()))
    );
    let sent: transit_auth::SubmissionSignature = signature.parse().unwrap();
    assert_eq!(recorded["signature"], json!(sent.signature_base64()));
    // Everything needed to re-check it offline is in the record: no registry, no clock.
    let bytes = serde_json::to_vec(metadata).unwrap();
    let submission = RecordedSubmission::from_metadata(&bytes).unwrap().unwrap();
    let checked = submission.check().unwrap();
    assert_eq!(checked.message, j.guarantee_registration);
    assert!(checked.signature.is_some());
    // The XML declaration's record keeps the XML bytes and the signature over their content.
    let (_, events) = server.get(&format!("/v1/movements/{}/events", j.mrn)).await;
    let submission = &events["events"][0]["metadata"]["submission"];
    assert_eq!(submission["contentType"], json!("application/xml"));
    let recorded: transit_auth::SubmissionSignature =
        dev_signature(&j.declaration).parse().unwrap();
    assert_eq!(
        submission["signature"]["signature"],
        json!(recorded.signature_base64())
    );
    let raw = base64::engine::general_purpose::STANDARD
        .decode(submission["body"].as_str().unwrap())
        .unwrap();
    assert_eq!(raw, transit_xml::encode_inbound(&j.declaration));
    // The events that point at the first one carry no copy.
    let (_, feed) = server.get("/v1/events?from=0&limit=100").await;
    for e in feed["events"].as_array().unwrap() {
        let submission = &e["metadata"]["submission"];
        assert_eq!(
            submission["signature"].is_object(),
            submission["recordedWith"].is_null(),
            "{e}"
        );
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unauthenticated_submission_is_401_and_nothing_is_appended() {
    let server = Server::start().await;
    let j = fixtures::journey(base(), 502);
    server.post(&j.guarantee_registration).await;
    let head = server.head().await;
    let declaration = &j.declaration;
    // No signature, as JSON and as XML; the 401 names the scheme.
    let r = server
        .client
        .post(server.url("/v1/messages"))
        .bearer_auth(common::national_token(&"TG".parse().unwrap()))
        .header("content-type", "application/json")
        .body(serde_json::to_vec(declaration).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        r.headers()
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok()),
        Some("Transit-Signature")
    );
    let body: Value = r.json().await.unwrap();
    assert_eq!(code(&body), "MISSING_SIGNATURE", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Transit-Signature"),
        "{body}"
    );
    let (status, body) = server
        .post_raw(
            "application/xml",
            transit_xml::encode_inbound(declaration),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(code(&body), "MISSING_SIGNATURE");
    // A valid signature, over different bytes: the message was changed after signing...
    let mut changed = declaration.clone();
    changed.sent_at = at(BASE_MS + 1);
    let (status, body) = server
        .submit_signed(&changed, Some(&dev_signature(declaration)))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(code(&body), "BAD_SIGNATURE");
    // ...or it is the signature of another message entirely.
    let (status, body) = server
        .submit_signed(declaration, Some(&dev_signature(&j.release)))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(code(&body), "BAD_SIGNATURE");
    // A key nobody registered, under its own name or under a registered one's.
    let (rogue, _) = test_key("tg-rogue-1", 7, |_| {});
    let (status, body) = server
        .submit_signed(declaration, Some(&signature_by(&rogue, declaration)))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(code(&body), "UNKNOWN_KEY");
    let impostor = signature_by(&rogue, declaration).replace("tg-rogue-1", "tg-dev-1");
    let (status, body) = server.submit_signed(declaration, Some(&impostor)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(code(&body), "BAD_SIGNATURE");
    // Not a signature at all, or another algorithm.
    for text in [
        "not a signature",
        &dev_signature(declaration).replace("Ed25519", "RS256"),
        &dev_signature(declaration).replace("sig=", "sig=AAAA"),
    ] {
        let (status, body) = server.submit_signed(declaration, Some(text)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{text}: {body}");
        assert_eq!(code(&body), "MALFORMED_SIGNATURE", "{text}: {body}");
    }
    // Two signature headers: which one was meant cannot be known.
    let r = server
        .client
        .post(server.url("/v1/messages"))
        .bearer_auth(common::national_token(&"TG".parse().unwrap()))
        .header("content-type", "application/json")
        .header("Transit-Signature", dev_signature(declaration))
        .header("Transit-Signature", dev_signature(declaration))
        .body(serde_json::to_vec(declaration).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let body: Value = r.json().await.unwrap();
    assert_eq!(code(&body), "MALFORMED_SIGNATURE", "{body}");
    // Nothing of it was recorded, and the service goes on.
    assert_eq!(server.head().await, head);
    assert!(movement_types(&server, &j).await.is_empty());
    let (status, body) = server.submit(declaration).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    // An exact redelivery is still answered as a duplicate, but only when signed.
    let (status, body) = server.submit(declaration).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["duplicate"], json!(true));
    let (status, body) = server.submit_signed(declaration, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_signs_only_for_its_own_country_and_offices() {
    let (cinkasse, cinkasse_entry) = test_key("tg-cinkasse-1", 11, |e| {
        e.offices = Some(vec![fixtures::CINKASSE_TG.parse().unwrap()]);
    });
    let server = Server::start_with(Some(registry_with(&[&cinkasse_entry]))).await;
    let j = fixtures::journey(base(), 503);
    release(&server, &j).await;
    let head = server.head().await;
    let bf_crossing = &j.crossings[1];
    assert_eq!(bf_crossing.sender.country.as_str(), "BF");
    // Togo's key on a message whose sender is Burkina Faso.
    let tg = dev_key("tg-dev-1");
    let (status, body) = server
        .submit_signed(bf_crossing, Some(&signature_by(&tg, bf_crossing)))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(code(&body), "KEY_COUNTRY_MISMATCH");
    // A key restricted to Cinkassé signing for Lomé's office.
    let from_lome = sent_by(&j.crossings[0], fixtures::LOME_PORT);
    let (status, body) = server
        .submit_signed(&from_lome, Some(&signature_by(&cinkasse, &from_lome)))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(code(&body), "KEY_OFFICE_NOT_ALLOWED");
    assert_eq!(server.head().await, head, "nothing appended");
    // For its own office it signs.
    let tg_crossing = &j.crossings[0];
    assert_eq!(tg_crossing.sender.office.as_str(), fixtures::CINKASSE_TG);
    let (status, body) = server
        .submit_signed(tg_crossing, Some(&signature_by(&cinkasse, tg_crossing)))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_togolese_principal_cannot_record_a_crossing_at_a_burkinabe_office() {
    let server = Server::start().await;
    let j = fixtures::journey(base(), 504);
    release(&server, &j).await;
    let before = movement_types(&server, &j).await;
    let head = server.head().await;
    // Togo's national system, authenticated with Togo's key and as Togo's Cinkassé office,
    // reports the entry at the Burkinabè side of Cinkassé (BFCIN001).
    let crossing = sent_by(&j.crossings[1], fixtures::CINKASSE_TG);
    let MessageBody::BorderCrossing(c) = &crossing.body else {
        panic!("the fixture's second crossing is a BorderCrossing");
    };
    assert_eq!(c.office.as_str(), fixtures::CINKASSE_BF);
    let (status, body) = server.submit(&crossing).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(code(&body), "FORBIDDEN_OFFICE", "{body}");
    // The same as XML.
    let (status, body) = server.submit_xml(&crossing).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(code(&body), "FORBIDDEN_OFFICE", "{body}");
    assert_eq!(
        movement_types(&server, &j).await,
        before,
        "nothing appended"
    );
    assert_eq!(server.head().await, head, "nothing appended");
    // Both attempts are visible to analysts and auditors, newest first.
    let refused = server
        .data(
            "{ refusedSubmissions(code: \"FORBIDDEN_OFFICE\") { total items { channel code reason senderCountry senderOffice kind mrn keyId bodySha256 } } }",
            serde_json::json!({}),
        )
        .await;
    let items = refused["refusedSubmissions"]["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "{refused}");
    for item in items {
        assert_eq!(item["channel"], "http");
        assert_eq!(item["senderCountry"], "TG");
        assert_eq!(item["senderOffice"], fixtures::CINKASSE_TG);
        assert_eq!(item["kind"], "BorderCrossing");
        assert_eq!(item["mrn"], j.mrn.as_str());
        assert_eq!(item["keyId"], "tg-dev-1");
        assert!(
            item["reason"].as_str().unwrap().contains("BFCIN001"),
            "{item}"
        );
    }
    // Burkina Faso records its own crossing.
    let (status, body) = server.submit(&j.crossings[1]).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_expired_and_future_keys_are_403() {
    // The ledger clock stands one minute after the fixtures' base time.
    let (revoked, revoked_entry) = test_key("tg-revoked-1", 21, |e| {
        e.revoked_at = Some(at(BASE_MS));
    });
    let (expired, expired_entry) = test_key("tg-expired-1", 22, |e| {
        e.not_after = Some(at(BASE_MS));
    });
    let (future, future_entry) = test_key("tg-future-1", 23, |e| {
        e.not_before = at(BASE_MS + DAY_MS);
    });
    let registry = registry_with(&[&revoked_entry, &expired_entry, &future_entry]);
    let server = Server::start_with(Some(registry)).await;
    let j = fixtures::journey(base(), 505);
    let m = &j.guarantee_registration;
    for (key, expected) in [
        (&revoked, "KEY_REVOKED"),
        (&expired, "KEY_EXPIRED"),
        (&future, "KEY_NOT_YET_VALID"),
    ] {
        let (status, body) = server.submit_signed(m, Some(&signature_by(key, m))).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{expected}: {body}");
        assert_eq!(code(&body), expected, "{body}");
    }
    assert_eq!(server.head().await, 0, "nothing appended");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validity_is_judged_at_the_ledger_clock_never_at_the_message_time() {
    // Valid from a minute before the ledger clock for two more minutes; revoked an hour on.
    let (key, entry) = test_key("tg-rotating-1", 31, |e| {
        e.not_before = at(BASE_MS);
        e.not_after = Some(at(BASE_MS + 3 * MINUTE_MS));
    });
    let (later, later_entry) = test_key("tg-compromised-1", 32, |e| {
        e.revoked_at = Some(at(BASE_MS + 2 * MINUTE_MS));
    });
    let server = Server::start_with(Some(registry_with(&[&entry, &later_entry]))).await;
    let j = fixtures::journey(base(), 506);
    // A message claiming to be sent a week before the key existed is accepted: what counts is
    // when the ledger received it.
    let mut registration = j.guarantee_registration.clone();
    registration.sent_at = at(BASE_MS - 7 * DAY_MS);
    let (status, body) = server
        .submit_signed(&registration, Some(&signature_by(&key, &registration)))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = server
        .submit_signed(&j.declaration, Some(&signature_by(&later, &j.declaration)))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    // Past the key's end and the other's revocation, a message dated inside their validity is
    // refused all the same.
    server.clock.advance(5 * MINUTE_MS);
    let mut release = j.release.clone();
    release.sent_at = at(BASE_MS);
    for (key, expected) in [(&key, "KEY_EXPIRED"), (&later, "KEY_REVOKED")] {
        let (status, body) = server
            .submit_signed(&release, Some(&signature_by(key, &release)))
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
        assert_eq!(code(&body), expected, "{body}");
    }
    // Revocation is not retroactive: what was recorded before stays, and re-checks offline.
    let (_, events) = server.get(&format!("/v1/movements/{}/events", j.mrn)).await;
    let metadata = serde_json::to_vec(&events["events"][0]["metadata"]).unwrap();
    let recorded = RecordedSubmission::from_metadata(&metadata)
        .unwrap()
        .unwrap();
    assert_eq!(
        recorded.signature.as_ref().unwrap().key_id,
        "tg-compromised-1"
    );
    recorded.check().unwrap();
    assert_eq!(server.head().await, 2);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_registry_signatures_are_neither_required_nor_recorded() {
    let server = Server::start_with(None).await;
    let j = fixtures::journey(base(), 507);
    let (status, body) = server.submit_signed(&j.guarantee_registration, None).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (_, events) = server
        .get(&format!("/v1/guarantees/{}/events", j.grn))
        .await;
    let submission = &events["events"][0]["metadata"]["submission"];
    assert!(submission["body"].is_string(), "{submission}");
    assert!(submission.get("signature").is_none(), "{submission}");
    server.stop().await;
}
