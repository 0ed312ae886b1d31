package main

import "testing"

func TestMaxProcs(t *testing.T) {
	for _, c := range []struct {
		flag    int
		flagSet bool
		env     string
		embed   bool
		want    int
		err     string
	}{
		{1, false, "", false, 1, ""},  // the default
		{1, false, "4", false, 0, ""}, // the operator's $GOMAXPROCS stands
		{2, true, "4", false, 2, ""},  // unless --procs is given too
		{0, true, "", false, 0, ""},   // Go's choice
		{1, false, "", true, 0, ""},   // beside an embedded NATS server
		{1, true, "", true, 1, ""},    // unless --procs is given
		{-1, true, "", false, 0, "--procs -1: want a thread count, or 0 for Go's default"},
	} {
		got, err := maxProcs(c.flag, c.flagSet, c.env, c.embed)
		if got != c.want || (err == nil) != (c.err == "") || err != nil && err.Error() != c.err {
			t.Errorf("maxProcs(%d, %v, %q, %v) = %d, %v; want %d, %q", c.flag, c.flagSet, c.env, c.embed, got, err, c.want, c.err)
		}
	}
}
