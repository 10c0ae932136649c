//! One suite, three stores: the memory store, the file store over the
//! simulated disk, and the file store over the real filesystem.

#![allow(clippy::disallowed_methods)] // temp dirs for the real-disk store

use crate::common;

use common::{dump, msg};
use natrix_storage::{FileStore, MemStore, Purge, SimDisk, Store, StoreError, StreamConfig};

type Make = dyn FnMut(StreamConfig) -> Box<dyn Store>;

fn mem() -> Box<Make> {
    Box::new(|c| Box::new(MemStore::new(c)))
}

fn sim() -> Box<Make> {
    let disk = SimDisk::with_seed(1);
    let mut n = 0;
    Box::new(move |c| {
        n += 1;
        Box::new(
            FileStore::open(disk.clone(), &format!("s{n}"), c)
                .unwrap()
                .0,
        )
    })
}

#[cfg(feature = "fs")]
fn real(test: &str) -> Box<Make> {
    let root = std::env::temp_dir().join(format!(
        "natrix-storage-suite-{}-{test}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&root);
    let mut n = 0;
    Box::new(move |c| {
        n += 1;
        Box::new(
            FileStore::open(
                natrix_storage::FsDisk::new(root.clone()),
                &format!("s{n}"),
                c,
            )
            .unwrap()
            .0,
        )
    })
}

fn small() -> StreamConfig {
    StreamConfig {
        block_size_bytes: 512,
        ..StreamConfig::default()
    }
}

fn fill(store: &mut dyn Store, subjects: &[&str], count: u64) {
    let first = store.state().last_seq + 1;
    let msgs: Vec<_> = (first..first + count)
        .map(|seq| msg(seq, subjects[(seq as usize) % subjects.len()], 20))
        .collect();
    for m in msgs {
        store.append(std::slice::from_ref(&m)).unwrap();
    }
}

fn append_read_and_state(make: &mut Make) {
    let mut s = make(small());
    let batch: Vec<_> = (1..=30).map(|seq| msg(seq, "a.b", 40)).collect();
    let done = s.append(&batch).unwrap();
    assert_eq!(done.last_seq, 30);
    let st = s.state();
    assert_eq!(
        (st.msgs, st.first_seq, st.last_seq, st.num_subjects),
        (30, 1, 30, 1)
    );
    assert_eq!(st.bytes, batch.iter().map(|m| m.size_bytes()).sum::<u64>());
    for m in &batch {
        assert_eq!(s.get(m.seq).unwrap().as_ref(), Some(m));
    }
    assert_eq!(s.get(31).unwrap(), None);
    assert_eq!(s.get(0).unwrap(), None);
    assert_eq!(s.sync().unwrap(), 30);
    assert_eq!(s.durable_seq(), 30);
}

fn refuses_sequences_that_do_not_grow(make: &mut Make) {
    let mut s = make(small());
    s.append(&[msg(5, "a", 1)]).unwrap();
    assert_eq!(
        s.append(&[msg(5, "a", 1)]),
        Err(StoreError::SeqNotAfter {
            seq: 5,
            last_seq: 5
        })
    );
    assert_eq!(
        s.append(&[msg(7, "a", 1), msg(6, "a", 1)]),
        Err(StoreError::SeqNotAfter {
            seq: 6,
            last_seq: 7
        })
    );
    assert!(matches!(
        s.append(&[msg(8, "", 1)]),
        Err(StoreError::Invalid(_))
    ));
    assert_eq!(s.state().last_seq, 5, "a refused batch stores nothing");
    s.append(&[msg(9, "a", 1)]).unwrap();
    assert_eq!(s.state().msgs, 2);
}

fn subjects_and_last_by_subject(make: &mut Make) {
    let mut s = make(small());
    fill(&mut *s, &["kv.a", "kv.b", "kv.a", "other"], 12);
    let a = s.subject_state("kv.a").unwrap();
    assert_eq!((a.msgs, a.first_seq, a.last_seq), (6, 2, 12));
    assert_eq!(s.last_by_subject("kv.b").unwrap().unwrap().seq, 9);
    assert_eq!(s.last_by_subject("nope").unwrap(), None);
    assert_eq!(s.last_by_subject("kv.*").unwrap().unwrap().seq, 12);
    assert!(s.delete(12).unwrap());
    assert_eq!(s.last_by_subject("kv.a").unwrap().unwrap().seq, 10);
    // A wildcard: the newest message on any matching subject.
    assert_eq!(s.last_by_subject("kv.*").unwrap().unwrap().seq, 10);
    assert_eq!(s.last_by_subject(">").unwrap().unwrap().seq, 11);
    assert_eq!(s.last_by_subject("nope.*").unwrap(), None);
    assert_eq!(s.next_matching(1, Some("kv.*")).unwrap().unwrap().seq, 1);
    assert_eq!(s.next_matching(4, Some("other")).unwrap().unwrap().seq, 7);
    assert_eq!(s.next_matching(12, Some("kv.>")).unwrap(), None);
    let both = ["kv.b".to_string(), "other".to_string()];
    assert_eq!(s.next_matching_any(4, &both).unwrap().unwrap().seq, 5);
    assert_eq!(s.count_matching_any(4, &both), 4);
    assert_eq!(
        s.count_matching_any(1, &["kv.*".to_string(), "kv.a".to_string()]),
        8
    );
}

fn deletes_leave_gaps(make: &mut Make) {
    let mut s = make(small());
    fill(&mut *s, &["a"], 10);
    assert!(s.delete(1).unwrap());
    assert!(!s.delete(1).unwrap());
    assert!(s.delete(5).unwrap());
    assert!(!s.delete(99).unwrap());
    let st = s.state();
    assert_eq!((st.msgs, st.first_seq, st.last_seq), (8, 2, 10));
    assert_eq!(s.get(5).unwrap(), None);
    assert_eq!(s.next_matching(5, None).unwrap().unwrap().seq, 6);
    // Counts are exact across the gaps and without them.
    assert_eq!(s.count_matching_from(1, None), 8);
    assert_eq!(s.count_matching_from(6, None), 5);
    assert!(s.delete(2).unwrap() && s.delete(3).unwrap() && s.delete(4).unwrap());
    assert_eq!(s.count_matching_from(1, None), 5, "6..=10, no gap left");
    assert_eq!(s.count_matching_from(8, None), 3);
    assert_eq!(s.count_matching_from(11, None), 0);
}

fn purges(make: &mut Make) {
    let mut s = make(small());
    fill(&mut *s, &["a", "b"], 20);
    assert_eq!(
        s.purge(&Purge {
            filter: Some("a".into()),
            keep: Some(2),
            ..Purge::default()
        })
        .unwrap(),
        8
    );
    assert_eq!(s.subject_state("a").unwrap().msgs, 2);
    assert_eq!(
        s.purge(&Purge {
            filter: Some("b".into()),
            below_seq: Some(10),
            ..Purge::default()
        })
        .unwrap(),
        5
    );
    assert_eq!(
        s.purge(&Purge {
            keep: Some(3),
            ..Purge::default()
        })
        .unwrap(),
        4
    );
    assert_eq!(s.state().msgs, 3);
    assert!(matches!(
        s.purge(&Purge {
            keep: Some(1),
            below_seq: Some(1),
            ..Purge::default()
        }),
        Err(StoreError::Invalid(_))
    ));
    assert_eq!(s.purge(&Purge::default()).unwrap(), 3);
    let st = s.state();
    assert_eq!((st.msgs, st.first_seq, st.last_seq), (0, 21, 20));
    // Purging below a sequence past the end moves the stream forward.
    assert_eq!(
        s.purge(&Purge {
            below_seq: Some(100),
            ..Purge::default()
        })
        .unwrap(),
        0
    );
    let st = s.state();
    assert_eq!((st.first_seq, st.last_seq), (100, 99));
    s.append(&[msg(100, "a", 1)]).unwrap();
    assert_eq!(s.state().first_seq, 100);
}

fn limits(make: &mut Make) {
    let mut s = make(StreamConfig {
        max_msgs: Some(5),
        ..small()
    });
    fill(&mut *s, &["a"], 12);
    let st = s.state();
    assert_eq!((st.msgs, st.first_seq, st.last_seq), (5, 8, 12));

    let mut s = make(StreamConfig {
        max_msgs_per_subject: Some(2),
        ..small()
    });
    fill(&mut *s, &["a", "b", "c"], 12);
    assert_eq!(s.state().msgs, 6);
    assert_eq!(s.subject_state("a").unwrap().first_seq, 9);

    let size = msg(1, "a", 20).size_bytes();
    let mut s = make(StreamConfig {
        max_bytes: Some(size * 3 + 20),
        ..small()
    });
    fill(&mut *s, &["a"], 10);
    assert_eq!(s.state().msgs, 3);
    assert!(
        s.state().bytes <= size * 3 + 20,
        "seq 9 carries 18 bytes of headers"
    );

    let mut s = make(StreamConfig {
        max_age_ms: Some(5),
        ..small()
    });
    fill(&mut *s, &["a"], 10); // ts = seq ms
    assert_eq!(s.expire(6_000_000).unwrap(), 1);
    assert_eq!(s.expire(9_500_000).unwrap(), 3);
    assert_eq!(s.state().first_seq, 5);
}

fn truncate_then_reuse(make: &mut Make) {
    let mut s = make(small());
    fill(&mut *s, &["a", "b"], 10);
    s.delete(4).unwrap();
    assert_eq!(s.truncate(6).unwrap(), 4);
    assert_eq!(s.truncate(6).unwrap(), 0);
    let st = s.state();
    assert_eq!((st.msgs, st.last_seq), (5, 6));
    s.append(&[msg(7, "c", 3)]).unwrap();
    assert_eq!(s.get(7).unwrap().unwrap().subject, "c");
    assert_eq!(s.subject_state("a").unwrap().last_seq, 6);
}

fn compaction_keeps_everything_live(make: &mut Make) {
    let mut s = make(small());
    fill(&mut *s, &["a", "b", "c"], 60);
    for seq in (1..=50).filter(|s| s % 4 != 0) {
        s.delete(seq).unwrap();
    }
    let before = dump(&mut *s);
    s.compact().unwrap();
    assert_eq!(dump(&mut *s), before);
    fill(&mut *s, &["a"], 5);
    s.compact().unwrap();
    assert_eq!(s.state().msgs, before.state.msgs + 5);
}

macro_rules! suite {
    ($($case:ident),* $(,)?) => {
        mod mem_store { use super::*; $( #[test] fn $case() { super::$case(&mut *mem()); } )* }
        mod file_store_sim { use super::*; $( #[test] fn $case() { super::$case(&mut *sim()); } )* }
        #[cfg(feature = "fs")]
        mod file_store_real { use super::*; $( #[test] fn $case() { super::$case(&mut *real(stringify!($case))); } )* }
    };
}

suite!(
    append_read_and_state,
    refuses_sequences_that_do_not_grow,
    subjects_and_last_by_subject,
    deletes_leave_gaps,
    purges,
    limits,
    truncate_then_reuse,
    compaction_keeps_everything_live,
);

#[test]
fn file_store_compaction_gives_back_space() {
    let disk = SimDisk::with_seed(3);
    let (mut s, _) = FileStore::open(disk.clone(), "c", small()).unwrap();
    fill(&mut s, &["a"], 200);
    let blocks = s.block_count();
    s.purge(&Purge {
        below_seq: Some(150),
        ..Purge::default()
    })
    .unwrap();
    for seq in (150..190).filter(|s| s % 2 == 0) {
        s.delete(seq).unwrap();
    }
    let before = dump(&mut s);
    let reclaimed = s.compact().unwrap();
    assert!(
        reclaimed > 0 && s.block_count() < blocks,
        "{reclaimed} bytes, {} of {blocks} blocks",
        s.block_count()
    );
    assert_eq!(dump(&mut s), before);
    drop(s);
    let (mut s, report) = FileStore::open(disk, "c", small()).unwrap();
    assert_eq!(dump(&mut s), before, "{report:?}");
}
