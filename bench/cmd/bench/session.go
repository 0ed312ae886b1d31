package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/cdcrelay/cdcrelay/bench/internal/sut"
	"github.com/cdcrelay/cdcrelay/outbox"
	"github.com/cdcrelay/cdcrelay/publish"
)

const (
	streamName    = "bus"
	streamSubject = "bench.>"
	canarySubject = "bench.canary"
)

// session is one system on a fresh copy of the template database and a
// fresh stream, so no run inherits another's bloat, WAL or stored messages.
type session struct {
	env      *env
	sys      system
	db       string
	url      string
	pool     *pgxpool.Pool // the writers'
	q        *pgxpool.Pool // the benchmark's own queries
	stream   jetstream.Stream
	tags     uint32
	canaries int
}

func (e *env) newSession(ctx context.Context, sys system) (_ *session, err error) {
	e.sessions++
	s := &session{env: e, sys: sys, db: fmt.Sprintf("bench_%d", e.sessions)}
	s.url = e.pg.URL(s.db)
	if _, err := e.admin.Exec(ctx, fmt.Sprintf("CREATE DATABASE %s TEMPLATE %s", s.db, templateDB)); err != nil {
		return nil, fmt.Errorf("create database: %w", err)
	}
	defer func() {
		if err != nil {
			s.close(ctx)
		}
	}()
	if s.pool, err = pgxpool.New(ctx, fmt.Sprintf("%s&pool_max_conns=%d&pool_min_conns=%d", s.url, e.o.writers, e.o.writers)); err != nil {
		return nil, fmt.Errorf("writer pool: %w", err)
	}
	if s.q, err = pgxpool.New(ctx, s.url+"&pool_max_conns=2"); err != nil {
		return nil, fmt.Errorf("query pool: %w", err)
	}
	if err := e.js.DeleteStream(ctx, streamName); err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, fmt.Errorf("delete stream: %w", err)
	}
	// The stream the relay would create for itself, so both systems
	// publish into the same store, dedup window and limits; it also
	// captures the foreign publisher's subjects (runShared). Only the
	// atomic relay's runs allow atomic batches, which it needs.
	if _, err := publish.EnsureStream(ctx, e.js, publish.StreamConfig{
		Name: streamName, Subjects: []string{streamSubject, foreignSubjects}, MaxBytes: 4 << 30,
		AllowAtomic: needsAtomic(sys),
	}); err != nil {
		return nil, err
	}
	if s.stream, err = e.js.Stream(ctx, streamName); err != nil {
		return nil, err
	}
	if err := sys.prepare(ctx, s); err != nil {
		return nil, fmt.Errorf("prepare %s: %w", sys.name(), err)
	}
	return s, nil
}

func (s *session) close(ctx context.Context) {
	if err := s.sys.stop(); err != nil {
		s.env.logf("stop %s: %v", s.sys.name(), err)
	}
	if s.pool != nil {
		s.pool.Close()
	}
	if s.q != nil {
		s.q.Close()
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	// Slots are per cluster and outlive their database. A stopped relay's
	// walsender may still hold its slot for a moment.
	for attempt := 0; ; attempt++ {
		_, err := s.env.admin.Exec(ctx, `SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE database = $1 AND active_pid IS NOT NULL`, s.db)
		if err == nil {
			_, err = s.env.admin.Exec(ctx, `SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE database = $1`, s.db)
		}
		if err == nil {
			break
		}
		if attempt == 50 {
			s.env.logf("drop slots of %s: %v", s.db, err)
			break
		}
		if sleep(ctx, 100*time.Millisecond) != nil {
			break
		}
	}
	if _, err := s.env.admin.Exec(ctx, fmt.Sprintf("DROP DATABASE IF EXISTS %s WITH (FORCE)", s.db)); err != nil {
		s.env.logf("drop %s: %v", s.db, err)
	}
}

// fresh vacuums the outbox and checkpoints, outside the measured window,
// so that every run starts from the same state: no dead rows from the last
// run for autovacuum to pick up in the middle of this one, and no
// full-page-write debt from its dirty pages.
func (s *session) fresh(ctx context.Context) error {
	if _, err := s.q.Exec(ctx, `VACUUM bus.outbox`); err != nil {
		return fmt.Errorf("vacuum: %w", err)
	}
	return s.env.checkpoint(ctx)
}

// nextSubject gives each run its own subject and payload tag, so a run's
// consumer never counts another's messages.
func (s *session) nextSubject() (string, uint32) {
	s.tags++
	return fmt.Sprintf("bench.r%d", s.tags), s.tags
}

// acked is the number of messages in the stream and when the last was stored.
func (s *session) acked(ctx context.Context) (uint64, time.Time, error) {
	info, err := s.stream.Info(ctx)
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("stream info: %w", err)
	}
	return info.State.Msgs, info.State.LastTime, nil
}

// waitAcked waits until the stream holds base+n messages and returns when
// the last of them was stored.
func (s *session) waitAcked(ctx context.Context, base uint64, n int64, timeout time.Duration) (time.Time, error) {
	deadline := time.Now().Add(timeout)
	for {
		msgs, last, err := s.acked(ctx)
		if err != nil {
			return time.Time{}, err
		}
		if int64(msgs-base) >= n {
			return last, nil
		}
		if time.Now().After(deadline) {
			return time.Time{}, fmt.Errorf("%s: %d of %d events in JetStream after %v", s.sys.name(), msgs-base, n, timeout)
		}
		if err := sleep(ctx, 20*time.Millisecond); err != nil {
			return time.Time{}, err
		}
	}
}

// waitFlowing waits until the system streams: a canary event written now
// reaches JetStream and is flipped, twice. The first may be published by
// cdcrelay's initial backfill of a new slot (it was written before the slot
// existed); the second was written after that canary was flipped, so it can
// only come through the slot once the backfill is complete and recorded. p
// is the replica started last, watched so that one that exits does not cost
// the whole timeout.
func (s *session) waitFlowing(ctx context.Context, p *sut.Proc) error {
	for range 2 {
		if err := s.canary(ctx, p); err != nil {
			return err
		}
	}
	return nil
}

func (s *session) canary(ctx context.Context, p *sut.Proc) error {
	s.canaries++
	nonce := []byte(fmt.Sprintf("canary %d", s.canaries))
	if _, err := outbox.Publish(ctx, s.q, canarySubject, nonce); err != nil {
		return fmt.Errorf("write canary: %w", err)
	}
	deadline := time.Now().Add(time.Minute)
	for {
		m, err := s.stream.GetLastMsgForSubject(ctx, canarySubject)
		if err == nil && bytes.Equal(m.Data, nonce) {
			break
		}
		if err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
			return fmt.Errorf("read canary: %w", err)
		}
		select {
		case <-p.Exited():
			return fmt.Errorf("%s exited before streaming: %v; log %s:\n%s", p.Name, p.Err(), p.LogPath, tail(p.LogPath))
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not streaming after a minute; log %s:\n%s", p.Name, p.LogPath, tail(p.LogPath))
		}
		if err := sleep(ctx, 20*time.Millisecond); err != nil {
			return err
		}
	}
	id, err := s.maxID(ctx)
	if err != nil {
		return err
	}
	_, err = s.waitFlipped(ctx, id, time.Minute)
	return err
}

// maxID is the newest outbox row.
func (s *session) maxID(ctx context.Context) (int64, error) {
	var id int64
	err := s.q.QueryRow(ctx, `SELECT coalesce(max(id), 0) FROM bus.outbox`).Scan(&id)
	return id, err
}

// waitFlipped waits until row id is marked published. Both systems flip in
// id order behind one leader, so the newest row flipped means all are.
func (s *session) waitFlipped(ctx context.Context, id int64, timeout time.Duration) (time.Time, error) {
	if id == 0 {
		return time.Now(), nil
	}
	deadline := time.Now().Add(timeout)
	for {
		var done bool
		if err := s.q.QueryRow(ctx, `SELECT published_to_nats FROM bus.outbox WHERE id = $1`, id).Scan(&done); err != nil {
			return time.Time{}, fmt.Errorf("read flip of %d: %w", id, err)
		}
		if done {
			return time.Now(), nil
		}
		if time.Now().After(deadline) {
			return time.Time{}, fmt.Errorf("%s: row %d not flipped after %v", s.sys.name(), id, timeout)
		}
		if err := sleep(ctx, 20*time.Millisecond); err != nil {
			return time.Time{}, err
		}
	}
}

// settle waits for the consumer to publish and flip everything written so
// far: the end of a measured stretch.
func (s *session) settle(ctx context.Context, base uint64, written int64, timeout time.Duration) (lastAck, flipped time.Time, err error) {
	if !s.sys.consumes() {
		return time.Now(), time.Now(), nil
	}
	if lastAck, err = s.waitAcked(ctx, base, written, timeout); err != nil {
		return
	}
	id, err := s.maxID(ctx)
	if err != nil {
		return
	}
	flipped, err = s.waitFlipped(ctx, id, timeout)
	return
}

func (s *session) walLSN(ctx context.Context) (int64, error) {
	var lsn int64
	err := s.q.QueryRow(ctx, `SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint`).Scan(&lsn)
	return lsn, err
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
