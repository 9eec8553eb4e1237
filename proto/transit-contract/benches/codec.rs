//! Criterion micro-benchmarks of the event codec: encoding a movement event to its stored
//! `{"meta", "data"}` JSON and decoding it back (through the upcasting step), for the largest
//! event (the declaration) and a typical small one (a border crossing).
#![allow(clippy::unwrap_used)]

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use transit_contract::events::{Actor, EventMeta, MovementEvent};
use transit_contract::fixtures;
use transit_contract::Timestamp;

fn meta(msg: &transit_contract::InboundMessage) -> EventMeta {
    EventMeta {
        message_id: msg.message_id.clone(),
        correlation_id: msg.correlation_id.clone(),
        actor: Actor::from(&msg.sender),
        occurred_at: msg.sent_at,
        recorded_at: msg.sent_at,
        message_digest: msg.content_digest_hex(),
        anomaly: None,
    }
}

fn codec(c: &mut Criterion) {
    let base = Timestamp::from_unix_millis(1_709_280_000_000).unwrap();
    let journey = fixtures::journey(base, 1);
    let declared = MovementEvent::TransitDeclared {
        declaration: journey.declaration_body().clone(),
    };
    let crossed = MovementEvent::BorderCrossed {
        office: fixtures::CINKASSE_TG.parse().unwrap(),
        crossed_at: journey.crossings[0].sent_at,
        declared_office: true,
        seals_intact: true,
        seals_observed: Vec::new(),
    };
    let cases = [
        ("declared", declared, meta(&journey.declaration)),
        ("crossed", crossed, meta(&journey.crossings[0])),
    ];
    let mut group = c.benchmark_group("event codec");
    for (name, event, meta) in &cases {
        let bytes = event.encode(meta);
        group.bench_function(format!("encode {name} ({} B)", bytes.len()), |b| {
            b.iter(|| black_box(event).encode(black_box(meta)))
        });
        group.bench_function(format!("decode {name} ({} B)", bytes.len()), |b| {
            b.iter(|| {
                MovementEvent::decode(
                    event.event_type(),
                    event.schema_version(),
                    black_box(&bytes),
                )
                .unwrap()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, codec);
criterion_main!(benches);
