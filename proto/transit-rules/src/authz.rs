//! Authorization: which administration may record which fact.
//!
//! The sender is authenticated before the rules run (its submission signature was made by a key
//! of `msg.sender.country`, and `validate()` checked that `sender.office` is in that country).
//! [`authorize`] then checks that this country may record what the message says. A country
//! records only what its own offices did: the office a message names (a crossing office, an
//! arrival office...) must be in the sender's country, and each act belongs to the
//! administration responsible for it.
//!
//! | message | who may send it | code when refused |
//! |---|---|---|
//! | GuaranteeRegistration | the country where the guarantee was accepted: the GRN's country | `FORBIDDEN_OFFICE` |
//! | TransitDeclaration | the country of the office of departure (= the MRN's country) | `NOT_DEPARTURE_COUNTRY` |
//! | ReleaseForTransit, NoReleaseForTransit | the country of departure | `NOT_DEPARTURE_COUNTRY` |
//! | Cancellation, Amendment | the country of departure | `NOT_DEPARTURE_COUNTRY` |
//! | DestinationChange | the country of departure (it re-routes its movement; the new destination learns it from the fan-out) | `NOT_DEPARTURE_COUNTRY` |
//! | Discharge, EnquiryRequest, Recovery | the country of departure | `NOT_DEPARTURE_COUNTRY` |
//! | BorderCrossing | the country of the crossing office named in the message (declared or not: a crossing at an undeclared office is a diversion worth recording) | `FORBIDDEN_OFFICE` |
//! | ArrivalNotification, ControlResults | the country of the office named in the message, which must be the country of the (current) office of destination | `FORBIDDEN_OFFICE`, `NOT_DESTINATION_COUNTRY` |
//! | Incident | a country the movement is known to pass through: departure, the offices of transit, the (current) destination, the countries of routing, or where a crossing or an arrival was already recorded (the message names no office: the sender's office recorded it) | `NOT_ROUTE_COUNTRY` |
//! | EnquiryResponse, outcome GoodsArrived | the country of destination, and the office named must be in it (only the country where the goods arrived can attest it: a departure country "finding" an arrival abroad is the fictitious-transit pattern) | `FORBIDDEN_OFFICE`, `NOT_DESTINATION_COUNTRY` |
//! | EnquiryResponse, other outcomes | the country of departure (recording the holder's answer, NCTS IE141) or of destination (IE143) | `NOT_DESTINATION_COUNTRY` |
//!
//! "Country of departure" is the country of the declaration's office of departure, and before
//! the declaration is known the MRN's country (a declaration is only accepted when the two
//! agree), so departure acts are checked even for a movement the ledger has not seen.
//! "Destination" is the current office of destination: as declared, amended, or changed by a
//! `DestinationChange`.
//!
//! Messages may arrive before their declaration (an arrival or a crossing overtaking it). Then
//! only what the message itself shows can be checked: the office it names is in the sender's
//! country, and departure acts come from the MRN's country. The destination and route rules
//! need the declaration and are skipped; the observation is recorded (flagged out of sequence
//! by the rules) and the views and fraud signals see who sent it.
//!
//! Authorization runs after validation and before any state rule, so a sender that may not act
//! on a movement learns nothing about it (not even whether a message id is taken). The one
//! exception is an exact redelivery of a recorded message: it is answered as a duplicate, as
//! before, since its sender was authorized when it was first recorded.
//!
//! Every refusal has the kind [`RejectionKind::Forbidden`](crate::RejectionKind::Forbidden)
//! (HTTP 403).

use std::collections::BTreeSet;

use transit_contract::ids::{CountryCode, Mrn, OfficeCode};
use transit_contract::messages::{EnquiryOutcome, InboundMessage, MessageBody};

use crate::decide::{Rejection, RejectionCode};
use crate::state::{GuaranteeState, MovementState};

/// Whether `msg.sender` may record what `msg` says about this movement (see the module docs).
///
/// `movement` is the state of the movement stream of `msg.mrn()` (default for a guarantee
/// registration or an unknown movement). `guarantee` is the state named by
/// `guarantee_needed`; no rule reads it today (a guarantee registration is placed by its GRN),
/// it is taken so that a rule about who may draw on a guarantee has a home.
pub fn authorize(
    msg: &InboundMessage,
    movement: &MovementState,
    _guarantee: Option<&GuaranteeState>,
) -> Result<(), Rejection> {
    let a = Authz { msg, movement };
    match &msg.body {
        MessageBody::GuaranteeRegistration(g) => {
            let country = g.grn.country();
            if country != msg.sender.country {
                return Err(Rejection::new(
                    RejectionCode::ForbiddenOffice,
                    format!(
                        "guarantee {} was accepted in {country} (its GRN's country); {} may not \
                         register it",
                        g.grn,
                        a.sender()
                    ),
                ));
            }
            Ok(())
        }
        MessageBody::TransitDeclaration(d) => {
            let country = d.office_of_departure.country();
            if country != msg.sender.country {
                return Err(Rejection::new(
                    RejectionCode::NotDepartureCountry,
                    format!(
                        "TransitDeclaration of {} departs from {} in {country}; only {country} \
                         may declare it, not {}",
                        d.mrn,
                        d.office_of_departure,
                        a.sender()
                    ),
                ));
            }
            Ok(())
        }
        MessageBody::ReleaseForTransit(b) => a.departure_only(&b.mrn),
        MessageBody::NoReleaseForTransit(b) => a.departure_only(&b.mrn),
        MessageBody::Cancellation(b) => a.departure_only(&b.mrn),
        MessageBody::Amendment(b) => a.departure_only(&b.mrn),
        MessageBody::DestinationChange(b) => a.departure_only(&b.mrn),
        MessageBody::Discharge(b) => a.departure_only(&b.mrn),
        MessageBody::EnquiryRequest(b) => a.departure_only(&b.mrn),
        MessageBody::Recovery(b) => a.departure_only(&b.mrn),
        MessageBody::BorderCrossing(b) => a.own_office("the crossing", &b.office),
        MessageBody::ArrivalNotification(b) => {
            a.own_office("the arrival", &b.office)?;
            a.destination_only()
        }
        MessageBody::ControlResults(b) => {
            a.own_office("the control", &b.office)?;
            a.destination_only()
        }
        MessageBody::Incident(b) => a.on_route(&b.mrn),
        MessageBody::EnquiryResponse(b) => match &b.outcome {
            EnquiryOutcome::GoodsArrived { office, .. } => {
                a.own_office("the arrival found by the enquiry", office)?;
                a.destination_only()
            }
            EnquiryOutcome::GoodsNotArrived | EnquiryOutcome::Unknown => {
                a.departure_or_destination(&b.mrn)
            }
        },
    }
}

struct Authz<'a> {
    msg: &'a InboundMessage,
    movement: &'a MovementState,
}

impl Authz<'_> {
    fn sender(&self) -> String {
        format!(
            "{} (office {})",
            self.msg.sender.country, self.msg.sender.office
        )
    }

    /// The country of departure: the declared office of departure's, else the MRN's.
    fn departure(&self, mrn: &Mrn) -> (CountryCode, String) {
        match self.movement.declaration() {
            Some(d) => (
                d.office_of_departure.country(),
                format!("office of departure {}", d.office_of_departure),
            ),
            None => (mrn.country(), format!("the MRN {mrn}")),
        }
    }

    /// The current office of destination, once the declaration is known.
    fn destination(&self) -> Option<&OfficeCode> {
        self.movement
            .declaration()
            .map(|d| &d.office_of_destination)
    }

    fn departure_only(&self, mrn: &Mrn) -> Result<(), Rejection> {
        let (country, why) = self.departure(mrn);
        if country == self.msg.sender.country {
            return Ok(());
        }
        Err(Rejection::new(
            RejectionCode::NotDepartureCountry,
            format!(
                "{} for {mrn} belongs to the country of departure {country} ({why}), not to {}",
                self.msg.kind(),
                self.sender()
            ),
        ))
    }

    /// The office `office` where `what` happened must be one of the sender country's offices.
    fn own_office(&self, what: &str, office: &OfficeCode) -> Result<(), Rejection> {
        if office.country() == self.msg.sender.country {
            return Ok(());
        }
        Err(Rejection::new(
            RejectionCode::ForbiddenOffice,
            format!(
                "{}: {what} is at {office} in {}; {} may only record what its own offices did",
                self.msg.kind(),
                office.country(),
                self.sender()
            ),
        ))
    }

    /// Only the country of the current destination (checked once the declaration is known).
    fn destination_only(&self) -> Result<(), Rejection> {
        let Some(destination) = self.destination() else {
            return Ok(());
        };
        if destination.country() == self.msg.sender.country {
            return Ok(());
        }
        Err(Rejection::new(
            RejectionCode::NotDestinationCountry,
            format!(
                "{} belongs to the country of destination {} (office of destination {destination}), \
                 not to {}",
                self.msg.kind(),
                destination.country(),
                self.sender()
            ),
        ))
    }

    fn departure_or_destination(&self, mrn: &Mrn) -> Result<(), Rejection> {
        let (departure, _) = self.departure(mrn);
        if departure == self.msg.sender.country {
            return Ok(());
        }
        let Some(destination) = self.destination() else {
            return Ok(());
        };
        if destination.country() == self.msg.sender.country {
            return Ok(());
        }
        Err(Rejection::new(
            RejectionCode::NotDestinationCountry,
            format!(
                "{} for {mrn} comes from the country of departure {departure} or of destination \
                 {} (office {destination}), not from {}",
                self.msg.kind(),
                destination.country(),
                self.sender()
            ),
        ))
    }

    /// The sender's country must be one the movement is known to pass through.
    fn on_route(&self, mrn: &Mrn) -> Result<(), Rejection> {
        let Some(d) = self.movement.declaration() else {
            return Ok(());
        };
        let mut route: BTreeSet<CountryCode> = BTreeSet::new();
        route.insert(mrn.country());
        route.insert(d.office_of_departure.country());
        route.extend(d.transit_offices().map(OfficeCode::country));
        route.insert(d.office_of_destination.country());
        route.extend(d.countries_of_routing.iter().cloned());
        route.extend(self.movement.crossings().iter().map(|c| c.office.country()));
        route.extend(self.movement.arrivals().iter().map(|a| a.office.country()));
        if route.contains(&self.msg.sender.country) {
            return Ok(());
        }
        let route: Vec<&str> = route.iter().map(CountryCode::as_str).collect();
        Err(Rejection::new(
            RejectionCode::NotRouteCountry,
            format!(
                "{} for {mrn}: {} is not on the movement's route ({}) and recorded no crossing \
                 or arrival of it",
                self.msg.kind(),
                self.sender(),
                route.join(", ")
            ),
        ))
    }
}
