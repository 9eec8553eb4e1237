//! The bad-input suite (issue 5): hostile and broken submissions over real HTTP, each sent by
//! an authenticated national system. For every one: a clear error (status, stable code, a
//! reason naming the problem), nothing appended, and the service still healthy and still
//! recording good messages afterwards.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{base, dev_signature, national_token, Server, WAIT};
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use transit_contract::fixtures;
use transit_contract::messages::MessageBody;

/// One hostile submission and what the ledger must answer.
struct Case {
    what: &'static str,
    content_type: &'static str,
    body: Vec<u8>,
    signature: Option<String>,
    status: StatusCode,
    code: &'static str,
    /// A word the reason must contain, so the sender learns what was wrong.
    reason: &'static str,
}

fn xml_of(m: &transit_contract::messages::InboundMessage) -> String {
    String::from_utf8(transit_xml::encode_inbound(m)).unwrap()
}

fn cases(j: &fixtures::Journey) -> Vec<Case> {
    let release_xml = xml_of(&j.release);
    let body_start = release_xml.find("?>").map_or(0, |i| i + 2);
    let (prolog, document) = release_xml.split_at(body_start);
    let root = document.trim_start();
    let root_name_end = root[1..].find([' ', '>']).map(|i| i + 1).unwrap();
    let root_name = &root[1..root_name_end];
    let with_doctype = |doctype: &str| format!("{prolog}\n{doctype}\n{root}").into_bytes();
    let deep_xml = {
        let mut s = String::from("<?xml version=\"1.0\"?>");
        s.push_str("<a xmlns=\"urn:ecowas:transit-ledger:v1\">");
        s.push_str(&"<a>".repeat(10_000));
        s.push_str(&"</a>".repeat(10_001));
        s.into_bytes()
    };
    let deep_json = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000)).into_bytes();
    let deep_json_inside = {
        // A 10,000-deep object where the message's body goes.
        let mut v = serde_json::to_value(&j.release).unwrap();
        v["body"] = json!("PLACEHOLDER");
        let deep = format!("{}1{}", "{\"a\":".repeat(10_000), "}".repeat(10_000));
        v.to_string().replace("\"PLACEHOLDER\"", &deep).into_bytes()
    };
    let mut invalid_utf8_json = serde_json::to_vec(&j.release).unwrap();
    let at = invalid_utf8_json.len() / 2;
    invalid_utf8_json.splice(at..at, [0xC3, 0x28, 0xFF]);
    let mut invalid_utf8_xml = release_xml.clone().into_bytes();
    let at = invalid_utf8_xml.len() - 20;
    invalid_utf8_xml.splice(at..at, [0xFF, 0xFE]);
    let wrong_namespace = release_xml
        .replace(transit_xml::NAMESPACE, "urn:someone-else:transit:v9")
        .into_bytes();
    // The signature of the genuine release, over a release that says something else.
    let mut altered = j.release.clone();
    altered.sent_at =
        transit_contract::ids::Timestamp::from_unix_millis(altered.sent_at.unix_millis() + 1000)
            .unwrap();
    vec![
        Case {
            what: "XXE: an external entity reading a local file",
            content_type: "application/xml",
            body: with_doctype(&format!(
                "<!DOCTYPE {root_name} [<!ENTITY xxe SYSTEM \"file:///etc/passwd\">]>"
            )),
            signature: Some(dev_signature(&j.release)),
            status: StatusCode::BAD_REQUEST,
            code: "MALFORMED",
            reason: "DOCTYPE",
        },
        Case {
            what: "billion laughs: nested entity expansion",
            content_type: "application/xml",
            body: with_doctype(&format!(
                "<!DOCTYPE {root_name} [<!ENTITY lol \"lol\"><!ENTITY lol1 \"&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;\"><!ENTITY lol2 \"&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;\"><!ENTITY lol3 \"&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;\">]>"
            )),
            signature: Some(dev_signature(&j.release)),
            status: StatusCode::BAD_REQUEST,
            code: "MALFORMED",
            reason: "DOCTYPE",
        },
        Case {
            what: "10,000-deep XML nesting",
            content_type: "application/xml",
            body: deep_xml,
            signature: Some(dev_signature(&j.release)),
            status: StatusCode::BAD_REQUEST,
            code: "MALFORMED",
            reason: "XML_DEPTH_MAX",
        },
        Case {
            what: "10,000-deep JSON nesting",
            content_type: "application/json",
            body: deep_json,
            signature: Some(dev_signature(&j.release)),
            status: StatusCode::BAD_REQUEST,
            code: "MALFORMED",
            // Typed decoding stops at the first bracket (serde_json would stop at 128).
            reason: "invalid type",
        },
        Case {
            what: "10,000-deep JSON value inside a message",
            content_type: "application/json",
            body: deep_json_inside,
            signature: Some(dev_signature(&j.release)),
            status: StatusCode::BAD_REQUEST,
            code: "MALFORMED",
            reason: "malformed message",
        },
        Case {
            what: "invalid UTF-8 in JSON",
            content_type: "application/json",
            body: invalid_utf8_json,
            signature: Some(dev_signature(&j.release)),
            status: StatusCode::BAD_REQUEST,
            code: "MALFORMED",
            reason: "UTF-8",
        },
        Case {
            what: "invalid UTF-8 in XML",
            content_type: "application/xml",
            body: invalid_utf8_xml,
            signature: Some(dev_signature(&j.release)),
            status: StatusCode::BAD_REQUEST,
            code: "MALFORMED",
            reason: "UTF-8",
        },
        Case {
            what: "the right document in another namespace",
            content_type: "application/xml",
            body: wrong_namespace,
            signature: Some(dev_signature(&j.release)),
            // Well-formed XML that is not our schema: a validation error.
            status: StatusCode::UNPROCESSABLE_ENTITY,
            code: "VALIDATION",
            reason: "namespace",
        },
        Case {
            what: "a valid message with a signature over different bytes",
            content_type: "application/json",
            body: serde_json::to_vec(&altered).unwrap(),
            signature: Some(dev_signature(&j.release)),
            status: StatusCode::UNAUTHORIZED,
            code: "BAD_SIGNATURE",
            reason: "signature",
        },
    ]
}

fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or_default()
}

/// Healthy, and still recording: a good message goes in after the bad one.
async fn still_healthy(server: &Server) {
    let r = server
        .client
        .get(server.url("/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = server
        .client
        .get(server.url("/readyz"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_and_broken_submissions_get_a_clear_error_and_append_nothing() {
    let server = Server::start().await;
    let j = fixtures::journey(base(), 950);
    server.post(&j.guarantee_registration).await;
    server.post(&j.declaration).await;
    let head = server.head().await;
    let cases = cases(&j);
    let tg = national_token(&"TG".parse().unwrap());
    for case in &cases {
        let (status, body) = server
            .post_raw_as(
                &tg,
                case.content_type,
                case.body.clone(),
                case.signature.as_deref(),
            )
            .await;
        assert_eq!(status, case.status, "{}: {body}", case.what);
        assert_eq!(code(&body), case.code, "{}: {body}", case.what);
        let reason = body["error"]["message"].as_str().unwrap();
        assert!(
            reason.to_lowercase().contains(&case.reason.to_lowercase()),
            "{}: the reason should name {:?}: {reason}",
            case.what,
            case.reason
        );
        assert!(
            !reason.contains("root:"),
            "{}: no file content leaks",
            case.what
        );
        assert_eq!(server.head().await, head, "{}: nothing appended", case.what);
        still_healthy(&server).await;
    }
    // Every refusal is kept for analysts and auditors, with the hash of what was received.
    let refused = server
        .data(
            "{ refusedSubmissions(first: 100) { total items { code bodySha256 bodyBytes principal } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        refused["refusedSubmissions"]["total"].as_u64().unwrap(),
        cases.len() as u64,
        "{refused}"
    );
    // And the genuine release is recorded after all that.
    server.post(&j.release).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_message_id_with_other_content_is_a_conflict_and_flagged() {
    let server = Server::start().await;
    let j = fixtures::journey(base(), 951);
    for m in [&j.guarantee_registration, &j.declaration, &j.release] {
        server.post(m).await;
    }
    let head = server.head().await;
    // An exact redelivery is answered as the duplicate it is.
    let (status, body) = server.submit(&j.release).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["duplicate"], json!(true));
    // The same message id saying something else, properly signed by its sender: a replay
    // with altered content, refused as a conflict.
    let mut replay = j.declaration.clone();
    let MessageBody::TransitDeclaration(d) = &mut replay.body else {
        panic!("fixture declaration");
    };
    d.goods[0].gross_mass_g += 1_000_000;
    let (status, body) = server.submit(&replay).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(code(&body), "MESSAGE_ID_CONFLICT", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains(replay.message_id.as_str()),
        "{body}"
    );
    assert_eq!(server.head().await, head, "nothing appended");
    // Flagged: the attempt is in the refused-submissions view, under the sender's name.
    let refused = server
        .data(
            "{ refusedSubmissions(code: \"MESSAGE_ID_CONFLICT\") { items { messageId senderCountry kind mrn keyId principal } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        refused["refusedSubmissions"]["items"],
        json!([{
            "messageId": replay.message_id.as_str(),
            "senderCountry": "TG",
            "kind": "TransitDeclaration",
            "mrn": j.mrn.as_str(),
            "keyId": "tg-dev-1",
            "principal": "transit-ledger-dev/TG-national_system",
        }])
    );
    still_healthy(&server).await;
    server.stop().await;
}

/// Sends `headers` then up to `body_bytes` of zeros on a raw socket while reading the answer;
/// the status line and the bytes written before the server answered.
async fn raw_post(server: &Server, headers: String, body_bytes: usize) -> (String, usize) {
    let stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let (mut read, mut write) = stream.into_split();
    write.write_all(headers.as_bytes()).await.unwrap();
    let writer = tokio::spawn(async move {
        let chunk = vec![b'0'; 64 * 1024];
        let mut sent = 0usize;
        while sent < body_bytes {
            let n = chunk.len().min(body_bytes - sent);
            if write.write_all(&chunk[..n]).await.is_err() {
                break;
            }
            sent += n;
        }
        sent
    });
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    let status_line = tokio::time::timeout(WAIT, async {
        loop {
            let n = read.read(&mut buf).await.unwrap_or(0);
            if n == 0 {
                break;
            }
            answer.extend_from_slice(&buf[..n]);
            if answer.windows(2).any(|w| w == b"\r\n") {
                break;
            }
        }
        String::from_utf8_lossy(&answer)
            .lines()
            .next()
            .unwrap_or("")
            .to_owned()
    })
    .await
    .expect("the server answers without waiting for the whole body");
    drop(read);
    let sent = tokio::time::timeout(Duration::from_secs(30), writer)
        .await
        .map(|r| r.unwrap())
        .unwrap_or(usize::MAX);
    (status_line, sent)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_100_mb_body_is_refused_without_being_read() {
    let server = Server::start().await;
    let head = server.head().await;
    let tg = national_token(&"TG".parse().unwrap());
    let hundred_mb = 100 * 1024 * 1024;
    // Announced: refused on the header.
    let (status, sent) = raw_post(
        &server,
        format!(
            "POST /v1/messages HTTP/1.1\r\nHost: ledger\r\nAuthorization: Bearer {tg}\r\n\
             Content-Type: application/json\r\nContent-Length: {hundred_mb}\r\n\r\n"
        ),
        hundred_mb,
    )
    .await;
    assert!(status.contains(" 413 "), "{status}");
    assert!(
        sent < hundred_mb,
        "the server stopped the upload ({sent} bytes sent)"
    );
    // Not announced (chunked): refused once the limit is crossed.
    let (status, _) = raw_post(
        &server,
        format!(
            "POST /v1/messages HTTP/1.1\r\nHost: ledger\r\nAuthorization: Bearer {tg}\r\n\
             Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n\
             6400000\r\n"
        ),
        hundred_mb,
    )
    .await;
    assert!(status.contains(" 413 "), "{status}");
    // Without a token, the body is not even looked at.
    let (status, _) = raw_post(
        &server,
        format!(
            "POST /v1/messages HTTP/1.1\r\nHost: ledger\r\n\
             Content-Type: application/json\r\nContent-Length: {hundred_mb}\r\n\r\n"
        ),
        hundred_mb,
    )
    .await;
    assert!(status.contains(" 401 "), "{status}");
    assert_eq!(server.head().await, head, "nothing appended");
    still_healthy(&server).await;
    server.stop().await;
}
