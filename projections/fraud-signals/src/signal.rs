//! The signal model: rule ids, severities, signals and their changes.

use std::fmt;

use serde::{Deserialize, Serialize};
use transit_contract::ids::{Mrn, Timestamp};

/// A fraud rule, with a stable code (`OVERDUE`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RuleId {
    Overdue,
    MissingCrossing,
    Diversion,
    SealMismatch,
    QuantityDiscrepancy,
    SharedVehicle,
    SharedSeal,
    TooFast,
    RepeatedIncidents,
    HighRiskGoods,
}

impl RuleId {
    /// Every rule, in the order they are documented.
    pub const ALL: [RuleId; 10] = [
        RuleId::Overdue,
        RuleId::MissingCrossing,
        RuleId::Diversion,
        RuleId::SealMismatch,
        RuleId::QuantityDiscrepancy,
        RuleId::SharedVehicle,
        RuleId::SharedSeal,
        RuleId::TooFast,
        RuleId::RepeatedIncidents,
        RuleId::HighRiskGoods,
    ];

    /// The stable code, e.g. `MISSING_CROSSING`.
    pub fn code(&self) -> &'static str {
        match self {
            RuleId::Overdue => "OVERDUE",
            RuleId::MissingCrossing => "MISSING_CROSSING",
            RuleId::Diversion => "DIVERSION",
            RuleId::SealMismatch => "SEAL_MISMATCH",
            RuleId::QuantityDiscrepancy => "QUANTITY_DISCREPANCY",
            RuleId::SharedVehicle => "SHARED_VEHICLE",
            RuleId::SharedSeal => "SHARED_SEAL",
            RuleId::TooFast => "TOO_FAST",
            RuleId::RepeatedIncidents => "REPEATED_INCIDENTS",
            RuleId::HighRiskGoods => "HIGH_RISK_GOODS",
        }
    }
}

impl fmt::Display for RuleId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// How urgently an analyst should look.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Severity {
    Low,
    Medium,
    High,
    Critical,
}

/// A stable signal id: `RULE:MRN[:discriminator]`, so that the same finding raised again after
/// a rebuild has the same id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SignalId(String);

impl SignalId {
    pub(crate) fn new(rule: RuleId, mrn: &Mrn, discriminator: &str) -> SignalId {
        if discriminator.is_empty() {
            SignalId(format!("{}:{}", rule.code(), mrn))
        } else {
            SignalId(format!("{}:{}:{}", rule.code(), mrn, discriminator))
        }
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SignalId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Whether a signal still holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "camelCase")]
pub enum SignalStatus {
    Open,
    Cleared { at: Timestamp },
}

/// One finding of one rule on one movement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Signal {
    pub id: SignalId,
    pub rule: RuleId,
    pub severity: Severity,
    pub mrn: Mrn,
    /// Names the values and the threshold, for an analyst.
    pub explanation: String,
    /// Global positions of the events that support the finding, ascending.
    pub evidence: Vec<u64>,
    /// `recorded_at` of the event that raised it, or the tick time for deadline rules.
    pub fired_at: Timestamp,
    pub status: SignalStatus,
}

impl Signal {
    /// Whether the signal is open.
    pub fn is_open(&self) -> bool {
        self.status == SignalStatus::Open
    }
}

/// What one event or tick changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SignalChange {
    Raised(Signal),
    Cleared { id: SignalId, at: Timestamp },
}

/// A query over all signals; `None` matches anything.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SignalFilter {
    pub rule: Option<RuleId>,
    pub severity: Option<Severity>,
    /// `Some(true)`: open only; `Some(false)`: cleared only.
    pub open: Option<bool>,
}

impl SignalFilter {
    /// Whether `s` matches.
    pub fn matches(&self, s: &Signal) -> bool {
        self.rule.is_none_or(|r| r == s.rule)
            && self.severity.is_none_or(|v| v == s.severity)
            && self.open.is_none_or(|o| o == s.is_open())
    }
}
