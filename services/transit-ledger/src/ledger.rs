//! The command side of the ledger: an inbound message becomes events through the pure rules,
//! and is appended atomically to the movement's and the guarantee's streams with optimistic
//! concurrency. HTTP and the broker gateway both enter here, so a message is judged the same
//! way whatever carried it.
//!
//! With a key registry ([`Ledger::with_registry`], what `transit-ledger serve` always runs) every
//! submission must carry a signature (`transit_auth`) that checks out at the ledger's clock
//! before anything else is decided; the key id, the public key and the signature are then
//! recorded beside the submission in the first event's metadata ([`RecordedSubmission`]),
//! inside what the Merkle tree covers, so `transit-ledger verify` can re-check them offline.

use std::collections::HashMap;
use std::sync::Arc;

use base64::Engine;
use ledger_store::{
    AppendOutcome, Clock, EventId, EventStore, ExpectedVersion, NewEvent, StoreError, StreamAppend,
    StreamId, READ_EVENTS_MAX,
};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tracing::Instrument;
use transit_auth::{KeyRegistry, SignatureError, SubmissionSignature};
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
    /// Its signature is missing or does not check out against the key registry (only with a
    /// registry).
    #[error("{0}")]
    Signature(SignatureError),
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
    /// When set, every submission must be signed by a key of this registry.
    registry: Option<Arc<KeyRegistry>>,
    /// Where refused submissions are kept for audit (the service always has one).
    refusals: Option<Arc<crate::refusals::RefusalLog>>,
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
    /// A ledger over `store`, stamping events with `clock`, with no key registry: signatures
    /// are neither required nor checked nor recorded. For unit tests, benchmarks and tools;
    /// the service (`transit-ledger serve`) always runs [`Ledger::with_registry`].
    pub fn new(store: Arc<dyn EventStore>, clock: Arc<dyn Clock>) -> Self {
        Self {
            store,
            clock,
            registry: None,
            refusals: None,
            movements: Mutex::new(StateCache::new()),
            guarantees: Mutex::new(StateCache::new()),
        }
    }

    /// A ledger that records only submissions signed by a key of `registry`, valid at the
    /// ledger's clock when the submission is received.
    pub fn with_registry(
        store: Arc<dyn EventStore>,
        clock: Arc<dyn Clock>,
        registry: Arc<KeyRegistry>,
    ) -> Self {
        Self {
            registry: Some(registry),
            ..Self::new(store, clock)
        }
    }

    /// Keeps every refused submission in `log` (see [`Ledger::record_refusal`]).
    pub fn with_refusals(mut self, log: Arc<crate::refusals::RefusalLog>) -> Self {
        self.refusals = Some(log);
        self
    }

    /// The refused-submissions log, if kept.
    pub fn refusals(&self) -> Option<&Arc<crate::refusals::RefusalLog>> {
        self.refusals.as_ref()
    }

    /// Records a refused submission for audit (the edges call this with what they answered).
    /// When the message did not reach the edge parsed, it is parsed here best-effort, so the
    /// claimed sender is kept whenever the bytes say who it was.
    pub fn record_refusal(&self, refused: crate::refusals::Refused<'_>) {
        let Some(log) = &self.refusals else { return };
        let parsed;
        let mut refused = refused;
        if refused.message.is_none() {
            let xml = refused
                .raw
                .iter()
                .find(|b| !b.is_ascii_whitespace())
                .is_some_and(|b| *b == b'<');
            parsed = decode_message(if xml { XML } else { JSON }, refused.raw).ok();
            refused.message = parsed.as_ref();
        }
        let at = self.now().or_else(|_| {
            Timestamp::from_unix_millis(0).map_err(|e| SubmitError::Invalid(e.to_string()))
        });
        if let Ok(at) = at {
            log.record(at, refused);
        }
    }

    /// The event log.
    pub fn store(&self) -> &Arc<dyn EventStore> {
        &self.store
    }

    /// [`Self::submit_json_signed`] without a signature (for a ledger with no registry).
    pub async fn submit_json(&self, bytes: &[u8]) -> Result<SubmitOutcome, SubmitError> {
        self.submit_json_signed(bytes, None).await
    }

    /// Parses a JSON-encoded message and submits it with the signature text received beside it
    /// (the `Transit-Signature` header).
    pub async fn submit_json_signed(
        &self,
        bytes: &[u8],
        signature: Option<&str>,
    ) -> Result<SubmitOutcome, SubmitError> {
        let message = decode_message(JSON, bytes)?;
        self.submit_signed(&message, bytes, JSON, signature).await
    }

    /// [`Self::submit_xml_signed`] without a signature (for a ledger with no registry).
    pub async fn submit_xml(&self, bytes: &[u8]) -> Result<SubmitOutcome, SubmitError> {
        self.submit_xml_signed(bytes, None).await
    }

    /// Parses an XML-encoded message (through the XML codec's limits) and submits it with the
    /// signature text received beside it.
    pub async fn submit_xml_signed(
        &self,
        bytes: &[u8],
        signature: Option<&str>,
    ) -> Result<SubmitOutcome, SubmitError> {
        let message = decode_message(XML, bytes)?;
        self.submit_signed(&message, bytes, XML, signature).await
    }

    /// [`Self::submit_signed`] without a signature (for a ledger with no registry).
    pub async fn submit(
        &self,
        message: &InboundMessage,
        raw: &[u8],
        content_type: &str,
    ) -> Result<SubmitOutcome, SubmitError> {
        self.submit_signed(message, raw, content_type, None).await
    }

    /// Judges a message and records it. `raw` is the submission exactly as received; it is
    /// kept with the first event so what was signed and hashed is what was sent. `signature`
    /// is the `keyId=..; alg=Ed25519; sig=..` text received beside the message (`None` when
    /// absent). With a registry it is checked first, at the ledger's clock (never the
    /// message's `sentAt`), and a refusal appends nothing; without one it is ignored.
    #[tracing::instrument(skip_all, fields(message_id = %message.message_id, kind = message.kind()))]
    pub async fn submit_signed(
        &self,
        message: &InboundMessage,
        raw: &[u8],
        content_type: &str,
        signature: Option<&str>,
    ) -> Result<SubmitOutcome, SubmitError> {
        // Who sent it comes before what it says: an unauthenticated sender learns nothing
        // about the message's validity or the ledger's state.
        let mut recorded_at = self.now()?;
        let mut signed = self.authenticate(message, signature, recorded_at)?;
        message
            .validate()
            .map_err(|e| SubmitError::Invalid(e.to_string()))?;
        for attempt in 0..CONFLICT_RETRIES_MAX {
            if attempt > 0 {
                // Judged afresh at a new instant: the key must still be valid then, so that the
                // events' recordedAt is always a time at which the key was valid.
                recorded_at = self.now()?;
                signed = self.authenticate(message, signature, recorded_at)?;
            }
            let submitted = self
                .try_submit(message, raw, content_type, recorded_at, signed.as_ref())
                .await;
            match submitted {
                Err(SubmitError::Store(StoreError::WrongExpectedVersion { .. })) => {
                    tracing::debug!("stream moved on while deciding; retrying");
                }
                other => return other,
            }
        }
        Err(SubmitError::Contended)
    }

    fn now(&self) -> Result<Timestamp, SubmitError> {
        Timestamp::from_unix_millis(self.clock.now_millis())
            .map_err(|e| SubmitError::Invalid(e.to_string()))
    }

    /// Checks the signature against the registry at `at`; what to record about it.
    fn authenticate(
        &self,
        message: &InboundMessage,
        signature: Option<&str>,
        at: Timestamp,
    ) -> Result<Option<RecordedSignature>, SubmitError> {
        let Some(registry) = &self.registry else {
            return Ok(None);
        };
        let (sig, key) = registry
            .verify_text(message, signature, at)
            .map_err(SubmitError::Signature)?;
        Ok(Some(RecordedSignature {
            key_id: key.key_id.to_string(),
            algorithm: transit_auth::ALGORITHM.to_owned(),
            public_key: key.public_key_base64(),
            signature: sig.signature_base64(),
        }))
    }

    async fn try_submit(
        &self,
        message: &InboundMessage,
        raw: &[u8],
        content_type: &str,
        recorded_at: Timestamp,
        signed: Option<&RecordedSignature>,
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
        let ctx = Context { recorded_at };
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
            signed,
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

/// The content type of a JSON submission, as recorded.
pub const JSON: &str = "application/json";
/// The content type of an XML submission, as recorded.
pub const XML: &str = "application/xml";

/// Parses a submission's bytes as `content_type` (`application/json` or `application/xml`)
/// through the same limits whatever carried it: the HTTP API, the broker gateway, `transit-ledger
/// sign` and the offline re-check of recorded submissions.
pub fn decode_message(content_type: &str, bytes: &[u8]) -> Result<InboundMessage, SubmitError> {
    match content_type {
        JSON => {
            if bytes.len() > MESSAGE_BYTES_MAX {
                return Err(SubmitError::Malformed(format!(
                    "message of {} bytes; at most {MESSAGE_BYTES_MAX}",
                    bytes.len()
                )));
            }
            // RFC 8259: JSON exchanged between systems is UTF-8; say so rather than let the
            // parser report a stray byte as a bad code point somewhere.
            let text = std::str::from_utf8(bytes).map_err(|e| {
                SubmitError::Malformed(format!(
                    "the message is not UTF-8 text: invalid byte at offset {}",
                    e.valid_up_to()
                ))
            })?;
            serde_json::from_str(text).map_err(|e| SubmitError::Malformed(e.to_string()))
        }
        XML => transit_xml::decode_inbound(bytes).map_err(|e| match e.code() {
            "MALFORMED" => SubmitError::Malformed(e.to_string()),
            _ => SubmitError::Invalid(e.to_string()),
        }),
        other => Err(SubmitError::Malformed(format!(
            "content type {other:?}: only {JSON} and {XML} are submissions"
        ))),
    }
}

/// The submission kept, exactly as received, in the metadata of the first event it produced
/// (`{"submission": {...}}`; the other events of the same append carry only `messageId`,
/// `sha256` and `recordedWith`, the first event's id). It is part of the record, so the Merkle
/// leaf covers it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecordedSubmission {
    /// The message's id.
    pub message_id: String,
    /// `application/json` or `application/xml`: how to read `body`.
    pub content_type: String,
    /// Hex SHA-256 of the message's canonical JSON (its content digest, as in every event's
    /// `meta.messageDigest`).
    pub sha256: String,
    /// The bytes received, standard base64.
    pub body: String,
    /// The signature that was checked when the submission was recorded; absent when the
    /// ledger ran without a key registry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<RecordedSignature>,
}

/// A submission's signature as recorded: enough to re-check it years later with no registry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecordedSignature {
    /// The registry key that signed (`keyId`).
    pub key_id: String,
    /// Always `Ed25519`.
    pub algorithm: String,
    /// The key's public key when it signed, standard base64 of 32 bytes.
    pub public_key: String,
    /// The signature over the submission's signing bytes, standard base64 of 64 bytes.
    pub signature: String,
}

impl RecordedSignature {
    /// The signature as checked ([`SubmissionSignature`]) and the public key bytes.
    pub fn decode(&self) -> Result<(SubmissionSignature, [u8; 32]), String> {
        use base64::engine::general_purpose::STANDARD;
        if self.algorithm != transit_auth::ALGORITHM {
            return Err(format!("algorithm {:?} is not Ed25519", self.algorithm));
        }
        let key_id = self
            .key_id
            .parse()
            .map_err(|e| format!("keyId {:?}: {e}", self.key_id))?;
        let public_key: [u8; 32] = STANDARD
            .decode(&self.public_key)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| "publicKey is not base64 of 32 bytes".to_owned())?;
        let signature: [u8; 64] = STANDARD
            .decode(&self.signature)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| "signature is not base64 of 64 bytes".to_owned())?;
        Ok((SubmissionSignature { key_id, signature }, public_key))
    }
}

/// A recorded submission read back and checked: see [`RecordedSubmission::check`].
#[derive(Clone, Debug)]
pub struct CheckedSubmission {
    /// The message, parsed again from the recorded bytes.
    pub message: InboundMessage,
    /// The signature and the public key it verified with, when one was recorded.
    pub signature: Option<(SubmissionSignature, [u8; 32])>,
}

impl RecordedSubmission {
    /// The submission held by an event's metadata: `None` for an event that only points at the
    /// event holding it (`recordedWith`), or whose metadata holds no submission.
    pub fn from_metadata(metadata: &[u8]) -> Result<Option<Self>, String> {
        #[derive(Deserialize)]
        struct Envelope {
            submission: Option<serde_json::Value>,
        }
        let Ok(envelope) = serde_json::from_slice::<Envelope>(metadata) else {
            return Ok(None);
        };
        let Some(submission) = envelope.submission else {
            return Ok(None);
        };
        if submission.get("recordedWith").is_some() {
            return Ok(None);
        }
        serde_json::from_value(submission)
            .map(Some)
            .map_err(|e| format!("the recorded submission does not read: {e}"))
    }

    /// Re-reads the recorded bytes as the ledger did, checks that their content digest is the
    /// recorded one, and that the recorded signature (if any) verifies over them with the
    /// recorded public key. Nothing else is needed: no registry, no clock.
    pub fn check(&self) -> Result<CheckedSubmission, String> {
        use base64::engine::general_purpose::STANDARD;
        let raw = STANDARD
            .decode(&self.body)
            .map_err(|e| format!("the recorded body is not base64: {e}"))?;
        let message = decode_message(&self.content_type, &raw)
            .map_err(|e| format!("the recorded body no longer reads as a message: {e}"))?;
        let digest = hex::encode(message.content_digest());
        if digest != self.sha256 {
            return Err(format!(
                "the recorded body's content digest is {digest}, the recorded sha256 is {}",
                self.sha256
            ));
        }
        if message.message_id.as_str() != self.message_id {
            return Err(format!(
                "the recorded body is message {}, the metadata names {}",
                message.message_id, self.message_id
            ));
        }
        let signature = match &self.signature {
            None => None,
            Some(recorded) => {
                let (sig, public_key) = recorded
                    .decode()
                    .map_err(|e| format!("the recorded signature does not read: {e}"))?;
                if !transit_auth::verify_detached(&public_key, &message, &sig) {
                    return Err(format!(
                        "the recorded signature by key {} does not verify over the recorded \
                         submission with the recorded public key",
                        sig.key_id
                    ));
                }
                Some((sig, public_key))
            }
        };
        Ok(CheckedSubmission { message, signature })
    }
}

/// The submission as received, being written into the metadata of the first event it
/// produced; the other events of the same append point at that one.
struct Submission<'a> {
    message_id: &'a str,
    content_type: &'a str,
    digest: String,
    raw: &'a [u8],
    signed: Option<&'a RecordedSignature>,
    first_event: Option<EventId>,
}

impl Submission<'_> {
    fn metadata(&mut self, event_id: EventId) -> Vec<u8> {
        // The fields in the order they always had (and `signature` left out when absent), so
        // an unsigned submission is recorded byte for byte as before signatures existed.
        let value = match self.first_event {
            None => {
                self.first_event = Some(event_id);
                let recorded = RecordedSubmission {
                    message_id: self.message_id.to_owned(),
                    content_type: self.content_type.to_owned(),
                    sha256: self.digest.clone(),
                    body: base64::engine::general_purpose::STANDARD.encode(self.raw),
                    signature: self.signed.cloned(),
                };
                serde_json::json!({ "submission": recorded })
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
