//! Helpers for tests that need the real ActiveMQ broker: start it through
//! `ops/activemq.sh` (the script CI and developers use), connect over STOMP 1.2 with
//! `async-stomp`, send and receive with bounded waits, and drive the Java JMS probe
//! (`ops/jms/run.sh`) that stands in for a national customs system speaking OpenWire.
//!
//! The broker refuses anonymous connections: every connection names a broker user (`admin`,
//! `ledger`, or a country's national system: `tg`, `bf`, `ne`, `ci`), whose password comes
//! from the credentials file the broker was started with ([`credentials_file`]), and may
//! touch only the queues `ops/activemq/activemq.xml` grants it. Tests connect as the party
//! that would really do what they do: Togo sends to `transit.TG.in`, the ledger consumes it.
//!
//! The integration tests of this crate use them, and so will the broker gateway's tests.
//! Queue names, headers and the broker's configuration are described in `docs/broker.md`.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{anyhow, bail, Context as _};
use async_stomp::client::{ClientTransport, Connector, Subscriber};
use async_stomp::{AckMode, FromServer, Message, ToServer};
use futures::{SinkExt as _, StreamExt as _};

pub use async_stomp;

/// Largest STOMP frame either side accepts: the broker's `transport.maxFrameSize` in
/// `ops/activemq/activemq.xml`. The ledger's own limit on a message is 512 KiB, so 1 MiB
/// leaves room for headers and escaping.
pub const STOMP_FRAME_BYTES_MAX: usize = 1024 * 1024;

/// How long `ops/activemq.sh start` may take: an install on a fresh machine (`apt-get update`
/// plus about 12 s of packages) and the script's own 60 s wait for the ports.
pub const BROKER_START_TIMEOUT: Duration = Duration::from_secs(300);

/// How long to wait for a frame the broker owes us (CONNECTED, RECEIPT, MESSAGE). Generous,
/// because a busy 2-core CI machine can stall for seconds; a healthy broker answers in
/// milliseconds.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(15);

/// How long to listen before concluding that no message is coming. Only used where the
/// absence of a message is what is being checked.
pub const SILENCE_TIMEOUT: Duration = Duration::from_secs(2);

/// How long one run of the Java JMS probe may take, JVM start and compilation included.
pub const JMS_PROBE_TIMEOUT: Duration = Duration::from_secs(120);

/// How often the broker redelivers a message its consumer rejected (STOMP NACK) before it
/// moves it to `DLQ.<queue>`: `maximumRedeliveries` of the `redeliveryPlugin` in
/// `ops/activemq/activemq.xml` (a unit test keeps the two equal). The delay between
/// redeliveries there is 1 s, below [`SILENCE_TIMEOUT`].
pub const MAXIMUM_REDELIVERIES: u32 = 2;

/// STOMP heart-beat interval asked of and offered to the broker, in milliseconds. It keeps
/// idle gateway connections alive through firewalls and detects a dead broker.
pub const STOMP_HEARTBEAT_MS: u32 = 10_000;

/// The environment variable `ops/activemq.sh` reads the credentials file's path from.
pub const CREDENTIALS_FILE_ENV: &str = "ACTIVEMQ_CREDENTIALS_FILE";

/// The credentials file the broker is started with: `$ACTIVEMQ_CREDENTIALS_FILE`, or the
/// development one, `ops/activemq/credentials.dev.properties` (as `ops/activemq.sh` decides).
pub fn credentials_file() -> PathBuf {
    match std::env::var_os(CREDENTIALS_FILE_ENV) {
        Some(path) if !path.is_empty() => PathBuf::from(path),
        _ => repo_root().join("ops/activemq/credentials.dev.properties"),
    }
}

/// A broker user and its password. `Debug` leaves the password out, so a failing assertion
/// never prints it.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The user (STOMP `login`, JMS user name).
    pub login: String,
    passcode: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("login", &self.login)
            .field("passcode", &"<redacted>")
            .finish()
    }
}

impl Credentials {
    /// Any user and password (e.g. a wrong one, to be refused).
    pub fn new(login: &str, passcode: &str) -> Self {
        Self {
            login: login.to_owned(),
            passcode: passcode.to_owned(),
        }
    }

    /// A user the broker knows, with its password from [`credentials_file`]
    /// (`transit.password.<login>=...`).
    pub fn of(login: &str) -> anyhow::Result<Self> {
        let path = credentials_file();
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading broker credentials {}", path.display()))?;
        let key = format!("transit.password.{login}");
        text.lines()
            .map(str::trim)
            .filter(|line| !line.starts_with('#') && !line.starts_with('!'))
            .filter_map(|line| line.split_once('='))
            .find(|(k, _)| k.trim() == key)
            .map(|(_, v)| Self::new(login, v.trim()))
            .ok_or_else(|| anyhow!("{} has no {key} line", path.display()))
    }

    /// The password.
    pub fn passcode(&self) -> &str {
        &self.passcode
    }
}

/// Where the broker listens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BrokerAddrs {
    /// STOMP 1.2 (the ledger's protocol).
    pub stomp: SocketAddr,
    /// OpenWire (the national systems' JMS clients).
    pub openwire: SocketAddr,
}

impl BrokerAddrs {
    /// The addresses `ops/activemq.sh` uses, honouring the same environment overrides
    /// (`ACTIVEMQ_STOMP_PORT`, `ACTIVEMQ_OPENWIRE_PORT`).
    pub fn from_env() -> anyhow::Result<Self> {
        let port = |name: &str, default: u16| -> anyhow::Result<u16> {
            match std::env::var(name) {
                Ok(value) => value
                    .parse()
                    .with_context(|| format!("{name}={value:?} is not a port number")),
                Err(_) => Ok(default),
            }
        };
        Ok(Self {
            stomp: SocketAddr::from((Ipv4Addr::LOCALHOST, port("ACTIVEMQ_STOMP_PORT", 61613)?)),
            openwire: SocketAddr::from((
                Ipv4Addr::LOCALHOST,
                port("ACTIVEMQ_OPENWIRE_PORT", 61616)?,
            )),
        })
    }

    /// The OpenWire URL a JMS client connects to.
    pub fn openwire_url(&self) -> String {
        format!("tcp://{}", self.openwire)
    }
}

/// The repository root (the folder holding `ops/`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("invariant: this crate lives at <repo>/tests/broker-tests")
        .to_path_buf()
}

/// Broker addresses once `ops/activemq.sh start` has succeeded in this process: the script
/// is idempotent, but running it once per test would cost a process spawn each time.
static STARTED: tokio::sync::Mutex<Option<BrokerAddrs>> = tokio::sync::Mutex::const_new(None);

/// Starts the broker through `ops/activemq.sh start` (installing it first if needed), or
/// finds it already running, and returns its addresses. A failure carries the script's
/// output, so a test fails with the reason rather than skipping.
pub async fn ensure_broker() -> anyhow::Result<BrokerAddrs> {
    let mut started = STARTED.lock().await;
    if let Some(addrs) = *started {
        return Ok(addrs);
    }
    let addrs = BrokerAddrs::from_env()?;
    let script = repo_root().join("ops/activemq.sh");
    let mut command = tokio::process::Command::new("bash");
    command
        .arg(&script)
        .arg("start")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let output = tokio::time::timeout(BROKER_START_TIMEOUT, command.output())
        .await
        .map_err(|_| {
            anyhow!(
                "{} start took over {BROKER_START_TIMEOUT:?}",
                script.display()
            )
        })?
        .with_context(|| format!("running {}", script.display()))?;
    if !output.status.success() {
        bail!(
            "{} start failed ({}):\n--- stdout\n{}\n--- stderr\n{}",
            script.display(),
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    *started = Some(addrs);
    Ok(addrs)
}

/// A queue name no earlier run has used: `<base>.test-<uuid>`. Leftover messages from an
/// interrupted run then cannot be mistaken for this run's, and tests running in parallel
/// do not see each other's messages.
pub fn unique_queue(base: &str) -> String {
    format!("{base}.test-{}", uuid::Uuid::new_v4().simple())
}

/// The STOMP destination of an ActiveMQ queue (`/queue/<name>`); JMS clients use the bare
/// name.
pub fn stomp_queue(name: &str) -> String {
    format!("/queue/{name}")
}

/// Opens a STOMP 1.2 connection as broker user `login` (password from [`credentials_file`]),
/// with heart-beats and the project's frame-size limit.
pub async fn connect_stomp(addrs: &BrokerAddrs, login: &str) -> anyhow::Result<ClientTransport> {
    connect_stomp_as(addrs, Some(&Credentials::of(login)?)).await
}

/// Opens a STOMP 1.2 connection with these credentials, or none (anonymous, which the broker
/// refuses).
pub async fn connect_stomp_as(
    addrs: &BrokerAddrs,
    credentials: Option<&Credentials>,
) -> anyhow::Result<ClientTransport> {
    let mut connector = Connector::builder()
        .server(addrs.stomp)
        // ActiveMQ has no virtual hosts; STOMP 1.2 still requires the header.
        .virtualhost("localhost")
        .max_frame_size(STOMP_FRAME_BYTES_MAX)
        .heartbeat(STOMP_HEARTBEAT_MS, STOMP_HEARTBEAT_MS);
    if let Some(credentials) = credentials {
        connector = connector
            .login(credentials.login.clone())
            .passcode(credentials.passcode.clone());
    }
    let connect = connector.connect();
    tokio::time::timeout(REPLY_TIMEOUT, connect)
        .await
        .map_err(|_| {
            anyhow!(
                "STOMP connect to {} took over {REPLY_TIMEOUT:?}",
                addrs.stomp
            )
        })?
        .with_context(|| format!("STOMP connect to {}", addrs.stomp))
}

/// Closes a connection the way STOMP prescribes (DISCONNECT with a receipt), so everything
/// sent before, acknowledgements included, has been processed by the broker.
pub async fn disconnect_stomp(conn: &mut ClientTransport) -> anyhow::Result<()> {
    let receipt = format!("disconnect-{}", uuid::Uuid::new_v4().simple());
    tokio::time::timeout(
        REPLY_TIMEOUT,
        async_stomp::client::disconnect(conn, receipt),
    )
    .await
    .map_err(|_| anyhow!("STOMP disconnect took over {REPLY_TIMEOUT:?}"))?
}

/// A MESSAGE frame, owned and with its headers in a map (STOMP 1.2: the first occurrence of
/// a repeated header wins).
#[derive(Debug, Clone)]
pub struct StompMessage {
    /// The destination it was sent to, e.g. `/queue/transit.TG.in`.
    pub destination: String,
    /// The broker's message id (`ID:...`), the JMSMessageID.
    pub message_id: String,
    /// The value to ACK or NACK it with; present for `client` and `client-individual`.
    pub ack: Option<String>,
    /// Every header of the frame, broker-set ones included.
    pub headers: BTreeMap<String, String>,
    /// The body.
    pub body: Vec<u8>,
}

impl StompMessage {
    /// One header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }

    /// The body as UTF-8 text.
    pub fn text(&self) -> anyhow::Result<&str> {
        std::str::from_utf8(&self.body).context("message body is not UTF-8")
    }

    /// The value to acknowledge it with, or an error when the subscription was `auto`.
    pub fn ack_id(&self) -> anyhow::Result<&str> {
        self.ack
            .as_deref()
            .ok_or_else(|| anyhow!("message {} has no ack header", self.message_id))
    }
}

/// Waits (bounded) for the next frame; an ERROR frame, a closed connection or the timeout
/// become errors.
pub async fn next_frame(
    conn: &mut ClientTransport,
    wait: Duration,
) -> anyhow::Result<Message<FromServer>> {
    let frame = tokio::time::timeout(wait, conn.next())
        .await
        .map_err(|_| anyhow!("no frame from the broker within {wait:?}"))?
        .ok_or_else(|| anyhow!("the broker closed the connection"))??;
    if let FromServer::Error { message, body } = &frame.content {
        bail!(
            "broker ERROR: {} {}",
            message.as_deref().unwrap_or_default(),
            String::from_utf8_lossy(body.as_deref().unwrap_or_default())
        );
    }
    Ok(frame)
}

/// Waits (bounded) for the next MESSAGE frame; a RECEIPT arriving meanwhile is an error,
/// since receipts are awaited where they were asked for.
pub async fn next_message(
    conn: &mut ClientTransport,
    wait: Duration,
) -> anyhow::Result<StompMessage> {
    let frame = next_frame(conn, wait).await?;
    match frame.content {
        FromServer::Message {
            destination,
            message_id,
            ack,
            headers,
            body,
            ..
        } => {
            let mut map = BTreeMap::new();
            for (name, value) in headers {
                map.entry(name).or_insert(value);
            }
            Ok(StompMessage {
                destination,
                message_id,
                ack,
                headers: map,
                body: body.unwrap_or_default(),
            })
        }
        other => bail!("expected a MESSAGE, got {other:?}"),
    }
}

/// Listens for `wait` and fails if a MESSAGE arrives: for checking that a queue is empty.
pub async fn expect_no_message(conn: &mut ClientTransport, wait: Duration) -> anyhow::Result<()> {
    match tokio::time::timeout(wait, conn.next()).await {
        Err(_) => Ok(()),
        Ok(None) => bail!("the broker closed the connection"),
        Ok(Some(frame)) => bail!("expected silence, got {:?}", frame?.content),
    }
}

/// Sends a frame with a `receipt` header and waits (bounded) for the broker's RECEIPT, so
/// the frame is known to be processed: for a persistent SEND that means stored.
///
/// Use it on a connection without subscriptions: a MESSAGE arriving while waiting is an
/// error rather than silently dropped.
pub async fn send_with_receipt(
    conn: &mut ClientTransport,
    mut frame: Message<ToServer>,
) -> anyhow::Result<()> {
    let receipt = format!("r-{}", uuid::Uuid::new_v4().simple());
    frame
        .extra_headers
        .push((b"receipt".to_vec(), receipt.clone().into_bytes()));
    tokio::time::timeout(REPLY_TIMEOUT, conn.send(frame))
        .await
        .map_err(|_| anyhow!("writing a frame took over {REPLY_TIMEOUT:?}"))??;
    let reply = next_frame(conn, REPLY_TIMEOUT)
        .await
        .context("waiting for a RECEIPT")?;
    match reply.content {
        FromServer::Receipt { receipt_id } if receipt_id == receipt => Ok(()),
        other => bail!("expected RECEIPT {receipt}, got {other:?}"),
    }
}

/// Sends a persistent text message (no `content-length`, so JMS consumers get a
/// TextMessage) with the given extra headers and waits for the broker to have stored it.
pub async fn send_text(
    conn: &mut ClientTransport,
    queue: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> anyhow::Result<()> {
    let mut all: Vec<(String, String)> = vec![("persistent".into(), "true".into())];
    all.extend(
        headers
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    let frame = ToServer::Send {
        destination: stomp_queue(queue),
        transaction: None,
        headers: Some(all),
        body: Some(body.as_bytes().to_vec()),
    }
    .into();
    send_with_receipt(conn, frame).await
}

/// Subscribes to a queue with `client-individual` acknowledgement (each message is acked
/// or nacked on its own) and waits for the broker to have registered the subscription.
pub async fn subscribe_individual(
    conn: &mut ClientTransport,
    queue: &str,
    id: &str,
) -> anyhow::Result<()> {
    let frame = Subscriber::builder()
        .destination(stomp_queue(queue))
        .id(id)
        .ack(AckMode::ClientIndividual)
        .subscribe();
    send_with_receipt(conn, frame).await
}

/// Acknowledges one message and waits for the broker to have processed the ACK.
pub async fn ack(conn: &mut ClientTransport, message: &StompMessage) -> anyhow::Result<()> {
    let frame = ToServer::Ack {
        id: message.ack_id()?.to_owned(),
        transaction: None,
    }
    .into();
    send_with_receipt(conn, frame).await
}

/// Rejects one message (STOMP NACK) and waits for the broker to have processed it.
pub async fn nack(conn: &mut ClientTransport, message: &StompMessage) -> anyhow::Result<()> {
    let frame = ToServer::Nack {
        id: message.ack_id()?.to_owned(),
        transaction: None,
    }
    .into();
    send_with_receipt(conn, frame).await
}

/// What the Java JMS probe (`ops/jms/JmsProbe.java`) printed for a received message.
#[derive(Debug, Clone, Default)]
pub struct JmsReceived {
    /// `TextMessage`, `BytesMessage`, ...
    pub message_type: String,
    /// `JMSMessageID`, `JMSCorrelationID`, `JMSType`, `JMSDeliveryMode`, `JMSRedelivered`.
    pub headers: BTreeMap<String, String>,
    /// The JMS properties, as text.
    pub properties: BTreeMap<String, String>,
    /// The Java type of each property (`String`, `Integer`, ...).
    pub property_types: BTreeMap<String, String>,
    /// The body (the text of a TextMessage, the bytes as UTF-8 otherwise).
    pub body: String,
}

/// Runs `ops/jms/run.sh` with the given arguments against the broker, connecting with these
/// credentials (or anonymously), and returns its standard output; a non-zero exit becomes an
/// error carrying both output streams. The password goes through the environment, never the
/// command line.
pub async fn run_jms_probe(
    addrs: &BrokerAddrs,
    credentials: Option<&Credentials>,
    args: &[&str],
) -> anyhow::Result<String> {
    let script = repo_root().join("ops/jms/run.sh");
    let mut command = tokio::process::Command::new("bash");
    command
        .arg(&script)
        .args(args)
        .env("JMS_BROKER_URL", addrs.openwire_url())
        .env_remove("JMS_BROKER_USER")
        .env_remove("JMS_BROKER_PASSWORD")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    if let Some(credentials) = credentials {
        command
            .env("JMS_BROKER_USER", &credentials.login)
            .env("JMS_BROKER_PASSWORD", credentials.passcode());
    }
    let output = tokio::time::timeout(JMS_PROBE_TIMEOUT, command.output())
        .await
        .map_err(|_| anyhow!("JMS probe {args:?} took over {JMS_PROBE_TIMEOUT:?}"))?
        .with_context(|| format!("running {}", script.display()))?;
    let stdout = String::from_utf8(output.stdout).context("JMS probe output is not UTF-8")?;
    if !output.status.success() {
        bail!(
            "JMS probe {args:?} failed ({}):\n--- stdout\n{stdout}\n--- stderr\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(stdout)
}

/// Receives one message over JMS (OpenWire) from `queue` as broker user `login`, waiting at
/// most `wait`.
pub async fn jms_receive(
    addrs: &BrokerAddrs,
    login: &str,
    queue: &str,
    wait: Duration,
) -> anyhow::Result<JmsReceived> {
    let wait_ms = wait.as_millis().to_string();
    let credentials = Credentials::of(login)?;
    let stdout = run_jms_probe(addrs, Some(&credentials), &["receive", queue, &wait_ms]).await?;
    parse_jms_received(&stdout)
}

/// Sends a persistent TextMessage over JMS (OpenWire) as broker user `login`. `properties`
/// named `JMSCorrelationID` or `JMSType` set those headers; the others become String
/// properties. Returns the JMSMessageID.
pub async fn jms_send(
    addrs: &BrokerAddrs,
    login: &str,
    queue: &str,
    body: &str,
    properties: &[(&str, &str)],
) -> anyhow::Result<String> {
    let pairs: Vec<String> = properties.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let mut args = vec!["send", queue, body];
    args.extend(pairs.iter().map(String::as_str));
    let credentials = Credentials::of(login)?;
    let stdout = run_jms_probe(addrs, Some(&credentials), &args).await?;
    stdout
        .lines()
        .find_map(|line| line.strip_prefix("JMSMessageID="))
        .map(str::to_owned)
        .ok_or_else(|| anyhow!("JMS probe printed no JMSMessageID: {stdout}"))
}

/// Parses the probe's `receive` output (format in `ops/jms/JmsProbe.java`).
pub fn parse_jms_received(stdout: &str) -> anyhow::Result<JmsReceived> {
    let (fields, body) = stdout
        .split_once("--body--\n")
        .ok_or_else(|| anyhow!("JMS probe output has no body marker: {stdout}"))?;
    let mut received = JmsReceived {
        body: body.to_owned(),
        ..JmsReceived::default()
    };
    for line in fields.lines() {
        let (name, value) = line
            .split_once('=')
            .ok_or_else(|| anyhow!("unexpected JMS probe line {line:?}"))?;
        let value = unescape_probe_value(value);
        if name == "type" {
            received.message_type = value;
        } else if let Some(property) = name.strip_prefix("property.") {
            received.properties.insert(property.to_owned(), value);
        } else if let Some(property) = name.strip_prefix("propertyType.") {
            received.property_types.insert(property.to_owned(), value);
        } else {
            received.headers.insert(name.to_owned(), value);
        }
    }
    Ok(received)
}

/// Reverses the probe's escaping of `\\` and `\n` in header and property values.
fn unescape_probe_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('n') => out.push('\n'),
                Some(other) => out.push(other),
                None => out.push('\\'),
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_output_is_parsed_with_escapes_and_a_multiline_body() {
        let stdout = "type=TextMessage\nJMSType=IE015\nproperty.note=a\\nb\\\\c\n\
                      propertyType.note=String\n--body--\n<x>\nLomé</x>";
        let parsed = parse_jms_received(stdout).expect("parse");
        assert_eq!(parsed.message_type, "TextMessage");
        assert_eq!(parsed.headers["JMSType"], "IE015");
        assert_eq!(parsed.properties["note"], "a\nb\\c");
        assert_eq!(parsed.property_types["note"], "String");
        assert_eq!(parsed.body, "<x>\nLomé</x>");
    }

    #[test]
    fn unique_queues_keep_their_base_and_differ() {
        let a = unique_queue("transit.TG.in");
        let b = unique_queue("transit.TG.in");
        assert!(a.starts_with("transit.TG.in.test-"));
        assert_ne!(a, b);
    }

    #[test]
    fn maximum_redeliveries_matches_the_broker_config() {
        let config = std::fs::read_to_string(repo_root().join("ops/activemq/activemq.xml"))
            .expect("read activemq.xml");
        let setting = format!("maximumRedeliveries=\"{MAXIMUM_REDELIVERIES}\"");
        assert_eq!(
            config.matches("maximumRedeliveries=").count(),
            1,
            "one policy"
        );
        assert!(
            config.contains(&setting),
            "activemq.xml should say {setting}"
        );
    }

    #[test]
    fn every_broker_user_has_a_development_password_and_debug_hides_it() {
        for login in ["admin", "ledger", "tg", "bf", "ne", "ci"] {
            let credentials = Credentials::of(login).expect("credentials");
            assert!(!credentials.passcode().is_empty(), "{login}");
            assert!(
                !format!("{credentials:?}").contains(credentials.passcode()),
                "Debug shows the password of {login}"
            );
        }
        assert!(Credentials::of("nobody").is_err());
    }

    /// Each country of the key registry has a broker user, in its own group, with the four
    /// grants of a country (inbound queue: write; office, error and dead-letter queues: read,
    /// and write for the broker's redelivery) and nothing else written for it: adding a country
    /// to one place and not the other fails here.
    #[test]
    fn every_registry_country_has_a_broker_user_and_its_grants() {
        let registry = std::fs::read_to_string(repo_root().join("ops/keys/registry.toml"))
            .expect("read registry.toml");
        let config = std::fs::read_to_string(repo_root().join("ops/activemq/activemq.xml"))
            .expect("read activemq.xml");
        let countries: std::collections::BTreeSet<&str> = registry
            .lines()
            .filter_map(|l| l.trim().strip_prefix("country = \""))
            .filter_map(|l| l.strip_suffix('"'))
            .collect();
        assert!(countries.len() >= 4, "{countries:?}");
        for cc in countries {
            let login = cc.to_ascii_lowercase();
            let group = format!("country-{cc}");
            let user = format!(
                "<authenticationUser username=\"{login}\" password=\"${{transit.password.{login}}}\" groups=\"{group}\"/>"
            );
            assert!(config.contains(&user), "no broker user for {cc}: {user}");
            Credentials::of(&login).expect("a development password");
            for entry in [
                format!("queue=\"transit.{cc}.in.>\" write=\"{group}\" admin=\"{group}\""),
                format!("queue=\"transit.{cc}.*.out.>\" read=\"{group}\" write=\"{group}\" admin=\"{group}\""),
                format!("queue=\"transit.{cc}.error.>\" read=\"{group}\" write=\"{group}\" admin=\"{group}\""),
                format!("queue=\"DLQ.transit.{cc}.>\" read=\"{group}\" write=\"{group}\" admin=\"{group}\""),
            ] {
                assert!(config.contains(&entry), "{cc}: missing {entry}");
            }
            assert_eq!(
                config.matches(&format!("\"{group}\"")).count(),
                12,
                "{group}: its user and its four entries, nothing more"
            );
        }
    }

    #[test]
    fn repo_root_holds_the_broker_script() {
        assert!(repo_root().join("ops/activemq.sh").is_file());
    }
}
