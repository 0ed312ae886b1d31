package poller

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5/pgconn"
)

// installSQL is what a poller-era database carries on bus.outbox. The
// trigger is per statement, not per row: one notification per transaction is
// all the wake-up needs, and Postgres folds identical ones anyway.
const installSQL = `
CREATE INDEX IF NOT EXISTS outbox_unpublished ON bus.outbox (id) WHERE published_to_nats = false;
CREATE OR REPLACE FUNCTION bus.outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('` + Channel + `', '');
  RETURN NULL;
END
$$;
DROP TRIGGER IF EXISTS outbox_notify ON bus.outbox;
CREATE TRIGGER outbox_notify AFTER INSERT ON bus.outbox
  FOR EACH STATEMENT EXECUTE FUNCTION bus.outbox_notify();
`

// Install adds the poller's NOTIFY trigger and its partial index of
// unpublished rows to a migrated database.
func Install(ctx context.Context, conn *pgconn.PgConn) error {
	if err := conn.Exec(ctx, installSQL).Close(); err != nil {
		return fmt.Errorf("install poller trigger and index: %w", err)
	}
	return nil
}
