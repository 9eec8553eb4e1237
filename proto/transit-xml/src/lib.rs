//! The XML message set of the transit ledger, as national customs systems (ASYCUDA) exchange it
//! over ActiveMQ: a codec between XML documents in the namespace [`NAMESPACE`] and the
//! contract's typed messages, plus the outbound messages the ledger sends.
//!
//! - [`decode_inbound`] / [`encode_inbound`]: every `MessageBody` of the contract.
//! - [`decode_outbound`] / [`encode_outbound`]: anticipated transit and arrival records,
//!   crossing notification, arrival advice, write-off notification, acknowledgement and
//!   functional error.
//! - The schema is `schemas/xml/transit.xsd` (XML Schema 1.0); its README maps every element to
//!   its contract field, WCO data model name and NCTS message.
//!
//! Hostile input is bounded while parsing by the `XML_*_MAX` constants below. DTDs (and so
//! external entities and entity expansion) and processing instructions are refused, and only
//! the five predefined entities and numeric character references are resolved.
//!
//! Invariant: this crate does no IO and reads no clock; it turns bytes into values and back.

mod error;
mod inbound;
mod outbound;
mod parse;
mod read;
pub mod samples;
mod write;

pub use error::XmlError;
pub use inbound::{decode_inbound, encode_inbound, Header, INBOUND_ROOTS};
pub use outbound::{
    decode_outbound, encode_outbound, Acknowledgement, AnticipatedArrivalRecord,
    AnticipatedTransitRecord, ArrivalAdvice, CrossingNotification, FunctionalError,
    OutboundMessage, ReasonCode, WriteOffNotification, ERROR_POINTER_LEN_MAX, ERROR_REASON_LEN_MAX,
    OUTBOUND_ROOTS,
};

/// The target namespace of every message (schema version 1).
pub const NAMESPACE: &str = "urn:ecowas:transit-ledger:v1";

/// The largest message accepted, in bytes (a 999-item declaration is about 400 KiB).
pub const XML_BYTES_MAX: usize = 512 * 1024;
/// The deepest element nesting accepted (the schema needs 5).
pub const XML_DEPTH_MAX: usize = 32;
/// The most elements accepted in one message (a 999-item declaration needs about 10,000).
pub const XML_ELEMENTS_MAX: usize = 20_000;
/// The most attributes on one element, namespace declarations included (the schema uses 1).
pub const XML_ATTRIBUTES_PER_ELEMENT_MAX: usize = 8;
/// The longest attribute value, in bytes as written.
pub const XML_ATTRIBUTE_LEN_MAX: usize = 256;
/// The longest text content of one element, in bytes after unescaping (free text is at most
/// 512 characters, i.e. at most 2 KiB of UTF-8; `validate()` enforces the character limit).
pub const XML_TEXT_LEN_MAX: usize = 4096;
/// The longest element or attribute local name, in bytes (the schema's longest is 35).
pub const XML_NAME_LEN_MAX: usize = 64;
/// The most namespace bindings in scope at once.
pub const XML_NAMESPACE_BINDINGS_MAX: usize = 16;
