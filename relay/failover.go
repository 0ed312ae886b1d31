package relay

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cdcrelay/cdcrelay/replication"
)

// On PostgreSQL 17+ a standby with sync_replication_slots keeps a copy of a
// failover slot, and after a promotion the relay streams on from that copy.
// The copy is safe only while synchronized_standby_slots names the
// standbys: the relay confirms a position once its flips (and dead letters)
// are flushed as far as its walsender knows, and only that setting makes
// the walsender's positions wait for the standbys. Without it a copy may
// confirm a position whose flips the standby does not have yet, and a
// promotion then leaves events neither flipped nor dead-lettered behind a
// slot that has passed them: a dead-lettered event is lost. So the slot is
// a failover slot exactly while the setting names standbys: without one, a
// promotion drops the slot and the relay recreates it with a backfill,
// which loses nothing.

// errFailoverSetting ends a term whose slot's failover flag no longer
// matches synchronized_standby_slots: the flag changes only on a slot
// nobody reads, so the next term sets it.
var errFailoverSetting = errors.New("synchronized_standby_slots changed")

const failoverSQL = `
SELECT coalesce(current_setting('synchronized_standby_slots', true), '') <> '',
       coalesce((SELECT (to_jsonb(s)->>'failover')::boolean FROM pg_replication_slots s WHERE s.slot_name = $1), false)`

// failoverWanted reads whether the slot should be a failover slot (the
// setting names standbys) and whether it is one.
func (r *Relay) failoverWanted(ctx context.Context) (want, is bool, err error) {
	if err := r.pool.QueryRow(ctx, failoverSQL, r.cfg.Slot).Scan(&want, &is); err != nil {
		return false, false, fmt.Errorf("read synchronized_standby_slots: %w", err)
	}
	return want, is, nil
}

// alignFailover makes the slot, which no walsender reads now, a failover
// slot exactly while synchronized_standby_slots names standbys (17+), and
// returns what it is.
func (r *Relay) alignFailover(ctx context.Context, rc *replication.Conn) (bool, error) {
	if rc.ServerVersion() < 170000 {
		return false, nil
	}
	want, is, err := r.failoverWanted(ctx)
	if err != nil || want == is {
		return is, err
	}
	// The slot is not in use (a stale walsender was ended before); were it,
	// the ALTER would wait for it, so it is bounded like that ending.
	actx, cancel := context.WithTimeout(ctx, slotTakeover)
	defer cancel()
	if err := rc.SetFailover(actx, r.cfg.Slot, want); err != nil {
		return is, err
	}
	if want {
		r.log.Info().Str("slot", r.cfg.Slot).Msg("synchronized_standby_slots names standbys: the slot is a failover slot again, so a standby with sync_replication_slots keeps it across a failover")
	} else {
		r.log.Warn().Str("slot", r.cfg.Slot).Msg("synchronized_standby_slots is empty, so the slot is no longer a failover slot: a standby's copy could confirm flips and dead letters the standby does not have, and a promotion could lose events; after a failover the relay recreates the slot and backfills instead (set synchronized_standby_slots to the standbys' physical slots to keep the slot across failover)")
	}
	return want, nil
}

// watchFailover ends the term with errFailoverSetting once
// synchronized_standby_slots no longer matches the slot's flag (is), looking
// every interval; it returns nil when ctx ends. A failed read is tried again
// at the next look (the pool's failures show elsewhere).
func (r *Relay) watchFailover(ctx context.Context, is bool, interval time.Duration) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		want, _, err := r.failoverWanted(ctx)
		if err != nil {
			r.log.Debug().Err(err).Msg("failover setting: read failed; looking again later")
			continue
		}
		if want != is {
			return fmt.Errorf("%w (names standbys: %v): ending the term to make the slot a failover slot %v", errFailoverSetting, want, want)
		}
	}
}
