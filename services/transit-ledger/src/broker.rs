//! The ledger's side of the ActiveMQ interconnection: queue names (see `docs/broker.md`), the
//! STOMP 1.2 connection helpers the gateway and the fan-out dispatcher share, their settings,
//! and the credentials they connect with (the broker refuses anonymous connections; the ledger
//! is user `ledger`, see `ops/activemq/activemq.xml`). Every wait on the broker is bounded.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use async_stomp::client::{ClientTransport, Connector, Subscriber};
use async_stomp::{AckMode, FromServer, Message, ToServer};
use futures::{SinkExt as _, StreamExt as _};
use transit_contract::ids::{CountryCode, OfficeCode};

/// Largest STOMP frame either side accepts (the broker's `transport.maxFrameSize`).
pub const STOMP_FRAME_BYTES_MAX: usize = 1024 * 1024;
/// Heart-beat interval offered to and asked of the broker.
pub const STOMP_HEARTBEAT_MS: u32 = 10_000;
/// Longest wait for a frame the broker owes (CONNECTED, RECEIPT).
pub const BROKER_REPLY_TIMEOUT: Duration = Duration::from_secs(15);
/// A subscription with no frame for this long is presumed dead (a cut network) and the
/// connection is made again.
pub const BROKER_IDLE_TIMEOUT: Duration = Duration::from_secs(45);
/// Longest pause between two reconnection attempts.
pub const RECONNECT_BACKOFF_MAX: Duration = Duration::from_secs(5);
/// First pause after a lost connection.
pub const RECONNECT_BACKOFF_MIN: Duration = Duration::from_millis(100);

/// The ledger's broker user (`serve --broker-user` changes it).
pub const BROKER_USER_DEFAULT: &str = "ledger";
/// The development credentials file, relative to the repository root: the passwords
/// `ops/activemq.sh` gives the broker unless `ACTIVEMQ_CREDENTIALS_FILE` names another file.
/// Committed, hence for development and tests only.
pub const DEV_CREDENTIALS_PATH: &str = "ops/activemq/credentials.dev.properties";
/// The environment variable that may hold the ledger's broker password.
pub const PASSWORD_ENV: &str = "TRANSIT_BROKER_PASSWORD";
/// Largest credentials or password file read (a password file holds one short line).
pub const CREDENTIALS_FILE_BYTES_MAX: u64 = 64 * 1024;

/// A broker password. It is only ever written into a CONNECT frame: its `Debug` is redacted and
/// it has no `Display`, so it cannot end up in a log line by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct Passcode(String);

impl Passcode {
    /// Wraps a password.
    pub fn new(passcode: impl Into<String>) -> Self {
        Self(passcode.into())
    }

    /// The password itself, for the CONNECT frame.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Passcode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Passcode(<redacted>)")
    }
}

/// Who the ledger is to the broker: the STOMP `login` and `passcode` of every CONNECT.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BrokerCredentials {
    /// The broker user, `ledger` unless configured otherwise.
    pub login: String,
    /// Its password.
    pub passcode: Passcode,
}

/// Where the password of [`BrokerCredentials::resolve`] came from (for the start-up log; the
/// password itself is never logged).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PasswordSource {
    /// A password file (`--broker-password-file`).
    File(PathBuf),
    /// The environment ([`PASSWORD_ENV`]).
    Env,
    /// The development credentials file ([`DEV_CREDENTIALS_PATH`]).
    DevCredentials(PathBuf),
}

/// Why no broker credentials could be had. No variant carries a password or a line of a
/// credentials file, only where to look.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    /// A file could not be read.
    #[error("broker credentials: cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A file is larger than [`CREDENTIALS_FILE_BYTES_MAX`].
    #[error("broker credentials: {0} is larger than {CREDENTIALS_FILE_BYTES_MAX} bytes")]
    TooLarge(PathBuf),
    /// A password file, or the environment variable, is empty.
    #[error("broker credentials: the password from {0} is empty")]
    Empty(String),
    /// A credentials file has a line that is neither a comment nor `key=value`, or uses escapes.
    #[error("broker credentials: {path} line {line} is not `transit.password.<user>=<password>` (no backslash escapes)")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// The line number (1-based); the line itself may hold a password, so it is not shown.
        line: usize,
    },
    /// A credentials file has no password for the user.
    #[error("broker credentials: {path} has no `transit.password.{login}` line")]
    NoSuchUser {
        /// The file.
        path: PathBuf,
        /// The user.
        login: String,
    },
    /// Both a password file and the environment variable were given.
    #[error("broker credentials: give the password either in a file (--broker-password-file) or in {PASSWORD_ENV}, not both")]
    Ambiguous,
    /// Neither was given and the development credentials are not there.
    #[error("broker credentials: no password for broker user {login}: set {PASSWORD_ENV} or pass --broker-password-file FILE (the development credentials {dev} are not there; run from the repository root to use them)")]
    Missing {
        /// The user.
        login: String,
        /// Where the development credentials were looked for.
        dev: PathBuf,
    },
}

fn read_bounded(path: &Path) -> Result<String, CredentialsError> {
    let read = |source| CredentialsError::Read {
        path: path.to_owned(),
        source,
    };
    let len = std::fs::metadata(path).map_err(read)?.len();
    if len > CREDENTIALS_FILE_BYTES_MAX {
        return Err(CredentialsError::TooLarge(path.to_owned()));
    }
    std::fs::read_to_string(path).map_err(read)
}

impl BrokerCredentials {
    /// Credentials from parts.
    pub fn new(login: impl Into<String>, passcode: Passcode) -> Self {
        Self {
            login: login.into(),
            passcode,
        }
    }

    /// `login`'s password from a credentials file in the broker's format (`transit.password.
    /// <user>=<password>` lines, `#` or `!` comments; the file `ops/activemq.sh` gives the
    /// broker), e.g. [`DEV_CREDENTIALS_PATH`].
    pub fn from_credentials_file(path: &Path, login: &str) -> Result<Self, CredentialsError> {
        let text = read_bounded(path)?;
        let wanted = format!("transit.password.{login}");
        for (index, line) in text.lines().enumerate() {
            let line = line.trim_start();
            if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
                continue;
            }
            let malformed = || CredentialsError::Malformed {
                path: path.to_owned(),
                line: index + 1,
            };
            // Java properties would read escapes; refusing them keeps both readers in step.
            if line.contains('\\') {
                return Err(malformed());
            }
            let (key, value) = line.split_once('=').ok_or_else(malformed)?;
            if key.trim_end() == wanted {
                let value = value.trim();
                if value.is_empty() {
                    return Err(CredentialsError::Empty(format!("{}", path.display())));
                }
                return Ok(Self::new(login, Passcode::new(value)));
            }
        }
        Err(CredentialsError::NoSuchUser {
            path: path.to_owned(),
            login: login.to_owned(),
        })
    }

    /// A password file: the whole file is the password, less one trailing line break.
    pub fn from_password_file(login: &str, path: &Path) -> Result<Self, CredentialsError> {
        let text = read_bounded(path)?;
        let password = text
            .strip_suffix('\n')
            .map(|t| t.strip_suffix('\r').unwrap_or(t))
            .unwrap_or(&text);
        if password.is_empty() {
            return Err(CredentialsError::Empty(format!("{}", path.display())));
        }
        Ok(Self::new(login, Passcode::new(password)))
    }

    /// The credentials `serve` connects with: the password from `password_file`, else from
    /// `env_password` (the value of [`PASSWORD_ENV`]), else `login`'s line in the development
    /// credentials `dev_credentials`, so that a development setup started with
    /// `ops/activemq.sh start` needs no configuration.
    pub fn resolve(
        login: &str,
        password_file: Option<&Path>,
        env_password: Option<String>,
        dev_credentials: &Path,
    ) -> Result<(Self, PasswordSource), CredentialsError> {
        match (password_file, env_password) {
            (Some(_), Some(_)) => Err(CredentialsError::Ambiguous),
            (Some(file), None) => Ok((
                Self::from_password_file(login, file)?,
                PasswordSource::File(file.to_owned()),
            )),
            (None, Some(password)) => {
                if password.is_empty() {
                    return Err(CredentialsError::Empty(PASSWORD_ENV.to_owned()));
                }
                Ok((
                    Self::new(login, Passcode::new(password)),
                    PasswordSource::Env,
                ))
            }
            (None, None) if dev_credentials.exists() => Ok((
                Self::from_credentials_file(dev_credentials, login)?,
                PasswordSource::DevCredentials(dev_credentials.to_owned()),
            )),
            (None, None) => Err(CredentialsError::Missing {
                login: login.to_owned(),
                dev: dev_credentials.to_owned(),
            }),
        }
    }
}

/// Where the broker is, who the ledger is to it, and which queues the ledger serves.
#[derive(Clone, Debug)]
pub struct BrokerConfig {
    /// The broker's STOMP address.
    pub stomp: SocketAddr,
    /// The user and password the gateway and the dispatcher connect with.
    pub credentials: BrokerCredentials,
    /// Countries whose inbound queues the gateway consumes.
    pub countries: Vec<CountryCode>,
    /// Appended to every queue name (tests use `.test-<uuid>`; empty in production).
    pub queue_suffix: String,
    /// Messages the broker may hand the gateway before they are acknowledged.
    pub prefetch: u32,
    /// Parallel processing lanes; messages from one office always share a lane, so each
    /// office's messages are recorded in the order it sent them.
    pub lanes: usize,
    /// What the gateway and the dispatcher count; records nothing unless `serve` sets it.
    pub metrics: crate::metrics::BrokerMetrics,
}

impl BrokerConfig {
    /// Defaults for a broker at `stomp` serving `countries`, connecting with `credentials`.
    pub fn new(
        stomp: SocketAddr,
        countries: Vec<CountryCode>,
        credentials: BrokerCredentials,
    ) -> Self {
        Self {
            stomp,
            credentials,
            countries,
            queue_suffix: String::new(),
            prefetch: 512,
            lanes: 64,
            metrics: crate::metrics::BrokerMetrics::default(),
        }
    }

    /// A country's inbound queue: `transit.<CC>.in`.
    pub fn inbound_queue(&self, country: &CountryCode) -> String {
        format!("transit.{country}.in{}", self.queue_suffix)
    }

    /// A country's error/reply queue: `transit.<CC>.error`.
    pub fn error_queue(&self, country: &CountryCode) -> String {
        format!("transit.{country}.error{}", self.queue_suffix)
    }

    /// An office's outbound queue: `transit.<CC>.<OFFICE>.out`.
    pub fn office_queue(&self, office: &OfficeCode) -> String {
        format!(
            "{}{}",
            transit_rules::fanout::office_queue(office),
            self.queue_suffix
        )
    }
}

/// The dead-letter queue of a queue, as the broker's per-queue policy names it.
pub fn dead_letter_queue(queue: &str) -> String {
    format!("DLQ.{queue}")
}

/// The STOMP destination of a queue.
pub fn destination(queue: &str) -> String {
    format!("/queue/{queue}")
}

/// Broker failures: all of them end the session, which is then made again.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// Connecting, reading or writing failed.
    #[error("broker connection: {0}")]
    Connection(String),
    /// The broker did not answer in time.
    #[error("broker did not answer within {0:?}")]
    Timeout(Duration),
    /// The broker sent an ERROR frame.
    #[error("broker error: {0}")]
    Refused(String),
}

/// Opens a STOMP 1.2 connection as `credentials`. A refused login (unknown user, wrong
/// password) fails like any other connection failure: the broker answers CONNECT with an ERROR
/// frame and closes.
pub async fn connect(
    addr: SocketAddr,
    credentials: &BrokerCredentials,
) -> Result<ClientTransport, BrokerError> {
    let connect = Connector::builder()
        .server(addr)
        // ActiveMQ has no virtual hosts; STOMP 1.2 requires the header all the same.
        .virtualhost("localhost")
        .login(credentials.login.clone())
        .passcode(credentials.passcode.expose().to_owned())
        .max_frame_size(STOMP_FRAME_BYTES_MAX)
        .heartbeat(STOMP_HEARTBEAT_MS, STOMP_HEARTBEAT_MS)
        .connect();
    tokio::time::timeout(BROKER_REPLY_TIMEOUT, connect)
        .await
        .map_err(|_| BrokerError::Timeout(BROKER_REPLY_TIMEOUT))?
        .map_err(|e| {
            let e = e.to_string();
            match refusal_message(&e) {
                // Typically "User name [ledger] or password is invalid.": worth a clear line.
                Some(reason) => BrokerError::Refused(format!(
                    "{addr} refused the connection as {}: {reason}",
                    credentials.login
                )),
                None => BrokerError::Connection(format!("{addr} as {}: {e}", credentials.login)),
            }
        })
}

/// The broker's reason in a refused handshake. `async-stomp` reports an ERROR frame answering
/// CONNECT only as the frame's debug text (`unexpected reply: ... message: Some("...")`, with
/// the headers as byte arrays); this takes the `message` header's text out of it.
fn refusal_message(error: &str) -> Option<&str> {
    let start = error.find("message: Some(\"")? + "message: Some(\"".len();
    let len = error[start..].find("\")")?;
    Some(&error[start..start + len])
}

/// A connection used only to send, each frame confirmed by a RECEIPT: for a persistent
/// message that means the broker has stored it.
pub struct Publisher {
    conn: ClientTransport,
    receipts: u64,
}

impl Publisher {
    /// Connects a publisher as `credentials`.
    pub async fn connect(
        addr: SocketAddr,
        credentials: &BrokerCredentials,
    ) -> Result<Self, BrokerError> {
        Ok(Self {
            conn: connect(addr, credentials).await?,
            receipts: 0,
        })
    }

    /// Sends a persistent text message (no `content-length`, so JMS sees a TextMessage) and
    /// waits until the broker has stored it.
    pub async fn send_text(
        &mut self,
        queue: &str,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    ) -> Result<(), BrokerError> {
        self.send_batch(vec![OutgoingText {
            queue: queue.to_owned(),
            headers,
            body,
        }])
        .await
    }

    /// Sends several persistent text messages back to back and waits until the broker has
    /// stored them all: one round trip's wait for the batch instead of one per message.
    pub async fn send_batch(&mut self, messages: Vec<OutgoingText>) -> Result<(), BrokerError> {
        let Some(last) = messages.len().checked_sub(1) else {
            return Ok(());
        };
        let mut receipt = String::new();
        for (i, message) in messages.into_iter().enumerate() {
            let mut all = vec![("persistent".to_owned(), "true".to_owned())];
            all.extend(
                message
                    .headers
                    .into_iter()
                    .map(|(k, v)| (k, header_value(&v))),
            );
            let mut frame: Message<ToServer> = ToServer::Send {
                destination: destination(&message.queue),
                transaction: None,
                headers: Some(all),
                body: Some(message.body),
            }
            .into();
            if i == last {
                // The broker answers frames in order, so the last receipt covers the batch.
                self.receipts += 1;
                receipt = format!("p-{}", self.receipts);
                frame
                    .extra_headers
                    .push((b"receipt".to_vec(), receipt.clone().into_bytes()));
            }
            let feed = if i == last {
                self.conn.send(frame).await
            } else {
                self.conn.feed(frame).await
            };
            feed.map_err(|e| BrokerError::Connection(e.to_string()))?;
        }
        loop {
            let frame = tokio::time::timeout(BROKER_REPLY_TIMEOUT, self.conn.next())
                .await
                .map_err(|_| BrokerError::Timeout(BROKER_REPLY_TIMEOUT))?
                .ok_or_else(|| BrokerError::Connection("closed by the broker".to_owned()))?
                .map_err(|e| BrokerError::Connection(e.to_string()))?;
            match frame.content {
                FromServer::Receipt { receipt_id } if receipt_id == receipt => return Ok(()),
                FromServer::Receipt { .. } => continue,
                FromServer::Error { message, body } => {
                    return Err(BrokerError::Refused(format!(
                        "{} {}",
                        message.unwrap_or_default(),
                        String::from_utf8_lossy(&body.unwrap_or_default())
                    )))
                }
                other => {
                    return Err(BrokerError::Connection(format!(
                        "unexpected frame on a publishing connection: {other:?}"
                    )))
                }
            }
        }
    }
}

/// A text message to publish.
#[derive(Clone, Debug)]
pub struct OutgoingText {
    /// The queue (without `/queue/`).
    pub queue: String,
    /// Extra headers (JMS properties).
    pub headers: Vec<(String, String)>,
    /// The body, UTF-8 text.
    pub body: Vec<u8>,
}

/// A header value made safe to carry: one line, bounded length.
pub fn header_value(value: &str) -> String {
    const HEADER_VALUE_CHARS_MAX: usize = 512;
    value
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(HEADER_VALUE_CHARS_MAX)
        .collect()
}

/// Subscribes `conn` to a queue with `client-individual` acknowledgement and a bounded
/// prefetch (ActiveMQ's `activemq.prefetchSize`).
pub async fn subscribe(
    conn: &mut ClientTransport,
    queue: &str,
    id: &str,
    prefetch: u32,
) -> Result<(), BrokerError> {
    let mut frame = Subscriber::builder()
        .destination(destination(queue))
        .id(id)
        .ack(AckMode::ClientIndividual)
        .subscribe();
    frame.extra_headers.push((
        b"activemq.prefetchSize".to_vec(),
        prefetch.to_string().into_bytes(),
    ));
    tokio::time::timeout(BROKER_REPLY_TIMEOUT, conn.send(frame))
        .await
        .map_err(|_| BrokerError::Timeout(BROKER_REPLY_TIMEOUT))?
        .map_err(|e| BrokerError::Connection(e.to_string()))
}

/// The acknowledgement frame for a received message.
pub fn ack_frame(ack_id: String) -> Message<ToServer> {
    ToServer::Ack {
        id: ack_id,
        transaction: None,
    }
    .into()
}

/// Doubles a back-off pause up to [`RECONNECT_BACKOFF_MAX`].
pub fn next_backoff(current: Duration) -> Duration {
    (current * 2).min(RECONNECT_BACKOFF_MAX)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn file(dir: &tempfile::TempDir, name: &str, text: &str) -> PathBuf {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn a_passcode_never_shows_in_debug_output() {
        let credentials = BrokerCredentials::new("ledger", Passcode::new("s3cret-value"));
        let config = BrokerConfig::new(
            "127.0.0.1:61613".parse().unwrap(),
            vec!["TG".parse().unwrap()],
            credentials,
        );
        let shown = format!("{config:?} {:#?}", config.credentials);
        assert!(!shown.contains("s3cret-value"), "{shown}");
        assert!(
            shown.contains("<redacted>") && shown.contains("ledger"),
            "{shown}"
        );
        assert_eq!(config.credentials.passcode.expose(), "s3cret-value");
    }

    #[test]
    fn a_refused_handshake_is_reduced_to_the_brokers_reason() {
        let text = "unexpected reply: Some(Message { content: Error { message: Some(\"User name \
                    [ledger] or password is invalid.\"), body: Some([85]) }, extra_headers: [] })";
        assert_eq!(
            refusal_message(text),
            Some("User name [ledger] or password is invalid.")
        );
        assert_eq!(refusal_message("connection refused"), None);
    }

    #[test]
    fn a_credentials_file_gives_each_user_its_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = file(
            &dir,
            "c.properties",
            "# comment\n! another\n\ntransit.password.tg = a=b\ntransit.password.ledger=pw-1 \n",
        );
        let tg = BrokerCredentials::from_credentials_file(&path, "tg").unwrap();
        assert_eq!((tg.login.as_str(), tg.passcode.expose()), ("tg", "a=b"));
        let ledger = BrokerCredentials::from_credentials_file(&path, "ledger").unwrap();
        assert_eq!(ledger.passcode.expose(), "pw-1");
        let missing = BrokerCredentials::from_credentials_file(&path, "bf").unwrap_err();
        assert!(
            matches!(missing, CredentialsError::NoSuchUser { .. }),
            "{missing}"
        );
        // A malformed line is named by number, never shown (it may hold a password).
        let bad = file(
            &dir,
            "bad.properties",
            "transit.password.tg=x\nsecret-without-key\n",
        );
        let err = BrokerCredentials::from_credentials_file(&bad, "ledger").unwrap_err();
        assert!(
            matches!(err, CredentialsError::Malformed { line: 2, .. }),
            "{err}"
        );
        assert!(!err.to_string().contains("secret-without-key"), "{err}");
        let escaped = file(&dir, "esc.properties", "transit.password.ledger=a\\tb\n");
        assert!(BrokerCredentials::from_credentials_file(&escaped, "ledger").is_err());
    }

    #[test]
    fn the_development_credentials_serve_every_broker_user() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../..")
            .join(DEV_CREDENTIALS_PATH);
        for login in [BROKER_USER_DEFAULT, "admin", "tg", "bf", "ne", "ci"] {
            BrokerCredentials::from_credentials_file(&path, login).unwrap();
        }
    }

    #[test]
    fn the_password_comes_from_the_file_else_the_environment_else_the_development_credentials() {
        let dir = tempfile::tempdir().unwrap();
        let dev = file(&dir, "dev.properties", "transit.password.ledger=dev-pw\n");
        let pw_file = file(&dir, "pw", "from-file\n");
        let (c, source) = BrokerCredentials::resolve("ledger", Some(&pw_file), None, &dev).unwrap();
        assert_eq!(
            c.passcode.expose(),
            "from-file",
            "one trailing newline dropped"
        );
        assert_eq!(source, PasswordSource::File(pw_file.clone()));
        let (c, source) =
            BrokerCredentials::resolve("ledger", None, Some("from-env".into()), &dev).unwrap();
        assert_eq!(
            (c.passcode.expose(), source),
            ("from-env", PasswordSource::Env)
        );
        let (c, source) = BrokerCredentials::resolve("ledger", None, None, &dev).unwrap();
        assert_eq!(c.passcode.expose(), "dev-pw");
        assert_eq!(source, PasswordSource::DevCredentials(dev.clone()));
        // Another user than the default reads its own line of the development credentials.
        assert!(matches!(
            BrokerCredentials::resolve("tg", None, None, &dev),
            Err(CredentialsError::NoSuchUser { .. })
        ));
        assert!(matches!(
            BrokerCredentials::resolve("ledger", Some(&pw_file), Some("x".into()), &dev),
            Err(CredentialsError::Ambiguous)
        ));
        assert!(matches!(
            BrokerCredentials::resolve("ledger", None, Some(String::new()), &dev),
            Err(CredentialsError::Empty(_))
        ));
        let empty = file(&dir, "empty", "\n");
        assert!(matches!(
            BrokerCredentials::resolve("ledger", Some(&empty), None, &dev),
            Err(CredentialsError::Empty(_))
        ));
        let nowhere = dir.path().join("absent.properties");
        let err = BrokerCredentials::resolve("ledger", None, None, &nowhere).unwrap_err();
        assert!(matches!(err, CredentialsError::Missing { .. }), "{err}");
        assert!(err.to_string().contains(PASSWORD_ENV), "{err}");
    }
}
