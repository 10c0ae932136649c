//! JetStream consumers driven through the server, over the real executor
//! and file store on a simulated disk.

use std::time::Duration;

use natrix_storage::SimDisk;
use serde_json::Value;

use super::jetstream::Js;

/// A message the client received: subject, reply, headers, body.
#[derive(Debug, Clone)]
pub(super) struct Got {
    pub subject: String,
    pub to_sid: String,
    pub reply: String,
    pub headers: String,
    pub body: String,
}

/// Every MSG and HMSG in `out`, in order.
pub(super) fn msgs(out: &str) -> Vec<Got> {
    let mut found = Vec::new();
    let mut rest = out;
    loop {
        let at = match (rest.find("MSG "), rest.find("HMSG ")) {
            (Some(m), Some(h)) => m.min(h),
            (Some(m), None) => m,
            (None, Some(h)) => h,
            (None, None) => break,
        };
        rest = &rest[at..];
        let h = rest.starts_with("HMSG ");
        let line_end = rest.find("\r\n").unwrap();
        let args: Vec<&str> = rest[..line_end].split(' ').skip(1).collect();
        let (subject, sid) = (args[0], args[1]);
        let (reply, sizes) = if h {
            if args.len() == 5 {
                (args[2], &args[3..])
            } else {
                ("", &args[2..])
            }
        } else if args.len() == 4 {
            (args[2], &args[3..])
        } else {
            ("", &args[2..])
        };
        let sizes: Vec<usize> = sizes.iter().map(|n| n.parse().unwrap()).collect();
        let total = *sizes.last().unwrap();
        let hlen = if h { sizes[0] } else { 0 };
        let payload = &rest[line_end + 2..line_end + 2 + total];
        found.push(Got {
            subject: subject.into(),
            to_sid: sid.into(),
            reply: reply.into(),
            headers: payload[..hlen].into(),
            body: payload[hlen..].into(),
        });
        rest = &rest[line_end + 2 + total..];
    }
    found
}

pub(super) fn with_stream() -> Js {
    let mut js = Js::new();
    js.create(r#"{"name":"S","subjects":["s.>"]}"#);
    js
}

pub(super) fn publish_n(js: &mut Js, n: usize) {
    for i in 1..=n {
        js.publish(&format!("s.{i}"), "", &format!("m{i}"));
    }
    js.run_storage();
    let _ = js.out();
}

/// A pull request on `inbox` (subscribed by the test client as `_INBOX.>`).
pub(super) fn pull(js: &mut Js, consumer: &str, inbox: &str, body: &str) -> Vec<Got> {
    js.send(&format!(
        "PUB $JS.API.CONSUMER.MSG.NEXT.S.{consumer} {inbox} {}\r\n{body}\r\n",
        body.len()
    ));
    js.run_storage();
    msgs(&js.out())
        .into_iter()
        .filter(|m| {
            m.to_sid == "1" && !m.subject.starts_with("_INBOX.") || m.headers.contains("NATS/1.0 ")
        })
        .collect()
}

/// A request, and everything else the client got meanwhile.
fn request_seeing(js: &mut Js, subject: &str, body: &str) -> (Value, Vec<Got>) {
    let reply = js.publish(subject, "", body);
    js.run_storage();
    let out = js.out();
    let answer = Js::answers(&out, &reply).remove(0);
    let rest = msgs(&out)
        .into_iter()
        .filter(|m| m.subject != reply)
        .collect();
    (answer, rest)
}

pub(super) fn durable(js: &mut Js, name: &str, config: &str) -> Value {
    js.request(
        &format!("$JS.API.CONSUMER.CREATE.S.{name}"),
        &format!(r#"{{"stream_name":"S","config":{config}}}"#),
    )
}

#[test]
fn a_durable_consumer_is_created_with_nats_servers_defaults() {
    let mut js = with_stream();
    publish_n(&mut js, 3);
    let r = durable(
        &mut js,
        "D",
        r#"{"durable_name":"D","ack_policy":"explicit"}"#,
    );
    assert_eq!(
        r["type"], "io.nats.jetstream.api.v1.consumer_create_response",
        "{r}"
    );
    assert_eq!(r["name"], "D");
    assert_eq!(r["stream_name"], "S");
    assert_eq!(r["config"]["max_ack_pending"], 1000);
    assert_eq!(r["config"]["max_waiting"], 512);
    assert_eq!(r["config"]["ack_wait"], 30_000_000_000u64);
    assert_eq!(r["num_pending"], 3);
    assert_eq!(r["delivered"]["stream_seq"], 0);
    // The same config again is no change; a different one with
    // "create" is refused.
    let again = durable(
        &mut js,
        "D",
        r#"{"durable_name":"D","ack_policy":"explicit"}"#,
    );
    assert!(again.get("error").is_none(), "{again}");
    let r = js.request(
        "$JS.API.CONSUMER.CREATE.S.D",
        r#"{"stream_name":"S","config":{"durable_name":"D","ack_policy":"all"},"action":"create"}"#,
    );
    assert_eq!(r["error"]["err_code"], 10148, "{r}");
    let names = js.request("$JS.API.CONSUMER.NAMES.S", "");
    assert_eq!(names["consumers"], serde_json::json!(["D"]));
    let info = js.request("$JS.API.STREAM.INFO.S", "");
    assert_eq!(info["state"]["consumer_count"], 1);
    let missing = js.request("$JS.API.CONSUMER.INFO.S.X", "");
    assert_eq!(missing["error"]["err_code"], 10014);
    let del = js.request("$JS.API.CONSUMER.DELETE.S.D", "");
    assert_eq!(del["success"], true, "{del}");
    let names = js.request("$JS.API.CONSUMER.NAMES.S", "");
    assert_eq!(names["consumers"], serde_json::json!([]));
}

#[test]
fn a_pull_delivers_stream_subjects_with_ack_tokens_and_acks_move_the_floor() {
    let mut js = with_stream();
    publish_n(&mut js, 3);
    durable(
        &mut js,
        "D",
        r#"{"durable_name":"D","ack_policy":"explicit"}"#,
    );
    let got = pull(&mut js, "D", "_INBOX.p1", r#"{"batch":2}"#);
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(got[0].subject, "s.1");
    assert_eq!(got[0].body, "m1");
    let t: Vec<&str> = got[0].reply.split('.').collect();
    assert_eq!(
        &t[..7],
        &["$JS", "ACK", "S", "D", "1", "1", "1"],
        "{}",
        got[0].reply
    );
    assert_eq!(t[8], "2", "two more pending after the first");
    assert_eq!(got[1].reply.split('.').nth(8), Some("1"));
    // Ack the second only: the floor stays below the first.
    js.send(&format!("PUB {} 0\r\n\r\n", got[1].reply));
    js.run_storage();
    let info = js.request("$JS.API.CONSUMER.INFO.S.D", "");
    assert_eq!(
        info["type"],
        "io.nats.jetstream.api.v1.consumer_info_response"
    );
    assert_eq!(info["num_ack_pending"], 1, "{info}");
    assert_eq!(info["ack_floor"]["stream_seq"], 0);
    assert_eq!(info["delivered"]["stream_seq"], 2);
    assert_eq!(info["num_pending"], 1);
    // A double ack of the first is answered, and the floor moves.
    js.send(&format!("PUB {} _INBOX.ackack 4\r\n+ACK\r\n", got[0].reply));
    js.run_storage();
    let out = js.out();
    assert!(out.contains("MSG _INBOX.ackack 1 0\r\n"), "{out}");
    let info = js.request("$JS.API.CONSUMER.INFO.S.D", "");
    assert_eq!(info["ack_floor"]["stream_seq"], 2, "{info}");
    assert_eq!(info["num_ack_pending"], 0);
}

#[test]
fn pull_requests_end_with_nats_servers_status_messages() {
    let mut js = with_stream();
    durable(
        &mut js,
        "D",
        r#"{"durable_name":"D","ack_policy":"explicit","max_batch":10}"#,
    );
    let got = pull(&mut js, "D", "_INBOX.nw", r#"{"batch":1,"no_wait":true}"#);
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(
        got[0].headers.starts_with("NATS/1.0 404 No Messages\r\n"),
        "{got:?}"
    );
    let got = pull(&mut js, "D", "_INBOX.big", r#"{"batch":11}"#);
    assert!(
        got[0]
            .headers
            .starts_with("NATS/1.0 409 Exceeded MaxRequestBatch of 10\r\n")
    );
    // An expiring request gets 408 once its time is up.
    let got = pull(
        &mut js,
        "D",
        "_INBOX.ex",
        r#"{"batch":3,"expires":500000000}"#,
    );
    assert!(got.is_empty(), "{got:?}");
    js.h.advance(Duration::from_millis(600));
    js.run_storage();
    let got = msgs(&js.out());
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(
        got[0]
            .headers
            .starts_with("NATS/1.0 408 Request Timeout\r\nNats-Pending-Messages: 3\r\n"),
        "{got:?}"
    );
    // "No wait" with an expiry waits, and times out.
    let got = pull(
        &mut js,
        "D",
        "_INBOX.nwx",
        r#"{"batch":1,"no_wait":true,"expires":200000000}"#,
    );
    assert!(got.is_empty(), "{got:?}");
    js.h.advance(Duration::from_millis(300));
    let got = msgs(&js.out());
    assert!(
        got[0]
            .headers
            .starts_with("NATS/1.0 408 Request Timeout\r\n"),
        "{got:?}"
    );
    // A heartbeat needs an expiry at least twice as long.
    let got = pull(
        &mut js,
        "D",
        "_INBOX.hb",
        r#"{"batch":1,"idle_heartbeat":100000000}"#,
    );
    assert_eq!(
        got[0].headers,
        "NATS/1.0 400 Bad Request - heartbeat value too large\r\n\r\n"
    );
    let got = pull(
        &mut js,
        "D",
        "_INBOX.hb2",
        r#"{"batch":1,"idle_heartbeat":100000000,"expires":1000000000}"#,
    );
    assert!(got.is_empty());
    js.h.advance(Duration::from_millis(150));
    let got = msgs(&js.out());
    assert_eq!(
        got[0].headers,
        "NATS/1.0 100 Idle Heartbeat\r\nNats-Last-Consumer: 0\r\nNats-Last-Stream: 0\r\n\r\n"
    );
    js.h.advance(Duration::from_millis(1000));
    let _ = js.out();
    // A waiting request is served by a later publish, once it is durable.
    let got = pull(
        &mut js,
        "D",
        "_INBOX.w",
        r#"{"batch":1,"expires":5000000000}"#,
    );
    assert!(got.is_empty());
    js.publish("s.late", "", "late");
    js.run_storage();
    let got: Vec<Got> = msgs(&js.out())
        .into_iter()
        .filter(|m| m.subject == "s.late")
        .collect();
    assert_eq!(got.len(), 1);
}

#[test]
fn an_unacknowledged_message_is_redelivered_after_ack_wait_and_stops_at_max_deliver() {
    let mut js = with_stream();
    publish_n(&mut js, 1);
    durable(
        &mut js,
        "D",
        r#"{"durable_name":"D","ack_policy":"explicit","ack_wait":1000000000,"max_deliver":2}"#,
    );
    let got = pull(
        &mut js,
        "D",
        "_INBOX.a",
        r#"{"batch":5,"expires":10000000000}"#,
    );
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].reply.split('.').nth(4), Some("1"));
    js.h.advance(Duration::from_millis(1100));
    js.run_storage();
    let got: Vec<Got> = msgs(&js.out())
        .into_iter()
        .filter(|m| m.subject == "s.1")
        .collect();
    assert_eq!(got.len(), 1, "redelivered once");
    let t: Vec<&str> = got[0].reply.split('.').collect();
    assert_eq!(
        (t[4], t[5], t[6]),
        ("2", "1", "2"),
        "count 2, stream 1, consumer seq 2"
    );
    let info = js.request("$JS.API.CONSUMER.INFO.S.D", "");
    assert_eq!(info["num_redelivered"], 1, "{info}");
    // max_deliver 2: no third delivery.
    js.h.advance(Duration::from_millis(1100));
    js.run_storage();
    let got: Vec<Got> = msgs(&js.out())
        .into_iter()
        .filter(|m| m.subject == "s.1")
        .collect();
    assert!(got.is_empty(), "{got:?}");
    let info = js.request("$JS.API.CONSUMER.INFO.S.D", "");
    assert_eq!(info["num_ack_pending"], 0, "{info}");
}

#[test]
fn a_nak_redelivers_at_once_and_term_never() {
    let mut js = with_stream();
    publish_n(&mut js, 2);
    durable(
        &mut js,
        "D",
        r#"{"durable_name":"D","ack_policy":"explicit"}"#,
    );
    let got = pull(&mut js, "D", "_INBOX.a", r#"{"batch":2}"#);
    assert_eq!(got.len(), 2);
    js.send(&format!("PUB {} 4\r\n-NAK\r\n", got[0].reply));
    js.send(&format!("PUB {} 5\r\n+TERM\r\n", got[1].reply));
    js.run_storage();
    let got = pull(
        &mut js,
        "D",
        "_INBOX.b",
        r#"{"batch":2,"expires":1000000000}"#,
    );
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].subject, "s.1");
    assert_eq!(got[0].reply.split('.').nth(4), Some("2"));
}

#[test]
fn a_push_consumer_delivers_to_its_subject_with_heartbeats() {
    let mut js = with_stream();
    publish_n(&mut js, 2);
    js.send("SUB push.d 2\r\n");
    let (r, got) = request_seeing(
        &mut js,
        "$JS.API.CONSUMER.CREATE.S",
        r#"{"stream_name":"S","config":{"deliver_subject":"push.d","idle_heartbeat":1000000000,"flow_control":true}}"#,
    );
    assert!(r.get("error").is_none(), "{r}");
    assert_eq!(r["config"]["inactive_threshold"], 5_000_000_000u64, "{r}");
    let got: Vec<Got> = got.into_iter().filter(|m| m.to_sid == "2").collect();
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(got[0].subject, "s.1");
    js.h.advance(Duration::from_millis(1100));
    let got: Vec<Got> = msgs(&js.out())
        .into_iter()
        .filter(|m| m.to_sid == "2")
        .collect();
    assert_eq!(got.len(), 1);
    assert_eq!(
        got[0].headers,
        "NATS/1.0 100 Idle Heartbeat\r\nNats-Last-Consumer: 2\r\nNats-Last-Stream: 2\r\n\r\n"
    );
    // Without interest, an ephemeral goes after its inactive threshold.
    js.send("UNSUB 2\r\n");
    js.h.advance(Duration::from_secs(6));
    js.run_storage();
    let names = js.request("$JS.API.CONSUMER.NAMES.S", "");
    assert_eq!(names["total"], 0, "{names}");
}

#[test]
fn last_per_subject_delivers_each_subjects_newest_then_what_follows() {
    let mut js = with_stream();
    for (s, b) in [("s.a", "1"), ("s.b", "2"), ("s.a", "3")] {
        js.publish(s, "", b);
    }
    js.run_storage();
    let _ = js.out();
    js.send("SUB w.in 3\r\n");
    let (r, got) = request_seeing(
        &mut js,
        "$JS.API.CONSUMER.CREATE.S",
        r#"{"stream_name":"S","config":{"deliver_subject":"w.in","deliver_policy":"last_per_subject","filter_subject":"s.>"}}"#,
    );
    assert_eq!(r["num_pending"], 2, "{r}");
    let got: Vec<Got> = got.into_iter().filter(|m| m.to_sid == "3").collect();
    let seen: Vec<(&str, &str)> = got
        .iter()
        .map(|m| (m.subject.as_str(), m.body.as_str()))
        .collect();
    assert_eq!(seen, vec![("s.b", "2"), ("s.a", "3")]);
    // The last initial value says nothing is pending: a watcher knows it
    // has them all.
    assert_eq!(got[1].reply.split('.').nth(8), Some("0"));
    js.publish("s.c", "", "4");
    js.run_storage();
    let got: Vec<Got> = msgs(&js.out())
        .into_iter()
        .filter(|m| m.to_sid == "3")
        .collect();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].subject, "s.c");
}

#[test]
fn progress_survives_a_crash_acked_stay_acked_and_pending_come_back() {
    let mut js = with_stream();
    publish_n(&mut js, 3);
    durable(
        &mut js,
        "D",
        r#"{"durable_name":"D","ack_policy":"explicit","ack_wait":1000000000}"#,
    );
    let got = pull(&mut js, "D", "_INBOX.a", r#"{"batch":2}"#);
    assert_eq!(got.len(), 2);
    js.send(&format!("PUB {} _INBOX.sync 0\r\n\r\n", got[0].reply));
    js.run_storage();
    assert!(js.out().contains("MSG _INBOX.sync 1 0\r\n"));
    let disk = js.disk.clone();
    disk.crash();
    let mut js = Js::on(disk);
    let info = js.request("$JS.API.CONSUMER.INFO.S.D", "");
    assert_eq!(info["ack_floor"]["stream_seq"], 1, "{info}");
    assert_eq!(info["num_ack_pending"], 1);
    // After the ack wait, message 2 comes back; then message 3.
    let got = pull(
        &mut js,
        "D",
        "_INBOX.b",
        r#"{"batch":1,"expires":5000000000}"#,
    );
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].subject, "s.3");
    js.h.advance(Duration::from_millis(1100));
    js.run_storage();
    let got = pull(
        &mut js,
        "D",
        "_INBOX.c",
        r#"{"batch":1,"expires":5000000000}"#,
    );
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].subject, "s.2");
    assert_eq!(got[0].reply.split('.').nth(4), Some("2"));
}

#[test]
fn a_bad_consumer_config_gets_nats_servers_error() {
    let mut js = with_stream();
    let r = durable(
        &mut js,
        "D",
        r#"{"durable_name":"D","filter_subject":"other"}"#,
    );
    // nats-server 2.15 takes a filter outside the stream's subjects.
    assert!(r.get("error").is_none(), "{r}");
    let r = durable(
        &mut js,
        "D2",
        r#"{"durable_name":"D2","deliver_policy":"new","opt_start_seq":4}"#,
    );
    assert_eq!(r["error"]["err_code"], 10094, "{r}");
    let r = js.request(
        "$JS.API.CONSUMER.CREATE.S.D",
        r#"{"stream_name":"S","config":{"durable_name":"E"}}"#,
    );
    assert_eq!(r["error"]["err_code"], 10017, "{r}");
    let r = js.request(
        "$JS.API.CONSUMER.CREATE.X.D",
        r#"{"stream_name":"X","config":{"durable_name":"D"}}"#,
    );
    assert_eq!(r["error"]["err_code"], 10059, "{r}");
    let r = js.request(
        "$JS.API.CONSUMER.CREATE.S.D",
        r#"{"stream_name":"T","config":{"durable_name":"D"}}"#,
    );
    assert_eq!(r["error"]["err_code"], 10056, "{r}");
    let _ = SimDisk::with_seed(0);
}

#[test]
fn a_work_queue_forgets_what_its_consumer_acknowledged() {
    let mut js = Js::new();
    js.create(r#"{"name":"S","subjects":["s.>"],"retention":"workqueue"}"#);
    publish_n(&mut js, 3);
    let r = durable(&mut js, "N", r#"{"durable_name":"N"}"#);
    assert_eq!(r["error"]["err_code"], 10084, "{r}");
    durable(
        &mut js,
        "W",
        r#"{"durable_name":"W","ack_policy":"explicit"}"#,
    );
    let r = durable(
        &mut js,
        "X",
        r#"{"durable_name":"X","ack_policy":"explicit"}"#,
    );
    assert_eq!(r["error"]["err_code"], 10099, "{r}");
    let got = pull(&mut js, "W", "_INBOX.a", r#"{"batch":2}"#);
    assert_eq!(got.len(), 2);
    js.send(&format!("PUB {} 0\r\n\r\n", got[0].reply));
    js.run_storage();
    let info = js.request("$JS.API.STREAM.INFO.S", "");
    assert_eq!(info["state"]["messages"], 2, "{info}");
    assert_eq!(info["state"]["first_seq"], 2);
}

#[test]
fn an_interest_stream_keeps_a_message_until_every_consumer_acknowledged_it() {
    let mut js = Js::new();
    js.create(r#"{"name":"S","subjects":["s.>"],"retention":"interest"}"#);
    publish_n(&mut js, 2);
    let info = js.request("$JS.API.STREAM.INFO.S", "");
    assert_eq!(
        info["state"]["messages"], 0,
        "nobody was interested: {info}"
    );
    assert_eq!(info["state"]["last_seq"], 2);
    durable(
        &mut js,
        "A",
        r#"{"durable_name":"A","ack_policy":"explicit"}"#,
    );
    durable(
        &mut js,
        "B",
        r#"{"durable_name":"B","ack_policy":"explicit"}"#,
    );
    js.publish("s.x", "", "x");
    js.publish("s.y", "", "y");
    js.run_storage();
    let _ = js.out();
    let a = pull(&mut js, "A", "_INBOX.a", r#"{"batch":2}"#);
    assert_eq!(a.len(), 2);
    for m in &a {
        js.send(&format!("PUB {} 0\r\n\r\n", m.reply));
    }
    js.run_storage();
    let info = js.request("$JS.API.STREAM.INFO.S", "");
    assert_eq!(info["state"]["messages"], 2, "B still needs both: {info}");
    let b = pull(&mut js, "B", "_INBOX.b", r#"{"batch":2}"#);
    js.send(&format!("PUB {} 0\r\n\r\n", b[1].reply));
    js.run_storage();
    let info = js.request("$JS.API.STREAM.INFO.S", "");
    assert_eq!(info["state"]["messages"], 1, "{info}");
    js.send(&format!("PUB {} 0\r\n\r\n", b[0].reply));
    js.run_storage();
    let info = js.request("$JS.API.STREAM.INFO.S", "");
    assert_eq!(info["state"]["messages"], 0, "{info}");
}

#[test]
fn a_purge_moves_consumers_past_what_it_removed() {
    let mut js = with_stream();
    publish_n(&mut js, 5);
    durable(
        &mut js,
        "D",
        r#"{"durable_name":"D","ack_policy":"explicit"}"#,
    );
    let got = pull(&mut js, "D", "_INBOX.a", r#"{"batch":1}"#);
    assert_eq!(got.len(), 1);
    js.request("$JS.API.STREAM.PURGE.S", "");
    let info = js.request("$JS.API.CONSUMER.INFO.S.D", "");
    assert_eq!(info["num_ack_pending"], 0, "{info}");
    assert_eq!(info["num_pending"], 0);
    assert_eq!(info["ack_floor"]["stream_seq"], 5);
    js.publish("s.n", "", "new");
    js.run_storage();
    let _ = js.out();
    let got = pull(&mut js, "D", "_INBOX.b", r#"{"batch":1}"#);
    assert_eq!(got[0].subject, "s.n");
}

#[test]
fn an_ordered_push_consumer_subscribed_after_create_gets_the_last_values() {
    let mut js = Js::new();
    js.create(r#"{"name":"KV_w","subjects":["$KV.w.>"],"max_msgs_per_subject":5,"allow_direct":true,"allow_rollup_hdrs":true,"deny_delete":true,"discard":"new"}"#);
    for (k, v) in [("a", "1"), ("b", "2"), ("a", "3")] {
        js.publish(&format!("$KV.w.{k}"), "", v);
    }
    js.run_storage();
    let _ = js.out();
    let r = js.request(
        "$JS.API.CONSUMER.CREATE.KV_w",
        r#"{"stream_name":"KV_w","config":{"deliver_subject":"watch.in","deliver_policy":"last_per_subject","ack_policy":"none","max_deliver":1,"filter_subject":"$KV.w.>","replay_policy":"instant","flow_control":true,"idle_heartbeat":5000000000,"inactive_threshold":30000000000,"num_replicas":1,"mem_storage":true,"headers_only":false,"max_ack_pending":0,"ack_wait":0}}"#,
    );
    assert!(r.get("error").is_none(), "{r}");
    js.send("SUB watch.in 9\r\n");
    js.h.advance(Duration::from_millis(300));
    js.run_storage();
    let got: Vec<Got> = msgs(&js.out());
    let seen: Vec<&str> = got.iter().map(|m| m.body.as_str()).collect();
    assert_eq!(seen, vec!["2", "3"], "{got:?}");
}

#[test]
fn several_filters_deliver_and_count_only_their_subjects() {
    let mut js = with_stream();
    for (s, b) in [
        ("s.a", "1"),
        ("s.c", "2"),
        ("s.b", "3"),
        ("s.c", "4"),
        ("s.a", "5"),
    ] {
        js.publish(s, "", b);
    }
    js.run_storage();
    let _ = js.out();
    let r = durable(
        &mut js,
        "F",
        r#"{"durable_name":"F","ack_policy":"none","filter_subjects":["s.a","s.b"]}"#,
    );
    assert_eq!(r["num_pending"], 3, "{r}");
    let got = pull(&mut js, "F", "_INBOX.f", r#"{"batch":10,"no_wait":true}"#);
    let seen: Vec<(&str, Option<&str>)> = got
        .iter()
        .filter(|m| !m.reply.is_empty())
        .map(|m| (m.body.as_str(), m.reply.split('.').nth(8)))
        .collect();
    assert_eq!(
        seen,
        vec![("1", Some("2")), ("3", Some("1")), ("5", Some("0"))]
    );
    let info = js.request("$JS.API.CONSUMER.INFO.S.F", "");
    assert_eq!(info["num_pending"], 0, "{info}");
}

#[test]
fn jsz_lists_consumers_on_request() {
    let mut js = with_stream();
    durable(
        &mut js,
        "D",
        r#"{"durable_name":"D","ack_policy":"explicit"}"#,
    );
    let (status, body) = super::http(&mut js.h, "/jsz", "consumers=true");
    assert_eq!(status, 200);
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["consumers"], 1, "{v}");
    let stream = &v["account_details"][0]["stream_detail"][0];
    assert_eq!(stream["state"]["consumer_count"], 1);
    assert_eq!(stream["consumer_detail"][0]["name"], "D", "{v}");
    assert_eq!(
        stream["consumer_detail"][0]["config"]["ack_policy"],
        "explicit"
    );
}

#[test]
fn deliveries_alone_are_saved_within_a_second() {
    // Two deliveries, then `wait`, then a crash: what the consumer knows
    // after the restart.
    let delivered_after = |wait: Duration| {
        let mut js = with_stream();
        publish_n(&mut js, 3);
        durable(&mut js, "N", r#"{"durable_name":"N","ack_policy":"none"}"#);
        let got = pull(&mut js, "N", "_INBOX.a", r#"{"batch":2}"#);
        assert_eq!(got.len(), 2);
        js.h.advance(wait);
        js.run_storage();
        let disk = js.disk.clone();
        disk.crash();
        let mut js = Js::on(disk);
        let info = js.request("$JS.API.CONSUMER.INFO.S.N", "");
        let next = pull(&mut js, "N", "_INBOX.b", r#"{"batch":1}"#);
        (
            info["delivered"]["stream_seq"].clone(),
            next[0].subject.clone(),
        )
    };
    // Deliveries alone cost no write at once: a crash right after them
    // delivers them again (at least once)...
    assert_eq!(
        delivered_after(Duration::ZERO),
        (Value::from(0), "s.1".to_string())
    );
    // ...and they are saved within a second.
    assert_eq!(
        delivered_after(Duration::from_millis(1100)),
        (Value::from(2), "s.3".to_string())
    );
}

#[test]
fn a_double_ack_of_a_delivery_a_crash_took_back_is_not_answered() {
    let mut js = with_stream();
    publish_n(&mut js, 2);
    durable(
        &mut js,
        "D",
        r#"{"durable_name":"D","ack_policy":"explicit"}"#,
    );
    // The pull's read delivers message 1; the power goes before its
    // delivery is saved.
    let body = r#"{"batch":1}"#;
    js.send(&format!(
        "PUB $JS.API.CONSUMER.MSG.NEXT.S.D _INBOX.a {}\r\n{body}\r\n",
        body.len()
    ));
    js.run_storage_once();
    let got: Vec<Got> = msgs(&js.out())
        .into_iter()
        .filter(|m| m.reply.starts_with("$JS.ACK."))
        .collect();
    assert_eq!(got.len(), 1, "{got:?}");
    js.h.storage.clear();
    let disk = js.disk.clone();
    disk.crash();
    let mut js = Js::on(disk);
    // The client acks what it got before the crash. The recovered
    // consumer never delivered message 1: the ack changes nothing, and
    // answering it would promise that message 1 is done.
    js.send(&format!("PUB {} _INBOX.sync 0\r\n\r\n", got[0].reply));
    js.run_storage();
    assert!(!js.out().contains("MSG _INBOX.sync "));
    // Message 1 comes again, and its ack is answered this time.
    let again = pull(
        &mut js,
        "D",
        "_INBOX.b",
        r#"{"batch":1,"expires":1000000000}"#,
    );
    assert_eq!(again.len(), 1, "{again:?}");
    assert_eq!(again[0].body, "m1");
    js.send(&format!("PUB {} _INBOX.sync2 0\r\n\r\n", again[0].reply));
    js.run_storage();
    assert!(js.out().contains("MSG _INBOX.sync2 1 0\r\n"));
    // An ack of a message delivered and acked before stays answered.
    js.send(&format!("PUB {} _INBOX.sync3 0\r\n\r\n", again[0].reply));
    js.run_storage();
    assert!(js.out().contains("MSG _INBOX.sync3 1 0\r\n"));
}

#[test]
fn the_last_message_on_a_wildcard_subject_is_the_newest_that_matches() {
    // An object store lists its objects from the last message on
    // `$O.<bucket>.M.>` before its watcher starts (nats-py, nats.go).
    let mut js = Js::new();
    js.create(r#"{"name":"OBJ_CF","subjects":["$O.CF.C.>","$O.CF.M.>"],"allow_rollup_hdrs":true,"allow_direct":true,"discard":"new"}"#);
    js.publish("$O.CF.C.n1", "", "chunk of big");
    js.publish("$O.CF.M.Ymln", "", "meta of big");
    js.publish("$O.CF.C.n2", "", "chunk of small");
    js.publish("$O.CF.M.c21hbGw=", "", "meta of small");
    js.publish("$O.CF.C.n3", "", "a chunk after the last meta");
    js.run_storage();
    let _ = js.out();
    for filter in ["$O.CF.M.>", "$O.CF.M.*"] {
        let r = js.request(
            "$JS.API.STREAM.MSG.GET.OBJ_CF",
            &format!(r#"{{"last_by_subj":"{filter}"}}"#),
        );
        assert_eq!(r["message"]["seq"], 4, "{filter}: {r}");
        assert_eq!(r["message"]["subject"], "$O.CF.M.c21hbGw=", "{filter}: {r}");
    }
    let r = js.request("$JS.API.STREAM.MSG.GET.OBJ_CF", r#"{"last_by_subj":">"}"#);
    assert_eq!(r["message"]["seq"], 5, "{r}");
    let r = js.request(
        "$JS.API.STREAM.MSG.GET.OBJ_CF",
        r#"{"last_by_subj":"$O.CF.X.>"}"#,
    );
    assert_eq!(r["error"]["err_code"], 10037, "{r}");
}

#[test]
fn consumer_actions_and_terminations_are_advised_as_nats_server_does() {
    let mut js = with_stream();
    publish_n(&mut js, 1);
    js.send("SUB $JS.EVENT.ADVISORY.CONSUMER.> 5\r\n");
    let (_, seen) = request_seeing(
        &mut js,
        "$JS.API.CONSUMER.CREATE.S.D",
        r#"{"stream_name":"S","config":{"durable_name":"D","ack_policy":"explicit"}}"#,
    );
    let got = pull(&mut js, "D", "_INBOX.a", r#"{"batch":1}"#);
    js.send(&format!("PUB {} 11\r\n+TERM stale\r\n", got[0].reply));
    js.run_storage();
    let out = js.out();
    let created = seen
        .into_iter()
        .find(|m| m.subject == "$JS.EVENT.ADVISORY.CONSUMER.CREATED.S.D");
    let created = created.expect("created advisory").body;
    assert!(
        created.starts_with(r#"{"type":"io.nats.jetstream.advisory.v1.consumer_action","id":""#)
            && created.ends_with(r#","stream":"S","consumer":"D","action":"create"}"#),
        "{created}"
    );
    let term = msgs(&out)
        .into_iter()
        .find(|m| m.subject == "$JS.EVENT.ADVISORY.CONSUMER.MSG_TERMINATED.S.D")
        .expect("terminated advisory")
        .body;
    assert!(
        term.ends_with(r#","stream":"S","consumer":"D","consumer_seq":1,"stream_seq":1,"deliveries":1,"reason":"stale"}"#),
        "{term}"
    );
}

#[test]
fn by_start_time_starts_at_the_first_message_stored_that_late() {
    let mut js = with_stream();
    let mut times = Vec::new();
    for i in 1..=5 {
        times.push(1_700_000_000_000_000_000 + js.h.now_ns);
        js.publish(&format!("s.{i}"), "", "x");
        js.run_storage();
        js.h.advance(Duration::from_millis(100));
    }
    let _ = js.out();
    let at = crate::time::rfc3339_nanos(times[2]);
    let r = durable(
        &mut js,
        "T",
        &format!(
            r#"{{"durable_name":"T","ack_policy":"explicit","deliver_policy":"by_start_time","opt_start_time":"{at}"}}"#
        ),
    );
    assert!(r.get("error").is_none(), "{r}");
    assert_eq!(r["num_pending"], 3, "{r}");
    assert_eq!(r["delivered"]["stream_seq"], 2, "{r}");
    let got = pull(&mut js, "T", "_INBOX.t", r#"{"batch":1}"#);
    assert_eq!(got[0].subject, "s.3");
    // Later than everything: only new messages.
    let late = crate::time::rfc3339_nanos(times[4] + 1);
    let r = durable(
        &mut js,
        "L",
        &format!(
            r#"{{"durable_name":"L","deliver_policy":"by_start_time","opt_start_time":"{late}"}}"#
        ),
    );
    assert_eq!(r["num_pending"], 0, "{r}");
    assert_eq!(r["delivered"]["stream_seq"], 5, "{r}");
}

#[test]
fn replay_original_spaces_deliveries_as_the_messages_were_stored() {
    let mut js = with_stream();
    for i in 1..=3 {
        js.publish(&format!("s.{i}"), "", "x");
        js.run_storage();
        js.h.advance(Duration::from_millis(200));
    }
    let _ = js.out();
    durable(
        &mut js,
        "R",
        r#"{"durable_name":"R","ack_policy":"explicit","replay_policy":"original"}"#,
    );
    let got = pull(
        &mut js,
        "R",
        "_INBOX.r",
        r#"{"batch":3,"expires":5000000000}"#,
    );
    assert_eq!(got.len(), 1, "the first at once: {got:?}");
    js.h.advance(Duration::from_millis(150));
    js.run_storage();
    assert!(msgs(&js.out()).is_empty(), "not before its 200 ms");
    js.h.advance(Duration::from_millis(60));
    js.run_storage();
    let got: Vec<Got> = msgs(&js.out());
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].subject, "s.2");
    js.h.advance(Duration::from_millis(210));
    js.run_storage();
    let got: Vec<Got> = msgs(&js.out());
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].subject, "s.3");
    // Caught up: what comes next is delivered at once.
    let got = pull(
        &mut js,
        "R",
        "_INBOX.r2",
        r#"{"batch":1,"expires":5000000000}"#,
    );
    assert!(got.is_empty());
    js.publish("s.4", "", "x");
    js.run_storage();
    let got: Vec<Got> = msgs(&js.out())
        .into_iter()
        .filter(|m| m.subject == "s.4")
        .collect();
    assert_eq!(got.len(), 1);
}

#[test]
fn a_rate_limited_push_consumer_waits_for_its_tokens() {
    let mut js = Js::new();
    js.create(r#"{"name":"S","subjects":["s.>"],"max_msg_size":200}"#);
    for i in 1..=3 {
        js.publish(&format!("s.{i}"), "", &"x".repeat(100));
    }
    js.run_storage();
    js.send("SUB push.r 9\r\n");
    let _ = js.out();
    // 1000 bytes a second, a burst of 200: one message now, the next
    // once the bucket holds its size again.
    let (r, seen) = request_seeing(
        &mut js,
        "$JS.API.CONSUMER.CREATE.S.P",
        r#"{"stream_name":"S","config":{"durable_name":"P","deliver_subject":"push.r","rate_limit_bps":8000}}"#,
    );
    assert!(r.get("error").is_none(), "{r}");
    let first = seen.iter().filter(|m| m.to_sid == "9").count();
    assert_eq!(first, 1);
    let mut times = 0;
    for _ in 0..40 {
        js.h.advance(Duration::from_millis(10));
        js.run_storage();
        let n = msgs(&js.out())
            .into_iter()
            .filter(|m| m.to_sid == "9")
            .count();
        if n > 0 {
            times += n;
            break;
        }
    }
    assert_eq!(times, 1, "the second comes within 400 ms, alone");
}

/// An interest stream keeps only what some consumer's filter wants: a
/// message nobody's filter matches is not kept, and deleting a consumer
/// drops what only it wanted (nats-server 2.15.1 answers the same: 2
/// messages, then 1).
#[test]
fn an_interest_stream_drops_what_no_consumer_filter_wants() {
    let mut js = Js::new();
    js.create(r#"{"name":"S","subjects":["s.>"],"retention":"interest"}"#);
    for (name, filter) in [("A", "s.a"), ("B", "s.b")] {
        durable(
            &mut js,
            name,
            &format!(
                r#"{{"durable_name":"{name}","ack_policy":"explicit","filter_subject":"{filter}"}}"#
            ),
        );
    }
    for subject in ["s.a", "s.b", "s.c"] {
        js.publish(subject, "", "x");
    }
    js.run_storage();
    let _ = js.out();
    let info = js.request("$JS.API.STREAM.INFO.S", "");
    assert_eq!(info["state"]["messages"], 2, "{info}");
    assert_eq!(info["state"]["last_seq"], 3, "{info}");
    let del = js.request("$JS.API.CONSUMER.DELETE.S.A", "");
    assert_eq!(del["success"], true, "{del}");
    let info = js.request("$JS.API.STREAM.INFO.S", "");
    assert_eq!(info["state"]["messages"], 1, "{info}");
    assert_eq!(info["state"]["first_seq"], 2, "{info}");
}
