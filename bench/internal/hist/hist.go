// Package hist is a log-linear latency histogram in the layout of
// HdrHistogram: exact below 128, then 64 buckets per power of two, so a
// reported quantile is within 1/64 (1.6 %) of the true value at any
// magnitude, in constant memory, and histograms of separate runs merge
// exactly. The benchmark records nanoseconds.
package hist

import (
	"math"
	"math/bits"
	"time"
)

const (
	// subBits sets the precision: values below 1<<subBits are exact and
	// every power of two above is split into 1<<(subBits-1) buckets.
	subBits = 7
	half    = 1 << (subBits - 1)
	// buckets covers every non-negative int64.
	buckets = (64-subBits)*half + 2*half
)

// Histogram counts non-negative int64 values. The zero value is not usable;
// call New.
type Histogram struct {
	counts []uint64
	n      uint64
	min    int64
	max    int64
	sum    float64
}

// New returns an empty histogram.
func New() *Histogram {
	return &Histogram{counts: make([]uint64, buckets), min: math.MaxInt64}
}

// index maps v >= 0 to its bucket.
func index(v int64) int {
	if v < 2*half {
		return int(v)
	}
	e := bits.Len64(uint64(v)) - subBits
	return e*half + int(uint64(v)>>e)
}

// upper is the largest value that maps to bucket i.
func upper(i int) int64 {
	if i < 2*half {
		return int64(i)
	}
	e := i/half - 1
	sub := int64(i%half + half)
	return (sub+1)<<e - 1
}

// Record adds one value; negative values (a clock that stepped back) count
// as zero.
func (h *Histogram) Record(v int64) {
	if v < 0 {
		v = 0
	}
	h.counts[index(v)]++
	h.n++
	h.sum += float64(v)
	if v < h.min {
		h.min = v
	}
	if v > h.max {
		h.max = v
	}
}

// RecordDuration adds d in nanoseconds.
func (h *Histogram) RecordDuration(d time.Duration) { h.Record(int64(d)) }

// Merge adds every value counted by o.
func (h *Histogram) Merge(o *Histogram) {
	if o.n == 0 {
		return
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
	h.sum += o.sum
	h.min = min(h.min, o.min)
	h.max = max(h.max, o.max)
}

// Count is the number of recorded values.
func (h *Histogram) Count() uint64 { return h.n }

// Max is the largest recorded value, exactly; 0 when empty.
func (h *Histogram) Max() int64 { return h.max }

// Min is the smallest recorded value, exactly; 0 when empty.
func (h *Histogram) Min() int64 {
	if h.n == 0 {
		return 0
	}
	return h.min
}

// Mean is the arithmetic mean; 0 when empty.
func (h *Histogram) Mean() float64 {
	if h.n == 0 {
		return 0
	}
	return h.sum / float64(h.n)
}

// Quantile returns the value below or at which a fraction q of the values
// lie, as the top of its bucket (never above the exact maximum): like
// HdrHistogram's "highest equivalent value", it errs towards reporting
// latency as worse, not better. 0 when empty.
func (h *Histogram) Quantile(q float64) int64 {
	if h.n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(h.n)))
	rank = max(rank, 1)
	rank = min(rank, h.n)
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			return min(upper(i), h.max)
		}
	}
	return h.max
}
