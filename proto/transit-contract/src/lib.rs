//! The transit contract: what national customs systems send the ledger and what it records.
//!
//! - [`ids`]: checked identifiers, money and time. A value that exists is valid.
//! - [`messages`]: inbound messages (NCTS analogues), their wire shape and their
//!   self-contained validation and content digest.
//! - [`events`]: the facts recorded per stream, with type names, schema versions and the
//!   codec that upcasts old versions on read.
//! - [`fixtures`]: a realistic, deterministic Lomé -> Cinkassé -> Ouagadougou journey for
//!   every crate's tests.
//!
//! Invariant: this crate does no IO and reads no clock; time is always passed in.

pub mod events;
pub mod fixtures;
pub mod ids;
pub mod messages;

pub use events::{
    guarantee_stream, movement_stream, Actor, DecodeError, EventMeta, GuaranteeEvent, MovementEvent,
};
pub use ids::{
    CountryCode, Currency, GuaranteeReference, HsCode, IdError, IdErrorKind, MessageId, Money,
    MoneyError, Mrn, OfficeCode, PackageKindCode, SealId, Timestamp, TraderId, UnLocode, VehicleId,
};
pub use messages::{InboundMessage, MessageBody, Sender, ValidationError};
