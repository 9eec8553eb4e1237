//! Benchmarks of the read side: projection rebuild speed and memory (`bench rebuild`), and
//! GraphQL latency over real HTTP with a million movements loaded (`bench graphql`).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use futures::StreamExt;
use ledger_store::file::{FileStore, FileStoreConfig};
use ledger_store::{Clock, EventStore, SystemClock};
use std::collections::HashMap;
use transit_contract::ids::{GuaranteeReference, Timestamp};
use transit_contract::messages::{InboundMessage, MessageBody};
use transit_rules::{decide, guarantee_needed, Context, Decision, GuaranteeState, MovementState};
use transit_sim::{SimConfig, Simulation};
use transit_views::LedgerEvent;

use crate::projection::Views;

/// The benchmarks' traffic starts on 2026-01-01.
const BASE_MS: i64 = 1_767_225_600_000;
/// The benchmarks' traffic seed.
const TRAFFIC_SEED: u64 = 2026;

/// The benchmarks' traffic: `movements` movements of the corridor simulator (`transit-sim`),
/// 5 % of them with a fraud scenario, at 1,440 declarations a day (one a minute). Each
/// movement's messages come from [`Simulation::movement_messages`]; the guarantees they draw on
/// from [`Simulation::guarantee_registrations`].
pub fn traffic(movements: u32) -> anyhow::Result<Simulation> {
    let config = SimConfig {
        seed: TRAFFIC_SEED,
        movements: movements.max(1),
        fraud_rate: 0.05,
        start: Timestamp::from_unix_millis(BASE_MS)?,
        movements_per_day: 1_440,
        ..SimConfig::default()
    };
    Ok(Simulation::generate(&config)?)
}

/// Loads `movements` synthetic movements into fresh views through the pure rules (no log):
/// returns the views and the number of events applied.
pub fn load_views(movements: u32, progress: impl FnMut(u32)) -> anyhow::Result<(Views, u64)> {
    load_views_from(&traffic(movements)?, progress)
}

/// [`load_views`] from the traffic `sim`.
fn load_views_from(
    sim: &Simulation,
    mut progress: impl FnMut(u32),
) -> anyhow::Result<(Views, u64)> {
    let mut views = Views::default();
    let mut position = 0u64;
    let mut guarantees: HashMap<GuaranteeReference, GuaranteeState> = HashMap::new();
    let mut apply = |views: &mut Views,
                     movement: &mut MovementState,
                     guarantees: &mut HashMap<GuaranteeReference, GuaranteeState>,
                     msg: &InboundMessage| {
        let grn = msg.grn().cloned().or_else(|| match &msg.body {
            MessageBody::TransitDeclaration(d) => Some(d.guarantee.clone()),
            _ => movement.guarantee().cloned(),
        });
        // Read in place: a guarantee's state holds every movement it covers, so a copy per
        // message made the load quadratic (a clone was 50 % of the load at 1M movements).
        let unknown = GuaranteeState::default();
        let current = grn
            .as_ref()
            .and_then(|g| guarantees.get(g))
            .unwrap_or(&unknown);
        let needed = guarantee_needed(msg, movement).map(|_| current);
        let ctx = Context {
            recorded_at: msg.sent_at,
        };
        let Ok(Decision::Append {
            movement: m_events,
            guarantee: g_events,
            meta,
        }) = decide(msg, movement, needed, &ctx)
        else {
            return;
        };
        let mrn = msg.mrn().cloned();
        match &grn {
            Some(grn) if !g_events.is_empty() => {
                let guarantee = guarantees.entry(grn.clone()).or_default();
                for event in &g_events {
                    guarantee.apply(&meta, event);
                    views.apply_decoded(&LedgerEvent::Guarantee {
                        position,
                        grn,
                        meta: &meta,
                        event,
                    });
                    position += 1;
                }
            }
            _ => position += g_events.len() as u64,
        }
        for event in &m_events {
            movement.apply(&meta, event);
            if let Some(mrn) = &mrn {
                views.apply_decoded(&LedgerEvent::Movement {
                    position,
                    mrn,
                    meta: &meta,
                    event,
                });
            }
            position += 1;
        }
    };
    for msg in sim.guarantee_registrations() {
        apply(
            &mut views,
            &mut MovementState::default(),
            &mut guarantees,
            &msg,
        );
    }
    for i in 0..sim.movement_count() {
        let mut movement = MovementState::default();
        for msg in sim.movement_messages(i) {
            apply(&mut views, &mut movement, &mut guarantees, &msg);
        }
        let serial = u32::try_from(i + 1).unwrap_or(u32::MAX);
        if serial % 10_000 == 0 {
            progress(serial);
        }
    }
    Ok((views, position))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

/// `bench rebuild` options.
#[derive(Debug, Clone)]
pub struct RebuildBenchOptions {
    /// Folder in which the temporary data folder is made.
    pub dir: PathBuf,
    /// Movements in the log.
    pub movements: u32,
    /// Rebuilds measured (median reported).
    pub repeats: usize,
    /// Keep the generated data folder (printed) for profiling instead of deleting it.
    pub keep: bool,
}

/// Writes a log of synthetic movements through the real command handler, then rebuilds the
/// views from it with `transit-ledger replay` in a fresh process (so its peak RSS is the
/// rebuild's own), `repeats` times.
pub async fn run_rebuild(opts: RebuildBenchOptions) -> anyhow::Result<()> {
    println!(
        "transit-ledger bench rebuild: {} movements, {} cores",
        opts.movements,
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    let tmp = tempfile::tempdir_in(&opts.dir)?;
    let data = tmp.path().join("data");
    let store = Arc::new(FileStore::open(FileStoreConfig::new(&data))?);
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let dyn_store: Arc<dyn EventStore> = store.clone();
    let ledger = Arc::new(crate::ledger::Ledger::new(dyn_store, clock));
    let sim = Arc::new(traffic(opts.movements)?);
    let started = Instant::now();
    for msg in sim.guarantee_registrations() {
        if let Err(e) = ledger.submit_json(&serde_json::to_vec(&msg)?).await {
            tracing::warn!(error = %e, "bench guarantee refused");
        }
    }
    futures::stream::iter(0..sim.movement_count())
        .for_each_concurrent(128, |i| {
            let ledger = ledger.clone();
            let sim = sim.clone();
            async move {
                for msg in sim.movement_messages(i) {
                    if let Err(e) = ledger
                        .submit_json(&serde_json::to_vec(&msg).unwrap_or_default())
                        .await
                    {
                        tracing::debug!(i, error = %e, "bench message refused");
                    }
                }
            }
        })
        .await;
    let events = store.head();
    println!(
        "log written: {events} events in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    drop(ledger);
    match Arc::into_inner(store) {
        Some(store) => store.close().await?,
        None => anyhow::bail!("the store is still shared after the load"),
    };
    let exe = std::env::current_exe()?;
    let mut rates = Vec::new();
    let mut cpus = Vec::new();
    let mut rss = Vec::new();
    let mut hashes = Vec::new();
    for run in 1..=opts.repeats.max(1) {
        let out = tokio::process::Command::new(&exe)
            .args(["replay", "--quiet", "--data-dir"])
            .arg(&data)
            .output()
            .await?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        anyhow::ensure!(
            out.status.success(),
            "replay failed: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let field = |name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(name))
                .map(str::trim)
                .map(str::to_owned)
        };
        let rate: f64 = field("rebuilt in:")
            .and_then(|v| {
                v.split('(')
                    .nth(1)
                    .and_then(|r| r.split_whitespace().next().map(str::to_owned))
            })
            .and_then(|r| r.parse().ok())
            .context("replay printed no rate")?;
        let peak: f64 = field("peak RSS:")
            .and_then(|v| v.split_whitespace().next().and_then(|n| n.parse().ok()))
            .unwrap_or(f64::NAN);
        let cpu_us: f64 = field("rebuild CPU:")
            .and_then(|v| {
                v.split('(')
                    .nth(1)
                    .and_then(|r| r.split_whitespace().next().and_then(|n| n.parse().ok()))
            })
            .unwrap_or(f64::NAN);
        println!(
            "  run {run}: {rate:>10.0} events/s, {cpu_us:.2} CPU-us/event, peak RSS {peak:.0} MiB"
        );
        rates.push(rate);
        cpus.push(cpu_us);
        rss.push(peak);
        hashes.push(
            text.lines()
                .skip_while(|l| !l.starts_with("view hashes:"))
                .collect::<Vec<_>>()
                .join("\n"),
        );
    }
    if opts.keep {
        println!("data folder kept: {}", tmp.keep().join("data").display());
    }
    anyhow::ensure!(
        hashes.windows(2).all(|w| w[0] == w[1]),
        "two rebuilds of one log gave different view hashes"
    );
    println!(
        "projection rebuild: median {:.0} events/s over {} runs (target >= 200,000), {:.2} CPU-us/event, peak RSS median {:.0} MiB",
        median(rates),
        opts.repeats.max(1),
        median(cpus),
        median(rss)
    );
    Ok(())
}

/// `bench graphql` options.
#[derive(Debug, Clone)]
pub struct GraphqlBenchOptions {
    /// Folder in which the temporary (empty) data folder is made.
    pub dir: PathBuf,
    /// Movements loaded into the views.
    pub movements: u32,
    /// Offered `movement(mrn)` requests per second (open loop).
    pub rate: u32,
    /// Seconds of offered load.
    pub seconds: u64,
}

/// Kernel counters that explain latency stalls: memory compaction and reclaim, huge-page
/// faults, major faults.
const VMSTAT_WATCHED: [&str; 6] = [
    "compact_stall",
    "allocstall_normal",
    "thp_fault_alloc",
    "thp_collapse_alloc",
    "pgmajfault",
    "pswpin",
];

/// `/proc/vmstat` (empty where there is none).
fn vmstat() -> HashMap<String, u64> {
    std::fs::read_to_string("/proc/vmstat")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(' ')?;
            Some((k.to_owned(), v.parse().ok()?))
        })
        .collect()
}

/// The 1-minute load average (`?` where unknown).
fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".to_owned())
}

async fn post(
    client: &reqwest::Client,
    url: &str,
    query: &str,
) -> anyhow::Result<serde_json::Value> {
    let body: serde_json::Value = client
        .post(url)
        .json(&serde_json::json!({ "query": query }))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    anyhow::ensure!(body.get("errors").is_none(), "GraphQL errors: {body}");
    Ok(body)
}

/// Loads the views with `movements` movements, serves the real router on a loopback socket,
/// offers `rate` `movement(mrn)` queries per second for `seconds` (latency measured from the
/// scheduled send, so a slow server cannot hide its queue), then times filtered pages.
pub async fn run_graphql(opts: GraphqlBenchOptions) -> anyhow::Result<()> {
    println!(
        "transit-ledger bench graphql: {} movements, {} req/s for {} s, {} cores",
        opts.movements,
        opts.rate,
        opts.seconds,
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    let started = Instant::now();
    let movements = opts.movements;
    // The views are built on a resident thread, as `serve` builds them: a thread that exits
    // hands its heap to the serving threads to reclaim, seconds of CPU inside the measured
    // window with a million movements (see `resident`).
    // The traffic is kept until the bench ends: freeing gigabytes during the measured window
    // makes the allocator return them to the OS meanwhile.
    let (views, events, sim) = crate::resident::spawn(move || {
        let sim = traffic(movements)?;
        let (views, events) = load_views_from(&sim, |_| {})?;
        Ok::<_, anyhow::Error>((views, events, sim))
    })
    .await??;
    println!(
        "views loaded: {} movements, {events} events in {:.1} s ({:.0} events/s), peak RSS {} MiB",
        views.movements.len(),
        started.elapsed().as_secs_f64(),
        events as f64 / started.elapsed().as_secs_f64(),
        crate::bench::peak_rss_kib().unwrap_or(0) / 1024
    );
    let tmp = tempfile::tempdir_in(&opts.dir)?;
    let store = Arc::new(FileStore::open(FileStoreConfig::new(
        tmp.path().join("data"),
    ))?);
    let public_key_hex = hex::encode(store.public_key().as_bytes());
    let dyn_store: Arc<dyn EventStore> = store.clone();
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let projections = crate::projection::Projections::from_views(clock.clone(), views, events);
    let graphql = crate::graphql::schema(projections, dyn_store.clone(), None);
    // Every query carries a bearer token, verified as `serve` verifies it (EdDSA): its cost
    // is part of the latency measured.
    let (auth, token) = crate::auth::bench_issuer(clock.clone())?;
    // Time spent in the router (request parsed to response built), apart from the client's
    // and the sockets' share of the latency the load generator sees.
    let server_side = Arc::new(parking_lot::Mutex::new(
        hdrhistogram::Histogram::<u64>::new(3)?,
    ));
    let timed = server_side.clone();
    let router = crate::http::app(crate::http::AppState {
        ledger: Arc::new(crate::ledger::Ledger::new(dyn_store, clock)),
        public_key_hex,
        graphql,
        auth: Some(Arc::new(auth)),
        limiter: None,
        // Served as `serve` serves it: the latency measured includes the metrics' cost.
        metrics: crate::metrics::Metrics::new(None),
    })
    .layer(axum::middleware::from_fn(
        move |req: axum::extract::Request, next: axum::middleware::Next| {
            let timed = timed.clone();
            async move {
                let t = Instant::now();
                let response = next.run(req).await;
                let _ = timed.lock().record((t.elapsed().as_micros() as u64).max(1));
                response
            }
        },
    ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/graphql", listener.local_addr()?);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await
    });
    let mut bearer = reqwest::header::HeaderMap::new();
    bearer.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {token}").parse()?,
    );
    let client = reqwest::Client::builder()
        .default_headers(bearer)
        .pool_max_idle_per_host(256)
        .timeout(Duration::from_secs(10))
        .build()?;
    let mrns: Arc<Vec<String>> = Arc::new(
        (0..sim.movement_count())
            .filter_map(|i| sim.mrn(i).map(|m| m.to_string()))
            .collect(),
    );
    let holder = sim.holder_id(0).unwrap_or_default().to_owned();
    let query_for = move |serial: u32| {
        format!(
            "{{ movement(mrn: \"{}\") {{ mrn status holder {{ name }} guarantee hsCodes riskScore }} }}",
            mrns.get(serial as usize - 1).map_or("", String::as_str)
        )
    };
    // Warm the connection pool.
    for serial in 1..=20 {
        post(&client, &url, &query_for(serial)).await?;
    }

    server_side.lock().reset();
    let mut hist = hdrhistogram::Histogram::<u64>::new(3)?;
    // Requests over the 5 ms target, by second of the run: stalls that hit every request in
    // flight show as a few bad seconds, a slow path as slow requests everywhere.
    let mut slow_by_second = vec![0u32; opts.seconds as usize + 1];
    let vmstat_before = vmstat();
    let loadavg_before = loadavg();
    let (tx, mut rx) = tokio::sync::mpsc::channel::<anyhow::Result<(u64, u64)>>(4096);
    let interval = Duration::from_secs_f64(1.0 / f64::from(opts.rate.max(1)));
    let total = opts.rate as u64 * opts.seconds;
    let load_started = tokio::time::Instant::now();
    let sender = {
        let client = client.clone();
        let url = url.clone();
        let query_for = query_for.clone();
        tokio::spawn(async move {
            let mut seed: u64 = 0x2026_1126;
            for i in 0..total {
                let scheduled = load_started + interval.mul_f64(i as f64);
                tokio::time::sleep_until(scheduled).await;
                // xorshift: spread the lookups over the whole loaded range.
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let serial = 1 + (seed % u64::from(movements)) as u32;
                let (client, url, tx) = (client.clone(), url.clone(), tx.clone());
                let query = query_for(serial);
                tokio::spawn(async move {
                    let result = post(&client, &url, &query).await.map(|_| {
                        (
                            scheduled.elapsed().as_micros() as u64,
                            (scheduled - load_started).as_secs(),
                        )
                    });
                    let _ = tx.send(result).await;
                });
            }
        })
    };
    let mut errors = 0u64;
    for _ in 0..total {
        match rx.recv().await {
            Some(Ok((us, second))) => {
                hist.record(us.max(1))?;
                if us > 5_000 {
                    if let Some(n) = slow_by_second.get_mut(second as usize) {
                        *n += 1;
                    }
                }
            }
            Some(Err(e)) => {
                errors += 1;
                if errors <= 3 {
                    eprintln!("request failed: {e:#}");
                }
            }
            None => break,
        }
    }
    sender.await?;
    let achieved = hist.len() as f64 / load_started.elapsed().as_secs_f64();
    println!(
        "movement(mrn) at {} req/s offered ({achieved:.0} achieved), {} requests, {errors} errors: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms (target p99 <= 5 ms)",
        opts.rate,
        hist.len(),
        hist.value_at_quantile(0.50) as f64 / 1000.0,
        hist.value_at_quantile(0.99) as f64 / 1000.0,
        hist.max() as f64 / 1000.0
    );
    {
        let server = server_side.lock();
        println!(
            "  in the router: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms ({} requests)",
            server.value_at_quantile(0.50) as f64 / 1000.0,
            server.value_at_quantile(0.99) as f64 / 1000.0,
            server.max() as f64 / 1000.0,
            server.len()
        );
    }
    let slow: Vec<String> = slow_by_second
        .iter()
        .enumerate()
        .filter(|(_, n)| **n > 0)
        .map(|(s, n)| format!("{s}s:{n}"))
        .collect();
    println!(
        "  over 5 ms, by second of the run: {}",
        if slow.is_empty() {
            "none".to_owned()
        } else {
            slow.join(" ")
        }
    );
    let vmstat_after = vmstat();
    let deltas: Vec<String> = VMSTAT_WATCHED
        .iter()
        .filter_map(|k| {
            let d = vmstat_after.get(*k)? - vmstat_before.get(*k)?;
            Some(format!("{k} +{d}"))
        })
        .collect();
    println!(
        "  machine during the run: load average {} -> {}; {}",
        loadavg_before,
        loadavg(),
        deltas.join(", ")
    );

    let holder_filter = format!("holder: \"{holder}\", status: DISCHARGED");
    let pages = [
        ("status RELEASED", "status: RELEASED"),
        ("office BFOUA001", "office: \"BFOUA001\""),
        ("holder + status", holder_filter.as_str()),
        ("HS heading 1006", "hsCode: \"1006\""),
        ("HS heading 8703", "hsCode: \"8703\""),
        ("has signals", "hasSignals: true"),
        ("discharged, BF", "status: DISCHARGED, country: \"BF\""),
    ];
    for (name, filter) in pages {
        let query = format!(
            "{{ movements(filter: {{ {filter} }}, first: 50) {{ edges {{ node {{ mrn status }} }} pageInfo {{ hasNextPage endCursor }} }} }}"
        );
        let mut times = Vec::new();
        let mut count = 0;
        for _ in 0..15 {
            let t = Instant::now();
            let body = post(&client, &url, &query).await?;
            times.push(t.elapsed().as_secs_f64() * 1000.0);
            count = body["data"]["movements"]["edges"]
                .as_array()
                .map_or(0, Vec::len);
        }
        let max = times.iter().copied().fold(0.0, f64::max);
        println!(
            "page of 50, {name:<16}: median {:.2} ms, max {max:.2} ms ({count} rows) (target <= 50 ms)",
            median(times)
        );
    }
    let _ = stop.send(());
    server.await??;
    drop(sim);
    Ok(())
}
