//! Gossip within a cluster: a new member is told to the others (its
//! `INFO` with the address to dial it at) and a server heard of this way
//! is dialed; and the client URLs of every member reach this server's
//! clients (`connect_urls`, with an async `INFO` when they change).

use serde::Serialize;

use super::{PeerInfo, Remote};
use crate::config::cluster::RouteUrl;
use crate::server::{ConnId, Server};

impl Server {
    /// This server's own client URLs, first in every `connect_urls`.
    pub(crate) fn own_client_urls(&self) -> Vec<String> {
        let host = match self.opts.host.as_str() {
            "" | "0.0.0.0" | "::" | "[::]" => return Vec::new(),
            h => h,
        };
        let url = if host.contains(':') {
            format!("[{host}]:{}", self.opts.port)
        } else {
            format!("{host}:{}", self.opts.port)
        };
        vec![url]
    }

    /// Tells every other route about the peer of route `id` (its `INFO`
    /// with the address to dial it at), so that they dial it.
    pub(super) fn tell_routes_of(&mut self, id: ConnId, info: &PeerInfo) {
        let c = &self.conns[id.0];
        let ip = if info.ip.is_empty() {
            let host = c.peer.ip();
            let host = if host.is_ipv6() {
                format!("[{host}]")
            } else {
                host.to_string()
            };
            format!("nats-route://{host}:{}/", info.port)
        } else {
            info.ip.clone()
        };
        let gossip = GossipInfo {
            server_id: &info.server_id,
            server_name: &info.server_name,
            version: &info.version,
            proto: 1,
            host: &info.host,
            port: info.port,
            headers: info.headers,
            ip: &ip,
            cluster: &info.cluster,
            connect_urls: &info.connect_urls,
        };
        let mut line = b"INFO ".to_vec();
        serde_json::to_writer(&mut line, &gossip).expect("INFO serializes");
        line.extend_from_slice(b"\r\n");
        let others: Vec<ConnId> = self
            .cluster
            .as_ref()
            .map(|c| c.routes.values().copied().filter(|&r| r != id).collect())
            .unwrap_or_default();
        for r in others {
            self.send(r, &line);
        }
    }

    /// A peer told of another member: dial it unless it is known.
    pub(super) fn learn_server(&mut self, info: &PeerInfo) {
        if info.server_id == self.info.server_id {
            return;
        }
        let Some(cluster) = self.cluster.as_mut() else {
            return;
        };
        if cluster.routes.contains_key(&info.server_id) {
            return;
        }
        let url = if info.ip.is_empty() {
            RouteUrl::parse(&format!("{}:{}", info.host, info.port))
        } else {
            RouteUrl::parse(&info.ip)
        };
        let Ok(url) = url else {
            return;
        };
        if let Some(i) = cluster
            .remotes
            .iter()
            .position(|r| r.url.host == url.host && r.url.port == url.port)
        {
            let r = &mut cluster.remotes[i];
            if r.conn.is_none() {
                r.gone = false;
                r.failures = 0;
                self.dial_remote(i);
            }
            return;
        }
        cluster.remotes.push(Remote {
            url,
            explicit: false,
            conn: None,
            failures: 0,
            gone: false,
        });
        let i = cluster.remotes.len() - 1;
        self.dial_remote(i);
    }

    /// Records the client URLs of route `id`'s peer (`None`: forget them)
    /// and tells clients when the set changed.
    pub(super) fn set_peer_urls(&mut self, id: ConnId, urls: Option<Vec<String>>) {
        if self.opts.cluster.as_ref().is_some_and(|c| c.no_advertise) {
            return;
        }
        let Some(peer) = self.conns[id.0]
            .route
            .as_ref()
            .and_then(|r| r.peer.as_ref())
            .map(|p| p.server_id.clone())
        else {
            return;
        };
        let cluster = self.cluster.as_mut().expect("a cluster");
        let changed = match urls {
            Some(u) => cluster.peer_urls.insert(peer, u.clone()).as_ref() != Some(&u),
            None => cluster.peer_urls.remove(&peer).is_some(),
        };
        if changed {
            self.refresh_connect_urls();
        }
    }

    /// Rebuilds clients' `connect_urls` (this server's own first) and
    /// sends the new `INFO` to every client that reads async `INFO`.
    pub(super) fn refresh_connect_urls(&mut self) {
        // Routes closing because this server stops: clients must keep the
        // other servers to fail over to (nats-server sends nothing then).
        if self.shutting_down || self.lame_duck.is_some() {
            return;
        }
        let mut urls = self.own_client_urls();
        if let Some(c) = self.cluster.as_ref() {
            for u in c.peer_urls.values().flatten() {
                if !urls.contains(u) {
                    urls.push(u.clone());
                }
            }
        }
        if urls == self.info.connect_urls {
            return;
        }
        self.info.connect_urls = urls;
        let info = self.info.clone();
        self.send_info_to_clients(info);
    }
}

/// What a server tells its other routes about a new peer.
#[derive(Serialize)]
struct GossipInfo<'a> {
    server_id: &'a str,
    server_name: &'a str,
    version: &'a str,
    proto: i32,
    host: &'a str,
    port: u16,
    headers: bool,
    ip: &'a str,
    cluster: &'a str,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    connect_urls: &'a [String],
}
