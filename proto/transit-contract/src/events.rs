//! Events: the facts the ledger records, named in the past tense, each with a stable type name
//! and schema version, and the codec that writes them and reads (upcasting) them back.
//!
//! An encoded event is `{"meta": {...}, "data": {...}}`; the type name and schema version are
//! stored beside the bytes by the store, and handed back to [`MovementEvent::decode`] /
//! [`GuaranteeEvent::decode`]. Old versions are upcast when read, never rewritten: a v2 of a
//! type bumps its entry in the version table and adds one step to the upcaster.

use serde::{Deserialize, Serialize};

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

/// An envelope whose data is left as raw JSON (for events already at the current version).
#[derive(Deserialize)]
struct EnvelopeRaw<'a> {
    meta: EventMeta,
    #[serde(borrow)]
    data: &'a serde_json::value::RawValue,
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
            // The common case, without building a `Value` tree: the data's raw JSON is
            // spliced into the adjacently tagged form the enum reads.
            let envelope: EnvelopeRaw<'_> = serde_json::from_slice(bytes).map_err(malformed)?;
            let tag = serde_json::to_string(event_type).map_err(malformed)?;
            let raw = envelope.data.get();
            let mut tagged = String::with_capacity(raw.len() + tag.len() + 20);
            tagged.push_str("{\"type\":");
            tagged.push_str(&tag);
            tagged.push_str(",\"data\":");
            tagged.push_str(raw);
            tagged.push('}');
            let event = serde_json::from_str(&tagged).map_err(malformed)?;
            return Ok((envelope.meta, event));
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
