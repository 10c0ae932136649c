//! `js-pub`: JetStream publishing with acknowledgements. The stream is
//! deleted and created afresh (file storage, subjects `S.>`), then each
//! publisher keeps `--inflight` publishes awaiting their PubAck, every
//! publish with its own reply subject so each ack finds the publish it
//! answers. The run checks what a durable log promises: every publish
//! acknowledged once, no error, and the stream's sequences 1…N each
//! acknowledged exactly once with the stream holding exactly N messages.

use std::collections::VecDeque;
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use natrix_core::proto::{ServerOp, client};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::BoxError;
use crate::conn::{ClientRun, Conn};

/// A publisher that waits this long without an ack gives up on the acks
/// still missing: they are lost.
pub const ACK_TIMEOUT: Duration = Duration::from_secs(10);
/// Where the admin connection's API answers come.
const API_INBOX: &str = "_INBOX.natrix-bench.api";
/// Errors kept word for word; the rest are only counted.
const ERRORS_KEPT: usize = 5;

/// What the publishers' acks and the stream say about a run.
#[derive(Debug, Clone, Default)]
pub struct JsFigures {
    pub inflight: usize,
    pub published: u64,
    pub acked: u64,
    /// Publishes whose ack never came.
    pub lost: u64,
    /// Acks that carried an error, and acks for no publish awaiting one.
    pub errors: u64,
    pub stray: u64,
    pub first_errors: Vec<String>,
    /// Why the sequences do not check out; `None`: gap-free, one ack each.
    pub seq_problem: Option<String>,
    pub first_seq: u64,
    pub last_seq: u64,
    /// fsync + fdatasync calls the server made during the run (`perf stat`).
    pub syncs: Option<u64>,
    /// From the common start to the last ack.
    pub secs: f64,
}

impl JsFigures {
    /// Every publish acknowledged once, without error, gap-free.
    pub fn sound(&self) -> bool {
        self.lost == 0 && self.errors == 0 && self.stray == 0 && self.seq_problem.is_none()
    }

    pub fn syncs_per_sec(&self) -> Option<f64> {
        self.syncs
            .filter(|_| self.secs > 0.0)
            .map(|s| s as f64 / self.secs)
    }

    pub fn acks_per_sync(&self) -> Option<f64> {
        self.syncs
            .filter(|s| *s > 0)
            .map(|s| self.acked as f64 / s as f64)
    }
}

/// What one publisher did.
pub struct PubRun {
    pub run: ClientRun,
    pub published: u64,
    pub latency: Histogram<u64>,
    pub seqs: Vec<u64>,
    pub lost: u64,
    pub errors: u64,
    pub stray: u64,
    pub first_errors: Vec<String>,
}

/// The admin connection: creates, inspects and deletes the stream.
pub struct Admin {
    conn: Conn,
    stream: String,
}

impl Admin {
    pub async fn open(addr: &str, stream: &str) -> Result<Admin, BoxError> {
        let mut conn = Conn::open(addr, "natrix-bench-js-admin").await?;
        conn.subscribe(API_INBOX, None, "api").await?;
        Ok(Admin {
            conn,
            stream: stream.to_string(),
        })
    }

    async fn api(&mut self, verb: &str, body: &str) -> Result<Value, BoxError> {
        let subject = format!("$JS.API.STREAM.{verb}.{}", self.stream);
        self.request(&subject, body).await
    }

    /// Any JetStream API request, its JSON answer parsed.
    pub async fn request(&mut self, subject: &str, body: &str) -> Result<Value, BoxError> {
        let answer = self
            .conn
            .request(subject, API_INBOX, body.as_bytes())
            .await
            .map_err(|e| format!("{e} (is JetStream on?)"))?;
        Ok(serde_json::from_slice(&answer)?)
    }

    /// Deletes the stream if it is there and creates it empty, on file
    /// storage, taking every subject under `subject`.
    pub async fn recreate(&mut self, subject: &str) -> Result<(), BoxError> {
        let config = serde_json::json!({
            "name": self.stream, "subjects": [format!("{subject}.>")], "storage": "file",
        });
        self.recreate_with(config).await
    }

    /// Deletes the stream if it is there and creates it with `config`.
    pub async fn recreate_with(&mut self, config: Value) -> Result<(), BoxError> {
        self.delete().await?;
        let answer = self.api("CREATE", &config.to_string()).await?;
        match answer.get("error") {
            Some(e) => Err(format!("creating stream {}: {e}", self.stream).into()),
            None => Ok(()),
        }
    }

    /// Deletes consumer `name` if it is there and creates it durable with
    /// `config` (the consumer configuration, `durable_name` set to `name`).
    pub async fn recreate_consumer(&mut self, name: &str, config: Value) -> Result<(), BoxError> {
        self.delete_consumer(name).await?;
        let body = serde_json::json!({"stream_name": self.stream, "config": config});
        let subject = format!("$JS.API.CONSUMER.CREATE.{}.{name}", self.stream);
        let answer = self.request(&subject, &body.to_string()).await?;
        match answer.get("error") {
            Some(e) => Err(format!("creating consumer {name}: {e}").into()),
            None => Ok(()),
        }
    }

    /// Deletes a consumer of the stream; one that is not there is fine.
    pub async fn delete_consumer(&mut self, name: &str) -> Result<(), BoxError> {
        let subject = format!("$JS.API.CONSUMER.DELETE.{}.{name}", self.stream);
        self.request(&subject, "").await.map(drop)
    }

    /// A consumer's info, or the error the server gave.
    pub async fn consumer_info(&mut self, name: &str) -> Result<Value, BoxError> {
        let subject = format!("$JS.API.CONSUMER.INFO.{}.{name}", self.stream);
        let info = self.request(&subject, "").await?;
        match info.get("error") {
            Some(e) => Err(format!("consumer {name}: {e}").into()),
            None => Ok(info),
        }
    }

    /// Deletes the stream; one that is not there is fine.
    pub async fn delete(&mut self) -> Result<(), BoxError> {
        self.api("DELETE", "").await.map(drop)
    }

    /// The stream's message count and first and last sequences.
    pub async fn state(&mut self) -> Result<(u64, u64, u64), BoxError> {
        let info = self.api("INFO", "").await?;
        let state = &info["state"];
        let field = |k: &str| {
            state[k]
                .as_u64()
                .ok_or_else(|| format!("stream info without state.{k}: {info}"))
        };
        Ok((field("messages")?, field("first_seq")?, field("last_seq")?))
    }
}

/// What one publisher does.
pub struct Plan {
    /// Tells its reply subjects from the other publishers'.
    pub id: usize,
    /// Publishes go to these in turn, from the `id`-th of `pubs` slices.
    pub subjects: Arc<Vec<String>>,
    pub pubs: usize,
    pub payload: Arc<Vec<u8>>,
    /// What an answer is: a PubAck, or a direct get's message.
    pub answer: Answer,
    /// Publishes in all, or until when to publish.
    pub msgs: Option<u64>,
    pub deadline: Option<Instant>,
    /// Publishes awaiting their ack at most.
    pub inflight: usize,
    /// No ack for this long: the missing ones are lost.
    pub ack_timeout: Duration,
}

/// Publishes until `msgs` are acknowledged (or the deadline passes and the
/// rest are), keeping `inflight` awaiting acks.
pub async fn publisher(
    mut conn: Conn,
    plan: Plan,
    start: Instant,
    acked_total: Arc<AtomicU64>,
) -> io::Result<PubRun> {
    let Plan {
        id,
        subjects,
        pubs,
        payload,
        answer,
        msgs,
        deadline,
        inflight,
        ack_timeout,
    } = plan;
    let reply_prefix = format!("_INBOX.natrix-bench.js.{id}.");
    conn.subscribe(&format!("{reply_prefix}*"), None, "1")
        .await?;
    let mut acks = Awaiting::new(reply_prefix.clone(), answer);
    let first_subject = id * subjects.len() / pubs.max(1);
    let mut r = PubRun {
        run: ClientRun {
            msgs: 0,
            secs: 0.0,
            cut_off: false,
        },
        published: 0,
        latency: Histogram::new(3).map_err(io::Error::other)?,
        seqs: Vec::new(),
        lost: 0,
        errors: 0,
        stray: 0,
        first_errors: Vec::new(),
    };
    let mut reply = reply_prefix.into_bytes();
    let prefix_len = reply.len();
    let mut last_ack = start;
    loop {
        let more = match msgs {
            Some(m) => r.published < m,
            None => deadline.is_some_and(|d| Instant::now() < d),
        };
        if more {
            let sent_at = Instant::now();
            while acks.outstanding < inflight && msgs.is_none_or(|m| r.published < m) {
                reply.truncate(prefix_len);
                reply.extend_from_slice(itoa::Buffer::new().format(acks.next()).as_bytes());
                let subject = &subjects[(first_subject + r.published as usize) % subjects.len()];
                client::publish(&mut conn.out, subject.as_bytes(), Some(&reply), &payload);
                acks.sent(sent_at);
                r.published += 1;
            }
            if !conn.out.is_empty() {
                conn.stream.write_all(&conn.out).await?;
                conn.out.clear();
            }
        } else if acks.outstanding == 0 {
            break;
        }
        let n = match tokio::time::timeout(ack_timeout, conn.stream.read(&mut conn.read_buf)).await
        {
            Err(_) => {
                r.lost = acks.outstanding as u64;
                break;
            }
            Ok(Ok(0)) => {
                r.lost = acks.outstanding as u64;
                r.run.cut_off = true;
                break;
            }
            Ok(n) => n?,
        };
        let now = Instant::now();
        let (mut pings, mut err) = (0, None);
        let before = r.run.msgs;
        conn.parser
            .parse(&conn.read_buf[..n], |op| match op {
                ServerOp::Msg {
                    subject,
                    headers,
                    payload,
                    ..
                } => acks.answer(subject, headers, payload, now, &mut r),
                ServerOp::Ping => pings += 1,
                ServerOp::Err(e) => err = Some(String::from_utf8_lossy(e).into_owned()),
                _ => {}
            })
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("{e:?}")))?;
        if let Some(e) = err {
            return Err(io::Error::other(format!("server said -ERR {e}")));
        }
        if pings > 0 {
            conn.queue_pongs(pings);
            conn.send().await?;
        }
        if r.run.msgs > before {
            last_ack = now;
            acked_total.fetch_add(r.run.msgs - before, Ordering::Relaxed);
        }
    }
    r.run.secs = (last_ack - start).as_secs_f64();
    Ok(r)
}

/// A publisher's publishes awaiting their acks, by index: the reply
/// subject of publish `i` is `<prefix>i`.
struct Awaiting {
    prefix: String,
    kind: Answer,
    /// Index of the first slot; a slot is the publish's send time until
    /// its ack comes.
    base: u64,
    slots: VecDeque<Option<Instant>>,
    outstanding: usize,
}

impl Awaiting {
    fn new(prefix: String, kind: Answer) -> Awaiting {
        Awaiting {
            prefix,
            kind,
            base: 0,
            slots: VecDeque::new(),
            outstanding: 0,
        }
    }

    /// The index the next publish gets.
    fn next(&self) -> u64 {
        self.base + self.slots.len() as u64
    }

    fn sent(&mut self, at: Instant) {
        self.slots.push_back(Some(at));
        self.outstanding += 1;
    }

    /// Takes the publish an ack on `subject` answers; `None`: none awaits it.
    fn take(&mut self, subject: &[u8]) -> Option<Instant> {
        let index: u64 = subject
            .strip_prefix(self.prefix.as_bytes())
            .and_then(|i| std::str::from_utf8(i).ok()?.parse().ok())?;
        let slot = self
            .slots
            .get_mut(usize::try_from(index.checked_sub(self.base)?).ok()?)?;
        let sent_at = slot.take()?;
        self.outstanding -= 1;
        while self.slots.front().is_some_and(Option::is_none) {
            self.slots.pop_front();
            self.base += 1;
        }
        Some(sent_at)
    }

    fn answer(
        &mut self,
        subject: &[u8],
        headers: Option<&[u8]>,
        payload: &[u8],
        now: Instant,
        r: &mut PubRun,
    ) {
        let Some(sent_at) = self.take(subject) else {
            r.stray += 1;
            return;
        };
        let parsed = match self.kind {
            Answer::PubAck => parse_ack(headers, payload),
            Answer::Direct => parse_direct(headers),
        };
        match parsed {
            Ok(seq) => {
                let ns = u64::try_from((now - sent_at).as_nanos()).unwrap_or(u64::MAX);
                let _ = r.latency.record(ns.max(1));
                r.seqs.push(seq);
                r.run.msgs += 1;
            }
            Err(why) => {
                r.errors += 1;
                if r.first_errors.len() < ERRORS_KEPT {
                    r.first_errors.push(why);
                }
            }
        }
    }
}

/// What a publisher's answers are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// A JetStream PubAck (`{"stream":…,"seq":N}`).
    PubAck,
    /// A direct get's answer: the stored message, its sequence in
    /// `Nats-Sequence`; a bare status is an error.
    Direct,
}

/// The sequence of the message a direct get answered with, or why it is
/// not one.
fn parse_direct(headers: Option<&[u8]>) -> Result<u64, String> {
    let block = headers.ok_or("a direct get answer without headers")?;
    let text = || String::from_utf8_lossy(block).into_owned();
    let h = natrix_core::proto::Headers::parse(block).map_err(|_| text())?;
    if h.status.is_some() {
        return Err(text());
    }
    h.get(b"Nats-Sequence")
        .and_then(|v| std::str::from_utf8(v).ok()?.parse().ok())
        .ok_or_else(text)
}

/// The sequence a PubAck gives, or why it is not one.
pub(crate) fn parse_ack(headers: Option<&[u8]>, payload: &[u8]) -> Result<u64, String> {
    let text = || String::from_utf8_lossy(payload).into_owned();
    if payload.is_empty() {
        let status = headers.map(String::from_utf8_lossy).unwrap_or_default();
        return Err(format!("no ack: {}", status.lines().next().unwrap_or("")));
    }
    if payload.windows(8).any(|w| w == b"\"error\":") {
        return Err(text());
    }
    let at = payload
        .windows(6)
        .position(|w| w == b"\"seq\":")
        .ok_or_else(text)?;
    let digits: Vec<u8> = payload[at + 6..]
        .iter()
        .copied()
        .skip_while(|c| *c == b' ')
        .take_while(u8::is_ascii_digit)
        .collect();
    std::str::from_utf8(&digits)
        .ok()
        .and_then(|d| d.parse().ok())
        .ok_or_else(text)
}

/// Checks a key-value put run: the acks' sequences are distinct and
/// gap-free and the last is the stream's (with one message kept per key,
/// the stream itself holds fewer). `None`: they are.
pub fn check_put_sequences(runs: &[PubRun], stream_last: u64) -> Option<String> {
    let mut seqs: Vec<u64> = runs.iter().flat_map(|r| r.seqs.iter().copied()).collect();
    seqs.sort_unstable();
    let (Some(&first), Some(&last)) = (seqs.first(), seqs.last()) else {
        return None;
    };
    if last - first + 1 != seqs.len() as u64 || seqs.windows(2).any(|w| w[0] == w[1]) {
        return Some(format!(
            "{} acks over sequences {first}..={last}: a gap or a repeat",
            seqs.len()
        ));
    }
    (last != stream_last).then(|| format!("last ack {last}, but the stream ends at {stream_last}"))
}

/// Checks that the acks' sequences are `first..=last`, each once, and that
/// the stream holds exactly them. `None`: they are.
pub fn check_sequences(
    runs: &[PubRun],
    (messages, first, last): (u64, u64, u64),
) -> Option<String> {
    let acked: u64 = runs.iter().map(|r| r.seqs.len() as u64).sum();
    if acked == 0 {
        return (messages != 0).then(|| format!("no acks, yet the stream holds {messages}"));
    }
    if messages != acked || last + 1 - first != acked {
        return Some(format!(
            "{acked} acks, but the stream holds {messages} messages, sequences {first}..={last}"
        ));
    }
    let mut seen = vec![false; acked as usize];
    for &seq in runs.iter().flat_map(|r| &r.seqs) {
        let Some(slot) = seq
            .checked_sub(first)
            .and_then(|i| seen.get_mut(usize::try_from(i).ok()?))
        else {
            return Some(format!("ack for sequence {seq}, outside {first}..={last}"));
        };
        if std::mem::replace(slot, true) {
            return Some(format!("sequence {seq} acknowledged twice"));
        }
    }
    // acked acks, each a distinct sequence of the acked in first..=last:
    // every one is there.
    None
}

/// Counts a process's fsync and fdatasync calls with `perf stat`, from
/// [`SyncCounter::start`] to [`SyncCounter::stop`]. Enabling the syscall
/// tracepoints slows every system call of every process a little.
pub struct SyncCounter {
    perf: std::process::Child,
}

const SYNC_EVENTS: &str = "syscalls:sys_enter_fsync,syscalls:sys_enter_fdatasync";
/// `perf stat` prints nothing once attached; this is ample for it to be.
const PERF_ATTACH: Duration = Duration::from_millis(300);

impl SyncCounter {
    pub async fn start(pid: u32) -> Result<SyncCounter, BoxError> {
        let perf = std::process::Command::new("perf")
            .args(["stat", "-x", ",", "-e", SYNC_EVENTS, "-p", &pid.to_string()])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .map_err(|e| format!("--count-syncs runs `perf stat`: {e}"))?;
        tokio::time::sleep(PERF_ATTACH).await;
        Ok(SyncCounter { perf })
    }

    /// Stops `perf` (SIGINT makes it print its counts) and sums them.
    pub fn stop(self) -> Result<u64, BoxError> {
        std::process::Command::new("kill")
            .args(["-INT", &self.perf.id().to_string()])
            .status()?;
        let out = self.perf.wait_with_output()?;
        let text = String::from_utf8_lossy(&out.stderr);
        parse_perf_counts(&text).ok_or_else(|| format!("perf stat said: {}", text.trim()).into())
    }
}

/// Sums the counts of `perf stat -x ,` lines for the sync events.
fn parse_perf_counts(text: &str) -> Option<u64> {
    let counts: Vec<Option<u64>> = text
        .lines()
        .filter(|l| l.contains("syscalls:sys_enter_"))
        .map(|l| l.split(',').next()?.trim().parse().ok())
        .collect();
    if counts.is_empty() {
        return None;
    }
    counts.into_iter().sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acks_parse_and_errors_do_not() {
        assert_eq!(parse_ack(None, br#"{"stream":"B","seq":42}"#), Ok(42));
        assert_eq!(
            parse_ack(None, br#"{"stream":"B", "seq": 7,"domain":"x"}"#),
            Ok(7)
        );
        assert!(parse_ack(None, br#"{"error":{"code":503},"seq":1}"#).is_err());
        assert!(parse_ack(Some(b"NATS/1.0 503\r\n\r\n"), b"").is_err());
        assert!(parse_ack(None, br#"{"stream":"B"}"#).is_err());
    }

    #[test]
    fn direct_gets_give_the_sequence_or_an_error() {
        let ok = b"NATS/1.0\r\nNats-Stream: KV_b\r\nNats-Sequence: 12\r\n\r\n";
        assert_eq!(parse_direct(Some(ok)), Ok(12));
        assert!(parse_direct(Some(b"NATS/1.0 404 Message Not Found\r\n\r\n")).is_err());
        assert!(parse_direct(Some(b"NATS/1.0\r\n\r\n")).is_err());
        assert!(parse_direct(None).is_err());
    }

    #[test]
    fn acks_find_their_publish_in_any_order() {
        let mut a = Awaiting::new("p.".into(), Answer::PubAck);
        let t = Instant::now();
        for _ in 0..4 {
            a.sent(t);
        }
        assert_eq!(a.take(b"p.2"), Some(t));
        assert_eq!(a.take(b"p.2"), None, "one ack per publish");
        assert_eq!(a.take(b"p.0"), Some(t));
        assert_eq!((a.base, a.outstanding), (1, 2));
        assert_eq!(a.take(b"p.1"), Some(t));
        assert_eq!(a.base, 3, "slots up to the first unanswered go");
        assert_eq!(a.take(b"p.9"), None);
        assert_eq!(a.take(b"q.3"), None);
        assert_eq!(a.next(), 4);
    }

    fn run_with(seqs: Vec<u64>) -> PubRun {
        PubRun {
            run: ClientRun {
                msgs: seqs.len() as u64,
                secs: 1.0,
                cut_off: false,
            },
            published: seqs.len() as u64,
            latency: Histogram::new(3).unwrap(),
            seqs,
            lost: 0,
            errors: 0,
            stray: 0,
            first_errors: Vec::new(),
        }
    }

    #[test]
    fn sequences_must_be_gap_free_and_each_acked_once() {
        let runs = [run_with(vec![1, 3, 5]), run_with(vec![2, 4])];
        assert_eq!(check_sequences(&runs, (5, 1, 5)), None);
        let twice = [run_with(vec![1, 3, 3]), run_with(vec![2, 4])];
        assert!(check_sequences(&twice, (5, 1, 5)).is_some_and(|w| w.contains("twice")));
        let gap = [run_with(vec![1, 2, 4])];
        assert!(check_sequences(&gap, (3, 1, 3)).is_some());
        assert!(
            check_sequences(&gap, (4, 1, 4)).is_some(),
            "the stream holds one more"
        );
        assert!(check_sequences(&[run_with(vec![])], (1, 1, 1)).is_some());
    }

    #[test]
    fn put_acks_must_be_gap_free_and_end_the_stream() {
        let runs = [run_with(vec![3, 1]), run_with(vec![2, 4])];
        assert_eq!(check_put_sequences(&runs, 4), None);
        assert!(
            check_put_sequences(&runs, 5).is_some(),
            "the stream ends later"
        );
        let repeat = [run_with(vec![1, 2, 2])];
        assert!(check_put_sequences(&repeat, 2).is_some());
        let gap = [run_with(vec![1, 3])];
        assert!(check_put_sequences(&gap, 3).is_some());
    }

    /// How the fake server answers the publish with a given sequence.
    #[derive(Clone, Copy)]
    enum Fake {
        Ack,
        Error,
        Nothing,
    }

    /// A stand-in for a JetStream server on one connection: numbers the
    /// publishes 1, 2, … and answers each (`answer` decides how), every
    /// read's answers in reverse order, so acks come out of order.
    async fn fake_server(listener: tokio::net::TcpListener, answer: fn(u64) -> Fake) {
        use natrix_core::proto::{Limits, Op, Parser};
        let (mut s, _) = listener.accept().await.unwrap();
        s.write_all(b"INFO {}\r\n").await.unwrap();
        let (mut parser, mut buf, mut seq) = (Parser::new(), vec![0u8; 64 * 1024], 0u64);
        loop {
            let n = s.read(&mut buf).await.unwrap();
            if n == 0 {
                return;
            }
            let (mut pos, mut acks, mut out) = (0, Vec::new(), Vec::new());
            while let Some(op) = parser
                .next(&buf[..n], &mut pos, &Limits::default())
                .unwrap()
            {
                match op {
                    Op::Ping => out.extend_from_slice(b"PONG\r\n"),
                    Op::Pub(m) => {
                        seq += 1;
                        let body = match answer(seq) {
                            Fake::Ack => format!(r#"{{"stream":"T","seq":{seq}}}"#),
                            Fake::Error => r#"{"error":{"code":503}}"#.to_string(),
                            Fake::Nothing => continue,
                        };
                        let reply = m.reply.unwrap().to_vec();
                        acks.push(format!(
                            "MSG {} 1 {}\r\n{body}\r\n",
                            String::from_utf8(reply).unwrap(),
                            body.len()
                        ));
                    }
                    _ => {}
                }
            }
            for a in acks.iter().rev() {
                out.extend_from_slice(a.as_bytes());
            }
            s.write_all(&out).await.unwrap();
        }
    }

    /// Runs one publisher of `msgs` with `inflight` against the fake.
    async fn publish_to_fake(msgs: u64, inflight: usize, answer: fn(u64) -> Fake) -> PubRun {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let server = tokio::spawn(fake_server(listener, answer));
        let conn = Conn::open(&addr, "test").await.unwrap();
        let plan = Plan {
            id: 0,
            subjects: Arc::new(vec!["t.0".into()]),
            pubs: 1,
            payload: Arc::new(vec![b'x'; 16]),
            answer: Answer::PubAck,
            msgs: Some(msgs),
            deadline: None,
            inflight,
            ack_timeout: Duration::from_millis(200),
        };
        let acked = Arc::new(AtomicU64::new(0));
        let r = publisher(conn, plan, Instant::now(), acked.clone())
            .await
            .unwrap();
        assert_eq!(acked.load(Ordering::Relaxed), r.run.msgs);
        server.abort();
        r
    }

    #[tokio::test]
    async fn every_publish_is_acknowledged_and_checked() {
        let r = publish_to_fake(2_000, 64, |_| Fake::Ack).await;
        assert_eq!(
            (r.published, r.run.msgs, r.latency.len()),
            (2_000, 2_000, 2_000)
        );
        assert_eq!((r.lost, r.errors, r.stray), (0, 0, 0));
        assert_eq!(check_sequences(&[r], (2_000, 1, 2_000)), None);
    }

    #[tokio::test]
    async fn missing_and_error_acks_are_counted() {
        let r = publish_to_fake(300, 10, |seq| match seq {
            7 => Fake::Nothing,
            20 | 21 => Fake::Error,
            _ => Fake::Ack,
        })
        .await;
        // The lost ack holds one slot of the window to the end; the rest
        // go on.
        assert_eq!((r.published, r.run.msgs), (300, 297));
        assert_eq!((r.lost, r.errors, r.stray), (1, 2, 0));
        assert_eq!(r.first_errors.len(), 2);
    }

    #[test]
    fn perf_counts_are_summed() {
        let text = "12,,syscalls:sys_enter_fsync,100,100.00,,\n\
                    30,,syscalls:sys_enter_fdatasync,100,100.00,,\n";
        assert_eq!(parse_perf_counts(text), Some(42));
        assert_eq!(
            parse_perf_counts("<not counted>,,syscalls:sys_enter_fsync"),
            None
        );
        assert_eq!(parse_perf_counts("perf: not found"), None);
    }
}
