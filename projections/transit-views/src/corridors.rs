//! Corridor analytics: transit time distributions per corridor and per segment, dwell time at
//! border posts, movements released per day and the overdue rate.
//!
//! Definitions:
//! - **Corridor**: office of departure > current office of destination.
//! - **Transit time**: release (`released_at`) to the first arrival (`arrived_at`), business
//!   times as reported, in whole seconds.
//! - **Segments**: the movement's checkpoints in time order — departure at release, each
//!   crossing at `crossed_at`, the first arrival at `arrived_at` — and the time between
//!   consecutive ones, keyed `office A>office B`. Checkpoints are sorted by time, not by
//!   recording order, so a crossing reported late still lands in its place.
//! - **Dwell at a border post**: between consecutive crossings at the two sides of one post,
//!   recognised as office codes that differ only in their country prefix (`TGCIN001` ->
//!   `BFCIN001`), keyed `TGCIN001>BFCIN001`.
//! - Negative durations (a report contradicting another) are left out of every distribution.
//! - **Percentiles**: nearest-rank: the p-th percentile of n sorted values is the value of
//!   rank ceil(p * n / 100) (1-based), so the median of 4 values is the 2nd, and p90 of 4 the
//!   4th. Always a value that was observed; integer seconds.
//! - **Released per day**: counted by the UTC date of `released_at`.
//! - **Overdue rate** at `now` (passed in, never read from a clock): released movements whose
//!   time limit is before `now` and with no established arrival, over released movements; as
//!   counts and in parts per million.
//!
//! Distributions are computed when asked, from the per-movement facts, so out-of-order reports
//! never leave a stale aggregate behind.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use transit_contract::events::MovementEvent;
use transit_contract::ids::{Mrn, OfficeCode, Timestamp};
use transit_contract::messages::EnquiryOutcome;

use crate::fast_map::{serialize_sorted, FastMap};
use crate::{canonical_hash, Corridor, LedgerEvent};

/// A distribution of durations, in whole seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DurationStats {
    pub count: u64,
    pub min_s: i64,
    pub median_s: i64,
    pub p90_s: i64,
    pub max_s: i64,
}

impl DurationStats {
    /// The statistics of `values` (any order); `None` when empty.
    pub fn of(mut values: Vec<i64>) -> Option<DurationStats> {
        values.sort_unstable();
        Some(DurationStats {
            count: values.len() as u64,
            min_s: *values.first()?,
            median_s: percentile_nearest_rank(&values, 50)?,
            p90_s: percentile_nearest_rank(&values, 90)?,
            max_s: *values.last()?,
        })
    }
}

/// The nearest-rank `p`-th percentile (0..=100) of ascending `sorted` values.
pub fn percentile_nearest_rank(sorted: &[i64], p: u32) -> Option<i64> {
    let n = sorted.len();
    let p = p.min(100) as usize;
    // ceil(p * n / 100), at least rank 1.
    let rank = (p * n).div_ceil(100).max(1);
    sorted.get(rank - 1).copied()
}

/// Overdue movements over released movements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OverdueRate {
    pub overdue: u64,
    pub released: u64,
    /// overdue * 1,000,000 / released, rounded down; 0 when nothing was released.
    pub rate_ppm: u64,
}

/// The statistics of one corridor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CorridorStats {
    pub corridor: Corridor,
    pub transit_time: Option<DurationStats>,
    /// UTC date (`YYYY-MM-DD`) -> movements released that day.
    pub released_per_day: BTreeMap<String, u64>,
    pub overdue: OverdueRate,
}

/// The statistics of one segment or border post (`from` -> `to`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SegmentStats {
    pub from: OfficeCode,
    pub to: OfficeCode,
    pub duration: DurationStats,
}

/// What the analytics need of one movement, folded from its events: a few offices and times
/// rather than the rules' whole [`transit_rules::MovementState`] (the declaration alone is
/// several kilobytes, and only its offices and time limit matter here). The fold follows
/// `MovementState::apply` for these fields: amendments and destination changes move the
/// destination, an amendment may change the time limit, and arrival is established by an
/// arrival notification or an enquiry answered "goods arrived".
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct MovementFacts {
    /// Office of departure > current office of destination, once declared.
    corridor: Option<Corridor>,
    time_limit: Option<Timestamp>,
    released_at: Option<Timestamp>,
    /// Every crossing, in recording order.
    crossings: Vec<(OfficeCode, Timestamp)>,
    /// The first arrival reported.
    first_arrival: Option<(OfficeCode, Timestamp)>,
    /// An arrival notification, or an enquiry answered "goods arrived".
    arrival_established: bool,
    events: u64,
}

impl MovementFacts {
    /// Whether `event` can change the corridor (the only field [`CorridorsView::apply`]
    /// reports on).
    fn may_change_corridor(event: &MovementEvent) -> bool {
        matches!(
            event,
            MovementEvent::TransitDeclared { .. }
                | MovementEvent::DestinationChanged { .. }
                | MovementEvent::DeclarationAmended { .. }
        )
    }

    fn apply(&mut self, event: &MovementEvent) {
        self.events += 1;
        match event {
            MovementEvent::TransitDeclared { declaration: d } => {
                self.corridor = Some(Corridor::new(
                    d.office_of_departure.clone(),
                    d.office_of_destination.clone(),
                ));
                self.time_limit = Some(d.time_limit);
            }
            MovementEvent::TransitReleased { released_at, .. } => {
                self.released_at = Some(*released_at);
            }
            MovementEvent::BorderCrossed {
                office, crossed_at, ..
            } => self.crossings.push((office.clone(), *crossed_at)),
            MovementEvent::DestinationChanged { to, .. } => {
                if let Some(c) = self.corridor.as_mut() {
                    c.destination = to.clone();
                }
            }
            MovementEvent::DeclarationAmended { changes } => {
                if let Some(c) = self.corridor.as_mut() {
                    if let Some(to) = &changes.office_of_destination {
                        c.destination = to.clone();
                    }
                    if let Some(t) = changes.time_limit {
                        self.time_limit = Some(t);
                    }
                }
            }
            MovementEvent::ArrivalRecorded {
                office, arrived_at, ..
            } => {
                self.first_arrival
                    .get_or_insert_with(|| (office.clone(), *arrived_at));
                self.arrival_established = true;
            }
            MovementEvent::EnquiryAnswered { outcome, .. } => {
                if matches!(outcome, EnquiryOutcome::GoodsArrived { .. }) {
                    self.arrival_established = true;
                }
            }
            MovementEvent::ReleaseRefused { .. }
            | MovementEvent::AnticipatedRecordsDispatched { .. }
            | MovementEvent::IncidentRecorded { .. }
            | MovementEvent::ControlResultsRecorded { .. }
            | MovementEvent::TransitDischarged { .. }
            | MovementEvent::DeclarationCancelled { .. }
            | MovementEvent::EnquiryOpened { .. }
            | MovementEvent::DutiesRecovered { .. } => {}
        }
    }

    /// The movement's checkpoints in time order (see the module docs); empty until released.
    fn checkpoints(&self) -> Vec<(&OfficeCode, Timestamp)> {
        let (Some(c), Some(released_at)) = (&self.corridor, self.released_at) else {
            return Vec::new();
        };
        let mut out = Vec::with_capacity(self.crossings.len() + 2);
        out.push((&c.departure, released_at));
        out.extend(self.crossings.iter().map(|(o, t)| (o, *t)));
        // Stable: crossings at the same time keep their recording order.
        out[1..].sort_by_key(|(_, t)| *t);
        if let Some((o, t)) = &self.first_arrival {
            out.push((o, *t));
        }
        out
    }
}

/// The corridor analytics view (serialisable, for snapshots).
///
/// Movements are found by MRN through a hash map (one probe per event, where a B-tree of MRN
/// strings costs a dozen string comparisons); it serialises in MRN order, as a `BTreeMap`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CorridorsView {
    #[serde(serialize_with = "serialize_sorted")]
    movements: FastMap<Mrn, MovementFacts>,
    last_position: Option<u64>,
}

fn seconds_between(from: Timestamp, to: Timestamp) -> i64 {
    to.unix_millis().saturating_sub(from.unix_millis()) / 1000
}

/// Whether two offices are the two sides of one border post (same code past the country).
fn same_border_post(a: &OfficeCode, b: &OfficeCode) -> bool {
    a.country() != b.country() && a.as_str().get(2..) == b.as_str().get(2..)
}

impl CorridorsView {
    /// An empty view.
    pub fn new() -> Self {
        Self::default()
    }

    /// The position of the last event applied.
    pub fn last_position(&self) -> Option<u64> {
        self.last_position
    }

    /// Folds one event; says which corridor's figures may have changed (none until the
    /// movement's declaration is known).
    pub fn apply(&mut self, ev: &LedgerEvent<'_>) -> Vec<Corridor> {
        self.with_facts(ev, |facts, event| {
            if !MovementFacts::may_change_corridor(event) {
                facts.apply(event);
                return facts.corridor.iter().cloned().collect();
            }
            let before = facts.corridor.clone();
            facts.apply(event);
            match (before, &facts.corridor) {
                (None, None) => Vec::new(),
                (Some(b), Some(a)) if &b == a => vec![b],
                (b, a) => b.into_iter().chain(a.clone()).collect(),
            }
        })
        .unwrap_or_default()
    }

    /// Folds one event like [`Self::apply`], without saying what changed: for a rebuild, where
    /// nobody listens, this saves copying the corridor on every event.
    pub fn fold(&mut self, ev: &LedgerEvent<'_>) {
        self.with_facts(ev, |facts, event| facts.apply(event));
    }

    /// Records the position of `ev` and runs `f` on the facts of its movement (created on the
    /// movement's first event); `None` for an event already applied or not about a movement.
    fn with_facts<R>(
        &mut self,
        ev: &LedgerEvent<'_>,
        f: impl FnOnce(&mut MovementFacts, &MovementEvent) -> R,
    ) -> Option<R> {
        if self.last_position.is_some_and(|last| ev.position() <= last) {
            return None;
        }
        self.last_position = Some(ev.position());
        let LedgerEvent::Movement { mrn, event, .. } = *ev else {
            return None;
        };
        let facts = match self.movements.get_mut(mrn) {
            Some(facts) => facts,
            None => self.movements.entry(mrn.clone()).or_default(),
        };
        Some(f(facts, event))
    }

    /// The statistics of every corridor with at least one declared movement, evaluated at
    /// `now` for the overdue rate.
    pub fn corridor_stats(&self, now: Timestamp) -> Vec<CorridorStats> {
        #[derive(Default)]
        struct Acc {
            transit: Vec<i64>,
            per_day: BTreeMap<String, u64>,
            released: u64,
            overdue: u64,
        }
        let mut groups: BTreeMap<Corridor, Acc> = BTreeMap::new();
        for m in self.movements.values() {
            let Some(corridor) = &m.corridor else {
                continue;
            };
            let acc = match groups.get_mut(corridor) {
                Some(acc) => acc,
                None => groups.entry(corridor.clone()).or_default(),
            };
            let Some(released_at) = m.released_at else {
                continue;
            };
            acc.released += 1;
            let day = released_at.as_offset_date_time().date().to_string();
            *acc.per_day.entry(day).or_default() += 1;
            if let Some((_, arrived_at)) = &m.first_arrival {
                let s = seconds_between(released_at, *arrived_at);
                if s >= 0 {
                    acc.transit.push(s);
                }
            }
            let past_limit = m.time_limit.is_some_and(|t| t < now);
            if past_limit && !m.arrival_established {
                acc.overdue += 1;
            }
        }
        groups
            .into_iter()
            .map(|(corridor, acc)| CorridorStats {
                corridor,
                transit_time: DurationStats::of(acc.transit),
                released_per_day: acc.per_day,
                overdue: OverdueRate {
                    overdue: acc.overdue,
                    released: acc.released,
                    rate_ppm: acc
                        .overdue
                        .saturating_mul(1_000_000)
                        .checked_div(acc.released)
                        .unwrap_or(0),
                },
            })
            .collect()
    }

    /// The statistics of one corridor (see [`Self::corridor_stats`]).
    pub fn corridor(&self, corridor: &Corridor, now: Timestamp) -> Option<CorridorStats> {
        self.corridor_stats(now)
            .into_iter()
            .find(|s| &s.corridor == corridor)
    }

    fn pair_stats(&self, keep: impl Fn(&OfficeCode, &OfficeCode) -> bool) -> Vec<SegmentStats> {
        let mut groups: BTreeMap<(OfficeCode, OfficeCode), Vec<i64>> = BTreeMap::new();
        for m in self.movements.values() {
            for pair in m.checkpoints().windows(2) {
                let [(a, ta), (b, tb)] = pair else { continue };
                let s = seconds_between(*ta, *tb);
                if s >= 0 && keep(a, b) {
                    groups
                        .entry(((*a).clone(), (*b).clone()))
                        .or_default()
                        .push(s);
                }
            }
        }
        groups
            .into_iter()
            .filter_map(|((from, to), values)| {
                DurationStats::of(values).map(|duration| SegmentStats { from, to, duration })
            })
            .collect()
    }

    /// Time between consecutive checkpoints, per segment.
    pub fn segment_stats(&self) -> Vec<SegmentStats> {
        self.pair_stats(|_, _| true)
    }

    /// Dwell time at border posts: exit on one side to entry on the other.
    pub fn dwell_stats(&self) -> Vec<SegmentStats> {
        self.pair_stats(same_border_post)
    }

    /// SHA-256 of the canonical serialisation of what the analytics depend on, per movement.
    pub fn state_hash(&self) -> [u8; 32] {
        let movements: BTreeMap<&str, &MovementFacts> = self
            .movements
            .iter()
            .map(|(mrn, m)| (mrn.as_str(), m))
            .collect();
        canonical_hash(&(self.last_position, movements))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        assert_eq!(percentile_nearest_rank(&[], 50), None);
        assert_eq!(percentile_nearest_rank(&[7], 50), Some(7));
        assert_eq!(percentile_nearest_rank(&[1, 2, 3, 4], 50), Some(2));
        assert_eq!(percentile_nearest_rank(&[1, 2, 3, 4], 90), Some(4));
        let ten: Vec<i64> = (1..=10).collect();
        assert_eq!(percentile_nearest_rank(&ten, 90), Some(9));
        assert_eq!(percentile_nearest_rank(&ten, 0), Some(1));
        assert_eq!(percentile_nearest_rank(&ten, 100), Some(10));
    }

    #[test]
    fn border_posts_pair_by_code_across_countries() {
        let o = |s: &str| s.parse::<OfficeCode>().ok();
        let (Some(tg), Some(bf), Some(oua)) = (o("TGCIN001"), o("BFCIN001"), o("BFOUA001")) else {
            panic!("fixture offices are valid");
        };
        assert!(same_border_post(&tg, &bf));
        assert!(!same_border_post(&tg, &tg));
        assert!(!same_border_post(&bf, &oua));
    }
}
