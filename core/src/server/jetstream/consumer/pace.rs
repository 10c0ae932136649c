//! Pacing: `replay_policy: original` (a consumer catching up delivers
//! its messages as far apart as they were stored) and `rate_limit_bps`
//! (push consumers: a token bucket in bytes, its burst the largest
//! message the stream takes), as nats-server paces them.

use std::time::Duration;

use natrix_storage::Msg;

use super::ConsumerId;
use super::config::ReplayPolicy;
use crate::server::Server;
use crate::time::Instant;

/// Gaps shorter than this are not waited for (nats-server's threshold).
const REPLAY_MIN_GAP: Duration = Duration::from_millis(1);

/// What a paced consumer remembers.
#[derive(Debug, Default, Clone)]
pub(crate) struct Pacing {
    /// Replaying (original timing) up to this stream sequence: the
    /// stream's last when the consumer started.
    pub replay_to: u64,
    /// The stored time of the last message replayed, and when it went.
    pub last_ts: u64,
    pub last_sent: Option<Instant>,
    /// Bytes the rate limit allows now, and when that was counted.
    pub tokens: u64,
    pub counted_at: Option<Instant>,
    /// Nothing goes out before this.
    pub until: Option<Instant>,
}

impl Server {
    /// Whether `m` may go out now; if not, consumer `id` waits (its timer
    /// armed) until it may. Counts `m` as sent when it may.
    pub(crate) fn paced(&mut self, id: ConsumerId, m: &Msg) -> bool {
        let now = self.now.instant;
        let burst = self.rate_burst(id);
        let c = &mut self.jetstream.consumers[id as usize];
        let replaying =
            c.config.replay_policy == ReplayPolicy::Original && m.seq <= c.pacing.replay_to;
        let rate = c.config.rate_limit_bps / 8;
        if !replaying && rate == 0 {
            return false;
        }
        let p = &mut c.pacing;
        let mut due = None;
        if replaying
            && p.last_ts > 0
            && let Some(sent) = p.last_sent
        {
            let gap = Duration::from_nanos(m.ts_unix_nanos.saturating_sub(p.last_ts));
            if gap > REPLAY_MIN_GAP && sent + gap > now {
                due = Some(sent + gap);
            }
        }
        if due.is_none() && rate > 0 {
            let since = p.counted_at.map_or(Duration::ZERO, |at| now.since(at));
            let earned = (since.as_nanos() * u128::from(rate) / 1_000_000_000) as u64;
            p.tokens = if p.counted_at.is_none() {
                burst
            } else {
                p.tokens.saturating_add(earned).min(burst)
            };
            p.counted_at = Some(now);
            // A message larger than the burst goes once the bucket is full.
            let need = m.size_bytes().min(burst);
            if p.tokens < need {
                let wait_ns = u128::from(need - p.tokens) * 1_000_000_000 / u128::from(rate);
                due = Some(now + Duration::from_nanos(wait_ns as u64 + 1));
            } else {
                p.tokens -= need;
            }
        }
        if let Some(at) = due {
            p.until = Some(at);
            self.arm_consumer(id);
            return true;
        }
        if replaying {
            p.last_ts = m.ts_unix_nanos;
            p.last_sent = Some(now);
        }
        false
    }

    /// The rate limit's burst: the stream's largest message, else the
    /// server's max payload.
    fn rate_burst(&self, id: ConsumerId) -> u64 {
        let c = &self.jetstream.consumers[id as usize];
        let stream = &self.jetstream.streams[c.stream as usize].config;
        if stream.max_msg_size > 0 {
            stream.max_msg_size as u64
        } else {
            u64::from(self.opts.max_payload)
        }
    }
}
