//! Differential transcript replayer for the NATS client protocol.
//!
//! std only; builds with `rustc --edition 2021 -O replay.rs -o /tmp/replay`.
//! See README.md next to this file for the transcript format.
//!
//! Library-style API (meant to move into a cargo integration test later):
//!   parse_transcript(&str) -> Result<Transcript, String>
//!   replay(&Transcript, addr) -> Outcome            (replay_with for options)
//!   render(&Transcript, &Outcome) -> String         (stable, masked text form)
//!   mask(&[u8]) -> String                           (render one received byte stream)
//!   compare(expected, actual) -> Result<(), String> (Err = unified-style diff)

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------
// Transcript model and parser
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Client sends bytes (opening its connection on first mention).
    Send { client: String, data: Vec<u8> },
    /// Client closes its socket.
    Close { client: String },
    /// Wait this many milliseconds.
    Sleep { ms: u64 },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// 1-based line number in the transcript file.
    pub line: usize,
    /// The source text of the line (escaped form), used as a label.
    pub text: String,
    pub action: Action,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Transcript {
    pub steps: Vec<Step>,
}

impl Transcript {
    /// Client names in order of first mention.
    pub fn clients(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for s in &self.steps {
            let c = match &s.action {
                Action::Send { client, .. } | Action::Close { client } => client,
                Action::Sleep { .. } => continue,
            };
            if !out.iter().any(|x| x == c) {
                out.push(c.clone());
            }
        }
        out
    }
}

fn is_client_name(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Decode the escapes `\r`, `\n`, `\t`, `\\`, `\xNN`.
pub fn unescape(s: &str) -> Result<Vec<u8>, String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'\\' {
            out.push(b[i]);
            i += 1;
            continue;
        }
        match b.get(i + 1) {
            Some(b'r') => out.push(b'\r'),
            Some(b'n') => out.push(b'\n'),
            Some(b't') => out.push(b'\t'),
            Some(b'\\') => out.push(b'\\'),
            Some(b'x') => {
                let hex = s.get(i + 2..i + 4).ok_or("truncated \\x escape")?;
                let v = u8::from_str_radix(hex, 16)
                    .map_err(|_| format!("bad \\x escape: \\x{}", hex))?;
                out.push(v);
                i += 4;
                continue;
            }
            Some(c) => return Err(format!("unknown escape \\{}", *c as char)),
            None => return Err("trailing backslash".into()),
        }
        i += 2;
    }
    Ok(out)
}

/// Escape bytes for display: the inverse of `unescape`.
pub fn escape(b: &[u8]) -> String {
    let mut s = String::with_capacity(b.len() + 8);
    for &c in b {
        match c {
            b'\r' => s.push_str("\\r"),
            b'\n' => s.push_str("\\n"),
            b'\t' => s.push_str("\\t"),
            b'\\' => s.push_str("\\\\"),
            0x20..=0x7e => s.push(c as char),
            _ => s.push_str(&format!("\\x{:02x}", c)),
        }
    }
    s
}

pub fn parse_transcript(src: &str) -> Result<Transcript, String> {
    let mut steps = Vec::new();
    for (idx, raw) in src.split('\n').enumerate() {
        let line_no = idx + 1;
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        let t = line.trim();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        let err = |m: &str| format!("line {}: {}: {:?}", line_no, m, line);
        if let Some(rest) = line.strip_prefix("sleep ") {
            let ms: u64 = rest.trim().parse().map_err(|_| err("bad sleep duration"))?;
            steps.push(Step {
                line: line_no,
                text: line.to_string(),
                action: Action::Sleep { ms },
            });
            continue;
        }
        let sp = line
            .find(' ')
            .ok_or_else(|| err("expected `<client> > <bytes>` or `<client> close`"))?;
        let (name, rest) = (&line[..sp], &line[sp..]);
        if !is_client_name(name) {
            return Err(err("bad client name"));
        }
        let action = if rest == " close" {
            Action::Close {
                client: name.to_string(),
            }
        } else if rest == " >" {
            Action::Send {
                client: name.to_string(),
                data: Vec::new(),
            }
        } else if let Some(data) = rest.strip_prefix(" > ") {
            Action::Send {
                client: name.to_string(),
                data: unescape(data).map_err(|e| err(&e))?,
            }
        } else {
            return Err(err("expected `<client> > <bytes>` or `<client> close`"));
        };
        steps.push(Step {
            line: line_no,
            text: line.to_string(),
            action,
        });
    }
    Ok(Transcript { steps })
}

// ---------------------------------------------------------------------------
// Replay
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tag {
    /// Received right after connecting, before the client's first send (the INFO).
    Open,
    /// Received while (or after) running step index i (0-based) and before step i+1.
    Step(usize),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Data(Tag, Vec<u8>),
    /// The server closed the connection (EOF or reset; not distinguished).
    ServerClosed(Tag),
    /// The transcript closed the connection.
    ClientClosed(Tag),
    /// Could not connect.
    ConnectFailed(Tag, String),
}

#[derive(Debug, Clone, Default)]
pub struct ClientLog {
    pub name: String,
    pub events: Vec<Event>,
}

#[derive(Debug, Clone, Default)]
pub struct Outcome {
    pub clients: Vec<ClientLog>,
    /// Harness-level problems (not part of the compared output).
    pub notes: Vec<String>,
}

impl Outcome {
    /// All bytes a client received, concatenated.
    pub fn received(&self, client: &str) -> Vec<u8> {
        let mut v = Vec::new();
        if let Some(c) = self.clients.iter().find(|c| c.name == client) {
            for e in &c.events {
                if let Event::Data(_, b) = e {
                    v.extend_from_slice(b);
                }
            }
        }
        v
    }
}

#[derive(Debug, Clone)]
pub struct Options {
    /// A step is over once no client received anything for this long.
    pub quiet: Duration,
    /// Upper bound for one step's quiet wait.
    pub max_step: Duration,
    /// How long to wait for the INFO line after connecting.
    pub info_timeout: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            quiet: Duration::from_millis(150),
            max_step: Duration::from_secs(5),
            info_timeout: Duration::from_secs(2),
        }
    }
}

struct Shared {
    last_rx: Mutex<Instant>,
    step: AtomicUsize,
}

struct Conn {
    stream: TcpStream,
    ours: Arc<AtomicBool>,
    opened: Arc<AtomicBool>,
    dead: Arc<AtomicBool>,
    log: Arc<Mutex<Vec<Event>>>,
    reader: Option<thread::JoinHandle<()>>,
}

fn push_data(log: &Mutex<Vec<Event>>, tag: Tag, bytes: &[u8]) {
    let mut l = log.lock().unwrap();
    if let Some(Event::Data(t, b)) = l.last_mut() {
        if *t == tag {
            b.extend_from_slice(bytes);
            return;
        }
    }
    l.push(Event::Data(tag, bytes.to_vec()));
}

fn open_conn(addr: &str, shared: &Arc<Shared>, opts: &Options) -> Result<Conn, String> {
    let sa = addr
        .to_socket_addrs()
        .map_err(|e| e.to_string())?
        .next()
        .ok_or("address did not resolve")?;
    let stream =
        TcpStream::connect_timeout(&sa, Duration::from_secs(3)).map_err(|e| e.to_string())?;
    let _ = stream.set_nodelay(true);
    let ours = Arc::new(AtomicBool::new(false));
    let opened = Arc::new(AtomicBool::new(false));
    let dead = Arc::new(AtomicBool::new(false));
    let log = Arc::new(Mutex::new(Vec::new()));
    let mut rs = stream.try_clone().map_err(|e| e.to_string())?;
    let (o2, op2, d2, l2, sh2) = (
        ours.clone(),
        opened.clone(),
        dead.clone(),
        log.clone(),
        shared.clone(),
    );
    let reader = thread::spawn(move || {
        let mut buf = vec![0u8; 65536];
        loop {
            let r = rs.read(&mut buf);
            let tag = if op2.load(Ordering::SeqCst) {
                Tag::Step(sh2.step.load(Ordering::SeqCst))
            } else {
                Tag::Open
            };
            match r {
                Ok(0) | Err(_) => {
                    if !o2.load(Ordering::SeqCst) {
                        l2.lock().unwrap().push(Event::ServerClosed(tag));
                        *sh2.last_rx.lock().unwrap() = Instant::now();
                    }
                    d2.store(true, Ordering::SeqCst);
                    return;
                }
                Ok(n) => {
                    push_data(&l2, tag, &buf[..n]);
                    *sh2.last_rx.lock().unwrap() = Instant::now();
                }
            }
        }
    });
    let conn = Conn {
        stream,
        ours,
        opened,
        dead,
        log,
        reader: Some(reader),
    };
    // Wait for the first line (INFO) so that it is attributed to `Open`.
    let t0 = Instant::now();
    while t0.elapsed() < opts.info_timeout {
        if conn.dead.load(Ordering::SeqCst) {
            break;
        }
        let got_line = conn
            .log
            .lock()
            .unwrap()
            .iter()
            .any(|e| matches!(e, Event::Data(_, b) if b.contains(&b'\n')));
        if got_line {
            break;
        }
        thread::sleep(Duration::from_millis(2));
    }
    Ok(conn)
}

fn quiet_wait(shared: &Shared, opts: &Options) {
    let start = Instant::now();
    loop {
        thread::sleep(Duration::from_millis(5));
        let last = *shared.last_rx.lock().unwrap();
        let since = if last > start {
            last.elapsed()
        } else {
            start.elapsed()
        };
        if since >= opts.quiet || start.elapsed() >= opts.max_step {
            return;
        }
    }
}

fn close_conn(c: &mut Conn) {
    c.ours.store(true, Ordering::SeqCst);
    let _ = c.stream.shutdown(Shutdown::Both);
    if let Some(h) = c.reader.take() {
        let _ = h.join();
    }
}

pub fn replay(t: &Transcript, addr: &str) -> Outcome {
    replay_with(t, addr, &Options::default())
}

pub fn replay_with(t: &Transcript, addr: &str, opts: &Options) -> Outcome {
    let names = t.clients();
    let shared = Arc::new(Shared {
        last_rx: Mutex::new(Instant::now()),
        step: AtomicUsize::new(0),
    });
    let mut conns: BTreeMap<String, Conn> = BTreeMap::new();
    let mut extra: BTreeMap<String, Vec<Event>> = BTreeMap::new();
    let mut notes = Vec::new();

    for (i, step) in t.steps.iter().enumerate() {
        shared.step.store(i, Ordering::SeqCst);
        match &step.action {
            Action::Sleep { ms } => thread::sleep(Duration::from_millis(*ms)),
            Action::Send { client, data } => {
                if !conns.contains_key(client) && !extra.contains_key(client) {
                    match open_conn(addr, &shared, opts) {
                        Ok(c) => {
                            conns.insert(client.clone(), c);
                        }
                        Err(e) => {
                            extra.insert(
                                client.clone(),
                                vec![Event::ConnectFailed(Tag::Step(i), e.clone())],
                            );
                            notes.push(format!(
                                "step {} ({}): connect failed: {}",
                                i + 1,
                                client,
                                e
                            ));
                        }
                    }
                }
                if let Some(c) = conns.get_mut(client) {
                    c.opened.store(true, Ordering::SeqCst);
                    // Sends on a connection the server already closed are skipped:
                    // whether they fail (EPIPE) or not is timing dependent.
                    if !c.dead.load(Ordering::SeqCst) && !data.is_empty() {
                        if let Err(e) = c.stream.write_all(data) {
                            notes.push(format!("step {} ({}): write error: {}", i + 1, client, e));
                        }
                    }
                }
            }
            Action::Close { client } => {
                if let Some(c) = conns.get_mut(client) {
                    if c.reader.is_some() {
                        close_conn(c);
                        c.log
                            .lock()
                            .unwrap()
                            .push(Event::ClientClosed(Tag::Step(i)));
                    }
                }
            }
        }
        quiet_wait(&shared, opts);
    }
    let mut clients = Vec::new();
    for n in &names {
        let events = if let Some(c) = conns.get_mut(n) {
            if c.reader.is_some() {
                close_conn(c);
            }
            c.log.lock().unwrap().clone()
        } else {
            extra.remove(n).unwrap_or_default()
        };
        clients.push(ClientLog {
            name: n.clone(),
            events,
        });
    }
    Outcome { clients, notes }
}

// ---------------------------------------------------------------------------
// Masking and rendering
// ---------------------------------------------------------------------------

/// JSON keys of nats-server 2.9's `Info` struct (server.go). Anything else is dropped.
const INFO_KEYS: &[&str] = &[
    "server_id",
    "server_name",
    "version",
    "proto",
    "git_commit",
    "go",
    "host",
    "port",
    "headers",
    "auth_required",
    "tls_required",
    "tls_verify",
    "tls_available",
    "max_payload",
    "jetstream",
    "ip",
    "client_id",
    "client_ip",
    "nonce",
    "cluster",
    "cluster_dynamic",
    "domain",
    "connect_urls",
    "ws_connect_urls",
    "ldm",
    "import",
    "export",
    "lnoc",
    "info_on_connect",
    "connect_info",
    "gateway",
    "gateway_urls",
    "gateway_url",
    "gateway_cmd",
    "gateway_cmd_payload",
    "gateway_nrp",
    "gateway_iom",
    "leafnode_urls",
    "remote_account",
];
/// Per-run or per-build values: kept (so presence is compared) but value replaced by "*".
const INFO_VOLATILE: &[&str] = &[
    "server_id",
    "server_name",
    "version",
    "go",
    "host",
    "port",
    "client_id",
    "client_ip",
    "nonce",
];
/// Optional build metadata (omitempty): dropped entirely.
const INFO_DROP: &[&str] = &["git_commit"];

#[derive(Debug, Clone, PartialEq)]
pub enum Json {
    Null,
    Bool(bool),
    Num(String),
    Str(String),
    Arr(Vec<Json>),
    Obj(Vec<(String, Json)>),
}

struct JsonReader<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> JsonReader<'a> {
    fn ws(&mut self) {
        while self.i < self.b.len() && matches!(self.b[self.i], b' ' | b'\t' | b'\r' | b'\n') {
            self.i += 1;
        }
    }
    fn lit(&mut self, s: &[u8]) -> Result<(), String> {
        if self.b[self.i..].starts_with(s) {
            self.i += s.len();
            Ok(())
        } else {
            Err(format!("json: bad literal at {}", self.i))
        }
    }
    fn value(&mut self, depth: usize) -> Result<Json, String> {
        if depth > 64 {
            return Err("json: too deep".into());
        }
        self.ws();
        match self.b.get(self.i) {
            None => Err("json: unexpected end".into()),
            Some(b'n') => self.lit(b"null").map(|_| Json::Null),
            Some(b't') => self.lit(b"true").map(|_| Json::Bool(true)),
            Some(b'f') => self.lit(b"false").map(|_| Json::Bool(false)),
            Some(b'"') => self.string().map(Json::Str),
            Some(b'[') => {
                self.i += 1;
                let mut v = Vec::new();
                self.ws();
                if self.b.get(self.i) == Some(&b']') {
                    self.i += 1;
                    return Ok(Json::Arr(v));
                }
                loop {
                    v.push(self.value(depth + 1)?);
                    self.ws();
                    match self.b.get(self.i) {
                        Some(b',') => self.i += 1,
                        Some(b']') => {
                            self.i += 1;
                            return Ok(Json::Arr(v));
                        }
                        _ => return Err(format!("json: expected , or ] at {}", self.i)),
                    }
                }
            }
            Some(b'{') => {
                self.i += 1;
                let mut v = Vec::new();
                self.ws();
                if self.b.get(self.i) == Some(&b'}') {
                    self.i += 1;
                    return Ok(Json::Obj(v));
                }
                loop {
                    self.ws();
                    if self.b.get(self.i) != Some(&b'"') {
                        return Err(format!("json: expected key at {}", self.i));
                    }
                    let k = self.string()?;
                    self.ws();
                    if self.b.get(self.i) != Some(&b':') {
                        return Err(format!("json: expected : at {}", self.i));
                    }
                    self.i += 1;
                    let val = self.value(depth + 1)?;
                    v.push((k, val));
                    self.ws();
                    match self.b.get(self.i) {
                        Some(b',') => self.i += 1,
                        Some(b'}') => {
                            self.i += 1;
                            return Ok(Json::Obj(v));
                        }
                        _ => return Err(format!("json: expected , or }} at {}", self.i)),
                    }
                }
            }
            Some(c) if *c == b'-' || c.is_ascii_digit() => {
                let s = self.i;
                while self.i < self.b.len()
                    && matches!(
                        self.b[self.i],
                        b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E'
                    )
                {
                    self.i += 1;
                }
                Ok(Json::Num(
                    String::from_utf8_lossy(&self.b[s..self.i]).into_owned(),
                ))
            }
            Some(_) => Err(format!("json: unexpected byte at {}", self.i)),
        }
    }
    fn hex4(&mut self) -> Result<u32, String> {
        let h = self.b.get(self.i..self.i + 4).ok_or("json: short \\u")?;
        let h = std::str::from_utf8(h).map_err(|_| "json: bad \\u")?;
        let v = u32::from_str_radix(h, 16).map_err(|_| "json: bad \\u")?;
        self.i += 4;
        Ok(v)
    }
    fn string(&mut self) -> Result<String, String> {
        self.i += 1; // opening quote
        let mut out: Vec<u8> = Vec::new();
        loop {
            let c = *self.b.get(self.i).ok_or("json: unterminated string")?;
            self.i += 1;
            match c {
                b'"' => return Ok(String::from_utf8_lossy(&out).into_owned()),
                b'\\' => {
                    let e = *self.b.get(self.i).ok_or("json: bad escape")?;
                    self.i += 1;
                    let ch: char = match e {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => {
                            let mut v = self.hex4()?;
                            if (0xd800..0xdc00).contains(&v) && self.b[self.i..].starts_with(b"\\u")
                            {
                                self.i += 2;
                                let lo = self.hex4()?;
                                v = 0x10000
                                    + ((v - 0xd800) << 10)
                                    + (lo.wrapping_sub(0xdc00) & 0x3ff);
                            }
                            char::from_u32(v).unwrap_or('\u{fffd}')
                        }
                        _ => return Err("json: bad escape".into()),
                    };
                    let mut tmp = [0u8; 4];
                    out.extend_from_slice(ch.encode_utf8(&mut tmp).as_bytes());
                }
                _ => out.push(c),
            }
        }
    }
}

/// Parse one JSON value at the start of `b`; returns the value and the bytes consumed.
pub fn parse_json_prefix(b: &[u8]) -> Result<(Json, usize), String> {
    let mut r = JsonReader { b, i: 0 };
    let v = r.value(0)?;
    Ok((v, r.i))
}

/// Canonical compact form, object keys sorted.
pub fn json_canonical(v: &Json) -> String {
    match v {
        Json::Null => "null".into(),
        Json::Bool(b) => b.to_string(),
        Json::Num(n) => n.clone(),
        Json::Str(s) => {
            let mut o = String::from("\"");
            for ch in s.chars() {
                match ch {
                    '"' => o.push_str("\\\""),
                    '\\' => o.push_str("\\\\"),
                    c if (c as u32) < 0x20 || c == '\u{7f}' => {
                        o.push_str(&format!("\\u{:04x}", c as u32))
                    }
                    c => o.push(c),
                }
            }
            o.push('"');
            o
        }
        Json::Arr(a) => format!(
            "[{}]",
            a.iter().map(json_canonical).collect::<Vec<_>>().join(",")
        ),
        Json::Obj(m) => {
            let mut kv: Vec<&(String, Json)> = m.iter().collect();
            kv.sort_by(|a, b| a.0.cmp(&b.0));
            let parts: Vec<String> = kv
                .iter()
                .map(|(k, v)| {
                    format!(
                        "{}:{}",
                        json_canonical(&Json::Str(k.clone())),
                        json_canonical(v)
                    )
                })
                .collect();
            format!("{{{}}}", parts.join(","))
        }
    }
}

/// Render one server line that starts with `INFO`: parse its JSON object, mask
/// volatile values, drop unknown keys, print keys sorted. Bytes around the JSON
/// (separator, trailing ` \r\n`) are kept exactly (escaped).
pub fn mask_info_line(line: &[u8]) -> String {
    let mut j = 4;
    while j < line.len() && (line[j] == b' ' || line[j] == b'\t') {
        j += 1;
    }
    match parse_json_prefix(&line[j..]) {
        Ok((Json::Obj(fields), used)) => {
            let kept: Vec<(String, Json)> = fields
                .into_iter()
                .filter(|(k, _)| {
                    INFO_KEYS.contains(&k.as_str()) && !INFO_DROP.contains(&k.as_str())
                })
                .map(|(k, v)| {
                    if INFO_VOLATILE.contains(&k.as_str()) {
                        (k, Json::Str("*".into()))
                    } else {
                        (k, v)
                    }
                })
                .collect();
            format!(
                "{}{}{}",
                escape(&line[..j]),
                json_canonical(&Json::Obj(kept)),
                escape(&line[j + used..])
            )
        }
        _ => escape(line),
    }
}

/// Splits a server->client byte stream into display units: protocol lines, and
/// MSG/HMSG payloads (payload + CRLF as one unit). Stateful across chunks.
#[derive(Debug, Default, Clone)]
pub struct Renderer {
    pending: Vec<u8>,
    /// Some(n): the next n bytes are a payload (including its CRLF).
    payload: Option<usize>,
    /// How many bytes of `pending` were already shown as a partial unit.
    shown: usize,
}

/// One display unit.
#[derive(Debug, Clone, PartialEq)]
pub enum Unit {
    Line(String),
    Payload(String),
    /// An incomplete unit at the end of a chunk (continues in a later chunk).
    Partial(String),
    /// The rest of a unit that was shown as `Partial` before.
    Cont(String),
}

fn msg_payload_len(line: &[u8]) -> Option<usize> {
    let is_msg = line.starts_with(b"MSG ") || line.starts_with(b"HMSG ");
    if !is_msg {
        return None;
    }
    let s = std::str::from_utf8(line).ok()?;
    let last = s
        .trim_end_matches(['\r', '\n'])
        .split([' ', '\t'])
        .rfind(|x| !x.is_empty())?;
    last.parse::<usize>().ok().map(|n| n + 2)
}

impl Renderer {
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<Unit> {
        let mut out = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            if let Some(n) = self.payload {
                let need = n - self.pending.len();
                let take = need.min(bytes.len() - i);
                self.pending.extend_from_slice(&bytes[i..i + take]);
                i += take;
                if self.pending.len() == n {
                    out.push(if self.shown > 0 {
                        Unit::Cont(escape(&self.pending[self.shown..]))
                    } else {
                        Unit::Payload(escape(&self.pending))
                    });
                    self.pending.clear();
                    self.shown = 0;
                    self.payload = None;
                }
            } else {
                let b = bytes[i];
                i += 1;
                self.pending.push(b);
                if b == b'\n' {
                    let line = std::mem::take(&mut self.pending);
                    if self.shown > 0 {
                        out.push(Unit::Cont(escape(&line[self.shown..])));
                        self.shown = 0;
                    } else if line.starts_with(b"INFO") {
                        out.push(Unit::Line(mask_info_line(&line)));
                    } else {
                        out.push(Unit::Line(escape(&line)));
                    }
                    self.payload = msg_payload_len(&line).filter(|n| *n > 0);
                }
            }
        }
        out
    }
    /// Emit the not-yet-shown part of an incomplete unit (end of a chunk). The
    /// rest is later emitted as `Unit::Cont`.
    pub fn partial(&mut self) -> Option<Unit> {
        if self.pending.len() == self.shown {
            return None;
        }
        let u = if self.shown == 0 {
            Unit::Partial(escape(&self.pending))
        } else {
            Unit::Partial(format!("... {}", escape(&self.pending[self.shown..])))
        };
        self.shown = self.pending.len();
        Some(u)
    }
}

/// Canonicalise delivery order across sids. nats-server keeps the plain
/// subscriptions of one subject in a Go map, so when one message fans out to
/// several sids of the same connection the order of those copies is random (and
/// not part of the protocol contract). Within each group of consecutive MSG/HMSG
/// deliveries that are byte-identical except for the sid, the copies are
/// stable-sorted by sid. Everything else (order of different messages, per-sid
/// order) is left exactly as received.
pub fn normalize_units(units: Vec<Unit>) -> Vec<Unit> {
    /// (sid, line with the sid token blanked)
    fn split_sid(u: &Unit) -> Option<(String, String)> {
        match u {
            Unit::Line(l) if l.starts_with("MSG ") || l.starts_with("HMSG ") => {
                let toks: Vec<&str> = l.split(' ').collect();
                if toks.len() < 4 {
                    return None;
                }
                let mut rest = toks.clone();
                rest[2] = "";
                Some((toks[2].to_string(), rest.join(" ")))
            }
            _ => None,
        }
    }
    struct Item {
        sid: String,
        key: (String, String),
        line: Unit,
        payload: Unit,
    }
    fn flush(group: &mut Vec<Item>, out: &mut Vec<Unit>) {
        group.sort_by(|a, b| a.sid.cmp(&b.sid)); // stable
        for it in group.drain(..) {
            out.push(it.line);
            out.push(it.payload);
        }
    }
    let mut out: Vec<Unit> = Vec::with_capacity(units.len());
    let mut group: Vec<Item> = Vec::new();
    let mut it = units.into_iter().peekable();
    while let Some(u) = it.next() {
        if let Some((sid, rest)) = split_sid(&u) {
            if let Some(Unit::Payload(p)) = it.peek() {
                let key = (rest, p.clone());
                let payload = it.next().unwrap();
                if group.last().map(|g| g.key != key).unwrap_or(false) {
                    flush(&mut group, &mut out);
                }
                group.push(Item {
                    sid,
                    key,
                    line: u,
                    payload,
                });
                continue;
            }
        }
        flush(&mut group, &mut out);
        out.push(u);
    }
    flush(&mut group, &mut out);
    out
}

fn unit_text(u: &Unit) -> String {
    match u {
        Unit::Line(s) => format!("  {}", s),
        Unit::Payload(s) => format!("      {}", s),
        Unit::Partial(s) => format!("  {} [incomplete]", s),
        Unit::Cont(s) => format!("  ... {}", s),
    }
}

/// Render a whole received byte stream (no step markers), INFO lines masked.
pub fn mask(bytes: &[u8]) -> String {
    let mut r = Renderer::default();
    let mut lines: Vec<String> = normalize_units(r.feed(bytes))
        .iter()
        .map(unit_text)
        .collect();
    if let Some(p) = r.partial() {
        lines.push(unit_text(&p));
    }
    lines.join("\n")
}

fn step_label(t: &Transcript, tag: Tag) -> String {
    match tag {
        Tag::Open => "-- connected".to_string(),
        Tag::Step(i) => {
            let s = &t.steps[i];
            let mut text = s.text.clone();
            if text.chars().count() > 72 {
                text = text.chars().take(72).collect::<String>() + "...";
            }
            format!("-- #{} {}", i + 1, text)
        }
    }
}

/// Stable text form of an outcome: one section per client, output grouped by the
/// step after which it arrived.
pub fn render(t: &Transcript, o: &Outcome) -> String {
    let mut out = String::new();
    for c in &o.clients {
        out.push_str(&format!("=== {}\n", c.name));
        let mut r = Renderer::default();
        let mut cur: Option<Tag> = None;
        let label = |out: &mut String, tag: Tag, cur: &mut Option<Tag>| {
            if *cur != Some(tag) {
                out.push_str(&step_label(t, tag));
                out.push('\n');
                *cur = Some(tag);
            }
        };
        for e in &c.events {
            match e {
                Event::Data(tag, b) => {
                    label(&mut out, *tag, &mut cur);
                    for u in normalize_units(r.feed(b)) {
                        out.push_str(&unit_text(&u));
                        out.push('\n');
                    }
                    if let Some(p) = r.partial() {
                        out.push_str(&unit_text(&p));
                        out.push('\n');
                    }
                }
                Event::ServerClosed(tag) => {
                    label(&mut out, *tag, &mut cur);
                    out.push_str("  [connection closed by server]\n");
                }
                Event::ClientClosed(tag) => {
                    label(&mut out, *tag, &mut cur);
                    out.push_str("  [client closed]\n");
                }
                Event::ConnectFailed(tag, _) => {
                    label(&mut out, *tag, &mut cur);
                    out.push_str("  [connect failed]\n");
                }
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------
// Comparison
// ---------------------------------------------------------------------------

/// Compare two renderings. Ok if equal, otherwise Err(unified-style diff).
pub fn compare(expected: &str, actual: &str) -> Result<(), String> {
    if expected == actual {
        return Ok(());
    }
    Err(unified_diff(expected, actual, 3))
}

pub fn unified_diff(a: &str, b: &str, ctx: usize) -> String {
    let a: Vec<&str> = a.lines().collect();
    let b: Vec<&str> = b.lines().collect();
    let (n, m) = (a.len(), b.len());
    // LCS table (inputs are small).
    let mut l = vec![vec![0u32; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            l[i][j] = if a[i] == b[j] {
                l[i + 1][j + 1] + 1
            } else {
                l[i + 1][j].max(l[i][j + 1])
            };
        }
    }
    // Edit script: (kind, a_idx, b_idx), kind ' ', '-', '+'.
    let mut ops: Vec<(char, usize, usize)> = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < n || j < m {
        if i < n && j < m && a[i] == b[j] {
            ops.push((' ', i, j));
            i += 1;
            j += 1;
        } else if j < m && (i == n || l[i][j + 1] >= l[i + 1][j]) {
            ops.push(('+', i, j));
            j += 1;
        } else {
            ops.push(('-', i, j));
            i += 1;
        }
    }
    let mut out = String::new();
    let mut k = 0;
    while k < ops.len() {
        if ops[k].0 == ' ' {
            k += 1;
            continue;
        }
        // hunk around a run of changes, merging nearby runs
        let start = k.saturating_sub(ctx);
        let mut end = k;
        loop {
            while end < ops.len() && ops[end].0 != ' ' {
                end += 1;
            }
            let mut look = end;
            while look < ops.len() && ops[look].0 == ' ' && look - end < 2 * ctx {
                look += 1;
            }
            if look < ops.len() && ops[look].0 != ' ' {
                end = look;
            } else {
                break;
            }
        }
        let stop = (end + ctx).min(ops.len());
        let (a0, b0) = (ops[start].1, ops[start].2);
        let ac = ops[start..stop].iter().filter(|o| o.0 != '+').count();
        let bc = ops[start..stop].iter().filter(|o| o.0 != '-').count();
        out.push_str(&format!("@@ -{},{} +{},{} @@\n", a0 + 1, ac, b0 + 1, bc));
        for o in &ops[start..stop] {
            match o.0 {
                ' ' => out.push_str(&format!(" {}\n", a[o.1])),
                '-' => out.push_str(&format!("-{}\n", a[o.1])),
                _ => out.push_str(&format!("+{}\n", b[o.2])),
            }
        }
        k = stop;
    }
    out
}

// ---------------------------------------------------------------------------
// CLI
// ---------------------------------------------------------------------------

fn expected_path(p: &Path) -> PathBuf {
    p.with_extension("expected")
}

fn collect_files(args: &[String]) -> Result<Vec<PathBuf>, String> {
    let mut files = Vec::new();
    for a in args {
        let p = PathBuf::from(a);
        if p.is_dir() {
            let mut v: Vec<PathBuf> = std::fs::read_dir(&p)
                .map_err(|e| format!("{}: {}", a, e))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().map(|x| x == "txt").unwrap_or(false))
                .collect();
            v.sort();
            files.extend(v);
        } else {
            files.push(p);
        }
    }
    Ok(files)
}

const USAGE: &str =
    "usage: replay --server HOST:PORT [--server2 HOST:PORT | --check | --write-expected]
              [--quiet-ms N] FILE_OR_DIR...
  one server:            print each transcript's masked output
  --write-expected:      also write <name>.expected next to each transcript
  --check:               compare with <name>.expected, exit 1 on any difference
  --server2:             replay against both servers (concurrently), diff, exit 1 on any difference
       replay --free-port          print a free TCP port on 127.0.0.1
       replay --wait-for HOST:PORT wait (up to 10 s) until the port accepts connections";

fn run(args: Vec<String>) -> Result<bool, String> {
    let mut server = None;
    let mut server2 = None;
    let mut check = false;
    let mut write = false;
    let mut opts = Options::default();
    let mut rest = Vec::new();
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--server" => server = it.next(),
            "--server2" => server2 = it.next(),
            "--check" => check = true,
            "--write-expected" => write = true,
            "--quiet-ms" => {
                let v = it.next().ok_or("--quiet-ms needs a value")?;
                opts.quiet = Duration::from_millis(v.parse().map_err(|_| "bad --quiet-ms")?);
            }
            "-h" | "--help" => return Err(USAGE.into()),
            // Helpers for scripts (std-only replacements for python/nc one-liners).
            "--free-port" => {
                let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
                println!("{}", l.local_addr().map_err(|e| e.to_string())?.port());
                return Ok(true);
            }
            "--wait-for" => {
                let addr = it.next().ok_or("--wait-for needs HOST:PORT")?;
                let t0 = Instant::now();
                while TcpStream::connect(addr.as_str()).is_err() {
                    if t0.elapsed() > Duration::from_secs(10) {
                        return Err(format!("{} did not come up", addr));
                    }
                    thread::sleep(Duration::from_millis(20));
                }
                return Ok(true);
            }
            s if s.starts_with("--") => return Err(format!("unknown option {}\n{}", s, USAGE)),
            _ => rest.push(a),
        }
    }
    let server = server.ok_or(USAGE)?;
    let files = collect_files(&rest)?;
    if files.is_empty() {
        return Err(USAGE.into());
    }
    let mut all_ok = true;
    for f in &files {
        let src = std::fs::read_to_string(f).map_err(|e| format!("{}: {}", f.display(), e))?;
        let t = parse_transcript(&src).map_err(|e| format!("{}: {}", f.display(), e))?;
        let name = f.display().to_string();
        if let Some(s2) = &server2 {
            let (t1, t2, o1, o2) = (t.clone(), t.clone(), opts.clone(), opts.clone());
            let (a1, a2) = (server.clone(), s2.clone());
            let h1 = thread::spawn(move || {
                let o = replay_with(&t1, &a1, &o1);
                (render(&t1, &o), o.notes)
            });
            let h2 = thread::spawn(move || {
                let o = replay_with(&t2, &a2, &o2);
                (render(&t2, &o), o.notes)
            });
            let (r1, n1) = h1.join().map_err(|_| "replay thread panicked")?;
            let (r2, n2) = h2.join().map_err(|_| "replay thread panicked")?;
            for n in n1.iter().chain(n2.iter()) {
                eprintln!("note: {}: {}", name, n);
            }
            match compare(&r1, &r2) {
                Ok(()) => println!("same   {}", name),
                Err(d) => {
                    all_ok = false;
                    println!("DIFFER {}\n--- {}\n+++ {}\n{}", name, server, s2, d);
                }
            }
        } else {
            let o = replay_with(&t, &server, &opts);
            for n in &o.notes {
                eprintln!("note: {}: {}", name, n);
            }
            let r = render(&t, &o);
            if check {
                let ep = expected_path(f);
                match std::fs::read_to_string(&ep) {
                    Ok(exp) => match compare(&exp, &r) {
                        Ok(()) => println!("ok     {}", name),
                        Err(d) => {
                            all_ok = false;
                            println!(
                                "FAIL   {}\n--- {} (expected)\n+++ {} (actual)\n{}",
                                name,
                                ep.display(),
                                server,
                                d
                            );
                        }
                    },
                    Err(e) => {
                        all_ok = false;
                        println!("FAIL   {}: cannot read {}: {}", name, ep.display(), e);
                    }
                }
            } else {
                println!("##### {}\n{}", name, r);
                if write {
                    std::fs::write(expected_path(f), &r).map_err(|e| e.to_string())?;
                }
            }
        }
    }
    Ok(all_ok)
}

fn main() {
    match run(std::env::args().skip(1).collect()) {
        Ok(true) => {}
        Ok(false) => std::process::exit(1),
        Err(e) => {
            eprintln!("{}", e);
            std::process::exit(2);
        }
    }
}
