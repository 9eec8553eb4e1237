//! The road network the simulator drives on: customs offices (with positions, for incident
//! places), routes (the declared offices in order), road distances, border dwell times, and
//! the detours and alternative destinations the diversion scenarios use.
//!
//! Distances are approximate road kilometres from public maps; travel times are derived from
//! them (a laden lorry averages 45 km/h, never sustains more than 75 km/h, and can take far
//! longer), so one table drives both the honest traffic and the recommended TOO_FAST minimums.

use serde::{Deserialize, Serialize};

/// A customs office of the simulated network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Office {
    /// Office code (an8: country code then 6 upper-case alphanumerics).
    pub code: &'static str,
    /// Name, for humans.
    pub name: &'static str,
    /// Latitude in degrees * 10^7.
    pub latitude_e7: i32,
    /// Longitude in degrees * 10^7.
    pub longitude_e7: i32,
}

/// Every office the simulator uses.
pub const OFFICES: [Office; 15] = [
    office("TG000101", "Lomé port", 61_300_000, 12_200_000),
    office("TGCIN001", "Cinkassé (Togo side)", 110_989_000, 41_000),
    office("BFCIN001", "Cinkassé (Burkina side)", 111_050_000, -20_000),
    office("BFOUA001", "Ouagadougou", 123_700_000, -15_200_000),
    office(
        "BFKAN001",
        "Kantchari (Burkina side)",
        124_800_000,
        15_200_000,
    ),
    office(
        "NEMKL001",
        "Makalondi (Niger side)",
        128_700_000,
        16_800_000,
    ),
    office("NENIA001", "Niamey", 135_100_000, 21_100_000),
    office("NEDSO001", "Dosso", 130_500_000, 31_900_000),
    office("CIABJ001", "Abidjan port", 53_200_000, -40_200_000),
    office(
        "CIOGO001",
        "Ouangolodougou (Côte d'Ivoire side)",
        99_700_000,
        -51_500_000,
    ),
    office(
        "BFNGK001",
        "Niangoloko (Burkina side)",
        102_800_000,
        -49_200_000,
    ),
    office("BFBOB001", "Bobo-Dioulasso", 111_800_000, -42_900_000),
    office("BFBIT001", "Bittou", 112_600_000, -3_000_000),
    office("BFFAD001", "Fada N'Gourma", 120_600_000, 3_600_000),
    office("CIFER001", "Ferkessédougou", 95_900_000, -52_000_000),
];

const fn office(code: &'static str, name: &'static str, lat: i32, lon: i32) -> Office {
    Office {
        code,
        name,
        latitude_e7: lat,
        longitude_e7: lon,
    }
}

/// The office with this code.
pub fn office_by_code(code: &str) -> Option<&'static Office> {
    OFFICES.iter().find(|o| o.code == code)
}

/// How a leg between two consecutive offices is travelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Leg {
    /// Open road of this many kilometres (plus any stop the distribution adds).
    Road { km: u32 },
    /// A border: both posts, juxtaposed or a few kilometres apart; the time is the dwell
    /// (queue, inspection, formalities), drawn from the configured border distribution.
    Border,
}

/// Road legs of the network: (from, to, km). Border legs are listed in [`BORDERS`].
const ROADS: [(&str, &str, u32); 16] = [
    ("TG000101", "TGCIN001", 650),
    ("BFCIN001", "BFOUA001", 290),
    ("BFCIN001", "BFKAN001", 380),
    ("NEMKL001", "NENIA001", 100),
    ("NEMKL001", "NEDSO001", 240),
    ("CIABJ001", "CIOGO001", 600),
    ("BFNGK001", "BFOUA001", 490),
    ("BFNGK001", "BFBOB001", 130),
    ("BFCIN001", "BFBOB001", 650),
    ("BFCIN001", "BFBIT001", 45),
    ("BFBIT001", "BFOUA001", 280),
    ("BFCIN001", "BFFAD001", 230),
    ("BFFAD001", "BFKAN001", 150),
    ("CIABJ001", "CIFER001", 560),
    ("CIFER001", "CIOGO001", 55),
    ("BFKAN001", "NEMKL001", 50),
];

/// Border legs (juxtaposed or near posts): (exit office, entry office).
const BORDERS: [(&str, &str); 2] = [("TGCIN001", "BFCIN001"), ("CIOGO001", "BFNGK001")];

/// The leg from `from` to `to`, if the network has one.
pub fn leg(from: &str, to: &str) -> Option<Leg> {
    if BORDERS.iter().any(|(a, b)| *a == from && *b == to) {
        return Some(Leg::Border);
    }
    ROADS
        .iter()
        .find(|(a, b, _)| *a == from && *b == to)
        .map(|(_, _, km)| Leg::Road { km: *km })
}

/// Every leg of the network, for the recommended fraud configuration.
pub fn legs() -> impl Iterator<Item = (&'static str, &'static str, Leg)> {
    BORDERS.iter().map(|(a, b)| (*a, *b, Leg::Border)).chain(
        ROADS
            .iter()
            .map(|(a, b, km)| (*a, *b, Leg::Road { km: *km })),
    )
}

/// A route: the offices a declaration names, in order (departure, offices of transit,
/// destination), with what the diversion scenarios may use on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    /// Stable name, e.g. `LOME-OUAGADOUGOU`.
    pub name: &'static str,
    /// Departure, offices of transit, destination.
    pub offices: &'static [&'static str],
    /// Countries of routing, in order.
    pub countries: &'static [&'static str],
    /// Days from declaration to the time limit.
    pub time_limit_days: i64,
    /// An undeclared office a detouring lorry passes, and the declared leg it sits on
    /// (index of the leg's first office in `offices`).
    pub detour: (&'static str, usize),
    /// Another office of the destination country (arrival elsewhere, destination change).
    pub other_destination: &'static str,
    /// Where goods declared for this route are dumped when the destination is changed after
    /// release (an office of a transit country), and the index of the last office still
    /// crossed before turning off; `None` when the dumping place is `other_destination`.
    pub dumped_at: Option<(&'static str, usize)>,
}

/// The simulated routes.
pub const ROUTES: [Route; 4] = [
    Route {
        name: "LOME-OUAGADOUGOU",
        offices: &["TG000101", "TGCIN001", "BFCIN001", "BFOUA001"],
        countries: &["TG", "BF"],
        time_limit_days: 8,
        detour: ("BFBIT001", 2),
        other_destination: "BFBOB001",
        dumped_at: None,
    },
    Route {
        name: "LOME-NIAMEY",
        offices: &[
            "TG000101", "TGCIN001", "BFCIN001", "BFKAN001", "NEMKL001", "NENIA001",
        ],
        countries: &["TG", "BF", "NE"],
        time_limit_days: 12,
        detour: ("BFFAD001", 2),
        other_destination: "NEDSO001",
        dumped_at: Some(("BFOUA001", 2)),
    },
    Route {
        name: "ABIDJAN-OUAGADOUGOU",
        offices: &["CIABJ001", "CIOGO001", "BFNGK001", "BFOUA001"],
        countries: &["CI", "BF"],
        time_limit_days: 10,
        detour: ("CIFER001", 0),
        other_destination: "BFBOB001",
        dumped_at: None,
    },
    Route {
        name: "ABIDJAN-BOBO-DIOULASSO",
        offices: &["CIABJ001", "CIOGO001", "BFNGK001", "BFBOB001"],
        countries: &["CI", "BF"],
        time_limit_days: 10,
        detour: ("CIFER001", 0),
        other_destination: "BFOUA001",
        dumped_at: None,
    },
];

/// A triangular distribution of minutes: `min <= mode <= max`. Sampled by its inverse CDF,
/// which needs only IEEE arithmetic and a square root (correctly rounded everywhere), so the
/// same seed gives the same minutes on every platform.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Triangular {
    pub min_minutes: u32,
    pub mode_minutes: u32,
    pub max_minutes: u32,
}

impl Triangular {
    /// A distribution; the arguments are sorted into min <= mode <= max.
    pub const fn new(min_minutes: u32, mode_minutes: u32, max_minutes: u32) -> Triangular {
        Triangular {
            min_minutes,
            mode_minutes,
            max_minutes,
        }
    }

    /// The minutes for a uniform draw `u` in [0, 1).
    pub fn minutes(&self, u: f64) -> i64 {
        let a = f64::from(self.min_minutes);
        let c = f64::from(self.mode_minutes.max(self.min_minutes));
        let b = f64::from(
            self.max_minutes
                .max(self.mode_minutes)
                .max(self.min_minutes),
        );
        if b <= a {
            return a as i64;
        }
        let split = (c - a) / (b - a);
        let x = if u < split {
            a + (u * (b - a) * (c - a)).sqrt()
        } else {
            b - ((1.0 - u) * (b - a) * (b - c)).sqrt()
        };
        // Never below the minimum: the honest traffic's floor is a promise.
        (x.floor() as i64).max(i64::from(self.min_minutes))
    }
}
