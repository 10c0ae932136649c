//! The monitoring endpoints of the connections between servers:
//! `/routez`, `/gatewayz`, `/leafz`, and their blocks in `/varz`.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value, json};

use super::super::Server;
use crate::time::{Now, go_duration, rfc3339_nanos};

impl Server {
    /// `/routez`: each registered route, with its peer's subjects when
    /// `subs` (nats-server 2.9.10's fields, and 2.15's `remote_name`).
    pub(crate) fn routez(&self, now: Now, subs: bool) -> Value {
        let unix_at = |i: crate::time::Instant| {
            now.unix_nanos
                .saturating_sub(now.instant.since(i).as_nanos() as u64)
        };
        let configured: Vec<(String, u16)> = self
            .opts
            .cluster
            .as_ref()
            .map(|c| c.routes.iter().map(|r| (r.host.clone(), r.port)).collect())
            .unwrap_or_default();
        let mut routes: Vec<Value> = self
            .routes()
            .into_iter()
            .map(|(id, peer)| {
                let c = &self.conns[id.0];
                let r = c.route.as_deref().expect("a route has its state");
                let remote = r.remote.and_then(|i| self.cluster.as_ref()?.remotes.get(i));
                let is_configured = remote.is_some_and(|rm| {
                    rm.explicit && configured.contains(&(rm.url.host.clone(), rm.url.port))
                });
                let mut v = json!({
                    "rid": c.cid,
                    "remote_id": peer.server_id,
                    "remote_name": peer.server_name,
                    "did_solicit": r.solicited,
                    "is_configured": is_configured,
                    "ip": c.peer.ip().to_string(),
                    "port": c.peer.port(),
                    "start": rfc3339_nanos(unix_at(c.start)),
                    "last_activity": rfc3339_nanos(unix_at(c.last_activity)),
                    "rtt": go_duration(c.rtt.unwrap_or_default()),
                    "uptime": go_duration(now.instant.since(c.start)),
                    "idle": go_duration(now.instant.since(c.last_activity)),
                    "pending_size": c.pending_bytes(),
                    "in_msgs": c.counters.in_msgs,
                    "out_msgs": c.counters.out_msgs,
                    "in_bytes": c.counters.in_bytes,
                    "out_bytes": c.counters.out_bytes,
                    "subscriptions": c.subs.len(),
                });
                if subs && !c.subs.is_empty() {
                    v.as_object_mut()
                        .expect("an object")
                        .insert("subscriptions_list".into(), self.subjects_of(c));
                }
                v
            })
            .collect();
        routes.sort_by_key(|v| v["rid"].as_u64());
        self.stamped(
            now,
            json!({
                "num_routes": routes.len(),
                "routes": routes,
            }),
        )
    }

    /// `/varz`'s `cluster`: the cluster's name, listener and configured
    /// routes (empty without one).
    pub(super) fn varz_cluster(&self) -> Value {
        let (Some(c), Some(cluster)) = (&self.opts.cluster, &self.cluster) else {
            return json!({});
        };
        let urls: Vec<String> = c.routes.iter().map(|r| r.addr()).collect();
        let mut v = json!({
            "name": cluster.name,
            "addr": if c.host.is_empty() { "0.0.0.0" } else { c.host.as_str() },
            "cluster_port": cluster.port,
            "auth_timeout": c.auth_timeout.unwrap_or(Duration::from_secs(2)).as_secs_f64(),
        });
        let m = v.as_object_mut().expect("an object");
        if !urls.is_empty() {
            m.insert("urls".into(), json!(urls));
        }
        tls_fields(m, c.tls.as_ref());
        v
    }

    /// `/gatewayz`: this cluster's gateway name and listener, each
    /// outbound connection by remote gateway name, and the inbound ones.
    pub(crate) fn gatewayz(&self, now: Now) -> Value {
        let Some(g) = self.opts.gateway.as_ref() else {
            return self.stamped(
                now,
                json!({ "outbound_gateways": {}, "inbound_gateways": {} }),
            );
        };
        let unix_at = |i: crate::time::Instant| {
            now.unix_nanos
                .saturating_sub(now.instant.since(i).as_nanos() as u64)
        };
        let conn = |id: super::ConnId| -> Value {
            let c = &self.conns[id.0];
            let name = c.gateway.as_ref().map_or("", |g| g.server_name.as_str());
            json!({
                "cid": c.cid,
                "ip": c.peer.ip().to_string(),
                "port": c.peer.port(),
                "start": rfc3339_nanos(unix_at(c.start)),
                "last_activity": rfc3339_nanos(unix_at(c.last_activity)),
                "rtt": go_duration(c.rtt.unwrap_or_default()),
                "uptime": go_duration(now.instant.since(c.start)),
                "idle": go_duration(now.instant.since(c.last_activity)),
                "pending_bytes": c.pending_bytes(),
                "in_msgs": c.counters.in_msgs,
                "out_msgs": c.counters.out_msgs,
                "in_bytes": c.counters.in_bytes,
                "out_bytes": c.counters.out_bytes,
                "subscriptions": c.subs.len(),
                "name": name,
            })
        };
        let (outbound, inbound) = self.gateway_conns();
        let configured: Vec<&str> = g.gateways.iter().map(|r| r.name.as_str()).collect();
        let mut out = serde_json::Map::new();
        for (name, id) in outbound {
            out.insert(
                name.clone(),
                json!({ "configured": configured.contains(&name.as_str()), "connection": conn(id) }),
            );
        }
        let mut inb: BTreeMap<String, Vec<Value>> = BTreeMap::new();
        for id in inbound {
            let name = self.conns[id.0]
                .gateway
                .as_ref()
                .map_or(String::new(), |g| g.name.clone());
            inb.entry(name.clone()).or_default().push(json!({
                "configured": configured.contains(&name.as_str()),
                "connection": conn(id),
            }));
        }
        self.stamped(
            now,
            json!({
                "name": g.name,
                "host": if g.host.is_empty() { "0.0.0.0" } else { g.host.as_str() },
                "port": self.gateways.as_ref().map_or(0, |x| x.port),
                "outbound_gateways": out,
                "inbound_gateways": inb,
            }),
        )
    }

    /// `/varz`'s `gateway`: the gateway name, listener and the configured
    /// gateways (empty without one).
    pub(super) fn varz_gateway(&self) -> Value {
        let Some(g) = self.opts.gateway.as_ref() else {
            return json!({});
        };
        let gateways: Vec<Value> = g
            .gateways
            .iter()
            .map(|r| json!({ "name": r.name, "urls": r.urls.iter().map(|u| u.addr()).collect::<Vec<_>>() }))
            .collect();
        let mut v = json!({
            "name": g.name,
            "host": if g.host.is_empty() { "0.0.0.0" } else { g.host.as_str() },
            "port": self.gateways.as_ref().map_or(0, |x| x.port),
            "auth_timeout": g.auth_timeout.unwrap_or(Duration::from_secs(2)).as_secs_f64(),
            "tls_timeout": 2.0,
            "gateways": gateways,
            "reject_unknown": g.reject_unknown,
        });
        tls_fields(v.as_object_mut().expect("an object"), g.tls.as_ref());
        v
    }

    /// `/leafz`: each leaf node connection past its handshake (`null`
    /// when none, as nats-server 2.9.10 shows it), with its subjects when
    /// `subs`.
    pub(crate) fn leafz(&self, now: Now, subs: bool) -> Value {
        let leafs: Vec<Value> = self
            .leafs()
            .into_iter()
            .filter_map(|id| {
                let c = self.conns.get(id.0)?;
                let l = c.leaf.as_ref()?;
                let mut v = json!({
                    "name": l.name,
                    "is_spoke": l.solicited,
                    "account": self.accounts[c.account.0 as usize].name,
                    "ip": c.peer.ip().to_string(),
                    "port": c.peer.port(),
                    "rtt": go_duration(c.rtt.unwrap_or_default()),
                    "in_msgs": c.counters.in_msgs,
                    "out_msgs": c.counters.out_msgs,
                    "in_bytes": c.counters.in_bytes,
                    "out_bytes": c.counters.out_bytes,
                    "subscriptions": c.subs.len(),
                });
                if subs && !c.subs.is_empty() {
                    v.as_object_mut()
                        .expect("an object")
                        .insert("subscriptions_list".into(), self.subjects_of(c));
                }
                Some(v)
            })
            .collect();
        let n = leafs.len();
        let leafs = if n == 0 { Value::Null } else { json!(leafs) };
        self.stamped(now, json!({ "leafnodes": n, "leafs": leafs }))
    }

    /// `/varz`'s `leaf`: the leaf node listener (empty without one).
    pub(super) fn varz_leaf(&self) -> Value {
        let Some(l) = self.opts.leafnodes.as_ref() else {
            return json!({});
        };
        let port = self.leafnodes.as_ref().map_or(0, |ln| ln.port);
        let mut v = json!({
            "host": if l.host.is_empty() { "0.0.0.0" } else { l.host.as_str() },
            "port": port,
            "auth_timeout": l.auth_timeout.unwrap_or(Duration::from_secs(2)).as_secs_f64(),
            "tls_timeout": 2.0,
        });
        tls_fields(v.as_object_mut().expect("an object"), l.tls.as_ref());
        v
    }
}

impl Server {
    /// The subjects of a connection's subscriptions, sorted (a client's in
    /// `/connz`, what a peer told this server in `/routez` and `/leafz`).
    pub(super) fn subjects_of(&self, c: &super::super::conn::Conn) -> Value {
        let mut list: Vec<String> = c
            .subs
            .values()
            .map(|h| String::from_utf8_lossy(&self.subs[h.0 as usize].subject).into_owned())
            .collect();
        list.sort();
        json!(list)
    }
}

/// A `/varz` block's TLS fields, as nats-server gives them: the handshake
/// timeout (2 s without TLS), and `tls_required`/`tls_verify` when set.
fn tls_fields(m: &mut serde_json::Map<String, Value>, tls: Option<&crate::config::TlsOptions>) {
    let timeout = tls.map_or(2.0, |t| t.timeout.as_secs_f64());
    m.insert("tls_timeout".into(), json!(timeout));
    if let Some(t) = tls {
        m.insert("tls_required".into(), json!(true));
        if t.verify {
            m.insert("tls_verify".into(), json!(true));
        }
    }
}
