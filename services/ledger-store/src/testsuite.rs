//! The contract every [`EventStore`] backend must pass, written once. A backend's tests call
//! [`contract_tests!`](crate::contract_tests) with a factory that makes a fresh, empty store.

use std::collections::{HashMap, HashSet};

use futures::StreamExt;
use uuid::Uuid;

use crate::{EventId, EventStore, ExpectedVersion, NewEvent, StoreError, StreamAppend, StreamId};

/// A fresh event with a random id.
pub fn event(event_type: &str, data: &[u8]) -> NewEvent {
    NewEvent {
        event_id: EventId(Uuid::new_v4()),
        event_type: event_type.to_owned(),
        schema_version: 1,
        data: data.to_vec(),
        metadata: b"{}".to_vec(),
    }
}

/// An append to one stream.
pub fn to(stream: &str, expected: ExpectedVersion, events: Vec<NewEvent>) -> StreamAppend {
    StreamAppend {
        stream: StreamId::new(stream).expect("invariant: test stream names are valid"),
        expected,
        events,
    }
}

fn sid(name: &str) -> StreamId {
    StreamId::new(name).expect("invariant: test stream names are valid")
}

/// Appended events read back equal, with versions from 0 and increasing positions.
pub async fn append_then_read_stream<S: EventStore>(store: &S) {
    let events = vec![event("A", b"1"), event("B", b"2"), event("C", b"3")];
    let out = store
        .append(vec![to(
            "s-read",
            ExpectedVersion::NoStream,
            events.clone(),
        )])
        .await
        .expect("append");
    assert!(!out.already_recorded);
    let read = store
        .read_stream(&sid("s-read"), 0, 100)
        .await
        .expect("read");
    assert_eq!(read.len(), 3);
    for (i, (r, e)) in read.iter().zip(&events).enumerate() {
        assert_eq!(r.version, i as u64);
        assert_eq!(r.event_id, e.event_id);
        assert_eq!(r.data, e.data);
        assert_eq!(r.metadata, e.metadata);
        assert_eq!(r.event_type, e.event_type);
        assert_eq!(r.position, out.events[i].position);
    }
    let tail = store
        .read_stream(&sid("s-read"), 2, 100)
        .await
        .expect("read");
    assert_eq!(tail.len(), 1);
    assert_eq!(tail[0].version, 2);
    assert!(store
        .read_stream(&sid("nope"), 0, 10)
        .await
        .expect("read")
        .is_empty());
    assert_eq!(
        store.stream_version(&sid("s-read")).await.expect("v"),
        Some(2)
    );
    assert_eq!(store.stream_version(&sid("nope")).await.expect("v"), None);
}

/// Expected-version checks: none yet, exactly N, any.
pub async fn expected_versions<S: EventStore>(store: &S) {
    store
        .append(vec![to(
            "s-ev",
            ExpectedVersion::NoStream,
            vec![event("A", b"")],
        )])
        .await
        .expect("first");
    let err = store
        .append(vec![to(
            "s-ev",
            ExpectedVersion::NoStream,
            vec![event("A", b"")],
        )])
        .await
        .expect_err("stream exists");
    assert!(
        matches!(
            err,
            StoreError::WrongExpectedVersion {
                actual: Some(0),
                ..
            }
        ),
        "{err}"
    );
    let err = store
        .append(vec![to(
            "s-ev",
            ExpectedVersion::Exact(5),
            vec![event("A", b"")],
        )])
        .await
        .expect_err("wrong version");
    assert!(
        matches!(err, StoreError::WrongExpectedVersion { .. }),
        "{err}"
    );
    let err = store
        .append(vec![to(
            "s-new",
            ExpectedVersion::Exact(0),
            vec![event("A", b"")],
        )])
        .await
        .expect_err("no stream yet");
    assert!(
        matches!(err, StoreError::WrongExpectedVersion { actual: None, .. }),
        "{err}"
    );
    let ok = store
        .append(vec![to(
            "s-ev",
            ExpectedVersion::Exact(0),
            vec![event("B", b"")],
        )])
        .await
        .expect("exact");
    assert_eq!(ok.events[0].version, 1);
    let ok = store
        .append(vec![to(
            "s-ev",
            ExpectedVersion::Any,
            vec![event("C", b"")],
        )])
        .await
        .expect("any");
    assert_eq!(ok.events[0].version, 2);
}

/// One append across streams is all or nothing.
pub async fn atomic_across_streams<S: EventStore>(store: &S) {
    let head = store.head();
    let out = store
        .append(vec![
            to(
                "s-mov",
                ExpectedVersion::NoStream,
                vec![event("Released", b"m")],
            ),
            to(
                "s-gua",
                ExpectedVersion::NoStream,
                vec![event("Reserved", b"g")],
            ),
        ])
        .await
        .expect("append");
    assert_eq!(out.events.len(), 2);
    assert_eq!(out.events[0].position, head);
    assert_eq!(out.events[1].position, head + 1);
    let err = store
        .append(vec![
            to(
                "s-mov",
                ExpectedVersion::Exact(0),
                vec![event("Discharged", b"m")],
            ),
            to(
                "s-gua",
                ExpectedVersion::NoStream,
                vec![event("Released", b"g")],
            ),
        ])
        .await
        .expect_err("second stream check fails");
    assert!(matches!(err, StoreError::WrongExpectedVersion { .. }));
    assert_eq!(
        store.head(),
        head + 2,
        "nothing of the failed append was written"
    );
    assert_eq!(
        store
            .read_stream(&sid("s-mov"), 0, 10)
            .await
            .expect("read")
            .len(),
        1
    );
}

/// Event ids are permanent: a repeat returns the original outcome; a reuse is a conflict.
pub async fn idempotent_by_event_id<S: EventStore>(store: &S) {
    let events = vec![event("A", b"x"), event("B", b"y")];
    let first = store
        .append(vec![to(
            "s-idem",
            ExpectedVersion::NoStream,
            events.clone(),
        )])
        .await
        .expect("first");
    let head = store.head();
    // The repeat carries a stale expected version, as a redelivered command would.
    let again = store
        .append(vec![to(
            "s-idem",
            ExpectedVersion::NoStream,
            events.clone(),
        )])
        .await
        .expect("repeat");
    assert!(again.already_recorded);
    assert_eq!(again.events, first.events);
    assert_eq!(store.head(), head);
    let mut changed = events[0].clone();
    changed.data = b"other".to_vec();
    let err = store
        .append(vec![to("s-idem", ExpectedVersion::Any, vec![changed])])
        .await
        .expect_err("same id, other content");
    assert!(matches!(err, StoreError::EventIdConflict { .. }), "{err}");
    let err = store
        .append(vec![to(
            "s-idem",
            ExpectedVersion::Any,
            vec![events[0].clone(), event("C", b"")],
        )])
        .await
        .expect_err("partly recorded");
    assert!(matches!(err, StoreError::EventIdConflict { .. }), "{err}");
    let err = store
        .append(vec![to(
            "s-other",
            ExpectedVersion::Any,
            vec![events[1].clone()],
        )])
        .await
        .expect_err("same id, other stream");
    assert!(matches!(err, StoreError::EventIdConflict { .. }), "{err}");
    assert_eq!(store.head(), head);
    let found = store
        .event_by_id(events[1].event_id)
        .await
        .expect("by id")
        .expect("found");
    assert_eq!(found.position, first.events[1].position);
    assert!(store
        .event_by_id(EventId(Uuid::new_v4()))
        .await
        .expect("by id")
        .is_none());
}

/// Malformed appends are refused with a reason.
pub async fn invalid_appends<S: EventStore>(store: &S) {
    let head = store.head();
    let err = store.append(vec![]).await.expect_err("empty");
    assert!(matches!(err, StoreError::Invalid(_)));
    let e = event("A", b"");
    let err = store
        .append(vec![to("s-bad", ExpectedVersion::Any, vec![e.clone(), e])])
        .await
        .expect_err("duplicate id inside one append");
    assert!(matches!(err, StoreError::Invalid(_)));
    let big = event("A", &vec![0u8; crate::EVENT_BYTES_MAX + 1]);
    let err = store
        .append(vec![to("s-bad", ExpectedVersion::Any, vec![big])])
        .await
        .expect_err("too big");
    assert!(matches!(err, StoreError::Invalid(_)));
    let many = (0..=crate::APPEND_EVENTS_MAX)
        .map(|_| event("A", b""))
        .collect();
    let err = store
        .append(vec![to("s-bad", ExpectedVersion::Any, many)])
        .await
        .expect_err("too many");
    assert!(matches!(err, StoreError::Invalid(_)));
    assert_eq!(store.head(), head);
}

/// The global feed reads in order from any position.
pub async fn read_all_in_order<S: EventStore>(store: &S) {
    let head = store.head();
    for i in 0..10u8 {
        store
            .append(vec![to(
                &format!("s-all-{}", i % 3),
                ExpectedVersion::Any,
                vec![event("A", &[i])],
            )])
            .await
            .expect("append");
    }
    let all = store.read_all(head, 100).await.expect("read");
    assert_eq!(all.len(), 10);
    for (i, e) in all.iter().enumerate() {
        assert_eq!(e.position, head + i as u64);
        assert_eq!(e.data, vec![i as u8]);
    }
    let some = store.read_all(head + 4, 3).await.expect("read");
    assert_eq!(
        some.iter().map(|e| e.position).collect::<Vec<_>>(),
        vec![head + 4, head + 5, head + 6]
    );
    assert!(store.read_all(head + 10, 5).await.expect("read").is_empty());
}

/// A subscription catches up, then follows live appends, in order, without gaps.
pub async fn subscription_catches_up_then_follows<S: EventStore>(store: &S) {
    let head = store.head();
    for i in 0..5u8 {
        store
            .append(vec![to(
                "s-sub",
                ExpectedVersion::Any,
                vec![event("A", &[i])],
            )])
            .await
            .expect("append");
    }
    let mut feed = store.subscribe(head);
    for i in 0..5u64 {
        let e = feed.next().await.expect("item").expect("event");
        assert_eq!(e.position, head + i);
    }
    let live = tokio::spawn(async move {
        let mut got = Vec::new();
        while got.len() < 300 {
            let e = feed.next().await.expect("item").expect("event");
            got.push(e.position);
        }
        got
    });
    for chunk in 0..30u8 {
        let events = (0..10).map(|i| event("L", &[chunk, i])).collect();
        store
            .append(vec![to("s-sub-live", ExpectedVersion::Any, events)])
            .await
            .expect("append");
    }
    let got = tokio::time::timeout(std::time::Duration::from_secs(30), live)
        .await
        .expect("subscription keeps up")
        .expect("task");
    let want: Vec<u64> = (head + 5..head + 305).collect();
    assert_eq!(got, want);
}

/// Many concurrent appenders: one global order with no gaps, contiguous stream versions.
pub async fn concurrent_appends<S: EventStore + Clone>(store: &S) {
    let head = store.head();
    let mut tasks = Vec::new();
    for t in 0..64u32 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut positions = Vec::new();
            for i in 0..20u32 {
                let stream = if i % 2 == 0 {
                    format!("s-conc-{t}")
                } else {
                    "s-conc-shared".to_owned()
                };
                let out = store
                    .append(vec![to(
                        &stream,
                        ExpectedVersion::Any,
                        vec![event("A", &t.to_le_bytes())],
                    )])
                    .await
                    .expect("append");
                positions.push(out.events[0].position);
            }
            positions
        }));
    }
    let mut all = HashSet::new();
    for t in tasks {
        for p in t.await.expect("task") {
            assert!(all.insert(p), "position {p} given twice");
        }
    }
    assert_eq!(all.len(), 64 * 20);
    assert_eq!(store.head(), head + 64 * 20);
    assert!(all.iter().all(|p| (head..head + 1280).contains(p)));
    let shared = store
        .read_stream(&sid("s-conc-shared"), 0, 4096)
        .await
        .expect("read");
    assert_eq!(shared.len(), 640);
    let mut last = None;
    for (i, e) in shared.iter().enumerate() {
        assert_eq!(e.version, i as u64);
        if let Some(prev) = last {
            assert!(e.position > prev);
        }
        last = Some(e.position);
    }
    let mut per_stream: HashMap<String, u64> = HashMap::new();
    for e in store.read_all(head, 4096).await.expect("read") {
        let next = per_stream.entry(e.stream.to_string()).or_default();
        assert_eq!(e.version, *next);
        *next += 1;
    }
}

/// Checkpoints sign the current tree; proofs verify against signed roots.
pub async fn checkpoints_and_proofs<S: EventStore>(store: &S) {
    store
        .append(vec![to(
            "s-proof",
            ExpectedVersion::Any,
            vec![event("A", b"1"), event("B", b"2")],
        )])
        .await
        .expect("append");
    let cp1 = store
        .checkpoint_now()
        .await
        .expect("checkpoint")
        .expect("some");
    assert_eq!(cp1.tree_size, store.head());
    assert_eq!(store.latest_checkpoint(), Some(cp1.clone()));
    store
        .append(vec![to(
            "s-proof",
            ExpectedVersion::Any,
            vec![event("C", b"3")],
        )])
        .await
        .expect("append");
    let cp2 = store
        .checkpoint_now()
        .await
        .expect("checkpoint")
        .expect("some");
    assert_eq!(cp2.tree_size, cp1.tree_size + 1);
    let root2 = ledger_merkle::from_hex(&cp2.root).expect("hex");
    for position in 0..cp2.tree_size {
        let proof = store
            .inclusion_proof(position, cp2.tree_size)
            .await
            .expect("proof");
        let leaf = ledger_merkle::from_hex(&proof.leaf_hash).expect("hex");
        let path: Vec<_> = proof
            .path
            .iter()
            .map(|h| ledger_merkle::from_hex(h).expect("hex"))
            .collect();
        ledger_merkle::verify_inclusion(&leaf, position, cp2.tree_size, &path, &root2)
            .expect("inclusion verifies");
        let event = store
            .read_all(position, 1)
            .await
            .expect("read")
            .pop()
            .expect("event");
        assert_eq!(event.leaf_hash, leaf);
    }
    let c = store
        .consistency_proof(cp1.tree_size, cp2.tree_size)
        .await
        .expect("proof");
    assert_eq!(c.old_root, cp1.root);
    assert_eq!(c.new_root, cp2.root);
    let path: Vec<_> = c
        .path
        .iter()
        .map(|h| ledger_merkle::from_hex(h).expect("hex"))
        .collect();
    ledger_merkle::verify_consistency(
        cp1.tree_size,
        cp2.tree_size,
        &ledger_merkle::from_hex(&cp1.root).expect("hex"),
        &root2,
        &path,
    )
    .expect("consistency verifies");
    assert!(store
        .inclusion_proof(cp2.tree_size, cp2.tree_size)
        .await
        .is_err());
    assert!(store
        .consistency_proof(cp2.tree_size, cp1.tree_size)
        .await
        .is_err());
}

/// Generates one `#[tokio::test]` per contract case for a backend. `$factory` is an async fn
/// returning `(store, guard)`; the guard (a temp dir, a server handle) lives as long as the test.
#[macro_export]
macro_rules! contract_tests {
    ($factory:path) => {
        $crate::contract_tests!(@case $factory, append_then_read_stream);
        $crate::contract_tests!(@case $factory, expected_versions);
        $crate::contract_tests!(@case $factory, atomic_across_streams);
        $crate::contract_tests!(@case $factory, idempotent_by_event_id);
        $crate::contract_tests!(@case $factory, invalid_appends);
        $crate::contract_tests!(@case $factory, read_all_in_order);
        $crate::contract_tests!(@case $factory, subscription_catches_up_then_follows);
        $crate::contract_tests!(@case $factory, concurrent_appends);
        $crate::contract_tests!(@case $factory, checkpoints_and_proofs);
    };
    (@case $factory:path, $case:ident) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $case() {
            let (store, _guard) = $factory().await;
            $crate::testsuite::$case(&store).await;
        }
    };
}
