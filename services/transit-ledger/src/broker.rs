//! The ledger's side of the ActiveMQ interconnection: queue names (see `docs/broker.md`), the
//! STOMP 1.2 connection helpers the gateway and the fan-out dispatcher share, and their
//! settings. Every wait on the broker is bounded.

use std::net::SocketAddr;
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

/// Where the broker is and which queues the ledger serves.
#[derive(Clone, Debug)]
pub struct BrokerConfig {
    /// The broker's STOMP address.
    pub stomp: SocketAddr,
    /// Countries whose inbound queues the gateway consumes.
    pub countries: Vec<CountryCode>,
    /// Appended to every queue name (tests use `.test-<uuid>`; empty in production).
    pub queue_suffix: String,
    /// Messages the broker may hand the gateway before they are acknowledged.
    pub prefetch: u32,
    /// Parallel processing lanes; messages from one office always share a lane, so each
    /// office's messages are recorded in the order it sent them.
    pub lanes: usize,
}

impl BrokerConfig {
    /// Defaults for a broker at `stomp` serving `countries`.
    pub fn new(stomp: SocketAddr, countries: Vec<CountryCode>) -> Self {
        Self {
            stomp,
            countries,
            queue_suffix: String::new(),
            prefetch: 512,
            lanes: 64,
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

/// Opens a STOMP 1.2 connection.
pub async fn connect(addr: SocketAddr) -> Result<ClientTransport, BrokerError> {
    let connect = Connector::builder()
        .server(addr)
        // ActiveMQ has no virtual hosts; STOMP 1.2 requires the header all the same.
        .virtualhost("localhost")
        .max_frame_size(STOMP_FRAME_BYTES_MAX)
        .heartbeat(STOMP_HEARTBEAT_MS, STOMP_HEARTBEAT_MS)
        .connect();
    tokio::time::timeout(BROKER_REPLY_TIMEOUT, connect)
        .await
        .map_err(|_| BrokerError::Timeout(BROKER_REPLY_TIMEOUT))?
        .map_err(|e| BrokerError::Connection(format!("{addr}: {e}")))
}

/// A connection used only to send, each frame confirmed by a RECEIPT: for a persistent
/// message that means the broker has stored it.
pub struct Publisher {
    conn: ClientTransport,
    receipts: u64,
}

impl Publisher {
    /// Connects a publisher.
    pub async fn connect(addr: SocketAddr) -> Result<Self, BrokerError> {
        Ok(Self {
            conn: connect(addr).await?,
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
