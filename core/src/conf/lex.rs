//! The nats.conf lexer: a resumable state machine that yields one token at a
//! time. Its states and their transitions follow nats-server 2.9.10 closely,
//! quirks included (`2m` is the integer 2000000, `[1]` is an error, a block
//! string closed at end of input keeps its `)`), because a drop-in must read
//! every existing configuration the same way.

use std::collections::VecDeque;

/// The end of input, and also a literal NUL: nats-server treats both alike.
const EOF: char = '\0';

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Key,
    String,
    Bool,
    Integer,
    Float,
    Datetime,
    ArrayStart,
    ArrayEnd,
    MapStart,
    MapEnd,
    Variable,
    Include,
    Eof,
}

#[derive(Debug)]
pub(super) struct Token {
    pub kind: Kind,
    pub text: String,
    /// Byte offset of the token's first character (after an opening quote).
    pub offset: usize,
}

#[derive(Debug)]
pub(super) struct LexError {
    pub message: String,
    /// Byte offset of the character that was rejected.
    pub offset: usize,
    /// Byte offset just past it: nats-server names the line this is on.
    pub after: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Top,
    TopValueEnd,
    KeyStart,
    QuotedKey(char),
    Key,
    KeyEnd,
    IncludeStart,
    Include,
    QuotedInclude(char),
    BareInclude,
    Value,
    ArrayValue,
    ArrayValueEnd,
    MapKeyStart,
    MapQuotedKey(char),
    MapKey,
    MapKeyEnd,
    MapValue,
    MapValueEnd,
    SingleQuoted,
    DoubleQuoted,
    Bare,
    Block,
    Escape,
    Number,
    NumberSuffix,
    Datetime,
    NegativeStart,
    Negative,
    FloatStart,
    Float,
    IpAddr,
    Comment,
}

type Step = Option<State>;

pub(super) struct Lexer<'a> {
    input: &'a str,
    start: usize,
    pos: usize,
    width: usize,
    state: Option<State>,
    stack: Vec<State>,
    /// Decoded pieces of a string that contained escapes.
    parts: Vec<u8>,
    has_parts: bool,
    parts_offset: usize,
    /// Where a string resumes after an escape: double-quoted or bare.
    string_state: State,
    out: VecDeque<Result<Token, LexError>>,
}

fn is_blank(r: char) -> bool {
    r == ' ' || r == '\t'
}

fn is_newline(r: char) -> bool {
    r == '\n' || r == '\r'
}

fn is_separator(r: char) -> bool {
    r == '=' || r == ':'
}

fn is_suffix(r: char) -> bool {
    matches!(r.to_ascii_lowercase(), 'k' | 'm' | 'g' | 't' | 'p' | 'e')
}

/// Ends an unquoted number (note: `]` is not among them, as in nats-server).
fn ends_number(r: char) -> bool {
    is_newline(r) || r == EOF || r == '}' || r == ';' || r == ',' || is_blank(r)
}

/// How a character appears in a message: only a newline is escaped.
fn shown(r: char) -> String {
    if r == '\n' {
        "\\n".to_string()
    } else {
        r.to_string()
    }
}

impl<'a> Lexer<'a> {
    pub fn new(input: &'a str) -> Self {
        Lexer {
            input,
            start: 0,
            pos: 0,
            width: 0,
            state: Some(State::Top),
            stack: Vec::new(),
            parts: Vec::new(),
            has_parts: false,
            parts_offset: 0,
            string_state: State::Bare,
            out: VecDeque::new(),
        }
    }

    /// The next token; after an error or the end it keeps answering `Eof`.
    pub fn next_token(&mut self) -> Result<Token, LexError> {
        loop {
            if let Some(t) = self.out.pop_front() {
                return t;
            }
            match self.state.take() {
                Some(s) => self.state = self.step(s),
                None => {
                    return Ok(Token {
                        kind: Kind::Eof,
                        text: String::new(),
                        offset: self.pos,
                    });
                }
            }
        }
    }

    fn next(&mut self) -> char {
        match self.input[self.pos..].chars().next() {
            Some(c) => {
                self.width = c.len_utf8();
                self.pos += self.width;
                c
            }
            None => {
                self.width = 0;
                EOF
            }
        }
    }

    fn backup(&mut self) {
        self.pos -= self.width;
        self.width = 0;
    }

    fn peek(&mut self) -> char {
        let r = self.next();
        self.backup();
        r
    }

    fn ignore(&mut self) {
        self.start = self.pos;
    }

    fn push(&mut self, s: State) {
        self.stack.push(s);
    }

    fn pop(&mut self) -> Step {
        match self.stack.pop() {
            Some(s) => Some(s),
            None => self.fail("BUG in lexer: no states to pop.".to_string()),
        }
    }

    fn emit(&mut self, kind: Kind) {
        let raw = &self.input[self.start..self.pos];
        let (text, offset) = if self.has_parts {
            let mut bytes = std::mem::take(&mut self.parts);
            bytes.extend_from_slice(raw.as_bytes());
            self.has_parts = false;
            let text = match String::from_utf8(bytes) {
                Ok(s) => s,
                Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
            };
            (text, self.parts_offset)
        } else {
            (raw.to_string(), self.start)
        };
        self.out.push_back(Ok(Token { kind, text, offset }));
        self.start = self.pos;
    }

    fn fail(&mut self, message: String) -> Step {
        self.out.push_back(Err(LexError {
            message,
            offset: self.pos - self.width,
            after: self.pos,
        }));
        None
    }

    /// Keeps the text read so far (minus `skip` trailing bytes) as part of
    /// a string whose escapes are being decoded.
    fn keep_part(&mut self, skip: usize) {
        if !self.has_parts {
            self.has_parts = true;
            self.parts_offset = self.start;
        }
        let end = self.pos - skip;
        self.parts
            .extend_from_slice(&self.input.as_bytes()[self.start..end]);
        self.start = self.pos;
    }

    fn add_part(&mut self, bytes: &[u8]) -> Step {
        if !self.has_parts {
            self.has_parts = true;
            self.parts_offset = self.start;
        }
        self.parts.extend_from_slice(bytes);
        self.start = self.pos;
        Some(self.string_state)
    }

    /// End of input where a token may end: clean if nothing is pending.
    fn end_or_fail(&mut self) -> Step {
        if self.pos > self.start {
            return self.fail("Unexpected EOF.".to_string());
        }
        self.emit(Kind::Eof);
        None
    }

    fn comment(&mut self, resume: State) -> Step {
        self.push(resume);
        self.ignore();
        Some(State::Comment)
    }

    fn step(&mut self, state: State) -> Step {
        use State as S;
        match state {
            S::Top => self.top(),
            S::TopValueEnd => self.top_value_end(),
            S::KeyStart => self.key_start(),
            S::QuotedKey(q) => {
                let r = self.peek();
                if r == q {
                    self.emit(Kind::Key);
                    self.next();
                    self.ignore();
                    Some(S::KeyEnd)
                } else if r == EOF {
                    self.end_or_fail()
                } else {
                    self.next();
                    Some(state)
                }
            }
            S::Key => {
                let r = self.peek();
                if r.is_whitespace() {
                    self.keyword(S::KeyEnd, None)
                } else if is_separator(r) || r == EOF {
                    self.emit(Kind::Key);
                    Some(S::KeyEnd)
                } else {
                    self.next();
                    Some(S::Key)
                }
            }
            S::KeyEnd => {
                let r = self.next();
                if r.is_whitespace() {
                    self.ignore();
                    Some(S::KeyEnd)
                } else if is_separator(r) {
                    self.ignore();
                    Some(S::Value)
                } else if r == EOF {
                    self.emit(Kind::Eof);
                    None
                } else {
                    self.backup();
                    Some(S::Value)
                }
            }
            S::IncludeStart => {
                if is_blank(self.next()) {
                    self.ignore();
                    return Some(S::IncludeStart);
                }
                self.backup();
                Some(S::Include)
            }
            S::Include => self.include(),
            S::QuotedInclude(q) => {
                let r = self.next();
                if r == q {
                    self.backup();
                    self.emit(Kind::Include);
                    self.next();
                    self.ignore();
                    self.pop()
                } else if r == EOF {
                    let which = if q == '"' { "double quoted" } else { "quoted" };
                    self.fail(format!("Unexpected EOF in {which} include"))
                } else {
                    Some(state)
                }
            }
            S::BareInclude => {
                let r = self.next();
                if is_newline(r) || r == EOF || r == ';' || r == '}' || is_blank(r) {
                    self.backup();
                    self.emit(Kind::Include);
                    self.pop()
                } else if r == '\'' {
                    self.backup();
                    self.emit(Kind::Include);
                    self.next();
                    self.ignore();
                    self.pop()
                } else {
                    Some(S::BareInclude)
                }
            }
            S::Value => self.value(),
            S::ArrayValue => self.array_value(),
            S::ArrayValueEnd => self.array_value_end(),
            S::MapKeyStart => self.map_key_start(),
            S::MapQuotedKey(q) => {
                let r = self.peek();
                if r == EOF {
                    let which = if q == '"' { "double quoted" } else { "quoted" };
                    self.fail(format!("Unexpected EOF processing {which} map key."))
                } else if r == q {
                    self.emit(Kind::Key);
                    self.next();
                    self.ignore();
                    Some(S::MapKeyEnd)
                } else {
                    self.next();
                    Some(state)
                }
            }
            S::MapKey => {
                let r = self.peek();
                if r == EOF {
                    self.fail("Unexpected EOF processing map key.".to_string())
                } else if r.is_whitespace() {
                    self.keyword(S::MapKeyEnd, Some(S::MapValueEnd))
                } else if is_separator(r) {
                    self.emit(Kind::Key);
                    Some(S::MapKeyEnd)
                } else {
                    self.next();
                    Some(S::MapKey)
                }
            }
            S::MapKeyEnd => {
                let r = self.next();
                if r.is_whitespace() {
                    self.ignore();
                    Some(S::MapKeyEnd)
                } else if is_separator(r) {
                    self.ignore();
                    Some(S::MapValue)
                } else {
                    self.backup();
                    Some(S::MapValue)
                }
            }
            S::MapValue => {
                let r = self.next();
                if r.is_whitespace() {
                    self.ignore();
                    Some(S::MapValue)
                } else if r == ',' {
                    self.fail("Unexpected map value terminator \",\".".to_string())
                } else if r == '}' {
                    self.close(Kind::MapEnd)
                } else {
                    self.backup();
                    self.push(S::MapValueEnd);
                    Some(S::Value)
                }
            }
            S::MapValueEnd => self.map_value_end(),
            S::SingleQuoted => match self.next() {
                '\'' => {
                    self.backup();
                    self.emit(Kind::String);
                    self.next();
                    self.ignore();
                    self.pop()
                }
                EOF => self.end_or_fail(),
                _ => Some(S::SingleQuoted),
            },
            S::DoubleQuoted => match self.next() {
                '\\' => {
                    self.keep_part(1);
                    Some(S::Escape)
                }
                '"' => {
                    self.backup();
                    self.emit(Kind::String);
                    self.next();
                    self.ignore();
                    self.pop()
                }
                EOF => self.end_or_fail(),
                _ => Some(S::DoubleQuoted),
            },
            S::Bare => self.bare(),
            S::Block => self.block(),
            S::Escape => self.escape(),
            S::Number => self.number(),
            S::NumberSuffix => {
                let r = self.next();
                if matches!(r, 'b' | 'B' | 'i' | 'I') {
                    return Some(S::NumberSuffix);
                }
                self.backup();
                if ends_number(r) || r.is_ascii_digit() {
                    self.emit(Kind::Integer);
                    return self.pop();
                }
                self.string_state = S::Bare;
                Some(S::Bare)
            }
            S::Datetime => self.datetime(),
            S::NegativeStart => self.first_digit(S::Negative),
            S::Negative => {
                let r = self.next();
                if r.is_ascii_digit() {
                    Some(S::Negative)
                } else if r == '.' {
                    Some(S::FloatStart)
                } else if is_suffix(r) {
                    Some(S::NumberSuffix)
                } else {
                    self.backup();
                    self.emit(Kind::Integer);
                    self.pop()
                }
            }
            S::FloatStart => {
                let r = self.next();
                if !r.is_ascii_digit() {
                    return self.fail(format!(
                        "Floats must have a digit after the '.', but got '{}' instead.",
                        shown(r)
                    ));
                }
                Some(S::Float)
            }
            S::Float => {
                let r = self.next();
                if r.is_ascii_digit() {
                    return Some(S::Float);
                }
                if r == '.' {
                    // Not a float after all: an IP address.
                    return Some(S::IpAddr);
                }
                self.backup();
                self.emit(Kind::Float);
                self.pop()
            }
            S::IpAddr => {
                let r = self.next();
                if r.is_ascii_digit() || matches!(r, '.' | ':' | '-') {
                    return Some(S::IpAddr);
                }
                self.backup();
                self.emit(Kind::String);
                self.pop()
            }
            S::Comment => {
                let r = self.peek();
                if is_newline(r) || r == EOF {
                    self.ignore();
                    return self.pop();
                }
                self.next();
                Some(S::Comment)
            }
        }
    }

    fn close(&mut self, kind: Kind) -> Step {
        self.ignore();
        self.emit(kind);
        self.pop()
    }

    fn top(&mut self) -> Step {
        let r = self.next();
        if r.is_whitespace() || r == '{' {
            self.ignore();
            return Some(State::Top);
        }
        match r {
            '#' => self.comment(State::Top),
            '/' => {
                if self.next() == '/' {
                    return self.comment(State::Top);
                }
                self.backup();
                self.end_or_fail()
            }
            EOF => self.end_or_fail(),
            _ => {
                self.backup();
                self.push(State::TopValueEnd);
                Some(State::KeyStart)
            }
        }
    }

    fn top_value_end(&mut self) -> Step {
        let r = self.next();
        match r {
            '#' => self.comment(State::Top),
            '/' => {
                if self.next() == '/' {
                    return self.comment(State::Top);
                }
                // A lone '/' is passed over like a blank.
                self.backup();
                Some(State::TopValueEnd)
            }
            ' ' | '\t' => Some(State::TopValueEnd),
            '\n' | '\r' | EOF | ';' | ',' | '}' => {
                self.ignore();
                Some(State::Top)
            }
            _ => self.fail(format!(
                "Expected a top-level value to end with a new line, comment or EOF, \
                 but got '{}' instead.",
                shown(r)
            )),
        }
    }

    fn key_start(&mut self) -> Step {
        let r = self.peek();
        if is_separator(r) {
            self.next();
            return self.fail(format!("Unexpected key separator '{r}'"));
        }
        if r.is_whitespace() {
            self.next();
            self.ignore();
            return Some(State::KeyStart);
        }
        if r == '"' || r == '\'' {
            self.next();
            self.ignore();
            return Some(State::QuotedKey(r));
        }
        self.ignore();
        self.next();
        Some(State::Key)
    }

    /// A key followed by whitespace may be the `include` keyword.
    fn keyword(&mut self, otherwise: State, resume: Option<State>) -> Step {
        if self.input[self.start..self.pos].eq_ignore_ascii_case("include") {
            self.ignore();
            if let Some(s) = resume {
                self.push(s);
            }
            return Some(State::IncludeStart);
        }
        self.emit(Kind::Key);
        Some(otherwise)
    }

    fn include(&mut self) -> Step {
        let r = self.next();
        let found = match r {
            '\'' | '"' => {
                self.ignore();
                return Some(State::QuotedInclude(r));
            }
            '[' => "start of an array",
            '{' => "start of a map",
            '(' => "start of a block",
            '-' | '0'..='9' => "start of a number",
            '\\' => "escape sequence",
            '\n' | '\r' => "new line",
            _ => {
                self.backup();
                return Some(State::BareInclude);
            }
        };
        self.fail(format!("Expected include value but found {found}"))
    }

    fn value(&mut self) -> Step {
        let r = self.next();
        match r {
            ' ' | '\t' => {
                self.ignore();
                Some(State::Value)
            }
            '[' => {
                self.ignore();
                self.emit(Kind::ArrayStart);
                Some(State::ArrayValue)
            }
            '{' => {
                self.ignore();
                self.emit(Kind::MapStart);
                Some(State::MapKeyStart)
            }
            '\'' => {
                self.ignore();
                Some(State::SingleQuoted)
            }
            '"' => {
                self.ignore();
                self.string_state = State::DoubleQuoted;
                Some(State::DoubleQuoted)
            }
            '-' => Some(State::NegativeStart),
            '(' => {
                self.ignore();
                Some(State::Block)
            }
            '0'..='9' => {
                // The first digit is read again by `first_digit`.
                self.backup();
                self.first_digit(State::Number)
            }
            '.' => self.fail("Floats must start with a digit".to_string()),
            '\n' | '\r' => self.fail("Expected value but found new line".to_string()),
            _ => {
                self.backup();
                self.string_state = State::Bare;
                Some(State::Bare)
            }
        }
    }

    fn first_digit(&mut self, then: State) -> Step {
        let r = self.next();
        if r.is_ascii_digit() {
            return Some(then);
        }
        if r == '.' {
            return self.fail("Floats must start with a digit, not '.'.".to_string());
        }
        self.fail(format!("Expected a digit but got '{}'.", shown(r)))
    }

    fn array_value(&mut self) -> Step {
        let r = self.next();
        if r.is_whitespace() {
            self.ignore();
            return Some(State::ArrayValue);
        }
        match r {
            '#' => self.comment(State::ArrayValue),
            '/' | ',' => {
                if r == '/' {
                    if self.next() == '/' {
                        return self.comment(State::ArrayValue);
                    }
                    self.backup();
                }
                self.fail("Unexpected array value terminator ','.".to_string())
            }
            ']' => self.close(Kind::ArrayEnd),
            _ => {
                self.backup();
                self.push(State::ArrayValueEnd);
                Some(State::Value)
            }
        }
    }

    fn array_value_end(&mut self) -> Step {
        let r = self.next();
        match r {
            ' ' | '\t' => {
                self.ignore();
                Some(State::ArrayValueEnd)
            }
            '#' => self.comment(State::ArrayValueEnd),
            '/' | ',' | '\n' | '\r' => {
                if r == '/' {
                    if self.next() == '/' {
                        return self.comment(State::ArrayValueEnd);
                    }
                    // A lone '/' separates values like ','.
                    self.backup();
                }
                self.ignore();
                Some(State::ArrayValue)
            }
            ']' => self.close(Kind::ArrayEnd),
            _ => self.fail(format!(
                "Expected an array value terminator \",\" or an array terminator \"]\", \
                 but got '{}' instead.",
                shown(r)
            )),
        }
    }

    fn map_key_start(&mut self) -> Step {
        let r = self.peek();
        if is_separator(r) {
            self.next();
            return self.fail(format!("Unexpected key separator '{r}'."));
        }
        if r == ']' {
            self.next();
            return self.fail(format!("Unexpected array end '{r}' processing map."));
        }
        if r.is_whitespace() {
            self.next();
            self.ignore();
            return Some(State::MapKeyStart);
        }
        match r {
            '}' => {
                self.next();
                return self.close(Kind::MapEnd);
            }
            '#' => {
                self.next();
                return self.comment(State::MapKeyStart);
            }
            '/' => {
                self.next();
                if self.next() == '/' {
                    return self.comment(State::MapKeyStart);
                }
                // The lone '/' is dropped and the key starts after it.
                self.backup();
            }
            '\'' | '"' => {
                self.next();
                self.ignore();
                return Some(State::MapQuotedKey(r));
            }
            EOF => return self.fail("Unexpected EOF processing map.".to_string()),
            _ => {}
        }
        self.ignore();
        self.next();
        Some(State::MapKey)
    }

    fn map_value_end(&mut self) -> Step {
        let r = self.next();
        match r {
            ' ' | '\t' => {
                self.ignore();
                Some(State::MapValueEnd)
            }
            '#' => self.comment(State::MapValueEnd),
            '/' | ';' | ',' | '\n' | '\r' => {
                if r == '/' {
                    if self.next() == '/' {
                        return self.comment(State::MapValueEnd);
                    }
                    self.backup();
                }
                self.ignore();
                Some(State::MapKeyStart)
            }
            '}' => self.close(Kind::MapEnd),
            _ => self.fail(format!(
                "Expected a map value terminator \",\" or a map terminator \"}}\", \
                 but got '{}' instead.",
                shown(r)
            )),
        }
    }

    fn bare(&mut self) -> Step {
        let r = self.next();
        match r {
            '\\' => {
                self.keep_part(1);
                Some(State::Escape)
            }
            '\n' | '\r' | EOF | ';' | ',' | ']' | '}' | ' ' | '\t' => {
                self.backup();
                let input = self.input;
                let text = &input[self.start..self.pos];
                if self.has_parts {
                    self.emit(Kind::String);
                } else if ["true", "false", "on", "off", "yes", "no"]
                    .iter()
                    .any(|b| text.eq_ignore_ascii_case(b))
                {
                    self.emit(Kind::Bool);
                } else if text.starts_with('$') {
                    self.start += 1;
                    self.emit(Kind::Variable);
                } else {
                    self.emit(Kind::String);
                }
                self.pop()
            }
            '\'' => {
                self.backup();
                self.emit(Kind::String);
                self.next();
                self.ignore();
                self.pop()
            }
            _ => Some(State::Bare),
        }
    }

    /// `( ... )`: everything up to a `)` alone at the start of a line.
    fn block(&mut self) -> Step {
        match self.next() {
            ')' => {
                let close = self.pos - 1;
                if close == 0 || self.input.as_bytes()[close - 1] != b'\n' {
                    return Some(State::Block);
                }
                let after = self.next();
                if after != '\n' && after != EOF {
                    self.backup();
                    return Some(State::Block);
                }
                // At the end of input the `)` stays in the text.
                let end = if after == EOF { close + 1 } else { close };
                self.pos = end;
                self.emit(Kind::String);
                self.pos = close + 1;
                self.ignore();
                self.pop()
            }
            EOF => self.fail("Unexpected EOF processing block.".to_string()),
            _ => Some(State::Block),
        }
    }

    fn escape(&mut self) -> Step {
        let r = self.next();
        match r {
            'x' => self.hex_escape(),
            'u' => self.unicode_escape(4),
            'U' => self.unicode_escape(8),
            't' => self.add_part(b"\t"),
            'n' => self.add_part(b"\n"),
            'r' => self.add_part(b"\r"),
            '"' => self.add_part(b"\""),
            '\\' => self.add_part(b"\\"),
            _ => self.fail(format!(
                "Invalid escape character '{}'. Only the following escape characters \
                 are allowed: \\xXX, \\t, \\n, \\r, \\\", \\\\.",
                shown(r)
            )),
        }
    }

    fn hex_escape(&mut self) -> Step {
        for _ in 0..2 {
            if is_newline(self.next()) {
                return self.fail(
                    "Expected two hexadecimal digits after '\\x', but hit end of line".to_string(),
                );
            }
        }
        let bytes = &self.input.as_bytes()[self.pos.saturating_sub(2)..self.pos];
        let digits = std::str::from_utf8(bytes).ok();
        match digits.and_then(|d| u8::from_str_radix(d, 16).ok()) {
            Some(b) if bytes.iter().all(u8::is_ascii_hexdigit) => self.add_part(&[b]),
            _ => {
                let got = String::from_utf8_lossy(bytes).into_owned();
                self.fail(format!(
                    "Expected two hexadecimal digits after '\\x', but got '{got}'"
                ))
            }
        }
    }

    /// `\uXXXX` and `\UXXXXXXXX`: a Unicode scalar value in hex.
    fn unicode_escape(&mut self, digits: usize) -> Step {
        let from = self.pos;
        let mut code = 0u32;
        for _ in 0..digits {
            match self.next().to_digit(16) {
                Some(d) => code = code * 16 + d,
                None => {
                    let got = self.input[from..self.pos].to_string();
                    return self.fail(format!(
                        "Expected {digits} hexadecimal digits after the escape, but got '{got}'"
                    ));
                }
            }
        }
        match char::from_u32(code) {
            Some(c) => {
                let mut buf = [0u8; 4];
                let s = c.encode_utf8(&mut buf);
                let bytes = s.as_bytes().to_vec();
                self.add_part(&bytes)
            }
            None => self.fail(format!("Invalid Unicode code point {code:#x} in escape")),
        }
    }

    /// After the first digit of a positive number: an integer, a float, a
    /// datetime, an IP address or a string that starts with digits.
    fn number(&mut self) -> Step {
        let r = self.next();
        if r == '-' {
            if self.pos - self.start != 5 {
                return self.fail("All ISO8601 dates must be in full Zulu form.".to_string());
            }
            return Some(State::Datetime);
        }
        if r.is_ascii_digit() {
            return Some(State::Number);
        }
        if r == '.' {
            return Some(State::FloatStart);
        }
        if is_suffix(r) {
            return Some(State::NumberSuffix);
        }
        if !ends_number(r) {
            self.string_state = State::Bare;
            return Some(State::Bare);
        }
        self.backup();
        self.emit(Kind::Integer);
        self.pop()
    }

    /// After `YYYY-`: the rest of `2006-01-02T15:04:05Z`.
    fn datetime(&mut self) -> Step {
        for f in "00-00T00:00:00Z".chars() {
            let r = self.next();
            if f == '0' {
                if !r.is_ascii_digit() {
                    return self.fail(format!(
                        "Expected digit in ISO8601 datetime, but found '{}' instead.",
                        shown(r)
                    ));
                }
            } else if f != r {
                return self.fail(format!(
                    "Expected '{f}' in ISO8601 datetime, but found '{}' instead.",
                    shown(r)
                ));
            }
        }
        self.emit(Kind::Datetime);
        self.pop()
    }
}
