//! The client's `CONNECT` options, decoded as nats-server decodes them.
//!
//! nats-server unmarshals `CONNECT` with Go's `encoding/json` on top of the
//! options it already holds: keys match field names case-insensitively,
//! unknown keys are ignored, `null` leaves a field as it was, and a value of
//! the wrong type is an error that closes the connection. Before any
//! `CONNECT`, `verbose`, `pedantic` and `echo` are true. Go's decoder also
//! takes strings that are not UTF-8: each stray byte, and each `\u` escape
//! of half a surrogate pair, reads as U+FFFD (so a client named `\xff\xfe`
//! is accepted, not closed).

use std::borrow::Cow;

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
        let json = with_replacement_characters(json);
        let value: Value =
            serde_json::from_slice(&json).map_err(|e| ConnectError(e.to_string()))?;
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

/// The JSON with U+FFFD, as Go's decoder reads it, for each byte inside a
/// string that is not part of a UTF-8 character and for each escape of an
/// unpaired surrogate. Bytes outside strings are left for the parser to
/// refuse.
fn with_replacement_characters(json: &[u8]) -> Cow<'_, [u8]> {
    if std::str::from_utf8(json).is_ok() && !json.windows(3).any(starts_surrogate_escape) {
        return Cow::Borrowed(json);
    }
    let mut out = Vec::with_capacity(json.len() + 8);
    let mut in_string = false;
    let mut i = 0;
    while i < json.len() {
        let rest = &json[i..];
        let taken = match rest[0] {
            b'"' => {
                in_string = !in_string;
                1
            }
            _ if !in_string => 1,
            b'\\' => match surrogate_escape(rest) {
                Some(SurrogateEscape::Pair) => 12,
                Some(SurrogateEscape::Unpaired) => {
                    out.extend_from_slice(b"\\ufffd");
                    i += 6;
                    continue;
                }
                None => rest.len().min(2),
            },
            b if b < 0x80 => 1,
            _ => match utf8_char_len(rest) {
                Some(n) => n,
                None => {
                    out.extend_from_slice("\u{fffd}".as_bytes());
                    i += 1;
                    continue;
                }
            },
        };
        out.extend_from_slice(&rest[..taken]);
        i += taken;
    }
    Cow::Owned(out)
}

enum SurrogateEscape {
    /// `\uD8xx\uDCxx`: one character, kept.
    Pair,
    /// A `\uD800`-`\uDFFF` escape that is not the first half of a pair.
    Unpaired,
}

fn starts_surrogate_escape(b: &[u8]) -> bool {
    b[0] == b'\\' && b[1] == b'u' && matches!(b[2], b'd' | b'D')
}

/// What the escape at the start of `rest` is, if it is a surrogate.
fn surrogate_escape(rest: &[u8]) -> Option<SurrogateEscape> {
    let first = unicode_escape(rest).filter(|u| (0xD800..0xE000).contains(u))?;
    let second = rest.get(6..).and_then(unicode_escape);
    let paired =
        (0xD800..0xDC00).contains(&first) && second.is_some_and(|u| (0xDC00..0xE000).contains(&u));
    Some(if paired {
        SurrogateEscape::Pair
    } else {
        SurrogateEscape::Unpaired
    })
}

/// The code unit of a `\uXXXX` escape at the start of `b`.
fn unicode_escape(b: &[u8]) -> Option<u32> {
    let hex = b.strip_prefix(b"\\u")?.get(..4)?;
    u32::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()
}

/// The length of the UTF-8 character at the start of `b`, if it is one
/// (Go, like Rust, refuses overlong forms, surrogates and values past
/// U+10FFFF, and then moves on by one byte).
fn utf8_char_len(b: &[u8]) -> Option<usize> {
    let n = match b[0] {
        0xC2..=0xDF => 2,
        0xE0..=0xEF => 3,
        0xF0..=0xF4 => 4,
        _ => return None,
    };
    std::str::from_utf8(b.get(..n)?).ok().map(str::len)
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

    fn name_of(json: &[u8]) -> String {
        let mut o = ConnectOptions::default();
        o.apply(json).unwrap();
        o.name
    }

    #[test]
    fn bytes_that_are_not_utf8_read_as_replacement_characters() {
        assert_eq!(name_of(b"{\"name\":\"\xff\xfe\"}"), "\u{fffd}\u{fffd}");
        // One U+FFFD per byte, as Go's decoder moves on by one byte: a cut
        // three-byte character is two, an encoded surrogate three.
        assert_eq!(name_of(b"{\"name\":\"a\xe2\x82\"}"), "a\u{fffd}\u{fffd}");
        assert_eq!(
            name_of(b"{\"name\":\"\xed\xa0\x80\"}"),
            "\u{fffd}".repeat(3)
        );
        assert_eq!(name_of(b"{\"name\":\"\xc0\x80\"}"), "\u{fffd}".repeat(2));
        assert_eq!(
            name_of(b"{\"name\":\"\xf4\x90\x80\x80\"}"),
            "\u{fffd}".repeat(4)
        );
        // Good characters next to bad bytes are kept.
        assert_eq!(name_of("{\"name\":\"é\x7f€\"}".as_bytes()), "é\x7f€");
        assert_eq!(
            name_of(b"{\"name\":\"\xc3\xa9\xff\xf0\x9f\x98\x80\"}"),
            "é\u{fffd}😀"
        );
    }

    #[test]
    fn unpaired_surrogate_escapes_read_as_replacement_characters() {
        assert_eq!(name_of(br#"{"name":"\ud800"}"#), "\u{fffd}");
        assert_eq!(name_of(br#"{"name":"\uD83D\uDE00"}"#), "😀");
        // A low half first, a high half followed by a letter: each half is
        // one U+FFFD and the letter stays.
        assert_eq!(
            name_of(br#"{"name":"\udc00\ud800\u0041"}"#),
            "\u{fffd}\u{fffd}A"
        );
        // An escaped backslash before `ud800` is no escape.
        assert_eq!(name_of(br#"{"name":"\\ud800"}"#), "\\ud800");
    }

    #[test]
    fn bytes_that_are_not_utf8_in_keys_name_unknown_fields() {
        let mut o = ConnectOptions::default();
        o.apply(b"{\"verb\xffose\":false}").unwrap();
        assert!(o.verbose);
    }

    #[test]
    fn bytes_that_are_not_utf8_outside_strings_are_errors() {
        let mut o = ConnectOptions::default();
        assert!(o.apply(b"{\"verbose\":true}\xff").is_err());
        assert!(o.apply(b"{\xff\"verbose\":true}").is_err());
        assert!(o.apply(b"{\"name\":\"\xff").is_err());
        assert!(o.apply(b"{\"name\":\"\\\xff\"}").is_err());
    }
}
