//! The in-memory projection runner on a real store: it follows the log from position 0,
//! `wait_for` returns once the views reflect a position, and a runner started later over the
//! same log reaches the same state (same view hashes) as the one that followed it live.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use ledger_store::file::{FileStore, FileStoreConfig};
use ledger_store::{Clock, EventStore, ManualClock};
use transit_contract::fixtures;
use transit_contract::ids::Timestamp;
use transit_ledger::ledger::Ledger;
use transit_ledger::projection::Projections;

const BASE_MS: i64 = 1_780_000_000_000; // 2026-05-28
const WAIT: Duration = Duration::from_secs(10);

fn hashes(p: &Projections) -> [[u8; 32]; 4] {
    let v = p.read();
    [
        v.movements.state_hash(),
        v.exposure.state_hash(),
        v.corridors.state_hash(),
        v.signals.state_hash(),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_runner_follows_the_log_and_a_later_replay_matches_it() {
    let dir = tempfile::tempdir().unwrap();
    let manual = Arc::new(ManualClock::new(BASE_MS + 60_000));
    let mut config = FileStoreConfig::new(dir.path());
    config.clock = manual.clone();
    let store: Arc<dyn EventStore> = Arc::new(FileStore::open(config).unwrap());
    let clock: Arc<dyn Clock> = manual;
    let ledger = Ledger::new(store.clone(), clock.clone());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);

    let live = Projections::new(clock.clone());
    let mut updates = live.movement_updates();
    let runner = tokio::spawn(live.clone().run(store.clone(), stop_rx.clone()));
    assert_eq!(live.caught_up_to(), 0);

    let base = Timestamp::from_unix_millis(BASE_MS).unwrap();
    let mut last = 0;
    for serial in 1..=3 {
        for m in fixtures::journey(base, serial).messages() {
            let outcome = ledger
                .submit_json(&serde_json::to_vec(&m).unwrap())
                .await
                .unwrap();
            last = outcome.events.last().unwrap().position;
        }
    }
    tokio::time::timeout(WAIT, live.wait_for(last))
        .await
        .unwrap();
    assert_eq!(live.caught_up_to(), last + 1);
    assert_eq!(live.read().movements.len(), 3);
    // The first movement update is the first declaration.
    let first = updates.recv().await.unwrap();
    assert_eq!(first.mrn, fixtures::mrn(base, 1));

    // A second runner replays the same log from 0 and ends in the same state.
    let replay = Projections::new(clock);
    let replayer = tokio::spawn(replay.clone().run(store.clone(), stop_rx));
    tokio::time::timeout(WAIT, replay.wait_for(last))
        .await
        .unwrap();
    assert_eq!(hashes(&replay), hashes(&live));

    stop_tx.send(true).unwrap();
    runner.await.unwrap();
    replayer.await.unwrap();
}
