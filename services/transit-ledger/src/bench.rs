//! `transit-ledger bench append`: durable append throughput and latency of the embedded log at
//! several concurrency levels, latency under a fixed offered load, and full read + Merkle
//! verification speed. Figures are printed, never asserted: these machines are noisy, so each
//! configuration runs several times and the median is reported.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use ledger_store::file::{FileStore, FileStoreConfig};
use ledger_store::{EventId, EventStore, ExpectedVersion, NewEvent, StreamAppend, StreamId};
use tokio::sync::mpsc;
use uuid::Uuid;

/// Settings of the append benchmark.
#[derive(Clone, Debug)]
pub struct AppendBenchOptions {
    /// Folder in which temporary data folders are made (it must be on the disk under test).
    pub dir: PathBuf,
    /// Size of each event's data, in bytes.
    pub event_bytes: usize,
    /// Concurrency levels to measure.
    pub appenders: Vec<usize>,
    /// How long each throughput run lasts at most.
    pub run_time: Duration,
    /// Most events per throughput run.
    pub run_events_max: u64,
    /// Runs per configuration (the median is reported).
    pub repeats: usize,
    /// Offered load for the latency run, events per second.
    pub offered_rate: u64,
    /// Length of the latency run.
    pub offered_time: Duration,
}

impl Default for AppendBenchOptions {
    fn default() -> Self {
        Self {
            dir: std::env::temp_dir(),
            event_bytes: 1024,
            appenders: vec![1, 16, 256],
            run_time: Duration::from_secs(3),
            run_events_max: 300_000,
            repeats: 3,
            offered_rate: 1000,
            offered_time: Duration::from_secs(5),
        }
    }
}

/// One throughput measurement.
#[derive(Clone, Copy, Debug)]
pub struct RunFigures {
    /// Durable events per second.
    pub events_per_s: f64,
    /// Median append latency, microseconds.
    pub latency_us_p50: u64,
    /// 99th percentile append latency, microseconds.
    pub latency_us_p99: u64,
    /// Events appended.
    pub events: u64,
}

fn payload(size: usize) -> Vec<u8> {
    // JSON-like text of the requested size, as real events are.
    let mut s = String::from("{\"type\":\"BorderCrossed\",\"office\":\"BFCIN001\",\"remarks\":\"");
    while s.len() + 2 < size {
        s.push_str("Lomé-Cinkassé-Ouagadougou ");
    }
    s.truncate(size.saturating_sub(2));
    while !s.is_char_boundary(s.len()) {
        s.pop();
    }
    s.push_str("\"}");
    s.into_bytes()
}

fn new_event(data: &[u8]) -> NewEvent {
    NewEvent {
        event_id: EventId(Uuid::new_v4()),
        event_type: "BorderCrossed".to_owned(),
        schema_version: 1,
        data: data.to_vec(),
        metadata: b"{\"bench\":true}".to_vec(),
    }
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("invariant: valid histogram bounds")
}

fn open(dir: &Path) -> anyhow::Result<Arc<FileStore>> {
    let mut config = FileStoreConfig::new(dir);
    config.key = Some(ledger_store::LedgerKey::from_secret([1; 32]));
    if let Some(ms) = std::env::var("BENCH_CHECKPOINT_MS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        config.checkpoint_interval = Duration::from_millis(ms);
    }
    Ok(Arc::new(FileStore::open(config)?))
}

/// Runs `appenders` closed-loop appenders (each waits for its ack before the next append).
pub async fn throughput(
    store: Arc<FileStore>,
    appenders: usize,
    data: Arc<Vec<u8>>,
    run_time: Duration,
    events_max: u64,
) -> anyhow::Result<RunFigures> {
    let per_task = (events_max / appenders as u64).max(1);
    let deadline = Instant::now() + run_time;
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(appenders);
    for t in 0..appenders {
        let store = store.clone();
        let data = data.clone();
        tasks.push(tokio::spawn(async move {
            let mut hist = histogram();
            let stream = StreamId::new(format!("movement-bench-{t}"))?;
            let mut n = 0u64;
            while n < per_task && Instant::now() < deadline {
                let began = Instant::now();
                store
                    .append(vec![StreamAppend {
                        stream: stream.clone(),
                        expected: ExpectedVersion::Any,
                        events: vec![new_event(&data)],
                    }])
                    .await?;
                hist.record(began.elapsed().as_micros().max(1) as u64)?;
                n += 1;
            }
            anyhow::Ok((n, hist))
        }));
    }
    join_closed_loop(tasks, start).await
}

/// A closed-loop appender: how many appends it made, and their latencies (microseconds).
pub(crate) type Appender = tokio::task::JoinHandle<anyhow::Result<(u64, Histogram<u64>)>>;

/// Waits for closed-loop appenders (each returns how many appends it made and their latency
/// histogram) and sums them up: shared by `bench append` and `bench peer`.
pub(crate) async fn join_closed_loop(
    tasks: Vec<Appender>,
    start: Instant,
) -> anyhow::Result<RunFigures> {
    let mut total = 0;
    let mut hist = histogram();
    for t in tasks {
        let (n, h) = t.await??;
        total += n;
        hist.add(h)?;
    }
    let elapsed = start.elapsed().as_secs_f64();
    Ok(RunFigures {
        events_per_s: total as f64 / elapsed,
        latency_us_p50: hist.value_at_quantile(0.5),
        latency_us_p99: hist.value_at_quantile(0.99),
        events: total,
    })
}

/// Offers `rate` appends per second (open loop: arrivals do not wait for earlier acks) and
/// measures each append's latency from its scheduled arrival. Arrivals are paced by a
/// dedicated thread, since the runtime's timer wheel ticks in whole milliseconds.
pub async fn offered_load(
    store: Arc<FileStore>,
    rate: u64,
    duration: Duration,
    data: Arc<Vec<u8>>,
) -> anyhow::Result<RunFigures> {
    let (tx, mut rx) = mpsc::channel::<anyhow::Result<u64>>(4096);
    let total = rate * duration.as_secs().max(1);
    let period = Duration::from_secs_f64(1.0 / rate as f64);
    let runtime = tokio::runtime::Handle::current();
    let start = Instant::now();
    let streams = 64;
    let pacer = std::thread::spawn(move || {
        for i in 0..total {
            let scheduled = start + period.mul_f64(i as f64);
            let now = Instant::now();
            if scheduled > now {
                std::thread::sleep(scheduled - now);
            }
            let store = store.clone();
            let data = data.clone();
            let tx = tx.clone();
            runtime.spawn(async move {
                let result = async {
                    let stream = StreamId::new(format!("movement-load-{}", i % streams))?;
                    store
                        .append(vec![StreamAppend {
                            stream,
                            expected: ExpectedVersion::Any,
                            events: vec![new_event(&data)],
                        }])
                        .await?;
                    anyhow::Ok(scheduled.elapsed().as_micros().max(1) as u64)
                }
                .await;
                let _ = tx.send(result).await;
            });
        }
    });
    collect_open_loop(&mut rx, total, pacer, start).await
}

/// Receives the latencies (microseconds from scheduled arrival) of `total` open-loop appends
/// from `rx`, joins the pacing thread, and sums them up: shared by `bench append` and
/// `bench peer`, so both systems are measured the same way.
pub(crate) async fn collect_open_loop(
    rx: &mut mpsc::Receiver<anyhow::Result<u64>>,
    total: u64,
    pacer: std::thread::JoinHandle<()>,
    start: Instant,
) -> anyhow::Result<RunFigures> {
    let mut hist = histogram();
    let mut n = 0;
    while n < total {
        match rx.recv().await {
            Some(latency) => hist.record(latency?)?,
            None => break,
        }
        n += 1;
    }
    pacer
        .join()
        .map_err(|_| anyhow::anyhow!("the pacing thread panicked"))?;
    Ok(RunFigures {
        events_per_s: n as f64 / start.elapsed().as_secs_f64(),
        latency_us_p50: hist.value_at_quantile(0.5),
        latency_us_p99: hist.value_at_quantile(0.99),
        events: n,
    })
}

fn median(mut v: Vec<RunFigures>) -> RunFigures {
    v.sort_by(|a, b| a.events_per_s.total_cmp(&b.events_per_s));
    v[v.len() / 2]
}

/// Runs the whole append benchmark and prints its table; the last line is a summary.
pub async fn run_append(opts: AppendBenchOptions) -> anyhow::Result<()> {
    let data = Arc::new(payload(opts.event_bytes));
    println!(
        "transit-ledger bench append: {} B events, {} runs per row (median), {} cores, data under {}",
        data.len(),
        opts.repeats,
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        opts.dir.display()
    );
    println!(
        "{:<28} {:>14} {:>12} {:>12} {:>10}",
        "configuration", "events/s", "p50 us", "p99 us", "events"
    );
    let mut summary = Vec::new();
    // The largest log written is kept for the read + verify run.
    let mut largest: Option<(u64, tempfile::TempDir)> = None;
    for &appenders in &opts.appenders {
        let mut runs = Vec::new();
        for _ in 0..opts.repeats {
            let dir = tempfile::tempdir_in(&opts.dir)?;
            let store = open(dir.path())?;
            let figures = throughput(
                store.clone(),
                appenders,
                data.clone(),
                opts.run_time,
                opts.run_events_max,
            )
            .await?;
            let store = Arc::into_inner(store)
                .ok_or_else(|| anyhow::anyhow!("store still shared after the run"))?;
            store.close().await?;
            runs.push(figures);
            if largest.as_ref().is_none_or(|(n, _)| figures.events > *n) {
                largest = Some((figures.events, dir));
            }
        }
        let m = median(runs);
        println!(
            "{:<28} {:>14.0} {:>12} {:>12} {:>10}",
            format!("durable append x{appenders}"),
            m.events_per_s,
            m.latency_us_p50,
            m.latency_us_p99,
            m.events
        );
        summary.push(format!(
            "append_x{appenders}_events_per_s={:.0}",
            m.events_per_s
        ));
    }
    let mut runs = Vec::new();
    for _ in 0..opts.repeats {
        let dir = tempfile::tempdir_in(&opts.dir)?;
        let store = open(dir.path())?;
        let figures = offered_load(
            store.clone(),
            opts.offered_rate,
            opts.offered_time,
            data.clone(),
        )
        .await?;
        if let Some(store) = Arc::into_inner(store) {
            store.close().await?;
        }
        runs.push(figures);
    }
    runs.sort_by_key(|r| r.latency_us_p99);
    let m = runs[runs.len() / 2];
    println!(
        "{:<28} {:>14.0} {:>12} {:>12} {:>10}",
        format!("offered {}/s", opts.offered_rate),
        m.events_per_s,
        m.latency_us_p50,
        m.latency_us_p99,
        m.events
    );
    summary.push(format!(
        "p99_ms_at_{}_per_s={:.2}",
        opts.offered_rate,
        m.latency_us_p99 as f64 / 1000.0
    ));
    if let Some((_, dir)) = largest {
        let mut runs = Vec::new();
        let mut events = 0;
        for _ in 0..opts.repeats {
            let path = dir.path().to_owned();
            let began = Instant::now();
            let report =
                tokio::task::spawn_blocking(move || ledger_store::verify::verify_dir(&path, None))
                    .await??;
            let secs = began.elapsed().as_secs_f64();
            anyhow::ensure!(report.intact(), "benchmark log does not verify: {report:?}");
            events = report.events;
            runs.push(RunFigures {
                events_per_s: report.events as f64 / secs,
                latency_us_p50: 0,
                latency_us_p99: 0,
                events: report.events,
            });
        }
        let m = median(runs);
        println!(
            "{:<28} {:>14.0} {:>12} {:>12} {:>10}",
            "read + Merkle verify", m.events_per_s, "-", "-", events
        );
        summary.push(format!("read_verify_events_per_s={:.0}", m.events_per_s));
    }
    println!("summary: {}", summary.join(" "));
    Ok(())
}

/// Settings of the broker benchmark.
#[derive(Clone, Debug)]
pub struct BrokerBenchOptions {
    /// The broker's STOMP address (start it with `ops/activemq.sh start`).
    pub broker: std::net::SocketAddr,
    /// Who the ledger node connects as (`ledger`).
    pub ledger: crate::broker::BrokerCredentials,
    /// Who sends the inbound messages and reads the office's queue, standing in for Togo's
    /// national system (`tg`: the broker lets only Togo write Togo's inbound queue).
    pub producer: crate::broker::BrokerCredentials,
    /// Folder in which the temporary data folder is made.
    pub dir: PathBuf,
    /// Messages for the ingest run.
    pub messages: u32,
    /// Movements released for the fan-out latency run.
    pub journeys: u32,
}

/// A ledger node (store + gateway + dispatcher) running in this process on its own queues.
struct BenchNode {
    store: Arc<FileStore>,
    config: Arc<crate::broker::BrokerConfig>,
    stop: tokio::sync::watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl BenchNode {
    fn start(
        dir: &Path,
        broker: std::net::SocketAddr,
        credentials: &crate::broker::BrokerCredentials,
    ) -> anyhow::Result<Self> {
        let store = open(dir)?;
        let mut config =
            crate::broker::BrokerConfig::new(broker, vec!["TG".parse()?], credentials.clone());
        config.queue_suffix = format!(".bench-{}", Uuid::new_v4().simple());
        let config = Arc::new(config);
        let dyn_store: Arc<dyn EventStore> = store.clone();
        let ledger = Arc::new(crate::ledger::Ledger::new(
            dyn_store.clone(),
            Arc::new(ledger_store::SystemClock),
        ));
        let (stop, stop_rx) = tokio::sync::watch::channel(false);
        let checkpoint = crate::dispatch::Checkpoint::new(dir.join("fanout.checkpoint"));
        let tasks = vec![
            tokio::spawn(crate::gateway::run(ledger, config.clone(), stop_rx.clone())),
            tokio::spawn(crate::dispatch::run(
                dyn_store,
                config.clone(),
                checkpoint,
                stop_rx,
            )),
        ];
        Ok(Self {
            store,
            config,
            stop,
            tasks,
        })
    }

    async fn stop(self) -> anyhow::Result<()> {
        let _ = self.stop.send(true);
        for t in self.tasks {
            t.await?;
        }
        if let Some(store) = Arc::into_inner(self.store) {
            store.close().await?;
        }
        Ok(())
    }
}

fn now_timestamp() -> anyhow::Result<transit_contract::ids::Timestamp> {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis() as i64;
    Ok(transit_contract::ids::Timestamp::from_unix_millis(ms)?)
}

/// Broker ingest (persistent XML messages in, durable append, ack) and fan-out latency (from
/// the append being durable to the notification on the office's queue).
pub async fn run_broker(opts: BrokerBenchOptions) -> anyhow::Result<()> {
    use transit_contract::fixtures;
    println!(
        "transit-ledger bench broker: broker {}, {} messages, {} journeys, {} cores",
        opts.broker,
        opts.messages,
        opts.journeys,
        std::thread::available_parallelism().map_or(1, |n| n.get()),
    );
    let base = now_timestamp()?;
    // Ingest: the queue is filled first, then a fresh node drains it, so the figure is the
    // ledger's (parse, decide, durable append, ack), not the producer's.
    let dir = tempfile::tempdir_in(&opts.dir)?;
    let node = BenchNode::start(dir.path(), opts.broker, &opts.ledger)?;
    let queue = node.config.inbound_queue(&"TG".parse()?);
    let _ = node.stop.send(true);
    let BenchNode {
        store,
        config,
        tasks,
        ..
    } = node;
    for t in tasks {
        t.await?;
    }
    let mut publisher = crate::broker::Publisher::connect(opts.broker, &opts.producer).await?;
    for i in 0..opts.messages {
        let m = fixtures::journey(base, 100_000 + i).guarantee_registration;
        publisher
            .send_text(&queue, Vec::new(), transit_xml::encode_inbound(&m))
            .await?;
    }
    let dyn_store: Arc<dyn EventStore> = store.clone();
    let ledger = Arc::new(crate::ledger::Ledger::new(
        dyn_store,
        Arc::new(ledger_store::SystemClock),
    ));
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let began = Instant::now();
    let gateway = tokio::spawn(crate::gateway::run(ledger, config.clone(), stop_rx));
    while store.head() < u64::from(opts.messages) {
        anyhow::ensure!(
            began.elapsed() < Duration::from_secs(600),
            "ingest stalled at {} of {}",
            store.head(),
            opts.messages
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let ingest_secs = began.elapsed().as_secs_f64();
    let _ = stop.send(true);
    gateway.await?;
    if let Some(store) = Arc::into_inner(store) {
        store.close().await?;
    }
    let ingest_rate = f64::from(opts.messages) / ingest_secs;
    println!(
        "{:<28} {:>14.0} msg/s  ({} persistent XML messages, durable append then ack, in {:.2} s)",
        "broker ingest", ingest_rate, opts.messages, ingest_secs
    );

    // Fan-out latency: releases go through the broker; the time runs from the moment the
    // dispatch duty is durable in the log to the anticipated transit record arriving on the
    // office's queue.
    let dir = tempfile::tempdir_in(&opts.dir)?;
    let node = BenchNode::start(dir.path(), opts.broker, &opts.ledger)?;
    let office: transit_contract::ids::OfficeCode = fixtures::CINKASSE_TG.parse()?;
    let office_queue = node.config.office_queue(&office);
    let queue = node.config.inbound_queue(&"TG".parse()?);
    let mut consumer = crate::broker::connect(opts.broker, &opts.producer).await?;
    crate::broker::subscribe(&mut consumer, &office_queue, "bench", 1024).await?;
    let (appended_tx, mut appended_rx) = mpsc::unbounded_channel::<(String, Instant)>();
    let mut feed = node.store.subscribe(node.store.head());
    let watcher = tokio::spawn(async move {
        use futures::StreamExt as _;
        while let Some(Ok(e)) = feed.next().await {
            if e.event_type == "AnticipatedRecordsDispatched" {
                let mrn = e.stream.as_str().trim_start_matches("movement-").to_owned();
                if appended_tx.send((mrn, Instant::now())).is_err() {
                    return;
                }
            }
        }
    });
    let sender = tokio::spawn({
        let broker = opts.broker;
        let producer = opts.producer.clone();
        let journeys = opts.journeys;
        async move {
            let mut publisher = crate::broker::Publisher::connect(broker, &producer).await?;
            for i in 0..journeys {
                let j = fixtures::journey(base, 200_000 + i);
                for m in [&j.guarantee_registration, &j.declaration, &j.release] {
                    publisher
                        .send_text(&queue, Vec::new(), transit_xml::encode_inbound(m))
                        .await?;
                }
            }
            anyhow::Ok(())
        }
    });
    let mut appended_at = std::collections::HashMap::new();
    let mut received_at = std::collections::HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(300);
    while received_at.len() < opts.journeys as usize {
        anyhow::ensure!(Instant::now() < deadline, "fan-out stalled");
        use futures::{SinkExt as _, StreamExt as _};
        tokio::select! {
            Some((mrn, at)) = appended_rx.recv() => { appended_at.insert(mrn, at); }
            frame = consumer.next() => {
                let frame = frame.ok_or_else(|| anyhow::anyhow!("broker closed"))??;
                if let async_stomp::FromServer::Message { headers, ack, .. } = frame.content {
                    let now = Instant::now();
                    if let Some((_, mrn)) = headers.iter().find(|(k, _)| k == "transitMrn") {
                        received_at.insert(mrn.clone(), now);
                    }
                    if let Some(ack) = ack {
                        consumer.send(crate::broker::ack_frame(ack)).await?;
                    }
                }
            }
        }
    }
    // Appends observed after their notification (the watcher is a separate task) still count.
    while appended_at.len() < received_at.len() {
        match tokio::time::timeout(Duration::from_secs(5), appended_rx.recv()).await {
            Ok(Some((mrn, at))) => {
                appended_at.insert(mrn, at);
            }
            _ => break,
        }
    }
    sender.await??;
    watcher.abort();
    let mut hist = histogram();
    for (mrn, received) in &received_at {
        if let Some(appended) = appended_at.get(mrn) {
            hist.record(
                received
                    .saturating_duration_since(*appended)
                    .as_micros()
                    .max(1) as u64,
            )?;
        }
    }
    node.stop().await?;
    println!(
        "{:<28} {:>10.2} ms p50 {:>10.2} ms p99  ({} movements released, anticipated transit record to {office})",
        "fan-out latency",
        hist.value_at_quantile(0.5) as f64 / 1000.0,
        hist.value_at_quantile(0.99) as f64 / 1000.0,
        hist.len()
    );
    println!(
        "summary: broker_ingest_msgs_per_s={ingest_rate:.0} fanout_ms_p50={:.2} fanout_ms_p99={:.2}",
        hist.value_at_quantile(0.5) as f64 / 1000.0,
        hist.value_at_quantile(0.99) as f64 / 1000.0
    );
    Ok(())
}

/// CPU time this process has used so far (all threads, user + system).
pub fn process_cpu_time() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ProcessCPUTime);
    Duration::new(
        u64::try_from(t.tv_sec).unwrap_or(0),
        u32::try_from(t.tv_nsec).unwrap_or(0),
    )
}

/// The process's peak resident set size (`VmHWM`), in KiB, where the OS reports it.
pub fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}
