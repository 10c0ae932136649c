//! Delivery: reading a consumer's stream through storage, sending what it
//! read to pull requests or the push subject, and the consumer's timer
//! (redeliveries, request expiries, heartbeats, flow control, inactivity).

use std::borrow::Cow;
use std::time::Duration;

use natrix_storage::Msg;
use natrix_storage::ops::{Completion, Done, Read, StorageOp};

use super::super::Pending;
use super::config::{AckPolicy, DeliverPolicy};
use super::{ConsumerId, INTEREST_POLL, Outstanding, READ_BATCH, READ_BYTES, partition};
use crate::server::timers::TimerKey;
use crate::server::{AccountId, Server};

/// Push flow control: a request goes out after this many bytes, and
/// delivery stalls at twice it while the request is unanswered.
const FLOW_CONTROL_BYTES: u64 = 1024 * 1024;

/// Where one delivery goes.
enum Target {
    Push,
    /// The front pull request.
    Pull,
}

impl Server {
    /// Reads for every consumer of `stream` that can deliver more (called
    /// when the stream's durable sequence moves).
    pub(crate) fn kick_consumers(&mut self, stream: super::super::StreamId) {
        let Some(s) = self.jetstream.streams.get(stream as usize) else {
            return;
        };
        if s.consumers.is_empty() {
            return;
        }
        let ids: Vec<ConsumerId> = s.consumers.values().copied().collect();
        for id in ids {
            self.kick_consumer(id);
            self.arm_consumer(id);
        }
    }

    /// How many messages consumer `id` could send now, at most one read's
    /// worth.
    fn demand(&mut self, id: ConsumerId) -> u64 {
        self.wanted(id).min(READ_BATCH as u64)
    }

    /// How many messages consumer `id` could send now: room under
    /// `max_ack_pending`, and what its pull requests ask for.
    fn wanted(&mut self, id: ConsumerId) -> u64 {
        loop {
            let c = &self.jetstream.consumers[id as usize];
            if c.paused_until_unix_nanos > self.now.unix_nanos {
                return 0;
            }
            // A redelivery adds nothing to the pending set: max_ack_pending
            // never holds it back (or a full set of unacknowledged
            // messages would wait forever).
            let room = if c.redeliver.is_empty() {
                self.room(id)
            } else {
                u64::MAX
            };
            if c.config.is_push() {
                if c.fc_outstanding.is_some() && c.fc_bytes >= 2 * FLOW_CONTROL_BYTES {
                    return 0;
                }
                if !self.push_interest(id) {
                    return 0;
                }
                self.jetstream.consumers[id as usize].last_activity = self.now.instant;
                return room;
            }
            let Some(front) = c.waiting.front() else {
                return 0;
            };
            let (account, reply) = (c.account, front.reply.clone());
            let bound = c.pending_bound(self.jetstream.streams[c.stream as usize].state.last_seq);
            let any = self.ignores_min_pending();
            let wanted: u64 = c
                .waiting
                .iter()
                .filter(|w| any || c.may_serve(w, bound))
                .map(|w| w.batch)
                .sum();
            if !self.has_client_interest(account, &reply) {
                // The requester is gone: nobody reads what it asked for.
                self.jetstream.consumers[id as usize].waiting.pop_front();
                continue;
            }
            return room.min(wanted);
        }
    }

    /// Room for new messages under consumer `id`'s `max_ack_pending`.
    fn room(&self, id: ConsumerId) -> u64 {
        // Planted bug (mutation suite only): max_ack_pending is ignored.
        if self.planted(crate::config::PlantedBug::IgnoreMaxAckPending) {
            return u64::MAX;
        }
        self.jetstream.consumers[id as usize].room()
    }

    /// Whether consumer `id` may send one more message of a batch already
    /// granted by [`Self::demand`]: no flow control stall, a pull request
    /// left.
    fn may_send(&self, id: ConsumerId) -> bool {
        let c = &self.jetstream.consumers[id as usize];
        if c.config.is_push() {
            !(c.fc_outstanding.is_some() && c.fc_bytes >= 2 * FLOW_CONTROL_BYTES)
        } else {
            !c.waiting.is_empty()
        }
    }

    /// Starts the next read of consumer `id` if it has demand and nothing
    /// in flight: a redelivery first, then what follows its cursor, never
    /// past the stream's durable sequence.
    pub(crate) fn kick_consumer(&mut self, id: ConsumerId) {
        loop {
            let Some(c) = self.jetstream.consumers.get(id as usize) else {
                return;
            };
            if !c.ready || c.reading {
                return;
            }
            if c.pacing.until.is_some_and(|t| t > self.now.instant) {
                return;
            }
            self.jetstream.consumers[id as usize].pacing.until = None;
            self.jetstream.consumers[id as usize].settle_partitions();
            let demand = self.demand(id);
            if demand == 0 {
                self.finish_no_wait(id, false);
                return;
            }
            let room = self.room(id);
            let c = &mut self.jetstream.consumers[id as usize];
            if room > 0
                && let Some(msg) = c.preloaded.pop_front()
            {
                let pending = c.preloaded.len() as u64 + c.num_pending;
                if c.parts.is_some() {
                    if let partition::Taken::Deliver = c.take(&msg, true) {
                        self.deliver_to_consumer(id, &msg, 1, pending);
                    }
                    continue;
                }
                if !self.pick_request(id, &msg, pending + 1) || self.paced(id, &msg) {
                    self.keep_unserved(id, msg);
                    return;
                }
                self.deliver_to_consumer(id, &msg, 1, pending);
                continue;
            }
            let key = c.key.clone();
            let redelivery = c.redeliver.iter().copied().find(|&s| c.redelivery_ready(s));
            if let Some(seq) = redelivery {
                c.reading = true;
                let op = self.next_op(Pending::ConsumerRedeliver {
                    consumer: id,
                    key: key.clone(),
                    seq,
                });
                self.storage(StorageOp::Read {
                    id: op,
                    stream: key.0,
                    read: Read::Seq(seq),
                });
                return;
            }
            let durable = self.jetstream.streams[c.stream as usize].durable_seq;
            if c.next_seq > durable {
                self.finish_no_wait(id, true);
                return;
            }
            // A partitioned group reads ahead only while what waits
            // leaves room.
            if c.parts.is_some() && c.room() == 0 {
                return;
            }
            self.read_next(id, demand as usize);
            return;
        }
    }

    /// Asks storage for up to `max_msgs` messages after consumer `id`'s
    /// cursor (and at most [`READ_BYTES`] of them).
    fn read_next(&mut self, id: ConsumerId, max_msgs: usize) {
        let c = &mut self.jetstream.consumers[id as usize];
        c.reading = true;
        let filters = c.config.filters();
        let (key, from_seq) = (c.key.clone(), c.next_seq);
        let op = self.next_op(Pending::ConsumerRead {
            consumer: id,
            key: key.clone(),
        });
        self.storage(StorageOp::ReadBatch {
            id: op,
            stream: key.0,
            from_seq,
            filters,
            max_msgs,
            max_bytes: READ_BYTES,
        });
    }

    /// A batch read for consumer `id` completed: deliver what is durable,
    /// while there is demand.
    pub(crate) fn consumer_read(&mut self, id: ConsumerId, c: &Completion) {
        let cons = &mut self.jetstream.consumers[id as usize];
        cons.reading = false;
        if std::mem::take(&mut cons.discard_read) {
            self.kick_consumer(id);
            return;
        }
        let (msgs, pending) = match &c.result {
            Ok(Done::Batch { msgs, pending }) => (msgs, *pending),
            Ok(_) | Err(_) => {
                // A failed read is tried again on the next kick.
                return;
            }
        };
        let durable = self.jetstream.streams[cons.stream as usize].durable_seq;
        // Only what is durable goes out; the rest is read again once synced.
        let durable_len = msgs
            .iter()
            .position(|m| m.seq > durable)
            .unwrap_or(msgs.len());
        let (batch, cut) = (&msgs[..durable_len], msgs.get(durable_len).map(|m| m.seq));
        cons.num_pending = pending;
        cons.counted_to = c.state.last_seq;
        let last = batch.last().map_or(0, |m| m.seq);
        // Nothing matches after the batch: the cursor may go to the end.
        let end = if pending == 0 {
            c.state.last_seq.min(durable)
        } else {
            last
        };
        cons.next_seq = match cut {
            Some(seq) => seq,
            None => cons.next_seq.max(last + 1).max(end + 1),
        };
        let stream = cons.stream;
        if cons.parts.is_some() {
            self.partition_read(id, batch, pending);
        } else {
            self.deliver_batch(id, batch, pending);
        }
        self.retention_changed(stream);
        self.kick_consumer(id);
        self.arm_consumer(id);
    }

    /// Delivers what consumer `id` holds, then `batch` (followed by
    /// `pending` more in the stream), while there is demand; what is left
    /// is held for the next pull.
    fn deliver_batch(&mut self, id: ConsumerId, batch: &[Msg], pending: u64) {
        // Interest is looked up once per batch, not per message: within
        // it, only flow control and the pull requests left can stop it.
        // (Redeliveries waiting lift `wanted`'s room; new messages still
        // need it.)
        let mut budget = self.wanted(id).min(self.room(id));
        while budget > 0 && self.may_send(id) {
            let c = &mut self.jetstream.consumers[id as usize];
            let Some(m) = c.preloaded.pop_front() else {
                break;
            };
            let after = c.preloaded.len() as u64 + batch.len() as u64 + pending;
            if !self.pick_request(id, &m, after + 1) || self.paced(id, &m) {
                self.keep_unserved(id, m);
                budget = 0;
                break;
            }
            self.deliver_to_consumer(id, &m, 1, after);
            budget -= 1;
        }
        let total = batch.len();
        let mut from = total;
        let mut misplaced = None;
        if self.jetstream.consumers[id as usize].preloaded.is_empty() {
            from = 0;
            for (i, m) in batch.iter().enumerate() {
                let c = &self.jetstream.consumers[id as usize];
                if !c.config.wants(m.subject.as_bytes()) {
                    continue;
                }
                let after = pending + (total - 1 - i) as u64;
                if budget == 0 || !self.may_send(id) {
                    break;
                }
                if !self.pick_request(id, m, after + 1) || self.paced(id, m) {
                    if self.misplaces_unserved(id) {
                        misplaced = Some(m.clone());
                        from = i + 1;
                    }
                    break;
                }
                self.deliver_to_consumer(id, m, 1, after);
                budget -= 1;
                from = i + 1;
            }
        }
        let c = &mut self.jetstream.consumers[id as usize];
        for m in &batch[from..] {
            if c.config.wants(m.subject.as_bytes()) {
                c.preloaded.push_back(m.clone());
            }
        }
        if let Some(m) = misplaced {
            self.keep_unserved(id, m);
        }
    }

    /// A partitioned group's read: each message is delivered to its
    /// partition's owner, or waits its turn.
    fn partition_read(&mut self, id: ConsumerId, batch: &[Msg], pending: u64) {
        let total = batch.len();
        for (i, m) in batch.iter().enumerate() {
            let c = &mut self.jetstream.consumers[id as usize];
            if !c.config.wants(m.subject.as_bytes()) || c.pending.contains_key(&m.seq) {
                continue; // (pending: read again after a restart, known)
            }
            if c.room() == 0 {
                // What is left is read again once there is room.
                c.next_seq = c.next_seq.min(m.seq);
                c.num_pending = pending + (total - i) as u64;
                return;
            }
            let after = pending + (total - 1 - i) as u64;
            if let partition::Taken::Deliver = c.take(m, true) {
                self.deliver_to_consumer(id, m, 1, after);
            }
        }
    }

    /// A redelivery read completed.
    pub(crate) fn consumer_redelivered(&mut self, id: ConsumerId, seq: u64, c: &Completion) {
        let cons = &mut self.jetstream.consumers[id as usize];
        cons.reading = false;
        match &c.result {
            Ok(Done::Read(Some(m))) => {
                if let Some(o) = cons.pending.get(&seq).copied()
                    && cons.redeliver.contains(&seq)
                    && cons.parts.is_some()
                {
                    if let partition::Taken::Deliver = cons.take(m, false) {
                        cons.redeliver.remove(&seq);
                        let pending = cons.num_pending;
                        self.deliver_to_consumer(id, m, o.deliveries + 1, pending);
                    }
                } else if let Some(o) = cons.pending.get(&seq).copied()
                    && cons.redeliver.contains(&seq)
                {
                    let pending = cons.num_pending + 1;
                    if self.demand(id) > 0 && self.pick_request(id, m, pending) {
                        let cons = &mut self.jetstream.consumers[id as usize];
                        cons.redeliver.remove(&seq);
                        let pending = cons.num_pending;
                        // Planted bug (mutation suite only): the redelivery is skipped.
                        if !self.planted(crate::config::PlantedBug::SkipOnRedelivery) {
                            self.deliver_to_consumer(id, m, o.deliveries + 1, pending);
                        }
                    }
                } else {
                    cons.redeliver.remove(&seq);
                }
            }
            Ok(Done::Read(None)) => {
                // Gone from the stream (deleted, purged, aged out): there
                // is nothing left to acknowledge.
                cons.redeliver.remove(&seq);
                cons.unpend(seq);
                cons.deadlines.clear(seq);
                cons.update_ack_floor();
                self.consumer_progressed(id);
            }
            _ => {}
        }
        self.kick_consumer(id);
        self.arm_consumer(id);
    }

    /// Sends `m` (its `deliveries`-th delivery) to the consumer's target.
    pub(crate) fn deliver_to_consumer(
        &mut self,
        id: ConsumerId,
        m: &Msg,
        deliveries: u64,
        pending: u64,
    ) {
        let now = self.now;
        let c = &mut self.jetstream.consumers[id as usize];
        let target = if c.config.is_push() {
            Target::Push
        } else {
            Target::Pull
        };
        c.delivered.consumer_seq += 1;
        let cseq = c.delivered.consumer_seq;
        if deliveries == 1 {
            c.delivered.stream_seq = c.delivered.stream_seq.max(m.seq);
        }
        c.last_active_unix_nanos = now.unix_nanos;
        // The ack subject and the target are written into buffers kept
        // between deliveries: a delivery allocates nothing of its own.
        let mut ack = std::mem::take(&mut self.scratch.ack);
        ack.clear();
        ack.extend_from_slice(b"$JS.ACK.");
        ack.extend_from_slice(c.stream_name.as_bytes());
        ack.push(b'.');
        ack.extend_from_slice(c.name.as_bytes());
        for n in [deliveries, m.seq, cseq, m.ts_unix_nanos, pending] {
            ack.push(b'.');
            ack.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
        }
        if c.acks() {
            c.pending.insert(
                m.seq,
                Outstanding {
                    consumer_seq: cseq,
                    deliveries,
                    delivered_unix_nanos: now.unix_nanos,
                },
            );

            let at = now.instant + c.redelivery_delay(deliveries);
            c.deadlines.set(m.seq, at);
        } else {
            c.ack_floor = c.delivered;
        }
        let headers_only = c.config.headers_only;
        let (headers, body): (Option<Cow<[u8]>>, &[u8]) = if headers_only {
            let mut h = match m.headers.strip_suffix(b"\r\n\r\n") {
                Some(lines) if !lines.is_empty() => [lines, b"\r\n"].concat(),
                _ => b"NATS/1.0\r\n".to_vec(),
            };
            h.extend_from_slice(format!("Nats-Msg-Size: {}\r\n\r\n", m.payload.len()).as_bytes());
            (Some(Cow::Owned(h)), &[][..])
        } else {
            let h = (!m.headers.is_empty()).then_some(Cow::Borrowed(&m.headers[..]));
            (h, &m.payload[..])
        };
        // The pinned client learns its pin from each message.
        let headers = match (&target, &c.pin) {
            (Target::Pull, Some(pin)) => Some(Cow::Owned(with_header(
                headers.as_deref(),
                "Nats-Pin-Id",
                &pin.id,
            ))),
            _ => headers,
        };
        let account = c.account;
        let mut to = std::mem::take(&mut self.scratch.to);
        to.clear();
        match target {
            Target::Push => {
                c.last_sent = now.instant;
                c.fc_bytes += m.size_bytes();
                to.extend_from_slice(c.config.deliver_subject.as_bytes());
            }
            Target::Pull => {
                let front = c
                    .waiting
                    .front_mut()
                    .expect("a pull delivery has a request");
                front.batch -= 1;
                front.delivered += 1;
                if let Some(hb) = front.heartbeat {
                    front.next_heartbeat = Some(now.instant + hb);
                }
                if front.limited_bytes {
                    front.max_bytes = front.max_bytes.saturating_sub(m.size_bytes());
                }
                to.extend_from_slice(&front.reply);
                let member = front.member;
                if let Some(parts) = &mut c.parts {
                    parts.holder.insert(m.seq, member);
                    if let Some(holder) = parts.members.get_mut(&member) {
                        holder.last_request = now.instant;
                    }
                }
                c.requeue_front();
            }
        }
        self.publish_shown(
            account,
            &to,
            Some(&ack),
            headers.as_deref(),
            body,
            Some(m.subject.as_bytes()),
        );
        self.scratch.ack = ack;
        self.scratch.to = to;
        self.consumer_progressed(id);
        if matches!(target, Target::Push) {
            self.maybe_flow_control(id);
        }
    }

    /// Push flow control: asks the subscriber to confirm it keeps up.
    fn maybe_flow_control(&mut self, id: ConsumerId) {
        let c = &mut self.jetstream.consumers[id as usize];
        if !c.config.flow_control || c.fc_outstanding.is_some() || c.fc_bytes < FLOW_CONTROL_BYTES {
            return;
        }
        c.fc_sent += 1;
        let reply = format!("$JS.FC.{}.{}.{}", c.stream_name, c.name, c.fc_sent);
        c.fc_outstanding = Some(reply.clone());
        let (account, to) = (c.account, c.config.deliver_subject.clone());
        let headers = b"NATS/1.0 100 FlowControl Request\r\n\r\n";
        self.publish_shown(
            account,
            to.as_bytes(),
            Some(reply.as_bytes()),
            Some(headers),
            b"",
            None,
        );
    }

    /// A flow control reply: delivery goes on.
    pub(crate) fn flow_control_reply(&mut self, id: ConsumerId, subject: &[u8]) {
        let Some(c) = self.jetstream.consumers.get_mut(id as usize) else {
            return;
        };
        if c.fc_outstanding.as_deref().map(str::as_bytes) == Some(subject) {
            c.fc_outstanding = None;
            c.fc_bytes = 0;
            self.kick_consumer(id);
        }
    }

    /// A status message to a pull request's inbox (a header-only message),
    /// with the pending counts when given.
    pub(crate) fn pull_status(
        &mut self,
        account: AccountId,
        reply: &[u8],
        status: &str,
        pending: Option<(u64, u64)>,
    ) {
        let mut h = format!("NATS/1.0 {status}\r\n");
        if let Some((msgs, bytes)) = pending {
            h.push_str(&format!(
                "Nats-Pending-Messages: {msgs}\r\nNats-Pending-Bytes: {bytes}\r\n"
            ));
        }
        h.push_str("\r\n");
        self.publish_shown(account, reply, None, Some(h.as_bytes()), b"", None);
    }

    /// `503` with `Nats-Subject` to `reply`, as a client that asked for
    /// no-responder statuses gets when nobody subscribes to `subject`.
    pub(crate) fn no_responders_to(
        &mut self,
        from: Option<crate::server::ConnId>,
        reply: &[u8],
        subject: &str,
    ) {
        let Some(id) = from else {
            return;
        };
        let wants = self
            .conns
            .get(id.0)
            .is_some_and(|c| c.opts.no_responders && c.headers && !c.closing);
        // To the requester alone, as nats-server answers a request nobody
        // took.
        if wants && let Some(sid) = self.own_sub_for_reply(id, reply) {
            let status = format!("NATS/1.0 503\r\nNats-Subject: {subject}\r\n\r\n");
            let c = &mut self.conns[id.0];
            crate::proto::encode::status(&mut c.out, reply, &sid, status.as_bytes());
            self.mark_dirty(id);
        }
    }

    /// Ends the no-wait requests that nothing more can serve now: the
    /// cursor is at the stream's end (`at_end`) or the consumer has no
    /// room; `404 No Messages` when nothing was sent to them.
    fn finish_no_wait(&mut self, id: ConsumerId, at_end: bool) {
        let Some(c) = self.jetstream.consumers.get_mut(id as usize) else {
            return;
        };
        // Only at the stream's end: a request that finds messages while
        // max_ack_pending is reached waits for an ack.
        if c.reading || !c.redeliver.is_empty() || !c.preloaded.is_empty() || !at_end {
            return;
        }
        let account = c.account;
        let mut done = Vec::new();
        c.waiting.retain(|w| {
            if w.no_wait {
                done.push(w.clone());
                false
            } else {
                true
            }
        });
        for w in done {
            self.pull_status(account, &w.reply, "404 No Messages", None);
        }
    }

    /// `100 Idle Heartbeat` to `to`, with the last delivered sequences
    /// (and the unanswered flow control request of a stalled push).
    fn idle_heartbeat(&mut self, id: ConsumerId, to: &[u8], stalled: Option<&str>) {
        let c = &self.jetstream.consumers[id as usize];
        let mut h = format!(
            "NATS/1.0 100 Idle Heartbeat\r\nNats-Last-Consumer: {}\r\nNats-Last-Stream: {}\r\n",
            c.delivered.consumer_seq, c.delivered.stream_seq
        );
        if let Some(fc) = stalled {
            h.push_str(&format!("Nats-Consumer-Stalled: {fc}\r\n"));
        }
        h.push_str("\r\n");
        let account = c.account;
        self.publish_shown(account, to, None, Some(h.as_bytes()), b"", None);
    }

    /// Whether a push consumer's subject has a subscriber it delivers to:
    /// a member of its `deliver_group`, or a plain subscriber when it has
    /// none (nats-server delivers to nothing else).
    pub(crate) fn push_interest(&mut self, id: ConsumerId) -> bool {
        let c = &self.jetstream.consumers[id as usize];
        let (account, to, group) = (
            c.account,
            c.config.deliver_subject.clone(),
            c.config.deliver_group.clone(),
        );
        self.client_interest(account, to.as_bytes(), Some(&group))
    }

    /// Consumer `id`'s timer: redeliveries due, pull requests expired,
    /// heartbeats, interest, inactivity.
    pub(crate) fn consumer_timer(&mut self, id: ConsumerId) {
        // Planted bug (mutation suite only): max_deliver is ignored.
        let unlimited = self.planted(crate::config::PlantedBug::IgnoreMaxDeliver);
        let Some(c) = self.jetstream.consumers.get_mut(id as usize) else {
            return;
        };
        let now = self.now;
        // Redeliveries due (or dropped past max_deliver).
        let mut maxed = Vec::new();
        while let Some(seq) = c.deadlines.pop_due(now.instant) {
            let Some(o) = c.pending.get(&seq).copied() else {
                continue;
            };
            if !unlimited && c.config.max_deliver > 0 && o.deliveries >= c.config.max_deliver as u64
            {
                c.unpend(seq);
                maxed.push((seq, o.deliveries));
            } else {
                c.redeliver.insert(seq);
            }
        }
        if !maxed.is_empty() {
            c.update_ack_floor();
        }
        // Pull requests: expiries and heartbeats.
        let account = c.account;
        let mut expired = Vec::new();
        let mut beats = Vec::new();

        c.waiting.retain_mut(|w| {
            if w.expires.is_some_and(|e| e <= now.instant) {
                expired.push(w.clone());
                return false;
            }
            if let (Some(hb), Some(next)) = (w.heartbeat, w.next_heartbeat)
                && next <= now.instant
            {
                w.next_heartbeat = Some(now.instant + hb);
                beats.push(w.reply.clone());
            }
            true
        });
        let push_beat = match (c.config.is_push(), c.config.idle_heartbeat) {
            (true, hb) if hb > 0 => {
                let every = Duration::from_nanos(hb as u64);
                (now.instant >= c.last_sent + every).then(|| {
                    c.last_sent = now.instant;
                    (c.config.deliver_subject.clone(), c.fc_outstanding.clone())
                })
            }
            _ => None,
        };
        for (seq, deliveries) in maxed {
            self.max_deliveries_advisory(id, seq, deliveries);
            self.consumer_changed(id);
        }
        for w in expired {
            self.pull_status(
                account,
                &w.reply,
                "408 Request Timeout",
                Some((w.batch, w.max_bytes)),
            );
        }
        for reply in beats {
            self.idle_heartbeat(id, &reply, None);
        }
        if let Some((to, stalled)) = push_beat
            && self.push_interest(id)
        {
            self.idle_heartbeat(id, to.as_bytes(), stalled.as_deref());
        }
        if self.jetstream.consumers[id as usize]
            .save_at
            .is_some_and(|at| at <= now.instant)
        {
            self.consumer_changed(id);
        }
        self.partition_members_check(id);
        let c = &self.jetstream.consumers[id as usize];
        if let Some(pin) = c.pin.as_ref().filter(|p| p.expires <= now.instant) {
            let group = pin.group.clone();
            self.unpin(id, &group, "timeout");
        }
        if self.consumer_inactive(id) {
            let c = &self.jetstream.consumers[id as usize];
            let (account, stream, name) = (c.account, c.stream_name.clone(), c.name.clone());
            self.delete_consumer(id, Pending::Quiet);
            self.consumer_advisory(account, &stream, &name, "delete");
            return;
        }
        self.kick_consumer(id);
        self.arm_consumer(id);
    }

    /// Whether consumer `id` has had no interest for its inactive
    /// threshold (and goes).
    fn consumer_inactive(&mut self, id: ConsumerId) -> bool {
        let c = &self.jetstream.consumers[id as usize];
        let Some(threshold) = c.inactive_threshold() else {
            return false;
        };
        let active = if c.config.is_push() {
            self.push_interest(id)
        } else {
            !c.waiting.is_empty()
        };
        let now = self.now.instant;
        let c = &mut self.jetstream.consumers[id as usize];
        if active {
            c.last_activity = now;
            return false;
        }
        now >= c.last_activity + threshold
    }

    /// Arms consumer `id`'s timer for the earliest thing it waits for.
    pub(crate) fn arm_consumer(&mut self, id: ConsumerId) {
        let Some(c) = self.jetstream.consumers.get(id as usize) else {
            return;
        };
        let now = self.now.instant;
        let mut at: Option<crate::time::Instant> = c.deadlines.first();
        let mut earliest = |t: crate::time::Instant| {
            at = Some(at.map_or(t, |a| a.min(t)));
        };
        for w in &c.waiting {
            if let Some(e) = w.expires {
                earliest(e);
            }
            if let Some(h) = w.next_heartbeat {
                earliest(h);
            }
        }
        if c.config.is_push() {
            if c.config.idle_heartbeat > 0 {
                earliest(c.last_sent + Duration::from_nanos(c.config.idle_heartbeat as u64));
            }
            // Interest is not announced to consumers: look again soon.
            earliest(now + INTEREST_POLL);
        }
        if let Some(t) = c.inactive_threshold() {
            earliest(c.last_activity + t);
        }
        if let Some(t) = c.save_at {
            earliest(t);
        }
        if let Some(pin) = &c.pin {
            earliest(pin.expires);
        }
        if let Some(t) = c.pacing.until.filter(|&t| t > now) {
            earliest(t);
        }
        // Members' connections are not announced to consumers either.
        if c.parts.as_ref().is_some_and(|p| !p.members.is_empty()) {
            earliest(now + INTEREST_POLL);
        }
        if c.paused_until_unix_nanos > self.now.unix_nanos {
            let left = c.paused_until_unix_nanos - self.now.unix_nanos;
            earliest(now + Duration::from_nanos(left));
        }
        self.timers.set(TimerKey::Consumer(id), at);
    }
}

impl Server {
    /// Planted bug (mutation suite only, `DeliverUndurable`): hands the
    /// message just queued for storage on `stream` to the consumers
    /// waiting for it, before it is durable.
    pub(crate) fn deliver_undurable(&mut self, stream: super::super::StreamId) {
        let s = &self.jetstream.streams[stream as usize];
        let Some(m) = s.queued.last().cloned() else {
            return;
        };
        let ids: Vec<ConsumerId> = s.consumers.values().copied().collect();
        for id in ids {
            let c = &self.jetstream.consumers[id as usize];
            let waiting = c.ready && !c.reading && c.next_seq == m.seq;
            if !waiting || !c.config.wants(m.subject.as_bytes()) || self.demand(id) == 0 {
                continue;
            }
            if self.pick_request(id, &m, 1) {
                self.deliver_to_consumer(id, &m, 1, 0);
                self.jetstream.consumers[id as usize].next_seq = m.seq + 1;
            }
        }
    }
}

impl super::Consumer {
    /// How long it may go without interest before it is deleted.
    pub(crate) fn inactive_threshold(&self) -> Option<Duration> {
        (self.config.inactive_threshold > 0)
            .then(|| Duration::from_nanos(self.config.inactive_threshold as u64))
    }

    /// The deliver policy's first stream sequence, from the stream's
    /// first and last sequences.
    pub(crate) fn start_seq(&self, first_seq: u64, last_seq: u64) -> u64 {
        match self.config.deliver_policy {
            // (By start time is found by a read first.)
            DeliverPolicy::All | DeliverPolicy::ByStartTime => first_seq.max(1),
            DeliverPolicy::New => last_seq + 1,
            DeliverPolicy::ByStartSequence => self.config.opt_start_seq.max(first_seq).max(1),
            // Found by a read first.
            DeliverPolicy::Last | DeliverPolicy::LastPerSubject => last_seq + 1,
        }
    }

    pub(crate) fn is_ack_all(&self) -> bool {
        self.config.ack_policy == AckPolicy::All
    }
}

/// Header block `headers` (or none) with `name: value` added last.
fn with_header(headers: Option<&[u8]>, name: &str, value: &str) -> Vec<u8> {
    let mut h = match headers.and_then(|h| h.strip_suffix(b"\r\n\r\n")) {
        Some(lines) if !lines.is_empty() => lines.to_vec(),
        _ => b"NATS/1.0".to_vec(),
    };
    h.extend_from_slice(format!("\r\n{name}: {value}\r\n\r\n").as_bytes());
    h
}
