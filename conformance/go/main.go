// The Go client's side of natrix's conformance suite.
//
// Runs one scenario of conformance/scenarios with the official Go client,
// nats.go (Debian golang-github-nats-io-go-nats-dev, built in GOPATH mode),
// against the server at $NATS_URL:
//
//	go-conformance <scenario>
//
// It starts no server: conformance/run does, and reads the exit code (0 pass,
// 1 fail, 77 not applicable to this client, 2 unknown scenario). On failure it
// prints what the client saw and what it expected.
package main

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
)

const wait = 5 * time.Second

var url = "nats://127.0.0.1:4222"

type failure string

func fail(format string, args ...interface{}) { panic(failure(fmt.Sprintf(format, args...))) }

func check(what string, saw, expected interface{}) {
	if !reflect.DeepEqual(saw, expected) {
		fail("%s: saw %#v, expected %#v", what, saw, expected)
	}
}

func ensure(cond bool, format string, args ...interface{}) {
	if !cond {
		fail(format, args...)
	}
}

func must(err error, what string) {
	if err != nil {
		fail("%s: %v", what, err)
	}
}

func connect(opts ...nats.Option) *nats.Conn {
	opts = append([]nats.Option{nats.Timeout(2 * time.Second), nats.NoReconnect()}, opts...)
	nc, err := nats.Connect(url, opts...)
	must(err, "connect to "+url)
	return nc
}

func subSync(nc *nats.Conn, subject string) *nats.Subscription {
	s, err := nc.SubscribeSync(subject)
	must(err, "subscribe "+subject)
	return s
}

func next(s *nats.Subscription, what string) *nats.Msg {
	m, err := s.NextMsg(wait)
	if err == nats.ErrTimeout {
		fail("%s: nothing after %v", what, wait)
	}
	must(err, what)
	return m
}

func collect(s *nats.Subscription, quiet time.Duration) []*nats.Msg {
	var out []*nats.Msg
	for {
		m, err := s.NextMsg(quiet)
		if err != nil {
			return out
		}
		out = append(out, m)
	}
}

func flush(nc *nats.Conn) { must(nc.FlushTimeout(wait), "flush") }

func pub(nc *nats.Conn, subject, data string) {
	must(nc.Publish(subject, []byte(data)), "publish "+subject)
}

func serverCtl(v string) {
	cmd := os.Getenv(v)
	ensure(cmd != "", "$%s is not set", v)
	c := exec.Command("sh", "-c", cmd)
	c.Stdout, c.Stderr = os.Stdout, os.Stderr
	must(c.Run(), cmd)
}

func waitFor(ch <-chan struct{}, d time.Duration, what string) {
	select {
	case <-ch:
	case <-time.After(d):
		fail("expected %s within %v, it did not happen", what, d)
	}
}

// signal returns a channel closed by the first call of the returned func.
func signal() (chan struct{}, func()) {
	ch := make(chan struct{})
	var once sync.Once
	return ch, func() { once.Do(func() { close(ch) }) }
}

// ---- scenarios ---------------------------------------------------------------

func connectInfo() {
	nc := connect()
	check("server version", nc.ConnectedServerVersion(), "2.9.10")
	check("max_payload", nc.MaxPayload(), int64(1048576))
	check("headers supported", nc.HeadersSupported(), true)
	ensure(nc.ConnectedServerId() != "", "server id is empty")
	ensure(nc.AuthRequired() == false, "auth_required: saw true, expected false")
	ensure(nc.IsConnected(), "not connected")
	cid, err := nc.GetClientID()
	must(err, "client id")
	ensure(cid > 0, "client id: saw %d, expected > 0", cid)
	flush(nc)
	nc.Close()
	check("closed", nc.IsClosed(), true)
}

func pubSub() {
	nc, pc := connect(), connect()
	s := subSync(nc, "cf.pubsub")
	flush(nc)
	for i := 0; i < 100; i++ {
		pub(pc, "cf.pubsub", fmt.Sprintf("msg-%d", i))
	}
	pub(pc, "cf.pubsub", "")
	flush(pc)
	for i := 0; i < 100; i++ {
		m := next(s, fmt.Sprintf("message %d", i))
		check("subject", m.Subject, "cf.pubsub")
		check("payload", string(m.Data), fmt.Sprintf("msg-%d", i))
		check("reply", m.Reply, "")
	}
	check("empty payload length", len(next(s, "empty message").Data), 0)
}

func subjects(ms []*nats.Msg) []string {
	out := []string{}
	for _, m := range ms {
		out = append(out, m.Subject)
	}
	return out
}

func wildcards() {
	nc := connect()
	starB := subSync(nc, "cf.wc.*.b")
	aStar := subSync(nc, "cf.wc.a.*")
	full := subSync(nc, "cf.wc.>")
	flush(nc)
	for _, s := range []string{"cf.wc.a.b", "cf.wc.x.b", "cf.wc.a.c", "cf.wc.a.b.c", "cf.other"} {
		pub(nc, s, s)
	}
	flush(nc)
	q := 300 * time.Millisecond
	check("cf.wc.*.b got", subjects(collect(starB, q)), []string{"cf.wc.a.b", "cf.wc.x.b"})
	check("cf.wc.a.* got", subjects(collect(aStar, q)), []string{"cf.wc.a.b", "cf.wc.a.c"})
	check("cf.wc.> got", subjects(collect(full, q)), []string{"cf.wc.a.b", "cf.wc.x.b", "cf.wc.a.c", "cf.wc.a.b.c"})
}

func queueGroups() {
	nc := connect()
	var members []*nats.Subscription
	for i := 0; i < 3; i++ {
		s, err := nc.QueueSubscribeSync("cf.queue", "workers")
		must(err, "queue subscribe")
		members = append(members, s)
	}
	plain := subSync(nc, "cf.queue")
	flush(nc)
	pc := connect()
	for i := 0; i < 300; i++ {
		pub(pc, "cf.queue", strconv.Itoa(i))
	}
	flush(pc)
	var seen, per []int
	want := []int{}
	for i := 0; i < 300; i++ {
		want = append(want, i)
	}
	for _, m := range members {
		got := collect(m, 300*time.Millisecond)
		per = append(per, len(got))
		for _, x := range got {
			v, _ := strconv.Atoi(string(x.Data))
			seen = append(seen, v)
		}
	}
	sort.Ints(seen)
	check("messages across the group (each exactly once)", seen, want)
	ensure(per[0] > 0 && per[1] > 0 && per[2] > 0, "every member should get some of 300 messages, saw %v", per)
	check("plain subscriber count", len(collect(plain, 300*time.Millisecond)), 300)
}

func responder(nc *nats.Conn, subject string) {
	_, err := nc.Subscribe(subject, func(m *nats.Msg) {
		m.Respond(append([]byte("re:"), m.Data...))
	})
	must(err, "subscribe responder")
	flush(nc)
}

func requestReply() {
	responder(connect(), "cf.svc")
	nc := connect()
	for i := 0; i < 10; i++ {
		r, err := nc.Request("cf.svc", []byte(fmt.Sprintf("new-%d", i)), wait)
		must(err, "request")
		check("new-style reply", string(r.Data), fmt.Sprintf("re:new-%d", i))
	}
	var wg sync.WaitGroup
	replies := make([]string, 20)
	errs := make([]error, 20)
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			r, err := nc.Request("cf.svc", []byte(fmt.Sprintf("par-%d", i)), wait)
			errs[i] = err
			if err == nil {
				replies[i] = string(r.Data)
			}
		}(i)
	}
	wg.Wait()
	for i := 0; i < 20; i++ {
		must(errs[i], "parallel request")
		check("parallel reply", replies[i], fmt.Sprintf("re:par-%d", i))
	}
	// Old style: a fresh inbox subscription per request.
	oc := connect(nats.UseOldRequestStyle())
	for i := 0; i < 10; i++ {
		r, err := oc.Request("cf.svc", []byte(fmt.Sprintf("old-%d", i)), wait)
		must(err, "old-style request")
		check("old-style reply", string(r.Data), fmt.Sprintf("re:old-%d", i))
	}
}

func noResponders() {
	for _, old := range []bool{false, true} {
		nc := connect()
		if old {
			nc = connect(nats.UseOldRequestStyle())
		}
		start := time.Now()
		_, err := nc.Request("cf.nobody", []byte("x"), wait)
		ensure(errors.Is(err, nats.ErrNoResponders), "request error (old style %v): saw %v, expected %v", old, err, nats.ErrNoResponders)
		ensure(time.Since(start) < 2*time.Second, "no-responders should come at once, took %v", time.Since(start))
	}
}

func headers() {
	nc := connect()
	s := subSync(nc, "cf.headers")
	flush(nc)
	m := nats.NewMsg("cf.headers")
	m.Header.Set("X-Conf", "one")
	m.Header.Add("X-Multi", "a")
	m.Header.Add("X-Multi", "b")
	m.Data = []byte("body")
	must(nc.PublishMsg(m), "publish with headers")
	pub(nc, "cf.headers", "plain")
	only := nats.NewMsg("cf.headers")
	only.Header.Set("X-Only", "headers")
	must(nc.PublishMsg(only), "publish headers only")

	got := next(s, "message with headers")
	check("X-Conf", got.Header.Get("X-Conf"), "one")
	check("X-Multi", got.Header.Values("X-Multi"), []string{"a", "b"})
	check("payload", string(got.Data), "body")
	got = next(s, "plain message")
	check("plain message headers", len(got.Header), 0)
	check("plain payload", string(got.Data), "plain")
	got = next(s, "headers-only message")
	check("X-Only", got.Header.Get("X-Only"), "headers")
	check("headers-only payload length", len(got.Data), 0)
}

func autoUnsubscribe() {
	nc := connect()
	s := subSync(nc, "cf.auto")
	must(s.AutoUnsubscribe(5), "auto-unsubscribe")
	flush(nc)
	for i := 0; i < 10; i++ {
		pub(nc, "cf.auto", strconv.Itoa(i))
	}
	flush(nc)
	var got []string
	for _, m := range collect(s, 500*time.Millisecond) {
		got = append(got, string(m.Data))
	}
	check("messages before auto-unsubscribe", got, []string{"0", "1", "2", "3", "4"})
	check("subscription valid", s.IsValid(), false)
}

func drain() {
	closed, onClosed := signal()
	nc := connect(nats.ClosedHandler(func(*nats.Conn) { onClosed() }))
	pc := connect()
	var mu sync.Mutex
	var got, gotOther []string
	_, err := nc.Subscribe("cf.drain", func(m *nats.Msg) {
		time.Sleep(time.Millisecond)
		mu.Lock()
		got = append(got, string(m.Data))
		mu.Unlock()
	})
	must(err, "subscribe")
	other, err := nc.Subscribe("cf.drain.sub", func(m *nats.Msg) {
		mu.Lock()
		gotOther = append(gotOther, string(m.Data))
		mu.Unlock()
	})
	must(err, "subscribe")
	flush(nc)
	var want []string
	for i := 0; i < 200; i++ {
		pub(pc, "cf.drain", strconv.Itoa(i))
		pub(pc, "cf.drain.sub", strconv.Itoa(i))
		want = append(want, strconv.Itoa(i))
	}
	flush(pc)
	must(other.Drain(), "subscription drain")
	deadline := time.Now().Add(wait)
	for other.IsValid() && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	ensure(!other.IsValid(), "drained subscription still valid after %v", wait)
	mu.Lock()
	check("messages on the drained subscription", len(gotOther), 200)
	mu.Unlock()
	must(nc.Drain(), "connection drain")
	waitFor(closed, 15*time.Second, "the connection closed after drain")
	mu.Lock()
	check("messages delivered by drain", got, want)
	mu.Unlock()
	check("publish after drain", nc.Publish("cf.after", []byte("x")), nats.ErrConnectionClosed)
}

func flushPing() {
	nc := connect()
	s := subSync(nc, "cf.flush")
	flush(nc)
	for i := 0; i < 1000; i++ {
		pub(nc, "cf.flush", strconv.Itoa(i))
	}
	start := time.Now()
	flush(nc)
	ensure(time.Since(start) < 2*time.Second, "flush took %v", time.Since(start))
	for i := 0; i < 1000; i++ {
		check("payload", string(next(s, fmt.Sprintf("message %d after flush", i)).Data), strconv.Itoa(i))
	}
	for i := 0; i < 10; i++ {
		flush(nc)
	}
	rtt, err := nc.RTT()
	must(err, "rtt")
	ensure(rtt > 0 && rtt < 2*time.Second, "rtt: saw %v, expected between 0 and 2 s", rtt)
}

func maxPayload() {
	nc := connect()
	check("max_payload", nc.MaxPayload(), int64(1048576))
	s := subSync(nc, "cf.max")
	flush(nc)
	check("publish of max_payload + 1 bytes", nc.Publish("cf.max", make([]byte, 1048577)), nats.ErrMaxPayload)
	must(nc.Publish("cf.max", bytes.Repeat([]byte("y"), 1048576)), "publish of max_payload bytes")
	flush(nc)
	check("payload length", len(next(s, "max_payload message").Data), 1048576)
	pub(nc, "cf.max", "still open")
	check("after", string(next(s, "message after").Data), "still open")
}

func reconnect() {
	disconnected, onDisconnect := signal()
	reconnected, onReconnect := signal()
	nc, err := nats.Connect(url,
		nats.Timeout(2*time.Second),
		nats.ReconnectWait(100*time.Millisecond),
		nats.MaxReconnects(-1),
		nats.DisconnectErrHandler(func(*nats.Conn, error) { onDisconnect() }),
		nats.ReconnectHandler(func(*nats.Conn) { onReconnect() }))
	must(err, "connect")
	s := subSync(nc, "cf.reconnect")
	flush(nc)
	pub(nc, "cf.reconnect", "before")
	check("before restart", string(next(s, "message before restart").Data), "before")
	serverCtl("CONFORMANCE_SERVER_STOP")
	waitFor(disconnected, 10*time.Second, "a disconnect")
	for i := 0; i < 10; i++ {
		pub(nc, "cf.reconnect", fmt.Sprintf("buffered-%d", i))
	}
	serverCtl("CONFORMANCE_SERVER_START")
	waitFor(reconnected, 10*time.Second, "a reconnect")
	for i := 0; i < 10; i++ {
		check("buffered message", string(next(s, fmt.Sprintf("buffered message %d", i)).Data), fmt.Sprintf("buffered-%d", i))
	}
	pub(nc, "cf.reconnect", "after")
	check("after reconnect", string(next(s, "message after reconnect").Data), "after")
}

// clusterURLs are the members other than NATS_URL's server, from the runner.
func clusterURLs() []string {
	v := os.Getenv("CONFORMANCE_CLUSTER_URLS")
	ensure(v != "", "$CONFORMANCE_CLUSTER_URLS is not set (the runner starts a cluster for this scenario)")
	return strings.Split(v, ",")
}

// hostPorts turns server URLs into sorted host:port, whatever their scheme.
func hostPorts(urls []string) []string {
	out := make([]string, len(urls))
	for i, u := range urls {
		out[i] = strings.TrimPrefix(u, "nats://")
	}
	sort.Strings(out)
	return out
}

// untilCrossed publishes data on pc every 100 ms until s gets it: interest
// reaches the other servers of a cluster a moment after the subscription.
// Earlier probes still on their way are skipped.
func untilCrossed(pc *nats.Conn, s *nats.Subscription, data string) {
	deadline := time.Now().Add(wait)
	for {
		pub(pc, s.Subject, data)
		flush(pc)
		for {
			m, err := s.NextMsg(100 * time.Millisecond)
			if err != nil {
				break
			}
			if string(m.Data) == data {
				return
			}
		}
		ensure(time.Now().Before(deadline), "%s published by the second connection: nothing crossed the cluster after %v", data, wait)
	}
}

func clusterFailover() {
	others := clusterURLs()
	disconnected, onDisconnect := signal()
	reconnected, onReconnect := signal()
	nc, err := nats.Connect(url,
		nats.Timeout(2*time.Second),
		nats.ReconnectWait(100*time.Millisecond),
		nats.MaxReconnects(-1),
		nats.DisconnectErrHandler(func(*nats.Conn, error) { onDisconnect() }),
		nats.ReconnectHandler(func(*nats.Conn) { onReconnect() }))
	must(err, "connect")
	check("discovered servers", hostPorts(nc.DiscoveredServers()), hostPorts(others))
	s := subSync(nc, "cf.cluster")
	flush(nc)
	pc, err := nats.Connect(strings.Join(others, ","), nats.Timeout(2*time.Second))
	must(err, "connect to "+strings.Join(others, ","))
	untilCrossed(pc, s, "probe-before")
	serverCtl("CONFORMANCE_SERVER_STOP")
	waitFor(disconnected, 10*time.Second, "a disconnect")
	select {
	case <-reconnected:
	case <-time.After(10 * time.Second):
		fail("expected a reconnect within 10s, it did not happen; the client's servers then: %v", nc.Servers())
	}
	now := hostPorts([]string{nc.ConnectedUrl()})[0]
	ensure(strings.Contains(","+strings.Join(hostPorts(others), ",")+",", ","+now+","),
		"reconnected to %s, expected one of %v", now, others)
	untilCrossed(pc, s, "probe-after")
	for i := 0; i < 10; i++ {
		pub(pc, "cf.cluster", fmt.Sprintf("msg-%d", i))
	}
	flush(pc)
	for i := 0; i < 10; i++ {
		m := next(s, fmt.Sprintf("message %d after failover", i))
		for strings.HasPrefix(string(m.Data), "probe-") {
			m = next(s, fmt.Sprintf("message %d after failover", i))
		}
		check("message after failover", string(m.Data), fmt.Sprintf("msg-%d", i))
	}
	pc.Close()
	nc.Close()
}

// gatedDialer hands nats.go a connection whose reads wait while the gate is
// held, so the test can stop the client from reading its socket.
type gatedDialer struct{ gate *sync.RWMutex }

type gatedConn struct {
	net.Conn
	gate *sync.RWMutex
}

func (d gatedDialer) Dial(network, address string) (net.Conn, error) {
	c, err := net.DialTimeout(network, address, 2*time.Second)
	if err != nil {
		return nil, err
	}
	return &gatedConn{c, d.gate}, nil
}

func (c *gatedConn) Read(b []byte) (int, error) {
	c.gate.RLock()
	c.gate.RUnlock()
	return c.Conn.Read(b)
}

func slowConsumer() {
	gate := &sync.RWMutex{}
	disconnected, onDisconnect := signal()
	var events []string
	var mu sync.Mutex
	nc := connect(
		nats.SetCustomDialer(gatedDialer{gate}),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			mu.Lock()
			events = append(events, fmt.Sprintf("disconnected: %v", err))
			mu.Unlock()
			onDisconnect()
		}),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			mu.Lock()
			events = append(events, fmt.Sprintf("error: %v", err))
			mu.Unlock()
		}))
	_, err := nc.Subscribe("cf.slow", func(*nats.Msg) {})
	must(err, "subscribe")
	flush(nc)
	gate.Lock() // the subscriber stops reading
	pc := connect()
	chunk := bytes.Repeat([]byte("s"), 512*1024)
	for i := 0; i < 200; i++ {
		must(pc.Publish("cf.slow", chunk), "flood publish")
	}
	must(pc.FlushTimeout(30*time.Second), "publisher flush")
	time.Sleep(300 * time.Millisecond)
	gate.Unlock()
	select {
	case <-disconnected:
	case <-time.After(10 * time.Second):
		mu.Lock()
		defer mu.Unlock()
		fail("expected a disconnect (server closed the slow consumer) within 10 s, saw %v", events)
	}
}

func expectAuthError(what string, u string, opts ...nats.Option) {
	opts = append([]nats.Option{nats.Timeout(2 * time.Second), nats.NoReconnect()}, opts...)
	nc, err := nats.Connect(u, opts...)
	if err == nil {
		nc.Close()
		fail("%s was let in", what)
	}
	ensure(errors.Is(err, nats.ErrAuthorization), "%s: saw %v, expected %v", what, err, nats.ErrAuthorization)
}

func withCreds(creds string) string {
	return strings.Replace(url, "nats://", "nats://"+creds+"@", 1)
}

func authUserPass() {
	nc := connect(nats.UserInfo("alice", "s3cret"))
	check("auth_required", nc.AuthRequired(), true)
	flush(nc)
	nc, err := nats.Connect(withCreds("alice:s3cret"), nats.NoReconnect())
	must(err, "connect with credentials in the URL")
	flush(nc)
	expectAuthError("alice/wrong", url, nats.UserInfo("alice", "wrong"))
	expectAuthError("bob/s3cret", url, nats.UserInfo("bob", "s3cret"))
	expectAuthError("no credentials", url)
	expectAuthError("a wrong password in the URL", withCreds("alice:nope"))
}

func authToken() {
	nc := connect(nats.Token("t0ken"))
	check("auth_required", nc.AuthRequired(), true)
	flush(nc)
	nc, err := nats.Connect(withCreds("t0ken"), nats.NoReconnect())
	must(err, "connect with the token in the URL")
	flush(nc)
	expectAuthError("wrong token", url, nats.Token("wrong"))
	expectAuthError("no token", url)
}

// pki is a file conformance/run made in $CONFORMANCE_PKI (certificates, seeds).
func pki(name string) string { return filepath.Join(os.Getenv("CONFORMANCE_PKI"), name) }

func tlsScenario() {
	nc := connect(nats.RootCAs(pki("ca.pem")), nats.ClientCert(pki("client.pem"), pki("client.key")))
	check("tls_required", nc.TLSRequired(), true)
	s := subSync(nc, "cf.tls")
	flush(nc)
	for i := 0; i < 10; i++ {
		pub(nc, "cf.tls", fmt.Sprintf("tls-%d", i))
	}
	for i := 0; i < 10; i++ {
		check("payload", string(next(s, fmt.Sprintf("message %d", i)).Data), fmt.Sprintf("tls-%d", i))
	}
	without, err := nats.Connect(url, nats.Timeout(2*time.Second), nats.NoReconnect(), nats.RootCAs(pki("ca.pem")))
	if err == nil && without.FlushTimeout(2*time.Second) == nil {
		fail("connected without a client certificate")
	}
}

func nkeysScenario() {
	user, err := nats.NkeyOptionFromSeed(pki("user.seed"))
	must(err, "read user.seed")
	nc := connect(user)
	check("auth_required", nc.AuthRequired(), true)
	s := subSync(nc, "cf.nkeys")
	flush(nc)
	pub(nc, "cf.nkeys", "signed")
	check("payload", string(next(s, "message").Data), "signed")
	stranger, err := nats.NkeyOptionFromSeed(pki("stranger.seed"))
	must(err, "read stranger.seed")
	expectAuthError("an unknown nkey", url, stranger)
}

func verbosePedantic() {
	var asyncErrs int32
	nc := connect(func(o *nats.Options) error {
		o.Verbose = true
		o.Pedantic = true
		return nil
	}, nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		fmt.Println("async error:", err)
		atomic.AddInt32(&asyncErrs, 1)
	}))
	responder(nc, "cf.vp.svc")
	s := subSync(nc, "cf.vp")
	flush(nc)
	for i := 0; i < 10; i++ {
		pub(nc, "cf.vp", strconv.Itoa(i))
	}
	flush(nc)
	for i := 0; i < 10; i++ {
		check("payload", string(next(s, fmt.Sprintf("message %d", i)).Data), strconv.Itoa(i))
	}
	r, err := nc.Request("cf.vp.svc", []byte("q"), wait)
	must(err, "request")
	check("reply", string(r.Data), "re:q")
	flush(nc)
	check("connected", nc.IsConnected(), true)
	check("async errors", atomic.LoadInt32(&asyncErrs), int32(0))
	// Pedantic: the server refuses a wildcard publish subject.
	pub(nc, "cf.vp.*", "x")
	nc.FlushTimeout(wait)
	deadline := time.Now().Add(wait)
	for time.Now().Before(deadline) {
		if err := nc.LastError(); err != nil && strings.Contains(strings.ToLower(err.Error()), "invalid publish subject") {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	fail("after publishing to cf.vp.*: last error %v, expected 'Invalid Publish Subject'", nc.LastError())
}

func pattern(n, seed int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*31 + seed)
	}
	return b
}

func largePayload() {
	nc, pc := connect(), connect()
	s := subSync(nc, "cf.large")
	flush(nc)
	sizes := []int{512 * 1024, 768*1024 + 7, 1024 * 1024}
	for i, n := range sizes {
		must(pc.Publish("cf.large", pattern(n, i)), "publish large")
	}
	flush(pc)
	for i, n := range sizes {
		m := next(s, fmt.Sprintf("payload of %d bytes", n))
		check("payload length", len(m.Data), n)
		want := pattern(n, i)
		for j := range want {
			if m.Data[j] != want[j] {
				fail("payload of %d bytes differs at byte %d: saw %d, expected %d", n, j, m.Data[j], want[j])
			}
		}
	}
}

func manySubscriptions() {
	const n = 10000
	nc := connect()
	ch := make(chan *nats.Msg, 2*n)
	subs := make([]*nats.Subscription, n)
	for i := 0; i < n; i++ {
		s, err := nc.ChanSubscribe(fmt.Sprintf("cf.many.%d", i), ch)
		must(err, "subscribe")
		subs[i] = s
	}
	flush(nc)
	pc := connect()
	for i := 0; i < n; i++ {
		pub(pc, fmt.Sprintf("cf.many.%d", i), strconv.Itoa(i))
	}
	flush(pc)
	got := make(map[string]bool)
	deadline := time.After(20 * time.Second)
	for len(got) < n {
		select {
		case m := <-ch:
			check("message on "+m.Sub.Subject, "cf.many."+string(m.Data), m.Sub.Subject)
			got[m.Subject] = true
		case <-deadline:
			fail("subscriptions that got their message: saw %d, expected %d", len(got), n)
		}
	}
	for _, s := range subs {
		must(s.Unsubscribe(), "unsubscribe")
	}
	watch := subSync(nc, "cf.many.>")
	flush(nc)
	pub(pc, "cf.many.7", "again")
	flush(pc)
	check("wildcard after unsubscribing all", string(next(watch, "cf.many.>").Data), "again")
	select {
	case m := <-ch:
		fail("an unsubscribed subscription got %q on %s", m.Data, m.Subject)
	case <-time.After(100 * time.Millisecond):
	}
}

func texts(s *nats.Subscription) []string {
	out := []string{}
	for _, m := range collect(s, 300*time.Millisecond) {
		out = append(out, string(m.Data))
	}
	return out
}

func noEcho() {
	quiet, loud := connect(nats.NoEcho()), connect()
	q, l := subSync(quiet, "cf.echo"), subSync(loud, "cf.echo")
	flush(quiet)
	flush(loud)
	pub(quiet, "cf.echo", "from-quiet")
	flush(quiet)
	pub(loud, "cf.echo", "from-loud")
	flush(loud)
	check("echo-off connection got", texts(q), []string{"from-loud"})
	check("echo-on connection got", texts(l), []string{"from-quiet", "from-loud"})
}

func burst() {
	const small, bigN = 50000, 500
	nc, other := connect(), connect()
	own, far := subSync(nc, "cf.burst"), subSync(other, "cf.burst")
	flush(nc)
	flush(other)
	big := pattern(64*1024, 9)
	for i := 0; i < small; i++ {
		pub(nc, "cf.burst", strconv.Itoa(i))
	}
	for i := 0; i < bigN; i++ {
		must(nc.Publish("cf.burst", big), "publish 64 KiB")
	}
	must(nc.FlushTimeout(30*time.Second), "flush")
	for _, x := range []struct {
		name string
		sub  *nats.Subscription
	}{{"same connection", own}, {"other connection", far}} {
		for i := 0; i < small; i++ {
			m := next(x.sub, fmt.Sprintf("%s: small message %d", x.name, i))
			if string(m.Data) != strconv.Itoa(i) {
				fail("%s: message %d: saw %q, expected %q", x.name, i, m.Data, strconv.Itoa(i))
			}
		}
		for i := 0; i < bigN; i++ {
			m := next(x.sub, fmt.Sprintf("%s: 64 KiB message %d", x.name, i))
			ensure(bytes.Equal(m.Data, big), "%s: 64 KiB message %d differs (%d bytes)", x.name, i, len(m.Data))
		}
	}
}

func oddSubjects() [][2]string {
	var toks []string
	for i := 0; i < 64; i++ {
		toks = append(toks, fmt.Sprintf("tok%02d-abcdefghij", i))
	}
	return [][2]string{
		{"cf.subj." + strings.Join(toks, "."), "cf.reply.long"},
		{"cf.subj.ünïcødé.日本語", "cf.reply.ünï.日本"},
		{"cf.subj.a-b_c.x:y.~z.=eq", "cf.reply.a-b_c.x:y.~z.=eq"},
	}
}

func subjectsScenario() {
	nc, pc := connect(), connect()
	all := subSync(nc, "cf.subj.>")
	var exact []*nats.Subscription
	for _, sr := range oddSubjects() {
		exact = append(exact, subSync(nc, sr[0]))
	}
	flush(nc)
	for _, sr := range oddSubjects() {
		must(pc.PublishRequest(sr[0], sr[1], []byte(sr[0])), "publish "+sr[0])
	}
	flush(pc)
	for k, sr := range oddSubjects() {
		for _, x := range []struct {
			kind string
			sub  *nats.Subscription
		}{{"exact", exact[k]}, {"cf.subj.>", all}} {
			m := next(x.sub, x.kind+" subscription for "+sr[0])
			check(x.kind+": subject", m.Subject, sr[0])
			check(x.kind+": reply", m.Reply, sr[1])
			check(x.kind+": payload", string(m.Data), sr[0])
		}
	}
}

func keepalive() {
	var events []string
	var mu sync.Mutex
	note := func(e string) {
		mu.Lock()
		events = append(events, e)
		mu.Unlock()
	}
	nc := connect(nats.PingInterval(100*time.Millisecond), nats.MaxPingsOutstanding(2),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) { note(fmt.Sprintf("disconnected: %v", err)) }),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { note(fmt.Sprintf("error: %v", err)) }))
	s := subSync(nc, "cf.keepalive")
	flush(nc)
	time.Sleep(1500 * time.Millisecond)
	mu.Lock()
	check("events while pinging", len(events), 0)
	mu.Unlock()
	check("connected", nc.IsConnected(), true)
	pub(nc, "cf.keepalive", "still here")
	check("message after pinging", string(next(s, "message after pinging").Data), "still here")
	rtt, err := nc.RTT()
	must(err, "rtt")
	ensure(rtt < time.Second, "rtt: saw %v, expected under 1 s", rtt)
}

func controlLine() {
	closed, onClosed := signal()
	disconnected, onDisconnect := signal()
	nc := connect(nats.ClosedHandler(func(*nats.Conn) { onClosed() }),
		nats.DisconnectErrHandler(func(*nats.Conn, error) { onDisconnect() }))
	must(nc.Publish("cf."+strings.Repeat("x", 5000), []byte("x")), "publish")
	nc.FlushTimeout(wait)
	waitFor(closed, wait, "the connection closed")
	waitFor(disconnected, wait, "a disconnect")
	err := nc.LastError()
	ensure(err != nil && strings.Contains(strings.ToLower(err.Error()), "maximum control line exceeded"),
		"last error: saw %v, expected 'maximum control line exceeded'", err)
}

// apiErrorCode is the JetStream error code in err, or 0 when there is none.
func apiErrorCode(err error) int {
	var apiErr *nats.APIError
	if errors.As(err, &apiErr) {
		return int(apiErr.ErrorCode)
	}
	return 0
}

func jetstream() {
	nc := connect()
	js, err := nc.JetStream(nats.MaxWait(wait))
	must(err, "JetStream context")
	_, err = js.AddStream(&nats.StreamConfig{Name: "CF", Subjects: []string{"cf.js.>"}, Storage: nats.FileStorage})
	must(err, "create stream CF")
	for i := 1; i <= 10; i++ {
		ack, err := js.Publish(fmt.Sprintf("cf.js.%d", i), []byte(fmt.Sprintf("msg %d", i)))
		must(err, fmt.Sprintf("publish %d", i))
		check(fmt.Sprintf("PubAck %d", i), []interface{}{ack.Stream, ack.Sequence, ack.Duplicate}, []interface{}{"CF", uint64(i), false})
	}
	first, err := js.Publish("cf.js.dup", []byte("dup"), nats.MsgId("cf-1"))
	must(err, "first Nats-Msg-Id publish")
	check("first Nats-Msg-Id publish", []interface{}{first.Sequence, first.Duplicate}, []interface{}{uint64(11), false})
	again, err := js.Publish("cf.js.dup", []byte("dup"), nats.MsgId("cf-1"))
	must(err, "second Nats-Msg-Id publish")
	check("second Nats-Msg-Id publish", []interface{}{again.Sequence, again.Duplicate}, []interface{}{uint64(11), true})
	m, err := js.GetMsg("CF", 5)
	must(err, "get message 5")
	check("message 5", []string{m.Subject, string(m.Data)}, []string{"cf.js.5", "msg 5"})
	info, err := js.StreamInfo("CF")
	must(err, "stream info")
	check("messages in stream", info.State.Msgs, uint64(11))
	must(js.PurgeStream("CF"), "purge")
	info, err = js.StreamInfo("CF")
	must(err, "stream info after purge")
	check("messages after purge", info.State.Msgs, uint64(0))
	must(js.DeleteStream("CF"), "delete stream")
	_, err = js.StreamInfo("CF")
	ensure(errors.Is(err, nats.ErrStreamNotFound), "stream info after delete: saw %v, expected %v", err, nats.ErrStreamNotFound)
	check("stream info after delete (error code)", apiErrorCode(err), 10059)
	nc.Close()
}

func kv() {
	nc := connect()
	js, err := nc.JetStream(nats.MaxWait(wait))
	must(err, "JetStream context")
	store, err := js.CreateKeyValue(&nats.KeyValueConfig{Bucket: "CF"})
	must(err, "create bucket CF")
	rev, err := store.Put("colour", []byte("red"))
	must(err, "put colour=red")
	check("put colour=red", rev, uint64(1))
	e, err := store.Get("colour")
	must(err, "get colour")
	check("get colour", []interface{}{string(e.Value()), e.Revision()}, []interface{}{"red", uint64(1)})
	rev, err = store.Create("colour", []byte("green"))
	ensure(err != nil, "create on an existing key: saw revision %d, expected an error", rev)
	check("create on an existing key (error code)", apiErrorCode(err), 10071)
	rev, err = store.Update("colour", []byte("blue"), 1)
	must(err, "update colour=blue at revision 1")
	check("update colour=blue at revision 1", rev, uint64(2))
	rev, err = store.Update("colour", []byte("grey"), 1)
	ensure(err != nil, "update at a stale revision: saw revision %d, expected an error", rev)
	check("update at a stale revision (error code)", apiErrorCode(err), 10071)
	e, err = store.Get("colour")
	must(err, "get colour")
	check("get colour", []interface{}{string(e.Value()), e.Revision()}, []interface{}{"blue", uint64(2)})
	must(store.Delete("colour"), "delete colour")
	_, err = store.Get("colour")
	ensure(errors.Is(err, nats.ErrKeyNotFound), "get after delete: saw %v, expected %v", err, nats.ErrKeyNotFound)
	must(js.DeleteKeyValue("CF"), "delete bucket")
	nc.Close()
}

// fetch pulls n messages from a pull subscription, in as many fetches as
// the server needs (a fetch may return fewer than asked for).
func fetch(sub *nats.Subscription, n int, what string) []*nats.Msg {
	var out []*nats.Msg
	deadline := time.Now().Add(wait)
	for len(out) < n {
		left := time.Until(deadline)
		ensure(left > 0, "%s: %d of %d messages after %v", what, len(out), n, wait)
		ms, err := sub.Fetch(n-len(out), nats.MaxWait(left))
		if err == nats.ErrTimeout {
			fail("%s: %d of %d messages after %v", what, len(out), n, wait)
		}
		must(err, what)
		out = append(out, ms...)
	}
	return out
}

// checkDelivery checks a consumer's message i ("msg <i>" on cf.js.<i>) and
// its metadata: stream sequence i, delivered `delivered` times.
func checkDelivery(what string, m *nats.Msg, i int, delivered uint64) {
	check(what, []string{m.Subject, string(m.Data)}, []string{fmt.Sprintf("cf.js.%d", i), fmt.Sprintf("msg %d", i)})
	meta, err := m.Metadata()
	must(err, what+" metadata")
	check(what+" metadata (stream sequence, delivered)", []uint64{meta.Sequence.Stream, meta.NumDelivered}, []uint64{uint64(i), delivered})
}

func jsConsumers() {
	nc := connect()
	js, err := nc.JetStream(nats.MaxWait(wait))
	must(err, "JetStream context")
	_, err = js.AddStream(&nats.StreamConfig{Name: "CF", Subjects: []string{"cf.js.>"}, Storage: nats.FileStorage})
	must(err, "create stream CF")
	for i := 1; i <= 10; i++ {
		_, err := js.Publish(fmt.Sprintf("cf.js.%d", i), []byte(fmt.Sprintf("msg %d", i)))
		must(err, fmt.Sprintf("publish %d", i))
	}

	// (a) a durable pull consumer, explicit acks, two batches of five.
	pull, err := js.PullSubscribe("cf.js.>", "PULL", nats.BindStream("CF"), nats.AckExplicit())
	must(err, "create pull consumer PULL")
	for batch := 0; batch < 2; batch++ {
		ms := fetch(pull, 5, fmt.Sprintf("PULL fetch %d", batch+1))
		check(fmt.Sprintf("PULL fetch %d: messages", batch+1), len(ms), 5)
		for k, m := range ms {
			i := batch*5 + k + 1
			checkDelivery(fmt.Sprintf("PULL message %d", i), m, i, 1)
			if k == len(ms)-1 {
				must(m.AckSync(), fmt.Sprintf("PULL ack %d (sync)", i))
			} else {
				must(m.Ack(), fmt.Sprintf("PULL ack %d", i))
			}
		}
	}
	ci, err := js.ConsumerInfo("CF", "PULL")
	must(err, "consumer info PULL")
	check("PULL info (num_ack_pending, num_pending, ack floor stream sequence)",
		[]uint64{uint64(ci.NumAckPending), ci.NumPending, ci.AckFloor.Stream}, []uint64{0, 0, 10})

	// (b) a nak'd message comes back, delivered a second time. The consumer
	// sees message 1 only: nats-server handles acks apart from pull
	// requests, so the second fetch may arrive before the nak.
	redo, err := js.PullSubscribe("cf.js.1", "REDO", nats.BindStream("CF"), nats.AckExplicit())
	must(err, "create pull consumer REDO")
	m := fetch(redo, 1, "REDO fetch 1")[0]
	checkDelivery("REDO first delivery", m, 1, 1)
	must(m.Nak(), "REDO nak")
	m = fetch(redo, 1, "REDO fetch 2")[0]
	checkDelivery("REDO after nak", m, 1, 2)
	must(m.AckSync(), "REDO ack (sync)")

	// (c) an ordered (push) consumer gets the whole stream in order.
	ordered, err := js.SubscribeSync("cf.js.>", nats.OrderedConsumer())
	must(err, "ordered consumer")
	for i := 1; i <= 10; i++ {
		m := next(ordered, fmt.Sprintf("ordered message %d", i))
		check(fmt.Sprintf("ordered message %d", i), []string{m.Subject, string(m.Data)}, []string{fmt.Sprintf("cf.js.%d", i), fmt.Sprintf("msg %d", i)})
	}
	must(ordered.Unsubscribe(), "unsubscribe ordered consumer")

	// (d) a deleted consumer is gone.
	must(js.DeleteConsumer("CF", "PULL"), "delete consumer PULL")
	_, err = js.ConsumerInfo("CF", "PULL")
	ensure(errors.Is(err, nats.ErrConsumerNotFound), "consumer info after delete: saw %v, expected %v", err, nats.ErrConsumerNotFound)
	check("consumer info after delete (error code)", apiErrorCode(err), 10014)
	must(js.DeleteStream("CF"), "delete stream")
	nc.Close()
}

// nextUpdate is a watcher's next entry (nil: the initial values are done).
func nextUpdate(w nats.KeyWatcher, what string) nats.KeyValueEntry {
	select {
	case e := <-w.Updates():
		return e
	case <-time.After(wait):
		fail("%s: nothing after %v", what, wait)
	}
	return nil
}

func checkEntry(what string, e nats.KeyValueEntry, key, value string, op nats.KeyValueOp) {
	ensure(e != nil, "%s: saw the end of the initial values, expected %s=%s", what, key, value)
	check(what, []interface{}{e.Key(), string(e.Value()), e.Operation().String()}, []interface{}{key, value, op.String()})
}

func kvWatch() {
	nc := connect()
	js, err := nc.JetStream(nats.MaxWait(wait))
	must(err, "JetStream context")
	store, err := js.CreateKeyValue(&nats.KeyValueConfig{Bucket: "CF", History: 5})
	must(err, "create bucket CF")
	for _, kv := range [][2]string{{"a", "1"}, {"b", "2"}, {"a", "3"}} {
		_, err := store.Put(kv[0], []byte(kv[1]))
		must(err, "put "+kv[0]+"="+kv[1])
	}
	w, err := store.WatchAll()
	must(err, "watch all")
	checkEntry("watch: first initial value", nextUpdate(w, "watch: first initial value"), "b", "2", nats.KeyValuePut)
	checkEntry("watch: second initial value", nextUpdate(w, "watch: second initial value"), "a", "3", nats.KeyValuePut)
	if e := nextUpdate(w, "watch: end of initial values"); e != nil {
		fail("watch: saw %s=%s, expected the end of the initial values (nil)", e.Key(), e.Value())
	}
	_, err = store.Put("c", []byte("4"))
	must(err, "put c=4")
	checkEntry("watch: update", nextUpdate(w, "watch: update"), "c", "4", nats.KeyValuePut)
	keys, err := store.Keys()
	must(err, "keys")
	sort.Strings(keys)
	check("keys", keys, []string{"a", "b", "c"})
	history, err := store.History("a")
	must(err, "history of a")
	var values []string
	for _, e := range history {
		values = append(values, string(e.Value()))
	}
	check("history of a", values, []string{"1", "3"})
	must(store.Delete("b"), "delete b")
	checkEntry("watch: delete", nextUpdate(w, "watch: delete"), "b", "", nats.KeyValueDelete)
	must(w.Stop(), "stop watch")
	must(js.DeleteKeyValue("CF"), "delete bucket")
	nc.Close()
}

// bigObject is the object store scenario's big object: 5 MiB, byte i =
// (i*7) % 251.
func bigObject() []byte {
	b := make([]byte, 5*1024*1024)
	for i := range b {
		b[i] = byte(i * 7 % 251)
	}
	return b
}

// checkBytes compares every byte, naming the first that differs.
func checkBytes(what string, saw, expected []byte) {
	check(what+": length", len(saw), len(expected))
	for i := range saw {
		if saw[i] != expected[i] {
			fail("%s: byte %d: saw %d, expected %d", what, i, saw[i], expected[i])
		}
	}
}

func objectStore() {
	nc := connect()
	js, err := nc.JetStream(nats.MaxWait(wait))
	must(err, "JetStream context")
	store, err := js.CreateObjectStore(&nats.ObjectStoreConfig{Bucket: "CF", Storage: nats.FileStorage})
	must(err, "create object store CF")
	big := bigObject()
	_, err = store.PutBytes("big", big)
	must(err, "put big")
	_, err = store.PutBytes("small", []byte("hello"))
	must(err, "put small")
	// nats.go checks the SHA-256 digest once the last chunk is in.
	got, err := store.GetBytes("big")
	must(err, "get big")
	checkBytes("get big", got, big)
	info, err := store.GetInfo("big")
	must(err, "info big")
	// nats.go cuts objects into 128 KiB chunks.
	check("info big (size, chunks)", []uint64{info.Size, uint64(info.Chunks)}, []uint64{5242880, 40})
	list, err := store.List()
	must(err, "list")
	var names []string
	for _, o := range list {
		names = append(names, o.Name)
	}
	sort.Strings(names)
	check("list", names, []string{"big", "small"})
	_, err = store.PutBytes("small", []byte("hello again"))
	must(err, "put small again")
	got, err = store.GetBytes("small")
	must(err, "get small")
	check("get small after the second put", string(got), "hello again")
	must(store.Delete("big"), "delete big")
	got, err = store.GetBytes("big")
	ensure(errors.Is(err, nats.ErrObjectNotFound), "get big after delete: saw %d bytes and error %v, expected %v", len(got), err, nats.ErrObjectNotFound)
	must(js.DeleteObjectStore("CF"), "delete object store CF")
	nc.Close()
}

var scenarios = map[string]func(){
	"connect_info":       connectInfo,
	"pub_sub":            pubSub,
	"wildcards":          wildcards,
	"queue_groups":       queueGroups,
	"request_reply":      requestReply,
	"no_responders":      noResponders,
	"headers":            headers,
	"auto_unsubscribe":   autoUnsubscribe,
	"drain":              drain,
	"flush_ping":         flushPing,
	"max_payload":        maxPayload,
	"reconnect":          reconnect,
	"cluster_failover":   clusterFailover,
	"slow_consumer":      slowConsumer,
	"auth_user_pass":     authUserPass,
	"auth_token":         authToken,
	"verbose_pedantic":   verbosePedantic,
	"large_payload":      largePayload,
	"many_subscriptions": manySubscriptions,
	"no_echo":            noEcho,
	"burst":              burst,
	"subjects":           subjectsScenario,
	"keepalive":          keepalive,
	"control_line":       controlLine,
	"tls":                tlsScenario,
	"nkeys":              nkeysScenario,
	"jetstream":          jetstream,
	"kv":                 kv,
	"js_consumers":       jsConsumers,
	"kv_watch":           kvWatch,
	"object_store":       objectStore,
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: go-conformance <scenario>   (server at $NATS_URL)")
		os.Exit(2)
	}
	name := os.Args[1]
	if u := os.Getenv("NATS_URL"); u != "" {
		url = u
	}
	run, ok := scenarios[name]
	if !ok {
		fmt.Println("unknown scenario", name)
		os.Exit(2)
	}
	defer func() {
		if r := recover(); r != nil {
			if f, ok := r.(failure); ok {
				fmt.Printf("FAIL %s: %s\n", name, f)
			} else {
				fmt.Printf("FAIL %s: unexpected panic: %v\n", name, r)
			}
			os.Exit(1)
		}
		fmt.Println("ok", name)
		os.Exit(0)
	}()
	run()
}
