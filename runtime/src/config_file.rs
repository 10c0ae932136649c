//! Reading a configuration file from disk: nats.conf format, or TOML when
//! the name ends in `.toml`, with includes and environment variables taken
//! from the file system and the process environment. The parsing and the
//! meaning of every key live in the core (`natrix_core::conf`,
//! `natrix_core::config::file`).

use natrix_core::Options;
use natrix_core::conf::{self, Source};
use natrix_core::config::ProcessOptions;
use natrix_core::config::file::{self, Problems};

/// Included files and `$VARIABLES` from the real system.
pub struct FsSource;

impl Source for FsSource {
    fn read(&self, path: &str) -> Result<String, String> {
        std::fs::read_to_string(path).map_err(|e| format!("open {path}: {}", io_text(&e)))
    }

    fn env(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

/// Go's wording for the common errors, as nats-server prints them.
pub(crate) fn io_text(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file or directory".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => e.to_string(),
    }
}

/// Reads `path` into `opts` and `process`. Returns the warnings to print
/// (empty if none), or every problem when the file cannot be used.
pub fn load(
    path: &str,
    opts: &mut Options,
    process: &mut ProcessOptions,
) -> Result<String, String> {
    let text = FsSource.read(path)?;
    let map = if path.ends_with(".toml") {
        conf::parse_toml(&text, path)
    } else {
        conf::parse(&text, path, &FsSource)
    }
    .map_err(|e| e.to_string())?;
    let problems: Problems = file::apply(&map, opts, process);
    // A leaf remote's credentials file is read here, at start and at
    // every reload; a file that cannot be read is reported by the server
    // and keeps that remote from authenticating.
    if let Some(l) = opts.leafnodes.as_mut() {
        for file in l.remotes.iter_mut().filter_map(|r| r.credentials.as_mut()) {
            let text = std::fs::read_to_string(&file.path)
                .map_err(|e| format!("open {}: {}", file.path, io_text(&e)));
            file.load(text);
        }
    }
    let report = problems.report();
    if problems.errors.is_empty() {
        Ok(report)
    } else {
        Err(report.trim_end().to_string())
    }
}
