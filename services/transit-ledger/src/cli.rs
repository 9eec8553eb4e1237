//! The command line: `serve`, `verify`, `bench append`.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use ledger_store::file::{FileStore, FileStoreConfig};
use ledger_store::{Clock, EventStore, SystemClock};
use tokio::net::TcpListener;

use transit_contract::ids::CountryCode;

use crate::bench::AppendBenchOptions;
use crate::broker::BrokerConfig;
use crate::http::{app, AppState};
use crate::ledger::Ledger;

/// The regional transit ledger: an immutable, tamper-evident log of transit movements.
#[derive(Debug, Parser)]
#[command(name = "transit-ledger", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the ledger service on the embedded event log.
    Serve(ServeArgs),
    /// Check a data folder offline: every record, the Merkle tree, every checkpoint signature.
    /// Exits 0 only when intact; otherwise names the first bad position.
    Verify(VerifyArgs),
    /// Measure performance and print figures.
    #[command(subcommand)]
    Bench(BenchCommand),
}

/// `serve` flags.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Data folder (created if missing).
    #[arg(long, env = "TRANSIT_LEDGER_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,
    /// Address to listen on.
    #[arg(long, env = "TRANSIT_LEDGER_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Seconds between signed checkpoints while the log grows.
    #[arg(long, default_value_t = 1)]
    pub checkpoint_interval_s: u64,
    /// The log's name in its checkpoints.
    #[arg(long, default_value = "transit-ledger")]
    pub origin: String,
    /// ActiveMQ's STOMP address; with it, the gateway consumes the countries' inbound queues
    /// and the dispatcher fans notifications out to the offices' queues.
    #[arg(long, env = "TRANSIT_LEDGER_BROKER")]
    pub broker: Option<SocketAddr>,
    /// Countries whose inbound queues the gateway consumes (ISO 3166 alpha-2, comma separated).
    #[arg(long, value_delimiter = ',', default_value = "TG,BF,NE,CI,GH,BJ,ML,SN")]
    pub countries: Vec<CountryCode>,
    /// Suffix added to every queue name (to run beside another deployment on one broker).
    #[arg(long, default_value = "")]
    pub queue_suffix: String,
}

/// `verify` flags.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Data folder to check.
    #[arg(long, default_value = "./data")]
    pub data_dir: PathBuf,
    /// The ledger's public key (hex file) from a trusted source; defaults to the copy in the
    /// data folder.
    #[arg(long)]
    pub public_key: Option<PathBuf>,
}

/// Benchmarks.
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Durable append throughput and latency, and read + verify speed.
    Append(BenchAppendArgs),
    /// Broker ingest (XML in, durable append, ack) and fan-out latency, against a running
    /// ActiveMQ (`ops/activemq.sh start`).
    Broker(BenchBrokerArgs),
}

/// `bench broker` flags.
#[derive(Debug, Args)]
pub struct BenchBrokerArgs {
    /// The broker's STOMP address.
    #[arg(long, default_value = "127.0.0.1:61613")]
    pub broker: SocketAddr,
    /// Folder for the temporary logs.
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Messages for the ingest run.
    #[arg(long, default_value_t = 10_000)]
    pub messages: u32,
    /// Movements released for the fan-out latency run.
    #[arg(long, default_value_t = 300)]
    pub journeys: u32,
}

/// `bench append` flags.
#[derive(Debug, Args)]
pub struct BenchAppendArgs {
    /// Folder for the temporary logs (on the disk to measure).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Event size in bytes.
    #[arg(long, default_value_t = 1024)]
    pub event_bytes: usize,
    /// Seconds per throughput run.
    #[arg(long, default_value_t = 3)]
    pub run_seconds: u64,
    /// Runs per configuration (median reported).
    #[arg(long, default_value_t = 3)]
    pub repeats: usize,
    /// Concurrency levels, comma separated.
    #[arg(long, value_delimiter = ',', default_value = "1,16,256")]
    pub appenders: Vec<usize>,
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Serve(args) => serve_command(args).await.map(|()| ExitCode::SUCCESS),
            Command::Verify(args) => verify_command(args),
            Command::Bench(BenchCommand::Append(args)) => {
                let opts = AppendBenchOptions {
                    dir: args.dir.unwrap_or_else(std::env::temp_dir),
                    event_bytes: args.event_bytes,
                    run_time: Duration::from_secs(args.run_seconds),
                    repeats: args.repeats.max(1),
                    appenders: args.appenders,
                    ..AppendBenchOptions::default()
                };
                crate::bench::run_append(opts)
                    .await
                    .map(|()| ExitCode::SUCCESS)
            }
            Command::Bench(BenchCommand::Broker(args)) => {
                let opts = crate::bench::BrokerBenchOptions {
                    broker: args.broker,
                    dir: args.dir.unwrap_or_else(std::env::temp_dir),
                    messages: args.messages,
                    journeys: args.journeys,
                };
                crate::bench::run_broker(opts)
                    .await
                    .map(|()| ExitCode::SUCCESS)
            }
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve_command(args: ServeArgs) -> anyhow::Result<()> {
    let _telemetry = crate::telemetry::init("info,tower_http=info")?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let mut config = FileStoreConfig::new(&args.data_dir);
    config.checkpoint_interval = Duration::from_secs(args.checkpoint_interval_s.max(1));
    config.origin = args.origin;
    config.clock = clock.clone();
    let store = Arc::new(FileStore::open(config)?);
    let broker = args.broker.map(|addr| {
        let mut broker = BrokerConfig::new(addr, args.countries.clone());
        broker.queue_suffix = args.queue_suffix.clone();
        Arc::new(broker)
    });
    let listener = TcpListener::bind(args.listen).await?;
    tracing::info!(
        listen = %listener.local_addr()?,
        data_dir = %args.data_dir.display(),
        events = store.head(),
        "transit-ledger serving"
    );
    serve_with(listener, store.clone(), clock, broker, shutdown_signal()).await?;
    // Sign the final tree head first: connection tasks may still hold the store for a moment.
    let checkpoint = store.checkpoint_now().await?;
    let mut store = store;
    for _ in 0..50 {
        match Arc::try_unwrap(store) {
            Ok(owned) => {
                owned.close().await?;
                tracing::info!(
                    tree_size = checkpoint.map(|c| c.tree_size),
                    "stopped cleanly"
                );
                return Ok(());
            }
            Err(shared) => store = shared,
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tracing::warn!(
        tree_size = checkpoint.map(|c| c.tree_size),
        "store still in use at exit; its last checkpoint is signed but not fsynced"
    );
    Ok(())
}

/// Serves the API on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    store: Arc<FileStore>,
    clock: Arc<dyn Clock>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with(listener, store, clock, None, shutdown).await
}

/// Serves the API, and with a broker the gateway and the fan-out dispatcher, until
/// `shutdown` completes.
pub async fn serve_with(
    listener: TcpListener,
    store: Arc<FileStore>,
    clock: Arc<dyn Clock>,
    broker: Option<Arc<BrokerConfig>>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let public_key_hex = hex::encode(store.public_key().as_bytes());
    let checkpoint = crate::dispatch::Checkpoint::new(store.dir().join("fanout.checkpoint"));
    let dyn_store: Arc<dyn EventStore> = store;
    let ledger = Arc::new(Ledger::new(dyn_store.clone(), clock.clone()));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut background = Vec::new();
    // The projections follow the log for the GraphQL API; they are in memory for now, so
    // they replay from position 0 at every start.
    let projections = crate::projection::Projections::new(clock);
    background.push(tokio::spawn(
        projections.clone().run(dyn_store.clone(), stop_rx.clone()),
    ));
    let graphql = crate::graphql::schema(projections, dyn_store.clone());
    if let Some(broker) = broker {
        background.push(tokio::spawn(crate::gateway::run(
            ledger.clone(),
            broker.clone(),
            stop_rx.clone(),
        )));
        background.push(tokio::spawn(crate::dispatch::run(
            dyn_store, broker, checkpoint, stop_rx,
        )));
    }
    let router = app(AppState {
        ledger,
        public_key_hex,
        graphql,
    });
    let served = axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await;
    let _ = stop_tx.send(true);
    for task in background {
        let _ = task.await;
    }
    served
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down");
}

fn verify_command(args: VerifyArgs) -> anyhow::Result<ExitCode> {
    let key = match &args.public_key {
        Some(path) => {
            Some(ledger_store::checkpoint::load_public_key(path).map_err(anyhow::Error::msg)?)
        }
        None => None,
    };
    let report = ledger_store::verify::verify_dir(&args.data_dir, key)?;
    println!("data folder:   {}", args.data_dir.display());
    println!("key:           {}", report.key_source);
    println!("segments:      {}", report.segments);
    println!("events:        {}", report.events);
    println!("merkle root:   {}", report.root);
    println!(
        "checkpoints:   {} verified, the last covers {} events",
        report.checkpoints_verified, report.last_checkpoint_size
    );
    if report.events > report.last_checkpoint_size {
        println!(
            "note:          {} events after the last checkpoint are intact but not yet signed",
            report.events - report.last_checkpoint_size
        );
    }
    if let Some(torn) = &report.torn_tail {
        println!("note:          torn tail: {torn}");
    }
    match &report.problem {
        None => {
            println!("result:        INTACT");
            Ok(ExitCode::SUCCESS)
        }
        Some(p) => {
            println!(
                "result:        DAMAGED at position {} ({} byte {}): {}",
                p.position, p.file, p.offset, p.reason
            );
            Ok(ExitCode::from(1))
        }
    }
}
