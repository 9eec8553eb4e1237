//! The interconnection end to end, against the real ActiveMQ broker started by
//! `ops/activemq.sh`: a whole Lomé -> Cinkassé -> Ouagadougou journey sent as XML over STOMP,
//! the events in the ledger, the notifications on each office's queue; duplicates; refusals
//! with functional errors and dead letters, unsigned and badly signed messages among them; and
//! a Java JMS client on both ends. Messages are signed with the development keys and carry the
//! signature in the `transitSignature` property, as a national system would. Everyone
//! authenticates to the broker: the service as `ledger`, each national system as its country's
//! user (`tg`, `bf`), reading only its own offices', error and dead-letter queues.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use broker_tests::{
    ack, connect_stomp, ensure_broker, jms_receive, jms_send, next_message, send_text,
    subscribe_individual, BrokerAddrs, StompMessage,
};
use common::{broker_credentials, dev_registry, dev_signature};
use ledger_store::file::{FileStore, FileStoreConfig};
use ledger_store::{Clock, EventStore, ManualClock, StreamId};
use tempfile::TempDir;
use tokio::sync::oneshot;
use transit_contract::events::{guarantee_stream, movement_stream};
use transit_contract::fixtures;
use transit_contract::ids::{CountryCode, Timestamp};
use transit_contract::messages::InboundMessage;
use transit_contract::messages::Sender;
use transit_ledger::broker::BrokerConfig;

const BASE_MS: i64 = 1_780_000_000_000;
const WAIT: Duration = Duration::from_secs(30);

struct Node {
    store: Arc<FileStore>,
    config: BrokerConfig,
    addrs: BrokerAddrs,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
    _dir: TempDir,
}

impl Node {
    async fn start() -> Self {
        let addrs = ensure_broker().await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(BASE_MS + 60_000));
        let mut store_config = FileStoreConfig::new(dir.path());
        store_config.clock = clock.clone();
        let store = Arc::new(FileStore::open(store_config).unwrap());
        let countries: Vec<CountryCode> = vec!["TG".parse().unwrap(), "BF".parse().unwrap()];
        let mut config = BrokerConfig::new(addrs.stomp, countries, broker_credentials());
        config.queue_suffix = format!(".test-{}", uuid::Uuid::new_v4().simple());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let clock: Arc<dyn Clock> = clock;
        let served_store = store.clone();
        let served_config = Arc::new(config.clone());
        let options = transit_ledger::cli::ServeOptions {
            registry: Some(dev_registry()),
            broker: Some(served_config),
            ..Default::default()
        };
        let task = tokio::spawn(async move {
            transit_ledger::cli::serve_with(listener, served_store, clock, options, async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
        });
        Self {
            store,
            config,
            addrs,
            stop: Some(stop),
            task: Some(task),
            _dir: dir,
        }
    }

    fn inbound(&self, m: &InboundMessage) -> String {
        self.config.inbound_queue(&m.sender.country)
    }

    /// Sends `m` as XML, signed with its sender country's development key.
    async fn send(&self, m: &InboundMessage) {
        self.send_signed(m, Some(&dev_signature(m))).await;
    }

    /// Sends `m` as XML with this `transitSignature` property (or none), as its sender
    /// country's national system.
    async fn send_signed(&self, m: &InboundMessage, signature: Option<&str>) {
        let mut conn = connect_stomp(&self.addrs, &user_of(&m.sender.country))
            .await
            .unwrap();
        let xml = String::from_utf8(transit_xml::encode_inbound(m)).unwrap();
        let mut headers = vec![
            ("transitMessageId", m.message_id.as_str()),
            ("type", m.kind()),
        ];
        if let Some(signature) = signature {
            headers.push((transit_auth::BROKER_PROPERTY, signature));
        }
        send_text(&mut conn, &self.inbound(m), &headers, &xml)
            .await
            .unwrap();
    }

    async fn send_raw(&self, country: &str, body: &str) {
        let mut conn = connect_stomp(&self.addrs, &country.to_ascii_lowercase())
            .await
            .unwrap();
        let queue = self.config.inbound_queue(&country.parse().unwrap());
        send_text(&mut conn, &queue, &[], body).await.unwrap();
    }

    /// Receives (and acknowledges) `n` messages from a queue as broker user `login`.
    async fn receive(&self, login: &str, queue: &str, n: usize) -> Vec<StompMessage> {
        let mut conn = connect_stomp(&self.addrs, login).await.unwrap();
        subscribe_individual(&mut conn, queue, "t").await.unwrap();
        let mut out: Vec<StompMessage> = Vec::new();
        for _ in 0..n {
            let m = next_message(&mut conn, WAIT).await.unwrap_or_else(|e| {
                panic!("waiting on {queue} ({} of {n} so far): {e}", out.len())
            });
            out.push(m);
        }
        // Acknowledge all but the last without a receipt (a prefetched message could arrive
        // while waiting for one); the last one's receipt then covers them all, in order.
        for m in &out[..n - 1] {
            let frame = async_stomp::ToServer::Ack {
                id: m.ack_id().unwrap().to_owned(),
                transaction: None,
            }
            .into();
            futures::SinkExt::send(&mut conn, frame).await.unwrap();
        }
        ack(&mut conn, &out[n - 1]).await.unwrap();
        out
    }

    /// Receives `n` messages from an office's queue, as its country's national system.
    async fn office(&self, office: &str, n: usize) -> Vec<StompMessage> {
        let office: transit_contract::ids::OfficeCode = office.parse().unwrap();
        self.receive(
            &user_of(&office.country()),
            &self.config.office_queue(&office),
            n,
        )
        .await
    }

    async fn stream_types(&self, stream: String) -> Vec<String> {
        let stream = StreamId::new(stream).unwrap();
        self.store
            .read_stream(&stream, 0, 1000)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.event_type)
            .collect()
    }

    /// Waits until the stream has `n` events.
    async fn wait_for(&self, stream: String, n: usize) -> Vec<String> {
        let deadline = Instant::now() + WAIT;
        loop {
            let types = self.stream_types(stream.clone()).await;
            if types.len() >= n {
                return types;
            }
            assert!(
                Instant::now() < deadline,
                "{stream} has {types:?}, waited for {n}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        self.task.take().unwrap().await.unwrap();
    }
}

/// A country's broker user: its code in lower case (`tg`).
fn user_of(country: &CountryCode) -> String {
    country.as_str().to_ascii_lowercase()
}

fn base() -> Timestamp {
    Timestamp::from_unix_millis(BASE_MS).unwrap()
}

fn kinds(messages: &[StompMessage]) -> Vec<String> {
    let mut k: Vec<String> = messages
        .iter()
        .map(|m| m.header("type").unwrap_or_default().to_owned())
        .collect();
    k.sort();
    k
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_journey_over_the_broker_reaches_every_office() {
    let node = Node::start().await;
    let j = fixtures::journey(base(), 21);
    for m in [&j.guarantee_registration, &j.declaration, &j.release] {
        node.send(m).await;
    }
    // The release fans out: each office of transit and the destination learn of the movement.
    let atr_tg = node.office(fixtures::CINKASSE_TG, 1).await;
    let atr_bf = node.office(fixtures::CINKASSE_BF, 1).await;
    let aar = node.office(fixtures::OUAGADOUGOU, 1).await;
    assert_eq!(kinds(&atr_tg), ["AnticipatedTransitRecord"]);
    assert_eq!(kinds(&atr_bf), ["AnticipatedTransitRecord"]);
    assert_eq!(kinds(&aar), ["AnticipatedArrivalRecord"]);
    let record = transit_xml::decode_outbound(&atr_bf[0].body).unwrap();
    let transit_xml::OutboundMessage::AnticipatedTransitRecord(record) = record else {
        panic!("not an anticipated transit record");
    };
    assert_eq!(record.declaration.mrn, j.mrn);
    assert_eq!(
        atr_bf[0].header("correlation-id"),
        Some(j.release.message_id.as_str())
    );
    // The border posts and the destination report back; departure hears of each.
    for m in j.crossings.iter().chain([&j.arrival, &j.control_results]) {
        node.send(m).await;
    }
    let back = node.office(fixtures::LOME_PORT, 3).await;
    assert_eq!(
        kinds(&back),
        [
            "ArrivalAdvice",
            "CrossingNotification",
            "CrossingNotification"
        ]
    );
    // Departure discharges; the offices en route and at destination get the write-off.
    node.send(&j.discharge).await;
    for office in [
        fixtures::CINKASSE_TG,
        fixtures::CINKASSE_BF,
        fixtures::OUAGADOUGOU,
    ] {
        assert_eq!(
            kinds(&node.office(office, 1).await),
            ["WriteOffNotification"]
        );
    }
    let types = node.wait_for(movement_stream(&j.mrn), 8).await;
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
    assert_eq!(
        node.stream_types(guarantee_stream(&j.grn)).await,
        [
            "GuaranteeRegistered",
            "GuaranteeExposureReserved",
            "GuaranteeExposureReleased"
        ]
    );
    // A redelivered or resent release is a duplicate: acknowledged, nothing appended. A later
    // message from the same office shares its lane, so once that one is recorded the
    // duplicate has been handled.
    let head = node.store.head();
    node.send(&j.release).await;
    let next = fixtures::journey(base(), 22);
    node.send(&next.guarantee_registration).await;
    node.wait_for(guarantee_stream(&next.grn), 1).await;
    assert_eq!(
        node.store.head(),
        head + 1,
        "only the new registration was appended"
    );
    assert_eq!(node.stream_types(movement_stream(&j.mrn)).await.len(), 8);
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_messages_get_a_functional_error_and_a_dead_letter_with_the_reason() {
    let node = Node::start().await;
    let tg: CountryCode = "TG".parse().unwrap();
    // Not XML at all.
    node.send_raw("TG", "this is not <xml").await;
    // A DOCTYPE (entity expansion) is refused before anything is expanded.
    node.send_raw(
        "TG",
        "<?xml version=\"1.0\"?><!DOCTYPE x [<!ENTITY a \"aaaa\">]><x>&a;</x>",
    )
    .await;
    // Larger than any message may be.
    let huge = format!("<x>{}</x>", "a".repeat(600 * 1024));
    node.send_raw("TG", &huge).await;
    // Well formed, but the movement does not exist: a domain refusal.
    let j = fixtures::journey(base(), 23);
    node.send(&j.release).await;
    // A Burkinabè message on Togo's queue.
    let bf = fixtures::journey(base(), 24);
    let mut wrong = bf.arrival.clone();
    wrong.sender.country = "BF".parse().unwrap();
    node.send_raw(
        "TG",
        &String::from_utf8(transit_xml::encode_inbound(&wrong)).unwrap(),
    )
    .await;
    let errors = node.receive("tg", &node.config.error_queue(&tg), 5).await;
    let mut codes: Vec<String> = errors
        .iter()
        .map(|m| {
            let reply = transit_xml::decode_outbound(&m.body).unwrap();
            let transit_xml::OutboundMessage::FunctionalError(e) = reply else {
                panic!("not a functional error");
            };
            assert_eq!(m.header("transitRejectionCode"), Some(e.code.as_str()));
            e.code.as_str().to_owned()
        })
        .collect();
    codes.sort();
    assert_eq!(
        codes,
        [
            "MALFORMED",
            "MALFORMED",
            "MALFORMED",
            "UNKNOWN_MOVEMENT",
            "VALIDATION"
        ]
    );
    let dlq = transit_ledger::broker::dead_letter_queue(&node.config.inbound_queue(&tg));
    let dead = node.receive("tg", &dlq, 5).await;
    for m in &dead {
        assert!(
            m.header("transitRejectionCode").is_some(),
            "{:?}",
            m.headers
        );
        assert!(!m
            .header("transitRejectionReason")
            .unwrap_or_default()
            .is_empty());
    }
    assert!(
        dead.iter().any(|m| m.body.len() > 600 * 1024),
        "the oversized original is kept whole in the dead-letter queue"
    );
    assert_eq!(node.store.head(), 0, "nothing was appended");
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_java_jms_client_declares_and_another_receives_the_notification() {
    let node = Node::start().await;
    let j = fixtures::journey(base(), 25);
    let queue = node.inbound(&j.declaration);
    for m in [&j.guarantee_registration, &j.declaration, &j.release] {
        let xml = String::from_utf8(transit_xml::encode_inbound(m)).unwrap();
        let signature = dev_signature(m);
        jms_send(
            &node.addrs,
            &user_of(&m.sender.country),
            &queue,
            &xml,
            &[
                ("JMSType", m.kind()),
                ("transitMessageId", m.message_id.as_str()),
                (transit_auth::BROKER_PROPERTY, &signature),
            ],
        )
        .await
        .unwrap();
    }
    let types = node.wait_for(movement_stream(&j.mrn), 3).await;
    assert_eq!(types[0], "TransitDeclared");
    let office_queue = node
        .config
        .office_queue(&fixtures::CINKASSE_TG.parse().unwrap());
    let received = jms_receive(&node.addrs, "tg", &office_queue, WAIT)
        .await
        .unwrap();
    assert_eq!(received.message_type, "TextMessage");
    assert_eq!(
        received.headers.get("JMSType").map(String::as_str),
        Some("AnticipatedTransitRecord")
    );
    assert!(
        received.properties.contains_key("transitMessageId"),
        "{received:?}"
    );
    assert_eq!(
        received.properties.get("transitMrn").map(String::as_str),
        Some(j.mrn.as_str())
    );
    assert!(received.body.contains("Lomé") || received.body.contains(j.mrn.as_str()));
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crossing_reported_before_the_declaration_reaches_departure_once_it_is_known() {
    let node = Node::start().await;
    let j = fixtures::journey(base(), 26);
    // Burkina Faso's border post records the entry before Togo's declaration reaches the ledger.
    node.send(&j.crossings[1]).await;
    node.wait_for(movement_stream(&j.mrn), 1).await;
    for m in [&j.guarantee_registration, &j.declaration] {
        node.send(m).await;
    }
    let back = node.office(fixtures::LOME_PORT, 1).await;
    assert_eq!(kinds(&back), ["CrossingNotification"]);
    let notice = transit_xml::decode_outbound(&back[0].body).unwrap();
    let transit_xml::OutboundMessage::CrossingNotification(notice) = notice else {
        panic!("not a crossing notification");
    };
    assert_eq!(notice.office_of_transit.as_str(), fixtures::CINKASSE_BF);
    assert!(
        !notice.declared_office,
        "recorded before the declaration: not known as declared"
    );
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsigned_badly_signed_and_forbidden_messages_are_dead_lettered_and_signed_ones_recorded() {
    let node = Node::start().await;
    let tg: CountryCode = "TG".parse().unwrap();
    let j = fixtures::journey(base(), 27);
    // The registration without a signature, then with the signature of another message; both
    // share the registration's lane, so they are judged before the signed one that follows.
    node.send_signed(&j.guarantee_registration, None).await;
    node.send_signed(
        &j.guarantee_registration,
        Some(&dev_signature(&j.declaration)),
    )
    .await;
    for m in [&j.guarantee_registration, &j.declaration, &j.release] {
        node.send(m).await;
    }
    let types = node.wait_for(movement_stream(&j.mrn), 3).await;
    assert_eq!(types[0], "TransitDeclared");
    let head = node.store.head();
    // Togo's system, signed with Togo's key, reports the entry at the Burkinabè side of
    // Cinkassé: authenticated, but not Togo's to record.
    let mut crossing = j.crossings[1].clone();
    crossing.sender = Sender {
        country: tg.clone(),
        office: fixtures::CINKASSE_TG.parse().unwrap(),
    };
    node.send(&crossing).await;
    let errors = node.receive("tg", &node.config.error_queue(&tg), 3).await;
    let mut codes: Vec<String> = errors
        .iter()
        .map(|m| {
            let reply = transit_xml::decode_outbound(&m.body).unwrap();
            let transit_xml::OutboundMessage::FunctionalError(e) = reply else {
                panic!("not a functional error");
            };
            assert_eq!(m.header("transitRejectionCode"), Some(e.code.as_str()));
            assert!(!e.reason.is_empty());
            e.code.as_str().to_owned()
        })
        .collect();
    codes.sort();
    assert_eq!(
        codes,
        ["BAD_SIGNATURE", "FORBIDDEN_OFFICE", "MISSING_SIGNATURE"]
    );
    let dlq = transit_ledger::broker::dead_letter_queue(&node.config.inbound_queue(&tg));
    let dead = node.receive("tg", &dlq, 3).await;
    for m in &dead {
        let code = m.header("transitRejectionCode").unwrap();
        assert!(!m
            .header("transitRejectionReason")
            .unwrap_or_default()
            .is_empty());
        // The original is kept whole, with its signature when it had one.
        assert_eq!(
            m.header(transit_auth::BROKER_PROPERTY).is_some(),
            code != "MISSING_SIGNATURE",
            "{:?}",
            m.headers
        );
    }
    assert_eq!(node.store.head(), head, "nothing appended by the refusals");
    assert_eq!(
        node.stream_types(movement_stream(&j.mrn)).await.len(),
        3,
        "the forbidden crossing was not recorded"
    );
    assert_eq!(
        node.stream_types(guarantee_stream(&j.grn)).await,
        ["GuaranteeRegistered", "GuaranteeExposureReserved"],
        "the signed registration was recorded once"
    );
    node.stop().await;
}
