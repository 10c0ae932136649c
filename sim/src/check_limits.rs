//! The limits of stream `S`'s consumer, as the client that pulls sees
//! them: `max_ack_pending` (messages delivered and not acknowledged) and
//! `max_deliver` (deliveries of one message).
//!
//! The client cannot see the server's pending set, so it counts what must
//! be in it: a message it received in the current server lifetime (a
//! restart brings back only the last saved pending set) and has sent no
//! ack for (an ack sent may have been applied before the server sent the
//! next message; one sent after receiving a message cannot have been).
//! That undercounts, never overcounts, as long as nothing else takes a
//! message out of the pending set unseen, which is why a seed sets one
//! limit or the other, never both (`max_deliver` drops a message after
//! its last delivery without a word to the client).

use std::collections::{BTreeMap, BTreeSet};

use crate::check_consumer::{ms, stream_deliveries};
use crate::check_js::JsOutcome;
use crate::client::JS_STREAM;
use crate::history::{Entry, Ev};

/// `consumer-max-ack-pending` and `consumer-max-deliver`, for the limits
/// the seed set.
pub fn check(entries: &[Entry], js: &JsOutcome, bad: &mut impl FnMut(&'static str, String)) {
    if !js.pulls {
        return;
    }
    if let Some(max) = js.max_ack_pending {
        max_ack_pending(entries, max, bad);
    }
    if let Some(max) = js.max_deliver {
        max_deliver(entries, max, bad);
    }
}

/// After each delivery, the messages the client knows are pending (with
/// the one just delivered) are at most `max`.
fn max_ack_pending(entries: &[Entry], max: u64, bad: &mut impl FnMut(&'static str, String)) {
    // Sequences the client has sent an ack for (any may have been applied).
    let mut acked: BTreeSet<u64> = BTreeSet::new();
    // Server lifetime -> sequences delivered in it, not acked since.
    let mut open: BTreeMap<u32, BTreeSet<u64>> = BTreeMap::new();
    for e in entries {
        match &e.ev {
            Ev::JsConsumerAck { stream, seq, .. } if *stream == JS_STREAM => {
                acked.insert(*seq);
                for seqs in open.values_mut() {
                    seqs.remove(seq);
                }
            }
            Ev::JsDelivery(d) if d.stream == JS_STREAM => {
                let seqs = open.entry(d.lifetime).or_default();
                let count = seqs.len() as u64 + u64::from(!seqs.contains(&d.seq));
                if !acked.contains(&d.seq) {
                    seqs.insert(d.seq);
                }
                if count > max {
                    bad(
                        "consumer-max-ack-pending",
                        format!(
                            "sequence {} delivered at {} with {} delivered and unacknowledged before it in server lifetime {} (max_ack_pending {max})",
                            d.seq,
                            ms(e.at_ns),
                            count - 1,
                            d.lifetime
                        ),
                    );
                    return;
                }
            }
            _ => {}
        }
    }
}

/// No delivery count above `max`, and no message delivered more than
/// `max` times by one server lifetime (a restart may deliver again what
/// the last saved state had not counted, with the saved count).
fn max_deliver(entries: &[Entry], max: u64, bad: &mut impl FnMut(&'static str, String)) {
    let mut times: BTreeMap<(u32, u64), u64> = BTreeMap::new();
    for (at, d) in stream_deliveries(entries, JS_STREAM) {
        let n = times.entry((d.lifetime, d.seq)).or_default();
        *n += 1;
        if d.deliveries > max || *n > max {
            bad(
                "consumer-max-deliver",
                format!(
                    "sequence {} delivered at {} with delivery count {}, its delivery {n} in server lifetime {} (max_deliver {max})",
                    d.seq,
                    ms(at),
                    d.deliveries,
                    d.lifetime
                ),
            );
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::JsDelivery;

    fn delivery(lifetime: u32, seq: u64, deliveries: u64) -> Entry {
        Entry {
            at_ns: 1,
            ev: Ev::JsDelivery(Box::new(JsDelivery {
                client: 0,
                epoch: 1,
                stream: JS_STREAM,
                lifetime,
                seq,
                deliveries,
                consumer_seq: 0,
                subject: "js.1".into(),
                headers: Vec::new(),
                payload: Vec::new(),
            })),
        }
    }

    fn ack(seq: u64) -> Entry {
        Entry {
            at_ns: 1,
            ev: Ev::JsConsumerAck {
                client: 0,
                epoch: 1,
                stream: JS_STREAM,
                seq,
                reply: format!("_INBOX.c0.{seq}"),
            },
        }
    }

    fn run(
        entries: &[Entry],
        max_ack_pending: Option<u64>,
        max_deliver: Option<u64>,
    ) -> Vec<&'static str> {
        let js = JsOutcome {
            pulls: true,
            max_ack_pending,
            max_deliver,
            ..JsOutcome::default()
        };
        let mut found = Vec::new();
        check(entries, &js, &mut |name, _| found.push(name));
        found
    }

    #[test]
    fn more_unacknowledged_deliveries_than_max_ack_pending_are_caught() {
        let two = [delivery(0, 1, 1), delivery(0, 2, 1)];
        assert!(run(&two, Some(2), None).is_empty());
        let three = [delivery(0, 1, 1), delivery(0, 2, 1), delivery(0, 3, 1)];
        assert_eq!(run(&three, Some(2), None), ["consumer-max-ack-pending"]);
        // An ack sent frees a place; a redelivery takes none; a restart
        // starts the count again.
        let freed = [
            delivery(0, 1, 1),
            delivery(0, 2, 1),
            ack(1),
            delivery(0, 3, 1),
            delivery(0, 2, 2),
            delivery(1, 4, 1),
            delivery(1, 5, 1),
        ];
        assert!(run(&freed, Some(2), None).is_empty());
    }

    #[test]
    fn a_delivery_past_max_deliver_is_caught() {
        let ok = [delivery(0, 1, 1), delivery(0, 1, 2), delivery(1, 1, 2)];
        assert!(run(&ok, None, Some(2)).is_empty());
        let count = [delivery(0, 1, 1), delivery(0, 1, 3)];
        assert_eq!(run(&count, None, Some(2)), ["consumer-max-deliver"]);
        let times = [delivery(0, 1, 1), delivery(0, 1, 1), delivery(0, 1, 1)];
        assert_eq!(run(&times, None, Some(2)), ["consumer-max-deliver"]);
    }
}
