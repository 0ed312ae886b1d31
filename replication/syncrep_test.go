package replication_test

import (
	"slices"
	"testing"

	"github.com/cdcrelay/cdcrelay/replication"
)

func TestSyncStandbyNames(t *testing.T) {
	for _, tc := range []struct {
		setting string
		want    []string
	}{
		{"", nil},
		{"*", []string{"*"}},
		{"s1, s2", []string{"s1", "s2"}},
		{"FIRST 1 (s1, s2)", []string{"s1", "s2"}},
		{"first 2(s1,s2,s3)", []string{"s1", "s2", "s3"}},
		{"ANY 1 (s1, \"Cdc Relay\")", []string{"s1", "Cdc Relay"}},
		{"2 (a, b)", []string{"a", "b"}},
		{`"say ""hi"""`, []string{`say "hi"`}},
		{"first", []string{"first"}},
	} {
		if got := replication.SyncStandbyNames(tc.setting); !slices.Equal(got, tc.want) {
			t.Errorf("SyncStandbyNames(%q) = %q, want %q", tc.setting, got, tc.want)
		}
	}
}

func TestIsSyncStandby(t *testing.T) {
	for _, tc := range []struct {
		setting, app string
		want         bool
	}{
		{"", "cdcrelay", false},
		{"*", "cdcrelay", true},
		{"ANY 1 (*)", "cdcrelay", true},
		{"FIRST 1 (standby1, standby2)", "cdcrelay", false},
		{"ANY 1 (standby1, CDCRELAY)", "cdcrelay", true},
		{`"*"`, "cdcrelay", true}, // the server treats a quoted * as the wildcard too
		{"standby1", "relay-a", false},
	} {
		if got := replication.IsSyncStandby(tc.setting, tc.app); got != tc.want {
			t.Errorf("IsSyncStandby(%q, %q) = %v, want %v", tc.setting, tc.app, got, tc.want)
		}
	}
}
