//! Direct gets (`$JS.API.DIRECT.GET.<s>[.<subject>]`): the stored message
//! itself, with where it is stored in its headers, or a status line; the
//! 2.11 batch and multi-last forms close with an end-of-batch status.

use natrix_storage::ops::{Completion, Done, Read, StorageOp};
use serde::Deserialize;

use super::api::from_go_json;
use super::{Pending, StreamId, origin_headers};
use crate::server::system::InternalMsg;
use crate::server::{AccountId, Server};

impl Server {
    /// `DIRECT.GET.<s>` (with a request body) or `DIRECT.GET.<s>.<subject>`
    /// (the last message on that subject): the stored message itself, its
    /// headers first and then where it is from; errors are status lines.
    pub(super) fn direct_get(
        &mut self,
        m: &InternalMsg,
        reply: &[u8],
        name: &str,
        last_by_subject: Option<String>,
    ) {
        let (account, body) = (m.account, m.body());
        let Some(id) = self
            .stream_id(account, name)
            .filter(|&id| self.jetstream.streams[id as usize].config.allow_direct)
        else {
            // No stream serves direct gets here: what a requester hears
            // when nobody listens (it alone, and only if it asked).
            let subject = String::from_utf8_lossy(&m.subject);
            self.no_responders_to(m.from, reply, &subject);
            return;
        };
        let read = match last_by_subject {
            Some(last) if !last.is_empty() => self.last_read(last),
            Some(_) => return self.direct_status(account, reply, "408 Bad Request"),
            None => {
                if body.trim_ascii().is_empty() {
                    return self.direct_status(account, reply, "408 Empty Request");
                }
                let Ok(mut req) = from_go_json::<DirectGetRequest>(body) else {
                    return self.direct_status(account, reply, "408 Malformed Request");
                };
                if let Some(status) = req.refused() {
                    return self.direct_status(account, reply, status);
                }
                // A time is a sequence the store looks up first.
                let at_time = match (&req.start_time, &req.up_to_time) {
                    (Some(t), _) if req.multi_last.is_empty() => Some((t, AtTimeFor::Start)),
                    (_, Some(t)) if !req.multi_last.is_empty() => Some((t, AtTimeFor::UpTo)),
                    _ => None,
                };
                if let Some((time, what)) = at_time {
                    // (A time before 1970 is before every message.)
                    let before_1970 =
                        time.get(..4).and_then(|y| y.parse::<u32>().ok()) < Some(1970);
                    let parsed = crate::time::parse_rfc3339_nanos(time);
                    let Some(unix_nanos) = parsed.or(before_1970.then_some(0)) else {
                        return self.direct_status(account, reply, "408 Malformed Request");
                    };
                    req.start_time = None;
                    req.up_to_time = None;
                    let key = self.jetstream.streams[id as usize].key.clone();
                    let op = self.next_op(Pending::DirectAtTime {
                        account,
                        reply: reply.into(),
                        stream: name.to_string(),
                        req: Box::new(req),
                        what,
                    });
                    return self.storage(StorageOp::Read {
                        id: op,
                        stream: key,
                        read: Read::AtTime { unix_nanos },
                    });
                }
                if req.batch > 0 || !req.multi_last.is_empty() {
                    return self.direct_batch(account, reply, id, name, req);
                }
                match (req.seq, req.last_by_subj, req.next_by_subj) {
                    (seq, last, next) if seq > 0 && last.is_empty() && next.is_empty() => {
                        Read::Seq(seq)
                    }
                    (0, last, next) if !last.is_empty() && next.is_empty() => self.last_read(last),
                    (seq, last, next) if last.is_empty() && !next.is_empty() => Read::Next {
                        from_seq: seq.max(1),
                        filter: Some(next),
                    },
                    _ => return self.direct_status(account, reply, "408 Bad Request"),
                }
            }
        };
        let key = self.jetstream.streams[id as usize].key.clone();
        let op = self.next_op(Pending::DirectGet {
            account,
            reply: reply.into(),
            stream: name.to_string(),
        });
        self.storage(StorageOp::Read {
            id: op,
            stream: key,
            read,
        });
    }

    /// The 2.11 batch forms: `batch` messages from `seq` (on
    /// `next_by_subj`), or the last message of each subject of
    /// `multi_last` (up to `up_to_seq`); each message says how many follow
    /// and which it follows, and an end-of-batch status closes them.
    fn direct_batch(
        &mut self,
        account: AccountId,
        reply: &[u8],
        id: StreamId,
        name: &str,
        req: DirectGetRequest,
    ) {
        let s = &self.jetstream.streams[id as usize];
        let (key, last_seq) = (s.key.clone(), s.last_seq);
        let max_msgs = usize::try_from(req.batch).unwrap_or(usize::MAX);
        let multi_last = !req.multi_last.is_empty();
        let up_to = multi_last.then_some(if req.up_to_seq > 0 {
            req.up_to_seq
        } else {
            last_seq
        });
        let op = self.next_op(Pending::DirectBatch {
            account,
            reply: reply.into(),
            stream: name.to_string(),
            up_to,
        });
        let read = match up_to {
            Some(up_to_seq) => StorageOp::LastPerSubject {
                id: op,
                stream: key,
                filters: req.multi_last,
                up_to_seq,
                max_msgs: if max_msgs == 0 { usize::MAX } else { max_msgs },
            },
            None => StorageOp::ReadBatch {
                id: op,
                stream: key,
                from_seq: req.seq.max(1),
                filters: (!req.next_by_subj.is_empty())
                    .then_some(req.next_by_subj)
                    .into_iter()
                    .collect(),
                max_msgs,
                max_bytes: req.max_bytes,
            },
        };
        self.storage(read);
    }

    pub(super) fn direct_batch_got(
        &mut self,
        account: AccountId,
        reply: &[u8],
        stream: &str,
        up_to: Option<u64>,
        c: &Completion,
    ) {
        let Ok(Done::Batch { msgs, pending }) = &c.result else {
            return self.direct_status(account, reply, "404 Message Not Found");
        };
        if msgs.is_empty() {
            return self.direct_status(account, reply, "404 Message Not Found");
        }
        let mut previous = 0;
        for (i, m) in msgs.iter().enumerate() {
            let after = pending + (msgs.len() - i - 1) as u64;
            let extra = format!("Nats-Num-Pending: {after}\r\nNats-Last-Sequence: {previous}\r\n");
            let headers = origin_headers(
                &m.headers,
                stream,
                (&m.subject, m.seq, m.ts_unix_nanos),
                &extra,
            );
            self.publish_as_server(account, reply, Some(&headers), &m.payload);
            previous = m.seq;
        }
        let mut eob = format!(
            "NATS/1.0 204 EOB\r\nNats-Num-Pending: {pending}\r\nNats-Last-Sequence: {previous}\r\n"
        );
        if let Some(up_to) = up_to {
            eob.push_str(&format!("Nats-UpTo-Sequence: {up_to}\r\n"));
        }
        eob.push_str("\r\n");
        self.publish_as_server(account, reply, Some(eob.as_bytes()), b"");
    }

    /// The store said where a direct get's time falls: the get goes on
    /// from that sequence.
    pub(super) fn direct_at_time(
        &mut self,
        account: AccountId,
        reply: &[u8],
        name: &str,
        mut req: DirectGetRequest,
        what: AtTimeFor,
        c: &Completion,
    ) {
        let Some(id) = self
            .stream_id(account, name)
            .filter(|&id| self.jetstream.streams[id as usize].config.allow_direct)
        else {
            return; // gone meanwhile
        };
        let s = &self.jetstream.streams[id as usize];
        let at = match &c.result {
            Ok(Done::Read(Some(m))) => m.seq,
            _ => s.last_seq + 1,
        };
        match what {
            AtTimeFor::Start => {
                req.seq = at;
                if req.batch > 0 {
                    return self.direct_batch(account, reply, id, name, req);
                }
                let read = if req.next_by_subj.is_empty() {
                    Read::Seq(at)
                } else {
                    Read::Next {
                        from_seq: at,
                        filter: Some(std::mem::take(&mut req.next_by_subj)),
                    }
                };
                let key = s.key.clone();
                let op = self.next_op(Pending::DirectGet {
                    account,
                    reply: reply.into(),
                    stream: name.to_string(),
                });
                self.storage(StorageOp::Read {
                    id: op,
                    stream: key,
                    read,
                });
            }
            AtTimeFor::UpTo => {
                // Nothing before the time: no results, as nats-server.
                if at <= s.state.first_seq.max(1) {
                    return self.direct_status(account, reply, "404 No Results");
                }
                req.up_to_seq = at - 1;
                self.direct_batch(account, reply, id, name, req);
            }
        }
    }

    /// The read of `subject`'s last message.
    pub(super) fn last_read(&self, subject: String) -> Read {
        // Planted bug (mutation suite only): the first message kept is read.
        if self.planted(crate::config::PlantedBug::StaleLastRead) {
            return Read::Next {
                from_seq: 1,
                filter: Some(subject),
            };
        }
        Read::LastBySubject(subject)
    }

    fn direct_status(&mut self, account: AccountId, reply: &[u8], status: &str) {
        let headers = format!("NATS/1.0 {status}\r\n\r\n");
        self.publish_as_server(account, reply, Some(headers.as_bytes()), b"");
    }

    pub(super) fn direct_got(
        &mut self,
        account: AccountId,
        reply: &[u8],
        stream: &str,
        c: &Completion,
    ) {
        let Ok(Done::Read(Some(m))) = &c.result else {
            return self.direct_status(account, reply, "404 Message Not Found");
        };
        let headers = origin_headers(&m.headers, stream, (&m.subject, m.seq, m.ts_unix_nanos), "");
        self.publish_as_server(account, reply, Some(&headers), &m.payload);
    }
}

#[derive(Debug, Deserialize, Default)]
#[serde(default)]
pub(super) struct DirectGetRequest {
    seq: u64,
    last_by_subj: String,
    next_by_subj: String,
    batch: u64,
    max_bytes: u64,
    multi_last: Vec<String>,
    up_to_seq: u64,
    /// From the first message at or after this time (RFC 3339).
    start_time: Option<String>,
    /// `multi_last`: only messages before this time.
    up_to_time: Option<String>,
}

impl DirectGetRequest {
    /// The 408 status nats-server answers a request that asks nothing or
    /// asks for what cannot go together.
    fn refused(&self) -> Option<&'static str> {
        let (last, next) = (!self.last_by_subj.is_empty(), !self.next_by_subj.is_empty());
        let (multi, start) = (!self.multi_last.is_empty(), self.start_time.is_some());
        if self.seq == 0 && !last && !next && !multi && !start {
            return Some("408 Empty Request");
        }
        let conflict = (self.seq > 0 && (last || start))
            || (start && last)
            || (last && (next || self.batch > 0 || multi))
            || (next && multi)
            || (self.up_to_seq > 0 && self.up_to_time.is_some());
        conflict.then_some("408 Bad Request")
    }
}

/// What a direct get's time stands for.
#[derive(Debug, Clone, Copy)]
pub(super) enum AtTimeFor {
    /// `start_time`: where the get (or batch) starts.
    Start,
    /// `up_to_time` of a `multi_last`: the messages before it.
    UpTo,
}
