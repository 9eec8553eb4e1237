//! The fan-out dispatcher: follows the event log from a durable checkpoint and sends each
//! office what it must know (the anticipated records on release, crossing and arrival back to
//! the office of departure, the write-off on discharge) to its outbound queue. Driven by the
//! log, not by the request that appended, so a crash between append and publish loses
//! nothing: the dispatcher resumes from its checkpoint and sends again (at least once), with
//! the same notification ids so receivers can drop copies.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{FutureExt as _, StreamExt as _};
use ledger_store::{EventStore, RecordedEvent, StreamId, READ_EVENTS_MAX};
use tokio::sync::watch;
use transit_contract::events::{EventMeta, MovementEvent};
use transit_contract::ids::MessageId;
use transit_contract::messages::Sender;
use transit_rules::fanout::{plan, Notification, NotificationKind};
use transit_rules::MovementState;
use transit_xml::{
    AnticipatedArrivalRecord, AnticipatedTransitRecord, ArrivalAdvice, CrossingNotification,
    Header, OutboundMessage, WriteOffNotification,
};

use crate::broker::{
    next_backoff, BrokerConfig, BrokerError, OutgoingText, Publisher, RECONNECT_BACKOFF_MIN,
};

/// How often the checkpoint is saved while events flow (it is also saved when idle).
pub const CHECKPOINT_SAVE_INTERVAL: Duration = Duration::from_millis(200);
/// Most events whose notifications are published as one batch.
pub const DISPATCH_BATCH_EVENTS_MAX: usize = 256;

/// Why the dispatcher stopped a session.
#[derive(Debug, thiserror::Error)]
pub enum DispatchError {
    /// The broker failed.
    #[error(transparent)]
    Broker(#[from] BrokerError),
    /// The log failed.
    #[error("event log: {0}")]
    Store(#[from] ledger_store::StoreError),
    /// The checkpoint file failed.
    #[error("checkpoint: {0}")]
    Checkpoint(#[from] std::io::Error),
    /// A recorded event does not decode.
    #[error("event at position {position}: {reason}")]
    Decode {
        /// Where.
        position: u64,
        /// Why.
        reason: String,
    },
}

/// The durable position of the dispatcher: the next global position to dispatch.
pub struct Checkpoint {
    path: PathBuf,
}

impl Checkpoint {
    /// The checkpoint kept at `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    /// The saved position (0 when none was saved yet).
    pub fn load(&self) -> Result<u64, std::io::Error> {
        match std::fs::read_to_string(&self.path) {
            Ok(text) => text.trim().parse().map_err(|_| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("{} does not hold a position", self.path.display()),
                )
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
            Err(e) => Err(e),
        }
    }

    /// Saves `position` atomically and durably (write, fsync, rename, fsync the folder).
    pub fn save(&self, position: u64) -> Result<(), std::io::Error> {
        crate::snapshot::write_atomically(&self.path, position.to_string().as_bytes())
    }

    /// Where it lives.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Runs the dispatcher until `shutdown` turns true.
pub async fn run(
    store: Arc<dyn EventStore>,
    config: Arc<BrokerConfig>,
    checkpoint: Checkpoint,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut backoff = RECONNECT_BACKOFF_MIN;
    loop {
        match session(&store, &config, &checkpoint, &mut shutdown).await {
            Ok(()) => return,
            Err(err) => {
                tracing::warn!(error = %err, retry_in = ?backoff, "fan-out session ended; resuming from the checkpoint");
            }
        }
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            _ = shutdown.changed() => return,
        }
        backoff = next_backoff(backoff);
    }
}

async fn session(
    store: &Arc<dyn EventStore>,
    config: &BrokerConfig,
    checkpoint: &Checkpoint,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<(), DispatchError> {
    let mut position = checkpoint.load()?;
    let mut saved = position;
    let mut publisher = Publisher::connect(config.stomp, &config.credentials).await?;
    let mut feed = store.subscribe(position);
    let mut last_save = Instant::now();
    config.metrics.dispatching_from(position);
    tracing::info!(from = position, "fan-out dispatching");
    loop {
        let next = tokio::select! {
            next = feed.next() => next,
            () = tokio::time::sleep(CHECKPOINT_SAVE_INTERVAL), if saved != position => {
                checkpoint.save(position)?;
                saved = position;
                last_save = Instant::now();
                continue;
            }
            _ = shutdown.changed() => {
                checkpoint.save(position)?;
                return Ok(());
            }
        };
        let Some(event) = next else {
            checkpoint.save(position)?;
            return Ok(());
        };
        // Take whatever else is already committed, up to a bound, and publish it as one batch.
        let mut events = vec![event?];
        while events.len() < DISPATCH_BATCH_EVENTS_MAX {
            match feed.next().now_or_never() {
                Some(Some(event)) => events.push(event?),
                _ => break,
            }
        }
        let mut outgoing = Vec::new();
        for event in &events {
            outgoing.extend(notifications(store, config, event).await?);
        }
        let published = outgoing.len();
        publisher
            .send_batch(outgoing)
            .await
            .inspect_err(|_| config.metrics.publish_failed())?;
        position = events.last().map_or(position, |e| e.position + 1);
        config.metrics.published(published, position);
        if last_save.elapsed() >= CHECKPOINT_SAVE_INTERVAL {
            checkpoint.save(position)?;
            saved = position;
            last_save = Instant::now();
        }
    }
}

/// Whether an event type can produce notifications (others are skipped without decoding).
fn may_notify(event_type: &str) -> bool {
    matches!(
        event_type,
        "TransitDeclared"
            | "AnticipatedRecordsDispatched"
            | "DestinationChanged"
            | "BorderCrossed"
            | "ArrivalRecorded"
            | "TransitDischarged"
    )
}

/// The messages an event must send (none for most events).
async fn notifications(
    store: &Arc<dyn EventStore>,
    config: &BrokerConfig,
    event: &RecordedEvent,
) -> Result<Vec<OutgoingText>, DispatchError> {
    if !event.stream.as_str().starts_with("movement-") || !may_notify(&event.event_type) {
        return Ok(Vec::new());
    }
    let decode_error = |reason: String| DispatchError::Decode {
        position: event.position,
        reason,
    };
    let (meta, decoded) =
        MovementEvent::decode(&event.event_type, event.schema_version, &event.data)
            .map_err(|e| decode_error(e.to_string()))?;
    let movement = movement_at(store, &event.stream, event.version).await?;
    let mut out = Vec::new();
    if matches!(decoded, MovementEvent::TransitDeclared { .. }) && event.version > 0 {
        // Crossings and arrivals reported before the declaration reached the ledger could not
        // be routed then (no office of departure was known): route them now, under the ids
        // of their own events.
        let earlier = store
            .read_stream(
                &event.stream,
                0,
                (event.version as usize).min(READ_EVENTS_MAX),
            )
            .await?;
        for e in &earlier {
            let (meta, fact) = MovementEvent::decode(&e.event_type, e.schema_version, &e.data)
                .map_err(|err| decode_error(err.to_string()))?;
            out.extend(messages_for(config, e, &meta, &fact, &movement).map_err(&decode_error)?);
        }
        return Ok(out);
    }
    out.extend(messages_for(config, event, &meta, &decoded, &movement).map_err(&decode_error)?);
    Ok(out)
}

/// The outbound messages for one recorded fact, given the movement as it stands.
fn messages_for(
    config: &BrokerConfig,
    event: &RecordedEvent,
    meta: &EventMeta,
    decoded: &MovementEvent,
    movement: &MovementState,
) -> Result<Vec<OutgoingText>, String> {
    let event_key = event.event_id.0.simple().to_string();
    let mrn = movement
        .declaration()
        .map(|d| d.mrn.to_string())
        .unwrap_or_default();
    let mut out = Vec::new();
    for note in plan(&event_key, decoded, movement) {
        let Some(message) = outbound(&note, decoded, meta, movement)? else {
            continue;
        };
        out.push(OutgoingText {
            queue: config.office_queue(&note.office),
            headers: vec![
                ("type".to_owned(), note.kind.as_str().to_owned()),
                ("transitMessageId".to_owned(), note.message_id.clone()),
                ("correlation-id".to_owned(), meta.message_id.to_string()),
                ("transitMrn".to_owned(), mrn.clone()),
                ("transitPosition".to_owned(), event.position.to_string()),
                (
                    "transitRecordedAt".to_owned(),
                    meta.recorded_at.to_rfc3339(),
                ),
            ],
            body: transit_xml::encode_outbound(&message),
        });
    }
    Ok(out)
}

/// The movement as it stood right after the event at `version`.
async fn movement_at(
    store: &Arc<dyn EventStore>,
    stream: &StreamId,
    version: u64,
) -> Result<MovementState, DispatchError> {
    let mut state = MovementState::default();
    let mut from = 0;
    while from <= version {
        let want = ((version + 1 - from) as usize).min(READ_EVENTS_MAX);
        let events = store.read_stream(stream, from, want).await?;
        if events.is_empty() {
            break;
        }
        for e in &events {
            let (meta, event) = MovementEvent::decode(&e.event_type, e.schema_version, &e.data)
                .map_err(|err| DispatchError::Decode {
                    position: e.position,
                    reason: err.to_string(),
                })?;
            state.apply(&meta, &event);
            from = e.version + 1;
        }
    }
    Ok(state)
}

/// Builds the outbound message of a notification; `None` when the movement lacks what it
/// needs (e.g. a record for a movement whose release is not known).
fn outbound(
    note: &Notification,
    event: &MovementEvent,
    meta: &EventMeta,
    movement: &MovementState,
) -> Result<Option<OutboundMessage>, String> {
    let Some(declaration) = movement.declaration() else {
        return Ok(None);
    };
    let message_id: MessageId = note
        .message_id
        .parse()
        .map_err(|e| format!("notification id {}: {e}", note.message_id))?;
    let header = |office: &transit_contract::ids::OfficeCode| Header {
        message_id: message_id.clone(),
        correlation_id: Some(meta.message_id.clone()),
        sender: Sender {
            country: office.country(),
            office: office.clone(),
        },
        prepared_at: meta.recorded_at,
    };
    let departure = &declaration.office_of_departure;
    let released_at = movement.release().map(|r| r.released_at);
    let message = match (note.kind, event) {
        (NotificationKind::AnticipatedTransitRecord, _) => {
            let Some(released_at) = released_at else {
                return Ok(None);
            };
            OutboundMessage::AnticipatedTransitRecord(AnticipatedTransitRecord {
                header: header(departure),
                office_of_transit: note.office.clone(),
                released_at,
                declaration: declaration.clone(),
            })
        }
        (NotificationKind::AnticipatedArrivalRecord, _) => {
            let Some(released_at) = released_at else {
                return Ok(None);
            };
            OutboundMessage::AnticipatedArrivalRecord(AnticipatedArrivalRecord {
                header: header(departure),
                office_of_destination: note.office.clone(),
                released_at,
                declaration: declaration.clone(),
            })
        }
        (
            NotificationKind::CrossingNotification,
            MovementEvent::BorderCrossed {
                office,
                crossed_at,
                declared_office,
                seals_intact,
                seals_observed,
            },
        ) => OutboundMessage::CrossingNotification(CrossingNotification {
            header: header(office),
            mrn: declaration.mrn.clone(),
            office_of_transit: office.clone(),
            crossed_at: *crossed_at,
            declared_office: *declared_office,
            seals_intact: *seals_intact,
            seals_observed: seals_observed.clone(),
        }),
        (
            NotificationKind::ArrivalAdvice,
            MovementEvent::ArrivalRecorded {
                office,
                arrived_at,
                declared_destination,
            },
        ) => OutboundMessage::ArrivalAdvice(ArrivalAdvice {
            header: header(office),
            mrn: declaration.mrn.clone(),
            office_of_destination: office.clone(),
            arrived_at: *arrived_at,
            declared_destination: *declared_destination,
        }),
        (
            NotificationKind::WriteOffNotification,
            MovementEvent::TransitDischarged { amount_released },
        ) => OutboundMessage::WriteOffNotification(WriteOffNotification {
            header: header(departure),
            mrn: declaration.mrn.clone(),
            guarantee: declaration.guarantee.clone(),
            amount_released: amount_released.clone(),
            discharged_at: meta.occurred_at,
        }),
        _ => return Ok(None),
    };
    Ok(Some(message))
}
