//! The embedded event log: append-only segment files written by one writer thread with group
//! commit, an in-memory index rebuilt on open, and a Merkle tree over the global order.
//!
//! Durability: an append is acknowledged only after `fdatasync` of the segment returned. All
//! appends waiting when the writer wakes share one write and one fsync (group commit).
//! Atomicity: the records of one append carry `txn_index/txn_len`; on open, an append whose
//! records are not all there is cut as a torn tail (it was never acknowledged).
//! Damage (a record that was whole and no longer checks out, a gap, a version out of order)
//! stops the open with [`StoreError::Corrupt`] naming the position: it is never served.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::ops::ControlFlow;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use ledger_merkle::{leaf_hash, Hash, MerkleTree};
use parking_lot::{Condvar, Mutex, RwLock};
use tokio::sync::{mpsc, oneshot, watch};
use tracing::{info, warn};
use uuid::Uuid;

use crate::checkpoint::{LedgerKey, SignedCheckpoint};
use crate::clock::{Clock, SystemClock};
use crate::observe::{AppendAnswer, AppendObserved, CommitObserved, StoreObserver};
use crate::record::{
    self, check_framed, decode_payload, encode_record, segment_header, BlockFrame, BlockScanner,
    Frame, RecordFields, SegmentScanner, RECORD_HEADER_LEN, SEGMENT_HEADER_LEN,
};
use crate::{
    AppendOutcome, AppendedEvent, ConsistencyProof, EventId, EventStore, EventStream,
    ExpectedVersion, InclusionProof, RecordRef, RecordedEvent, SequentialReader, StoreError,
    StreamAppend, StreamId, APPEND_EVENTS_MAX, EVENT_BYTES_MAX, EVENT_TYPE_BYTES_MAX,
    READ_EVENTS_MAX,
};

/// Name of the folder holding segment files.
pub const LOG_DIR: &str = "log";
/// Name of the folder holding the ledger's keys.
pub const KEY_DIR: &str = "keys";
/// Name of the checkpoint log file.
pub const CHECKPOINT_FILE: &str = "checkpoints.log";
/// Magic bytes of the checkpoint log file.
pub const CHECKPOINT_MAGIC: [u8; 8] = *b"TLCKP\x00\x00\x01";
/// Events one subscription keeps buffered ahead of its consumer.
pub const SUBSCRIPTION_BUFFER_EVENTS: usize = 256;

/// Settings of the embedded store.
pub struct FileStoreConfig {
    /// The data folder.
    pub dir: PathBuf,
    /// A segment is closed and a new one started once it grows past this.
    pub segment_bytes_max: u64,
    /// Most bytes one group commit writes.
    pub batch_bytes_max: usize,
    /// Appends that may wait for the writer; further callers wait for room.
    pub queue_appends_max: usize,
    /// How often a checkpoint is signed while the log grows.
    pub checkpoint_interval: Duration,
    /// The log's name in its checkpoints.
    pub origin: String,
    /// The ledger clock (checkpoint times).
    pub clock: Arc<dyn Clock>,
    /// The signing key; `None` loads or creates `DIR/keys/ledger.ed25519`.
    pub key: Option<LedgerKey>,
}

impl FileStoreConfig {
    /// Defaults for a data folder.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            segment_bytes_max: 256 * 1024 * 1024,
            batch_bytes_max: 8 * 1024 * 1024,
            queue_appends_max: 8192,
            checkpoint_interval: Duration::from_secs(1),
            origin: "transit-ledger".to_owned(),
            clock: Arc::new(SystemClock),
            key: None,
        }
    }
}

/// What opening the store found and did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OpenReport {
    /// Events recovered.
    pub events: u64,
    /// Segments read.
    pub segments: usize,
    /// Bytes cut from the tail of the last segment (an unfinished, unacknowledged write).
    pub torn_bytes_cut: u64,
    /// Why they were cut.
    pub torn_reason: Option<String>,
    /// Checkpoints found.
    pub checkpoints: u64,
}

#[derive(Clone, Copy, Debug)]
struct Loc {
    segment: u32,
    offset: u64,
    len: u32,
}

struct Segment {
    path: PathBuf,
    read: Arc<File>,
}

/// Hashes event ids by folding their 128 bits: ids are UUIDs (random, or v5 digests of message
/// ids), already uniform, so SipHash's cost buys nothing on the open and append paths.
#[derive(Default)]
struct IdHasher(u64);

impl std::hash::Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 = (self.0.rotate_left(29) ^ u64::from_le_bytes(word))
                .wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn write_usize(&mut self, _length_prefix: usize) {}
}

type IdMap = HashMap<Uuid, u64, std::hash::BuildHasherDefault<IdHasher>>;

#[derive(Default)]
struct State {
    segments: Vec<Segment>,
    locs: Vec<Loc>,
    streams: HashMap<StreamId, Vec<u64>>,
    event_ids: IdMap,
    tree: MerkleTree,
}

impl State {
    fn head(&self) -> u64 {
        self.locs.len() as u64
    }

    fn stream_last(&self, stream: &StreamId) -> Option<u64> {
        self.streams
            .get(stream)
            .and_then(|v| (v.len() as u64).checked_sub(1))
    }
}

enum Command {
    Append {
        appends: Vec<StreamAppend>,
        reply: oneshot::Sender<Result<AppendOutcome, StoreError>>,
    },
    /// Finish what is queued before this, then exit.
    Stop,
}

struct Inner {
    dir: PathBuf,
    origin: String,
    clock: Arc<dyn Clock>,
    key: LedgerKey,
    state: RwLock<State>,
    head: watch::Sender<u64>,
    tx: mpsc::Sender<Command>,
    poisoned: RwLock<Option<String>>,
    checkpoints: Mutex<CheckpointLog>,
    latest_checkpoint: RwLock<Option<SignedCheckpoint>>,
    /// Told about every append and group commit (see [`FileStore::set_observer`]).
    observer: RwLock<Option<Arc<dyn StoreObserver>>>,
    /// Read buffers kept for the next read: a page of records is megabytes, and a fresh
    /// buffer per read costs the allocator a round trip to the OS (page faults and zeroing)
    /// that a sequential reader such as a projection rebuild pays on every page.
    read_buffers: Mutex<Vec<Vec<u8>>>,
}

/// Read buffers kept in [`Inner::read_buffers`]: one per concurrent reader that may come back.
const READ_BUFFERS_KEPT: usize = 4;

/// Larger read buffers are not kept (a rare huge read must not pin its memory).
const READ_BUFFER_KEPT_BYTES_MAX: usize = 16 << 20;

struct CheckpointLog {
    file: File,
    len: u64,
}

struct Stopper {
    stopped: Mutex<bool>,
    cv: Condvar,
}

/// The embedded event log. Cheap to share behind an `Arc`.
pub struct FileStore {
    inner: Arc<Inner>,
    stopper: Arc<Stopper>,
    writer: Mutex<Option<JoinHandle<()>>>,
    checkpointer: Mutex<Option<JoinHandle<()>>>,
    report: OpenReport,
}

impl FileStore {
    /// Opens (or creates) the store in `config.dir`, recovering from a crash if needed.
    /// Only one process may have a data folder open; a second open fails.
    pub fn open(config: FileStoreConfig) -> Result<Self, StoreError> {
        let dir = config.dir.clone();
        fs::create_dir_all(dir.join(LOG_DIR))?;
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join("LOCK"))?;
        lock.try_lock().map_err(|_| {
            StoreError::Invalid(format!(
                "data folder {} is in use by another process",
                dir.display()
            ))
        })?;
        let key = match config.key {
            Some(key) => key,
            None => LedgerKey::load_or_create(&dir.join(KEY_DIR))?,
        };
        // Auditors need the public key beside the data even when the secret lives elsewhere.
        let public_path = dir.join(KEY_DIR).join(crate::checkpoint::PUBLIC_FILE);
        if !public_path.exists() {
            fs::create_dir_all(dir.join(KEY_DIR))?;
            fs::write(&public_path, hex::encode(key.public().as_bytes()))?;
        }
        let (state, active, mut report) = recover_log(&dir.join(LOG_DIR))?;
        let (checkpoint_log, latest, count) = recover_checkpoints(&dir, &state, &key)?;
        report.checkpoints = count;
        info!(
            events = report.events,
            segments = report.segments,
            torn_bytes_cut = report.torn_bytes_cut,
            checkpoints = report.checkpoints,
            "event log opened"
        );
        let (tx, rx) = mpsc::channel(config.queue_appends_max.max(1));
        let (head, _) = watch::channel(state.head());
        let inner = Arc::new(Inner {
            dir: dir.clone(),
            origin: config.origin,
            clock: config.clock,
            key,
            state: RwLock::new(state),
            head,
            tx,
            poisoned: RwLock::new(None),
            checkpoints: Mutex::new(checkpoint_log),
            latest_checkpoint: RwLock::new(latest),
            observer: RwLock::new(None),
            read_buffers: Mutex::new(Vec::new()),
        });
        let writer_state = Writer {
            inner: Arc::downgrade(&inner),
            active,
            segment_bytes_max: config.segment_bytes_max,
            batch_bytes_max: config.batch_bytes_max,
            _lock: lock,
        };
        let writer = std::thread::Builder::new()
            .name("ledger-writer".to_owned())
            .spawn(move || writer_state.run(rx))?;
        let stopper = Arc::new(Stopper {
            stopped: Mutex::new(false),
            cv: Condvar::new(),
        });
        let weak = Arc::downgrade(&inner);
        let stop = stopper.clone();
        let interval = config.checkpoint_interval;
        let checkpointer = std::thread::Builder::new()
            .name("ledger-checkpointer".to_owned())
            .spawn(move || checkpoint_loop(weak, stop, interval))?;
        Ok(Self {
            inner,
            stopper,
            writer: Mutex::new(Some(writer)),
            checkpointer: Mutex::new(Some(checkpointer)),
            report,
        })
    }

    /// What the open found.
    pub fn open_report(&self) -> &OpenReport {
        &self.report
    }

    /// The data folder.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// The ledger's public key, to check checkpoints.
    pub fn public_key(&self) -> ed25519_dalek::VerifyingKey {
        self.inner.key.public()
    }

    /// Reports every append and every group commit from now on to `observer` (replacing any
    /// earlier one): how a service measures the log without this crate knowing its metrics.
    pub fn set_observer(&self, observer: Arc<dyn StoreObserver>) {
        *self.inner.observer.write() = Some(observer);
    }

    /// Queues an append for the writer and waits for its answer.
    async fn append_queued(&self, appends: Vec<StreamAppend>) -> Result<AppendOutcome, StoreError> {
        if appends.iter().all(|a| a.events.is_empty()) {
            return Err(StoreError::Invalid(
                "an append needs at least one event".to_owned(),
            ));
        }
        if let Some(reason) = self.inner.poisoned.read().clone() {
            return Err(StoreError::Poisoned(reason));
        }
        let (reply, rx) = oneshot::channel();
        self.inner
            .tx
            .send(Command::Append { appends, reply })
            .await
            .map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// Approximate memory held by the index and the tree, in bytes.
    pub fn index_memory_bytes(&self) -> usize {
        let state = self.inner.state.read();
        state.locs.capacity() * std::mem::size_of::<Loc>()
            + state.event_ids.capacity() * (16 + 8 + 8)
            + state
                .streams
                .values()
                .map(|v| v.capacity() * 8 + 64)
                .sum::<usize>()
            + state.tree.memory_bytes()
    }

    /// Signs a last checkpoint, lets the writer finish the appends already queued, and waits
    /// for both background threads to exit, so the folder can be opened again at once.
    pub async fn close(self) -> Result<Option<SignedCheckpoint>, StoreError> {
        let checkpoint = self.checkpoint_now().await?;
        self.inner.checkpoints.lock().file.sync_data()?;
        self.stop_checkpointer();
        let _ = self.inner.tx.send(Command::Stop).await;
        let writer = self.writer.lock().take();
        if let Some(handle) = writer {
            tokio::task::spawn_blocking(move || handle.join())
                .await
                .map_err(|e| StoreError::Io(std::io::Error::other(e)))?
                .map_err(|_| StoreError::Poisoned("the writer thread panicked".to_owned()))?;
        }
        Ok(checkpoint)
    }

    fn stop_checkpointer(&self) {
        *self.stopper.stopped.lock() = true;
        self.stopper.cv.notify_all();
        if let Some(handle) = self.checkpointer.lock().take() {
            let _ = handle.join();
        }
    }

    fn read_range(&self, from: u64, max: usize) -> Result<Vec<RecordedEvent>, StoreError> {
        self.inner.read_range(from, max)
    }
}

impl Drop for FileStore {
    fn drop(&mut self) {
        // The writer holds only a weak reference: it exits by itself once the last strong
        // one (ours, or a live subscription's) is gone and its channel closes.
        self.stop_checkpointer();
    }
}

fn checkpoint_loop(inner: Weak<Inner>, stop: Arc<Stopper>, interval: Duration) {
    loop {
        {
            let mut stopped = stop.stopped.lock();
            if !*stopped {
                stop.cv.wait_for(&mut stopped, interval);
            }
            if *stopped {
                return;
            }
        }
        let Some(inner) = inner.upgrade() else {
            return;
        };
        if let Err(err) = inner.checkpoint_now() {
            warn!(error = %err, "signing a checkpoint failed");
        }
    }
}

impl Inner {
    fn checkpoint_now(&self) -> Result<Option<SignedCheckpoint>, StoreError> {
        let mut log = self.checkpoints.lock();
        let (size, root) = {
            let state = self.state.read();
            (state.tree.len(), state.tree.root())
        };
        let latest = self.latest_checkpoint.read().clone();
        if size == 0 || latest.as_ref().is_some_and(|cp| cp.tree_size == size) {
            return Ok(latest);
        }
        let checkpoint = self
            .key
            .sign(&self.origin, size, &root, self.clock.now_millis());
        let payload = serde_json::to_vec(&checkpoint)
            .map_err(|e| StoreError::Invalid(format!("checkpoint encoding: {e}")))?;
        let mut frame = Vec::with_capacity(payload.len() + RECORD_HEADER_LEN);
        record::encode_frame(&mut frame, &payload);
        let at = log.len;
        // No fsync here: a checkpoint only describes events that are already durable, so
        // losing the newest one in a crash loses a signature, never an event, and the next
        // one re-signs the same history. Syncing a second file on every checkpoint stalled
        // the log's own fsync (ext4 journal) by tens of milliseconds; `close` syncs it.
        if let Err(err) = log.file.write_all_at(&frame, at) {
            // Cut a partly written frame (a full disk) back off, so that the next checkpoint
            // is written over a clean end.
            let _ = log.file.set_len(at);
            return Err(err.into());
        }
        log.len += frame.len() as u64;
        *self.latest_checkpoint.write() = Some(checkpoint.clone());
        Ok(Some(checkpoint))
    }

    fn read_range(&self, from: u64, max: usize) -> Result<Vec<RecordedEvent>, StoreError> {
        let mut buf = self.read_buffers.lock().pop().unwrap_or_default();
        let mut out = Vec::new();
        let result = self.visit_range(from, max, &mut buf, &mut |record| {
            out.push(to_recorded(record));
            ControlFlow::Continue(())
        });
        if buf.capacity() <= READ_BUFFER_KEPT_BYTES_MAX {
            let mut buffers = self.read_buffers.lock();
            if buffers.len() < READ_BUFFERS_KEPT {
                buffers.push(buf);
            }
        }
        result.map(|_| out)
    }

    /// Reads the records from `from` on (at most `max`, capped by [`READ_EVENTS_MAX`]) into
    /// `buf` (grown as needed, never shrunk, so that only new capacity is zeroed), checks each
    /// (framing, checksum, Merkle leaf, position) and lends it to `visit` until it breaks.
    /// Returns how many records were lent.
    fn visit_range(
        &self,
        from: u64,
        max: usize,
        buf: &mut Vec<u8>,
        visit: &mut dyn FnMut(RecordRef<'_>) -> ControlFlow<()>,
    ) -> Result<usize, StoreError> {
        let max = max.min(READ_EVENTS_MAX);
        // Gather locations under the lock, read the bytes without it.
        let (runs, leaves) = {
            let state = self.state.read();
            let head = state.head();
            if from >= head || max == 0 {
                return Ok(0);
            }
            let end = head.min(from + max as u64);
            let mut runs: Vec<(Arc<File>, Vec<Loc>, PathBuf)> = Vec::new();
            let mut leaves = Vec::with_capacity((end - from) as usize);
            for position in from..end {
                let loc = state.locs[position as usize];
                leaves.push(
                    state
                        .tree
                        .leaf(position)
                        .expect("invariant: every indexed record is a leaf"),
                );
                match runs.last_mut() {
                    Some((_, locs, _))
                        if locs.last().is_some_and(|last| {
                            last.segment == loc.segment
                                && last.offset + u64::from(last.len) == loc.offset
                        }) =>
                    {
                        locs.push(loc);
                    }
                    _ => {
                        let segment = &state.segments[loc.segment as usize];
                        runs.push((segment.read.clone(), vec![loc], segment.path.clone()));
                    }
                }
            }
            (runs, leaves)
        };
        let mut position = from;
        for (file, locs, path) in runs {
            let start = locs[0].offset;
            let last = locs[locs.len() - 1];
            let end = last.offset + u64::from(last.len);
            let len = (end - start) as usize;
            if buf.len() < len {
                buf.resize(len, 0);
            }
            let bytes = &mut buf[..len];
            file.read_exact_at(bytes, start)?;
            for loc in locs {
                let at = (loc.offset - start) as usize;
                let framed = &bytes[at..at + loc.len as usize];
                let expected_leaf = leaves[(position - from) as usize];
                let record = check_read(framed, position, &expected_leaf).map_err(|reason| {
                    StoreError::Corrupt {
                        position,
                        segment: path.display().to_string(),
                        offset: loc.offset,
                        reason,
                    }
                })?;
                position += 1;
                if visit(record).is_break() {
                    return Ok((position - from) as usize);
                }
            }
        }
        Ok((position - from) as usize)
    }

    fn read_positions(&self, positions: &[u64]) -> Result<Vec<RecordedEvent>, StoreError> {
        let mut out = Vec::with_capacity(positions.len());
        for &position in positions {
            let mut events = self.read_range(position, 1)?;
            match events.pop() {
                Some(event) => out.push(event),
                None => return Err(StoreError::NotFound(format!("position {position}"))),
            }
        }
        Ok(out)
    }
}

/// Checks a framed record read back from disk before it is served: framing and checksum,
/// its Merkle leaf, and the position it says it has.
fn check_read<'a>(framed: &'a [u8], position: u64, leaf: &Hash) -> Result<RecordRef<'a>, String> {
    let payload = check_framed(framed)?;
    let hash = leaf_hash(payload);
    if &hash != leaf {
        return Err("record no longer matches its Merkle leaf".to_owned());
    }
    let fields = decode_payload(payload)?;
    if fields.position != position {
        return Err(format!(
            "record says position {}, index says {position}",
            fields.position
        ));
    }
    if !crate::is_valid_stream_name(fields.stream) {
        return Err(format!("invalid stream name {:?}", fields.stream));
    }
    Ok(RecordRef {
        position: fields.position,
        stream: fields.stream,
        version: fields.version,
        event_id: EventId(Uuid::from_bytes(fields.event_id)),
        event_type: fields.event_type,
        schema_version: fields.schema_version,
        data: fields.data,
        metadata: fields.metadata,
        leaf_hash: hash,
    })
}

/// Copies a checked record (its stream name was checked by [`check_read`]).
fn to_recorded(record: RecordRef<'_>) -> RecordedEvent {
    RecordedEvent {
        position: record.position,
        stream: StreamId(record.stream.to_owned()),
        version: record.version,
        event_id: record.event_id,
        event_type: record.event_type.to_owned(),
        schema_version: record.schema_version,
        data: record.data.to_vec(),
        metadata: record.metadata.to_vec(),
        leaf_hash: record.leaf_hash,
    }
}

/// The embedded log's [`SequentialReader`]: its own read buffer, reused page after page.
struct FileSequentialReader {
    inner: Arc<Inner>,
    buf: Vec<u8>,
}

impl SequentialReader for FileSequentialReader {
    fn read_page(
        &mut self,
        from: u64,
        max: usize,
        visit: &mut dyn FnMut(RecordRef<'_>) -> ControlFlow<()>,
    ) -> Result<usize, StoreError> {
        self.inner.visit_range(from, max, &mut self.buf, visit)
    }
}

fn segment_name(first_position: u64) -> String {
    format!("{first_position:020}.seg")
}

fn list_segments(log_dir: &Path) -> Result<Vec<PathBuf>, StoreError> {
    let mut paths: Vec<PathBuf> = fs::read_dir(log_dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .collect();
    paths.sort();
    Ok(paths)
}

struct ActiveSegment {
    file: File,
    len: u64,
    index: u32,
}

/// An append being rebuilt on open: its records are indexed only once all are there.
struct OpenTxn {
    start_offset: u64,
    len: u16,
}

/// A record of an unfinished append, waiting for the rest of it.
struct PendingRecord {
    loc: Loc,
    /// Its stream's slot in [`ScanStreams`].
    stream: usize,
    id: Uuid,
}

/// The stream index a scan rebuilds. Each name maps to a slot, so that a record's stream name
/// is hashed once and allocated only the first time it is seen; at the end of the scan the
/// slots become `State::streams`.
#[derive(Default)]
struct ScanStreams {
    slots: HashMap<StreamId, usize>,
    positions: Vec<Vec<u64>>,
}

impl ScanStreams {
    /// The slot of stream `name`, checking the name the first time it is seen.
    fn slot(&mut self, name: &str) -> Result<usize, String> {
        if let Some(slot) = self.slots.get(name) {
            return Ok(*slot);
        }
        let stream = StreamId::new(name).map_err(|e| e.to_string())?;
        let slot = self.positions.len();
        self.positions.push(Vec::new());
        self.slots.insert(stream, slot);
        Ok(slot)
    }

    /// Moves every stream that has an indexed record into `streams`. A slot can be empty
    /// when the only records naming it were cut or damaged, and such a stream does not exist.
    fn finish(self, streams: &mut HashMap<StreamId, Vec<u64>>) {
        let mut positions = self.positions;
        streams.reserve(self.slots.len());
        for (stream, slot) in self.slots {
            let indexed = std::mem::take(&mut positions[slot]);
            if !indexed.is_empty() {
                streams.insert(stream, indexed);
            }
        }
    }
}

/// What must be cut from the tail of the log: an unfinished, never acknowledged write.
pub(crate) struct Cut {
    pub(crate) path: PathBuf,
    /// Truncate the segment to this length; `None` removes a segment whose header is unfinished.
    pub(crate) offset: Option<u64>,
    pub(crate) bytes: u64,
    pub(crate) reason: String,
}

/// The result of reading the whole log without changing it.
pub(crate) struct Scan {
    state: State,
    pub(crate) cut: Option<Cut>,
    /// The first damage found; the state holds everything before it.
    pub(crate) damage: Option<StoreError>,
}

impl Scan {
    pub(crate) fn events(&self) -> u64 {
        self.state.head()
    }
    pub(crate) fn segments(&self) -> usize {
        self.state.segments.len()
    }
    pub(crate) fn tree(&self) -> &MerkleTree {
        &self.state.tree
    }
}

/// Reads every segment, checking each record's checksums, position, stream version, event id
/// uniqueness and append boundaries, and rebuilding the index and the Merkle tree.
///
/// Segments are read in large blocks (see [`BlockScanner`]) that this thread checks and
/// indexes record by record without copying them, then hands whole to a second thread. That
/// one checks the payload checksums, hashes the Merkle leaves (SHA-256 over every byte) and
/// builds the tree, in file order, and hands each block back for the next read. Whenever the
/// second thread falls behind, this one checks and hashes a block itself (see
/// [`HashFeed::send`]), so that neither core waits for the other.
pub(crate) fn scan_log(log_dir: &Path) -> Result<Scan, StoreError> {
    // Blocks waiting for the hashing thread: enough to ride out uneven progress of the two
    // threads, few enough to bound the memory held in buffers.
    const HASH_QUEUE_BLOCKS: usize = 4;
    let (tx, rx) = std_mpsc::sync_channel::<HashBlock>(HASH_QUEUE_BLOCKS);
    let (back_tx, back_rx) = std_mpsc::channel::<HashBlock>();
    let hasher = std::thread::Builder::new()
        .name("ledger-scan-hash".to_owned())
        .spawn(move || hash_blocks(rx, back_tx))?;
    let mut feed = HashFeed {
        tx,
        back: back_rx,
        failed: false,
    };
    let mut state = State::default();
    let mut streams = ScanStreams::default();
    let scanned = scan_segments(log_dir, &mut state, &mut streams, &mut feed);
    streams.finish(&mut state.streams);
    let HashFeed { tx, back, failed } = feed;
    drop(tx);
    let (mut tree, bad_checksum) = hasher
        .join()
        .map_err(|_| StoreError::Io(std::io::Error::other("the hashing thread panicked")))?;
    drop(back);
    if failed {
        return Err(StoreError::Io(std::io::Error::other(
            "the hashing thread stopped early",
        )));
    }
    let (mut cut, mut damage) = scanned?;
    // The tree holds a leaf for every record sent to the hashing thread up to the first bad
    // checksum, which can be more than were indexed (the records of an unfinished append).
    let hashed = tree.len();
    if let Some((segment, offset)) = bad_checksum {
        // Records reach the hasher in order, so the first bad checksum comes before any damage
        // the scan itself found later on.
        let position = hashed;
        let earlier = match &damage {
            Some(StoreError::Corrupt { position: p, .. }) => position <= *p,
            _ => true,
        };
        if earlier {
            cut = None;
            damage = Some(StoreError::Corrupt {
                position,
                segment: state.segments[segment as usize].path.display().to_string(),
                offset,
                reason: "payload checksum mismatch".to_owned(),
            });
            state.locs.truncate(hashed as usize);
        }
    }
    let head = state.head();
    assert!(hashed >= head, "invariant: every indexed record was hashed");
    tree.truncate(head);
    state.tree = tree;
    Ok(Scan { state, cut, damage })
}

type ScanEnd = (Option<Cut>, Option<StoreError>);

/// Where one record's payload is in its block, on its way to the hashing thread.
struct HashedRecord {
    start: usize,
    len: u32,
    payload_crc: u32,
}

/// A block of one segment and the records in it that the scan accepted, for the hashing
/// thread, which sends it back when done so that its buffers are reused.
struct HashBlock {
    bytes: Vec<u8>,
    records: Vec<HashedRecord>,
    segment: u32,
    /// File offset of `bytes[0]`.
    offset: u64,
    /// Whether `leaves` and `bad` are filled in already (by the scanning thread).
    hashed: bool,
    /// The leaf hashes of `records`, up to the first bad payload checksum.
    leaves: Vec<Hash>,
    /// Index in `records` of the first payload whose checksum does not match.
    bad: Option<usize>,
}

impl HashBlock {
    /// Checks each payload's checksum and hashes its leaf, stopping at the first bad one.
    fn hash(&mut self) {
        for (index, record) in self.records.iter().enumerate() {
            let payload = &self.bytes[record.start..record.start + record.len as usize];
            if crc32c::crc32c(payload) != record.payload_crc {
                self.bad = Some(index);
                break;
            }
            self.leaves.push(leaf_hash(payload));
        }
        self.hashed = true;
    }
}

/// The scanning side of the two channels to the hashing thread.
struct HashFeed {
    tx: std_mpsc::SyncSender<HashBlock>,
    back: std_mpsc::Receiver<HashBlock>,
    /// The hashing thread went away before the scan ended.
    failed: bool,
}

impl HashFeed {
    /// Buffers for the next block: ones the hashing thread is done with, or empty ones (the
    /// scanner allocates) while the pipeline fills up.
    fn take(&mut self) -> (Vec<u8>, Vec<HashedRecord>, Vec<Hash>) {
        match self.back.try_recv() {
            Ok(HashBlock {
                bytes,
                mut records,
                mut leaves,
                ..
            }) => {
                records.clear();
                leaves.clear();
                (bytes, records, leaves)
            }
            Err(_) => (Vec::new(), Vec::new(), Vec::new()),
        }
    }

    /// Hands a block to the hashing thread. When that thread is behind (its queue is full),
    /// this thread hashes the block itself instead of waiting, so that both cores stay busy
    /// whichever side is slower for the events at hand.
    fn send(&mut self, block: HashBlock) {
        match self.tx.try_send(block) {
            Ok(()) => {}
            Err(std_mpsc::TrySendError::Full(mut block)) => {
                block.hash();
                self.failed |= self.tx.send(block).is_err();
            }
            Err(std_mpsc::TrySendError::Disconnected(_)) => self.failed = true,
        }
    }
}

/// The hashing thread: checks each payload's checksum and hashes its leaf (unless the scanning
/// thread did), adds the leaves to the tree in file order, and hands every block back. Stops at
/// the first bad checksum and returns where it is.
fn hash_blocks(
    rx: std_mpsc::Receiver<HashBlock>,
    back: std_mpsc::Sender<HashBlock>,
) -> (MerkleTree, Option<(u32, u64)>) {
    let mut tree = MerkleTree::new();
    let mut bad = None;
    for mut block in rx {
        if bad.is_none() {
            if !block.hashed {
                block.hash();
            }
            for leaf in &block.leaves {
                tree.push_leaf_hash(*leaf);
            }
            if let Some(index) = block.bad {
                let header_at = (block.records[index].start - RECORD_HEADER_LEN) as u64;
                bad = Some((block.segment, block.offset + header_at));
            }
        }
        // A closed return channel only means that the scan is over and needs no more buffers.
        let _ = back.send(block);
    }
    (tree, bad)
}

fn scan_segments(
    log_dir: &Path,
    state: &mut State,
    streams: &mut ScanStreams,
    feed: &mut HashFeed,
) -> Result<ScanEnd, StoreError> {
    // The index is sized once, when enough of the log has been read to tell how many events
    // it holds, rather than rehashed several times as it grows.
    const SIZE_INDEX_AFTER_EVENTS: u64 = 1024;
    let paths = list_segments(log_dir)?;
    let segment_count = paths.len();
    let total_bytes: u64 = paths
        .iter()
        .map(|p| fs::metadata(p).map_or(0, |m| m.len()))
        .sum();
    let mut index_sized = false;
    let mut bytes_before = 0u64;
    let mut pending: Vec<PendingRecord> = Vec::new();
    for (index, path) in paths.iter().enumerate() {
        let is_last = index + 1 == segment_count;
        let corrupt = |position: u64, offset: u64, reason: String| StoreError::Corrupt {
            position,
            segment: path.display().to_string(),
            offset,
            reason,
        };
        let file = Arc::new(File::open(path)?);
        let file_len = file.metadata()?.len();
        if is_last && file_len < SEGMENT_HEADER_LEN {
            // The process died while creating this segment: nothing in it was acknowledged.
            return Ok((
                Some(Cut {
                    path: path.clone(),
                    offset: None,
                    bytes: file_len,
                    reason: "segment header was never completed".to_owned(),
                }),
                None,
            ));
        }
        let (buffer, mut records, mut leaves) = feed.take();
        let (mut scanner, first) = BlockScanner::open(Arc::clone(&file), file_len, buffer)?;
        let head = state.head();
        let first = match first {
            Ok(first) if first == head => first,
            Ok(first) => {
                let reason = format!("segment starts at position {first}, expected {head}");
                return Ok((None, Some(corrupt(head, 0, reason))));
            }
            Err(reason) => return Ok((None, Some(corrupt(head, 0, reason)))),
        };
        let expected_name = segment_name(first);
        if path.file_name().and_then(|n| n.to_str()) != Some(expected_name.as_str()) {
            let reason = format!("segment should be named {expected_name}");
            return Ok((None, Some(corrupt(first, 0, reason))));
        }
        state.segments.push(Segment {
            path: path.clone(),
            read: file,
        });
        let seg_index = index as u32;
        let mut txn: Option<OpenTxn> = None;
        // `None` when the segment ended cleanly, else how the scan ends.
        let end: Option<ScanEnd> = loop {
            let offset = scanner.offset();
            let position = state.head() + pending.len() as u64;
            let (start, len, payload_crc) = match scanner.next_frame()? {
                BlockFrame::Record {
                    start,
                    len,
                    payload_crc,
                } => (start, len, payload_crc),
                BlockFrame::BlockEnd => {
                    let (buffer, next_records, next_leaves) = feed.take();
                    let block_offset = scanner.block_offset();
                    let bytes = scanner.next_block(buffer)?;
                    feed.send(HashBlock {
                        bytes,
                        records: std::mem::replace(&mut records, next_records),
                        segment: seg_index,
                        offset: block_offset,
                        hashed: false,
                        leaves: std::mem::replace(&mut leaves, next_leaves),
                        bad: None,
                    });
                    continue;
                }
                BlockFrame::Damaged { reason } => {
                    break Some((None, Some(corrupt(position, offset, reason))))
                }
                frame @ (BlockFrame::End | BlockFrame::TornTail { .. }) => {
                    let reason = match (frame, &txn) {
                        (BlockFrame::TornTail { reason }, _) => reason,
                        (_, Some(t)) => format!(
                            "append of {} records ends after {} of them",
                            t.len,
                            pending.len()
                        ),
                        _ => break None,
                    };
                    let start = txn.as_ref().map_or(offset, |t| t.start_offset);
                    if !is_last {
                        break Some((None, Some(corrupt(position, start, reason))));
                    }
                    break Some((
                        Some(Cut {
                            path: path.clone(),
                            offset: Some(start),
                            bytes: file_len - start,
                            reason,
                        }),
                        None,
                    ));
                }
            };
            let payload = &scanner.block()[start..start + len as usize];
            let (stream, id, txn_index, txn_len) =
                match check_record(streams, &pending, payload, position) {
                    Ok(checked) => checked,
                    Err(reason) => break Some((None, Some(corrupt(position, offset, reason)))),
                };
            match &txn {
                None if txn_index == 0 => {
                    txn = Some(OpenTxn {
                        start_offset: offset,
                        len: txn_len,
                    });
                }
                Some(t) if t.len == txn_len && pending.len() == usize::from(txn_index) => {}
                _ => {
                    let reason =
                        format!("record {txn_index}/{txn_len} breaks its append's sequence");
                    break Some((None, Some(corrupt(position, offset, reason))));
                }
            }
            records.push(HashedRecord {
                start,
                len,
                payload_crc,
            });
            pending.push(PendingRecord {
                loc: Loc {
                    segment: seg_index,
                    offset,
                    len: RECORD_HEADER_LEN as u32 + len,
                },
                stream,
                id,
            });
            if pending.len() == usize::from(txn_len) {
                txn = None;
                if let Err((position, offset, reason)) = index_append(state, streams, &mut pending)
                {
                    break Some((None, Some(corrupt(position, offset, reason))));
                }
                if !index_sized && state.head() >= SIZE_INDEX_AFTER_EVENTS {
                    index_sized = true;
                    size_index(state, total_bytes, bytes_before + scanner.offset());
                }
            }
        };
        let block_offset = scanner.block_offset();
        feed.send(HashBlock {
            bytes: scanner.into_block(),
            records,
            segment: seg_index,
            offset: block_offset,
            hashed: false,
            leaves,
            bad: None,
        });
        if let Some(end) = end {
            return Ok(end);
        }
        bytes_before += file_len;
    }
    Ok((None, None))
}

/// Reserves room in the index for the events a log of `total_bytes` holds, estimated from the
/// events found in its first `bytes_read` bytes, plus a little for variation in event size.
fn size_index(state: &mut State, total_bytes: u64, bytes_read: u64) {
    let head = state.head();
    let estimate = (total_bytes as f64 / bytes_read.max(1) as f64 * head as f64 * 1.0625) as u64;
    let more = usize::try_from(estimate.saturating_sub(head)).unwrap_or(0);
    state.locs.reserve(more);
    state.event_ids.reserve(more);
}

/// Indexes the records of an append once all of them have been read. A repeated event id is
/// returned as (position, offset, reason).
fn index_append(
    state: &mut State,
    streams: &mut ScanStreams,
    pending: &mut Vec<PendingRecord>,
) -> Result<(), (u64, u64, String)> {
    for record in pending.drain(..) {
        let position = state.head();
        // One probe of the id table per record: it is a cache miss on a large log.
        match state.event_ids.entry(record.id) {
            std::collections::hash_map::Entry::Occupied(_) => {
                let reason = format!("event id {} repeated", record.id);
                return Err((position, record.loc.offset, reason));
            }
            std::collections::hash_map::Entry::Vacant(slot) => {
                slot.insert(position);
            }
        }
        state.locs.push(record.loc);
        streams.positions[record.stream].push(position);
    }
    Ok(())
}

/// Checks one record against the index built so far and the records of its unfinished append.
/// Returns the record's stream slot, event id, and place in its append.
fn check_record(
    streams: &mut ScanStreams,
    pending: &[PendingRecord],
    payload: &[u8],
    position: u64,
) -> Result<(usize, Uuid, u16, u16), String> {
    let fields = decode_payload(payload)?;
    if fields.position != position {
        return Err(format!("record says position {}", fields.position));
    }
    let stream = streams.slot(fields.stream)?;
    let pending_in_stream = pending.iter().filter(|r| r.stream == stream).count() as u64;
    let due = streams.positions[stream].len() as u64 + pending_in_stream;
    if fields.version != due {
        return Err(format!(
            "stream {} version {} where {due} was due",
            fields.stream, fields.version
        ));
    }
    let id = Uuid::from_bytes(fields.event_id);
    // Ids already in the index are caught when the append is indexed (one probe per id).
    if pending.iter().any(|r| r.id == id) {
        return Err(format!("event id {id} repeated"));
    }
    Ok((stream, id, fields.txn_index, fields.txn_len))
}

fn recover_log(log_dir: &Path) -> Result<(State, ActiveSegment, OpenReport), StoreError> {
    let scan = scan_log(log_dir)?;
    if let Some(damage) = scan.damage {
        return Err(damage);
    }
    let mut state = scan.state;
    let mut report = OpenReport::default();
    if let Some(cut) = scan.cut {
        warn!(
            segment = %cut.path.display(),
            offset = ?cut.offset,
            bytes = cut.bytes,
            reason = %cut.reason,
            "cutting a torn tail (an unfinished write that was never acknowledged)"
        );
        match cut.offset {
            Some(offset) => {
                let file = OpenOptions::new().write(true).open(&cut.path)?;
                file.set_len(offset)?;
                file.sync_all()?;
            }
            None => {
                fs::remove_file(&cut.path)?;
                File::open(log_dir)?.sync_all()?;
            }
        }
        report.torn_bytes_cut = cut.bytes;
        report.torn_reason = Some(cut.reason);
    }
    if state.segments.is_empty() {
        let (_, segment) = create_segment(log_dir, state.head())?;
        state.segments.push(segment);
    }
    let last = state
        .segments
        .last()
        .expect("invariant: at least one segment exists");
    let file = OpenOptions::new().read(true).write(true).open(&last.path)?;
    let len = file.metadata()?.len();
    let active = ActiveSegment {
        file,
        len,
        index: (state.segments.len() - 1) as u32,
    };
    report.events = state.head();
    report.segments = state.segments.len();
    Ok((state, active, report))
}

fn recover_checkpoints(
    dir: &Path,
    state: &State,
    key: &LedgerKey,
) -> Result<(CheckpointLog, Option<SignedCheckpoint>, u64), StoreError> {
    let path = dir.join(CHECKPOINT_FILE);
    let corrupt = |offset: u64, reason: String| StoreError::Corrupt {
        position: state.head(),
        segment: path.display().to_string(),
        offset,
        reason,
    };
    if !path.exists() {
        let file = OpenOptions::new()
            .create_new(true)
            .read(true)
            .write(true)
            .open(&path)?;
        let mut header = [0u8; SEGMENT_HEADER_LEN as usize];
        header[..8].copy_from_slice(&CHECKPOINT_MAGIC);
        file.write_all_at(&header, 0)?;
        file.sync_all()?;
        File::open(dir)?.sync_all()?;
        return Ok((
            CheckpointLog {
                file,
                len: SEGMENT_HEADER_LEN,
            },
            None,
            0,
        ));
    }
    let checkpoints =
        read_checkpoints(&path).map_err(|(offset, reason)| corrupt(offset, reason))?;
    let file = OpenOptions::new().read(true).write(true).open(&path)?;
    if checkpoints.end < file.metadata()?.len() {
        warn!(offset = checkpoints.end, "cutting a torn checkpoint tail");
        file.set_len(checkpoints.end)?;
        file.sync_all()?;
    }
    let latest = checkpoints.items.last().map(|(_, cp)| cp.clone());
    if let Some((offset, cp)) = checkpoints.items.last() {
        // The latest checkpoint must be ours and must describe a prefix of this log. Older
        // ones are checked by `transit-ledger verify`, which reads everything.
        cp.verify(&key.public()).map_err(|r| corrupt(*offset, r))?;
        if cp.tree_size > state.tree.len() {
            return Err(corrupt(
                *offset,
                format!(
                    "signed checkpoint covers {} events but the log holds {}: acknowledged events are missing",
                    cp.tree_size,
                    state.tree.len()
                ),
            ));
        }
        let root = state.tree.root_at(cp.tree_size)?;
        if ledger_merkle::to_hex(&root) != cp.root {
            return Err(corrupt(
                *offset,
                format!(
                    "the log's root at size {} differs from the signed checkpoint: history was altered",
                    cp.tree_size
                ),
            ));
        }
    }
    Ok((
        CheckpointLog {
            file,
            len: checkpoints.end,
        },
        latest,
        checkpoints.items.len() as u64,
    ))
}

/// Checkpoints read from a checkpoint log.
pub struct CheckpointFile {
    /// (byte offset, checkpoint), in file order.
    pub items: Vec<(u64, SignedCheckpoint)>,
    /// Where the valid part ends (a torn tail after it is ignored).
    pub end: u64,
    /// A torn tail found after `end`, if any.
    pub torn: Option<String>,
}

/// Reads every checkpoint of a checkpoint log; damage is `(offset, reason)`.
pub fn read_checkpoints(path: &Path) -> Result<CheckpointFile, (u64, String)> {
    let io = |e: std::io::Error| (0, e.to_string());
    let (mut scanner, _) = SegmentScanner::open(path).map_err(io)?;
    let mut header = [0u8; SEGMENT_HEADER_LEN as usize];
    let file = File::open(path).map_err(io)?;
    let got = record::read_full_at(&file, &mut header, 0).map_err(io)?;
    if got < SEGMENT_HEADER_LEN as usize || header[..8] != CHECKPOINT_MAGIC {
        return Err((0, "checkpoint log header is damaged".to_owned()));
    }
    let mut items = Vec::new();
    let mut torn = None;
    loop {
        let offset = scanner.offset();
        match scanner.next_frame().map_err(io)? {
            Frame::Record { payload, .. } => {
                let cp: SignedCheckpoint = serde_json::from_slice(&payload)
                    .map_err(|e| (offset, format!("checkpoint does not parse: {e}")))?;
                if let Some((_, prev)) = items.last() {
                    let prev: &SignedCheckpoint = prev;
                    if cp.tree_size <= prev.tree_size {
                        return Err((offset, "checkpoint tree sizes do not grow".to_owned()));
                    }
                }
                items.push((offset, cp));
            }
            Frame::End => break,
            Frame::TornTail { reason } => {
                torn = Some(reason);
                break;
            }
            Frame::Damaged { reason } => return Err((offset, reason)),
        }
    }
    Ok(CheckpointFile {
        items,
        end: scanner.offset(),
        torn,
    })
}

/// Appends waiting in one group commit, each with where its answer goes.
type Batch = Vec<(Vec<StreamAppend>, Reply)>;
type Reply = oneshot::Sender<Result<AppendOutcome, StoreError>>;

struct Writer {
    inner: Weak<Inner>,
    active: ActiveSegment,
    segment_bytes_max: u64,
    batch_bytes_max: usize,
    _lock: File,
}

/// One append being prepared in a batch.
struct Prepared {
    reply: oneshot::Sender<Result<AppendOutcome, StoreError>>,
    outcome: AppendOutcome,
}

/// What a pending (written, not yet committed) event looks like, for idempotency inside a batch.
struct PendingEvent {
    appended: AppendedEvent,
    content: Hash,
}

fn content_hash(stream: &StreamId, event: &crate::NewEvent) -> Hash {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(stream.as_str().as_bytes());
    h.update([0]);
    h.update(event.event_type.as_bytes());
    h.update([0]);
    h.update(event.schema_version.to_le_bytes());
    h.update((event.metadata.len() as u64).to_le_bytes());
    h.update(&event.metadata);
    h.update(&event.data);
    h.finalize().into()
}

impl Writer {
    fn run(mut self, mut rx: mpsc::Receiver<Command>) {
        let mut batch: Batch = Vec::new();
        while let Some(Command::Append { appends, reply }) = rx.blocking_recv() {
            let Some(inner) = self.inner.upgrade() else {
                return;
            };
            let mut bytes = approx_bytes(&appends);
            batch.push((appends, reply));
            let mut stop = false;
            while bytes < self.batch_bytes_max {
                match rx.try_recv() {
                    Ok(Command::Append { appends, reply }) => {
                        bytes += approx_bytes(&appends);
                        batch.push((appends, reply));
                    }
                    Ok(Command::Stop) => {
                        stop = true;
                        break;
                    }
                    Err(_) => break,
                }
            }
            let span = tracing::debug_span!("group_commit", appends = batch.len());
            span.in_scope(|| self.commit(&inner, &mut batch));
            if stop {
                return;
            }
        }
    }

    fn commit(&mut self, inner: &Inner, batch: &mut Batch) {
        if let Some(reason) = inner.poisoned.read().clone() {
            for (_, reply) in batch.drain(..) {
                let _ = reply.send(Err(StoreError::Poisoned(reason.clone())));
            }
            return;
        }
        let mut buf: Vec<u8> = Vec::new();
        let mut prepared: Vec<Prepared> = Vec::new();
        let mut new_locs: Vec<(Loc, Hash, StreamId, Uuid)> = Vec::new();
        let mut pending_heads: HashMap<StreamId, u64> = HashMap::new();
        let mut pending_ids: HashMap<Uuid, PendingEvent> = HashMap::new();
        {
            let state = inner.state.read();
            let base_offset = self.active.len;
            for (appends, reply) in batch.drain(..) {
                if appends.is_empty() {
                    // A wake-up with nothing to write.
                    let _ = reply.send(Err(StoreError::Invalid("empty append".to_owned())));
                    continue;
                }
                let next_position = state.head() + new_locs.len() as u64;
                match prepare(
                    inner,
                    &state,
                    &appends,
                    &mut pending_heads,
                    &mut pending_ids,
                ) {
                    Ok(Prep::Duplicate(outcome)) => prepared.push(Prepared { reply, outcome }),
                    Ok(Prep::New(records)) => {
                        let txn_len = records.len() as u16;
                        let mut events = Vec::with_capacity(records.len());
                        for (i, (stream, version, event)) in records.into_iter().enumerate() {
                            let position = next_position + i as u64;
                            let offset = base_offset + buf.len() as u64;
                            let leaf = encode_record(
                                &mut buf,
                                &RecordFields {
                                    position,
                                    txn_index: i as u16,
                                    txn_len,
                                    version,
                                    stream: stream.as_str(),
                                    event_id: *event.event_id.0.as_bytes(),
                                    event_type: &event.event_type,
                                    schema_version: event.schema_version,
                                    metadata: &event.metadata,
                                    data: &event.data,
                                },
                            );
                            let len = (base_offset + buf.len() as u64 - offset) as u32;
                            let appended = AppendedEvent {
                                event_id: event.event_id,
                                stream: stream.clone(),
                                version,
                                position,
                            };
                            pending_ids.insert(
                                event.event_id.0,
                                PendingEvent {
                                    appended: appended.clone(),
                                    content: content_hash(&stream, event),
                                },
                            );
                            pending_heads.insert(stream.clone(), version);
                            new_locs.push((
                                Loc {
                                    segment: self.active.index,
                                    offset,
                                    len,
                                },
                                leaf,
                                stream,
                                event.event_id.0,
                            ));
                            events.push(appended);
                        }
                        prepared.push(Prepared {
                            reply,
                            outcome: AppendOutcome {
                                events,
                                already_recorded: false,
                            },
                        });
                    }
                    Err(err) => {
                        let _ = reply.send(Err(err));
                    }
                }
            }
        }
        if !buf.is_empty() {
            if let Err(err) = self.write_durably(inner, &mut buf, &mut new_locs) {
                // Each waiter gets the failure with its kind kept (`StorageFull` on ENOSPC),
                // so the edges can tell a full disk from a broken one.
                let (kind, reason) = (err.kind(), err.to_string());
                for p in prepared {
                    let _ = p.reply.send(Err(StoreError::Io(std::io::Error::new(
                        kind,
                        reason.clone(),
                    ))));
                }
                return;
            }
            let head = {
                let mut state = inner.state.write();
                for (loc, leaf, stream, id) in new_locs {
                    let position = state.head();
                    state.locs.push(loc);
                    state.tree.push_leaf_hash(leaf);
                    state.event_ids.insert(id, position);
                    state.streams.entry(stream).or_default().push(position);
                }
                state.head()
            };
            inner.head.send_replace(head);
        }
        for p in prepared {
            let _ = p.reply.send(Ok(p.outcome));
        }
    }

    /// Writes the batch and fsyncs it. On a write error the segment is cut back to where it
    /// was, so the store stays usable (a full disk heals when space returns); on an fsync
    /// error the store is poisoned, since the kernel may have dropped the dirty pages.
    fn write_durably(
        &mut self,
        inner: &Inner,
        buf: &mut Vec<u8>,
        new_locs: &mut [(Loc, Hash, StreamId, Uuid)],
    ) -> std::io::Result<()> {
        if self.active.len > SEGMENT_HEADER_LEN
            && self.active.len + buf.len() as u64 > self.segment_bytes_max
        {
            self.roll_segment(inner)?;
            // Rebase the batch's locations onto the new segment.
            let base = new_locs
                .first()
                .map(|(loc, ..)| loc.offset)
                .expect("invariant: a non-empty batch has records");
            for (loc, ..) in new_locs.iter_mut() {
                loc.offset = loc.offset - base + SEGMENT_HEADER_LEN;
                loc.segment = self.active.index;
            }
        }
        let at = self.active.len;
        if let Err(err) = self.active.file.write_all_at(buf, at) {
            warn!(error = %err, bytes = buf.len(), "append write failed; cutting back");
            if let Err(cut) = self
                .active
                .file
                .set_len(at)
                .and_then(|()| self.active.file.sync_all())
            {
                *inner.poisoned.write() =
                    Some(format!("write failed ({err}) and cut-back failed ({cut})"));
            }
            return Err(err);
        }
        let fsync_started = Instant::now();
        if let Err(err) = self.active.file.sync_data() {
            *inner.poisoned.write() = Some(format!("fsync failed: {err}"));
            return Err(err);
        }
        if let Some(observer) = &*inner.observer.read() {
            observer.commit_synced(&CommitObserved {
                events: new_locs.len() as u64,
                bytes: buf.len() as u64,
                fsync: fsync_started.elapsed(),
            });
        }
        self.active.len = at + buf.len() as u64;
        buf.clear();
        Ok(())
    }

    fn roll_segment(&mut self, inner: &Inner) -> std::io::Result<()> {
        let first = inner.state.read().head();
        let (file, segment) = create_segment(&inner.dir.join(LOG_DIR), first)?;
        let index = {
            let mut state = inner.state.write();
            state.segments.push(segment);
            (state.segments.len() - 1) as u32
        };
        self.active = ActiveSegment {
            file,
            len: SEGMENT_HEADER_LEN,
            index,
        };
        Ok(())
    }
}

/// Creates and syncs a new, empty segment whose first record will have `first_position`,
/// returning its write handle and its index entry.
fn create_segment(log_dir: &Path, first_position: u64) -> std::io::Result<(File, Segment)> {
    let path = log_dir.join(segment_name(first_position));
    let file = OpenOptions::new()
        .create_new(true)
        .read(true)
        .write(true)
        .open(&path)?;
    let written = file
        .write_all_at(&segment_header(first_position), 0)
        .and_then(|()| file.sync_all())
        // The new name must survive a crash too.
        .and_then(|()| File::open(log_dir)?.sync_all());
    if let Err(err) = written {
        // A segment that could not be set up (a full disk) is removed again, so the next
        // append can create it afresh once there is room, and an open never finds it
        // half-made.
        let _ = std::fs::remove_file(&path);
        return Err(err);
    }
    let read = Arc::new(File::open(&path)?);
    Ok((file, Segment { path, read }))
}

fn approx_bytes(appends: &[StreamAppend]) -> usize {
    appends
        .iter()
        .flat_map(|a| a.events.iter())
        .map(|e| e.data.len() + e.metadata.len() + 96)
        .sum()
}

enum Prep<'a> {
    New(Vec<(StreamId, u64, &'a crate::NewEvent)>),
    Duplicate(AppendOutcome),
}

fn prepare<'a>(
    inner: &Inner,
    state: &State,
    appends: &'a [StreamAppend],
    pending_heads: &mut HashMap<StreamId, u64>,
    pending_ids: &mut HashMap<Uuid, PendingEvent>,
) -> Result<Prep<'a>, StoreError> {
    let total: usize = appends.iter().map(|a| a.events.len()).sum();
    if total == 0 {
        return Err(StoreError::Invalid(
            "an append needs at least one event".to_owned(),
        ));
    }
    if total > APPEND_EVENTS_MAX {
        return Err(StoreError::Invalid(format!(
            "{total} events in one append; at most {APPEND_EVENTS_MAX}"
        )));
    }
    let mut seen_streams = std::collections::HashSet::new();
    let mut seen_ids = std::collections::HashSet::new();
    for a in appends {
        if !seen_streams.insert(&a.stream) {
            return Err(StoreError::Invalid(format!(
                "stream {} appears twice in one append",
                a.stream
            )));
        }
        for e in &a.events {
            if e.data.len() + e.metadata.len() > EVENT_BYTES_MAX {
                return Err(StoreError::Invalid(format!(
                    "event {} is larger than {EVENT_BYTES_MAX} bytes",
                    e.event_id
                )));
            }
            if e.event_type.is_empty() || e.event_type.len() > EVENT_TYPE_BYTES_MAX {
                return Err(StoreError::Invalid(format!(
                    "event type must be 1..={EVENT_TYPE_BYTES_MAX} bytes"
                )));
            }
            if !seen_ids.insert(e.event_id) {
                return Err(StoreError::Invalid(format!(
                    "event id {} appears twice in one append",
                    e.event_id
                )));
            }
        }
    }
    // Idempotency: all ids known with the same content -> the original outcome; some -> conflict.
    let known = appends
        .iter()
        .flat_map(|a| a.events.iter())
        .filter(|e| {
            state.event_ids.contains_key(&e.event_id.0) || pending_ids.contains_key(&e.event_id.0)
        })
        .count();
    if known > 0 {
        if known < total {
            let id = appends
                .iter()
                .flat_map(|a| a.events.iter())
                .find(|e| {
                    state.event_ids.contains_key(&e.event_id.0)
                        || pending_ids.contains_key(&e.event_id.0)
                })
                .map(|e| e.event_id)
                .expect("invariant: known > 0");
            return Err(StoreError::EventIdConflict { event_id: id });
        }
        let mut events = Vec::with_capacity(total);
        for a in appends {
            for e in &a.events {
                let want = content_hash(&a.stream, e);
                if let Some(p) = pending_ids.get(&e.event_id.0) {
                    if p.content != want {
                        return Err(StoreError::EventIdConflict {
                            event_id: e.event_id,
                        });
                    }
                    events.push(p.appended.clone());
                    continue;
                }
                let position = state.event_ids[&e.event_id.0];
                let recorded = read_committed(inner, state, position)?;
                let same = recorded.stream == a.stream
                    && recorded.event_type == e.event_type
                    && recorded.schema_version == e.schema_version
                    && recorded.data == e.data
                    && recorded.metadata == e.metadata;
                if !same {
                    return Err(StoreError::EventIdConflict {
                        event_id: e.event_id,
                    });
                }
                events.push(AppendedEvent {
                    event_id: e.event_id,
                    stream: recorded.stream,
                    version: recorded.version,
                    position,
                });
            }
        }
        return Ok(Prep::Duplicate(AppendOutcome {
            events,
            already_recorded: true,
        }));
    }
    let mut records = Vec::with_capacity(total);
    for a in appends {
        let actual = pending_heads
            .get(&a.stream)
            .copied()
            .or_else(|| state.stream_last(&a.stream));
        let ok = match a.expected {
            ExpectedVersion::Any => true,
            ExpectedVersion::NoStream => actual.is_none(),
            ExpectedVersion::Exact(v) => actual == Some(v),
        };
        if !ok {
            return Err(StoreError::WrongExpectedVersion {
                stream: a.stream.clone(),
                expected: a.expected,
                actual,
            });
        }
        let first = actual.map_or(0, |v| v + 1);
        for (version, e) in (first..).zip(a.events.iter()) {
            records.push((a.stream.clone(), version, e));
        }
    }
    Ok(Prep::New(records))
}

/// Reads one committed record while the caller holds the state lock.
fn read_committed(
    inner: &Inner,
    state: &State,
    position: u64,
) -> Result<RecordedEvent, StoreError> {
    let loc = state.locs[position as usize];
    let segment = &state.segments[loc.segment as usize];
    let mut buf = vec![0u8; loc.len as usize];
    segment.read.read_exact_at(&mut buf, loc.offset)?;
    let leaf = state
        .tree
        .leaf(position)
        .expect("invariant: every indexed record is a leaf");
    let _ = inner;
    check_read(&buf, position, &leaf)
        .map(to_recorded)
        .map_err(|reason| StoreError::Corrupt {
            position,
            segment: segment.path.display().to_string(),
            offset: loc.offset,
            reason,
        })
}

#[async_trait]
impl EventStore for FileStore {
    async fn append(&self, appends: Vec<StreamAppend>) -> Result<AppendOutcome, StoreError> {
        let started = Instant::now();
        let result = self.append_queued(appends).await;
        if let Some(observer) = &*self.inner.observer.read() {
            let (answer, events) = match &result {
                Ok(outcome) if outcome.already_recorded => (AppendAnswer::Duplicate, 0),
                Ok(outcome) => (AppendAnswer::Recorded, outcome.events.len() as u64),
                Err(_) => (AppendAnswer::Failed, 0),
            };
            observer.append_answered(&AppendObserved {
                answer,
                events,
                latency: started.elapsed(),
            });
        }
        result
    }

    async fn read_stream(
        &self,
        stream: &StreamId,
        from_version: u64,
        max_count: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let positions: Vec<u64> = {
            let state = self.inner.state.read();
            match state.streams.get(stream) {
                None => return Ok(Vec::new()),
                Some(p) => p
                    .iter()
                    .skip(from_version.min(p.len() as u64) as usize)
                    .take(max_count.min(READ_EVENTS_MAX))
                    .copied()
                    .collect(),
            }
        };
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || inner.read_positions(&positions))
            .await
            .map_err(|e| StoreError::Io(std::io::Error::other(e)))?
    }

    async fn stream_version(&self, stream: &StreamId) -> Result<Option<u64>, StoreError> {
        Ok(self.inner.state.read().stream_last(stream))
    }

    async fn read_all(
        &self,
        from_position: u64,
        max_count: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || inner.read_range(from_position, max_count))
            .await
            .map_err(|e| StoreError::Io(std::io::Error::other(e)))?
    }

    fn sequential_reader(&self) -> Option<Box<dyn SequentialReader>> {
        Some(Box::new(FileSequentialReader {
            inner: self.inner.clone(),
            buf: Vec::new(),
        }))
    }

    async fn event_by_id(&self, event_id: EventId) -> Result<Option<RecordedEvent>, StoreError> {
        let position = self.inner.state.read().event_ids.get(&event_id.0).copied();
        match position {
            None => Ok(None),
            Some(p) => Ok(self.read_range(p, 1)?.pop()),
        }
    }

    fn head(&self) -> u64 {
        *self.inner.head.borrow()
    }

    fn writable(&self) -> Result<(), StoreError> {
        match self.inner.poisoned.read().clone() {
            Some(reason) => Err(StoreError::Poisoned(reason)),
            None => Ok(()),
        }
    }

    fn subscribe(&self, from_position: u64) -> EventStream {
        let (tx, rx) = mpsc::channel(SUBSCRIPTION_BUFFER_EVENTS);
        let inner = self.inner.clone();
        let mut head_rx = self.inner.head.subscribe();
        tokio::spawn(async move {
            let mut position = from_position;
            loop {
                let head = *head_rx.borrow_and_update();
                if position < head {
                    let reader = inner.clone();
                    let want = (head - position).min(SUBSCRIPTION_BUFFER_EVENTS as u64) as usize;
                    let batch =
                        tokio::task::spawn_blocking(move || reader.read_range(position, want))
                            .await
                            .map_err(|e| StoreError::Io(std::io::Error::other(e)))
                            .and_then(|r| r);
                    match batch {
                        Ok(events) => {
                            for event in events {
                                position = event.position + 1;
                                if tx.send(Ok(event)).await.is_err() {
                                    return;
                                }
                            }
                        }
                        Err(err) => {
                            let _ = tx.send(Err(err)).await;
                            return;
                        }
                    }
                    continue;
                }
                tokio::select! {
                    changed = head_rx.changed() => if changed.is_err() { return },
                    () = tx.closed() => return,
                }
            }
        });
        Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))
    }

    async fn checkpoint_now(&self) -> Result<Option<SignedCheckpoint>, StoreError> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || inner.checkpoint_now())
            .await
            .map_err(|e| StoreError::Io(std::io::Error::other(e)))?
    }

    fn latest_checkpoint(&self) -> Option<SignedCheckpoint> {
        self.inner.latest_checkpoint.read().clone()
    }

    async fn inclusion_proof(
        &self,
        position: u64,
        tree_size: u64,
    ) -> Result<InclusionProof, StoreError> {
        let state = self.inner.state.read();
        let path = state.tree.inclusion_proof(position, tree_size)?;
        let leaf = state
            .tree
            .leaf(position)
            .ok_or_else(|| StoreError::NotFound(format!("position {position}")))?;
        Ok(InclusionProof {
            position,
            tree_size,
            leaf_hash: ledger_merkle::to_hex(&leaf),
            path: path.iter().map(ledger_merkle::to_hex).collect(),
            root: ledger_merkle::to_hex(&state.tree.root_at(tree_size)?),
        })
    }

    async fn consistency_proof(
        &self,
        old_size: u64,
        new_size: u64,
    ) -> Result<ConsistencyProof, StoreError> {
        let state = self.inner.state.read();
        let path = state.tree.consistency_proof(old_size, new_size)?;
        Ok(ConsistencyProof {
            old_size,
            new_size,
            old_root: ledger_merkle::to_hex(&state.tree.root_at(old_size)?),
            new_root: ledger_merkle::to_hex(&state.tree.root_at(new_size)?),
            path: path.iter().map(ledger_merkle::to_hex).collect(),
        })
    }
}

impl std::fmt::Debug for FileStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileStore")
            .field("dir", &self.inner.dir)
            .field("head", &self.head())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// One record of a test log: where it starts, its position, and where its append starts.
    struct Written {
        start: usize,
        position: u64,
        append_start: usize,
        append_position: u64,
    }

    /// A log of appends of one or two records of varied sizes, several blocks long, with the
    /// leaf hash of every record.
    fn write_log() -> (Vec<u8>, Vec<Written>, Vec<Hash>) {
        let mut out = segment_header(0).to_vec();
        let mut written = Vec::new();
        let mut leaves = Vec::new();
        let mut versions = [0u64; 5];
        let mut position = 0u64;
        let mut append = 0u64;
        while out.len() < 5 * record::SCAN_READ_BYTES {
            let len = 1 + (append % 2) as u16;
            let (append_start, append_position) = (out.len(), position);
            for index in 0..len {
                let stream = ((append + u64::from(index)) % 5) as usize;
                let data = vec![b'x'; 200 + (append as usize * 37) % 3000];
                let mut id = [0u8; 16];
                id[..8].copy_from_slice(&position.to_le_bytes());
                id[8] = 0x4d;
                let name = format!("movement-{stream}");
                written.push(Written {
                    start: out.len(),
                    position,
                    append_start,
                    append_position,
                });
                leaves.push(encode_record(
                    &mut out,
                    &RecordFields {
                        position,
                        txn_index: index,
                        txn_len: len,
                        version: versions[stream],
                        stream: &name,
                        event_id: id,
                        event_type: "Moved",
                        schema_version: 1,
                        metadata: b"{}",
                        data: &data,
                    },
                ));
                versions[stream] += 1;
                position += 1;
            }
            append += 1;
        }
        (out, written, leaves)
    }

    /// Where the blocks of a scan of `path` end.
    fn block_ends(path: &Path) -> Vec<usize> {
        let file = Arc::new(File::open(path).unwrap());
        let len = file.metadata().unwrap().len();
        let (mut scanner, _) = BlockScanner::open(file, len, Vec::new()).unwrap();
        let mut ends = Vec::new();
        loop {
            match scanner.next_frame().unwrap() {
                BlockFrame::Record { .. } => {}
                BlockFrame::BlockEnd => {
                    ends.push(scanner.block_offset() as usize + scanner.block().len());
                    scanner.next_block(Vec::new()).unwrap();
                }
                _ => break ends,
            }
        }
    }

    fn damage(scan: &Scan) -> (u64, u64, String) {
        match &scan.damage {
            Some(StoreError::Corrupt {
                position,
                offset,
                reason,
                ..
            }) => (*position, *offset, reason.clone()),
            other => panic!("expected damage, got {other:?}"),
        }
    }

    /// The sequential reader lends exactly what `read_all` returns, page by page; a visitor
    /// that breaks ends the page there; and a record rewritten on disk after the store opened
    /// (a well-formed frame with a valid checksum, other bytes) is refused by both readers
    /// against its Merkle leaf.
    #[tokio::test]
    async fn the_sequential_reader_lends_what_read_all_returns_and_checks_each_record() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::open(FileStoreConfig::new(dir.path())).unwrap();
        for i in 0..50u32 {
            let append = StreamAppend {
                stream: StreamId::new(format!("movement-{}", i % 7)).unwrap(),
                expected: ExpectedVersion::Any,
                events: vec![crate::NewEvent {
                    event_id: EventId(Uuid::new_v4()),
                    event_type: "Moved".to_owned(),
                    schema_version: 1,
                    data: format!("{{\"n\":{:02}}}", i).into_bytes(),
                    metadata: vec![b'm'; i as usize],
                }],
            };
            store.append(vec![append]).await.unwrap();
        }
        let all = store.read_all(0, READ_EVENTS_MAX).await.unwrap();
        assert_eq!(all.len(), 50);
        let mut reader = store.sequential_reader().unwrap();
        let mut lent = Vec::new();
        let mut from = 0;
        loop {
            let n = reader
                .read_page(from, 8, &mut |r| {
                    lent.push(to_recorded(r));
                    ControlFlow::Continue(())
                })
                .unwrap();
            if n == 0 {
                break;
            }
            from += n as u64;
        }
        assert_eq!(lent, all);
        let mut seen = Vec::new();
        let n = reader
            .read_page(10, 8, &mut |r| {
                seen.push(r.position);
                if seen.len() == 3 {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            })
            .unwrap();
        assert_eq!((n, seen), (3, vec![10, 11, 12]));

        let original = &all[20];
        let (path, offset, len) = {
            let state = store.inner.state.read();
            let loc = state.locs[20];
            let path = state.segments[loc.segment as usize].path.clone();
            (path, loc.offset, loc.len as usize)
        };
        let mut forged = Vec::new();
        encode_record(
            &mut forged,
            &RecordFields {
                position: 20,
                txn_index: 0,
                txn_len: 1,
                version: original.version,
                stream: original.stream.as_str(),
                event_id: *original.event_id.0.as_bytes(),
                event_type: "Moved",
                schema_version: 1,
                metadata: &original.metadata,
                data: br#"{"n":99}"#,
            },
        );
        assert_eq!(forged.len(), len);
        OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .write_all_at(&forged, offset)
            .unwrap();
        let refused = |e: StoreError| match e {
            StoreError::Corrupt {
                position, reason, ..
            } => (position, reason),
            other => panic!("expected Corrupt, got {other:?}"),
        };
        let mut lent = 0;
        let err = reader
            .read_page(16, 8, &mut |_| {
                lent += 1;
                ControlFlow::Continue(())
            })
            .unwrap_err();
        assert_eq!(lent, 4, "the records before the forged one are lent");
        let (position, reason) = refused(err);
        assert_eq!(position, 20);
        assert!(reason.contains("Merkle leaf"), "{reason}");
        let (position, reason) = refused(store.read_all(16, 8).await.unwrap_err());
        assert_eq!(position, 20);
        assert!(reason.contains("Merkle leaf"), "{reason}");
        let (position, _) = refused(store.read_all(20, 1).await.unwrap_err());
        assert_eq!(position, 20);
        assert_eq!(store.read_all(21, 1).await.unwrap()[0], all[21]);
    }

    #[test]
    fn scans_across_blocks_report_as_record_by_record() {
        let (full, written, leaves) = write_log();
        let dir = tempfile::tempdir().unwrap();
        let seg = dir.path().join(segment_name(0));
        std::fs::write(&seg, &full).unwrap();
        let scan = scan_log(dir.path()).unwrap();
        assert!(scan.damage.is_none() && scan.cut.is_none());
        assert_eq!(scan.events(), written.len() as u64);
        let mut tree = MerkleTree::new();
        for leaf in &leaves {
            tree.push_leaf_hash(*leaf);
        }
        assert_eq!(scan.tree().root(), tree.root());
        assert_eq!(scan.state.streams.len(), 5);
        let ends = block_ends(&seg);
        assert!(ends.len() >= 3, "{ends:?}");
        // Records near the end of a block (the ones carried over, and their neighbours) and a
        // sample of the others.
        let cases = written.iter().enumerate().filter(|(i, w)| {
            i % 40 == 0
                || ends
                    .iter()
                    .any(|e| w.start + 8_000 > *e && w.start < e + 8_000)
        });
        for (i, w) in cases {
            let end = written.get(i + 1).map_or(full.len(), |n| n.start);
            // A payload byte: found by the hashing thread.
            let mut bad = full.clone();
            bad[(w.start + RECORD_HEADER_LEN + end) / 2] ^= 0x20;
            std::fs::write(&seg, &bad).unwrap();
            let scan = scan_log(dir.path()).unwrap();
            let reason = "payload checksum mismatch".to_owned();
            assert_eq!(damage(&scan), (w.position, w.start as u64, reason));
            assert_eq!(scan.events(), w.position);
            assert!(scan.cut.is_none());
            // A header byte: found by the scan.
            let mut bad = full.clone();
            bad[w.start + 1] ^= 0x20;
            std::fs::write(&seg, &bad).unwrap();
            let scan = scan_log(dir.path()).unwrap();
            let reason = "record header checksum mismatch".to_owned();
            assert_eq!(damage(&scan), (w.position, w.start as u64, reason));
            assert_eq!(scan.events(), w.append_position);
            // A torn write of this record: its whole append is cut.
            std::fs::write(&seg, &full[..w.start + RECORD_HEADER_LEN + 3]).unwrap();
            let scan = scan_log(dir.path()).unwrap();
            assert!(scan.damage.is_none());
            let cut = scan.cut.as_ref().unwrap();
            assert_eq!(cut.offset, Some(w.append_start as u64));
            assert_eq!(scan.events(), w.append_position);
            let mut tree = MerkleTree::new();
            for leaf in &leaves[..w.append_position as usize] {
                tree.push_leaf_hash(*leaf);
            }
            assert_eq!(scan.tree().root(), tree.root());
        }
    }

    #[test]
    fn blocks_hashed_by_either_thread_give_the_same_tree_and_first_bad_checksum() {
        let payloads: Vec<Vec<u8>> = (0..12u8).map(|i| vec![i; 100 + usize::from(i)]).collect();
        let block = |from: usize, to: usize, bad: Option<usize>| {
            let mut bytes = Vec::new();
            let mut records = Vec::new();
            for (i, payload) in payloads.iter().enumerate().take(to).skip(from) {
                let start = bytes.len();
                record::encode_frame(&mut bytes, payload);
                if bad == Some(i) {
                    let last = bytes.len() - 1;
                    bytes[last] ^= 1;
                }
                records.push(HashedRecord {
                    start: start + RECORD_HEADER_LEN,
                    len: payload.len() as u32,
                    payload_crc: crc32c::crc32c(payload),
                });
            }
            HashBlock {
                bytes,
                records,
                segment: from as u32,
                offset: 1000 * from as u64,
                hashed: false,
                leaves: Vec::new(),
                bad: None,
            }
        };
        for prehashed in [
            [false, false, false],
            [true, false, true],
            [true, true, true],
        ] {
            for bad in [None, Some(1), Some(4), Some(5), Some(11)] {
                let (tx, rx) = std_mpsc::channel();
                let (back_tx, back_rx) = std_mpsc::channel();
                for (k, (from, to)) in [(0, 4), (4, 9), (9, 12)].into_iter().enumerate() {
                    let mut b = block(from, to, bad);
                    if prehashed[k] {
                        b.hash();
                    }
                    tx.send(b).unwrap();
                }
                drop(tx);
                let (tree, found) = hash_blocks(rx, back_tx);
                let good = bad.unwrap_or(payloads.len());
                assert_eq!(tree.len(), good as u64);
                let mut expected = MerkleTree::new();
                for p in &payloads[..good] {
                    expected.push_leaf_hash(leaf_hash(p));
                }
                assert_eq!(tree.root(), expected.root());
                let expected_bad = bad.map(|i| {
                    let from = [0, 4, 9].into_iter().rfind(|f| *f <= i).unwrap();
                    let before: usize = payloads[from..i]
                        .iter()
                        .map(|p| RECORD_HEADER_LEN + p.len())
                        .sum();
                    (from as u32, 1000 * from as u64 + before as u64)
                });
                assert_eq!(found, expected_bad, "{prehashed:?} {bad:?}");
                assert_eq!(back_rx.try_iter().count(), 3, "every block comes back");
            }
        }
    }
}
