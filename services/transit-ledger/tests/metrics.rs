//! `/metrics`: the Prometheus text exposition of the real service, scraped with an operator's
//! token after a journey went through it (the log's appends and fsyncs, the projections'
//! positions and lag, HTTP and GraphQL requests, refusals by code, the process), and over the
//! broker (the gateway's counts per country, dead letters, the dispatcher's notifications).
//! The text is parsed, so each assertion is about one series' value, not a substring.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use common::{analyst_token, base, dev_signature, dev_token, post_journey, Server};
use reqwest::StatusCode;
use serde_json::{json, Value};
use transit_contract::fixtures;
use transit_ledger::auth::Role;

/// One sample line: `name{labels} value`.
#[derive(Debug, Clone)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// A parsed exposition: each family's `# TYPE`, and every sample.
#[derive(Debug)]
struct Exposition {
    types: HashMap<String, String>,
    samples: Vec<Sample>,
}

/// Parses the Prometheus text format (version 0.0.4): comments, `# HELP`, `# TYPE`, and
/// samples with quoted, escaped label values. Panics on anything else.
fn parse(text: &str) -> Exposition {
    let mut types = HashMap::new();
    let mut samples = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, ty) = rest.split_once(' ').unwrap();
            assert!(
                types.insert(name.to_owned(), ty.to_owned()).is_none(),
                "{name} typed twice"
            );
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        let name_end = line.find(['{', ' ']).unwrap();
        let name = &line[..name_end];
        assert!(
            !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "bad metric name in {line:?}"
        );
        let mut labels = BTreeMap::new();
        let mut rest = &line[name_end..];
        if let Some(after) = rest.strip_prefix('{') {
            let mut chars = after.char_indices();
            let mut key = String::new();
            loop {
                let (i, c) = chars.next().unwrap();
                match c {
                    '}' => {
                        rest = &after[i + 1..];
                        break;
                    }
                    ',' if key.is_empty() => {}
                    '=' => {
                        assert_eq!(chars.next().unwrap().1, '"', "{line:?}");
                        let mut value = String::new();
                        loop {
                            match chars.next().unwrap().1 {
                                '"' => break,
                                '\\' => match chars.next().unwrap().1 {
                                    'n' => value.push('\n'),
                                    other => value.push(other),
                                },
                                other => value.push(other),
                            }
                        }
                        labels.insert(std::mem::take(&mut key), value);
                    }
                    c => key.push(c),
                }
            }
        }
        let mut fields = rest.split_whitespace();
        let value = match fields.next().unwrap() {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v
                .parse()
                .unwrap_or_else(|_| panic!("bad value in {line:?}")),
        };
        samples.push(Sample {
            name: name.to_owned(),
            labels,
            value,
        });
    }
    Exposition { types, samples }
}

impl Exposition {
    /// The samples of `name` carrying at least these labels.
    fn matching<'a>(&'a self, name: &'a str, labels: &'a [(&str, &str)]) -> Vec<&'a Sample> {
        self.samples
            .iter()
            .filter(move |s| {
                s.name == name
                    && labels
                        .iter()
                        .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
            })
            .collect()
    }

    /// The value of the one series of `name` with these labels.
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let found = self.matching(name, labels);
        assert_eq!(found.len(), 1, "{name} {labels:?}: {found:?}");
        found[0].value
    }

    /// The sum over the series of `name` with these labels (0 when there are none).
    fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.matching(name, labels).iter().map(|s| s.value).sum()
    }

    /// The family's type.
    fn type_of(&self, family: &str) -> &str {
        self.types
            .get(family)
            .unwrap_or_else(|| panic!("no # TYPE for {family}"))
    }

    /// Checks every series of histogram `family`: buckets cumulative and ending in `+Inf`
    /// equal to `_count`. Returns the `_count` of the series with these labels.
    fn histogram_count(&self, family: &str, labels: &[(&str, &str)]) -> f64 {
        assert_eq!(self.type_of(family), "histogram");
        let counts = self.matching_owned(&format!("{family}_count"), labels);
        assert!(!counts.is_empty(), "no {family} series with {labels:?}");
        for count in &counts {
            let series: Vec<(f64, f64)> = {
                let mut b: Vec<(f64, f64)> = self
                    .samples
                    .iter()
                    .filter(|s| s.name == format!("{family}_bucket"))
                    .filter(|s| {
                        let mut l = s.labels.clone();
                        let le = l.remove("le").unwrap();
                        l == count.labels && !le.is_empty()
                    })
                    .map(|s| (le_of(s), s.value))
                    .collect();
                b.sort_by(|x, y| x.0.total_cmp(&y.0));
                b
            };
            assert!(series.len() > 1, "{family}: no buckets");
            assert!(series.windows(2).all(|w| w[0].1 <= w[1].1), "{series:?}");
            assert_eq!(series.last().unwrap(), &(f64::INFINITY, count.value));
        }
        counts.iter().map(|s| s.value).sum()
    }

    fn matching_owned(&self, name: &str, labels: &[(&str, &str)]) -> Vec<Sample> {
        self.matching(name, labels).into_iter().cloned().collect()
    }
}

fn le_of(s: &Sample) -> f64 {
    match s.labels["le"].as_str() {
        "+Inf" => f64::INFINITY,
        le => le.parse().unwrap(),
    }
}

fn operator_token() -> String {
    dev_token(&[Role::Operator], None)
}

/// `GET /metrics` with `token` (or none): the status, the content type and the body.
async fn get_metrics(server: &Server, token: Option<&str>) -> (StatusCode, String, String) {
    let mut request = server.client.get(server.url("/metrics"));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let r = request.send().await.unwrap();
    let status = r.status();
    let content_type = r
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, content_type, r.text().await.unwrap())
}

async fn scrape(server: &Server) -> Exposition {
    let (status, content_type, body) = get_metrics(server, Some(&operator_token())).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    parse(&body)
}

#[tokio::test]
async fn metrics_are_for_operators_only() {
    let server = Server::start().await;
    let (status, _, body) = get_metrics(&server, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["error"]["code"], "MISSING_TOKEN");
    let (status, _, body) = get_metrics(&server, Some(&analyst_token())).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["error"]["code"], "ROLE_REQUIRED");
    // Both refusals are counted, by route and code.
    let m = scrape(&server).await;
    let refused = |code| {
        m.value(
            "transit_http_refusals_total",
            &[("route", "/metrics"), ("code", code)],
        )
    };
    assert_eq!(refused("MISSING_TOKEN"), 1.0);
    assert_eq!(refused("ROLE_REQUIRED"), 1.0);
    server.stop().await;
}

#[tokio::test]
async fn a_journey_shows_in_the_metrics() {
    let server = Server::start().await;
    let j = fixtures::journey(base(), 961);
    let messages = j.messages().len() as f64;
    post_journey(&server, &j).await;
    let head = server.head().await as f64;
    // Refusals: an unsigned submission, and a GraphQL query naming no such field.
    let (status, body) = server.submit_signed(&j.declaration, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let bad = server.gql("{ noSuchField }", json!({})).await;
    assert!(bad.get("errors").is_some(), "{bad}");

    let m = scrape(&server).await;

    // The log: every event written once, through group commits whose batches add up.
    assert_eq!(m.type_of("transit_store_events_appended_total"), "counter");
    assert_eq!(m.value("transit_store_events_appended_total", &[]), head);
    assert_eq!(m.type_of("transit_store_head"), "gauge");
    assert_eq!(m.value("transit_store_head", &[]), head);
    assert_eq!(
        m.value("transit_store_appends_total", &[("outcome", "recorded")]),
        messages
    );
    assert_eq!(
        m.sum("transit_store_appends_total", &[("outcome", "failed")]),
        0.0
    );
    let appends = m.histogram_count(
        "transit_store_append_duration_seconds",
        &[("outcome", "recorded")],
    );
    assert_eq!(appends, messages);
    assert!(
        m.value(
            "transit_store_append_duration_seconds_sum",
            &[("outcome", "recorded")]
        ) > 0.0
    );
    let fsyncs = m.value("transit_store_fsyncs_total", &[]);
    assert!((1.0..=messages).contains(&fsyncs), "{fsyncs} fsyncs");
    assert_eq!(
        m.histogram_count("transit_store_fsync_batch_events", &[]),
        fsyncs
    );
    assert_eq!(m.value("transit_store_fsync_batch_events_sum", &[]), head);
    assert_eq!(
        m.histogram_count("transit_store_fsync_duration_seconds", &[]),
        fsyncs
    );
    assert!(m.value("transit_store_written_bytes_total", &[]) > head * 100.0);
    // Checkpoints are signed every second: there may be none yet.
    assert!(m.sum("transit_store_checkpoint_tree_size", &[]) <= head);

    // The projections: each view at the head, nothing behind.
    for view in ["movements", "exposure", "corridors", "signals"] {
        assert_eq!(
            m.value("transit_projection_position", &[("view", view)]),
            head
        );
        assert_eq!(m.value("transit_projection_lag", &[("view", view)]), 0.0);
    }
    assert_eq!(
        m.type_of("transit_projection_events_applied_total"),
        "counter"
    );
    assert_eq!(
        m.value("transit_projection_events_applied_total", &[]),
        head
    );

    // HTTP: every submission by route and status; the unsigned one refused by its code.
    assert_eq!(
        m.histogram_count(
            "transit_http_request_duration_seconds",
            &[
                ("method", "POST"),
                ("route", "/v1/messages"),
                ("status", "201")
            ]
        ),
        messages
    );
    assert_eq!(
        m.value(
            "transit_http_refusals_total",
            &[("route", "/v1/messages"), ("code", "MISSING_SIGNATURE")]
        ),
        1.0
    );
    // GraphQL: the waits for the projections were queries; the bad one was an error.
    assert!(
        m.histogram_count(
            "transit_graphql_request_duration_seconds",
            &[("operation", "query"), ("outcome", "ok")]
        ) >= 1.0
    );
    assert_eq!(
        m.histogram_count(
            "transit_graphql_request_duration_seconds",
            &[("operation", "query"), ("outcome", "error")]
        ),
        1.0
    );
    assert_eq!(
        m.value("transit_graphql_errors_total", &[("operation", "query")]),
        1.0
    );

    // No broker here: no gateway or dispatcher series.
    assert!(m.matching("transit_gateway_received_total", &[]).is_empty());
    assert!(m.matching("transit_dispatch_position", &[]).is_empty());

    // The process.
    assert!(m.value("process_resident_memory_bytes", &[]) > 1.0e6);
    assert!(m.value("process_cpu_seconds_total", &[]) >= 0.0);
    assert!(m.value("process_open_fds", &[]) >= 3.0);
    assert!(m.value("process_threads", &[]) >= 2.0);
    assert!(m.value("process_start_time_seconds", &[]) > 1.7e9);
    server.stop().await;
}

mod broker {
    //! The gateway and the dispatcher against the real ActiveMQ (`ops/activemq.sh`).

    use super::*;
    use broker_tests::{connect_stomp, ensure_broker, send_text, BrokerAddrs};
    use common::{broker_credentials, dev_registry, repo_root, BASE_MS, POLL};
    use ledger_store::file::{FileStore, FileStoreConfig};
    use ledger_store::{Clock, EventStore, ManualClock};
    use tokio::sync::oneshot;
    use transit_contract::messages::InboundMessage;
    use transit_ledger::auth::Authenticator;
    use transit_ledger::broker::BrokerConfig;

    /// Longest wait for the broker round trips.
    const BROKER_WAIT: Duration = Duration::from_secs(30);

    async fn send(addrs: &BrokerAddrs, config: &BrokerConfig, m: &InboundMessage, signed: bool) {
        let login = m.sender.country.as_str().to_ascii_lowercase();
        let mut conn = connect_stomp(addrs, &login).await.unwrap();
        let xml = String::from_utf8(transit_xml::encode_inbound(m)).unwrap();
        let signature = dev_signature(m);
        let mut headers = vec![("transitMessageId", m.message_id.as_str())];
        if signed {
            headers.push((transit_auth::BROKER_PROPERTY, signature.as_str()));
        }
        send_text(
            &mut conn,
            &config.inbound_queue(&m.sender.country),
            &headers,
            &xml,
        )
        .await
        .unwrap();
    }

    #[tokio::test]
    async fn the_gateway_and_the_dispatcher_are_counted_per_country() {
        let addrs = ensure_broker().await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(BASE_MS + 60_000));
        let mut store_config = FileStoreConfig::new(dir.path());
        store_config.clock = clock.clone();
        let store = Arc::new(FileStore::open(store_config).unwrap());
        let mut config = BrokerConfig::new(
            addrs.stomp,
            vec!["TG".parse().unwrap(), "BF".parse().unwrap()],
            broker_credentials(),
        );
        config.queue_suffix = format!(".test-{}", uuid::Uuid::new_v4().simple());
        let clock: Arc<dyn Clock> = clock;
        let auth = Authenticator::load(
            &repo_root().join(transit_ledger::auth::DEV_ISSUERS_PATH),
            clock.clone(),
        )
        .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let options = transit_ledger::cli::ServeOptions {
            registry: Some(dev_registry()),
            broker: Some(Arc::new(config.clone())),
            auth: Some(Arc::new(auth)),
            ..Default::default()
        };
        let served = store.clone();
        let task = tokio::spawn(async move {
            transit_ledger::cli::serve_with(listener, served, clock, options, async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
        });
        let client = reqwest::Client::new();
        let scrape = || async {
            let body = client
                .get(format!("http://{addr}/metrics"))
                .bearer_auth(operator_token())
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            parse(&body)
        };

        let j = fixtures::journey(base(), 962);
        let recorded = [&j.guarantee_registration, &j.declaration, &j.release];
        for m in recorded {
            send(&addrs, &config, m, true).await;
        }
        // The release again (a duplicate), and an unsigned crossing (refused, dead-lettered).
        send(&addrs, &config, &j.release, true).await;
        let unsigned = &j.crossings[0];
        send(&addrs, &config, unsigned, false).await;
        let unsigned_country = unsigned.sender.country.as_str();

        // The release fans out to the offices of transit and destination.
        let deadline = tokio::time::Instant::now() + BROKER_WAIT;
        let m = loop {
            let m = scrape().await;
            let done = m.sum("transit_gateway_received_total", &[]) == 5.0
                && m.sum("transit_gateway_dead_lettered_total", &[]) == 1.0
                && m.sum("transit_gateway_recorded_total", &[]) == 4.0
                && m.sum("transit_dispatch_published_total", &[]) >= 3.0
                && m.sum("transit_dispatch_position", &[]) as u64 == store.head();
            if done {
                break m;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "broker metrics never settled: {:?}",
                m.samples
                    .iter()
                    .filter(|s| s.name.starts_with("transit_gateway")
                        || s.name.starts_with("transit_dispatch"))
                    .collect::<Vec<_>>()
            );
            tokio::time::sleep(POLL * 10).await;
        };
        let from = |m: &InboundMessage| m.sender.country.as_str().to_owned();
        let mut per_country: HashMap<String, f64> = HashMap::new();
        for msg in recorded.iter().copied().chain([&j.release, unsigned]) {
            *per_country.entry(from(msg)).or_default() += 1.0;
        }
        for (country, n) in &per_country {
            assert_eq!(
                m.value("transit_gateway_received_total", &[("country", country)]),
                *n
            );
        }
        assert_eq!(
            m.sum("transit_gateway_recorded_total", &[("duplicate", "false")]),
            3.0
        );
        assert_eq!(
            m.value(
                "transit_gateway_recorded_total",
                &[("duplicate", "true"), ("country", &from(&j.release))]
            ),
            1.0
        );
        assert_eq!(
            m.value(
                "transit_gateway_refused_total",
                &[("country", unsigned_country), ("code", "MISSING_SIGNATURE")]
            ),
            1.0
        );
        assert_eq!(
            m.value(
                "transit_gateway_dead_lettered_total",
                &[("country", unsigned_country)]
            ),
            1.0
        );
        assert_eq!(m.value("transit_dispatch_lag", &[]), 0.0);
        assert_eq!(m.sum("transit_dispatch_publish_failures_total", &[]), 0.0);
        assert_eq!(
            m.value("transit_store_events_appended_total", &[]),
            store.head() as f64
        );

        let _ = stop.send(());
        task.await.unwrap();
    }
}
