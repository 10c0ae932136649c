//! Starting JetStream's storage: where the store lives, how much it may
//! hold when the configuration leaves that to the server, and what the log
//! says about it — nats-server's rules and words, measured here because the
//! core does no I/O.
//!
//! The store lives in `<store_dir>/jetstream`, or `<temp>/nats/jetstream`
//! without a `store_dir`. nats-server uses `<temp>/jetstream` instead when
//! both limits are configured and no directory is; natrix keeps one place
//! so that adding limits never moves the data.
//!
//! A negative limit (unset) is measured, as nats-server does at start:
//! memory is three quarters of the machine's (`MemTotal` of
//! `/proc/meminfo`; 256 MiB where that cannot be read), storage three
//! quarters of the space available to the server on the store's disk
//! (1 TiB where that cannot be read). Zero is kept: no storage of that kind.

use std::path::{Path, PathBuf};
use std::time::Instant;

use natrix_core::config::JetStreamOptions;
use natrix_core::server::LogLevel;

/// The name of the store directory under `store_dir`.
pub const STORE_DIR_NAME: &str = "jetstream";
/// nats-server's memory limit when the machine's memory is unknown.
pub const MAX_MEMORY_FALLBACK_BYTES: i64 = 256 * 1024 * 1024;
/// nats-server's storage limit when the disk's free space is unknown.
pub const MAX_FILE_FALLBACK_BYTES: i64 = 1024 * 1024 * 1024 * 1024;

/// A prepared store: its directory and what to log about it.
#[derive(Debug)]
pub struct Started {
    /// `<store_dir>/jetstream`: the storage thread's root.
    pub root: PathBuf,
    /// Log lines, in order, from "Starting JetStream" on.
    pub log: Vec<(LogLevel, String)>,
}

/// Why the store could not start: nats-server's log lines up to and
/// including the fatal one.
#[derive(Debug)]
pub struct StartFailed {
    pub log: Vec<(LogLevel, String)>,
}

/// Prepares the store directory and resolves unset limits in `js` (the
/// options the core is then built with).
pub fn start(js: &mut JetStreamOptions) -> Result<Started, StartFailed> {
    let began = Instant::now();
    let mut log = vec![(LogLevel::Info, "Starting JetStream".to_string())];
    let (root, temporary) = store_root(&js.store_dir);
    if temporary {
        log.push((
            LogLevel::Warn,
            "Temporary storage directory used, data could be lost on system reboot".into(),
        ));
    }
    if let Err(why) = prepare_dir(&root) {
        log.push((LogLevel::Info, took(began)));
        log.push((LogLevel::Fatal, format!("Can't start JetStream: {why}")));
        return Err(StartFailed { log });
    }
    resolve_limits(js, total_memory(), disk_available(&root));
    log.extend(banner(js, &root).into_iter().map(|l| (LogLevel::Info, l)));
    log.push((LogLevel::Info, took(began)));
    Ok(Started { root, log })
}

fn took(began: Instant) -> String {
    format!("Took {:?} to start JetStream", began.elapsed())
}

/// Where the store lives, and whether that is the temporary directory.
pub fn store_root(store_dir: &str) -> (PathBuf, bool) {
    if store_dir.is_empty() {
        let root = std::env::temp_dir().join("nats").join(STORE_DIR_NAME);
        (root, true)
    } else {
        (Path::new(store_dir).join(STORE_DIR_NAME), false)
    }
}

/// Creates the directory, or checks that the one there is a writable
/// directory. Err: nats-server's reason.
pub fn prepare_dir(root: &Path) -> Result<(), String> {
    match std::fs::metadata(root) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => std::fs::create_dir_all(root)
            .map_err(|e| {
                format!(
                    "could not create storage directory - mkdir {}: {}",
                    first_missing(root).display(),
                    crate::config_file::io_text(&e)
                )
            }),
        Ok(meta) if meta.is_dir() => {
            let probe = root.join(format!("_test_{}", std::process::id()));
            std::fs::write(&probe, b"")
                .map_err(|_| "storage directory is not writable".to_string())?;
            let _ = std::fs::remove_file(&probe);
            Ok(())
        }
        _ => Err("storage directory is not a directory".to_string()),
    }
}

/// The outermost directory of `path` that does not exist: the first one
/// creating it makes, so the one named when that fails.
fn first_missing(path: &Path) -> &Path {
    path.ancestors()
        .take_while(|a| !a.as_os_str().is_empty() && std::fs::metadata(a).is_err())
        .last()
        .unwrap_or(path)
}

/// Fills in the limits left to the server (negative), from what was
/// measured (`None`: could not be).
pub fn resolve_limits(
    js: &mut JetStreamOptions,
    total_memory_bytes: Option<u64>,
    disk_available_bytes: Option<u64>,
) {
    let three_quarters = |n: u64| i64::try_from(n / 4 * 3).unwrap_or(i64::MAX);
    if js.max_memory_store < 0 {
        js.max_memory_store = total_memory_bytes
            .filter(|&n| n > 0)
            .map_or(MAX_MEMORY_FALLBACK_BYTES, three_quarters);
    }
    if js.max_file_store < 0 {
        js.max_file_store = disk_available_bytes.map_or(MAX_FILE_FALLBACK_BYTES, three_quarters);
    }
}

/// The machine's memory in bytes (`MemTotal` of `/proc/meminfo`).
pub fn total_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    parse_mem_total(&text)
}

fn parse_mem_total(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let mut words = line["MemTotal:".len()..].split_whitespace();
    let n: u64 = words.next()?.parse().ok()?;
    match words.next() {
        Some("kB") => n.checked_mul(1024),
        None => Some(n),
        Some(_) => None,
    }
}

/// Bytes an unprivileged writer may still use on the disk holding `dir`.
#[cfg(unix)]
pub fn disk_available(dir: &Path) -> Option<u64> {
    let fs = rustix::fs::statvfs(dir).ok()?;
    fs.f_bavail.checked_mul(fs.f_bsize)
}

/// Bytes an unprivileged writer may still use on the disk holding `dir`
/// (not measured here).
#[cfg(not(unix))]
pub fn disk_available(_dir: &Path) -> Option<u64> {
    None
}

/// The JetStream options a reloaded file gives the core, from the options
/// configured before (`old`) and now (`new`) and those the server runs
/// with (`running`, limits measured). A limit left to the server keeps its
/// measured value. The storage thread lives as long as the process, so
/// turning JetStream on or off, or moving its store, needs a restart; and,
/// as in nats-server, a limit cannot go from measured to configured or
/// back. Err: why the reload is refused.
pub fn reloaded(
    old: Option<&JetStreamOptions>,
    new: Option<&JetStreamOptions>,
    running: Option<&JetStreamOptions>,
) -> Result<Option<JetStreamOptions>, String> {
    let (old, new, running) = match (old, new, running) {
        (Some(old), Some(new), Some(running)) => (old, new, running),
        (None, None, _) => return Ok(None),
        (old, new, _) => {
            return Err(format!(
                "config reload not supported for JetStream: old={}, new={}",
                old.is_some(),
                new.is_some()
            ));
        }
    };
    if new.store_dir != old.store_dir {
        return Err("config reload not supported for jetstream storage directory".into());
    }
    let limit = |old: i64, new: i64, running: i64| match (old < 0, new < 0) {
        (true, true) => Ok(running),
        (true, false) => Err(
            "config reload not supported for jetstream dynamic max memory and store".to_string(),
        ),
        (false, true) => {
            Err("config reload not supported for jetstream max memory and max store".to_string())
        }
        (false, false) => Ok(new),
    };
    Ok(Some(JetStreamOptions {
        max_memory_store: limit(
            old.max_memory_store,
            new.max_memory_store,
            running.max_memory_store,
        )?,
        max_file_store: limit(
            old.max_file_store,
            new.max_file_store,
            running.max_file_store,
        )?,
        ..new.clone()
    }))
}

/// What nats-server logs about a started JetStream (without its banner
/// art), plus the sync policy, which differs from nats-server's default.
pub fn banner(js: &JetStreamOptions, root: &Path) -> Vec<String> {
    let mut lines = vec![
        "---------------- JETSTREAM ----------------".to_string(),
        format!("  Max Memory:      {}", friendly_bytes(js.max_memory_store)),
        format!("  Max Storage:     {}", friendly_bytes(js.max_file_store)),
        format!("  Store Directory: \"{}\"", root.display()),
    ];
    if !js.domain.is_empty() {
        lines.push(format!("  Domain:          {}", js.domain));
    }
    lines.push(match js.sync_interval {
        None => "  Sync:            always (every write before its ack)".to_string(),
        Some(d) => format!(
            "  Sync:            every {} (acks may precede the sync)",
            natrix_core::time::go_duration(d)
        ),
    });
    lines.push("-------------------------------------------".to_string());
    lines
}

/// Bytes as nats-server shows them: `512 B`, `953.67 MB`, `17.66 GB`
/// (powers of 1024, two decimals).
pub fn friendly_bytes(bytes: i64) -> String {
    const UNITS: [&str; 6] = ["KB", "MB", "GB", "TB", "PB", "EB"];
    let mut value = bytes as f64;
    if value < 1024.0 {
        return format!("{bytes} B");
    }
    let mut unit = 0;
    value /= 1024.0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.2} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_store_lives_under_store_dir_or_the_temporary_directory() {
        assert_eq!(
            store_root("/data"),
            (PathBuf::from("/data/jetstream"), false)
        );
        let (root, temporary) = store_root("");
        assert!(temporary);
        assert_eq!(root, std::env::temp_dir().join("nats/jetstream"));
    }

    #[test]
    fn unset_limits_are_three_quarters_of_the_machine() {
        let mut js = JetStreamOptions::default();
        resolve_limits(&mut js, Some(25_276_190_720), Some(57_144_647_680));
        // The figures nats-server 2.15.1 logs on the same machine.
        assert_eq!(friendly_bytes(js.max_memory_store), "17.66 GB");
        assert_eq!(js.max_file_store, 42_858_485_760);
        let mut js = JetStreamOptions::default();
        resolve_limits(&mut js, None, None);
        assert_eq!(
            (js.max_memory_store, js.max_file_store),
            (MAX_MEMORY_FALLBACK_BYTES, MAX_FILE_FALLBACK_BYTES)
        );
        // Configured limits, zero included, are kept.
        let mut js = JetStreamOptions {
            max_memory_store: 0,
            max_file_store: 5,
            ..JetStreamOptions::default()
        };
        resolve_limits(&mut js, Some(1 << 30), Some(1 << 30));
        assert_eq!((js.max_memory_store, js.max_file_store), (0, 5));
    }

    #[test]
    fn a_reload_keeps_measured_limits_and_refuses_what_needs_a_restart() {
        let configured = JetStreamOptions {
            store_dir: "/data".into(),
            ..JetStreamOptions::default()
        };
        let running = JetStreamOptions {
            max_memory_store: 100,
            max_file_store: 200,
            ..configured.clone()
        };
        let (old, run) = (Some(&configured), Some(&running));
        assert_eq!(reloaded(None, None, None), Ok(None));
        // Unchanged: the measured limits stay; other settings follow.
        let new = JetStreamOptions {
            domain: "hub".into(),
            ..configured.clone()
        };
        let js = reloaded(old, Some(&new), run).unwrap().unwrap();
        assert_eq!((js.max_memory_store, js.max_file_store), (100, 200));
        assert_eq!(js.domain, "hub");
        let refused = |new: Option<&JetStreamOptions>, old| reloaded(old, new, run).unwrap_err();
        assert_eq!(
            refused(None, old),
            "config reload not supported for JetStream: old=true, new=false"
        );
        assert_eq!(
            reloaded(None, Some(&configured), None).unwrap_err(),
            "config reload not supported for JetStream: old=false, new=true"
        );
        let moved = JetStreamOptions {
            store_dir: "/elsewhere".into(),
            ..configured.clone()
        };
        assert_eq!(
            refused(Some(&moved), old),
            "config reload not supported for jetstream storage directory"
        );
        let set = JetStreamOptions {
            max_file_store: 5,
            ..configured.clone()
        };
        assert_eq!(
            refused(Some(&set), old),
            "config reload not supported for jetstream dynamic max memory and store"
        );
        assert_eq!(
            refused(Some(&configured), Some(&set)),
            "config reload not supported for jetstream max memory and max store"
        );
        // Configured limits pass to the core, which judges the change.
        let more = JetStreamOptions {
            max_file_store: 9,
            ..configured.clone()
        };
        let js = reloaded(Some(&set), Some(&more), run).unwrap().unwrap();
        assert_eq!(js.max_file_store, 9);
    }

    #[test]
    fn mem_total_from_meminfo() {
        let meminfo = "MemTotal:       24683780 kB\nMemFree:         1000 kB\n";
        assert_eq!(parse_mem_total(meminfo), Some(24_683_780 * 1024));
        assert_eq!(parse_mem_total("MemFree: 1 kB\n"), None);
        assert_eq!(parse_mem_total("MemTotal: x kB\n"), None);
        assert!(total_memory().is_some_and(|n| n > 0));
    }

    #[test]
    fn sizes_read_as_nats_server_writes_them() {
        assert_eq!(friendly_bytes(0), "0 B");
        assert_eq!(friendly_bytes(1023), "1023 B");
        assert_eq!(friendly_bytes(1024), "1.00 KB");
        assert_eq!(friendly_bytes(1_000_000_000), "953.67 MB");
        assert_eq!(friendly_bytes(1 << 40), "1.00 TB");
    }

    #[test]
    fn the_directory_is_made_or_refused_with_nats_server_reasons() {
        let base = std::env::temp_dir().join(format!("natrix-js-start-{}", std::process::id()));
        let root = base.join("a/b/jetstream");
        assert_eq!(prepare_dir(&root), Ok(()));
        assert!(root.is_dir());
        assert_eq!(prepare_dir(&root), Ok(()), "an existing directory is fine");
        assert!(disk_available(&root).is_some_and(|n| n > 0));
        let file = base.join("file");
        std::fs::write(&file, b"x").unwrap();
        assert_eq!(
            prepare_dir(&file),
            Err("storage directory is not a directory".into())
        );
        assert_eq!(
            prepare_dir(&file.join("jetstream")),
            Err("storage directory is not a directory".into())
        );
        let readonly = Path::new("/proc/natrix-no/jetstream");
        assert_eq!(
            prepare_dir(readonly),
            Err(
                "could not create storage directory - mkdir /proc/natrix-no: no such file or directory"
                    .into()
            )
        );
        let _ = std::fs::remove_dir_all(&base);
    }

    #[test]
    fn start_logs_what_nats_server_logs() {
        let base = std::env::temp_dir().join(format!("natrix-js-log-{}", std::process::id()));
        let mut js = JetStreamOptions {
            store_dir: base.to_string_lossy().into_owned(),
            max_memory_store: 1_000_000_000,
            domain: "hub".into(),
            ..JetStreamOptions::default()
        };
        let started = start(&mut js).expect("starts");
        assert_eq!(started.root, base.join("jetstream"));
        assert!(js.max_file_store > 0, "the disk was measured");
        let text: Vec<&str> = started.log.iter().map(|(_, l)| l.as_str()).collect();
        assert_eq!(text[0], "Starting JetStream");
        assert_eq!(text[2], "  Max Memory:      953.67 MB");
        assert_eq!(
            text[4],
            format!(
                "  Store Directory: \"{}\"",
                base.join("jetstream").display()
            )
        );
        assert_eq!(text[5], "  Domain:          hub");
        assert!(text.last().unwrap().starts_with("Took "));
        assert!(
            started
                .log
                .iter()
                .all(|(level, _)| *level == LogLevel::Info)
        );
        // A store directory that cannot be made stops the start.
        let mut js = JetStreamOptions {
            store_dir: "/proc/natrix-no".into(),
            ..JetStreamOptions::default()
        };
        let failed = start(&mut js).unwrap_err();
        let (level, last) = failed.log.last().unwrap();
        assert_eq!(*level, LogLevel::Fatal);
        assert_eq!(
            last,
            "Can't start JetStream: could not create storage directory - mkdir /proc/natrix-no: no such file or directory"
        );
        let _ = std::fs::remove_dir_all(&base);
    }
}
