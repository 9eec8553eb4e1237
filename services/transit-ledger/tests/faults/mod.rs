//! Shared support of the fault-testing profile (`ops/faults.sh`): the real `transit-ledger`
//! binary served on a data folder and killed or stopped, simulated corridor traffic from
//! `transit-ledger simulate` sent over HTTP in lanes with a record of what was acknowledged,
//! and the end checks every fault test makes: each acknowledged message recorded exactly once
//! (read offline from the log), `verify` intact, and the served views equal to a rebuild
//! (`replay`).
//!
//! The fault tests are test targets with `test = false` (services/transit-ledger/Cargo.toml),
//! so the main `cargo test --workspace` leaves them out; `ops/faults.sh` runs each by name.
//! Sizes come from environment variables with CI-sized defaults ([`env_u64`]).
#![allow(dead_code, clippy::unwrap_used)]

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ledger_store::file::{FileStore, FileStoreConfig};
use ledger_store::EventStore;
use parking_lot::Mutex;
use serde_json::{json, Value};
use transit_contract::ids::CountryCode;
use transit_ledger::ledger::RecordedSubmission;
use transit_ledger::simulate::Rendered;

use crate::common;

/// The binary under test.
pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_transit-ledger");
/// Longest wait for the service to answer its health check after a start.
pub(crate) const START_WAIT: Duration = Duration::from_secs(60);
/// Every HTTP request's timeout in the fault tests.
pub(crate) const REQUEST_WAIT: Duration = Duration::from_secs(20);

/// A size or seed from the environment, or its default.
pub(crate) fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A seed from `name`, or a fresh one; printed so that a failing run can be replayed.
pub(crate) fn seed(name: &str) -> u64 {
    let seed = std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                % 1_000_000_007
        });
    eprintln!("{name}={seed}  (set it to replay this run)");
    seed
}

/// A port free right now on 127.0.0.1.
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Copies a folder tree (a killed service's data folder, to replay it aside).
pub(crate) fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// A `transit-ledger serve` child process with the development key registry and auth
/// configuration, its log going to `log`.
pub(crate) struct Service {
    child: Option<Child>,
    pub(crate) base: String,
    pub(crate) data_dir: PathBuf,
    log: PathBuf,
}

impl Service {
    /// Starts `serve` on `data_dir` with `extra` flags and waits until it is healthy.
    pub(crate) async fn start(data_dir: &Path, log: &Path, extra: &[&str]) -> Service {
        let port = free_port();
        let mut log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap();
        std::io::Write::write_all(&mut log_file, b"=== serve (re)started\n").unwrap();
        let child = Command::new(BIN)
            .args([
                "serve",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--data-dir",
            ])
            .arg(data_dir)
            // The load is many requests from a few principals: no rate limit in the way.
            .args([
                "--rate-limit-per-s",
                "1000000",
                "--rate-limit-burst",
                "1000000",
            ])
            .args(extra)
            .env("TRANSIT_LEDGER_KEY_REGISTRY", common::dev_registry_path())
            .env(
                "TRANSIT_LEDGER_AUTH_CONFIG",
                common::repo_root().join(transit_ledger::auth::DEV_ISSUERS_PATH),
            )
            .env(
                "RUST_LOG",
                std::env::var("FAULT_SERVE_LOG").unwrap_or_else(|_| "warn".to_owned()),
            )
            .stdout(Stdio::null())
            .stderr(Stdio::from(log_file))
            .spawn()
            .unwrap();
        let mut service = Service {
            child: Some(child),
            base: format!("http://127.0.0.1:{port}"),
            data_dir: data_dir.to_path_buf(),
            log: log.to_path_buf(),
        };
        service.wait_healthy(log).await;
        service
    }

    async fn wait_healthy(&mut self, log: &Path) {
        let client = reqwest::Client::new();
        let deadline = Instant::now() + START_WAIT;
        loop {
            if let Ok(r) = client.get(format!("{}/healthz", self.base)).send().await {
                if r.status().is_success() {
                    return;
                }
            }
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!(
                    "serve exited at start ({status}); its log:\n{}",
                    std::fs::read_to_string(log).unwrap_or_default()
                );
            }
            assert!(Instant::now() < deadline, "the service did not come up");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// SIGKILL: no destructors, no last checkpoint, writes in flight torn.
    pub(crate) fn kill(mut self) {
        let mut child = self.child.take().unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
    }

    /// SIGTERM, and a clean exit.
    pub(crate) fn terminate(mut self) {
        let mut child = self.child.take().unwrap();
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success());
        let status = child.wait().unwrap();
        assert!(status.success(), "clean exit on SIGTERM: {status:?}");
    }

    /// The views the service serves (`viewHashes`), once they reflect `head` events.
    pub(crate) async fn view_hashes_at(&self, client: &reqwest::Client, head: u64) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let r = client
                .post(format!("{}/graphql", self.base))
                .bearer_auth(common::analyst_token())
                .json(&json!({
                    "query": "{ viewHashes { position movements exposure corridors signals } }"
                }))
                .send()
                .await
                .unwrap();
            assert!(r.status().is_success(), "{}", r.status());
            let body: Value = r.json().await.unwrap();
            let hashes = body["data"]["viewHashes"].clone();
            assert!(hashes.is_object(), "{body}");
            let position = hashes["position"].as_u64().unwrap();
            assert!(position <= head, "views past the head: {hashes}");
            if position == head {
                return hashes;
            }
            if Instant::now() > deadline {
                let log = std::fs::read_to_string(&self.log).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(60).collect();
                panic!(
                    "views stuck at {position} of {head}; the service's log ends:\n{}",
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        // A failing test must not leave a server behind.
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// `transit-ledger verify --data-dir DIR --key-registry <dev>`: exit code and output.
pub(crate) fn verify(dir: &Path) -> (i32, String) {
    let out = Command::new(BIN)
        .args(["verify", "--data-dir"])
        .arg(dir)
        .arg("--key-registry")
        .arg(common::dev_registry_path())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// Asserts that `verify` finds `dir` intact.
pub(crate) fn assert_intact(dir: &Path, when: &str) {
    let (code, out) = verify(dir);
    assert!(code == 0 && out.contains("INTACT"), "{when}: verify: {out}");
}

/// `transit-ledger replay --data-dir DIR --quiet`: the events replayed and the view hashes,
/// in the shape of GraphQL's `viewHashes` (position = events).
pub(crate) fn replay(dir: &Path) -> Value {
    let out = Command::new(BIN)
        .args(["replay", "--quiet", "--data-dir"])
        .arg(dir)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "replay failed: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.trim().to_owned())
            .unwrap_or_else(|| panic!("replay printed no {name}: {text}"))
    };
    json!({
        "position": field("events:").parse::<u64>().unwrap(),
        "movements": field("movements "),
        "exposure": field("exposure "),
        "corridors": field("corridors "),
        "signals": field("signals "),
    })
}

/// How many times each message id's submission is recorded in the log of `dir` (opened
/// offline: the service must be stopped), and the log's head.
pub(crate) async fn recorded_messages(dir: &Path) -> (HashMap<String, usize>, u64) {
    let store = FileStore::open(FileStoreConfig::new(dir)).unwrap();
    let mut counts: HashMap<String, usize> = HashMap::new();
    let mut from = 0;
    loop {
        let page = store
            .read_all(from, ledger_store::READ_EVENTS_MAX)
            .await
            .unwrap();
        let Some(last) = page.last() else { break };
        from = last.position + 1;
        for e in &page {
            if let Some(s) = RecordedSubmission::from_metadata(&e.metadata).unwrap() {
                *counts.entry(s.message_id).or_default() += 1;
            }
        }
    }
    let head = store.head();
    store.close().await.unwrap();
    (counts, head)
}

/// Asserts that every acknowledged message is recorded exactly once, and nothing else is.
pub(crate) fn assert_exactly_once(recorded: &HashMap<String, usize>, acked: &[String]) {
    let doubled: Vec<_> = recorded.iter().filter(|(_, n)| **n > 1).collect();
    assert!(doubled.is_empty(), "recorded more than once: {doubled:?}");
    let lost: Vec<_> = acked
        .iter()
        .filter(|id| !recorded.contains_key(*id))
        .collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged messages are not in the log, e.g. {:?}",
        lost.len(),
        &lost[..lost.len().min(5)]
    );
}

/// Runs `transit-ledger simulate` into `out` and reads its files back.
pub(crate) fn simulate(seed: u64, movements: u64, out: &Path) -> Rendered {
    let root = common::repo_root();
    let status = Command::new(BIN)
        .args(["simulate", "--seed", &seed.to_string()])
        .args(["--movements", &movements.to_string(), "--out"])
        .arg(out)
        .arg("--key-registry")
        .arg(root.join("ops/keys/registry.toml"))
        .arg("--keys-dir")
        .arg(root.join("ops/keys/dev"))
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    transit_ledger::simulate::read(out).unwrap()
}

/// One message of the traffic, as sent.
pub(crate) struct Message {
    pub(crate) id: String,
    pub(crate) country: CountryCode,
    pub(crate) kind: String,
    pub(crate) body: Vec<u8>,
    pub(crate) signature: String,
}

/// What the traffic's messages answered, shared by the senders.
#[derive(Default)]
pub(crate) struct Ledgerbook {
    /// Messages answered 201 or 200 (duplicate): acknowledged as recorded.
    pub(crate) acked: Vec<bool>,
    /// Refusals (4xx), by code.
    pub(crate) refused: BTreeMap<String, usize>,
    /// Messages refused, by index.
    pub(crate) refused_messages: Vec<bool>,
    /// Resends of acknowledged messages, all answered as duplicates.
    pub(crate) duplicate_checks: usize,
    /// Sends that failed (connection lost, 5xx): resent later.
    pub(crate) failed_sends: usize,
    /// Messages whose send failed and whose resend found them recorded already.
    pub(crate) recorded_before_ack: usize,
    /// Messages whose send failed at least once.
    pub(crate) failed_once: Vec<bool>,
}

/// The simulated traffic in sending order: the guarantee registrations that open the plan
/// first, then one lane per movement (or guarantee), each in plan order. A lane stops at a
/// message that was not acknowledged and resumes there on the next [`Traffic::send`].
pub(crate) struct Traffic {
    pub(crate) messages: Vec<Message>,
    registrations: Vec<usize>,
    lanes: Vec<Vec<usize>>,
    cursors: Mutex<Vec<usize>>,
    pub(crate) book: Mutex<Ledgerbook>,
    tokens: HashMap<CountryCode, String>,
    client: reqwest::Client,
}

/// How one send went.
pub(crate) enum Sent {
    /// 201.
    Recorded,
    /// 200, `duplicate: true`.
    Duplicate,
    /// 4xx with this code: a definitive answer.
    Refused(String),
    /// No answer or 5xx: this status (0 when the connection failed) and code.
    Failed(u16, String),
}

impl Traffic {
    /// The traffic of a simulation, in plan order (redeliveries left out: the fault tests
    /// make their own).
    pub(crate) fn new(rendered: &Rendered) -> Traffic {
        let mut messages = Vec::new();
        let mut index_of = HashMap::new();
        let mut keys = Vec::new();
        for (n, (body, signature)) in rendered.messages.iter().enumerate() {
            let v: Value = serde_json::from_slice(body).unwrap();
            let kind = v["body"]["type"].as_str().unwrap().to_owned();
            let lane = ["mrn", "grn", "guarantee"]
                .iter()
                .find_map(|k| v["body"]["body"][*k].as_str())
                .unwrap_or_default()
                .to_owned();
            keys.push(lane);
            index_of.insert(n, messages.len());
            messages.push(Message {
                id: v["messageId"].as_str().unwrap().to_owned(),
                country: v["sender"]["country"].as_str().unwrap().parse().unwrap(),
                kind,
                body: body.clone(),
                signature: signature.clone(),
            });
        }
        let mut seen = vec![false; messages.len()];
        let mut order = Vec::new();
        for &(_, n, _) in &rendered.plan {
            if !seen[n] {
                seen[n] = true;
                order.push(n);
            }
        }
        let barrier = order
            .iter()
            .position(|n| messages[*n].kind != "GuaranteeRegistration")
            .unwrap_or(order.len());
        let registrations = order[..barrier].to_vec();
        let mut lanes_of: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        for &n in &order[barrier..] {
            lanes_of.entry(keys[n].clone()).or_default().push(n);
        }
        let lanes: Vec<Vec<usize>> = lanes_of.into_values().collect();
        let tokens = messages
            .iter()
            .map(|m| m.country.clone())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .map(|c| {
                let token = common::national_token(&c);
                (c, token)
            })
            .collect();
        let count = messages.len();
        Traffic {
            messages,
            registrations,
            cursors: Mutex::new(vec![0; lanes.len() + 1]),
            lanes,
            book: Mutex::new(Ledgerbook {
                acked: vec![false; count],
                refused_messages: vec![false; count],
                failed_once: vec![false; count],
                ..Ledgerbook::default()
            }),
            tokens,
            client: reqwest::Client::builder()
                .timeout(REQUEST_WAIT)
                .build()
                .unwrap(),
        }
    }

    /// Posts message `n` to `base` as its sender's national system.
    pub(crate) async fn post(&self, base: &str, n: usize) -> Sent {
        let m = &self.messages[n];
        let sent = self
            .client
            .post(format!("{base}/v1/messages"))
            .bearer_auth(&self.tokens[&m.country])
            .header("content-type", "application/json")
            .header(transit_auth::HTTP_HEADER, m.signature.as_str())
            .body(m.body.clone())
            .send()
            .await;
        let r = match sent {
            Ok(r) => r,
            Err(e) => return Sent::Failed(0, e.to_string()),
        };
        let status = r.status().as_u16();
        let body: Value = match r.json().await {
            Ok(body) => body,
            Err(e) => return Sent::Failed(status, e.to_string()),
        };
        match status {
            201 => Sent::Recorded,
            200 => {
                assert_eq!(body["duplicate"], true, "{body}");
                Sent::Duplicate
            }
            400..=499 => Sent::Refused(body["error"]["code"].as_str().unwrap_or("?").to_owned()),
            _ => Sent::Failed(
                status,
                body["error"]["code"].as_str().unwrap_or("?").to_owned(),
            ),
        }
    }

    /// Sends message `n` and books the answer; true when it was acknowledged.
    async fn send_one(&self, base: &str, n: usize) -> bool {
        let outcome = self.post(base, n).await;
        let mut book = self.book.lock();
        match outcome {
            Sent::Recorded | Sent::Duplicate => {
                if matches!(outcome, Sent::Duplicate) && book.failed_once[n] && !book.acked[n] {
                    book.recorded_before_ack += 1;
                }
                book.acked[n] = true;
                true
            }
            Sent::Refused(code) => {
                if !book.refused_messages[n] {
                    book.refused_messages[n] = true;
                    *book.refused.entry(code).or_default() += 1;
                }
                // A definitive answer: the lane goes on.
                true
            }
            Sent::Failed(..) => {
                book.failed_sends += 1;
                book.failed_once[n] = true;
                false
            }
        }
    }

    /// Sends what is left to `base` with `senders` lanes at once, until everything was
    /// answered or a send fails (the service died): then each lane stops where it is.
    /// True when every message was answered.
    pub(crate) async fn send(self: &Arc<Self>, base: &str, senders: usize) -> bool {
        use futures::StreamExt as _;
        // Registrations first, all of them: every declaration needs its guarantee.
        let start = self.cursors.lock()[0];
        let pending: Vec<usize> = self.registrations[start..].to_vec();
        let sends: Vec<_> = pending
            .iter()
            .map(|&n| {
                let (this, base) = (self.clone(), base.to_owned());
                async move { this.send_one(&base, n).await }
            })
            .collect();
        let results: Vec<bool> = futures::stream::iter(sends)
            .buffered(senders)
            .collect()
            .await;
        let ok = results.iter().take_while(|ok| **ok).count();
        self.cursors.lock()[0] = start + ok;
        if ok < pending.len() {
            return false;
        }
        let lanes: Vec<_> = (0..self.lanes.len())
            .map(|lane| {
                let (this, base) = (self.clone(), base.to_owned());
                async move {
                    loop {
                        let at = this.cursors.lock()[lane + 1];
                        let Some(&n) = this.lanes[lane].get(at) else {
                            return true;
                        };
                        if !this.send_one(&base, n).await {
                            return false;
                        }
                        this.cursors.lock()[lane + 1] = at + 1;
                    }
                }
            })
            .collect();
        let done: Vec<bool> = futures::stream::iter(lanes)
            .buffer_unordered(senders)
            .collect()
            .await;
        done.iter().all(|d| *d)
    }

    /// Resends up to `count` acknowledged messages picked with `rng`; each must be answered
    /// as a duplicate.
    pub(crate) async fn resend_acknowledged(
        &self,
        base: &str,
        rng: &mut impl rand::Rng,
        count: usize,
    ) {
        let acked: Vec<usize> = {
            let book = self.book.lock();
            (0..self.messages.len())
                .filter(|n| book.acked[*n])
                .collect()
        };
        for _ in 0..count.min(acked.len()) {
            let n = acked[rng.gen_range(0..acked.len())];
            match self.post(base, n).await {
                Sent::Duplicate => self.book.lock().duplicate_checks += 1,
                Sent::Recorded => panic!(
                    "message {} was acknowledged, yet its resend was recorded anew",
                    self.messages[n].id
                ),
                Sent::Refused(code) => panic!(
                    "acknowledged message {} resent: refused {code}",
                    self.messages[n].id
                ),
                Sent::Failed(status, code) => panic!(
                    "acknowledged message {} resent: {status} {code}",
                    self.messages[n].id
                ),
            }
        }
    }

    /// The ids of the acknowledged messages.
    pub(crate) fn acked_ids(&self) -> Vec<String> {
        let book = self.book.lock();
        (0..self.messages.len())
            .filter(|n| book.acked[*n])
            .map(|n| self.messages[n].id.clone())
            .collect()
    }

    /// Messages acknowledged so far.
    pub(crate) fn acked_count(&self) -> usize {
        self.book.lock().acked.iter().filter(|a| **a).count()
    }
}

/// Shared handle on the traffic for a sending task.
pub(crate) type SharedTraffic = Arc<Traffic>;

// The broker loop's support (`faults_broker_loop`): the shared ActiveMQ broker stopped and
// started through `ops/activemq.sh`, a guard that leaves it running whatever happens, the
// log followed over HTTP for the message ids it records, and the service's metrics.

/// Runs `ops/activemq.sh <action>` (`stop`, `start`, `status`): Ok with its output when it
/// exits 0, Err with its output otherwise.
pub(crate) fn activemq(action: &str) -> Result<String, String> {
    let out = Command::new("bash")
        .arg(common::repo_root().join("ops/activemq.sh"))
        .arg(action)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("ops/activemq.sh {action}: {e}"))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() {
        Ok(text)
    } else {
        Err(format!("ops/activemq.sh {action} ({}): {text}", out.status))
    }
}

/// Starts the shared broker again when it is dropped and the broker is not running: a fault
/// test that stops the broker and then fails must not leave the other broker tests (and the
/// next run) without one.
pub(crate) struct BrokerLeftRunning;

impl Drop for BrokerLeftRunning {
    fn drop(&mut self) {
        if activemq("status").is_ok() {
            return;
        }
        eprintln!("broker guard: the broker is not running; starting it again");
        if let Err(e) = activemq("start") {
            eprintln!("broker guard: {e}");
        }
    }
}

/// How often [`RecordedTail`] asks for new events when it has read everything.
pub(crate) const TAIL_POLL: Duration = Duration::from_millis(10);

/// Follows a running service's log (`GET /v1/events`, as an auditor) and counts how many
/// times each message id's submission is recorded, so that a test can wait for a message to
/// be recorded without stopping the service.
pub(crate) struct RecordedTail {
    counts: Arc<Mutex<HashMap<String, usize>>>,
    position: tokio::sync::watch::Receiver<u64>,
    task: tokio::task::JoinHandle<()>,
}

impl RecordedTail {
    /// Starts following the log of the service at `base` from position 0.
    pub(crate) fn start(base: &str) -> RecordedTail {
        let counts: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
        let (tx, position) = tokio::sync::watch::channel(0u64);
        let client = reqwest::Client::builder()
            .timeout(REQUEST_WAIT)
            .build()
            .unwrap();
        let (base, token, seen) = (base.to_owned(), common::auditor_token(), counts.clone());
        let task = tokio::spawn(async move {
            let mut from = 0u64;
            loop {
                let page = async {
                    let r = client
                        .get(format!("{base}/v1/events"))
                        .query(&[
                            ("from", from),
                            ("limit", ledger_store::READ_EVENTS_MAX as u64),
                        ])
                        .bearer_auth(&token)
                        .send()
                        .await
                        .ok()?;
                    r.status().is_success().then_some(())?;
                    r.json::<Value>().await.ok()
                }
                .await;
                let events = page
                    .as_ref()
                    .and_then(|p| p["events"].as_array())
                    .cloned()
                    .unwrap_or_default();
                if events.is_empty() {
                    tokio::time::sleep(TAIL_POLL).await;
                    continue;
                }
                {
                    let mut seen = seen.lock();
                    for e in &events {
                        let submission = &e["metadata"]["submission"];
                        if submission.get("recordedWith").is_some() {
                            continue;
                        }
                        if let Some(id) = submission["messageId"].as_str() {
                            *seen.entry(id.to_owned()).or_default() += 1;
                        }
                    }
                }
                from = events.last().unwrap()["position"].as_u64().unwrap() + 1;
                tx.send_replace(from);
            }
        });
        RecordedTail {
            counts,
            position,
            task,
        }
    }

    /// How many times `id` is recorded in what was read so far.
    pub(crate) fn count(&self, id: &str) -> usize {
        self.counts.lock().get(id).copied().unwrap_or(0)
    }

    /// Message ids recorded so far.
    pub(crate) fn recorded(&self) -> usize {
        self.counts.lock().len()
    }

    /// Events read so far (the next position to read).
    pub(crate) fn position(&self) -> u64 {
        *self.position.borrow()
    }

    /// Waits until `id` is recorded; false when `wait` passed first.
    pub(crate) async fn wait_recorded(&self, id: &str, wait: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + wait;
        let mut position = self.position.clone();
        loop {
            position.borrow_and_update();
            if self.count(id) > 0 {
                return true;
            }
            match tokio::time::timeout_at(deadline, position.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) | Err(_) => return self.count(id) > 0,
            }
        }
    }
}

impl Drop for RecordedTail {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The service's metrics (`GET /metrics` as an operator), in Prometheus text.
pub(crate) async fn metrics_text(base: &str) -> String {
    let r = reqwest::Client::new()
        .get(format!("{base}/metrics"))
        .bearer_auth(common::dev_token(
            &[transit_ledger::auth::Role::Operator],
            None,
        ))
        .timeout(REQUEST_WAIT)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "/metrics: {}", r.status());
    r.text().await.unwrap()
}

/// The sum of the samples of metric `name` (exactly; `name{...} value` or `name value`) whose
/// labels include every `label="value"` of `labels`.
pub(crate) fn metric_sum(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let rest = l.strip_prefix(name)?;
            let (label_text, value) = match rest.strip_prefix('{') {
                Some(r) => r.split_once('}')?,
                None if rest.starts_with(' ') => ("", rest),
                None => return None,
            };
            labels
                .iter()
                .all(|(k, v)| label_text.contains(&format!("{k}=\"{v}\"")))
                .then(|| value.split_whitespace().next()?.parse::<f64>().ok())?
        })
        .sum()
}
