//! The backup workload: once in a run, the stream's creator takes a
//! snapshot of stream `S` (acknowledging every piece) and restores it as
//! stream `SR`, piece by piece. A restore the server confirms is put in
//! the history; the `restore-faithful` checker then reads `SR` from the
//! disk after every power loss. A step that hears nothing for a while (a
//! partition, a restart) ends the attempt: nothing is claimed for it.

use natrix_core::proto::client as enc;

use super::{MsgIds, Output, SimClient};
use crate::history::{Ev, History};

/// The stream a backup is restored as, and its subjects.
pub const RESTORED_STREAM: &str = "SR";
const RESTORED_BODY: &str = r#"{"config":{"name":"SR","subjects":["sr.>"]}}"#;
/// Pieces of the backup sent per request.
const PIECE_BYTES: usize = 4096;
/// An attempt that hears nothing for this long is given up.
const GIVE_UP_NS: u64 = 3_000_000_000;

/// Where the attempt stands.
#[derive(Debug)]
enum Stage {
    Due,
    /// The snapshot was asked for at `asked_ns`; its answer and then its
    /// pieces come to `inbox` (one inbox, so that every message on it
    /// answers a request the history knows).
    Snapshot {
        inbox: String,
        answered: bool,
        asked_ns: u64,
    },
    /// The restore was asked for; `sent` bytes of the backup went so far,
    /// the last piece's answer comes to `reply`.
    Restore {
        reply: String,
        to: Option<String>,
        sent: usize,
        asked_ns: u64,
    },
    Over,
}

#[derive(Debug)]
pub(super) struct BackupState {
    at_ns: u64,
    stage: Stage,
    bytes: Vec<u8>,
    heard_ns: u64,
}

impl BackupState {
    pub(super) fn new(at_ns: u64) -> BackupState {
        BackupState {
            at_ns,
            stage: Stage::Due,
            bytes: Vec::new(),
            heard_ns: 0,
        }
    }
}

impl SimClient {
    /// Starts the backup when it is due (once stream `S` exists), and gives
    /// up one that stalled. Returns when it next has something to do.
    pub(super) fn backup_work(
        &mut self,
        now: u64,
        created: bool,
        send: &mut Vec<u8>,
        ids: &mut MsgIds,
        hist: &mut History,
    ) -> Option<u64> {
        let b = self.js.as_mut()?.backup.as_mut()?;
        match b.stage {
            Stage::Due if now >= b.at_ns && created => {
                let inbox = self.new_inbox();
                let body = format!(
                    r#"{{"deliver_subject":"{inbox}","chunk_size":2048,"window_size":8192}}"#
                );
                let subject = format!("$JS.API.STREAM.SNAPSHOT.{}", super::JS_STREAM);
                self.record_publish(
                    now,
                    &subject,
                    Some(inbox.clone()),
                    None,
                    body.as_bytes(),
                    send,
                    ids,
                    hist,
                );
                let b = self.js.as_mut()?.backup.as_mut()?;
                b.stage = Stage::Snapshot {
                    inbox,
                    answered: false,
                    asked_ns: now,
                };
                b.heard_ns = now;
                Some(now + GIVE_UP_NS)
            }
            Stage::Due => Some(b.at_ns.max(now + 1)),
            Stage::Over => None,
            _ if now >= b.heard_ns + GIVE_UP_NS => {
                b.stage = Stage::Over;
                None
            }
            _ => Some(b.heard_ns + GIVE_UP_NS),
        }
    }

    /// A message on the inbox that belongs to the backup; false if none.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn backup_answer(
        &mut self,
        now: u64,
        subject: &str,
        reply: Option<&str>,
        headers: Option<&[u8]>,
        payload: &[u8],
        ids: &mut MsgIds,
        hist: &mut History,
        out: &mut Output,
    ) -> bool {
        let client = self.id;
        let next_reply = self.new_inbox();
        let Some(b) = self.js.as_mut().and_then(|js| js.backup.as_mut()) else {
            return false;
        };
        // A request to send once the stage is updated: subject, reply, body.
        let mut request: Option<(String, String, Vec<u8>)> = None;
        match &mut b.stage {
            Stage::Snapshot {
                inbox, answered, ..
            } if inbox == subject && !*answered => {
                *answered = true;
                if payload.windows(8).any(|w| w == b"\"error\":") {
                    b.stage = Stage::Over;
                }
            }
            Stage::Snapshot {
                inbox, asked_ns, ..
            } if inbox == subject => {
                if let Some(r) = reply {
                    enc::publish(&mut out.send, r.as_bytes(), None, b"");
                }
                if !payload.is_empty() {
                    b.bytes.extend_from_slice(payload);
                } else if headers.is_none_or(|h| h.windows(4).any(|w| w == b" 204")) {
                    let subject = format!("$JS.API.STREAM.RESTORE.{RESTORED_STREAM}");
                    request = Some((
                        subject,
                        next_reply.clone(),
                        RESTORED_BODY.as_bytes().to_vec(),
                    ));
                    let asked_ns = *asked_ns;
                    b.stage = Stage::Restore {
                        reply: next_reply,
                        to: None,
                        sent: 0,
                        asked_ns,
                    };
                } else {
                    b.stage = Stage::Over;
                }
            }
            Stage::Restore {
                reply: r,
                to,
                sent,
                asked_ns,
            } if r == subject => {
                let answer: serde_json::Value = serde_json::from_slice(payload).unwrap_or_default();
                if to.is_none() {
                    match answer["deliver_subject"].as_str().filter(|d| !d.is_empty()) {
                        Some(d) => *to = Some(d.to_string()),
                        None => {
                            b.stage = Stage::Over;
                            return true;
                        }
                    }
                } else if !payload.is_empty() {
                    // The last request's answer: the stream, or an error.
                    let ok = answer.get("error").is_none()
                        && answer["type"] == "io.nats.jetstream.api.v1.stream_create_response";
                    if ok {
                        let last_seq = answer["state"]["last_seq"].as_u64().unwrap_or(0);
                        let snapshot_asked_ns = *asked_ns;
                        hist.push(
                            now,
                            Ev::JsRestored {
                                client,
                                snapshot_asked_ns,
                                last_seq,
                            },
                        );
                    } else {
                        let text = format!("restore: {answer}");
                        hist.push(now, Ev::JsError { client, text });
                    }
                    b.stage = Stage::Over;
                    return true;
                }
                if *sent > b.bytes.len() {
                    // The end was sent and answered with nothing.
                    b.stage = Stage::Over;
                    return true;
                }
                let to = to.clone().expect("the restore's subject is known");
                let rest = &b.bytes[*sent..];
                let piece = rest[..rest.len().min(PIECE_BYTES)].to_vec();
                // An empty piece (after the last) ends the restore.
                *sent += piece.len().max(1);
                request = Some((to, next_reply.clone(), piece));
                *r = next_reply;
            }
            _ => return false,
        }
        b.heard_ns = now;
        if let Some((subject, reply, body)) = request {
            self.record_publish(
                now,
                &subject,
                Some(reply),
                None,
                &body,
                &mut out.send,
                ids,
                hist,
            );
        }
        true
    }
}
