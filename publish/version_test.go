package publish

import "testing"

func TestVersionAtLeast(t *testing.T) {
	for _, tc := range []struct {
		have string
		want bool
	}{
		{"2.14.4", true},
		{"2.14.7", true},
		{"2.14.10", true},
		{"2.15.0", true},
		{"v2.15.2", true},
		{"2.15.2+build.5", true},
		{"3.0.0", true},
		{"2.14.3", false},
		{"2.14.4-RC.2", false},
		{"2.14.5-RC.1", true},
		{"2.12.15", false},
		{"2.9.25", false},
		{"1.99.99", false},
		{"", false},
		{"2.14", false},
		{"two.14.7", false},
	} {
		if got := versionAtLeast(tc.have, MinServerVersion); got != tc.want {
			t.Errorf("versionAtLeast(%q, %q) = %v, want %v", tc.have, MinServerVersion, got, tc.want)
		}
	}
}
