//! The one timer table: every deadline the server keeps, keyed by what it
//! belongs to (a connection, or the server itself; streams, consumers and
//! raft groups join as they arrive), ordered by time. `next_deadline` reads
//! it and `Event::Tick` runs what is due; nothing else schedules work.

use std::collections::BTreeSet;
use std::time::Duration;

use super::{CloseReason, ConnId, LogLevel, Server};
use crate::FastMap;
use crate::proto::encode;
use crate::time::Instant;

/// First client PING comes this soon after CONNECT (for RTT), unless
/// `ping_interval` is shorter. Before CONNECT, pings wait a full interval.
const FIRST_CLIENT_PING: Duration = Duration::from_secs(2);
/// RTT is measured again after this long.
const RTT_MEASUREMENT_INTERVAL: Duration = Duration::from_secs(3600);

/// A connection's timers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
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

/// The server's own timers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum ServerTimer {
    /// The next step of lame duck mode (the end of the grace period, or
    /// the next client to close).
    LameDuck,
    /// The next periodic statsz of the system account.
    Statsz,
    /// The next removal of JetStream messages past their stream's max age.
    JsExpire,
    /// The next sync of JetStream streams under `sync_interval`.
    JsSync,
    /// The next JetStream message whose TTL comes due.
    JsTtl,
    /// The next open atomic batch idle too long.
    JsBatch,
}

/// What a timer belongs to, and which of its timers it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum TimerKey {
    Conn(ConnId, Timer),
    Server(ServerTimer),
    /// A JetStream consumer's one timer (its id).
    Consumer(u32),
    /// The next attempt to dial a route's remote (its index).
    Redial(u32),
    /// The next attempt to dial a leaf node remote (its index).
    LeafRedial(u32),
    /// The next attempt to dial a gateway (its index).
    GatewayRedial(u32),
    /// A stream snapshot or restore that hears nothing (its job).
    Transfer(u32),
}

/// Armed timers, by key and by time (each key at most once).
#[derive(Debug, Default)]
pub(crate) struct TimerTable {
    due: BTreeSet<(Instant, TimerKey)>,
    armed: FastMap<TimerKey, Instant>,
}

impl TimerTable {
    /// The earliest armed timer.
    pub fn next(&self) -> Option<Instant> {
        self.due.first().map(|(at, _)| *at)
    }

    /// When `key` fires, if armed.
    pub fn get(&self, key: TimerKey) -> Option<Instant> {
        self.armed.get(&key).copied()
    }

    /// Arms `key` for `at`, replacing its old time, or disarms it (`None`).
    pub fn set(&mut self, key: TimerKey, at: Option<Instant>) {
        let old = match at {
            Some(at) => self.armed.insert(key, at),
            None => self.armed.remove(&key),
        };
        if let Some(old) = old {
            let removed = self.due.remove(&(old, key));
            assert!(removed, "an armed timer is in the schedule");
        }
        if let Some(at) = at {
            self.due.insert((at, key));
        }
        assert_eq!(self.due.len(), self.armed.len());
    }

    /// Takes the earliest timer due at `now`, disarming it.
    fn pop_due(&mut self, now: Instant) -> Option<TimerKey> {
        let &(at, key) = self.due.first()?;
        if at > now {
            return None;
        }
        self.due.pop_first();
        let armed = self.armed.remove(&key);
        assert_eq!(armed, Some(at), "the schedule and the keys agree");
        Some(key)
    }

    /// Whether the connection has any timer armed.
    pub fn has_conn_timers(&self, id: ConnId) -> bool {
        Timer::ALL
            .iter()
            .any(|&t| self.armed.contains_key(&TimerKey::Conn(id, t)))
    }
}

impl Server {
    /// Arms (or with `None` disarms) one of a connection's timers.
    pub(crate) fn set_deadline(&mut self, id: ConnId, timer: Timer, at: Option<Instant>) {
        // A closing connection has no timers: it may be removed any moment.
        let at = if self.conns[id.0].closing { None } else { at };
        self.timers.set(TimerKey::Conn(id, timer), at);
    }

    /// Arms (or with `None` disarms) one of the server's timers.
    pub(crate) fn set_server_deadline(&mut self, timer: ServerTimer, at: Option<Instant>) {
        self.timers.set(TimerKey::Server(timer), at);
    }

    /// The first ping: `min(ping_interval, 2s)` plus up to 20% jitter.
    pub(crate) fn arm_first_ping(&mut self, id: ConnId) {
        let base = self.opts.ping_interval.min(FIRST_CLIENT_PING);
        let jitter_max = (base.as_nanos() / 5) as usize;
        let jitter = if jitter_max > 0 {
            (rand_core::Rng::next_u64(&mut self.rng.timers) % jitter_max as u64) as usize
        } else {
            0
        };
        let at = self.now.instant + base + Duration::from_nanos(jitter as u64);
        self.set_deadline(id, Timer::Ping, Some(at));
    }

    /// Runs every timer due now, earliest first.
    pub(crate) fn on_tick(&mut self) {
        let now = self.now.instant;
        while let Some(key) = self.timers.pop_due(now) {
            match key {
                TimerKey::Conn(id, timer) => {
                    assert!(self.conns.contains(id.0), "a timer outlived its connection");
                    match timer {
                        Timer::Ping => self.ping_timer(id),
                        Timer::Auth => self.auth_timer(id),
                        Timer::Write => self.write_timer(id),
                        Timer::Tls => self.tls_timer(id),
                    }
                }
                TimerKey::Server(ServerTimer::LameDuck) => self.lame_duck_timer(),
                TimerKey::Server(ServerTimer::Statsz) => self.statsz_timer(),
                TimerKey::Server(ServerTimer::JsExpire) => self.expire_timer(),
                TimerKey::Server(ServerTimer::JsSync) => self.sync_timer(),
                TimerKey::Consumer(id) => self.consumer_timer(id),
                TimerKey::Server(ServerTimer::JsTtl) => self.ttl_timer(),
                TimerKey::Server(ServerTimer::JsBatch) => self.batch_timer(),
                TimerKey::Redial(i) => self.redial_timer(i),
                TimerKey::LeafRedial(i) => self.leaf_redial_timer(i),
                TimerKey::GatewayRedial(i) => self.gateway_redial_timer(i),
                TimerKey::Transfer(job) => self.transfer_timer(job),
            }
        }
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
