//! Events: the facts the ledger records, named in the past tense, each with a stable type name
//! and schema version, and the codec that writes them and reads (upcasting) them back.
//!
//! An encoded event is `{"meta": {...}, "data": {...}}`; the type name and schema version are
//! stored beside the bytes by the store, and handed back to [`MovementEvent::decode`] /
//! [`GuaranteeEvent::decode`]. Old versions are upcast when read, never rewritten: a v2 of a
//! type bumps its entry in the version table and adds one step to the upcaster.

use std::fmt;
use std::marker::PhantomData;

use serde::de::value::{BorrowedStrDeserializer, StrDeserializer};
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{forward_to_deserialize_any, Deserialize, Serialize};

use crate::ids::CountryCode;
use crate::ids::{GuaranteeReference, MessageId, Money, Mrn, OfficeCode, SealId, Timestamp};
use crate::messages::{
    DeclarationChanges, Endorsement, EnquiryOutcome, IncidentCode, MeansOfTransport,
    NoReleaseReason, Party, Place, Sender, TransitDeclaration,
};

/// The stream of one movement: `movement-<MRN>`.
pub fn movement_stream(mrn: &Mrn) -> String {
    format!("movement-{mrn}")
}

/// The stream of one guarantee: `guarantee-<GRN>`.
pub fn guarantee_stream(grn: &GuaranteeReference) -> String {
    format!("guarantee-{grn}")
}

/// The administration and office on whose word an event was recorded.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Actor {
    pub country: CountryCode,
    pub office: OfficeCode,
}

impl From<&Sender> for Actor {
    fn from(s: &Sender) -> Self {
        Actor {
            country: s.country.clone(),
            office: s.office.clone(),
        }
    }
}

/// What every event carries about the message that caused it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventMeta {
    pub message_id: MessageId,
    pub correlation_id: Option<MessageId>,
    pub actor: Actor,
    /// The business time as reported by the sender.
    pub occurred_at: Timestamp,
    /// The ledger's clock when the event was recorded.
    pub recorded_at: Timestamp,
    /// Hex SHA-256 of the message's canonical JSON (see `InboundMessage::content_digest`).
    pub message_digest: String,
    /// Set when the fact was reported out of the expected sequence; the fact is recorded
    /// anyway, and this says why it is unusual.
    pub anomaly: Option<String>,
}

/// Facts about one movement (stream `movement-<MRN>`).
// The declaration variant is large (~0.5 KiB) but values are handled one at a time, never in
// hot arrays; boxing it would make every construction and match noisier for no measured gain.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data", rename_all_fields = "camelCase")]
pub enum MovementEvent {
    TransitDeclared {
        declaration: TransitDeclaration,
    },
    TransitReleased {
        released_at: Timestamp,
        amount_reserved: Money,
        guarantee: GuaranteeReference,
    },
    ReleaseRefused {
        reason: NoReleaseReason,
        remarks: String,
    },
    /// The duty to send the anticipated transit records (to each office of transit) and the
    /// anticipated arrival record (to the office of destination). Recorded in the same append
    /// as the release, it is the ledger's outbox: a dispatcher reads it and fans out.
    AnticipatedRecordsDispatched {
        offices_of_transit: Vec<OfficeCode>,
        office_of_destination: OfficeCode,
    },
    BorderCrossed {
        office: OfficeCode,
        crossed_at: Timestamp,
        /// Whether the office is among the declared offices of transit (false: a possible
        /// diversion, or the declaration was not known yet).
        declared_office: bool,
        seals_intact: bool,
        seals_observed: Vec<SealId>,
    },
    IncidentRecorded {
        code: IncidentCode,
        place: Place,
        occurred_at: Timestamp,
        endorsed_by: Option<Endorsement>,
        new_seals: Vec<SealId>,
        new_transport: Option<MeansOfTransport>,
        description: String,
    },
    DestinationChanged {
        from: OfficeCode,
        to: OfficeCode,
        reason: String,
    },
    ArrivalRecorded {
        office: OfficeCode,
        arrived_at: Timestamp,
        /// Whether the office is the current office of destination.
        declared_destination: bool,
    },
    ControlResultsRecorded {
        office: OfficeCode,
        conform: bool,
        seals_intact: bool,
        seals_found: Vec<SealId>,
        gross_mass_g_found: Option<u64>,
        packages_found: Option<u32>,
        remarks: String,
    },
    TransitDischarged {
        amount_released: Money,
    },
    DeclarationCancelled {
        reason: String,
    },
    DeclarationAmended {
        changes: DeclarationChanges,
    },
    EnquiryOpened {
        reason: String,
    },
    EnquiryAnswered {
        outcome: EnquiryOutcome,
        remarks: String,
    },
    DutiesRecovered {
        amount_recovered: Money,
        reason: String,
    },
}

/// Facts about one guarantee (stream `guarantee-<GRN>`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data", rename_all_fields = "camelCase")]
pub enum GuaranteeEvent {
    GuaranteeRegistered {
        grn: GuaranteeReference,
        guarantor: Party,
        principal: Party,
        reference_amount: Money,
        valid_until: Option<Timestamp>,
    },
    GuaranteeExposureReserved {
        mrn: Mrn,
        amount: Money,
    },
    GuaranteeExposureReleased {
        mrn: Mrn,
        amount: Money,
    },
    GuaranteeConsumedByRecovery {
        mrn: Mrn,
        amount_consumed: Money,
        amount_released: Money,
    },
}

/// Why stored bytes could not be read back as an event.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("unknown event type {0:?}")]
    UnknownEventType(String),
    #[error("event type {event_type} has no schema version {version} (current is {current})")]
    UnknownSchemaVersion {
        event_type: String,
        version: u16,
        current: u16,
    },
    #[error("malformed {event_type} v{version}: {source}")]
    Malformed {
        event_type: String,
        version: u16,
        #[source]
        source: serde_json::Error,
    },
}

/// The stored form of an event.
#[derive(Serialize)]
struct EnvelopeOut<'a, T: Serialize> {
    meta: &'a EventMeta,
    data: &'a T,
}

#[derive(Deserialize)]
struct EnvelopeIn {
    meta: EventMeta,
    data: serde_json::Value,
}

/// Reads a whole envelope of the current version with [`EnvelopeSeed`], then requires the end
/// of the input.
fn read_envelope<'de, R, T>(
    mut de: serde_json::Deserializer<R>,
    event_type: &str,
) -> Result<(EventMeta, T), serde_json::Error>
where
    R: serde_json::de::Read<'de>,
    T: Deserialize<'de>,
{
    let value = EnvelopeSeed::<T>::new(event_type).deserialize(&mut de)?;
    de.end()?;
    Ok(value)
}

/// The fields of a stored envelope, as the derived `Deserialize` of a `{meta, data}` struct
/// names them: any other key is skipped.
#[derive(Deserialize)]
#[serde(field_identifier, rename_all = "lowercase")]
enum EnvelopeField {
    Meta,
    Data,
    #[serde(other)]
    Other,
}

/// The field names of the envelope, for errors.
const ENVELOPE_FIELDS: &[&str] = &["meta", "data"];

/// Reads a whole envelope `{"meta": .., "data": ..}` of an event of a known type in one pass.
///
/// It accepts exactly what a derived `Deserialize` of `struct { meta: EventMeta, data: T }`
/// accepts (a map in any key order with unknown keys skipped, or a two-element sequence;
/// duplicate and missing fields refused), with `data` read as the variant `event_type` of the
/// adjacently tagged enum `T`.
struct EnvelopeSeed<'t, T> {
    event_type: &'t str,
    event: PhantomData<fn() -> T>,
}

impl<'t, T> EnvelopeSeed<'t, T> {
    fn new(event_type: &'t str) -> Self {
        EnvelopeSeed {
            event_type,
            event: PhantomData,
        }
    }
}

impl<'de, T: Deserialize<'de>> DeserializeSeed<'de> for EnvelopeSeed<'_, T> {
    type Value = (EventMeta, T);

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_struct("Envelope", ENVELOPE_FIELDS, self)
    }
}

impl<'de, T: Deserialize<'de>> Visitor<'de> for EnvelopeSeed<'_, T> {
    type Value = (EventMeta, T);

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("struct Envelope")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let meta: EventMeta = seq
            .next_element()?
            .ok_or_else(|| de::Error::invalid_length(0, &"struct Envelope with 2 elements"))?;
        let event = seq
            .next_element_seed(TaggedSeed::<T>::new(self.event_type))?
            .ok_or_else(|| de::Error::invalid_length(1, &"struct Envelope with 2 elements"))?;
        Ok((meta, event))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut meta: Option<EventMeta> = None;
        let mut event: Option<T> = None;
        while let Some(field) = map.next_key::<EnvelopeField>()? {
            match field {
                EnvelopeField::Meta => {
                    if meta.is_some() {
                        return Err(de::Error::duplicate_field("meta"));
                    }
                    meta = Some(map.next_value()?);
                }
                EnvelopeField::Data => {
                    if event.is_some() {
                        return Err(de::Error::duplicate_field("data"));
                    }
                    event = Some(map.next_value_seed(TaggedSeed::<T>::new(self.event_type))?);
                }
                EnvelopeField::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        let meta = meta.ok_or_else(|| de::Error::missing_field("meta"))?;
        let event = event.ok_or_else(|| de::Error::missing_field("data"))?;
        Ok((meta, event))
    }
}

/// Reads the data of an event whose type is known, straight from the stored bytes: the
/// enum's derived `Deserialize` is shown the adjacently tagged map `{"type": <event_type>,
/// "data": <the data>}`, the tag coming from the store and the data from the deserialiser
/// positioned on it, so nothing is copied or parsed twice.
struct TaggedSeed<'t, T> {
    event_type: &'t str,
    event: PhantomData<fn() -> T>,
}

impl<'t, T> TaggedSeed<'t, T> {
    fn new(event_type: &'t str) -> Self {
        TaggedSeed {
            event_type,
            event: PhantomData,
        }
    }
}

impl<'de, T: Deserialize<'de>> DeserializeSeed<'de> for TaggedSeed<'_, T> {
    type Value = T;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<T, D::Error> {
        T::deserialize(TaggedDeserializer {
            event_type: self.event_type,
            data: deserializer,
        })
    }
}

/// A deserialiser that presents `{"type": event_type, "data": <data>}` as a map.
struct TaggedDeserializer<'t, D> {
    event_type: &'t str,
    data: D,
}

impl<'de, D: Deserializer<'de>> Deserializer<'de> for TaggedDeserializer<'_, D> {
    type Error = D::Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
        visitor.visit_map(TaggedMap {
            event_type: self.event_type,
            data: Some(self.data),
            next: TaggedEntry::TypeKey,
        })
    }

    forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map struct enum
        identifier ignored_any
    }
}

/// Where [`TaggedMap`] is in its two entries.
#[derive(Clone, Copy)]
enum TaggedEntry {
    TypeKey,
    TypeValue,
    DataKey,
    DataValue,
    End,
}

/// The two entries of the adjacently tagged form, tag first.
struct TaggedMap<'t, D> {
    event_type: &'t str,
    data: Option<D>,
    next: TaggedEntry,
}

impl<'de, D: Deserializer<'de>> MapAccess<'de> for TaggedMap<'_, D> {
    type Error = D::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, D::Error> {
        let key = match self.next {
            TaggedEntry::TypeKey => {
                self.next = TaggedEntry::TypeValue;
                "type"
            }
            TaggedEntry::DataKey => {
                self.next = TaggedEntry::DataValue;
                "data"
            }
            TaggedEntry::TypeValue | TaggedEntry::DataValue | TaggedEntry::End => return Ok(None),
        };
        seed.deserialize(BorrowedStrDeserializer::new(key))
            .map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, D::Error> {
        match self.next {
            TaggedEntry::TypeValue => {
                self.next = TaggedEntry::DataKey;
                seed.deserialize(StrDeserializer::new(self.event_type))
            }
            TaggedEntry::DataValue => {
                self.next = TaggedEntry::End;
                match self.data.take() {
                    Some(data) => seed.deserialize(data),
                    None => Err(de::Error::custom("event data read twice")),
                }
            }
            TaggedEntry::TypeKey | TaggedEntry::DataKey | TaggedEntry::End => {
                Err(de::Error::custom("map value requested before its key"))
            }
        }
    }

    fn size_hint(&self) -> Option<usize> {
        Some(match self.next {
            TaggedEntry::TypeKey | TaggedEntry::TypeValue => 2,
            TaggedEntry::DataKey | TaggedEntry::DataValue => 1,
            TaggedEntry::End => 0,
        })
    }
}

/// The adjacently tagged form that the event enums deserialise from.
#[derive(Serialize)]
struct Tagged<'a> {
    #[serde(rename = "type")]
    event_type: &'a str,
    data: serde_json::Value,
}

/// One step of an upcaster: turns the data of `version` into the data of `version + 1`.
type UpcastStep = fn(serde_json::Value) -> serde_json::Value;

/// Shared codec behaviour for an event enum whose serde form is `{"type":..,"data":..}`.
trait Codec: Serialize + for<'de> Deserialize<'de> {
    /// (type name, current schema version) for every type of the enum.
    const VERSIONS: &'static [(&'static str, u16)];

    /// The step from `version` to `version + 1` of `event_type`, if one exists. Only v1 exists
    /// today, so there are none; a v2 adds a match arm here.
    fn upcast_step(event_type: &str, version: u16) -> Option<UpcastStep>;

    fn current_version(event_type: &str) -> Option<u16> {
        Self::VERSIONS
            .iter()
            .find(|(t, _)| *t == event_type)
            .map(|(_, v)| *v)
    }

    fn encode_with(&self, meta: &EventMeta) -> Vec<u8> {
        // The enum serialises as {"type": .., "data": ..}; the store keeps the type apart,
        // so only the data goes into the bytes.
        let tagged =
            serde_json::to_value(self).expect("invariant: events always serialise to JSON");
        let data = tagged
            .get("data")
            .cloned()
            .unwrap_or(serde_json::Value::Object(serde_json::Map::new()));
        serde_json::to_vec(&EnvelopeOut { meta, data: &data })
            .expect("invariant: an event envelope always serialises to JSON")
    }

    fn decode_with(
        event_type: &str,
        schema_version: u16,
        bytes: &[u8],
    ) -> Result<(EventMeta, Self), DecodeError> {
        let current = Self::current_version(event_type)
            .ok_or_else(|| DecodeError::UnknownEventType(event_type.to_owned()))?;
        if schema_version == 0 || schema_version > current {
            return Err(DecodeError::UnknownSchemaVersion {
                event_type: event_type.to_owned(),
                version: schema_version,
                current,
            });
        }
        let malformed = |source| DecodeError::Malformed {
            event_type: event_type.to_owned(),
            version: schema_version,
            source,
        };
        if schema_version == current {
            // The common case, in one pass: the envelope is read with a seed that hands the
            // data straight to the enum's deserialiser, presented as the adjacently tagged
            // form with the known type (see `TaggedSeed`); no `Value` tree, no second parse.
            // Bytes that are UTF-8 as a whole (all of them, in practice) are read as text: one
            // check over the record instead of one per string. Others are read as bytes,
            // exactly as before (a refusal, unless the bad bytes are in a skipped key).
            let read = match std::str::from_utf8(bytes) {
                Ok(text) => read_envelope(serde_json::Deserializer::from_str(text), event_type),
                Err(_) => read_envelope(serde_json::Deserializer::from_slice(bytes), event_type),
            };
            return read.map_err(malformed);
        }
        let envelope: EnvelopeIn = serde_json::from_slice(bytes).map_err(malformed)?;
        let mut data = envelope.data;
        let mut version = schema_version;
        while version < current {
            let step = Self::upcast_step(event_type, version).ok_or_else(|| {
                DecodeError::UnknownSchemaVersion {
                    event_type: event_type.to_owned(),
                    version,
                    current,
                }
            })?;
            data = step(data);
            version += 1;
        }
        let tagged = serde_json::to_value(Tagged { event_type, data }).map_err(malformed)?;
        let event = serde_json::from_value(tagged).map_err(malformed)?;
        Ok((envelope.meta, event))
    }
}

impl Codec for MovementEvent {
    const VERSIONS: &'static [(&'static str, u16)] = &[
        ("TransitDeclared", 1),
        ("TransitReleased", 1),
        ("ReleaseRefused", 1),
        ("AnticipatedRecordsDispatched", 1),
        ("BorderCrossed", 1),
        ("IncidentRecorded", 1),
        ("DestinationChanged", 1),
        ("ArrivalRecorded", 1),
        ("ControlResultsRecorded", 1),
        ("TransitDischarged", 1),
        ("DeclarationCancelled", 1),
        ("DeclarationAmended", 1),
        ("EnquiryOpened", 1),
        ("EnquiryAnswered", 1),
        ("DutiesRecovered", 1),
    ];

    fn upcast_step(_event_type: &str, _version: u16) -> Option<UpcastStep> {
        None
    }
}

impl Codec for GuaranteeEvent {
    const VERSIONS: &'static [(&'static str, u16)] = &[
        ("GuaranteeRegistered", 1),
        ("GuaranteeExposureReserved", 1),
        ("GuaranteeExposureReleased", 1),
        ("GuaranteeConsumedByRecovery", 1),
    ];

    fn upcast_step(_event_type: &str, _version: u16) -> Option<UpcastStep> {
        None
    }
}

impl MovementEvent {
    /// The schema version every movement event type is written with today.
    pub const SCHEMA_VERSION: u16 = 1;

    /// Every movement event type name.
    pub fn event_types() -> impl Iterator<Item = &'static str> {
        <Self as Codec>::VERSIONS.iter().map(|(t, _)| *t)
    }

    /// The stable type name, e.g. "TransitDeclared".
    pub fn event_type(&self) -> &'static str {
        match self {
            Self::TransitDeclared { .. } => "TransitDeclared",
            Self::TransitReleased { .. } => "TransitReleased",
            Self::ReleaseRefused { .. } => "ReleaseRefused",
            Self::AnticipatedRecordsDispatched { .. } => "AnticipatedRecordsDispatched",
            Self::BorderCrossed { .. } => "BorderCrossed",
            Self::IncidentRecorded { .. } => "IncidentRecorded",
            Self::DestinationChanged { .. } => "DestinationChanged",
            Self::ArrivalRecorded { .. } => "ArrivalRecorded",
            Self::ControlResultsRecorded { .. } => "ControlResultsRecorded",
            Self::TransitDischarged { .. } => "TransitDischarged",
            Self::DeclarationCancelled { .. } => "DeclarationCancelled",
            Self::DeclarationAmended { .. } => "DeclarationAmended",
            Self::EnquiryOpened { .. } => "EnquiryOpened",
            Self::EnquiryAnswered { .. } => "EnquiryAnswered",
            Self::DutiesRecovered { .. } => "DutiesRecovered",
        }
    }

    /// The schema version this value is written with.
    pub fn schema_version(&self) -> u16 {
        <Self as Codec>::current_version(self.event_type()).unwrap_or(Self::SCHEMA_VERSION)
    }

    /// `{"meta": .., "data": ..}` as JSON bytes.
    pub fn encode(&self, meta: &EventMeta) -> Vec<u8> {
        self.encode_with(meta)
    }

    /// Reads stored bytes back, upcasting older schema versions.
    pub fn decode(
        event_type: &str,
        schema_version: u16,
        bytes: &[u8],
    ) -> Result<(EventMeta, Self), DecodeError> {
        Self::decode_with(event_type, schema_version, bytes)
    }
}

impl GuaranteeEvent {
    /// The schema version every guarantee event type is written with today.
    pub const SCHEMA_VERSION: u16 = 1;

    /// Every guarantee event type name.
    pub fn event_types() -> impl Iterator<Item = &'static str> {
        <Self as Codec>::VERSIONS.iter().map(|(t, _)| *t)
    }

    /// The stable type name, e.g. "GuaranteeExposureReserved".
    pub fn event_type(&self) -> &'static str {
        match self {
            Self::GuaranteeRegistered { .. } => "GuaranteeRegistered",
            Self::GuaranteeExposureReserved { .. } => "GuaranteeExposureReserved",
            Self::GuaranteeExposureReleased { .. } => "GuaranteeExposureReleased",
            Self::GuaranteeConsumedByRecovery { .. } => "GuaranteeConsumedByRecovery",
        }
    }

    /// The schema version this value is written with.
    pub fn schema_version(&self) -> u16 {
        <Self as Codec>::current_version(self.event_type()).unwrap_or(Self::SCHEMA_VERSION)
    }

    /// `{"meta": .., "data": ..}` as JSON bytes.
    pub fn encode(&self, meta: &EventMeta) -> Vec<u8> {
        self.encode_with(meta)
    }

    /// Reads stored bytes back, upcasting older schema versions.
    pub fn decode(
        event_type: &str,
        schema_version: u16,
        bytes: &[u8],
    ) -> Result<(EventMeta, Self), DecodeError> {
        Self::decode_with(event_type, schema_version, bytes)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::ids::Currency;

    fn meta() -> EventMeta {
        EventMeta {
            message_id: "m-1".parse().unwrap(),
            correlation_id: None,
            actor: Actor {
                country: "TG".parse().unwrap(),
                office: "TG000101".parse().unwrap(),
            },
            occurred_at: Timestamp::from_unix_millis(1_700_000_000_000).unwrap(),
            recorded_at: Timestamp::from_unix_millis(1_700_000_001_000).unwrap(),
            message_digest: "00".repeat(32),
            anomaly: Some("reported while movement was Declared (out of sequence)".to_owned()),
        }
    }

    fn mrn() -> Mrn {
        "24TG00000000000006".parse().unwrap()
    }

    #[test]
    fn streams_are_named_by_id() {
        assert_eq!(movement_stream(&mrn()), "movement-24TG00000000000006");
        let grn: GuaranteeReference = "24TGGAR1".parse().unwrap();
        assert_eq!(guarantee_stream(&grn), "guarantee-24TGGAR1");
    }

    #[test]
    fn encode_shape_and_round_trip() {
        let e = MovementEvent::BorderCrossed {
            office: "TGCIN001".parse().unwrap(),
            crossed_at: Timestamp::from_unix_millis(1_700_000_000_000).unwrap(),
            declared_office: true,
            seals_intact: true,
            seals_observed: vec!["S1".parse().unwrap()],
        };
        let bytes = e.encode(&meta());
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(v["data"]["declaredOffice"], true);
        assert_eq!(v["meta"]["messageId"], "m-1");
        assert!(v.get("type").is_none());
        let (m, back) = MovementEvent::decode(e.event_type(), e.schema_version(), &bytes).unwrap();
        assert_eq!(m, meta());
        assert_eq!(back, e);
    }

    #[test]
    fn guarantee_events_round_trip() {
        let xof = Currency::xof();
        let events = [
            GuaranteeEvent::GuaranteeExposureReserved {
                mrn: mrn(),
                amount: Money::new(10, xof.clone()).unwrap(),
            },
            GuaranteeEvent::GuaranteeConsumedByRecovery {
                mrn: mrn(),
                amount_consumed: Money::new(4, xof.clone()).unwrap(),
                amount_released: Money::new(6, xof).unwrap(),
            },
        ];
        for e in events {
            let bytes = e.encode(&meta());
            let (_, back) = GuaranteeEvent::decode(e.event_type(), 1, &bytes).unwrap();
            assert_eq!(back, e);
        }
        assert_eq!(GuaranteeEvent::event_types().count(), 4);
        assert_eq!(MovementEvent::event_types().count(), 15);
    }

    /// The decoder this crate used before the one-pass envelope read: the envelope with the
    /// data kept raw, then the adjacently tagged form built as text and parsed again. The
    /// one-pass decoder must agree with it on every input (accepted or not, and the value).
    fn decode_two_pass<T: for<'de> Deserialize<'de>>(
        event_type: &str,
        bytes: &[u8],
    ) -> Result<(EventMeta, T), serde_json::Error> {
        #[derive(Deserialize)]
        struct EnvelopeRaw<'a> {
            meta: EventMeta,
            #[serde(borrow)]
            data: &'a serde_json::value::RawValue,
        }
        let envelope: EnvelopeRaw<'_> = serde_json::from_slice(bytes)?;
        let tagged = format!(
            "{{\"type\":{},\"data\":{}}}",
            serde_json::to_string(event_type)?,
            envelope.data.get()
        );
        Ok((envelope.meta, serde_json::from_str(&tagged)?))
    }

    fn office(s: &str) -> OfficeCode {
        s.parse().unwrap()
    }

    fn at(millis: i64) -> Timestamp {
        Timestamp::from_unix_millis(1_700_000_000_000 + millis).unwrap()
    }

    /// One event of every movement type, with optional fields both set and unset.
    fn every_movement_event() -> Vec<MovementEvent> {
        use crate::messages::{DeclarationChanges, TransportMode};
        let journey = crate::fixtures::journey(at(0), 7);
        let declaration = journey.declaration_body().clone();
        let xof = crate::ids::Currency::xof();
        let transport = MeansOfTransport {
            mode: TransportMode::Road,
            identity: "TG 1234 AB".parse().unwrap(),
            nationality: "TG".parse().unwrap(),
        };
        vec![
            MovementEvent::TransitDeclared {
                declaration: declaration.clone(),
            },
            MovementEvent::TransitReleased {
                released_at: at(1),
                amount_reserved: Money::new(12_500_000, xof.clone()).unwrap(),
                guarantee: "24TGGAR00000001".parse().unwrap(),
            },
            MovementEvent::ReleaseRefused {
                reason: NoReleaseReason::GuaranteeNotValid,
                remarks: "expired \"guarantee\" \u{e9}\n".to_owned(),
            },
            MovementEvent::AnticipatedRecordsDispatched {
                offices_of_transit: vec![office("TGCIN001"), office("BFCIN001")],
                office_of_destination: office("BFOUA001"),
            },
            MovementEvent::BorderCrossed {
                office: office("TGCIN001"),
                crossed_at: at(2),
                declared_office: false,
                seals_intact: false,
                seals_observed: vec!["S1".parse().unwrap(), "TG-2024/0001".parse().unwrap()],
            },
            MovementEvent::IncidentRecorded {
                code: IncidentCode::Transhipment,
                place: Place {
                    locode: Some("BFOUA".parse().unwrap()),
                    latitude_e7: Some(123_456_789),
                    longitude_e7: Some(-1_234_567),
                },
                occurred_at: at(3),
                endorsed_by: Some(Endorsement {
                    authority: "Gendarmerie".to_owned(),
                    country: "BF".parse().unwrap(),
                }),
                new_seals: vec!["NEW1".parse().unwrap()],
                new_transport: Some(transport.clone()),
                description: "moved to another lorry".to_owned(),
            },
            MovementEvent::IncidentRecorded {
                code: IncidentCode::Other,
                place: Place {
                    locode: None,
                    latitude_e7: None,
                    longitude_e7: None,
                },
                occurred_at: at(4),
                endorsed_by: None,
                new_seals: Vec::new(),
                new_transport: None,
                description: String::new(),
            },
            MovementEvent::DestinationChanged {
                from: office("BFOUA001"),
                to: office("BFBOB001"),
                reason: "buyer moved".to_owned(),
            },
            MovementEvent::ArrivalRecorded {
                office: office("BFOUA001"),
                arrived_at: at(5),
                declared_destination: true,
            },
            MovementEvent::ControlResultsRecorded {
                office: office("BFOUA001"),
                conform: false,
                seals_intact: true,
                seals_found: vec!["S1".parse().unwrap()],
                gross_mass_g_found: Some(0),
                packages_found: None,
                remarks: "short".to_owned(),
            },
            MovementEvent::TransitDischarged {
                amount_released: Money::new(12_500_000, xof.clone()).unwrap(),
            },
            MovementEvent::DeclarationCancelled {
                reason: "duplicate".to_owned(),
            },
            MovementEvent::DeclarationAmended {
                changes: DeclarationChanges {
                    offices_of_transit: Some(declaration.offices_of_transit.clone()),
                    office_of_destination: Some(office("BFBOB001")),
                    time_limit: Some(at(6)),
                    transport: Some(transport),
                    equipment: Some(declaration.equipment.clone()),
                    goods: Some(declaration.goods.clone()),
                    amount_at_stake: Some(Money::new(1, xof.clone()).unwrap()),
                },
            },
            MovementEvent::DeclarationAmended {
                changes: DeclarationChanges::default(),
            },
            MovementEvent::EnquiryOpened {
                reason: "overdue".to_owned(),
            },
            MovementEvent::EnquiryAnswered {
                outcome: EnquiryOutcome::GoodsArrived {
                    arrived_at: at(7),
                    office: office("BFOUA001"),
                },
                remarks: "proof found".to_owned(),
            },
            MovementEvent::EnquiryAnswered {
                outcome: EnquiryOutcome::GoodsNotArrived,
                remarks: String::new(),
            },
            MovementEvent::DutiesRecovered {
                amount_recovered: Money::new(12_500_000, xof).unwrap(),
                reason: "not arrived".to_owned(),
            },
        ]
    }

    /// One event of every guarantee type.
    fn every_guarantee_event() -> Vec<GuaranteeEvent> {
        use crate::messages::Party;
        let xof = crate::ids::Currency::xof();
        let party = |id: &str| Party {
            id: id.parse().unwrap(),
            name: format!("party {id}"),
        };
        vec![
            GuaranteeEvent::GuaranteeRegistered {
                grn: "24TGGAR00000001".parse().unwrap(),
                guarantor: party("TG-BANK1"),
                principal: party("TG-1000123A"),
                reference_amount: Money::new(50_000_000, xof.clone()).unwrap(),
                valid_until: Some(at(8)),
            },
            GuaranteeEvent::GuaranteeRegistered {
                grn: "24BFG1".parse().unwrap(),
                guarantor: party("BF-BANK1"),
                principal: party("BF-1"),
                reference_amount: Money::new(1250, "EUR".parse().unwrap()).unwrap(),
                valid_until: None,
            },
            GuaranteeEvent::GuaranteeExposureReserved {
                mrn: mrn(),
                amount: Money::new(10, xof.clone()).unwrap(),
            },
            GuaranteeEvent::GuaranteeExposureReleased {
                mrn: mrn(),
                amount: Money::new(10, xof.clone()).unwrap(),
            },
            GuaranteeEvent::GuaranteeConsumedByRecovery {
                mrn: mrn(),
                amount_consumed: Money::new(4, xof.clone()).unwrap(),
                amount_released: Money::new(6, xof).unwrap(),
            },
        ]
    }

    #[test]
    fn every_event_type_decodes_in_one_pass_as_through_the_tagged_form() {
        let movements = every_movement_event();
        let types: std::collections::BTreeSet<_> =
            movements.iter().map(MovementEvent::event_type).collect();
        assert_eq!(types.len(), MovementEvent::event_types().count());
        for e in movements {
            let bytes = e.encode(&meta());
            let (m, back) = MovementEvent::decode(e.event_type(), 1, &bytes).unwrap();
            assert_eq!((&m, &back), (&meta(), &e));
            let (m2, back2) = decode_two_pass::<MovementEvent>(e.event_type(), &bytes).unwrap();
            assert_eq!((m, back), (m2, back2));
        }
        let guarantees = every_guarantee_event();
        let types: std::collections::BTreeSet<_> =
            guarantees.iter().map(GuaranteeEvent::event_type).collect();
        assert_eq!(types.len(), GuaranteeEvent::event_types().count());
        for e in guarantees {
            let bytes = e.encode(&meta());
            let (m, back) = GuaranteeEvent::decode(e.event_type(), 1, &bytes).unwrap();
            assert_eq!((&m, &back), (&meta(), &e));
            let (m2, back2) = decode_two_pass::<GuaranteeEvent>(e.event_type(), &bytes).unwrap();
            assert_eq!((m, back), (m2, back2));
        }
    }

    /// Variations of the stored bytes of `e` (reshaped envelopes, bad data, bad ids): the
    /// one-pass decoder must accept exactly those the two-pass one accepts, with equal values.
    fn agrees_with_two_pass_on_variants(e: &MovementEvent) -> usize {
        let bytes = e.encode(&meta());
        let text = String::from_utf8(bytes.clone()).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        let meta_json = v["meta"].to_string();
        let data_json = v["data"].to_string();
        let mut variants: Vec<String> = vec![
            text.clone(),
            format!(" \n{text}\t "),
            format!("{{\"data\":{data_json},\"meta\":{meta_json}}}"),
            format!(
                "{{\"x\":[1,{{\"y\":null}}],\"meta\":{meta_json},\"z\":1,\"data\":{data_json}}}"
            ),
            format!("[{meta_json},{data_json}]"),
            format!("[{meta_json}]"),
            format!("[{meta_json},{data_json},1]"),
            "[]".to_owned(),
            format!("{{\"meta\":{meta_json}}}"),
            format!("{{\"data\":{data_json}}}"),
            format!("{{\"meta\":{meta_json},\"meta\":{meta_json},\"data\":{data_json}}}"),
            format!("{{\"meta\":{meta_json},\"data\":{data_json},\"data\":{data_json}}}"),
            format!("{{\"meta\":{meta_json},\"data\":null}}"),
            format!("{{\"meta\":{meta_json},\"data\":[]}}"),
            format!("{{\"meta\":{meta_json},\"data\":{{}}}}"),
            format!("{{\"meta\":{meta_json},\"data\":\"x\"}}"),
            format!("{text}x"),
            format!("{text}{{}}"),
            text[..text.len() - 1].to_owned(),
            "{}".to_owned(),
            "null".to_owned(),
            "".to_owned(),
        ];
        // Unknown fields in the data, and each data field in turn removed or replaced by an
        // invalid id, a wrong type, or null.
        if let serde_json::Value::Object(fields) = &v["data"] {
            let mut extra = fields.clone();
            extra.insert("unknownField".to_owned(), serde_json::json!({"a": [1, 2]}));
            variants.push(format!(
                "{{\"meta\":{meta_json},\"data\":{}}}",
                serde_json::Value::Object(extra)
            ));
            for key in fields.keys() {
                for replacement in [
                    None,
                    Some(serde_json::json!("ZZ000101")),
                    Some(serde_json::json!("24TG00000000000005")),
                    Some(serde_json::json!(12)),
                    Some(serde_json::Value::Null),
                    Some(serde_json::json!({"amountMinor": -1, "currency": "XOF"})),
                ] {
                    let mut changed = fields.clone();
                    match replacement {
                        None => {
                            changed.remove(key);
                        }
                        Some(r) => {
                            changed.insert(key.clone(), r);
                        }
                    }
                    variants.push(format!(
                        "{{\"meta\":{meta_json},\"data\":{}}}",
                        serde_json::Value::Object(changed)
                    ));
                }
            }
        }
        // Bytes that are not UTF-8: in a string field, and in a skipped key's string.
        variants.push(text.replacen("\"m-1\"", "\"m-\u{fffd}\"", 1));
        // A refused id in the meta.
        variants.push(text.replacen("\"m-1\"", "\"m 1\"", 1));
        variants.push(text.replacen("\"TG000101\"", "\"TG00010\"", 1));
        let mut inputs: Vec<Vec<u8>> = variants.into_iter().map(String::into_bytes).collect();
        let mut not_utf8 = b"{\"skipped\":\"\xff\xfe\",".to_vec();
        not_utf8.extend_from_slice(&bytes[1..]);
        inputs.push(not_utf8);
        let mut not_utf8 = bytes.clone();
        let at = text.find("m-1").unwrap();
        not_utf8[at + 1] = 0xff;
        inputs.push(not_utf8);
        let mut accepted = 0;
        for input in &inputs {
            let variant = String::from_utf8_lossy(input);
            let one = MovementEvent::decode(e.event_type(), 1, input);
            let two = decode_two_pass::<MovementEvent>(e.event_type(), input);
            match (one, two) {
                (Ok(a), Ok(b)) => {
                    assert_eq!(a, b, "{variant}");
                    accepted += 1;
                }
                (Err(DecodeError::Malformed { .. }), Err(_)) => {}
                (one, two) => panic!("disagree on {variant}: {one:?} vs {two:?}"),
            }
        }
        accepted
    }

    #[test]
    fn one_pass_decoder_accepts_and_refuses_exactly_what_the_two_pass_one_did() {
        let mut accepted = 0;
        for e in every_movement_event() {
            accepted += agrees_with_two_pass_on_variants(&e);
        }
        // The reshaped-but-valid envelopes (and tolerated data variations) really were read.
        assert!(accepted > 5 * every_movement_event().len(), "{accepted}");
    }

    #[test]
    fn a_refused_id_in_the_data_is_reported_with_its_field() {
        let e = MovementEvent::ArrivalRecorded {
            office: office("BFOUA001"),
            arrived_at: at(5),
            declared_destination: true,
        };
        let text = String::from_utf8(e.encode(&meta())).unwrap();
        let bad = text.replacen("BFOUA001", "ZZOUA001", 1);
        let err = MovementEvent::decode(e.event_type(), 1, bad.as_bytes()).unwrap_err();
        let message = err.to_string();
        assert!(
            message.contains("invalid office code")
                && message.contains("\"ZZ\" is not an assigned ISO 3166-1 alpha-2 code"),
            "{message}"
        );
    }

    /// A pretend event family with a v2, to show (and test) how an upcaster plugs in.
    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    #[serde(tag = "type", content = "data", rename_all_fields = "camelCase")]
    enum Demo {
        Weighed { gross_mass_g: u64 },
    }

    impl Codec for Demo {
        const VERSIONS: &'static [(&'static str, u16)] = &[("Weighed", 2)];

        fn upcast_step(event_type: &str, version: u16) -> Option<UpcastStep> {
            match (event_type, version) {
                // v1 carried kilograms as "grossMassKg"; v2 carries grams.
                ("Weighed", 1) => Some(|mut data| {
                    let kg = data["grossMassKg"].as_u64().unwrap_or(0);
                    data["grossMassG"] = serde_json::json!(kg * 1000);
                    data
                }),
                _ => None,
            }
        }
    }

    #[test]
    fn old_versions_are_upcast_on_read() {
        let v1 = serde_json::to_vec(&serde_json::json!({
            "meta": meta(),
            "data": {"grossMassKg": 27_000}
        }))
        .unwrap();
        let (_, e) = Demo::decode_with("Weighed", 1, &v1).unwrap();
        assert_eq!(
            e,
            Demo::Weighed {
                gross_mass_g: 27_000_000
            }
        );
        let v2 = Demo::Weighed { gross_mass_g: 5 }.encode_with(&meta());
        let (_, e) = Demo::decode_with("Weighed", 2, &v2).unwrap();
        assert_eq!(e, Demo::Weighed { gross_mass_g: 5 });
        assert!(matches!(
            Demo::decode_with("Weighed", 3, &v2),
            Err(DecodeError::UnknownSchemaVersion { .. })
        ));
    }

    #[test]
    fn unit_like_data_and_errors_are_typed() {
        let e = MovementEvent::EnquiryOpened {
            reason: "overdue".to_owned(),
        };
        let bytes = e.encode(&meta());
        assert!(matches!(
            MovementEvent::decode("NoSuchEvent", 1, &bytes),
            Err(DecodeError::UnknownEventType(_))
        ));
        assert!(matches!(
            MovementEvent::decode("EnquiryOpened", 2, &bytes),
            Err(DecodeError::UnknownSchemaVersion {
                version: 2,
                current: 1,
                ..
            })
        ));
        assert!(matches!(
            MovementEvent::decode("EnquiryOpened", 0, &bytes),
            Err(DecodeError::UnknownSchemaVersion { .. })
        ));
        // Bytes of one type read as another type fail cleanly, never panic.
        assert!(matches!(
            MovementEvent::decode("TransitReleased", 1, &bytes),
            Err(DecodeError::Malformed { .. })
        ));
        assert!(matches!(
            MovementEvent::decode("EnquiryOpened", 1, b"not json"),
            Err(DecodeError::Malformed { .. })
        ));
        // A guarantee type is not a movement type.
        assert!(matches!(
            MovementEvent::decode("GuaranteeRegistered", 1, &bytes),
            Err(DecodeError::UnknownEventType(_))
        ));
    }
}
