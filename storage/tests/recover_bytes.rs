//! Recovery from arbitrary bytes (the fuzz target's check, run here on
//! every `cargo test`).

use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn recovery_from_any_bytes_never_panics_or_serves_garbage(data in proptest::collection::vec(any::<u8>(), 0..1500)) {
        let _ = natrix_storage::fuzzing::recover_from_bytes(&data);
    }
}

#[test]
fn recovery_from_mutated_valid_stores() {
    let mut rng = natrix_storage::rng::SplitMix64::new(99);
    let (mut corrupt, mut torn, mut rebuilt) = (0, 0, 0);
    for _ in 0..3000 {
        let len = rng.below(40) as usize;
        let mut data: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
        if let Some(first) = data.first_mut() {
            *first |= 1;
        }
        if let Some(report) = natrix_storage::fuzzing::recover_from_bytes(&data) {
            corrupt += usize::from(!report.corruption.is_empty());
            torn += usize::from(report.torn_tail.is_some());
            rebuilt += usize::from(!report.indexes_rebuilt.is_empty());
        }
    }
    // The mutations reach every recovery path.
    assert!(
        corrupt > 100 && torn > 100 && rebuilt > 20,
        "{corrupt} corrupt, {torn} torn, {rebuilt} rebuilt"
    );
}
