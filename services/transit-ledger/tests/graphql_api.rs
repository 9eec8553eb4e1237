//! The GraphQL API over real HTTP and a real websocket, on a real data folder: a whole
//! Lomé -> Cinkassé -> Ouagadougou journey read back through `movement`, `movements`
//! (filters, pagination), `guarantee` (exposure before and after discharge via `asOf`), a
//! `movementUpdated` subscription over graphql-transport-ws, and the query limits.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use transit_contract::fixtures;

mod common;
use common::{base, post_journey, Server, WAIT};

const MOVEMENT: &str = r#"query($mrn: String!, $asOf: Int) {
  movement(mrn: $mrn, asOf: $asOf) {
    mrn status corridor listingPosition
    holder { id country } vehicle { identity }
    planned { departure transit destination }
    hsCodes grossMassGrams guarantee amountReserved { amountMinor currency }
    history { position eventType }
    riskScore signals { rule open }
  }
}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_movement_reads_back_now_and_as_of_an_earlier_position() {
    let server = Server::start().await;
    let journey = fixtures::journey(base(), 1);
    let lasts = post_journey(&server, &journey).await;
    let mrn = journey.mrn.to_string();

    let data = server.data(MOVEMENT, json!({ "mrn": mrn })).await;
    let m = &data["movement"];
    assert_eq!(m["mrn"], json!(mrn));
    assert_eq!(m["status"], json!("DISCHARGED"));
    assert_eq!(m["guarantee"], json!(journey.grn.to_string()));
    assert!(m["corridor"].as_str().unwrap().contains('>'));
    let history = m["history"].as_array().unwrap();
    assert_eq!(history[0]["eventType"], json!("TransitDeclared"));
    let positions: Vec<u64> = history
        .iter()
        .map(|h| h["position"].as_u64().unwrap())
        .collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{positions:?}");
    assert!(*positions.last().unwrap() <= *lasts.last().unwrap());
    assert_eq!(
        m["riskScore"],
        json!(0),
        "a clean journey raises nothing: {m}"
    );

    // Messages: guarantee registration, declaration, release, ...; as of the declaration's
    // position the movement was declared and not yet released.
    let declared_at = lasts[1];
    let data = server
        .data(MOVEMENT, json!({ "mrn": mrn, "asOf": declared_at }))
        .await;
    assert_eq!(data["movement"]["status"], json!("DECLARED"));
    assert_eq!(data["movement"]["history"].as_array().unwrap().len(), 1);
    let data = server
        .data(MOVEMENT, json!({ "mrn": mrn, "asOf": lasts[2] }))
        .await;
    assert_eq!(data["movement"]["status"], json!("RELEASED"));

    // Before its declaration the movement did not exist.
    let data = server
        .data(MOVEMENT, json!({ "mrn": mrn, "asOf": lasts[0] }))
        .await;
    assert_eq!(data["movement"], Value::Null);

    let unknown = fixtures::mrn(base(), 99).to_string();
    let data = server.data(MOVEMENT, json!({ "mrn": unknown })).await;
    assert_eq!(data["movement"], Value::Null);

    let body = server.gql(MOVEMENT, json!({ "mrn": "NOT-AN-MRN" })).await;
    assert!(body["errors"][0]["message"]
        .as_str()
        .unwrap()
        .contains("invalid MRN"));
    server.stop().await;
}

const MOVEMENTS: &str = r#"query($filter: MovementsFilter, $first: Int, $after: String) {
  movements(filter: $filter, first: $first, after: $after) {
    edges { cursor node { mrn status } }
    pageInfo { hasNextPage hasPreviousPage endCursor }
  }
}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn movements_filter_and_paginate() {
    let server = Server::start().await;
    let journeys: Vec<_> = (1..=3).map(|s| fixtures::journey(base(), s)).collect();
    for j in &journeys {
        post_journey(&server, j).await;
    }
    let mrns: Vec<String> = journeys.iter().map(|j| j.mrn.to_string()).collect();

    // Page through all three, two at a time.
    let page1 = server.data(MOVEMENTS, json!({ "first": 2 })).await;
    let edges = page1["movements"]["edges"].as_array().unwrap();
    assert_eq!(edges.len(), 2);
    assert_eq!(edges[0]["node"]["mrn"], json!(mrns[0]));
    assert_eq!(edges[1]["node"]["mrn"], json!(mrns[1]));
    let info = &page1["movements"]["pageInfo"];
    assert_eq!(info["hasNextPage"], json!(true));
    assert_eq!(info["endCursor"], edges[1]["cursor"]);
    let page2 = server
        .data(MOVEMENTS, json!({ "first": 2, "after": info["endCursor"] }))
        .await;
    let edges = page2["movements"]["edges"].as_array().unwrap();
    assert_eq!(edges.len(), 1);
    assert_eq!(edges[0]["node"]["mrn"], json!(mrns[2]));
    assert_eq!(page2["movements"]["pageInfo"]["hasNextPage"], json!(false));

    // Filters.
    let corridor =
        server.data(MOVEMENT, json!({ "mrn": mrns[0] })).await["movement"]["corridor"].clone();
    let count = |data: &Value| data["movements"]["edges"].as_array().unwrap().len();
    for (filter, expected) in [
        (json!({ "status": "DISCHARGED" }), 3),
        (json!({ "status": "RELEASED" }), 0),
        (json!({ "corridor": corridor }), 3),
        (json!({ "country": "BF" }), 3),
        (json!({ "country": "GH" }), 0),
        (json!({ "hasSignals": false }), 3),
        (json!({ "hasSignals": true }), 0),
        (json!({ "vehicle": "ZZ0000ZZ" }), 0),
        (json!({ "status": "DISCHARGED", "hasSignals": false }), 3),
    ] {
        let data = server
            .data(MOVEMENTS, json!({ "filter": filter, "first": 10 }))
            .await;
        assert_eq!(count(&data), expected, "filter {filter}");
    }
    // hasSignals pages too.
    let data = server
        .data(
            MOVEMENTS,
            json!({ "filter": { "hasSignals": false }, "first": 1 }),
        )
        .await;
    assert_eq!(count(&data), 1);
    assert_eq!(data["movements"]["pageInfo"]["hasNextPage"], json!(true));

    let body = server
        .gql(MOVEMENTS, json!({ "filter": { "corridor": "nonsense" } }))
        .await;
    assert!(body["errors"][0]["message"]
        .as_str()
        .unwrap()
        .contains("invalid corridor"));
    server.stop().await;
}

const GUARANTEE: &str = r#"query($grn: String!, $asOf: Int) {
  guarantee(reference: $grn, asOf: $asOf) {
    reference position
    referenceAmount { amountMinor currency }
    reserved { amountMinor currency }
    released { amountMinor }
    exposure { amountMinor currency }
    headroom { amountMinor }
  }
  exposureByGuarantor { key exposure { amountMinor } }
  exposureByCorridor { key }
  checkpoint { treeSize root keyId }
}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guarantee_exposure_before_and_after_discharge() {
    let server = Server::start().await;
    let journey = fixtures::journey(base(), 1);
    let lasts = post_journey(&server, &journey).await;
    let grn = journey.grn.to_string();

    let amount = |v: &Value| -> i64 { v["amountMinor"].as_str().unwrap().parse().unwrap() };
    let now = server.data(GUARANTEE, json!({ "grn": grn })).await;
    let g = &now["guarantee"];
    assert_eq!(g["reference"], json!(grn));
    assert_eq!(
        amount(&g["exposure"]),
        0,
        "discharged: nothing exposed: {g}"
    );
    assert_eq!(amount(&g["reserved"]), amount(&g["released"]));
    assert!(amount(&g["reserved"]) > 0);
    assert_eq!(amount(&g["headroom"]), amount(&g["referenceAmount"]));

    // As of the release (declaration reserved the amount), the reserved amount was exposed.
    let released = server
        .data(GUARANTEE, json!({ "grn": grn, "asOf": lasts[2] }))
        .await;
    let g = &released["guarantee"];
    assert_eq!(
        amount(&g["exposure"]),
        amount(&now["guarantee"]["reserved"])
    );
    assert_eq!(amount(&g["released"]), 0);
    assert_eq!(
        amount(&g["headroom"]),
        amount(&g["referenceAmount"]) - amount(&g["exposure"])
    );
    assert!(g["position"].as_u64().unwrap() <= lasts[2]);
    assert_eq!(
        g["exposure"]["currency"],
        now["guarantee"]["reserved"]["currency"]
    );

    assert_eq!(now["exposureByGuarantor"].as_array().unwrap().len(), 1);
    assert_eq!(now["exposureByCorridor"].as_array().unwrap().len(), 1);

    // Exposure of an unknown guarantee is null, not an error.
    let other = fixtures::grn(base(), 99).to_string();
    let data = server.data(GUARANTEE, json!({ "grn": other })).await;
    assert_eq!(data["guarantee"], Value::Null);
    server.stop().await;
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens a graphql-transport-ws connection and starts one subscription with id "1".
async fn subscribe(server: &Server, query: &str, variables: Value) -> Socket {
    let mut request = format!("ws://{}/graphql/ws", server.addr)
        .into_client_request()
        .unwrap();
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        "graphql-transport-ws".parse().unwrap(),
    );
    let (mut ws, response) = tokio_tungstenite::connect_async(request).await.unwrap();
    assert_eq!(
        response.headers()["sec-websocket-protocol"],
        "graphql-transport-ws"
    );
    // As a browser must: the token in connection_init's payload, not a header.
    ws.send(text(json!({
        "type": "connection_init",
        "payload": { "Authorization": format!("Bearer {}", common::analyst_token()) }
    })))
    .await
    .unwrap();
    assert_eq!(receive(&mut ws).await["type"], json!("connection_ack"));
    ws.send(text(json!({
        "id": "1",
        "type": "subscribe",
        "payload": { "query": query, "variables": variables },
    })))
    .await
    .unwrap();
    // The protocol does not acknowledge a subscribe, so give the server a moment to attach
    // the subscription to the channel before the first event is published.
    tokio::time::sleep(Duration::from_millis(300)).await;
    ws
}

fn text(v: Value) -> Message {
    Message::Text(v.to_string().into())
}

async fn receive(ws: &mut Socket) -> Value {
    let msg = tokio::time::timeout(WAIT, ws.next())
        .await
        .expect("a message within the wait")
        .unwrap()
        .unwrap();
    match msg {
        Message::Text(t) => serde_json::from_str(t.as_str()).unwrap(),
        other => panic!("unexpected frame {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_overdue_signal_is_raised_to_a_subscriber_on_the_ledger_clock() {
    let server = Server::start().await;
    let journey = fixtures::journey(base(), 1);
    let mrn = journey.mrn.to_string();
    server.post(&journey.guarantee_registration).await;
    server.post(&journey.declaration).await;
    let release = server.post(&journey.release).await;
    server.caught_up(*release.last().unwrap()).await;
    let query = "{ riskScore(mrn: \"MRN\") fraudSignals(filter: { open: true }) { edges { node { id rule open } } } }".replace("MRN", &mrn);
    let data = server.data(&query, json!({})).await;
    assert_eq!(data["riskScore"], json!(0));
    assert_eq!(data["fraudSignals"]["edges"], json!([]));

    let mut ws = subscribe(
        &server,
        "subscription { fraudSignalRaised { id rule severity mrn explanation evidence open } }",
        json!({}),
    )
    .await;
    // A year later, with no arrival, the movement is long past its time limit; the runner
    // ticks the deadline rules on the ledger clock every second.
    server.clock.advance(365 * 24 * 3600 * 1000);
    // The fixture's goods are on the high-risk HS list, so OVERDUE brings HIGH_RISK_GOODS.
    let mut rules = Vec::new();
    for _ in 0..2 {
        let msg = receive(&mut ws).await;
        assert_eq!(msg["type"], json!("next"), "{msg}");
        let signal = &msg["payload"]["data"]["fraudSignalRaised"];
        assert_eq!(signal["mrn"], json!(mrn));
        assert_eq!(signal["open"], json!(true));
        rules.push(signal["rule"].as_str().unwrap().to_owned());
    }
    rules.sort();
    assert_eq!(rules, ["HIGH_RISK_GOODS", "OVERDUE"]);

    let data = server.data(&query, json!({})).await;
    assert!(data["riskScore"].as_u64().unwrap() > 0, "{data}");
    let open: Vec<&str> = data["fraudSignals"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"]["rule"].as_str().unwrap())
        .collect();
    assert_eq!(open, ["HIGH_RISK_GOODS", "OVERDUE"]);
    let _ = ws.close(None).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscription_receives_movement_updates_over_a_websocket() {
    let server = Server::start().await;
    let journey = fixtures::journey(base(), 1);
    let mrn = journey.mrn.to_string();

    let mut ws = subscribe(
        &server,
        "subscription($mrn: String) { movementUpdated(mrn: $mrn) { mrn position eventType status } }",
        json!({ "mrn": mrn }),
    )
    .await;

    let registration = server.post(&journey.guarantee_registration).await;
    let declaration = server.post(&journey.declaration).await;
    let release = server.post(&journey.release).await;

    let mut updates = Vec::new();
    while updates.len() < 2 {
        let msg = receive(&mut ws).await;
        assert_eq!(msg["type"], json!("next"), "{msg}");
        assert_eq!(msg["id"], json!("1"));
        updates.push(msg["payload"]["data"]["movementUpdated"].clone());
    }
    // The guarantee registration touches no movement, so it publishes nothing here.
    assert!(registration.iter().all(|p| *p < declaration[0]));
    assert_eq!(updates[0]["mrn"], json!(mrn));
    assert_eq!(updates[0]["status"], json!("DECLARED"));
    assert_eq!(updates[0]["eventType"], json!("TransitDeclared"));
    assert!(declaration.contains(&updates[0]["position"].as_u64().unwrap()));
    assert_eq!(updates[1]["status"], json!("RELEASED"));
    assert!(release.contains(&updates[1]["position"].as_u64().unwrap()));

    ws.send(text(json!({ "id": "1", "type": "complete" })))
        .await
        .unwrap();
    let _ = ws.close(None).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deep_complex_and_oversized_queries_are_refused() {
    let server = Server::start().await;

    // Depth: introspection nests as deep as a client likes.
    let deep = "{ __schema { types { fields { type { ofType { ofType { ofType { ofType { ofType { ofType { ofType { ofType { ofType { name } } } } } } } } } } } } } }";
    let body = server.gql(deep, json!({})).await;
    let message = body["errors"][0]["message"].as_str().unwrap();
    assert!(message.contains("nested too deep"), "{body}");
    assert!(body.get("data").is_none_or(Value::is_null));

    // Complexity: a full page times a wide selection.
    let wide = r#"{ movements(first: 100) { edges { cursor node {
        mrn status listingPosition declaredAt releasedAt arrivedAt dischargedAt timeLimit
        actualTransitOffices actualDestinationOffices countriesOfRouting corridor countryPair
        hsCodes grossMassGrams packages guarantee details riskScore
        holder { id name country } carrier { id name country }
    } } } }"#;
    let body = server.gql(wide, json!({})).await;
    let message = body["errors"][0]["message"].as_str().unwrap();
    assert!(message.contains("too complex"), "{body}");

    // The same selection on a small page is fine.
    let small = wide.replace("first: 100", "first: 5");
    let body = server.gql(&small, json!({})).await;
    assert!(body.get("errors").is_none(), "{body}");

    // Page size.
    let body = server
        .gql("{ movements(first: 101) { edges { cursor } } }", json!({}))
        .await;
    let message = body["errors"][0]["message"].as_str().unwrap();
    assert!(message.contains("at most 100"), "{body}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graphiql_is_served_on_get() {
    let server = Server::start().await;
    let r = server
        .client
        .get(format!("http://{}/graphql", server.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let html = r.text().await.unwrap();
    assert!(html.to_lowercase().contains("graphiql"));
    assert!(html.contains("/graphql/ws"));
    server.stop().await;
}
