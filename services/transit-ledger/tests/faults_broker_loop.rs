//! The broker loop (fault profile, `ops/faults.sh`): the real `serve --broker` records signed
//! XML journeys that Togo's and Burkina Faso's national systems (broker users `tg` and `bf`)
//! send over STOMP with receipts, while the shared ActiveMQ broker is stopped and started
//! again (`ops/activemq.sh stop`, `start`) several times under that load. The producers
//! reconnect and resend every message they got no receipt for, under the same message id;
//! the gateway and the fan-out dispatcher reconnect on their own. At the end every message
//! the broker confirmed is recorded exactly once and nothing else is (read offline from the
//! log), the inbound queues are empty, the error and dead-letter queues hold nothing (the
//! traffic is valid), `verify` finds the log intact, the served views equal a rebuild, and
//! every office heard of every movement concerning it at least once (the fan-out is
//! at-least-once: copies are counted and reported, not refused).
//!
//! Each journey (`transit_contract::fixtures::journey`, signed with the development keys) is
//! sent one message at a time, the next one only once the previous one is recorded (the test
//! follows the log over HTTP): its messages come from two countries' queues, which the broker
//! does not order between them, and a national system would not report an arrival before the
//! release either. Many journeys run at once, which is the load.
//!
//! The broker is restarted when a seeded share of the traffic has been confirmed, so every
//! restart lands while messages are in flight; right before each stop a burst of independent
//! guarantee registrations goes out with one receipt, so that the broker also stops with a
//! backlog confirmed but not yet recorded, some of it delivered to the gateway and not yet
//! acknowledged. It restarts the broker every other broker test shares, so the target has
//! `test = false` and runs alone from `ops/faults.sh`; a guard starts the broker again if
//! the test fails with it stopped.
//!
//! `FAULT_BROKER_RESTARTS` (default 3), `FAULT_BROKER_JOURNEYS` (default 100, 8 messages
//! each), `FAULT_BROKER_PRODUCERS` (journeys in flight at once, default 12),
//! `FAULT_BROKER_BURST` (registrations sent right before each stop, default 50);
//! `FAULT_BROKER_SEED` replays the restart points and pauses (the broker's timing is its own).
#![allow(clippy::unwrap_used)]

mod common;
mod faults;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_stomp::client::{ClientTransport, Subscriber};
use async_stomp::{AckMode, FromServer};
use broker_tests::{connect_stomp, ensure_broker, send_text, BrokerAddrs, SILENCE_TIMEOUT};
use faults::{env_u64, RecordedTail, Service};
use futures::{SinkExt as _, StreamExt as _};
use parking_lot::Mutex;
use rand::{Rng, SeedableRng};
use transit_contract::fixtures;
use transit_contract::ids::{CountryCode, OfficeCode, Timestamp};
use transit_contract::messages::InboundMessage;
use transit_ledger::broker::BrokerConfig;

/// Messages of one fixture journey.
const JOURNEY_MESSAGES: usize = 8;
/// Notifications the fan-out owes for one journey: two anticipated transit records and an
/// anticipated arrival record on release, a crossing notification per border crossing and an
/// arrival advice to departure, and three write-offs on discharge.
const JOURNEY_NOTIFICATIONS: usize = 9;
/// Longest a producer keeps trying to get one message confirmed (broker down included).
const SEND_WAIT: Duration = Duration::from_secs(120);
/// Longest wait for a confirmed message to be recorded (a broker restart and the gateway's
/// reconnection back-off included).
const RECORD_WAIT: Duration = Duration::from_secs(120);
/// Pause between two attempts of a producer after a failure.
const RETRY_PAUSE: Duration = Duration::from_millis(150);
/// Longest wait for the fan-out to reach every office after the traffic.
const FANOUT_WAIT: Duration = Duration::from_secs(90);
/// Serial of the first journey whose guarantee registration goes out in a burst (the journeys
/// sent whole count from 1).
const BURST_SERIAL_FIRST: u32 = 900_000;

/// What the producers did, shared.
#[derive(Default)]
struct Book {
    /// Messages confirmed by a RECEIPT.
    receipted: AtomicU64,
    /// SEND frames written (first sends and resends).
    sends: AtomicU64,
    /// Sends that got no receipt (connection lost, broker gone): the message is resent.
    failed_sends: AtomicU64,
    /// Messages sent more than once.
    resent_messages: AtomicU64,
    /// Connections opened (the first ones included) and refused.
    connects: AtomicU64,
    failed_connects: AtomicU64,
    /// Every message id ever sent, and those confirmed.
    sent_ids: Mutex<HashSet<String>>,
    receipted_ids: Mutex<Vec<String>>,
}

/// One message as the national system sends it.
struct Outgoing {
    id: String,
    login: String,
    queue: String,
    headers: Vec<(String, String)>,
    body: String,
}

/// Message `m` as its sender's national system sends it: XML, signed with the development
/// key of its country, to its country's inbound queue.
fn outgoing(config: &BrokerConfig, m: &InboundMessage) -> Outgoing {
    Outgoing {
        id: m.message_id.to_string(),
        login: m.sender.country.as_str().to_ascii_lowercase(),
        queue: config.inbound_queue(&m.sender.country),
        headers: vec![
            ("type".to_owned(), m.kind().to_owned()),
            ("transitMessageId".to_owned(), m.message_id.to_string()),
            (
                "transitSenderCountry".to_owned(),
                m.sender.country.to_string(),
            ),
            (
                "transitSenderOffice".to_owned(),
                m.sender.office.to_string(),
            ),
            (
                transit_auth::BROKER_PROPERTY.to_owned(),
                common::dev_signature(m),
            ),
        ],
        body: String::from_utf8(transit_xml::encode_inbound(m)).unwrap(),
    }
}

/// The messages of journey `serial`, in order.
fn journey_messages(config: &BrokerConfig, base: Timestamp, serial: u32) -> Vec<Outgoing> {
    fixtures::journey(base, serial)
        .messages()
        .iter()
        .map(|m| outgoing(config, m))
        .collect()
}

/// Sends the guarantee registrations of journeys `serials` (Togo's, independent of each
/// other) back to back, with one receipt for the lot, resending the lot until the broker
/// confirms it: a backlog that is on the broker, not yet recorded, when it stops.
async fn burst(
    addrs: BrokerAddrs,
    config: &BrokerConfig,
    base: Timestamp,
    serials: std::ops::Range<u32>,
    book: &Book,
) -> Result<(), String> {
    let messages: Vec<Outgoing> = serials
        .map(|s| outgoing(config, &fixtures::journey(base, s).guarantee_registration))
        .collect();
    let Some(login) = messages.first().map(|m| m.login.clone()) else {
        return Ok(());
    };
    let credentials = transit_ledger::broker::BrokerCredentials::from_credentials_file(
        &broker_tests::credentials_file(),
        &login,
    )
    .map_err(|e| e.to_string())?;
    let deadline = Instant::now() + SEND_WAIT;
    let mut attempts = 0;
    loop {
        attempts += 1;
        book.connects.fetch_add(1, Ordering::Relaxed);
        let sent = async {
            let mut publisher =
                transit_ledger::broker::Publisher::connect(addrs.stomp, &credentials).await?;
            {
                let mut sent_ids = book.sent_ids.lock();
                sent_ids.extend(messages.iter().map(|m| m.id.clone()));
            }
            book.sends
                .fetch_add(messages.len() as u64, Ordering::Relaxed);
            publisher
                .send_batch(
                    messages
                        .iter()
                        .map(|m| transit_ledger::broker::OutgoingText {
                            queue: m.queue.clone(),
                            headers: m.headers.clone(),
                            body: m.body.clone().into_bytes(),
                        })
                        .collect(),
                )
                .await
        }
        .await;
        match sent {
            Ok(()) => break,
            Err(e) if Instant::now() < deadline => {
                book.failed_sends
                    .fetch_add(messages.len() as u64, Ordering::Relaxed);
                eprintln!("burst: attempt {attempts} failed: {e}");
                tokio::time::sleep(RETRY_PAUSE).await;
            }
            Err(e) => {
                return Err(format!(
                    "burst not confirmed after {attempts} attempts: {e}"
                ))
            }
        }
    }
    if attempts > 1 {
        book.resent_messages
            .fetch_add(messages.len() as u64, Ordering::Relaxed);
    }
    book.receipted_ids
        .lock()
        .extend(messages.iter().map(|m| m.id.clone()));
    book.receipted
        .fetch_add(messages.len() as u64, Ordering::Relaxed);
    Ok(())
}

/// A national systems' sender: one connection per broker user, made again after a failure.
struct Producer {
    addrs: BrokerAddrs,
    conns: HashMap<String, ClientTransport>,
}

impl Producer {
    /// Sends `m` until the broker confirms it, reconnecting as needed; a resend carries the
    /// same message id, so that a message stored whose receipt was lost is a duplicate.
    async fn send_until_receipted(&mut self, m: &Outgoing, book: &Book) -> Result<(), String> {
        let deadline = Instant::now() + SEND_WAIT;
        let mut attempts = 0u32;
        let mut last_error = String::new();
        while Instant::now() < deadline {
            if !self.conns.contains_key(&m.login) {
                book.connects.fetch_add(1, Ordering::Relaxed);
                match connect_stomp(&self.addrs, &m.login).await {
                    Ok(conn) => {
                        self.conns.insert(m.login.clone(), conn);
                    }
                    Err(e) => {
                        book.failed_connects.fetch_add(1, Ordering::Relaxed);
                        last_error = format!("connect: {e:#}");
                        tokio::time::sleep(RETRY_PAUSE).await;
                        continue;
                    }
                }
            }
            let conn = self.conns.get_mut(&m.login).unwrap();
            attempts += 1;
            if attempts == 2 {
                book.resent_messages.fetch_add(1, Ordering::Relaxed);
            }
            book.sent_ids.lock().insert(m.id.clone());
            book.sends.fetch_add(1, Ordering::Relaxed);
            let headers: Vec<(&str, &str)> = m
                .headers
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            match send_text(conn, &m.queue, &headers, &m.body).await {
                Ok(()) => {
                    book.receipted_ids.lock().push(m.id.clone());
                    book.receipted.fetch_add(1, Ordering::Relaxed);
                    return Ok(());
                }
                Err(e) => {
                    book.failed_sends.fetch_add(1, Ordering::Relaxed);
                    last_error = format!("send: {e:#}");
                    self.conns.remove(&m.login);
                    tokio::time::sleep(RETRY_PAUSE).await;
                }
            }
        }
        Err(format!(
            "message {} not confirmed within {SEND_WAIT:?} ({attempts} sends): {last_error}",
            m.id
        ))
    }
}

/// One producer: takes journeys from `next` until `journeys` are taken, and sends each one
/// message at a time, each once the previous one is recorded.
#[allow(clippy::too_many_arguments)]
async fn produce(
    addrs: BrokerAddrs,
    config: Arc<BrokerConfig>,
    base: Timestamp,
    next: Arc<AtomicU64>,
    journeys: u64,
    book: Arc<Book>,
    tail: Arc<RecordedTail>,
) -> Result<(), String> {
    let mut producer = Producer {
        addrs,
        conns: HashMap::new(),
    };
    loop {
        let j = next.fetch_add(1, Ordering::Relaxed);
        if j >= journeys {
            return Ok(());
        }
        for m in journey_messages(&config, base, 1 + j as u32) {
            producer.send_until_receipted(&m, &book).await?;
            if !tail.wait_recorded(&m.id, RECORD_WAIT).await {
                return Err(format!(
                    "message {} was confirmed by the broker but not recorded within {RECORD_WAIT:?}",
                    m.id
                ));
            }
        }
    }
}

/// What the offices' queues delivered.
#[derive(Default)]
struct Fanout {
    /// Copies received of each notification, by (queue, notification id).
    copies: HashMap<(String, String), usize>,
    /// For each release (by message id), the office queues that got its anticipated record.
    releases: HashMap<String, BTreeSet<String>>,
    /// Notifications received by type (copies included).
    kinds: BTreeMap<String, usize>,
    /// When the last notification arrived.
    last: Option<Instant>,
}

/// Reads (auto-acknowledged) the office queues of `offices` as broker user `login` into
/// `fanout` until `done` says everything expected arrived and the queues have been silent for
/// [`SILENCE_TIMEOUT`], or [`FANOUT_WAIT`] passes.
async fn drain_offices(
    addrs: BrokerAddrs,
    login: &str,
    queues: Vec<String>,
    fanout: Arc<Mutex<Fanout>>,
    done: impl Fn(&Fanout) -> bool,
) -> Result<(), String> {
    let mut conn = connect_stomp(&addrs, login)
        .await
        .map_err(|e| format!("{e:#}"))?;
    for (i, queue) in queues.iter().enumerate() {
        // No receipt: a MESSAGE of the first subscription may arrive before it.
        let frame = Subscriber::builder()
            .destination(transit_ledger::broker::destination(queue))
            .id(format!("o-{i}"))
            .ack(AckMode::Auto)
            .subscribe();
        conn.send(frame).await.map_err(|e| e.to_string())?;
    }
    let deadline = Instant::now() + FANOUT_WAIT;
    loop {
        match tokio::time::timeout(SILENCE_TIMEOUT, conn.next()).await {
            Err(_) => {
                let fanout = fanout.lock();
                let quiet = fanout
                    .last
                    .is_none_or(|last| last.elapsed() >= SILENCE_TIMEOUT);
                if (done(&fanout) && quiet) || Instant::now() > deadline {
                    break;
                }
            }
            Ok(None) => return Err(format!("{login}: the broker closed the connection")),
            Ok(Some(Err(e))) => return Err(format!("{login}: {e}")),
            Ok(Some(Ok(frame))) => match frame.content {
                FromServer::Message {
                    destination,
                    headers,
                    ..
                } => {
                    let header = |name: &str| {
                        headers
                            .iter()
                            .find(|(k, _)| k == name)
                            .map(|(_, v)| v.clone())
                            .unwrap_or_default()
                    };
                    let queue = destination
                        .strip_prefix("/queue/")
                        .unwrap_or(&destination)
                        .to_owned();
                    let kind = header("type");
                    let mut fanout = fanout.lock();
                    *fanout
                        .copies
                        .entry((queue.clone(), header("transitMessageId")))
                        .or_default() += 1;
                    if kind == "AnticipatedTransitRecord" || kind == "AnticipatedArrivalRecord" {
                        fanout
                            .releases
                            .entry(header("correlation-id"))
                            .or_default()
                            .insert(queue);
                    }
                    *fanout.kinds.entry(kind).or_default() += 1;
                    fanout.last = Some(Instant::now());
                }
                FromServer::Error { message, .. } => {
                    return Err(format!("{login}: broker ERROR {message:?}"))
                }
                _ => {}
            },
        }
    }
    let _ = broker_tests::disconnect_stomp(&mut conn).await;
    Ok(())
}

/// Subscribes as `login` to `queues` (client acknowledgement, nothing acknowledged, so
/// nothing is taken away) and fails if any message arrives within [`SILENCE_TIMEOUT`].
async fn assert_empty(addrs: &BrokerAddrs, login: &str, queues: &[String]) {
    let mut conn = connect_stomp(addrs, login).await.unwrap();
    for (i, queue) in queues.iter().enumerate() {
        let frame = Subscriber::builder()
            .destination(transit_ledger::broker::destination(queue))
            .id(format!("e-{i}"))
            .ack(AckMode::ClientIndividual)
            .subscribe();
        conn.send(frame).await.unwrap();
    }
    if let Ok(Some(frame)) = tokio::time::timeout(SILENCE_TIMEOUT, conn.next()).await {
        match frame.unwrap().content {
            FromServer::Message {
                destination,
                headers,
                body,
                ..
            } => panic!(
                "{destination} is not empty: {headers:?} {}",
                String::from_utf8_lossy(&body.unwrap_or_default())
            ),
            other => panic!("reading {queues:?} as {login}: {other:?}"),
        }
    }
    let _ = broker_tests::disconnect_stomp(&mut conn).await;
}

/// The last lines of the service's log, for a failure message.
fn log_tail(log: &std::path::Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().rev().take(40).collect();
    lines.into_iter().rev().collect::<Vec<_>>().join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_restarts_under_load_lose_and_double_nothing() {
    let started = Instant::now();
    let restarts = env_u64("FAULT_BROKER_RESTARTS", 3);
    let journeys = env_u64("FAULT_BROKER_JOURNEYS", 100).max(1);
    let producers = env_u64("FAULT_BROKER_PRODUCERS", 12).max(1);
    let burst_size = env_u64("FAULT_BROKER_BURST", 50);
    assert!(
        journeys < u64::from(BURST_SERIAL_FIRST),
        "at most {BURST_SERIAL_FIRST} journeys"
    );
    let seed = faults::seed("FAULT_BROKER_SEED");
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let addrs = ensure_broker().await.unwrap();
    // From here on, whatever happens, the broker is left running.
    let _guard = faults::BrokerLeftRunning;

    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let log = dir.path().join("serve.log");
    let suffix = format!(".test-{}", uuid::Uuid::new_v4().simple());
    let countries: Vec<CountryCode> = vec!["TG".parse().unwrap(), "BF".parse().unwrap()];
    let mut config =
        BrokerConfig::new(addrs.stomp, countries.clone(), common::broker_credentials());
    config.queue_suffix = suffix.clone();
    let config = Arc::new(config);
    // The ledger's password from the broker's own credentials file, in a file of its own.
    let password_file = dir.path().join("broker-password");
    std::fs::write(
        &password_file,
        common::broker_credentials().passcode.expose(),
    )
    .unwrap();
    let stomp = addrs.stomp.to_string();
    let service = Service::start(
        &data,
        &log,
        &[
            "--broker",
            &stomp,
            "--queue-suffix",
            &suffix,
            "--countries",
            "TG,BF",
            "--broker-password-file",
            password_file.to_str().unwrap(),
        ],
    )
    .await;
    let total = journeys * JOURNEY_MESSAGES as u64;
    eprintln!(
        "broker loop: {restarts} broker restarts, {journeys} journeys ({total} messages), {producers} producers, bursts of {burst_size} before each stop, queues *{suffix}"
    );

    let tail = Arc::new(RecordedTail::start(&service.base));
    let book = Arc::new(Book::default());
    let base_time = Timestamp::from_unix_millis(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64,
    )
    .unwrap();
    let next = Arc::new(AtomicU64::new(0));
    let workers: Vec<_> = (0..producers)
        .map(|_| {
            tokio::spawn(produce(
                addrs,
                config.clone(),
                base_time,
                next.clone(),
                journeys,
                book.clone(),
                tail.clone(),
            ))
        })
        .collect();

    // The restarts, each once a seeded share of the traffic is confirmed: the i-th near
    // (i + 1) / (restarts + 1) of it, so that each one lands under load.
    let span = total / (restarts + 1);
    let mut report = Vec::new();
    let mut under_load = 0;
    let mut burst_serial = BURST_SERIAL_FIRST;
    for i in 0..restarts {
        let jitter = rng.gen_range(0..=span / 2) as i64 - (span / 4) as i64;
        let threshold = ((span * (i + 1)) as i64 + jitter).max(1) as u64;
        let down = Duration::from_millis(rng.gen_range(0..1500));
        let bursts_sent = u64::from(burst_serial - BURST_SERIAL_FIRST);
        while book.receipted.load(Ordering::Relaxed) - bursts_sent < threshold
            && !workers.iter().all(|w| w.is_finished())
        {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        if workers.iter().all(|w| w.is_finished()) {
            break;
        }
        under_load += 1;
        // A backlog on the broker as it stops: confirmed, mostly not recorded yet.
        let serials = burst_serial..burst_serial + burst_size as u32;
        burst_serial = serials.end;
        burst(addrs, &config, base_time, serials, &book)
            .await
            .unwrap();
        let receipted =
            book.receipted.load(Ordering::Relaxed) - u64::from(burst_serial - BURST_SERIAL_FIRST);
        let unrecorded = book
            .receipted
            .load(Ordering::Relaxed)
            .saturating_sub(tail.recorded() as u64);
        let t = Instant::now();
        tokio::task::spawn_blocking(|| faults::activemq("stop"))
            .await
            .unwrap()
            .unwrap();
        let stop_s = t.elapsed().as_secs_f64();
        tokio::time::sleep(down).await;
        let t = Instant::now();
        tokio::task::spawn_blocking(|| faults::activemq("start"))
            .await
            .unwrap()
            .unwrap();
        let start_s = t.elapsed().as_secs_f64();
        eprintln!(
            "restart {i}: at {receipted} of {total} journey messages confirmed ({unrecorded} confirmed, not yet recorded, as it stops); stop {stop_s:.1} s, down {} ms, start {start_s:.1} s",
            down.as_millis()
        );
        report.push((stop_s, start_s));
    }

    // The rest of the traffic goes through, every message recorded as it goes.
    for w in workers {
        if let Err(e) = w.await.unwrap() {
            panic!("{e}; the service's log ends:\n{}", log_tail(&log));
        }
    }
    let total = total + u64::from(burst_serial - BURST_SERIAL_FIRST);
    assert_eq!(book.receipted.load(Ordering::Relaxed), total);
    let receipted = book.receipted_ids.lock().clone();
    for id in &receipted {
        assert!(
            tail.wait_recorded(id, RECORD_WAIT).await,
            "message {id} was confirmed by the broker but not recorded within {RECORD_WAIT:?}; the service's log ends:\n{}",
            log_tail(&log)
        );
    }
    let traffic_s = started.elapsed().as_secs_f64();

    // The fan-out: every office hears of every movement concerning it, at least once.
    let office = |code: &str| config.office_queue(&code.parse::<OfficeCode>().unwrap());
    let release_ids: Vec<String> = (0..journeys)
        .map(|j| {
            fixtures::journey(base_time, 1 + j as u32)
                .release
                .message_id
                .to_string()
        })
        .collect();
    let release_offices: BTreeSet<String> = [
        fixtures::CINKASSE_TG,
        fixtures::CINKASSE_BF,
        fixtures::OUAGADOUGOU,
    ]
    .into_iter()
    .map(office)
    .collect();
    let expected_notifications = journeys as usize * JOURNEY_NOTIFICATIONS;
    let fanout = Arc::new(Mutex::new(Fanout::default()));
    let done = {
        let (release_ids, release_offices) = (release_ids.clone(), release_offices.clone());
        move |f: &Fanout| {
            f.copies.len() >= expected_notifications
                && release_ids
                    .iter()
                    .all(|r| f.releases.get(r) == Some(&release_offices))
        }
    };
    let t = Instant::now();
    let (tg, bf) = tokio::join!(
        drain_offices(
            addrs,
            "tg",
            vec![office(fixtures::LOME_PORT), office(fixtures::CINKASSE_TG)],
            fanout.clone(),
            done.clone(),
        ),
        drain_offices(
            addrs,
            "bf",
            vec![office(fixtures::CINKASSE_BF), office(fixtures::OUAGADOUGOU)],
            fanout.clone(),
            done.clone(),
        ),
    );
    tg.unwrap();
    bf.unwrap();
    let fanout_s = t.elapsed().as_secs_f64();
    let (distinct, copies, kinds) = {
        let f = fanout.lock();
        let missing: Vec<_> = release_ids
            .iter()
            .filter(|r| f.releases.get(*r) != Some(&release_offices))
            .map(|r| (r, f.releases.get(r)))
            .take(5)
            .collect();
        assert!(
            missing.is_empty(),
            "releases whose anticipated records did not reach all of {release_offices:?}, e.g. {missing:?}; the service's log ends:\n{}",
            log_tail(&log)
        );
        let copies: usize = f.copies.values().sum();
        (f.copies.len(), copies, f.kinds.clone())
    };
    assert_eq!(
        distinct, expected_notifications,
        "distinct notifications (by office queue and id): {kinds:?}"
    );

    // What the gateway and the dispatcher counted, and the views, before the service stops.
    let metrics = faults::metrics_text(&service.base).await;
    let m = |name: &str, labels: &[(&str, &str)]| faults::metric_sum(&metrics, name, labels) as u64;
    let gateway_received = m("transit_gateway_received_total", &[]);
    let gateway_recorded = m("transit_gateway_recorded_total", &[("duplicate", "false")]);
    let gateway_duplicates = m("transit_gateway_recorded_total", &[("duplicate", "true")]);
    let gateway_refused = m("transit_gateway_refused_total", &[]);
    let published = m("transit_dispatch_published_total", &[]);
    let publish_failures = m("transit_dispatch_publish_failures_total", &[]);
    let client = reqwest::Client::new();
    let head = client
        .get(format!("{}/v1/events?from=0&limit=1", service.base))
        .bearer_auth(common::auditor_token())
        .send()
        .await
        .unwrap()
        .json::<serde_json::Value>()
        .await
        .unwrap()["head"]
        .as_u64()
        .unwrap();
    let served = service.view_hashes_at(&client, head).await;
    drop(tail);
    service.terminate();

    // Nothing left behind on the broker: the inbound queues drained (read as the ledger, which
    // alone may), no error replies and no dead letters (read as each country).
    assert_empty(
        &addrs,
        "ledger",
        &countries
            .iter()
            .map(|c| config.inbound_queue(c))
            .collect::<Vec<_>>(),
    )
    .await;
    for c in &countries {
        let queues = [
            config.error_queue(c),
            transit_ledger::broker::dead_letter_queue(&config.inbound_queue(c)),
        ];
        assert_empty(&addrs, &c.as_str().to_ascii_lowercase(), &queues).await;
    }
    assert_eq!(gateway_refused, 0, "valid traffic refused: {metrics}");

    // The log: every confirmed message exactly once, nothing that was never sent, intact, and
    // the views it rebuilds are the ones served.
    faults::assert_intact(&data, "after the broker loop");
    assert_eq!(faults::replay(&data), served, "served views != rebuild");
    let (recorded, log_head) = faults::recorded_messages(&data).await;
    assert_eq!(log_head, head);
    faults::assert_exactly_once(&recorded, &receipted);
    let sent = book.sent_ids.lock().clone();
    let unsent: Vec<_> = recorded.keys().filter(|id| !sent.contains(*id)).collect();
    assert!(unsent.is_empty(), "recorded but never sent: {unsent:?}");
    assert_eq!(recorded.len() as u64, total, "every message recorded");
    assert_eq!(gateway_recorded, total, "recorded once each by the gateway");
    assert_eq!(under_load, restarts, "every restart landed under load");

    let stop_avg = report.iter().map(|r| r.0).sum::<f64>() / report.len().max(1) as f64;
    let start_avg = report.iter().map(|r| r.1).sum::<f64>() / report.len().max(1) as f64;
    eprintln!(
        "broker loop: seed {seed}, {under_load} broker restarts under load (stop {stop_avg:.1} s, start {start_avg:.1} s on average); {total} messages ({journeys} journeys, {} in bursts) confirmed and recorded once ({head} events); producers: {} sends, {} failed, {} messages resent, {} connections ({} refused); gateway: {gateway_received} deliveries, {gateway_duplicates} answered as duplicates (resends and redeliveries), {gateway_refused} refused; fan-out: {distinct} notifications, {copies} received ({} extra copies), {published} published, {publish_failures} failed batches, by type {kinds:?}; traffic {traffic_s:.1} s, fan-out drained in {fanout_s:.1} s, {:.1} s in all",
        burst_serial - BURST_SERIAL_FIRST,
        book.sends.load(Ordering::Relaxed),
        book.failed_sends.load(Ordering::Relaxed),
        book.resent_messages.load(Ordering::Relaxed),
        book.connects.load(Ordering::Relaxed),
        book.failed_connects.load(Ordering::Relaxed),
        copies - distinct,
        started.elapsed().as_secs_f64()
    );
}
