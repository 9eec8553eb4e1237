//! Guarantee exposure: per guarantee, the reference amount, what was reserved, released and
//! recovered, the exposure and headroom; rollups per guarantor, principal, country of
//! departure and corridor; and the exposure of a guarantee as of any global position or time.
//!
//! Amounts are integers in minor units, never floats. Definitions, per guarantee:
//! - `reserved`: the sum of every reservation made by a release (cumulative);
//! - `released`: the sum freed by discharges, and by recoveries for the part not consumed;
//! - `recovered`: the sum consumed by recoveries;
//! - `exposure` = reserved - released - recovered (what is at risk now);
//! - `headroom` = reference amount - exposure, never below zero.
//!
//! As-of queries search a per-guarantee history of `(position, recorded_at, totals)` kept at
//! each change, so they are a binary search, not a replay.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use transit_contract::events::{GuaranteeEvent, MovementEvent};
use transit_contract::ids::{CountryCode, Currency, GuaranteeReference, Money, Mrn, Timestamp};
use transit_contract::messages::Party;

use crate::fast_map::{serialize_sorted, FastMap, Sorted};
use crate::{canonical_hash, Corridor, LedgerEvent};

/// Running sums in minor units.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Totals {
    pub reserved_minor: i64,
    pub released_minor: i64,
    pub recovered_minor: i64,
}

impl Totals {
    /// reserved - released - recovered, never below zero.
    pub fn exposure_minor(&self) -> i64 {
        self.reserved_minor
            .saturating_sub(self.released_minor)
            .saturating_sub(self.recovered_minor)
            .max(0)
    }

    fn add(&mut self, other: &Totals) {
        self.reserved_minor = self.reserved_minor.saturating_add(other.reserved_minor);
        self.released_minor = self.released_minor.saturating_add(other.released_minor);
        self.recovered_minor = self.recovered_minor.saturating_add(other.recovered_minor);
    }
}

/// The exposure of one guarantee, in its currency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Exposure {
    pub grn: GuaranteeReference,
    /// `None` while the registration has not been seen.
    pub reference_amount: Option<Money>,
    pub reserved: Money,
    pub released: Money,
    pub recovered: Money,
    pub exposure: Money,
    pub headroom: Option<Money>,
    /// The position of the last event this reflects.
    pub position: u64,
}

/// One change of a guarantee's totals: the as-of index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HistoryPoint {
    pub position: u64,
    /// The ledger's recorded time, made non-decreasing along positions (the single writer
    /// assigns both, so this only guards against a clock stepping back).
    pub recorded_at: Timestamp,
    pub reference_minor: Option<i64>,
    pub totals: Totals,
}

/// One guarantee as the view knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GuaranteeEntry {
    pub grn: GuaranteeReference,
    pub guarantor: Option<Party>,
    pub principal: Option<Party>,
    pub currency: Option<Currency>,
    pub reference_minor: Option<i64>,
    pub totals: Totals,
    /// Totals per movement, for the rollups per country and corridor (serialised in MRN
    /// order).
    #[serde(serialize_with = "serialize_sorted")]
    pub per_movement: FastMap<Mrn, Totals>,
    pub history: Vec<HistoryPoint>,
}

impl GuaranteeEntry {
    fn exposure_at(&self, point: &HistoryPoint) -> Exposure {
        let currency = self.currency.clone().unwrap_or_else(Currency::xof);
        let m = |minor: i64| money(minor, &currency);
        Exposure {
            grn: self.grn.clone(),
            reference_amount: point.reference_minor.map(m),
            reserved: m(point.totals.reserved_minor),
            released: m(point.totals.released_minor),
            recovered: m(point.totals.recovered_minor),
            exposure: m(point.totals.exposure_minor()),
            headroom: point
                .reference_minor
                .map(|r| m(r.saturating_sub(point.totals.exposure_minor()))),
            position: point.position,
        }
    }
}

/// A non-negative amount: totals are clamped at zero, so this never meets a negative value.
fn money(minor: i64, currency: &Currency) -> Money {
    Money::new(minor.max(0), currency.clone()).unwrap_or_else(|_| Money::zero(currency.clone()))
}

/// Totals of a group of guarantees or movements, in one currency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Rollup {
    /// The guarantor's or principal's id, the country code, or the corridor.
    pub key: String,
    pub currency: Currency,
    pub reserved: Money,
    pub released: Money,
    pub recovered: Money,
    pub exposure: Money,
    /// The sum of the guarantees' reference amounts (per guarantor and principal only).
    pub reference_amount: Option<Money>,
    /// The sum of the guarantees' headroom (per guarantor and principal only).
    pub headroom: Option<Money>,
}

#[derive(Default)]
struct RollupAcc {
    totals: Totals,
    reference_minor: Option<i64>,
    headroom_minor: Option<i64>,
}

fn finish(groups: BTreeMap<(String, Currency), RollupAcc>) -> Vec<Rollup> {
    groups
        .into_iter()
        .map(|((key, currency), acc)| Rollup {
            reserved: money(acc.totals.reserved_minor, &currency),
            released: money(acc.totals.released_minor, &currency),
            recovered: money(acc.totals.recovered_minor, &currency),
            exposure: money(acc.totals.exposure_minor(), &currency),
            reference_amount: acc.reference_minor.map(|r| money(r, &currency)),
            headroom: acc.headroom_minor.map(|h| money(h, &currency)),
            key,
            currency,
        })
        .collect()
}

/// The guarantee exposure view (serialisable, for snapshots).
///
/// Guarantees and movements are found through hash maps (one probe per event, where a B-tree
/// of reference strings costs a dozen string comparisons); they serialise in key order, as
/// `BTreeMap`s, and every rollup sums non-negative amounts, so no answer depends on the maps'
/// iteration order.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ExposureView {
    #[serde(serialize_with = "serialize_sorted")]
    guarantees: FastMap<GuaranteeReference, GuaranteeEntry>,
    /// The corridor of each declared movement (current destination), for rollups.
    #[serde(serialize_with = "serialize_sorted")]
    corridors: FastMap<Mrn, Corridor>,
    last_position: Option<u64>,
}

impl ExposureView {
    /// An empty view.
    pub fn new() -> Self {
        Self::default()
    }

    /// The position of the last event applied.
    pub fn last_position(&self) -> Option<u64> {
        self.last_position
    }

    /// Folds one event; says which guarantee's totals changed.
    pub fn apply(&mut self, ev: &LedgerEvent<'_>) -> Vec<GuaranteeReference> {
        let changed = self.fold_event(ev);
        match *ev {
            LedgerEvent::Guarantee { grn, .. } if changed => vec![grn.clone()],
            _ => Vec::new(),
        }
    }

    /// Folds one event like [`Self::apply`], without saying what changed: for a rebuild, where
    /// nobody listens.
    pub fn fold(&mut self, ev: &LedgerEvent<'_>) {
        self.fold_event(ev);
    }

    /// Folds one event; says whether it changed a guarantee's totals.
    fn fold_event(&mut self, ev: &LedgerEvent<'_>) -> bool {
        if self.last_position.is_some_and(|last| ev.position() <= last) {
            return false;
        }
        self.last_position = Some(ev.position());
        match *ev {
            LedgerEvent::Movement { mrn, event, .. } => {
                // Movement events only tell which corridor a movement's exposure belongs to.
                match event {
                    MovementEvent::TransitDeclared { declaration } => {
                        self.corridors.insert(
                            mrn.clone(),
                            Corridor::new(
                                declaration.office_of_departure.clone(),
                                declaration.office_of_destination.clone(),
                            ),
                        );
                    }
                    MovementEvent::DestinationChanged { to, .. } => {
                        if let Some(c) = self.corridors.get_mut(mrn) {
                            c.destination = to.clone();
                        }
                    }
                    _ => {}
                }
                false
            }
            LedgerEvent::Guarantee {
                position,
                grn,
                meta,
                event,
            } => {
                let entry = match self.guarantees.get_mut(grn) {
                    Some(entry) => entry,
                    None => self
                        .guarantees
                        .entry(grn.clone())
                        .or_insert(GuaranteeEntry {
                            grn: grn.clone(),
                            guarantor: None,
                            principal: None,
                            currency: None,
                            reference_minor: None,
                            totals: Totals::default(),
                            per_movement: FastMap::default(),
                            history: Vec::new(),
                        }),
                };
                let (mrn, delta, currency) = match event {
                    GuaranteeEvent::GuaranteeRegistered {
                        guarantor,
                        principal,
                        reference_amount,
                        ..
                    } => {
                        entry.guarantor = Some(guarantor.clone());
                        entry.principal = Some(principal.clone());
                        entry.reference_minor = Some(reference_amount.amount_minor());
                        (None, Totals::default(), reference_amount.currency())
                    }
                    GuaranteeEvent::GuaranteeExposureReserved { mrn, amount } => (
                        Some(mrn),
                        Totals {
                            reserved_minor: amount.amount_minor(),
                            ..Totals::default()
                        },
                        amount.currency(),
                    ),
                    GuaranteeEvent::GuaranteeExposureReleased { mrn, amount } => (
                        Some(mrn),
                        Totals {
                            released_minor: amount.amount_minor(),
                            ..Totals::default()
                        },
                        amount.currency(),
                    ),
                    GuaranteeEvent::GuaranteeConsumedByRecovery {
                        mrn,
                        amount_consumed,
                        amount_released,
                    } => (
                        Some(mrn),
                        Totals {
                            released_minor: amount_released.amount_minor(),
                            recovered_minor: amount_consumed.amount_minor(),
                            ..Totals::default()
                        },
                        amount_consumed.currency(),
                    ),
                };
                // The registration fixes the currency; before it (never in a healthy log) the
                // first amount seen stands in.
                if entry.currency.is_none()
                    || matches!(event, GuaranteeEvent::GuaranteeRegistered { .. })
                {
                    entry.currency = Some(currency.clone());
                }
                entry.totals.add(&delta);
                if let Some(mrn) = mrn {
                    match entry.per_movement.get_mut(mrn) {
                        Some(totals) => totals.add(&delta),
                        None => {
                            entry.per_movement.insert(mrn.clone(), delta);
                        }
                    }
                }
                let recorded_at = entry
                    .history
                    .last()
                    .map_or(meta.recorded_at, |p| p.recorded_at.max(meta.recorded_at));
                entry.history.push(HistoryPoint {
                    position,
                    recorded_at,
                    reference_minor: entry.reference_minor,
                    totals: entry.totals,
                });
                true
            }
        }
    }

    /// The current exposure of a guarantee.
    pub fn guarantee(&self, grn: &GuaranteeReference) -> Option<Exposure> {
        let entry = self.guarantees.get(grn)?;
        entry.history.last().map(|p| entry.exposure_at(p))
    }

    /// Everything the view keeps about a guarantee (parties, per-movement totals, history).
    pub fn entry(&self, grn: &GuaranteeReference) -> Option<&GuaranteeEntry> {
        self.guarantees.get(grn)
    }

    /// The exposure of a guarantee as of global `position` (inclusive): `None` if the
    /// guarantee had no event at or before it.
    pub fn as_of_position(&self, grn: &GuaranteeReference, position: u64) -> Option<Exposure> {
        let entry = self.guarantees.get(grn)?;
        let n = entry.history.partition_point(|p| p.position <= position);
        let point = entry.history.get(n.checked_sub(1)?)?;
        Some(entry.exposure_at(point))
    }

    /// The exposure of a guarantee as of the ledger time `at` (inclusive, by recorded time).
    pub fn as_of_time(&self, grn: &GuaranteeReference, at: Timestamp) -> Option<Exposure> {
        let entry = self.guarantees.get(grn)?;
        let n = entry.history.partition_point(|p| p.recorded_at <= at);
        let point = entry.history.get(n.checked_sub(1)?)?;
        Some(entry.exposure_at(point))
    }

    fn rollup_by_party(&self, party: impl Fn(&GuaranteeEntry) -> Option<&Party>) -> Vec<Rollup> {
        let mut groups: BTreeMap<(String, Currency), RollupAcc> = BTreeMap::new();
        for g in self.guarantees.values() {
            let (Some(p), Some(currency)) = (party(g), g.currency.clone()) else {
                continue;
            };
            let acc = groups
                .entry((p.id.as_str().to_owned(), currency))
                .or_default();
            acc.totals.add(&g.totals);
            if let Some(r) = g.reference_minor {
                let headroom = r.saturating_sub(g.totals.exposure_minor()).max(0);
                acc.reference_minor = Some(acc.reference_minor.unwrap_or(0).saturating_add(r));
                acc.headroom_minor = Some(acc.headroom_minor.unwrap_or(0).saturating_add(headroom));
            }
        }
        finish(groups)
    }

    fn rollup_by_movement(&self, key: impl Fn(Option<&Corridor>) -> String) -> Vec<Rollup> {
        let mut groups: BTreeMap<(String, Currency), RollupAcc> = BTreeMap::new();
        for g in self.guarantees.values() {
            let Some(currency) = g.currency.clone() else {
                continue;
            };
            for (mrn, totals) in &g.per_movement {
                let k = key(self.corridors.get(mrn));
                groups
                    .entry((k, currency.clone()))
                    .or_default()
                    .totals
                    .add(totals);
            }
        }
        finish(groups)
    }

    /// Totals per guarantor (by party id), one row per currency.
    pub fn by_guarantor(&self) -> Vec<Rollup> {
        self.rollup_by_party(|g| g.guarantor.as_ref())
    }

    /// Totals per principal (by party id), one row per currency.
    pub fn by_principal(&self) -> Vec<Rollup> {
        self.rollup_by_party(|g| g.principal.as_ref())
    }

    /// Totals per country of departure of the movements, one row per currency; movements
    /// whose declaration was not seen are under "unknown".
    pub fn by_departure_country(&self) -> Vec<Rollup> {
        self.rollup_by_movement(|c| {
            c.map_or_else(
                || "unknown".to_owned(),
                |c| CountryCode::to_string(&c.departure.country()),
            )
        })
    }

    /// Totals per corridor of the movements (current destination), one row per currency.
    pub fn by_corridor(&self) -> Vec<Rollup> {
        self.rollup_by_movement(|c| c.map_or_else(|| "unknown".to_owned(), Corridor::to_string))
    }

    /// SHA-256 of the canonical serialisation of every guarantee, corridor and the last
    /// position.
    pub fn state_hash(&self) -> [u8; 32] {
        canonical_hash(&(
            self.last_position,
            Sorted(&self.guarantees),
            Sorted(&self.corridors),
        ))
    }
}
