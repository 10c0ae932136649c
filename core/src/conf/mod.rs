//! Configuration files: nats-server's `nats.conf` format, and TOML, read into
//! one tree of positioned values.
//!
//! What it is: a parser for the format nats-server 2.9.10 reads (`key = value`,
//! `key: value` or `key value`; blocks, arrays, block strings, size suffixes,
//! `include` and `$VARIABLE`s), a TOML reader that yields the same [`Value`]
//! tree, and typed accessors ([`Item::as_duration`], [`Item::as_size`], ...)
//! whose meaning and error texts follow nats-server. Every [`Item`] knows the
//! file, line and column it came from, so callers can report problems where
//! nats-server would, and [`ConfError::nats_server_text`] gives the exact text
//! nats-server prints for the same mistake.
//!
//! What it is not: it does not know what any key means (filling
//! [`crate::Options`] from the tree is a separate step), and it performs no
//! I/O. Included files and environment variables come through a [`Source`]
//! supplied by the caller; [`MemSource`] serves them from memory.
//!
//! Known departures from nats-server 2.9.10, all on inputs it mishandles:
//! an integer with an unknown suffix (`1kbib`) or one whose suffix overflows
//! `i64` is an error instead of being dropped or wrapped; an include cycle is
//! an error instead of exhausting the stack; nesting deeper than
//! [`MAX_DEPTH`] (blocks, arrays, includes and environment variables
//! together) is an error; and double-quoted strings also accept `\uXXXX` and
//! `\UXXXXXXXX` escapes.

mod access;
mod lex;
mod parse;
mod toml;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

pub use access::{Field, Warning, parse_go_duration};

/// Blocks, arrays, includes and variable expansions nest at most this deep.
pub const MAX_DEPTH: usize = 128;

/// Parses `text`, the contents of the nats.conf-format file `file_name`.
/// Includes are resolved against the directory of `file_name` (an empty name
/// stands for the current directory) and read, like environment variables,
/// through `source`.
pub fn parse(text: &str, file_name: &str, source: &dyn Source) -> Result<Map, ConfError> {
    parse::parse_file(text, file_name, source, &mut Vec::new(), 0)
}

/// Parses TOML `text` from `file_name` into the same tree `parse` builds.
pub fn parse_toml(text: &str, file_name: &str) -> Result<Map, ConfError> {
    toml::parse(text, file_name)
}

/// Where an item starts: file, 1-based line, 1-based byte column.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Pos {
    pub file: Arc<str>,
    pub line: u32,
    pub column: u32,
}

impl Pos {
    /// The column as nats-server prints it: it counts from the newline that
    /// ends the previous line, so columns on line 1 come out one lower than
    /// on the other lines.
    pub fn nats_column(&self) -> u32 {
        if self.line <= 1 {
            self.column.saturating_sub(1)
        } else {
            self.column
        }
    }

    /// `file:line:column` in nats-server's numbering.
    pub fn nats_location(&self) -> String {
        format!("{}:{}:{}", self.file, self.line, self.nats_column())
    }
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.file.is_empty() {
            write!(f, "{}:{}", self.line, self.column)
        } else {
            write!(f, "{}:{}:{}", self.file, self.line, self.column)
        }
    }
}

/// A value and where it was written.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    pub value: Value,
    pub pos: Pos,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    String(String),
    Integer(i64),
    Float(f64),
    Bool(bool),
    /// An ISO-8601 datetime, kept as written (`2006-01-02T15:04:05Z`).
    Datetime(String),
    Array(Vec<Item>),
    Map(Map),
}

impl Value {
    /// The kind of value, for messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::String(_) => "string",
            Value::Integer(_) => "integer",
            Value::Float(_) => "float",
            Value::Bool(_) => "boolean",
            Value::Datetime(_) => "datetime",
            Value::Array(_) => "array",
            Value::Map(_) => "map",
        }
    }

    /// Equal contents, ignoring positions, variable use and the order of
    /// map keys (nats-server keeps maps unordered).
    pub fn same_as(&self, other: &Value) -> bool {
        match (self, other) {
            (Value::Array(a), Value::Array(b)) => {
                a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.value.same_as(&y.value))
            }
            (Value::Map(a), Value::Map(b)) => a.same_as(b),
            (a, b) => a == b,
        }
    }
}

/// One `key = value` of a map.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// The key as written; see [`Map::get`] for lookups.
    pub key: String,
    /// Where the key was written; nats-server reports problems with a value
    /// at its key.
    pub key_pos: Pos,
    pub value: Item,
    /// The key was referenced as `$key`. nats-server does not report such
    /// keys as unknown fields: they are taken to be variables.
    pub used_as_variable: bool,
}

/// Map entries in the order they were written. A key written twice keeps its
/// first place and its last value.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Map {
    entries: Vec<Entry>,
    exact: BTreeMap<String, usize>,
}

impl Map {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn iter(&self) -> std::slice::Iter<'_, Entry> {
        self.entries.iter()
    }

    /// The entry for `key`, compared case-insensitively as nats-server
    /// compares option names. Among keys that differ only in case, the one
    /// written last wins.
    pub fn entry(&self, key: &str) -> Option<&Entry> {
        self.entries
            .iter()
            .rev()
            .find(|e| e.key.eq_ignore_ascii_case(key))
    }

    /// The value for `key`, compared case-insensitively.
    pub fn get(&self, key: &str) -> Option<&Item> {
        self.entry(key).map(|e| &e.value)
    }

    /// The entry whose key is exactly `key` (variables are case-sensitive).
    pub fn get_exact(&self, key: &str) -> Option<&Entry> {
        self.exact.get(key).map(|&i| &self.entries[i])
    }

    pub(crate) fn get_exact_mut(&mut self, key: &str) -> Option<&mut Entry> {
        let i = *self.exact.get(key)?;
        Some(&mut self.entries[i])
    }

    /// Adds an entry; an existing entry with exactly the same key is
    /// replaced in place.
    pub fn insert(&mut self, entry: Entry) {
        match self.exact.get(&entry.key) {
            Some(&i) => self.entries[i] = entry,
            None => {
                self.exact.insert(entry.key.clone(), self.entries.len());
                self.entries.push(entry);
            }
        }
    }

    /// Equal keys and values, ignoring order and positions.
    pub fn same_as(&self, other: &Map) -> bool {
        self.len() == other.len()
            && self.entries.iter().all(|e| {
                other
                    .get_exact(&e.key)
                    .is_some_and(|o| e.value.value.same_as(&o.value.value))
            })
    }
}

impl<'a> IntoIterator for &'a Map {
    type Item = &'a Entry;
    type IntoIter = std::slice::Iter<'a, Entry>;
    fn into_iter(self) -> Self::IntoIter {
        self.entries.iter()
    }
}

/// Where included files and environment variables come from. The runtime
/// reads the file system and the process environment; tests use
/// [`MemSource`].
pub trait Source {
    /// The contents of the file at `path`, or why it cannot be read (the
    /// text ends up in the error, after `error parsing include file 'x', `).
    /// `path` is already resolved against the including file's directory.
    fn read(&self, path: &str) -> Result<String, String>;
    /// The environment variable `name`, if set.
    fn env(&self, name: &str) -> Option<String>;
}

/// Files and environment variables held in memory.
#[derive(Debug, Clone, Default)]
pub struct MemSource {
    pub files: BTreeMap<String, String>,
    pub vars: BTreeMap<String, String>,
}

impl MemSource {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn file(mut self, path: &str, text: &str) -> Self {
        self.files.insert(path.to_string(), text.to_string());
        self
    }

    pub fn var(mut self, name: &str, value: &str) -> Self {
        self.vars.insert(name.to_string(), value.to_string());
        self
    }
}

impl Source for MemSource {
    fn read(&self, path: &str) -> Result<String, String> {
        self.files
            .get(path)
            .cloned()
            .ok_or_else(|| format!("open {path}: no such file or directory"))
    }

    fn env(&self, name: &str) -> Option<String> {
        self.vars.get(name).cloned()
    }
}

/// A configuration problem: where, what, and what nats-server would print.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfError {
    /// Where the problem is; inside an included file, that file's position.
    pub pos: Pos,
    /// What was expected and what was found.
    pub message: String,
    /// The include directives that led to `pos`, outermost first.
    pub included_from: Vec<Pos>,
    nats_text: String,
}

impl ConfError {
    pub(crate) fn new(pos: Pos, message: String, nats_text: String) -> Self {
        ConfError {
            pos,
            message,
            included_from: Vec::new(),
            nats_text,
        }
    }

    /// An error about a value, reported as nats-server reports errors in
    /// processing options: `file:line:col: reason`.
    pub fn at(pos: &Pos, reason: String) -> Self {
        let nats_text = format!("{}: {reason}", pos.nats_location());
        ConfError::new(pos.clone(), reason, nats_text)
    }

    /// The text nats-server 2.9.10 prints for the same problem (`-t`),
    /// without its `nats-server: ` prefix.
    pub fn nats_server_text(&self) -> &str {
        &self.nats_text
    }
}

impl fmt::Display for ConfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.pos, self.message)?;
        for from in self.included_from.iter().rev() {
            write!(f, " (included from {from})")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfError {}

/// Turns byte offsets into lines and columns.
pub(crate) struct Lines {
    starts: Vec<usize>,
}

impl Lines {
    pub fn new(text: &str) -> Self {
        let mut starts = vec![0];
        starts.extend(memchr::memchr_iter(b'\n', text.as_bytes()).map(|i| i + 1));
        Lines { starts }
    }

    pub fn pos(&self, file: &Arc<str>, offset: usize) -> Pos {
        let line = self.starts.partition_point(|&s| s <= offset).max(1);
        let column = offset - self.starts[line - 1] + 1;
        Pos {
            file: file.clone(),
            line: u32::try_from(line).unwrap_or(u32::MAX),
            column: u32::try_from(column).unwrap_or(u32::MAX),
        }
    }
}
