//! Gateway URLs within a cluster, as nats-server shares them: every
//! server's route `INFO` names its gateway URL, so a server's gateway
//! `INFO` lists the gateway URLs of its whole cluster (a remote cluster
//! then knows every server it may dial, and is told again when one comes
//! or goes); and a server that connects to a gateway tells its routes
//! (`INFO` with `gateway_cmd` 1, as for gateways), so that every server of
//! the cluster connects to it too, also one whose configuration names no
//! gateways.

use super::{GatewayInfo, RouteUrl};
use crate::server::{ConnId, Server};

impl Server {
    /// This server's gateway URL, as other clusters and this cluster's
    /// routes are told it (`advertise`, else the listener).
    pub(crate) fn gateway_url(&self) -> String {
        let g = self.opts.gateway.as_ref();
        crate::server::advertised_url(
            g.and_then(|g| g.advertise.as_deref()),
            g.map_or("", |g| g.host.as_str()),
            &self.opts.host,
            self.gateways.as_ref().map_or(0, |g| g.port),
        )
    }

    /// The gateway `INFO`: this server, its gateway's name, and the
    /// gateway URLs of its whole cluster.
    pub(crate) fn gateway_info_line(&self) -> Vec<u8> {
        let g = self.gateways.as_ref().expect("gateways are on");
        let url = self.gateway_url();
        let opts = self.opts.gateway.as_ref();
        // `advertise` names the host and port in INFO too.
        let (host, port) = match opts
            .and_then(|o| o.advertise.as_ref())
            .and_then(|_| crate::server::host_and_port(&url))
        {
            Some((h, p)) => (h.to_string(), p),
            None => (opts.map_or(String::new(), |o| o.host.clone()), g.port),
        };
        let info = GatewayInfo {
            server_id: self.info.server_id.clone(),
            server_name: self.info.server_name.clone(),
            version: self.info.version.clone(),
            proto: 1,
            go: String::new(),
            host,
            port,
            headers: self.info.headers,
            tls_required: self.gateway_tls().is_some(),
            tls_verify: self.gateway_tls().is_some(),
            max_payload: self.info.max_payload,
            gateway: g.name.clone(),
            gateway_urls: self.cluster_gateway_urls(),
            gateway_url: url,
            gateway_nrp: true,
            gateway_iom: true,
            ..GatewayInfo::default()
        };
        let mut out = b"INFO ".to_vec();
        serde_json::to_writer(&mut out, &info).expect("INFO serializes");
        out.extend_from_slice(b"\r\n");
        out
    }

    /// This server's gateway URL and those its routes told it, for its
    /// gateway `INFO`.
    pub(crate) fn cluster_gateway_urls(&self) -> Vec<String> {
        let own = self.gateway_url();
        let mut urls: Vec<String> = self
            .gateways
            .as_ref()
            .map(|g| g.peer_urls.values().cloned().collect())
            .unwrap_or_default();
        urls.retain(|u| *u != own);
        urls.sort();
        urls.dedup();
        urls.insert(0, own);
        urls
    }

    /// Route peer `peer` has gateway URL `url` (`None`: the route went):
    /// when the cluster's set changes, every inbound gateway connection is
    /// sent the new `INFO`.
    pub(crate) fn route_gateway_url(&mut self, peer: &str, url: Option<&str>) {
        let Some(g) = self.gateways.as_mut() else {
            return;
        };
        let changed = match url {
            Some(u) if !u.is_empty() => {
                g.peer_urls
                    .insert(peer.to_string(), u.to_string())
                    .as_deref()
                    != Some(u)
            }
            Some(_) => false,
            None => g.peer_urls.remove(peer).is_some(),
        };
        if !changed {
            return;
        }
        let line = self.gateway_info_line();
        for id in self.gateway_conns().1 {
            self.send(id, &line);
        }
    }

    /// The gossip `INFO` (`gateway_cmd` 1) that tells of gateway `name`
    /// at `urls`: to a route (`to_route`) it does not carry this server's
    /// id, so a peer does not take it for a new route (nats-server's
    /// choice); to a gateway connection it carries no id.
    pub(super) fn gateway_gossip_line(
        &self,
        name: &str,
        urls: &[String],
        to_route: bool,
    ) -> Vec<u8> {
        let info = GatewayInfo {
            server_id: if to_route {
                format!("GW{}", self.info.server_id)
            } else {
                String::new()
            },
            server_name: if to_route {
                self.info.server_name.clone()
            } else {
                String::new()
            },
            gateway: name.to_string(),
            gateway_urls: urls.to_vec(),
            gateway_cmd: 1,
            ..GatewayInfo::default()
        };
        let mut out = b"INFO ".to_vec();
        serde_json::to_writer(&mut out, &info).expect("INFO serializes");
        out.extend_from_slice(b"\r\n");
        out
    }

    /// An outbound connection to gateway `name` (at `urls`) is up: every
    /// route hears of it.
    pub(crate) fn gossip_gateway_to_routes(&mut self, name: &str, urls: &[String]) {
        if urls.is_empty() {
            return;
        }
        let line = self.gateway_gossip_line(name, urls, true);
        let routes: Vec<ConnId> = self.routes().into_iter().map(|(id, _)| id).collect();
        for id in routes {
            self.send(id, &line);
        }
    }

    /// A new route hears of every gateway this server has an outbound
    /// connection to.
    pub(crate) fn gateways_to_route(&mut self, route: ConnId) {
        let Some(g) = self.gateways.as_deref() else {
            return;
        };
        let mut out = Vec::new();
        for r in g
            .remotes
            .iter()
            .filter(|r| g.outbound.contains_key(&r.name) && !r.urls.is_empty())
        {
            let urls: Vec<String> = r.urls.iter().map(RouteUrl::addr).collect();
            out.extend_from_slice(&self.gateway_gossip_line(&r.name, &urls, true));
        }
        if !out.is_empty() {
            self.send(route, &out);
        }
    }

    /// A route told of gateway `name` at `urls`: connect to it too (or
    /// learn more of its URLs).
    pub(crate) fn gateway_from_route(&mut self, name: &str, urls: &[String], cmd: u8) {
        // Test-only: the news is dropped.
        let dropped = self.planted(crate::config::PlantedBug::IgnoreGatewayGossip);
        if self.gateways.is_none() || cmd != 1 || dropped {
            return;
        }
        self.add_gateway_urls(name, urls);
        self.learn_gateway(name, urls);
    }

    /// More URLs of known gateway `name` (from its `INFO` or a peer), tried
    /// after those already known.
    pub(crate) fn add_gateway_urls(&mut self, name: &str, urls: &[String]) {
        let Some(g) = self.gateways.as_mut() else {
            return;
        };
        let Some(r) = g.remotes.iter_mut().find(|r| r.name == name) else {
            return;
        };
        for u in urls {
            let Ok(url) = RouteUrl::parse(u) else {
                continue;
            };
            if !r
                .urls
                .iter()
                .any(|k| k.host == url.host && k.port == url.port)
            {
                r.urls.push(url);
            }
        }
    }
}
