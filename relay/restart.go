package relay

import (
	"context"
	"time"

	"github.com/jackc/pglogrepl"

	"github.com/cdcrelay/cdcrelay/replication"
)

// restartInterval is how often the leader has PostgreSQL log the running
// transactions while WAL moves.
const restartInterval = time.Second

// A logical slot's restart point, where a new walsender begins to decode,
// only moves to a record of the running transactions, which PostgreSQL
// writes every 15 s (and at checkpoints). Everything between the restart
// point and the confirmed position is decoded again, and thrown away, before
// a new walsender sends anything: after a failover, up to 15 s of WAL, which
// on a 2-core machine at 2 k events/s took most of the gap (the walsender
// decodes ~1 s of such WAL in 30 ms there; the gaps of successive kills
// grew by that much until the next record). keepRestartClose has a record
// written every restartInterval while WAL moves (PostgreSQL 16's
// pg_log_standby_snapshot, superuser-only unless granted), so the restart
// point follows the confirmed position by about a second. The cost is a
// small WAL record a second, and a snapshot file each logical walsender of
// the database writes for it (removed at the next checkpoint).
//
// Without the function or the privilege it says so once and returns: the
// relay works the same, a take-over only re-decodes more.
func (r *Relay) keepRestartClose(ctx context.Context, version int) {
	if version < replication.OriginVersion {
		return // pg_log_standby_snapshot is PostgreSQL 16's
	}
	var allowed bool
	if err := r.pool.QueryRow(ctx, `SELECT has_function_privilege('pg_catalog.pg_log_standby_snapshot()', 'EXECUTE')`).Scan(&allowed); err != nil {
		if ctx.Err() == nil {
			r.log.Warn().Err(err).Msg("read the privilege on pg_log_standby_snapshot(); the slot's restart point moves every 15 s")
		}
		return
	}
	if !allowed {
		r.log.Info().Msg("the relay's role may not execute pg_log_standby_snapshot(): the slot's restart point moves only every 15 s, " +
			"and a take-over decodes up to 15 s of WAL again before it sends (GRANT EXECUTE ON FUNCTION pg_log_standby_snapshot() TO the role)")
		return
	}
	t := time.NewTicker(restartInterval)
	defer t.Stop()
	var after pglogrepl.LSN // WAL end after the last record: nothing moved while it stays
	failing := false
	for {
		select {
		case <-t.C:
		case <-ctx.Done():
			return
		}
		var end string
		err := r.pool.QueryRow(ctx, `SELECT CASE WHEN pg_current_wal_insert_lsn() > $1::pg_lsn THEN pg_log_standby_snapshot() END, pg_current_wal_insert_lsn()::text`,
			after.String()).Scan(nil, &end)
		if err == nil {
			after, err = pglogrepl.ParseLSN(end)
		}
		switch {
		case ctx.Err() != nil:
			return
		case err != nil && !failing:
			r.log.Warn().Err(err).Msg("log the running transactions for the slot's restart point; retrying every second")
		case err == nil && failing:
			r.log.Info().Msg("logging the running transactions again")
		}
		failing = err != nil
	}
}
