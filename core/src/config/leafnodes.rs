//! The `leafnodes {}` block: the listener hub servers accept leaf nodes
//! on, what they ask of them, and the remotes a leaf node dials, with
//! nats-server's keys.

use std::time::Duration;

use super::cluster::{RouteUrl, not_yet, unknown, url};
use crate::auth::creds::{self, Credentials};
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
    /// The public nkey a leaf node must sign the nonce with instead
    /// (`authorization { nkey }`), bound to `account`.
    pub nkey: Option<String>,
    /// Leaf node users, each bound to its account
    /// (`authorization { users [...] }`).
    pub users: Vec<LeafUser>,
    pub auth_timeout: Option<Duration>,
    /// Servers this one is a leaf node of.
    pub remotes: Vec<LeafRemote>,
    /// Wait between attempts to dial a remote.
    pub reconnect: Option<Duration>,
    /// The `host[:port]` leaf nodes are told to dial instead of the
    /// listener's (`advertise`: behind a NAT or a load balancer).
    pub advertise: Option<String>,
    /// TLS for leaf nodes dialing this hub (`tls {}`): `INFO` in
    /// plaintext, then the handshake; a leaf node's certificate is asked
    /// for with `verify`.
    pub tls: Option<super::TlsOptions>,
    /// Route peers are not told this server's leaf node URL
    /// (`no_advertise`), so the leaf nodes of its cluster's other servers
    /// do not learn it.
    pub no_advertise: bool,
}

/// One of `leafnodes { authorization { users } }`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LeafUser {
    pub user: String,
    /// Plain or a bcrypt hash.
    pub password: String,
    /// `None`: `$G`.
    pub account: Option<String>,
}

/// A hub to dial: its URLs (tried in turn) and the local account bound to
/// the connection.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LeafRemote {
    pub urls: Vec<RouteUrl>,
    /// The local account (`None`: `$G`).
    pub account: Option<String>,
    /// A credentials file: its JWT is shown and its seed signs the hub's
    /// nonce (`credentials`).
    pub credentials: Option<CredentialsFile>,
    /// A user nkey seed that signs the hub's nonce (`nkey`).
    pub nkey: Option<String>,
    /// Subjects not taken from the hub (`deny_imports`): no interest in
    /// them is told, messages on them are dropped, and the hub is asked
    /// not to send them.
    pub deny_imports: Vec<String>,
    /// Subjects not sent to the hub (`deny_exports`).
    pub deny_exports: Vec<String>,
    /// TLS to the hub (`tls {}`): the hub's certificate is checked
    /// against `ca_file` (unless `insecure`); the certificate and key, if
    /// given, are shown when the hub asks.
    pub tls: Option<super::TlsOptions>,
    /// Dial only `urls`, not the hub cluster's other servers its `INFO`
    /// lists (`ignore_discovered_servers`).
    pub ignore_discovered_servers: bool,
    /// Dial `urls` in the order given (`no_randomize`), not shuffled.
    pub no_randomize: bool,
}

/// A credentials file named by a remote. The configuration names it; the
/// runtime reads it (at start and at every reload) and tests fill it in.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CredentialsFile {
    pub path: String,
    /// What reading it gave: the credentials, or nats-server's error text
    /// (without the file's name); `None` until it is read.
    pub read: Option<Result<Credentials, String>>,
}

impl CredentialsFile {
    /// Fills in `read` from the file's text or the error reading it.
    pub fn load(&mut self, text: Result<String, String>) {
        self.read = Some(text.and_then(|t| Credentials::parse(&t).map_err(str::to_string)));
    }
}

const NOT_YET: &[(&str, &str)] = &[
    ("min_version", "a minimum leaf node version"),
    ("websocket", "leaf nodes over websocket"),
];

const REMOTE_NOT_YET: &[(&str, &str)] = &[
    ("hub", "hub remotes"),
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
                        "nkey" => {
                            let key = af.as_str()?;
                            if !is_public_user_key(key) {
                                return Err(ConfError::at(
                                    &a.key_pos,
                                    "Not a valid public nkey for leafnode authorization"
                                        .to_string(),
                                ));
                            }
                            l.nkey = Some(key.to_string());
                        }
                        "users" => {
                            for item in af.as_array()? {
                                l.users.push(leaf_user(&item.field("users"))?);
                            }
                        }
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
            "advertise" | "leafnode_advertise" => l.advertise = Some(f.as_str()?.to_string()),
            "no_advertise" => l.no_advertise = f.as_bool()?,
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
    let mut r = LeafRemote::default();
    let both = |e: &Entry| {
        ConfError::at(
            &e.key_pos,
            "Remote leafnode can not have both creds and nkey defined".to_string(),
        )
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
            "deny_imports" | "deny_import" => {
                r.deny_imports = super::authorization::subjects(&ef, true)?.unwrap_or_default();
            }
            "deny_exports" | "deny_export" => {
                r.deny_exports = super::authorization::subjects(&ef, true)?.unwrap_or_default();
            }
            "creds" | "credentials" => {
                if r.nkey.is_some() {
                    return Err(both(e));
                }
                r.credentials = Some(CredentialsFile {
                    path: ef.as_str()?.to_string(),
                    read: None,
                });
            }
            "nkey" | "seed" => {
                let seed = ef.as_str()?;
                if !seed.starts_with("SU") || !creds::is_seed(seed) {
                    return Err(ConfError::at(
                        &e.key_pos,
                        format!("Remote leafnode nkey is not a valid seed: {seed:?}"),
                    ));
                }
                if r.credentials.is_some() {
                    return Err(both(e));
                }
                r.nkey = Some(seed.to_string());
            }
            "compression" => {}
            "ignore_discovered_servers" => r.ignore_discovered_servers = ef.as_bool()?,
            "no_randomize" | "dont_randomize" => r.no_randomize = ef.as_bool()?,
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

/// Whether `key` is a public user nkey (`U...`).
fn is_public_user_key(key: &str) -> bool {
    key.starts_with('U') && nkeys::KeyPair::from_public_key(key).is_ok()
}

fn leaf_user(f: &Field<'_>) -> Result<LeafUser, ConfError> {
    let mut u = LeafUser::default();
    for e in f.as_map()? {
        let ef = e.field();
        match e.key.to_ascii_lowercase().as_str() {
            "user" | "username" => u.user = ef.as_str()?.to_string(),
            "pass" | "password" => u.password = ef.as_str()?.to_string(),
            "account" => u.account = Some(ef.as_str()?.to_string()),
            _ => return Err(unknown(e)),
        }
    }
    Ok(u)
}
