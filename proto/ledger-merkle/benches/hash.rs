//! Criterion micro-benchmarks of the Merkle hashing that bounds read + verify: the RFC 9162
//! leaf hash of a 1 KiB record, the interior node hash, and appending leaves to the tree
//! (which hashes the completed subtrees).
#![allow(clippy::unwrap_used)]

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use ledger_merkle::{leaf_hash, node_hash, MerkleTree};

fn hashing(c: &mut Criterion) {
    let record = vec![0x5a_u8; 1024];
    let mut group = c.benchmark_group("merkle");
    group.throughput(Throughput::Elements(1));
    group.bench_function("leaf hash 1 KiB", |b| {
        b.iter(|| leaf_hash(black_box(&record)))
    });
    let left = leaf_hash(b"left");
    let right = leaf_hash(b"right");
    group.bench_function("node hash", |b| {
        b.iter(|| node_hash(black_box(&left), black_box(&right)))
    });
    let leaves: Vec<_> = (0..1024u32).map(|i| leaf_hash(&i.to_le_bytes())).collect();
    group.throughput(Throughput::Elements(leaves.len() as u64));
    group.bench_function("tree push 1024 leaves", |b| {
        b.iter_batched(
            MerkleTree::new,
            |mut tree| {
                for leaf in &leaves {
                    tree.push_leaf_hash(*leaf);
                }
                tree.root()
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group!(benches, hashing);
criterion_main!(benches);
