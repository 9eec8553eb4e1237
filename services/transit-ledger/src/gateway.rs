//! The broker gateway: consumes each country's inbound queue (`client-individual` acks),
//! parses the XML through the same limits and the same command handler as HTTP, and
//! acknowledges a message only after its events are durable. A rejected message gets a
//! functional error on the country's error queue and is moved to the queue's dead-letter
//! queue with the reason in its headers, then acknowledged: nothing is dropped silently.
//! A redelivered message is a duplicate for the ledger, which answers with the original
//! outcome and appends nothing. A message's signature travels in its `transitSignature`
//! property ([`transit_auth::BROKER_PROPERTY`]) and is checked by the ledger like an HTTP
//! submission's; a refused signature is answered like any other refusal, with its code
//! (`MISSING_SIGNATURE`, `BAD_SIGNATURE`...). Lost connections are made again with bounded back-off;
//! unacknowledged messages are then redelivered by the broker.
//!
//! The gateway connects as the ledger's broker user ([`BrokerConfig::credentials`]). The broker
//! lets only country CC's user write `transit.<CC>.in` (`ops/activemq/activemq.xml`), so the
//! queue a message arrived on is its sender's authenticated country: a message claiming another
//! sender country than its queue's is refused (`VALIDATION`) before anything else is checked.
//!
//! Messages about one movement (one MRN; a guarantee registration: one GRN) share a processing
//! lane, so they are recorded in the order the broker delivered them, while other movements
//! proceed in parallel and share fsyncs through the log's group commit. A message that names
//! something not recorded yet (`UNKNOWN_MOVEMENT`, `GUARANTEE_UNKNOWN`) may only have overtaken
//! the message that records it in another lane: it is retried a few times before it is refused.

use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use async_stomp::FromServer;
use futures::{SinkExt as _, StreamExt as _};
use tokio::sync::{mpsc, watch, Mutex};
use transit_contract::ids::{CountryCode, MessageId, Timestamp};
use transit_contract::messages::{InboundMessage, Sender};
use transit_xml::{FunctionalError, Header, OutboundMessage, ReasonCode};

use crate::broker::{
    ack_frame, connect, dead_letter_queue, next_backoff, subscribe, BrokerConfig, BrokerError,
    Publisher, BROKER_IDLE_TIMEOUT, RECONNECT_BACKOFF_MIN,
};
use crate::ledger::{Ledger, SubmitError};
use transit_rules::RejectionCode;

/// Messages waiting in one lane.
const LANE_QUEUE_MAX: usize = 64;
/// How often a message naming an unknown movement or guarantee is tried again before it is
/// refused, and the pause between tries.
const EARLY_RETRIES_MAX: u32 = 5;
const EARLY_RETRY_PAUSE: std::time::Duration = std::time::Duration::from_millis(200);

/// One message taken from a queue.
struct Delivery {
    country: CountryCode,
    ack_id: String,
    body: Vec<u8>,
    /// The `transitSignature` property, if sent.
    signature: Option<String>,
    parsed: Result<InboundMessage, transit_xml::XmlError>,
}

/// Why a message is refused.
struct Refusal {
    code: ReasonCode,
    reason: String,
    element_path: Option<String>,
}

/// Runs the gateway until `shutdown` turns true.
pub async fn run(
    ledger: Arc<Ledger>,
    config: Arc<BrokerConfig>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut backoff = RECONNECT_BACKOFF_MIN;
    loop {
        let session = session(&ledger, &config, &mut shutdown);
        match session.await {
            Ok(()) => return,
            Err(err) => {
                tracing::warn!(error = %err, retry_in = ?backoff, "gateway session ended; reconnecting");
            }
        }
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            _ = shutdown.changed() => return,
        }
        backoff = next_backoff(backoff);
    }
}

async fn session(
    ledger: &Arc<Ledger>,
    config: &Arc<BrokerConfig>,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<(), BrokerError> {
    let mut conn = connect(config.stomp, &config.credentials).await?;
    let publisher = Arc::new(Mutex::new(
        Publisher::connect(config.stomp, &config.credentials).await?,
    ));
    let mut by_subscription = HashMap::new();
    for (i, country) in config.countries.iter().enumerate() {
        let id = format!("in-{i}");
        subscribe(
            &mut conn,
            &config.inbound_queue(country),
            &id,
            config.prefetch,
        )
        .await?;
        by_subscription.insert(id, country.clone());
    }
    tracing::info!(countries = ?config.countries, "gateway consuming");
    let (mut sink, mut stream) = conn.split();
    // Acknowledgements go back through one writer, in whatever order lanes finish.
    let (ack_tx, mut ack_rx) = mpsc::channel::<String>(config.prefetch as usize);
    let writer = tokio::spawn(async move {
        while let Some(ack_id) = ack_rx.recv().await {
            if let Err(e) = sink.send(ack_frame(ack_id)).await {
                return Err(BrokerError::Connection(e.to_string()));
            }
        }
        Ok(())
    });
    let (failed_tx, mut failed_rx) = mpsc::channel::<BrokerError>(1);
    let lanes: Vec<mpsc::Sender<Delivery>> = (0..config.lanes.max(1))
        .map(|_| {
            let (tx, rx) = mpsc::channel(LANE_QUEUE_MAX);
            tokio::spawn(lane(
                rx,
                ledger.clone(),
                config.clone(),
                publisher.clone(),
                ack_tx.clone(),
                failed_tx.clone(),
            ));
            tx
        })
        .collect();
    drop(ack_tx);
    let result = loop {
        let frame = tokio::select! {
            frame = tokio::time::timeout(BROKER_IDLE_TIMEOUT, stream.next()) => frame,
            Some(err) = failed_rx.recv() => break Err(err),
            _ = shutdown.changed() => break Ok(()),
        };
        let frame = match frame {
            Err(_) => break Err(BrokerError::Timeout(BROKER_IDLE_TIMEOUT)),
            Ok(None) => break Err(BrokerError::Connection("closed by the broker".to_owned())),
            Ok(Some(Err(e))) => break Err(BrokerError::Connection(e.to_string())),
            Ok(Some(Ok(frame))) => frame,
        };
        match frame.content {
            FromServer::Message {
                subscription,
                ack,
                headers,
                body,
                ..
            } => {
                let Some(country) = by_subscription.get(&subscription).cloned() else {
                    continue;
                };
                config.metrics.received(&country);
                let Some(ack_id) = ack else {
                    break Err(BrokerError::Connection(
                        "a message arrived without an ack id".to_owned(),
                    ));
                };
                let body = body.unwrap_or_default();
                // STOMP 1.2: of a repeated header, the first one counts.
                let signature = headers
                    .into_iter()
                    .find(|(name, _)| name == transit_auth::BROKER_PROPERTY)
                    .map(|(_, value)| value);
                let parsed = transit_xml::decode_inbound(&body);
                let lane_index = match &parsed {
                    Ok(m) => lane_of(m, lanes.len()),
                    Err(_) => 0,
                };
                let delivery = Delivery {
                    country,
                    ack_id,
                    body,
                    signature,
                    parsed,
                };
                if lanes[lane_index].send(delivery).await.is_err() {
                    break Err(BrokerError::Connection("a lane stopped".to_owned()));
                }
            }
            FromServer::Error { message, body } => {
                break Err(BrokerError::Refused(format!(
                    "{} {}",
                    message.unwrap_or_default(),
                    String::from_utf8_lossy(&body.unwrap_or_default())
                )))
            }
            _ => {}
        }
    };
    drop(lanes);
    writer.abort();
    result
}

fn lane_of(message: &InboundMessage, lanes: usize) -> usize {
    let mut h = DefaultHasher::new();
    match (message.mrn(), message.grn()) {
        (Some(mrn), _) => mrn.hash(&mut h),
        (None, Some(grn)) => grn.hash(&mut h),
        (None, None) => message.sender.office.hash(&mut h),
    }
    (h.finish() % lanes as u64) as usize
}

async fn lane(
    mut rx: mpsc::Receiver<Delivery>,
    ledger: Arc<Ledger>,
    config: Arc<BrokerConfig>,
    publisher: Arc<Mutex<Publisher>>,
    acks: mpsc::Sender<String>,
    failed: mpsc::Sender<BrokerError>,
) {
    while let Some(delivery) = rx.recv().await {
        match process(&delivery, &ledger, &config, &publisher).await {
            Ok(()) => {
                if acks.send(delivery.ack_id).await.is_err() {
                    return;
                }
            }
            Err(err) => {
                // Not acknowledged: the broker redelivers it once the session is made again.
                let _ = failed.try_send(err);
                return;
            }
        }
    }
}

/// Records one message, or refuses it with a reason. `Err` only for failures that a retry
/// may cure (broker or store unavailable): the message then stays unacknowledged.
async fn process(
    delivery: &Delivery,
    ledger: &Ledger,
    config: &BrokerConfig,
    publisher: &Mutex<Publisher>,
) -> Result<(), BrokerError> {
    let message = match &delivery.parsed {
        Ok(message) => message,
        Err(err) => {
            let code = if err.code() == "MALFORMED" {
                ReasonCode::Malformed
            } else {
                ReasonCode::Validation
            };
            let refusal = Refusal {
                code,
                reason: err.to_string(),
                element_path: err.path().map(str::to_owned),
            };
            return refuse(ledger, delivery, None, refusal, config, publisher).await;
        }
    };
    if message.sender.country != delivery.country {
        let refusal = Refusal {
            code: ReasonCode::Validation,
            reason: format!(
                "sender country {} does not match the queue of {}",
                message.sender.country, delivery.country
            ),
            element_path: Some(format!("/{}/Sender/Country", message.body.kind())),
        };
        return refuse(ledger, delivery, Some(message), refusal, config, publisher).await;
    }
    let signature = delivery.signature.as_deref();
    let mut submitted = ledger
        .submit_signed(message, &delivery.body, "application/xml", signature)
        .await;
    for _ in 0..EARLY_RETRIES_MAX {
        let early = matches!(
            &submitted,
            Err(SubmitError::Rejected(r))
                if matches!(r.code, RejectionCode::UnknownMovement | RejectionCode::GuaranteeUnknown)
        );
        if !early {
            break;
        }
        tokio::time::sleep(EARLY_RETRY_PAUSE).await;
        submitted = ledger
            .submit_signed(message, &delivery.body, "application/xml", signature)
            .await;
    }
    match submitted {
        Ok(outcome) => {
            config
                .metrics
                .recorded(&delivery.country, outcome.duplicate);
            tracing::debug!(message_id = %outcome.message_id, duplicate = outcome.duplicate, "recorded from the broker");
            Ok(())
        }
        Err(SubmitError::Rejected(r)) => {
            let code = r.code.as_str().parse().unwrap_or(ReasonCode::Validation);
            let refusal = Refusal {
                code,
                reason: r.message,
                element_path: None,
            };
            refuse(ledger, delivery, Some(message), refusal, config, publisher).await
        }
        Err(SubmitError::Signature(e)) => {
            // transit-xml's tests keep every signature code a reason code.
            let code = e.as_str().parse().unwrap_or(ReasonCode::Validation);
            let refusal = Refusal {
                code,
                reason: e.reason(),
                element_path: None,
            };
            refuse(ledger, delivery, Some(message), refusal, config, publisher).await
        }
        Err(SubmitError::Invalid(reason)) => {
            let refusal = Refusal {
                code: ReasonCode::Validation,
                reason,
                element_path: None,
            };
            refuse(ledger, delivery, Some(message), refusal, config, publisher).await
        }
        Err(SubmitError::Malformed(reason)) => {
            let refusal = Refusal {
                code: ReasonCode::Malformed,
                reason,
                element_path: None,
            };
            refuse(ledger, delivery, Some(message), refusal, config, publisher).await
        }
        Err(err @ (SubmitError::Contended | SubmitError::Store(_) | SubmitError::Decode(_))) => {
            tracing::error!(error = %err, "could not record a broker message; it will be redelivered");
            Err(BrokerError::Connection(format!(
                "ledger unavailable: {err}"
            )))
        }
    }
}

/// The ledger's own identity on a country's error queue: `<CC>LEDGER`.
fn ledger_office(country: &CountryCode) -> Sender {
    let office = format!("{country}LEDGER")
        .parse()
        .expect("invariant: <CC>LEDGER is a well-formed office code for a valid country");
    Sender {
        country: country.clone(),
        office,
    }
}

/// Sends the functional error to the country's error queue, the original message to the
/// dead-letter queue with the reason in its headers, and only then lets it be acknowledged.
async fn refuse(
    ledger: &Ledger,
    delivery: &Delivery,
    message: Option<&InboundMessage>,
    refusal: Refusal,
    config: &BrokerConfig,
    publisher: &Mutex<Publisher>,
) -> Result<(), BrokerError> {
    let original_id = message.map(|m| m.message_id.clone());
    ledger.record_refusal(crate::refusals::Refused {
        channel: "broker",
        raw: &delivery.body,
        message,
        signature: delivery.signature.as_deref(),
        code: refusal.code.as_str(),
        reason: &refusal.reason,
        principal: None,
    });
    config
        .metrics
        .refused(&delivery.country, refusal.code.as_str());
    tracing::info!(
        country = %delivery.country,
        message_id = original_id.as_ref().map(|m| m.as_str()),
        code = refusal.code.as_str(),
        reason = %refusal.reason,
        "refused a broker message"
    );
    let now = Timestamp::from_unix_millis(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64),
    )
    .map_err(|e| BrokerError::Connection(e.to_string()))?;
    let error_id: MessageId = format!("ERR-{}", uuid::Uuid::new_v4().simple())
        .parse()
        .expect("invariant: a prefixed UUID is a valid message id");
    let reply = OutboundMessage::FunctionalError(FunctionalError {
        header: Header {
            message_id: error_id.clone(),
            correlation_id: original_id.clone(),
            sender: ledger_office(&delivery.country),
            prepared_at: now,
        },
        original_message_id: original_id.clone(),
        code: refusal.code,
        reason: refusal.reason.clone(),
        element_path: refusal.element_path.clone(),
    });
    let original = original_id.as_ref().map_or("", |m| m.as_str()).to_owned();
    let mut publisher = publisher.lock().await;
    publisher
        .send_text(
            &config.error_queue(&delivery.country),
            vec![
                ("type".to_owned(), "FunctionalError".to_owned()),
                ("transitMessageId".to_owned(), error_id.to_string()),
                ("correlation-id".to_owned(), original.clone()),
                (
                    "transitRejectionCode".to_owned(),
                    refusal.code.as_str().to_owned(),
                ),
            ],
            transit_xml::encode_outbound(&reply),
        )
        .await?;
    let queue = config.inbound_queue(&delivery.country);
    let mut headers = vec![
        ("transitMessageId".to_owned(), original),
        (
            "transitRejectionCode".to_owned(),
            refusal.code.as_str().to_owned(),
        ),
        ("transitRejectionReason".to_owned(), refusal.reason),
        (
            "transitRejectionPath".to_owned(),
            refusal.element_path.unwrap_or_default(),
        ),
        ("transitOriginalQueue".to_owned(), queue.clone()),
    ];
    if let Some(signature) = &delivery.signature {
        // Kept with the original, so that a dead letter put back on its queue once the cause
        // is cured (a movement recorded since) is still signed.
        headers.push((transit_auth::BROKER_PROPERTY.to_owned(), signature.clone()));
    }
    publisher
        .send_text(&dead_letter_queue(&queue), headers, delivery.body.clone())
        .await?;
    config.metrics.dead_lettered(&delivery.country);
    Ok(())
}
