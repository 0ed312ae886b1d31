package election

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// ErrLost is wrapped by Do's error once the lease is lost; Err tells why.
var ErrLost = errors.New("leadership lost")

// ErrReleased is the Err of a lease ended by Release.
var ErrReleased = errors.New("lease released")

// Lease is held leadership: the lock connection, holding the lock, and a
// verifier goroutine that checks every Interval that it still does.
type Lease struct {
	e        *Elector
	conn     *pgx.Conn
	acquired time.Time

	// sem is a one-token semaphore: whoever holds the token may use conn.
	// A channel rather than a mutex so that waiting for it can be abandoned.
	sem chan struct{}

	mu   sync.Mutex
	err  error // why the lease ended; set once, before lost is closed
	lost chan struct{}

	stop context.CancelFunc // stops the verifier
	done chan struct{}      // closed when the verifier has returned
}

func newLease(e *Elector, conn *pgx.Conn) *Lease {
	ctx, stop := context.WithCancel(context.Background())
	l := &Lease{
		e:        e,
		conn:     conn,
		acquired: time.Now(),
		sem:      make(chan struct{}, 1),
		lost:     make(chan struct{}),
		stop:     stop,
		done:     make(chan struct{}),
	}
	e.transition(l, StateLeader, nil)
	go l.verifier(ctx)
	return l
}

// Acquired is when this process took the lock.
func (l *Lease) Acquired() time.Time { return l.acquired }

// Lost is closed as soon as the lease ends: the lock connection failed or
// stopped holding the lock (found by the verifier every Interval, or by a
// Do), or Release was called. The leader must stop acting on it at once.
func (l *Lease) Lost() <-chan struct{} { return l.lost }

// Err is why the lease was lost (ErrReleased after Release), nil while held.
func (l *Lease) Err() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.err
}

// isLost reports whether the lease has ended: from the moment end records
// why, a moment before Lost is closed.
func (l *Lease) isLost() bool { return l.Err() != nil }

func (l *Lease) lostError() error { return fmt.Errorf("%w: %w", ErrLost, l.Err()) }

// end records why the lease ended, moves the elector out of StateLeader
// and then closes Lost, so that whoever sees Lost closed finds the new
// state; only the first call counts, and it reports whether it was the one.
func (l *Lease) end(cause error, to State) bool {
	l.mu.Lock()
	if l.err != nil {
		l.mu.Unlock()
		return false
	}
	l.err = cause
	l.mu.Unlock()
	logged := cause
	if errors.Is(cause, ErrReleased) {
		logged = nil // a hand-over, not a failure
	}
	l.e.transition(l, to, logged)
	close(l.lost)
	return true
}

// fail ends the lease after its connection failed and closes the
// connection. The caller holds sem.
func (l *Lease) fail(cause error) {
	to := StateUnhealthy
	if errors.Is(cause, ErrNotHeld) && !l.conn.IsClosed() {
		to = StateStandby
	}
	l.end(fmt.Errorf("lock connection: %w", cause), to)
	closeConn(l.conn, l.e.t)
}

// Runner runs fn on a connection that may write on the leader's behalf:
// Lease.Do, so that a deposed leader cannot flip, prune or record anything.
type Runner func(ctx context.Context, fn func(ctx context.Context, conn *pgx.Conn) error) error

// Do runs fn on the lock connection, serialised with the verifier and
// other Do calls. Statements fn runs can only take effect while this
// session holds the lock (the server releases it only when the session
// ends), so a deposed leader cannot write through Do. Once the lease is
// lost Do returns an error wrapping ErrLost without calling fn; if the
// connection fails during fn, the lease is lost and Do's error wraps both.
//
// fn must not keep conn after it returns. A transaction fn leaves open is
// rolled back (and reported). Cancelling ctx while fn waits on the server
// closes the connection (that is how pgx interrupts a query), which loses
// the lease.
func (l *Lease) Do(ctx context.Context, fn func(ctx context.Context, conn *pgx.Conn) error) error {
	select {
	case l.sem <- struct{}{}:
	case <-l.lost:
		return l.lostError()
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-l.sem }()
	if l.isLost() {
		return l.lostError()
	}
	err := fn(ctx, l.conn)
	if l.conn.IsClosed() {
		cause := err
		if cause == nil {
			cause = pgconn.ErrConnClosed
		}
		l.fail(cause)
		return fmt.Errorf("%w: %w", ErrLost, cause)
	}
	if l.conn.PgConn().TxStatus() != 'I' {
		rbErr := l.rollback()
		if rbErr != nil {
			l.fail(rbErr)
			return errors.Join(err, fmt.Errorf("%w: roll back transaction left open: %w", ErrLost, rbErr))
		}
		if err == nil {
			err = errors.New("election: Do's function left a transaction open; rolled back")
		}
	}
	return err
}

func (l *Lease) rollback() error {
	ctx, cancel := context.WithTimeout(context.Background(), l.e.t.verifyTimeout)
	defer cancel()
	_, err := l.conn.Exec(ctx, "ROLLBACK")
	return err
}

// verifier checks every Interval that the lock connection is alive and
// still holds the lock; the first failure ends the lease.
func (l *Lease) verifier(ctx context.Context) {
	defer close(l.done)
	tick := time.NewTicker(l.e.t.interval)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
		case <-ctx.Done():
			return
		}
		select {
		case l.sem <- struct{}{}:
		case <-ctx.Done():
			return
		}
		err := l.verify(ctx)
		<-l.sem
		if err != nil {
			return
		}
	}
}

// verify runs one check; the caller holds sem. It returns an error once the
// lease is over, whoever ended it.
func (l *Lease) verify(ctx context.Context) error {
	if l.isLost() {
		return l.lostError()
	}
	if err := verifyLock(ctx, l.conn, l.e.cfg.LockID, l.e.t); err != nil {
		l.fail(err)
		return err
	}
	return nil
}

// Release hands leadership over: it closes Lost (Err becomes ErrReleased),
// unlocks, closes the lock connection, stops the verifier and waits for it,
// and moves the elector to StateStandby. On a lease already lost it only
// cleans up and returns nil; calling it again is harmless.
//
// A Do still running delays Release until it returns or ctx ends; then its
// connection is closed under it (the server frees the lock on its own) and
// Release returns ctx's error.
func (l *Lease) Release(ctx context.Context) error {
	select {
	case l.sem <- struct{}{}:
		return l.release(ctx)
	default:
	}
	select {
	case l.sem <- struct{}{}:
		return l.release(ctx)
	case <-ctx.Done():
		l.end(ErrReleased, StateStandby)
		// Break the holder's I/O; it sees the closed connection and
		// finishes the clean-up. Closing a net.Conn is safe concurrently.
		_ = l.conn.PgConn().Conn().Close()
		l.stop()
		<-l.done
		return fmt.Errorf("release lock: %w", ctx.Err())
	}
}

// release is Release's orderly path; the caller holds sem.
func (l *Lease) release(ctx context.Context) error {
	var err error
	if l.end(ErrReleased, StateStandby) {
		uctx, cancel := context.WithTimeout(ctx, l.e.t.verifyTimeout)
		_, uerr := l.conn.Exec(uctx, "SELECT pg_advisory_unlock($1)", l.e.cfg.LockID)
		cancel()
		if uerr != nil {
			err = fmt.Errorf("release lock: %w", uerr)
		}
	}
	closeConn(l.conn, l.e.t)
	<-l.sem
	l.stop()
	<-l.done
	return err
}
