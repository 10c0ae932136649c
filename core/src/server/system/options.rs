//! The options of a request over NATS, decoded as nats-server decodes
//! them: Go's `encoding/json` into the endpoint's options struct. Keys match
//! case-insensitively, unknown keys are ignored, `null` leaves a field
//! unset, and a value of the wrong type is an error with Go's text
//! (`json: cannot unmarshal string into Go struct field
//! ConnzEventOptions.subscriptions of type bool`). The decoded options come
//! out as the HTTP endpoint's query parameters, so one implementation
//! answers both.

use std::collections::BTreeMap;

use serde_json::Value;

/// A field's Go type.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum GoType {
    Bool,
    Int,
    Uint64,
    Str,
    Strings,
    /// `SortOpt` (a string).
    Sort,
    /// `ConnState` (an int: 0 open, 1 closed, 2 all).
    State,
}

impl GoType {
    fn name(self) -> &'static str {
        match self {
            GoType::Bool => "bool",
            GoType::Int => "int",
            GoType::Uint64 => "uint64",
            GoType::Str => "string",
            GoType::Strings => "[]string",
            GoType::Sort => "server.SortOpt",
            GoType::State => "server.ConnState",
        }
    }
}

/// One option: its JSON name, Go type and the query parameter it becomes.
pub(super) struct Field {
    pub json: &'static str,
    pub go: GoType,
    pub query: &'static str,
}

const fn field(json: &'static str, go: GoType, query: &'static str) -> Field {
    Field { json, go, query }
}

/// nats-server's `EventFilterOptions`, part of every request's options.
const FILTER: [Field; 5] = [
    field("server_name", GoType::Str, "server_name"),
    field("cluster", GoType::Str, "cluster"),
    field("host", GoType::Str, "host"),
    field("tags", GoType::Strings, "tags"),
    field("domain", GoType::Str, "domain"),
];

pub(super) const CONNZ: &[Field] = &[
    field("sort", GoType::Sort, "sort"),
    field("auth", GoType::Bool, "auth"),
    field("subscriptions", GoType::Bool, "subs"),
    field("subscriptions_detail", GoType::Bool, "subs_detail"),
    field("offset", GoType::Int, "offset"),
    field("limit", GoType::Int, "limit"),
    field("cid", GoType::Uint64, "cid"),
    field("mqtt_client", GoType::Str, "mqtt_client"),
    field("state", GoType::State, "state"),
    field("user", GoType::Str, "user"),
    field("acc", GoType::Str, "acc"),
    field("filter_subject", GoType::Str, "filter_subject"),
];
pub(super) const SUBSZ: &[Field] = &[
    field("offset", GoType::Int, "offset"),
    field("limit", GoType::Int, "limit"),
    field("subscriptions", GoType::Bool, "subs"),
    field("account", GoType::Str, "acc"),
    field("test", GoType::Str, "test"),
];
pub(super) const ROUTEZ: &[Field] = &[
    field("subscriptions", GoType::Bool, "subs"),
    field("subscriptions_detail", GoType::Bool, "subs_detail"),
];
pub(super) const GATEWAYZ: &[Field] = &[
    field("name", GoType::Str, "gw_name"),
    field("accounts", GoType::Bool, "accs"),
    field("account_name", GoType::Str, "acc_name"),
];
pub(super) const LEAFZ: &[Field] = &[
    field("subscriptions", GoType::Bool, "subs"),
    field("account", GoType::Str, "acc"),
];
pub(super) const ACCOUNTZ: &[Field] = &[field("account", GoType::Str, "acc")];
pub(super) const JSZ: &[Field] = &[
    field("account", GoType::Str, "acc"),
    field("accounts", GoType::Bool, "accounts"),
    field("streams", GoType::Bool, "streams"),
    field("consumer", GoType::Bool, "consumers"),
    field("config", GoType::Bool, "config"),
    field("leader_only", GoType::Bool, "leader-only"),
    field("offset", GoType::Int, "offset"),
    field("limit", GoType::Int, "limit"),
];
pub(super) const HEALTHZ: &[Field] = &[
    field("js-enabled-only", GoType::Bool, "js-enabled-only"),
    field("js-server-only", GoType::Bool, "js-server-only"),
];
pub(super) const ACCOUNT_STATZ: &[Field] = &[
    field("accounts", GoType::Strings, "accounts"),
    field("include_unused", GoType::Bool, "unused"),
];
pub(super) const NONE: &[Field] = &[];

/// Decoded options: scalar values as query parameters, lists apart.
#[derive(Default)]
pub(super) struct Options {
    pub query: BTreeMap<String, String>,
    pub lists: BTreeMap<&'static str, Vec<String>>,
}

impl Options {
    pub fn get(&self, key: &str) -> &str {
        self.query.get(key).map_or("", String::as_str)
    }

    pub fn list(&self, key: &str) -> &[String] {
        self.lists.get(key).map_or(&[], Vec::as_slice)
    }

    /// Whether the request is for another server (nats-server's
    /// `filterRequest`): a name or host that is not part of ours, any
    /// cluster (natrix has none), a tag we lack (we have none), a domain.
    pub fn filtered_out(&self, name: &str, host: &str) -> bool {
        let name_f = self.get("server_name");
        let host_f = self.get("host");
        (!name_f.is_empty() && !name.contains(name_f))
            || (!host_f.is_empty() && !host.contains(host_f))
            || !self.get("cluster").is_empty()
            || !self.list("tags").is_empty()
            || !self.get("domain").is_empty()
    }
}

/// Decodes `body` (empty: no options) into the options of the Go struct
/// `type_name` with `fields` and the event filter; the error is Go's text.
pub(super) fn decode(type_name: &str, body: &[u8], fields: &[Field]) -> Result<Options, String> {
    let mut out = Options::default();
    if body.is_empty() {
        return Ok(out);
    }
    let value: Value = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let map = match value {
        Value::Object(m) => m,
        Value::Null => return Ok(out),
        other => {
            return Err(format!(
                "json: cannot unmarshal {} into Go value of type server.{type_name}",
                kind(&other)
            ));
        }
    };
    let mut first_error = None;
    for (key, value) in &map {
        let Some(f) = fields
            .iter()
            .chain(FILTER.iter())
            .find(|f| f.json.eq_ignore_ascii_case(key))
        else {
            continue;
        };
        if let Err(e) = set(&mut out, f, value) {
            first_error.get_or_insert(format!(
                "json: cannot unmarshal {e} into Go struct field {type_name}.{} of type {}",
                f.json,
                f.go.name()
            ));
        }
    }
    if let Some(e) = first_error {
        return Err(e);
    }
    // `subscriptions_detail` asks for the detailed list.
    if out.query.remove("subs_detail").as_deref() == Some("true") {
        out.query.insert("subs".into(), "detail".into());
    }
    Ok(out)
}

/// Sets one field; the error names what the JSON value was, as Go does
/// (`string`, `number 1.5`).
fn set(out: &mut Options, f: &Field, value: &Value) -> Result<(), String> {
    let text = match (f.go, value) {
        (_, Value::Null) => return Ok(()),
        (GoType::Bool, Value::Bool(b)) => b.to_string(),
        (GoType::Int | GoType::State, Value::Number(n)) => {
            let i = n.as_i64().ok_or_else(|| format!("number {n}"))?;
            if f.go == GoType::State {
                match i {
                    1 => "closed".to_string(),
                    2 => "all".to_string(),
                    _ => "open".to_string(),
                }
            } else {
                i.to_string()
            }
        }
        (GoType::Uint64, Value::Number(n)) => {
            n.as_u64().ok_or_else(|| format!("number {n}"))?.to_string()
        }
        (GoType::Str | GoType::Sort, Value::String(s)) => s.clone(),
        (GoType::Strings, Value::Array(items)) => {
            let mut list = Vec::with_capacity(items.len());
            for item in items {
                match item {
                    Value::String(s) => list.push(s.clone()),
                    Value::Null => list.push(String::new()),
                    other => return Err(kind(other).to_string()),
                }
            }
            out.lists.insert(f.query, list);
            return Ok(());
        }
        (_, other) => return Err(kind(other).to_string()),
    };
    out.query.insert(f.query.to_string(), text);
    Ok(())
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_become_query_parameters() {
        let o = decode(
            "ConnzEventOptions",
            br#"{"Subscriptions":true,"limit":5,"state":1,"unknown":[1]}"#,
            CONNZ,
        )
        .unwrap();
        assert_eq!(o.get("subs"), "true");
        assert_eq!(o.get("limit"), "5");
        assert_eq!(o.get("state"), "closed");
        let o = decode(
            "ConnzEventOptions",
            br#"{"subscriptions_detail":true}"#,
            CONNZ,
        )
        .unwrap();
        assert_eq!(o.get("subs"), "detail");
    }

    #[test]
    fn wrong_types_get_go_errors() {
        let e = decode("ConnzEventOptions", br#"{"subscriptions":"x"}"#, CONNZ)
            .err()
            .unwrap();
        assert_eq!(
            e,
            "json: cannot unmarshal string into Go struct field ConnzEventOptions.subscriptions of type bool"
        );
        let e = decode("ConnzEventOptions", br#"{"limit":1.5}"#, CONNZ)
            .err()
            .unwrap();
        assert_eq!(
            e,
            "json: cannot unmarshal number 1.5 into Go struct field ConnzEventOptions.limit of type int"
        );
        let e = decode("VarzEventOptions", b"[1]", NONE).err().unwrap();
        assert_eq!(
            e,
            "json: cannot unmarshal array into Go value of type server.VarzEventOptions"
        );
    }

    #[test]
    fn the_filter_picks_servers() {
        let o = decode("VarzEventOptions", br#"{"server_name":"nat"}"#, NONE).unwrap();
        assert!(!o.filtered_out("natrix-1", "0.0.0.0"));
        assert!(o.filtered_out("other", "0.0.0.0"));
        let o = decode("VarzEventOptions", br#"{"cluster":"c"}"#, NONE).unwrap();
        assert!(o.filtered_out("natrix-1", "0.0.0.0"));
    }
}
