"""The Python client's side of natrix's conformance suite.

Runs one scenario of conformance/scenarios with the official Python client,
nats-py, against the server at $NATS_URL:

    python conformance.py <scenario>

It starts no server: conformance/run does, and reads the exit code (0 pass,
1 fail, 77 not applicable to this client, 2 unknown scenario). On failure it
prints what the client saw and what it expected.
"""

import asyncio
import os
import ssl
import subprocess
import sys
import threading
import time

import nats
from nats import errors

URL = os.environ.get("NATS_URL", "nats://127.0.0.1:4222")
WAIT = 5.0


class Fail(Exception):
    pass


class NotApplicable(Exception):
    pass


def check(what, saw, expected):
    if saw != expected:
        raise Fail(f"{what}: saw {saw!r}, expected {expected!r}")


def ensure(cond, what):
    if not cond:
        raise Fail(what)


async def within(what, coro, timeout=WAIT):
    try:
        return await asyncio.wait_for(coro, timeout)
    except asyncio.TimeoutError:
        raise Fail(f"{what}: nothing after {timeout} s") from None


async def connect(url=URL, **kw):
    kw.setdefault("connect_timeout", 2)
    kw.setdefault("allow_reconnect", False)
    return await within(f"connect to {url}", nats.connect(url, **kw))


async def next_msg(what, sub, timeout=WAIT):
    try:
        return await sub.next_msg(timeout=timeout)
    except errors.TimeoutError:
        raise Fail(f"{what}: nothing after {timeout} s") from None


async def collect(sub, quiet=0.3):
    out = []
    while True:
        try:
            out.append(await sub.next_msg(timeout=quiet))
        except errors.TimeoutError:
            return out


async def round_trip(nc):
    """A real round trip through the server.

    nats-py's flush() writes its PING straight to the socket while earlier
    SUB/PUB commands may still wait in the client's pending buffer, so it can
    return before the server has seen them. A message to a private inbox goes
    through that buffer in order: once it is back, all before it took effect.
    """
    inbox = nc.new_inbox()
    sub = await nc.subscribe(inbox)
    await nc.publish(inbox, b"sync")
    await next_msg("round trip", sub)
    await sub.unsubscribe()


def server_ctl(var):
    cmd = os.environ.get(var)
    if not cmd:
        raise Fail(f"${var} is not set")
    r = subprocess.run(cmd, shell=True)
    ensure(r.returncode == 0, f"{cmd}: exit code {r.returncode}")


def with_credentials(url, creds):
    return url.replace("nats://", f"nats://{creds}@", 1)


# ---- scenarios -----------------------------------------------------------


async def connect_info():
    nc = await connect()
    info = nc._server_info
    check("INFO version", info.get("version"), "2.9.10")
    check("INFO max_payload", info.get("max_payload"), 1048576)
    check("client max_payload", nc.max_payload, 1048576)
    check("INFO headers", info.get("headers"), True)
    ensure(info.get("proto", 0) >= 1, f"INFO proto: saw {info.get('proto')!r}, expected >= 1")
    ensure(info.get("server_id"), "INFO server_id is empty")
    check("INFO auth_required", info.get("auth_required", False), False)
    v = nc.connected_server_version
    check("server version", (v.major, v.minor, v.patch), (2, 9, 10))
    check("connected", nc.is_connected, True)
    await nc.flush(timeout=WAIT)
    await nc.close()
    check("closed", nc.is_closed, True)


async def pub_sub():
    nc = await connect()
    pc = await connect()
    sub = await nc.subscribe("cf.pubsub")
    await round_trip(nc)
    for i in range(100):
        await pc.publish("cf.pubsub", f"msg-{i}".encode())
    await pc.publish("cf.pubsub", b"")
    await round_trip(pc)
    for i in range(100):
        m = await next_msg(f"message {i}", sub)
        check("subject", m.subject, "cf.pubsub")
        check("payload", m.data, f"msg-{i}".encode())
        check("reply", m.reply, "")
    m = await next_msg("empty message", sub)
    check("empty payload", m.data, b"")


async def wildcards():
    nc = await connect()
    star_b = await nc.subscribe("cf.wc.*.b")
    a_star = await nc.subscribe("cf.wc.a.*")
    full = await nc.subscribe("cf.wc.>")
    await round_trip(nc)
    for s in ["cf.wc.a.b", "cf.wc.x.b", "cf.wc.a.c", "cf.wc.a.b.c", "cf.other"]:
        await nc.publish(s, s.encode())
    await round_trip(nc)
    subjects = lambda msgs: [m.subject for m in msgs]  # noqa: E731
    check("cf.wc.*.b got", subjects(await collect(star_b)), ["cf.wc.a.b", "cf.wc.x.b"])
    check("cf.wc.a.* got", subjects(await collect(a_star)), ["cf.wc.a.b", "cf.wc.a.c"])
    check(
        "cf.wc.> got",
        subjects(await collect(full)),
        ["cf.wc.a.b", "cf.wc.x.b", "cf.wc.a.c", "cf.wc.a.b.c"],
    )


async def queue_groups():
    nc = await connect()
    members = [await nc.subscribe("cf.queue", queue="workers") for _ in range(3)]
    plain = await nc.subscribe("cf.queue")
    await round_trip(nc)
    pc = await connect()
    for i in range(300):
        await pc.publish("cf.queue", str(i).encode())
    await round_trip(pc)
    seen, per_member = [], []
    for m in members:
        got = await collect(m)
        per_member.append(len(got))
        seen += [int(x.data) for x in got]
    check("messages across the group (each exactly once)", sorted(seen), list(range(300)))
    ensure(all(n > 0 for n in per_member), f"every member should get some of 300, saw {per_member}")
    check("plain subscriber count", len(await collect(plain)), 300)


async def start_responder(nc, subject):
    async def echo(msg):
        await msg.respond(b"re:" + msg.data)

    await nc.subscribe(subject, cb=echo)
    await round_trip(nc)


async def request_reply():
    svc = await connect()
    await start_responder(svc, "cf.svc")
    nc = await connect()
    for i in range(10):
        r = await nc.request("cf.svc", f"new-{i}".encode(), timeout=WAIT)
        check("new-style reply", r.data, f"re:new-{i}".encode())
    rs = await within(
        "20 parallel requests",
        asyncio.gather(*[nc.request("cf.svc", f"par-{i}".encode(), timeout=WAIT) for i in range(20)]),
    )
    for i, r in enumerate(rs):
        check("parallel reply", r.data, f"re:par-{i}".encode())
    for i in range(10):
        r = await nc.request("cf.svc", f"old-{i}".encode(), timeout=WAIT, old_style=True)
        check("old-style reply", r.data, f"re:old-{i}".encode())


async def no_responders():
    nc = await connect()
    start = time.monotonic()
    try:
        await nc.request("cf.nobody", b"x", timeout=WAIT)
        raise Fail("request to a subject without subscribers got a reply")
    except errors.NoRespondersError:
        pass
    except errors.TimeoutError:
        raise Fail("request error: saw a timeout, expected NoRespondersError") from None
    took = time.monotonic() - start
    ensure(took < 2, f"no-responders should come at once, took {took:.2f} s")
    try:
        await nc.request("cf.nobody", b"x", timeout=WAIT, old_style=True)
        raise Fail("old-style request to a subject without subscribers got a reply")
    except errors.NoRespondersError:
        pass


async def headers():
    nc = await connect()
    sub = await nc.subscribe("cf.headers")
    await round_trip(nc)
    # nats-py headers are a dict: one value per key, so no multi-valued header.
    await nc.publish("cf.headers", b"body", headers={"X-Conf": "one", "X-Other": "two"})
    await nc.publish("cf.headers", b"plain")
    await nc.publish("cf.headers", b"", headers={"X-Only": "headers"})
    m = await next_msg("message with headers", sub)
    check("headers", m.headers, {"X-Conf": "one", "X-Other": "two"})
    check("payload", m.data, b"body")
    m = await next_msg("plain message", sub)
    check("plain message headers", m.headers, None)
    check("plain payload", m.data, b"plain")
    m = await next_msg("headers-only message", sub)
    check("headers-only headers", m.headers, {"X-Only": "headers"})
    check("headers-only payload", m.data, b"")


async def auto_unsubscribe():
    nc = await connect()
    sub = await nc.subscribe("cf.auto")
    await sub.unsubscribe(limit=5)
    await round_trip(nc)
    for i in range(10):
        await nc.publish("cf.auto", str(i).encode())
    await round_trip(nc)
    got = [m.data.decode() for m in await collect(sub, 0.5)]
    check("messages before auto-unsubscribe", got, [str(i) for i in range(5)])


async def drain():
    nc = await connect()
    pc = await connect()
    got, got_other = [], []

    async def slow(msg):
        await asyncio.sleep(0.001)
        got.append(msg.data.decode())

    async def other_cb(msg):
        got_other.append(msg.data.decode())

    await nc.subscribe("cf.drain", cb=slow)
    other = await nc.subscribe("cf.drain.sub", cb=other_cb)
    await round_trip(nc)
    for i in range(200):
        await pc.publish("cf.drain", str(i).encode())
        await pc.publish("cf.drain.sub", str(i).encode())
    await round_trip(pc)
    await within("subscription drain", other.drain())
    check("messages on the drained subscription", len(got_other), 200)
    await within("connection drain", nc.drain(), 15)
    check("messages delivered by drain", got, [str(i) for i in range(200)])
    check("closed after drain", nc.is_closed, True)
    try:
        await nc.publish("cf.after", b"x")
        raise Fail("publish after drain should fail, it succeeded")
    except errors.ConnectionClosedError:
        pass


async def flush_ping():
    nc = await connect()
    sub = await nc.subscribe("cf.flush")
    await round_trip(nc)
    for i in range(1000):
        await nc.publish("cf.flush", str(i).encode())
    start = time.monotonic()
    await nc.flush(timeout=WAIT)
    took = time.monotonic() - start
    ensure(took < 2, f"flush took {took:.2f} s")
    for i in range(1000):
        m = await next_msg(f"message {i} after flush", sub)
        check("payload", m.data, str(i).encode())
    for _ in range(10):
        await nc.flush(timeout=WAIT)
    rtt = await nc.rtt()
    ensure(0 < rtt < 2, f"rtt: saw {rtt}, expected between 0 and 2 s")


async def max_payload():
    nc = await connect()
    check("client max_payload", nc.max_payload, 1048576)
    sub = await nc.subscribe("cf.max")
    await round_trip(nc)
    try:
        await nc.publish("cf.max", b"x" * (1048576 + 1))
        raise Fail("a payload of max_payload + 1 was accepted by the client")
    except errors.MaxPayloadError:
        pass
    await nc.publish("cf.max", b"y" * 1048576)
    await round_trip(nc)
    m = await next_msg("max_payload message", sub)
    check("payload length", len(m.data), 1048576)
    await nc.publish("cf.max", b"still open")
    check("after", (await next_msg("message after", sub)).data, b"still open")


async def reconnect():
    disconnected, reconnected = asyncio.Event(), asyncio.Event()

    async def on_disconnect():
        disconnected.set()

    async def on_reconnect():
        reconnected.set()

    nc = await connect(
        allow_reconnect=True,
        reconnect_time_wait=0.1,
        max_reconnect_attempts=-1,
        disconnected_cb=on_disconnect,
        reconnected_cb=on_reconnect,
    )
    sub = await nc.subscribe("cf.reconnect")
    await round_trip(nc)
    await nc.publish("cf.reconnect", b"before")
    check("before restart", (await next_msg("message before restart", sub)).data, b"before")
    await asyncio.to_thread(server_ctl, "CONFORMANCE_SERVER_STOP")
    await within("disconnected callback", disconnected.wait(), 10)
    for i in range(10):
        await nc.publish("cf.reconnect", f"buffered-{i}".encode())
    await asyncio.to_thread(server_ctl, "CONFORMANCE_SERVER_START")
    await within("reconnected callback", reconnected.wait(), 10)
    for i in range(10):
        m = await next_msg(f"buffered message {i}", sub)
        check("buffered message", m.data, f"buffered-{i}".encode())
    await nc.publish("cf.reconnect", b"after")
    check("after reconnect", (await next_msg("message after reconnect", sub)).data, b"after")


def cluster_urls():
    """The members other than NATS_URL's server, from the runner."""
    urls = os.environ.get("CONFORMANCE_CLUSTER_URLS")
    if not urls:
        raise Fail("$CONFORMANCE_CLUSTER_URLS is not set (the runner starts a cluster for this scenario)")
    return urls.split(",")


def host_port(url):
    return url.split("://", 1)[-1]


async def until_crossed(pc, sub, data):
    """Publishes data on pc every 100 ms until sub gets it.

    Interest reaches the other servers of a cluster a moment after the
    subscription. Earlier probes still on their way are skipped.
    """
    deadline = time.monotonic() + WAIT
    while True:
        await pc.publish(sub.subject, data)
        await pc.flush(timeout=WAIT)
        for m in await collect(sub, quiet=0.1):
            if m.data == data:
                return
        ensure(
            time.monotonic() < deadline,
            f"{data!r} published by the second connection: nothing crossed the cluster after {WAIT} s",
        )


async def cluster_failover():
    others = cluster_urls()
    disconnected, reconnected = asyncio.Event(), asyncio.Event()

    async def on_disconnect():
        disconnected.set()

    async def on_reconnect():
        reconnected.set()

    nc = await connect(
        allow_reconnect=True,
        reconnect_time_wait=0.1,
        max_reconnect_attempts=-1,
        disconnected_cb=on_disconnect,
        reconnected_cb=on_reconnect,
    )
    check(
        "discovered servers",
        sorted(u.netloc for u in nc.discovered_servers),
        sorted(host_port(u) for u in others),
    )
    sub = await nc.subscribe("cf.cluster")
    await round_trip(nc)
    pc = await connect(others)
    await until_crossed(pc, sub, b"probe-before")
    await asyncio.to_thread(server_ctl, "CONFORMANCE_SERVER_STOP")
    await within("disconnected callback", disconnected.wait(), 10)
    await within("reconnected callback", reconnected.wait(), 10)
    now = nc.connected_url.netloc if nc.connected_url else None
    ensure(now in [host_port(u) for u in others], f"reconnected to {now}, expected one of {others}")
    await until_crossed(pc, sub, b"probe-after")
    for i in range(10):
        await pc.publish("cf.cluster", f"msg-{i}".encode())
    await pc.flush(timeout=WAIT)
    for i in range(10):
        m = await next_msg(f"message {i} after failover", sub)
        while m.data.startswith(b"probe-"):
            m = await next_msg(f"message {i} after failover", sub)
        check("message after failover", m.data, f"msg-{i}".encode())
    await pc.close()
    await nc.close()


def flood(url, subject, result):
    """Publishes 100 MiB from its own thread, event loop and connection."""

    async def run():
        pc = await nats.connect(url, connect_timeout=2, allow_reconnect=False)
        chunk = b"s" * (512 * 1024)
        for _ in range(200):
            await pc.publish(subject, chunk)
        await round_trip(pc)
        await pc.close()

    try:
        asyncio.run(run())
        result.append(None)
    except Exception as e:  # reported by the scenario
        result.append(e)


async def slow_consumer():
    events = []
    disconnected = asyncio.Event()

    async def on_disconnect():
        events.append("disconnected")
        disconnected.set()

    async def on_error(e):
        events.append(f"error: {e!r}")

    nc = await connect(disconnected_cb=on_disconnect, error_cb=on_error)
    await nc.subscribe("cf.slow")
    await round_trip(nc)
    # Block this event loop (the only one reading the subscriber's socket)
    # while another thread floods the subscriber.
    result = []
    t = threading.Thread(target=flood, args=(URL, "cf.slow", result))
    t.start()
    t.join(60)
    time.sleep(0.3)
    ensure(result and result[0] is None, f"publisher: {result}")
    try:
        await asyncio.wait_for(disconnected.wait(), 10)
    except asyncio.TimeoutError:
        raise Fail(f"expected a disconnect (server closed the slow consumer) within 10 s, saw {events}") from None


async def expect_auth_error(what, url, **kw):
    try:
        nc = await connect(url, **kw)
    except errors.AuthorizationError:
        return
    except errors.Error as e:
        # nats-py reports the server's -ERR during connect as a plain Error.
        if "authorization violation" in str(e).lower():
            return
        raise Fail(f"{what}: saw {e!r}, expected an authorization error") from None
    await nc.close()
    raise Fail(f"{what} was let in")


async def auth_user_pass():
    nc = await connect(user="alice", password="s3cret")
    check("INFO auth_required", nc._server_info.get("auth_required"), True)
    await round_trip(nc)
    nc = await connect(with_credentials(URL, "alice:s3cret"))
    await round_trip(nc)
    await expect_auth_error("alice/wrong", URL, user="alice", password="wrong")
    await expect_auth_error("bob/s3cret", URL, user="bob", password="s3cret")
    await expect_auth_error("no credentials", URL)
    await expect_auth_error("wrong password in the URL", with_credentials(URL, "alice:nope"))


async def auth_token():
    nc = await connect(token="t0ken")
    check("INFO auth_required", nc._server_info.get("auth_required"), True)
    await round_trip(nc)
    nc = await connect(with_credentials(URL, "t0ken"))
    await round_trip(nc)
    await expect_auth_error("wrong token", URL, token="wrong")
    await expect_auth_error("no token", URL)


def pki(name):
    """A file conformance/run made in $CONFORMANCE_PKI (certificates, seeds)."""
    return os.path.join(os.environ.get("CONFORMANCE_PKI", ""), name)


def trusting_context():
    return ssl.create_default_context(cafile=pki("ca.pem"))


async def tls():
    ctx = trusting_context()
    ctx.load_cert_chain(pki("client.pem"), pki("client.key"))
    nc = await connect(tls=ctx)
    check("INFO tls_required", nc._server_info.get("tls_required"), True)
    sub = await nc.subscribe("cf.tls")
    await round_trip(nc)
    for i in range(10):
        await nc.publish("cf.tls", f"tls-{i}".encode())
    for i in range(10):
        m = await next_msg(f"message {i}", sub)
        check("payload", m.data, f"tls-{i}".encode())
    await nc.close()
    try:
        nc = await connect(tls=trusting_context())
        await round_trip(nc)
    except Exception:
        return
    raise Fail("connected without a client certificate")


async def nkeys():
    with open(pki("user.seed")) as f:
        seed = f.read().strip()
    nc = await connect(nkeys_seed_str=seed)
    check("INFO auth_required", nc._server_info.get("auth_required"), True)
    sub = await nc.subscribe("cf.nkeys")
    await round_trip(nc)
    await nc.publish("cf.nkeys", b"signed")
    check("payload", (await next_msg("message", sub)).data, b"signed")
    await nc.close()
    with open(pki("stranger.seed")) as f:
        stranger = f.read().strip()
    await expect_auth_error("an unknown nkey", URL, nkeys_seed_str=stranger)


async def verbose_pedantic():
    errs = []
    closed = asyncio.Event()

    async def on_error(e):
        errs.append(e)

    async def on_closed():
        closed.set()

    nc = await connect(
        verbose=True, pedantic=True, error_cb=on_error, closed_cb=on_closed, skip_subject_validation=True
    )
    await start_responder(nc, "cf.vp.svc")
    sub = await nc.subscribe("cf.vp")
    await round_trip(nc)
    for i in range(10):
        await nc.publish("cf.vp", str(i).encode())
    await round_trip(nc)
    for i in range(10):
        check("payload", (await next_msg(f"message {i}", sub)).data, str(i).encode())
    r = await nc.request("cf.vp.svc", b"q", timeout=WAIT)
    check("reply", r.data, b"re:q")
    await nc.flush(timeout=WAIT)
    check("connected", nc.is_connected, True)
    check("async errors", errs, [])
    # Pedantic: the server refuses a wildcard publish subject.
    await nc.publish("cf.vp.*", b"x")
    try:
        await nc.flush(timeout=WAIT)
    except Exception:
        pass
    deadline = time.monotonic() + WAIT
    while "invalid publish subject" not in str(nc.last_error).lower() and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    ensure(
        "invalid publish subject" in str(nc.last_error).lower(),
        f"after publishing to cf.vp.*: last error {nc.last_error!r}, async errors {errs}, "
        "expected 'Invalid Publish Subject'",
    )


def pattern(n, seed):
    return bytes(((i * 31) + seed) & 0xFF for i in range(n))


async def large_payload():
    nc = await connect()
    pc = await connect()
    sub = await nc.subscribe("cf.large")
    await round_trip(nc)
    sizes = [512 * 1024, 768 * 1024 + 7, 1024 * 1024]
    want = [pattern(n, i) for i, n in enumerate(sizes)]
    for w in want:
        await pc.publish("cf.large", w)
    await round_trip(pc)
    for n, w in zip(sizes, want):
        m = await next_msg(f"payload of {n} bytes", sub)
        check("payload length", len(m.data), n)
        if m.data != w:
            at = next(j for j in range(n) if m.data[j] != w[j])
            raise Fail(f"payload of {n} bytes differs at byte {at}: saw {m.data[at]}, expected {w[at]}")


async def many_subscriptions():
    n = 10_000
    nc = await connect()
    got = {}

    def handler(i):
        async def cb(msg):
            got[i] = msg.data

        return cb

    subs = [await nc.subscribe(f"cf.many.{i}", cb=handler(i)) for i in range(n)]
    await round_trip(nc)
    pc = await connect()
    for i in range(n):
        await pc.publish(f"cf.many.{i}", str(i).encode())
    await round_trip(pc)
    deadline = time.monotonic() + 20
    while len(got) < n and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    check("subscriptions that got their message", len(got), n)
    wrong = [i for i in range(n) if got[i] != str(i).encode()]
    ensure(not wrong, f"wrong payloads on {wrong[:5]}")
    for s in subs:
        await s.unsubscribe()
    watch = await nc.subscribe("cf.many.>")
    await round_trip(nc)
    await pc.publish("cf.many.7", b"again")
    await round_trip(pc)
    check("wildcard after unsubscribing all", (await next_msg("cf.many.>", watch)).data, b"again")
    check("old subscription after unsubscribe", got[7], b"7")


async def no_echo():
    quiet = await connect(no_echo=True)
    loud = await connect()
    q = await quiet.subscribe("cf.echo")
    lo = await loud.subscribe("cf.echo")
    # The echo-off connection cannot see its own round trip: sync it
    # through the other connection.
    sync = await loud.subscribe("cf.echo.sync")
    await round_trip(loud)
    await quiet.publish("cf.echo.sync", b"1")
    await next_msg("sync from the echo-off connection", sync)
    await quiet.publish("cf.echo", b"from-quiet")
    await quiet.publish("cf.echo.sync", b"2")
    await next_msg("sync from the echo-off connection", sync)
    await loud.publish("cf.echo", b"from-loud")
    await round_trip(loud)
    check("echo-off connection got", [m.data for m in await collect(q)], [b"from-loud"])
    check("echo-on connection got", [m.data for m in await collect(lo)], [b"from-quiet", b"from-loud"])


async def burst():
    small, big_n = 50_000, 500
    nc = await connect()
    other = await connect()
    own = await nc.subscribe("cf.burst")
    far = await other.subscribe("cf.burst")
    await round_trip(nc)
    await round_trip(other)
    big = pattern(64 * 1024, 9)
    for i in range(small):
        await nc.publish("cf.burst", str(i).encode())
    for _ in range(big_n):
        await nc.publish("cf.burst", big)
    await round_trip(nc)
    for name, sub in [("same connection", own), ("other connection", far)]:
        for i in range(small):
            m = await next_msg(f"{name}: small message {i}", sub)
            if m.data != str(i).encode():
                raise Fail(f"{name}: message {i}: saw {m.data!r}, expected {str(i).encode()!r}")
        for i in range(big_n):
            m = await next_msg(f"{name}: 64 KiB message {i}", sub)
            ensure(m.data == big, f"{name}: 64 KiB message {i} differs ({len(m.data)} bytes)")


def odd_subjects():
    long = ".".join(f"tok{i:02}-abcdefghij" for i in range(64))
    return [
        (f"cf.subj.{long}", "cf.reply.long"),
        ("cf.subj.ünïcødé.日本語", "cf.reply.ünï.日本"),
        ("cf.subj.a-b_c.x:y.~z.=eq", "cf.reply.a-b_c.x:y.~z.=eq"),
    ]


async def subjects():
    nc = await connect()
    pc = await connect()
    everything = await nc.subscribe("cf.subj.>")
    exact = [await nc.subscribe(s) for s, _ in odd_subjects()]
    await round_trip(nc)
    for s, r in odd_subjects():
        await pc.publish(s, s.encode(), reply=r)
    await round_trip(pc)
    for (s, r), sub in zip(odd_subjects(), exact):
        for kind, sb in [("exact", sub), ("cf.subj.>", everything)]:
            m = await next_msg(f"{kind} subscription for {s}", sb)
            check(f"{kind}: subject", m.subject, s)
            check(f"{kind}: reply", m.reply, r)
            check(f"{kind}: payload", m.data, s.encode())


async def keepalive():
    events = []

    async def on_disconnect():
        events.append("disconnected")

    async def on_error(e):
        events.append(f"error: {e!r}")

    nc = await connect(ping_interval=0.1, max_outstanding_pings=2, disconnected_cb=on_disconnect, error_cb=on_error)
    sub = await nc.subscribe("cf.keepalive")
    await round_trip(nc)
    await asyncio.sleep(1.5)
    check("events while pinging", events, [])
    check("connected", nc.is_connected, True)
    await nc.publish("cf.keepalive", b"still here")
    check("message after pinging", (await next_msg("message after pinging", sub)).data, b"still here")


async def control_line():
    events = []
    closed = asyncio.Event()

    async def on_disconnect():
        events.append("disconnected")

    async def on_closed():
        events.append("closed")
        closed.set()

    async def on_error(e):
        events.append(f"error: {e!r}")

    nc = await connect(disconnected_cb=on_disconnect, closed_cb=on_closed, error_cb=on_error)
    await nc.publish("cf." + "x" * 5000, b"x")
    try:
        await nc.flush(timeout=WAIT)
    except Exception as e:
        events.append(f"flush: {e!r}")
    try:
        await asyncio.wait_for(closed.wait(), WAIT)
    except asyncio.TimeoutError:
        raise Fail(f"expected the connection closed within {WAIT} s, saw {events}") from None
    ensure(
        "maximum control line exceeded" in str(nc.last_error).lower(),
        f"last error: saw {nc.last_error!r}, expected 'maximum control line exceeded' (events {events})",
    )
    ensure("disconnected" in events, f"expected a disconnect, saw {events}")


async def jetstream():
    from nats.js import api
    from nats.js import errors as js_errors

    nc = await connect()
    js = nc.jetstream(timeout=WAIT)
    await js.add_stream(name="CF", subjects=["cf.js.>"], storage=api.StorageType.FILE)
    for i in range(1, 11):
        ack = await js.publish(f"cf.js.{i}", f"msg {i}".encode())
        check(f"PubAck {i} stream", ack.stream, "CF")
        check(f"PubAck {i} sequence", ack.seq, i)
        check(f"PubAck {i} duplicate", bool(ack.duplicate), False)
    first = await js.publish("cf.js.dup", b"dup", headers={"Nats-Msg-Id": "cf-1"})
    check("first Nats-Msg-Id publish", (first.seq, bool(first.duplicate)), (11, False))
    again = await js.publish("cf.js.dup", b"dup", headers={"Nats-Msg-Id": "cf-1"})
    check("second Nats-Msg-Id publish", (again.seq, bool(again.duplicate)), (11, True))
    m = await js.get_msg("CF", seq=5)
    check("message 5", (m.subject, m.data), ("cf.js.5", b"msg 5"))
    info = await js.stream_info("CF")
    check("messages in stream", info.state.messages, 11)
    ensure(await js.purge_stream("CF"), "purge: not acknowledged")
    info = await js.stream_info("CF")
    check("messages after purge", info.state.messages, 0)
    ensure(await js.delete_stream("CF"), "delete: not acknowledged")
    try:
        await js.stream_info("CF")
        raise Fail("stream info after delete: saw the stream, expected not found")
    except js_errors.NotFoundError as e:
        check("stream info after delete (error code)", e.err_code, 10059)
    await nc.close()


async def kv():
    from nats.js import errors as js_errors

    nc = await connect()
    js = nc.jetstream(timeout=WAIT)
    store = await js.create_key_value(bucket="CF")
    check("put colour=red", await store.put("colour", b"red"), 1)
    e = await store.get("colour")
    check("get colour", (e.value, e.revision), (b"red", 1))
    try:
        rev = await store.create("colour", b"green")
        raise Fail(f"create on an existing key: saw revision {rev}, expected an error")
    except js_errors.KeyWrongLastSequenceError:
        pass
    check("update colour=blue at revision 1", await store.update("colour", b"blue", last=1), 2)
    try:
        rev = await store.update("colour", b"grey", last=1)
        raise Fail(f"update at a stale revision: saw revision {rev}, expected an error")
    except js_errors.KeyWrongLastSequenceError:
        pass
    e = await store.get("colour")
    check("get colour", (e.value, e.revision), (b"blue", 2))
    ensure(await store.delete("colour"), "delete colour: not acknowledged")
    try:
        e = await store.get("colour")
        raise Fail(f"get after delete: saw {e.value!r} at revision {e.revision}, expected no value")
    except js_errors.KeyNotFoundError:
        pass
    ensure(await js.delete_key_value("CF"), "delete bucket: not acknowledged")
    await nc.close()


async def fetch(psub, n, what):
    """n messages from a pull subscription, in as many fetches as it takes
    (a fetch may return fewer than asked for)."""
    out = []
    deadline = time.monotonic() + WAIT
    while len(out) < n:
        left = deadline - time.monotonic()
        ensure(left > 0, f"{what}: {len(out)} of {n} messages after {WAIT} s")
        try:
            out += await psub.fetch(n - len(out), timeout=left)
        except (errors.TimeoutError, asyncio.TimeoutError):
            raise Fail(f"{what}: {len(out)} of {n} messages after {WAIT} s") from None
    return out


def check_delivery(what, m, i, delivered):
    """Message i of stream CF ("msg <i>" on cf.js.<i>), delivered so often."""
    check(what, (m.subject, m.data), (f"cf.js.{i}", f"msg {i}".encode()))
    meta = m.metadata
    check(f"{what} metadata (stream sequence, delivered)", (meta.sequence.stream, meta.num_delivered), (i, delivered))


async def js_consumers():
    from nats.js import api
    from nats.js import errors as js_errors

    nc = await connect()
    js = nc.jetstream(timeout=WAIT)
    await js.add_stream(name="CF", subjects=["cf.js.>"], storage=api.StorageType.FILE)
    for i in range(1, 11):
        await js.publish(f"cf.js.{i}", f"msg {i}".encode())

    # (a) a durable pull consumer, explicit acks, two batches of five.
    pull = await js.pull_subscribe("cf.js.>", durable="PULL", stream="CF")
    for batch in range(2):
        msgs = await fetch(pull, 5, f"PULL fetch {batch + 1}")
        check(f"PULL fetch {batch + 1}: messages", len(msgs), 5)
        for k, m in enumerate(msgs):
            i = batch * 5 + k + 1
            check_delivery(f"PULL message {i}", m, i, 1)
            if k == len(msgs) - 1:
                await m.ack_sync(timeout=WAIT)
            else:
                await m.ack()
    ci = await js.consumer_info("CF", "PULL")
    check(
        "PULL info (num_ack_pending, num_pending, ack floor stream sequence)",
        (ci.num_ack_pending, ci.num_pending, ci.ack_floor.stream_seq),
        (0, 0, 10),
    )

    # (b) a nak'd message comes back, delivered a second time. The consumer
    # sees message 1 only: nats-server handles acks apart from pull
    # requests, so the second fetch may arrive before the nak.
    redo = await js.pull_subscribe("cf.js.1", durable="REDO", stream="CF")
    (m,) = await fetch(redo, 1, "REDO fetch 1")
    check_delivery("REDO first delivery", m, 1, 1)
    await m.nak()
    (m,) = await fetch(redo, 1, "REDO fetch 2")
    check_delivery("REDO after nak", m, 1, 2)
    await m.ack_sync(timeout=WAIT)

    # (c) an ordered (push) consumer gets the whole stream in order.
    ordered = await js.subscribe("cf.js.>", ordered_consumer=True)
    for i in range(1, 11):
        m = await next_msg(f"ordered message {i}", ordered)
        check(f"ordered message {i}", (m.subject, m.data), (f"cf.js.{i}", f"msg {i}".encode()))
    await ordered.unsubscribe()

    # (d) a deleted consumer is gone.
    ensure(await js.delete_consumer("CF", "PULL"), "delete consumer PULL: not acknowledged")
    try:
        await js.consumer_info("CF", "PULL")
        raise Fail("consumer info after delete: saw the consumer, expected not found")
    except js_errors.NotFoundError as e:
        check("consumer info after delete (error code)", e.err_code, 10014)
    ensure(await js.delete_stream("CF"), "delete stream: not acknowledged")
    await nc.close()


async def next_update(what, watcher):
    """A watcher's next entry (None: the initial values are done)."""
    try:
        return await watcher.updates(timeout=WAIT)
    except errors.TimeoutError:
        raise Fail(f"{what}: nothing after {WAIT} s") from None


def check_entry(what, e, key, value, op):
    ensure(e is not None, f"{what}: saw the end of the initial values, expected {key}={value!r}")
    check(what, (e.key, e.value, e.operation), (key, value, op))


async def kv_watch():
    nc = await connect()
    js = nc.jetstream(timeout=WAIT)
    store = await js.create_key_value(bucket="CF", history=5)
    for key, value in [("a", b"1"), ("b", b"2"), ("a", b"3")]:
        await store.put(key, value)
    w = await store.watchall()
    check_entry("watch: first initial value", await next_update("watch: first initial value", w), "b", b"2", None)
    check_entry("watch: second initial value", await next_update("watch: second initial value", w), "a", b"3", None)
    e = await next_update("watch: end of initial values", w)
    ensure(e is None, f"watch: saw {e and (e.key, e.value)!r}, expected the end of the initial values (None)")
    await store.put("c", b"4")
    check_entry("watch: update", await next_update("watch: update", w), "c", b"4", None)
    check("keys", sorted(await store.keys()), ["a", "b", "c"])
    check("history of a", [e.value for e in await store.history("a")], [b"1", b"3"])
    ensure(await store.delete("b"), "delete b: not acknowledged")
    check_entry("watch: delete", await next_update("watch: delete", w), "b", b"", "DEL")
    await w.stop()
    ensure(await js.delete_key_value("CF"), "delete bucket: not acknowledged")
    await nc.close()


def big_object():
    """The object store scenario's big object: 5 MiB, byte i = (i*7) % 251."""
    return bytes(i * 7 % 251 for i in range(5 * 1024 * 1024))


def check_bytes(what, saw, expected):
    """Every byte, naming the first that differs."""
    check(f"{what}: length", len(saw), len(expected))
    if saw != expected:
        at = next(i for i, (a, b) in enumerate(zip(saw, expected)) if a != b)
        raise Fail(f"{what}: byte {at}: saw {saw[at]}, expected {expected[at]}")


async def object_store():
    from nats.js import api
    from nats.js import errors as js_errors

    nc = await connect()
    js = nc.jetstream(timeout=WAIT)
    store = await js.create_object_store("CF", storage=api.StorageType.FILE)
    big = big_object()
    await store.put("big", big)
    await store.put("small", b"hello")
    # nats-py checks the SHA-256 digest once the last chunk is in.
    got = await within("get big", store.get("big"))
    check_bytes("get big", bytes(got.data), big)
    info = await store.get_info("big")
    # nats-py cuts objects into 128 KiB chunks.
    check("info big (size, chunks)", (info.size, info.chunks), (5242880, 40))
    check("list", sorted(o.name for o in await within("list", store.list())), ["big", "small"])
    await store.put("small", b"hello again")
    got = await within("get small", store.get("small"))
    check("get small after the second put", bytes(got.data), b"hello again")
    await store.delete("big")
    try:
        got = await store.get("big")
        raise Fail(f"get big after delete: saw {len(got.data)} bytes, expected object not found")
    except js_errors.ObjectNotFoundError:
        pass
    ensure(await js.delete_object_store("CF"), "delete object store CF: not acknowledged")
    await nc.close()


SCENARIOS = {
    f.__name__: f
    for f in [
        connect_info,
        pub_sub,
        wildcards,
        queue_groups,
        request_reply,
        no_responders,
        headers,
        auto_unsubscribe,
        drain,
        flush_ping,
        max_payload,
        reconnect,
        cluster_failover,
        slow_consumer,
        auth_user_pass,
        auth_token,
        verbose_pedantic,
        large_payload,
        many_subscriptions,
        no_echo,
        burst,
        subjects,
        keepalive,
        control_line,
        tls,
        nkeys,
        jetstream,
        kv,
        js_consumers,
        kv_watch,
        object_store,
    ]
}


def main():
    if len(sys.argv) != 2:
        print("usage: conformance.py <scenario>   (server at $NATS_URL)", file=sys.stderr)
        return 2
    name = sys.argv[1]
    scenario = SCENARIOS.get(name)
    if scenario is None:
        print(f"unknown scenario {name}")
        return 2
    try:
        asyncio.run(scenario())
    except NotApplicable as e:
        print(f"n/a {name}: {e}")
        return 77
    except Fail as e:
        print(f"FAIL {name}: {e}")
        return 1
    except Exception as e:
        # nats-py's JetStream errors say what the server answered in str(), not in repr().
        print(f"FAIL {name}: unexpected {type(e).__name__}: {e}")
        return 1
    print(f"ok {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
