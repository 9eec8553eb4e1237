//! Hooks through which a service measures the log (append latency, group commits and their
//! fsyncs) without this crate depending on a metrics library: the store calls a
//! [`StoreObserver`] and the service turns the calls into whatever instruments it uses.
//!
//! The calls happen on the append path (the writer thread for commits, the caller's task for
//! appends), so an observer must be quick and must not block: record into counters and
//! histograms, nothing more.

use std::time::Duration;

/// How an append was answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AppendAnswer {
    /// Its events were written and are durable.
    Recorded,
    /// Its events were already in the log (idempotency by event id); nothing was written.
    Duplicate,
    /// It failed: a version conflict, an invalid append, or the store could not write.
    Failed,
}

impl AppendAnswer {
    /// A short lower-case name (`recorded`, `duplicate`, `failed`), for labels.
    pub fn as_str(self) -> &'static str {
        match self {
            AppendAnswer::Recorded => "recorded",
            AppendAnswer::Duplicate => "duplicate",
            AppendAnswer::Failed => "failed",
        }
    }
}

/// One append as its caller saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AppendObserved {
    /// How it was answered.
    pub answer: AppendAnswer,
    /// Events it wrote (0 unless [`AppendAnswer::Recorded`]).
    pub events: u64,
    /// From the call until the answer: waiting for the writer, the group commit and its fsync.
    pub latency: Duration,
}

/// One group commit that reached the disk: one write and one `fdatasync` shared by every
/// append waiting when the writer woke.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CommitObserved {
    /// Events it wrote (the fsync's batch size).
    pub events: u64,
    /// Bytes it wrote.
    pub bytes: u64,
    /// How long the `fdatasync` took.
    pub fsync: Duration,
}

/// Receives what the store measures. Every method has an empty default, so an observer
/// implements only what it wants.
pub trait StoreObserver: Send + Sync + 'static {
    /// An append was answered.
    fn append_answered(&self, _append: &AppendObserved) {}

    /// A group commit was written and fsynced.
    fn commit_synced(&self, _commit: &CommitObserved) {}
}
