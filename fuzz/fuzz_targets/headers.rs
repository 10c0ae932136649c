//! Arbitrary bytes into the header block parser: never a panic, and every
//! block it accepts encodes back to a block that parses to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use natrix_core::proto::Headers;

fuzz_target!(|data: &[u8]| {
    if let Ok(h) = Headers::parse(data) {
        let mut again = Vec::new();
        h.encode_into(&mut again);
        assert_eq!(Headers::parse(&again).as_ref(), Ok(&h));
    }
});
