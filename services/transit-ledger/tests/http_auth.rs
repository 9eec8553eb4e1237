//! Who may call the HTTP API (issue 5): bearer tokens and roles on every route, a national
//! system bound to its country, each authorization rule of the ledger over HTTP with the
//! refusal kept in the refused-submissions view, RS256 tokens of an identity provider, token
//! expiry at the ledger clock, and the per-principal rate limit.
#![allow(clippy::unwrap_used)]

mod common;

use common::{
    analyst_token, auditor_token, base, dev_registry, dev_token, national_token, repo_root, Server,
    BASE_MS,
};
use futures::{SinkExt, StreamExt};
use ledger_store::Clock as _;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use transit_contract::fixtures;
use transit_contract::ids::OfficeCode;
use transit_contract::messages::{
    ArrivalNotification, InboundMessage, Incident, IncidentCode, MessageBody, Place, Sender,
};
use transit_ledger::auth::Role;

fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or_default()
}

/// `method path` with `token` (or none): the status, the `WWW-Authenticate` header and the
/// body (JSON, or `null` when it is not JSON).
async fn call(
    server: &Server,
    method: Method,
    path: &str,
    token: Option<&str>,
) -> (StatusCode, Option<String>, Value) {
    let mut request = server.client.request(method.clone(), server.url(path));
    if method == Method::POST && path == "/graphql" {
        request = request.json(&json!({ "query": "{ projectionPosition }" }));
    } else if method == Method::POST {
        // A message Togo may record, signed by Togo: only the token decides.
        let m = fixtures::journey(base(), 900).guarantee_registration;
        request = request
            .header("content-type", "application/json")
            .header(transit_auth::HTTP_HEADER, common::dev_signature(&m))
            .body(serde_json::to_vec(&m).unwrap());
    }
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let r = request.send().await.unwrap();
    let status = r.status();
    let challenge = r
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned());
    let text = r.text().await.unwrap();
    (
        status,
        challenge,
        serde_json::from_str(&text).unwrap_or(Value::Null),
    )
}

/// Every route, with what a caller gets from it.
const ROUTES: &[(&str, &str)] = &[
    ("POST", "/v1/messages"),
    ("POST", "/graphql"),
    ("GET", "/v1/events?from=0&limit=1"),
    ("GET", "/v1/movements/TG2605281234567890/events"),
    ("GET", "/v1/guarantees/26TG0000000000001/events"),
    ("GET", "/v1/checkpoint"),
    ("GET", "/v1/proofs/inclusion?position=0"),
    ("GET", "/v1/proofs/consistency?from=1"),
    ("GET", "/metrics"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_but_health_and_the_graphiql_page_is_served_without_a_token() {
    let server = Server::start().await;
    for (method, path) in ROUTES {
        let (status, challenge, body) = call(&server, method.parse().unwrap(), path, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {path}: {body}");
        assert_eq!(code(&body), "MISSING_TOKEN", "{method} {path}");
        assert_eq!(
            challenge.as_deref(),
            Some("Bearer realm=\"transit-ledger\"")
        );
        // A token that is not one: 401 with the RFC 6750 error, and the token never echoed.
        let (status, challenge, body) = call(
            &server,
            method.parse().unwrap(),
            path,
            Some("hunter2-not-a-jwt"),
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {path}: {body}");
        assert_eq!(code(&body), "MALFORMED_TOKEN");
        assert!(challenge.unwrap().contains("error=\"invalid_token\""));
        assert!(!body.to_string().contains("hunter2"), "{body}");
    }
    for path in ["/healthz", "/readyz"] {
        let (status, _, body) = call(&server, Method::GET, path, None).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
    }
    // The GraphiQL page is static HTML; every query it sends needs a token.
    let r = server
        .client
        .get(server.url("/graphql"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // The websocket: no subscription without a token in the upgrade or in connection_init.
    let mut request = format!("ws://{}/graphql/ws", server.addr)
        .into_client_request()
        .unwrap();
    request.headers_mut().insert(
        "sec-websocket-protocol",
        "graphql-transport-ws".parse().unwrap(),
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    ws.send(Message::Text(
        json!({ "type": "connection_init" }).to_string().into(),
    ))
    .await
    .unwrap();
    let closed = tokio::time::timeout(common::WAIT, async {
        while let Some(msg) = ws.next().await {
            match msg {
                Ok(Message::Close(frame)) => return frame.map(|f| f.reason.to_string()),
                Ok(Message::Text(t)) => assert!(!t.contains("connection_ack"), "{t}"),
                Ok(_) => {}
                Err(_) => return None,
            }
        }
        None
    })
    .await
    .expect("the server closes an unauthenticated subscription");
    assert!(
        closed.as_deref().unwrap_or("").contains("MISSING_TOKEN"),
        "{closed:?}"
    );
    // With a token of the wrong role on the upgrade: refused before the upgrade.
    let mut request = format!("ws://{}/graphql/ws", server.addr)
        .into_client_request()
        .unwrap();
    request.headers_mut().insert(
        "sec-websocket-protocol",
        "graphql-transport-ws".parse().unwrap(),
    );
    request.headers_mut().insert(
        "authorization",
        format!("Bearer {}", national_token(&"TG".parse().unwrap()))
            .parse()
            .unwrap(),
    );
    let refused = tokio_tungstenite::connect_async(request).await.unwrap_err();
    assert!(refused.to_string().contains("403"), "{refused}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_role_reaches_its_routes_and_only_those() {
    let server = Server::start().await;
    // Something in the log, so reads and proofs have an answer.
    let j = fixtures::journey(base(), 901);
    server.post(&j.guarantee_registration).await;
    let tg = national_token(&"TG".parse().unwrap());
    let analyst = analyst_token();
    let auditor = auditor_token();
    let nothing = dev_token(&[], None);
    let operator = dev_token(&[Role::Operator], None);
    let allowed = |token: &str, method: &str, path: &str| -> bool {
        let national = token == tg;
        let analyst_ = token == analyst;
        let auditor_ = token == auditor;
        let operator_ = token == operator;
        match (method, path) {
            ("GET", "/metrics") => operator_,
            ("POST", "/v1/messages") => national,
            ("POST", "/graphql") => analyst_ || auditor_,
            (_, p) if p.starts_with("/v1/checkpoint") || p.starts_with("/v1/proofs") => {
                national || auditor_
            }
            _ => auditor_,
        }
    };
    for token in [&tg, &analyst, &auditor, &operator, &nothing] {
        for (method, path) in ROUTES {
            let (status, _, body) = call(&server, method.parse().unwrap(), path, Some(token)).await;
            if allowed(token, method, path) {
                assert!(
                    status != StatusCode::UNAUTHORIZED && status != StatusCode::FORBIDDEN,
                    "{method} {path}: {status} {body}"
                );
            } else {
                assert_eq!(status, StatusCode::FORBIDDEN, "{method} {path}: {body}");
                assert_eq!(code(&body), "ROLE_REQUIRED", "{method} {path}");
            }
        }
    }
    server.stop().await;
}

/// `m` sent by `office` (and so by its country), with a fresh message id.
fn sent_by(m: &InboundMessage, office: &str) -> InboundMessage {
    let office: OfficeCode = office.parse().unwrap();
    let mut m = m.clone();
    m.sender = Sender {
        country: office.country(),
        office,
    };
    m.message_id = uuid::Uuid::new_v4().to_string().parse().unwrap();
    m
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_authorization_rule_refuses_over_http_keeps_the_refusal_and_appends_nothing() {
    let server = Server::start().await;
    let j = fixtures::journey(base(), 902);
    for m in [&j.guarantee_registration, &j.declaration, &j.release] {
        server.post(m).await;
    }
    // A Nigerien office, off this Lomé -> Ouagadougou route.
    const NIAMEY: &str = "NENIA001";
    let arrival_at_tg_office = {
        let mut m = sent_by(&j.arrival, fixtures::CINKASSE_TG);
        let MessageBody::ArrivalNotification(a) = &j.arrival.body else {
            panic!("fixture arrival");
        };
        m.body = MessageBody::ArrivalNotification(ArrivalNotification {
            office: fixtures::CINKASSE_TG.parse().unwrap(),
            ..a.clone()
        });
        m
    };
    let incident_from_niger = {
        let mut m = sent_by(&j.release, NIAMEY);
        m.body = MessageBody::Incident(Incident {
            mrn: j.mrn.clone(),
            code: IncidentCode::Accident,
            place: Place {
                locode: Some("NENIM".parse().unwrap()),
                latitude_e7: None,
                longitude_e7: None,
            },
            occurred_at: j.release.sent_at,
            endorsed_by: None,
            new_seals: vec![],
            new_transport: None,
            description: "reported from off the route".to_owned(),
        });
        m
    };
    let cases: Vec<(&str, InboundMessage, &str)> = vec![
        (
            "Togo records the entry at the Burkinabè side of Cinkassé",
            sent_by(&j.crossings[1], fixtures::CINKASSE_TG),
            "FORBIDDEN_OFFICE",
        ),
        (
            "Burkina Faso releases a movement declared in Togo",
            sent_by(&j.release, fixtures::OUAGADOUGOU),
            "NOT_DEPARTURE_COUNTRY",
        ),
        (
            "Burkina Faso discharges a movement declared in Togo",
            sent_by(&j.discharge, fixtures::OUAGADOUGOU),
            "NOT_DEPARTURE_COUNTRY",
        ),
        (
            "Togo records an arrival at its own office, which is not the destination",
            arrival_at_tg_office,
            "NOT_DESTINATION_COUNTRY",
        ),
        (
            "Togo records the control results at destination",
            sent_by(&j.control_results, fixtures::CINKASSE_TG),
            "FORBIDDEN_OFFICE",
        ),
        (
            "Niger reports an incident on a movement that never passes through it",
            incident_from_niger,
            "NOT_ROUTE_COUNTRY",
        ),
    ];
    let head = server.head().await;
    for (what, m, expected) in &cases {
        // The sender's own national system, signing with its own key: authenticated, and
        // still not allowed to record this.
        let (status, body) = server.submit(m).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{what}: {body}");
        assert_eq!(code(&body), *expected, "{what}: {body}");
        assert_eq!(server.head().await, head, "{what}: nothing appended");
    }
    let refused = server
        .data(
            "{ refusedSubmissions(first: 50) { total items { channel code senderCountry kind mrn keyId principal } } }",
            json!({}),
        )
        .await;
    let items = refused["refusedSubmissions"]["items"].as_array().unwrap();
    assert_eq!(items.len(), cases.len(), "{refused}");
    // Newest first.
    for ((what, m, expected), item) in cases.iter().rev().zip(items) {
        assert_eq!(item["code"], *expected, "{what}: {item}");
        assert_eq!(item["channel"], "http");
        assert_eq!(item["senderCountry"], m.sender.country.as_str());
        assert_eq!(item["kind"], m.kind());
        assert_eq!(item["mrn"], j.mrn.as_str());
        let cc = m.sender.country.as_str();
        assert_eq!(
            item["keyId"],
            format!("{}-dev-1", cc.to_ascii_lowercase()),
            "{what}"
        );
        assert_eq!(
            item["principal"],
            format!("transit-ledger-dev/{cc}-national_system"),
            "{what}"
        );
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_national_system_submits_for_its_own_country_only() {
    let server = Server::start().await;
    let j = fixtures::journey(base(), 903);
    let head = server.head().await;
    // Togo's token, Burkina Faso's message, properly signed by Burkina Faso's key: a Togolese
    // system holding a stolen BF signature still cannot submit it.
    let bf_message = sent_by(&j.guarantee_registration, fixtures::OUAGADOUGOU);
    let tg = national_token(&"TG".parse().unwrap());
    let (status, body) = server
        .post_raw_as(
            &tg,
            "application/json",
            serde_json::to_vec(&bf_message).unwrap(),
            Some(&common::dev_signature(&bf_message)),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(code(&body), "PRINCIPAL_COUNTRY_MISMATCH", "{body}");
    assert_eq!(server.head().await, head, "nothing appended");
    let refused = server
        .data(
            "{ refusedSubmissions(code: \"PRINCIPAL_COUNTRY_MISMATCH\") { items { senderCountry principal } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        refused["refusedSubmissions"]["items"],
        json!([{ "senderCountry": "BF", "principal": "transit-ledger-dev/TG-national_system" }])
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_expire_at_the_ledger_clock() {
    let server = Server::start().await;
    // Issued at the server clock's time, valid one hour (30 s leeway).
    let token = common::dev_issuer()
        .issue(&transit_ledger::auth::TokenRequest {
            subject: "short-lived".into(),
            roles: vec![Role::Auditor],
            country: None,
            issued_at_ms: server.clock.now_millis(),
            ttl_s: 3600,
        })
        .unwrap();
    let (status, _) = server.get_as(&token, "/v1/events?from=0").await;
    assert_eq!(status, StatusCode::OK);
    server.clock.advance((3600 + 31) * 1000);
    let (status, body) = server.get_as(&token, "/v1/events?from=0").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(code(&body), "TOKEN_EXPIRED");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_identity_providers_rs256_tokens_are_accepted_and_its_issuer_checked() {
    let fixtures_dir = repo_root().join("services/transit-ledger/tests/fixtures/auth");
    let server = Server::start_opts(
        Some(dev_registry()),
        &fixtures_dir.join("issuers.toml"),
        None,
    )
    .await;
    let pem = std::fs::read(fixtures_dir.join("rs256-test.pem")).unwrap();
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(&pem).unwrap();
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = Some("rs256-test-1".into());
    let now_s = BASE_MS / 1000 + 60;
    let claims = |iss: &str| {
        json!({
            "iss": iss, "sub": "analyst@ecowas.int", "aud": ["transit-ledger", "other"],
            "exp": now_s + 300, "iat": now_s, "roles": ["analyst"]
        })
    };
    let token = jsonwebtoken::encode(
        &header,
        &claims("https://idp.example.test/realms/customs"),
        &key,
    )
    .unwrap();
    let r = server
        .client
        .post(server.url("/graphql"))
        .bearer_auth(&token)
        .json(&json!({ "query": "{ projectionPosition }" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // The same key claiming to be the development issuer: the key belongs to the IdP only.
    let token = jsonwebtoken::encode(&header, &claims("transit-ledger-dev"), &key).unwrap();
    let (status, _, body) = call(&server, Method::POST, "/graphql", Some(&token)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(code(&body), "INVALID_TOKEN");
    // Development tokens still work beside it.
    let (status, _, body) = call(&server, Method::POST, "/graphql", Some(&analyst_token())).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_principal_has_its_own_rate_limit() {
    let server = Server::start_opts(
        Some(dev_registry()),
        &repo_root().join(transit_ledger::auth::DEV_ISSUERS_PATH),
        Some(transit_ledger::rate_limit::RateLimit {
            rate: 0.5,
            burst: 3.0,
        }),
    )
    .await;
    let auditor = auditor_token();
    for _ in 0..3 {
        let (status, _) = server.get_as(&auditor, "/v1/events?from=0").await;
        assert_eq!(status, StatusCode::OK);
    }
    let r = server
        .client
        .get(server.url("/v1/events?from=0"))
        .bearer_auth(&auditor)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry), "{retry}");
    let body: Value = r.json().await.unwrap();
    assert_eq!(code(&body), "RATE_LIMITED");
    // Another principal is not slowed down by this one; health is never limited.
    let (status, _) = server
        .get_as(&analyst_or_auditor(), "/v1/events?from=0")
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, _) = call(&server, Method::GET, "/healthz", None).await;
    assert_eq!(status, StatusCode::OK);
    server.stop().await;
}

/// An auditor principal other than [`auditor_token`]'s.
fn analyst_or_auditor() -> String {
    dev_token(&[Role::Analyst, Role::Auditor], None)
}
