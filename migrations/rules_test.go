package migrations

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

// upTo has Apply stop after version v, as the cdcrelay that shipped it would.
func upTo(v int) Option { return func(o *options) { o.upTo = v } }

// An installation from before migration 0005, on a poller-era table whose
// rows break two rules: one only in a published row, one in an unpublished
// row too. 0005 guards all eight rules, so the relay can flip the bad row it
// could not flip before, and writers get the same errors as before.
func TestUpgradeGuardsRules(t *testing.T) {
	conn, notices := connect(t, env.DB(t))
	exec(t, conn, pollerOutbox)
	exec(t, conn, `INSERT INTO bus.outbox (subject, payload, published_to_nats, tenant) VALUES ('orders.*', 'x', false, 't1'), ('orders created', 'y', true, 't2')`)
	exec(t, conn, `ALTER TABLE bus.outbox ADD CONSTRAINT outbox_tenant_set CHECK (tenant IS NOT NULL) NOT VALID`) // the poller's own
	res, err := Apply(testCtx(t), conn, upTo(4))
	if err != nil {
		t.Fatalf("apply up to 0004: %v", err)
	}
	if res.Version != 4 {
		t.Fatalf("version %d after applying up to 0004", res.Version)
	}
	badID := queryOne[int64](t, conn, `SELECT id FROM bus.outbox WHERE subject = 'orders.*'`)
	const flip = `UPDATE bus.outbox SET published_to_nats = true, published_at = now() WHERE id = ANY($1::bigint[]) AND NOT published_to_nats`
	// Before 0005 the flip re-checked every rule, NOT VALID ones included.
	if _, err := conn.Exec(testCtx(t), flip, []int64{badID}); err == nil || !strings.Contains(err.Error(), "outbox_subject_no_wildcards") {
		t.Fatalf("flip of a rule-breaking row before 0005: err = %v, want outbox_subject_no_wildcards", err)
	}

	res = mustApply(t, conn)
	if want := []Migration{{5, "flip_skips_rules"}}; !slices.Equal(res.Applied, want) {
		t.Fatalf("applied %v, want %v", res.Applied, want)
	}
	rules := queryOne[[]string](t, conn, `SELECT array_agg(format('%s valid=%s %s', conname, convalidated::text, pg_get_expr(conbin, conrelid)) ORDER BY conname)
		FROM pg_constraint WHERE conrelid = 'bus.outbox'::regclass AND contype = 'c' AND conname <> 'outbox_tenant_set'`)
	if len(rules) != 8 {
		t.Errorf("%d CHECK constraints, want 8: %q", len(rules), rules)
	}
	for _, r := range rules {
		name, rest, _ := strings.Cut(r, " ")
		valid := name != "outbox_subject_no_wildcards" // an unpublished row breaks it
		if !strings.HasPrefix(rest, fmt.Sprintf("valid=%v (published_to_nats OR ", valid)) {
			t.Errorf("constraint %s: %s, want valid=%v and guarded", name, rest, valid)
		}
	}
	if !slices.ContainsFunc(*notices, func(n string) bool {
		return strings.Contains(n, "unpublished rows of bus.outbox break outbox_subject_no_wildcards")
	}) {
		t.Errorf("no notice about the NOT VALID rule in %q", *notices)
	}

	if !slices.ContainsFunc(res.Warnings, func(w string) bool {
		return strings.Contains(w, "CHECK outbox_tenant_set on bus.outbox is evaluated again on every flip")
	}) {
		t.Errorf("no warning about the poller's unguarded CHECK in %q", res.Warnings)
	}

	exec(t, conn, flip, []int64{badID})
	if !queryOne[bool](t, conn, `SELECT published_to_nats FROM bus.outbox WHERE id = $1`, badID) {
		t.Error("the flip did not flip the rule-breaking row")
	}
	_, err = conn.Exec(testCtx(t), `INSERT INTO bus.outbox (subject, payload) VALUES ('orders.>', 'x')`)
	if want := `new row for relation "outbox" violates check constraint "outbox_subject_no_wildcards"`; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("insert with a wildcard: err = %v, want %q", err, want)
	}

	before := schemaOf(t, conn)
	if res := mustApply(t, conn); len(res.Applied) != 0 {
		t.Errorf("second run applied %v", res.Applied)
	}
	if after := schemaOf(t, conn); after != before {
		t.Errorf("second run changed the schema:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}
