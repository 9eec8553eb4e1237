//! A deterministic corridor simulator: realistic transit traffic on West African road
//! corridors, with labelled fraud scenarios and the ground truth to score the fraud signals
//! against. Pure: no IO, no clock; the same [`SimConfig`] (seed included) always gives the
//! same messages, byte for byte, on every platform.
//!
//! - [`network`]: offices, routes, distances, border dwell.
//! - [`goods`]: what the lorries carry (HS codes, packaging, value, duty, high-risk goods).
//! - [`Simulation::generate`] plans every movement (times, holder, carrier, lorry, goods,
//!   guarantee), injects one fraud scenario per labelled movement ([`Scenario`]), and
//!   [`Simulation::messages`] / [`Simulation::deliveries`] render the inbound messages and the
//!   order a real network would deliver them in (latency, redeliveries, late border
//!   notifications). [`Simulation::truth`] says which movement should raise which rule.
//!
//! Randomness is ChaCha8 (`rand_chacha`, a fixed algorithm): one stream for the plan and one
//! stream per movement for its rendering, so a movement's messages do not depend on how many
//! were rendered before it. Distributions use only IEEE arithmetic and square roots
//! ([`network::Triangular`]), never `ln`/`exp`/`cos`, whose last bit may differ between
//! platforms' maths libraries.
//!
//! Invariant: no IO, no clock; everything is a function of the configuration.

pub mod goods;
pub mod network;
mod plan;
mod render;

use std::collections::BTreeSet;

use fraud_signals::{FraudConfig, RuleId, SegmentMinimum};
use serde::{Deserialize, Serialize};
use transit_contract::ids::{Mrn, Timestamp};

pub use network::Triangular;
pub use plan::Plan;
pub use render::Delivery;

/// Why a simulation could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SimError {
    /// A setting is out of its range.
    #[error("invalid setting {field}: {reason}")]
    Invalid { field: &'static str, reason: String },
}

/// At most this many movements per simulation (MRN serials have 8 digits).
pub const MOVEMENTS_MAX: u32 = 99_999_999;

/// Times of the honest traffic. Road legs take `km * 60 / speed` minutes, drawn between the
/// fastest, usual and slowest average speeds; a breakdown adds a delay now and then.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct Timing {
    /// Fastest sustained average of a laden lorry, km/h (the honest floor). Default 75.
    pub road_speed_kmh_max: u32,
    /// Usual average, km/h. Default 45.
    pub road_speed_kmh_mode: u32,
    /// Slowest average (bad road, night stops), km/h. Default 20.
    pub road_speed_kmh_min: u32,
    /// Dwell at a border (both posts). Default 30 min / 90 min / 6 h (since the 2018
    /// interconnection the Cinkassé crossing takes 1-2 hours).
    pub border_dwell: Triangular,
    /// Declaration to release at departure. Default 45 min / 2 h / 8 h.
    pub release_after_declaration: Triangular,
    /// Probability that a road leg has a breakdown or a long stop. Default 0.03.
    pub breakdown_probability: f64,
    /// The delay a breakdown adds. Default 6 h / 12 h / 48 h.
    pub breakdown: Triangular,
    /// Arrival to control results at destination. Default 90 min / 3 h / 24 h.
    pub control_after_arrival: Triangular,
    /// Control results to discharge at departure. Default 30 min / 4 h / 48 h.
    pub discharge_after_control: Triangular,
    /// A lorry's way back to its next loading after an arrival. Default 1 / 2 / 4 days.
    pub return_trip: Triangular,
    /// Business time to sending time of a message. Default 1 / 10 / 60 min.
    pub send_lag: Triangular,
    /// Network latency of a delivery, seconds: uniform in 1..=this. Default 90.
    pub latency_seconds_max: u32,
    /// How late a delayed border notification arrives. Default 2 h / 6 h / 30 h.
    pub late_notification: Triangular,
    /// When a message is redelivered after its first delivery. Default 1 / 3 / 20 min.
    pub redelivery_after: Triangular,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            road_speed_kmh_max: 75,
            road_speed_kmh_mode: 45,
            road_speed_kmh_min: 20,
            border_dwell: Triangular::new(30, 90, 360),
            release_after_declaration: Triangular::new(45, 120, 480),
            breakdown_probability: 0.03,
            breakdown: Triangular::new(360, 720, 2_880),
            control_after_arrival: Triangular::new(90, 180, 1_440),
            discharge_after_control: Triangular::new(30, 240, 2_880),
            return_trip: Triangular::new(1_440, 2_880, 5_760),
            send_lag: Triangular::new(1, 10, 60),
            latency_seconds_max: 90,
            late_notification: Triangular::new(120, 360, 1_800),
            redelivery_after: Triangular::new(1, 3, 20),
        }
    }
}

/// Everything a simulation is a function of.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct SimConfig {
    /// The seed of every random draw.
    pub seed: u64,
    /// Movements declared.
    pub movements: u32,
    /// Share of movements that carry a fraud scenario (0..=0.5).
    pub fraud_rate: f64,
    /// The first declaration's day (guarantees are registered two days before).
    pub start: Timestamp,
    /// Declarations per day, spread evenly with jitter. Default 150.
    pub movements_per_day: u32,
    /// Share of declarations cancelled before release. Default 0.015.
    pub cancel_rate: f64,
    /// Share of declarations refused release. Default 0.005.
    pub no_release_rate: f64,
    /// Share of honest movements with an incident (accident, breakdown, re-sealing).
    /// Default 0.003.
    pub incident_rate: f64,
    /// Share of messages delivered twice (JMS redelivery). Default 0.01.
    pub duplicate_rate: f64,
    /// Share of movements whose border notification is delayed past later messages.
    /// Default 0.02.
    pub late_notification_rate: f64,
    /// Times.
    pub timing: Timing,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            seed: 1,
            movements: 1_000,
            fraud_rate: 0.05,
            start: Timestamp::from_unix_millis(1_767_225_600_000)
                .expect("invariant: 2026-01-01 is a valid timestamp"),
            movements_per_day: 150,
            cancel_rate: 0.015,
            no_release_rate: 0.005,
            incident_rate: 0.003,
            duplicate_rate: 0.01,
            late_notification_rate: 0.02,
            timing: Timing::default(),
        }
    }
}

impl SimConfig {
    fn check(&self) -> Result<(), SimError> {
        let rate = |field: &'static str, v: f64, max: f64| {
            if !(0.0..=max).contains(&v) {
                return Err(SimError::Invalid {
                    field,
                    reason: format!("{v} is outside 0..={max}"),
                });
            }
            Ok(())
        };
        rate("fraudRate", self.fraud_rate, 0.5)?;
        rate("cancelRate", self.cancel_rate, 0.2)?;
        rate("noReleaseRate", self.no_release_rate, 0.2)?;
        rate("incidentRate", self.incident_rate, 0.2)?;
        rate("duplicateRate", self.duplicate_rate, 0.5)?;
        rate("lateNotificationRate", self.late_notification_rate, 0.5)?;
        rate(
            "timing.breakdownProbability",
            self.timing.breakdown_probability,
            0.5,
        )?;
        if self.movements == 0 || self.movements > MOVEMENTS_MAX {
            return Err(SimError::Invalid {
                field: "movements",
                reason: format!("{} is outside 1..={MOVEMENTS_MAX}", self.movements),
            });
        }
        if self.movements_per_day == 0 {
            return Err(SimError::Invalid {
                field: "movementsPerDay",
                reason: "must be positive".to_owned(),
            });
        }
        let t = &self.timing;
        if !(t.road_speed_kmh_min > 0
            && t.road_speed_kmh_min <= t.road_speed_kmh_mode
            && t.road_speed_kmh_mode <= t.road_speed_kmh_max
            && t.road_speed_kmh_max <= 120)
        {
            return Err(SimError::Invalid {
                field: "timing.roadSpeedKmh*",
                reason: "need 0 < min <= mode <= max <= 120".to_owned(),
            });
        }
        Ok(())
    }
}

/// A fraud pattern injected into a movement, named after the rule meant to catch it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Scenario {
    /// Vehicles entered in transit that never leave, goods that never arrive.
    Overdue,
    /// Fictitious transit: arrival and discharge with no border record.
    MissingCrossing,
    /// Change of destination after release, arrival elsewhere, detour, deviation.
    Diversion,
    /// Seal tampering seen at the border or at destination.
    SealMismatch,
    /// Goods sold en route, or under-declared.
    QuantityDiscrepancy,
    /// One lorry declared on two open movements (the same document used twice).
    SharedVehicle,
    /// One seal number on two open movements.
    SharedSeal,
    /// Paper that moved faster than a lorry can.
    TooFast,
    /// A holder with incident after incident.
    RepeatedIncidents,
}

impl Scenario {
    /// Every scenario, injected in turn.
    pub const ALL: [Scenario; 9] = [
        Scenario::Overdue,
        Scenario::MissingCrossing,
        Scenario::Diversion,
        Scenario::SealMismatch,
        Scenario::QuantityDiscrepancy,
        Scenario::SharedVehicle,
        Scenario::SharedSeal,
        Scenario::TooFast,
        Scenario::RepeatedIncidents,
    ];

    /// The rule meant to catch it.
    pub fn rule(&self) -> RuleId {
        match self {
            Scenario::Overdue => RuleId::Overdue,
            Scenario::MissingCrossing => RuleId::MissingCrossing,
            Scenario::Diversion => RuleId::Diversion,
            Scenario::SealMismatch => RuleId::SealMismatch,
            Scenario::QuantityDiscrepancy => RuleId::QuantityDiscrepancy,
            Scenario::SharedVehicle => RuleId::SharedVehicle,
            Scenario::SharedSeal => RuleId::SharedSeal,
            Scenario::TooFast => RuleId::TooFast,
            Scenario::RepeatedIncidents => RuleId::RepeatedIncidents,
        }
    }
}

/// A movement's part in a scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Role {
    /// The movement the fraud was injected into.
    Anchor,
    /// The open movement whose lorry or seal the anchor reuses.
    Partner,
    /// Another movement of the anchor's holder with an incident (repeated incidents).
    Member,
}

/// The ground truth of one movement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TruthEntry {
    pub mrn: Mrn,
    pub route: String,
    pub scenario: Option<Scenario>,
    pub role: Option<Role>,
    /// Which form of the scenario, e.g. `destination-changed`.
    pub variant: Option<String>,
    /// The rules that should have an open (or, for shared vehicle/seal, a raised) signal on
    /// this movement at the end; empty for an honest movement.
    pub expected: Vec<RuleId>,
}

/// The ground truth of a whole simulation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GroundTruth {
    pub seed: u64,
    pub fraud_rate: f64,
    pub start: Timestamp,
    /// When to judge: after every delivery and every movement's overdue deadline.
    pub end: Timestamp,
    /// Every movement, in declaration order.
    pub movements: Vec<TruthEntry>,
}

impl GroundTruth {
    /// The movements expected to raise `rule`.
    pub fn expected(&self, rule: RuleId) -> BTreeSet<&Mrn> {
        self.movements
            .iter()
            .filter(|e| e.expected.contains(&rule))
            .map(|e| &e.mrn)
            .collect()
    }
}

/// A generated simulation: the plan of every movement, rendered into messages on demand.
#[derive(Debug, Clone)]
pub struct Simulation {
    config: SimConfig,
    plan: Plan,
}

impl Simulation {
    /// Plans the whole simulation. Rendering is lazy ([`Self::movement_messages`]).
    pub fn generate(config: &SimConfig) -> Result<Simulation, SimError> {
        config.check()?;
        Ok(Simulation {
            config: config.clone(),
            plan: plan::plan(config),
        })
    }

    /// The configuration it was made from.
    pub fn config(&self) -> &SimConfig {
        &self.config
    }

    /// Movements planned.
    pub fn movement_count(&self) -> usize {
        self.plan.movements.len()
    }

    /// The MRN of movement `i` (declaration order).
    pub fn mrn(&self, i: usize) -> Option<&Mrn> {
        self.plan.movements.get(i).map(|m| &m.mrn)
    }

    /// The holder id of movement `i`.
    pub fn holder_id(&self, i: usize) -> Option<&str> {
        self.plan
            .movements
            .get(i)
            .and_then(|m| self.plan.holders.get(m.holder))
            .map(|h| h.id.as_str())
    }

    /// When to judge the traffic: after every delivery and every overdue deadline.
    pub fn end(&self) -> Timestamp {
        plan::ts(self.plan.end_ms)
    }

    /// The guarantee registrations (one per holder), sent before any declaration.
    pub fn guarantee_registrations(&self) -> Vec<transit_contract::InboundMessage> {
        render::guarantees(&self.config, &self.plan)
    }

    /// The messages of movement `i`, in the order they were sent.
    pub fn movement_messages(&self, i: usize) -> Vec<transit_contract::InboundMessage> {
        render::movement(&self.config, &self.plan, i)
            .into_iter()
            .map(|(m, _)| m)
            .collect()
    }

    /// Every distinct message (registrations first, then each movement's) and the delivery
    /// plan: deliveries in delivery order, each naming a message by its index; a redelivered
    /// message appears twice.
    pub fn deliveries(&self) -> (Vec<transit_contract::InboundMessage>, Vec<Delivery>) {
        render::all(&self.config, &self.plan)
    }

    /// Which movement should raise which rule.
    pub fn truth(&self) -> GroundTruth {
        plan::truth(&self.config, &self.plan)
    }

    /// The fraud thresholds as shipped (`FraudConfig::default()`), with a TOO_FAST minimum for
    /// every leg of the simulated network that the defaults do not list: a road leg at
    /// 90 km/h (faster than any laden lorry averages), a border at 5 minutes.
    pub fn recommended_fraud_config() -> FraudConfig {
        let mut config = FraudConfig::default();
        for (from, to, leg) in network::legs() {
            let (Ok(from), Ok(to)) = (from.parse(), to.parse()) else {
                continue;
            };
            if config
                .segment_minimums
                .iter()
                .any(|s| s.from == from && s.to == to)
            {
                continue;
            }
            let seconds = match leg {
                network::Leg::Road { km } => u64::from(km) * 3600 / 90,
                network::Leg::Border => 300,
            };
            config
                .segment_minimums
                .push(SegmentMinimum { from, to, seconds });
        }
        config
    }
}

#[cfg(test)]
mod tests;
