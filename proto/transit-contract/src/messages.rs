//! Inbound messages: what the national customs systems send to the ledger, with their NCTS
//! analogues, and the cross-field checks that a single message can be held to on its own.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::ids::{
    CountryCode, GuaranteeReference, HsCode, MessageId, Money, Mrn, OfficeCode, PackageKindCode,
    SealId, Timestamp, TraderId, UnLocode, VehicleId,
};

/// At most 9 offices of transit per declaration, as in NCTS.
pub const OFFICES_OF_TRANSIT_MAX: usize = 9;
/// At most 999 goods items per declaration, as in NCTS.
pub const GOODS_ITEMS_MAX: usize = 999;
/// At most 99 seals per piece of transport equipment (WCO "number of seals" n..4 is larger,
/// but no truck carries more and the bound keeps messages small).
pub const SEALS_PER_EQUIPMENT_MAX: usize = 99;
/// At most 99 pieces of transport equipment per declaration.
pub const EQUIPMENT_MAX: usize = 99;
/// At most 99 package lines per goods item.
pub const PACKAGES_PER_ITEM_MAX: usize = 99;
/// At most 99 countries of routing.
pub const COUNTRIES_OF_ROUTING_MAX: usize = 99;
/// Free text (descriptions, remarks, reasons) is at most 512 characters.
pub const TEXT_LEN_MAX: usize = 512;
/// Names (of traders, authorities) are at most 70 characters (WCO an..70).
pub const NAME_LEN_MAX: usize = 70;
/// A container identifier is at most 17 characters (WCO an..17).
pub const CONTAINER_ID_LEN_MAX: usize = 17;

/// One message from a national system, with its envelope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InboundMessage {
    /// The sender's id of this message: the idempotency key.
    pub message_id: MessageId,
    /// The message this one answers or follows, if any.
    pub correlation_id: Option<MessageId>,
    /// Who sent it.
    pub sender: Sender,
    /// When the sender says it sent it.
    pub sent_at: Timestamp,
    /// What it says.
    pub body: MessageBody,
}

/// The administration and office that sent a message.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Sender {
    pub country: CountryCode,
    pub office: OfficeCode,
}

/// The content of a message, tagged by its type: `{"type": "...", "body": {...}}`.
// The declaration variant is large (~0.5 KiB) but values are handled one at a time, never in
// hot arrays; boxing it would make every construction and match noisier for no measured gain.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "body")]
pub enum MessageBody {
    /// A guarantee accepted by the guarantee office (NCTS: guarantee management, GMS).
    GuaranteeRegistration(GuaranteeRegistration),
    /// A transit declaration accepted at departure (NCTS IE015 declaration / IE028 MRN
    /// allocated).
    TransitDeclaration(TransitDeclaration),
    /// Goods released for transit (NCTS IE029).
    ReleaseForTransit(ReleaseForTransit),
    /// Release refused (NCTS IE051 no release for transit).
    NoReleaseForTransit(NoReleaseForTransit),
    /// Passage of an office of transit (NCTS IE118 notification crossing frontier; an
    /// undeclared office first asks for the record with IE114/IE115).
    BorderCrossing(BorderCrossing),
    /// An incident en route (NCTS IE180 incident notification).
    Incident(Incident),
    /// The office of destination changed after release (the actual office of destination
    /// differs from the declared one: NCTS IE002/IE003 diversion handling).
    DestinationChange(DestinationChange),
    /// Arrival at destination (NCTS IE007 arrival notification / IE006 arrival advice).
    ArrivalNotification(ArrivalNotification),
    /// Unloading remarks or control results at destination (NCTS IE044 unloading remarks /
    /// IE018 destination control results).
    ControlResults(ControlResults),
    /// Write-off at departure (NCTS IE045 write-off notification).
    Discharge(Discharge),
    /// Cancellation before release (NCTS IE014 declaration invalidation request).
    Cancellation(Cancellation),
    /// Amendment before release (NCTS IE013 declaration amendment).
    Amendment(Amendment),
    /// An enquiry opened for a movement with no (complete) end (NCTS IE142/IE140).
    EnquiryRequest(EnquiryRequest),
    /// The answer to an enquiry (NCTS IE143/IE141).
    EnquiryResponse(EnquiryResponse),
    /// Duties recovered against the guarantee (NCTS recovery procedure, IE150..IE154).
    Recovery(Recovery),
}

/// A named party (guarantor, principal).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Party {
    pub id: TraderId,
    pub name: String,
}

/// A trader with its country of establishment (holder, carrier).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Trader {
    pub id: TraderId,
    pub name: String,
    pub country: CountryCode,
}

/// A guarantee accepted by its guarantee office: the credit limit for transit movements.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GuaranteeRegistration {
    pub grn: GuaranteeReference,
    pub guarantor: Party,
    pub principal: Party,
    pub reference_amount: Money,
    pub valid_until: Option<Timestamp>,
}

/// The kind of transit declaration. Kept small on purpose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum DeclarationType {
    /// External transit (non-Union goods, in EU terms).
    T1,
    /// Internal transit (goods in free circulation).
    T2,
    /// The ECOWAS inter-state road transit (ISRT) regime.
    #[serde(rename = "ISRT")]
    Isrt,
}

/// An office of transit with the expected time of arrival there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OfficeOfTransit {
    pub office: OfficeCode,
    pub expected_arrival: Option<Timestamp>,
}

/// The mode of transport at the border.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TransportMode {
    Road,
    Rail,
    Sea,
    Air,
    InlandWaterway,
    Other,
}

/// The means of transport crossing the border.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MeansOfTransport {
    pub mode: TransportMode,
    pub identity: VehicleId,
    pub nationality: CountryCode,
}

/// A piece of transport equipment (container or sealed trailer) and its seals.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TransportEquipment {
    pub container_id: Option<String>,
    pub seals: Vec<SealId>,
}

/// One line of packages of a goods item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Packaging {
    /// UN/ECE Recommendation 21 code.
    pub kind_code: PackageKindCode,
    /// Zero is allowed: bulk goods have no packages.
    pub count: u32,
}

/// One goods item of a declaration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GoodsItem {
    pub description: String,
    pub hs_code: HsCode,
    /// Gross mass in grams; integer so that sums are exact.
    pub gross_mass_g: u64,
    pub net_mass_g: Option<u64>,
    pub packages: Vec<Packaging>,
}

/// A transit declaration as accepted at the office of departure.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TransitDeclaration {
    pub mrn: Mrn,
    pub declaration_type: DeclarationType,
    pub holder: Trader,
    pub office_of_departure: OfficeCode,
    pub offices_of_transit: Vec<OfficeOfTransit>,
    pub office_of_destination: OfficeCode,
    pub countries_of_routing: Vec<CountryCode>,
    pub itinerary_binding: bool,
    /// The date by which the goods must reach destination.
    pub time_limit: Timestamp,
    pub transport: MeansOfTransport,
    pub carrier: Option<Trader>,
    pub equipment: Vec<TransportEquipment>,
    pub goods: Vec<GoodsItem>,
    pub customs_value: Money,
    /// The duties and taxes at stake: what release reserves on the guarantee.
    pub amount_at_stake: Money,
    pub guarantee: GuaranteeReference,
}

impl TransitDeclaration {
    /// The declared offices of transit, in order.
    pub fn transit_offices(&self) -> impl Iterator<Item = &OfficeCode> {
        self.offices_of_transit.iter().map(|o| &o.office)
    }

    /// Every seal declared on every piece of equipment.
    pub fn seals(&self) -> impl Iterator<Item = &SealId> {
        self.equipment.iter().flat_map(|e| e.seals.iter())
    }

    /// The total declared gross mass in grams (saturating: a sum this large is already absurd).
    pub fn gross_mass_g_total(&self) -> u64 {
        self.goods
            .iter()
            .fold(0_u64, |acc, g| acc.saturating_add(g.gross_mass_g))
    }

    /// The total declared number of packages (saturating).
    pub fn packages_total(&self) -> u32 {
        self.goods
            .iter()
            .flat_map(|g| g.packages.iter())
            .fold(0_u32, |acc, p| acc.saturating_add(p.count))
    }
}

/// Goods released for transit at departure.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReleaseForTransit {
    pub mrn: Mrn,
    pub released_at: Timestamp,
}

/// Why release was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum NoReleaseReason {
    ControlNotSatisfactory,
    GuaranteeNotValid,
    Other,
}

/// Release refused at departure.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NoReleaseForTransit {
    pub mrn: Mrn,
    pub reason: NoReleaseReason,
    pub remarks: String,
}

/// A passage at an office of transit (exit from one country, entry into the next).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BorderCrossing {
    pub mrn: Mrn,
    /// The office of transit that saw the goods pass.
    pub office: OfficeCode,
    pub crossed_at: Timestamp,
    pub seals_intact: bool,
    pub seals_observed: Vec<SealId>,
}

/// What happened en route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum IncidentCode {
    /// A deviation from the itinerary forced by circumstances beyond the carrier's control.
    Deviation,
    SealsBroken,
    /// Goods moved to another means of transport.
    Transhipment,
    Accident,
    Other,
}

/// Where something happened: a UN/LOCODE, a GNSS position (degrees * 10^7), or both.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Place {
    pub locode: Option<UnLocode>,
    pub latitude_e7: Option<i32>,
    pub longitude_e7: Option<i32>,
}

/// The authority that endorsed an incident.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Endorsement {
    pub authority: String,
    pub country: CountryCode,
}

/// An incident en route.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Incident {
    pub mrn: Mrn,
    pub code: IncidentCode,
    pub place: Place,
    pub occurred_at: Timestamp,
    pub endorsed_by: Option<Endorsement>,
    pub new_seals: Vec<SealId>,
    pub new_transport: Option<MeansOfTransport>,
    pub description: String,
}

/// A change of the office of destination after release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DestinationChange {
    pub mrn: Mrn,
    pub new_office_of_destination: OfficeCode,
    pub reason: String,
}

/// Arrival at an office of destination.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ArrivalNotification {
    pub mrn: Mrn,
    /// The actual office of destination (may differ from the declared one).
    pub office: OfficeCode,
    pub arrived_at: Timestamp,
}

/// Unloading remarks / control results at destination.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ControlResults {
    pub mrn: Mrn,
    pub office: OfficeCode,
    pub conform: bool,
    pub seals_intact: bool,
    pub seals_found: Vec<SealId>,
    /// Zero is allowed here, unlike in a declaration: an empty truck is exactly the kind of
    /// finding the ledger must be able to record.
    pub gross_mass_g_found: Option<u64>,
    pub packages_found: Option<u32>,
    pub remarks: String,
}

/// Write-off at departure: closes the movement and releases the guarantee.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Discharge {
    pub mrn: Mrn,
}

/// Cancellation of a declaration that has not been released.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Cancellation {
    pub mrn: Mrn,
    pub reason: String,
}

/// The fields of a declaration that may change before release; `None` = unchanged.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeclarationChanges {
    pub offices_of_transit: Option<Vec<OfficeOfTransit>>,
    pub office_of_destination: Option<OfficeCode>,
    pub time_limit: Option<Timestamp>,
    pub transport: Option<MeansOfTransport>,
    pub equipment: Option<Vec<TransportEquipment>>,
    pub goods: Option<Vec<GoodsItem>>,
    pub amount_at_stake: Option<Money>,
}

impl DeclarationChanges {
    /// Whether nothing would change.
    pub fn is_empty(&self) -> bool {
        self == &DeclarationChanges::default()
    }

    /// Applies the changes to a declaration.
    pub fn apply_to(&self, d: &mut TransitDeclaration) {
        if let Some(v) = &self.offices_of_transit {
            d.offices_of_transit = v.clone();
        }
        if let Some(v) = &self.office_of_destination {
            d.office_of_destination = v.clone();
        }
        if let Some(v) = &self.time_limit {
            d.time_limit = *v;
        }
        if let Some(v) = &self.transport {
            d.transport = v.clone();
        }
        if let Some(v) = &self.equipment {
            d.equipment = v.clone();
        }
        if let Some(v) = &self.goods {
            d.goods = v.clone();
        }
        if let Some(v) = &self.amount_at_stake {
            d.amount_at_stake = v.clone();
        }
    }
}

/// An amendment of a declaration before release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Amendment {
    pub mrn: Mrn,
    pub changes: DeclarationChanges,
}

/// A request to open an enquiry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EnquiryRequest {
    pub mrn: Mrn,
    pub reason: String,
}

/// What an enquiry found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all_fields = "camelCase", deny_unknown_fields)]
pub enum EnquiryOutcome {
    /// The goods did arrive (proof of arrival found): the movement can be discharged.
    GoodsArrived {
        arrived_at: Timestamp,
        office: OfficeCode,
    },
    GoodsNotArrived,
    Unknown,
}

/// The answer to an enquiry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EnquiryResponse {
    pub mrn: Mrn,
    pub outcome: EnquiryOutcome,
    pub remarks: String,
}

/// Duties recovered against the guarantee after an unresolved enquiry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Recovery {
    pub mrn: Mrn,
    pub amount_recovered: Money,
    pub reason: String,
}

/// A cross-field rule that a message breaks on its own.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValidationError {
    #[error("sender office {office} does not belong to sender country {country}")]
    SenderCountryMismatch {
        country: CountryCode,
        office: OfficeCode,
    },
    #[error("{field}: {actual} entries, at most {max} allowed")]
    TooMany {
        field: &'static str,
        max: usize,
        actual: usize,
    },
    #[error("{field}: must not be empty")]
    Empty { field: &'static str },
    #[error("{field}: {value} appears more than once")]
    Duplicate { field: &'static str, value: String },
    #[error("{field}: {actual} characters, at most {max} allowed")]
    TooLong {
        field: &'static str,
        max: usize,
        actual: usize,
    },
    #[error("{field}: currency {found}, expected {expected}")]
    CurrencyMismatch {
        field: &'static str,
        expected: String,
        found: String,
    },
    #[error("{field}: must be greater than zero")]
    NotPositive { field: &'static str },
    #[error("{field}: {reason}")]
    Invalid { field: &'static str, reason: String },
}

type Check = Result<(), ValidationError>;

fn text(field: &'static str, value: &str, max: usize) -> Check {
    let actual = value.chars().count();
    if actual > max {
        return Err(ValidationError::TooLong { field, max, actual });
    }
    Ok(())
}

fn non_empty_text(field: &'static str, value: &str, max: usize) -> Check {
    if value.trim().is_empty() {
        return Err(ValidationError::Empty { field });
    }
    text(field, value, max)
}

fn at_most<T>(field: &'static str, items: &[T], max: usize) -> Check {
    if items.len() > max {
        return Err(ValidationError::TooMany {
            field,
            max,
            actual: items.len(),
        });
    }
    Ok(())
}

fn party(field: &'static str, p: &Party) -> Check {
    non_empty_text(field, &p.name, NAME_LEN_MAX)
}

fn trader(field: &'static str, t: &Trader) -> Check {
    non_empty_text(field, &t.name, NAME_LEN_MAX)
}

fn offices_of_transit(offices: &[OfficeOfTransit]) -> Check {
    at_most("officesOfTransit", offices, OFFICES_OF_TRANSIT_MAX)?;
    let mut seen = BTreeSet::new();
    for o in offices {
        if !seen.insert(&o.office) {
            return Err(ValidationError::Duplicate {
                field: "officesOfTransit",
                value: o.office.to_string(),
            });
        }
    }
    Ok(())
}

fn seals(field: &'static str, seals: &[SealId]) -> Check {
    at_most(field, seals, SEALS_PER_EQUIPMENT_MAX)
}

fn equipment(items: &[TransportEquipment]) -> Check {
    at_most("equipment", items, EQUIPMENT_MAX)?;
    for e in items {
        seals("equipment.seals", &e.seals)?;
        if let Some(id) = &e.container_id {
            non_empty_text("equipment.containerId", id, CONTAINER_ID_LEN_MAX)?;
            if !id
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
            {
                return Err(ValidationError::Invalid {
                    field: "equipment.containerId",
                    reason: "only upper-case letters and digits are allowed".to_owned(),
                });
            }
        }
    }
    Ok(())
}

fn goods(items: &[GoodsItem]) -> Check {
    if items.is_empty() {
        return Err(ValidationError::Empty { field: "goods" });
    }
    at_most("goods", items, GOODS_ITEMS_MAX)?;
    for g in items {
        non_empty_text("goods.description", &g.description, TEXT_LEN_MAX)?;
        if g.gross_mass_g == 0 {
            return Err(ValidationError::NotPositive {
                field: "goods.grossMassG",
            });
        }
        match g.net_mass_g {
            Some(0) => {
                return Err(ValidationError::NotPositive {
                    field: "goods.netMassG",
                })
            }
            Some(net) if net > g.gross_mass_g => {
                return Err(ValidationError::Invalid {
                    field: "goods.netMassG",
                    reason: format!("net mass {net} g exceeds gross mass {} g", g.gross_mass_g),
                })
            }
            _ => {}
        }
        at_most("goods.packages", &g.packages, PACKAGES_PER_ITEM_MAX)?;
    }
    Ok(())
}

fn means_of_transport(_t: &MeansOfTransport) -> Check {
    // Every field is a checked type already; the function exists so that a future rule (e.g.
    // mode must be Road on this corridor) has one home.
    Ok(())
}

fn place(p: &Place) -> Check {
    match (p.latitude_e7, p.longitude_e7) {
        (Some(lat), Some(lon)) => {
            if !(-900_000_000..=900_000_000).contains(&lat) {
                return Err(ValidationError::Invalid {
                    field: "place.latitudeE7",
                    reason: format!("{lat} is outside -90..=90 degrees"),
                });
            }
            if !(-1_800_000_000..=1_800_000_000).contains(&lon) {
                return Err(ValidationError::Invalid {
                    field: "place.longitudeE7",
                    reason: format!("{lon} is outside -180..=180 degrees"),
                });
            }
            Ok(())
        }
        (None, None) => Ok(()),
        _ => Err(ValidationError::Invalid {
            field: "place",
            reason: "latitude and longitude come together or not at all".to_owned(),
        }),
    }
}

fn declaration(d: &TransitDeclaration) -> Check {
    // The MRN carries the country of departure; an office of departure elsewhere means the
    // MRN or the office is wrong.
    if d.office_of_departure.country() != d.mrn.country() {
        return Err(ValidationError::Invalid {
            field: "officeOfDeparture",
            reason: format!(
                "office {} is not in the MRN's country of departure {}",
                d.office_of_departure,
                d.mrn.country()
            ),
        });
    }
    trader("holder.name", &d.holder)?;
    if let Some(c) = &d.carrier {
        trader("carrier.name", c)?;
    }
    offices_of_transit(&d.offices_of_transit)?;
    at_most(
        "countriesOfRouting",
        &d.countries_of_routing,
        COUNTRIES_OF_ROUTING_MAX,
    )?;
    means_of_transport(&d.transport)?;
    equipment(&d.equipment)?;
    goods(&d.goods)?;
    if d.customs_value.currency() != d.amount_at_stake.currency() {
        return Err(ValidationError::CurrencyMismatch {
            field: "amountAtStake",
            expected: d.customs_value.currency().to_string(),
            found: d.amount_at_stake.currency().to_string(),
        });
    }
    Ok(())
}

fn changes(c: &DeclarationChanges) -> Check {
    if c.is_empty() {
        return Err(ValidationError::Empty { field: "changes" });
    }
    if let Some(o) = &c.offices_of_transit {
        offices_of_transit(o)?;
    }
    if let Some(t) = &c.transport {
        means_of_transport(t)?;
    }
    if let Some(e) = &c.equipment {
        equipment(e)?;
    }
    if let Some(g) = &c.goods {
        goods(g)?;
    }
    Ok(())
}

impl InboundMessage {
    /// Checks the cross-field rules that hold for the message alone (no ledger state).
    pub fn validate(&self) -> Result<(), ValidationError> {
        if self.sender.office.country() != self.sender.country {
            return Err(ValidationError::SenderCountryMismatch {
                country: self.sender.country.clone(),
                office: self.sender.office.clone(),
            });
        }
        match &self.body {
            MessageBody::GuaranteeRegistration(g) => {
                party("guarantor.name", &g.guarantor)?;
                party("principal.name", &g.principal)?;
                if g.reference_amount.is_zero() {
                    return Err(ValidationError::NotPositive {
                        field: "referenceAmount",
                    });
                }
                Ok(())
            }
            MessageBody::TransitDeclaration(d) => declaration(d),
            MessageBody::ReleaseForTransit(_) | MessageBody::Discharge(_) => Ok(()),
            MessageBody::NoReleaseForTransit(n) => text("remarks", &n.remarks, TEXT_LEN_MAX),
            MessageBody::BorderCrossing(b) => seals("sealsObserved", &b.seals_observed),
            MessageBody::Incident(i) => {
                place(&i.place)?;
                if let Some(e) = &i.endorsed_by {
                    non_empty_text("endorsedBy.authority", &e.authority, NAME_LEN_MAX)?;
                }
                seals("newSeals", &i.new_seals)?;
                if let Some(t) = &i.new_transport {
                    means_of_transport(t)?;
                }
                text("description", &i.description, TEXT_LEN_MAX)
            }
            MessageBody::DestinationChange(d) => text("reason", &d.reason, TEXT_LEN_MAX),
            MessageBody::ArrivalNotification(_) => Ok(()),
            MessageBody::ControlResults(c) => {
                seals("sealsFound", &c.seals_found)?;
                text("remarks", &c.remarks, TEXT_LEN_MAX)
            }
            MessageBody::Cancellation(c) => text("reason", &c.reason, TEXT_LEN_MAX),
            MessageBody::Amendment(a) => changes(&a.changes),
            MessageBody::EnquiryRequest(e) => text("reason", &e.reason, TEXT_LEN_MAX),
            MessageBody::EnquiryResponse(e) => text("remarks", &e.remarks, TEXT_LEN_MAX),
            MessageBody::Recovery(r) => text("reason", &r.reason, TEXT_LEN_MAX),
        }
    }

    /// The movement the message is about; `None` only for a guarantee registration.
    pub fn mrn(&self) -> Option<&Mrn> {
        match &self.body {
            MessageBody::GuaranteeRegistration(_) => None,
            MessageBody::TransitDeclaration(b) => Some(&b.mrn),
            MessageBody::ReleaseForTransit(b) => Some(&b.mrn),
            MessageBody::NoReleaseForTransit(b) => Some(&b.mrn),
            MessageBody::BorderCrossing(b) => Some(&b.mrn),
            MessageBody::Incident(b) => Some(&b.mrn),
            MessageBody::DestinationChange(b) => Some(&b.mrn),
            MessageBody::ArrivalNotification(b) => Some(&b.mrn),
            MessageBody::ControlResults(b) => Some(&b.mrn),
            MessageBody::Discharge(b) => Some(&b.mrn),
            MessageBody::Cancellation(b) => Some(&b.mrn),
            MessageBody::Amendment(b) => Some(&b.mrn),
            MessageBody::EnquiryRequest(b) => Some(&b.mrn),
            MessageBody::EnquiryResponse(b) => Some(&b.mrn),
            MessageBody::Recovery(b) => Some(&b.mrn),
        }
    }

    /// The guarantee registered by a guarantee registration; `None` for every other message
    /// (a declaration's guarantee is read from the declaration itself).
    pub fn grn(&self) -> Option<&GuaranteeReference> {
        match &self.body {
            MessageBody::GuaranteeRegistration(g) => Some(&g.grn),
            _ => None,
        }
    }

    /// The message type name, as in the JSON `type` tag.
    pub fn kind(&self) -> &'static str {
        self.body.kind()
    }

    /// The business time the message reports: when the goods were released, crossed, arrived
    /// or when the incident happened; the sending time for messages without one.
    pub fn business_time(&self) -> Timestamp {
        match &self.body {
            MessageBody::ReleaseForTransit(b) => b.released_at,
            MessageBody::BorderCrossing(b) => b.crossed_at,
            MessageBody::Incident(b) => b.occurred_at,
            MessageBody::ArrivalNotification(b) => b.arrived_at,
            _ => self.sent_at,
        }
    }

    /// SHA-256 of the canonical JSON of the whole message. Serialising the typed value gives a
    /// fixed field order, and ids are normalised on parse, so two deliveries of the same
    /// message hash equal while a reuse of the id for different content does not.
    pub fn content_digest(&self) -> [u8; 32] {
        let bytes = serde_json::to_vec(self)
            .expect("invariant: an inbound message always serialises to JSON");
        Sha256::digest(&bytes).into()
    }

    /// [`Self::content_digest`] as lower-case hex.
    pub fn content_digest_hex(&self) -> String {
        hex::encode(self.content_digest())
    }
}

impl MessageBody {
    /// The type name, as in the JSON `type` tag.
    pub fn kind(&self) -> &'static str {
        match self {
            MessageBody::GuaranteeRegistration(_) => "GuaranteeRegistration",
            MessageBody::TransitDeclaration(_) => "TransitDeclaration",
            MessageBody::ReleaseForTransit(_) => "ReleaseForTransit",
            MessageBody::NoReleaseForTransit(_) => "NoReleaseForTransit",
            MessageBody::BorderCrossing(_) => "BorderCrossing",
            MessageBody::Incident(_) => "Incident",
            MessageBody::DestinationChange(_) => "DestinationChange",
            MessageBody::ArrivalNotification(_) => "ArrivalNotification",
            MessageBody::ControlResults(_) => "ControlResults",
            MessageBody::Discharge(_) => "Discharge",
            MessageBody::Cancellation(_) => "Cancellation",
            MessageBody::Amendment(_) => "Amendment",
            MessageBody::EnquiryRequest(_) => "EnquiryRequest",
            MessageBody::EnquiryResponse(_) => "EnquiryResponse",
            MessageBody::Recovery(_) => "Recovery",
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::fixtures::journey;

    fn base() -> Timestamp {
        "2024-03-01T08:00:00Z".parse().unwrap()
    }

    fn declaration() -> InboundMessage {
        journey(base(), 1).declaration
    }

    fn with_declaration(f: impl FnOnce(&mut TransitDeclaration)) -> InboundMessage {
        let mut m = declaration();
        if let MessageBody::TransitDeclaration(d) = &mut m.body {
            f(d);
        }
        m
    }

    fn office(s: &str) -> OfficeOfTransit {
        OfficeOfTransit {
            office: s.parse().unwrap(),
            expected_arrival: None,
        }
    }

    #[test]
    fn sender_office_must_be_in_sender_country() {
        let mut m = declaration();
        m.sender.country = "BF".parse().unwrap();
        assert!(matches!(
            m.validate(),
            Err(ValidationError::SenderCountryMismatch { .. })
        ));
    }

    #[test]
    fn offices_of_transit_are_bounded_and_distinct() {
        let nine: Vec<_> = (1..=9).map(|i| office(&format!("BFTRN00{i}"))).collect();
        assert!(with_declaration(|d| d.offices_of_transit = nine.clone())
            .validate()
            .is_ok());
        let mut ten = nine;
        ten.push(office("BFTRN010"));
        assert!(matches!(
            with_declaration(|d| d.offices_of_transit = ten).validate(),
            Err(ValidationError::TooMany {
                max: 9,
                actual: 10,
                ..
            })
        ));
        let twice = vec![office("TGCIN001"), office("TGCIN001")];
        assert!(matches!(
            with_declaration(|d| d.offices_of_transit = twice).validate(),
            Err(ValidationError::Duplicate { .. })
        ));
    }

    #[test]
    fn goods_rules() {
        assert_eq!(
            with_declaration(|d| d.goods.clear()).validate(),
            Err(ValidationError::Empty { field: "goods" })
        );
        assert!(matches!(
            with_declaration(|d| d.goods[0].gross_mass_g = 0).validate(),
            Err(ValidationError::NotPositive { .. })
        ));
        assert!(matches!(
            with_declaration(|d| d.goods[0].net_mass_g = Some(d.goods[0].gross_mass_g + 1))
                .validate(),
            Err(ValidationError::Invalid { .. })
        ));
        assert!(matches!(
            with_declaration(|d| d.goods[0].description = "x".repeat(513)).validate(),
            Err(ValidationError::TooLong { max: 512, .. })
        ));
        assert!(
            with_declaration(|d| d.goods[0].description = "é".repeat(512))
                .validate()
                .is_ok()
        );
        let item = declaration_goods_item();
        assert!(matches!(
            with_declaration(|d| d.goods = vec![item; 1000]).validate(),
            Err(ValidationError::TooMany { max: 999, .. })
        ));
    }

    fn declaration_goods_item() -> GoodsItem {
        match declaration().body {
            MessageBody::TransitDeclaration(d) => d.goods[0].clone(),
            _ => unreachable!(),
        }
    }

    #[test]
    fn currencies_seals_and_departure_country() {
        assert!(matches!(
            with_declaration(|d| {
                d.customs_value = Money::new(1, "EUR".parse().unwrap()).unwrap()
            })
            .validate(),
            Err(ValidationError::CurrencyMismatch { .. })
        ));
        let seals: Vec<SealId> = (0..100).map(|i| format!("S{i}").parse().unwrap()).collect();
        assert!(matches!(
            with_declaration(|d| d.equipment[0].seals = seals).validate(),
            Err(ValidationError::TooMany { max: 99, .. })
        ));
        assert!(matches!(
            with_declaration(|d| d.office_of_departure = "BFOUA001".parse().unwrap()).validate(),
            Err(ValidationError::Invalid {
                field: "officeOfDeparture",
                ..
            })
        ));
        assert!(matches!(
            with_declaration(|d| d.equipment[0].container_id = Some("msc-1".to_owned())).validate(),
            Err(ValidationError::Invalid { .. })
        ));
    }

    #[test]
    fn incident_places_and_texts() {
        let j = journey(base(), 2);
        let incident = |place: Place, description: String| InboundMessage {
            body: MessageBody::Incident(Incident {
                mrn: j.mrn.clone(),
                code: IncidentCode::SealsBroken,
                place,
                occurred_at: base(),
                endorsed_by: None,
                new_seals: Vec::new(),
                new_transport: None,
                description,
            }),
            ..j.release.clone()
        };
        let ok = Place {
            locode: None,
            latitude_e7: Some(113_000_000),
            longitude_e7: Some(5_000_000),
        };
        assert!(incident(ok.clone(), String::new()).validate().is_ok());
        let half = Place {
            longitude_e7: None,
            ..ok.clone()
        };
        assert!(incident(half, String::new()).validate().is_err());
        let off_earth = Place {
            latitude_e7: Some(900_000_001),
            ..ok.clone()
        };
        assert!(incident(off_earth, String::new()).validate().is_err());
        assert!(incident(ok, "x".repeat(513)).validate().is_err());
    }

    #[test]
    fn accessors() {
        let j = journey(base(), 3);
        assert_eq!(j.guarantee_registration.mrn(), None);
        assert_eq!(j.guarantee_registration.grn(), Some(&j.grn));
        assert_eq!(j.declaration.mrn(), Some(&j.mrn));
        assert_eq!(j.declaration.grn(), None);
        assert_eq!(j.release.kind(), "ReleaseForTransit");
        assert_eq!(j.crossings[0].kind(), "BorderCrossing");
        let d = j.declaration_body();
        assert_eq!(d.gross_mass_g_total(), 27_000_000);
        assert_eq!(d.packages_total(), 440);
        assert_eq!(d.seals().count(), 2);
        // The kind names match the JSON tag.
        for m in j.messages() {
            let v = serde_json::to_value(&m.body).unwrap();
            assert_eq!(v["type"], m.kind());
        }
    }
}
