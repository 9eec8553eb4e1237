//! Criterion micro-benchmarks of the XML codec: `decode_inbound` of the fixture journey's
//! declaration (the largest inbound message) and of a border crossing, and encoding the
//! declaration back.
#![allow(clippy::unwrap_used)]

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use transit_contract::{fixtures, Timestamp};
use transit_xml::{decode_inbound, encode_inbound};

fn parse(c: &mut Criterion) {
    let base = Timestamp::from_unix_millis(1_709_280_000_000).unwrap();
    let journey = fixtures::journey(base, 1);
    let mut group = c.benchmark_group("xml");
    group.throughput(Throughput::Elements(1));
    for (name, msg) in [
        ("declaration", &journey.declaration),
        ("crossing", &journey.crossings[0]),
    ] {
        let bytes = encode_inbound(msg);
        assert_eq!(&decode_inbound(&bytes).unwrap(), msg);
        group.bench_function(format!("decode_inbound {name} ({} B)", bytes.len()), |b| {
            b.iter(|| decode_inbound(black_box(&bytes)).unwrap())
        });
    }
    group.bench_function("encode_inbound declaration", |b| {
        b.iter(|| encode_inbound(black_box(&journey.declaration)))
    });
    group.finish();
}

criterion_group!(benches, parse);
criterion_main!(benches);
