//! Decide: given a message and the current state of the streams it touches, the events to
//! append, a duplicate, or a typed rejection. Nothing here reads a clock or does IO.

use std::fmt;

use transit_contract::events::{Actor, EventMeta, GuaranteeEvent, MovementEvent};
use transit_contract::ids::{GuaranteeReference, Money, Timestamp};
use transit_contract::messages::{
    Amendment, ArrivalNotification, BorderCrossing, Cancellation, ControlResults,
    DestinationChange, EnquiryRequest, EnquiryResponse, GuaranteeRegistration, InboundMessage,
    Incident, MessageBody, NoReleaseForTransit, Recovery, ReleaseForTransit, TransitDeclaration,
};

use crate::state::{GuaranteeState, MovementState, MovementStatus};

/// What the caller supplies besides the streams' state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Context {
    /// The ledger clock now: becomes `recorded_at`, and decides whether a time limit passed.
    pub recorded_at: Timestamp,
}

/// The outcome of a message that is not rejected.
// `Duplicate` is empty and `Append` is a few hundred bytes: boxing would buy nothing, as a
// decision is made and consumed once per message.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Append these events, all with `meta`, atomically: `movement` to the movement stream of
    /// the message's MRN, `guarantee` to the stream named by [`guarantee_needed`].
    Append {
        movement: Vec<MovementEvent>,
        guarantee: Vec<GuaranteeEvent>,
        meta: EventMeta,
    },
    /// The same message (same id, same content) was already recorded: append nothing and
    /// answer with the original outcome.
    Duplicate,
}

/// How the edge should treat a rejection (e.g. 409, 422, 404, 400, 403 over HTTP).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RejectionKind {
    /// The message contradicts the ledger's current state; it may succeed later or never.
    Conflict,
    /// Well formed and consistent with the stream's state, but a business rule refuses it.
    Unprocessable,
    /// The movement it refers to is not in the ledger.
    NotFound,
    /// The message is malformed on its own.
    Invalid,
    /// The sender's country may not record this fact (see [`crate::authz`]).
    Forbidden,
}

/// Why a message was refused. The code strings are stable: clients match on them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RejectionCode {
    /// The message breaks a rule that holds for the message alone.
    Validation,
    /// A command for a movement that has no declaration.
    UnknownMovement,
    /// A second declaration for an MRN.
    AlreadyDeclared,
    /// A second registration for a GRN.
    AlreadyRegistered,
    /// The command is not allowed in the movement's current status.
    InvalidState,
    /// The guarantee referenced is not registered.
    GuaranteeUnknown,
    /// Reserving the amount at stake would take exposure past the reference amount.
    GuaranteeExceeded,
    /// The guarantee's validity ended before the release.
    GuaranteeExpired,
    /// An amount is not in the guarantee's (or the movement's) currency.
    CurrencyMismatch,
    /// Discharge without an established arrival.
    ArrivalRequired,
    /// Recovery of more than the exposure reserved for the movement.
    RecoveryExceedsReserved,
    /// A message id already used for a message with different content.
    MessageIdConflict,
    /// The office where the reported act happened (or the guarantee's country) is not in the
    /// sender's country.
    ForbiddenOffice,
    /// An act of the country of departure, sent by another country.
    NotDepartureCountry,
    /// An act of the country of destination, sent by another country.
    NotDestinationCountry,
    /// An incident reported by a country the movement is not known to pass through.
    NotRouteCountry,
}

impl RejectionCode {
    /// Every code, for documentation and exhaustive tests at the edge.
    pub const ALL: [RejectionCode; 16] = [
        Self::Validation,
        Self::UnknownMovement,
        Self::AlreadyDeclared,
        Self::AlreadyRegistered,
        Self::InvalidState,
        Self::GuaranteeUnknown,
        Self::GuaranteeExceeded,
        Self::GuaranteeExpired,
        Self::CurrencyMismatch,
        Self::ArrivalRequired,
        Self::RecoveryExceedsReserved,
        Self::MessageIdConflict,
        Self::ForbiddenOffice,
        Self::NotDepartureCountry,
        Self::NotDestinationCountry,
        Self::NotRouteCountry,
    ];

    /// The stable SCREAMING_SNAKE code, e.g. "GUARANTEE_EXCEEDED".
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Validation => "VALIDATION",
            Self::UnknownMovement => "UNKNOWN_MOVEMENT",
            Self::AlreadyDeclared => "ALREADY_DECLARED",
            Self::AlreadyRegistered => "ALREADY_REGISTERED",
            Self::InvalidState => "INVALID_STATE",
            Self::GuaranteeUnknown => "GUARANTEE_UNKNOWN",
            Self::GuaranteeExceeded => "GUARANTEE_EXCEEDED",
            Self::GuaranteeExpired => "GUARANTEE_EXPIRED",
            Self::CurrencyMismatch => "CURRENCY_MISMATCH",
            Self::ArrivalRequired => "ARRIVAL_REQUIRED",
            Self::RecoveryExceedsReserved => "RECOVERY_EXCEEDS_RESERVED",
            Self::MessageIdConflict => "MESSAGE_ID_CONFLICT",
            Self::ForbiddenOffice => "FORBIDDEN_OFFICE",
            Self::NotDepartureCountry => "NOT_DEPARTURE_COUNTRY",
            Self::NotDestinationCountry => "NOT_DESTINATION_COUNTRY",
            Self::NotRouteCountry => "NOT_ROUTE_COUNTRY",
        }
    }

    /// How the edge should treat it.
    pub fn kind(&self) -> RejectionKind {
        match self {
            Self::Validation => RejectionKind::Invalid,
            Self::UnknownMovement => RejectionKind::NotFound,
            Self::AlreadyDeclared
            | Self::AlreadyRegistered
            | Self::InvalidState
            | Self::ArrivalRequired
            | Self::MessageIdConflict => RejectionKind::Conflict,
            Self::GuaranteeUnknown
            | Self::GuaranteeExceeded
            | Self::GuaranteeExpired
            | Self::CurrencyMismatch
            | Self::RecoveryExceedsReserved => RejectionKind::Unprocessable,
            Self::ForbiddenOffice
            | Self::NotDepartureCountry
            | Self::NotDestinationCountry
            | Self::NotRouteCountry => RejectionKind::Forbidden,
        }
    }
}

impl fmt::Display for RejectionCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A refused message: nothing is recorded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct Rejection {
    pub code: RejectionCode,
    /// A human explanation naming the values involved.
    pub message: String,
}

impl Rejection {
    pub(crate) fn new(code: RejectionCode, message: impl Into<String>) -> Self {
        Rejection {
            code,
            message: message.into(),
        }
    }

    /// Shorthand for `self.code.kind()`.
    pub fn kind(&self) -> RejectionKind {
        self.code.kind()
    }
}

/// The guarantee stream the caller must load for `msg`, or `None` if it touches none.
///
/// - `GuaranteeRegistration`: its own GRN (and no movement stream).
/// - `TransitDeclaration`: the declared GRN, to check it is registered and in the same
///   currency (read only: nothing is appended to it).
/// - `ReleaseForTransit`, `Discharge`, `Recovery`: the movement's guarantee (from the
///   movement state), which they reserve, release or consume.
/// - Everything else: none.
pub fn guarantee_needed(
    msg: &InboundMessage,
    movement: &MovementState,
) -> Option<GuaranteeReference> {
    match &msg.body {
        MessageBody::GuaranteeRegistration(g) => Some(g.grn.clone()),
        MessageBody::TransitDeclaration(d) => Some(d.guarantee.clone()),
        MessageBody::ReleaseForTransit(_)
        | MessageBody::Discharge(_)
        | MessageBody::Recovery(_) => movement.guarantee().cloned(),
        _ => None,
    }
}

/// Decides what `msg` does to the ledger. See the crate docs for the rules.
///
/// `movement` is the state of the movement stream of `msg.mrn()` (default for a guarantee
/// registration); `guarantee` is the state of the stream named by [`guarantee_needed`], or
/// `None` if that stream has no events (or no guarantee is needed).
pub fn decide(
    msg: &InboundMessage,
    movement: &MovementState,
    guarantee: Option<&GuaranteeState>,
    ctx: &Context,
) -> Result<Decision, Rejection> {
    msg.validate()
        .map_err(|e| Rejection::new(RejectionCode::Validation, e.to_string()))?;
    let digest = msg.content_digest_hex();
    // An exact redelivery is answered as the original was (its sender was authorized then);
    // anything else must be authorized before any state rule, a reused message id included,
    // so that a sender with no say on this movement learns nothing about it.
    let duplicate = is_duplicate(msg, &digest, movement, guarantee);
    if duplicate == Ok(true) {
        return Ok(Decision::Duplicate);
    }
    crate::authz::authorize(msg, movement, guarantee)?;
    duplicate?;
    let meta = EventMeta {
        message_id: msg.message_id.clone(),
        correlation_id: msg.correlation_id.clone(),
        actor: Actor::from(&msg.sender),
        occurred_at: msg.business_time(),
        recorded_at: ctx.recorded_at,
        message_digest: digest,
        anomaly: None,
    };
    let d = Decider {
        movement,
        guarantee,
        ctx,
        meta,
    };
    match &msg.body {
        MessageBody::GuaranteeRegistration(b) => d.register_guarantee(b),
        MessageBody::TransitDeclaration(b) => d.declare(b),
        MessageBody::ReleaseForTransit(b) => d.release(b),
        MessageBody::NoReleaseForTransit(b) => d.refuse_release(b),
        MessageBody::BorderCrossing(b) => Ok(d.cross_border(b)),
        MessageBody::Incident(b) => Ok(d.record_incident(b)),
        MessageBody::DestinationChange(b) => d.change_destination(b),
        MessageBody::ArrivalNotification(b) => Ok(d.record_arrival(b)),
        MessageBody::ControlResults(b) => Ok(d.record_control_results(b)),
        MessageBody::Discharge(_) => d.discharge(),
        MessageBody::Cancellation(b) => d.cancel(b),
        MessageBody::Amendment(b) => d.amend(b),
        MessageBody::EnquiryRequest(b) => d.open_enquiry(b),
        MessageBody::EnquiryResponse(b) => d.answer_enquiry(b),
        MessageBody::Recovery(b) => d.recover(b),
    }
}

/// Same id and digest already recorded in a stream this message touches: a duplicate.
/// Same id, other digest: a conflicting reuse of the id.
fn is_duplicate(
    msg: &InboundMessage,
    digest: &str,
    movement: &MovementState,
    guarantee: Option<&GuaranteeState>,
) -> Result<bool, Rejection> {
    let from_movement = match msg.body {
        MessageBody::GuaranteeRegistration(_) => None,
        _ => movement.processed_digest(&msg.message_id),
    };
    let seen =
        from_movement.or_else(|| guarantee.and_then(|g| g.processed_digest(&msg.message_id)));
    match seen {
        None => Ok(false),
        Some(previous) if previous == digest => Ok(true),
        Some(previous) => Err(Rejection::new(
            RejectionCode::MessageIdConflict,
            format!(
                "message id {} was already recorded with digest {previous}; this message has \
                 digest {digest}",
                msg.message_id
            ),
        )),
    }
}

struct Decider<'a> {
    movement: &'a MovementState,
    guarantee: Option<&'a GuaranteeState>,
    ctx: &'a Context,
    meta: EventMeta,
}

type Decided = Result<Decision, Rejection>;

impl Decider<'_> {
    fn status(&self) -> MovementStatus {
        self.movement.status()
    }

    fn append(self, movement: Vec<MovementEvent>, guarantee: Vec<GuaranteeEvent>) -> Decision {
        Decision::Append {
            movement,
            guarantee,
            meta: self.meta,
        }
    }

    /// An observation is recorded whatever the state; outside `expected` it carries why it is
    /// out of sequence.
    fn observe(
        mut self,
        kind: &str,
        expected: &[MovementStatus],
        event: MovementEvent,
    ) -> Decision {
        let status = self.status();
        if !expected.contains(&status) {
            let expected: Vec<&str> = expected.iter().map(|s| s.as_str()).collect();
            let why = if status == MovementStatus::Unknown {
                "no declaration recorded yet".to_owned()
            } else {
                format!("expected {}", expected.join(" or "))
            };
            self.meta.anomaly = Some(format!(
                "{kind} reported while movement was {status} (out of sequence: {why})"
            ));
        }
        self.append(vec![event], Vec::new())
    }

    /// Commands need the movement in one of `allowed`.
    fn require(&self, command: &str, allowed: &[MovementStatus]) -> Result<(), Rejection> {
        let status = self.status();
        if allowed.contains(&status) {
            return Ok(());
        }
        if status == MovementStatus::Unknown {
            return Err(Rejection::new(
                RejectionCode::UnknownMovement,
                format!("{command}: no declaration is recorded for this MRN"),
            ));
        }
        let allowed: Vec<&str> = allowed.iter().map(|s| s.as_str()).collect();
        Err(Rejection::new(
            RejectionCode::InvalidState,
            format!(
                "{command} requires status {}, the movement is {status}",
                allowed.join(" or ")
            ),
        ))
    }

    fn declaration(&self) -> Result<&TransitDeclaration, Rejection> {
        self.movement.declaration().ok_or_else(|| {
            Rejection::new(
                RejectionCode::UnknownMovement,
                "no declaration is recorded for this MRN",
            )
        })
    }

    /// The registered guarantee `grn`, as supplied by the caller.
    fn registered_guarantee(&self, grn: &GuaranteeReference) -> Result<&GuaranteeState, Rejection> {
        let unknown = || {
            Rejection::new(
                RejectionCode::GuaranteeUnknown,
                format!("guarantee {grn} is not registered"),
            )
        };
        let state = self.guarantee.ok_or_else(unknown)?;
        match state.grn() {
            Some(g) if g == grn => Ok(state),
            _ => Err(unknown()),
        }
    }

    fn same_currency(field: &str, amount: &Money, expected: &Money) -> Result<(), Rejection> {
        if amount.currency() != expected.currency() {
            return Err(Rejection::new(
                RejectionCode::CurrencyMismatch,
                format!(
                    "{field} is in {}, expected {}",
                    amount.currency(),
                    expected.currency()
                ),
            ));
        }
        Ok(())
    }

    fn register_guarantee(self, b: &GuaranteeRegistration) -> Decided {
        if self.guarantee.is_some_and(GuaranteeState::is_registered) {
            return Err(Rejection::new(
                RejectionCode::AlreadyRegistered,
                format!("guarantee {} is already registered", b.grn),
            ));
        }
        let event = GuaranteeEvent::GuaranteeRegistered {
            grn: b.grn.clone(),
            guarantor: b.guarantor.clone(),
            principal: b.principal.clone(),
            reference_amount: b.reference_amount.clone(),
            valid_until: b.valid_until,
        };
        Ok(self.append(Vec::new(), vec![event]))
    }

    fn declare(self, b: &TransitDeclaration) -> Decided {
        if self.status() != MovementStatus::Unknown {
            return Err(Rejection::new(
                RejectionCode::AlreadyDeclared,
                format!("{} is already declared (status {})", b.mrn, self.status()),
            ));
        }
        let g = self.registered_guarantee(&b.guarantee)?;
        if let Some(reference) = g.reference_amount() {
            Self::same_currency("amountAtStake", &b.amount_at_stake, reference)?;
        }
        let event = MovementEvent::TransitDeclared {
            declaration: b.clone(),
        };
        Ok(self.append(vec![event], Vec::new()))
    }

    fn release(self, b: &ReleaseForTransit) -> Decided {
        self.require("ReleaseForTransit", &[MovementStatus::Declared])?;
        let declaration = self.declaration()?;
        let g = self.registered_guarantee(&declaration.guarantee)?;
        let record = g.registration().ok_or_else(|| {
            Rejection::new(RejectionCode::GuaranteeUnknown, "guarantee not registered")
        })?;
        let amount = &declaration.amount_at_stake;
        Self::same_currency("amountAtStake", amount, &record.reference_amount)?;
        if let Some(valid_until) = record.valid_until {
            if b.released_at > valid_until {
                return Err(Rejection::new(
                    RejectionCode::GuaranteeExpired,
                    format!(
                        "guarantee {} was valid until {valid_until}, release at {}",
                        record.grn, b.released_at
                    ),
                ));
            }
        }
        let reserved = g
            .reserved_total()
            .unwrap_or_else(|| Money::zero(amount.currency().clone()));
        let within_limit = reserved
            .checked_add(amount)
            .is_ok_and(|total| total.amount_minor() <= record.reference_amount.amount_minor());
        if !within_limit {
            let headroom = g
                .headroom()
                .unwrap_or_else(|| Money::zero(amount.currency().clone()));
            return Err(Rejection::new(
                RejectionCode::GuaranteeExceeded,
                format!(
                    "release requests {amount} on guarantee {}; headroom is {headroom} \
                     (reference {}, reserved {reserved})",
                    record.grn, record.reference_amount
                ),
            ));
        }
        let mrn = declaration.mrn.clone();
        let movement = vec![
            MovementEvent::TransitReleased {
                released_at: b.released_at,
                amount_reserved: amount.clone(),
                guarantee: record.grn.clone(),
            },
            MovementEvent::AnticipatedRecordsDispatched {
                offices_of_transit: declaration.transit_offices().cloned().collect(),
                office_of_destination: declaration.office_of_destination.clone(),
            },
        ];
        let guarantee = vec![GuaranteeEvent::GuaranteeExposureReserved {
            mrn,
            amount: amount.clone(),
        }];
        Ok(self.append(movement, guarantee))
    }

    fn refuse_release(self, b: &NoReleaseForTransit) -> Decided {
        self.require("NoReleaseForTransit", &[MovementStatus::Declared])?;
        let event = MovementEvent::ReleaseRefused {
            reason: b.reason,
            remarks: b.remarks.clone(),
        };
        Ok(self.append(vec![event], Vec::new()))
    }

    fn cross_border(self, b: &BorderCrossing) -> Decision {
        let declared_office = self
            .movement
            .declaration()
            .is_some_and(|d| d.transit_offices().any(|o| o == &b.office));
        let event = MovementEvent::BorderCrossed {
            office: b.office.clone(),
            crossed_at: b.crossed_at,
            declared_office,
            seals_intact: b.seals_intact,
            seals_observed: b.seals_observed.clone(),
        };
        self.observe("BorderCrossing", &[MovementStatus::Released], event)
    }

    fn record_incident(self, b: &Incident) -> Decision {
        let event = MovementEvent::IncidentRecorded {
            code: b.code,
            place: b.place.clone(),
            occurred_at: b.occurred_at,
            endorsed_by: b.endorsed_by.clone(),
            new_seals: b.new_seals.clone(),
            new_transport: b.new_transport.clone(),
            description: b.description.clone(),
        };
        self.observe("Incident", &[MovementStatus::Released], event)
    }

    fn change_destination(self, b: &DestinationChange) -> Decided {
        self.require("DestinationChange", &[MovementStatus::Released])?;
        let from = self.declaration()?.office_of_destination.clone();
        if from == b.new_office_of_destination {
            return Err(Rejection::new(
                RejectionCode::InvalidState,
                format!("{from} is already the office of destination"),
            ));
        }
        let event = MovementEvent::DestinationChanged {
            from,
            to: b.new_office_of_destination.clone(),
            reason: b.reason.clone(),
        };
        Ok(self.append(vec![event], Vec::new()))
    }

    fn record_arrival(self, b: &ArrivalNotification) -> Decision {
        let declared_destination = self
            .movement
            .declaration()
            .is_some_and(|d| d.office_of_destination == b.office);
        let event = MovementEvent::ArrivalRecorded {
            office: b.office.clone(),
            arrived_at: b.arrived_at,
            declared_destination,
        };
        self.observe("ArrivalNotification", &[MovementStatus::Released], event)
    }

    fn record_control_results(self, b: &ControlResults) -> Decision {
        let event = MovementEvent::ControlResultsRecorded {
            office: b.office.clone(),
            conform: b.conform,
            seals_intact: b.seals_intact,
            seals_found: b.seals_found.clone(),
            gross_mass_g_found: b.gross_mass_g_found,
            packages_found: b.packages_found,
            remarks: b.remarks.clone(),
        };
        self.observe("ControlResults", &[MovementStatus::Arrived], event)
    }

    fn discharge(self) -> Decided {
        let status = self.status();
        if matches!(
            status,
            MovementStatus::Released | MovementStatus::UnderEnquiry
        ) {
            return Err(Rejection::new(
                RejectionCode::ArrivalRequired,
                format!(
                    "Discharge requires an arrival (notified, or proven by an answered \
                     enquiry); the movement is {status}"
                ),
            ));
        }
        self.require(
            "Discharge",
            &[MovementStatus::Arrived, MovementStatus::Controlled],
        )?;
        let declaration = self.declaration()?;
        let reserved = self.reserved()?;
        self.registered_guarantee(&reserved.0)?;
        let mrn = declaration.mrn.clone();
        let (_, amount) = reserved;
        let movement = vec![MovementEvent::TransitDischarged {
            amount_released: amount.clone(),
        }];
        let guarantee = vec![GuaranteeEvent::GuaranteeExposureReleased { mrn, amount }];
        Ok(self.append(movement, guarantee))
    }

    /// The guarantee and amount reserved at release.
    fn reserved(&self) -> Result<(GuaranteeReference, Money), Rejection> {
        self.movement
            .release()
            .map(|r| (r.guarantee.clone(), r.amount_reserved.clone()))
            .ok_or_else(|| {
                Rejection::new(
                    RejectionCode::InvalidState,
                    "the movement was never released",
                )
            })
    }

    fn cancel(self, b: &Cancellation) -> Decided {
        self.require("Cancellation", &[MovementStatus::Declared])?;
        let event = MovementEvent::DeclarationCancelled {
            reason: b.reason.clone(),
        };
        Ok(self.append(vec![event], Vec::new()))
    }

    fn amend(self, b: &Amendment) -> Decided {
        self.require("Amendment", &[MovementStatus::Declared])?;
        let declaration = self.declaration()?;
        if let Some(amount) = &b.changes.amount_at_stake {
            // The guarantee's currency was checked at declaration; keeping the amount's
            // currency keeps that check true.
            Self::same_currency("amountAtStake", amount, &declaration.amount_at_stake)?;
        }
        let event = MovementEvent::DeclarationAmended {
            changes: b.changes.clone(),
        };
        Ok(self.append(vec![event], Vec::new()))
    }

    fn open_enquiry(self, b: &EnquiryRequest) -> Decided {
        self.require(
            "EnquiryRequest",
            &[MovementStatus::Released, MovementStatus::Arrived],
        )?;
        if self.status() == MovementStatus::Released {
            let time_limit = self.declaration()?.time_limit;
            if self.ctx.recorded_at <= time_limit {
                return Err(Rejection::new(
                    RejectionCode::InvalidState,
                    format!(
                        "EnquiryRequest before the time limit {time_limit} (ledger time {})",
                        self.ctx.recorded_at
                    ),
                ));
            }
        }
        let event = MovementEvent::EnquiryOpened {
            reason: b.reason.clone(),
        };
        Ok(self.append(vec![event], Vec::new()))
    }

    fn answer_enquiry(self, b: &EnquiryResponse) -> Decided {
        self.require("EnquiryResponse", &[MovementStatus::UnderEnquiry])?;
        let event = MovementEvent::EnquiryAnswered {
            outcome: b.outcome.clone(),
            remarks: b.remarks.clone(),
        };
        Ok(self.append(vec![event], Vec::new()))
    }

    fn recover(self, b: &Recovery) -> Decided {
        self.require("Recovery", &[MovementStatus::UnderEnquiry])?;
        let (grn, reserved) = self.reserved()?;
        self.registered_guarantee(&grn)?;
        Self::same_currency("amountRecovered", &b.amount_recovered, &reserved)?;
        let amount_released = reserved.checked_sub(&b.amount_recovered).map_err(|_| {
            Rejection::new(
                RejectionCode::RecoveryExceedsReserved,
                format!(
                    "recovery of {} exceeds the {reserved} reserved for this movement",
                    b.amount_recovered
                ),
            )
        })?;
        let mrn = self.declaration()?.mrn.clone();
        let movement = vec![MovementEvent::DutiesRecovered {
            amount_recovered: b.amount_recovered.clone(),
            reason: b.reason.clone(),
        }];
        let guarantee = vec![GuaranteeEvent::GuaranteeConsumedByRecovery {
            mrn,
            amount_consumed: b.amount_recovered.clone(),
            amount_released,
        }];
        Ok(self.append(movement, guarantee))
    }
}
