//! natrix-core stays pure: no async runtime, no sockets, no files in its
//! source, and the clippy bans on clocks, OS randomness, threads and
//! OS-seeded hash maps stay in place.

use std::path::Path;

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn core_source_has_no_io() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    assert!(files.len() > 5, "found the sources");
    let forbidden = [
        "tokio",
        "std::net",
        "std::fs",
        "std::thread",
        "std::process",
        "std::env",
    ];
    let mut hits = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            for word in forbidden {
                if code.contains(word) {
                    hits.push(format!("{}:{}: {word}", f.display(), n + 1));
                }
            }
        }
    }
    assert!(
        hits.is_empty(),
        "natrix-core must stay pure:\n{}",
        hits.join("\n")
    );
}

#[test]
fn clippy_bans_are_in_place() {
    let toml =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("clippy.toml")).unwrap();
    for banned in [
        "std::time::Instant::now",
        "std::time::SystemTime::now",
        "std::thread::spawn",
        "std::collections::HashMap",
        "std::collections::HashSet",
        "nkeys::KeyPair::new_server",
    ] {
        assert!(toml.contains(banned), "core/clippy.toml bans {banned}");
    }
    let manifest =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml"))
            .unwrap();
    assert!(manifest.contains("disallowed_methods = \"deny\""));
    assert!(manifest.contains("disallowed_types = \"deny\""));
    let core_manifest =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml")).unwrap();
    assert!(
        !core_manifest.contains("tokio"),
        "natrix-core does not depend on tokio"
    );
}
