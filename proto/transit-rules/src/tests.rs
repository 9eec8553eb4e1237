//! Given/when/then tests of every rule, positive and negative.
#![allow(clippy::unwrap_used)]

use time::Duration;
use transit_contract::events::{EventMeta, GuaranteeEvent, MovementEvent};
use transit_contract::fixtures::{self, Journey, AMOUNT_AT_STAKE_XOF, REFERENCE_AMOUNT_XOF};
use transit_contract::ids::{Currency, Money, Timestamp};
use transit_contract::messages::{
    Amendment, ArrivalNotification, BorderCrossing, Cancellation, DeclarationChanges,
    DestinationChange, EnquiryOutcome, EnquiryRequest, EnquiryResponse, InboundMessage, Incident,
    IncidentCode, MessageBody, NoReleaseForTransit, NoReleaseReason, Place, Recovery,
    ReleaseForTransit, TransitDeclaration,
};

use crate::harness::{given, given_messages, message, Given, World};
use crate::{
    decide, guarantee_needed, Context, MovementState, MovementStatus, RejectionCode, RejectionKind,
};

fn base() -> Timestamp {
    "2024-03-01T08:00:00Z".parse().unwrap()
}

fn at(minutes: i64) -> Timestamp {
    base().checked_add(Duration::minutes(minutes)).unwrap()
}

fn journey(serial: u32) -> Journey {
    fixtures::journey(base(), serial)
}

fn xof(amount: i64) -> Money {
    Money::new(amount, Currency::xof()).unwrap()
}

/// The journey's declaration with a change, under a new message id.
fn declaration_with(
    j: &Journey,
    id: &str,
    f: impl FnOnce(&mut TransitDeclaration),
) -> InboundMessage {
    let mut m = j.declaration.clone();
    m.message_id = id.parse().unwrap();
    if let MessageBody::TransitDeclaration(d) = &mut m.body {
        f(d);
    }
    m
}

fn release(j: &Journey, id: &str, minutes: i64) -> InboundMessage {
    message(
        id,
        fixtures::LOME_PORT,
        at(minutes),
        MessageBody::ReleaseForTransit(ReleaseForTransit {
            mrn: j.mrn.clone(),
            released_at: at(minutes),
        }),
    )
}

fn crossing(j: &Journey, id: &str, office: &str, minutes: i64) -> InboundMessage {
    message(
        id,
        office,
        at(minutes),
        MessageBody::BorderCrossing(BorderCrossing {
            mrn: j.mrn.clone(),
            office: office.parse().unwrap(),
            crossed_at: at(minutes),
            seals_intact: true,
            seals_observed: Vec::new(),
        }),
    )
}

fn arrival(j: &Journey, id: &str, office: &str, minutes: i64) -> InboundMessage {
    message(
        id,
        office,
        at(minutes),
        MessageBody::ArrivalNotification(ArrivalNotification {
            mrn: j.mrn.clone(),
            office: office.parse().unwrap(),
            arrived_at: at(minutes),
        }),
    )
}

fn enquiry_request(j: &Journey, id: &str) -> InboundMessage {
    message(
        id,
        fixtures::LOME_PORT,
        at(10),
        MessageBody::EnquiryRequest(EnquiryRequest {
            mrn: j.mrn.clone(),
            reason: "no arrival by the time limit".to_owned(),
        }),
    )
}

fn enquiry_response(j: &Journey, id: &str, outcome: EnquiryOutcome) -> InboundMessage {
    message(
        id,
        fixtures::OUAGADOUGOU,
        at(11 * 24 * 60),
        MessageBody::EnquiryResponse(EnquiryResponse {
            mrn: j.mrn.clone(),
            outcome,
            remarks: String::new(),
        }),
    )
}

fn recovery(j: &Journey, id: &str, amount: i64) -> InboundMessage {
    message(
        id,
        fixtures::LOME_PORT,
        at(12 * 24 * 60),
        MessageBody::Recovery(Recovery {
            mrn: j.mrn.clone(),
            amount_recovered: xof(amount),
            reason: "goods not presented at destination".to_owned(),
        }),
    )
}

fn amendment(j: &Journey, id: &str, changes: DeclarationChanges) -> InboundMessage {
    message(
        id,
        fixtures::LOME_PORT,
        at(60),
        MessageBody::Amendment(Amendment {
            mrn: j.mrn.clone(),
            changes,
        }),
    )
}

fn cancellation(j: &Journey, id: &str) -> InboundMessage {
    message(
        id,
        fixtures::LOME_PORT,
        at(60),
        MessageBody::Cancellation(Cancellation {
            mrn: j.mrn.clone(),
            reason: "declared in error".to_owned(),
        }),
    )
}

fn declared(j: &Journey) -> World {
    given_messages([&j.guarantee_registration, &j.declaration])
}

fn released(j: &Journey) -> World {
    given_messages([&j.guarantee_registration, &j.declaration, &j.release])
}

fn arrived(j: &Journey) -> World {
    let mut w = released(j);
    for c in &j.crossings {
        w.when(c).then_in_sequence();
    }
    w.when(&j.arrival).then_in_sequence();
    w
}

/// Released, past the time limit, under enquiry.
fn under_enquiry(j: &Journey) -> World {
    let mut w = released(j).at(at(9 * 24 * 60));
    w.when(&enquiry_request(j, "ENQ-1"))
        .then_event_types(&["EnquiryOpened"], &[]);
    w
}

// ---------------------------------------------------------------------------------------------
// The whole journey.

#[test]
fn whole_journey_from_guarantee_to_discharge() {
    let j = journey(1);
    let mut w = World::default();
    w.when(&j.guarantee_registration)
        .then_event_types(&[], &["GuaranteeRegistered"]);
    w.when(&j.declaration)
        .then_event_types(&["TransitDeclared"], &[]);
    assert_eq!(w.movement(&j.mrn).status(), MovementStatus::Declared);

    let meta = w.when(&j.release).then_events(
        &[
            MovementEvent::TransitReleased {
                released_at: at(120),
                amount_reserved: xof(AMOUNT_AT_STAKE_XOF),
                guarantee: j.grn.clone(),
            },
            MovementEvent::AnticipatedRecordsDispatched {
                offices_of_transit: vec![
                    fixtures::CINKASSE_TG.parse().unwrap(),
                    fixtures::CINKASSE_BF.parse().unwrap(),
                ],
                office_of_destination: fixtures::OUAGADOUGOU.parse().unwrap(),
            },
        ],
        &[GuaranteeEvent::GuaranteeExposureReserved {
            mrn: j.mrn.clone(),
            amount: xof(AMOUNT_AT_STAKE_XOF),
        }],
    );
    // The meta is built from the message: business time, ledger time, actor, digest.
    assert_eq!(meta.occurred_at, at(120));
    assert_eq!(meta.recorded_at, j.release.sent_at);
    assert_eq!(meta.actor.office.as_str(), fixtures::LOME_PORT);
    assert_eq!(meta.message_digest, j.release.content_digest_hex());
    assert_eq!(meta.anomaly, None);
    let g = w.guarantee(&j.grn).unwrap();
    assert_eq!(g.reserved_total(), Some(xof(AMOUNT_AT_STAKE_XOF)));
    assert_eq!(
        g.headroom(),
        Some(xof(REFERENCE_AMOUNT_XOF - AMOUNT_AT_STAKE_XOF))
    );

    for c in &j.crossings {
        let meta = w.when(c).then_in_sequence();
        assert_eq!(meta.actor.country, meta.actor.office.country());
        // A redelivered crossing is a duplicate: nothing more is appended.
        w.when(c).then_duplicate();
    }
    let crossings = w.movement(&j.mrn).crossings().to_vec();
    assert_eq!(crossings.len(), 2);
    assert!(crossings.iter().all(|c| c.declared_office));

    let meta = w.when(&j.arrival).then_in_sequence().clone();
    assert_eq!(meta.occurred_at, at(36 * 60));
    assert_eq!(w.movement(&j.mrn).status(), MovementStatus::Arrived);
    assert!(w.movement(&j.mrn).arrivals()[0].declared_destination);

    w.when(&j.control_results).then_in_sequence();
    assert_eq!(w.movement(&j.mrn).status(), MovementStatus::Controlled);

    w.when(&j.discharge).then_events(
        &[MovementEvent::TransitDischarged {
            amount_released: xof(AMOUNT_AT_STAKE_XOF),
        }],
        &[GuaranteeEvent::GuaranteeExposureReleased {
            mrn: j.mrn.clone(),
            amount: xof(AMOUNT_AT_STAKE_XOF),
        }],
    );
    assert_eq!(w.movement(&j.mrn).status(), MovementStatus::Discharged);
    let g = w.guarantee(&j.grn).unwrap();
    assert_eq!(g.reserved_total(), Some(xof(0)));
    assert_eq!(g.reservation(&j.mrn), None);
    assert_eq!(g.headroom(), Some(xof(REFERENCE_AMOUNT_XOF)));
    // 1 declared + 2 release + 2 crossings + arrival + control + discharge.
    assert_eq!(w.movement(&j.mrn).version_hint(), 8);
}

#[test]
fn replay_through_the_codec_gives_the_same_state() {
    let j = journey(2);
    let mut w = World::default();
    for m in j.messages() {
        w.when(&m).then_appended();
    }
    let events = w.movement_events(&j.mrn);
    let decoded: Vec<(EventMeta, MovementEvent)> = events
        .iter()
        .map(|(meta, e)| {
            let bytes = e.encode(meta);
            MovementEvent::decode(e.event_type(), e.schema_version(), &bytes).unwrap()
        })
        .collect();
    assert_eq!(decoded.as_slice(), events);
    let replayed = MovementState::from_events(decoded.iter().map(|(m, e)| (m, e)));
    assert_eq!(replayed, w.movement(&j.mrn));
    for (meta, e) in w.guarantee_events(&j.grn) {
        let bytes = e.encode(meta);
        let (m2, e2) = GuaranteeEvent::decode(e.event_type(), 1, &bytes).unwrap();
        assert_eq!((&m2, &e2), (meta, e));
    }
}

// ---------------------------------------------------------------------------------------------
// Validation and duplicates.

#[test]
fn invalid_message_is_rejected_before_anything_else() {
    let j = journey(3);
    let mut m = j.release.clone();
    m.sender.country = "BF".parse().unwrap();
    let r = released(&j)
        .when(&m)
        .then_rejected(RejectionCode::Validation)
        .clone();
    assert_eq!(r.kind(), RejectionKind::Invalid);
    assert!(r.message.contains("TG000101"), "{}", r.message);
}

#[test]
fn duplicate_message_appends_nothing() {
    let j = journey(4);
    let mut w = released(&j);
    w.when(&j.release).then_duplicate();
    w.when(&j.declaration).then_duplicate();
    w.when(&j.guarantee_registration).then_duplicate();
    assert_eq!(w.movement(&j.mrn).version_hint(), 3);
    assert_eq!(w.guarantee(&j.grn).unwrap().version_hint(), 2);
    // A redelivered observation is a duplicate too, however late it comes.
    w.when(&j.crossings[0]).then_in_sequence();
    w.when(&j.crossings[0]).then_duplicate();
}

#[test]
fn same_message_id_with_other_content_is_a_conflict() {
    let j = journey(5);
    let mut w = released(&j);
    let mut reused = j.release.clone();
    reused.sent_at = at(500);
    let r = w
        .when(&reused)
        .then_rejected(RejectionCode::MessageIdConflict);
    assert_eq!(r.kind(), RejectionKind::Conflict);
    // An id recorded in the guarantee stream is protected too (registration id reused).
    let mut reg = j.guarantee_registration.clone();
    if let MessageBody::GuaranteeRegistration(g) = &mut reg.body {
        g.principal.name = "Someone Else".to_owned();
    }
    w.when(&reg).then_rejected(RejectionCode::MessageIdConflict);
    // An observation reusing the id of the declaration.
    let mut arr = j.arrival.clone();
    arr.message_id = j.declaration.message_id.clone();
    w.when(&arr).then_rejected(RejectionCode::MessageIdConflict);
}

#[test]
fn a_rejected_message_can_be_sent_again_and_is_decided_again() {
    let j = journey(6);
    let mut w = declared(&j);
    w.when(&j.discharge)
        .then_rejected(RejectionCode::InvalidState);
    w.when(&j.discharge)
        .then_rejected(RejectionCode::InvalidState);
}

// ---------------------------------------------------------------------------------------------
// Guarantee registration and declaration.

#[test]
fn guarantee_is_registered_once() {
    let j = journey(7);
    let mut w = given_messages([&j.guarantee_registration]);
    let g = w.guarantee(&j.grn).unwrap();
    assert!(g.is_registered());
    assert_eq!(g.reference_amount(), Some(&xof(REFERENCE_AMOUNT_XOF)));
    let mut again = j.guarantee_registration.clone();
    again.message_id = "GRN-AGAIN".parse().unwrap();
    let r = w
        .when(&again)
        .then_rejected(RejectionCode::AlreadyRegistered);
    assert_eq!(r.kind(), RejectionKind::Conflict);
}

#[test]
fn declaration_needs_a_registered_guarantee() {
    let j = journey(8);
    let r = World::default()
        .when(&j.declaration)
        .then_rejected(RejectionCode::GuaranteeUnknown);
    assert_eq!(r.kind(), RejectionKind::Unprocessable);
    assert!(r.message.contains(j.grn.as_str()));
    // Another journey's guarantee is not this one's.
    let other = journey(9);
    let mut w = given_messages([&other.guarantee_registration]);
    w.when(&j.declaration)
        .then_rejected(RejectionCode::GuaranteeUnknown);
}

#[test]
fn declaration_in_another_currency_than_the_guarantee_is_refused() {
    let j = journey(10);
    let eur: Currency = "EUR".parse().unwrap();
    let m = declaration_with(&j, "DEC-EUR", |d| {
        d.customs_value = Money::new(1_000_000, eur.clone()).unwrap();
        d.amount_at_stake = Money::new(100_000, eur.clone()).unwrap();
    });
    given_messages([&j.guarantee_registration])
        .when(&m)
        .then_rejected(RejectionCode::CurrencyMismatch);
}

#[test]
fn declaration_is_accepted_once() {
    let j = journey(11);
    let mut w = declared(&j);
    let again = declaration_with(&j, "DEC-AGAIN", |_| {});
    w.when(&again).then_rejected(RejectionCode::AlreadyDeclared);
    w.when(&j.release).then_appended();
    w.when(&again).then_rejected(RejectionCode::AlreadyDeclared);
}

// ---------------------------------------------------------------------------------------------
// Release and exposure.

#[test]
fn release_from_anything_but_declared_is_refused() {
    let j = journey(12);
    World::default()
        .when(&j.release)
        .then_rejected(RejectionCode::UnknownMovement);
    let mut w = released(&j);
    let r = w
        .when(&release(&j, "REL-2", 200))
        .then_rejected(RejectionCode::InvalidState);
    assert!(r.message.contains("Released"), "{}", r.message);

    let mut w = declared(&j);
    w.when(&cancellation(&j, "CAN-1"))
        .then_event_types(&["DeclarationCancelled"], &[]);
    assert_eq!(w.movement(&j.mrn).status(), MovementStatus::Cancelled);
    w.when(&j.release)
        .then_rejected(RejectionCode::InvalidState);
}

#[test]
fn guarantee_limit_is_inclusive_to_the_last_xof() {
    let j = journey(13);
    // One XOF more than the reference amount: refused, and nothing recorded anywhere.
    let over = declaration_with(&j, "DEC-OVER", |d| {
        d.amount_at_stake = xof(REFERENCE_AMOUNT_XOF + 1);
    });
    let mut w = given_messages([&j.guarantee_registration, &over]);
    let r = w
        .when(&j.release)
        .then_rejected(RejectionCode::GuaranteeExceeded);
    assert_eq!(r.kind(), RejectionKind::Unprocessable);
    assert!(r.message.contains("50000001 XOF"), "{}", r.message);
    assert!(
        r.message.contains("headroom is 50000000 XOF"),
        "{}",
        r.message
    );
    assert_eq!(w.movement(&j.mrn).status(), MovementStatus::Declared);
    assert_eq!(w.guarantee(&j.grn).unwrap().reserved_total(), Some(xof(0)));

    // Amended to exactly the reference amount: allowed, headroom falls to zero.
    w.when(&amendment(
        &j,
        "AMD-1",
        DeclarationChanges {
            amount_at_stake: Some(xof(REFERENCE_AMOUNT_XOF)),
            ..DeclarationChanges::default()
        },
    ))
    .then_event_types(&["DeclarationAmended"], &[]);
    w.when(&release(&j, "REL-EXACT", 200)).then_event_types(
        &["TransitReleased", "AnticipatedRecordsDispatched"],
        &["GuaranteeExposureReserved"],
    );
    assert_eq!(w.guarantee(&j.grn).unwrap().headroom(), Some(xof(0)));

    // Any further movement on this guarantee, even for one XOF, is refused.
    let k = journey(14);
    let one = declaration_with(&k, "DEC-ONE", |d| {
        d.guarantee = j.grn.clone();
        d.amount_at_stake = xof(1);
    });
    w.when(&one).then_appended();
    w.when(&k.release)
        .then_rejected(RejectionCode::GuaranteeExceeded);
}

#[test]
fn two_movements_share_one_guarantee() {
    let a = journey(15);
    let b = journey(16);
    let b_declaration = declaration_with(&b, "B-DEC", |d| d.guarantee = a.grn.clone());
    let mut w = given_messages([&a.guarantee_registration, &a.declaration, &b_declaration]);
    assert_eq!(
        guarantee_needed(&b.release, &w.movement(&b.mrn)),
        Some(a.grn.clone())
    );
    w.when(&a.release).then_appended();
    w.when(&b.release).then_appended();
    let g = w.guarantee(&a.grn).unwrap();
    assert_eq!(g.reserved_total(), Some(xof(2 * AMOUNT_AT_STAKE_XOF)));
    assert_eq!(g.reservation(&a.mrn), Some(xof(AMOUNT_AT_STAKE_XOF)));
    assert_eq!(g.reservation(&b.mrn), Some(xof(AMOUNT_AT_STAKE_XOF)));
    assert_eq!(g.reserved_movements().count(), 2);

    // Discharging one frees only its own exposure.
    for m in [&a.arrival, &a.discharge] {
        w.when(m).then_appended();
    }
    let g = w.guarantee(&a.grn).unwrap();
    assert_eq!(g.reserved_total(), Some(xof(AMOUNT_AT_STAKE_XOF)));
    assert_eq!(g.reservation(&a.mrn), None);
    assert_eq!(g.reservation(&b.mrn), Some(xof(AMOUNT_AT_STAKE_XOF)));
    // b's own (never registered) guarantee stream was not touched.
    assert!(w.guarantee(&b.grn).is_none());
}

#[test]
fn four_movements_fill_the_guarantee_and_a_fifth_is_refused() {
    let first = journey(20);
    let mut w = given_messages([&first.guarantee_registration]);
    for serial in 20..25 {
        let j = journey(serial);
        let d = declaration_with(&j, &format!("DEC-{serial}"), |d| {
            d.guarantee = first.grn.clone()
        });
        w.when(&d).then_appended();
        let t = w.when(&j.release);
        if serial < 24 {
            t.then_appended();
        } else {
            t.then_rejected(RejectionCode::GuaranteeExceeded);
        }
    }
    assert_eq!(
        w.guarantee(&first.grn).unwrap().reserved_total(),
        Some(xof(REFERENCE_AMOUNT_XOF))
    );
}

#[test]
fn release_after_the_guarantee_expired_is_refused() {
    let j = journey(26);
    let mut reg = j.guarantee_registration.clone();
    if let MessageBody::GuaranteeRegistration(g) = &mut reg.body {
        g.valid_until = Some(at(60));
    }
    given_messages([&reg, &j.declaration])
        .when(&j.release)
        .then_rejected(RejectionCode::GuaranteeExpired);
}

#[test]
fn no_release_and_then_nothing_more() {
    let j = journey(27);
    let mut w = declared(&j);
    let refusal = message(
        "NOREL-1",
        fixtures::LOME_PORT,
        at(100),
        MessageBody::NoReleaseForTransit(NoReleaseForTransit {
            mrn: j.mrn.clone(),
            reason: NoReleaseReason::ControlNotSatisfactory,
            remarks: "seals missing".to_owned(),
        }),
    );
    w.when(&refusal).then_events(
        &[MovementEvent::ReleaseRefused {
            reason: NoReleaseReason::ControlNotSatisfactory,
            remarks: "seals missing".to_owned(),
        }],
        &[],
    );
    assert_eq!(w.movement(&j.mrn).status(), MovementStatus::NotReleased);
    w.when(&j.release)
        .then_rejected(RejectionCode::InvalidState);
    w.when(&cancellation(&j, "CAN-2"))
        .then_rejected(RejectionCode::InvalidState);
    let mut again = refusal.clone();
    again.message_id = "NOREL-2".parse().unwrap();
    w.when(&again).then_rejected(RejectionCode::InvalidState);
    World::default()
        .when(&refusal)
        .then_rejected(RejectionCode::UnknownMovement);
}

// ---------------------------------------------------------------------------------------------
// Amendment, cancellation, destination change.

#[test]
fn amendment_before_release_changes_what_release_dispatches() {
    let j = journey(28);
    let mut w = declared(&j);
    w.when(&amendment(
        &j,
        "AMD-1",
        DeclarationChanges {
            offices_of_transit: Some(Vec::new()),
            office_of_destination: Some("BFBOB001".parse().unwrap()),
            ..DeclarationChanges::default()
        },
    ))
    .then_event_types(&["DeclarationAmended"], &[]);
    let (events, _, _) = w.when(&j.release).then_appended();
    assert_eq!(
        events[1],
        MovementEvent::AnticipatedRecordsDispatched {
            offices_of_transit: Vec::new(),
            office_of_destination: "BFBOB001".parse().unwrap(),
        }
    );
}

#[test]
fn amendment_after_release_is_refused() {
    let j = journey(29);
    let changes = DeclarationChanges {
        time_limit: Some(at(20 * 24 * 60)),
        ..DeclarationChanges::default()
    };
    released(&j)
        .when(&amendment(&j, "AMD-LATE", changes.clone()))
        .then_rejected(RejectionCode::InvalidState);
    World::default()
        .when(&amendment(&j, "AMD-NONE", changes))
        .then_rejected(RejectionCode::UnknownMovement);
    // An amendment that changes nothing is malformed.
    declared(&j)
        .when(&amendment(&j, "AMD-EMPTY", DeclarationChanges::default()))
        .then_rejected(RejectionCode::Validation);
    // It may not switch currency behind the guarantee's back.
    declared(&j)
        .when(&amendment(
            &j,
            "AMD-EUR",
            DeclarationChanges {
                amount_at_stake: Some(Money::new(1, "EUR".parse().unwrap()).unwrap()),
                ..DeclarationChanges::default()
            },
        ))
        .then_rejected(RejectionCode::CurrencyMismatch);
}

#[test]
fn cancellation_only_before_release() {
    let j = journey(30);
    released(&j)
        .when(&cancellation(&j, "CAN-LATE"))
        .then_rejected(RejectionCode::InvalidState);
    World::default()
        .when(&cancellation(&j, "CAN-NONE"))
        .then_rejected(RejectionCode::UnknownMovement);
}

fn destination_change(j: &Journey, id: &str, to: &str) -> InboundMessage {
    message(
        id,
        fixtures::LOME_PORT,
        at(600),
        MessageBody::DestinationChange(DestinationChange {
            mrn: j.mrn.clone(),
            new_office_of_destination: to.parse().unwrap(),
            reason: "consignee moved".to_owned(),
        }),
    )
}

#[test]
fn destination_change_only_after_release_and_arrival_compares_with_the_new_one() {
    let j = journey(31);
    declared(&j)
        .when(&destination_change(&j, "DST-EARLY", "BFBOB001"))
        .then_rejected(RejectionCode::InvalidState);

    let mut w = released(&j);
    w.when(&destination_change(&j, "DST-SAME", fixtures::OUAGADOUGOU))
        .then_rejected(RejectionCode::InvalidState);
    w.when(&destination_change(&j, "DST-1", "BFBOB001"))
        .then_events(
            &[MovementEvent::DestinationChanged {
                from: fixtures::OUAGADOUGOU.parse().unwrap(),
                to: "BFBOB001".parse().unwrap(),
                reason: "consignee moved".to_owned(),
            }],
            &[],
        );
    let (events, _, _) = w.when(&j.arrival).then_appended();
    assert_eq!(
        events[0],
        MovementEvent::ArrivalRecorded {
            office: fixtures::OUAGADOUGOU.parse().unwrap(),
            arrived_at: at(36 * 60),
            declared_destination: false,
        }
    );
    w.when(&destination_change(&j, "DST-2", "BFOUA001"))
        .then_rejected(RejectionCode::InvalidState);

    let k = journey(32);
    let mut w = released(&k);
    w.when(&destination_change(&k, "DST-1", "BFBOB001"))
        .then_appended();
    let (events, _, _) = w
        .when(&arrival(&k, "ARR-BOB", "BFBOB001", 30 * 60))
        .then_appended();
    assert!(matches!(
        events[0],
        MovementEvent::ArrivalRecorded {
            declared_destination: true,
            ..
        }
    ));
}

// ---------------------------------------------------------------------------------------------
// Observations: recorded in any state, flagged when out of sequence.

#[test]
fn crossing_before_the_declaration_is_recorded_and_the_declaration_still_accepted() {
    let j = journey(33);
    let mut w = given_messages([&j.guarantee_registration]);
    let meta = w
        .when(&j.crossings[0])
        .then_anomaly("while movement was Unknown");
    assert!(meta
        .anomaly
        .unwrap()
        .contains("no declaration recorded yet"));
    let (events, _, _) = w.when(&j.crossings[1]).then_appended();
    assert!(matches!(
        events[0],
        MovementEvent::BorderCrossed {
            declared_office: false,
            ..
        }
    ));
    assert_eq!(w.movement(&j.mrn).status(), MovementStatus::Unknown);
    w.when(&j.declaration).then_in_sequence();
    w.when(&j.release).then_in_sequence();
    assert_eq!(w.movement(&j.mrn).crossings().len(), 2);
    assert_eq!(w.movement(&j.mrn).status(), MovementStatus::Released);
}

#[test]
fn crossing_before_release_is_flagged() {
    let j = journey(34);
    let mut w = declared(&j);
    let (events, _, _) = w.when(&j.crossings[0]).then_appended();
    assert!(matches!(
        events[0],
        MovementEvent::BorderCrossed {
            declared_office: true,
            ..
        }
    ));
    w.when(&j.crossings[1])
        .then_anomaly("while movement was Declared (out of sequence: expected Released)");
}

#[test]
fn crossing_at_an_undeclared_office_is_a_possible_diversion() {
    let j = journey(35);
    let mut w = released(&j);
    let meta = w
        .when(&crossing(&j, "XNE-1", "NEMKL001", 20 * 60))
        .then_in_sequence();
    assert_eq!(meta.actor.country.as_str(), "NE");
    let c = w.movement(&j.mrn).crossings()[0].clone();
    assert!(!c.declared_office);
}

#[test]
fn arrival_before_crossing_is_recorded_then_the_late_crossing_is_flagged() {
    let j = journey(36);
    let mut w = released(&j);
    w.when(&j.arrival).then_in_sequence();
    assert_eq!(w.movement(&j.mrn).status(), MovementStatus::Arrived);
    w.when(&j.crossings[0])
        .then_anomaly("while movement was Arrived");
    assert_eq!(w.movement(&j.mrn).status(), MovementStatus::Arrived);
    assert_eq!(w.movement(&j.mrn).crossings().len(), 1);
}

#[test]
fn arrival_while_unknown_and_before_release_is_flagged_and_counts_later() {
    let j = journey(37);
    let mut w = given_messages([&j.guarantee_registration]);
    w.when(&j.arrival).then_anomaly("Unknown");
    let (events, _, _) = w
        .when(&arrival(&j, "ARR-2", fixtures::OUAGADOUGOU, 100))
        .then_appended();
    assert!(matches!(
        events[0],
        MovementEvent::ArrivalRecorded {
            declared_destination: false,
            ..
        }
    ));
    w.when(&j.declaration).then_appended();
    w.when(&arrival(&j, "ARR-3", fixtures::OUAGADOUGOU, 110))
        .then_anomaly("Declared");
    w.when(&j.release).then_appended();
    // The arrivals reported early establish arrival once released.
    assert_eq!(w.movement(&j.mrn).status(), MovementStatus::Arrived);
    w.when(&j.discharge).then_appended();
}

#[test]
fn control_results_before_arrival_are_flagged() {
    let j = journey(38);
    let mut w = released(&j);
    w.when(&j.control_results)
        .then_anomaly("ControlResults reported while movement was Released");
    assert_eq!(w.movement(&j.mrn).status(), MovementStatus::Released);
    w.when(&j.arrival).then_in_sequence();
    assert_eq!(w.movement(&j.mrn).status(), MovementStatus::Controlled);
}

#[test]
fn observations_after_discharge_are_kept() {
    let j = journey(39);
    let mut w = World::default();
    for m in j.messages() {
        w.when(&m).then_appended();
    }
    let late = arrival(&j, "ARR-LATE", fixtures::OUAGADOUGOU, 50 * 60);
    w.when(&late).then_anomaly("Discharged");
    w.when(&crossing(&j, "X-LATE", fixtures::CINKASSE_BF, 51 * 60))
        .then_anomaly("Discharged");
    assert_eq!(w.movement(&j.mrn).status(), MovementStatus::Discharged);
}

#[test]
fn incidents_are_recorded_and_a_transhipment_changes_the_vehicle() {
    let j = journey(40);
    let mut w = released(&j);
    let new_transport = transit_contract::messages::MeansOfTransport {
        mode: transit_contract::messages::TransportMode::Road,
        identity: "TG 9999 AB".parse().unwrap(),
        nationality: "TG".parse().unwrap(),
    };
    let incident = message(
        "INC-1",
        fixtures::CINKASSE_TG,
        at(1000),
        MessageBody::Incident(Incident {
            mrn: j.mrn.clone(),
            code: IncidentCode::Transhipment,
            place: Place {
                locode: None,
                latitude_e7: Some(110_000_000),
                longitude_e7: Some(1_000_000),
            },
            occurred_at: at(990),
            endorsed_by: None,
            new_seals: vec!["NEW-1".parse().unwrap()],
            new_transport: Some(new_transport.clone()),
            description: "breakdown, goods moved to another truck".to_owned(),
        }),
    );
    let meta = w.when(&incident).then_in_sequence().clone();
    assert_eq!(meta.occurred_at, at(990));
    assert_eq!(
        w.movement(&j.mrn).declaration().unwrap().transport,
        new_transport
    );
    let mut early = incident.clone();
    early.message_id = "INC-EARLY".parse().unwrap();
    declared(&j).when(&early).then_anomaly("Declared");
}

// ---------------------------------------------------------------------------------------------
// Discharge.

#[test]
fn discharge_without_arrival_is_refused() {
    let j = journey(41);
    let r = released(&j)
        .when(&j.discharge)
        .then_rejected(RejectionCode::ArrivalRequired);
    assert_eq!(r.kind(), RejectionKind::Conflict);
    // Crossings are not an arrival.
    let mut w = released(&j);
    for c in &j.crossings {
        w.when(c).then_appended();
    }
    w.when(&j.discharge)
        .then_rejected(RejectionCode::ArrivalRequired);
    declared(&j)
        .when(&j.discharge)
        .then_rejected(RejectionCode::InvalidState);
    given_messages([&j.guarantee_registration])
        .when(&j.discharge)
        .then_rejected(RejectionCode::UnknownMovement);
}

#[test]
fn discharge_from_arrived_without_control_results_and_only_once() {
    let j = journey(42);
    let mut w = arrived(&j);
    w.when(&j.discharge)
        .then_event_types(&["TransitDischarged"], &["GuaranteeExposureReleased"]);
    let mut again = j.discharge.clone();
    again.message_id = "DIS-AGAIN".parse().unwrap();
    w.when(&again).then_rejected(RejectionCode::InvalidState);
}

#[test]
fn discharge_needs_the_guarantee_stream() {
    let j = journey(43);
    let w = arrived(&j);
    let movement = w.movement(&j.mrn);
    let ctx = Context {
        recorded_at: at(3000),
    };
    let r = decide(&j.discharge, &movement, None, &ctx).unwrap_err();
    assert_eq!(r.code, RejectionCode::GuaranteeUnknown);
}

// ---------------------------------------------------------------------------------------------
// Enquiry and recovery.

#[test]
fn enquiry_only_after_the_time_limit() {
    let j = journey(44);
    let time_limit = at(8 * 24 * 60);
    let mut w = released(&j).at(time_limit);
    let r = w
        .when(&enquiry_request(&j, "ENQ-EARLY"))
        .then_rejected(RejectionCode::InvalidState);
    assert!(r.message.contains("2024-03-09T08:00:00Z"), "{}", r.message);
    let mut w = w.at(at(8 * 24 * 60 + 1));
    w.when(&enquiry_request(&j, "ENQ-1"))
        .then_event_types(&["EnquiryOpened"], &[]);
    assert_eq!(w.movement(&j.mrn).status(), MovementStatus::UnderEnquiry);
    w.when(&enquiry_request(&j, "ENQ-2"))
        .then_rejected(RejectionCode::InvalidState);
    declared(&j)
        .at(at(9 * 24 * 60))
        .when(&enquiry_request(&j, "ENQ-3"))
        .then_rejected(RejectionCode::InvalidState);
    World::default()
        .when(&enquiry_request(&j, "ENQ-4"))
        .then_rejected(RejectionCode::UnknownMovement);
}

#[test]
fn enquiry_for_missing_control_results_after_arrival() {
    let j = journey(45);
    // Arrived: no time limit applies, control results are what is chased.
    let mut w = arrived(&j);
    w.when(&enquiry_request(&j, "ENQ-CTL")).then_appended();
    assert_eq!(w.movement(&j.mrn).status(), MovementStatus::UnderEnquiry);
    // Controlled: nothing to chase.
    let mut w = arrived(&j);
    w.when(&j.control_results).then_appended();
    w.when(&enquiry_request(&j, "ENQ-CTL"))
        .then_rejected(RejectionCode::InvalidState);
}

#[test]
fn enquiry_answered_goods_arrived_allows_discharge() {
    let j = journey(46);
    let mut w = under_enquiry(&j);
    w.when(&j.discharge)
        .then_rejected(RejectionCode::ArrivalRequired);
    w.when(&enquiry_response(
        &j,
        "ENQR-1",
        EnquiryOutcome::GoodsArrived {
            arrived_at: at(5 * 24 * 60),
            office: fixtures::OUAGADOUGOU.parse().unwrap(),
        },
    ))
    .then_event_types(&["EnquiryAnswered"], &[]);
    assert_eq!(w.movement(&j.mrn).status(), MovementStatus::Arrived);
    assert!(w.movement(&j.mrn).has_arrival());
    w.when(&j.discharge)
        .then_event_types(&["TransitDischarged"], &["GuaranteeExposureReleased"]);
}

#[test]
fn enquiry_response_only_under_enquiry() {
    let j = journey(47);
    released(&j)
        .when(&enquiry_response(&j, "ENQR-1", EnquiryOutcome::Unknown))
        .then_rejected(RejectionCode::InvalidState);
}

#[test]
fn recovery_consumes_exposure() {
    let j = journey(48);
    let mut w = under_enquiry(&j);
    w.when(&enquiry_response(
        &j,
        "ENQR-1",
        EnquiryOutcome::GoodsNotArrived,
    ))
    .then_appended();
    assert_eq!(w.movement(&j.mrn).status(), MovementStatus::UnderEnquiry);
    w.when(&recovery(&j, "REC-TOO-MUCH", AMOUNT_AT_STAKE_XOF + 1))
        .then_rejected(RejectionCode::RecoveryExceedsReserved);
    w.when(&recovery(&j, "REC-1", 10_000_000)).then_events(
        &[MovementEvent::DutiesRecovered {
            amount_recovered: xof(10_000_000),
            reason: "goods not presented at destination".to_owned(),
        }],
        &[GuaranteeEvent::GuaranteeConsumedByRecovery {
            mrn: j.mrn.clone(),
            amount_consumed: xof(10_000_000),
            amount_released: xof(2_500_000),
        }],
    );
    assert_eq!(w.movement(&j.mrn).status(), MovementStatus::Recovered);
    let g = w.guarantee(&j.grn).unwrap();
    assert_eq!(g.reserved_total(), Some(xof(0)));
    assert_eq!(g.consumed_total(), Some(xof(10_000_000)));
    assert_eq!(g.headroom(), Some(xof(REFERENCE_AMOUNT_XOF)));
    w.when(&recovery(&j, "REC-2", 1))
        .then_rejected(RejectionCode::InvalidState);
    w.when(&j.discharge)
        .then_rejected(RejectionCode::InvalidState);
}

#[test]
fn recovery_outside_an_enquiry_or_in_another_currency_is_refused() {
    let j = journey(49);
    released(&j)
        .when(&recovery(&j, "REC-1", 1))
        .then_rejected(RejectionCode::InvalidState);
    let mut m = recovery(&j, "REC-EUR", 1);
    if let MessageBody::Recovery(r) = &mut m.body {
        r.amount_recovered = Money::new(1, "EUR".parse().unwrap()).unwrap();
    }
    under_enquiry(&j)
        .when(&m)
        .then_rejected(RejectionCode::CurrencyMismatch);
}

// ---------------------------------------------------------------------------------------------
// Routing, codes and the pure harness itself.

#[test]
fn guarantee_needed_names_the_stream_to_load() {
    let j = journey(50);
    let none = MovementState::default();
    assert_eq!(
        guarantee_needed(&j.guarantee_registration, &none),
        Some(j.grn.clone())
    );
    assert_eq!(guarantee_needed(&j.declaration, &none), Some(j.grn.clone()));
    assert_eq!(guarantee_needed(&j.release, &none), None);
    let w = released(&j);
    let state = w.movement(&j.mrn);
    assert_eq!(state.guarantee(), Some(&j.grn));
    for m in [&j.release, &j.discharge, &recovery(&j, "R", 1)] {
        assert_eq!(guarantee_needed(m, &state), Some(j.grn.clone()));
    }
    for m in [&j.crossings[0], &j.arrival, &j.control_results] {
        assert_eq!(guarantee_needed(m, &state), None);
    }
}

#[test]
fn rejection_codes_are_stable_and_classified() {
    let mut seen = std::collections::BTreeSet::new();
    for code in RejectionCode::ALL {
        let s = code.as_str();
        assert!(s.chars().all(|c| c.is_ascii_uppercase() || c == '_'), "{s}");
        assert!(seen.insert(s), "{s} twice");
    }
    assert_eq!(
        RejectionCode::GuaranteeExceeded.as_str(),
        "GUARANTEE_EXCEEDED"
    );
    assert_eq!(
        RejectionCode::UnknownMovement.kind(),
        RejectionKind::NotFound
    );
    assert_eq!(RejectionCode::Validation.kind(), RejectionKind::Invalid);
    assert_eq!(
        RejectionCode::MessageIdConflict.kind(),
        RejectionKind::Conflict
    );
    let r = crate::Rejection {
        code: RejectionCode::GuaranteeExceeded,
        message: "x".to_owned(),
    };
    assert_eq!(r.to_string(), "GUARANTEE_EXCEEDED: x");
}

#[test]
fn given_raw_events_is_the_same_as_given_messages() {
    let j = journey(51);
    let source = released(&j);
    let mut events: Vec<Given> = Vec::new();
    for (m, e) in source.guarantee_events(&j.grn) {
        events.push(Given::Guarantee(j.grn.clone(), m.clone(), e.clone()));
    }
    for (m, e) in source.movement_events(&j.mrn) {
        events.push(Given::Movement(j.mrn.clone(), m.clone(), e.clone()));
    }
    let mut w = given(events);
    assert_eq!(w.movement(&j.mrn), source.movement(&j.mrn));
    w.when(&j.release).then_duplicate();
    w.when(&j.arrival).then_in_sequence();
}

#[test]
fn decide_is_deterministic() {
    let j = journey(52);
    let w = released(&j);
    let state = w.movement(&j.mrn);
    let ctx = Context {
        recorded_at: at(5000),
    };
    let a = decide(&j.arrival, &state, None, &ctx);
    let b = decide(&j.arrival, &state, None, &ctx);
    assert_eq!(a, b);
}

// ---------------------------------------------------------------------------------------------
// Snapshots: the states are plain data and survive a MessagePack round trip.

fn msgpack_round_trip<T: serde::Serialize + serde::de::DeserializeOwned>(value: &T) -> T {
    let bytes = rmp_serde::to_vec_named(value).unwrap();
    rmp_serde::from_slice(&bytes).unwrap()
}

/// For every split of `events`: folds the first part, restores a copy from a snapshot, folds
/// the rest into both, and checks they stay equal (behaviour survives, not only the data).
fn check_snapshots_at_every_split<S, E>(
    events: &[(EventMeta, E)],
    apply: impl Fn(&mut S, &EventMeta, &E),
) where
    S: Default + PartialEq + std::fmt::Debug + serde::Serialize + serde::de::DeserializeOwned,
{
    for split in 0..=events.len() {
        let mut original = S::default();
        for (meta, e) in &events[..split] {
            apply(&mut original, meta, e);
        }
        let mut restored: S = msgpack_round_trip(&original);
        assert_eq!(restored, original, "restored at {split}");
        for (meta, e) in &events[split..] {
            apply(&mut original, meta, e);
            apply(&mut restored, meta, e);
            assert_eq!(restored, original, "diverged after a snapshot at {split}");
        }
    }
}

#[test]
fn movement_and_guarantee_states_survive_a_snapshot_at_any_point() {
    // A whole journey; one recovered after an enquiry; one whose enquiry proves arrival.
    let full = journey(61);
    let mut w1 = World::default();
    for m in full.messages() {
        w1.when(&m).then_appended();
    }
    let recovered = journey(62);
    let mut w2 = under_enquiry(&recovered);
    w2.when(&enquiry_response(
        &recovered,
        "ANS-1",
        EnquiryOutcome::GoodsNotArrived,
    ))
    .then_appended();
    w2.when(&recovery(&recovered, "REC-1", 1_000_000))
        .then_appended();
    let proven = journey(63);
    let mut w3 = under_enquiry(&proven);
    w3.when(&enquiry_response(
        &proven,
        "ANS-1",
        EnquiryOutcome::GoodsArrived {
            arrived_at: at(10 * 24 * 60),
            office: fixtures::OUAGADOUGOU.parse().unwrap(),
        },
    ))
    .then_appended();
    w3.when(&proven.discharge).then_appended();
    assert_eq!(
        w2.movement(&recovered.mrn).status(),
        MovementStatus::Recovered
    );
    assert_eq!(
        w3.movement(&proven.mrn).status(),
        MovementStatus::Discharged
    );

    for (w, j) in [(&w1, &full), (&w2, &recovered), (&w3, &proven)] {
        check_snapshots_at_every_split(w.movement_events(&j.mrn), MovementState::apply);
        check_snapshots_at_every_split(w.guarantee_events(&j.grn), crate::GuaranteeState::apply);
    }
    let g = w2.guarantee(&recovered.grn).unwrap();
    assert_eq!(
        msgpack_round_trip(&g).consumed_total(),
        Some(xof(1_000_000))
    );
    assert_eq!(
        msgpack_round_trip(&MovementStatus::UnderEnquiry),
        MovementStatus::UnderEnquiry
    );
}

// ---------------------------------------------------------------------------------------------
// Authorization: who may record what (crate::authz).

mod authorization {
    use transit_contract::ids::{CountryCode, GuaranteeReference, Mrn};
    use transit_contract::messages::{ControlResults, GuaranteeRegistration, Sender};

    use super::*;

    const NIAMEY: &str = "NENIA001";
    const NE_BORDER: &str = "NEKAN001";
    const ABIDJAN: &str = "CIABJ001";

    /// `msg` sent by `office` (and its country) instead of its fixture sender, under a new id.
    fn from(office: &str, id: &str, msg: &InboundMessage) -> InboundMessage {
        let office: transit_contract::ids::OfficeCode = office.parse().unwrap();
        InboundMessage {
            message_id: id.parse().unwrap(),
            sender: Sender {
                country: office.country(),
                office,
            },
            ..msg.clone()
        }
    }

    /// Asserts a refusal of kind Forbidden with `code`, and that nothing was appended anywhere.
    fn refused(w: &mut World, j: &Journey, msg: &InboundMessage, code: RejectionCode) -> String {
        let before = (
            w.movement_events(&j.mrn).len(),
            w.guarantee_events(&j.grn).len(),
        );
        let r = w.when(msg).then_rejected(code);
        assert_eq!(r.kind(), RejectionKind::Forbidden);
        let after = (
            w.movement_events(&j.mrn).len(),
            w.guarantee_events(&j.grn).len(),
        );
        assert_eq!(before, after, "a refused message appends nothing");
        r.message
    }

    fn crossing_at(j: &Journey, id: &str, sender: &str, office: &str) -> InboundMessage {
        from(sender, id, &crossing(j, id, office, 20 * 60))
    }

    fn control_results(j: &Journey, id: &str, sender: &str, office: &str) -> InboundMessage {
        message(
            id,
            sender,
            at(38 * 60),
            MessageBody::ControlResults(ControlResults {
                mrn: j.mrn.clone(),
                office: office.parse().unwrap(),
                conform: true,
                seals_intact: true,
                seals_found: Vec::new(),
                gross_mass_g_found: None,
                packages_found: None,
                remarks: String::new(),
            }),
        )
    }

    fn incident(j: &Journey, id: &str, sender: &str) -> InboundMessage {
        message(
            id,
            sender,
            at(1000),
            MessageBody::Incident(Incident {
                mrn: j.mrn.clone(),
                code: IncidentCode::SealsBroken,
                place: Place {
                    locode: None,
                    latitude_e7: None,
                    longitude_e7: None,
                },
                occurred_at: at(990),
                endorsed_by: None,
                new_seals: Vec::new(),
                new_transport: None,
                description: String::new(),
            }),
        )
    }

    /// A movement declared in Burkina Faso (Ouagadougou -> Cinkassé -> Lomé), with a
    /// Burkinabè guarantee: the journey's shape, mirrored.
    fn declared_in_burkina_faso(serial: u32) -> Journey {
        let mut j = journey(serial);
        j.mrn = Mrn::from_parts(24, "BF".parse().unwrap(), &format!("OUAGA{serial:08}")).unwrap();
        j.grn = format!("24BFGAR{serial:010}")
            .parse::<GuaranteeReference>()
            .unwrap();
        j.guarantee_registration = from(fixtures::OUAGADOUGOU, "BF-GRN", &j.guarantee_registration);
        if let MessageBody::GuaranteeRegistration(g) = &mut j.guarantee_registration.body {
            g.grn = j.grn.clone();
        }
        let (mrn, grn) = (j.mrn.clone(), j.grn.clone());
        j.declaration = declaration_with(&j, "BF-DEC", |d| {
            d.mrn = mrn;
            d.guarantee = grn;
            d.office_of_departure = fixtures::OUAGADOUGOU.parse().unwrap();
            d.office_of_destination = fixtures::LOME_PORT.parse().unwrap();
            d.offices_of_transit.reverse();
        });
        j.declaration = from(fixtures::OUAGADOUGOU, "BF-DEC", &j.declaration);
        j.release = from(fixtures::OUAGADOUGOU, "BF-REL", &release(&j, "BF-REL", 120));
        j
    }

    #[test]
    fn the_whole_journey_is_sent_by_the_right_countries() {
        let j = journey(100);
        let messages = j.messages();
        let senders: Vec<&str> = messages.iter().map(|m| m.sender.country.as_str()).collect();
        assert_eq!(senders, ["TG", "TG", "TG", "TG", "BF", "BF", "BF", "TG"]);
        let mut w = World::default();
        for m in j.messages() {
            w.when(&m).then_appended();
        }
        assert_eq!(w.movement(&j.mrn).status(), MovementStatus::Discharged);
    }

    #[test]
    fn a_togolese_sender_records_a_crossing_at_a_burkinabe_office_refused_no_events() {
        let j = journey(101);
        let mut w = released(&j);
        let msg = crossing_at(
            &j,
            "X-TG-AT-BF",
            fixtures::CINKASSE_TG,
            fixtures::CINKASSE_BF,
        );
        let why = refused(&mut w, &j, &msg, RejectionCode::ForbiddenOffice);
        assert!(why.contains("BFCIN001") && why.contains("TG"), "{why}");
        // Also from Lomé, and also before anything is known of the movement: the office named
        // in the message is enough to refuse.
        let msg = crossing_at(&j, "X-LOME", fixtures::LOME_PORT, fixtures::CINKASSE_BF);
        refused(&mut w, &j, &msg, RejectionCode::ForbiddenOffice);
        let mut empty = World::default();
        refused(&mut empty, &j, &msg, RejectionCode::ForbiddenOffice);
        // Burkina Faso records its own side.
        w.when(&crossing_at(
            &j,
            "X-BF",
            fixtures::CINKASSE_BF,
            fixtures::CINKASSE_BF,
        ))
        .then_appended();
    }

    #[test]
    fn a_crossing_at_an_undeclared_office_of_the_sender_is_recorded() {
        // A diversion into Niger: Niger records what its own office saw.
        let j = journey(102);
        let mut w = released(&j);
        let (events, _, _) = w
            .when(&crossing_at(&j, "X-NE", NE_BORDER, NE_BORDER))
            .then_appended();
        assert!(matches!(
            events[0],
            MovementEvent::BorderCrossed {
                declared_office: false,
                ..
            }
        ));
    }

    #[test]
    fn togo_releases_a_movement_declared_in_burkina_faso_refused() {
        let b = declared_in_burkina_faso(103);
        let mut w = given_messages([&b.guarantee_registration, &b.declaration]);
        let tg_release = from(fixtures::LOME_PORT, "TG-REL", &b.release);
        let why = refused(&mut w, &b, &tg_release, RejectionCode::NotDepartureCountry);
        assert!(why.contains("BFOUA001"), "{why}");
        // Before the declaration is known, the MRN names the country of departure.
        let mut early = given_messages([&b.guarantee_registration]);
        let why = refused(
            &mut early,
            &b,
            &tg_release,
            RejectionCode::NotDepartureCountry,
        );
        assert!(why.contains(b.mrn.as_str()), "{why}");
        // Burkina Faso releases it.
        w.when(&b.release).then_event_types(
            &["TransitReleased", "AnticipatedRecordsDispatched"],
            &["GuaranteeExposureReserved"],
        );
    }

    #[test]
    fn only_the_country_of_departure_declares() {
        let j = journey(104);
        let mut w = given_messages([&j.guarantee_registration]);
        let bf = from(fixtures::OUAGADOUGOU, "BF-DEC", &j.declaration);
        refused(&mut w, &j, &bf, RejectionCode::NotDepartureCountry);
        w.when(&j.declaration).then_appended();
    }

    #[test]
    fn a_guarantee_is_registered_by_its_own_country() {
        let j = journey(105);
        let mut w = World::default();
        let bf = from(fixtures::OUAGADOUGOU, "BF-GRN", &j.guarantee_registration);
        let why = refused(&mut w, &j, &bf, RejectionCode::ForbiddenOffice);
        assert!(why.contains(j.grn.as_str()), "{why}");
        // Another country's guarantee office is fine if the GRN is its own.
        let mut own = bf.clone();
        if let MessageBody::GuaranteeRegistration(GuaranteeRegistration { grn, .. }) = &mut own.body
        {
            *grn = "24BFGAR0000000105".parse().unwrap();
        }
        w.when(&own).then_appended();
        w.when(&j.guarantee_registration).then_appended();
    }

    #[test]
    fn departure_acts_belong_to_the_country_of_departure() {
        let j = journey(106);
        let bf = fixtures::OUAGADOUGOU;
        // Each act, in a state where the Togolese original would be accepted.
        let no_release = message(
            "NRL",
            fixtures::LOME_PORT,
            at(100),
            MessageBody::NoReleaseForTransit(NoReleaseForTransit {
                mrn: j.mrn.clone(),
                reason: NoReleaseReason::ControlNotSatisfactory,
                remarks: String::new(),
            }),
        );
        let changes = DeclarationChanges {
            time_limit: Some(at(9 * 24 * 60)),
            ..DeclarationChanges::default()
        };
        for original in [
            no_release,
            cancellation(&j, "CAN"),
            amendment(&j, "AMD", changes),
            j.release.clone(),
        ] {
            let mut w = declared(&j);
            refused(
                &mut w,
                &j,
                &from(bf, "BF", &original),
                RejectionCode::NotDepartureCountry,
            );
            w.when(&original).then_appended();
        }
        let mut w = released(&j);
        let change = destination_change(&j, "DST", "BFBOB001");
        refused(
            &mut w,
            &j,
            &from(bf, "BF", &change),
            RejectionCode::NotDepartureCountry,
        );
        w.when(&change).then_appended();

        let mut w = arrived(&j);
        refused(
            &mut w,
            &j,
            &from(bf, "BF", &j.discharge),
            RejectionCode::NotDepartureCountry,
        );
        w.when(&j.discharge).then_appended();

        let mut w = released(&j).at(at(9 * 24 * 60));
        let enquiry = enquiry_request(&j, "ENQ");
        refused(
            &mut w,
            &j,
            &from(bf, "BF", &enquiry),
            RejectionCode::NotDepartureCountry,
        );
        w.when(&enquiry).then_appended();

        let mut w = under_enquiry(&j);
        let recover = recovery(&j, "REC", 1_000);
        refused(
            &mut w,
            &j,
            &from(bf, "BF", &recover),
            RejectionCode::NotDepartureCountry,
        );
        w.when(&recover).then_appended();
    }

    #[test]
    fn arrival_is_recorded_by_the_country_of_destination_at_its_own_office() {
        let j = journey(107);
        let mut w = released(&j);
        // Togo claiming the arrival at Ouagadougou: not its office.
        let tg_at_bf = from(fixtures::LOME_PORT, "ARR-TG", &j.arrival);
        refused(&mut w, &j, &tg_at_bf, RejectionCode::ForbiddenOffice);
        // Togo recording an arrival at its own office: Togo is not the destination.
        let tg_at_tg = arrival(&j, "ARR-TG2", fixtures::CINKASSE_TG, 30 * 60);
        let why = refused(&mut w, &j, &tg_at_tg, RejectionCode::NotDestinationCountry);
        assert!(why.contains("BFOUA001"), "{why}");
        // Niger, without a change of destination, cannot either.
        let ne = arrival(&j, "ARR-NE", NIAMEY, 30 * 60);
        refused(&mut w, &j, &ne, RejectionCode::NotDestinationCountry);
        // Burkina Faso at another of its offices: recorded (not the declared destination).
        let (events, _, _) = w
            .when(&arrival(&j, "ARR-BOB", "BFBOB001", 30 * 60))
            .then_appended();
        assert!(matches!(
            events[0],
            MovementEvent::ArrivalRecorded {
                declared_destination: false,
                ..
            }
        ));
        w.when(&j.arrival).then_appended();
    }

    #[test]
    fn after_a_change_of_destination_the_new_country_records_the_arrival() {
        let j = journey(108);
        let mut w = released(&j);
        w.when(&destination_change(&j, "DST", NIAMEY))
            .then_appended();
        refused(&mut w, &j, &j.arrival, RejectionCode::NotDestinationCountry);
        w.when(&arrival(&j, "ARR-NE", NIAMEY, 40 * 60))
            .then_in_sequence();
        w.when(&control_results(&j, "CTL-NE", NIAMEY, NIAMEY))
            .then_in_sequence();
    }

    #[test]
    fn before_the_declaration_only_the_office_rule_applies_to_an_arrival() {
        let j = journey(109);
        let mut w = World::default();
        refused(
            &mut w,
            &j,
            &from(fixtures::LOME_PORT, "ARR-TG", &j.arrival),
            RejectionCode::ForbiddenOffice,
        );
        // The destination is not known yet: Niger's arrival at its own office is recorded,
        // flagged out of sequence, and the declaration is still accepted afterwards.
        w.when(&arrival(&j, "ARR-NE", NIAMEY, 30 * 60))
            .then_anomaly("no declaration recorded yet");
        w.when(&j.guarantee_registration).then_appended();
        w.when(&j.declaration).then_appended();
    }

    #[test]
    fn control_results_by_the_country_of_destination_at_its_own_office() {
        let j = journey(110);
        let mut w = arrived(&j);
        let tg_at_bf = control_results(&j, "CTL-TG", fixtures::LOME_PORT, fixtures::OUAGADOUGOU);
        refused(&mut w, &j, &tg_at_bf, RejectionCode::ForbiddenOffice);
        let tg_at_tg = control_results(&j, "CTL-TG2", fixtures::LOME_PORT, fixtures::LOME_PORT);
        refused(&mut w, &j, &tg_at_tg, RejectionCode::NotDestinationCountry);
        w.when(&j.control_results).then_in_sequence();
    }

    #[test]
    fn incidents_come_from_a_country_on_the_route() {
        let j = journey(111);
        let mut w = released(&j);
        let why = refused(
            &mut w,
            &j,
            &incident(&j, "INC-CI", ABIDJAN),
            RejectionCode::NotRouteCountry,
        );
        assert!(why.contains("BF, TG") && why.contains("CI"), "{why}");
        w.when(&incident(&j, "INC-TG", fixtures::CINKASSE_TG))
            .then_in_sequence();
        w.when(&incident(&j, "INC-BF", fixtures::OUAGADOUGOU))
            .then_in_sequence();
        // Niger is off the route until one of its offices records the truck passing.
        refused(
            &mut w,
            &j,
            &incident(&j, "INC-NE", NE_BORDER),
            RejectionCode::NotRouteCountry,
        );
        w.when(&crossing_at(&j, "X-NE", NE_BORDER, NE_BORDER))
            .then_appended();
        w.when(&incident(&j, "INC-NE", NE_BORDER)).then_appended();
        // Before the declaration the route is unknown: recorded, flagged.
        World::default()
            .when(&incident(&j, "INC-EARLY", ABIDJAN))
            .then_anomaly("no declaration recorded yet");
    }

    #[test]
    fn enquiry_answers() {
        let j = journey(112);
        let arrived_at = |office: &str| EnquiryOutcome::GoodsArrived {
            arrived_at: at(36 * 60),
            office: office.parse().unwrap(),
        };
        let mut w = under_enquiry(&j);
        // Togo "finding" an arrival at Ouagadougou: only Burkina Faso can attest it.
        let tg = from(
            fixtures::LOME_PORT,
            "ENR-TG",
            &enquiry_response(&j, "x", arrived_at(fixtures::OUAGADOUGOU)),
        );
        refused(&mut w, &j, &tg, RejectionCode::ForbiddenOffice);
        let tg_own = from(
            fixtures::LOME_PORT,
            "ENR-TG2",
            &enquiry_response(&j, "x", arrived_at(fixtures::CINKASSE_TG)),
        );
        refused(&mut w, &j, &tg_own, RejectionCode::NotDestinationCountry);
        // Niger may not answer at all.
        let ne = from(
            NIAMEY,
            "ENR-NE",
            &enquiry_response(&j, "x", EnquiryOutcome::GoodsNotArrived),
        );
        refused(&mut w, &j, &ne, RejectionCode::NotDestinationCountry);
        // Departure records the holder's answer, destination its own; destination proves
        // the arrival at its office.
        let tg_not = from(
            fixtures::LOME_PORT,
            "ENR-TG3",
            &enquiry_response(&j, "x", EnquiryOutcome::Unknown),
        );
        w.when(&tg_not).then_appended();
        w.when(&enquiry_response(
            &j,
            "ENR-BF",
            EnquiryOutcome::GoodsNotArrived,
        ))
        .then_appended();
        w.when(&enquiry_response(
            &j,
            "ENR-BF2",
            arrived_at(fixtures::OUAGADOUGOU),
        ))
        .then_appended();
        w.when(&j.discharge).then_appended();
    }

    #[test]
    fn authorization_comes_before_the_message_id_check_but_not_before_a_redelivery() {
        let j = journey(113);
        let mut w = released(&j);
        // Burkina Faso reusing the id of Togo's release learns nothing about it.
        let mut reuse = from(fixtures::OUAGADOUGOU, "x", &j.release);
        reuse.message_id = j.release.message_id.clone();
        refused(&mut w, &j, &reuse, RejectionCode::NotDepartureCountry);
        // The exact redelivery is still a duplicate.
        w.when(&j.release).then_duplicate();
        // And a Togolese reuse with other content is still a conflict.
        let mut other = j.release.clone();
        other.sent_at = at(5000);
        w.when(&other)
            .then_rejected(RejectionCode::MessageIdConflict);
    }

    #[test]
    fn validation_comes_before_authorization() {
        // A sender whose office is not in its country is invalid, whatever it sends.
        let j = journey(114);
        let mut bad = j.release.clone();
        bad.sender.country = "BF".parse::<CountryCode>().unwrap();
        declared(&j)
            .when(&bad)
            .then_rejected(RejectionCode::Validation);
    }

    #[test]
    fn forbidden_codes() {
        for code in [
            RejectionCode::ForbiddenOffice,
            RejectionCode::NotDepartureCountry,
            RejectionCode::NotDestinationCountry,
            RejectionCode::NotRouteCountry,
        ] {
            assert!(RejectionCode::ALL.contains(&code));
            assert_eq!(code.kind(), RejectionKind::Forbidden);
        }
        assert_eq!(
            RejectionCode::NotDepartureCountry.as_str(),
            "NOT_DEPARTURE_COUNTRY"
        );
        assert_eq!(
            RejectionCode::ALL
                .iter()
                .filter(|c| c.kind() == RejectionKind::Forbidden)
                .count(),
            4
        );
    }
}
