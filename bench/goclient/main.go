// The same pub and pubsub runs as natrix-bench, written on the official Go
// client (nats.go) the way `nats bench` is, to check that natrix-bench is
// not the bottleneck: against the same server it should reach at least the
// rates this does. Built in GOPATH mode on Debian's nats.go, as
// conformance/go is:
//
//	cd bench/goclient && GO111MODULE=off GOPATH=/usr/share/gocode go build -o /tmp/go-bench main.go
//	/tmp/go-bench -url nats://127.0.0.1:4222 -scenario pubsub -size 16 -msgs 1000000
//
// It prints one line: scenario, size, messages and rates.
package main

import (
	"flag"
	"fmt"
	"os"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
)

func main() {
	url := flag.String("url", nats.DefaultURL, "server")
	scenario := flag.String("scenario", "pubsub", "pub or pubsub")
	size := flag.Int("size", 128, "payload bytes")
	msgs := flag.Int("msgs", 1000000, "messages")
	subject := flag.String("subject", "natrix.bench", "subject")
	flag.Parse()

	var received int64
	done := make(chan time.Time, 1)
	if *scenario == "pubsub" {
		sc, err := nats.Connect(*url)
		check(err)
		defer sc.Close()
		sub, err := sc.Subscribe(*subject, func(*nats.Msg) {
			if atomic.AddInt64(&received, 1) == int64(*msgs) {
				done <- time.Now()
			}
		})
		check(err)
		check(sub.SetPendingLimits(-1, -1))
		check(sc.Flush())
	}
	pc, err := nats.Connect(*url)
	check(err)
	defer pc.Close()
	payload := make([]byte, *size)
	start := time.Now()
	for i := 0; i < *msgs; i++ {
		check(pc.Publish(*subject, payload))
	}
	check(pc.Flush())
	pubSecs := time.Since(start).Seconds()
	line := fmt.Sprintf("go %s %d B: pub %d msgs %.2fM/s", *scenario, *size, *msgs, float64(*msgs)/pubSecs/1e6)
	if *scenario == "pubsub" {
		select {
		case end := <-done:
			line += fmt.Sprintf("  sub %.2fM/s", float64(*msgs)/end.Sub(start).Seconds()/1e6)
		case <-time.After(10 * time.Second):
			line += fmt.Sprintf("  sub got only %d", atomic.LoadInt64(&received))
		}
	}
	fmt.Println(line)
}

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "go-bench:", err)
		os.Exit(1)
	}
}
