//! The JetStream consumer checkers: what the durable pull consumer
//! delivered, against what the stream holds and what the server promised
//! when it answered a double ack.
//!
//! Every checker reads the history of the client that pulls (its
//! deliveries, the double acks it sent and the answers it got) and the
//! snapshots the world read from the simulated disk at every power loss
//! ([`crate::check_js::Snapshot`]).

use std::collections::{BTreeMap, BTreeSet};

use crate::check_js::JsOutcome;
use crate::client::JS_STREAM;
use crate::history::{ClientId, Entry, Ev, JsDelivery};

/// The deliveries of stream `S`'s consumer in a history, with when they
/// arrived.
fn deliveries(entries: &[Entry]) -> impl Iterator<Item = (u64, &JsDelivery)> {
    stream_deliveries(entries, JS_STREAM)
}

/// The deliveries of `stream`'s consumer, with when they arrived.
pub fn stream_deliveries<'a>(
    entries: &'a [Entry],
    stream: &'a str,
) -> impl Iterator<Item = (u64, &'a JsDelivery)> + 'a {
    entries.iter().filter_map(move |e| match &e.ev {
        Ev::JsDelivery(d) if d.stream == stream => Some((e.at_ns, &**d)),
        _ => None,
    })
}

/// The stream sequences delivered so far (the world reads these back at
/// each power loss).
pub fn delivered_seqs(entries: &[Entry]) -> impl Iterator<Item = u64> + '_ {
    deliveries(entries).map(|(_, d)| d.seq)
}

/// Every consumer invariant over a JetStream run's history.
pub fn check(
    entries: &[Entry],
    js: &JsOutcome,
    converged: bool,
    bad: &mut impl FnMut(&'static str, String),
) {
    if !js.pulls {
        return;
    }
    no_redelivery_and_order(entries, bad);
    delivered_durable(entries, js, bad);
    // Liveness only holds when the faults healed and everyone got back
    // (`converges` says when they did not).
    if converged {
        // With max_deliver, a message may be dropped unacked after its
        // last delivery: it must still be delivered once.
        let must_ack = js.max_deliver.is_none();
        at_least_once(entries, JS_STREAM, must_ack, "consumer-at-least-once", bad);
    }
}

/// `consumer-no-redelivery-after-durable-ack` and `consumer-order`, in
/// one pass over the history in the order the client saw it.
fn no_redelivery_and_order(entries: &[Entry], bad: &mut impl FnMut(&'static str, String)) {
    // seq -> when its double ack was answered.
    let mut answered: BTreeMap<u64, u64> = BTreeMap::new();
    // Server lifetime -> the last first delivery's sequence.
    let mut last_first: BTreeMap<u32, u64> = BTreeMap::new();
    for e in entries {
        match &e.ev {
            Ev::JsConsumerAcked { seq, stream, .. } if *stream == JS_STREAM => {
                answered.entry(*seq).or_insert(e.at_ns);
            }
            Ev::JsDelivery(d) if d.stream == JS_STREAM => {
                let at = ms(e.at_ns);
                if let Some(&acked_at) = answered.get(&d.seq) {
                    bad(
                        "consumer-no-redelivery-after-durable-ack",
                        format!(
                            "sequence {} was delivered (delivery {}) at {at} after its double ack was answered at {}",
                            d.seq,
                            d.deliveries,
                            ms(acked_at)
                        ),
                    );
                }
                if d.deliveries != 1 {
                    continue;
                }
                if let Some(&prev) = last_first.get(&d.lifetime)
                    && d.seq <= prev
                {
                    bad(
                        "consumer-order",
                        format!(
                            "first delivery of sequence {} at {at} after the first delivery of {prev} in server lifetime {}",
                            d.seq, d.lifetime
                        ),
                    );
                }
                if let Some((&top, &acked_at)) = answered.last_key_value()
                    && d.seq <= top
                {
                    bad(
                        "consumer-order",
                        format!(
                            "first delivery of sequence {} at {at}, at or below sequence {top} whose double ack was answered at {}",
                            d.seq,
                            ms(acked_at)
                        ),
                    );
                }
                last_first.insert(d.lifetime, d.seq);
            }
            _ => {}
        }
    }
}

/// `consumer-delivered-durable`: after each power loss, every message
/// delivered before it is in the stream, byte for byte.
fn delivered_durable(
    entries: &[Entry],
    js: &JsOutcome,
    bad: &mut impl FnMut(&'static str, String),
) {
    for snap in &js.snapshots {
        // One report per sequence and snapshot.
        let mut reported = BTreeSet::new();
        for (at_ns, d) in deliveries(entries).filter(|(at, _)| *at <= snap.at_ns) {
            let same = match snap.msgs.get(&d.seq) {
                Some(Some(m)) => {
                    m.subject == d.subject && m.headers == d.headers && m.payload == d.payload
                }
                _ => false,
            };
            if !same && reported.insert(d.seq) {
                let now = match snap.msgs.get(&d.seq) {
                    Some(Some(m)) => {
                        format!("{} bytes of payload on {}", m.payload.len(), m.subject)
                    }
                    _ => "nothing".to_string(),
                };
                bad(
                    "consumer-delivered-durable",
                    format!(
                        "sequence {} delivered at {} ({} bytes of payload on {}) holds {now} after {} at {}",
                        d.seq,
                        ms(at_ns),
                        d.payload.len(),
                        d.subject,
                        snap.after,
                        ms(snap.at_ns)
                    ),
                );
            }
        }
    }
}

/// `consumer-at-least-once` (and the work queue's): every acknowledged
/// publish to `stream` was delivered and acked by a client that pulls:
/// with a double ack that was answered, or whose connection died before
/// its answer could come (the ack may have been applied; if it was not,
/// the message comes again and is acked again). Without `must_ack`, only
/// delivered.
pub(crate) fn at_least_once(
    entries: &[Entry],
    stream: &str,
    must_ack: bool,
    invariant: &'static str,
    bad: &mut impl FnMut(&'static str, String),
) {
    let mut published: BTreeSet<u64> = BTreeSet::new();
    let mut delivered: BTreeSet<u64> = BTreeSet::new();
    // reply -> (client, epoch, seq) of the double acks still unanswered.
    let mut unanswered: BTreeMap<&str, (ClientId, u32, u64)> = BTreeMap::new();
    let mut acked: BTreeSet<u64> = BTreeSet::new();
    for e in entries {
        match &e.ev {
            Ev::JsAck(a) if a.stream == stream => {
                published.insert(a.seq);
            }
            Ev::JsDelivery(d) if d.stream == stream => {
                delivered.insert(d.seq);
            }
            Ev::JsConsumerAck {
                client,
                epoch,
                stream: s,
                seq,
                reply,
            } if *s == stream => {
                unanswered.insert(reply.as_str(), (*client, *epoch, *seq));
            }
            Ev::JsConsumerAcked {
                seq,
                reply,
                stream: s,
                ..
            } if *s == stream => {
                unanswered.remove(reply.as_str());
                acked.insert(*seq);
            }
            Ev::Disconnected { client, epoch, .. } => {
                unanswered.retain(|_, &mut (c, ep, seq)| {
                    let lost = (c, ep) == (*client, *epoch);
                    if lost {
                        acked.insert(seq);
                    }
                    !lost
                });
            }
            _ => {}
        }
    }
    if !must_ack {
        acked = delivered.clone();
    }
    let missing: Vec<u64> = published.difference(&acked).copied().collect();
    if let Some(first) = missing.first() {
        let never: Vec<u64> = missing
            .iter()
            .copied()
            .filter(|s| !delivered.contains(s))
            .collect();
        bad(
            invariant,
            format!(
                "{} acknowledged sequences (first {first}) of {stream} were not delivered{} by the end of the run; never delivered: {}",
                missing.len(),
                if must_ack { " and acked" } else { "" },
                show(&never)
            ),
        );
    }
}

pub(crate) fn ms(ns: u64) -> String {
    format!("{:.3} ms", ns as f64 / 1e6)
}

/// A short list of sequences.
pub(crate) fn show(seqs: &[u64]) -> String {
    let mut s: Vec<String> = seqs.iter().take(10).map(u64::to_string).collect();
    if seqs.len() > 10 {
        s.push(format!("… ({} in all)", seqs.len()));
    }
    if s.is_empty() {
        "none".to_string()
    } else {
        s.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check_js::Snapshot;
    use crate::history::JsAck;
    use natrix_storage::Msg;

    fn at(at_ns: u64, ev: Ev) -> Entry {
        Entry { at_ns, ev }
    }

    fn delivery(at_ns: u64, lifetime: u32, seq: u64, deliveries: u64) -> Entry {
        at(
            at_ns,
            Ev::JsDelivery(Box::new(JsDelivery {
                client: 0,
                epoch: 1,
                stream: JS_STREAM,
                lifetime,
                seq,
                deliveries,
                consumer_seq: at_ns,
                subject: "js.1".into(),
                headers: Vec::new(),
                payload: format!("m{seq}:").into_bytes(),
            })),
        )
    }

    fn ack(at_ns: u64, epoch: u32, seq: u64) -> Entry {
        at(
            at_ns,
            Ev::JsConsumerAck {
                client: 0,
                epoch,
                stream: JS_STREAM,
                seq,
                reply: format!("_INBOX.c0.{seq}"),
            },
        )
    }

    fn answered(at_ns: u64, seq: u64) -> Entry {
        at(
            at_ns,
            Ev::JsConsumerAcked {
                client: 0,
                lifetime: 0,
                stream: JS_STREAM,
                seq,
                reply: format!("_INBOX.c0.{seq}"),
            },
        )
    }

    fn published(seq: u64) -> Entry {
        at(
            1,
            Ev::JsAck(Box::new(JsAck {
                client: 1,
                msg: seq,
                stream: "S".into(),
                seq,
                duplicate: false,
                subject: "js.1".into(),
                msg_id: None,
                headers: Vec::new(),
                payload: format!("m{seq}:").into_bytes(),
            })),
        )
    }

    fn stored(seq: u64, payload: &str) -> Option<Msg> {
        Some(Msg {
            seq,
            ts_unix_nanos: 0,
            subject: "js.1".into(),
            headers: Vec::new(),
            payload: payload.as_bytes().to_vec(),
        })
    }

    fn run(entries: &[Entry], msgs: BTreeMap<u64, Option<Msg>>) -> Vec<&'static str> {
        let js = JsOutcome {
            key: "%24G.S".into(),
            snapshots: vec![Snapshot {
                at_ns: 1_000,
                after: "a power loss",
                msgs,
            }],
            pulls: true,
            ..JsOutcome::default()
        };
        let mut found = Vec::new();
        check(entries, &js, true, &mut |name, _| found.push(name));
        found
    }

    fn all_stored(n: u64) -> BTreeMap<u64, Option<Msg>> {
        (1..=n).map(|s| (s, stored(s, &format!("m{s}:")))).collect()
    }

    #[test]
    fn a_clean_history_passes() {
        let entries = [
            published(1),
            published(2),
            delivery(10, 0, 1, 1),
            delivery(11, 0, 2, 1),
            ack(12, 1, 2),
            answered(13, 2),
            // 1 was left: redelivered, then acked; a restart repeats
            // nothing that was answered.
            delivery(20, 0, 1, 2),
            ack(21, 1, 1),
            answered(22, 1),
        ];
        assert!(run(&entries, all_stored(2)).is_empty());
    }

    #[test]
    fn a_redelivery_after_an_answered_ack_is_caught() {
        let entries = [
            published(1),
            delivery(10, 0, 1, 1),
            ack(11, 1, 1),
            answered(12, 1),
            delivery(20, 1, 1, 2),
        ];
        assert_eq!(
            run(&entries, all_stored(1)),
            ["consumer-no-redelivery-after-durable-ack"]
        );
    }

    #[test]
    fn a_first_delivery_going_back_is_out_of_order() {
        let entries = [
            delivery(10, 0, 2, 1),
            delivery(11, 0, 1, 1),
            // Another lifetime may start again below 2, not below an
            // answered ack.
            delivery(12, 1, 1, 1),
            ack(13, 2, 1),
            answered(14, 1),
            delivery(15, 2, 1, 1),
        ];
        let found = run(&entries, all_stored(2));
        assert_eq!(
            found,
            [
                "consumer-order",
                "consumer-no-redelivery-after-durable-ack",
                "consumer-order"
            ]
        );
    }

    #[test]
    fn a_delivered_message_a_power_loss_took_back_is_caught() {
        let entries = [delivery(10, 0, 1, 1), delivery(11, 0, 2, 1)];
        let mut msgs = all_stored(2);
        msgs.insert(2, stored(2, "m9:"));
        assert_eq!(run(&entries, msgs), ["consumer-delivered-durable"]);
        let mut msgs = all_stored(2);
        msgs.insert(1, None);
        assert_eq!(run(&entries, msgs), ["consumer-delivered-durable"]);
    }

    #[test]
    fn an_acknowledged_publish_never_acked_by_the_consumer_is_caught() {
        let base = [published(1), published(2), delivery(10, 0, 1, 1)];
        // 2 never came; 1 came and was left.
        assert_eq!(run(&base, all_stored(2)), ["consumer-at-least-once"]);
        // Both acked: one answered, one whose connection died first.
        let mut entries = base.to_vec();
        entries.extend([
            delivery(11, 0, 2, 1),
            ack(12, 1, 1),
            ack(13, 1, 2),
            answered(14, 1),
            at(
                15,
                Ev::Disconnected {
                    client: 0,
                    epoch: 1,
                    crashed: false,
                },
            ),
        ]);
        assert!(run(&entries, all_stored(2)).is_empty());
        // An ack still unanswered on a live connection does not count.
        entries.pop();
        assert_eq!(run(&entries, all_stored(2)), ["consumer-at-least-once"]);
    }
}
