use super::*;
use proptest::prelude::*;

fn sorted(mut v: Vec<u32>) -> Vec<u32> {
    v.sort_unstable();
    v
}

#[test]
fn literal_and_wildcards() {
    let mut sl = Sublist::default();
    sl.insert(b"foo.bar", None, 1).unwrap();
    sl.insert(b"foo.*", None, 2).unwrap();
    sl.insert(b"foo.>", None, 3).unwrap();
    sl.insert(b">", None, 4).unwrap();
    sl.insert(b"*.bar", None, 5).unwrap();
    assert_eq!(
        sorted(sl.matches(b"foo.bar").plain.clone()),
        vec![1, 2, 3, 4, 5]
    );
    assert_eq!(sorted(sl.matches(b"foo.baz.x").plain.clone()), vec![3, 4]);
    assert_eq!(sorted(sl.matches(b"foo").plain.clone()), vec![4]);
    assert!(sl.matches(b"foo..bar").is_empty());
    assert!(sl.matches(b"").is_empty());
    assert_eq!(
        sl.insert(b"foo.>.bar", None, 9),
        Err(InsertError::InvalidSubject)
    );
    assert_eq!(
        sl.insert(b"a..b", None, 9),
        Err(InsertError::InvalidSubject)
    );
    assert_eq!(sl.count(), 5);
}

#[test]
fn queue_groups_merge_across_nodes() {
    let mut sl = Sublist::default();
    sl.insert(b"foo.bar", Some(b"q"), 1).unwrap();
    sl.insert(b"foo.*", Some(b"q"), 2).unwrap();
    sl.insert(b"foo.*", Some(b"r"), 3).unwrap();
    let m = sl.matches(b"foo.bar");
    assert_eq!(m.queues.len(), 2);
    let q = m.queues.iter().find(|g| &*g.name == b"q").unwrap();
    assert_eq!(sorted(q.members.clone()), vec![1, 2]);
}

#[test]
fn cache_is_invalidated() {
    let mut sl = Sublist::default();
    sl.insert(b"a.b", None, 1).unwrap();
    assert_eq!(sl.matches(b"a.b").plain, vec![1]);
    assert_eq!(sl.cache_len(), 0, "a subject is cached on its second miss");
    assert_eq!(sl.matches(b"a.b").plain, vec![1]);
    assert_eq!(sl.cache_len(), 1);
    let g = sl.generation();
    sl.insert(b"a.*", None, 2).unwrap();
    assert_ne!(sl.generation(), g);
    assert_eq!(sorted(sl.matches(b"a.b").plain.clone()), vec![1, 2]);
    assert!(sl.remove(b"a.b", None, 1));
    assert_eq!(sl.matches(b"a.b").plain, vec![2]);
    assert!(!sl.remove(b"a.b", None, 1));
    assert!(sl.remove(b"a.*", None, 2));
    assert!(sl.matches(b"a.b").is_empty());
    assert_eq!(sl.count(), 0);
    assert!(sl.root.is_empty(), "empty nodes are pruned");
}

#[test]
fn cache_is_bounded() {
    let mut sl: Sublist<u32> = Sublist::default();
    sl.insert(b">", None, 1).unwrap();
    for i in 0..(CACHE_MAX * 3) {
        let s = format!("s.{i}");
        assert_eq!(sl.matches(s.as_bytes()).plain, vec![1]);
        assert!(sl.cache_len() <= CACHE_MAX);
    }
}

fn token() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(vec!["a", "b", "c", "foo"]).prop_map(String::from),
        1 => Just("*".to_string()),
        1 => Just(">".to_string()),
    ]
}

fn pattern() -> impl Strategy<Value = String> {
    prop::collection::vec(token(), 1..5).prop_map(|t| t.join("."))
}

fn literal() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(vec!["a", "b", "c", "foo", "*"]), 1..5)
        .prop_map(|t| t.join("."))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// The trie (with its cache, under inserts and removes) agrees with the
    /// naive matcher in `subject::matches`.
    #[test]
    fn agrees_with_naive_matcher(
        subs in prop::collection::vec((pattern(), prop::option::of(prop::sample::select(vec!["q1", "q2"]))), 0..40),
        removals in prop::collection::vec(any::<prop::sample::Index>(), 0..20),
        subjects in prop::collection::vec(literal(), 1..20),
    ) {
        let mut sl = Sublist::default();
        let mut live: Vec<(u32, String, Option<&str>)> = Vec::new();
        for (i, (p, q)) in subs.iter().enumerate() {
            let ok = sl.insert(p.as_bytes(), q.map(str::as_bytes), i as u32).is_ok();
            prop_assert_eq!(ok, subject::is_insertable(p.as_bytes()));
            if ok {
                live.push((i as u32, p.clone(), *q));
            }
            // Interleave matches so the cache is exercised across changes.
            let _ = sl.matches(subjects[i % subjects.len()].as_bytes());
        }
        for r in removals {
            if live.is_empty() { break; }
            let (h, p, q) = live.swap_remove(r.index(live.len()));
            prop_assert!(sl.remove(p.as_bytes(), q.map(str::as_bytes), h));
            let _ = sl.matches(subjects[0].as_bytes());
        }
        for s in &subjects {
            let m = sl.matches(s.as_bytes());
            let mut want_plain: Vec<u32> = live.iter().filter(|(_, p, q)| q.is_none() && subject::matches(p.as_bytes(), s.as_bytes())).map(|l| l.0).collect();
            want_plain.sort_unstable();
            prop_assert_eq!(sorted(m.plain.clone()), want_plain);
            for qn in ["q1", "q2"] {
                let mut want: Vec<u32> = live.iter().filter(|(_, p, q)| *q == Some(qn) && subject::matches(p.as_bytes(), s.as_bytes())).map(|l| l.0).collect();
                want.sort_unstable();
                let got = m.queues.iter().find(|g| &*g.name == qn.as_bytes()).map(|g| sorted(g.members.clone())).unwrap_or_default();
                prop_assert_eq!(got, want);
            }
        }
        prop_assert_eq!(sl.count(), live.len() as u64);
    }
}
