//! Logs, traces and metrics: structured logs on stderr (JSON with `LOG_FORMAT=json`),
//! filtered by `RUST_LOG`; OpenTelemetry spans exported over OTLP when
//! `OTEL_EXPORTER_OTLP_ENDPOINT` (or `..._TRACES_ENDPOINT`) is set; and the service's
//! [`Metrics`], always served at `/metrics`, also pushed over OTLP when
//! `OTEL_EXPORTER_OTLP_ENDPOINT` (or `..._METRICS_ENDPOINT`) is set (every
//! `OTEL_METRIC_EXPORT_INTERVAL` ms, 60 s by default). The standard OpenTelemetry environment
//! variables apply.

use std::sync::Arc;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::metrics::Metrics;

/// Keeps the exporters alive; flushes spans and metrics when dropped.
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
    metrics: Arc<Metrics>,
}

impl Telemetry {
    /// The service's metrics, to serve (`ServeOptions::metrics`).
    pub fn metrics(&self) -> Arc<Metrics> {
        self.metrics.clone()
    }
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take() {
            let _ = provider.shutdown();
        }
        self.metrics.shutdown();
    }
}

/// Installs the global subscriber. Call once, early, inside the tokio runtime.
pub fn init(default_filter: &str) -> anyhow::Result<Telemetry> {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let json = std::env::var("LOG_FORMAT").is_ok_and(|v| v.eq_ignore_ascii_case("json"));
    let fmt = if json {
        tracing_subscriber::fmt::layer()
            .json()
            .with_writer(std::io::stderr)
            .boxed()
    } else {
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .boxed()
    };
    let otlp_wanted = std::env::var_os("OTEL_EXPORTER_OTLP_ENDPOINT").is_some()
        || std::env::var_os("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").is_some();
    let (otel, provider) = if otlp_wanted {
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .build()?;
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(
                opentelemetry_sdk::Resource::builder()
                    .with_service_name("transit-ledger")
                    .build(),
            )
            .build();
        let tracer = provider.tracer("transit-ledger");
        (
            Some(tracing_opentelemetry::layer().with_tracer(tracer)),
            Some(provider),
        )
    } else {
        (None, None)
    };
    let otlp_metrics_wanted = std::env::var_os("OTEL_EXPORTER_OTLP_ENDPOINT").is_some()
        || std::env::var_os("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT").is_some();
    let metrics_exporter = if otlp_metrics_wanted {
        Some(
            opentelemetry_otlp::MetricExporter::builder()
                .with_tonic()
                .build()?,
        )
    } else {
        None
    };
    let metrics = Metrics::new(metrics_exporter);
    tracing_subscriber::registry()
        .with(filter)
        .with(fmt)
        .with(otel)
        .try_init()?;
    Ok(Telemetry { provider, metrics })
}
