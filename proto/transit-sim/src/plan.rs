//! Planning: every movement's parties, goods, lorry, route and times, the fraud scenarios
//! injected into some of them, and the guarantees sized to carry the traffic.

use std::collections::{BTreeMap, BTreeSet};

use fraud_signals::RuleId;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use transit_contract::ids::{CountryCode, Mrn, Timestamp};
use transit_contract::messages::IncidentCode;

use crate::goods::{Goods, CATALOGUE};
use crate::network::{self, Leg, Route, Triangular, ROUTES};
use crate::{GroundTruth, Role, Scenario, SimConfig, TruthEntry};

const MINUTE: i64 = 60_000;
const HOUR: i64 = 60 * MINUTE;
const DAY: i64 = 24 * HOUR;

/// The timestamp at `ms`, clamped into the representable range.
pub(crate) fn ts(ms: i64) -> Timestamp {
    Timestamp::from_unix_millis(ms)
        .or_else(|_| Timestamp::from_unix_millis(0))
        .expect("invariant: the Unix epoch is a valid timestamp")
}

/// A trader (holder or carrier).
#[derive(Debug, Clone)]
pub(crate) struct Party {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) country: &'static str,
    /// Holders only: the guarantee's reference amount in XOF.
    pub(crate) guarantee_xof: i64,
}

/// One goods item as loaded.
#[derive(Debug, Clone)]
pub(crate) struct Load {
    pub(crate) goods: &'static Goods,
    pub(crate) gross_g: u64,
    pub(crate) packages: u32,
}

/// What happened to the declaration at departure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fate {
    Released,
    Cancelled,
    Refused,
}

/// A checkpoint after departure on the path actually driven.
#[derive(Debug, Clone)]
pub(crate) struct Stop {
    pub(crate) office: &'static str,
    pub(crate) at_ms: i64,
    /// Whether the office records the passage (a missing-crossing fraud leaves it out).
    pub(crate) recorded: bool,
}

/// An incident en route.
#[derive(Debug, Clone)]
pub(crate) struct IncidentPlan {
    pub(crate) code: IncidentCode,
    pub(crate) at_ms: i64,
    /// The office that reports it (on the leg's country).
    pub(crate) office: &'static str,
    pub(crate) latitude_e7: i32,
    pub(crate) longitude_e7: i32,
    pub(crate) endorsed: bool,
    /// New seals put on by the endorsing authority (a re-sealing), if any.
    pub(crate) reseal: bool,
}

/// The plan of one movement.
#[derive(Debug, Clone)]
pub(crate) struct Movement {
    pub(crate) mrn: Mrn,
    pub(crate) route: &'static Route,
    pub(crate) holder: usize,
    pub(crate) carrier: usize,
    pub(crate) loads: Vec<Load>,
    pub(crate) seals: Vec<String>,
    pub(crate) container: Option<String>,
    pub(crate) declared_ms: i64,
    pub(crate) fate: Fate,
    /// Release, cancellation or refusal time.
    pub(crate) decided_ms: i64,
    /// Every checkpoint after departure; the last is the arrival when `arrives`.
    pub(crate) stops: Vec<Stop>,
    pub(crate) arrives: bool,
    pub(crate) control_ms: i64,
    pub(crate) discharge_ms: i64,
    pub(crate) plate: String,
    pub(crate) plate_country: &'static str,
    pub(crate) incidents: Vec<IncidentPlan>,
    pub(crate) destination_change: Option<(i64, &'static str)>,
    /// Seal tampering: from this stop index on (stops.len() = destination control only) the
    /// first seal reads as this counterfeit number.
    pub(crate) seal_swap: Option<(usize, String)>,
    pub(crate) control_seals_intact: bool,
    /// Mass found at control, as a ratio to the declared mass, in basis points; `None` when
    /// the lorry was not weighed.
    pub(crate) mass_found_bp: Option<i64>,
    pub(crate) packages_found_bp: i64,
    pub(crate) enquiry: bool,
    pub(crate) scenario: Option<(Scenario, Role, &'static str)>,
    pub(crate) expected: BTreeSet<RuleId>,
}

impl Movement {
    pub(crate) fn released_ms(&self) -> Option<i64> {
        (self.fate == Fate::Released).then_some(self.decided_ms)
    }

    pub(crate) fn arrival_ms(&self) -> Option<i64> {
        if self.fate != Fate::Released || !self.arrives {
            return None;
        }
        self.stops.last().map(|s| s.at_ms)
    }

    pub(crate) fn time_limit_ms(&self) -> i64 {
        self.declared_ms + self.route.time_limit_days * DAY
    }

    pub(crate) fn high_risk(&self) -> bool {
        self.loads.iter().any(|l| l.goods.high_risk)
    }

    pub(crate) fn gross_g(&self) -> u64 {
        self.loads.iter().map(|l| l.gross_g).sum()
    }

    pub(crate) fn packages(&self) -> u32 {
        self.loads.iter().map(|l| l.packages).sum()
    }

    pub(crate) fn customs_value_xof(&self) -> i64 {
        self.loads
            .iter()
            .map(|l| (l.gross_g as i64 / 1000) * l.goods.value_xof_per_kg)
            .sum()
    }

    pub(crate) fn at_stake_xof(&self) -> i64 {
        self.loads
            .iter()
            .map(|l| {
                (l.gross_g as i64 / 1000) * l.goods.value_xof_per_kg * l.goods.duty_bp / 10_000
            })
            .sum()
    }

    /// When the movement stops being "open" for its lorry and seals (arrival), or never.
    fn closes_ms(&self) -> i64 {
        self.arrival_ms().unwrap_or(i64::MAX)
    }

    fn is_plain(&self) -> bool {
        self.fate == Fate::Released && self.scenario.is_none() && self.incidents.is_empty()
    }
}

/// The whole plan.
#[derive(Debug, Clone)]
pub struct Plan {
    pub(crate) holders: Vec<Party>,
    pub(crate) carriers: Vec<Party>,
    pub(crate) movements: Vec<Movement>,
    pub(crate) end_ms: i64,
    /// Three characters of the seed in every identifier, so two simulations can share a log.
    pub(crate) tag: String,
}

/// Three base-36 characters of the seed.
fn seed_tag(seed: u64) -> String {
    const DIGITS: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";
    let mut n = seed % (36 * 36 * 36);
    let mut out = [b'0'; 3];
    for slot in out.iter_mut().rev() {
        *slot = DIGITS[(n % 36) as usize];
        n /= 36;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn tri(rng: &mut ChaCha8Rng, t: &Triangular) -> i64 {
    t.minutes(rng.gen::<f64>()) * MINUTE
}

/// Picks an index by integer weights.
fn weighted(rng: &mut ChaCha8Rng, weights: &[u32]) -> usize {
    let total: u64 = weights.iter().map(|w| u64::from(*w)).sum();
    let mut x = rng.gen_range(0..total.max(1));
    for (i, w) in weights.iter().enumerate() {
        if x < u64::from(*w) {
            return i;
        }
        x -= u64::from(*w);
    }
    weights.len().saturating_sub(1)
}

const NAME_FIRST: [&str; 16] = [
    "Sahel",
    "Faso",
    "Volta",
    "Atlantique",
    "Savane",
    "Golfe",
    "Niger",
    "Harmattan",
    "Baobab",
    "Karité",
    "Mono",
    "Oti",
    "Comoé",
    "Bani",
    "Mouhoun",
    "Lagune",
];
const NAME_SECOND: [&str; 8] = [
    "Transit",
    "Logistique",
    "Négoce",
    "Import-Export",
    "Distribution",
    "Commerce",
    "Services",
    "Trading",
];
const NAME_SUFFIX: [&str; 5] = ["SARL", "SA", "SAS", "et Fils", "GIE"];
const CARRIER_FIRST: [&str; 5] = [
    "Transports",
    "Société de Transport",
    "Trans",
    "Compagnie Routière",
    "Express",
];

fn party_name(rng: &mut ChaCha8Rng, carrier: bool) -> String {
    let first = NAME_FIRST[rng.gen_range(0..NAME_FIRST.len())];
    if carrier {
        let kind = CARRIER_FIRST[rng.gen_range(0..CARRIER_FIRST.len())];
        let suffix = NAME_SUFFIX[rng.gen_range(0..NAME_SUFFIX.len())];
        format!("{kind} {first} {suffix}")
    } else {
        let second = NAME_SECOND[rng.gen_range(0..NAME_SECOND.len())];
        let suffix = NAME_SUFFIX[rng.gen_range(0..NAME_SUFFIX.len())];
        format!("{first} {second} {suffix}")
    }
}

/// Route shares: Lomé-Ouagadougou, Lomé-Niamey, Abidjan-Ouagadougou, Abidjan-Bobo.
const ROUTE_WEIGHTS: [u32; 4] = [45, 20, 20, 15];
/// Carrier nationalities and shares.
const CARRIER_COUNTRIES: [(&str, u32); 4] = [("BF", 50), ("TG", 25), ("NE", 10), ("CI", 15)];

fn plate(country: &str, n: u32) -> String {
    let letter = |k: u32| char::from(b'A' + (k % 26) as u8);
    format!(
        "{country} {:04} {}{}",
        n % 10_000,
        letter(n / 10_000 / 26),
        letter(n / 10_000)
    )
}

/// The minutes of one leg for an honest lorry.
fn leg_ms(rng: &mut ChaCha8Rng, config: &SimConfig, from: &str, to: &str) -> i64 {
    let t = &config.timing;
    let base = match network::leg(from, to) {
        Some(Leg::Border) => tri(rng, &t.border_dwell),
        Some(Leg::Road { km }) => {
            let minutes = |speed: u32| km * 60 / speed.max(1);
            tri(
                rng,
                &Triangular::new(
                    minutes(t.road_speed_kmh_max),
                    minutes(t.road_speed_kmh_mode),
                    minutes(t.road_speed_kmh_min),
                ),
            )
        }
        // Not a leg of the network (a path cut short): a long road.
        None => tri(rng, &Triangular::new(600, 900, 1_800)),
    };
    let breakdown = if rng.gen::<f64>() < t.breakdown_probability {
        tri(rng, &t.breakdown)
    } else {
        0
    };
    base + breakdown
}

/// Times the path `offices` (departure first) from `released_ms`.
fn drive(
    rng: &mut ChaCha8Rng,
    config: &SimConfig,
    offices: &[&'static str],
    released_ms: i64,
) -> Vec<Stop> {
    let mut at = released_ms;
    let mut stops = Vec::with_capacity(offices.len());
    for w in offices.windows(2) {
        at += leg_ms(rng, config, w[0], w[1]);
        stops.push(Stop {
            office: w[1],
            at_ms: at,
            recorded: true,
        });
    }
    stops
}

fn new_loads(rng: &mut ChaCha8Rng, high_risk_only: bool) -> Vec<Load> {
    let pool: Vec<&'static Goods> = CATALOGUE
        .iter()
        .filter(|g| !high_risk_only || g.high_risk)
        .collect();
    let weights: Vec<u32> = pool.iter().map(|g| g.weight).collect();
    let first = pool[weighted(rng, &weights)];
    let total_g: u64 = rng.gen_range(20_000_000..=34_000_000);
    let kinds = if first.package_g == 0 {
        1
    } else {
        rng.gen_range(1..=3)
    };
    let mut chosen = vec![first];
    for _ in 1..kinds {
        let g = pool[weighted(rng, &weights)];
        if g.package_g != 0 && !chosen.iter().any(|c| c.hs_code == g.hs_code) {
            chosen.push(g);
        }
    }
    let share = total_g / chosen.len() as u64;
    chosen
        .into_iter()
        .map(|g| {
            if let Some(per_package) = share.checked_div(g.package_g) {
                let packages = per_package.max(1);
                Load {
                    goods: g,
                    gross_g: packages * g.package_g,
                    packages: u32::try_from(packages).unwrap_or(u32::MAX),
                }
            } else {
                // Bulk goods (a tanker): no packages.
                Load {
                    goods: g,
                    gross_g: share,
                    packages: 0,
                }
            }
        })
        .collect()
}

/// Plans the simulation.
pub(crate) fn plan(config: &SimConfig) -> Plan {
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    let tag = seed_tag(config.seed);
    let n = config.movements as usize;

    // Parties: holders established in the departure countries, carriers across the corridor.
    let holder_count = (n / 25).clamp(8, 5_000);
    let mut holders = Vec::with_capacity(holder_count);
    for k in 0..holder_count {
        // About two thirds of the traffic leaves from Lomé.
        let country = if k % 3 == 2 { "CI" } else { "TG" };
        holders.push(Party {
            id: format!("{country}1{:09}", k + 1),
            name: party_name(&mut rng, false),
            country,
            guarantee_xof: 0,
        });
    }
    let carrier_count = (n / 40).clamp(6, 3_000);
    let carrier_weights: Vec<u32> = CARRIER_COUNTRIES.iter().map(|(_, w)| *w).collect();
    let mut carriers = Vec::with_capacity(carrier_count);
    for k in 0..carrier_count {
        let country = CARRIER_COUNTRIES[weighted(&mut rng, &carrier_weights)].0;
        carriers.push(Party {
            id: format!("{country}-TRANS-{:05}", k + 1),
            name: party_name(&mut rng, true),
            country,
            guarantee_xof: 0,
        });
    }
    // Trade is concentrated but not extremely: weight 1/sqrt(rank).
    let rank_weight = |k: usize| (1_000_000.0 / ((k + 1) as f64).sqrt()) as u32;
    let by_country = |country: &str| -> (Vec<usize>, Vec<u32>) {
        let ids: Vec<usize> = (0..holders.len())
            .filter(|k| holders[*k].country == country)
            .collect();
        let weights = ids
            .iter()
            .enumerate()
            .map(|(r, _)| rank_weight(r))
            .collect();
        (ids, weights)
    };
    let tg_holders = by_country("TG");
    let ci_holders = by_country("CI");
    let carrier_rank: Vec<u32> = (0..carriers.len()).map(rank_weight).collect();

    let spacing = DAY / i64::from(config.movements_per_day);
    let start = config.start.unix_millis();
    let mut counters: BTreeMap<&str, u32> = BTreeMap::new();
    let mut movements = Vec::with_capacity(n);
    for i in 0..n {
        let mut r = ChaCha8Rng::seed_from_u64(config.seed);
        r.set_stream(i as u64 + 1);
        let route = &ROUTES[weighted(&mut r, &ROUTE_WEIGHTS)];
        let departure = route.offices[0];
        let country = &departure[..2];
        let (ids, weights) = if country == "CI" {
            &ci_holders
        } else {
            &tg_holders
        };
        let holder = ids[weighted(&mut r, weights)];
        let carrier = weighted(&mut r, &carrier_rank);
        let declared_ms = start + i as i64 * spacing + r.gen_range(0..spacing.max(1));
        let year = ts(declared_ms).as_offset_date_time().year().rem_euclid(100) as u8;
        let prefix = if country == "CI" { "AB" } else { "LO" };
        let mrn = CountryCode::try_from(country)
            .and_then(|c| Mrn::from_parts(year, c, &format!("{prefix}{tag}{i:08}")))
            .expect("invariant: a simulated MRN is well formed");
        let loads = new_loads(&mut r, false);
        let seal_count = if loads[0].goods.package_g == 0 {
            r.gen_range(3..=5)
        } else {
            r.gen_range(1..=2)
        };
        let seal_counter = counters.entry(country).or_insert(0);
        let seals = (0..seal_count)
            .map(|_| {
                *seal_counter += 1;
                format!("{country}S{tag}{:08}", *seal_counter)
            })
            .collect();
        let container = (loads[0].goods.package_g != 0 && r.gen_bool(0.7)).then(|| {
            const OWNERS: [&str; 5] = ["MSCU", "MAEU", "CMAU", "HLXU", "ONEU"];
            format!(
                "{}{:07}",
                OWNERS[r.gen_range(0..OWNERS.len())],
                r.gen_range(0..10_000_000)
            )
        });
        let fate = {
            let x = r.gen::<f64>();
            if x < config.cancel_rate {
                Fate::Cancelled
            } else if x < config.cancel_rate + config.no_release_rate {
                Fate::Refused
            } else {
                Fate::Released
            }
        };
        let decided_ms = declared_ms + tri(&mut r, &config.timing.release_after_declaration);
        let stops = if fate == Fate::Released {
            drive(&mut r, config, route.offices, decided_ms)
        } else {
            Vec::new()
        };
        let arrival = stops.last().map_or(decided_ms, |s| s.at_ms);
        let control_ms = arrival + tri(&mut r, &config.timing.control_after_arrival);
        let discharge_ms = control_ms + tri(&mut r, &config.timing.discharge_after_control);
        let mass_found_bp = (r.gen::<f64>() < 0.9).then(|| 10_000 + r.gen_range(-120..=120));
        movements.push(Movement {
            mrn,
            route,
            holder,
            carrier,
            loads,
            seals,
            container,
            declared_ms,
            fate,
            decided_ms,
            stops,
            arrives: true,
            control_ms,
            discharge_ms,
            plate: String::new(),
            plate_country: carriers[carrier].country,
            incidents: Vec::new(),
            destination_change: None,
            seal_swap: None,
            control_seals_intact: true,
            mass_found_bp,
            packages_found_bp: 10_000,
            enquiry: false,
            scenario: None,
            expected: BTreeSet::new(),
        });
    }

    inject_scenarios(config, &mut rng, &mut movements);
    honest_incidents(config, &mut movements);
    assign_lorries(config, &mut movements, &carriers);
    size_guarantees(&movements, &mut holders);
    label_repeated_incidents(&mut movements);
    for m in &mut movements {
        if m.high_risk() && !m.expected.is_empty() {
            m.expected.insert(RuleId::HighRiskGoods);
        }
    }
    let end_ms = movements
        .iter()
        .map(|m| {
            let last = m
                .stops
                .iter()
                .map(|s| s.at_ms)
                .chain([m.discharge_ms, m.decided_ms])
                .max()
                .unwrap_or(m.declared_ms);
            (last + 2 * DAY).max(m.time_limit_ms() + 2 * DAY)
        })
        .max()
        .unwrap_or(start);
    let end_ms = (end_ms + HOUR - 1).div_euclid(HOUR) * HOUR;
    Plan {
        holders,
        carriers,
        movements,
        end_ms,
        tag,
    }
}

/// An incident on a road leg of `m`'s path, reported by the office at the leg's end.
fn incident_on_leg(
    r: &mut ChaCha8Rng,
    m: &Movement,
    code: IncidentCode,
    endorsed: bool,
    reseal: bool,
) -> Option<IncidentPlan> {
    let mut path = vec![(m.route.offices[0], m.decided_ms)];
    path.extend(m.stops.iter().map(|s| (s.office, s.at_ms)));
    let candidates: Vec<usize> = (1..path.len())
        .filter(|k| {
            let (a, b) = (path[k - 1].0, path[*k].0);
            a[..2] == b[..2] && matches!(network::leg(a, b), Some(Leg::Road { .. }))
        })
        .collect();
    let k = *candidates.get(r.gen_range(0..candidates.len().max(1)))?;
    let ((a, t0), (b, t1)) = (path[k - 1], path[k]);
    let permille = r.gen_range(100..900_i64);
    let (oa, ob) = (network::office_by_code(a)?, network::office_by_code(b)?);
    let lerp = |x: i32, y: i32| {
        let v = i64::from(x) + (i64::from(y) - i64::from(x)) * permille / 1000;
        i32::try_from(v).unwrap_or(x)
    };
    Some(IncidentPlan {
        code,
        at_ms: t0 + (t1 - t0) * permille / 1000,
        office: b,
        latitude_e7: lerp(oa.latitude_e7, ob.latitude_e7),
        longitude_e7: lerp(oa.longitude_e7, ob.longitude_e7),
        endorsed,
        reseal,
    })
}

/// An incident an honest lorry may have: an accident, a breakdown, or seals broken and
/// replaced by the customs (endorsed).
fn ordinary_incident(r: &mut ChaCha8Rng, m: &Movement) -> Option<IncidentPlan> {
    match r.gen_range(0..3) {
        0 => incident_on_leg(r, m, IncidentCode::Accident, true, false),
        1 => {
            let endorsed = r.gen_bool(0.5);
            incident_on_leg(r, m, IncidentCode::Other, endorsed, false)
        }
        _ => incident_on_leg(r, m, IncidentCode::SealsBroken, true, true),
    }
}

fn inject_scenarios(config: &SimConfig, rng: &mut ChaCha8Rng, movements: &mut [Movement]) {
    let wanted = (f64::from(config.movements) * config.fraud_rate).round() as usize;
    if wanted == 0 {
        return;
    }
    let mut order: Vec<usize> = (0..movements.len())
        .filter(|i| movements[*i].fate == Fate::Released)
        .collect();
    order.shuffle(rng);
    let mut used = vec![false; movements.len()];
    let mut injected = 0;
    let mut next = 0;
    for &i in &order {
        if injected == wanted {
            break;
        }
        if used[i] {
            continue;
        }
        let scenario = Scenario::ALL[next % Scenario::ALL.len()];
        let mut r = ChaCha8Rng::seed_from_u64(config.seed ^ 0x5CE7_A810);
        r.set_stream(i as u64);
        if inject(config, &mut r, movements, &mut used, i, scenario) {
            injected += 1;
            next += 1;
        }
    }
}

fn mark(m: &mut Movement, scenario: Scenario, role: Role, variant: &'static str, rules: &[RuleId]) {
    m.scenario = Some((scenario, role, variant));
    m.expected.extend(rules.iter().copied());
}

/// Injects `scenario` into movement `i`; false when it cannot host it (no partner...).
fn inject(
    config: &SimConfig,
    r: &mut ChaCha8Rng,
    movements: &mut [Movement],
    used: &mut [bool],
    i: usize,
    scenario: Scenario,
) -> bool {
    // Fraud concentrates on high-duty goods: half the anchors carry them.
    if r.gen_bool(0.5) {
        movements[i].loads = new_loads(r, true);
    }
    let rule = scenario.rule();
    match scenario {
        Scenario::SharedVehicle | Scenario::SharedSeal => {
            let released = movements[i].decided_ms;
            let lo = i.saturating_sub(2_000);
            let candidates: Vec<usize> = (lo..i)
                .filter(|&a| {
                    let p = &movements[a];
                    !used[a]
                        && p.is_plain()
                        && p.released_ms().is_some_and(|t| t + HOUR <= released)
                        && p.arrival_ms().is_some_and(|t| released + 3 * HOUR <= t)
                })
                .collect();
            let Some(&a) = candidates.get(r.gen_range(0..candidates.len().max(1))) else {
                return false;
            };
            used[a] = true;
            used[i] = true;
            if scenario == Scenario::SharedSeal {
                let seal = movements[a].seals[0].clone();
                movements[i].seals[0] = seal;
            }
            let variant = if scenario == Scenario::SharedVehicle {
                "lorry-on-two-open-movements"
            } else {
                "seal-on-two-open-movements"
            };
            mark(&mut movements[a], scenario, Role::Partner, variant, &[rule]);
            // The lorry itself is set when lorries are assigned (it must be the partner's).
            let m = &mut movements[i];
            mark(m, scenario, Role::Anchor, variant, &[rule]);
            m.seal_swap = None;
            if scenario == Scenario::SharedVehicle {
                m.plate = format!("#{a}");
            }
            true
        }
        Scenario::RepeatedIncidents => {
            let holder = movements[i].holder;
            let window = movements[i].decided_ms + 20 * DAY;
            let group: Vec<usize> = (i + 1..movements.len())
                .take_while(|&j| movements[j].declared_ms <= window)
                .filter(|&j| !used[j] && movements[j].holder == holder && movements[j].is_plain())
                .take(r.gen_range(2..=3))
                .collect();
            if group.len() < 2 {
                return false;
            }
            let mut placed = Vec::new();
            for &j in group.iter().chain([&i]) {
                let Some(incident) = ordinary_incident(r, &movements[j]) else {
                    return false;
                };
                placed.push((j, incident));
            }
            for (j, incident) in placed {
                used[j] = true;
                let role = if j == i { Role::Anchor } else { Role::Member };
                let m = &mut movements[j];
                m.incidents.push(incident);
                mark(m, scenario, role, "three-incidents-in-a-month", &[rule]);
            }
            true
        }
        _ => {
            used[i] = true;
            single(config, r, &mut movements[i], scenario)
        }
    }
}

/// Scenarios that touch one movement only.
fn single(config: &SimConfig, r: &mut ChaCha8Rng, m: &mut Movement, scenario: Scenario) -> bool {
    let rule = scenario.rule();
    let route = m.route;
    match scenario {
        Scenario::Overdue => {
            let transit = m.stops.len().saturating_sub(1);
            let (keep, variant) = match r.gen_range(0..3) {
                0 => (0, "never-left"),
                1 => (1.min(transit), "vanished-after-exit"),
                _ => (transit, "vanished-before-destination"),
            };
            m.stops.truncate(keep);
            m.arrives = false;
            m.enquiry = r.gen_bool(0.5);
            mark(m, scenario, Role::Anchor, variant, &[rule]);
        }
        Scenario::MissingCrossing => {
            let transit = m.stops.len().saturating_sub(1);
            let variant = if r.gen_bool(0.5) {
                for s in &mut m.stops[..transit] {
                    s.recorded = false;
                }
                "no-border-record"
            } else {
                let k = r.gen_range(0..transit.max(1));
                if let Some(s) = m.stops.get_mut(k) {
                    s.recorded = false;
                }
                "one-border-record-missing"
            };
            mark(m, scenario, Role::Anchor, variant, &[rule]);
        }
        Scenario::Diversion => {
            let mut offices: Vec<&'static str> = route.offices.to_vec();
            match r.gen_range(0..4) {
                0 => {
                    // Destination changed after release.
                    let (to, rules, last_kept) = match route.dumped_at {
                        Some((office, k)) => {
                            (office, vec![RuleId::Diversion, RuleId::MissingCrossing], k)
                        }
                        None => (
                            route.other_destination,
                            vec![RuleId::Diversion],
                            offices.len() - 2,
                        ),
                    };
                    offices.truncate(last_kept + 1);
                    offices.push(to);
                    m.stops = drive(r, config, &offices, m.decided_ms);
                    let change = m.decided_ms
                        + (m.stops.last().map_or(m.decided_ms, |s| s.at_ms) - m.decided_ms) / 3;
                    m.destination_change = Some((change, to));
                    mark(m, scenario, Role::Anchor, "destination-changed", &rules);
                }
                1 => {
                    let last = offices.len() - 1;
                    offices[last] = route.other_destination;
                    m.stops = drive(r, config, &offices, m.decided_ms);
                    mark(m, scenario, Role::Anchor, "arrived-elsewhere", &[rule]);
                }
                2 => {
                    let (detour, after) = route.detour;
                    offices.insert(after + 1, detour);
                    m.stops = drive(r, config, &offices, m.decided_ms);
                    mark(m, scenario, Role::Anchor, "undeclared-office", &[rule]);
                }
                _ => {
                    let endorsed = r.gen_bool(0.5);
                    let Some(incident) =
                        incident_on_leg(r, m, IncidentCode::Deviation, endorsed, false)
                    else {
                        return false;
                    };
                    m.incidents.push(incident);
                    mark(m, scenario, Role::Anchor, "deviation-incident", &[rule]);
                }
            }
            m.control_ms = m.stops.last().map_or(m.control_ms, |s| s.at_ms)
                + tri(r, &config.timing.control_after_arrival);
            m.discharge_ms = m.control_ms + tri(r, &config.timing.discharge_after_control);
        }
        Scenario::SealMismatch => {
            let transit = m.stops.len().saturating_sub(1);
            let counterfeit = format!("{}X", m.seals[0]);
            let variant = match r.gen_range(0..4) {
                0 => {
                    m.control_seals_intact = false;
                    "broken-at-destination"
                }
                1 => {
                    m.seal_swap = Some((m.stops.len(), counterfeit));
                    "replaced-before-destination"
                }
                2 => {
                    m.seal_swap = Some((r.gen_range(1..=transit.max(1)).min(transit), counterfeit));
                    "replaced-before-border"
                }
                _ => {
                    let Some(incident) =
                        incident_on_leg(r, m, IncidentCode::SealsBroken, false, false)
                    else {
                        return false;
                    };
                    m.incidents.push(incident);
                    "broken-en-route-not-replaced"
                }
            };
            mark(m, scenario, Role::Anchor, variant, &[rule]);
        }
        Scenario::QuantityDiscrepancy => {
            let (bp, variant) = if r.gen_bool(0.6) {
                (r.gen_range(6_000..=9_500), "goods-missing")
            } else {
                (r.gen_range(10_800..=13_000), "under-declared")
            };
            m.mass_found_bp = Some(bp);
            m.packages_found_bp = bp;
            mark(m, scenario, Role::Anchor, variant, &[rule]);
        }
        Scenario::TooFast => {
            // One road leg "driven" at 15-45 % of the fastest honest time: the paper moved.
            let mut path = vec![(route.offices[0], m.decided_ms)];
            path.extend(m.stops.iter().map(|s| (s.office, s.at_ms)));
            let roads: Vec<(usize, u32)> = (1..path.len())
                .filter_map(|k| match network::leg(path[k - 1].0, path[k].0) {
                    Some(Leg::Road { km }) if km >= 100 => Some((k, km)),
                    _ => None,
                })
                .collect();
            let Some(&(k, km)) = roads.get(r.gen_range(0..roads.len().max(1))) else {
                return false;
            };
            let fastest = i64::from(km * 60 / config.timing.road_speed_kmh_max.max(1)) * MINUTE;
            let took = fastest * r.gen_range(15..=45) / 100;
            let saved = (path[k].1 - path[k - 1].1) - took;
            for s in &mut m.stops[k - 1..] {
                s.at_ms -= saved;
            }
            m.control_ms -= saved;
            m.discharge_ms -= saved;
            mark(
                m,
                scenario,
                Role::Anchor,
                "leg-faster-than-a-lorry",
                &[rule],
            );
        }
        Scenario::SharedVehicle | Scenario::SharedSeal | Scenario::RepeatedIncidents => {
            return false
        }
    }
    true
}

/// Honest incidents: rare, and never for a holder already in a repeated-incidents scenario
/// (its incidents are the pattern).
fn honest_incidents(config: &SimConfig, movements: &mut [Movement]) {
    let culprits: BTreeSet<usize> = movements
        .iter()
        .filter(|m| matches!(m.scenario, Some((Scenario::RepeatedIncidents, _, _))))
        .map(|m| m.holder)
        .collect();
    for (i, m) in movements.iter_mut().enumerate() {
        if !m.is_plain() || culprits.contains(&m.holder) {
            continue;
        }
        let mut r = ChaCha8Rng::seed_from_u64(config.seed ^ 0x1AC1_DE47);
        r.set_stream(i as u64);
        if r.gen::<f64>() < config.incident_rate {
            if let Some(incident) = ordinary_incident(&mut r, m) {
                m.incidents.push(incident);
            }
        }
    }
}

/// "Repeated incidents" is a fact about a party (a holder or a carrier), not a movement: once
/// the simulation's incidents are all placed, every movement with an incident whose holder or
/// carrier had at least three incidents within a month (the DOMAIN.md pattern) is labelled,
/// whichever scenario (or honest bad luck) put the incidents there.
fn label_repeated_incidents(movements: &mut [Movement]) {
    const COUNT_MIN: usize = 3;
    const WINDOW_MS: i64 = 30 * DAY;
    let mut by_party: BTreeMap<(bool, usize), Vec<(i64, usize)>> = BTreeMap::new();
    for (i, m) in movements.iter().enumerate() {
        for inc in &m.incidents {
            by_party
                .entry((true, m.holder))
                .or_default()
                .push((inc.at_ms, i));
            by_party
                .entry((false, m.carrier))
                .or_default()
                .push((inc.at_ms, i));
        }
    }
    let mut flagged = BTreeSet::new();
    for list in by_party.values_mut() {
        list.sort_unstable();
        for start in 0..list.len() {
            let end = list[start..]
                .iter()
                .take_while(|(t, _)| *t - list[start].0 <= WINDOW_MS)
                .count();
            if end >= COUNT_MIN {
                flagged.extend(list[start..start + end].iter().map(|(_, i)| *i));
            }
        }
    }
    for i in flagged {
        let m = &mut movements[i];
        m.expected.insert(RuleId::RepeatedIncidents);
        if m.scenario.is_none() {
            m.scenario = Some((
                Scenario::RepeatedIncidents,
                Role::Member,
                "party-with-repeated-incidents",
            ));
        }
    }
}

/// Gives every movement a lorry of its carrier that is not on another open movement (the
/// shared-vehicle fraud excepted), so honest traffic never shares a plate.
fn assign_lorries(config: &SimConfig, movements: &mut [Movement], carriers: &[Party]) {
    let mut order: Vec<usize> = (0..movements.len()).collect();
    order.sort_by_key(|&i| (movements[i].decided_ms, i));
    // Per carrier: (free from, plate); per nationality, plates handed out.
    let mut fleets: Vec<Vec<(i64, String)>> = vec![Vec::new(); carriers.len()];
    let mut plates: BTreeMap<&str, u32> = BTreeMap::new();
    let mut plate_fleet: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for &i in &order {
        let mut r = ChaCha8Rng::seed_from_u64(config.seed ^ 0x7D0C_4A11);
        r.set_stream(i as u64);
        let carrier = movements[i].carrier;
        let released = movements[i].released_ms();
        let free_from = match released {
            Some(_) => movements[i]
                .closes_ms()
                .saturating_add(tri(&mut r, &config.timing.return_trip)),
            None => i64::MIN,
        };
        if let Some(partner) = movements[i].plate.strip_prefix('#') {
            // Shared-vehicle fraud: the partner's lorry, busy until both movements close.
            let partner: usize = partner.parse().unwrap_or(i);
            let plate = movements[partner].plate.clone();
            if let Some(&(c, k)) = plate_fleet.get(&plate) {
                let slot = &mut fleets[c][k];
                slot.0 = slot.0.max(free_from);
            }
            movements[i].plate_country = movements[partner].plate_country;
            movements[i].plate = plate;
            continue;
        }
        let now = released.unwrap_or(movements[i].decided_ms);
        let fleet = &mut fleets[carrier];
        let k = match fleet.iter().position(|(free, _)| *free <= now) {
            Some(k) => k,
            None => {
                let country = carriers[carrier].country;
                let n = plates.entry(country).or_insert(0);
                *n += 1;
                let p = plate(country, *n);
                plate_fleet.insert(p.clone(), (carrier, fleet.len()));
                fleet.push((i64::MIN, p));
                fleet.len() - 1
            }
        };
        if released.is_some() {
            fleet[k].0 = free_from;
        }
        movements[i].plate = fleet[k].1.clone();
        movements[i].plate_country = carriers[carrier].country;
    }
}

/// Each holder's guarantee covers its largest concurrent exposure with a quarter to spare,
/// rounded up to 10 million XOF (at least 50 million): a release never exceeds it.
fn size_guarantees(movements: &[Movement], holders: &mut [Party]) {
    let mut changes: Vec<Vec<(i64, i64)>> = vec![Vec::new(); holders.len()];
    for m in movements {
        let Some(released) = m.released_ms() else {
            continue;
        };
        let amount = m.at_stake_xof();
        changes[m.holder].push((released, amount));
        if m.arrives {
            // Released at discharge; a late delivery may hold it a little longer.
            changes[m.holder].push((m.discharge_ms + 2 * DAY, -amount));
        }
    }
    for (h, list) in changes.iter_mut().enumerate() {
        list.sort_unstable();
        let mut exposure = 0_i64;
        let mut peak = 0_i64;
        for (_, delta) in list.iter() {
            exposure += delta;
            peak = peak.max(exposure);
        }
        let step = 10_000_000;
        let wanted = peak + peak / 4;
        holders[h].guarantee_xof = ((wanted + step - 1) / step * step).max(50_000_000);
    }
}

/// The ground truth of the plan.
pub(crate) fn truth(config: &SimConfig, plan: &Plan) -> GroundTruth {
    GroundTruth {
        seed: config.seed,
        fraud_rate: config.fraud_rate,
        start: config.start,
        end: ts(plan.end_ms),
        movements: plan
            .movements
            .iter()
            .map(|m| TruthEntry {
                mrn: m.mrn.clone(),
                route: m.route.name.to_owned(),
                scenario: m.scenario.map(|s| s.0),
                role: m.scenario.map(|s| s.1),
                variant: m.scenario.map(|s| s.2.to_owned()),
                expected: m.expected.iter().copied().collect(),
            })
            .collect(),
    }
}
