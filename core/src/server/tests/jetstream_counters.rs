//! Distributed counters (`allow_msg_counter`, `Nats-Incr`), against what
//! nats-server 2.15.1 answered on loopback
//! (research/js-counters-2.15.1.md).

use super::*;

impl Js {
    /// The PubAck's JSON text for the publish on `reply`, from `out`.
    fn pub_ack_text(out: &str, reply: &str) -> String {
        let head = format!("MSG {reply} 1 ");
        let at = out.find(&head).unwrap_or_else(|| panic!("no ack: {out}"));
        let rest = &out[at..];
        let line_end = rest.find("\r\n").unwrap();
        let len: usize = rest[head.len()..line_end].parse().unwrap();
        rest[line_end + 2..line_end + 2 + len].to_string()
    }

    /// Publishes, runs storage, and returns the PubAck's JSON text.
    fn incr(&mut self, subject: &str, headers: &str, body: &str) -> String {
        let reply = self.publish(subject, headers, body);
        self.run_storage();
        let out = self.out();
        Self::pub_ack_text(&out, &reply)
    }

    /// The last message on `subject`: its headers and body.
    fn last_of(&mut self, stream: &str, subject: &str) -> (String, String) {
        let m = self.request(
            &format!("$JS.API.STREAM.MSG.GET.{stream}"),
            &format!(r#"{{"last_by_subj":"{subject}"}}"#),
        );
        let decode = |v: &Value| {
            let text = v.as_str().unwrap_or_default();
            let bytes = data_encoding::BASE64.decode(text.as_bytes()).unwrap();
            String::from_utf8(bytes).unwrap()
        };
        (decode(&m["message"]["hdrs"]), decode(&m["message"]["data"]))
    }
}

const COUNTERS: &str = r#"{"name":"C","subjects":["c.>"],"allow_msg_counter":true}"#;

fn error_of(ack: &str) -> (u64, String) {
    let v: Value = serde_json::from_str(ack).unwrap();
    let e = &v["error"];
    (
        e["err_code"].as_u64().unwrap_or(0),
        e["description"].as_str().unwrap_or_default().to_string(),
    )
}

#[test]
fn counter_streams_take_nats_servers_configuration_rules() {
    let mut js = Js::new();
    let created = js.create(COUNTERS);
    assert_eq!(created["config"]["allow_msg_counter"], true, "{created}");
    let refused = [
        (
            r#""discard":"new""#,
            10052,
            "counter stream cannot use discard new",
        ),
        (
            r#""allow_msg_ttl":true"#,
            10052,
            "counter stream cannot use message TTLs",
        ),
        (
            r#""retention":"workqueue""#,
            10052,
            "counter stream can only use limits retention",
        ),
        (
            r#""retention":"interest""#,
            10052,
            "counter stream can only use limits retention",
        ),
    ];
    for (i, (extra, code, text)) in refused.into_iter().enumerate() {
        let config =
            format!(r#"{{"name":"E{i}","subjects":["e{i}"],"allow_msg_counter":true,{extra}}}"#);
        let answer = js.create(&config);
        assert_eq!(answer["error"]["err_code"], code, "{extra}: {answer}");
        assert_eq!(answer["error"]["description"], text, "{extra}");
    }
    let mirror = js.create(r#"{"name":"M","allow_msg_counter":true,"mirror":{"name":"C"}}"#);
    assert_eq!(mirror["error"]["err_code"], 10173, "{mirror}");
    assert_eq!(
        mirror["error"]["description"],
        "stream mirrors can not also calculate counters"
    );
    // Markers turn TTLs on after the counter check, as in nats-server.
    let markers = js.create(
        r#"{"name":"MK","subjects":["mk"],"allow_msg_counter":true,"subject_delete_marker_ttl":5000000000}"#,
    );
    assert_eq!(markers["config"]["allow_msg_ttl"], true, "{markers}");
    // The setting cannot change either way.
    let off = js.request(
        "$JS.API.STREAM.UPDATE.C",
        r#"{"name":"C","subjects":["c.>"]}"#,
    );
    let changed = "stream configuration update can not change message counter setting";
    assert_eq!(off["error"]["description"], changed, "{off}");
    js.create(r#"{"name":"P","subjects":["p.>"]}"#);
    let on = js.request(
        "$JS.API.STREAM.UPDATE.P",
        r#"{"name":"P","subjects":["p.>"],"allow_msg_counter":true}"#,
    );
    assert_eq!(on["error"]["description"], changed, "{on}");
    let discard_new = js.request(
        "$JS.API.STREAM.UPDATE.C",
        r#"{"name":"C","subjects":["c.>"],"allow_msg_counter":true,"discard":"new"}"#,
    );
    assert_eq!(
        discard_new["error"]["description"],
        "counter stream cannot use discard new"
    );
}

#[test]
fn increments_add_up_per_subject_and_are_acknowledged_with_the_total() {
    let mut js = Js::new();
    js.create(COUNTERS);
    // nats-server 2.15.1's answers, byte for byte.
    for (incr, ack) in [
        ("+1", r#"{"stream":"C","seq":1,"val":"1"}"#),
        ("1", r#"{"stream":"C","seq":2,"val":"2"}"#),
        ("-5", r#"{"stream":"C","seq":3,"val":"-3"}"#),
        ("0", r#"{"stream":"C","seq":4,"val":"-3"}"#),
        ("-0", r#"{"stream":"C","seq":5,"val":"-3"}"#),
        ("007", r#"{"stream":"C","seq":6,"val":"4"}"#),
    ] {
        assert_eq!(js.incr("c.a", &format!("Nats-Incr: {incr}"), ""), ack);
    }
    let big = "123456789012345678901234567890123456789012345678901234567890";
    js.incr("c.b", &format!("Nats-Incr: {big}"), "");
    assert_eq!(
        js.incr("c.b", &format!("Nats-Incr: {big}"), ""),
        r#"{"stream":"C","seq":8,"val":"246913578024691357802469135780246913578024691357802469135780"}"#
    );
    // The first of two headers counts; other headers are kept.
    assert_eq!(
        js.incr("c.a", "Nats-Incr: 1\r\nNats-Incr: 5", ""),
        r#"{"stream":"C","seq":9,"val":"5"}"#
    );
    assert_eq!(
        js.incr("c.h", "Foo: bar\r\nNats-Incr:    3", ""),
        r#"{"stream":"C","seq":10,"val":"3"}"#
    );
    let (headers, body) = js.last_of("C", "c.h");
    assert_eq!(headers, "NATS/1.0\r\nFoo: bar\r\nNats-Incr:    3\r\n\r\n");
    assert_eq!(body, r#"{"val":"3"}"#);
    let (_, body) = js.last_of("C", "c.a");
    assert_eq!(body, r#"{"val":"5"}"#);
}

#[test]
fn bad_increments_get_nats_servers_errors() {
    let mut js = Js::new();
    js.create(COUNTERS);
    js.create(r#"{"name":"P","subjects":["p.>"]}"#);
    let invalid = (10171, "message counter increment is invalid".to_string());
    let missing = (10169, "message counter increment is missing".to_string());
    for (subject, headers, body, want) in [
        ("c.a", "Nats-Incr: abc", "", invalid.clone()),
        ("c.a", "Nats-Incr: 1.5", "", invalid.clone()),
        ("c.a", "Nats-Incr: 1 ", "", invalid.clone()),
        ("c.a", "Nats-Incr: 1_000", "", invalid.clone()),
        (
            "c.a",
            "Nats-Incr: 1\r\nNats-Expected-Stream: C",
            "",
            invalid.clone(),
        ),
        (
            "c.a",
            "Nats-Incr: 1\r\nNats-Rollup: sub",
            "",
            invalid.clone(),
        ),
        (
            "c.a",
            "Nats-Incr: 1\r\nNats-Expected-Last-Sequence: 0",
            "",
            invalid.clone(),
        ),
        ("c.a", "Nats-Incr:", "", missing.clone()),
        ("c.a", "nats-incr: 1", "", missing.clone()),
        ("c.a", "", "", missing.clone()),
        ("c.a", "Foo: bar", "", missing.clone()),
        (
            "c.a",
            "Nats-Incr: 1",
            "x",
            (10170, "message counter has payload".into()),
        ),
        ("p.a", "Nats-Incr: abc", "", invalid.clone()),
        (
            "p.a",
            "Nats-Incr: 1",
            "",
            (10168, "message counters is disabled".into()),
        ),
        (
            "c.a",
            "Nats-Incr: 1\r\nNats-TTL: 5s",
            "",
            (10166, "per-message TTL is disabled".into()),
        ),
    ] {
        let ack = js.incr(subject, headers, body);
        assert_eq!(error_of(&ack), want, "{headers:?} {body:?}: {ack}");
        assert!(ack.ends_with(r#""seq":0}"#), "{ack}");
    }
    // An empty increment is no increment: stored as it came elsewhere.
    assert_eq!(
        js.incr("p.a", "Nats-Incr:", "x"),
        r#"{"stream":"P","seq":1}"#
    );
    assert_eq!(
        js.incr("c.a", "Nats-Incr: 2", ""),
        r#"{"stream":"C","seq":1,"val":"2"}"#,
        "refused increments count for nothing"
    );
}

/// Increments in flight add up: each is given the total after the one
/// before it, read from the store once.
#[test]
fn pipelined_increments_lose_nothing() {
    let mut js = Js::new();
    js.create(COUNTERS);
    let replies: Vec<String> = (0..50)
        .map(|_| js.publish("c.p", "Nats-Incr: 2", ""))
        .collect();
    let other = js.publish("c.q", "Nats-Incr: -1", "");
    let reads =
        js.h.storage
            .iter()
            .filter(|op| matches!(op, StorageOp::Read { .. }))
            .count();
    assert_eq!(reads, 1, "one read, for c.p's total: {:?}", js.h.storage);
    js.run_storage();
    let out = js.out();
    for (i, reply) in replies.iter().enumerate() {
        let want = format!(
            r#"{{"stream":"C","seq":{},"val":"{}"}}"#,
            i + 1,
            2 * (i + 1)
        );
        assert_eq!(Js::pub_ack_text(&out, reply), want);
    }
    assert_eq!(
        Js::pub_ack_text(&out, &other),
        r#"{"stream":"C","seq":51,"val":"-1"}"#
    );
    // A known total needs no read.
    let next = js.publish("c.p", "Nats-Incr: 1", "");
    assert!(
        !js.h
            .storage
            .iter()
            .any(|op| matches!(op, StorageOp::Read { .. }))
    );
    js.run_storage();
    let out = js.out();
    assert_eq!(
        Js::pub_ack_text(&out, &next),
        r#"{"stream":"C","seq":52,"val":"101"}"#
    );
}

#[test]
fn totals_start_over_where_their_last_message_went() {
    let mut js = Js::new();
    js.create(COUNTERS);
    js.incr("c.d", "Nats-Incr: 5", "");
    js.incr("c.d", "Nats-Incr: 7", "");
    js.request("$JS.API.STREAM.MSG.DELETE.C", r#"{"seq":2}"#);
    assert_eq!(
        js.incr("c.d", "Nats-Incr: 1", ""),
        r#"{"stream":"C","seq":3,"val":"6"}"#
    );
    js.request("$JS.API.STREAM.PURGE.C", r#"{"filter":"c.d"}"#);
    assert_eq!(
        js.incr("c.d", "Nats-Incr: 1", ""),
        r#"{"stream":"C","seq":4,"val":"1"}"#
    );
    // One message per subject keeps the total.
    js.create(
        r#"{"name":"K","subjects":["k.>"],"allow_msg_counter":true,"max_msgs_per_subject":1}"#,
    );
    let replies: Vec<String> = ["2", "3", "4"]
        .iter()
        .map(|n| js.publish("k.a", &format!("Nats-Incr: {n}"), ""))
        .collect();
    js.run_storage();
    let out = js.out();
    let last = Js::pub_ack_text(&out, &replies[2]);
    assert_eq!(last, r#"{"stream":"K","seq":3,"val":"9"}"#);
    // A stream-wide limit that removes a subject's last message starts it
    // over, even for publishes of the same event.
    js.create(r#"{"name":"M","subjects":["m.>"],"allow_msg_counter":true,"max_msgs":2}"#);
    let replies: Vec<String> = ["m.a", "m.b", "m.c", "m.a"]
        .iter()
        .map(|s| js.publish(s, "Nats-Incr: 1", ""))
        .collect();
    js.run_storage();
    let out = js.out();
    assert_eq!(
        Js::pub_ack_text(&out, &replies[3]),
        r#"{"stream":"M","seq":4,"val":"1"}"#
    );
}

#[test]
fn totals_survive_a_restart() {
    let mut js = Js::new();
    js.create(COUNTERS);
    js.incr("c.r", "Nats-Incr: 41", "");
    let mut js = Js::on(js.disk.clone());
    assert_eq!(
        js.incr("c.r", "Nats-Incr: 1", ""),
        r#"{"stream":"C","seq":2,"val":"42"}"#
    );
}

#[test]
fn a_failed_increment_is_not_counted() {
    let mut js = Js::new();
    js.create(COUNTERS);
    js.incr("c.f", "Nats-Incr: 5", "");
    let failed = js.publish("c.f", "Nats-Incr: 100", "");
    js.disk.fail_next(natrix_storage::DiskErrorKind::Io);
    js.run_storage();
    let out = js.out();
    assert_eq!(error_of(&Js::pub_ack_text(&out, &failed)).0, 10077, "{out}");
    assert_eq!(
        js.incr("c.f", "Nats-Incr: 1", ""),
        r#"{"stream":"C","seq":2,"val":"6"}"#
    );
}

#[test]
fn duplicates_and_sizes_follow_nats_server() {
    let mut js = Js::new();
    js.create(COUNTERS);
    let first = js.incr("c.a", "Nats-Msg-Id: m1\r\nNats-Incr: 10", "");
    assert_eq!(first, r#"{"stream":"C","seq":1,"val":"10"}"#);
    let again = js.incr("c.a", "Nats-Msg-Id: m1\r\nNats-Incr: 10", "");
    assert_eq!(again, r#"{"stream":"C","seq":1,"duplicate": true}"#);
    let no_incr = js.incr("c.a", "Nats-Msg-Id: m1", "");
    assert_eq!(no_incr, r#"{"stream":"C","seq":1,"duplicate": true}"#);
    // The size limit applies to the message with its total.
    js.create(r#"{"name":"S","subjects":["s.>"],"allow_msg_counter":true,"max_msg_size":37}"#);
    // 26 bytes of headers, 11 of body.
    assert_eq!(
        js.incr("s.a", "Nats-Incr: 1", ""),
        r#"{"stream":"S","seq":1,"val":"1"}"#
    );
    let ack = js.incr("s.a", "Nats-Incr: 9", "");
    assert_eq!(error_of(&ack).0, 10054, "{ack}");
    assert_eq!(
        js.incr("s.a", "Nats-Incr: 8", ""),
        r#"{"stream":"S","seq":2,"val":"9"}"#
    );
}

/// A counter stream sourcing counter streams sums them, as in the
/// nats-server 2.15.1 transcript: each origin's last total is kept in
/// `Nats-Counter-Sources`, a sourced message's `Nats-Incr` becomes what
/// its origin counted since, and local increments add to the same total.
#[test]
fn a_counter_stream_sums_the_counters_it_sources() {
    let mut js = Js::new();
    js.create(r#"{"name":"A","subjects":["a.>"],"allow_msg_counter":true}"#);
    js.create(r#"{"name":"B","subjects":["b.>"],"allow_msg_counter":true}"#);
    js.incr("a.x", "Nats-Incr: 5", "");
    js.incr("b.x", "Nats-Incr: 7", "");
    let agg = js.create(
        r#"{"name":"AGG","subjects":["agg.>"],"allow_msg_counter":true,"sources":[{"name":"A","subject_transforms":[{"src":"a.>","dest":"agg.>"}]},{"name":"B","subject_transforms":[{"src":"b.>","dest":"agg.>"}]}]}"#,
    );
    assert_eq!(agg["did_create"], true, "{agg}");
    js.run_storage();
    let (headers, body) = js.last_of("AGG", "agg.x");
    assert_eq!(body, r#"{"val":"12"}"#, "{headers}");
    assert!(
        headers.ends_with(
            "\r\nNats-Counter-Sources: {\"A\":{\"a.x\":\"5\"},\"B\":{\"b.x\":\"7\"}}\r\n\r\n"
        ),
        "{headers}"
    );
    js.incr("a.x", "Nats-Incr: 1", "");
    js.run_storage();
    let (headers, body) = js.last_of("AGG", "agg.x");
    assert_eq!(body, r#"{"val":"13"}"#);
    assert!(
        headers.starts_with("NATS/1.0\r\nNats-Incr: 1\r\nNats-Stream-Source: A 2 "),
        "{headers}"
    );
    assert!(
        headers.contains(r#"{"A":{"a.x":"6"},"B":{"b.x":"7"}}"#),
        "{headers}"
    );
    assert_eq!(
        js.incr("agg.x", "Nats-Incr: 100", ""),
        r#"{"stream":"AGG","seq":4,"val":"113"}"#
    );
    let (headers, _) = js.last_of("AGG", "agg.x");
    assert_eq!(
        headers,
        "NATS/1.0\r\nNats-Incr: 100\r\nNats-Counter-Sources: {\"A\":{\"a.x\":\"6\"},\"B\":{\"b.x\":\"7\"}}\r\n\r\n"
    );
    js.incr("b.x", "Nats-Incr: -2", "");
    js.run_storage();
    let (headers, body) = js.last_of("AGG", "agg.x");
    assert_eq!(body, r#"{"val":"111"}"#);
    assert!(
        headers.starts_with("NATS/1.0\r\nNats-Incr: -2\r\n"),
        "{headers}"
    );
    assert!(
        headers.contains(r#"{"A":{"a.x":"6"},"B":{"b.x":"5"}}"#),
        "{headers}"
    );
    // A stream without counters stores them as they came.
    js.create(r#"{"name":"PS","subjects":["ps.>"],"sources":[{"name":"A"}]}"#);
    js.run_storage();
    let (headers, body) = js.last_of("PS", "a.x");
    assert_eq!(body, r#"{"val":"6"}"#);
    assert!(
        headers.starts_with("NATS/1.0\r\nNats-Incr: 1\r\nNats-Stream-Source: A 2 > > a.x"),
        "{headers}"
    );
}

/// A `Nats-Counter-Sources` a client sends is stored and read back like
/// one the stream wrote, so a malformed one breaks the subject (10172),
/// as nats-server 2.15.1 answered.
#[test]
fn a_subject_whose_last_message_holds_no_tally_is_broken() {
    let mut js = Js::new();
    js.create(COUNTERS);
    js.incr(
        "c.z",
        "Nats-Incr: 1\r\nNats-Counter-Sources: {\"X\":{\"x\":\"9\"}}",
        "",
    );
    assert_eq!(
        js.incr("c.z", "Nats-Incr: 1", ""),
        r#"{"stream":"C","seq":2,"val":"2"}"#
    );
    let (headers, _) = js.last_of("C", "c.z");
    assert_eq!(
        headers,
        "NATS/1.0\r\nNats-Incr: 1\r\nNats-Counter-Sources: {\"X\":{\"x\":\"9\"}}\r\n\r\n"
    );
    js.incr("c.w", "Nats-Incr: 1\r\nNats-Counter-Sources: nope", "");
    let ack = js.incr("c.w", "Nats-Incr: 1", "");
    assert_eq!(
        ack,
        r#"{"error":{"code":400,"err_code":10172,"description":"message counter is broken"},"stream":"C","seq":0}"#
    );
    // Read from the store too, after a restart.
    let mut js = Js::on(js.disk.clone());
    let ack = js.incr("c.w", "Nats-Incr: 1", "");
    assert_eq!(error_of(&ack).0, 10172, "{ack}");
}

/// A republished increment shows the message as stored: the publisher's
/// headers and the total, as nats-server 2.15.1 sent it.
#[test]
fn a_republished_increment_carries_its_total() {
    let mut js = Js::new();
    js.send("SUB rp.> 2\r\n");
    js.create(r#"{"name":"R","subjects":["r.>"],"allow_msg_counter":true,"republish":{"src":">","dest":"rp.>"}}"#);
    js.incr("r.a", "Nats-Incr: 3", "");
    let reply = js.publish("r.a", "Nats-Incr: 2", "");
    js.run_storage();
    let out = js.out();
    assert_eq!(
        Js::pub_ack_text(&out, &reply),
        r#"{"stream":"R","seq":2,"val":"5"}"#
    );
    let copies = hmsgs(&out.replace("HMSG rp.r.a 2 ", "HMSG rp 1 "), "rp");
    let (h, body) = copies.last().unwrap_or_else(|| panic!("{out}"));
    assert!(h.starts_with("NATS/1.0\r\nNats-Incr: 2\r\nNats-Stream: R\r\nNats-Subject: r.a\r\nNats-Sequence: 2\r\n"), "{h}");
    assert!(h.ends_with("Nats-Last-Sequence: 1\r\n\r\n"), "{h}");
    assert_eq!(body, r#"{"val":"5"}"#);
}
