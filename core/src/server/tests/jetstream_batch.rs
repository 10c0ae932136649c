//! Atomic batch publish (`allow_atomic`, `Nats-Batch-*`), against what
//! nats-server 2.15.1 answered on loopback
//! (research/js-atomic-batch-2.15.1.md).

use std::time::Duration;

use serde_json::json;

use super::*;

const ATOMIC: &str = r#"{"name":"B","subjects":["b.>"],"allow_atomic":true}"#;

impl Js {
    /// Publishes a batch message, runs storage, and returns every answer
    /// on its reply (an empty answer is an empty string).
    fn batch(&mut self, subject: &str, id: &str, seq: &str, extra: &str) -> Vec<Value> {
        let mut headers = format!("Nats-Batch-Id: {id}\r\nNats-Batch-Sequence: {seq}");
        if !extra.is_empty() {
            headers = format!("{headers}\r\n{extra}");
        }
        let reply = self.publish(subject, &headers, "x");
        self.run_storage();
        let out = self.out();
        Self::answers(&out, &reply)
    }

    fn messages(&mut self) -> u64 {
        let info = self.request("$JS.API.STREAM.INFO.B", "");
        info["state"]["messages"].as_u64().unwrap()
    }
}

fn err_code(answers: &[Value]) -> u64 {
    assert_eq!(answers.len(), 1, "{answers:?}");
    answers[0]["error"]["err_code"].as_u64().unwrap_or(0)
}

fn staged(answers: &[Value]) -> bool {
    answers == [Value::String(String::new())]
}

#[test]
fn a_batch_is_stored_only_at_its_commit_and_acknowledged_once() {
    let mut js = Js::new();
    js.create(ATOMIC);
    assert!(staged(&js.batch("b.1", "u1", "1", "")));
    assert!(staged(&js.batch("b.2", "u1", "2", "")));
    assert_eq!(js.messages(), 0, "nothing of an open batch is visible");
    let got = js.request("$JS.API.STREAM.MSG.GET.B", r#"{"seq":1}"#);
    assert_eq!(got["error"]["err_code"], 10037);
    let ack = js.batch("b.3", "u1", "3", "Nats-Batch-Commit: 1");
    assert_eq!(ack.len(), 1);
    assert_eq!(ack[0], json!({"stream":"B","seq":3,"batch":"u1","count":3}));
    assert_eq!(js.messages(), 3);
}

#[test]
fn an_ordinary_publish_between_batch_messages_is_stored_first() {
    let mut js = Js::new();
    js.create(ATOMIC);
    js.batch("b.1", "u1", "1", "");
    let reply = js.publish("b.n", "", "normal");
    js.run_storage();
    let out = js.out();
    assert_eq!(Js::answers(&out, &reply)[0], json!({"stream":"B","seq":1}));
    let ack = js.batch("b.2", "u1", "2", "Nats-Batch-Commit: 1");
    assert_eq!(ack[0], json!({"stream":"B","seq":3,"batch":"u1","count":2}));
}

#[test]
fn an_eob_commit_is_not_stored_and_marks_the_last_message() {
    let mut js = Js::new();
    js.create(ATOMIC);
    js.batch("b.1", "e", "1", "");
    let ack = js.batch("b.2", "e", "2", "Nats-Batch-Commit: eob");
    assert_eq!(ack[0], json!({"stream":"B","seq":1,"batch":"e","count":1}));
    let m = js.request("$JS.API.STREAM.MSG.GET.B", r#"{"seq":1}"#);
    let hdrs = data_encoding::BASE64
        .decode(m["message"]["hdrs"].as_str().unwrap().as_bytes())
        .unwrap();
    assert_eq!(
        String::from_utf8(hdrs).unwrap(),
        "NATS/1.0\r\nNats-Batch-Id: e\r\nNats-Batch-Sequence: 1\r\nNats-Batch-Commit: 1\r\n\r\n"
    );
    assert_eq!(
        err_code(&js.batch("b.1", "e1", "1", "Nats-Batch-Commit: eob")),
        10176
    );
}

#[test]
fn batch_errors_are_nats_servers() {
    let mut js = Js::new();
    js.create(ATOMIC);
    js.create(r#"{"name":"N","subjects":["n.>"]}"#);
    assert_eq!(err_code(&js.batch("n.1", "a", "1", "")), 10174);
    assert_eq!(err_code(&js.batch("b.1", &"a".repeat(65), "1", "")), 10179);
    assert_eq!(err_code(&js.batch("b.1", "s", "abc", "")), 10175);
    assert_eq!(err_code(&js.batch("b.1", "s", "+1", "")), 10175);
    assert_eq!(err_code(&js.batch("b.1", "s", "0", "")), 10176);
    assert_eq!(err_code(&js.batch("b.1", "s", "2", "")), 10176);
    assert_eq!(err_code(&js.batch("b.1", "s", "1001", "")), 10199);
    assert_eq!(
        err_code(&js.batch("b.1", "c", "1", "Nats-Batch-Commit: 0")),
        10200
    );
    // A gap drops the batch; what follows is incomplete.
    assert!(staged(&js.batch("b.1", "g", "1", "")));
    assert_eq!(err_code(&js.batch("b.1", "g", "3", "")), 10176);
    assert_eq!(
        err_code(&js.batch("b.1", "g", "2", "Nats-Batch-Commit: 1")),
        10176
    );
    assert_eq!(js.messages(), 0);
    let long = js.batch("b.1", &"a".repeat(64), "01", "Nats-Batch-Commit: 1");
    assert_eq!(long[0]["count"], 1, "{long:?}");
}

#[test]
fn a_failed_check_at_the_commit_stores_nothing() {
    let mut js = Js::new();
    js.create(ATOMIC);
    js.batch("b.1", "m1", "1", "Nats-Msg-Id: A");
    let ack = js.batch("b.1", "m1", "2", "Nats-Msg-Id: B\r\nNats-Batch-Commit: 1");
    assert_eq!(ack[0]["count"], 2);
    let cases = [
        ("Nats-Msg-Id: A", "", 10201),
        ("Nats-Msg-Id: C", "Nats-Msg-Id: C", 10201),
        ("", "Nats-Expected-Last-Msg-Id: B", 10177),
        ("", "Nats-Expected-Last-Sequence: 2", 10071),
        ("", "Nats-Expected-Stream: Z", 10060),
        ("", "Nats-Rollup: sub", 10111),
        ("", "Nats-TTL: 5s", 10166),
    ];
    for (i, (first, second, code)) in cases.into_iter().enumerate() {
        let id = format!("x{i}");
        assert!(staged(&js.batch("b.1", &id, "1", first)));
        let commit = if second.is_empty() {
            "Nats-Batch-Commit: 1".to_string()
        } else {
            format!("{second}\r\nNats-Batch-Commit: 1")
        };
        assert_eq!(
            err_code(&js.batch("b.2", &id, "2", &commit)),
            code,
            "{second}"
        );
        assert_eq!(js.messages(), 2, "nothing of {id} stored");
    }
    // The first message may expect the stream's last sequence.
    js.batch("b.1", "ok", "1", "Nats-Expected-Last-Sequence: 2");
    let ack = js.batch("b.2", "ok", "2", "Nats-Batch-Commit: 1");
    assert_eq!(ack[0]["seq"], 4, "{ack:?}");
    // Only the first message may expect one, even the right one.
    js.batch("b.1", "late", "1", "");
    let late = js.batch(
        "b.2",
        "late",
        "2",
        "Nats-Expected-Last-Sequence: 5\r\nNats-Batch-Commit: 1",
    );
    assert_eq!(err_code(&late), 10164);
    assert_eq!(js.messages(), 4);
}

#[test]
fn an_idle_batch_is_dropped_after_ten_seconds() {
    let mut js = Js::new();
    js.create(ATOMIC);
    js.batch("b.1", "t", "1", "");
    js.h.advance(Duration::from_secs(9));
    assert!(staged(&js.batch("b.1", "t", "2", "")));
    js.h.advance(Duration::from_secs(9));
    assert_eq!(
        js.batch("b.1", "t", "3", "Nats-Batch-Commit: 1")[0]["count"],
        3
    );
    js.batch("b.1", "t2", "1", "");
    js.h.advance(Duration::from_millis(10_500));
    assert_eq!(
        err_code(&js.batch("b.1", "t2", "2", "Nats-Batch-Commit: 1")),
        10176
    );
}

#[test]
fn open_batches_are_limited_per_stream() {
    let mut js = Js::new();
    js.create(ATOMIC);
    for i in 0..50 {
        assert!(staged(&js.batch("b.1", &format!("i{i}"), "1", "")));
    }
    let refused = js.batch("b.1", "i50", "1", "");
    assert_eq!(err_code(&refused), 10210);
    assert_eq!(refused[0]["error"]["code"], 429);
    js.batch("b.1", "i0", "2", "Nats-Batch-Commit: 1");
    assert!(staged(&js.batch("b.1", "i50", "1", "")));
}

#[test]
fn a_mirror_cannot_be_atomic_and_atomic_can_be_turned_on_and_off() {
    let mut js = Js::new();
    js.create(ATOMIC);
    let m = js.create(r#"{"name":"M","mirror":{"name":"B"},"allow_atomic":true}"#);
    assert_eq!(m["error"]["err_code"], 10198, "{m}");
    js.create(r#"{"name":"N","subjects":["n.>"]}"#);
    let on = js.request(
        "$JS.API.STREAM.UPDATE.N",
        r#"{"name":"N","subjects":["n.>"],"allow_atomic":true}"#,
    );
    assert_eq!(on["config"]["allow_atomic"], true, "{on}");
    let off = js.request(
        "$JS.API.STREAM.UPDATE.N",
        r#"{"name":"N","subjects":["n.>"]}"#,
    );
    assert!(off["config"].get("allow_atomic").is_none(), "{off}");
}

#[test]
fn arbitrary_batch_header_values_never_panic() {
    let mut js = Js::new();
    js.create(ATOMIC);
    let values = [
        "",
        " ",
        "\u{7f}",
        "ü",
        "18446744073709551616",
        "-1",
        "1 2",
        "eob eob",
    ];
    for id in values {
        for seq in values {
            for commit in values {
                js.batch("b.1", id, seq, &format!("Nats-Batch-Commit: {commit}"));
                js.batch("b.1", id, seq, "");
            }
        }
    }
}

#[test]
fn a_batch_a_crash_cut_short_is_removed_at_start_up() {
    let mut js = Js::new();
    js.create(ATOMIC);
    let reply = js.publish("b.0", "", "before");
    js.run_storage();
    assert_eq!(Js::answers(&js.out(), &reply)[0]["seq"], 1);
    js.batch("b.1", "t", "1", "");
    js.batch("b.2", "t", "2", "");
    js.publish(
        "b.3",
        "Nats-Batch-Id: t\r\nNats-Batch-Sequence: 3\r\nNats-Batch-Commit: 1",
        "x",
    );
    // The power fails while the batch is written: two of its three
    // messages reach the disk.
    for op in &mut js.h.storage {
        if let StorageOp::Append { msgs, .. } = op {
            assert_eq!(msgs.len(), 3, "the batch is one append");
            msgs.truncate(2);
        }
    }
    js.run_storage();
    let disk = js.disk.clone();
    disk.crash();
    let mut js = Js::on(disk);
    assert_eq!(js.messages(), 1, "nothing of the batch is served");
    let got = js.request("$JS.API.STREAM.MSG.GET.B", r#"{"seq":2}"#);
    assert_eq!(got["error"]["err_code"], 10037, "{got}");
    let reply = js.publish("b.4", "", "after");
    js.run_storage();
    assert_eq!(Js::answers(&js.out(), &reply)[0]["seq"], 2);
}

#[test]
fn a_committed_batch_survives_a_restart_whole() {
    let mut js = Js::new();
    js.create(ATOMIC);
    js.batch("b.1", "w", "1", "");
    js.batch("b.2", "w", "2", "Nats-Batch-Commit: 1");
    js.batch("b.1", "e", "1", "");
    js.batch("b.2", "e", "2", "Nats-Batch-Commit: eob");
    let disk = js.disk.clone();
    disk.crash();
    let mut js = Js::on(disk);
    assert_eq!(js.messages(), 3);
}

#[test]
fn a_batch_message_requiring_a_higher_api_level_drops_the_batch() {
    let mut js = Js::new();
    js.create(ATOMIC);
    assert!(staged(&js.batch(
        "b.1",
        "l",
        "1",
        "Nats-Required-Api-Level: 1"
    )));
    js.batch("b.2", "l", "2", "Nats-Batch-Commit: 1");
    let m = js.request("$JS.API.STREAM.MSG.GET.B", r#"{"seq":1}"#);
    let hdrs = data_encoding::BASE64
        .decode(m["message"]["hdrs"].as_str().unwrap().as_bytes())
        .unwrap();
    assert_eq!(
        String::from_utf8(hdrs).unwrap(),
        "NATS/1.0\r\nNats-Batch-Id: l\r\nNats-Batch-Sequence: 1\r\n\r\n",
        "the level is not stored"
    );
    let refused = js.batch("b.1", "h", "1", "Nats-Required-Api-Level: 99");
    assert_eq!(
        (err_code(&refused), &refused[0]["error"]["code"]),
        (10185, &json!(412))
    );
    assert_eq!(
        err_code(&js.batch("b.1", "h", "2", "Nats-Batch-Commit: 1")),
        10176
    );
    let abc = "Nats-Required-Api-Level: abc\r\nNats-Batch-Commit: 1";
    assert_eq!(err_code(&js.batch("b.1", "a", "1", abc)), 10185);
}

#[test]
fn batch_messages_wait_behind_a_publish_waiting_for_the_store() {
    let mut js = Js::new();
    js.create(ATOMIC);
    let first = js.publish("b.k", "Nats-Expected-Last-Subject-Sequence: 0", "k");
    let staged = js.publish("b.1", "Nats-Batch-Id: p\r\nNats-Batch-Sequence: 1", "1");
    let commit = "Nats-Batch-Id: p\r\nNats-Batch-Sequence: 2\r\nNats-Batch-Commit: 1";
    let commit = js.publish("b.2", commit, "2");
    js.run_storage();
    let out = js.out();
    assert_eq!(Js::answers(&out, &first)[0], json!({"stream":"B","seq":1}));
    assert_eq!(Js::answers(&out, &staged), [Value::String(String::new())]);
    let ack = &Js::answers(&out, &commit)[0];
    assert_eq!(ack, &json!({"stream":"B","seq":3,"batch":"p","count":2}));
}

/// Seeded runs of batch messages in any order (gaps, repeats, bad
/// commits, idle drops, ordinary publishes between): the stream holds
/// exactly what was acknowledged after every step.
#[test]
fn the_stream_holds_exactly_what_was_acknowledged() {
    let mut largest = 0;
    for seed in 1..=4u64 {
        let mut js = Js::new();
        js.create(ATOMIC);
        let mut rng = seed;
        let mut next = move |n: u64| {
            rng = rng
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (rng >> 33) % n
        };
        let mut acked = 0;
        for _ in 0..120 {
            let id = ["a", "b", "c"][next(3) as usize];
            let seq = (next(4) + 1).to_string();
            let commit = [
                "",
                "",
                "Nats-Batch-Commit: 1",
                "Nats-Batch-Commit: eob",
                "Nats-Batch-Commit: x",
            ][next(5) as usize];
            let answers = match next(8) {
                0 => {
                    let reply = js.publish("b.n", "", "n");
                    js.run_storage();
                    let out = js.out();
                    Js::answers(&out, &reply)
                }
                1 => {
                    js.h.advance(Duration::from_secs(4));
                    continue;
                }
                _ => js.batch("b.1", id, &seq, commit),
            };
            assert_eq!(answers.len(), 1, "{answers:?}");
            let a = &answers[0];
            if a.get("error").is_none() && a.get("seq").is_some() {
                let count = a["count"].as_u64().unwrap_or(1);
                largest = largest.max(count);
                acked += count;
            }
            assert_eq!(js.messages(), acked, "seed {seed}: {a}");
        }
    }
    assert!(largest >= 2, "some batch of several messages committed");
}

#[test]
fn a_batch_checks_subject_sequences_against_the_store() {
    let mut js = Js::new();
    js.create(ATOMIC);
    let reply = js.publish("b.q", "", "q");
    js.run_storage();
    assert_eq!(Js::answers(&js.out(), &reply)[0]["seq"], 1);
    // A restart forgets every subject's last sequence: the commit asks
    // the store.
    let disk = js.disk.clone();
    disk.crash();
    let mut js = Js::on(disk);
    let expect = |seq: u64| format!("Nats-Expected-Last-Subject-Sequence: {seq}");
    assert!(staged(&js.batch("b.q", "q1", "1", &expect(1))));
    let commit = format!("{}\r\nNats-Batch-Commit: 1", expect(0));
    let ack = js.batch("b.r", "q1", "2", &commit);
    assert_eq!(ack[0], json!({"stream":"B","seq":3,"batch":"q1","count":2}));
    let wrong = format!("{}\r\nNats-Batch-Commit: 1", expect(1));
    let refused = js.batch("b.q", "q2", "1", &wrong);
    assert_eq!(refused[0]["error"]["description"], "wrong last sequence: 2");
    js.batch("b.z", "q3", "1", "");
    assert_eq!(err_code(&js.batch("b.z", "q3", "2", &commit)), 10164);
    assert_eq!(js.messages(), 3);
}

#[test]
fn publishes_after_a_commit_waiting_for_the_store_keep_their_place() {
    let mut js = Js::new();
    js.create(ATOMIC);
    js.batch("b.1", "w", "1", "");
    let commit = "Nats-Batch-Id: w\r\nNats-Batch-Sequence: 2\r\nNats-Batch-Commit: 1\r\nNats-Expected-Last-Subject-Sequence: 0";
    let commit = js.publish("b.new", commit, "c");
    let after = js.publish("b.after", "", "a");
    js.run_storage();
    let out = js.out();
    let ack = &Js::answers(&out, &commit)[0];
    assert_eq!(ack, &json!({"stream":"B","seq":2,"batch":"w","count":2}));
    assert_eq!(Js::answers(&out, &after)[0], json!({"stream":"B","seq":3}));
}
