package report

import (
	"fmt"
	"math"
	"slices"
	"strings"
)

// span formats the range of vals with f: "a" when all agree, "a–b" else,
// "–" when empty.
func span(vals []float64, f func(float64) string) string {
	if len(vals) == 0 {
		return "–"
	}
	lo, hi := slices.Min(vals), slices.Max(vals)
	a, b := f(lo), f(hi)
	if a == b {
		return a
	}
	return a + "–" + b
}

// num1 formats with one decimal: 3.7.
func num1(v float64) string { return fmt.Sprintf("%.1f", v) }

// kilo formats event rates: 950, 9.5 k, 52 k.
func kilo(v float64) string {
	switch {
	case v >= 100_000:
		return fmt.Sprintf("%.0f k", v/1000)
	case v >= 1000:
		return fmt.Sprintf("%.1f k", v/1000)
	}
	return fmt.Sprintf("%.0f", v)
}

// ms formats milliseconds with about two significant digits.
func ms(v float64) string {
	switch {
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	}
	return fmt.Sprintf("%.2f", v)
}

func secs(v float64) string {
	if v >= 10 {
		return fmt.Sprintf("%.1f s", v)
	}
	return fmt.Sprintf("%.2f s", v)
}

func num(v float64) string {
	switch {
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	}
	return fmt.Sprintf("%.2f", v)
}

func pct(v float64) string { return fmt.Sprintf("%.0f %%", v) }

func mib(v float64) string { return fmt.Sprintf("%.0f MiB", v/(1<<20)) }

func median(vals []float64) float64 {
	if len(vals) == 0 {
		return math.NaN()
	}
	s := slices.Clone(vals)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// table is a Markdown table built row by row.
type table struct {
	b    strings.Builder
	rows int // written, the head and its separator included
}

func newTable(head ...string) *table {
	t := &table{}
	t.row(head...)
	seps := make([]string, len(head))
	for i := range seps {
		seps[i] = "---"
	}
	t.row(seps...)
	return t
}

func (t *table) row(cells ...string) {
	t.rows++
	t.b.WriteString("| " + strings.Join(cells, " | ") + " |\n")
}

// String is the table, or nothing when it has no rows below its head.
func (t *table) String() string {
	if t.rows <= 2 {
		return ""
	}
	return t.b.String()
}
