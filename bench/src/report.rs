//! Turning client runs into figures: rates with their spread across
//! clients, latency percentiles, the server's CPU and memory; printed as a
//! table or as one JSON object.

use std::time::Duration;

use hdrhistogram::Histogram;
use serde_json::{Value, json};

use crate::args::Options;
use crate::conn::ClientRun;
use crate::consume::ConsumeFigures;
use crate::js::JsFigures;
use crate::obj::ObjFigures;
use crate::procfs::ProcSample;

/// One side (publishers or subscribers) of a run.
#[derive(Debug, Clone)]
pub struct Side {
    pub clients: usize,
    pub msgs: u64,
    /// From the common start to the last client's last message.
    pub secs: f64,
    pub msgs_per_sec: f64,
    pub mb_per_sec: f64,
    /// Per-client rates.
    pub min: f64,
    pub avg: f64,
    pub max: f64,
    pub stddev: f64,
    /// Clients the server closed before the run ended.
    pub cut_off: usize,
}

impl Side {
    pub fn of(runs: &[ClientRun], size: usize) -> Side {
        let msgs: u64 = runs.iter().map(|r| r.msgs).sum();
        let secs = runs.iter().map(|r| r.secs).fold(0.0, f64::max);
        let rates: Vec<f64> = runs.iter().map(|r| rate(r.msgs, r.secs)).collect();
        let n = rates.len().max(1) as f64;
        let avg = rates.iter().sum::<f64>() / n;
        let var = rates.iter().map(|r| (r - avg).powi(2)).sum::<f64>() / n;
        let msgs_per_sec = rate(msgs, secs);
        Side {
            clients: runs.len(),
            msgs,
            secs,
            msgs_per_sec,
            mb_per_sec: msgs_per_sec * size as f64 / 1e6,
            min: rates.iter().copied().fold(f64::INFINITY, f64::min).min(avg),
            avg,
            max: rates.iter().copied().fold(0.0, f64::max),
            stddev: var.sqrt(),
            cut_off: runs.iter().filter(|r| r.cut_off).count(),
        }
    }

    fn json(&self) -> Value {
        json!({
            "clients": self.clients, "msgs": self.msgs, "secs": self.secs,
            "msgs_per_sec": self.msgs_per_sec, "mb_per_sec": self.mb_per_sec,
            "per_client": {"min": self.min, "avg": self.avg, "max": self.max, "stddev": self.stddev},
            "cut_off": self.cut_off,
        })
    }
}

fn rate(msgs: u64, secs: f64) -> f64 {
    if secs > 0.0 { msgs as f64 / secs } else { 0.0 }
}

/// The server's resources over the measured part of the run.
#[derive(Debug, Clone)]
pub struct ServerUse {
    pub cpu_secs: f64,
    /// Server CPU per published message (per request for `request`).
    pub cpu_ns_per_msg: f64,
    /// The same from the nanosecond scheduler counters, when readable.
    pub sched_cpu_ns_per_msg: Option<f64>,
    pub rss_kib: u64,
    pub hwm_kib: u64,
    /// RSS sampled during the run and after it.
    pub rss: Option<RssOverTime>,
}

/// The server's RSS over a run: samples `(ms since the start, KiB)`.
#[derive(Debug, Clone)]
pub struct RssOverTime {
    pub samples: Vec<(u64, u64)>,
    /// The largest sample while the clients were busy.
    pub run_max_kib: u64,
    /// How long the clients stayed connected and idle after the run, and the
    /// RSS at the end of that time.
    pub after: Duration,
    pub after_kib: Option<u64>,
}

impl RssOverTime {
    pub fn new(samples: Vec<(u64, u64)>, run_ms: u64, after: Duration, last: Option<u64>) -> Self {
        let run_max_kib = samples
            .iter()
            .filter(|(ms, _)| *ms <= run_ms)
            .map(|(_, kib)| *kib)
            .max()
            .unwrap_or(0);
        RssOverTime {
            samples,
            run_max_kib,
            after,
            after_kib: last,
        }
    }
}

impl ServerUse {
    pub fn with(mut self, rss: Option<RssOverTime>) -> ServerUse {
        self.rss = rss;
        self
    }

    pub fn between(before: ProcSample, after: ProcSample, msgs: u64) -> ServerUse {
        let cpu_secs = (after.cpu_secs - before.cpu_secs).max(0.0);
        let per_msg = |secs: f64| {
            if msgs > 0 {
                secs * 1e9 / msgs as f64
            } else {
                0.0
            }
        };
        let sched = after.sched_cpu_secs.zip(before.sched_cpu_secs);
        ServerUse {
            cpu_secs,
            cpu_ns_per_msg: per_msg(cpu_secs),
            sched_cpu_ns_per_msg: sched.map(|(a, b)| per_msg((a - b).max(0.0))),
            rss_kib: after.rss_kib,
            hwm_kib: after.hwm_kib,
            rss: None,
        }
    }
}

pub struct Latency(pub Histogram<u64>);

impl Latency {
    const QUANTILES: [(&'static str, f64); 4] = [
        ("p50", 0.50),
        ("p90", 0.90),
        ("p99", 0.99),
        ("p99_9", 0.999),
    ];

    fn us(ns: u64) -> f64 {
        ns as f64 / 1e3
    }

    fn json(&self) -> Value {
        let h = &self.0;
        let mut m = serde_json::Map::new();
        m.insert("count".into(), json!(h.len()));
        m.insert("min_us".into(), json!(Self::us(h.min())));
        m.insert("mean_us".into(), json!(h.mean() / 1e3));
        for (name, q) in Self::QUANTILES {
            m.insert(
                format!("{name}_us"),
                json!(Self::us(h.value_at_quantile(q))),
            );
        }
        m.insert("max_us".into(), json!(Self::us(h.max())));
        Value::Object(m)
    }
}

pub struct Report {
    pub pubs: Option<Side>,
    pub subs: Option<Side>,
    pub latency: Option<Latency>,
    pub lost: u64,
    pub server: Option<ServerUse>,
    /// The server's RSS before the clients connected and once every
    /// subscription was in place (what the subscriptions cost).
    pub setup: Option<(u64, u64)>,
    /// `idle`: connections held and the server's RSS before and with them.
    pub idle: Option<(usize, u64, u64)>,
    /// `js-pub`: what the acks and the stream say.
    pub js: Option<JsFigures>,
    /// `js-consume`, `js-ordered`: what the consumer delivered.
    pub consume: Option<ConsumeFigures>,
    /// `obj-put`, `obj-get`: the objects and their checks.
    pub obj: Option<ObjFigures>,
}

pub fn json(opts: &Options, r: &Report) -> Value {
    let mut v = json!({
        "scenario": opts.scenario.name(), "url": opts.url, "size": opts.size,
        "subject": opts.subject, "subjects": opts.subjects, "lost": r.lost,
    });
    if let Some(s) = &r.pubs {
        v["pub"] = s.json();
    }
    if let Some(s) = &r.subs {
        v["sub"] = s.json();
    }
    if let Some(l) = &r.latency {
        v["latency"] = l.json();
    }
    if let Some(s) = &r.server {
        v["server"] = json!({
            "cpu_secs": s.cpu_secs, "cpu_ns_per_msg": s.cpu_ns_per_msg,
            "sched_cpu_ns_per_msg": s.sched_cpu_ns_per_msg,
            "rss_kib": s.rss_kib, "hwm_kib": s.hwm_kib,
        });
        if let Some(rss) = &s.rss {
            v["server"]["rss_run_max_kib"] = json!(rss.run_max_kib);
            v["server"]["after_secs"] = json!(rss.after.as_secs_f64());
            v["server"]["rss_after_kib"] = json!(rss.after_kib);
            v["server"]["rss_timeline"] = json!(rss.samples);
        }
    }
    if let Some((before, after)) = r.setup {
        v["setup"] = json!({"rss_before_kib": before, "rss_subscribed_kib": after});
    }
    if let Some(j) = &r.js {
        v["js"] = json!({
            "stream": opts.stream, "inflight": j.inflight, "published": j.published,
            "acked": j.acked, "lost_acks": j.lost, "error_acks": j.errors,
            "stray_acks": j.stray, "first_errors": j.first_errors,
            "sequences_ok": j.seq_problem.is_none(), "sequence_problem": j.seq_problem,
            "first_seq": j.first_seq, "last_seq": j.last_seq, "sound": j.sound(),
            "syncs": j.syncs, "syncs_per_sec": j.syncs_per_sec(),
            "acks_per_sync": j.acks_per_sync(),
        });
    }
    if let Some(c) = &r.consume {
        v["consume"] = json!({
            "kind": c.kind, "stream": opts.stream, "batch": c.batch,
            "ack": c.ack.map(|a| a.name()), "expected": c.expected, "received": c.received,
            "duplicates": c.duplicates, "out_of_order": c.out_of_order,
            "acks_sent": c.acks_sent, "pulls_sent": c.pulls_sent,
            "flow_controls_answered": c.flow_controls_answered, "heartbeats": c.heartbeats,
            "pull_statuses": c.pull_statuses, "problem": c.problem, "sound": c.sound(),
            "fill_msgs": c.fill.map(|f| f.0), "fill_secs": c.fill.map(|f| f.1),
        });
    }
    if let Some(o) = &r.obj {
        let mib = o.object_bytes as f64 / MIB;
        let secs = o.secs.max(1e-9);
        let h = &o.latency;
        v["obj"] = json!({
            "kind": o.kind, "bucket": opts.stream, "object_bytes": o.object_bytes,
            "chunk_bytes": o.chunk_bytes, "chunks": o.chunks, "inflight": o.inflight,
            "objects": o.objects, "messages": o.messages, "secs": o.secs,
            "objects_per_sec": o.objects as f64 / secs,
            "mb_per_sec": o.objects as f64 * o.object_bytes as f64 / 1e6 / secs,
            "mib_per_sec": o.objects as f64 * mib / secs,
            "p50_ms": h.value_at_quantile(0.5) as f64 / 1e3,
            "max_ms": h.max() as f64 / 1e3,
            "flow_controls_answered": o.flow_controls_answered,
            "errors": o.errors, "first_errors": o.first_errors, "sound": o.sound(),
        });
        if let Some(s) = &r.server {
            // Per object in ns, so per MiB in ms is ns / 1e6 / MiB.
            v["obj"]["cpu_ms_per_mib"] = json!(s.cpu_ns_per_msg / 1e6 / mib);
            v["obj"]["sched_cpu_ms_per_mib"] = json!(s.sched_cpu_ns_per_msg.map(|n| n / 1e6 / mib));
        }
    }
    if opts.scenario == crate::args::Scenario::FsyncFloor {
        v["fsync"] = json!({"dir": opts.dir, "record_bytes": opts.size});
    }
    if let Some((conns, before, after)) = r.idle {
        v["idle"] = json!({
            "conns": conns, "rss_before_kib": before, "rss_after_kib": after,
            "kib_per_1000_conns": (after.saturating_sub(before)) as f64 * 1000.0 / conns.max(1) as f64,
        });
    }
    v
}

/// The JSON report as CSV: a header of dotted key paths (`pub.msgs_per_sec`,
/// `latency.p99_us`, ...) and one row of values, for spreadsheets and
/// scripts that append runs to one file.
pub fn csv(opts: &Options, r: &Report) -> String {
    fn flatten(prefix: &str, v: &Value, out: &mut Vec<(String, String)>) {
        match v {
            Value::Object(m) => {
                for (k, v) in m {
                    let key = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    flatten(&key, v, out);
                }
            }
            Value::String(s) => out.push((prefix.to_string(), s.clone())),
            Value::Null => out.push((prefix.to_string(), String::new())),
            other => out.push((prefix.to_string(), other.to_string())),
        }
    }
    let mut cells = Vec::new();
    flatten("", &json(opts, r), &mut cells);
    let quote = |s: &str| {
        if s.contains([',', '"', '\n']) {
            format!("\"{}\"", s.replace('"', "\"\""))
        } else {
            s.to_string()
        }
    };
    let header: Vec<String> = cells.iter().map(|(k, _)| quote(k)).collect();
    let row: Vec<String> = cells.iter().map(|(_, v)| quote(v)).collect();
    format!("{}\n{}\n", header.join(","), row.join(","))
}

/// `1234567.0` as `1.23M`.
pub fn si(x: f64) -> String {
    match x {
        x if x >= 1e9 => format!("{:.2}G", x / 1e9),
        x if x >= 1e6 => format!("{:.2}M", x / 1e6),
        x if x >= 1e3 => format!("{:.1}k", x / 1e3),
        x => format!("{x:.0}"),
    }
}

pub fn table(opts: &Options, r: &Report) -> String {
    let mut t = if opts.scenario == crate::args::Scenario::FsyncFloor {
        format!(
            "natrix-bench fsync-floor  {}  {} B records, each written then fsynced\n",
            opts.dir, opts.size
        )
    } else {
        format!(
            "natrix-bench {}  {}  {} B payload  {} subject(s)\n",
            opts.scenario.name(),
            opts.url,
            opts.size,
            opts.subjects
        )
    };
    if let Some((before, after)) = r.setup.filter(|_| opts.subs > 0) {
        t += &format!(
            "subscribed: server RSS {before} KiB before the clients, {after} KiB with every subscription in place\n"
        );
    }
    if r.pubs.is_some() || r.subs.is_some() {
        t += &format!(
            "{:<6} {:>7} {:>12} {:>8} {:>9} {:>8}   {:>9} {:>9} {:>9} {:>9}\n",
            "", "clients", "msgs", "secs", "msgs/s", "MB/s", "min/cl", "avg/cl", "max/cl", "stddev"
        );
    }
    for (name, side) in [("pub", &r.pubs), ("sub", &r.subs)] {
        if let Some(s) = side {
            t += &format!(
                "{name:<6} {:>7} {:>12} {:>8.3} {:>9} {:>8.1}   {:>9} {:>9} {:>9} {:>9}\n",
                s.clients,
                s.msgs,
                s.secs,
                si(s.msgs_per_sec),
                s.mb_per_sec,
                si(s.min),
                si(s.avg),
                si(s.max),
                si(s.stddev)
            );
        }
    }
    if r.lost > 0 && r.js.is_none() && r.consume.is_none() {
        t += &format!(
            "LOST   {} messages never arrived (slow consumer?)\n",
            r.lost
        );
    }
    if let Some(n) = r.subs.as_ref().map(|s| s.cut_off).filter(|n| *n > 0) {
        t += &format!(
            "CUT    the server closed {n} subscriber(s) before the end (slow consumer?)\n"
        );
    }
    if let Some(l) = &r.latency {
        let h = &l.0;
        let what = match opts.scenario {
            crate::args::Scenario::JsPub | crate::args::Scenario::KvPut => "acks",
            crate::args::Scenario::KvGet => "gets",
            crate::args::Scenario::FsyncFloor => "write+fsync",
            _ => "requests",
        };
        t += &format!(
            "latency ({} {what}, µs): min {:.1}  mean {:.1}",
            h.len(),
            Latency::us(h.min()),
            h.mean() / 1e3
        );
        for (name, q) in Latency::QUANTILES {
            t += &format!(
                "  {} {:.1}",
                name.replace('_', "."),
                Latency::us(h.value_at_quantile(q))
            );
        }
        t += &format!("  max {:.1}\n", Latency::us(h.max()));
    }
    if let Some(j) = &r.js {
        t += &js_lines(j, opts.scenario);
    }
    if let Some(c) = &r.consume {
        t += &consume_lines(c);
    }
    if let Some(o) = &r.obj {
        t += &obj_lines(o, r.server.as_ref());
    }
    if let Some((conns, before, after)) = r.idle {
        t += &format!(
            "idle: {conns} connections; server RSS {before} KiB before, {after} KiB with them ({:.0} KiB per 1,000)\n",
            after.saturating_sub(before) as f64 * 1000.0 / conns.max(1) as f64
        );
    }
    if let Some(s) = &r.server {
        t += &format!(
            "server: CPU {:.2} s ({:.0} ns per message; {} by schedstat), RSS {:.1} MiB, peak {:.1} MiB\n",
            s.cpu_secs,
            s.cpu_ns_per_msg,
            s.sched_cpu_ns_per_msg
                .map_or("-".into(), |n| format!("{n:.0}")),
            s.rss_kib as f64 / 1024.0,
            s.hwm_kib as f64 / 1024.0
        );
        if let Some(rss) = &s.rss {
            t += &format!(
                "server RSS: at most {:.1} MiB during the run",
                rss.run_max_kib as f64 / 1024.0
            );
            if let Some(after) = rss.after_kib.filter(|_| !rss.after.is_zero()) {
                t += &format!(
                    ", {:.1} MiB {:.1} s after it (clients connected, idle)",
                    after as f64 / 1024.0,
                    rss.after.as_secs_f64()
                );
            }
            t += "\n";
        }
    }
    t
}

const MIB: f64 = 1024.0 * 1024.0;

/// The objects, their rate and cost per MiB, and whether each was whole.
fn obj_lines(o: &ObjFigures, server: Option<&ServerUse>) -> String {
    let mib = o.object_bytes as f64 / MIB;
    let secs = o.secs.max(1e-9);
    let how = if o.kind == "put" {
        format!("{} in flight", o.inflight)
    } else {
        "ordered consumer".to_string()
    };
    let mut t = format!(
        "objects: {} {}s of {:.1} MiB in {} chunks of {} B ({how}): {:.2} objects/s, {:.1} MiB/s, p50 {:.1} ms\n",
        o.objects,
        o.kind,
        mib,
        o.chunks,
        o.chunk_bytes,
        o.objects as f64 / secs,
        o.objects as f64 * mib / secs,
        o.latency.value_at_quantile(0.5) as f64 / 1e3
    );
    if let Some(s) = server {
        let per_mib = s.sched_cpu_ns_per_msg.unwrap_or(s.cpu_ns_per_msg) / 1e6 / mib;
        t += &format!("server CPU per MiB: {per_mib:.2} ms\n");
    }
    if o.sound() {
        t += "check: every chunk acknowledged or delivered, every object's size and SHA-256 as put\n";
    } else {
        t += &format!("FAILED: {} errors\n", o.errors);
        for e in &o.first_errors {
            t += &format!("  {e}\n");
        }
    }
    t
}

/// What the consumer delivered, and whether every message came once.
fn consume_lines(c: &ConsumeFigures) -> String {
    let mut t = match c.fill {
        Some((msgs, secs)) => format!(
            "fill: {msgs} messages acknowledged in {secs:.2} s ({}/s), not timed\n",
            si(msgs as f64 / secs.max(1e-9))
        ),
        None => "fill: the stream already held them (--reuse-stream)\n".to_string(),
    };
    t += &match c.ack {
        Some(ack) => format!(
            "{} consumer: pulls of {}, ack {}; {} pulls, {} acks sent, {} pull statuses\n",
            c.kind,
            c.batch,
            ack.name(),
            c.pulls_sent,
            c.acks_sent,
            c.pull_statuses
        ),
        None => format!(
            "{} consumer: {} flow-control requests answered, {} heartbeats\n",
            c.kind, c.flow_controls_answered, c.heartbeats
        ),
    };
    if c.sound() {
        t += "check: every stream sequence delivered once, and the consumer agrees\n";
        return t;
    }
    t += &format!(
        "FAILED: {} of {} delivered, {} duplicates, {} out of order\n",
        c.received, c.expected, c.duplicates, c.out_of_order
    );
    if let Some(p) = &c.problem {
        t += &format!("  consumer: {p}\n");
    }
    t
}

/// What the acks and the stream say, and the server's syncs.
fn js_lines(j: &JsFigures, scenario: crate::args::Scenario) -> String {
    let mut t = format!(
        "acks: {} in flight per publisher; {} published, {} acknowledged, stream sequences {}..={}\n",
        j.inflight, j.published, j.acked, j.first_seq, j.last_seq
    );
    if let Some(syncs) = j.syncs {
        t += &format!(
            "server fsyncs: {syncs} ({}/s), {} acks per fsync\n",
            si(j.syncs_per_sec().unwrap_or(0.0)),
            j.acks_per_sync().map_or("-".into(), |a| format!("{a:.1}"))
        );
    }
    if j.sound() {
        t += match scenario {
            crate::args::Scenario::KvGet => "check: every get answered once with a stored value\n",
            crate::args::Scenario::KvPut => {
                "check: every put acknowledged once, sequences gap-free up to the stream's last\n"
            }
            _ => {
                "check: every publish acknowledged once, sequences gap-free, the stream holds exactly them\n"
            }
        };
        return t;
    }
    t += &format!(
        "FAILED: {} acks lost, {} error acks, {} acks for no publish\n",
        j.lost, j.errors, j.stray
    );
    for e in &j.first_errors {
        t += &format!("  error ack: {e}\n");
    }
    if let Some(p) = &j.seq_problem {
        t += &format!("  sequences: {p}\n");
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_across_clients() {
        let runs = [
            ClientRun {
                msgs: 100,
                secs: 1.0,
                cut_off: false,
            },
            ClientRun {
                msgs: 300,
                secs: 2.0,
                cut_off: false,
            },
        ];
        let s = Side::of(&runs, 10);
        assert_eq!(s.msgs, 400);
        assert_eq!(
            s.msgs_per_sec, 200.0,
            "all messages over the slowest client's time"
        );
        assert_eq!((s.min, s.avg, s.max, s.stddev), (100.0, 125.0, 150.0, 25.0));
        assert_eq!(s.mb_per_sec, 200.0 * 10.0 / 1e6);
        assert_eq!(si(1_234_567.0), "1.23M");
    }

    #[test]
    fn csv_is_a_header_and_a_row() {
        let args = ["pub", "--url", "nats://h:1,2", "--size", "16"].map(String::from);
        let crate::args::Parsed::Run(opts) = crate::args::parse(args.into_iter()).unwrap() else {
            panic!("a run")
        };
        let runs = [ClientRun {
            msgs: 10,
            secs: 1.0,
            cut_off: false,
        }];
        let r = Report {
            pubs: Some(Side::of(&runs, 16)),
            subs: None,
            latency: None,
            lost: 0,
            server: None,
            setup: None,
            idle: None,
            js: None,
            consume: None,
            obj: None,
        };
        let text = csv(&opts, &r);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[0].starts_with("lost,pub.clients,"), "{}", lines[0]);
        // A value with a comma is quoted.
        assert!(lines[1].ends_with(",\"nats://h:1,2\""), "{}", lines[1]);
        assert_eq!(
            lines[0].split(',').count(),
            lines[1].replace("\"nats://h:1,2\"", "u").split(',').count()
        );
    }
}
