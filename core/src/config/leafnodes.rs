//! The `leafnodes {}` block: the listener hub servers accept leaf nodes
//! on, what they ask of them, and the remotes a leaf node dials, with
//! nats-server's keys.

use std::time::Duration;

use super::cluster::{RouteUrl, not_yet, unknown, url};
use crate::conf::{ConfError, Entry, Field, Value, Warning};

/// Leaf node connections, both roles.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LeafNodeOptions {
    pub host: String,
    /// The hub's listener (`None`: this server accepts no leaf nodes).
    pub port: Option<u16>,
    /// What a leaf node must send to connect here, and the account it is
    /// bound to (`authorization { user, password, account, timeout }`).
    pub user: Option<String>,
    pub pass: Option<String>,
    pub account: Option<String>,
    pub auth_timeout: Option<Duration>,
    /// Servers this one is a leaf node of.
    pub remotes: Vec<LeafRemote>,
    /// Wait between attempts to dial a remote.
    pub reconnect: Option<Duration>,
    /// TLS for leaf nodes dialing this hub (`tls {}`): `INFO` in
    /// plaintext, then the handshake; a leaf node's certificate is asked
    /// for with `verify`.
    pub tls: Option<super::TlsOptions>,
}

/// A hub to dial: its URLs (tried in turn) and the local account bound to
/// the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeafRemote {
    pub urls: Vec<RouteUrl>,
    /// The local account (`None`: `$G`).
    pub account: Option<String>,
    /// TLS to the hub (`tls {}`): the hub's certificate is checked
    /// against `ca_file` (unless `insecure`); the certificate and key, if
    /// given, are shown when the hub asks.
    pub tls: Option<super::TlsOptions>,
}

const NOT_YET: &[(&str, &str)] = &[
    ("advertise", "leaf node URL advertisement"),
    ("no_advertise", "leaf node URL advertisement"),
    ("min_version", "a minimum leaf node version"),
    ("websocket", "leaf nodes over websocket"),
];

const REMOTE_NOT_YET: &[(&str, &str)] = &[
    ("credentials", "leaf node credentials files"),
    ("nkey", "leaf node nkeys"),
    ("hub", "hub remotes"),
    ("deny_imports", "leaf node deny lists"),
    ("deny_exports", "leaf node deny lists"),
    ("ws_compression", "leaf nodes over websocket"),
    ("ws_no_masking", "leaf nodes over websocket"),
];

fn seconds(f: &Field<'_>, warnings: &mut Vec<Warning>) -> Result<Duration, ConfError> {
    match f.value {
        Value::Integer(n) => Ok(Duration::from_secs(u64::try_from(*n).unwrap_or(0))),
        Value::Float(x) => Ok(Duration::from_secs_f64(x.max(0.0))),
        _ => f.as_duration(warnings),
    }
}

/// Reads `leafnodes {}`.
pub fn parse(entry: &Entry, warnings: &mut Vec<Warning>) -> Result<LeafNodeOptions, ConfError> {
    let block = entry.field().as_map()?;
    let mut l = LeafNodeOptions::default();
    for e in block {
        let f = e.field();
        match e.key.to_ascii_lowercase().as_str() {
            "listen" => {
                let (host, port) = super::file::listen(&f)?;
                if let Some(h) = host {
                    l.host = h;
                }
                l.port = Some(port);
            }
            "host" | "net" => l.host = f.as_str()?.to_string(),
            "port" => {
                l.port = Some(match f.value {
                    Value::Integer(-1) => 0,
                    _ => f.as_u16_port()?,
                })
            }
            "authorization" => {
                for a in f.as_map()? {
                    let af = a.field();
                    match a.key.to_ascii_lowercase().as_str() {
                        "user" | "username" => l.user = Some(af.as_str()?.to_string()),
                        "pass" | "password" => l.pass = Some(af.as_str()?.to_string()),
                        "account" => l.account = Some(af.as_str()?.to_string()),
                        "timeout" => l.auth_timeout = Some(seconds(&af, warnings)?),
                        "users" | "nkey" => return Err(not_yet(a, "leaf node user lists")),
                        _ => return Err(unknown(a)),
                    }
                }
            }
            "remotes" => {
                for item in f.as_array()? {
                    l.remotes.push(remote(&item.field("remotes"))?);
                }
            }
            "reconnect" | "reconnect_delay" => l.reconnect = Some(seconds(&f, warnings)?),
            "tls" => {
                let tls = super::tls::block(e)?;
                if tls.verify && tls.ca_file.is_none() {
                    return Err(ConfError::at(
                        &e.key_pos,
                        "verifying leaf node certificates needs a CA: natrix does not use the \
                         system's roots; set 'ca_file'"
                            .to_string(),
                    ));
                }
                if tls.map {
                    return Err(not_yet(e, "'verify_and_map' for leaf nodes"));
                }
                l.tls = Some(tls);
            }
            "compression" => warnings.push(Warning {
                pos: e.key_pos.clone(),
                field: e.key.clone(),
                reason: "natrix leaves it off: leaf node connections are plain".to_string(),
            }),
            k => match NOT_YET.iter().find(|(n, _)| *n == k) {
                Some((_, what)) => return Err(not_yet(e, what)),
                None => return Err(unknown(e)),
            },
        }
    }
    Ok(l)
}

fn remote(f: &Field<'_>) -> Result<LeafRemote, ConfError> {
    let mut r = LeafRemote {
        urls: Vec::new(),
        account: None,
        tls: None,
    };
    for e in f.as_map()? {
        let ef = e.field();
        match e.key.to_ascii_lowercase().as_str() {
            "url" => r.urls.push(url(&ef)?),
            "urls" => {
                for item in ef.as_array()? {
                    r.urls.push(url(&item.field("urls"))?);
                }
            }
            "account" | "local" => r.account = Some(ef.as_str()?.to_string()),
            "tls" => r.tls = Some(super::tls::remote_block(e)?),
            "compression" => {}
            k => match REMOTE_NOT_YET.iter().find(|(n, _)| *n == k) {
                Some((_, what)) => return Err(not_yet(e, what)),
                None => return Err(unknown(e)),
            },
        }
    }
    if r.urls.is_empty() {
        return Err(ConfError::at(
            f.pos,
            "leafnode remote has no url".to_string(),
        ));
    }
    Ok(r)
}
