//! Interest and work-queue retention: a stream that keeps a message only
//! while a consumer still needs it.
//!
//! - **Work queue.** A message goes once a consumer acknowledges it (the
//!   consumers' filters never overlap, so no other one wants it). One
//!   that no consumer matches stays until one does.
//! - **Interest.** A message goes once no consumer needs it: every
//!   consumer has either passed it without it matching, or delivered and
//!   had it acknowledged. Below the lowest point any consumer still needs
//!   (its first pending message, or its cursor) everything goes with one
//!   purge; an acknowledged message above it goes on its own once no
//!   other consumer needs it. With no consumer at all, nothing is kept.
//!
//! And whatever the retention, when a stream's first sequence moves up
//! (a purge, limits, max age), its consumers skip what is gone.

use super::super::StreamId;
use super::super::config::Retention;
use super::ConsumerId;
use crate::server::Server;

impl Server {
    /// Consumers of `stream` move past what is below its first sequence.
    pub(crate) fn consumers_skip_to(&mut self, stream: StreamId, first_seq: u64) {
        let ids: Vec<ConsumerId> = self.jetstream.streams[stream as usize]
            .consumers
            .values()
            .copied()
            .collect();
        for id in ids {
            let c = &mut self.jetstream.consumers[id as usize];
            if !c.ready {
                continue;
            }
            let gone: Vec<u64> = c.pending.range(..first_seq).map(|(&s, _)| s).collect();
            let moved = c.next_seq < first_seq || !gone.is_empty();
            for seq in gone {
                c.unpend(seq);
                c.redeliver.remove(&seq);
            }
            if !moved {
                continue;
            }
            c.deadlines.clear_below(first_seq);
            c.preloaded.retain(|m| m.seq >= first_seq);
            c.next_seq = c.next_seq.max(first_seq);
            let below = first_seq - 1;
            c.delivered.stream_seq = c.delivered.stream_seq.max(below);
            c.update_ack_floor();
            c.ack_floor.stream_seq = c
                .ack_floor
                .stream_seq
                .max(below)
                .min(c.delivered.stream_seq);
            self.consumer_progressed(id);
            self.arm_consumer(id);
        }
    }

    /// Consumer `id` acknowledged `seqs`: on an interest or work-queue
    /// stream, those no consumer needs any more are deleted.
    pub(crate) fn retention_acked(&mut self, id: ConsumerId, seqs: &[u64]) {
        let stream = self.jetstream.consumers[id as usize].stream;
        let retention = self.jetstream.streams[stream as usize].config.retention;
        if retention == Retention::Limits {
            return;
        }
        // Planted bug (mutation suite only): a work queue keeps what was acked.
        if retention == Retention::WorkQueue
            && self.planted(crate::config::PlantedBug::KeepAckedWork)
        {
            return;
        }
        let mut deleted = false;
        for &seq in seqs {
            if retention == Retention::WorkQueue || !self.still_needed(stream, seq) {
                self.retention_delete(stream, seq);
                deleted = true;
            }
        }
        if deleted {
            // A double ack is answered once the consumer's save is on
            // disk, and that save waits for the stream's syncs queued
            // before it: the deletion is as durable as the answer says
            // the ack is (without it, a power loss brings the message
            // back).
            let key = self.jetstream.streams[stream as usize].key.clone();
            let op = self.next_op(super::super::Pending::Synced { stream });
            self.storage(natrix_storage::ops::StorageOp::Sync {
                id: op,
                stream: key,
            });
        }
        self.retention_changed(stream);
    }

    /// Whether some consumer of `stream` may still deliver or wait for an
    /// acknowledgement of `seq`.
    fn still_needed(&self, stream: StreamId, seq: u64) -> bool {
        self.jetstream.streams[stream as usize]
            .consumers
            .values()
            .map(|&id| &self.jetstream.consumers[id as usize])
            .any(|c| !c.ready || seq >= c.next_seq || c.pending.contains_key(&seq))
    }

    /// Whether some consumer of `stream` wants messages on `subject` (one
    /// being created wants everything until it is ready).
    pub(crate) fn wanted_by_a_consumer(&self, stream: StreamId, subject: &[u8]) -> bool {
        self.jetstream.streams[stream as usize]
            .consumers
            .values()
            .map(|&id| &self.jetstream.consumers[id as usize])
            .any(|c| !c.ready || c.config.wants(subject))
    }

    /// An interest stream lost a consumer: reads its subjects, to drop the
    /// messages of those no consumer left wants (the rest go as the
    /// consumers pass them).
    pub(crate) fn interest_lost(&mut self, stream: StreamId) {
        let s = &self.jetstream.streams[stream as usize];
        if s.config.retention != Retention::Interest || s.consumers.is_empty() {
            return; // (with none left, the sweep takes everything)
        }
        let key = s.key.clone();
        let op = self.next_op(super::super::Pending::InterestSubjects { stream });
        self.storage(natrix_storage::ops::StorageOp::Details {
            id: op,
            stream: key,
            subjects_filter: Some(">".into()),
            deleted: false,
        });
    }

    /// The subjects of an interest stream that lost a consumer: those no
    /// consumer wants now are purged.
    pub(crate) fn drop_unwanted_subjects(
        &mut self,
        stream: StreamId,
        c: &natrix_storage::ops::Completion,
    ) {
        let Ok(natrix_storage::ops::Done::Details { subjects, .. }) = &c.result else {
            return;
        };
        let key = self.jetstream.streams[stream as usize].key.clone();
        for (subject, _) in subjects {
            if self.wanted_by_a_consumer(stream, subject.as_bytes()) {
                continue;
            }
            let op = self.next_op(super::super::Pending::Quiet);
            self.storage(natrix_storage::ops::StorageOp::Purge {
                id: op,
                stream: key.clone(),
                purge: natrix_storage::Purge {
                    filter: Some(subject.clone()),
                    below_seq: None,
                    keep: None,
                },
            });
        }
    }

    pub(crate) fn retention_delete(&mut self, stream: StreamId, seq: u64) {
        let key = self.jetstream.streams[stream as usize].key.clone();
        let op = self.next_op(super::super::Pending::Quiet);
        self.storage(natrix_storage::ops::StorageOp::Delete {
            id: op,
            stream: key,
            seq,
        });
    }

    /// Marks an interest stream for a sweep at the end of the event.
    pub(crate) fn retention_changed(&mut self, stream: StreamId) {
        let s = &self.jetstream.streams[stream as usize];
        if s.config.retention == Retention::Interest && !self.jetstream.swept.contains(&stream) {
            self.jetstream.swept.push(stream);
        }
    }

    /// Interest streams changed during this event: everything below the
    /// lowest point a consumer still needs goes, in one purge.
    pub(crate) fn sweep_interest(&mut self) {
        let streams = std::mem::take(&mut self.jetstream.swept);
        for stream in streams {
            let Some(s) = self.jetstream.streams.get(stream as usize) else {
                continue;
            };
            let end = s.last_seq + 1;
            let floor = s
                .consumers
                .values()
                .map(|&id| &self.jetstream.consumers[id as usize])
                .map(|c| {
                    if !c.ready {
                        return 0;
                    }
                    let first_pending = c.pending.keys().next().copied().unwrap_or(u64::MAX);
                    c.next_seq.min(first_pending)
                })
                .min()
                .unwrap_or(end)
                .min(end);
            if floor <= s.state.first_seq.max(s.swept_below) {
                continue;
            }
            let key = s.key.clone();
            self.jetstream.streams[stream as usize].swept_below = floor;
            let op = self.next_op(super::super::Pending::Quiet);
            self.storage(natrix_storage::ops::StorageOp::Purge {
                id: op,
                stream: key,
                purge: natrix_storage::Purge {
                    filter: None,
                    below_seq: Some(floor),
                    keep: None,
                },
            });
        }
    }
}
