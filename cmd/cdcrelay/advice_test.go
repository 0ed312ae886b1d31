package main

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/cdcrelay/cdcrelay/publish"
	"github.com/cdcrelay/cdcrelay/relay"
	"github.com/cdcrelay/cdcrelay/replication"
)

func TestAdviceNamesTheFix(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want []string // in the advised error's message
	}{
		{&publish.ServerVersionError{Server: "n1", Version: "2.12.4", Need: publish.MinServerVersion},
			[]string{"2.12.4", "upgrade every nats-server", publish.MinServerVersion + " or later"}},
		{&publish.BatchingDisabledError{Stream: "bus"},
			[]string{"set allow_batched: true in the definition of stream bus", "cdcrelay stream ensure --stream bus"}},
		{&publish.StreamNotFoundError{Stream: "nosuch"},
			[]string{"stream nosuch does not exist: create it with `cdcrelay stream ensure --stream nosuch --subjects ...` or run with --ensure-stream"}},
		{&relay.ConfigError{Setting: relay.SettingNATSURL, Problem: relay.ServerUnreachable, Err: errors.New("no servers available")},
			[]string{"connect to NATS: no servers available: check --nats-url"}},
		{&relay.ConfigError{Setting: relay.SettingNATSURL, Problem: relay.SettingUnset}, []string{"no NATS URL: set --nats-url"}},
		{&relay.ConfigError{Setting: relay.SettingDatabaseURL, Problem: relay.ServerUnreachable, Err: errors.New("refused")},
			[]string{"connect to PostgreSQL: refused: check --database-url and that the server is reachable"}},
		{&relay.ConfigError{Setting: relay.SettingDatabaseURL, Problem: relay.SettingUnset}, []string{errDatabaseURL.Error()}},
		{&replication.CheckError{Problem: "slot s uses output plugin x", Fix: "drop it: SELECT pg_drop_replication_slot('s')", Setting: replication.SettingSlot},
			[]string{"start: slot s uses output plugin x: choose another --slot, or drop it: SELECT pg_drop_replication_slot('s')"}},
		{&replication.CheckError{Problem: "publication p does not exist", Fix: "CREATE PUBLICATION p", Unmigrated: true},
			[]string{"publication p does not exist: run `cdcrelay migrate` against this database, or CREATE PUBLICATION p"}},
		{&replication.CheckError{Problem: "wal_level is replica", Fix: "set wal_level = logical"},
			[]string{"start: wal_level is replica: set wal_level = logical"}},
	} {
		err := advise(fmt.Errorf("start: %w", tc.err))
		for _, want := range tc.want {
			if got := err.Error(); !strings.Contains(got, want) {
				t.Errorf("advice %q, want %q in it", got, want)
			}
		}
		if strings.Contains(tc.err.Error(), "--") {
			t.Errorf("library error %q names a flag: only cmd/cdcrelay should", tc.err)
		}
		var check *replication.CheckError
		if errors.As(tc.err, &check) && !errors.As(err, &check) {
			t.Errorf("advice on %q lost the *CheckError", err)
		}
	}
	plain := errors.New("other")
	if advise(plain) != plain {
		t.Fatal("other errors must pass unchanged")
	}
}
