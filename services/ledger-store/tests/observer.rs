//! The store's measurement hook: every append is reported with how it was answered and how
//! many events it wrote, and every group commit with its batch size; the events of the
//! commits add up to the log's head.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use ledger_store::file::{FileStore, FileStoreConfig};
use ledger_store::observe::{AppendAnswer, AppendObserved, CommitObserved};
use ledger_store::testsuite::{event, to};
use ledger_store::{EventStore, ExpectedVersion, LedgerKey, StoreObserver};
use parking_lot::Mutex;

#[derive(Default)]
struct Recorder {
    appends: Mutex<Vec<AppendObserved>>,
    commits: Mutex<Vec<CommitObserved>>,
}

impl StoreObserver for Recorder {
    fn append_answered(&self, append: &AppendObserved) {
        self.appends.lock().push(*append);
    }

    fn commit_synced(&self, commit: &CommitObserved) {
        self.commits.lock().push(*commit);
    }
}

#[tokio::test]
async fn appends_and_commits_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = FileStoreConfig::new(dir.path());
    config.key = Some(LedgerKey::from_secret([5; 32]));
    let store = Arc::new(FileStore::open(config).unwrap());
    let recorder = Arc::new(Recorder::default());
    store.set_observer(recorder.clone());

    // Twenty appends of two events at once, so that some share a group commit.
    let appends = (0..20).map(|i| {
        let store = store.clone();
        async move {
            let stream = format!("movement-{i}");
            store
                .append(vec![to(
                    &stream,
                    ExpectedVersion::NoStream,
                    vec![
                        event("Declared", format!("a{i}").as_bytes()),
                        event("Released", format!("b{i}").as_bytes()),
                    ],
                )])
                .await
                .unwrap()
        }
    });
    let outcomes = futures::future::join_all(appends).await;
    // The same events again: a duplicate, nothing written.
    let again = outcomes[0].events.clone();
    let first = store.read_all(again[0].position, 2).await.unwrap();
    let replay = vec![to(
        "movement-0",
        ExpectedVersion::Any,
        first
            .iter()
            .map(|e| ledger_store::NewEvent {
                event_id: e.event_id,
                event_type: e.event_type.clone(),
                schema_version: e.schema_version,
                metadata: e.metadata.clone(),
                data: e.data.clone(),
            })
            .collect(),
    )];
    assert!(store.append(replay).await.unwrap().already_recorded);
    // A version conflict: failed.
    store
        .append(vec![to(
            "movement-1",
            ExpectedVersion::NoStream,
            vec![event("Declared", b"again")],
        )])
        .await
        .unwrap_err();

    let appends = recorder.appends.lock().clone();
    let commits = recorder.commits.lock().clone();
    let count = |answer| appends.iter().filter(|a| a.answer == answer).count();
    assert_eq!(count(AppendAnswer::Recorded), 20);
    assert_eq!(count(AppendAnswer::Duplicate), 1);
    assert_eq!(count(AppendAnswer::Failed), 1);
    let recorded: u64 = appends.iter().map(|a| a.events).sum();
    assert_eq!(recorded, store.head());
    assert_eq!(store.head(), 40);
    // Every event written went through exactly one fsync, in batches of whole appends.
    assert!(!commits.is_empty() && commits.len() <= 20, "{commits:?}");
    assert_eq!(commits.iter().map(|c| c.events).sum::<u64>(), 40);
    assert!(commits.iter().all(|c| c.events % 2 == 0 && c.bytes > 0));
}
