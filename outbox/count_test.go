package outbox

import (
	"context"
	"testing"
	"time"

	"github.com/cdcrelay/cdcrelay/internal/testenv"
)

func TestCountUnpublishedAndTimeout(t *testing.T) {
	url := env.DB(t)
	pool := testenv.Pool(t, url)
	ctx := context.Background()
	if _, err := pool.Exec(ctx, `CREATE SCHEMA bus;
CREATE TABLE bus.outbox (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, created_at timestamptz NOT NULL DEFAULT now(),
  published_to_nats boolean NOT NULL DEFAULT false);
INSERT INTO bus.outbox (published_to_nats, created_at) SELECT g % 10 <> 0, now() - g * interval '1 second' FROM generate_series(1, 1000) g`); err != nil {
		t.Fatal(err)
	}
	c, err := CountUnpublished(ctx, pool, 0, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if c.Unpublished != 100 || c.MinUnpublished != 10 || c.MaxID != 1000 || time.Since(c.Oldest) < 999*time.Second {
		t.Errorf("count from 0 = %+v", c)
	}
	if c, err = CountUnpublished(ctx, pool, 995, time.Minute); err != nil || c.Unpublished != 1 || c.MinUnpublished != 1000 {
		t.Errorf("count from 995 = %+v, %v", c, err)
	}

	// A statement timeout (here: waiting for a lock another session holds)
	// is told apart, and leaves the pool usable.
	locker, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := locker.Exec(ctx, `LOCK TABLE bus.outbox IN ACCESS EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}
	_, err = CountUnpublished(ctx, pool, 0, 50*time.Millisecond)
	if !IsTimeout(err) {
		t.Errorf("count while locked out: %v, want a statement timeout", err)
	}
	if err := locker.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := CountUnpublished(ctx, pool, 0, time.Minute); err != nil {
		t.Errorf("count after a timeout: %v", err)
	}
}
