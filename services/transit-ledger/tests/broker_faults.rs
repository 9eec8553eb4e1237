//! The broker goes away in the middle of a stream of messages and comes back: the gateway and
//! the producer reconnect, every message sent is recorded exactly once (a message whose ack
//! was lost is redelivered and recognised as a duplicate), and the fan-out resumes from its
//! checkpoint. This test stops the shared broker, so it lives alone in its test binary.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashSet;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use broker_tests::{connect_stomp, ensure_broker, repo_root, send_text, BrokerAddrs};
use common::{broker_credentials, dev_registry, dev_signature};
use ledger_store::file::{FileStore, FileStoreConfig};
use ledger_store::{Clock, EventStore, SystemClock};
use tokio::sync::oneshot;
use transit_contract::fixtures;
use transit_contract::ids::{CountryCode, Timestamp};
use transit_ledger::broker::BrokerConfig;

const MESSAGES: u32 = 300;

fn broker_script(action: &str) {
    let out = Command::new("bash")
        .arg(repo_root().join("ops/activemq.sh"))
        .arg(action)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ops/activemq.sh {action}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Sends one signed message, reconnecting and resending until the broker confirms it. A resend
/// of a message the broker had in fact stored is a duplicate, which the ledger must absorb.
async fn send_until_stored(
    addrs: &BrokerAddrs,
    queue: &str,
    (body, signature): &(String, String),
) -> u32 {
    let mut attempts = 0;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        attempts += 1;
        let sent = async {
            // Togo's national system, sending to its own inbound queue.
            let mut conn = connect_stomp(addrs, "tg").await?;
            let headers = [(transit_auth::BROKER_PROPERTY, signature.as_str())];
            send_text(&mut conn, queue, &headers, body).await
        }
        .await;
        if sent.is_ok() {
            return attempts;
        }
        assert!(Instant::now() < deadline, "broker never came back");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_restart_mid_stream_loses_nothing_and_doubles_nothing() {
    let addrs = ensure_broker().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(FileStore::open(FileStoreConfig::new(dir.path())).unwrap());
    let mut config = BrokerConfig::new(
        addrs.stomp,
        vec!["TG".parse::<CountryCode>().unwrap()],
        broker_credentials(),
    );
    config.queue_suffix = format!(".test-{}", uuid::Uuid::new_v4().simple());
    let queue = config.inbound_queue(&"TG".parse().unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let served = store.clone();
    let broker = Arc::new(config);
    let options = transit_ledger::cli::ServeOptions {
        registry: Some(dev_registry()),
        broker: Some(broker),
        ..Default::default()
    };
    let node = tokio::spawn(async move {
        transit_ledger::cli::serve_with(listener, served, clock, options, async {
            let _ = stopped.await;
        })
        .await
        .unwrap();
    });
    let base = Timestamp::from_unix_millis(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64,
    )
    .unwrap();
    // Guarantee registrations: one event each, so the log counts messages exactly.
    let bodies: Vec<(String, String)> = (0..MESSAGES)
        .map(|i| {
            let m = fixtures::journey(base, 1000 + i).guarantee_registration;
            let xml = String::from_utf8(transit_xml::encode_inbound(&m)).unwrap();
            (xml, dev_signature(&m))
        })
        .collect();
    let mut resends = 0;
    for (i, body) in bodies.iter().enumerate() {
        if i == MESSAGES as usize / 3 {
            broker_script("stop");
            // Messages sent while it is down wait in the producer's retry loop.
            let restart = tokio::task::spawn_blocking(|| {
                std::thread::sleep(Duration::from_millis(1500));
                broker_script("start");
            });
            resends += send_until_stored(&addrs, &queue, body).await - 1;
            restart.await.unwrap();
            continue;
        }
        resends += send_until_stored(&addrs, &queue, body).await - 1;
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if store.head() >= u64::from(MESSAGES) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "only {} of {MESSAGES} recorded",
            store.head()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Give any redelivery in flight the time to arrive, then count.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let events = store.read_all(0, 4096).await.unwrap();
    assert_eq!(events.len(), MESSAGES as usize, "count in = count recorded");
    let streams: HashSet<_> = events.iter().map(|e| e.stream.to_string()).collect();
    assert_eq!(
        streams.len(),
        MESSAGES as usize,
        "no message recorded twice"
    );
    eprintln!("broker restart: {MESSAGES} messages recorded once each ({resends} resends by the producer)");
    let _ = stop.send(());
    node.await.unwrap();
}
