//! The regional transit database: one record per movement (status, the time of each step,
//! planned versus actual offices, parties, vehicle, goods, seals at each checkpoint,
//! incidents, guarantee, corridor, history with positions), and the queries analysts run on it.
//!
//! Movement facts (status, the declaration as amended, release, crossings, arrivals) come from
//! [`MovementState`], the same fold the rules use, so the view never disagrees with the ledger
//! about what a movement is; the record adds what the rules do not keep (times, seals at each
//! checkpoint, incidents, history).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use transit_contract::events::MovementEvent;
use transit_contract::ids::{
    CountryCode, GuaranteeReference, HsCode, Money, Mrn, OfficeCode, SealId, Timestamp, TraderId,
    VehicleId,
};
use transit_contract::messages::{IncidentCode, MeansOfTransport, Place, Trader};
use transit_rules::{MovementState, MovementStatus};

use crate::fast_map::FastMap;
use crate::{canonical_hash, Corridor, CountryPair, LedgerEvent, ParseError};

mod index;
#[cfg(test)]
mod tests;

use index::{Indexes, Intersection, KeySource, Keys, Source, Window};

/// The largest page [`MovementsView::list`] returns; a larger `first` is refused.
pub const MOVEMENTS_PAGE_MAX: usize = 100;

/// The most movements of a declaration window that [`MovementsView::list`] reads and sorts
/// into a candidate list; a larger window only bounds the walk (reading it all would cost
/// more than walking the listing order between its first and last movement). Tests use a
/// small value, so that the generated logs go through both ways.
const DECLARED_WINDOW_SORTED_MAX: usize = if cfg!(test) { 64 } else { 16_384 };

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

    /// Refreshes what the rules' fold knows better than the view, after `event` was folded
    /// into `state`. Only what the event can change is copied again: the declaration changes
    /// only with a declaration, an amendment, a destination change or an incident with a new
    /// vehicle; the guarantee with a declaration or a release; the offices seen with a
    /// crossing or an arrival. Copying the declaration's parties, vehicle and goods on every
    /// event was most of the cost of an apply.
    fn refresh_from(&mut self, state: &MovementState, event: &MovementEvent) {
        self.status = state.status().into();
        let (declaration, guarantee, actual) = match event {
            MovementEvent::TransitDeclared { .. } => (true, true, false),
            MovementEvent::DeclarationAmended { .. } | MovementEvent::DestinationChanged { .. } => {
                (true, false, false)
            }
            MovementEvent::IncidentRecorded { new_transport, .. } => {
                (new_transport.is_some(), false, false)
            }
            MovementEvent::TransitReleased { .. } => (false, true, false),
            MovementEvent::BorderCrossed { .. } | MovementEvent::ArrivalRecorded { .. } => {
                (false, false, true)
            }
            MovementEvent::ReleaseRefused { .. }
            | MovementEvent::AnticipatedRecordsDispatched { .. }
            | MovementEvent::ControlResultsRecorded { .. }
            | MovementEvent::TransitDischarged { .. }
            | MovementEvent::DeclarationCancelled { .. }
            | MovementEvent::EnquiryOpened { .. }
            | MovementEvent::EnquiryAnswered { .. }
            | MovementEvent::DutiesRecovered { .. } => (false, false, false),
        };
        if guarantee {
            self.guarantee = state.guarantee().cloned();
            self.amount_reserved = state.reserved_amount().cloned();
        }
        if actual {
            // The fold appends one crossing or arrival per event: so does the record, rather
            // than copying every office seen again.
            match event {
                MovementEvent::BorderCrossed { office, .. } => {
                    self.actual.transit.push(office.clone());
                }
                MovementEvent::ArrivalRecorded { office, .. } => {
                    self.actual.destination.push(office.clone());
                }
                _ => {}
            }
            let in_step = self.actual.transit.len() == state.crossings().len()
                && self.actual.destination.len() == state.arrivals().len();
            debug_assert!(
                in_step,
                "invariant: the record lists every office the fold saw"
            );
            if !in_step {
                self.actual = ActualOffices {
                    transit: state.crossings().iter().map(|c| c.office.clone()).collect(),
                    destination: state.arrivals().iter().map(|a| a.office.clone()).collect(),
                };
            }
        }
        if !declaration {
            return;
        }
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
    /// Only these movements (e.g. those with an open fraud signal, which another projection
    /// knows).
    pub mrns: Option<BTreeSet<Mrn>>,
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
        if self.mrns.as_ref().is_some_and(|m| !m.contains(&r.mrn)) {
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

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Entry {
    state: MovementState,
    record: MovementRecord,
}

/// Where the answer to a filter can be: in every source (none: anywhere listed), between the
/// bounds (inclusive).
struct Candidates<'a> {
    /// Smallest first.
    sources: Vec<Source<'a>>,
    bounds: (u64, u64),
}

/// How a movement was filed in the indexes before an event: enough to unfile it.
struct Filed {
    position: u64,
    status: Status,
    anomalous: bool,
    /// Whether the event may change the keys or the position ([`Keys::may_change`]); only
    /// a declaration moves a movement, and it is among those.
    may_change: bool,
    /// What the keys come from, copied only when the event may change them, and always in
    /// debug builds (to check that the others really leave them alone).
    keys: Option<KeySource>,
}

/// The regional transit database.
///
/// Records are kept by listing position, so a page walks them in order without a lookup, and
/// found by MRN through a hash map (one probe, where a B-tree of MRN strings costs a dozen
/// string comparisons, each a cache miss at a million movements).
///
/// The whole view serialises, so the runner can snapshot it and restore it instead of
/// replaying the log; the MRN map is rebuilt on restore.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(from = "StoredView")]
pub struct MovementsView {
    /// Listing position -> movement: the order of [`Self::list`]. Boxed: an entry is about a
    /// kilobyte, and B-tree nodes keep room for eleven values, half of it empty when keys
    /// arrive in order.
    movements: BTreeMap<u64, Box<Entry>>,
    /// MRN -> listing position.
    #[serde(skip)]
    positions: FastMap<Mrn, u64>,
    /// Secondary indexes by listing position, for filtered pages.
    indexes: Indexes,
    last_position: Option<u64>,
}

/// A [`MovementsView`] as stored: everything but what is rebuilt on restore.
#[derive(Deserialize)]
struct StoredView {
    movements: BTreeMap<u64, Box<Entry>>,
    indexes: Indexes,
    last_position: Option<u64>,
}

impl From<StoredView> for MovementsView {
    fn from(stored: StoredView) -> Self {
        let positions = stored
            .movements
            .iter()
            .map(|(position, e)| (e.record.mrn.clone(), *position))
            .collect();
        MovementsView {
            movements: stored.movements,
            positions,
            indexes: stored.indexes,
            last_position: stored.last_position,
        }
    }
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
        let listed = self.positions.get(mrn).copied();
        let entry = self
            .movements
            .entry(listed.unwrap_or(position))
            .or_insert_with(|| {
                Box::new(Entry {
                    state: MovementState::default(),
                    record: MovementRecord::new(mrn.clone(), position),
                })
            });
        let filed = if listed.is_none() {
            self.positions.insert(mrn.clone(), position);
            None
        } else {
            let may_change = Keys::may_change(event, &entry.record);
            Some(Filed {
                position: entry.record.listing_position,
                status: entry.record.status,
                anomalous: entry.record.has_anomalies(),
                may_change,
                keys: (may_change || cfg!(debug_assertions)).then(|| KeySource::of(&entry.record)),
            })
        };
        entry.state.apply_fact(event);
        entry.record.history.push(HistoryEntry {
            position,
            event_type: event.event_type().to_owned(),
            occurred_at: meta.occurred_at,
            recorded_at: meta.recorded_at,
            anomaly: meta.anomaly.clone(),
        });
        entry.record.record_event(position, meta.occurred_at, event);
        entry.record.refresh_from(&entry.state, event);
        let change = Change {
            mrn: mrn.clone(),
            position,
            event_type: event.event_type(),
            status: entry.record.status,
        };
        // The listing follows the declaration once there is one, so a movement first seen
        // through an early observation moves to where its declaration was recorded.
        let listing = entry.record.listing_position;
        match entry.record.declaration_position {
            Some(declared) if declared != listing => {
                if let Some(mut moved) = self.movements.remove(&listing) {
                    moved.record.listing_position = declared;
                    if let Some(p) = self.positions.get_mut(mrn) {
                        *p = declared;
                    }
                    // The declaration's position is this movement's own event: no other
                    // movement is listed there.
                    debug_assert!(!self.movements.contains_key(&declared));
                    let entry = self.movements.entry(declared).or_insert(moved);
                    refile(&mut self.indexes, filed, &entry.record, event);
                }
            }
            _ => refile(&mut self.indexes, filed, &entry.record, event),
        }
        vec![change]
    }

    /// One movement.
    pub fn get(&self, mrn: &Mrn) -> Option<&MovementRecord> {
        let position = self.positions.get(mrn)?;
        self.movements.get(position).map(|e| &e.record)
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
    /// Candidates come from the secondary indexes: the posting sets of the filters set,
    /// intersected in listing order, plus the `mrns` restriction and the declaration window
    /// when they are no larger than the smallest posting set (a larger window only bounds
    /// the walk). Each candidate is then tested with [`MovementFilter::matches`], so the
    /// result is exactly that of a scan of the listing order; with no indexed filter the
    /// listing order itself is walked.
    pub fn list(
        &self,
        filter: &MovementFilter,
        first: usize,
        after: Option<u64>,
    ) -> Result<MovementPage<'_>, QueryError> {
        self.list_where(filter, first, after, |_| true)
    }

    /// [`Self::list`] with one more condition, tested on each candidate that passes `filter`:
    /// for what the view cannot index, such as "no open fraud signal", which another
    /// projection knows.
    pub fn list_where(
        &self,
        filter: &MovementFilter,
        first: usize,
        after: Option<u64>,
        mut keep: impl FnMut(&MovementRecord) -> bool,
    ) -> Result<MovementPage<'_>, QueryError> {
        if first > MOVEMENTS_PAGE_MAX {
            return Err(QueryError::PageTooLarge {
                first,
                max: MOVEMENTS_PAGE_MAX,
            });
        }
        let empty = MovementPage {
            items: Vec::new(),
            end_cursor: None,
            has_next_page: false,
        };
        let Some(Candidates {
            sources,
            bounds: (lowest, highest),
        }) = self.candidates(filter)
        else {
            return Ok(empty);
        };
        let Some(from) = after.map_or(Some(0), |a| a.checked_add(1)) else {
            return Ok(empty);
        };
        let from = from.max(lowest);
        if from > highest {
            return Ok(empty);
        }
        let candidates: Box<dyn Iterator<Item = &MovementRecord> + '_> = if sources.is_empty() {
            Box::new(self.movements.range(from..=highest).map(|(_, e)| &e.record))
        } else {
            Box::new(
                Intersection::new(sources, Some(from))
                    .take_while(move |p| *p <= highest)
                    .filter_map(|p| {
                        let entry = self.movements.get(&p);
                        debug_assert!(
                            entry.is_some(),
                            "invariant: position {p} is indexed and listed"
                        );
                        entry.map(|e| &e.record)
                    }),
            )
        };
        let mut matching = candidates.filter(|r| filter.matches(r) && keep(r));
        let items: Vec<&MovementRecord> = matching.by_ref().take(first).collect();
        let has_next_page = matching.next().is_some();
        Ok(MovementPage {
            end_cursor: items.last().map(|r| r.listing_position),
            items,
            has_next_page,
        })
    }

    /// Where the answer to `filter` can be: `None` when it is empty whatever the cursor.
    fn candidates(&self, filter: &MovementFilter) -> Option<Candidates<'_>> {
        let mut sources: Vec<Source<'_>> = self.indexes.postings(filter)?;
        // The MRN restriction and the declaration window cost a lookup or a step per member
        // to turn into sorted positions, so they lead only when no posting set is smaller.
        let smallest = |sources: &[Source<'_>]| {
            sources
                .iter()
                .map(Source::len)
                .min()
                .unwrap_or(self.movements.len())
        };
        if let Some(mrns) = &filter.mrns {
            if mrns.len() <= smallest(&sources) {
                let mut positions: Vec<u64> = mrns
                    .iter()
                    .filter_map(|m| self.positions.get(m).copied())
                    .collect();
                positions.sort_unstable();
                sources.push(Source::Sorted(positions));
            }
        }
        let mut bounds = (0, u64::MAX);
        if filter.declared_from.is_some() || filter.declared_until.is_some() {
            let limit = smallest(&sources).min(DECLARED_WINDOW_SORTED_MAX);
            match self
                .indexes
                .declared_between(filter.declared_from, filter.declared_until, limit)
            {
                Window::Empty => return None,
                Window::Positions(positions) => sources.push(Source::Sorted(positions)),
                Window::Bounds(lowest, highest) => bounds = (lowest, highest),
            }
        }
        sources.sort_by_key(Source::len);
        Some(Candidates { sources, bounds })
    }

    /// SHA-256 of the canonical serialisation of every record and the last position.
    pub fn state_hash(&self) -> [u8; 32] {
        let records: BTreeMap<&str, &MovementRecord> = self
            .movements
            .values()
            .map(|e| (e.record.mrn.as_str(), &e.record))
            .collect();
        canonical_hash(&(self.last_position, records))
    }
}

/// Re-files a movement after an event: `filed` is how it was filed before (`None`: new).
fn refile(indexes: &mut Indexes, filed: Option<Filed>, r: &MovementRecord, event: &MovementEvent) {
    let position = r.listing_position;
    let Some(old) = filed else {
        let anomalous = r.has_anomalies();
        indexes.file_status(position, r.status);
        indexes.set_anomalous(position, anomalous);
        indexes.file_keys(position, &Keys::of(r));
        return;
    };
    // Anomalies are only ever added: the event's own is the only one that can be new.
    let anomalous = old.anomalous || r.history.last().is_some_and(|h| h.anomaly.is_some());
    debug_assert_eq!(anomalous, r.has_anomalies());
    let moved = old.position != position;
    if let Some(source) = &old.keys {
        let old_keys = &source.keys();
        let keys = Keys::of(r);
        debug_assert!(
            old.may_change || (keys == *old_keys && !moved),
            "invariant: {} changed the index keys; list it in Keys::may_change",
            event.event_type()
        );
        if moved {
            indexes.unfile_keys(old.position, old_keys);
            indexes.file_keys(position, &keys);
        } else if keys != *old_keys {
            indexes.refile_keys(position, old_keys, &keys);
        }
    }
    if moved || old.status != r.status {
        indexes.unfile_status(old.position, old.status);
        indexes.file_status(position, r.status);
    }
    if moved || old.anomalous != anomalous {
        indexes.set_anomalous(old.position, false);
        indexes.set_anomalous(position, anomalous);
    }
}
