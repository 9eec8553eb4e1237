//! Architecture invariants, read from `cargo metadata`: the core crates (contract, rules,
//! Merkle, XML codec, signatures, projections) do no IO, so they must not depend on runtimes,
//! servers, clients or the store.
#![allow(clippy::unwrap_used)]

use std::collections::{HashMap, HashSet};

const CORE_CRATES: &[&str] = &[
    "transit-contract",
    "transit-rules",
    "ledger-merkle",
    "transit-xml",
    "transit-auth",
    "transit-views",
    "fraud-signals",
    "transit-sim",
];
/// Crates that mean IO (runtimes, network, storage, edges of this workspace).
const IO_CRATES: &[&str] = &[
    "tokio",
    "mio",
    "axum",
    "hyper",
    "reqwest",
    "tonic",
    "async-graphql",
    "ledger-store",
    "transit-ledger",
    "opentelemetry-otlp",
    "rusqlite",
    "redb",
    "async-stomp",
    "socket2",
    "tracing-subscriber",
];

#[test]
fn core_crates_do_no_io() {
    let metadata = cargo_metadata::MetadataCommand::new()
        .manifest_path(concat!(env!("CARGO_MANIFEST_DIR"), "/../../Cargo.toml"))
        .exec()
        .unwrap();
    let resolve = metadata.resolve.as_ref().unwrap();
    let names: HashMap<_, _> = metadata
        .packages
        .iter()
        .map(|p| (p.id.clone(), p.name.to_string()))
        .collect();
    let nodes: HashMap<_, _> = resolve.nodes.iter().map(|n| (n.id.clone(), n)).collect();
    for core in CORE_CRATES {
        let pkg = metadata
            .packages
            .iter()
            .find(|p| p.name.as_str() == *core)
            .unwrap();
        // Normal (non-dev) dependencies, transitively.
        let mut seen = HashSet::new();
        let mut stack = vec![pkg.id.clone()];
        while let Some(id) = stack.pop() {
            for dep in &nodes[&id].deps {
                let normal = dep
                    .dep_kinds
                    .iter()
                    .any(|k| k.kind == cargo_metadata::DependencyKind::Normal);
                if normal && seen.insert(dep.pkg.clone()) {
                    stack.push(dep.pkg.clone());
                }
            }
        }
        let bad: Vec<_> = seen
            .iter()
            .map(|id| names[id].as_str())
            .filter(|n| IO_CRATES.contains(n))
            .collect();
        assert!(bad.is_empty(), "{core} depends on IO crates: {bad:?}");
    }
}
