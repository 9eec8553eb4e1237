//! `transit-ledger simulate` and `transit-ledger evaluate`: corridor traffic from the pure
//! simulator (`transit-sim`) written to files, signed with the sending country's key, and
//! optionally sent to a running ledger (HTTP or broker); and the scoring of the fraud signals
//! against the simulation's ground truth, through the real pipeline: the ledger's command
//! handler (authentication, `transit_rules::decide`) into a real `FileStore`, then the
//! projections' views and signal engine replayed from that log, with the deadline rules run
//! at the simulation's end.
//!
//! Files in the output folder (all byte-identical for one seed and settings):
//! - `messages.jsonl`: one distinct message per line, `{"n", "signature", "message"}`; the
//!   message is its canonical JSON (what is signed and submitted).
//! - `plan.jsonl`: the deliveries in order, `{"at", "n", "redelivery"}`.
//! - `truth.json`: the ground truth (`transit_sim::GroundTruth`).
//! - `fraud-config.json`: the shipped thresholds plus TOO_FAST minimums for every simulated
//!   leg (`transit_sim::Simulation::recommended_fraud_config`), for `evaluate --fraud-config`.
//! - `simulation.json`: the settings and counts.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead as _, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _};
use clap::Args;
use fraud_signals::{FraudConfig, RuleId, SignalEngine, SignalFilter, SignalStatus};
use futures::StreamExt as _;
use ledger_store::file::{FileStore, FileStoreConfig};
use ledger_store::{Clock, EventStore, ManualClock, READ_EVENTS_MAX};
use serde::{Deserialize, Serialize};
use transit_auth::{KeyRegistry, SecretKeyFile};
use transit_contract::ids::{CountryCode, Mrn, Timestamp};
use transit_contract::messages::InboundMessage;
use transit_sim::{GroundTruth, SimConfig, Simulation};

use crate::ledger::{Ledger, SubmitError};
use crate::projection::Views;

/// Deliveries submitted together while ingesting: they share the store's group commit.
pub const INGEST_BATCH_MAX: usize = 256;
/// A batch spans at most this much simulated time, so that what happened an hour apart is
/// recorded in that order (the shared-vehicle and shared-seal scenarios keep an hour apart).
pub const INGEST_BATCH_SPAN: Duration = Duration::from_secs(20 * 60);
/// Requests in flight when sending to the HTTP API.
pub const HTTP_CONCURRENCY_MAX: usize = 64;
/// Every HTTP request's timeout.
pub const HTTP_TIMEOUT: Duration = Duration::from_secs(30);
/// Messages per receipted broker batch.
pub const BROKER_BATCH_MAX: usize = 100;
/// The targets of the evaluation (issue 6).
pub const PRECISION_TARGET: f64 = 0.9;
/// See [`PRECISION_TARGET`].
pub const RECALL_TARGET: f64 = 0.95;

/// `simulate` flags.
#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// The seed: the same seed and settings give byte-identical output.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Movements declared.
    #[arg(long, default_value_t = 1_000)]
    pub movements: u32,
    /// Share of movements with an injected fraud scenario (0..=0.5).
    #[arg(long, default_value_t = 0.05)]
    pub fraud_rate: f64,
    /// Output folder (created; files in it are replaced).
    #[arg(long)]
    pub out: PathBuf,
    /// Other settings (JSON of `transit_sim::SimConfig`, camelCase; fields left out keep
    /// their defaults), e.g. `{"movementsPerDay": 300, "timing": {"borderDwell": ...}}`.
    /// The flags above override it.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// The key registry naming each key's country.
    #[arg(long, default_value = crate::keys_cli::DEV_REGISTRY_PATH)]
    pub key_registry: PathBuf,
    /// Folder of secret key files `<key id>.key`: each message is signed with a key of its
    /// sender's country found there.
    #[arg(long, default_value = "ops/keys/dev")]
    pub keys_dir: PathBuf,
    /// Also send the deliveries to a ledger's HTTP API (base URL, e.g. http://127.0.0.1:8080).
    #[arg(long)]
    pub to_http: Option<String>,
    /// Bearer token for the HTTP API.
    #[arg(long, env = "TRANSIT_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Also send the deliveries as XML to the broker (STOMP address), on `transit.<CC>.in`.
    #[arg(long)]
    pub to_broker: Option<std::net::SocketAddr>,
    /// Broker user for every country's queue; default each country's own user (`tg`, `bf`,
    /// ...), as its national system would connect. The password comes from
    /// `TRANSIT_BROKER_PASSWORD`, else the user's line in the development credentials.
    #[arg(long)]
    pub broker_user: Option<String>,
    /// Suffix of the broker queue names (as `serve --queue-suffix`).
    #[arg(long, default_value = "")]
    pub queue_suffix: String,
}

/// `evaluate` flags.
#[derive(Debug, Args)]
pub struct EvaluateArgs {
    /// A `simulate` output folder: its deliveries are ingested into a fresh log first.
    #[arg(long, conflicts_with = "truth")]
    pub sim: Option<PathBuf>,
    /// The ground truth of traffic already in `--data-dir` (sent with `simulate --to-http`).
    #[arg(long, requires = "data_dir")]
    pub truth: Option<PathBuf>,
    /// The data folder: with `--sim`, where the log is written (must not hold a log yet;
    /// default a temporary folder); with `--truth`, the log to judge (stop the service first).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Fraud thresholds (JSON of `FraudConfig`; fields left out keep their defaults); default
    /// the shipped ones, as the service runs.
    #[arg(long)]
    pub fraud_config: Option<PathBuf>,
    /// The key registry the ledger checks signatures against while ingesting.
    #[arg(long, default_value = crate::keys_cli::DEV_REGISTRY_PATH)]
    pub key_registry: PathBuf,
    /// Exit 1 when a rule misses precision >= 0.9 or recall >= 0.95.
    #[arg(long)]
    pub check: bool,
}

/// One line of `messages.jsonl`.
#[derive(Serialize)]
struct MessageLine<'a> {
    n: usize,
    signature: &'a str,
    message: &'a InboundMessage,
}

/// One line of `messages.jsonl`, read back with the message's exact bytes.
#[derive(Deserialize)]
struct MessageLineIn {
    n: usize,
    signature: String,
    message: Box<serde_json::value::RawValue>,
}

/// One line of `plan.jsonl`.
#[derive(Serialize, Deserialize)]
struct PlanLine {
    at: Timestamp,
    n: usize,
    redelivery: bool,
}

/// What `simulation.json` records.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Manifest<'a> {
    config: &'a SimConfig,
    movements: usize,
    messages: usize,
    deliveries: usize,
    redeliveries: usize,
    end: Timestamp,
}

/// The signing key of each country.
pub struct CountryKeys(BTreeMap<CountryCode, SecretKeyFile>);

impl CountryKeys {
    /// For each registry entry with a key file `<keys_dir>/<id>.key`, that key for its
    /// country (the first one listed wins).
    pub fn load(registry: &Path, keys_dir: &Path) -> anyhow::Result<CountryKeys> {
        let registry = crate::keys_cli::load_registry(registry)?;
        let mut keys = BTreeMap::new();
        for entry in registry.iter() {
            let path = keys_dir.join(format!("{}.key", entry.id));
            if keys.contains_key(&entry.country) || !path.exists() {
                continue;
            }
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            let key = SecretKeyFile::from_toml_str(&text)
                .with_context(|| format!("key file {}", path.display()))?;
            keys.insert(entry.country.clone(), key);
        }
        Ok(CountryKeys(keys))
    }

    /// The `Transit-Signature` value of `m`, signed by its sender's country.
    pub fn sign(&self, m: &InboundMessage) -> anyhow::Result<String> {
        let key = self.0.get(&m.sender.country).ok_or_else(|| {
            anyhow!(
                "no key for {} (sender of {}) in the keys folder",
                m.sender.country,
                m.message_id
            )
        })?;
        Ok(transit_auth::sign(&key.signing_key, key.key_id.clone(), m).to_string())
    }
}

/// A simulation rendered and signed: what `simulate` writes and `evaluate` ingests.
pub struct Rendered {
    /// Each distinct message's canonical JSON and its signature.
    pub messages: Vec<(Vec<u8>, String)>,
    /// The deliveries in order: when, and which message.
    pub plan: Vec<(Timestamp, usize, bool)>,
    /// The ground truth.
    pub truth: GroundTruth,
}

/// Renders and signs a simulation.
pub fn render(sim: &Simulation, keys: &CountryKeys) -> anyhow::Result<Rendered> {
    let (messages, deliveries) = sim.deliveries();
    let messages = messages
        .iter()
        .map(|m| Ok((serde_json::to_vec(m)?, keys.sign(m)?)))
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(Rendered {
        messages,
        plan: deliveries
            .iter()
            .map(|d| (d.at, d.message, d.redelivery))
            .collect(),
        truth: sim.truth(),
    })
}

fn write_file(
    path: &Path,
    write: impl FnOnce(&mut dyn std::io::Write) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let file =
        std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    let mut out = std::io::BufWriter::new(file);
    write(&mut out)?;
    out.flush()
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// Writes a simulation's files into `dir`.
pub fn write(sim: &Simulation, keys: &CountryKeys, dir: &Path) -> anyhow::Result<Rendered> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let (messages, deliveries) = sim.deliveries();
    let rendered = render(sim, keys)?;
    write_file(&dir.join("messages.jsonl"), |out| {
        for (n, (m, (_, signature))) in messages.iter().zip(&rendered.messages).enumerate() {
            serde_json::to_writer(
                &mut *out,
                &MessageLine {
                    n,
                    signature,
                    message: m,
                },
            )?;
            out.write_all(b"\n")?;
        }
        Ok(())
    })?;
    write_file(&dir.join("plan.jsonl"), |out| {
        for d in &deliveries {
            serde_json::to_writer(
                &mut *out,
                &PlanLine {
                    at: d.at,
                    n: d.message,
                    redelivery: d.redelivery,
                },
            )?;
            out.write_all(b"\n")?;
        }
        Ok(())
    })?;
    write_file(&dir.join("truth.json"), |out| {
        serde_json::to_writer_pretty(&mut *out, &rendered.truth)?;
        Ok(out.write_all(b"\n")?)
    })?;
    write_file(&dir.join("fraud-config.json"), |out| {
        serde_json::to_writer_pretty(&mut *out, &Simulation::recommended_fraud_config())?;
        Ok(out.write_all(b"\n")?)
    })?;
    write_file(&dir.join("simulation.json"), |out| {
        serde_json::to_writer_pretty(
            &mut *out,
            &Manifest {
                config: sim.config(),
                movements: sim.movement_count(),
                messages: messages.len(),
                deliveries: deliveries.len(),
                redeliveries: deliveries.iter().filter(|d| d.redelivery).count(),
                end: sim.end(),
            },
        )?;
        Ok(out.write_all(b"\n")?)
    })?;
    Ok(rendered)
}

/// Reads a `simulate` output folder back.
pub fn read(dir: &Path) -> anyhow::Result<Rendered> {
    let open = |name: &str| {
        let path = dir.join(name);
        std::fs::File::open(&path)
            .map(std::io::BufReader::new)
            .with_context(|| format!("cannot open {}", path.display()))
    };
    let mut messages = Vec::new();
    for (k, line) in open("messages.jsonl")?.lines().enumerate() {
        let line: MessageLineIn = serde_json::from_str(&line?)
            .with_context(|| format!("messages.jsonl line {}", k + 1))?;
        if line.n != k {
            bail!(
                "messages.jsonl line {}: n is {}, expected {k}",
                k + 1,
                line.n
            );
        }
        messages.push((line.message.get().as_bytes().to_vec(), line.signature));
    }
    let mut plan = Vec::new();
    for (k, line) in open("plan.jsonl")?.lines().enumerate() {
        let line: PlanLine =
            serde_json::from_str(&line?).with_context(|| format!("plan.jsonl line {}", k + 1))?;
        if line.n >= messages.len() {
            bail!("plan.jsonl line {}: no message {}", k + 1, line.n);
        }
        plan.push((line.at, line.n, line.redelivery));
    }
    let truth = read_truth(&dir.join("truth.json"))?;
    Ok(Rendered {
        messages,
        plan,
        truth,
    })
}

fn read_truth(path: &Path) -> anyhow::Result<GroundTruth> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not a ground truth", path.display()))
}

/// A message's type and the streams it touches (MRN, GRN), so that two messages of one
/// ingest batch or two HTTP lanes never race on one stream.
fn peek(bytes: &[u8]) -> (String, Vec<String>) {
    #[derive(Deserialize)]
    struct Peek {
        body: PeekBody,
    }
    #[derive(Deserialize)]
    struct PeekBody {
        #[serde(rename = "type")]
        kind: String,
        body: serde_json::Map<String, serde_json::Value>,
    }
    let Ok(peek) = serde_json::from_slice::<Peek>(bytes) else {
        return (String::new(), Vec::new());
    };
    let keys = ["mrn", "grn", "guarantee"]
        .iter()
        .filter_map(|k| {
            peek.body
                .body
                .get(*k)
                .and_then(|v| v.as_str())
                .map(str::to_owned)
        })
        .collect();
    (peek.body.kind, keys)
}

/// What ingesting did.
#[derive(Debug, Default)]
pub struct IngestReport {
    /// Deliveries submitted.
    pub deliveries: usize,
    /// Recorded (new events).
    pub recorded: usize,
    /// Answered as duplicates.
    pub duplicates: usize,
    /// Refused, by code.
    pub refused: BTreeMap<String, usize>,
    /// Events in the log afterwards.
    pub events: u64,
}

/// Submits the deliveries, in plan order, to a fresh ledger over a `FileStore` in `data_dir`,
/// its clock set to each delivery's instant (a batch of deliveries shares the latest one).
pub async fn ingest(
    rendered: &Rendered,
    data_dir: &Path,
    registry: Arc<KeyRegistry>,
) -> anyhow::Result<IngestReport> {
    let first = rendered.plan.first().map_or(0, |d| d.0.unix_millis());
    let clock = Arc::new(ManualClock::new(first));
    let dyn_clock: Arc<dyn Clock> = clock.clone();
    let mut config = FileStoreConfig::new(data_dir);
    config.clock = dyn_clock.clone();
    let store = Arc::new(FileStore::open(config)?);
    if store.head() != 0 {
        bail!(
            "{} already holds a log of {} events: evaluate --sim needs a fresh folder",
            data_dir.display(),
            store.head()
        );
    }
    let dyn_store: Arc<dyn EventStore> = store.clone();
    let ledger = Ledger::with_registry(dyn_store, dyn_clock, registry);
    let mut report = IngestReport::default();
    let span = i64::try_from(INGEST_BATCH_SPAN.as_millis()).unwrap_or(i64::MAX);
    let mut k = 0;
    while k < rendered.plan.len() {
        let start = rendered.plan[k].0.unix_millis();
        let mut taken = BTreeSet::new();
        let mut batch = Vec::new();
        while let Some(&(at, n, _)) = rendered.plan.get(k) {
            let (_, keys) = peek(&rendered.messages[n].0);
            if batch.len() == INGEST_BATCH_MAX
                || at.unix_millis() - start > span
                || keys.iter().any(|key| taken.contains(key))
            {
                break;
            }
            taken.extend(keys);
            batch.push((at, n));
            k += 1;
        }
        if let Some((at, _)) = batch.last() {
            clock.set(at.unix_millis());
        }
        let outcomes = futures::future::join_all(batch.iter().map(|(_, n)| {
            let (bytes, signature) = &rendered.messages[*n];
            ledger.submit_json_signed(bytes, Some(signature))
        }))
        .await;
        for outcome in outcomes {
            report.deliveries += 1;
            match outcome {
                Ok(o) if o.duplicate => report.duplicates += 1,
                Ok(_) => report.recorded += 1,
                Err(SubmitError::Store(e)) => return Err(e.into()),
                Err(e) => *report.refused.entry(error_code(&e)).or_default() += 1,
            }
        }
    }
    report.events = store.head();
    drop(ledger);
    match Arc::into_inner(store) {
        Some(store) => {
            store.close().await?;
        }
        None => bail!("the store is still shared after ingesting"),
    }
    Ok(report)
}

fn error_code(e: &SubmitError) -> String {
    match e {
        SubmitError::Rejected(r) => r.code.as_str().to_owned(),
        other => other
            .to_string()
            .split(':')
            .next()
            .unwrap_or("ERROR")
            .to_owned(),
    }
}

/// Precision and recall of one rule.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RuleScore {
    pub rule: RuleId,
    /// Movements the truth expects to raise it.
    pub expected: usize,
    /// Movements that raised it (by the counting policy of [`score`]).
    pub raised: usize,
    pub true_positives: usize,
    /// Signals raised and later cleared by further evidence (a late border notification):
    /// noise an analyst saw live, not counted as raised.
    pub transient: usize,
    pub precision: f64,
    pub recall: f64,
}

impl RuleScore {
    /// Whether the rule meets both targets.
    pub fn meets_targets(&self) -> bool {
        self.precision >= PRECISION_TARGET && self.recall >= RECALL_TARGET
    }
}

/// Rebuilds the views of the log in `data_dir` with `fraud` thresholds, runs the deadline
/// rules at the truth's end, and scores each rule.
///
/// A movement counts as raising a rule when a signal of that rule is open at the end, or
/// was raised and cleared only because a movement closed: SHARED_VEHICLE and SHARED_SEAL
/// hold "while both are open", so their clearing at arrival does not undo the finding, and
/// HIGH_RISK_GOODS counts when another rule of the movement counts. A signal cleared because
/// the missing evidence turned up (a late crossing notification) counts as transient.
pub async fn score(
    data_dir: &Path,
    truth: &GroundTruth,
    fraud: FraudConfig,
) -> anyhow::Result<Vec<RuleScore>> {
    let store = FileStore::open(FileStoreConfig::new(data_dir))?;
    let mut views = Views {
        signals: SignalEngine::new(fraud),
        ..Views::default()
    };
    let mut from = 0;
    loop {
        let page = store.read_all(from, READ_EVENTS_MAX).await?;
        let Some(last) = page.last() else { break };
        from = last.position + 1;
        for record in &page {
            views.apply_record(record)?;
        }
    }
    views.tick(truth.end);
    store.close().await?;

    let mut raised: BTreeMap<RuleId, BTreeSet<Mrn>> = BTreeMap::new();
    let mut transient: BTreeMap<RuleId, usize> = BTreeMap::new();
    let mut high_risk: BTreeSet<Mrn> = BTreeSet::new();
    for s in views.signals.signals(&SignalFilter::default()) {
        let counts = matches!(s.status, SignalStatus::Open)
            || matches!(s.rule, RuleId::SharedVehicle | RuleId::SharedSeal);
        if s.rule == RuleId::HighRiskGoods {
            high_risk.insert(s.mrn.clone());
        } else if counts {
            raised.entry(s.rule).or_default().insert(s.mrn.clone());
        } else {
            *transient.entry(s.rule).or_default() += 1;
        }
    }
    let flagged: BTreeSet<&Mrn> = raised.values().flatten().collect();
    let hrg: BTreeSet<Mrn> = high_risk
        .into_iter()
        .filter(|m| flagged.contains(m))
        .collect();
    raised.insert(RuleId::HighRiskGoods, hrg);

    Ok(RuleId::ALL
        .iter()
        .map(|rule| {
            let expected = truth.expected(*rule);
            let got = raised.get(rule).cloned().unwrap_or_default();
            let tp = got.iter().filter(|m| expected.contains(m)).count();
            let ratio = |num: usize, den: usize| {
                if den == 0 {
                    1.0
                } else {
                    num as f64 / den as f64
                }
            };
            RuleScore {
                rule: *rule,
                expected: expected.len(),
                raised: got.len(),
                true_positives: tp,
                transient: transient.get(rule).copied().unwrap_or(0),
                precision: ratio(tp, got.len()),
                recall: ratio(tp, expected.len()),
            }
        })
        .collect())
}

/// The scores as a table.
pub fn table(scores: &[RuleScore]) -> String {
    let mut out = format!(
        "{:<22} {:>8} {:>8} {:>6} {:>9} {:>9} {:>7}  {}\n",
        "rule", "expected", "raised", "tp", "precision", "recall", "transnt", "target"
    );
    for s in scores {
        out.push_str(&format!(
            "{:<22} {:>8} {:>8} {:>6} {:>9.3} {:>9.3} {:>7}  {}\n",
            s.rule.code(),
            s.expected,
            s.raised,
            s.true_positives,
            s.precision,
            s.recall,
            s.transient,
            if s.meets_targets() { "ok" } else { "MISSED" }
        ));
    }
    out
}

fn read_fraud_config(path: Option<&Path>) -> anyhow::Result<FraudConfig> {
    match path {
        None => Ok(FraudConfig::default()),
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("cannot read {}", p.display()))?;
            serde_json::from_str(&text)
                .with_context(|| format!("{} is not a FraudConfig", p.display()))
        }
    }
}

/// `transit-ledger simulate`.
pub async fn simulate_command(args: SimulateArgs) -> anyhow::Result<()> {
    let mut config: SimConfig = match &args.config {
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("cannot read {}", p.display()))?;
            serde_json::from_str(&text)
                .with_context(|| format!("{} is not a SimConfig", p.display()))?
        }
        None => SimConfig::default(),
    };
    config.seed = args.seed;
    config.movements = args.movements;
    config.fraud_rate = args.fraud_rate;
    let keys = CountryKeys::load(&args.key_registry, &args.keys_dir)?;
    let started = Instant::now();
    let sim = Simulation::generate(&config)?;
    let rendered = write(&sim, &keys, &args.out)?;
    let fraud = rendered
        .truth
        .movements
        .iter()
        .filter(|e| e.scenario.is_some())
        .count();
    println!(
        "simulated {} movements ({fraud} in fraud scenarios), {} messages, {} deliveries, until {} in {:.1} s -> {}",
        sim.movement_count(),
        rendered.messages.len(),
        rendered.plan.len(),
        sim.end(),
        started.elapsed().as_secs_f64(),
        args.out.display()
    );
    if let Some(url) = &args.to_http {
        send_http(&rendered, url, args.token.as_deref()).await?;
    }
    if let Some(addr) = args.to_broker {
        send_broker(
            &rendered,
            addr,
            &args.queue_suffix,
            args.broker_user.as_deref(),
        )
        .await?;
    }
    Ok(())
}

/// Sends the deliveries to `POST {url}/v1/messages`: the guarantee registrations first, then
/// the rest in lanes by movement (each lane in plan order, lanes concurrently).
async fn send_http(rendered: &Rendered, url: &str, token: Option<&str>) -> anyhow::Result<()> {
    let client = reqwest::Client::builder().timeout(HTTP_TIMEOUT).build()?;
    let endpoint = format!("{}/v1/messages", url.trim_end_matches('/'));
    let started = Instant::now();
    let post = |n: usize| {
        let (bytes, signature) = &rendered.messages[n];
        let mut request = client
            .post(&endpoint)
            .header("content-type", "application/json")
            .header(transit_auth::HTTP_HEADER, signature.as_str())
            .body(bytes.clone());
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        async move {
            let response = request.send().await?;
            let status = response.status();
            if status.is_success() {
                return Ok::<_, anyhow::Error>(None);
            }
            let body: serde_json::Value = response.json().await.unwrap_or_default();
            Ok(Some(
                body["error"]["code"]
                    .as_str()
                    .map_or_else(|| status.to_string(), str::to_owned),
            ))
        }
    };
    let barrier = rendered
        .plan
        .iter()
        .position(|(_, n, _)| peek(&rendered.messages[*n].0).0 != "GuaranteeRegistration")
        .unwrap_or(rendered.plan.len());
    let mut refused: BTreeMap<String, usize> = BTreeMap::new();
    // Registrations first: every declaration needs its guarantee.
    let (registrations, rest) = rendered.plan.split_at(barrier);
    let results: Vec<_> = futures::stream::iter(registrations.iter().map(|(_, n, _)| post(*n)))
        .buffer_unordered(HTTP_CONCURRENCY_MAX)
        .collect()
        .await;
    let mut lanes_of: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (_, n, _) in rest {
        let lane = peek(&rendered.messages[*n].0)
            .1
            .into_iter()
            .next()
            .unwrap_or_default();
        lanes_of.entry(lane).or_default().push(*n);
    }
    let lane_results: Vec<Vec<anyhow::Result<Option<String>>>> =
        futures::stream::iter(lanes_of.into_values().map(|lane| {
            let post = &post;
            async move {
                let mut out = Vec::new();
                for n in lane {
                    out.push(post(n).await);
                }
                out
            }
        }))
        .buffer_unordered(HTTP_CONCURRENCY_MAX)
        .collect()
        .await;
    let mut sent = 0;
    for r in results
        .into_iter()
        .chain(lane_results.into_iter().flatten())
    {
        sent += 1;
        if let Some(code) = r? {
            *refused.entry(code).or_default() += 1;
        }
    }
    println!(
        "sent {sent} deliveries to {endpoint} in {:.1} s; refused: {refused:?}",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The NCTS code of a message type, for the broker's `type` header.
fn ncts_code(kind: &str) -> &'static str {
    match kind {
        "GuaranteeRegistration" => "GMS",
        "TransitDeclaration" => "IE015",
        "ReleaseForTransit" => "IE029",
        "NoReleaseForTransit" => "IE051",
        "BorderCrossing" => "IE118",
        "Incident" => "IE180",
        "DestinationChange" => "IE002",
        "ArrivalNotification" => "IE007",
        "ControlResults" => "IE044",
        "Discharge" => "IE045",
        "Cancellation" => "IE014",
        "Amendment" => "IE013",
        "EnquiryRequest" => "IE142",
        "EnquiryResponse" => "IE143",
        _ => "IE150",
    }
}

/// Sends the deliveries in plan order as XML to `transit.<CC>.in` (headers of docs/broker.md),
/// in receipted batches.
async fn send_broker(
    rendered: &Rendered,
    addr: std::net::SocketAddr,
    suffix: &str,
    user: Option<&str>,
) -> anyhow::Result<()> {
    let started = Instant::now();
    // One publisher per sending country, connected as that country's user.
    let mut publishers: BTreeMap<
        CountryCode,
        (crate::broker::Publisher, Vec<crate::broker::OutgoingText>),
    > = BTreeMap::new();
    let password = std::env::var(crate::broker::PASSWORD_ENV).ok();
    for (k, (_, n, _)) in rendered.plan.iter().enumerate() {
        let (bytes, signature) = &rendered.messages[*n];
        let m: InboundMessage = serde_json::from_slice(bytes)?;
        if !publishers.contains_key(&m.sender.country) {
            let login = user.map_or_else(
                || m.sender.country.as_str().to_ascii_lowercase(),
                str::to_owned,
            );
            let (credentials, _) = crate::broker::BrokerCredentials::resolve(
                &login,
                None,
                password.clone(),
                Path::new(crate::broker::DEV_CREDENTIALS_PATH),
            )?;
            let publisher = crate::broker::Publisher::connect(addr, &credentials).await?;
            publishers.insert(m.sender.country.clone(), (publisher, Vec::new()));
        }
        let Some((publisher, batch)) = publishers.get_mut(&m.sender.country) else {
            continue;
        };
        batch.push(crate::broker::OutgoingText {
            queue: format!("transit.{}.in{suffix}", m.sender.country),
            headers: vec![
                ("type".to_owned(), ncts_code(m.kind()).to_owned()),
                ("transitMessageId".to_owned(), m.message_id.to_string()),
                (
                    "transitSenderCountry".to_owned(),
                    m.sender.country.to_string(),
                ),
                (
                    "transitSenderOffice".to_owned(),
                    m.sender.office.to_string(),
                ),
                (transit_auth::BROKER_PROPERTY.to_owned(), signature.clone()),
            ],
            body: transit_xml::encode_inbound(&m),
        });
        if batch.len() == BROKER_BATCH_MAX {
            publisher.send_batch(std::mem::take(batch)).await?;
        }
        let _ = k;
    }
    for (publisher, batch) in publishers.values_mut() {
        publisher.send_batch(std::mem::take(batch)).await?;
    }
    println!(
        "sent {} deliveries to the broker at {addr} in {:.1} s",
        rendered.plan.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// `transit-ledger evaluate`; exit code 1 with `--check` when a rule misses a target.
pub async fn evaluate_command(args: EvaluateArgs) -> anyhow::Result<std::process::ExitCode> {
    let fraud = read_fraud_config(args.fraud_config.as_deref())?;
    let mut temporary = None;
    let (data_dir, truth) = match (&args.sim, &args.truth) {
        (Some(sim), None) => {
            let rendered = read(sim)?;
            let data_dir = match &args.data_dir {
                Some(d) => d.clone(),
                None => {
                    let tmp = tempfile::tempdir()?;
                    let dir = tmp.path().join("data");
                    temporary = Some(tmp);
                    dir
                }
            };
            let registry = Arc::new(crate::keys_cli::load_registry(&args.key_registry)?);
            let started = Instant::now();
            let report = ingest(&rendered, &data_dir, registry).await?;
            println!(
                "ingested {} deliveries in {:.1} s: {} recorded, {} duplicates, refused {:?}; {} events in {}",
                report.deliveries,
                started.elapsed().as_secs_f64(),
                report.recorded,
                report.duplicates,
                report.refused,
                report.events,
                data_dir.display()
            );
            (data_dir, rendered.truth)
        }
        (None, Some(truth)) => {
            let data_dir = args
                .data_dir
                .clone()
                .ok_or_else(|| anyhow!("--truth needs --data-dir"))?;
            (data_dir, read_truth(truth)?)
        }
        _ => bail!("pass --sim DIR, or --data-dir DIR --truth FILE"),
    };
    let started = Instant::now();
    let scores = score(&data_dir, &truth, fraud).await?;
    println!(
        "signals judged at {} ({} movements, replayed in {:.1} s):",
        truth.end,
        truth.movements.len(),
        started.elapsed().as_secs_f64()
    );
    print!("{}", table(&scores));
    drop(temporary);
    let ok = scores.iter().all(RuleScore::meets_targets);
    Ok(if args.check && !ok {
        std::process::ExitCode::FAILURE
    } else {
        std::process::ExitCode::SUCCESS
    })
}
