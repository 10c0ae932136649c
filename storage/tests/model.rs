//! Property tests: random operation sequences run on the file store (over
//! the simulated disk) and on the memory store, which is the model. They
//! must agree after every operation, after a clean reopen exactly, and
//! after a crash on some state no older than the last sync.

use crate::common;

use common::{Op, apply, dump, model_steps, open_sim, small_blocks, strategy};
use natrix_storage::{MemStore, SimDisk};
use proptest::prelude::*;

fn run(ops: &[Op], limits: bool, crash: bool, seed: u64) -> Result<(), TestCaseError> {
    let config = small_blocks(limits);
    let disk = SimDisk::with_seed(seed);
    let (mut store, _) = open_sim(&disk, &config);
    let mut model = MemStore::new(config.clone());
    let mut states = vec![dump(&mut model)];
    let mut durable = 0;
    for op in ops {
        let result = apply(&mut store, op);
        states.extend(model_steps(&mut model, op));
        prop_assert!(result.is_ok(), "{:?} failed: {:?}", op, result);
        if matches!(op, Op::Sync) {
            durable = states.len() - 1;
        }
        prop_assert_eq!(dump(&mut store), dump(&mut model), "after {:?}", op);
    }
    drop(store);
    if crash {
        disk.crash();
    }
    let (mut reopened, report) = open_sim(&disk, &config);
    prop_assert!(report.corruption.is_empty(), "{:?}", report);
    let got = dump(&mut reopened);
    if crash {
        prop_assert!(
            states[durable..].contains(&got),
            "crash recovered to {}",
            got.summary()
        );
    } else {
        prop_assert!(report.torn_tail.is_none());
        // Every sealed block's index, built as it was written, was believed.
        prop_assert!(report.indexes_rebuilt.is_empty(), "{:?}", report);
        prop_assert_eq!(got, dump(&mut model));
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn file_store_matches_the_model(ops in proptest::collection::vec(strategy::op(), 1..60), limits: bool) {
        run(&ops, limits, false, 0)?;
    }

    #[test]
    fn file_store_recovers_a_state_no_older_than_the_last_sync(
        ops in proptest::collection::vec(strategy::op(), 1..60),
        limits: bool,
        seed: u64,
    ) {
        run(&ops, limits, true, seed)?;
    }
}
