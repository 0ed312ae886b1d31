package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cdcrelay/cdcrelay/bench/internal/procfs"
	"github.com/cdcrelay/cdcrelay/bench/internal/report"
	"github.com/cdcrelay/cdcrelay/bench/internal/sut"
	"github.com/cdcrelay/cdcrelay/bench/poller"
)

// benchLockID is the advisory lock both systems' leaders take.
const benchLockID = 0x62656e6368

// system is a consumer of the outbox under test, run as replicas.
type system interface {
	name() string
	// consumes is false for the no-consumer baseline.
	consumes() bool
	// prepare readies a fresh session's database.
	prepare(ctx context.Context, s *session) error
	// start adds a replica; the first one started waits until it leads.
	start(ctx context.Context, s *session, waitLead bool) (*sut.Proc, error)
	// leader returns the replica that leads now.
	leader(ctx context.Context, s *session) (*sut.Proc, error)
	// replicas are the replicas started and not yet stopped or killed.
	replicas() []*sut.Proc
	// forget drops a killed replica.
	forget(p *sut.Proc)
	stop() error
}

// group is the replica bookkeeping shared by the real systems.
type group struct {
	procs []*sut.Proc
	n     int
}

func (g *group) replicas() []*sut.Proc { return g.procs }

func (g *group) forget(p *sut.Proc) {
	for i, q := range g.procs {
		if q == p {
			g.procs = append(g.procs[:i], g.procs[i+1:]...)
			return
		}
	}
}

func (g *group) stop() error {
	var errs []error
	for _, p := range g.procs {
		if err := p.Stop(30 * time.Second); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", p.Name, err))
		}
	}
	g.procs = nil
	return errors.Join(errs...)
}

// owner maps the leader's Postgres session (its client port) to a replica.
func (g *group) owner(port int) (*sut.Proc, error) {
	pids := make([]int, len(g.procs))
	for i, p := range g.procs {
		pids[i] = p.PID()
	}
	pid, err := procfs.PortOwner(port, pids)
	if err != nil {
		return nil, err
	}
	for _, p := range g.procs {
		if p.PID() == pid {
			return p, nil
		}
	}
	return nil, fmt.Errorf("no replica with pid %d", pid)
}

// noConsumer is the ceiling: writers with nobody reading the outbox.
type noConsumer struct{ group }

func (*noConsumer) name() string                                             { return report.None }
func (*noConsumer) consumes() bool                                           { return false }
func (*noConsumer) prepare(context.Context, *session) error                  { return nil }
func (*noConsumer) start(context.Context, *session, bool) (*sut.Proc, error) { return nil, nil }
func (*noConsumer) leader(context.Context, *session) (*sut.Proc, error) {
	return nil, errors.New("no consumer")
}

// relaySystem runs the cdcrelay binary.
type relaySystem struct {
	group
	bin   string
	extra []string
	env   *env
	// atomic runs it with --atomic-transactions, on a stream that allows
	// atomic batches.
	atomic bool
	// addrs are the replicas' --metrics-addr (where /debug/pprof is).
	addrs map[*sut.Proc]string
}

func (*relaySystem) consumes() bool                          { return true }
func (*relaySystem) prepare(context.Context, *session) error { return nil }

func (r *relaySystem) name() string {
	if r.atomic {
		return report.RelayAtomic
	}
	return report.Relay
}

// atomicTwin is the same relay in atomic mode.
func (r *relaySystem) atomicTwin() *relaySystem {
	return &relaySystem{bin: r.bin, extra: append(slices.Clone(r.extra), "--atomic-transactions"), env: r.env, atomic: true}
}

// diagnosticTwin is the same relay reporting its stage times in
// diagnostic headers, for the stage runs.
func (r *relaySystem) diagnosticTwin() *relaySystem {
	return &relaySystem{bin: r.bin, extra: append(slices.Clone(r.extra), "--diagnostic-headers"), env: r.env, atomic: r.atomic}
}

// needsAtomic reports whether sys needs a stream that allows atomic batches.
func needsAtomic(sys system) bool {
	r, ok := sys.(*relaySystem)
	return ok && r.atomic
}

func (r *relaySystem) slot(s *session) string { return "cdcrelay_" + s.db }

func (r *relaySystem) start(ctx context.Context, s *session, waitLead bool) (*sut.Proc, error) {
	r.n++
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	args := []string{"--log-level", "info", "run",
		// Replicas share the machine: each needs its own listener.
		"--metrics-addr", addr,
		"--database-url", s.url,
		"--nats-url", r.env.natsURL,
		"--stream", streamName,
		"--slot", r.slot(s),
		"--lock-id", strconv.Itoa(benchLockID),
		"--max-in-flight", strconv.Itoa(r.env.o.window),
		"--election-interval", "1s",
	}
	if r.env.o.profileDir != "" {
		args = append(args, "--pprof")
	}
	args = append(args, r.extra...)
	p, err := sut.Start(fmt.Sprintf("%s-relay-%d", s.db, r.n), r.bin, args, r.env.work)
	if err != nil {
		return nil, err
	}
	if r.addrs == nil {
		r.addrs = map[*sut.Proc]string{}
	}
	r.addrs[p] = addr
	r.procs = append(r.procs, p)
	if waitLead {
		return p, s.waitFlowing(ctx, p)
	}
	return p, nil
}

func (r *relaySystem) leader(ctx context.Context, s *session) (*sut.Proc, error) {
	var port int
	err := s.q.QueryRow(ctx, `SELECT a.client_port FROM pg_replication_slots r JOIN pg_stat_activity a ON a.pid = r.active_pid WHERE r.slot_name = $1`, r.slot(s)).Scan(&port)
	if err != nil {
		return nil, fmt.Errorf("find the walsender of the leader: %w", err)
	}
	return r.owner(port)
}

// pollerSystem runs the baseline poller, this binary in its poller mode.
type pollerSystem struct {
	group
	env *env
}

func (*pollerSystem) name() string   { return report.Poller }
func (*pollerSystem) consumes() bool { return true }

func (p *pollerSystem) prepare(ctx context.Context, s *session) error {
	c, err := s.q.Acquire(ctx)
	if err != nil {
		return err
	}
	defer c.Release()
	return poller.Install(ctx, c.Conn().PgConn())
}

func (p *pollerSystem) start(ctx context.Context, s *session, waitLead bool) (*sut.Proc, error) {
	p.n++
	name := fmt.Sprintf("%s-poller-%d", s.db, p.n)
	args := []string{"poller",
		"-database-url", s.url,
		"-nats-url", p.env.natsURL,
		"-lock-id", strconv.Itoa(benchLockID),
		"-batch", strconv.Itoa(p.env.o.window),
	}
	if p.env.o.profileDir != "" {
		args = append(args, "-cpuprofile", fmt.Sprintf("%s/%s.pprof", p.env.o.profileDir, name))
	}
	proc, err := sut.Start(name, p.env.self, args, p.env.work)
	if err != nil {
		return nil, err
	}
	p.procs = append(p.procs, proc)
	if waitLead {
		return proc, s.waitFlowing(ctx, proc)
	}
	return proc, nil
}

func (p *pollerSystem) leader(ctx context.Context, s *session) (*sut.Proc, error) {
	var port int
	err := s.q.QueryRow(ctx, `SELECT a.client_port FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
WHERE l.locktype = 'advisory' AND l.granted AND l.classid = $1 AND l.objid = $2 AND l.objsubid = 1`,
		uint32(benchLockID>>32), uint32(benchLockID&0xffffffff)).Scan(&port)
	if err != nil {
		return nil, fmt.Errorf("find the lock holder: %w", err)
	}
	return p.owner(port)
}

func tail(path string) string {
	b, err := readTail(path, 2000)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(b)
}
