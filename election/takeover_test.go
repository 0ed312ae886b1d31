package election

import (
	"context"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/cdcrelay/cdcrelay/internal/testenv"
)

// How long a standby takes to lead once the leader's session ends, with the
// default Interval, for two ways of ending it. Logged, not asserted: speed
// targets live in make bench, and this machine is shared.
func TestTakeOverTime(t *testing.T) {
	if testing.Short() {
		t.Skip("measures ten take-overs")
	}
	url := env.DB(t)
	pool := testenv.Pool(t, url)
	for _, how := range []struct {
		name string
		end  func(l *Lease, pid int32, pool *pgxpool.Pool) error
	}{
		{"leader's backend terminated", func(_ *Lease, pid int32, pool *pgxpool.Pool) error {
			_, err := pool.Exec(context.Background(), `SELECT pg_terminate_backend($1)`, pid)
			return err
		}},
		{"leader's socket closed, as when its process is killed", func(l *Lease, _ int32, _ *pgxpool.Pool) error {
			return l.conn.PgConn().Conn().Close()
		}},
	} {
		var gaps []time.Duration
		for range 5 {
			id := randomLockID()
			cfg := func(identity string) Config {
				c := testConfig(url, id, identity)
				c.Interval, c.KeepAlive = DefaultInterval, DefaultKeepAlive
				return c
			}
			la := acquire(t, newElector(t, cfg("relay a")))
			b := newElector(t, cfg("relay b"))
			bCh := acquireAsync(t, b)
			waitState(t, b, StateStandby)
			pid := pidOf(t, la)
			// Not synchronisation: a random moment in the standby's cycle,
			// which a polling standby's gap depends on.
			<-time.After(rand.N(DefaultInterval))
			start := time.Now()
			if err := how.end(la, pid, pool); err != nil {
				t.Fatal(err)
			}
			wait(t, bCh)
			gaps = append(gaps, time.Since(start).Round(time.Millisecond))
			waitLost(t, la)
		}
		slices.Sort(gaps)
		t.Logf("%s: standby led after %v (median %v, worst %v)", how.name, gaps, gaps[len(gaps)/2], gaps[len(gaps)-1])
	}
}
