//! The command line, parsed once into typed options.

use std::time::Duration;

pub const USAGE: &str = "\
usage: natrix-bench <scenario> [options]

scenarios:
  pub               N publishers, nobody subscribed
  pubsub (or sub)   N publishers, M subscribers each receiving every message
  fanout            1 publisher -> M subscribers (default M = 4)
  queue             1 publisher -> M members of one queue group (default M = 4)
  request           N requesters, M responders in a queue group; latency histogram
  idle              open --conns idle connections and report the server's RSS
  floor             no server: a plain loop reads one publisher's frames from a
                    loopback socket and (--subs 1) writes them to another; its
                    CPU per message is the floor for a server's
  js-pub            JetStream: (re)create a file stream, N publishers each
                    keeping --inflight publishes awaiting their acks; ack
                    rate, ack latency, and a check that every ack came and
                    the stream's sequences have no gap
  js-consume        JetStream: fill a fresh file stream with --msgs messages,
                    then read them all through one durable pull consumer
                    (MSG.NEXT pulls of --batch, one or two outstanding),
                    acking per --ack; only the consume phase is timed
  js-ordered        the same fill, read by an ephemeral ordered push
                    consumer (flow control and idle heartbeats answered,
                    no acks)
  kv-put            key-value: (re)create bucket KV_<--stream>, N clients
                    each keeping --inflight puts (JetStream publishes to
                    $KV.<bucket>.<key>, over --keys keys) awaiting their ack
  kv-get            put --keys keys once, then N clients each keeping
                    --inflight direct gets ($JS.API.DIRECT.GET) in flight
  obj-put           object store: (re)create bucket OBJ_<--stream>, then put
                    one object of --size bytes (10 MiB) again and again, as
                    the clients do: look its meta up (direct get), publish
                    its chunks of --chunk bytes with --inflight awaiting
                    their PubAck, publish the meta (Nats-Rollup: sub) and
                    purge the old chunks; objects/s, MB/s, CPU per MiB
  obj-get           put the object once, then get it again and again: its
                    meta by direct get, every chunk through an ephemeral
                    ordered push consumer (flow control answered), the
                    bytes checked against the meta's size and SHA-256
  fsync-floor       no server: one writer appends --size bytes to a new file
                    in --dir and fsyncs, again and again: the most acks a
                    second a server that syncs before acknowledging can give
                    one publisher with one publish in flight

options:
  --url nats://host:port   server (nats://127.0.0.1:4222)
  --size BYTES             payload size (128)
  --msgs N                 messages in all, split across publishers (1000000;
                           request: 20000 requests per requester)
  --duration D             run for D instead (5s, 500ms, 1m); overrides --msgs
  --subject S              subject (natrix.bench)
  --subjects N             spread messages over N subjects S.0 … S.N-1, each
                           subscriber subscribing to every one (1)
  --pubs N                 publishers or requesters (1)
  --rate R                 publish R messages a second in all (default: as
                           fast as the server takes them)
  --subs M                 subscribers, queue members or responders
  --conns N                idle: connections to open (1000)
  --inflight K             js-pub: publishes awaiting their ack, per
                           publisher (1)
  --stream NAME            js-pub: the stream, deleted and created afresh
                           with subjects S.> (NATRIXBENCH)
  --batch B                js-consume: messages per pull request (1000)
  --ack MODE               js-consume: explicit (+ACK every message), all
                           (+ACK the last of each batch) or none (explicit)
  --expires D              js-consume: each pull request's expiry (30s)
  --chunk BYTES            obj-put, obj-get: chunk size (131072, as the clients)
  --keys N                 kv-put, kv-get: distinct keys (1000)
  --reuse-stream           js-consume, js-ordered: keep a stream that already
                           holds --msgs messages instead of filling it
                           afresh, and leave it after the run
  --count-syncs            js-pub, with --server-pid: count the server's
                           fsync and fdatasync calls with `perf stat`
  --dir PATH               fsync-floor: where the file is written (.)
  --server-pid PID[,PID…]  read the server's CPU time and RSS from /proc,
                           and sample its RSS every 100 ms while running;
                           with several (a cluster), CPU and RSS are summed
  --sub-url URL[,URL…]     pubsub, fanout, queue: subscribers connect to these
                           servers in turn (other members of the publishers'
                           server's cluster), so every message crosses a route
  --after D                with --server-pid: keep the clients connected and
                           idle for D after the run, and report the server's
                           RSS then (0s)
  --json                   one JSON object on stdout instead of the table
  --csv                    a CSV header and one row on stdout instead of the table
  --quiet                  no progress line on stderr
  -h, --help               this text";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    Pub,
    PubSub,
    Fanout,
    Queue,
    Request,
    Idle,
    Floor,
    JsPub,
    JsConsume,
    JsOrdered,
    KvPut,
    KvGet,
    ObjPut,
    ObjGet,
    FsyncFloor,
}

impl Scenario {
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Pub => "pub",
            Scenario::PubSub => "pubsub",
            Scenario::Fanout => "fanout",
            Scenario::Queue => "queue",
            Scenario::Request => "request",
            Scenario::Idle => "idle",
            Scenario::Floor => "floor",
            Scenario::JsPub => "js-pub",
            Scenario::JsConsume => "js-consume",
            Scenario::JsOrdered => "js-ordered",
            Scenario::KvPut => "kv-put",
            Scenario::KvGet => "kv-get",
            Scenario::ObjPut => "obj-put",
            Scenario::ObjGet => "obj-get",
            Scenario::FsyncFloor => "fsync-floor",
        }
    }
}

/// How long the publishers (or requesters) go on.
#[derive(Debug, Clone, Copy)]
pub enum Limit {
    /// Messages in all, split across clients.
    Msgs(u64),
    Duration(Duration),
}

#[derive(Debug, Clone)]
pub struct Options {
    pub scenario: Scenario,
    pub addr: String,
    pub url: String,
    pub size: usize,
    pub limit: Limit,
    pub subject: String,
    pub subjects: usize,
    pub pubs: usize,
    pub subs: usize,
    pub conns: usize,
    pub server_pid: Option<u32>,
    /// More server processes whose CPU and RSS are added (a cluster).
    pub other_pids: Vec<u32>,
    /// Where subscribers connect, in turn (empty: `addr`).
    pub sub_addrs: Vec<String>,
    /// How long to watch the server's memory after the run.
    pub after: Duration,
    /// Publishes a second over all publishers; `None`: as fast as possible.
    pub rate: Option<f64>,
    /// js-pub: publishes awaiting their ack, per publisher.
    pub inflight: usize,
    /// js-pub: the stream's name.
    pub stream: String,
    /// js-pub: count the server's fsyncs with `perf stat`.
    pub count_syncs: bool,
    /// js-consume: messages per pull, how they are acked, pull expiry.
    pub batch: usize,
    pub ack: crate::consume::AckMode,
    pub expires: Duration,
    /// kv-put, kv-get: distinct keys.
    pub keys: usize,
    /// obj-put, obj-get: bytes per chunk.
    pub chunk: usize,
    /// js-consume, js-ordered: keep a stream already filled.
    pub reuse_stream: bool,
    /// fsync-floor: the directory its file goes in.
    pub dir: String,
    pub json: bool,
    pub csv: bool,
    pub quiet: bool,
}

pub enum Parsed {
    Run(Box<Options>),
    Help,
}

pub fn parse(mut args: impl Iterator<Item = String>) -> Result<Parsed, String> {
    let scenario = match args.next().as_deref() {
        None | Some("-h" | "--help" | "help") => return Ok(Parsed::Help),
        Some("pub") => Scenario::Pub,
        Some("pubsub" | "sub") => Scenario::PubSub,
        Some("fanout") => Scenario::Fanout,
        Some("queue") => Scenario::Queue,
        Some("request") => Scenario::Request,
        Some("idle") => Scenario::Idle,
        Some("floor") => Scenario::Floor,
        Some("js-pub") => Scenario::JsPub,
        Some("js-consume") => Scenario::JsConsume,
        Some("js-ordered") => Scenario::JsOrdered,
        Some("kv-put") => Scenario::KvPut,
        Some("kv-get") => Scenario::KvGet,
        Some("obj-put") => Scenario::ObjPut,
        Some("obj-get") => Scenario::ObjGet,
        Some("fsync-floor") => Scenario::FsyncFloor,
        Some(other) => return Err(format!("unknown scenario {other:?}")),
    };
    let mut url = "nats://127.0.0.1:4222".to_string();
    let mut size = None;
    let mut msgs = None;
    let mut duration = None;
    let mut subject = "natrix.bench".to_string();
    let mut subjects = 1;
    let mut pubs = 1;
    let mut subs = None;
    let mut conns = 1000;
    let mut server_pid = None;
    let mut other_pids = Vec::new();
    let mut sub_addrs = Vec::new();
    let mut after = Duration::ZERO;
    let mut rate = None;
    let mut inflight = 1;
    let mut stream = "NATRIXBENCH".to_string();
    let mut count_syncs = false;
    let mut batch = 1000;
    let mut ack = crate::consume::AckMode::Explicit;
    let mut expires = Duration::from_secs(30);
    let mut keys = 1000;
    let mut chunk = crate::obj::CHUNK_BYTES;
    let mut reuse_stream = false;
    let mut dir = ".".to_string();
    let (mut json, mut csv, mut quiet) = (false, false, false);
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--url" => url = value()?,
            "--size" => size = Some(number(&value()?)?),
            "--msgs" => msgs = Some(number::<u64>(&value()?)?),
            "--duration" => duration = Some(parse_duration(&value()?)?),
            "--subject" => subject = value()?,
            "--subjects" => subjects = number(&value()?)?,
            "--pubs" => pubs = number(&value()?)?,
            "--subs" => subs = Some(number(&value()?)?),
            "--conns" => conns = number(&value()?)?,
            "--server-pid" => {
                let v = value()?;
                let mut pids = v.split(',').map(|p| number::<u32>(p.trim()));
                server_pid = pids.next().transpose()?;
                other_pids = pids.collect::<Result<_, _>>()?;
            }
            "--sub-url" => {
                sub_addrs = value()?
                    .split(',')
                    .map(|u| addr_of(u.trim()))
                    .collect::<Result<_, _>>()?;
            }
            "--after" => after = parse_duration(&value()?)?,
            "--rate" => rate = Some(number::<f64>(&value()?)?).filter(|r| *r > 0.0),
            "--inflight" => inflight = number(&value()?)?,
            "--stream" => stream = value()?,
            "--count-syncs" => count_syncs = true,
            "--batch" => batch = number(&value()?)?,
            "--ack" => {
                let v = value()?;
                ack = crate::consume::AckMode::parse(&v)
                    .ok_or_else(|| format!("--ack is explicit, all or none, not {v:?}"))?;
            }
            "--expires" => expires = parse_duration(&value()?)?,
            "--keys" => keys = number(&value()?)?,
            "--chunk" => chunk = number(&value()?)?,
            "--reuse-stream" => reuse_stream = true,
            "--dir" => dir = value()?,
            "--json" => json = true,
            "--csv" => csv = true,
            "--quiet" => quiet = true,
            "-h" | "--help" => return Ok(Parsed::Help),
            _ => return Err(format!("unknown option {flag:?}")),
        }
    }
    let default_subs = match scenario {
        Scenario::Pub
        | Scenario::Idle
        | Scenario::Floor
        | Scenario::JsPub
        | Scenario::JsConsume
        | Scenario::JsOrdered
        | Scenario::KvPut
        | Scenario::KvGet
        | Scenario::ObjPut
        | Scenario::ObjGet
        | Scenario::FsyncFloor => 0,
        Scenario::PubSub | Scenario::Request => 1,
        Scenario::Fanout | Scenario::Queue => 4,
    };
    let subs = subs.unwrap_or(default_subs);
    let pubs = match scenario {
        Scenario::Fanout | Scenario::Queue => 1,
        _ => pubs,
    };
    if pubs == 0 && scenario != Scenario::Idle {
        return Err("--pubs must be at least 1".into());
    }
    if subjects == 0 || (subjects > 1 && scenario == Scenario::Request) {
        return Err("--subjects must be at least 1, and 1 for request".into());
    }
    if subs == 0 && matches!(scenario, Scenario::Request | Scenario::Queue) {
        return Err("--subs must be at least 1".into());
    }
    if batch == 0 || keys == 0 || chunk == 0 {
        return Err("--batch, --keys and --chunk must be at least 1".into());
    }
    let size = size.unwrap_or(match scenario {
        Scenario::ObjPut | Scenario::ObjGet => 10 * 1024 * 1024,
        _ => 128,
    });
    if inflight == 0 {
        return Err("--inflight must be at least 1".into());
    }
    if count_syncs && server_pid.is_none() {
        return Err("--count-syncs needs --server-pid".into());
    }
    let default_msgs = match scenario {
        Scenario::Request => 20_000 * pubs as u64,
        Scenario::JsPub | Scenario::KvPut | Scenario::KvGet => 100_000,
        Scenario::JsConsume | Scenario::JsOrdered => 500_000,
        Scenario::FsyncFloor => 2_000,
        Scenario::ObjPut | Scenario::ObjGet => 10,
        _ => 1_000_000,
    };
    let limit = match (duration, msgs) {
        (Some(d), _) => Limit::Duration(d),
        (None, m) => Limit::Msgs(m.unwrap_or(default_msgs)),
    };
    Ok(Parsed::Run(Box::new(Options {
        scenario,
        addr: addr_of(&url)?,
        url,
        size,
        limit,
        subject,
        subjects,
        pubs,
        subs,
        conns,
        server_pid,
        other_pids,
        sub_addrs,
        after,
        rate,
        inflight,
        stream,
        count_syncs,
        batch,
        ack,
        expires,
        keys,
        chunk,
        reuse_stream,
        dir,
        json,
        csv,
        quiet,
    })))
}

/// `nats://host:port` (or `host:port`) to `host:port`; the port defaults to 4222.
fn addr_of(url: &str) -> Result<String, String> {
    let rest = url.strip_prefix("nats://").unwrap_or(url);
    let host_port = rest
        .rsplit('@')
        .next()
        .unwrap_or(rest)
        .trim_end_matches('/');
    if host_port.is_empty() {
        return Err(format!("bad url {url:?}"));
    }
    if host_port
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
    {
        Ok(host_port.to_string())
    } else {
        Ok(format!("{host_port}:4222"))
    }
}

fn number<T: std::str::FromStr>(s: &str) -> Result<T, String> {
    s.replace('_', "")
        .parse()
        .map_err(|_| format!("not a number: {s:?}"))
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let (digits, unit) = s.split_at(s.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(s.len()));
    let n: f64 = digits.parse().map_err(|_| format!("bad duration {s:?}"))?;
    let secs = match unit {
        "" | "s" => n,
        "ms" => n / 1e3,
        "m" => n * 60.0,
        _ => return Err(format!("bad duration unit in {s:?}")),
    };
    if !(secs > 0.0 && secs.is_finite()) {
        return Err(format!("duration must be positive: {s:?}"));
    }
    Ok(Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(line: &str) -> Options {
        match parse(line.split_whitespace().map(String::from)).unwrap() {
            Parsed::Run(o) => *o,
            Parsed::Help => panic!("help"),
        }
    }

    #[test]
    fn urls_and_defaults() {
        let o = opts("fanout --url nats://10.0.0.1:4333 --pubs 3");
        assert_eq!(o.addr, "10.0.0.1:4333");
        assert_eq!((o.pubs, o.subs), (1, 4), "fanout has one publisher");
        assert_eq!(opts("pub --url localhost").addr, "localhost:4222");
        assert!(matches!(opts("pub --msgs 1_000").limit, Limit::Msgs(1000)));
        assert!(
            matches!(opts("pub --duration 250ms").limit, Limit::Duration(d) if d == Duration::from_millis(250))
        );
    }

    #[test]
    fn jetstream_options() {
        let o = opts("js-pub --pubs 16 --inflight 1_000 --size 1024 --server-pid 7 --count-syncs");
        assert_eq!(o.scenario, Scenario::JsPub);
        assert_eq!((o.pubs, o.inflight, o.size), (16, 1000, 1024));
        assert!(o.count_syncs && o.stream == "NATRIXBENCH");
        assert!(matches!(o.limit, Limit::Msgs(100_000)));
        let o = opts("js-consume --batch 100 --ack all --expires 5s --reuse-stream");
        assert_eq!((o.scenario, o.batch), (Scenario::JsConsume, 100));
        assert_eq!(o.ack, crate::consume::AckMode::All);
        assert_eq!(o.expires, Duration::from_secs(5));
        assert!(o.reuse_stream && matches!(o.limit, Limit::Msgs(500_000)));
        assert_eq!(opts("kv-get --keys 10 --inflight 8").keys, 10);
        let o = opts("obj-put --inflight 8");
        assert_eq!(
            (o.scenario, o.size, o.chunk),
            (Scenario::ObjPut, 10 << 20, 128 << 10)
        );
        assert!(matches!(o.limit, Limit::Msgs(10)) && o.inflight == 8);
        assert_eq!(opts("obj-get --size 1000 --chunk 100").chunk, 100);
        let o = opts("fsync-floor --dir /tmp --size 16");
        assert_eq!((o.scenario, o.dir.as_str()), (Scenario::FsyncFloor, "/tmp"));
        assert_eq!(o.inflight, 1);
    }

    #[test]
    fn refuses_what_it_does_not_know() {
        let bad = |line: &str| parse(line.split_whitespace().map(String::from)).is_err();
        assert!(bad("nope"));
        assert!(bad("pub --bogus 1"));
        assert!(bad("pub --size"));
        assert!(bad("pub --duration 0s"));
        assert!(bad("queue --subs 0"));
        assert!(bad("pub --subjects 0"));
        assert!(bad("request --subjects 10"));
        assert!(bad("js-pub --inflight 0"));
        assert!(bad("js-pub --count-syncs"));
        assert!(bad("js-consume --ack sometimes"));
        assert!(bad("js-consume --batch 0"));
        assert!(bad("obj-put --chunk 0"));
    }
}
