#!/usr/bin/env python3
"""Summarizes bench/compare's runs.jsonl: per scenario and size, each
server's median (natrix, nats-server 2.15.1, nats-server 2.9.10), the
natrix/2.15.1 ratio of each round's pair with its median and spread (min-max
across rounds), the median natrix/2.9.10 ratio, and the budget verdict
against 2.15.1. JetStream runs (js-pub, fsync-floor) get their own table
and targets after it, and so do consumer and key-value runs (js-consume,
js-ordered, kv-put, kv-get), and object store runs (obj-put, obj-get)."""

import json
import statistics
import sys
from collections import defaultdict

THROUGHPUT_SCENARIOS = {"pub", "pubsub", "fanout", "queue", "routed", "cluster-pubsub", "cluster-fanout"}

# The reference the budget is judged against, then the older one shown
# beside it. Runs from before 2.15.1 was compared name 2.9.10 "nats".
REFERENCE, OLDER = "nats215", "nats29"
ALIASES = {"nats": OLDER}

# metric -> (label, higher is better, budget ratio or None); the throughput
# and CPU budgets hold for THROUGHPUT_SCENARIOS only.
BUDGET = {
    "msgs_per_sec": ("msgs/s", True, 1.5),
    "cpu_ns_per_msg": ("server CPU ns/msg (stat ticks)", False, None),
    # The budget is judged on the nanosecond counters: 10 ms ticks are too
    # coarse for short runs (on long ones the two agree within a few %).
    "sched_ns_per_msg": ("server CPU ns/msg (schedstat)", False, 0.6),
    "rss_mib": ("server RSS after, MiB", False, None),
    "subscribed_mib": ("RSS growth to subscribe, MiB", False, 0.5),
    "rss_run_max_mib": ("RSS under load, MiB", False, 0.5),
    "rss_after_mib": ("RSS 5 s after the burst, MiB", False, 0.5),
    "p50_us": ("latency p50 µs", False, 1.0),
    "p90_us": ("latency p90 µs", False, None),
    "p99_us": ("latency p99 µs", False, 0.7),
    "p99_9_us": ("latency p99.9 µs", False, None),
    "idle_rss_mib": ("idle RSS MiB", False, 0.25),
    "mib_per_1000_conns": ("RSS MiB per 1,000 idle conns", False, 0.5),
    "startup_ms": ("startup ms (spawn to listening)", False, None),
}


def metrics(r):
    """The figures one run contributes, keyed by (scenario, size)."""
    s = r["scenario"]
    if r["target"] == "floor":
        return (r["floor_of"], str(r["size"])), {"floor_ns_per_msg": r["server"]["sched_cpu_ns_per_msg"]}
    if r.get("subjects", 1) > 1:
        s = "routed"
    if r.get("cluster"):
        s = "cluster-" + s
    if s == "startup":
        return ("idle", "-"), {"startup_ms": r["startup_ms"], "idle_rss_mib": r["idle_rss_kib"] / 1024}
    if s == "idle":
        return ("idle", "-"), {"mib_per_1000_conns": r["idle"]["kib_per_1000_conns"] / 1024}
    side = r.get("sub") or r["pub"]
    m = {"msgs_per_sec": side["msgs_per_sec"]}
    if r.get("burst"):
        # A burst run on a fresh server is there for its memory only.
        m["rss_run_max_mib"] = r["server"]["rss_run_max_kib"] / 1024
        m["rss_after_mib"] = r["server"]["rss_after_kib"] / 1024
        kind = r["burst"] if isinstance(r["burst"], str) else "burst"
        return (kind + "-" + s, str(r["size"])), m
    if "server" in r:
        m["cpu_ns_per_msg"] = r["server"]["cpu_ns_per_msg"]
        if r["server"].get("sched_cpu_ns_per_msg") is not None:
            m["sched_ns_per_msg"] = r["server"]["sched_cpu_ns_per_msg"]
        m["rss_mib"] = r["server"]["rss_kib"] / 1024
    if s == "routed" and "setup" in r:
        m["subscribed_mib"] = (r["setup"]["rss_subscribed_kib"] - r["setup"]["rss_before_kib"]) / 1024
    if "latency" in r:
        for q in ("p50", "p90", "p99", "p99_9"):
            m[q + "_us"] = r["latency"][q + "_us"]
    return (s, str(r["size"])), m


def fmt(x):
    if x >= 1e6:
        return f"{x / 1e6:.2f}M"
    if x >= 1e4:
        return f"{x / 1e3:.1f}k"
    if x >= 100:
        return f"{x:.0f}"
    return f"{x:.2f}"


def load(path):
    """Per-round values, lost counts and lossy rounds from runs.jsonl."""
    # (key, metric, server, round) -> values (startup is sampled more than once a round)
    vals = defaultdict(list)
    lost = defaultdict(int)
    lossy_rounds = defaultdict(set)
    order = []
    with open(path) as f:
        for line in f:
            r = json.loads(line)
            if r.get("scenario") in JS_SCENARIOS | CONSUME_SCENARIOS | OBJ_SCENARIOS:
                continue
            target = ALIASES.get(r["target"], r["target"])
            key, m = metrics(r)
            if key not in order:
                order.append(key)
            lost[(key, target)] += r.get("lost", 0)
            if r.get("lost", 0):
                lossy_rounds[(key, target)].add(r["round"])
            for name, v in m.items():
                vals[(key, name, target, r["round"])].append(v)
    return vals, lost, lossy_rounds, order


# CPU per message within this multiple of the plain socket loop's passes the
# CPU budget whatever the reference servers do: the copy is the floor.
FLOOR_BUDGET = 1.2


def floor_per(vals, key, rounds):
    """The plain loop's CPU per message for each round (None where absent)."""
    return [statistics.median(vals[(key, "floor_ns_per_msg", "floor", n)])
            if vals.get((key, "floor_ns_per_msg", "floor", n)) else None for n in rounds]


def round_ratios(per, srv):
    """natrix / srv for each round both ran in."""
    return [a / b for a, b in zip(per["natrix"], per[srv]) if a is not None and b]


def verdict(key, budget, higher, ratios, lossy_rounds, rounds):
    """The budget cell of a row and whether it passes."""
    ratio = statistics.median(ratios)
    ok = ratio >= budget if higher else ratio <= budget
    text = ("pass" if ok else "FAIL") + (" >= " if higher else " <= ") + f"{budget}"
    text += " (spread crosses)" if min(ratios) < budget < max(ratios) else ""
    if lossy_rounds[(key, "natrix")]:
        # Fewer deliveries is less work: neither figure means anything.
        return f"FAIL: natrix lost messages in {len(lossy_rounds[(key, 'natrix')])} of {len(rounds)} rounds", False
    for srv, label in ((REFERENCE, "2.15.1"), (OLDER, "2.9.10")):
        if lossy_rounds[(key, srv)]:
            text += f" (nats {label} lost messages)"
    return text, ok


JS_SCENARIOS = {"js-pub", "fsync-floor"}
# The JetStream servers, as bench/compare names them, and their columns.
JS_SERVERS = (("natrix", "natrix"), ("natrix-2m", "natrix 2m"), ("nats215", "2.15.1"),
              ("nats29", "2.9.10"), ("nats215-always", "2.15.1 sync"))
# (figure, label): what each js-pub run contributes.
JS_FIGURES = (("acks_per_sec", "acks/s"), ("p50_us", "ack latency p50 µs"),
              ("p99_us", "ack latency p99 µs"), ("cpu_us_per_ack", "server CPU µs/ack"),
              ("syncs_per_sec", "server fsyncs/s"), ("acks_per_sync", "acks per fsync"))
# The targets, for runs with >= 100 in flight or >= 16 publishers:
# natrix syncing every ack at least as fast as nats-server acking before it
# syncs, and ten times nats-server syncing every write.
JS_TARGETS = (("nats215", "2.15.1 (lazy)", 1.0), ("nats29", "2.9.10 (lazy)", 1.0),
              ("nats215-always", "2.15.1 sync_interval: always", 10.0))


def js_load(path):
    """(pubs, inflight, size) -> target -> round -> figures; floor by size."""
    runs = defaultdict(lambda: defaultdict(dict))
    floor = defaultdict(list)
    with open(path) as f:
        for line in f:
            r = json.loads(line)
            if r.get("scenario") == "fsync-floor":
                cpu = r.get("server", {}).get("sched_cpu_ns_per_msg") or 0
                floor[r["size"]].append((r["pub"]["msgs_per_sec"], r["latency"]["p50_us"], r["latency"]["p99_us"],
                                         cpu / 1e3))
            if r.get("scenario") != "js-pub":
                continue
            j, srv = r["js"], r.get("server", {})
            m = {"acks_per_sec": r["pub"]["msgs_per_sec"], "p50_us": r["latency"]["p50_us"],
                 "p99_us": r["latency"]["p99_us"], "sound": j["sound"]}
            if srv.get("sched_cpu_ns_per_msg") is not None:
                m["cpu_us_per_ack"] = srv["sched_cpu_ns_per_msg"] / 1e3
            for k in ("syncs_per_sec", "acks_per_sync"):
                if j.get(k) is not None:
                    m[k] = j[k]
            runs[(r["pub"]["clients"], j["inflight"], r["size"])][r["target"]][r["round"]] = m
    return runs, floor


def js_main(path):
    runs, floor = js_load(path)
    if not runs and not floor:
        return
    print()
    print("JetStream publish with acks (js-pub): medians over rounds; natrix syncs before every ack, "
          "'natrix 2m' and 2.15.1/2.9.10 ack before syncing, '2.15.1 sync' has sync_interval: always")
    for size in sorted(floor):
        rate, p50, p99, cpu = (statistics.median(v) for v in zip(*floor[size]))
        print(f"fsync floor {size:>5} B: one writer, append + fdatasync: {fmt(rate)}/s, p50 {fmt(p50)} µs, "
              f"p99 {fmt(p99)} µs, writer CPU {fmt(cpu)} µs each")
    head = "".join(f" {label:>11}" for _, label in JS_SERVERS)
    print(f"{'pubs x inflight':<16} {'size':>5}  {'figure':<20}{head}")
    passed = total = 0
    for key in sorted(runs, key=lambda k: (k[2], k[0], k[1])):
        pubs, inflight, size = key
        by = runs[key]
        for name, label in JS_FIGURES:
            cells = []
            for srv, _ in JS_SERVERS:
                # Rates and latencies of runs that lost acks mean nothing.
                v = [m[name] for m in by.get(srv, {}).values() if name in m and m["sound"]]
                cells.append(fmt(statistics.median(v)) if v else "-")
            if all(c == "-" for c in cells):
                continue
            print(f"{f'{pubs} x {inflight}':<16} {size:>5}  {label:<20}" + "".join(f" {c:>11}" for c in cells))
        unsound = {srv: sum(not m["sound"] for m in by.get(srv, {}).values()) for srv, _ in JS_SERVERS}
        for srv, n in unsound.items():
            if n:
                print(f"{'':<16} {'':>5}  warning: {srv} lost or misnumbered acks in {n} of {len(by[srv])} "
                      "rounds (their figures are left out)")
        if inflight < 100 and pubs < 16:
            continue
        for srv, label, budget in JS_TARGETS:
            mine = by.get("natrix", {})
            # A reference run that lost acks has no rate to compare with.
            ratios = [mine[n]["acks_per_sec"] / m["acks_per_sec"] for n, m in by.get(srv, {}).items()
                      if n in mine and m["acks_per_sec"] and m["sound"]]
            if not ratios:
                if by.get(srv):
                    print(f"{'':<16} {'':>5}  natrix / {label:<30} {'-':>7}  no run of {srv} kept every ack")
                continue
            ratio = statistics.median(ratios)
            ok = ratio >= budget and not unsound["natrix"]
            cell = ("pass" if ok else "FAIL") + f" >= {budget:g}"
            if unsound["natrix"]:
                cell = f"FAIL: natrix lost or misnumbered acks in {unsound['natrix']} rounds"
            elif min(ratios) < budget < max(ratios):
                cell += " (spread crosses)"
            total += 1
            passed += ok
            print(f"{'':<16} {'':>5}  natrix / {label:<30} {ratio:>7.2f} [{min(ratios):.2f}-{max(ratios):.2f}]  {cell}")
    print(f"jetstream targets: {passed} of {total} pass")


CONSUME_SCENARIOS = {"js-consume", "js-ordered", "kv-put", "kv-get"}
CONSUME_SERVERS = (("natrix", "natrix"), (REFERENCE, "2.15.1"), (OLDER, "2.9.10"))
# (figure, label) per kind of row.
CONSUME_FIGURES = (("rate", "msgs/s"), ("mb", "MB/s"), ("cpu_us", "server CPU µs/msg"))
KV_FIGURES = (("rate", "ops/s"), ("p50_us", "latency p50 µs"), ("p99_us", "latency p99 µs"),
              ("cpu_us", "server CPU µs/op"))
# Consume throughput target against 2.15.1.
CONSUME_BUDGET = 1.5


def consume_row(r):
    """The row a consumer or key-value run belongs to, and its figures."""
    srv = r.get("server", {})
    cpu = srv.get("sched_cpu_ns_per_msg")
    if r["scenario"] in ("kv-put", "kv-get"):
        j = r["js"]
        m = {"rate": r["pub"]["msgs_per_sec"], "p50_us": r["latency"]["p50_us"],
             "p99_us": r["latency"]["p99_us"], "sound": j["sound"]}
        key = (r["scenario"], f"{r['pub']['clients']} x {j['inflight']} in flight", r["size"])
    else:
        c = r["consume"]
        m = {"rate": r["sub"]["msgs_per_sec"], "mb": r["sub"]["mb_per_sec"], "sound": c["sound"]}
        what = f"pull {c['batch']}, ack {c['ack']}" if c["kind"] == "pull" else "ordered push"
        key = ("consume", what, r["size"])
    if cpu is not None:
        m["cpu_us"] = cpu / 1e3
    return key, m


def consume_main(path):
    rows = defaultdict(lambda: defaultdict(dict))
    msgs = {}
    with open(path) as f:
        for line in f:
            r = json.loads(line)
            if r.get("scenario") not in CONSUME_SCENARIOS:
                continue
            key, m = consume_row(r)
            rows[key][ALIASES.get(r["target"], r["target"])][r["round"]] = m
            if key[0] == "consume":
                msgs[key[2]] = r["consume"]["expected"]
    if not rows:
        return
    print()
    print("JetStream consumers and key-value (js-consume, js-ordered, kv-put, kv-get): medians over rounds; "
          "each server as it starts (-js -sd); ratio = median of the rounds' natrix/2.15.1 [min-max]")
    for size, n in sorted(msgs.items()):
        print(f"consume: {n:,} messages of {size} B, filled once per server and round, read through a fresh consumer")
    head = "".join(f" {label:>10}" for _, label in CONSUME_SERVERS)
    print(f"{'row':<34} {'size':>5}  {'figure':<20}{head}  {'/2.15.1':>7} {'[spread]':<13} {'/2.9.10':>7}  target")
    passed = total = 0
    for key in sorted(rows, key=lambda k: (k[0] != "consume", k[0], k[2], k[1])):
        by = rows[key]
        unsound = {srv: sum(not m["sound"] for m in by.get(srv, {}).values()) for srv, _ in CONSUME_SERVERS}
        figures = CONSUME_FIGURES if key[0] == "consume" else KV_FIGURES
        for name, label in figures:
            cells = []
            for srv, _ in CONSUME_SERVERS:
                # A run that lost or repeated a message has no meaningful rate.
                v = [m[name] for m in by.get(srv, {}).values() if name in m and m["sound"]]
                cells.append(fmt(statistics.median(v)) if v else "-")
            if all(c == "-" for c in cells):
                continue

            def ratios(other):
                mine, theirs = by.get("natrix", {}), by.get(other, {})
                return [mine[n][name] / t[name] for n, t in theirs.items()
                        if n in mine and name in mine[n] and t.get(name) and t["sound"] and mine[n]["sound"]]
            ref, older = ratios(REFERENCE), ratios(OLDER)
            ref_cell = f"{statistics.median(ref):>7.2f} [{min(ref):.2f}-{max(ref):.2f}]" if ref else f"{'-':>7}"
            older_cell = f"{statistics.median(older):>7.2f}" if older else f"{'-':>7}"
            cell = ""
            if key[0] == "consume" and name == "rate":
                total += 1
                if unsound["natrix"]:
                    cell, ok = f"FAIL: natrix lost, repeated or reordered messages in {unsound['natrix']} rounds", False
                elif not ref:
                    cell, ok = "FAIL: no round to compare", False
                else:
                    ratio = statistics.median(ref)
                    ok = ratio >= CONSUME_BUDGET
                    cell = ("pass" if ok else "FAIL") + f" >= {CONSUME_BUDGET}"
                    cell += " (spread crosses)" if min(ref) < CONSUME_BUDGET < max(ref) else ""
                passed += ok
            print(f"{key[0] + ' ' + key[1]:<34} {key[2]:>5}  {label:<20}" + "".join(f" {c:>10}" for c in cells)
                  + f"  {ref_cell:<21} {older_cell}  {cell}".rstrip())
        for srv, n in unsound.items():
            if n:
                print(f"{'':<34} {'':>5}  warning: {srv} lost, repeated or reordered in {n} of {len(by[srv])} "
                      "rounds (left out of its figures)")
    print(f"consume targets: {passed} of {total} pass")


OBJ_SCENARIOS = {"obj-put", "obj-get"}
OBJ_FIGURES = (("objects_per_sec", "objects/s"), ("mb_per_sec", "MB/s"), ("p50_ms", "p50 ms per object"),
               ("cpu_ms_per_mib", "server CPU ms/MiB"))


def obj_main(path):
    """Object puts and gets: each server's median per row, natrix's ratios."""
    rows = defaultdict(lambda: defaultdict(dict))
    with open(path) as f:
        for line in f:
            r = json.loads(line)
            if r.get("scenario") not in OBJ_SCENARIOS:
                continue
            o = r["obj"]
            what = f"put, {o['inflight']} chunk(s) in flight" if o["kind"] == "put" else "get, ordered consumer"
            key = (what, o["object_bytes"], o["chunk_bytes"])
            m = {name: o[name] for name, _ in OBJ_FIGURES if o.get(name) is not None}
            if o.get("sched_cpu_ms_per_mib") is not None:
                m["cpu_ms_per_mib"] = o["sched_cpu_ms_per_mib"]
            m["sound"] = o["sound"]
            rows[key][ALIASES.get(r["target"], r["target"])][r["round"]] = m
    if not rows:
        return
    print()
    print("Object store (obj-put, obj-get): one client, one object put or got again and again on a fresh "
          "file bucket, each server as it starts (-js -sd); medians over rounds; ratio = median of the "
          "rounds' natrix/2.15.1 [min-max]; CPU by schedstat")
    head = "".join(f" {label:>10}" for _, label in CONSUME_SERVERS)
    print(f"{'row':<34} {'object':>8}  {'figure':<20}{head}  {'/2.15.1':>7} {'[spread]':<13} {'/2.9.10':>7}")
    for key in sorted(rows, key=lambda k: (k[0].startswith("get"), k)):
        by = rows[key]
        size = f"{key[1] / 1048576:g} MiB"
        for name, label in OBJ_FIGURES:
            cells = []
            for srv, _ in CONSUME_SERVERS:
                v = [m[name] for m in by.get(srv, {}).values() if name in m and m["sound"]]
                cells.append(fmt(statistics.median(v)) if v else "n/a")

            def ratios(other):
                mine, theirs = by.get("natrix", {}), by.get(other, {})
                return [mine[n][name] / t[name] for n, t in theirs.items()
                        if n in mine and name in mine[n] and t.get(name) and t["sound"] and mine[n]["sound"]]
            ref, older = ratios(REFERENCE), ratios(OLDER)
            ref_cell = f"{statistics.median(ref):>7.2f} [{min(ref):.2f}-{max(ref):.2f}]" if ref else f"{'-':>7}"
            older_cell = f"{statistics.median(older):>7.2f}" if older else f"{'-':>7}"
            print(f"{key[0]:<34} {size:>8}  {label:<20}" + "".join(f" {c:>10}" for c in cells)
                  + f"  {ref_cell:<21} {older_cell}".rstrip())
        for srv, _ in CONSUME_SERVERS:
            bad = sum(not m["sound"] for m in by.get(srv, {}).values())
            if bad:
                print(f"{'':<34} {'':>8}  warning: {srv} lost, broke or failed objects in {bad} of "
                      f"{len(by[srv])} rounds (left out of its figures)")


def main(path):
    vals, lost, lossy_rounds, order = load(path)
    rounds = sorted({k[3] for k in vals})
    if not rounds:
        js_main(path)
        consume_main(path)
        obj_main(path)
        return
    servers = ("natrix", REFERENCE, OLDER)
    print(f"natrix against nats-server 2.15.1 and 2.9.10, {len(rounds)} round{'' if len(rounds) == 1 else 's'}; "
          "ratio = median of the rounds' natrix/2.15.1 ratios [min-max]; budget against 2.15.1")
    print(f"{'scenario':<12} {'size':>4}  {'figure':<32} {'natrix':>9} {'2.15.1':>9} {'2.9.10':>9}  "
          f"{'/2.15.1':>7} {'[spread]':<13} {'/2.9.10':>7}  budget")
    verdicts = []
    for key in order:
        for name, (label, higher, budget) in BUDGET.items():
            # Each server's per-round median, None for a round it has no figure in.
            per = {srv: [statistics.median(vals[(key, name, srv, n)]) if vals.get((key, name, srv, n)) else None
                         for n in rounds]
                   for srv in servers}
            if not any(v is not None for v in per["natrix"]):
                continue
            ratios, older_ratios = round_ratios(per, REFERENCE), round_ratios(per, OLDER)
            if not ratios and not older_ratios:
                continue
            if name in ("msgs_per_sec", "sched_ns_per_msg") and key[0] not in THROUGHPUT_SCENARIOS:
                budget = None
            cell = ""
            floors = round_ratios({"natrix": per["natrix"], "floor": floor_per(vals, key, rounds)}, "floor") \
                if name == "sched_ns_per_msg" else []
            if budget is not None and ratios:
                cell, ok = verdict(key, budget, higher, ratios, lossy_rounds, rounds)
                if not ok and floors and statistics.median(floors) <= FLOOR_BUDGET:
                    # At the floor: nothing left to take out but the copy itself.
                    cell, ok = f"pass: {statistics.median(floors):.2f}x the plain loop <= {FLOOR_BUDGET}", True
                verdicts.append((key, label, ok))
            medians = []
            for srv in servers:
                present = [v for v in per[srv] if v is not None]
                medians.append(fmt(statistics.median(present)) if present else "-")
            ref = f"{statistics.median(ratios):>7.2f} [{min(ratios):.2f}-{max(ratios):.2f}]" if ratios else f"{'-':>7}"
            older = f"{statistics.median(older_ratios):>7.2f}" if older_ratios else f"{'-':>7}"
            print(f"{key[0]:<12} {key[1]:>4}  {label:<32} {medians[0]:>9} {medians[1]:>9} {medians[2]:>9}  "
                  f"{ref:<21} {older}  {cell}".rstrip())
            if floors:
                loop = [v for v in floor_per(vals, key, rounds) if v is not None]
                print(f"{key[0]:<12} {key[1]:>4}  {'plain socket loop CPU ns/msg':<32} {fmt(statistics.median(loop)):>9} "
                      f"{'':>9} {'':>9}  natrix / loop {statistics.median(floors):.2f} "
                      f"[{min(floors):.2f}-{max(floors):.2f}]")
    names = {"natrix": "natrix", REFERENCE: "nats-server 2.15.1", OLDER: "nats-server 2.9.10"}
    for (key, srv), n in lost.items():
        if n:
            print(f"warning: {names.get(srv, srv)} lost {n:,} messages in {key[0]} {key[1]} B, in "
                  f"{len(lossy_rounds[(key, srv)])} of {len(rounds)} rounds (subscriber cut as a slow consumer?)")
    passed = sum(ok for _, _, ok in verdicts)
    print(f"budget: {passed} of {len(verdicts)} rows pass")
    js_main(path)
    consume_main(path)
    obj_main(path)


if __name__ == "__main__":
    main(sys.argv[1])
