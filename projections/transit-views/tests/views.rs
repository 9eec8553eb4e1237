//! Journeys run through the real rules (`decide` + `apply`), recorded into a little log with
//! increasing global positions, then projected: the views are tested on what the ledger would
//! actually hold.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use transit_contract::events::{EventMeta, GuaranteeEvent, MovementEvent};
use transit_contract::fixtures::{self, Journey};
use transit_contract::ids::{Currency, GuaranteeReference, Money, Mrn, Timestamp};
use transit_contract::messages::{
    ArrivalNotification, BorderCrossing, DestinationChange, EnquiryOutcome, EnquiryRequest,
    EnquiryResponse, InboundMessage, Incident, IncidentCode, MeansOfTransport, MessageBody, Place,
    Recovery, TransportMode,
};
use transit_rules::{decide, guarantee_needed, Context, Decision, GuaranteeState, MovementState};
use transit_views::movements::{
    Checkpoint, MovementFilter, QueryError, Status, MOVEMENTS_PAGE_MAX,
};
use transit_views::{Corridor, CorridorsView, ExposureView, LedgerEvent, MovementsView};

const MINUTE_MS: i64 = 60_000;
const HOUR_S: i64 = 3600;

fn base() -> Timestamp {
    "2024-03-01T08:00:00Z".parse().unwrap()
}

fn at(t: Timestamp, minutes: i64) -> Timestamp {
    Timestamp::from_unix_millis(t.unix_millis() + minutes * MINUTE_MS).unwrap()
}

fn xof(amount: i64) -> Money {
    Money::new(amount, Currency::xof()).unwrap()
}

// Test-only and a few dozen values: boxing would only add noise.
#[allow(clippy::large_enum_variant)]
enum Recorded {
    Movement(Mrn, EventMeta, MovementEvent),
    Guarantee(GuaranteeReference, EventMeta, GuaranteeEvent),
}

/// A tiny ledger: the streams' states for `decide`, and the global log.
#[derive(Default)]
struct Ledger {
    movements: BTreeMap<Mrn, MovementState>,
    guarantees: BTreeMap<GuaranteeReference, GuaranteeState>,
    log: Vec<Recorded>,
}

impl Ledger {
    /// Records a message with the ledger clock at its `sent_at`.
    fn submit(&mut self, msg: &InboundMessage) {
        self.submit_at(msg, msg.sent_at);
    }

    fn submit_at(&mut self, msg: &InboundMessage, now: Timestamp) {
        let empty = MovementState::default();
        let mrn = msg.mrn().cloned();
        let movement = mrn
            .as_ref()
            .and_then(|m| self.movements.get(m))
            .unwrap_or(&empty);
        let grn = guarantee_needed(msg, movement);
        let guarantee = grn.as_ref().and_then(|g| self.guarantees.get(g));
        let decision = decide(msg, movement, guarantee, &Context { recorded_at: now })
            .unwrap_or_else(|r| panic!("{} rejected: {r:?}", msg.message_id));
        let Decision::Append {
            movement: events,
            guarantee: g_events,
            meta,
        } = decision
        else {
            panic!("{} is a duplicate", msg.message_id);
        };
        for e in events {
            let mrn = mrn.clone().unwrap();
            self.movements
                .entry(mrn.clone())
                .or_default()
                .apply(&meta, &e);
            self.log.push(Recorded::Movement(mrn, meta.clone(), e));
        }
        for e in g_events {
            let grn = grn.clone().unwrap();
            self.guarantees
                .entry(grn.clone())
                .or_default()
                .apply(&meta, &e);
            self.log.push(Recorded::Guarantee(grn, meta.clone(), e));
        }
    }

    fn submit_all(&mut self, msgs: &[InboundMessage]) {
        for m in msgs {
            self.submit(m);
        }
    }

    /// The last position recorded so far.
    fn head(&self) -> u64 {
        self.log.len() as u64 - 1
    }

    fn events(&self) -> Vec<LedgerEvent<'_>> {
        self.log
            .iter()
            .enumerate()
            .map(|(i, r)| match r {
                Recorded::Movement(mrn, meta, event) => LedgerEvent::Movement {
                    position: i as u64,
                    mrn,
                    meta,
                    event,
                },
                Recorded::Guarantee(grn, meta, event) => LedgerEvent::Guarantee {
                    position: i as u64,
                    grn,
                    meta,
                    event,
                },
            })
            .collect()
    }
}

struct Views {
    movements: MovementsView,
    exposure: ExposureView,
    corridors: CorridorsView,
}

fn project(events: &[LedgerEvent<'_>]) -> Views {
    let mut v = Views {
        movements: MovementsView::new(),
        exposure: ExposureView::new(),
        corridors: CorridorsView::new(),
    };
    for e in events {
        v.movements.apply(e);
        v.exposure.apply(e);
        v.corridors.apply(e);
    }
    v
}

fn message(j: &Journey, step: &str, sent_at: Timestamp, body: MessageBody) -> InboundMessage {
    let mut m = j.discharge.clone();
    m.message_id = format!("{}-{step}", j.mrn).parse().unwrap();
    m.sent_at = sent_at;
    m.body = body;
    m
}

fn arrival_at(j: &Journey, arrived_at: Timestamp) -> InboundMessage {
    let mut m = j.arrival.clone();
    m.sent_at = at(arrived_at, 1);
    m.body = MessageBody::ArrivalNotification(ArrivalNotification {
        mrn: j.mrn.clone(),
        office: fixtures::OUAGADOUGOU.parse().unwrap(),
        arrived_at,
    });
    m
}

#[test]
fn a_full_journey_fills_every_part_of_the_record() {
    let j = fixtures::journey(base(), 1);
    let mut ledger = Ledger::default();
    ledger.submit_all(&j.messages());
    let events = ledger.events();
    let mut view = MovementsView::new();
    let mut changes = Vec::new();
    for e in &events {
        changes.extend(view.apply(e));
    }
    let movement_events = events
        .iter()
        .filter(|e| matches!(e, LedgerEvent::Movement { .. }))
        .count();
    assert_eq!(
        changes.len(),
        movement_events,
        "one change per movement event"
    );
    assert!(changes.iter().all(|c| c.mrn == j.mrn));
    assert_eq!(changes.last().unwrap().status, Status::Discharged);

    let r = view.get(&j.mrn).unwrap();
    assert_eq!(r.status, Status::Discharged);
    assert_eq!(r.steps.declared_at, Some(at(base(), 30)));
    assert_eq!(r.steps.released_at, Some(at(base(), 120)));
    let crossings: Vec<(String, Timestamp)> = r
        .steps
        .crossings
        .iter()
        .map(|c| (c.office.to_string(), c.crossed_at))
        .collect();
    assert_eq!(
        crossings,
        vec![
            (fixtures::CINKASSE_TG.to_owned(), at(base(), 20 * 60)),
            (fixtures::CINKASSE_BF.to_owned(), at(base(), 21 * 60)),
        ]
    );
    assert_eq!(r.steps.arrived_at, Some(at(base(), 36 * 60)));
    assert_eq!(r.steps.controlled_at, Some(at(base(), 38 * 60)));
    assert_eq!(r.steps.discharged_at, Some(at(base(), 40 * 60)));

    let planned = r.planned.as_ref().unwrap();
    assert_eq!(planned.departure.as_str(), fixtures::LOME_PORT);
    assert_eq!(planned.destination.as_str(), fixtures::OUAGADOUGOU);
    assert_eq!(
        planned.transit, r.actual.transit,
        "every declared office saw it"
    );
    assert_eq!(r.actual.destination, vec![planned.destination.clone()]);
    assert_eq!(
        r.countries_of_routing
            .iter()
            .map(|c| c.as_str())
            .collect::<Vec<_>>(),
        ["TG", "BF"]
    );
    assert_eq!(
        r.corridor.as_ref().unwrap().to_string(),
        "TG000101>BFOUA001"
    );
    assert_eq!(r.country_pair.as_ref().unwrap().to_string(), "TG>BF");
    assert_eq!(r.holder.as_ref().unwrap().id.as_str(), "TG1000000001");
    assert_eq!(r.carrier.as_ref().unwrap().id.as_str(), "BF-TRANS-0042");
    assert_eq!(r.vehicle.as_ref().unwrap().identity.as_str(), "BF 0001 GA");
    let goods = r.goods.as_ref().unwrap();
    assert_eq!(
        goods
            .hs_codes
            .iter()
            .map(|h| h.as_str())
            .collect::<Vec<_>>(),
        ["100630", "271019"]
    );
    assert_eq!(goods.gross_mass_g_total, 27_000_000);
    assert_eq!(goods.packages_total, 440);
    let checkpoints: Vec<Checkpoint> = r.seals.iter().map(|s| s.checkpoint).collect();
    assert_eq!(
        checkpoints,
        [
            Checkpoint::Departure,
            Checkpoint::Crossing,
            Checkpoint::Crossing,
            Checkpoint::Destination
        ]
    );
    assert!(r.seals.windows(2).all(|w| w[0].seals == w[1].seals));
    let control = r.control.as_ref().unwrap();
    assert!(control.conform);
    assert_eq!(control.gross_mass_g_found, Some(27_000_000));
    assert_eq!(r.guarantee.as_ref(), Some(&j.grn));
    assert_eq!(r.amount_reserved, Some(xof(fixtures::AMOUNT_AT_STAKE_XOF)));
    assert!(r.incidents.is_empty());
    assert!(!r.has_anomalies());
    assert_eq!(r.history.len(), movement_events);
    assert!(r.history.windows(2).all(|w| w[0].position < w[1].position));
    assert_eq!(r.history[0].event_type, "TransitDeclared");
    assert_eq!(r.history.last().unwrap().event_type, "TransitDischarged");
    assert_eq!(r.listing_position, r.history[0].position);

    // The record is plain data: it serialises and reads back unchanged.
    let json = serde_json::to_string(r).unwrap();
    let back: transit_views::movements::MovementRecord = serde_json::from_str(&json).unwrap();
    assert_eq!(&back, r);
}

#[test]
fn an_incident_with_a_new_vehicle_changes_the_vehicle_and_adds_seals() {
    let j = fixtures::journey(base(), 1);
    let mut ledger = Ledger::default();
    ledger.submit_all(&[
        j.guarantee_registration.clone(),
        j.declaration.clone(),
        j.release.clone(),
    ]);
    let new_truck = MeansOfTransport {
        mode: TransportMode::Road,
        identity: "TG 9999 AB".parse().unwrap(),
        nationality: "TG".parse().unwrap(),
    };
    ledger.submit(&message(
        &j,
        "INC",
        at(base(), 10 * 60),
        MessageBody::Incident(Incident {
            mrn: j.mrn.clone(),
            code: IncidentCode::Transhipment,
            place: Place {
                locode: Some("TGKAR".parse().unwrap()),
                latitude_e7: None,
                longitude_e7: None,
            },
            occurred_at: at(base(), 9 * 60),
            endorsed_by: None,
            new_seals: vec!["TGNEW0001".parse().unwrap()],
            new_transport: Some(new_truck.clone()),
            description: "axle broke, goods moved".to_owned(),
        }),
    ));
    let v = project(&ledger.events());
    let r = v.movements.get(&j.mrn).unwrap();
    assert_eq!(r.vehicle.as_ref(), Some(&new_truck));
    assert_eq!(r.incidents.len(), 1);
    assert_eq!(r.incidents[0].code, IncidentCode::Transhipment);
    assert_eq!(r.seals.last().unwrap().checkpoint, Checkpoint::Incident);
    let filter = MovementFilter {
        vehicle: Some("TG 9999 AB".parse().unwrap()),
        ..MovementFilter::default()
    };
    assert_eq!(v.movements.list(&filter, 10, None).unwrap().items.len(), 1);
}

/// Two movements on one guarantee: the first is discharged, the second goes overdue, is
/// enquired about and recovered. Returns the ledger and the positions after each step.
fn shared_guarantee() -> (Ledger, Journey, Journey, BTreeMap<&'static str, u64>) {
    let j1 = fixtures::journey(base(), 1);
    let mut j2 = fixtures::journey(base(), 2);
    if let MessageBody::TransitDeclaration(d) = &mut j2.declaration.body {
        d.guarantee = j1.grn.clone();
    }
    let mut ledger = Ledger::default();
    let mut marks = BTreeMap::new();
    ledger.submit(&j1.guarantee_registration);
    marks.insert("registered", ledger.head());
    ledger.submit_all(&[j1.declaration.clone(), j1.release.clone()]);
    marks.insert("released1", ledger.head());
    ledger.submit_all(&[j2.declaration.clone(), j2.release.clone()]);
    marks.insert("released2", ledger.head());
    ledger.submit_all(&j1.crossings);
    ledger.submit_all(&[
        j1.arrival.clone(),
        j1.control_results.clone(),
        j1.discharge.clone(),
    ]);
    marks.insert("discharged1", ledger.head());
    let late = at(base(), 9 * 24 * 60);
    let enquiry = message(
        &j2,
        "ENQ",
        late,
        MessageBody::EnquiryRequest(EnquiryRequest {
            mrn: j2.mrn.clone(),
            reason: "no arrival by the time limit".to_owned(),
        }),
    );
    ledger.submit_at(&enquiry, late);
    let answer = message(
        &j2,
        "ANS",
        at(late, 60),
        MessageBody::EnquiryResponse(EnquiryResponse {
            mrn: j2.mrn.clone(),
            outcome: EnquiryOutcome::GoodsNotArrived,
            remarks: String::new(),
        }),
    );
    ledger.submit(&answer);
    marks.insert("answered2", ledger.head());
    let recovery = message(
        &j2,
        "REC",
        at(late, 120),
        MessageBody::Recovery(Recovery {
            mrn: j2.mrn.clone(),
            amount_recovered: xof(5_000_000),
            reason: "goods not arrived".to_owned(),
        }),
    );
    ledger.submit(&recovery);
    marks.insert("recovered2", ledger.head());
    (ledger, j1, j2, marks)
}

#[test]
fn exposure_of_a_shared_guarantee_now_and_as_of() {
    let (ledger, j1, j2, marks) = shared_guarantee();
    let v = project(&ledger.events());
    let stake = fixtures::AMOUNT_AT_STAKE_XOF;
    let reference = fixtures::REFERENCE_AMOUNT_XOF;

    let now = v.exposure.guarantee(&j1.grn).unwrap();
    assert_eq!(now.reference_amount, Some(xof(reference)));
    assert_eq!(now.reserved, xof(2 * stake));
    assert_eq!(now.released, xof(stake + stake - 5_000_000));
    assert_eq!(now.recovered, xof(5_000_000));
    assert_eq!(now.exposure, xof(0));
    assert_eq!(now.headroom, Some(xof(reference)));
    assert_eq!(
        v.exposure.guarantee(&j2.grn),
        None,
        "j2's own guarantee was never used"
    );

    let as_of = |mark: &str| v.exposure.as_of_position(&j1.grn, marks[mark]).unwrap();
    assert_eq!(as_of("registered").exposure, xof(0));
    assert_eq!(as_of("registered").headroom, Some(xof(reference)));
    assert_eq!(as_of("released1").exposure, xof(stake));
    assert_eq!(as_of("released2").exposure, xof(2 * stake));
    assert_eq!(
        as_of("released2").headroom,
        Some(xof(reference - 2 * stake))
    );
    assert_eq!(as_of("discharged1").exposure, xof(stake));
    assert_eq!(as_of("discharged1").released, xof(stake));
    assert_eq!(as_of("answered2").exposure, xof(stake));
    assert_eq!(as_of("recovered2"), now);
    // A position between two changes answers with the earlier change.
    assert_eq!(
        v.exposure
            .as_of_position(&j1.grn, marks["discharged1"] - 1)
            .unwrap()
            .exposure,
        xof(2 * stake)
    );
    assert_eq!(v.exposure.as_of_position(&j1.grn, u64::MAX).unwrap(), now);

    // By ledger time: the registration was recorded at base, the releases at +2 h, the
    // discharge at +40 h.
    let by_time = |minutes: i64| v.exposure.as_of_time(&j1.grn, at(base(), minutes));
    assert_eq!(by_time(-1), None, "nothing before the registration");
    assert_eq!(by_time(0).unwrap().exposure, xof(0));
    assert_eq!(by_time(3 * 60).unwrap().exposure, xof(2 * stake));
    assert_eq!(by_time(41 * 60).unwrap().exposure, xof(stake));
    assert_eq!(by_time(30 * 24 * 60).unwrap(), now);

    // Rollups: one guarantor, one principal, one country, one corridor, all holding both
    // movements.
    for rollups in [
        v.exposure.by_guarantor(),
        v.exposure.by_principal(),
        v.exposure.by_departure_country(),
        v.exposure.by_corridor(),
    ] {
        assert_eq!(rollups.len(), 1, "{rollups:?}");
        assert_eq!(rollups[0].reserved, xof(2 * stake));
        assert_eq!(rollups[0].recovered, xof(5_000_000));
        assert_eq!(rollups[0].exposure, xof(0));
    }
    assert_eq!(v.exposure.by_guarantor()[0].key, "TG-GUAR-0001");
    assert_eq!(v.exposure.by_guarantor()[0].headroom, Some(xof(reference)));
    assert_eq!(v.exposure.by_principal()[0].key, "TG1000000001");
    assert_eq!(v.exposure.by_departure_country()[0].key, "TG");
    assert_eq!(v.exposure.by_corridor()[0].key, "TG000101>BFOUA001");
    assert_eq!(v.exposure.by_corridor()[0].headroom, None);

    // The movement view agrees on the statuses.
    assert_eq!(v.movements.get(&j1.mrn).unwrap().status, Status::Discharged);
    let r2 = v.movements.get(&j2.mrn).unwrap();
    assert_eq!(r2.status, Status::Recovered);
    assert_eq!(r2.guarantee.as_ref(), Some(&j1.grn));
    assert!(r2.steps.enquiry_opened_at.is_some() && r2.steps.recovered_at.is_some());
}

#[test]
fn a_crossing_before_the_declaration_stays_in_history_as_an_anomaly() {
    let j = fixtures::journey(base(), 3);
    let mut ledger = Ledger::default();
    ledger.submit(&j.guarantee_registration);
    ledger.submit(&j.crossings[1]);
    let crossing_position = ledger.head();
    ledger.submit_all(&[j.declaration.clone(), j.release.clone()]);
    let events = ledger.events();

    let mut view = MovementsView::new();
    for e in &events[..=crossing_position as usize] {
        view.apply(e);
    }
    let early = view.get(&j.mrn).unwrap();
    assert_eq!(early.status, Status::Unknown);
    assert_eq!(early.listing_position, crossing_position);
    assert!(early.planned.is_none());
    assert_eq!(early.actual.transit[0].as_str(), fixtures::CINKASSE_BF);

    for e in &events[crossing_position as usize + 1..] {
        view.apply(e);
    }
    let r = view.get(&j.mrn).unwrap();
    assert_eq!(r.status, Status::Released);
    assert_eq!(r.history[0].event_type, "BorderCrossed");
    assert_eq!(r.history[0].position, crossing_position);
    assert!(r.history[0].anomaly.is_some());
    assert!(r.has_anomalies());
    assert!(!r.steps.crossings[0].declared_office);
    assert_eq!(r.listing_position, r.declaration_position.unwrap());
    let anomalous = MovementFilter {
        has_anomalies: Some(true),
        ..MovementFilter::default()
    };
    let page = view.list(&anomalous, 10, None).unwrap();
    assert_eq!(page.items.len(), 1);
    assert_eq!(page.items[0].mrn, j.mrn);
}

/// Five movements declared a day apart; 1-3 complete, 4 also crosses an undeclared office
/// and stays Arrived, 5 has an early crossing and stays Released.
fn five_movements() -> (Ledger, Vec<Journey>) {
    let mut ledger = Ledger::default();
    let mut journeys = Vec::new();
    for serial in 1..=5_u32 {
        let day = at(base(), i64::from(serial - 1) * 24 * 60);
        let j = fixtures::journey(day, serial);
        match serial {
            1..=3 => ledger.submit_all(&j.messages()),
            4 => {
                ledger.submit_all(&[
                    j.guarantee_registration.clone(),
                    j.declaration.clone(),
                    j.release.clone(),
                ]);
                ledger.submit_all(&j.crossings);
                let mut detour = j.crossings[1].clone();
                detour.message_id = "FX-4-DETOUR".parse().unwrap();
                if let MessageBody::BorderCrossing(BorderCrossing { office, .. }) = &mut detour.body
                {
                    *office = "BFBOB001".parse().unwrap();
                }
                ledger.submit(&detour);
                ledger.submit(&j.arrival);
            }
            _ => {
                ledger.submit(&j.guarantee_registration);
                ledger.submit(&j.crossings[0]);
                ledger.submit_all(&[j.declaration.clone(), j.release.clone()]);
            }
        }
        journeys.push(j);
    }
    (ledger, journeys)
}

fn mrns(page: &transit_views::movements::MovementPage<'_>) -> Vec<Mrn> {
    page.items.iter().map(|r| r.mrn.clone()).collect()
}

#[test]
fn listing_is_paginated_in_declaration_order() {
    let (ledger, journeys) = five_movements();
    let v = project(&ledger.events());
    let all: Vec<Mrn> = journeys.iter().map(|j| j.mrn.clone()).collect();
    let any = MovementFilter::default();
    let mut seen = Vec::new();
    let mut after = None;
    let mut pages = 0;
    loop {
        let page = v.movements.list(&any, 2, after).unwrap();
        pages += 1;
        seen.extend(mrns(&page));
        if !page.has_next_page {
            break;
        }
        after = page.end_cursor;
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, all);
    assert!(matches!(
        v.movements.list(&any, MOVEMENTS_PAGE_MAX + 1, None),
        Err(QueryError::PageTooLarge { .. })
    ));
    let empty = v.movements.list(&any, 0, None).unwrap();
    assert!(empty.items.is_empty() && empty.has_next_page);
    let past_end = v.movements.list(&any, 10, Some(u64::MAX)).unwrap();
    assert!(past_end.items.is_empty() && !past_end.has_next_page);
}

#[test]
fn each_filter_selects_what_it_names() {
    let (ledger, journeys) = five_movements();
    let v = project(&ledger.events());
    let m = |i: usize| journeys[i - 1].mrn.clone();
    let list = |f: MovementFilter| mrns(&v.movements.list(&f, MOVEMENTS_PAGE_MAX, None).unwrap());
    let f = MovementFilter::default;

    assert_eq!(
        list(MovementFilter {
            status: Some(Status::Discharged),
            ..f()
        }),
        [m(1), m(2), m(3)]
    );
    assert_eq!(
        list(MovementFilter {
            status: Some(Status::Released),
            ..f()
        }),
        [m(5)]
    );
    assert_eq!(
        list(MovementFilter {
            office: Some("BFBOB001".parse().unwrap()),
            ..f()
        }),
        [m(4)],
        "an office where a crossing was recorded, though not declared"
    );
    assert_eq!(
        list(MovementFilter {
            office: Some(fixtures::CINKASSE_BF.parse().unwrap()),
            ..f()
        })
        .len(),
        5
    );
    assert_eq!(
        list(MovementFilter {
            country: Some("BF".parse().unwrap()),
            ..f()
        })
        .len(),
        5
    );
    assert!(list(MovementFilter {
        country: Some("NE".parse().unwrap()),
        ..f()
    })
    .is_empty());
    assert_eq!(
        list(MovementFilter {
            corridor: Some("TG000101>BFOUA001".parse().unwrap()),
            ..f()
        })
        .len(),
        5
    );
    assert!(list(MovementFilter {
        corridor: Some("TG000101>BFBOB001".parse().unwrap()),
        ..f()
    })
    .is_empty());
    assert_eq!(
        list(MovementFilter {
            country_pair: Some("TG>BF".parse().unwrap()),
            ..f()
        })
        .len(),
        5
    );
    // Declared on days 2 and 3 (the window is [from, until)).
    assert_eq!(
        list(MovementFilter {
            declared_from: Some(at(base(), 24 * 60)),
            declared_until: Some(at(base(), 3 * 24 * 60)),
            ..f()
        }),
        [m(2), m(3)]
    );
    assert_eq!(
        list(MovementFilter {
            holder: Some("TG1000000003".parse().unwrap()),
            ..f()
        }),
        [m(3)]
    );
    assert_eq!(
        list(MovementFilter {
            vehicle: Some("BF 0002 GA".parse().unwrap()),
            ..f()
        }),
        [m(2)]
    );
    for (prefix, n) in [
        ("100630", 5),
        ("27", 5),
        ("2710", 5),
        ("01", 0),
        ("271020", 0),
    ] {
        assert_eq!(
            list(MovementFilter {
                hs: Some(prefix.parse().unwrap()),
                ..f()
            })
            .len(),
            n,
            "HS {prefix}"
        );
    }
    assert!("1006".parse::<transit_views::movements::HsPrefix>().is_ok());
    assert!("100".parse::<transit_views::movements::HsPrefix>().is_err());
    assert!("10063A"
        .parse::<transit_views::movements::HsPrefix>()
        .is_err());
    assert_eq!(
        list(MovementFilter {
            has_anomalies: Some(true),
            ..f()
        }),
        [m(5)]
    );
    assert_eq!(
        list(MovementFilter {
            has_anomalies: Some(false),
            ..f()
        })
        .len(),
        4
    );
    // Filters combine, and the page still paginates over the filtered set.
    let combined = MovementFilter {
        status: Some(Status::Discharged),
        declared_from: Some(at(base(), 24 * 60)),
        ..f()
    };
    let page = v.movements.list(&combined, 1, None).unwrap();
    assert_eq!(mrns(&page), [m(2)]);
    assert!(page.has_next_page);
    let page = v.movements.list(&combined, 1, page.end_cursor).unwrap();
    assert_eq!(mrns(&page), [m(3)]);
    assert!(!page.has_next_page);
}

#[test]
fn corridor_medians_segments_dwell_and_overdue_rate() {
    // Released at +2 h; arrivals at +30, +34, +36 and +48 h: transit times 28, 32, 34 and 46 h.
    // The fifth movement crosses into Burkina Faso and is never seen again.
    let mut ledger = Ledger::default();
    let arrivals_h = [30, 34, 36, 48];
    for serial in 1..=5_u32 {
        let j = fixtures::journey(base(), serial);
        ledger.submit_all(&[
            j.guarantee_registration.clone(),
            j.declaration.clone(),
            j.release.clone(),
        ]);
        ledger.submit_all(&j.crossings);
        if let Some(h) = arrivals_h.get(serial as usize - 1) {
            ledger.submit(&arrival_at(&j, at(base(), h * 60)));
        }
    }
    let v = project(&ledger.events());
    let corridor: Corridor = "TG000101>BFOUA001".parse().unwrap();

    let before_limit = v
        .corridors
        .corridor(&corridor, at(base(), 7 * 24 * 60))
        .unwrap();
    assert_eq!(before_limit.overdue.overdue, 0);
    let stats = v
        .corridors
        .corridor(&corridor, at(base(), 9 * 24 * 60))
        .unwrap();
    let transit = stats.transit_time.unwrap();
    assert_eq!(transit.count, 4);
    assert_eq!(transit.min_s, 28 * HOUR_S);
    assert_eq!(transit.median_s, 32 * HOUR_S, "nearest rank: 2nd of 4");
    assert_eq!(transit.p90_s, 46 * HOUR_S, "nearest rank: 4th of 4");
    assert_eq!(transit.max_s, 46 * HOUR_S);
    assert_eq!(
        stats.released_per_day,
        BTreeMap::from([("2024-03-01".to_owned(), 5)])
    );
    assert_eq!(stats.overdue.overdue, 1);
    assert_eq!(stats.overdue.released, 5);
    assert_eq!(stats.overdue.rate_ppm, 200_000);

    let segments: BTreeMap<String, (u64, i64)> = v
        .corridors
        .segment_stats()
        .into_iter()
        .map(|s| {
            (
                format!("{}>{}", s.from, s.to),
                (s.duration.count, s.duration.median_s),
            )
        })
        .collect();
    assert_eq!(
        segments,
        BTreeMap::from([
            ("TG000101>TGCIN001".to_owned(), (5, 18 * HOUR_S)),
            ("TGCIN001>BFCIN001".to_owned(), (5, HOUR_S)),
            // Arrivals 9, 13, 15 and 27 h after the crossing at +21 h.
            ("BFCIN001>BFOUA001".to_owned(), (4, 13 * HOUR_S)),
        ])
    );
    let dwell = v.corridors.dwell_stats();
    assert_eq!(dwell.len(), 1);
    assert_eq!(dwell[0].from.as_str(), fixtures::CINKASSE_TG);
    assert_eq!(dwell[0].to.as_str(), fixtures::CINKASSE_BF);
    assert_eq!(dwell[0].duration.median_s, HOUR_S);
    assert_eq!(dwell[0].duration.count, 5);
}

#[test]
fn state_hashes_match_between_one_go_and_two_halves_and_differ_otherwise() {
    let (ledger, ..) = shared_guarantee();
    let events = ledger.events();
    let whole = project(&events);

    let (first, second) = events.split_at(events.len() / 2);
    let mut halves = project(first);
    for e in second {
        halves.movements.apply(e);
        halves.exposure.apply(e);
        halves.corridors.apply(e);
    }
    assert_eq!(whole.movements.state_hash(), halves.movements.state_hash());
    assert_eq!(whole.exposure.state_hash(), halves.exposure.state_hash());
    assert_eq!(whole.corridors.state_hash(), halves.corridors.state_hash());

    // A batch replayed after a crash is ignored: positions already applied change nothing.
    for e in first {
        assert!(halves.movements.apply(e).is_empty());
        assert!(halves.exposure.apply(e).is_empty());
        assert!(halves.corridors.apply(e).is_empty());
    }
    assert_eq!(whole.movements.state_hash(), halves.movements.state_hash());
    assert_eq!(whole.exposure.state_hash(), halves.exposure.state_hash());
    assert_eq!(whole.corridors.state_hash(), halves.corridors.state_hash());

    // Other events, other hashes.
    let fewer = project(&events[..events.len() - 1]);
    assert_ne!(whole.movements.state_hash(), fewer.movements.state_hash());
    assert_ne!(whole.exposure.state_hash(), fewer.exposure.state_hash());
    assert_ne!(whole.corridors.state_hash(), fewer.corridors.state_hash());
    let (other, ..) = five_movements();
    let other = project(&other.events());
    assert_ne!(whole.movements.state_hash(), other.movements.state_hash());
    assert_ne!(whole.exposure.state_hash(), other.exposure.state_hash());
    assert_ne!(whole.corridors.state_hash(), other.corridors.state_hash());
    assert_eq!(
        transit_views::hash_hex(&whole.movements.state_hash()).len(),
        64
    );
}

#[test]
fn folding_without_changes_reaches_the_same_state_as_applying() {
    for ledger in [shared_guarantee().0, five_movements().0] {
        let events = ledger.events();
        let applied = project(&events);
        let mut exposure = ExposureView::new();
        let mut corridors = CorridorsView::new();
        for e in events.iter().chain(&events) {
            // The second pass is a replay: ignored, as by `apply`.
            exposure.fold(e);
            corridors.fold(e);
        }
        assert_eq!(exposure.state_hash(), applied.exposure.state_hash());
        assert_eq!(corridors.state_hash(), applied.corridors.state_hash());
        assert_eq!(exposure.by_corridor(), applied.exposure.by_corridor());
        assert_eq!(exposure.by_guarantor(), applied.exposure.by_guarantor());
        assert_eq!(
            corridors.corridor_stats(base()),
            applied.corridors.corridor_stats(base())
        );
        assert_eq!(corridors.segment_stats(), applied.corridors.segment_stats());
    }
}

#[test]
fn a_diversion_moves_the_corridor_and_keeps_the_declared_destination() {
    let j = fixtures::journey(base(), 6);
    let mut ledger = Ledger::default();
    ledger.submit_all(&[
        j.guarantee_registration.clone(),
        j.declaration.clone(),
        j.release.clone(),
    ]);
    ledger.submit(&message(
        &j,
        "DIV",
        at(base(), 5 * 60),
        MessageBody::DestinationChange(DestinationChange {
            mrn: j.mrn.clone(),
            new_office_of_destination: "BFBOB001".parse().unwrap(),
            reason: "consignee moved".to_owned(),
        }),
    ));
    ledger.submit_all(&j.crossings);
    let mut arrival = arrival_at(&j, at(base(), 40 * 60));
    if let MessageBody::ArrivalNotification(a) = &mut arrival.body {
        a.office = "BFBOB001".parse().unwrap();
    }
    ledger.submit(&arrival);
    let v = project(&ledger.events());
    let r = v.movements.get(&j.mrn).unwrap();
    let planned = r.planned.as_ref().unwrap();
    assert_eq!(planned.destination.as_str(), "BFBOB001");
    assert_eq!(planned.destination_declared.as_str(), fixtures::OUAGADOUGOU);
    assert_eq!(r.actual.destination[0].as_str(), "BFBOB001");
    assert_eq!(
        r.corridor.as_ref().unwrap().to_string(),
        "TG000101>BFBOB001"
    );
    assert_eq!(r.status, Status::Arrived);
    assert!(r.steps.destination_changed_at.is_some());
    assert_eq!(v.exposure.by_corridor()[0].key, "TG000101>BFBOB001");
    let stats = v.corridors.corridor_stats(at(base(), 60 * 24 * 60));
    assert_eq!(stats.len(), 1);
    assert_eq!(stats[0].corridor.to_string(), "TG000101>BFBOB001");
    assert_eq!(stats[0].transit_time.unwrap().median_s, 38 * HOUR_S);
    assert_eq!(stats[0].overdue.overdue, 0, "arrived, though late");
}
