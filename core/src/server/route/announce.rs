//! Interest between routes: all of this server's when a route comes up,
//! each change after that (`RS+` with a queue group's weight, `RS-`), and
//! the peer's, kept as subscriptions of the route connection.

use super::{encode_sub, encode_unsub, origin_sub_key};
use crate::server::{AccountId, ConnId, Server};

impl Server {
    /// Tells a newly registered route all of this server's interest.
    pub(super) fn send_all_interest(&mut self, id: ConnId) {
        let mut out = Vec::new();
        for acc in &self.accounts {
            for (key, count) in &acc.interest {
                let weight = self.route_weight(count);
                if weight == 0 {
                    continue;
                }
                let (subject, queue) = crate::server::interest::split(key);
                if !self.route_imports(subject) {
                    continue;
                }
                encode_sub(&mut out, &acc.name, subject, queue.map(|q| (q, weight)));
            }
        }
        if !out.is_empty() {
            self.send(id, &out);
        }
    }

    /// Tells every route that interest in `subject` (and `queue`) of
    /// `account` is now `weight` (0: gone).
    pub(crate) fn tell_routes(
        &mut self,
        account: AccountId,
        subject: &[u8],
        queue: Option<&[u8]>,
        weight: u32,
    ) {
        let Some(cluster) = self.cluster.as_deref() else {
            return;
        };
        if cluster.routes.is_empty() || !self.route_imports(subject) {
            return;
        }
        // Test-only: the route is never told the interest went.
        if weight == 0 && self.planted(crate::config::PlantedBug::DropRouteUnsub) {
            return;
        }
        let mut line = Vec::new();
        let name = &self.accounts[account.0 as usize].name;
        if weight > 0 {
            encode_sub(&mut line, name, subject, queue.map(|q| (q, weight)));
        } else {
            encode_unsub(&mut line, name, subject, queue);
        }
        let routes: Vec<ConnId> = cluster.routes.values().copied().collect();
        for r in routes {
            self.send(r, &line);
        }
    }

    /// `RS+` (or `LS+` with the leaf node cluster it is for): the peer's
    /// interest, kept as a subscription of the route.
    pub(super) fn remote_sub(
        &mut self,
        id: ConnId,
        origin: &[u8],
        account: &[u8],
        subject: &[u8],
        queue: Option<(&[u8], &[u8])>,
    ) {
        let Some(acc) = self.account_by_name(account) else {
            self.debug(id, || {
                format!(
                    "Unknown account {:?} for remote subject {:?}",
                    String::from_utf8_lossy(account),
                    String::from_utf8_lossy(subject)
                )
            });
            return;
        };
        if !self.route_exports(subject) {
            self.debug(id, || {
                format!(
                    "Can not export {:?}, ignoring remote subscription request",
                    String::from_utf8_lossy(subject)
                )
            });
            return;
        }
        let weight = queue.map_or(1, |(_, w)| crate::server::interest::queue_weight(w));
        let queue = queue.map(|(q, _)| q);
        let key = origin_sub_key(origin, account, subject, queue);
        self.peer_subscribe(id, acc, &key, subject, queue, weight);
    }

    /// Whether routes are told of interest in `subject` (`permissions {
    /// import }`): what may come in from them.
    pub(crate) fn route_imports(&self, subject: &[u8]) -> bool {
        self.cluster
            .as_ref()
            .and_then(|c| c.perms.as_ref())
            .is_none_or(|p| p.imports.allows(subject))
    }

    /// Whether routes' interest in `subject`, and messages on it, go to
    /// them (`permissions { export }`).
    pub(crate) fn route_exports(&self, subject: &[u8]) -> bool {
        self.cluster
            .as_ref()
            .and_then(|c| c.perms.as_ref())
            .is_none_or(|p| p.exports.allows(subject))
    }

    /// `RS-` (or `LS-`): the peer lost its interest.
    pub(super) fn remote_unsub(
        &mut self,
        id: ConnId,
        origin: &[u8],
        account: &[u8],
        subject: &[u8],
        queue: Option<&[u8]>,
    ) {
        let key = origin_sub_key(origin, account, subject, queue);
        self.peer_unsubscribe(id, &key);
    }
}
