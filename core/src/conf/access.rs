//! Typed reads of configuration values, with nats-server's meanings (a bare
//! integer duration is seconds) and errors placed at the value's position.

use std::fmt;
use std::time::Duration;

use super::{ConfError, Entry, Item, Map, Pos, Value};

/// A value that was accepted but should be written differently.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    pub pos: Pos,
    pub field: String,
    pub reason: String,
}

impl Warning {
    /// The text nats-server prints for this warning.
    pub fn nats_server_text(&self) -> String {
        format!(
            "{}: invalid use of field \"{}\": {}",
            self.pos.nats_location(),
            self.field,
            self.reason
        )
    }
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.pos, self.reason)
    }
}

/// A value together with the option name and position used in messages
/// about it.
#[derive(Debug, Clone, Copy)]
pub struct Field<'a> {
    pub value: &'a Value,
    pub name: &'a str,
    pub pos: &'a Pos,
}

impl Item {
    /// This value read as option `name` (for array elements and the like).
    pub fn field<'a>(&'a self, name: &'a str) -> Field<'a> {
        Field {
            value: &self.value,
            name,
            pos: &self.pos,
        }
    }
}

impl Entry {
    /// This entry's value, named by its key and placed at the key, as
    /// nats-server reports problems with options.
    pub fn field(&self) -> Field<'_> {
        Field {
            value: &self.value.value,
            name: &self.key,
            pos: &self.key_pos,
        }
    }
}

impl<'a> Field<'a> {
    fn error(&self, reason: String) -> ConfError {
        ConfError::at(self.pos, reason)
    }

    /// A value of the wrong type. nats-server reports the failed Go type
    /// assertion (`interface conversion: interface {} is string, not
    /// int64`); natrix says what it expected, and keeps nats-server's text.
    fn wrong_type(&self, expected: &str) -> ConfError {
        let go = |v: &str| match v {
            "a string" | "a duration" | "string" => "string",
            "a boolean" | "boolean" => "bool",
            "an integer" | "integer" => "int64",
            "a number" | "float" => "float64",
            "datetime" => "time.Time",
            "an array" | "array" => "[]interface {}",
            _ => "map[string]interface {}",
        };
        let message = format!(
            "error parsing {}: expected {expected}, got {}",
            self.name,
            self.value.type_name()
        );
        let nats = format!(
            "{}: interface conversion: interface {{}} is {}, not {}",
            self.pos.nats_location(),
            go(self.value.type_name()),
            go(expected)
        );
        ConfError::new(self.pos.clone(), message, nats)
    }

    pub fn as_str(&self) -> Result<&'a str, ConfError> {
        match self.value {
            Value::String(s) => Ok(s),
            _ => Err(self.wrong_type("a string")),
        }
    }

    pub fn as_bool(&self) -> Result<bool, ConfError> {
        match self.value {
            Value::Bool(b) => Ok(*b),
            _ => Err(self.wrong_type("a boolean")),
        }
    }

    /// An integer, size suffixes already applied (`8MB` is 8388608).
    pub fn as_i64(&self) -> Result<i64, ConfError> {
        match self.value {
            Value::Integer(n) => Ok(*n),
            _ => Err(self.wrong_type("an integer")),
        }
    }

    /// A non-negative size in bytes (`max_payload: 8MB`).
    pub fn as_size(&self) -> Result<u64, ConfError> {
        let n = self.as_i64()?;
        u64::try_from(n)
            .map_err(|_| self.error(format!("error parsing {}: negative size {n}", self.name)))
    }

    pub fn as_f64(&self) -> Result<f64, ConfError> {
        match self.value {
            Value::Float(f) => Ok(*f),
            Value::Integer(n) => Ok(*n as f64),
            _ => Err(self.wrong_type("a number")),
        }
    }

    /// A port number. `-1` (nats-server's "random port") is 0: let the
    /// system choose.
    pub fn as_u16_port(&self) -> Result<u16, ConfError> {
        let n = self.as_i64()?;
        if n == -1 {
            return Ok(0);
        }
        u16::try_from(n).map_err(|_| {
            self.error(format!(
                "error parsing {}: port {n} is not in the range 0 to 65535 (or -1)",
                self.name
            ))
        })
    }

    /// A duration written as Go writes them (`"1h2m3.5s"`, `"500ms"`). A
    /// bare integer still counts as seconds, with a warning, as nats-server
    /// allows for older configurations.
    pub fn as_duration(&self, warnings: &mut Vec<Warning>) -> Result<Duration, ConfError> {
        let nanos = match self.value {
            Value::String(s) => parse_go_duration(s)
                .map_err(|e| self.error(format!("error parsing {}: {e}", self.name)))?,
            Value::Integer(secs) => {
                warnings.push(Warning {
                    pos: self.pos.clone(),
                    field: self.name.to_string(),
                    reason: format!("{} should be converted to a duration", self.name),
                });
                secs.checked_mul(1_000_000_000).ok_or_else(|| {
                    self.error(format!(
                        "error parsing {}: {secs} seconds is too long",
                        self.name
                    ))
                })?
            }
            _ => return Err(self.wrong_type("a duration")),
        };
        u64::try_from(nanos).map(Duration::from_nanos).map_err(|_| {
            self.error(format!(
                "error parsing {}: negative duration is not allowed",
                self.name
            ))
        })
    }

    pub fn as_array(&self) -> Result<&'a [Item], ConfError> {
        match self.value {
            Value::Array(a) => Ok(a),
            _ => Err(self.wrong_type("an array")),
        }
    }

    pub fn as_map(&self) -> Result<&'a Map, ConfError> {
        match self.value {
            Value::Map(m) => Ok(m),
            _ => Err(self.wrong_type("a map")),
        }
    }
}

/// Go's `time.ParseDuration`: a signed sequence of decimal numbers, each
/// with an optional fraction and a unit (`ns`, `us`/`µs`/`μs`, `ms`, `s`,
/// `m`, `h`). Returns nanoseconds, or Go's error text.
pub fn parse_go_duration(text: &str) -> Result<i64, String> {
    let invalid = || format!("time: invalid duration {text:?}");
    let (negative, mut rest) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    if rest == "0" {
        return Ok(0);
    }
    if rest.is_empty() {
        return Err(invalid());
    }
    const LIMIT: u64 = 1 << 63;
    let mut total: u64 = 0;
    while !rest.is_empty() {
        let first = rest.as_bytes()[0];
        if first != b'.' && !first.is_ascii_digit() {
            return Err(invalid());
        }
        let int_len = rest.bytes().take_while(u8::is_ascii_digit).count();
        let mut whole: u64 = 0;
        for d in rest[..int_len].bytes() {
            whole = whole
                .checked_mul(10)
                .map(|x| x + u64::from(d - b'0'))
                .filter(|&x| x <= LIMIT)
                .ok_or_else(invalid)?;
        }
        rest = &rest[int_len..];
        let mut fraction: u64 = 0;
        let mut scale: f64 = 1.0;
        let mut has_fraction = false;
        if let Some(after_dot) = rest.strip_prefix('.') {
            let frac_len = after_dot.bytes().take_while(u8::is_ascii_digit).count();
            has_fraction = frac_len > 0;
            let mut overflow = false;
            for d in after_dot[..frac_len].bytes() {
                if overflow {
                    continue;
                }
                match fraction.checked_mul(10).map(|x| x + u64::from(d - b'0')) {
                    Some(x) if x <= LIMIT => {
                        fraction = x;
                        scale *= 10.0;
                    }
                    _ => overflow = true,
                }
            }
            rest = &after_dot[frac_len..];
        }
        if int_len == 0 && !has_fraction {
            return Err(invalid());
        }
        let unit_len = rest
            .find(|c: char| c == '.' || c.is_ascii_digit())
            .unwrap_or(rest.len());
        if unit_len == 0 {
            return Err(format!("time: missing unit in duration {text:?}"));
        }
        let unit_text = &rest[..unit_len];
        rest = &rest[unit_len..];
        let unit: u64 = match unit_text {
            "ns" => 1,
            "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => {
                return Err(format!(
                    "time: unknown unit {unit_text:?} in duration {text:?}"
                ));
            }
        };
        if whole > LIMIT / unit {
            return Err(invalid());
        }
        let mut value = whole * unit;
        if fraction > 0 {
            value += (fraction as f64 * (unit as f64 / scale)) as u64;
            if value > LIMIT {
                return Err(invalid());
            }
        }
        total = total
            .checked_add(value)
            .filter(|&t| t <= LIMIT)
            .ok_or_else(invalid)?;
    }
    if negative {
        return Ok((total as i128).wrapping_neg() as i64);
    }
    i64::try_from(total).map_err(|_| invalid())
}
