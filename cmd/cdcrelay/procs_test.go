package main

import "testing"

func TestMaxProcs(t *testing.T) {
	for _, c := range []struct {
		flag    int
		flagSet bool
		env     string
		want    int
		err     string
	}{
		{1, false, "", 1, ""},  // the default
		{1, false, "4", 0, ""}, // the operator's $GOMAXPROCS stands
		{2, true, "4", 2, ""},  // unless --procs is given too
		{0, true, "", 0, ""},   // Go's choice
		{-1, true, "", 0, "--procs -1: want a thread count, or 0 for Go's default"},
	} {
		got, err := maxProcs(c.flag, c.flagSet, c.env)
		if got != c.want || (err == nil) != (c.err == "") || err != nil && err.Error() != c.err {
			t.Errorf("maxProcs(%d, %v, %q) = %d, %v; want %d, %q", c.flag, c.flagSet, c.env, got, err, c.want, c.err)
		}
	}
}
