package main

import (
	"testing"
	"time"
)

func series(window time.Duration, rate, drain float64) []lagSample {
	var out []lagSample
	for at := time.Duration(0); at <= window; at += 250 * time.Millisecond {
		w := int64(rate * at.Seconds())
		a := min(int64(drain*at.Seconds()), w)
		out = append(out, lagSample{at: at, written: w, acked: a})
	}
	return out
}

func TestJudgeLag(t *testing.T) {
	w := 10 * time.Second
	if flat, why, _ := judgeLag(series(w, 10000, 10000), w, 10000, time.Second); !flat {
		t.Fatalf("consumer at full pace judged %q", why)
	}
	if flat, _, end := judgeLag(series(w, 10000, 8000), w, 10000, 0); flat || end < 1.9 {
		t.Fatalf("consumer at 80%% judged flat (lag end %.2fs)", end)
	}
	// A constant lag of half a second is flat, but over a 0.25 s bound.
	ss := series(w, 10000, 10000)
	for i := range ss {
		ss[i].acked = max(ss[i].acked-5000, 0)
	}
	if flat, _, _ := judgeLag(ss, w, 10000, 0); !flat {
		t.Fatal("steady lag judged growing")
	}
	if flat, _, _ := judgeLag(ss, w, 10000, 250*time.Millisecond); flat {
		t.Fatal("lag over the bound judged fine")
	}
	if flat, _, _ := judgeLag(ss[:2], w, 10000, 0); flat {
		t.Fatal("two samples judged flat")
	}
}
