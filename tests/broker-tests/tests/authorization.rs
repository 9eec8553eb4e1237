//! Who may connect, and who may use which queue, as `ops/activemq/activemq.xml` grants it
//! (docs/broker.md, "Authentication and authorization"): anonymous clients and wrong passwords
//! are refused over STOMP and OpenWire; a country writes only its inbound queue and reads only
//! its office, error and dead-letter queues; the ledger reads inbound queues and writes the
//! others. Each grant is shown used and each refusal shown to leave nothing behind.

use broker_tests::async_stomp::client::Subscriber;
use broker_tests::async_stomp::AckMode;
use broker_tests::{
    ack, connect_stomp, connect_stomp_as, disconnect_stomp, ensure_broker, expect_no_message, nack,
    next_message, run_jms_probe, send_text, send_with_receipt, stomp_queue, subscribe_individual,
    unique_queue, BrokerAddrs, Credentials, REPLY_TIMEOUT, SILENCE_TIMEOUT,
};

/// What ActiveMQ says when a user may not use a destination.
const NOT_AUTHORIZED: &str = "not authorized";

/// Sends one message as `login` and returns the broker's refusal; panics if it was accepted.
async fn send_refused(addrs: &BrokerAddrs, login: &str, queue: &str) -> String {
    let mut conn = connect_stomp(addrs, login).await.expect("connect");
    let refused = send_text(&mut conn, queue, &[("type", "IE015")], "<x/>")
        .await
        .expect_err("the broker accepted the SEND");
    format!("{refused:#}")
}

/// Subscribes as `login` and returns the broker's refusal; panics if it was accepted.
async fn subscribe_refused(addrs: &BrokerAddrs, login: &str, queue: &str) -> String {
    let mut conn = connect_stomp(addrs, login).await.expect("connect");
    let frame = Subscriber::builder()
        .destination(stomp_queue(queue))
        .id("s")
        .ack(AckMode::ClientIndividual)
        .subscribe();
    let refused = send_with_receipt(&mut conn, frame)
        .await
        .expect_err("the broker accepted the SUBSCRIBE");
    format!("{refused:#}")
}

/// Sends one message as `login` (it must be accepted).
async fn send_as(addrs: &BrokerAddrs, login: &str, queue: &str, body: &str) {
    let mut conn = connect_stomp(addrs, login).await.expect("connect");
    send_text(&mut conn, queue, &[("type", "IE015")], body)
        .await
        .unwrap_or_else(|e| panic!("{login} sending to {queue}: {e:#}"));
    disconnect_stomp(&mut conn).await.expect("disconnect");
}

/// Receives and acknowledges one message as `login` (it must be allowed and the message there).
async fn receive_as(addrs: &BrokerAddrs, login: &str, queue: &str) -> String {
    let mut conn = connect_stomp(addrs, login).await.expect("connect");
    subscribe_individual(&mut conn, queue, "s")
        .await
        .unwrap_or_else(|e| panic!("{login} subscribing to {queue}: {e:#}"));
    let message = next_message(&mut conn, REPLY_TIMEOUT)
        .await
        .unwrap_or_else(|e| panic!("{login} receiving from {queue}: {e:#}"));
    ack(&mut conn, &message).await.expect("ack");
    disconnect_stomp(&mut conn).await.expect("disconnect");
    message.text().expect("utf-8").to_owned()
}

/// Checks, as an operator (who may read any queue), that nothing is waiting on `queue`.
async fn assert_empty(addrs: &BrokerAddrs, queue: &str) {
    let mut conn = connect_stomp(addrs, "admin").await.expect("connect");
    subscribe_individual(&mut conn, queue, "s")
        .await
        .expect("subscribe");
    expect_no_message(&mut conn, SILENCE_TIMEOUT)
        .await
        .unwrap_or_else(|e| panic!("{queue} should be empty: {e:#}"));
    disconnect_stomp(&mut conn).await.expect("disconnect");
}

#[tokio::test]
async fn anonymous_connections_are_refused_over_stomp_and_openwire() {
    let addrs = ensure_broker().await.expect("broker");
    let refused = connect_stomp_as(&addrs, None)
        .await
        .expect_err("an anonymous STOMP CONNECT was accepted");
    assert!(
        format!("{refused:#}").contains("password is invalid"),
        "{refused:#}"
    );
    let queue = unique_queue("transit.TG.in");
    let refused = run_jms_probe(&addrs, None, &["send", &queue, "<x/>"])
        .await
        .expect_err("an anonymous JMS connection was accepted");
    assert!(format!("{refused:#}").contains("refused:"), "{refused:#}");
    assert_empty(&addrs, &queue).await;
}

#[tokio::test]
async fn a_wrong_password_or_an_unknown_user_is_refused_and_the_password_not_echoed() {
    let addrs = ensure_broker().await.expect("broker");
    let tg = Credentials::of("tg").expect("credentials");
    let ledger = Credentials::of("ledger").expect("credentials");
    for attempt in [
        Credentials::new("tg", "not-the-password"),
        // Another user's valid password is still the wrong one.
        Credentials::new("tg", ledger.passcode()),
        Credentials::new("nobody", tg.passcode()),
        Credentials::new("tg", ""),
    ] {
        let refused = connect_stomp_as(&addrs, Some(&attempt))
            .await
            .expect_err("a bad login was accepted");
        let text = format!("{refused:#}");
        assert!(text.contains("password is invalid"), "{attempt:?}: {text}");
        if !attempt.passcode().is_empty() {
            assert!(!text.contains(attempt.passcode()), "{attempt:?}: {text}");
        }
    }
    // The right password works (the refusals above are about the password, not the user).
    let mut conn = connect_stomp_as(&addrs, Some(&tg))
        .await
        .expect("tg connects");
    disconnect_stomp(&mut conn).await.expect("disconnect");
}

#[tokio::test]
async fn togo_cannot_send_to_burkina_faso_nor_read_its_queues() {
    let addrs = ensure_broker().await.expect("broker");
    let bf_in = unique_queue("transit.BF.in");
    let refused = send_refused(&addrs, "tg", &bf_in).await;
    assert!(refused.contains(NOT_AUTHORIZED), "{refused}");
    assert!(refused.contains("write"), "{refused}");
    // Nothing reached Burkina Faso's inbound queue.
    assert_empty(&addrs, &bf_in).await;
    for bf_queue in [
        unique_queue("transit.BF.BFOUA001.out"),
        unique_queue("transit.BF.error"),
        unique_queue("DLQ.transit.BF.in"),
        unique_queue("transit.BF.in"),
    ] {
        let refused = subscribe_refused(&addrs, "tg", &bf_queue).await;
        assert!(refused.contains(NOT_AUTHORIZED), "{bf_queue}: {refused}");
        assert!(refused.contains("read"), "{bf_queue}: {refused}");
    }
    // Nor may it slip a forged notification into a Burkinabè office's queue.
    for forged in [
        unique_queue("transit.BF.BFOUA001.out"),
        unique_queue("transit.BF.error"),
    ] {
        let refused = send_refused(&addrs, "tg", &forged).await;
        assert!(refused.contains(NOT_AUTHORIZED), "{forged}: {refused}");
        assert_empty(&addrs, &forged).await;
    }
}

#[tokio::test]
async fn togo_sends_to_its_inbound_queue_and_reads_its_office_error_and_dead_letter_queues() {
    let addrs = ensure_broker().await.expect("broker");
    // Togo to the ledger.
    let inbound = unique_queue("transit.TG.in");
    send_as(&addrs, "tg", &inbound, "<declaration/>").await;
    // Togo may not take its own submissions off the queue: they are the ledger's to consume.
    let refused = subscribe_refused(&addrs, "tg", &inbound).await;
    assert!(refused.contains(NOT_AUTHORIZED), "{refused}");
    assert_eq!(
        receive_as(&addrs, "ledger", &inbound).await,
        "<declaration/>"
    );
    // The ledger to Togo: an office's notification, an error reply, a dead letter.
    for queue in [
        unique_queue("transit.TG.TGLOM001.out"),
        unique_queue("transit.TG.error"),
        format!("DLQ.{inbound}"),
    ] {
        send_as(&addrs, "ledger", &queue, "<notice/>").await;
        assert_eq!(
            receive_as(&addrs, "tg", &queue).await,
            "<notice/>",
            "{queue}"
        );
    }
    // Burkina Faso reads none of Togo's.
    let office = unique_queue("transit.TG.TGCIN001.out");
    let refused = subscribe_refused(&addrs, "bf", &office).await;
    assert!(refused.contains(NOT_AUTHORIZED), "{refused}");
}

#[tokio::test]
async fn the_ledger_reads_no_office_queue_and_operators_see_everything() {
    let addrs = ensure_broker().await.expect("broker");
    // The ledger writes the offices' queues but has no business reading them.
    let office = unique_queue("transit.NE.NENIA001.out");
    let refused = subscribe_refused(&addrs, "ledger", &office).await;
    assert!(refused.contains(NOT_AUTHORIZED), "{refused}");
    // An operator reads a country's dead letters (and anything else).
    let dead = unique_queue("DLQ.transit.CI.in");
    send_as(&addrs, "ledger", &dead, "<dead/>").await;
    assert_eq!(receive_as(&addrs, "admin", &dead).await, "<dead/>");
}

#[tokio::test]
async fn over_openwire_a_country_is_held_to_its_own_queues_too() {
    let addrs = ensure_broker().await.expect("broker");
    let tg = Credentials::of("tg").expect("credentials");
    let bf_in = unique_queue("transit.BF.in");
    let refused = run_jms_probe(&addrs, Some(&tg), &["send", &bf_in, "<x/>"])
        .await
        .expect_err("JMS send to another country's queue was accepted");
    let text = format!("{refused:#}");
    assert!(text.contains(NOT_AUTHORIZED), "{text}");
    assert!(!text.contains(tg.passcode()), "{text}");
    assert_empty(&addrs, &bf_in).await;
    // Its own inbound queue takes the message, and the ledger gets it.
    let tg_in = unique_queue("transit.TG.in");
    run_jms_probe(&addrs, Some(&tg), &["send", &tg_in, "<jms/>"])
        .await
        .expect("JMS send to its own queue");
    assert_eq!(receive_as(&addrs, "ledger", &tg_in).await, "<jms/>");
}

/// Why a reader may also write its queues: the broker's redelivery puts a rejected message
/// back with the rejecting consumer's rights.
#[tokio::test]
async fn a_country_rejecting_an_office_notification_gets_it_redelivered() {
    let addrs = ensure_broker().await.expect("broker");
    let office = unique_queue("transit.TG.TGCIN001.out");
    send_as(&addrs, "ledger", &office, "<notice/>").await;
    let mut conn = connect_stomp(&addrs, "tg").await.expect("connect");
    subscribe_individual(&mut conn, &office, "s")
        .await
        .expect("subscribe");
    let first = next_message(&mut conn, REPLY_TIMEOUT)
        .await
        .expect("delivery");
    nack(&mut conn, &first).await.expect("nack");
    let again = next_message(&mut conn, REPLY_TIMEOUT)
        .await
        .expect("redelivery");
    assert_eq!(again.text().expect("utf-8"), "<notice/>");
    assert_eq!(again.header("redelivered"), Some("true"), "{again:?}");
    ack(&mut conn, &again).await.expect("ack");
    disconnect_stomp(&mut conn).await.expect("disconnect");
}
