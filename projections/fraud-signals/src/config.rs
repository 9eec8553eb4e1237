//! Thresholds of every fraud rule, with documented defaults that operations can override.

use serde::{Deserialize, Serialize};
use transit_contract::ids::{HsCode, OfficeCode};

use crate::signal::RuleId;

/// The minimum plausible travel time between two offices, in seconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SegmentMinimum {
    pub from: OfficeCode,
    pub to: OfficeCode,
    pub seconds: u64,
}

/// The weight of each rule in a movement's risk score (the score is the sum of the weights of
/// the rules with at least one open signal, capped at 100).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct RiskWeights {
    /// Default 30: late is common and often innocent (breakdowns), but it is the first sign
    /// of goods that never left.
    pub overdue: u32,
    /// Default 40: an arrival without the border's record is the classic forged discharge.
    pub missing_crossing: u32,
    /// Default 40: a change of route or destination is how goods are dumped en route.
    pub diversion: u32,
    /// Default 35: seals that change are direct evidence of tampering.
    pub seal_mismatch: u32,
    /// Default 30: missing mass or packages means goods were sold on the way.
    pub quantity_discrepancy: u32,
    /// Default 25: one lorry cannot carry two open movements (document reuse).
    pub shared_vehicle: u32,
    /// Default 35: one seal cannot close two loads.
    pub shared_seal: u32,
    /// Default 20: a journey faster than the road means paper moved, not goods.
    pub too_fast: u32,
    /// Default 15: a pattern on the trader, weaker for one movement.
    pub repeated_incidents: u32,
    /// Default 20: added on top of the signal it escalates.
    pub high_risk_goods: u32,
}

impl Default for RiskWeights {
    fn default() -> Self {
        RiskWeights {
            overdue: 30,
            missing_crossing: 40,
            diversion: 40,
            seal_mismatch: 35,
            quantity_discrepancy: 30,
            shared_vehicle: 25,
            shared_seal: 35,
            too_fast: 20,
            repeated_incidents: 15,
            high_risk_goods: 20,
        }
    }
}

impl RiskWeights {
    /// The weight of `rule`.
    pub fn weight(&self, rule: RuleId) -> u32 {
        match rule {
            RuleId::Overdue => self.overdue,
            RuleId::MissingCrossing => self.missing_crossing,
            RuleId::Diversion => self.diversion,
            RuleId::SealMismatch => self.seal_mismatch,
            RuleId::QuantityDiscrepancy => self.quantity_discrepancy,
            RuleId::SharedVehicle => self.shared_vehicle,
            RuleId::SharedSeal => self.shared_seal,
            RuleId::TooFast => self.too_fast,
            RuleId::RepeatedIncidents => self.repeated_incidents,
            RuleId::HighRiskGoods => self.high_risk_goods,
        }
    }
}

/// Every threshold of the fraud rules. `Default` gives the documented defaults; a partial
/// JSON document overrides only the fields it names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct FraudConfig {
    /// OVERDUE fires this long after the time limit. Default 86,400 s (one day): the time
    /// limit is already generous, and a day absorbs late arrival messages without flooding
    /// analysts.
    pub overdue_grace_seconds: u64,
    /// QUANTITY_DISCREPANCY mass tolerance, in basis points of the declared gross mass.
    /// Default 200 (2 %): weighbridges and packaging (pallets, moisture in bagged goods)
    /// differ by about that much.
    pub mass_tolerance_bp: u32,
    /// QUANTITY_DISCREPANCY absolute mass tolerance in grams; the larger of the two applies.
    /// Default 50,000 g (50 kg): the resolution of a road weighbridge.
    pub mass_tolerance_g: u64,
    /// QUANTITY_DISCREPANCY package tolerance. Default 0: packages are counted, not weighed.
    pub package_tolerance: u32,
    /// TOO_FAST minimum per office pair. Defaults: Lomé port -> Cinkassé (TG) 8 h (about
    /// 650 km at a lorry's 80 km/h), Cinkassé TG -> Cinkassé BF 5 min (juxtaposed posts),
    /// Cinkassé BF -> Ouagadougou 3.5 h (about 270 km); the other legs of the Cinkassé ->
    /// Kantchari -> Niamey and Abidjan -> Ouagadougou corridors at 90 km/h over their road
    /// distance, and their borders at 5 min (the list is in `Default`).
    pub segment_minimums: Vec<SegmentMinimum>,
    /// TOO_FAST minimum for a pair not listed. Default 1,800 s (30 min): two different
    /// customs offices are never closer than that by road, except juxtaposed ones, which
    /// must be listed.
    pub segment_minimum_seconds_default: u64,
    /// REPEATED_INCIDENTS window. Default 2,592,000 s (30 days): about three round trips.
    pub incidents_window_seconds: u64,
    /// REPEATED_INCIDENTS count. Default 3: one incident is bad luck, two a bad month, three
    /// in a month a pattern.
    pub incidents_count_min: u32,
    /// HIGH_RISK_GOODS: HS prefixes (chapter, heading or subheading digits). Defaults: fuel
    /// 2710, cigarettes 2402, alcohol 2203-2208, cooking oil 1507-1517: the goods of the
    /// documented fictitious-transit cases on this corridor.
    pub high_risk_hs_prefixes: Vec<String>,
    /// Risk score weights per rule.
    pub weights: RiskWeights,
}

fn lit<T: std::str::FromStr>(s: &str) -> T
where
    T::Err: std::fmt::Debug,
{
    s.parse()
        .unwrap_or_else(|e| panic!("invariant: default literal {s:?} is valid: {e:?}"))
}

impl Default for FraudConfig {
    fn default() -> Self {
        let segment = |from: &str, to: &str, seconds: u64| SegmentMinimum {
            from: lit(from),
            to: lit(to),
            seconds,
        };
        let road = |from: &str, to: &str, km: u64| segment(from, to, km * 3600 / 90);
        let mut high_risk_hs_prefixes = vec!["2710".to_owned(), "2402".to_owned()];
        high_risk_hs_prefixes.extend((2203..=2208).map(|h: u32| h.to_string()));
        high_risk_hs_prefixes.extend((1507..=1517).map(|h: u32| h.to_string()));
        FraudConfig {
            overdue_grace_seconds: 86_400,
            mass_tolerance_bp: 200,
            mass_tolerance_g: 50_000,
            package_tolerance: 0,
            // The main corridors' legs: a road leg at 90 km/h over its road distance (faster
            // than any laden lorry averages), a border between juxtaposed or near posts at
            // 5 minutes. Lomé -> Cinkassé -> Ouagadougou (with the Bittou and Bobo-Dioulasso
            // branches), Cinkassé -> Fada N'Gourma -> Kantchari -> Makalondi -> Niamey / Dosso,
            // Abidjan -> Ferkessédougou -> Ouangolodougou | Niangoloko -> Bobo / Ouagadougou.
            segment_minimums: vec![
                segment("TG000101", "TGCIN001", 8 * 3600),
                segment("TGCIN001", "BFCIN001", 300),
                segment("BFCIN001", "BFOUA001", 3 * 3600 + 1800),
                road("BFCIN001", "BFKAN001", 380),
                road("BFCIN001", "BFBOB001", 650),
                road("BFCIN001", "BFBIT001", 45),
                road("BFBIT001", "BFOUA001", 280),
                road("BFCIN001", "BFFAD001", 230),
                road("BFFAD001", "BFKAN001", 150),
                road("BFKAN001", "NEMKL001", 50),
                road("NEMKL001", "NENIA001", 100),
                road("NEMKL001", "NEDSO001", 240),
                road("CIABJ001", "CIOGO001", 600),
                road("CIABJ001", "CIFER001", 560),
                road("CIFER001", "CIOGO001", 55),
                segment("CIOGO001", "BFNGK001", 300),
                road("BFNGK001", "BFOUA001", 490),
                road("BFNGK001", "BFBOB001", 130),
            ],
            segment_minimum_seconds_default: 1800,
            incidents_window_seconds: 30 * 86_400,
            incidents_count_min: 3,
            high_risk_hs_prefixes,
            weights: RiskWeights::default(),
        }
    }
}

impl FraudConfig {
    /// The minimum seconds for the segment `from -> to`.
    pub fn segment_minimum_seconds(&self, from: &OfficeCode, to: &OfficeCode) -> u64 {
        self.segment_minimums
            .iter()
            .find(|s| &s.from == from && &s.to == to)
            .map_or(self.segment_minimum_seconds_default, |s| s.seconds)
    }

    /// The configured prefix that makes `hs` high-risk, if any.
    pub fn high_risk_prefix(&self, hs: &HsCode) -> Option<&str> {
        self.high_risk_hs_prefixes
            .iter()
            .find(|p| !p.is_empty() && hs.as_str().starts_with(p.as_str()))
            .map(String::as_str)
    }
}
