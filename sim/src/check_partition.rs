//! The partitioned group's checkers: one owner per partition at a time,
//! each partition's messages in stream order, and every acknowledged
//! publish delivered to some member and acked.
//!
//! They read only what the members saw (`PartEv`s in the history), and
//! they judge the server by what it can have known. A delivery's hold (the
//! time the server counts it as out with its member) is only ever bounded
//! from inside: it began when the server sent it, no later than the
//! member received it; it ends no earlier than the first of
//! - the first ack of its sequence any member sent in that server
//!   lifetime (an ack takes effect when it arrives),
//! - its ack wait after the oldest pull request still open on its
//!   connection went out (the server sent it after that request arrived;
//!   a member that stops pulling is dropped no sooner either),
//! - the latest request answered on its connection (the server closing
//!   the connection ends the hold, and it had not closed it when it
//!   answered that request).
//!
//! A server restart ends every hold (holds are compared within one
//! server lifetime). Two holds of one partition by two connections that
//! provably overlap are two owners.

use std::collections::BTreeMap;

use crate::history::{ClientId, Entry, Ev, JsAck, JsDelivery};

/// What a member of the partitioned group saw and did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PartEv {
    /// A delivery arrived on the member's connection `epoch`, accepted by
    /// server lifetime `lifetime`. `request_ns`: when the oldest pull
    /// request still open on that connection went out.
    Delivery {
        client: ClientId,
        epoch: u32,
        lifetime: u32,
        seq: u64,
        deliveries: u64,
        subject: String,
        request_ns: u64,
        partitions: u32,
        ack_wait_ns: u64,
    },
    /// A status ended a pull request sent at `request_ns` on connection
    /// `epoch`: the server had the connection open after that.
    Status {
        client: ClientId,
        epoch: u32,
        request_ns: u64,
    },
    /// The member sent a double ack of `seq` with reply `reply`.
    Ack {
        client: ClientId,
        epoch: u32,
        lifetime: u32,
        seq: u64,
        reply: String,
    },
    /// The double ack with reply `reply` was answered: it is durable.
    Acked {
        client: ClientId,
        seq: u64,
        reply: String,
    },
}

/// The subjects the group's consumer takes.
const KEYED: &str = "js.p.";

/// One delivery, as the checkers use it.
#[derive(Debug, Clone)]
struct Got<'a> {
    at_ns: u64,
    member: (ClientId, u32),
    lifetime: u32,
    seq: u64,
    partition: u32,
    request_ns: u64,
    ack_wait_ns: u64,
    subject: &'a str,
}

/// A delivery's hold as far as it is sure: from its receipt until at
/// least `until_ns`.
struct Hold<'a> {
    from_ns: u64,
    until_ns: u64,
    got: &'a Got<'a>,
}

/// A key's partition, as the core computes it: FNV-1a (32 bits) of the
/// key token, modulo the partition count.
pub fn partition(subject: &str, partitions: u32) -> u32 {
    let key = subject.split('.').nth(2).unwrap_or_default();
    let mut h: u32 = 0x811c_9dc5;
    for &b in key.as_bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h % partitions.max(1)
}

fn events(entries: &[Entry]) -> impl Iterator<Item = (u64, &PartEv)> {
    entries.iter().filter_map(|e| match &e.ev {
        Ev::Part(p) => Some((e.at_ns, &**p)),
        _ => None,
    })
}

fn deliveries(entries: &[Entry]) -> Vec<Got<'_>> {
    events(entries)
        .filter_map(|(at_ns, e)| match e {
            PartEv::Delivery {
                client,
                epoch,
                lifetime,
                seq,
                subject,
                request_ns,
                partitions,
                ack_wait_ns,
                ..
            } => Some(Got {
                at_ns,
                member: (*client, *epoch),
                lifetime: *lifetime,
                seq: *seq,
                partition: partition(subject, *partitions),
                request_ns: *request_ns,
                ack_wait_ns: *ack_wait_ns,
                subject,
            }),
            _ => None,
        })
        .collect()
}

/// Every partitioned-group invariant over a run's history.
pub fn check(entries: &[Entry], converged: bool, bad: &mut impl FnMut(&'static str, String)) {
    let got = deliveries(entries);
    if got.is_empty() && !entries.iter().any(|e| matches!(e.ev, Ev::Part(_))) {
        return;
    }
    one_owner(entries, &got, bad);
    order(entries, &got, bad);
    if converged {
        at_least_once(entries, bad);
    }
}

/// `partition-one-owner`: no two connections provably hold messages of
/// one partition at once.
fn one_owner(entries: &[Entry], got: &[Got<'_>], bad: &mut impl FnMut(&'static str, String)) {
    // (lifetime, seq) -> the first ack of it sent.
    let mut first_ack: BTreeMap<(u32, u64), u64> = BTreeMap::new();
    // connection -> the latest request answered on it.
    let mut open_at: BTreeMap<(ClientId, u32), u64> = BTreeMap::new();
    for (at_ns, e) in events(entries) {
        match e {
            PartEv::Ack { lifetime, seq, .. } => {
                first_ack.entry((*lifetime, *seq)).or_insert(at_ns);
            }
            PartEv::Status {
                client,
                epoch,
                request_ns,
            } => {
                let open = open_at.entry((*client, *epoch)).or_default();
                *open = (*open).max(*request_ns);
            }
            _ => {}
        }
    }
    for g in got {
        let open = open_at.entry(g.member).or_default();
        *open = (*open).max(g.request_ns);
    }
    // (lifetime, partition) -> holds: [received, surely held until).
    let mut holds: BTreeMap<(u32, u32), Vec<Hold<'_>>> = BTreeMap::new();
    for g in got {
        let mut until = g.request_ns + g.ack_wait_ns;
        if let Some(&acked) = first_ack.get(&(g.lifetime, g.seq)) {
            until = until.min(acked);
        }
        until = until.min(open_at[&g.member]);
        if until > g.at_ns {
            holds
                .entry((g.lifetime, g.partition))
                .or_default()
                .push(Hold {
                    from_ns: g.at_ns,
                    until_ns: until,
                    got: g,
                });
        }
    }
    for ((lifetime, p), list) in holds {
        let mut reported = false;
        for (i, a) in list.iter().enumerate() {
            for b in &list[i + 1..] {
                let overlap = a.from_ns.max(b.from_ns) < a.until_ns.min(b.until_ns);
                if overlap && a.got.member != b.got.member && !reported {
                    reported = true;
                    bad(
                        "partition-one-owner",
                        format!(
                            "partition {p} in server lifetime {lifetime}: c{} (connection {}) held sequence {} ({}) from {} until at least {}, and c{} (connection {}) held sequence {} ({}) from {} until at least {}",
                            a.got.member.0,
                            a.got.member.1,
                            a.got.seq,
                            a.got.subject,
                            ms(a.from_ns),
                            ms(a.until_ns),
                            b.got.member.0,
                            b.got.member.1,
                            b.got.seq,
                            b.got.subject,
                            ms(b.from_ns),
                            ms(b.until_ns)
                        ),
                    );
                }
            }
        }
    }
}

/// `partition-order`: within a server lifetime a client receives a
/// partition's messages in stream order (a redelivery may repeat the
/// last one; once a later message came, an earlier one was settled and
/// never comes again in that lifetime); and no message is received by
/// anyone before every earlier message of its partition known to be in
/// the stream was received by someone (a partition's next message goes
/// out only once the one before it is acked, after someone received it).
fn order(entries: &[Entry], got: &[Got<'_>], bad: &mut impl FnMut(&'static str, String)) {
    let mut last: BTreeMap<(ClientId, u32, u32), u64> = BTreeMap::new();
    for g in got {
        let key = (g.member.0, g.lifetime, g.partition);
        if let Some(&prev) = last.get(&key)
            && g.seq < prev
        {
            bad(
                "partition-order",
                format!(
                    "c{} got sequence {} ({}) at {} after sequence {prev} of its partition {} in server lifetime {}",
                    g.member.0,
                    g.seq,
                    g.subject,
                    ms(g.at_ns),
                    g.partition,
                    g.lifetime
                ),
            );
            return;
        }
        last.insert(key, g.seq);
    }
    let Some(partitions) = events(entries).find_map(|(_, e)| match e {
        PartEv::Delivery { partitions, .. } => Some(*partitions),
        _ => None,
    }) else {
        return;
    };
    // partition -> seq -> first received (None: known, never received).
    let mut first: BTreeMap<u32, BTreeMap<u64, Option<u64>>> = BTreeMap::new();
    for g in got {
        first
            .entry(g.partition)
            .or_default()
            .entry(g.seq)
            .or_insert(Some(g.at_ns));
    }
    for a in acks(entries).filter(|a| !a.duplicate) {
        let p = partition(&a.subject, partitions);
        first.entry(p).or_default().entry(a.seq).or_insert(None);
    }
    for (p, seqs) in first {
        // The earliest first receipt among the later sequences.
        let mut later_first: Option<(u64, u64)> = None;
        for (&seq, &at) in seqs.iter().rev() {
            if let Some((later_seq, later_at)) = later_first
                && at.is_none_or(|at| at > later_at)
            {
                let when = at.map_or("never".to_string(), |at| format!("first at {}", ms(at)));
                bad(
                    "partition-order",
                    format!(
                        "sequence {later_seq} of partition {p} was received at {} before sequence {seq} ({when})",
                        ms(later_at)
                    ),
                );
                return;
            }
            if let Some(at) = at
                && later_first.is_none_or(|(_, t)| at <= t)
            {
                later_first = Some((seq, at));
            }
        }
    }
}

fn acks(entries: &[Entry]) -> impl Iterator<Item = &JsAck> {
    entries.iter().filter_map(|e| match &e.ev {
        Ev::JsAck(a) if a.subject.starts_with(KEYED) => Some(&**a),
        _ => None,
    })
}

/// `partition-at-least-once`: the consumer checkers' rule, over the
/// group's members and the keyed publishes: every acknowledged publish
/// was delivered to a member and acked (answered, or on a connection
/// that died before the answer could come).
fn at_least_once(entries: &[Entry], bad: &mut impl FnMut(&'static str, String)) {
    let as_consumer: Vec<Entry> = entries
        .iter()
        .filter_map(|e| {
            let ev = match &e.ev {
                // A duplicate's ack names the first publish's sequence,
                // whose subject may be another.
                Ev::JsAck(a) if a.subject.starts_with(KEYED) && !a.duplicate => e.ev.clone(),
                Ev::Disconnected { .. } => e.ev.clone(),
                Ev::Part(p) => match &**p {
                    PartEv::Delivery {
                        client,
                        epoch,
                        lifetime,
                        seq,
                        deliveries,
                        subject,
                        ..
                    } => Ev::JsDelivery(Box::new(JsDelivery {
                        client: *client,
                        epoch: *epoch,
                        stream: crate::client::JS_STREAM,
                        consumer_seq: 0,
                        lifetime: *lifetime,
                        seq: *seq,
                        deliveries: *deliveries,
                        subject: subject.clone(),
                        headers: Vec::new(),
                        payload: Vec::new(),
                    })),
                    PartEv::Ack {
                        client,
                        epoch,
                        seq,
                        reply,
                        ..
                    } => Ev::JsConsumerAck {
                        client: *client,
                        epoch: *epoch,
                        stream: crate::client::JS_STREAM,
                        seq: *seq,
                        reply: reply.clone(),
                    },
                    PartEv::Acked { client, seq, reply } => Ev::JsConsumerAcked {
                        client: *client,
                        // (Not read by the at-least-once check.)
                        lifetime: 0,
                        stream: crate::client::JS_STREAM,
                        seq: *seq,
                        reply: reply.clone(),
                    },
                    PartEv::Status { .. } => return None,
                },
                _ => return None,
            };
            Some(Entry { at_ns: e.at_ns, ev })
        })
        .collect();
    crate::check_consumer::at_least_once(
        &as_consumer,
        crate::client::JS_STREAM,
        true,
        "partition-at-least-once",
        bad,
    );
}

fn ms(ns: u64) -> String {
    format!("{:.3} ms", ns as f64 / 1e6)
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    fn at(at_ns: u64, ev: PartEv) -> Entry {
        Entry {
            at_ns,
            ev: Ev::Part(Box::new(ev)),
        }
    }

    /// A delivery of `seq` (key `k0`, one partition, ack wait 1 s) to
    /// client `client`'s connection 1, answering a request sent at
    /// `request_ns`.
    fn got(at_ns: u64, client: ClientId, seq: u64, request_ns: u64) -> Entry {
        at(
            at_ns,
            PartEv::Delivery {
                client,
                epoch: 1,
                lifetime: 0,
                seq,
                deliveries: 1,
                subject: "js.p.k0".into(),
                request_ns,
                partitions: 1,
                ack_wait_ns: S,
            },
        )
    }

    fn ack(at_ns: u64, client: ClientId, seq: u64) -> Entry {
        at(
            at_ns,
            PartEv::Ack {
                client,
                epoch: 1,
                lifetime: 0,
                seq,
                reply: format!("r{client}.{seq}"),
            },
        )
    }

    /// Connection 1 of `client` answered a request sent at `request_ns`.
    fn alive(at_ns: u64, client: ClientId, request_ns: u64) -> Entry {
        at(
            at_ns,
            PartEv::Status {
                client,
                epoch: 1,
                request_ns,
            },
        )
    }

    fn run(entries: &[Entry]) -> Vec<&'static str> {
        let mut found = Vec::new();
        check(entries, false, &mut |name, _| found.push(name));
        found
    }

    #[test]
    fn partitions_follow_the_cores_hash() {
        // FNV-1a of "a" is 0xe40c292c.
        assert_eq!(partition("js.p.a", u32::MAX), 0xe40c_292c);
        assert!((0..8).all(|k| partition(&format!("js.p.k{k}"), 3) < 3));
    }

    #[test]
    fn a_handover_after_the_ack_or_the_ack_wait_passes() {
        // c0 holds 1 and acks it; c1 gets 2. Then c1 holds 2 and never
        // acks: c0 gets it again after the ack wait.
        let entries = [
            got(100, 0, 1, 50),
            alive(300, 0, 200),
            ack(400, 0, 1),
            got(500, 1, 2, 450),
            alive(3 * S, 1, 2 * S),
            got(450 + S + 10, 0, 2, S),
        ];
        assert!(run(&entries).is_empty(), "{:?}", run(&entries));
    }

    #[test]
    fn two_holders_of_one_partition_are_caught() {
        let entries = [
            got(100, 0, 1, 50),
            alive(3 * S, 0, 2 * S),
            got(200, 1, 2, 150),
            alive(3 * S, 1, 2 * S),
        ];
        assert_eq!(run(&entries), ["partition-one-owner"]);
    }

    #[test]
    fn a_connection_that_may_have_closed_holds_nothing_past_its_last_answer() {
        // c0's connection answered nothing after its request at 50: the
        // server may have closed it and handed 1 on at once.
        let entries = [
            got(100, 0, 1, 50),
            got(200, 1, 1, 150),
            alive(3 * S, 1, 2 * S),
        ];
        assert!(run(&entries).is_empty());
    }

    #[test]
    fn a_partition_going_back_is_out_of_order() {
        let entries = [got(100, 0, 1, 50), got(200, 0, 2, 150), got(300, 0, 1, 250)];
        assert_eq!(run(&entries), ["partition-order"]);
        // Someone got 2 before anyone got 1.
        let entries = [got(100, 1, 2, 50), got(200, 0, 1, 150)];
        assert_eq!(run(&entries), ["partition-order"]);
        // A redelivery may repeat the last one.
        let entries = [got(100, 0, 1, 50), got(200, 0, 1, 150), got(300, 0, 2, 250)];
        assert!(run(&entries).is_empty());
    }
}
