//! `obj-put` and `obj-get`: the object store as the official clients use
//! it on the wire. The bucket is stream `OBJ_<bucket>` (chunks on
//! `$O.<bucket>.C.<nuid>`, the latest meta of each object on
//! `$O.<bucket>.M.<base64url(name)>`). A put looks the object's current
//! meta up (a direct get of the last message on its meta subject),
//! publishes the chunks to a fresh nuid keeping `--inflight` awaiting
//! their PubAck, publishes the meta with `Nats-Rollup: sub` and purges
//! the old object's chunks. A get reads the meta the same way, then every
//! chunk through an ephemeral ordered push consumer filtered on the
//! object's chunk subject (flow control answered, no acks), and checks the
//! bytes against the meta's size and SHA-256 digest.

use std::io;
use std::time::{Duration, Instant};

use data_encoding::BASE64URL;
use hdrhistogram::Histogram;
use natrix_core::proto::{Headers, ServerOp, client};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::BoxError;
use crate::conn::{Conn, WRITE_BATCH_BYTES};
use crate::procfs::ProcSample;

/// The clients' default chunk size.
pub const CHUNK_BYTES: usize = 128 * 1024;
/// The object's name: 12 bytes, so its base64url form needs no padding.
const OBJECT_NAME: &str = "natrix-bench";
/// Replies to this connection's publishes and API requests come to this,
/// a dot and the process id (two runs at once must not take each other's).
const INBOX: &str = "_INBOX.natrix-bench.obj";
/// The ordered consumers' deliver subjects: this, the process id and the
/// get's number.
const DELIVER_PREFIX: &str = "_INBOX.natrix-bench.objget";
/// No answer or delivery for this long: the run has stalled.
const STALL_TIMEOUT: Duration = Duration::from_secs(10);
/// The ordered consumer's idle heartbeat, as the clients set it.
const HEARTBEAT_NS: u64 = 5_000_000_000;
/// Errors kept word for word.
const ERRORS_KEPT: usize = 5;

/// The bucket's stream, configured as the clients create it.
pub fn stream_config(bucket: &str) -> (String, Value) {
    let stream = format!("OBJ_{bucket}");
    let config = json!({
        "name": stream,
        "subjects": [format!("$O.{bucket}.C.>"), format!("$O.{bucket}.M.>")],
        "storage": "file", "discard": "new", "allow_rollup_hdrs": true,
        "allow_direct": true, "num_replicas": 1,
    });
    (stream, config)
}

/// What a run of puts or gets did.
#[derive(Debug)]
pub struct ObjFigures {
    /// `put` or `get`.
    pub kind: &'static str,
    pub object_bytes: usize,
    pub chunk_bytes: usize,
    pub chunks: u64,
    /// Put: chunks awaiting their ack at most.
    pub inflight: usize,
    /// Objects put or got whole.
    pub objects: u64,
    /// Put: chunk and meta publishes acknowledged; get: chunks delivered.
    pub messages: u64,
    pub flow_controls_answered: u64,
    pub errors: u64,
    pub first_errors: Vec<String>,
    /// From the first request to the last object's end.
    pub secs: f64,
    /// Each object's time, in microseconds.
    pub latency: Histogram<u64>,
    /// The server's use when the measured part began.
    pub server_before: Option<ProcSample>,
}

impl ObjFigures {
    fn new(kind: &'static str, object_bytes: usize, chunk_bytes: usize, inflight: usize) -> Self {
        ObjFigures {
            kind,
            object_bytes,
            chunk_bytes,
            chunks: object_bytes.div_ceil(chunk_bytes) as u64,
            inflight,
            objects: 0,
            messages: 0,
            flow_controls_answered: 0,
            errors: 0,
            first_errors: Vec::new(),
            secs: 0.0,
            latency: Histogram::new(3).expect("3 significant digits"),
            server_before: None,
        }
    }

    /// Every object whole, every publish acknowledged, no error.
    pub fn sound(&self) -> bool {
        self.errors == 0 && self.objects > 0
    }

    fn error(&mut self, why: String) {
        self.errors += 1;
        if self.first_errors.len() < ERRORS_KEPT {
            self.first_errors.push(why);
        }
    }
}

/// `len` bytes from a SplitMix64 sequence: nothing a store could compress.
pub fn object_bytes(len: usize) -> Vec<u8> {
    let mut state = 0x6e61_7472_6978_u64;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        out.extend_from_slice(&(z ^ (z >> 31)).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// The digest as the meta carries it.
fn digest_of(hash: &[u8]) -> String {
    format!("SHA-256={}", BASE64URL.encode(hash))
}

/// A fresh nuid for an object's chunk subject: unique per run and put.
fn nuid(count: u64) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("NB{:x}{:06}", nanos, count)
}

/// One message this connection got, as the parser lends it.
struct Delivered<'a> {
    subject: &'a [u8],
    sid: &'a [u8],
    reply: Option<&'a [u8]>,
    headers: Option<&'a [u8]>,
    payload: &'a [u8],
}

/// One message this connection got, owned.
struct Answer {
    headers: Option<Vec<u8>>,
    payload: Vec<u8>,
}

/// The object store client on one connection.
pub struct ObjClient {
    conn: Conn,
    bucket: String,
    stream: String,
    meta_subject: String,
    inbox: String,
}

impl ObjClient {
    pub async fn open(addr: &str, bucket: &str) -> Result<ObjClient, BoxError> {
        let mut conn = Conn::open(addr, "natrix-bench-obj").await?;
        let inbox = format!("{INBOX}.{}", std::process::id());
        conn.subscribe(&format!("{inbox}.>"), None, "1").await?;
        let name = BASE64URL.encode(OBJECT_NAME.as_bytes());
        Ok(ObjClient {
            conn,
            bucket: bucket.to_string(),
            stream: format!("OBJ_{bucket}"),
            meta_subject: format!("$O.{bucket}.M.{name}"),
            inbox,
        })
    }

    /// Reads once (or fails after [`STALL_TIMEOUT`]) and hands every
    /// message to `on_msg`; answers PINGs, fails on `-ERR`.
    async fn pump(
        &mut self,
        mut on_msg: impl FnMut(Delivered<'_>, &mut Vec<u8>),
    ) -> io::Result<()> {
        let conn = &mut self.conn;
        let n =
            match tokio::time::timeout(STALL_TIMEOUT, conn.stream.read(&mut conn.read_buf)).await {
                Err(_) => return Err(io::Error::new(io::ErrorKind::TimedOut, "stalled")),
                Ok(Ok(0)) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(n) => n?,
            };
        let (mut pings, mut err) = (0, None);
        let out = &mut conn.out;
        conn.parser
            .parse(&conn.read_buf[..n], |op| match op {
                ServerOp::Msg {
                    subject,
                    sid,
                    reply,
                    headers,
                    payload,
                } => on_msg(
                    Delivered {
                        subject,
                        sid,
                        reply,
                        headers,
                        payload,
                    },
                    out,
                ),
                ServerOp::Ping => pings += 1,
                ServerOp::Err(e) => err = Some(String::from_utf8_lossy(e).into_owned()),
                _ => {}
            })
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("{e:?}")))?;
        if let Some(e) = err {
            return Err(io::Error::other(format!("server said -ERR {e}")));
        }
        conn.queue_pongs(pings);
        if !conn.out.is_empty() {
            conn.send().await?;
        }
        Ok(())
    }

    /// Publishes `payload` (with `headers`, if any) to `subject` with
    /// reply `<inbox>.<tag>` and waits for the answer there.
    async fn request(
        &mut self,
        subject: &str,
        tag: &str,
        headers: Option<&[u8]>,
        payload: &[u8],
    ) -> io::Result<Answer> {
        let reply = format!("{}.{tag}", self.inbox);
        match headers {
            Some(h) => client::hpublish(
                &mut self.conn.out,
                subject.as_bytes(),
                Some(reply.as_bytes()),
                h,
                payload,
            ),
            None => client::publish(
                &mut self.conn.out,
                subject.as_bytes(),
                Some(reply.as_bytes()),
                payload,
            ),
        }
        self.conn.send().await?;
        let mut answer = None;
        while answer.is_none() {
            self.pump(|m, _| {
                if m.subject == reply.as_bytes() {
                    answer = Some(Answer {
                        headers: m.headers.map(<[u8]>::to_vec),
                        payload: m.payload.to_vec(),
                    });
                }
            })
            .await?;
        }
        Ok(answer.expect("the loop ends with an answer"))
    }

    /// A JetStream API request with a JSON answer; an `error` in it fails.
    async fn api(&mut self, subject: &str, body: &Value) -> Result<Value, BoxError> {
        let answer = self
            .request(subject, "api", None, body.to_string().as_bytes())
            .await?;
        let v: Value = serde_json::from_slice(&answer.payload)
            .map_err(|e| format!("{subject}: {e}: {:?}", answer.headers))?;
        match v.get("error") {
            Some(e) => Err(format!("{subject}: {e}").into()),
            None => Ok(v),
        }
    }

    /// Deletes the bucket's stream if it is there and creates it empty.
    pub async fn recreate_bucket(&mut self) -> Result<(), BoxError> {
        let delete = format!("$JS.API.STREAM.DELETE.{}", self.stream);
        let _ = self.api(&delete, &json!({})).await;
        let (_, config) = stream_config(&self.bucket);
        let create = format!("$JS.API.STREAM.CREATE.{}", self.stream);
        self.api(&create, &config).await.map(drop)
    }

    pub async fn delete_bucket(&mut self) -> Result<(), BoxError> {
        let delete = format!("$JS.API.STREAM.DELETE.{}", self.stream);
        self.api(&delete, &json!({})).await.map(drop)
    }

    /// The object's current meta, by a direct get of the last message on
    /// its meta subject; `None`: no such object.
    async fn meta(&mut self) -> Result<Option<Value>, BoxError> {
        let subject = format!("$JS.API.DIRECT.GET.{}", self.stream);
        let body = json!({"last_by_subj": self.meta_subject}).to_string();
        let answer = self.request(&subject, "api", None, body.as_bytes()).await?;
        let status = answer
            .headers
            .as_deref()
            .and_then(|h| Headers::parse(h).ok())
            .and_then(|h| h.status);
        match status {
            None => Ok(Some(serde_json::from_slice(&answer.payload)?)),
            Some(404) => Ok(None),
            Some(s) => Err(format!("direct get of the meta: status {s}").into()),
        }
    }

    /// One put of `data` in chunks of `chunk_bytes`, `inflight` chunks
    /// awaiting their ack at most.
    pub async fn put(
        &mut self,
        data: &[u8],
        digest: &str,
        chunk_bytes: usize,
        inflight: usize,
        f: &mut ObjFigures,
    ) -> Result<(), BoxError> {
        let old = self.meta().await?;
        let nuid = nuid(f.objects);
        let chunk_subject = format!("$O.{}.C.{nuid}", self.bucket);
        let ack_prefix = format!("{}.a.", self.inbox);
        let chunks: Vec<&[u8]> = data.chunks(chunk_bytes).collect();
        let (mut sent, mut acked) = (0usize, 0usize);
        let mut reply = ack_prefix.clone().into_bytes();
        while acked < chunks.len() {
            while sent < chunks.len() && sent - acked < inflight {
                reply.truncate(ack_prefix.len());
                reply.extend_from_slice(itoa::Buffer::new().format(sent).as_bytes());
                client::publish(
                    &mut self.conn.out,
                    chunk_subject.as_bytes(),
                    Some(&reply),
                    chunks[sent],
                );
                sent += 1;
                if self.conn.out.len() >= WRITE_BATCH_BYTES {
                    self.conn.send().await?;
                }
            }
            if !self.conn.out.is_empty() {
                self.conn.send().await?;
            }
            let mut errors = Vec::new();
            self.pump(|m, _| {
                if m.subject.starts_with(ack_prefix.as_bytes()) {
                    acked += 1;
                    if let Err(why) = crate::js::parse_ack(m.headers, m.payload) {
                        errors.push(why);
                    }
                }
            })
            .await?;
            for e in errors {
                f.error(format!("chunk ack: {e}"));
            }
        }
        f.messages += chunks.len() as u64;
        let meta = json!({
            "name": OBJECT_NAME, "bucket": self.bucket, "nuid": nuid,
            "size": data.len(), "chunks": chunks.len(), "digest": digest,
            "options": {"max_chunk_size": chunk_bytes},
        });
        let meta_subject = self.meta_subject.clone();
        let answer = self
            .request(
                &meta_subject,
                "m",
                Some(b"NATS/1.0\r\nNats-Rollup: sub\r\n\r\n"),
                meta.to_string().as_bytes(),
            )
            .await?;
        match crate::js::parse_ack(answer.headers.as_deref(), &answer.payload) {
            Ok(_) => f.messages += 1,
            Err(why) => f.error(format!("meta ack: {why}")),
        }
        if let Some(old_nuid) = old.as_ref().and_then(|m| m["nuid"].as_str()) {
            let purge = format!("$JS.API.STREAM.PURGE.{}", self.stream);
            let filter = format!("$O.{}.C.{old_nuid}", self.bucket);
            self.api(&purge, &json!({ "filter": filter })).await?;
        }
        Ok(())
    }

    /// One get of the object: its meta, then every chunk through an
    /// ordered push consumer; the bytes checked against the meta.
    pub async fn get(&mut self, f: &mut ObjFigures) -> Result<(), BoxError> {
        let meta = self.meta().await?.ok_or("no object to get")?;
        let (Some(nuid), Some(chunks), Some(size), Some(digest)) = (
            meta["nuid"].as_str(),
            meta["chunks"].as_u64(),
            meta["size"].as_u64(),
            meta["digest"].as_str(),
        ) else {
            return Err(format!("a meta without nuid, chunks, size or digest: {meta}").into());
        };
        let (nuid, digest) = (nuid.to_string(), digest.to_string());
        let n = itoa::Buffer::new().format(f.objects).to_string();
        // Outside INBOX's wildcard, so each delivery comes once.
        let deliver = format!("{DELIVER_PREFIX}.{}.{n}", std::process::id());
        let sid = format!("d{n}");
        let config = json!({
            "stream_name": self.stream,
            "config": {
                "deliver_subject": deliver, "deliver_policy": "all", "ack_policy": "none",
                "max_deliver": 1, "flow_control": true, "idle_heartbeat": HEARTBEAT_NS,
                "replay_policy": "instant", "mem_storage": true, "num_replicas": 1,
                "inactive_threshold": 6 * HEARTBEAT_NS,
                "filter_subject": format!("$O.{}.C.{nuid}", self.bucket),
            }
        });
        client::subscribe(&mut self.conn.out, deliver.as_bytes(), None, sid.as_bytes());
        let created = format!("{}.c", self.inbox);
        client::publish(
            &mut self.conn.out,
            format!("$JS.API.CONSUMER.CREATE.{}", self.stream).as_bytes(),
            Some(created.as_bytes()),
            config.to_string().as_bytes(),
        );
        self.conn.send().await?;
        let mut hash = Sha256::new();
        let (mut got, mut bytes, mut fcs) = (0u64, 0u64, 0u64);
        let mut name: Option<Result<String, String>> = None;
        while got < chunks || name.is_none() {
            self.pump(|m, out| {
                // Deliveries carry the chunk's own subject: the sid tells them.
                if m.sid == sid.as_bytes() {
                    if m.reply.is_some_and(|r| r.starts_with(b"$JS.ACK.")) {
                        got += 1;
                        bytes += m.payload.len() as u64;
                        hash.update(m.payload);
                        return;
                    }
                    // A flow-control request carries its reply; a
                    // heartbeat while stalled names it in a header.
                    let stalled = m
                        .headers
                        .and_then(|h| Headers::parse(h).ok())
                        .and_then(|h| h.get(b"Nats-Consumer-Stalled").map(<[u8]>::to_vec));
                    if let Some(to) = m.reply.map(<[u8]>::to_vec).or(stalled) {
                        client::publish(out, &to, None, b"");
                        fcs += 1;
                    }
                } else if m.subject == created.as_bytes() {
                    name = Some(created_name(m.payload));
                }
            })
            .await?;
            if let Some(Err(e)) = &name {
                return Err(format!("creating the ordered consumer: {e}").into());
            }
        }
        client::unsubscribe(&mut self.conn.out, sid.as_bytes(), None);
        if let Some(Ok(name)) = name {
            // As a client that is done with it: the answer is not awaited.
            let delete = format!("$JS.API.CONSUMER.DELETE.{}.{name}", self.stream);
            let ignored = format!("{}.x", self.inbox);
            client::publish(
                &mut self.conn.out,
                delete.as_bytes(),
                Some(ignored.as_bytes()),
                b"",
            );
        }
        self.conn.send().await?;
        f.messages += got;
        f.flow_controls_answered += fcs;
        let got_digest = digest_of(&hash.finalize());
        if bytes != size || got_digest != digest {
            f.error(format!(
                "{bytes} bytes with digest {got_digest}, the meta says {size} and {digest}"
            ));
        }
        Ok(())
    }

    /// Sends a PING and waits for its PONG: every reply is in.
    pub async fn flush(&mut self) -> io::Result<()> {
        self.conn.out.extend_from_slice(client::PING);
        self.conn.stream.write_all(&self.conn.out).await?;
        self.conn.out.clear();
        let mut pong = false;
        while !pong {
            let conn = &mut self.conn;
            let n = tokio::time::timeout(STALL_TIMEOUT, conn.stream.read(&mut conn.read_buf))
                .await
                .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no PONG"))??;
            if n == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            conn.parser
                .parse(&conn.read_buf[..n], |op| {
                    pong |= matches!(op, ServerOp::Pong)
                })
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("{e:?}")))?;
        }
        Ok(())
    }
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

/// What to do: puts or gets, how big, how many or for how long.
pub struct ObjPlan {
    pub get: bool,
    pub object_bytes: usize,
    pub chunk_bytes: usize,
    pub inflight: usize,
    pub objects: Option<u64>,
    pub deadline: Option<Duration>,
}

/// Puts (or puts once, then gets) the object until `objects` are done or
/// the deadline passes, at least one. `sample` reads the server's use
/// where the measured part begins.
pub async fn run(
    client: &mut ObjClient,
    plan: &ObjPlan,
    sample: &dyn Fn() -> Option<ProcSample>,
) -> Result<ObjFigures, BoxError> {
    let kind = if plan.get { "get" } else { "put" };
    let mut f = ObjFigures::new(kind, plan.object_bytes, plan.chunk_bytes, plan.inflight);
    let data = object_bytes(plan.object_bytes);
    let digest = digest_of(&Sha256::digest(&data));
    if plan.get {
        let mut fill = ObjFigures::new("put", plan.object_bytes, plan.chunk_bytes, 64);
        client
            .put(&data, &digest, plan.chunk_bytes, 64, &mut fill)
            .await?;
        if !fill.first_errors.is_empty() {
            return Err(format!("putting the object: {:?}", fill.first_errors).into());
        }
    }
    f.server_before = sample();
    let start = Instant::now();
    let deadline = plan.deadline.map(|d| start + d);
    loop {
        let more = match (plan.objects, deadline) {
            _ if f.objects == 0 => true,
            (Some(n), _) => f.objects < n,
            (None, Some(d)) => Instant::now() < d,
            (None, None) => false,
        };
        if !more {
            break;
        }
        let t0 = Instant::now();
        if plan.get {
            client.get(&mut f).await?;
        } else {
            client
                .put(&data, &digest, plan.chunk_bytes, plan.inflight, &mut f)
                .await?;
        }
        let us = u64::try_from(t0.elapsed().as_micros()).unwrap_or(u64::MAX);
        let _ = f.latency.record(us.max(1));
        f.objects += 1;
    }
    f.secs = start.elapsed().as_secs_f64();
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_object_is_seeded_noise_and_its_digest_is_base64url() {
        let a = object_bytes(4096);
        assert_eq!(a, object_bytes(4096));
        let distinct: std::collections::HashSet<u8> = a.iter().copied().collect();
        assert!(distinct.len() > 200);
        assert_eq!(
            digest_of(&Sha256::digest(b"")),
            "SHA-256=47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU="
        );
    }

    #[test]
    fn the_bucket_is_the_clients_stream() {
        let (name, config) = stream_config("b");
        assert_eq!(name, "OBJ_b");
        assert_eq!(config["subjects"], json!(["$O.b.C.>", "$O.b.M.>"]));
        assert_eq!(config["discard"], "new");
        assert_eq!(config["allow_rollup_hdrs"], true);
        assert_eq!(BASE64URL.encode(OBJECT_NAME.as_bytes()).len() % 4, 0);
        assert!(!BASE64URL.encode(OBJECT_NAME.as_bytes()).contains('='));
    }

    #[test]
    fn chunks_cover_the_object() {
        let f = ObjFigures::new("put", 10 * 1024 * 1024, CHUNK_BYTES, 1);
        assert_eq!(f.chunks, 80);
        assert_eq!(
            ObjFigures::new("put", CHUNK_BYTES + 1, CHUNK_BYTES, 1).chunks,
            2
        );
        assert!(!f.sound(), "no object done");
    }
}
