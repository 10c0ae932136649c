//! TLS as far as the core is concerned: it asks the driver for the
//! handshake ([`Action::StartTls`]), times it, and starts the client's
//! timers when it is done. The handshake itself, the certificates and the
//! TLS library live in the driver (which side of the handshake a
//! connection takes follows from who made it: the server that dialed a
//! peer is the TLS client).
//!
//! As in nats-server: for clients, `INFO` goes out in plaintext, then the
//! handshake (unless `handshake_first`); a client that sends anything but
//! a TLS handshake is closed without a word (`TLS Handshake Failure`); the
//! authentication and ping timers start after the handshake. Routes and
//! gateways with TLS start the handshake before anything else, both
//! ways, and each side checks the other's certificate.

use super::{Action, CloseReason, ConnId, LogLevel, Server, timers::Timer};
use crate::auth::PeerCertificate;

impl Server {
    /// Marks a new connection as waiting for its handshake and times it.
    pub(super) fn start_tls(&mut self, id: ConnId) {
        let Some(tls) = &self.opts.tls else {
            return;
        };
        let (first, at) = (tls.handshake_first, self.now.instant + tls.timeout);
        self.conns[id.0].tls_pending = Some(id);
        self.set_deadline(id, Timer::Tls, Some(at));
        self.debug(id, || {
            "Starting TLS client connection handshake".to_string()
        });
        if first {
            // Before the Transmit of INFO: INFO goes out encrypted.
            self.actions.push_back(Action::StartTls { conn: id });
        }
    }

    /// A connection to another server with TLS on (`timeout`: the
    /// handshake's, `None`: plaintext) waits for its handshake, timed;
    /// with `now`, the handshake comes first, before the bytes queued
    /// next, which go out encrypted (routes and gateways always, leaf
    /// nodes with `handshake_first`).
    pub(super) fn await_peer_tls(
        &mut self,
        id: ConnId,
        timeout: Option<std::time::Duration>,
        now: bool,
    ) {
        let Some(timeout) = timeout else {
            return;
        };
        self.conns[id.0].tls_pending = Some(id);
        self.set_deadline(id, Timer::Tls, Some(self.now.instant + timeout));
        if now {
            self.actions.push_back(Action::StartTls { conn: id });
        }
    }

    pub(super) fn on_tls_ready(
        &mut self,
        id: ConnId,
        version: &str,
        cipher: &str,
        peer_cert: Option<&PeerCertificate>,
    ) {
        let Some(c) = self.conns.get_mut(id.0) else {
            return;
        };
        if c.closing || c.tls_pending.take().is_none() {
            return;
        }
        c.tls = Some((version.to_string(), cipher.to_string()));
        c.peer_cert = peer_cert.map(|p| Box::new(p.clone()));
        let client = c.kind == super::ConnKind::Client;
        self.set_deadline(id, Timer::Tls, None);
        if client {
            self.arm_client_timers(id);
        }
        self.debug(id, || "TLS handshake complete".to_string());
        self.debug(id, || {
            format!("TLS version {version}, cipher suite {cipher}")
        });
    }

    pub(super) fn on_tls_failed(&mut self, id: ConnId, error: &str) {
        let Some(c) = self.conns.get(id.0) else {
            return;
        };
        if c.closing {
            return;
        }
        let what = match c.kind {
            super::ConnKind::Route => "TLS route handshake error",
            super::ConnKind::Gateway => "TLS gateway handshake error",
            super::ConnKind::Leaf => "TLS leafnode handshake error",
            _ => "TLS handshake error",
        };
        self.conn_log(LogLevel::Error, id, &format!("{what}: {error}"));
        self.close(id, CloseReason::TlsHandshakeError, false);
    }

    pub(super) fn tls_timer(&mut self, id: ConnId) {
        if self.conns[id.0].tls_pending.is_some() {
            self.conn_log(LogLevel::Error, id, "TLS handshake timeout");
            self.close(id, CloseReason::TlsHandshakeError, false);
        }
    }
}
