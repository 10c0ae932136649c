//! The `cluster {}` block and route URLs: where this server listens for
//! other servers of its cluster, which ones it dials, and what it asks of
//! those that dial it, with nats-server's keys and error texts.

use std::time::Duration;

use crate::conf::{ConfError, Entry, Field, Value, Warning};

/// Routes: the cluster's own listener and the servers to dial.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ClusterOptions {
    /// The cluster's name; every member must have the same. Empty: the
    /// name is taken from the first peer that has one (nats-server's
    /// dynamic cluster name).
    pub name: String,
    pub host: String,
    /// 0: any free port (nats-server's -1).
    pub port: u16,
    /// Servers to dial and keep dialing (`routes`, `--routes`).
    pub routes: Vec<RouteUrl>,
    /// Credentials a dialing server must present (`authorization`).
    pub user: Option<String>,
    pub pass: Option<String>,
    /// How long a dialing server has to send `CONNECT`.
    pub auth_timeout: Option<Duration>,
    /// Do not tell clients about the other servers' client URLs.
    pub no_advertise: bool,
    /// The `host:port` other servers are told to dial this one at.
    pub advertise: Option<String>,
    /// Dial attempts for a server learned from a peer (0: once).
    pub connect_retries: u32,
    /// TLS on every route (`tls {}`): the handshake comes first, and both
    /// sides show and check certificates.
    pub tls: Option<super::TlsOptions>,
    /// What crosses routes (`permissions { import, export }`): `publish`
    /// is `import`, the subjects whose interest this server tells its
    /// routes (so their messages come in); `subscribe` is `export`, the
    /// subjects whose interest it takes from them (so messages go out).
    pub permissions: Option<crate::auth::Permissions>,
}

/// A route to dial: `nats-route://[user:pass@]host:port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteUrl {
    pub host: String,
    pub port: u16,
    pub user: Option<String>,
    pub pass: Option<String>,
}

impl RouteUrl {
    /// Parses a route URL as nats-server takes them: any scheme
    /// (`nats-route://` by convention, `nats://` works too), optional
    /// `user:pass@`, a host (IPv6 in brackets) and a port.
    pub fn parse(text: &str) -> Result<RouteUrl, String> {
        let bad = || format!("error parsing route url [{text:?}]");
        let rest = text.trim();
        let rest = match rest.split_once("://") {
            Some((_, r)) => r,
            None => rest,
        };
        let rest = rest.trim_end_matches('/');
        let (userinfo, hostport) = match rest.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, rest),
        };
        let (host, port) = match hostport.strip_prefix('[') {
            Some(r) => r.split_once("]:").ok_or_else(bad)?,
            None => hostport.rsplit_once(':').ok_or_else(bad)?,
        };
        let port: u16 = port.parse().map_err(|_| bad())?;
        if host.is_empty() || port == 0 {
            return Err(bad());
        }
        let (user, pass) = match userinfo {
            Some(u) => match u.split_once(':') {
                Some((u, p)) => (Some(u.to_string()), Some(p.to_string())),
                None => (Some(u.to_string()), None),
            },
            None => (None, None),
        };
        Ok(RouteUrl {
            host: host.to_string(),
            port,
            user,
            pass,
        })
    }

    /// `host:port` to dial (IPv6 hosts in brackets).
    pub fn addr(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// Keys of `cluster {}` natrix reads but whose 2.10+ features it leaves
/// off, as an older peer would: a route is one plain connection.
const OFF: &[&str] = &["pool_size", "compression", "accounts"];

/// Keys of `cluster {}` natrix does not have yet, refused by name.
/// A key natrix refuses until it has `what`, by name.
pub(super) fn not_yet(e: &Entry, what: &str) -> ConfError {
    ConfError::at(
        &e.key_pos,
        format!(
            "{:?} is not supported yet: natrix does not have {what} yet",
            e.key
        ),
    )
}

/// A key nats-server does not know either.
pub(super) fn unknown(e: &Entry) -> ConfError {
    ConfError::at(&e.key_pos, format!("unknown field {:?}", e.key))
}

/// A URL value of the cluster, leaf node and gateway blocks.
pub(super) fn url(f: &Field<'_>) -> Result<RouteUrl, ConfError> {
    RouteUrl::parse(f.as_str()?).map_err(|e| ConfError::at(f.pos, e))
}

/// Reads `cluster {}`.
pub fn parse(entry: &Entry, warnings: &mut Vec<Warning>) -> Result<ClusterOptions, ConfError> {
    let block = entry.field().as_map()?;
    let mut c = ClusterOptions::default();
    for e in block {
        let f = e.field();
        let key = e.key.to_ascii_lowercase();
        match key.as_str() {
            "name" => c.name = name(&f)?,
            "listen" => {
                let (host, port) = super::file::listen(&f)?;
                if let Some(h) = host {
                    c.host = h;
                }
                c.port = port;
            }
            "host" | "net" => c.host = f.as_str()?.to_string(),
            "port" => c.port = port(&f)?,
            "routes" => {
                for item in f.as_array()? {
                    let s = item.field("routes").as_str()?;
                    c.routes
                        .push(RouteUrl::parse(s).map_err(|r| ConfError::at(&item.pos, r))?);
                }
            }
            "authorization" => {
                let map = f.as_map()?;
                for a in map {
                    let af = a.field();
                    match a.key.to_ascii_lowercase().as_str() {
                        "user" | "username" => c.user = Some(af.as_str()?.to_string()),
                        "pass" | "password" => c.pass = Some(af.as_str()?.to_string()),
                        "timeout" => {
                            c.auth_timeout = Some(Duration::from_secs_f64(af.as_f64()?.max(0.0)))
                        }
                        other => {
                            return Err(ConfError::at(
                                &a.key_pos,
                                format!(
                                    "{other:?} in cluster authorization is not supported yet: \
                                     natrix checks a route's user and password only"
                                ),
                            ));
                        }
                    }
                }
            }
            "tls" => c.tls = Some(super::tls::peer_block(e, "routes")?),
            "no_advertise" => c.no_advertise = f.as_bool()?,
            "permissions" => {
                let mut errors = Vec::new();
                let p = super::authorization::parse_permissions(&f, &mut errors)?;
                if let Some(e) = errors.into_iter().next() {
                    return Err(e);
                }
                if p.response.is_some() {
                    return Err(ConfError::at(
                        f.pos,
                        "Cluster permissions do not support dynamic responses".to_string(),
                    ));
                }
                c.permissions = Some(p);
            }
            "cluster_advertise" | "advertise" => c.advertise = Some(f.as_str()?.to_string()),
            "connect_retries" => {
                c.connect_retries = u32::try_from(f.as_i64()?.max(0)).unwrap_or(u32::MAX)
            }
            k if OFF.contains(&k) => warnings.push(Warning {
                pos: e.key_pos.clone(),
                field: e.key.clone(),
                reason: "natrix leaves it off: a route is one plain connection per peer"
                    .to_string(),
            }),
            _ => return Err(unknown(e)),
        }
    }
    Ok(c)
}

fn name(f: &Field<'_>) -> Result<String, ConfError> {
    let n = f.as_str()?;
    if n.contains(' ') {
        return Err(ConfError::at(
            f.pos,
            "cluster name cannot contain spaces or new lines".to_string(),
        ));
    }
    Ok(n.to_string())
}

fn port(f: &Field<'_>) -> Result<u16, ConfError> {
    match f.value {
        Value::Integer(-1) => Ok(0),
        _ => f.as_u16_port(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_urls_parse_as_nats_server_takes_them() {
        let u = RouteUrl::parse("nats-route://ruser:T0p@127.0.0.1:6222").unwrap();
        assert_eq!(
            (
                u.host.as_str(),
                u.port,
                u.user.as_deref(),
                u.pass.as_deref()
            ),
            ("127.0.0.1", 6222, Some("ruser"), Some("T0p"))
        );
        assert_eq!(u.addr(), "127.0.0.1:6222");
        let v6 = RouteUrl::parse("nats://[::1]:7000/").unwrap();
        assert_eq!(
            (v6.host.as_str(), v6.addr()),
            ("::1", "[::1]:7000".to_string())
        );
        assert_eq!(RouteUrl::parse("localhost:1").unwrap().host, "localhost");
        for bad in ["nats-route://host", "x://:5", "h:0", "h:99999", ""] {
            assert!(RouteUrl::parse(bad).is_err(), "{bad}");
        }
    }
}
