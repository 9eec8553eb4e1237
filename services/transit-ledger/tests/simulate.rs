//! The corridor simulator end to end: its traffic goes through the real ledger (signatures,
//! authorization, rules) into a real log, and the fraud signals replayed from that log meet
//! the per-rule targets against the ground truth; and `simulate` / `evaluate` as an operator
//! runs them (same seed, same bytes).
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::process::Command;

use fraud_signals::{FraudConfig, RuleId};
use transit_ledger::simulate::{self, CountryKeys, RuleScore};
use transit_sim::{SimConfig, Simulation};

const BIN: &str = env!("CARGO_BIN_EXE_transit-ledger");

fn keys() -> CountryKeys {
    CountryKeys::load(
        &common::dev_registry_path(),
        &common::repo_root().join("ops/keys/dev"),
    )
    .unwrap()
}

fn missed(scores: &[RuleScore], except: &[RuleId]) -> Vec<String> {
    scores
        .iter()
        .filter(|s| !except.contains(&s.rule) && !s.meets_targets())
        .map(|s| format!("{s:?}"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulated_fraud_is_caught_through_the_real_pipeline() {
    let sim = Simulation::generate(&SimConfig {
        seed: 42,
        movements: 1_200,
        fraud_rate: 0.15,
        ..SimConfig::default()
    })
    .unwrap();
    let rendered = simulate::render(&sim, &keys()).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let report = simulate::ingest(&rendered, &data, common::dev_registry())
        .await
        .unwrap();
    // Every delivery is recorded or recognised as a redelivery: the traffic is lawful.
    assert!(report.refused.is_empty(), "{report:?}");
    assert!(report.duplicates > 0, "{report:?}");

    // The shipped thresholds list every leg of the simulated corridors, so the simulator's
    // recommendation adds nothing: the rules are scored as deployed.
    assert_eq!(
        Simulation::recommended_fraud_config().segment_minimums,
        FraudConfig::default().segment_minimums
    );
    let shipped = simulate::score(&data, &rendered.truth, FraudConfig::default())
        .await
        .unwrap();
    print!("{}", simulate::table(&shipped));
    assert!(shipped.iter().all(|s| s.expected > 0), "{shipped:?}");
    let misses = missed(&shipped, &[]);
    assert!(misses.is_empty(), "{misses:#?}");
}

fn run(args: &[&str]) -> (i32, String) {
    let out = Command::new(BIN)
        .args(args)
        .current_dir(common::repo_root())
        .output()
        .unwrap();
    (
        out.status.code().unwrap(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn simulate_into(dir: &Path, seed: &str) {
    let (code, out) = run(&[
        "simulate",
        "--seed",
        seed,
        "--movements",
        "400",
        "--fraud-rate",
        "0.25",
        "--out",
        dir.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}");
}

const FILES: [&str; 5] = [
    "messages.jsonl",
    "plan.jsonl",
    "truth.json",
    "fraud-config.json",
    "simulation.json",
];

#[test]
fn simulate_is_deterministic_and_evaluate_scores_it() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b, c) = (
        tmp.path().join("a"),
        tmp.path().join("b"),
        tmp.path().join("c"),
    );
    simulate_into(&a, "9");
    simulate_into(&b, "9");
    simulate_into(&c, "10");
    for f in FILES {
        let bytes = std::fs::read(a.join(f)).unwrap();
        assert!(!bytes.is_empty(), "{f}");
        assert_eq!(bytes, std::fs::read(b.join(f)).unwrap(), "{f} differs");
    }
    assert_ne!(
        std::fs::read(a.join("messages.jsonl")).unwrap(),
        std::fs::read(c.join("messages.jsonl")).unwrap()
    );

    // The ground truth names a movement and its rules; every line of the plan names a message.
    let truth: serde_json::Value =
        serde_json::from_slice(&std::fs::read(a.join("truth.json")).unwrap()).unwrap();
    let movements = truth["movements"].as_array().unwrap();
    assert_eq!(movements.len(), 400);
    let fraud: Vec<_> = movements
        .iter()
        .filter(|m| !m["expected"].as_array().unwrap().is_empty())
        .collect();
    assert!(fraud.len() >= 100, "{}", fraud.len());
    assert!(fraud[0]["mrn"].as_str().unwrap().len() == 18);
    assert!(fraud[0]["scenario"].is_string());

    let data = tmp.path().join("data");
    let (code, out) = run(&[
        "evaluate",
        "--sim",
        a.to_str().unwrap(),
        "--data-dir",
        data.to_str().unwrap(),
        "--fraud-config",
        a.join("fraud-config.json").to_str().unwrap(),
        "--check",
    ]);
    assert_eq!(code, 0, "{out}");
    for rule in RuleId::ALL {
        assert!(out.contains(rule.code()), "{out}");
    }
    assert!(!out.contains("MISSED"), "{out}");
    // The log it wrote verifies, signatures included.
    let (code, out) = run(&["verify", "--data-dir", data.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
}
