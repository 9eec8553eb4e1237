//! The command side of the ledger: an inbound message becomes events through the pure rules,
//! and is appended atomically to the movement's and the guarantee's streams with optimistic
//! concurrency. HTTP today and the broker gateway later both enter here, so a message is
//! judged the same way whatever carried it.

use std::collections::HashMap;
use std::sync::Arc;

use base64::Engine;
use ledger_store::{
    AppendOutcome, Clock, EventId, EventStore, ExpectedVersion, NewEvent, StoreError, StreamAppend,
    StreamId, READ_EVENTS_MAX,
};
use parking_lot::Mutex;
use serde::Serialize;
use tracing::Instrument;
use transit_contract::events::{
    guarantee_stream, movement_stream, EventMeta, GuaranteeEvent, MovementEvent,
};
use transit_contract::ids::Timestamp;
use transit_contract::messages::InboundMessage;
use transit_rules::{decide, Context, Decision, GuaranteeState, MovementState, Rejection};
use uuid::Uuid;

/// Largest inbound message accepted, in bytes.
pub const MESSAGE_BYTES_MAX: usize = 512 * 1024;
/// How often a submission is retried when another writer got to its stream first.
pub const CONFLICT_RETRIES_MAX: usize = 8;
/// Folded stream states kept in memory; the cache starts over when it is full.
pub const STATE_CACHE_ENTRIES_MAX: usize = 100_000;

/// Namespace of the event ids derived from message ids (UUID v5), so that a redelivered
/// message maps to the same event ids and the log's idempotency catches it even in a race.
const EVENT_ID_NAMESPACE: Uuid = Uuid::from_u128(0x6c0b_5b8e_3f1d_4c62_9a57_2e4f_8d31_a9c0);

/// Where one recorded event landed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RecordedRef {
    /// Global position (Merkle leaf index).
    pub position: u64,
    /// Stream.
    pub stream: String,
    /// Version in the stream.
    pub version: u64,
    /// Event type.
    pub event_type: String,
    /// Event id.
    pub event_id: Uuid,
}

/// What happened to an accepted message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SubmitOutcome {
    /// The message.
    pub message_id: String,
    /// True when the message had been recorded before: nothing new was appended and these
    /// are the original events.
    pub duplicate: bool,
    /// The events, in order.
    pub events: Vec<RecordedRef>,
}

/// Why a message was not recorded.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    /// The bytes are not a message (syntax, unknown fields, bad identifiers).
    #[error("malformed message: {0}")]
    Malformed(String),
    /// A well-formed message that breaks a rule of the contract.
    #[error("invalid message: {0}")]
    Invalid(String),
    /// The domain rules refused it.
    #[error("{0}")]
    Rejected(Rejection),
    /// Too many concurrent writers on the same streams.
    #[error("the streams kept changing; retry later")]
    Contended,
    /// The event log failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Recorded events no longer decode: a bug or damage.
    #[error("stored event does not decode: {0}")]
    Decode(String),
}

struct StateCache<T> {
    map: HashMap<StreamId, (Option<u64>, T)>,
}

impl<T: Clone + Default> StateCache<T> {
    fn new() -> Self {
        Self {
            map: HashMap::new(),
        }
    }

    fn get(&self, stream: &StreamId) -> (Option<u64>, T) {
        self.map.get(stream).cloned().unwrap_or_default()
    }

    fn put(&mut self, stream: StreamId, version: Option<u64>, state: T) {
        if self.map.len() >= STATE_CACHE_ENTRIES_MAX && !self.map.contains_key(&stream) {
            // Bounded memory: start over rather than track recency; states are rebuilt from
            // the log on demand.
            self.map.clear();
        }
        match self.map.get(&stream) {
            Some((cached, _)) if *cached > version => {}
            _ => {
                self.map.insert(stream, (version, state));
            }
        }
    }
}

/// The ledger's command handler.
pub struct Ledger {
    store: Arc<dyn EventStore>,
    clock: Arc<dyn Clock>,
    movements: Mutex<StateCache<MovementState>>,
    guarantees: Mutex<StateCache<GuaranteeState>>,
}

fn stream_id(name: String) -> Result<StreamId, SubmitError> {
    StreamId::new(name).map_err(|e| SubmitError::Invalid(e.to_string()))
}

/// The id of the `index`-th event a message produced in `stream`.
pub fn derived_event_id(message_id: &str, stream: &StreamId, index: usize) -> EventId {
    let name = format!("{message_id}\n{stream}\n{index}");
    EventId(Uuid::new_v5(&EVENT_ID_NAMESPACE, name.as_bytes()))
}

impl Ledger {
    /// A ledger over `store`, stamping events with `clock`.
    pub fn new(store: Arc<dyn EventStore>, clock: Arc<dyn Clock>) -> Self {
        Self {
            store,
            clock,
            movements: Mutex::new(StateCache::new()),
            guarantees: Mutex::new(StateCache::new()),
        }
    }

    /// The event log.
    pub fn store(&self) -> &Arc<dyn EventStore> {
        &self.store
    }

    /// Parses a JSON-encoded message and submits it.
    pub async fn submit_json(&self, bytes: &[u8]) -> Result<SubmitOutcome, SubmitError> {
        if bytes.len() > MESSAGE_BYTES_MAX {
            return Err(SubmitError::Malformed(format!(
                "message of {} bytes; at most {MESSAGE_BYTES_MAX}",
                bytes.len()
            )));
        }
        let message: InboundMessage =
            serde_json::from_slice(bytes).map_err(|e| SubmitError::Malformed(e.to_string()))?;
        self.submit(&message, bytes, "application/json").await
    }

    /// Parses an XML-encoded message (through the XML codec's limits) and submits it.
    pub async fn submit_xml(&self, bytes: &[u8]) -> Result<SubmitOutcome, SubmitError> {
        let message = transit_xml::decode_inbound(bytes).map_err(|e| match e.code() {
            "MALFORMED" => SubmitError::Malformed(e.to_string()),
            _ => SubmitError::Invalid(e.to_string()),
        })?;
        self.submit(&message, bytes, "application/xml").await
    }

    /// Judges a message and records it. `raw` is the submission exactly as received; it is
    /// kept with the first event so what was signed and hashed is what was sent.
    #[tracing::instrument(skip_all, fields(message_id = %message.message_id, kind = message.kind()))]
    pub async fn submit(
        &self,
        message: &InboundMessage,
        raw: &[u8],
        content_type: &str,
    ) -> Result<SubmitOutcome, SubmitError> {
        message
            .validate()
            .map_err(|e| SubmitError::Invalid(e.to_string()))?;
        for _ in 0..CONFLICT_RETRIES_MAX {
            match self.try_submit(message, raw, content_type).await {
                Err(SubmitError::Store(StoreError::WrongExpectedVersion { .. })) => {
                    tracing::debug!("stream moved on while deciding; retrying");
                }
                other => return other,
            }
        }
        Err(SubmitError::Contended)
    }

    async fn try_submit(
        &self,
        message: &InboundMessage,
        raw: &[u8],
        content_type: &str,
    ) -> Result<SubmitOutcome, SubmitError> {
        let movement_stream_id = match message.mrn() {
            Some(mrn) => Some(stream_id(movement_stream(mrn))?),
            None => None,
        };
        let (movement_version, movement) = match &movement_stream_id {
            Some(stream) => self.load_movement(stream).await?,
            None => (None, MovementState::default()),
        };
        let grn = message
            .grn()
            .cloned()
            .or_else(|| transit_rules::guarantee_needed(message, &movement));
        let guarantee_stream_id = match &grn {
            Some(grn) => Some(stream_id(guarantee_stream(grn))?),
            None => None,
        };
        let (guarantee_version, guarantee) = match &guarantee_stream_id {
            Some(stream) => {
                let (v, s) = self.load_guarantee(stream).await?;
                (v, Some(s))
            }
            None => (None, None),
        };
        let ctx = Context {
            recorded_at: Timestamp::from_unix_millis(self.clock.now_millis())
                .map_err(|e| SubmitError::Invalid(e.to_string()))?,
        };
        let decision =
            decide(message, &movement, guarantee.as_ref(), &ctx).map_err(SubmitError::Rejected)?;
        let (movement_events, guarantee_events, meta) = match decision {
            Decision::Duplicate => {
                return self
                    .original_outcome(message, [&movement_stream_id, &guarantee_stream_id])
                    .await
            }
            Decision::Append {
                movement,
                guarantee,
                meta,
            } => (movement, guarantee, meta),
        };
        let message_id = message.message_id.as_str();
        let mut submission = Submission {
            message_id,
            content_type,
            digest: hex::encode(message.content_digest()),
            raw,
            first_event: None,
        };
        let mut appends = Vec::new();
        if let (Some(stream), false) = (&movement_stream_id, movement_events.is_empty()) {
            appends.push(StreamAppend {
                stream: stream.clone(),
                expected: expected(movement_version),
                events: new_events(&movement_events, stream, &meta, &mut submission),
            });
        }
        if let (Some(stream), false) = (&guarantee_stream_id, guarantee_events.is_empty()) {
            appends.push(StreamAppend {
                stream: stream.clone(),
                expected: expected(guarantee_version),
                events: new_events(&guarantee_events, stream, &meta, &mut submission),
            });
        }
        let outcome = self
            .store
            .append(appends)
            .instrument(tracing::info_span!("durable_append"))
            .await;
        let outcome = match outcome {
            Ok(outcome) => outcome,
            Err(StoreError::EventIdConflict { .. }) => {
                return Err(SubmitError::Rejected(Rejection {
                    code: transit_rules::RejectionCode::MessageIdConflict,
                    message: format!(
                        "message id {message_id} was already used for a message with other content"
                    ),
                }))
            }
            Err(e) => return Err(e.into()),
        };
        // Keep the cache in step with what was just written.
        if !outcome.already_recorded {
            self.remember(
                &movement_stream_id,
                movement,
                &movement_events,
                &guarantee_stream_id,
                guarantee,
                &guarantee_events,
                &meta,
                &outcome,
            );
        }
        Ok(SubmitOutcome {
            message_id: message_id.to_owned(),
            duplicate: outcome.already_recorded,
            events: outcome
                .events
                .iter()
                .zip(
                    movement_events
                        .iter()
                        .map(|e| e.event_type())
                        .chain(guarantee_events.iter().map(|e| e.event_type())),
                )
                .map(|(e, t)| RecordedRef {
                    position: e.position,
                    stream: e.stream.to_string(),
                    version: e.version,
                    event_type: t.to_owned(),
                    event_id: e.event_id.0,
                })
                .collect(),
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn remember(
        &self,
        movement_stream_id: &Option<StreamId>,
        mut movement: MovementState,
        movement_events: &[MovementEvent],
        guarantee_stream_id: &Option<StreamId>,
        guarantee: Option<GuaranteeState>,
        guarantee_events: &[GuaranteeEvent],
        meta: &EventMeta,
        outcome: &AppendOutcome,
    ) {
        let last_version = |stream: &StreamId| {
            outcome
                .events
                .iter()
                .filter(|e| &e.stream == stream)
                .map(|e| e.version)
                .max()
        };
        if let Some(stream) = movement_stream_id {
            if let Some(version) = last_version(stream) {
                for e in movement_events {
                    movement.apply(meta, e);
                }
                self.movements
                    .lock()
                    .put(stream.clone(), Some(version), movement);
            }
        }
        if let (Some(stream), Some(mut guarantee)) = (guarantee_stream_id, guarantee) {
            if let Some(version) = last_version(stream) {
                for e in guarantee_events {
                    guarantee.apply(meta, e);
                }
                self.guarantees
                    .lock()
                    .put(stream.clone(), Some(version), guarantee);
            }
        }
    }

    async fn original_outcome(
        &self,
        message: &InboundMessage,
        streams: [&Option<StreamId>; 2],
    ) -> Result<SubmitOutcome, SubmitError> {
        let message_id = message.message_id.as_str();
        let mut events = Vec::new();
        for stream in streams.into_iter().flatten() {
            for index in 0.. {
                let id = derived_event_id(message_id, stream, index);
                match self.store.event_by_id(id).await? {
                    Some(e) => events.push(RecordedRef {
                        position: e.position,
                        stream: e.stream.to_string(),
                        version: e.version,
                        event_type: e.event_type,
                        event_id: e.event_id.0,
                    }),
                    None => break,
                }
            }
        }
        events.sort_by_key(|e| e.position);
        Ok(SubmitOutcome {
            message_id: message_id.to_owned(),
            duplicate: true,
            events,
        })
    }

    async fn load_movement(
        &self,
        stream: &StreamId,
    ) -> Result<(Option<u64>, MovementState), SubmitError> {
        self.load(&self.movements, stream).await
    }

    async fn load_guarantee(
        &self,
        stream: &StreamId,
    ) -> Result<(Option<u64>, GuaranteeState), SubmitError> {
        self.load(&self.guarantees, stream).await
    }

    /// The state of a stream: the cached fold plus whatever was appended since.
    async fn load<T: Folded>(
        &self,
        cache: &Mutex<StateCache<T>>,
        stream: &StreamId,
    ) -> Result<(Option<u64>, T), SubmitError> {
        let (mut version, mut state) = cache.lock().get(stream);
        loop {
            let from = version.map_or(0, |v| v + 1);
            let events = self
                .store
                .read_stream(stream, from, READ_EVENTS_MAX)
                .await?;
            if events.is_empty() {
                break;
            }
            for e in events {
                let (meta, event) = T::decode(&e.event_type, e.schema_version, &e.data)
                    .map_err(|err| SubmitError::Decode(format!("{stream}@{}: {err}", e.version)))?;
                state.fold(&meta, &event);
                version = Some(e.version);
            }
        }
        cache.lock().put(stream.clone(), version, state.clone());
        Ok((version, state))
    }
}

/// A stream state the ledger folds from recorded events.
trait Folded: Clone + Default {
    type Event;
    fn decode(
        event_type: &str,
        schema_version: u16,
        bytes: &[u8],
    ) -> Result<(EventMeta, Self::Event), transit_contract::events::DecodeError>;
    fn fold(&mut self, meta: &EventMeta, event: &Self::Event);
}

impl Folded for MovementState {
    type Event = MovementEvent;
    fn decode(
        event_type: &str,
        schema_version: u16,
        bytes: &[u8],
    ) -> Result<(EventMeta, MovementEvent), transit_contract::events::DecodeError> {
        MovementEvent::decode(event_type, schema_version, bytes)
    }
    fn fold(&mut self, meta: &EventMeta, event: &MovementEvent) {
        self.apply(meta, event);
    }
}

impl Folded for GuaranteeState {
    type Event = GuaranteeEvent;
    fn decode(
        event_type: &str,
        schema_version: u16,
        bytes: &[u8],
    ) -> Result<(EventMeta, GuaranteeEvent), transit_contract::events::DecodeError> {
        GuaranteeEvent::decode(event_type, schema_version, bytes)
    }
    fn fold(&mut self, meta: &EventMeta, event: &GuaranteeEvent) {
        self.apply(meta, event);
    }
}

/// An event the ledger records.
trait Recordable {
    fn event_type(&self) -> &'static str;
    fn schema_version(&self) -> u16;
    fn encode(&self, meta: &EventMeta) -> Vec<u8>;
}

impl Recordable for MovementEvent {
    fn event_type(&self) -> &'static str {
        MovementEvent::event_type(self)
    }
    fn schema_version(&self) -> u16 {
        MovementEvent::schema_version(self)
    }
    fn encode(&self, meta: &EventMeta) -> Vec<u8> {
        MovementEvent::encode(self, meta)
    }
}

impl Recordable for GuaranteeEvent {
    fn event_type(&self) -> &'static str {
        GuaranteeEvent::event_type(self)
    }
    fn schema_version(&self) -> u16 {
        GuaranteeEvent::schema_version(self)
    }
    fn encode(&self, meta: &EventMeta) -> Vec<u8> {
        GuaranteeEvent::encode(self, meta)
    }
}

/// The submission as received, kept in the metadata of the first event it produced; the
/// other events of the same append point at that one.
struct Submission<'a> {
    message_id: &'a str,
    content_type: &'a str,
    digest: String,
    raw: &'a [u8],
    first_event: Option<EventId>,
}

impl Submission<'_> {
    fn metadata(&mut self, event_id: EventId) -> Vec<u8> {
        let value = match self.first_event {
            None => {
                self.first_event = Some(event_id);
                serde_json::json!({ "submission": {
                    "messageId": self.message_id,
                    "contentType": self.content_type,
                    "sha256": self.digest,
                    "body": base64::engine::general_purpose::STANDARD.encode(self.raw),
                }})
            }
            Some(first) => serde_json::json!({ "submission": {
                "messageId": self.message_id,
                "sha256": self.digest,
                "recordedWith": first.to_string(),
            }}),
        };
        serde_json::to_vec(&value).expect("invariant: JSON values serialise")
    }
}

fn new_events<E: Recordable>(
    events: &[E],
    stream: &StreamId,
    meta: &EventMeta,
    submission: &mut Submission<'_>,
) -> Vec<NewEvent> {
    events
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let event_id = derived_event_id(submission.message_id, stream, i);
            NewEvent {
                event_id,
                event_type: e.event_type().to_owned(),
                schema_version: e.schema_version(),
                data: e.encode(meta),
                metadata: submission.metadata(event_id),
            }
        })
        .collect()
}

fn expected(version: Option<u64>) -> ExpectedVersion {
    match version {
        None => ExpectedVersion::NoStream,
        Some(v) => ExpectedVersion::Exact(v),
    }
}
