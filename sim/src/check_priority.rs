//! The priority group's checkers: a pinned client's messages go to it
//! alone, its pin moves only once `priority_timeout` passed without it,
//! an overflow standby is served only past its `min_pending`, and every
//! acknowledged publish is delivered and acked, in order per client.
//!
//! A member keeps one pull request open at a time on a connection
//! (`crate::client` priority workload), so each delivery is known to
//! answer that request: its `PrioEv::Delivery` carries what the request
//! asked (its pin id, its `min_pending`) and when it went out.
//!
//! What the core promises (`core/src/server/jetstream/consumer/
//! priority.rs`): a pinned-client consumer has at most one pin at a
//! time; every message it sends carries the pin current when it is sent
//! (`Nats-Pin-Id`); a request carrying another id is told `423`, never
//! served; a request carrying the current pin, on arrival, keeps the pin
//! for `priority_timeout` more; the pin goes only after that timeout, on
//! `CONSUMER.UNPIN` (never sent here) or with the server (it is not
//! saved). An overflow consumer serves a request with `min_pending` N
//! only while its count of messages left to deliver, the message served
//! included, is at least N; the ack subject's last token is that count
//! after the message, so it shows the count the server went by.

use std::collections::BTreeMap;

use crate::history::{ClientId, Entry, Ev, JsDelivery};

/// The consumer's priority policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// `pinned_client` with this `priority_timeout`.
    Pinned {
        timeout_ns: u64,
    },
    Overflow,
}

/// One pull request of a member, as it went out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub client: ClientId,
    /// The connection it went out on, and the server lifetime that
    /// accepted that connection.
    pub epoch: u32,
    pub lifetime: u32,
    pub sent_ns: u64,
    /// The pin id it carried.
    pub pin: Option<String>,
    /// Its `min_pending` (0: none).
    pub min_pending: u64,
}

/// What a member of the priority group saw and did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PrioEv {
    /// A pull request went out.
    Pull(Request),
    /// A message arrived for `request`, with the pin id it carried and
    /// the pending count of its ack subject.
    Delivery {
        request: Request,
        seq: u64,
        deliveries: u64,
        /// The consumer sequence: it grows with every delivery of one
        /// server lifetime, whichever member gets it.
        consumer_seq: u64,
        pending: u64,
        pin: Option<String>,
        subject: String,
        policy: Policy,
    },
    /// A message arrived while the member had no request open.
    Unasked {
        client: ClientId,
        seq: u64,
        policy: Policy,
    },
    /// A status (`code`) ended `request`.
    Status { request: Request, code: u16 },
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

/// One delivery, as the checkers use it.
struct Got<'a> {
    at_ns: u64,
    request: &'a Request,
    seq: u64,
    deliveries: u64,
    consumer_seq: u64,
    pending: u64,
    pin: Option<&'a str>,
    policy: Policy,
}

fn events(entries: &[Entry]) -> impl Iterator<Item = (u64, &PrioEv)> {
    entries.iter().filter_map(|e| match &e.ev {
        Ev::Prio(p) => Some((e.at_ns, &**p)),
        _ => None,
    })
}

fn deliveries(entries: &[Entry]) -> Vec<Got<'_>> {
    events(entries)
        .filter_map(|(at_ns, e)| match e {
            PrioEv::Delivery {
                request,
                seq,
                deliveries,
                consumer_seq,
                pending,
                pin,
                policy,
                ..
            } => Some(Got {
                at_ns,
                request,
                seq: *seq,
                deliveries: *deliveries,
                consumer_seq: *consumer_seq,
                pending: *pending,
                pin: pin.as_deref(),
                policy: *policy,
            }),
            _ => None,
        })
        .collect()
}

/// Every priority-group invariant over a run's history.
pub fn check(entries: &[Entry], converged: bool, bad: &mut impl FnMut(&'static str, String)) {
    if !entries.iter().any(|e| matches!(e.ev, Ev::Prio(_))) {
        return;
    }
    let got = deliveries(entries);
    for (at_ns, e) in events(entries) {
        if let PrioEv::Unasked {
            client,
            seq,
            policy,
        } = e
        {
            let invariant = match policy {
                Policy::Pinned { .. } => "pinned-one-client",
                Policy::Overflow => "overflow-min-pending",
            };
            let text = format!(
                "c{client} got sequence {seq} at {} with no pull request open",
                ms(at_ns)
            );
            bad(invariant, text);
        }
    }
    one_client(&got, bad);
    until_timeout(&got, bad);
    min_pending(&got, bad);
    order(&got, bad);
    if converged {
        at_least_once(entries, bad);
    }
}

/// `pinned-one-client`: every message carries a pin id; a request
/// carrying a pin id gets messages only under that id (another is told
/// `423`); all messages under one pin id go to one client.
fn one_client(got: &[Got<'_>], bad: &mut impl FnMut(&'static str, String)) {
    let mut holder: BTreeMap<&str, ClientId> = BTreeMap::new();
    for g in got
        .iter()
        .filter(|g| matches!(g.policy, Policy::Pinned { .. }))
    {
        let r = g.request;
        let Some(pin) = g.pin else {
            bad(
                "pinned-one-client",
                format!(
                    "c{} got sequence {} at {} without a Nats-Pin-Id",
                    r.client,
                    g.seq,
                    ms(g.at_ns)
                ),
            );
            return;
        };
        if let Some(asked) = r.pin.as_deref()
            && asked != pin
        {
            bad(
                "pinned-one-client",
                format!(
                    "c{}'s request sent at {} with pin id {asked} got sequence {} at {} under pin id {pin} (a stale pin is told 423)",
                    r.client,
                    ms(r.sent_ns),
                    g.seq,
                    ms(g.at_ns)
                ),
            );
            return;
        }
        let first = *holder.entry(pin).or_insert(r.client);
        if first != r.client {
            bad(
                "pinned-one-client",
                format!(
                    "c{} got sequence {} at {} under pin id {pin}, which c{first} got messages under",
                    r.client,
                    g.seq,
                    ms(g.at_ns)
                ),
            );
            return;
        }
    }
}

/// `pinned-until-timeout`: a request carrying pin A that was served under
/// A (so A was the pin on its arrival, after it went out at `t`) keeps A
/// until at least `t` plus the timeout in that server lifetime: no
/// message under another pin, sent for a request that went out after
/// the first one's message arrived, arrives before then.
fn until_timeout(got: &[Got<'_>], bad: &mut impl FnMut(&'static str, String)) {
    let pinned: Vec<&Got<'_>> = got
        .iter()
        .filter(|g| matches!(g.policy, Policy::Pinned { .. }) && g.pin.is_some())
        .collect();
    for a in &pinned {
        let Policy::Pinned { timeout_ns } = a.policy else {
            continue;
        };
        if a.request.pin.as_deref() != a.pin {
            continue;
        }
        let kept_until = a.request.sent_ns + timeout_ns;
        let other = pinned.iter().find(|b| {
            b.pin != a.pin
                && b.request.lifetime == a.request.lifetime
                && b.request.sent_ns >= a.at_ns
                && b.at_ns < kept_until
        });
        if let Some(b) = other {
            bad(
                "pinned-until-timeout",
                format!(
                    "c{}'s request sent at {} kept pin {} (served at {}) until at least {}, yet c{}'s request sent at {} got sequence {} under pin {} at {}",
                    a.request.client,
                    ms(a.request.sent_ns),
                    a.pin.unwrap_or_default(),
                    ms(a.at_ns),
                    ms(kept_until),
                    b.request.client,
                    ms(b.request.sent_ns),
                    b.seq,
                    b.pin.unwrap_or_default(),
                    ms(b.at_ns)
                ),
            );
            return;
        }
    }
}

/// `overflow-min-pending`: a request with `min_pending` N gets a message
/// only when the server counted at least N left to deliver, that one
/// included (its ack subject's pending count is at least N - 1).
fn min_pending(got: &[Got<'_>], bad: &mut impl FnMut(&'static str, String)) {
    let under = got.iter().find(|g| {
        g.policy == Policy::Overflow
            && g.request.min_pending > 0
            && g.pending + 1 < g.request.min_pending
    });
    if let Some(g) = under {
        bad(
            "overflow-min-pending",
            format!(
                "c{}'s request sent at {} with min_pending {} got sequence {} at {} with {} pending after it",
                g.request.client,
                ms(g.request.sent_ns),
                g.request.min_pending,
                g.seq,
                ms(g.at_ns),
                g.pending
            ),
        );
    }
}

/// `priority-order`: within one server lifetime the first deliveries
/// (delivery count 1) go out in stream order, whichever member gets
/// them: ordered by consumer sequence (which grows with every delivery
/// of the lifetime), their stream sequences grow.
fn order(got: &[Got<'_>], bad: &mut impl FnMut(&'static str, String)) {
    let mut first: Vec<&Got<'_>> = got.iter().filter(|g| g.deliveries == 1).collect();
    first.sort_by_key(|g| (g.request.lifetime, g.consumer_seq));
    for w in first.windows(2) {
        let (a, b) = (w[0], w[1]);
        if a.request.lifetime == b.request.lifetime && b.seq <= a.seq {
            bad(
                "priority-order",
                format!(
                    "in server lifetime {}, c{} got sequence {} as a first delivery (consumer sequence {}, at {}) after c{} got sequence {} (consumer sequence {}, at {})",
                    a.request.lifetime,
                    b.request.client,
                    b.seq,
                    b.consumer_seq,
                    ms(b.at_ns),
                    a.request.client,
                    a.seq,
                    a.consumer_seq,
                    ms(a.at_ns)
                ),
            );
            return;
        }
    }
}

/// `priority-at-least-once`: the consumer checkers' rule over the
/// group's members: every acknowledged publish to the stream was
/// delivered to a member and acked (answered, or on a connection that
/// died before the answer could come).
fn at_least_once(entries: &[Entry], bad: &mut impl FnMut(&'static str, String)) {
    let stream = crate::client::JS_STREAM;
    let as_consumer: Vec<Entry> = entries
        .iter()
        .filter_map(|e| {
            let ev = match &e.ev {
                Ev::JsAck(a) if a.stream == stream => e.ev.clone(),
                Ev::Disconnected { .. } => e.ev.clone(),
                Ev::Prio(p) => match &**p {
                    PrioEv::Delivery {
                        request,
                        seq,
                        deliveries,
                        subject,
                        ..
                    } => Ev::JsDelivery(Box::new(JsDelivery {
                        client: request.client,
                        epoch: request.epoch,
                        stream,
                        consumer_seq: 0,
                        lifetime: request.lifetime,
                        seq: *seq,
                        deliveries: *deliveries,
                        subject: subject.clone(),
                        headers: Vec::new(),
                        payload: Vec::new(),
                    })),
                    PrioEv::Ack {
                        client,
                        epoch,
                        seq,
                        reply,
                        ..
                    } => Ev::JsConsumerAck {
                        client: *client,
                        epoch: *epoch,
                        stream,
                        seq: *seq,
                        reply: reply.clone(),
                    },
                    PrioEv::Acked { client, seq, reply } => Ev::JsConsumerAcked {
                        client: *client,
                        // (Not read by the at-least-once check.)
                        lifetime: 0,
                        stream,
                        seq: *seq,
                        reply: reply.clone(),
                    },
                    _ => return None,
                },
                _ => return None,
            };
            Some(Entry { at_ns: e.at_ns, ev })
        })
        .collect();
    crate::check_consumer::at_least_once(&as_consumer, stream, true, "priority-at-least-once", bad);
}

fn ms(ns: u64) -> String {
    format!("{:.3} ms", ns as f64 / 1e6)
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;
    const PINNED: Policy = Policy::Pinned { timeout_ns: S };

    fn request(client: ClientId, sent_ns: u64, pin: Option<&str>, min_pending: u64) -> Request {
        Request {
            client,
            epoch: 1,
            lifetime: 0,
            sent_ns,
            pin: pin.map(str::to_string),
            min_pending,
        }
    }

    fn got(at_ns: u64, request: Request, seq: u64, pin: Option<&str>, policy: Policy) -> Entry {
        Entry {
            at_ns,
            ev: Ev::Prio(Box::new(PrioEv::Delivery {
                request,
                seq,
                deliveries: 1,
                consumer_seq: at_ns,
                pending: 0,
                pin: pin.map(str::to_string),
                subject: "js.1".into(),
                policy,
            })),
        }
    }

    fn run(entries: &[Entry]) -> Vec<&'static str> {
        let mut found = Vec::new();
        check(entries, false, &mut |name, _| found.push(name));
        found
    }

    #[test]
    fn a_pin_that_moves_after_its_timeout_is_fine() {
        let entries = [
            got(100, request(0, 50, None, 0), 1, Some("A"), PINNED),
            got(300, request(0, 200, Some("A"), 0), 2, Some("A"), PINNED),
            // c0 went away at 200: A may go at 1.2 s.
            got(
                S + 400_000_000,
                request(1, S, None, 0),
                3,
                Some("B"),
                PINNED,
            ),
        ];
        assert!(run(&entries).is_empty(), "{:?}", run(&entries));
    }

    #[test]
    fn a_stale_pin_served_or_a_pin_shared_is_caught() {
        let stale = [
            got(100, request(0, 50, None, 0), 1, Some("A"), PINNED),
            got(300, request(0, 200, Some("A"), 0), 2, Some("B"), PINNED),
        ];
        assert_eq!(run(&stale), ["pinned-one-client"]);
        let shared = [
            got(100, request(0, 50, None, 0), 1, Some("A"), PINNED),
            got(300, request(1, 200, None, 0), 2, Some("A"), PINNED),
        ];
        assert_eq!(run(&shared), ["pinned-one-client"]);
    }

    #[test]
    fn a_pin_that_moves_before_its_timeout_is_caught() {
        let entries = [
            got(100, request(0, 50, None, 0), 1, Some("A"), PINNED),
            got(300, request(0, 200, Some("A"), 0), 2, Some("A"), PINNED),
            got(600, request(1, 500, None, 0), 3, Some("B"), PINNED),
        ];
        assert_eq!(run(&entries), ["pinned-until-timeout"]);
        // A request that went out before A's message arrived may have
        // been answered under an older pin.
        let entries = [
            got(100, request(0, 50, None, 0), 1, Some("A"), PINNED),
            got(300, request(0, 200, Some("A"), 0), 2, Some("A"), PINNED),
            got(600, request(1, 250, None, 0), 3, Some("B"), PINNED),
        ];
        assert!(!run(&entries).contains(&"pinned-until-timeout"));
    }

    #[test]
    fn a_standby_served_below_its_min_pending_is_caught() {
        let at = |pending: u64| Entry {
            at_ns: 100,
            ev: Ev::Prio(Box::new(PrioEv::Delivery {
                request: request(1, 50, None, 4),
                seq: 1,
                deliveries: 1,
                consumer_seq: 1,
                pending,
                pin: None,
                subject: "js.1".into(),
                policy: Policy::Overflow,
            })),
        };
        assert!(run(&[at(3)]).is_empty());
        assert_eq!(run(&[at(2)]), ["overflow-min-pending"]);
    }

    #[test]
    fn first_deliveries_going_back_are_out_of_order() {
        // Consumer sequences follow receipt here (see `got`), across
        // members too.
        let entries = [
            got(100, request(0, 50, None, 0), 2, None, Policy::Overflow),
            got(200, request(1, 150, None, 0), 1, None, Policy::Overflow),
        ];
        assert_eq!(run(&entries), ["priority-order"]);
    }
}
