//! The HTTP API over a real socket, on a real data folder: a whole Lomé -> Cinkassé ->
//! Ouagadougou journey, duplicates, conflicts, rejections, reads, checkpoints and proofs.
#![allow(clippy::unwrap_used)]

mod common;

use common::{base, Server, BASE_MS};
use reqwest::StatusCode;
use serde_json::json;
use transit_contract::fixtures;
use transit_contract::ids::Timestamp;
use transit_contract::messages::MessageBody;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whole_journey_is_recorded_in_order() {
    let server = Server::start().await;
    let journey = fixtures::journey(base(), 1);
    let mut last_position = None;
    for m in journey.messages() {
        let (status, body) = server.submit(&m).await;
        assert_eq!(status, StatusCode::CREATED, "{} -> {body}", m.kind());
        assert_eq!(body["duplicate"], json!(false));
        for e in body["events"].as_array().unwrap() {
            let p = e["position"].as_u64().unwrap();
            assert!(last_position.is_none_or(|l| p > l));
            last_position = Some(p);
        }
    }
    let (status, body) = server
        .get(&format!("/v1/movements/{}/events", journey.mrn))
        .await;
    assert_eq!(status, StatusCode::OK);
    let types: Vec<&str> = body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["eventType"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        [
            "TransitDeclared",
            "TransitReleased",
            "AnticipatedRecordsDispatched",
            "BorderCrossed",
            "BorderCrossed",
            "ArrivalRecorded",
            "ControlResultsRecorded",
            "TransitDischarged"
        ]
    );
    // The submission is kept, byte for byte, with the first event of its append.
    let first = &body["events"][0];
    assert_eq!(
        first["metadata"]["submission"]["messageId"],
        json!(journey.declaration.message_id.as_str())
    );
    assert!(first["data"]["meta"]["recordedAt"].is_string(), "{first}");
    let (status, body) = server
        .get(&format!("/v1/guarantees/{}/events", journey.grn))
        .await;
    assert_eq!(status, StatusCode::OK);
    let types: Vec<&str> = body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["eventType"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        [
            "GuaranteeRegistered",
            "GuaranteeExposureReserved",
            "GuaranteeExposureReleased"
        ]
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicates_return_the_original_and_conflicts_are_refused() {
    let server = Server::start().await;
    let journey = fixtures::journey(base(), 2);
    server.submit(&journey.guarantee_registration).await;
    server.submit(&journey.declaration).await;
    let (status, first) = server.submit(&journey.release).await;
    assert_eq!(status, StatusCode::CREATED);
    let (_, feed) = server.get("/v1/events?from=0&limit=1000").await;
    let head = feed["head"].as_u64().unwrap();
    let (status, again) = server.submit(&journey.release).await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(again["duplicate"], json!(true));
    assert_eq!(again["events"], first["events"]);
    let mut changed = journey.release.clone();
    changed.sent_at = Timestamp::from_unix_millis(BASE_MS + 1).unwrap();
    let (status, body) = server.submit(&changed).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"]["code"], json!("MESSAGE_ID_CONFLICT"));
    let (_, feed) = server.get("/v1/events?from=0&limit=1000").await;
    assert_eq!(feed["head"].as_u64().unwrap(), head, "nothing appended");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_a_clear_error_and_nothing_is_appended() {
    let server = Server::start().await;
    let journey = fixtures::journey(base(), 3);
    let (status, body) = server
        .post_raw("application/json", b"{not json".to_vec(), None)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["code"], json!("MALFORMED"));
    // An MRN whose check character is wrong never becomes a message.
    let text = serde_json::to_string(&journey.declaration).unwrap();
    let mrn = journey.mrn.to_string();
    let mut bad_mrn = mrn.clone();
    let last = bad_mrn.pop().unwrap();
    bad_mrn.push(if last == '0' { '1' } else { '0' });
    let (status, body) = server
        .post_raw(
            "application/json",
            text.replace(&mrn, &bad_mrn).into_bytes(),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["error"]["message"].as_str().unwrap().contains("check"),
        "{body}"
    );
    let r = server
        .client
        .post(server.url("/v1/messages"))
        .bearer_auth(common::national_token(&"TG".parse().unwrap()))
        .header("content-type", "text/plain")
        .body(text.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    // The server answers 413 without reading the body, then closes the connection: use a
    // client of its own so the shared pool does not reuse that connection.
    let once = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let r = once
        .post(server.url("/v1/messages"))
        .bearer_auth(common::national_token(&"TG".parse().unwrap()))
        .header("content-type", "application/json")
        .body(vec![b' '; 2 * 1024 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    // Declaration before its guarantee is registered.
    let (status, body) = server.submit(&journey.declaration).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"]["code"], json!("GUARANTEE_UNKNOWN"));
    // Discharge without arrival.
    server.submit(&journey.guarantee_registration).await;
    server.submit(&journey.declaration).await;
    server.submit(&journey.release).await;
    let (status, body) = server.submit(&journey.discharge).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"]["code"], json!("ARRIVAL_REQUIRED"));
    let (_, feed) = server.get("/v1/events?from=0&limit=1000").await;
    // Registration (1) + declaration (1) + release (3 movement/guarantee events) only.
    assert_eq!(feed["head"].as_u64().unwrap(), 5, "{feed}");
    let (status, _) = server.get("/v1/movements/NOTANMRN/events").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let other = fixtures::journey(base(), 99);
    let (status, _) = server
        .get(&format!("/v1/movements/{}/events", other.mrn))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = server.get("/healthz").await;
    assert_eq!(status, StatusCode::OK);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_past_the_guarantee_is_refused() {
    let server = Server::start().await;
    // Many movements under one guarantee: the 4th release would pass 50,000,000 XOF.
    let shared = fixtures::journey(base(), 10);
    server.submit(&shared.guarantee_registration).await;
    let mut refused = 0;
    for serial in 10..16 {
        let j = fixtures::journey(base(), serial);
        let mut declaration = j.declaration.clone();
        if let MessageBody::TransitDeclaration(d) = &mut declaration.body {
            d.guarantee = shared.grn.clone();
        }
        let (status, body) = server.submit(&declaration).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let (status, body) = server.submit(&j.release).await;
        if status == StatusCode::UNPROCESSABLE_ENTITY {
            assert_eq!(body["error"]["code"], json!("GUARANTEE_EXCEEDED"));
            refused += 1;
        } else {
            assert_eq!(status, StatusCode::CREATED, "{body}");
        }
    }
    let reserved_per = fixtures::AMOUNT_AT_STAKE_XOF;
    let fits = fixtures::REFERENCE_AMOUNT_XOF / reserved_per;
    assert_eq!(
        refused,
        6 - fits,
        "exactly the releases past the reference amount are refused"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkpoints_and_proofs_verify_against_the_ledger_key() {
    let server = Server::start().await;
    for m in fixtures::journey(base(), 4).messages() {
        server.submit(&m).await;
    }
    let (status, body) = server.get("/v1/checkpoint").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let cp: ledger_store::SignedCheckpoint =
        serde_json::from_value(body["checkpoint"].clone()).unwrap();
    let key_bytes: [u8; 32] = hex::decode(body["publicKey"].as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap();
    let key = ed25519_dalek::VerifyingKey::from_bytes(&key_bytes).unwrap();
    cp.verify(&key).unwrap();
    assert!(body["note"]
        .as_str()
        .unwrap()
        .starts_with("transit-ledger\n"));
    let root = ledger_merkle::from_hex(&cp.root).unwrap();
    let (_, feed) = server.get("/v1/events?from=0&limit=1000").await;
    for e in feed["events"].as_array().unwrap() {
        let position = e["position"].as_u64().unwrap();
        let (status, proof) = server
            .get(&format!(
                "/v1/proofs/inclusion?position={position}&treeSize={}",
                cp.tree_size
            ))
            .await;
        assert_eq!(status, StatusCode::OK);
        let leaf = ledger_merkle::from_hex(e["leafHash"].as_str().unwrap()).unwrap();
        let path: Vec<_> = proof["path"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| ledger_merkle::from_hex(h.as_str().unwrap()).unwrap())
            .collect();
        ledger_merkle::verify_inclusion(&leaf, position, cp.tree_size, &path, &root).unwrap();
    }
    let (status, proof) = server
        .get(&format!(
            "/v1/proofs/consistency?from=3&to={}",
            cp.tree_size
        ))
        .await;
    assert_eq!(status, StatusCode::OK);
    let path: Vec<_> = proof["path"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| ledger_merkle::from_hex(h.as_str().unwrap()).unwrap())
        .collect();
    let old_root = ledger_merkle::from_hex(proof["oldRoot"].as_str().unwrap()).unwrap();
    ledger_merkle::verify_consistency(3, cp.tree_size, &old_root, &root, &path).unwrap();
    let (status, _) = server
        .get(&format!(
            "/v1/proofs/inclusion?position={}&treeSize={}",
            cp.tree_size, cp.tree_size
        ))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, body) = server.get("/readyz").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["head"].as_u64().unwrap(), cp.tree_size);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_order_reports_are_recorded_with_an_anomaly_never_lost() {
    let server = Server::start().await;
    let journey = fixtures::journey(base(), 5);
    // The border post reports the crossing before the declaration reached the ledger.
    let (status, body) = server.submit(&journey.crossings[1]).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    server.submit(&journey.guarantee_registration).await;
    let (status, body) = server.submit(&journey.declaration).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    server.submit(&journey.release).await;
    // Arrival before the Togolese exit crossing.
    let (status, _) = server.submit(&journey.arrival).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _) = server.submit(&journey.crossings[0]).await;
    assert_eq!(status, StatusCode::CREATED);
    let (_, body) = server
        .get(&format!("/v1/movements/{}/events", journey.mrn))
        .await;
    let events = body["events"].as_array().unwrap();
    let first = &events[0];
    assert_eq!(first["eventType"], json!("BorderCrossed"));
    assert!(
        first["data"]["meta"]["anomaly"].is_string(),
        "a crossing before the declaration is flagged: {first}"
    );
    let types: Vec<&str> = events
        .iter()
        .map(|e| e["eventType"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        [
            "BorderCrossed",
            "TransitDeclared",
            "TransitReleased",
            "AnticipatedRecordsDispatched",
            "ArrivalRecorded",
            "BorderCrossed"
        ]
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xml_submissions_take_the_same_path_as_json() {
    let server = Server::start().await;
    let journey = fixtures::journey(base(), 6);
    for m in [&journey.guarantee_registration, &journey.declaration] {
        let (status, body) = server.submit_xml(m).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    // The same message as JSON is a duplicate of the XML one: one message, two encodings.
    let (status, body) = server.submit(&journey.declaration).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["duplicate"], json!(true));
    // Hostile XML is refused before anything is expanded.
    let r = server
        .client
        .post(server.url("/v1/messages"))
        .bearer_auth(common::national_token(&"TG".parse().unwrap()))
        .header("content-type", "application/xml")
        .body("<?xml version=\"1.0\"?><!DOCTYPE x [<!ENTITY e SYSTEM \"file:///etc/passwd\">]><x>&e;</x>")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], json!("MALFORMED"));
    let (_, events) = server
        .get(&format!("/v1/movements/{}/events", journey.mrn))
        .await;
    let first = &events["events"][0];
    assert_eq!(
        first["metadata"]["submission"]["contentType"],
        json!("application/xml"),
        "the submission is kept as received, in its own encoding"
    );
    server.stop().await;
}
