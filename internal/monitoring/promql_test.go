package monitoring_test

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
)

// selector is a metric name a query selects and the function it is the
// argument of ("" when none).
type selector struct{ name, fn string }

// PromQL words that are no metric name. Grouping keywords are followed by a
// label list; offset by a duration.
var (
	promqlKeywords = []string{"and", "or", "unless", "bool", "atan2", "inf", "nan"}
	promqlGrouping = []string{"by", "without", "on", "ignoring", "group_left", "group_right"}
)

// selectors lists the metric names a PromQL expression selects. It is a
// lexer, not a parser: label matchers, ranges, strings, numbers, keywords
// and label lists are skipped, an identifier followed by "(" (or, for an
// aggregation, by "by" or "without") is a function, and any other is a
// metric name. Grafana variables ($job, ${x}, [$__rate_interval]) are
// skipped too. Names given as {__name__="..."} are refused: the checks below
// could not see them.
func selectors(expr string) ([]selector, error) {
	var (
		out     []selector
		stack   []string // the function of each open parenthesis ("" for grouping)
		pending string   // the function whose "(" comes next
	)
	s := expr
	i := 0
	skipSpace := func() {
		for i < len(s) && strings.ContainsRune(" \t\r\n", rune(s[i])) {
			i++
		}
	}
	for i < len(s) {
		c := s[i]
		switch {
		case strings.ContainsRune(" \t\r\n", rune(c)):
			i++
		case c == '#':
			for i < len(s) && s[i] != '\n' {
				i++
			}
		case c == '"' || c == '\'' || c == '`':
			end, err := skipString(s, i)
			if err != nil {
				return nil, err
			}
			i = end
		case c == '$':
			i++
			if i < len(s) && s[i] == '{' {
				end := strings.IndexByte(s[i:], '}')
				if end < 0 {
					return nil, fmt.Errorf("unterminated ${ in %q", expr)
				}
				i += end + 1
			} else {
				i = skipIdent(s, i)
			}
		case c == '{':
			end, err := skipMatchers(s, i)
			if err != nil {
				return nil, err
			}
			if strings.Contains(s[i:end], "__name__") {
				return nil, fmt.Errorf("a __name__ matcher in %q: name the metric instead", expr)
			}
			i = end
		case c == '[':
			end := strings.IndexByte(s[i:], ']')
			if end < 0 {
				return nil, fmt.Errorf("unterminated [ in %q", expr)
			}
			i += end + 1
		case c == '(':
			stack = append(stack, pending)
			pending = ""
			i++
		case c == ')':
			if len(stack) == 0 {
				return nil, fmt.Errorf("unbalanced ) in %q", expr)
			}
			stack = stack[:len(stack)-1]
			i++
		case c >= '0' && c <= '9' || c == '.':
			// Numbers, hex, exponents and durations.
			for i < len(s) && (isIdentChar(s[i]) || s[i] == '.' ||
				(s[i] == '-' || s[i] == '+') && (s[i-1] == 'e' || s[i-1] == 'E')) {
				i++
			}
		case isIdentChar(c):
			start := i
			i = skipIdent(s, i)
			word := s[start:i]
			skipSpace()
			switch {
			case slices.Contains(promqlGrouping, word):
				if i < len(s) && s[i] == '(' {
					end := strings.IndexByte(s[i:], ')')
					if end < 0 {
						return nil, fmt.Errorf("unterminated label list in %q", expr)
					}
					i += end + 1
				}
			case word == "offset":
				if i < len(s) && s[i] == '-' {
					i++
				}
				i = skipIdent(s, i)
			case slices.Contains(promqlKeywords, word):
			case i < len(s) && s[i] == '(':
				pending = word
			case aggregation(word) && (strings.HasPrefix(s[i:], "by") || strings.HasPrefix(s[i:], "without")):
				pending = word
			default:
				fn := ""
				if len(stack) > 0 {
					fn = stack[len(stack)-1]
				}
				out = append(out, selector{word, fn})
			}
		default:
			i++ // an operator
		}
	}
	if len(stack) != 0 {
		return nil, fmt.Errorf("unbalanced ( in %q", expr)
	}
	return out, nil
}

func aggregation(word string) bool {
	return slices.Contains([]string{"sum", "min", "max", "avg", "group", "stddev", "stdvar", "count",
		"count_values", "bottomk", "topk", "quantile", "limitk", "limit_ratio"}, word)
}

func isIdentChar(c byte) bool {
	return c == '_' || c == ':' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

func skipIdent(s string, i int) int {
	for i < len(s) && isIdentChar(s[i]) {
		i++
	}
	return i
}

// skipString returns the index after the string literal starting at i.
func skipString(s string, i int) (int, error) {
	quote := s[i]
	for j := i + 1; j < len(s); j++ {
		switch {
		case s[j] == '\\' && quote != '`':
			j++
		case s[j] == quote:
			return j + 1, nil
		}
	}
	return 0, errors.New("unterminated string in " + s)
}

// skipMatchers returns the index after the label matchers starting at i.
func skipMatchers(s string, i int) (int, error) {
	for j := i + 1; j < len(s); j++ {
		switch s[j] {
		case '"', '\'', '`':
			end, err := skipString(s, j)
			if err != nil {
				return 0, err
			}
			j = end - 1
		case '}':
			return j + 1, nil
		}
	}
	return 0, errors.New("unterminated { in " + s)
}

func TestSelectors(t *testing.T) {
	for _, tc := range []struct {
		expr string
		want []selector
	}{
		{`up`, []selector{{"up", ""}}},
		{`sum by (job) (cdcrelay_leader) < 1 or absent_over_time(cdcrelay_leader[1h])`,
			[]selector{{"cdcrelay_leader", "sum"}, {"cdcrelay_leader", "absent_over_time"}}},
		{`sum(rate(a_total{job=~"$job", x="}by("}[$__rate_interval])) by (job) / on (job) group_left (instance) b`,
			[]selector{{"a_total", "rate"}, {"b", ""}}},
		{`histogram_quantile(0.99, sum without (instance) (rate(h_bucket[5m] offset -1h)))`,
			[]selector{{"h_bucket", "rate"}}},
		{"max by (job, slot) (x) /\n(max by (job, slot) (x) + min by (job, slot) (y)) > 0.8 # y is absent without a limit",
			[]selector{{"x", "max"}, {"x", "max"}, {"y", "min"}}},
		{`topk(5, x:rate5m) > bool 1e-3 and ${job}_y == inf`, []selector{{"x:rate5m", "topk"}, {"_y", ""}}},
		{`label_replace(vector(1), "a", "$1", "b", "(.*)")`, nil},
		{`count_values("v", z) unless 0x1F`, []selector{{"z", "count_values"}}},
	} {
		got, err := selectors(tc.expr)
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("selectors(%q) = %v, %v; want %v", tc.expr, got, err, tc.want)
		}
	}
	for _, bad := range []string{`sum(x`, `x)`, `{__name__="x"}`, `x{a="b}`, `"x`} {
		if got, err := selectors(bad); err == nil {
			t.Errorf("selectors(%q) = %v, want an error", bad, got)
		}
	}
}
