package publish_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/cdcrelay/cdcrelay/internal/natsserver"
	"github.com/cdcrelay/cdcrelay/internal/testenv"
	"github.com/cdcrelay/cdcrelay/publish"
)

func startCluster(t *testing.T) *natsserver.Cluster {
	t.Helper()
	c, err := natsserver.StartCluster(t.TempDir(), 3)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Stop)
	return c
}

// streamLeader is the node that leads the stream now.
func streamLeader(t *testing.T, c *natsserver.Cluster, js jetstream.JetStream, stream string) *natsserver.Server {
	t.Helper()
	var leader *natsserver.Server
	testenv.Eventually(t, 30*time.Second, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		s, err := js.Stream(ctx, stream)
		if err != nil {
			return err
		}
		if ci := s.CachedInfo().Cluster; ci != nil && ci.Leader != "" {
			if leader = c.Node(ci.Leader); leader != nil {
				return nil
			}
		}
		return errors.New("stream has no leader")
	})
	return leader
}

// The node that leads an R3 stream dies for 10 s in the middle of a run and
// comes back: the pipeline must publish again within seconds of the cluster
// serving, and the stream hold every event once, in order. Events come in
// three parts: before the outage, during it, and after the node is back.
func TestStreamLeaderNodeDiesAndReturns(t *testing.T) {
	c := startCluster(t)
	f := newFixtureOn(t, c.URL(), nil,
		publish.Config{MaxInFlight: 4096, AckTimeout: time.Second, MinBackoff: 20 * time.Millisecond, MaxBackoff: 500 * time.Millisecond},
		jetstream.StreamConfig{Name: "bus", Subjects: []string{"a.>"}, Storage: jetstream.FileStorage, Replicas: 3})
	const n = 24000
	evs := events(t, n, func(i int) string { return fmt.Sprintf("a.s%d", i%7) })
	before, during := n*4/10, n*7/10
	submitAll(t, f.pipe, evs[:before])
	waitResolved(t, f, 2000) // a busy pipeline: many publishes in flight when the node dies

	leader := streamLeader(t, c, f.js, "bus")
	t.Logf("stopping %s, the stream's leader (client on %s), at %d resolved", leader.Name(), f.nc.ConnectedServerName(), len(f.resolvedItems()))
	leader.Stop()
	submitted := make(chan error, 1)
	go func() { submitted <- submit(f.pipe, evs[before:during]) }()
	<-time.After(10 * time.Second) // the outage itself, not a synchronisation
	if err := leader.Start(); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitJetStream(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	t.Logf("%s back at %d resolved (client on %s)", leader.Name(), len(f.resolvedItems()), f.nc.ConnectedServerName())
	go func() {
		if err := <-submitted; err != nil {
			submitted <- err
			return
		}
		submitted <- submit(f.pipe, evs[during:])
	}()
	testenv.Eventually(t, 30*time.Second, func() error {
		if got := len(f.resolvedItems()); got < n {
			return fmt.Errorf("%d of %d resolved 30 s after the node came back: %+v; last retries: %q",
				got, n, statsOf(f.pipe), f.lastRetries(5))
		}
		return nil
	})
	if err := <-submitted; err != nil {
		t.Fatal(err)
	}
	checkMessages(t, readStream(t, f.js, "bus"), evs)
	t.Logf("stats %+v", statsOf(f.pipe))
}

// readStream reads every message of a stream by sequence, retrying while
// the cluster settles (a consumer right after a leader change can stall).
func readStream(t *testing.T, js jetstream.JetStream, name string) []testenv.Msg {
	t.Helper()
	var out []testenv.Msg
	testenv.Eventually(t, time.Minute, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		s, err := js.Stream(ctx, name)
		if err != nil {
			return err
		}
		st := s.CachedInfo().State
		for seq := max(st.FirstSeq, uint64(len(out))+1); seq <= st.LastSeq; seq++ {
			m, err := s.GetMsg(ctx, seq)
			if err != nil {
				return fmt.Errorf("message %d: %w", seq, err)
			}
			out = append(out, testenv.Msg{Seq: m.Sequence, Subject: m.Subject, Data: m.Data, Header: m.Header, ID: m.Header.Get(jetstream.MsgIDHeader)})
		}
		return nil
	})
	return out
}
