//! Configuration files: arbitrary bytes into the nats.conf parser (with
//! includes and environment variables that refer to themselves) and into the
//! TOML reader. Neither may panic or run away, parsing is deterministic, and
//! every error has a position.
#![no_main]

use libfuzzer_sys::fuzz_target;
use natrix_core::conf::{self, MemSource};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let source = MemSource::new()
        .file("self.conf", "include self.conf\n")
        .file("a.conf", "a = $A\ninclude b.conf\n")
        .file("b.conf", &text)
        .var("A", "[1, {b = $A}]")
        .var("B", &text);
    let first = conf::parse(&text, "f.conf", &source);
    let second = conf::parse(&text, "f.conf", &source);
    assert_eq!(first, second, "parsing is deterministic");
    if let Err(e) = &first {
        assert!(e.pos.line >= 1 && e.pos.column >= 1, "{e}");
    }
    if let Err(e) = conf::parse_toml(&text, "f.toml") {
        assert!(e.pos.line >= 1, "{e}");
    }
});
