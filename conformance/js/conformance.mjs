// The JavaScript client's side of natrix's conformance suite.
//
// Runs one scenario of conformance/scenarios with the official Node.js
// client (npm `nats`, 2.x) against the server at $NATS_URL:
//
//     node conformance.mjs <scenario>
//
// It starts no server: conformance/run does, and reads the exit code (0 pass,
// 1 fail, 77 not applicable to this client, 2 unknown scenario). On failure it
// prints what the client saw and what it expected.

import { execSync } from "node:child_process";
import { isMainThread, parentPort, Worker, workerData } from "node:worker_threads";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import {
  AckPolicy,
  connect,
  ErrorCode,
  headers as natsHeaders,
  nkeyAuthenticator,
  StorageType,
  StringCodec,
} from "nats";

const URL = process.env.NATS_URL || "nats://127.0.0.1:4222";
const SERVER = URL.replace(/^nats:\/\//, "");
const WAIT = 5000;
const sc = StringCodec();
const enc = (s) => sc.encode(s);
const dec = (b) => sc.decode(b);

class Fail extends Error {}
class NotApplicable extends Error {}

function show(v) {
  return JSON.stringify(v, (_, x) => (x instanceof Uint8Array ? `<${x.length} bytes>` : x));
}

function check(what, saw, expected) {
  if (show(saw) !== show(expected)) {
    throw new Fail(`${what}: saw ${show(saw)}, expected ${show(expected)}`);
  }
}

function ensure(cond, what) {
  if (!cond) throw new Fail(what);
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function within(what, promise, ms = WAIT) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Fail(`${what}: nothing after ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

async function conn(opts = {}) {
  return await within(
    "connect",
    connect({ servers: SERVER, timeout: 2000, reconnect: false, ...opts }),
  );
}

// A subscription whose messages queue up, read with a timeout.
class Sub {
  constructor(nc, subject, opts = {}) {
    this.msgs = [];
    this.waiters = [];
    this.sub = nc.subscribe(subject, {
      ...opts,
      callback: (err, msg) => {
        if (err) return;
        const w = this.waiters.shift();
        if (w) w(msg);
        else this.msgs.push(msg);
      },
    });
  }
  next(what, ms = WAIT) {
    if (this.msgs.length) return Promise.resolve(this.msgs.shift());
    return within(what, new Promise((r) => this.waiters.push(r)), ms);
  }
  async collect(quiet = 300) {
    const out = [];
    for (;;) {
      try {
        out.push(await this.next("collect", quiet));
      } catch {
        // the quiet period passed: the waiter left behind is dropped
        this.waiters = [];
        return out;
      }
    }
  }
}

function serverCtl(name) {
  const cmd = process.env[name];
  if (!cmd) throw new Fail(`$${name} is not set`);
  execSync(cmd, { stdio: "inherit" });
}

async function statusEvents(nc, events) {
  for await (const s of nc.status()) events.push(s.type);
}

async function waitFor(what, cond, ms) {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Fail(what());
    await sleep(20);
  }
}

async function expectError(what, promise, code) {
  try {
    const nc = await promise;
    await nc.close();
  } catch (e) {
    check(`${what}: error`, e.code, code);
    return;
  }
  throw new Fail(`${what}: succeeded, expected error ${code}`);
}

// The members other than NATS_URL's server (host:port), from the runner.
function clusterServers() {
  const urls = process.env.CONFORMANCE_CLUSTER_URLS;
  if (!urls) throw new Fail("$CONFORMANCE_CLUSTER_URLS is not set (the runner starts a cluster for this scenario)");
  return urls.split(",").map((u) => u.replace(/^nats:\/\//, ""));
}

// Publishes data on pc every 100 ms until sub gets it: interest reaches the
// other servers of a cluster a moment after the subscription. Earlier
// probes still on their way are skipped.
async function untilCrossed(pc, sub, data) {
  const deadline = Date.now() + WAIT;
  for (;;) {
    pc.publish(sub.sub.getSubject(), enc(data));
    await pc.flush();
    if ((await sub.collect(100)).some((m) => dec(m.data) === data)) return;
    ensure(Date.now() < deadline, `${data} published by the second connection: nothing crossed the cluster after ${WAIT} ms`);
  }
}

// A file conformance/run made in $CONFORMANCE_PKI (certificates, seeds).
const pki = (name) => join(process.env.CONFORMANCE_PKI || "", name);

// Values pushed by a callback or a background loop, read with a timeout.
class Feed {
  constructor() {
    this.items = [];
    this.waiters = [];
  }
  push(x) {
    const w = this.waiters.shift();
    if (w) w(x);
    else this.items.push(x);
  }
  next(what, ms = WAIT) {
    if (this.items.length) return Promise.resolve(this.items.shift());
    return within(what, new Promise((r) => this.waiters.push(r)), ms);
  }
}

// n messages from a consumer, in as many fetches as it takes (a fetch may
// end with fewer than asked for).
async function fetchN(consumer, n, what) {
  const out = [];
  const deadline = Date.now() + WAIT;
  while (out.length < n) {
    const left = deadline - Date.now();
    ensure(left >= 1000, `${what}: ${out.length} of ${n} messages after ${WAIT} ms`);
    const batch = await consumer.fetch({ max_messages: n - out.length, expires: left });
    for await (const m of batch) out.push(m);
  }
  return out;
}

// Message i of stream CF ("msg <i>" on cf.js.<i>), delivered so often.
function checkDelivery(what, m, i, delivered) {
  check(what, [m.subject, dec(m.data)], [`cf.js.${i}`, `msg ${i}`]);
  check(`${what} metadata (stream sequence, delivered)`, [m.info.streamSequence, m.info.redeliveryCount], [i, delivered]);
}

// ---- scenarios ------------------------------------------------------------

const scenarios = {
  async connect_info() {
    const nc = await conn();
    const info = nc.info;
    check("INFO version", info.version, "2.9.10");
    check("INFO max_payload", info.max_payload, 1048576);
    check("INFO headers", info.headers, true);
    ensure(info.proto >= 1, `INFO proto: saw ${info.proto}, expected >= 1`);
    ensure(info.server_id, "INFO server_id is empty");
    check("INFO auth_required", info.auth_required ?? false, false);
    await nc.flush();
    await nc.close();
    check("closed", nc.isClosed(), true);
  },

  async pub_sub() {
    const nc = await conn();
    const pc = await conn();
    const sub = new Sub(nc, "cf.pubsub");
    await nc.flush();
    for (let i = 0; i < 100; i++) pc.publish("cf.pubsub", enc(`msg-${i}`));
    pc.publish("cf.pubsub");
    await pc.flush();
    for (let i = 0; i < 100; i++) {
      const m = await sub.next(`message ${i}`);
      check("subject", m.subject, "cf.pubsub");
      check("payload", dec(m.data), `msg-${i}`);
      check("reply", m.reply || "", "");
    }
    check("empty payload length", (await sub.next("empty message")).data.length, 0);
  },

  async wildcards() {
    const nc = await conn();
    const starB = new Sub(nc, "cf.wc.*.b");
    const aStar = new Sub(nc, "cf.wc.a.*");
    const full = new Sub(nc, "cf.wc.>");
    await nc.flush();
    for (const s of ["cf.wc.a.b", "cf.wc.x.b", "cf.wc.a.c", "cf.wc.a.b.c", "cf.other"]) {
      nc.publish(s, enc(s));
    }
    await nc.flush();
    const subjects = (ms) => ms.map((m) => m.subject);
    check("cf.wc.*.b got", subjects(await starB.collect()), ["cf.wc.a.b", "cf.wc.x.b"]);
    check("cf.wc.a.* got", subjects(await aStar.collect()), ["cf.wc.a.b", "cf.wc.a.c"]);
    check("cf.wc.> got", subjects(await full.collect()), [
      "cf.wc.a.b",
      "cf.wc.x.b",
      "cf.wc.a.c",
      "cf.wc.a.b.c",
    ]);
  },

  async queue_groups() {
    const nc = await conn();
    const members = [0, 1, 2].map(() => new Sub(nc, "cf.queue", { queue: "workers" }));
    const plain = new Sub(nc, "cf.queue");
    await nc.flush();
    const pc = await conn();
    for (let i = 0; i < 300; i++) pc.publish("cf.queue", enc(String(i)));
    await pc.flush();
    const seen = [];
    const perMember = [];
    for (const m of members) {
      const got = await m.collect();
      perMember.push(got.length);
      seen.push(...got.map((x) => Number(dec(x.data))));
    }
    seen.sort((a, b) => a - b);
    check(
      "messages across the group (each exactly once)",
      seen,
      Array.from({ length: 300 }, (_, i) => i),
    );
    ensure(perMember.every((n) => n > 0), `every member should get some of 300, saw ${perMember}`);
    check("plain subscriber count", (await plain.collect()).length, 300);
  },

  async request_reply() {
    const svc = await conn();
    svc.subscribe("cf.svc", { callback: (_, m) => m.respond(enc("re:" + dec(m.data))) });
    await svc.flush();
    const nc = await conn();
    for (let i = 0; i < 10; i++) {
      const r = await nc.request("cf.svc", enc(`new-${i}`), { timeout: WAIT });
      check("new-style reply", dec(r.data), `re:new-${i}`);
    }
    const rs = await within(
      "20 parallel requests",
      Promise.all(
        Array.from({ length: 20 }, (_, i) => nc.request("cf.svc", enc(`par-${i}`), { timeout: WAIT })),
      ),
    );
    rs.forEach((r, i) => check("parallel reply", dec(r.data), `re:par-${i}`));
    for (let i = 0; i < 10; i++) {
      const r = await nc.request("cf.svc", enc(`old-${i}`), { timeout: WAIT, noMux: true });
      check("old-style reply", dec(r.data), `re:old-${i}`);
    }
  },

  async no_responders() {
    const nc = await conn();
    for (const noMux of [false, true]) {
      const start = Date.now();
      try {
        await nc.request("cf.nobody", enc("x"), { timeout: WAIT, noMux });
        throw new Fail("request to a subject without subscribers got a reply");
      } catch (e) {
        if (e instanceof Fail) throw e;
        check(`request error (noMux ${noMux})`, e.code, ErrorCode.NoResponders);
      }
      const took = Date.now() - start;
      ensure(took < 2000, `no-responders should come at once, took ${took} ms`);
    }
  },

  async headers() {
    const nc = await conn();
    const sub = new Sub(nc, "cf.headers");
    await nc.flush();
    const h = natsHeaders();
    h.set("X-Conf", "one");
    h.append("X-Multi", "a");
    h.append("X-Multi", "b");
    nc.publish("cf.headers", enc("body"), { headers: h });
    nc.publish("cf.headers", enc("plain"));
    const only = natsHeaders();
    only.set("X-Only", "headers");
    nc.publish("cf.headers", undefined, { headers: only });
    let m = await sub.next("message with headers");
    ensure(m.headers, "message without headers");
    check("X-Conf", m.headers.get("X-Conf"), "one");
    check("X-Multi", m.headers.values("X-Multi"), ["a", "b"]);
    check("payload", dec(m.data), "body");
    m = await sub.next("plain message");
    check("plain message has headers", m.headers !== undefined, false);
    check("plain payload", dec(m.data), "plain");
    m = await sub.next("headers-only message");
    ensure(m.headers, "headers-only message has none");
    check("X-Only", m.headers.get("X-Only"), "headers");
    check("headers-only payload length", m.data.length, 0);
  },

  async auto_unsubscribe() {
    const nc = await conn();
    const sub = new Sub(nc, "cf.auto");
    sub.sub.unsubscribe(5);
    await nc.flush();
    for (let i = 0; i < 10; i++) nc.publish("cf.auto", enc(String(i)));
    await nc.flush();
    const got = (await sub.collect(500)).map((m) => dec(m.data));
    check("messages before auto-unsubscribe", got, ["0", "1", "2", "3", "4"]);
    check("subscription closed", sub.sub.isClosed(), true);
  },

  async drain() {
    const nc = await conn();
    const pc = await conn();
    const got = [];
    const gotOther = [];
    nc.subscribe("cf.drain", { callback: (_, m) => got.push(dec(m.data)) });
    const other = nc.subscribe("cf.drain.sub", { callback: (_, m) => gotOther.push(dec(m.data)) });
    await nc.flush();
    for (let i = 0; i < 200; i++) {
      pc.publish("cf.drain", enc(String(i)));
      pc.publish("cf.drain.sub", enc(String(i)));
    }
    await pc.flush();
    await within("subscription drain", other.drain());
    check("messages on the drained subscription", gotOther.length, 200);
    await within("connection drain", nc.drain(), 15000);
    check("messages delivered by drain", got, Array.from({ length: 200 }, (_, i) => String(i)));
    check("closed after drain", nc.isClosed(), true);
    try {
      nc.publish("cf.after", enc("x"));
      throw new Fail("publish after drain should fail, it succeeded");
    } catch (e) {
      if (e instanceof Fail) throw e;
      check("publish after drain: error", e.code, ErrorCode.ConnectionClosed);
    }
  },

  async flush_ping() {
    const nc = await conn();
    const sub = new Sub(nc, "cf.flush");
    await nc.flush();
    for (let i = 0; i < 1000; i++) nc.publish("cf.flush", enc(String(i)));
    const start = Date.now();
    await within("flush", nc.flush());
    ensure(Date.now() - start < 2000, `flush took ${Date.now() - start} ms`);
    for (let i = 0; i < 1000; i++) {
      check("payload", dec((await sub.next(`message ${i} after flush`)).data), String(i));
    }
    for (let i = 0; i < 10; i++) await within("flush", nc.flush());
    const rtt = await within("rtt", nc.rtt());
    ensure(rtt >= 0 && rtt < 2000, `rtt: saw ${rtt} ms, expected between 0 and 2000`);
  },

  async max_payload() {
    const nc = await conn();
    check("INFO max_payload", nc.info.max_payload, 1048576);
    const sub = new Sub(nc, "cf.max");
    await nc.flush();
    try {
      nc.publish("cf.max", new Uint8Array(1048576 + 1));
      throw new Fail("a payload of max_payload + 1 was accepted by the client");
    } catch (e) {
      if (e instanceof Fail) throw e;
      check("error", e.code, ErrorCode.MaxPayloadExceeded);
    }
    nc.publish("cf.max", new Uint8Array(1048576).fill(121));
    await nc.flush();
    check("payload length", (await sub.next("max_payload message")).data.length, 1048576);
    nc.publish("cf.max", enc("still open"));
    check("after", dec((await sub.next("message after")).data), "still open");
  },

  async reconnect() {
    const nc = await conn({ reconnect: true, reconnectTimeWait: 100, maxReconnectAttempts: -1 });
    const events = [];
    statusEvents(nc, events);
    const sub = new Sub(nc, "cf.reconnect");
    await nc.flush();
    nc.publish("cf.reconnect", enc("before"));
    check("before restart", dec((await sub.next("message before restart")).data), "before");
    serverCtl("CONFORMANCE_SERVER_STOP");
    await waitFor(() => `expected a disconnect event within 10 s, saw ${events}`, () => events.includes("disconnect"), 10000);
    // nats.js 2.x keeps no publishes across a reconnect: every dial attempt
    // resets its outbound buffer (ProtocolHandler.prepare), on any server.
    // So this client checks reconnection and resubscription only.
    serverCtl("CONFORMANCE_SERVER_START");
    await waitFor(() => `expected a reconnect event within 10 s, saw ${events}`, () => events.includes("reconnect"), 10000);
    nc.publish("cf.reconnect", enc("after"));
    check("after reconnect", dec((await sub.next("message after reconnect")).data), "after");
  },

  async cluster_failover() {
    const others = clusterServers();
    const nc = await conn({ reconnect: true, reconnectTimeWait: 100, maxReconnectAttempts: -1 });
    // Status events, with the servers each cluster update added or deleted.
    const events = [];
    (async () => {
      for await (const s of nc.status()) events.push(s.type === "update" ? `update ${show(s.data)}` : s.type);
    })();
    const seen = () => events.filter((e, i) => e !== events[i - 1]).join(", ");
    const urls = nc.info.connect_urls || [];
    ensure(
      others.every((s) => urls.includes(s)),
      `INFO connect_urls: saw ${show(urls)}, expected the other members ${show(others)}`,
    );
    const sub = new Sub(nc, "cf.cluster");
    await nc.flush();
    const pc = await conn({ servers: others });
    await untilCrossed(pc, sub, "probe-before");
    serverCtl("CONFORMANCE_SERVER_STOP");
    await waitFor(() => `expected a disconnect event within 10 s, saw ${seen()}`, () => events.includes("disconnect"), 10000);
    await waitFor(() => `expected a reconnect event within 10 s, saw ${seen()}`, () => events.includes("reconnect"), 10000);
    ensure(others.includes(nc.getServer()), `reconnected to ${nc.getServer()}, expected one of ${show(others)}`);
    await untilCrossed(pc, sub, "probe-after");
    for (let i = 0; i < 10; i++) pc.publish("cf.cluster", enc(`msg-${i}`));
    await pc.flush();
    for (let i = 0; i < 10; i++) {
      let m = await sub.next(`message ${i} after failover`);
      while (dec(m.data).startsWith("probe-")) m = await sub.next(`message ${i} after failover`);
      check("message after failover", dec(m.data), `msg-${i}`);
    }
    await pc.close();
    await nc.close();
  },

  async slow_consumer() {
    const nc = await conn();
    const events = [];
    statusEvents(nc, events);
    let closed = false;
    nc.closed().then(() => (closed = true));
    nc.subscribe("cf.slow", { callback: () => {} });
    await nc.flush();
    // A worker thread floods the subscriber with its own connection while
    // this thread (the only one reading the subscriber's socket) is blocked.
    const flag = new Int32Array(new SharedArrayBuffer(4));
    const worker = new Worker(new globalThis.URL(import.meta.url), {
      workerData: { flag, server: SERVER, subject: "cf.slow" },
    });
    let workerError = null;
    worker.on("message", (m) => (workerError = m));
    Atomics.wait(flag, 0, 0, 60000);
    Atomics.wait(flag, 0, 1, 300); // 300 ms more, still blocked
    ensure(Atomics.load(flag, 0) === 1, "publisher did not finish in 60 s");
    await sleep(10);
    ensure(workerError === "ok", `publisher: ${workerError}`);
    await waitFor(
      () => `expected a disconnect (server closed the slow consumer) within 10 s, saw ${events}`,
      () => closed || events.includes("disconnect"),
      10000,
    );
  },

  async auth_user_pass() {
    const nc = await conn({ user: "alice", pass: "s3cret" });
    check("INFO auth_required", nc.info.auth_required, true);
    await nc.flush();
    // nats.js 2.x does not take credentials from the server URL: not checked.
    await expectError("alice/wrong", conn({ user: "alice", pass: "wrong" }), ErrorCode.AuthorizationViolation);
    await expectError("bob/s3cret", conn({ user: "bob", pass: "s3cret" }), ErrorCode.AuthorizationViolation);
    await expectError("no credentials", conn(), ErrorCode.AuthorizationViolation);
  },

  async tls() {
    const nc = await conn({
      tls: { caFile: pki("ca.pem"), certFile: pki("client.pem"), keyFile: pki("client.key") },
    });
    check("INFO tls_required", nc.info.tls_required, true);
    const sub = new Sub(nc, "cf.tls");
    await nc.flush();
    for (let i = 0; i < 10; i++) nc.publish("cf.tls", enc(`tls-${i}`));
    for (let i = 0; i < 10; i++) check("payload", dec((await sub.next(`message ${i}`)).data), `tls-${i}`);
    await nc.close();
    let without;
    try {
      without = await conn({ tls: { caFile: pki("ca.pem") } });
      await within("flush without a certificate", without.flush());
    } catch {
      return;
    }
    throw new Fail("connected without a client certificate");
  },

  async nkeys() {
    const seed = (name) => enc(readFileSync(pki(name), "utf8").trim());
    const nc = await conn({ authenticator: nkeyAuthenticator(seed("user.seed")) });
    check("INFO auth_required", nc.info.auth_required, true);
    const sub = new Sub(nc, "cf.nkeys");
    await nc.flush();
    nc.publish("cf.nkeys", enc("signed"));
    check("payload", dec((await sub.next("message")).data), "signed");
    await nc.close();
    await expectError(
      "an unknown nkey",
      conn({ authenticator: nkeyAuthenticator(seed("stranger.seed")) }),
      ErrorCode.AuthorizationViolation,
    );
  },

  async auth_token() {
    const nc = await conn({ token: "t0ken" });
    check("INFO auth_required", nc.info.auth_required, true);
    await nc.flush();
    await expectError("wrong token", conn({ token: "wrong" }), ErrorCode.AuthorizationViolation);
    await expectError("no token", conn(), ErrorCode.AuthorizationViolation);
  },

  async verbose_pedantic() {
    const nc = await conn({ verbose: true, pedantic: true });
    const events = [];
    statusEvents(nc, events);
    nc.subscribe("cf.vp.svc", { callback: (_, m) => m.respond(enc("re:" + dec(m.data))) });
    const sub = new Sub(nc, "cf.vp");
    await nc.flush();
    for (let i = 0; i < 10; i++) nc.publish("cf.vp", enc(String(i)));
    await nc.flush();
    for (let i = 0; i < 10; i++) check("payload", dec((await sub.next(`message ${i}`)).data), String(i));
    const r = await nc.request("cf.vp.svc", enc("q"), { timeout: WAIT });
    check("reply", dec(r.data), "re:q");
    await nc.flush();
    check("closed", nc.isClosed(), false);
    check("status events", events.filter((e) => e === "error" || e === "disconnect"), []);
    // Pedantic: the server refuses a wildcard publish subject. nats.js
    // reports it as an "error" status.
    const reported = [];
    (async () => {
      for await (const st of nc.status()) reported.push(`${st.type}: ${st.data}`);
    })();
    let closedWith = null;
    nc.closed().then((e) => (closedWith = String(e)));
    nc.publish("cf.vp.*", enc("x"));
    nc.flush().catch(() => {});
    // The status carries only the code (NATS_PROTOCOL_ERR); the text is the
    // protocol handler's last error.
    const said = () => [...reported, closedWith ?? "", nc.protocol?.lastError?.message ?? ""].join(" | ");
    await waitFor(
      () => `after publishing to cf.vp.*: saw "${said()}", expected 'Invalid Publish Subject'`,
      () => said().toLowerCase().includes("invalid publish subject"),
      WAIT,
    );
  },

  async large_payload() {
    const nc = await conn();
    const pc = await conn();
    const sub = new Sub(nc, "cf.large");
    await nc.flush();
    const sizes = [512 * 1024, 768 * 1024 + 7, 1024 * 1024];
    const want = sizes.map((n, s) => Uint8Array.from({ length: n }, (_, i) => (i * 31 + s) & 0xff));
    for (const w of want) pc.publish("cf.large", w);
    await pc.flush();
    for (const w of want) {
      const m = await sub.next(`payload of ${w.length} bytes`);
      check("payload length", m.data.length, w.length);
      const at = w.findIndex((b, i) => m.data[i] !== b);
      ensure(at < 0, `payload of ${w.length} bytes differs at byte ${at}: saw ${m.data[at]}, expected ${w[at]}`);
    }
  },

  async many_subscriptions() {
    const n = 10000;
    const nc = await conn();
    const got = new Array(n);
    let count = 0;
    const subs = [];
    for (let i = 0; i < n; i++) {
      subs.push(
        nc.subscribe(`cf.many.${i}`, {
          callback: (_, m) => {
            if (got[i] === undefined) count++;
            got[i] = dec(m.data);
          },
        }),
      );
    }
    await within("flush", nc.flush());
    const pc = await conn();
    for (let i = 0; i < n; i++) pc.publish(`cf.many.${i}`, enc(String(i)));
    await within("flush", pc.flush());
    await waitFor(() => `subscriptions that got their message: saw ${count}, expected ${n}`, () => count === n, 20000);
    const wrong = got.map((v, i) => (v === String(i) ? -1 : i)).filter((i) => i >= 0);
    ensure(wrong.length === 0, `wrong payloads on ${wrong.slice(0, 5)}`);
    for (const s of subs) s.unsubscribe();
    const watch = new Sub(nc, "cf.many.>");
    await within("flush", nc.flush());
    pc.publish("cf.many.7", enc("again"));
    await pc.flush();
    check("wildcard after unsubscribing all", dec((await watch.next("cf.many.>")).data), "again");
    check("old subscription after unsubscribe", got[7], "7");
  },

  async no_echo() {
    const quiet = await conn({ noEcho: true });
    const loud = await conn();
    const q = new Sub(quiet, "cf.echo");
    const l = new Sub(loud, "cf.echo");
    await quiet.flush();
    await loud.flush();
    quiet.publish("cf.echo", enc("from-quiet"));
    await quiet.flush();
    loud.publish("cf.echo", enc("from-loud"));
    await loud.flush();
    check("echo-off connection got", (await q.collect()).map((m) => dec(m.data)), ["from-loud"]);
    check("echo-on connection got", (await l.collect()).map((m) => dec(m.data)), ["from-quiet", "from-loud"]);
  },

  async burst() {
    const small = 50000;
    const bigN = 500;
    const nc = await conn();
    const other = await conn();
    const own = new Sub(nc, "cf.burst");
    const far = new Sub(other, "cf.burst");
    await nc.flush();
    await other.flush();
    const big = Uint8Array.from({ length: 64 * 1024 }, (_, i) => (i * 31 + 9) & 0xff);
    for (let i = 0; i < small; i++) nc.publish("cf.burst", enc(String(i)));
    for (let i = 0; i < bigN; i++) nc.publish("cf.burst", big);
    await within("flush", nc.flush(), 30000);
    for (const [name, sub] of [["same connection", own], ["other connection", far]]) {
      for (let i = 0; i < small; i++) {
        const m = await sub.next(`${name}: small message ${i}`);
        if (dec(m.data) !== String(i)) throw new Fail(`${name}: message ${i}: saw ${dec(m.data)}, expected ${i}`);
      }
      for (let i = 0; i < bigN; i++) {
        const m = await sub.next(`${name}: 64 KiB message ${i}`);
        const same = m.data.length === big.length && m.data.every((b, j) => b === big[j]);
        ensure(same, `${name}: 64 KiB message ${i} differs (${m.data.length} bytes)`);
      }
    }
  },

  async subjects() {
    const nc = await conn();
    const pc = await conn();
    const all = new Sub(nc, "cf.subj.>");
    const exact = oddSubjects().map(([s]) => new Sub(nc, s));
    await nc.flush();
    for (const [s, r] of oddSubjects()) pc.publish(s, enc(s), { reply: r });
    await pc.flush();
    for (const [k, [s, r]] of oddSubjects().entries()) {
      for (const [kind, sub] of [["exact", exact[k]], ["cf.subj.>", all]]) {
        const m = await sub.next(`${kind} subscription for ${s}`);
        check(`${kind}: subject`, m.subject, s);
        check(`${kind}: reply`, m.reply, r);
        check(`${kind}: payload`, dec(m.data), s);
      }
    }
  },

  async keepalive() {
    const nc = await conn({ pingInterval: 100, maxPingOut: 2 });
    const events = [];
    statusEvents(nc, events);
    const sub = new Sub(nc, "cf.keepalive");
    await nc.flush();
    await sleep(1500);
    check("status events while pinging", events.filter((e) => e !== "pingTimer"), []);
    check("closed", nc.isClosed(), false);
    nc.publish("cf.keepalive", enc("still here"));
    check("message after pinging", dec((await sub.next("message after pinging")).data), "still here");
  },

  async control_line() {
    const nc = await conn();
    const events = [];
    statusEvents(nc, events);
    nc.publish("cf." + "x".repeat(5000), enc("x"));
    nc.flush().catch(() => {});
    const err = await within("connection closed", nc.closed());
    ensure(
      String(err?.message ?? "").toLowerCase().includes("maximum control line exceeded"),
      `closed with: saw ${err}, expected 'maximum control line exceeded' (status events ${events})`,
    );
  },

  async jetstream() {
    const nc = await conn();
    const jsm = await nc.jetstreamManager({ timeout: WAIT });
    const js = nc.jetstream({ timeout: WAIT });
    await jsm.streams.add({ name: "CF", subjects: ["cf.js.>"], storage: StorageType.File });
    for (let i = 1; i <= 10; i++) {
      const ack = await js.publish(`cf.js.${i}`, enc(`msg ${i}`));
      check(`PubAck ${i}`, [ack.stream, ack.seq, ack.duplicate], ["CF", i, false]);
    }
    const first = await js.publish("cf.js.dup", enc("dup"), { msgID: "cf-1" });
    check("first Nats-Msg-Id publish", [first.seq, first.duplicate], [11, false]);
    const again = await js.publish("cf.js.dup", enc("dup"), { msgID: "cf-1" });
    check("second Nats-Msg-Id publish", [again.seq, again.duplicate], [11, true]);
    const m = await jsm.streams.getMessage("CF", { seq: 5 });
    check("message 5", [m.subject, dec(m.data)], ["cf.js.5", "msg 5"]);
    check("messages in stream", (await jsm.streams.info("CF")).state.messages, 11);
    const purged = await jsm.streams.purge("CF");
    check("purge", [purged.success, purged.purged], [true, 11]);
    check("messages after purge", (await jsm.streams.info("CF")).state.messages, 0);
    check("delete", await jsm.streams.delete("CF"), true);
    const gone = await jsm.streams.info("CF").then(
      () => "the stream",
      (e) => e?.api_error?.err_code,
    );
    check("stream info after delete (error code)", gone, 10059);
    await nc.close();
  },

  async kv() {
    const nc = await conn();
    const js = nc.jetstream({ timeout: WAIT });
    const store = await js.views.kv("CF");
    check("put colour=red", await store.put("colour", enc("red")), 1);
    let e = await store.get("colour");
    check("get colour", [dec(e.value), e.revision, e.operation], ["red", 1, "PUT"]);
    const created = await store.create("colour", enc("green")).then(
      (rev) => `revision ${rev}`,
      (err) => err?.api_error?.err_code,
    );
    check("create on an existing key (error code)", created, 10071);
    check("update colour=blue at revision 1", await store.update("colour", enc("blue"), 1), 2);
    const stale = await store.update("colour", enc("grey"), 1).then(
      (rev) => `revision ${rev}`,
      (err) => err?.api_error?.err_code,
    );
    check("update at a stale revision (error code)", stale, 10071);
    e = await store.get("colour");
    check("get colour", [dec(e.value), e.revision], ["blue", 2]);
    await store.delete("colour");
    // nats.js gives a deleted key as an entry with operation DEL and no value.
    e = await store.get("colour");
    check("get after delete", e && [e.operation, e.value.length], ["DEL", 0]);
    check("delete bucket", await store.destroy(), true);
    await nc.close();
  },

  async js_consumers() {
    const nc = await conn();
    const jsm = await nc.jetstreamManager({ timeout: WAIT });
    const js = nc.jetstream({ timeout: WAIT });
    await jsm.streams.add({ name: "CF", subjects: ["cf.js.>"], storage: StorageType.File });
    for (let i = 1; i <= 10; i++) await js.publish(`cf.js.${i}`, enc(`msg ${i}`));

    // (a) a durable pull consumer, explicit acks, two batches of five.
    await jsm.consumers.add("CF", { durable_name: "PULL", ack_policy: AckPolicy.Explicit });
    const pull = await js.consumers.get("CF", "PULL");
    for (let batch = 0; batch < 2; batch++) {
      const msgs = await fetchN(pull, 5, `PULL fetch ${batch + 1}`);
      check(`PULL fetch ${batch + 1}: messages`, msgs.length, 5);
      for (const [k, m] of msgs.entries()) {
        const i = batch * 5 + k + 1;
        checkDelivery(`PULL message ${i}`, m, i, 1);
        if (k === msgs.length - 1) check(`PULL ack ${i} (ackAck)`, await m.ackAck({ timeout: WAIT }), true);
        else m.ack();
      }
    }
    const ci = await jsm.consumers.info("CF", "PULL");
    check(
      "PULL info (num_ack_pending, num_pending, ack floor stream sequence)",
      [ci.num_ack_pending, ci.num_pending, ci.ack_floor.stream_seq],
      [0, 0, 10],
    );

    // (b) a nak'd message comes back, delivered a second time. The consumer
    // sees message 1 only: nats-server handles acks apart from pull
    // requests, so the second fetch may arrive before the nak.
    await jsm.consumers.add("CF", { durable_name: "REDO", ack_policy: AckPolicy.Explicit, filter_subject: "cf.js.1" });
    const redo = await js.consumers.get("CF", "REDO");
    let [m] = await fetchN(redo, 1, "REDO fetch 1");
    checkDelivery("REDO first delivery", m, 1, 1);
    m.nak();
    [m] = await fetchN(redo, 1, "REDO fetch 2");
    checkDelivery("REDO after nak", m, 1, 2);
    check("REDO ack (ackAck)", await m.ackAck({ timeout: WAIT }), true);

    // (c) an ordered consumer gets the whole stream in order.
    const ordered = await js.consumers.get("CF");
    const messages = await ordered.consume();
    const it = messages[Symbol.asyncIterator]();
    for (let i = 1; i <= 10; i++) {
      const { value: m } = await within(`ordered message ${i}`, it.next());
      check(`ordered message ${i}`, [m?.subject, m && dec(m.data)], [`cf.js.${i}`, `msg ${i}`]);
    }
    await messages.close();

    // (d) a deleted consumer is gone.
    check("delete consumer PULL", await jsm.consumers.delete("CF", "PULL"), true);
    const gone = await jsm.consumers.info("CF", "PULL").then(
      () => "the consumer",
      (e) => e?.api_error?.err_code,
    );
    check("consumer info after delete (error code)", gone, 10014);
    check("delete stream", await jsm.streams.delete("CF"), true);
    await nc.close();
  },

  async kv_watch() {
    const nc = await conn();
    const js = nc.jetstream({ timeout: WAIT });
    const store = await js.views.kv("CF", { history: 5 });
    for (const [k, v] of [["a", "1"], ["b", "2"], ["a", "3"]]) await store.put(k, enc(v));
    // The watcher's entries, and null when its initial values are done.
    const updates = new Feed();
    const w = await store.watch({ initializedFn: () => updates.push(null) });
    (async () => {
      for await (const e of w) updates.push(e);
    })();
    const entry = (e) => e && [e.key, dec(e.value), e.operation];
    check("watch: first initial value", entry(await updates.next("watch: first initial value")), ["b", "2", "PUT"]);
    check("watch: second initial value", entry(await updates.next("watch: second initial value")), ["a", "3", "PUT"]);
    check("watch: end of initial values", entry(await updates.next("watch: end of initial values")), null);
    await store.put("c", enc("4"));
    check("watch: update", entry(await updates.next("watch: update")), ["c", "4", "PUT"]);
    const keys = [];
    for await (const k of await store.keys()) keys.push(k);
    check("keys", keys.sort(), ["a", "b", "c"]);
    const history = [];
    for await (const e of await store.history({ key: "a" })) history.push(dec(e.value));
    check("history of a", history, ["1", "3"]);
    await store.delete("b");
    check("watch: delete", entry(await updates.next("watch: delete")), ["b", "", "DEL"]);
    w.stop();
    check("delete bucket", await store.destroy(), true);
    await nc.close();
  },

  async object_store() {
    const nc = await conn();
    const js = nc.jetstream({ timeout: WAIT });
    const store = await js.views.os("CF", { storage: StorageType.File });
    const big = bigObject();
    await store.putBlob({ name: "big" }, big);
    await store.putBlob({ name: "small" }, enc("hello"));
    // nats.js checks the SHA-256 digest once the last chunk is in.
    const got = await within("get big", store.getBlob("big"));
    ensure(got !== null, "get big: saw no object, expected 5242880 bytes");
    checkBytes("get big", got, big);
    const info = await store.info("big");
    // nats.js cuts objects into 128 KiB chunks.
    check("info big (size, chunks)", [info?.size, info?.chunks], [5242880, 40]);
    const names = (await within("list", store.list())).map((o) => o.name);
    check("list", names.sort(), ["big", "small"]);
    await store.putBlob({ name: "small" }, enc("hello again"));
    const small = await within("get small", store.getBlob("small"));
    check("get small after the second put", small && dec(small), "hello again");
    await store.delete("big");
    // nats.js gives a missing (or deleted) object as null.
    const gone = await store.getBlob("big");
    check("get big after delete", gone && `${gone.length} bytes`, null);
    check("delete bucket", await store.destroy(), true);
    await nc.close();
  },
};

// The object store scenario's big object: 5 MiB, byte i = (i*7) % 251.
function bigObject() {
  const b = new Uint8Array(5 * 1024 * 1024);
  for (let i = 0; i < b.length; i++) b[i] = (i * 7) % 251;
  return b;
}

// Every byte, naming the first that differs.
function checkBytes(what, saw, expected) {
  check(`${what}: length`, saw.length, expected.length);
  const at = saw.findIndex((x, i) => x !== expected[i]);
  if (at >= 0) throw new Fail(`${what}: byte ${at}: saw ${saw[at]}, expected ${expected[at]}`);
}

function oddSubjects() {
  const long = Array.from({ length: 64 }, (_, i) => `tok${String(i).padStart(2, "0")}-abcdefghij`).join(".");
  return [
    [`cf.subj.${long}`, "cf.reply.long"],
    ["cf.subj.ünïcødé.日本語", "cf.reply.ünï.日本"],
    ["cf.subj.a-b_c.x:y.~z.=eq", "cf.reply.a-b_c.x:y.~z.=eq"],
  ];
}

// ---- the slow consumer's publisher (worker thread) --------------------------

async function floodWorker() {
  const { flag, server, subject } = workerData;
  try {
    const pc = await connect({ servers: server, timeout: 2000, reconnect: false });
    const chunk = new Uint8Array(512 * 1024).fill(115);
    for (let i = 0; i < 200; i++) {
      pc.publish(subject, chunk);
      if (i % 8 === 7) await pc.flush();
    }
    await pc.flush();
    await pc.close();
    parentPort.postMessage("ok");
  } catch (e) {
    parentPort.postMessage(String(e));
  } finally {
    Atomics.store(flag, 0, 1);
    Atomics.notify(flag, 0);
  }
}

async function main() {
  const name = process.argv[2];
  if (!name) {
    console.error("usage: node conformance.mjs <scenario>   (server at $NATS_URL)");
    return 2;
  }
  const scenario = scenarios[name];
  if (!scenario) {
    console.log(`unknown scenario ${name}`);
    return 2;
  }
  try {
    await scenario();
  } catch (e) {
    if (e instanceof NotApplicable) {
      console.log(`n/a ${name}: ${e.message}`);
      return 77;
    }
    if (e instanceof Fail) console.log(`FAIL ${name}: ${e.message}`);
    else console.log(`FAIL ${name}: unexpected ${e?.code ?? ""} ${e?.stack ?? e}`);
    return 1;
  }
  console.log(`ok ${name}`);
  return 0;
}

if (isMainThread) {
  main().then((code) => process.exit(code));
} else {
  floodWorker();
}
