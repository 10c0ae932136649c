//! The backup checker, `restore-faithful`: a restore the server confirmed
//! holds, at every sequence of stream `S` acknowledged before its snapshot
//! was asked for, that very message (subject, headers and payload), and
//! keeps it across every later power loss. Read from the simulated disk
//! like `acked-durable`'s reads ([`Snapshot`]s of stream `SR`).

use crate::check_js::{JsOutcome, stream_acks};
use crate::history::{Entry, Ev};

pub fn check(entries: &[Entry], js: &JsOutcome, bad: &mut impl FnMut(&'static str, String)) {
    let restores = entries.iter().filter_map(|e| match e.ev {
        Ev::JsRestored {
            snapshot_asked_ns,
            last_seq,
            ..
        } => Some((e.at_ns, snapshot_asked_ns, last_seq)),
        _ => None,
    });
    for (restored_ns, asked_ns, last_seq) in restores {
        let acked: Vec<_> = stream_acks(entries, crate::client::JS_STREAM)
            .filter(|(at, a)| *at <= asked_ns && !a.duplicate && a.seq <= last_seq)
            .collect();
        for read in js.restored.iter().filter(|r| r.at_ns >= restored_ns) {
            for (_, ack) in &acked {
                let found = read.msgs.get(&ack.seq).cloned().flatten();
                let same = found.as_ref().is_some_and(|m| {
                    (&m.subject, &m.headers, &m.payload)
                        == (&ack.subject, &ack.headers, &ack.payload)
                });
                if !same {
                    bad(
                        "restore-faithful",
                        format!(
                            "sequence {} (message {}, acknowledged before the snapshot) after {}: the restore holds {}",
                            ack.seq,
                            ack.msg,
                            read.after,
                            match found {
                                Some(m) => format!("another message on {}", m.subject),
                                None => "nothing".into(),
                            }
                        ),
                    );
                    break;
                }
            }
        }
    }
}
