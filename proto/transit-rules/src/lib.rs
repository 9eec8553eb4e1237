//! Transit domain rules: pure decide/evolve over movement and guarantee streams.
//!
//! [`decide`] takes one inbound message, the state of the streams it touches and the ledger
//! clock, and answers with the events to append ([`Decision::Append`]), a duplicate
//! ([`Decision::Duplicate`]) or a typed [`Rejection`]. [`MovementState::apply`] and
//! [`GuaranteeState::apply`] fold recorded events back into state. Nothing here does IO or
//! reads a clock.
//!
//! # Which streams a message touches
//! The caller loads them; this crate only says which:
//! - A `GuaranteeRegistration` touches only the guarantee stream `guarantee-<GRN>` (pass a
//!   default [`MovementState`]).
//! - Every other message touches the movement stream `movement-<MRN>` of `msg.mrn()`, plus the
//!   guarantee stream named by [`guarantee_needed`]: the declared guarantee for a declaration
//!   (read only), the movement's guarantee for a release, a discharge or a recovery (which
//!   reserve, release or consume exposure). Events of one decision share one [`EventMeta`]
//!   and must be appended atomically, across both streams.
//!
//! # Rules
//! - **Validation**: `msg.validate()` must pass (`VALIDATION`).
//! - **Duplicates**: a message id already recorded in a touched stream with the same content
//!   digest is a [`Decision::Duplicate`] (append nothing, answer the original outcome); the
//!   same id with another digest is `MESSAGE_ID_CONFLICT` (after authorization). Uniqueness
//!   of ids across unrelated streams is the store's concern.
//! - **Authorization** ([`authz`]), for everything but an exact duplicate, before any state
//!   rule: the sender's country (authenticated by the submission signature) may only record
//!   what its own offices did, and only the acts that belong to it: departure acts from the
//!   country of departure (`NOT_DEPARTURE_COUNTRY`), arrival and control results from the
//!   country of destination (`NOT_DESTINATION_COUNTRY`), a crossing or an arrival at an office
//!   of the sender's country (`FORBIDDEN_OFFICE`), an incident from a country on the route
//!   (`NOT_ROUTE_COUNTRY`). The table is in [`authz`].
//! - **GuaranteeRegistration**: once per GRN (`ALREADY_REGISTERED`) -> `GuaranteeRegistered`.
//! - **TransitDeclaration**: only while the movement is Unknown, even if out-of-sequence
//!   observations are already recorded (`ALREADY_DECLARED` otherwise); the guarantee must be
//!   registered (`GUARANTEE_UNKNOWN`) and in the currency of the amount at stake
//!   (`CURRENCY_MISMATCH`) -> `TransitDeclared`.
//! - **ReleaseForTransit**: only from Declared; reserves the amount at stake: if reserved +
//!   amount > reference amount -> `GUARANTEE_EXCEEDED` (nothing recorded; the message names the
//!   amount requested and the headroom; exactly the reference amount is allowed); a release
//!   after the guarantee's `valid_until` -> `GUARANTEE_EXPIRED`. Otherwise `TransitReleased`
//!   and `AnticipatedRecordsDispatched` (the outbox of the fan-out to offices of transit and
//!   destination) on the movement, `GuaranteeExposureReserved` on the guarantee.
//! - **NoReleaseForTransit**, **Cancellation**, **Amendment**: only from Declared
//!   (`UNKNOWN_MOVEMENT` if nothing is declared, `INVALID_STATE` otherwise) ->
//!   `ReleaseRefused`, `DeclarationCancelled`, `DeclarationAmended`. An amendment keeps the
//!   amount's currency.
//! - **Observations** (BorderCrossing, Incident, ArrivalNotification, ControlResults): the
//!   ledger records what was reported and never loses it. They are accepted in any state,
//!   before the declaration and after discharge; outside the expected state (Released for a
//!   crossing, an incident or an arrival; Arrived for control results) the event carries
//!   `meta.anomaly` saying why it is out of sequence. `BorderCrossed.declared_office` says
//!   whether the office is a declared office of transit (false for a possible diversion, and
//!   when no declaration is known yet); `ArrivalRecorded.declared_destination` compares with
//!   the current destination (after any `DestinationChanged`).
//! - **DestinationChange**: only from Released -> `DestinationChanged { from, to }`.
//! - **Discharge**: needs an established arrival (Arrived or Controlled, including an enquiry
//!   answered GoodsArrived), else `ARRIVAL_REQUIRED` from Released or UnderEnquiry ->
//!   `TransitDischarged` + `GuaranteeExposureReleased` of the reserved amount.
//! - **EnquiryRequest**: from Released once the ledger clock is past the time limit (else
//!   `INVALID_STATE` naming the limit), or from Arrived while control results are missing ->
//!   `EnquiryOpened`. **EnquiryResponse**: only UnderEnquiry -> `EnquiryAnswered`; the outcome
//!   GoodsArrived establishes arrival, so the movement can be discharged.
//! - **Recovery**: only UnderEnquiry; at most the reserved amount
//!   (`RECOVERY_EXCEEDS_RESERVED`) -> `DutiesRecovered` + `GuaranteeConsumedByRecovery`
//!   (consumed = recovered, released = reserved - recovered).
//! - Every append carries an [`EventMeta`] built from the message: actor = sender,
//!   `occurred_at` = the business time reported (released_at, crossed_at, arrived_at, an
//!   incident's occurred_at, else sent_at), `recorded_at` = `ctx.recorded_at`, digest = the
//!   message's content digest in hex.
//!
//! Invariant: no IO, no clock, no randomness: the same inputs always give the same decision.

pub mod authz;
mod decide;
pub mod fanout;
mod state;

#[cfg(test)]
mod harness;
#[cfg(test)]
mod tests;

pub use decide::{
    decide, guarantee_needed, Context, Decision, Rejection, RejectionCode, RejectionKind,
};
pub use state::{
    ArrivalRecord, CrossingRecord, EnquiryRecord, GuaranteeRecord, GuaranteeState, MovementState,
    MovementStatus, ReleaseRecord,
};
pub use transit_contract::events::EventMeta;
