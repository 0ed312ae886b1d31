package relay

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/cdcrelay/cdcrelay/internal/backoff"
	"github.com/cdcrelay/cdcrelay/replication"
)

// A logical slot's restart point, where a new walsender begins to decode,
// only moves to a record of the running transactions, which PostgreSQL
// writes every 15 s (and at checkpoints). Everything between the restart
// point and the confirmed position is decoded again, and thrown away, before
// a new walsender sends anything: after a failover, up to 15 s of WAL.
// keepRestartClose has such a record written every Config.RestartInterval
// while WAL moves (PostgreSQL 16's pg_log_standby_snapshot, superuser-only
// unless granted), so the restart point trails the confirmed position by
// about that interval plus the time to the next confirm.
//
// What it costs, beside a small WAL record per interval (marked
// unimportant: it never makes an idle server switch segments for
// archive_timeout): every logical walsender of the cluster decodes the
// record; the first serializes a snapshot (~150 bytes, fsynced) into
// pg_logical/snapshots, where files stay until no slot's restart point is
// before them; and every logical slot's restart point moves, so a confirm
// saves the slot to disk about once an interval instead of every 15 s.
//
// It stops for the term, saying so once, when the role may not call the
// function or the server cannot (before 16, in recovery); other errors are
// retried with back-off. The relay works the same without it: a take-over
// only decodes more again.
func (r *Relay) keepRestartClose(ctx context.Context, version int) {
	every := r.cfg.RestartInterval
	if every < 0 || version < replication.OriginVersion {
		return // off, or no pg_log_standby_snapshot (PostgreSQL 16's)
	}
	retry := backoff.Backoff{Base: every, Limit: time.Minute}
	wait := every
	var log runningLog
	failing := false
	for backoff.Sleep(ctx, wait) {
		err := log.write(ctx, r.pool)
		switch {
		case ctx.Err() != nil:
			return
		case errors.Is(err, errRestartPrivilege) || isPermanent(err):
			r.log.Info().Err(err).Msg("the slot's restart point moves only every 15 s this term: a take-over decodes up to 15 s of WAL again before it sends")
			return
		case err != nil:
			if !failing {
				r.log.Warn().Err(err).Msg("log the running transactions for the slot's restart point; retrying with back-off")
			}
			failing, wait = true, retry.Next()
		default:
			if failing {
				r.log.Info().Msg("logging the running transactions again")
			}
			failing, wait = false, every
			retry.Reset()
		}
	}
}

// errRestartPrivilege: the role lacks EXECUTE on pg_log_standby_snapshot.
var errRestartPrivilege = errors.New("the relay's role may not execute pg_log_standby_snapshot() (GRANT EXECUTE ON FUNCTION pg_log_standby_snapshot() TO the role)")

// runningLog writes the running-transactions records of one term.
type runningLog struct {
	allowed bool          // the privilege has been read, and is held
	after   pglogrepl.LSN // WAL end behind the last record: nothing moved while it stays
}

// write has the running transactions logged if WAL moved since the last
// record. The privilege is read first, until a read succeeds.
func (l *runningLog) write(ctx context.Context, q replication.Querier) error {
	if !l.allowed {
		if err := q.QueryRow(ctx, `SELECT has_function_privilege('pg_catalog.pg_log_standby_snapshot()', 'EXECUTE')`).Scan(&l.allowed); err != nil {
			return err
		}
		if !l.allowed {
			return errRestartPrivilege
		}
	}
	// Left to right: the record only if WAL moved, then the end behind it.
	var end string
	if err := q.QueryRow(ctx, `SELECT CASE WHEN pg_current_wal_insert_lsn() > $1::pg_lsn THEN pg_log_standby_snapshot() END, pg_current_wal_insert_lsn()::text`,
		l.after.String()).Scan(nil, &end); err != nil {
		return err
	}
	lsn, err := pglogrepl.ParseLSN(end)
	if err != nil {
		return err
	}
	l.after = lsn
	return nil
}

// isPermanent reports a server error that retrying this term cannot cure:
// no privilege (42501), a function the server lacks (42883) or a server in
// recovery (55000).
func isPermanent(err error) bool {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return false
	}
	switch pgErr.Code {
	case "42501", "42883", "55000":
		return true
	}
	return false
}
