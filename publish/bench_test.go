package publish_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/cdcrelay/cdcrelay/flow"
	"github.com/cdcrelay/cdcrelay/internal/natsserver"
	"github.com/cdcrelay/cdcrelay/publish"
)

// BenchmarkPipeline publishes b.N 256-byte events with one row header
// through a pipeline and waits for all of them to resolve: the relay's cost
// per event from Submit to the checkpoint's hand-off. allocs/op counts the
// whole process, the embedded server's too, unless CDCRELAY_BENCH_NATS_URL
// names a server in another process.
func BenchmarkPipeline(b *testing.B) {
	for _, batch := range []int{256, 1024, publish.DefaultMaxBatch, 8192} {
		b.Run(fmt.Sprint("batch=", batch), func(b *testing.B) { benchmarkPipeline(b, batch) })
	}
}

func benchmarkPipeline(b *testing.B, maxBatch int) {
	url := os.Getenv("CDCRELAY_BENCH_NATS_URL")
	if url == "" {
		srv, err := natsserver.Start(natsserver.Options{StoreDir: b.TempDir()})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(srv.Stop)
		url = srv.URL()
	}
	nc, js := connect(b, url, nats.ReconnectBufSize(-1))
	ctx := context.Background()
	name := fmt.Sprintf("bench%d", time.Now().UnixNano())
	if _, err := publish.EnsureStream(ctx, js, publish.StreamConfig{Name: name, Subjects: []string{name + ".>"}}); err != nil {
		b.Fatal(err)
	}
	defer func() { _ = js.DeleteStream(ctx, name) }()
	p, err := publish.New(nc, publish.Config{Stream: name, MaxBatch: maxBatch})
	if err != nil {
		b.Fatal(err)
	}
	if err := p.Start(ctx); err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	evs := events(b, b.N, func(int) string { return name + ".orders.created" })
	for _, ev := range evs {
		ev.Payload = make([]byte, 256)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]flow.Item, 0, 4096)
		for n := 0; n < len(evs); {
			items, err := p.Resolved(ctx, buf[:0])
			if err != nil {
				return
			}
			n += len(items)
			p.Release(len(items))
		}
	}()
	b.ReportAllocs()
	b.ResetTimer()
	cpu0, srv0 := cpuTime(), serverCPU(b)
	for _, ev := range evs {
		if err := p.Submit(ctx, flow.Item{Event: ev}, time.Time{}); err != nil {
			b.Fatal(err)
		}
	}
	p.Flush()
	<-done
	b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(b.N), "cpu-µs/event")
	if srv0 >= 0 {
		b.ReportMetric(float64((serverCPU(b)-srv0).Microseconds())/float64(b.N), "nats-cpu-µs/event")
	}
}

// serverCPU is the CPU the nats-server process CDCRELAY_BENCH_NATS_PID has
// used, from /proc; -1 without one.
func serverCPU(b *testing.B) time.Duration {
	pid := os.Getenv("CDCRELAY_BENCH_NATS_PID")
	if pid == "" {
		return -1
	}
	stat, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		b.Fatal(err)
	}
	// Fields after the command's closing parenthesis; utime and stime are
	// the 14th and 15th of the whole line, in clock ticks (100 Hz).
	f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+2:]))
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * 10 * time.Millisecond
}

// cpuTime is the user and system CPU this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
