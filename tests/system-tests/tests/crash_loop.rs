//! The crash loop: a child process appends under concurrent load and is killed with SIGKILL
//! at a random instant, again and again on the same data folder. After every kill the store
//! reopens, every acknowledged append is there (both of its streams: appends are atomic), no
//! half append is visible, and offline verification passes.
//!
//! `CRASH_CYCLES` sets the number of cycles (default 20; CI's slow profile runs 100).
//! `CRASH_SEED` replays a run's kill schedule.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use ledger_store::file::{FileStore, FileStoreConfig};
use ledger_store::verify::verify_dir;
use ledger_store::{EventId, EventStore, LedgerKey};
use rand::{Rng, SeedableRng};
use uuid::Uuid;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_under_load_never_loses_an_acknowledged_append() {
    let cycles = env_u64("CRASH_CYCLES", 20);
    let seed = env_u64("CRASH_SEED", 20_261_126);
    eprintln!("crash loop: {cycles} cycles, CRASH_SEED={seed}");
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let dir = tempfile::tempdir().unwrap();
    let mut acked: HashMap<Uuid, (EventId, EventId)> = HashMap::new();
    let mut torn_cuts = 0;
    let mut previous_head = 0;
    for cycle in 0..cycles {
        let mut child = Command::new(env!("CARGO_BIN_EXE_crash-appender"))
            .arg(dir.path())
            .arg("32")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel::<String>();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        // Let it run until it has acknowledged something, then a random while longer.
        let first = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("child acknowledges appends");
        let mut lines = vec![first];
        let run_for = Duration::from_millis(rng.gen_range(5..250));
        let until = Instant::now() + run_for;
        while Instant::now() < until {
            if let Ok(line) = rx.recv_timeout(Duration::from_millis(1)) {
                lines.push(line);
            }
        }
        // SIGKILL: no destructors, no final checkpoint, writes in flight are torn.
        child.kill().unwrap();
        child.wait().unwrap();
        reader.join().unwrap();
        // Lines already written before the kill were acknowledged; a line cut mid-way was
        // not fully read and `lines()` would have yielded it only if it ended in a newline.
        lines.extend(rx.try_iter());
        let mut acked_this_cycle = Vec::new();
        for line in lines {
            let parts: Vec<&str> = line.split_whitespace().collect();
            assert_eq!(parts.len(), 4, "{line}");
            let pair: Uuid = parts[1].parse().unwrap();
            acked_this_cycle.push(pair);
            acked.insert(
                pair,
                (
                    EventId(parts[2].parse().unwrap()),
                    EventId(parts[3].parse().unwrap()),
                ),
            );
        }
        let mut config = FileStoreConfig::new(dir.path());
        config.key = Some(LedgerKey::from_secret([5; 32]));
        config.segment_bytes_max = 256 * 1024;
        let store =
            FileStore::open(config).unwrap_or_else(|e| panic!("cycle {cycle}: reopen failed: {e}"));
        if store.open_report().torn_bytes_cut > 0 {
            torn_cuts += 1;
        }
        // Everything acknowledged so far is there: this cycle's acks one by one (all of them
        // on the last cycle and every tenth), older ones because the log never shrinks below
        // what the previous reopen held and `verify` checks it against the signed checkpoints.
        let head = store.head();
        assert!(head >= previous_head, "cycle {cycle}: the log lost events");
        let check_all = cycle + 1 == cycles || cycle % 10 == 9;
        let to_check: Vec<Uuid> = if check_all {
            acked.keys().copied().collect()
        } else {
            acked_this_cycle.clone()
        };
        for pair in &to_check {
            let (m, g) = acked[pair];
            let me = store.event_by_id(m).await.unwrap();
            let ge = store.event_by_id(g).await.unwrap();
            assert!(
                me.is_some() && ge.is_some(),
                "cycle {cycle}: acknowledged append {pair} lost"
            );
        }
        // Atomicity: every pair written since the previous reopen has both halves (appends
        // before it were checked then, and an append never straddles a clean end).
        let mut halves: HashMap<String, u32> = HashMap::new();
        let mut from = previous_head;
        loop {
            let batch = store.read_all(from, 4096).await.unwrap();
            if batch.is_empty() {
                break;
            }
            for e in &batch {
                let text = String::from_utf8_lossy(&e.data);
                let pair = text.split('"').nth(3).unwrap().to_owned();
                *halves.entry(pair).or_default() += 1;
            }
            from = batch.last().unwrap().position + 1;
        }
        assert!(
            halves.values().all(|n| *n == 2),
            "cycle {cycle}: half an append is visible"
        );
        store.close().await.unwrap();
        previous_head = head;
        let report = verify_dir(dir.path(), None).unwrap();
        assert!(report.intact(), "cycle {cycle}: verify failed: {report:?}");
    }
    eprintln!(
        "crash loop: {cycles} cycles, {} acknowledged appends all recovered, {torn_cuts} torn tails cut",
        acked.len()
    );
    assert!(!acked.is_empty());
}
