//! natrix-core stays pure: no async runtime, no sockets, no files, no
//! threads, no process or environment in its source — whether named in a
//! `use` tree (`use std::{fs, net::TcpStream}` included) or written out as a
//! path — and the clippy bans on clocks, OS randomness, standard output and
//! OS-seeded hashing stay in place.

use std::path::Path;

/// What the core may not name, as path prefixes.
const FORBIDDEN: [&str; 8] = [
    "tokio",
    "mio",
    "std::net",
    "std::fs",
    "std::thread",
    "std::process",
    "std::env",
    "std::os",
];

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

/// The source without comments and string literals (so a word in either
/// is never taken for code), whitespace kept.
fn code_only(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '/' if chars.peek() == Some(&'/') => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        out.push('\n');
                        break;
                    }
                }
            }
            '/' if chars.peek() == Some(&'*') => {
                chars.next();
                let mut prev = ' ';
                for c in chars.by_ref() {
                    if prev == '*' && c == '/' {
                        break;
                    }
                    prev = c;
                }
                out.push(' ');
            }
            '"' => {
                let mut escaped = false;
                for c in chars.by_ref() {
                    if escaped {
                        escaped = false;
                    } else if c == '\\' {
                        escaped = true;
                    } else if c == '"' {
                        break;
                    }
                }
                out.push_str("\"\"");
            }
            _ => out.push(c),
        }
    }
    out
}

/// Expands a `use` tree (`std::{fs, net::{TcpStream as T}}`) into full
/// paths (`std::fs`, `std::net::TcpStream`).
fn expand_use(prefix: &str, tree: &str, out: &mut Vec<String>) {
    let tree = tree.trim();
    let join = |p: &str, s: &str| {
        if p.is_empty() {
            s.to_string()
        } else {
            format!("{p}::{s}")
        }
    };
    if let Some(open) = tree.find('{') {
        let head = tree[..open].trim().trim_end_matches("::");
        let inner = &tree[open + 1..tree.rfind('}').expect("a closed use group")];
        let base = join(prefix, head);
        let (mut depth, mut start) = (0, 0);
        for (i, c) in inner.char_indices() {
            match c {
                '{' => depth += 1,
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    expand_use(&base, &inner[start..i], out);
                    start = i + 1;
                }
                _ => {}
            }
        }
        expand_use(&base, &inner[start..], out);
    } else if !tree.is_empty() {
        let path = tree.split(" as ").next().unwrap_or(tree).trim();
        let path = path.strip_prefix("::").unwrap_or(path);
        out.push(join(prefix, path));
    }
}

/// Every path a file names: its `use` trees expanded, and every path
/// written out in code (whitespace around `::` removed).
fn named_paths(code: &str) -> Vec<String> {
    let mut paths = Vec::new();
    let squeezed: String = code
        .split("::")
        .map(str::trim)
        .collect::<Vec<_>>()
        .join("::");
    let mut rest = squeezed.as_str();
    while let Some(at) = rest.find("use ") {
        let starts_word = at == 0
            || !rest[..at]
                .chars()
                .next_back()
                .is_some_and(|c| c.is_alphanumeric() || c == '_');
        let after = &rest[at + 4..];
        let end = after.find(';').unwrap_or(after.len());
        if starts_word {
            expand_use("", &after[..end], &mut paths);
        }
        rest = &after[end.min(after.len())..];
    }
    for word in squeezed.split(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':')) {
        if word.contains("::") {
            paths.push(word.trim_start_matches("::").to_string());
        }
    }
    paths
}

fn forbidden(path: &str) -> Option<&'static str> {
    FORBIDDEN
        .into_iter()
        .find(|f| path == *f || path.starts_with(&format!("{f}::")))
}

#[test]
fn use_trees_are_expanded() {
    let code = code_only(
        "use std::{fs, net::{TcpStream as T, UdpSocket}};\n\
         use core::fmt; // std::fs in a comment\n\
         let s = \"std::env\"; std :: process :: exit(1);",
    );
    let paths = named_paths(&code);
    for p in [
        "std::fs",
        "std::net::TcpStream",
        "std::net::UdpSocket",
        "core::fmt",
        "std::process::exit",
    ] {
        assert!(paths.iter().any(|x| x == p), "{p} in {paths:?}");
    }
    assert!(
        !paths.iter().any(|x| x.contains("env")),
        "strings are not code"
    );
    let hits: Vec<_> = paths.iter().filter_map(|p| forbidden(p)).collect();
    assert_eq!(hits, ["std::fs", "std::net", "std::net", "std::process"]);
}

#[test]
fn core_source_has_no_io() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    assert!(files.len() > 5, "found the sources");
    let mut hits = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        for path in named_paths(&code_only(&text)) {
            if let Some(word) = forbidden(&path) {
                hits.push(format!("{}: {path} ({word})", f.display()));
            }
        }
        if text.contains("extern crate") {
            hits.push(format!("{}: extern crate", f.display()));
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
        "std::hash::RandomState",
        "nkeys::KeyPair::new_server",
        "nkeys::KeyPair::new\"",
        "std::io::stdout",
    ] {
        assert!(toml.contains(banned), "core/clippy.toml bans {banned}");
    }
    let manifest =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml"))
            .unwrap();
    assert!(manifest.contains("disallowed_methods = \"deny\""));
    assert!(manifest.contains("disallowed_types = \"deny\""));
    let lib =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/lib.rs")).unwrap();
    assert!(lib.contains("deny(clippy::print_stdout, clippy::print_stderr, clippy::dbg_macro)"));
    let core_manifest =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml")).unwrap();
    assert!(
        !core_manifest.contains("tokio"),
        "natrix-core does not depend on tokio"
    );
}

/// `unsafe` appears in the workspace's own source in one place: the call
/// that hands freed memory back to the system (runtime/src/memory.rs).
#[test]
fn unsafe_code_only_in_the_allocator_call() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let allowed = Path::new("runtime/src/memory.rs");
    let mut files = Vec::new();
    for dir in [
        "bench",
        "conformance",
        "core",
        "fuzz",
        "runtime",
        "sim",
        "storage",
        "tests",
    ] {
        let d = root.join(dir);
        if d.is_dir() {
            rust_files(&d, &mut files);
        }
    }
    let mut found = Vec::new();
    for f in &files {
        let rel = f.strip_prefix(&root).unwrap();
        if rel.components().any(|c| c.as_os_str() == "target") {
            continue;
        }
        let code = code_only(&std::fs::read_to_string(f).unwrap());
        let uses = code
            .split(|c: char| !(c.is_alphanumeric() || c == '_'))
            .filter(|w| *w == "unsafe")
            .count();
        if uses > 0 && rel != allowed {
            found.push(rel.display().to_string());
        }
    }
    assert!(found.is_empty(), "unsafe outside {allowed:?}: {found:?}");
    let memory = code_only(&std::fs::read_to_string(root.join(allowed)).unwrap());
    assert_eq!(
        memory.matches("unsafe {").count(),
        1,
        "one unsafe block, around malloc_trim"
    );
}
