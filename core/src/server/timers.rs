//! The one timer table: every connection deadline, ordered by time.

use std::collections::BTreeSet;
use std::time::Duration;

use super::{CloseReason, ConnId, LogLevel, Server};
use crate::proto::encode;
use crate::time::Instant;

/// First client PING comes this soon after CONNECT (for RTT), unless
/// `ping_interval` is shorter. Before CONNECT, pings wait a full interval.
const FIRST_CLIENT_PING: Duration = Duration::from_secs(2);
/// RTT is measured again after this long.
const RTT_MEASUREMENT_INTERVAL: Duration = Duration::from_secs(3600);

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Timer {
    Ping,
    Auth,
    Write,
    /// The TLS handshake's time is up.
    Tls,
}

impl Timer {
    pub const ALL: [Timer; 4] = [Timer::Ping, Timer::Auth, Timer::Write, Timer::Tls];
}

#[derive(Debug, Default)]
pub(crate) struct TimerTable {
    due: BTreeSet<(Instant, ConnId, Timer)>,
}

impl TimerTable {
    pub fn next(&self) -> Option<Instant> {
        self.due.first().map(|(at, _, _)| *at)
    }

    fn pop_due(&mut self, now: Instant) -> Option<(ConnId, Timer)> {
        let &(at, id, t) = self.due.first()?;
        if at > now {
            return None;
        }
        self.due.pop_first();
        Some((id, t))
    }
}

impl Server {
    pub(crate) fn set_deadline(&mut self, id: ConnId, timer: Timer, at: Option<Instant>) {
        let c = &mut self.conns[id.0];
        // A closing connection has no timers: it may be removed any moment.
        let at = if c.closing { None } else { at };
        let d = &mut c.deadlines;
        let slot = match timer {
            Timer::Ping => &mut d.ping,
            Timer::Auth => &mut d.auth,
            Timer::Write => &mut d.write,
            Timer::Tls => &mut d.tls,
        };
        if let Some(old) = slot.take() {
            self.timers.due.remove(&(old, id, timer));
        }
        if let Some(at) = at {
            *slot = Some(at);
            self.timers.due.insert((at, id, timer));
        }
    }

    /// The first ping: `min(ping_interval, 2s)` plus up to 20% jitter.
    pub(crate) fn arm_first_ping(&mut self, id: ConnId) {
        let base = self.opts.ping_interval.min(FIRST_CLIENT_PING);
        let jitter_max = (base.as_nanos() / 5) as usize;
        let jitter = if jitter_max > 0 {
            self.random_below(jitter_max)
        } else {
            0
        };
        let at = self.now.instant + base + Duration::from_nanos(jitter as u64);
        self.set_deadline(id, Timer::Ping, Some(at));
    }

    pub(crate) fn on_tick(&mut self) {
        let now = self.now.instant;
        while let Some((id, timer)) = self.timers.pop_due(now) {
            let Some(c) = self.conns.get_mut(id.0) else {
                debug_assert!(false, "a timer outlived its connection");
                continue;
            };
            let d = &mut c.deadlines;
            match timer {
                Timer::Ping => d.ping = None,
                Timer::Auth => d.auth = None,
                Timer::Write => d.write = None,
                Timer::Tls => d.tls = None,
            }
            match timer {
                Timer::Ping => self.ping_timer(id),
                Timer::Auth => self.auth_timer(id),
                Timer::Write => self.write_timer(id),
                Timer::Tls => self.tls_timer(id),
            }
        }
        self.lame_duck_timer();
        self.statsz_timer();
    }

    fn ping_timer(&mut self, id: ConnId) {
        let now = self.now.instant;
        let interval = self.opts.ping_interval;
        let c = &self.conns[id.0];
        let need_rtt = c.rtt.is_none()
            || c.rtt_start
                .is_none_or(|s| now.since(s) > RTT_MEASUREMENT_INTERVAL);
        let active = now.since(c.last_activity) < interval;
        let pinged = c.last_ping_in.is_some_and(|p| now.since(p) < interval);
        if need_rtt || (!active && !pinged) {
            if c.pings_out + 1 > self.opts.ping_max {
                self.debug(id, || "Stale Client Connection - Closing".to_string());
                self.send_err(id, "Stale Connection");
                self.close(id, CloseReason::StaleConnection, true);
                return;
            }
            self.send_ping(id);
        }
        self.set_deadline(id, Timer::Ping, Some(now + interval));
    }

    pub(crate) fn send_ping(&mut self, id: ConnId) {
        let now = self.now.instant;
        let c = &mut self.conns[id.0];
        c.rtt_start = Some(now);
        c.pings_out += 1;
        self.send(id, encode::PING);
        self.trace(id, || "->> [PING]".to_string());
    }

    fn auth_timer(&mut self, id: ConnId) {
        if self.conns[id.0].awaiting_auth {
            self.send_err(id, "Authentication Timeout");
            self.close(id, CloseReason::AuthenticationTimeout, true);
        }
    }

    fn write_timer(&mut self, id: ConnId) {
        let deadline = self.opts.write_deadline;
        if self.conns[id.0].in_flight > 0 {
            self.stats.slow_consumers += 1;
            let msg = format!("Slow Consumer Detected: WriteDeadline of {deadline:?} exceeded");
            self.conn_log(LogLevel::Info, id, &msg);
            self.close(id, CloseReason::SlowConsumerWriteDeadline, false);
        }
    }
}
