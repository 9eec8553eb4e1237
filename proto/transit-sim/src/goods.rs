//! The goods the simulated lorries carry: a small catalogue of what actually moves on these
//! corridors (rice, sugar, cement, fuel, used cars...), with HS codes, packaging, value per
//! kilogram and duty rate, and which of them customs treat as high-risk.

/// One kind of goods.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Goods {
    pub description: &'static str,
    pub hs_code: &'static str,
    /// UN/ECE Recommendation 21 package code.
    pub package_kind: &'static str,
    /// Gross grams per package; 0 for bulk goods (no packages).
    pub package_g: u64,
    /// Customs value in XOF per kilogram.
    pub value_xof_per_kg: i64,
    /// Duties and taxes at stake, in basis points of the customs value.
    pub duty_bp: i64,
    /// Fuel, cigarettes, alcohol, cooking oil: the goods of the documented fictitious-transit
    /// cases (DOMAIN.md), independent of any rule's configuration.
    pub high_risk: bool,
    /// Relative frequency in honest traffic.
    pub weight: u32,
}

// One positional constructor keeps the catalogue a readable table.
#[allow(clippy::too_many_arguments)]
const fn goods(
    description: &'static str,
    hs_code: &'static str,
    package_kind: &'static str,
    package_g: u64,
    value_xof_per_kg: i64,
    duty_bp: i64,
    high_risk: bool,
    weight: u32,
) -> Goods {
    Goods {
        description,
        hs_code,
        package_kind,
        package_g,
        value_xof_per_kg,
        duty_bp,
        high_risk,
        weight,
    }
}

/// The catalogue.
pub const CATALOGUE: [Goods; 13] = [
    goods(
        "Riz blanchi, sacs de 50 kg",
        "100630",
        "BG",
        50_500,
        350,
        1_500,
        false,
        14,
    ),
    goods(
        "Sucre cristallisé, sacs de 50 kg",
        "170199",
        "BG",
        50_300,
        450,
        2_000,
        false,
        8,
    ),
    goods(
        "Ciment Portland, sacs de 50 kg",
        "252329",
        "BG",
        50_200,
        90,
        1_000,
        false,
        12,
    ),
    goods(
        "Farine de froment, sacs de 50 kg",
        "110100",
        "BG",
        50_300,
        400,
        1_500,
        false,
        8,
    ),
    goods(
        "Engrais NPK, sacs de 50 kg",
        "310520",
        "BG",
        50_400,
        300,
        500,
        false,
        8,
    ),
    goods(
        "Véhicules de tourisme d'occasion",
        "870323",
        "NE",
        1_300_000,
        3_500,
        3_500,
        false,
        6,
    ),
    goods(
        "Tissus de coton imprimés, balles",
        "520852",
        "BL",
        100_000,
        2_500,
        2_000,
        false,
        6,
    ),
    goods(
        "Pneumatiques neufs pour camions",
        "401120",
        "NE",
        60_000,
        2_000,
        2_000,
        false,
        8,
    ),
    goods(
        "Gasoil, camion-citerne",
        "271019",
        "VL",
        0,
        600,
        3_000,
        true,
        12,
    ),
    goods(
        "Essence super sans plomb, camion-citerne",
        "271012",
        "VL",
        0,
        650,
        3_000,
        true,
        5,
    ),
    goods(
        "Huile de palme raffinée, bidons de 20 l",
        "151190",
        "JC",
        19_000,
        900,
        2_000,
        true,
        7,
    ),
    goods(
        "Cigarettes, cartons de 50 cartouches",
        "240220",
        "CT",
        12_000,
        25_000,
        4_000,
        true,
        3,
    ),
    goods(
        "Boissons spiritueuses, cartons de 12 bouteilles",
        "220830",
        "CT",
        14_000,
        4_000,
        4_500,
        true,
        3,
    ),
];
