//! STOMP 1.2 against the real broker: a persistent XML message round trip with custom
//! headers and individual acks, redelivery of an unacknowledged message, and dead-lettering
//! of a rejected one to `DLQ.<queue>` (docs/broker.md). Each side connects as who would
//! really do it: a country's system sends to its inbound queue and reads its dead letters,
//! the ledger consumes.

use broker_tests::{
    ack, connect_stomp, disconnect_stomp, ensure_broker, expect_no_message, nack, next_message,
    send_text, stomp_queue, subscribe_individual, unique_queue, MAXIMUM_REDELIVERIES,
    REPLY_TIMEOUT, SILENCE_TIMEOUT, STOMP_FRAME_BYTES_MAX,
};

/// An IE015-like declaration; the accents check that UTF-8 survives the broker unchanged.
fn declaration_xml(message_id: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <CC015C messageId=\"{message_id}\">\n  \
           <DepartureOffice>TGLOM001</DepartureOffice>\n  \
           <Place>Lomé – Port autonome</Place>\n  \
           <Destination>Ouagadougou, Burkina Faso (Bobo-Dioulasso évité)</Destination>\n\
         </CC015C>"
    )
}

#[tokio::test]
async fn a_persistent_xml_message_round_trips_with_its_headers_and_is_acked() {
    let addrs = ensure_broker().await.expect("broker");
    let queue = unique_queue("transit.TG.in");
    let message_id = uuid::Uuid::new_v4().to_string();
    let body = declaration_xml(&message_id);

    let mut producer = connect_stomp(&addrs, "tg").await.expect("connect producer");
    send_text(
        &mut producer,
        &queue,
        &[
            ("correlation-id", "corr-42"),
            ("type", "IE015"),
            ("transitMessageId", &message_id),
            ("transitSenderCountry", "TG"),
            ("transitSenderOffice", "TGLOM001"),
            ("transitNote", "Lomé: quai n°3"),
        ],
        &body,
    )
    .await
    .expect("send");
    disconnect_stomp(&mut producer)
        .await
        .expect("disconnect producer");

    let mut consumer = connect_stomp(&addrs, "ledger")
        .await
        .expect("connect consumer");
    subscribe_individual(&mut consumer, &queue, "sub-1")
        .await
        .expect("subscribe");
    let received = next_message(&mut consumer, REPLY_TIMEOUT)
        .await
        .expect("receive");

    assert_eq!(received.text().expect("utf-8"), body);
    assert_eq!(received.destination, stomp_queue(&queue));
    assert_eq!(received.header("subscription"), Some("sub-1"));
    assert_eq!(received.header("persistent"), Some("true"));
    assert_eq!(received.header("correlation-id"), Some("corr-42"));
    assert_eq!(received.header("type"), Some("IE015"));
    assert_eq!(
        received.header("transitMessageId"),
        Some(message_id.as_str())
    );
    assert_eq!(received.header("transitSenderCountry"), Some("TG"));
    assert_eq!(received.header("transitSenderOffice"), Some("TGLOM001"));
    // A colon in a value travels escaped (\c) and must come back as written.
    assert_eq!(received.header("transitNote"), Some("Lomé: quai n°3"));
    assert!(received.message_id.starts_with("ID:"), "{received:?}");
    ack(&mut consumer, &received).await.expect("ack");
    disconnect_stomp(&mut consumer)
        .await
        .expect("disconnect consumer");

    // Acknowledged means gone: a new subscriber finds the queue empty.
    let mut again = connect_stomp(&addrs, "ledger")
        .await
        .expect("connect again");
    subscribe_individual(&mut again, &queue, "sub-2")
        .await
        .expect("subscribe again");
    expect_no_message(&mut again, SILENCE_TIMEOUT)
        .await
        .expect("queue empty after ack");
    disconnect_stomp(&mut again)
        .await
        .expect("disconnect again");
}

#[tokio::test]
async fn a_message_not_acked_before_disconnect_is_redelivered() {
    let addrs = ensure_broker().await.expect("broker");
    let queue = unique_queue("transit.BF.in");
    let message_id = uuid::Uuid::new_v4().to_string();

    let mut producer = connect_stomp(&addrs, "bf").await.expect("connect producer");
    send_text(
        &mut producer,
        &queue,
        &[("transitMessageId", &message_id), ("type", "IE118")],
        &declaration_xml(&message_id),
    )
    .await
    .expect("send");
    disconnect_stomp(&mut producer)
        .await
        .expect("disconnect producer");

    // First consumer: receives, then goes away without acking (a crashed gateway).
    let mut first = connect_stomp(&addrs, "ledger")
        .await
        .expect("connect first");
    subscribe_individual(&mut first, &queue, "sub-1")
        .await
        .expect("subscribe first");
    let delivered = next_message(&mut first, REPLY_TIMEOUT)
        .await
        .expect("first delivery");
    assert_eq!(
        delivered.header("transitMessageId"),
        Some(message_id.as_str())
    );
    disconnect_stomp(&mut first)
        .await
        .expect("disconnect first");

    // Second consumer: gets the same message again, marked as redelivered.
    let mut second = connect_stomp(&addrs, "ledger")
        .await
        .expect("connect second");
    subscribe_individual(&mut second, &queue, "sub-2")
        .await
        .expect("subscribe second");
    let redelivered = next_message(&mut second, REPLY_TIMEOUT)
        .await
        .expect("redelivery");
    assert_eq!(
        redelivered.header("transitMessageId"),
        Some(message_id.as_str())
    );
    assert_eq!(redelivered.message_id, delivered.message_id);
    assert_eq!(redelivered.body, delivered.body);
    assert_eq!(
        redelivered.header("redelivered"),
        Some("true"),
        "{redelivered:?}"
    );
    ack(&mut second, &redelivered).await.expect("ack");
    expect_no_message(&mut second, SILENCE_TIMEOUT)
        .await
        .expect("no further copy");
    disconnect_stomp(&mut second)
        .await
        .expect("disconnect second");
}

#[tokio::test]
async fn a_nacked_message_is_redelivered_then_dead_lettered_to_its_own_dlq() {
    let addrs = ensure_broker().await.expect("broker");
    let queue = unique_queue("transit.TG.in");
    let dlq = format!("DLQ.{queue}");
    let message_id = uuid::Uuid::new_v4().to_string();
    let body = declaration_xml(&message_id);

    let mut producer = connect_stomp(&addrs, "tg").await.expect("connect producer");
    send_text(
        &mut producer,
        &queue,
        &[("transitMessageId", &message_id), ("type", "IE015")],
        &body,
    )
    .await
    .expect("send");
    disconnect_stomp(&mut producer)
        .await
        .expect("disconnect producer");

    // The consumer rejects every delivery. The broker's redeliveryPlugin gives the message
    // back after a delay, MAXIMUM_REDELIVERIES times, then moves it to DLQ.<queue>.
    let mut consumer = connect_stomp(&addrs, "ledger")
        .await
        .expect("connect consumer");
    subscribe_individual(&mut consumer, &queue, "sub-1")
        .await
        .expect("subscribe");
    for delivery in 0..=MAXIMUM_REDELIVERIES {
        let message = next_message(&mut consumer, REPLY_TIMEOUT)
            .await
            .unwrap_or_else(|e| panic!("delivery {delivery}: {e:#}"));
        assert_eq!(
            message.header("transitMessageId"),
            Some(message_id.as_str())
        );
        nack(&mut consumer, &message).await.expect("nack");
    }
    // Longer than the redelivery delay: a further copy would have arrived by now.
    expect_no_message(&mut consumer, SILENCE_TIMEOUT)
        .await
        .expect("no delivery after the last redelivery");
    disconnect_stomp(&mut consumer)
        .await
        .expect("disconnect consumer");

    let mut dlq_consumer = connect_stomp(&addrs, "tg")
        .await
        .expect("connect dlq consumer");
    subscribe_individual(&mut dlq_consumer, &dlq, "dlq-1")
        .await
        .expect("subscribe dlq");
    let dead = next_message(&mut dlq_consumer, REPLY_TIMEOUT)
        .await
        .expect("dead letter");
    assert_eq!(
        dead.header("original-destination"),
        Some(stomp_queue(&queue).as_str())
    );
    assert_eq!(dead.text().expect("utf-8"), body);
    assert_eq!(dead.header("transitMessageId"), Some(message_id.as_str()));
    assert_eq!(dead.header("type"), Some("IE015"));
    ack(&mut dlq_consumer, &dead)
        .await
        .expect("ack dead letter");
    disconnect_stomp(&mut dlq_consumer)
        .await
        .expect("disconnect dlq consumer");
}

#[tokio::test]
async fn a_frame_over_the_size_limit_is_refused_and_not_enqueued() {
    let addrs = ensure_broker().await.expect("broker");
    let queue = unique_queue("transit.TG.in");
    let oversized = "x".repeat(STOMP_FRAME_BYTES_MAX + 1);

    let mut producer = connect_stomp(&addrs, "tg").await.expect("connect producer");
    // The broker answers with an ERROR ("The maximum frame size was exceeded") and closes
    // the connection; which of the two the client sees first depends on timing.
    send_text(&mut producer, &queue, &[], &oversized)
        .await
        .expect_err("the broker accepted a frame over the limit");

    let mut consumer = connect_stomp(&addrs, "ledger")
        .await
        .expect("connect consumer");
    subscribe_individual(&mut consumer, &queue, "sub-1")
        .await
        .expect("subscribe");
    expect_no_message(&mut consumer, SILENCE_TIMEOUT)
        .await
        .expect("nothing enqueued");
    disconnect_stomp(&mut consumer)
        .await
        .expect("disconnect consumer");
}
