//! Start-up of a stream with atomic batches: a batch a crash cut short
//! is removed before the stream is served.
//!
//! A committed batch is one storage append, but the file store can keep a
//! prefix of an append across a power cut (a torn tail is cut at the first
//! unsynced record; a batch spanning a block boundary keeps the sealed
//! first block). Such a prefix was never acknowledged. Every committed
//! batch's last message carries `Nats-Batch-Commit`, so a stream whose
//! last message is a batch message without it ends with a cut batch.

use super::StreamId;
use super::batch::{BATCH_COMMIT, BATCH_ID, BATCH_SEQUENCE, parse_digits};
use crate::proto::headers::Headers;
use crate::server::Server;

impl Server {
    /// Start-up of a stream with atomic batches: a batch is one append,
    /// but a crash while it was written can leave a prefix of it on disk
    /// (never acknowledged). Its last message then carries `Nats-Batch-Id`
    /// without `Nats-Batch-Commit`, which every committed batch's last
    /// message has; the stream's last message is read to find out.
    pub(crate) fn check_batch_tail(&mut self, id: StreamId) {
        let s = &self.jetstream.streams[id as usize];
        if !s.config.allow_atomic || s.state.msgs == 0 {
            return;
        }
        let (key, last_seq) = (s.key.clone(), s.state.last_seq);
        self.jetstream.recovering += 1;
        let op = self.next_op(super::Pending::BatchTail { stream: id });
        self.storage(natrix_storage::ops::StorageOp::Read {
            id: op,
            stream: key,
            read: natrix_storage::ops::Read::Seq(last_seq),
        });
    }

    /// The stream's last message: if it ends a batch cut short, the
    /// batch's messages are removed before the stream is served.
    pub(crate) fn batch_tail_read(&mut self, id: StreamId, c: &natrix_storage::ops::Completion) {
        self.jetstream.recovering -= 1;
        if let Ok(natrix_storage::ops::Done::Read(Some(m))) = &c.result
            && let Some(first) = cut_batch_start(m)
        {
            let s = &self.jetstream.streams[id as usize];
            let line = format!(
                "Stream {:?}: removing sequences {first} to {} of atomic batch cut short by a crash",
                s.config.name, m.seq
            );
            let key = s.key.clone();
            self.log(crate::server::LogLevel::Warn, line);
            self.jetstream.recovering += 1;
            let op = self.next_op(super::Pending::BatchCut { stream: id });
            self.storage(natrix_storage::ops::StorageOp::Truncate {
                id: op,
                stream: key,
                last_seq: first - 1,
            });
            return;
        }
        self.check_ready();
    }

    /// The cut batch is gone: the stream goes on from before it.
    pub(crate) fn batch_cut(&mut self, id: StreamId, c: &natrix_storage::ops::Completion) {
        self.jetstream.recovering -= 1;
        if let Err(e) = &c.result {
            let line = format!("JetStream could not remove a batch cut short: {e}");
            self.log(crate::server::LogLevel::Error, line);
        }
        let s = &mut self.jetstream.streams[id as usize];
        s.last_seq = s.state.last_seq;
        s.dedupe.forget_after(s.last_seq);
        s.last_msg_id = None;
        self.check_ready();
    }
}

/// Where the batch the stored message `m` ends begins, when `m` is a
/// batch message without the commit (a batch cut short).
fn cut_batch_start(m: &natrix_storage::Msg) -> Option<u64> {
    let h = Headers::parse(&m.headers).ok()?;
    if h.get(BATCH_ID)?.trim_ascii().is_empty() || h.get(BATCH_COMMIT).is_some() {
        return None;
    }
    // A copy from a source is another stream's business.
    if super::source::carries_source_header(&m.headers) {
        return None;
    }
    let n = h.get(BATCH_SEQUENCE).and_then(parse_digits)?;
    (1..=m.seq).contains(&n).then(|| m.seq - (n - 1))
}
