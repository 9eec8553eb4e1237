//! The command line: `serve`, `verify`, `replay`, `bench`, and for integrators `keys generate`,
//! `sign` and `canonical` (in [`crate::keys_cli`]).

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
use crate::keys_cli::{CanonicalArgs, KeysCommand, SignArgs};
use crate::ledger::Ledger;
use crate::projection::{Projections, SnapshotPolicy};
use transit_auth::KeyRegistry;

/// The views' folder inside the data folder.
pub const VIEWS_DIR: &str = "views";
/// The refused-submissions log inside the data folder.
pub const REFUSALS_FILE: &str = "refusals.log";

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
    /// Check a data folder offline: every record, the Merkle tree, every checkpoint signature,
    /// and every recorded submission against its signature. Exits 0 only when intact; otherwise
    /// names the first bad position.
    Verify(VerifyArgs),
    /// Rebuild every projection from position 0 of a data folder, with a progress bar, and
    /// print each view's state hash (compare with the service's `viewHashes` in GraphQL).
    /// Needs the folder to itself: stop the service, or replay a copy.
    Replay(ReplayArgs),
    /// Measure performance and print figures.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Submission signing keys: make one for a national system.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Sign a message file (JSON or XML) with a secret key file; prints the value of the
    /// `Transit-Signature` header (HTTP) or `transitSignature` property (broker).
    Sign(SignArgs),
    /// Mint a bearer token for the HTTP API (development, tests, or a deployment running its
    /// own issuer): prints the JWT. The defaults use the development issuer that `serve`
    /// trusts by default (ops/auth/).
    Token(crate::auth::TokenArgs),
    /// Print the exact bytes a submission signature covers (the separator line, then the
    /// message's canonical JSON; no newline at the end), for systems that sign with their own
    /// tooling.
    Canonical(CanonicalArgs),
    /// Generate deterministic corridor traffic with labelled fraud scenarios: signed message
    /// files, a delivery plan and the ground truth; optionally send it to a ledger.
    Simulate(crate::simulate::SimulateArgs),
    /// Score the fraud signals against a simulation's ground truth (precision and recall per
    /// rule), ingesting its traffic through the ledger into a fresh log first.
    Evaluate(crate::simulate::EvaluateArgs),
}

/// `replay` flags.
#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// Data folder to replay.
    #[arg(long, default_value = "./data")]
    pub data_dir: PathBuf,
    /// Run the deadline rules up to this time at the end (RFC 3339), as the service would at
    /// that time; default: the log's last `recordedAt` only (no clock involved).
    #[arg(long)]
    pub now: Option<String>,
    /// Also replace the stored views (`DATA/views/`) with the rebuilt ones, e.g. after an
    /// upgrade changed the projection logic.
    #[arg(long)]
    pub write_snapshot: bool,
    /// No progress bar (for logs and scripts).
    #[arg(long)]
    pub quiet: bool,
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
    /// The broker user the gateway and the dispatcher connect as.
    #[arg(long, default_value = crate::broker::BROKER_USER_DEFAULT)]
    pub broker_user: String,
    /// A file holding the broker password (the whole file, less one trailing line break).
    /// Without it the password comes from TRANSIT_BROKER_PASSWORD, and without that from the
    /// development credentials of `ops/activemq.sh` (ops/activemq/credentials.dev.properties,
    /// relative to the repository root).
    #[arg(long)]
    pub broker_password_file: Option<PathBuf>,
    /// Store the views (`DATA/views/`) after this many new events...
    #[arg(long, default_value_t = crate::projection::SNAPSHOT_EVERY_EVENTS)]
    pub snapshot_every_events: u64,
    /// ...or after this many seconds, whichever comes first.
    #[arg(long, default_value_t = crate::projection::SNAPSHOT_INTERVAL.as_secs())]
    pub snapshot_interval_s: u64,
    /// The key registry (TOML): the keys allowed to sign submissions. Every submission must be
    /// signed by one of them (see ops/keys/README.md); the default is the development registry,
    /// relative to the repository root.
    #[arg(
        long,
        env = "TRANSIT_LEDGER_KEY_REGISTRY",
        default_value = crate::keys_cli::DEV_REGISTRY_PATH
    )]
    pub key_registry: PathBuf,
    /// The bearer-token issuers the HTTP API trusts (TOML naming JWKS files; see
    /// ops/auth/README.md); the default is the development issuer, relative to the repository
    /// root. No request but health checks is served without a valid token.
    #[arg(
        long,
        env = "TRANSIT_LEDGER_AUTH_CONFIG",
        default_value = crate::auth::DEV_ISSUERS_PATH
    )]
    pub auth_config: PathBuf,
    /// Requests a second each principal may make over HTTP, on average...
    #[arg(long, default_value_t = crate::rate_limit::RateLimit::DEFAULT.rate)]
    pub rate_limit_per_s: f64,
    /// ...in bursts of up to this many.
    #[arg(long, default_value_t = crate::rate_limit::RateLimit::DEFAULT.burst)]
    pub rate_limit_burst: f64,
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
    /// A key registry (TOML) to also check that each recorded signature's key was registered,
    /// with the recorded public key, for the sender's country and office, and valid when the
    /// submission was recorded. Without it, each signature is checked with the public key
    /// recorded beside it.
    #[arg(long)]
    pub key_registry: Option<PathBuf>,
}

/// Benchmarks.
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Durable append throughput and latency, and read + verify speed.
    Append(BenchAppendArgs),
    /// The same durable append workload against an events table in PostgreSQL, in the same
    /// run, at equal durability (`ops/bench.sh` makes a throwaway cluster and runs this).
    Peer(crate::bench_peer::BenchPeerArgs),
    /// Broker ingest (XML in, durable append, ack) and fan-out latency, against a running
    /// ActiveMQ (`ops/activemq.sh start`).
    Broker(BenchBrokerArgs),
    /// Projection rebuild speed and peak memory (`replay` of a generated log, in a fresh
    /// process).
    Rebuild(BenchRebuildArgs),
    /// GraphQL latency over HTTP with many movements loaded: `movement(mrn)` under an
    /// open-loop offered rate, and filtered pages.
    Graphql(BenchGraphqlArgs),
}

/// `bench rebuild` flags.
#[derive(Debug, Args)]
pub struct BenchRebuildArgs {
    /// Folder for the temporary log.
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Movements in the generated log (about 6 events each).
    #[arg(long, default_value_t = 100_000)]
    pub movements: u32,
    /// Rebuilds measured (median reported).
    #[arg(long, default_value_t = 3)]
    pub repeats: usize,
    /// Keep the generated data folder for profiling (its path is printed).
    #[arg(long)]
    pub keep: bool,
}

/// `bench graphql` flags.
#[derive(Debug, Args)]
pub struct BenchGraphqlArgs {
    /// Folder for the temporary (empty) log the service needs.
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Movements loaded into the views.
    #[arg(long, default_value_t = 1_000_000)]
    pub movements: u32,
    /// Offered `movement(mrn)` requests per second.
    #[arg(long, default_value_t = 500)]
    pub rate: u32,
    /// Seconds of offered load.
    #[arg(long, default_value_t = 20)]
    pub seconds: u64,
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
    /// Broker credentials file (`transit.password.<user>=...` lines): the bench connects as
    /// `ledger` and, standing in for Togo's national system, as `tg`.
    #[arg(long, default_value = crate::broker::DEV_CREDENTIALS_PATH)]
    pub credentials: PathBuf,
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
            Command::Keys(KeysCommand::Generate(args)) => {
                crate::keys_cli::generate(args).map(|()| ExitCode::SUCCESS)
            }
            Command::Sign(args) => crate::keys_cli::sign(args).map(|()| ExitCode::SUCCESS),
            Command::Token(args) => crate::auth::token_command(args).map(|()| ExitCode::SUCCESS),
            Command::Canonical(args) => {
                crate::keys_cli::canonical(args).map(|()| ExitCode::SUCCESS)
            }
            Command::Replay(args) => replay_command(args).await,
            Command::Simulate(args) => crate::simulate::simulate_command(args)
                .await
                .map(|()| ExitCode::SUCCESS),
            Command::Evaluate(args) => crate::simulate::evaluate_command(args).await,
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
            Command::Bench(BenchCommand::Peer(args)) => crate::bench_peer::run_peer(args)
                .await
                .map(|()| ExitCode::SUCCESS),
            Command::Bench(BenchCommand::Rebuild(args)) => {
                crate::bench_views::run_rebuild(crate::bench_views::RebuildBenchOptions {
                    dir: args.dir.unwrap_or_else(std::env::temp_dir),
                    movements: args.movements,
                    repeats: args.repeats,
                    keep: args.keep,
                })
                .await
                .map(|()| ExitCode::SUCCESS)
            }
            Command::Bench(BenchCommand::Graphql(args)) => {
                crate::bench_views::run_graphql(crate::bench_views::GraphqlBenchOptions {
                    dir: args.dir.unwrap_or_else(std::env::temp_dir),
                    movements: args.movements,
                    rate: args.rate,
                    seconds: args.seconds,
                })
                .await
                .map(|()| ExitCode::SUCCESS)
            }
            Command::Bench(BenchCommand::Broker(args)) => {
                let ledger = crate::broker::BrokerCredentials::from_credentials_file(
                    &args.credentials,
                    crate::broker::BROKER_USER_DEFAULT,
                )?;
                let producer = crate::broker::BrokerCredentials::from_credentials_file(
                    &args.credentials,
                    "tg",
                )?;
                let opts = crate::bench::BrokerBenchOptions {
                    broker: args.broker,
                    ledger,
                    producer,
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
    // Before anything is opened: without its registry the service cannot accept anything.
    let registry = Arc::new(crate::keys_cli::load_registry_for_serve(
        &args.key_registry,
    )?);
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    // Nor without the token issuers it trusts: no request but health would be served.
    let auth = Arc::new(crate::auth::load_for_serve(
        &args.auth_config,
        clock.clone(),
    )?);
    let telemetry = crate::telemetry::init("info,tower_http=info")?;
    tracing::info!(
        key_registry = %args.key_registry.display(),
        keys = registry.len(),
        "submissions must be signed by a registered key"
    );
    tracing::info!(
        auth_config = %args.auth_config.display(),
        issuers = ?auth,
        "HTTP callers need a bearer token of a trusted issuer"
    );
    let rate_limit = crate::rate_limit::RateLimit {
        rate: args.rate_limit_per_s,
        burst: args.rate_limit_burst,
    };
    if !(rate_limit.rate > 0.0 && rate_limit.burst >= 1.0) {
        anyhow::bail!("--rate-limit-per-s must be > 0 and --rate-limit-burst >= 1");
    }
    let mut config = FileStoreConfig::new(&args.data_dir);
    config.checkpoint_interval = Duration::from_secs(args.checkpoint_interval_s.max(1));
    config.origin = args.origin;
    config.clock = clock.clone();
    let store = Arc::new(FileStore::open(config)?);
    let broker = match args.broker {
        Some(addr) => {
            let (credentials, source) = crate::broker::BrokerCredentials::resolve(
                &args.broker_user,
                args.broker_password_file.as_deref(),
                std::env::var(crate::broker::PASSWORD_ENV).ok(),
                std::path::Path::new(crate::broker::DEV_CREDENTIALS_PATH),
            )?;
            if let crate::broker::PasswordSource::DevCredentials(path) = &source {
                tracing::warn!(user = %credentials.login, file = %path.display(), "broker password from the development credentials; set TRANSIT_BROKER_PASSWORD or --broker-password-file in production");
            } else {
                tracing::info!(user = %credentials.login, ?source, "broker credentials");
            }
            let mut broker = BrokerConfig::new(addr, args.countries.clone(), credentials);
            broker.queue_suffix = args.queue_suffix.clone();
            Some(Arc::new(broker))
        }
        None => None,
    };
    let listener = TcpListener::bind(args.listen).await?;
    tracing::info!(
        listen = %listener.local_addr()?,
        data_dir = %args.data_dir.display(),
        events = store.head(),
        "transit-ledger serving"
    );
    let mut views = SnapshotPolicy::new(args.data_dir.join(VIEWS_DIR));
    views.every_events = args.snapshot_every_events.max(1);
    views.interval = Duration::from_secs(args.snapshot_interval_s.max(1));
    let options = ServeOptions {
        registry: Some(registry),
        broker,
        views: Some(views),
        auth: Some(auth),
        rate_limit: Some(rate_limit),
        metrics: Some(telemetry.metrics()),
    };
    serve_with(listener, store.clone(), clock, options, shutdown_signal()).await?;
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

/// What [`serve_with`] runs besides the HTTP API. The default is the bare API: no key
/// registry (submissions are not authenticated), no broker, views rebuilt in memory.
#[derive(Default)]
pub struct ServeOptions {
    /// The keys allowed to sign submissions; with it every submission must be signed (the
    /// `serve` command always has one). Without it signatures are not checked: for tests and
    /// tools only.
    pub registry: Option<Arc<KeyRegistry>>,
    /// With a broker, the gateway consumes the countries' inbound queues and the dispatcher
    /// fans notifications out.
    pub broker: Option<Arc<BrokerConfig>>,
    /// With a snapshot policy the views are stored and resumed from disk; without, they are
    /// rebuilt in memory from position 0.
    pub views: Option<SnapshotPolicy>,
    /// Verifies the HTTP API's bearer tokens; with it no request but health checks is served
    /// without a valid token (the `serve` command always has one). Without it every caller is
    /// allowed: for tests and tools only.
    pub auth: Option<Arc<crate::auth::Authenticator>>,
    /// Requests a second per principal (with an authenticator).
    pub rate_limit: Option<crate::rate_limit::RateLimit>,
    /// The metrics to record into and serve at `/metrics` (the `serve` command's also go to
    /// OTLP when configured); without, the service makes its own.
    pub metrics: Option<Arc<crate::metrics::Metrics>>,
}

/// Serves the bare API on `listener` until `shutdown` completes: [`serve_with`] with the
/// default [`ServeOptions`] (no key registry: submissions are not authenticated).
pub async fn serve(
    listener: TcpListener,
    store: Arc<FileStore>,
    clock: Arc<dyn Clock>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with(listener, store, clock, ServeOptions::default(), shutdown).await
}

/// Serves the API, and whatever `options` adds (the key registry submissions are checked
/// against, the broker gateway and fan-out dispatcher, stored views), until `shutdown`
/// completes.
pub async fn serve_with(
    listener: TcpListener,
    store: Arc<FileStore>,
    clock: Arc<dyn Clock>,
    options: ServeOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let ServeOptions {
        registry,
        broker,
        views,
        auth,
        rate_limit,
        metrics,
    } = options;
    let metrics = metrics.unwrap_or_else(|| crate::metrics::Metrics::new(None));
    metrics.observe_store(&store);
    let public_key_hex = hex::encode(store.public_key().as_bytes());
    let checkpoint = crate::dispatch::Checkpoint::new(store.dir().join("fanout.checkpoint"));
    let refusals = Arc::new(crate::refusals::RefusalLog::open(
        store.dir().join(REFUSALS_FILE),
    )?);
    let dyn_store: Arc<dyn EventStore> = store;
    let ledger = Arc::new(
        match registry {
            Some(registry) => Ledger::with_registry(dyn_store.clone(), clock.clone(), registry),
            None => Ledger::new(dyn_store.clone(), clock.clone()),
        }
        .with_refusals(refusals.clone()),
    );
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut background = Vec::new();
    // The projections follow the log for the GraphQL API, from their stored position.
    let projections = match views {
        Some(policy) => {
            let (projections, restored) =
                Projections::open(clock, dyn_store.as_ref(), policy).await;
            tracing::info!(?restored, "views opened");
            projections
        }
        None => Projections::new(clock),
    };
    metrics.observe_projections(&projections, &dyn_store);
    background.push(tokio::spawn(
        projections.clone().run(dyn_store.clone(), stop_rx.clone()),
    ));
    let graphql = crate::graphql::schema(projections, dyn_store.clone(), Some(refusals));
    if let Some(broker) = broker {
        let broker = Arc::new(BrokerConfig {
            metrics: metrics.broker(),
            ..(*broker).clone()
        });
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
        auth,
        limiter: rate_limit.map(|limit| Arc::new(crate::rate_limit::RateLimiter::new(limit))),
        metrics,
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
    if let Some(p) = &report.problem {
        println!(
            "result:        DAMAGED at position {} ({} byte {}): {}",
            p.position, p.file, p.offset, p.reason
        );
        return Ok(ExitCode::from(1));
    }
    // The records are intact: now what they say about who submitted them.
    let registry = match &args.key_registry {
        Some(path) => Some(crate::keys_cli::load_registry(path)?),
        None => None,
    };
    let audit =
        crate::keys_cli::audit_submissions(&args.data_dir, report.events, registry.as_ref())?;
    println!(
        "submissions:   {} checked: {} signed, {} unsigned (recorded without a key registry)",
        audit.submissions, audit.signed, audit.unsigned
    );
    if registry.is_some() {
        println!("key registry:  every signing key checked against it");
    }
    match &audit.problem {
        None => {
            println!("result:        INTACT");
            Ok(ExitCode::SUCCESS)
        }
        Some(p) => {
            println!(
                "result:        BAD SUBMISSION at position {} ({} v{}): {}",
                p.position, p.stream, p.version, p.reason
            );
            Ok(ExitCode::from(1))
        }
    }
}

async fn replay_command(args: ReplayArgs) -> anyhow::Result<ExitCode> {
    let now = match &args.now {
        Some(text) => Some(
            text.parse::<transit_contract::ids::Timestamp>()
                .map_err(|e| anyhow::anyhow!("--now {text}: {e}"))?,
        ),
        None => None,
    };
    let store = FileStore::open(FileStoreConfig::new(&args.data_dir)).map_err(|e| {
        anyhow::anyhow!(
            "cannot open {}: {e} (is the service running on it? replay a copy)",
            args.data_dir.display()
        )
    })?;
    let head = store.head();
    let bar = if args.quiet {
        indicatif::ProgressBar::hidden()
    } else {
        indicatif::ProgressBar::new(head)
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{elapsed_precise} [{wide_bar}] {pos}/{len} events ({per_sec}, {eta} left)",
        )
        .map_err(|e| anyhow::anyhow!("{e}"))?,
    );
    let started = std::time::Instant::now();
    let cpu_before = crate::bench::process_cpu_time();
    let mut views = crate::projection::rebuild(&store, ledger_store::READ_EVENTS_MAX, |done| {
        bar.set_position(done)
    })
    .await?;
    bar.finish_and_clear();
    let elapsed = started.elapsed();
    let cpu = crate::bench::process_cpu_time().saturating_sub(cpu_before);
    if let Some(now) = now {
        views.tick(now);
    }
    println!("data folder:  {}", args.data_dir.display());
    println!("events:       {head}");
    println!(
        "rebuilt in:   {:.2} s ({:.0} events/s)",
        elapsed.as_secs_f64(),
        head as f64 / elapsed.as_secs_f64().max(1e-9)
    );
    println!(
        "rebuild CPU:  {:.2} s ({:.2} us/event, {:.0} events per CPU-second)",
        cpu.as_secs_f64(),
        cpu.as_secs_f64() * 1e6 / (head.max(1) as f64),
        head as f64 / cpu.as_secs_f64().max(1e-9)
    );
    println!("movements:    {}", views.movements.len());
    if let Some(kib) = crate::bench::peak_rss_kib() {
        println!("peak RSS:     {} MiB", kib / 1024);
    }
    println!("view hashes:");
    println!("{}", views.hashes());
    if args.write_snapshot {
        let proof = store.consistency_proof(head, head).await?;
        let bytes = hex::decode(&proof.old_root)?;
        let root: [u8; 32] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| anyhow::anyhow!("the log's root is not 32 bytes"))?;
        let written = crate::snapshot::write(&args.data_dir.join(VIEWS_DIR), head, &root, &views)?;
        println!("stored views: {} bytes", written.bytes);
    }
    store.close().await?;
    Ok(ExitCode::SUCCESS)
}
