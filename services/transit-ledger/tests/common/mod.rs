//! Shared support of the service's end-to-end suites: the real service (a `FileStore` in a
//! temporary folder, the axum server on `127.0.0.1:0`, a `ManualClock` for the ledger clock,
//! the development key registry `ops/keys/registry.toml`), the HTTP and GraphQL calls the
//! suites make against it, and signatures made with the development keys (`ops/keys/dev/`).
//!
//! Each suite that uses it declares `mod common;`, so helpers one suite does not call are not
//! dead code in general, only in that suite.
#![allow(dead_code, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ledger_store::file::{FileStore, FileStoreConfig};
use ledger_store::{Clock, ManualClock};
use reqwest::StatusCode;
use serde_json::{json, Value};
use tempfile::TempDir;
use tokio::sync::oneshot;
use transit_auth::{KeyRegistry, SecretKeyFile};
use transit_contract::fixtures;
use transit_contract::ids::{CountryCode, Timestamp};
use transit_contract::messages::InboundMessage;

/// The fixtures' base time: 2026-05-28.
pub(crate) const BASE_MS: i64 = 1_780_000_000_000;
/// Longest wait for the projections (or anything else asynchronous) before a test fails.
pub(crate) const WAIT: Duration = Duration::from_secs(10);
/// How often a wait polls.
pub(crate) const POLL: Duration = Duration::from_millis(10);

/// The fixtures' base time as a [`Timestamp`].
pub(crate) fn base() -> Timestamp {
    Timestamp::from_unix_millis(BASE_MS).unwrap()
}

/// The repository's root folder.
pub(crate) fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("invariant: this crate lives at <repo>/services/transit-ledger")
        .to_path_buf()
}

/// The development key registry, `ops/keys/registry.toml`.
pub(crate) fn dev_registry_path() -> PathBuf {
    repo_root().join("ops/keys/registry.toml")
}

/// The development key registry, parsed.
pub(crate) fn dev_registry() -> Arc<KeyRegistry> {
    let text = std::fs::read_to_string(dev_registry_path()).unwrap();
    Arc::new(KeyRegistry::from_toml_str(&text).unwrap())
}

/// A development secret key by id, e.g. `tg-dev-1` (`ops/keys/dev/<id>.key`).
pub(crate) fn dev_key(id: &str) -> SecretKeyFile {
    let path = repo_root().join(format!("ops/keys/dev/{id}.key"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (there are development keys for TG, BF, NE and CI only)",
            path.display()
        )
    });
    SecretKeyFile::from_toml_str(&text).unwrap()
}

/// The development key of a country (`<cc>-dev-1`).
pub(crate) fn dev_key_of(country: &CountryCode) -> SecretKeyFile {
    dev_key(&format!("{}-dev-1", country.as_str().to_ascii_lowercase()))
}

/// The `Transit-Signature` / `transitSignature` value of `m` signed with `key`.
pub(crate) fn signature_by(key: &SecretKeyFile, m: &InboundMessage) -> String {
    transit_auth::sign(&key.signing_key, key.key_id.clone(), m).to_string()
}

/// `m` signed with the development key of its sender's country: what its national system
/// would send beside it.
pub(crate) fn dev_signature(m: &InboundMessage) -> String {
    signature_by(&dev_key_of(&m.sender.country), m)
}

/// The service, serving on a real socket until [`Server::stop`].
pub(crate) struct Server {
    pub(crate) addr: std::net::SocketAddr,
    /// The ledger clock, which the projection runner also ticks the deadline rules with; it
    /// starts one minute after [`BASE_MS`].
    pub(crate) clock: Arc<ManualClock>,
    pub(crate) client: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
    _dir: TempDir,
}

impl Server {
    /// The service with the development key registry: [`Server::submit`] and [`Server::post`]
    /// sign with the development keys.
    pub(crate) async fn start() -> Self {
        Self::start_with(Some(dev_registry())).await
    }

    /// The service checking signatures against `registry`, or not at all.
    pub(crate) async fn start_with(registry: Option<Arc<KeyRegistry>>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(BASE_MS + 60_000));
        let mut config = FileStoreConfig::new(dir.path());
        config.clock = clock.clone();
        let store = Arc::new(FileStore::open(config).unwrap());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let manual = clock.clone();
        let clock: Arc<dyn Clock> = clock;
        let options = transit_ledger::cli::ServeOptions {
            registry,
            ..Default::default()
        };
        let task = tokio::spawn(async move {
            transit_ledger::cli::serve_with(listener, store, clock, options, async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
        });
        Self {
            addr,
            clock: manual,
            client: reqwest::Client::new(),
            stop: Some(stop),
            task: Some(task),
            _dir: dir,
        }
    }

    /// `http://<addr><path>`.
    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Posts a message as JSON, signed with the development key of its sender's country; the
    /// status and the body, whatever they are.
    pub(crate) async fn submit(&self, m: &InboundMessage) -> (StatusCode, Value) {
        self.submit_signed(m, Some(&dev_signature(m))).await
    }

    /// Posts a message as JSON with this `Transit-Signature` (or none).
    pub(crate) async fn submit_signed(
        &self,
        m: &InboundMessage,
        signature: Option<&str>,
    ) -> (StatusCode, Value) {
        self.post_raw(
            "application/json",
            serde_json::to_vec(m).unwrap(),
            signature,
        )
        .await
    }

    /// Posts a message as XML, signed with the development key of its sender's country.
    pub(crate) async fn submit_xml(&self, m: &InboundMessage) -> (StatusCode, Value) {
        let body = transit_xml::encode_inbound(m);
        self.post_raw("application/xml", body, Some(&dev_signature(m)))
            .await
    }

    /// Posts any bytes to `/v1/messages`; the status and the JSON body.
    pub(crate) async fn post_raw(
        &self,
        content_type: &str,
        body: Vec<u8>,
        signature: Option<&str>,
    ) -> (StatusCode, Value) {
        let mut request = self
            .client
            .post(self.url("/v1/messages"))
            .header("content-type", content_type)
            .body(body);
        if let Some(signature) = signature {
            request = request.header(transit_auth::HTTP_HEADER, signature);
        }
        let r = request.send().await.unwrap();
        let status = r.status();
        (status, r.json().await.unwrap())
    }

    /// The log's head: how many events it holds.
    pub(crate) async fn head(&self) -> u64 {
        let (status, body) = self.get("/v1/events?from=0&limit=1").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["head"].as_u64().unwrap()
    }

    /// Posts a message that must be recorded; returns the global positions of its events.
    pub(crate) async fn post(&self, m: &InboundMessage) -> Vec<u64> {
        let (status, body) = self.submit(m).await;
        assert_eq!(
            status,
            StatusCode::CREATED,
            "{} {}: {body}",
            m.kind(),
            m.message_id
        );
        body["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["position"].as_u64().unwrap())
            .collect()
    }

    /// A GET that answers JSON.
    pub(crate) async fn get(&self, path: &str) -> (StatusCode, Value) {
        let r = self.client.get(self.url(path)).send().await.unwrap();
        let status = r.status();
        (status, r.json().await.unwrap())
    }

    /// A GraphQL request over HTTP POST; the whole response body.
    pub(crate) async fn gql(&self, query: &str, variables: Value) -> Value {
        let r = self
            .client
            .post(self.url("/graphql"))
            .json(&json!({ "query": query, "variables": variables }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        r.json().await.unwrap()
    }

    /// Queries and fails on any GraphQL error.
    pub(crate) async fn data(&self, query: &str, variables: Value) -> Value {
        let body = self.gql(query, variables).await;
        assert!(body.get("errors").is_none(), "{body}");
        body["data"].clone()
    }

    /// Waits until the projections reflect every event up to `position`.
    pub(crate) async fn caught_up(&self, position: u64) {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let data = self.data("{ projectionPosition }", json!({})).await;
            if data["projectionPosition"].as_u64().unwrap() > position {
                return;
            }
            assert!(tokio::time::Instant::now() < deadline, "projections stuck");
            tokio::time::sleep(POLL).await;
        }
    }

    pub(crate) async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        self.task.take().unwrap().await.unwrap();
    }
}

/// Posts a whole journey; returns the last position of each message's events.
pub(crate) async fn post_journey(server: &Server, journey: &fixtures::Journey) -> Vec<u64> {
    let mut lasts = Vec::new();
    for m in journey.messages() {
        lasts.push(*server.post(&m).await.last().unwrap());
    }
    server.caught_up(*lasts.last().unwrap()).await;
    lasts
}
