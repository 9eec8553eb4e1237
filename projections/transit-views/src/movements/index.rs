//! Secondary indexes of the regional transit database: for each filterable attribute, the
//! listing positions of the movements that have each value, so that a filtered page reads only
//! candidates instead of every record.
//!
//! Postings hold listing positions (`u64`), never records or MRNs, to keep the memory per
//! movement small (see [`Indexes`]). Each posting set is ordered, so a page walks its
//! candidates in listing order from the cursor. Several filters are intersected by
//! leapfrogging: each set in turn seeks to the largest candidate seen so far, so a run of
//! positions that one set excludes is skipped without being read.
//!
//! Invariant: a movement is filed at its current listing position under exactly the keys
//! [`Keys::of`] gives for its record, its status, and in `anomalous` when its history shows
//! an anomaly; `MovementsView::apply` re-files it whenever one of them changes.

use std::borrow::Borrow;
use std::collections::{BTreeMap, BTreeSet};
use std::hash::Hash;
use std::ops::Bound;

use serde::{Deserialize, Serialize};
use transit_contract::events::MovementEvent;
use transit_contract::ids::{CountryCode, HsCode, OfficeCode, Timestamp, TraderId, VehicleId};

use super::{MovementFilter, MovementRecord, Status};
use crate::fast_map::{serialize_sorted, FastMap};
use crate::{Corridor, CountryPair};

/// Postings of one attribute: value -> listing positions of the movements with that value.
/// A hash map: filing a movement looks up a dozen values, and a B-tree of strings costs a
/// string comparison (a cache miss) per level; it serialises in value order, as a `BTreeMap`.
/// The positions are a [`PositionList`], except for the status, whose sets lose a position
/// on every status change.
type Postings<K, S = PositionList> = FastMap<K, S>;

/// The listing positions filed under one value, ascending and distinct.
///
/// A sorted vector rather than a B-tree set: movements are filed at the newest listing
/// position, so filing is a push (a B-tree insert walks and splits nodes), and a position
/// takes 8 bytes instead of 15-20. Only re-routings and movements moved to their
/// declaration insert or remove elsewhere, near the end. Serialises as the `BTreeSet` it
/// replaces (a sequence in ascending order).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub(super) struct PositionList(Vec<u64>);

/// A set of listing positions a posting can be kept in.
trait PositionSet {
    fn single(position: u64) -> Self;
    fn insert(&mut self, position: u64);
    fn remove(&mut self, position: u64);
    fn is_empty(&self) -> bool;
}

impl PositionSet for PositionList {
    fn single(position: u64) -> Self {
        PositionList(vec![position])
    }

    fn insert(&mut self, position: u64) {
        match self.0.last() {
            Some(last) if *last >= position => {
                if let Err(at) = self.0.binary_search(&position) {
                    self.0.insert(at, position);
                }
            }
            _ => self.0.push(position),
        }
    }

    fn remove(&mut self, position: u64) {
        if let Ok(at) = self.0.binary_search(&position) {
            self.0.remove(at);
        }
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl PositionSet for BTreeSet<u64> {
    fn single(position: u64) -> Self {
        BTreeSet::from([position])
    }

    fn insert(&mut self, position: u64) {
        BTreeSet::insert(self, position);
    }

    fn remove(&mut self, position: u64) {
        BTreeSet::remove(self, &position);
    }

    fn is_empty(&self) -> bool {
        BTreeSet::is_empty(self)
    }
}

/// The keys a record is filed under, besides its status and anomalies (which are cheap to
/// compare and change on many more events). Borrowed from the record (or from a
/// [`KeySource`]), so that filing a movement copies a key only when it is new to the index.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Keys<'a> {
    /// Every office in any role, sorted and distinct.
    offices: Vec<&'a OfficeCode>,
    /// The countries of those offices and the countries of routing, sorted and distinct.
    countries: Vec<CountryCode>,
    corridor: Option<&'a Corridor>,
    country_pair: Option<&'a CountryPair>,
    holder: Option<&'a TraderId>,
    vehicle: Option<&'a VehicleId>,
    /// The chapter (2 digits), heading (4) and subheading (6) of every HS code, sorted and
    /// distinct, so that any [`super::HsPrefix`] is one exact lookup.
    hs: Vec<&'a str>,
    declared_at: Option<Timestamp>,
}

/// The fields of a record that its [`Keys`] come from, copied: how a movement was filed
/// before an event that may change its keys.
#[derive(Debug, Clone)]
pub(super) struct KeySource {
    /// [`MovementRecord::offices`], in its order, repeats included.
    offices: Vec<OfficeCode>,
    countries_of_routing: Vec<CountryCode>,
    hs_codes: Vec<HsCode>,
    corridor: Option<Corridor>,
    country_pair: Option<CountryPair>,
    holder: Option<TraderId>,
    vehicle: Option<VehicleId>,
    declared_at: Option<Timestamp>,
}

impl KeySource {
    /// Copies what `r` is filed under.
    pub(super) fn of(r: &MovementRecord) -> KeySource {
        KeySource {
            offices: r.offices().cloned().collect(),
            countries_of_routing: r.countries_of_routing.clone(),
            hs_codes: r
                .goods
                .as_ref()
                .map(|g| g.hs_codes.clone())
                .unwrap_or_default(),
            corridor: r.corridor.clone(),
            country_pair: r.country_pair.clone(),
            holder: r.holder.as_ref().map(|h| h.id.clone()),
            vehicle: r.vehicle.as_ref().map(|v| v.identity.clone()),
            declared_at: r.steps.declared_at,
        }
    }

    /// The keys of the record this was copied from.
    pub(super) fn keys(&self) -> Keys<'_> {
        Keys::build(
            self.offices.iter(),
            &self.countries_of_routing,
            &self.hs_codes,
            self.corridor.as_ref(),
            self.country_pair.as_ref(),
            self.holder.as_ref(),
            self.vehicle.as_ref(),
            self.declared_at,
        )
    }
}

impl<'a> Keys<'a> {
    /// What `r` is filed under; mirrors what [`MovementFilter::matches`] tests.
    pub(super) fn of(r: &'a MovementRecord) -> Keys<'a> {
        Keys::build(
            r.offices(),
            &r.countries_of_routing,
            r.goods.as_ref().map_or(&[][..], |g| g.hs_codes.as_slice()),
            r.corridor.as_ref(),
            r.country_pair.as_ref(),
            r.holder.as_ref().map(|h| &h.id),
            r.vehicle.as_ref().map(|v| &v.identity),
            r.steps.declared_at,
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn build(
        offices: impl Iterator<Item = &'a OfficeCode>,
        countries_of_routing: &'a [CountryCode],
        hs_codes: &'a [HsCode],
        corridor: Option<&'a Corridor>,
        country_pair: Option<&'a CountryPair>,
        holder: Option<&'a TraderId>,
        vehicle: Option<&'a VehicleId>,
        declared_at: Option<Timestamp>,
    ) -> Keys<'a> {
        let mut offices: Vec<&OfficeCode> = offices.collect();
        offices.sort_unstable();
        offices.dedup();
        let mut countries: Vec<CountryCode> = offices
            .iter()
            .map(|o| o.country())
            .chain(countries_of_routing.iter().cloned())
            .collect();
        countries.sort_unstable();
        countries.dedup();
        let mut hs: Vec<&str> = hs_codes
            .iter()
            .flat_map(|c| {
                let s = c.as_str();
                [s.get(..2), s.get(..4), Some(s)]
            })
            .flatten()
            .collect();
        hs.sort_unstable();
        hs.dedup();
        Keys {
            offices,
            countries,
            corridor,
            country_pair,
            holder,
            vehicle,
            hs,
            declared_at,
        }
    }

    /// Whether `event` can change the [`Keys`] or the listing position of `r` (the record
    /// before the event): only events that touch the declaration or the vehicle, and a
    /// passage or an arrival at an office not seen on the movement yet. Other events skip
    /// computing the keys (debug builds check that they indeed leave them alone).
    pub(super) fn may_change(event: &MovementEvent, r: &MovementRecord) -> bool {
        match event {
            MovementEvent::TransitDeclared { .. }
            | MovementEvent::DeclarationAmended { .. }
            | MovementEvent::DestinationChanged { .. } => true,
            MovementEvent::IncidentRecorded { new_transport, .. } => new_transport.is_some(),
            MovementEvent::BorderCrossed { office, .. }
            | MovementEvent::ArrivalRecorded { office, .. } => !r.offices().any(|o| o == office),
            MovementEvent::TransitReleased { .. }
            | MovementEvent::ReleaseRefused { .. }
            | MovementEvent::AnticipatedRecordsDispatched { .. }
            | MovementEvent::ControlResultsRecorded { .. }
            | MovementEvent::TransitDischarged { .. }
            | MovementEvent::DeclarationCancelled { .. }
            | MovementEvent::EnquiryOpened { .. }
            | MovementEvent::EnquiryAnswered { .. }
            | MovementEvent::DutiesRecovered { .. } => false,
        }
    }
}

/// The secondary indexes of [`super::MovementsView`].
///
/// Memory: one posting per movement for its status (a `u64` in a B-tree set, 15-20 bytes
/// with node overhead), and for its corridor, country pair, holder and vehicle (a `u64` in a
/// [`PositionList`], 8-16 bytes with the vector's spare room), one per distinct office
/// (typically 3-4) and country (2-3), up to three per distinct HS code (chapter, heading,
/// subheading), and one `(timestamp, position)` entry (about 40 bytes) for the declaration
/// time; keys are stored once per distinct value. Measured on a million generated movements
/// (17 postings each), with B-tree sets throughout: about 360 bytes per movement, against
/// about 5 KB for the record.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Indexes {
    #[serde(serialize_with = "serialize_sorted")]
    by_status: Postings<Status, BTreeSet<u64>>,
    #[serde(serialize_with = "serialize_sorted")]
    by_office: Postings<OfficeCode>,
    #[serde(serialize_with = "serialize_sorted")]
    by_country: Postings<CountryCode>,
    #[serde(serialize_with = "serialize_sorted")]
    by_corridor: Postings<Corridor>,
    #[serde(serialize_with = "serialize_sorted")]
    by_country_pair: Postings<CountryPair>,
    #[serde(serialize_with = "serialize_sorted")]
    by_holder: Postings<TraderId>,
    #[serde(serialize_with = "serialize_sorted")]
    by_vehicle: Postings<VehicleId>,
    /// HS chapter, heading and subheading -> positions.
    #[serde(serialize_with = "serialize_sorted")]
    by_hs: Postings<String>,
    /// (declaration time, listing position), for declaration windows.
    by_declared: BTreeSet<(DeclaredAt, u64)>,
    /// UTC day of declaration -> the lowest and highest listing position filed under it.
    /// Only ever widened (a movement leaving a day does not narrow it), so the bounds always
    /// enclose the day's movements: they bound a walk over a large window without reading
    /// the window.
    declared_days: BTreeMap<i64, (u64, u64)>,
    /// Movements whose history shows an anomaly.
    anomalous: BTreeSet<u64>,
}

/// Files a posting; the key is copied only when it is new to the index.
fn add<K, Q, S>(postings: &mut Postings<K, S>, key: &Q, position: u64)
where
    K: Borrow<Q> + Hash + Eq,
    Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    S: PositionSet,
{
    match postings.get_mut(key) {
        Some(set) => set.insert(position),
        None => {
            postings.insert(key.to_owned(), S::single(position));
        }
    }
}

/// Removes a posting, and the key once nothing is filed under it (so a value that no
/// movement has any more answers "nothing" at once).
fn remove<K, Q, S>(postings: &mut Postings<K, S>, key: &Q, position: u64)
where
    K: Borrow<Q> + Hash + Eq,
    Q: Hash + Eq + ?Sized,
    S: PositionSet,
{
    if let Some(set) = postings.get_mut(key) {
        set.remove(position);
        if set.is_empty() {
            postings.remove(key);
        }
    }
}

impl Indexes {
    pub(super) fn file_status(&mut self, position: u64, status: Status) {
        add(&mut self.by_status, &status, position);
    }

    pub(super) fn unfile_status(&mut self, position: u64, status: Status) {
        remove(&mut self.by_status, &status, position);
    }

    pub(super) fn set_anomalous(&mut self, position: u64, anomalous: bool) {
        if anomalous {
            self.anomalous.insert(position);
        } else {
            self.anomalous.remove(&position);
        }
    }

    pub(super) fn file_keys(&mut self, position: u64, keys: &Keys<'_>) {
        for o in &keys.offices {
            add(&mut self.by_office, *o, position);
        }
        for c in &keys.countries {
            add(&mut self.by_country, c, position);
        }
        if let Some(c) = keys.corridor {
            add(&mut self.by_corridor, c, position);
        }
        if let Some(c) = keys.country_pair {
            add(&mut self.by_country_pair, c, position);
        }
        if let Some(h) = keys.holder {
            add(&mut self.by_holder, h, position);
        }
        if let Some(v) = keys.vehicle {
            add(&mut self.by_vehicle, v, position);
        }
        for h in &keys.hs {
            add(&mut self.by_hs, *h, position);
        }
        if let Some(t) = keys.declared_at {
            self.file_declared(t, position);
        }
    }

    fn file_declared(&mut self, at: Timestamp, position: u64) {
        self.by_declared.insert((DeclaredAt::new(at), position));
        let bounds = self
            .declared_days
            .entry(day(at))
            .or_insert((position, position));
        *bounds = (bounds.0.min(position), bounds.1.max(position));
    }

    pub(super) fn unfile_keys(&mut self, position: u64, keys: &Keys<'_>) {
        for o in &keys.offices {
            remove(&mut self.by_office, *o, position);
        }
        for c in &keys.countries {
            remove(&mut self.by_country, c, position);
        }
        if let Some(c) = keys.corridor {
            remove(&mut self.by_corridor, c, position);
        }
        if let Some(c) = keys.country_pair {
            remove(&mut self.by_country_pair, c, position);
        }
        if let Some(h) = keys.holder {
            remove(&mut self.by_holder, h, position);
        }
        if let Some(v) = keys.vehicle {
            remove(&mut self.by_vehicle, v, position);
        }
        for h in &keys.hs {
            remove(&mut self.by_hs, *h, position);
        }
        if let Some(t) = keys.declared_at {
            self.by_declared.remove(&(DeclaredAt::new(t), position));
        }
    }

    /// Moves a movement that stays at `position` from the `old` keys to the `new` ones,
    /// touching only the postings that differ (a re-routing changes a few keys, not all).
    pub(super) fn refile_keys(&mut self, position: u64, old: &Keys<'_>, new: &Keys<'_>) {
        fn many<K, Q, T>(postings: &mut Postings<K>, old: &[T], new: &[T], position: u64)
        where
            K: Borrow<Q> + Hash + Eq,
            Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
            T: Borrow<Q> + Ord,
        {
            for k in old.iter().filter(|k| new.binary_search(k).is_err()) {
                remove(postings, k.borrow(), position);
            }
            for k in new.iter().filter(|k| old.binary_search(k).is_err()) {
                add(postings, k.borrow(), position);
            }
        }
        fn one<K, Q>(postings: &mut Postings<K>, old: &Option<&Q>, new: &Option<&Q>, position: u64)
        where
            K: Borrow<Q> + Hash + Eq,
            Q: Ord + Hash + Eq + ToOwned<Owned = K> + ?Sized,
        {
            if old != new {
                many(postings, old.as_slice(), new.as_slice(), position);
            }
        }
        many(&mut self.by_office, &old.offices, &new.offices, position);
        many(
            &mut self.by_country,
            &old.countries,
            &new.countries,
            position,
        );
        one(
            &mut self.by_corridor,
            &old.corridor,
            &new.corridor,
            position,
        );
        one(
            &mut self.by_country_pair,
            &old.country_pair,
            &new.country_pair,
            position,
        );
        one(&mut self.by_holder, &old.holder, &new.holder, position);
        one(&mut self.by_vehicle, &old.vehicle, &new.vehicle, position);
        many::<_, str, _>(&mut self.by_hs, &old.hs, &new.hs, position);
        if old.declared_at != new.declared_at {
            if let Some(t) = old.declared_at {
                self.by_declared.remove(&(DeclaredAt::new(t), position));
            }
            if let Some(t) = new.declared_at {
                self.file_declared(t, position);
            }
        }
    }

    /// The posting sets of the equality filters that `f` sets; `None` when one of them names
    /// a value no movement has, so the answer is empty.
    pub(super) fn postings(&self, f: &MovementFilter) -> Option<Vec<Source<'_>>> {
        fn get<'a, K: Hash + Eq>(
            postings: &'a Postings<K>,
            key: Option<&K>,
            out: &mut Vec<Source<'a>>,
        ) -> Option<()> {
            if let Some(key) = key {
                out.push(Source::List(&postings.get(key)?.0));
            }
            Some(())
        }
        let mut out = Vec::new();
        if let Some(status) = &f.status {
            out.push(Source::Set(self.by_status.get(status)?));
        }
        get(&self.by_office, f.office.as_ref(), &mut out)?;
        get(&self.by_country, f.country.as_ref(), &mut out)?;
        get(&self.by_corridor, f.corridor.as_ref(), &mut out)?;
        get(&self.by_country_pair, f.country_pair.as_ref(), &mut out)?;
        get(&self.by_holder, f.holder.as_ref(), &mut out)?;
        get(&self.by_vehicle, f.vehicle.as_ref(), &mut out)?;
        if let Some(hs) = &f.hs {
            out.push(Source::List(&self.by_hs.get(hs.0.as_str())?.0));
        }
        if f.has_anomalies == Some(true) {
            out.push(Source::Set(&self.anomalous));
        }
        Some(out)
    }

    /// The movements declared in `[from, until)`: their listing positions if there are at
    /// most `limit`, else bounds enclosing them (read from the per-day bounds, so a large
    /// window costs `limit` steps and one per day, not one per movement).
    pub(super) fn declared_between(
        &self,
        from: Option<Timestamp>,
        until: Option<Timestamp>,
        limit: usize,
    ) -> Window {
        if let (Some(from), Some(until)) = (from, until) {
            if from >= until {
                return Window::Empty;
            }
        }
        // Positions are never below 0, so `(t, 0)` is the first entry at time `t`.
        let lower = from.map_or(Bound::Unbounded, |t| {
            Bound::Included((DeclaredAt::new(t), 0))
        });
        let upper = until.map_or(Bound::Unbounded, |t| {
            Bound::Excluded((DeclaredAt::new(t), 0))
        });
        let mut positions = Vec::new();
        for (_, position) in self.by_declared.range((lower, upper)) {
            if positions.len() == limit {
                // More than `limit`: bound the walk by the days the window touches.
                let first_day = from.map_or(Bound::Unbounded, |t| Bound::Included(day(t)));
                let last_day = until.map_or(Bound::Unbounded, |t| Bound::Included(day(t)));
                let (lowest, highest) = self
                    .declared_days
                    .range((first_day, last_day))
                    .fold((u64::MAX, 0), |(lo, hi), (_, (l, h))| {
                        (lo.min(*l), hi.max(*h))
                    });
                return Window::Bounds(lowest, highest);
            }
            positions.push(*position);
        }
        if positions.is_empty() {
            return Window::Empty;
        }
        // Listing order is nearly time order, so this is mostly presorted runs, which the
        // stable sort merges in close to linear time.
        positions.sort();
        Window::Positions(positions)
    }

    /// Asserts that these indexes, maintained event by event, file exactly what `fresh`
    /// (filed from the records at once) does, and that the day bounds enclose every
    /// declaration (they may be wider: they are never narrowed).
    #[cfg(test)]
    pub(super) fn assert_consistent_with(&self, fresh: &Indexes) {
        let mut narrowed = self.clone();
        narrowed.declared_days = fresh.declared_days.clone();
        assert!(
            narrowed == *fresh,
            "the maintained indexes differ from fresh ones"
        );
        for (at, position) in &self.by_declared {
            let (lo, hi) = self.declared_days[&day(at.at)];
            assert!((lo..=hi).contains(position), "day bounds miss {position}");
        }
    }
}

/// A declaration time as the declaration-time index orders it: by milliseconds since the
/// epoch first (one integer comparison), then by the whole timestamp, which is exactly the
/// order of [`Timestamp`] (comparing date-times field by field made filing a declaration
/// cost a few hundred instructions). Serialises as the timestamp alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct DeclaredAt {
    millis: i64,
    at: Timestamp,
}

impl DeclaredAt {
    fn new(at: Timestamp) -> DeclaredAt {
        DeclaredAt {
            millis: at.unix_millis(),
            at,
        }
    }
}

impl Ord for DeclaredAt {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.millis
            .cmp(&other.millis)
            .then_with(|| self.at.cmp(&other.at))
    }
}

impl PartialOrd for DeclaredAt {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Serialize for DeclaredAt {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.at.serialize(s)
    }
}

impl<'de> Deserialize<'de> for DeclaredAt {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Timestamp::deserialize(d).map(DeclaredAt::new)
    }
}

/// The UTC day of `t`, counted from the Unix epoch.
fn day(t: Timestamp) -> i64 {
    t.unix_millis().div_euclid(86_400_000)
}

/// The movements declared in a time window, as [`Indexes::declared_between`] finds them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Window {
    /// None.
    Empty,
    /// Their listing positions, ascending.
    Positions(Vec<u64>),
    /// Too many to sort: bounds (inclusive) enclosing their listing positions, from the
    /// per-day bounds of the days the window touches, for the walk. Listing order is nearly
    /// time order, so most movements in between are in the window.
    Bounds(u64, u64),
}

/// A set of candidate listing positions.
pub(super) enum Source<'a> {
    Set(&'a BTreeSet<u64>),
    /// Ascending, distinct.
    List(&'a [u64]),
    /// Ascending, distinct.
    Sorted(Vec<u64>),
}

impl Source<'_> {
    pub(super) fn len(&self) -> usize {
        match self {
            Source::Set(s) => s.len(),
            Source::List(v) => v.len(),
            Source::Sorted(v) => v.len(),
        }
    }

    /// The smallest position at or after `from`.
    fn seek(&self, from: u64) -> Option<u64> {
        match self {
            Source::Set(s) => s.range(from..).next().copied(),
            Source::List(v) => v.get(v.partition_point(|p| *p < from)).copied(),
            Source::Sorted(v) => v.get(v.partition_point(|p| *p < from)).copied(),
        }
    }
}

/// The positions present in every source, ascending, from a starting position on
/// (leapfrog intersection).
pub(super) struct Intersection<'a> {
    sources: Vec<Source<'a>>,
    next: Option<u64>,
}

impl<'a> Intersection<'a> {
    /// Positions at or after `from` in all of `sources` (which must not be empty); the
    /// smallest source should come first, as it leads the walk.
    pub(super) fn new(sources: Vec<Source<'a>>, from: Option<u64>) -> Intersection<'a> {
        debug_assert!(!sources.is_empty(), "an intersection needs a source");
        Intersection {
            next: from.filter(|_| !sources.is_empty()),
            sources,
        }
    }
}

impl Iterator for Intersection<'_> {
    type Item = u64;

    fn next(&mut self) -> Option<u64> {
        let mut x = self.next?;
        let k = self.sources.len();
        let mut agreed = 0;
        let mut i = 0;
        loop {
            let Some(y) = self.sources[i].seek(x) else {
                self.next = None;
                return None;
            };
            if y != x {
                x = y;
                agreed = 0;
            }
            agreed += 1;
            if agreed == k {
                self.next = x.checked_add(1);
                return Some(x);
            }
            i = (i + 1) % k;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leapfrog_intersects_sets_and_sorted_lists_from_a_start() {
        let a: BTreeSet<u64> = (0..100).filter(|p| p % 2 == 0).collect();
        let b: BTreeSet<u64> = (0..100).filter(|p| p % 3 == 0).collect();
        let c: Vec<u64> = (0..100).filter(|p| p % 5 == 0).collect();
        let d: Vec<u64> = (0..100).filter(|p| p % 10 == 0).collect();
        let all = |from: u64| -> Vec<u64> {
            Intersection::new(
                vec![
                    Source::Set(&a),
                    Source::Set(&b),
                    Source::Sorted(c.clone()),
                    Source::List(&d),
                ],
                Some(from),
            )
            .collect()
        };
        assert_eq!(all(0), [0, 30, 60, 90]);
        assert_eq!(all(1), [30, 60, 90]);
        assert_eq!(all(91), Vec::<u64>::new());
        let one: Vec<u64> = Intersection::new(vec![Source::Set(&b)], Some(95)).collect();
        assert_eq!(one, [96, 99]);
        let none: Vec<u64> = Intersection::new(vec![Source::Set(&a)], None).collect();
        assert!(none.is_empty());
        let top = BTreeSet::from([u64::MAX]);
        let last: Vec<u64> = Intersection::new(vec![Source::Set(&top)], Some(7)).collect();
        assert_eq!(
            last,
            [u64::MAX],
            "the largest position ends the walk without overflow"
        );
    }
}
