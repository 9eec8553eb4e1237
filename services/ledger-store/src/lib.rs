//! The ledger's event log: streams with per-stream versions in one global order, atomic
//! appends across streams, permanent idempotency by event id, group-committed durability,
//! and tamper evidence (an RFC 9162 Merkle tree over the global order with signed checkpoints).
//!
//! The [`EventStore`] trait is what the rest of the ledger talks to; [`file::FileStore`] is the
//! embedded default (own segment files, see `docs/adr/0001-storage-engine.md`). A server-backed
//! implementation (KurrentDB) must pass the same [`testsuite`].

pub mod checkpoint;
pub mod clock;
pub mod file;
pub mod observe;
pub mod record;
pub mod testsuite;
pub mod verify;

use std::fmt;
use std::pin::Pin;

use async_trait::async_trait;
use futures::Stream;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub use checkpoint::{LedgerKey, SignedCheckpoint};
pub use clock::{Clock, ManualClock, SystemClock};
pub use ledger_merkle::Hash;
pub use observe::StoreObserver;

/// Most events one append may carry (all streams together).
pub const APPEND_EVENTS_MAX: usize = 1024;
/// Largest event payload (data + metadata) accepted, in bytes.
pub const EVENT_BYTES_MAX: usize = 1024 * 1024;
/// Longest stream name, in bytes.
pub const STREAM_NAME_BYTES_MAX: usize = 256;
/// Longest event type name, in bytes.
pub const EVENT_TYPE_BYTES_MAX: usize = 128;
/// Most events one read call returns.
pub const READ_EVENTS_MAX: usize = 4096;

/// The name of a stream: printable ASCII without spaces, 1..=256 bytes.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct StreamId(String);

impl StreamId {
    /// Checks and wraps a stream name.
    pub fn new(name: impl Into<String>) -> Result<Self, StoreError> {
        let name = name.into();
        if is_valid_stream_name(&name) {
            Ok(Self(name))
        } else {
            Err(StoreError::Invalid(format!(
                "stream name must be 1..={STREAM_NAME_BYTES_MAX} printable ASCII bytes without spaces"
            )))
        }
    }

    /// The name as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Whether `name` is a stream name: 1..=[`STREAM_NAME_BYTES_MAX`] printable ASCII bytes.
fn is_valid_stream_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= STREAM_NAME_BYTES_MAX
        && name.bytes().all(|b| b.is_ascii_graphic())
}

impl std::borrow::Borrow<str> for StreamId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for StreamId {
    type Error = StoreError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::new(value)
    }
}

impl From<StreamId> for String {
    fn from(value: StreamId) -> Self {
        value.0
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The identity of one event, unique forever across the whole log.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct EventId(pub Uuid);

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// What the writer expects the stream's last version to be before its events are added.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExpectedVersion {
    /// No check.
    Any,
    /// The stream must not exist yet.
    NoStream,
    /// The stream's last event must have exactly this version (versions start at 0).
    Exact(u64),
}

/// An event to be appended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewEvent {
    /// Permanent identity, used for idempotency.
    pub event_id: EventId,
    /// Type name, past tense (`TransitReleased`).
    pub event_type: String,
    /// Schema version of `data`.
    pub schema_version: u16,
    /// The event body, stored and hashed exactly as given.
    pub data: Vec<u8>,
    /// Metadata stored and hashed with the event (submission bytes, signatures...).
    pub metadata: Vec<u8>,
}

/// Events for one stream inside an append.
#[derive(Clone, Debug)]
pub struct StreamAppend {
    /// The stream written.
    pub stream: StreamId,
    /// The optimistic concurrency check for this stream.
    pub expected: ExpectedVersion,
    /// The events, in order.
    pub events: Vec<NewEvent>,
}

/// Where an appended event landed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppendedEvent {
    /// The event's id.
    pub event_id: EventId,
    /// Its stream.
    pub stream: StreamId,
    /// Its version in the stream.
    pub version: u64,
    /// Its global position (= Merkle leaf index).
    pub position: u64,
}

/// The result of a successful append.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppendOutcome {
    /// The events in the order given.
    pub events: Vec<AppendedEvent>,
    /// True when every event id was already recorded with the same content: nothing new was
    /// written and the original positions are returned.
    pub already_recorded: bool,
}

/// An event read back from the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordedEvent {
    /// Global position (= Merkle leaf index).
    pub position: u64,
    /// Stream.
    pub stream: StreamId,
    /// Version in the stream.
    pub version: u64,
    /// Identity.
    pub event_id: EventId,
    /// Type name.
    pub event_type: String,
    /// Schema version of `data`.
    pub schema_version: u16,
    /// Body, as appended.
    pub data: Vec<u8>,
    /// Metadata, as appended.
    pub metadata: Vec<u8>,
    /// The Merkle leaf hash of the record.
    pub leaf_hash: Hash,
}

/// A recorded event borrowed from a reader's buffer (see [`SequentialReader`]): the fields of
/// a [`RecordedEvent`] without copying its bytes.
#[derive(Clone, Copy, Debug)]
pub struct RecordRef<'a> {
    /// Global position (= Merkle leaf index).
    pub position: u64,
    /// Stream name.
    pub stream: &'a str,
    /// Version in the stream.
    pub version: u64,
    /// Identity.
    pub event_id: EventId,
    /// Type name.
    pub event_type: &'a str,
    /// Schema version of `data`.
    pub schema_version: u16,
    /// Body, as appended.
    pub data: &'a [u8],
    /// Metadata, as appended.
    pub metadata: &'a [u8],
    /// The Merkle leaf hash of the record.
    pub leaf_hash: Hash,
}

impl RecordedEvent {
    /// The event as a [`RecordRef`], so that code written for a [`SequentialReader`] also
    /// takes events read with [`EventStore::read_all`].
    pub fn as_record_ref(&self) -> RecordRef<'_> {
        RecordRef {
            position: self.position,
            stream: self.stream.as_str(),
            version: self.version,
            event_id: self.event_id,
            event_type: &self.event_type,
            schema_version: self.schema_version,
            data: &self.data,
            metadata: &self.metadata,
            leaf_hash: self.leaf_hash,
        }
    }
}

/// Reads the global log in position order on the caller's thread, lending each record from
/// its own buffer instead of copying it into a [`RecordedEvent`]: for bulk replays such as a
/// projection rebuild, where allocating and copying every record (and freeing it on another
/// thread) costs more than reading it. Records are checked exactly as
/// [`EventStore::read_all`] checks them (framing, checksum, Merkle leaf, position).
pub trait SequentialReader: Send {
    /// Lends the records from position `from` on, at most `max` (capped by
    /// [`READ_EVENTS_MAX`]), in order, to `visit`, until it breaks. Returns how many were
    /// lent (0 at the head).
    fn read_page(
        &mut self,
        from: u64,
        max: usize,
        visit: &mut dyn FnMut(RecordRef<'_>) -> std::ops::ControlFlow<()>,
    ) -> Result<usize, StoreError>;
}

/// Errors of the event log.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The optimistic concurrency check failed.
    #[error(
        "wrong expected version for stream {stream}: expected {expected:?}, actual {actual:?}"
    )]
    WrongExpectedVersion {
        /// The stream.
        stream: StreamId,
        /// What the writer expected.
        expected: ExpectedVersion,
        /// The stream's last version (None: no stream).
        actual: Option<u64>,
    },
    /// An event id is already recorded with other content, or only part of an append was.
    #[error("event id {event_id} is already recorded with different content or stream")]
    EventIdConflict {
        /// The conflicting id.
        event_id: EventId,
    },
    /// The request is malformed (empty append, oversized event, bad names...).
    #[error("invalid append: {0}")]
    Invalid(String),
    /// Something asked for does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// The log on disk is damaged; nothing from the damaged position on is served.
    #[error("log damaged at position {position} (segment {segment}, byte {offset}): {reason}")]
    Corrupt {
        /// Global position of the first bad record.
        position: u64,
        /// Segment file name.
        segment: String,
        /// Byte offset in the segment.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// The store refuses writes after an fsync failure until it is reopened (the page cache
    /// can no longer be trusted to match the disk).
    #[error("store is read-only after a failed write: {0}")]
    Poisoned(String),
    /// The store is shutting down.
    #[error("store is closed")]
    Closed,
    /// A Merkle proof request was out of range.
    #[error("proof: {0}")]
    Proof(#[from] ledger_merkle::MerkleError),
    /// An I/O failure.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
}

/// A live feed of events in global order.
pub type EventStream = Pin<Box<dyn Stream<Item = Result<RecordedEvent, StoreError>> + Send>>;

/// An inclusion proof for one event (RFC 9162 section 2.1.3).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InclusionProof {
    /// Leaf index = global position.
    pub position: u64,
    /// Tree size the proof is for.
    pub tree_size: u64,
    /// The leaf hash, hex.
    pub leaf_hash: String,
    /// Audit path, hex, bottom up.
    pub path: Vec<String>,
    /// Root at `tree_size`, hex.
    pub root: String,
}

/// A consistency proof between two tree sizes (RFC 9162 section 2.1.4).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConsistencyProof {
    /// Older size.
    pub old_size: u64,
    /// Newer size.
    pub new_size: u64,
    /// Root at `old_size`, hex.
    pub old_root: String,
    /// Root at `new_size`, hex.
    pub new_root: String,
    /// Proof nodes, hex.
    pub path: Vec<String>,
}

/// The event log, as every backend offers it.
#[async_trait]
pub trait EventStore: Send + Sync + 'static {
    /// Appends events to one or more streams atomically: all of them become durable and
    /// visible together, or none does. Returns only after the events are on disk.
    async fn append(&self, appends: Vec<StreamAppend>) -> Result<AppendOutcome, StoreError>;

    /// Reads a stream from `from_version`, at most `max_count` events (capped by
    /// [`READ_EVENTS_MAX`]). A stream that does not exist reads as empty.
    async fn read_stream(
        &self,
        stream: &StreamId,
        from_version: u64,
        max_count: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError>;

    /// The last version of a stream, if it exists.
    async fn stream_version(&self, stream: &StreamId) -> Result<Option<u64>, StoreError>;

    /// Reads the global feed from `from_position`, at most `max_count` events.
    async fn read_all(
        &self,
        from_position: u64,
        max_count: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError>;

    /// Finds an event by its id.
    async fn event_by_id(&self, event_id: EventId) -> Result<Option<RecordedEvent>, StoreError>;

    /// A [`SequentialReader`] over the global feed, when the backend can lend records on the
    /// caller's thread (the embedded log can; a remote one answers `None`, and callers use
    /// [`EventStore::read_all`]).
    fn sequential_reader(&self) -> Option<Box<dyn SequentialReader>> {
        None
    }

    /// The next global position (= number of events = Merkle tree size).
    fn head(&self) -> u64;

    /// Whether appends can be accepted now (`Err` says why not: a failed fsync, a closed store).
    fn writable(&self) -> Result<(), StoreError> {
        Ok(())
    }

    /// Catches up from `from_position`, then follows new events as they are committed.
    /// Buffers are bounded: a slow consumer slows its own feed, never the writers.
    fn subscribe(&self, from_position: u64) -> EventStream;

    /// Signs a checkpoint of the current tree now (if the tree grew since the last one) and
    /// returns the latest checkpoint.
    async fn checkpoint_now(&self) -> Result<Option<SignedCheckpoint>, StoreError>;

    /// The latest signed checkpoint.
    fn latest_checkpoint(&self) -> Option<SignedCheckpoint>;

    /// Proof that the event at `position` is in the tree of size `tree_size`.
    async fn inclusion_proof(
        &self,
        position: u64,
        tree_size: u64,
    ) -> Result<InclusionProof, StoreError>;

    /// Proof that the tree of size `old_size` is a prefix of the tree of size `new_size`.
    async fn consistency_proof(
        &self,
        old_size: u64,
        new_size: u64,
    ) -> Result<ConsistencyProof, StoreError>;
}

#[async_trait]
impl<S: EventStore + ?Sized> EventStore for std::sync::Arc<S> {
    async fn append(&self, appends: Vec<StreamAppend>) -> Result<AppendOutcome, StoreError> {
        (**self).append(appends).await
    }
    async fn read_stream(
        &self,
        stream: &StreamId,
        from_version: u64,
        max_count: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        (**self).read_stream(stream, from_version, max_count).await
    }
    async fn stream_version(&self, stream: &StreamId) -> Result<Option<u64>, StoreError> {
        (**self).stream_version(stream).await
    }
    async fn read_all(
        &self,
        from_position: u64,
        max_count: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        (**self).read_all(from_position, max_count).await
    }
    async fn event_by_id(&self, event_id: EventId) -> Result<Option<RecordedEvent>, StoreError> {
        (**self).event_by_id(event_id).await
    }
    fn sequential_reader(&self) -> Option<Box<dyn SequentialReader>> {
        (**self).sequential_reader()
    }
    fn head(&self) -> u64 {
        (**self).head()
    }
    fn writable(&self) -> Result<(), StoreError> {
        (**self).writable()
    }
    fn subscribe(&self, from_position: u64) -> EventStream {
        (**self).subscribe(from_position)
    }
    async fn checkpoint_now(&self) -> Result<Option<SignedCheckpoint>, StoreError> {
        (**self).checkpoint_now().await
    }
    fn latest_checkpoint(&self) -> Option<SignedCheckpoint> {
        (**self).latest_checkpoint()
    }
    async fn inclusion_proof(
        &self,
        position: u64,
        tree_size: u64,
    ) -> Result<InclusionProof, StoreError> {
        (**self).inclusion_proof(position, tree_size).await
    }
    async fn consistency_proof(
        &self,
        old_size: u64,
        new_size: u64,
    ) -> Result<ConsistencyProof, StoreError> {
        (**self).consistency_proof(old_size, new_size).await
    }
}
