//! The client's `CONNECT` options, decoded as nats-server decodes them.
//!
//! nats-server unmarshals `CONNECT` with Go's `encoding/json` on top of the
//! options it already holds: keys match field names case-insensitively,
//! unknown keys are ignored, `null` leaves a field as it was, and a value of
//! the wrong type is an error that closes the connection. Before any
//! `CONNECT`, `verbose`, `pedantic` and `echo` are true.

use serde_json::{Map, Value};

/// What a client declared in `CONNECT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectOptions {
    pub verbose: bool,
    pub pedantic: bool,
    pub echo: bool,
    pub tls_required: bool,
    pub headers: bool,
    pub no_responders: bool,
    pub protocol: i64,
    pub name: String,
    pub lang: String,
    pub version: String,
    pub user: String,
    pub pass: String,
    pub auth_token: String,
    pub nkey: String,
    pub jwt: String,
    pub sig: String,
    pub account: String,
    pub new_account: bool,
    pub remote_account: String,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions {
            verbose: true,
            pedantic: true,
            echo: true,
            tls_required: false,
            headers: false,
            no_responders: false,
            protocol: 0,
            name: String::new(),
            lang: String::new(),
            version: String::new(),
            user: String::new(),
            pass: String::new(),
            auth_token: String::new(),
            nkey: String::new(),
            jwt: String::new(),
            sig: String::new(),
            account: String::new(),
            new_account: false,
            remote_account: String::new(),
        }
    }
}

/// A `CONNECT` argument that is not acceptable JSON for the options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectError(pub String);

enum Field<'a> {
    Bool(&'a mut bool),
    Str(&'a mut String),
    Int(&'a mut i64),
    /// Known object-valued fields (route/leaf permissions) this server ignores.
    Object,
}

impl ConnectOptions {
    /// Applies a `CONNECT` JSON argument on top of the current options.
    pub fn apply(&mut self, json: &[u8]) -> Result<(), ConnectError> {
        let value: Value = serde_json::from_slice(json).map_err(|e| ConnectError(e.to_string()))?;
        let map: Map<String, Value> = match value {
            Value::Object(m) => m,
            Value::Null => return Ok(()),
            other => {
                return Err(ConnectError(format!(
                    "cannot unmarshal {} into options",
                    kind(&other)
                )));
            }
        };
        let mut first_error = None;
        for (key, value) in map {
            let Some(field) = self.field(&key) else {
                continue;
            };
            if let Err(e) = set(field, value) {
                first_error.get_or_insert(ConnectError(format!("field {key}: {e}")));
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    fn field(&mut self, key: &str) -> Option<Field<'_>> {
        let k = key.to_ascii_lowercase();
        Some(match k.as_str() {
            "verbose" => Field::Bool(&mut self.verbose),
            "pedantic" => Field::Bool(&mut self.pedantic),
            "echo" => Field::Bool(&mut self.echo),
            "tls_required" => Field::Bool(&mut self.tls_required),
            "headers" => Field::Bool(&mut self.headers),
            "no_responders" => Field::Bool(&mut self.no_responders),
            "new_account" => Field::Bool(&mut self.new_account),
            "protocol" => Field::Int(&mut self.protocol),
            "name" => Field::Str(&mut self.name),
            "lang" => Field::Str(&mut self.lang),
            "version" => Field::Str(&mut self.version),
            "user" => Field::Str(&mut self.user),
            "pass" => Field::Str(&mut self.pass),
            "auth_token" => Field::Str(&mut self.auth_token),
            "nkey" => Field::Str(&mut self.nkey),
            "jwt" => Field::Str(&mut self.jwt),
            "sig" => Field::Str(&mut self.sig),
            "account" => Field::Str(&mut self.account),
            "remote_account" => Field::Str(&mut self.remote_account),
            "import" | "export" => Field::Object,
            _ => return None,
        })
    }
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

fn set(field: Field<'_>, value: Value) -> Result<(), String> {
    match (field, value) {
        (_, Value::Null) => Ok(()),
        (Field::Bool(b), Value::Bool(v)) => {
            *b = v;
            Ok(())
        }
        (Field::Str(s), Value::String(v)) => {
            *s = v;
            Ok(())
        }
        (Field::Int(i), Value::Number(n)) => match n.as_i64() {
            Some(v) => {
                *i = v;
                Ok(())
            }
            None => Err(format!("cannot unmarshal number {n} into int")),
        },
        (Field::Object, Value::Object(_)) => Ok(()),
        (_, v) => Err(format!("cannot unmarshal {} into this field", kind(&v))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_overlay() {
        let mut o = ConnectOptions::default();
        assert!(o.verbose && o.pedantic && o.echo);
        o.apply(br#"{"verbose":false,"Pedantic":false,"name":"x","protocol":1,"unknown":[1]}"#)
            .unwrap();
        assert!(!o.verbose && !o.pedantic && o.echo);
        assert_eq!(o.name, "x");
        assert_eq!(o.protocol, 1);
        o.apply(br#"{"echo":null}"#).unwrap();
        assert!(o.echo);
        o.apply(b" null ").unwrap();
    }

    #[test]
    fn errors() {
        let mut o = ConnectOptions::default();
        assert!(o.apply(b"").is_err());
        assert!(o.apply(b"{").is_err());
        assert!(o.apply(b"[]").is_err());
        assert!(o.apply(b"{} x").is_err());
        assert!(o.apply(br#"{"verbose":"yes"}"#).is_err());
        assert!(o.apply(br#"{"protocol":1.5}"#).is_err());
        assert!(o.apply(br#"{"import":1}"#).is_err());
    }
}
