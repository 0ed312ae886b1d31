package outbox

import (
	"errors"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/cdcrelay/cdcrelay/migrations/migratetest"
)

// Every bad subject and header name is refused twice: by Publish before any
// round trip, and by the table's CHECK when a writer bypasses the client,
// with the constraint's name in the error.
func TestBadInputRefusedByClientAndCheck(t *testing.T) {
	ctx := testCtx(t)
	pool := migratetest.Pool(t, env)
	rawInsert := func(subject string, headers any) error {
		_, err := pool.Exec(ctx, `INSERT INTO bus.outbox (subject, payload, headers) VALUES ($1, '', $2)`, subject, headers)
		return err
	}
	checkRefused := func(t *testing.T, err error, constraint string) {
		t.Helper()
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.ConstraintName != constraint || !strings.Contains(err.Error(), constraint) {
			t.Errorf("raw INSERT: err = %v, want a violation of %s", err, constraint)
		}
	}

	for _, tc := range badSubjects {
		t.Run("subject "+clip(tc.subject), func(t *testing.T) {
			if _, err := Publish(ctx, pool, tc.subject, []byte("x")); !errors.Is(err, tc.err) {
				t.Errorf("Publish: err = %v, want %v", err, tc.err)
			}
			checkRefused(t, rawInsert(tc.subject, nil), tc.constraint)
		})
	}
	for _, tc := range badHeaderNames {
		t.Run("header "+tc.name, func(t *testing.T) {
			if _, err := Publish(ctx, pool, "orders.created", nil, WithHeader(tc.name, "v")); !errors.Is(err, tc.err) {
				t.Errorf("Publish: err = %v, want %v", err, tc.err)
			}
			checkRefused(t, rawInsert("orders.created", map[string]string{tc.name: "v"}), tc.constraint)
		})
	}
	// Shapes the client cannot produce, but a raw INSERT can.
	for _, headers := range []string{`[]`, `"x"`, `null`, `{"a": 1}`, `{"a": ["b", 1]}`, `{"a": {"b": "c"}}`, `{"a": null}`} {
		t.Run("headers "+headers, func(t *testing.T) {
			checkRefused(t, rawInsert("orders.created", headers), "outbox_headers_shape")
		})
	}
	for _, headers := range []string{`{}`, `{"a": "b"}`, `{"a": []}`, `{"a": ["b", "c"], "d": "e"}`} {
		if err := rawInsert("orders.created", headers); err != nil {
			t.Errorf("headers %s refused: %v", headers, err)
		}
	}

	var n int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM bus.outbox`).Scan(&n); err != nil || n != 4 {
		t.Errorf("bus.outbox has %d rows (%v), want only the 4 good header rows", n, err)
	}
}

// For every subject over a small alphabet, ValidateSubject and the CHECK
// constraints give the same verdict: the same rule, or both accept.
func TestValidateSubjectAgreesWithCheck(t *testing.T) {
	ctx := testCtx(t)
	pool := migratetest.Pool(t, env)

	alphabet := []string{"a", ".", "*", ">", " ", "\t", "é", "\x7f", "\u00a0"}
	subjects := []string{"", strings.Repeat("a", 255), strings.Repeat("a", 256), strings.Repeat("a", 254) + "é", strings.Repeat("a", 255) + "*"}
	var grow func(prefix string, n int)
	grow = func(prefix string, n int) {
		if n == 0 {
			return
		}
		for _, c := range alphabet {
			subjects = append(subjects, prefix+c)
			grow(prefix+c, n-1)
		}
	}
	grow("", 4)

	conn, err := pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	// One round trip: each INSERT in its own subtransaction, reporting the
	// constraint that refused it.
	if _, err := tx.Exec(ctx, `CREATE FUNCTION pg_temp.verdict(s text) RETURNS text LANGUAGE plpgsql AS $$
		DECLARE c text;
		BEGIN
			INSERT INTO bus.outbox (subject, payload) VALUES (s, '');
			RETURN '';
		EXCEPTION WHEN check_violation THEN
			GET STACKED DIAGNOSTICS c = CONSTRAINT_NAME;
			RETURN c;
		END $$`); err != nil {
		t.Fatal(err)
	}
	rows, _ := tx.Query(ctx, `SELECT pg_temp.verdict(s) FROM unnest($1::text[]) WITH ORDINALITY AS u(s, i) ORDER BY i`, subjects)
	verdicts, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	for i, s := range subjects {
		want := ""
		if err := ValidateSubject(s); err != nil {
			for _, tc := range badSubjects {
				if errors.Is(err, tc.err) {
					want = tc.constraint
				}
			}
		}
		if verdicts[i] != want {
			t.Errorf("subject %q: CHECK says %q, ValidateSubject %q", s, verdicts[i], want)
		}
	}
	t.Logf("%d subjects compared", len(subjects))
}
