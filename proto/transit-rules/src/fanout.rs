//! Fan-out planning: which office must be told what when an event is recorded. Pure: the
//! dispatcher in the service follows the log, folds each movement, asks [`plan`] and sends.
//!
//! - `AnticipatedRecordsDispatched` (recorded with the release): the anticipated transit record
//!   to each declared office of transit, the anticipated arrival record to the office of
//!   destination.
//! - `DestinationChanged`: the anticipated arrival record to the new office of destination.
//! - `BorderCrossed`: a crossing notification back to the office of departure.
//! - `ArrivalRecorded`: an arrival advice back to the office of departure.
//! - `TransitDischarged`: a write-off notification to the office of destination and each office
//!   of transit, which hold anticipated records they can now close.
//!
//! Each notification has a stable id derived from the event id, its kind and the office
//! (`<event id>.<ATR|AAR|NCF|ARV|WOF>.<office>`, within the contract's 64-character message id),
//! so a dispatcher that sends it twice (at-least-once after a crash) lets receivers drop the copy.
//! A report that reaches the ledger before the declaration (out of sequence) names no office of
//! departure yet: nothing is sent for it.

use transit_contract::events::MovementEvent;
use transit_contract::ids::OfficeCode;

use crate::MovementState;

/// What kind of outbound message a notification is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum NotificationKind {
    /// To an office of transit, on release (NCTS IE050).
    AnticipatedTransitRecord,
    /// To the office of destination, on release or destination change (NCTS IE001).
    AnticipatedArrivalRecord,
    /// To the office of departure, when a border office records the passage (NCTS IE118).
    CrossingNotification,
    /// To the office of departure, when the goods arrive (NCTS IE006).
    ArrivalAdvice,
    /// To the offices en route and at destination, when the movement is discharged (IE045).
    WriteOffNotification,
}

impl NotificationKind {
    /// A three-letter code, used in notification message ids.
    pub fn code(&self) -> &'static str {
        match self {
            Self::AnticipatedTransitRecord => "ATR",
            Self::AnticipatedArrivalRecord => "AAR",
            Self::CrossingNotification => "NCF",
            Self::ArrivalAdvice => "ARV",
            Self::WriteOffNotification => "WOF",
        }
    }

    /// The stable name, used in broker headers (the JMS type).
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::AnticipatedTransitRecord => "AnticipatedTransitRecord",
            Self::AnticipatedArrivalRecord => "AnticipatedArrivalRecord",
            Self::CrossingNotification => "CrossingNotification",
            Self::ArrivalAdvice => "ArrivalAdvice",
            Self::WriteOffNotification => "WriteOffNotification",
        }
    }
}

/// One message to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    /// What to send.
    pub kind: NotificationKind,
    /// Who receives it.
    pub office: OfficeCode,
    /// Stable across resends: `<event id>.<kind code>.<office>`.
    pub message_id: String,
}

/// The outbound queue of an office: `transit.<country>.<office>.out`.
pub fn office_queue(office: &OfficeCode) -> String {
    format!("transit.{}.{}.out", office.country(), office)
}

/// What to send for `event` (with id `event_id`, at most 32 characters of
/// `[A-Za-z0-9._:-]`, e.g. a UUID in simple form), given the movement's state after the event
/// was applied.
pub fn plan(event_id: &str, event: &MovementEvent, movement: &MovementState) -> Vec<Notification> {
    let note = |kind: NotificationKind, office: &OfficeCode| Notification {
        kind,
        office: office.clone(),
        message_id: format!("{event_id}.{}.{office}", kind.code()),
    };
    let declaration = movement.declaration();
    let departure = declaration.map(|d| &d.office_of_departure);
    let mut out = Vec::new();
    match event {
        MovementEvent::AnticipatedRecordsDispatched {
            offices_of_transit,
            office_of_destination,
        } => {
            for office in offices_of_transit {
                out.push(note(NotificationKind::AnticipatedTransitRecord, office));
            }
            out.push(note(
                NotificationKind::AnticipatedArrivalRecord,
                office_of_destination,
            ));
        }
        MovementEvent::DestinationChanged { to, .. } => {
            out.push(note(NotificationKind::AnticipatedArrivalRecord, to));
        }
        MovementEvent::BorderCrossed { .. } => {
            if let Some(departure) = departure {
                out.push(note(NotificationKind::CrossingNotification, departure));
            }
        }
        MovementEvent::ArrivalRecorded { .. } => {
            if let Some(departure) = departure {
                out.push(note(NotificationKind::ArrivalAdvice, departure));
            }
        }
        MovementEvent::TransitDischarged { .. } => {
            if let Some(d) = declaration {
                for office in d.transit_offices() {
                    out.push(note(NotificationKind::WriteOffNotification, office));
                }
                out.push(note(
                    NotificationKind::WriteOffNotification,
                    &d.office_of_destination,
                ));
            }
        }
        _ => {}
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use transit_contract::events::EventMeta;
    use transit_contract::fixtures;
    use transit_contract::ids::Timestamp;

    use crate::{decide, Context, Decision, GuaranteeState};

    /// Runs the fixture journey through the rules, collecting every notification planned.
    fn journey_notifications() -> Vec<(String, Notification)> {
        let base = Timestamp::from_unix_millis(1_780_000_000_000).unwrap();
        let journey = fixtures::journey(base, 1);
        let ctx = Context {
            recorded_at: Timestamp::from_unix_millis(1_780_000_060_000).unwrap(),
        };
        let mut movement = MovementState::default();
        let mut guarantee = GuaranteeState::default();
        let mut out = Vec::new();
        for (n, m) in journey.messages().iter().enumerate() {
            let is_guarantee = m.mrn().is_none();
            let empty = MovementState::default();
            let state = if is_guarantee { &empty } else { &movement };
            let Decision::Append {
                movement: events,
                guarantee: g_events,
                meta,
            } = decide(m, state, Some(&guarantee), &ctx).unwrap()
            else {
                panic!("fixture messages are new");
            };
            for e in &g_events {
                guarantee.apply(&meta, e);
            }
            for (i, e) in events.iter().enumerate() {
                movement.apply(&meta, e);
                for note in plan(&format!("e{n}.{i}"), e, &movement) {
                    out.push((e.event_type().to_owned(), note));
                }
            }
            let _: &EventMeta = &meta;
        }
        out
    }

    #[test]
    fn a_journey_notifies_each_office_once_per_fact() {
        let notes = journey_notifications();
        let summary: Vec<(String, &str, String)> = notes
            .iter()
            .map(|(t, n)| (t.clone(), n.kind.as_str(), n.office.to_string()))
            .collect();
        let want = [
            (
                "AnticipatedRecordsDispatched",
                "AnticipatedTransitRecord",
                fixtures::CINKASSE_TG,
            ),
            (
                "AnticipatedRecordsDispatched",
                "AnticipatedTransitRecord",
                fixtures::CINKASSE_BF,
            ),
            (
                "AnticipatedRecordsDispatched",
                "AnticipatedArrivalRecord",
                fixtures::OUAGADOUGOU,
            ),
            ("BorderCrossed", "CrossingNotification", fixtures::LOME_PORT),
            ("BorderCrossed", "CrossingNotification", fixtures::LOME_PORT),
            ("ArrivalRecorded", "ArrivalAdvice", fixtures::LOME_PORT),
            (
                "TransitDischarged",
                "WriteOffNotification",
                fixtures::CINKASSE_TG,
            ),
            (
                "TransitDischarged",
                "WriteOffNotification",
                fixtures::CINKASSE_BF,
            ),
            (
                "TransitDischarged",
                "WriteOffNotification",
                fixtures::OUAGADOUGOU,
            ),
        ];
        let want: Vec<(String, &str, String)> = want
            .iter()
            .map(|(t, k, o)| ((*t).to_owned(), *k, (*o).to_owned()))
            .collect();
        assert_eq!(summary, want);
        // Ids are stable and distinct.
        let ids: std::collections::HashSet<_> = notes.iter().map(|(_, n)| &n.message_id).collect();
        assert_eq!(ids.len(), notes.len());
        assert_eq!(notes, journey_notifications());
    }

    #[test]
    fn queues_are_per_office() {
        let office: OfficeCode = "BFOUA001".parse().unwrap();
        assert_eq!(office_queue(&office), "transit.BF.BFOUA001.out");
    }

    #[test]
    fn a_crossing_before_the_declaration_notifies_nobody() {
        let event = MovementEvent::BorderCrossed {
            office: fixtures::CINKASSE_BF.parse().unwrap(),
            crossed_at: Timestamp::from_unix_millis(1_780_000_000_000).unwrap(),
            declared_office: false,
            seals_intact: true,
            seals_observed: vec![],
        };
        assert!(plan("e", &event, &MovementState::default()).is_empty());
    }
}
