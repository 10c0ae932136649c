//! Subject mappings: any source and destination either build a transform or
//! are refused with an error, never a panic; a built mapping applied to any
//! literal subject it matches yields a non-empty subject without empty
//! tokens' worth of crashes, and the same roll always picks the same result.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use natrix_core::mapping::{MapDest, Mapped, Mapping, Mappings};

#[derive(Arbitrary, Debug)]
struct Input {
    src: String,
    dests: Vec<(String, u8)>,
    subjects: Vec<String>,
    roll: u8,
}

fuzz_target!(|input: Input| {
    let dests: Vec<MapDest> = input
        .dests
        .into_iter()
        .take(4)
        .map(|(subject, weight)| MapDest { subject, weight })
        .collect();
    let Ok(m) = Mapping::new(&input.src, &dests) else {
        return;
    };
    let mut ms = Mappings::default();
    ms.add(m);
    let roll = input.roll % 100;
    for s in input.subjects.iter().take(8) {
        let first = ms.map(s.as_bytes(), || roll);
        let again = ms.map(s.as_bytes(), || roll);
        assert_eq!(first, again, "a mapping is a function of subject and roll");
        if let Mapped::To(out) = first {
            assert!(!out.is_empty() || s.is_empty());
        }
    }
});
