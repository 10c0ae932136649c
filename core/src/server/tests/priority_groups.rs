//! Priority groups (overflow, pinned client, prioritized), UNPIN and
//! RESET, driven through the server as nats-server 2.15 answers them.

use std::time::Duration;

use serde_json::Value;

use super::consumers::{Got, durable, msgs, publish_n, with_stream};
use super::jetstream::Js;

/// Subscribes `a.>` as sid 7, `b.>` as sid 8, `c.>` as sid 9: one inbox
/// prefix per simulated client.
fn clients(js: &mut Js) {
    js.send("SUB a.> 7\r\nSUB b.> 8\r\nSUB c.> 9\r\n");
    let _ = js.out();
}

/// A pull request from `inbox`; every message and status anyone got.
fn ask(js: &mut Js, consumer: &str, inbox: &str, body: &str) -> Vec<Got> {
    js.send(&format!(
        "PUB $JS.API.CONSUMER.MSG.NEXT.S.{consumer} {inbox} {}\r\n{body}\r\n",
        body.len()
    ));
    js.run_storage();
    msgs(&js.out())
}

fn status(got: &[Got]) -> Vec<String> {
    got.iter()
        .filter(|m| m.headers.starts_with("NATS/1.0 "))
        .map(|m| m.headers.lines().next().unwrap().to_string())
        .collect()
}

/// The deliveries in `got` with the sid that got them.
fn delivered(got: &[Got]) -> Vec<(String, String)> {
    got.iter()
        .filter(|m| m.subject.starts_with("s."))
        .map(|m| (m.subject.clone(), m.to_sid.clone()))
        .collect()
}

fn pin_of(m: &Got) -> String {
    m.headers
        .lines()
        .find_map(|l| l.strip_prefix("Nats-Pin-Id: "))
        .unwrap_or_default()
        .to_string()
}

fn error_code(r: &Value) -> u64 {
    r["error"]["err_code"].as_u64().unwrap_or(0)
}

#[test]
fn priority_configs_are_checked_with_nats_servers_codes() {
    let mut js = with_stream();
    let cases = [
        (
            r#"{"durable_name":"D","priority_policy":"pinned_client"}"#,
            10159,
        ),
        (r#"{"durable_name":"D","priority_groups":["A"]}"#, 10196),
        (
            r#"{"durable_name":"D","priority_timeout":5000000000}"#,
            10197,
        ),
        (
            r#"{"durable_name":"D","priority_policy":"overflow","priority_groups":["A"],"deliver_subject":"x"}"#,
            10178,
        ),
        (
            r#"{"durable_name":"D","priority_policy":"overflow","priority_groups":[""]}"#,
            10161,
        ),
        (
            r#"{"durable_name":"D","priority_policy":"overflow","priority_groups":["a.b"]}"#,
            10162,
        ),
        (
            r#"{"durable_name":"D","priority_policy":"overflow","priority_groups":["seventeen-chars-x"]}"#,
            10162,
        ),
    ];
    for (config, code) in cases {
        let r = durable(&mut js, "D", config);
        assert_eq!(error_code(&r), code, "{config}: {r}");
    }
    let r = durable(
        &mut js,
        "D",
        r#"{"durable_name":"D","ack_policy":"explicit","priority_policy":"pinned_client","priority_groups":["A"]}"#,
    );
    assert_eq!(r["config"]["priority_policy"], "pinned_client", "{r}");
    assert_eq!(r["config"]["priority_timeout"], 120_000_000_000u64);
    assert_eq!(r["priority_groups"][0]["group"], "A");
    assert_eq!(r["priority_groups"][0]["pinned_ts"], "0001-01-01T00:00:00Z");
    assert!(r["priority_groups"][0].get("pinned_client_id").is_none());
    // Without a policy, none of it shows.
    let r = durable(&mut js, "E", r#"{"durable_name":"E"}"#);
    assert!(r["config"].get("priority_policy").is_none(), "{r}");
    assert!(r.get("priority_groups").is_none(), "{r}");
}

#[test]
fn pull_requests_with_bad_group_fields_get_nats_servers_statuses() {
    let mut js = with_stream();
    clients(&mut js);
    durable(&mut js, "N", r#"{"durable_name":"N"}"#);
    durable(
        &mut js,
        "P",
        r#"{"durable_name":"P","priority_policy":"pinned_client","priority_groups":["A"]}"#,
    );
    let cases = [
        (
            "N",
            r#"{"batch":1,"min_pending":3}"#,
            "NATS/1.0 400 Bad Request - Not a Overflow Priority consumer",
        ),
        (
            "N",
            r#"{"batch":1,"id":"x"}"#,
            "NATS/1.0 400 Bad Request - Not a Pinned Client Priority consumer",
        ),
        (
            "N",
            r#"{"batch":1,"priority":10}"#,
            "NATS/1.0 400 Bad Request - Priority must be between 0 and 9",
        ),
        (
            "P",
            r#"{"batch":1}"#,
            "NATS/1.0 400 Bad Request - Priority Group missing",
        ),
        (
            "P",
            r#"{"batch":1,"group":"B"}"#,
            "NATS/1.0 400 Bad Request - Invalid Priority Group",
        ),
    ];
    for (consumer, body, want) in cases {
        let got = ask(&mut js, consumer, "a.1", body);
        assert_eq!(status(&got), [want], "{consumer} {body}");
    }
}

#[test]
fn a_pinned_client_gets_everything_until_unpinned_or_quiet() {
    let mut js = with_stream();
    clients(&mut js);
    js.send("SUB $JS.EVENT.ADVISORY.CONSUMER.> 5\r\n");
    durable(
        &mut js,
        "P",
        r#"{"durable_name":"P","ack_policy":"explicit","priority_policy":"pinned_client","priority_groups":["A"],"priority_timeout":2000000000}"#,
    );
    publish_n(&mut js, 4);
    // The first request served is pinned.
    let got = ask(
        &mut js,
        "P",
        "a.1",
        r#"{"batch":1,"group":"A","expires":10000000000,"min_pending":null,"priority":null}"#,
    );
    let first: Vec<&Got> = got.iter().filter(|m| m.subject == "s.1").collect();
    assert_eq!(first.len(), 1, "{got:?}");
    assert_eq!(first[0].to_sid, "7");
    let pin = pin_of(first[0]);
    assert_eq!(pin.len(), 22, "{:?}", first[0].headers);
    let advisory = got
        .iter()
        .find(|m| m.subject == "$JS.EVENT.ADVISORY.CONSUMER.PINNED.S.P")
        .expect("pinned advisory");
    assert!(
        advisory.body.contains(&format!(
            r#""account":"$G","stream":"S","consumer":"P","group":"A","pinned_id":"{pin}"}}"#
        )),
        "{}",
        advisory.body
    );
    let info = js.request("$JS.API.CONSUMER.INFO.S.P", "");
    assert_eq!(info["priority_groups"][0]["pinned_client_id"], pin.as_str());
    // Another client without the pin waits; with a wrong pin it is told.
    let got = ask(
        &mut js,
        "P",
        "b.1",
        r#"{"batch":1,"group":"A","expires":10000000000}"#,
    );
    assert!(delivered(&got).is_empty(), "{got:?}");
    let got = ask(
        &mut js,
        "P",
        "c.1",
        r#"{"batch":1,"group":"A","id":"wrong"}"#,
    );
    assert_eq!(status(&got), ["NATS/1.0 423 Nats-Pin-Id mismatch"]);
    // The pinned client, with its pin, is served.
    let body = format!(r#"{{"batch":1,"group":"A","id":"{pin}","expires":10000000000}}"#);
    let got = ask(&mut js, "P", "a.2", &body);
    assert_eq!(delivered(&got), [("s.2".to_string(), "7".to_string())]);
    assert_eq!(pin_of(&got[0]), pin);
    // UNPIN: the waiting client takes over with a new pin.
    let reply = js.publish("$JS.API.CONSUMER.UNPIN.S.P", "", r#"{"group":"A"}"#);
    js.run_storage();
    let out = js.out();
    let r = Js::answers(&out, &reply).remove(0);
    assert_eq!(
        r,
        serde_json::json!({"type":"io.nats.jetstream.api.v1.consumer_unpin_response"})
    );
    let got = msgs(&out);
    assert_eq!(
        delivered(&got),
        [("s.3".to_string(), "8".to_string())],
        "{got:?}"
    );
    let second = pin_of(got.iter().find(|m| m.subject == "s.3").unwrap());
    assert!(!second.is_empty() && second != pin);
    // The old pin is now refused.
    let body = format!(r#"{{"batch":1,"group":"A","id":"{pin}"}}"#);
    let got = ask(&mut js, "P", "a.3", &body);
    assert_eq!(status(&got), ["NATS/1.0 423 Nats-Pin-Id mismatch"]);
    // Quiet past priority_timeout: the pin goes, with its advisory.
    let got = ask(
        &mut js,
        "P",
        "c.2",
        r#"{"batch":1,"group":"A","expires":10000000000}"#,
    );
    assert!(delivered(&got).is_empty());
    js.h.advance(Duration::from_millis(2100));
    js.run_storage();
    let got = msgs(&js.out());
    let unpinned = got
        .iter()
        .find(|m| m.subject == "$JS.EVENT.ADVISORY.CONSUMER.UNPINNED.S.P")
        .expect("unpinned advisory");
    assert!(
        unpinned
            .body
            .ends_with(r#","group":"A","reason":"timeout"}"#),
        "{}",
        unpinned.body
    );
    assert_eq!(
        delivered(&got),
        [("s.4".to_string(), "9".to_string())],
        "{got:?}"
    );
    // Unpinning names a group of the consumer.
    let r = js.request("$JS.API.CONSUMER.UNPIN.S.P", r#"{"group":"B"}"#);
    assert_eq!(error_code(&r), 10160, "{r}");
    let r = js.request("$JS.API.CONSUMER.UNPIN.S.P", r#"{}"#);
    assert_eq!(error_code(&r), 10025, "{r}");
}

#[test]
fn an_overflow_request_is_served_only_past_its_thresholds() {
    let mut js = with_stream();
    clients(&mut js);
    durable(
        &mut js,
        "O",
        r#"{"durable_name":"O","ack_policy":"explicit","priority_policy":"overflow","priority_groups":["A"]}"#,
    );
    publish_n(&mut js, 3);
    let got = ask(
        &mut js,
        "O",
        "b.1",
        r#"{"batch":10,"group":"A","min_pending":5,"expires":10000000000}"#,
    );
    assert!(delivered(&got).is_empty(), "{got:?}");
    // Two more: still 5 pending, so the standby takes them all.
    for i in 4..=5 {
        js.publish(&format!("s.{i}"), "", "x");
    }
    js.run_storage();
    let got = msgs(&js.out());
    let to_b: Vec<_> = delivered(&got)
        .into_iter()
        .filter(|(_, sid)| sid == "8")
        .collect();
    assert!(!to_b.is_empty(), "{got:?}");
    // A request without thresholds is served at once.
    let got = ask(&mut js, "O", "a.1", r#"{"batch":1,"group":"A"}"#);
    assert!(status(&got).is_empty(), "{got:?}");
    // min_ack_pending: served once that many wait for acks.
    let mut js = with_stream();
    clients(&mut js);
    durable(
        &mut js,
        "O",
        r#"{"durable_name":"O","ack_policy":"explicit","priority_policy":"overflow","priority_groups":["A"]}"#,
    );
    publish_n(&mut js, 4);
    let got = ask(
        &mut js,
        "O",
        "b.1",
        r#"{"batch":1,"group":"A","min_ack_pending":2,"expires":10000000000}"#,
    );
    assert!(delivered(&got).is_empty(), "{got:?}");
    let got = ask(&mut js, "O", "a.1", r#"{"batch":2,"group":"A"}"#);
    let sids: Vec<String> = delivered(&got).into_iter().map(|(_, sid)| sid).collect();
    assert_eq!(sids, ["7", "7", "8"], "{got:?}");
}

#[test]
fn prioritized_requests_are_served_lowest_priority_first() {
    let mut js = with_stream();
    clients(&mut js);
    durable(
        &mut js,
        "R",
        r#"{"durable_name":"R","ack_policy":"explicit","priority_policy":"prioritized","priority_groups":["A"]}"#,
    );
    let low = r#"{"batch":2,"group":"A","priority":5,"expires":10000000000}"#;
    let high = r#"{"batch":1,"group":"A","priority":1,"expires":10000000000}"#;
    assert!(ask(&mut js, "R", "a.1", low).is_empty());
    assert!(ask(&mut js, "R", "b.1", high).is_empty());
    publish_n(&mut js, 0);
    for i in 1..=3 {
        js.publish(&format!("s.{i}"), "", "x");
    }
    js.run_storage();
    let got = msgs(&js.out());
    let sids: Vec<String> = delivered(&got).into_iter().map(|(_, sid)| sid).collect();
    assert_eq!(sids, ["8", "7", "7"], "{got:?}");
}

#[test]
fn requests_take_turns_one_message_each() {
    let mut js = with_stream();
    clients(&mut js);
    durable(
        &mut js,
        "D",
        r#"{"durable_name":"D","ack_policy":"explicit"}"#,
    );
    assert!(ask(&mut js, "D", "a.1", r#"{"batch":3,"expires":10000000000}"#).is_empty());
    assert!(ask(&mut js, "D", "b.1", r#"{"batch":3,"expires":10000000000}"#).is_empty());
    for i in 1..=4 {
        js.publish(&format!("s.{i}"), "", "x");
    }
    js.run_storage();
    let got = msgs(&js.out());
    let sids: Vec<String> = delivered(&got).into_iter().map(|(_, sid)| sid).collect();
    assert_eq!(sids, ["7", "8", "7", "8"], "{got:?}");
}

#[test]
fn a_reset_delivers_again_from_the_ack_floor_or_a_sequence() {
    let mut js = with_stream();
    clients(&mut js);
    durable(
        &mut js,
        "D",
        r#"{"durable_name":"D","ack_policy":"explicit"}"#,
    );
    publish_n(&mut js, 5);
    let got = ask(&mut js, "D", "a.1", r#"{"batch":2}"#);
    assert_eq!(delivered(&got).len(), 2);
    js.send(&format!("PUB {} 0\r\n\r\n", got[0].reply));
    js.run_storage();
    let _ = js.out();
    // Back to just after the ack floor: 2 comes again, as consumer seq 1.
    let r = js.request("$JS.API.CONSUMER.RESET.S.D", "");
    assert_eq!(
        r["type"], "io.nats.jetstream.api.v1.consumer_reset_response",
        "{r}"
    );
    assert_eq!(r["reset_seq"], 2, "{r}");
    assert_eq!(r["name"], "D");
    assert_eq!(r["delivered"]["stream_seq"], 1);
    assert_eq!(r["delivered"]["consumer_seq"], 0);
    assert_eq!(r["num_ack_pending"], 0);
    assert_eq!(r["num_pending"], 4);
    let got = ask(&mut js, "D", "a.2", r#"{"batch":1}"#);
    assert_eq!(delivered(&got), [("s.2".to_string(), "7".to_string())]);
    assert!(
        got[0].reply.starts_with("$JS.ACK.S.D.1.2.1."),
        "{}",
        got[0].reply
    );
    // To a sequence ahead.
    let r = js.request("$JS.API.CONSUMER.RESET.S.D", r#"{"seq":5}"#);
    assert_eq!(r["reset_seq"], 5, "{r}");
    let got = ask(&mut js, "D", "a.3", r#"{"batch":1}"#);
    assert_eq!(delivered(&got), [("s.5".to_string(), "7".to_string())]);
    // Not for a consumer that starts at the new messages.
    durable(
        &mut js,
        "N",
        r#"{"durable_name":"N","ack_policy":"explicit","deliver_policy":"new"}"#,
    );
    let r = js.request("$JS.API.CONSUMER.RESET.S.N", r#"{"seq":1}"#);
    assert_eq!(error_code(&r), 10204, "{r}");
    assert_eq!(r["error"]["description"], "invalid reset: not allowed");
}

#[test]
fn a_pull_for_a_missing_consumer_hears_no_responders() {
    let mut js = with_stream();
    clients(&mut js);
    let got = ask(&mut js, "NOPE", "a.1", r#"{"batch":1}"#);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].to_sid, "7");
    assert_eq!(
        got[0].headers,
        "NATS/1.0 503\r\nNats-Subject: $JS.API.CONSUMER.MSG.NEXT.S.NOPE\r\n\r\n"
    );
}

/// A by-start-time consumer resets to a sequence at or after its start
/// time's, never below it (the store says where the time falls).
#[test]
fn a_by_start_time_consumer_resets_no_lower_than_its_start() {
    let mut js = with_stream();
    clients(&mut js);
    publish_n(&mut js, 3);
    js.h.now_ns += 5_000_000_000;
    publish_n(&mut js, 2);
    let fourth = js.request("$JS.API.STREAM.MSG.GET.S", r#"{"seq":4}"#);
    let start = fourth["message"]["time"].as_str().unwrap().to_string();
    durable(
        &mut js,
        "T",
        &format!(
            r#"{{"durable_name":"T","ack_policy":"explicit","deliver_policy":"by_start_time","opt_start_time":"{start}"}}"#
        ),
    );
    let r = js.request("$JS.API.CONSUMER.RESET.S.T", r#"{"seq":2}"#);
    assert_eq!(error_code(&r), 10204, "{r}");
    assert_eq!(r["error"]["description"], "invalid reset: below start time");
    assert_eq!(r["reset_seq"], 0, "{r}");
    let r = js.request("$JS.API.CONSUMER.RESET.S.T", r#"{"seq":5}"#);
    assert_eq!(r["reset_seq"], 5, "{r}");
    // Sequence 5 is the second batch's `s.2`.
    let got = ask(&mut js, "T", "a.1", r#"{"batch":1}"#);
    assert_eq!(delivered(&got), [("s.2".to_string(), "7".to_string())]);
    assert!(
        got[0].reply.starts_with("$JS.ACK.S.T.1.5.1."),
        "{}",
        got[0].reply
    );
}
