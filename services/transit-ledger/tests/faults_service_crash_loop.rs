//! The service crash loop (fault profile, `ops/faults.sh`): the real binary `serve` takes
//! simulated corridor traffic over HTTP from concurrent senders and is killed with SIGKILL at
//! seeded random instants, then restarted on the same data folder, again and again. After
//! each kill a copy of the folder is replayed and the restarted service must serve exactly
//! those views; the senders resend everything not acknowledged, and some acknowledged
//! messages, which must be answered as duplicates. At the end every acknowledged message is
//! recorded exactly once, `verify` finds the folder intact, and the views equal a rebuild.
//!
//! `FAULT_CRASH_CYCLES` (default 8), `FAULT_MOVEMENTS` (default 250), `FAULT_SENDERS`
//! (default 16); `FAULT_SEED` replays a run (the traffic and the kill instants).
#![allow(clippy::unwrap_used)]

mod common;
mod faults;

use std::sync::Arc;
use std::time::{Duration, Instant};

use faults::{assert_exactly_once, assert_intact, env_u64, Service, Traffic};
use rand::{Rng, SeedableRng};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkilled_service_loses_and_doubles_nothing_and_serves_a_rebuild() {
    let started = Instant::now();
    let cycles = env_u64("FAULT_CRASH_CYCLES", 8);
    let movements = env_u64("FAULT_MOVEMENTS", 250);
    let senders = env_u64("FAULT_SENDERS", 16) as usize;
    let seed = faults::seed("FAULT_SEED");
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let log = dir.path().join("serve.log");
    let traffic = Arc::new(Traffic::new(&faults::simulate(
        seed % 10_000,
        movements,
        &dir.path().join("sim"),
    )));
    eprintln!(
        "service crash loop: {cycles} cycles, {} messages from {movements} movements, {senders} senders",
        traffic.messages.len()
    );
    // Small snapshot intervals, so that restarts resume stored views as well as rebuild them.
    let serve_flags = [
        "--snapshot-every-events",
        "200",
        "--snapshot-interval-s",
        "1",
    ];
    let client = reqwest::Client::new();
    let mut kills_mid_load = 0;
    for cycle in 0..cycles {
        let service = Service::start(&data, &log, &serve_flags).await;
        if cycle > 0 {
            // The restarted service serves the views of exactly the log it recovered.
            let copy = dir.path().join(format!("copy-{cycle}"));
            let rebuilt = faults::replay(&copy);
            let served = service
                .view_hashes_at(&client, rebuilt["position"].as_u64().unwrap())
                .await;
            assert_eq!(served, rebuilt, "cycle {cycle}: served views != rebuild");
            std::fs::remove_dir_all(&copy).unwrap();
            traffic
                .resend_acknowledged(&service.base, &mut rng, 10)
                .await;
        }
        // Load, and a kill at a seeded instant while it runs.
        let run_for = Duration::from_millis(rng.gen_range(150..900));
        let sending = {
            let traffic = traffic.clone();
            let base = service.base.clone();
            tokio::spawn(async move { traffic.send(&base, senders).await })
        };
        tokio::time::sleep(run_for).await;
        if !sending.is_finished() {
            kills_mid_load += 1;
        }
        service.kill();
        let _ = sending.await.unwrap();
        eprintln!(
            "cycle {cycle}: killed after {} ms, {} of {} acknowledged",
            run_for.as_millis(),
            traffic.acked_count(),
            traffic.messages.len()
        );
        // What the next start recovers, replayed aside.
        assert_intact(&data, &format!("cycle {cycle}, after SIGKILL"));
        faults::copy_dir(&data, &dir.path().join(format!("copy-{}", cycle + 1)));
    }
    // A last start: the rest goes in, and the restarted service's views equal a rebuild.
    let service = Service::start(&data, &log, &serve_flags).await;
    let copy = dir.path().join(format!("copy-{cycles}"));
    let rebuilt = faults::replay(&copy);
    let served = service
        .view_hashes_at(&client, rebuilt["position"].as_u64().unwrap())
        .await;
    assert_eq!(served, rebuilt, "last restart: served views != rebuild");
    traffic
        .resend_acknowledged(&service.base, &mut rng, 20)
        .await;
    let deadline = Instant::now() + Duration::from_secs(120);
    while !traffic.send(&service.base, senders).await {
        assert!(
            Instant::now() < deadline,
            "the traffic does not get through"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (head, served) = {
        let r = client
            .get(format!("{}/v1/events?from=0&limit=1", service.base))
            .bearer_auth(common::auditor_token())
            .send()
            .await
            .unwrap();
        let head = r.json::<serde_json::Value>().await.unwrap()["head"]
            .as_u64()
            .unwrap();
        (head, service.view_hashes_at(&client, head).await)
    };
    service.terminate();
    assert_intact(&data, "at the end");
    assert_eq!(faults::replay(&data), served, "final views != rebuild");
    let (recorded, log_head) = faults::recorded_messages(&data).await;
    assert_eq!(log_head, head);
    let acked = traffic.acked_ids();
    assert_exactly_once(&recorded, &acked);
    let book = traffic.book.lock();
    assert_eq!(
        acked.len() + book.refused_messages.iter().filter(|r| **r).count(),
        traffic.messages.len(),
        "every message was answered"
    );
    assert_eq!(recorded.len(), acked.len(), "only acknowledged messages");
    assert!(
        kills_mid_load > 0,
        "no kill landed while traffic was flowing"
    );
    eprintln!(
        "service crash loop: {cycles} SIGKILLs ({kills_mid_load} mid-load), {} messages acknowledged and recorded once ({head} events), {} failed sends resent, {} found recorded before their ack, {} duplicate resends, refused {:?}; {:.1} s",
        acked.len(),
        book.failed_sends,
        book.recorded_before_ack,
        book.duplicate_checks,
        book.refused,
        started.elapsed().as_secs_f64()
    );
}
