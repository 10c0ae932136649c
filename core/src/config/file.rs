//! Filling the options from a configuration file's tree ([`crate::conf`]),
//! key by key, with nats-server's names, aliases, meanings and checks.
//!
//! Every top-level key nats-server 2.9 knows is either applied or refused by
//! name ("natrix does not support ... yet"): a setting natrix cannot honour is
//! never silently dropped. A key nats-server does not know is an error
//! (`unknown field "foo"`), unless it is only used as a `$variable`. All
//! problems are collected, as nats-server collects them, so one run shows
//! every mistake in the file.

use std::time::Duration;

use super::{Options, ProcessOptions};
use crate::conf::{ConfError, Entry, Field, Map, Value, Warning};
use crate::mapping::{MapDest, Mapping, Mappings};

/// What reading a configuration file found wrong. Warnings alone do not stop
/// the server (they are printed); any error does.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Problems {
    pub warnings: Vec<Warning>,
    pub errors: Vec<ConfError>,
}

impl Problems {
    /// One line per problem, warnings first, as nats-server prints them
    /// (`file:line:col: message`).
    pub fn report(&self) -> String {
        let mut out = String::new();
        for w in &self.warnings {
            out.push_str(&format!(
                "{}: invalid use of field \"{}\": {}\n",
                w.pos, w.field, w.reason
            ));
        }
        for e in &self.errors {
            out.push_str(&format!("{e}\n"));
        }
        out
    }
}

/// Top-level keys of nats-server 2.9 that natrix does not implement yet, with
/// the feature they belong to.
const NOT_YET: &[(&[&str], &str)] = &[
    (&["allow_non_tls"], "plaintext and TLS clients on one port"),
    (&["ocsp"], "OCSP stapling"),
    (&["prof_port"], "profiling"),
    (
        &["max_sub_tokens", "max_subscription_tokens"],
        "a subscription token limit",
    ),
    (
        &[
            "operator",
            "operators",
            "roots",
            "root",
            "root_operators",
            "root_operator",
            "trusted",
            "trusted_keys",
            "resolver",
            "account_resolver",
            "accounts_resolver",
            "resolver_tls",
            "resolver_preload",
            "resolver_pinned_accounts",
        ],
        "operator mode (JWT)",
    ),
    (&["default_js_domain"], "leaf nodes"),
    (&["websocket", "ws"], "websocket"),
    (&["mqtt"], "MQTT"),
];

/// Keys nats-server 2.9 accepts that change nothing in a server without
/// clustering; natrix accepts them too.
const ACCEPTED_WITHOUT_EFFECT: &[&str] = &[
    "client_advertise",
    "connect_error_reports",
    "reconnect_error_reports",
    "server_tags",
    "logtime_utc",
];

/// Applies every top-level key of `map` to `opts` and `process`.
pub fn apply(map: &Map, opts: &mut Options, process: &mut ProcessOptions) -> Problems {
    let mut p = Problems::default();
    let mut accounts = None;
    let mut jetstream = super::jetstream::FileJetStream::default();
    for entry in map {
        if entry.key.eq_ignore_ascii_case("accounts") {
            // Read last: its users join those of `authorization`.
            accounts = Some(entry);
            continue;
        }
        if entry.key.eq_ignore_ascii_case("authorization") {
            if let Some(a) = super::authorization::parse(entry, &mut p.errors) {
                opts.auth = a.auth;
                if let Some(t) = a.timeout {
                    opts.auth_timeout = Some(t);
                }
            }
            continue;
        }
        match entry.key.to_ascii_lowercase().as_str() {
            "jetstream" => {
                jetstream.block(entry, &mut p.errors, &mut p.warnings);
                continue;
            }
            "store_dir" | "storedir" => {
                if let Err(e) = jetstream.top_level_store_dir(entry) {
                    p.errors.push(e);
                }
                continue;
            }
            _ => {}
        }
        if let Err(e) = apply_entry(entry, opts, process, &mut p.warnings) {
            p.errors.push(e);
        }
    }
    if let Some(entry) = accounts {
        opts.accounts = super::accounts::parse(entry, &mut opts.auth, &mut p.errors);
    }
    match jetstream {
        j if j.enabled => opts.jetstream = Some(j.settings),
        j if j.seen => {
            opts.jetstream = None;
            process.jetstream_off = Some(j.settings);
        }
        _ => {}
    }
    p
}

pub(super) fn not_yet(entry: &Entry, feature: &str) -> ConfError {
    ConfError::at(
        &entry.key_pos,
        format!(
            "{:?} is not supported yet: natrix does not have {feature} yet",
            entry.key
        ),
    )
}

fn unknown(entry: &Entry) -> ConfError {
    ConfError::at(&entry.key_pos, format!("unknown field {:?}", entry.key))
}

fn apply_entry(
    entry: &Entry,
    opts: &mut Options,
    process: &mut ProcessOptions,
    warnings: &mut Vec<Warning>,
) -> Result<(), ConfError> {
    let f = entry.field();
    let key = entry.key.to_ascii_lowercase();
    match key.as_str() {
        "listen" => {
            let (host, port) = listen(&f)?;
            if let Some(h) = host {
                opts.host = h;
            }
            opts.port = port;
        }
        "port" => opts.port = f.as_u16_port()?,
        "cluster" => opts.cluster = Some(super::cluster::parse(entry, warnings)?),
        "leafnodes" | "leaf" => opts.leafnodes = Some(super::leafnodes::parse(entry, warnings)?),
        "gateway" => opts.gateway = Some(super::gateway::parse(entry, warnings)?),
        "host" | "net" => opts.host = f.as_str()?.to_string(),
        "server_name" => opts.server_name = f.as_str()?.to_string(),
        "debug" => opts.debug = f.as_bool()?,
        "trace" => opts.trace = f.as_bool()?,
        "trace_verbose" => opts.trace = f.as_bool()?,
        "logtime" => process.log_time = f.as_bool()?,
        "logfile" | "log_file" => process.log_file = Some(f.as_str()?.to_string()),
        "logfile_size_limit" | "log_size_limit" => process.log_size_limit = f.as_size()?,
        "syslog" => process.syslog = f.as_bool()?,
        "remote_syslog" => process.remote_syslog = Some(f.as_str()?.to_string()),
        "pidfile" | "pid_file" => process.pid_file = Some(f.as_str()?.to_string()),
        "ports_file_dir" => process.ports_file_dir = Some(f.as_str()?.to_string()),
        "http" => {
            let (host, port) = listen(&f)?;
            process.http_host = host;
            process.http_port = Some(port);
        }
        "http_port" | "monitor_port" => process.http_port = Some(f.as_u16_port()?),
        "https" => {
            let (host, port) = listen(&f)?;
            process.http_host = host;
            process.https_port = Some(port);
        }
        "https_port" => process.https_port = Some(f.as_u16_port()?),
        "http_base_path" => opts.http_base_path = f.as_str()?.to_string(),
        "max_control_line" => opts.max_control_line = at_most_i32(&f)?,
        "max_payload" => opts.max_payload = at_most_i32(&f)?,
        "max_pending" => opts.max_pending = f.as_size()?,
        "max_connections" | "max_conn" => {
            opts.max_connections = usize::try_from(f.as_size()?).unwrap_or(usize::MAX);
        }
        "max_subscriptions" | "max_subs" => {
            opts.max_subscriptions = u32::try_from(f.as_size()?).unwrap_or(u32::MAX);
        }
        "max_traced_msg_len" => {
            opts.max_traced_msg_len = usize::try_from(f.as_i64()?.max(0)).unwrap_or(usize::MAX);
        }
        "max_closed_clients" => {
            opts.max_closed_clients = usize::try_from(f.as_size()?).unwrap_or(usize::MAX);
        }
        "ping_interval" => opts.ping_interval = f.as_duration(warnings)?,
        "ping_max" => opts.ping_max = u32::try_from(f.as_i64()?.max(0)).unwrap_or(u32::MAX),
        "write_deadline" => opts.write_deadline = f.as_duration(warnings)?,
        "lame_duck_duration" => {
            let d = strict_duration(&f)?;
            if d < Duration::from_secs(30) {
                return Err(ConfError::at(
                    f.pos,
                    format!(
                        "invalid lame_duck_duration of {}, minimum is 30 seconds",
                        crate::time::go_duration(d)
                    ),
                ));
            }
            opts.lame_duck_duration = d;
        }
        "lame_duck_grace_period" => {
            let nanos = crate::conf::parse_go_duration(f.as_str()?).map_err(|e| {
                ConfError::at(f.pos, format!("error parsing lame_duck_grace_period: {e}"))
            })?;
            let nanos = u64::try_from(nanos).map_err(|_| {
                ConfError::at(
                    f.pos,
                    "invalid lame_duck_grace_period, needs to be positive".to_string(),
                )
            })?;
            opts.lame_duck_grace_period = Duration::from_nanos(nanos);
        }
        "disable_sublist_cache" | "no_sublist_cache" => opts.disable_sublist_cache = f.as_bool()?,
        "no_header_support" => opts.no_header_support = f.as_bool()?,
        "mappings" | "maps" => opts.mappings = mappings(entry)?,
        "tls" => opts.tls = Some(super::tls::block(entry)?),
        "no_auth_user" => opts.no_auth_user = f.as_str()?.to_string(),
        "system_account" | "system" => {
            let Value::String(name) = f.value else {
                return Err(ConfError::at(
                    f.pos,
                    "system account name must be a string".to_string(),
                ));
            };
            opts.system_account = Some(name.clone());
        }
        "no_system_account" | "no_system" | "no_sys_acc" => opts.no_system_account = f.as_bool()?,
        k if ACCEPTED_WITHOUT_EFFECT.contains(&k) => {}
        k => {
            if let Some((_, feature)) = NOT_YET.iter().find(|(keys, _)| keys.contains(&k)) {
                return Err(not_yet(entry, feature));
            }
            if !entry.used_as_variable {
                return Err(unknown(entry));
            }
        }
    }
    Ok(())
}

/// `port` or `"host:port"` (`listen`, `http`).
pub(super) fn listen(f: &Field<'_>) -> Result<(Option<String>, u16), ConfError> {
    match f.value {
        Value::Integer(_) => Ok((None, f.as_u16_port()?)),
        Value::String(s) => {
            let bad = || ConfError::at(f.pos, format!("could not parse address string {s:?}"));
            let (host, port) = match s.strip_prefix('[') {
                Some(rest) => {
                    let (h, p) = rest.split_once("]:").ok_or_else(bad)?;
                    (h, p)
                }
                None => {
                    let (h, p) = s.rsplit_once(':').ok_or_else(bad)?;
                    if h.contains(':') {
                        return Err(bad());
                    }
                    (h, p)
                }
            };
            let port: i64 = port
                .parse()
                .map_err(|_| ConfError::at(f.pos, format!("could not parse port {port:?}")))?;
            let port = match port {
                -1 => 0,
                p => u16::try_from(p).map_err(|_| {
                    ConfError::at(f.pos, format!("port {p} is not in the range 0 to 65535"))
                })?,
            };
            Ok((Some(host.to_string()), port))
        }
        other => Err(ConfError::at(
            f.pos,
            format!(
                "expected port or host:port, got {}",
                match other {
                    Value::Float(_) => "float64",
                    Value::Bool(_) => "bool",
                    Value::Array(_) => "[]interface {}",
                    Value::Map(_) => "map[string]interface {}",
                    _ => "time.Time",
                }
            ),
        )),
    }
}

fn at_most_i32(f: &Field<'_>) -> Result<u32, ConfError> {
    let n = f.as_size()?;
    if n > i32::MAX as u64 {
        return Err(ConfError::at(f.pos, format!("{} value is too big", f.name)));
    }
    Ok(n as u32)
}

/// A duration that must be a string (`"2m"`): the lame duck settings take
/// no bare seconds in nats-server.
fn strict_duration(f: &Field<'_>) -> Result<Duration, ConfError> {
    f.as_str()?;
    f.as_duration(&mut Vec::new())
}

/// `mappings { src: dest, src: [{destination, weight}, ...], src: {..} }`.
pub(super) fn mappings(entry: &Entry) -> Result<Mappings, ConfError> {
    let block = entry.field().as_map()?;
    let mut out = Mappings::default();
    for e in block {
        if !crate::subject::is_valid_subject(e.key.as_bytes()) {
            return Err(ConfError::at(
                &entry.key_pos,
                format!("Subject {:?} is not a valid subject", e.key),
            ));
        }
        let pos = &e.value.pos;
        let dests = match &e.value.value {
            Value::String(d) => vec![MapDest {
                subject: d.clone(),
                weight: 100,
            }],
            Value::Array(items) => items.iter().map(map_dest).collect::<Result<Vec<_>, _>>()?,
            Value::Map(_) => vec![map_dest(&e.value)?],
            other => {
                return Err(ConfError::at(
                    pos,
                    format!("Unknown type {} for mapping destination", other.type_name()),
                ));
            }
        };
        let m = Mapping::new(&e.key, &dests).map_err(|err| {
            let to: Vec<&str> = dests.iter().map(|d| d.subject.as_str()).collect();
            ConfError::at(
                &e.key_pos,
                format!(
                    "Error adding mapping for {:?} to {:?} : {err}",
                    e.key,
                    to.join(", ")
                ),
            )
        })?;
        out.add(m);
    }
    Ok(out)
}

/// `{ destination: "x", weight: 40% }` (also `dest`; weight an integer or a
/// string with an optional `%`).
fn map_dest(item: &crate::conf::Item) -> Result<MapDest, ConfError> {
    let Value::Map(m) = &item.value else {
        return Err(ConfError::at(
            &item.pos,
            "Expected an entry for the mapping destination".to_string(),
        ));
    };
    let (mut subject, mut weight) = (String::new(), None);
    for e in m {
        let f = e.field();
        match e.key.to_ascii_lowercase().as_str() {
            "dest" | "destination" => subject = f.as_str()?.to_string(),
            "weight" => {
                let w: i64 = match f.value {
                    Value::String(s) => {
                        let s = s.strip_suffix('%').unwrap_or(s);
                        s.parse().map_err(|_| {
                            ConfError::at(
                                f.pos,
                                format!("Invalid weight {s:?} for mapping destination"),
                            )
                        })?
                    }
                    Value::Integer(n) => *n,
                    other => {
                        return Err(ConfError::at(
                            f.pos,
                            format!("Unknown entry type for weight of {}", other.type_name()),
                        ));
                    }
                };
                if !(0..=100).contains(&w) {
                    return Err(ConfError::at(
                        f.pos,
                        format!("Invalid weight {w} for mapping destination"),
                    ));
                }
                weight = Some(w as u8);
            }
            "cluster" => return Err(not_yet(e, "clustering")),
            _ => {
                return Err(ConfError::at(
                    &e.key_pos,
                    format!("Unknown field {:?} for mapping destination", e.key),
                ));
            }
        }
    }
    let weight = weight.ok_or_else(|| {
        ConfError::at(
            &item.pos,
            format!("Missing weight for mapping destination {subject:?}"),
        )
    })?;
    Ok(MapDest { subject, weight })
}
