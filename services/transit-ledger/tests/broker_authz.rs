//! Issue 5's authorization rules over the broker (the HTTP side is `tests/signatures.rs`): a
//! message on its own country's inbound queue, sent by that country's broker user and signed
//! with that country's key, is authenticated three times over, and is still refused when it
//! records what another country's offices did. Each Forbidden code of `transit_rules::authz` is
//! shown refused: a functional error on the sender's error queue, the original dead-lettered
//! with the reason, nothing appended, and the refusal listed by GraphQL `refusedSubmissions`.
//! The service connects as `ledger`; each national system as its own broker user.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use broker_tests::{ack, connect_stomp, ensure_broker, next_message, send_text, StompMessage};
use common::{broker_credentials, dev_registry, dev_signature};
use ledger_store::file::{FileStore, FileStoreConfig};
use ledger_store::{Clock, EventStore, ManualClock, StreamId};
use serde_json::{json, Value};
use tempfile::TempDir;
use tokio::sync::oneshot;
use transit_contract::events::movement_stream;
use transit_contract::fixtures;
use transit_contract::ids::{CountryCode, MessageId, OfficeCode, Timestamp};
use transit_contract::messages::{
    InboundMessage, Incident, IncidentCode, MessageBody, Place, Sender,
};
use transit_ledger::broker::{dead_letter_queue, BrokerConfig};

const BASE_MS: i64 = common::BASE_MS;
const WAIT: Duration = Duration::from_secs(30);

/// The service with the gateway and dispatcher on their own queues, and its HTTP address for
/// GraphQL.
struct Node {
    store: Arc<FileStore>,
    config: BrokerConfig,
    addrs: broker_tests::BrokerAddrs,
    http: std::net::SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
    _dir: TempDir,
}

impl Node {
    async fn start(countries: &[&str]) -> Self {
        let addrs = ensure_broker().await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(BASE_MS + 60_000));
        let mut store_config = FileStoreConfig::new(dir.path());
        store_config.clock = clock.clone();
        let store = Arc::new(FileStore::open(store_config).unwrap());
        let countries = countries.iter().map(|c| c.parse().unwrap()).collect();
        let mut config = BrokerConfig::new(addrs.stomp, countries, broker_credentials());
        config.queue_suffix = format!(".test-{}", uuid::Uuid::new_v4().simple());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let http = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let clock: Arc<dyn Clock> = clock;
        let options = transit_ledger::cli::ServeOptions {
            registry: Some(dev_registry()),
            broker: Some(Arc::new(config.clone())),
            ..Default::default()
        };
        let served = store.clone();
        let task = tokio::spawn(async move {
            transit_ledger::cli::serve_with(listener, served, clock, options, async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
        });
        Self {
            store,
            config,
            addrs,
            http,
            stop: Some(stop),
            task: Some(task),
            _dir: dir,
        }
    }

    /// Sends `m` as XML, signed with its sender country's development key, on its sender
    /// country's inbound queue, as that country's broker user.
    async fn send(&self, m: &InboundMessage) {
        let login = user_of(&m.sender.country);
        let mut conn = connect_stomp(&self.addrs, &login).await.unwrap();
        let xml = String::from_utf8(transit_xml::encode_inbound(m)).unwrap();
        let signature = dev_signature(m);
        let headers = [
            ("transitMessageId", m.message_id.as_str()),
            ("type", m.kind()),
            (transit_auth::BROKER_PROPERTY, signature.as_str()),
        ];
        send_text(
            &mut conn,
            &self.config.inbound_queue(&m.sender.country),
            &headers,
            &xml,
        )
        .await
        .unwrap();
    }

    /// Receives and acknowledges `n` messages from `queue` as broker user `login`.
    async fn receive(&self, login: &str, queue: &str, n: usize) -> Vec<StompMessage> {
        let mut conn = connect_stomp(&self.addrs, login).await.unwrap();
        broker_tests::subscribe_individual(&mut conn, queue, "t")
            .await
            .unwrap();
        let mut out = Vec::new();
        for _ in 0..n {
            let m = next_message(&mut conn, WAIT)
                .await
                .unwrap_or_else(|e| panic!("{queue}: {} of {n} so far: {e:#}", out.len()));
            out.push(m);
        }
        for m in &out {
            ack(&mut conn, m).await.unwrap();
        }
        out
    }

    async fn movement_len(&self, j: &fixtures::Journey) -> usize {
        let stream = StreamId::new(movement_stream(&j.mrn)).unwrap();
        self.store
            .read_stream(&stream, 0, 1000)
            .await
            .unwrap()
            .len()
    }

    async fn wait_movement(&self, j: &fixtures::Journey, n: usize) {
        let deadline = Instant::now() + WAIT;
        while self.movement_len(j).await < n {
            assert!(Instant::now() < deadline, "{} never had {n} events", j.mrn);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn graphql(&self, query: &str, variables: Value) -> Value {
        let body: Value = reqwest::Client::new()
            .post(format!("http://{}/graphql", self.http))
            .json(&json!({ "query": query, "variables": variables }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert!(body.get("errors").is_none(), "{body}");
        body["data"].clone()
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

/// `m` under a fresh message id, sent by `office` (of its own country).
fn resent(m: &InboundMessage, office: &str) -> InboundMessage {
    let office: OfficeCode = office.parse().unwrap();
    let mut m = m.clone();
    m.message_id = uuid::Uuid::new_v4()
        .to_string()
        .parse::<MessageId>()
        .unwrap();
    m.sender = Sender {
        country: office.country(),
        office,
    };
    m
}

/// One refusal the rules must make, and where it is answered.
struct Case {
    /// What the rules refuse.
    what: &'static str,
    message: InboundMessage,
    code: &'static str,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_forbidden_code_is_refused_over_the_broker_dead_lettered_and_listed() {
    let node = Node::start(&["TG", "BF", "CI"]).await;
    let j = fixtures::journey(base(), 701);
    // Togo records its guarantee, declaration and release: the ledger user consumes them, and
    // the release's fan-out leaves for the offices.
    for m in [&j.guarantee_registration, &j.declaration, &j.release] {
        node.send(m).await;
    }
    node.wait_movement(&j, 3).await;
    let head = node.store.head();

    // Togo's national system, as Togo's Cinkassé office, reports the entry at the Burkinabè
    // side of Cinkassé (BFCIN001): the HTTP test's case, over the broker.
    let crossing = resent(&j.crossings[1], fixtures::CINKASSE_TG);
    let MessageBody::BorderCrossing(c) = &crossing.body else {
        panic!("the fixture's second crossing is a BorderCrossing");
    };
    assert_eq!(c.office.as_str(), fixtures::CINKASSE_BF);
    // Burkina Faso discharges Togo's movement: an act of the country of departure.
    let discharge = resent(&j.discharge, fixtures::OUAGADOUGOU);
    // Togo reports the arrival at one of its own offices, but the destination is in Burkina
    // Faso: only the country of destination records an arrival.
    let mut arrival = resent(&j.arrival, fixtures::CINKASSE_TG);
    let MessageBody::ArrivalNotification(a) = &mut arrival.body else {
        panic!("the fixture's arrival is an ArrivalNotification");
    };
    a.office = fixtures::CINKASSE_TG.parse().unwrap();
    // Côte d'Ivoire, off the route Togo -> Burkina Faso, reports an incident.
    let mut incident = resent(&j.arrival, "CIABJ001");
    incident.body = MessageBody::Incident(Incident {
        mrn: j.mrn.clone(),
        code: IncidentCode::SealsBroken,
        place: Place {
            locode: None,
            latitude_e7: None,
            longitude_e7: None,
        },
        occurred_at: base(),
        endorsed_by: None,
        new_seals: Vec::new(),
        new_transport: None,
        description: "seals found broken".to_owned(),
    });
    let cases = [
        Case {
            what: "a crossing at another country's office",
            message: crossing,
            code: "FORBIDDEN_OFFICE",
        },
        Case {
            what: "a discharge by a country other than departure",
            message: discharge,
            code: "NOT_DEPARTURE_COUNTRY",
        },
        Case {
            what: "an arrival recorded outside the country of destination",
            message: arrival,
            code: "NOT_DESTINATION_COUNTRY",
        },
        Case {
            what: "an incident reported by a country off the route",
            message: incident,
            code: "NOT_ROUTE_COUNTRY",
        },
    ];
    for case in &cases {
        node.send(&case.message).await;
    }

    // Each sender hears why on its own error queue, and finds the original in its own
    // dead-letter queue; nobody reads another country's.
    let mut by_country: Vec<(CountryCode, Vec<&Case>)> = Vec::new();
    for case in &cases {
        let country = case.message.sender.country.clone();
        match by_country.iter_mut().find(|(c, _)| *c == country) {
            Some((_, list)) => list.push(case),
            None => by_country.push((country, vec![case])),
        }
    }
    for (country, expected) in &by_country {
        let login = user_of(country);
        let errors = node
            .receive(&login, &node.config.error_queue(country), expected.len())
            .await;
        let dead = node
            .receive(
                &login,
                &dead_letter_queue(&node.config.inbound_queue(country)),
                expected.len(),
            )
            .await;
        for case in expected {
            let id = case.message.message_id.as_str();
            let error = errors
                .iter()
                .find(|m| m.header("correlation-id") == Some(id))
                .unwrap_or_else(|| panic!("{}: no error reply to {id}", case.what));
            assert_eq!(
                error.header("transitRejectionCode"),
                Some(case.code),
                "{}",
                case.what
            );
            let transit_xml::OutboundMessage::FunctionalError(reply) =
                transit_xml::decode_outbound(&error.body).unwrap()
            else {
                panic!("{}: not a functional error", case.what);
            };
            assert_eq!(reply.code.as_str(), case.code, "{}", case.what);
            assert_eq!(
                reply.original_message_id.as_ref().map(|m| m.as_str()),
                Some(id)
            );
            assert!(!reply.reason.is_empty(), "{}", case.what);
            let letter = dead
                .iter()
                .find(|m| m.header("transitMessageId") == Some(id))
                .unwrap_or_else(|| panic!("{}: {id} not dead-lettered", case.what));
            assert_eq!(letter.header("transitRejectionCode"), Some(case.code));
            assert!(!letter
                .header("transitRejectionReason")
                .unwrap_or_default()
                .is_empty());
            // Kept whole and still signed, as sent.
            assert_eq!(
                letter.body,
                transit_xml::encode_inbound(&case.message),
                "{}",
                case.what
            );
            assert_eq!(
                letter.header(transit_auth::BROKER_PROPERTY),
                Some(dev_signature(&case.message).as_str())
            );
        }
    }
    assert_eq!(node.store.head(), head, "nothing appended by the refusals");
    assert_eq!(node.movement_len(&j).await, 3, "the movement is untouched");

    // Analysts and auditors see each refusal, attributed to its sender and its key.
    for case in &cases {
        let data = node
            .graphql(
                "query($code: String) { refusedSubmissions(code: $code) { items { channel code reason senderCountry senderOffice kind mrn keyId } } }",
                json!({ "code": case.code }),
            )
            .await;
        let items = data["refusedSubmissions"]["items"].as_array().unwrap();
        assert_eq!(items.len(), 1, "{}: {data}", case.what);
        let item = &items[0];
        let m = &case.message;
        assert_eq!(item["channel"], "broker", "{item}");
        assert_eq!(item["code"], case.code);
        assert_eq!(item["senderCountry"], m.sender.country.as_str());
        assert_eq!(item["senderOffice"], m.sender.office.as_str());
        assert_eq!(item["kind"], m.kind());
        assert_eq!(item["mrn"], j.mrn.as_str());
        assert_eq!(
            item["keyId"],
            format!("{}-dev-1", user_of(&m.sender.country))
        );
        assert!(!item["reason"].as_str().unwrap().is_empty(), "{item}");
    }
    let crossing_reason = node
        .graphql(
            "{ refusedSubmissions(code: \"FORBIDDEN_OFFICE\") { items { reason } } }",
            json!({}),
        )
        .await;
    assert!(
        crossing_reason.to_string().contains(fixtures::CINKASSE_BF),
        "{crossing_reason}"
    );

    // Burkina Faso records its own crossing, over its own queue: the ledger user at work.
    node.send(&j.crossings[1]).await;
    node.wait_movement(&j, 4).await;
    node.stop().await;
}

/// Reads the child's log lines into `seen` until one contains `wanted` (bounded).
async fn wait_for_log(
    lines: &mut tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStderr>>,
    seen: &mut String,
    wanted: &str,
) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !seen.contains(wanted) {
        let line = tokio::time::timeout_at(deadline, lines.next_line())
            .await
            .unwrap_or_else(|_| panic!("no log line with {wanted:?}; log so far:\n{seen}"))
            .unwrap()
            .unwrap_or_else(|| panic!("the service exited; log:\n{seen}"));
        seen.push_str(&line);
        seen.push('\n');
    }
}

/// `transit-ledger serve --broker` as a developer runs it after `ops/activemq.sh start`: no
/// password given, so it connects as `ledger` with the development credentials and records
/// what Togo sends; with a wrong `TRANSIT_BROKER_PASSWORD` the broker refuses it. Neither
/// password ever reaches the log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_connects_as_ledger_by_default_and_never_logs_a_password() {
    use tokio::io::AsyncBufReadExt as _;

    let addrs = ensure_broker().await.unwrap();
    let suffix = format!(".test-{}", uuid::Uuid::new_v4().simple());
    let ledger_password = broker_credentials().passcode.expose().to_owned();
    let wrong_password = "wrong-Zq8vX2";
    let serve = |dir: &std::path::Path, password: Option<&str>| {
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_transit-ledger"));
        command
            // The development key registry, auth configuration and broker credentials are
            // found relative to the repository root, as for a developer.
            .current_dir(common::repo_root())
            .args(["serve", "--listen", "127.0.0.1:0", "--countries", "TG"])
            .arg("--data-dir")
            .arg(dir)
            .args([
                "--broker",
                &addrs.stomp.to_string(),
                "--queue-suffix",
                &suffix,
            ])
            .env_remove(transit_ledger::broker::PASSWORD_ENV)
            .env_remove("LOG_FORMAT")
            .env("RUST_LOG", "info")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        if let Some(password) = password {
            command.env(transit_ledger::broker::PASSWORD_ENV, password);
        }
        let mut child = command.spawn().unwrap();
        let lines = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
        (child, lines)
    };

    // A wrong password: the gateway is refused, says so, and keeps retrying.
    let dir = tempfile::tempdir().unwrap();
    let (mut child, mut lines) = serve(dir.path(), Some(wrong_password));
    let mut log = String::new();
    wait_for_log(&mut lines, &mut log, "password is invalid").await;
    child.kill().await.unwrap();
    assert!(
        !log.contains(wrong_password),
        "the password was logged:\n{log}"
    );

    // No password given: the development credentials, with a warning saying so.
    let dir = tempfile::tempdir().unwrap();
    let (mut child, mut lines) = serve(dir.path(), None);
    let mut log = String::new();
    wait_for_log(&mut lines, &mut log, "development credentials").await;
    wait_for_log(&mut lines, &mut log, "fan-out dispatching").await;
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let j = fixtures::journey(Timestamp::from_unix_millis(now_ms).unwrap(), 702);
    let queue = format!("transit.TG.in{suffix}");
    let mut tg = connect_stomp(&addrs, "tg").await.unwrap();
    for m in [&j.guarantee_registration, &j.declaration, &j.release] {
        let xml = String::from_utf8(transit_xml::encode_inbound(m)).unwrap();
        let signature = dev_signature(m);
        let headers = [(transit_auth::BROKER_PROPERTY, signature.as_str())];
        send_text(&mut tg, &queue, &headers, &xml).await.unwrap();
    }
    // Recorded, then fanned out: Togo's Cinkassé office hears of the movement.
    let office = format!("transit.TG.{}.out{suffix}", fixtures::CINKASSE_TG);
    let mut office_conn = connect_stomp(&addrs, "tg").await.unwrap();
    broker_tests::subscribe_individual(&mut office_conn, &office, "o")
        .await
        .unwrap();
    let notice = next_message(&mut office_conn, WAIT)
        .await
        .unwrap_or_else(|e| panic!("no notification ({e:#}); service log:\n{log}"));
    assert_eq!(notice.header("type"), Some("AnticipatedTransitRecord"));
    assert_eq!(notice.header("transitMrn"), Some(j.mrn.as_str()));
    ack(&mut office_conn, &notice).await.unwrap();
    child.kill().await.unwrap();
    while let Ok(Some(line)) = lines.next_line().await {
        log.push_str(&line);
        log.push('\n');
    }
    assert!(
        !log.contains(&ledger_password),
        "the password was logged:\n{log}"
    );
}
