//! Criterion micro-benchmarks of the pure rules: folding a whole journey's movement events
//! into a `MovementState` (what the ledger does for every message before deciding), and one
//! `decide` (a border crossing on a released movement, the most frequent message).
#![allow(clippy::unwrap_used)]

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use transit_contract::events::{EventMeta, GuaranteeEvent, MovementEvent};
use transit_contract::{fixtures, InboundMessage, Timestamp};
use transit_rules::{decide, guarantee_needed, Context, Decision, GuaranteeState, MovementState};

/// Every event of one journey, produced by the rules themselves, message by message.
#[derive(Default)]
struct Streams {
    movement: Vec<(EventMeta, MovementEvent)>,
    guarantee: Vec<(EventMeta, GuaranteeEvent)>,
}

impl Streams {
    fn movement_state(&self) -> MovementState {
        MovementState::from_events(self.movement.iter().map(|(m, e)| (m, e)))
    }

    fn guarantee_state(&self) -> GuaranteeState {
        GuaranteeState::from_events(self.guarantee.iter().map(|(m, e)| (m, e)))
    }

    fn accept(&mut self, msg: &InboundMessage) {
        let movement = self.movement_state();
        let guarantee = guarantee_needed(msg, &movement).map(|_| self.guarantee_state());
        let ctx = Context {
            recorded_at: msg.sent_at,
        };
        match decide(msg, &movement, guarantee.as_ref(), &ctx).unwrap() {
            Decision::Append {
                movement,
                guarantee,
                meta,
            } => {
                self.movement
                    .extend(movement.into_iter().map(|e| (meta.clone(), e)));
                self.guarantee
                    .extend(guarantee.into_iter().map(|e| (meta.clone(), e)));
            }
            Decision::Duplicate => panic!("a fixture message was taken for a duplicate"),
        }
    }
}

fn fold(c: &mut Criterion) {
    let base = Timestamp::from_unix_millis(1_709_280_000_000).unwrap();
    let journey = fixtures::journey(base, 1);
    let mut whole = Streams::default();
    for msg in journey.messages() {
        whole.accept(&msg);
    }
    let mut group = c.benchmark_group("rules");
    group.throughput(Throughput::Elements(whole.movement.len() as u64));
    group.bench_function(
        format!("fold journey ({} movement events)", whole.movement.len()),
        |b| {
            b.iter(|| {
                MovementState::from_events(black_box(&whole.movement).iter().map(|(m, e)| (m, e)))
            })
        },
    );

    // The state just before the first crossing: guarantee registered, declared, released.
    let mut released = Streams::default();
    for msg in [
        &journey.guarantee_registration,
        &journey.declaration,
        &journey.release,
    ] {
        released.accept(msg);
    }
    let movement = released.movement_state();
    let crossing = &journey.crossings[0];
    let ctx = Context {
        recorded_at: crossing.sent_at,
    };
    group.throughput(Throughput::Elements(1));
    group.bench_function("decide border crossing", |b| {
        b.iter(|| decide(black_box(crossing), &movement, None, &ctx).unwrap())
    });
    group.finish();
}

criterion_group!(benches, fold);
criterion_main!(benches);
