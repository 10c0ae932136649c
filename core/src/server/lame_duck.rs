//! Lame duck mode: drain the server for maintenance.
//!
//! On [`Event::LameDuck`](super::Event::LameDuck) the server stops accepting connections
//! ([`Action::StopAccepting`]), tells every client that can hear it (protocol
//! 1 or later, past its first PONG) with an `INFO` carrying `"ldm":true`, waits
//! `lame_duck_grace_period` so that several servers entering lame duck
//! together do not send their clients to each other, then closes the clients
//! one by one spread over the rest of `lame_duck_duration` (at most a second
//! apart, a random interval between half and all of the step), and finally
//! asks the driver to stop ([`Action::Exit`]). The clients reconnect
//! elsewhere, resubscribing as they do after any disconnect.

use std::collections::VecDeque;
use std::time::Duration;

use rand_core::Rng;

use super::timers::ServerTimer;
use super::{Action, CloseReason, ConnId, LogLevel, Server};
use crate::server::conn::ConnKind;

/// The longest pause between two closes, however few the clients.
const MAX_STEP: Duration = Duration::from_secs(1);

#[derive(Debug)]
pub(crate) struct LameDuck {
    /// The clients still to close, with their cid so a reused slot is never
    /// mistaken for the client that was captured.
    pending: VecDeque<(ConnId, u64)>,
    /// The pause between closes.
    step: Duration,
    /// How many clients to close at each step (the next step is the
    /// server's `LameDuck` timer).
    batch: usize,
    /// Whether the grace period is over.
    closing_started: bool,
}

impl Server {
    /// Whether the server is in lame duck mode.
    pub fn in_lame_duck(&self) -> bool {
        self.lame_duck.is_some()
    }

    /// Enters lame duck mode (`Event::LameDuck`; a second time does
    /// nothing).
    pub(crate) fn enter_lame_duck(&mut self) {
        let now = self.now.instant;
        if self.lame_duck.is_some() {
            return;
        }
        self.log(
            LogLevel::Info,
            "Entering lame duck mode, stop accepting new clients".to_string(),
        );
        self.actions.push_back(Action::StopAccepting);
        let pending: VecDeque<(ConnId, u64)> = self
            .conns
            .iter()
            .filter(|(_, c)| c.kind == ConnKind::Client && !c.closing)
            .map(|(k, c)| (ConnId(k), c.cid))
            .collect();
        if pending.is_empty() {
            self.lame_duck = Some(LameDuck {
                pending,
                step: Duration::ZERO,
                batch: 1,
                closing_started: true,
            });
            self.set_server_deadline(ServerTimer::Statsz, None);
            self.actions.push_back(Action::Exit);
            return;
        }
        let grace = self.opts.lame_duck_grace_period;
        let spread = self
            .opts
            .lame_duck_duration
            .saturating_sub(grace)
            .max(Duration::from_secs(1));
        let n = pending.len() as u128;
        let per = spread.as_nanos() / n;
        let (step, batch) = if per < 1 {
            // More clients than nanoseconds: close them in batches.
            (
                Duration::from_nanos(1),
                usize::try_from(n / spread.as_nanos()).unwrap_or(usize::MAX),
            )
        } else {
            (
                Duration::from_nanos(u64::try_from(per).unwrap_or(u64::MAX)).min(MAX_STEP),
                1,
            )
        };
        self.send_lame_duck_info();
        self.lame_duck = Some(LameDuck {
            pending,
            step,
            batch: batch.max(1),
            closing_started: false,
        });
        // The periodic statsz stops once the server drains.
        self.set_server_deadline(ServerTimer::Statsz, None);
        self.set_server_deadline(ServerTimer::LameDuck, Some(now + grace));
    }

    /// `INFO` with `ldm:true` to every client that reads async INFO.
    fn send_lame_duck_info(&mut self) {
        let mut info = self.info.clone();
        info.ldm = true;
        info.connect_urls.clear();
        self.send_info_to_clients(info);
    }

    /// `info` (with each client's own id and address) to every client that
    /// reads async INFO: those that sent `CONNECT` with protocol 1 and a
    /// first `PING`.
    pub(crate) fn send_info_to_clients(&mut self, mut info: crate::proto::ServerInfo) {
        let ids: Vec<ConnId> = self
            .conns
            .iter()
            .filter(|(_, c)| {
                c.kind == ConnKind::Client
                    && !c.closing
                    && c.opts.protocol >= 1
                    && c.first_pong_sent
            })
            .map(|(k, _)| ConnId(k))
            .collect();
        let mut line = Vec::new();
        for id in ids {
            let c = &self.conns[id.0];
            info.client_id = c.cid;
            info.client_ip = c.peer.ip().to_string();
            line.clear();
            info.encode_into(&mut line);
            self.send(id, &line);
        }
    }

    /// The next step of the lame duck schedule: close the next batch.
    pub(crate) fn lame_duck_timer(&mut self) {
        let now = self.now.instant;
        let ld = (self.lame_duck.as_mut()).expect("the lame duck timer runs in lame duck mode");
        let announce = !std::mem::replace(&mut ld.closing_started, true);
        let mut due = Vec::with_capacity(ld.batch);
        while due.len() < ld.batch {
            let Some((id, cid)) = ld.pending.pop_front() else {
                break;
            };
            if self
                .conns
                .get(id.0)
                .is_some_and(|c| c.cid == cid && !c.closing)
            {
                due.push(id);
            }
        }
        let (left, step) = (!ld.pending.is_empty(), ld.step);
        if announce {
            self.log(LogLevel::Info, "Closing existing clients".to_string());
        }
        for id in due {
            self.close(id, CloseReason::ServerShutdown, true);
        }
        if !left {
            self.actions.push_back(Action::Exit);
            return;
        }
        // A random pause between half the step and the step.
        let nanos = u64::try_from(step.as_nanos()).unwrap_or(u64::MAX);
        let pause = if nanos > 1 {
            Duration::from_nanos((self.rng.timers.next_u64() % nanos).max(nanos / 2))
        } else {
            step
        };
        self.set_server_deadline(ServerTimer::LameDuck, Some(now + pause));
    }
}
