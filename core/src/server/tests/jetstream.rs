//! JetStream driven through the server, its storage operations executed by
//! the real executor and file store over a simulated disk (which loses
//! unsynced writes at a crash).

use natrix_storage::ops::{Completion, StorageOp};
use natrix_storage::{Executor, FileBackend, SimDisk};
use serde_json::Value;

use super::*;
use crate::config::JetStreamOptions;

type Backend = FileBackend<SimDisk, Box<dyn FnMut() -> SimDisk>>;

/// A server with JetStream and the disk under it.
pub(super) struct Js {
    pub(super) h: Harness,
    pub(super) disk: SimDisk,
    exec: Executor<Backend>,
    conn: ConnId,
    next_reply: u32,
}

fn executor(disk: &SimDisk) -> Executor<Backend> {
    let disk = disk.clone();
    let make: Box<dyn FnMut() -> SimDisk> = Box::new(move || disk.clone());
    Executor::new(FileBackend::new("jetstream", make))
}

fn js_opts() -> Options {
    Options {
        server_name: "n1".into(),
        jetstream: Some(JetStreamOptions::default()),
        ..Options::default()
    }
}

impl Js {
    pub(super) fn new() -> Self {
        Self::on(SimDisk::with_seed(1))
    }

    /// A server with JetStream and the accounts of nats.conf text `conf`.
    fn configured(conf: &str) -> Self {
        let map = crate::conf::parse(conf, "t.conf", &crate::conf::MemSource::new()).unwrap();
        let mut o = js_opts();
        let problems = crate::config::file::apply(&map, &mut o, &mut Default::default());
        assert!(problems.errors.is_empty(), "{problems:?}");
        let mut js = Js::new();
        js.h.server = Server::new(o, 7, now_at(0));
        js.h.drain();
        js.run_storage();
        js
    }

    /// A server started on `disk` (a restart when it holds streams).
    pub(super) fn on(disk: SimDisk) -> Self {
        let mut h = Harness::new(js_opts());
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

    /// As [`Self::on`], but nothing of the recovery has run yet: the
    /// caller steps the storage (`run_storage_once`).
    pub(super) fn on_unstarted(disk: SimDisk) -> Self {
        let mut h = Harness::new(js_opts());
        let exec = executor(&disk);
        let conn = h.client(r#"{"headers":true,"no_responders":true,"verbose":false}"#);
        Js {
            h,
            disk,
            exec,
            conn,
            next_reply: 0,
        }
    }

    pub(super) fn send(&mut self, data: &str) {
        let conn = self.conn;
        self.h.send(conn, data);
    }

    pub(super) fn out(&mut self) -> String {
        let conn = self.conn;
        self.h.out(conn)
    }

    /// Runs every storage operation the server asked for, and those its
    /// completions lead to.
    pub(super) fn run_storage(&mut self) {
        while !self.h.storage.is_empty() {
            let ops = std::mem::take(&mut self.h.storage);
            self.execute(ops);
        }
    }

    /// Runs the storage operations asked for so far, not those their
    /// completions lead to.
    pub(super) fn run_storage_once(&mut self) {
        let ops = std::mem::take(&mut self.h.storage);
        self.execute(ops);
    }

    fn execute(&mut self, ops: Vec<StorageOp>) {
        let mut done: Vec<Completion> = Vec::new();
        self.exec.execute_batch(ops, &mut done);
        for c in done {
            self.h
                .server
                .handle(now_at(self.h.now_ns), Event::Storage(&c));
            self.h.drain();
        }
    }

    /// Publishes with a fresh reply subject; returns it.
    pub(super) fn publish(&mut self, subject: &str, headers: &str, body: &str) -> String {
        self.next_reply += 1;
        let reply = format!("_INBOX.{}", self.next_reply);
        if headers.is_empty() {
            self.send(&format!(
                "PUB {subject} {reply} {}\r\n{body}\r\n",
                body.len()
            ));
        } else {
            let hdr = format!("NATS/1.0\r\n{headers}\r\n\r\n");
            let total = hdr.len() + body.len();
            self.send(&format!(
                "HPUB {subject} {reply} {} {total}\r\n{hdr}{body}\r\n",
                hdr.len()
            ));
        }
        reply
    }

    /// The JSON answers on `reply` in what the server wrote.
    pub(super) fn answers(out: &str, reply: &str) -> Vec<Value> {
        let mut found = Vec::new();
        let mut rest = out;
        let head = format!("MSG {reply} 1 ");
        while let Some(at) = rest.find(&head) {
            rest = &rest[at..];
            let line_end = rest.find("\r\n").unwrap();
            let len: usize = rest[head.len()..line_end].parse().unwrap();
            let body = &rest[line_end + 2..line_end + 2 + len];
            found.push(serde_json::from_str(body).unwrap_or(Value::String(body.into())));
            rest = &rest[line_end + 2 + len..];
        }
        found
    }

    /// A request, its storage run to the end, and its one answer.
    pub(super) fn request(&mut self, subject: &str, body: &str) -> Value {
        let reply = self.publish(subject, "", body);
        self.run_storage();
        let out = self.out();
        let mut answers = Self::answers(&out, &reply);
        assert_eq!(answers.len(), 1, "one answer to {subject}: {out}");
        answers.remove(0)
    }

    pub(super) fn create(&mut self, config: &str) -> Value {
        let name: Value = serde_json::from_str(config).unwrap();
        let name = name["name"].as_str().unwrap().to_string();
        self.request(&format!("$JS.API.STREAM.CREATE.{name}"), config)
    }
}

#[test]
fn a_stream_is_created_with_nats_servers_defaults() {
    let mut js = Js::new();
    let r = js.create(r#"{"name":"ORDERS","subjects":["orders.>"]}"#);
    assert_eq!(r["type"], "io.nats.jetstream.api.v1.stream_create_response");
    assert_eq!(r["did_create"], true);
    assert_eq!(r["config"]["subjects"][0], "orders.>");
    assert_eq!(r["config"]["max_msgs"], -1);
    assert_eq!(r["config"]["duplicate_window"], 120_000_000_000u64);
    assert_eq!(r["state"]["first_ts"], "0001-01-01T00:00:00Z");
    // The same configuration again is no error; another one is.
    let again = js.create(r#"{"name":"ORDERS","subjects":["orders.>"]}"#);
    assert_eq!(again["created"], r["created"]);
    let other = js.create(r#"{"name":"ORDERS","subjects":["orders.>"],"max_msgs":5}"#);
    assert_eq!(other["error"]["err_code"], 10058);
    let overlap = js.create(r#"{"name":"OVER","subjects":["orders.new"]}"#);
    assert_eq!(overlap["error"]["err_code"], 10065);
    let mismatch = js.request("$JS.API.STREAM.CREATE.A", r#"{"name":"B"}"#);
    assert_eq!(mismatch["error"]["err_code"], 10056);
}

#[test]
fn the_wire_bytes_escape_as_go_does() {
    let mut js = Js::new();
    let reply = js.publish(
        "$JS.API.STREAM.CREATE.S",
        "",
        r#"{"name":"S","subjects":["s.>"]}"#,
    );
    js.run_storage();
    let out = js.out();
    assert!(out.contains(&format!("MSG {reply} 1 ")), "{out}");
    assert!(out.contains(r#""subjects":["s.\u003e"]"#), "{out}");
    assert!(
        out.contains(
            r#"{"type":"io.nats.jetstream.api.v1.stream_create_response","config":{"name":"S","#
        ),
        "{out}"
    );
}

#[test]
fn a_publish_is_acknowledged_only_once_its_sync_completed() {
    let mut js = Js::new();
    js.create(r#"{"name":"ORDERS","subjects":["orders.>"]}"#);
    let reply = js.publish("orders.new", "", "hello");
    let ops = std::mem::take(&mut js.h.storage);
    assert!(
        matches!(ops.as_slice(), [StorageOp::Append { msgs, .. }, StorageOp::Sync { .. }] if msgs.len() == 1),
        "{ops:?}"
    );
    let (append, sync) = (ops[0].clone(), ops[1].clone());
    js.execute(vec![append]);
    assert!(
        Js::answers(&js.out(), &reply).is_empty(),
        "no ack before the sync"
    );
    js.execute(vec![sync]);
    let acks = Js::answers(&js.out(), &reply);
    assert_eq!(acks, [serde_json::json!({"stream":"ORDERS","seq":1})]);
}

#[test]
fn publishes_of_one_event_share_one_append_and_one_sync() {
    let mut js = Js::new();
    js.create(r#"{"name":"S","subjects":["s.*"]}"#);
    let mut batch = String::new();
    for i in 0..10 {
        batch.push_str(&format!("PUB s.{i} _INBOX.p{i} 1\r\n{i}\r\n"));
    }
    js.send(&batch);
    let ops = std::mem::take(&mut js.h.storage);
    assert_eq!(ops.len(), 2, "{ops:?}");
    js.execute(ops);
    let out = js.out();
    for i in 0..10 {
        let acks = Js::answers(&out, &format!("_INBOX.p{i}"));
        assert_eq!(acks[0]["seq"], i + 1, "{out}");
    }
}

#[test]
fn messages_read_back_by_sequence_and_subject() {
    let mut js = Js::new();
    js.create(r#"{"name":"S","subjects":["s.*"]}"#);
    js.publish("s.a", "", "one");
    js.publish("s.b", "X-Custom: v1", "two");
    js.publish("s.a", "", "three");
    js.run_storage();
    let _ = js.out();
    let r = js.request("$JS.API.STREAM.MSG.GET.S", r#"{"seq":2}"#);
    assert_eq!(r["message"]["subject"], "s.b");
    let hdrs = data_encoding::BASE64
        .decode(r["message"]["hdrs"].as_str().unwrap().as_bytes())
        .unwrap();
    assert_eq!(hdrs, b"NATS/1.0\r\nX-Custom: v1\r\n\r\n");
    assert_eq!(r["message"]["data"], "dHdv");
    let r = js.request("$JS.API.STREAM.MSG.GET.S", r#"{"last_by_subj":"s.a"}"#);
    assert_eq!(r["message"]["seq"], 3);
    let r = js.request("$JS.API.STREAM.MSG.GET.S", r#"{"seq":9}"#);
    assert_eq!(r["error"]["err_code"], 10037);
    let r = js.request(
        "$JS.API.STREAM.MSG.GET.S",
        r#"{"start_time":"2023-11-14T22:13:20Z"}"#,
    );
    assert_eq!(r["message"]["seq"], 1, "{r}");
    let r = js.request(
        "$JS.API.STREAM.MSG.GET.S",
        r#"{"seq":1,"start_time":"2023-11-14T22:13:20Z"}"#,
    );
    assert_eq!(r["error"]["err_code"], 10003, "{r}");
    let r = js.request("$JS.API.STREAM.MSG.GET.S", "");
    assert_eq!(r["error"]["err_code"], 10003);
    let info = js.request("$JS.API.STREAM.INFO.S", "");
    assert_eq!(info["state"]["messages"], 3);
    assert_eq!(info["state"]["last_seq"], 3);
    assert_eq!(info["state"]["num_subjects"], 2);
    assert_eq!(info["cluster"]["leader"], "n1");
}

#[test]
fn a_message_id_is_stored_once_within_the_window() {
    let mut js = Js::new();
    js.create(r#"{"name":"S","subjects":["s"]}"#);
    let first = js.publish("s", "Nats-Msg-Id: a1", "x");
    let second = js.publish("s", "Nats-Msg-Id: a1", "x");
    js.run_storage();
    let out = js.out();
    assert_eq!(Js::answers(&out, &first)[0]["seq"], 1);
    assert!(
        out.contains(r#"{"stream":"S","seq":1,"duplicate": true}"#),
        "{out}"
    );
    assert_eq!(Js::answers(&out, &second)[0]["duplicate"], true);
    let wrong = js.publish("s", "Nats-Expected-Last-Sequence: 7", "y");
    js.run_storage();
    let ack = &Js::answers(&js.out(), &wrong)[0];
    assert_eq!(ack["error"]["err_code"], 10071);
    assert_eq!(ack["error"]["description"], "wrong last sequence: 1");
    assert_eq!(ack["seq"], 0);
}

#[test]
fn streams_are_listed_purged_and_deleted() {
    let mut js = Js::new();
    for name in ["B", "A", "C"] {
        js.create(&format!(r#"{{"name":"{name}"}}"#));
    }
    let names = js.request("$JS.API.STREAM.NAMES", "");
    assert_eq!(names["streams"], serde_json::json!(["A", "B", "C"]));
    assert_eq!(
        (names["total"].clone(), names["limit"].clone()),
        (3.into(), 1024.into())
    );
    for _ in 0..3 {
        js.publish("A", "", "m");
    }
    js.run_storage();
    let purged = js.request("$JS.API.STREAM.PURGE.A", r#"{"keep":1}"#);
    assert_eq!(
        purged,
        serde_json::json!({"type":"io.nats.jetstream.api.v1.stream_purge_response","success":true,"purged":2})
    );
    let deleted = js.request("$JS.API.STREAM.MSG.DELETE.A", r#"{"seq":3}"#);
    assert_eq!(deleted["success"], true);
    let again = js.request("$JS.API.STREAM.MSG.DELETE.A", r#"{"seq":3}"#);
    assert_eq!(again["error"]["err_code"], 10057);
    let gone = js.request("$JS.API.STREAM.DELETE.B", "");
    assert_eq!(gone["success"], true);
    let info = js.request("$JS.API.STREAM.INFO.B", "");
    assert_eq!(
        info,
        serde_json::json!({"type":"io.nats.jetstream.api.v1.stream_info_response","error":{"code":404,"err_code":10059,"description":"stream not found"},"total":0,"offset":0,"limit":0})
    );
    let list = js.request("$JS.API.STREAM.LIST", "");
    assert_eq!(list["total"], 2);
    assert_eq!(list["streams"][0]["config"]["name"], "A");
    assert_eq!(list["streams"][0]["state"]["messages"], 0);
}

#[test]
fn unknown_api_subjects_get_no_answer() {
    let mut js = Js::new();
    for subject in [
        "$JS.API.FOO",
        "$JS.API.STREAM.CREATE.A.B",
        "$JS.API.STREAM.INFO",
    ] {
        let reply = js.publish(subject, "", "{}");
        js.run_storage();
        let out = js.out();
        assert!(Js::answers(&out, &reply).is_empty(), "{subject}: {out}");
    }
    let info = js.request("$JS.API.INFO", "");
    assert_eq!(
        info["type"],
        "io.nats.jetstream.api.v1.account_info_response"
    );
}

#[test]
fn streams_and_messages_survive_a_restart() {
    let mut js = Js::new();
    js.create(r#"{"name":"S","subjects":["s.>"],"max_msgs":100}"#);
    for i in 0..5 {
        js.publish(&format!("s.{i}"), "", &format!("m{i}"));
    }
    js.run_storage();
    let _ = js.out();
    let disk = js.disk.clone();
    disk.crash();
    let mut js = Js::on(disk);
    let info = js.request("$JS.API.STREAM.INFO.S", "");
    assert_eq!(info["config"]["max_msgs"], 100);
    assert_eq!(info["state"]["messages"], 5);
    let r = js.request("$JS.API.STREAM.MSG.GET.S", r#"{"seq":4}"#);
    assert_eq!(r["message"]["data"], data_encoding::BASE64.encode(b"m3"));
    let ack = js.publish("s.x", "", "after");
    js.run_storage();
    assert_eq!(Js::answers(&js.out(), &ack)[0]["seq"], 6);
}

/// The guarantee: whatever a crash loses, it is never a message that was
/// acknowledged. Publishes run through storage in seeded partial batches,
/// and the disk crashes at a seeded point.
#[test]
fn every_acknowledged_message_survives_a_crash() {
    use rand_chacha::ChaCha8Rng;
    use rand_core::{Rng, SeedableRng};
    for seed in 0..40u64 {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut js = Js::on(SimDisk::with_seed(seed));
        js.create(r#"{"name":"S","subjects":["s"]}"#);
        let mut acked: Vec<(u64, String)> = Vec::new();
        let mut replies: Vec<(String, String)> = Vec::new();
        for i in 0..30 {
            let body = format!("m{seed}-{i}");
            let reply = js.publish("s", "", &body);
            replies.push((reply, body));
            if rng.next_u32() % 3 == 0 {
                // Run a prefix of what is queued.
                let n = js.h.storage.len();
                let k = (rng.next_u32() as usize) % (n + 1);
                let ops: Vec<StorageOp> = js.h.storage.drain(..k).collect();
                js.execute(ops);
            }
            let out = js.out();
            for (reply, body) in &replies {
                for a in Js::answers(&out, reply) {
                    acked.push((a["seq"].as_u64().unwrap(), body.clone()));
                }
            }
        }
        // Power cut: queued operations die with the process.
        js.h.storage.clear();
        let disk = js.disk.clone();
        disk.crash();
        let mut js = Js::on(disk);
        for (seq, body) in &acked {
            let r = js.request("$JS.API.STREAM.MSG.GET.S", &format!(r#"{{"seq":{seq}}}"#));
            assert_eq!(
                r["message"]["data"],
                data_encoding::BASE64.encode(body.as_bytes()),
                "seed {seed}: acknowledged seq {seq} lost"
            );
        }
    }
}

/// The planted bug the simulation hunts does what it says: with it, an
/// append alone releases the acknowledgement.
#[test]
fn the_planted_bug_acknowledges_before_the_sync() {
    let mut js = Js::new();
    js.h.server.opts.mutation = Some(crate::config::Mutation {
        bug: crate::config::PlantedBug::AckBeforeSync,
        one_in: 1,
    });
    js.create(r#"{"name":"S","subjects":["s"]}"#);
    let reply = js.publish("s", "", "x");
    let ops = std::mem::take(&mut js.h.storage);
    js.execute(vec![ops[0].clone()]);
    assert_eq!(Js::answers(&js.out(), &reply)[0]["seq"], 1);
}

#[test]
fn messages_past_max_age_are_removed() {
    let mut js = Js::new();
    js.create(r#"{"name":"S","subjects":["s"],"max_age":1000000000}"#);
    js.publish("s", "", "old");
    js.run_storage();
    js.h.advance(Duration::from_millis(600));
    js.publish("s", "", "new");
    js.run_storage();
    js.h.advance(Duration::from_millis(500));
    js.run_storage();
    let info = js.request("$JS.API.STREAM.INFO.S", "");
    assert_eq!(info["state"]["messages"], 1, "{info}");
    assert_eq!(info["state"]["first_seq"], 2);
}

/// All `HMSG`s on `reply`: headers and body.
pub(super) fn hmsgs(out: &str, reply: &str) -> Vec<(String, String)> {
    let mut found = Vec::new();
    let mut rest = out;
    let head = format!("HMSG {reply} 1 ");
    while let Some(at) = rest.find(&head) {
        rest = &rest[at..];
        let line_end = rest.find("\r\n").unwrap();
        let sizes: Vec<usize> = rest[head.len()..line_end]
            .split(' ')
            .map(|n| n.parse().unwrap())
            .collect();
        let payload = &rest[line_end + 2..line_end + 2 + sizes[1]];
        found.push((
            payload[..sizes[0]].to_string(),
            payload[sizes[0]..].to_string(),
        ));
        rest = &rest[line_end + 2 + sizes[1]..];
    }
    found
}

#[test]
fn expected_last_subject_sequence_is_checked_against_the_store_in_order() {
    let mut js = Js::new();
    js.create(r#"{"name":"KV","subjects":["kv.>"]}"#);
    // A key-value create: only if the key has no message yet.
    let create = "Nats-Expected-Last-Subject-Sequence: 0";
    let first = js.publish("kv.a", create, "1");
    let second = js.publish("kv.a", create, "2");
    let other = js.publish("kv.b", "", "3");
    js.run_storage();
    let out = js.out();
    assert_eq!(Js::answers(&out, &first)[0]["seq"], 1, "{out}");
    let refused = &Js::answers(&out, &second)[0];
    assert_eq!(refused["error"]["err_code"], 10071, "{out}");
    assert_eq!(refused["error"]["description"], "wrong last sequence: 1");
    assert_eq!(
        Js::answers(&out, &other)[0]["seq"],
        2,
        "later publishes keep their order"
    );
    // An update at the right revision.
    let update = js.publish("kv.a", "Nats-Expected-Last-Subject-Sequence: 1", "4");
    js.run_storage();
    assert_eq!(Js::answers(&js.out(), &update)[0]["seq"], 3);
}

#[test]
fn a_rollup_leaves_only_the_newest_message_of_its_subject() {
    let mut js = Js::new();
    js.create(r#"{"name":"R","subjects":["r.>"],"allow_rollup_hdrs":true}"#);
    js.publish("r.a", "", "1");
    js.publish("r.b", "", "2");
    js.publish("r.a", "", "3");
    js.publish("r.a", "Nats-Rollup: sub", "4");
    js.run_storage();
    let _ = js.out();
    let info = js.request("$JS.API.STREAM.INFO.R", "");
    assert_eq!(info["state"]["messages"], 2, "{info}");
    js.create(r#"{"name":"N","subjects":["n"]}"#);
    let refused = js.publish("n", "Nats-Rollup: all", "x");
    js.run_storage();
    let ack = &Js::answers(&js.out(), &refused)[0];
    assert_eq!(ack["error"]["err_code"], 10111);
    assert_eq!(ack["error"]["description"], "rollup not permitted");
}

#[test]
fn direct_get_answers_with_the_stored_message_and_its_origin() {
    let mut js = Js::new();
    js.create(r#"{"name":"DIR","subjects":["dir.>"],"allow_direct":true}"#);
    js.publish("dir.new", "", "d1");
    js.publish("dir.new", "X-Custom: v2", "d2");
    js.run_storage();
    let _ = js.out();
    let get = |js: &mut Js, subject: &str, body: &str| {
        let reply = js.publish(subject, "", body);
        js.run_storage();
        let out = js.out();
        hmsgs(&out, &reply).pop().unwrap_or_else(|| panic!("{out}"))
    };
    let (h, body) = get(&mut js, "$JS.API.DIRECT.GET.DIR", r#"{"seq":1}"#);
    assert!(
        h.starts_with("NATS/1.0\r\nNats-Stream: DIR\r\nNats-Subject: dir.new\r\nNats-Sequence: 1\r\nNats-Time-Stamp: 2023-11-14T22:13:20Z\r\n\r\n"),
        "{h:?}"
    );
    assert_eq!(body, "d1");
    let (h, body) = get(&mut js, "$JS.API.DIRECT.GET.DIR.dir.new", "");
    assert!(
        h.starts_with("NATS/1.0\r\nX-Custom: v2\r\nNats-Stream: DIR\r\n"),
        "{h:?}"
    );
    assert_eq!(body, "d2");
    let (h, _) = get(&mut js, "$JS.API.DIRECT.GET.DIR", r#"{"seq":999}"#);
    assert_eq!(h, "NATS/1.0 404 Message Not Found\r\n\r\n");
    let (h, _) = get(&mut js, "$JS.API.DIRECT.GET.DIR", "");
    assert_eq!(h, "NATS/1.0 408 Empty Request\r\n\r\n");
    js.create(r#"{"name":"ND","subjects":["nd"]}"#);
    let (h, _) = get(&mut js, "$JS.API.DIRECT.GET.ND", r#"{"seq":1}"#);
    assert_eq!(
        h,
        "NATS/1.0 503\r\nNats-Subject: $JS.API.DIRECT.GET.ND\r\n\r\n"
    );
}

#[test]
fn jsz_and_varz_show_streams_and_usage() {
    let mut js = Js::new();
    js.create(r#"{"name":"S","subjects":["s"]}"#);
    js.publish("s", "", "hello");
    js.run_storage();
    let _ = js.out();
    let (status, body) = http(&mut js.h, "/jsz", "streams=1&config=1");
    assert_eq!(status, 200);
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["streams"], 1, "{v}");
    assert_eq!(v["messages"], 1);
    assert_eq!(v["api"]["total"], 1);
    let detail = &v["account_details"][0];
    assert_eq!(detail["name"], "$G");
    assert_eq!(detail["stream_detail"][0]["name"], "S");
    assert_eq!(detail["stream_detail"][0]["config"]["subjects"][0], "s");
    let (_, varz) = http(&mut js.h, "/varz", "");
    let varz: Value = serde_json::from_str(&varz).unwrap();
    assert_eq!(varz["jetstream"]["stats"]["accounts"], 1, "{varz}");
    let (_, off) = http(&mut Harness::new(Options::default()), "/jsz", "");
    let off: Value = serde_json::from_str(&off).unwrap();
    assert_eq!(off["disabled"], true, "{off}");
}

/// With `sync_interval`, the operator's trade: acknowledged once appended,
/// synced on the timer.
#[test]
fn sync_interval_acknowledges_appends_and_syncs_on_a_timer() {
    let mut opts = js_opts();
    opts.jetstream.as_mut().unwrap().sync_interval = Some(Duration::from_secs(2));
    let mut js = Js::new();
    js.h.server.opts = opts;
    js.create(r#"{"name":"S","subjects":["s"]}"#);
    let reply = js.publish("s", "", "x");
    let ops = std::mem::take(&mut js.h.storage);
    assert!(
        matches!(ops.as_slice(), [StorageOp::Append { .. }]),
        "{ops:?}"
    );
    js.execute(ops);
    assert_eq!(Js::answers(&js.out(), &reply)[0]["seq"], 1);
    js.h.advance(Duration::from_secs(2));
    let ops = std::mem::take(&mut js.h.storage);
    assert!(
        matches!(ops.as_slice(), [StorageOp::Sync { .. }]),
        "{ops:?}"
    );
}

#[test]
fn a_stream_may_start_at_a_later_sequence() {
    let mut js = Js::new();
    let r = js.create(r#"{"name":"F","subjects":["f"],"first_seq":100}"#);
    assert_eq!(r["config"]["first_seq"], 100);
    assert_eq!(r["state"]["first_seq"], 100, "{r}");
    let ack = js.publish("f", "", "x");
    js.run_storage();
    assert_eq!(Js::answers(&js.out(), &ack)[0]["seq"], 100);
    // An update keeps the sequence where it is, whatever it says.
    js.request(
        "$JS.API.STREAM.UPDATE.F",
        r#"{"name":"F","subjects":["f"],"first_seq":200}"#,
    );
    let ack = js.publish("f", "", "y");
    js.run_storage();
    assert_eq!(Js::answers(&js.out(), &ack)[0]["seq"], 101);
}

#[test]
fn stream_actions_are_advised_to_whoever_listens() {
    let mut js = Js::new();
    js.send("SUB $JS.EVENT.ADVISORY.STREAM.> 2\r\n");
    js.create(r#"{"name":"S"}"#);
    js.request("$JS.API.STREAM.UPDATE.S", r#"{"name":"S","max_msgs":5}"#);
    js.request("$JS.API.STREAM.DELETE.S", "");
    js.create(r#"{"name":"A"}"#);
    let reply = js.publish("$JS.API.STREAM.DELETE.A", "", "");
    js.run_storage();
    let out = js.out();
    assert!(
        out.contains("MSG $JS.EVENT.ADVISORY.STREAM.DELETED.A 2 "),
        "{out}"
    );
    assert!(
        out.contains(r#"{"type":"io.nats.jetstream.advisory.v1.stream_action","id":""#),
        "{out}"
    );
    assert!(out.contains(r#""stream":"A","action":"delete"}"#), "{out}");
    assert_eq!(Js::answers(&out, &reply)[0]["success"], true);
}

#[test]
fn stream_info_lists_subjects_and_deleted_sequences_on_request() {
    let mut js = Js::new();
    js.create(r#"{"name":"S","subjects":["s.>"]}"#);
    for subject in ["s.a", "s.b", "s.a", "s.c.d", "s.a"] {
        js.publish(subject, "", "x");
    }
    js.run_storage();
    js.request("$JS.API.STREAM.MSG.DELETE.S", r#"{"seq":2}"#);
    js.request("$JS.API.STREAM.MSG.DELETE.S", r#"{"seq":4}"#);
    let info = js.request(
        "$JS.API.STREAM.INFO.S",
        r#"{"subjects_filter":"s.*","deleted_details":true}"#,
    );
    assert_eq!(
        info["state"]["subjects"],
        serde_json::json!({"s.a": 3}),
        "{info}"
    );
    assert_eq!(info["state"]["deleted"], serde_json::json!([2, 4]));
    assert_eq!(info["state"]["num_deleted"], 2);
    assert_eq!(
        (info["total"].clone(), info["limit"].clone()),
        (1.into(), 100_000.into())
    );
    let plain = js.request("$JS.API.STREAM.INFO.S", "");
    assert!(plain["state"].get("subjects").is_none(), "{plain}");
    assert!(plain["state"].get("deleted").is_none());
}

/// A publisher that retries across a restart is still deduped: the
/// window's message ids are read back from the store at start.
#[test]
fn the_duplicate_window_survives_a_restart() {
    let mut js = Js::new();
    js.create(r#"{"name":"S","subjects":["s"]}"#);
    js.publish("s", "Nats-Msg-Id: a", "1");
    js.publish("s", "Nats-Msg-Id: b", "2");
    js.run_storage();
    let _ = js.out();
    let disk = js.disk.clone();
    disk.crash();
    let mut js = Js::on(disk);
    let retry = js.publish("s", "Nats-Msg-Id: a", "1");
    let fresh = js.publish("s", "Nats-Msg-Id: c", "3");
    let expect = js.publish("s", "Nats-Expected-Last-Msg-Id: c", "4");
    js.run_storage();
    let out = js.out();
    let retry = &Js::answers(&out, &retry)[0];
    assert_eq!(
        (retry["seq"].clone(), retry["duplicate"].clone()),
        (1.into(), true.into()),
        "{out}"
    );
    assert_eq!(Js::answers(&out, &fresh)[0]["seq"], 3);
    assert_eq!(Js::answers(&out, &expect)[0]["seq"], 4);
}

#[test]
fn a_subject_transform_rewrites_subjects_before_they_are_stored() {
    let mut js = Js::new();
    let r = js.create(
        r#"{"name":"T","subjects":["in.>"],"subject_transform":{"src":"in.*.*","dest":"out.{{wildcard(2)}}.{{wildcard(1)}}"}}"#,
    );
    assert_eq!(
        r["config"]["subject_transform"]["dest"], "out.{{wildcard(2)}}.{{wildcard(1)}}",
        "{r}"
    );
    js.publish("in.a.b", "", "x");
    js.publish("in.c", "", "y");
    js.run_storage();
    let _ = js.out();
    let m = js.request("$JS.API.STREAM.MSG.GET.T", r#"{"seq":1}"#);
    assert_eq!(m["message"]["subject"], "out.b.a");
    let m = js.request("$JS.API.STREAM.MSG.GET.T", r#"{"seq":2}"#);
    assert_eq!(
        m["message"]["subject"], "in.c",
        "no match: stored as published"
    );
    let bad = js.create(
        r#"{"name":"B","subjects":["b.>"],"subject_transform":{"src":"b.>","dest":"c.*"}}"#,
    );
    assert_eq!(bad["error"]["err_code"], 10156, "{bad}");
}

/// With accounts configured, only those with `jetstream` have it; the
/// others are told so (10039), as by nats-server.
#[test]
fn only_accounts_configured_with_jetstream_have_it() {
    let conf = r#"
accounts {
  A: { users: [{user: a, password: a}] }
  B: { users: [{user: b, password: b}], jetstream: enabled }
}
"#;
    let mut js = Js::configured(conf);
    let mut answer = |user: &str| {
        let id = js.h.client(&format!(
            r#"{{"user":"{user}","pass":"{user}","headers":true,"verbose":false}}"#
        ));
        js.h.send(id, "SUB _INBOX.> 1\r\nPUB $JS.API.INFO _INBOX.i 0\r\n\r\n");
        js.run_storage();
        let out = js.h.out(id);
        Js::answers(&out, "_INBOX.i")
            .pop()
            .unwrap_or_else(|| panic!("{out}"))
    };
    let a = answer("a");
    assert_eq!(a["error"]["err_code"], 10039, "{a}");
    assert_eq!(
        a["error"]["description"],
        "JetStream not enabled for account"
    );
    let b = answer("b");
    assert_eq!(b["streams"], 0, "{b}");
}

#[test]
fn stored_messages_are_republished_once_durable() {
    let mut js = Js::new();
    js.send("SUB rp.> 2\r\n");
    let r = js.create(r#"{"name":"R","subjects":["r.>"],"republish":{"src":"r.>","dest":"rp.>"}}"#);
    assert_eq!(
        r["config"]["republish"],
        serde_json::json!({"src":"r.>","dest":"rp.>"}),
        "{r}"
    );
    js.publish("r.a", "", "m1");
    js.run_storage();
    let _ = js.out();
    js.publish("r.a", "X-A: 1", "m3");
    // Nothing goes out before the sync.
    let ops = std::mem::take(&mut js.h.storage);
    let (reads, writes): (Vec<_>, Vec<_>) = ops
        .into_iter()
        .partition(|op| matches!(op, StorageOp::Read { .. }));
    assert!(
        reads.is_empty(),
        "the subject's last sequence is known: {reads:?}"
    );
    js.execute(vec![writes[0].clone()]);
    assert!(!js.out().contains("rp.a"));
    js.execute(writes[1..].to_vec());
    let out = js.out();
    let copies = hmsgs(&out.replace("HMSG rp.a 2 ", "HMSG rp 1 "), "rp");
    assert!(!copies.is_empty(), "{out}");
    let (h, body) = &copies[0];
    assert!(
        h.starts_with("NATS/1.0\r\nX-A: 1\r\nNats-Stream: R\r\nNats-Subject: r.a\r\nNats-Sequence: 2\r\nNats-Time-Stamp: "),
        "{h:?}"
    );
    assert!(h.ends_with("Nats-Last-Sequence: 1\r\n\r\n"), "{h:?}");
    assert_eq!(body, "m3");
    let cycle = js.create(r#"{"name":"C","subjects":["c.>"],"republish":{"dest":"c.x.>"}}"#);
    assert_eq!(
        cycle["error"]["description"],
        "stream configuration for republish destination forms a cycle"
    );
}

/// A failed write fails the publishes waiting for it, the stream reopens
/// from what its disk holds, and a retry is stored (not taken for a
/// duplicate of a message that never was).
#[test]
fn a_failed_write_is_refused_and_its_retry_stored() {
    let mut js = Js::new();
    js.create(r#"{"name":"S","subjects":["s"]}"#);
    js.publish("s", "Nats-Msg-Id: ok", "1");
    js.run_storage();
    let _ = js.out();
    let failed = js.publish("s", "Nats-Msg-Id: m", "2");
    js.disk.fail_next(natrix_storage::DiskErrorKind::Io);
    js.run_storage();
    let out = js.out();
    let ack = &Js::answers(&out, &failed)[0];
    assert_eq!(ack["error"]["err_code"], 10077, "{out}");
    let retry = js.publish("s", "Nats-Msg-Id: m", "2");
    js.run_storage();
    let ack = &Js::answers(&js.out(), &retry)[0];
    assert_eq!(ack["seq"], 2, "{ack}");
    assert!(ack.get("duplicate").is_none(), "{ack}");
    let m = js.request("$JS.API.STREAM.MSG.GET.S", r#"{"seq":2}"#);
    assert_eq!(m["message"]["data"], data_encoding::BASE64.encode(b"2"));
}

/// Once a subject's last sequence is known, later checks on it need no
/// read from the store, until messages are removed.
#[test]
fn a_known_subject_is_checked_without_a_read() {
    let mut js = Js::new();
    js.create(r#"{"name":"KV","subjects":["kv.>"]}"#);
    js.publish("kv.a", "Nats-Expected-Last-Subject-Sequence: 0", "1");
    js.run_storage();
    let _ = js.out();
    let update = js.publish("kv.a", "Nats-Expected-Last-Subject-Sequence: 1", "2");
    let stale = js.publish("kv.a", "Nats-Expected-Last-Subject-Sequence: 1", "3");
    let reads =
        js.h.storage
            .iter()
            .filter(|op| matches!(op, StorageOp::Read { .. }))
            .count();
    assert_eq!(reads, 0, "{:?}", js.h.storage);
    js.run_storage();
    let out = js.out();
    assert_eq!(Js::answers(&out, &update)[0]["seq"], 2, "{out}");
    assert_eq!(
        Js::answers(&out, &stale)[0]["error"]["description"],
        "wrong last sequence: 2"
    );
    // A removal makes the server ask the store again.
    js.request("$JS.API.STREAM.MSG.DELETE.KV", r#"{"seq":2}"#);
    let again = js.publish("kv.a", "Nats-Expected-Last-Subject-Sequence: 1", "4");
    assert!(
        js.h.storage
            .iter()
            .any(|op| matches!(op, StorageOp::Read { .. }))
    );
    js.run_storage();
    assert_eq!(Js::answers(&js.out(), &again)[0]["seq"], 3);
}

/// An account's `jetstream {}` limits: the count of streams, the storage
/// its streams reserve, and what they hold.
#[test]
fn account_limits_bound_streams_and_storage() {
    let conf = r#"
accounts {
  B: { users: [{user: b, password: b}], jetstream: { max_streams: 2, max_file: 1K } }
}
"#;
    let mut js = Js::configured(conf);
    js.conn =
        js.h.client(r#"{"user":"b","pass":"b","headers":true,"verbose":false}"#);
    js.send("SUB _INBOX.> 1\r\n");
    let info = js.request("$JS.API.INFO", "");
    assert_eq!(info["limits"]["max_streams"], 2, "{info}");
    assert_eq!(info["limits"]["max_storage"], 1000);
    let big = js.create(r#"{"name":"BIG","subjects":["big"],"max_bytes":2048}"#);
    assert_eq!(big["error"]["err_code"], 10047, "{big}");
    js.create(r#"{"name":"A","subjects":["a"]}"#);
    js.create(r#"{"name":"C","subjects":["c"]}"#);
    let third = js.create(r#"{"name":"D","subjects":["d"]}"#);
    assert_eq!(third["error"]["err_code"], 10027, "{third}");
    let body = "x".repeat(600);
    let first = js.publish("a", "", &body);
    js.run_storage();
    assert_eq!(Js::answers(&js.out(), &first)[0]["seq"], 1);
    let second = js.publish("a", "", &body);
    js.run_storage();
    let ack = &Js::answers(&js.out(), &second)[0];
    assert_eq!(ack["error"]["err_code"], 10002, "{ack}");
}

/// A deleted stream's late completions never touch the stream that took
/// its place.
#[test]
fn a_deleted_streams_late_completions_are_ignored() {
    let mut js = Js::new();
    js.create(r#"{"name":"OLD","subjects":["old"]}"#);
    js.publish("old", "", "x");
    let in_flight = std::mem::take(&mut js.h.storage);
    let gone = js.publish("$JS.API.STREAM.DELETE.OLD", "", "");
    let remove = std::mem::take(&mut js.h.storage);
    js.create(r#"{"name":"NEW","subjects":["new"]}"#);
    // The old stream's append and sync complete after the new one exists.
    js.execute(in_flight);
    js.execute(remove);
    let _ = gone;
    let ack = js.publish("new", "", "y");
    js.run_storage();
    assert_eq!(Js::answers(&js.out(), &ack)[0]["seq"], 1);
    let info = js.request("$JS.API.STREAM.INFO.NEW", "");
    assert_eq!(info["state"]["messages"], 1, "{info}");
}

/// The 2.11 batch direct gets, in nats-server 2.15's headers: each message
/// says how many follow and which it follows; an end-of-batch status
/// closes them.
#[test]
fn direct_get_batches_and_multi_last() {
    let mut js = Js::new();
    js.create(r#"{"name":"D","subjects":["d.>"],"allow_direct":true}"#);
    for (subject, body) in [("d.a", "a1"), ("d.b", "b1"), ("d.a", "a2"), ("d.c", "c1")] {
        js.publish(subject, "", body);
    }
    js.run_storage();
    let _ = js.out();
    let batch = |js: &mut Js, body: &str| {
        let reply = js.publish("$JS.API.DIRECT.GET.D", "", body);
        js.run_storage();
        hmsgs(&js.out(), &reply)
    };
    let got = batch(&mut js, r#"{"seq":1,"batch":3}"#);
    assert_eq!(got.len(), 4, "{got:?}");
    assert!(
        got[0]
            .0
            .ends_with("Nats-Num-Pending: 3\r\nNats-Last-Sequence: 0\r\n\r\n"),
        "{got:?}"
    );
    assert!(
        got[2]
            .0
            .ends_with("Nats-Num-Pending: 1\r\nNats-Last-Sequence: 2\r\n\r\n"),
        "{got:?}"
    );
    assert_eq!(
        got[3].0,
        "NATS/1.0 204 EOB\r\nNats-Num-Pending: 1\r\nNats-Last-Sequence: 3\r\n\r\n"
    );
    let got = batch(&mut js, r#"{"next_by_subj":"d.a","batch":5}"#);
    assert_eq!(
        got.iter().map(|(_, b)| b.as_str()).collect::<Vec<_>>(),
        ["a1", "a2", ""]
    );
    let got = batch(&mut js, r#"{"multi_last":["d.a","d.b"]}"#);
    assert_eq!(
        got.iter().map(|(_, b)| b.as_str()).collect::<Vec<_>>(),
        ["b1", "a2", ""]
    );
    assert_eq!(
        got[2].0,
        "NATS/1.0 204 EOB\r\nNats-Num-Pending: 0\r\nNats-Last-Sequence: 3\r\nNats-UpTo-Sequence: 4\r\n\r\n"
    );
    let got = batch(&mut js, r#"{"seq":1,"batch":10,"max_bytes":5}"#);
    assert_eq!(got.len(), 2, "{got:?}");
    assert!(got[1].0.contains("Nats-Num-Pending: 3"), "{got:?}");
    let got = batch(&mut js, r#"{"seq":10,"batch":2}"#);
    assert_eq!(got[0].0, "NATS/1.0 404 Message Not Found\r\n\r\n");
}

/// Per-message TTLs, delete markers and the API level.
#[path = "jetstream_ttl.rs"]
mod ttl;

/// Mirrors and sources.
#[path = "jetstream_sources.rs"]
mod sources;

/// With JetStream's `strict` on (nats-server's default), a field an API
/// request does not have is refused in Go's words, nested or not; the
/// fields nats-server knows and natrix does not serve are not unknown.
#[test]
fn unknown_fields_in_api_requests_are_refused_as_nats_server_refuses_them() {
    let mut js = Js::new();
    let unknown = |r: &Value, field: &str| {
        assert_eq!(r["error"]["err_code"], 10025, "{r}");
        assert_eq!(
            r["error"]["description"],
            format!("invalid JSON: json: unknown field \"{field}\""),
            "{r}"
        );
    };
    let r = js.create(r#"{"name":"S","subjects":["s"],"bogus_field":1}"#);
    unknown(&r, "bogus_field");
    let r = js.create(r#"{"name":"S","subjects":["s"],"consumer_limits":{"what":1}}"#);
    unknown(&r, "what");
    // Known: `pedantic` beside the configuration, `placement`.
    let r = js.create(
        r#"{"name":"S","subjects":["s"],"pedantic":false,"placement":{"cluster":"c","tags":["a"]}}"#,
    );
    assert!(r["error"].is_null(), "{r}");
    assert_eq!(r["config"]["placement"]["tags"][0], "a", "{r}");
    let r = js.request(
        "$JS.API.CONSUMER.CREATE.S.C",
        r#"{"stream_name":"S","config":{"name":"C","ack_policy":"explicit","what":2}}"#,
    );
    unknown(&r, "what");
    let r = js.request(
        "$JS.API.CONSUMER.CREATE.S.C",
        r#"{"stream_name":"S","config":{"name":"C","ack_policy":"explicit"},"action":"","pedantic":false}"#,
    );
    assert!(r["error"].is_null(), "{r}");
    let r = js.request("$JS.API.STREAM.INFO.S", r#"{"subjects_filter":">","x":1}"#);
    unknown(&r, "x");
    let r = js.request("$JS.API.STREAM.MSG.GET.S", r#"{"seq":1,"nope":true}"#);
    unknown(&r, "nope");
    // MSG.GET knows the direct get's batch and refuses it.
    let r = js.request("$JS.API.STREAM.MSG.GET.S", r#"{"seq":1,"batch":2}"#);
    assert_eq!(r["error"]["err_code"], 10003, "{r}");
}

/// `jetstream { strict: false }`: unknown fields are ignored.
#[test]
fn without_strict_unknown_fields_are_ignored() {
    let mut js = Js::configured("jetstream { strict: false }");
    js.conn = js.h.client(r#"{"headers":true,"verbose":false}"#);
    js.send("SUB _INBOX.> 1\r\n");
    let r = js.create(r#"{"name":"S","subjects":["s"],"bogus_field":1}"#);
    assert!(r["error"].is_null(), "{r}");
}

#[test]
fn a_message_is_read_without_its_headers_when_asked() {
    let mut js = Js::new();
    js.create(r#"{"name":"S","subjects":["s"]}"#);
    js.publish("s", "X-Custom: v1", "two");
    js.run_storage();
    let _ = js.out();
    let r = js.request("$JS.API.STREAM.MSG.GET.S", r#"{"seq":1}"#);
    assert!(r["message"]["hdrs"].is_string(), "{r}");
    let r = js.request("$JS.API.STREAM.MSG.GET.S", r#"{"seq":1,"no_hdr":true}"#);
    assert!(r["message"]["hdrs"].is_null(), "{r}");
    assert_eq!(r["message"]["data"], "dHdv");
}

/// Configurations carry nats-server 2.11+'s metadata stamps: the level a
/// configuration needs, kept with it, and the version and level natrix
/// answers as, added to each response; a configuration sent back as it
/// was read is the same one.
#[test]
fn configurations_carry_the_api_level_stamps() {
    let mut js = Js::new();
    let r = js.create(r#"{"name":"S","subjects":["s"]}"#);
    let stamps = &r["config"]["metadata"];
    assert_eq!(stamps["_nats.req.level"], "0", "{r}");
    assert_eq!(stamps["_nats.level"], "1", "{r}");
    assert_eq!(stamps["_nats.ver"], crate::COMPAT_VERSION, "{r}");
    let r = js.create(r#"{"name":"T","subjects":["t"],"allow_msg_ttl":true}"#);
    assert_eq!(r["config"]["metadata"]["_nats.req.level"], "1", "{r}");
    // The configuration as read, stamps and all, creates nothing new.
    let again = r["config"].to_string();
    let r = js.request("$JS.API.STREAM.CREATE.T", &again);
    assert!(r["error"].is_null(), "{r}");
    // An update keeps the level stamped at create.
    let update = r#"{"name":"T","subjects":["t"],"allow_msg_ttl":true,"metadata":{"_nats.req.level":"9","k":"v"}}"#;
    let r = js.request("$JS.API.STREAM.UPDATE.T", update);
    assert_eq!(r["config"]["metadata"]["_nats.req.level"], "1", "{r}");
    assert_eq!(r["config"]["metadata"]["k"], "v", "{r}");
    let r = js.request(
        "$JS.API.CONSUMER.CREATE.S.C",
        r#"{"stream_name":"S","config":{"name":"C","ack_policy":"explicit","priority_groups":["g"],"priority_policy":"pinned_client"}}"#,
    );
    assert_eq!(r["config"]["metadata"]["_nats.req.level"], "1", "{r}");
    assert_eq!(r["config"]["metadata"]["_nats.level"], "1", "{r}");
    let again = format!(r#"{{"stream_name":"S","config":{}}}"#, r["config"]);
    let r = js.request("$JS.API.CONSUMER.CREATE.S.C", &again);
    assert!(r["error"].is_null(), "{r}");
}

/// Distributed counters.
#[path = "jetstream_counters.rs"]
mod counters;

/// Direct gets by time: `start_time` alone, with a subject, in a batch,
/// and `up_to_time` for the last messages before a time.
#[test]
fn direct_gets_start_and_end_at_a_time() {
    let mut js = Js::new();
    js.create(r#"{"name":"DIR","subjects":["dir.>"],"allow_direct":true}"#);
    js.publish("dir.a", "", "a1");
    js.run_storage();
    js.h.now_ns += 10_000_000_000; // 22:13:30
    js.publish("dir.b", "", "b1");
    js.publish("dir.a", "", "a2");
    js.run_storage();
    let _ = js.out();
    let get = |js: &mut Js, body: &str| {
        let reply = js.publish("$JS.API.DIRECT.GET.DIR", "", body);
        js.run_storage();
        hmsgs(&js.out(), &reply)
    };
    let got = get(&mut js, r#"{"start_time":"2023-11-14T22:13:25Z"}"#);
    assert!(got[0].0.contains("Nats-Sequence: 2\r\n"), "{got:?}");
    let got = get(
        &mut js,
        r#"{"start_time":"2023-11-14T22:13:25Z","next_by_subj":"dir.a"}"#,
    );
    assert!(got[0].0.contains("Nats-Sequence: 3\r\n"), "{got:?}");
    let got = get(
        &mut js,
        r#"{"start_time":"0001-01-01T00:00:00Z","batch":5}"#,
    );
    assert_eq!(got.len(), 4, "three messages and the end: {got:?}");
    assert!(got[0].0.contains("Nats-Sequence: 1\r\n"), "{got:?}");
    let got = get(
        &mut js,
        r#"{"multi_last":["dir.>"],"up_to_time":"2023-11-14T22:13:25Z"}"#,
    );
    assert!(got[0].0.contains("Nats-Sequence: 1\r\n"), "{got:?}");
    assert!(got[1].0.contains("Nats-UpTo-Sequence: 1\r\n"), "{got:?}");
    let got = get(
        &mut js,
        r#"{"multi_last":["dir.>"],"up_to_time":"2023-11-14T22:13:00Z"}"#,
    );
    assert_eq!(got[0].0, "NATS/1.0 404 No Results\r\n\r\n");
    let got = get(&mut js, r#"{"start_time":"2030-01-01T00:00:00Z"}"#);
    assert_eq!(got[0].0, "NATS/1.0 404 Message Not Found\r\n\r\n");
    let got = get(&mut js, r#"{"seq":1,"start_time":"2023-11-14T22:13:25Z"}"#);
    assert_eq!(got[0].0, "NATS/1.0 408 Bad Request\r\n\r\n");
    let got = get(&mut js, "{}");
    assert_eq!(got[0].0, "NATS/1.0 408 Empty Request\r\n\r\n");
}

/// Atomic batch publish.
#[path = "jetstream_batch.rs"]
mod batch;
