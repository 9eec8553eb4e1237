//! Determinism, the shape of the ground truth, and the realism promises honest traffic makes.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};

use transit_contract::messages::MessageBody;

use super::*;

fn config(seed: u64, movements: u32) -> SimConfig {
    SimConfig {
        seed,
        movements,
        fraud_rate: 0.1,
        ..SimConfig::default()
    }
}

fn bytes(sim: &Simulation) -> Vec<u8> {
    let (messages, deliveries) = sim.deliveries();
    let mut out = serde_json::to_vec(&messages).unwrap();
    for d in deliveries {
        out.extend(format!("{} {} {}\n", d.at, d.message, d.redelivery).bytes());
    }
    out.extend(serde_json::to_vec(&sim.truth()).unwrap());
    out
}

#[test]
fn same_seed_same_bytes_other_seed_other_bytes() {
    let a = bytes(&Simulation::generate(&config(7, 300)).unwrap());
    let b = bytes(&Simulation::generate(&config(7, 300)).unwrap());
    let c = bytes(&Simulation::generate(&config(8, 300)).unwrap());
    assert_eq!(a, b);
    assert_ne!(a, c);
}

#[test]
fn every_message_validates_and_every_scenario_is_injected() {
    let sim = Simulation::generate(&config(3, 2_000)).unwrap();
    let (messages, deliveries) = sim.deliveries();
    for m in &messages {
        m.validate().unwrap();
    }
    assert!(deliveries.windows(2).all(|w| w[0].at <= w[1].at));
    assert!(deliveries.iter().any(|d| d.redelivery));
    let used: BTreeSet<usize> = deliveries.iter().map(|d| d.message).collect();
    assert_eq!(used.len(), messages.len());
    assert!(deliveries.iter().all(|d| d.at < sim.end()));

    let truth = sim.truth();
    assert_eq!(truth.movements.len(), 2_000);
    let anchors: BTreeMap<Scenario, usize> = truth
        .movements
        .iter()
        .filter(|e| e.role == Some(Role::Anchor))
        .fold(BTreeMap::new(), |mut acc, e| {
            *acc.entry(e.scenario.unwrap()).or_default() += 1;
            acc
        });
    assert_eq!(anchors.values().sum::<usize>(), 200, "{anchors:?}");
    for s in Scenario::ALL {
        assert!(
            anchors.get(&s).copied().unwrap_or(0) >= 20,
            "{s:?}: {anchors:?}"
        );
        assert!(!truth.expected(s.rule()).is_empty());
    }
    assert!(!truth.expected(RuleId::HighRiskGoods).is_empty());
    for e in &truth.movements {
        assert_eq!(e.scenario.is_some(), !e.expected.is_empty(), "{e:?}");
        if let Some(s) = e.scenario {
            assert!(e.expected.contains(&s.rule()), "{e:?}");
        }
        assert_eq!(
            e.expected.contains(&RuleId::HighRiskGoods),
            e.expected.len() > 1 && e.expected.contains(&RuleId::HighRiskGoods)
        );
    }
}

#[test]
fn honest_lorries_and_seals_are_never_on_two_open_movements() {
    let sim = Simulation::generate(&config(11, 3_000)).unwrap();
    let truth = sim.truth();
    let shared: BTreeSet<&Mrn> = truth
        .expected(RuleId::SharedVehicle)
        .into_iter()
        .chain(truth.expected(RuleId::SharedSeal))
        .collect();
    // (plate or seal) -> open intervals [release, arrival) of honest movements.
    let mut open: BTreeMap<String, Vec<(i64, i64)>> = BTreeMap::new();
    for m in &sim.plan.movements {
        let (Some(rel), false) = (m.released_ms(), shared.contains(&m.mrn)) else {
            continue;
        };
        let end = m.arrival_ms().unwrap_or(i64::MAX);
        open.entry(m.plate.clone()).or_default().push((rel, end));
        for s in &m.seals {
            open.entry(s.clone()).or_default().push((rel, end));
        }
    }
    for (key, mut spans) in open {
        spans.sort_unstable();
        for w in spans.windows(2) {
            assert!(w[0].1 <= w[1].0, "{key} open twice: {w:?}");
        }
    }
}

#[test]
fn honest_legs_respect_the_recommended_minimums() {
    let sim = Simulation::generate(&config(5, 2_000)).unwrap();
    let fraud = Simulation::recommended_fraud_config();
    for (i, m) in sim.plan.movements.iter().enumerate() {
        if m.scenario.is_some() {
            continue;
        }
        let mut points: Vec<(Timestamp, transit_contract::ids::OfficeCode)> = sim
            .movement_messages(i)
            .iter()
            .filter_map(|msg| match &msg.body {
                MessageBody::ReleaseForTransit(r) => {
                    Some((r.released_at, m.route.offices[0].parse().unwrap()))
                }
                MessageBody::BorderCrossing(c) => Some((c.crossed_at, c.office.clone())),
                MessageBody::ArrivalNotification(a) => Some((a.arrived_at, a.office.clone())),
                _ => None,
            })
            .collect();
        // The rule orders the checkpoints by time, as here.
        points.sort();
        for w in points.windows(2) {
            let min = fraud.segment_minimum_seconds(&w[0].1, &w[1].1) as i64 * 1000;
            let took = w[1].0.unix_millis() - w[0].0.unix_millis();
            assert!(took >= min, "{}: {w:?} took {took} ms", m.mrn);
        }
    }
}
