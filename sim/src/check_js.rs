//! The JetStream checkers: what the server acknowledged must be on disk.
//!
//! The truth is read from the simulated disk, not from the server: after
//! every power loss and at the end of the run (after one more power loss),
//! the world reads, through a fresh executor, the stream's message at every
//! acknowledged sequence ([`Snapshot`]). Every acknowledgement a client had
//! received by then must be there, at its sequence, byte for byte.

use std::collections::BTreeMap;

use natrix_storage::Msg;

use crate::history::{Entry, Ev, JsAck};

/// The stream's messages at the acknowledged sequences, read straight from
/// the simulated disk after a power loss.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub at_ns: u64,
    /// What happened just before it was read.
    pub after: &'static str,
    /// The message found at each acknowledged sequence (`None`: none).
    pub msgs: BTreeMap<u64, Option<Msg>>,
}

/// What the JetStream workload leaves for the checkers.
#[derive(Debug, Clone, Default)]
pub struct JsOutcome {
    /// The stream's storage key.
    pub key: String,
    pub snapshots: Vec<Snapshot>,
    /// Also check the invariants in [`PENDING`] (`--pending-checks`).
    pub pending_checks: bool,
    /// A client pulls from the stream's durable consumer (its checkers
    /// in `check_consumer` apply).
    pub pulls: bool,
    /// That consumer's `max_ack_pending` and `max_deliver`, when the seed
    /// set them (`check_limits`).
    pub max_ack_pending: Option<u64>,
    pub max_deliver: Option<u64>,
    /// The seed runs the work-queue workload (`check_streams`).
    pub work_queue: bool,
    /// The seed runs the key-value workload (`check_streams`).
    pub kv: bool,
    /// Stream `SR`'s storage key (the backup workload restores `S` as it),
    /// and what it held after each power loss once a restore was confirmed.
    pub restored_key: String,
    pub restored: Vec<Snapshot>,
}

/// Invariants the core is known not to keep yet: off unless asked for,
/// so that they show the bug (and its fix) without failing every run.
/// (None now: `dedupe-across-restarts` left this list when the core
/// learned to rebuild its duplicate window at start.)
pub const PENDING: [&str; 0] = [];

/// The acknowledgements of publishes to stream `S` in a history, with
/// when the client got them.
fn acks(entries: &[Entry]) -> impl Iterator<Item = (u64, &JsAck)> {
    stream_acks(entries, crate::client::JS_STREAM)
}

/// The acknowledgements of publishes to `stream`, with when the client
/// got them.
pub fn stream_acks<'a>(
    entries: &'a [Entry],
    stream: &'a str,
) -> impl Iterator<Item = (u64, &'a JsAck)> + 'a {
    entries.iter().filter_map(move |e| match &e.ev {
        Ev::JsAck(ack) if ack.stream == stream => Some((e.at_ns, &**ack)),
        _ => None,
    })
}

/// The sequences acknowledged so far (the world reads these back).
pub fn acked_seqs(entries: &[Entry]) -> Vec<u64> {
    let mut seqs: Vec<u64> = acks(entries).map(|(_, a)| a.seq).collect();
    seqs.sort_unstable();
    seqs.dedup();
    seqs
}

/// The value of the `Nats-Msg-Id` header in a message's headers.
fn msg_id_of(headers: &[u8]) -> Option<&str> {
    let text = std::str::from_utf8(headers).ok()?;
    text.split("\r\n")
        .find_map(|line| line.strip_prefix("Nats-Msg-Id:"))
        .map(str::trim)
}

/// `acked-durable` and `no-duplicate-acks` over the history and the
/// snapshots.
pub fn check(entries: &[Entry], js: &JsOutcome, bad: &mut impl FnMut(&'static str, String)) {
    // seq -> the first plain (not duplicate) ack of it.
    let mut first: BTreeMap<u64, &JsAck> = BTreeMap::new();
    for (_, ack) in acks(entries).filter(|(_, a)| !a.duplicate) {
        match first.get(&ack.seq) {
            Some(other) if (&other.headers, &other.payload) != (&ack.headers, &ack.payload) => bad(
                "no-duplicate-acks",
                format!(
                    "sequence {} was acknowledged for message {} and for message {}",
                    ack.seq, other.msg, ack.msg
                ),
            ),
            Some(_) => {}
            None => {
                first.insert(ack.seq, ack);
            }
        }
    }
    dedupe_across_restarts(entries, bad);
    for snap in &js.snapshots {
        for (_, ack) in acks(entries).filter(|(at_ns, _)| *at_ns <= snap.at_ns) {
            if let Some(detail) = missing(ack, snap) {
                bad("acked-durable", detail);
            }
        }
    }
}

/// A `Nats-Msg-Id` is stored once within the duplicate window (2 minutes,
/// longer than a run), restarts included: the duplicate window is rebuilt
/// from the stored messages when a stream is recovered.
fn dedupe_across_restarts(entries: &[Entry], bad: &mut impl FnMut(&'static str, String)) {
    let mut stored: BTreeMap<&str, &JsAck> = BTreeMap::new();
    for (_, ack) in acks(entries).filter(|(_, a)| !a.duplicate) {
        let Some(id) = ack.msg_id.as_deref() else {
            continue;
        };
        match stored.get(id) {
            Some(first) if first.seq != ack.seq => bad(
                "dedupe-across-restarts",
                format!(
                    "Nats-Msg-Id {id} was stored at sequence {} (message {}) and again at {} (message {})",
                    first.seq, first.msg, ack.seq, ack.msg
                ),
            ),
            Some(_) => {}
            None => {
                stored.insert(id, ack);
            }
        }
    }
}

/// How an acknowledged message is missing from a snapshot, if it is.
fn missing(ack: &JsAck, snap: &Snapshot) -> Option<String> {
    let (client, msg, seq) = (ack.client, ack.msg, ack.seq);
    let when = || format!("{} at {:.3} ms", snap.after, snap.at_ns as f64 / 1e6);
    let Some(Some(stored)) = snap.msgs.get(&seq) else {
        return Some(format!(
            "message {msg} of client {client}, acknowledged at sequence {seq}, is gone after {}",
            when()
        ));
    };
    let same = if ack.duplicate {
        // A duplicate's ack names the sequence of the first publish with
        // its Nats-Msg-Id: that one's bytes are stored there.
        ack.msg_id.is_some() && msg_id_of(&stored.headers) == ack.msg_id.as_deref()
    } else {
        stored.headers == ack.headers
            && stored.payload == ack.payload
            && stored.subject == ack.subject
    };
    (!same).then(|| {
        format!(
            "message {msg} of client {client}, acknowledged at sequence {seq}{}, is not what is stored there after {} ({} bytes of payload on {})",
            if ack.duplicate { " as a duplicate" } else { "" },
            when(),
            stored.payload.len(),
            stored.subject
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ack(seq: u64, msg: u64, payload: &[u8]) -> Entry {
        Entry {
            at_ns: 10,
            ev: Ev::JsAck(Box::new(JsAck {
                client: 0,
                msg,
                stream: "S".into(),
                seq,
                duplicate: false,
                subject: "js.1".into(),
                msg_id: None,
                headers: Vec::new(),
                payload: payload.to_vec(),
            })),
        }
    }

    fn stored(seq: u64, payload: &[u8]) -> Option<Msg> {
        Some(Msg {
            seq,
            ts_unix_nanos: 0,
            subject: "js.1".into(),
            headers: Vec::new(),
            payload: payload.to_vec(),
        })
    }

    fn run(entries: &[Entry], msgs: BTreeMap<u64, Option<Msg>>) -> Vec<&'static str> {
        let js = JsOutcome {
            pending_checks: true,
            key: "%24G.S".into(),
            snapshots: vec![Snapshot {
                at_ns: 20,
                after: "a power loss",
                msgs,
            }],
            ..JsOutcome::default()
        };
        let mut found = Vec::new();
        check(entries, &js, &mut |name, _| found.push(name));
        found
    }

    #[test]
    fn a_stored_ack_passes_and_a_lost_or_changed_one_fails() {
        let entries = [ack(1, 7, b"m7:"), ack(2, 8, b"m8:")];
        let all = BTreeMap::from([(1, stored(1, b"m7:")), (2, stored(2, b"m8:"))]);
        assert!(run(&entries, all).is_empty());
        let lost = BTreeMap::from([(1, stored(1, b"m7:")), (2, None)]);
        assert_eq!(run(&entries, lost), ["acked-durable"]);
        let other = BTreeMap::from([(1, stored(1, b"m7:")), (2, stored(2, b"m9:"))]);
        assert_eq!(run(&entries, other), ["acked-durable"]);
    }

    #[test]
    fn one_sequence_acknowledged_for_two_payloads_is_a_duplicate_ack() {
        let entries = [ack(1, 7, b"m7:"), ack(1, 8, b"m8:")];
        let msgs = BTreeMap::from([(1, stored(1, b"m7:"))]);
        assert_eq!(run(&entries, msgs), ["no-duplicate-acks", "acked-durable"]);
    }

    #[test]
    fn a_duplicate_ack_is_checked_by_its_msg_id() {
        let mut dup = ack(1, 8, b"m8:");
        if let Ev::JsAck(ack) = &mut dup.ev {
            ack.duplicate = true;
            ack.msg_id = Some("c0-1".into());
        }
        let mut first = stored(1, b"m7:").unwrap();
        first.headers = b"NATS/1.0\r\nNats-Msg-Id: c0-1\r\n\r\n".to_vec();
        assert!(run(&[dup.clone()], BTreeMap::from([(1, Some(first))])).is_empty());
        assert_eq!(
            run(&[dup], BTreeMap::from([(1, stored(1, b"m7:"))])),
            ["acked-durable"]
        );
    }

    #[test]
    fn one_msg_id_stored_twice_is_a_lost_duplicate_window() {
        let with_id = |seq, msg| {
            let mut e = ack(seq, msg, format!("m{msg}:").as_bytes());
            if let Ev::JsAck(a) = &mut e.ev {
                a.msg_id = Some("c0-1".into());
            }
            e
        };
        let entries = [with_id(1, 7), with_id(2, 8)];
        let msgs = BTreeMap::from([(1, stored(1, b"m7:")), (2, stored(2, b"m8:"))]);
        assert_eq!(run(&entries, msgs), ["dedupe-across-restarts"]);
    }
}
