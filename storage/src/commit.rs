//! When to sync and when to acknowledge: the pure half of group commit,
//! for the core to drive with its own clock.
//!
//! Under [`SyncPolicy::EveryBatch`] (the default) the caller syncs after
//! each batch of appends and holds every acknowledgement in an
//! [`AckOutbox`] until a completion's `durable_seq` covers it: nothing
//! acknowledged is ever lost. [`SyncPolicy::Interval`] syncs at most every
//! `sync_interval_ms` and acknowledges on append: faster, but a power
//! failure loses up to one interval of acknowledged messages. It is an
//! opt-in trade, never the default.

use std::collections::BTreeMap;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SyncPolicy {
    #[default]
    EveryBatch,
    Interval {
        sync_interval_ms: u64,
    },
}

/// Decides when a stream's appends get their sync.
#[derive(Clone, Debug, Default)]
pub struct SyncScheduler {
    policy: SyncPolicy,
    unsynced: bool,
    last_sync_ms: u64,
}

impl SyncScheduler {
    pub fn new(policy: SyncPolicy) -> Self {
        SyncScheduler {
            policy,
            ..SyncScheduler::default()
        }
    }

    /// Whether an acknowledgement may go out when its append completes
    /// (only under the lazier interval policy).
    pub fn ack_on_append(&self) -> bool {
        matches!(self.policy, SyncPolicy::Interval { .. })
    }

    pub fn appended(&mut self) {
        self.unsynced = true;
    }

    /// Called at the end of an input batch (and at deadlines): true when a
    /// `Sync` should be emitted now.
    pub fn should_sync(&mut self, now_ms: u64) -> bool {
        if !self.unsynced {
            return false;
        }
        let due = match self.policy {
            SyncPolicy::EveryBatch => true,
            SyncPolicy::Interval { sync_interval_ms } => {
                now_ms >= self.last_sync_ms.saturating_add(sync_interval_ms)
            }
        };
        if due {
            self.unsynced = false;
            self.last_sync_ms = now_ms;
        }
        due
    }

    /// When the interval policy wants to be woken to sync.
    pub fn next_deadline_ms(&self) -> Option<u64> {
        match self.policy {
            SyncPolicy::Interval { sync_interval_ms } if self.unsynced => {
                Some(self.last_sync_ms.saturating_add(sync_interval_ms))
            }
            _ => None,
        }
    }
}

/// Acknowledgements waiting for the sync that covers them.
#[derive(Clone, Debug)]
pub struct AckOutbox<T> {
    waiting: BTreeMap<u64, Vec<T>>,
    /// A limit on held acknowledgements: past it the caller should stop
    /// reading publishers until a sync completes.
    pub max_pending: usize,
    pending: usize,
}

impl<T> AckOutbox<T> {
    pub fn new(max_pending: usize) -> Self {
        AckOutbox {
            waiting: BTreeMap::new(),
            max_pending,
            pending: 0,
        }
    }

    /// Holds `ack` until `seq` is durable.
    pub fn hold(&mut self, seq: u64, ack: T) {
        self.waiting.entry(seq).or_default().push(ack);
        self.pending += 1;
    }

    pub fn is_full(&self) -> bool {
        self.pending >= self.max_pending
    }

    /// Everything now covered by `durable_seq`, in sequence order.
    pub fn release(&mut self, durable_seq: u64) -> Vec<T> {
        let later = self.waiting.split_off(&durable_seq.saturating_add(1));
        let ready = std::mem::replace(&mut self.waiting, later);
        let out: Vec<T> = ready.into_values().flatten().collect();
        self.pending -= out.len();
        out
    }

    /// Drops acknowledgements above `last_seq` (their messages were
    /// truncated away and will never be durable).
    pub fn forget_after(&mut self, last_seq: u64) -> Vec<T> {
        let dropped = self.waiting.split_off(&last_seq.saturating_add(1));
        let out: Vec<T> = dropped.into_values().flatten().collect();
        self.pending -= out.len();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acks_wait_for_the_sync_that_covers_them() {
        let mut outbox = AckOutbox::new(10);
        outbox.hold(1, "a");
        outbox.hold(2, "b");
        outbox.hold(3, "c");
        assert!(outbox.release(0).is_empty());
        assert_eq!(outbox.release(2), vec!["a", "b"]);
        assert_eq!(outbox.forget_after(2), vec!["c"]);
        assert!(outbox.release(u64::MAX).is_empty());
    }

    #[test]
    fn interval_policy_syncs_at_most_once_per_interval() {
        let mut s = SyncScheduler::new(SyncPolicy::Interval {
            sync_interval_ms: 100,
        });
        assert!(!s.should_sync(0));
        s.appended();
        assert!(s.should_sync(100));
        s.appended();
        assert_eq!(s.next_deadline_ms(), Some(200));
        assert!(!s.should_sync(150));
        assert!(s.should_sync(200));
        let mut every = SyncScheduler::default();
        every.appended();
        assert!(every.should_sync(0) && !every.ack_on_append());
    }
}
