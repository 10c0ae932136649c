//! JetStream through the official Rust client: natrix side by side with
//! nats-server 2.15.1 (and 2.9.10) where their behaviour should match, and
//! natrix's own promise: an acknowledged message survives `kill -9`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use async_nats::jetstream::{self, kv, stream};
use natrix_tests::{ServerProcess, test_dir};

/// natrix, then each reference server that is installed.
pub(crate) fn servers() -> Vec<(&'static str, PathBuf)> {
    let mut out = vec![("natrix", natrix_tests::natrix_bin())];
    if let Some(r) = natrix_tests::reference_215() {
        out.push(("nats-server 2.15.1", r));
    }
    if let Some(r) = natrix_tests::reference_or_skip() {
        out.push(("nats-server 2.9.10", r));
    }
    out
}

pub(crate) fn start(bin: &Path, dir: &Path) -> ServerProcess {
    ServerProcess::start(bin, &["-js", "-sd", dir.to_str().unwrap()])
}

pub(crate) async fn context(server: &ServerProcess) -> jetstream::Context {
    jetstream::new(api_client(server).await)
}

/// A client whose requests wait 5 s for their answer.
pub(crate) async fn api_client(server: &ServerProcess) -> async_nats::Client {
    async_nats::ConnectOptions::new()
        .request_timeout(Some(Duration::from_secs(5)))
        .connect(server.url())
        .await
        .unwrap()
}

/// What one server answered, for comparing servers.
async fn stream_scenario(js: &jetstream::Context) -> Vec<String> {
    let mut seen = Vec::new();
    let mut s = js
        .create_stream(stream::Config {
            name: "ORDERS".into(),
            subjects: vec!["orders.>".into()],
            max_messages_per_subject: 3,
            ..Default::default()
        })
        .await
        .unwrap();
    for i in 0..10u64 {
        let ack = js
            .publish(format!("orders.{}", i % 4), format!("m{i}").into())
            .await
            .unwrap()
            .await
            .unwrap();
        seen.push(format!("ack {} {}", ack.stream, ack.sequence));
    }
    let info = s.info().await.unwrap();
    seen.push(format!(
        "state {} {} {} {}",
        info.state.messages,
        info.state.first_sequence,
        info.state.last_sequence,
        info.state.subjects_count
    ));
    let m = s.get_raw_message(6).await.unwrap();
    seen.push(format!("get {} {:?}", m.subject, m.payload));
    let m = s.get_last_raw_message_by_subject("orders.1").await.unwrap();
    seen.push(format!(
        "last {} {}",
        m.sequence,
        String::from_utf8_lossy(&m.payload)
    ));
    seen.push(format!(
        "missing {:?}",
        s.get_raw_message(999).await.is_err()
    ));
    seen.push(format!("delete {:?}", s.delete_message(6).await.unwrap()));
    let dup = js
        .send_publish(
            "orders.x",
            jetstream::message::PublishMessage::build()
                .payload("d".into())
                .message_id("id-1"),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    let again = js
        .send_publish(
            "orders.x",
            jetstream::message::PublishMessage::build()
                .payload("d".into())
                .message_id("id-1"),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    seen.push(format!(
        "dedupe {} {} {}",
        dup.sequence, again.sequence, again.duplicate
    ));
    let purged = s.purge().filter("orders.0").await.unwrap();
    seen.push(format!("purged {}", purged.purged));
    let names: Vec<String> = {
        use futures::TryStreamExt;
        js.stream_names().try_collect().await.unwrap()
    };
    seen.push(format!("names {names:?}"));
    let err = js
        .create_stream(stream::Config {
            name: "OVER".into(),
            subjects: vec!["orders.new".into()],
            ..Default::default()
        })
        .await
        .unwrap_err();
    seen.push(format!("overlap {err}"));
    js.delete_stream("ORDERS").await.unwrap();
    seen.push(format!("gone {}", js.get_stream("ORDERS").await.is_err()));
    seen
}

#[tokio::test]
async fn the_stream_api_answers_as_nats_server_does() {
    let mut results = Vec::new();
    for (name, bin) in servers() {
        let dir = test_dir("js", &format!("api-{}", name.replace(' ', "-")));
        let server = start(&bin, &dir);
        let js = context(&server).await;
        results.push((name, stream_scenario(&js).await));
    }
    let (first, expected) = &results[0];
    for (name, got) in &results[1..] {
        assert_eq!(got, expected, "{name} against {first}");
    }
    assert_eq!(expected[0], "ack ORDERS 1");
}

#[tokio::test]
async fn key_value_puts_gets_and_revisions() {
    let mut results = Vec::new();
    for (name, bin) in servers() {
        if name.ends_with("2.9.10") {
            continue; // its KV defaults differ (no direct gets by default)
        }
        let dir = test_dir("js", &format!("kv-{}", name.replace(' ', "-")));
        let server = start(&bin, &dir);
        let js = context(&server).await;
        let kv = js
            .create_key_value(kv::Config {
                bucket: "cfg".into(),
                history: 3,
                ..Default::default()
            })
            .await
            .unwrap();
        let mut seen = Vec::new();
        let r1 = kv.put("a", "1".into()).await.unwrap();
        let r2 = kv.put("b", "2".into()).await.unwrap();
        seen.push(format!("put {r1} {r2}"));
        seen.push(format!("get {:?}", kv.get("a").await.unwrap()));
        seen.push(format!(
            "create taken {}",
            kv.create("a", "x".into()).await.is_err()
        ));
        let r3 = kv.create("c", "3".into()).await.unwrap();
        seen.push(format!("create {r3}"));
        seen.push(format!(
            "stale update {}",
            kv.update("a", "y".into(), 99).await.is_err()
        ));
        let r4 = kv.update("a", "11".into(), r1).await.unwrap();
        seen.push(format!("update {r4} {:?}", kv.get("a").await.unwrap()));
        kv.delete("b").await.unwrap();
        seen.push(format!("deleted {:?}", kv.get("b").await.unwrap()));
        seen.push(format!("missing {:?}", kv.get("zz").await.unwrap()));
        results.push((name, seen));
    }
    let (first, expected) = &results[0];
    for (name, got) in &results[1..] {
        assert_eq!(got, expected, "{name} against {first}");
    }
    assert_eq!(expected[0], "put 1 2");
}

/// natrix acknowledges only what is on disk: every acknowledged publish is
/// there after the process is killed without warning.
#[tokio::test]
async fn acknowledged_messages_survive_kill_9() {
    let dir = test_dir("js", "kill9");
    let bin = natrix_tests::natrix_bin();
    let server = start(&bin, &dir);
    let js = context(&server).await;
    js.create_stream(stream::Config {
        name: "EVENTS".into(),
        subjects: vec!["events.>".into()],
        ..Default::default()
    })
    .await
    .unwrap();
    let mut acks = Vec::new();
    for i in 0..500u64 {
        acks.push(
            js.publish(format!("events.{}", i % 7), format!("e{i}").into())
                .await
                .unwrap(),
        );
    }
    let mut acked = 0;
    for a in acks {
        a.await.unwrap();
        acked += 1;
    }
    drop(server); // SIGKILL
    let server = start(&bin, &dir);
    let js = context(&server).await;
    let mut s = js.get_stream("EVENTS").await.unwrap();
    let info = s.info().await.unwrap();
    assert_eq!(info.state.messages, acked);
    let m = s.get_raw_message(250).await.unwrap();
    assert_eq!(m.payload, "e249");
}

/// Pull consumers, acks, redelivery and an ordered consumer, as one
/// server answers them.
async fn consumer_scenario(js: &jetstream::Context) -> Vec<String> {
    use async_nats::jetstream::AckKind;
    use async_nats::jetstream::consumer::{self, AckPolicy, pull};
    use futures::StreamExt;
    let mut seen = Vec::new();
    let s = js
        .create_stream(stream::Config {
            name: "JOBS".into(),
            subjects: vec!["jobs.>".into()],
            ..Default::default()
        })
        .await
        .unwrap();
    for i in 1..=10u64 {
        js.publish(format!("jobs.{}", i % 3), format!("j{i}").into())
            .await
            .unwrap()
            .await
            .unwrap();
    }
    let mut c: consumer::PullConsumer = s
        .create_consumer(pull::Config {
            durable_name: Some("W".into()),
            ack_policy: AckPolicy::Explicit,
            ..Default::default()
        })
        .await
        .unwrap();
    let info = c.info().await.unwrap();
    seen.push(format!(
        "created {} pending {} ack_wait {:?} max_ack_pending {}",
        info.name, info.num_pending, info.config.ack_wait, info.config.max_ack_pending
    ));
    for round in 0..2 {
        let mut batch = c
            .fetch()
            .max_messages(4)
            .expires(Duration::from_secs(2))
            .messages()
            .await
            .unwrap();
        while let Some(m) = batch.next().await {
            let m = m.unwrap();
            let i = m.info().unwrap();
            let (seq, delivered, pending) = (i.stream_sequence, i.delivered, i.pending);
            seen.push(format!(
                "round {round} {} {:?} seq {seq} delivered {delivered} pending {pending}",
                m.subject,
                String::from_utf8_lossy(&m.payload)
            ));
            if seq == 1 && delivered == 1 {
                m.ack_with(AckKind::Nak(None)).await.unwrap();
            } else {
                m.double_ack().await.unwrap();
            }
        }
    }
    let info = c.info().await.unwrap();
    seen.push(format!(
        "info delivered {} ack_floor {} ack_pending {} pending {} redelivered {}",
        info.delivered.stream_sequence,
        info.ack_floor.stream_sequence,
        info.num_ack_pending,
        info.num_pending,
        info.num_redelivered
    ));
    let ordered = s
        .create_consumer(pull::OrderedConfig {
            filter_subject: "jobs.1".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut msgs = ordered.messages().await.unwrap().take(4);
    while let Some(m) = msgs.next().await {
        let m = m.unwrap();
        seen.push(format!(
            "ordered {} {:?}",
            m.subject,
            String::from_utf8_lossy(&m.payload)
        ));
    }
    seen.push(format!(
        "deleted {}",
        s.delete_consumer("W").await.unwrap().success
    ));
    seen.push(format!(
        "gone {}",
        s.get_consumer::<pull::Config>("W").await.is_err()
    ));
    seen
}

#[tokio::test]
async fn consumers_deliver_and_acknowledge_as_on_nats_server() {
    let mut results = Vec::new();
    for (name, bin) in servers() {
        if name.ends_with("2.9.10") {
            continue; // ordered pull consumers need 2.10
        }
        let dir = test_dir("js", &format!("consumers-{}", name.replace(' ', "-")));
        let server = start(&bin, &dir);
        let js = context(&server).await;
        results.push((name, consumer_scenario(&js).await));
    }
    let (first, expected) = &results[0];
    for (name, got) in &results[1..] {
        assert_eq!(got, expected, "{name} against {first}");
    }
    assert!(
        expected[1].starts_with("round 0 jobs.1 \"j1\" seq 1 delivered 1 pending 9"),
        "{expected:?}"
    );
}

#[tokio::test]
async fn key_value_watchers_keys_and_history_match_nats_server() {
    use futures::StreamExt;
    let mut results = Vec::new();
    for (name, bin) in servers() {
        if name.ends_with("2.9.10") {
            continue;
        }
        let dir = test_dir("js", &format!("kvw-{}", name.replace(' ', "-")));
        let server = start(&bin, &dir);
        let js = context(&server).await;
        let kv = js
            .create_key_value(kv::Config {
                bucket: "watch".into(),
                history: 5,
                ..Default::default()
            })
            .await
            .unwrap();
        kv.put("a", "1".into()).await.unwrap();
        kv.put("b", "2".into()).await.unwrap();
        kv.put("a", "3".into()).await.unwrap();
        let mut seen = Vec::new();
        let mut w = kv.watch_with_history(">").await.unwrap();
        let describe = |e: &kv::Entry| {
            format!(
                "{} {:?} rev {} {:?} current {}",
                e.key,
                String::from_utf8_lossy(&e.value),
                e.revision,
                e.operation,
                e.seen_current
            )
        };
        for _ in 0..2 {
            let e = w.next().await.unwrap().unwrap();
            seen.push(describe(&e));
        }
        kv.put("c", "4".into()).await.unwrap();
        kv.delete("b").await.unwrap();
        for _ in 0..2 {
            let e = tokio::time::timeout(Duration::from_secs(5), w.next())
                .await
                .unwrap()
                .unwrap()
                .unwrap();
            seen.push(describe(&e));
        }
        let mut keys: Vec<String> = kv.keys().await.unwrap().map(|k| k.unwrap()).collect().await;
        keys.sort();
        seen.push(format!("keys {keys:?}"));
        let history: Vec<String> = kv
            .history("a")
            .await
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                format!("{}={}", e.revision, String::from_utf8_lossy(&e.value))
            })
            .collect()
            .await;
        seen.push(format!("history {history:?}"));
        results.push((name, seen));
    }
    let (first, expected) = &results[0];
    for (name, got) in &results[1..] {
        assert_eq!(got, expected, "{name} against {first}");
    }
    assert_eq!(
        expected[0], "b \"2\" rev 2 Put current false",
        "{expected:?}"
    );
}

/// A durable consumer's acknowledgements survive `kill -9`: what was
/// acknowledged (and confirmed) is not delivered again.
#[tokio::test]
async fn consumer_acks_survive_kill_9() {
    use async_nats::jetstream::consumer::{self, AckPolicy, pull};
    use futures::StreamExt;
    let dir = test_dir("js", "consumer-kill9");
    let bin = natrix_tests::natrix_bin();
    let server = start(&bin, &dir);
    let js = context(&server).await;
    let s = js
        .create_stream(stream::Config {
            name: "Q".into(),
            subjects: vec!["q.>".into()],
            ..Default::default()
        })
        .await
        .unwrap();
    for i in 1..=20u64 {
        js.publish("q.x", format!("{i}").into())
            .await
            .unwrap()
            .await
            .unwrap();
    }
    let c: consumer::PullConsumer = s
        .create_consumer(pull::Config {
            durable_name: Some("D".into()),
            ack_policy: AckPolicy::Explicit,
            ..Default::default()
        })
        .await
        .unwrap();
    let mut batch = c.fetch().max_messages(10).messages().await.unwrap();
    while let Some(m) = batch.next().await {
        m.unwrap().double_ack().await.unwrap();
    }
    drop(server); // SIGKILL
    let server = start(&bin, &dir);
    let js = context(&server).await;
    let s = js.get_stream("Q").await.unwrap();
    let c: consumer::PullConsumer = s.get_consumer("D").await.unwrap();
    let mut batch = c.fetch().max_messages(20).messages().await.unwrap();
    let mut got = Vec::new();
    while let Some(m) = batch.next().await {
        let m = m.unwrap();
        got.push(String::from_utf8_lossy(&m.payload).into_owned());
    }
    let expected: Vec<String> = (11..=20).map(|i| i.to_string()).collect();
    assert_eq!(got, expected);
}

/// The object store: a 10 MiB object in chunks (its SHA-256 digest checked
/// by the client on read), info, list, a replacement and a delete, as
/// nats-server answers them.
#[tokio::test]
async fn object_store_puts_and_gets_large_objects() {
    use async_nats::jetstream::object_store;
    use futures::StreamExt;
    use tokio::io::AsyncReadExt;
    let data: Vec<u8> = (0..10 * 1024 * 1024u32)
        .map(|i| (i * 7 % 251) as u8)
        .collect();
    let mut results = Vec::new();
    for (name, bin) in servers() {
        if name.ends_with("2.9.10") {
            continue;
        }
        let dir = test_dir("js", &format!("obj-{}", name.replace(' ', "-")));
        let server = start(&bin, &dir);
        let js = context(&server).await;
        let store = js
            .create_object_store(object_store::Config {
                bucket: "files".into(),
                ..Default::default()
            })
            .await
            .unwrap();
        let mut seen = Vec::new();
        let info = store.put("big", &mut data.as_slice()).await.unwrap();
        seen.push(format!("put {} {} {}", info.name, info.size, info.chunks));
        store.put("small", &mut &b"hello"[..]).await.unwrap();
        let mut object = store.get("big").await.unwrap();
        let mut read = Vec::new();
        object.read_to_end(&mut read).await.unwrap();
        seen.push(format!("read {} equal {}", read.len(), read == data));
        let mut names: Vec<String> = store
            .list()
            .await
            .unwrap()
            .map(|o| o.unwrap().name)
            .collect()
            .await;
        names.sort();
        seen.push(format!("list {names:?}"));
        store.put("small", &mut &b"hello again"[..]).await.unwrap();
        let mut small = Vec::new();
        store
            .get("small")
            .await
            .unwrap()
            .read_to_end(&mut small)
            .await
            .unwrap();
        seen.push(format!("replaced {:?}", String::from_utf8_lossy(&small)));
        store.delete("big").await.unwrap();
        seen.push(format!("deleted {}", store.get("big").await.is_err()));
        let mut stream = js.get_stream("OBJ_files").await.unwrap();
        let state = &stream.info().await.unwrap().state;
        seen.push(format!("stream messages {}", state.messages));
        results.push((name, seen));
    }
    let (first, expected) = &results[0];
    for (name, got) in &results[1..] {
        assert_eq!(got, expected, "{name} against {first}");
    }
    assert_eq!(expected[1], format!("read {} equal true", data.len()));
}

/// Per-message TTLs and delete markers through the key-value client (which
/// needs API level 1 for `limit_markers`): a key put with a TTL is purged
/// by a marker once it passes, and an invalid TTL is refused alike.
#[tokio::test]
async fn key_value_ttls_leave_delete_markers() {
    let mut results = Vec::new();
    for (name, bin) in servers() {
        if name.ends_with("2.9.10") {
            continue; // no TTLs before 2.11
        }
        let dir = test_dir("js", &format!("ttl-{}", name.replace(' ', "-")));
        let server = start(&bin, &dir);
        let js = context(&server).await;
        let kv = js
            .create_key_value(kv::Config {
                bucket: "ttl".into(),
                limit_markers: Some(Duration::from_secs(30)),
                ..Default::default()
            })
            .await
            .unwrap();
        let mut seen = Vec::new();
        let mut stream = js.get_stream("KV_ttl").await.unwrap();
        let info = stream.info().await.unwrap();
        seen.push(format!(
            "config ttl {} markers {:?} rollup {}",
            info.config.allow_message_ttl,
            info.config.subject_delete_marker_ttl,
            info.config.allow_rollup
        ));
        let r1 = kv
            .create_with_ttl("a", "1".into(), Duration::from_secs(1))
            .await
            .unwrap();
        let r2 = kv.put("b", "2".into()).await.unwrap();
        seen.push(format!("put {r1} {r2}"));
        let zero = kv
            .create_with_ttl("c", "3".into(), Duration::ZERO)
            .await
            .unwrap_err();
        seen.push(format!("zero ttl {zero}"));
        tokio::time::sleep(Duration::from_millis(2500)).await;
        let a = kv.entry("a").await.unwrap().unwrap();
        seen.push(format!("a {:?} {} {:?}", a.operation, a.revision, a.value));
        let b = kv.entry("b").await.unwrap().unwrap();
        seen.push(format!("b {:?} {} {:?}", b.operation, b.revision, b.value));
        let m = stream.get_raw_message(a.revision).await.unwrap();
        let mut headers: Vec<String> = m
            .headers
            .iter()
            .map(|(k, v)| format!("{k}: {v:?}"))
            .collect();
        headers.sort();
        seen.push(format!("marker {headers:?}"));
        results.push((name, seen));
    }
    let (first, expected) = &results[0];
    for (name, got) in &results[1..] {
        assert_eq!(got, expected, "{name} against {first}");
    }
    assert_eq!(expected[1], "put 1 2");
}

/// Waits (up to 5 s) until stream `name` holds `msgs` messages.
async fn wait_for_messages(js: &jetstream::Context, name: &str, msgs: u64) -> stream::Info {
    let mut s = js.get_stream(name).await.unwrap();
    for _ in 0..100 {
        let info = s.info().await.unwrap().clone();
        if info.state.messages >= msgs {
            return info;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    s.info().await.unwrap().clone()
}

/// A stored message as text, with the origin's identity (the hash of its
/// creation time, which differs between runs) cut from
/// `Nats-Stream-Source`.
async fn stored(s: &stream::Stream, seq: u64) -> String {
    let m = s.get_raw_message(seq).await.unwrap();
    let mut headers: Vec<String> = m
        .headers
        .iter()
        .map(|(k, v)| {
            let v: Vec<String> = v
                .iter()
                .map(|v| {
                    let v = v.to_string();
                    let fields: Vec<&str> = v.split(' ').collect();
                    if k.to_string() == "Nats-Stream-Source" && fields.len() == 6 {
                        assert_eq!(fields[5].len(), 8, "an identity hash: {v}");
                        fields[..5].join(" ")
                    } else {
                        v
                    }
                })
                .collect();
            format!("{k}: {v:?}")
        })
        .collect();
    headers.sort();
    format!(
        "{} {} {:?} {headers:?}",
        m.sequence,
        m.subject,
        String::from_utf8_lossy(&m.payload)
    )
}

async fn sourcing_scenario(js: &jetstream::Context) -> Vec<String> {
    let mut seen = Vec::new();
    let origin = js
        .create_stream(stream::Config {
            name: "O".into(),
            subjects: vec!["o.>".into()],
            ..Default::default()
        })
        .await
        .unwrap();
    for i in 0..3 {
        js.publish("o.a", format!("a{i}").into())
            .await
            .unwrap()
            .await
            .unwrap();
    }
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("X-H", "1");
    js.publish_with_headers("o.b", headers, "b0".into())
        .await
        .unwrap()
        .await
        .unwrap();
    origin.delete_message(2).await.unwrap();
    let transform = |src: &str, dest: &str| stream::SubjectTransform {
        source: src.into(),
        destination: dest.into(),
    };
    let m = js
        .create_stream(stream::Config {
            name: "M".into(),
            mirror: Some(stream::Source {
                name: "O".into(),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap();
    seen.push(format!(
        "mirror config subjects {:?} window {:?}",
        m.cached_info().config.subjects,
        m.cached_info().config.duplicate_window
    ));
    js.create_stream(stream::Config {
        name: "S".into(),
        subjects: vec!["s.>".into()],
        sources: Some(vec![
            stream::Source {
                name: "O".into(),
                filter_subject: Some("o.a".into()),
                ..Default::default()
            },
            stream::Source {
                name: "O".into(),
                subject_transforms: vec![transform("o.b", "sb.b")],
                ..Default::default()
            },
        ]),
        ..Default::default()
    })
    .await
    .unwrap();
    js.create_stream(stream::Config {
        name: "S2".into(),
        sources: Some(vec![stream::Source {
            name: "O".into(),
            start_sequence: Some(3),
            ..Default::default()
        }]),
        ..Default::default()
    })
    .await
    .unwrap();
    let refused = js
        .create_stream(stream::Config {
            name: "M2".into(),
            subjects: vec!["m2".into()],
            mirror: Some(stream::Source {
                name: "O".into(),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap_err();
    seen.push(format!("mirror with subjects: {refused}"));
    js.publish("o.a", "late".into())
        .await
        .unwrap()
        .await
        .unwrap();
    let info = wait_for_messages(js, "M", 4).await;
    seen.push(format!(
        "M {} {} {} {} mirror {:?} lag {}",
        info.state.messages,
        info.state.first_sequence,
        info.state.last_sequence,
        info.state.deleted_count.unwrap_or(0),
        info.mirror.as_ref().map(|m| &m.name),
        info.mirror.as_ref().map_or(99, |m| m.lag),
    ));
    let m = js.get_stream("M").await.unwrap();
    for seq in [1, 3, 4, 5] {
        seen.push(format!("M {}", stored(&m, seq).await));
    }
    let info = wait_for_messages(js, "S", 4).await;
    let sources: Vec<String> = info
        .sources
        .iter()
        .map(|s| {
            format!(
                "{} {:?} {} {:?}",
                s.name,
                s.filter_subject,
                s.lag,
                s.subject_transforms.len()
            )
        })
        .collect();
    // nats-server lists sources in Go's map order.
    let mut sources = sources;
    sources.sort();
    seen.push(format!("S {} sources {sources:?}", info.state.messages));
    // Two feeds race: compare the messages whatever their order.
    let s = js.get_stream("S").await.unwrap();
    let mut msgs = Vec::new();
    for seq in 1..=4 {
        let text = stored(&s, seq).await;
        msgs.push(text.split_once(' ').unwrap().1.to_string());
    }
    msgs.sort();
    seen.extend(msgs.into_iter().map(|m| format!("S {m}")));
    let info = wait_for_messages(js, "S2", 3).await;
    seen.push(format!("S2 {}", info.state.messages));
    let s2 = js.get_stream("S2").await.unwrap();
    for seq in 1..=3 {
        seen.push(format!("S2 {}", stored(&s2, seq).await));
    }
    seen
}

#[tokio::test]
async fn mirrors_and_sources_match_nats_server() {
    let mut results = Vec::new();
    for (name, bin) in servers() {
        if name.ends_with("2.9.10") {
            continue; // no subject transforms before 2.10
        }
        let dir = test_dir("js", &format!("sources-{}", name.replace(' ', "-")));
        let server = start(&bin, &dir);
        let js = context(&server).await;
        results.push((name, sourcing_scenario(&js).await));
    }
    let (first, expected) = &results[0];
    for (name, got) in &results[1..] {
        assert_eq!(got, expected, "{name} against {first}");
    }
    assert!(
        expected.iter().any(|l| l.starts_with("M 4 1 5 1")),
        "{expected:?}"
    );
}

#[tokio::test]
async fn key_value_buckets_source_and_mirror_other_buckets() {
    let mut results = Vec::new();
    for (name, bin) in servers() {
        if name.ends_with("2.9.10") {
            continue; // no subject transforms before 2.10
        }
        let dir = test_dir("js", &format!("kv-sources-{}", name.replace(' ', "-")));
        let server = start(&bin, &dir);
        let js = context(&server).await;
        let mut seen = Vec::new();
        let a = js
            .create_key_value(kv::Config {
                bucket: "A".into(),
                history: 5,
                ..Default::default()
            })
            .await
            .unwrap();
        a.put("k1", "v1".into()).await.unwrap();
        a.put("k1", "v2".into()).await.unwrap();
        a.put("k2", "w".into()).await.unwrap();
        let b = js
            .create_key_value(kv::Config {
                bucket: "B".into(),
                history: 5,
                sources: Some(vec![stream::Source {
                    name: "A".into(),
                    subject_transforms: vec![stream::SubjectTransform {
                        source: "$KV.A.>".into(),
                        destination: "$KV.B.>".into(),
                    }],
                    ..Default::default()
                }]),
                ..Default::default()
            })
            .await
            .unwrap();
        js.create_key_value(kv::Config {
            bucket: "M".into(),
            history: 5,
            mirror: Some(stream::Source {
                name: "A".into(),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap();
        let info = wait_for_messages(&js, "KV_B", 3).await;
        seen.push(format!("B {}", info.state.messages));
        for key in ["k1", "k2", "k3"] {
            let e = b.entry(key).await.unwrap();
            seen.push(format!(
                "B {key} {:?}",
                e.map(|e| (e.revision, String::from_utf8_lossy(&e.value).into_owned()))
            ));
        }
        a.put("k3", "x".into()).await.unwrap();
        let info = wait_for_messages(&js, "KV_B", 4).await;
        seen.push(format!("B after {}", info.state.messages));
        let info = wait_for_messages(&js, "KV_M", 4).await;
        seen.push(format!(
            "M {} {} direct {} mirror {:?}",
            info.state.messages,
            info.state.last_sequence,
            info.config.mirror_direct,
            info.config.mirror.as_ref().map(|m| &m.name)
        ));
        results.push((name, seen));
    }
    let (first, expected) = &results[0];
    for (name, got) in &results[1..] {
        assert_eq!(got, expected, "{name} against {first}");
    }
    assert_eq!(expected[0], "B 3");
}

/// A core request's answer as text (the raw JSON), or how it failed.
pub(crate) async fn raw_request(
    client: &async_nats::Client,
    subject: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> String {
    let mut map = async_nats::HeaderMap::new();
    for (k, v) in headers {
        map.append(*k, *v);
    }
    let answer = if headers.is_empty() {
        client
            .request(subject.to_string(), body.to_string().into())
            .await
    } else {
        client
            .request_with_headers(subject.to_string(), map, body.to_string().into())
            .await
    };
    match answer {
        Ok(m) => String::from_utf8_lossy(&m.payload).into_owned(),
        Err(e) => format!("request failed: {e}"),
    }
}

/// The error code and description of an API answer, or "ok".
pub(crate) fn api_outcome(answer: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(answer).unwrap_or_default();
    match v.get("error") {
        Some(e) => format!("{} {}", e["err_code"], e["description"]),
        None => "ok".into(),
    }
}

/// A publish: subject, headers, body.
type Publish<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str);

/// Distributed counters, as one server answered them.
async fn counter_scenario(server: &ServerProcess) -> Vec<String> {
    let client = api_client(server).await;
    let mut seen = Vec::new();
    let create = |name: &str, extra: &str| {
        let subjects = name.to_lowercase();
        (
            format!("$JS.API.STREAM.CREATE.{name}"),
            format!(
                r#"{{"name":"{name}","subjects":["{subjects}.>"],"allow_msg_counter":true,"allow_direct":true{extra}}}"#
            ),
        )
    };
    for (name, extra) in [
        ("C", ""),
        ("E1", r#","discard":"new""#),
        ("E2", r#","allow_msg_ttl":true"#),
        ("E3", r#","retention":"workqueue""#),
        ("K", r#","max_msgs_per_subject":1"#),
        ("M", r#","max_msgs":2"#),
    ] {
        let (subject, body) = create(name, extra);
        let answer = raw_request(&client, &subject, &[], &body).await;
        seen.push(format!("create {name}: {}", api_outcome(&answer)));
    }
    let mirror = raw_request(
        &client,
        "$JS.API.STREAM.CREATE.MI",
        &[],
        r#"{"name":"MI","allow_msg_counter":true,"mirror":{"name":"C"}}"#,
    )
    .await;
    seen.push(format!("mirror: {}", api_outcome(&mirror)));
    let off = raw_request(
        &client,
        "$JS.API.STREAM.UPDATE.C",
        &[],
        r#"{"name":"C","subjects":["c.>"],"allow_direct":true}"#,
    )
    .await;
    seen.push(format!("turn off: {}", api_outcome(&off)));
    let plain = raw_request(
        &client,
        "$JS.API.STREAM.CREATE.P",
        &[],
        r#"{"name":"P","subjects":["p.>"]}"#,
    )
    .await;
    seen.push(format!("plain: {}", api_outcome(&plain)));
    let big = "123456789012345678901234567890123456789012345678901234567890";
    let publishes: [Publish; 17] = [
        ("c.a", &[("Nats-Incr", "+1")], ""),
        ("c.a", &[("Nats-Incr", "-5")], ""),
        ("c.a", &[("Nats-Incr", "0")], ""),
        ("c.a", &[("Nats-Incr", "007")], ""),
        ("c.b", &[("Nats-Incr", big)], ""),
        ("c.b", &[("Nats-Incr", big)], ""),
        (
            "c.b",
            &[(
                "Nats-Incr",
                "-999999999999999999999999999999999999999999999999999999999999999999999999",
            )],
            "",
        ),
        ("c.a", &[("Nats-Incr", "abc")], ""),
        ("c.a", &[("Nats-Incr", "1.5")], ""),
        ("c.a", &[("Nats-Incr", "1")], "x"),
        ("c.a", &[("Foo", "bar")], ""),
        ("c.a", &[], "no header"),
        (
            "c.a",
            &[("Nats-Incr", "1"), ("Nats-Expected-Last-Sequence", "3")],
            "",
        ),
        ("c.a", &[("Nats-Msg-Id", "m1"), ("Nats-Incr", "10")], ""),
        ("c.a", &[("Nats-Msg-Id", "m1"), ("Nats-Incr", "10")], ""),
        ("p.a", &[("Nats-Incr", "1")], ""),
        ("p.a", &[("Nats-Incr", "abc")], ""),
    ];
    for (subject, headers, body) in publishes {
        let ack = raw_request(&client, subject, headers, body).await;
        seen.push(format!("{subject} {headers:?} {body:?}: {ack}"));
    }
    // Pipelined: every increment is counted once, whatever is in flight.
    let inbox = client.new_inbox();
    let mut acks = client.subscribe(format!("{inbox}.*")).await.unwrap();
    for i in 0..50 {
        let mut h = async_nats::HeaderMap::new();
        h.append("Nats-Incr", "2");
        client
            .publish_with_reply_and_headers("c.p", format!("{inbox}.{i}"), h, "".into())
            .await
            .unwrap();
    }
    let mut vals = Vec::new();
    for _ in 0..50 {
        let m = tokio::time::timeout(Duration::from_secs(5), futures::StreamExt::next(&mut acks))
            .await
            .unwrap()
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&m.payload).unwrap();
        vals.push(
            v["val"]
                .as_str()
                .unwrap_or("none")
                .parse::<i64>()
                .unwrap_or(-1),
        );
    }
    vals.sort_unstable();
    seen.push(format!(
        "pipelined {:?}",
        vals == (1..=50).map(|i| 2 * i).collect::<Vec<_>>()
    ));
    for (subject, n) in [
        ("k.a", "2"),
        ("k.a", "3"),
        ("m.a", "1"),
        ("m.b", "1"),
        ("m.c", "1"),
        ("m.a", "1"),
    ] {
        let ack = raw_request(&client, subject, &[("Nats-Incr", n)], "").await;
        seen.push(format!("{subject} {n}: {ack}"));
    }
    seen.extend(sourced_counters(&client).await);
    for subject in [
        "$JS.API.DIRECT.GET.C.c.a",
        "$JS.API.DIRECT.GET.C.c.b",
        "$JS.API.DIRECT.GET.C.c.p",
    ] {
        let m = client.request(subject, "".into()).await.unwrap();
        let h = m.headers.unwrap_or_default();
        let get = |k: &str| h.get(k).map(|v| v.as_str().to_string()).unwrap_or_default();
        seen.push(format!(
            "{subject}: {} incr={} seq={}",
            String::from_utf8_lossy(&m.payload),
            get("Nats-Incr"),
            get("Nats-Sequence")
        ));
    }
    seen
}

/// A counter stream summing two others it sources: the last total and
/// the origins' totals it keeps, after each step.
async fn sourced_counters(client: &async_nats::Client) -> Vec<String> {
    let js = jetstream::new(client.clone());
    let mut seen = Vec::new();
    for name in ["A", "B"] {
        let lower = name.to_lowercase();
        let config =
            format!(r#"{{"name":"{name}","subjects":["{lower}.>"],"allow_msg_counter":true}}"#);
        raw_request(
            client,
            &format!("$JS.API.STREAM.CREATE.{name}"),
            &[],
            &config,
        )
        .await;
    }
    raw_request(client, "a.x", &[("Nats-Incr", "5")], "").await;
    raw_request(client, "b.x", &[("Nats-Incr", "7")], "").await;
    let agg = raw_request(
        client,
        "$JS.API.STREAM.CREATE.AGG",
        &[],
        r#"{"name":"AGG","subjects":["agg.>"],"allow_msg_counter":true,"allow_direct":true,"sources":[{"name":"A","subject_transforms":[{"src":"a.>","dest":"agg.>"}]},{"name":"B","subject_transforms":[{"src":"b.>","dest":"agg.>"}]}]}"#,
    )
    .await;
    seen.push(format!("agg: {}", api_outcome(&agg)));
    let last = |client: async_nats::Client| async move {
        let m = client
            .request("$JS.API.DIRECT.GET.AGG.agg.x", "".into())
            .await
            .unwrap();
        let h = m.headers.unwrap_or_default();
        let sources = h
            .get("Nats-Counter-Sources")
            .map(|v| v.as_str().to_string());
        format!("{} {sources:?}", String::from_utf8_lossy(&m.payload))
    };
    wait_for_messages(&js, "AGG", 2).await;
    seen.push(format!("both sourced: {}", last(client.clone()).await));
    raw_request(client, "a.x", &[("Nats-Incr", "1")], "").await;
    wait_for_messages(&js, "AGG", 3).await;
    seen.push(format!("a.x +1: {}", last(client.clone()).await));
    let local = raw_request(client, "agg.x", &[("Nats-Incr", "100")], "").await;
    seen.push(format!("local +100: {local}"));
    raw_request(client, "b.x", &[("Nats-Incr", "-2")], "").await;
    wait_for_messages(&js, "AGG", 5).await;
    seen.push(format!("b.x -2: {}", last(client.clone()).await));
    seen
}

#[tokio::test]
async fn counters_count_as_on_nats_server() {
    let mut results = Vec::new();
    for (name, bin) in servers() {
        if name.ends_with("2.9.10") {
            continue; // counters came with 2.12
        }
        let dir = test_dir("js", &format!("counters-{}", name.replace(' ', "-")));
        let server = start(&bin, &dir);
        results.push((name, counter_scenario(&server).await));
    }
    let (first, expected) = &results[0];
    for (name, got) in &results[1..] {
        for (a, b) in expected.iter().zip(got) {
            assert_eq!(b, a, "{name} against {first}");
        }
        assert_eq!(got.len(), expected.len());
    }
    assert!(
        expected.iter().any(|l| l.starts_with("pipelined true")),
        "{expected:?}"
    );
}

/// Discard new per subject (`discard_new_per_subject`), as one server
/// answered it: the configurations refused, each publish's answer, a
/// roll-up making room, and five publishes in flight at once on a fresh
/// subject (two taken); and a full stream that discards new messages
/// taking one on a subject at its own limit. Then message gets from a
/// time on a subject.
async fn discard_per_subject_scenario(server: &ServerProcess) -> Vec<String> {
    let client = api_client(server).await;
    let mut seen = Vec::new();
    for (name, extra) in [
        (
            "BAD1",
            r#","discard":"old","discard_new_per_subject":true,"max_msgs_per_subject":2"#,
        ),
        ("BAD2", r#","discard":"new","discard_new_per_subject":true"#),
        (
            "D",
            r#","discard":"new","discard_new_per_subject":true,"max_msgs_per_subject":2,"allow_rollup_hdrs":true"#,
        ),
        // Full, a subject at its own limit still takes a message.
        (
            "K",
            r#","discard":"new","max_msgs":3,"max_msgs_per_subject":2"#,
        ),
    ] {
        let subjects = name.to_lowercase();
        let body = format!(r#"{{"name":"{name}","subjects":["{subjects}.>"]{extra}}}"#);
        let subject = format!("$JS.API.STREAM.CREATE.{name}");
        let answer = raw_request(&client, &subject, &[], &body).await;
        seen.push(format!("create {name}: {}", api_outcome(&answer)));
    }
    let publishes: [Publish; 12] = [
        ("k.a", &[], "1"),
        ("k.a", &[], "2"),
        ("k.b", &[], "1"),
        ("k.c", &[], "1"),
        ("k.a", &[], "3"),
        ("d.a", &[], "1"),
        ("d.a", &[], "2"),
        ("d.a", &[], "3"),
        ("d.b", &[], "1"),
        ("d.a", &[("Nats-Rollup", "sub")], "r"),
        ("d.a", &[], "4"),
        ("d.a", &[], "5"),
    ];
    for (subject, headers, body) in publishes {
        let ack = raw_request(&client, subject, headers, body).await;
        seen.push(format!("{subject} {headers:?} {body:?}: {ack}"));
    }
    let inbox = client.new_inbox();
    let mut acks = client.subscribe(format!("{inbox}.*")).await.unwrap();
    for i in 0..5 {
        client
            .publish_with_reply("d.p", format!("{inbox}.{i}"), "x".into())
            .await
            .unwrap();
    }
    let mut outcomes = Vec::new();
    for _ in 0..5 {
        let m = natrix_tests::within("an acknowledgement", futures::StreamExt::next(&mut acks))
            .await
            .unwrap();
        outcomes.push(api_outcome(&String::from_utf8_lossy(&m.payload)));
    }
    outcomes.sort();
    seen.push(format!("in flight: {outcomes:?}"));
    let info = raw_request(&client, "$JS.API.STREAM.INFO.D", &[], "").await;
    let v: serde_json::Value = serde_json::from_str(&info).unwrap_or_default();
    seen.push(format!(
        "messages {} subjects {}",
        v["state"]["messages"], v["state"]["num_subjects"]
    ));
    // A message get from a time, on a subject.
    for (time, subject) in [
        ("1970-01-01T00:00:00Z", "d.b"),
        ("1970-01-01T00:00:00Z", "d.p"),
        ("2100-01-01T00:00:00Z", "d.b"),
    ] {
        let body = format!(r#"{{"start_time":"{time}","next_by_subj":"{subject}"}}"#);
        let answer = raw_request(&client, "$JS.API.STREAM.MSG.GET.D", &[], &body).await;
        let v: serde_json::Value = serde_json::from_str(&answer).unwrap_or_default();
        seen.push(format!(
            "get {subject} from {time}: {} {} {}",
            v["message"]["subject"],
            v["message"]["seq"],
            api_outcome(&answer)
        ));
    }
    seen
}

#[tokio::test]
async fn discard_new_per_subject_as_on_nats_server() {
    let mut results = Vec::new();
    for (name, bin) in servers() {
        if name.ends_with("2.9.10") {
            continue; // its answers predate 2.10's wording
        }
        let dir = test_dir("js", &format!("discard-per-{}", name.replace(' ', "-")));
        let server = start(&bin, &dir);
        results.push((name, discard_per_subject_scenario(&server).await));
    }
    let (first, expected) = &results[0];
    for (name, got) in &results[1..] {
        assert_eq!(got, expected, "{name} against {first}");
    }
    let all = expected.join("\n");
    assert!(
        all.contains("maximum messages per subject exceeded"),
        "{all}"
    );
    assert!(all.contains("messages 5 subjects 3"), "{all}");
    assert!(
        all.contains(r#"k.c [] "1": {"error":{"code":503,"err_code":10077,"description":"maximum messages exceeded"}"#),
        "{all}"
    );
    assert!(
        all.contains(r#"k.a [] "3": {"stream":"K","seq":4}"#),
        "{all}"
    );
    assert!(
        all.contains(r#"get d.b from 1970-01-01T00:00:00Z: "d.b" 3 ok"#),
        "{all}"
    );
    assert!(
        all.contains("get d.b from 2100-01-01T00:00:00Z: null null 10037"),
        "{all}"
    );
}

/// An atomic batch publish session: every answer, in order.
async fn batch_scenario(server: &ServerProcess) -> Vec<String> {
    let client = api_client(server).await;
    let mut seen = Vec::new();
    for (name, config) in [
        (
            "B",
            r#"{"name":"B","subjects":["b.>"],"allow_atomic":true}"#,
        ),
        (
            "M",
            r#"{"name":"M","mirror":{"name":"B"},"allow_atomic":true}"#,
        ),
        ("N", r#"{"name":"N","subjects":["n.>"]}"#),
    ] {
        let subject = format!("$JS.API.STREAM.CREATE.{name}");
        let answer = raw_request(&client, &subject, &[], config).await;
        seen.push(format!("create {name}: {}", api_outcome(&answer)));
    }
    let messages = |client: async_nats::Client| async move {
        let info = raw_request(&client, "$JS.API.STREAM.INFO.B", &[], "").await;
        let v: serde_json::Value = serde_json::from_str(&info).unwrap_or_default();
        v["state"]["messages"].clone()
    };
    let steps: &[(&str, &str, &str, &str)] = &[
        ("n.1", "a", "1", ""),
        ("b.1", "u1", "1", ""),
        ("b.2", "u1", "2", ""),
        ("b.3", "u1", "3", "1"),
        ("b.1", "e", "1", ""),
        ("b.2", "e", "2", "eob"),
        ("b.1", &"a".repeat(65), "1", ""),
        ("b.1", "s", "abc", ""),
        ("b.1", "s", "0", ""),
        ("b.1", "s", "2", ""),
        ("b.1", "s", "1001", ""),
        ("b.1", "c", "1", "0"),
        ("b.1", "g", "1", ""),
        ("b.1", "g", "3", ""),
        ("b.1", "g", "2", "1"),
        ("b.1", "x", "1", "eob"),
    ];
    for &(subject, id, seq, commit) in steps {
        let mut headers = vec![("Nats-Batch-Id", id), ("Nats-Batch-Sequence", seq)];
        if !commit.is_empty() {
            headers.push(("Nats-Batch-Commit", commit));
        }
        let answer = raw_request(&client, subject, &headers, "x").await;
        let id = &id[..id.len().min(8)];
        seen.push(format!("{subject} {id} {seq} {commit}: {answer}"));
        seen.push(format!("messages: {}", messages(client.clone()).await));
    }
    let checked: &[(&str, &[(&str, &str)])] = &[
        ("dup", &[("Nats-Msg-Id", "A")]),
        ("dup", &[("Nats-Msg-Id", "A")]),
        ("last-id", &[("Nats-Expected-Last-Msg-Id", "A")]),
        ("last-seq", &[("Nats-Expected-Last-Sequence", "1")]),
        ("last-seq-ok", &[("Nats-Expected-Last-Sequence", "7")]),
        ("stream", &[("Nats-Expected-Stream", "Z")]),
        ("rollup", &[("Nats-Rollup", "sub")]),
        ("level", &[("Nats-Required-Api-Level", "99")]),
        ("level-ok", &[("Nats-Required-Api-Level", "1")]),
        (
            "subject-written",
            &[("Nats-Expected-Last-Subject-Sequence", "0")],
        ),
        (
            "subject-other",
            &[
                ("Nats-Expected-Last-Subject-Sequence", "0"),
                ("Nats-Expected-Last-Subject-Sequence-Subject", "b.none"),
            ],
        ),
        (
            "subject-wrong",
            &[
                ("Nats-Expected-Last-Subject-Sequence", "3"),
                ("Nats-Expected-Last-Subject-Sequence-Subject", "b.2"),
            ],
        ),
    ];
    for (i, (what, extra)) in checked.iter().enumerate() {
        let id = format!("k{i}");
        let first = [("Nats-Batch-Id", id.as_str()), ("Nats-Batch-Sequence", "1")];
        let staged = raw_request(&client, "b.k", &first, "1").await;
        let mut commit = vec![
            ("Nats-Batch-Id", id.as_str()),
            ("Nats-Batch-Sequence", "2"),
            ("Nats-Batch-Commit", "1"),
        ];
        commit.extend_from_slice(extra);
        let answer = raw_request(&client, "b.k", &commit, "2").await;
        seen.push(format!("{what}: {staged:?} {answer}"));
        seen.push(format!("messages: {}", messages(client.clone()).await));
    }
    for seq in [3, 4, 5, 7, 8] {
        let get = raw_request(
            &client,
            "$JS.API.STREAM.MSG.GET.B",
            &[],
            &format!(r#"{{"seq":{seq}}}"#),
        )
        .await;
        let v: serde_json::Value = serde_json::from_str(&get).unwrap_or_default();
        let hdrs = v["message"]["hdrs"].as_str().unwrap_or_default();
        let hdrs = data_encoding::BASE64
            .decode(hdrs.as_bytes())
            .unwrap_or_default();
        // The client writes its headers in no fixed order.
        let mut lines: Vec<_> = String::from_utf8_lossy(&hdrs)
            .split("\r\n")
            .map(str::to_string)
            .collect();
        lines.sort();
        seen.push(format!(
            "stored {seq}: {} {lines:?}",
            v["message"]["subject"]
        ));
    }
    seen
}

#[tokio::test]
async fn atomic_batches_publish_as_on_nats_server() {
    let mut results = Vec::new();
    for (name, bin) in servers() {
        if name.ends_with("2.9.10") {
            continue; // atomic batches came with 2.12
        }
        let dir = test_dir("js", &format!("batch-{}", name.replace(' ', "-")));
        let server = start(&bin, &dir);
        results.push((name, batch_scenario(&server).await));
    }
    let (first, expected) = &results[0];

    for (name, got) in &results[1..] {
        for (a, b) in expected.iter().zip(got) {
            assert_eq!(b, a, "{name} against {first}");
        }
        assert_eq!(got.len(), expected.len());
    }
    assert!(
        expected
            .iter()
            .any(|l| l.contains(r#""batch":"u1","count":3"#)),
        "{expected:?}"
    );
}
