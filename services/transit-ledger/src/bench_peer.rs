//! `transit-ledger bench peer`: the embedded log's durable append measured in the same run, on
//! the same disk and with the same workload, as the events table most teams would build in
//! PostgreSQL. `ops/bench.sh` makes a throwaway PostgreSQL cluster and runs this; the command
//! itself only needs a connection string.
//!
//! The workload, for both: closed-loop appenders (each waits for its acknowledgement before
//! its next append), one stream per appender, one 1 KiB JSON event per append, and every
//! append an optimistic-concurrency write of version `n` expecting the stream at `n - 1`,
//! acknowledged only once durable (the ledger: group commit + `fdatasync`; PostgreSQL: one
//! autocommit `INSERT` per append with `fsync=on`, `synchronous_commit=on`, and the
//! `UNIQUE (stream_id, version)` constraint as the expected-version check). Runs alternate
//! between the two (ledger first in runs 1, 3, 5..., PostgreSQL first in runs 2, 4...) so
//! that noise from neighbours lands on both; the median of the repeats is reported.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use hdrhistogram::Histogram;
use ledger_store::file::{FileStore, FileStoreConfig};
use ledger_store::{EventId, EventStore, ExpectedVersion, NewEvent, StreamAppend, StreamId};
use tokio::sync::mpsc;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, NoTls, Statement};
use uuid::Uuid;

/// Longest wait for a PostgreSQL connection to open.
const PG_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest wait for one PostgreSQL statement (an append, or a whole scan).
const PG_STATEMENT_TIMEOUT: Duration = Duration::from_secs(120);
/// Most connections the peer opens, whatever the flags say (the cluster's `max_connections`
/// in `ops/bench.sh` is above this).
const PG_CONNECTIONS_LIMIT: usize = 256;
/// `fdatasync` calls in one probe of the disk.
const FSYNC_PROBE_SYNCS: usize = 200;

/// How the PostgreSQL table stores the event's data.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum PgPayload {
    /// `jsonb` (what most teams choose: queryable; PostgreSQL parses every event).
    Jsonb,
    /// `bytea` (opaque bytes, as the ledger stores them: the cheaper choice for PostgreSQL).
    Bytea,
}

/// `bench peer` flags.
#[derive(Debug, Args)]
pub struct BenchPeerArgs {
    /// libpq-style connection string of the PostgreSQL to measure, e.g.
    /// `host=127.0.0.1 port=55432 user=postgres dbname=postgres` (`ops/bench.sh` starts a
    /// throwaway cluster and passes this). Its `events` table is dropped and recreated.
    #[arg(long, env = "TRANSIT_BENCH_POSTGRES")]
    pub postgres: String,
    /// Folder for the ledger's temporary logs: put it on the same filesystem as PostgreSQL's
    /// data folder.
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Event size in bytes.
    #[arg(long, default_value_t = 1024)]
    pub event_bytes: usize,
    /// Seconds per throughput run.
    #[arg(long, default_value_t = 3)]
    pub run_seconds: u64,
    /// Runs per configuration and per system (median reported).
    #[arg(long, default_value_t = 3)]
    pub repeats: usize,
    /// Concurrency levels, comma separated.
    #[arg(long, value_delimiter = ',', default_value = "1,16,256")]
    pub appenders: Vec<usize>,
    /// PostgreSQL connections (the pool): min(appenders, this). Appenders beyond it share
    /// connections, as they would wait for a pooled one.
    #[arg(long, default_value_t = 64)]
    pub pg_connections_max: usize,
    /// Column type of the event data in PostgreSQL.
    #[arg(long, value_enum, default_value_t = PgPayload::Jsonb)]
    pub pg_payload: PgPayload,
    /// Offered load of the open-loop latency run, appends per second (0: skip it).
    #[arg(long, default_value_t = 1000)]
    pub offered_rate: u64,
    /// Seconds of the open-loop latency run.
    #[arg(long, default_value_t = 5)]
    pub offered_seconds: u64,
}

// One measurement of one system: the figures `bench append` reports.
use crate::bench::RunFigures as Figures;

/// The event every append writes: JSON text (PostgreSQL's `jsonb` needs valid JSON).
struct Payload {
    text: String,
}

fn payload(size: usize) -> Payload {
    let mut s = String::from("{\"type\":\"BorderCrossed\",\"office\":\"BFCIN001\",\"remarks\":\"");
    while s.len() + 2 < size {
        s.push_str("Lomé-Cinkassé-Ouagadougou ");
    }
    s.truncate(size.saturating_sub(2));
    while !s.is_char_boundary(s.len()) {
        s.pop();
    }
    s.push_str("\"}");
    Payload { text: s }
}

const EVENT_TYPE: &str = "BorderCrossed";
const METADATA: &str = "{\"bench\":true}";

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 120_000_000, 3).expect("invariant: valid histogram bounds")
}

/// A system under test: appends event `version` to `stream`, expecting the stream to hold
/// exactly `version` events before it, and returns once the event is durable.
trait Target: Send + Sync + 'static {
    fn append(
        &self,
        lane: usize,
        stream: String,
        version: u64,
        data: Arc<Payload>,
    ) -> impl Future<Output = anyhow::Result<()>> + Send;
}

/// The embedded log, opened as `bench append` opens it.
struct Ledger {
    store: Arc<FileStore>,
}

impl Ledger {
    fn open(dir: &Path) -> anyhow::Result<Self> {
        let mut config = FileStoreConfig::new(dir);
        config.key = Some(ledger_store::LedgerKey::from_secret([1; 32]));
        Ok(Self {
            store: Arc::new(FileStore::open(config)?),
        })
    }

    async fn close(self) -> anyhow::Result<()> {
        let store = Arc::into_inner(self.store)
            .ok_or_else(|| anyhow::anyhow!("store still shared after the run"))?;
        store.close().await?;
        Ok(())
    }
}

impl Target for Ledger {
    async fn append(
        &self,
        _lane: usize,
        stream: String,
        version: u64,
        data: Arc<Payload>,
    ) -> anyhow::Result<()> {
        let expected = match version {
            0 => ExpectedVersion::NoStream,
            v => ExpectedVersion::Exact(v - 1),
        };
        self.store
            .append(vec![StreamAppend {
                stream: StreamId::new(stream)?,
                expected,
                events: vec![NewEvent {
                    event_id: EventId(Uuid::new_v4()),
                    event_type: EVENT_TYPE.to_owned(),
                    schema_version: 1,
                    data: data.text.as_bytes().to_vec(),
                    metadata: METADATA.as_bytes().to_vec(),
                }],
            }])
            .await?;
        Ok(())
    }
}

/// The PostgreSQL peer: a fixed set of connections, each with the insert prepared. Appender
/// (or arrival) `lane` uses connection `lane % connections`; tokio-postgres pipelines the
/// statements of lanes sharing a connection, so a connection never idles while work waits,
/// as a pool under full load behaves.
struct Postgres {
    connections: Vec<(Client, Statement)>,
    payload: PgPayload,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

async fn pg_connect(config: &str) -> anyhow::Result<(Client, tokio::task::JoinHandle<()>)> {
    let (client, connection) =
        tokio::time::timeout(PG_CONNECT_TIMEOUT, tokio_postgres::connect(config, NoTls))
            .await
            .map_err(|_| {
                anyhow::anyhow!("PostgreSQL did not answer within {PG_CONNECT_TIMEOUT:?}")
            })??;
    let task = tokio::spawn(async move {
        if let Err(e) = connection.await {
            eprintln!("bench peer: PostgreSQL connection ended: {e}");
        }
    });
    Ok((client, task))
}

fn create_table_sql(payload: PgPayload) -> String {
    let column = match payload {
        PgPayload::Jsonb => "jsonb",
        PgPayload::Bytea => "bytea",
    };
    // The usual event-store table: a global order, the stream's version with the unique
    // constraint that makes the expected-version check, the event id unique for idempotency
    // (the ledger enforces both too), type, schema version, data, metadata, time recorded.
    format!(
        "DROP TABLE IF EXISTS events;
         CREATE TABLE events (
             global_position bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
             stream_id text NOT NULL,
             version bigint NOT NULL,
             event_id uuid NOT NULL UNIQUE,
             event_type text NOT NULL,
             schema_version integer NOT NULL,
             data {column} NOT NULL,
             metadata {column} NOT NULL,
             recorded_at timestamptz NOT NULL DEFAULT now(),
             UNIQUE (stream_id, version)
         );"
    )
}

fn insert_sql(payload: PgPayload) -> &'static str {
    match payload {
        PgPayload::Jsonb => {
            "INSERT INTO events (stream_id, version, event_id, event_type, schema_version, data, metadata)
             VALUES ($1, $2, $3, $4, $5, $6::text::jsonb, $7::text::jsonb)"
        }
        PgPayload::Bytea => {
            "INSERT INTO events (stream_id, version, event_id, event_type, schema_version, data, metadata)
             VALUES ($1, $2, $3, $4, $5, $6, $7)"
        }
    }
}

impl Postgres {
    /// Recreates the table (so every run starts empty, as the ledger's does), checkpoints so
    /// that the previous run's WAL is not flushed during this one, and opens the connections.
    async fn open(config: &str, payload: PgPayload, connections: usize) -> anyhow::Result<Self> {
        let (admin, admin_task) = pg_connect(config).await?;
        admin.batch_execute(&create_table_sql(payload)).await?;
        admin.batch_execute("CHECKPOINT").await?;
        drop(admin);
        admin_task.await?;
        let mut opened = Vec::with_capacity(connections);
        let mut tasks = Vec::with_capacity(connections);
        for _ in 0..connections.clamp(1, PG_CONNECTIONS_LIMIT) {
            let (client, task) = pg_connect(config).await?;
            let insert = client.prepare(insert_sql(payload)).await?;
            opened.push((client, insert));
            tasks.push(task);
        }
        Ok(Self {
            connections: opened,
            payload,
            tasks,
        })
    }

    async fn close(self) -> anyhow::Result<()> {
        drop(self.connections);
        for task in self.tasks {
            task.await?;
        }
        Ok(())
    }
}

impl Target for Postgres {
    async fn append(
        &self,
        lane: usize,
        stream: String,
        version: u64,
        data: Arc<Payload>,
    ) -> anyhow::Result<()> {
        let (client, insert) = &self.connections[lane % self.connections.len()];
        let version = i64::try_from(version)?;
        let event_id = Uuid::new_v4();
        let schema_version = 1_i32;
        let event_type = EVENT_TYPE;
        let inserted = match self.payload {
            PgPayload::Jsonb => {
                let data = data.text.as_str();
                let params: [&(dyn ToSql + Sync); 7] = [
                    &stream,
                    &version,
                    &event_id,
                    &event_type,
                    &schema_version,
                    &data,
                    &METADATA,
                ];
                tokio::time::timeout(PG_STATEMENT_TIMEOUT, client.execute(insert, &params)).await
            }
            PgPayload::Bytea => {
                let data = data.text.as_bytes();
                let metadata = METADATA.as_bytes();
                let params: [&(dyn ToSql + Sync); 7] = [
                    &stream,
                    &version,
                    &event_id,
                    &event_type,
                    &schema_version,
                    &data,
                    &metadata,
                ];
                tokio::time::timeout(PG_STATEMENT_TIMEOUT, client.execute(insert, &params)).await
            }
        };
        let rows = inserted.map_err(|_| anyhow::anyhow!("PostgreSQL insert timed out"))??;
        anyhow::ensure!(rows == 1, "PostgreSQL inserted {rows} rows, expected 1");
        Ok(())
    }
}

/// `appenders` closed-loop appenders, each on its own stream, for `run_time` or until
/// `events_max` events in all.
async fn throughput<T: Target>(
    target: Arc<T>,
    appenders: usize,
    data: Arc<Payload>,
    run_time: Duration,
    events_max: u64,
    tag: &str,
) -> anyhow::Result<Figures> {
    let per_task = (events_max / appenders as u64).max(1);
    let start = Instant::now();
    let deadline = start + run_time;
    let mut tasks = Vec::with_capacity(appenders);
    for lane in 0..appenders {
        let target = target.clone();
        let data = data.clone();
        let stream = format!("movement-{tag}-{lane}");
        tasks.push(tokio::spawn(async move {
            let mut hist = histogram();
            let mut version = 0u64;
            while version < per_task && Instant::now() < deadline {
                let began = Instant::now();
                target
                    .append(lane, stream.clone(), version, data.clone())
                    .await?;
                hist.record(began.elapsed().as_micros().max(1) as u64)?;
                version += 1;
            }
            anyhow::Ok((version, hist))
        }));
    }
    crate::bench::join_closed_loop(tasks, start).await
}

/// Offers `rate` appends per second, open loop (arrivals do not wait for earlier
/// acknowledgements), each creating a new stream (expected: no stream), and measures each
/// append's latency from its scheduled arrival. A dedicated thread paces the arrivals, since
/// the runtime's timer wheel ticks in whole milliseconds.
async fn offered_load<T: Target>(
    target: Arc<T>,
    rate: u64,
    duration: Duration,
    data: Arc<Payload>,
    tag: &str,
) -> anyhow::Result<Figures> {
    let (tx, mut rx) = mpsc::channel::<anyhow::Result<u64>>(4096);
    let total = rate * duration.as_secs().max(1);
    let period = Duration::from_secs_f64(1.0 / rate as f64);
    let runtime = tokio::runtime::Handle::current();
    let start = Instant::now();
    let tag = tag.to_owned();
    let pacer = std::thread::spawn(move || {
        for i in 0..total {
            let scheduled = start + period.mul_f64(i as f64);
            let now = Instant::now();
            if scheduled > now {
                std::thread::sleep(scheduled - now);
            }
            let target = target.clone();
            let data = data.clone();
            let tx = tx.clone();
            let stream = format!("movement-{tag}-{i}");
            runtime.spawn(async move {
                let result = target
                    .append(i as usize, stream, 0, data)
                    .await
                    .map(|()| scheduled.elapsed().as_micros().max(1) as u64);
                let _ = tx.send(result).await;
            });
        }
    });
    crate::bench::collect_open_loop(&mut rx, total, pacer, start).await
}

/// The run with the median throughput (its latencies come with it).
fn median_by_rate(mut runs: Vec<Figures>) -> Figures {
    runs.sort_by(|a, b| a.events_per_s.total_cmp(&b.events_per_s));
    runs[runs.len() / 2]
}

/// The run with the median p99 latency.
fn median_by_p99(mut runs: Vec<Figures>) -> Figures {
    runs.sort_by_key(|r| r.latency_us_p99);
    runs[runs.len() / 2]
}

fn ms(us: u64) -> String {
    format!("{:.2}", us as f64 / 1000.0)
}

/// `fdatasync` latency of this disk, as the ledger pays it: append 4 KiB, sync, repeat.
fn fsync_probe(dir: &Path) -> anyhow::Result<(u64, u64)> {
    use std::io::Write as _;
    let file_dir = tempfile::tempdir_in(dir)?;
    let mut file = std::fs::File::create(file_dir.path().join("probe"))?;
    let block = [0x5a_u8; 4096];
    let mut hist = histogram();
    for _ in 0..FSYNC_PROBE_SYNCS {
        file.write_all(&block)?;
        let began = Instant::now();
        file.sync_data()?;
        hist.record(began.elapsed().as_micros().max(1) as u64)?;
    }
    Ok((hist.value_at_quantile(0.5), hist.value_at_quantile(0.99)))
}

fn first_line_with(path: &str, prefix: &str) -> Option<String> {
    std::fs::read_to_string(path).ok()?.lines().find_map(|l| {
        l.strip_prefix(prefix)
            .map(|rest| rest.trim_start_matches([' ', '\t', ':']).trim().to_owned())
    })
}

/// Cores, CPU, memory, kernel, the filesystem holding `dir`, the load average.
fn machine_line(dir: &Path) -> String {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let cpu = first_line_with("/proc/cpuinfo", "model name").unwrap_or_else(|| "?".into());
    let mem_gib = first_line_with("/proc/meminfo", "MemTotal")
        .and_then(|v| v.trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or_else(
            || "?".into(),
            |kib| format!("{:.0}", kib as f64 / 1_048_576.0),
        );
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map_or_else(|_| "?".into(), |s| s.trim().to_owned());
    let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_owned());
    // The mount holding the folder is the longest mount point that prefixes it.
    let filesystem = std::fs::read_to_string("/proc/self/mounts")
        .ok()
        .and_then(|mounts| {
            mounts
                .lines()
                .filter_map(|l| {
                    let mut f = l.split_whitespace();
                    Some((
                        f.next()?.to_owned(),
                        f.next()?.to_owned(),
                        f.next()?.to_owned(),
                    ))
                })
                .filter(|(_, mount, _)| dir.starts_with(mount))
                .max_by_key(|(_, mount, _)| mount.len())
        })
        .map_or_else(|| "?".into(), |(dev, _, fs)| format!("{fs} on {dev}"));
    format!(
        "{cores} cores ({cpu}), {mem_gib} GiB RAM, Linux {kernel}, {filesystem} ({})",
        dir.display()
    )
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg").map_or_else(
        |_| "?".into(),
        |s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "),
    )
}

/// Everything PostgreSQL says about its durability, printed so that a reader can check it.
async fn pg_settings(config: &str) -> anyhow::Result<String> {
    let (client, task) = pg_connect(config).await?;
    let mut out = Vec::new();
    for name in [
        "server_version",
        "fsync",
        "synchronous_commit",
        "full_page_writes",
        "wal_sync_method",
        "shared_buffers",
        "max_wal_size",
    ] {
        let row = client.query_one(&format!("SHOW {name}"), &[]).await?;
        out.push(format!("{name}={}", row.get::<_, String>(0)));
    }
    // Equal durability is the point of the comparison: refuse to measure anything less.
    let durable = ["fsync=on", "synchronous_commit=on", "full_page_writes=on"];
    for setting in durable {
        anyhow::ensure!(
            out.iter().any(|s| s == setting),
            "PostgreSQL must run with {setting} for this comparison (it reports {out:?})"
        );
    }
    drop(client);
    task.await?;
    Ok(out.join(" "))
}

/// Reads the whole table to the client in global order, decoding every column.
async fn pg_scan(config: &str) -> anyhow::Result<(u64, f64)> {
    let (client, task) = pg_connect(config).await?;
    let began = Instant::now();
    let scan = async {
        use futures::StreamExt as _;
        let rows = client
            .query_raw(
                "SELECT global_position, stream_id, version, event_id, event_type, \
                 schema_version, data::text, metadata::text FROM events ORDER BY global_position",
                std::iter::empty::<&(dyn ToSql + Sync)>(),
            )
            .await?;
        let mut rows = std::pin::pin!(rows);
        let mut n = 0u64;
        let mut bytes = 0usize;
        while let Some(row) = rows.next().await {
            let row = row?;
            let _: i64 = row.try_get(0)?;
            let stream: &str = row.try_get(1)?;
            let _: i64 = row.try_get(2)?;
            let _: Uuid = row.try_get(3)?;
            let event_type: &str = row.try_get(4)?;
            let _: i32 = row.try_get(5)?;
            let data: &str = row.try_get(6)?;
            let metadata: &str = row.try_get(7)?;
            bytes += stream.len() + event_type.len() + data.len() + metadata.len();
            n += 1;
        }
        anyhow::ensure!(bytes > 0 || n == 0, "rows without content");
        anyhow::Ok(n)
    };
    let n = tokio::time::timeout(PG_STATEMENT_TIMEOUT, scan)
        .await
        .map_err(|_| anyhow::anyhow!("PostgreSQL scan timed out"))??;
    let secs = began.elapsed().as_secs_f64();
    drop(client);
    task.await?;
    Ok((n, secs))
}

/// Runs the comparison and prints per-run lines, then a Markdown table of medians, then a
/// one-line summary.
pub async fn run_peer(args: BenchPeerArgs) -> anyhow::Result<()> {
    let dir = args.dir.clone().unwrap_or_else(std::env::temp_dir);
    let repeats = args.repeats.max(1);
    let run_time = Duration::from_secs(args.run_seconds.max(1));
    let events_max = 300_000;
    let data = Arc::new(payload(args.event_bytes));
    let settings = pg_settings(&args.postgres).await?;
    let probe_dir = dir.clone();
    let fsync_before = tokio::task::spawn_blocking(move || fsync_probe(&probe_dir)).await??;
    println!(
        "transit-ledger bench peer: {} B events, {} runs per row and system (median), {} s per run",
        data.text.len(),
        repeats,
        run_time.as_secs()
    );
    println!("machine: {}", machine_line(&dir));
    println!(
        "fdatasync probe (4 KiB appends) before: p50 {} ms, p99 {} ms; load average {}",
        ms(fsync_before.0),
        ms(fsync_before.1),
        load_average()
    );
    println!(
        "postgresql: {settings}; payload {:?}; connections min(appenders, {})",
        args.pg_payload, args.pg_connections_max
    );
    // Per concurrency level: the name, both medians, and the median of the ratios of the
    // runs made side by side (less exposed to a burst of noise than the ratio of medians).
    let mut rows: Vec<(String, Figures, Figures, f64)> = Vec::new();
    let mut largest: Option<(u64, tempfile::TempDir)> = None;
    for &appenders in &args.appenders {
        let appenders = appenders.max(1);
        let mut ledger_runs = Vec::new();
        let mut pg_runs = Vec::new();
        for rep in 0..repeats {
            let order = if rep % 2 == 0 {
                ["ledger", "postgresql"]
            } else {
                ["postgresql", "ledger"]
            };
            for system in order {
                let tag = format!("x{appenders}-{rep}");
                let figures = if system == "ledger" {
                    let run_dir = tempfile::tempdir_in(&dir)?;
                    let ledger = Arc::new(Ledger::open(run_dir.path())?);
                    let f = throughput(
                        ledger.clone(),
                        appenders,
                        data.clone(),
                        run_time,
                        events_max,
                        &tag,
                    )
                    .await?;
                    Arc::into_inner(ledger)
                        .ok_or_else(|| anyhow::anyhow!("ledger still shared after the run"))?
                        .close()
                        .await?;
                    ledger_runs.push(f);
                    if largest.as_ref().is_none_or(|(n, _)| f.events > *n) {
                        largest = Some((f.events, run_dir));
                    }
                    f
                } else {
                    let connections = appenders.min(args.pg_connections_max.max(1));
                    let pg = Arc::new(
                        Postgres::open(&args.postgres, args.pg_payload, connections).await?,
                    );
                    let f = throughput(
                        pg.clone(),
                        appenders,
                        data.clone(),
                        run_time,
                        events_max,
                        &tag,
                    )
                    .await?;
                    Arc::into_inner(pg)
                        .ok_or_else(|| anyhow::anyhow!("connections still shared after the run"))?
                        .close()
                        .await?;
                    pg_runs.push(f);
                    f
                };
                println!(
                    "  run {}/{repeats} x{appenders:<4} {system:<10} {:>10.0} ev/s  p50 {:>7} ms  p99 {:>7} ms  {:>7} events",
                    rep + 1,
                    figures.events_per_s,
                    ms(figures.latency_us_p50),
                    ms(figures.latency_us_p99),
                    figures.events
                );
            }
        }
        let mut paired: Vec<f64> = ledger_runs
            .iter()
            .zip(&pg_runs)
            .map(|(l, p)| l.events_per_s / p.events_per_s)
            .collect();
        paired.sort_by(f64::total_cmp);
        rows.push((
            format!("durable append x{appenders}"),
            median_by_rate(ledger_runs),
            median_by_rate(pg_runs),
            paired[paired.len() / 2],
        ));
    }
    // The table holds the last PostgreSQL run of the last concurrency level, the ledger's
    // largest log was kept: read both back (warm: both were just written).
    let pg_scan_figures = pg_scan_runs(&args.postgres, repeats).await?;
    let mut ledger_read = None;
    if let Some((_, run_dir)) = &largest {
        let mut runs = Vec::new();
        for _ in 0..repeats {
            let path = run_dir.path().to_owned();
            let began = Instant::now();
            let report =
                tokio::task::spawn_blocking(move || ledger_store::verify::verify_dir(&path, None))
                    .await??;
            let secs = began.elapsed().as_secs_f64();
            anyhow::ensure!(report.intact(), "benchmark log does not verify: {report:?}");
            runs.push(Figures {
                events_per_s: report.events as f64 / secs,
                latency_us_p50: 0,
                latency_us_p99: 0,
                events: report.events,
            });
        }
        ledger_read = Some(median_by_rate(runs));
    }
    drop(largest);
    let mut offered = None;
    if args.offered_rate > 0 {
        let seconds = Duration::from_secs(args.offered_seconds.max(1));
        let mut ledger_runs = Vec::new();
        let mut pg_runs = Vec::new();
        for rep in 0..repeats {
            let order = if rep % 2 == 0 {
                ["ledger", "postgresql"]
            } else {
                ["postgresql", "ledger"]
            };
            for system in order {
                let tag = format!("load-{rep}");
                let figures = if system == "ledger" {
                    let run_dir = tempfile::tempdir_in(&dir)?;
                    let ledger = Arc::new(Ledger::open(run_dir.path())?);
                    let f = offered_load(
                        ledger.clone(),
                        args.offered_rate,
                        seconds,
                        data.clone(),
                        &tag,
                    )
                    .await?;
                    if let Some(ledger) = Arc::into_inner(ledger) {
                        ledger.close().await?;
                    }
                    ledger_runs.push(f);
                    f
                } else {
                    let pg = Arc::new(
                        Postgres::open(&args.postgres, args.pg_payload, args.pg_connections_max)
                            .await?,
                    );
                    let f =
                        offered_load(pg.clone(), args.offered_rate, seconds, data.clone(), &tag)
                            .await?;
                    if let Some(pg) = Arc::into_inner(pg) {
                        pg.close().await?;
                    }
                    pg_runs.push(f);
                    f
                };
                println!(
                    "  run {}/{repeats} offered {}/s {system:<10} p50 {:>7} ms  p99 {:>7} ms  {:>7} events",
                    rep + 1,
                    args.offered_rate,
                    ms(figures.latency_us_p50),
                    ms(figures.latency_us_p99),
                    figures.events
                );
            }
        }
        offered = Some((median_by_p99(ledger_runs), median_by_p99(pg_runs)));
    }
    let probe_dir = dir.clone();
    let fsync_after = tokio::task::spawn_blocking(move || fsync_probe(&probe_dir)).await??;
    println!(
        "fdatasync probe after: p50 {} ms, p99 {} ms; load average {}",
        ms(fsync_after.0),
        ms(fsync_after.1),
        load_average()
    );

    println!();
    println!("| workload | ledger ev/s | PostgreSQL ev/s | ratio | paired ratio | ledger p50 / p99 ms | PostgreSQL p50 / p99 ms |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    let mut summary = Vec::new();
    for (name, ledger, pg, paired) in &rows {
        let ratio = ledger.events_per_s / pg.events_per_s;
        println!(
            "| {name} | {:.0} | {:.0} | {ratio:.1}x | {paired:.1}x | {} / {} | {} / {} |",
            ledger.events_per_s,
            pg.events_per_s,
            ms(ledger.latency_us_p50),
            ms(ledger.latency_us_p99),
            ms(pg.latency_us_p50),
            ms(pg.latency_us_p99)
        );
        let level = name.trim_start_matches("durable append ");
        summary.push(format!(
            "{level}_ratio={ratio:.2} {level}_paired_ratio={paired:.2}"
        ));
    }
    if let Some((ledger, pg)) = &offered {
        println!(
            "| offered {}/s, open loop (latency from scheduled arrival) | {:.0} | {:.0} | - | - | {} / {} | {} / {} |",
            args.offered_rate,
            ledger.events_per_s,
            pg.events_per_s,
            ms(ledger.latency_us_p50),
            ms(ledger.latency_us_p99),
            ms(pg.latency_us_p50),
            ms(pg.latency_us_p99)
        );
    }
    if let Some(ledger) = ledger_read {
        let ratio = ledger.events_per_s / pg_scan_figures.events_per_s;
        println!(
            "| read: ledger read + checksums + Merkle verify ({} events) vs PostgreSQL full scan to the client ({} rows) | {:.0} | {:.0} | {ratio:.1}x | - | - | - |",
            ledger.events, pg_scan_figures.events, ledger.events_per_s, pg_scan_figures.events_per_s
        );
        summary.push(format!("read_ratio={ratio:.2}"));
    }
    println!();
    println!("summary: {}", summary.join(" "));
    Ok(())
}

/// Median of `repeats` full scans of the table as it stands.
async fn pg_scan_runs(config: &str, repeats: usize) -> anyhow::Result<Figures> {
    let mut runs = Vec::new();
    for _ in 0..repeats {
        let (n, secs) = pg_scan(config).await?;
        runs.push(Figures {
            events_per_s: n as f64 / secs,
            latency_us_p50: 0,
            latency_us_p99: 0,
            events: n,
        });
    }
    Ok(median_by_rate(runs))
}
