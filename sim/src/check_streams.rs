//! The work-queue and key-value checkers.
//!
//! A work queue's consumer is pulled by two clients, so "after" needs
//! care: a delivery one client receives after another client got an
//! ack's answer may have been sent before it. What orders them is the
//! server: the answer was sent by the server lifetime that accepted the
//! connection it came on, so any delivery by a later lifetime was sent
//! after it; and within that lifetime the consumer sequence grows with
//! every delivery, whichever client it goes to, so a delivery numbered at
//! or above the first one the answered client received after its answer
//! was sent after the answer too.

use std::collections::BTreeMap;

use crate::check_consumer::{at_least_once, ms};
use crate::check_js::JsOutcome;
use crate::client::{KV_STREAM, WORK_STREAM};
use crate::history::{ClientId, Entry, Ev, ReadAnswer, ReadOf};

/// Every work-queue and key-value invariant the seed's workloads call for.
pub fn check(
    entries: &[Entry],
    js: &JsOutcome,
    converged: bool,
    bad: &mut impl FnMut(&'static str, String),
) {
    if js.work_queue {
        no_redelivery_after_ack(entries, bad);
        gone_after_ack(entries, bad);
        if converged {
            at_least_once(entries, WORK_STREAM, true, "workqueue-at-least-once", bad);
        }
    }
    if js.kv {
        kv_read_latest(entries, bad);
    }
}

/// A double ack of a work item, answered.
struct Answered {
    at_ns: u64,
    index: usize,
    client: ClientId,
    lifetime: u32,
    /// The consumer sequence of the first delivery its client received
    /// after it in the same server lifetime (none: no such delivery).
    after_consumer_seq: Option<u64>,
}

/// `workqueue-no-redelivery-after-ack`: once a double ack of a work item
/// is answered, no client gets it again from a delivery sent after the
/// answer.
fn no_redelivery_after_ack(entries: &[Entry], bad: &mut impl FnMut(&'static str, String)) {
    // client -> (index, lifetime, consumer seq) of its work deliveries.
    let mut by_client: BTreeMap<ClientId, Vec<(usize, u32, u64)>> = BTreeMap::new();
    for (i, e) in entries.iter().enumerate() {
        if let Ev::JsDelivery(d) = &e.ev
            && d.stream == WORK_STREAM
        {
            let list = by_client.entry(d.client).or_default();
            list.push((i, d.lifetime, d.consumer_seq));
        }
    }
    let mut answers: BTreeMap<u64, Vec<Answered>> = BTreeMap::new();
    for (index, e) in entries.iter().enumerate() {
        let Ev::JsConsumerAcked {
            client,
            lifetime,
            stream,
            seq,
            ..
        } = &e.ev
        else {
            continue;
        };
        if *stream != WORK_STREAM {
            continue;
        }
        let next = by_client.get(client).and_then(|list| {
            let at = list.partition_point(|(i, _, _)| *i < index);
            list.get(at)
        });
        let after_consumer_seq = next
            .filter(|(_, l, _)| l == lifetime)
            .map(|(_, _, cseq)| *cseq);
        answers.entry(*seq).or_default().push(Answered {
            at_ns: e.at_ns,
            index,
            client: *client,
            lifetime: *lifetime,
            after_consumer_seq,
        });
    }
    for (index, e) in entries.iter().enumerate() {
        let Ev::JsDelivery(d) = &e.ev else {
            continue;
        };
        if d.stream != WORK_STREAM {
            continue;
        }
        for a in answers.get(&d.seq).into_iter().flatten() {
            let later = d.lifetime > a.lifetime
                || (d.lifetime == a.lifetime
                    && a.after_consumer_seq.is_some_and(|c| d.consumer_seq >= c))
                || (d.client == a.client && index > a.index);
            if later {
                bad(
                    "workqueue-no-redelivery-after-ack",
                    format!(
                        "work item {} was delivered to client {} at {} (delivery {}, consumer sequence {}, server lifetime {}) after client {}'s double ack of it was answered at {} (lifetime {})",
                        d.seq,
                        d.client,
                        ms(e.at_ns),
                        d.deliveries,
                        d.consumer_seq,
                        d.lifetime,
                        a.client,
                        ms(a.at_ns),
                        a.lifetime
                    ),
                );
                return;
            }
        }
    }
}

/// `workqueue-gone-after-ack`: a work item read by its sequence after its
/// double ack was answered is not found.
fn gone_after_ack(entries: &[Entry], bad: &mut impl FnMut(&'static str, String)) {
    // seq -> when its double ack was first answered.
    let mut answered: BTreeMap<u64, u64> = BTreeMap::new();
    // reply -> (seq, when the read was sent), for reads after an answer.
    let mut reads: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
    for e in entries {
        match &e.ev {
            Ev::JsConsumerAcked { stream, seq, .. } if *stream == WORK_STREAM => {
                answered.entry(*seq).or_insert(e.at_ns);
            }
            Ev::JsRead {
                stream,
                of: ReadOf::Seq(seq),
                reply,
                ..
            } if *stream == WORK_STREAM && answered.contains_key(seq) => {
                reads.insert(reply, (*seq, e.at_ns));
            }
            Ev::JsReadAnswer {
                reply,
                answer: ReadAnswer::Found(found),
                ..
            } => {
                if let Some((seq, sent)) = reads.remove(reply.as_str()) {
                    bad(
                        "workqueue-gone-after-ack",
                        format!(
                            "work item {seq} was found (sequence {found}) by a read sent at {}, after its double ack was answered at {}",
                            ms(sent),
                            ms(answered[&seq])
                        ),
                    );
                    return;
                }
            }
            _ => {}
        }
    }
}

/// `kv-read-latest`: a read of a key's last revision sent after a put's
/// PubAck arrived (at any client) finds that revision or a later one.
fn kv_read_latest(entries: &[Entry], bad: &mut impl FnMut(&'static str, String)) {
    // key -> the highest acknowledged revision (stream sequence) so far.
    let mut latest: BTreeMap<&str, u64> = BTreeMap::new();
    // reply -> (key, the revision it must find at least, when sent).
    let mut reads: BTreeMap<&str, (&str, u64, u64)> = BTreeMap::new();
    let puts: BTreeMap<usize, (&str, u64)> = entries
        .iter()
        .enumerate()
        .filter_map(|(i, e)| match &e.ev {
            Ev::JsAck(a) if a.stream == KV_STREAM => Some((i, (a.subject.as_str(), a.seq))),
            _ => None,
        })
        .collect();
    for (i, e) in entries.iter().enumerate() {
        if let Some(&(key, seq)) = puts.get(&i) {
            let top = latest.entry(key).or_default();
            *top = (*top).max(seq);
            continue;
        }
        match &e.ev {
            Ev::JsRead {
                stream,
                of: ReadOf::LastOf(key),
                reply,
                ..
            } if *stream == KV_STREAM => {
                let least = latest.get(key.as_str()).copied().unwrap_or(0);
                if least > 0 {
                    reads.insert(reply, (key, least, e.at_ns));
                }
            }
            Ev::JsReadAnswer { reply, answer, .. } => {
                let Some((key, least, sent)) = reads.remove(reply.as_str()) else {
                    continue;
                };
                let stale = match answer {
                    ReadAnswer::Found(seq) => (*seq < least).then(|| format!("revision {seq}")),
                    ReadAnswer::NotFound => Some("no message".to_string()),
                    ReadAnswer::Other => None,
                };
                if let Some(got) = stale {
                    bad(
                        "kv-read-latest",
                        format!(
                            "a read of {key} sent at {} found {got}, though revision {least} was acknowledged before it",
                            ms(sent)
                        ),
                    );
                    return;
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{JsAck, JsDelivery};

    fn at(at_ns: u64, ev: Ev) -> Entry {
        Entry { at_ns, ev }
    }

    fn work(client: ClientId, lifetime: u32, seq: u64, consumer_seq: u64) -> Entry {
        at(
            1,
            Ev::JsDelivery(Box::new(JsDelivery {
                client,
                epoch: 1,
                stream: WORK_STREAM,
                lifetime,
                seq,
                deliveries: 1,
                consumer_seq,
                subject: "wq.1".into(),
                headers: Vec::new(),
                payload: Vec::new(),
            })),
        )
    }

    fn answered(client: ClientId, lifetime: u32, seq: u64) -> Entry {
        at(
            2,
            Ev::JsConsumerAcked {
                client,
                lifetime,
                stream: WORK_STREAM,
                seq,
                reply: format!("_INBOX.c{client}.a{seq}"),
            },
        )
    }

    fn read(stream: &'static str, of: ReadOf, reply: &str) -> Entry {
        at(
            3,
            Ev::JsRead {
                client: 1,
                stream,
                of,
                reply: reply.into(),
            },
        )
    }

    fn answer(reply: &str, answer: ReadAnswer) -> Entry {
        at(
            4,
            Ev::JsReadAnswer {
                client: 1,
                reply: reply.into(),
                answer,
            },
        )
    }

    fn put(key: &str, seq: u64) -> Entry {
        at(
            1,
            Ev::JsAck(Box::new(JsAck {
                client: 0,
                msg: seq,
                stream: KV_STREAM.into(),
                seq,
                duplicate: false,
                subject: key.into(),
                msg_id: None,
                headers: Vec::new(),
                payload: Vec::new(),
            })),
        )
    }

    fn run(entries: &[Entry], work_queue: bool, kv: bool) -> Vec<&'static str> {
        let js = JsOutcome {
            work_queue,
            kv,
            ..JsOutcome::default()
        };
        let mut found = Vec::new();
        check(entries, &js, false, &mut |name, _| found.push(name));
        found
    }

    #[test]
    fn a_work_item_delivered_after_its_answered_ack_is_caught() {
        // Client 1 gets item 1 (consumer seq 2) after client 0's answer,
        // but it was sent before client 0's next delivery (seq 3): fine.
        let racing = [
            work(0, 0, 1, 1),
            answered(0, 0, 1),
            work(1, 0, 1, 2),
            work(0, 0, 2, 3),
        ];
        assert!(run(&racing, true, false).is_empty());
        let sent_after = [
            work(0, 0, 1, 1),
            answered(0, 0, 1),
            work(0, 0, 2, 3),
            work(1, 0, 1, 4),
        ];
        assert_eq!(
            run(&sent_after, true, false),
            ["workqueue-no-redelivery-after-ack"]
        );
        let next_lifetime = [work(0, 0, 1, 1), answered(0, 0, 1), work(1, 1, 1, 1)];
        assert_eq!(
            run(&next_lifetime, true, false),
            ["workqueue-no-redelivery-after-ack"]
        );
        let same_client = [work(0, 0, 1, 1), answered(0, 0, 1), work(0, 0, 1, 2)];
        assert_eq!(
            run(&same_client, true, false),
            ["workqueue-no-redelivery-after-ack"]
        );
    }

    #[test]
    fn a_work_item_found_after_its_answered_ack_is_caught() {
        let gone = [
            answered(0, 0, 1),
            read(WORK_STREAM, ReadOf::Seq(1), "r1"),
            answer("r1", ReadAnswer::NotFound),
        ];
        assert!(run(&gone, true, false).is_empty());
        let kept = [
            answered(0, 0, 1),
            read(WORK_STREAM, ReadOf::Seq(1), "r1"),
            answer("r1", ReadAnswer::Found(1)),
        ];
        assert_eq!(run(&kept, true, false), ["workqueue-gone-after-ack"]);
    }

    #[test]
    fn a_read_older_than_an_acknowledged_put_is_stale() {
        let key = || ReadOf::LastOf("kv.k1".into());
        let fresh = [
            put("kv.k1", 3),
            put("kv.k2", 4),
            read(KV_STREAM, key(), "r1"),
            put("kv.k1", 5),
            answer("r1", ReadAnswer::Found(3)),
        ];
        assert!(run(&fresh, false, true).is_empty());
        let stale = [
            put("kv.k1", 3),
            put("kv.k1", 5),
            read(KV_STREAM, key(), "r1"),
            answer("r1", ReadAnswer::Found(3)),
        ];
        assert_eq!(run(&stale, false, true), ["kv-read-latest"]);
        let missing = [
            put("kv.k1", 3),
            read(KV_STREAM, key(), "r1"),
            answer("r1", ReadAnswer::NotFound),
        ];
        assert_eq!(run(&missing, false, true), ["kv-read-latest"]);
    }
}
