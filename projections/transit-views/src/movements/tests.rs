//! The indexed listing against a brute-force scan, on thousands of generated movements whose
//! status, route, vehicle and goods change while they are listed; and the view through a
//! snapshot.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use transit_contract::events::{Actor, EventMeta, MovementEvent};
use transit_contract::fixtures;
use transit_contract::ids::{Currency, HsCode, Money, Mrn, OfficeCode, Timestamp};
use transit_contract::messages::{
    DeclarationChanges, EnquiryOutcome, GoodsItem, IncidentCode, MeansOfTransport, NoReleaseReason,
    OfficeOfTransit, Place, TransportMode,
};

use super::*;

const DEPARTURES: [&str; 3] = ["TG000101", "BJCOT001", "GHTEM001"];
const TRANSITS: [&str; 5] = ["TGCIN001", "BFCIN001", "NENIA001", "BJMAL001", "MLKOU001"];
const DESTINATIONS: [&str; 4] = ["BFOUA001", "BFBOB001", "NENIA002", "MLBKO001"];
const HS: [&str; 8] = [
    "100630", "100610", "271019", "271012", "240220", "150710", "870323", "010121",
];

fn base() -> Timestamp {
    "2024-03-01T08:00:00Z".parse().unwrap()
}

fn at_minutes(minutes: i64) -> Timestamp {
    Timestamp::from_unix_millis(base().unix_millis() + minutes * 60_000).unwrap()
}

fn pick<'a>(rng: &mut ChaCha8Rng, from: &[&'a str]) -> &'a str {
    from.choose(rng).copied().unwrap()
}

fn office(s: &str) -> OfficeCode {
    s.parse().unwrap()
}

fn vehicle(rng: &mut ChaCha8Rng, vehicles: u32) -> MeansOfTransport {
    MeansOfTransport {
        mode: TransportMode::Road,
        identity: format!("BF {:04} GA", rng.gen_range(0..vehicles))
            .parse()
            .unwrap(),
        nationality: "BF".parse().unwrap(),
    }
}

fn goods(rng: &mut ChaCha8Rng, template: &GoodsItem) -> Vec<GoodsItem> {
    (0..rng.gen_range(1..=3))
        .map(|_| GoodsItem {
            hs_code: pick(rng, &HS).parse().unwrap(),
            ..template.clone()
        })
        .collect()
}

fn transits(rng: &mut ChaCha8Rng) -> Vec<OfficeOfTransit> {
    (0..rng.gen_range(0..=2))
        .map(|_| OfficeOfTransit {
            office: office(pick(rng, &TRANSITS)),
            expected_arrival: None,
        })
        .collect()
}

fn xof(amount: i64) -> Money {
    Money::new(amount, Currency::xof()).unwrap()
}

/// A movement's events, in order, each with its business time in minutes after `base`;
/// declared on about `day` (days after `base`).
fn script(
    rng: &mut ChaCha8Rng,
    serial: u32,
    day: i64,
    holders: u32,
    vehicles: u32,
) -> Vec<(i64, MovementEvent)> {
    let j = fixtures::journey(base(), serial);
    let transit_contract::messages::MessageBody::TransitDeclaration(mut d) = j.declaration.body
    else {
        panic!("the fixture declaration is a declaration");
    };
    // Declarations come roughly in time order, as in the log, give or take a day.
    let day = (day + rng.gen_range(-1..=1)) * 24 * 60 + rng.gen_range(0..24 * 60);
    let t = |m: i64| day + m;
    d.office_of_departure = office(pick(rng, &DEPARTURES));
    d.offices_of_transit = transits(rng);
    d.office_of_destination = office(pick(rng, &DESTINATIONS));
    d.countries_of_routing = (0..rng.gen_range(0..=2))
        .map(|_| {
            ["TG", "BF", "NE", "CI", "BJ"]
                .choose(rng)
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect();
    d.holder.id = format!("TG{:010}", rng.gen_range(0..holders))
        .parse()
        .unwrap();
    d.transport = vehicle(rng, vehicles);
    d.goods = goods(rng, &d.goods[0]);
    let mut out = Vec::new();
    let undeclared_crossing = |rng: &mut ChaCha8Rng, m: i64| {
        (
            m,
            MovementEvent::BorderCrossed {
                office: office(pick(rng, &TRANSITS)),
                crossed_at: at_minutes(m),
                declared_office: false,
                seals_intact: true,
                seals_observed: Vec::new(),
            },
        )
    };
    if rng.gen_bool(0.1) {
        // Seen at a border before the declaration is recorded: listed there until then.
        out.push(undeclared_crossing(rng, t(-60)));
        if rng.gen_bool(0.2) {
            // ... and the declaration never comes.
            return out;
        }
    }
    let destination = d.office_of_destination.clone();
    let transit_offices: Vec<OfficeCode> = d.transit_offices().cloned().collect();
    out.push((
        t(30),
        MovementEvent::TransitDeclared {
            declaration: d.clone(),
        },
    ));
    if rng.gen_bool(0.15) {
        let mut changes = DeclarationChanges::default();
        if rng.gen_bool(0.5) {
            changes.transport = Some(vehicle(rng, vehicles));
        }
        if rng.gen_bool(0.5) {
            changes.goods = Some(goods(rng, &d.goods[0]));
        }
        if rng.gen_bool(0.3) {
            changes.offices_of_transit = Some(transits(rng));
        }
        if rng.gen_bool(0.3) {
            changes.office_of_destination = Some(office(pick(rng, &DESTINATIONS)));
        }
        out.push((t(60), MovementEvent::DeclarationAmended { changes }));
    }
    match rng.gen_range(0..100) {
        0..=5 => {
            out.push((
                t(90),
                MovementEvent::DeclarationCancelled {
                    reason: "withdrawn".to_owned(),
                },
            ));
            return out;
        }
        6..=9 => {
            out.push((
                t(90),
                MovementEvent::ReleaseRefused {
                    reason: NoReleaseReason::ControlNotSatisfactory,
                    remarks: String::new(),
                },
            ));
            return out;
        }
        10..=14 => return out,
        _ => {}
    }
    out.push((
        t(120),
        MovementEvent::TransitReleased {
            released_at: at_minutes(t(120)),
            amount_reserved: xof(1_000),
            guarantee: d.guarantee.clone(),
        },
    ));
    out.push((
        t(120),
        MovementEvent::AnticipatedRecordsDispatched {
            offices_of_transit: transit_offices.clone(),
            office_of_destination: destination.clone(),
        },
    ));
    let mut destination = destination;
    if rng.gen_bool(0.15) {
        let to = office(pick(rng, &DESTINATIONS));
        out.push((
            t(300),
            MovementEvent::DestinationChanged {
                from: destination.clone(),
                to: to.clone(),
                reason: "re-routed".to_owned(),
            },
        ));
        destination = to;
    }
    for (i, o) in transit_offices.iter().enumerate() {
        if rng.gen_bool(0.8) {
            let m = t(600 + 60 * i as i64);
            out.push((
                m,
                MovementEvent::BorderCrossed {
                    office: o.clone(),
                    crossed_at: at_minutes(m),
                    declared_office: true,
                    seals_intact: true,
                    seals_observed: Vec::new(),
                },
            ));
        }
    }
    if rng.gen_bool(0.1) {
        out.push(undeclared_crossing(rng, t(700)));
    }
    if rng.gen_bool(0.1) {
        out.push((
            t(800),
            MovementEvent::IncidentRecorded {
                code: IncidentCode::Transhipment,
                place: Place {
                    locode: None,
                    latitude_e7: Some(120_000_000),
                    longitude_e7: Some(10_000_000),
                },
                occurred_at: at_minutes(t(800)),
                endorsed_by: None,
                new_seals: Vec::new(),
                new_transport: rng.gen_bool(0.7).then(|| vehicle(rng, vehicles)),
                description: "goods moved".to_owned(),
            },
        ));
    }
    match rng.gen_range(0..100) {
        0..=59 => {
            let arrived_at = if rng.gen_bool(0.9) {
                destination.clone()
            } else {
                office(pick(rng, &DESTINATIONS))
            };
            out.push((
                t(2000),
                MovementEvent::ArrivalRecorded {
                    office: arrived_at.clone(),
                    arrived_at: at_minutes(t(2000)),
                    declared_destination: arrived_at == destination,
                },
            ));
            if rng.gen_bool(0.8) {
                out.push((
                    t(2100),
                    MovementEvent::ControlResultsRecorded {
                        office: arrived_at,
                        conform: true,
                        seals_intact: true,
                        seals_found: Vec::new(),
                        gross_mass_g_found: None,
                        packages_found: None,
                        remarks: String::new(),
                    },
                ));
                if rng.gen_bool(0.8) {
                    out.push((
                        t(2200),
                        MovementEvent::TransitDischarged {
                            amount_released: xof(1_000),
                        },
                    ));
                }
            }
        }
        60..=74 => {
            out.push((
                t(12_000),
                MovementEvent::EnquiryOpened {
                    reason: "overdue".to_owned(),
                },
            ));
            if rng.gen_bool(0.7) {
                let outcome = if rng.gen_bool(0.5) {
                    EnquiryOutcome::GoodsNotArrived
                } else {
                    EnquiryOutcome::GoodsArrived {
                        arrived_at: at_minutes(t(2500)),
                        office: destination.clone(),
                    }
                };
                let not_arrived = outcome == EnquiryOutcome::GoodsNotArrived;
                out.push((
                    t(13_000),
                    MovementEvent::EnquiryAnswered {
                        outcome,
                        remarks: String::new(),
                    },
                ));
                if not_arrived && rng.gen_bool(0.7) {
                    out.push((
                        t(14_000),
                        MovementEvent::DutiesRecovered {
                            amount_recovered: xof(500),
                            reason: "not arrived".to_owned(),
                        },
                    ));
                }
            }
        }
        _ => {}
    }
    out
}

/// One recorded event of a generated log.
struct Logged {
    position: u64,
    mrn: Mrn,
    meta: EventMeta,
    event: MovementEvent,
}

impl Logged {
    fn ledger_event(&self) -> LedgerEvent<'_> {
        LedgerEvent::Movement {
            position: self.position,
            mrn: &self.mrn,
            meta: &self.meta,
            event: &self.event,
        }
    }
}

/// `count` movements with interleaved events (so that listing positions interleave and
/// statuses change while others are listed), positions with gaps (guarantee events).
fn generate(seed: u64, count: u32, holders: u32, vehicles: u32) -> (Vec<Logged>, Vec<Mrn>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut pending: Vec<(Mrn, std::vec::IntoIter<(i64, MovementEvent)>)> = Vec::new();
    let mut mrns = Vec::new();
    let mut log = Vec::new();
    let mut position = 0_u64;
    let mut serial = 0_u32;
    let actor = Actor {
        country: "TG".parse().unwrap(),
        office: office(fixtures::LOME_PORT),
    };
    while serial < count || !pending.is_empty() {
        // New movements keep arriving while earlier ones progress: about 200 at a time.
        if serial < count && pending.len() < 200 {
            serial += 1;
            let mrn = fixtures::mrn(base(), serial);
            mrns.push(mrn.clone());
            let day = i64::from(serial) * 90 / i64::from(count);
            pending.push((
                mrn,
                script(&mut rng, serial, day, holders, vehicles).into_iter(),
            ));
            continue;
        }
        let i = rng.gen_range(0..pending.len());
        let Some((minutes, event)) = pending[i].1.next() else {
            pending.swap_remove(i);
            continue;
        };
        position += rng.gen_range(1..=3);
        let meta = EventMeta {
            message_id: format!("G-{position}").parse().unwrap(),
            correlation_id: None,
            actor: actor.clone(),
            occurred_at: at_minutes(minutes),
            recorded_at: at_minutes(minutes),
            message_digest: String::new(),
            anomaly: rng.gen_bool(0.03).then(|| "out of sequence".to_owned()),
        };
        log.push(Logged {
            position,
            mrn: pending[i].0.clone(),
            meta,
            event,
        });
    }
    (log, mrns)
}

/// The reference: every record, filtered, in listing order, paged from the cursor.
fn brute_force<'a>(
    view: &'a MovementsView,
    mrns: &[Mrn],
    filter: &MovementFilter,
    first: usize,
    after: Option<u64>,
    keep: &dyn Fn(&MovementRecord) -> bool,
) -> (Vec<&'a Mrn>, Option<u64>, bool) {
    let mut all: Vec<&MovementRecord> = mrns
        .iter()
        .filter_map(|m| view.get(m))
        .filter(|r| filter.matches(r) && keep(r))
        .filter(|r| after.is_none_or(|a| r.listing_position > a))
        .collect();
    all.sort_by_key(|r| r.listing_position);
    let page: Vec<&MovementRecord> = all.iter().take(first).copied().collect();
    (
        page.iter().map(|r| &r.mrn).collect(),
        page.last().map(|r| r.listing_position),
        all.len() > first,
    )
}

fn random_filter(rng: &mut ChaCha8Rng, mrns: &[Mrn]) -> MovementFilter {
    const STATUSES: [Status; 10] = [
        Status::Unknown,
        Status::Declared,
        Status::Released,
        Status::Arrived,
        Status::Controlled,
        Status::Discharged,
        Status::NotReleased,
        Status::Cancelled,
        Status::UnderEnquiry,
        Status::Recovered,
    ];
    let mut f = MovementFilter::default();
    let p = 0.15;
    if rng.gen_bool(p) {
        f.status = STATUSES.choose(rng).copied();
    }
    let all_offices: Vec<&str> = DEPARTURES
        .iter()
        .chain(&TRANSITS)
        .chain(&DESTINATIONS)
        .chain(&["CIABJ001"])
        .copied()
        .collect();
    if rng.gen_bool(p) {
        f.office = Some(office(pick(rng, &all_offices)));
    }
    if rng.gen_bool(p) {
        f.country = Some(
            pick(rng, &["TG", "BF", "NE", "CI", "BJ", "GH", "ML", "SN"])
                .parse()
                .unwrap(),
        );
    }
    if rng.gen_bool(p) {
        f.corridor = Some(Corridor::new(
            office(pick(rng, &DEPARTURES)),
            office(pick(rng, &DESTINATIONS)),
        ));
    }
    if rng.gen_bool(p / 2.0) {
        f.country_pair = Some(
            pick(rng, &["TG>BF", "BJ>NE", "GH>ML", "TG>CI"])
                .parse()
                .unwrap(),
        );
    }
    if rng.gen_bool(p) {
        let from = rng.gen_range(-10..100_i64) * 24 * 60;
        let len = rng.gen_range(0..40_i64) * 24 * 60 + rng.gen_range(-60..60);
        match rng.gen_range(0..3) {
            0 => f.declared_from = Some(at_minutes(from)),
            1 => f.declared_until = Some(at_minutes(from)),
            _ => {
                f.declared_from = Some(at_minutes(from));
                f.declared_until = Some(at_minutes(from + len));
            }
        }
    }
    if rng.gen_bool(p) {
        f.holder = Some(format!("TG{:010}", rng.gen_range(0..60)).parse().unwrap());
    }
    if rng.gen_bool(p) {
        f.vehicle = Some(
            format!("BF {:04} GA", rng.gen_range(0..220))
                .parse()
                .unwrap(),
        );
    }
    if rng.gen_bool(p) {
        let code = pick(rng, &HS);
        let len = *[2, 4, 6].choose(rng).unwrap();
        let prefix = if rng.gen_bool(0.1) {
            "02"
        } else {
            &code[..len]
        };
        f.hs = Some(prefix.parse().unwrap());
    }
    if rng.gen_bool(p / 2.0) {
        f.has_anomalies = Some(rng.gen_bool(0.5));
    }
    if rng.gen_bool(p) {
        let n = *[0, 1, 5, 50, 2000].choose(rng).unwrap();
        let mut set: BTreeSet<Mrn> = mrns.choose_multiple(rng, n).cloned().collect();
        if rng.gen_bool(0.3) {
            // An MRN the view has never seen.
            set.insert(fixtures::mrn(base(), 999_999));
        }
        f.mrns = Some(set);
    }
    f
}

/// The indexes as they would be if every record were filed from scratch.
fn rebuilt_indexes(view: &MovementsView) -> Indexes {
    let mut indexes = Indexes::default();
    for e in view.movements.values() {
        refile(
            &mut indexes,
            None,
            &e.record,
            &MovementEvent::EnquiryOpened {
                reason: String::new(),
            },
        );
    }
    indexes
}

fn check_random_filters(rng: &mut ChaCha8Rng, view: &MovementsView, mrns: &[Mrn], rounds: usize) {
    let listed: Vec<u64> = view.movements.keys().copied().collect();
    let mut non_empty = 0;
    for round in 0..rounds {
        let filter = random_filter(rng, mrns);
        let first = *[0, 1, 3, 20, MOVEMENTS_PAGE_MAX].choose(rng).unwrap();
        let after = match rng.gen_range(0..4) {
            0 => None,
            1 => listed.choose(rng).copied(),
            2 => Some(rng.gen_range(0..=listed.last().copied().unwrap_or(0) + 5)),
            _ => Some(u64::MAX),
        };
        // Sometimes one more condition the view cannot index (as for "no open signal").
        let excluded: BTreeSet<Mrn> = if rng.gen_bool(0.2) {
            mrns.choose_multiple(rng, mrns.len() / 3).cloned().collect()
        } else {
            BTreeSet::new()
        };
        let keep = |r: &MovementRecord| !excluded.contains(&r.mrn);
        let page = view.list_where(&filter, first, after, keep).unwrap();
        let got: Vec<&Mrn> = page.items.iter().map(|r| &r.mrn).collect();
        let (want, want_cursor, want_next) = brute_force(view, mrns, &filter, first, after, &keep);
        assert_eq!(
            got, want,
            "round {round}: {filter:?} first {first} after {after:?}"
        );
        assert_eq!(page.end_cursor, want_cursor, "round {round}: {filter:?}");
        assert_eq!(
            page.has_next_page, want_next,
            "round {round}: {filter:?} first {first}"
        );
        if !brute_force(view, mrns, &filter, 1, None, &keep)
            .0
            .is_empty()
        {
            non_empty += 1;
        }
        // Following the cursors gives the whole answer, once each, in listing order.
        if round % 10 == 0 {
            let mut walked = Vec::new();
            let mut cursor = None;
            loop {
                let page = view.list_where(&filter, 7, cursor, keep).unwrap();
                walked.extend(page.items.iter().map(|r| r.mrn.clone()));
                if !page.has_next_page {
                    break;
                }
                cursor = page.end_cursor;
            }
            let (all, ..) = brute_force(view, mrns, &filter, usize::MAX, None, &keep);
            let all: Vec<Mrn> = all.into_iter().cloned().collect();
            assert_eq!(walked, all, "round {round}: {filter:?}");
        }
    }
    assert!(
        non_empty > rounds / 3,
        "the filters should often match something: {non_empty} of {rounds}"
    );
}

#[test]
fn indexed_pages_equal_a_scan_while_movements_change() {
    let (log, mrns) = generate(7, 3000, 60, 220);
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let mut view = MovementsView::new();
    let checkpoints = [log.len() / 10, log.len() / 3, log.len() * 2 / 3, log.len()];
    let mut applied = 0;
    for checkpoint in checkpoints {
        for e in &log[applied..checkpoint] {
            view.apply(&e.ledger_event());
        }
        applied = checkpoint;
        view.indexes.assert_consistent_with(&rebuilt_indexes(&view));
        check_random_filters(&mut rng, &view, &mrns, 200);
    }
    // The generated log has what the indexes must follow.
    let records: Vec<&MovementRecord> = mrns.iter().filter_map(|m| view.get(m)).collect();
    assert_eq!(records.len(), mrns.len());
    let rerouted = records
        .iter()
        .filter(|r| r.steps.destination_changed_at.is_some())
        .count();
    let relisted = records
        .iter()
        .filter(|r| r.history[0].position != r.listing_position)
        .count();
    let statuses: BTreeSet<Status> = records.iter().map(|r| r.status).collect();
    assert!(rerouted > 100 && relisted > 100, "{rerouted} {relisted}");
    assert_eq!(statuses.len(), 10, "{statuses:?}");
}

#[test]
fn the_view_survives_a_snapshot_with_its_indexes() {
    let (log, mrns) = generate(21, 1500, 40, 150);
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    for split in [0, log.len() / 4, log.len() / 2, log.len()] {
        let mut original = MovementsView::new();
        for e in &log[..split] {
            original.apply(&e.ledger_event());
        }
        let bytes = rmp_serde::to_vec_named(&original).unwrap();
        let mut restored: MovementsView = rmp_serde::from_slice(&bytes).unwrap();
        assert_eq!(restored.state_hash(), original.state_hash());
        assert_eq!(restored.indexes, original.indexes);
        for e in &log[split..] {
            let a = original.apply(&e.ledger_event());
            let b = restored.apply(&e.ledger_event());
            assert_eq!(a, b);
        }
        assert_eq!(restored.state_hash(), original.state_hash());
        restored
            .indexes
            .assert_consistent_with(&rebuilt_indexes(&restored));
        assert_eq!(restored.last_position(), original.last_position());
        check_random_filters(&mut rng, &restored, &mrns, 50);
        for _ in 0..50 {
            let filter = random_filter(&mut rng, &mrns);
            let a = original.list(&filter, 20, None).unwrap();
            let b = restored.list(&filter, 20, None).unwrap();
            assert_eq!(a, b);
        }
    }
}

#[test]
fn hs_prefix_keys_cover_chapter_heading_and_subheading() {
    let (log, _) = generate(3, 50, 5, 5);
    let mut view = MovementsView::new();
    for e in &log {
        view.apply(&e.ledger_event());
    }
    let code: HsCode = "271019".parse().unwrap();
    let with_code = view
        .movements
        .values()
        .filter(|e| {
            e.record
                .goods
                .as_ref()
                .is_some_and(|g| g.hs_codes.contains(&code))
        })
        .count();
    assert!(with_code > 0);
    for prefix in ["27", "2710", "271019"] {
        let page = view
            .list(
                &MovementFilter {
                    hs: Some(prefix.parse().unwrap()),
                    ..MovementFilter::default()
                },
                MOVEMENTS_PAGE_MAX,
                None,
            )
            .unwrap();
        assert!(page.items.len() >= with_code, "{prefix}");
    }
}
