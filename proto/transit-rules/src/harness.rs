//! A tiny given/when/then harness: an in-memory set of streams driven through `decide` and
//! folded with `apply`, so that rules are tested as "given these events, when this message,
//! then these events (or this rejection, or a duplicate)".
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use transit_contract::events::{EventMeta, GuaranteeEvent, MovementEvent};
use transit_contract::ids::{GuaranteeReference, Mrn, OfficeCode, Timestamp};
use transit_contract::messages::{InboundMessage, MessageBody, Sender};

use crate::{
    decide, guarantee_needed, Context, Decision, GuaranteeState, MovementState, Rejection,
    RejectionCode,
};

/// One recorded event of the past, for `given`.
#[allow(clippy::large_enum_variant)] // test-only, a handful of values
#[derive(Debug, Clone)]
pub(crate) enum Given {
    Movement(Mrn, EventMeta, MovementEvent),
    Guarantee(GuaranteeReference, EventMeta, GuaranteeEvent),
}

/// The streams of a small ledger, and its clock.
#[derive(Debug, Default)]
pub(crate) struct World {
    movements: BTreeMap<Mrn, Vec<(EventMeta, MovementEvent)>>,
    guarantees: BTreeMap<GuaranteeReference, Vec<(EventMeta, GuaranteeEvent)>>,
    now: Option<Timestamp>,
}

/// Given these recorded events.
pub(crate) fn given(events: impl IntoIterator<Item = Given>) -> World {
    let mut world = World::default();
    for e in events {
        world.record(e);
    }
    world
}

/// Given the events these messages produce, each of which must be accepted.
pub(crate) fn given_messages<'a>(messages: impl IntoIterator<Item = &'a InboundMessage>) -> World {
    let mut world = World::default();
    for m in messages {
        world.when(m).then_appended();
    }
    world
}

impl World {
    /// Sets the ledger clock for the next decisions (by default, the message's sent_at).
    pub(crate) fn at(mut self, now: Timestamp) -> Self {
        self.now = Some(now);
        self
    }

    fn record(&mut self, e: Given) {
        match e {
            Given::Movement(mrn, meta, event) => {
                self.movements.entry(mrn).or_default().push((meta, event))
            }
            Given::Guarantee(grn, meta, event) => {
                self.guarantees.entry(grn).or_default().push((meta, event))
            }
        }
    }

    pub(crate) fn movement(&self, mrn: &Mrn) -> MovementState {
        MovementState::from_events(
            self.movements
                .get(mrn)
                .into_iter()
                .flatten()
                .map(|(m, e)| (m, e)),
        )
    }

    pub(crate) fn guarantee(&self, grn: &GuaranteeReference) -> Option<GuaranteeState> {
        self.guarantees
            .get(grn)
            .map(|events| GuaranteeState::from_events(events.iter().map(|(m, e)| (m, e))))
    }

    pub(crate) fn movement_events(&self, mrn: &Mrn) -> &[(EventMeta, MovementEvent)] {
        self.movements.get(mrn).map_or(&[], Vec::as_slice)
    }

    pub(crate) fn guarantee_events(
        &self,
        grn: &GuaranteeReference,
    ) -> &[(EventMeta, GuaranteeEvent)] {
        self.guarantees.get(grn).map_or(&[], Vec::as_slice)
    }

    /// When this message arrives: decide as the ledger would, and record what is appended.
    pub(crate) fn when(&mut self, msg: &InboundMessage) -> Then {
        let movement = msg.mrn().map(|m| self.movement(m)).unwrap_or_default();
        let grn = guarantee_needed(msg, &movement);
        let guarantee = grn.as_ref().and_then(|g| self.guarantee(g));
        let ctx = Context {
            recorded_at: self.now.unwrap_or(msg.sent_at),
        };
        let result = decide(msg, &movement, guarantee.as_ref(), &ctx);
        if let Ok(Decision::Append {
            movement,
            guarantee,
            meta,
        }) = &result
        {
            assert!(
                guarantee.is_empty() || grn.is_some(),
                "guarantee events for a message that guarantee_needed says touches none"
            );
            for e in movement {
                let mrn = msg.mrn().expect("movement events need an MRN").clone();
                self.record(Given::Movement(mrn, meta.clone(), e.clone()));
            }
            for e in guarantee {
                let grn = grn.clone().expect("checked above");
                self.record(Given::Guarantee(grn, meta.clone(), e.clone()));
            }
        }
        Then { result }
    }
}

/// What a decision turned out to be, with assertions.
#[derive(Debug)]
pub(crate) struct Then {
    pub(crate) result: Result<Decision, Rejection>,
}

impl Then {
    /// Asserts an append and returns its parts.
    pub(crate) fn then_appended(&self) -> (Vec<MovementEvent>, Vec<GuaranteeEvent>, EventMeta) {
        match &self.result {
            Ok(Decision::Append {
                movement,
                guarantee,
                meta,
            }) => (movement.clone(), guarantee.clone(), meta.clone()),
            other => panic!("expected an append, got {other:?}"),
        }
    }

    /// Asserts exactly these events.
    pub(crate) fn then_events(
        &self,
        movement: &[MovementEvent],
        guarantee: &[GuaranteeEvent],
    ) -> EventMeta {
        let (m, g, meta) = self.then_appended();
        assert_eq!(m, movement);
        assert_eq!(g, guarantee);
        meta
    }

    /// Asserts events of exactly these types.
    pub(crate) fn then_event_types(&self, movement: &[&str], guarantee: &[&str]) -> EventMeta {
        let (m, g, meta) = self.then_appended();
        let m: Vec<&str> = m.iter().map(MovementEvent::event_type).collect();
        let g: Vec<&str> = g.iter().map(GuaranteeEvent::event_type).collect();
        assert_eq!(m, movement);
        assert_eq!(g, guarantee);
        meta
    }

    /// Asserts an append with no anomaly.
    pub(crate) fn then_in_sequence(&self) -> EventMeta {
        let (_, _, meta) = self.then_appended();
        assert_eq!(meta.anomaly, None);
        meta
    }

    /// Asserts an append whose anomaly mentions `needle`.
    pub(crate) fn then_anomaly(&self, needle: &str) -> EventMeta {
        let (_, _, meta) = self.then_appended();
        let anomaly = meta.anomaly.as_deref().unwrap_or_default();
        assert!(
            anomaly.contains(needle),
            "anomaly {anomaly:?} lacks {needle:?}"
        );
        meta
    }

    /// Asserts a rejection with this code.
    pub(crate) fn then_rejected(&self, code: RejectionCode) -> Rejection {
        match &self.result {
            Err(r) if r.code == code => r.clone(),
            other => panic!("expected rejection {code}, got {other:?}"),
        }
    }

    /// Asserts a duplicate.
    pub(crate) fn then_duplicate(&self) {
        assert_eq!(self.result, Ok(Decision::Duplicate));
    }
}

/// A message from `office` with id `id`, sent at `sent_at`.
pub(crate) fn message(
    id: &str,
    office: &str,
    sent_at: Timestamp,
    body: MessageBody,
) -> InboundMessage {
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
