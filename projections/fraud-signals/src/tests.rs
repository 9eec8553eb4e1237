//! Given/when/then tests of every rule: fixture messages are run through `transit_rules`, and
//! the recorded events, with increasing global positions, through the engine.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use transit_contract::events::{EventMeta, MovementEvent};
use transit_contract::fixtures::{self, Journey};
use transit_contract::ids::{GuaranteeReference, Mrn, OfficeCode, SealId, Timestamp};
use transit_contract::messages::{
    BorderCrossing, DestinationChange, InboundMessage, Incident, IncidentCode, MessageBody, Place,
    Sender,
};
use transit_rules::{decide, guarantee_needed, Context, Decision, GuaranteeState, MovementState};

use crate::{
    FraudConfig, RuleId, Severity, Signal, SignalChange, SignalEngine, SignalFilter, SignalStatus,
};

fn base() -> Timestamp {
    "2024-03-01T08:00:00Z".parse().unwrap()
}

fn at(minutes: i64) -> Timestamp {
    Timestamp::from_unix_millis(base().unix_millis() + minutes * 60_000).unwrap()
}

/// Runs messages through the domain rules and the recorded events through the engine.
struct Feed {
    engine: SignalEngine,
    movements: BTreeMap<Mrn, MovementState>,
    guarantees: BTreeMap<GuaranteeReference, GuaranteeState>,
    position: u64,
    log: Vec<(u64, Mrn, EventMeta, MovementEvent)>,
}

impl Feed {
    fn new() -> Feed {
        Feed::with(FraudConfig::default())
    }

    fn with(config: FraudConfig) -> Feed {
        Feed {
            engine: SignalEngine::new(config),
            movements: BTreeMap::new(),
            guarantees: BTreeMap::new(),
            position: 0,
            log: Vec::new(),
        }
    }

    fn send(&mut self, msg: &InboundMessage) -> Vec<SignalChange> {
        let mrn = msg.mrn().cloned();
        let state = mrn
            .as_ref()
            .and_then(|m| self.movements.get(m))
            .cloned()
            .unwrap_or_default();
        let grn = guarantee_needed(msg, &state);
        let guarantee = grn.as_ref().and_then(|g| self.guarantees.get(g));
        let ctx = Context {
            recorded_at: msg.sent_at,
        };
        let decision = decide(msg, &state, guarantee, &ctx)
            .unwrap_or_else(|r| panic!("{} rejected: {r:?}", msg.message_id));
        let Decision::Append {
            movement,
            guarantee,
            meta,
        } = decision
        else {
            panic!("{} is a duplicate", msg.message_id);
        };
        if let Some(grn) = grn {
            let g = self.guarantees.entry(grn).or_default();
            for e in &guarantee {
                self.position += 1;
                g.apply(&meta, e);
            }
        }
        let mut changes = Vec::new();
        if let Some(mrn) = mrn {
            let m = self.movements.entry(mrn.clone()).or_default();
            for e in &movement {
                self.position += 1;
                m.apply(&meta, e);
                changes.extend(self.engine.apply(self.position, &mrn, &meta, e));
                self.log
                    .push((self.position, mrn.clone(), meta.clone(), e.clone()));
            }
        }
        changes
    }

    fn send_all(&mut self, msgs: &[InboundMessage]) -> Vec<SignalChange> {
        msgs.iter().flat_map(|m| self.send(m)).collect()
    }

    fn open(&self, mrn: &Mrn, rule: RuleId) -> Vec<&Signal> {
        self.engine
            .signals_for(mrn)
            .into_iter()
            .filter(|s| s.rule == rule && s.is_open())
            .collect()
    }

    fn all_open(&self) -> Vec<&Signal> {
        self.engine.signals(&SignalFilter {
            open: Some(true),
            ..SignalFilter::default()
        })
    }
}

fn msg(id: &str, office: &str, sent_at: Timestamp, body: MessageBody) -> InboundMessage {
    let office: OfficeCode = office.parse().unwrap();
    InboundMessage {
        message_id: id.parse().unwrap(),
        correlation_id: None,
        sender: Sender {
            country: office.country(),
            office,
        },
        sent_at,
        body,
    }
}

fn seal(s: &str) -> SealId {
    s.parse().unwrap()
}

/// Everything up to and including the release.
fn until_release(j: &Journey) -> Vec<InboundMessage> {
    vec![
        j.guarantee_registration.clone(),
        j.declaration.clone(),
        j.release.clone(),
    ]
}

fn incident(
    j: &Journey,
    step: &str,
    minutes: i64,
    code: IncidentCode,
    new_seals: Vec<SealId>,
) -> InboundMessage {
    msg(
        &format!("T-{}-{step}", j.mrn),
        fixtures::CINKASSE_BF,
        at(minutes + 1),
        MessageBody::Incident(Incident {
            mrn: j.mrn.clone(),
            code,
            place: Place {
                locode: Some("BFOUA".parse().unwrap()),
                latitude_e7: None,
                longitude_e7: None,
            },
            occurred_at: at(minutes),
            endorsed_by: None,
            new_seals,
            new_transport: None,
            description: "reported en route".to_owned(),
        }),
    )
}

fn raised(changes: &[SignalChange]) -> Vec<(RuleId, String)> {
    changes
        .iter()
        .filter_map(|c| match c {
            SignalChange::Raised(s) => Some((s.rule, s.id.to_string())),
            SignalChange::Cleared { .. } => None,
        })
        .collect()
}

fn cleared(changes: &[SignalChange]) -> Vec<String> {
    changes
        .iter()
        .filter_map(|c| match c {
            SignalChange::Cleared { id, .. } => Some(id.to_string()),
            SignalChange::Raised(_) => None,
        })
        .collect()
}

fn set_body<F: FnOnce(&mut MessageBody)>(m: &mut InboundMessage, f: F) {
    f(&mut m.body);
}

// ---------------------------------------------------------------------------------------------
// A clean journey.

#[test]
fn a_clean_journey_raises_nothing_even_long_after() {
    let j = fixtures::journey(base(), 1);
    let mut feed = Feed::new();
    let changes = feed.send_all(&j.messages());
    assert!(changes.is_empty(), "{changes:?}");
    assert!(feed.engine.tick(at(365 * 24 * 60)).is_empty());
    assert!(feed.all_open().is_empty());
    assert_eq!(feed.engine.risk_score(&j.mrn), 0);
}

// ---------------------------------------------------------------------------------------------
// OVERDUE.

#[test]
fn overdue_fires_on_tick_after_the_grace_and_clears_on_arrival() {
    let j = fixtures::journey(base(), 1);
    let mut feed = Feed::new();
    feed.send_all(&until_release(&j));
    feed.send_all(&j.crossings);
    let limit = j.declaration_body().time_limit;
    let grace_ms = 86_400_000;
    // Given the time limit passed but not the grace: nothing.
    let before = Timestamp::from_unix_millis(limit.unix_millis() + grace_ms - 1000).unwrap();
    assert!(feed.engine.tick(before).is_empty());
    // When the grace passes: OVERDUE, fired at the tick time, naming the threshold.
    let after = Timestamp::from_unix_millis(limit.unix_millis() + grace_ms).unwrap();
    let changes = feed.engine.tick(after);
    let rules: Vec<RuleId> = raised(&changes).into_iter().map(|(r, _)| r).collect();
    assert!(rules.contains(&RuleId::Overdue), "{changes:?}");
    let s = feed.open(&j.mrn, RuleId::Overdue)[0].clone();
    assert_eq!(s.fired_at, after);
    assert_eq!(s.severity, Severity::High);
    assert!(
        s.explanation.contains("grace of 86400 s"),
        "{}",
        s.explanation
    );
    assert!(s.explanation.contains(&limit.to_string()));
    assert_eq!(s.id.as_str(), format!("OVERDUE:{}", j.mrn));
    // The same tick again does nothing.
    assert!(feed.engine.tick(after).is_empty());
    // Then an arrival clears it (and the escalation riding on it).
    let changes = feed.send(&j.arrival);
    let gone = cleared(&changes);
    assert!(gone.contains(&format!("OVERDUE:{}", j.mrn)), "{changes:?}");
    assert!(feed.open(&j.mrn, RuleId::Overdue).is_empty());
    let s = feed
        .engine
        .signals_for(&j.mrn)
        .into_iter()
        .find(|s| s.rule == RuleId::Overdue)
        .unwrap();
    assert!(matches!(s.status, SignalStatus::Cleared { .. }));
}

#[test]
fn no_overdue_when_the_goods_arrived_or_the_grace_is_not_over() {
    let j = fixtures::journey(base(), 1);
    let mut feed = Feed::new();
    feed.send_all(&j.messages()[..6]);
    let limit = j.declaration_body().time_limit;
    assert!(feed.engine.tick(limit).is_empty());
    let far = Timestamp::from_unix_millis(limit.unix_millis() + 400 * 86_400_000).unwrap();
    assert!(feed.engine.tick(far).is_empty());
    assert!(feed.open(&j.mrn, RuleId::Overdue).is_empty());
}

#[test]
fn a_released_movement_past_a_tick_is_overdue_at_once_with_a_custom_grace() {
    let j = fixtures::journey(base(), 1);
    let config: FraudConfig = serde_json::from_str(r#"{"overdueGraceSeconds": 60}"#).unwrap();
    let mut feed = Feed::with(config);
    feed.send_all(&until_release(&j));
    let limit = j.declaration_body().time_limit;
    let changes = feed
        .engine
        .tick(Timestamp::from_unix_millis(limit.unix_millis() + 60_000).unwrap());
    assert!(raised(&changes).iter().any(|(r, _)| *r == RuleId::Overdue));
    assert!(feed.open(&j.mrn, RuleId::Overdue)[0]
        .explanation
        .contains("grace of 60 s"));
}

// ---------------------------------------------------------------------------------------------
// MISSING_CROSSING.

#[test]
fn an_arrival_without_the_bf_crossing_raises_missing_crossing() {
    let mut j = fixtures::journey(base(), 1);
    let bf = j.crossings.pop().unwrap();
    let mut feed = Feed::new();
    feed.send_all(&until_release(&j));
    feed.send_all(&j.crossings);
    let changes = feed.send(&j.arrival);
    let ids = raised(&changes);
    let want = format!("MISSING_CROSSING:{}:{}", j.mrn, fixtures::CINKASSE_BF);
    assert!(ids.iter().any(|(_, id)| *id == want), "{ids:?}");
    let s = feed.open(&j.mrn, RuleId::MissingCrossing)[0].clone();
    assert!(s.explanation.contains(fixtures::CINKASSE_BF));
    assert!(s.explanation.contains("threshold"));
    assert!(s.evidence.contains(&feed.position), "arrival is evidence");
    // Then the crossing is reported late: the signal clears.
    let changes = feed.send(&bf);
    assert!(cleared(&changes).contains(&want), "{changes:?}");
    assert!(feed.open(&j.mrn, RuleId::MissingCrossing).is_empty());
}

#[test]
fn a_journey_with_all_declared_crossings_raises_no_missing_crossing() {
    let j = fixtures::journey(base(), 1);
    let mut feed = Feed::new();
    feed.send_all(&j.messages());
    assert!(feed.open(&j.mrn, RuleId::MissingCrossing).is_empty());
}

#[test]
fn no_crossing_at_all_before_the_arrival_is_not_yet_missing() {
    let j = fixtures::journey(base(), 1);
    let mut feed = Feed::new();
    feed.send_all(&until_release(&j));
    assert!(feed.open(&j.mrn, RuleId::MissingCrossing).is_empty());
    feed.send(&j.arrival);
    assert_eq!(feed.open(&j.mrn, RuleId::MissingCrossing).len(), 2);
}

// ---------------------------------------------------------------------------------------------
// DIVERSION.

fn crossing_at(j: &Journey, office: &str, minutes: i64, seals: Vec<SealId>) -> InboundMessage {
    msg(
        &format!("T-{}-X{office}", j.mrn),
        office,
        at(minutes + 1),
        MessageBody::BorderCrossing(BorderCrossing {
            mrn: j.mrn.clone(),
            office: office.parse().unwrap(),
            crossed_at: at(minutes),
            seals_intact: true,
            seals_observed: seals,
        }),
    )
}

#[test]
fn a_crossing_at_an_undeclared_office_is_a_diversion() {
    let j = fixtures::journey(base(), 1);
    let mut feed = Feed::new();
    feed.send_all(&until_release(&j));
    let seals = j.declaration_body().seals().cloned().collect();
    let changes = feed.send(&crossing_at(&j, "TGKPE001", 20 * 60, seals));
    let want = format!("DIVERSION:{}:crossing:TGKPE001", j.mrn);
    assert!(raised(&changes).iter().any(|(_, id)| *id == want));
    let s = feed.open(&j.mrn, RuleId::Diversion)[0];
    assert!(s.explanation.contains("TGKPE001"));
    assert!(s.explanation.contains("TGCIN001, BFCIN001") || s.explanation.contains("BFCIN001"));
}

#[test]
fn a_destination_changed_after_release_is_a_diversion() {
    let j = fixtures::journey(base(), 1);
    let mut feed = Feed::new();
    feed.send_all(&until_release(&j));
    let change = msg(
        "T-DEST",
        fixtures::LOME_PORT,
        at(5 * 60),
        MessageBody::DestinationChange(DestinationChange {
            mrn: j.mrn.clone(),
            new_office_of_destination: "BFBOB001".parse().unwrap(),
            reason: "buyer moved".to_owned(),
        }),
    );
    let changes = feed.send(&change);
    let want = format!("DIVERSION:{}:destination:BFBOB001", j.mrn);
    assert!(
        raised(&changes).iter().any(|(_, id)| *id == want),
        "{changes:?}"
    );
    let s = feed.open(&j.mrn, RuleId::Diversion)[0];
    assert!(s.explanation.contains(fixtures::OUAGADOUGOU) && s.explanation.contains("BFBOB001"));
    // An arrival at the old destination is now also off-route.
    feed.send_all(&j.crossings);
    feed.send(&j.arrival);
    assert_eq!(feed.open(&j.mrn, RuleId::Diversion).len(), 2);
}

#[test]
fn a_declared_route_raises_no_diversion() {
    let j = fixtures::journey(base(), 1);
    let mut feed = Feed::new();
    feed.send_all(&j.messages());
    assert!(feed.open(&j.mrn, RuleId::Diversion).is_empty());
}

#[test]
fn a_deviation_incident_is_a_diversion_and_evidence_for_others() {
    let j = fixtures::journey(base(), 1);
    let mut feed = Feed::new();
    feed.send_all(&until_release(&j));
    let changes = feed.send(&incident(
        &j,
        "DEV",
        10 * 60,
        IncidentCode::Deviation,
        vec![],
    ));
    let deviation_pos = feed.position;
    let ids = raised(&changes);
    assert!(ids
        .iter()
        .any(|(_, id)| *id == format!("DIVERSION:{}:incident:{deviation_pos}", j.mrn)));
    let seals = j.declaration_body().seals().cloned().collect();
    feed.send(&crossing_at(&j, "TGKPE001", 20 * 60, seals));
    let crossing = feed
        .open(&j.mrn, RuleId::Diversion)
        .into_iter()
        .find(|s| s.id.as_str().contains("crossing"))
        .unwrap();
    assert!(crossing.evidence.contains(&deviation_pos));
    assert!(crossing.explanation.contains("deviation incidents"));
}

// ---------------------------------------------------------------------------------------------
// SEAL_MISMATCH.

#[test]
fn different_seals_at_destination_raise_seal_mismatch() {
    let mut j = fixtures::journey(base(), 1);
    set_body(&mut j.control_results, |b| {
        if let MessageBody::ControlResults(c) = b {
            c.seals_found = vec![seal("TGS0000001A"), seal("FAKE0001")];
        }
    });
    let mut feed = Feed::new();
    let changes = feed.send_all(&j.messages()[..7]);
    let want = format!(
        "SEAL_MISMATCH:{}:destination:{}",
        j.mrn,
        fixtures::OUAGADOUGOU
    );
    assert!(
        raised(&changes).iter().any(|(_, id)| *id == want),
        "{changes:?}"
    );
    let s = feed.open(&j.mrn, RuleId::SealMismatch)[0];
    assert!(s.explanation.contains("FAKE0001"));
    assert!(s.explanation.contains("TGS0000001B"));
    assert!(s.explanation.contains("threshold"));
}

#[test]
fn seals_reported_broken_at_the_border_raise_seal_mismatch() {
    let mut j = fixtures::journey(base(), 1);
    set_body(&mut j.crossings[1], |b| {
        if let MessageBody::BorderCrossing(c) = b {
            c.seals_intact = false;
        }
    });
    let mut feed = Feed::new();
    feed.send_all(&j.messages()[..5]);
    let s = feed.open(&j.mrn, RuleId::SealMismatch);
    assert_eq!(s.len(), 1);
    assert!(s[0].explanation.contains("not intact"));
    assert!(s[0].id.as_str().ends_with(fixtures::CINKASSE_BF));
}

#[test]
fn an_incident_declaring_new_seals_changes_the_expected_set() {
    let mut j = fixtures::journey(base(), 1);
    let new = vec![seal("BFNEW0001")];
    for m in j.crossings.iter_mut().skip(1) {
        set_body(m, |b| {
            if let MessageBody::BorderCrossing(c) = b {
                c.seals_observed = new.clone();
            }
        });
    }
    set_body(&mut j.control_results, |b| {
        if let MessageBody::ControlResults(c) = b {
            c.seals_found = new.clone();
        }
    });
    let mut feed = Feed::new();
    feed.send_all(&until_release(&j));
    feed.send(&j.crossings[0]);
    // Re-sealed after the TG crossing (20 h) and before the BF one (21 h).
    feed.send(&incident(
        &j,
        "SEAL",
        20 * 60 + 30,
        IncidentCode::SealsBroken,
        new.clone(),
    ));
    feed.send_all(&j.crossings[1..]);
    feed.send_all(&[
        j.arrival.clone(),
        j.control_results.clone(),
        j.discharge.clone(),
    ]);
    assert!(
        feed.open(&j.mrn, RuleId::SealMismatch).is_empty(),
        "{:?}",
        feed.all_open()
    );
}

#[test]
fn a_seals_broken_incident_without_new_seals_fires_and_is_evidence() {
    let j = fixtures::journey(base(), 1);
    let mut feed = Feed::new();
    feed.send_all(&until_release(&j));
    feed.send(&incident(
        &j,
        "BRK",
        10 * 60,
        IncidentCode::SealsBroken,
        vec![],
    ));
    let broken_pos = feed.position;
    let s = feed.open(&j.mrn, RuleId::SealMismatch);
    assert_eq!(s.len(), 1);
    assert_eq!(s[0].severity, Severity::Medium);
    assert_eq!(s[0].evidence, vec![broken_pos]);
}

#[test]
fn matching_seals_everywhere_raise_no_seal_mismatch() {
    let j = fixtures::journey(base(), 1);
    let mut feed = Feed::new();
    feed.send_all(&j.messages());
    assert!(feed.open(&j.mrn, RuleId::SealMismatch).is_empty());
}

// ---------------------------------------------------------------------------------------------
// QUANTITY_DISCREPANCY.

fn with_control(mass: Option<u64>, packages: Option<u32>) -> (Feed, Journey) {
    let mut j = fixtures::journey(base(), 1);
    set_body(&mut j.control_results, |b| {
        if let MessageBody::ControlResults(c) = b {
            c.gross_mass_g_found = mass;
            c.packages_found = packages;
        }
    });
    let mut feed = Feed::new();
    feed.send_all(&j.messages());
    (feed, j)
}

#[test]
fn missing_mass_beyond_tolerance_raises_quantity_discrepancy() {
    // Declared 27,000,000 g; 2 % is 540,000 g, above the 50 kg floor.
    let (feed, j) = with_control(Some(26_000_000), Some(440));
    let s = feed.open(&j.mrn, RuleId::QuantityDiscrepancy);
    assert_eq!(s.len(), 1);
    assert!(s[0].explanation.contains("26000000 g"));
    assert!(s[0].explanation.contains("27000000 g"));
    assert!(s[0].explanation.contains("tolerance 540000 g"));
    assert!(s[0].explanation.contains("200 bp"));
}

#[test]
fn mass_within_tolerance_raises_nothing() {
    let (feed, j) = with_control(Some(26_460_000), Some(440));
    assert!(feed.open(&j.mrn, RuleId::QuantityDiscrepancy).is_empty());
    let (feed, j) = with_control(None, None);
    assert!(feed.open(&j.mrn, RuleId::QuantityDiscrepancy).is_empty());
}

#[test]
fn one_missing_package_raises_quantity_discrepancy() {
    let (feed, j) = with_control(Some(27_000_000), Some(439));
    let s = feed.open(&j.mrn, RuleId::QuantityDiscrepancy);
    assert_eq!(s.len(), 1);
    assert!(s[0].id.as_str().ends_with(":packages"));
    assert!(s[0].explanation.contains("tolerance 0"));
}

// ---------------------------------------------------------------------------------------------
// SHARED_VEHICLE / SHARED_SEAL.

#[test]
fn the_same_plate_on_two_open_movements_is_shared_until_one_arrives() {
    // Serials 1 and 10001 carry the same fixture plate, "BF 0001 GA".
    let a = fixtures::journey(base(), 1);
    let b = fixtures::journey(base(), 10_001);
    let mut feed = Feed::new();
    feed.send_all(&until_release(&a));
    let changes = feed.send_all(&until_release(&b));
    let ids = raised(&changes);
    assert_eq!(
        ids.iter()
            .filter(|(r, _)| *r == RuleId::SharedVehicle)
            .count(),
        2,
        "{ids:?}"
    );
    let s = feed.open(&a.mrn, RuleId::SharedVehicle)[0];
    assert!(s.explanation.contains("BF0001GA"));
    assert!(s.explanation.contains(b.mrn.as_str()));
    assert!(s.explanation.contains("at most 1"));
    assert_eq!(s.evidence.len(), 2);
    // Then a arrives: both clear.
    feed.send_all(&a.crossings);
    let changes = feed.send(&a.arrival);
    let gone = cleared(&changes);
    assert!(gone.iter().any(|id| id.starts_with("SHARED_VEHICLE")));
    assert!(feed.open(&a.mrn, RuleId::SharedVehicle).is_empty());
    assert!(feed.open(&b.mrn, RuleId::SharedVehicle).is_empty());
}

#[test]
fn different_vehicles_and_seals_share_nothing() {
    let a = fixtures::journey(base(), 1);
    let b = fixtures::journey(base(), 2);
    let mut feed = Feed::new();
    feed.send_all(&until_release(&a));
    feed.send_all(&until_release(&b));
    assert!(feed.all_open().is_empty(), "{:?}", feed.all_open());
}

#[test]
fn a_plate_reused_after_the_first_movement_closed_is_not_shared() {
    let a = fixtures::journey(base(), 1);
    let b = fixtures::journey(base(), 10_001);
    let mut feed = Feed::new();
    feed.send_all(&a.messages());
    feed.send_all(&until_release(&b));
    assert!(feed.open(&b.mrn, RuleId::SharedVehicle).is_empty());
}

#[test]
fn the_same_seal_on_two_open_movements_is_shared() {
    let a = fixtures::journey(base(), 1);
    let mut b = fixtures::journey(base(), 2);
    set_body(&mut b.declaration, |body| {
        if let MessageBody::TransitDeclaration(d) = body {
            d.equipment[0].seals = vec![seal("TGS0000001A"), seal("TGS0000002B")];
        }
    });
    let mut feed = Feed::new();
    feed.send_all(&until_release(&a));
    feed.send_all(&until_release(&b));
    let s = feed.open(&b.mrn, RuleId::SharedSeal);
    assert_eq!(s.len(), 1);
    assert!(s[0].explanation.contains("TGS0000001A"));
    assert_eq!(feed.open(&a.mrn, RuleId::SharedSeal).len(), 1);
    // A cancellation-free close: b's journey completes, a's signal clears.
    feed.send_all(&b.crossings);
    feed.send(&b.arrival);
    assert!(feed.open(&a.mrn, RuleId::SharedSeal).is_empty());
}

// ---------------------------------------------------------------------------------------------
// TOO_FAST.

#[test]
fn a_crossing_one_hour_after_release_at_lome_is_too_fast() {
    let mut j = fixtures::journey(base(), 1);
    set_body(&mut j.crossings[0], |b| {
        if let MessageBody::BorderCrossing(c) = b {
            c.crossed_at = at(3 * 60);
        }
    });
    let mut feed = Feed::new();
    feed.send_all(&j.messages());
    let s = feed.open(&j.mrn, RuleId::TooFast);
    assert_eq!(s.len(), 1, "{:?}", feed.all_open());
    assert_eq!(
        s[0].id.as_str(),
        format!(
            "TOO_FAST:{}:{}->{}",
            j.mrn,
            fixtures::LOME_PORT,
            fixtures::CINKASSE_TG
        )
    );
    assert!(s[0].explanation.contains("took 3600 s"));
    assert!(s[0].explanation.contains("minimum of 28800 s"));
}

#[test]
fn an_unlisted_segment_uses_the_default_minimum() {
    let mut config = FraudConfig::default();
    config.segment_minimums.clear();
    config.segment_minimum_seconds_default = 2 * 3600;
    let j = fixtures::journey(base(), 1);
    let mut feed = Feed::with(config);
    feed.send_all(&j.messages());
    // Only the TG -> BF hop at Cinkassé (1 h) is under 2 h.
    let s = feed.open(&j.mrn, RuleId::TooFast);
    assert_eq!(s.len(), 1);
    assert!(s[0].explanation.contains("minimum of 7200 s"));
}

#[test]
fn the_fixture_timings_are_plausible() {
    let j = fixtures::journey(base(), 1);
    let mut feed = Feed::new();
    feed.send_all(&j.messages());
    assert!(feed.open(&j.mrn, RuleId::TooFast).is_empty());
}

// ---------------------------------------------------------------------------------------------
// REPEATED_INCIDENTS.

fn incidents_for_carrier(spacing_days: i64, count: u32) -> (Feed, Vec<Mrn>) {
    let mut feed = Feed::new();
    let mut mrns = Vec::new();
    for n in 0..count {
        let j = fixtures::journey(base(), 100 + n);
        feed.send_all(&until_release(&j));
        let minutes = i64::from(n) * spacing_days * 24 * 60 + 5 * 60;
        feed.send(&incident(
            &j,
            "ACC",
            minutes,
            IncidentCode::Accident,
            vec![],
        ));
        mrns.push(j.mrn.clone());
    }
    (feed, mrns)
}

#[test]
fn three_incidents_of_one_carrier_within_30_days_are_repeated() {
    let (feed, mrns) = incidents_for_carrier(10, 3);
    for mrn in &mrns {
        let s = feed.open(mrn, RuleId::RepeatedIncidents);
        assert_eq!(s.len(), 1, "{mrn}");
        assert!(s[0].id.as_str().ends_with("carrier:BF-TRANS-0042"));
        assert!(s[0].explanation.contains("threshold: 3 within 2592000 s"));
        assert_eq!(s[0].evidence.len(), 3);
    }
}

#[test]
fn two_incidents_or_incidents_spread_out_are_not_repeated() {
    let (feed, _) = incidents_for_carrier(1, 2);
    assert!(feed
        .engine
        .signals(&SignalFilter {
            rule: Some(RuleId::RepeatedIncidents),
            ..SignalFilter::default()
        })
        .is_empty());
    let (feed, _) = incidents_for_carrier(16, 3);
    assert!(feed
        .engine
        .signals(&SignalFilter {
            rule: Some(RuleId::RepeatedIncidents),
            ..SignalFilter::default()
        })
        .is_empty());
}

// ---------------------------------------------------------------------------------------------
// HIGH_RISK_GOODS and the risk score.

#[test]
fn fuel_with_another_signal_is_high_risk_and_clears_with_it() {
    let mut j = fixtures::journey(base(), 1);
    let bf = j.crossings.pop().unwrap();
    let mut feed = Feed::new();
    feed.send_all(&until_release(&j));
    feed.send_all(&j.crossings);
    assert!(
        feed.open(&j.mrn, RuleId::HighRiskGoods).is_empty(),
        "alone, fuel is no signal"
    );
    feed.send(&j.arrival);
    let s = feed.open(&j.mrn, RuleId::HighRiskGoods);
    assert_eq!(s.len(), 1);
    assert_eq!(s[0].severity, Severity::Critical);
    assert!(s[0].explanation.contains("271019 (prefix 2710)"));
    assert!(s[0].explanation.contains("MISSING_CROSSING"));
    assert_eq!(feed.engine.risk_score(&j.mrn), 60);
    let changes = feed.send(&bf);
    assert!(cleared(&changes).contains(&format!("HIGH_RISK_GOODS:{}", j.mrn)));
    assert_eq!(feed.engine.risk_score(&j.mrn), 0);
}

#[test]
fn ordinary_goods_with_another_signal_are_not_high_risk() {
    let mut j = fixtures::journey(base(), 1);
    set_body(&mut j.declaration, |b| {
        if let MessageBody::TransitDeclaration(d) = b {
            d.goods[1].hs_code = "100630".parse().unwrap();
        }
    });
    j.crossings.pop();
    let mut feed = Feed::new();
    feed.send_all(&j.messages());
    assert_eq!(feed.open(&j.mrn, RuleId::MissingCrossing).len(), 1);
    assert!(feed.open(&j.mrn, RuleId::HighRiskGoods).is_empty());
    assert_eq!(feed.engine.risk_score(&j.mrn), 40);
}

#[test]
fn the_risk_score_is_capped_at_100() {
    let mut j = fixtures::journey(base(), 1);
    j.crossings.clear();
    set_body(&mut j.control_results, |b| {
        if let MessageBody::ControlResults(c) = b {
            c.seals_found = vec![seal("OTHER1")];
            c.packages_found = Some(1);
        }
    });
    let mut feed = Feed::new();
    feed.send_all(&j.messages());
    // MISSING_CROSSING 40 + SEAL_MISMATCH 35 + QUANTITY 30 + HIGH_RISK 20 = 125.
    assert_eq!(feed.engine.risk_score(&j.mrn), 100);
}

// ---------------------------------------------------------------------------------------------
// Queries, determinism, configuration.

#[test]
fn queries_filter_by_rule_severity_and_status() {
    let mut j = fixtures::journey(base(), 1);
    let bf = j.crossings.pop().unwrap();
    let mut feed = Feed::new();
    feed.send_all(&j.messages());
    let critical = feed.engine.signals(&SignalFilter {
        severity: Some(Severity::Critical),
        ..SignalFilter::default()
    });
    assert_eq!(critical.len(), 1);
    assert_eq!(critical[0].rule, RuleId::HighRiskGoods);
    feed.send(&bf);
    assert!(feed.all_open().is_empty());
    let closed = feed.engine.signals(&SignalFilter {
        open: Some(false),
        ..SignalFilter::default()
    });
    assert_eq!(closed.len(), 2);
    assert_eq!(feed.engine.signals_for(&j.mrn).len(), 2);
}

fn busy_scenario() -> Feed {
    let mut feed = Feed::new();
    let a = fixtures::journey(base(), 1);
    let mut b = fixtures::journey(base(), 10_001);
    b.crossings.pop();
    feed.send_all(&until_release(&a));
    feed.send_all(&until_release(&b));
    feed.send(&incident(
        &b,
        "DEV",
        6 * 60,
        IncidentCode::Deviation,
        vec![],
    ));
    feed.send_all(&b.crossings);
    feed.send(&b.arrival);
    feed.engine.tick(at(20 * 24 * 60));
    feed
}

#[test]
fn the_same_input_gives_the_same_hash_and_a_rebuild_equals_live() {
    let one = busy_scenario();
    let two = busy_scenario();
    assert_eq!(one.engine.state_hash(), two.engine.state_hash());
    assert!(!one.all_open().is_empty());
    // A rebuild from the log, with the same tick, gives the same state.
    let mut rebuilt = SignalEngine::new(FraudConfig::default());
    for (pos, mrn, meta, event) in &one.log {
        rebuilt.apply(*pos, mrn, meta, event);
    }
    rebuilt.tick(at(20 * 24 * 60));
    assert_eq!(rebuilt.state_hash_hex(), one.engine.state_hash_hex());
    // Redelivering an old position changes nothing.
    let (pos, mrn, meta, event) = one.log[3].clone();
    assert!(rebuilt.apply(pos, &mrn, &meta, &event).is_empty());
    assert_eq!(rebuilt.state_hash(), one.engine.state_hash());
    // Different input (one event fewer), different hash. The clock itself is not state: a
    // tick that judges nothing new leaves the hash alone, so live and rebuilt engines compare
    // equal whenever they have judged the same deadlines.
    let mut other = SignalEngine::new(FraudConfig::default());
    for (pos, mrn, meta, event) in &one.log[..one.log.len() - 1] {
        other.apply(*pos, mrn, meta, event);
    }
    other.tick(at(20 * 24 * 60));
    assert_ne!(other.state_hash(), one.engine.state_hash());
    let before = one.engine.state_hash();
    let mut later = one.engine.clone();
    later.tick(at(400 * 24 * 60));
    assert_eq!(later.state_hash(), before);
}

#[test]
fn config_defaults_are_documented_values_and_overridable() {
    let d = FraudConfig::default();
    assert_eq!(d.overdue_grace_seconds, 86_400);
    assert_eq!(d.incidents_count_min, 3);
    assert_eq!(d.high_risk_hs_prefixes.len(), 2 + 6 + 11);
    assert!(d.high_risk_hs_prefixes.contains(&"1517".to_owned()));
    assert!(d.high_risk_hs_prefixes.contains(&"2208".to_owned()));
    let round: FraudConfig = serde_json::from_str(&serde_json::to_string(&d).unwrap()).unwrap();
    assert_eq!(round, d);
    let partial: FraudConfig =
        serde_json::from_str(r#"{"packageTolerance": 2, "weights": {"overdue": 50}}"#).unwrap();
    assert_eq!(partial.package_tolerance, 2);
    assert_eq!(partial.weights.overdue, 50);
    assert_eq!(partial.weights.diversion, 40);
    assert_eq!(partial.mass_tolerance_bp, 200);
    assert!(serde_json::from_str::<FraudConfig>(r#"{"typo": 1}"#).is_err());
    let codes: Vec<&str> = RuleId::ALL.iter().map(|r| r.code()).collect();
    assert_eq!(codes.len(), 10);
    assert_eq!(
        serde_json::to_string(&RuleId::QuantityDiscrepancy).unwrap(),
        "\"QUANTITY_DISCREPANCY\""
    );
}

// ---------------------------------------------------------------------------------------------
// Snapshots.

/// One input of the engine, in order.
// Test-only and a few dozen values: boxing would only add noise.
#[allow(clippy::large_enum_variant)]
#[derive(Clone)]
enum Step {
    Event(u64, Mrn, EventMeta, MovementEvent),
    Tick(Timestamp),
}

/// A log where most rules fire and some clear again, with ticks in between, fed to an engine
/// with non-default thresholds.
fn snapshot_scenario(config: FraudConfig) -> Vec<Step> {
    let mut feed = Feed::with(config);
    let mut steps = Vec::new();
    let send = |feed: &mut Feed, steps: &mut Vec<Step>, m: &InboundMessage| {
        let before = feed.log.len();
        feed.send(m);
        steps.extend(
            feed.log[before..]
                .iter()
                .map(|(p, mrn, meta, e)| Step::Event(*p, mrn.clone(), meta.clone(), e.clone())),
        );
    };
    // a and b share a plate; c shares a seal with a; b deviates and skips a crossing.
    let a = fixtures::journey(base(), 1);
    let mut b = fixtures::journey(base(), 10_001);
    let mut c = fixtures::journey(base(), 2);
    set_body(&mut c.declaration, |body| {
        if let MessageBody::TransitDeclaration(d) = body {
            d.equipment[0].seals = vec![seal("TGS0000001A"), seal("TGS0000002B")];
        }
    });
    b.crossings.pop();
    for j in [&a, &b, &c] {
        for m in until_release(j) {
            send(&mut feed, &mut steps, &m);
        }
    }
    send(
        &mut feed,
        &mut steps,
        &incident(&b, "DEV", 6 * 60, IncidentCode::Deviation, vec![]),
    );
    send(
        &mut feed,
        &mut steps,
        &incident(&c, "ACC", 7 * 60, IncidentCode::Accident, vec![]),
    );
    for m in b.crossings.iter().chain([&b.arrival]) {
        send(&mut feed, &mut steps, m);
    }
    steps.push(Step::Tick(at(9 * 24 * 60)));
    // Then a completes with short packages (QUANTITY_DISCREPANCY with fuel: HIGH_RISK_GOODS),
    // which clears the shared plate and seal and a's OVERDUE.
    let mut a = a;
    set_body(&mut a.control_results, |body| {
        if let MessageBody::ControlResults(r) = body {
            r.packages_found = Some(1);
        }
    });
    for m in a.crossings.iter().chain([&a.arrival, &a.control_results]) {
        send(&mut feed, &mut steps, m);
    }
    steps.push(Step::Tick(at(30 * 24 * 60)));
    for m in c.crossings.iter().chain([&c.arrival]) {
        send(&mut feed, &mut steps, m);
    }
    steps
}

fn run(engine: &mut SignalEngine, step: &Step) -> Vec<SignalChange> {
    match step {
        Step::Event(p, mrn, meta, e) => engine.apply(*p, mrn, meta, e),
        Step::Tick(t) => engine.tick(*t),
    }
}

fn open_mrns(engine: &SignalEngine) -> std::collections::BTreeSet<Mrn> {
    engine
        .signals(&SignalFilter {
            open: Some(true),
            ..SignalFilter::default()
        })
        .into_iter()
        .map(|s| s.mrn.clone())
        .collect()
}

#[test]
fn the_engine_survives_a_snapshot_at_any_step_with_its_thresholds() {
    let config = FraudConfig {
        overdue_grace_seconds: 3600,
        incidents_count_min: 2,
        ..FraudConfig::default()
    };
    let steps = snapshot_scenario(config.clone());
    let mut rules_seen = std::collections::BTreeSet::new();
    let mut cleared_seen = 0;
    for split in 0..=steps.len() {
        let mut original = SignalEngine::new(config.clone());
        for s in &steps[..split] {
            run(&mut original, s);
        }
        let bytes = rmp_serde::to_vec_named(&original).unwrap();
        let mut restored: SignalEngine = rmp_serde::from_slice(&bytes).unwrap();
        assert_eq!(restored.state_hash(), original.state_hash(), "at {split}");
        assert_eq!(restored.config(), &config);
        for s in &steps[split..] {
            let changes = run(&mut original, s);
            assert_eq!(
                run(&mut restored, s),
                changes,
                "after a snapshot at {split}"
            );
            assert_eq!(restored.state_hash(), original.state_hash());
            assert_eq!(
                restored.movements_with_open_signals(),
                &open_mrns(&restored),
                "the open set follows the signals"
            );
            for c in &changes {
                match c {
                    SignalChange::Raised(s) => {
                        rules_seen.insert(s.rule);
                    }
                    SignalChange::Cleared { .. } => cleared_seen += 1,
                }
            }
        }
        assert_eq!(
            restored.signals(&SignalFilter::default()),
            original.signals(&SignalFilter::default())
        );
        for mrn in restored.movements_with_open_signals() {
            assert_eq!(restored.risk_score(mrn), original.risk_score(mrn));
        }
    }
    // The scenario exercises most rules, raising and clearing.
    for rule in [
        RuleId::Overdue,
        RuleId::MissingCrossing,
        RuleId::Diversion,
        RuleId::QuantityDiscrepancy,
        RuleId::SharedVehicle,
        RuleId::SharedSeal,
        RuleId::RepeatedIncidents,
        RuleId::HighRiskGoods,
    ] {
        assert!(
            rules_seen.contains(&rule),
            "{rule} never fired: {rules_seen:?}"
        );
    }
    assert!(cleared_seen > 0);
}
