//! Recovery of a natrix file store from arbitrary bytes: opening never
//! panics, nothing served fails its checksum, and recovering what recovery
//! left changes nothing (see natrix_storage::fuzzing).

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    natrix_storage::fuzzing::recover_from_bytes(data);
});
