//! Invariant checkers. They read the history (and the plans, for echo) and
//! name every violation. Safety invariants hold for every run, faults or
//! not; liveness is checked on the final round, after faults healed.

use std::collections::{BTreeMap, BTreeSet};

use natrix_core::subject;

use crate::client::{SERVICE, SubPlan};
use crate::history::{ClientId, Ev, MsgId};
use crate::world::Outcome;

/// The invariants, by name (see docs/simulation.md).
pub const INVARIANTS: &[(&str, &str)] = &[
    (
        "known-subscription",
        "every delivery names a subscription its connection made",
    ),
    (
        "matching-subject",
        "a message reaches only subscriptions whose pattern matches the subject it was published to, under that subject",
    ),
    (
        "whole-messages",
        "a message the publisher did not finish sending (crash mid-message) is never delivered",
    ),
    (
        "no-duplicates",
        "a subscription receives a message at most once",
    ),
    (
        "no-echo",
        "a connection with echo off never receives its own messages",
    ),
    (
        "queue-at-most-once",
        "each queue group receives a message at most once",
    ),
    (
        "auto-unsubscribe",
        "a subscription with a max receives at most max messages",
    ),
    (
        "publisher-order",
        "a subscription receives each publisher's messages on a subject in publish order",
    ),
    (
        "no-silent-gaps",
        "a plain subscription on a live connection misses none of a publisher's messages between two it received (slow consumers are closed, never fed partial data)",
    ),
    (
        "replies-to-requests",
        "a reply or no-responders status reaches only the requester's inbox, for a request it made",
    ),
    (
        "intact-payload",
        "a message arrives with exactly the headers and payload it was published with",
    ),
    (
        "same-reply",
        "a message arrives with the reply subject it was published with",
    ),
    (
        "no-delivery-after-unsubscribe",
        "nothing arrives on a subscription after the PONG to the PING sent behind its UNSUB (the server processed the UNSUB)",
    ),
    (
        "permitted-delivery",
        "a message published to a subject its publisher may not publish to is never delivered, and none reaches a client whose user may not subscribe to its subject",
    ),
    (
        "account-isolation",
        "a message reaches only clients in its publisher's account (no exports or imports are configured)",
    ),
    (
        "expected-errors",
        "every -ERR a client gets is expected (a permissions violation for a denied publish, in nats-server's exact words); after healing, each denied publish gets exactly one",
    ),
    (
        "converges",
        "after faults heal, every client reconnects and resubscribes within the bound",
    ),
    (
        "final-delivery",
        "after healing, each message reaches every matching plain subscription once and each matching queue group once",
    ),
    (
        "final-requests",
        "after healing, a request is answered when a responder exists and gets a no-responders status when none does",
    ),
    (
        "acked-durable",
        "every JetStream publish acknowledged before a power loss (and every one at the end, after a last power loss) is in the stream at its acknowledged sequence with its exact bytes",
    ),
    (
        "no-duplicate-acks",
        "no stream sequence is acknowledged for two different messages",
    ),
    (
        "dedupe-across-restarts",
        "a Nats-Msg-Id is stored at most once within the duplicate window, across server restarts too",
    ),
    (
        "consumer-at-least-once",
        "every acknowledged JetStream publish reaches the durable consumer and is acked by the end of the run (faults stop, the client that pulls acks everything)",
    ),
    (
        "consumer-no-redelivery-after-durable-ack",
        "once the server answered a double ack of a stream sequence, that sequence is never delivered again, restarts and power losses included",
    ),
    (
        "consumer-order",
        "first deliveries come in increasing stream-sequence order within one server lifetime, and never at or below a sequence whose double ack was answered before",
    ),
    (
        "consumer-delivered-durable",
        "a delivered message is, after every later power loss, in the stream at its sequence with its exact subject, headers and payload",
    ),
    (
        "consumer-max-ack-pending",
        "a consumer with max_ack_pending never has more messages delivered and unacknowledged (as far as the client that pulls can tell) than that",
    ),
    (
        "consumer-max-deliver",
        "a consumer with max_deliver never delivers a message with a higher delivery count, nor more often in one server lifetime",
    ),
    (
        "workqueue-no-redelivery-after-ack",
        "once the server answered a double ack of a work-queue message, no client gets it again from a delivery sent after the answer (a later server lifetime, or a higher consumer sequence than a delivery sent after it)",
    ),
    (
        "workqueue-gone-after-ack",
        "a work-queue message read by its sequence after its double ack was answered is not found: the ack removed it from the stream",
    ),
    (
        "workqueue-at-least-once",
        "every acknowledged publish to the work queue is delivered to one of its clients and acked by the end of the run",
    ),
    (
        "kv-read-latest",
        "a read of a key's last revision (DIRECT.GET or STREAM.MSG.GET last_by_subj) sent after a put's PubAck arrived, at any client, finds that revision or a later one",
    ),
    // The partitioned group (`check_partition`).
    (
        "partition-one-owner",
        "no two connections of a partitioned group hold messages of one partition at once (a hold ends at its ack, its ack wait, or its connection's end, all bounded from what the members saw)",
    ),
    (
        "partition-order",
        "a member receives each partition's messages in stream order within a server lifetime (a redelivery may repeat the last), and nobody receives one before every earlier message of its partition was received",
    ),
    (
        "partition-at-least-once",
        "every acknowledged keyed publish reaches a member of the partitioned group and is acked by the end of the run",
    ),
    // The priority group (`check_priority`).
    (
        "pinned-one-client",
        "a pinned-client consumer's every message carries a pin id; a request carrying a pin id gets messages only under it (another is told 423); all messages under one pin id go to one client",
    ),
    (
        "pinned-until-timeout",
        "a pin that served a request carrying it stays until priority_timeout after that request went out: no message under another pin, for a request sent later, arrives before then in that server lifetime",
    ),
    (
        "overflow-min-pending",
        "an overflow consumer serves a request with min_pending N only while it counts at least N messages left to deliver (the ack subject's pending count, after the message, is at least N - 1)",
    ),
    (
        "priority-order",
        "a priority-group consumer sends its first deliveries in stream order within a server lifetime, whichever member gets them (ordered by the consumer sequence of their ack subjects)",
    ),
    (
        "priority-at-least-once",
        "every acknowledged publish to the stream reaches a member of the priority group and is acked by the end of the run",
    ),
];

/// (subscriber, epoch, sid, publisher, epoch, subject): what publisher
/// order is kept per; it maps to the last sequence received and when that
/// message was published.
type OrderKey = (ClientId, u32, u32, ClientId, u32, String);

/// One broken invariant, with what shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub invariant: &'static str,
    pub detail: String,
}

struct PubInfo {
    at_ns: u64,
    client: ClientId,
    epoch: u32,
    subject: String,
    seq: u64,
    reply: Option<String>,
    complete: bool,
    final_round: bool,
    digest: u64,
    denied: bool,
}

/// nats-server's exact `-ERR` for a publish to a denied subject.
pub fn publish_violation(subject: &str) -> String {
    format!("'Permissions Violation for Publish to \"{subject}\"'")
}

/// `-ERR`s a server may send whatever the workload: the connection is
/// then closed, which the other invariants account for.
const CLOSING_ERRORS: [&str; 2] = ["'Stale Connection'", "'Authentication Timeout'"];

/// Checks every invariant; an empty result is a pass.
pub fn check(o: &Outcome) -> Vec<Violation> {
    let mut v = Vec::new();
    let mut bad = |invariant: &'static str, detail: String| {
        if v.len() < 50 {
            v.push(Violation { invariant, detail });
        }
    };
    let mut subs: BTreeMap<(ClientId, u32, u32), SubPlan> = BTreeMap::new();
    let mut pubs: BTreeMap<MsgId, PubInfo> = BTreeMap::new();
    for e in &o.history.entries {
        match &e.ev {
            Ev::Sub {
                client,
                epoch,
                sid,
                pattern,
                queue,
                max,
            } => {
                subs.insert(
                    (*client, *epoch, *sid),
                    SubPlan {
                        pattern: pattern.clone(),
                        queue: queue.clone(),
                        max: *max,
                    },
                );
            }
            Ev::Pub {
                client,
                epoch,
                msg,
                subject,
                seq,
                reply,
                complete,
                final_round,
                digest,
                denied,
            } => {
                pubs.insert(
                    *msg,
                    PubInfo {
                        at_ns: e.at_ns,
                        client: *client,
                        epoch: *epoch,
                        subject: subject.clone(),
                        seq: *seq,
                        reply: reply.clone(),
                        complete: *complete,
                        final_round: *final_round,
                        digest: *digest,
                        denied: *denied,
                    },
                );
            }
            _ => {}
        }
    }
    let mut seen: BTreeSet<(ClientId, u32, u32, MsgId)> = BTreeSet::new();
    let mut per_sub: BTreeMap<(ClientId, u32, u32), u64> = BTreeMap::new();
    let mut queue_got: BTreeMap<(MsgId, String), u32> = BTreeMap::new();
    let mut last_seq: BTreeMap<OrderKey, (u64, u64)> = BTreeMap::new();
    let mut answered: BTreeMap<MsgId, u32> = BTreeMap::new();
    let mut statuses: BTreeMap<MsgId, u32> = BTreeMap::new();
    let by_reply: BTreeMap<&str, MsgId> = pubs
        .iter()
        .filter_map(|(m, p)| p.reply.as_deref().map(|r| (r, *m)))
        .collect();

    check_errors(o, &pubs, &mut bad);
    if let Some(facts) = &o.cluster {
        let publishers = pubs
            .iter()
            .map(|(m, p)| (*m, (p.client, p.epoch)))
            .collect();
        let subjects = pubs.iter().map(|(m, p)| (*m, p.subject.as_str())).collect();
        crate::check_cluster::check(facts, &publishers, &subjects, &mut bad);
    }
    if let Some(js) = &o.js {
        crate::check_js::check(&o.history.entries, js, &mut bad);
        crate::check_backup::check(&o.history.entries, js, &mut bad);
        crate::check_consumer::check(&o.history.entries, js, o.converged, &mut bad);
        crate::check_limits::check(&o.history.entries, js, &mut bad);
        crate::check_streams::check(&o.history.entries, js, o.converged, &mut bad);
        crate::check_partition::check(&o.history.entries, o.converged, &mut bad);
        crate::check_priority::check(&o.history.entries, o.converged, &mut bad);
    }
    // Subscriptions whose UNSUB the server has processed.
    let mut gone: BTreeSet<(ClientId, u32, u32)> = BTreeSet::new();
    for e in &o.history.entries {
        if let Ev::Unsubscribed { client, epoch, sid } = &e.ev {
            gone.insert((*client, *epoch, *sid));
        }
        let Ev::Recv {
            client,
            epoch,
            sid,
            subject,
            reply,
            msg,
            answers,
            no_responders,
            digest,
        } = &e.ev
        else {
            continue;
        };
        let key = (*client, *epoch, *sid);
        // A JetStream consumer's delivery shows the stored message's
        // subject on whichever subscription matched the pull request's
        // reply subject (`check_consumer` checks it).
        let consumer_delivery = reply.as_deref().is_some_and(|r| r.starts_with("$JS.ACK."));
        if gone.contains(&key) {
            bad(
                "no-delivery-after-unsubscribe",
                format!("client {client} sid {sid} got {subject} after its UNSUB was processed"),
            );
        }
        if !o.plans[*client].perms.may_receive(subject) {
            bad(
                "permitted-delivery",
                format!(
                    "client {client} sid {sid} got {subject}, which its user may not subscribe to"
                ),
            );
        }
        let Some(sub) = subs.get(&key) else {
            bad(
                "known-subscription",
                format!("client {client} epoch {epoch} got a message on unknown sid {sid}"),
            );
            continue;
        };
        if !consumer_delivery && !subject::matches(sub.pattern.as_bytes(), subject.as_bytes()) {
            bad(
                "matching-subject",
                format!(
                    "client {client} sid {sid} ({}) got subject {subject}",
                    sub.pattern
                ),
            );
        }
        // The server's own no-responders status is not a delivery: it does
        // not count toward a subscription's max.
        if !*no_responders {
            *per_sub.entry(key).or_default() += 1;
            if let Some(max) = sub.max
                && per_sub[&key] > max
            {
                bad(
                    "auto-unsubscribe",
                    format!(
                        "client {client} sid {sid} got {} messages, max {max}",
                        per_sub[&key]
                    ),
                );
            }
        }
        let inbox = format!("_INBOX.c{client}.");
        // A status goes to whichever of the requester's subscriptions
        // matches its reply subject; answers are counted on its inbox.
        let on_own_inbox = sub.pattern == format!("{inbox}*");
        if consumer_delivery {
            continue;
        }
        if *no_responders || on_own_inbox {
            let request = by_reply.get(subject.as_str()).copied();
            // The consumer groups' members pull on inboxes of their own
            // (`_INBOX.p<client>.`, `_INBOX.q<client>.`): a no-responders
            // status to a pull sent while the server recovers lands there.
            let own = [
                &inbox,
                &format!("_INBOX.p{client}."),
                &format!("_INBOX.q{client}."),
            ];
            if !own.iter().any(|i| subject.starts_with(i.as_str())) || request.is_none() {
                bad(
                    "replies-to-requests",
                    format!(
                        "client {client} got a reply/status on {subject}, which is not one of its requests"
                    ),
                );
            }
            if let Some(r) = request {
                if *no_responders {
                    *statuses.entry(r).or_default() += 1;
                }
                if let Some(a) = answers {
                    if *a != r {
                        bad(
                            "replies-to-requests",
                            format!(
                                "client {client} got an answer to {a} on the inbox of request {r}"
                            ),
                        );
                    }
                    *answered.entry(r).or_default() += 1;
                }
            }
            continue;
        }
        let Some(m) = msg else {
            continue;
        };
        let Some(p) = pubs.get(m) else {
            bad(
                "matching-subject",
                format!("client {client} got message {m}, which nobody published"),
            );
            continue;
        };
        if *digest != p.digest {
            bad(
                "intact-payload",
                format!(
                    "client {client} sid {sid} got message {m} with other headers or payload than published"
                ),
            );
        }
        if *reply != p.reply {
            bad(
                "same-reply",
                format!(
                    "client {client} sid {sid} got message {m} with reply {reply:?}, published with {:?}",
                    p.reply
                ),
            );
        }
        if !same_account(o, *client, p.client) {
            bad(
                "account-isolation",
                format!(
                    "client {client} got message {m} from client {}, in another account",
                    p.client
                ),
            );
        }
        if p.denied {
            bad(
                "permitted-delivery",
                format!(
                    "client {client} got message {m}, published by client {} to {}, which its user may not publish to",
                    p.client, p.subject
                ),
            );
        }
        if !p.complete {
            bad(
                "whole-messages",
                format!(
                    "client {client} got message {m}, whose publisher crashed while sending it"
                ),
            );
        }
        if p.subject != *subject {
            bad(
                "matching-subject",
                format!(
                    "message {m} published to {} arrived as {subject}",
                    p.subject
                ),
            );
        }
        if !seen.insert((*client, *epoch, *sid, *m)) {
            bad(
                "no-duplicates",
                format!("client {client} sid {sid} got message {m} twice"),
            );
        }
        if !o.plans[*client].echo && p.client == *client && p.epoch == *epoch {
            bad(
                "no-echo",
                format!("client {client} has echo off and got its own message {m}"),
            );
        }
        if let Some(q) = &sub.queue {
            let n = queue_got.entry((*m, q.clone())).or_default();
            *n += 1;
            if *n > 1 {
                bad(
                    "queue-at-most-once",
                    format!("queue group {q} got message {m} {n} times"),
                );
            }
        }
        let order_key = (*client, *epoch, *sid, p.client, p.epoch, p.subject.clone());
        if let Some(&(prev, prev_at_ns)) = last_seq.get(&order_key) {
            // In a cluster, messages between two servers may be lost
            // while interest travels or with a route (see `gap_explained`).
            let lost_between_servers = o.cluster.as_ref().is_some_and(|f| {
                f.gap_explained(
                    (p.client, p.epoch),
                    (*client, *epoch),
                    o.plans[*client].perms.account.unwrap_or("$G"),
                    &sub.pattern,
                    prev_at_ns,
                    e.at_ns,
                )
            });
            // Across gateways a message may take another way than the one
            // before it, once the connection it would have taken dropped.
            let rerouted = o.cluster.as_ref().is_some_and(|f| {
                f.reorder_explained((p.client, p.epoch), (*client, *epoch), p.at_ns, e.at_ns)
            });
            if p.seq <= prev && rerouted {
                // Late by another way: the later ones already set the mark.
                continue;
            }
            if p.seq <= prev {
                bad(
                    "publisher-order",
                    format!(
                        "client {client} sid {sid}: seq {} after {prev} from client {} on {}",
                        p.seq, p.client, p.subject
                    ),
                );
            } else if sub.queue.is_none() && p.seq != prev + 1 && !lost_between_servers {
                bad(
                    "no-silent-gaps",
                    format!(
                        "client {client} sid {sid}: seq {} after {prev} from client {} on {} (gap)",
                        p.seq, p.client, p.subject
                    ),
                );
            }
        }
        last_seq.insert(order_key, (p.seq, p.at_ns));
    }

    if !o.converged {
        bad(
            "converges",
            "clients did not all reconnect and resubscribe within the bound after healing"
                .to_string(),
        );
        return v;
    }
    let final_at = o
        .history
        .entries
        .iter()
        .find(|e| e.ev == Ev::FinalRound)
        .map_or(u64::MAX, |e| e.at_ns);
    let mut before_final: BTreeMap<(ClientId, u32, u32), u64> = BTreeMap::new();
    for e in o.history.entries.iter().filter(|e| e.at_ns < final_at) {
        if let Ev::Recv {
            client,
            epoch,
            sid,
            no_responders: false,
            ..
        } = &e.ev
        {
            *before_final.entry((*client, *epoch, *sid)).or_default() += 1;
        }
    }
    let counts = Counts {
        seen: &seen,
        queue_got: &queue_got,
        answered: &answered,
        statuses: &statuses,
        before_final: &before_final,
    };
    check_final(o, &pubs, &counts, &mut bad);
    v
}

/// Every `-ERR` must be expected; after healing, every denied publish must
/// get exactly one.
fn check_errors(
    o: &Outcome,
    pubs: &BTreeMap<MsgId, PubInfo>,
    bad: &mut impl FnMut(&'static str, String),
) {
    let denied: BTreeSet<(ClientId, u32, String)> = pubs
        .values()
        .filter(|p| p.denied)
        .map(|p| (p.client, p.epoch, publish_violation(&p.subject)))
        .collect();
    let mut after_final: BTreeMap<(ClientId, u32, String), i64> = BTreeMap::new();
    for p in pubs.values().filter(|p| p.denied && p.final_round) {
        *after_final
            .entry((p.client, p.epoch, publish_violation(&p.subject)))
            .or_default() += 1;
    }
    let mut final_round = false;
    for e in &o.history.entries {
        match &e.ev {
            Ev::FinalRound => final_round = true,
            Ev::Err {
                client,
                epoch,
                text,
            } if *client != usize::MAX => {
                let key = (*client, *epoch, text.clone());
                if final_round && let Some(n) = after_final.get_mut(&key) {
                    *n -= 1;
                } else if !denied.contains(&key) && !CLOSING_ERRORS.contains(&text.as_str()) {
                    bad(
                        "expected-errors",
                        format!("client {client} got an unexpected -ERR {text}"),
                    );
                }
            }
            _ => {}
        }
    }
    if !o.converged {
        return;
    }
    for ((client, _, text), n) in after_final {
        if n != 0 {
            bad(
                "expected-errors",
                format!(
                    "client {client} got {} -ERR {text} for its denied final publish, not 1",
                    1 - n
                ),
            );
        }
    }
}

/// Whether two clients' users are in the same account.
/// Whether `p` would cross a leaf node connection or a route that does not
/// carry its subject on its way to client connection `(c, epoch)`.
fn denied(o: &Outcome, p: &PubInfo, c: ClientId, epoch: u32) -> bool {
    let Some(f) = &o.cluster else {
        return false;
    };
    let (Some(&from), Some(&to)) = (
        f.conn_server.get(&(p.client, p.epoch)),
        f.conn_server.get(&(c, epoch)),
    ) else {
        return false;
    };
    f.leaf_deny
        .as_ref()
        .is_some_and(|d| d.denies(f.topology, from, to, &p.subject))
        || f.route_deny
            .as_ref()
            .is_some_and(|d| d.denies(from, to, &p.subject))
}

fn same_account(o: &Outcome, a: ClientId, b: ClientId) -> bool {
    o.plans[a].perms.account == o.plans[b].perms.account
}

/// What the final-round check needs from the safety pass.
struct Counts<'a> {
    seen: &'a BTreeSet<(ClientId, u32, u32, MsgId)>,
    queue_got: &'a BTreeMap<(MsgId, String), u32>,
    answered: &'a BTreeMap<MsgId, u32>,
    statuses: &'a BTreeMap<MsgId, u32>,
    before_final: &'a BTreeMap<(ClientId, u32, u32), u64>,
}

fn check_final(
    o: &Outcome,
    pubs: &BTreeMap<MsgId, PubInfo>,
    counts: &Counts<'_>,
    bad: &mut impl FnMut(&'static str, String),
) {
    let Counts {
        seen,
        queue_got,
        answered,
        statuses,
        before_final,
    } = *counts;
    for (m, p) in pubs.iter().filter(|(_, p)| p.final_round && !p.denied) {
        if p.reply.is_some() {
            // Who hears the request: live matching subscriptions, except the
            // requester's own when its echo is off.
            // Subscriptions with a max that were not used up before the final
            // round may or may not still hear it (other final messages race
            // for their last slots): they make the outcome uncertain.
            let matching = |(c, _, _, plan): &&(ClientId, u32, u32, SubPlan)| {
                subject::matches(plan.pattern.as_bytes(), p.subject.as_bytes())
                    && (*c != p.client || o.plans[p.client].echo)
                    && same_account(o, *c, p.client)
            };
            // A subscriber behind a leaf node connection that does not
            // carry the subject does not hear it, but may still draw it
            // there (its interest is a wildcard the deny list does not
            // cover): with no other hearer the outcome is uncertain.
            let behind_deny = o
                .final_subs
                .iter()
                .filter(matching)
                .filter(|(c, e, _, _)| denied(o, p, *c, *e))
                .count();
            let hearers = o
                .final_subs
                .iter()
                .filter(matching)
                .filter(|(c, e, _, _)| !denied(o, p, *c, *e))
                .filter(|(_, _, _, plan)| plan.max.is_none())
                .count();
            let maybe = o
                .final_subs
                .iter()
                .filter(matching)
                .filter(|(c, e, sid, plan)| {
                    plan.max.is_some_and(|m| {
                        before_final.get(&(*c, *e, *sid)).copied().unwrap_or(0) < m
                    })
                })
                .count();
            if hearers == 0 && (maybe > 0 || behind_deny > 0) {
                continue;
            }
            let responders = o
                .final_responders
                .iter()
                .filter(|r| **r != p.client || o.plans[p.client].echo)
                .filter(|r| same_account(o, **r, p.client))
                .count();
            let got_statuses = statuses.get(m).copied().unwrap_or(0);
            if hearers == 0 && got_statuses != 1 {
                bad(
                    "final-requests",
                    format!(
                        "request {m} to {} reached nobody and got {got_statuses} no-responders statuses, not 1",
                        p.subject
                    ),
                );
            }
            if hearers > 0 && got_statuses > 0 {
                bad(
                    "final-requests",
                    format!(
                        "request {m} to {} got a no-responders status though {hearers} subscriptions heard it",
                        p.subject
                    ),
                );
            }
            if p.subject == SERVICE && responders > 0 && answered.get(m).copied().unwrap_or(0) == 0
            {
                bad(
                    "final-requests",
                    format!("request {m} from client {} was not answered", p.client),
                );
            }
            continue;
        }
        let mut groups: BTreeSet<&str> = BTreeSet::new();
        // In a cluster, a server picks another server's queue member by
        // the weight it announced, and that server may find that none of
        // its members can take the message (their users may not receive
        // the subject, or their max ran out): the message is then lost,
        // as in nats-server. Such groups are held to at most once.
        let mut able: BTreeMap<(&str, usize), bool> = BTreeMap::new();
        for (c, epoch, sid, plan) in &o.final_subs {
            if !subject::matches(plan.pattern.as_bytes(), p.subject.as_bytes())
                || !same_account(o, *c, p.client)
            {
                continue;
            }
            let takes = plan.max.is_none()
                && o.plans[*c].perms.may_receive(&p.subject)
                && !denied(o, p, *c, *epoch);
            if let (Some(q), Some(f)) = (&plan.queue, &o.cluster)
                && let Some(&server) = f.conn_server.get(&(*c, *epoch))
            {
                *able.entry((q.as_str(), server)).or_default() |= takes;
            }
            if !takes {
                continue;
            }
            let own = *c == p.client && !o.plans[*c].echo;
            match &plan.queue {
                Some(q) if !own => {
                    groups.insert(q);
                }
                Some(_) => {}
                None if own => {}
                None => {
                    if !seen.contains(&(*c, *epoch, *sid, *m)) {
                        bad(
                            "final-delivery",
                            format!(
                                "client {c} sid {sid} ({}) never got final message {m} on {}",
                                plan.pattern, p.subject
                            ),
                        );
                    }
                }
            }
        }
        let origin = o
            .cluster
            .as_ref()
            .and_then(|f| f.conn_server.get(&(p.client, p.epoch)));
        let uncertain: BTreeSet<&str> = able
            .iter()
            .filter(|((_, server), takes)| Some(server) != origin && !**takes)
            .map(|((q, _), _)| *q)
            .collect();
        for q in groups.difference(&uncertain) {
            let n = queue_got.get(&(*m, q.to_string())).copied().unwrap_or(0);
            if n != 1 {
                bad(
                    "final-delivery",
                    format!(
                        "queue group {q} got final message {m} on {} {n} times, not once",
                        p.subject
                    ),
                );
            }
        }
    }
}
