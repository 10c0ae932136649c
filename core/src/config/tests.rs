//! Configuration files into options: every key, alias and refusal.

use std::time::Duration;

use super::file::{Problems, apply};
use super::{JetStreamOptions, Options, ProcessOptions};
use crate::auth::Auth;
use crate::conf::{self, MemSource};

fn load(text: &str) -> (Options, ProcessOptions, Problems) {
    let map = conf::parse(text, "n.conf", &MemSource::new()).expect("parses");
    let (mut o, mut p) = (Options::default(), ProcessOptions::default());
    let problems = apply(&map, &mut o, &mut p);
    (o, p, problems)
}

fn errors(text: &str) -> Vec<String> {
    load(text).2.errors.iter().map(|e| e.to_string()).collect()
}

#[test]
fn every_supported_key() {
    let (o, p, problems) = load(
        r#"
        listen: "127.0.0.1:4333"
        server_name: edge-1
        debug: true
        trace: true
        logtime: false
        log_file: "/var/log/natrix.log"
        log_size_limit: 10MB
        pid_file: "/run/natrix.pid"
        ports_file_dir: "/run"
        http: "0.0.0.0:8333"
        max_control_line: 8KB
        max_payload: 2MB
        max_pending: 128MB
        max_connections: 100
        max_subscriptions: 50
        max_traced_msg_len: 64
        max_closed_clients: 10
        ping_interval: "30s"
        ping_max: 3
        write_deadline: "5s"
        lame_duck_duration: "1m"
        lame_duck_grace_period: "2s"
        disable_sublist_cache: true
        no_header_support: true
        client_advertise: "nats.example.com"
        authorization { user: alice, password: s3cret, timeout: 1.5 }
        "#,
    );
    assert_eq!(problems, Problems::default());
    assert_eq!((o.host.as_str(), o.port), ("127.0.0.1", 4333));
    assert_eq!(o.server_name, "edge-1");
    assert!(o.debug && o.trace && !p.log_time);
    assert_eq!(p.log_file.as_deref(), Some("/var/log/natrix.log"));
    assert_eq!(p.log_size_limit, 10 * 1024 * 1024);
    assert_eq!(p.pid_file.as_deref(), Some("/run/natrix.pid"));
    assert_eq!(p.ports_file_dir.as_deref(), Some("/run"));
    assert_eq!(
        (p.http_host.as_deref(), p.http_port),
        (Some("0.0.0.0"), Some(8333))
    );
    assert_eq!(o.max_control_line, 8192);
    assert_eq!(o.max_payload, 2 * 1024 * 1024);
    assert_eq!(o.max_pending, 128 * 1024 * 1024);
    assert_eq!(
        (
            o.max_connections,
            o.max_subscriptions,
            o.max_traced_msg_len,
            o.max_closed_clients
        ),
        (100, 50, 64, 10)
    );
    assert_eq!(o.ping_interval, Duration::from_secs(30));
    assert_eq!(o.ping_max, 3);
    assert_eq!(o.write_deadline, Duration::from_secs(5));
    assert_eq!(o.lame_duck_duration, Duration::from_secs(60));
    assert_eq!(o.lame_duck_grace_period, Duration::from_secs(2));
    assert!(o.disable_sublist_cache && o.no_header_support);
    assert_eq!(
        o.auth,
        Auth::UserPassword {
            user: "alice".into(),
            password: "s3cret".into()
        }
    );
    assert_eq!(o.auth_timeout, Some(Duration::from_millis(1500)));
}

#[test]
fn aliases_and_forms() {
    let (o, p, problems) = load(
        "port: -1\nnet: \"::1\"\nmax_conn: 7\nmax_subs: 8\nmonitor_port: 9\n\
         no_sublist_cache: true\nlogfile: x\npidfile: y\nauthorization { token: t }\n",
    );
    assert!(problems.errors.is_empty(), "{problems:?}");
    assert_eq!((o.port, o.host.as_str()), (0, "::1"));
    assert_eq!((o.max_connections, o.max_subscriptions), (7, 8));
    assert_eq!(p.http_port, Some(9));
    assert!(o.disable_sublist_cache);
    assert_eq!(
        (p.log_file.as_deref(), p.pid_file.as_deref()),
        (Some("x"), Some("y"))
    );
    assert_eq!(o.auth, Auth::Token("t".into()));
    let (o, _, _) = load("listen: 4555\nhttp: \"[::1]:8444\"\n");
    assert_eq!(o.port, 4555);
    let (_, p, _) = load("http: \"[::1]:8444\"\n");
    assert_eq!(
        (p.http_host.as_deref(), p.http_port),
        (Some("::1"), Some(8444))
    );
    // Keys are case-insensitive, as nats-server lowercases them.
    assert_eq!(load("MAX_PAYLOAD: 100\n").0.max_payload, 100);
    // A bare number of seconds is accepted with nats-server's warning.
    let (o, _, problems) = load("ping_interval: 5\n");
    assert_eq!(o.ping_interval, Duration::from_secs(5));
    assert_eq!(
        problems.report(),
        "n.conf:1:1: invalid use of field \"ping_interval\": ping_interval should be converted to a duration\n"
    );
}

#[test]
fn refusals_name_the_key_and_the_place() {
    assert_eq!(errors("foo: 1\n"), ["n.conf:1:1: unknown field \"foo\""]);
    // A key used only as a variable is not unknown.
    assert!(errors("MYPORT: 4333\nport: $MYPORT\n").is_empty());
    assert_eq!(
        errors("port: 1\njetstream { cipher: aes }\n"),
        [
            "n.conf:2:13: \"cipher\" is not supported yet: natrix does not have encryption at rest yet"
        ]
    );
    assert_eq!(
        errors("allow_non_tls: true\n"),
        [
            "n.conf:1:1: \"allow_non_tls\" is not supported yet: natrix does not have plaintext and TLS clients on one port yet"
        ]
    );
    assert_eq!(
        errors("authorization { user: a, pass: b, foo: 1 }\n"),
        ["n.conf:1:35: unknown field \"foo\""]
    );
    assert_eq!(
        errors("authorization { user: a, token: t }\n"),
        ["n.conf:1:1: Cannot have a user/pass and token"]
    );
    assert_eq!(
        errors("lame_duck_duration: \"10s\"\n"),
        ["n.conf:1:1: invalid lame_duck_duration of 10s, minimum is 30 seconds"]
    );
    assert_eq!(
        errors("lame_duck_duration: 60\n"),
        ["n.conf:1:1: error parsing lame_duck_duration: expected a string, got integer"]
    );
    assert_eq!(
        errors("max_payload: 3GB\n"),
        ["n.conf:1:1: max_payload value is too big"]
    );
    assert_eq!(
        errors("listen: \"nohost\"\n"),
        ["n.conf:1:1: could not parse address string \"nohost\""]
    );
    assert_eq!(
        errors("listen: \"h:x\"\n"),
        ["n.conf:1:1: could not parse port \"x\""]
    );
    // Every problem is reported, not only the first.
    assert_eq!(errors("a: 1\nb: 2\nport: \"x\"\n").len(), 3);
}

#[test]
fn toml_fills_the_same_options() {
    let toml = r#"
        port = 4333
        server_name = "edge-1"
        max_payload = 2097152
        ping_interval = "30s"
        [authorization]
        user = "alice"
        password = "s3cret"
        [jetstream]
        store_dir = "/data"
        max_file_store = "10G"
        sync_interval = "1m"
    "#;
    let map = conf::parse_toml(toml, "n.toml").unwrap();
    let (mut o, mut p) = (Options::default(), ProcessOptions::default());
    assert_eq!(apply(&map, &mut o, &mut p), Problems::default());
    let (from_conf, _, _) = load(
        "port: 4333\nserver_name: edge-1\nmax_payload: 2MB\nping_interval: \"30s\"\n\
         authorization { user: alice, password: s3cret }\n\
         jetstream { store_dir: /data, max_file_store: \"10G\", sync_interval: \"1m\" }\n",
    );
    assert_eq!(
        o.jetstream.as_ref().map(|j| j.max_file_store),
        Some(10 << 30)
    );
    assert_eq!(o, from_conf);
}

#[test]
fn mappings_from_the_file() {
    let (o, _, problems) = load(
        "mappings {\n  orders.*: svc.orders.$1\n  split: [\n    {destination: left, weight: 40%}\n    {dest: right, weight: 60}\n  ]\n  one: {destination: two, weight: \"100\"}\n}\n",
    );
    assert!(problems.errors.is_empty(), "{problems:?}");
    let pick = |s: &str, roll: u8| o.mappings.map(s.as_bytes(), || roll);
    use crate::mapping::Mapped;
    assert_eq!(pick("orders.x", 0), Mapped::To(b"svc.orders.x".to_vec()));
    assert_eq!(pick("split", 39), Mapped::To(b"left".to_vec()));
    assert_eq!(pick("split", 40), Mapped::To(b"right".to_vec()));
    assert_eq!(pick("one", 0), Mapped::To(b"two".to_vec()));
    assert_eq!(
        errors("mappings {\n  foo.*: bar\n}\n"),
        [
            "n.conf:2:3: Error adding mapping for \"foo.*\" to \"bar\" : invalid mapping destination: not using all of the token wildcard(s) in bar"
        ]
    );
    assert_eq!(
        errors("mappings {\n  a: [{destination: b}]\n}\n"),
        ["n.conf:2:7: Missing weight for mapping destination \"b\""]
    );
    assert_eq!(
        errors("mappings {\n  a: [{destination: b, weight: 120}]\n}\n"),
        ["n.conf:2:24: Invalid weight 120 for mapping destination"]
    );
}

#[test]
fn tls_block() {
    let (o, _, p) = load(
        "tls {\n  cert_file: s.pem\n  key_file: s.key\n  ca_file: ca.pem\n  verify: true\n  timeout: 0.5\n}\n",
    );
    assert!(p.errors.is_empty(), "{p:?}");
    let tls = o.tls.clone().expect("tls");
    assert_eq!(
        (tls.cert_file.as_str(), tls.key_file.as_str()),
        ("s.pem", "s.key")
    );
    assert_eq!(tls.ca_file.as_deref(), Some("ca.pem"));
    assert!(tls.verify && !tls.handshake_first);
    assert_eq!(tls.timeout, Duration::from_millis(500));
    assert_eq!(tls.origin, "n.conf:1:1");
    // With TLS on, clients get the handshake timeout plus a second to
    // authenticate unless a timeout is set.
    assert_eq!(o.auth_timeout(), Duration::from_millis(1500));
    let (o, _, _) =
        load("tls { cert_file: a, key_file: b, timeout: \"3s\", handshake_first: true }\n");
    let tls = o.tls.clone().expect("tls");
    assert_eq!(tls.timeout, Duration::from_secs(3));
    assert!(tls.handshake_first);
    let (o, _, _) = load("tls { cert_file: a, key_file: b, timeout: 0 }\n");
    assert_eq!(o.tls.as_ref().expect("tls").timeout, Duration::from_secs(2));
    assert_eq!(o.auth_timeout(), Duration::from_secs(3));
    let map = conf::parse_toml(
        "[tls]\ncert_file = \"a\"\nkey_file = \"b\"\nverify = true\n",
        "n.toml",
    )
    .expect("parses");
    let (mut o, mut p) = (Options::default(), ProcessOptions::default());
    assert!(apply(&map, &mut o, &mut p).errors.is_empty());
    assert!(o.tls.expect("tls").verify);
}

#[test]
fn tls_verify_and_map() {
    let tls = |body: &str| {
        let (o, _, p) = load(&format!("tls {{ cert_file: a, key_file: b, {body} }}\n"));
        assert!(p.errors.is_empty(), "{p:?}");
        let t = o.tls.expect("tls");
        (t.verify, t.map)
    };
    // `true` turns verification on; `false` leaves it as `verify` says.
    assert_eq!(tls("verify_and_map: true"), (true, true));
    assert_eq!(tls("verify: true, verify_and_map: false"), (true, false));
    assert_eq!(tls("verify_and_map: false"), (false, false));
}

#[test]
fn https_monitoring_keys() {
    let (_, p, problems) = load("https: \"127.0.0.1:8443\"\n");
    assert!(problems.errors.is_empty(), "{problems:?}");
    assert_eq!(
        (p.http_host.as_deref(), p.http_port, p.https_port),
        (Some("127.0.0.1"), None, Some(8443))
    );
    let (_, p, _) = load("https_port: -1\n");
    assert_eq!(p.https_port, Some(0));
}

#[test]
fn tls_refusals() {
    let e = |body: &str| errors(&format!("tls {{ cert_file: a, key_file: b, {body} }}\n"));
    assert_eq!(
        e("cipher_suites: [\"TLS_AES_128_GCM_SHA256\"]"),
        [
            "n.conf:1:34: \"cipher_suites\" is not supported yet: natrix does not have a choice of TLS cipher suites yet"
        ]
    );
    assert_eq!(
        e("verify_and_map: 1"),
        ["n.conf:1:34: error parsing tls config, expected 'verify_and_map' to be a boolean"]
    );
    assert!(e("verify_and_map: false").is_empty());
    assert!(e("insecure: true").is_empty());
    assert_eq!(
        e("foo: 1"),
        ["n.conf:1:34: error parsing tls config, unknown field [\"foo\"]"]
    );
    assert_eq!(
        e("verify: 1"),
        ["n.conf:1:34: error parsing tls config, expected 'verify' to be a boolean"]
    );
    assert_eq!(
        e("ocsp_peer: true"),
        [
            "n.conf:1:34: \"ocsp_peer\" is not supported: natrix implements the tls block of nats-server 2.9"
        ]
    );
    assert_eq!(
        e("handshake_first: auto")[0],
        "n.conf:1:34: \"handshake_first\" is supported as true or false only: natrix does not have the \"auto\" fallback to plaintext"
    );
    assert_eq!(
        errors("tls { cert_file: a }\n"),
        ["n.conf:1:1: missing 'key_file' in TLS configuration"]
    );
    assert_eq!(
        errors("tls { ca_file: a }\n"),
        ["n.conf:1:1: missing 'cert_file' and 'key_file' in TLS configuration"]
    );
}

#[test]
fn users_nkeys_and_permissions() {
    use crate::auth::{Permissions, ResponsePermission, SubjectPermission};
    let nkey = "UDXU4RCSJNZOIQHZNWXHXORDPRTGNJAHAHFRGZNEEJCPQTT2M7NLCNF4";
    let (o, _, problems) = load(&format!(
        r#"
        no_auth_user: guest
        authorization {{
          default_permissions: {{ publish: "public.>", subscribe: {{ deny: ["_INBOX.>"] }} }}
          timeout: 3
          users: [
            {{ user: guest, password: g }}
            {{ user: svc, password: "$2a$04$yutFx9GuG/.lsV/T.nrXUeSzG4EtN7BWkYWf1.ojufD3m/I0Mqqpy",
               permissions: {{ subscribe: ["req", "jobs v1"], allow_responses: {{ max: 3, expires: "1s" }} }} }}
            {{ nkey: {nkey}, permissions: {{}}, allowed_connection_types: [standard] }}
          ]
        }}
        "#
    ));
    assert_eq!(problems, Problems::default());
    assert_eq!(o.no_auth_user, "guest");
    assert_eq!(o.auth_timeout(), Duration::from_secs(3));
    assert!(o.validate().is_ok());
    let Auth::Users(u) = &o.auth else {
        panic!("users: {:?}", o.auth)
    };
    let guest = &u.by_name["guest"];
    assert_eq!(
        guest.permissions,
        Some(Permissions {
            publish: Some(SubjectPermission {
                allow: Some(vec!["public.>".into()]),
                deny: vec![]
            }),
            subscribe: Some(SubjectPermission {
                allow: None,
                deny: vec!["_INBOX.>".into()]
            }),
            response: None,
        })
    );
    let svc = u.by_name["svc"].permissions.as_ref().unwrap();
    assert_eq!(
        svc.subscribe.as_ref().unwrap().allow,
        Some(vec!["req".into(), "jobs v1".into()])
    );
    assert_eq!(
        svc.response,
        Some(ResponsePermission {
            max_msgs: Some(3),
            expires: Some(Duration::from_secs(1)),
        })
    );
    let n = &u.by_nkey[nkey];
    assert_eq!(n.permissions, Some(Permissions::default()));
    assert!(n.connection_types.contains("STANDARD"));
}

#[test]
fn authorization_problems_are_collected_with_nats_server_texts() {
    let errs = errors(
        "authorization {\n  users: [\n    {user: a, permissions: {publish: {allow: 1, foo: 2}, bar: 1}}\n    {user: b, allowed_connection_types: [bogus]}\n  ]\n}\n",
    );
    assert_eq!(
        errs,
        [
            "n.conf:3:39: Expected subject permissions to be a subject, or array of subjects, got int64",
            "n.conf:3:49: Unknown field name \"foo\" parsing subject permissions, only 'allow' or 'deny' are permitted",
            "n.conf:3:58: Unknown field \"bar\" parsing permissions",
            "n.conf:4:15: invalid connection types [\"BOGUS\"]",
        ]
    );
    assert_eq!(
        errors("authorization {\n  users: [ {password: x} ]\n}\n"),
        ["n.conf:2:13: User entry requires a user"]
    );
    assert_eq!(
        errors("authorization {\n  user: x\n  users: []\n}\n"),
        ["n.conf:1:1: Can not have a single user/pass and a users array"]
    );
    // An empty list requires nothing.
    assert_eq!(load("authorization { users: [] }\n").0.auth, Auth::None);
    // no_auth_user must name a user, checked before starting.
    let (o, _, p) = load("no_auth_user: x\n");
    assert!(p.errors.is_empty());
    assert_eq!(
        o.validate(),
        Err("no_auth_user: \"x\" present, but users are not defined".into())
    );
    let (o, _, _) = load("no_auth_user: x\nauthorization { users: [{user: y}] }\n");
    assert_eq!(
        o.validate(),
        Err(
            "no_auth_user: \"x\" not present as user in authorization block or account configuration"
                .into()
        )
    );
}

/// nats-server 2.9.10's `-t` texts for the same files (placed at the
/// `accounts` key, in its column numbering).
fn nats_errors(text: &str) -> Vec<String> {
    load(text)
        .2
        .errors
        .iter()
        .map(|e| e.nats_server_text().to_string())
        .collect()
}

#[test]
fn accounts_with_users_exports_and_imports() {
    let (o, _, problems) = load(
        r#"
        authorization { users: [{user: g, password: g}] }
        accounts {
          A: {
            users: [{user: a, password: a}]
            exports: [
              {stream: "x.>", accounts: [B]}
              {service: "req.>"}
              {service: "str.>", response_type: stream, threshold: "5s"}
            ]
            limits: { max_connections: 2, max_subs: 3, max_payload: 100 }
          }
          B: {
            users: [{user: b, password: b}]
            default_permissions: { publish: "local" }
            imports: [
              {stream: {account: A, subject: "x.>"}, prefix: "p"}
              {service: {account: A, subject: "req.x"}, to: "local"}
              {service: {account: A, subject: "str.>"}}
            ]
          }
        }
        system_account: A
        "#,
    );
    assert!(problems.errors.is_empty(), "{problems:?}");
    assert_eq!(o.system_account.as_deref(), Some("A"));
    let crate::auth::Auth::Users(users) = &o.auth else {
        panic!("users")
    };
    assert_eq!(users.by_name["g"].account, None);
    assert_eq!(users.by_name["a"].account.as_deref(), Some("A"));
    assert!(users.by_name["b"].permissions.is_some());
    let (a, b) = (&o.accounts[0], &o.accounts[1]);
    assert_eq!(a.limits.max_connections, 2);
    assert_eq!(a.limits.max_subscriptions, 3);
    assert_eq!(a.service_exports[1].threshold, Duration::from_secs(5));
    assert_eq!(
        a.service_exports[1].response_type,
        crate::account::ResponseType::Stream
    );
    assert_eq!(b.stream_imports[0].to, "p.x.>");
    assert_eq!(b.service_imports[0].from, "local");
    assert_eq!(b.service_imports[0].to, "req.x");
    assert!(o.validate().is_ok());
}

#[test]
fn account_errors_as_nats_server_words_them() {
    let bad = "accounts {
  A: { users: [{user: a, password: a}], exports: [{stream: \"x.>\", accounts: [B]}] }
  B: { imports: [
      {stream: {account: A, subject: \"y.>\"}, prefix: \"p\"}
      {service: {account: A, subject: \"req.x\"}, to: \"local\"}
      {stream: {account: C, subject: \"y.>\"}}
  ] }
}
";
    // nats-server lists them in the order it adds them (streams first).
    assert_eq!(
        nats_errors(bad),
        [
            "n.conf:1:0: Error adding stream import \"y.>\": stream import not authorized",
            "n.conf:1:0: \"C\" account not defined for stream import",
            "n.conf:1:0: Error adding service import \"req.x\": service import not authorized",
        ]
    );
    let shifted = format!("port: 4222\n\n{bad}");
    assert_eq!(
        nats_errors(&shifted)[0],
        "n.conf:3:1: Error adding stream import \"y.>\": stream import not authorized"
    );
    let cycle = "accounts {
 A: {exports: [{service: \"q\"}], imports: [{service: {account: B, subject: \"q\"}}]}
 B: {exports: [{service: \"q\"}], imports: [{service: {account: A, subject: \"q\"}}]}
}
";
    assert_eq!(
        nats_errors(cycle),
        ["n.conf:1:0: Error adding service import \"q\": import forms a cycle"]
    );
    let cycle = cycle.replace("service", "stream");
    assert_eq!(
        nats_errors(&cycle),
        ["n.conf:1:0: Error adding stream import \"q\": import forms a cycle"]
    );
    // (nats-server reads the two blocks in a random order; this is the
    // text it gives when it reads `authorization` first.)
    assert_eq!(
        nats_errors(
            "authorization { user: u, password: p }\naccounts { A: { users: [{user: a, password: a}] } }\n"
        ),
        ["n.conf:2:17: Can not have a single user/pass and accounts"]
    );
    assert_eq!(
        nats_errors("accounts { $G: {} }\n"),
        ["n.conf:1:11: \"$G\" is a Reserved Account"]
    );
    assert_eq!(
        nats_errors("accounts { A: { limits: { max_foo: 1 } } }\n"),
        ["n.conf:1:26: Unknown field \"max_foo\" parsing account limits"]
    );
    // Starting, not -t, refuses a system account that does not exist.
    let (o, _, problems) = load("system_account: FOO\n");
    assert!(problems.errors.is_empty());
    assert_eq!(
        o.validate(),
        Err("error resolving system account: account missing".to_string())
    );
}

fn jetstream(text: &str) -> (Option<JetStreamOptions>, Option<JetStreamOptions>) {
    let (o, p, problems) = load(text);
    assert_eq!(problems, Problems::default(), "{text}");
    (o.jetstream, p.jetstream_off)
}

#[test]
fn jetstream_block_with_every_key_and_alias() {
    let (on, off) = jetstream(
        "jetstream {\n store_dir: \"/data\"\n max_memory_store: 1GB\n max_file_store: \"2T\"\n \
         domain: hub\n sync_interval: \"30s\"\n strict: false\n}\n",
    );
    assert_eq!(off, None);
    assert_eq!(
        on,
        Some(JetStreamOptions {
            store_dir: "/data".into(),
            max_memory_store: 1 << 30,
            max_file_store: 2 << 40,
            domain: "hub".into(),
            sync_interval: Some(Duration::from_secs(30)),
            strict: false,
        })
    );
    let (on, _) = jetstream("jetstream { store: a, max_mem: \"8M\", max_file: 0, sync: always }\n");
    let on = on.expect("on");
    assert_eq!(on.store_dir, "a");
    assert_eq!((on.max_memory_store, on.max_file_store), (8 << 20, 0));
    assert_eq!(on.sync_interval, None);
    let (on, _) =
        jetstream("jetstream { storedir: b, max_mem_store: -1, sync_interval: \"0s\" }\n");
    let on = on.expect("on");
    assert_eq!((on.store_dir.as_str(), on.max_memory_store), ("b", -1));
    assert_eq!(on.sync_interval, None, "a zero interval syncs every write");
    // Unset limits stay -1: the runtime measures the machine at start.
    assert_eq!(
        jetstream("jetstream {}\n").0,
        Some(JetStreamOptions::default())
    );
}

#[test]
fn jetstream_on_and_off_spellings() {
    let default = Some(JetStreamOptions::default());
    for on in ["true", "on", "yes", "enabled", "Enable", "\"ENABLED\""] {
        assert_eq!(
            jetstream(&format!("jetstream: {on}\n")),
            (default.clone(), None),
            "{on}"
        );
    }
    for off in ["false", "off", "no", "disabled", "disable"] {
        assert_eq!(
            jetstream(&format!("jetstream: {off}\n")),
            (None, default.clone()),
            "{off}"
        );
    }
    // Off, its settings kept for -js.
    let (on, off) = jetstream("jetstream { enabled: false, store_dir: x }\n");
    assert_eq!(on, None);
    assert_eq!(off.expect("kept").store_dir, "x");
    // A top-level store_dir alone does not turn JetStream on.
    let (on, off) = jetstream("store_dir: \"/top\"\n");
    assert_eq!((on, off.map(|j| j.store_dir)), (None, Some("/top".into())));
    let (on, _) = jetstream("storedir: /top\njetstream: enabled\n");
    assert_eq!(on.expect("on").store_dir, "/top");
    assert_eq!(jetstream("port: 1\n"), (None, None));
}

#[test]
fn jetstream_problems_in_nats_server_words() {
    let cases: &[(&str, &str)] = &[
        (
            "store_dir: a\njetstream { store_dir: b }\n",
            "n.conf:2:13: Duplicate 'store_dir' configuration",
        ),
        (
            "jetstream { store_dir: b }\nstore_dir: a\n",
            "n.conf:2:1: Duplicate 'store_dir' configuration",
        ),
        (
            "jetstream: maybe\n",
            "n.conf:1:1: Expected 'enabled' or 'disabled' for string value, got 'maybe'",
        ),
        (
            "jetstream: 5\n",
            "n.conf:1:1: Expected map, bool or string to define JetStream, got int64",
        ),
        (
            "jetstream { max_mem: \"1Q\" }\n",
            "n.conf:1:13: max_mem_store sizes defined as strings must end in K, M, G, T",
        ),
        (
            "jetstream { max_mem: \"1.5G\" }\n",
            "n.conf:1:13: max_mem_store strconv.ParseInt: parsing \"1.5\": invalid syntax",
        ),
        (
            "jetstream { max_file: \"10g\" }\n",
            "n.conf:1:13: max_file_store sizes defined as strings must end in K, M, G, T",
        ),
        (
            "jetstream { max_file: 1.5 }\n",
            "n.conf:1:13: max_file_store must be int64 or string",
        ),
        (
            "jetstream { sync_interval: \"bad\" }\n",
            "n.conf:1:13: error parsing sync_interval: time: invalid duration \"bad\"",
        ),
        (
            "jetstream { foo: 1 }\n",
            "n.conf:1:13: unknown field \"foo\"",
        ),
        (
            "jetstream { unique_tag: az }\n",
            "n.conf:1:13: \"unique_tag\" is not supported yet: natrix does not have clustering yet",
        ),
        (
            "jetstream { max_buffered_msgs: 10 }\n",
            "n.conf:1:13: \"max_buffered_msgs\" is not supported yet: natrix does not have stream ingest buffer limits yet",
        ),
        (
            "default_js_domain: { a: b }\n",
            "n.conf:1:1: \"default_js_domain\" is not supported yet: natrix does not have leaf nodes yet",
        ),
    ];
    for (text, want) in cases {
        assert_eq!(errors(text), [*want], "{text}");
    }
    // An error that stops the block leaves JetStream off, as in nats-server.
    let (o, p, problems) = load("jetstream { max_mem: true }\n");
    assert_eq!(problems.errors.len(), 1);
    assert_eq!((o.jetstream, p.jetstream_off.is_some()), (None, true));
    // A bare number of seconds is taken with nats-server's warning.
    let (o, _, problems) = load("jetstream { sync_interval: 5 }\n");
    assert_eq!(
        o.jetstream.expect("on").sync_interval,
        Some(Duration::from_secs(5))
    );
    assert_eq!(
        problems.report(),
        "n.conf:1:13: invalid use of field \"sync_interval\": sync_interval should be converted to a duration\n"
    );
    // The nats-server text places errors as nats-server does.
    let map = conf::parse(
        "jetstream { max_mem: \"1Q\" }\n",
        "n.conf",
        &MemSource::new(),
    )
    .unwrap();
    let problems = apply(
        &map,
        &mut Options::default(),
        &mut ProcessOptions::default(),
    );
    assert_eq!(
        problems.errors[0].nats_server_text(),
        "n.conf:1:12: max_mem_store sizes defined as strings must end in K, M, G, T"
    );
}

#[test]
fn a_jetstream_domain_must_fit_in_one_subject_token() {
    let check = |domain: &str| {
        let (o, _, problems) = load(&format!("jetstream {{ domain: {domain:?} }}\n"));
        assert!(problems.errors.is_empty(), "{problems:?}");
        o.validate()
    };
    assert_eq!(check("hub"), Ok(()));
    assert_eq!(
        check("a b"),
        Err("invalid domain name: derived \"$JS.a b.API.>\" is not a valid subject".into())
    );
    assert_eq!(
        check("a.b"),
        Err("invalid domain name: may not contain ., * or >".into())
    );
    assert_eq!(
        check("*"),
        Err("invalid domain name: may not contain ., * or >".into())
    );
}

#[test]
fn tls_between_servers() {
    let (o, _, p) = load(
        "cluster {\n  name: c\n  tls { cert_file: p.pem, key_file: p.key, ca_file: ca.pem, insecure: true }\n}\ngateway {\n  name: g\n  tls { cert_file: p.pem, key_file: p.key, ca_file: ca.pem, timeout: 3 }\n}\n",
    );
    assert!(p.errors.is_empty(), "{p:?}");
    let route = o
        .cluster
        .as_ref()
        .and_then(|c| c.tls.clone())
        .expect("route tls");
    assert!(route.verify && route.insecure, "both ways, always");
    assert_eq!(route.timeout, Duration::from_secs(2));
    let gateway = o
        .gateway
        .as_ref()
        .and_then(|g| g.tls.clone())
        .expect("gateway tls");
    assert_eq!(gateway.timeout, Duration::from_secs(3));
    // A remote gateway's own block, with the same rules.
    let (o, _, p) = load(
        "gateway {\n  name: g\n  gateways: [ { name: h, url: \"nats://h:7222\", tls { cert_file: a, key_file: b, ca_file: c } } ]\n}\n",
    );
    assert!(p.errors.is_empty(), "{p:?}");
    let g = o.gateway.as_ref().expect("gateway");
    assert!(g.tls.is_none());
    assert!(g.gateways[0].tls.as_ref().is_some_and(|t| t.verify));
    let e = errors(
        "gateway { name: g, gateways: [ { name: h, url: \"h:1\", tls { cert_file: a, key_file: b } } ] }\n",
    );
    assert!(e[0].contains("set 'ca_file'"), "{e:?}");
    // The peer's certificate is checked against a CA: natrix takes none
    // from the system.
    let e = errors("cluster { name: c, tls { cert_file: a, key_file: b } }\n");
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(e[0].contains("set 'ca_file'"), "{e:?}");
    let e = errors(
        "gateway { name: g, tls { cert_file: a, key_file: b, ca_file: c, handshake_first: true } }\n",
    );
    assert!(e[0].contains("do not apply to gateways"), "{e:?}");
    // Leaf nodes: a hub's block is the clients' one; a remote's needs a
    // CA (or insecure) and shows a certificate only if it has one.
    let (o, _, p) = load(
        "leafnodes {\n  tls { cert_file: h.pem, key_file: h.key }\n  remotes: [ { url: \"nats-leaf://h:7422\", tls { ca_file: ca.pem } } ]\n}\n",
    );
    assert!(p.errors.is_empty(), "{p:?}");
    let l = o.leafnodes.as_ref().expect("leafnodes");
    assert!(l.tls.as_ref().is_some_and(|t| !t.verify));
    let remote = l.remotes[0].tls.as_ref().expect("remote tls");
    assert_eq!(
        (remote.cert_file.as_str(), remote.ca_file.as_deref()),
        ("", Some("ca.pem"))
    );
    let e =
        errors("leafnodes { remotes: [ { url: \"h:1\", tls { cert_file: a, key_file: b } } ] }\n");
    assert!(e[0].contains("set 'ca_file'"), "{e:?}");
    let e = errors("leafnodes { tls { cert_file: a, key_file: b, verify: true } }\n");
    assert!(e[0].contains("set 'ca_file'"), "{e:?}");
}

#[test]
fn leaf_node_keys_credentials_and_users() {
    let key = nkeys::KeyPair::new_from_raw(nkeys::KeyPairType::User, [4; 32]).unwrap();
    let (seed, public) = (key.seed().unwrap(), key.public_key());
    let (o, _, p) = load(&format!(
        "leafnodes {{\n  port: 7422\n  authorization {{ users: [ {{ user: l, password: p, account: A }} ] }}\n  \
         remotes: [ {{ url: \"h:1\", credentials: \"/x/u.creds\" }}, {{ url: \"h:2\", nkey: {seed} }} ]\n}}\n"
    ));
    assert!(p.errors.is_empty(), "{p:?}");
    let l = o.leafnodes.as_ref().expect("leafnodes");
    assert_eq!(l.users[0].account.as_deref(), Some("A"));
    assert_eq!(
        l.remotes[0].credentials.as_ref().map(|c| c.path.as_str()),
        Some("/x/u.creds")
    );
    assert_eq!(l.remotes[1].nkey.as_deref(), Some(seed.as_str()));
    let (o, _, p) = load(&format!(
        "leafnodes {{ port: 7422, authorization {{ nkey: {public}, account: A }} }}\n"
    ));
    assert!(p.errors.is_empty(), "{p:?}");
    assert_eq!(o.leafnodes.unwrap().nkey, Some(public));
    let (o, _, p) = load(
        "leafnodes { remotes: [ { url: \"h:1\", deny_imports: [\"a.>\", b], deny_exports: c.* } ] }\n",
    );
    assert!(p.errors.is_empty(), "{p:?}");
    let r = &o.leafnodes.unwrap().remotes[0];
    assert_eq!(
        (r.deny_imports.clone(), r.deny_exports.clone()),
        (vec!["a.>".to_string(), "b".into()], vec!["c.*".to_string()])
    );
    // nats-server's refusals.
    let e = errors("leafnodes { remotes: [ { url: \"h:1\", deny_imports: \"a..b\" } ] }\n");
    assert!(e[0].contains("is not a valid subject"), "{e:?}");
    let (o, _, p) = load("leafnodes { port: 7422, advertise: \"edge.example.com:7000\" }\n");
    assert!(p.errors.is_empty(), "{p:?}");
    assert_eq!(
        o.leafnodes.unwrap().advertise.as_deref(),
        Some("edge.example.com:7000")
    );
    let (o, _, p) = load(
        "leafnodes { port: 7422, no_advertise: true, remotes: [ { url: \"h:1\", \
         ignore_discovered_servers: true, no_randomize: true } ] }\n",
    );
    assert!(p.errors.is_empty(), "{p:?}");
    let l = o.leafnodes.unwrap();
    assert!(l.no_advertise && l.remotes[0].ignore_discovered_servers && l.remotes[0].no_randomize);
    let (o, _, p) = load(
        "cluster { port: 6222, permissions { import: [\"in.>\"], export: { deny: \"s.>\" } } }\n",
    );
    assert!(p.errors.is_empty(), "{p:?}");
    let perms = o.cluster.unwrap().permissions.unwrap();
    assert_eq!(perms.publish.unwrap().allow, Some(vec!["in.>".to_string()]));
    assert_eq!(perms.subscribe.unwrap().deny, ["s.>"]);
    let e = errors("cluster { port: 6222, permissions { allow_responses: true } }\n");
    assert!(
        e[0].contains("Cluster permissions do not support dynamic responses"),
        "{e:?}"
    );
    let (o, _, p) = load("gateway { name: A, port: 7222, advertise: \"gw.example.com\" }\n");
    assert!(p.errors.is_empty(), "{p:?}");
    assert_eq!(
        o.gateway.unwrap().advertise.as_deref(),
        Some("gw.example.com")
    );
    let e = errors("leafnodes { authorization { nkey: UNOTAKEY } }\n");
    assert!(
        e[0].contains("Not a valid public nkey for leafnode authorization"),
        "{e:?}"
    );
    let e = errors("leafnodes { remotes: [ { url: \"h:1\", nkey: SUNOTASEED } ] }\n");
    assert!(
        e[0].contains("Remote leafnode nkey is not a valid seed: \"SUNOTASEED\""),
        "{e:?}"
    );
    let e = errors(&format!(
        "leafnodes {{ remotes: [ {{ url: \"h:1\", nkey: {seed}, credentials: c }} ] }}\n"
    ));
    assert!(
        e[0].contains("can not have both creds and nkey defined"),
        "{e:?}"
    );
}
