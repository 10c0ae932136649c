//! Lame duck mode and signals, against the `natrix` binary: an operator
//! drains a server with `natrix --signal ldm=<pid file>` and a client moves
//! to another server without losing its subscription.

use std::process::Command;
use std::time::{Duration, Instant};

use futures::StreamExt;
use natrix_tests::{ServerProcess, natrix_bin};

fn wait_exit(server: &mut ServerProcess, within: Duration) -> Option<i32> {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if let Some(status) = server.child.try_wait().unwrap() {
            return status.code();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lame_duck_moves_clients_to_another_server_and_exits() {
    let dir = std::env::temp_dir().join(format!("natrix-ldm-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let pid_file = dir.join("a.pid");
    // A one-second grace period instead of the default ten.
    let conf = dir.join("ldm.conf");
    std::fs::write(&conf, "lame_duck_grace_period: \"1s\"\n").unwrap();
    let mut a = ServerProcess::natrix(&[
        "-P",
        pid_file.to_str().unwrap(),
        "-c",
        conf.to_str().unwrap(),
    ]);
    let b = ServerProcess::natrix(&[]);

    let (events_tx, mut events) = tokio::sync::mpsc::unbounded_channel();
    let client = async_nats::ConnectOptions::new()
        .retain_servers_order()
        .event_callback(move |e| {
            let tx = events_tx.clone();
            async move {
                let _ = tx.send(e);
            }
        })
        .connect([a.url(), b.url()].as_slice())
        .await
        .unwrap();
    let mut sub = client.subscribe("ldm.orders").await.unwrap();
    client.flush().await.unwrap();

    // The operator's command: signal the server named by its pid file.
    let status = Command::new(natrix_bin())
        .args(["--signal", &format!("ldm={}", pid_file.display())])
        .status()
        .unwrap();
    assert!(status.success());

    // The client hears of it by INFO, before anything closes.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, events.recv()).await {
            Ok(Some(async_nats::Event::LameDuckMode)) => break,
            Ok(Some(_)) => continue,
            _ => panic!("no lame duck event"),
        }
    }
    // The listener is closed at once: new connections are refused.
    let refused = (0..50).any(|_| {
        let r = std::net::TcpStream::connect(a.addr()).is_err();
        if !r {
            std::thread::sleep(Duration::from_millis(20));
        }
        r
    });
    assert!(refused, "a lame duck server accepts no new connection");
    // SIGTERM does not cut lame duck mode short.
    let pid = a.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );

    // After the grace period the server closes its client and exits
    // cleanly, removing its pid file.
    let code = tokio::task::block_in_place(|| wait_exit(&mut a, Duration::from_secs(30)));
    assert_eq!(code, Some(0), "lame duck mode ends with exit code 0");
    assert!(!pid_file.exists());

    // The client reconnected to the other server with its subscription.
    let other = async_nats::connect(b.url()).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let got = loop {
        other.publish("ldm.orders", "after".into()).await.unwrap();
        other.flush().await.unwrap();
        if let Ok(Some(m)) = tokio::time::timeout(Duration::from_millis(200), sub.next()).await {
            break m;
        }
        assert!(Instant::now() < deadline, "no delivery after the move");
    };
    assert_eq!(got.payload, "after");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn signal_command_errors() {
    let out = Command::new(natrix_bin())
        .args(["--signal", "nap=1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        "natrix: unknown signal \"nap\""
    );
}
