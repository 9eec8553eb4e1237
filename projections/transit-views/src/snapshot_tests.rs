//! Snapshots of the three views: journeys are run through the real rules, projected up to a
//! point, round-tripped through MessagePack (as the runner stores them) and then fed the rest
//! of the log alongside the original; hashes and answers must stay equal.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use transit_contract::events::{EventMeta, GuaranteeEvent, MovementEvent};
use transit_contract::fixtures::{self, Journey};
use transit_contract::ids::{Currency, GuaranteeReference, Money, Mrn, Timestamp};
use transit_contract::messages::{
    DestinationChange, EnquiryOutcome, EnquiryRequest, EnquiryResponse, InboundMessage,
    MessageBody, Recovery,
};
use transit_rules::{decide, guarantee_needed, Context, Decision, GuaranteeState, MovementState};

use crate::movements::{MovementFilter, Status};
use crate::{CorridorsView, ExposureView, LedgerEvent, MovementsView};

fn base() -> Timestamp {
    "2024-03-01T08:00:00Z".parse().unwrap()
}

fn at(minutes: i64) -> Timestamp {
    Timestamp::from_unix_millis(base().unix_millis() + minutes * 60_000).unwrap()
}

// Test-only, a few dozen values.
#[allow(clippy::large_enum_variant)]
enum Recorded {
    Movement(Mrn, EventMeta, MovementEvent),
    Guarantee(GuaranteeReference, EventMeta, GuaranteeEvent),
}

/// The streams' states for `decide`, and the global log.
#[derive(Default)]
struct Ledger {
    movements: BTreeMap<Mrn, MovementState>,
    guarantees: BTreeMap<GuaranteeReference, GuaranteeState>,
    log: Vec<Recorded>,
}

impl Ledger {
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

    fn submit(&mut self, msg: &InboundMessage) {
        self.submit_at(msg, msg.sent_at);
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

fn message(j: &Journey, step: &str, sent_at: Timestamp, body: MessageBody) -> InboundMessage {
    let mut m = j.discharge.clone();
    m.message_id = format!("{}-{step}", j.mrn).parse().unwrap();
    m.sent_at = sent_at;
    m.body = body;
    m
}

/// Three movements on one guarantee: one discharged; one overdue, enquired about and
/// recovered; one seen at the border before its declaration, then re-routed.
fn journeys() -> (Ledger, Vec<Journey>) {
    let j1 = fixtures::journey(base(), 1);
    let mut j2 = fixtures::journey(base(), 2);
    let mut j3 = fixtures::journey(base(), 3);
    for j in [&mut j2, &mut j3] {
        if let MessageBody::TransitDeclaration(d) = &mut j.declaration.body {
            d.guarantee = j1.grn.clone();
        }
    }
    let mut ledger = Ledger::default();
    ledger.submit(&j1.guarantee_registration);
    ledger.submit(&j3.crossings[1]);
    for j in [&j1, &j2, &j3] {
        ledger.submit(&j.declaration);
        ledger.submit(&j.release);
    }
    ledger.submit(&message(
        &j3,
        "DIV",
        at(5 * 60),
        MessageBody::DestinationChange(DestinationChange {
            mrn: j3.mrn.clone(),
            new_office_of_destination: "BFBOB001".parse().unwrap(),
            reason: "consignee moved".to_owned(),
        }),
    ));
    for m in j1
        .crossings
        .iter()
        .chain([&j1.arrival, &j1.control_results])
    {
        ledger.submit(m);
    }
    ledger.submit(&j1.discharge);
    ledger.submit(&j3.crossings[0]);
    let late = at(9 * 24 * 60);
    ledger.submit_at(
        &message(
            &j2,
            "ENQ",
            late,
            MessageBody::EnquiryRequest(EnquiryRequest {
                mrn: j2.mrn.clone(),
                reason: "no arrival by the time limit".to_owned(),
            }),
        ),
        late,
    );
    ledger.submit(&message(
        &j2,
        "ANS",
        at(9 * 24 * 60 + 60),
        MessageBody::EnquiryResponse(EnquiryResponse {
            mrn: j2.mrn.clone(),
            outcome: EnquiryOutcome::GoodsNotArrived,
            remarks: String::new(),
        }),
    ));
    ledger.submit(&message(
        &j2,
        "REC",
        at(9 * 24 * 60 + 120),
        MessageBody::Recovery(Recovery {
            mrn: j2.mrn.clone(),
            amount_recovered: Money::new(5_000_000, Currency::xof()).unwrap(),
            reason: "goods not arrived".to_owned(),
        }),
    ));
    (ledger, vec![j1, j2, j3])
}

fn round_trip<T: serde::Serialize + serde::de::DeserializeOwned>(value: &T) -> T {
    let bytes = rmp_serde::to_vec_named(value).unwrap();
    rmp_serde::from_slice(&bytes).unwrap()
}

#[test]
fn every_view_survives_a_snapshot_at_any_position() {
    let (ledger, journeys) = journeys();
    let events = ledger.events();
    let grn = journeys[0].grn.clone();
    let now = at(30 * 24 * 60);
    for split in 0..=events.len() {
        let mut movements = MovementsView::new();
        let mut exposure = ExposureView::new();
        let mut corridors = CorridorsView::new();
        for e in &events[..split] {
            movements.apply(e);
            exposure.apply(e);
            corridors.apply(e);
        }
        let mut movements_back: MovementsView = round_trip(&movements);
        let mut exposure_back: ExposureView = round_trip(&exposure);
        let mut corridors_back: CorridorsView = round_trip(&corridors);
        assert_eq!(movements_back.state_hash(), movements.state_hash());
        assert_eq!(exposure_back.state_hash(), exposure.state_hash());
        assert_eq!(corridors_back.state_hash(), corridors.state_hash());
        for e in &events[split..] {
            assert_eq!(movements_back.apply(e), movements.apply(e));
            assert_eq!(exposure_back.apply(e), exposure.apply(e));
            assert_eq!(corridors_back.apply(e), corridors.apply(e));
            assert_eq!(movements_back.state_hash(), movements.state_hash());
            assert_eq!(exposure_back.state_hash(), exposure.state_hash());
            assert_eq!(corridors_back.state_hash(), corridors.state_hash());
        }
        // The answers agree too, not only the hashes.
        let any = MovementFilter::default();
        assert_eq!(
            movements_back.list(&any, 10, None).unwrap(),
            movements.list(&any, 10, None).unwrap()
        );
        assert_eq!(exposure_back.guarantee(&grn), exposure.guarantee(&grn));
        assert_eq!(
            exposure_back.as_of_position(&grn, split as u64),
            exposure.as_of_position(&grn, split as u64)
        );
        assert_eq!(exposure_back.by_corridor(), exposure.by_corridor());
        assert_eq!(
            corridors_back.corridor_stats(now),
            corridors.corridor_stats(now)
        );
        assert_eq!(corridors_back.segment_stats(), corridors.segment_stats());
    }
    // A replay below the restored position is still ignored.
    let mut movements = MovementsView::new();
    for e in &events {
        movements.apply(e);
    }
    let mut restored: MovementsView = round_trip(&movements);
    assert!(events.iter().all(|e| restored.apply(e).is_empty()));
    assert_eq!(restored.state_hash(), movements.state_hash());
    let statuses: Vec<_> = journeys
        .iter()
        .map(|j| restored.get(&j.mrn).unwrap().status)
        .collect();
    assert_eq!(
        statuses,
        [Status::Discharged, Status::Recovered, Status::Released]
    );
}
