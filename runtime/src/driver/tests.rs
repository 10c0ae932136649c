//! The driver with JetStream's storage thread: completions reach the core,
//! and shutdown waits for the thread.

use std::path::PathBuf;
use std::time::Duration;

use natrix_core::{Options, Server};
use natrix_storage::StreamConfig;
use natrix_storage::ops::{OpId, StorageOp};
use tokio::net::TcpListener;

use super::{Clock, ServerIo, next_completion, serve_with_monitor};
use crate::logger::Logger;
use crate::storage::StorageThread;

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("natrix-driver-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test]
async fn completions_reach_the_core_and_shutdown_waits_for_the_thread() {
    let dir = temp_dir("storage");
    let (storage, completions) = StorageThread::spawn(dir.join("jetstream")).unwrap();
    // Submitted before the driver holds the thread: its completion is the
    // first thing the driver has to hand the core.
    storage.submit(StorageOp::Open {
        id: OpId(7),
        stream: "orders".into(),
        config: StreamConfig::default(),
    });
    let clock = Clock::new();
    let server = Server::new(Options::default(), 1, clock.now());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let log_path = dir.join("natrix.log");
    let logger = Logger::file(&log_path, false, false, false).unwrap();
    let io = ServerIo {
        storage: Some((storage, completions)),
        ..ServerIo::default()
    };
    let running = serve_with_monitor(server, listener, "127.0.0.1", io, logger, clock).unwrap();
    // This core asks for no storage, so it reports the completion it did
    // not expect: the proof that it got it.
    let log = || std::fs::read_to_string(&log_path).unwrap_or_default();
    let mut waited = Duration::ZERO;
    while !log().contains("storage completion OpId(7)") {
        assert!(waited < Duration::from_secs(5), "no completion: {}", log());
        tokio::time::sleep(Duration::from_millis(10)).await;
        waited += Duration::from_millis(10);
    }
    running.shutdown().await;
    let log = log();
    let at = |line: &str| {
        log.find(line)
            .unwrap_or_else(|| panic!("{line:?} in {log}"))
    };
    assert!(at("Initiating Shutdown...") < at("Initiating JetStream Shutdown..."));
    assert!(at("Initiating JetStream Shutdown...") < at("JetStream Shutdown\n"));
    assert!(
        dir.join("jetstream")
            .join(crate::storage::STREAMS_DIR)
            .is_dir()
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn without_jetstream_no_completion_ever_arrives() {
    let mut off = None;
    let never = tokio::time::timeout(Duration::from_millis(20), next_completion(&mut off));
    assert!(never.await.is_err());
}

#[tokio::test]
async fn a_server_without_jetstream_logs_no_jetstream_shutdown() {
    let dir = temp_dir("plain");
    let clock = Clock::new();
    let server = Server::new(Options::default(), 1, clock.now());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let log_path = dir.join("natrix.log");
    let logger = Logger::file(&log_path, false, false, false).unwrap();
    let running = serve_with_monitor(
        server,
        listener,
        "127.0.0.1",
        ServerIo::default(),
        logger,
        clock,
    )
    .unwrap();
    running.shutdown().await;
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(log.contains("Initiating Shutdown..."), "{log}");
    assert!(!log.contains("JetStream"), "{log}");
    let _ = std::fs::remove_dir_all(&dir);
}
