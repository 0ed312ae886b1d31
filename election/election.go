// Package election elects one leader among cdcrelay replicas: the holder of
// a session-level PostgreSQL advisory lock (pg_advisory_lock(bigint)) taken
// on a dedicated connection. Standbys wait on the lock, so the server hands
// it to one of them the moment the holder's session ends; the server
// releases it when that connection ends, so a killed leader frees it at
// once; TCP keepalives and tcp_user_timeout on both ends bound how long a
// partitioned leader can keep it, and the leader verifies its connection
// every Interval and gives up before the server would hand the lock to
// someone else.
//
// Failure detection, with the defaults (Interval 1s, KeepAlive 10s):
//
//   - leader process killed: the server sees the socket close and frees the
//     lock at once; a waiting standby has it at once.
//   - leader's backend terminated, or the server restarted: Lease.Lost fires
//     at the next verify, within one Interval; a waiting standby has the
//     lock as soon as the backend has exited.
//   - network partition: the leader's verify times out after KeepAlive/4,
//     so Lost fires within Interval+KeepAlive/4 (3.5s); its socket gives up
//     after KeepAlive/2 even inside a long Lease.Do. The server frees the
//     lock only about KeepAlive (10s) after it last heard from the leader,
//     and hands it to a waiting standby then.
//
// A waiting standby is an active backend blocked in a lock wait: it holds
// its connection (as a polling one did) and a lock-table entry, and each
// wait ends after at most Interval, and before the server's
// deadlock_timeout, so that its connection keeps being proved alive and the
// server neither runs its deadlock detector for it nor logs the wait.
package election

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/rs/zerolog"

	"github.com/cdcrelay/cdcrelay/internal/backoff"
)

// Log field names.
const (
	fieldFrom    = "from"
	fieldTo      = "to"
	fieldLockID  = "lock_id"
	fieldRetryIn = "retry_in"
)

// ErrBusy is returned by Acquire while another Acquire runs or a lease it
// returned is still held: an Elector leads at most once at a time.
var ErrBusy = errors.New("election: already acquiring or holding the lock")

// Elector takes and holds leadership for one process. Its methods are safe
// for concurrent use; it owns no goroutine of its own (a Lease owns one).
type Elector struct {
	cfg Config
	t   timings
	cc  *pgx.ConnConfig
	log zerolog.Logger

	state atomic.Int32 // a State, read without locking by State

	// mu serialises state transitions (and the observers they call) and
	// guards acquiring and lease.
	mu        sync.Mutex
	acquiring bool
	lease     *Lease // the lease whose end changes the state; nil if none

	obsMu     sync.Mutex
	observers []func(from, to State)
}

// New validates cfg, fills in its defaults and returns an Elector in
// StateUnhealthy: until Acquire has connected it could not take over.
func New(cfg Config, log zerolog.Logger) (*Elector, error) {
	cfg.setDefaults()
	base, err := cfg.validate()
	if err != nil {
		return nil, err
	}
	t := cfg.timings(base.ConnectTimeout)
	e := &Elector{
		cfg: cfg,
		t:   t,
		cc:  connConfig(base, cfg.Identity, t, cfg.WrapConn),
		log: log,
	}
	e.state.Store(int32(StateUnhealthy))
	return e, nil
}

// Config is the configuration in effect, defaults filled in.
func (e *Elector) Config() Config { return e.cfg }

// State is the current state; safe from any goroutine.
func (e *Elector) State() State { return State(e.state.Load()) }

// OnChange registers fn to be called on every state transition, in order,
// synchronously on the goroutine that causes it (Acquire's, the lease's
// verifier, Do's or Release's caller). fn must return quickly and must not
// call the Elector or a Lease, except State. Each transition is also logged.
func (e *Elector) OnChange(fn func(from, to State)) {
	e.obsMu.Lock()
	defer e.obsMu.Unlock()
	e.observers = append(e.observers, fn)
}

// Acquire blocks until this process holds the lock, and returns the lease,
// or until ctx ends. It keeps one connection open and waits on the lock
// there (StateStandby), so that it takes over the moment the holder's
// session ends, in waits of at most Interval that each prove the connection
// alive; when the connection fails it reconnects with capped exponential
// back-off and jitter (StateUnhealthy meanwhile). Errors a person must fix
// (authentication, missing database, a server too old for tcp_user_timeout)
// end it at once.
//
// The lease outlives ctx: end it with Release.
func (e *Elector) Acquire(ctx context.Context) (*Lease, error) {
	e.mu.Lock()
	if e.acquiring || e.lease != nil {
		e.mu.Unlock()
		return nil, ErrBusy
	}
	e.acquiring = true
	e.mu.Unlock()
	defer func() {
		e.mu.Lock()
		e.acquiring = false
		e.mu.Unlock()
	}()

	var conn *pgx.Conn
	var wait time.Duration // how long one waitLock on conn may wait
	defer func() {
		if conn != nil {
			// The lock goes with the connection, should ctx have ended
			// just as it was taken.
			closeConn(conn, e.t)
		}
	}()
	b := backoff.Backoff{Base: min(e.t.interval, e.t.maxBackoff), Limit: e.t.maxBackoff}
	retry := func(err error) bool {
		e.transition(nil, StateUnhealthy, err)
		wait := b.Next()
		e.log.Warn().Err(err).Int64(fieldLockID, e.cfg.LockID).Dur(fieldRetryIn, wait).Msg("election: lock connection failed")
		return backoff.Sleep(ctx, wait)
	}
	for {
		if conn == nil {
			c, w, err := connect(ctx, e.cc, e.t)
			switch {
			case ctx.Err() != nil:
				return nil, ctx.Err()
			case err != nil && !retryable(err):
				return nil, fmt.Errorf("lock connection: %w", err)
			case err != nil:
				if !retry(err) {
					return nil, ctx.Err()
				}
				continue
			}
			conn, wait = c, w
			e.transition(nil, StateStandby, nil)
		}
		ok, err := waitLock(ctx, conn, e.cfg.LockID, wait, e.t)
		switch {
		case ctx.Err() != nil:
			return nil, ctx.Err()
		case err != nil:
			closeConn(conn, e.t)
			conn = nil
			if !retryable(err) {
				return nil, fmt.Errorf("lock connection: %w", err)
			}
			if !retry(err) {
				return nil, ctx.Err()
			}
			continue
		}
		b.Reset()
		if ok {
			l := newLease(e, conn)
			conn = nil
			return l, nil
		}
	}
}

// transition moves to state to. With a lease, only while that lease is the
// current one, so a late end of an old lease cannot override a newer state;
// a lease moving away from leader stops being current.
func (e *Elector) transition(l *Lease, to State, cause error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if l != nil {
		switch {
		case to == StateLeader:
			e.lease = l
		case e.lease != l:
			return
		default:
			e.lease = nil
		}
	}
	from := State(e.state.Swap(int32(to)))
	if from == to {
		return
	}
	ev := e.log.Info()
	if to == StateUnhealthy {
		ev = e.log.Warn()
	}
	ev.Stringer(fieldFrom, from).Stringer(fieldTo, to).Int64(fieldLockID, e.cfg.LockID).Err(cause).Msg("election: state changed")
	e.obsMu.Lock()
	obs := append([]func(from, to State){}, e.observers...)
	e.obsMu.Unlock()
	for _, fn := range obs {
		fn(from, to)
	}
}

// closeConn ends a connection, bounded so that a dead network cannot hold
// up the caller: the server frees the lock either way. A connection pgx
// closed itself, when a statement's context ended, it waits for: pgx then
// sends a cancel request, so that the server has ended the statement (a
// standby's lock wait) by the time closeConn returns.
func closeConn(conn *pgx.Conn, t timings) {
	ctx, cancel := context.WithTimeout(context.Background(), t.verifyTimeout)
	defer cancel()
	_ = conn.Close(ctx)
	select {
	case <-conn.PgConn().CleanupDone():
	case <-ctx.Done():
	}
}
