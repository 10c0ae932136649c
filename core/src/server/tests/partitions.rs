//! Key-partitioned consumer groups: members are connections, each
//! partition has one owner and one message out at a time, in order.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use super::consumers::{Got, durable, msgs};
use super::jetstream::Js;
use crate::server::{ConnId, Event};

/// A member: its own connection, pulling into `<inbox>.>`.
struct Member {
    conn: ConnId,
    inbox: &'static str,
}

fn join(js: &mut Js, inbox: &'static str) -> Member {
    let conn =
        js.h.client(r#"{"headers":true,"no_responders":true,"verbose":false}"#);
    js.h.send(conn, &format!("SUB {inbox}.> 1\r\n"));
    let _ = js.h.out(conn);
    Member { conn, inbox }
}

fn pull(js: &mut Js, m: &Member, batch: u64) {
    let body = format!(r#"{{"batch":{batch},"expires":60000000000}}"#);
    js.h.send(
        m.conn,
        &format!(
            "PUB $JS.API.CONSUMER.MSG.NEXT.S.G {}.{batch} {}\r\n{body}\r\n",
            m.inbox,
            body.len()
        ),
    );
    js.run_storage();
}

/// What member `m` got since the last look: deliveries only.
fn got(js: &mut Js, m: &Member) -> Vec<Got> {
    msgs(&js.h.out(m.conn))
        .into_iter()
        .filter(|g| g.subject.starts_with("s."))
        .collect()
}

fn ack(js: &mut Js, m: &Member, g: &Got) {
    js.h.send(m.conn, &format!("PUB {} 0\r\n\r\n", g.reply));
    js.run_storage();
}

/// The stream sequence in an ack reply subject.
fn seq(g: &Got) -> u64 {
    g.reply.split('.').nth(5).unwrap().parse().unwrap()
}

fn group(js: &mut Js, partitions: u32) {
    js.create(r#"{"name":"S","subjects":["s.>"]}"#);
    let r = durable(
        js,
        "G",
        &format!(
            r#"{{"durable_name":"G","ack_policy":"explicit","ack_wait":2000000000,"metadata":{{"natrix.partitions":"{partitions}","natrix.partition_key":"2"}}}}"#
        ),
    );
    assert!(r.get("error").is_none(), "{r}");
}

/// How many of `count` partitions keys `k0`..`k<keys-1>` fall in.
fn partitions_of(keys: usize, count: u32) -> usize {
    (0..keys)
        .map(|k| crate::mapping::fnv1a32(format!("k{k}").as_bytes()) % count)
        .collect::<BTreeSet<u32>>()
        .len()
}

fn publish_keys(js: &mut Js, n: usize, keys: usize) {
    for i in 0..n {
        js.publish(&format!("s.k{}", i % keys), "", &format!("{i}"));
    }
    js.run_storage();
    let _ = js.out();
}

#[test]
fn partitioned_configs_are_checked() {
    let mut js = Js::new();
    js.create(r#"{"name":"S","subjects":["s.>"]}"#);
    for (config, why) in [
        (
            r#"{"durable_name":"G","ack_policy":"explicit","metadata":{"natrix.partitions":"0"}}"#,
            "natrix.partitions must be",
        ),
        (
            r#"{"durable_name":"G","ack_policy":"none","metadata":{"natrix.partitions":"4"}}"#,
            "pull consumer with explicit acks",
        ),
        (
            r#"{"durable_name":"G","ack_policy":"explicit","metadata":{"natrix.partitions":"4","natrix.partition_key":"x"}}"#,
            "natrix.partition_key must",
        ),
    ] {
        let r = durable(&mut js, "G", config);
        let text = r["error"]["description"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert!(text.contains(why), "{config}: {r}");
    }
    let ok = r#"{"durable_name":"G","ack_policy":"explicit","metadata":{"natrix.partitions":"4"}}"#;
    assert!(durable(&mut js, "G", ok).get("error").is_none());
    let changed =
        r#"{"durable_name":"G","ack_policy":"explicit","metadata":{"natrix.partitions":"8"}}"#;
    let r = js.request(
        "$JS.API.CONSUMER.CREATE.S.G",
        &format!(r#"{{"stream_name":"S","config":{changed},"action":"update"}}"#),
    );
    assert!(
        r["error"]["description"]
            .as_str()
            .unwrap()
            .contains("partitioning can not be updated"),
        "{r}"
    );
}

#[test]
fn each_key_has_one_owner_one_message_out_and_its_order() {
    let mut js = Js::new();
    group(&mut js, 4);
    let a = join(&mut js, "a");
    let b = join(&mut js, "b");
    pull(&mut js, &a, 100);
    pull(&mut js, &b, 100);
    publish_keys(&mut js, 40, 10);
    let mut owner: BTreeMap<String, &'static str> = BTreeMap::new();
    let mut seen: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    let mut total = 0;
    for _round in 0..100 {
        let mut out = Vec::new();
        for m in [&a, &b] {
            let got = got(&mut js, m);
            // One message out per partition: a member never holds two
            // of one key at once.
            let keys: BTreeSet<&String> = got.iter().map(|g| &g.subject).collect();
            assert_eq!(keys.len(), got.len(), "{got:?}");
            out.extend(got.into_iter().map(|g| (m, g)));
        }
        assert!(out.len() <= 4, "at most one message out per partition");
        if out.is_empty() {
            break;
        }
        for (m, g) in out {
            let first = *owner.entry(g.subject.clone()).or_insert(m.inbox);
            assert_eq!(first, m.inbox, "{} has one owner", g.subject);
            seen.entry(g.subject.clone()).or_default().push(seq(&g));
            total += 1;
            ack(&mut js, m, &g);
        }
    }
    assert_eq!(total, 40);
    for (key, seqs) in &seen {
        assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{key}: {seqs:?}");
        assert_eq!(seqs.len(), 4);
    }
    let members: BTreeSet<&str> = owner.values().copied().collect();
    assert_eq!(members.len(), 2, "both members own keys: {owner:?}");
    let info = js.request("$JS.API.CONSUMER.INFO.S.G", "");
    assert_eq!(info["num_ack_pending"], 0, "{info}");
    assert_eq!(info["ack_floor"]["stream_seq"], 40, "{info}");
}

#[test]
fn a_members_partitions_move_when_it_leaves_and_come_after_its_unacked() {
    let mut js = Js::new();
    group(&mut js, 8);
    let a = join(&mut js, "a");
    let b = join(&mut js, "b");
    pull(&mut js, &a, 100);
    pull(&mut js, &b, 100);
    publish_keys(&mut js, 16, 8);
    let to_a = got(&mut js, &a);
    let to_b = got(&mut js, &b);
    assert_eq!(
        to_a.len() + to_b.len(),
        partitions_of(8, 8),
        "{to_a:?} {to_b:?}"
    );
    assert!(!to_b.is_empty() && !to_a.is_empty());
    // b goes without acking: its messages come to a at once, each before
    // the next of its key.
    js.h.server
        .handle(super::now_at(js.h.now_ns), Event::Closed { conn: b.conn });
    js.h.drain();
    js.h.advance(Duration::from_millis(300));
    js.run_storage();
    let again = got(&mut js, &a);
    let b_keys: BTreeSet<String> = to_b.iter().map(|g| g.subject.clone()).collect();
    let again_keys: BTreeSet<String> = again.iter().map(|g| g.subject.clone()).collect();
    assert_eq!(again_keys, b_keys, "{again:?}");
    for g in &again {
        let first = to_b.iter().find(|x| x.subject == g.subject).unwrap();
        assert_eq!(seq(g), seq(first), "the unacked one comes first");
        assert!(
            g.reply.starts_with("$JS.ACK.S.G.2."),
            "a redelivery: {}",
            g.reply
        );
    }
    // Acking everything a holds delivers the rest, one per key in turn.
    let mut rest = to_a;
    rest.extend(again.clone());
    let mut delivered = rest.len();
    for _ in 0..10 {
        for g in std::mem::take(&mut rest) {
            ack(&mut js, &a, &g);
        }
        rest = got(&mut js, &a);
        if rest.is_empty() {
            break;
        }
        delivered += rest.len();
    }
    // Every message reached a once: its own, b's again, then the rest.
    assert_eq!(delivered, 16, "{again:?}");
}

#[test]
fn a_new_member_waits_for_the_old_owners_message_before_taking_its_key() {
    let mut js = Js::new();
    group(&mut js, 16);
    let a = join(&mut js, "a");
    publish_keys(&mut js, 32, 16);
    pull(&mut js, &a, 100);
    let held = got(&mut js, &a);
    let busy = partitions_of(16, 16);
    assert_eq!(held.len(), busy, "one per partition");
    // c joins: some partitions are now c's, but a holds their messages.
    let c = join(&mut js, "c");
    pull(&mut js, &c, 100);
    assert!(got(&mut js, &c).is_empty(), "nothing while a holds them");
    pull(&mut js, &a, 100);
    for g in &held {
        ack(&mut js, &a, g);
    }
    let to_c = got(&mut js, &c);
    let to_a = got(&mut js, &a);
    assert_eq!(to_a.len() + to_c.len(), busy, "{to_a:?} {to_c:?}");
    assert!(!to_c.is_empty(), "c owns some partitions now");
    let a_keys: BTreeSet<String> = to_a.iter().map(|g| g.subject.clone()).collect();
    assert!(to_c.iter().all(|g| !a_keys.contains(&g.subject)));
}

#[test]
fn waiting_messages_survive_a_restart_in_order() {
    let mut js = Js::new();
    group(&mut js, 2);
    let a = join(&mut js, "a");
    publish_keys(&mut js, 6, 2);
    pull(&mut js, &a, 100);
    let first = got(&mut js, &a);
    assert_eq!(first.len(), 2);
    ack(&mut js, &a, &first[0]);
    js.h.advance(Duration::from_millis(1100)); // the lazy save
    js.run_storage();
    let disk = js.disk.clone();
    let mut js = Js::on(disk);
    let a = join(&mut js, "a");
    pull(&mut js, &a, 100);
    let mut seen: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    let mut got_now = got(&mut js, &a);
    for _ in 0..10 {
        if got_now.is_empty() {
            break;
        }
        for g in &got_now {
            seen.entry(g.subject.clone()).or_default().push(seq(g));
            ack(&mut js, &a, g);
        }
        got_now = got(&mut js, &a);
    }
    let acked = seq(&first[0]);
    let all: BTreeSet<u64> = seen.values().flatten().copied().collect();
    assert_eq!(all.len(), 5, "{seen:?}");
    assert!(!all.contains(&acked), "the acked one stays acked");
    for (key, seqs) in &seen {
        assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{key}: {seqs:?}");
    }
}

/// Found by the simulation (seed 837): a recovered group read again, as
/// new, a message it had read ahead (pending, not yet delivered when it
/// was saved), once it had redelivered it and a member had acked it.
#[test]
fn a_read_ahead_message_acked_after_a_restart_is_not_delivered_again() {
    let mut js = Js::new();
    group(&mut js, 1);
    let a = join(&mut js, "a");
    publish_keys(&mut js, 2, 1);
    // A batch of 2 reads both; the second waits behind the first, and
    // still waits (pending, undelivered) when the request has expired
    // and the first is acked.
    let body = r#"{"batch":2,"expires":100000000}"#;
    let next = format!(
        "PUB $JS.API.CONSUMER.MSG.NEXT.S.G {}.1 {}\r\n{body}\r\n",
        a.inbox,
        body.len()
    );
    js.h.send(a.conn, &next);
    js.run_storage();
    let first = got(&mut js, &a);
    assert_eq!(first.len(), 1, "the second waits behind the first");
    js.h.advance(Duration::from_millis(200));
    js.run_storage();
    ack(&mut js, &a, &first[0]);
    js.h.advance(Duration::from_millis(1100)); // the lazy save
    js.run_storage();
    let disk = js.disk.clone();
    // The member pulls while the group recovers, and acks what it gets
    // at once.
    let mut js = Js::on_unstarted(disk);
    let a = join(&mut js, "a");
    let body = r#"{"batch":1,"expires":60000000000}"#;
    let mut seen = Vec::new();
    for _ in 0..20 {
        let next = format!(
            "PUB $JS.API.CONSUMER.MSG.NEXT.S.G {}.1 {}\r\n{body}\r\n",
            a.inbox,
            body.len()
        );
        js.h.send(a.conn, &next);
        js.run_storage_once();
        for g in got(&mut js, &a) {
            seen.push(seq(&g));
            js.h.send(a.conn, &format!("PUB {} 0\r\n\r\n", g.reply));
        }
    }
    js.run_storage();
    seen.extend(got(&mut js, &a).iter().map(seq));
    assert_eq!(seen, [2], "acked, yet delivered again");
}
