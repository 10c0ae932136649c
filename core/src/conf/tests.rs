use std::time::Duration;

use proptest::prelude::*;

use super::*;

fn parse_with(text: &str, source: &MemSource) -> Map {
    parse(text, "nats.conf", source).unwrap_or_else(|e| panic!("{e}"))
}

fn p(text: &str) -> Map {
    parse_with(text, &MemSource::new())
}

fn err(text: &str) -> ConfError {
    match parse(text, "nats.conf", &MemSource::new()) {
        Ok(m) => panic!("expected an error, got {m:?}"),
        Err(e) => e,
    }
}

fn v(m: &Map, key: &str) -> Value {
    m.get(key)
        .unwrap_or_else(|| panic!("no {key} in {m:?}"))
        .value
        .clone()
}

fn s(text: &str) -> Value {
    Value::String(text.to_string())
}

#[test]
fn three_ways_to_assign() {
    let m = p("a = 1\nb: 2\nc 3\nd=4;e:5,f 6");
    for (k, n) in [("a", 1), ("b", 2), ("c", 3), ("d", 4), ("e", 5), ("f", 6)] {
        assert_eq!(v(&m, k), Value::Integer(n), "{k}");
    }
}

#[test]
fn quoted_keys_keep_spaces() {
    let m = p("\"a b\" = 1\n'c d': 2\nx { \"e f\" = 3, 'g h' 4 }");
    assert_eq!(v(&m, "a b"), Value::Integer(1));
    assert_eq!(v(&m, "c d"), Value::Integer(2));
    let Value::Map(x) = v(&m, "x") else { panic!() };
    assert_eq!(v(&x, "e f"), Value::Integer(3));
    assert_eq!(v(&x, "g h"), Value::Integer(4));
}

#[test]
fn blocks_with_and_without_separator() {
    let m = p("a { b = 1 }\nc = { d: 2 }\ne: {\n  f 3\n  g { h = 4 }\n}\n");
    let Value::Map(a) = v(&m, "a") else { panic!() };
    assert_eq!(v(&a, "b"), Value::Integer(1));
    let Value::Map(c) = v(&m, "c") else { panic!() };
    assert_eq!(v(&c, "d"), Value::Integer(2));
    let Value::Map(e) = v(&m, "e") else { panic!() };
    let Value::Map(g) = v(&e, "g") else { panic!() };
    assert_eq!(v(&g, "h"), Value::Integer(4));
}

#[test]
fn top_level_braces_are_optional() {
    assert_eq!(v(&p("{ a = 1 }"), "a"), Value::Integer(1));
}

#[test]
fn arrays_split_by_commas_or_newlines() {
    let m = p("a = [x, y, z]\nb = [\n  x\n  y, z\n]\nc = []\nd = [[p, q], {r = s}]");
    let names = |val: Value| match val {
        Value::Array(items) => items.into_iter().map(|i| i.value).collect::<Vec<_>>(),
        other => panic!("{other:?}"),
    };
    assert_eq!(names(v(&m, "a")), vec![s("x"), s("y"), s("z")]);
    assert_eq!(names(v(&m, "b")), vec![s("x"), s("y"), s("z")]);
    assert!(names(v(&m, "c")).is_empty());
    let d = names(v(&m, "d"));
    assert!(matches!(&d[0], Value::Array(inner) if inner.len() == 2));
    assert!(matches!(&d[1], Value::Map(inner) if v(inner, "r") == s("s")));
}

#[test]
fn numbers_end_at_commas_but_not_at_a_closing_bracket() {
    // nats-server 2.9.10 reads `2]` as a string; `[1]` is an error there too.
    let m = p("a = [1, 2\n]\nb = [x, 2 ]\n");
    assert!(matches!(v(&m, "a"), Value::Array(a) if a.len() == 2));
    assert!(matches!(v(&m, "b"), Value::Array(b) if b[1].value == Value::Integer(2)));
    let e = err("a = [1]\n");
    assert_eq!(
        e.nats_server_text(),
        "Parse error on line 2: 'Expected an array value terminator \",\" or an array \
         terminator \"]\", but got '\0' instead.'"
    );
}

#[test]
fn comments_of_both_kinds() {
    let m = p(
        "# one\n// two\na = 1 # three\nb = 2 // four\nc { # five\n d = 3 // six\n}\n\
               e = [ # seven\n 1, // eight\n 2\n]\n",
    );
    assert_eq!(v(&m, "a"), Value::Integer(1));
    assert_eq!(v(&m, "b"), Value::Integer(2));
    assert_eq!(m.len(), 4);
}

#[test]
fn string_forms() {
    let m = p(concat!(
        "a = bare\n",
        "b = \"tab\\tnl\\ncr\\rq\\\"bs\\\\hex\\x41\"\n",
        "c = 'raw \\t stays'\n",
        "d = \"\\u00e9\\U0001F600\"\n",
        "e = (\n  line one\n  line two )\n)\n",
        "f = \"\"\n",
        "g = b\\tc\n",
    ));
    assert_eq!(v(&m, "a"), s("bare"));
    assert_eq!(v(&m, "b"), s("tab\tnl\ncr\rq\"bs\\hexA"));
    assert_eq!(v(&m, "c"), s("raw \\t stays"));
    assert_eq!(v(&m, "d"), s("\u{e9}\u{1F600}"));
    assert_eq!(v(&m, "e"), s("\n  line one\n  line two )\n"));
    assert_eq!(v(&m, "f"), s(""));
    assert_eq!(v(&m, "g"), s("b\tc"));
}

#[test]
fn block_string_closed_at_end_of_input_keeps_its_paren() {
    assert_eq!(v(&p("a = (\nx\n)"), "a"), s("\nx\n)"));
}

#[test]
fn integers_with_size_suffixes() {
    let m = p(
        "a = 1k\nb = 1kb\nc = 1Ki\nd = 1KIB\ne = 2m\nf = 2MB\ng = 3g\nh = 3gib\n\
               i = 1t\nj = 1tb\nk = 1p\nl = 1pi\nm = 1e\nn = 1eb\no = -5k\np = -12\nq = 007",
    );
    let k = 1024i64;
    for (key, n) in [
        ("a", 1000),
        ("b", k),
        ("c", k),
        ("d", k),
        ("e", 2_000_000),
        ("f", 2 * k * k),
        ("g", 3_000_000_000),
        ("h", 3 * k * k * k),
        ("i", 1_000_000_000_000),
        ("j", k.pow(4)),
        ("k", 1_000_000_000_000_000),
        ("l", k.pow(5)),
        ("m", 1_000_000_000_000_000_000),
        ("n", k.pow(6)),
        ("o", -5000),
        ("p", -12),
        ("q", 7),
    ] {
        assert_eq!(v(&m, key), Value::Integer(n), "{key}");
    }
}

#[test]
fn integer_errors() {
    assert_eq!(
        err("a = 99999999999999999999").nats_server_text(),
        "integer '99999999999999999999' is out of the range"
    );
    assert_eq!(
        err("a = 10EB").message,
        "integer '10EB' is out of the range"
    );
    assert_eq!(
        err("a = 1kbib").message,
        "expected integer, but got '1kbib'"
    );
}

#[test]
fn floats_bools_and_datetimes() {
    let m = p(
        "a = 1.5\nb = -0.25\nc = yes\nd = OFF\ne = True\nf = no\ng = on\nh = false\n\
               i = 2006-01-02T15:04:05Z\n",
    );
    assert_eq!(v(&m, "a"), Value::Float(1.5));
    assert_eq!(v(&m, "b"), Value::Float(-0.25));
    for (key, b) in [("c", true), ("d", false), ("e", true), ("f", false)] {
        assert_eq!(v(&m, key), Value::Bool(b), "{key}");
    }
    assert_eq!(v(&m, "g"), Value::Bool(true));
    assert_eq!(v(&m, "h"), Value::Bool(false));
    assert_eq!(v(&m, "i"), Value::Datetime("2006-01-02T15:04:05Z".into()));
    assert_eq!(
        err("a = 2006-02-29T15:04:05Z").nats_server_text(),
        "expected Zulu formatted DateTime, but got '2006-02-29T15:04:05Z'"
    );
}

#[test]
fn addresses_and_durations_stay_strings_but_2m_is_a_number() {
    let m = p(
        "a = 1.2.3.4:4222\nb = 0.0.0.0\nc = 500ms\nd = 10s\ne = nats://h:4222\n\
               f = localhost:8222\ng = 2m\nh = \"2m\"\n",
    );
    assert_eq!(v(&m, "a"), s("1.2.3.4:4222"));
    assert_eq!(v(&m, "b"), s("0.0.0.0"));
    assert_eq!(v(&m, "c"), s("500ms"));
    assert_eq!(v(&m, "d"), s("10s"));
    assert_eq!(v(&m, "e"), s("nats://h:4222"));
    assert_eq!(v(&m, "f"), s("localhost:8222"));
    // As in nats-server: an unquoted `2m` is two million; quote durations.
    assert_eq!(v(&m, "g"), Value::Integer(2_000_000));
    assert_eq!(v(&m, "h"), s("2m"));
}

#[test]
fn keys_keep_their_case_and_are_found_in_any_case() {
    let m = p("Max_Payload = 1\n");
    assert_eq!(m.iter().next().unwrap().key, "Max_Payload");
    assert_eq!(v(&m, "max_payload"), Value::Integer(1));
    assert!(m.get_exact("max_payload").is_none());
}

#[test]
fn a_repeated_key_keeps_the_last_value() {
    let m = p("a = 1\nb = 2\na = 3\n");
    assert_eq!(v(&m, "a"), Value::Integer(3));
    assert_eq!(m.len(), 2);
}

#[test]
fn positions_point_at_keys_and_values() {
    let m = p("a = 1\n  bb: \"x\"\n");
    let b = m.entry("bb").unwrap();
    assert_eq!((b.key_pos.line, b.key_pos.column), (2, 3));
    assert_eq!((b.value.pos.line, b.value.pos.column), (2, 8));
    assert_eq!(&*b.key_pos.file, "nats.conf");
    let a = m.entry("a").unwrap();
    // nats-server counts columns on line 1 from zero and elsewhere from one.
    assert_eq!((a.key_pos.column, a.key_pos.nats_column()), (1, 0));
    assert_eq!(b.key_pos.nats_column(), 3);
}

#[test]
fn variables_walk_out_through_blocks() {
    let m = p("x = 1\ny { x = 2\n z = $x }\nw = $x\nq { r { t = $x } }\n");
    let Value::Map(y) = v(&m, "y") else { panic!() };
    assert_eq!(v(&y, "z"), Value::Integer(2));
    assert_eq!(v(&m, "w"), Value::Integer(1));
    assert!(m.entry("x").unwrap().used_as_variable);
    assert!(y.entry("x").unwrap().used_as_variable);
    assert!(!m.entry("w").unwrap().used_as_variable);
}

#[test]
fn variables_are_case_sensitive_and_must_be_defined_first() {
    let e = err("A = 1\nb = $a\n");
    assert_eq!(
        e.nats_server_text(),
        "variable reference for 'a' on line 2 can not be found"
    );
    assert_eq!((e.pos.line, e.pos.column), (2, 6));
    assert!(err("b = $a\na = 1\n").message.contains("'a'"));
}

#[test]
fn variables_come_from_the_environment_parsed_as_values() {
    let src = MemSource::new()
        .var("PORT", "4222")
        .var("HOSTS", "[a, b]")
        .var("NAME", "\"my server\"")
        .var("BAD", "hello world");
    let m = parse_with("port = $PORT\nhosts = $HOSTS\nname = $NAME\n", &src);
    assert_eq!(v(&m, "port"), Value::Integer(4222));
    assert!(matches!(v(&m, "hosts"), Value::Array(a) if a.len() == 2));
    assert_eq!(v(&m, "name"), s("my server"));
    let e = parse("x = $BAD", "n.conf", &src).unwrap_err();
    assert_eq!(
        e.nats_server_text(),
        "variable reference for 'BAD' on line 1 could not be parsed: Parse error on line 1: \
         'Expected a top-level value to end with a new line, comment or EOF, but got 'w' \
         instead.'"
    );
}

#[test]
fn a_self_referencing_environment_variable_is_bounded() {
    let src = MemSource::new().var("LOOP", "$LOOP");
    assert!(parse("x = $LOOP", "n.conf", &src).is_err());
}

#[test]
fn bcrypt_hashes_are_not_variables() {
    let m = p("password = $2a$11$W2zko751KUvVy59mUTWmpOdWjpEm5qhcCZRd05GjI/sSOT.xtiHyG\n");
    assert_eq!(
        v(&m, "password"),
        s("$2a$11$W2zko751KUvVy59mUTWmpOdWjpEm5qhcCZRd05GjI/sSOT.xtiHyG")
    );
}

#[test]
fn includes_are_inserted_in_place_relative_to_the_including_file() {
    let src = MemSource::new()
        .file(
            "/etc/nats/auth.conf",
            "users = [{user: a}]\ninclude sub/more.conf\n",
        )
        .file("/etc/nats/sub/more.conf", "deep = true\n")
        .file("/etc/nats/top.conf", "port = 1\n");
    let text = "include top.conf\nauthorization {\n  include 'auth.conf'\n  timeout = 2\n}\n";
    let m = parse(text, "/etc/nats/nats.conf", &src).unwrap();
    assert_eq!(v(&m, "port"), Value::Integer(1));
    let Value::Map(auth) = v(&m, "authorization") else {
        panic!()
    };
    assert_eq!(v(&auth, "deep"), Value::Bool(true));
    assert_eq!(v(&auth, "timeout"), Value::Integer(2));
    assert_eq!(
        &*auth.entry("deep").unwrap().key_pos.file,
        "/etc/nats/sub/more.conf"
    );
}

#[test]
fn an_absolute_include_is_joined_to_the_directory_as_nats_server_does() {
    let src = MemSource::new().file("/etc/nats/abs/x.conf", "a = 1\n");
    let m = parse("include /abs/x.conf", "/etc/nats/nats.conf", &src).unwrap();
    assert_eq!(v(&m, "a"), Value::Integer(1));
    assert_eq!(parse::join("a/b", "../c/./d"), "a/c/d");
    assert_eq!(parse::join(".", "x"), "x");
    assert_eq!(parse::clean("/../x//y/"), "/x/y");
}

#[test]
fn include_errors_say_which_file() {
    let src = MemSource::new().file("inner.conf", "a {\n  b = [1 2]\n}\n");
    let e = parse("x = 1\ninclude ./inner.conf\n", "outer.conf", &src).unwrap_err();
    assert_eq!(
        e.nats_server_text(),
        "error parsing include file './inner.conf', Parse error on line 2: 'Expected an \
         array value terminator \",\" or an array terminator \"]\", but got '2' instead.'"
    );
    assert_eq!(&*e.pos.file, "inner.conf");
    assert_eq!(e.included_from.len(), 1);
    assert_eq!(e.included_from[0].line, 2);
    let missing = err("include nothere.conf\n");
    assert_eq!(
        missing.nats_server_text(),
        "error parsing include file 'nothere.conf', open nothere.conf: no such file or directory"
    );
}

#[test]
fn include_cycles_are_errors() {
    let src = MemSource::new()
        .file("a.conf", "include b.conf\n")
        .file("b.conf", "include ./a.conf\n");
    let e = parse("include a.conf", "a.conf", &src).unwrap_err();
    assert!(e.message.contains("include cycle"), "{e}");
}

#[test]
fn nesting_is_bounded() {
    let deep = "a { ".repeat(MAX_DEPTH + 10);
    assert!(err(&deep).message.contains("Nesting is deeper"));
    let arrays = format!("a = {}", "[".repeat(10_000));
    assert!(err(&arrays).message.contains("Nesting is deeper"));
    let ok = format!("a = {}{}", "[".repeat(50), "]".repeat(50));
    p(&ok);
}

/// Texts verified against `nats-server -t -c` 2.9.10.
#[test]
fn syntax_errors_match_nats_server() {
    let cases = [
        (
            "port: 4222\n  x = \"abc\\q\"\n",
            "Parse error on line 2: 'Invalid escape character 'q'. Only the following escape \
             characters are allowed: \\xXX, \\t, \\n, \\r, \\\", \\\\.'",
        ),
        (
            "port: 4222\nx { a = 1 b\n",
            "Parse error on line 2: 'Expected a map value terminator \",\" or a map \
             terminator \"}\", but got 'b' instead.'",
        ),
        (
            "a = [1, 2,, 3]\n",
            "Parse error on line 1: 'Unexpected array value terminator ','.'",
        ),
        (
            "a = 1 2\n",
            "Parse error on line 1: 'Expected a top-level value to end with a new line, \
             comment or EOF, but got '2' instead.'",
        ),
        (
            "a = .5\n",
            "Parse error on line 1: 'Floats must start with a digit'",
        ),
        (
            "a = 2006-01-0\n",
            "Parse error on line 2: 'Expected digit in ISO8601 datetime, but found '\\n' \
             instead.'",
        ),
        (
            "  = 3\n",
            "Parse error on line 1: 'Unexpected key separator '=''",
        ),
        (
            "a =\n",
            "Parse error on line 2: 'Expected value but found new line'",
        ),
        (
            "a = 12-1\n",
            "Parse error on line 1: 'All ISO8601 dates must be in full Zulu form.'",
        ),
        ("a = \"x", "Parse error on line 1: 'Unexpected EOF.'"),
        (
            "a = (\nfoo\n",
            "Parse error on line 3: 'Unexpected EOF processing block.'",
        ),
        (
            "a { b = 1\n",
            "Parse error on line 2: 'Unexpected EOF processing map.'",
        ),
        (
            "a { ] }\n",
            "Parse error on line 1: 'Unexpected array end ']' processing map.'",
        ),
        (
            "a = -x\n",
            "Parse error on line 1: 'Expected a digit but got 'x'.'",
        ),
        (
            "a = 1.\n",
            "Parse error on line 2: 'Floats must have a digit after the '.', but got '\\n' instead.'",
        ),
        (
            "a = \"\\xzz\"\n",
            "Parse error on line 1: 'Expected two hexadecimal digits after '\\x', but got 'zz''",
        ),
        (
            "include\n",
            "Parse error on line 2: 'Expected include value but found new line'",
        ),
        (
            "include [x]\n",
            "Parse error on line 1: 'Expected include value but found start of an array'",
        ),
        (
            "include 5\n",
            "Parse error on line 1: 'Expected include value but found start of a number'",
        ),
    ];
    for (text, want) in cases {
        assert_eq!(err(text).nats_server_text(), want, "{text:?}");
    }
}

#[test]
fn errors_display_with_file_line_and_column() {
    let e = parse("a = 1\nb = [1, 2,, 3]\n", "x.conf", &MemSource::new()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "x.conf:2:11: Unexpected array value terminator ','."
    );
}

#[test]
fn durations_follow_go() {
    let m = p(
        "a = \"1h2m3.5s\"\nb = \"500ms\"\nc = \"2us\"\nd = \"1µs\"\ne = 30\nf = \"x\"\n\
               g = \"5\"\nh = \"5y\"\ni = \"-1s\"\nj = \"0\"\nk = true\n",
    );
    let mut warnings = Vec::new();
    let d = |key: &str, w: &mut Vec<Warning>| m.entry(key).unwrap().field().as_duration(w);
    assert_eq!(
        d("a", &mut warnings).unwrap(),
        Duration::from_millis(3_723_500)
    );
    assert_eq!(d("b", &mut warnings).unwrap(), Duration::from_millis(500));
    assert_eq!(d("c", &mut warnings).unwrap(), Duration::from_micros(2));
    assert_eq!(d("d", &mut warnings).unwrap(), Duration::from_micros(1));
    assert_eq!(d("j", &mut warnings).unwrap(), Duration::ZERO);
    assert!(warnings.is_empty());
    assert_eq!(d("e", &mut warnings).unwrap(), Duration::from_secs(30));
    assert_eq!(
        warnings[0].nats_server_text(),
        "nats.conf:5:1: invalid use of field \"e\": e should be converted to a duration"
    );
    let text = |key: &str| {
        d(key, &mut Vec::new())
            .unwrap_err()
            .nats_server_text()
            .to_string()
    };
    assert_eq!(
        text("f"),
        "nats.conf:6:1: error parsing f: time: invalid duration \"x\""
    );
    assert_eq!(
        text("g"),
        "nats.conf:7:1: error parsing g: time: missing unit in duration \"5\""
    );
    assert_eq!(
        text("h"),
        "nats.conf:8:1: error parsing h: time: unknown unit \"y\" in duration \"5y\""
    );
    assert!(text("i").contains("negative"));
    assert!(text("k").contains("interface {} is bool, not string"));
}

#[test]
fn go_duration_edge_cases() {
    use access::parse_go_duration as go;
    assert_eq!(go("1.5h"), Ok(5_400_000_000_000));
    assert_eq!(go(".5s"), Ok(500_000_000));
    assert_eq!(go("1s500ms"), Ok(1_500_000_000));
    assert_eq!(go("-1.5s"), Ok(-1_500_000_000));
    assert_eq!(go("+3ns"), Ok(3));
    assert_eq!(go("9223372036s"), Ok(9_223_372_036_000_000_000));
    assert!(go("9223372037s").is_err());
    assert!(go("").is_err());
    assert!(go(".s").is_err());
    assert!(go("1.s").is_ok());
}

#[test]
fn typed_accessors() {
    let m = p(
        "port = 4222\nrandom = -1\nbig = 70000\nsize = 8MB\nneg = -1\nflag = on\n\
               name = x\nratio = 0.5\nlist = [a]\nblock {}\n",
    );
    let f = |key: &str| m.entry(key).unwrap().field();
    assert_eq!(f("port").as_u16_port().unwrap(), 4222);
    assert_eq!(f("random").as_u16_port().unwrap(), 0);
    assert!(f("big").as_u16_port().is_err());
    assert_eq!(f("size").as_size().unwrap(), 8 * 1024 * 1024);
    assert!(f("neg").as_size().is_err());
    assert!(f("flag").as_bool().unwrap());
    assert_eq!(f("name").as_str().unwrap(), "x");
    assert_eq!(f("ratio").as_f64().unwrap(), 0.5);
    assert_eq!(f("port").as_f64().unwrap(), 4222.0);
    assert_eq!(f("list").as_array().unwrap().len(), 1);
    assert!(f("block").as_map().unwrap().is_empty());
    let e = f("name").as_i64().unwrap_err();
    assert_eq!(
        e.nats_server_text(),
        "nats.conf:7:1: interface conversion: interface {} is string, not int64"
    );
    let item = &f("list").as_array().unwrap()[0];
    assert_eq!(item.field("list").as_str().unwrap(), "a");
}

const FULL_CONF: &str = r#"
# A realistic server configuration.
server_name: $NAME
listen: 0.0.0.0:4222
http: 8222
max_payload: 8MB
max_pending: 64MB
ping_interval: "2m"
write_deadline: "10s"
debug: false
trace: off

PASS = "s3cr3t"

authorization {
  timeout: 2
  users = [
    {user: alice, password: $PASS, permissions: {publish: ["orders.>"], subscribe: [">"]}}
    {user: bob, password: "$2a$11$W2zko751KUvVy59mUTWmpOdWjpEm5qhcCZRd05GjI"}
  ]
}

accounts {
  SYS: { users: [{user: sys, password: sys}] }
  APP: {
    jetstream: enabled
    users: [{user: app, password: app}]
    exports: [{stream: "events.>"}]
  }
}
system_account: SYS

cluster {
  name: east
  listen: 0.0.0.0:6222
  routes: [
    nats-route://10.0.0.2:6222
    nats-route://10.0.0.3:6222
  ]
}

tls {
  cert_file: "./certs/server.pem"
  key_file: "./certs/key.pem"
  timeout: 2.5
  verify: true
}

jetstream {
  store_dir: "/data/js"
  max_memory_store: 1GB
  max_file_store: 10GiB
}

include ./limits.conf
"#;

const FULL_TOML: &str = r#"
server_name = "east-1"
listen = "0.0.0.0:4222"
http = 8222
max_payload = 8388608
max_pending = 67108864
ping_interval = "2m"
write_deadline = "10s"
debug = false
trace = false
PASS = "s3cr3t"
system_account = "SYS"
max_connections = 1000

[authorization]
timeout = 2
users = [
  { user = "alice", password = "s3cr3t", permissions = { publish = ["orders.>"], subscribe = [">"] } },
  { user = "bob", password = "$2a$11$W2zko751KUvVy59mUTWmpOdWjpEm5qhcCZRd05GjI" },
]

[accounts.SYS]
users = [{ user = "sys", password = "sys" }]

[accounts.APP]
jetstream = "enabled"
users = [{ user = "app", password = "app" }]
exports = [{ stream = "events.>" }]

[cluster]
name = "east"
listen = "0.0.0.0:6222"
routes = ["nats-route://10.0.0.2:6222", "nats-route://10.0.0.3:6222"]

[tls]
cert_file = "./certs/server.pem"
key_file = "./certs/key.pem"
timeout = 2.5
verify = true

[jetstream]
store_dir = "/data/js"
max_memory_store = 1073741824
max_file_store = 10737418240
"#;

fn full_source() -> MemSource {
    MemSource::new()
        .var("NAME", "east-1")
        .file("/etc/nats/limits.conf", "max_connections: 1k\n")
}

#[test]
fn a_full_configuration() {
    let m = parse(FULL_CONF, "/etc/nats/nats.conf", &full_source()).unwrap();
    assert_eq!(v(&m, "server_name"), s("east-1"));
    assert_eq!(v(&m, "max_connections"), Value::Integer(1000));
    assert!(m.entry("PASS").unwrap().used_as_variable);
    let auth = m.entry("authorization").unwrap().field().as_map().unwrap();
    let users = auth.entry("users").unwrap().field().as_array().unwrap();
    let alice = users[0].field("users").as_map().unwrap();
    assert_eq!(v(alice, "password"), s("s3cr3t"));
    let cluster = m.entry("cluster").unwrap().field().as_map().unwrap();
    assert_eq!(
        cluster
            .entry("routes")
            .unwrap()
            .field()
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let js = m.entry("jetstream").unwrap().field().as_map().unwrap();
    assert_eq!(
        js.entry("max_file_store")
            .unwrap()
            .field()
            .as_size()
            .unwrap(),
        10 << 30
    );
}

#[test]
fn toml_gives_the_same_tree() {
    let conf = parse(FULL_CONF, "/etc/nats/nats.conf", &full_source()).unwrap();
    let toml = parse_toml(FULL_TOML, "nats.toml").unwrap();
    assert!(
        Value::Map(conf.clone()).same_as(&Value::Map(toml.clone())),
        "conf: {conf:#?}\ntoml: {toml:#?}"
    );
    let listen = toml.entry("listen").unwrap();
    assert_eq!((listen.key_pos.line, listen.key_pos.column), (3, 1));
    assert_eq!((listen.value.pos.line, listen.value.pos.column), (3, 10));
}

#[test]
fn toml_errors_have_positions() {
    let e = parse_toml("a = 1\nb = = 2\n", "x.toml").unwrap_err();
    assert_eq!(e.pos.line, 2, "{e}");
    assert!(e.to_string().starts_with("x.toml:2:"), "{e}");
    assert!(parse_toml(&"a = [".repeat(100_000), "x.toml").is_err());
    let e = parse_toml("a = 99999999999999999999\n", "x.toml").unwrap_err();
    assert!(e.message.contains("a"), "{e}");
}

#[test]
fn toml_datetimes_and_floats() {
    let m = parse_toml("a = 2006-01-02T15:04:05Z\nb = 1.5\nc = inf\n", "x.toml").unwrap();
    assert_eq!(v(&m, "a"), Value::Datetime("2006-01-02T15:04:05Z".into()));
    assert_eq!(v(&m, "b"), Value::Float(1.5));
    assert_eq!(v(&m, "c"), Value::Float(f64::INFINITY));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn never_panics_on_any_text(text in "\\PC{0,200}") {
        let src = MemSource::new().var("A", "$A").file("x", "include x");
        let _ = parse(&text, "f.conf", &src);
        let _ = parse_toml(&text, "f.toml");
    }

    #[test]
    fn never_panics_on_config_like_text(
        parts in proptest::collection::vec(
            prop_oneof![
                Just("a"), Just(" "), Just("="), Just(":"), Just("{"), Just("}"),
                Just("["), Just("]"), Just(","), Just(";"), Just("\n"), Just("#"),
                Just("//"), Just("\""), Just("'"), Just("("), Just(")"), Just("\\"),
                Just("\\x"), Just("\\u"), Just("$"), Just("$a"), Just("1"), Just("-"),
                Just("."), Just("k"), Just("b"), Just("include "), Just("x"),
                Just("2006-01-02T15:04:05Z"), Just("é"), Just("\r"), Just("\t"),
                Just("\0"), Just("yes"), Just("1.2.3"),
            ],
            0..60,
        )
    ) {
        let text: String = parts.concat();
        let src = MemSource::new().var("a", "[1, {b = $a}]").file("x", "a = 1\ninclude x");
        let _ = parse(&text, "f.conf", &src);
        let _ = parse_toml(&text, "f.toml");
    }
}
