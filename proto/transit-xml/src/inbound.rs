//! Inbound messages (national system -> ledger): the XML form of every `MessageBody` of the
//! contract, and the shared pieces (header, declaration, seals, places) the outbound messages
//! reuse.

use transit_contract::messages::{
    Amendment, ArrivalNotification, BorderCrossing, Cancellation, ControlResults,
    DeclarationChanges, DeclarationType, DestinationChange, Discharge, Endorsement, EnquiryOutcome,
    EnquiryRequest, EnquiryResponse, GoodsItem, GuaranteeRegistration, Incident, IncidentCode,
    MeansOfTransport, NoReleaseForTransit, NoReleaseReason, OfficeOfTransit, Packaging, Party,
    Place, Recovery, ReleaseForTransit, Trader, TransitDeclaration, TransportEquipment,
    TransportMode,
};
use transit_contract::{InboundMessage, MessageBody, MessageId, SealId, Sender, Timestamp};

use crate::error::XmlError;
use crate::parse::{parse, Node};
use crate::read::{self, Children};
use crate::write::XmlWriter;

/// The root element names of the inbound messages, in the contract's order.
pub const INBOUND_ROOTS: [&str; 15] = [
    "GuaranteeRegistration",
    "TransitDeclaration",
    "ReleaseForTransit",
    "NoReleaseForTransit",
    "BorderCrossing",
    "Incident",
    "DestinationChange",
    "ArrivalNotification",
    "ControlResults",
    "Discharge",
    "Cancellation",
    "Amendment",
    "EnquiryRequest",
    "EnquiryResponse",
    "Recovery",
];

/// The common header every message carries, inbound and outbound.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// `MessageIdentification`: the sender's id of the message (the idempotency key).
    pub message_id: MessageId,
    /// `CorrelationIdentifier`: the message this one answers or follows.
    pub correlation_id: Option<MessageId>,
    /// `Sender`: the administration and office that sent it.
    pub sender: Sender,
    /// `PreparationDateAndTime`: when it was sent (UTC).
    pub prepared_at: Timestamp,
}

impl Header {
    /// The header of an inbound message.
    pub fn of(msg: &InboundMessage) -> Header {
        Header {
            message_id: msg.message_id.clone(),
            correlation_id: msg.correlation_id.clone(),
            sender: msg.sender.clone(),
            prepared_at: msg.sent_at,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Shared pieces.

pub(crate) fn write_header(w: &mut XmlWriter, h: &Header) {
    w.leaf("MessageIdentification", &h.message_id);
    w.leaf_opt("CorrelationIdentifier", h.correlation_id.as_ref());
    w.open("Sender");
    w.leaf("Country", &h.sender.country);
    w.leaf("CustomsOffice", &h.sender.office);
    w.close();
    w.timestamp("PreparationDateAndTime", &h.prepared_at);
}

pub(crate) fn read_header(c: &mut Children<'_>) -> Result<Header, XmlError> {
    let message_id = c.id("MessageIdentification")?;
    let correlation_id = c.id_opt("CorrelationIdentifier")?;
    let mut s = Children::of(c.required("Sender")?)?;
    let sender = Sender {
        country: s.id("Country")?,
        office: s.id("CustomsOffice")?,
    };
    s.finish()?;
    let prepared_at = c.timestamp("PreparationDateAndTime")?;
    Ok(Header {
        message_id,
        correlation_id,
        sender,
        prepared_at,
    })
}

/// `SealsNumber` (WCO "number of seals") then one `SealIdentifier` per seal.
pub(crate) fn write_seals(w: &mut XmlWriter, seals: &[SealId]) {
    w.number("SealsNumber", seals.len());
    for s in seals {
        w.leaf("SealIdentifier", s);
    }
}

pub(crate) fn read_seals(c: &mut Children<'_>) -> Result<Vec<SealId>, XmlError> {
    let number = c.required("SealsNumber")?;
    let declared: usize = read::unsigned(number)?;
    let seals = c
        .many("SealIdentifier")
        .into_iter()
        .map(read::id)
        .collect::<Result<Vec<SealId>, _>>()?;
    // The count is redundant with the list; a mismatch means a seal was lost on the way.
    if declared != seals.len() {
        return Err(XmlError::invalid(
            &number.path,
            format!(
                "SealsNumber is {declared} but {} SealIdentifier elements follow",
                seals.len()
            ),
        ));
    }
    Ok(seals)
}

fn write_trader(w: &mut XmlWriter, name: &'static str, t: &Trader) {
    w.open(name);
    w.leaf("Identification", &t.id);
    w.leaf("Name", &t.name);
    w.leaf("Country", &t.country);
    w.close();
}

fn read_trader(node: &Node) -> Result<Trader, XmlError> {
    let mut c = Children::of(node)?;
    let t = Trader {
        id: c.id("Identification")?,
        name: c.text("Name")?,
        country: c.id("Country")?,
    };
    c.finish()?;
    Ok(t)
}

fn write_party(w: &mut XmlWriter, name: &'static str, p: &Party) {
    w.open(name);
    w.leaf("Identification", &p.id);
    w.leaf("Name", &p.name);
    w.close();
}

fn read_party(node: &Node) -> Result<Party, XmlError> {
    let mut c = Children::of(node)?;
    let p = Party {
        id: c.id("Identification")?,
        name: c.text("Name")?,
    };
    c.finish()?;
    Ok(p)
}

/// UN/ECE Recommendation 19 codes, as WCO and NCTS use for the mode of transport.
fn mode_code(m: TransportMode) -> &'static str {
    match m {
        TransportMode::Sea => "1",
        TransportMode::Rail => "2",
        TransportMode::Road => "3",
        TransportMode::Air => "4",
        TransportMode::InlandWaterway => "8",
        TransportMode::Other => "9",
    }
}

fn read_mode(node: &Node) -> Result<TransportMode, XmlError> {
    Ok(match read::token(node)? {
        "1" => TransportMode::Sea,
        "2" => TransportMode::Rail,
        "3" => TransportMode::Road,
        "4" => TransportMode::Air,
        "8" => TransportMode::InlandWaterway,
        "9" => TransportMode::Other,
        other => {
            return Err(XmlError::invalid(
                &node.path,
                format!("{other:?} is not a UN/ECE Rec. 19 mode of transport (1, 2, 3, 4, 8, 9)"),
            ))
        }
    })
}

fn write_transport(w: &mut XmlWriter, name: &'static str, t: &MeansOfTransport) {
    w.open(name);
    w.leaf("ModeOfTransport", mode_code(t.mode));
    w.leaf("Identification", &t.identity);
    w.leaf("Nationality", &t.nationality);
    w.close();
}

fn read_transport(node: &Node) -> Result<MeansOfTransport, XmlError> {
    let mut c = Children::of(node)?;
    let t = MeansOfTransport {
        mode: read_mode(c.required("ModeOfTransport")?)?,
        identity: c.id("Identification")?,
        nationality: c.id("Nationality")?,
    };
    c.finish()?;
    Ok(t)
}

fn write_offices_of_transit(w: &mut XmlWriter, offices: &[OfficeOfTransit]) {
    for o in offices {
        w.open("CustomsOfficeOfTransit");
        w.leaf("ReferenceNumber", &o.office);
        w.timestamp_opt("ArrivalDateAndTimeEstimated", o.expected_arrival.as_ref());
        w.close();
    }
}

fn read_offices_of_transit(c: &mut Children<'_>) -> Result<Vec<OfficeOfTransit>, XmlError> {
    c.many("CustomsOfficeOfTransit")
        .into_iter()
        .map(|node| {
            let mut o = Children::of(node)?;
            let office = OfficeOfTransit {
                office: o.id("ReferenceNumber")?,
                expected_arrival: o.timestamp_opt("ArrivalDateAndTimeEstimated")?,
            };
            o.finish()?;
            Ok(office)
        })
        .collect()
}

fn write_equipment(w: &mut XmlWriter, equipment: &[TransportEquipment]) {
    for e in equipment {
        w.open("TransportEquipment");
        w.leaf_opt("TransportEquipmentIdentification", e.container_id.as_ref());
        write_seals(w, &e.seals);
        w.close();
    }
}

fn read_equipment(c: &mut Children<'_>) -> Result<Vec<TransportEquipment>, XmlError> {
    c.many("TransportEquipment")
        .into_iter()
        .map(|node| {
            let mut e = Children::of(node)?;
            let container_id = e
                .optional("TransportEquipmentIdentification")?
                .map(|n| read::token(n).map(str::to_owned))
                .transpose()?;
            let seals = read_seals(&mut e)?;
            e.finish()?;
            Ok(TransportEquipment {
                container_id,
                seals,
            })
        })
        .collect()
}

fn write_goods(w: &mut XmlWriter, goods: &[GoodsItem]) {
    for g in goods {
        w.open("GoodsItem");
        w.leaf("DescriptionOfGoods", &g.description);
        w.leaf("CommodityCode", &g.hs_code);
        w.number("GrossMass", g.gross_mass_g);
        if let Some(net) = g.net_mass_g {
            w.number("NetMass", net);
        }
        for p in &g.packages {
            w.open("Packaging");
            w.leaf("TypeOfPackages", &p.kind_code);
            w.number("NumberOfPackages", p.count);
            w.close();
        }
        w.close();
    }
}

fn read_goods(c: &mut Children<'_>) -> Result<Vec<GoodsItem>, XmlError> {
    c.many("GoodsItem")
        .into_iter()
        .map(|node| {
            let mut g = Children::of(node)?;
            let description = g.text("DescriptionOfGoods")?;
            let hs_code = g.id("CommodityCode")?;
            let gross_mass_g = read::unsigned(g.required("GrossMass")?)?;
            let net_mass_g = g.optional("NetMass")?.map(read::unsigned).transpose()?;
            let packages = g
                .many("Packaging")
                .into_iter()
                .map(|node| {
                    let mut p = Children::of(node)?;
                    let packaging = Packaging {
                        kind_code: p.id("TypeOfPackages")?,
                        count: read::unsigned(p.required("NumberOfPackages")?)?,
                    };
                    p.finish()?;
                    Ok(packaging)
                })
                .collect::<Result<Vec<_>, XmlError>>()?;
            g.finish()?;
            Ok(GoodsItem {
                description,
                hs_code,
                gross_mass_g,
                net_mass_g,
                packages,
            })
        })
        .collect()
}

fn declaration_type_code(t: DeclarationType) -> &'static str {
    match t {
        DeclarationType::T1 => "T1",
        DeclarationType::T2 => "T2",
        DeclarationType::Isrt => "ISRT",
    }
}

fn read_declaration_type(node: &Node) -> Result<DeclarationType, XmlError> {
    match read::token(node)? {
        "T1" => Ok(DeclarationType::T1),
        "T2" => Ok(DeclarationType::T2),
        "ISRT" => Ok(DeclarationType::Isrt),
        other => Err(XmlError::invalid(
            &node.path,
            format!("{other:?} is not a declaration type (T1, T2, ISRT)"),
        )),
    }
}

/// The declaration's elements (schema group `DeclarationData`), shared by the inbound
/// `TransitDeclaration` and the outbound anticipated records.
pub(crate) fn write_declaration(w: &mut XmlWriter, d: &TransitDeclaration) {
    w.leaf("MRN", &d.mrn);
    w.leaf("DeclarationType", declaration_type_code(d.declaration_type));
    write_trader(w, "HolderOfTheTransitProcedure", &d.holder);
    w.leaf("CustomsOfficeOfDeparture", &d.office_of_departure);
    write_offices_of_transit(w, &d.offices_of_transit);
    w.leaf("CustomsOfficeOfDestination", &d.office_of_destination);
    for country in &d.countries_of_routing {
        w.leaf("CountryOfRouting", country);
    }
    w.boolean("BindingItinerary", d.itinerary_binding);
    w.timestamp("TimeLimit", &d.time_limit);
    write_transport(w, "MeansOfTransport", &d.transport);
    if let Some(carrier) = &d.carrier {
        write_trader(w, "Carrier", carrier);
    }
    write_equipment(w, &d.equipment);
    write_goods(w, &d.goods);
    w.money("CustomsValue", &d.customs_value);
    w.money("AmountToBeCovered", &d.amount_at_stake);
    w.leaf("GuaranteeReferenceNumber", &d.guarantee);
}

pub(crate) fn read_declaration(c: &mut Children<'_>) -> Result<TransitDeclaration, XmlError> {
    Ok(TransitDeclaration {
        mrn: c.id("MRN")?,
        declaration_type: read_declaration_type(c.required("DeclarationType")?)?,
        holder: read_trader(c.required("HolderOfTheTransitProcedure")?)?,
        office_of_departure: c.id("CustomsOfficeOfDeparture")?,
        offices_of_transit: read_offices_of_transit(c)?,
        office_of_destination: c.id("CustomsOfficeOfDestination")?,
        countries_of_routing: c
            .many("CountryOfRouting")
            .into_iter()
            .map(read::id)
            .collect::<Result<_, _>>()?,
        itinerary_binding: c.boolean("BindingItinerary")?,
        time_limit: c.timestamp("TimeLimit")?,
        transport: read_transport(c.required("MeansOfTransport")?)?,
        carrier: c.optional("Carrier")?.map(read_trader).transpose()?,
        equipment: read_equipment(c)?,
        goods: read_goods(c)?,
        customs_value: c.money("CustomsValue")?,
        amount_at_stake: c.money("AmountToBeCovered")?,
        guarantee: c.id("GuaranteeReferenceNumber")?,
    })
}

// ---------------------------------------------------------------------------------------------
// Message bodies.

fn no_release_code(r: NoReleaseReason) -> &'static str {
    match r {
        NoReleaseReason::ControlNotSatisfactory => "ControlNotSatisfactory",
        NoReleaseReason::GuaranteeNotValid => "GuaranteeNotValid",
        NoReleaseReason::Other => "Other",
    }
}

fn read_no_release(node: &Node) -> Result<NoReleaseReason, XmlError> {
    match read::token(node)? {
        "ControlNotSatisfactory" => Ok(NoReleaseReason::ControlNotSatisfactory),
        "GuaranteeNotValid" => Ok(NoReleaseReason::GuaranteeNotValid),
        "Other" => Ok(NoReleaseReason::Other),
        other => Err(XmlError::invalid(
            &node.path,
            format!("{other:?} is not a no-release reason (ControlNotSatisfactory, GuaranteeNotValid, Other)"),
        )),
    }
}

fn incident_code(c: IncidentCode) -> &'static str {
    match c {
        IncidentCode::Deviation => "Deviation",
        IncidentCode::SealsBroken => "SealsBroken",
        IncidentCode::Transhipment => "Transhipment",
        IncidentCode::Accident => "Accident",
        IncidentCode::Other => "Other",
    }
}

fn read_incident_code(node: &Node) -> Result<IncidentCode, XmlError> {
    match read::token(node)? {
        "Deviation" => Ok(IncidentCode::Deviation),
        "SealsBroken" => Ok(IncidentCode::SealsBroken),
        "Transhipment" => Ok(IncidentCode::Transhipment),
        "Accident" => Ok(IncidentCode::Accident),
        "Other" => Ok(IncidentCode::Other),
        other => Err(XmlError::invalid(
            &node.path,
            format!("{other:?} is not an incident code (Deviation, SealsBroken, Transhipment, Accident, Other)"),
        )),
    }
}

fn write_place(w: &mut XmlWriter, p: &Place) {
    w.open("Location");
    w.leaf_opt("UNLocode", p.locode.as_ref());
    if let Some(lat) = p.latitude_e7 {
        w.degrees_e7("Latitude", lat);
    }
    if let Some(lon) = p.longitude_e7 {
        w.degrees_e7("Longitude", lon);
    }
    w.close();
}

fn read_place(node: &Node) -> Result<Place, XmlError> {
    let mut c = Children::of(node)?;
    let p = Place {
        locode: c.id_opt("UNLocode")?,
        latitude_e7: c.optional("Latitude")?.map(read::degrees_e7).transpose()?,
        longitude_e7: c.optional("Longitude")?.map(read::degrees_e7).transpose()?,
    };
    c.finish()?;
    Ok(p)
}

fn write_changes(w: &mut XmlWriter, ch: &DeclarationChanges) {
    // Wrappers tell "replace with an empty list" from "unchanged" (absent).
    if let Some(offices) = &ch.offices_of_transit {
        w.open("CustomsOfficesOfTransit");
        write_offices_of_transit(w, offices);
        w.close();
    }
    w.leaf_opt(
        "CustomsOfficeOfDestination",
        ch.office_of_destination.as_ref(),
    );
    w.timestamp_opt("TimeLimit", ch.time_limit.as_ref());
    if let Some(t) = &ch.transport {
        write_transport(w, "MeansOfTransport", t);
    }
    if let Some(e) = &ch.equipment {
        w.open("TransportEquipments");
        write_equipment(w, e);
        w.close();
    }
    if let Some(g) = &ch.goods {
        w.open("GoodsItems");
        write_goods(w, g);
        w.close();
    }
    if let Some(m) = &ch.amount_at_stake {
        w.money("AmountToBeCovered", m);
    }
}

fn read_changes(c: &mut Children<'_>) -> Result<DeclarationChanges, XmlError> {
    let offices_of_transit = match c.optional("CustomsOfficesOfTransit")? {
        Some(node) => {
            let mut o = Children::of(node)?;
            let v = read_offices_of_transit(&mut o)?;
            o.finish()?;
            Some(v)
        }
        None => None,
    };
    let office_of_destination = c.id_opt("CustomsOfficeOfDestination")?;
    let time_limit = c.timestamp_opt("TimeLimit")?;
    let transport = c
        .optional("MeansOfTransport")?
        .map(read_transport)
        .transpose()?;
    let equipment = match c.optional("TransportEquipments")? {
        Some(node) => {
            let mut e = Children::of(node)?;
            let v = read_equipment(&mut e)?;
            e.finish()?;
            Some(v)
        }
        None => None,
    };
    let goods = match c.optional("GoodsItems")? {
        Some(node) => {
            let mut g = Children::of(node)?;
            let v = read_goods(&mut g)?;
            g.finish()?;
            Some(v)
        }
        None => None,
    };
    let amount_at_stake = c
        .optional("AmountToBeCovered")?
        .map(read::money)
        .transpose()?;
    Ok(DeclarationChanges {
        offices_of_transit,
        office_of_destination,
        time_limit,
        transport,
        equipment,
        goods,
        amount_at_stake,
    })
}

fn write_body(w: &mut XmlWriter, body: &MessageBody) {
    match body {
        MessageBody::GuaranteeRegistration(g) => {
            w.leaf("GuaranteeReferenceNumber", &g.grn);
            write_party(w, "Guarantor", &g.guarantor);
            write_party(w, "Principal", &g.principal);
            w.money("ReferenceAmount", &g.reference_amount);
            w.timestamp_opt("ValidityEndDateAndTime", g.valid_until.as_ref());
        }
        MessageBody::TransitDeclaration(d) => write_declaration(w, d),
        MessageBody::ReleaseForTransit(r) => {
            w.leaf("MRN", &r.mrn);
            w.timestamp("ReleaseDateAndTime", &r.released_at);
        }
        MessageBody::NoReleaseForTransit(n) => {
            w.leaf("MRN", &n.mrn);
            w.leaf("NoReleaseReason", no_release_code(n.reason));
            w.text_or_empty("Remarks", &n.remarks);
        }
        MessageBody::BorderCrossing(b) => {
            w.leaf("MRN", &b.mrn);
            w.leaf("CustomsOfficeOfTransitActual", &b.office);
            w.timestamp("CrossingDateAndTime", &b.crossed_at);
            w.boolean("StateOfSealsOk", b.seals_intact);
            write_seals(w, &b.seals_observed);
        }
        MessageBody::Incident(i) => {
            w.leaf("MRN", &i.mrn);
            w.leaf("IncidentCode", incident_code(i.code));
            write_place(w, &i.place);
            w.timestamp("IncidentDateAndTime", &i.occurred_at);
            if let Some(e) = &i.endorsed_by {
                w.open("Endorsement");
                w.leaf("Authority", &e.authority);
                w.leaf("Country", &e.country);
                w.close();
            }
            if !i.new_seals.is_empty() {
                w.open("NewSeals");
                write_seals(w, &i.new_seals);
                w.close();
            }
            if let Some(t) = &i.new_transport {
                write_transport(w, "NewMeansOfTransport", t);
            }
            w.text_or_empty("IncidentText", &i.description);
        }
        MessageBody::DestinationChange(d) => {
            w.leaf("MRN", &d.mrn);
            w.leaf(
                "NewCustomsOfficeOfDestination",
                &d.new_office_of_destination,
            );
            w.text_or_empty("Reason", &d.reason);
        }
        MessageBody::ArrivalNotification(a) => {
            w.leaf("MRN", &a.mrn);
            w.leaf("CustomsOfficeOfDestinationActual", &a.office);
            w.timestamp("ArrivalDateAndTime", &a.arrived_at);
        }
        MessageBody::ControlResults(r) => {
            w.leaf("MRN", &r.mrn);
            w.leaf("CustomsOfficeOfDestinationActual", &r.office);
            w.boolean("Conform", r.conform);
            w.boolean("StateOfSealsOk", r.seals_intact);
            write_seals(w, &r.seals_found);
            if let Some(m) = r.gross_mass_g_found {
                w.number("GrossMass", m);
            }
            if let Some(p) = r.packages_found {
                w.number("NumberOfPackages", p);
            }
            w.text_or_empty("Remarks", &r.remarks);
        }
        MessageBody::Discharge(d) => w.leaf("MRN", &d.mrn),
        MessageBody::Cancellation(c) => {
            w.leaf("MRN", &c.mrn);
            w.text_or_empty("Reason", &c.reason);
        }
        MessageBody::Amendment(a) => {
            w.leaf("MRN", &a.mrn);
            write_changes(w, &a.changes);
        }
        MessageBody::EnquiryRequest(e) => {
            w.leaf("MRN", &e.mrn);
            w.text_or_empty("Reason", &e.reason);
        }
        MessageBody::EnquiryResponse(e) => {
            w.leaf("MRN", &e.mrn);
            w.open("EnquiryOutcome");
            match &e.outcome {
                EnquiryOutcome::GoodsArrived { arrived_at, office } => {
                    w.open("GoodsArrived");
                    w.timestamp("ArrivalDateAndTime", arrived_at);
                    w.leaf("CustomsOfficeOfDestinationActual", office);
                    w.close();
                }
                EnquiryOutcome::GoodsNotArrived => w.empty("GoodsNotArrived"),
                EnquiryOutcome::Unknown => w.empty("Unknown"),
            }
            w.close();
            w.text_or_empty("Remarks", &e.remarks);
        }
        MessageBody::Recovery(r) => {
            w.leaf("MRN", &r.mrn);
            w.money("AmountRecovered", &r.amount_recovered);
            w.text_or_empty("Reason", &r.reason);
        }
    }
}

fn read_outcome(node: &Node) -> Result<EnquiryOutcome, XmlError> {
    let mut c = Children::of(node)?;
    let outcome = if let Some(arrived) = c.optional("GoodsArrived")? {
        let mut a = Children::of(arrived)?;
        let outcome = EnquiryOutcome::GoodsArrived {
            arrived_at: a.timestamp("ArrivalDateAndTime")?,
            office: a.id("CustomsOfficeOfDestinationActual")?,
        };
        a.finish()?;
        outcome
    } else if let Some(n) = c.optional("GoodsNotArrived")? {
        Children::of(n)?.finish()?;
        EnquiryOutcome::GoodsNotArrived
    } else if let Some(n) = c.optional("Unknown")? {
        Children::of(n)?.finish()?;
        EnquiryOutcome::Unknown
    } else {
        return Err(XmlError::MissingElement {
            path: format!("{}/(GoodsArrived|GoodsNotArrived|Unknown)", node.path),
            found: node.children.first().map(|n| n.path.clone()),
        });
    };
    c.finish()?;
    Ok(outcome)
}

fn read_body(root: &str, c: &mut Children<'_>) -> Result<MessageBody, XmlError> {
    Ok(match root {
        "GuaranteeRegistration" => MessageBody::GuaranteeRegistration(GuaranteeRegistration {
            grn: c.id("GuaranteeReferenceNumber")?,
            guarantor: read_party(c.required("Guarantor")?)?,
            principal: read_party(c.required("Principal")?)?,
            reference_amount: c.money("ReferenceAmount")?,
            valid_until: c.timestamp_opt("ValidityEndDateAndTime")?,
        }),
        "TransitDeclaration" => MessageBody::TransitDeclaration(read_declaration(c)?),
        "ReleaseForTransit" => MessageBody::ReleaseForTransit(ReleaseForTransit {
            mrn: c.id("MRN")?,
            released_at: c.timestamp("ReleaseDateAndTime")?,
        }),
        "NoReleaseForTransit" => MessageBody::NoReleaseForTransit(NoReleaseForTransit {
            mrn: c.id("MRN")?,
            reason: read_no_release(c.required("NoReleaseReason")?)?,
            remarks: c.text_or_empty("Remarks")?,
        }),
        "BorderCrossing" => MessageBody::BorderCrossing(BorderCrossing {
            mrn: c.id("MRN")?,
            office: c.id("CustomsOfficeOfTransitActual")?,
            crossed_at: c.timestamp("CrossingDateAndTime")?,
            seals_intact: c.boolean("StateOfSealsOk")?,
            seals_observed: read_seals(c)?,
        }),
        "Incident" => MessageBody::Incident(Incident {
            mrn: c.id("MRN")?,
            code: read_incident_code(c.required("IncidentCode")?)?,
            place: read_place(c.required("Location")?)?,
            occurred_at: c.timestamp("IncidentDateAndTime")?,
            endorsed_by: match c.optional("Endorsement")? {
                Some(node) => {
                    let mut e = Children::of(node)?;
                    let endorsement = Endorsement {
                        authority: e.text("Authority")?,
                        country: e.id("Country")?,
                    };
                    e.finish()?;
                    Some(endorsement)
                }
                None => None,
            },
            new_seals: match c.optional("NewSeals")? {
                Some(node) => {
                    let mut s = Children::of(node)?;
                    let seals = read_seals(&mut s)?;
                    s.finish()?;
                    seals
                }
                None => Vec::new(),
            },
            new_transport: c
                .optional("NewMeansOfTransport")?
                .map(read_transport)
                .transpose()?,
            description: c.text_or_empty("IncidentText")?,
        }),
        "DestinationChange" => MessageBody::DestinationChange(DestinationChange {
            mrn: c.id("MRN")?,
            new_office_of_destination: c.id("NewCustomsOfficeOfDestination")?,
            reason: c.text_or_empty("Reason")?,
        }),
        "ArrivalNotification" => MessageBody::ArrivalNotification(ArrivalNotification {
            mrn: c.id("MRN")?,
            office: c.id("CustomsOfficeOfDestinationActual")?,
            arrived_at: c.timestamp("ArrivalDateAndTime")?,
        }),
        "ControlResults" => MessageBody::ControlResults(ControlResults {
            mrn: c.id("MRN")?,
            office: c.id("CustomsOfficeOfDestinationActual")?,
            conform: c.boolean("Conform")?,
            seals_intact: c.boolean("StateOfSealsOk")?,
            seals_found: read_seals(c)?,
            gross_mass_g_found: c.optional("GrossMass")?.map(read::unsigned).transpose()?,
            packages_found: c
                .optional("NumberOfPackages")?
                .map(read::unsigned)
                .transpose()?,
            remarks: c.text_or_empty("Remarks")?,
        }),
        "Discharge" => MessageBody::Discharge(Discharge { mrn: c.id("MRN")? }),
        "Cancellation" => MessageBody::Cancellation(Cancellation {
            mrn: c.id("MRN")?,
            reason: c.text_or_empty("Reason")?,
        }),
        "Amendment" => MessageBody::Amendment(Amendment {
            mrn: c.id("MRN")?,
            changes: read_changes(c)?,
        }),
        "EnquiryRequest" => MessageBody::EnquiryRequest(EnquiryRequest {
            mrn: c.id("MRN")?,
            reason: c.text_or_empty("Reason")?,
        }),
        "EnquiryResponse" => MessageBody::EnquiryResponse(EnquiryResponse {
            mrn: c.id("MRN")?,
            outcome: read_outcome(c.required("EnquiryOutcome")?)?,
            remarks: c.text_or_empty("Remarks")?,
        }),
        "Recovery" => MessageBody::Recovery(Recovery {
            mrn: c.id("MRN")?,
            amount_recovered: c.money("AmountRecovered")?,
            reason: c.text_or_empty("Reason")?,
        }),
        other => {
            return Err(XmlError::UnknownMessage {
                name: other.to_owned(),
                expected: "an inbound message",
            })
        }
    })
}

/// Decodes any inbound XML message into the contract's [`InboundMessage`], with the same
/// checked identifiers as the JSON path (an MRN with a wrong check character is an error
/// naming its element). Callers then run [`InboundMessage::validate`] as for JSON.
pub fn decode_inbound(bytes: &[u8]) -> Result<InboundMessage, XmlError> {
    let root = parse(bytes)?;
    if !INBOUND_ROOTS.contains(&root.name.as_str()) {
        return Err(XmlError::UnknownMessage {
            name: root.name.clone(),
            expected: "an inbound message",
        });
    }
    let mut c = Children::of(&root)?;
    let header = read_header(&mut c)?;
    let body = read_body(&root.name, &mut c)?;
    c.finish()?;
    Ok(InboundMessage {
        message_id: header.message_id,
        correlation_id: header.correlation_id,
        sender: header.sender,
        sent_at: header.prepared_at,
        body,
    })
}

/// Encodes an inbound message as indented UTF-8 XML in the message set's namespace.
pub fn encode_inbound(msg: &InboundMessage) -> Vec<u8> {
    let mut w = XmlWriter::new(root_name(&msg.body));
    write_header(&mut w, &Header::of(msg));
    write_body(&mut w, &msg.body);
    w.finish()
}

fn root_name(body: &MessageBody) -> &'static str {
    // The contract's type names are the root element names.
    body.kind()
}
