//! Realistic, deterministic messages for one complete Lomé -> Cinkassé -> Ouagadougou journey,
//! shared by the tests of every crate (rules, store, HTTP API, simulator).
//!
//! Everything is derived from a base time and a serial number, so two calls with the same
//! arguments give byte-identical messages, and different serials give unrelated movements.

use time::Duration;

use crate::ids::{
    CountryCode, Currency, GuaranteeReference, MessageId, Money, Mrn, OfficeCode, Timestamp,
};
use crate::messages::{
    ArrivalNotification, BorderCrossing, ControlResults, DeclarationType, Discharge, GoodsItem,
    GuaranteeRegistration, InboundMessage, MeansOfTransport, MessageBody, OfficeOfTransit,
    Packaging, Party, ReleaseForTransit, Sender, Trader, TransitDeclaration, TransportEquipment,
    TransportMode,
};

/// Lomé port, office of departure in the fixtures.
pub const LOME_PORT: &str = "TG000101";
/// Cinkassé joint border post, Togolese side.
pub const CINKASSE_TG: &str = "TGCIN001";
/// Cinkassé joint border post, Burkinabè side.
pub const CINKASSE_BF: &str = "BFCIN001";
/// Ouagadougou, office of destination in the fixtures.
pub const OUAGADOUGOU: &str = "BFOUA001";

/// The guarantee's reference amount: 50,000,000 XOF.
pub const REFERENCE_AMOUNT_XOF: i64 = 50_000_000;
/// The duties at stake of one fixture movement: 12,500,000 XOF.
pub const AMOUNT_AT_STAKE_XOF: i64 = 12_500_000;
/// The customs value of one fixture movement: 85,000,000 XOF.
pub const CUSTOMS_VALUE_XOF: i64 = 85_000_000;

/// One complete journey, message by message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Journey {
    pub mrn: Mrn,
    pub grn: GuaranteeReference,
    pub guarantee_registration: InboundMessage,
    pub declaration: InboundMessage,
    pub release: InboundMessage,
    /// Exit from Togo at Cinkassé, then entry into Burkina Faso at Cinkassé.
    pub crossings: Vec<InboundMessage>,
    pub arrival: InboundMessage,
    pub control_results: InboundMessage,
    pub discharge: InboundMessage,
}

impl Journey {
    /// Every message in the order a well-behaved network would deliver them.
    pub fn messages(&self) -> Vec<InboundMessage> {
        let mut out = vec![
            self.guarantee_registration.clone(),
            self.declaration.clone(),
            self.release.clone(),
        ];
        out.extend(self.crossings.iter().cloned());
        out.push(self.arrival.clone());
        out.push(self.control_results.clone());
        out.push(self.discharge.clone());
        out
    }

    /// The declaration body of the journey.
    pub fn declaration_body(&self) -> &TransitDeclaration {
        match &self.declaration.body {
            MessageBody::TransitDeclaration(d) => d,
            _ => unreachable!("invariant: Journey::declaration is a TransitDeclaration"),
        }
    }
}

/// The messages of [`journey`], in order.
pub fn journey_messages(base: Timestamp, serial: u32) -> Vec<InboundMessage> {
    journey(base, serial).messages()
}

/// Parses a literal that is valid by construction in this module.
fn lit<T: std::str::FromStr>(s: &str) -> T
where
    T::Err: std::fmt::Debug,
{
    s.parse()
        .unwrap_or_else(|e| panic!("invariant: fixture literal {s:?} is valid: {e:?}"))
}

fn at(base: Timestamp, minutes: i64) -> Timestamp {
    base.checked_add(Duration::minutes(minutes)).unwrap_or(base)
}

fn xof(amount: i64) -> Money {
    Money::new(amount, Currency::xof()).expect("invariant: fixture amounts are non-negative")
}

fn sender(office: &str) -> Sender {
    let office: OfficeCode = lit(office);
    Sender {
        country: office.country(),
        office,
    }
}

fn message(
    serial: u32,
    step: &str,
    office: &str,
    sent_at: Timestamp,
    body: MessageBody,
) -> InboundMessage {
    InboundMessage {
        message_id: lit::<MessageId>(&format!("FX-{serial:08}-{step}")),
        correlation_id: None,
        sender: sender(office),
        sent_at,
        body,
    }
}

/// The MRN of the fixture movement with this serial (departure from Togo).
pub fn mrn(base: Timestamp, serial: u32) -> Mrn {
    let year = (base.as_offset_date_time().year().rem_euclid(100)) as u8;
    Mrn::from_parts(year, lit::<CountryCode>("TG"), &format!("LOME{serial:09}"))
        .expect("invariant: a fixture MRN is well formed")
}

/// The GRN of the fixture guarantee with this serial (a Togolese guarantor).
pub fn grn(base: Timestamp, serial: u32) -> GuaranteeReference {
    let year = base.as_offset_date_time().year().rem_euclid(100);
    lit(&format!("{year:02}TGGAR{serial:010}"))
}

/// A complete journey for movement `serial`, starting at `base`:
/// guarantee registration (base), declaration (+30 min), release (+2 h), crossing out of Togo
/// (+20 h) and into Burkina Faso (+21 h) at Cinkassé, arrival at Ouagadougou (+36 h), control
/// results (+38 h) and discharge at Lomé (+40 h). The time limit is 8 days after `base`.
pub fn journey(base: Timestamp, serial: u32) -> Journey {
    let mrn = mrn(base, serial);
    let grn = grn(base, serial);
    let seals = vec![
        lit(&format!("TGS{serial:07}A")),
        lit(&format!("TGS{serial:07}B")),
    ];

    let guarantee_registration = message(
        serial,
        "01-GRN",
        LOME_PORT,
        base,
        MessageBody::GuaranteeRegistration(GuaranteeRegistration {
            grn: grn.clone(),
            guarantor: Party {
                id: lit("TG-GUAR-0001"),
                name: "Chambre de Commerce et d'Industrie du Togo".to_owned(),
            },
            principal: Party {
                id: lit(&format!("TG1000{serial:06}")),
                name: "Sahel Transit SARL".to_owned(),
            },
            reference_amount: xof(REFERENCE_AMOUNT_XOF),
            valid_until: Some(at(base, 365 * 24 * 60)),
        }),
    );

    let declaration_body = TransitDeclaration {
        mrn: mrn.clone(),
        declaration_type: DeclarationType::Isrt,
        holder: Trader {
            id: lit(&format!("TG1000{serial:06}")),
            name: "Sahel Transit SARL".to_owned(),
            country: lit("TG"),
        },
        office_of_departure: lit(LOME_PORT),
        offices_of_transit: vec![
            OfficeOfTransit {
                office: lit(CINKASSE_TG),
                expected_arrival: Some(at(base, 20 * 60)),
            },
            OfficeOfTransit {
                office: lit(CINKASSE_BF),
                expected_arrival: Some(at(base, 21 * 60)),
            },
        ],
        office_of_destination: lit(OUAGADOUGOU),
        countries_of_routing: vec![lit("TG"), lit("BF")],
        itinerary_binding: true,
        time_limit: at(base, 8 * 24 * 60),
        transport: MeansOfTransport {
            mode: TransportMode::Road,
            identity: lit(&format!("BF {:04} GA", serial % 10_000)),
            nationality: lit("BF"),
        },
        carrier: Some(Trader {
            id: lit("BF-TRANS-0042"),
            name: "Transports Faso Express".to_owned(),
            country: lit("BF"),
        }),
        equipment: vec![TransportEquipment {
            container_id: Some(format!("MSCU{:07}", serial % 10_000_000)),
            seals: seals.clone(),
        }],
        goods: vec![
            GoodsItem {
                description: "Riz blanchi, sacs de 50 kg".to_owned(),
                hs_code: lit("100630"),
                gross_mass_g: 20_200_000,
                net_mass_g: Some(20_000_000),
                packages: vec![Packaging {
                    kind_code: lit("BG"),
                    count: 400,
                }],
            },
            GoodsItem {
                description: "Fuel oil, fûts de 200 l".to_owned(),
                hs_code: lit("271019"),
                gross_mass_g: 6_800_000,
                net_mass_g: Some(6_400_000),
                packages: vec![Packaging {
                    kind_code: lit("DR"),
                    count: 40,
                }],
            },
        ],
        customs_value: xof(CUSTOMS_VALUE_XOF),
        amount_at_stake: xof(AMOUNT_AT_STAKE_XOF),
        guarantee: grn.clone(),
    };
    let declaration = message(
        serial,
        "02-DEC",
        LOME_PORT,
        at(base, 30),
        MessageBody::TransitDeclaration(declaration_body),
    );

    let release = message(
        serial,
        "03-REL",
        LOME_PORT,
        at(base, 121),
        MessageBody::ReleaseForTransit(ReleaseForTransit {
            mrn: mrn.clone(),
            released_at: at(base, 120),
        }),
    );

    let crossing = |step: &str, office: &str, minutes: i64| {
        message(
            serial,
            step,
            office,
            at(base, minutes + 1),
            MessageBody::BorderCrossing(BorderCrossing {
                mrn: mrn.clone(),
                office: lit(office),
                crossed_at: at(base, minutes),
                seals_intact: true,
                seals_observed: seals.clone(),
            }),
        )
    };
    let crossings = vec![
        crossing("04-XTG", CINKASSE_TG, 20 * 60),
        crossing("05-XBF", CINKASSE_BF, 21 * 60),
    ];

    let arrival = message(
        serial,
        "06-ARR",
        OUAGADOUGOU,
        at(base, 36 * 60 + 1),
        MessageBody::ArrivalNotification(ArrivalNotification {
            mrn: mrn.clone(),
            office: lit(OUAGADOUGOU),
            arrived_at: at(base, 36 * 60),
        }),
    );

    let control_results = message(
        serial,
        "07-CTL",
        OUAGADOUGOU,
        at(base, 38 * 60),
        MessageBody::ControlResults(ControlResults {
            mrn: mrn.clone(),
            office: lit(OUAGADOUGOU),
            conform: true,
            seals_intact: true,
            seals_found: seals,
            gross_mass_g_found: Some(27_000_000),
            packages_found: Some(440),
            remarks: String::new(),
        }),
    );

    let discharge = message(
        serial,
        "08-DIS",
        LOME_PORT,
        at(base, 40 * 60),
        MessageBody::Discharge(Discharge { mrn: mrn.clone() }),
    );

    Journey {
        mrn,
        grn,
        guarantee_registration,
        declaration,
        release,
        crossings,
        arrival,
        control_results,
        discharge,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn base() -> Timestamp {
        "2024-03-01T08:00:00Z".parse().unwrap()
    }

    #[test]
    fn every_fixture_message_round_trips_and_validates() {
        let messages = journey_messages(base(), 7);
        assert_eq!(messages.len(), 8);
        for m in &messages {
            m.validate().unwrap();
            let json = serde_json::to_string(m).unwrap();
            let back: InboundMessage = serde_json::from_str(&json).unwrap();
            assert_eq!(&back, m, "{json}");
            assert_eq!(back.content_digest(), m.content_digest());
        }
    }

    #[test]
    fn fixtures_are_deterministic_and_distinct_per_serial() {
        assert_eq!(journey(base(), 1), journey(base(), 1));
        let a = journey(base(), 1);
        let b = journey(base(), 2);
        assert_ne!(a.mrn, b.mrn);
        assert_ne!(a.grn, b.grn);
        assert_ne!(a.declaration.message_id, b.declaration.message_id);
        assert_eq!(a.mrn.as_str(), "24TGLOME0000000017");
        assert_eq!(a.mrn.country().as_str(), "TG");
        let ids: std::collections::BTreeSet<_> =
            a.messages().iter().map(|m| m.message_id.clone()).collect();
        assert_eq!(ids.len(), 8);
    }

    #[test]
    fn the_wire_shape_is_tagged_and_camel_case() {
        let j = journey(base(), 3);
        let v = serde_json::to_value(&j.declaration.body).unwrap();
        assert_eq!(v["type"], "TransitDeclaration");
        assert_eq!(v["body"]["officeOfDeparture"], "TG000101");
        assert_eq!(v["body"]["declarationType"], "ISRT");
        assert_eq!(
            v["body"]["amountAtStake"]["amountMinor"],
            AMOUNT_AT_STAKE_XOF
        );
        assert_eq!(v["body"]["goods"][0]["grossMassG"], 20_200_000);
        let m = serde_json::to_value(&j.release).unwrap();
        assert_eq!(m["messageId"], "FX-00000003-03-REL");
        assert_eq!(m["body"]["type"], "ReleaseForTransit");
        assert_eq!(m["body"]["body"]["releasedAt"], "2024-03-01T10:00:00Z");
    }

    #[test]
    fn unknown_fields_and_bad_ids_are_refused_on_parse() {
        let j = journey(base(), 4);
        let mut v = serde_json::to_value(&j.arrival).unwrap();
        v["body"]["body"]["surprise"] = serde_json::json!(1);
        assert!(serde_json::from_value::<InboundMessage>(v).is_err());
        let mut v = serde_json::to_value(&j.arrival).unwrap();
        v["body"]["body"]["office"] = serde_json::json!("ZZ000000");
        assert!(serde_json::from_value::<InboundMessage>(v).is_err());
    }

    #[test]
    fn digest_tells_a_redelivery_from_a_conflicting_reuse() {
        let j = journey(base(), 5);
        let redelivered: InboundMessage =
            serde_json::from_str(&serde_json::to_string(&j.arrival).unwrap()).unwrap();
        assert_eq!(redelivered.content_digest(), j.arrival.content_digest());
        let mut reused = j.arrival.clone();
        if let MessageBody::ArrivalNotification(a) = &mut reused.body {
            a.office = lit("BFBOB001");
        }
        assert_ne!(reused.content_digest(), j.arrival.content_digest());
        assert_eq!(j.arrival.content_digest_hex().len(), 64);
    }
}
