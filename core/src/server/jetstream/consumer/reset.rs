//! `CONSUMER.RESET.<stream>.<consumer>` (nats-server 2.14): moves a
//! consumer's cursor back (or forward) to a stream sequence, forgetting
//! what was delivered and not acknowledged; without a sequence, back to
//! just after its ack floor, so that everything unacknowledged comes
//! again in order.

use serde::{Deserialize, Serialize};

use natrix_storage::ops::{Completion, Done, Read, StorageOp};

use super::super::Pending;
use super::super::error::ApiError;
use super::api::{AfterCount, ConsumerInfo};
use super::config::DeliverPolicy;
use super::{ConsumerId, Seqs};
use crate::server::{AccountId, Server};

const KIND: &str = "consumer_reset";

impl Server {
    pub(crate) fn consumer_reset(
        &mut self,
        account: AccountId,
        reply: &[u8],
        stream: &str,
        name: &str,
        body: &[u8],
    ) {
        #[derive(Deserialize, Default)]
        #[serde(default)]
        struct Request {
            seq: u64,
        }
        // The consumer answers its resets: without it, nobody does.
        let Some(id) = self.consumer_id(account, stream, name) else {
            return;
        };
        let req: Request = match self.parse(body) {
            Ok(r) => r,
            Err(e) => return self.reset_failed(account, reply, &e),
        };
        let c = &self.jetstream.consumers[id as usize];
        if c.config.deliver_policy == DeliverPolicy::ByStartTime && req.seq > 0 {
            // Not below the start time's sequence, which the store knows.
            let (key, unix_nanos) = (c.key.clone(), c.config.start_time().unwrap_or(0));
            let op = self.next_op(Pending::ConsumerAtTime {
                consumer: id,
                key: key.clone(),
                reply: reply.into(),
                reset: Some(req.seq),
            });
            self.storage(StorageOp::Read {
                id: op,
                stream: key.0,
                read: Read::AtTime { unix_nanos },
            });
            return;
        }
        match c.reset_target(req.seq) {
            Ok(seq) => self.reset_to(id, reply, seq),
            Err(why) => self.reset_refused(account, reply, why),
        }
    }

    /// A reset of a by-start-time consumer to `seq`, once the store said
    /// where its start time falls.
    pub(crate) fn reset_past_start_time(
        &mut self,
        id: ConsumerId,
        reply: &[u8],
        seq: u64,
        done: &Completion,
    ) {
        let c = &self.jetstream.consumers[id as usize];
        let start = match &done.result {
            Ok(Done::Read(Some(m))) => m.seq,
            _ => self.jetstream.streams[c.stream as usize].last_seq + 1,
        };
        if seq < start {
            return self.reset_refused(c.account, reply, "below start time");
        }
        self.reset_to(id, reply, seq);
    }

    fn reset_refused(&mut self, account: AccountId, reply: &[u8], why: &str) {
        let e = ApiError::new(400, 10204, format!("invalid reset: {why}"));
        self.reset_failed(account, reply, &e);
    }

    /// Moves consumer `id`'s cursor to `seq` and answers `reply`.
    fn reset_to(&mut self, id: ConsumerId, reply: &[u8], seq: u64) {
        let c = &mut self.jetstream.consumers[id as usize];
        c.pending.clear();
        c.deadlines = Default::default();
        c.redeliver.clear();
        c.preloaded.clear();
        c.clear_partitions();
        // A read in flight was for the old position.
        c.discard_read = c.reading;
        c.next_seq = seq;
        c.delivered = Seqs {
            consumer_seq: 0,
            stream_seq: seq - 1,
        };
        c.ack_floor = c.delivered;
        c.last_active_unix_nanos = 0;
        c.last_ack_unix_nanos = 0;
        let stream = c.stream;
        self.consumer_changed(id);
        self.retention_changed(stream);
        let reply = reply.into();
        self.count_pending(id, AfterCount::Reset { reply, seq });
    }

    /// A refused reset: the error, and `reset_seq` 0 as nats-server adds.
    fn reset_failed(&mut self, account: AccountId, reply: &[u8], e: &ApiError) {
        #[derive(Serialize)]
        struct Body {
            reset_seq: u64,
        }
        self.api_respond(account, reply, KIND, Some(e), Body { reset_seq: 0 });
    }

    /// The reset is done and counted: the consumer's info and where it
    /// now starts.
    pub(crate) fn respond_reset(&mut self, id: ConsumerId, reply: &[u8], seq: u64) {
        #[derive(Serialize)]
        struct Body {
            #[serde(flatten)]
            info: ConsumerInfo,
            reset_seq: u64,
        }
        let account = self.jetstream.consumers[id as usize].account;
        let info = self.consumer_info_json(id);
        let body = Body {
            info,
            reset_seq: seq,
        };
        self.api_respond(account, reply, KIND, None, body);
        self.kick_consumer(id);
        self.arm_consumer(id);
    }
}

impl super::Consumer {
    /// Where a reset to `seq` (0: the ack floor) puts the cursor, or why
    /// it may not (nats-server's rules: any sequence for deliver all, not
    /// below the start for by-start-sequence (and by-start-time, checked
    /// against the store), none for the others).
    fn reset_target(&self, seq: u64) -> Result<u64, &'static str> {
        let seq = if seq == 0 {
            self.ack_floor.stream_seq + 1
        } else {
            match self.config.deliver_policy {
                DeliverPolicy::All => seq,
                DeliverPolicy::ByStartSequence if seq < self.config.opt_start_seq => {
                    return Err("below start seq");
                }
                DeliverPolicy::ByStartSequence => seq,
                _ => return Err("not allowed"),
            }
        };
        Ok(seq.max(1))
    }
}
