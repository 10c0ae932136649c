//! The memory store: a stream held in memory, for memory-storage streams
//! and as the model the file store is tested against.

use crate::msg::{Corruption, Msg, Purge, StoreError, StreamConfig, StreamState, SubjectState};
use crate::state::{Next, StreamIndex};
use crate::store::{Appended, Store, validate};

#[derive(Clone, Debug)]
struct Body {
    headers: Vec<u8>,
    payload: Vec<u8>,
}

#[derive(Clone, Debug)]
pub struct MemStore {
    config: StreamConfig,
    index: StreamIndex<Body>,
}

impl MemStore {
    pub fn new(config: StreamConfig) -> Self {
        MemStore {
            config,
            index: StreamIndex::default(),
        }
    }

    fn msg(&self, seq: u64) -> Option<Msg> {
        let slot = self.index.get(seq)?;
        Some(Msg {
            seq,
            ts_unix_nanos: slot.ts_unix_nanos,
            subject: slot.subject.to_string(),
            headers: slot.loc.headers.clone(),
            payload: slot.loc.payload.clone(),
        })
    }
}

impl Store for MemStore {
    fn config(&self) -> &StreamConfig {
        &self.config
    }

    fn append(&mut self, msgs: &[Msg]) -> Result<Appended, StoreError> {
        validate(msgs, self.index.last_seq())?;
        let mut removed = 0;
        for m in msgs {
            let body = Body {
                headers: m.headers.clone(),
                payload: m.payload.clone(),
            };
            self.index
                .insert(m.seq, &m.subject, m.size_bytes(), m.ts_unix_nanos, body);
            removed += self
                .index
                .enforce_limits(&self.config, Some(&m.subject))
                .len() as u64;
        }
        Ok(Appended {
            last_seq: self.index.last_seq(),
            removed,
        })
    }

    fn sync(&mut self) -> Result<u64, StoreError> {
        Ok(self.index.last_seq())
    }

    fn durable_seq(&self) -> u64 {
        self.index.last_seq()
    }

    fn get(&mut self, seq: u64) -> Result<Option<Msg>, StoreError> {
        Ok(self.msg(seq))
    }

    fn next_matching(
        &mut self,
        from_seq: u64,
        filter: Option<&str>,
    ) -> Result<Option<Msg>, StoreError> {
        Ok(match self.index.next_matching(from_seq, filter) {
            Next::Live(seq) => self.msg(seq),
            Next::Corrupt(..) | Next::End => None,
        })
    }

    fn next_matching_any(
        &mut self,
        from_seq: u64,
        filters: &[String],
    ) -> Result<Option<Msg>, StoreError> {
        Ok(match self.index.next_matching_any(from_seq, filters) {
            Next::Live(seq) => self.msg(seq),
            Next::Corrupt(..) | Next::End => None,
        })
    }

    fn count_matching_any(&self, from_seq: u64, filters: &[String]) -> u64 {
        self.index.count_matching_any(from_seq, filters)
    }

    fn last_by_subject(&mut self, subject: &str) -> Result<Option<Msg>, StoreError> {
        Ok(self
            .index
            .last_by_subject(subject)
            .and_then(|seq| self.msg(seq)))
    }

    fn delete(&mut self, seq: u64) -> Result<bool, StoreError> {
        Ok(self.index.remove(seq).is_some())
    }

    fn purge(&mut self, purge: &Purge) -> Result<u64, StoreError> {
        let ranges = self
            .index
            .purge_ranges(purge)
            .map_err(StoreError::Invalid)?;
        let mut removed = 0;
        for (a, b) in ranges {
            removed += self.index.erase(a, b).len() as u64;
        }
        Ok(removed)
    }

    fn truncate(&mut self, last_seq: u64) -> Result<u64, StoreError> {
        if last_seq >= self.index.last_seq() {
            return Ok(0);
        }
        Ok(self.index.truncate(last_seq).len() as u64)
    }

    fn expire(&mut self, now_unix_nanos: u64) -> Result<u64, StoreError> {
        let victims = self.index.expired(&self.config, now_unix_nanos);
        for seq in &victims {
            self.index.remove(*seq);
        }
        Ok(victims.len() as u64)
    }

    fn compact(&mut self) -> Result<u64, StoreError> {
        Ok(0)
    }

    fn scrub(&mut self) -> Result<Vec<Corruption>, StoreError> {
        Ok(Vec::new())
    }

    fn state(&self) -> StreamState {
        self.index.state()
    }

    fn subject_state(&self, subject: &str) -> Option<SubjectState> {
        self.index.subject_state(subject)
    }

    fn subjects_matching(&self, filter: &str) -> Vec<(String, u64)> {
        self.index.subjects_matching(filter)
    }

    fn interior_deleted(&self) -> Vec<u64> {
        self.index.interior_deleted()
    }

    fn first_seq_at_time(&self, unix_nanos: u64) -> Option<u64> {
        self.index.first_seq_at_time(unix_nanos)
    }

    fn count_matching_from(&self, from_seq: u64, filter: Option<&str>) -> u64 {
        self.index.count_matching_from(from_seq, filter)
    }

    fn last_per_subject(&self, filters: &[String], up_to_seq: u64) -> Vec<u64> {
        self.index.last_per_subject(filters, up_to_seq)
    }
}
