package relay_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"

	"github.com/cdcrelay/cdcrelay/internal/relaytest"
	"github.com/cdcrelay/cdcrelay/internal/testenv"
)

// While events flow, the slot's restart point (where a new leader's
// walsender starts decoding) follows the confirmed position within seconds,
// three times in a row: PostgreSQL alone logs the running transactions it
// moves to every 15 s, so a take-over decoded up to 15 s of WAL again before
// it sent anything.
func TestRestartPointFollowsTheStream(t *testing.T) {
	h, _ := startFiltering(t) // PostgreSQL 16+
	ctx := context.Background()
	seq := 0
	for i := range 3 {
		from := h.CurrentLSN()
		relaytest.WriteN(t, h, 1, 10, &seq)
		testenv.Eventually(t, 5*time.Second, func() error {
			relaytest.WriteN(t, h, 1, 1, &seq) // WAL moves, as under load
			var text string
			if err := h.Pool.QueryRow(ctx, `SELECT restart_lsn::text FROM pg_replication_slots WHERE slot_name = 'cdcrelay'`).Scan(&text); err != nil {
				return err
			}
			restart, err := pglogrepl.ParseLSN(text)
			if err != nil {
				return err
			}
			if restart <= from {
				return fmt.Errorf("round %d: restart point %s not past %s", i+1, restart, from)
			}
			return nil
		})
	}
	h.WaitAllDelivered(time.Minute)
}
