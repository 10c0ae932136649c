//! A consumer's `max_ack_pending` and `max_deliver` against what its
//! client does: the regressions the simulation found.

use std::time::Duration;

use super::consumers::{Got, durable, msgs, publish_n, pull, with_stream};

/// The deliveries of stream subject `s.<n>` in what the client got.
fn deliveries_of(out: &str, subject: &str) -> Vec<Got> {
    msgs(out)
        .into_iter()
        .filter(|m| m.subject == subject)
        .collect()
}

#[test]
fn unacknowledged_messages_at_max_ack_pending_are_still_redelivered() {
    // Seed 799 of the simulation: every place under max_ack_pending held
    // a message left unacknowledged, and their redeliveries waited for a
    // place that only their acks could free.
    let mut js = with_stream();
    publish_n(&mut js, 3);
    durable(
        &mut js,
        "D",
        r#"{"durable_name":"D","ack_policy":"explicit","ack_wait":1000000000,"max_ack_pending":2}"#,
    );
    let got = pull(
        &mut js,
        "D",
        "_INBOX.a",
        r#"{"batch":3,"expires":10000000000}"#,
    );
    assert_eq!(got.len(), 2, "max_ack_pending 2: {got:?}");
    js.h.advance(Duration::from_millis(1100));
    js.run_storage();
    let out = js.out();
    let again = deliveries_of(&out, "s.1");
    assert_eq!(again.len(), 1, "s.1 comes again: {out}");
    assert_eq!(again[0].reply.split('.').nth(4), Some("2"));
    assert!(
        deliveries_of(&out, "s.3").is_empty(),
        "no place for s.3 yet"
    );
    // An ack frees a place for what follows, after the other redelivery.
    js.send(&format!("PUB {} 4\r\n+ACK\r\n", again[0].reply));
    js.run_storage();
    let got = pull(
        &mut js,
        "D",
        "_INBOX.b",
        r#"{"batch":2,"expires":10000000000}"#,
    );
    let seen: Vec<(&str, Option<&str>)> = got
        .iter()
        .map(|m| (m.subject.as_str(), m.reply.split('.').nth(4)))
        .collect();
    assert_eq!(seen, [("s.2", Some("2")), ("s.3", Some("1"))]);
}

#[test]
fn a_nak_of_a_last_delivery_does_not_deliver_past_max_deliver() {
    // Seed 737 of the simulation: the second delivery of a message with
    // max_deliver 2, NAKed, came a third time.
    let mut js = with_stream();
    publish_n(&mut js, 1);
    durable(
        &mut js,
        "D",
        r#"{"durable_name":"D","ack_policy":"explicit","max_deliver":2}"#,
    );
    let got = pull(
        &mut js,
        "D",
        "_INBOX.a",
        r#"{"batch":5,"expires":10000000000}"#,
    );
    assert_eq!(got.len(), 1);
    js.send(&format!("PUB {} 4\r\n-NAK\r\n", got[0].reply));
    js.run_storage();
    let again = deliveries_of(&js.out(), "s.1");
    assert_eq!(again.len(), 1, "a NAK redelivers at once");
    assert_eq!(again[0].reply.split('.').nth(4), Some("2"));
    js.send(&format!("PUB {} 4\r\n-NAK\r\n", again[0].reply));
    js.run_storage();
    js.h.advance(Duration::from_millis(10));
    js.run_storage();
    let out = js.out();
    assert!(
        deliveries_of(&out, "s.1").is_empty(),
        "no third delivery: {out}"
    );
    let info = js.request("$JS.API.CONSUMER.INFO.S.D", "");
    assert_eq!(info["num_ack_pending"], 0, "{info}");
}

#[test]
fn a_work_item_whose_ack_was_answered_stays_gone_after_a_power_loss() {
    // Seed 709 of the simulation: the deletion an ack makes in a work
    // queue was not synced when the ack was answered, and a power loss
    // brought the message back.
    let mut js = super::jetstream::Js::new();
    js.create(r#"{"name":"S","subjects":["s.>"],"retention":"workqueue"}"#);
    publish_n(&mut js, 2);
    durable(
        &mut js,
        "W",
        r#"{"durable_name":"W","ack_policy":"explicit"}"#,
    );
    let got = pull(&mut js, "W", "_INBOX.a", r#"{"batch":1}"#);
    assert_eq!(got.len(), 1);
    js.send(&format!("PUB {} _INBOX.sync 4\r\n+ACK\r\n", got[0].reply));
    js.run_storage();
    assert!(js.out().contains("MSG _INBOX.sync 1 0\r\n"), "answered");
    let disk = js.disk.clone();
    disk.crash();
    let mut js = super::jetstream::Js::on(disk);
    let info = js.request("$JS.API.STREAM.INFO.S", "");
    assert_eq!(info["state"]["messages"], 1, "{info}");
    assert_eq!(info["state"]["first_seq"], 2, "{info}");
}
