//! Acknowledgements: what a client publishes to a delivery's
//! `$JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending>`
//! reply, and the advisories they raise.

use std::time::Duration;

use serde::Serialize;

use super::ConsumerId;
use crate::server::Server;
use crate::server::system::InternalMsg;

/// What an ack payload asks.
#[derive(Debug, PartialEq, Eq)]
enum AckKind {
    Ack,
    /// Redeliver, after this delay if given.
    Nak(Option<Duration>),
    /// Still working: the ack wait starts again.
    Progress,
    /// Ack, and send the next messages to the ack's reply (pull).
    Next(Vec<u8>),
    /// Never redeliver.
    Term(String),
}

fn parse_ack(body: &[u8]) -> Option<AckKind> {
    let b = body.trim_ascii();
    if b.is_empty() || b == b"+ACK" || b == b"+OK" {
        return Some(AckKind::Ack);
    }
    if let Some(rest) = b.strip_prefix(b"-NAK") {
        let rest = rest.trim_ascii();
        if rest.is_empty() {
            return Some(AckKind::Nak(None));
        }
        #[derive(serde::Deserialize)]
        struct Delay {
            delay: i64,
        }
        if let Ok(d) = serde_json::from_slice::<Delay>(rest) {
            return Some(AckKind::Nak(Some(Duration::from_nanos(
                d.delay.max(0) as u64
            ))));
        }
        let text = String::from_utf8_lossy(rest);
        let delay = crate::conf::parse_go_duration(&text).ok();
        return Some(AckKind::Nak(
            delay.map(|ns| Duration::from_nanos(ns.max(0) as u64)),
        ));
    }
    if b == b"+WPI" {
        return Some(AckKind::Progress);
    }
    if let Some(rest) = b.strip_prefix(b"+NXT") {
        return Some(AckKind::Next(rest.trim_ascii().to_vec()));
    }
    if let Some(rest) = b.strip_prefix(b"+TERM") {
        return Some(AckKind::Term(
            String::from_utf8_lossy(rest.trim_ascii()).into_owned(),
        ));
    }
    None
}

/// The stream sequence and delivery count in an ack subject.
fn ack_seqs(subject: &[u8]) -> Option<(u64, u64)> {
    // v1: $JS.ACK.<stream>.<consumer>.<dc>.<sseq>.<cseq>.<ts>.<pending>;
    // counted from the end, so a v2 subject with a domain and account
    // hash reads the same.
    if memchr::memchr_iter(b'.', subject).count() < 8 {
        return None;
    }
    let number = |t: &[u8]| std::str::from_utf8(t).ok()?.parse::<u64>().ok();
    let mut back = subject.rsplit(|&b| b == b'.').skip(3);
    let sseq = number(back.next()?)?;
    let dc = number(back.next()?)?;
    Some((sseq, dc))
}

impl Server {
    /// An acknowledgement for consumer `id`.
    pub(crate) fn consumer_ack(&mut self, id: ConsumerId, m: &InternalMsg) {
        if self.jetstream.consumers.get(id as usize).is_none() {
            return;
        }
        let (Some((seq, _)), Some(kind)) = (ack_seqs(&m.subject), parse_ack(m.body())) else {
            // What nats-server does not understand it still answers.
            self.ack_reply(m);
            return;
        };
        let now = self.now.instant;
        // A message a partitioned group has not delivered yet takes no
        // ack: it is delivered in its turn.
        let c = &self.jetstream.consumers[id as usize];
        if c.pending.get(&seq).is_some_and(|o| o.deliveries == 0) {
            self.ack_reply(m);
            return;
        }
        // Planted bug (mutation suite only): an ack leaves its message pending.
        let keep_pending = self.planted(crate::config::PlantedBug::RedeliverAcked);
        let c = &mut self.jetstream.consumers[id as usize];
        c.last_activity = now;
        c.last_ack_unix_nanos = self.now.unix_nanos;
        match kind {
            AckKind::Ack | AckKind::Next(_) => {
                let acked: Vec<u64> = if c.is_ack_all() {
                    let seqs: Vec<u64> = c.pending.range(..=seq).map(|(&s, _)| s).collect();
                    for s in &seqs {
                        c.unpend(*s);
                        c.redeliver.remove(s);
                    }
                    seqs
                } else {
                    c.redeliver.remove(&seq);
                    if keep_pending {
                        Vec::new()
                    } else {
                        c.unpend(seq).map(|_| seq).into_iter().collect()
                    }
                };
                if !acked.is_empty() {
                    for &s in &acked {
                        c.deadlines.clear(s);
                    }
                    c.update_ack_floor();
                    self.retention_acked(id, &acked);
                }
                if let AckKind::Next(body) = &kind
                    && let Some(reply) = &m.reply
                {
                    let reply = reply.clone();
                    let body = body.clone();
                    self.pull_request(id, &reply, &body, m.from);
                } else if let Some(reply) = &m.reply {
                    // A double ack: answered once the ack is durable. Not
                    // for a message this consumer has not delivered (its
                    // delivery died with a crash before it was saved): the
                    // ack changes nothing, and the message comes again.
                    let c = &mut self.jetstream.consumers[id as usize];
                    if seq <= c.delivered.stream_seq {
                        c.ack_replies.push(reply.clone());
                        self.consumer_changed(id);
                    }
                }
                // A plain ack promises the client nothing: it is saved
                // within a second (a crash before that delivers the
                // message again, at least once).
                self.consumer_progressed(id);
            }
            AckKind::Nak(delay) => {
                if let Some(o) = c.pending.get(&seq).copied() {
                    c.deadlines.clear(seq);
                    let last =
                        c.config.max_deliver > 0 && o.deliveries >= c.config.max_deliver as u64;
                    match delay {
                        Some(d) if !d.is_zero() => {
                            c.deadlines.set(seq, now + d);
                        }
                        // Its last delivery: the timer drops it now, as
                        // after its ack wait, instead of a redelivery.
                        _ if last => c.deadlines.set(seq, now),
                        _ => {
                            c.redeliver.insert(seq);
                        }
                    }
                    let _ = o;
                }
                self.ack_reply(m);
            }
            AckKind::Progress => {
                if c.pending.contains_key(&seq) {
                    let wait = c.ack_wait();
                    c.deadlines.set(seq, now + wait);
                }
                self.ack_reply(m);
            }
            AckKind::Term(reason) => {
                let deliveries = c.pending.get(&seq).map(|o| o.deliveries);
                c.redeliver.remove(&seq);
                if c.unpend(seq).is_some() {
                    c.deadlines.clear(seq);
                    c.update_ack_floor();
                    self.consumer_progressed(id);
                }
                if let Some(deliveries) = deliveries {
                    self.terminated_advisory(id, seq, deliveries, &reason);
                }
                self.ack_reply(m);
            }
        }
        self.kick_consumer(id);
        self.arm_consumer(id);
    }

    /// Answers an ack that has a reply and changes nothing durable.
    fn ack_reply(&mut self, m: &InternalMsg) {
        if let Some(reply) = &m.reply {
            let reply = reply.clone();
            self.publish_as_server(m.account, &reply, None, b"");
        }
    }

    /// `$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.<s>.<c>`.
    pub(crate) fn max_deliveries_advisory(&mut self, id: ConsumerId, seq: u64, deliveries: u64) {
        let c = &self.jetstream.consumers[id as usize];
        let (account, stream, consumer) = (c.account, c.stream_name.clone(), c.name.clone());
        let subject = format!("$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.{stream}.{consumer}");
        #[derive(Serialize)]
        struct MaxDeliver<'a> {
            stream: &'a str,
            consumer: &'a str,
            stream_seq: u64,
            deliveries: u64,
        }
        let body = MaxDeliver {
            stream: &stream,
            consumer: &consumer,
            stream_seq: seq,
            deliveries,
        };
        self.advise(account, &subject, "max_deliver", body);
    }

    /// `$JS.EVENT.ADVISORY.CONSUMER.MSG_TERMINATED.<s>.<c>`.
    fn terminated_advisory(&mut self, id: ConsumerId, seq: u64, deliveries: u64, reason: &str) {
        let c = &self.jetstream.consumers[id as usize];
        let (account, stream, consumer) = (c.account, c.stream_name.clone(), c.name.clone());
        let cseq = c.delivered.consumer_seq;
        let subject = format!("$JS.EVENT.ADVISORY.CONSUMER.MSG_TERMINATED.{stream}.{consumer}");
        #[derive(Serialize)]
        struct Terminated<'a> {
            stream: &'a str,
            consumer: &'a str,
            consumer_seq: u64,
            stream_seq: u64,
            deliveries: u64,
            #[serde(skip_serializing_if = "str::is_empty")]
            reason: &'a str,
        }
        let body = Terminated {
            stream: &stream,
            consumer: &consumer,
            consumer_seq: cseq,
            stream_seq: seq,
            deliveries,
            reason,
        };
        self.advise(account, &subject, "terminated", body);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ack_payloads_parse_as_nats_server_reads_them() {
        assert_eq!(parse_ack(b""), Some(AckKind::Ack));
        assert_eq!(parse_ack(b"+ACK"), Some(AckKind::Ack));
        assert_eq!(parse_ack(b"-NAK"), Some(AckKind::Nak(None)));
        assert_eq!(
            parse_ack(br#"-NAK {"delay":2000000000}"#),
            Some(AckKind::Nak(Some(Duration::from_secs(2))))
        );
        assert_eq!(parse_ack(b"+WPI"), Some(AckKind::Progress));
        assert_eq!(parse_ack(b"+TERM bad"), Some(AckKind::Term("bad".into())));
        assert_eq!(parse_ack(b"+NXT 5"), Some(AckKind::Next(b"5".to_vec())));
        assert_eq!(parse_ack(b"what"), None);
        assert_eq!(
            ack_seqs(b"$JS.ACK.S.C.2.7.9.1795292858614453372.0"),
            Some((7, 2))
        );
        assert_eq!(ack_seqs(b"$JS.ACK.S.C.2.7"), None);
    }
}
