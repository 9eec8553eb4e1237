//! The GraphQL API (async-graphql) over the projections: the regional transit database,
//! guarantee exposure, fraud signals, corridor analytics and the ledger's latest checkpoint,
//! with subscriptions for movement updates and raised fraud signals.
//!
//! Every read answers from the in-memory views of [`Projections`] at the position they
//! reflect (`projectionPosition`); `asOf` reads go further back. Hostile queries are bounded
//! by [`QUERY_DEPTH_MAX`], [`QUERY_COMPLEXITY_MAX`] and the page size limits. The SDL is
//! checked in at `schemas/graphql/schema.graphql`; a test fails when it drifts from this code.

use std::sync::Arc;

use async_graphql::connection::{Connection, Edge};
use async_graphql::{
    Context, Enum, Error, InputObject, Json, Object, Result, Schema, SimpleObject, Subscription,
};
use fraud_signals::{RuleId, Severity, Signal, SignalFilter, SignalStatus};
use futures::{Stream, StreamExt};
use ledger_store::EventStore;
use tokio_stream::wrappers::BroadcastStream;
use transit_contract::ids::{GuaranteeReference, Mrn, Timestamp};
use transit_views::exposure::Rollup as ViewRollup;
use transit_views::movements::{MovementFilter, MovementRecord, Status, MOVEMENTS_PAGE_MAX};

use crate::projection::{movement_as_of, Projections};
use crate::refusals::{RefusalFilter, RefusalLog};

/// Deepest selection accepted.
pub const QUERY_DEPTH_MAX: usize = 12;
/// Largest query complexity accepted (each field counts 1, a page counts its size times its
/// selection).
pub const QUERY_COMPLEXITY_MAX: usize = 2000;
/// Page size when `first` is not given.
pub const PAGE_SIZE_DEFAULT: usize = 20;
/// Largest `first` of any connection (the movements view's own maximum).
pub const PAGE_SIZE_MAX: usize = MOVEMENTS_PAGE_MAX;
/// Up to this many flagged movements, `hasSignals: true` hands the view the flagged set as
/// candidates; above it the view walks its listing and tests membership.
pub const HAS_SIGNALS_CANDIDATES_MAX: usize = 4_096;

/// The schema type served at `/graphql`.
pub type LedgerSchema = Schema<QueryRoot, async_graphql::EmptyMutation, SubscriptionRoot>;

/// Builds the schema over the projections and the store (for checkpoints and `asOf` replays).
pub fn schema(
    projections: Arc<Projections>,
    store: Arc<dyn EventStore>,
    refusals: Option<Arc<RefusalLog>>,
) -> LedgerSchema {
    Schema::build(QueryRoot, async_graphql::EmptyMutation, SubscriptionRoot)
        .data(projections)
        .data(store)
        .data(refusals)
        // Times requests that carry the service's metrics (the HTTP handler adds them).
        .extension(crate::metrics::GraphqlTimer)
        .limit_depth(QUERY_DEPTH_MAX)
        .limit_complexity(QUERY_COMPLEXITY_MAX)
        .finish()
}

/// The SDL of the schema, as checked in under `schemas/graphql/schema.graphql`.
pub fn sdl() -> String {
    Schema::build(QueryRoot, async_graphql::EmptyMutation, SubscriptionRoot)
        .finish()
        .sdl()
}

fn projections<'a>(ctx: &Context<'a>) -> Result<&'a Arc<Projections>> {
    ctx.data::<Arc<Projections>>()
}

fn store<'a>(ctx: &Context<'a>) -> Result<&'a Arc<dyn EventStore>> {
    ctx.data::<Arc<dyn EventStore>>()
}

fn parse<T: std::str::FromStr>(what: &str, value: &str) -> Result<T>
where
    T::Err: std::fmt::Display,
{
    value
        .parse()
        .map_err(|e| Error::new(format!("invalid {what} {value:?}: {e}")))
}

fn page_size(first: Option<i32>) -> Result<usize> {
    match first {
        None => Ok(PAGE_SIZE_DEFAULT),
        Some(n) if n < 0 => Err(Error::new("first must not be negative")),
        Some(n) if n as usize > PAGE_SIZE_MAX => {
            Err(Error::new(format!("first must be at most {PAGE_SIZE_MAX}")))
        }
        Some(n) => Ok(n as usize),
    }
}

/// The complexity of a page: its size times the selection of one item.
fn page_complexity(first: Option<i32>, child: usize) -> usize {
    let size = first.map_or(PAGE_SIZE_DEFAULT, |n| n.clamp(0, i32::MAX) as usize);
    size.saturating_mul(child).saturating_add(1)
}

/// An amount of money; the amount is a decimal string of minor units, since GraphQL's `Int`
/// is 32 bits and JSON numbers lose precision beyond 2^53.
/// Refused submissions, newest first.
#[derive(SimpleObject, Clone, Debug)]
struct RefusedSubmissions {
    /// Refusals ever recorded (all filters aside).
    total: u64,
    items: Vec<RefusedSubmission>,
}

/// One refused submission.
#[derive(Clone, Debug)]
struct RefusedSubmission(crate::refusals::RefusedSubmission);

#[Object]
impl RefusedSubmission {
    async fn seq(&self) -> u64 {
        self.0.seq
    }
    /// When it was refused (ledger clock, RFC 3339).
    async fn at(&self) -> String {
        self.0.at.to_string()
    }
    /// `http` or `broker`.
    async fn channel(&self) -> &str {
        &self.0.channel
    }
    async fn code(&self) -> &str {
        &self.0.code
    }
    async fn reason(&self) -> &str {
        &self.0.reason
    }
    /// The sender the message claimed, when it parsed.
    async fn sender_country(&self) -> Option<&str> {
        self.0.sender_country.as_deref()
    }
    async fn sender_office(&self) -> Option<&str> {
        self.0.sender_office.as_deref()
    }
    async fn message_id(&self) -> Option<&str> {
        self.0.message_id.as_deref()
    }
    async fn kind(&self) -> Option<&str> {
        self.0.kind.as_deref()
    }
    async fn mrn(&self) -> Option<&str> {
        self.0.mrn.as_deref()
    }
    /// The key id the signature named (not proof of who sent it unless the code says the
    /// signature verified).
    async fn key_id(&self) -> Option<&str> {
        self.0.key_id.as_deref()
    }
    /// SHA-256 of the bytes received, hex.
    async fn body_sha256(&self) -> &str {
        &self.0.body_sha256
    }
    async fn body_bytes(&self) -> u64 {
        self.0.body_bytes
    }
    /// Who was authenticated when it was refused: the bearer token's `<iss>/<sub>` over
    /// HTTP, the broker user over the broker.
    async fn principal(&self) -> Option<&str> {
        self.0.principal.as_deref()
    }
}

/// The state hash (SHA-256, hex) of each view, at a position.
#[derive(SimpleObject, Clone, Debug)]
struct ViewHashes {
    /// The number of log events the views reflect.
    position: u64,
    movements: String,
    exposure: String,
    corridors: String,
    signals: String,
}

#[derive(SimpleObject, Clone, Debug)]
pub struct Money {
    /// Amount in minor units of the currency (e.g. centimes), as a decimal string.
    pub amount_minor: String,
    /// ISO 4217 currency code.
    pub currency: String,
}

impl From<&transit_contract::ids::Money> for Money {
    fn from(m: &transit_contract::ids::Money) -> Self {
        Money {
            amount_minor: m.amount_minor().to_string(),
            currency: m.currency().to_string(),
        }
    }
}

/// Where a movement stands.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum MovementStatus {
    Unknown,
    Declared,
    Released,
    Arrived,
    Controlled,
    Discharged,
    NotReleased,
    Cancelled,
    UnderEnquiry,
    Recovered,
}

impl From<Status> for MovementStatus {
    fn from(s: Status) -> Self {
        match s {
            Status::Unknown => Self::Unknown,
            Status::Declared => Self::Declared,
            Status::Released => Self::Released,
            Status::Arrived => Self::Arrived,
            Status::Controlled => Self::Controlled,
            Status::Discharged => Self::Discharged,
            Status::NotReleased => Self::NotReleased,
            Status::Cancelled => Self::Cancelled,
            Status::UnderEnquiry => Self::UnderEnquiry,
            Status::Recovered => Self::Recovered,
        }
    }
}

impl From<MovementStatus> for Status {
    fn from(s: MovementStatus) -> Self {
        match s {
            MovementStatus::Unknown => Self::Unknown,
            MovementStatus::Declared => Self::Declared,
            MovementStatus::Released => Self::Released,
            MovementStatus::Arrived => Self::Arrived,
            MovementStatus::Controlled => Self::Controlled,
            MovementStatus::Discharged => Self::Discharged,
            MovementStatus::NotReleased => Self::NotReleased,
            MovementStatus::Cancelled => Self::Cancelled,
            MovementStatus::UnderEnquiry => Self::UnderEnquiry,
            MovementStatus::Recovered => Self::Recovered,
        }
    }
}

/// A holder or carrier.
#[derive(SimpleObject, Clone, Debug)]
pub struct Trader {
    pub id: String,
    pub name: String,
    pub country: String,
}

/// The means of transport at departure.
#[derive(SimpleObject, Clone, Debug)]
pub struct Vehicle {
    pub identity: String,
    pub nationality: String,
}

/// The offices as declared (after amendments and destination changes).
#[derive(SimpleObject, Clone, Debug)]
pub struct PlannedOffices {
    pub departure: String,
    pub transit: Vec<String>,
    pub destination: String,
    /// The destination as first declared.
    pub destination_declared: String,
}

/// One event of a movement's history.
#[derive(SimpleObject, Clone, Debug)]
pub struct HistoryEntry {
    pub position: u64,
    pub event_type: String,
    pub occurred_at: String,
    pub recorded_at: String,
    pub anomaly: Option<String>,
}

/// One movement of the regional transit database.
#[derive(SimpleObject, Clone, Debug)]
#[graphql(complex)]
pub struct Movement {
    pub mrn: String,
    pub status: MovementStatus,
    /// The global position the movement is listed under (its cursor).
    pub listing_position: u64,
    pub declared_at: Option<String>,
    pub released_at: Option<String>,
    pub arrived_at: Option<String>,
    pub discharged_at: Option<String>,
    pub time_limit: Option<String>,
    pub planned: Option<PlannedOffices>,
    pub actual_transit_offices: Vec<String>,
    pub actual_destination_offices: Vec<String>,
    pub countries_of_routing: Vec<String>,
    pub corridor: Option<String>,
    pub country_pair: Option<String>,
    pub holder: Option<Trader>,
    pub carrier: Option<Trader>,
    pub vehicle: Option<Vehicle>,
    pub hs_codes: Vec<String>,
    /// Total declared gross mass in grams, as a decimal string.
    pub gross_mass_grams: Option<String>,
    pub packages: Option<u32>,
    pub guarantee: Option<String>,
    pub amount_reserved: Option<Money>,
    pub history: Vec<HistoryEntry>,
    /// The whole record as JSON (steps, seals at each checkpoint, incidents, control), for
    /// details not yet typed in this schema.
    pub details: Json<serde_json::Value>,
}

#[async_graphql::ComplexObject]
impl Movement {
    /// The fraud signals of the movement, open and cleared.
    async fn signals(&self, ctx: &Context<'_>) -> Result<Vec<FraudSignal>> {
        let mrn: Mrn = parse("MRN", &self.mrn)?;
        let views = projections(ctx)?.read();
        Ok(views
            .signals
            .signals_for(&mrn)
            .into_iter()
            .map(FraudSignal::from)
            .collect())
    }

    /// The movement's risk score, 0..=100.
    async fn risk_score(&self, ctx: &Context<'_>) -> Result<u8> {
        let mrn: Mrn = parse("MRN", &self.mrn)?;
        Ok(projections(ctx)?.read().signals.risk_score(&mrn))
    }
}

fn ts(t: &Timestamp) -> String {
    t.to_rfc3339()
}

fn strings<T: ToString>(items: &[T]) -> Vec<String> {
    items.iter().map(ToString::to_string).collect()
}

impl From<&MovementRecord> for Movement {
    fn from(r: &MovementRecord) -> Self {
        let trader = |t: &transit_contract::messages::Trader| Trader {
            id: t.id.to_string(),
            name: t.name.clone(),
            country: t.country.to_string(),
        };
        Movement {
            mrn: r.mrn.to_string(),
            status: r.status.into(),
            listing_position: r.listing_position,
            declared_at: r.steps.declared_at.as_ref().map(ts),
            released_at: r.steps.released_at.as_ref().map(ts),
            arrived_at: r.steps.arrived_at.as_ref().map(ts),
            discharged_at: r.steps.discharged_at.as_ref().map(ts),
            time_limit: r.time_limit.as_ref().map(ts),
            planned: r.planned.as_ref().map(|p| PlannedOffices {
                departure: p.departure.to_string(),
                transit: strings(&p.transit),
                destination: p.destination.to_string(),
                destination_declared: p.destination_declared.to_string(),
            }),
            actual_transit_offices: strings(&r.actual.transit),
            actual_destination_offices: strings(&r.actual.destination),
            countries_of_routing: strings(&r.countries_of_routing),
            corridor: r.corridor.as_ref().map(ToString::to_string),
            country_pair: r.country_pair.as_ref().map(ToString::to_string),
            holder: r.holder.as_ref().map(trader),
            carrier: r.carrier.as_ref().map(trader),
            vehicle: r.vehicle.as_ref().map(|v| Vehicle {
                identity: v.identity.to_string(),
                nationality: v.nationality.to_string(),
            }),
            hs_codes: r
                .goods
                .as_ref()
                .map(|g| strings(&g.hs_codes))
                .unwrap_or_default(),
            gross_mass_grams: r.goods.as_ref().map(|g| g.gross_mass_g_total.to_string()),
            packages: r.goods.as_ref().map(|g| g.packages_total),
            guarantee: r.guarantee.as_ref().map(ToString::to_string),
            amount_reserved: r.amount_reserved.as_ref().map(Money::from),
            history: r
                .history
                .iter()
                .map(|h| HistoryEntry {
                    position: h.position,
                    event_type: h.event_type.clone(),
                    occurred_at: ts(&h.occurred_at),
                    recorded_at: ts(&h.recorded_at),
                    anomaly: h.anomaly.clone(),
                })
                .collect(),
            // Serialising plain data cannot fail; `Null` would only hide the details.
            details: Json(serde_json::to_value(r).unwrap_or(serde_json::Value::Null)),
        }
    }
}

/// Filters of `movements`; every field given must match.
#[derive(InputObject, Default, Debug)]
pub struct MovementsFilter {
    pub status: Option<MovementStatus>,
    /// An office code planned or recorded on the movement.
    pub office: Option<String>,
    /// A country of departure, routing or destination.
    pub country: Option<String>,
    /// `DEPARTURE>DESTINATION` office codes, e.g. `TG000101>BFOUA001`.
    pub corridor: Option<String>,
    /// `FROM>TO` country codes, e.g. `TG>BF`.
    pub country_pair: Option<String>,
    /// Declared at or after (RFC 3339).
    pub declared_from: Option<String>,
    /// Declared before (RFC 3339).
    pub declared_until: Option<String>,
    /// The holder's trader id.
    pub holder: Option<String>,
    /// The vehicle identity (plate).
    pub vehicle: Option<String>,
    /// An HS code, heading or chapter (6, 4 or 2 digits).
    pub hs_code: Option<String>,
    /// Whether the history shows anomalies (out-of-order or unexpected events).
    pub has_anomalies: Option<bool>,
    /// Whether the movement has at least one open fraud signal.
    pub has_signals: Option<bool>,
}

impl MovementsFilter {
    fn to_view(&self) -> Result<MovementFilter> {
        Ok(MovementFilter {
            status: self.status.map(Into::into),
            office: self
                .office
                .as_ref()
                .map(|v| parse("office", v))
                .transpose()?,
            country: self
                .country
                .as_ref()
                .map(|v| parse("country", v))
                .transpose()?,
            corridor: self
                .corridor
                .as_ref()
                .map(|v| parse("corridor", v))
                .transpose()?,
            country_pair: self
                .country_pair
                .as_ref()
                .map(|v| parse("country pair", v))
                .transpose()?,
            declared_from: self
                .declared_from
                .as_ref()
                .map(|v| parse("time", v))
                .transpose()?,
            declared_until: self
                .declared_until
                .as_ref()
                .map(|v| parse("time", v))
                .transpose()?,
            holder: self
                .holder
                .as_ref()
                .map(|v| parse("holder", v))
                .transpose()?,
            vehicle: self
                .vehicle
                .as_ref()
                .map(|v| parse("vehicle", v))
                .transpose()?,
            hs: self
                .hs_code
                .as_ref()
                .map(|v| parse("HS code", v))
                .transpose()?,
            has_anomalies: self.has_anomalies,
            // `hasSignals` is resolved by `movements` against the signal engine.
            mrns: None,
        })
    }
}

/// The exposure of one guarantee.
#[derive(SimpleObject, Clone, Debug)]
pub struct GuaranteeExposure {
    pub reference: String,
    pub reference_amount: Option<Money>,
    pub reserved: Money,
    pub released: Money,
    pub recovered: Money,
    /// Reserved minus released minus recovered (never below zero): what the guarantor still
    /// covers.
    pub exposure: Money,
    pub headroom: Option<Money>,
    /// The global position these figures reflect.
    pub position: u64,
    pub guarantor: Option<String>,
    pub principal: Option<String>,
}

/// Exposure totals of a group of guarantees, in one currency.
#[derive(SimpleObject, Clone, Debug)]
pub struct ExposureRollup {
    pub key: String,
    pub currency: String,
    pub reserved: Money,
    pub released: Money,
    pub recovered: Money,
    pub exposure: Money,
    pub reference_amount: Option<Money>,
    pub headroom: Option<Money>,
}

impl From<&ViewRollup> for ExposureRollup {
    fn from(r: &ViewRollup) -> Self {
        ExposureRollup {
            key: r.key.clone(),
            currency: r.currency.to_string(),
            reserved: (&r.reserved).into(),
            released: (&r.released).into(),
            recovered: (&r.recovered).into(),
            exposure: (&r.exposure).into(),
            reference_amount: r.reference_amount.as_ref().map(Money::from),
            headroom: r.headroom.as_ref().map(Money::from),
        }
    }
}

/// A fraud rule.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum FraudRule {
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

impl From<RuleId> for FraudRule {
    fn from(r: RuleId) -> Self {
        match r {
            RuleId::Overdue => Self::Overdue,
            RuleId::MissingCrossing => Self::MissingCrossing,
            RuleId::Diversion => Self::Diversion,
            RuleId::SealMismatch => Self::SealMismatch,
            RuleId::QuantityDiscrepancy => Self::QuantityDiscrepancy,
            RuleId::SharedVehicle => Self::SharedVehicle,
            RuleId::SharedSeal => Self::SharedSeal,
            RuleId::TooFast => Self::TooFast,
            RuleId::RepeatedIncidents => Self::RepeatedIncidents,
            RuleId::HighRiskGoods => Self::HighRiskGoods,
        }
    }
}

impl From<FraudRule> for RuleId {
    fn from(r: FraudRule) -> Self {
        match r {
            FraudRule::Overdue => Self::Overdue,
            FraudRule::MissingCrossing => Self::MissingCrossing,
            FraudRule::Diversion => Self::Diversion,
            FraudRule::SealMismatch => Self::SealMismatch,
            FraudRule::QuantityDiscrepancy => Self::QuantityDiscrepancy,
            FraudRule::SharedVehicle => Self::SharedVehicle,
            FraudRule::SharedSeal => Self::SharedSeal,
            FraudRule::TooFast => Self::TooFast,
            FraudRule::RepeatedIncidents => Self::RepeatedIncidents,
            FraudRule::HighRiskGoods => Self::HighRiskGoods,
        }
    }
}

/// How urgently an analyst should look.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum SignalSeverity {
    Low,
    Medium,
    High,
    Critical,
}

impl From<Severity> for SignalSeverity {
    fn from(s: Severity) -> Self {
        match s {
            Severity::Low => Self::Low,
            Severity::Medium => Self::Medium,
            Severity::High => Self::High,
            Severity::Critical => Self::Critical,
        }
    }
}

impl From<SignalSeverity> for Severity {
    fn from(s: SignalSeverity) -> Self {
        match s {
            SignalSeverity::Low => Self::Low,
            SignalSeverity::Medium => Self::Medium,
            SignalSeverity::High => Self::High,
            SignalSeverity::Critical => Self::Critical,
        }
    }
}

/// One finding of one rule on one movement.
#[derive(SimpleObject, Clone, Debug)]
pub struct FraudSignal {
    /// Stable id, `RULE:MRN[:discriminator]`.
    pub id: String,
    pub rule: FraudRule,
    pub severity: SignalSeverity,
    pub mrn: String,
    pub explanation: String,
    /// Global positions of the supporting events.
    pub evidence: Vec<u64>,
    pub fired_at: String,
    pub open: bool,
    pub cleared_at: Option<String>,
}

impl From<&Signal> for FraudSignal {
    fn from(s: &Signal) -> Self {
        FraudSignal {
            id: s.id.to_string(),
            rule: s.rule.into(),
            severity: s.severity.into(),
            mrn: s.mrn.to_string(),
            explanation: s.explanation.clone(),
            evidence: s.evidence.clone(),
            fired_at: ts(&s.fired_at),
            open: s.is_open(),
            cleared_at: match &s.status {
                SignalStatus::Open => None,
                SignalStatus::Cleared { at } => Some(ts(at)),
            },
        }
    }
}

/// Filters of `fraudSignals`.
#[derive(InputObject, Default, Debug)]
pub struct FraudSignalsFilter {
    pub rule: Option<FraudRule>,
    pub severity: Option<SignalSeverity>,
    /// `true`: open only; `false`: cleared only.
    pub open: Option<bool>,
    pub mrn: Option<String>,
}

/// A distribution of durations, in whole seconds.
#[derive(SimpleObject, Clone, Debug)]
pub struct DurationStats {
    pub count: u64,
    pub min_seconds: i64,
    pub median_seconds: i64,
    pub p90_seconds: i64,
    pub max_seconds: i64,
}

impl From<&transit_views::corridors::DurationStats> for DurationStats {
    fn from(d: &transit_views::corridors::DurationStats) -> Self {
        DurationStats {
            count: d.count,
            min_seconds: d.min_s,
            median_seconds: d.median_s,
            p90_seconds: d.p90_s,
            max_seconds: d.max_s,
        }
    }
}

/// Movements released on one UTC day.
#[derive(SimpleObject, Clone, Debug)]
pub struct DayCount {
    /// `YYYY-MM-DD`.
    pub date: String,
    pub count: u64,
}

/// The statistics of one corridor at the ledger clock's "now".
#[derive(SimpleObject, Clone, Debug)]
pub struct CorridorStats {
    pub corridor: String,
    pub transit_time: Option<DurationStats>,
    pub released_per_day: Vec<DayCount>,
    pub overdue: u64,
    pub released: u64,
    /// Overdue per million released.
    pub overdue_rate_ppm: u64,
}

/// Durations between two offices: a road segment, or the two sides of a border post.
#[derive(SimpleObject, Clone, Debug)]
pub struct SegmentStats {
    pub from: String,
    pub to: String,
    pub duration: DurationStats,
}

impl From<&transit_views::corridors::SegmentStats> for SegmentStats {
    fn from(s: &transit_views::corridors::SegmentStats) -> Self {
        SegmentStats {
            from: s.from.to_string(),
            to: s.to.to_string(),
            duration: (&s.duration).into(),
        }
    }
}

/// A tree head signed by the ledger.
#[derive(SimpleObject, Clone, Debug)]
pub struct LedgerCheckpoint {
    pub origin: String,
    /// Events covered.
    pub tree_size: u64,
    /// Merkle root, hex.
    pub root: String,
    /// Signing time (ledger clock), RFC 3339.
    pub signed_at: String,
    pub key_id: String,
    /// Ed25519 signature, hex.
    pub signature: String,
    /// The signed note, as C2SP notes show it.
    pub note: Option<String>,
}

/// A movement changed: what `movementUpdated` publishes.
#[derive(SimpleObject, Clone, Debug)]
pub struct MovementUpdate {
    pub mrn: String,
    pub position: u64,
    pub event_type: String,
    pub status: MovementStatus,
}

/// The query root.
#[derive(Debug, Default)]
pub struct QueryRoot;

#[Object]
impl QueryRoot {
    /// The number of log events the views reflect (positions `0..projectionPosition`).
    async fn projection_position(&self, ctx: &Context<'_>) -> Result<u64> {
        Ok(projections(ctx)?.caught_up_to())
    }

    /// Submissions the ledger refused (over HTTP or the broker), newest first: who claimed to
    /// send them, the reason code and reason, the key id named, and a hash of the bytes.
    /// Attempts to record what a sender may not record are kept here, never dropped.
    async fn refused_submissions(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Claimed sender country (ISO alpha-2).")] country: Option<String>,
        #[graphql(desc = "Reason code, e.g. `FORBIDDEN_OFFICE`.")] code: Option<String>,
        #[graphql(desc = "At most this many (capped by the page limit).")] first: Option<i32>,
    ) -> Result<RefusedSubmissions> {
        let log = ctx
            .data::<Option<Arc<RefusalLog>>>()?
            .as_ref()
            .ok_or_else(|| async_graphql::Error::new("this service keeps no refusal log"))?;
        let first = usize::try_from(first.unwrap_or(50).max(0))
            .unwrap_or(0)
            .min(PAGE_SIZE_MAX);
        let filter = RefusalFilter { country, code };
        Ok(RefusedSubmissions {
            total: log.total(),
            items: log
                .newest(&filter, first)
                .into_iter()
                .map(RefusedSubmission)
                .collect(),
        })
    }

    /// The state hash of each view at `projectionPosition`: equal to what
    /// `transit-ledger replay` prints for the same log, so an auditor can check that the views
    /// served are exactly a fold of the log.
    async fn view_hashes(&self, ctx: &Context<'_>) -> Result<ViewHashes> {
        let projections = projections(ctx)?;
        let views = projections.read();
        let h = views.hashes();
        Ok(ViewHashes {
            position: projections.caught_up_to(),
            movements: h.movements,
            exposure: h.exposure,
            corridors: h.corridors,
            signals: h.signals,
        })
    }

    /// One movement; with `asOf`, as it stood just after global position `asOf`.
    async fn movement(
        &self,
        ctx: &Context<'_>,
        mrn: String,
        as_of: Option<u64>,
    ) -> Result<Option<Movement>> {
        let mrn: Mrn = parse("MRN", &mrn)?;
        let projections = projections(ctx)?;
        match as_of {
            Some(position) if position.saturating_add(1) < projections.caught_up_to() => {
                let view = movement_as_of(store(ctx)?.as_ref(), &mrn, position)
                    .await
                    .map_err(|e| {
                        tracing::error!(error = %e, "asOf replay failed");
                        Error::new("the movement could not be replayed; it has been logged")
                    })?;
                Ok(view.get(&mrn).map(Movement::from))
            }
            _ => Ok(projections.read().movements.get(&mrn).map(Movement::from)),
        }
    }

    /// Movements in listing order (declaration position); the cursor is that position.
    #[graphql(complexity = "page_complexity(first, child_complexity)")]
    async fn movements(
        &self,
        ctx: &Context<'_>,
        filter: Option<MovementsFilter>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Result<Connection<String, Movement>> {
        let first = page_size(first)?;
        let filter = filter.unwrap_or_default();
        let mut view_filter = filter.to_view()?;
        let after: Option<u64> = after.map(|a| parse("cursor", &a)).transpose()?;
        let views = projections(ctx)?.read();
        // Signals live in another projection: the engine keeps the set of movements with an
        // open signal, which restricts the candidates (the view walks the smaller of it and
        // its own indexes) or is excluded during the walk.
        let open = views.signals.movements_with_open_signals();
        let page = match filter.has_signals {
            // A small flagged set is a candidate list the view can walk; a large one is dense
            // enough that walking the listing and testing membership finds a page sooner
            // than copying the set (measured: 94 ms with 200k flagged at 400k movements).
            Some(true) if open.len() <= HAS_SIGNALS_CANDIDATES_MAX => {
                view_filter.mrns = Some(open.clone());
                views.movements.list(&view_filter, first, after)
            }
            Some(true) => views
                .movements
                .list_where(&view_filter, first, after, |r| open.contains(&r.mrn)),
            Some(false) => views
                .movements
                .list_where(&view_filter, first, after, |r| !open.contains(&r.mrn)),
            None => views.movements.list(&view_filter, first, after),
        }
        .map_err(|e| Error::new(e.to_string()))?;
        let mut connection = Connection::new(after.is_some(), page.has_next_page);
        connection.edges.extend(
            page.items
                .into_iter()
                .map(|r| Edge::new(r.listing_position.to_string(), Movement::from(r))),
        );
        Ok(connection)
    }

    /// One guarantee's exposure; with `asOf` (a global position) or `asOfTime` (RFC 3339),
    /// as it stood then.
    async fn guarantee(
        &self,
        ctx: &Context<'_>,
        reference: String,
        as_of: Option<u64>,
        as_of_time: Option<String>,
    ) -> Result<Option<GuaranteeExposure>> {
        let grn: GuaranteeReference = parse("guarantee reference", &reference)?;
        let views = projections(ctx)?.read();
        let exposure = match (as_of, as_of_time) {
            (Some(_), Some(_)) => return Err(Error::new("give asOf or asOfTime, not both")),
            (Some(position), None) => views.exposure.as_of_position(&grn, position),
            (None, Some(at)) => views.exposure.as_of_time(&grn, parse("time", &at)?),
            (None, None) => views.exposure.guarantee(&grn),
        };
        let entry = views.exposure.entry(&grn);
        Ok(exposure.map(|e| GuaranteeExposure {
            reference: e.grn.to_string(),
            reference_amount: e.reference_amount.as_ref().map(Money::from),
            reserved: (&e.reserved).into(),
            released: (&e.released).into(),
            recovered: (&e.recovered).into(),
            exposure: (&e.exposure).into(),
            headroom: e.headroom.as_ref().map(Money::from),
            position: e.position,
            guarantor: entry.and_then(|g| g.guarantor.as_ref().map(|p| p.id.to_string())),
            principal: entry.and_then(|g| g.principal.as_ref().map(|p| p.id.to_string())),
        }))
    }

    /// Exposure per guarantor.
    async fn exposure_by_guarantor(&self, ctx: &Context<'_>) -> Result<Vec<ExposureRollup>> {
        let views = projections(ctx)?.read();
        Ok(views
            .exposure
            .by_guarantor()
            .iter()
            .map(Into::into)
            .collect())
    }

    /// Exposure per principal (holder of the guarantee).
    async fn exposure_by_principal(&self, ctx: &Context<'_>) -> Result<Vec<ExposureRollup>> {
        let views = projections(ctx)?.read();
        Ok(views
            .exposure
            .by_principal()
            .iter()
            .map(Into::into)
            .collect())
    }

    /// Exposure per country of departure.
    async fn exposure_by_departure_country(
        &self,
        ctx: &Context<'_>,
    ) -> Result<Vec<ExposureRollup>> {
        let views = projections(ctx)?.read();
        Ok(views
            .exposure
            .by_departure_country()
            .iter()
            .map(Into::into)
            .collect())
    }

    /// Exposure per corridor.
    async fn exposure_by_corridor(&self, ctx: &Context<'_>) -> Result<Vec<ExposureRollup>> {
        let views = projections(ctx)?.read();
        Ok(views
            .exposure
            .by_corridor()
            .iter()
            .map(Into::into)
            .collect())
    }

    /// Fraud signals ordered by id; the cursor is the signal id.
    #[graphql(complexity = "page_complexity(first, child_complexity)")]
    async fn fraud_signals(
        &self,
        ctx: &Context<'_>,
        filter: Option<FraudSignalsFilter>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Result<Connection<String, FraudSignal>> {
        let first = page_size(first)?;
        let filter = filter.unwrap_or_default();
        let mrn: Option<Mrn> = filter.mrn.as_ref().map(|m| parse("MRN", m)).transpose()?;
        let view_filter = SignalFilter {
            rule: filter.rule.map(Into::into),
            severity: filter.severity.map(Into::into),
            open: filter.open,
        };
        let views = projections(ctx)?.read();
        let mut signals: Vec<&Signal> = match &mrn {
            Some(mrn) => views
                .signals
                .signals_for(mrn)
                .into_iter()
                .filter(|s| view_filter.matches(s))
                .collect(),
            None => views.signals.signals(&view_filter),
        };
        signals.sort_by(|a, b| a.id.cmp(&b.id));
        let mut rest = signals
            .into_iter()
            .filter(|s| after.as_deref().is_none_or(|a| s.id.as_str() > a));
        let page: Vec<&Signal> = rest.by_ref().take(first).collect();
        let mut connection = Connection::new(after.is_some(), rest.next().is_some());
        connection.edges.extend(
            page.into_iter()
                .map(|s| Edge::new(s.id.to_string(), FraudSignal::from(s))),
        );
        Ok(connection)
    }

    /// The risk score of a movement, 0..=100 (0 for a movement without signals).
    async fn risk_score(&self, ctx: &Context<'_>, mrn: String) -> Result<u8> {
        let mrn: Mrn = parse("MRN", &mrn)?;
        Ok(projections(ctx)?.read().signals.risk_score(&mrn))
    }

    /// Corridor statistics at the ledger clock's "now"; one corridor when given.
    async fn corridor_stats(
        &self,
        ctx: &Context<'_>,
        corridor: Option<String>,
    ) -> Result<Vec<CorridorStats>> {
        let projections = projections(ctx)?;
        let now = projections.now();
        let views = projections.read();
        let stats = match corridor {
            Some(c) => views
                .corridors
                .corridor(&parse("corridor", &c)?, now)
                .into_iter()
                .collect(),
            None => views.corridors.corridor_stats(now),
        };
        Ok(stats
            .iter()
            .map(|s| CorridorStats {
                corridor: s.corridor.to_string(),
                transit_time: s.transit_time.as_ref().map(Into::into),
                released_per_day: s
                    .released_per_day
                    .iter()
                    .map(|(date, count)| DayCount {
                        date: date.clone(),
                        count: *count,
                    })
                    .collect(),
                overdue: s.overdue.overdue,
                released: s.overdue.released,
                overdue_rate_ppm: s.overdue.rate_ppm,
            })
            .collect())
    }

    /// Travel time per road segment (office to next office).
    async fn segment_stats(&self, ctx: &Context<'_>) -> Result<Vec<SegmentStats>> {
        let views = projections(ctx)?.read();
        Ok(views
            .corridors
            .segment_stats()
            .iter()
            .map(Into::into)
            .collect())
    }

    /// Dwell time at border posts (exit office to entry office).
    async fn dwell_stats(&self, ctx: &Context<'_>) -> Result<Vec<SegmentStats>> {
        let views = projections(ctx)?.read();
        Ok(views
            .corridors
            .dwell_stats()
            .iter()
            .map(Into::into)
            .collect())
    }

    /// The ledger's latest signed checkpoint (none before the first one is signed).
    async fn checkpoint(&self, ctx: &Context<'_>) -> Result<Option<LedgerCheckpoint>> {
        let Some(cp) = store(ctx)?.latest_checkpoint() else {
            return Ok(None);
        };
        let signed_at = Timestamp::from_unix_millis(cp.timestamp_ms)
            .map(|t| t.to_rfc3339())
            .unwrap_or_default();
        Ok(Some(LedgerCheckpoint {
            note: cp.note().ok(),
            origin: cp.origin,
            tree_size: cp.tree_size,
            root: cp.root,
            signed_at,
            key_id: cp.key_id,
            signature: cp.signature,
        }))
    }
}

/// The subscription root (graphql-transport-ws at `/graphql/ws`).
#[derive(Debug, Default)]
pub struct SubscriptionRoot;

#[Subscription]
impl SubscriptionRoot {
    /// Every change of a movement, or of one movement when `mrn` is given. A subscriber that
    /// falls more than the channel capacity behind skips the oldest updates.
    async fn movement_updated(
        &self,
        ctx: &Context<'_>,
        mrn: Option<String>,
    ) -> Result<impl Stream<Item = MovementUpdate>> {
        let mrn: Option<Mrn> = mrn.map(|m| parse("MRN", &m)).transpose()?;
        let rx = projections(ctx)?.movement_updates();
        Ok(BroadcastStream::new(rx).filter_map(move |change| {
            let update = change
                .ok()
                .filter(|c| mrn.as_ref().is_none_or(|m| *m == c.mrn));
            async move {
                update.map(|c| MovementUpdate {
                    mrn: c.mrn.to_string(),
                    position: c.position,
                    event_type: c.event_type.to_owned(),
                    status: c.status.into(),
                })
            }
        }))
    }

    /// Every fraud signal raised.
    async fn fraud_signal_raised(
        &self,
        ctx: &Context<'_>,
    ) -> Result<impl Stream<Item = FraudSignal>> {
        let rx = projections(ctx)?.signals_raised();
        Ok(BroadcastStream::new(rx)
            .filter_map(|s| async move { s.ok().map(|s| FraudSignal::from(&s)) }))
    }
}
