//! Builds the value tree from the lexer's tokens: numbers with suffixes,
//! variables looked up through the enclosing blocks and then the
//! environment, and includes spliced in where they are written.

use std::sync::Arc;

use super::lex::{Kind, Lexer, Token};
use super::{ConfError, Entry, Item, Lines, MAX_DEPTH, Map, Pos, Source, Value};

/// Parses one file. `chain` holds the files being included, outermost
/// first, to refuse cycles; `depth` is the nesting already used by the
/// files and variables that led here.
pub(super) fn parse_file(
    text: &str,
    file_name: &str,
    source: &dyn Source,
    chain: &mut Vec<String>,
    depth: usize,
) -> Result<Map, ConfError> {
    let file: Arc<str> = Arc::from(file_name);
    let root_pos = Pos {
        file: file.clone(),
        line: 1,
        column: 1,
    };
    if chain.is_empty() {
        chain.push(clean(file_name));
    }
    let mut p = Parser {
        lexer: Lexer::new(text),
        lines: Lines::new(text),
        file,
        dir: dir(file_name),
        source,
        chain,
        base_depth: depth,
        contexts: vec![Context::Map(Map::new(), root_pos)],
        keys: Vec::new(),
    };
    p.run()?;
    match p.contexts.swap_remove(0) {
        Context::Map(m, _) => Ok(m),
        Context::Array(..) => Ok(Map::new()),
    }
}

enum Context {
    Map(Map, Pos),
    Array(Vec<Item>, Pos),
}

struct Parser<'a, 'c> {
    lexer: Lexer<'a>,
    lines: Lines,
    file: Arc<str>,
    dir: String,
    source: &'a dyn Source,
    chain: &'c mut Vec<String>,
    base_depth: usize,
    /// The root map, then every block and array still open.
    contexts: Vec<Context>,
    /// Keys waiting for their value.
    keys: Vec<(String, Pos)>,
}

impl Parser<'_, '_> {
    fn run(&mut self) -> Result<(), ConfError> {
        loop {
            let token = match self.lexer.next_token() {
                Ok(t) => t,
                Err(e) => {
                    let pos = self.lines.pos(&self.file, e.offset);
                    let nats_line = self.lines.pos(&self.file, e.after).line;
                    let nats = format!("Parse error on line {nats_line}: '{}'", e.message);
                    return Err(ConfError::new(pos, e.message, nats));
                }
            };
            if token.kind == Kind::Eof {
                return Ok(());
            }
            self.token(token)?;
        }
    }

    fn depth(&self) -> usize {
        self.base_depth + self.contexts.len() - 1
    }

    fn token(&mut self, token: Token) -> Result<(), ConfError> {
        let pos = self.lines.pos(&self.file, token.offset);
        let value = match token.kind {
            Kind::Key => {
                self.keys.push((token.text, pos));
                return Ok(());
            }
            Kind::MapStart | Kind::ArrayStart => {
                // Point at the bracket, not past it.
                let pos = self.lines.pos(&self.file, token.offset.saturating_sub(1));
                if self.depth() >= MAX_DEPTH {
                    let message = format!("Nesting is deeper than {MAX_DEPTH} levels.");
                    return Err(syntax_error(pos, message));
                }
                self.contexts.push(if token.kind == Kind::MapStart {
                    Context::Map(Map::new(), pos)
                } else {
                    Context::Array(Vec::new(), pos)
                });
                return Ok(());
            }
            Kind::MapEnd | Kind::ArrayEnd => {
                if self.contexts.len() < 2 {
                    return Err(syntax_error(pos, "Unbalanced close.".to_string()));
                }
                match self.contexts.pop() {
                    Some(Context::Map(m, pos)) => Item {
                        value: Value::Map(m),
                        pos,
                    },
                    Some(Context::Array(a, pos)) => Item {
                        value: Value::Array(a),
                        pos,
                    },
                    None => return Ok(()),
                }
            }
            Kind::String => item(Value::String(token.text), pos),
            Kind::Bool => {
                let b = matches!(
                    token.text.to_ascii_lowercase().as_str(),
                    "true" | "yes" | "on"
                );
                item(Value::Bool(b), pos)
            }
            Kind::Integer => match integer(&token.text) {
                Ok(n) => item(Value::Integer(n), pos),
                Err(message) => return Err(value_error(pos, message)),
            },
            Kind::Float => match token.text.parse::<f64>() {
                Ok(f) if f.is_finite() => item(Value::Float(f), pos),
                Ok(_) => {
                    let message = format!("float '{}' is out of the range", token.text);
                    return Err(value_error(pos, message));
                }
                Err(_) => {
                    let message = format!("expected float, but got '{}'", token.text);
                    return Err(value_error(pos, message));
                }
            },
            Kind::Datetime => {
                if !valid_datetime(&token.text) {
                    let message =
                        format!("expected Zulu formatted DateTime, but got '{}'", token.text);
                    return Err(value_error(pos, message));
                }
                item(Value::Datetime(token.text), pos)
            }
            Kind::Variable => self.variable(&token.text, pos)?,
            Kind::Include => return self.include(&token.text, pos),
            Kind::Eof => return Ok(()),
        };
        self.set(value);
        Ok(())
    }

    /// Puts a finished value into the innermost open block or array.
    fn set(&mut self, value: Item) {
        match self.contexts.last_mut() {
            Some(Context::Array(a, _)) => a.push(value),
            Some(Context::Map(m, _)) => {
                // The lexer emits a key before every value in a block.
                if let Some((key, key_pos)) = self.keys.pop() {
                    m.insert(Entry {
                        key,
                        key_pos,
                        value,
                        used_as_variable: false,
                    });
                }
            }
            None => {}
        }
    }

    /// `$name`: the nearest enclosing block that defines `name` (exactly, case
    /// and all), else the environment, whose value is read as a config value.
    fn variable(&mut self, name: &str, pos: Pos) -> Result<Item, ConfError> {
        // bcrypt hashes (`$2a$...`) look like variables but are not.
        if name.starts_with("2a$") {
            return Ok(item(Value::String(format!("${name}")), pos));
        }
        for context in self.contexts.iter_mut().rev() {
            if let Context::Map(m, _) = context
                && let Some(e) = m.get_exact_mut(name)
            {
                e.used_as_variable = true;
                return Ok(item(e.value.value.clone(), pos));
            }
        }
        let line = pos.line;
        let not_found = |pos: Pos| {
            let message =
                format!("variable reference for '{name}' on line {line} can not be found");
            value_error(pos, message)
        };
        let Some(text) = self.source.env(name) else {
            return Err(not_found(pos));
        };
        if self.depth() >= MAX_DEPTH {
            let message = format!("Nesting is deeper than {MAX_DEPTH} levels.");
            return Err(syntax_error(pos, message));
        }
        let wrapped = format!("pk={text}");
        let depth = self.depth() + 1;
        match parse_file(&wrapped, "", self.source, self.chain, depth) {
            Ok(m) => match m.get_exact("pk") {
                Some(e) => Ok(item(e.value.value.clone(), pos)),
                None => Err(not_found(pos)),
            },
            Err(e) => {
                let message = format!(
                    "variable reference for '{name}' on line {line} could not be parsed: {}",
                    e.nats_server_text()
                );
                Err(value_error(pos, message))
            }
        }
    }

    /// `include path`: the file's entries join the current block.
    fn include(&mut self, path: &str, pos: Pos) -> Result<(), ConfError> {
        let resolved = join(&self.dir, path);
        let fail = |pos: &Pos, why: String| {
            let message = format!("error parsing include file '{path}', {why}");
            ConfError::new(pos.clone(), message.clone(), message)
        };
        if self.chain.contains(&resolved) {
            return Err(fail(&pos, format!("include cycle through {resolved}")));
        }
        if self.depth() >= MAX_DEPTH {
            return Err(fail(
                &pos,
                format!("nesting is deeper than {MAX_DEPTH} levels"),
            ));
        }
        let text = self.source.read(&resolved).map_err(|why| fail(&pos, why))?;
        self.chain.push(resolved.clone());
        let depth = self.depth() + 1;
        let parsed = parse_file(&text, &resolved, self.source, self.chain, depth);
        self.chain.pop();
        let map = parsed.map_err(|mut e| {
            e.included_from.insert(0, pos.clone());
            e.nats_text = format!("error parsing include file '{path}', {}", e.nats_text);
            e
        })?;
        for entry in map.entries {
            match self.contexts.last_mut() {
                Some(Context::Map(m, _)) => m.insert(entry),
                Some(Context::Array(a, _)) => a.push(entry.value),
                None => {}
            }
        }
        Ok(())
    }
}

fn item(value: Value, pos: Pos) -> Item {
    Item { value, pos }
}

/// A lexical error, printed by nats-server with its line only.
fn syntax_error(pos: Pos, message: String) -> ConfError {
    let nats = format!("Parse error on line {}: '{message}'", pos.line);
    ConfError::new(pos, message, nats)
}

/// A bad value, printed by nats-server without a position.
fn value_error(pos: Pos, message: String) -> ConfError {
    ConfError::new(pos, message.clone(), message)
}

/// An integer with an optional size suffix: `k` is 1000, `kb`/`ki`/`kib` is
/// 1024, and so on up to `e`.
fn integer(text: &str) -> Result<i64, String> {
    let digits = text
        .bytes()
        .take_while(|b| b.is_ascii_digit() || *b == b'-')
        .count();
    let number: i64 = text[..digits]
        .parse()
        .map_err(|e: std::num::ParseIntError| {
            use std::num::IntErrorKind::{NegOverflow, PosOverflow};
            match e.kind() {
                PosOverflow | NegOverflow => format!("integer '{text}' is out of the range"),
                _ => format!("expected integer, but got '{text}'"),
            }
        })?;
    let suffix = text[digits..].trim().to_ascii_lowercase();
    let (base, power): (i64, u32) = match suffix.as_str() {
        "" => (1, 0),
        "k" => (1000, 1),
        "m" => (1000, 2),
        "g" => (1000, 3),
        "t" => (1000, 4),
        "p" => (1000, 5),
        "e" => (1000, 6),
        "kb" | "ki" | "kib" => (1024, 1),
        "mb" | "mi" | "mib" => (1024, 2),
        "gb" | "gi" | "gib" => (1024, 3),
        "tb" | "ti" | "tib" => (1024, 4),
        "pb" | "pi" | "pib" => (1024, 5),
        "eb" | "ei" | "eib" => (1024, 6),
        _ => return Err(format!("expected integer, but got '{text}'")),
    };
    base.checked_pow(power)
        .and_then(|m| number.checked_mul(m))
        .ok_or_else(|| format!("integer '{text}' is out of the range"))
}

/// `2006-01-02T15:04:05Z` with every field in range.
fn valid_datetime(text: &str) -> bool {
    let b = text.as_bytes();
    if b.len() != 20 {
        return false;
    }
    let num = |from: usize, to: usize| -> u32 {
        text.get(from..to)
            .and_then(|s| s.parse().ok())
            .unwrap_or(u32::MAX)
    };
    let (year, month, day) = (num(0, 4), num(5, 7), num(8, 10));
    let (hour, minute, second) = (num(11, 13), num(14, 16), num(17, 19));
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    (1..=days).contains(&day) && hour < 24 && minute < 60 && second < 60
}

/// The directory of `path`, as Go's `filepath.Dir` gives it.
fn dir(path: &str) -> String {
    match path.rfind('/') {
        Some(i) => clean(&path[..=i]),
        None => ".".to_string(),
    }
}

/// `dir` and `path` joined and cleaned, as Go's `filepath.Join` does: an
/// absolute `path` is still taken as relative to `dir`, as in nats-server.
pub(super) fn join(dir: &str, path: &str) -> String {
    if path.is_empty() {
        return clean(dir);
    }
    clean(&format!("{dir}/{path}"))
}

/// Lexical path cleaning: no empty or `.` segments, `..` resolved where it
/// can be.
pub(super) fn clean(path: &str) -> String {
    let rooted = path.starts_with('/');
    let mut out: Vec<&str> = Vec::new();
    for seg in path.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                if out.last().is_some_and(|s| *s != "..") {
                    out.pop();
                } else if !rooted {
                    out.push("..");
                }
            }
            s => out.push(s),
        }
    }
    let body = out.join("/");
    match (rooted, body.is_empty()) {
        (true, _) => format!("/{body}"),
        (false, true) => ".".to_string(),
        (false, false) => body,
    }
}
