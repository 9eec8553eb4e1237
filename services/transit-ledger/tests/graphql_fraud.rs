//! Every fraud rule end to end, over real HTTP: the real service (a `FileStore` in a temporary
//! folder, the axum server on a free port, the ledger clock a `ManualClock`) is given messages
//! through `POST /v1/messages`, and the signals are read back through `fraudSignals` and
//! `movement { signals riskScore }` on `POST /graphql`.
//!
//! Each rule has a positive test (the scenario must raise it: rule, severity, MRN, an
//! explanation naming the threshold, status open, and evidence positions that are events of the
//! movements concerned, as `GET /v1/movements/{mrn}/events` lists them) and a negative one (a
//! near miss just on the clean side of the threshold must not). Rules that clear have a
//! clearing test, and the risk score has its own. Thresholds come from `FraudConfig::default()`,
//! which is what the service runs with; the documented values are noted beside each use.
//!
//! The tests read as given (a journey, built from the fixtures and changed where the scenario
//! differs), when (its messages are posted, and the test waits until the projections reflect
//! them), then (the signals).
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;

use fraud_signals::FraudConfig;
use ledger_store::Clock;
use serde_json::{json, Value};
use transit_contract::fixtures::{self, Journey};
use transit_contract::ids::{Mrn, OfficeCode, SealId, Timestamp};
use transit_contract::messages::{
    Amendment, ArrivalNotification, BorderCrossing, ControlResults, DeclarationChanges,
    Endorsement, InboundMessage, Incident, IncidentCode, MessageBody, Place, Sender,
    TransitDeclaration,
};

use common::{base, Server, POLL, WAIT};

const SECOND: i64 = 1000;
const MINUTE: i64 = 60 * SECOND;
const HOUR: i64 = 60 * MINUTE;

/// The thresholds the service runs with (`projection::Views::default`).
fn config() -> FraudConfig {
    FraudConfig::default()
}

fn shift(t: Timestamp, ms: i64) -> Timestamp {
    Timestamp::from_unix_millis(t.unix_millis() + ms).unwrap()
}

fn lit<T: std::str::FromStr>(s: &str) -> T
where
    T::Err: std::fmt::Debug,
{
    s.parse().unwrap()
}

fn message(
    serial: u32,
    step: &str,
    office: &str,
    sent_at: Timestamp,
    body: MessageBody,
) -> InboundMessage {
    let office: OfficeCode = lit(office);
    InboundMessage {
        message_id: lit(&format!("FT-{serial:08}-{step}")),
        correlation_id: None,
        sender: Sender {
            country: office.country(),
            office,
        },
        sent_at,
        body,
    }
}

// ---------------------------------------------------------------------------------------------
// Given: a journey.

/// One movement's messages: the fixture journey of `serial` (Lomé -> Cinkassé TG -> Cinkassé
/// BF -> Ouagadougou, released at +2 h, crossings at +20 h and +21 h, arrival at +36 h), changed
/// where a scenario differs.
#[derive(Debug, Clone)]
struct Trip {
    serial: u32,
    j: Journey,
}

impl Trip {
    /// The fixture journey with ordinary goods only: its fuel item is re-coded as rice, so that
    /// HIGH_RISK_GOODS does not ride along with the rule under test.
    fn new(serial: u32) -> Trip {
        Trip::starting(base(), serial)
    }

    /// [`Trip::new`] with every time shifted to start at `start`.
    fn starting(start: Timestamp, serial: u32) -> Trip {
        let config = config();
        Trip::with_fuel_starting(start, serial).declaration(|d| {
            for g in &mut d.goods {
                if config.high_risk_prefix(&g.hs_code).is_some() {
                    g.hs_code = lit("100630");
                }
            }
        })
    }

    /// The fixture journey as it is: it carries fuel oil (HS 271019), a high-risk good.
    fn with_fuel(serial: u32) -> Trip {
        Trip::with_fuel_starting(base(), serial)
    }

    fn with_fuel_starting(start: Timestamp, serial: u32) -> Trip {
        Trip {
            serial,
            j: fixtures::journey(start, serial),
        }
    }

    fn mrn(&self) -> &Mrn {
        &self.j.mrn
    }

    fn decl(&self) -> &TransitDeclaration {
        self.j.declaration_body()
    }

    fn declaration(mut self, f: impl FnOnce(&mut TransitDeclaration)) -> Trip {
        let MessageBody::TransitDeclaration(d) = &mut self.j.declaration.body else {
            panic!("the fixture declaration is a TransitDeclaration");
        };
        f(d);
        self
    }

    /// Changes crossing `index` (0: out of Togo, 1: into Burkina Faso).
    fn crossing(mut self, index: usize, f: impl FnOnce(&mut BorderCrossing)) -> Trip {
        let MessageBody::BorderCrossing(c) = &mut self.j.crossings[index].body else {
            panic!("the fixture crossings are BorderCrossings");
        };
        f(c);
        self
    }

    fn arrival(mut self, f: impl FnOnce(&mut ArrivalNotification)) -> Trip {
        let MessageBody::ArrivalNotification(a) = &mut self.j.arrival.body else {
            panic!("the fixture arrival is an ArrivalNotification");
        };
        f(a);
        // The office of arrival reports it a minute after the fact, as in the fixtures.
        let (office, arrived_at) = (a.office.clone(), a.arrived_at);
        self.j.arrival.sender = Sender {
            country: office.country(),
            office,
        };
        self.j.arrival.sent_at = shift(arrived_at, MINUTE);
        self
    }

    fn control(mut self, f: impl FnOnce(&mut ControlResults)) -> Trip {
        let MessageBody::ControlResults(c) = &mut self.j.control_results.body else {
            panic!("the fixture control results are ControlResults");
        };
        f(c);
        self
    }

    /// Guarantee registration, declaration, release.
    fn until_release(&self) -> Vec<InboundMessage> {
        vec![
            self.j.guarantee_registration.clone(),
            self.j.declaration.clone(),
            self.j.release.clone(),
        ]
    }

    /// [`Trip::until_release`], then both crossings.
    fn until_crossings(&self) -> Vec<InboundMessage> {
        let mut out = self.until_release();
        out.extend(self.j.crossings.iter().cloned());
        out
    }

    /// [`Trip::until_crossings`], then the arrival.
    fn until_arrival(&self) -> Vec<InboundMessage> {
        let mut out = self.until_crossings();
        out.push(self.j.arrival.clone());
        out
    }

    /// The whole journey, to the discharge.
    fn whole(&self) -> Vec<InboundMessage> {
        self.j.messages()
    }

    /// Crossing `index` (0: out of Togo, 1: into Burkina Faso) alone.
    fn crossing_msg(&self, index: usize) -> InboundMessage {
        self.j.crossings[index].clone()
    }

    /// A crossing at `office`, with the declared seals intact.
    fn crossing_at(&self, step: &str, office: &str, crossed_at: Timestamp) -> InboundMessage {
        message(
            self.serial,
            step,
            office,
            shift(crossed_at, MINUTE),
            MessageBody::BorderCrossing(BorderCrossing {
                mrn: self.mrn().clone(),
                office: lit(office),
                crossed_at,
                seals_intact: true,
                seals_observed: self.decl().seals().cloned().collect(),
            }),
        )
    }

    /// An endorsed incident near Ouagadougou.
    fn incident(
        &self,
        step: &str,
        occurred_at: Timestamp,
        code: IncidentCode,
        new_seals: Vec<SealId>,
    ) -> InboundMessage {
        message(
            self.serial,
            step,
            fixtures::CINKASSE_BF,
            shift(occurred_at, MINUTE),
            MessageBody::Incident(Incident {
                mrn: self.mrn().clone(),
                code,
                place: Place {
                    locode: Some(lit("BFOUA")),
                    latitude_e7: None,
                    longitude_e7: None,
                },
                occurred_at,
                endorsed_by: Some(Endorsement {
                    authority: "Police des frontières".to_owned(),
                    country: lit("BF"),
                }),
                new_seals,
                new_transport: None,
                description: "reported en route".to_owned(),
            }),
        )
    }

    /// An amendment before release (the fixture releases at +2 h).
    fn amendment(&self, step: &str, changes: DeclarationChanges) -> InboundMessage {
        message(
            self.serial,
            step,
            fixtures::LOME_PORT,
            shift(base_of(&self.j), HOUR),
            MessageBody::Amendment(Amendment {
                mrn: self.mrn().clone(),
                changes,
            }),
        )
    }

    /// Control results sent again, e.g. after a re-weighing.
    fn control_again(&self, step: &str, f: impl FnOnce(&mut ControlResults)) -> InboundMessage {
        let mut m = self.j.control_results.clone();
        m.message_id = lit(&format!("FT-{:08}-{step}", self.serial));
        m.sent_at = shift(m.sent_at, HOUR);
        let MessageBody::ControlResults(c) = &mut m.body else {
            panic!("the fixture control results are ControlResults");
        };
        f(c);
        m
    }
}

fn crossed_at(m: &InboundMessage) -> Timestamp {
    match &m.body {
        MessageBody::BorderCrossing(c) => c.crossed_at,
        _ => panic!("not a crossing"),
    }
}

/// The base time a fixture journey was built from (its guarantee registration's time).
fn base_of(j: &Journey) -> Timestamp {
    j.guarantee_registration.sent_at
}

/// When OVERDUE fires for `trip`: time limit plus `overdue_grace_seconds` (86,400 s).
fn deadline_ms(trip: &Trip) -> i64 {
    let grace_s = i64::try_from(config().overdue_grace_seconds).unwrap();
    trip.decl().time_limit.unix_millis() + grace_s * SECOND
}

// ---------------------------------------------------------------------------------------------
// When: messages are posted.

/// Posts the messages over HTTP, in order, each of which must be recorded, and waits until the
/// projections reflect them; returns the positions of each message's events.
async fn when(server: &Server, messages: &[InboundMessage]) -> Vec<Vec<u64>> {
    let mut positions = Vec::new();
    for m in messages {
        positions.push(server.post(m).await);
    }
    let last = positions.iter().flatten().max().copied().unwrap();
    server.caught_up(last).await;
    positions
}

/// Sets the ledger clock, then records a message touching no movement (a guarantee
/// registration), so that the log moves on at the new time as well as the clock; the deadline
/// rules run on the ledger clock.
async fn when_the_clock_reads(server: &Server, now_ms: i64, witness_serial: u32) {
    server.clock.set(now_ms);
    let witness = fixtures::journey(base(), witness_serial).guarantee_registration;
    when(server, &[witness]).await;
}

// ---------------------------------------------------------------------------------------------
// Then: signals.

const SIGNAL: &str = "id rule severity mrn explanation evidence firedAt open clearedAt";

/// `fraudSignals` with `filter`, every page's nodes (ordered by id).
async fn signals(server: &Server, filter: Value) -> Vec<Value> {
    let query = format!(
        "query($filter: FraudSignalsFilter, $after: String) {{ fraudSignals(filter: $filter, \
         after: $after) {{ edges {{ cursor node {{ {SIGNAL} }} }} pageInfo {{ hasNextPage }} }} }}"
    );
    let mut out = Vec::new();
    let mut after = Value::Null;
    loop {
        let data = server
            .data(&query, json!({ "filter": filter, "after": after }))
            .await;
        let page = &data["fraudSignals"];
        let edges = page["edges"].as_array().unwrap();
        out.extend(edges.iter().map(|e| e["node"].clone()));
        if page["pageInfo"]["hasNextPage"] != json!(true) {
            return out;
        }
        after = edges.last().unwrap()["cursor"].clone();
    }
}

/// `movement(mrn) { signals riskScore }`; the risk score is checked against `riskScore(mrn)`.
async fn movement_signals(server: &Server, mrn: &Mrn) -> (Vec<Value>, u64) {
    let query = format!(
        "query($mrn: String!) {{ movement(mrn: $mrn) {{ riskScore signals {{ {SIGNAL} }} }} \
         riskScore(mrn: $mrn) }}"
    );
    let data = server.data(&query, json!({ "mrn": mrn.as_str() })).await;
    let movement = &data["movement"];
    assert!(movement.is_object(), "movement {mrn} not found: {data}");
    assert_eq!(movement["riskScore"], data["riskScore"], "{data}");
    (
        movement["signals"].as_array().unwrap().clone(),
        movement["riskScore"].as_u64().unwrap(),
    )
}

/// The rules of the open signals of `mrn`, sorted, each once.
async fn open_rules(server: &Server, mrn: &Mrn) -> Vec<String> {
    let (signals, _) = movement_signals(server, mrn).await;
    let mut rules: Vec<String> = signals
        .iter()
        .filter(|s| s["open"] == json!(true))
        .map(|s| s["rule"].as_str().unwrap().to_owned())
        .collect();
    rules.sort();
    rules.dedup();
    rules
}

async fn risk_score(server: &Server, mrn: &Mrn) -> u64 {
    movement_signals(server, mrn).await.1
}

/// Then: the open signals of `rule` on `mrn`, the same through `fraudSignals(filter)` and
/// through `movement { signals }`, each an open, explained finding of that rule and `severity`.
async fn open_signals(server: &Server, mrn: &Mrn, rule: &str, severity: &str) -> Vec<Value> {
    let by_filter = signals(
        server,
        json!({ "mrn": mrn.as_str(), "rule": rule, "open": true }),
    )
    .await;
    let (of_movement, _) = movement_signals(server, mrn).await;
    let mut of_movement: Vec<Value> = of_movement
        .into_iter()
        .filter(|s| s["rule"] == json!(rule) && s["open"] == json!(true))
        .collect();
    of_movement.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
    assert_eq!(
        by_filter, of_movement,
        "fraudSignals and movement.signals differ"
    );
    for s in &by_filter {
        assert_eq!(s["rule"], json!(rule), "{s}");
        assert_eq!(s["severity"], json!(severity), "{s}");
        assert_eq!(s["mrn"], json!(mrn.as_str()), "{s}");
        assert_eq!(s["open"], json!(true), "{s}");
        assert_eq!(s["clearedAt"], Value::Null, "{s}");
        assert!(
            s["id"]
                .as_str()
                .unwrap()
                .starts_with(&format!("{rule}:{mrn}")),
            "{s}"
        );
        let explanation = s["explanation"].as_str().unwrap();
        assert!(explanation.contains("threshold"), "{s}");
        assert!(s["firedAt"].as_str().is_some_and(|t| !t.is_empty()), "{s}");
    }
    by_filter
}

/// Then: exactly one open signal of `rule` on `mrn`, as [`open_signals`] checks it.
async fn the_open_signal(server: &Server, mrn: &Mrn, rule: &str, severity: &str) -> Value {
    let found = open_signals(server, mrn, rule, severity).await;
    assert_eq!(found.len(), 1, "one open {rule} on {mrn}: {found:?}");
    found.into_iter().next().unwrap()
}

/// Then: no signal of `rule` on `mrn`, open or cleared, through either query.
async fn assert_no_signal(server: &Server, mrn: &Mrn, rule: &str) {
    let by_filter = signals(server, json!({ "mrn": mrn.as_str(), "rule": rule })).await;
    assert_eq!(by_filter, Vec::<Value>::new(), "{rule} on {mrn}");
    let (of_movement, _) = movement_signals(server, mrn).await;
    assert!(
        of_movement.iter().all(|s| s["rule"] != json!(rule)),
        "{rule} on {mrn}: {of_movement:?}"
    );
}

/// Then: `mrn` has no signal at all, and a risk score of 0.
async fn assert_clean(server: &Server, mrn: &Mrn) {
    let (of_movement, score) = movement_signals(server, mrn).await;
    assert_eq!(of_movement, Vec::<Value>::new(), "signals on {mrn}");
    assert_eq!(score, 0, "risk score of {mrn}");
}

/// Then: the evidence of `signal` is non-empty, ascending, and every position is an event of
/// one of `mrns`, as `GET /v1/movements/{mrn}/events` lists them; returns (MRN, event type) per
/// position.
async fn evidence(server: &Server, signal: &Value, mrns: &[&Mrn]) -> Vec<(String, String)> {
    let mut recorded: BTreeMap<u64, (String, String)> = BTreeMap::new();
    for mrn in mrns {
        let (status, body) = server
            .get(&format!("/v1/movements/{mrn}/events?limit=1000"))
            .await;
        assert_eq!(status, reqwest::StatusCode::OK, "{body}");
        for e in body["events"].as_array().unwrap() {
            assert_eq!(e["stream"], json!(format!("movement-{mrn}")));
            recorded.insert(
                e["position"].as_u64().unwrap(),
                (mrn.to_string(), e["eventType"].as_str().unwrap().to_owned()),
            );
        }
        assert_eq!(body["nextFrom"], Value::Null, "one page holds {mrn}");
    }
    let positions: Vec<u64> = signal["evidence"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_u64().unwrap())
        .collect();
    assert!(!positions.is_empty(), "no evidence: {signal}");
    assert!(
        positions.windows(2).all(|w| w[0] < w[1]),
        "evidence not ascending: {signal}"
    );
    positions
        .iter()
        .map(|p| {
            recorded
                .get(p)
                .cloned()
                .unwrap_or_else(|| panic!("evidence {p} is no event of {mrns:?}: {signal}"))
        })
        .collect()
}

/// [`evidence`] of a signal about one movement: its event types.
async fn evidence_types(server: &Server, signal: &Value, mrn: &Mrn) -> Vec<String> {
    evidence(server, signal, &[mrn])
        .await
        .into_iter()
        .map(|(_, t)| t)
        .collect()
}

/// Polls `fraudSignals` until `rule` is open on `mrn`: the deadline rules run on the ledger
/// clock, asynchronously to the reads.
async fn wait_for_open(server: &Server, mrn: &Mrn, rule: &str) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let found = signals(
            server,
            json!({ "mrn": mrn.as_str(), "rule": rule, "open": true }),
        )
        .await;
        if !found.is_empty() {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{rule} never raised on {mrn}"
        );
        tokio::time::sleep(POLL).await;
    }
}

fn rfc3339(ms: i64) -> String {
    Timestamp::from_unix_millis(ms).unwrap().to_rfc3339()
}

fn strs(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

// ---------------------------------------------------------------------------------------------
// OVERDUE.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overdue_is_raised_once_the_clock_passes_the_time_limit_plus_grace() {
    let server = Server::start().await;
    // Given a movement released and seen at both borders, but never arrived.
    let trip = Trip::new(101);
    when(&server, &trip.until_crossings()).await;
    assert_clean(&server, trip.mrn()).await;

    // When the ledger clock reaches the time limit plus the grace (86,400 s).
    let deadline = deadline_ms(&trip);
    when_the_clock_reads(&server, deadline, 191).await;
    wait_for_open(&server, trip.mrn(), "OVERDUE").await;

    // Then OVERDUE, fired at the deadline, naming the limit and the grace.
    let s = the_open_signal(&server, trip.mrn(), "OVERDUE", "HIGH").await;
    assert_eq!(s["id"], json!(format!("OVERDUE:{}", trip.mrn())));
    assert_eq!(s["firedAt"], json!(rfc3339(deadline)));
    let explanation = s["explanation"].as_str().unwrap();
    assert!(
        explanation.contains(&trip.decl().time_limit.to_string()),
        "{explanation}"
    );
    let grace = format!("grace of {} s", config().overdue_grace_seconds);
    assert!(explanation.contains(&grace), "{explanation}");
    assert_eq!(
        evidence_types(&server, &s, trip.mrn()).await,
        strs(&["TransitDeclared", "TransitReleased"])
    );
    assert_eq!(open_rules(&server, trip.mrn()).await, strs(&["OVERDUE"]));
    assert_eq!(
        risk_score(&server, trip.mrn()).await,
        u64::from(config().weights.overdue)
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overdue_is_not_raised_a_second_before_the_deadline_nor_after_an_arrival() {
    let server = Server::start().await;
    // Given three released movements: `due` and `arrived` with the same deadline, `early` one
    // second later; `arrived` has arrived.
    let due = Trip::new(111);
    let early = Trip::starting(shift(base(), SECOND), 112);
    let arrived = Trip::new(113);
    assert_eq!(deadline_ms(&early), deadline_ms(&due) + SECOND);
    when(&server, &due.until_crossings()).await;
    when(&server, &early.until_crossings()).await;
    when(&server, &arrived.until_arrival()).await;

    // When the clock reads `due`'s deadline: `due` is overdue, which shows that the deadline
    // rules ran at that time...
    when_the_clock_reads(&server, deadline_ms(&due), 192).await;
    wait_for_open(&server, due.mrn(), "OVERDUE").await;

    // Then neither `early` (one second short) nor `arrived` is.
    assert_no_signal(&server, early.mrn(), "OVERDUE").await;
    assert_clean(&server, early.mrn()).await;
    assert_clean(&server, arrived.mrn()).await;

    // ...and one second later `early` is, so the near miss above was one second short.
    when_the_clock_reads(&server, deadline_ms(&early), 193).await;
    wait_for_open(&server, early.mrn(), "OVERDUE").await;
    assert_clean(&server, arrived.mrn()).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_arrival_clears_overdue() {
    let server = Server::start().await;
    // Given an overdue movement.
    let trip = Trip::new(121);
    when(&server, &trip.until_crossings()).await;
    let deadline = deadline_ms(&trip);
    when_the_clock_reads(&server, deadline, 194).await;
    wait_for_open(&server, trip.mrn(), "OVERDUE").await;

    // When its arrival is recorded, late.
    server.clock.advance(HOUR);
    when(&server, std::slice::from_ref(&trip.j.arrival)).await;

    // Then OVERDUE is cleared at the arrival's recording time, and the score is back to 0.
    let cleared = signals(
        &server,
        json!({ "mrn": trip.mrn().as_str(), "rule": "OVERDUE", "open": false }),
    )
    .await;
    assert_eq!(cleared.len(), 1, "{cleared:?}");
    assert_eq!(cleared[0]["open"], json!(false));
    assert_eq!(cleared[0]["clearedAt"], json!(rfc3339(deadline + HOUR)));
    assert_eq!(cleared[0]["firedAt"], json!(rfc3339(deadline)));
    assert!(open_signals(&server, trip.mrn(), "OVERDUE", "HIGH")
        .await
        .is_empty());
    assert_eq!(open_rules(&server, trip.mrn()).await, Vec::<String>::new());
    assert_eq!(risk_score(&server, trip.mrn()).await, 0);
    server.stop().await;
}

// ---------------------------------------------------------------------------------------------
// MISSING_CROSSING.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_arrival_without_the_bf_crossing_raises_missing_crossing() {
    let server = Server::start().await;
    // Given a movement seen leaving Togo but never entering Burkina Faso.
    let trip = Trip::new(201);
    let mut messages = trip.until_release();
    messages.push(trip.crossing_msg(0));
    when(&server, &messages).await;
    assert_clean(&server, trip.mrn()).await;

    // When it arrives at Ouagadougou.
    let arrival = when(&server, std::slice::from_ref(&trip.j.arrival)).await;

    // Then MISSING_CROSSING for Cinkassé BF, with the declaration and the arrival as evidence.
    let s = the_open_signal(&server, trip.mrn(), "MISSING_CROSSING", "HIGH").await;
    assert_eq!(
        s["id"],
        json!(format!(
            "MISSING_CROSSING:{}:{}",
            trip.mrn(),
            fixtures::CINKASSE_BF
        ))
    );
    let explanation = s["explanation"].as_str().unwrap();
    assert!(explanation.contains(fixtures::CINKASSE_BF), "{explanation}");
    assert!(explanation.contains(fixtures::CINKASSE_TG), "{explanation}");
    assert_eq!(
        evidence_types(&server, &s, trip.mrn()).await,
        strs(&["TransitDeclared", "ArrivalRecorded"])
    );
    assert!(s["evidence"]
        .as_array()
        .unwrap()
        .contains(&json!(arrival[0][0])));
    assert_eq!(
        open_rules(&server, trip.mrn()).await,
        strs(&["MISSING_CROSSING"])
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crossings_at_every_declared_office_even_reported_out_of_order_raise_no_missing_crossing() {
    let server = Server::start().await;
    // Given a whole journey whose Burkinabè crossing is reported before the Togolese one.
    let trip = Trip::new(211);
    let mut messages = trip.until_release();
    messages.push(trip.crossing_msg(1));
    messages.push(trip.crossing_msg(0));
    messages.extend(trip.whole().into_iter().skip(5));
    assert_eq!(messages.len(), trip.whole().len());

    // When it is recorded to the discharge.
    when(&server, &messages).await;

    // Then nothing: every declared office of transit has its crossing.
    assert_no_signal(&server, trip.mrn(), "MISSING_CROSSING").await;
    assert_clean(&server, trip.mrn()).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_crossing_record_clears_missing_crossing_and_its_high_risk_escalation() {
    let server = Server::start().await;
    // Given a movement carrying fuel that arrived without its Burkinabè crossing.
    let trip = Trip::with_fuel(221);
    let mut messages = trip.until_release();
    messages.push(trip.crossing_msg(0));
    messages.push(trip.j.arrival.clone());
    when(&server, &messages).await;
    assert_eq!(
        open_rules(&server, trip.mrn()).await,
        strs(&["HIGH_RISK_GOODS", "MISSING_CROSSING"])
    );

    // When the crossing is reported late.
    server.clock.advance(HOUR);
    when(&server, &[trip.crossing_msg(1)]).await;

    // Then both are cleared, at the late record's time.
    let cleared = signals(
        &server,
        json!({ "mrn": trip.mrn().as_str(), "open": false }),
    )
    .await;
    let rules: Vec<&str> = cleared
        .iter()
        .map(|s| s["rule"].as_str().unwrap())
        .collect();
    assert_eq!(
        rules,
        ["HIGH_RISK_GOODS", "MISSING_CROSSING"],
        "{cleared:?}"
    );
    let now = rfc3339(server.clock.now_millis());
    for s in &cleared {
        assert_eq!(s["clearedAt"], json!(now), "{s}");
    }
    assert_eq!(open_rules(&server, trip.mrn()).await, Vec::<String>::new());
    assert_eq!(risk_score(&server, trip.mrn()).await, 0);
    server.stop().await;
}

// ---------------------------------------------------------------------------------------------
// DIVERSION.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crossing_at_an_undeclared_office_raises_diversion() {
    let server = Server::start().await;
    // Given a released movement.
    let trip = Trip::new(301);
    when(&server, &trip.until_release()).await;

    // When it crosses out of Togo at Kpémé, not a declared office of transit.
    let crossing = trip.crossing_at("04-XKP", "TGKPE001", crossed_at(&trip.crossing_msg(0)));
    let positions = when(&server, &[crossing]).await;

    // Then DIVERSION, with that crossing as evidence.
    let s = the_open_signal(&server, trip.mrn(), "DIVERSION", "HIGH").await;
    assert_eq!(
        s["id"],
        json!(format!("DIVERSION:{}:crossing:TGKPE001", trip.mrn()))
    );
    let explanation = s["explanation"].as_str().unwrap();
    assert!(explanation.contains("TGKPE001"), "{explanation}");
    assert!(explanation.contains(fixtures::CINKASSE_TG), "{explanation}");
    assert_eq!(
        evidence_types(&server, &s, trip.mrn()).await,
        strs(&["BorderCrossed"])
    );
    assert_eq!(s["evidence"], json!(positions[0]));
    assert_eq!(open_rules(&server, trip.mrn()).await, strs(&["DIVERSION"]));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn declared_crossings_and_an_arrival_at_the_destination_amended_before_release_raise_no_diversion(
) {
    let server = Server::start().await;
    // Given a movement whose destination is amended to Bobo-Dioulasso before its release.
    let trip = Trip::new(311).arrival(|a| a.office = lit("BFBOB001"));
    let mut messages = trip.until_release();
    messages.insert(
        2,
        trip.amendment(
            "02-AMD",
            DeclarationChanges {
                office_of_destination: Some(lit("BFBOB001")),
                ..DeclarationChanges::default()
            },
        ),
    );

    // When it crosses at both declared offices and arrives at Bobo-Dioulasso.
    messages.extend(trip.j.crossings.iter().cloned());
    messages.push(trip.j.arrival.clone());
    when(&server, &messages).await;

    // Then nothing: the route and the destination are the declared ones.
    assert_no_signal(&server, trip.mrn(), "DIVERSION").await;
    assert_clean(&server, trip.mrn()).await;
    server.stop().await;
}

// ---------------------------------------------------------------------------------------------
// SEAL_MISMATCH.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_different_seal_found_at_destination_raises_seal_mismatch() {
    let server = Server::start().await;
    // Given a movement whose destination control finds one declared seal and one unknown.
    let trip = Trip::new(401);
    let declared: Vec<SealId> = trip.decl().seals().cloned().collect();
    let kept = declared[0].clone();
    let trip = trip.control(|c| c.seals_found = vec![kept, lit("FAKE0401")]);

    // When it is recorded to the control results.
    let mut messages = trip.until_arrival();
    messages.push(trip.j.control_results.clone());
    let positions = when(&server, &messages).await;

    // Then SEAL_MISMATCH at the destination, naming the unknown and the missing seal.
    let s = the_open_signal(&server, trip.mrn(), "SEAL_MISMATCH", "HIGH").await;
    assert_eq!(
        s["id"],
        json!(format!(
            "SEAL_MISMATCH:{}:destination:{}",
            trip.mrn(),
            fixtures::OUAGADOUGOU
        ))
    );
    let explanation = s["explanation"].as_str().unwrap();
    assert!(explanation.contains("FAKE0401"), "{explanation}");
    assert!(explanation.contains(declared[1].as_str()), "{explanation}");
    assert_eq!(
        evidence_types(&server, &s, trip.mrn()).await,
        strs(&["TransitDeclared", "ControlResultsRecorded"])
    );
    assert!(s["evidence"]
        .as_array()
        .unwrap()
        .contains(&json!(positions.last().unwrap()[0])));
    assert_eq!(
        open_rules(&server, trip.mrn()).await,
        strs(&["SEAL_MISMATCH"])
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_seals_from_an_endorsed_incident_found_downstream_raise_no_seal_mismatch() {
    let server = Server::start().await;
    // Given a movement re-sealed by an endorsed seals-broken incident between the two sides of
    // Cinkassé, so that the Burkinabè border and the destination find the new seals.
    let new_seals: Vec<SealId> = vec![lit("BFNEW0411")];
    let trip = Trip::new(411)
        .crossing(1, |c| c.seals_observed = new_seals.clone())
        .control(|c| c.seals_found = new_seals.clone());
    let resealed_at = shift(crossed_at(&trip.crossing_msg(0)), 30 * MINUTE);
    let mut messages = trip.until_release();
    messages.push(trip.crossing_msg(0));
    messages.push(trip.incident(
        "04-INC",
        resealed_at,
        IncidentCode::SealsBroken,
        new_seals.clone(),
    ));
    messages.extend(trip.whole().into_iter().skip(4));

    // When it is recorded to the discharge.
    when(&server, &messages).await;

    // Then nothing: the seals found are the expected ones at every checkpoint.
    assert_no_signal(&server, trip.mrn(), "SEAL_MISMATCH").await;
    assert_clean(&server, trip.mrn()).await;
    server.stop().await;
}

// ---------------------------------------------------------------------------------------------
// QUANTITY_DISCREPANCY.

/// The mass tolerance of `trip`: max(`mass_tolerance_bp` (200 bp) of the declared gross mass,
/// `mass_tolerance_g` (50 kg)).
fn mass_tolerance_g(trip: &Trip) -> u64 {
    let config = config();
    let declared = trip.decl().gross_mass_g_total();
    (declared * u64::from(config.mass_tolerance_bp) / 10_000).max(config.mass_tolerance_g)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mass_found_one_gram_beyond_tolerance_raises_quantity_discrepancy() {
    let server = Server::start().await;
    // Given a movement declared at 27,000,000 g (tolerance 540,000 g) found one gram lighter
    // than the tolerance allows.
    let trip = Trip::new(501);
    let declared = trip.decl().gross_mass_g_total();
    let tolerance = mass_tolerance_g(&trip);
    let found = declared - tolerance - 1;
    let trip = trip.control(|c| c.gross_mass_g_found = Some(found));

    // When its control results are recorded.
    let mut messages = trip.until_arrival();
    messages.push(trip.j.control_results.clone());
    let positions = when(&server, &messages).await;

    // Then QUANTITY_DISCREPANCY on the mass, naming found, declared and the tolerance.
    let s = the_open_signal(&server, trip.mrn(), "QUANTITY_DISCREPANCY", "HIGH").await;
    assert_eq!(
        s["id"],
        json!(format!("QUANTITY_DISCREPANCY:{}:mass", trip.mrn()))
    );
    let explanation = s["explanation"].as_str().unwrap();
    for part in [
        format!("{found} g"),
        format!("{declared} g"),
        format!("tolerance {tolerance} g"),
        format!("{} bp", config().mass_tolerance_bp),
    ] {
        assert!(explanation.contains(&part), "{part}: {explanation}");
    }
    assert_eq!(
        evidence_types(&server, &s, trip.mrn()).await,
        strs(&["TransitDeclared", "ControlResultsRecorded"])
    );
    assert!(s["evidence"]
        .as_array()
        .unwrap()
        .contains(&json!(positions.last().unwrap()[0])));
    assert_eq!(
        open_rules(&server, trip.mrn()).await,
        strs(&["QUANTITY_DISCREPANCY"])
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mass_found_exactly_at_the_tolerance_raises_no_quantity_discrepancy() {
    let server = Server::start().await;
    // Given a movement found exactly the tolerance lighter, with every package.
    let trip = Trip::new(511);
    let found = trip.decl().gross_mass_g_total() - mass_tolerance_g(&trip);
    let packages = trip.decl().packages_total();
    let trip = trip.control(|c| {
        c.gross_mass_g_found = Some(found);
        c.packages_found = Some(packages);
    });

    // When it is recorded to the discharge.
    when(&server, &trip.whole()).await;

    // Then nothing.
    assert_no_signal(&server, trip.mrn(), "QUANTITY_DISCREPANCY").await;
    assert_clean(&server, trip.mrn()).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrected_control_clears_quantity_discrepancy() {
    let server = Server::start().await;
    // Given a movement whose control found one package missing.
    let trip = Trip::new(521);
    let packages = trip.decl().packages_total();
    let trip = trip.control(|c| c.packages_found = Some(packages - 1));
    let mut messages = trip.until_arrival();
    messages.push(trip.j.control_results.clone());
    when(&server, &messages).await;
    let s = the_open_signal(&server, trip.mrn(), "QUANTITY_DISCREPANCY", "HIGH").await;
    assert_eq!(
        s["id"],
        json!(format!("QUANTITY_DISCREPANCY:{}:packages", trip.mrn()))
    );

    // When a recount finds them all (the latest control counts).
    when(
        &server,
        &[trip.control_again("07-CT2", |c| c.packages_found = Some(packages))],
    )
    .await;

    // Then the signal is cleared.
    let cleared = signals(
        &server,
        json!({ "mrn": trip.mrn().as_str(), "rule": "QUANTITY_DISCREPANCY" }),
    )
    .await;
    assert_eq!(cleared.len(), 1, "{cleared:?}");
    assert_eq!(cleared[0]["id"], s["id"]);
    assert_eq!(cleared[0]["open"], json!(false));
    assert!(cleared[0]["clearedAt"].is_string(), "{cleared:?}");
    assert_eq!(risk_score(&server, trip.mrn()).await, 0);
    server.stop().await;
}

// ---------------------------------------------------------------------------------------------
// SHARED_VEHICLE.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_lorry_on_two_open_movements_raises_shared_vehicle_on_both() {
    let server = Server::start().await;
    // Given two movements on the same plate (the fixture plate is "BF <serial mod 10000> GA").
    let first = Trip::new(601);
    let second = Trip::new(10_601);
    assert_eq!(
        first.decl().transport.identity,
        second.decl().transport.identity
    );
    when(&server, &first.until_release()).await;
    assert_clean(&server, first.mrn()).await;

    // When the second is released while the first is still on the road.
    when(&server, &second.until_release()).await;

    // Then SHARED_VEHICLE on each, naming the other, with both releases as evidence.
    for (this, other) in [(&first, &second), (&second, &first)] {
        let s = the_open_signal(&server, this.mrn(), "SHARED_VEHICLE", "HIGH").await;
        assert_eq!(
            s["id"],
            json!(format!(
                "SHARED_VEHICLE:{}:BF0601GA:{}",
                this.mrn(),
                other.mrn()
            ))
        );
        let explanation = s["explanation"].as_str().unwrap();
        assert!(explanation.contains("BF0601GA"), "{explanation}");
        assert!(explanation.contains(other.mrn().as_str()), "{explanation}");
        // The first was released first, so its release comes first.
        let expected = vec![
            (first.mrn().to_string(), "TransitReleased".to_owned()),
            (second.mrn().to_string(), "TransitReleased".to_owned()),
        ];
        assert_eq!(
            evidence(&server, &s, &[first.mrn(), second.mrn()]).await,
            expected
        );
        assert_eq!(
            open_rules(&server, this.mrn()).await,
            strs(&["SHARED_VEHICLE"])
        );
    }
    let all = signals(&server, json!({ "rule": "SHARED_VEHICLE", "open": true })).await;
    assert_eq!(all.len(), 2, "{all:?}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_lorry_reused_after_its_first_movement_arrived_raises_no_shared_vehicle() {
    let server = Server::start().await;
    // Given a movement that arrived.
    let first = Trip::new(611);
    let second = Trip::new(10_611);
    when(&server, &first.until_arrival()).await;

    // When the same lorry is released on a second movement.
    when(&server, &second.until_release()).await;

    // Then nothing on either.
    assert_no_signal(&server, first.mrn(), "SHARED_VEHICLE").await;
    assert_no_signal(&server, second.mrn(), "SHARED_VEHICLE").await;
    assert_clean(&server, first.mrn()).await;
    assert_clean(&server, second.mrn()).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_arrival_clears_shared_vehicle_on_both_movements() {
    let server = Server::start().await;
    // Given two open movements on one lorry.
    let first = Trip::new(621);
    let second = Trip::new(10_621);
    when(&server, &first.until_release()).await;
    when(&server, &second.until_release()).await;
    assert_eq!(
        signals(&server, json!({ "rule": "SHARED_VEHICLE", "open": true }))
            .await
            .len(),
        2
    );

    // When the first arrives.
    let mut messages = first.j.crossings.clone();
    messages.push(first.j.arrival.clone());
    when(&server, &messages).await;

    // Then both signals are cleared.
    let cleared = signals(&server, json!({ "rule": "SHARED_VEHICLE", "open": false })).await;
    let mut mrns: Vec<&str> = cleared.iter().map(|s| s["mrn"].as_str().unwrap()).collect();
    mrns.sort_unstable();
    let mut expected = vec![first.mrn().as_str(), second.mrn().as_str()];
    expected.sort_unstable();
    assert_eq!(mrns, expected, "{cleared:?}");
    assert!(cleared.iter().all(|s| s["clearedAt"].is_string()));
    assert_eq!(risk_score(&server, first.mrn()).await, 0);
    assert_eq!(risk_score(&server, second.mrn()).await, 0);
    server.stop().await;
}

// ---------------------------------------------------------------------------------------------
// SHARED_SEAL.

/// A second movement declared with `other`'s first seal beside one of its own.
fn with_seal_of(serial: u32, other: &Trip) -> (Trip, SealId) {
    let seal = other.decl().seals().next().cloned().unwrap();
    let trip = Trip::new(serial);
    let own = trip.decl().seals().nth(1).cloned().unwrap();
    let shared = seal.clone();
    let trip = trip.declaration(|d| d.equipment[0].seals = vec![shared, own]);
    (trip, seal)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_seal_on_two_open_movements_raises_shared_seal_on_both() {
    let server = Server::start().await;
    // Given a released movement, and a second one declared with one of its seals.
    let first = Trip::new(701);
    let (second, seal) = with_seal_of(702, &first);
    when(&server, &first.until_release()).await;

    // When the second is released.
    when(&server, &second.until_release()).await;

    // Then SHARED_SEAL on each, naming the seal and the other movement.
    for (this, other) in [(&first, &second), (&second, &first)] {
        let s = the_open_signal(&server, this.mrn(), "SHARED_SEAL", "HIGH").await;
        assert_eq!(
            s["id"],
            json!(format!("SHARED_SEAL:{}:{seal}:{}", this.mrn(), other.mrn()))
        );
        let explanation = s["explanation"].as_str().unwrap();
        assert!(explanation.contains(seal.as_str()), "{explanation}");
        assert!(explanation.contains(other.mrn().as_str()), "{explanation}");
        let types: Vec<String> = evidence(&server, &s, &[first.mrn(), second.mrn()])
            .await
            .into_iter()
            .map(|(m, t)| format!("{m} {t}"))
            .collect();
        assert_eq!(
            types,
            [
                format!("{} TransitReleased", first.mrn()),
                format!("{} TransitReleased", second.mrn())
            ]
        );
        assert_eq!(
            open_rules(&server, this.mrn()).await,
            strs(&["SHARED_SEAL"])
        );
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_seal_reused_after_its_first_movement_arrived_raises_no_shared_seal() {
    let server = Server::start().await;
    // Given a movement that arrived.
    let first = Trip::new(711);
    let (second, _) = with_seal_of(712, &first);
    when(&server, &first.until_arrival()).await;

    // When a second movement is released under one of its seals.
    when(&server, &second.until_release()).await;

    // Then nothing on either.
    assert_no_signal(&server, first.mrn(), "SHARED_SEAL").await;
    assert_no_signal(&server, second.mrn(), "SHARED_SEAL").await;
    assert_clean(&server, first.mrn()).await;
    assert_clean(&server, second.mrn()).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_arrival_clears_shared_seal_on_both_movements() {
    let server = Server::start().await;
    // Given two open movements under one seal.
    let first = Trip::new(721);
    let (second, _) = with_seal_of(722, &first);
    when(&server, &first.until_release()).await;
    when(&server, &second.until_release()).await;
    open_signals(&server, second.mrn(), "SHARED_SEAL", "HIGH").await;

    // When the first arrives.
    let mut messages = first.j.crossings.clone();
    messages.push(first.j.arrival.clone());
    when(&server, &messages).await;

    // Then both signals are cleared.
    for trip in [&first, &second] {
        let cleared = signals(
            &server,
            json!({ "mrn": trip.mrn().as_str(), "rule": "SHARED_SEAL" }),
        )
        .await;
        assert_eq!(cleared.len(), 1, "{cleared:?}");
        assert_eq!(cleared[0]["open"], json!(false));
        assert!(cleared[0]["clearedAt"].is_string());
        assert_eq!(risk_score(&server, trip.mrn()).await, 0);
    }
    server.stop().await;
}

// ---------------------------------------------------------------------------------------------
// TOO_FAST.

/// The configured minimum for Cinkassé BF -> Ouagadougou (documented: 3.5 h), in ms.
fn cinkasse_to_ouagadougou_ms() -> i64 {
    let seconds =
        config().segment_minimum_seconds(&lit(fixtures::CINKASSE_BF), &lit(fixtures::OUAGADOUGOU));
    i64::try_from(seconds).unwrap() * SECOND
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_arrival_one_second_sooner_than_the_road_allows_raises_too_fast() {
    let server = Server::start().await;
    // Given a movement that arrives at Ouagadougou one second short of the minimum after its
    // Burkinabè crossing.
    let trip = Trip::new(801);
    let entered = crossed_at(&trip.crossing_msg(1));
    let minimum_ms = cinkasse_to_ouagadougou_ms();
    let trip = trip.arrival(|a| a.arrived_at = shift(entered, minimum_ms - SECOND));

    // When it is recorded to the arrival.
    let positions = when(&server, &trip.until_arrival()).await;

    // Then TOO_FAST on that segment, with the crossing and the arrival as evidence.
    let s = the_open_signal(&server, trip.mrn(), "TOO_FAST", "MEDIUM").await;
    assert_eq!(
        s["id"],
        json!(format!(
            "TOO_FAST:{}:{}->{}",
            trip.mrn(),
            fixtures::CINKASSE_BF,
            fixtures::OUAGADOUGOU
        ))
    );
    let explanation = s["explanation"].as_str().unwrap();
    let took = format!("took {} s", (minimum_ms - SECOND) / SECOND);
    let minimum = format!("minimum of {} s", minimum_ms / SECOND);
    assert!(explanation.contains(&took), "{explanation}");
    assert!(explanation.contains(&minimum), "{explanation}");
    assert_eq!(
        evidence_types(&server, &s, trip.mrn()).await,
        strs(&["BorderCrossed", "ArrivalRecorded"])
    );
    let n = positions.len();
    assert_eq!(
        s["evidence"],
        json!([positions[n - 2][0], positions[n - 1][0]])
    );
    assert_eq!(open_rules(&server, trip.mrn()).await, strs(&["TOO_FAST"]));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_arrival_exactly_at_the_minimum_raises_no_too_fast() {
    let server = Server::start().await;
    // Given a movement that arrives exactly the minimum after its Burkinabè crossing.
    let trip = Trip::new(811);
    let entered = crossed_at(&trip.crossing_msg(1));
    let trip = trip.arrival(|a| a.arrived_at = shift(entered, cinkasse_to_ouagadougou_ms()));

    // When it is recorded to the discharge.
    when(&server, &trip.whole()).await;

    // Then nothing.
    assert_no_signal(&server, trip.mrn(), "TOO_FAST").await;
    assert_clean(&server, trip.mrn()).await;
    server.stop().await;
}

// ---------------------------------------------------------------------------------------------
// REPEATED_INCIDENTS.

/// `incidents_count_min` (3) movements of the fixture carrier, each released with one
/// accident; the first at +5 h, the last `last_after_ms` after it, the others evenly between.
fn accidents(first_serial: u32, last_after_ms: i64) -> Vec<(Trip, InboundMessage)> {
    let count = config().incidents_count_min;
    assert!(count >= 2);
    let start = shift(base(), 5 * HOUR);
    (0..count)
        .map(|n| {
            let trip = Trip::new(first_serial + n);
            let offset = if n + 1 == count {
                last_after_ms
            } else {
                last_after_ms / i64::from(count - 1) * i64::from(n)
            };
            let incident = trip.incident(
                "04-ACC",
                shift(start, offset),
                IncidentCode::Accident,
                vec![],
            );
            (trip, incident)
        })
        .collect()
}

fn incidents_window_ms() -> i64 {
    i64::try_from(config().incidents_window_seconds).unwrap() * SECOND
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_accidents_of_one_carrier_exactly_within_the_window_raise_repeated_incidents() {
    let server = Server::start().await;
    // Given three released movements of one carrier, with accidents spread over exactly the
    // window (30 days).
    let trips = accidents(901, incidents_window_ms());
    for (trip, _) in &trips {
        when(&server, &trip.until_release()).await;
    }

    // When the accidents are reported.
    let mut incident_positions = Vec::new();
    for (_, incident) in &trips {
        incident_positions.push(when(&server, std::slice::from_ref(incident)).await[0][0]);
    }

    // Then REPEATED_INCIDENTS on each, on the carrier, with the three accidents as evidence.
    let mrns: Vec<&Mrn> = trips.iter().map(|(t, _)| t.mrn()).collect();
    let carrier = trips[0]
        .0
        .decl()
        .carrier
        .as_ref()
        .unwrap()
        .id
        .as_str()
        .to_owned();
    for (trip, _) in &trips {
        let s = the_open_signal(&server, trip.mrn(), "REPEATED_INCIDENTS", "MEDIUM").await;
        assert_eq!(
            s["id"],
            json!(format!(
                "REPEATED_INCIDENTS:{}:carrier:{carrier}",
                trip.mrn()
            ))
        );
        let explanation = s["explanation"].as_str().unwrap();
        let threshold = format!(
            "threshold: {} within {} s",
            config().incidents_count_min,
            config().incidents_window_seconds
        );
        assert!(explanation.contains(&threshold), "{explanation}");
        for m in &mrns {
            assert!(explanation.contains(m.as_str()), "{explanation}");
        }
        let found = evidence(&server, &s, &mrns).await;
        let expected: Vec<(String, String)> = mrns
            .iter()
            .map(|m| (m.to_string(), "IncidentRecorded".to_owned()))
            .collect();
        assert_eq!(found, expected);
        assert_eq!(s["evidence"], json!(incident_positions));
        assert_eq!(
            open_rules(&server, trip.mrn()).await,
            strs(&["REPEATED_INCIDENTS"])
        );
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_accidents_of_one_carrier_a_second_wider_than_the_window_raise_no_repeated_incidents()
{
    let server = Server::start().await;
    // Given three released movements of one carrier, with accidents spread over the window
    // plus one second.
    let trips = accidents(911, incidents_window_ms() + SECOND);
    for (trip, _) in &trips {
        when(&server, &trip.until_release()).await;
    }

    // When the accidents are reported.
    for (_, incident) in &trips {
        when(&server, std::slice::from_ref(incident)).await;
    }

    // Then nothing on any of them.
    for (trip, _) in &trips {
        assert_no_signal(&server, trip.mrn(), "REPEATED_INCIDENTS").await;
        assert_clean(&server, trip.mrn()).await;
    }
    server.stop().await;
}

// ---------------------------------------------------------------------------------------------
// HIGH_RISK_GOODS.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fuel_on_a_movement_with_another_signal_raises_high_risk_goods() {
    let server = Server::start().await;
    // Given a movement carrying fuel oil (HS 271019) that skipped the Burkinabè crossing.
    let trip = Trip::with_fuel(1001);
    let mut messages = trip.until_release();
    messages.push(trip.crossing_msg(0));
    when(&server, &messages).await;
    assert_clean(&server, trip.mrn()).await;

    // When it arrives, which raises MISSING_CROSSING.
    when(&server, std::slice::from_ref(&trip.j.arrival)).await;

    // Then HIGH_RISK_GOODS escalates it, critical, with the declaration and the other
    // signal's evidence.
    let s = the_open_signal(&server, trip.mrn(), "HIGH_RISK_GOODS", "CRITICAL").await;
    assert_eq!(s["id"], json!(format!("HIGH_RISK_GOODS:{}", trip.mrn())));
    let explanation = s["explanation"].as_str().unwrap();
    assert!(
        explanation.contains("271019 (prefix 2710)"),
        "{explanation}"
    );
    assert!(explanation.contains("MISSING_CROSSING"), "{explanation}");
    assert_eq!(
        evidence_types(&server, &s, trip.mrn()).await,
        strs(&["TransitDeclared", "ArrivalRecorded"])
    );
    let missing = the_open_signal(&server, trip.mrn(), "MISSING_CROSSING", "HIGH").await;
    for p in missing["evidence"].as_array().unwrap() {
        assert!(s["evidence"].as_array().unwrap().contains(p), "{s}");
    }
    assert_eq!(
        open_rules(&server, trip.mrn()).await,
        strs(&["HIGH_RISK_GOODS", "MISSING_CROSSING"])
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fuel_alone_or_another_signal_on_ordinary_goods_raises_no_high_risk_goods() {
    let server = Server::start().await;
    // Given a clean journey carrying fuel, and a journey of ordinary goods that skips the
    // Burkinabè crossing.
    let fuel = Trip::with_fuel(1011);
    let ordinary = Trip::new(1012);
    let mut skipped = ordinary.until_release();
    skipped.push(ordinary.crossing_msg(0));
    skipped.push(ordinary.j.arrival.clone());

    // When both are recorded.
    when(&server, &fuel.whole()).await;
    when(&server, &skipped).await;

    // Then fuel alone is no signal, and ordinary goods are not escalated.
    assert_no_signal(&server, fuel.mrn(), "HIGH_RISK_GOODS").await;
    assert_clean(&server, fuel.mrn()).await;
    assert_no_signal(&server, ordinary.mrn(), "HIGH_RISK_GOODS").await;
    assert_eq!(
        open_rules(&server, ordinary.mrn()).await,
        strs(&["MISSING_CROSSING"])
    );
    assert!(signals(&server, json!({ "rule": "HIGH_RISK_GOODS" }))
        .await
        .is_empty());
    server.stop().await;
}

// ---------------------------------------------------------------------------------------------
// The risk score.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_risk_score_sums_the_weights_of_open_rules_once_each_and_caps_at_100() {
    let server = Server::start().await;
    let weights = config().weights;
    // Given a movement of ordinary goods seen at no border, whose destination finds a foreign
    // seal, and the same with fuel and a package short.
    let plain = Trip::new(1101).control(|c| c.seals_found = vec![lit("FAKE1101")]);
    let packages = Trip::with_fuel(1102).decl().packages_total();
    let loaded = Trip::with_fuel(1102).control(|c| {
        c.seals_found = vec![lit("FAKE1102")];
        c.packages_found = Some(packages - 1);
    });
    for trip in [&plain, &loaded] {
        // When each arrives without crossings and is controlled.
        let mut messages = trip.until_release();
        messages.push(trip.j.arrival.clone());
        messages.push(trip.j.control_results.clone());
        when(&server, &messages).await;
    }

    // Then two MISSING_CROSSING signals (one per office) weigh once with SEAL_MISMATCH...
    let missing = open_signals(&server, plain.mrn(), "MISSING_CROSSING", "HIGH").await;
    assert_eq!(missing.len(), 2, "{missing:?}");
    assert_eq!(
        open_rules(&server, plain.mrn()).await,
        strs(&["MISSING_CROSSING", "SEAL_MISMATCH"])
    );
    let plain_score = weights.missing_crossing + weights.seal_mismatch;
    assert!(plain_score < 100);
    assert_eq!(
        risk_score(&server, plain.mrn()).await,
        u64::from(plain_score)
    );

    // ...and four rules at once are capped at 100.
    assert_eq!(
        open_rules(&server, loaded.mrn()).await,
        strs(&[
            "HIGH_RISK_GOODS",
            "MISSING_CROSSING",
            "QUANTITY_DISCREPANCY",
            "SEAL_MISMATCH"
        ])
    );
    let loaded_sum = weights.missing_crossing
        + weights.seal_mismatch
        + weights.quantity_discrepancy
        + weights.high_risk_goods;
    assert!(loaded_sum > 100);
    assert_eq!(risk_score(&server, loaded.mrn()).await, 100);

    // When the crossings are reported late, MISSING_CROSSING clears and the score drops by its
    // weight.
    server.clock.advance(HOUR);
    when(&server, &plain.j.crossings).await;
    assert_eq!(
        open_rules(&server, plain.mrn()).await,
        strs(&["SEAL_MISMATCH"])
    );
    assert_eq!(
        risk_score(&server, plain.mrn()).await,
        u64::from(weights.seal_mismatch)
    );
    server.stop().await;
}
