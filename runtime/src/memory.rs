//! Giving the system back the memory a burst left behind.
//!
//! glibc's allocator keeps what the program frees on its arenas' free lists
//! and returns pages to the system only from the top of a heap, so after a
//! burst of traffic the server stays resident at its high-water mark
//! although almost nothing is live (measured: 17.7 MiB resident, 7.3 MiB
//! once trimmed, after a 128 B fan-out of 8 M deliveries). The driver calls
//! [`release_freed`] once traffic has been quiet for a while after a burst.
//!
//! This is the workspace's one use of `unsafe`: a call into glibc that takes
//! no pointers. `core/tests/purity.rs` checks that it stays the only one.

/// Asks the allocator to return every whole free page of every arena to the
/// system (`malloc_trim(0)`). True if it gave anything back. Elsewhere than
/// glibc it does nothing: other allocators return memory themselves or have
/// no such call.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
pub fn release_freed() -> bool {
    // SAFETY: malloc_trim takes no pointers and touches only glibc's own free
    // lists, under the same arena locks every malloc and free takes.
    unsafe { libc::malloc_trim(0) == 1 }
}

/// Asks the allocator to return free pages to the system (nothing to do
/// here: this allocator is not glibc's).
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn release_freed() -> bool {
    false
}

/// When to hand freed memory back: after a burst — at least
/// [`AFTER_BYTES`](Self::AFTER_BYTES) read and written since the last time —
/// once traffic has been quiet for [`QUIET_FOR`](Self::QUIET_FOR). Quiet: no
/// more than [`QUIET_BYTES`](Self::QUIET_BYTES) moved since the last busy
/// moment, so a steady flow of small requests counts as busy too.
#[derive(Debug, Clone, Copy)]
pub struct TrimPolicy<I> {
    moved_since_trim: usize,
    moved_since_busy: usize,
    last_busy: I,
}

impl<I: Copy + Ord + std::ops::Add<std::time::Duration, Output = I>> TrimPolicy<I> {
    pub const AFTER_BYTES: usize = 4 * 1024 * 1024;
    pub const QUIET_FOR: std::time::Duration = std::time::Duration::from_secs(1);
    pub const QUIET_BYTES: usize = 64 * 1024;

    pub fn new(now: I) -> Self {
        TrimPolicy {
            moved_since_trim: 0,
            moved_since_busy: 0,
            last_busy: now,
        }
    }

    /// Bytes read or written at `now`.
    pub fn moved(&mut self, bytes: usize, now: I) {
        self.moved_since_trim = self.moved_since_trim.saturating_add(bytes);
        self.moved_since_busy = self.moved_since_busy.saturating_add(bytes);
        if self.moved_since_busy > Self::QUIET_BYTES {
            self.last_busy = now;
            self.moved_since_busy = 0;
        }
    }

    /// When to trim, if a burst calls for it.
    pub fn due(&self) -> Option<I> {
        (self.moved_since_trim >= Self::AFTER_BYTES).then(|| self.last_busy + Self::QUIET_FOR)
    }

    /// The trim was done.
    pub fn trimmed(&mut self) {
        self.moved_since_trim = 0;
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    type Policy = super::TrimPolicy<Duration>;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn a_burst_is_trimmed_a_quiet_second_after_it() {
        let mut p = Policy::new(Duration::ZERO);
        assert_eq!(p.due(), None, "nothing moved");
        p.moved(Policy::AFTER_BYTES, 10 * MS);
        assert_eq!(p.due(), Some(10 * MS + Policy::QUIET_FOR));
        // A trickle does not put it off.
        p.moved(1024, 500 * MS);
        assert_eq!(p.due(), Some(10 * MS + Policy::QUIET_FOR));
        p.trimmed();
        assert_eq!(p.due(), None, "once per burst");
    }

    #[test]
    fn steady_small_traffic_is_busy() {
        let mut p = Policy::new(Duration::ZERO);
        let mut now = Duration::ZERO;
        // 300-byte requests every 100 µs: 3 MB a second, none of them big.
        for _ in 0..20_000 {
            now += MS / 10;
            p.moved(300, now);
        }
        let due = p.due().expect("4 MiB moved");
        assert!(due > now, "still busy: {due:?} <= {now:?}");
    }

    #[test]
    fn small_moves_alone_never_trim() {
        let mut p = Policy::new(Duration::ZERO);
        p.moved(Policy::AFTER_BYTES - 1, MS);
        assert_eq!(p.due(), None);
    }
}
