//! TOML into the same tree as nats.conf, with positions from the TOML
//! parser's spans. TOML has no includes or variables; a size must be a plain
//! integer (`8388608`) or a string the option accepts.

use std::sync::Arc;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::{ConfError, Entry, Item, Lines, Map, Value};

pub(super) fn parse(text: &str, file_name: &str) -> Result<Map, ConfError> {
    let file: Arc<str> = Arc::from(file_name);
    let lines = Lines::new(text);
    let doc = DeTable::parse(text).map_err(|e| {
        let offset = e.span().map_or(0, |s| s.start);
        let pos = lines.pos(&file, offset);
        let message = e.message().trim_end().to_string();
        let nats = format!("{}: {message}", pos.nats_location());
        ConfError::new(pos, message, nats)
    })?;
    let reader = Reader { lines, file };
    reader.table(doc.get_ref())
}

struct Reader {
    lines: Lines,
    file: Arc<str>,
}

impl Reader {
    fn table(&self, table: &DeTable<'_>) -> Result<Map, ConfError> {
        let mut map = Map::new();
        for (key, value) in table.iter() {
            map.insert(Entry {
                key: key.get_ref().to_string(),
                key_pos: self.lines.pos(&self.file, key.span().start),
                value: self.value(value)?,
                used_as_variable: false,
            });
        }
        Ok(map)
    }

    fn value(&self, value: &Spanned<DeValue<'_>>) -> Result<Item, ConfError> {
        let pos = self.lines.pos(&self.file, value.span().start);
        let v = match value.get_ref() {
            DeValue::String(s) => Value::String(s.to_string()),
            DeValue::Integer(i) => match i64::from_str_radix(i.as_str(), i.radix()) {
                Ok(n) => Value::Integer(n),
                Err(_) => {
                    let reason = format!("integer '{i}' is out of the range");
                    return Err(ConfError::at(&pos, reason));
                }
            },
            DeValue::Float(f) => match f.as_str().parse::<f64>() {
                Ok(x) => Value::Float(x),
                Err(_) => {
                    let reason = format!("expected float, but got '{f}'");
                    return Err(ConfError::at(&pos, reason));
                }
            },
            DeValue::Boolean(b) => Value::Bool(*b),
            DeValue::Datetime(d) => Value::Datetime(d.to_string()),
            DeValue::Array(a) => {
                Value::Array(a.iter().map(|v| self.value(v)).collect::<Result<_, _>>()?)
            }
            DeValue::Table(t) => Value::Map(self.table(t)?),
        };
        Ok(Item { value: v, pos })
    }
}
