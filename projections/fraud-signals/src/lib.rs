//! Fraud signals: a pure, deterministic projection that turns movement events into signals an
//! analyst can act on, each naming its rule, the evidence (global event positions) and the
//! threshold that fired.
//!
//! [`SignalEngine::apply`] folds one event of a movement stream (with its global position and
//! MRN) and returns the [`SignalChange`]s it caused; [`SignalEngine::tick`] advances an injected
//! clock for the deadline rule. Nothing here reads a clock or does IO. Every change re-evaluates
//! the rules for the movements it can affect and reconciles: a finding that appears is
//! `Raised`, an open signal whose finding is gone is `Cleared`. Signal ids are stable
//! (`RULE:MRN[:discriminator]`), so a rebuild produces the same ids, and
//! [`SignalEngine::state_hash`] compares a rebuild with live state.
//!
//! # Rules (thresholds in [`FraudConfig`])
//! - `OVERDUE` (High): released, no arrival, and the tick time is at or past the time limit
//!   plus `overdue_grace_seconds`. Cleared by an arrival (or a discharge/cancellation).
//! - `MISSING_CROSSING` (High, one per office): an arrival or a discharge, and a declared office
//!   of transit with no crossing record. Cleared if the crossing is recorded late.
//! - `DIVERSION` (High; Medium for a deviation incident alone): a crossing at an office not
//!   declared for transit, a destination changed after release, an arrival elsewhere than the
//!   current destination, or a `Deviation` incident. Deviation incidents are added to the
//!   evidence and explanation of every diversion signal.
//! - `SEAL_MISMATCH` (High; Medium for an incident alone): at a crossing (`seals_observed`,
//!   `seals_intact`) or at destination control (`seals_found`, `seals_intact`), seals not intact
//!   or different from the expected set: the declared seals, replaced by the new seals of the
//!   latest incident that occurred before the checkpoint. A `SealsBroken` incident without new
//!   seals fires on its own; every `SealsBroken` incident is evidence.
//! - `QUANTITY_DISCREPANCY` (High): at the latest destination control, gross mass differing
//!   from the declared total by more than max(`mass_tolerance_bp`, `mass_tolerance_g`), or
//!   packages by more than `package_tolerance`.
//! - `SHARED_VEHICLE` / `SHARED_SEAL` (High): the same plate (normalised) or seal on two open
//!   movements (released; not arrived, discharged, cancelled or recovered). Raised on both,
//!   cleared when either closes.
//! - `TOO_FAST` (Medium): release -> crossings (in time order) -> first arrival, a segment
//!   shorter than its `segment_minimums` entry, else `segment_minimum_seconds_default`.
//! - `REPEATED_INCIDENTS` (Medium): at least `incidents_count_min` incidents of one holder or
//!   carrier within `incidents_window_seconds`; raised on each movement with an incident in
//!   the window.
//! - `HIGH_RISK_GOODS` (Critical): goods whose HS code starts with a `high_risk_hs_prefixes`
//!   entry, while any other signal of the movement is open; cleared with the last of them.
//! - Risk score ([`SignalEngine::risk_score`]): the sum of `weights` of the rules with an open
//!   signal on the movement, capped at 100.
//!
//! Invariant: no IO, no clock, no randomness: the same events and ticks give the same signals
//! and the same state hash.

mod config;
mod engine;
mod signal;

#[cfg(test)]
mod tests;

pub use config::{FraudConfig, RiskWeights, SegmentMinimum};
pub use engine::SignalEngine;
pub use signal::{RuleId, Severity, Signal, SignalChange, SignalFilter, SignalId, SignalStatus};
