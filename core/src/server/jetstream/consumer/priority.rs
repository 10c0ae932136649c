//! Priority groups: which of a pull consumer's waiting requests gets the
//! next message, as nats-server 2.11+ chooses (`priority_policy`):
//!
//! - none: the requests in turn, one message each;
//! - `overflow`: a request with `min_pending` or `min_ack_pending` is
//!   served only once the consumer has that many messages pending or
//!   unacknowledged (a standby that helps only when the main workers fall
//!   behind);
//! - `pinned_client`: one client at a time. The first request served gets
//!   a pin id (`Nats-Pin-Id` on every message it receives); requests
//!   without it wait, requests with another one are told `423`. The pin
//!   goes after `priority_timeout` without a request carrying it, or on
//!   `CONSUMER.UNPIN`;
//! - `prioritized`: the lowest `priority` (0 to 9) first, in turn within
//!   one priority.

use natrix_storage::Msg;
use serde::{Deserialize, Serialize};

use super::super::api::go_json_fields;
use super::super::error::ApiError;
use super::config::{INVALID_GROUP_NAME, PriorityPolicy, is_valid_group_name};
use super::{ConsumerId, Pin, PullGroup, PullRequest};
use crate::config::PlantedBug;
use crate::server::{AccountId, Server};

impl super::Consumer {
    /// Whether request `w` can be served at all now, with `pending`
    /// messages (an upper bound) left to deliver. A request with a stale
    /// pin counts: serving is what tells it so.
    pub(crate) fn may_serve(&self, w: &PullRequest, pending: u64) -> bool {
        match self.config.priority_policy {
            PriorityPolicy::PinnedClient => match &self.pin {
                // Another client's pin: only requests with a pin id (the
                // right one, or a stale one to be told so).
                Some(_) => !w.pin_id().is_empty(),
                None => true,
            },
            PriorityPolicy::Overflow => self.overflowing(w, pending),
            PriorityPolicy::None | PriorityPolicy::Prioritized => true,
        }
    }

    /// Overflow: whether `w`'s thresholds are reached (or it sets none).
    fn overflowing(&self, w: &PullRequest, pending: u64) -> bool {
        let Some(g) = &w.group else {
            return true;
        };
        if g.min_pending <= 0 && g.min_ack_pending <= 0 {
            return true;
        }
        (g.min_pending > 0 && g.min_pending as u64 <= pending)
            || (g.min_ack_pending > 0 && g.min_ack_pending as u64 <= self.pending.len() as u64)
    }

    /// At most how many messages are left to deliver: the last count,
    /// what the stream gained since, and what waits for redelivery.
    pub(crate) fn pending_bound(&self, stream_last_seq: u64) -> u64 {
        self.num_pending
            + self.preloaded.len() as u64
            + self.redeliver.len() as u64
            + stream_last_seq.saturating_sub(self.counted_to)
    }

    /// Queues a new pull request: prioritized consumers keep the queue
    /// sorted by priority (arrival order within one), others append.
    pub(crate) fn queue_request(&mut self, w: PullRequest) {
        if self.config.priority_policy != PriorityPolicy::Prioritized {
            self.waiting.push_back(w);
            return;
        }
        let p = w.priority();
        let at = self
            .waiting
            .iter()
            .position(|q| q.priority() > p)
            .unwrap_or(self.waiting.len());
        self.waiting.insert(at, w);
    }

    /// After the front request got a message: it leaves when its batch is
    /// done, else takes its turn again behind the others (of its
    /// priority, for prioritized consumers).
    pub(crate) fn requeue_front(&mut self) {
        let Some(front) = self.waiting.front() else {
            return;
        };
        if front.batch == 0 {
            self.waiting.pop_front();
            return;
        }
        if self.waiting.len() > 1 {
            let w = self.waiting.pop_front().expect("front exists");
            self.queue_request(w);
        }
    }
}

impl Server {
    /// Brings the pull request that gets `m` next to the front of
    /// consumer `id`'s queue (nats-server's `nextWaiting`); `pending` is
    /// how many messages are left to deliver, `m` included. Requests not
    /// served now go to the back; a request with a stale pin gets `423
    /// Nats-Wrong-Pin-Id`, one whose `max_bytes` cannot take `m` ends
    /// (409). The first request of a pinned-client consumer without a pin
    /// gets one. False when no request takes `m`; push consumers always
    /// do.
    pub(crate) fn pick_request(&mut self, id: ConsumerId, m: &Msg, pending: u64) -> bool {
        // Planted bugs (mutation suite only): stale pins and `min_pending`
        // are not enforced.
        let mismatch_served = self.planted(PlantedBug::PinMismatchServed);
        let ignore_min_pending = self.planted(PlantedBug::IgnoreMinPending);
        let mut cycled = 0;
        loop {
            let c = &mut self.jetstream.consumers[id as usize];
            if c.config.is_push() {
                return true;
            }
            let Some(front) = c.waiting.front() else {
                return false;
            };
            let account = c.account;
            let mut pinned_now = false;
            match c.config.priority_policy {
                PriorityPolicy::PinnedClient => {
                    let stale = match &c.pin {
                        Some(pin) if front.pin_id() == pin.id => false,
                        Some(_) if front.pin_id().is_empty() => {
                            // Another client holds the pin: wait.
                            if !cycle(&mut c.waiting, &mut cycled) {
                                return false;
                            }
                            continue;
                        }
                        Some(_) => true,
                        None => !front.pin_id().is_empty(),
                    };
                    if stale && !mismatch_served {
                        let w = c.waiting.pop_front().expect("front exists");
                        self.pull_status(
                            account,
                            &w.reply,
                            "423 Nats-Wrong-Pin-Id",
                            Some((w.batch, w.max_bytes)),
                        );
                        continue;
                    }
                    if c.pin.is_none() {
                        pinned_now = self.pin_front(id);
                    }
                }
                PriorityPolicy::Overflow => {
                    if !c.overflowing(front, pending) && !ignore_min_pending {
                        if !cycle(&mut c.waiting, &mut cycled) {
                            return false;
                        }
                        continue;
                    }
                }
                PriorityPolicy::None | PriorityPolicy::Prioritized => {}
            }
            let c = &mut self.jetstream.consumers[id as usize];
            let front = c.waiting.front().expect("front exists");
            if !front.limited_bytes || m.size_bytes() <= front.max_bytes {
                return true;
            }
            let w = c.waiting.pop_front().expect("front exists");
            if pinned_now {
                c.pin = None;
            }
            let status = if w.delivered == 0 {
                "409 Message Size Exceeds MaxBytes"
            } else {
                "409 Batch Completed"
            };
            self.pull_status(account, &w.reply, status, Some((w.batch, w.max_bytes)));
        }
    }

    /// Why pull request fields `g` are refused by consumer `id`, in
    /// nats-server's words (a status line), if they are. A request with
    /// the current pin keeps it alive.
    pub(crate) fn group_refusal(&mut self, id: ConsumerId, g: &PullGroup) -> Option<String> {
        let now = self.now.instant;
        // Planted bugs (mutation suite only).
        let mismatch_served = self.planted(PlantedBug::PinMismatchServed);
        let renews = !self.planted(PlantedBug::PinNotRenewed);
        let c = &mut self.jetstream.consumers[id as usize];
        let policy = c.config.priority_policy;
        let refusal = if (g.min_pending != 0 || g.min_ack_pending != 0)
            && policy != PriorityPolicy::Overflow
        {
            "400 Bad Request - Not a Overflow Priority consumer"
        } else if !g.id.is_empty() && policy != PriorityPolicy::PinnedClient {
            "400 Bad Request - Not a Pinned Client Priority consumer"
        } else if !(0..=9).contains(&g.priority) {
            "400 Bad Request - Priority must be between 0 and 9"
        } else if policy == PriorityPolicy::None {
            return None;
        } else if g.group.is_empty() {
            "400 Bad Request - Priority Group missing"
        } else if !c.config.priority_groups.contains(&g.group) {
            "400 Bad Request - Invalid Priority Group"
        } else {
            let ttl = std::time::Duration::from_nanos(c.config.priority_timeout.max(0) as u64);
            match &mut c.pin {
                Some(pin) if pin.id == g.id => {
                    if renews {
                        pin.expires = now + ttl;
                    }
                    return None;
                }
                Some(_) if !g.id.is_empty() && !mismatch_served => "423 Nats-Pin-Id mismatch",
                _ => return None,
            }
        };
        Some(refusal.to_string())
    }

    /// Pins the front request's client (it has a group): a new pin id,
    /// the `PINNED` advisory. False when the request names no group.
    fn pin_front(&mut self, id: ConsumerId) -> bool {
        let pin_id = self.event_id();
        let now = self.now;
        let c = &mut self.jetstream.consumers[id as usize];
        let Some(group) = c.waiting.front_mut().and_then(|w| w.group.as_mut()) else {
            return false;
        };
        if group.group.is_empty() {
            return false;
        }
        group.id = pin_id.clone();
        let ttl = std::time::Duration::from_nanos(c.config.priority_timeout.max(0) as u64);
        let pin = Pin {
            id: pin_id,
            group: group.group.clone(),
            since_unix_nanos: now.unix_nanos,
            expires: now.instant + ttl,
        };
        let group = pin.group.clone();
        c.pin = Some(pin);
        self.pin_advisory(id, &group, None);
        self.arm_consumer(id);
        true
    }

    /// Drops consumer `id`'s pin (`reason`: `timeout` or `admin`), with
    /// the `UNPINNED` advisory; waiting requests get served again.
    pub(crate) fn unpin(&mut self, id: ConsumerId, group: &str, reason: &str) {
        let c = &mut self.jetstream.consumers[id as usize];
        c.pin = None;
        self.pin_advisory(id, group, Some(reason));
        self.kick_consumer(id);
        self.arm_consumer(id);
    }

    /// `$JS.EVENT.ADVISORY.CONSUMER.PINNED.<s>.<c>` (with the new pin id),
    /// or `UNPINNED` with a reason.
    fn pin_advisory(&mut self, id: ConsumerId, group: &str, unpinned: Option<&str>) {
        #[derive(Serialize)]
        struct Body<'a> {
            account: &'a str,
            stream: &'a str,
            consumer: &'a str,
            #[serde(skip_serializing_if = "str::is_empty")]
            domain: &'a str,
            group: &'a str,
            #[serde(skip_serializing_if = "Option::is_none")]
            pinned_id: Option<&'a str>,
            #[serde(skip_serializing_if = "Option::is_none")]
            reason: Option<&'a str>,
        }
        let c = &self.jetstream.consumers[id as usize];
        let (account, stream, name) = (c.account, c.stream_name.clone(), c.name.clone());
        let pinned_id = c.pin.as_ref().map(|p| p.id.clone()).unwrap_or_default();
        let account_name = self.accounts[account.0 as usize].name.clone();
        let domain = self.domain();
        let (event, kind) = match unpinned {
            None => ("PINNED", "consumer_group_pinned"),
            Some(_) => ("UNPINNED", "consumer_group_unpinned"),
        };
        let subject = format!("$JS.EVENT.ADVISORY.CONSUMER.{event}.{stream}.{name}");
        let body = Body {
            account: &account_name,
            stream: &stream,
            consumer: &name,
            domain: &domain,
            pinned_id: unpinned.is_none().then_some(pinned_id.as_str()),
            group,
            reason: unpinned,
        };
        self.advise(account, &subject, kind, body);
    }
}

impl Server {
    /// Keeps message `m`, which no request of consumer `id` may take
    /// yet, at the front of what it read: it goes first once one may.
    pub(crate) fn keep_unserved(&mut self, id: ConsumerId, m: Msg) {
        // Planted bugs (mutation suite only): a priority-group consumer
        // drops the message, or puts it behind the others.
        let grouped =
            self.jetstream.consumers[id as usize].config.priority_policy != PriorityPolicy::None;
        if grouped && self.planted(PlantedBug::DropUnservable) {
            return;
        }
        let to_back = grouped && self.planted(PlantedBug::UnservableToBack);
        let c = &mut self.jetstream.consumers[id as usize];
        if to_back {
            c.preloaded.push_back(m);
        } else {
            c.preloaded.push_front(m);
        }
    }

    /// Whether a planted bug (mutation suite only) misplaces the messages
    /// of consumer `id` no request may take yet.
    pub(crate) fn misplaces_unserved(&self, id: ConsumerId) -> bool {
        self.jetstream.consumers[id as usize].config.priority_policy != PriorityPolicy::None
            && (self.planted(PlantedBug::DropUnservable)
                || self.planted(PlantedBug::UnservableToBack))
    }

    /// Planted bug (mutation suite only, `IgnoreMinPending`): whether
    /// requests count as servable whatever their `min_pending`.
    pub(crate) fn ignores_min_pending(&self) -> bool {
        self.planted(PlantedBug::IgnoreMinPending)
    }
}

/// Moves the front request to the back: it waits. False once every
/// request has had its turn (nobody can take the message).
fn cycle(waiting: &mut std::collections::VecDeque<PullRequest>, cycled: &mut usize) -> bool {
    if let Some(w) = waiting.pop_front() {
        waiting.push_back(w);
    }
    *cycled += 1;
    *cycled < waiting.len()
}

impl Server {
    /// `CONSUMER.UNPIN.<stream>.<consumer>` with `{"group":…}`: the pinned
    /// client loses its pin (nats-server answers even when nothing was
    /// pinned, with the `UNPINNED` advisory, reason `admin`).
    pub(crate) fn consumer_unpin(
        &mut self,
        account: AccountId,
        reply: &[u8],
        stream: &str,
        name: &str,
        body: &[u8],
    ) {
        const KIND: &str = "consumer_unpin";
        #[derive(Deserialize, Default)]
        #[serde(default)]
        struct Request {
            group: String,
        }
        let req: Request = match go_json_fields(body, self.api_fields()) {
            Ok(r) => r,
            Err(e) => return self.fail(account, reply, KIND, &e),
        };
        if req.group.is_empty() {
            let e = ApiError::new(
                400,
                10025,
                "invalid JSON: consumer group not specified".into(),
            );
            return self.fail(account, reply, KIND, &e);
        }
        if !is_valid_group_name(&req.group) {
            let e = ApiError::new(400, 10162, INVALID_GROUP_NAME.into());
            return self.fail(account, reply, KIND, &e);
        }
        if self.stream_id(account, stream).is_none() {
            return self.fail(account, reply, KIND, &ApiError::stream_not_found());
        }
        let Some(id) = self.consumer_id(account, stream, name) else {
            return self.fail(account, reply, KIND, &ApiError::consumer_not_found());
        };
        let c = &self.jetstream.consumers[id as usize];
        if !c.config.priority_groups.contains(&req.group) {
            let e = ApiError::new(
                400,
                10160,
                "Provided priority group does not exist for this consumer".into(),
            );
            return self.fail(account, reply, KIND, &e);
        }
        self.unpin(id, &req.group, "admin");
        #[derive(Serialize)]
        struct Empty {}
        self.api_respond(account, reply, KIND, None, Empty {});
    }
}
