//! One client connection on natrix's own protocol path: the core's encoders
//! write, `ServerOpParser` reads, tokio moves the bytes. Each role
//! (publisher, subscriber, requester, responder) is a loop over it that
//! batches writes and counts deliveries once per read, not per message.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use natrix_core::proto::{ServerOp, ServerOpParser, client};

use crate::frames::Frames;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Publishers write batches of about this many bytes.
pub const WRITE_BATCH_BYTES: usize = 64 * 1024;
const READ_BUF_BYTES: usize = 256 * 1024;
/// How often a blocked reader looks at its stop flag.
const STOP_POLL: Duration = Duration::from_millis(100);

pub struct Conn {
    pub(crate) stream: TcpStream,
    pub(crate) parser: ServerOpParser,
    pub(crate) read_buf: Vec<u8>,
    pub(crate) out: Vec<u8>,
}

fn protocol_error(e: impl std::fmt::Debug) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("{e:?}"))
}

impl Conn {
    /// Connects, reads `INFO`, sends `CONNECT` and waits for the `PONG`
    /// that says the server took it.
    pub async fn open(addr: &str, name: &str) -> io::Result<Conn> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let mut conn = Conn {
            stream,
            parser: ServerOpParser::new(),
            read_buf: vec![0; READ_BUF_BYTES],
            out: Vec::with_capacity(WRITE_BATCH_BYTES * 2),
        };
        conn.read_until(|op| matches!(op, ServerOp::Info(_)))
            .await?;
        let json = format!(
            r#"{{"verbose":false,"pedantic":false,"tls_required":false,"name":"{name}","lang":"rust","version":"natrix-bench","protocol":1,"echo":true,"headers":true,"no_responders":true}}"#
        );
        client::connect(&mut conn.out, &json);
        conn.flush().await?;
        Ok(conn)
    }

    /// Subscribes to each subject (sids 1, 2, …) and waits until the
    /// server has them all.
    pub async fn subscribe_all(
        &mut self,
        subjects: &[String],
        queue: Option<&str>,
    ) -> io::Result<()> {
        let mut sid = itoa::Buffer::new();
        for (i, s) in subjects.iter().enumerate() {
            let sid = sid.format(i + 1).as_bytes();
            client::subscribe(&mut self.out, s.as_bytes(), queue.map(str::as_bytes), sid);
        }
        self.flush().await
    }

    /// Subscribes and waits until the server has it.
    pub async fn subscribe(
        &mut self,
        subject: &str,
        queue: Option<&str>,
        sid: &str,
    ) -> io::Result<()> {
        client::subscribe(
            &mut self.out,
            subject.as_bytes(),
            queue.map(str::as_bytes),
            sid.as_bytes(),
        );
        self.flush().await
    }

    /// Sends what is queued plus a `PING` and waits for the `PONG`: the
    /// server has then processed everything sent before.
    pub async fn flush(&mut self) -> io::Result<()> {
        self.out.extend_from_slice(client::PING);
        self.send().await?;
        self.read_until(|op| matches!(op, ServerOp::Pong)).await
    }

    /// Publishes `payload` to `subject` with `inbox` (already subscribed)
    /// as the reply subject and returns the answer's payload. A bare
    /// status (no responders: nothing serves `subject`) is an error.
    pub async fn request(
        &mut self,
        subject: &str,
        inbox: &str,
        payload: &[u8],
    ) -> io::Result<Vec<u8>> {
        client::publish(
            &mut self.out,
            subject.as_bytes(),
            Some(inbox.as_bytes()),
            payload,
        );
        self.send().await?;
        let mut answer = None;
        self.read_until(|op| match op {
            ServerOp::Msg {
                subject: s,
                headers,
                payload,
                ..
            } if *s == inbox.as_bytes() => {
                answer = Some(match headers {
                    Some(h) if payload.is_empty() => Err(String::from_utf8_lossy(h).into_owned()),
                    _ => Ok(payload.to_vec()),
                });
                true
            }
            _ => false,
        })
        .await?;
        match answer {
            Some(Ok(payload)) => Ok(payload),
            Some(Err(status)) => Err(io::Error::other(format!(
                "{subject}: {}",
                status.lines().next().unwrap_or("a bare status")
            ))),
            None => Err(io::ErrorKind::UnexpectedEof.into()),
        }
    }

    pub(crate) async fn send(&mut self) -> io::Result<()> {
        self.stream.write_all(&self.out).await?;
        self.out.clear();
        Ok(())
    }

    /// Reads until an op matches; answers the server's pings on the way.
    async fn read_until(&mut self, mut done: impl FnMut(&ServerOp<'_>) -> bool) -> io::Result<()> {
        loop {
            let n = self.stream.read(&mut self.read_buf).await?;
            if n == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            let (mut found, mut pings, mut err) = (false, 0, None);
            self.parser
                .parse(&self.read_buf[..n], |op| match op {
                    ServerOp::Ping => pings += 1,
                    ServerOp::Err(e) => err = Some(String::from_utf8_lossy(e).into_owned()),
                    op => found |= done(&op),
                })
                .map_err(protocol_error)?;
            if let Some(e) = err {
                return Err(io::Error::other(format!("server said -ERR {e}")));
            }
            if pings > 0 {
                self.queue_pongs(pings);
                self.send().await?;
            }
            if found {
                return Ok(());
            }
        }
    }

    pub(crate) fn queue_pongs(&mut self, pings: usize) {
        for _ in 0..pings {
            self.out.extend_from_slice(client::PONG);
        }
    }
}

/// What one client did between the common start and its last message.
#[derive(Debug, Clone, Copy)]
pub struct ClientRun {
    pub msgs: u64,
    pub secs: f64,
    /// The server closed the connection before the run ended (a subscriber
    /// cut off as a slow consumer).
    pub cut_off: bool,
}

/// Publishes `msgs` messages (or until `deadline`) in batches of about
/// [`WRITE_BATCH_BYTES`], then flushes. `sent` is bumped per batch. With a
/// `rate` (messages a second), batches are a millisecond's worth at most
/// and wait for their time.
pub async fn publisher(
    mut conn: Conn,
    frames: Arc<Frames>,
    msgs: Option<u64>,
    deadline: Option<Instant>,
    rate: Option<f64>,
    start: Instant,
    sent: Arc<AtomicU64>,
) -> io::Result<(ClientRun, Conn)> {
    let (mut done, mut next) = (0u64, 0usize);
    let per_ms = rate.map(|r| ((r / 1000.0) as u64).max(1));
    loop {
        let max = match msgs {
            Some(m) if done >= m => break,
            Some(m) => m - done,
            None if deadline.is_some_and(|d| Instant::now() >= d) => break,
            None => u64::MAX,
        };
        let max = per_ms.map_or(max, |p| max.min(p));
        if let Some(r) = rate {
            let due = start + Duration::from_secs_f64(done as f64 / r);
            if due > Instant::now() {
                tokio::time::sleep_until(due.into()).await;
            }
        }
        let (batch, n) = frames.batch(next, max);
        conn.stream.write_all(batch).await?;
        next = (next + n) % frames.len();
        done += n as u64;
        sent.fetch_add(n as u64, Ordering::Relaxed);
    }
    conn.flush().await?;
    let run = ClientRun {
        msgs: done,
        secs: start.elapsed().as_secs_f64(),
        cut_off: false,
    };
    Ok((run, conn))
}

/// Shared between a subscriber and the code waiting for it.
pub struct SubShared {
    pub received: AtomicU64,
    /// How many messages this subscriber should get; `u64::MAX` until the
    /// publishers are done and it is known.
    pub expected: AtomicU64,
    pub stop: AtomicBool,
}

impl SubShared {
    pub fn new() -> Arc<SubShared> {
        Arc::new(SubShared {
            received: AtomicU64::new(0),
            expected: AtomicU64::new(u64::MAX),
            stop: AtomicBool::new(false),
        })
    }
}

/// Counts deliveries until it has the expected number or is told to stop.
/// Its time is from `start` to the read that brought its last message. The
/// connection comes back open, for what is measured after the run.
pub async fn subscriber(
    mut conn: Conn,
    start: Instant,
    shared: Arc<SubShared>,
) -> io::Result<(ClientRun, Conn)> {
    let mut received = 0u64;
    let mut last = start;
    let mut cut_off = false;
    while received < shared.expected.load(Ordering::Relaxed) && !shared.stop.load(Ordering::Relaxed)
    {
        let n = match tokio::time::timeout(STOP_POLL, conn.stream.read(&mut conn.read_buf)).await {
            Err(_) => continue,
            Ok(Ok(0) | Err(_)) => {
                cut_off = true;
                break;
            }
            Ok(Ok(n)) => n,
        };
        let (mut msgs, mut pings, mut err) = (0u64, 0, None);
        conn.parser
            .parse(&conn.read_buf[..n], |op| match op {
                ServerOp::Msg { .. } => msgs += 1,
                ServerOp::Ping => pings += 1,
                ServerOp::Err(e) => err = Some(String::from_utf8_lossy(e).into_owned()),
                _ => {}
            })
            .map_err(protocol_error)?;
        if let Some(e) = err {
            return Err(io::Error::other(format!("server said -ERR {e}")));
        }
        if pings > 0 {
            conn.queue_pongs(pings);
            conn.send().await?;
        }
        if msgs > 0 {
            received += msgs;
            last = Instant::now();
            shared.received.fetch_add(msgs, Ordering::Relaxed);
        }
    }
    let run = ClientRun {
        msgs: received,
        secs: (last - start).as_secs_f64(),
        cut_off,
    };
    Ok((run, conn))
}

/// Answers every request it gets with its own payload, one write per read.
pub async fn responder(mut conn: Conn, stop: Arc<AtomicBool>) -> io::Result<u64> {
    let mut answered = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let n = match tokio::time::timeout(STOP_POLL, conn.stream.read(&mut conn.read_buf)).await {
            Err(_) => continue,
            Ok(r) => r?,
        };
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        let out = &mut conn.out;
        conn.parser
            .parse(&conn.read_buf[..n], |op| match op {
                ServerOp::Msg {
                    reply: Some(reply),
                    payload,
                    ..
                } => {
                    client::publish(out, reply, None, payload);
                    answered += 1;
                }
                ServerOp::Ping => out.extend_from_slice(client::PONG),
                _ => {}
            })
            .map_err(protocol_error)?;
        if !conn.out.is_empty() {
            conn.send().await?;
        }
    }
    Ok(answered)
}

/// Sends one request at a time and records each round trip in nanoseconds.
#[allow(clippy::too_many_arguments)]
pub async fn requester(
    mut conn: Conn,
    subject: String,
    inbox: String,
    payload: Vec<u8>,
    msgs: Option<u64>,
    deadline: Option<Instant>,
    start: Instant,
    sent: Arc<AtomicU64>,
) -> io::Result<(ClientRun, Histogram<u64>)> {
    conn.subscribe(&inbox, None, "1").await?;
    let mut hist = Histogram::<u64>::new(3).map_err(protocol_error)?;
    let mut frame = Vec::new();
    client::publish(
        &mut frame,
        subject.as_bytes(),
        Some(inbox.as_bytes()),
        &payload,
    );
    let mut done = 0u64;
    loop {
        match msgs {
            Some(m) if done >= m => break,
            None if deadline.is_some_and(|d| Instant::now() >= d) => break,
            _ => {}
        }
        let t0 = Instant::now();
        conn.stream.write_all(&frame).await?;
        conn.read_until(|op| matches!(op, ServerOp::Msg { .. }))
            .await?;
        let rtt = u64::try_from(t0.elapsed().as_nanos()).unwrap_or(u64::MAX);
        hist.record(rtt.max(1)).map_err(protocol_error)?;
        done += 1;
        sent.fetch_add(1, Ordering::Relaxed);
    }
    Ok((
        ClientRun {
            msgs: done,
            secs: start.elapsed().as_secs_f64(),
            cut_off: false,
        },
        hist,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// How fast one subscriber counts deliveries, with no server or socket
    /// in the way: `cargo test --release -p natrix-bench -- --ignored --nocapture`.
    /// It has to be well above what a server can send one connection.
    #[test]
    #[ignore = "a measurement, run by hand in release mode"]
    fn counting_rate() {
        for size in [16usize, 128] {
            let mut frame = Vec::new();
            let payload = vec![b'x'; size];
            natrix_core::proto::encode::msg(
                &mut frame,
                &natrix_core::proto::encode::Delivery {
                    subject: b"natrix.bench",
                    sid: b"1",
                    reply: None,
                    headers: b"",
                    header_token: b"",
                    body: &payload,
                    size_token: size.to_string().as_bytes(),
                },
                false,
            );
            let chunk = frame.repeat(READ_BUF_BYTES / frame.len() + 1);
            let mut parser = ServerOpParser::new();
            let (mut msgs, rounds) = (0u64, 400);
            let t0 = Instant::now();
            for _ in 0..rounds {
                for part in chunk.chunks(READ_BUF_BYTES) {
                    parser
                        .parse(part, |op| {
                            msgs += u64::from(matches!(op, ServerOp::Msg { .. }))
                        })
                        .unwrap();
                }
            }
            let rate = msgs as f64 / t0.elapsed().as_secs_f64();
            assert_eq!(msgs, (chunk.len() / frame.len()) as u64 * rounds);
            println!(
                "{size} B: {:.1}M deliveries/s counted on one thread",
                rate / 1e6
            );
        }
    }
}
