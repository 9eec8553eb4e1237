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
use transit_ledger::auth::{Authenticator, Role, TokenIssuer, TokenRequest};

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

/// The development issuer's key (`ops/auth/dev/issuer.key`), minting tokens the development
/// auth configuration (`ops/auth/issuers.toml`) accepts.
pub(crate) fn dev_issuer() -> TokenIssuer {
    TokenIssuer::from_key_file(
        &repo_root().join(transit_ledger::auth::DEV_ISSUER_KEY_PATH),
        transit_ledger::auth::DEV_ISSUER,
        transit_ledger::auth::DEV_AUDIENCE,
    )
    .unwrap()
}

/// A development token with `roles` (and `country` for a national system), issued at the
/// fixtures' base time and valid for ten years of the tests' manual clock.
pub(crate) fn dev_token(roles: &[Role], country: Option<&str>) -> String {
    dev_issuer()
        .issue(&TokenRequest {
            subject: format!(
                "{}{}",
                country.map(|c| format!("{c}-")).unwrap_or_default(),
                if roles.is_empty() {
                    "no-role".to_owned()
                } else {
                    roles
                        .iter()
                        .map(|r| r.as_str())
                        .collect::<Vec<_>>()
                        .join("+")
                }
            ),
            roles: roles.to_vec(),
            country: country.map(|c| c.parse().unwrap()),
            issued_at_ms: BASE_MS,
            ttl_s: 10 * 365 * 86_400,
        })
        .unwrap()
}

/// The national system token of `country`.
pub(crate) fn national_token(country: &CountryCode) -> String {
    dev_token(&[Role::NationalSystem], Some(country.as_str()))
}

/// An analyst's token.
pub(crate) fn analyst_token() -> String {
    dev_token(&[Role::Analyst], None)
}

/// An auditor's token.
pub(crate) fn auditor_token() -> String {
    dev_token(&[Role::Auditor], None)
}

/// The ledger's broker credentials (user `ledger`) from the credentials file the test broker
/// runs with (`ops/activemq/credentials.dev.properties` unless `ACTIVEMQ_CREDENTIALS_FILE`
/// says otherwise), read by the service's own reader.
pub(crate) fn broker_credentials() -> transit_ledger::broker::BrokerCredentials {
    transit_ledger::broker::BrokerCredentials::from_credentials_file(
        &broker_tests::credentials_file(),
        transit_ledger::broker::BROKER_USER_DEFAULT,
    )
    .unwrap()
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
        Self::start_opts(
            registry,
            &repo_root().join(transit_ledger::auth::DEV_ISSUERS_PATH),
            None,
        )
        .await
    }

    /// The service with `registry`, trusting the token issuers of `auth_config`, with a rate
    /// limit per principal or none.
    pub(crate) async fn start_opts(
        registry: Option<Arc<KeyRegistry>>,
        auth_config: &Path,
        rate_limit: Option<transit_ledger::rate_limit::RateLimit>,
    ) -> Self {
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
        let auth = Authenticator::load(auth_config, clock.clone()).unwrap();
        let options = transit_ledger::cli::ServeOptions {
            registry,
            auth: Some(Arc::new(auth)),
            rate_limit,
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

    /// Posts any bytes to `/v1/messages` as the national system of the sender the bytes
    /// name (Togo's when they name none); the status and the JSON body.
    pub(crate) async fn post_raw(
        &self,
        content_type: &str,
        body: Vec<u8>,
        signature: Option<&str>,
    ) -> (StatusCode, Value) {
        let country = transit_ledger::ledger::decode_message(content_type, &body)
            .map(|m| m.sender.country)
            .unwrap_or_else(|_| "TG".parse().unwrap());
        self.post_raw_as(&national_token(&country), content_type, body, signature)
            .await
    }

    /// Posts any bytes to `/v1/messages` with this bearer token.
    pub(crate) async fn post_raw_as(
        &self,
        token: &str,
        content_type: &str,
        body: Vec<u8>,
        signature: Option<&str>,
    ) -> (StatusCode, Value) {
        let mut request = self
            .client
            .post(self.url("/v1/messages"))
            .bearer_auth(token)
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

    /// A GET that answers JSON, as an auditor.
    pub(crate) async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.get_as(&auditor_token(), path).await
    }

    /// A GET that answers JSON, with this bearer token.
    pub(crate) async fn get_as(&self, token: &str, path: &str) -> (StatusCode, Value) {
        let r = self
            .client
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        let status = r.status();
        (status, r.json().await.unwrap())
    }

    /// A GraphQL request over HTTP POST; the whole response body.
    pub(crate) async fn gql(&self, query: &str, variables: Value) -> Value {
        let r = self
            .client
            .post(self.url("/graphql"))
            .bearer_auth(analyst_token())
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
