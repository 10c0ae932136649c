//! The `accounts` block: accounts with their users, exports, imports,
//! mappings, limits and default permissions, read with nats-server 2.9's
//! keys, checks and error texts.
//!
//! As in nats-server, exports and imports are added only once every
//! account is read and the block has no other error: stream exports, then
//! service exports, then stream imports, then service imports, each import
//! checked against the exporter's exports and for cycles. Those errors are
//! placed where nats-server places them: at the `accounts` key.

use std::time::Duration;

use super::authorization::{NamedUsers, go_type, parse_permissions, parse_users, unknown};
use crate::account::{self, AccountConfig, AccountLimits, ExportAuth, ResponseType};
use crate::auth::{Auth, Users};
use crate::conf::{ConfError, Entry, Field, Item, Value};

struct PendingExport {
    account: usize,
    subject: String,
    service: bool,
    approved: Vec<String>,
    response_type: ResponseType,
    threshold: Option<Duration>,
    token_position: usize,
}

struct PendingImport {
    account: usize,
    service: bool,
    from_account: String,
    subject: String,
    prefix: String,
    to: String,
}

/// Reads the block at `entry`, adding the users of each account to `auth`.
pub fn parse(entry: &Entry, auth: &mut Auth, errors: &mut Vec<ConfError>) -> Vec<AccountConfig> {
    let errors_before = errors.len();
    let mut accounts: Vec<AccountConfig> = Vec::new();
    let mut exports = Vec::new();
    let mut imports = Vec::new();
    match &entry.value.value {
        Value::Array(names) => {
            for item in names {
                let Value::String(name) = &item.value else {
                    errors.push(ConfError::at(
                        &item.pos,
                        format!(
                            "Expected account name to be a string, got {}",
                            go_type(&item.value)
                        ),
                    ));
                    continue;
                };
                if name == account::GLOBAL_ACCOUNT {
                    errors.push(ConfError::at(
                        &item.pos,
                        format!("{name:?} is a Reserved Account"),
                    ));
                } else if accounts.iter().any(|a| &a.name == name) {
                    errors.push(ConfError::at(
                        &item.pos,
                        format!("Duplicate Account Entry: {name}"),
                    ));
                } else {
                    accounts.push(AccountConfig::new(name));
                }
            }
        }
        Value::Map(map) => {
            for e in map {
                if e.used_as_variable {
                    continue;
                }
                let Value::Map(_) = &e.value.value else {
                    errors.push(ConfError::at(
                        &e.key_pos,
                        "Expected map entries for accounts".to_string(),
                    ));
                    continue;
                };
                if e.key == account::GLOBAL_ACCOUNT {
                    errors.push(ConfError::at(
                        &e.key_pos,
                        format!("{:?} is a Reserved Account", e.key),
                    ));
                    continue;
                }
                let index = accounts.len();
                accounts.push(AccountConfig::new(&e.key));
                let ctx = AccountCtx {
                    index,
                    exports: &mut exports,
                    imports: &mut imports,
                    auth: &mut *auth,
                };
                parse_account(e, &mut accounts[index], ctx, errors);
            }
        }
        other => errors.push(ConfError::at(
            &entry.value.pos,
            format!(
                "Expected accounts to be a map or array, got {}",
                go_type(other)
            ),
        )),
    }
    if errors.len() > errors_before {
        return accounts;
    }
    link(entry, &mut accounts, exports, imports, errors);
    accounts
}

struct AccountCtx<'a> {
    index: usize,
    exports: &'a mut Vec<PendingExport>,
    imports: &'a mut Vec<PendingImport>,
    auth: &'a mut Auth,
}

fn parse_account(
    e: &Entry,
    acc: &mut AccountConfig,
    ctx: AccountCtx<'_>,
    errors: &mut Vec<ConfError>,
) {
    let Value::Map(map) = &e.value.value else {
        return;
    };
    let mut users: Option<(NamedUsers, NamedUsers, &Entry)> = None;
    let mut default_permissions = None;
    for k in map {
        let f = k.field();
        let result = match k.key.to_ascii_lowercase().as_str() {
            "nkey" => {
                let valid = f.as_str().ok().is_some_and(|s| {
                    nkeys::KeyPair::from_public_key(s)
                        .is_ok_and(|k| k.key_pair_type() == nkeys::KeyPairType::Account)
                });
                if valid {
                    Ok(())
                } else {
                    Err(ConfError::at(
                        f.pos,
                        format!(
                            "Not a valid public nkey for an account: {:?}",
                            super::authorization::go_value(f.value)
                        ),
                    ))
                }
            }
            "imports" => parse_imports(&f, ctx.index, errors).map(|i| ctx.imports.extend(i)),
            "exports" => parse_exports(&f, ctx.index, errors).map(|x| ctx.exports.extend(x)),
            "users" => parse_users(&f, errors).map(|(u, n)| users = Some((u, n, k))),
            "default_permissions" => {
                parse_permissions(&f, errors).map(|p| default_permissions = Some(p))
            }
            "mappings" | "maps" => super::file::mappings(k).map(|m| acc.mappings = m),
            "limits" => limits(&f, errors).map(|l| acc.limits = l),
            "jetstream" => {
                account_jetstream(k, &mut acc.jetstream_limits, errors).map(|on| acc.jetstream = on)
            }
            _ if k.used_as_variable => Ok(()),
            _ => Err(unknown(k)),
        };
        if let Err(err) = result {
            errors.push(err);
        }
    }
    let Some((list, nkeys, users_entry)) = users else {
        return;
    };
    let pos = &users_entry.key_pos;
    if !list.is_empty() || !nkeys.is_empty() {
        match ctx.auth {
            Auth::UserPassword { .. } => {
                errors.push(ConfError::at(
                    pos,
                    "Can not have a single user/pass and accounts".into(),
                ));
                return;
            }
            Auth::Token(_) => {
                errors.push(ConfError::at(
                    pos,
                    "Can not have a token and accounts".into(),
                ));
                return;
            }
            Auth::None => *ctx.auth = Auth::Users(Users::default()),
            Auth::Users(_) => {}
        }
    }
    let Auth::Users(all) = ctx.auth else {
        return;
    };
    for (key, mut u) in nkeys {
        if all.by_nkey.contains_key(&key) || all.by_name.contains_key(&key) {
            errors.push(ConfError::at(
                pos,
                format!("Duplicate nkey {key:?} detected"),
            ));
            continue;
        }
        if u.permissions.is_none() {
            u.permissions.clone_from(&default_permissions);
        }
        u.account = Some(acc.name.clone());
        all.by_nkey.insert(key, u);
    }
    for (name, mut u) in list {
        if all.by_name.contains_key(&name) || all.by_nkey.contains_key(&name) {
            errors.push(ConfError::at(
                pos,
                format!("Duplicate user {name:?} detected"),
            ));
            continue;
        }
        if u.permissions.is_none() {
            u.permissions.clone_from(&default_permissions);
        }
        u.account = Some(acc.name.clone());
        all.by_name.insert(name, u);
    }
}

/// `limits { max_connections, max_subscriptions, max_payload, max_leafnodes }`.
fn limits(f: &Field<'_>, errors: &mut Vec<ConfError>) -> Result<AccountLimits, ConfError> {
    let Value::Map(m) = f.value else {
        return Err(ConfError::at(
            f.pos,
            format!(
                "Expected account limits to be a map/struct, got {}",
                super::authorization::go_value(f.value)
            ),
        ));
    };
    let mut l = AccountLimits::default();
    for e in m {
        let f = e.field();
        let slot = match e.key.to_ascii_lowercase().as_str() {
            "max_connections" | "max_conn" => &mut l.max_connections,
            "max_subscriptions" | "max_subs" => &mut l.max_subscriptions,
            "max_payload" | "max_pay" => &mut l.max_payload,
            "max_leafnodes" | "max_leafs" => {
                // Leaf nodes do not exist here; the limit has nothing to count.
                f.as_i64()?;
                continue;
            }
            _ if e.used_as_variable => continue,
            _ => {
                errors.push(ConfError::at(
                    &e.key_pos,
                    format!("Unknown field {:?} parsing account limits", e.key),
                ));
                continue;
            }
        };
        // nats-server keeps these as int32.
        *slot = i64::from(f.as_i64()? as i32);
    }
    Ok(l)
}

fn parse_exports(
    f: &Field<'_>,
    account: usize,
    errors: &mut Vec<ConfError>,
) -> Result<Vec<PendingExport>, ConfError> {
    let Value::Array(items) = f.value else {
        return Err(ConfError::at(
            f.pos,
            format!("Exports should be an array, got {}", go_type(f.value)),
        ));
    };
    let mut out = Vec::new();
    for item in items {
        match parse_export(item, account, errors) {
            Ok(Some(x)) => out.push(x),
            Ok(None) => {}
            Err(e) => errors.push(e),
        }
    }
    Ok(out)
}

fn parse_export(
    item: &Item,
    account: usize,
    errors: &mut Vec<ConfError>,
) -> Result<Option<PendingExport>, ConfError> {
    let Value::Map(m) = &item.value else {
        return Err(ConfError::at(
            &item.pos,
            format!(
                "Export Items should be a map with type entry, got {}",
                go_type(&item.value)
            ),
        ));
    };
    let mut x = PendingExport {
        account,
        subject: String::new(),
        service: false,
        approved: Vec::new(),
        response_type: ResponseType::Singleton,
        threshold: None,
        token_position: 0,
    };
    let (mut stream, mut service) = (false, false);
    let mut response_seen: Option<&Item> = None;
    let mut threshold_seen: Option<&Item> = None;
    for e in m {
        let f = e.field();
        let v = &e.value;
        let err = |text: String| ConfError::at(&v.pos, text);
        match e.key.to_ascii_lowercase().as_str() {
            "stream" => {
                if service {
                    errors.push(err(format!(
                        "Detected stream {:?} but already saw a service",
                        value_text(&v.value)
                    )));
                    continue;
                }
                if let Some(r) = response_seen.or(threshold_seen) {
                    errors.push(ConfError::at(
                        &r.pos,
                        "Detected response directive on non-service".into(),
                    ));
                    continue;
                }
                let Value::String(s) = &v.value else {
                    errors.push(err(format!(
                        "Expected stream name to be string, got {}",
                        go_type(&v.value)
                    )));
                    continue;
                };
                stream = true;
                x.subject.clone_from(s);
            }
            "service" => {
                if stream {
                    errors.push(err(format!(
                        "Detected service {:?} but already saw a stream",
                        value_text(&v.value)
                    )));
                    continue;
                }
                let Value::String(s) = &v.value else {
                    errors.push(err(format!(
                        "Expected service name to be string, got {}",
                        go_type(&v.value)
                    )));
                    continue;
                };
                service = true;
                x.subject.clone_from(s);
            }
            "response" | "response_type" => {
                if response_seen.is_some() {
                    errors.push(err("Duplicate response type definition".into()));
                    continue;
                }
                response_seen = Some(v);
                let Value::String(s) = &v.value else {
                    errors.push(err(format!(
                        "Expected response type to be string, got {}",
                        go_type(&v.value)
                    )));
                    continue;
                };
                x.response_type = match s.to_ascii_lowercase().as_str() {
                    "single" | "singleton" => ResponseType::Singleton,
                    "stream" => ResponseType::Stream,
                    "chunk" | "chunked" => ResponseType::Chunked,
                    _ => {
                        errors.push(err(format!("Unknown response type: {s:?}")));
                        continue;
                    }
                };
                if stream {
                    errors.push(err("Detected response directive on non-service".into()));
                }
            }
            "threshold" | "response_threshold" | "response_max_time" | "response_time" => {
                if threshold_seen.is_some() {
                    errors.push(err("Duplicate response threshold detected".into()));
                    continue;
                }
                threshold_seen = Some(v);
                let Value::String(s) = &v.value else {
                    errors.push(err(format!(
                        "Expected response threshold to be a parseable time duration, got {}",
                        go_type(&v.value)
                    )));
                    continue;
                };
                match crate::conf::parse_go_duration(s) {
                    Ok(ns) => x.threshold = Some(Duration::from_nanos(ns.max(0) as u64)),
                    Err(_) => {
                        errors.push(err(format!(
                            "Expected response threshold to be a parseable time duration, got {s:?}"
                        )));
                        continue;
                    }
                }
                if stream {
                    errors.push(err("Detected response directive on non-service".into()));
                }
            }
            "accounts" => {
                for a in f.as_array()? {
                    if let Value::String(s) = &a.value {
                        x.approved.push(s.clone());
                    }
                }
            }
            "account_token_position" => {
                x.token_position = usize::try_from(f.as_i64()?).unwrap_or(0);
            }
            "latency" => {
                errors.push(ConfError::at(
                    &e.key_pos,
                    "\"latency\" is not supported yet: natrix does not have service latency tracking yet"
                        .into(),
                ));
            }
            _ if e.used_as_variable => {}
            _ => errors.push(unknown(e)),
        }
    }
    x.service = service;
    Ok((stream || service).then_some(x))
}

/// Go's `%q` of a value that is expected to be a string.
fn value_text(v: &Value) -> String {
    super::authorization::go_value(v)
}

fn parse_imports(
    f: &Field<'_>,
    account: usize,
    errors: &mut Vec<ConfError>,
) -> Result<Vec<PendingImport>, ConfError> {
    let Value::Array(items) = f.value else {
        return Err(ConfError::at(
            f.pos,
            format!("Imports should be an array, got {}", go_type(f.value)),
        ));
    };
    let mut out: Vec<PendingImport> = Vec::new();
    for item in items {
        match parse_import(item, account, errors) {
            Ok(Some(i)) => {
                if i.service
                    && let Some(dup) = out.iter().find(|d| d.service && local(d) == local(&i))
                {
                    errors.push(ConfError::at(
                        &item.pos,
                        format!(
                            "Duplicate service import subject {:?}, previously used in import for account {:?}, subject {:?}",
                            local(&i),
                            dup.from_account,
                            dup.subject
                        ),
                    ));
                    continue;
                }
                out.push(i);
            }
            Ok(None) => {}
            Err(e) => errors.push(e),
        }
    }
    Ok(out)
}

/// The subject a service import listens on in the importing account.
fn local(i: &PendingImport) -> &str {
    if i.to.is_empty() { &i.subject } else { &i.to }
}

fn parse_import(
    item: &Item,
    account: usize,
    errors: &mut Vec<ConfError>,
) -> Result<Option<PendingImport>, ConfError> {
    let Value::Map(m) = &item.value else {
        return Err(ConfError::at(
            &item.pos,
            format!(
                "Import Items should be a map with type entry, got {}",
                go_type(&item.value)
            ),
        ));
    };
    let mut i = PendingImport {
        account,
        service: false,
        from_account: String::new(),
        subject: String::new(),
        prefix: String::new(),
        to: String::new(),
    };
    let (mut stream, mut service) = (false, false);
    for e in m {
        let f = e.field();
        let v = &e.value;
        match e.key.to_ascii_lowercase().as_str() {
            kind @ ("stream" | "service") => {
                let is_service = kind == "service";
                if (is_service && stream) || (!is_service && service) {
                    let (this, other) = if is_service {
                        ("service", "stream")
                    } else {
                        ("stream", "service")
                    };
                    errors.push(ConfError::at(
                        &v.pos,
                        format!("Detected {this} but already saw a {other}"),
                    ));
                    continue;
                }
                let Value::Map(am) = &v.value else {
                    let what = if is_service { "Service" } else { "Stream" };
                    errors.push(ConfError::at(
                        &v.pos,
                        format!(
                            "{what} entry should be an account map, got {}",
                            go_type(&v.value)
                        ),
                    ));
                    continue;
                };
                let (mut an, mut subject) = (String::new(), String::new());
                for ae in am {
                    let af = ae.field();
                    match ae.key.to_ascii_lowercase().as_str() {
                        "account" => an = af.as_str()?.to_string(),
                        "subject" => subject = af.as_str()?.to_string(),
                        _ if ae.used_as_variable => {}
                        _ => errors.push(unknown(ae)),
                    }
                }
                if an.is_empty() || subject.is_empty() {
                    errors.push(ConfError::at(
                        &v.pos,
                        "Expect an account name and a subject".into(),
                    ));
                    continue;
                }
                stream = !is_service;
                service = is_service;
                i.from_account = an;
                i.subject = subject;
            }
            "prefix" => i.prefix = f.as_str()?.to_string(),
            "to" => {
                i.to = f.as_str()?.to_string();
                if stream && !i.prefix.is_empty() {
                    errors.push(ConfError::at(
                        &v.pos,
                        "Stream import can not have a 'prefix' and a 'to' property".into(),
                    ));
                    continue;
                }
            }
            "share" => {
                if f.as_bool()? {
                    errors.push(ConfError::at(
                        &e.key_pos,
                        "\"share\" is not supported yet: natrix does not have service latency tracking yet"
                            .into(),
                    ));
                }
            }
            _ if e.used_as_variable => {}
            _ => errors.push(unknown(e)),
        }
    }
    i.service = service;
    if service {
        // A prefix means nothing to a service import.
        i.prefix.clear();
    }
    Ok((stream || service).then_some(i))
}

/// Adds the exports, then the imports, with nats-server's checks.
fn link(
    entry: &Entry,
    accounts: &mut [AccountConfig],
    exports: Vec<PendingExport>,
    imports: Vec<PendingImport>,
    errors: &mut Vec<ConfError>,
) {
    let at = |text: String| ConfError::at(&entry.key_pos, text);
    let names: Vec<String> = accounts.iter().map(|a| a.name.clone()).collect();
    let find = |n: &str| names.iter().position(|a| a == n);
    for service in [false, true] {
        for x in exports.iter().filter(|x| x.service == service) {
            let kind = if service { "service" } else { "stream" };
            let mut approved = Vec::new();
            for a in &x.approved {
                if find(a).is_none() {
                    errors.push(at(format!("{a:?} account not defined for {kind} export")));
                    continue;
                }
                approved.push(a.clone());
            }
            let auth = ExportAuth {
                approved,
                account_token_position: x.token_position,
            };
            let acc = &mut accounts[x.account];
            let added = if service {
                acc.add_service_export(&x.subject, auth, x.response_type, x.threshold)
            } else {
                acc.add_stream_export(&x.subject, auth)
            };
            if let Err(e) = added {
                errors.push(at(format!(
                    "Error adding {kind} export {:?}: {e}",
                    x.subject
                )));
            }
        }
    }
    for service in [false, true] {
        for i in imports.iter().filter(|i| i.service == service) {
            let kind = if service { "service" } else { "stream" };
            let Some(exporter) = find(&i.from_account) else {
                errors.push(at(format!(
                    "{:?} account not defined for {kind} import",
                    i.from_account
                )));
                continue;
            };
            let added = if service {
                account::add_service_import(accounts, i.account, exporter, local(i), &i.subject)
            } else {
                account::add_stream_import(
                    accounts, i.account, exporter, &i.subject, &i.prefix, &i.to,
                )
            };
            if let Err(e) = added {
                errors.push(at(format!(
                    "Error adding {kind} import {:?}: {e}",
                    i.subject
                )));
            }
        }
    }
}

/// An account's `jetstream`: `enabled`/`disabled`, a bool, or a block of
/// limits (which turns JetStream on), with nats-server's key names.
fn account_jetstream(
    k: &Entry,
    limits: &mut account::JetStreamLimits,
    errors: &mut Vec<ConfError>,
) -> Result<bool, ConfError> {
    match &k.value.value {
        Value::Bool(on) => Ok(*on),
        Value::String(s) => match s.to_ascii_lowercase().as_str() {
            "enabled" | "enable" => Ok(true),
            "disabled" | "disable" => Ok(false),
            _ => Err(ConfError::at(
                &k.key_pos,
                format!("Expected 'enabled' or 'disabled' for string value, got '{s}'"),
            )),
        },
        Value::Map(m) => {
            for e in m.iter() {
                let size = |e: &Entry| match &e.value.value {
                    Value::Integer(n) => Ok(*n),
                    _ => Err(ConfError::at(
                        &e.key_pos,
                        format!(
                            "Expected a parseable size for {:?}, got {}",
                            e.key,
                            go_type(&e.value.value)
                        ),
                    )),
                };
                let result = match e.key.to_ascii_lowercase().as_str() {
                    "max_memory" | "max_mem" | "mem" | "memory" => {
                        size(e).map(|n| limits.max_memory = n)
                    }
                    "max_store" | "max_file" | "max_disk" | "store" | "disk" => {
                        size(e).map(|n| limits.max_store = n)
                    }
                    "max_streams" | "streams" => size(e).map(|n| limits.max_streams = n),
                    "max_consumers" | "consumers" => size(e).map(|n| limits.max_consumers = n),
                    "max_bytes_required" | "max_stream_bytes" | "max_bytes" => match &e.value.value
                    {
                        Value::Bool(b) => {
                            limits.max_bytes_required = *b;
                            Ok(())
                        }
                        other => Err(ConfError::at(
                            &e.key_pos,
                            format!(
                                "Expected a parseable bool for {:?}, got {}",
                                e.key,
                                go_type(other)
                            ),
                        )),
                    },
                    "mem_max_stream_bytes" | "memory_max_stream_bytes" => {
                        size(e).map(|n| limits.memory_max_stream_bytes = n)
                    }
                    "disk_max_stream_bytes" | "store_max_stream_bytes" => {
                        size(e).map(|n| limits.store_max_stream_bytes = n)
                    }
                    "max_ack_pending" => size(e).map(|n| limits.max_ack_pending = n),
                    _ if e.used_as_variable => Ok(()),
                    _ => Err(unknown(e)),
                };
                if let Err(err) = result {
                    errors.push(err);
                }
            }
            Ok(true)
        }
        _ => Err(ConfError::at(
            &k.key_pos,
            "Expected map, bool or string to define JetStream".to_string(),
        )),
    }
}
