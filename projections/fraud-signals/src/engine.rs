//! The signal engine: folds movement events into per-movement facts, evaluates every rule
//! against them and reports what was raised or cleared.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use transit_contract::events::{EventMeta, MovementEvent};
use transit_contract::ids::{Mrn, OfficeCode, SealId, Timestamp};
use transit_contract::messages::{IncidentCode, TransitDeclaration};
use transit_rules::MovementState;

use crate::config::FraudConfig;
use crate::signal::{RuleId, Severity, Signal, SignalChange, SignalFilter, SignalId, SignalStatus};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CrossingFact {
    position: u64,
    office: OfficeCode,
    crossed_at: Timestamp,
    seals_intact: bool,
    seals_observed: Vec<SealId>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct IncidentFact {
    position: u64,
    code: IncidentCode,
    occurred_at: Timestamp,
    endorsed: bool,
    new_seals: Vec<SealId>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct DestinationFact {
    position: u64,
    from: OfficeCode,
    to: OfficeCode,
    after_release: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ArrivalFact {
    position: u64,
    office: OfficeCode,
    arrived_at: Timestamp,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ControlFact {
    position: u64,
    office: OfficeCode,
    occurred_at: Timestamp,
    seals_intact: bool,
    seals_found: Vec<SealId>,
    gross_mass_g_found: Option<u64>,
    packages_found: Option<u32>,
}

/// What the rules need beyond [`MovementState`], which keeps neither seals nor positions.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Facts {
    /// The declaration and every amendment.
    declaration_positions: Vec<u64>,
    release_position: Option<u64>,
    crossings: Vec<CrossingFact>,
    incidents: Vec<IncidentFact>,
    destination_changes: Vec<DestinationFact>,
    arrivals: Vec<ArrivalFact>,
    controls: Vec<ControlFact>,
    end_positions: Vec<u64>,
}

/// The keys under which a movement is currently filed in the engine's cross-movement indexes,
/// kept so that a change can unfile exactly what was filed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Filed {
    plate: Option<String>,
    seals: BTreeSet<String>,
    parties: BTreeSet<String>,
    incidents: Vec<(Timestamp, u64)>,
    deadline_ms: Option<i64>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Tracked {
    state: MovementState,
    facts: Facts,
    filed: Filed,
    /// Whether the movement has an entry in `SignalEngine::signals` (entries are never
    /// removed once a signal was raised), so that evaluating a movement with no finding and
    /// no signal costs no lookup there. Derived: rebuilt when a snapshot is restored.
    #[serde(skip)]
    signalled: bool,
    /// The ids of the movement's open signals, in id order. Derived from
    /// `SignalEngine::signals` (rebuilt when a snapshot is restored), so that an evaluation
    /// that finds exactly the open signals again, the usual case, is seen to change nothing
    /// without looking them up.
    #[serde(skip)]
    open: Vec<SignalId>,
}

/// A set of MRNs as a sorted vector: nearly every key of the cross-movement indexes (a plate,
/// a seal, a deadline) has one member, and a B-tree set would allocate a whole node (room for
/// eleven) for it. Serialises as a sequence, like the set it replaces.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
struct MrnSet(Vec<Mrn>);

impl MrnSet {
    fn insert(&mut self, mrn: Mrn) {
        if let Err(i) = self.0.binary_search(&mrn) {
            self.0.insert(i, mrn);
        }
    }

    fn remove(&mut self, mrn: &Mrn) {
        if let Ok(i) = self.0.binary_search(mrn) {
            self.0.remove(i);
        }
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn iter(&self) -> std::slice::Iter<'_, Mrn> {
        self.0.iter()
    }
}

impl<'a> IntoIterator for &'a MrnSet {
    type Item = &'a Mrn;
    type IntoIter = std::slice::Iter<'a, Mrn>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

/// Builds a finding's explanation when it is needed.
type Explain<'a> = Box<dyn Fn() -> String + 'a>;

/// A finding before it is stored as a [`Signal`].
///
/// The explanation is built only when the signal is raised: an open signal found again keeps
/// the explanation it was raised with, and a movement is re-evaluated on each of its events
/// (and its neighbours' when they share a plate, a seal or a party), so formatting times and
/// lists for every finding at every evaluation was most of the engine's cost.
struct Candidate<'a> {
    rule: RuleId,
    severity: Severity,
    explanation: Explain<'a>,
    evidence: Vec<u64>,
}

/// A finding's [`SignalId`] without the MRN it shares with every other finding of the same
/// evaluation: the rule and the discriminator. Formatting the id of every finding at every
/// evaluation (most findings are the same open signals found again) cost an allocation and a
/// string comparison per lookup; the id is now built only when a signal is raised.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Key<'a> {
    rule: RuleId,
    discriminator: Cow<'a, str>,
}

impl<'a> Key<'a> {
    fn new(rule: RuleId, discriminator: impl Into<Cow<'a, str>>) -> Key<'a> {
        Key {
            rule,
            discriminator: discriminator.into(),
        }
    }

    /// The id of this finding on `mrn`.
    fn signal_id(&self, mrn: &Mrn) -> SignalId {
        SignalId::new(self.rule, mrn, &self.discriminator)
    }

    /// Whether `id` is the id of this finding on `mrn`, without building it.
    fn is_id_of(&self, id: &SignalId, mrn: &Mrn) -> bool {
        Key::of(id, self.rule, mrn).is_some_and(|k| k.discriminator == self.discriminator)
    }

    /// The key of `id`, a signal of `rule` on `mrn`; `None` when `id` is not of the form
    /// [`SignalId::new`] gives (it then names no finding).
    fn of(id: &'a SignalId, rule: RuleId, mrn: &Mrn) -> Option<Key<'a>> {
        let rest = id
            .as_str()
            .strip_prefix(rule.code())?
            .strip_prefix(':')?
            .strip_prefix(mrn.as_str())?;
        let discriminator = if rest.is_empty() {
            ""
        } else {
            rest.strip_prefix(':').filter(|d| !d.is_empty())?
        };
        Some(Key::new(rule, discriminator))
    }
}

/// Keys are ordered as the ids they stand for, among the ids of one movement: by rule code,
/// then by discriminator (`CODE:MRN` sorts before `CODE:MRN:...`, and a code that is a
/// prefix of another sorts first both as a code and, followed by `:`, as an id).
impl Ord for Key<'_> {
    fn cmp(&self, other: &Self) -> Ordering {
        self.rule
            .code()
            .cmp(other.rule.code())
            .then_with(|| self.discriminator.cmp(&other.discriminator))
    }
}

impl PartialOrd for Key<'_> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// The findings of one evaluation, as the map from id to finding they used to be: a finding
/// made again under the same key replaces the earlier one. A vector: an evaluation makes a
/// handful of findings at most, usually none.
struct Candidates<'a>(Vec<(Key<'a>, Candidate<'a>)>);

impl<'a> Candidates<'a> {
    fn new() -> Candidates<'a> {
        Candidates(Vec::new())
    }

    fn insert(&mut self, key: Key<'a>, candidate: Candidate<'a>) {
        debug_assert_eq!(key.rule, candidate.rule, "invariant: a key names its rule");
        match self.0.iter_mut().find(|(k, _)| *k == key) {
            Some((_, c)) => *c = candidate,
            None => self.0.push((key, candidate)),
        }
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn values(&self) -> impl Iterator<Item = &Candidate<'a>> {
        self.0.iter().map(|(_, c)| c)
    }

    /// The findings in id order.
    fn into_sorted(mut self) -> Vec<(Key<'a>, Candidate<'a>)> {
        self.0.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        self.0
    }
}

/// The fraud-signal engine: pure and deterministic; time comes only from events and from
/// [`SignalEngine::tick`].
///
/// The whole engine, thresholds included, serialises, so the runner can snapshot it and
/// restore it instead of replaying the log.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(from = "StoredEngine")]
pub struct SignalEngine {
    config: FraudConfig,
    /// Found by MRN through a hash map: every event looks its movement up several times, and
    /// in a B-tree of MRN strings each lookup is a few dozen string comparisons (MRNs share
    /// long prefixes). Serialised in MRN order, as the B-tree it replaces was; never iterated
    /// for anything whose result depends on the order. Boxed: a tracked movement is about a
    /// kilobyte, and the table keeps spare room.
    #[serde(serialize_with = "serialize_sorted")]
    movements: HashMap<Mrn, Box<Tracked>>,
    signals: BTreeMap<Mrn, BTreeMap<SignalId, Signal>>,
    /// Open movements per normalised plate. The cross-movement indexes are hash maps for the
    /// same reason as `movements` (each evaluation looks up the plate and every seal, and a
    /// B-tree of strings compares keys at every level); serialised in key order, and only
    /// ever looked up by key.
    #[serde(serialize_with = "serialize_sorted")]
    by_plate: HashMap<String, MrnSet>,
    /// Open movements per seal.
    #[serde(serialize_with = "serialize_sorted")]
    by_seal: HashMap<String, MrnSet>,
    /// Incidents per party (`holder:<id>` / `carrier:<id>`), by (occurred_at, position).
    #[serde(serialize_with = "serialize_sorted")]
    incidents_by_party: HashMap<String, BTreeMap<(Timestamp, u64), Mrn>>,
    /// Released movements without arrival, by deadline (time limit + grace) in ms.
    deadlines: BTreeMap<i64, MrnSet>,
    /// Movements with at least one open signal (derived from `signals`, kept in step by
    /// `evaluate`), so that "has an open signal" is a lookup, not a scan.
    open_movements: BTreeSet<Mrn>,
    last_position: Option<u64>,
    now: Option<Timestamp>,
}

/// A [`SignalEngine`] as stored: everything but what is derived on restore.
#[derive(Deserialize)]
struct StoredEngine {
    config: FraudConfig,
    movements: HashMap<Mrn, Box<Tracked>>,
    signals: BTreeMap<Mrn, BTreeMap<SignalId, Signal>>,
    by_plate: HashMap<String, MrnSet>,
    by_seal: HashMap<String, MrnSet>,
    incidents_by_party: HashMap<String, BTreeMap<(Timestamp, u64), Mrn>>,
    deadlines: BTreeMap<i64, MrnSet>,
    open_movements: BTreeSet<Mrn>,
    last_position: Option<u64>,
    now: Option<Timestamp>,
}

impl From<StoredEngine> for SignalEngine {
    fn from(stored: StoredEngine) -> Self {
        let mut movements = stored.movements;
        for (mrn, signals) in &stored.signals {
            if let Some(t) = movements.get_mut(mrn) {
                t.signalled = true;
                t.open = open_ids(signals);
            }
        }
        SignalEngine {
            config: stored.config,
            movements,
            signals: stored.signals,
            by_plate: stored.by_plate,
            by_seal: stored.by_seal,
            incidents_by_party: stored.incidents_by_party,
            deadlines: stored.deadlines,
            open_movements: stored.open_movements,
            last_position: stored.last_position,
            now: stored.now,
        }
    }
}

/// Serialises a hash map as the ordered map it stands for: entries in key order, so the
/// bytes depend only on the content.
fn serialize_sorted<K, V, S>(map: &HashMap<K, V>, serializer: S) -> Result<S::Ok, S::Error>
where
    K: Ord + Serialize,
    V: Serialize,
    S: serde::Serializer,
{
    let mut entries: Vec<(&K, &V)> = map.iter().collect();
    entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
    serializer.collect_map(entries)
}

fn ms(t: Timestamp) -> i64 {
    t.unix_millis()
}

fn seconds_to_ms(s: u64) -> i64 {
    i64::try_from(s)
        .unwrap_or(i64::MAX / 1000)
        .saturating_mul(1000)
}

/// Plates are typed by hand at each office; spacing and case must not hide a match.
fn normalise_plate(p: &str) -> String {
    normalised_plate_chars(p).collect()
}

fn normalised_plate_chars(p: &str) -> impl Iterator<Item = char> + '_ {
    p.chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_uppercase())
}

fn seal_set<'a>(seals: impl IntoIterator<Item = &'a SealId>) -> BTreeSet<String> {
    seals.into_iter().map(|s| s.as_str().to_owned()).collect()
}

fn list(set: &BTreeSet<String>) -> String {
    if set.is_empty() {
        return "none".to_owned();
    }
    set.iter().cloned().collect::<Vec<_>>().join(", ")
}

fn sorted(mut v: Vec<u64>) -> Vec<u64> {
    v.sort_unstable();
    v.dedup();
    v
}

/// The seals expected at `at`: the declared ones, replaced by the new seals of the latest
/// incident that re-sealed before `at` (a legitimate re-sealing changes what must be found).
fn expected_seals(
    decl: &TransitDeclaration,
    incidents: &[IncidentFact],
    at: Option<Timestamp>,
) -> (BTreeSet<String>, Option<u64>) {
    let (seals, source) = expected_seal_ids(decl, incidents, at);
    (seal_set(seals), source)
}

/// [`expected_seals`] without collecting them: the seals (possibly repeated) and the position
/// of the re-sealing incident they come from, if any.
fn expected_seal_ids<'a>(
    decl: &'a TransitDeclaration,
    incidents: &'a [IncidentFact],
    at: Option<Timestamp>,
) -> (impl Iterator<Item = &'a SealId> + Clone + 'a, Option<u64>) {
    // Positions are distinct, so the latest by (time, position) is unique.
    let resealing = incidents
        .iter()
        .filter(|i| !i.new_seals.is_empty() && at.is_none_or(|t| i.occurred_at <= t))
        .max_by_key(|i| (i.occurred_at, i.position));
    // `TransitDeclaration::seals`, spelled out because its iterator is not `Clone`.
    let seals = decl
        .equipment
        .iter()
        .flat_map(|e| e.seals.iter())
        .filter(move |_| resealing.is_none())
        .chain(resealing.into_iter().flat_map(|i| i.new_seals.iter()));
    (seals, resealing.map(|i| i.position))
}

/// Whether two lists of seals hold the same seals, ignoring order and repeats.
fn same_seals<'a>(
    a: impl Iterator<Item = &'a SealId> + Clone,
    b: impl Iterator<Item = &'a SealId> + Clone,
) -> bool {
    // Seals are usually found as declared, in the same order: one pass then settles it.
    if a.clone().eq(b.clone()) {
        return true;
    }
    a.clone().all(|x| b.clone().any(|y| y == x)) && b.clone().all(|y| a.clone().any(|x| x == y))
}

fn is_open(t: &Tracked) -> bool {
    t.state.release().is_some()
        && !t.state.has_arrival()
        && t.facts.end_positions.is_empty()
        && matches!(
            t.state.status(),
            transit_rules::MovementStatus::Released | transit_rules::MovementStatus::UnderEnquiry
        )
}

impl SignalEngine {
    /// An engine with these thresholds.
    pub fn new(config: FraudConfig) -> SignalEngine {
        SignalEngine {
            config,
            ..SignalEngine::default()
        }
    }

    /// The thresholds in force.
    pub fn config(&self) -> &FraudConfig {
        &self.config
    }

    /// Folds the event at global `position` of the stream of `mrn` and re-evaluates the
    /// movements it can affect. Positions must increase; a position at or below the last one
    /// applied is ignored (a redelivery), so replaying an overlap changes nothing.
    pub fn apply(
        &mut self,
        position: u64,
        mrn: &Mrn,
        meta: &EventMeta,
        event: &MovementEvent,
    ) -> Vec<SignalChange> {
        if self.last_position.is_some_and(|p| position <= p) {
            return Vec::new();
        }
        self.last_position = Some(position);
        let fold = |tracked: &mut Tracked| {
            let released_before = tracked.state.release().is_some();
            tracked.state.apply_fact(event);
            record(&mut tracked.facts, position, meta, event, released_before);
        };
        // One lookup for a known movement (cloning the MRN for `entry` on every event would
        // cost an allocation), and whether its filing still holds is judged while it is at
        // hand: most events leave the keys alone, and then nothing else needs looking up.
        let current = match self.movements.get_mut(mrn) {
            Some(tracked) => {
                fold(tracked);
                filing_is_current(&self.config, tracked)
            }
            None => {
                let mut tracked = Box::<Tracked>::default();
                fold(&mut tracked);
                let current = filing_is_current(&self.config, &tracked);
                self.movements.insert(mrn.clone(), tracked);
                current
            }
        };
        debug_assert!(
            !current
                || self
                    .movements
                    .get(mrn)
                    .is_some_and(|t| t.filed == filing(&self.config, t)),
            "invariant: filing_is_current agrees with filing"
        );
        let mut related = BTreeSet::new();
        if current || !self.refile(mrn, &mut related) {
            // Filed under the same keys as before: only this movement's findings can change.
            return self.evaluate(mrn, meta.recorded_at);
        }
        related.insert(mrn.clone());
        let mut changes = Vec::new();
        for m in &related {
            changes.extend(self.evaluate(m, meta.recorded_at));
        }
        changes
    }

    /// Advances the injected clock to `now` and runs the deadline rules for movements whose
    /// deadline fell since the previous tick. A `now` that does not advance does nothing.
    pub fn tick(&mut self, now: Timestamp) -> Vec<SignalChange> {
        let prev = self.now;
        if prev.is_some_and(|p| now <= p) {
            return Vec::new();
        }
        self.now = Some(now);
        let lower = match prev {
            Some(p) => std::ops::Bound::Excluded(ms(p)),
            None => std::ops::Bound::Unbounded,
        };
        // A range over the deadline index, not a scan: ticks run before every event.
        let due: Vec<(i64, Mrn)> = self
            .deadlines
            .range((lower, std::ops::Bound::Included(ms(now))))
            .flat_map(|(d, ms)| ms.iter().map(|m| (*d, m.clone())))
            .collect();
        let mut changes = Vec::new();
        for (deadline, m) in &due {
            // Judged as of the deadline itself, not of whenever the tick ran, so the live
            // engine and a rebuild record the same time.
            let at = Timestamp::from_unix_millis(*deadline).unwrap_or(now);
            changes.extend(self.evaluate(m, at));
        }
        changes
    }

    /// Every signal of one movement, open and cleared, by id.
    pub fn signals_for(&self, mrn: &Mrn) -> Vec<&Signal> {
        self.signals
            .get(mrn)
            .map(|s| s.values().collect())
            .unwrap_or_default()
    }

    /// The movements with at least one open signal, in MRN order.
    pub fn movements_with_open_signals(&self) -> &BTreeSet<Mrn> {
        &self.open_movements
    }

    /// Every signal matching `filter`, by MRN then id.
    pub fn signals(&self, filter: &SignalFilter) -> Vec<&Signal> {
        self.signals
            .values()
            .flat_map(|s| s.values())
            .filter(|s| filter.matches(s))
            .collect()
    }

    /// The risk score of a movement, 0..=100: the sum of the weights of the rules with at
    /// least one open signal, capped at 100. A rule counts once, so that one finding seen at
    /// two offices does not count double.
    pub fn risk_score(&self, mrn: &Mrn) -> u8 {
        let rules: BTreeSet<RuleId> = self
            .signals_for(mrn)
            .into_iter()
            .filter(|s| s.is_open())
            .map(|s| s.rule)
            .collect();
        let sum: u32 = rules
            .iter()
            .map(|r| self.config.weights.weight(*r))
            .fold(0, u32::saturating_add);
        u8::try_from(sum.min(100)).unwrap_or(100)
    }

    /// SHA-256 of a canonical serialisation of the engine's state (facts, signals and last
    /// position), so a rebuild can be compared with the live engine. The clock is left out:
    /// signals record the deadline or event time they were judged at, never the tick's.
    pub fn state_hash(&self) -> [u8; 32] {
        #[derive(Serialize)]
        struct MovementView<'a> {
            status: &'static str,
            facts: &'a Facts,
            filed: &'a Filed,
        }
        #[derive(Serialize)]
        struct View<'a> {
            last_position: Option<u64>,
            movements: BTreeMap<&'a Mrn, MovementView<'a>>,
            signals: &'a BTreeMap<Mrn, BTreeMap<SignalId, Signal>>,
        }
        let view = View {
            last_position: self.last_position,
            movements: self
                .movements
                .iter()
                .map(|(m, t)| {
                    (
                        m,
                        MovementView {
                            status: t.state.status().as_str(),
                            facts: &t.facts,
                            filed: &t.filed,
                        },
                    )
                })
                .collect(),
            signals: &self.signals,
        };
        let bytes = serde_json::to_vec(&view)
            .expect("invariant: the engine state is plain data and serialises to JSON");
        Sha256::digest(&bytes).into()
    }

    /// [`Self::state_hash`] as lower-case hex.
    pub fn state_hash_hex(&self) -> String {
        hex::encode(self.state_hash())
    }

    /// Re-files `mrn` in the cross-movement indexes and adds to `related` every movement whose
    /// findings may change with it (those sharing a plate, seal or party, before or after).
    /// Returns false when the keys did not change: other movements see this one only through
    /// its keys, so then nothing else can change.
    ///
    /// Most events leave the keys alone, and [`filing_is_current`] tells so without building
    /// the party names, plate and seal set: callers ask it first.
    fn refile(&mut self, mrn: &Mrn, related: &mut BTreeSet<Mrn>) -> bool {
        let Some(tracked) = self.movements.get_mut(mrn) else {
            return false;
        };
        let new = filing(&self.config, tracked);
        debug_assert_eq!(
            filing_is_current(&self.config, tracked),
            tracked.filed == new,
            "invariant: filing_is_current agrees with filing"
        );
        if tracked.filed == new {
            return false;
        }
        // The movement holds its new filing from here on; the indexes follow below.
        let old = std::mem::replace(&mut tracked.filed, new);
        let new = &tracked.filed;
        if let Some(p) = &old.plate {
            related.extend(self.by_plate.get(p).into_iter().flatten().cloned());
            remove_member(&mut self.by_plate, p, mrn);
        }
        for s in &old.seals {
            related.extend(self.by_seal.get(s).into_iter().flatten().cloned());
            remove_member(&mut self.by_seal, s, mrn);
        }
        let incidents_changed = old.parties != new.parties || old.incidents != new.incidents;
        if incidents_changed {
            for party in &old.parties {
                if let Some(list) = self.incidents_by_party.get_mut(party) {
                    related.extend(list.values().cloned());
                    for k in &old.incidents {
                        list.remove(k);
                    }
                    if list.is_empty() {
                        self.incidents_by_party.remove(party);
                    }
                }
            }
        }
        if let Some(d) = old.deadline_ms {
            if let Some(set) = self.deadlines.get_mut(&d) {
                set.remove(mrn);
                if set.is_empty() {
                    self.deadlines.remove(&d);
                }
            }
        }
        if let Some(p) = &new.plate {
            let set = self.by_plate.entry(p.clone()).or_default();
            set.insert(mrn.clone());
            related.extend(set.iter().cloned());
        }
        for s in &new.seals {
            let set = self.by_seal.entry(s.clone()).or_default();
            set.insert(mrn.clone());
            related.extend(set.iter().cloned());
        }
        if incidents_changed {
            for party in &new.parties {
                if new.incidents.is_empty() {
                    continue;
                }
                let list = self.incidents_by_party.entry(party.clone()).or_default();
                for k in &new.incidents {
                    list.insert(*k, mrn.clone());
                }
                related.extend(list.values().cloned());
            }
        }
        if let Some(d) = new.deadline_ms {
            self.deadlines.entry(d).or_default().insert(mrn.clone());
        }
        true
    }

    /// Recomputes the findings of `mrn` and reconciles them with its stored signals: new
    /// findings are raised, open signals no longer found are cleared, both at `at`. An open
    /// signal found again is left as first raised, so its explanation stays the one that fired.
    fn evaluate(&mut self, mrn: &Mrn, at: Timestamp) -> Vec<SignalChange> {
        let rules = Rules {
            config: &self.config,
            by_plate: &self.by_plate,
            by_seal: &self.by_seal,
            incidents_by_party: &self.incidents_by_party,
            movements: &self.movements,
            now: self.now,
        };
        let Some(t) = self.movements.get(mrn) else {
            return Vec::new();
        };
        let candidates = rules.candidates(mrn, t).into_sorted();
        debug_assert!(
            candidates
                .windows(2)
                .all(|w| w[0].0.signal_id(mrn) < w[1].0.signal_id(mrn)),
            "invariant: keys sort as their ids"
        );
        let first_signals = !t.signalled;
        debug_assert_eq!(
            t.open,
            self.signals.get(mrn).map(open_ids).unwrap_or_default(),
            "invariant: `open` follows `signals`"
        );
        if t.open.len() == candidates.len()
            && candidates
                .iter()
                .zip(&t.open)
                .all(|((k, _), id)| k.is_id_of(id, mrn))
        {
            // Found exactly what is open (or nothing, with nothing open): nothing to clear,
            // nothing to raise.
            return Vec::new();
        }
        if first_signals {
            // Nothing is stored, so nothing is open and (see above) something was found:
            // every candidate is raised below, and the entry is never left empty.
            debug_assert!(
                !candidates.is_empty()
                    && !self.signals.contains_key(mrn)
                    && !self.open_movements.contains(mrn),
                "invariant: `signalled` follows `signals`"
            );
            self.signals.insert(mrn.clone(), BTreeMap::new());
        }
        let Some(stored) = self.signals.get_mut(mrn) else {
            return Vec::new();
        };
        let was_open = stored.values().any(Signal::is_open);
        let mut changes = Vec::new();
        // Which candidates are open signals already, found while clearing the open signals
        // that are no longer candidates.
        let mut found_open = vec![false; candidates.len()];
        for (id, s) in stored.iter_mut() {
            if !s.is_open() {
                continue;
            }
            let found = Key::of(id, s.rule, mrn)
                .and_then(|k| candidates.binary_search_by(|(c, _)| c.cmp(&k)).ok());
            debug_assert_eq!(
                found.is_some(),
                candidates.iter().any(|(k, _)| k.signal_id(mrn) == *id),
                "invariant: a stored id is found among the candidates as its key"
            );
            match found {
                Some(i) => found_open[i] = true,
                None => {
                    s.status = SignalStatus::Cleared { at };
                    changes.push(SignalChange::Cleared { id: id.clone(), at });
                }
            }
        }
        for ((key, c), open) in candidates.into_iter().zip(found_open) {
            if open {
                continue;
            }
            let id = key.signal_id(mrn);
            let signal = Signal {
                id: id.clone(),
                rule: c.rule,
                severity: c.severity,
                mrn: mrn.clone(),
                explanation: (c.explanation)(),
                evidence: sorted(c.evidence),
                fired_at: at,
                status: SignalStatus::Open,
            };
            stored.insert(id, signal.clone());
            changes.push(SignalChange::Raised(signal));
        }
        // `open_movements` holds exactly the movements with an open signal, so it changes
        // only when this movement's answer does.
        let open = stored.values().any(Signal::is_open);
        debug_assert_eq!(was_open, self.open_movements.contains(mrn));
        if open && !was_open {
            self.open_movements.insert(mrn.clone());
        } else if was_open && !open {
            self.open_movements.remove(mrn);
        }
        debug_assert!(
            !stored.is_empty(),
            "invariant: a stored entry keeps its signals"
        );
        let open_now = open_ids(stored);
        if let Some(t) = self.movements.get_mut(mrn) {
            t.signalled = true;
            t.open = open_now;
        }
        changes
    }
}

/// The parts of the engine the rules read, borrowed apart from the stored signals so that
/// [`SignalEngine::evaluate`] can reconcile those while the candidates still borrow the facts
/// (their explanations are built only for the signals raised).
#[derive(Clone, Copy)]
struct Rules<'a> {
    config: &'a FraudConfig,
    movements: &'a HashMap<Mrn, Box<Tracked>>,
    by_plate: &'a HashMap<String, MrnSet>,
    by_seal: &'a HashMap<String, MrnSet>,
    incidents_by_party: &'a HashMap<String, BTreeMap<(Timestamp, u64), Mrn>>,
    now: Option<Timestamp>,
}

impl<'a> Rules<'a> {
    fn candidates(self, mrn: &'a Mrn, t: &'a Tracked) -> Candidates<'a> {
        let mut out = Candidates::new();
        let Some(decl) = t.state.declaration() else {
            return out;
        };
        let cx = Cx {
            config: self.config,
            mrn,
            t,
            decl,
        };
        cx.overdue(self.now, &mut out);
        cx.missing_crossing(&mut out);
        cx.diversion(&mut out);
        cx.seal_mismatch(&mut out);
        cx.quantity(&mut out);
        self.shared(cx, &mut out);
        cx.too_fast(&mut out);
        self.repeated_incidents(cx, &mut out);
        cx.high_risk_goods(&mut out);
        out
    }

    fn shared(self, cx: Cx<'a>, out: &mut Candidates<'a>) {
        let own_release = cx.t.facts.release_position;
        let other_release = |m: &Mrn| self.movements.get(m).and_then(|o| o.facts.release_position);
        if let Some(plate) = &cx.t.filed.plate {
            for other in self.by_plate.get(plate).into_iter().flatten() {
                if other == cx.mrn {
                    continue;
                }
                out.insert(
                    Key::new(RuleId::SharedVehicle, format!("{plate}:{other}")),
                    Candidate {
                        rule: RuleId::SharedVehicle,
                        severity: Severity::High,
                        explanation: Box::new(move || {
                            format!(
                                "vehicle {plate} is on open movement {} and on open movement \
                                 {other} at once (threshold: a vehicle may carry at most 1 open \
                                 movement)",
                                cx.mrn
                            )
                        }),
                        evidence: own_release
                            .into_iter()
                            .chain(other_release(other))
                            .collect(),
                    },
                );
            }
        }
        for seal in &cx.t.filed.seals {
            for other in self.by_seal.get(seal).into_iter().flatten() {
                if other == cx.mrn {
                    continue;
                }
                out.insert(
                    Key::new(RuleId::SharedSeal, format!("{seal}:{other}")),
                    Candidate {
                        rule: RuleId::SharedSeal,
                        severity: Severity::High,
                        explanation: Box::new(move || {
                            format!(
                                "seal {seal} is on open movement {} and on open movement {other} \
                                 at once (threshold: a seal may close at most 1 open movement)",
                                cx.mrn
                            )
                        }),
                        evidence: own_release
                            .into_iter()
                            .chain(other_release(other))
                            .collect(),
                    },
                );
            }
        }
    }

    fn repeated_incidents(self, cx: Cx<'a>, out: &mut Candidates<'a>) {
        let window_ms = seconds_to_ms(self.config.incidents_window_seconds);
        let count_min = usize::try_from(self.config.incidents_count_min.max(1)).unwrap_or(1);
        if cx.t.facts.incidents.is_empty() {
            return;
        }
        let config = self.config;
        for party in &cx.t.filed.parties {
            let Some(list) = self.incidents_by_party.get(party) else {
                continue;
            };
            let entries: Vec<(&(Timestamp, u64), &Mrn)> = list.iter().collect();
            let mut end = 0;
            for start in 0..entries.len() {
                let from = ms(entries[start].0 .0);
                end = end.max(start);
                while end + 1 < entries.len() && ms(entries[end + 1].0 .0) - from <= window_ms {
                    end += 1;
                }
                let window = &entries[start..=end];
                if window.len() >= count_min && window.iter().any(|(_, m)| *m == cx.mrn) {
                    let evidence = window.iter().map(|(k, _)| k.1).collect();
                    let window = window.to_vec();
                    out.insert(
                        Key::new(RuleId::RepeatedIncidents, party.as_str()),
                        Candidate {
                            rule: RuleId::RepeatedIncidents,
                            severity: Severity::Medium,
                            explanation: Box::new(move || {
                                let mrns: BTreeSet<&str> =
                                    window.iter().map(|(_, m)| m.as_str()).collect();
                                format!(
                                    "{} incidents for {party} between {} and {} (threshold: {} \
                                     within {} s), on movements {}",
                                    window.len(),
                                    window[0].0 .0,
                                    window[window.len() - 1].0 .0,
                                    config.incidents_count_min,
                                    config.incidents_window_seconds,
                                    mrns.into_iter().collect::<Vec<_>>().join(", ")
                                )
                            }),
                            evidence,
                        },
                    );
                    break;
                }
            }
        }
    }
}

/// Whether `t.filed` equals [`filing`] of `t`, without building it.
fn filing_is_current(config: &FraudConfig, t: &Tracked) -> bool {
    let filed = &t.filed;
    let Some(decl) = t.state.declaration() else {
        return *filed == Filed::default();
    };
    if !filed.incidents.iter().copied().eq(t
        .facts
        .incidents
        .iter()
        .map(|i| (i.occurred_at, i.position)))
    {
        return false;
    }
    let open = is_open(t);
    let deadline_ms = open
        .then(|| ms(decl.time_limit).saturating_add(seconds_to_ms(config.overdue_grace_seconds)));
    if filed.deadline_ms != deadline_ms {
        return false;
    }
    // The parties are `holder:<id>` and, with a carrier, `carrier:<id>`: two distinct
    // names, so equal counts and every filed name among them make equal sets.
    let holder = decl.holder.id.as_str();
    let carrier = decl.carrier.as_ref().map(|c| c.id.as_str());
    if filed.parties.len() != 1 + usize::from(carrier.is_some())
        || !filed.parties.iter().all(|p| {
            p.strip_prefix("holder:") == Some(holder)
                || (carrier.is_some() && p.strip_prefix("carrier:") == carrier)
        })
    {
        return false;
    }
    match (&filed.plate, open) {
        (None, false) => {}
        (Some(plate), true) => {
            if !plate
                .chars()
                .eq(normalised_plate_chars(decl.transport.identity.as_str()))
            {
                return false;
            }
        }
        _ => return false,
    }
    if !open {
        return filed.seals.is_empty();
    }
    let (expected, _) = expected_seal_ids(decl, &t.facts.incidents, None);
    expected.clone().all(|s| filed.seals.contains(s.as_str()))
        && filed
            .seals
            .iter()
            .all(|f| expected.clone().any(|s| s.as_str() == f))
}

/// The keys under which `t` belongs in the cross-movement indexes.
fn filing(config: &FraudConfig, t: &Tracked) -> Filed {
    let Some(decl) = t.state.declaration() else {
        return Filed::default();
    };
    let open = is_open(t);
    let mut parties = BTreeSet::from([["holder:", decl.holder.id.as_str()].concat()]);
    if let Some(c) = &decl.carrier {
        parties.insert(["carrier:", c.id.as_str()].concat());
    }
    let deadline_ms = open
        .then(|| ms(decl.time_limit).saturating_add(seconds_to_ms(config.overdue_grace_seconds)));
    Filed {
        plate: open.then(|| normalise_plate(decl.transport.identity.as_str())),
        seals: if open {
            expected_seals(decl, &t.facts.incidents, None).0
        } else {
            BTreeSet::new()
        },
        parties,
        incidents: t
            .facts
            .incidents
            .iter()
            .map(|i| (i.occurred_at, i.position))
            .collect(),
        deadline_ms,
    }
}

/// The ids of the open signals among `signals`, in id order.
fn open_ids(signals: &BTreeMap<SignalId, Signal>) -> Vec<SignalId> {
    signals
        .iter()
        .filter(|(_, s)| s.is_open())
        .map(|(id, _)| id.clone())
        .collect()
}

fn remove_member(index: &mut HashMap<String, MrnSet>, key: &str, mrn: &Mrn) {
    if let Some(set) = index.get_mut(key) {
        set.remove(mrn);
        if set.is_empty() {
            index.remove(key);
        }
    }
}

/// Records what the rules need from one event.
fn record(
    f: &mut Facts,
    position: u64,
    meta: &EventMeta,
    event: &MovementEvent,
    released_before: bool,
) {
    match event {
        MovementEvent::TransitDeclared { .. } | MovementEvent::DeclarationAmended { .. } => {
            f.declaration_positions.push(position);
        }
        MovementEvent::TransitReleased { .. } => f.release_position = Some(position),
        MovementEvent::BorderCrossed {
            office,
            crossed_at,
            seals_intact,
            seals_observed,
            ..
        } => f.crossings.push(CrossingFact {
            position,
            office: office.clone(),
            crossed_at: *crossed_at,
            seals_intact: *seals_intact,
            seals_observed: seals_observed.clone(),
        }),
        MovementEvent::IncidentRecorded {
            code,
            occurred_at,
            endorsed_by,
            new_seals,
            ..
        } => f.incidents.push(IncidentFact {
            position,
            code: *code,
            occurred_at: *occurred_at,
            endorsed: endorsed_by.is_some(),
            new_seals: new_seals.clone(),
        }),
        MovementEvent::DestinationChanged { from, to, .. } => {
            f.destination_changes.push(DestinationFact {
                position,
                from: from.clone(),
                to: to.clone(),
                after_release: released_before,
            });
        }
        MovementEvent::ArrivalRecorded {
            office, arrived_at, ..
        } => f.arrivals.push(ArrivalFact {
            position,
            office: office.clone(),
            arrived_at: *arrived_at,
        }),
        MovementEvent::ControlResultsRecorded {
            office,
            seals_intact,
            seals_found,
            gross_mass_g_found,
            packages_found,
            ..
        } => f.controls.push(ControlFact {
            position,
            office: office.clone(),
            occurred_at: meta.occurred_at,
            seals_intact: *seals_intact,
            seals_found: seals_found.clone(),
            gross_mass_g_found: *gross_mass_g_found,
            packages_found: *packages_found,
        }),
        MovementEvent::TransitDischarged { .. }
        | MovementEvent::DeclarationCancelled { .. }
        | MovementEvent::ReleaseRefused { .. }
        | MovementEvent::DutiesRecovered { .. } => f.end_positions.push(position),
        MovementEvent::AnticipatedRecordsDispatched { .. }
        | MovementEvent::EnquiryOpened { .. }
        | MovementEvent::EnquiryAnswered { .. } => {}
    }
}

/// One movement's context for the per-movement rules.
#[derive(Clone, Copy)]
struct Cx<'a> {
    config: &'a FraudConfig,
    mrn: &'a Mrn,
    t: &'a Tracked,
    decl: &'a TransitDeclaration,
}

impl<'a> Cx<'a> {
    fn id(&self, rule: RuleId, discriminator: impl Into<Cow<'a, str>>) -> Key<'a> {
        Key::new(rule, discriminator)
    }

    fn incident_positions(&self, code: IncidentCode) -> Vec<u64> {
        self.t
            .facts
            .incidents
            .iter()
            .filter(|i| i.code == code)
            .map(|i| i.position)
            .collect()
    }

    /// Rule 1: released, no arrival, and the clock is past time limit + grace. The clock is
    /// the last tick, so a movement released after its deadline already ticked fires at once.
    fn overdue(self, now: Option<Timestamp>, out: &mut Candidates<'a>) {
        let Some(now) = now else { return };
        let Some(deadline) = self.t.filed.deadline_ms else {
            return;
        };
        if ms(now) < deadline {
            return;
        }
        out.insert(
            self.id(RuleId::Overdue, ""),
            Candidate {
                rule: RuleId::Overdue,
                severity: Severity::High,
                explanation: Box::new(move || {
                    format!(
                        "no arrival recorded: time limit {} plus grace of {} s (threshold) has \
                         passed",
                        self.decl.time_limit, self.config.overdue_grace_seconds
                    )
                }),
                evidence: self
                    .t
                    .facts
                    .declaration_positions
                    .iter()
                    .copied()
                    .chain(self.t.facts.release_position)
                    .collect(),
            },
        );
    }

    /// Rule 2: an arrival or discharge, and a declared office of transit without a crossing.
    fn missing_crossing(self, out: &mut Candidates<'a>) {
        let f = &self.t.facts;
        let discharged = matches!(
            self.t.state.status(),
            transit_rules::MovementStatus::Discharged
        );
        if f.arrivals.is_empty() && !discharged {
            return;
        }
        for office in self.decl.transit_offices() {
            if f.crossings.iter().any(|c| &c.office == office) {
                continue;
            }
            out.insert(
                self.id(RuleId::MissingCrossing, office.as_str()),
                Candidate {
                    rule: RuleId::MissingCrossing,
                    severity: Severity::High,
                    explanation: Box::new(move || {
                        let crossed: BTreeSet<&OfficeCode> =
                            f.crossings.iter().map(|c| &c.office).collect();
                        format!(
                            "arrival or discharge recorded but no crossing at declared office \
                             of transit {office} (threshold: every declared office of transit \
                             must record a crossing; crossings recorded: {})",
                            list(&crossed.iter().map(|o| o.as_str().to_owned()).collect())
                        )
                    }),
                    evidence: f
                        .declaration_positions
                        .iter()
                        .copied()
                        .chain(f.arrivals.iter().map(|a| a.position))
                        .chain(f.end_positions.iter().copied())
                        .collect(),
                },
            );
        }
    }

    /// Rule 3: a crossing at an undeclared office, a destination changed after release, an
    /// arrival elsewhere than the destination, or a deviation incident.
    fn diversion(self, out: &mut Candidates<'a>) {
        let f = &self.t.facts;
        // Deviation incidents join every diversion finding; looked up only once one is made.
        let mut deviations: Option<Vec<u64>> = None;
        let mut add = |disc: String, severity, explanation: Explain<'a>, mut evidence: Vec<u64>| {
            let deviations =
                deviations.get_or_insert_with(|| self.incident_positions(IncidentCode::Deviation));
            evidence.extend(deviations.iter().copied());
            out.insert(
                self.id(RuleId::Diversion, disc),
                Candidate {
                    rule: RuleId::Diversion,
                    severity,
                    explanation: Box::new(move || {
                        let deviations = self.incident_positions(IncidentCode::Deviation);
                        let note = if deviations.is_empty() {
                            String::new()
                        } else {
                            format!("; deviation incidents at positions {deviations:?}")
                        };
                        format!("{}{note}", explanation())
                    }),
                    evidence,
                },
            );
        };
        for c in &f.crossings {
            if self.decl.transit_offices().any(|o| *o == c.office) {
                continue;
            }
            add(
                format!("crossing:{}", c.office),
                Severity::High,
                Box::new(move || {
                    let declared: BTreeSet<String> = self
                        .decl
                        .transit_offices()
                        .map(|o| o.as_str().to_owned())
                        .collect();
                    format!(
                        "crossing at {} which is not a declared office of transit (threshold: \
                         only declared offices {} may be crossed)",
                        c.office,
                        list(&declared)
                    )
                }),
                vec![c.position],
            );
        }
        for d in f.destination_changes.iter().filter(|d| d.after_release) {
            add(
                format!("destination:{}", d.to),
                Severity::High,
                Box::new(move || {
                    format!(
                        "destination changed from {} to {} after release (threshold: no change \
                         of destination after release)",
                        d.from, d.to
                    )
                }),
                f.release_position.into_iter().chain([d.position]).collect(),
            );
        }
        for a in &f.arrivals {
            if a.office == self.decl.office_of_destination {
                continue;
            }
            add(
                format!("arrival:{}", a.office),
                Severity::High,
                Box::new(move || {
                    format!(
                        "arrival at {} instead of the office of destination {} (threshold: \
                         arrival only at the current destination)",
                        a.office, self.decl.office_of_destination
                    )
                }),
                vec![a.position],
            );
        }
        for i in f
            .incidents
            .iter()
            .filter(|i| i.code == IncidentCode::Deviation)
        {
            add(
                format!("incident:{}", i.position),
                Severity::Medium,
                Box::new(move || {
                    format!(
                        "deviation incident at {} ({}endorsed) (threshold: any deviation \
                         incident)",
                        i.occurred_at,
                        if i.endorsed { "" } else { "not " }
                    )
                }),
                vec![i.position],
            );
        }
    }

    /// Rule 4: seals at the border or destination differ from those expected.
    fn seal_mismatch(self, out: &mut Candidates<'a>) {
        let f = &self.t.facts;
        let mut checkpoint = |disc: &'static str,
                              place: &'static str,
                              office: &'a OfficeCode,
                              position: u64,
                              at: Timestamp,
                              intact: bool,
                              found: &'a [SealId]| {
            let (expected, source) = expected_seal_ids(self.decl, &f.incidents, Some(at));
            if intact && same_seals(found.iter(), expected) {
                return;
            }
            let broken = self.incident_positions(IncidentCode::SealsBroken);
            let mut evidence: Vec<u64> = f.declaration_positions.clone();
            evidence.push(position);
            evidence.extend(source);
            evidence.extend(broken.iter().copied());
            out.insert(
                self.id(RuleId::SealMismatch, format!("{disc}:{office}")),
                Candidate {
                    rule: RuleId::SealMismatch,
                    severity: Severity::High,
                    explanation: Box::new(move || {
                        let found = seal_set(found);
                        let (expected, _) = expected_seals(self.decl, &f.incidents, Some(at));
                        let mut why = Vec::new();
                        if !intact {
                            why.push("seals reported not intact".to_owned());
                        }
                        if found != expected {
                            why.push(format!(
                                "seals found [{}] differ from expected [{}]",
                                list(&found),
                                list(&expected)
                            ));
                        }
                        let note = if broken.is_empty() {
                            String::new()
                        } else {
                            format!("; seals-broken incidents at positions {broken:?}")
                        };
                        format!(
                            "at {place} {office}: {} (threshold: seals intact and identical to \
                             the declared or re-sealed set){note}",
                            why.join("; ")
                        )
                    }),
                    evidence,
                },
            );
        };
        for c in &f.crossings {
            checkpoint(
                "crossing",
                "crossing",
                &c.office,
                c.position,
                c.crossed_at,
                c.seals_intact,
                &c.seals_observed,
            );
        }
        for c in &f.controls {
            checkpoint(
                "destination",
                "destination control",
                &c.office,
                c.position,
                c.occurred_at,
                c.seals_intact,
                &c.seals_found,
            );
        }
        // A seals-broken incident without new seals leaves the load unsealed.
        for i in f
            .incidents
            .iter()
            .filter(|i| i.code == IncidentCode::SealsBroken && i.new_seals.is_empty())
        {
            out.insert(
                self.id(RuleId::SealMismatch, format!("incident:{}", i.position)),
                Candidate {
                    rule: RuleId::SealMismatch,
                    severity: Severity::Medium,
                    explanation: Box::new(move || {
                        format!(
                            "seals-broken incident at {} with no new seals ({}endorsed) \
                             (threshold: broken seals must be replaced)",
                            i.occurred_at,
                            if i.endorsed { "" } else { "not " }
                        )
                    }),
                    evidence: vec![i.position],
                },
            );
        }
    }

    /// Rule 5: mass or packages at destination beyond tolerance (the latest control counts).
    fn quantity(self, out: &mut Candidates<'a>) {
        let Some(c) = self.t.facts.controls.last() else {
            return;
        };
        let evidence = || -> Vec<u64> {
            self.t
                .facts
                .declaration_positions
                .iter()
                .copied()
                .chain([c.position])
                .collect()
        };
        let config = self.config;
        if let Some(found) = c.gross_mass_g_found {
            let declared = self.decl.gross_mass_g_total();
            let relative = u128::from(declared) * u128::from(config.mass_tolerance_bp) / 10_000;
            let tolerance = u64::try_from(relative)
                .unwrap_or(u64::MAX)
                .max(config.mass_tolerance_g);
            let diff = found.abs_diff(declared);
            if diff > tolerance {
                out.insert(
                    self.id(RuleId::QuantityDiscrepancy, "mass"),
                    Candidate {
                        rule: RuleId::QuantityDiscrepancy,
                        severity: Severity::High,
                        explanation: Box::new(move || {
                            format!(
                                "gross mass found {found} g at {} vs declared {declared} g: \
                                 difference {diff} g exceeds tolerance {tolerance} g \
                                 (threshold: max of {} bp and {} g)",
                                c.office, config.mass_tolerance_bp, config.mass_tolerance_g
                            )
                        }),
                        evidence: evidence(),
                    },
                );
            }
        }
        if let Some(found) = c.packages_found {
            let declared = self.decl.packages_total();
            let diff = found.abs_diff(declared);
            if diff > config.package_tolerance {
                out.insert(
                    self.id(RuleId::QuantityDiscrepancy, "packages"),
                    Candidate {
                        rule: RuleId::QuantityDiscrepancy,
                        severity: Severity::High,
                        explanation: Box::new(move || {
                            format!(
                                "{found} packages found at {} vs {declared} declared: \
                                 difference {diff} exceeds tolerance {} (threshold)",
                                c.office, config.package_tolerance
                            )
                        }),
                        evidence: evidence(),
                    },
                );
            }
        }
    }

    /// Rule 7: release -> crossings -> first arrival, in time order, each segment at least
    /// its configured minimum.
    fn too_fast(self, out: &mut Candidates<'a>) {
        let f = &self.t.facts;
        let (Some(release), Some(release_pos)) = (self.t.state.release(), f.release_position)
        else {
            return;
        };
        if f.crossings.is_empty() && f.arrivals.is_empty() {
            // The release alone makes no segment.
            return;
        }
        // A segment at least as long as every minimum needs no lookup of its own (the list
        // of minimums is searched linearly, comparing office codes).
        let minimum_max_s = self
            .config
            .segment_minimums
            .iter()
            .map(|s| s.seconds)
            .fold(self.config.segment_minimum_seconds_default, u64::max);
        // Each point with its time in milliseconds, worked out once (it is not free).
        let mut points: Vec<(&OfficeCode, Timestamp, i64, u64)> =
            Vec::with_capacity(f.crossings.len() + 2);
        let released_at = release.released_at;
        points.push((
            &self.decl.office_of_departure,
            released_at,
            ms(released_at),
            release_pos,
        ));
        let crossings_from = points.len();
        points.extend(
            f.crossings
                .iter()
                .map(|c| (&c.office, c.crossed_at, ms(c.crossed_at), c.position)),
        );
        points[crossings_from..].sort_by_key(|(_, at, _, position)| (*at, *position));
        if let Some(a) = f.arrivals.iter().min_by_key(|a| (a.arrived_at, a.position)) {
            points.push((&a.office, a.arrived_at, ms(a.arrived_at), a.position));
        }
        for w in points.windows(2) {
            let ((from, t0, ms0, p0), (to, t1, ms1, p1)) = (w[0], w[1]);
            if from == to {
                continue;
            }
            let elapsed_ms = ms1 - ms0;
            if elapsed_ms >= seconds_to_ms(minimum_max_s) {
                continue;
            }
            let min_s = self.config.segment_minimum_seconds(from, to);
            if elapsed_ms >= seconds_to_ms(min_s) {
                continue;
            }
            out.insert(
                self.id(RuleId::TooFast, format!("{from}->{to}")),
                Candidate {
                    rule: RuleId::TooFast,
                    severity: Severity::Medium,
                    explanation: Box::new(move || {
                        format!(
                            "segment {from} -> {to} took {} s ({t0} to {t1}), less than the \
                             minimum of {min_s} s (threshold)",
                            elapsed_ms.div_euclid(1000)
                        )
                    }),
                    evidence: vec![p0, p1],
                },
            );
        }
    }

    /// Rule 9: high-risk goods together with any other finding on the movement.
    fn high_risk_goods(self, out: &mut Candidates<'a>) {
        if out.is_empty() {
            return;
        }
        let config = self.config;
        if !self
            .decl
            .goods
            .iter()
            .any(|g| config.high_risk_prefix(&g.hs_code).is_some())
        {
            return;
        }
        let others: BTreeSet<&str> = out.values().map(|c| c.rule.code()).collect();
        let evidence: Vec<u64> = self
            .t
            .facts
            .declaration_positions
            .iter()
            .copied()
            .chain(out.values().flat_map(|c| c.evidence.iter().copied()))
            .collect();
        let explanation = Box::new(move || {
            let matched: Vec<String> = self
                .decl
                .goods
                .iter()
                .filter_map(|g| {
                    config
                        .high_risk_prefix(&g.hs_code)
                        .map(|p| format!("{} (prefix {p})", g.hs_code))
                })
                .collect();
            format!(
                "high-risk goods {} (threshold: HS prefixes {}) on a movement with open signals {}",
                matched.join(", "),
                config.high_risk_hs_prefixes.join(","),
                others.iter().copied().collect::<Vec<_>>().join(", ")
            )
        });
        out.insert(
            self.id(RuleId::HighRiskGoods, ""),
            Candidate {
                rule: RuleId::HighRiskGoods,
                severity: Severity::Critical,
                explanation,
                evidence,
            },
        );
    }
}
