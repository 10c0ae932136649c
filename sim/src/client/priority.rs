//! The priority-group workload: two to four clients share durable pull
//! consumer `Q` of the JetStream stream (every subject of `js.>`) through
//! its priority group `g`, under one of two policies drawn from the seed:
//!
//! - `pinned_client` (a `priority_timeout` of 1 or 2 s): every member
//!   pulls; the server pins one, whose requests carry the pin id it learnt
//!   from its last delivery (`Nats-Pin-Id`); a `423` makes it forget the
//!   pin. Members stop pulling now and then for longer than the timeout,
//!   so the pin moves;
//! - `overflow`: the first member pulls as a main worker; each of the
//!   others is a main worker or a standby whose every request carries a
//!   `min_pending` of 2, 4 or 8.
//!
//! A member keeps one pull request open at a time on its connection
//! (the next goes out once the last one ended, by its batch, its status,
//! or the connection's end), so each delivery is known to answer that
//! request: the checkers (`crate::check_priority`) compare what a
//! delivery shows (its pin id, the pending count in its ack subject) with
//! what its request asked for. Members ack as the partitioned group's do
//! (at once, late, or never, for redelivery). After the faults heal,
//! every member pulls batches of 64 and acks at once.

use rand_chacha::ChaCha8Rng;
use rand_core::Rng;

use super::{Conn, MsgIds, Output, SimClient, SubPlan};
use crate::check_priority::{Policy, PrioEv, Request};
use crate::history::{ClientId, Ev, History};

/// The group's durable consumer and its one priority group.
pub const PRIORITY_CONSUMER: &str = "Q";
const PRIORITY_GROUP: &str = "g";
/// A create request unanswered this long is sent again.
const CREATE_RETRY_NS: u64 = 1_000_000_000;
/// A member about to pull stops for a while instead once in this many.
const PAUSE_ONE_IN: u32 = 15;
/// How often a member with a request open looks whether it ended.
const OPEN_POLL_NS: u64 = 20_000_000;
/// Messages asked per pull request after the faults.
const QUIET_BATCH: u64 = 64;

/// The group's shape and one member's habits, drawn from the seed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrioPlan {
    pub policy: Policy,
    pub ack_wait_ns: u64,
    /// Overflow standbys only: every request's `min_pending` (0: a main
    /// worker).
    pub min_pending: u64,
    /// A pull request goes out this often at most, expiring after as long.
    pub pull_every_ns: u64,
    pub batch: u64,
    /// Percent of deliveries acked at once, and acked late.
    pub ack_pct: u32,
    pub late_pct: u32,
    /// How long the member stops pulling now and then (none: never).
    pub pause_ns: Option<u64>,
}

impl PrioPlan {
    fn draw(rng: &mut ChaCha8Rng, policy: Policy, ack_wait_ns: u64, main: bool) -> PrioPlan {
        let mut pick = |options: &[u64]| options[(rng.next_u32() as usize) % options.len()];
        let min_pending = match policy {
            Policy::Overflow if !main => pick(&[0, 2, 4, 8]),
            _ => 0,
        };
        // Long enough for the pin to move (pinned), or for a backlog to
        // build (overflow).
        let away_ns = match policy {
            Policy::Pinned { timeout_ns } => timeout_ns + 500_000_000,
            Policy::Overflow => ack_wait_ns,
        };
        PrioPlan {
            policy,
            ack_wait_ns,
            min_pending,
            pull_every_ns: pick(&[200_000_000, 500_000_000]),
            // A standby takes more at once: it helps with a backlog.
            batch: if min_pending > 0 {
                pick(&[4, 8, 16])
            } else {
                pick(&[1, 2, 4])
            },
            ack_pct: pick(&[100, 70, 40]) as u32,
            late_pct: pick(&[0, 20, 40]) as u32,
            pause_ns: match pick(&[0, 1, 2]) {
                0 => None,
                1 => Some(away_ns / 2),
                _ => Some(away_ns),
            },
        }
    }
}

/// Gives the priority group to up to four of the JetStream clients
/// (client 0 and the ones after it in its account), when there are at
/// least two.
pub fn join_priority_group(clients: &mut [SimClient], s: u64) {
    let account = clients[0].plan.perms.account;
    let members: Vec<usize> = (0..clients.len())
        .filter(|&i| clients[i].plan.perms.account == account && clients[i].js.is_some())
        .take(4)
        .collect();
    if members.len() < 2 {
        return;
    }
    let mut shape = crate::seed::rng(s, "priority-group", 0);
    let policy = if shape.next_u32().is_multiple_of(2) {
        let timeout_ns = [1_000_000_000, 2_000_000_000][(shape.next_u32() % 2) as usize];
        Policy::Pinned { timeout_ns }
    } else {
        Policy::Overflow
    };
    let ack_wait_ns = [1_000_000_000, 2_000_000_000][(shape.next_u32() % 2) as usize];
    for (n, i) in members.into_iter().enumerate() {
        let mut rng = crate::seed::rng(s, "priority-member", i as u64);
        let plan = PrioPlan::draw(&mut rng, policy, ack_wait_ns, n == 0);
        if let Some(js) = clients[i].js.as_mut() {
            js.prio = Some(PrioState::new(plan, rng));
        }
    }
}

/// A member's state between its requests and their answers.
pub(super) struct PrioState {
    plan: PrioPlan,
    rng: ChaCha8Rng,
    created: bool,
    create_sent_at: Option<u64>,
    creates: Vec<String>,
    /// The connection the requests below went out on, and its inbox sid.
    epoch: u32,
    pub(super) sid: Option<u32>,
    next_inbox: u64,
    /// The pull request open on this connection: its reply subject, what
    /// it asked, and the messages still to come.
    open: Option<(String, Request, u64)>,
    next_pull_at: u64,
    /// The pin id learnt from the last delivery (pinned: kept across
    /// connections, as a client library keeps it; forgotten on a `423`).
    pin: Option<String>,
    /// Double acks waiting for their answer: reply subject -> seq.
    acks: Vec<(String, u64)>,
    /// Acks held back: (due at, ack subject, seq).
    late: Vec<(u64, String, u64)>,
    /// Pulling stops until then (a member that goes away for a while).
    paused_until: u64,
    pub(super) quiet: bool,
}

impl PrioState {
    fn new(plan: PrioPlan, rng: ChaCha8Rng) -> PrioState {
        PrioState {
            plan,
            rng,
            created: false,
            create_sent_at: None,
            creates: Vec::new(),
            epoch: 0,
            sid: None,
            next_inbox: 0,
            open: None,
            next_pull_at: 0,
            pin: None,
            acks: Vec::new(),
            late: Vec::new(),
            paused_until: 0,
            quiet: false,
        }
    }

    /// The consumer's create request body.
    fn create_body(&self) -> String {
        let policy = match self.plan.policy {
            Policy::Pinned { timeout_ns } => {
                format!("\"priority_policy\":\"pinned_client\",\"priority_timeout\":{timeout_ns}")
            }
            Policy::Overflow => "\"priority_policy\":\"overflow\"".to_string(),
        };
        format!(
            "{{\"stream_name\":\"{}\",\"config\":{{\"durable_name\":\"{PRIORITY_CONSUMER}\",\"ack_policy\":\"explicit\",\"ack_wait\":{},\"max_deliver\":-1,{policy},\"priority_groups\":[\"{PRIORITY_GROUP}\"]}}}}",
            super::JS_STREAM,
            self.plan.ack_wait_ns,
        )
    }
}

impl SimClient {
    fn prio(&mut self) -> Option<&mut PrioState> {
        self.js.as_mut()?.prio.as_mut()
    }

    /// Whether the client is a member of the priority group.
    pub fn in_priority_group(&self) -> bool {
        self.js.as_ref().is_some_and(|js| js.prio.is_some())
    }

    /// Subscribes the member's inbox of this connection (at connect).
    pub(super) fn prio_subscribe(
        &mut self,
        now: u64,
        conn: &mut Conn,
        hist: &mut History,
        out: &mut Output,
    ) {
        if !self.in_priority_group() {
            return;
        }
        let pattern = format!("_INBOX.q{}.{}.*", self.id, self.epoch);
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
        if let Some(prio) = self.prio() {
            prio.sid = Some(sid);
            prio.epoch = epoch;
            prio.open = None;
            prio.next_pull_at = now;
        }
    }

    fn prio_inbox(&mut self) -> String {
        let (id, epoch) = (self.id, self.epoch);
        let prio = self.prio().expect("a member");
        prio.next_inbox += 1;
        format!("_INBOX.q{id}.{epoch}.{}", prio.next_inbox)
    }

    /// The member's due work: the consumer's creation, late acks, and its
    /// next pull request. Returns when it next has something to do.
    pub(super) fn prio_work(
        &mut self,
        now: u64,
        stream_created: bool,
        send: &mut Vec<u8>,
        ids: &mut MsgIds,
        hist: &mut History,
    ) -> Option<u64> {
        let creator = self.plan.js.as_ref().is_some_and(|js| js.creator);
        let prio = self.prio()?;
        if (creator && !stream_created) || prio.sid.is_none() {
            return None;
        }
        if !prio.created {
            let due = prio.create_sent_at.map_or(now, |t| t + CREATE_RETRY_NS);
            if now < due {
                return Some(due);
            }
            prio.create_sent_at = Some(now);
            let body = prio.create_body();
            let reply = self.prio_inbox();
            self.prio()?.creates.push(reply.clone());
            let subject = format!(
                "$JS.API.CONSUMER.CREATE.{}.{PRIORITY_CONSUMER}",
                super::JS_STREAM
            );
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
        let quiet = prio.quiet;
        let due: Vec<(String, u64)> = {
            let (due, later) = std::mem::take(&mut prio.late)
                .into_iter()
                .partition(|(at, _, _)| quiet || *at <= now);
            prio.late = later;
            due.into_iter().map(|(_, ack, seq)| (ack, seq)).collect()
        };
        for (ack, seq) in due {
            self.prio_ack(now, &ack, seq, send, ids, hist);
        }
        let prio = self.prio()?;
        let paused = !quiet && now < prio.paused_until;
        if prio.open.is_none() && now >= prio.next_pull_at && !paused {
            // Now and then a member goes away for a while.
            if let Some(pause) = prio.plan.pause_ns.filter(|_| !quiet)
                && prio.rng.next_u32().is_multiple_of(PAUSE_ONE_IN)
            {
                prio.paused_until = now + pause;
            } else {
                self.prio_pull(now, send, ids, hist);
            }
        }
        let prio = self.prio()?;
        let mut next = if quiet {
            prio.next_pull_at
        } else {
            prio.next_pull_at.max(prio.paused_until)
        };
        // An answer does not wake the member: while its request is open it
        // looks again now and then.
        if prio.open.is_some() {
            next = next.max(now + OPEN_POLL_NS);
        }
        if let Some((at, _, _)) = prio.late.iter().min_by_key(|(at, _, _)| *at) {
            next = next.min(*at);
        }
        Some(next.max(now + 1))
    }

    /// Sends the member's next pull request (none is open).
    fn prio_pull(&mut self, now: u64, send: &mut Vec<u8>, ids: &mut MsgIds, hist: &mut History) {
        let reply = self.prio_inbox();
        let (client, epoch, lifetime) = (self.id, self.epoch, self.lifetime);
        let Some(prio) = self.prio() else {
            return;
        };
        let every = prio.plan.pull_every_ns;
        // After the faults, the next request goes out as soon as the last
        // one ends (the backlog drains); before, at most one a period.
        prio.next_pull_at = if prio.quiet { now } else { now + every };
        let batch = if prio.quiet {
            QUIET_BATCH
        } else {
            prio.plan.batch
        };
        let pinned = matches!(prio.plan.policy, Policy::Pinned { .. });
        let request = Request {
            client,
            epoch,
            lifetime,
            sent_ns: now,
            pin: prio.pin.clone().filter(|_| pinned),
            min_pending: prio.plan.min_pending,
        };
        prio.open = Some((reply.clone(), request.clone(), batch));
        let mut body =
            format!("{{\"batch\":{batch},\"expires\":{every},\"group\":\"{PRIORITY_GROUP}\"");
        if let Some(pin) = &request.pin {
            body.push_str(&format!(",\"id\":\"{pin}\""));
        }
        if request.min_pending > 0 {
            body.push_str(&format!(",\"min_pending\":{}", request.min_pending));
        }
        body.push('}');
        hist.push(now, Ev::Prio(Box::new(PrioEv::Pull(request))));
        let subject = format!(
            "$JS.API.CONSUMER.MSG.NEXT.{}.{PRIORITY_CONSUMER}",
            super::JS_STREAM
        );
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

    /// A message on the member's inbox: a delivery (recorded, then acked
    /// now, later or never), a status ending its pull request, the answer
    /// to a double ack or to a create. Returns whether it was one.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn prio_answer(
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
        let client = self.id;
        let Some(prio) = self.prio() else {
            return false;
        };
        if let Some(at) = prio.acks.iter().position(|(r, _)| r == subject) {
            let (reply, seq) = prio.acks.swap_remove(at);
            hist.push(
                now,
                Ev::Prio(Box::new(PrioEv::Acked { client, seq, reply })),
            );
            return true;
        }
        if prio.creates.iter().any(|r| r == subject) {
            let answer = serde_json::from_slice::<serde_json::Value>(payload).ok();
            match answer.as_ref().and_then(|a| a.get("error")) {
                Some(e) => {
                    let text = e.to_string();
                    hist.push(now, Ev::JsError { client, text });
                }
                None if answer.is_some() => prio.created = true,
                None => {}
            }
            return true;
        }
        if prio.open.as_ref().is_some_and(|(r, _, _)| r == subject) {
            // A status (408, 423 and the like) ends the request.
            let (_, request, _) = prio.open.take().expect("open");
            let code = headers.and_then(status_code).unwrap_or(0);
            if code == 423 {
                prio.pin = None;
            }
            hist.push(now, Ev::Prio(Box::new(PrioEv::Status { request, code })));
            return true;
        }
        let prefix = format!("$JS.ACK.{}.{PRIORITY_CONSUMER}.", super::JS_STREAM);
        let Some((ack, tokens)) = reply
            .filter(|r| r.starts_with(&prefix))
            .and_then(|r| Some((r, ack_tokens(r)?)))
        else {
            return false;
        };
        let Some((_, request, left)) = prio.open.as_mut() else {
            // Only an open request is answered (see the module's words);
            // the checker says so if one is not.
            let policy = prio.plan.policy;
            let ev = PrioEv::Unasked {
                client,
                seq: tokens.seq,
                policy,
            };
            hist.push(now, Ev::Prio(Box::new(ev)));
            return true;
        };
        let request = request.clone();
        *left = left.saturating_sub(1);
        if *left == 0 {
            prio.open = None;
        }
        let pin = headers.and_then(|h| header(h, "Nats-Pin-Id"));
        if pin.is_some() {
            prio.pin = pin.clone();
        }
        let ev = PrioEv::Delivery {
            request,
            seq: tokens.seq,
            deliveries: tokens.deliveries,
            consumer_seq: tokens.consumer_seq,
            pending: tokens.pending,
            pin,
            subject: subject.to_string(),
            policy: prio.plan.policy,
        };
        hist.push(now, Ev::Prio(Box::new(ev)));
        let roll = prio.rng.next_u32() % 100;
        let (ack_pct, late_pct, quiet) = (prio.plan.ack_pct, prio.plan.late_pct, prio.quiet);
        if quiet || roll < ack_pct {
            self.prio_ack(now, ack, tokens.seq, &mut out.send, ids, hist);
        } else if roll < ack_pct + late_pct {
            let wait = prio.rng.next_u64() % (2 * prio.plan.ack_wait_ns);
            prio.late.push((now + wait, ack.to_string(), tokens.seq));
        }
        true
    }

    /// A double ack of `seq` to its ack subject `ack`, its answer due on
    /// this connection's inbox.
    fn prio_ack(
        &mut self,
        now: u64,
        ack: &str,
        seq: u64,
        send: &mut Vec<u8>,
        ids: &mut MsgIds,
        hist: &mut History,
    ) {
        let reply = self.prio_inbox();
        if let Some(prio) = self.prio() {
            prio.acks.push((reply.clone(), seq));
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
        let ev = PrioEv::Ack {
            client,
            epoch,
            lifetime,
            seq,
            reply,
        };
        hist.push(now, Ev::Prio(Box::new(ev)));
    }
}

/// What an ack subject tells (`$JS.ACK.<stream>.<consumer>.<delivered>.
/// <sseq>.<cseq>.<ts>.<pending>`).
struct AckTokens {
    deliveries: u64,
    seq: u64,
    consumer_seq: u64,
    pending: u64,
}

fn ack_tokens(reply: &str) -> Option<AckTokens> {
    let tokens: Vec<&str> = reply.split('.').collect();
    if tokens.len() != 9 {
        return None;
    }
    Some(AckTokens {
        deliveries: tokens[4].parse().ok()?,
        seq: tokens[5].parse().ok()?,
        consumer_seq: tokens[6].parse().ok()?,
        pending: tokens[8].parse().ok()?,
    })
}

/// A status message's code (`NATS/1.0 423 ...`), if it is one.
fn status_code(headers: &[u8]) -> Option<u16> {
    let line = headers.split(|&b| b == b'\r').next()?;
    let rest = line.strip_prefix(b"NATS/1.0 ")?;
    std::str::from_utf8(rest.get(..3)?).ok()?.parse().ok()
}

/// The value of header `name` in a header block.
fn header(headers: &[u8], name: &str) -> Option<String> {
    let text = std::str::from_utf8(headers).ok()?;
    text.split("\r\n").skip(1).find_map(|line| {
        let (k, v) = line.split_once(':')?;
        k.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_and_pins_are_read_from_headers() {
        assert_eq!(
            status_code(b"NATS/1.0 423 Nats-Wrong-Pin-Id\r\n\r\n"),
            Some(423)
        );
        assert_eq!(status_code(b"NATS/1.0\r\nNats-Pin-Id: x\r\n\r\n"), None);
        let h = b"NATS/1.0\r\nA: b\r\nNats-Pin-Id: p1\r\n\r\n";
        assert_eq!(header(h, "Nats-Pin-Id").as_deref(), Some("p1"));
        assert_eq!(header(h, "Other"), None);
        let t = ack_tokens("$JS.ACK.S.Q.2.17.30.1700.5").expect("nine tokens");
        assert_eq!(
            (t.deliveries, t.seq, t.consumer_seq, t.pending),
            (2, 17, 30, 5)
        );
    }
}
