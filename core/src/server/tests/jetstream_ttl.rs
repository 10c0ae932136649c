//! Per-message TTLs (`Nats-TTL`), subject delete markers and the API level
//! header, against what nats-server 2.15.1 answered on loopback.

use super::*;

const SECOND: u64 = 1_000_000_000;

/// A server restarted on `disk` with its clock at `ns` (the same wall
/// clock the first server saw at `ns`).
fn restarted_at(disk: SimDisk, ns: u64) -> Js {
    let mut h = Harness::new(js_opts());
    h.server = Server::new(js_opts(), 7, now_at(ns));
    h.now_ns = ns;
    let exec = executor(&disk);
    let conn = h.client(r#"{"headers":true,"no_responders":true,"verbose":false}"#);
    let mut js = Js {
        h,
        disk,
        exec,
        conn,
        next_reply: 0,
    };
    js.run_storage();
    js.send("SUB _INBOX.> 1\r\n");
    js
}

impl Js {
    /// Publishes, runs storage, and returns the PubAck's JSON text.
    fn ack(&mut self, subject: &str, headers: &str, body: &str) -> String {
        let reply = self.publish(subject, headers, body);
        self.run_storage();
        let out = self.out();
        let head = format!("MSG {reply} 1 ");
        let at = out.find(&head).unwrap_or_else(|| panic!("no ack: {out}"));
        let rest = &out[at..];
        let line_end = rest.find("\r\n").unwrap();
        let len: usize = rest[head.len()..line_end].parse().unwrap();
        rest[line_end + 2..line_end + 2 + len].to_string()
    }

    /// Moves the clock on by `ms` and runs what its timers asked of the
    /// store.
    fn wait_ms(&mut self, ms: u64) {
        self.h.advance(Duration::from_millis(ms));
        self.run_storage();
    }

    /// The stream's subjects and their counts.
    fn subjects(&mut self, stream: &str) -> Value {
        let info = self.request(
            &format!("$JS.API.STREAM.INFO.{stream}"),
            r#"{"subjects_filter":">"}"#,
        );
        info["state"]["subjects"].clone()
    }

    /// Message `seq`: its subject, headers and body, or `None`.
    fn stored(&mut self, stream: &str, seq: u64) -> Option<(String, String, String)> {
        let r = self.request(
            &format!("$JS.API.STREAM.MSG.GET.{stream}"),
            &format!(r#"{{"seq":{seq}}}"#),
        );
        let m = r.get("message")?;
        let decode = |v: &Value| {
            let text = v.as_str().unwrap_or_default();
            String::from_utf8(data_encoding::BASE64.decode(text.as_bytes()).unwrap()).unwrap()
        };
        Some((
            m["subject"].as_str().unwrap().to_string(),
            decode(&m["hdrs"]),
            decode(&m["data"]),
        ))
    }

    /// Sends a request with headers; returns everything written back.
    fn raw_request(&mut self, subject: &str, headers: &str, body: &str) -> String {
        self.publish(subject, headers, body);
        self.run_storage();
        self.out()
    }
}

fn body_of(out: &str) -> &str {
    let at = out.rfind("\r\n{").expect("a JSON body");
    out[at + 2..].trim_end()
}

#[test]
fn a_ttl_is_refused_where_the_stream_does_not_allow_it_or_invalid() {
    let mut js = Js::new();
    js.create(r#"{"name":"PLAIN","subjects":["p"]}"#);
    js.create(r#"{"name":"T","subjects":["t"],"allow_msg_ttl":true}"#);
    let disabled = r#"{"error":{"code":400,"err_code":10166,"description":"per-message TTL is disabled"},"stream":"PLAIN","seq":0}"#;
    let invalid = |s: &str| {
        format!(
            r#"{{"error":{{"code":400,"err_code":10165,"description":"invalid per-message TTL"}},"stream":"{s}","seq":0}}"#
        )
    };
    assert_eq!(js.ack("p", "Nats-TTL: 1s", "x"), disabled);
    assert_eq!(js.ack("p", "Nats-TTL: never", "x"), disabled);
    assert_eq!(js.ack("p", "Nats-TTL: abc", "x"), invalid("PLAIN"));
    assert_eq!(js.ack("p", "Nats-TTL: 0", "x"), invalid("PLAIN"));
    for bad in ["500ms", "0s", "-1", "1d", "abc"] {
        assert_eq!(js.ack("t", &format!("Nats-TTL: {bad}"), "x"), invalid("T"));
    }
    assert_eq!(
        js.ack("t", "Nats-TTL: 1.5s", "x"),
        r#"{"stream":"T","seq":1}"#
    );
    assert_eq!(
        js.ack("t", "Nats-TTL: never", "x"),
        r#"{"stream":"T","seq":2}"#
    );
    assert_eq!(js.ack("t", "Nats-TTL: 2", "x"), r#"{"stream":"T","seq":3}"#);
    // A required API level on a publish is stored, not checked.
    let ack = js.ack("p", "Nats-Required-Api-Level: 99", "x");
    assert_eq!(ack, r#"{"stream":"PLAIN","seq":1}"#);
    let (_, headers, _) = js.stored("PLAIN", 1).unwrap();
    assert_eq!(headers, "NATS/1.0\r\nNats-Required-Api-Level: 99\r\n\r\n");
}

#[test]
fn a_message_goes_when_its_ttl_has_passed() {
    let mut js = Js::new();
    js.create(r#"{"name":"T","subjects":["t.>"],"allow_msg_ttl":true}"#);
    js.ack("t.a", "Nats-TTL: 2s", "short");
    js.ack("t.b", "", "stays");
    js.ack("t.c", "Nats-TTL: 1m", "long");
    js.wait_ms(1_999);
    assert!(js.stored("T", 1).is_some(), "not due yet");
    js.wait_ms(1);
    assert!(js.stored("T", 1).is_none(), "due at 2 s");
    assert_eq!(js.subjects("T"), serde_json::json!({"t.b": 1, "t.c": 1}));
    js.wait_ms(58_000);
    assert_eq!(js.subjects("T"), serde_json::json!({"t.b": 1}));
}

#[test]
fn never_outlives_the_max_age_and_a_ttl_cuts_it_short() {
    let mut js = Js::new();
    js.create(r#"{"name":"T","subjects":["t.>"],"allow_msg_ttl":true,"max_age":3000000000}"#);
    js.ack("t.never", "Nats-TTL: never", "1");
    js.ack("t.plain", "", "2");
    js.ack("t.short", "Nats-TTL: 1", "3");
    js.ack("t.long", "Nats-TTL: 1h", "4");
    js.wait_ms(1_000);
    assert_eq!(
        js.subjects("T"),
        serde_json::json!({"t.never": 1, "t.plain": 1, "t.long": 1})
    );
    for _ in 0..3 {
        js.wait_ms(1_000);
    }
    assert_eq!(js.subjects("T"), serde_json::json!({"t.never": 1}));
    js.ack("t.plain", "", "5");
    for _ in 0..4 {
        js.wait_ms(1_000);
    }
    assert_eq!(js.subjects("T"), serde_json::json!({"t.never": 1}));
}

#[test]
fn ttls_are_found_again_after_a_restart() {
    let mut js = Js::new();
    js.create(r#"{"name":"T","subjects":["t.>"],"allow_msg_ttl":true}"#);
    js.ack("t.a", "Nats-TTL: 10s", "a");
    js.ack("t.b", "Nats-Msg-Id: x\r\nNats-TTL: 3s", "b");
    js.ack("t.c", "", "c");
    let disk = js.disk.clone();
    disk.crash();
    // Back at 5 s: t.b is past due, t.a due at 10 s.
    let mut js = restarted_at(disk, 5 * SECOND);
    assert_eq!(js.h.server.jetstream.ttls.len(), 2);
    js.wait_ms(1);
    assert_eq!(js.subjects("T"), serde_json::json!({"t.a": 1, "t.c": 1}));
    js.wait_ms(4_998);
    assert!(js.stored("T", 1).is_some(), "t.a is due at 10 s");
    js.wait_ms(1);
    assert_eq!(js.subjects("T"), serde_json::json!({"t.c": 1}));
}

#[test]
fn the_last_message_of_a_subject_leaves_a_marker() {
    let mut js = Js::new();
    let r = js.create(
        r#"{"name":"M","subjects":["m.>"],"max_age":3000000000,"subject_delete_marker_ttl":5000000000}"#,
    );
    // Markers need TTLs and roll-ups: nats-server turns both on.
    let config = &r["config"];
    assert_eq!(
        (
            config["allow_msg_ttl"].clone(),
            config["allow_rollup_hdrs"].clone()
        ),
        (true.into(), true.into())
    );
    assert_eq!(config["subject_delete_marker_ttl"], 5_000_000_000u64);
    js.ack("m.a", "", "1");
    js.ack("m.a", "", "2");
    js.ack("m.b", "Nats-TTL: 1", "3");
    js.ack("m.c", "Nats-TTL: never", "4");
    // A TTL below the marker TTL is raised to it, in the header too.
    let (_, headers, _) = js.stored("M", 3).unwrap();
    assert_eq!(headers, "NATS/1.0\r\nNats-TTL: 5\r\n\r\n");
    js.wait_ms(1_000);
    js.wait_ms(1_000);
    js.wait_ms(1_000);
    // Max age took m.a twice (one marker: the second was its last) and
    // m.b (its TTL of 5 s is longer); m.c never goes.
    let marker =
        "NATS/1.0\r\nNats-Marker-Reason: MaxAge\r\nNats-TTL: 5s\r\nNats-Rollup: sub\r\n\r\n";
    assert_eq!(
        js.stored("M", 5),
        Some(("m.a".into(), marker.into(), String::new()))
    );
    assert_eq!(
        js.stored("M", 6),
        Some(("m.b".into(), marker.into(), String::new()))
    );
    assert!(js.stored("M", 7).is_none(), "one marker per subject");
    assert_eq!(
        js.subjects("M"),
        serde_json::json!({"m.a": 1, "m.b": 1, "m.c": 1})
    );
    // The markers go by max age too, and leave nothing behind.
    for _ in 0..6 {
        js.wait_ms(1_000);
    }
    assert_eq!(js.subjects("M"), serde_json::json!({"m.c": 1}));
    let info = js.request("$JS.API.STREAM.INFO.M", "");
    assert_eq!(info["state"]["last_seq"], 6);
}

#[test]
fn a_ttl_removing_a_subjects_last_message_leaves_a_marker_that_expires() {
    let mut js = Js::new();
    js.create(
        r#"{"name":"M","subjects":["m.>"],"allow_msg_ttl":true,"allow_rollup_hdrs":true,"subject_delete_marker_ttl":2000000000}"#,
    );
    js.ack("m.a", "Nats-TTL: 3s", "1");
    js.ack("m.b", "Nats-TTL: 3s", "2");
    js.ack("m.b", "", "3");
    js.wait_ms(3_000);
    let (subject, headers, _) = js.stored("M", 4).expect("a marker");
    assert_eq!(subject, "m.a");
    assert_eq!(
        headers,
        "NATS/1.0\r\nNats-Marker-Reason: MaxAge\r\nNats-TTL: 2s\r\nNats-Rollup: sub\r\n\r\n"
    );
    assert!(js.stored("M", 5).is_none(), "m.b keeps a message");
    assert_eq!(js.subjects("M"), serde_json::json!({"m.a": 1, "m.b": 1}));
    js.wait_ms(2_000);
    assert_eq!(js.subjects("M"), serde_json::json!({"m.b": 1}));
}

#[test]
fn delete_marker_settings_are_checked_as_nats_server_checks_them() {
    let mut js = Js::new();
    let err = |js: &mut Js, config: &str| {
        let r = js.create(config);
        (
            r["error"]["err_code"].clone(),
            r["error"]["description"].clone(),
        )
    };
    let invalid = |text: &str| (Value::from(10052), Value::from(text));
    assert_eq!(
        err(
            &mut js,
            r#"{"name":"A","subject_delete_marker_ttl":500000000}"#
        ),
        invalid("subject delete marker TTL must be at least 1 second")
    );
    assert_eq!(
        err(&mut js, r#"{"name":"A","subject_delete_marker_ttl":-1}"#),
        invalid("subject delete marker TTL must not be negative")
    );
    assert_eq!(
        err(
            &mut js,
            r#"{"name":"A","subject_delete_marker_ttl":1000000000,"pedantic":true}"#
        ),
        invalid("subject delete marker cannot be set if message TTLs are disabled")
    );
    assert_eq!(
        err(
            &mut js,
            r#"{"name":"A","subject_delete_marker_ttl":1000000000,"allow_msg_ttl":true,"pedantic":true}"#
        ),
        invalid("subject delete marker cannot be set if roll-ups are disabled")
    );
    assert_eq!(
        err(
            &mut js,
            r#"{"name":"A","subject_delete_marker_ttl":1000000000,"mirror":{"name":"B"}}"#
        ),
        invalid("subject delete markers forbidden on mirrors")
    );
    // Markers turn deny_purge off, as they turn roll-ups on.
    let r = js.create(
        r#"{"name":"D","subject_delete_marker_ttl":1500000000,"allow_msg_ttl":true,"deny_purge":true}"#,
    );
    assert_eq!(r["config"]["deny_purge"], false, "{r}");
    // TTLs once allowed stay allowed.
    js.create(r#"{"name":"H","allow_msg_ttl":true}"#);
    let r = js.request("$JS.API.STREAM.UPDATE.H", r#"{"name":"H"}"#);
    assert_eq!(
        (
            r["error"]["err_code"].clone(),
            r["error"]["description"].clone()
        ),
        invalid("message TTL status can not be disabled")
    );
    let r = js.request(
        "$JS.API.STREAM.UPDATE.H",
        r#"{"name":"H","allow_msg_ttl":true,"subject_delete_marker_ttl":5000000000}"#,
    );
    assert_eq!(
        r["config"]["subject_delete_marker_ttl"], 5_000_000_000u64,
        "{r}"
    );
}

#[test]
fn a_request_requiring_a_higher_api_level_is_refused() {
    let mut js = Js::new();
    let info = js.request("$JS.API.INFO", "");
    assert_eq!(
        info["api"],
        serde_json::json!({"level": 1, "total": 0, "errors": 0})
    );
    let level = "Nats-Required-Api-Level: 2";
    let error = r#""error":{"code":412,"err_code":10185,"description":"JetStream minimum api level required"}"#;
    let out = js.raw_request("$JS.API.INFO", level, "");
    assert_eq!(
        body_of(&out),
        format!(r#"{{"type":"io.nats.jetstream.api.v1.account_info_response",{error}}}"#)
    );
    let out = js.raw_request("$JS.API.STREAM.INFO.X", "Nats-Required-Api-Level: abc", "");
    assert_eq!(
        body_of(&out),
        format!(
            r#"{{"type":"io.nats.jetstream.api.v1.stream_info_response",{error},"total":0,"offset":0,"limit":0}}"#
        )
    );
    let out = js.raw_request("$JS.API.STREAM.NAMES", level, "");
    assert_eq!(
        body_of(&out),
        format!(
            r#"{{"type":"io.nats.jetstream.api.v1.stream_names_response",{error},"total":0,"offset":0,"limit":0,"streams":null}}"#
        )
    );
    let out = js.raw_request("$JS.API.STREAM.PURGE.X", level, "");
    assert!(body_of(&out).ends_with(r#","purged":0}"#), "{out}");
    // A level natrix has is served.
    let out = js.raw_request("$JS.API.INFO", "Nats-Required-Api-Level: 1", "");
    assert!(body_of(&out).contains(r#""api":{"level":1"#), "{out}");
    // Direct gets answer with a status, where a stream serves them.
    js.create(r#"{"name":"D","allow_direct":true}"#);
    js.ack("D", "", "x");
    let out = js.raw_request("$JS.API.DIRECT.GET.D", level, r#"{"seq":1}"#);
    assert!(
        out.contains("NATS/1.0 412 Required Api Level\r\n\r\n"),
        "{out}"
    );
    let out = js.raw_request("$JS.API.DIRECT.GET.D.D", level, "");
    assert!(
        out.contains("NATS/1.0 412 Required Api Level\r\n\r\n"),
        "{out}"
    );
    let info = js.request("$JS.API.INFO", "");
    assert_eq!(info["api"]["errors"], 4);
    // The monitoring endpoints tell the level too.
    let (_, jsz) = http(&mut js.h, "/jsz", "");
    let jsz: Value = serde_json::from_str(&jsz).unwrap();
    assert_eq!(jsz["api"]["level"], 1, "{jsz}");
    let (_, varz) = http(&mut js.h, "/varz", "");
    let varz: Value = serde_json::from_str(&varz).unwrap();
    assert_eq!(varz["jetstream"]["stats"]["api"]["level"], 1, "{varz}");
}

#[test]
fn markers_and_raised_ttls_are_republished_as_stored() {
    let mut js = Js::new();
    js.create(
        r#"{"name":"M","subjects":["m.>"],"subject_delete_marker_ttl":60000000000,"max_msgs_per_subject":1,"republish":{"src":">","dest":"rp.>"}}"#,
    );
    js.create(
        r#"{"name":"R","subjects":["r.>"],"subject_delete_marker_ttl":60000000000,"republish":{"src":">","dest":"rr.>"}}"#,
    );
    js.send("SUB rp.> 2\r\nSUB rr.> 3\r\n");
    js.publish("r.a", "Nats-TTL: 1", "1");
    js.run_storage();
    let first = js.out();
    js.ack("m.a", "Nats-TTL: 1", "1");
    js.wait_ms(1_000);
    let out = js.out();
    let copy = |stream: &str, subject: &str, seq: u64, own: &str, last: u64| {
        format!(
            "NATS/1.0\r\n{own}Nats-Stream: {stream}\r\nNats-Subject: {subject}\r\nNats-Sequence: {seq}\r\nNats-Time-Stamp: "
        ) + &format!("Nats-Last-Sequence: {last}\r\n\r\n")
    };
    // The copy of r.a, sent once durable, shows its TTL raised.
    let raised = copy("R", "r.a", 1, "Nats-TTL: 60\r\n", 0);
    let (head, tail) = raised.split_at(raised.find("Nats-Last").unwrap());
    assert!(first.contains(head) && first.contains(tail), "{first}");
    // m.a's marker is republished, naming the message it replaced.
    let marker = copy(
        "M",
        "m.a",
        2,
        "Nats-Marker-Reason: MaxAge\r\nNats-TTL: 1m0s\r\nNats-Rollup: sub\r\n",
        1,
    );
    let (head, tail) = marker.split_at(marker.find("Nats-Last").unwrap());
    let at = out.find(head).unwrap_or_else(|| panic!("{out}"));
    assert!(out[at..].contains(tail), "{out}");
    assert!(out[..at].contains("HMSG rp.m.a 2 "), "{out}");
}
