//! The signal engine: folds movement events into per-movement facts, evaluates every rule
//! against them and reports what was raised or cleared.

use std::collections::{BTreeMap, BTreeSet};

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

/// A finding before it is stored as a [`Signal`].
#[derive(Serialize, Deserialize)]
struct Candidate {
    rule: RuleId,
    severity: Severity,
    explanation: String,
    evidence: Vec<u64>,
}

type Candidates = BTreeMap<SignalId, Candidate>;

/// The fraud-signal engine: pure and deterministic; time comes only from events and from
/// [`SignalEngine::tick`].
///
/// The whole engine, thresholds included, serialises, so the runner can snapshot it and
/// restore it instead of replaying the log.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SignalEngine {
    config: FraudConfig,
    /// Boxed: a tracked movement is about a kilobyte, and B-tree nodes keep room for eleven
    /// values, about half of it empty when keys arrive in order.
    movements: BTreeMap<Mrn, Box<Tracked>>,
    signals: BTreeMap<Mrn, BTreeMap<SignalId, Signal>>,
    /// Open movements per normalised plate.
    by_plate: BTreeMap<String, MrnSet>,
    /// Open movements per seal.
    by_seal: BTreeMap<String, MrnSet>,
    /// Incidents per party (`holder:<id>` / `carrier:<id>`), by (occurred_at, position).
    incidents_by_party: BTreeMap<String, BTreeMap<(Timestamp, u64), Mrn>>,
    /// Released movements without arrival, by deadline (time limit + grace) in ms.
    deadlines: BTreeMap<i64, MrnSet>,
    /// Movements with at least one open signal (derived from `signals`, kept in step by
    /// `evaluate`), so that "has an open signal" is a lookup, not a scan.
    open_movements: BTreeSet<Mrn>,
    last_position: Option<u64>,
    now: Option<Timestamp>,
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
    p.chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_uppercase())
        .collect()
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
    let mut resealings: Vec<&IncidentFact> = incidents
        .iter()
        .filter(|i| !i.new_seals.is_empty() && at.is_none_or(|t| i.occurred_at <= t))
        .collect();
    resealings.sort_by_key(|i| (i.occurred_at, i.position));
    match resealings.last() {
        Some(i) => (seal_set(&i.new_seals), Some(i.position)),
        None => (seal_set(decl.seals()), None),
    }
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
        let tracked = self.movements.entry(mrn.clone()).or_default();
        let released_before = tracked.state.release().is_some();
        tracked.state.apply_fact(event);
        record(&mut tracked.facts, position, meta, event, released_before);
        let mut related = BTreeSet::from([mrn.clone()]);
        self.refile(mrn, &mut related);
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
    fn refile(&mut self, mrn: &Mrn, related: &mut BTreeSet<Mrn>) {
        let Some(tracked) = self.movements.get(mrn) else {
            return;
        };
        let new = self.filing(tracked);
        if tracked.filed == new {
            // Other movements see this one only through its keys, so nothing else can change.
            return;
        }
        let old = tracked.filed.clone();
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
        if let Some(t) = self.movements.get_mut(mrn) {
            t.filed = new;
        }
    }

    fn filing(&self, t: &Tracked) -> Filed {
        let Some(decl) = t.state.declaration() else {
            return Filed::default();
        };
        let open = is_open(t);
        let mut parties = BTreeSet::from([format!("holder:{}", decl.holder.id.as_str())]);
        if let Some(c) = &decl.carrier {
            parties.insert(format!("carrier:{}", c.id.as_str()));
        }
        let deadline_ms = open.then(|| {
            ms(decl.time_limit).saturating_add(seconds_to_ms(self.config.overdue_grace_seconds))
        });
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

    /// Recomputes the findings of `mrn` and reconciles them with its stored signals: new
    /// findings are raised, open signals no longer found are cleared, both at `at`. An open
    /// signal found again is left as first raised, so its explanation stays the one that fired.
    fn evaluate(&mut self, mrn: &Mrn, at: Timestamp) -> Vec<SignalChange> {
        let candidates = self.candidates(mrn);
        let stored = self.signals.entry(mrn.clone()).or_default();
        let mut changes = Vec::new();
        for (id, s) in stored.iter_mut() {
            if s.is_open() && !candidates.contains_key(id) {
                s.status = SignalStatus::Cleared { at };
                changes.push(SignalChange::Cleared { id: id.clone(), at });
            }
        }
        for (id, c) in candidates {
            if stored.get(&id).is_some_and(Signal::is_open) {
                continue;
            }
            let signal = Signal {
                id: id.clone(),
                rule: c.rule,
                severity: c.severity,
                mrn: mrn.clone(),
                explanation: c.explanation,
                evidence: sorted(c.evidence),
                fired_at: at,
                status: SignalStatus::Open,
            };
            stored.insert(id, signal.clone());
            changes.push(SignalChange::Raised(signal));
        }
        if stored.values().any(Signal::is_open) {
            if !self.open_movements.contains(mrn) {
                self.open_movements.insert(mrn.clone());
            }
        } else {
            self.open_movements.remove(mrn);
        }
        if stored.is_empty() {
            self.signals.remove(mrn);
        }
        changes
    }

    fn candidates(&self, mrn: &Mrn) -> Candidates {
        let mut out = Candidates::new();
        let Some(t) = self.movements.get(mrn) else {
            return out;
        };
        let Some(decl) = t.state.declaration() else {
            return out;
        };
        let cx = Cx {
            config: &self.config,
            mrn,
            t,
            decl,
        };
        cx.overdue(self.now, &mut out);
        cx.missing_crossing(&mut out);
        cx.diversion(&mut out);
        cx.seal_mismatch(&mut out);
        cx.quantity(&mut out);
        self.shared(&cx, &mut out);
        cx.too_fast(&mut out);
        self.repeated_incidents(&cx, &mut out);
        cx.high_risk_goods(&mut out);
        out
    }

    fn shared(&self, cx: &Cx<'_>, out: &mut Candidates) {
        let own_release = cx.t.facts.release_position;
        let other_release = |m: &Mrn| self.movements.get(m).and_then(|o| o.facts.release_position);
        if let Some(plate) = &cx.t.filed.plate {
            for other in self.by_plate.get(plate).into_iter().flatten() {
                if other == cx.mrn {
                    continue;
                }
                out.insert(
                    SignalId::new(RuleId::SharedVehicle, cx.mrn, &format!("{plate}:{other}")),
                    Candidate {
                        rule: RuleId::SharedVehicle,
                        severity: Severity::High,
                        explanation: format!(
                            "vehicle {plate} is on open movement {} and on open movement \
                             {other} at once (threshold: a vehicle may carry at most 1 open \
                             movement)",
                            cx.mrn
                        ),
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
                    SignalId::new(RuleId::SharedSeal, cx.mrn, &format!("{seal}:{other}")),
                    Candidate {
                        rule: RuleId::SharedSeal,
                        severity: Severity::High,
                        explanation: format!(
                            "seal {seal} is on open movement {} and on open movement {other} \
                             at once (threshold: a seal may close at most 1 open movement)",
                            cx.mrn
                        ),
                        evidence: own_release
                            .into_iter()
                            .chain(other_release(other))
                            .collect(),
                    },
                );
            }
        }
    }

    fn repeated_incidents(&self, cx: &Cx<'_>, out: &mut Candidates) {
        let window_ms = seconds_to_ms(self.config.incidents_window_seconds);
        let count_min = usize::try_from(self.config.incidents_count_min.max(1)).unwrap_or(1);
        if cx.t.facts.incidents.is_empty() {
            return;
        }
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
                    let mrns: BTreeSet<&str> = window.iter().map(|(_, m)| m.as_str()).collect();
                    out.insert(
                        SignalId::new(RuleId::RepeatedIncidents, cx.mrn, party),
                        Candidate {
                            rule: RuleId::RepeatedIncidents,
                            severity: Severity::Medium,
                            explanation: format!(
                                "{} incidents for {party} between {} and {} (threshold: {} \
                                 within {} s), on movements {}",
                                window.len(),
                                window[0].0 .0,
                                window[window.len() - 1].0 .0,
                                self.config.incidents_count_min,
                                self.config.incidents_window_seconds,
                                mrns.into_iter().collect::<Vec<_>>().join(", ")
                            ),
                            evidence: window.iter().map(|(k, _)| k.1).collect(),
                        },
                    );
                    break;
                }
            }
        }
    }
}

fn remove_member(index: &mut BTreeMap<String, MrnSet>, key: &str, mrn: &Mrn) {
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
struct Cx<'a> {
    config: &'a FraudConfig,
    mrn: &'a Mrn,
    t: &'a Tracked,
    decl: &'a TransitDeclaration,
}

impl Cx<'_> {
    fn id(&self, rule: RuleId, discriminator: &str) -> SignalId {
        SignalId::new(rule, self.mrn, discriminator)
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
    fn overdue(&self, now: Option<Timestamp>, out: &mut Candidates) {
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
                explanation: format!(
                    "no arrival recorded: time limit {} plus grace of {} s (threshold) has \
                     passed",
                    self.decl.time_limit, self.config.overdue_grace_seconds
                ),
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
    fn missing_crossing(&self, out: &mut Candidates) {
        let f = &self.t.facts;
        let ends: Vec<u64> = f
            .arrivals
            .iter()
            .map(|a| a.position)
            .chain(f.end_positions.iter().copied())
            .collect();
        let discharged = matches!(
            self.t.state.status(),
            transit_rules::MovementStatus::Discharged
        );
        if f.arrivals.is_empty() && !discharged {
            return;
        }
        let crossed: BTreeSet<&OfficeCode> = f.crossings.iter().map(|c| &c.office).collect();
        for office in self.decl.transit_offices() {
            if crossed.contains(office) {
                continue;
            }
            out.insert(
                self.id(RuleId::MissingCrossing, office.as_str()),
                Candidate {
                    rule: RuleId::MissingCrossing,
                    severity: Severity::High,
                    explanation: format!(
                        "arrival or discharge recorded but no crossing at declared office of \
                         transit {office} (threshold: every declared office of transit must \
                         record a crossing; crossings recorded: {})",
                        list(&crossed.iter().map(|o| o.as_str().to_owned()).collect())
                    ),
                    evidence: f
                        .declaration_positions
                        .iter()
                        .copied()
                        .chain(ends.iter().copied())
                        .collect(),
                },
            );
        }
    }

    /// Rule 3: a crossing at an undeclared office, a destination changed after release, an
    /// arrival elsewhere than the destination, or a deviation incident.
    fn diversion(&self, out: &mut Candidates) {
        let f = &self.t.facts;
        let deviations = self.incident_positions(IncidentCode::Deviation);
        let note = if deviations.is_empty() {
            String::new()
        } else {
            format!("; deviation incidents at positions {deviations:?}")
        };
        let declared: BTreeSet<&OfficeCode> = self.decl.transit_offices().collect();
        let mut add = |disc: String, severity, explanation: String, mut evidence: Vec<u64>| {
            evidence.extend(deviations.iter().copied());
            out.insert(
                self.id(RuleId::Diversion, &disc),
                Candidate {
                    rule: RuleId::Diversion,
                    severity,
                    explanation: format!("{explanation}{note}"),
                    evidence,
                },
            );
        };
        for c in &f.crossings {
            if declared.contains(&c.office) {
                continue;
            }
            add(
                format!("crossing:{}", c.office),
                Severity::High,
                format!(
                    "crossing at {} which is not a declared office of transit (threshold: \
                     only declared offices {} may be crossed)",
                    c.office,
                    list(&declared.iter().map(|o| o.as_str().to_owned()).collect())
                ),
                vec![c.position],
            );
        }
        for d in f.destination_changes.iter().filter(|d| d.after_release) {
            add(
                format!("destination:{}", d.to),
                Severity::High,
                format!(
                    "destination changed from {} to {} after release (threshold: no change \
                     of destination after release)",
                    d.from, d.to
                ),
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
                format!(
                    "arrival at {} instead of the office of destination {} (threshold: \
                     arrival only at the current destination)",
                    a.office, self.decl.office_of_destination
                ),
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
                format!(
                    "deviation incident at {} ({}endorsed) (threshold: any deviation \
                     incident)",
                    i.occurred_at,
                    if i.endorsed { "" } else { "not " }
                ),
                vec![i.position],
            );
        }
    }

    /// Rule 4: seals at the border or destination differ from those expected.
    fn seal_mismatch(&self, out: &mut Candidates) {
        let f = &self.t.facts;
        let broken = self.incident_positions(IncidentCode::SealsBroken);
        let mut checkpoint = |disc: String,
                              place: String,
                              position: u64,
                              at: Timestamp,
                              intact: bool,
                              found: BTreeSet<String>| {
            let (expected, source) = expected_seals(self.decl, &f.incidents, Some(at));
            if intact && found == expected {
                return;
            }
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
            let mut evidence: Vec<u64> = f.declaration_positions.clone();
            evidence.push(position);
            evidence.extend(source);
            evidence.extend(broken.iter().copied());
            let note = if broken.is_empty() {
                String::new()
            } else {
                format!("; seals-broken incidents at positions {broken:?}")
            };
            out.insert(
                self.id(RuleId::SealMismatch, &disc),
                Candidate {
                    rule: RuleId::SealMismatch,
                    severity: Severity::High,
                    explanation: format!(
                        "at {place}: {} (threshold: seals intact and identical to the \
                         declared or re-sealed set){note}",
                        why.join("; ")
                    ),
                    evidence,
                },
            );
        };
        for c in &f.crossings {
            checkpoint(
                format!("crossing:{}", c.office),
                format!("crossing {}", c.office),
                c.position,
                c.crossed_at,
                c.seals_intact,
                seal_set(&c.seals_observed),
            );
        }
        for c in &f.controls {
            checkpoint(
                format!("destination:{}", c.office),
                format!("destination control {}", c.office),
                c.position,
                c.occurred_at,
                c.seals_intact,
                seal_set(&c.seals_found),
            );
        }
        // A seals-broken incident without new seals leaves the load unsealed.
        for i in f
            .incidents
            .iter()
            .filter(|i| i.code == IncidentCode::SealsBroken && i.new_seals.is_empty())
        {
            out.insert(
                self.id(RuleId::SealMismatch, &format!("incident:{}", i.position)),
                Candidate {
                    rule: RuleId::SealMismatch,
                    severity: Severity::Medium,
                    explanation: format!(
                        "seals-broken incident at {} with no new seals ({}endorsed) \
                         (threshold: broken seals must be replaced)",
                        i.occurred_at,
                        if i.endorsed { "" } else { "not " }
                    ),
                    evidence: vec![i.position],
                },
            );
        }
    }

    /// Rule 5: mass or packages at destination beyond tolerance (the latest control counts).
    fn quantity(&self, out: &mut Candidates) {
        let Some(c) = self.t.facts.controls.last() else {
            return;
        };
        let evidence: Vec<u64> = self
            .t
            .facts
            .declaration_positions
            .iter()
            .copied()
            .chain([c.position])
            .collect();
        if let Some(found) = c.gross_mass_g_found {
            let declared = self.decl.gross_mass_g_total();
            let relative =
                u128::from(declared) * u128::from(self.config.mass_tolerance_bp) / 10_000;
            let tolerance = u64::try_from(relative)
                .unwrap_or(u64::MAX)
                .max(self.config.mass_tolerance_g);
            let diff = found.abs_diff(declared);
            if diff > tolerance {
                out.insert(
                    self.id(RuleId::QuantityDiscrepancy, "mass"),
                    Candidate {
                        rule: RuleId::QuantityDiscrepancy,
                        severity: Severity::High,
                        explanation: format!(
                            "gross mass found {found} g at {} vs declared {declared} g: \
                             difference {diff} g exceeds tolerance {tolerance} g (threshold: \
                             max of {} bp and {} g)",
                            c.office, self.config.mass_tolerance_bp, self.config.mass_tolerance_g
                        ),
                        evidence: evidence.clone(),
                    },
                );
            }
        }
        if let Some(found) = c.packages_found {
            let declared = self.decl.packages_total();
            let diff = found.abs_diff(declared);
            if diff > self.config.package_tolerance {
                out.insert(
                    self.id(RuleId::QuantityDiscrepancy, "packages"),
                    Candidate {
                        rule: RuleId::QuantityDiscrepancy,
                        severity: Severity::High,
                        explanation: format!(
                            "{found} packages found at {} vs {declared} declared: difference \
                             {diff} exceeds tolerance {} (threshold)",
                            c.office, self.config.package_tolerance
                        ),
                        evidence,
                    },
                );
            }
        }
    }

    /// Rule 7: release -> crossings -> first arrival, in time order, each segment at least
    /// its configured minimum.
    fn too_fast(&self, out: &mut Candidates) {
        let f = &self.t.facts;
        let (Some(release), Some(release_pos)) = (self.t.state.release(), f.release_position)
        else {
            return;
        };
        let mut points = vec![(
            self.decl.office_of_departure.clone(),
            release.released_at,
            release_pos,
        )];
        let mut crossings: Vec<&CrossingFact> = f.crossings.iter().collect();
        crossings.sort_by_key(|c| (c.crossed_at, c.position));
        points.extend(
            crossings
                .iter()
                .map(|c| (c.office.clone(), c.crossed_at, c.position)),
        );
        if let Some(a) = f.arrivals.iter().min_by_key(|a| (a.arrived_at, a.position)) {
            points.push((a.office.clone(), a.arrived_at, a.position));
        }
        for w in points.windows(2) {
            let ((from, t0, p0), (to, t1, p1)) = (&w[0], &w[1]);
            if from == to {
                continue;
            }
            let min_s = self.config.segment_minimum_seconds(from, to);
            let elapsed_ms = ms(*t1) - ms(*t0);
            if elapsed_ms >= seconds_to_ms(min_s) {
                continue;
            }
            out.insert(
                self.id(RuleId::TooFast, &format!("{from}->{to}")),
                Candidate {
                    rule: RuleId::TooFast,
                    severity: Severity::Medium,
                    explanation: format!(
                        "segment {from} -> {to} took {} s ({t0} to {t1}), less than the \
                         minimum of {min_s} s (threshold)",
                        elapsed_ms.div_euclid(1000)
                    ),
                    evidence: vec![*p0, *p1],
                },
            );
        }
    }

    /// Rule 9: high-risk goods together with any other finding on the movement.
    fn high_risk_goods(&self, out: &mut Candidates) {
        if out.is_empty() {
            return;
        }
        let matched: Vec<String> = self
            .decl
            .goods
            .iter()
            .filter_map(|g| {
                self.config
                    .high_risk_prefix(&g.hs_code)
                    .map(|p| format!("{} (prefix {p})", g.hs_code))
            })
            .collect();
        if matched.is_empty() {
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
        let explanation = format!(
            "high-risk goods {} (threshold: HS prefixes {}) on a movement with open signals {}",
            matched.join(", "),
            self.config.high_risk_hs_prefixes.join(","),
            others.into_iter().collect::<Vec<_>>().join(", ")
        );
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
