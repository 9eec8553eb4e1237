//! Stored views on a real store and a real file system: the runner resumes from its snapshot
//! and ends in the same state as a rebuild from position 0 — after clean stops, after crashes
//! mid-batch (the runner task killed at seeded random points, with torn temporary files left
//! behind), and when the snapshot is damaged or belongs to another log (set aside, rebuilt).
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use ledger_store::file::{FileStore, FileStoreConfig};
use ledger_store::{Clock, EventStore, ManualClock};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use transit_contract::fixtures;
use transit_contract::ids::Timestamp;
use transit_ledger::ledger::Ledger;
use transit_ledger::projection::{rebuild, Projections, Restored, SnapshotPolicy, ViewHashes};
use transit_ledger::snapshot::SNAPSHOT_FILE;

const BASE_MS: i64 = 1_780_000_000_000; // 2026-05-28
const WAIT: Duration = Duration::from_secs(20);

struct Node {
    store: Arc<dyn EventStore>,
    ledger: Ledger,
    clock: Arc<dyn Clock>,
    manual: Arc<ManualClock>,
}

fn open_node(dir: &Path) -> Node {
    let manual = Arc::new(ManualClock::new(BASE_MS + 60_000));
    let mut config = FileStoreConfig::new(dir.join("data"));
    config.clock = manual.clone();
    let store: Arc<dyn EventStore> = Arc::new(FileStore::open(config).unwrap());
    let clock: Arc<dyn Clock> = manual.clone();
    let ledger = Ledger::new(store.clone(), clock.clone());
    Node {
        store,
        ledger,
        clock,
        manual,
    }
}

fn policy(dir: &Path, every_events: u64) -> SnapshotPolicy {
    let mut p = SnapshotPolicy::new(dir.join("data").join("views"));
    p.every_events = every_events;
    p.interval = Duration::from_secs(3600);
    p
}

/// Submits the journeys with the given serials; returns the last position written.
async fn submit_journeys(ledger: &Ledger, serials: std::ops::Range<u32>) -> u64 {
    let base = Timestamp::from_unix_millis(BASE_MS).unwrap();
    let mut last = 0;
    for serial in serials {
        for m in fixtures::journey(base, serial).messages() {
            let outcome = ledger
                .submit_json(&serde_json::to_vec(&m).unwrap())
                .await
                .unwrap();
            if let Some(e) = outcome.events.last() {
                last = e.position;
            }
        }
    }
    last
}

/// Runs the projections while the journeys with the given serials are submitted, until they
/// have applied the last event; stops them (storing their snapshot) and returns that last
/// position and the live views' hashes.
async fn follow_journeys_then_stop(
    node: &Node,
    projections: &Arc<Projections>,
    serials: std::ops::Range<u32>,
) -> (u64, ViewHashes) {
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let runner = tokio::spawn(projections.clone().run(node.store.clone(), stop_rx));
    let last = submit_journeys(&node.ledger, serials).await;
    tokio::time::timeout(WAIT, projections.wait_for(last))
        .await
        .unwrap();
    let live = projections.read().hashes();
    stop_tx.send(true).unwrap();
    runner.await.unwrap();
    (last, live)
}

async fn rebuilt_hashes(store: &dyn EventStore) -> ViewHashes {
    rebuild(store, 100, |_| {}).await.unwrap().hashes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn views_resume_from_their_snapshot_and_match_a_rebuild() {
    let dir = tempfile::tempdir().unwrap();
    let node = open_node(dir.path());
    let (projections, restored) = Projections::open(
        node.clock.clone(),
        node.store.as_ref(),
        policy(dir.path(), 7),
    )
    .await;
    assert_eq!(restored, Restored::Empty);
    let (last, live) = follow_journeys_then_stop(&node, &projections, 1..6).await;
    assert!(dir.path().join("data/views").join(SNAPSHOT_FILE).exists());

    // A restart loads the snapshot at the head of the log: nothing to replay.
    let (resumed, restored) = Projections::open(
        node.clock.clone(),
        node.store.as_ref(),
        policy(dir.path(), 7),
    )
    .await;
    assert_eq!(restored, Restored::Snapshot { position: last + 1 });
    assert_eq!(resumed.caught_up_to(), last + 1);
    assert_eq!(resumed.read().hashes(), live);
    assert_eq!(rebuilt_hashes(node.store.as_ref()).await, live);

    // It then follows new events like a runner that never stopped.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let runner = tokio::spawn(resumed.clone().run(node.store.clone(), stop_rx));
    let last = submit_journeys(&node.ledger, 6..9).await;
    tokio::time::timeout(WAIT, resumed.wait_for(last))
        .await
        .unwrap();
    let rebuilt = rebuilt_hashes(node.store.as_ref()).await;
    assert_eq!(resumed.read().hashes(), rebuilt);
    assert_eq!(resumed.read().movements.len(), 8);
    stop_tx.send(true).unwrap();
    runner.await.unwrap();
}

/// Deadlines judged live by the clock (between events) and by a rebuild (from the events'
/// recording times) give the same signals: an overdue raised at its deadline and cleared by a
/// late arrival is in both, with the same times.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deadlines_judged_live_by_the_clock_equal_a_rebuild() {
    use fraud_signals::{RuleId, SignalFilter, SignalStatus};
    let dir = tempfile::tempdir().unwrap();
    let node = open_node(dir.path());
    let live = Projections::new(node.clock.clone());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let runner = tokio::spawn(live.clone().run(node.store.clone(), stop_rx));
    let base = Timestamp::from_unix_millis(BASE_MS).unwrap();
    let journey = fixtures::journey(base, 1).messages();
    let ledger = &node.ledger;
    let submit = |m: &transit_contract::messages::InboundMessage| {
        let bytes = serde_json::to_vec(m).unwrap();
        async move { ledger.submit_json(&bytes).await.unwrap() }
    };
    let mut last = 0;
    for m in &journey[..3] {
        last = submit(m).await.events.last().unwrap().position;
    }
    tokio::time::timeout(WAIT, live.wait_for(last))
        .await
        .unwrap();
    // Ten days later (time limit 8 days + 1 day of grace), the clock alone raises OVERDUE.
    node.manual.set(BASE_MS + 10 * 86_400_000);
    live.tick();
    let overdue = SignalFilter {
        rule: Some(RuleId::Overdue),
        ..SignalFilter::default()
    };
    let raised = live.read().signals.signals(&overdue)[0].clone();
    assert!(raised.is_open());
    let deadline = BASE_MS + 8 * 86_400_000 + 86_400_000;
    assert_eq!(
        raised.fired_at.unix_millis(),
        deadline,
        "judged at the deadline"
    );
    // The rest of the journey arrives late and clears it.
    for m in &journey[3..] {
        last = submit(m).await.events.last().unwrap().position;
    }
    tokio::time::timeout(WAIT, live.wait_for(last))
        .await
        .unwrap();
    let cleared = live.read().signals.signals(&overdue)[0].clone();
    assert!(matches!(cleared.status, SignalStatus::Cleared { .. }));
    let rebuilt = rebuild(node.store.as_ref(), 100, |_| {}).await.unwrap();
    assert_eq!(rebuilt.signals.signals(&overdue), vec![&cleared]);
    assert_eq!(live.read().hashes(), rebuilt.hashes());
    stop_tx.send(true).unwrap();
    runner.await.unwrap();
}

/// The runner is killed (its task aborted: no final snapshot) at seeded random moments while
/// events arrive, sometimes with a torn temporary snapshot left behind; every restart resumes
/// from whatever snapshot made it to disk. At the end the views equal a rebuild: no event was
/// applied twice or skipped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runner_killed_mid_batch_resumes_without_losing_or_doubling_events() {
    let seed: u64 = std::env::var("PROJECTION_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20261126);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let dir = tempfile::tempdir().unwrap();
    let node = open_node(dir.path());
    let views_dir = dir.path().join("data/views");
    let mut serial = 1;
    let mut resumed_from_snapshot = 0;
    for cycle in 0..12 {
        let (projections, restored) = Projections::open(
            node.clock.clone(),
            node.store.as_ref(),
            policy(dir.path(), rng.gen_range(3..12)),
        )
        .await;
        match restored {
            Restored::Unusable { reason } => panic!("cycle {cycle} (seed {seed}): {reason}"),
            Restored::Snapshot { position } => {
                resumed_from_snapshot += 1;
                assert_eq!(
                    projections.read().movements.last_position(),
                    Some(position - 1),
                    "seed {seed}: the snapshot's views reflect exactly its position"
                );
            }
            Restored::Empty => {}
        }
        let (_stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let runner = tokio::spawn(projections.clone().run(node.store.clone(), stop_rx));
        let journeys = rng.gen_range(1..4);
        let writer = {
            let base = serial;
            serial += journeys;
            submit_journeys(&node.ledger, base..base + journeys)
        };
        let kill_after = Duration::from_millis(rng.gen_range(0..30));
        tokio::select! {
            _ = writer => {}
            () = tokio::time::sleep(kill_after) => {
                // The writer is cut off too: its acknowledged messages are in the log, the
                // rest never were; the views must agree with the log either way.
            }
        }
        runner.abort();
        let _ = runner.await;
        if rng.gen_bool(0.3) {
            std::fs::create_dir_all(&views_dir).unwrap();
            std::fs::write(
                views_dir.join(format!("{SNAPSHOT_FILE}.tmp-{cycle}-torn")),
                b"TLVIEWS1 torn",
            )
            .unwrap();
        }
    }
    assert!(
        resumed_from_snapshot > 0,
        "seed {seed}: no cycle resumed from a snapshot, the test proves nothing"
    );

    // Final start: catch up to the head and compare with a rebuild from position 0.
    let (projections, _) = Projections::open(
        node.clock.clone(),
        node.store.as_ref(),
        policy(dir.path(), 5),
    )
    .await;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let runner = tokio::spawn(projections.clone().run(node.store.clone(), stop_rx));
    // A writer cut off by the kill may still have an append in flight in the store: wait
    // until the head stops moving, so the live views and the rebuild see the same log.
    let mut head = node.store.head();
    loop {
        assert!(head > 0);
        tokio::time::timeout(WAIT, projections.wait_for(head - 1))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        let now = node.store.head();
        if now == head {
            break;
        }
        head = now;
    }
    let rebuilt = rebuilt_hashes(node.store.as_ref()).await;
    assert_eq!(projections.read().hashes(), rebuilt, "seed {seed}");
    stop_tx.send(true).unwrap();
    runner.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_or_foreign_snapshot_is_set_aside_and_the_views_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let node = open_node(dir.path());
    let last = submit_journeys(&node.ledger, 1..4).await;
    let views_dir = dir.path().join("data/views");
    let start = |every| {
        let node_store = node.store.clone();
        let clock = node.clock.clone();
        let p = policy(dir.path(), every);
        async move {
            let (projections, restored) = Projections::open(clock, node_store.as_ref(), p).await;
            let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
            let runner = tokio::spawn(projections.clone().run(node_store, stop_rx));
            tokio::time::timeout(WAIT, projections.wait_for(last))
                .await
                .unwrap();
            let hashes = projections.read().hashes();
            stop_tx.send(true).unwrap();
            runner.await.unwrap();
            (restored, hashes)
        }
    };
    let (_, good) = start(1_000).await;
    let snapshot = views_dir.join(SNAPSHOT_FILE);
    assert!(snapshot.exists());

    // One flipped byte in the payload.
    let mut bytes = std::fs::read(&snapshot).unwrap();
    let at = bytes.len() - 10;
    bytes[at] ^= 0x40;
    std::fs::write(&snapshot, &bytes).unwrap();
    let (restored, hashes) = start(1_000).await;
    assert!(
        matches!(&restored, Restored::Unusable { reason } if reason.contains("checksum")),
        "{restored:?}"
    );
    assert_eq!(hashes, good);
    assert!(views_dir.join(format!("{SNAPSHOT_FILE}.unusable")).exists());

    // A snapshot from another log with as many events (different content): the Merkle root
    // at its position differs.
    let other = tempfile::tempdir().unwrap();
    let other_node = open_node(other.path());
    let base = Timestamp::from_unix_millis(BASE_MS + 1).unwrap();
    for serial in 1..4 {
        for m in fixtures::journey(base, serial).messages() {
            other_node
                .ledger
                .submit_json(&serde_json::to_vec(&m).unwrap())
                .await
                .unwrap();
        }
    }
    assert_eq!(other_node.store.head(), node.store.head());
    let (foreign, _) = Projections::open(
        other_node.clock.clone(),
        other_node.store.as_ref(),
        policy(other.path(), 1),
    )
    .await;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let runner = tokio::spawn(foreign.clone().run(other_node.store.clone(), stop_rx));
    tokio::time::timeout(WAIT, foreign.wait_for(last))
        .await
        .unwrap();
    stop_tx.send(true).unwrap();
    runner.await.unwrap();
    std::fs::copy(
        other.path().join("data/views").join(SNAPSHOT_FILE),
        &snapshot,
    )
    .unwrap();
    let (restored, hashes) = start(1_000).await;
    assert!(
        matches!(&restored, Restored::Unusable { reason } if reason.contains("Merkle root")),
        "{restored:?}"
    );
    assert_eq!(hashes, good);
}

/// `transit-ledger replay` (the real binary) rebuilds a data folder and prints the same view
/// hashes as the live runner had; with `--write-snapshot` the service then resumes from it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_replay_command_prints_the_live_hashes_and_can_store_the_views() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let manual = Arc::new(ManualClock::new(BASE_MS + 60_000));
    let clock: Arc<dyn Clock> = manual.clone();
    let mut config = FileStoreConfig::new(&data);
    config.clock = manual;
    let store = Arc::new(FileStore::open(config).unwrap());
    let dyn_store: Arc<dyn EventStore> = store.clone();
    let ledger = Ledger::new(dyn_store.clone(), clock.clone());
    let live = Projections::new(clock.clone());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let runner = tokio::spawn(live.clone().run(dyn_store.clone(), stop_rx));
    let last = submit_journeys(&ledger, 1..5).await;
    tokio::time::timeout(WAIT, live.wait_for(last))
        .await
        .unwrap();
    let hashes = live.read().hashes();
    stop_tx.send(true).unwrap();
    runner.await.unwrap();
    drop((ledger, dyn_store, live));
    Arc::into_inner(store).unwrap().close().await.unwrap();

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_transit-ledger"))
        .args(["replay", "--quiet", "--write-snapshot", "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for (name, hash) in [
        ("movements", &hashes.movements),
        ("exposure", &hashes.exposure),
        ("corridors", &hashes.corridors),
        ("signals", &hashes.signals),
    ] {
        assert!(
            text.lines()
                .any(|l| l.starts_with(name) && l.trim_end().ends_with(hash.as_str())),
            "{name} {hash} not in:\n{text}"
        );
    }
    assert!(
        text.contains(&format!("events:       {}", last + 1)),
        "{text}"
    );

    let node = open_node(dir.path());
    let (resumed, restored) = Projections::open(
        node.clock.clone(),
        node.store.as_ref(),
        policy(dir.path(), 10),
    )
    .await;
    assert_eq!(restored, Restored::Snapshot { position: last + 1 });
    assert_eq!(resumed.read().hashes(), hashes);
}

/// The same log without [`EventStore::sequential_reader`], as a remote backend offers it: a
/// rebuild then reads pages with `read_all` and decodes them on a thread of its own. With
/// `.1`, `read_all` answers from those events in memory at once, never yielding to the runtime
/// (as a cache or an in-memory backend would).
struct WithoutLending(
    Arc<dyn EventStore>,
    Option<Vec<ledger_store::RecordedEvent>>,
);

impl WithoutLending {
    fn new(store: Arc<dyn EventStore>) -> Self {
        WithoutLending(store, None)
    }

    async fn answering_at_once(store: Arc<dyn EventStore>) -> Self {
        let events = store
            .read_all(0, usize::try_from(store.head()).unwrap())
            .await
            .unwrap();
        WithoutLending(store, Some(events))
    }
}

#[async_trait::async_trait]
impl EventStore for WithoutLending {
    async fn append(
        &self,
        appends: Vec<ledger_store::StreamAppend>,
    ) -> Result<ledger_store::AppendOutcome, ledger_store::StoreError> {
        self.0.append(appends).await
    }
    async fn read_stream(
        &self,
        stream: &ledger_store::StreamId,
        from_version: u64,
        max_count: usize,
    ) -> Result<Vec<ledger_store::RecordedEvent>, ledger_store::StoreError> {
        self.0.read_stream(stream, from_version, max_count).await
    }
    async fn stream_version(
        &self,
        stream: &ledger_store::StreamId,
    ) -> Result<Option<u64>, ledger_store::StoreError> {
        self.0.stream_version(stream).await
    }
    async fn read_all(
        &self,
        from_position: u64,
        max_count: usize,
    ) -> Result<Vec<ledger_store::RecordedEvent>, ledger_store::StoreError> {
        match &self.1 {
            Some(events) => Ok(events
                .iter()
                .skip(usize::try_from(from_position).unwrap())
                .take(max_count)
                .cloned()
                .collect()),
            None => self.0.read_all(from_position, max_count).await,
        }
    }
    async fn event_by_id(
        &self,
        event_id: ledger_store::EventId,
    ) -> Result<Option<ledger_store::RecordedEvent>, ledger_store::StoreError> {
        self.0.event_by_id(event_id).await
    }
    fn head(&self) -> u64 {
        self.0.head()
    }
    fn subscribe(&self, from_position: u64) -> ledger_store::EventStream {
        self.0.subscribe(from_position)
    }
    async fn checkpoint_now(
        &self,
    ) -> Result<Option<ledger_store::SignedCheckpoint>, ledger_store::StoreError> {
        self.0.checkpoint_now().await
    }
    fn latest_checkpoint(&self) -> Option<ledger_store::SignedCheckpoint> {
        self.0.latest_checkpoint()
    }
    async fn inclusion_proof(
        &self,
        position: u64,
        tree_size: u64,
    ) -> Result<ledger_store::InclusionProof, ledger_store::StoreError> {
        self.0.inclusion_proof(position, tree_size).await
    }
    async fn consistency_proof(
        &self,
        old_size: u64,
        new_size: u64,
    ) -> Result<ledger_store::ConsistencyProof, ledger_store::StoreError> {
        self.0.consistency_proof(old_size, new_size).await
    }
}

/// Both ways of reading a rebuild (records lent by the embedded log, or pages of `read_all`)
/// give the live views, whatever the page size; progress reaches the head; an event that does
/// not decode stops either rebuild with an error naming its position, and no views.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rebuild_by_lending_and_by_read_all_equal_the_live_views_and_report_bad_events() {
    let dir = tempfile::tempdir().unwrap();
    let node = open_node(dir.path());
    let (projections, _) = Projections::open(
        node.clock.clone(),
        node.store.as_ref(),
        policy(dir.path(), 1_000_000),
    )
    .await;
    let (last, live) = follow_journeys_then_stop(&node, &projections, 1..8).await;
    assert!(node.store.sequential_reader().is_some());
    let without = WithoutLending::new(node.store.clone());
    assert!(without.sequential_reader().is_none());
    for page in [1, 7, 100, ledger_store::READ_EVENTS_MAX] {
        for store in [node.store.as_ref(), &without as &dyn EventStore] {
            let mut reported = 0;
            let views = tokio::time::timeout(
                WAIT,
                rebuild(store, page, |done| {
                    assert!(done > reported, "progress goes forward");
                    reported = done;
                }),
            )
            .await
            .unwrap_or_else(|_| panic!("page {page}: the rebuild hangs"))
            .unwrap();
            assert_eq!(views.hashes(), live, "page {page}");
            assert_eq!(reported, last + 1, "page {page}");
        }
    }

    // An event no projection can read (a type this version does not know), appended after
    // the journeys: both rebuilds stop on it.
    let bad = node.store.head();
    node.store
        .append(vec![ledger_store::StreamAppend {
            stream: ledger_store::StreamId::new("movement-24TG00000000000006").unwrap(),
            expected: ledger_store::ExpectedVersion::Any,
            events: vec![ledger_store::NewEvent {
                event_id: ledger_store::EventId(uuid::Uuid::new_v4()),
                event_type: "TransitTeleported".to_owned(),
                schema_version: 1,
                data: br#"{"meta":{},"data":{}}"#.to_vec(),
                metadata: Vec::new(),
            }],
        }])
        .await
        .unwrap();
    for store in [node.store.as_ref(), &without as &dyn EventStore] {
        let err = tokio::time::timeout(WAIT, rebuild(store, 3, |_| {}))
            .await
            .expect("the rebuild hangs")
            .unwrap_err()
            .to_string();
        assert!(err.contains(&bad.to_string()), "{err}");
        assert!(err.contains("TransitTeleported"), "{err}");
    }
}

/// The runtime side of a rebuild may be slow to take its progress (a busy runtime, or a
/// progress callback that takes its time, like a terminal): the reading, decoding and applying
/// threads never wait for it, so a slow taker slows nothing and no hand-off can close a cycle.
/// Session 4's pipeline blocked here (a lane waiting to report progress, the decoder waiting
/// for the lane, the runtime's blocking send waiting for the decoder): about one run in twenty
/// on a loaded machine, and every time with a store that answers `read_all` at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebuild_never_waits_for_a_slow_progress_taker() {
    let dir = tempfile::tempdir().unwrap();
    let node = open_node(dir.path());
    let (projections, _) = Projections::open(
        node.clock.clone(),
        node.store.as_ref(),
        policy(dir.path(), 1_000_000),
    )
    .await;
    let (last, live) = follow_journeys_then_stop(&node, &projections, 1..6).await;
    let without = WithoutLending::new(node.store.clone());
    let at_once = WithoutLending::answering_at_once(node.store.clone()).await;
    for round in 0..3 {
        for store in [
            node.store.as_ref(),
            &without as &dyn EventStore,
            &at_once as &dyn EventStore,
        ] {
            let mut calls = 0u64;
            let mut reported = 0;
            let views = tokio::time::timeout(
                WAIT,
                rebuild(store, 1, |done| {
                    // Blocks the task that also reads (for `read_all`) and drains progress.
                    std::thread::sleep(Duration::from_micros(300));
                    assert!(done > reported, "progress goes forward");
                    reported = done;
                    calls += 1;
                }),
            )
            .await
            .unwrap_or_else(|_| panic!("round {round}: the rebuild hangs"))
            .unwrap();
            assert_eq!(views.hashes(), live, "round {round}");
            assert_eq!(reported, last + 1, "round {round}");
            assert_eq!(calls, last + 1, "round {round}: once per page of one event");
        }
    }
}
