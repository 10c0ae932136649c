//! `js-consume` and `js-ordered`: reading a filled stream back through a
//! consumer. `js-consume` is one durable pull consumer fed by `MSG.NEXT`
//! requests of `--batch` messages, one or two outstanding as the official
//! clients keep them, acking every message (`--ack explicit`), the last of
//! each batch (`--ack all`) or none; `js-ordered` is an ephemeral push
//! consumer with flow control and idle heartbeats, as the clients' ordered
//! consumers create it, answering every flow-control request. Both check
//! that each stream sequence arrived exactly once (and, ordered, in order).

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use natrix_core::proto::{Headers, ServerOp, client};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::BoxError;
use crate::conn::Conn;

/// No delivery for this long: what has not come is lost.
pub const STALL_TIMEOUT: Duration = Duration::from_secs(10);
/// The durable pull consumer's name.
pub const DURABLE: &str = "NATRIXBENCH_PULL";
/// Where pulled messages (and the pulls' statuses) come.
const PULL_INBOX: &str = "_INBOX.natrix-bench.pull";
/// The ordered consumer's deliver subject.
const PUSH_INBOX: &str = "_INBOX.natrix-bench.push";
/// Where the consumer connection's API answers come.
const CREATE_INBOX: &str = "_INBOX.natrix-bench.create";
/// The ordered consumer's idle heartbeat, as the clients set it.
const HEARTBEAT_NS: u64 = 5_000_000_000;

/// How the pull consumer acknowledges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckMode {
    /// `ack_policy: explicit`, a plain `+ACK` for every message.
    Explicit,
    /// `ack_policy: all`, a `+ACK` for the last message of every batch.
    All,
    /// `ack_policy: none`.
    None,
}

impl AckMode {
    pub fn name(self) -> &'static str {
        match self {
            AckMode::Explicit => "explicit",
            AckMode::All => "all",
            AckMode::None => "none",
        }
    }

    pub fn parse(s: &str) -> Option<AckMode> {
        match s {
            "explicit" => Some(AckMode::Explicit),
            "all" => Some(AckMode::All),
            "none" => Some(AckMode::None),
            _ => None,
        }
    }
}

/// What one consume run saw.
#[derive(Debug, Clone, Default)]
pub struct ConsumeFigures {
    /// `pull` or `ordered`.
    pub kind: &'static str,
    pub batch: usize,
    pub ack: Option<AckMode>,
    pub expected: u64,
    pub received: u64,
    /// Deliveries of a sequence already delivered.
    pub duplicates: u64,
    /// Ordered: deliveries whose sequence was not the previous one's + 1.
    pub out_of_order: u64,
    pub acks_sent: u64,
    pub pulls_sent: u64,
    pub flow_controls_answered: u64,
    pub heartbeats: u64,
    /// Terminal pull statuses (408, 409) seen.
    pub pull_statuses: u64,
    /// Why the consumer's own account disagrees, if it does.
    pub problem: Option<String>,
    /// From the first pull (or the create) to the last delivery, and to
    /// the answer to the PING sent after the last ack.
    pub secs: f64,
    /// The fill: messages and how long they took to be acknowledged;
    /// `None` when the stream already held them.
    pub fill: Option<(u64, f64)>,
}

impl ConsumeFigures {
    /// Every message of the stream delivered once (in order when ordered)
    /// and the consumer agrees.
    pub fn sound(&self) -> bool {
        self.received == self.expected
            && self.duplicates == 0
            && self.out_of_order == 0
            && self.problem.is_none()
    }
}

/// The stream sequence in a delivery's `$JS.ACK` reply subject: 9 tokens
/// (`$JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending>`)
/// or, with a domain and account hash, 12.
pub fn stream_seq(reply: &[u8]) -> Option<u64> {
    let rest = reply.strip_prefix(b"$JS.ACK.")?;
    let tokens: Vec<&[u8]> = rest.split(|b| *b == b'.').collect();
    let at = match tokens.len() {
        7 => 3,
        n if n >= 9 => 5,
        _ => return None,
    };
    std::str::from_utf8(tokens[at]).ok()?.parse().ok()
}

/// Which sequences arrived, from `first`.
struct Seen {
    first: u64,
    got: Vec<bool>,
    last: Option<u64>,
    duplicates: u64,
    out_of_order: u64,
    outside: u64,
}

impl Seen {
    fn new(first: u64, count: u64) -> Seen {
        Seen {
            first,
            got: vec![false; count as usize],
            last: None,
            duplicates: 0,
            out_of_order: 0,
            outside: 0,
        }
    }

    fn mark(&mut self, seq: u64) {
        if self.last.is_some_and(|l| seq != l + 1) || (self.last.is_none() && seq != self.first) {
            self.out_of_order += 1;
        }
        self.last = Some(seq);
        let slot = seq
            .checked_sub(self.first)
            .and_then(|i| self.got.get_mut(usize::try_from(i).ok()?));
        match slot {
            Some(s) if *s => self.duplicates += 1,
            Some(s) => *s = true,
            None => self.outside += 1,
        }
    }
}

/// The status of a bare status message, and its pending-messages count.
fn status_of(headers: &[u8]) -> Option<(u16, Option<u64>, Option<Vec<u8>>)> {
    let h = Headers::parse(headers).ok()?;
    let pending = h
        .get(b"Nats-Pending-Messages")
        .and_then(|v| std::str::from_utf8(v).ok()?.parse().ok());
    let stalled = h.get(b"Nats-Consumer-Stalled").map(<[u8]>::to_vec);
    Some((h.status?, pending, stalled))
}

/// What the pull consumer does.
pub struct PullPlan {
    pub stream: String,
    pub batch: usize,
    pub expires: Duration,
    pub ack: AckMode,
    /// The stream's first sequence and message count.
    pub first: u64,
    pub msgs: u64,
}

/// Pulls every message of the stream through the durable consumer
/// [`DURABLE`] (already created), keeping one or two pulls of `batch`
/// outstanding: a new one goes out as soon as the older is filled.
pub async fn pull(
    mut conn: Conn,
    plan: PullPlan,
    received_total: Arc<AtomicU64>,
) -> io::Result<(ConsumeFigures, Conn)> {
    conn.subscribe(PULL_INBOX, None, "1").await?;
    let next = format!("$JS.API.CONSUMER.MSG.NEXT.{}.{DURABLE}", plan.stream);
    let body = json!({"batch": plan.batch, "expires": plan.expires.as_nanos() as u64}).to_string();
    let batch = plan.batch as u64;
    let mut f = ConsumeFigures {
        kind: "pull",
        batch: plan.batch,
        ack: Some(plan.ack),
        expected: plan.msgs,
        ..ConsumeFigures::default()
    };
    let mut seen = Seen::new(plan.first, plan.msgs);
    // Messages the outstanding pulls still ask for.
    let mut asked = 0u64;
    let start = Instant::now();
    let mut last_delivery = start;
    loop {
        // One or two pulls out: another once the older is filled.
        while asked <= batch && f.received + asked < plan.msgs {
            client::publish(
                &mut conn.out,
                next.as_bytes(),
                Some(PULL_INBOX.as_bytes()),
                body.as_bytes(),
            );
            asked += batch;
            f.pulls_sent += 1;
        }
        if !conn.out.is_empty() {
            conn.send().await?;
        }
        if f.received >= plan.msgs {
            break;
        }
        let n =
            match tokio::time::timeout(STALL_TIMEOUT, conn.stream.read(&mut conn.read_buf)).await {
                Err(_) | Ok(Ok(0)) => break,
                Ok(n) => n?,
            };
        let (mut pings, mut got) = (0, 0u64);
        let out = &mut conn.out;
        conn.parser
            .parse(&conn.read_buf[..n], |op| match op {
                ServerOp::Msg {
                    reply: Some(reply), ..
                } if reply.starts_with(b"$JS.ACK.") => {
                    got += 1;
                    if let Some(seq) = stream_seq(reply) {
                        seen.mark(seq);
                    }
                    let count = f.received + got;
                    let ack = match plan.ack {
                        AckMode::Explicit => true,
                        AckMode::All => count.is_multiple_of(batch) || count == plan.msgs,
                        AckMode::None => false,
                    };
                    if ack {
                        client::publish(out, reply, None, b"+ACK");
                        f.acks_sent += 1;
                    }
                }
                ServerOp::Msg {
                    headers: Some(h), ..
                } => match status_of(h) {
                    Some((100, ..)) => f.heartbeats += 1,
                    Some((_, pending, _)) => {
                        // The pull is over: what it still asked for will not come.
                        f.pull_statuses += 1;
                        asked = asked.saturating_sub(pending.unwrap_or(batch));
                    }
                    None => {}
                },
                ServerOp::Ping => pings += 1,
                _ => {}
            })
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("{e:?}")))?;
        if pings > 0 {
            conn.queue_pongs(pings);
        }
        if got > 0 {
            f.received += got;
            asked = asked.saturating_sub(got);
            last_delivery = Instant::now();
            received_total.fetch_add(got, Ordering::Relaxed);
        }
    }
    // The server has taken every ack once it answers a PING sent after them.
    conn.flush().await?;
    f.secs = if plan.ack == AckMode::None {
        (last_delivery - start).as_secs_f64()
    } else {
        start.elapsed().as_secs_f64()
    };
    f.duplicates = seen.duplicates + seen.outside;
    Ok((f, conn))
}

/// Creates an ephemeral ordered push consumer on `stream` and reads every
/// message from it, answering flow-control requests and stalled
/// heartbeats with an empty message, as the clients do. The time runs
/// from the create request to the last delivery. Returns the consumer's
/// name for deletion.
pub async fn ordered(
    mut conn: Conn,
    stream: &str,
    first: u64,
    msgs: u64,
    received_total: Arc<AtomicU64>,
) -> Result<(ConsumeFigures, String, Conn), BoxError> {
    conn.subscribe(PUSH_INBOX, None, "1").await?;
    conn.subscribe(CREATE_INBOX, None, "2").await?;
    let config = json!({
        "stream_name": stream,
        "config": {
            "deliver_subject": PUSH_INBOX, "deliver_policy": "all", "ack_policy": "none",
            "max_deliver": 1, "flow_control": true, "idle_heartbeat": HEARTBEAT_NS,
            "replay_policy": "instant", "mem_storage": true, "num_replicas": 1,
            "inactive_threshold": 5 * HEARTBEAT_NS,
        }
    });
    let mut f = ConsumeFigures {
        kind: "ordered",
        expected: msgs,
        ..ConsumeFigures::default()
    };
    let mut seen = Seen::new(first, msgs);
    let mut name: Option<Result<String, String>> = None;
    let start = Instant::now();
    client::publish(
        &mut conn.out,
        format!("$JS.API.CONSUMER.CREATE.{stream}").as_bytes(),
        Some(CREATE_INBOX.as_bytes()),
        config.to_string().as_bytes(),
    );
    conn.send().await?;
    let mut last_delivery = start;
    while f.received < msgs {
        let n =
            match tokio::time::timeout(STALL_TIMEOUT, conn.stream.read(&mut conn.read_buf)).await {
                Err(_) | Ok(Ok(0)) => break,
                Ok(n) => n?,
            };
        let (mut pings, mut got) = (0, 0u64);
        let out = &mut conn.out;
        conn.parser
            .parse(&conn.read_buf[..n], |op| match op {
                ServerOp::Msg {
                    reply: Some(reply),
                    headers: None,
                    ..
                } if reply.starts_with(b"$JS.ACK.") => {
                    got += 1;
                    if let Some(seq) = stream_seq(reply) {
                        seen.mark(seq);
                    }
                }
                ServerOp::Msg {
                    subject,
                    reply,
                    headers: Some(h),
                    payload,
                    ..
                } if subject == PUSH_INBOX.as_bytes() && payload.is_empty() => {
                    match status_of(h) {
                        Some((100, _, stalled)) => {
                            // A flow-control request carries its reply; a
                            // heartbeat while stalled names it in a header.
                            if let Some(to) = reply.map(<[u8]>::to_vec).or(stalled) {
                                client::publish(out, &to, None, b"");
                                f.flow_controls_answered += 1;
                            } else {
                                f.heartbeats += 1;
                            }
                        }
                        _ => f.pull_statuses += 1,
                    }
                }
                ServerOp::Msg {
                    subject, payload, ..
                } if subject == CREATE_INBOX.as_bytes() => {
                    name = Some(created_name(payload));
                }
                ServerOp::Msg {
                    reply: Some(reply), ..
                } if reply.starts_with(b"$JS.ACK.") => {
                    // A message stored with headers of its own.
                    got += 1;
                    if let Some(seq) = stream_seq(reply) {
                        seen.mark(seq);
                    }
                }
                ServerOp::Ping => pings += 1,
                _ => {}
            })
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("{e:?}")))?;
        if let Some(Err(e)) = &name {
            return Err(format!("creating the ordered consumer: {e}").into());
        }
        if pings > 0 {
            conn.queue_pongs(pings);
        }
        if !conn.out.is_empty() {
            conn.stream.write_all(&conn.out).await?;
            conn.out.clear();
        }
        if got > 0 {
            f.received += got;
            last_delivery = Instant::now();
            received_total.fetch_add(got, Ordering::Relaxed);
        }
    }
    f.secs = (last_delivery - start).as_secs_f64();
    f.duplicates = seen.duplicates + seen.outside;
    f.out_of_order = seen.out_of_order;
    let name = match name {
        Some(Ok(n)) => n,
        _ => return Err("no answer to the ordered consumer's create".into()),
    };
    Ok((f, name, conn))
}

/// The consumer's name from a create answer, or the error it carries.
fn created_name(payload: &[u8]) -> Result<String, String> {
    let v: Value = serde_json::from_slice(payload).map_err(|e| e.to_string())?;
    if let Some(e) = v.get("error") {
        return Err(e.to_string());
    }
    v["name"]
        .as_str()
        .map(String::from)
        .ok_or_else(|| format!("no name in {v}"))
}

/// Checks the durable's own account after a pull run: everything
/// delivered and, with acks, everything acknowledged. nats-server may
/// take acks in a little after the PING that followed them, so this looks
/// again for up to two seconds. `None`: it agrees.
pub async fn check_consumer(
    admin: &mut crate::js::Admin,
    ack: AckMode,
    last: u64,
) -> Result<Option<String>, BoxError> {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let info = admin.consumer_info(DURABLE).await?;
        let delivered = info["delivered"]["stream_seq"].as_u64().unwrap_or(0);
        let floor = info["ack_floor"]["stream_seq"].as_u64().unwrap_or(0);
        let pending = info["num_ack_pending"].as_u64().unwrap_or(0);
        let problem = if delivered != last {
            Some(format!(
                "delivered up to {delivered}, the stream ends at {last}"
            ))
        } else if ack != AckMode::None && (floor != last || pending != 0) {
            Some(format!(
                "ack floor {floor} with {pending} pending, after acking up to {last}"
            ))
        } else {
            None
        };
        if problem.is_none() || Instant::now() >= deadline {
            return Ok(problem);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_sequences_come_from_the_reply() {
        assert_eq!(
            stream_seq(b"$JS.ACK.S.C.1.42.40.1700000000000000000.7"),
            Some(42)
        );
        assert_eq!(
            stream_seq(b"$JS.ACK.dom.hash.S.C.1.42.40.1700000000000000000.7.rand"),
            Some(42)
        );
        assert_eq!(stream_seq(b"$JS.ACK.S.C.1"), None);
        assert_eq!(stream_seq(b"_INBOX.x"), None);
    }

    #[test]
    fn seen_counts_duplicates_gaps_and_disorder() {
        let mut s = Seen::new(1, 4);
        for seq in [1, 2, 2, 4, 9] {
            s.mark(seq);
        }
        assert_eq!((s.duplicates, s.outside), (1, 1));
        assert_eq!(s.out_of_order, 3, "2 again, 4 after 2, 9 after 4");
        assert_eq!(s.got, [true, true, false, true]);
    }

    #[test]
    fn statuses_and_their_pending_counts() {
        let h = b"NATS/1.0 408 Request Timeout\r\nNats-Pending-Messages: 17\r\nNats-Pending-Bytes: 9\r\n\r\n";
        assert_eq!(status_of(h), Some((408, Some(17), None)));
        let hb = b"NATS/1.0 100 Idle Heartbeat\r\nNats-Consumer-Stalled: fc.1\r\n\r\n";
        assert_eq!(status_of(hb), Some((100, None, Some(b"fc.1".to_vec()))));
        assert_eq!(status_of(b"NATS/1.0\r\n\r\n"), None);
    }

    #[test]
    fn a_create_answer_names_the_consumer_or_says_why_not() {
        assert_eq!(
            created_name(br#"{"name":"abc","config":{}}"#),
            Ok("abc".into())
        );
        assert!(created_name(br#"{"error":{"code":400}}"#).is_err());
        assert!(created_name(b"nope").is_err());
    }

    #[test]
    fn ack_modes_by_name() {
        for m in [AckMode::Explicit, AckMode::All, AckMode::None] {
            assert_eq!(AckMode::parse(m.name()), Some(m));
        }
        assert_eq!(AckMode::parse("sometimes"), None);
    }
}
