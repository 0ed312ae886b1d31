package relay_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cdcrelay/cdcrelay/election"
	"github.com/cdcrelay/cdcrelay/internal/rawsock"
	"github.com/cdcrelay/cdcrelay/internal/relaytest"
)

// The lock connection runs the flips, so it is a hot socket like the pool
// and NATS (TestHotSocketsAreWrapped): the leader's runner sees it wrapped.
func TestLockConnectionIsWrapped(t *testing.T) {
	h := relaytest.New(t, env, true)
	seen := make(chan error, 1)
	h.Cfg.WhileLeading = append(h.Cfg.WhileLeading, func(ctx context.Context, run election.Runner) error {
		err := run(ctx, func(_ context.Context, conn *pgx.Conn) error {
			if _, ok := conn.PgConn().Conn().(*rawsock.Conn); !ok {
				return fmt.Errorf("lock connection is %T, want *rawsock.Conn", conn.PgConn().Conn())
			}
			return nil
		})
		select {
		case seen <- err:
		default: // a later term: the first one's answer is the test's
		}
		<-ctx.Done()
		return nil
	})
	h.Start()
	select {
	case err := <-seen:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no leadership term within 30s")
	}
}
