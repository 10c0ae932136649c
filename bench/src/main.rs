//! `natrix-bench` measures a NATS server — natrix or nats-server — from the
//! outside: publish throughput, publish→subscribe, fan-out and queue
//! delivery, request/reply latency percentiles, and the memory idle
//! connections cost. It speaks the protocol through natrix's own fast client
//! path (the core's encoders and `ServerOpParser` over tokio TCP), writes in
//! 64 KiB batches and counts deliveries once per read, so that the tool is
//! not what limits the figures. `js-pub` publishes to a JetStream stream
//! and checks every acknowledgement; `obj-put` and `obj-get` put and get
//! object store objects as the clients do; `fsync-floor` times the disk
//! alone.
//! It is not an official NATS client and not a test: it never decides
//! whether a figure is good (though a JetStream run that loses an ack
//! exits 1). `bench/compare` runs it against both servers.

mod args;
mod conn;
mod consume;
mod floor;
mod frames;
mod fsync_floor;
mod js;
mod obj;
mod procfs;
mod report;

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use args::{Limit, Options, Parsed, Scenario};
use conn::{ClientRun, Conn, SubShared};
use frames::Frames;
use report::{Latency, Report, ServerUse, Side};

/// Subscribers that gain nothing for this long after the publishers are done
/// have lost the rest (a slow-consumer cut, most likely).
const DRAIN_IDLE: Duration = Duration::from_secs(3);

type BoxError = Box<dyn std::error::Error + Send + Sync>;

fn main() -> ExitCode {
    let opts = match args::parse(std::env::args().skip(1)) {
        Ok(Parsed::Run(o)) => *o,
        Ok(Parsed::Help) => {
            println!("{}", args::USAGE);
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("natrix-bench: {e}\n\n{}", args::USAGE);
            return ExitCode::from(2);
        }
    };
    // Latency runs on one thread: a round trip then never waits for the
    // tool to wake a parked worker thread, only for the server. JetStream
    // publishers too, leaving the other core to the server.
    let one_thread = matches!(
        opts.scenario,
        Scenario::Request
            | Scenario::JsPub
            | Scenario::JsConsume
            | Scenario::JsOrdered
            | Scenario::KvPut
            | Scenario::KvGet
            | Scenario::ObjPut
            | Scenario::ObjGet
            | Scenario::FsyncFloor
    );
    let runtime = if one_thread {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Runtime::new()
    };
    let runtime = match runtime {
        Ok(r) => r,
        Err(e) => {
            eprintln!("natrix-bench: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(&opts)) {
        Ok(r) => {
            if opts.json {
                println!("{}", report::json(&opts, &r));
            } else if opts.csv {
                print!("{}", report::csv(&opts, &r));
            } else {
                print!("{}", report::table(&opts, &r));
            }
            // A durable log that loses or misnumbers an ack has failed,
            // whatever its speed.
            if r.js.as_ref().is_some_and(|j| !j.sound())
                || r.consume.as_ref().is_some_and(|c| !c.sound())
                || r.obj.as_ref().is_some_and(|o| !o.sound())
            {
                return ExitCode::FAILURE;
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("natrix-bench: {}: {e}", opts.url);
            ExitCode::FAILURE
        }
    }
}

async fn run(opts: &Options) -> Result<Report, BoxError> {
    match opts.scenario {
        Scenario::Request => request(opts).await,
        Scenario::Idle => idle(opts).await,
        Scenario::Floor => floor(opts).await,
        Scenario::JsPub => js_pub(opts).await,
        Scenario::JsConsume | Scenario::JsOrdered => js_consume(opts).await,
        Scenario::KvPut => kv_put(opts).await,
        Scenario::KvGet => kv_get(opts).await,
        Scenario::ObjPut | Scenario::ObjGet => obj(opts).await,
        Scenario::FsyncFloor => fsync_floor(opts),
        _ => throughput(opts).await,
    }
}

/// The server's CPU and RSS, summed over every process of a cluster.
fn server_sample(opts: &Options) -> Option<procfs::ProcSample> {
    let mut total = opts.server_pid.and_then(procfs::sample)?;
    for &pid in &opts.other_pids {
        let s = procfs::sample(pid)?;
        total.cpu_secs += s.cpu_secs;
        total.sched_cpu_secs = total
            .sched_cpu_secs
            .zip(s.sched_cpu_secs)
            .map(|(a, b)| a + b);
        total.rss_kib += s.rss_kib;
        total.hwm_kib += s.hwm_kib;
    }
    Some(total)
}

/// `n` messages split across `clients`: the first ones take the remainder.
fn share(limit: Limit, clients: usize, i: usize) -> (Option<u64>, Option<Instant>) {
    match limit {
        Limit::Msgs(n) => {
            let c = clients as u64;
            (Some(n / c + u64::from((i as u64) < n % c)), None)
        }
        Limit::Duration(d) => (None, Some(Instant::now() + d)),
    }
}

/// `pub`, `pubsub`, `fanout`, `queue`.
async fn throughput(opts: &Options) -> Result<Report, BoxError> {
    let queue = (opts.scenario == Scenario::Queue).then_some("natrix-bench");
    let subjects: Vec<String> = if opts.subjects == 1 {
        vec![opts.subject.clone()]
    } else {
        (0..opts.subjects)
            .map(|i| format!("{}.{i}", opts.subject))
            .collect()
    };
    let before_setup = server_sample(opts);
    let mut sub_conns = Vec::new();
    for i in 0..opts.subs {
        let addr = match opts.sub_addrs.len() {
            0 => &opts.addr,
            n => &opts.sub_addrs[i % n],
        };
        let mut c = Conn::open(addr, &format!("natrix-bench-sub-{i}")).await?;
        c.subscribe_all(&subjects, queue).await?;
        sub_conns.push(c);
    }
    if !opts.sub_addrs.is_empty() {
        // The subscriptions reach the publishers' server over routes a
        // moment after their own server confirmed them.
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    let mut pub_conns = Vec::new();
    for i in 0..opts.pubs {
        pub_conns.push(Conn::open(&opts.addr, &format!("natrix-bench-pub-{i}")).await?);
    }
    let frames = Arc::new(Frames::new(&subjects, &vec![b'x'; opts.size]));
    let sent = Arc::new(AtomicU64::new(0));
    let before = server_sample(opts);
    let setup = before_setup
        .zip(before)
        .map(|(b, a)| (b.rss_kib, a.rss_kib));
    let start = Instant::now();
    let shared: Vec<_> = (0..opts.subs).map(|_| SubShared::new()).collect();
    let subs: Vec<_> = sub_conns
        .into_iter()
        .zip(&shared)
        .map(|(c, s)| tokio::spawn(conn::subscriber(c, start, s.clone())))
        .collect();
    let pubs: Vec<_> = pub_conns
        .into_iter()
        .enumerate()
        .map(|(i, c)| {
            let (msgs, deadline) = share(opts.limit, opts.pubs, i);
            let rate = opts.rate.map(|r| r / opts.pubs as f64);
            let p = conn::publisher(c, frames.clone(), msgs, deadline, rate, start, sent.clone());
            tokio::spawn(p)
        })
        .collect();
    let progress = Progress::start(opts, start, sent.clone(), shared.clone());
    let rss = RssSampler::start(opts);
    let (mut pub_runs, mut open) = (Vec::new(), Vec::new());
    for p in pubs {
        let (run, conn) = p.await??;
        pub_runs.push(run);
        open.push(conn);
    }
    let published: u64 = pub_runs.iter().map(|r| r.msgs).sum();
    let (sub_runs, lost) = drain(&shared, subs, published, queue.is_some(), &mut open).await?;
    let after = server_sample(opts);
    progress.stop();
    // The clients stay connected, idle, while the server's memory is watched.
    let rss = rss.finish(opts).await;
    drop(open);
    Ok(Report {
        pubs: Some(Side::of(&pub_runs, opts.size)),
        subs: (!sub_runs.is_empty()).then(|| Side::of(&sub_runs, opts.size)),
        latency: None,
        lost,
        server: before
            .zip(after)
            .map(|(b, a)| ServerUse::between(b, a, published).with(rss)),
        setup,
        idle: None,
        js: None,
        consume: None,
        obj: None,
    })
}

/// Tells the subscribers how many messages to expect, waits for them, and
/// stops them if they stall. Returns their runs and the messages lost; their
/// connections go to `open`.
async fn drain(
    shared: &[Arc<SubShared>],
    subs: Vec<tokio::task::JoinHandle<std::io::Result<(ClientRun, Conn)>>>,
    published: u64,
    queue: bool,
    open: &mut Vec<Conn>,
) -> Result<(Vec<ClientRun>, u64), BoxError> {
    let total_received = || {
        shared
            .iter()
            .map(|s| s.received.load(Ordering::Relaxed))
            .sum::<u64>()
    };
    let want_total = if queue {
        published
    } else {
        published * shared.len() as u64
    };
    if !queue {
        for s in shared {
            s.expected.store(published, Ordering::Relaxed);
        }
    }
    let (mut seen, mut since) = (total_received(), Instant::now());
    loop {
        let now = total_received();
        // Every subscriber done (or cut off by the server): nothing more comes.
        if now >= want_total || subs.iter().all(|s| s.is_finished()) {
            break;
        }
        if now != seen {
            (seen, since) = (now, Instant::now());
        } else if since.elapsed() > DRAIN_IDLE {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    for s in shared {
        s.stop.store(true, Ordering::Relaxed);
    }
    let mut runs = Vec::new();
    for s in subs {
        let (run, conn) = s.await??;
        runs.push(run);
        open.push(conn);
    }
    let received: u64 = runs.iter().map(|r| r.msgs).sum();
    Ok((runs, want_total.saturating_sub(received)))
}

async fn request(opts: &Options) -> Result<Report, BoxError> {
    let stop = Arc::new(AtomicBool::new(false));
    let mut responders = Vec::new();
    for i in 0..opts.subs {
        let mut c = Conn::open(&opts.addr, &format!("natrix-bench-responder-{i}")).await?;
        c.subscribe(&opts.subject, Some("natrix-bench"), "1")
            .await?;
        responders.push(tokio::spawn(conn::responder(c, stop.clone())));
    }
    let mut req_conns = Vec::new();
    for i in 0..opts.pubs {
        req_conns.push(Conn::open(&opts.addr, &format!("natrix-bench-requester-{i}")).await?);
    }
    let payload = vec![b'x'; opts.size];
    let sent = Arc::new(AtomicU64::new(0));
    let before = server_sample(opts);
    let start = Instant::now();
    let progress = Progress::start(opts, start, sent.clone(), Vec::new());
    let rss = RssSampler::start(opts);
    let reqs: Vec<_> = req_conns
        .into_iter()
        .enumerate()
        .map(|(i, c)| {
            let (msgs, deadline) = share(opts.limit, opts.pubs, i);
            let inbox = format!("_INBOX.natrix-bench.{i}");
            let r = conn::requester(
                c,
                opts.subject.clone(),
                inbox,
                payload.clone(),
                msgs,
                deadline,
                start,
                sent.clone(),
            );
            tokio::spawn(r)
        })
        .collect();
    let mut runs = Vec::new();
    let mut hist = hdrhistogram::Histogram::<u64>::new(3)?;
    for r in reqs {
        let (run, h) = r.await??;
        hist.add(h)?;
        runs.push(run);
    }
    let after = server_sample(opts);
    progress.stop();
    let rss = rss.finish(opts).await;
    stop.store(true, Ordering::Relaxed);
    for r in responders {
        r.await??;
    }
    let requests: u64 = runs.iter().map(|r| r.msgs).sum();
    Ok(Report {
        pubs: Some(Side::of(&runs, opts.size)),
        subs: None,
        latency: Some(Latency(hist)),
        lost: 0,
        server: before
            .zip(after)
            .map(|(b, a)| ServerUse::between(b, a, requests).with(rss)),
        setup: None,
        idle: None,
        js: None,
        consume: None,
        obj: None,
    })
}

/// The plain socket loop: its CPU per message stands where a server's would.
async fn floor(opts: &Options) -> Result<Report, BoxError> {
    let Limit::Msgs(msgs) = opts.limit else {
        return Err("floor takes --msgs, not --duration".into());
    };
    if opts.subs > 1 {
        return Err("floor forwards to at most one subscriber".into());
    }
    let (subject, payload) = (opts.subject.clone(), vec![b'x'; opts.size]);
    let forward = opts.subs == 1;
    let r = tokio::task::spawn_blocking(move || floor::run(&subject, &payload, msgs, forward))
        .await??;
    if forward && r.forwarded_bytes != r.read_bytes {
        let (read, got) = (r.read_bytes, r.forwarded_bytes);
        return Err(format!("the loop read {read} bytes but its reader got {got}").into());
    }
    let per_msg = r.loop_cpu_secs * 1e9 / r.publisher.msgs.max(1) as f64;
    Ok(Report {
        pubs: Some(Side::of(&[r.publisher], opts.size)),
        subs: None,
        latency: None,
        lost: 0,
        server: Some(ServerUse {
            cpu_secs: r.loop_cpu_secs,
            cpu_ns_per_msg: per_msg,
            sched_cpu_ns_per_msg: Some(per_msg),
            rss_kib: 0,
            hwm_kib: 0,
            rss: None,
        }),
        setup: None,
        idle: None,
        js: None,
        consume: None,
        obj: None,
    })
}

/// What a phase of JetStream publishers (or direct getters) did.
struct PubPhase {
    runs: Vec<js::PubRun>,
    syncs: Option<u64>,
    server: Option<(procfs::ProcSample, procfs::ProcSample)>,
}

/// Where publisher `i` publishes: its subjects, and how many publishers
/// share them (each starts at its own slice).
type SubjectsOf<'a> = &'a dyn Fn(usize) -> (Arc<Vec<String>>, usize);

/// `pubs` publishers each keeping `inflight` publishes awaiting their
/// answer, for `limit`, measured (with `--server-pid`) from their start
/// to their last answer.
async fn publish_phase(
    opts: &Options,
    (pubs, inflight, limit): (usize, usize, Limit),
    subjects: SubjectsOf<'_>,
    payload: Arc<Vec<u8>>,
    answer: js::Answer,
    measured: bool,
) -> Result<PubPhase, BoxError> {
    let mut conns = Vec::new();
    for i in 0..pubs {
        conns.push(Conn::open(&opts.addr, &format!("natrix-bench-js-pub-{i}")).await?);
    }
    let acked = Arc::new(AtomicU64::new(0));
    let syncs = match opts.server_pid.filter(|_| opts.count_syncs && measured) {
        Some(pid) => Some(js::SyncCounter::start(pid).await?),
        None => None,
    };
    let before = server_sample(opts);
    let start = Instant::now();
    let progress = if measured {
        Progress::start(opts, start, acked.clone(), Vec::new())
    } else {
        Progress { task: None }
    };
    let tasks: Vec<_> = conns
        .into_iter()
        .enumerate()
        .map(|(i, c)| {
            let (msgs, deadline) = share(limit, pubs, i);
            let (subjects, sharing) = subjects(i);
            let plan = js::Plan {
                id: i,
                subjects,
                pubs: sharing,
                payload: payload.clone(),
                answer,
                msgs,
                deadline,
                inflight,
                ack_timeout: js::ACK_TIMEOUT,
            };
            tokio::spawn(js::publisher(c, plan, start, acked.clone()))
        })
        .collect();
    let mut runs = Vec::new();
    for t in tasks {
        runs.push(t.await??);
    }
    let after = server_sample(opts);
    let syncs = syncs.map(js::SyncCounter::stop).transpose()?;
    progress.stop();
    Ok(PubPhase {
        runs,
        syncs,
        server: before.zip(after),
    })
}

/// `js-pub`: a fresh file stream, publishers keeping `--inflight`
/// publishes awaiting acks, every ack checked.
async fn js_pub(opts: &Options) -> Result<Report, BoxError> {
    let mut admin = js::Admin::open(&opts.addr, &opts.stream).await?;
    admin.recreate(&opts.subject).await?;
    let own_subject = |i: usize| (Arc::new(vec![format!("{}.{i}", opts.subject)]), 1);
    let payload = Arc::new(vec![b'x'; opts.size]);
    let shape = (opts.pubs, opts.inflight, opts.limit);
    let phase = publish_phase(opts, shape, &own_subject, payload, js::Answer::PubAck, true).await?;
    let state = admin.state().await?;
    admin.delete().await?;
    let problem = js::check_sequences(&phase.runs, state);
    Ok(js_report(opts, phase, problem, (state.1, state.2)))
}

/// The key-value bucket's stream, configured as the clients create one
/// that keeps one value per key.
fn kv_stream(bucket: &str) -> (String, serde_json::Value) {
    let stream = format!("KV_{bucket}");
    let config = serde_json::json!({
        "name": stream, "subjects": [format!("$KV.{bucket}.>")], "storage": "file",
        "max_msgs_per_subject": 1, "discard": "new", "allow_direct": true,
        "allow_rollup_hdrs": true, "deny_delete": true, "num_replicas": 1,
    });
    (stream, config)
}

fn kv_keys(bucket: &str, keys: usize, prefix: &str) -> Arc<Vec<String>> {
    Arc::new(
        (0..keys)
            .map(|k| format!("{prefix}$KV.{bucket}.k{k}"))
            .collect(),
    )
}

/// `kv-put`: puts over `--keys` keys, `--inflight` awaiting their ack per
/// client; the acks must be gap-free.
async fn kv_put(opts: &Options) -> Result<Report, BoxError> {
    let (stream, config) = kv_stream(&opts.stream);
    let mut admin = js::Admin::open(&opts.addr, &stream).await?;
    admin.recreate_with(config).await?;
    let keys = kv_keys(&opts.stream, opts.keys, "");
    let shared = |_| (keys.clone(), opts.pubs);
    let payload = Arc::new(vec![b'x'; opts.size]);
    let shape = (opts.pubs, opts.inflight, opts.limit);
    let phase = publish_phase(opts, shape, &shared, payload, js::Answer::PubAck, true).await?;
    let (_, first, last) = admin.state().await?;
    admin.delete().await?;
    let problem = js::check_put_sequences(&phase.runs, last);
    Ok(js_report(opts, phase, problem, (first, last)))
}

/// `kv-get`: every key put once, then direct gets of them, `--inflight`
/// per client.
async fn kv_get(opts: &Options) -> Result<Report, BoxError> {
    let (stream, config) = kv_stream(&opts.stream);
    let mut admin = js::Admin::open(&opts.addr, &stream).await?;
    admin.recreate_with(config).await?;
    let keys = kv_keys(&opts.stream, opts.keys, "");
    let all_keys = |_| (keys.clone(), 1);
    let payload = Arc::new(vec![b'x'; opts.size]);
    let fill = (1, FILL_INFLIGHT, Limit::Msgs(opts.keys as u64));
    let put = publish_phase(opts, fill, &all_keys, payload, js::Answer::PubAck, false).await?;
    if let Some(why) = unsound_fill(&put.runs) {
        return Err(format!("putting the keys: {why}").into());
    }
    let gets = kv_keys(
        &opts.stream,
        opts.keys,
        &format!("$JS.API.DIRECT.GET.{stream}."),
    );
    let shared = |_| (gets.clone(), opts.pubs);
    let shape = (opts.pubs, opts.inflight, opts.limit);
    let empty = Arc::new(Vec::new());
    let phase = publish_phase(opts, shape, &shared, empty, js::Answer::Direct, true).await?;
    let (_, first, last) = admin.state().await?;
    admin.delete().await?;
    Ok(js_report(opts, phase, None, (first, last)))
}

/// Publishers fill a stream with this many publishes in flight each.
const FILL_INFLIGHT: usize = 1000;
const FILL_PUBS: usize = 4;

/// Why a fill's publishes were not all acknowledged, if they were not.
fn unsound_fill(runs: &[js::PubRun]) -> Option<String> {
    let (lost, errors): (u64, u64) = runs
        .iter()
        .map(|r| (r.lost, r.errors))
        .fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1));
    let first_error = runs.iter().flat_map(|r| r.first_errors.first()).next();
    (lost + errors > 0)
        .then(|| format!("{lost} acks lost, {errors} errors (first: {first_error:?})"))
}

/// Fills the stream with `msgs` messages of `--size` (unless
/// `--reuse-stream` finds it holding that many) and returns its first
/// sequence and what the fill took.
async fn fill_stream(
    opts: &Options,
    admin: &mut js::Admin,
    msgs: u64,
) -> Result<(u64, Option<(u64, f64)>), BoxError> {
    if opts.reuse_stream
        && let Ok((held, first, last)) = admin.state().await
        && held == msgs
        && last + 1 - first == msgs
    {
        return Ok((first, None));
    }
    admin.recreate(&opts.subject).await?;
    let own_subject = |i: usize| (Arc::new(vec![format!("{}.{i}", opts.subject)]), 1);
    let payload = Arc::new(vec![b'x'; opts.size]);
    let shape = (FILL_PUBS, FILL_INFLIGHT, Limit::Msgs(msgs));
    let t0 = Instant::now();
    let fill = publish_phase(
        opts,
        shape,
        &own_subject,
        payload,
        js::Answer::PubAck,
        false,
    )
    .await?;
    let secs = t0.elapsed().as_secs_f64();
    let state = admin.state().await?;
    if let Some(why) = unsound_fill(&fill.runs).or_else(|| js::check_sequences(&fill.runs, state)) {
        return Err(format!("filling the stream: {why}").into());
    }
    Ok((state.1, Some((msgs, secs))))
}

/// `js-consume` and `js-ordered`: a filled stream read back through a
/// durable pull consumer or an ordered push consumer; only the reading
/// is measured.
async fn js_consume(opts: &Options) -> Result<Report, BoxError> {
    let Limit::Msgs(msgs) = opts.limit else {
        return Err("js-consume and js-ordered take --msgs, not --duration".into());
    };
    let mut admin = js::Admin::open(&opts.addr, &opts.stream).await?;
    let (first, fill) = fill_stream(opts, &mut admin, msgs).await?;
    let conn = Conn::open(&opts.addr, "natrix-bench-js-consumer").await?;
    let pull = opts.scenario == Scenario::JsConsume;
    if pull {
        let config = serde_json::json!({
            "durable_name": consume::DURABLE, "deliver_policy": "all",
            "ack_policy": opts.ack.name(),
            // Room for the two pulls in flight and the acks on their way:
            // the pulls, not this limit, pace the run.
            "max_ack_pending": 4 * opts.batch.max(1000),
        });
        admin.recreate_consumer(consume::DURABLE, config).await?;
    }
    let received = Arc::new(AtomicU64::new(0));
    let before = server_sample(opts);
    let progress = Progress::start(opts, Instant::now(), received.clone(), Vec::new());
    let (mut figures, ephemeral, conn) = if pull {
        let plan = consume::PullPlan {
            stream: opts.stream.clone(),
            batch: opts.batch,
            expires: opts.expires,
            ack: opts.ack,
            first,
            msgs,
        };
        let (f, conn) = consume::pull(conn, plan, received.clone()).await?;
        (f, None, conn)
    } else {
        let (f, name, conn) =
            consume::ordered(conn, &opts.stream, first, msgs, received.clone()).await?;
        (f, Some(name), conn)
    };
    let after = server_sample(opts);
    progress.stop();
    figures.fill = fill;
    match &ephemeral {
        None => {
            let last = first + msgs - 1;
            figures.problem = consume::check_consumer(&mut admin, opts.ack, last).await?;
            admin.delete_consumer(consume::DURABLE).await?;
        }
        Some(name) => admin.delete_consumer(name).await?,
    }
    drop(conn);
    if !opts.reuse_stream {
        admin.delete().await?;
    }
    let run = ClientRun {
        msgs: figures.received,
        secs: figures.secs,
        cut_off: false,
    };
    Ok(Report {
        pubs: None,
        subs: Some(Side::of(&[run], opts.size)),
        latency: None,
        lost: figures.expected.saturating_sub(figures.received),
        server: before
            .zip(after)
            .map(|(b, a)| ServerUse::between(b, a, figures.received)),
        setup: None,
        idle: None,
        js: None,
        consume: Some(figures),
        obj: None,
    })
}

/// `obj-put` and `obj-get`: one client putting or getting one object again
/// and again on a fresh bucket; only the puts or gets are measured.
async fn obj(opts: &Options) -> Result<Report, BoxError> {
    let mut client = obj::ObjClient::open(&opts.addr, &opts.stream).await?;
    client.recreate_bucket().await?;
    let (objects, deadline) = match opts.limit {
        Limit::Msgs(n) => (Some(n), None),
        Limit::Duration(d) => (None, Some(d)),
    };
    let plan = obj::ObjPlan {
        get: opts.scenario == Scenario::ObjGet,
        object_bytes: opts.size,
        chunk_bytes: opts.chunk,
        inflight: opts.inflight,
        objects,
        deadline,
    };
    // The server's CPU from the first measured request to the last answer;
    // a get's fill comes before, inside `run`, so it is sampled there.
    let before = server_sample(opts);
    let figures = obj::run(&mut client, &plan, &|| server_sample(opts)).await?;
    client.flush().await?;
    let after = server_sample(opts);
    client.delete_bucket().await?;
    let run = ClientRun {
        msgs: figures.objects,
        secs: figures.secs,
        cut_off: false,
    };
    let before = figures.server_before.or(before);
    Ok(Report {
        pubs: Some(Side::of(&[run], opts.size)),
        subs: None,
        latency: None,
        lost: 0,
        server: before
            .zip(after)
            .map(|(b, a)| ServerUse::between(b, a, figures.objects)),
        setup: None,
        idle: None,
        js: None,
        consume: None,
        obj: Some(figures),
    })
}

fn js_report(
    opts: &Options,
    phase: PubPhase,
    seq_problem: Option<String>,
    (first_seq, last_seq): (u64, u64),
) -> Report {
    let PubPhase {
        runs,
        syncs,
        server,
    } = phase;
    let client_runs: Vec<ClientRun> = runs.iter().map(|r| r.run).collect();
    let side = Side::of(&client_runs, opts.size);
    let mut hist = hdrhistogram::Histogram::<u64>::new(3).expect("3 significant digits");
    for r in &runs {
        let _ = hist.add(&r.latency);
    }
    let figures = js::JsFigures {
        inflight: opts.inflight,
        published: runs.iter().map(|r| r.published).sum(),
        acked: side.msgs,
        lost: runs.iter().map(|r| r.lost).sum(),
        errors: runs.iter().map(|r| r.errors).sum(),
        stray: runs.iter().map(|r| r.stray).sum(),
        first_errors: runs
            .iter()
            .flat_map(|r| r.first_errors.clone())
            .take(5)
            .collect(),
        seq_problem,
        first_seq,
        last_seq,
        syncs,
        secs: side.secs,
    };
    Report {
        server: server.map(|(b, a)| ServerUse::between(b, a, side.msgs)),
        pubs: Some(side),
        subs: None,
        latency: Some(Latency(hist)),
        lost: figures.lost,
        setup: None,
        idle: None,
        js: Some(figures),
        consume: None,
        obj: None,
    }
}

/// `fsync-floor`: append and sync, one at a time, on the disk alone.
fn fsync_floor(opts: &Options) -> Result<Report, BoxError> {
    let r = fsync_floor::run(std::path::Path::new(&opts.dir), opts.size, opts.limit)?;
    let per_write = r.cpu_secs * 1e9 / r.writer.msgs.max(1) as f64;
    Ok(Report {
        pubs: Some(Side::of(&[r.writer], opts.size)),
        subs: None,
        latency: Some(Latency(r.latency)),
        lost: 0,
        // The writer stands where a server would: its CPU per write+fsync.
        server: Some(ServerUse {
            cpu_secs: r.cpu_secs,
            cpu_ns_per_msg: per_write,
            sched_cpu_ns_per_msg: Some(per_write),
            rss_kib: 0,
            hwm_kib: 0,
            rss: None,
        }),
        setup: None,
        idle: None,
        js: None,
        consume: None,
        obj: None,
    })
}

/// Opens `--conns` connections, lets the server settle, and reads its RSS.
async fn idle(opts: &Options) -> Result<Report, BoxError> {
    let settle = Duration::from_millis(500);
    tokio::time::sleep(settle).await;
    let before = server_sample(opts);
    let mut conns = Vec::with_capacity(opts.conns);
    for i in 0..opts.conns {
        conns.push(Conn::open(&opts.addr, &format!("natrix-bench-idle-{i}")).await?);
        if !opts.quiet && i % 100 == 99 {
            eprint!("\ridle: {} connections", i + 1);
        }
    }
    if !opts.quiet {
        eprintln!();
    }
    tokio::time::sleep(settle).await;
    let after = server_sample(opts);
    drop(conns);
    Ok(Report {
        pubs: None,
        subs: None,
        latency: None,
        lost: 0,
        server: None,
        setup: None,
        js: None,
        consume: None,
        obj: None,
        idle: before
            .zip(after)
            .map(|(b, a)| (opts.conns, b.rss_kib, a.rss_kib)),
    })
}

/// The server's RSS sampled every [`RSS_EVERY`] from the start of a run, then
/// for `--after` once it is over (clients still connected, idle): memory
/// that stays after a burst shows here, not in the peak.
struct RssSampler {
    task: Option<tokio::task::JoinHandle<Vec<(u64, u64)>>>,
    stop: Arc<AtomicBool>,
    start: Instant,
}

const RSS_EVERY: Duration = Duration::from_millis(100);

impl RssSampler {
    fn start(opts: &Options) -> RssSampler {
        let stop = Arc::new(AtomicBool::new(false));
        let start = Instant::now();
        let task = opts.server_pid.map(|pid| {
            let stop = stop.clone();
            tokio::spawn(async move {
                let mut samples = Vec::new();
                let mut tick = tokio::time::interval(RSS_EVERY);
                while !stop.load(Ordering::Relaxed) {
                    tick.tick().await;
                    if let Some(s) = procfs::sample(pid) {
                        samples.push((start.elapsed().as_millis() as u64, s.rss_kib));
                    }
                }
                samples
            })
        });
        RssSampler { task, stop, start }
    }

    /// Ends the run's sampling, samples on for `--after`, and sums it up.
    async fn finish(self, opts: &Options) -> Option<report::RssOverTime> {
        let run_ms = self.start.elapsed().as_millis() as u64;
        tokio::time::sleep(opts.after).await;
        self.stop.store(true, Ordering::Relaxed);
        let samples = self.task?.await.ok()?;
        let last = server_sample(opts).map(|s| s.rss_kib);
        Some(report::RssOverTime::new(samples, run_ms, opts.after, last))
    }
}

/// The progress line on stderr, redrawn twice a second.
struct Progress {
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Progress {
    fn start(
        opts: &Options,
        start: Instant,
        sent: Arc<AtomicU64>,
        subs: Vec<Arc<SubShared>>,
    ) -> Progress {
        if opts.quiet {
            return Progress { task: None };
        }
        let name = opts.scenario.name();
        let line_end = if std::io::stderr().is_terminal() {
            "\r"
        } else {
            "\n"
        };
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(500));
            tick.tick().await;
            loop {
                tick.tick().await;
                let secs = start.elapsed().as_secs_f64();
                let p = sent.load(Ordering::Relaxed) as f64;
                let mut line = format!(
                    "{name} {secs:5.1}s  sent {} ({}/s)",
                    report::si(p),
                    report::si(p / secs)
                );
                if !subs.is_empty() {
                    let r: u64 = subs
                        .iter()
                        .map(|s| s.received.load(Ordering::Relaxed))
                        .sum();
                    line += &format!(
                        "  received {} ({}/s)",
                        report::si(r as f64),
                        report::si(r as f64 / secs)
                    );
                }
                let mut err = std::io::stderr().lock();
                let _ = write!(err, "{line:<72}{line_end}");
            }
        });
        Progress { task: Some(task) }
    }

    fn stop(self) {
        if let Some(t) = self.task {
            t.abort();
            if std::io::stderr().is_terminal() {
                eprint!("{:<72}\r", "");
            }
        }
    }
}
