//! Subjects and the sublist against the naive matcher: inserts, removes and
//! matches (wildcards and queue groups) agree with `subject::matches`, and
//! validation agrees with the sublist's own acceptance.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use natrix_core::subject;
use natrix_core::sublist::Sublist;

#[derive(Arbitrary, Debug)]
enum Step {
    Insert { pattern: Vec<u8>, queue: Option<bool> },
    Remove { index: u8 },
    Match { subject: Vec<u8> },
}

/// Keeps generated subjects small and token-shaped.
fn shape(raw: &[u8]) -> Vec<u8> {
    raw.iter()
        .take(12)
        .map(|b| match b % 8 {
            0 => b'.',
            1 => b'*',
            2 => b'>',
            3 => b'a',
            4 => b'b',
            5 => b'c',
            6 => b' ',
            _ => b'd',
        })
        .collect()
}

fuzz_target!(|steps: Vec<Step>| {
    let mut sl: Sublist<u32> = Sublist::new(true);
    let mut live: Vec<(u32, Vec<u8>, Option<&'static [u8]>)> = Vec::new();
    let mut next = 0u32;
    for step in steps.into_iter().take(64) {
        match step {
            Step::Insert { pattern, queue } => {
                let p = shape(&pattern);
                let q: Option<&'static [u8]> = queue.map(|b| if b { &b"q1"[..] } else { b"q2" });
                let ok = sl.insert(&p, q, next).is_ok();
                assert_eq!(ok, subject::is_insertable(&p));
                if subject::is_valid_subject(&p) {
                    assert!(ok, "a valid subject is insertable");
                }
                if ok {
                    live.push((next, p, q));
                }
                next += 1;
            }
            Step::Remove { index } => {
                if !live.is_empty() {
                    let (h, p, q) = live.swap_remove(usize::from(index) % live.len());
                    assert!(sl.remove(&p, q, h));
                    assert!(!sl.remove(&p, q, h));
                }
            }
            Step::Match { subject: raw } => {
                let s = shape(&raw);
                let m = sl.matches(&s);
                let mut got = m.plain.clone();
                got.sort_unstable();
                let mut want: Vec<u32> = live
                    .iter()
                    .filter(|(_, p, q)| q.is_none() && subject::matches(p, &s))
                    .map(|l| l.0)
                    .collect();
                want.sort_unstable();
                assert_eq!(got, want, "plain matches for {:?}", String::from_utf8_lossy(&s));
                for qn in [&b"q1"[..], b"q2"] {
                    let mut got: Vec<u32> = m.queues.iter().find(|g| &*g.name == qn).map(|g| g.members.clone()).unwrap_or_default();
                    got.sort_unstable();
                    let mut want: Vec<u32> = live
                        .iter()
                        .filter(|(_, p, q)| *q == Some(qn) && subject::matches(p, &s))
                        .map(|l| l.0)
                        .collect();
                    want.sort_unstable();
                    assert_eq!(got, want);
                }
            }
        }
        assert_eq!(sl.count(), live.len() as u64);
    }
});
