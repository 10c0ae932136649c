//! The partitioned-group workload: two to four clients share durable pull
//! consumer `P` of the JetStream stream as a key-partitioned group
//! (metadata `natrix.partitions`), keyed by the third token of
//! `js.p.<key>`. The group's members publish keyed messages (half their
//! JetStream publishes), pull every 200 or 500 ms, ack
//! most deliveries with a double ack, some late (after up to twice the ack
//! wait), leave others for redelivery, and now and then stop pulling for
//! a while (a member leaves, and joins again with its next pull).
//! Reconnects come from the seed's faults. After the faults heal, every
//! member pulls and acks everything.
//!
//! Each member pulls into an inbox of its own connection
//! (`_INBOX.p<client>.<epoch>.*`), so that what it receives on one
//! connection answers a request it sent on that connection: the checkers
//! (`crate::check_partition`) bound when the server sent a delivery by
//! when the oldest request still open on that connection went out.

use rand_chacha::ChaCha8Rng;
use rand_core::Rng;

use super::{Conn, MsgIds, Output, SimClient, SubPlan};
use crate::check_partition::PartEv;
use crate::history::{ClientId, Ev, History};

/// The group's durable consumer, and the subjects it filters.
pub const GROUP: &str = "P";
pub const GROUP_FILTER: &str = "js.p.>";
/// Keys of the keyed publishes (`js.p.k0` to `js.p.k5`).
const KEYS: u32 = 6;
/// A create request unanswered this long is sent again.
const CREATE_RETRY_NS: u64 = 1_000_000_000;
/// A member about to pull stops for a while instead once in this many.
const PAUSE_ONE_IN: u32 = 20;
/// Messages asked per pull request after the faults.
const QUIET_BATCH: u64 = 64;

/// The group's shape and one member's habits, drawn from the seed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartPlan {
    /// The group's partitions and ack wait (the same for every member).
    pub partitions: u32,
    pub ack_wait_ns: u64,
    /// A pull request goes out this often, expiring after as long.
    pub pull_every_ns: u64,
    pub batch: u64,
    /// Percent of deliveries acked at once, and acked late.
    pub ack_pct: u32,
    pub late_pct: u32,
    /// How long the member stops pulling now and then (none: never).
    pub pause_ns: Option<u64>,
}

impl PartPlan {
    /// One member's plan in a group of `partitions` with `ack_wait_ns`.
    fn draw(rng: &mut ChaCha8Rng, partitions: u32, ack_wait_ns: u64) -> PartPlan {
        let mut pick = |options: &[u64]| options[(rng.next_u32() as usize) % options.len()];
        PartPlan {
            partitions,
            ack_wait_ns,
            pull_every_ns: pick(&[200_000_000, 500_000_000]),
            batch: pick(&[1, 2, 4]),
            ack_pct: pick(&[100, 70, 40]) as u32,
            late_pct: pick(&[0, 20, 40]) as u32,
            pause_ns: match pick(&[0, 1, 2]) {
                0 => None,
                1 => Some(ack_wait_ns / 2),
                _ => Some(ack_wait_ns + 700_000_000),
            },
        }
    }
}

/// Gives the group to up to four of the JetStream clients (client 0 and
/// the ones after it in its account), when there are at least two.
pub fn join_group(clients: &mut [SimClient], s: u64) {
    let account = clients[0].plan.perms.account;
    let members: Vec<usize> = (0..clients.len())
        .filter(|&i| clients[i].plan.perms.account == account && clients[i].js.is_some())
        .take(4)
        .collect();
    if members.len() < 2 {
        return;
    }
    let mut shape = crate::seed::rng(s, "group", 0);
    let partitions = [2, 3, 4, 8][(shape.next_u32() % 4) as usize];
    let ack_wait_ns = [1_000_000_000, 2_000_000_000][(shape.next_u32() % 2) as usize];
    for i in members {
        let mut rng = crate::seed::rng(s, "member", i as u64);
        let plan = PartPlan::draw(&mut rng, partitions, ack_wait_ns);
        let c = &mut clients[i];
        if let Some(js) = c.js.as_mut() {
            js.part = Some(PartState::new(plan, rng));
        }
    }
}

/// A member's state between its requests and their answers.
pub(super) struct PartState {
    plan: PartPlan,
    rng: ChaCha8Rng,
    created: bool,
    create_sent_at: Option<u64>,
    creates: Vec<String>,
    /// The connection the requests below went out on, and its inbox sid.
    epoch: u32,
    pub(super) sid: Option<u32>,
    next_inbox: u64,
    /// Pull requests open on this connection, oldest first: (reply
    /// subject, sent at, messages still to come). One leaves when its
    /// status or its last message arrives, never on a guess: the oldest
    /// one bounds when a delivery on this connection was sent.
    open: Vec<(String, u64, u64)>,
    next_pull_at: u64,
    /// Double acks waiting for their answer: reply subject -> seq.
    acks: Vec<(String, u64)>,
    /// Acks held back: (due at, ack subject, seq).
    late: Vec<(u64, String, u64)>,
    /// Pulling stops until then (a member that leaves for a while).
    paused_until: u64,
    pub(super) quiet: bool,
}

impl PartState {
    fn new(plan: PartPlan, rng: ChaCha8Rng) -> PartState {
        PartState {
            plan,
            rng,
            created: false,
            create_sent_at: None,
            creates: Vec::new(),
            epoch: 0,
            sid: None,
            next_inbox: 0,
            open: Vec::new(),
            next_pull_at: 0,
            acks: Vec::new(),
            late: Vec::new(),
            paused_until: 0,
            quiet: false,
        }
    }
}

impl SimClient {
    fn part(&mut self) -> Option<&mut PartState> {
        self.js.as_mut()?.part.as_mut()
    }

    /// Whether the client is a member of the partitioned group.
    pub fn in_group(&self) -> bool {
        self.js.as_ref().is_some_and(|js| js.part.is_some())
    }

    /// A keyed subject for half the JetStream publishes of a member (a
    /// partition delivers one message at a time, so the backlog must
    /// stay within what the group drains after the faults).
    pub(super) fn keyed_subject(&mut self) -> Option<String> {
        let part = self.part()?;
        let key = part.rng.next_u32() % (2 * KEYS);
        (key < KEYS).then(|| format!("js.p.k{key}"))
    }

    /// Subscribes the member's inbox of this connection (at connect).
    pub(super) fn part_subscribe(
        &mut self,
        now: u64,
        conn: &mut Conn,
        hist: &mut History,
        out: &mut Output,
    ) {
        if !self.in_group() {
            return;
        }
        let pattern = format!("_INBOX.p{}.{}.*", self.id, self.epoch);
        let sub = SubPlan {
            pattern,
            queue: None,
            max: None,
        };
        let sid = self.subscribe(now, conn, sub, hist, out);
        // It stays for the connection's life: the workload's unsubscribes
        // choose among the others.
        conn.subs.remove(&sid);
        let epoch = self.epoch;
        if let Some(part) = self.part() {
            part.sid = Some(sid);
            part.epoch = epoch;
            part.open.clear();
            part.next_pull_at = now;
        }
    }

    fn part_inbox(&mut self) -> String {
        let (id, epoch) = (self.id, self.epoch);
        let part = self.part().expect("a member");
        part.next_inbox += 1;
        format!("_INBOX.p{id}.{epoch}.{}", part.next_inbox)
    }

    /// The member's due work: the consumer's creation, late acks, and its
    /// next pull request. Returns when it next has something to do.
    pub(super) fn part_work(
        &mut self,
        now: u64,
        stream_created: bool,
        send: &mut Vec<u8>,
        ids: &mut MsgIds,
        hist: &mut History,
    ) -> Option<u64> {
        // Only the stream's creator knows when it exists; the others'
        // creates fail until it does, and are sent again.
        let creator = self.plan.js.as_ref().is_some_and(|js| js.creator);
        let part = self.part()?;
        if (creator && !stream_created) || part.sid.is_none() {
            return None;
        }
        if !part.created {
            let due = part.create_sent_at.map_or(now, |t| t + CREATE_RETRY_NS);
            if now < due {
                return Some(due);
            }
            part.create_sent_at = Some(now);
            let body = format!(
                "{{\"stream_name\":\"{}\",\"config\":{{\"durable_name\":\"{GROUP}\",\"filter_subject\":\"{GROUP_FILTER}\",\"ack_policy\":\"explicit\",\"ack_wait\":{},\"max_deliver\":-1,\"metadata\":{{\"natrix.partitions\":\"{}\",\"natrix.partition_key\":\"3\"}}}}}}",
                super::JS_STREAM,
                part.plan.ack_wait_ns,
                part.plan.partitions
            );
            let reply = self.part_inbox();
            self.part()?.creates.push(reply.clone());
            let subject = format!("$JS.API.CONSUMER.CREATE.{}.{GROUP}", super::JS_STREAM);
            self.record_publish(
                now,
                &subject,
                Some(reply),
                None,
                body.as_bytes(),
                send,
                ids,
                hist,
            );
            return Some(now + CREATE_RETRY_NS);
        }
        let quiet = part.quiet;
        let due: Vec<(String, u64)> = {
            let (due, later) = std::mem::take(&mut part.late)
                .into_iter()
                .partition(|(at, _, _)| quiet || *at <= now);
            part.late = later;
            due.into_iter().map(|(_, ack, seq)| (ack, seq)).collect()
        };
        for (ack, seq) in due {
            self.part_ack(now, &ack, seq, send, ids, hist);
        }
        let part = self.part()?;
        let every = part.plan.pull_every_ns;
        let paused = !quiet && now < part.paused_until;
        if now >= part.next_pull_at && !paused {
            // Now and then a member stops pulling for a while.
            if let Some(pause) = part.plan.pause_ns.filter(|_| !quiet)
                && part.rng.next_u32().is_multiple_of(PAUSE_ONE_IN)
            {
                part.paused_until = now + pause;
            } else {
                let batch = if quiet { QUIET_BATCH } else { part.plan.batch };
                part.next_pull_at = now + every;
                let reply = self.part_inbox();
                self.part()?.open.push((reply.clone(), now, batch));
                let body = format!("{{\"batch\":{batch},\"expires\":{every}}}");
                let subject = format!("$JS.API.CONSUMER.MSG.NEXT.{}.{GROUP}", super::JS_STREAM);
                self.record_publish(
                    now,
                    &subject,
                    Some(reply),
                    None,
                    body.as_bytes(),
                    send,
                    ids,
                    hist,
                );
            }
        }
        let part = self.part()?;
        let mut next = if quiet {
            part.next_pull_at
        } else {
            part.next_pull_at.max(part.paused_until)
        };
        if let Some((at, _, _)) = part.late.iter().min_by_key(|(at, _, _)| *at) {
            next = next.min(*at);
        }
        Some(next.max(now + 1))
    }

    /// A message on the member's inbox: a delivery (recorded, then acked
    /// now, later or never), a status ending a pull request, the answer to
    /// a double ack or to a create. Returns whether it was one.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn part_answer(
        &mut self,
        now: u64,
        subject: &str,
        reply: Option<&str>,
        headers: Option<&[u8]>,
        payload: &[u8],
        ids: &mut MsgIds,
        hist: &mut History,
        out: &mut Output,
    ) -> bool {
        let (client, epoch, lifetime) = (self.id, self.epoch, self.lifetime);
        let Some(part) = self.part() else {
            return false;
        };
        if let Some(at) = part.acks.iter().position(|(r, _)| r == subject) {
            let (reply, seq) = part.acks.swap_remove(at);
            hist.push(
                now,
                Ev::Part(Box::new(PartEv::Acked { client, seq, reply })),
            );
            return true;
        }
        if part.creates.iter().any(|r| r == subject) {
            let answer = serde_json::from_slice::<serde_json::Value>(payload).ok();
            match answer.as_ref().and_then(|a| a.get("error")) {
                Some(e) => {
                    let text = e.to_string();
                    hist.push(now, Ev::JsError { client, text });
                }
                None if answer.is_some() => part.created = true,
                None => {}
            }
            return true;
        }
        if let Some(at) = part.open.iter().position(|(r, _, _)| r == subject) {
            // A status (408 and the like) ends its request.
            let (_, sent_at, _) = part.open.remove(at);
            let is_status = headers.is_some_and(|h| h.starts_with(b"NATS/1.0 "));
            if is_status {
                let ev = PartEv::Status {
                    client,
                    epoch,
                    request_ns: sent_at,
                };
                hist.push(now, Ev::Part(Box::new(ev)));
            }
            return true;
        }
        let prefix = format!("$JS.ACK.{}.{GROUP}.", super::JS_STREAM);
        let Some((ack, (seq, deliveries, _))) = reply
            .filter(|r| r.starts_with(&prefix))
            .and_then(|r| Some((r, super::pull::ack_token(r)?)))
        else {
            return false;
        };
        // The oldest request open on this connection went out no later
        // than the one this answers.
        let request_ns = part.open.first().map_or(0, |(_, at, _)| *at);
        if let Some(first) = part.open.iter().position(|(_, _, left)| *left > 0) {
            part.open[first].2 -= 1;
            if part.open[first].2 == 0 {
                part.open.remove(first);
            }
        }
        let ev = PartEv::Delivery {
            client,
            epoch,
            lifetime,
            seq,
            deliveries,
            subject: subject.to_string(),
            request_ns,
            partitions: part.plan.partitions,
            ack_wait_ns: part.plan.ack_wait_ns,
        };
        hist.push(now, Ev::Part(Box::new(ev)));
        let roll = part.rng.next_u32() % 100;
        let (ack_pct, late_pct, quiet) = (part.plan.ack_pct, part.plan.late_pct, part.quiet);
        if quiet || roll < ack_pct {
            self.part_ack(now, ack, seq, &mut out.send, ids, hist);
        } else if roll < ack_pct + late_pct {
            let wait = part.rng.next_u64() % (2 * part.plan.ack_wait_ns);
            part.late.push((now + wait, ack.to_string(), seq));
        }
        true
    }

    /// A double ack of `seq` to its ack subject `ack`, its answer due on
    /// this connection's inbox.
    fn part_ack(
        &mut self,
        now: u64,
        ack: &str,
        seq: u64,
        send: &mut Vec<u8>,
        ids: &mut MsgIds,
        hist: &mut History,
    ) {
        let reply = self.part_inbox();
        if let Some(part) = self.part() {
            part.acks.push((reply.clone(), seq));
        }
        self.record_publish(
            now,
            ack,
            Some(reply.clone()),
            None,
            b"+ACK",
            send,
            ids,
            hist,
        );
        let (client, epoch, lifetime): (ClientId, u32, u32) = (self.id, self.epoch, self.lifetime);
        let ev = PartEv::Ack {
            client,
            epoch,
            lifetime,
            seq,
            reply,
        };
        hist.push(now, Ev::Part(Box::new(ev)));
    }
}
