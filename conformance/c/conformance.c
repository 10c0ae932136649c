/*
 * The C client's side of natrix's conformance suite.
 *
 * Runs one scenario of conformance/scenarios with the official C client,
 * libnats (Debian libnats-dev), against the server at $NATS_URL:
 *
 *     c-conformance <scenario>
 *
 * It starts no server: conformance/run does, and reads the exit code (0 pass,
 * 1 fail, 77 not applicable to this client, 2 unknown scenario). On failure
 * it prints what the client saw and what it expected.
 */
#define _GNU_SOURCE
#include <nats/nats.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define WAIT 5000
#define MIB (1024 * 1024)

static const char *scenario = "?";
static const char *url = "nats://127.0.0.1:4222";

#define FAILF(...)                                                             \
    do {                                                                       \
        printf("FAIL %s: ", scenario);                                         \
        printf(__VA_ARGS__);                                                   \
        printf("\n");                                                          \
        fflush(stdout);                                                        \
        _exit(1);                                                              \
    } while (0)

#define OK(call)                                                               \
    do {                                                                       \
        natsStatus s_ = (call);                                                \
        if (s_ != NATS_OK)                                                     \
            FAILF("%s: %s (%s)", #call, natsStatus_GetText(s_),                \
                  nats_GetLastError(NULL));                                    \
    } while (0)

#define CHECK_INT(what, saw, expected)                                         \
    do {                                                                       \
        long long s_ = (long long)(saw), e_ = (long long)(expected);           \
        if (s_ != e_) FAILF("%s: saw %lld, expected %lld", what, s_, e_);      \
    } while (0)

#define CHECK_STATUS(what, saw, expected)                                      \
    do {                                                                       \
        natsStatus s_ = (saw), e_ = (expected);                                \
        if (s_ != e_)                                                          \
            FAILF("%s: saw %s, expected %s", what, natsStatus_GetText(s_),     \
                  natsStatus_GetText(e_));                                     \
    } while (0)

static void check_str(const char *what, const char *saw, const char *expected) {
    if (saw == NULL) saw = "(null)";
    if (strcmp(saw, expected) != 0)
        FAILF("%s: saw \"%s\", expected \"%s\"", what, saw, expected);
}

/* The payload of a message as a string (payloads here are short text). */
static const char *text(natsMsg *m) {
    static char buf[2048];
    int n = natsMsg_GetDataLength(m);
    if (n > (int)sizeof(buf) - 1) n = sizeof(buf) - 1;
    memcpy(buf, natsMsg_GetData(m), n);
    buf[n] = 0;
    return buf;
}

static natsOptions *options(void) {
    natsOptions *o = NULL;
    OK(natsOptions_Create(&o));
    OK(natsOptions_SetURL(o, url));
    OK(natsOptions_SetTimeout(o, 2000));
    OK(natsOptions_SetAllowReconnect(o, false));
    return o;
}

static natsConnection *connect_with(natsOptions *o) {
    natsConnection *nc = NULL;
    OK(natsConnection_Connect(&nc, o));
    return nc;
}

static natsConnection *conn(void) { return connect_with(options()); }

static natsSubscription *sub_sync(natsConnection *nc, const char *subject) {
    natsSubscription *s = NULL;
    OK(natsConnection_SubscribeSync(&s, nc, subject));
    return s;
}

static natsMsg *next_msg(natsSubscription *s, const char *what) {
    natsMsg *m = NULL;
    natsStatus st = natsSubscription_NextMsg(&m, s, WAIT);
    if (st == NATS_TIMEOUT) FAILF("%s: nothing after %d ms", what, WAIT);
    if (st != NATS_OK) FAILF("%s: %s", what, natsStatus_GetText(st));
    return m;
}

/* Messages until `quiet` ms pass without one; returns how many, keeps up to max. */
static int collect(natsSubscription *s, int quiet, natsMsg **out, int max) {
    int n = 0;
    natsMsg *m = NULL;
    while (natsSubscription_NextMsg(&m, s, quiet) == NATS_OK) {
        if (n < max) out[n] = m;
        else natsMsg_Destroy(m);
        n++;
    }
    return n;
}

static void flush(natsConnection *nc) { OK(natsConnection_FlushTimeout(nc, WAIT)); }

static void pub(natsConnection *nc, const char *subject, const char *s) {
    OK(natsConnection_PublishString(nc, subject, s));
}

static void server_ctl(const char *var) {
    const char *cmd = getenv(var);
    if (!cmd) FAILF("$%s is not set", var);
    int rc = system(cmd);
    if (rc != 0) FAILF("%s: exit status %d", cmd, rc);
}

static void wait_flag(atomic_int *flag, int ms, const char *what) {
    for (int i = 0; i < ms / 10 && !atomic_load(flag); i++) nats_Sleep(10);
    if (!atomic_load(flag)) FAILF("expected %s within %d ms, it did not happen", what, ms);
}

/* ---- scenarios ----------------------------------------------------------- */

static int connect_info(void) {
    natsConnection *nc = conn();
    CHECK_INT("max_payload", natsConnection_GetMaxPayload(nc), MIB);
    CHECK_STATUS("header support", natsConnection_HasHeaderSupport(nc), NATS_OK);
    char id[128] = {0};
    OK(natsConnection_GetConnectedServerId(nc, id, sizeof(id)));
    if (strlen(id) == 0) FAILF("server id is empty");
    uint64_t cid = 0;
    OK(natsConnection_GetClientID(nc, &cid));
    if (cid == 0) FAILF("client id: saw 0, expected > 0");
    char *ip = NULL;
    OK(natsConnection_GetClientIP(nc, &ip));
    check_str("client_ip", ip, "127.0.0.1");
    free(ip);
    flush(nc);
    int64_t rtt = 0;
    OK(natsConnection_GetRTT(nc, &rtt));
    CHECK_INT("connection status", natsConnection_Status(nc), NATS_CONN_STATUS_CONNECTED);
    /* libnats does not expose the server's version field. */
    natsConnection_Close(nc);
    CHECK_INT("closed", natsConnection_IsClosed(nc), true);
    return 0;
}

static int pub_sub(void) {
    natsConnection *nc = conn(), *pc = conn();
    natsSubscription *s = sub_sync(nc, "cf.pubsub");
    flush(nc);
    char buf[32];
    for (int i = 0; i < 100; i++) {
        snprintf(buf, sizeof(buf), "msg-%d", i);
        pub(pc, "cf.pubsub", buf);
    }
    OK(natsConnection_Publish(pc, "cf.pubsub", NULL, 0));
    flush(pc);
    for (int i = 0; i < 100; i++) {
        snprintf(buf, sizeof(buf), "message %d", i);
        natsMsg *m = next_msg(s, buf);
        check_str("subject", natsMsg_GetSubject(m), "cf.pubsub");
        snprintf(buf, sizeof(buf), "msg-%d", i);
        check_str("payload", text(m), buf);
        if (natsMsg_GetReply(m) != NULL) FAILF("reply: saw \"%s\", expected none", natsMsg_GetReply(m));
        natsMsg_Destroy(m);
    }
    natsMsg *m = next_msg(s, "empty message");
    CHECK_INT("empty payload length", natsMsg_GetDataLength(m), 0);
    return 0;
}

static void check_subjects(const char *what, natsSubscription *s, const char **want, int n) {
    natsMsg *got[16];
    int k = collect(s, 300, got, 16);
    char saw[512] = "", exp[512] = "";
    for (int i = 0; i < k && i < 16; i++) {
        strcat(saw, natsMsg_GetSubject(got[i]));
        strcat(saw, " ");
    }
    for (int i = 0; i < n; i++) {
        strcat(exp, want[i]);
        strcat(exp, " ");
    }
    check_str(what, saw, exp);
}

static int wildcards(void) {
    natsConnection *nc = conn();
    natsSubscription *star_b = sub_sync(nc, "cf.wc.*.b");
    natsSubscription *a_star = sub_sync(nc, "cf.wc.a.*");
    natsSubscription *full = sub_sync(nc, "cf.wc.>");
    flush(nc);
    const char *subjects[] = {"cf.wc.a.b", "cf.wc.x.b", "cf.wc.a.c", "cf.wc.a.b.c", "cf.other"};
    for (int i = 0; i < 5; i++) pub(nc, subjects[i], subjects[i]);
    flush(nc);
    const char *w1[] = {"cf.wc.a.b", "cf.wc.x.b"};
    const char *w2[] = {"cf.wc.a.b", "cf.wc.a.c"};
    const char *w3[] = {"cf.wc.a.b", "cf.wc.x.b", "cf.wc.a.c", "cf.wc.a.b.c"};
    check_subjects("cf.wc.*.b got", star_b, w1, 2);
    check_subjects("cf.wc.a.* got", a_star, w2, 2);
    check_subjects("cf.wc.> got", full, w3, 4);
    return 0;
}

static int queue_groups(void) {
    natsConnection *nc = conn();
    natsSubscription *members[3];
    for (int i = 0; i < 3; i++) OK(natsConnection_QueueSubscribeSync(&members[i], nc, "cf.queue", "workers"));
    natsSubscription *plain = sub_sync(nc, "cf.queue");
    flush(nc);
    natsConnection *pc = conn();
    char buf[16];
    for (int i = 0; i < 300; i++) {
        snprintf(buf, sizeof(buf), "%d", i);
        pub(pc, "cf.queue", buf);
    }
    flush(pc);
    int seen[300] = {0}, per[3];
    natsMsg *got[300];
    for (int k = 0; k < 3; k++) {
        int n = collect(members[k], 300, got, 300);
        per[k] = n;
        for (int j = 0; j < n && j < 300; j++) {
            int v = atoi(text(got[j]));
            if (v >= 0 && v < 300) seen[v]++;
            natsMsg_Destroy(got[j]);
        }
    }
    for (int i = 0; i < 300; i++)
        if (seen[i] != 1) FAILF("message %d delivered %d times across the group, expected exactly once", i, seen[i]);
    if (per[0] == 0 || per[1] == 0 || per[2] == 0)
        FAILF("every member should get some of 300 messages, saw [%d, %d, %d]", per[0], per[1], per[2]);
    CHECK_INT("plain subscriber count", collect(plain, 300, got, 300), 300);
    return 0;
}

static void echo_cb(natsConnection *nc, natsSubscription *s, natsMsg *m, void *closure) {
    (void)s;
    (void)closure;
    char buf[2100];
    snprintf(buf, sizeof(buf), "re:%s", text(m));
    if (natsMsg_GetReply(m)) natsConnection_PublishString(nc, natsMsg_GetReply(m), buf);
    natsMsg_Destroy(m);
}

static void start_responder(natsConnection *nc, const char *subject) {
    natsSubscription *s = NULL;
    OK(natsConnection_Subscribe(&s, nc, subject, echo_cb, NULL));
    flush(nc);
}

struct par_req {
    natsConnection *nc;
    int i;
    natsStatus st;
    char reply[2100];
};

static void *par_request(void *arg) {
    struct par_req *r = arg;
    char buf[32];
    snprintf(buf, sizeof(buf), "par-%d", r->i);
    natsMsg *m = NULL;
    r->st = natsConnection_RequestString(&m, r->nc, "cf.svc", buf, WAIT);
    if (r->st == NATS_OK) {
        snprintf(r->reply, sizeof(r->reply), "%s", text(m));
        natsMsg_Destroy(m);
    }
    return NULL;
}

static void requests(natsConnection *nc, const char *style) {
    char buf[32], want[40];
    for (int i = 0; i < 10; i++) {
        natsMsg *m = NULL;
        snprintf(buf, sizeof(buf), "%s-%d", style, i);
        OK(natsConnection_RequestString(&m, nc, "cf.svc", buf, WAIT));
        snprintf(want, sizeof(want), "re:%s", buf);
        check_str("reply", text(m), want);
        natsMsg_Destroy(m);
    }
}

static int request_reply(void) {
    natsConnection *svc = conn();
    start_responder(svc, "cf.svc");
    /* New style: one wildcard inbox subscription for all requests. */
    natsConnection *nc = conn();
    requests(nc, "new");
    /* A tap on every inbox sees each reply the server routes. */
    natsConnection *tapc = conn();
    natsSubscription *tap = NULL;
    OK(natsConnection_SubscribeSync(&tap, tapc, "_INBOX.>"));
    flush(tapc);
    pthread_t t[20];
    struct par_req r[20];
    for (int i = 0; i < 20; i++) {
        r[i] = (struct par_req){.nc = nc, .i = i};
        pthread_create(&t[i], NULL, par_request, &r[i]);
    }
    /* Every parallel request is answered. Which thread gets which reply,
     * and even its bytes, is libnats's own business (3.4.1 can hand a
     * thread another thread's reply when requests race, against
     * nats-server 2.9.10 too, and once handed one "re:re:pa"), so the
     * server's part, routing each well-formed reply to the inbox exactly
     * once, is checked on the tap. */
    for (int i = 0; i < 20; i++) {
        pthread_join(t[i], NULL);
        CHECK_STATUS("parallel request", r[i].st, NATS_OK);
    }
    int seen[20] = {0};
    natsMsg *got[64];
    int ng = collect(tap, 300, got, 64);
    for (int j = 0; j < ng && j < 64; j++) {
        int n = -1;
        if (sscanf(text(got[j]), "re:par-%d", &n) == 1 && n >= 0 && n < 20) seen[n]++;
        natsMsg_Destroy(got[j]);
    }
    for (int i = 0; i < 20; i++)
        if (seen[i] != 1) FAILF("reply re:par-%d routed %d times, expected once", i, seen[i]);
    /* Old style: a fresh inbox subscription per request. */
    natsOptions *o = options();
    OK(natsOptions_UseOldRequestStyle(o, true));
    requests(connect_with(o), "old");
    return 0;
}

static int no_responders(void) {
    for (int old = 0; old < 2; old++) {
        natsOptions *o = options();
        OK(natsOptions_UseOldRequestStyle(o, old));
        natsConnection *nc = connect_with(o);
        natsMsg *m = NULL;
        int64_t start = nats_Now();
        natsStatus st = natsConnection_RequestString(&m, nc, "cf.nobody", "x", WAIT);
        CHECK_STATUS(old ? "old-style request error" : "request error", st, NATS_NO_RESPONDERS);
        int64_t took = nats_Now() - start;
        if (took > 2000) FAILF("no-responders should come at once, took %lld ms", (long long)took);
    }
    return 0;
}

static int headers(void) {
    natsConnection *nc = conn();
    natsSubscription *s = sub_sync(nc, "cf.headers");
    flush(nc);
    natsMsg *out = NULL;
    OK(natsMsg_Create(&out, "cf.headers", NULL, "body", 4));
    OK(natsMsgHeader_Set(out, "X-Conf", "one"));
    OK(natsMsgHeader_Add(out, "X-Multi", "a"));
    OK(natsMsgHeader_Add(out, "X-Multi", "b"));
    OK(natsConnection_PublishMsg(nc, out));
    pub(nc, "cf.headers", "plain");
    natsMsg *only = NULL;
    OK(natsMsg_Create(&only, "cf.headers", NULL, NULL, 0));
    OK(natsMsgHeader_Set(only, "X-Only", "headers"));
    OK(natsConnection_PublishMsg(nc, only));

    natsMsg *m = next_msg(s, "message with headers");
    const char *v = NULL;
    OK(natsMsgHeader_Get(m, "X-Conf", &v));
    check_str("X-Conf", v, "one");
    const char **vals = NULL;
    int count = 0;
    OK(natsMsgHeader_Values(m, "X-Multi", &vals, &count));
    CHECK_INT("X-Multi values", count, 2);
    check_str("X-Multi[0]", vals[0], "a");
    check_str("X-Multi[1]", vals[1], "b");
    free((void *)vals);
    check_str("payload", text(m), "body");

    m = next_msg(s, "plain message");
    CHECK_STATUS("header on a plain message", natsMsgHeader_Get(m, "X-Conf", &v), NATS_NOT_FOUND);
    check_str("plain payload", text(m), "plain");

    m = next_msg(s, "headers-only message");
    OK(natsMsgHeader_Get(m, "X-Only", &v));
    check_str("X-Only", v, "headers");
    CHECK_INT("headers-only payload length", natsMsg_GetDataLength(m), 0);
    return 0;
}

static int auto_unsubscribe(void) {
    natsConnection *nc = conn();
    natsSubscription *s = sub_sync(nc, "cf.auto");
    OK(natsSubscription_AutoUnsubscribe(s, 5));
    flush(nc);
    char buf[16];
    for (int i = 0; i < 10; i++) {
        snprintf(buf, sizeof(buf), "%d", i);
        pub(nc, "cf.auto", buf);
    }
    flush(nc);
    natsMsg *got[10];
    int n = collect(s, 500, got, 10);
    CHECK_INT("messages before auto-unsubscribe", n, 5);
    for (int i = 0; i < 5; i++) {
        snprintf(buf, sizeof(buf), "%d", i);
        check_str("message", text(got[i]), buf);
    }
    CHECK_INT("subscription still valid", natsSubscription_IsValid(s), false);
    return 0;
}

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static int drained[2][200];
static int drained_n[2];

static void drain_cb(natsConnection *nc, natsSubscription *s, natsMsg *m, void *closure) {
    (void)nc;
    (void)s;
    int k = (int)(intptr_t)closure;
    nats_Sleep(k == 0 ? 1 : 0);
    pthread_mutex_lock(&mu);
    if (drained_n[k] < 200) drained[k][drained_n[k]] = atoi(text(m));
    drained_n[k]++;
    pthread_mutex_unlock(&mu);
    natsMsg_Destroy(m);
}

static atomic_int closed_flag, disconnected_flag, reconnected_flag;

static void on_closed(natsConnection *nc, void *c) {
    (void)nc;
    (void)c;
    atomic_store(&closed_flag, 1);
}
static void on_disconnected(natsConnection *nc, void *c) {
    (void)nc;
    (void)c;
    atomic_store(&disconnected_flag, 1);
}
static void on_reconnected(natsConnection *nc, void *c) {
    (void)nc;
    (void)c;
    atomic_store(&reconnected_flag, 1);
}

static int drain(void) {
    natsOptions *o = options();
    OK(natsOptions_SetClosedCB(o, on_closed, NULL));
    natsConnection *nc = connect_with(o), *pc = conn();
    natsSubscription *s = NULL, *other = NULL;
    OK(natsConnection_Subscribe(&s, nc, "cf.drain", drain_cb, (void *)0));
    OK(natsConnection_Subscribe(&other, nc, "cf.drain.sub", drain_cb, (void *)1));
    flush(nc);
    char buf[16];
    for (int i = 0; i < 200; i++) {
        snprintf(buf, sizeof(buf), "%d", i);
        pub(pc, "cf.drain", buf);
        pub(pc, "cf.drain.sub", buf);
    }
    flush(pc);
    OK(natsSubscription_Drain(other));
    OK(natsSubscription_WaitForDrainCompletion(other, WAIT));
    CHECK_INT("messages on the drained subscription", drained_n[1], 200);
    OK(natsConnection_DrainTimeout(nc, 10000));
    wait_flag(&closed_flag, 15000, "the connection closed after drain");
    CHECK_INT("messages delivered by drain", drained_n[0], 200);
    for (int i = 0; i < 200; i++)
        if (drained[0][i] != i) FAILF("message %d: saw %d, expected %d", i, drained[0][i], i);
    CHECK_STATUS("publish after drain", natsConnection_PublishString(nc, "cf.after", "x"), NATS_CONNECTION_CLOSED);
    return 0;
}

static int flush_ping(void) {
    natsConnection *nc = conn();
    natsSubscription *s = sub_sync(nc, "cf.flush");
    flush(nc);
    char buf[16];
    for (int i = 0; i < 1000; i++) {
        snprintf(buf, sizeof(buf), "%d", i);
        pub(nc, "cf.flush", buf);
    }
    int64_t start = nats_Now();
    flush(nc);
    if (nats_Now() - start > 2000) FAILF("flush took %lld ms", (long long)(nats_Now() - start));
    for (int i = 0; i < 1000; i++) {
        natsMsg *m = next_msg(s, "message after flush");
        snprintf(buf, sizeof(buf), "%d", i);
        check_str("payload", text(m), buf);
        natsMsg_Destroy(m);
    }
    for (int i = 0; i < 10; i++) flush(nc);
    int64_t rtt = -1;
    OK(natsConnection_GetRTT(nc, &rtt));
    if (rtt < 0 || rtt > 2000000000LL) FAILF("rtt: saw %lld ns, expected between 0 and 2 s", (long long)rtt);
    return 0;
}

static int max_payload(void) {
    natsConnection *nc = conn();
    CHECK_INT("max_payload", natsConnection_GetMaxPayload(nc), MIB);
    natsSubscription *s = sub_sync(nc, "cf.max");
    flush(nc);
    char *big = malloc(MIB + 1);
    memset(big, 'y', MIB + 1);
    CHECK_STATUS("publish of max_payload + 1 bytes", natsConnection_Publish(nc, "cf.max", big, MIB + 1), NATS_MAX_PAYLOAD);
    OK(natsConnection_Publish(nc, "cf.max", big, MIB));
    flush(nc);
    natsMsg *m = next_msg(s, "max_payload message");
    CHECK_INT("payload length", natsMsg_GetDataLength(m), MIB);
    pub(nc, "cf.max", "still open");
    check_str("after", text(next_msg(s, "message after")), "still open");
    return 0;
}

static int reconnect(void) {
    natsOptions *o = options();
    OK(natsOptions_SetAllowReconnect(o, true));
    OK(natsOptions_SetReconnectWait(o, 100));
    OK(natsOptions_SetMaxReconnect(o, -1));
    OK(natsOptions_SetDisconnectedCB(o, on_disconnected, NULL));
    OK(natsOptions_SetReconnectedCB(o, on_reconnected, NULL));
    natsConnection *nc = connect_with(o);
    natsSubscription *s = sub_sync(nc, "cf.reconnect");
    flush(nc);
    pub(nc, "cf.reconnect", "before");
    check_str("before restart", text(next_msg(s, "message before restart")), "before");
    server_ctl("CONFORMANCE_SERVER_STOP");
    wait_flag(&disconnected_flag, 10000, "a disconnect");
    char buf[32];
    for (int i = 0; i < 10; i++) {
        snprintf(buf, sizeof(buf), "buffered-%d", i);
        pub(nc, "cf.reconnect", buf);
    }
    server_ctl("CONFORMANCE_SERVER_START");
    wait_flag(&reconnected_flag, 10000, "a reconnect");
    for (int i = 0; i < 10; i++) {
        snprintf(buf, sizeof(buf), "buffered-%d", i);
        check_str("buffered message", text(next_msg(s, "buffered message")), buf);
    }
    pub(nc, "cf.reconnect", "after");
    check_str("after reconnect", text(next_msg(s, "message after reconnect")), "after");
    return 0;
}

/* The members other than NATS_URL's server, from the runner. */
static const char *others[8];
static int others_n;

static void cluster_urls(void) {
    const char *v = getenv("CONFORMANCE_CLUSTER_URLS");
    if (!v || !*v) FAILF("$CONFORMANCE_CLUSTER_URLS is not set (the runner starts a cluster for this scenario)");
    char *copy = strdup(v), *save = NULL;
    for (char *u = strtok_r(copy, ",", &save); u && others_n < 8; u = strtok_r(NULL, ",", &save)) others[others_n++] = u;
}

static const char *host_port(const char *u) {
    const char *p = strstr(u, "://");
    return p ? p + 3 : u;
}

static int is_other_member(const char *u) {
    for (int i = 0; i < others_n; i++)
        if (strcmp(host_port(others[i]), host_port(u)) == 0) return 1;
    return 0;
}

/* Publishes data on pc every 100 ms until s gets it: interest reaches the
 * other servers of a cluster a moment after the subscription. Earlier
 * probes still on their way are skipped. */
static void until_crossed(natsConnection *pc, natsSubscription *s, const char *data) {
    int64_t deadline = nats_Now() + WAIT;
    for (;;) {
        pub(pc, natsSubscription_GetSubject(s), data);
        flush(pc);
        natsMsg *m = NULL;
        while (natsSubscription_NextMsg(&m, s, 100) == NATS_OK) {
            int hit = strcmp(text(m), data) == 0;
            natsMsg_Destroy(m);
            if (hit) return;
        }
        if (nats_Now() > deadline)
            FAILF("%s published by the second connection: nothing crossed the cluster after %d ms", data, WAIT);
    }
}

static int cluster_failover(void) {
    cluster_urls();
    natsOptions *o = options();
    OK(natsOptions_SetAllowReconnect(o, true));
    OK(natsOptions_SetReconnectWait(o, 100));
    OK(natsOptions_SetMaxReconnect(o, -1));
    OK(natsOptions_SetDisconnectedCB(o, on_disconnected, NULL));
    OK(natsOptions_SetReconnectedCB(o, on_reconnected, NULL));
    natsConnection *nc = connect_with(o);
    char **found = NULL;
    int found_n = 0;
    OK(natsConnection_GetDiscoveredServers(nc, &found, &found_n));
    CHECK_INT("number of discovered servers", found_n, others_n);
    for (int i = 0; i < found_n; i++)
        if (!is_other_member(found[i]))
            FAILF("discovered server %s is not one of the other members (%s)", found[i], getenv("CONFORMANCE_CLUSTER_URLS"));
    natsSubscription *s = sub_sync(nc, "cf.cluster");
    flush(nc);
    natsOptions *po = NULL;
    OK(natsOptions_Create(&po));
    OK(natsOptions_SetServers(po, others, others_n));
    OK(natsOptions_SetTimeout(po, 2000));
    natsConnection *pc = connect_with(po);
    until_crossed(pc, s, "probe-before");
    server_ctl("CONFORMANCE_SERVER_STOP");
    wait_flag(&disconnected_flag, 10000, "a disconnect");
    for (int i = 0; i < 1000 && !atomic_load(&reconnected_flag); i++) nats_Sleep(10);
    if (!atomic_load(&reconnected_flag)) {
        char **servers = NULL, list[1024] = "";
        int n = 0;
        OK(natsConnection_GetServers(nc, &servers, &n));
        for (int i = 0; i < n; i++) snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%s", i ? ", " : "", servers[i]);
        FAILF("expected a reconnect within 10000 ms, it did not happen; the client's servers then: %s", list);
    }
    char now[256];
    OK(natsConnection_GetConnectedUrl(nc, now, sizeof(now)));
    if (!is_other_member(now)) FAILF("reconnected to %s, expected one of %s", now, getenv("CONFORMANCE_CLUSTER_URLS"));
    until_crossed(pc, s, "probe-after");
    char buf[32];
    for (int i = 0; i < 10; i++) {
        snprintf(buf, sizeof(buf), "msg-%d", i);
        pub(pc, "cf.cluster", buf);
    }
    flush(pc);
    for (int i = 0; i < 10; i++) {
        const char *got;
        do got = text(next_msg(s, "message after failover"));
        while (strncmp(got, "probe-", 6) == 0);
        snprintf(buf, sizeof(buf), "msg-%d", i);
        check_str("message after failover", got, buf);
    }
    return 0;
}

/* The slow consumer's publisher: a child process with a plain socket (no
 * libnats after fork), started before the parent connects. */
static int parent_stopped(pid_t p) {
    char path[64], buf[256];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)p);
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = 0;
    char *close_paren = strrchr(buf, ')');
    return close_paren && close_paren[1] == ' ' && close_paren[2] == 'T';
}

static int read_until(int fd, const char *what) {
    char buf[4096];
    size_t have = 0;
    for (;;) {
        ssize_t n = read(fd, buf + have, sizeof(buf) - 1 - have);
        if (n <= 0) return -1;
        have += n;
        buf[have] = 0;
        if (strstr(buf, what)) return 0;
        if (have > sizeof(buf) / 2) { /* keep the tail */
            memmove(buf, buf + have - 16, 16);
            have = 16;
        }
    }
}

static void write_all(int fd, const char *p, size_t n) {
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w <= 0) _exit(3);
        p += w;
        n -= w;
    }
}

static void flood_child(int ready_fd, int port) {
    char c;
    if (read(ready_fd, &c, 1) != 1) _exit(4);
    pid_t parent = getppid();
    for (int i = 0; i < 500 && !parent_stopped(parent); i++) usleep(10000);
    if (!parent_stopped(parent)) _exit(5);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    int rc = 6;
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0 && read_until(fd, "\r\n") == 0) {
        const char *hello = "CONNECT {\"verbose\":false,\"pedantic\":false}\r\n";
        write_all(fd, hello, strlen(hello));
        size_t n = 512 * 1024;
        char *chunk = malloc(n);
        memset(chunk, 's', n);
        const char *line = "PUB cf.slow 524288\r\n";
        for (int i = 0; i < 200; i++) {
            write_all(fd, line, strlen(line));
            write_all(fd, chunk, n);
            write_all(fd, "\r\n", 2);
        }
        write_all(fd, "PING\r\n", 6);
        rc = read_until(fd, "PONG") == 0 ? 0 : 7;
    }
    usleep(300000);
    kill(parent, SIGCONT);
    _exit(rc);
}

static int slow_consumer(void) {
    const char *colon = strrchr(url, ':');
    int port = colon ? atoi(colon + 1) : 4222;
    int p[2];
    if (pipe(p) != 0) FAILF("pipe");
    fflush(stdout);
    pid_t child = fork();
    if (child == 0) {
        close(p[1]);
        flood_child(p[0], port);
    }
    close(p[0]);
    natsOptions *o = options();
    OK(natsOptions_SetDisconnectedCB(o, on_disconnected, NULL));
    OK(natsOptions_SetClosedCB(o, on_closed, NULL));
    natsConnection *nc = connect_with(o);
    natsSubscription *s = sub_sync(nc, "cf.slow");
    (void)s;
    flush(nc);
    /* Stop the whole process (libnats' reader thread included) until the
     * child has published 100 MiB and resumes it. */
    if (write(p[1], "go", 1) != 1) FAILF("pipe write");
    raise(SIGSTOP);
    int status = 0;
    waitpid(child, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        FAILF("publisher child failed (status %d)", status);
    wait_flag(&disconnected_flag, 10000, "a disconnect (server closed the slow consumer)");
    return 0;
}

static void expect_auth_failure(const char *what, natsOptions *o) {
    natsConnection *nc = NULL;
    natsStatus st = natsConnection_Connect(&nc, o);
    if (st == NATS_OK) FAILF("%s was let in", what);
    const char *err = nats_GetLastError(NULL);
    if (st != NATS_CONNECTION_AUTH_FAILED && !(err && strcasestr(err, "authorization violation")))
        FAILF("%s: saw %s (%s), expected an authorization error", what, natsStatus_GetText(st), err ? err : "");
}

static char *url_with(const char *creds) {
    static char buf[2048];
    snprintf(buf, sizeof(buf), "nats://%s@%s", creds, url + strlen("nats://"));
    return buf;
}

static int auth_user_pass(void) {
    natsOptions *o = options();
    OK(natsOptions_SetUserInfo(o, "alice", "s3cret"));
    flush(connect_with(o));
    o = options();
    OK(natsOptions_SetURL(o, url_with("alice:s3cret")));
    flush(connect_with(o));
    o = options();
    OK(natsOptions_SetUserInfo(o, "alice", "wrong"));
    expect_auth_failure("alice/wrong", o);
    o = options();
    OK(natsOptions_SetUserInfo(o, "bob", "s3cret"));
    expect_auth_failure("bob/s3cret", o);
    expect_auth_failure("no credentials", options());
    o = options();
    OK(natsOptions_SetURL(o, url_with("alice:nope")));
    expect_auth_failure("a wrong password in the URL", o);
    return 0;
}

static int auth_token(void) {
    natsOptions *o = options();
    OK(natsOptions_SetToken(o, "t0ken"));
    flush(connect_with(o));
    o = options();
    OK(natsOptions_SetURL(o, url_with("t0ken")));
    flush(connect_with(o));
    o = options();
    OK(natsOptions_SetToken(o, "wrong"));
    expect_auth_failure("wrong token", o);
    expect_auth_failure("no token", options());
    return 0;
}

/* A file conformance/run made in $CONFORMANCE_PKI (certificates, seeds). */
static const char *pki(const char *name) {
    static char bufs[4][1024];
    static int next;
    char *b = bufs[next++ % 4];
    const char *dir = getenv("CONFORMANCE_PKI");
    snprintf(b, sizeof(bufs[0]), "%s/%s", dir ? dir : ".", name);
    return b;
}

static natsOptions *tls_options(void) {
    natsOptions *o = options();
    OK(natsOptions_SetSecure(o, true));
    OK(natsOptions_LoadCATrustedCertificates(o, pki("ca.pem")));
    OK(natsOptions_SetExpectedHostname(o, "localhost"));
    return o;
}

static int tls(void) {
    natsOptions *o = tls_options();
    OK(natsOptions_LoadCertificatesChain(o, pki("client.pem"), pki("client.key")));
    natsConnection *nc = connect_with(o);
    natsSubscription *s = sub_sync(nc, "cf.tls");
    flush(nc);
    char buf[32];
    for (int i = 0; i < 10; i++) {
        snprintf(buf, sizeof(buf), "tls-%d", i);
        pub(nc, "cf.tls", buf);
    }
    for (int i = 0; i < 10; i++) {
        snprintf(buf, sizeof(buf), "tls-%d", i);
        natsMsg *m = next_msg(s, "message");
        check_str("payload", text(m), buf);
        natsMsg_Destroy(m);
    }
    natsConnection *without = NULL;
    natsStatus st = natsConnection_Connect(&without, tls_options());
    if (st == NATS_OK && natsConnection_FlushTimeout(without, 2000) == NATS_OK)
        FAILF("connected without a client certificate");
    return 0;
}

/* The first line of a file, as a static string. */
static const char *first_line(const char *path) {
    static char buf[256];
    FILE *f = fopen(path, "r");
    if (!f || !fgets(buf, sizeof(buf), f)) FAILF("cannot read %s", path);
    fclose(f);
    buf[strcspn(buf, "\r\n")] = 0;
    return buf;
}

static int nkeys(void) {
    natsOptions *o = options();
    OK(natsOptions_SetNKeyFromSeed(o, first_line(pki("user.pub")), pki("user.seed")));
    natsConnection *nc = connect_with(o);
    natsSubscription *s = sub_sync(nc, "cf.nkeys");
    flush(nc);
    pub(nc, "cf.nkeys", "signed");
    natsMsg *m = next_msg(s, "message");
    check_str("payload", text(m), "signed");
    natsMsg_Destroy(m);
    o = options();
    OK(natsOptions_SetNKeyFromSeed(o, first_line(pki("stranger.pub")), pki("stranger.seed")));
    expect_auth_failure("an unknown nkey", o);
    return 0;
}

static atomic_int async_errors;
static void on_error(natsConnection *nc, natsSubscription *s, natsStatus err, void *c) {
    (void)nc;
    (void)s;
    (void)c;
    printf("async error: %s\n", natsStatus_GetText(err));
    atomic_fetch_add(&async_errors, 1);
}

static int verbose_pedantic(void) {
    natsOptions *o = options();
    OK(natsOptions_SetVerbose(o, true));
    OK(natsOptions_SetPedantic(o, true));
    OK(natsOptions_SetErrorHandler(o, on_error, NULL));
    natsConnection *nc = connect_with(o);
    start_responder(nc, "cf.svc");
    natsSubscription *s = sub_sync(nc, "cf.vp");
    flush(nc);
    char buf[16];
    for (int i = 0; i < 10; i++) {
        snprintf(buf, sizeof(buf), "%d", i);
        pub(nc, "cf.vp", buf);
    }
    flush(nc);
    for (int i = 0; i < 10; i++) {
        snprintf(buf, sizeof(buf), "%d", i);
        check_str("payload", text(next_msg(s, "message")), buf);
    }
    natsMsg *r = NULL;
    OK(natsConnection_RequestString(&r, nc, "cf.svc", "q", WAIT));
    check_str("reply", text(r), "re:q");
    flush(nc);
    CHECK_INT("connection status", natsConnection_Status(nc), NATS_CONN_STATUS_CONNECTED);
    CHECK_INT("async errors", atomic_load(&async_errors), 0);
    /* Pedantic: the server refuses a wildcard publish subject. */
    pub(nc, "cf.vp.*", "x");
    natsConnection_FlushTimeout(nc, WAIT);
    const char *txt = NULL;
    for (int i = 0; i < WAIT / 10; i++) {
        natsConnection_GetLastError(nc, &txt);
        if (txt && strcasestr(txt, "invalid publish subject")) return 0;
        nats_Sleep(10);
    }
    FAILF("after publishing to cf.vp.*: last error \"%s\", expected 'Invalid Publish Subject'", txt ? txt : "");
}

static void pattern(char *p, int n, int seed) {
    for (int i = 0; i < n; i++) p[i] = (char)((i * 31 + seed) & 0xff);
}

static int large_payload(void) {
    natsConnection *nc = conn(), *pc = conn();
    natsSubscription *s = sub_sync(nc, "cf.large");
    flush(nc);
    int sizes[3] = {512 * 1024, 768 * 1024 + 7, MIB};
    char *want[3];
    for (int i = 0; i < 3; i++) {
        want[i] = malloc(sizes[i]);
        pattern(want[i], sizes[i], i);
        OK(natsConnection_Publish(pc, "cf.large", want[i], sizes[i]));
    }
    flush(pc);
    for (int i = 0; i < 3; i++) {
        natsMsg *m = next_msg(s, "large payload");
        CHECK_INT("payload length", natsMsg_GetDataLength(m), sizes[i]);
        const char *d = natsMsg_GetData(m);
        for (int j = 0; j < sizes[i]; j++)
            if (d[j] != want[i][j])
                FAILF("payload of %d bytes differs at byte %d: saw %d, expected %d", sizes[i], j,
                      (unsigned char)d[j], (unsigned char)want[i][j]);
        natsMsg_Destroy(m);
    }
    return 0;
}

#define MANY 10000
static atomic_int many_got[MANY];
static atomic_int many_count;

static void many_cb(natsConnection *nc, natsSubscription *s, natsMsg *m, void *closure) {
    (void)nc;
    (void)s;
    int i = (int)(intptr_t)closure;
    if (atoi(text(m)) == i && atomic_fetch_add(&many_got[i], 1) == 0) atomic_fetch_add(&many_count, 1);
    natsMsg_Destroy(m);
}

static int many_subscriptions(void) {
    natsOptions *o = options();
    /* A thread per subscription otherwise. */
    OK(natsOptions_UseGlobalMessageDelivery(o, true));
    natsConnection *nc = connect_with(o);
    static natsSubscription *subs[MANY];
    char subj[32];
    for (int i = 0; i < MANY; i++) {
        snprintf(subj, sizeof(subj), "cf.many.%d", i);
        OK(natsConnection_Subscribe(&subs[i], nc, subj, many_cb, (void *)(intptr_t)i));
    }
    flush(nc);
    natsConnection *pc = conn();
    char buf[16];
    for (int i = 0; i < MANY; i++) {
        snprintf(subj, sizeof(subj), "cf.many.%d", i);
        snprintf(buf, sizeof(buf), "%d", i);
        pub(pc, subj, buf);
    }
    flush(pc);
    for (int k = 0; k < 2000 && atomic_load(&many_count) < MANY; k++) nats_Sleep(10);
    CHECK_INT("subscriptions that got their own message", atomic_load(&many_count), MANY);
    for (int i = 0; i < MANY; i++) OK(natsSubscription_Unsubscribe(subs[i]));
    natsSubscription *watch = sub_sync(nc, "cf.many.>");
    flush(nc);
    pub(pc, "cf.many.7", "again");
    flush(pc);
    check_str("wildcard after unsubscribing all", text(next_msg(watch, "cf.many.>")), "again");
    CHECK_INT("deliveries to cf.many.7", atomic_load(&many_got[7]), 1);
    return 0;
}

static char *texts(natsSubscription *s) {
    static char out[512];
    natsMsg *got[8];
    int n = collect(s, 300, got, 8);
    out[0] = 0;
    for (int i = 0; i < n && i < 8; i++) {
        strcat(out, text(got[i]));
        strcat(out, " ");
    }
    return out;
}

static int no_echo(void) {
    natsOptions *o = options();
    OK(natsOptions_SetNoEcho(o, true));
    natsConnection *quiet = connect_with(o), *loud = conn();
    natsSubscription *q = sub_sync(quiet, "cf.echo"), *l = sub_sync(loud, "cf.echo");
    flush(quiet);
    flush(loud);
    pub(quiet, "cf.echo", "from-quiet");
    flush(quiet);
    pub(loud, "cf.echo", "from-loud");
    flush(loud);
    check_str("echo-off connection got", texts(q), "from-loud ");
    check_str("echo-on connection got", texts(l), "from-quiet from-loud ");
    return 0;
}

static int burst(void) {
    enum { SMALL = 50000, BIG = 500 };
    natsConnection *nc = conn(), *other = conn();
    natsSubscription *own = sub_sync(nc, "cf.burst"), *far = sub_sync(other, "cf.burst");
    /* Room for the whole burst: the default is 65,536 messages. */
    OK(natsSubscription_SetPendingLimits(own, -1, -1));
    OK(natsSubscription_SetPendingLimits(far, -1, -1));
    flush(nc);
    flush(other);
    char *big = malloc(64 * 1024);
    pattern(big, 64 * 1024, 9);
    char buf[32];
    for (int i = 0; i < SMALL; i++) {
        snprintf(buf, sizeof(buf), "%d", i);
        pub(nc, "cf.burst", buf);
    }
    for (int i = 0; i < BIG; i++) OK(natsConnection_Publish(nc, "cf.burst", big, 64 * 1024));
    OK(natsConnection_FlushTimeout(nc, 30000));
    natsSubscription *subs[2] = {own, far};
    const char *names[2] = {"same connection", "other connection"};
    for (int k = 0; k < 2; k++) {
        for (int i = 0; i < SMALL; i++) {
            natsMsg *m = next_msg(subs[k], names[k]);
            snprintf(buf, sizeof(buf), "%d", i);
            if (strcmp(text(m), buf) != 0) FAILF("%s: message %d: saw \"%s\", expected \"%s\"", names[k], i, text(m), buf);
            natsMsg_Destroy(m);
        }
        for (int i = 0; i < BIG; i++) {
            natsMsg *m = next_msg(subs[k], names[k]);
            if (natsMsg_GetDataLength(m) != 64 * 1024 || memcmp(natsMsg_GetData(m), big, 64 * 1024) != 0)
                FAILF("%s: 64 KiB message %d differs (%d bytes)", names[k], i, natsMsg_GetDataLength(m));
            natsMsg_Destroy(m);
        }
    }
    return 0;
}

static int subjects(void) {
    static char long_subj[2048];
    strcpy(long_subj, "cf.subj");
    for (int i = 0; i < 64; i++) {
        char tok[32];
        snprintf(tok, sizeof(tok), ".tok%02d-abcdefghij", i);
        strcat(long_subj, tok);
    }
    const char *subj[3] = {long_subj, "cf.subj.ünïcødé.日本語", "cf.subj.a-b_c.x:y.~z.=eq"};
    const char *reply[3] = {"cf.reply.long", "cf.reply.ünï.日本", "cf.reply.a-b_c.x:y.~z.=eq"};
    natsConnection *nc = conn(), *pc = conn();
    natsSubscription *all = sub_sync(nc, "cf.subj.>"), *exact[3];
    for (int i = 0; i < 3; i++) exact[i] = sub_sync(nc, subj[i]);
    flush(nc);
    for (int i = 0; i < 3; i++) OK(natsConnection_PublishRequestString(pc, subj[i], reply[i], subj[i]));
    flush(pc);
    for (int i = 0; i < 3; i++) {
        natsSubscription *which[2] = {exact[i], all};
        const char *kind[2] = {"exact", "cf.subj.>"};
        for (int k = 0; k < 2; k++) {
            natsMsg *m = next_msg(which[k], kind[k]);
            check_str(kind[k], natsMsg_GetSubject(m), subj[i]);
            check_str("reply", natsMsg_GetReply(m), reply[i]);
            check_str("payload", text(m), subj[i]);
        }
    }
    return 0;
}

static int keepalive(void) {
    natsOptions *o = options();
    OK(natsOptions_SetPingInterval(o, 100));
    OK(natsOptions_SetMaxPingsOut(o, 2));
    OK(natsOptions_SetDisconnectedCB(o, on_disconnected, NULL));
    OK(natsOptions_SetErrorHandler(o, on_error, NULL));
    natsConnection *nc = connect_with(o);
    natsSubscription *s = sub_sync(nc, "cf.keepalive");
    flush(nc);
    nats_Sleep(1500);
    CHECK_INT("disconnects while pinging", atomic_load(&disconnected_flag), 0);
    CHECK_INT("async errors while pinging", atomic_load(&async_errors), 0);
    CHECK_INT("connection status", natsConnection_Status(nc), NATS_CONN_STATUS_CONNECTED);
    pub(nc, "cf.keepalive", "still here");
    check_str("message after pinging", text(next_msg(s, "message after pinging")), "still here");
    return 0;
}

static int control_line(void) {
    natsOptions *o = options();
    OK(natsOptions_SetDisconnectedCB(o, on_disconnected, NULL));
    OK(natsOptions_SetClosedCB(o, on_closed, NULL));
    natsConnection *nc = connect_with(o);
    char *subj = malloc(5010);
    strcpy(subj, "cf.");
    memset(subj + 3, 'x', 5000);
    subj[5003] = 0;
    OK(natsConnection_PublishString(nc, subj, "x"));
    natsConnection_FlushTimeout(nc, WAIT);
    wait_flag(&closed_flag, WAIT, "the connection closed");
    CHECK_INT("disconnected", atomic_load(&disconnected_flag), 1);
    const char *txt = NULL;
    natsStatus st = natsConnection_GetLastError(nc, &txt);
    if (!txt || !strcasestr(txt, "maximum control line exceeded"))
        FAILF("last error: saw %s \"%s\", expected 'maximum control line exceeded'", natsStatus_GetText(st), txt ? txt : "");
    return 0;
}

static jsCtx *jetstream_of(natsConnection *nc) {
    jsCtx *js = NULL;
    jsOptions o;
    OK(jsOptions_Init(&o));
    o.Wait = WAIT;
    OK(natsConnection_JetStream(&js, nc, &o));
    return js;
}

static int jetstream(void) {
    natsConnection *nc = conn();
    jsCtx *js = jetstream_of(nc);
    jsErrCode jerr = 0;
    jsStreamConfig cfg;
    jsStreamInfo *si = NULL;
    const char *subjects[] = {"cf.js.>"};
    OK(jsStreamConfig_Init(&cfg));
    cfg.Name = "CF";
    cfg.Subjects = subjects;
    cfg.SubjectsLen = 1;
    cfg.Storage = js_FileStorage;
    OK(js_AddStream(&si, js, &cfg, NULL, &jerr));
    jsStreamInfo_Destroy(si);
    for (int i = 1; i <= 10; i++) {
        char subject[32], payload[32], what[32];
        jsPubAck *ack = NULL;
        snprintf(subject, sizeof subject, "cf.js.%d", i);
        snprintf(payload, sizeof payload, "msg %d", i);
        OK(js_Publish(&ack, js, subject, payload, (int)strlen(payload), NULL, &jerr));
        snprintf(what, sizeof what, "PubAck %d stream", i);
        check_str(what, ack->Stream, "CF");
        snprintf(what, sizeof what, "PubAck %d sequence", i);
        CHECK_INT(what, ack->Sequence, i);
        snprintf(what, sizeof what, "PubAck %d duplicate", i);
        CHECK_INT(what, ack->Duplicate, false);
        jsPubAck_Destroy(ack);
    }
    for (int round = 0; round < 2; round++) {
        jsPubOptions po;
        jsPubAck *ack = NULL;
        OK(jsPubOptions_Init(&po));
        po.MsgId = "cf-1";
        OK(js_Publish(&ack, js, "cf.js.dup", "dup", 3, &po, &jerr));
        CHECK_INT(round ? "second Nats-Msg-Id publish: sequence" : "first Nats-Msg-Id publish: sequence", ack->Sequence, 11);
        CHECK_INT(round ? "second Nats-Msg-Id publish: duplicate" : "first Nats-Msg-Id publish: duplicate", ack->Duplicate, round == 1);
        jsPubAck_Destroy(ack);
    }
    natsMsg *m = NULL;
    OK(js_GetMsg(&m, js, "CF", 5, NULL, &jerr));
    check_str("message 5 subject", natsMsg_GetSubject(m), "cf.js.5");
    check_str("message 5 payload", text(m), "msg 5");
    natsMsg_Destroy(m);
    OK(js_GetStreamInfo(&si, js, "CF", NULL, &jerr));
    CHECK_INT("messages in stream", si->State.Msgs, 11);
    jsStreamInfo_Destroy(si);
    OK(js_PurgeStream(js, "CF", NULL, &jerr));
    OK(js_GetStreamInfo(&si, js, "CF", NULL, &jerr));
    CHECK_INT("messages after purge", si->State.Msgs, 0);
    jsStreamInfo_Destroy(si);
    OK(js_DeleteStream(js, "CF", NULL, &jerr));
    si = NULL;
    jerr = 0;
    CHECK_STATUS("stream info after delete", js_GetStreamInfo(&si, js, "CF", NULL, &jerr), NATS_NOT_FOUND);
    CHECK_INT("stream info after delete (error code)", jerr, JSStreamNotFoundErr);
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
    return 0;
}

static int kv(void) {
    natsConnection *nc = conn();
    jsCtx *js = jetstream_of(nc);
    kvStore *store = NULL;
    kvEntry *e = NULL;
    kvConfig cfg;
    uint64_t rev = 0;
    natsStatus st;
    OK(kvConfig_Init(&cfg));
    cfg.Bucket = "CF";
    OK(js_CreateKeyValue(&store, js, &cfg));
    OK(kvStore_PutString(&rev, store, "colour", "red"));
    CHECK_INT("put colour=red", rev, 1);
    OK(kvStore_Get(&e, store, "colour"));
    check_str("get colour", kvEntry_ValueString(e), "red");
    CHECK_INT("get colour revision", kvEntry_Revision(e), 1);
    kvEntry_Destroy(e);
    st = kvStore_CreateString(&rev, store, "colour", "green");
    if (st == NATS_OK) FAILF("create on an existing key: saw revision %llu, expected an error", (unsigned long long)rev);
    OK(kvStore_UpdateString(&rev, store, "colour", "blue", 1));
    CHECK_INT("update colour=blue at revision 1", rev, 2);
    st = kvStore_UpdateString(&rev, store, "colour", "grey", 1);
    if (st == NATS_OK) FAILF("update at a stale revision: saw revision %llu, expected an error", (unsigned long long)rev);
    OK(kvStore_Get(&e, store, "colour"));
    check_str("get colour", kvEntry_ValueString(e), "blue");
    CHECK_INT("get colour revision", kvEntry_Revision(e), 2);
    kvEntry_Destroy(e);
    OK(kvStore_Delete(store, "colour"));
    e = NULL;
    CHECK_STATUS("get after delete", kvStore_Get(&e, store, "colour"), NATS_NOT_FOUND);
    kvStore_Destroy(store);
    OK(js_DeleteKeyValue(js, "CF"));
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
    return 0;
}

/* n messages from a pull subscription, in as many fetches as it takes (a
 * fetch may return fewer than asked for); out has room for n. */
static void fetch(natsSubscription *sub, int n, natsMsg **out, const char *what) {
    int got = 0;
    int64_t deadline = nats_Now() + WAIT;
    while (got < n) {
        int64_t left = deadline - nats_Now();
        if (left <= 0) FAILF("%s: %d of %d messages after %d ms", what, got, n, WAIT);
        natsMsgList list = {0};
        jsErrCode jerr = 0;
        natsStatus st = natsSubscription_Fetch(&list, sub, n - got, left, &jerr);
        if (st == NATS_TIMEOUT) FAILF("%s: %d of %d messages after %d ms", what, got, n, WAIT);
        if (st != NATS_OK) FAILF("%s: %s (error code %d)", what, natsStatus_GetText(st), (int)jerr);
        for (int k = 0; k < list.Count && got < n; k++) {
            out[got++] = list.Msgs[k];
            list.Msgs[k] = NULL; /* kept: not destroyed with the list */
        }
        natsMsgList_Destroy(&list);
    }
}

/* Message i of stream CF ("msg <i>" on cf.js.<i>), delivered so often. */
static void check_delivery(const char *what, natsMsg *m, int i, int delivered) {
    char want[32], w[96];
    jsMsgMetaData *meta = NULL;
    snprintf(want, sizeof want, "cf.js.%d", i);
    snprintf(w, sizeof w, "%s subject", what);
    check_str(w, natsMsg_GetSubject(m), want);
    snprintf(want, sizeof want, "msg %d", i);
    snprintf(w, sizeof w, "%s payload", what);
    check_str(w, text(m), want);
    OK(natsMsg_GetMetaData(&meta, m));
    snprintf(w, sizeof w, "%s metadata: stream sequence", what);
    CHECK_INT(w, meta->Sequence.Stream, i);
    snprintf(w, sizeof w, "%s metadata: delivered", what);
    CHECK_INT(w, meta->NumDelivered, delivered);
    jsMsgMetaData_Destroy(meta);
}

static int js_consumers(void) {
    natsConnection *nc = conn();
    jsCtx *js = jetstream_of(nc);
    jsErrCode jerr = 0;
    jsStreamConfig cfg;
    jsStreamInfo *si = NULL;
    jsConsumerInfo *ci = NULL;
    jsSubOptions so;
    natsSubscription *pull = NULL, *redo = NULL, *ordered = NULL;
    natsMsg *msgs[5];
    char what[64];
    const char *subjects[] = {"cf.js.>"};
    OK(jsStreamConfig_Init(&cfg));
    cfg.Name = "CF";
    cfg.Subjects = subjects;
    cfg.SubjectsLen = 1;
    cfg.Storage = js_FileStorage;
    OK(js_AddStream(&si, js, &cfg, NULL, &jerr));
    jsStreamInfo_Destroy(si);
    for (int i = 1; i <= 10; i++) {
        char subject[32], payload[32];
        snprintf(subject, sizeof subject, "cf.js.%d", i);
        snprintf(payload, sizeof payload, "msg %d", i);
        OK(js_Publish(NULL, js, subject, payload, (int)strlen(payload), NULL, &jerr));
    }

    /* (a) a durable pull consumer, explicit acks, two batches of five. */
    OK(jsSubOptions_Init(&so));
    so.Stream = "CF";
    so.Config.AckPolicy = js_AckExplicit;
    OK(js_PullSubscribe(&pull, js, "cf.js.>", "PULL", NULL, &so, &jerr));
    for (int batch = 0; batch < 2; batch++) {
        snprintf(what, sizeof what, "PULL fetch %d", batch + 1);
        fetch(pull, 5, msgs, what);
        for (int k = 0; k < 5; k++) {
            int i = batch * 5 + k + 1;
            snprintf(what, sizeof what, "PULL message %d", i);
            check_delivery(what, msgs[k], i, 1);
            if (k == 4) OK(natsMsg_AckSync(msgs[k], NULL, &jerr));
            else OK(natsMsg_Ack(msgs[k], NULL));
            natsMsg_Destroy(msgs[k]);
        }
    }
    OK(js_GetConsumerInfo(&ci, js, "CF", "PULL", NULL, &jerr));
    CHECK_INT("PULL info: num_ack_pending", ci->NumAckPending, 0);
    CHECK_INT("PULL info: num_pending", ci->NumPending, 0);
    CHECK_INT("PULL info: ack floor stream sequence", ci->AckFloor.Stream, 10);
    jsConsumerInfo_Destroy(ci);

    /* (b) a nak'd message comes back, delivered a second time. The consumer
     * sees message 1 only: nats-server handles acks apart from pull
     * requests, so the second fetch may arrive before the nak. */
    OK(jsSubOptions_Init(&so));
    so.Stream = "CF";
    so.Config.AckPolicy = js_AckExplicit;
    OK(js_PullSubscribe(&redo, js, "cf.js.1", "REDO", NULL, &so, &jerr));
    fetch(redo, 1, msgs, "REDO fetch 1");
    check_delivery("REDO first delivery", msgs[0], 1, 1);
    OK(natsMsg_Nak(msgs[0], NULL));
    natsMsg_Destroy(msgs[0]);
    fetch(redo, 1, msgs, "REDO fetch 2");
    check_delivery("REDO after nak", msgs[0], 1, 2);
    OK(natsMsg_AckSync(msgs[0], NULL, &jerr));
    natsMsg_Destroy(msgs[0]);

    /* (c) an ordered (push) consumer gets the whole stream in order. */
    OK(jsSubOptions_Init(&so));
    so.Ordered = true;
    OK(js_SubscribeSync(&ordered, js, "cf.js.>", NULL, &so, &jerr));
    for (int i = 1; i <= 10; i++) {
        char want[32];
        snprintf(what, sizeof what, "ordered message %d", i);
        natsMsg *m = next_msg(ordered, what);
        snprintf(want, sizeof want, "cf.js.%d", i);
        check_str(what, natsMsg_GetSubject(m), want);
        snprintf(want, sizeof want, "msg %d", i);
        check_str(what, text(m), want);
        natsMsg_Destroy(m);
    }
    OK(natsSubscription_Unsubscribe(ordered));

    /* (d) a deleted consumer is gone. */
    OK(js_DeleteConsumer(js, "CF", "PULL", NULL, &jerr));
    ci = NULL;
    jerr = 0;
    CHECK_STATUS("consumer info after delete", js_GetConsumerInfo(&ci, js, "CF", "PULL", NULL, &jerr), NATS_NOT_FOUND);
    CHECK_INT("consumer info after delete (error code)", jerr, JSConsumerNotFoundErr);
    OK(js_DeleteStream(js, "CF", NULL, &jerr));
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
    return 0;
}

/* A watcher's next entry (NULL: the initial values are done). */
static kvEntry *next_update(kvWatcher *w, const char *what) {
    kvEntry *e = NULL;
    natsStatus st = kvWatcher_Next(&e, w, WAIT);
    if (st == NATS_TIMEOUT) FAILF("%s: nothing after %d ms", what, WAIT);
    if (st != NATS_OK) FAILF("%s: %s", what, natsStatus_GetText(st));
    return e;
}

static void check_entry(const char *what, kvEntry *e, const char *key, const char *value, kvOperation op) {
    char w[96];
    if (e == NULL) FAILF("%s: saw the end of the initial values, expected %s=%s", what, key, value);
    snprintf(w, sizeof w, "%s: key", what);
    check_str(w, kvEntry_Key(e), key);
    snprintf(w, sizeof w, "%s: value", what);
    check_str(w, kvEntry_ValueString(e), value);
    snprintf(w, sizeof w, "%s: operation", what);
    CHECK_INT(w, kvEntry_Operation(e), op);
    kvEntry_Destroy(e);
}

static int compare_strings(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int kv_watch(void) {
    natsConnection *nc = conn();
    jsCtx *js = jetstream_of(nc);
    kvStore *store = NULL;
    kvWatcher *w = NULL;
    kvEntry *e = NULL;
    kvConfig cfg;
    kvKeysList keys = {0};
    kvEntryList history = {0};
    OK(kvConfig_Init(&cfg));
    cfg.Bucket = "CF";
    cfg.History = 5;
    OK(js_CreateKeyValue(&store, js, &cfg));
    OK(kvStore_PutString(NULL, store, "a", "1"));
    OK(kvStore_PutString(NULL, store, "b", "2"));
    OK(kvStore_PutString(NULL, store, "a", "3"));
    OK(kvStore_WatchAll(&w, store, NULL));
    check_entry("watch: first initial value", next_update(w, "watch: first initial value"), "b", "2", kvOp_Put);
    check_entry("watch: second initial value", next_update(w, "watch: second initial value"), "a", "3", kvOp_Put);
    e = next_update(w, "watch: end of initial values");
    if (e != NULL)
        FAILF("watch: saw %s=%s, expected the end of the initial values (NULL)", kvEntry_Key(e), kvEntry_ValueString(e));
    OK(kvStore_PutString(NULL, store, "c", "4"));
    check_entry("watch: update", next_update(w, "watch: update"), "c", "4", kvOp_Put);
    OK(kvStore_Keys(&keys, store, NULL));
    qsort(keys.Keys, keys.Count, sizeof(char *), compare_strings);
    char joined[64] = "";
    for (int i = 0; i < keys.Count; i++)
        snprintf(joined + strlen(joined), sizeof joined - strlen(joined), "%s%s", i ? "," : "", keys.Keys[i]);
    check_str("keys", joined, "a,b,c");
    kvKeysList_Destroy(&keys);
    OK(kvStore_History(&history, store, "a", NULL));
    CHECK_INT("history of a: count", history.Count, 2);
    check_str("history of a: first", kvEntry_ValueString(history.Entries[0]), "1");
    check_str("history of a: second", kvEntry_ValueString(history.Entries[1]), "3");
    kvEntryList_Destroy(&history);
    OK(kvStore_Delete(store, "b"));
    check_entry("watch: delete", next_update(w, "watch: delete"), "b", "", kvOp_Delete);
    OK(kvWatcher_Stop(w));
    kvWatcher_Destroy(w);
    kvStore_Destroy(store);
    OK(js_DeleteKeyValue(js, "CF"));
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
    return 0;
}

/* libnats 3.4.1 has no object store API. */
static int object_store(void) {
    printf("n/a %s: libnats 3.4.1 has no object store API\n", scenario);
    return 77;
}

struct scenario {
    const char *name;
    int (*run)(void);
};

static const struct scenario scenarios[] = {
    {"connect_info", connect_info},
    {"pub_sub", pub_sub},
    {"wildcards", wildcards},
    {"queue_groups", queue_groups},
    {"request_reply", request_reply},
    {"no_responders", no_responders},
    {"headers", headers},
    {"auto_unsubscribe", auto_unsubscribe},
    {"drain", drain},
    {"flush_ping", flush_ping},
    {"max_payload", max_payload},
    {"reconnect", reconnect},
    {"cluster_failover", cluster_failover},
    {"slow_consumer", slow_consumer},
    {"auth_user_pass", auth_user_pass},
    {"auth_token", auth_token},
    {"tls", tls},
    {"nkeys", nkeys},
    {"verbose_pedantic", verbose_pedantic},
    {"large_payload", large_payload},
    {"many_subscriptions", many_subscriptions},
    {"no_echo", no_echo},
    {"burst", burst},
    {"subjects", subjects},
    {"keepalive", keepalive},
    {"control_line", control_line},
    {"jetstream", jetstream},
    {"kv", kv},
    {"js_consumers", js_consumers},
    {"kv_watch", kv_watch},
    {"object_store", object_store},
};

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: c-conformance <scenario>   (server at $NATS_URL)\n");
        return 2;
    }
    scenario = argv[1];
    if (getenv("NATS_URL")) url = getenv("NATS_URL");
    for (size_t i = 0; i < sizeof(scenarios) / sizeof(scenarios[0]); i++) {
        if (strcmp(scenarios[i].name, scenario) == 0) {
            int rc = scenarios[i].run();
            if (rc == 0) printf("ok %s\n", scenario);
            fflush(stdout);
            /* Skip libnats' teardown: connections are left open on purpose. */
            _exit(rc);
        }
    }
    printf("unknown scenario %s\n", scenario);
    return 2;
}
