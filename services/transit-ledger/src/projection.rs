//! The projection runner: follows the log and keeps the read models (the three views of
//! `transit-views` and the fraud-signal engine) up to date, in memory, for the GraphQL API.
//!
//! This first runner keeps everything in memory and rebuilds from position 0 at every start;
//! storing the views on disk with the position they reflect (so a restart resumes instead of
//! replaying) comes later. The projection logic itself is pure and lives in `projections/`:
//! the runner only decodes store records into [`LedgerEvent`]s, applies them in order, ticks
//! the signal engine's deadline rules with the ledger [`Clock`], and publishes what changed on
//! bounded broadcast channels for subscriptions.

use std::sync::Arc;
use std::time::Duration;

use fraud_signals::{FraudConfig, Signal, SignalChange, SignalEngine};
use futures::StreamExt;
use ledger_store::{Clock, EventStore, RecordedEvent};
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

/// The read models, updated together so that a reader sees all of them at one position.
#[derive(Debug)]
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

fn decode(e: &RecordedEvent) -> Result<Decoded, DecodeError> {
    let body = |reason: String| DecodeError::Body {
        position: e.position,
        reason,
    };
    let stream = e.stream.as_str();
    if let Some(mrn) = stream.strip_prefix("movement-") {
        let mrn: Mrn = mrn.parse().map_err(|err| body(format!("{err}")))?;
        let (meta, event) = MovementEvent::decode(&e.event_type, e.schema_version, &e.data)
            .map_err(|err| body(err.to_string()))?;
        Ok(Decoded::Movement {
            mrn,
            meta,
            event: Box::new(event),
        })
    } else if let Some(grn) = stream.strip_prefix("guarantee-") {
        let grn: GuaranteeReference = grn.parse().map_err(|err| body(format!("{err}")))?;
        let (meta, event) = GuaranteeEvent::decode(&e.event_type, e.schema_version, &e.data)
            .map_err(|err| body(err.to_string()))?;
        Ok(Decoded::Guarantee { grn, meta, event })
    } else {
        Err(DecodeError::UnknownStream {
            position: e.position,
            stream: stream.to_owned(),
        })
    }
}

impl Views {
    /// Applies one record to every view; records at or below a view's last position are
    /// ignored by the views themselves, so a redelivered record changes nothing.
    fn apply(&mut self, record: &RecordedEvent) -> Result<Applied, DecodeError> {
        let decoded = decode(record)?;
        let position = record.position;
        let mut applied = Applied::default();
        let ev = match &decoded {
            Decoded::Movement { mrn, meta, event } => {
                applied
                    .signals
                    .extend(self.signals.apply(position, mrn, meta, event));
                LedgerEvent::Movement {
                    position,
                    mrn,
                    meta,
                    event,
                }
            }
            Decoded::Guarantee { grn, meta, event } => LedgerEvent::Guarantee {
                position,
                grn,
                meta,
                event,
            },
        };
        applied.movements = self.movements.apply(&ev);
        self.exposure.apply(&ev);
        self.corridors.apply(&ev);
        Ok(applied)
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
            match decode(record) {
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
}

impl std::fmt::Debug for Projections {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Projections")
            .field("caught_up_to", &self.caught_up_to())
            .finish_non_exhaustive()
    }
}

impl Projections {
    /// Empty views, reflecting nothing yet; [`Projections::run`] fills them.
    pub fn new(clock: Arc<dyn Clock>) -> Arc<Projections> {
        let (applied_tx, _) = watch::channel(0);
        let (movements_tx, _) = broadcast::channel(UPDATES_CHANNEL_CAPACITY);
        let (signals_tx, _) = broadcast::channel(UPDATES_CHANNEL_CAPACITY);
        Arc::new(Projections {
            views: RwLock::new(Views::default()),
            applied_tx,
            movements_tx,
            signals_tx,
            clock,
        })
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

    fn tick(&self) {
        let now = self.now();
        let changes = self.views.write().signals.tick(now);
        self.publish(Applied {
            movements: Vec::new(),
            signals: changes,
        });
    }

    /// Follows the log from position 0 until `stop` turns true: applies each event, and runs
    /// the deadline rules every [`TICK_INTERVAL`].
    pub async fn run(self: Arc<Self>, store: Arc<dyn EventStore>, mut stop: watch::Receiver<bool>) {
        let mut ticks = tokio::time::interval(TICK_INTERVAL);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        'subscriptions: loop {
            let mut feed = store.subscribe(self.caught_up_to());
            loop {
                tokio::select! {
                    changed = stop.changed() => {
                        if changed.is_err() || *stop.borrow() {
                            return;
                        }
                    }
                    _ = ticks.tick() => self.tick(),
                    next = feed.next() => match next {
                        Some(Ok(record)) => self.apply(&record),
                        Some(Err(e)) => {
                            tracing::warn!(error = %e, "projection feed failed; resubscribing");
                            tokio::time::sleep(RESUBSCRIBE_DELAY).await;
                            continue 'subscriptions;
                        }
                        None => {
                            // The store closed the feed (shutting down): wait for the stop.
                            let _ = stop.wait_for(|s| *s).await;
                            return;
                        }
                    },
                }
            }
        }
    }
}
