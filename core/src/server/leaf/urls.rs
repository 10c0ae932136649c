//! Which hub server a leaf node dials, and how a hub tells its leaf nodes
//! of its cluster's other servers, as nats-server does.
//!
//! A hub's `INFO` lists the leaf node URLs of every server of its cluster
//! (`leafnode_urls`): its own, and the one each route peer named in its
//! route `INFO` (unless that peer has `leafnodes { no_advertise }`). When
//! a route comes or goes and the list changes, the hub sends it again to
//! every leaf node connected to it.
//!
//! A leaf node takes each list as the hub cluster's latest: the servers it
//! names come first, then the configured URLs (the ones already
//! configured by host and port are not repeated), unless the remote has
//! `ignore_discovered_servers`. When its connection is lost or a dial
//! fails, the remote moves on: the URL it used goes to the back if it was
//! first, and the first URL is dialed. A learned URL carries no user: the
//! first configured URL's user and password are sent with it, and, with
//! TLS, the first configured host name (not an address) is the name the
//! hub's certificate is checked against when the learned host is an
//! address.

use super::super::{ConnId, Server};
use crate::config::cluster::RouteUrl;

/// The URLs one remote dials.
#[derive(Debug)]
pub(crate) struct RemoteUrls {
    configured: Vec<RouteUrl>,
    /// What is dialed: the hub cluster's servers, then `configured`.
    list: Vec<RouteUrl>,
    /// The one dialed last.
    current: Option<RouteUrl>,
    /// The first configured user (and password), for learned URLs.
    user: Option<(String, Option<String>)>,
    /// The first configured host that is a name.
    tls_name: Option<String>,
    ignore_discovered: bool,
}

fn same_server(a: &RouteUrl, b: &RouteUrl) -> bool {
    a.host == b.host && a.port == b.port
}

fn is_address(host: &str) -> bool {
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<core::net::IpAddr>()
        .is_ok()
}

impl RemoteUrls {
    pub fn new(configured: &[RouteUrl], ignore_discovered: bool) -> RemoteUrls {
        RemoteUrls {
            configured: configured.to_vec(),
            list: configured.to_vec(),
            current: None,
            user: configured
                .iter()
                .find_map(|u| Some((u.user.clone()?, u.pass.clone()))),
            tls_name: configured
                .iter()
                .find(|u| !is_address(&u.host))
                .map(|u| u.host.clone()),
            ignore_discovered,
        }
    }

    /// Shuffles the configured URLs (Fisher-Yates; `below(n)` draws an
    /// index below `n`).
    pub fn shuffle(&mut self, mut below: impl FnMut(usize) -> usize) {
        for i in (1..self.configured.len()).rev() {
            self.configured.swap(i, below(i + 1));
        }
        self.list = self.configured.clone();
    }

    /// The URL to dial next: the first, unless it was the last one
    /// dialed (then it goes to the back).
    pub fn pick_next(&mut self) -> Option<RouteUrl> {
        if self.list.len() > 1
            && let Some(cur) = &self.current
            && same_server(cur, &self.list[0])
        {
            self.list.rotate_left(1);
        }
        self.current = self.list.first().cloned();
        self.current.clone()
    }

    /// The hub cluster's leaf node URLs (`host:port`), from a hub's
    /// `INFO`: they replace the ones learned before.
    pub fn learn(&mut self, urls: &[String]) {
        if self.ignore_discovered || urls.is_empty() {
            return;
        }
        let mut list: Vec<RouteUrl> = Vec::with_capacity(urls.len() + self.configured.len());
        for u in urls {
            let Ok(url) = RouteUrl::parse(&format!("nats-leaf://{u}")) else {
                continue;
            };
            if !self.configured.iter().any(|c| same_server(c, &url))
                && !list.iter().any(|l| same_server(l, &url))
            {
                list.push(url);
            }
        }
        list.extend(self.configured.iter().cloned());
        self.list = list;
    }

    /// The user and password to send: the dialed URL's, else the first
    /// configured one's.
    pub fn user(&self) -> Option<(String, Option<String>)> {
        match self.current.as_ref().and_then(|u| u.user.clone()) {
            Some(user) => Some((user, self.current.as_ref().and_then(|u| u.pass.clone()))),
            None => self.user.clone(),
        }
    }

    /// Every URL, in the order they are dialed (for tests).
    #[cfg(test)]
    pub fn all(&self) -> Vec<String> {
        self.list.iter().map(RouteUrl::addr).collect()
    }
}

impl Server {
    /// The name a hub's TLS certificate is checked against on leaf node
    /// connection `id`, dialed at `host`: the host, unless it is an
    /// address and the remote was configured with a host name.
    pub fn leaf_tls_name<'a>(&'a self, id: ConnId, host: &'a str) -> &'a str {
        if !is_address(host) {
            return host;
        }
        self.leaf_remote_of(id)
            .and_then(|i| {
                self.leafnodes
                    .as_ref()?
                    .remotes
                    .get(i)?
                    .urls
                    .tls_name
                    .as_deref()
            })
            .unwrap_or(host)
    }

    /// This server's leaf node URLs and those of its route peers that
    /// told theirs: what a hub's `INFO` lists.
    pub(super) fn cluster_leaf_urls(&self) -> Vec<String> {
        let mut urls = self.leaf_urls();
        if let Some(l) = self.leafnodes.as_ref() {
            for u in l.peer_urls.values() {
                if !urls.contains(u) {
                    urls.push(u.clone());
                }
            }
        }
        urls
    }

    /// What route `INFO` tells of this server's leaf node listener: its
    /// URL, unless it has none or `no_advertise`.
    pub(crate) fn leaf_url_for_routes(&self) -> Vec<String> {
        let listening = self.leafnodes.as_ref().is_some_and(|l| l.port != 0);
        let advertised = self
            .opts
            .leafnodes
            .as_ref()
            .is_some_and(|l| l.port.is_some() && !l.no_advertise);
        if listening && advertised {
            self.leaf_urls()
        } else {
            Vec::new()
        }
    }

    /// Route peer `peer` told its leaf node URL (`Some`), or its route is
    /// gone (`None`): if this hub's list changed, every leaf node
    /// connected to it hears the new one.
    pub(crate) fn route_leaf_url(&mut self, peer: &str, urls: Option<&[String]>) {
        let Some(l) = self.leafnodes.as_mut() else {
            return;
        };
        let changed = match urls {
            // A route tells one URL at most.
            Some([u]) if !u.is_empty() => {
                l.peer_urls.insert(peer.to_string(), u.clone()).as_ref() != Some(u)
            }
            Some(_) => false,
            None => l.peer_urls.remove(peer).is_some(),
        };
        if !changed || self.shutting_down {
            return;
        }
        let hubbed: Vec<ConnId> = l
            .ready
            .iter()
            .copied()
            .filter(|id| {
                self.conns
                    .get(id.0)
                    .and_then(|c| c.leaf.as_ref())
                    .is_some_and(|l| !l.solicited)
            })
            .collect();
        if hubbed.is_empty() {
            return;
        }
        let line = self.hub_info_line(0, "", "", None);
        for id in hubbed {
            self.send(id, &line);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn urls(list: &[&str]) -> Vec<RouteUrl> {
        list.iter().map(|u| RouteUrl::parse(u).unwrap()).collect()
    }

    #[test]
    fn learned_urls_come_first_and_the_one_dialed_moves_back() {
        let mut r = RemoteUrls::new(&urls(&["nats-leaf://u:p@hub-a:7422"]), false);
        assert_eq!(r.pick_next().unwrap().host, "hub-a");
        r.learn(&[
            "10.0.0.2:7422".into(),
            "hub-a:7422".into(),
            "10.0.0.3:7422".into(),
        ]);
        assert_eq!(r.all(), ["10.0.0.2:7422", "10.0.0.3:7422", "hub-a:7422"]);
        // hub-a was dialed, and is not first: the first is next.
        assert_eq!(r.pick_next().unwrap().addr(), "10.0.0.2:7422");
        // The learned URL goes with the configured user.
        assert_eq!(r.user(), Some(("u".into(), Some("p".into()))));
        // It failed: it goes to the back.
        assert_eq!(r.pick_next().unwrap().addr(), "10.0.0.3:7422");
        assert_eq!(r.pick_next().unwrap().addr(), "hub-a:7422");
        assert_eq!(r.pick_next().unwrap().addr(), "10.0.0.2:7422");
        // A later list replaces what was learned.
        r.learn(&["10.0.0.4:7422".into()]);
        assert_eq!(r.all(), ["10.0.0.4:7422", "hub-a:7422"]);
        assert_eq!(r.tls_name.as_deref(), Some("hub-a"));
    }

    #[test]
    fn ignore_discovered_servers_keeps_the_configured_urls() {
        let mut r = RemoteUrls::new(&urls(&["nats-leaf://10.0.0.1:7422"]), true);
        r.learn(&["10.0.0.2:7422".into()]);
        assert_eq!(r.all(), ["10.0.0.1:7422"]);
        assert_eq!(r.pick_next().unwrap().addr(), "10.0.0.1:7422");
        assert_eq!(r.pick_next().unwrap().addr(), "10.0.0.1:7422");
        assert_eq!(r.tls_name, None);
        assert_eq!(r.user(), None);
    }
}
