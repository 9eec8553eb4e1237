//! Outbound messages (ledger -> national systems): the anticipated records of the fan-out,
//! the notifications back to the office of departure, and the answers to every inbound message
//! (acknowledgement or functional error).

use std::fmt;
use std::str::FromStr;

use transit_contract::messages::TransitDeclaration;
use transit_contract::{GuaranteeReference, MessageId, Money, Mrn, OfficeCode, SealId, Timestamp};

use crate::error::XmlError;
use crate::inbound::{
    read_declaration, read_header, read_seals, write_declaration, write_header, write_seals, Header,
};
use crate::parse::{parse, Node};
use crate::read::{self, Children};
use crate::write::XmlWriter;

/// The root element names of the outbound messages.
pub const OUTBOUND_ROOTS: [&str; 7] = [
    "AnticipatedTransitRecord",
    "AnticipatedArrivalRecord",
    "CrossingNotification",
    "ArrivalAdvice",
    "WriteOffNotification",
    "Acknowledgement",
    "FunctionalError",
];

/// The longest `ErrorReason` the schema allows (characters).
pub const ERROR_REASON_LEN_MAX: usize = 512;
/// The longest `ErrorPointer` (element path) the schema allows (characters).
pub const ERROR_POINTER_LEN_MAX: usize = 1024;

/// The release of a movement, sent to each declared office of transit (NCTS IE050).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnticipatedTransitRecord {
    pub header: Header,
    /// The addressee: one declared office of transit.
    pub office_of_transit: OfficeCode,
    pub released_at: Timestamp,
    /// The declaration as released (its MRN identifies the movement).
    pub declaration: TransitDeclaration,
}

/// The release of a movement, sent to the office of destination (NCTS IE001).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnticipatedArrivalRecord {
    pub header: Header,
    /// The addressee: the (current) office of destination.
    pub office_of_destination: OfficeCode,
    pub released_at: Timestamp,
    pub declaration: TransitDeclaration,
}

/// A border passage, reported back to the office of departure (NCTS IE118 forwarded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrossingNotification {
    pub header: Header,
    pub mrn: Mrn,
    pub office_of_transit: OfficeCode,
    pub crossed_at: Timestamp,
    /// False when the office was not declared (a possible diversion).
    pub declared_office: bool,
    pub seals_intact: bool,
    pub seals_observed: Vec<SealId>,
}

/// An arrival, reported back to the office of departure (NCTS IE006).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArrivalAdvice {
    pub header: Header,
    pub mrn: Mrn,
    /// The actual office of destination.
    pub office_of_destination: OfficeCode,
    pub arrived_at: Timestamp,
    /// False when the goods arrived somewhere else than the current office of destination.
    pub declared_destination: bool,
}

/// The write-off of a movement and the release of its guarantee amount (NCTS IE045).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteOffNotification {
    pub header: Header,
    pub mrn: Mrn,
    pub guarantee: GuaranteeReference,
    pub amount_released: Money,
    pub discharged_at: Timestamp,
}

/// A message was recorded (or was a duplicate of one already recorded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acknowledgement {
    pub header: Header,
    pub original_message_id: MessageId,
    pub mrn: Option<Mrn>,
    /// True when the message had already been recorded (a redelivery).
    pub duplicate: bool,
}

/// A message was refused (NCTS IE906/IE917 analogue).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionalError {
    pub header: Header,
    /// Absent when the message was too broken to read its identification.
    pub original_message_id: Option<MessageId>,
    pub code: ReasonCode,
    /// Human-readable reason, at most [`ERROR_REASON_LEN_MAX`] characters.
    pub reason: String,
    /// The offending element, e.g. `/TransitDeclaration/GoodsItem[2]/CommodityCode`.
    pub element_path: Option<String>,
}

impl FunctionalError {
    /// The functional error answering an XML message that failed to decode.
    pub fn for_xml_error(
        header: Header,
        original_message_id: Option<MessageId>,
        error: &XmlError,
    ) -> FunctionalError {
        let code = if error.code() == "MALFORMED" {
            ReasonCode::Malformed
        } else {
            ReasonCode::Validation
        };
        FunctionalError {
            header,
            original_message_id,
            code,
            reason: error
                .to_string()
                .chars()
                .take(ERROR_REASON_LEN_MAX)
                .collect(),
            element_path: error
                .path()
                .map(|p| p.chars().take(ERROR_POINTER_LEN_MAX).collect()),
        }
    }
}

/// Declares the reason codes with their stable text, once.
macro_rules! reason_codes {
    ($($variant:ident => $text:literal),* $(,)?) => {
        /// The stable rejection codes a functional error carries: the ledger's rule codes,
        /// `MALFORMED` for messages that could not be read at all, and the signature
        /// refusals of signed submissions (`MISSING_SIGNATURE` ... `KEY_OFFICE_NOT_ALLOWED`,
        /// the codes of `transit_auth::SignatureError`).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ReasonCode { $($variant),* }

        impl ReasonCode {
            /// Every code, in schema order.
            pub const ALL: &'static [ReasonCode] = &[$(ReasonCode::$variant),*];

            /// The stable SCREAMING_SNAKE text, e.g. `GUARANTEE_EXCEEDED`.
            pub fn as_str(&self) -> &'static str {
                match self { $(ReasonCode::$variant => $text),* }
            }
        }

        impl FromStr for ReasonCode {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s {
                    $($text => Ok(ReasonCode::$variant),)*
                    other => Err(format!("{other:?} is not a known reason code")),
                }
            }
        }
    };
}

reason_codes! {
    Malformed => "MALFORMED",
    Validation => "VALIDATION",
    UnknownMovement => "UNKNOWN_MOVEMENT",
    AlreadyDeclared => "ALREADY_DECLARED",
    AlreadyRegistered => "ALREADY_REGISTERED",
    InvalidState => "INVALID_STATE",
    GuaranteeUnknown => "GUARANTEE_UNKNOWN",
    GuaranteeExceeded => "GUARANTEE_EXCEEDED",
    GuaranteeExpired => "GUARANTEE_EXPIRED",
    CurrencyMismatch => "CURRENCY_MISMATCH",
    ArrivalRequired => "ARRIVAL_REQUIRED",
    RecoveryExceedsReserved => "RECOVERY_EXCEEDS_RESERVED",
    MessageIdConflict => "MESSAGE_ID_CONFLICT",
    ForbiddenOffice => "FORBIDDEN_OFFICE",
    NotDepartureCountry => "NOT_DEPARTURE_COUNTRY",
    NotDestinationCountry => "NOT_DESTINATION_COUNTRY",
    NotRouteCountry => "NOT_ROUTE_COUNTRY",
    MissingSignature => "MISSING_SIGNATURE",
    MalformedSignature => "MALFORMED_SIGNATURE",
    UnknownKey => "UNKNOWN_KEY",
    BadSignature => "BAD_SIGNATURE",
    KeyNotYetValid => "KEY_NOT_YET_VALID",
    KeyExpired => "KEY_EXPIRED",
    KeyRevoked => "KEY_REVOKED",
    KeyCountryMismatch => "KEY_COUNTRY_MISMATCH",
    KeyOfficeNotAllowed => "KEY_OFFICE_NOT_ALLOWED",
}

impl fmt::Display for ReasonCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Any outbound message.
// The anticipated records hold a whole declaration; values are built and sent one at a time.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutboundMessage {
    AnticipatedTransitRecord(AnticipatedTransitRecord),
    AnticipatedArrivalRecord(AnticipatedArrivalRecord),
    CrossingNotification(CrossingNotification),
    ArrivalAdvice(ArrivalAdvice),
    WriteOffNotification(WriteOffNotification),
    Acknowledgement(Acknowledgement),
    FunctionalError(FunctionalError),
}

impl OutboundMessage {
    /// The root element name.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::AnticipatedTransitRecord(_) => "AnticipatedTransitRecord",
            Self::AnticipatedArrivalRecord(_) => "AnticipatedArrivalRecord",
            Self::CrossingNotification(_) => "CrossingNotification",
            Self::ArrivalAdvice(_) => "ArrivalAdvice",
            Self::WriteOffNotification(_) => "WriteOffNotification",
            Self::Acknowledgement(_) => "Acknowledgement",
            Self::FunctionalError(_) => "FunctionalError",
        }
    }

    /// The common header.
    pub fn header(&self) -> &Header {
        match self {
            Self::AnticipatedTransitRecord(m) => &m.header,
            Self::AnticipatedArrivalRecord(m) => &m.header,
            Self::CrossingNotification(m) => &m.header,
            Self::ArrivalAdvice(m) => &m.header,
            Self::WriteOffNotification(m) => &m.header,
            Self::Acknowledgement(m) => &m.header,
            Self::FunctionalError(m) => &m.header,
        }
    }
}

macro_rules! from_variants {
    ($($t:ident),*) => {$(
        impl From<$t> for OutboundMessage {
            fn from(m: $t) -> Self { OutboundMessage::$t(m) }
        }
    )*};
}
from_variants!(
    AnticipatedTransitRecord,
    AnticipatedArrivalRecord,
    CrossingNotification,
    ArrivalAdvice,
    WriteOffNotification,
    Acknowledgement,
    FunctionalError
);

/// Encodes an outbound message as indented UTF-8 XML in the message set's namespace.
pub fn encode_outbound(msg: &OutboundMessage) -> Vec<u8> {
    let mut w = XmlWriter::new(msg.kind());
    write_header(&mut w, msg.header());
    match msg {
        OutboundMessage::AnticipatedTransitRecord(m) => {
            w.leaf("CustomsOfficeOfTransit", &m.office_of_transit);
            w.timestamp("ReleaseDateAndTime", &m.released_at);
            w.open("Declaration");
            write_declaration(&mut w, &m.declaration);
            w.close();
        }
        OutboundMessage::AnticipatedArrivalRecord(m) => {
            w.leaf("CustomsOfficeOfDestination", &m.office_of_destination);
            w.timestamp("ReleaseDateAndTime", &m.released_at);
            w.open("Declaration");
            write_declaration(&mut w, &m.declaration);
            w.close();
        }
        OutboundMessage::CrossingNotification(m) => {
            w.leaf("MRN", &m.mrn);
            w.leaf("CustomsOfficeOfTransitActual", &m.office_of_transit);
            w.timestamp("CrossingDateAndTime", &m.crossed_at);
            w.boolean("DeclaredOfficeOfTransit", m.declared_office);
            w.boolean("StateOfSealsOk", m.seals_intact);
            write_seals(&mut w, &m.seals_observed);
        }
        OutboundMessage::ArrivalAdvice(m) => {
            w.leaf("MRN", &m.mrn);
            w.leaf("CustomsOfficeOfDestinationActual", &m.office_of_destination);
            w.timestamp("ArrivalDateAndTime", &m.arrived_at);
            w.boolean("DeclaredOfficeOfDestination", m.declared_destination);
        }
        OutboundMessage::WriteOffNotification(m) => {
            w.leaf("MRN", &m.mrn);
            w.leaf("GuaranteeReferenceNumber", &m.guarantee);
            w.money("AmountReleased", &m.amount_released);
            w.timestamp("WriteOffDateAndTime", &m.discharged_at);
        }
        OutboundMessage::Acknowledgement(m) => {
            w.leaf("OriginalMessageIdentification", &m.original_message_id);
            w.leaf_opt("MRN", m.mrn.as_ref());
            w.boolean("Duplicate", m.duplicate);
        }
        OutboundMessage::FunctionalError(m) => {
            w.leaf_opt(
                "OriginalMessageIdentification",
                m.original_message_id.as_ref(),
            );
            w.leaf("ErrorCode", m.code.as_str());
            w.leaf("ErrorReason", &m.reason);
            w.leaf_opt("ErrorPointer", m.element_path.as_ref());
        }
    }
    w.finish()
}

fn read_wrapped_declaration(c: &mut Children<'_>) -> Result<TransitDeclaration, XmlError> {
    let mut d = Children::of(c.required("Declaration")?)?;
    let declaration = read_declaration(&mut d)?;
    d.finish()?;
    Ok(declaration)
}

fn read_reason_code(node: &Node) -> Result<ReasonCode, XmlError> {
    read::token(node)?
        .parse()
        .map_err(|e: String| XmlError::invalid(&node.path, e))
}

/// Decodes any outbound XML message (for the receiving offices, the simulator and tests), with
/// the same limits and checks as [`crate::decode_inbound`].
pub fn decode_outbound(bytes: &[u8]) -> Result<OutboundMessage, XmlError> {
    let root = parse(bytes)?;
    let mut c = Children::of(&root)?;
    if !OUTBOUND_ROOTS.contains(&root.name.as_str()) {
        return Err(XmlError::UnknownMessage {
            name: root.name.clone(),
            expected: "an outbound message",
        });
    }
    let header = read_header(&mut c)?;
    let msg = match root.name.as_str() {
        "AnticipatedTransitRecord" => {
            OutboundMessage::AnticipatedTransitRecord(AnticipatedTransitRecord {
                header,
                office_of_transit: c.id("CustomsOfficeOfTransit")?,
                released_at: c.timestamp("ReleaseDateAndTime")?,
                declaration: read_wrapped_declaration(&mut c)?,
            })
        }
        "AnticipatedArrivalRecord" => {
            OutboundMessage::AnticipatedArrivalRecord(AnticipatedArrivalRecord {
                header,
                office_of_destination: c.id("CustomsOfficeOfDestination")?,
                released_at: c.timestamp("ReleaseDateAndTime")?,
                declaration: read_wrapped_declaration(&mut c)?,
            })
        }
        "CrossingNotification" => OutboundMessage::CrossingNotification(CrossingNotification {
            header,
            mrn: c.id("MRN")?,
            office_of_transit: c.id("CustomsOfficeOfTransitActual")?,
            crossed_at: c.timestamp("CrossingDateAndTime")?,
            declared_office: c.boolean("DeclaredOfficeOfTransit")?,
            seals_intact: c.boolean("StateOfSealsOk")?,
            seals_observed: read_seals(&mut c)?,
        }),
        "ArrivalAdvice" => OutboundMessage::ArrivalAdvice(ArrivalAdvice {
            header,
            mrn: c.id("MRN")?,
            office_of_destination: c.id("CustomsOfficeOfDestinationActual")?,
            arrived_at: c.timestamp("ArrivalDateAndTime")?,
            declared_destination: c.boolean("DeclaredOfficeOfDestination")?,
        }),
        "WriteOffNotification" => OutboundMessage::WriteOffNotification(WriteOffNotification {
            header,
            mrn: c.id("MRN")?,
            guarantee: c.id("GuaranteeReferenceNumber")?,
            amount_released: c.money("AmountReleased")?,
            discharged_at: c.timestamp("WriteOffDateAndTime")?,
        }),
        "Acknowledgement" => OutboundMessage::Acknowledgement(Acknowledgement {
            header,
            original_message_id: c.id("OriginalMessageIdentification")?,
            mrn: c.id_opt("MRN")?,
            duplicate: c.boolean("Duplicate")?,
        }),
        "FunctionalError" => OutboundMessage::FunctionalError(FunctionalError {
            header,
            original_message_id: c.id_opt("OriginalMessageIdentification")?,
            code: read_reason_code(c.required("ErrorCode")?)?,
            reason: c.text("ErrorReason")?,
            element_path: c
                .optional("ErrorPointer")?
                .map(read::free_text)
                .transpose()?,
        }),
        other => {
            return Err(XmlError::UnknownMessage {
                name: other.to_owned(),
                expected: "an outbound message",
            })
        }
    };
    c.finish()?;
    Ok(msg)
}
