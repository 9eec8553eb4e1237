//! The regional transit database: one record per movement (status, the time of each step,
//! planned versus actual offices, parties, vehicle, goods, seals at each checkpoint,
//! incidents, guarantee, corridor, history with positions), and the queries analysts run on it.
//!
//! Movement facts (status, the declaration as amended, release, crossings, arrivals) come from
//! [`MovementState`], the same fold the rules use, so the view never disagrees with the ledger
//! about what a movement is; the record adds what the rules do not keep (times, seals at each
//! checkpoint, incidents, history).

use std::collections::BTreeMap;
use std::ops::Bound;

use serde::{Deserialize, Serialize};
use transit_contract::events::MovementEvent;
use transit_contract::ids::{
    CountryCode, GuaranteeReference, HsCode, Money, Mrn, OfficeCode, SealId, Timestamp, TraderId,
    VehicleId,
};
use transit_contract::messages::{IncidentCode, MeansOfTransport, Place, Trader};
use transit_rules::{MovementState, MovementStatus};

use crate::{canonical_hash, Corridor, CountryPair, LedgerEvent, ParseError};

/// The largest page [`MovementsView::list`] returns; a larger `first` is refused.
pub const MOVEMENTS_PAGE_MAX: usize = 100;

/// Where a movement stands (mirrors [`MovementStatus`], in a serialisable form).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Status {
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

impl From<MovementStatus> for Status {
    fn from(s: MovementStatus) -> Self {
        match s {
            MovementStatus::Unknown => Self::Unknown,
            MovementStatus::Declared => Self::Declared,
            MovementStatus::Released => Self::Released,
            MovementStatus::Arrived => Self::Arrived,
            MovementStatus::Controlled => Self::Controlled,
            MovementStatus::Discharged => Self::Discharged,
            MovementStatus::NotReleased => Self::NotReleased,
            MovementStatus::Cancelled => Self::Cancelled,
            MovementStatus::UnderEnquiry => Self::UnderEnquiry,
            MovementStatus::Recovered => Self::Recovered,
        }
    }
}

/// A movement changed: what the `movementUpdated` subscription publishes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub mrn: Mrn,
    pub position: u64,
    pub event_type: &'static str,
    pub status: Status,
}

/// A recorded passage at an office of transit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CrossingStep {
    pub position: u64,
    pub office: OfficeCode,
    pub crossed_at: Timestamp,
    pub declared_office: bool,
    pub seals_intact: bool,
}

/// When each step of the lifecycle happened (business time as reported; `None`: not yet).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Steps {
    pub declared_at: Option<Timestamp>,
    pub released_at: Option<Timestamp>,
    pub release_refused_at: Option<Timestamp>,
    pub cancelled_at: Option<Timestamp>,
    pub crossings: Vec<CrossingStep>,
    pub destination_changed_at: Option<Timestamp>,
    /// The first arrival reported (more than one arrival is in `history` and `actual`).
    pub arrived_at: Option<Timestamp>,
    pub controlled_at: Option<Timestamp>,
    pub discharged_at: Option<Timestamp>,
    pub enquiry_opened_at: Option<Timestamp>,
    pub enquiry_answered_at: Option<Timestamp>,
    pub recovered_at: Option<Timestamp>,
}

/// The offices as declared (after amendments and destination changes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlannedOffices {
    pub departure: OfficeCode,
    pub transit: Vec<OfficeCode>,
    pub destination: OfficeCode,
    /// The destination of the original declaration, kept to show a diversion.
    pub destination_declared: OfficeCode,
}

/// The offices where passages and arrivals were actually recorded, in recording order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ActualOffices {
    pub transit: Vec<OfficeCode>,
    pub destination: Vec<OfficeCode>,
}

/// What the goods are, in sum.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GoodsSummary {
    /// Distinct HS codes, sorted.
    pub hs_codes: Vec<HsCode>,
    pub gross_mass_g_total: u64,
    pub packages_total: u32,
}

/// Where seals were declared, observed or found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Checkpoint {
    /// Declared at departure (or replaced by an amendment before release).
    Departure,
    /// Observed at an office of transit.
    Crossing,
    /// New seals affixed after an incident.
    Incident,
    /// Found at destination control.
    Destination,
}

/// The seals at one checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SealCheckpoint {
    pub position: u64,
    pub checkpoint: Checkpoint,
    pub office: Option<OfficeCode>,
    pub seals: Vec<SealId>,
    /// Whether the seals were found intact (`None` at departure, where they are affixed).
    pub intact: Option<bool>,
}

/// An incident en route.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IncidentEntry {
    pub position: u64,
    pub code: IncidentCode,
    pub place: Place,
    pub occurred_at: Timestamp,
    pub new_seals: Vec<SealId>,
    pub new_transport: Option<MeansOfTransport>,
    pub description: String,
}

/// The findings of destination control.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ControlEntry {
    pub position: u64,
    pub office: OfficeCode,
    pub conform: bool,
    pub seals_intact: bool,
    pub gross_mass_g_found: Option<u64>,
    pub packages_found: Option<u32>,
    pub remarks: String,
}

/// One event of the movement's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HistoryEntry {
    pub position: u64,
    pub event_type: String,
    pub occurred_at: Timestamp,
    pub recorded_at: Timestamp,
    pub anomaly: Option<String>,
}

/// One movement of the regional transit database.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MovementRecord {
    pub mrn: Mrn,
    pub status: Status,
    /// The position of the declaration, or of the first event while none is recorded: the
    /// listing order and the pagination cursor.
    pub listing_position: u64,
    pub declaration_position: Option<u64>,
    pub steps: Steps,
    pub planned: Option<PlannedOffices>,
    pub actual: ActualOffices,
    pub countries_of_routing: Vec<CountryCode>,
    pub itinerary_binding: Option<bool>,
    pub time_limit: Option<Timestamp>,
    pub holder: Option<Trader>,
    pub carrier: Option<Trader>,
    /// The current means of transport (replaced by an incident with a new vehicle).
    pub vehicle: Option<MeansOfTransport>,
    pub goods: Option<GoodsSummary>,
    pub seals: Vec<SealCheckpoint>,
    pub incidents: Vec<IncidentEntry>,
    pub control: Option<ControlEntry>,
    pub guarantee: Option<GuaranteeReference>,
    pub amount_reserved: Option<Money>,
    pub corridor: Option<Corridor>,
    pub country_pair: Option<CountryPair>,
    pub history: Vec<HistoryEntry>,
}

impl MovementRecord {
    fn new(mrn: Mrn, position: u64) -> Self {
        MovementRecord {
            mrn,
            status: Status::Unknown,
            listing_position: position,
            declaration_position: None,
            steps: Steps::default(),
            planned: None,
            actual: ActualOffices::default(),
            countries_of_routing: Vec::new(),
            itinerary_binding: None,
            time_limit: None,
            holder: None,
            carrier: None,
            vehicle: None,
            goods: None,
            seals: Vec::new(),
            incidents: Vec::new(),
            control: None,
            guarantee: None,
            amount_reserved: None,
            corridor: None,
            country_pair: None,
            history: Vec::new(),
        }
    }

    /// Whether any event of the movement was recorded out of sequence.
    pub fn has_anomalies(&self) -> bool {
        self.history.iter().any(|h| h.anomaly.is_some())
    }

    /// Every office the movement names or was seen at, in any role.
    pub fn offices(&self) -> impl Iterator<Item = &OfficeCode> {
        let planned = self.planned.iter().flat_map(|p| {
            std::iter::once(&p.departure)
                .chain(p.transit.iter())
                .chain([&p.destination, &p.destination_declared])
        });
        planned
            .chain(self.actual.transit.iter())
            .chain(self.actual.destination.iter())
    }

    /// Refreshes what the rules' fold knows better than the view.
    fn refresh_from(&mut self, state: &MovementState) {
        self.status = state.status().into();
        if let Some(d) = state.declaration() {
            let destination_declared = self.planned.as_ref().map_or_else(
                || d.office_of_destination.clone(),
                |p| p.destination_declared.clone(),
            );
            self.planned = Some(PlannedOffices {
                departure: d.office_of_departure.clone(),
                transit: d.transit_offices().cloned().collect(),
                destination: d.office_of_destination.clone(),
                destination_declared,
            });
            self.countries_of_routing = d.countries_of_routing.clone();
            self.itinerary_binding = Some(d.itinerary_binding);
            self.time_limit = Some(d.time_limit);
            self.holder = Some(d.holder.clone());
            self.carrier = d.carrier.clone();
            self.vehicle = Some(d.transport.clone());
            let mut hs_codes: Vec<HsCode> = d.goods.iter().map(|g| g.hs_code.clone()).collect();
            hs_codes.sort();
            hs_codes.dedup();
            self.goods = Some(GoodsSummary {
                hs_codes,
                gross_mass_g_total: d.gross_mass_g_total(),
                packages_total: d.packages_total(),
            });
            let corridor = Corridor::new(
                d.office_of_departure.clone(),
                d.office_of_destination.clone(),
            );
            self.country_pair = Some(corridor.country_pair());
            self.corridor = Some(corridor);
        }
        self.guarantee = state.guarantee().cloned();
        self.amount_reserved = state.reserved_amount().cloned();
        self.actual = ActualOffices {
            transit: state.crossings().iter().map(|c| c.office.clone()).collect(),
            destination: state.arrivals().iter().map(|a| a.office.clone()).collect(),
        };
    }

    /// Records what only this event says (times, seals, incidents, control findings).
    fn record_event(&mut self, position: u64, occurred_at: Timestamp, event: &MovementEvent) {
        let steps = &mut self.steps;
        match event {
            MovementEvent::TransitDeclared { declaration } => {
                steps.declared_at = Some(occurred_at);
                self.declaration_position = Some(position);
                self.seals.push(SealCheckpoint {
                    position,
                    checkpoint: Checkpoint::Departure,
                    office: Some(declaration.office_of_departure.clone()),
                    seals: declaration.seals().cloned().collect(),
                    intact: None,
                });
            }
            MovementEvent::TransitReleased { released_at, .. } => {
                steps.released_at = Some(*released_at);
            }
            MovementEvent::ReleaseRefused { .. } => steps.release_refused_at = Some(occurred_at),
            MovementEvent::AnticipatedRecordsDispatched { .. } => {}
            MovementEvent::BorderCrossed {
                office,
                crossed_at,
                declared_office,
                seals_intact,
                seals_observed,
            } => {
                steps.crossings.push(CrossingStep {
                    position,
                    office: office.clone(),
                    crossed_at: *crossed_at,
                    declared_office: *declared_office,
                    seals_intact: *seals_intact,
                });
                self.seals.push(SealCheckpoint {
                    position,
                    checkpoint: Checkpoint::Crossing,
                    office: Some(office.clone()),
                    seals: seals_observed.clone(),
                    intact: Some(*seals_intact),
                });
            }
            MovementEvent::IncidentRecorded {
                code,
                place,
                occurred_at,
                new_seals,
                new_transport,
                description,
                ..
            } => {
                self.incidents.push(IncidentEntry {
                    position,
                    code: *code,
                    place: place.clone(),
                    occurred_at: *occurred_at,
                    new_seals: new_seals.clone(),
                    new_transport: new_transport.clone(),
                    description: description.clone(),
                });
                if !new_seals.is_empty() {
                    self.seals.push(SealCheckpoint {
                        position,
                        checkpoint: Checkpoint::Incident,
                        office: None,
                        seals: new_seals.clone(),
                        intact: None,
                    });
                }
            }
            MovementEvent::DestinationChanged { .. } => {
                steps.destination_changed_at = Some(occurred_at);
            }
            MovementEvent::ArrivalRecorded { arrived_at, .. } => {
                steps.arrived_at.get_or_insert(*arrived_at);
            }
            MovementEvent::ControlResultsRecorded {
                office,
                conform,
                seals_intact,
                seals_found,
                gross_mass_g_found,
                packages_found,
                remarks,
            } => {
                steps.controlled_at = Some(occurred_at);
                self.seals.push(SealCheckpoint {
                    position,
                    checkpoint: Checkpoint::Destination,
                    office: Some(office.clone()),
                    seals: seals_found.clone(),
                    intact: Some(*seals_intact),
                });
                self.control = Some(ControlEntry {
                    position,
                    office: office.clone(),
                    conform: *conform,
                    seals_intact: *seals_intact,
                    gross_mass_g_found: *gross_mass_g_found,
                    packages_found: *packages_found,
                    remarks: remarks.clone(),
                });
            }
            MovementEvent::TransitDischarged { .. } => steps.discharged_at = Some(occurred_at),
            MovementEvent::DeclarationCancelled { .. } => steps.cancelled_at = Some(occurred_at),
            MovementEvent::DeclarationAmended { changes } => {
                // New seals declared before release replace the departure seals.
                if let Some(equipment) = &changes.equipment {
                    self.seals.push(SealCheckpoint {
                        position,
                        checkpoint: Checkpoint::Departure,
                        office: self.planned.as_ref().map(|p| p.departure.clone()),
                        seals: equipment
                            .iter()
                            .flat_map(|e| e.seals.iter())
                            .cloned()
                            .collect(),
                        intact: None,
                    });
                }
            }
            MovementEvent::EnquiryOpened { .. } => steps.enquiry_opened_at = Some(occurred_at),
            MovementEvent::EnquiryAnswered { .. } => steps.enquiry_answered_at = Some(occurred_at),
            MovementEvent::DutiesRecovered { .. } => steps.recovered_at = Some(occurred_at),
        }
    }
}

/// An HS filter: a whole 6-digit code, a 4-digit heading or a 2-digit chapter.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HsPrefix(String);

impl HsPrefix {
    /// Whether `code` falls under this prefix.
    pub fn matches(&self, code: &HsCode) -> bool {
        code.as_str().starts_with(&self.0)
    }
}

impl std::str::FromStr for HsPrefix {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, ParseError> {
        if matches!(s.len(), 2 | 4 | 6) && s.bytes().all(|b| b.is_ascii_digit()) {
            Ok(HsPrefix(s.to_owned()))
        } else {
            Err(ParseError::HsPrefix(s.to_owned()))
        }
    }
}

/// Filters of [`MovementsView::list`]; every field set must match (`None`: any).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MovementFilter {
    pub status: Option<Status>,
    /// An office in any role: departure, transit, destination (planned or actual).
    pub office: Option<OfficeCode>,
    /// A country of any office, or a country of routing.
    pub country: Option<CountryCode>,
    pub corridor: Option<Corridor>,
    pub country_pair: Option<CountryPair>,
    /// Declared at or after (business time of the declaration).
    pub declared_from: Option<Timestamp>,
    /// Declared strictly before.
    pub declared_until: Option<Timestamp>,
    pub holder: Option<TraderId>,
    pub vehicle: Option<VehicleId>,
    pub hs: Option<HsPrefix>,
    pub has_anomalies: Option<bool>,
}

impl MovementFilter {
    /// Whether `r` passes every filter set.
    pub fn matches(&self, r: &MovementRecord) -> bool {
        if !opt_eq(&self.status, Some(&r.status))
            || !opt_eq(&self.corridor, r.corridor.as_ref())
            || !opt_eq(&self.country_pair, r.country_pair.as_ref())
            || !opt_eq(&self.holder, r.holder.as_ref().map(|h| &h.id))
            || !opt_eq(&self.vehicle, r.vehicle.as_ref().map(|v| &v.identity))
            || !opt_eq(&self.has_anomalies, Some(&r.has_anomalies()))
        {
            return false;
        }
        if let Some(office) = &self.office {
            if !r.offices().any(|o| o == office) {
                return false;
            }
        }
        if let Some(country) = &self.country {
            let by_office = r.offices().any(|o| &o.country() == country);
            if !by_office && !r.countries_of_routing.contains(country) {
                return false;
            }
        }
        if self.declared_from.is_some() || self.declared_until.is_some() {
            let Some(at) = r.steps.declared_at else {
                return false;
            };
            if self.declared_from.is_some_and(|from| at < from)
                || self.declared_until.is_some_and(|until| at >= until)
            {
                return false;
            }
        }
        if let Some(hs) = &self.hs {
            let any = r
                .goods
                .as_ref()
                .is_some_and(|g| g.hs_codes.iter().any(|c| hs.matches(c)));
            if !any {
                return false;
            }
        }
        true
    }
}

/// Whether an optional filter passes: unset, or equal to the value.
fn opt_eq<T: PartialEq>(want: &Option<T>, got: Option<&T>) -> bool {
    want.as_ref().is_none_or(|w| got == Some(w))
}

/// Why a query was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    #[error("page size {first} is above the maximum {max}")]
    PageTooLarge { first: usize, max: usize },
}

/// One page of movements, in listing order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MovementPage<'a> {
    pub items: Vec<&'a MovementRecord>,
    /// The cursor to pass as `after` for the next page (the last item's listing position).
    pub end_cursor: Option<u64>,
    pub has_next_page: bool,
}

#[derive(Debug, Clone)]
struct Entry {
    state: MovementState,
    record: MovementRecord,
}

/// The regional transit database.
#[derive(Debug, Clone, Default)]
pub struct MovementsView {
    movements: BTreeMap<Mrn, Entry>,
    /// Listing position -> movement: the order of [`Self::list`].
    order: BTreeMap<u64, Mrn>,
    last_position: Option<u64>,
}

impl MovementsView {
    /// An empty view.
    pub fn new() -> Self {
        Self::default()
    }

    /// The position of the last event applied.
    pub fn last_position(&self) -> Option<u64> {
        self.last_position
    }

    /// Folds one event of the feed; says which movement changed (none for guarantee events,
    /// and for an event at or below the last applied position).
    pub fn apply(&mut self, ev: &LedgerEvent<'_>) -> Vec<Change> {
        if self.last_position.is_some_and(|last| ev.position() <= last) {
            return Vec::new();
        }
        self.last_position = Some(ev.position());
        let LedgerEvent::Movement {
            position,
            mrn,
            meta,
            event,
        } = *ev
        else {
            return Vec::new();
        };
        let entry = self.movements.entry(mrn.clone()).or_insert_with(|| Entry {
            state: MovementState::default(),
            record: MovementRecord::new(mrn.clone(), position),
        });
        if entry.record.history.is_empty() {
            self.order.insert(position, mrn.clone());
        }
        entry.state.apply(meta, event);
        entry.record.history.push(HistoryEntry {
            position,
            event_type: event.event_type().to_owned(),
            occurred_at: meta.occurred_at,
            recorded_at: meta.recorded_at,
            anomaly: meta.anomaly.clone(),
        });
        entry.record.record_event(position, meta.occurred_at, event);
        entry.record.refresh_from(&entry.state);
        // The listing follows the declaration once there is one, so a movement first seen
        // through an early observation moves to where its declaration was recorded.
        if let Some(declared) = entry.record.declaration_position {
            if entry.record.listing_position != declared {
                self.order.remove(&entry.record.listing_position);
                entry.record.listing_position = declared;
                self.order.insert(declared, mrn.clone());
            }
        }
        vec![Change {
            mrn: mrn.clone(),
            position,
            event_type: event.event_type(),
            status: entry.record.status,
        }]
    }

    /// One movement.
    pub fn get(&self, mrn: &Mrn) -> Option<&MovementRecord> {
        self.movements.get(mrn).map(|e| &e.record)
    }

    /// The number of movements known.
    pub fn len(&self) -> usize {
        self.movements.len()
    }

    /// Whether no movement is known.
    pub fn is_empty(&self) -> bool {
        self.movements.is_empty()
    }

    /// Movements passing `filter`, in listing order (declaration position), `first` at most
    /// (at most [`MOVEMENTS_PAGE_MAX`]), after the cursor `after` (exclusive).
    ///
    /// The scan walks the listing order and tests each record, so a very selective filter
    /// reads many records; secondary indexes are the next step when volumes call for it.
    pub fn list(
        &self,
        filter: &MovementFilter,
        first: usize,
        after: Option<u64>,
    ) -> Result<MovementPage<'_>, QueryError> {
        if first > MOVEMENTS_PAGE_MAX {
            return Err(QueryError::PageTooLarge {
                first,
                max: MOVEMENTS_PAGE_MAX,
            });
        }
        let start = after.map_or(Bound::Unbounded, Bound::Excluded);
        let mut matching = self
            .order
            .range((start, Bound::Unbounded))
            .filter_map(|(_, mrn)| self.get(mrn))
            .filter(|r| filter.matches(r));
        let items: Vec<&MovementRecord> = matching.by_ref().take(first).collect();
        let has_next_page = matching.next().is_some();
        Ok(MovementPage {
            end_cursor: items.last().map(|r| r.listing_position),
            items,
            has_next_page,
        })
    }

    /// SHA-256 of the canonical serialisation of every record and the last position.
    pub fn state_hash(&self) -> [u8; 32] {
        let records: BTreeMap<&str, &MovementRecord> = self
            .movements
            .iter()
            .map(|(mrn, e)| (mrn.as_str(), &e.record))
            .collect();
        canonical_hash(&(self.last_position, records))
    }
}
