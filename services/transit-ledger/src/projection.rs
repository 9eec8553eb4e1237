//! The projection runner: follows the log and keeps the read models (the three views of
//! `transit-views` and the fraud-signal engine) up to date for the GraphQL API.
//!
//! The views live in memory, and are stored on disk with the log position they reflect
//! ([`crate::snapshot`]) every [`SnapshotPolicy::every_events`] events or
//! [`SnapshotPolicy::interval`], and when the runner stops; a restart loads the snapshot and
//! replays the log from its position, so no event is applied twice or skipped. The projection
//! logic itself is pure and lives in `projections/`: the runner only decodes store records
//! into [`LedgerEvent`]s, applies them in order, runs the signal engine's deadline rules, and
//! publishes what changed on bounded broadcast channels for subscriptions.
//!
//! Time in the views comes from the log, so a rebuild reaches the same state as the live
//! runner: before each event the deadline rules are run up to the event's `recorded_at`, and
//! between events the runner runs them up to the ledger clock minus [`DEADLINE_GRACE`] (an
//! event recorded just before a deadline but still being written is seen first).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fraud_signals::{FraudConfig, Signal, SignalChange, SignalEngine};
use futures::StreamExt;
use ledger_store::{Clock, EventStore, RecordRef, RecordedEvent, SequentialReader};
use parking_lot::RwLock;
use tokio::sync::{broadcast, watch};
use transit_contract::events::{GuaranteeEvent, MovementEvent};
use transit_contract::ids::{GuaranteeReference, Mrn, Timestamp};
use transit_views::movements::Change;
use transit_views::{CorridorsView, ExposureView, LedgerEvent, MovementsView};

/// Updates buffered per subscriber; a subscriber further behind skips the oldest ones
/// rather than slowing the runner down.
pub const UPDATES_CHANNEL_CAPACITY: usize = 1024;
/// How often the deadline rules are run against the ledger clock.
pub const TICK_INTERVAL: Duration = Duration::from_secs(1);
/// How long the runner waits before resubscribing after the feed failed.
pub const RESUBSCRIBE_DELAY: Duration = Duration::from_millis(500);
/// How far behind the ledger clock the deadline rules run between events.
pub const DEADLINE_GRACE: Duration = Duration::from_secs(5);
/// Default: store the views after this many new events...
pub const SNAPSHOT_EVERY_EVENTS: u64 = 1_000_000;
/// ...or after this long, whichever comes first (when anything changed).
pub const SNAPSHOT_INTERVAL: Duration = Duration::from_secs(60);
/// After a snapshot failed (a full disk), the next attempt waits this long.
pub const SNAPSHOT_RETRY_DELAY: Duration = Duration::from_secs(5);

/// Where the views are stored, and how often.
#[derive(Debug, Clone)]
pub struct SnapshotPolicy {
    /// The folder of the snapshot file.
    pub dir: PathBuf,
    /// Store after this many events applied since the last snapshot.
    pub every_events: u64,
    /// Store after this long since the last snapshot, if any event was applied.
    pub interval: Duration,
}

impl SnapshotPolicy {
    /// The default policy, storing in `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        SnapshotPolicy {
            dir: dir.into(),
            every_events: SNAPSHOT_EVERY_EVENTS,
            interval: SNAPSHOT_INTERVAL,
        }
    }
}

/// The state hash of each view, hex: equal hashes mean equal views.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViewHashes {
    /// The regional transit database.
    pub movements: String,
    /// Guarantee exposure.
    pub exposure: String,
    /// Corridor analytics.
    pub corridors: String,
    /// Fraud signals.
    pub signals: String,
}

impl std::fmt::Display for ViewHashes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "movements  {}", self.movements)?;
        writeln!(f, "exposure   {}", self.exposure)?;
        writeln!(f, "corridors  {}", self.corridors)?;
        write!(f, "signals    {}", self.signals)
    }
}

/// The read models, updated together so that a reader sees all of them at one position.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct Views {
    /// The regional transit database.
    pub movements: MovementsView,
    /// Guarantee exposure.
    pub exposure: ExposureView,
    /// Corridor analytics.
    pub corridors: CorridorsView,
    /// Fraud signals.
    pub signals: SignalEngine,
}

impl Default for Views {
    fn default() -> Self {
        Views {
            movements: MovementsView::new(),
            exposure: ExposureView::new(),
            corridors: CorridorsView::new(),
            signals: SignalEngine::new(FraudConfig::default()),
        }
    }
}

/// What one applied event changed, for the broadcast channels.
#[derive(Debug, Default)]
struct Applied {
    movements: Vec<Change>,
    signals: Vec<SignalChange>,
}

/// Why a record could not be turned into a [`LedgerEvent`].
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The stream name is neither `movement-<MRN>` nor `guarantee-<GRN>`.
    #[error("position {position}: stream {stream} is not a movement or guarantee stream")]
    UnknownStream {
        /// The record's position.
        position: u64,
        /// The stream name.
        stream: String,
    },
    /// The body or the identifier did not decode.
    #[error("position {position}: {reason}")]
    Body {
        /// The record's position.
        position: u64,
        /// What went wrong.
        reason: String,
    },
}

/// A record decoded into owned values, from which a [`LedgerEvent`] is borrowed.
enum Decoded {
    Movement {
        mrn: Mrn,
        meta: transit_contract::events::EventMeta,
        // Boxed: a declaration is far larger than a guarantee event.
        event: Box<MovementEvent>,
    },
    Guarantee {
        grn: GuaranteeReference,
        meta: transit_contract::events::EventMeta,
        event: GuaranteeEvent,
    },
}

fn decode(e: RecordRef<'_>) -> Result<Decoded, DecodeError> {
    let body = |reason: String| DecodeError::Body {
        position: e.position,
        reason,
    };
    let stream = e.stream;
    if let Some(mrn) = stream.strip_prefix("movement-") {
        let mrn: Mrn = mrn.parse().map_err(|err| body(format!("{err}")))?;
        let (meta, event) = MovementEvent::decode(e.event_type, e.schema_version, e.data)
            .map_err(|err| body(err.to_string()))?;
        Ok(Decoded::Movement {
            mrn,
            meta,
            event: Box::new(event),
        })
    } else if let Some(grn) = stream.strip_prefix("guarantee-") {
        let grn: GuaranteeReference = grn.parse().map_err(|err| body(format!("{err}")))?;
        let (meta, event) = GuaranteeEvent::decode(e.event_type, e.schema_version, e.data)
            .map_err(|err| body(err.to_string()))?;
        Ok(Decoded::Guarantee { grn, meta, event })
    } else {
        Err(DecodeError::UnknownStream {
            position: e.position,
            stream: stream.to_owned(),
        })
    }
}

impl Decoded {
    /// The event at `position`, borrowed.
    fn as_event(&self, position: u64) -> LedgerEvent<'_> {
        match self {
            Decoded::Movement { mrn, meta, event } => LedgerEvent::Movement {
                position,
                mrn,
                meta,
                event,
            },
            Decoded::Guarantee { grn, meta, event } => LedgerEvent::Guarantee {
                position,
                grn,
                meta,
                event,
            },
        }
    }
}

/// Applies one event to the signal engine: deadlines that fell before the event was recorded
/// are judged first, as they were (or would have been) live, then the event.
fn apply_to_signals(signals: &mut SignalEngine, ev: &LedgerEvent<'_>) -> Vec<SignalChange> {
    let meta = match ev {
        LedgerEvent::Movement { meta, .. } | LedgerEvent::Guarantee { meta, .. } => *meta,
    };
    let mut changes = signals.tick(meta.recorded_at);
    if let LedgerEvent::Movement {
        position,
        mrn,
        meta,
        event,
    } = *ev
    {
        changes.extend(signals.apply(position, mrn, meta, event));
    }
    changes
}

/// Applies one event to the read models other than the signal engine. They and the engine
/// share no state, so a rebuild applies them on two threads (see [`rebuild`]).
fn apply_to_read_models(
    movements: &mut MovementsView,
    exposure: &mut ExposureView,
    corridors: &mut CorridorsView,
    ev: &LedgerEvent<'_>,
) -> Vec<Change> {
    let changes = movements.apply(ev);
    exposure.fold(ev);
    corridors.fold(ev);
    changes
}

impl Views {
    /// Applies one record to every view; records at or below a view's last position are
    /// ignored by the views themselves, so a redelivered record changes nothing.
    fn apply(&mut self, record: &RecordedEvent) -> Result<Applied, DecodeError> {
        let decoded = decode(record.as_record_ref())?;
        Ok(self.apply_event(&decoded.as_event(record.position)))
    }

    fn apply_event(&mut self, ev: &LedgerEvent<'_>) -> Applied {
        let signals = apply_to_signals(&mut self.signals, ev);
        let movements = apply_to_read_models(
            &mut self.movements,
            &mut self.exposure,
            &mut self.corridors,
            ev,
        );
        Applied { movements, signals }
    }

    /// Applies one record, for a rebuild: what changed is not needed.
    pub fn apply_record(&mut self, record: &RecordedEvent) -> Result<(), DecodeError> {
        self.apply(record).map(|_| ())
    }

    /// Applies one already decoded event (benchmarks load views this way, without a log).
    pub fn apply_decoded(&mut self, ev: &LedgerEvent<'_>) {
        self.apply_event(ev);
    }

    /// Runs the deadline rules up to `now` (the runner passes the clock minus
    /// [`DEADLINE_GRACE`]).
    pub fn tick(&mut self, now: Timestamp) -> Vec<SignalChange> {
        self.signals.tick(now)
    }

    /// The state hash of each view.
    pub fn hashes(&self) -> ViewHashes {
        ViewHashes {
            movements: hex::encode(self.movements.state_hash()),
            exposure: hex::encode(self.exposure.state_hash()),
            corridors: hex::encode(self.corridors.state_hash()),
            signals: hex::encode(self.signals.state_hash()),
        }
    }
}

/// Replays the events of one movement stream up to and including global position `as_of`
/// into a fresh [`MovementsView`]: the movement as it stood then.
pub async fn movement_as_of(
    store: &dyn EventStore,
    mrn: &Mrn,
    as_of: u64,
) -> Result<MovementsView, ledger_store::StoreError> {
    let stream = ledger_store::StreamId::new(transit_contract::events::movement_stream(mrn))?;
    let mut view = MovementsView::new();
    let mut from = 0;
    'pages: loop {
        let page = store
            .read_stream(&stream, from, ledger_store::READ_EVENTS_MAX)
            .await?;
        let Some(last) = page.last() else { break };
        from = last.version + 1;
        for record in &page {
            if record.position > as_of {
                break 'pages;
            }
            match decode(record.as_record_ref()) {
                Ok(Decoded::Movement { mrn, meta, event }) => {
                    view.apply(&LedgerEvent::Movement {
                        position: record.position,
                        mrn: &mrn,
                        meta: &meta,
                        event: &event,
                    });
                }
                Ok(Decoded::Guarantee { .. }) => {}
                Err(e) => return Err(ledger_store::StoreError::Invalid(e.to_string())),
            }
        }
    }
    Ok(view)
}

/// The shared read models, the position they reflect, and the update channels.
pub struct Projections {
    views: RwLock<Views>,
    /// The number of log events applied: every position below it is reflected.
    applied_tx: watch::Sender<u64>,
    movements_tx: broadcast::Sender<Change>,
    signals_tx: broadcast::Sender<Signal>,
    clock: Arc<dyn Clock>,
    snapshots: Option<SnapshotPolicy>,
    /// The position of the last snapshot written or loaded, and when.
    last_snapshot: parking_lot::Mutex<(u64, Instant)>,
    /// After a failed snapshot, no new attempt is due before this instant.
    snapshot_retry_at: parking_lot::Mutex<Option<Instant>>,
}

impl std::fmt::Debug for Projections {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Projections")
            .field("caught_up_to", &self.caught_up_to())
            .finish_non_exhaustive()
    }
}

/// How the views were set up at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Restored {
    /// No snapshot yet: the views are rebuilt from position 0.
    Empty,
    /// Loaded a snapshot reflecting this many events; the rest is replayed.
    Snapshot {
        /// Events the snapshot reflects.
        position: u64,
    },
    /// A snapshot was found but could not be used (set aside), so the views are rebuilt.
    Unusable {
        /// Why.
        reason: String,
    },
}

/// The log's Merkle root over its first `size` events.
async fn root_at(store: &dyn EventStore, size: u64) -> Result<[u8; 32], String> {
    let proof = store
        .consistency_proof(size, size)
        .await
        .map_err(|e| e.to_string())?;
    let bytes = hex::decode(&proof.old_root).map_err(|e| e.to_string())?;
    <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| "root is not 32 bytes".to_owned())
}

impl Projections {
    /// Empty views, reflecting nothing yet and never stored; [`Projections::run`] fills them.
    pub fn new(clock: Arc<dyn Clock>) -> Arc<Projections> {
        Self::with_views(clock, Views::default(), 0, None)
    }

    /// Views built elsewhere (a rebuild, a benchmark) reflecting `position` events, not stored.
    pub fn from_views(clock: Arc<dyn Clock>, views: Views, position: u64) -> Arc<Projections> {
        Self::with_views(clock, views, position, None)
    }

    fn with_views(
        clock: Arc<dyn Clock>,
        views: Views,
        position: u64,
        snapshots: Option<SnapshotPolicy>,
    ) -> Arc<Projections> {
        let (applied_tx, _) = watch::channel(position);
        let (movements_tx, _) = broadcast::channel(UPDATES_CHANNEL_CAPACITY);
        let (signals_tx, _) = broadcast::channel(UPDATES_CHANNEL_CAPACITY);
        Arc::new(Projections {
            views: RwLock::new(views),
            applied_tx,
            movements_tx,
            signals_tx,
            clock,
            snapshots,
            last_snapshot: parking_lot::Mutex::new((position, Instant::now())),
            snapshot_retry_at: parking_lot::Mutex::new(None),
        })
    }

    /// Views stored under `policy.dir`: loads the snapshot there when it matches `store`
    /// (same Merkle root at its position, same format and fraud configuration), otherwise
    /// sets it aside and starts empty. [`Projections::run`] continues from there.
    pub async fn open(
        clock: Arc<dyn Clock>,
        store: &dyn EventStore,
        policy: SnapshotPolicy,
    ) -> (Arc<Projections>, Restored) {
        let dir = policy.dir.clone();
        // On a resident thread: the views it decodes are the long-lived heap (see `resident`).
        let loaded = crate::resident::spawn(move || crate::snapshot::read(&dir))
            .await
            .unwrap_or_else(|e| Err(std::io::Error::from(e).into()));
        let unusable = |reason: String| {
            tracing::warn!(%reason, "views snapshot unusable; rebuilding from position 0");
            if let Err(e) = crate::snapshot::set_aside(&policy.dir) {
                tracing::warn!(error = %e, "could not set the unusable snapshot aside");
            }
            Restored::Unusable { reason }
        };
        let (views, position, restored) = match loaded {
            Ok(None) => (Views::default(), 0, Restored::Empty),
            Err(e) => (Views::default(), 0, unusable(e.to_string())),
            Ok(Some(snap)) => {
                let head = store.head();
                let check = if snap.position > head {
                    Err(format!(
                        "it reflects {} events but the log holds {head}",
                        snap.position
                    ))
                } else if snap.views.signals.config() != &FraudConfig::default() {
                    Err("it was built with another fraud configuration".to_owned())
                } else {
                    match root_at(store, snap.position).await {
                        Ok(root) if root == snap.root => Ok(()),
                        Ok(_) => Err(format!(
                            "the log's Merkle root at {} differs from the snapshot's: it was built from another log",
                            snap.position
                        )),
                        Err(e) => Err(e),
                    }
                };
                match check {
                    Ok(()) => {
                        let position = snap.position;
                        (snap.views, position, Restored::Snapshot { position })
                    }
                    Err(reason) => (Views::default(), 0, unusable(reason)),
                }
            }
        };
        let projections = Self::with_views(clock, views, position, Some(policy));
        (projections, restored)
    }

    /// The number of log events the views reflect: positions `0..caught_up_to()`.
    pub fn caught_up_to(&self) -> u64 {
        *self.applied_tx.borrow()
    }

    /// Waits until the views reflect the event at `position` (and everything before it).
    pub async fn wait_for(&self, position: u64) {
        let mut rx = self.applied_tx.subscribe();
        // The sender lives as long as `self`, so the wait cannot fail while we hold `self`.
        let _ = rx.wait_for(|applied| *applied > position).await;
    }

    /// Read access to the views, all at [`Projections::caught_up_to`].
    pub fn read(&self) -> parking_lot::RwLockReadGuard<'_, Views> {
        self.views.read()
    }

    /// The ledger clock's "now".
    pub fn now(&self) -> Timestamp {
        // The ledger clock is always within the representable range; fall back to the epoch
        // rather than fail a read if a test clock is set outside it.
        Timestamp::from_unix_millis(self.clock.now_millis())
            .or_else(|_| Timestamp::from_unix_millis(0))
            .expect("invariant: the Unix epoch is a valid timestamp")
    }

    /// Movement changes, as they are applied.
    pub fn movement_updates(&self) -> broadcast::Receiver<Change> {
        self.movements_tx.subscribe()
    }

    /// Fraud signals raised, as they are raised.
    pub fn signals_raised(&self) -> broadcast::Receiver<Signal> {
        self.signals_tx.subscribe()
    }

    fn publish(&self, applied: Applied) {
        // A send fails only when nobody is subscribed, which is fine.
        for change in applied.movements {
            let _ = self.movements_tx.send(change);
        }
        for change in applied.signals {
            if let SignalChange::Raised(signal) = change {
                let _ = self.signals_tx.send(signal);
            }
        }
    }

    fn apply(&self, record: &RecordedEvent) {
        let expected = self.caught_up_to();
        if record.position < expected {
            return;
        }
        let applied = {
            let mut views = self.views.write();
            match views.apply(record) {
                Ok(applied) => applied,
                Err(e) => {
                    // A record the contract cannot decode is a bug upstream; skipping it keeps
                    // the rest of the views serving, and the error says where to look.
                    tracing::error!(error = %e, "projection skipped an undecodable event");
                    Applied::default()
                }
            }
        };
        self.applied_tx.send_replace(record.position + 1);
        self.publish(applied);
    }

    /// Runs the deadline rules up to the ledger clock minus [`DEADLINE_GRACE`].
    pub fn tick(&self) {
        let grace = i64::try_from(DEADLINE_GRACE.as_millis()).unwrap_or(i64::MAX);
        let Ok(now) = Timestamp::from_unix_millis(self.clock.now_millis().saturating_sub(grace))
        else {
            return;
        };
        let changes = self.views.write().tick(now);
        self.publish(Applied {
            movements: Vec::new(),
            signals: changes,
        });
    }

    fn snapshot_due(&self) -> bool {
        let Some(policy) = &self.snapshots else {
            return false;
        };
        if self
            .snapshot_retry_at
            .lock()
            .is_some_and(|at| Instant::now() < at)
        {
            return false;
        }
        let (position, at) = *self.last_snapshot.lock();
        let applied = self.caught_up_to();
        applied > position
            && (applied - position >= policy.every_events || at.elapsed() >= policy.interval)
    }

    /// Stores the views with the position they reflect, if anything changed since the last
    /// snapshot. Called by the runner between events (never concurrently with an apply).
    pub async fn snapshot_now(
        self: &Arc<Self>,
        store: &dyn EventStore,
    ) -> Result<Option<crate::snapshot::Written>, crate::snapshot::SnapshotError> {
        let Some(policy) = self.snapshots.clone() else {
            return Ok(None);
        };
        let position = self.caught_up_to();
        if position == 0 || position == self.last_snapshot.lock().0 {
            return Ok(None);
        }
        let root = root_at(store, position)
            .await
            .map_err(crate::snapshot::SnapshotError::Damaged)?;
        let this = self.clone();
        // The encoding buffers (as large as the views) are allocated and freed on a resident
        // thread, so no thread exit ever hands them to the serving threads to reclaim.
        let written = crate::resident::spawn(move || {
            let views = this.views.read();
            crate::snapshot::write(&policy.dir, position, &root, &views)
        })
        .await
        .map_err(std::io::Error::from)??;
        *self.last_snapshot.lock() = (position, Instant::now());
        tracing::info!(
            position,
            bytes = written.bytes,
            encode_ms = written.encode.as_millis() as u64,
            write_ms = written.write.as_millis() as u64,
            "views stored"
        );
        Ok(Some(written))
    }

    async fn snapshot_if_due(self: &Arc<Self>, store: &dyn EventStore) {
        if self.snapshot_due() {
            let failed = self.snapshot_now(store).await.err();
            if let Some(e) = &failed {
                // The views stay correct in memory; the next attempt or a replay recovers.
                tracing::error!(error = %e, "could not store the views");
            }
            // Not on every event while the disk is full: each attempt encodes every view.
            // (One lock per statement: parking_lot's mutex is not reentrant.)
            let retry_at = failed.map(|_| Instant::now() + SNAPSHOT_RETRY_DELAY);
            *self.snapshot_retry_at.lock() = retry_at;
        }
    }

    /// Follows the log from [`Projections::caught_up_to`] until `stop` turns true: applies
    /// each event, runs the deadline rules every [`TICK_INTERVAL`], stores the views as the
    /// [`SnapshotPolicy`] says, and once more when stopping.
    pub async fn run(self: Arc<Self>, store: Arc<dyn EventStore>, mut stop: watch::Receiver<bool>) {
        let mut ticks = tokio::time::interval(TICK_INTERVAL);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        'subscriptions: loop {
            let mut feed = store.subscribe(self.caught_up_to());
            loop {
                tokio::select! {
                    changed = stop.changed() => {
                        if changed.is_err() || *stop.borrow() {
                            break 'subscriptions;
                        }
                    }
                    _ = ticks.tick() => {
                        self.tick();
                        self.snapshot_if_due(&*store).await;
                    }
                    next = feed.next() => match next {
                        Some(Ok(record)) => {
                            self.apply(&record);
                            self.snapshot_if_due(&*store).await;
                        }
                        Some(Err(e)) => {
                            tracing::warn!(error = %e, "projection feed failed; resubscribing");
                            tokio::time::sleep(RESUBSCRIBE_DELAY).await;
                            continue 'subscriptions;
                        }
                        None => {
                            // The store closed the feed (shutting down): wait for the stop.
                            let _ = stop.wait_for(|s| *s).await;
                            break 'subscriptions;
                        }
                    },
                }
            }
        }
        if let Err(e) = self.snapshot_now(&*store).await {
            tracing::error!(error = %e, "could not store the views at stop");
        }
    }
}

/// Pages of decoded events in flight between the decoding thread and each applying one.
const REBUILD_PIPELINE_PAGES: usize = 4;

/// A page of decoded events with their positions.
type DecodedPage = Vec<(u64, Decoded)>;

/// Where the producer of a rebuild sends decoded pages: one page, shared, to each of the two
/// applying lanes (the signal engine; the other read models).
struct Lanes {
    signals: std::sync::mpsc::SyncSender<Arc<DecodedPage>>,
    read_models: std::sync::mpsc::SyncSender<Result<Arc<DecodedPage>, RebuildError>>,
}

impl Lanes {
    /// Hands a page (or the error that ends the rebuild) to the lanes. `false` when the
    /// producer must stop: after an error, or when a lane has gone (it failed).
    fn send(&self, page: Result<DecodedPage, RebuildError>) -> bool {
        match page {
            Ok(page) => {
                let page = Arc::new(page);
                self.signals.send(page.clone()).is_ok() && self.read_models.send(Ok(page)).is_ok()
            }
            Err(e) => {
                let _ = self.read_models.send(Err(e));
                false
            }
        }
    }
}

/// What a lane does with a page it has applied: the last lane done with it reports the
/// progress and hands the page back to the producer, to be emptied and refilled there.
///
/// Neither hand-off ever waits. A lane that waited for the runtime to take its progress could
/// close a cycle (lane waits for the runtime, the producer for the lane, the runtime for the
/// producer): progress is one number per page (a few kB for the largest log), so its channel
/// is unbounded.
#[derive(Clone)]
struct PageDone {
    spare_pages: std::sync::mpsc::SyncSender<DecodedPage>,
    progress: tokio::sync::mpsc::UnboundedSender<u64>,
}

impl PageDone {
    fn done(&self, page: Arc<DecodedPage>) {
        if let Some(page) = Arc::into_inner(page) {
            let applied = page.last().map(|(p, _)| *p + 1);
            // When the producer is gone or behind, the page is freed here.
            let _ = self.spare_pages.try_send(page);
            if let Some(applied) = applied {
                let _ = self.progress.send(applied);
            }
        }
    }
}

/// Rebuilds every view from position 0 of `store`, reading pages of `page` events;
/// `progress` is called after each page with the number of events applied.
///
/// Three threads: one reads and decodes (JSON), and two apply each decoded page, one to the
/// signal engine and one to the other read models (they share no state, so the result is the
/// one a single thread applying every event to every view in order would reach). When the
/// store lends records ([`EventStore::sequential_reader`]), they are checked and decoded
/// straight from its read buffer; otherwise pages of [`EventStore::read_all`] are decoded.
/// Memory holds the views and a few pages.
pub async fn rebuild(
    store: &dyn EventStore,
    page: usize,
    mut progress: impl FnMut(u64),
) -> Result<Views, RebuildError> {
    let (signals_tx, signals_rx) = std::sync::mpsc::sync_channel(REBUILD_PIPELINE_PAGES);
    let (read_models_tx, read_models_rx) = std::sync::mpsc::sync_channel::<
        Result<Arc<DecodedPage>, RebuildError>,
    >(REBUILD_PIPELINE_PAGES);
    let lanes = Lanes {
        signals: signals_tx,
        read_models: read_models_tx,
    };
    // Applied pages go back to the decoding thread, to be emptied and refilled there: a
    // decoded event is a few dozen small allocations, and freeing them on the thread that made
    // them is several times cheaper than on an applying thread with the allocator's
    // cross-thread free path; reusing the page itself spares the allocator a round trip to
    // the OS (page faults, zeroing) for each page.
    let (spare_tx, spare_rx) =
        std::sync::mpsc::sync_channel::<DecodedPage>(2 * REBUILD_PIPELINE_PAGES);
    let (applied_tx, mut applied_rx) = tokio::sync::mpsc::unbounded_channel::<u64>();
    let done = PageDone {
        spare_pages: spare_tx,
        progress: applied_tx,
    };
    let signals_done = done.clone();
    // The lanes allocate the views: resident threads, which never exit (see `resident`).
    let signals_lane = crate::resident::spawn(move || {
        let mut signals = SignalEngine::new(FraudConfig::default());
        for page in signals_rx {
            for (position, decoded) in page.iter() {
                apply_to_signals(&mut signals, &decoded.as_event(*position));
            }
            signals_done.done(page);
        }
        signals
    });
    let read_models_lane = crate::resident::spawn(move || {
        let mut movements = MovementsView::new();
        let mut exposure = ExposureView::new();
        let mut corridors = CorridorsView::new();
        for page in read_models_rx {
            let page = page?;
            for (position, decoded) in page.iter() {
                let ev = decoded.as_event(*position);
                apply_to_read_models(&mut movements, &mut exposure, &mut corridors, &ev);
            }
            done.done(page);
        }
        Ok::<_, RebuildError>((movements, exposure, corridors))
    });
    let applied = async {
        let (signals, read_models) = tokio::join!(signals_lane, read_models_lane);
        let joined = |e: crate::resident::ResidentError| {
            RebuildError::Store(ledger_store::StoreError::Io(e.into()))
        };
        let (movements, exposure, corridors) = read_models.map_err(joined)??;
        Ok::<_, RebuildError>(Views {
            movements,
            exposure,
            corridors,
            signals: signals.map_err(joined)?,
        })
    };
    let drain = async {
        while let Some(done) = applied_rx.recv().await {
            progress(done);
        }
    };
    match store.sequential_reader() {
        Some(reader) => {
            let producer = std::thread::Builder::new()
                .name("rebuild-read".to_owned())
                .spawn(move || read_and_decode(reader, page, &lanes, &spare_rx))
                .map_err(ledger_store::StoreError::Io)?;
            let (views, ()) = tokio::join!(applied, drain);
            // The producer stops at the head or as soon as the lanes are gone.
            let _ = tokio::task::spawn_blocking(move || producer.join()).await;
            views
        }
        None => {
            let (views, (), ()) = tokio::join!(
                applied,
                drain,
                read_all_and_decode(store, page, lanes, spare_rx)
            );
            views
        }
    }
}

/// Decodes `records` into `out` (emptied first).
fn decode_page<'a>(
    records: impl IntoIterator<Item = RecordRef<'a>>,
    out: &mut DecodedPage,
) -> Result<(), DecodeError> {
    out.clear();
    for record in records {
        out.push((record.position, decode(record)?));
    }
    Ok(())
}

/// The rebuild's producer over a [`SequentialReader`]: reads, checks and decodes each page on
/// this thread, straight from the reader's buffer, and hands it to the applier. Stops at the
/// head, on an error (sent to the applier), or when the applier is gone.
fn read_and_decode(
    mut reader: Box<dyn SequentialReader>,
    page: usize,
    lanes: &Lanes,
    spare_pages: &std::sync::mpsc::Receiver<DecodedPage>,
) {
    let mut from = 0;
    loop {
        let mut decoded = spare_pages.try_recv().unwrap_or_default();
        decoded.clear();
        let mut failed = None;
        let read = reader.read_page(from, page, &mut |record| match decode(record) {
            Ok(d) => {
                decoded.push((record.position, d));
                std::ops::ControlFlow::Continue(())
            }
            Err(e) => {
                failed = Some(e);
                std::ops::ControlFlow::Break(())
            }
        });
        let sent = match (read, failed) {
            (Err(e), _) => Err(e.into()),
            (Ok(_), Some(e)) => Err(e.into()),
            (Ok(0), None) => return,
            (Ok(n), None) => {
                from += n as u64;
                Ok(decoded)
            }
        };
        if !lanes.send(sent) {
            return;
        }
    }
}

/// The rebuild's producer over [`EventStore::read_all`]: reads pages on the runtime and
/// decodes them on a thread of their own. The runtime side only ever awaits (a blocking send
/// here would stall the task that drains the progress, the other branches of the rebuild's
/// `join!`).
async fn read_all_and_decode(
    store: &dyn EventStore,
    page: usize,
    lanes: Lanes,
    spare_pages: std::sync::mpsc::Receiver<DecodedPage>,
) {
    let (raw_tx, mut raw_rx) = tokio::sync::mpsc::channel::<
        Result<Vec<RecordedEvent>, ledger_store::StoreError>,
    >(REBUILD_PIPELINE_PAGES);
    let errors = lanes.read_models.clone();
    let decoder = std::thread::Builder::new()
        .name("rebuild-decode".to_owned())
        .spawn(move || {
            while let Some(records) = raw_rx.blocking_recv() {
                let page = records.map_err(RebuildError::from).and_then(|records| {
                    let mut decoded = spare_pages.try_recv().unwrap_or_default();
                    decode_page(
                        records.iter().map(RecordedEvent::as_record_ref),
                        &mut decoded,
                    )?;
                    Ok(decoded)
                });
                if !lanes.send(page) {
                    return;
                }
            }
        });
    let decoder = match decoder {
        Ok(d) => d,
        Err(e) => {
            // Nothing was sent yet: the lane has room, this never waits.
            let _ = errors.try_send(Err(ledger_store::StoreError::Io(e).into()));
            return;
        }
    };
    let mut from = 0;
    loop {
        let read = store.read_all(from, page).await;
        let stop = match &read {
            Ok(records) => match records.last() {
                Some(last) => {
                    from = last.position + 1;
                    false
                }
                None => break,
            },
            Err(_) => true,
        };
        // The decoder only stops early after an error, which the read-models lane reports.
        if raw_tx.send(read).await.is_err() || stop {
            break;
        }
    }
    drop(raw_tx);
    drop(errors);
    let _ = tokio::task::spawn_blocking(move || decoder.join()).await;
}

/// Why a rebuild stopped.
#[derive(Debug, thiserror::Error)]
pub enum RebuildError {
    /// Reading the log failed.
    #[error(transparent)]
    Store(#[from] ledger_store::StoreError),
    /// An event did not decode.
    #[error(transparent)]
    Decode(#[from] DecodeError),
}
