//! natrix-storage stays simulable: no async runtime, sockets, threads,
//! processes or environment in its source, `std::fs` in one module only,
//! and the clippy bans stay in place.

#![allow(clippy::disallowed_methods)] // the test reads the sources

use std::path::{Path, PathBuf};

const REAL_DISK_MODULE: &str = "src/disk/fs.rs";

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
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
fn storage_source_has_no_io_outside_the_real_disk() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    rust_files(&root.join("src"), &mut files);
    assert!(files.len() > 10, "found the sources");
    let everywhere = [
        "tokio",
        "std::net",
        "std::thread",
        "std::process",
        "std::env",
        "Instant::now",
        "SystemTime",
    ];
    let mut hits = Vec::new();
    for f in &files {
        let real_disk = f.ends_with(REAL_DISK_MODULE);
        let text = std::fs::read_to_string(f).unwrap();
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            for word in everywhere {
                if code.contains(word) {
                    hits.push(format!("{}:{}: {word}", f.display(), n + 1));
                }
            }
            if !real_disk && (code.contains("std::fs") || code.contains("std::os")) {
                hits.push(format!(
                    "{}:{}: std::fs outside {REAL_DISK_MODULE}",
                    f.display(),
                    n + 1
                ));
            }
        }
    }
    assert!(
        hits.is_empty(),
        "natrix-storage must stay simulable:\n{}",
        hits.join("\n")
    );
    let real = std::fs::read_to_string(root.join(REAL_DISK_MODULE)).unwrap();
    assert!(
        real.contains("std::fs"),
        "the real disk module is where it is said to be"
    );
}

#[test]
fn clippy_bans_are_in_place() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let toml = std::fs::read_to_string(root.join("clippy.toml")).unwrap();
    for banned in [
        "std::time::Instant::now",
        "std::time::SystemTime::now",
        "std::thread::spawn",
        "std::collections::HashMap",
        "std::collections::HashSet",
        "std::fs::File",
        "std::fs::OpenOptions",
    ] {
        assert!(toml.contains(banned), "storage/clippy.toml bans {banned}");
    }
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
    assert!(manifest.contains("[lints]") && manifest.contains("workspace = true"));
    assert!(
        !manifest.contains("tokio"),
        "natrix-storage does not depend on tokio"
    );
    let workspace = std::fs::read_to_string(root.join("../Cargo.toml")).unwrap();
    assert!(workspace.contains("disallowed_methods = \"deny\""));
    assert!(workspace.contains("disallowed_types = \"deny\""));
}
