//! Deterministic simulation (fault profile, `ops/faults.sh`), in the manner of TigerBeetle's
//! VOPR: ingest (the ledger's command handler with the development key registry), the file
//! log and the projections (runner with stored views) in one process, on an injected
//! `ManualClock`, driven by a schedule drawn from one seed: simulated corridor traffic
//! delivered with reorders (any of the next few deliveries may go first) and duplicates
//! (acknowledged messages sent again), clock jumps, signed checkpoints, and crashes — every
//! handle dropped without `close`, the projection runner aborted mid-batch, and sometimes the
//! last acknowledged-but-not-checkpointed append torn (cut mid-record, zero-filled from its
//! first byte, or zero-filled from a sector boundary inside a record's payload with the header
//! intact, as a write in flight at a power cut leaves it; its acknowledgement is then taken
//! back).
//!
//! After every step: the log head moves only as the step allows, each message is recorded at
//! most once and every acknowledged one is there. After every crash, every
//! `FAULT_DST_CHECK_EVERY` steps (default 25) and at the end: offline `verify` is intact and
//! the live views, ticked to the clock, equal a rebuild from position 0 ticked to the same
//! instant.
//!
//! The schedule is a function of the seed only, so a failure replays exactly with
//! `FAULT_DST_SEED=<seed>` (printed by every run). `FAULT_DST_RUNS` (default 4) seeds run,
//! each over `FAULT_DST_MOVEMENTS` (default 40) simulated movements.
#![allow(clippy::unwrap_used)]

mod common;
mod faults;

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use faults::env_u64;
use ledger_store::file::{FileStore, FileStoreConfig};
use ledger_store::record::{RECORD_HEADER_LEN, TORN_WRITE_SECTOR_BYTES};
use ledger_store::verify::verify_dir;
use ledger_store::{Clock, EventStore, ManualClock};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use transit_contract::ids::Timestamp;
use transit_ledger::ledger::{Ledger, RecordedSubmission, SubmitError};
use transit_ledger::projection::{rebuild, Projections, SnapshotPolicy, DEADLINE_GRACE};
use transit_ledger::simulate::{render, CountryKeys, Rendered};
use transit_sim::{SimConfig, Simulation};

/// Deliveries that may overtake each other.
const REORDER_WINDOW: usize = 6;
/// A refused delivery is tried again this many times (it may have overtaken its
/// predecessor) before its refusal counts as final.
const REFUSAL_RETRIES: u32 = 6;
/// Segments this small roll often, so crashes and tears land around rollovers too.
const SEGMENT_BYTES: u64 = 48 * 1024;
const WAIT: Duration = Duration::from_secs(30);

/// One process's worth of the system: store, ledger, projections and their runner.
struct Node {
    store: Arc<FileStore>,
    ledger: Ledger,
    projections: Arc<Projections>,
    runner: tokio::task::JoinHandle<()>,
}

async fn open_node(dir: &Path, clock: &Arc<ManualClock>, snapshot_every: u64) -> Node {
    let dyn_clock: Arc<dyn Clock> = clock.clone();
    let config = || {
        let mut config = FileStoreConfig::new(dir.join("data"));
        config.clock = dyn_clock.clone();
        config.segment_bytes_max = SEGMENT_BYTES;
        // Checkpoints only when the schedule says so.
        config.checkpoint_interval = Duration::from_secs(3600);
        config
    };
    // The crashed node's last handles (a subscription task) may still be letting go of the
    // folder's lock for a moment.
    let store = {
        let mut tries = 0;
        loop {
            match FileStore::open(config()) {
                Ok(store) => break Arc::new(store),
                Err(e) if tries < 200 && e.to_string().contains("in use") => {
                    tries += 1;
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                Err(e) => panic!("reopen failed: {e}"),
            }
        }
    };
    let dyn_store: Arc<dyn EventStore> = store.clone();
    let ledger =
        Ledger::with_registry(dyn_store.clone(), dyn_clock.clone(), common::dev_registry());
    let mut policy = SnapshotPolicy::new(dir.join("data/views"));
    policy.every_events = snapshot_every;
    policy.interval = Duration::from_secs(3600);
    let (projections, _) = Projections::open(dyn_clock, dyn_store.as_ref(), policy).await;
    let (_stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    // The runner runs until the node crashes (the task is aborted): never a clean stop.
    std::mem::forget(_stop_tx);
    let runner = tokio::spawn(projections.clone().run(dyn_store, stop_rx));
    Node {
        store,
        ledger,
        projections,
        runner,
    }
}

/// The last segment file of the log and its length.
fn last_segment(dir: &Path) -> (PathBuf, u64) {
    let mut segments: Vec<PathBuf> = std::fs::read_dir(dir.join("data/log"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    segments.sort();
    let last = segments.pop().unwrap();
    let len = std::fs::metadata(&last).unwrap().len();
    (last, len)
}

/// What the simulation knows about the last append, to tear it at a crash.
struct LastAppend {
    message: usize,
    delivery: (Timestamp, usize, bool),
    segment: PathBuf,
    before: u64,
    after: u64,
    first_position: u64,
}

/// The sector-aligned file offsets (as a torn write loses whole sectors) that fall inside the
/// payload of one of the last append's records, after its header.
fn payload_sector_starts(last: &LastAppend) -> Vec<u64> {
    let sector = TORN_WRITE_SECTOR_BYTES;
    let bytes = std::fs::read(&last.segment).unwrap();
    let mut starts = Vec::new();
    let mut at = last.before;
    while at < last.after {
        let header = &bytes[at as usize..at as usize + RECORD_HEADER_LEN];
        let len = u64::from(u32::from_le_bytes(header[..4].try_into().unwrap()));
        let payload = at + RECORD_HEADER_LEN as u64;
        at = payload + len;
        starts.extend((payload.div_ceil(sector)..at.div_ceil(sector)).map(|n| n * sector));
    }
    assert_eq!(at, last.after, "the append's records fill it exactly");
    starts
}

/// Per-run tallies, printed at the end.
#[derive(Debug, Default)]
struct Tally {
    steps: u64,
    delivered: u64,
    recorded: u64,
    duplicates: u64,
    refused_retried: u64,
    refused_final: u64,
    crashes: u64,
    tears: u64,
    /// Tears that left zeros from a sector boundary inside a payload.
    sector_tears: u64,
    checkpoints: u64,
    full_checks: u64,
}

fn traffic(seed: u64, movements: u64) -> Rendered {
    let sim = Simulation::generate(&SimConfig {
        seed,
        movements: movements as u32,
        ..SimConfig::default()
    })
    .unwrap();
    let root = common::repo_root();
    let keys = CountryKeys::load(
        &root.join("ops/keys/registry.toml"),
        &root.join("ops/keys/dev"),
    )
    .unwrap();
    render(&sim, &keys).unwrap()
}

fn message_id(bytes: &[u8]) -> String {
    let v: serde_json::Value = serde_json::from_slice(bytes).unwrap();
    v["messageId"].as_str().unwrap().to_owned()
}

/// Checks after a step: the log holds each message at most once, every acknowledged one.
async fn check_exactly_once(
    store: &FileStore,
    scanned: &mut u64,
    counts: &mut HashMap<String, u32>,
    acked: &[bool],
    ids: &[String],
    step: u64,
) {
    let head = store.head();
    while *scanned < head {
        let page = store
            .read_all(*scanned, ledger_store::READ_EVENTS_MAX)
            .await
            .unwrap();
        for e in &page {
            if let Some(s) = RecordedSubmission::from_metadata(&e.metadata).unwrap() {
                let n = counts.entry(s.message_id.clone()).or_default();
                *n += 1;
                assert_eq!(*n, 1, "step {step}: {} recorded twice", s.message_id);
            }
        }
        *scanned = page.last().unwrap().position + 1;
    }
    for (n, id) in ids.iter().enumerate() {
        assert!(
            !acked[n] || counts.contains_key(id),
            "step {step}: acknowledged message {id} is not in the log"
        );
    }
}

/// The expensive checks: `verify` intact, live views (ticked to the clock) == a rebuild.
async fn check_full(dir: &Path, node: &Node, clock: &ManualClock, step: u64) {
    let report = verify_dir(&dir.join("data"), None).unwrap();
    assert!(report.intact(), "step {step}: verify: {report:?}");
    let head = node.store.head();
    if head > 0 {
        tokio::time::timeout(WAIT, node.projections.wait_for(head - 1))
            .await
            .unwrap_or_else(|_| panic!("step {step}: the views do not reach {head}"));
    }
    node.projections.tick();
    let live = node.projections.read().hashes();
    let mut rebuilt = rebuild(node.store.as_ref(), 500, |_| {}).await.unwrap();
    let grace = DEADLINE_GRACE.as_millis() as i64;
    rebuilt.tick(Timestamp::from_unix_millis(clock.now_millis() - grace).unwrap());
    assert_eq!(live, rebuilt.hashes(), "step {step}: live views != rebuild");
}

async fn run_seed(seed: u64, movements: u64, check_every: u64) -> Tally {
    eprintln!("dst: FAULT_DST_SEED={seed}");
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let rendered = traffic(seed, movements);
    let ids: Vec<String> = rendered
        .messages
        .iter()
        .map(|(b, _)| message_id(b))
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let first_at = rendered.plan[0].0.unix_millis();
    let clock = Arc::new(ManualClock::new(first_at));
    let snapshot_every = rng.gen_range(20..120);
    let mut node = open_node(dir.path(), &clock, snapshot_every).await;
    let mut pending: VecDeque<(Timestamp, usize, bool)> = rendered.plan.iter().copied().collect();
    let mut retries: HashMap<usize, u32> = HashMap::new();
    let mut acked = vec![false; ids.len()];
    let mut counts: HashMap<String, u32> = HashMap::new();
    let mut scanned = 0;
    let mut checkpointed_head = 0;
    let mut last_append: Option<LastAppend> = None;
    let mut tally = Tally::default();
    let mut step = 0;
    while !pending.is_empty() {
        step += 1;
        let head_before = node.store.head();
        let roll = rng.gen_range(0..100);
        if roll < 75 {
            // Deliver one of the next few deliveries.
            let k = rng.gen_range(0..REORDER_WINDOW.min(pending.len()));
            let delivery = pending.remove(k).unwrap();
            let (at, n, _) = delivery;
            if at.unix_millis() > clock.now_millis() {
                clock.set(at.unix_millis());
            }
            let (segment, before) = last_segment(dir.path());
            let (bytes, signature) = &rendered.messages[n];
            tally.delivered += 1;
            match node.ledger.submit_json_signed(bytes, Some(signature)).await {
                Ok(o) if o.duplicate => {
                    tally.duplicates += 1;
                    acked[n] = true;
                    assert_eq!(
                        node.store.head(),
                        head_before,
                        "step {step}: duplicate appended"
                    );
                }
                Ok(o) => {
                    assert!(!acked[n], "step {step}: {} recorded again", ids[n]);
                    acked[n] = true;
                    tally.recorded += 1;
                    let (segment_after, after) = last_segment(dir.path());
                    last_append = (segment_after == segment).then(|| LastAppend {
                        message: n,
                        delivery,
                        segment,
                        before,
                        after,
                        first_position: o.events[0].position,
                    });
                }
                Err(SubmitError::Rejected(r)) => {
                    assert!(
                        !acked[n],
                        "step {step}: acknowledged {} now refused {r:?}",
                        ids[n]
                    );
                    let tries = retries.entry(n).or_default();
                    *tries += 1;
                    if *tries <= REFUSAL_RETRIES {
                        tally.refused_retried += 1;
                        let at = rng.gen_range(0..=pending.len().min(4 * REORDER_WINDOW));
                        pending.insert(at, delivery);
                    } else {
                        tally.refused_final += 1;
                    }
                }
                Err(e) => panic!("step {step}: {} failed: {e}", ids[n]),
            }
        } else if roll < 85 {
            // An acknowledged message again: answered as a duplicate, nothing appended.
            let done: Vec<usize> = (0..ids.len()).filter(|n| acked[*n]).collect();
            if let Some(&n) = done.get(rng.gen_range(0..done.len().max(1))) {
                let (bytes, signature) = &rendered.messages[n];
                let o = node
                    .ledger
                    .submit_json_signed(bytes, Some(signature))
                    .await
                    .unwrap_or_else(|e| panic!("step {step}: duplicate of {} failed: {e}", ids[n]));
                assert!(o.duplicate, "step {step}: {} recorded twice", ids[n]);
                tally.duplicates += 1;
            }
        } else if roll < 90 {
            clock.advance(rng.gen_range(0..6 * 3_600_000));
        } else if roll < 94 {
            node.store.checkpoint_now().await.unwrap();
            checkpointed_head = node.store.head();
            tally.checkpoints += 1;
        } else {
            // Crash: nothing is closed, the runner dies mid-batch.
            tally.crashes += 1;
            let Node {
                store,
                ledger,
                projections,
                runner,
            } = node;
            runner.abort();
            let _ = runner.await;
            drop((ledger, projections));
            drop(store);
            let mut expected_head = head_before;
            // Sometimes the last append was still in flight: torn, its ack never sent.
            if let Some(last) = last_append.take() {
                let tear = rng.gen_bool(0.5)
                    && last.first_position >= checkpointed_head
                    && last_segment(dir.path()) == (last.segment.clone(), last.after);
                if tear {
                    let file = std::fs::OpenOptions::new()
                        .write(true)
                        .open(&last.segment)
                        .unwrap();
                    let sectors = payload_sector_starts(&last);
                    match rng.gen_range(0..3) {
                        0 => {
                            // Cut anywhere in the append: part of it reached the disk.
                            file.set_len(rng.gen_range(last.before + 1..last.after))
                                .unwrap();
                        }
                        1 if !sectors.is_empty() => {
                            // The new size and the first sectors reached the disk, the rest
                            // did not: zeros from a sector boundary inside a record's payload
                            // (its header intact) to the end of the file.
                            let from = sectors[rng.gen_range(0..sectors.len())];
                            file.set_len(from).unwrap();
                            file.set_len(last.after).unwrap();
                            tally.sector_tears += 1;
                        }
                        _ => {
                            // The new size reached the disk, the append's bytes did not: zeros.
                            file.set_len(last.before).unwrap();
                            file.set_len(last.after).unwrap();
                        }
                    }
                    acked[last.message] = false;
                    pending.push_front(last.delivery);
                    expected_head = last.first_position;
                    tally.tears += 1;
                }
            }
            node = open_node(dir.path(), &clock, snapshot_every).await;
            assert_eq!(
                node.store.head(),
                expected_head,
                "step {step}: the reopened log holds {} events, expected {expected_head}",
                node.store.head()
            );
            if expected_head < head_before {
                assert!(node.store.open_report().torn_bytes_cut > 0);
            }
            // Counted afresh: the torn events are gone.
            counts.clear();
            scanned = 0;
        }
        if node.store.head() < head_before {
            assert!(roll >= 94, "step {step}: the log shrank");
        }
        check_exactly_once(&node.store, &mut scanned, &mut counts, &acked, &ids, step).await;
        if roll >= 94 || step % check_every == 0 {
            check_full(dir.path(), &node, &clock, step).await;
            tally.full_checks += 1;
        }
    }
    tally.steps = step;
    check_full(dir.path(), &node, &clock, step).await;
    tally.full_checks += 1;
    // Every delivery was answered: each message is recorded or finally refused.
    for (n, id) in ids.iter().enumerate() {
        assert!(
            acked[n] || retries.get(&n).is_some_and(|t| *t > REFUSAL_RETRIES),
            "{id} neither recorded nor refused"
        );
    }
    let Node {
        store,
        ledger,
        projections,
        runner,
    } = node;
    runner.abort();
    let _ = runner.await;
    drop((ledger, projections));
    let store = Arc::into_inner(store).expect("invariant: the last handle");
    store.close().await.unwrap();
    let report = verify_dir(&dir.path().join("data"), None).unwrap();
    assert!(report.intact(), "at the end: {report:?}");
    tally
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seeded_schedules_of_reorders_duplicates_and_crashes_keep_every_invariant() {
    let movements = env_u64("FAULT_DST_MOVEMENTS", 40);
    let check_every = env_u64("FAULT_DST_CHECK_EVERY", 25).max(1);
    let seeds: Vec<u64> = match std::env::var("FAULT_DST_SEED") {
        Ok(seed) => vec![seed.parse().expect("FAULT_DST_SEED is a number")],
        Err(_) => {
            let base = faults::seed("FAULT_DST_BASE_SEED");
            (0..env_u64("FAULT_DST_RUNS", 4))
                .map(|i| base + i)
                .collect()
        }
    };
    let mut sector_tears = 0;
    for seed in &seeds {
        let seed = *seed;
        let started = std::time::Instant::now();
        let tally = run_seed(seed, movements, check_every).await;
        eprintln!(
            "dst: seed {seed}: {tally:?} in {:.1} s",
            started.elapsed().as_secs_f64()
        );
        assert!(tally.crashes > 0 && tally.recorded > 0, "{tally:?}");
        sector_tears += tally.sector_tears;
    }
    // Each run tears about ten appends, a third of them this way: over several runs, some.
    if seeds.len() > 1 {
        assert!(sector_tears > 0, "no tear left zeros from inside a payload");
    }
}
