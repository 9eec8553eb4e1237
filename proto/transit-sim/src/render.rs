//! Rendering: a planned movement becomes the inbound messages its offices send, each with the
//! instants it is delivered (network latency, a late border notification now and then, JMS
//! redeliveries).

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use transit_contract::ids::{Currency, Money, OfficeCode, Timestamp};
use transit_contract::messages::{
    ArrivalNotification, BorderCrossing, Cancellation, ControlResults, DeclarationType,
    DestinationChange, Discharge, Endorsement, EnquiryRequest, GoodsItem, GuaranteeRegistration,
    InboundMessage, Incident, IncidentCode, MeansOfTransport, MessageBody, NoReleaseForTransit,
    NoReleaseReason, OfficeOfTransit, Packaging, Party, Place, ReleaseForTransit, Sender, Trader,
    TransitDeclaration, TransportEquipment, TransportMode,
};

use crate::plan::{ts, Fate, Movement, Plan};
use crate::SimConfig;

const MINUTE: i64 = 60_000;
const DAY: i64 = 24 * 60 * MINUTE;

/// One delivery of the plan: when, and which message (an index into the message list).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivery {
    pub at: Timestamp,
    pub message: usize,
    /// A second delivery of a message already delivered (a JMS redelivery).
    pub redelivery: bool,
}

/// Parses an identifier the simulator built; its formats are valid by construction.
fn id<T: std::str::FromStr>(s: &str) -> T
where
    T::Err: std::fmt::Debug,
{
    s.parse()
        .unwrap_or_else(|e| panic!("invariant: simulated identifier {s:?} is valid: {e:?}"))
}

fn xof(amount: i64) -> Money {
    Money::new(amount.max(0), Currency::xof()).expect("invariant: simulated amounts are >= 0")
}

fn sender(office: &str) -> Sender {
    let office: OfficeCode = id(office);
    Sender {
        country: office.country(),
        office,
    }
}

fn grn(plan: &Plan, config: &SimConfig, holder: usize) -> String {
    let year = config.start.as_offset_date_time().year().rem_euclid(100);
    let country = plan.holders[holder].country;
    format!("{year:02}{country}GAR{}{:07}", plan.tag, holder + 1)
}

fn departure_office(country: &str) -> &'static str {
    if country == "CI" {
        "CIABJ001"
    } else {
        "TG000101"
    }
}

/// The guarantee registrations: one per holder, two days before the first declaration.
pub(crate) fn guarantees(config: &SimConfig, plan: &Plan) -> Vec<InboundMessage> {
    let base = config.start.unix_millis() - 2 * DAY;
    plan.holders
        .iter()
        .enumerate()
        .map(|(k, h)| {
            let (guarantor_id, guarantor) = if h.country == "CI" {
                (
                    "CI-GUAR-0001",
                    "Chambre de Commerce et d'Industrie de Côte d'Ivoire",
                )
            } else {
                ("TG-GUAR-0001", "Chambre de Commerce et d'Industrie du Togo")
            };
            InboundMessage {
                message_id: id(&format!("SIM-{}-G{:07}", plan.tag, k + 1)),
                correlation_id: None,
                sender: sender(departure_office(h.country)),
                sent_at: ts(base + k as i64 * 10_000),
                body: MessageBody::GuaranteeRegistration(GuaranteeRegistration {
                    grn: id(&grn(plan, config, k)),
                    guarantor: Party {
                        id: id(guarantor_id),
                        name: guarantor.to_owned(),
                    },
                    principal: Party {
                        id: id(&h.id),
                        name: h.name.clone(),
                    },
                    reference_amount: xof(h.guarantee_xof),
                    valid_until: Some(ts(base + 2 * 365 * DAY)),
                }),
            }
        })
        .collect()
}

/// The seals read at a checkpoint at `at_ms` (stop `stop`, or `stops.len()` for the
/// destination control), and whether they are intact.
fn seals_at(m: &Movement, at_ms: i64, stop: usize) -> (Vec<String>, bool) {
    let mut seals = m.seals.clone();
    let mut intact = true;
    let mut incidents: Vec<_> = m.incidents.iter().filter(|i| i.at_ms <= at_ms).collect();
    incidents.sort_by_key(|i| i.at_ms);
    for i in incidents {
        if i.reseal {
            seals = resealed(m);
            intact = true;
        } else if i.code == IncidentCode::SealsBroken {
            intact = false;
        }
    }
    if let Some((from, fake)) = &m.seal_swap {
        if stop >= *from {
            if let Some(first) = seals.first_mut() {
                first.clone_from(fake);
            }
        }
    }
    (seals, intact)
}

/// The seals an endorsing customs officer puts on after a seals-broken incident.
fn resealed(m: &Movement) -> Vec<String> {
    m.seals.iter().map(|s| format!("{s}R")).collect()
}

fn declaration(config: &SimConfig, plan: &Plan, m: &Movement) -> TransitDeclaration {
    let holder = &plan.holders[m.holder];
    let carrier = &plan.carriers[m.carrier];
    let route = m.route;
    let transit = &route.offices[1..route.offices.len() - 1];
    let mut expected = m.decided_ms;
    let offices_of_transit = transit
        .iter()
        .map(|o| {
            // Planned at the usual pace: about a day to each border.
            expected += DAY;
            OfficeOfTransit {
                office: id(o),
                expected_arrival: Some(ts(expected)),
            }
        })
        .collect();
    TransitDeclaration {
        mrn: m.mrn.clone(),
        declaration_type: DeclarationType::Isrt,
        holder: Trader {
            id: id(&holder.id),
            name: holder.name.clone(),
            country: id(holder.country),
        },
        office_of_departure: id(route.offices[0]),
        offices_of_transit,
        office_of_destination: id(route.offices[route.offices.len() - 1]),
        countries_of_routing: route.countries.iter().map(|c| id(c)).collect(),
        itinerary_binding: true,
        time_limit: ts(m.time_limit_ms()),
        transport: MeansOfTransport {
            mode: TransportMode::Road,
            identity: id(&m.plate),
            nationality: id(m.plate_country),
        },
        carrier: Some(Trader {
            id: id(&carrier.id),
            name: carrier.name.clone(),
            country: id(carrier.country),
        }),
        equipment: vec![TransportEquipment {
            container_id: m.container.clone(),
            seals: m.seals.iter().map(|s| id(s)).collect(),
        }],
        goods: m
            .loads
            .iter()
            .map(|l| GoodsItem {
                description: l.goods.description.to_owned(),
                hs_code: id(l.goods.hs_code),
                gross_mass_g: l.gross_g,
                net_mass_g: Some(l.gross_g / 100 * 98),
                packages: vec![Packaging {
                    kind_code: id(l.goods.package_kind),
                    count: l.packages,
                }],
            })
            .collect(),
        customs_value: xof(m.customs_value_xof()),
        amount_at_stake: xof(m.at_stake_xof()),
        guarantee: id(&grn(plan, config, m.holder)),
    }
}

fn incident_text(code: IncidentCode) -> &'static str {
    match code {
        IncidentCode::Accident => "Accident de la circulation, véhicule immobilisé",
        IncidentCode::Other => "Panne mécanique, réparation sur place",
        IncidentCode::SealsBroken => "Scellés rompus constatés au contrôle routier",
        IncidentCode::Deviation => "Déviation: route coupée, itinéraire de contournement",
        IncidentCode::Transhipment => "Transbordement",
    }
}

/// The messages of movement `i` with the instants (ms) each is delivered, in sending order.
pub(crate) fn movement(
    config: &SimConfig,
    plan: &Plan,
    i: usize,
) -> Vec<(InboundMessage, Vec<i64>)> {
    let Some(m) = plan.movements.get(i) else {
        return Vec::new();
    };
    let t = &config.timing;
    let mut r = ChaCha8Rng::seed_from_u64(config.seed ^ 0x0DE1_1FE2);
    r.set_stream(i as u64);
    let lag = |r: &mut ChaCha8Rng| t.send_lag.minutes(r.gen::<f64>()) * MINUTE;
    let mut out: Vec<(i64, InboundMessage)> = Vec::new();
    let mut push = |step: String, office: &str, sent_ms: i64, body: MessageBody| {
        out.push((
            sent_ms,
            InboundMessage {
                message_id: id(&format!("SIM-{}-{i:08}-{step}", plan.tag)),
                correlation_id: None,
                sender: sender(office),
                sent_at: ts(sent_ms),
                body,
            },
        ));
    };
    let departure = m.route.offices[0];
    push(
        "DEC".to_owned(),
        departure,
        m.declared_ms,
        MessageBody::TransitDeclaration(declaration(config, plan, m)),
    );
    match m.fate {
        Fate::Cancelled => {
            push(
                "CAN".to_owned(),
                departure,
                m.decided_ms,
                MessageBody::Cancellation(Cancellation {
                    mrn: m.mrn.clone(),
                    reason: "Déclaration annulée à la demande du déclarant".to_owned(),
                }),
            );
        }
        Fate::Refused => {
            push(
                "NRL".to_owned(),
                departure,
                m.decided_ms,
                MessageBody::NoReleaseForTransit(NoReleaseForTransit {
                    mrn: m.mrn.clone(),
                    reason: NoReleaseReason::ControlNotSatisfactory,
                    remarks: "Contrôle documentaire non satisfaisant".to_owned(),
                }),
            );
        }
        Fate::Released => {
            let sent = m.decided_ms + lag(&mut r);
            push(
                "REL".to_owned(),
                departure,
                sent,
                MessageBody::ReleaseForTransit(ReleaseForTransit {
                    mrn: m.mrn.clone(),
                    released_at: ts(m.decided_ms),
                }),
            );
            if let Some((at, to)) = m.destination_change {
                push(
                    "DCH".to_owned(),
                    departure,
                    at,
                    MessageBody::DestinationChange(DestinationChange {
                        mrn: m.mrn.clone(),
                        new_office_of_destination: id(to),
                        reason: "Changement de destination demandé par le déclarant".to_owned(),
                    }),
                );
            }
            for (k, inc) in m.incidents.iter().enumerate() {
                let sent = inc.at_ms + t.send_lag.minutes(r.gen::<f64>()) * MINUTE * 6;
                let office: OfficeCode = id(inc.office);
                push(
                    format!("INC{k}"),
                    inc.office,
                    sent,
                    MessageBody::Incident(Incident {
                        mrn: m.mrn.clone(),
                        code: inc.code,
                        place: Place {
                            locode: None,
                            latitude_e7: Some(inc.latitude_e7),
                            longitude_e7: Some(inc.longitude_e7),
                        },
                        occurred_at: ts(inc.at_ms),
                        endorsed_by: inc.endorsed.then(|| Endorsement {
                            authority: if inc.reseal {
                                "Brigade mobile des douanes".to_owned()
                            } else {
                                "Gendarmerie nationale".to_owned()
                            },
                            country: office.country(),
                        }),
                        new_seals: if inc.reseal {
                            resealed(m).iter().map(|s| id(s)).collect()
                        } else {
                            Vec::new()
                        },
                        new_transport: None,
                        description: incident_text(inc.code).to_owned(),
                    }),
                );
            }
            let crossings = if m.arrives {
                m.stops.len().saturating_sub(1)
            } else {
                m.stops.len()
            };
            for (k, stop) in m.stops.iter().enumerate().take(crossings) {
                let sent = stop.at_ms + lag(&mut r);
                if !stop.recorded {
                    continue;
                }
                let (seals, intact) = seals_at(m, stop.at_ms, k);
                push(
                    format!("X{k}"),
                    stop.office,
                    sent,
                    MessageBody::BorderCrossing(BorderCrossing {
                        mrn: m.mrn.clone(),
                        office: id(stop.office),
                        crossed_at: ts(stop.at_ms),
                        seals_intact: intact,
                        seals_observed: seals.iter().map(|s| id(s)).collect(),
                    }),
                );
            }
            if let (true, Some(last)) = (m.arrives, m.stops.last()) {
                let sent = last.at_ms + lag(&mut r);
                push(
                    "ARR".to_owned(),
                    last.office,
                    sent,
                    MessageBody::ArrivalNotification(ArrivalNotification {
                        mrn: m.mrn.clone(),
                        office: id(last.office),
                        arrived_at: ts(last.at_ms),
                    }),
                );
                let (seals, intact) = seals_at(m, m.control_ms, m.stops.len());
                let intact = intact && m.control_seals_intact;
                let mass = m
                    .mass_found_bp
                    .map(|bp| m.gross_g() * u64::try_from(bp).unwrap_or(0) / 10_000);
                let packages = u64::from(m.packages())
                    * u64::try_from(m.packages_found_bp).unwrap_or(0)
                    / 10_000;
                let conform = intact && seals == m.seals && m.packages_found_bp == 10_000;
                push(
                    "CTL".to_owned(),
                    last.office,
                    m.control_ms,
                    MessageBody::ControlResults(ControlResults {
                        mrn: m.mrn.clone(),
                        office: id(last.office),
                        conform,
                        seals_intact: intact,
                        seals_found: seals.iter().map(|s| id(s)).collect(),
                        gross_mass_g_found: mass,
                        packages_found: Some(u32::try_from(packages).unwrap_or(u32::MAX)),
                        remarks: if conform {
                            String::new()
                        } else {
                            "Non conforme".to_owned()
                        },
                    }),
                );
                push(
                    "DIS".to_owned(),
                    departure,
                    m.discharge_ms,
                    MessageBody::Discharge(Discharge { mrn: m.mrn.clone() }),
                );
            }
            let enquiry_ms = m.time_limit_ms() + 7 * DAY;
            if m.enquiry && enquiry_ms < plan.end_ms - 60 * MINUTE {
                push(
                    "ENQ".to_owned(),
                    departure,
                    enquiry_ms,
                    MessageBody::EnquiryRequest(EnquiryRequest {
                        mrn: m.mrn.clone(),
                        reason: "Pas d'arrivée à l'expiration du délai: enquête ouverte".to_owned(),
                    }),
                );
            }
        }
    }
    out.sort_by_key(|(sent, _)| *sent);

    // Deliveries: latency; one border notification late now and then; redeliveries.
    let latency =
        |r: &mut ChaCha8Rng| i64::from(r.gen_range(1..=t.latency_seconds_max.max(1))) * 1000;
    let late = (r.gen::<f64>() < config.late_notification_rate)
        .then(|| {
            let crossings: Vec<usize> = out
                .iter()
                .enumerate()
                .filter(|(_, (_, msg))| matches!(msg.body, MessageBody::BorderCrossing(_)))
                .map(|(k, _)| k)
                .collect();
            crossings
                .get(r.gen_range(0..crossings.len().max(1)))
                .map(|k| (*k, t.late_notification.minutes(r.gen::<f64>()) * MINUTE))
        })
        .flatten();
    out.into_iter()
        .enumerate()
        .map(|(k, (sent, msg))| {
            let mut first = sent + latency(&mut r);
            if let Some((late_k, delay)) = late {
                if late_k == k {
                    first += delay;
                }
            }
            let mut at = vec![first];
            if r.gen::<f64>() < config.duplicate_rate {
                at.push(first + t.redelivery_after.minutes(r.gen::<f64>()) * MINUTE);
            }
            (msg, at)
        })
        .collect()
}

/// Every message and the whole delivery plan, in delivery order.
pub(crate) fn all(config: &SimConfig, plan: &Plan) -> (Vec<InboundMessage>, Vec<Delivery>) {
    let mut messages = Vec::new();
    let mut deliveries: Vec<(i64, usize, bool)> = Vec::new();
    let mut r = ChaCha8Rng::seed_from_u64(config.seed ^ 0x6A2A_57EE);
    for g in guarantees(config, plan) {
        let at = g.sent_at.unix_millis()
            + i64::from(r.gen_range(1..=config.timing.latency_seconds_max.max(1))) * 1000;
        deliveries.push((at, messages.len(), false));
        messages.push(g);
    }
    for i in 0..plan.movements.len() {
        for (msg, at) in movement(config, plan, i) {
            for (k, t) in at.into_iter().enumerate() {
                deliveries.push((t, messages.len(), k > 0));
            }
            messages.push(msg);
        }
    }
    // Stable: equal instants keep the order they were sent in.
    deliveries.sort_by_key(|(at, message, _)| (*at, *message));
    let deliveries = deliveries
        .into_iter()
        .map(|(at, message, redelivery)| Delivery {
            at: ts(at),
            message,
            redelivery,
        })
        .collect();
    (messages, deliveries)
}
