//! STOMP (the ledger, Rust) and JMS over OpenWire (national customs systems, Java) see the
//! same messages through the broker: body, type, correlation id, persistence and custom
//! properties survive both ways. The Java side is `ops/jms/JmsProbe.java`, compiled against
//! Debian's ActiveMQ client jars. The ledger connects as `ledger`, the national systems as
//! their country's user.

use broker_tests::async_stomp::ToServer;
use broker_tests::{
    ack, connect_stomp, disconnect_stomp, ensure_broker, jms_receive, jms_send, next_message,
    send_text, send_with_receipt, stomp_queue, subscribe_individual, unique_queue, REPLY_TIMEOUT,
};

const BODY: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
    <CC029C><Office>TGLOM001</Office><Place>Lomé</Place><Remark>contrôle effectué à Cinkassé</Remark></CC029C>";

#[tokio::test]
async fn stomp_text_with_headers_arrives_as_a_jms_text_message_with_properties() {
    let addrs = ensure_broker().await.expect("broker");
    let queue = unique_queue("transit.BF.BFOUA001.out");
    let message_id = uuid::Uuid::new_v4().to_string();

    let mut producer = connect_stomp(&addrs, "ledger").await.expect("connect");
    send_text(
        &mut producer,
        &queue,
        &[
            ("correlation-id", "corr-7"),
            ("type", "IE029"),
            ("transitMessageId", &message_id),
            ("transitSenderCountry", "TG"),
            ("transitSenderOffice", "TGLOM001"),
        ],
        BODY,
    )
    .await
    .expect("send");
    disconnect_stomp(&mut producer).await.expect("disconnect");

    let received = jms_receive(&addrs, "bf", &queue, REPLY_TIMEOUT)
        .await
        .expect("JMS receive");
    assert_eq!(received.message_type, "TextMessage", "{received:?}");
    assert_eq!(received.body, BODY);
    assert_eq!(received.headers["JMSCorrelationID"], "corr-7");
    assert_eq!(received.headers["JMSType"], "IE029");
    assert_eq!(received.headers["JMSDeliveryMode"], "PERSISTENT");
    assert_eq!(received.properties["transitMessageId"], message_id);
    assert_eq!(received.properties["transitSenderCountry"], "TG");
    assert_eq!(received.properties["transitSenderOffice"], "TGLOM001");
    assert_eq!(received.property_types["transitSenderCountry"], "String");
}

#[tokio::test]
async fn a_jms_text_message_with_properties_arrives_over_stomp_with_headers() {
    let addrs = ensure_broker().await.expect("broker");
    let queue = unique_queue("transit.TG.in");
    let message_id = uuid::Uuid::new_v4().to_string();

    let jms_message_id = jms_send(
        &addrs,
        "tg",
        &queue,
        BODY,
        &[
            ("JMSCorrelationID", "corr-9"),
            ("JMSType", "IE118"),
            ("transitMessageId", &message_id),
            ("transitSenderCountry", "TG"),
            ("transitSenderOffice", "TGLOM001"),
        ],
    )
    .await
    .expect("JMS send");

    let mut consumer = connect_stomp(&addrs, "ledger").await.expect("connect");
    subscribe_individual(&mut consumer, &queue, "sub-1")
        .await
        .expect("subscribe");
    let received = next_message(&mut consumer, REPLY_TIMEOUT)
        .await
        .expect("receive");
    assert_eq!(received.text().expect("utf-8"), BODY);
    assert_eq!(received.message_id, jms_message_id);
    assert_eq!(received.header("correlation-id"), Some("corr-9"));
    assert_eq!(received.header("type"), Some("IE118"));
    assert_eq!(received.header("persistent"), Some("true"));
    assert_eq!(
        received.header("transitMessageId"),
        Some(message_id.as_str())
    );
    assert_eq!(received.header("transitSenderCountry"), Some("TG"));
    assert_eq!(received.header("transitSenderOffice"), Some("TGLOM001"));
    // ActiveMQ marks a TextMessage's body for STOMP clients by leaving content-length off.
    assert_eq!(received.header("content-length"), None, "{received:?}");
    ack(&mut consumer, &received).await.expect("ack");
    disconnect_stomp(&mut consumer).await.expect("disconnect");
}

/// Why the ledger never sets `content-length`: ActiveMQ reads it as "binary payload" and
/// hands JMS consumers a BytesMessage, which customs systems expecting text reject.
#[tokio::test]
async fn a_stomp_frame_with_content_length_becomes_a_jms_bytes_message() {
    let addrs = ensure_broker().await.expect("broker");
    let queue = unique_queue("transit.TG.error");

    let mut producer = connect_stomp(&addrs, "ledger").await.expect("connect");
    let frame = ToServer::Send {
        destination: stomp_queue(&queue),
        transaction: None,
        headers: Some(vec![
            ("persistent".into(), "true".into()),
            ("content-length".into(), BODY.len().to_string()),
        ]),
        body: Some(BODY.as_bytes().to_vec()),
    }
    .into();
    send_with_receipt(&mut producer, frame).await.expect("send");
    disconnect_stomp(&mut producer).await.expect("disconnect");

    let received = jms_receive(&addrs, "tg", &queue, REPLY_TIMEOUT)
        .await
        .expect("JMS receive");
    assert_eq!(received.message_type, "BytesMessage", "{received:?}");
    assert_eq!(received.body, BODY);
}
