//! Mirrors and sources on one server, against what nats-server 2.15.1
//! answered on loopback for the same requests.

use super::*;

fn b64(s: &str) -> String {
    data_encoding::BASE64.encode(s.as_bytes())
}

fn headers_of(msg: &Value) -> String {
    let h = msg["message"]["hdrs"].as_str().unwrap_or("");
    String::from_utf8(data_encoding::BASE64.decode(h.as_bytes()).unwrap()).unwrap()
}

/// Origin `O` on `o.>`: `a0`, `a1`, `a2` on `o.a`, `b0` (with a header) on
/// `o.b`, and its second message deleted.
fn origin() -> Js {
    let mut js = Js::new();
    js.create(r#"{"name":"O","subjects":["o.>"]}"#);
    for i in 0..3 {
        js.publish("o.a", "", &format!("a{i}"));
    }
    js.publish("o.b", "X-H: 1", "b0");
    js.run_storage();
    let r = js.request("$JS.API.STREAM.MSG.DELETE.O", r#"{"seq":2}"#);
    assert_eq!(r["success"], true);
    js
}

/// The identity sourced messages carry: the hash of the origin's creation
/// time.
fn identity_of(js: &mut Js, stream: &str) -> String {
    let info = js.request(&format!("$JS.API.STREAM.INFO.{stream}"), "");
    let created = info["created"].as_str().unwrap();
    crate::server::jetstream::source::short_hash(created)
}

#[test]
fn a_mirror_keeps_the_origins_sequences_times_and_gaps() {
    let mut js = origin();
    let r = js.create(r#"{"name":"M","mirror":{"name":"O"}}"#);
    assert_eq!(r["did_create"], true, "{r}");
    // No subjects, no duplicate window; the mirror's state in the answer.
    assert!(r["config"].get("subjects").is_none(), "{r}");
    assert!(r["config"].get("duplicate_window").is_none(), "{r}");
    assert_eq!(r["config"]["mirror"], serde_json::json!({"name":"O"}));
    let info = js.request("$JS.API.STREAM.INFO.M", r#"{"deleted_details":true}"#);
    let st = &info["state"];
    assert_eq!(
        (&st["messages"], &st["first_seq"], &st["last_seq"]),
        (&3.into(), &1.into(), &4.into()),
        "{info}"
    );
    assert_eq!(st["num_deleted"], 1);
    assert_eq!(st["deleted"], serde_json::json!([2]));
    assert_eq!(info["mirror"]["name"], "O");
    assert_eq!(info["mirror"]["lag"], 0);
    assert!(info["mirror"]["active"].as_i64().unwrap() >= 0, "{info}");
    assert!(info["mirror"].get("seq").is_none(), "{info}");
    // The origin's own message: subject, headers, body, time.
    let o = js.request("$JS.API.STREAM.MSG.GET.O", r#"{"seq":4}"#);
    let m = js.request("$JS.API.STREAM.MSG.GET.M", r#"{"seq":4}"#);
    assert_eq!(o["message"], m["message"]);
    let gone = js.request("$JS.API.STREAM.MSG.GET.M", r#"{"seq":2}"#);
    assert_eq!(gone["error"]["err_code"], 10037);
    // A new message flows at once: no timer, only the origin's sync.
    js.publish("o.a", "", "late");
    js.run_storage();
    let m = js.request("$JS.API.STREAM.MSG.GET.M", r#"{"seq":5}"#);
    assert_eq!(m["message"]["data"], b64("late"), "{m}");
}

#[test]
fn a_filtered_mirror_starts_where_asked() {
    let mut js = origin();
    let r = js
        .create(r#"{"name":"M3","mirror":{"name":"O","filter_subject":"o.a","opt_start_seq":2}}"#);
    // nats-server 2.15.1 shows no filter in the create answer's mirror.
    assert_eq!(
        r["mirror"],
        serde_json::json!({"name":"O","lag":0,"active":-1})
    );
    let info = js.request("$JS.API.STREAM.INFO.M3", "");
    let st = &info["state"];
    // nats-server 2.15.1: one message, sequence 3.
    assert_eq!(
        (&st["messages"], &st["first_seq"], &st["last_seq"]),
        (&1.into(), &3.into(), &3.into()),
        "{info}"
    );
    assert_eq!(info["mirror"]["filter_subject"], "o.a");
}

#[test]
fn sources_carry_nats_servers_header_filters_and_transforms() {
    let mut js = origin();
    let r = js.create(
        r#"{"name":"S","subjects":["s.>"],"sources":[{"name":"O","filter_subject":"o.a"},{"name":"O","subject_transforms":[{"src":"o.b","dest":"sb.b"}]}]}"#,
    );
    assert_eq!(
        r["config"]["sources"],
        serde_json::json!([{"name":"O","filter_subject":"o.a"},{"name":"O","subject_transforms":[{"src":"o.b","dest":"sb.b"}]}])
    );
    let ident = identity_of(&mut js, "O");
    let info = js.request("$JS.API.STREAM.INFO.S", "");
    assert_eq!(info["state"]["messages"], 3, "{info}");
    assert_eq!(info["sources"][0]["seq"], 3, "{info}");
    assert_eq!(info["sources"][1]["seq"], 4, "{info}");
    assert_eq!(info["sources"][1]["subject_transforms"][0]["dest"], "sb.b");
    // In the order the feeds read: o.a's messages, then the transformed one.
    let want = [
        (
            "o.a",
            "a0",
            format!("NATS/1.0\r\nNats-Stream-Source: O 1 o.a > o.a {ident}\r\n\r\n"),
        ),
        (
            "o.a",
            "a2",
            format!("NATS/1.0\r\nNats-Stream-Source: O 3 o.a > o.a {ident}\r\n\r\n"),
        ),
        (
            "sb.b",
            "b0",
            format!("NATS/1.0\r\nX-H: 1\r\nNats-Stream-Source: O 4 o.b sb.b o.b {ident}\r\n\r\n"),
        ),
    ];
    for (seq, (subject, data, headers)) in want.iter().enumerate() {
        let m = js.request(
            "$JS.API.STREAM.MSG.GET.S",
            &format!(r#"{{"seq":{}}}"#, seq + 1),
        );
        assert_eq!(m["message"]["subject"], *subject, "{m}");
        assert_eq!(m["message"]["data"], b64(data), "{m}");
        assert_eq!(headers_of(&m), *headers);
    }
    // The stream still takes its own publishes.
    let ack = js.publish("s.x", "", "direct");
    js.run_storage();
    assert_eq!(Js::answers(&js.out(), &ack)[0]["seq"], 4);
    // But not with a source header of their own (nats-server 2.15.1).
    let ack = js.publish("s.x", "Nats-Stream-Source: O 9 > > o.a", "fake");
    js.run_storage();
    assert_eq!(
        Js::answers(&js.out(), &ack)[0],
        serde_json::json!({"error":{"code":400,"err_code":10227,"description":"message stream source header is not allowed"},"stream":"S","seq":0})
    );
}

#[test]
fn a_source_starts_at_its_sequence_or_time() {
    let mut js = Js::new();
    js.create(r#"{"name":"O","subjects":["o.>"]}"#);
    js.publish("o.a", "", "early");
    js.run_storage();
    js.h.now_ns = 10_000_000_000;
    js.publish("o.a", "", "later");
    js.publish("o.a", "", "last");
    js.run_storage();
    js.create(r#"{"name":"S2","sources":[{"name":"O","opt_start_seq":3}]}"#);
    let info = js.request("$JS.API.STREAM.INFO.S2", "");
    assert_eq!(info["state"]["messages"], 1, "{info}");
    // Five seconds after the first publish: the two later ones.
    let at = crate::time::rfc3339_nanos(1_700_000_005_000_000_000);
    js.create(&format!(
        r#"{{"name":"S5","sources":[{{"name":"O","opt_start_time":"{at}"}}]}}"#
    ));
    let info = js.request("$JS.API.STREAM.INFO.S5", "");
    assert_eq!(info["state"]["messages"], 2, "{info}");
    let m = js.request("$JS.API.STREAM.MSG.GET.S5", r#"{"seq":1}"#);
    assert_eq!(m["message"]["data"], b64("later"));
}

#[test]
fn mirrors_and_sources_are_refused_as_nats_server_refuses_them() {
    let mut js = origin();
    let cases = [
        (
            r#"{"name":"M2","subjects":["m2"],"mirror":{"name":"O"}}"#,
            10034,
        ),
        (
            r#"{"name":"M4","mirror":{"name":"O"},"sources":[{"name":"O"}]}"#,
            10031,
        ),
        (
            r#"{"name":"S3","sources":[{"name":"O","filter_subject":"o.a","subject_transforms":[{"src":"o.a","dest":"x"}]}]}"#,
            10144,
        ),
        (
            r#"{"name":"S4","sources":[{"name":"O"},{"name":"O"}]}"#,
            10140,
        ),
        (r#"{"name":"S8","sources":[{"name":"S8"}]}"#, 10052),
    ];
    for (config, code) in cases {
        let r = js.create(config);
        assert_eq!(r["error"]["err_code"], code, "{config}: {r}");
    }
    js.create(r#"{"name":"M","mirror":{"name":"O"}}"#);
    let r = js.request(
        "$JS.API.STREAM.UPDATE.M",
        r#"{"name":"M","mirror":{"name":"O","filter_subject":"o.a"}}"#,
    );
    assert_eq!(r["error"]["err_code"], 10055, "{r}");
    // A source of the mirror's origin that the mirror sources: a cycle.
    js.create(r#"{"name":"S2","sources":[{"name":"O"}]}"#);
    let r = js.request(
        "$JS.API.STREAM.UPDATE.S2",
        r#"{"name":"S2","sources":[{"name":"O"},{"name":"M"}]}"#,
    );
    assert_eq!(r["error"]["description"], "detected cycle", "{r}");
}

#[test]
fn a_missing_origin_is_reported_and_followed_once_created() {
    let mut js = Js::new();
    let r = js.create(r#"{"name":"S9","sources":[{"name":"NOPE"}]}"#);
    // The create answer shows no error yet (nats-server 2.15.1).
    assert_eq!(
        r["sources"][0],
        serde_json::json!({"name":"NOPE","lag":0,"active":-1})
    );
    let info = js.request("$JS.API.STREAM.INFO.S9", "");
    assert_eq!(
        info["sources"][0],
        serde_json::json!({"name":"NOPE","lag":0,"active":-1,"error":{"code":404,"err_code":10059,"description":"stream not found"}})
    );
    js.create(r#"{"name":"NOPE","subjects":["n"]}"#);
    js.publish("n", "", "x");
    js.run_storage();
    let info = js.request("$JS.API.STREAM.INFO.S9", "");
    assert_eq!(info["state"]["messages"], 1, "{info}");
    assert!(info["sources"][0].get("error").is_none(), "{info}");
}

#[test]
fn positions_come_back_after_a_restart() {
    let mut js = origin();
    js.create(r#"{"name":"M","mirror":{"name":"O"}}"#);
    js.create(r#"{"name":"S","sources":[{"name":"O","filter_subject":"o.a"},{"name":"O","filter_subject":"o.b"}]}"#);
    let _ = js.out();
    let disk = js.disk.clone();
    disk.crash();
    let mut js = Js::on(disk);
    let info = js.request("$JS.API.STREAM.INFO.S", "");
    assert_eq!(
        info["state"]["messages"], 3,
        "no message sourced twice: {info}"
    );
    assert_eq!(info["sources"][0]["seq"], 3, "{info}");
    assert_eq!(info["sources"][1]["seq"], 4, "{info}");
    js.publish("o.b", "", "b1");
    js.publish("o.a", "", "a3");
    js.run_storage();
    let info = js.request("$JS.API.STREAM.INFO.S", "");
    assert_eq!(info["state"]["messages"], 5, "{info}");
    // The two feeds race; each message is there once.
    let got: Vec<String> = (4..=5)
        .map(|seq| {
            let m = js.request("$JS.API.STREAM.MSG.GET.S", &format!(r#"{{"seq":{seq}}}"#));
            headers_of(&m)
        })
        .collect();
    assert!(
        got.iter()
            .any(|h| h.contains("Nats-Stream-Source: O 6 o.a > o.a")),
        "{got:?}"
    );
    assert!(
        got.iter()
            .any(|h| h.contains("Nats-Stream-Source: O 5 o.b > o.b")),
        "{got:?}"
    );
    let info = js.request("$JS.API.STREAM.INFO.M", "");
    let st = &info["state"];
    assert_eq!(
        (&st["messages"], &st["last_seq"]),
        (&5.into(), &6.into()),
        "{info}"
    );
}

#[test]
fn a_key_value_source_rewrites_its_keys() {
    let mut js = Js::new();
    js.create(r#"{"name":"KV_A","subjects":["$KV.A.>"],"max_msgs_per_subject":1,"allow_rollup_hdrs":true,"deny_delete":true,"allow_direct":true}"#);
    js.publish("$KV.A.k1", "", "v1");
    js.publish("$KV.A.k1", "", "v2");
    js.publish("$KV.A.k2", "", "w");
    js.run_storage();
    let r = js.create(
        r#"{"name":"KV_B","subjects":["$KV.B.>"],"max_msgs_per_subject":1,"allow_rollup_hdrs":true,"allow_direct":true,"sources":[{"name":"KV_A","subject_transforms":[{"src":"$KV.A.>","dest":"$KV.B.>"}]}]}"#,
    );
    assert!(r.get("error").is_none(), "{r}");
    let m = js.request(
        "$JS.API.STREAM.MSG.GET.KV_B",
        r#"{"last_by_subj":"$KV.B.k1"}"#,
    );
    assert_eq!(m["message"]["data"], b64("v2"), "{m}");
    let info = js.request("$JS.API.STREAM.INFO.KV_B", "");
    assert_eq!(info["state"]["messages"], 2, "{info}");
    // A mirror of the bucket inherits its direct gets.
    let r = js.create(r#"{"name":"KV_M","mirror":{"name":"KV_A"}}"#);
    assert_eq!(r["config"]["mirror_direct"], true, "{r}");
}

#[test]
fn a_discard_new_source_waits_for_room() {
    let mut js = Js::new();
    js.create(r#"{"name":"O","subjects":["o"]}"#);
    for i in 0..3 {
        js.publish("o", "", &format!("m{i}"));
    }
    js.run_storage();
    js.create(r#"{"name":"W","retention":"workqueue","max_msgs":2,"discard":"new","sources":[{"name":"O"}]}"#);
    let info = js.request("$JS.API.STREAM.INFO.W", "");
    assert_eq!(info["state"]["messages"], 2, "{info}");
    // Room again: the third comes in, not lost.
    let r = js.request("$JS.API.STREAM.MSG.DELETE.W", r#"{"seq":1}"#);
    assert_eq!(r["success"], true, "{r}");
    js.run_storage();
    let info = js.request("$JS.API.STREAM.INFO.W", "");
    assert_eq!(info["state"]["messages"], 2, "{info}");
    assert_eq!(info["state"]["last_seq"], 3, "{info}");
}

/// Seeded partial runs of the storage operations and a power cut: after
/// the restart the mirror and the source catch up, and hold every origin
/// message exactly once.
#[test]
fn a_crash_loses_nothing_a_source_or_mirror_took() {
    use rand_chacha::ChaCha8Rng;
    use rand_core::{Rng, SeedableRng};
    for seed in 0..30u64 {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut js = Js::on(SimDisk::with_seed(seed));
        js.create(r#"{"name":"O","subjects":["o.*"]}"#);
        js.create(r#"{"name":"M","mirror":{"name":"O"}}"#);
        js.create(r#"{"name":"S","sources":[{"name":"O","filter_subject":"o.a"},{"name":"O","filter_subject":"o.b"}]}"#);
        for i in 0..30 {
            let subject = if rng.next_u32() % 2 == 0 {
                "o.a"
            } else {
                "o.b"
            };
            js.publish(subject, "", &format!("m{i}"));
            if rng.next_u32() % 3 == 0 {
                js.run_storage_once();
            }
        }
        js.h.storage.clear();
        let disk = js.disk.clone();
        disk.crash();
        let mut js = Js::on(disk);
        js.run_storage();
        let o = js.request("$JS.API.STREAM.INFO.O", "");
        let msgs = o["state"]["messages"].as_u64().unwrap();
        let m = js.request("$JS.API.STREAM.INFO.M", "");
        assert_eq!(m["state"]["messages"], msgs, "seed {seed}: {m}");
        assert_eq!(
            m["state"]["last_seq"], o["state"]["last_seq"],
            "seed {seed}"
        );
        let s = js.request("$JS.API.STREAM.INFO.S", "");
        assert_eq!(s["state"]["messages"], msgs, "seed {seed}: {s}");
        let mut taken: Vec<u64> = (1..=msgs)
            .map(|seq| {
                let m = js.request("$JS.API.STREAM.MSG.GET.S", &format!(r#"{{"seq":{seq}}}"#));
                let h = headers_of(&m);
                let value = h.split("Nats-Stream-Source: ").nth(1).unwrap();
                value.split(' ').nth(1).unwrap().parse().unwrap()
            })
            .collect();
        taken.sort_unstable();
        assert_eq!(taken, (1..=msgs).collect::<Vec<u64>>(), "seed {seed}");
    }
}

#[test]
fn a_sourcing_streams_own_transform_applies_to_sourced_messages() {
    let mut js = Js::new();
    js.create(r#"{"name":"Q","subjects":["q.>"]}"#);
    js.publish("q.a", "", "x");
    js.run_storage();
    js.create(r#"{"name":"QT","subjects":["qt.>"],"subject_transform":{"src":"q.>","dest":"qq.>"},"sources":[{"name":"Q"}]}"#);
    let m = js.request("$JS.API.STREAM.MSG.GET.QT", r#"{"seq":1}"#);
    // nats-server 2.15.1: stored as qq.a, the header naming q.a.
    assert_eq!(m["message"]["subject"], "qq.a", "{m}");
    assert!(
        headers_of(&m).contains("Nats-Stream-Source: Q 1 > > q.a "),
        "{m}"
    );
}

#[test]
fn an_origin_created_again_is_sourced_from_its_start() {
    let mut js = Js::new();
    js.create(r#"{"name":"R","subjects":["r.>"]}"#);
    js.publish("r.a", "", "x1");
    js.publish("r.a", "", "x2");
    js.run_storage();
    js.create(r#"{"name":"RS","sources":[{"name":"R"}]}"#);
    let info = js.request("$JS.API.STREAM.INFO.RS", "");
    assert_eq!(info["sources"][0]["active"], 0, "caught up: {info}");
    js.request("$JS.API.STREAM.DELETE.R", "");
    js.h.now_ns += 1_000_000; // another creation time, another identity
    js.create(r#"{"name":"R","subjects":["r.>"]}"#);
    js.publish("r.a", "", "y1");
    js.run_storage();
    // nats-server 2.15.1 (once its retry comes): the new R's first message.
    let m = js.request("$JS.API.STREAM.MSG.GET.RS", r#"{"seq":3}"#);
    assert_eq!(m["message"]["data"], b64("y1"), "{m}");
    assert!(
        headers_of(&m).contains("Nats-Stream-Source: R 1 > > r.a "),
        "{m}"
    );
    // Created again while nothing new was sourced, then a restart: the
    // newest header names the old identity, so the feed starts over.
    js.request("$JS.API.STREAM.DELETE.R", "");
    js.h.now_ns += 1_000_000;
    js.create(r#"{"name":"R","subjects":["r.>"]}"#);
    let _ = js.out();
    let disk = js.disk.clone();
    disk.crash();
    let mut js = Js::on(disk);
    js.publish("r.a", "", "z1");
    js.run_storage();
    let m = js.request("$JS.API.STREAM.MSG.GET.RS", r#"{"seq":4}"#);
    assert_eq!(m["message"]["data"], b64("z1"), "{m}");
}

/// A failed write of the destination: what the feed handed it is taken
/// again once the stream is reopened, not skipped.
#[test]
fn a_failed_write_is_taken_again() {
    for dest in [
        r#"{"name":"D","sources":[{"name":"O"}]}"#,
        r#"{"name":"D","mirror":{"name":"O"}}"#,
    ] {
        let mut js = Js::new();
        js.create(r#"{"name":"O","subjects":["o"]}"#);
        js.publish("o", "", "1");
        js.run_storage();
        js.create(dest);
        js.publish("o", "", "2");
        js.run_storage_once(); // the origin's append and sync
        js.run_storage_once(); // the feed's read
        assert!(
            js.h.storage
                .iter()
                .any(|op| matches!(op, StorageOp::Append { stream, .. } if stream.ends_with(".D"))),
            "{dest}: {:?}",
            js.h.storage
        );
        js.disk.fail_next(natrix_storage::DiskErrorKind::Io);
        js.run_storage();
        js.publish("o", "", "3");
        js.run_storage();
        let info = js.request("$JS.API.STREAM.INFO.D", "");
        assert_eq!(info["state"]["messages"], 3, "{dest}: {info}");
        for seq in 1..=3u64 {
            let m = js.request("$JS.API.STREAM.MSG.GET.D", &format!(r#"{{"seq":{seq}}}"#));
            assert_eq!(m["message"]["data"], b64(&seq.to_string()), "{dest}: {m}");
        }
    }
}
