//! The `gateway {}` block: this cluster's gateway name and listener, and
//! the other clusters (gateways) of the super-cluster to dial, with
//! nats-server's keys.

use std::time::Duration;

use super::cluster::{RouteUrl, unknown, url};
use crate::conf::{ConfError, Entry, Field, Value, Warning};

/// Gateways between clusters.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GatewayOptions {
    /// This cluster's gateway name (every server of the cluster has it).
    pub name: String,
    pub host: String,
    /// 0: any free port.
    pub port: u16,
    /// Remote gateways to dial.
    pub gateways: Vec<RemoteGateway>,
    /// What a dialing gateway must send in its `CONNECT`.
    pub user: Option<String>,
    pub pass: Option<String>,
    pub auth_timeout: Option<Duration>,
    /// Refuse gateways that are not configured (nor learned by gossip).
    pub reject_unknown: bool,
    /// TLS on every gateway connection (`tls {}`): the handshake comes
    /// first, and both sides show and check certificates.
    pub tls: Option<super::TlsOptions>,
    /// The `host[:port]` other clusters are told to dial instead of the
    /// listener's (`advertise`: behind a NAT or a load balancer); a host
    /// alone keeps the listener's port.
    pub advertise: Option<String>,
}

/// A remote gateway: its name and URLs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteGateway {
    pub name: String,
    pub urls: Vec<RouteUrl>,
    /// TLS for this server's connections to that gateway (`tls {}`),
    /// instead of `gateway { tls }`'s.
    pub tls: Option<super::TlsOptions>,
}

/// Reads `gateway {}`.
pub fn parse(entry: &Entry, warnings: &mut Vec<Warning>) -> Result<GatewayOptions, ConfError> {
    let block = entry.field().as_map()?;
    let mut g = GatewayOptions::default();
    for e in block {
        let f = e.field();
        match e.key.to_ascii_lowercase().as_str() {
            "name" => {
                let n = f.as_str()?;
                if n.contains(' ') {
                    return Err(ConfError::at(
                        f.pos,
                        "gateway name cannot contain spaces".to_string(),
                    ));
                }
                g.name = n.to_string();
            }
            "listen" => {
                let (host, port) = super::file::listen(&f)?;
                if let Some(h) = host {
                    g.host = h;
                }
                g.port = port;
            }
            "host" | "net" => g.host = f.as_str()?.to_string(),
            "port" => {
                g.port = match f.value {
                    Value::Integer(-1) => 0,
                    _ => f.as_u16_port()?,
                }
            }
            "authorization" => {
                for a in f.as_map()? {
                    let af = a.field();
                    match a.key.to_ascii_lowercase().as_str() {
                        "user" | "username" => g.user = Some(af.as_str()?.to_string()),
                        "pass" | "password" => g.pass = Some(af.as_str()?.to_string()),
                        "timeout" => g.auth_timeout = Some(af.as_duration(warnings)?),
                        _ => return Err(unknown(a)),
                    }
                }
            }
            "gateways" => {
                for item in f.as_array()? {
                    g.gateways.push(remote(&item.field("gateways"))?);
                }
            }
            "reject_unknown" | "reject_unknown_cluster" => g.reject_unknown = f.as_bool()?,
            "advertise" | "gateway_advertise" => g.advertise = Some(f.as_str()?.to_string()),
            "tls" => g.tls = Some(super::tls::peer_block(e, "gateways")?),
            "connect_retries" => {}
            _ => return Err(unknown(e)),
        }
    }
    if g.name.is_empty() {
        return Err(ConfError::at(
            &entry.key_pos,
            "gateway has no name".to_string(),
        ));
    }
    Ok(g)
}

fn remote(f: &Field<'_>) -> Result<RemoteGateway, ConfError> {
    let mut r = RemoteGateway {
        name: String::new(),
        urls: Vec::new(),
        tls: None,
    };
    for e in f.as_map()? {
        let ef = e.field();
        match e.key.to_ascii_lowercase().as_str() {
            "name" => r.name = ef.as_str()?.to_string(),
            "url" => r.urls.push(url(&ef)?),
            "urls" => {
                for item in ef.as_array()? {
                    r.urls.push(url(&item.field("urls"))?);
                }
            }
            "tls" => r.tls = Some(super::tls::peer_block(e, "gateways")?),
            _ => return Err(unknown(e)),
        }
    }
    if r.name.is_empty() {
        return Err(ConfError::at(
            f.pos,
            "gateway remote has no name".to_string(),
        ));
    }
    Ok(r)
}
