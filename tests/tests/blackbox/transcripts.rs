//! Differential transcripts: raw client byte streams (`tests/transcripts`)
//! replayed against natrix, whose masked replies must equal what the
//! reference nats-server 2.9.10 sent — both the recorded `.expected` files
//! and, when the reference is installed, a live run side by side.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use natrix_tests::ServerProcess;

use crate::replay;

/// Transcript folders and the flags their servers run with. `server.conf`
/// stands for the folder's own configuration file.
const SUITES: &[(&str, &[&str])] = &[
    ("", &[]),
    ("auth", &["--user", "u", "--pass", "p"]),
    ("token", &["--auth", "s3cret"]),
    ("max_subs", &["-c", CONFIG]),
];

const CONFIG: &str = "server.conf";

/// A suite's flags, its configuration file given by its full path.
fn suite_flags(sub: &str, flags: &[&str]) -> Vec<String> {
    flags
        .iter()
        .map(|&f| match f {
            CONFIG => root().join(sub).join(CONFIG).display().to_string(),
            other => other.to_string(),
        })
        .collect()
}

/// Servers run side by side, each replaying its share of the transcripts
/// (transcripts share subjects, so each server sees one at a time).
const WORKERS: usize = 4;

fn transcripts(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "txt"))
        .collect();
    v.sort();
    v
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("transcripts")
}

/// Replays every transcript of every suite against servers started by
/// `start`, returning (path, rendered output) pairs.
fn run_all(start: &(dyn Fn(&[&str]) -> ServerProcess + Sync)) -> Vec<(PathBuf, String)> {
    let results = Mutex::new(Vec::new());
    for (sub, flags) in SUITES {
        let files = transcripts(&root().join(sub));
        assert!(!files.is_empty(), "transcripts in {sub:?}");
        let flags = suite_flags(sub, flags);
        let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
        let chunks: Vec<Vec<PathBuf>> = (0..WORKERS)
            .map(|w| files.iter().skip(w).step_by(WORKERS).cloned().collect())
            .collect();
        std::thread::scope(|s| {
            for chunk in chunks.iter().filter(|c| !c.is_empty()) {
                let (results, flags) = (&results, &flags);
                s.spawn(move || {
                    let server = start(flags);
                    for f in chunk {
                        let src = std::fs::read_to_string(f).unwrap();
                        let t = replay::parse_transcript(&src)
                            .unwrap_or_else(|e| panic!("{}: {e}", f.display()));
                        let out = replay::replay(&t, &server.addr());
                        let rendered = replay::render(&t, &out);
                        results.lock().unwrap().push((f.clone(), rendered));
                    }
                });
            }
        });
    }
    let mut v = results.into_inner().unwrap();
    v.sort();
    v
}

#[test]
fn natrix_replies_as_recorded_from_nats_server() {
    let got = run_all(&|flags| ServerProcess::natrix(flags));
    assert!(got.len() >= 40, "{} transcripts", got.len());
    let mut failures = Vec::new();
    for (path, rendered) in &got {
        let expected_path = path.with_extension("expected");
        let expected = std::fs::read_to_string(&expected_path).unwrap_or_else(|e| {
            panic!(
                "{}: {e} (record it from nats-server)",
                expected_path.display()
            )
        });
        if let Err(diff) = replay::compare(&expected, rendered) {
            failures.push(format!("{}\n{diff}", path.display()));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} transcripts differ:\n{}",
        failures.len(),
        got.len(),
        failures.join("\n")
    );
}

#[test]
fn natrix_replies_as_a_live_nats_server_does() {
    let Some(reference) = natrix_tests::reference_bin() else {
        assert!(
            std::env::var_os("NATRIX_REQUIRE_REFERENCE").is_none(),
            "NATRIX_REQUIRE_REFERENCE is set but nats-server is not installed"
        );
        eprintln!(
            "nats-server not installed: live differential skipped (the recorded run still checks)"
        );
        return;
    };
    let theirs = run_all(&|flags| ServerProcess::start(&reference, flags));
    let ours = run_all(&|flags| ServerProcess::natrix(flags));
    assert_eq!(theirs.len(), ours.len());
    let mut failures = Vec::new();
    for ((path, a), (_, b)) in theirs.iter().zip(&ours) {
        if let Err(diff) = replay::compare(a, b) {
            failures.push(format!("{}\n{diff}", path.display()));
        }
    }
    assert!(
        failures.is_empty(),
        "{} transcripts differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
