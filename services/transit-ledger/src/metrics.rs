//! Metrics: OpenTelemetry instruments (counters, histograms, observable gauges) over the event
//! log, the projections, the broker gateway and dispatcher, GraphQL, the HTTP API and the
//! process, read out in Prometheus text format at `GET /metrics` (role `operator`) and, when
//! `OTEL_EXPORTER_OTLP_ENDPOINT` is set, pushed over OTLP as well (see [`crate::telemetry`]).
//!
//! The OpenTelemetry metrics API is the instrumentation API; the Prometheus text comes from
//! `opentelemetry-prometheus` 0.31 (the exporter's release for opentelemetry 0.31: a
//! `MetricReader` feeding a `prometheus::Registry`, rendered by `prometheus::TextEncoder`).
//! Upstream no longer develops that exporter and recommends OTLP into Prometheus instead; it
//! still does exactly what a scrape endpoint needs, and when it falls behind the OTel
//! releases a small reader rendering the text format can replace it behind [`Metrics::render`].
//!
//! Each [`Metrics`] has its own meter provider (no global one), so two services in one
//! process (the tests run many) never mix their figures. It is made once per served store:
//! the observable instruments registered by [`Metrics::observe_store`] and
//! [`Metrics::observe_projections`] stay registered as long as the provider lives, and they
//! hold their sources weakly, so a store can still be closed while the metrics live on.
//!
//! The event log is a library crate without OpenTelemetry: it reports appends and group
//! commits to a [`StoreObserver`] (`ledger_store::observe`), which [`StoreMetrics`] turns
//! into instruments here. The projection runner is read from outside (its position and the
//! log's head), so its per-event loop carries no instrumentation at all.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use ledger_store::file::FileStore;
use ledger_store::observe::{AppendObserved, CommitObserved};
use ledger_store::{EventStore, StoreObserver};
use opentelemetry::metrics::{Counter, Histogram, Meter, MeterProvider as _};
use opentelemetry::KeyValue;
use opentelemetry_sdk::metrics::SdkMeterProvider;
use transit_contract::ids::CountryCode;

use crate::projection::Projections;

/// The instrumentation scope of every instrument.
pub const METER_NAME: &str = "transit-ledger";

/// The views the projection runner keeps; they are applied together, so they share one
/// position, but each gets its series so that dashboards survive runners of their own.
pub const VIEWS: [&str; 4] = ["movements", "exposure", "corridors", "signals"];

/// Bucket bounds of request and append latencies, in seconds.
const LATENCY_BOUNDS_S: [f64; 15] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];
/// Bucket bounds of fsync latencies, in seconds.
const FSYNC_BOUNDS_S: [f64; 13] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
];
/// Bucket bounds of events per fsync.
const BATCH_EVENTS_BOUNDS: [f64; 13] = [
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 2048.0, 4096.0,
];

/// The content type of the Prometheus text exposition format.
pub const PROMETHEUS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The service's metrics: its meter provider, the registry `/metrics` renders, and the
/// instruments the components record into.
pub struct Metrics {
    provider: SdkMeterProvider,
    registry: prometheus::Registry,
    meter: Meter,
    http: HttpMetrics,
    graphql: GraphqlMetrics,
    broker: BrokerMetrics,
    store: Arc<StoreMetrics>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    /// Metrics read out at `/metrics`, and pushed to `otlp` every minute (the OpenTelemetry
    /// default, `OTEL_METRIC_EXPORT_INTERVAL`) when given. Includes the process's own figures.
    pub fn new(otlp: Option<opentelemetry_otlp::MetricExporter>) -> Arc<Metrics> {
        let registry = prometheus::Registry::new();
        // The exporter registers a collector without descriptors, which a fresh registry
        // always accepts.
        let exporter = opentelemetry_prometheus::exporter()
            .with_registry(registry.clone())
            .without_scope_info()
            .build()
            .expect("invariant: a fresh registry accepts the exporter's collector");
        let mut provider = SdkMeterProvider::builder()
            .with_reader(exporter)
            .with_resource(
                opentelemetry_sdk::Resource::builder()
                    .with_service_name("transit-ledger")
                    .build(),
            );
        if let Some(otlp) = otlp {
            provider = provider.with_periodic_exporter(otlp);
        }
        let provider = provider.build();
        let meter = provider.meter(METER_NAME);
        let metrics = Metrics {
            http: HttpMetrics::new(&meter),
            graphql: GraphqlMetrics::new(&meter),
            broker: BrokerMetrics::new(&meter),
            store: Arc::new(StoreMetrics::new(&meter)),
            provider,
            registry,
            meter,
        };
        process::register(&metrics.meter);
        Arc::new(metrics)
    }

    /// The HTTP API's instruments (the [`track_http`] middleware's state).
    pub fn http(&self) -> HttpMetrics {
        self.http.clone()
    }

    /// GraphQL's instruments, to hand each request as data (see [`GraphqlTimer`]).
    pub fn graphql(&self) -> GraphqlMetrics {
        self.graphql.clone()
    }

    /// The gateway's and dispatcher's instruments (see `BrokerConfig::metrics`).
    pub fn broker(&self) -> BrokerMetrics {
        self.broker.clone()
    }

    /// Measures `store`: every append and group commit from now on, the log's head and its
    /// latest signed checkpoint, and the dispatcher's distance behind the head.
    pub fn observe_store(&self, store: &Arc<FileStore>) {
        store.set_observer(self.store.clone());
        let weak: Weak<FileStore> = Arc::downgrade(store);
        let head = weak.clone();
        self.meter
            .u64_observable_gauge("transit.store.head")
            .with_description("Events in the log (its next position)")
            .with_unit("{event}")
            .with_callback(move |o| {
                if let Some(store) = head.upgrade() {
                    o.observe(store.head(), &[]);
                }
            })
            .build();
        let signed = weak.clone();
        self.meter
            .u64_observable_gauge("transit.store.checkpoint.tree_size")
            .with_description("Events covered by the latest signed checkpoint")
            .with_unit("{event}")
            .with_callback(move |o| {
                if let Some(cp) = signed.upgrade().and_then(|s| s.latest_checkpoint()) {
                    o.observe(cp.tree_size, &[]);
                }
            })
            .build();
        let position = self.broker.dispatch_position();
        let dispatch = weak;
        self.meter
            .u64_observable_gauge("transit.dispatch.lag")
            .with_description("Events in the log the fan-out dispatcher has not published yet")
            .with_unit("{event}")
            .with_callback(move |o| {
                let Some(position) = position.as_deref().and_then(DispatchPosition::get) else {
                    return;
                };
                if let Some(store) = dispatch.upgrade() {
                    o.observe(store.head().saturating_sub(position), &[]);
                }
            })
            .build();
    }

    /// Measures the projection runner: each view's position, its lag behind the log's head,
    /// and the events applied since now.
    pub fn observe_projections(&self, projections: &Arc<Projections>, store: &Arc<dyn EventStore>) {
        let start = projections.caught_up_to();
        let weak = Arc::downgrade(projections);
        let positions = weak.clone();
        self.meter
            .u64_observable_gauge("transit.projection.position")
            .with_description("Events the view reflects (positions 0..position)")
            .with_unit("{event}")
            .with_callback(move |o| {
                if let Some(p) = positions.upgrade() {
                    let position = p.caught_up_to();
                    for view in VIEWS {
                        o.observe(position, &[KeyValue::new("view", view)]);
                    }
                }
            })
            .build();
        let lags = weak.clone();
        let store = Arc::downgrade(store);
        self.meter
            .u64_observable_gauge("transit.projection.lag")
            .with_description("Events in the log the view does not reflect yet (head - position)")
            .with_unit("{event}")
            .with_callback(move |o| {
                let (Some(p), Some(store)) = (lags.upgrade(), store.upgrade()) else {
                    return;
                };
                // The head first: the position can only have grown since, so the lag is never
                // overstated.
                let head = store.head();
                let lag = head.saturating_sub(p.caught_up_to());
                for view in VIEWS {
                    o.observe(lag, &[KeyValue::new("view", view)]);
                }
            })
            .build();
        self.meter
            .u64_observable_counter("transit.projection.events_applied")
            .with_description("Events the projection runner applied since the service started")
            .with_unit("{event}")
            .with_callback(move |o| {
                if let Some(p) = weak.upgrade() {
                    o.observe(p.caught_up_to().saturating_sub(start), &[]);
                }
            })
            .build();
    }

    /// Everything in Prometheus text format.
    pub fn render(&self) -> Result<String, prometheus::Error> {
        let mut text = String::new();
        prometheus::TextEncoder::new().encode_utf8(&self.registry.gather(), &mut text)?;
        Ok(text)
    }

    /// The `/metrics` response: the text format, or a 500 (logged) if it cannot be rendered.
    pub fn response(&self) -> Response {
        match self.render() {
            Ok(text) => ([(header::CONTENT_TYPE, PROMETHEUS_CONTENT_TYPE)], text).into_response(),
            Err(e) => {
                tracing::error!(error = %e, "could not render the metrics");
                StatusCode::INTERNAL_SERVER_ERROR.into_response()
            }
        }
    }

    /// Pushes what is pending to OTLP (if configured) and stops the readers.
    pub fn shutdown(&self) {
        if let Err(e) = self.provider.shutdown() {
            tracing::debug!(error = %e, "metrics provider shutdown");
        }
    }
}

/// The stable error code of an API error response, left in the response's extensions by
/// `ApiError` for [`track_http`] to count refusals by code.
#[derive(Clone, Copy, Debug)]
pub struct ErrorCode(pub &'static str);

/// The HTTP API's instruments.
#[derive(Clone, Debug)]
pub struct HttpMetrics {
    duration: Histogram<f64>,
    refusals: Counter<u64>,
}

impl HttpMetrics {
    fn new(meter: &Meter) -> Self {
        HttpMetrics {
            duration: meter
                .f64_histogram("transit.http.request.duration")
                .with_description(
                    "HTTP requests by method, route and status, until the response headers",
                )
                .with_unit("s")
                .with_boundaries(LATENCY_BOUNDS_S.to_vec())
                .build(),
            refusals: meter
                .u64_counter("transit.http.refusals")
                .with_description(
                    "HTTP requests refused (4xx) by route and error code (OTHER: refused by \
                     the framework, e.g. an unknown route or a body over the limit)",
                )
                .build(),
        }
    }
}

/// Middleware: times each request and counts refusals by code. The route is the matched
/// pattern (`/v1/movements/{mrn}/events`), never the raw path, so the series stay few.
pub async fn track_http(
    State(metrics): State<HttpMetrics>,
    request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let method = match request.method().as_str() {
        "GET" => "GET",
        "POST" => "POST",
        "HEAD" => "HEAD",
        "OPTIONS" => "OPTIONS",
        _ => "other",
    };
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let response = next.run(request).await;
    let status = response.status();
    if status.is_client_error() {
        let code = response
            .extensions()
            .get::<ErrorCode>()
            .map_or("OTHER", |c| c.0);
        metrics.refusals.add(
            1,
            &[
                KeyValue::new("route", route.clone()),
                KeyValue::new("code", code),
            ],
        );
    }
    metrics.duration.record(
        started.elapsed().as_secs_f64(),
        &[
            KeyValue::new("method", method),
            KeyValue::new("route", route),
            KeyValue::new("status", i64::from(status.as_u16())),
        ],
    );
    response
}

/// GraphQL's instruments; given to each request as data, where [`GraphqlTimer`] finds them.
#[derive(Clone, Debug)]
pub struct GraphqlMetrics {
    duration: Histogram<f64>,
    errors: Counter<u64>,
}

impl GraphqlMetrics {
    fn new(meter: &Meter) -> Self {
        GraphqlMetrics {
            duration: meter
                .f64_histogram("transit.graphql.request.duration")
                .with_description(
                    "GraphQL requests by operation type and outcome (ok, or error when the \
                     response carries any error), parsing and validation included",
                )
                .with_unit("s")
                .with_boundaries(LATENCY_BOUNDS_S.to_vec())
                .build(),
            errors: meter
                .u64_counter("transit.graphql.errors")
                .with_description("Errors in GraphQL responses, by operation type")
                .build(),
        }
    }
}

/// The GraphQL extension timing each request, when the request carries [`GraphqlMetrics`]
/// as data (requests without it, like the SDL check's, are not measured). A request refused
/// before its query is parsed (a malformed body) is not measured either; its HTTP request is.
#[derive(Debug, Clone, Copy, Default)]
pub struct GraphqlTimer;

impl async_graphql::extensions::ExtensionFactory for GraphqlTimer {
    fn create(&self) -> Arc<dyn async_graphql::extensions::Extension> {
        Arc::new(GraphqlTimerRequest::default())
    }
}

/// One request's timer: the instruments and the operation's type, once the query is parsed
/// (the request's data is only attached then, after the request hook started).
#[derive(Default)]
struct GraphqlTimerRequest {
    metrics: OnceLock<GraphqlMetrics>,
    operation_name: OnceLock<Option<String>>,
    operation: OnceLock<&'static str>,
}

fn operation_type(ty: async_graphql::parser::types::OperationType) -> &'static str {
    use async_graphql::parser::types::OperationType;
    match ty {
        OperationType::Query => "query",
        OperationType::Mutation => "mutation",
        OperationType::Subscription => "subscription",
    }
}

#[async_trait::async_trait]
impl async_graphql::extensions::Extension for GraphqlTimerRequest {
    async fn request(
        &self,
        ctx: &async_graphql::extensions::ExtensionContext<'_>,
        next: async_graphql::extensions::NextRequest<'_>,
    ) -> async_graphql::Response {
        let started = Instant::now();
        let response = next.run(ctx).await;
        let Some(metrics) = self.metrics.get() else {
            return response;
        };
        let operation = self.operation.get().copied().unwrap_or("unknown");
        let outcome = if response.errors.is_empty() {
            "ok"
        } else {
            "error"
        };
        metrics.duration.record(
            started.elapsed().as_secs_f64(),
            &[
                KeyValue::new("operation", operation),
                KeyValue::new("outcome", outcome),
            ],
        );
        if !response.errors.is_empty() {
            metrics.errors.add(
                response.errors.len() as u64,
                &[KeyValue::new("operation", operation)],
            );
        }
        response
    }

    async fn prepare_request(
        &self,
        ctx: &async_graphql::extensions::ExtensionContext<'_>,
        request: async_graphql::Request,
        next: async_graphql::extensions::NextPrepareRequest<'_>,
    ) -> async_graphql::ServerResult<async_graphql::Request> {
        let _ = self.operation_name.set(request.operation_name.clone());
        next.run(ctx, request).await
    }

    async fn parse_query(
        &self,
        ctx: &async_graphql::extensions::ExtensionContext<'_>,
        query: &str,
        variables: &async_graphql::Variables,
        next: async_graphql::extensions::NextParseQuery<'_>,
    ) -> async_graphql::ServerResult<async_graphql::parser::types::ExecutableDocument> {
        if let Some(metrics) = ctx.data_opt::<GraphqlMetrics>() {
            let _ = self.metrics.set(metrics.clone());
        }
        let document = next.run(ctx, query, variables).await?;
        let wanted = self.operation_name.get().cloned().flatten();
        let mut operations = document.operations.iter();
        let chosen = match wanted {
            Some(name) => operations.find(|(n, _)| n.is_some_and(|n| n.as_str() == name)),
            None => operations.next(),
        };
        if let Some((_, op)) = chosen {
            let _ = self.operation.set(operation_type(op.node.ty));
        }
        Ok(document)
    }
}

/// The gateway's and dispatcher's instruments. The default records nothing (a broker
/// configuration made outside `serve`); `serve` hands in the service's.
#[derive(Clone, Default)]
pub struct BrokerMetrics(Option<Arc<BrokerInstruments>>);

impl std::fmt::Debug for BrokerMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrokerMetrics")
            .field("enabled", &self.0.is_some())
            .finish()
    }
}

struct BrokerInstruments {
    received: Counter<u64>,
    recorded: Counter<u64>,
    refused: Counter<u64>,
    dead_lettered: Counter<u64>,
    published: Counter<u64>,
    publish_failures: Counter<u64>,
    dispatch_position: Arc<DispatchPosition>,
}

/// The next position the dispatcher will publish, once it runs.
struct DispatchPosition(AtomicU64);

impl DispatchPosition {
    const UNKNOWN: u64 = u64::MAX;

    fn get(&self) -> Option<u64> {
        Some(self.0.load(Ordering::Relaxed)).filter(|p| *p != Self::UNKNOWN)
    }
}

fn country(country: &CountryCode) -> KeyValue {
    KeyValue::new("country", country.as_str().to_owned())
}

impl BrokerMetrics {
    fn new(meter: &Meter) -> Self {
        let position = Arc::new(DispatchPosition(AtomicU64::new(DispatchPosition::UNKNOWN)));
        let observed = position.clone();
        meter
            .u64_observable_gauge("transit.dispatch.position")
            .with_description("The next log position the fan-out dispatcher will publish")
            .with_unit("{event}")
            .with_callback(move |o| {
                if let Some(p) = observed.get() {
                    o.observe(p, &[]);
                }
            })
            .build();
        BrokerMetrics(Some(Arc::new(BrokerInstruments {
            received: meter
                .u64_counter("transit.gateway.received")
                .with_description("Messages taken from a country's inbound queue")
                .build(),
            recorded: meter
                .u64_counter("transit.gateway.recorded")
                .with_description(
                    "Broker messages the ledger recorded (duplicate=true: already recorded)",
                )
                .build(),
            refused: meter
                .u64_counter("transit.gateway.refused")
                .with_description("Broker messages refused, by country and reason code")
                .build(),
            dead_lettered: meter
                .u64_counter("transit.gateway.dead_lettered")
                .with_description("Refused broker messages moved to the dead-letter queue")
                .build(),
            published: meter
                .u64_counter("transit.dispatch.published")
                .with_description("Notifications the dispatcher published to office queues")
                .build(),
            publish_failures: meter
                .u64_counter("transit.dispatch.publish_failures")
                .with_description(
                    "Notification batches the broker did not take (resent after reconnecting)",
                )
                .build(),
            dispatch_position: position,
        })))
    }

    fn dispatch_position(&self) -> Option<Arc<DispatchPosition>> {
        self.0.as_ref().map(|i| i.dispatch_position.clone())
    }

    /// The gateway took a message from `from`'s inbound queue.
    pub fn received(&self, from: &CountryCode) {
        if let Some(i) = &self.0 {
            i.received.add(1, &[country(from)]);
        }
    }

    /// The ledger recorded a message of `from` (or found it already recorded).
    pub fn recorded(&self, from: &CountryCode, duplicate: bool) {
        if let Some(i) = &self.0 {
            i.recorded
                .add(1, &[country(from), KeyValue::new("duplicate", duplicate)]);
        }
    }

    /// A message of `from` was refused with `code`.
    pub fn refused(&self, from: &CountryCode, code: &'static str) {
        if let Some(i) = &self.0 {
            i.refused
                .add(1, &[country(from), KeyValue::new("code", code)]);
        }
    }

    /// A refused message of `from` is on the dead-letter queue.
    pub fn dead_lettered(&self, from: &CountryCode) {
        if let Some(i) = &self.0 {
            i.dead_lettered.add(1, &[country(from)]);
        }
    }

    /// The dispatcher published `notifications` messages and will continue at `position`.
    pub fn published(&self, notifications: usize, position: u64) {
        if let Some(i) = &self.0 {
            i.published.add(notifications as u64, &[]);
            i.dispatch_position.0.store(position, Ordering::Relaxed);
        }
    }

    /// The dispatcher starts (again) from `position`.
    pub fn dispatching_from(&self, position: u64) {
        if let Some(i) = &self.0 {
            i.dispatch_position.0.store(position, Ordering::Relaxed);
        }
    }

    /// A batch of notifications was not taken by the broker.
    pub fn publish_failed(&self) {
        if let Some(i) = &self.0 {
            i.publish_failures.add(1, &[]);
        }
    }
}

/// The event log's instruments, fed by the store through [`StoreObserver`].
#[derive(Debug)]
pub struct StoreMetrics {
    appends: Counter<u64>,
    events: Counter<u64>,
    append_duration: Histogram<f64>,
    fsyncs: Counter<u64>,
    fsync_events: Histogram<u64>,
    fsync_duration: Histogram<f64>,
    bytes: Counter<u64>,
}

impl StoreMetrics {
    fn new(meter: &Meter) -> Self {
        StoreMetrics {
            appends: meter
                .u64_counter("transit.store.appends")
                .with_description("Appends answered, by outcome (recorded, duplicate, failed)")
                .build(),
            events: meter
                .u64_counter("transit.store.events_appended")
                .with_description("Events written to the log")
                .build(),
            append_duration: meter
                .f64_histogram("transit.store.append.duration")
                .with_description(
                    "Appends by outcome, from the call to the answer (queue, group commit, fsync)",
                )
                .with_unit("s")
                .with_boundaries(LATENCY_BOUNDS_S.to_vec())
                .build(),
            fsyncs: meter
                .u64_counter("transit.store.fsyncs")
                .with_description("Group commits written and fsynced")
                .build(),
            fsync_events: meter
                .u64_histogram("transit.store.fsync.batch_events")
                .with_description("Events per fsync (group commit batch size)")
                .with_boundaries(BATCH_EVENTS_BOUNDS.to_vec())
                .build(),
            fsync_duration: meter
                .f64_histogram("transit.store.fsync.duration")
                .with_description("How long each group commit's fdatasync took")
                .with_unit("s")
                .with_boundaries(FSYNC_BOUNDS_S.to_vec())
                .build(),
            bytes: meter
                .u64_counter("transit.store.written")
                .with_description("Bytes of records written to the log")
                .with_unit("By")
                .build(),
        }
    }
}

impl StoreObserver for StoreMetrics {
    fn append_answered(&self, append: &AppendObserved) {
        let outcome = [KeyValue::new("outcome", append.answer.as_str())];
        self.appends.add(1, &outcome);
        self.append_duration
            .record(append.latency.as_secs_f64(), &outcome);
        if append.events > 0 {
            self.events.add(append.events, &[]);
        }
    }

    fn commit_synced(&self, commit: &CommitObserved) {
        self.fsyncs.add(1, &[]);
        self.fsync_events.record(commit.events, &[]);
        self.fsync_duration.record(commit.fsync.as_secs_f64(), &[]);
        self.bytes.add(commit.bytes, &[]);
    }
}

/// The process's own figures, read from `/proc` at each collection (Linux; elsewhere the
/// instruments observe nothing), under the names Prometheus' client libraries use.
mod process {
    use opentelemetry::metrics::Meter;

    /// Clock ticks per second of `/proc/<pid>/stat` times: `USER_HZ`, fixed at 100 in the
    /// Linux ABI whatever the kernel's own tick rate.
    const TICKS_PER_S: f64 = 100.0;

    /// The fields of `/proc/self/stat` after the command name, from field 3 (`state`).
    fn stat() -> Option<Vec<u64>> {
        let text = std::fs::read_to_string("/proc/self/stat").ok()?;
        // The command name may hold spaces and parentheses: the fields start after the last ')'.
        let rest = &text[text.rfind(')')? + 1..];
        Some(
            rest.split_whitespace()
                .map(|f| f.parse().unwrap_or(0))
                .collect(),
        )
    }

    /// Field `n` (1-based, as in proc(5)) of `/proc/self/stat`.
    fn field(fields: &[u64], n: usize) -> Option<u64> {
        fields.get(n.checked_sub(3)?).copied()
    }

    /// `VmRSS` of `/proc/self/status`, in bytes.
    fn resident_bytes() -> Option<u64> {
        let text = std::fs::read_to_string("/proc/self/status").ok()?;
        let line = text.lines().find(|l| l.starts_with("VmRSS:"))?;
        let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kib * 1024)
    }

    /// When the process started, in seconds since the Unix epoch.
    fn start_time_s() -> Option<f64> {
        let boot = std::fs::read_to_string("/proc/stat").ok()?;
        let boot: f64 = boot
            .lines()
            .find_map(|l| l.strip_prefix("btime "))?
            .trim()
            .parse()
            .ok()?;
        Some(boot + field(&stat()?, 22)? as f64 / TICKS_PER_S)
    }

    pub(super) fn register(meter: &Meter) {
        meter
            .f64_observable_counter("process.cpu")
            .with_description("User and system CPU time spent")
            .with_unit("s")
            .with_callback(|o| {
                if let Some(s) = stat() {
                    let ticks = field(&s, 14).unwrap_or(0) + field(&s, 15).unwrap_or(0);
                    o.observe(ticks as f64 / TICKS_PER_S, &[]);
                }
            })
            .build();
        meter
            .u64_observable_gauge("process.resident_memory")
            .with_description("Resident memory size")
            .with_unit("By")
            .with_callback(|o| {
                if let Some(bytes) = resident_bytes() {
                    o.observe(bytes, &[]);
                }
            })
            .build();
        meter
            .u64_observable_gauge("process.virtual_memory")
            .with_description("Virtual memory size")
            .with_unit("By")
            .with_callback(|o| {
                if let Some(bytes) = stat().and_then(|s| field(&s, 23)) {
                    o.observe(bytes, &[]);
                }
            })
            .build();
        meter
            .u64_observable_gauge("process.threads")
            .with_description("OS threads")
            .with_callback(|o| {
                if let Some(n) = stat().and_then(|s| field(&s, 20)) {
                    o.observe(n, &[]);
                }
            })
            .build();
        meter
            .u64_observable_gauge("process.open_fds")
            .with_description("Open file descriptors")
            .with_callback(|o| {
                if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
                    o.observe(dir.count() as u64, &[]);
                }
            })
            .build();
        if let Some(start) = start_time_s() {
            meter
                .f64_observable_gauge("process.start_time")
                .with_description("Start time of the process since the Unix epoch")
                .with_unit("s")
                .with_callback(move |o| o.observe(start, &[]))
                .build();
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::time::Duration;

    use ledger_store::observe::AppendAnswer;

    use super::*;

    /// The sample lines of `text` whose name is `name`, as (labels, value).
    fn samples<'a>(text: &'a str, name: &str) -> Vec<(&'a str, f64)> {
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| {
                let (series, value) = l.rsplit_once(' ')?;
                let (n, labels) = match series.split_once('{') {
                    Some((n, labels)) => (n, labels.trim_end_matches('}')),
                    None => (series, ""),
                };
                (n == name).then(|| (labels, value.parse().unwrap()))
            })
            .collect()
    }

    #[test]
    fn instruments_render_under_prometheus_names_and_types() {
        let metrics = Metrics::new(None);
        metrics.store.append_answered(&AppendObserved {
            answer: AppendAnswer::Recorded,
            events: 3,
            latency: Duration::from_millis(3),
        });
        metrics.store.commit_synced(&CommitObserved {
            events: 3,
            bytes: 900,
            fsync: Duration::from_micros(700),
        });
        let broker = metrics.broker();
        broker.refused(&"TG".parse().unwrap(), "BAD_SIGNATURE");
        broker.published(2, 7);
        let text = metrics.render().unwrap();

        assert!(
            text.contains("# TYPE transit_store_appends_total counter"),
            "{text}"
        );
        assert_eq!(
            samples(&text, "transit_store_appends_total"),
            [(r#"outcome="recorded""#, 1.0)]
        );
        assert_eq!(
            samples(&text, "transit_store_events_appended_total"),
            [("", 3.0)]
        );
        assert!(text.contains("# TYPE transit_store_append_duration_seconds histogram"));
        // Buckets are cumulative: 3 ms is above 2.5 ms and within 5 ms.
        let buckets = samples(&text, "transit_store_append_duration_seconds_bucket");
        assert!(
            buckets.contains(&(r#"outcome="recorded",le="0.0025""#, 0.0)),
            "{buckets:?}"
        );
        assert!(
            buckets.contains(&(r#"outcome="recorded",le="0.005""#, 1.0)),
            "{buckets:?}"
        );
        assert!(
            buckets.contains(&(r#"outcome="recorded",le="+Inf""#, 1.0)),
            "{buckets:?}"
        );
        assert_eq!(
            samples(&text, "transit_store_fsync_batch_events_sum"),
            [("", 3.0)]
        );
        assert_eq!(
            samples(&text, "transit_store_written_bytes_total"),
            [("", 900.0)]
        );
        assert_eq!(
            samples(&text, "transit_gateway_refused_total"),
            [(r#"code="BAD_SIGNATURE",country="TG""#, 1.0)]
        );
        assert_eq!(
            samples(&text, "transit_dispatch_published_total"),
            [("", 2.0)]
        );
        assert_eq!(samples(&text, "transit_dispatch_position"), [("", 7.0)]);
        // The process's own figures, on Linux.
        if cfg!(target_os = "linux") {
            assert!(samples(&text, "process_resident_memory_bytes")[0].1 > 0.0);
            assert!(samples(&text, "process_start_time_seconds")[0].1 > 1.0e9);
            assert!(text.contains("# TYPE process_cpu_seconds_total counter"));
        }
    }

    #[test]
    fn a_disabled_broker_metrics_records_nothing() {
        let disabled = BrokerMetrics::default();
        disabled.received(&"TG".parse().unwrap());
        disabled.published(1, 1);
        assert!(disabled.dispatch_position().is_none());
    }
}
