//! Evolve: the state of a movement stream and of a guarantee stream, folded from their events.
//!
//! `apply` is total: it never fails and never panics, because events are facts that were
//! already decided; a state that looks odd (e.g. a crossing before the declaration) is exactly
//! what the ledger exists to remember.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use transit_contract::events::{EventMeta, GuaranteeEvent, MovementEvent};
use transit_contract::ids::{GuaranteeReference, MessageId, Money, Mrn, OfficeCode, Timestamp};
use transit_contract::messages::{EnquiryOutcome, Party, TransitDeclaration};

/// Where a movement stands, derived from the facts recorded so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum MovementStatus {
    /// No declaration recorded (observations may already be).
    #[default]
    Unknown,
    Declared,
    Released,
    Arrived,
    Controlled,
    Discharged,
    NotReleased,
    Cancelled,
    UnderEnquiry,
    Recovered,
}

impl MovementStatus {
    /// A stable name, e.g. "UnderEnquiry".
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Unknown => "Unknown",
            Self::Declared => "Declared",
            Self::Released => "Released",
            Self::Arrived => "Arrived",
            Self::Controlled => "Controlled",
            Self::Discharged => "Discharged",
            Self::NotReleased => "NotReleased",
            Self::Cancelled => "Cancelled",
            Self::UnderEnquiry => "UnderEnquiry",
            Self::Recovered => "Recovered",
        }
    }
}

impl fmt::Display for MovementStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The release of a movement: what was reserved, on which guarantee.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseRecord {
    pub released_at: Timestamp,
    pub amount_reserved: Money,
    pub guarantee: GuaranteeReference,
}

/// A recorded passage at an office of transit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CrossingRecord {
    pub office: OfficeCode,
    pub crossed_at: Timestamp,
    pub declared_office: bool,
}

/// A recorded arrival.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArrivalRecord {
    pub office: OfficeCode,
    pub arrived_at: Timestamp,
    pub declared_destination: bool,
}

/// An enquiry and its latest answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnquiryRecord {
    pub reason: String,
    pub answer: Option<EnquiryOutcome>,
}

impl EnquiryRecord {
    fn resolved_by_arrival(&self) -> bool {
        matches!(self.answer, Some(EnquiryOutcome::GoodsArrived { .. }))
    }
}

/// The state of one movement stream (`movement-<MRN>`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MovementState {
    /// The declaration as amended and re-routed so far.
    declaration: Option<TransitDeclaration>,
    release: Option<ReleaseRecord>,
    refused: bool,
    cancelled: bool,
    crossings: Vec<CrossingRecord>,
    /// Every arrival reported, in recording order (more than one is itself an anomaly).
    arrivals: Vec<ArrivalRecord>,
    control_results_recorded: bool,
    enquiry: Option<EnquiryRecord>,
    /// Set when an enquiry was answered "goods arrived": proof of arrival without an
    /// arrival notification.
    arrival_proven_by_enquiry: bool,
    discharged: bool,
    recovered: bool,
    /// Every message id that produced events here, with its content digest (hex).
    processed: BTreeMap<MessageId, String>,
    events_applied: u64,
}

impl MovementState {
    /// Folds one recorded event into the state.
    pub fn apply(&mut self, meta: &EventMeta, event: &MovementEvent) {
        self.processed
            .insert(meta.message_id.clone(), meta.message_digest.clone());
        self.apply_fact(event);
    }

    /// Folds one recorded event's facts without remembering the message that produced it:
    /// the same fold as [`Self::apply`] for read models, which never answer
    /// [`Self::processed_digest`] and would otherwise keep one message id and digest per event.
    pub fn apply_fact(&mut self, event: &MovementEvent) {
        self.events_applied += 1;
        match event {
            MovementEvent::TransitDeclared { declaration } => {
                self.declaration = Some(declaration.clone());
            }
            MovementEvent::TransitReleased {
                released_at,
                amount_reserved,
                guarantee,
            } => {
                self.release = Some(ReleaseRecord {
                    released_at: *released_at,
                    amount_reserved: amount_reserved.clone(),
                    guarantee: guarantee.clone(),
                });
            }
            MovementEvent::ReleaseRefused { .. } => self.refused = true,
            MovementEvent::AnticipatedRecordsDispatched { .. } => {}
            MovementEvent::BorderCrossed {
                office,
                crossed_at,
                declared_office,
                ..
            } => self.crossings.push(CrossingRecord {
                office: office.clone(),
                crossed_at: *crossed_at,
                declared_office: *declared_office,
            }),
            MovementEvent::IncidentRecorded { new_transport, .. } => {
                // A transhipment changes the vehicle later messages should be checked against.
                if let (Some(t), Some(d)) = (new_transport, self.declaration.as_mut()) {
                    d.transport = t.clone();
                }
            }
            MovementEvent::DestinationChanged { to, .. } => {
                if let Some(d) = self.declaration.as_mut() {
                    d.office_of_destination = to.clone();
                }
            }
            MovementEvent::ArrivalRecorded {
                office,
                arrived_at,
                declared_destination,
            } => self.arrivals.push(ArrivalRecord {
                office: office.clone(),
                arrived_at: *arrived_at,
                declared_destination: *declared_destination,
            }),
            MovementEvent::ControlResultsRecorded { .. } => self.control_results_recorded = true,
            MovementEvent::TransitDischarged { .. } => self.discharged = true,
            MovementEvent::DeclarationCancelled { .. } => self.cancelled = true,
            MovementEvent::DeclarationAmended { changes } => {
                if let Some(d) = self.declaration.as_mut() {
                    changes.apply_to(d);
                }
            }
            MovementEvent::EnquiryOpened { reason } => {
                self.enquiry = Some(EnquiryRecord {
                    reason: reason.clone(),
                    answer: None,
                });
            }
            MovementEvent::EnquiryAnswered { outcome, .. } => {
                if let Some(e) = self.enquiry.as_mut() {
                    e.answer = Some(outcome.clone());
                }
                if matches!(outcome, EnquiryOutcome::GoodsArrived { .. }) {
                    self.arrival_proven_by_enquiry = true;
                }
            }
            MovementEvent::DutiesRecovered { .. } => self.recovered = true,
        }
    }

    /// Folds a whole stream.
    pub fn from_events<'a>(
        events: impl IntoIterator<Item = (&'a EventMeta, &'a MovementEvent)>,
    ) -> Self {
        let mut state = Self::default();
        for (meta, event) in events {
            state.apply(meta, event);
        }
        state
    }

    /// The status, derived from the facts so that out-of-order observations land where they
    /// belong (an arrival reported before the release still counts once released).
    pub fn status(&self) -> MovementStatus {
        if self.declaration.is_none() {
            return MovementStatus::Unknown;
        }
        if self.cancelled {
            return MovementStatus::Cancelled;
        }
        if self.refused {
            return MovementStatus::NotReleased;
        }
        if self.release.is_none() {
            return MovementStatus::Declared;
        }
        if self.recovered {
            return MovementStatus::Recovered;
        }
        if self.discharged {
            return MovementStatus::Discharged;
        }
        if self
            .enquiry
            .as_ref()
            .is_some_and(|e| !e.resolved_by_arrival())
        {
            return MovementStatus::UnderEnquiry;
        }
        if self.has_arrival() {
            if self.control_results_recorded {
                return MovementStatus::Controlled;
            }
            return MovementStatus::Arrived;
        }
        MovementStatus::Released
    }

    /// The guarantee of the movement: the one reserved at release, else the declared one.
    pub fn guarantee(&self) -> Option<&GuaranteeReference> {
        match &self.release {
            Some(r) => Some(&r.guarantee),
            None => self.declaration.as_ref().map(|d| &d.guarantee),
        }
    }

    /// The declaration as amended so far.
    pub fn declaration(&self) -> Option<&TransitDeclaration> {
        self.declaration.as_ref()
    }

    /// The release, if any.
    pub fn release(&self) -> Option<&ReleaseRecord> {
        self.release.as_ref()
    }

    /// The amount reserved on the guarantee by the release.
    pub fn reserved_amount(&self) -> Option<&Money> {
        self.release.as_ref().map(|r| &r.amount_reserved)
    }

    /// Every recorded crossing, in recording order.
    pub fn crossings(&self) -> &[CrossingRecord] {
        &self.crossings
    }

    /// Every recorded arrival, in recording order.
    pub fn arrivals(&self) -> &[ArrivalRecord] {
        &self.arrivals
    }

    /// Whether arrival is established: an arrival notification, or an enquiry answered
    /// "goods arrived".
    pub fn has_arrival(&self) -> bool {
        !self.arrivals.is_empty() || self.arrival_proven_by_enquiry
    }

    /// Whether control results were recorded.
    pub fn has_control_results(&self) -> bool {
        self.control_results_recorded
    }

    /// The current enquiry, if one was opened.
    pub fn enquiry(&self) -> Option<&EnquiryRecord> {
        self.enquiry.as_ref()
    }

    /// The digest (hex) of the message that produced events here under `id`, if any.
    pub fn processed_digest(&self, id: &MessageId) -> Option<&str> {
        self.processed.get(id).map(String::as_str)
    }

    /// The number of events folded: the stream version the state reflects, for callers that
    /// append with an expected version.
    pub fn version_hint(&self) -> u64 {
        self.events_applied
    }
}

/// The registration facts of a guarantee.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuaranteeRecord {
    pub grn: GuaranteeReference,
    pub guarantor: Party,
    pub principal: Party,
    pub reference_amount: Money,
    pub valid_until: Option<Timestamp>,
}

/// The state of one guarantee stream (`guarantee-<GRN>`): its limit and its exposure.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuaranteeState {
    registration: Option<GuaranteeRecord>,
    /// Exposure currently reserved, per movement. Amounts are in the guarantee's currency.
    reservations: BTreeMap<Mrn, i64>,
    reserved_total_minor: i64,
    consumed_total_minor: i64,
    processed: BTreeMap<MessageId, String>,
    events_applied: u64,
}

impl GuaranteeState {
    /// Folds one recorded event into the state.
    pub fn apply(&mut self, meta: &EventMeta, event: &GuaranteeEvent) {
        self.processed
            .insert(meta.message_id.clone(), meta.message_digest.clone());
        self.events_applied += 1;
        match event {
            GuaranteeEvent::GuaranteeRegistered {
                grn,
                guarantor,
                principal,
                reference_amount,
                valid_until,
            } => {
                self.registration = Some(GuaranteeRecord {
                    grn: grn.clone(),
                    guarantor: guarantor.clone(),
                    principal: principal.clone(),
                    reference_amount: reference_amount.clone(),
                    valid_until: *valid_until,
                });
            }
            GuaranteeEvent::GuaranteeExposureReserved { mrn, amount } => {
                let entry = self.reservations.entry(mrn.clone()).or_insert(0);
                *entry = entry.saturating_add(amount.amount_minor());
                self.reserved_total_minor = self
                    .reserved_total_minor
                    .saturating_add(amount.amount_minor());
            }
            GuaranteeEvent::GuaranteeExposureReleased { mrn, amount } => {
                self.release_reservation(mrn, amount.amount_minor());
            }
            GuaranteeEvent::GuaranteeConsumedByRecovery {
                mrn,
                amount_consumed,
                amount_released,
            } => {
                // The whole reservation leaves the exposure: part of it was paid out, the rest
                // is freed. Consumption is tracked on its own for the guarantor's accounts.
                self.release_reservation(
                    mrn,
                    amount_consumed
                        .amount_minor()
                        .saturating_add(amount_released.amount_minor()),
                );
                self.consumed_total_minor = self
                    .consumed_total_minor
                    .saturating_add(amount_consumed.amount_minor());
            }
        }
    }

    fn release_reservation(&mut self, mrn: &Mrn, amount_minor: i64) {
        if let Some(entry) = self.reservations.get_mut(mrn) {
            *entry = entry.saturating_sub(amount_minor).max(0);
            if *entry == 0 {
                self.reservations.remove(mrn);
            }
        }
        self.reserved_total_minor = self
            .reserved_total_minor
            .saturating_sub(amount_minor)
            .max(0);
    }

    /// Folds a whole stream.
    pub fn from_events<'a>(
        events: impl IntoIterator<Item = (&'a EventMeta, &'a GuaranteeEvent)>,
    ) -> Self {
        let mut state = Self::default();
        for (meta, event) in events {
            state.apply(meta, event);
        }
        state
    }

    /// Whether the guarantee was registered.
    pub fn is_registered(&self) -> bool {
        self.registration.is_some()
    }

    /// The registration facts.
    pub fn registration(&self) -> Option<&GuaranteeRecord> {
        self.registration.as_ref()
    }

    /// The guarantee reference, once registered.
    pub fn grn(&self) -> Option<&GuaranteeReference> {
        self.registration.as_ref().map(|r| &r.grn)
    }

    /// The credit limit.
    pub fn reference_amount(&self) -> Option<&Money> {
        self.registration.as_ref().map(|r| &r.reference_amount)
    }

    fn money(&self, amount_minor: i64) -> Option<Money> {
        let currency = self.registration.as_ref()?.reference_amount.currency();
        Money::new(amount_minor, currency.clone()).ok()
    }

    /// The exposure currently reserved by released movements.
    pub fn reserved_total(&self) -> Option<Money> {
        self.money(self.reserved_total_minor)
    }

    /// What recoveries have consumed so far.
    pub fn consumed_total(&self) -> Option<Money> {
        self.money(self.consumed_total_minor)
    }

    /// What is left to reserve: reference amount minus reserved exposure (never negative).
    pub fn headroom(&self) -> Option<Money> {
        let reference = self.registration.as_ref()?.reference_amount.amount_minor();
        self.money(reference.saturating_sub(self.reserved_total_minor).max(0))
    }

    /// The exposure reserved for one movement.
    pub fn reservation(&self, mrn: &Mrn) -> Option<Money> {
        self.reservations
            .get(mrn)
            .and_then(|amount| self.money(*amount))
    }

    /// The movements with exposure reserved now.
    pub fn reserved_movements(&self) -> impl Iterator<Item = &Mrn> {
        self.reservations.keys()
    }

    /// The digest (hex) of the message that produced events here under `id`, if any.
    pub fn processed_digest(&self, id: &MessageId) -> Option<&str> {
        self.processed.get(id).map(String::as_str)
    }

    /// The number of events folded.
    pub fn version_hint(&self) -> u64 {
        self.events_applied
    }
}
