//! The `authorization` block: a single user or token, or a list of users
//! and nkey users with permissions, read with nats-server's keys, aliases,
//! checks and error texts.
//!
//! Like nats-server, problems inside the block are collected rather than
//! stopping at the first. Where nats-server reports a problem without a
//! position (a plain list of subjects), natrix still names the place; the
//! text after it is nats-server's.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::auth::{
    Auth, CONNECTION_TYPES, Permissions, ResponsePermission, SubjectPermission, User, Users,
};
use crate::conf::{ConfError, Entry, Field, Item, Map, Pos, Value};

/// What the block sets.
pub struct Authorization {
    pub auth: Auth,
    /// `timeout` in seconds; `None` keeps the default.
    pub timeout: Option<Duration>,
}

/// Go's `%T` for a configuration value.
pub(super) fn go_type(v: &Value) -> &'static str {
    match v {
        Value::String(_) => "string",
        Value::Integer(_) => "int64",
        Value::Float(_) => "float64",
        Value::Bool(_) => "bool",
        Value::Datetime(_) => "time.Time",
        Value::Array(_) => "[]interface {}",
        Value::Map(_) => "map[string]interface {}",
    }
}

/// An error nats-server reports without a position.
fn unplaced(pos: &Pos, reason: String) -> ConfError {
    ConfError::new(pos.clone(), reason.clone(), reason)
}

pub(super) fn unknown(e: &Entry) -> ConfError {
    ConfError::at(&e.key_pos, format!("unknown field {:?}", e.key))
}

/// Reads the block at `entry`. `None` when the block cannot be used;
/// every problem found is in `errors`.
pub fn parse(entry: &Entry, errors: &mut Vec<ConfError>) -> Option<Authorization> {
    let f = entry.field();
    let block = match f.as_map() {
        Ok(m) => m,
        Err(e) => {
            errors.push(e);
            return None;
        }
    };
    let (mut user, mut pass, mut token, mut timeout) = (None, None, None, None);
    let mut users: Option<Vec<(String, User)>> = None;
    let mut nkeys: Vec<(String, User)> = Vec::new();
    let mut default_permissions = None;
    for e in block {
        let f = e.field();
        let result = match e.key.to_ascii_lowercase().as_str() {
            "user" | "username" => f.as_str().map(|s| user = Some(s.to_string())),
            "pass" | "password" => f.as_str().map(|s| pass = Some(s.to_string())),
            "token" => f.as_str().map(|s| token = Some(s.to_string())),
            "timeout" => {
                // Anything but a number counts as one second.
                let secs = match f.value {
                    Value::Integer(n) => *n as f64,
                    Value::Float(x) => *x,
                    _ => 1.0,
                };
                if secs > 0.0 && secs.is_finite() {
                    timeout = Some(Duration::from_secs_f64(secs));
                }
                Ok(())
            }
            "users" => match parse_users(&f, errors) {
                Ok((u, n)) => {
                    users = Some(u);
                    nkeys = n;
                    Ok(())
                }
                Err(e) => Err(e),
            },
            "default_permission" | "default_permissions" | "permissions" => {
                parse_permissions(&f, errors).map(|p| default_permissions = Some(p))
            }
            _ if e.used_as_variable => Ok(()),
            _ => Err(unknown(e)),
        };
        if let Err(err) = result {
            errors.push(err);
        }
    }
    let user = user.unwrap_or_default();
    let pass = pass.unwrap_or_default();
    let token = token.unwrap_or_default();
    let conflict = |text: &str| ConfError::at(&entry.key_pos, text.to_string());
    if (!user.is_empty() || !pass.is_empty()) && !token.is_empty() {
        errors.push(conflict("Cannot have a user/pass and token"));
        return None;
    }
    if let Some(list) = users {
        if !user.is_empty() {
            errors.push(conflict(
                "Can not have a single user/pass and a users array",
            ));
            return None;
        }
        if !token.is_empty() {
            errors.push(conflict("Can not have a token and a users array"));
            return None;
        }
        let mut all = Users::default();
        for (name, mut u) in list {
            if all.by_name.contains_key(&name) {
                errors.push(conflict(&format!("Duplicate user {name:?} detected")));
                return None;
            }
            if u.permissions.is_none() {
                u.permissions.clone_from(&default_permissions);
            }
            all.by_name.insert(name, u);
        }
        for (key, mut u) in nkeys {
            if all.by_nkey.contains_key(&key) {
                errors.push(conflict(&format!("Duplicate nkey {key:?} detected")));
                return None;
            }
            if u.permissions.is_none() {
                u.permissions.clone_from(&default_permissions);
            }
            all.by_nkey.insert(key, u);
        }
        // An empty list requires nothing, as in nats-server.
        let auth = if all.by_name.is_empty() && all.by_nkey.is_empty() {
            Auth::None
        } else {
            Auth::Users(all)
        };
        return Some(Authorization { auth, timeout });
    }
    let auth = if !token.is_empty() {
        Auth::Token(token)
    } else if !user.is_empty() || !pass.is_empty() {
        Auth::UserPassword {
            user,
            password: pass,
        }
    } else {
        Auth::None
    };
    Some(Authorization { auth, timeout })
}

/// Where nats-server places a problem with a whole user entry: at the last
/// value it read in it.
fn entry_pos<'a>(item: &'a Item, map: &'a Map) -> &'a Pos {
    map.iter().last().map_or(&item.pos, |e| &e.key_pos)
}

pub(super) type NamedUsers = Vec<(String, User)>;

/// `users: [...]`: users by name and nkey users, in the order written.
pub(super) fn parse_users(
    f: &Field<'_>,
    errors: &mut Vec<ConfError>,
) -> Result<(NamedUsers, NamedUsers), ConfError> {
    let Value::Array(items) = f.value else {
        return Err(ConfError::at(
            f.pos,
            format!(
                "Expected users field to be an array, got {}",
                go_value(f.value)
            ),
        ));
    };
    let (mut users, mut nkeys) = (Vec::new(), Vec::new());
    for item in items {
        let Value::Map(m) = &item.value else {
            errors.push(ConfError::at(
                &item.pos,
                format!(
                    "Expected user entry to be a map/struct, got {}",
                    go_value(&item.value)
                ),
            ));
            continue;
        };
        let (mut name, mut password, mut nkey) = (String::new(), String::new(), String::new());
        let mut user = User::default();
        for e in m {
            let f = e.field();
            let result = match e.key.to_ascii_lowercase().as_str() {
                "nkey" => f.as_str().map(|s| nkey = s.to_string()),
                "user" | "username" => f.as_str().map(|s| name = s.to_string()),
                "pass" | "password" => f.as_str().map(|s| password = s.to_string()),
                "permission" | "permissions" | "authorization" => {
                    parse_permissions(&f, errors).map(|p| user.permissions = Some(p))
                }
                "allowed_connection_types" | "connection_types" | "clients" => {
                    connection_types(&f, errors).map(|t| user.connection_types = t)
                }
                _ if e.used_as_variable => Ok(()),
                _ => Err(unknown(e)),
            };
            if let Err(err) = result {
                errors.push(err);
            }
        }
        let pos = entry_pos(item, m);
        if nkey.is_empty() && name.is_empty() {
            return Err(ConfError::at(pos, "User entry requires a user".into()));
        }
        if !nkey.is_empty() {
            let valid = nkeys::KeyPair::from_public_key(&nkey)
                .is_ok_and(|k| k.key_pair_type() == nkeys::KeyPairType::User);
            if !valid {
                return Err(ConfError::at(
                    pos,
                    "Not a valid public nkey for a user".into(),
                ));
            }
            if !name.is_empty() || !password.is_empty() {
                return Err(ConfError::at(
                    pos,
                    "Nkey users do not take usernames or passwords".into(),
                ));
            }
            nkeys.push((nkey, user));
        } else {
            user.password = password;
            users.push((name, user));
        }
    }
    Ok((users, nkeys))
}

/// Go's `%v` of a value, for the few messages that print one.
pub(super) fn go_value(v: &Value) -> String {
    match v {
        Value::String(s) | Value::Datetime(s) => s.clone(),
        Value::Integer(n) => n.to_string(),
        Value::Float(x) => x.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Array(_) => "[...]".into(),
        Value::Map(_) => "map[...]".into(),
    }
}

/// `allowed_connection_types: [STANDARD, WEBSOCKET, ...]`.
fn connection_types(
    f: &Field<'_>,
    errors: &mut Vec<ConfError>,
) -> Result<BTreeSet<String>, ConfError> {
    let what = "allowed connection types";
    let names: Vec<&str> = match f.value {
        Value::String(s) => vec![s.as_str()],
        Value::Array(items) => items
            .iter()
            .filter_map(|i| match &i.value {
                Value::String(s) => Some(s.as_str()),
                other => {
                    errors.push(ConfError::at(
                        &i.pos,
                        format!(
                            "error parsing {what}: unsupported type in array {}",
                            go_type(other)
                        ),
                    ));
                    None
                }
            })
            .collect(),
        other => {
            return Err(ConfError::at(
                f.pos,
                format!("error parsing {what}: unsupported type {}", go_type(other)),
            ));
        }
    };
    let mut known = BTreeSet::new();
    let mut unknown = Vec::new();
    for n in names {
        let upper = n.to_ascii_uppercase();
        if CONNECTION_TYPES.contains(&upper.as_str()) {
            known.insert(upper);
        } else {
            unknown.push(format!("{upper:?}"));
        }
    }
    if !unknown.is_empty() {
        errors.push(ConfError::at(
            f.pos,
            format!("invalid connection types [{}]", unknown.join(" ")),
        ));
    }
    Ok(known)
}

/// A `permissions` map.
pub fn parse_permissions(
    f: &Field<'_>,
    errors: &mut Vec<ConfError>,
) -> Result<Permissions, ConfError> {
    let Value::Map(m) = f.value else {
        return Err(ConfError::at(
            f.pos,
            format!(
                "Expected permissions to be a map/struct, got {}",
                go_value(f.value)
            ),
        ));
    };
    let mut p = Permissions::default();
    for e in m {
        let f = e.field();
        let result = match e.key.to_ascii_lowercase().as_str() {
            "pub" | "publish" | "import" => subject_permission(&f, errors).map(|s| p.publish = s),
            "sub" | "subscribe" | "export" => {
                subject_permission(&f, errors).map(|s| p.subscribe = s)
            }
            "publish_allow_responses" | "allow_responses" => {
                match f.value {
                    Value::Bool(true) => p.response = Some(ResponsePermission::default()),
                    Value::Bool(false) => {}
                    _ => p.response = allow_responses(&f, errors),
                }
                Ok(())
            }
            _ if e.used_as_variable => Ok(()),
            _ => Err(ConfError::at(
                &e.key_pos,
                format!("Unknown field {:?} parsing permissions", e.key),
            )),
        };
        if let Err(err) = result {
            errors.push(err);
        }
    }
    Ok(p)
}

/// `publish`/`subscribe`: `{allow, deny}`, or a subject or list of
/// subjects to allow. `None`: no restriction (an empty map).
fn subject_permission(
    f: &Field<'_>,
    errors: &mut Vec<ConfError>,
) -> Result<Option<SubjectPermission>, ConfError> {
    let Value::Map(m) = f.value else {
        // A plain list: nats-server reports its problems without a place.
        let allow = subjects(f, false)?;
        return Ok(Some(SubjectPermission {
            allow,
            deny: Vec::new(),
        }));
    };
    if m.is_empty() {
        return Ok(None);
    }
    let mut p = SubjectPermission::default();
    for e in m {
        let f = e.field();
        let result = match e.key.to_ascii_lowercase().as_str() {
            "allow" => subjects(&f, true).map(|s| p.allow = s),
            "deny" => subjects(&f, true).map(|s| p.deny = s.unwrap_or_default()),
            _ if e.used_as_variable => Ok(()),
            _ => Err(ConfError::at(
                &e.key_pos,
                format!(
                    "Unknown field name {:?} parsing subject permissions, only 'allow' or 'deny' are permitted",
                    e.key
                ),
            )),
        };
        if let Err(err) = result {
            errors.push(err);
        }
    }
    Ok(Some(p))
}

/// A subject or a list of them, each a valid subject or `"subject
/// queue"`. An empty list is `None`, as in nats-server.
pub(super) fn subjects(f: &Field<'_>, placed: bool) -> Result<Option<Vec<String>>, ConfError> {
    let error = |reason: String| {
        if placed {
            ConfError::at(f.pos, reason)
        } else {
            unplaced(f.pos, reason)
        }
    };
    let list: Vec<String> = match f.value {
        Value::String(s) => vec![s.clone()],
        Value::Array(items) => {
            let mut out = Vec::with_capacity(items.len());
            for i in items {
                match &i.value {
                    Value::String(s) => out.push(s.clone()),
                    _ => {
                        return Err(ConfError::at(
                            &i.pos,
                            "Subject in permissions array cannot be cast to string".into(),
                        ));
                    }
                }
            }
            out
        }
        other => {
            return Err(error(format!(
                "Expected subject permissions to be a subject, or array of subjects, got {}",
                go_type(other)
            )));
        }
    };
    for s in &list {
        if crate::subject::is_valid_subject(s.as_bytes()) {
            continue;
        }
        let parts: Vec<&str> = s.split_ascii_whitespace().collect();
        if parts.len() != 2 {
            return Err(error(format!("subject {s:?} is not a valid subject")));
        }
        if !crate::subject::is_valid_subject(parts[0].as_bytes()) {
            return Err(error(format!(
                "subject {:?} is not a valid subject",
                parts[0]
            )));
        }
    }
    Ok((!list.is_empty()).then_some(list))
}

/// `allow_responses: {max, expires}`. `None` if it has a problem (which is
/// in `errors`).
fn allow_responses(f: &Field<'_>, errors: &mut Vec<ConfError>) -> Option<ResponsePermission> {
    let Value::Map(m) = f.value else {
        errors.push(ConfError::at(
            f.pos,
            "error parsing response permissions, expected a boolean or a map".into(),
        ));
        return None;
    };
    let mut rp = ResponsePermission::default();
    for e in m {
        let f = e.field();
        match e.key.to_ascii_lowercase().as_str() {
            "max" | "max_msgs" | "max_messages" | "max_responses" => match f.as_i64() {
                // 0 keeps the default; a negative number is no limit.
                Ok(0) => {}
                Ok(n) => rp.max_msgs = u64::try_from(n).ok(),
                Err(err) => {
                    errors.push(err);
                    return None;
                }
            },
            "expires" | "expiration" | "ttl" => {
                let Value::String(text) = f.value else {
                    errors.push(ConfError::at(
                        f.pos,
                        "error parsing expires, not a duration string".into(),
                    ));
                    return None;
                };
                match crate::conf::parse_go_duration(text) {
                    Ok(0) => {}
                    Ok(ns) => rp.expires = u64::try_from(ns).ok().map(Duration::from_nanos),
                    Err(err) => {
                        errors.push(ConfError::at(
                            f.pos,
                            format!("error parsing expires: {err}"),
                        ));
                        return None;
                    }
                }
            }
            _ if e.used_as_variable => {}
            _ => errors.push(ConfError::at(
                &e.key_pos,
                format!("Unknown field {:?} parsing permissions", e.key),
            )),
        }
    }
    Some(rp)
}
