package hist

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

func TestIndexUpperContiguous(t *testing.T) {
	prev := -1
	for _, v := range []int64{0, 1, 127, 128, 129, 255, 256, 1000, 1 << 20, 1<<40 + 12345, math.MaxInt64} {
		i := index(v)
		if v > upper(i) {
			t.Fatalf("value %d above the top %d of its bucket %d", v, upper(i), i)
		}
		if i > 0 && v <= upper(i-1) {
			t.Fatalf("value %d also fits bucket %d", v, i-1)
		}
		if i < prev {
			t.Fatalf("bucket of %d went down", v)
		}
		prev = i
	}
	if got := index(math.MaxInt64); got >= buckets {
		t.Fatalf("index(MaxInt64) = %d, have %d buckets", got, buckets)
	}
}

func TestSmallValuesExact(t *testing.T) {
	h := New()
	for v := int64(1); v <= 100; v++ {
		h.Record(v)
	}
	for _, tc := range []struct {
		q    float64
		want int64
	}{{0.5, 50}, {0.99, 99}, {1, 100}, {0, 1}} {
		if got := h.Quantile(tc.q); got != tc.want {
			t.Errorf("Quantile(%v) = %d, want %d", tc.q, got, tc.want)
		}
	}
	if h.Count() != 100 || h.Min() != 1 || h.Max() != 100 || h.Mean() != 50.5 {
		t.Fatalf("count/min/max/mean = %d/%d/%d/%v", h.Count(), h.Min(), h.Max(), h.Mean())
	}
}

func TestQuantileRelativeError(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	h := New()
	vals := make([]int64, 100000)
	for i := range vals {
		// Log-normal-ish latencies from 10 µs to seconds.
		vals[i] = int64(math.Exp(r.NormFloat64()*1.5 + 13))
		h.Record(vals[i])
	}
	slices.Sort(vals)
	for _, q := range []float64{0.5, 0.9, 0.99, 0.999, 1} {
		exact := vals[int(math.Ceil(q*float64(len(vals))))-1]
		got := h.Quantile(q)
		if got < exact {
			t.Errorf("q%v: %d below exact %d", q, got, exact)
		}
		if rel := float64(got-exact) / float64(exact); rel > 1.0/64 {
			t.Errorf("q%v: %d vs exact %d, relative error %.4f", q, got, exact, rel)
		}
	}
}

func TestMerge(t *testing.T) {
	a, b, all := New(), New(), New()
	for v := int64(0); v < 5000; v += 7 {
		a.Record(v * 1000)
		all.Record(v * 1000)
	}
	for v := int64(3); v < 9000; v += 11 {
		b.Record(v * 999)
		all.Record(v * 999)
	}
	a.Merge(b)
	a.Merge(New())
	for _, q := range []float64{0.1, 0.5, 0.99, 1} {
		if a.Quantile(q) != all.Quantile(q) {
			t.Fatalf("merged q%v = %d, want %d", q, a.Quantile(q), all.Quantile(q))
		}
	}
	if a.Count() != all.Count() || a.Min() != all.Min() || a.Max() != all.Max() {
		t.Fatal("merged count/min/max differ")
	}
}

func TestEmptyAndNegative(t *testing.T) {
	h := New()
	if h.Quantile(0.99) != 0 || h.Min() != 0 || h.Mean() != 0 {
		t.Fatal("empty histogram should report zeros")
	}
	h.Record(-5)
	if h.Max() != 0 || h.Count() != 1 {
		t.Fatalf("negative value not clamped: max %d", h.Max())
	}
}
