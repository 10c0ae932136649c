//! Configuration files against the `natrix` binary, side by side with
//! nats-server 2.9.10: `-t` reports the same problems at the same places,
//! and the same file gives clients the same server.

use std::path::{Path, PathBuf};
use std::process::Command;

use natrix_tests::{ServerProcess, natrix_bin};

fn reference() -> Option<PathBuf> {
    natrix_tests::reference_or_skip()
}

fn dir(name: &str) -> PathBuf {
    natrix_tests::test_dir("conf", name)
}

/// `<bin> -t -c <file>`: exit code and stderr without the program prefix.
fn check(bin: &Path, file: &Path) -> (Option<i32>, String) {
    natrix_tests::check_config(bin, file)
}

#[test]
fn test_mode_reports_what_nats_server_reports() {
    let d = dir("check");
    std::fs::write(d.join("inc.conf"), "max_payload: 512KB\nping_max: 4\n").unwrap();
    let cases: &[(&str, &str)] = &[
        (
            "valid.conf",
            "# a comment\nport: 4333\nserver_name: \"a b\"\ninclude ./inc.conf\n\
             SECRET: s3cret\nauthorization {\n  user: alice\n  password: $SECRET\n  timeout: 2\n}\n\
             ping_interval: \"2m\"\nwrite_deadline: \"3s\"\nmax_pending: 64MB\n\
             lame_duck_duration: \"45s\"\nlame_duck_grace_period: \"3s\"\n",
        ),
        ("unknown.conf", "port: 4333\nfoo: 1\nbar {\n  x: 1\n}\n"),
        (
            "duration.conf",
            "port: 4333\nping_interval: \"x\"\nwrite_deadline: \"5y\"\n",
        ),
        ("seconds.conf", "port: 4333\nping_interval: 5\n"),
        ("ldm.conf", "port: 4333\nlame_duck_duration: \"10s\"\n"),
        (
            "grace.conf",
            "port: 4333\nlame_duck_grace_period: \"-1s\"\n",
        ),
        (
            "auth.conf",
            "port: 4333\nauthorization {\n  user: a\n  token: t\n}\n",
        ),
        (
            "authkey.conf",
            "port: 4333\nauthorization { user: a, pass: b, foo: 1 }\n",
        ),
        ("big.conf", "port: 4333\nmax_payload: 3GB\n"),
        ("listen.conf", "port: 4333\nlisten: \"nohost\"\n"),
        ("variable.conf", "port: 4333\nserver_name: $NOPE_NOT_SET\n"),
        ("include.conf", "port: 4333\ninclude ./missing.conf\n"),
        (
            "valid_js.conf",
            "port: 4333\njetstream {\n  store_dir: \"/tmp/x\"\n  max_mem: 1G\n  max_file: \"2T\"\n  \
             domain: hub\n  enabled: false\n}\n",
        ),
        (
            "valid_js_on.conf",
            "port: 4333\njetstream: enabled\nstoredir: /tmp/x\n",
        ),
        ("js_string.conf", "port: 4333\njetstream: maybe\n"),
        ("js_type.conf", "port: 4333\njetstream: 5\n"),
        (
            "js_size.conf",
            "port: 4333\njetstream {\n  max_mem: \"1Q\"\n}\n",
        ),
        (
            "js_float.conf",
            "port: 4333\njetstream {\n  max_file: 1.5\n}\n",
        ),
        (
            "js_unknown.conf",
            "port: 4333\njetstream {\n  foo: 1\n  store_dir: /tmp/x\n}\n",
        ),
    ];
    let reference = reference();
    for (name, text) in cases {
        let f = d.join(name);
        std::fs::write(&f, text).unwrap();
        let ours = check(&natrix_bin(), &f);
        if name.starts_with("valid") {
            assert_eq!(ours.0, Some(0), "{name}: {}", ours.1);
        } else {
            assert_eq!(ours.0, Some(1), "{name}: {}", ours.1);
        }
        if let Some(r) = &reference {
            let theirs = check(r, &f);
            // natrix may add where a syntax error is; nats-server names
            // only the line. nats-server lists problems in Go map order
            // (it varies from run to run), natrix in file order: compare
            // the lines as sets.
            let lines = |t: &str| {
                let mut v: Vec<String> = t.lines().map(str::to_string).collect();
                v.sort();
                v
            };
            let same =
                lines(&ours.1) == lines(&theirs.1) || ours.1.ends_with(&format!(": {}", theirs.1));
            assert!(
                ours.0 == theirs.0 && same,
                "{name}:\n natrix:      {ours:?}\n nats-server: {theirs:?}"
            );
        }
    }
    // Missing file and -t without -c.
    let missing = d.join("nope.conf");
    let ours = check(&natrix_bin(), &missing);
    assert_eq!(
        ours.1,
        format!("open {}: no such file or directory", missing.display())
    );
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn unsupported_sections_are_refused_by_name() {
    let d = dir("refuse");
    let f = d.join("leaf.conf");
    std::fs::write(
        &f,
        "port: 4333\nleafnodes {\n  port: 7422\n  websocket {\n    port: 1\n  }\n}\n",
    )
    .unwrap();
    let (code, text) = check(&natrix_bin(), &f);
    assert_eq!(code, Some(1));
    assert_eq!(
        text,
        format!(
            "{}:4:3: \"websocket\" is not supported yet: natrix does not have leaf nodes over websocket yet",
            f.display()
        )
    );
    let f = d.join("js.conf");
    std::fs::write(&f, "port: 4333\njetstream {\n  cipher: aes\n}\n").unwrap();
    let (code, text) = check(&natrix_bin(), &f);
    assert_eq!(code, Some(1));
    assert_eq!(
        text,
        format!(
            "{}:3:3: \"cipher\" is not supported yet: natrix does not have encryption at rest yet",
            f.display()
        )
    );
    let _ = std::fs::remove_dir_all(&d);
}

async fn behaviour(server: &ServerProcess) -> (String, i64, bool, bool) {
    let url = server.url();
    let anonymous = async_nats::connect(&url).await.is_ok();
    let wrong = async_nats::ConnectOptions::with_user_and_password("alice".into(), "x".into())
        .connect(&url)
        .await
        .is_ok();
    assert!(!wrong, "a wrong password is refused");
    let client =
        async_nats::ConnectOptions::with_user_and_password("alice".into(), "s3cret".into())
            .connect(&url)
            .await
            .unwrap();
    let info = client.server_info();
    let big = client
        .publish("x", vec![0u8; 600 * 1024].into())
        .await
        .is_ok();
    (
        info.server_name.clone(),
        info.max_payload as i64,
        anonymous,
        big,
    )
}

#[tokio::test]
async fn the_same_file_makes_the_same_server() {
    let d = dir("same");
    let f = d.join("nats.conf");
    let pid_file = d.join("server.pid");
    std::fs::write(
        &f,
        format!(
            "port: 1\nserver_name: conf-test\nmax_payload: 512KB\n\
             pid_file: \"{}\"\nauthorization {{ user: alice, password: s3cret }}\n",
            pid_file.display()
        ),
    )
    .unwrap();
    // `-p` (added by ServerProcess) overrides the file's port, as flags do.
    let conf = f.to_str().unwrap();
    let ours = ServerProcess::natrix(&["-c", conf]);
    assert!(pid_file.exists(), "pid_file from the configuration file");
    let got = behaviour(&ours).await;
    assert_eq!(got, ("conf-test".to_string(), 512 * 1024, false, false));
    drop(ours);
    if let Some(r) = reference() {
        let theirs = ServerProcess::start(&r, &["-c", conf]);
        assert_eq!(behaviour(&theirs).await, got);
    }
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn toml_configuration() {
    let d = dir("toml");
    let f = d.join("natrix.toml");
    std::fs::write(
        &f,
        "port = 4333\nserver_name = \"t\"\nping_interval = \"1m\"\n[authorization]\ntoken = \"abc\"\n",
    )
    .unwrap();
    assert_eq!(check(&natrix_bin(), &f).0, Some(0));
    std::fs::write(&f, "port = 4333\nunknown_key = 1\n").unwrap();
    let (code, text) = check(&natrix_bin(), &f);
    assert_eq!(code, Some(1));
    assert!(text.ends_with("unknown field \"unknown_key\""), "{text}");
    let _ = std::fs::remove_dir_all(&d);
}

/// Connects with a token; the server's max_payload if accepted.
async fn with_token(url: &str, token: &str) -> Option<i64> {
    let c = async_nats::ConnectOptions::with_token(token.into())
        .connect(url)
        .await
        .ok()?;
    Some(c.server_info().max_payload as i64)
}

async fn reload_scenario(bin: &Path, name: &str) -> Vec<String> {
    let d = dir(name);
    let f = d.join("nats.conf");
    let log = d.join("server.log");
    let write = |token: &str, extra: &str| {
        std::fs::write(
            &f,
            format!("authorization {{ token: {token} }}\nmax_payload: 100KB\n{extra}"),
        )
        .unwrap();
    };
    write("first", "");
    let server = ServerProcess::start(
        bin,
        &["-c", f.to_str().unwrap(), "-l", log.to_str().unwrap()],
    );
    let url = server.url();
    let hup = || {
        let pid = server.child.id().to_string();
        assert!(
            Command::new("kill")
                .args(["-HUP", &pid])
                .status()
                .unwrap()
                .success()
        );
        std::thread::sleep(std::time::Duration::from_millis(300));
    };
    let mut seen = Vec::new();
    seen.push(format!("before: {:?}", with_token(&url, "first").await));
    let (tx, mut closed) = tokio::sync::mpsc::unbounded_channel();
    let old = async_nats::ConnectOptions::with_token("first".into())
        .max_reconnects(0)
        .event_callback(move |e| {
            let tx = tx.clone();
            async move {
                let _ = tx.send(e.to_string());
            }
        })
        .connect(&url)
        .await
        .unwrap();
    old.flush().await.unwrap();
    // A setting that cannot change refuses the whole reload.
    write("second", "server_name: renamed\n");
    hup();
    seen.push(format!("refused: {:?}", with_token(&url, "first").await));
    // The token and max_payload change live.
    write("second", "max_payload: 200KB\n");
    hup();
    seen.push(format!("old token: {:?}", with_token(&url, "first").await));
    seen.push(format!("new token: {:?}", with_token(&url, "second").await));
    // The client that authenticated with the old token was cut off.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    let mut event = None;
    while let Ok(Some(e)) = tokio::time::timeout_at(deadline, closed.recv()).await {
        if e.contains("disconnected") {
            event = Some(e);
            break;
        }
    }
    seen.push(format!("old client: {event:?}"));
    let text = std::fs::read_to_string(&log).unwrap();
    for wanted in [
        "Failed to reload server configuration: config reload not supported for ServerName: old=",
        "Reloaded: authorization token",
        "Reloaded: max_payload = 204800",
        "Reloaded server configuration",
    ] {
        seen.push(format!("{wanted}: {}", text.contains(wanted)));
    }
    drop(server);
    let _ = std::fs::remove_dir_all(&d);
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_applies_changes_live_as_nats_server_does() {
    let ours = reload_scenario(&natrix_bin(), "reload-natrix").await;
    assert_eq!(
        ours[..4],
        [
            "before: Some(102400)",
            "refused: Some(102400)",
            "old token: None",
            "new token: Some(204800)",
        ]
    );
    assert!(ours[4].contains("disconnected"), "{ours:?}");
    assert!(ours[5..].iter().all(|l| l.ends_with(": true")), "{ours:?}");
    if let Some(r) = reference() {
        let theirs = reload_scenario(&r, "reload-reference").await;
        assert_eq!(ours, theirs);
    }
}

async fn mapped_subjects(server: &ServerProcess) -> Vec<String> {
    use futures::StreamExt;
    let c = async_nats::connect(server.url()).await.unwrap();
    let mut sub = c.subscribe(">").await.unwrap();
    c.flush().await.unwrap();
    for s in ["orders.eu", "orders.us.east", "a.abcdef", "keep", "plain"] {
        c.publish(s, "x".into()).await.unwrap();
    }
    c.flush().await.unwrap();
    let mut got = Vec::new();
    for _ in 0..5 {
        let m = tokio::time::timeout(std::time::Duration::from_secs(5), sub.next())
            .await
            .unwrap()
            .unwrap();
        got.push(m.subject.to_string());
    }
    // A 50/50 split, counted over many messages.
    for _ in 0..2000 {
        c.publish("split", "x".into()).await.unwrap();
    }
    c.flush().await.unwrap();
    let (mut left, mut right) = (0, 0);
    while left + right < 2000 {
        let m = tokio::time::timeout(std::time::Duration::from_secs(5), sub.next())
            .await
            .unwrap()
            .unwrap();
        match m.subject.as_str() {
            "left" => left += 1,
            "right" => right += 1,
            other => panic!("unexpected {other}"),
        }
    }
    got.push(format!(
        "split roughly even: {}",
        (800..1200).contains(&left)
    ));
    got
}

#[tokio::test]
async fn mappings_route_as_nats_server_routes() {
    let d = dir("mappings");
    let f = d.join("nats.conf");
    std::fs::write(
        &f,
        "mappings {\n  orders.*: \"svc.orders.$1\"\n  orders.*.*: \"svc.{{wildcard(2)}}.{{wildcard(1)}}\"\n  \
         a.*: \"b.{{splitFromLeft(1,3)}}\"\n  keep: kept\n  \
         split: [{destination: left, weight: 50%}, {destination: right, weight: 50%}]\n}\n",
    )
    .unwrap();
    let conf = f.to_str().unwrap();
    let ours = ServerProcess::natrix(&["-c", conf]);
    let got = mapped_subjects(&ours).await;
    assert_eq!(
        got,
        [
            "svc.orders.eu",
            "svc.east.us",
            "b.abc.def",
            "kept",
            "plain",
            "split roughly even: true"
        ]
    );
    drop(ours);
    if let Some(r) = reference() {
        let theirs = ServerProcess::start(&r, &["-c", conf]);
        assert_eq!(mapped_subjects(&theirs).await, got);
    }
    let _ = std::fs::remove_dir_all(&d);
}

/// The lines of a log without nats-server's `[pid] date time [LVL] `.
fn messages(log: &str) -> Vec<String> {
    log.lines()
        .filter_map(|l| l.split_once("] ").map(|(_, rest)| rest))
        .filter_map(|l| l.split_once("] ").map(|(_, msg)| msg.to_string()))
        .collect()
}

#[test]
fn jetstream_starts_where_nats_server_starts_it() {
    let d = dir("js-start");
    let mut servers = vec![("natrix", natrix_bin())];
    servers.extend(reference().map(|r| ("nats-server", r)));
    for (name, bin) in servers {
        let store = d.join(name);
        let log = d.join(format!("{name}.log"));
        let args = [
            "-js",
            "-sd",
            store.to_str().unwrap(),
            "-l",
            log.to_str().unwrap(),
        ];
        let server = ServerProcess::start(&bin, &args);
        drop(server);
        let lines = messages(&std::fs::read_to_string(&log).unwrap());
        let want = format!(
            "  Store Directory: \"{}\"",
            store.join("jetstream").display()
        );
        assert!(
            lines.contains(&"Starting JetStream".to_string()),
            "{name}: {lines:?}"
        );
        assert!(lines.contains(&want), "{name}: {lines:?}");
        assert!(
            lines.iter().any(|l| l.starts_with("  Max Memory:  ")),
            "{name}"
        );
        assert!(store.join("jetstream").is_dir(), "{name}");
        // -sd alone does not turn JetStream on.
        let log = d.join(format!("{name}-sd.log"));
        let args = ["-sd", store.to_str().unwrap(), "-l", log.to_str().unwrap()];
        drop(ServerProcess::start(&bin, &args));
        let text = std::fs::read_to_string(&log).unwrap();
        assert!(!text.contains("JetStream"), "{name}: {text}");
        // A store that cannot be made stops the start, in the same words.
        let out = Command::new(&bin)
            .args([
                "-a",
                "127.0.0.1",
                "-p",
                "-1",
                "-js",
                "-sd",
                "/proc/natrix-no",
            ])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{name}");
        let text = String::from_utf8_lossy(&out.stderr);
        assert!(
            text.contains(
                "[FTL] Can't start JetStream: could not create storage directory - \
                 mkdir /proc/natrix-no: no such file or directory"
            ),
            "{name}: {text}"
        );
    }
    let _ = std::fs::remove_dir_all(&d);
}
