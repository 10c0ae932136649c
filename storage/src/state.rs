//! A stream's logical state, shared by both stores: which sequences are
//! live, where each one is (`L`: a place in a file, or the message itself),
//! per-subject sets, byte counts, and the limits and purges computed over
//! them. The stores differ only in what they write down.

use crate::msg::{Purge, StreamConfig, StreamState, SubjectState};
use crate::subject;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

#[derive(Clone, Debug)]
pub struct Slot<L> {
    pub subject: Arc<str>,
    pub size_bytes: u64,
    pub ts_unix_nanos: u64,
    pub loc: L,
}

#[derive(Clone, Debug)]
pub struct StreamIndex<L> {
    msgs: BTreeMap<u64, Slot<L>>,
    subjects: BTreeMap<Arc<str>, BTreeSet<u64>>,
    bytes: u64,
    last_seq: u64,
    /// Sorted, disjoint inclusive ranges known to be corrupt on disk.
    corrupt: Vec<(u64, u64)>,
}

impl<L> Default for StreamIndex<L> {
    fn default() -> Self {
        StreamIndex {
            msgs: BTreeMap::new(),
            subjects: BTreeMap::new(),
            bytes: 0,
            last_seq: 0,
            corrupt: Vec::new(),
        }
    }
}

pub type Removed<L> = Vec<(u64, Slot<L>)>;

impl<L> StreamIndex<L> {
    pub fn last_seq(&self) -> u64 {
        self.last_seq
    }

    /// Restores `last_seq` after an undone append.
    pub fn set_last_seq(&mut self, last_seq: u64) {
        self.last_seq = last_seq;
    }

    pub fn get(&self, seq: u64) -> Option<&Slot<L>> {
        self.msgs.get(&seq)
    }

    /// The first live message stored at or after `unix_nanos`. Times
    /// follow sequences except when the clock stepped back, so this looks
    /// at each in order rather than bisecting.
    pub fn first_seq_at_time(&self, unix_nanos: u64) -> Option<u64> {
        self.msgs
            .iter()
            .find(|(_, s)| s.ts_unix_nanos >= unix_nanos)
            .map(|(&seq, _)| seq)
    }

    pub fn get_mut(&mut self, seq: u64) -> Option<&mut Slot<L>> {
        self.msgs.get_mut(&seq)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&u64, &Slot<L>)> {
        self.msgs.iter()
    }

    /// Adds a message (replacing one with the same sequence, as a replay
    /// after a truncate may).
    pub fn insert(
        &mut self,
        seq: u64,
        subject: &str,
        size_bytes: u64,
        ts: u64,
        loc: L,
    ) -> Option<Slot<L>> {
        let old = self.remove(seq);
        let subject: Arc<str> = match self.subjects.get_key_value(subject) {
            Some((s, _)) => s.clone(),
            None => Arc::from(subject),
        };
        self.subjects
            .entry(subject.clone())
            .or_default()
            .insert(seq);
        self.bytes += size_bytes;
        self.last_seq = self.last_seq.max(seq);
        self.uncorrupt(seq, seq);
        self.msgs.insert(
            seq,
            Slot {
                subject,
                size_bytes,
                ts_unix_nanos: ts,
                loc,
            },
        );
        old
    }

    pub fn remove(&mut self, seq: u64) -> Option<Slot<L>> {
        let slot = self.msgs.remove(&seq)?;
        self.bytes -= slot.size_bytes;
        if let Some(set) = self.subjects.get_mut(&slot.subject) {
            set.remove(&seq);
            if set.is_empty() {
                self.subjects.remove(&slot.subject);
            }
        }
        Some(slot)
    }

    /// Deletes an inclusive range (live or not); it can move `last_seq` on.
    pub fn erase(&mut self, first: u64, last: u64) -> Removed<L> {
        let seqs: Vec<u64> = self.msgs.range(first..=last).map(|(s, _)| *s).collect();
        self.last_seq = self.last_seq.max(last);
        self.uncorrupt(first, last);
        seqs.into_iter()
            .filter_map(|s| self.remove(s).map(|slot| (s, slot)))
            .collect()
    }

    pub fn truncate(&mut self, last_seq: u64) -> Removed<L> {
        let seqs: Vec<u64> = self
            .msgs
            .range(last_seq.saturating_add(1)..)
            .map(|(s, _)| *s)
            .collect();
        self.last_seq = last_seq;
        self.uncorrupt(last_seq.saturating_add(1), u64::MAX);
        seqs.into_iter()
            .filter_map(|s| self.remove(s).map(|slot| (s, slot)))
            .collect()
    }

    pub fn mark_corrupt(&mut self, first: u64, last: u64) {
        if first > last {
            return;
        }
        for seq in self
            .msgs
            .range(first..=last)
            .map(|(s, _)| *s)
            .collect::<Vec<_>>()
        {
            self.remove(seq);
        }
        self.corrupt.push((first, last));
        self.corrupt.sort_unstable();
        let mut merged: Vec<(u64, u64)> = Vec::new();
        for (a, b) in self.corrupt.drain(..) {
            match merged.last_mut() {
                Some(m) if a <= m.1.saturating_add(1) => m.1 = m.1.max(b),
                _ => merged.push((a, b)),
            }
        }
        self.corrupt = merged;
        self.last_seq = self.last_seq.max(last);
    }

    fn uncorrupt(&mut self, first: u64, last: u64) {
        if self.corrupt.is_empty() {
            return;
        }
        let mut kept = Vec::new();
        for (a, b) in self.corrupt.drain(..) {
            if b < first || a > last {
                kept.push((a, b));
                continue;
            }
            if a < first {
                kept.push((a, first - 1));
            }
            if b > last {
                kept.push((last + 1, b));
            }
        }
        self.corrupt = kept;
    }

    pub fn corrupt_range(&self, seq: u64) -> Option<(u64, u64)> {
        self.corrupt
            .iter()
            .copied()
            .find(|(a, b)| (*a..=*b).contains(&seq))
    }

    pub fn corrupt_ranges(&self) -> &[(u64, u64)] {
        &self.corrupt
    }

    pub fn state(&self) -> StreamState {
        StreamState {
            msgs: self.msgs.len() as u64,
            bytes: self.bytes,
            first_seq: self
                .msgs
                .keys()
                .next()
                .copied()
                .unwrap_or(self.last_seq.saturating_add(1)),
            last_seq: self.last_seq,
            num_subjects: self.subjects.len() as u64,
            first_ts_unix_nanos: self.msgs.values().next().map_or(0, |s| s.ts_unix_nanos),
            last_ts_unix_nanos: self
                .msgs
                .values()
                .next_back()
                .map_or(0, |s| s.ts_unix_nanos),
        }
    }

    pub fn subject_state(&self, subject: &str) -> Option<SubjectState> {
        let set = self.subjects.get(subject)?;
        Some(SubjectState {
            msgs: set.len() as u64,
            first_seq: *set.first()?,
            last_seq: *set.last()?,
        })
    }

    /// Each subject matching `filter` and its message count, by subject.
    pub fn subjects_matching(&self, filter: &str) -> Vec<(String, u64)> {
        self.subjects
            .iter()
            .filter(|(s, _)| subject::matches(filter, s))
            .map(|(s, set)| (s.to_string(), set.len() as u64))
            .collect()
    }

    /// The sequences between the first and the last live message that are
    /// gone (deleted or removed), in order.
    pub fn interior_deleted(&self) -> Vec<u64> {
        let (Some(&first), Some(&last)) = (self.msgs.keys().next(), self.msgs.keys().next_back())
        else {
            return Vec::new();
        };
        (first..=last)
            .filter(|q| !self.msgs.contains_key(q))
            .collect()
    }

    /// How many live messages at or after `from_seq` match `filter`.
    pub fn count_matching_from(&self, from_seq: u64, filter: Option<&str>) -> u64 {
        match filter {
            None => self.count_from(from_seq),
            Some(f) => self
                .subjects
                .iter()
                .filter(|(s, _)| subject::matches(f, s))
                .map(|(_, set)| set.range(from_seq..).count() as u64)
                .sum(),
        }
    }

    /// How many live messages are at or after `from_seq`: without gaps
    /// between the first and the last (the usual case) a subtraction, so
    /// that a reader counting what follows each batch stays linear.
    fn count_from(&self, from_seq: u64) -> u64 {
        let (Some((&first, _)), Some((&last, _))) =
            (self.msgs.first_key_value(), self.msgs.last_key_value())
        else {
            return 0;
        };
        if from_seq > last {
            return 0;
        }
        if self.msgs.len() as u64 == last - first + 1 {
            return last - from_seq.max(first) + 1;
        }
        self.msgs.range(from_seq..).count() as u64
    }

    /// How many live messages at or after `from_seq` match one of
    /// `filters` (each message counted once, however many it matches).
    pub fn count_matching_any(&self, from_seq: u64, filters: &[String]) -> u64 {
        self.subjects
            .iter()
            .filter(|(s, _)| filters.iter().any(|f| subject::matches(f, s)))
            .map(|(_, set)| set.range(from_seq..).count() as u64)
            .sum()
    }

    /// The first live sequence at or after `from_seq` on a subject matching
    /// one of `filters`, or the first corrupt range in the way.
    pub fn next_matching_any(&self, from_seq: u64, filters: &[String]) -> Next {
        let found = if filters.iter().all(|f| subject::is_literal(f)) {
            filters
                .iter()
                .filter_map(|f| {
                    self.subjects
                        .get(f.as_str())?
                        .range(from_seq..)
                        .next()
                        .copied()
                })
                .min()
        } else {
            self.msgs
                .range(from_seq..)
                .find(|(_, slot)| filters.iter().any(|f| subject::matches(f, &slot.subject)))
                .map(|(s, _)| *s)
        };
        self.found_or_corrupt(from_seq, found)
    }

    /// The last sequence at or below `up_to_seq` of every subject matching
    /// one of `filters`, in sequence order.
    pub fn last_per_subject(&self, filters: &[String], up_to_seq: u64) -> Vec<u64> {
        let mut seqs: Vec<u64> = self
            .subjects
            .iter()
            .filter(|(s, _)| filters.iter().any(|f| subject::matches(f, s)))
            .filter_map(|(_, set)| set.range(..=up_to_seq).next_back().copied())
            .collect();
        seqs.sort_unstable();
        seqs
    }

    /// The newest live sequence on `subject`, which may be a wildcard (the
    /// newest on any matching subject: an object store lists its objects
    /// by asking for the last message on `$O.<bucket>.M.>`).
    pub fn last_by_subject(&self, subject: &str) -> Option<u64> {
        if subject::is_literal(subject) {
            return self.subjects.get(subject)?.last().copied();
        }
        self.subjects
            .iter()
            .filter(|(s, _)| subject::matches(subject, s))
            .filter_map(|(_, set)| set.last().copied())
            .max()
    }

    /// The first live sequence at or after `from_seq` on a matching subject,
    /// or the first corrupt range in the way (so it is reported, not skipped).
    pub fn next_matching(&self, from_seq: u64, filter: Option<&str>) -> Next {
        let found = match filter {
            Some(f) if subject::is_literal(f) => self
                .subjects
                .get(f)
                .and_then(|set| set.range(from_seq..).next().copied()),
            Some(f) => self
                .msgs
                .range(from_seq..)
                .find(|(_, slot)| subject::matches(f, &slot.subject))
                .map(|(s, _)| *s),
            None => self.msgs.range(from_seq..).next().map(|(s, _)| *s),
        };
        self.found_or_corrupt(from_seq, found)
    }

    /// `found`, unless a corrupt range lies between `from_seq` and it.
    fn found_or_corrupt(&self, from_seq: u64, found: Option<u64>) -> Next {
        let bound = found.unwrap_or(u64::MAX);
        let corrupt = self
            .corrupt
            .iter()
            .find(|(a, b)| *b >= from_seq && *a <= bound);
        match (corrupt, found) {
            (Some(&(a, b)), _) => Next::Corrupt(a, b),
            (None, Some(seq)) => Next::Live(seq),
            (None, None) => Next::End,
        }
    }

    /// Removes what the count, byte and per-subject limits no longer allow,
    /// oldest first. `subject` narrows the per-subject check after an append.
    pub fn enforce_limits(&mut self, config: &StreamConfig, subject: Option<&str>) -> Removed<L> {
        let mut removed = Vec::new();
        if let Some(max) = config.max_msgs_per_subject {
            let subjects: Vec<Arc<str>> = match subject {
                Some(s) => self
                    .subjects
                    .get_key_value(s)
                    .map(|(k, _)| k.clone())
                    .into_iter()
                    .collect(),
                None => self.subjects.keys().cloned().collect(),
            };
            for s in subjects {
                let excess: Vec<u64> = self.subjects.get(&s).map_or(Vec::new(), |set| {
                    let over = (set.len() as u64).saturating_sub(max) as usize;
                    set.iter().take(over).copied().collect()
                });
                for seq in excess {
                    removed.extend(self.remove(seq).map(|slot| (seq, slot)));
                }
            }
        }
        loop {
            let over_msgs = config.max_msgs.is_some_and(|m| self.msgs.len() as u64 > m);
            let over_bytes = config.max_bytes.is_some_and(|m| self.bytes > m);
            if !(over_msgs || over_bytes) {
                break;
            }
            let Some(seq) = self.msgs.keys().next().copied() else {
                break;
            };
            removed.extend(self.remove(seq).map(|slot| (seq, slot)));
        }
        removed.sort_by_key(|(s, _)| *s);
        removed
    }

    /// Messages older than `max_age_ms` at `now_unix_nanos`, oldest first.
    pub fn expired(&self, config: &StreamConfig, now_unix_nanos: u64) -> Vec<u64> {
        let Some(max_age_ms) = config.max_age_ms else {
            return Vec::new();
        };
        let max_age_nanos = max_age_ms.saturating_mul(1_000_000);
        self.msgs
            .iter()
            .take_while(|(_, slot)| {
                slot.ts_unix_nanos.saturating_add(max_age_nanos) <= now_unix_nanos
            })
            .map(|(s, _)| *s)
            .collect()
    }

    /// The erase ranges a purge writes, or an error for a contradictory one.
    pub fn purge_ranges(&self, purge: &Purge) -> Result<Vec<(u64, u64)>, String> {
        if purge.keep.is_some() && purge.below_seq.is_some() {
            return Err("purge takes a sequence or a keep count, not both".into());
        }
        let Some(filter) = &purge.filter else {
            let upper = if let Some(keep) = purge.keep {
                let drop = (self.msgs.len() as u64).saturating_sub(keep) as usize;
                match drop {
                    0 => return Ok(Vec::new()),
                    n => self.msgs.keys().nth(n - 1).copied().unwrap_or(0),
                }
            } else if let Some(below) = purge.below_seq {
                below.saturating_sub(1)
            } else {
                self.last_seq
            };
            return Ok(if upper == 0 {
                Vec::new()
            } else {
                vec![(1, upper)]
            });
        };
        let matching: Vec<u64> = if subject::is_literal(filter) {
            self.subjects
                .get(filter.as_str())
                .map_or(Vec::new(), |s| s.iter().copied().collect())
        } else {
            self.msgs
                .iter()
                .filter(|(_, slot)| subject::matches(filter, &slot.subject))
                .map(|(s, _)| *s)
                .collect()
        };
        let victims: Vec<u64> = if let Some(keep) = purge.keep {
            let drop = (matching.len() as u64).saturating_sub(keep) as usize;
            matching[..drop].to_vec()
        } else if let Some(below) = purge.below_seq {
            matching.into_iter().filter(|s| *s < below).collect()
        } else {
            matching
        };
        Ok(self.coalesce(&victims))
    }

    /// Sorted victims (already removed, or about to be) as few ranges as
    /// possible, never spanning a live or corrupt sequence that stays.
    pub fn coalesce(&self, victims: &[u64]) -> Vec<(u64, u64)> {
        let mut ranges: Vec<(u64, u64)> = Vec::new();
        let victim_set: BTreeSet<u64> = victims.iter().copied().collect();
        for &seq in victims {
            if let Some(last) = ranges.last_mut() {
                let between_clear = self
                    .msgs
                    .range(last.1 + 1..seq)
                    .all(|(s, _)| victim_set.contains(s))
                    && !self.corrupt.iter().any(|(a, b)| *b > last.1 && *a < seq);
                if between_clear {
                    last.1 = seq;
                    continue;
                }
            }
            ranges.push((seq, seq));
        }
        ranges
    }

    /// Every sequence up to `last_seq` that is neither live nor corrupt, as
    /// ranges: what a rewritten block must restate so replay stays exact.
    pub fn dead_ranges(&self) -> Vec<(u64, u64)> {
        let mut keep: Vec<(u64, u64)> = self.msgs.keys().map(|s| (*s, *s)).collect();
        keep.extend(self.corrupt.iter().copied());
        keep.sort_unstable();
        let mut ranges = Vec::new();
        let mut next = 1u64;
        for (a, b) in keep {
            if a > next {
                ranges.push((next, a - 1));
            }
            next = next.max(b.saturating_add(1));
        }
        if next <= self.last_seq {
            ranges.push((next, self.last_seq));
        }
        ranges
    }
}

/// Where a scan for the next message stops.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    Live(u64),
    Corrupt(u64, u64),
    End,
}
