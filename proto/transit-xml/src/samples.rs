//! The sample messages checked in under `schemas/xml/samples/`, generated from the contract's
//! fixture journey so that they can never drift from the encoder (a test compares them).
//!
//! Besides the Lomé -> Cinkassé -> Ouagadougou journey, there is one message of every other
//! inbound type and one of every outbound type, all derived from the same movement.

use transit_contract::fixtures::{self, Journey, CINKASSE_TG, LOME_PORT, OUAGADOUGOU};
use transit_contract::messages::{
    Amendment, Cancellation, DeclarationChanges, DestinationChange, Endorsement, EnquiryOutcome,
    EnquiryRequest, EnquiryResponse, Incident, IncidentCode, NoReleaseForTransit, NoReleaseReason,
    OfficeOfTransit, Place, Recovery,
};
use transit_contract::{
    Currency, InboundMessage, MessageBody, MessageId, Money, OfficeCode, Sender, Timestamp,
};

use crate::inbound::{encode_inbound, Header};
use crate::outbound::{
    encode_outbound, Acknowledgement, AnticipatedArrivalRecord, AnticipatedTransitRecord,
    ArrivalAdvice, CrossingNotification, FunctionalError, OutboundMessage, WriteOffNotification,
};

/// One sample file: its path under `schemas/xml/samples/` and its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sample {
    /// Relative path, e.g. `journey/02-transit-declaration.xml`.
    pub file: String,
    /// The encoded message.
    pub bytes: Vec<u8>,
}

/// The base time of the checked-in samples.
pub const SAMPLES_BASE_TIME: &str = "2024-03-01T08:00:00Z";

fn lit<T: std::str::FromStr>(s: &str) -> T
where
    T::Err: std::fmt::Debug,
{
    s.parse()
        .unwrap_or_else(|e| panic!("invariant: sample literal {s:?} is valid: {e:?}"))
}

fn minutes(t: Timestamp, m: i64) -> Timestamp {
    t.checked_add(time::Duration::minutes(m))
        .expect("invariant: sample times stay within a few months of 2024")
}

fn xof(amount: i64) -> Money {
    Money::new(amount, Currency::xof()).expect("invariant: sample amounts are non-negative")
}

fn sender(office: &str) -> Sender {
    let office: OfficeCode = lit(office);
    Sender {
        country: office.country(),
        office,
    }
}

fn header(id: &str, correlation: Option<&MessageId>, office: &str, at: Timestamp) -> Header {
    Header {
        message_id: lit(id),
        correlation_id: correlation.cloned(),
        sender: sender(office),
        prepared_at: at,
    }
}

fn inbound(step: &str, office: &str, at: Timestamp, body: MessageBody) -> InboundMessage {
    InboundMessage {
        message_id: lit(&format!("FX-00000001-{step}")),
        correlation_id: None,
        sender: sender(office),
        sent_at: at,
        body,
    }
}

/// Every sample, for the journey of serial 1 starting at [`SAMPLES_BASE_TIME`].
pub fn samples() -> Vec<Sample> {
    let base: Timestamp = lit(SAMPLES_BASE_TIME);
    let j = fixtures::journey(base, 1);
    let mut out = Vec::new();
    let journey_files = [
        "01-guarantee-registration",
        "02-transit-declaration",
        "03-release-for-transit",
        "04-border-crossing-exit-togo",
        "05-border-crossing-entry-burkina-faso",
        "06-arrival-notification",
        "07-control-results",
        "08-discharge",
    ];
    for (name, msg) in journey_files.iter().zip(j.messages()) {
        out.push(Sample {
            file: format!("journey/{name}.xml"),
            bytes: encode_inbound(&msg),
        });
    }
    for (name, msg) in other_inbound(&j, base) {
        out.push(Sample {
            file: format!("other/{name}.xml"),
            bytes: encode_inbound(&msg),
        });
    }
    for (name, msg) in outbound(&j, base) {
        out.push(Sample {
            file: format!("outbound/{name}.xml"),
            bytes: encode_outbound(&msg),
        });
    }
    out
}

fn other_inbound(j: &Journey, base: Timestamp) -> Vec<(&'static str, InboundMessage)> {
    let mrn = j.mrn.clone();
    vec![
        (
            "no-release-for-transit",
            inbound(
                "X1-NRL",
                LOME_PORT,
                minutes(base, 100),
                MessageBody::NoReleaseForTransit(NoReleaseForTransit {
                    mrn: mrn.clone(),
                    reason: NoReleaseReason::GuaranteeNotValid,
                    remarks: "Garantie expirée au bureau de Lomé-Port".to_owned(),
                }),
            ),
        ),
        (
            "incident",
            inbound(
                "X2-INC",
                CINKASSE_TG,
                minutes(base, 10 * 60),
                MessageBody::Incident(Incident {
                    mrn: mrn.clone(),
                    code: IncidentCode::SealsBroken,
                    place: Place {
                        locode: None,
                        latitude_e7: Some(64_261_000),
                        longitude_e7: Some(12_133_000),
                    },
                    occurred_at: minutes(base, 9 * 60),
                    endorsed_by: Some(Endorsement {
                        authority: "Brigade des douanes de Tsévié".to_owned(),
                        country: lit("TG"),
                    }),
                    new_seals: vec![lit("TGS0000001C")],
                    new_transport: None,
                    description: "Scellé TGS0000001B rompu, constaté à Tsévié (route Lomé – Cinkassé) ; nouveau scellé apposé.".to_owned(),
                }),
            ),
        ),
        (
            "destination-change",
            inbound(
                "X3-DST",
                LOME_PORT,
                minutes(base, 12 * 60),
                MessageBody::DestinationChange(DestinationChange {
                    mrn: mrn.clone(),
                    new_office_of_destination: lit("BFBOB001"),
                    reason: "Destinataire à Bobo-Dioulasso".to_owned(),
                }),
            ),
        ),
        (
            "cancellation",
            inbound(
                "X4-CAN",
                LOME_PORT,
                minutes(base, 60),
                MessageBody::Cancellation(Cancellation {
                    mrn: mrn.clone(),
                    reason: "Déclaration déposée en double".to_owned(),
                }),
            ),
        ),
        (
            "amendment",
            inbound(
                "X5-AMD",
                LOME_PORT,
                minutes(base, 45),
                MessageBody::Amendment(Amendment {
                    mrn: mrn.clone(),
                    changes: DeclarationChanges {
                        offices_of_transit: Some(vec![OfficeOfTransit {
                            office: lit(CINKASSE_TG),
                            expected_arrival: Some(minutes(base, 22 * 60)),
                        }]),
                        time_limit: Some(minutes(base, 9 * 24 * 60)),
                        amount_at_stake: Some(xof(13_000_000)),
                        ..DeclarationChanges::default()
                    },
                }),
            ),
        ),
        (
            "enquiry-request",
            inbound(
                "X6-ENQ",
                LOME_PORT,
                minutes(base, 16 * 24 * 60),
                MessageBody::EnquiryRequest(EnquiryRequest {
                    mrn: mrn.clone(),
                    reason: "Aucune arrivée enregistrée à Ouagadougou avant la date limite".to_owned(),
                }),
            ),
        ),
        (
            "enquiry-response",
            inbound(
                "X7-ENR",
                OUAGADOUGOU,
                minutes(base, 18 * 24 * 60),
                MessageBody::EnquiryResponse(EnquiryResponse {
                    mrn: mrn.clone(),
                    outcome: EnquiryOutcome::GoodsArrived {
                        arrived_at: minutes(base, 36 * 60),
                        office: lit(OUAGADOUGOU),
                    },
                    remarks: "Preuve d'arrivée retrouvée".to_owned(),
                }),
            ),
        ),
        (
            "recovery",
            inbound(
                "X8-REC",
                LOME_PORT,
                minutes(base, 60 * 24 * 60),
                MessageBody::Recovery(Recovery {
                    mrn,
                    amount_recovered: xof(12_500_000),
                    reason: "Enquête close sans preuve d'arrivée".to_owned(),
                }),
            ),
        ),
    ]
}

fn outbound(j: &Journey, base: Timestamp) -> Vec<(&'static str, OutboundMessage)> {
    let d = j.declaration_body().clone();
    let released_at = minutes(base, 120);
    let release_id = &j.release.message_id;
    let functional_error = {
        // A real decoding error: the declaration with a non-existent HS chapter (77).
        let bad = String::from_utf8_lossy(&encode_inbound(&j.declaration))
            .replace("<CommodityCode>271019<", "<CommodityCode>771019<");
        let error = crate::decode_inbound(bad.as_bytes())
            .err()
            .unwrap_or(crate::XmlError::NoRoot);
        FunctionalError::for_xml_error(
            header(
                "TL-00000001-ERR-02-DEC",
                Some(&j.declaration.message_id),
                LOME_PORT,
                minutes(base, 30),
            ),
            Some(j.declaration.message_id.clone()),
            &error,
        )
    };
    vec![
        (
            "anticipated-transit-record",
            AnticipatedTransitRecord {
                header: header(
                    "TL-00000001-ATR-TGCIN001",
                    Some(release_id),
                    LOME_PORT,
                    released_at,
                ),
                office_of_transit: lit(CINKASSE_TG),
                released_at,
                declaration: d.clone(),
            }
            .into(),
        ),
        (
            "anticipated-arrival-record",
            AnticipatedArrivalRecord {
                header: header(
                    "TL-00000001-AAR-BFOUA001",
                    Some(release_id),
                    LOME_PORT,
                    released_at,
                ),
                office_of_destination: lit(OUAGADOUGOU),
                released_at,
                declaration: d,
            }
            .into(),
        ),
        (
            "crossing-notification",
            CrossingNotification {
                header: header(
                    "TL-00000001-NCF-TGCIN001",
                    Some(&j.crossings[0].message_id),
                    CINKASSE_TG,
                    minutes(base, 20 * 60 + 1),
                ),
                mrn: j.mrn.clone(),
                office_of_transit: lit(CINKASSE_TG),
                crossed_at: minutes(base, 20 * 60),
                declared_office: true,
                seals_intact: true,
                seals_observed: j.declaration_body().seals().cloned().collect(),
            }
            .into(),
        ),
        (
            "arrival-advice",
            ArrivalAdvice {
                header: header(
                    "TL-00000001-ARA-BFOUA001",
                    Some(&j.arrival.message_id),
                    OUAGADOUGOU,
                    minutes(base, 36 * 60 + 1),
                ),
                mrn: j.mrn.clone(),
                office_of_destination: lit(OUAGADOUGOU),
                arrived_at: minutes(base, 36 * 60),
                declared_destination: true,
            }
            .into(),
        ),
        (
            "write-off-notification",
            WriteOffNotification {
                header: header(
                    "TL-00000001-WON-TG000101",
                    Some(&j.discharge.message_id),
                    LOME_PORT,
                    minutes(base, 40 * 60),
                ),
                mrn: j.mrn.clone(),
                guarantee: j.grn.clone(),
                amount_released: j.declaration_body().amount_at_stake.clone(),
                discharged_at: minutes(base, 40 * 60),
            }
            .into(),
        ),
        (
            "acknowledgement",
            Acknowledgement {
                header: header(
                    "TL-00000001-ACK-03-REL",
                    Some(release_id),
                    LOME_PORT,
                    minutes(base, 121),
                ),
                original_message_id: release_id.clone(),
                mrn: Some(j.mrn.clone()),
                duplicate: false,
            }
            .into(),
        ),
        ("functional-error", functional_error.into()),
    ]
}
