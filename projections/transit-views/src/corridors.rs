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
use serde_json::json;
use transit_contract::ids::{Mrn, OfficeCode, Timestamp};
use transit_rules::MovementState;

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

/// The corridor analytics view (serialisable, for snapshots).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CorridorsView {
    movements: BTreeMap<Mrn, MovementState>,
    last_position: Option<u64>,
}

fn seconds_between(from: Timestamp, to: Timestamp) -> i64 {
    to.unix_millis().saturating_sub(from.unix_millis()) / 1000
}

fn corridor_of(m: &MovementState) -> Option<Corridor> {
    m.declaration().map(|d| {
        Corridor::new(
            d.office_of_departure.clone(),
            d.office_of_destination.clone(),
        )
    })
}

/// The movement's checkpoints in time order (see the module docs); empty until released.
fn checkpoints(m: &MovementState) -> Vec<(OfficeCode, Timestamp)> {
    let (Some(d), Some(r)) = (m.declaration(), m.release()) else {
        return Vec::new();
    };
    let mut middle: Vec<(OfficeCode, Timestamp)> = m
        .crossings()
        .iter()
        .map(|c| (c.office.clone(), c.crossed_at))
        .collect();
    middle.sort_by_key(|(_, t)| *t);
    let mut out = vec![(d.office_of_departure.clone(), r.released_at)];
    out.extend(middle);
    if let Some(a) = m.arrivals().first() {
        out.push((a.office.clone(), a.arrived_at));
    }
    out
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
        if self.last_position.is_some_and(|last| ev.position() <= last) {
            return Vec::new();
        }
        self.last_position = Some(ev.position());
        let LedgerEvent::Movement {
            mrn, meta, event, ..
        } = *ev
        else {
            return Vec::new();
        };
        let state = self.movements.entry(mrn.clone()).or_default();
        let before = corridor_of(state);
        state.apply(meta, event);
        let after = corridor_of(state);
        let mut out: Vec<Corridor> = before.into_iter().chain(after).collect();
        out.dedup();
        out
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
            let Some(corridor) = corridor_of(m) else {
                continue;
            };
            let acc = groups.entry(corridor).or_default();
            let Some(release) = m.release() else {
                continue;
            };
            acc.released += 1;
            let day = release.released_at.as_offset_date_time().date().to_string();
            *acc.per_day.entry(day).or_default() += 1;
            if let Some(a) = m.arrivals().first() {
                let s = seconds_between(release.released_at, a.arrived_at);
                if s >= 0 {
                    acc.transit.push(s);
                }
            }
            let past_limit = m.declaration().is_some_and(|d| d.time_limit < now);
            if past_limit && !m.has_arrival() {
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
            for pair in checkpoints(m).windows(2) {
                let [(a, ta), (b, tb)] = pair else { continue };
                let s = seconds_between(*ta, *tb);
                if s >= 0 && keep(a, b) {
                    groups.entry((a.clone(), b.clone())).or_default().push(s);
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
        let movements: BTreeMap<&str, serde_json::Value> = self
            .movements
            .iter()
            .map(|(mrn, m)| {
                let summary = json!({
                    "corridor": corridor_of(m),
                    "status": m.status().as_str(),
                    "releasedAt": m.release().map(|r| r.released_at),
                    "timeLimit": m.declaration().map(|d| d.time_limit),
                    "crossings": m.crossings().iter()
                        .map(|c| (c.office.clone(), c.crossed_at)).collect::<Vec<_>>(),
                    "arrivals": m.arrivals().iter()
                        .map(|a| (a.office.clone(), a.arrived_at)).collect::<Vec<_>>(),
                    "hasArrival": m.has_arrival(),
                    "events": m.version_hint(),
                });
                (mrn.as_str(), summary)
            })
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
