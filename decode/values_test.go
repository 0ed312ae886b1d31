package decode

import (
	"math"
	"testing"
	"time"
)

func TestParseISOTime(t *testing.T) {
	ist := time.FixedZone("IST", 5*3600+30*60)
	for _, tc := range []struct {
		in   string
		want time.Time
	}{
		{"2026-11-24 10:09:00.123456+00", time.Date(2026, 11, 24, 10, 9, 0, 123456000, time.UTC)},
		{"2026-11-24 10:09:00+00", time.Date(2026, 11, 24, 10, 9, 0, 0, time.UTC)},
		{"2026-11-24 15:39:00.5+05:30", time.Date(2026, 11, 24, 15, 39, 0, 500000000, ist)},
		{"2026-11-24 05:09:00-05", time.Date(2026, 11, 24, 10, 9, 0, 0, time.UTC)},
		{"1883-11-18 12:03:57+00:03:58", time.Date(1883, 11, 18, 11, 59, 59, 0, time.UTC)}, // LMT offsets have seconds
		{"2026-11-24 10:09:00.123456", time.Date(2026, 11, 24, 10, 9, 0, 123456000, time.UTC)},
		{"2026-11-24T10:09:00", time.Date(2026, 11, 24, 10, 9, 0, 0, time.UTC)},
		{"12026-01-01 00:00:00+00", time.Date(12026, 1, 1, 0, 0, 0, 0, time.UTC)},
		{"0044-03-15 12:00:00+00 BC", time.Date(-43, 3, 15, 12, 0, 0, 0, time.UTC)},
		{"infinity", time.Time{}},
		{"-infinity", time.Time{}},
	} {
		got, ok := parseISOTime([]byte(tc.in))
		if !ok || !got.Equal(tc.want) {
			t.Errorf("%s: got %v %v, want %v", tc.in, got, ok, tc.want)
		}
	}
	for _, bad := range []string{
		"", "2026-11-24", "2026-11-24 10:09", "26-11-24 10:09:00", "2026-13-01 00:00:00",
		"2026-11-24 10:09:00.", "2026-11-24 10:09:00+5", "2026-11-24 10:09:00+05:", "2026-11-24 10:09:00 UTC",
		"Tue Nov 24 10:09:00 2026 UTC", "2026-11-24 10:09:00.1234567890",
	} {
		if got, ok := parseISOTime([]byte(bad)); ok {
			t.Errorf("%q parsed as %v", bad, got)
		}
	}
}

func TestPGTime(t *testing.T) {
	for _, tc := range []struct {
		us   int64
		want time.Time
	}{
		{0, time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)},
		{-1, time.Date(1999, 12, 31, 23, 59, 59, 999999000, time.UTC)},
		{1_500_000, time.Date(2000, 1, 1, 0, 0, 1, 500000000, time.UTC)},
		{math.MaxInt64, time.Time{}},
		{math.MinInt64, time.Time{}},
	} {
		if got := pgTime(tc.us); !got.Equal(tc.want) {
			t.Errorf("pgTime(%d) = %v, want %v", tc.us, got, tc.want)
		}
	}
}

func TestParseDecimal(t *testing.T) {
	for in, want := range map[string]int64{
		"0": 0, "42": 42, "-7": -7,
		"9223372036854775807":  math.MaxInt64,
		"-9223372036854775808": math.MinInt64,
	} {
		if got, err := parseDecimal([]byte(in)); err != nil || got != want {
			t.Errorf("%s: %d %v", in, got, err)
		}
	}
	for _, bad := range []string{"", "-", "+1", "1 ", "9223372036854775808", "-9223372036854775809", "99999999999999999999"} {
		if got, err := parseDecimal([]byte(bad)); err == nil {
			t.Errorf("%q parsed as %d", bad, got)
		}
	}
}

func TestBinaryInt4(t *testing.T) {
	if v, err := intValue(oidInt4, formatBinary, be32bytes(-5)); err != nil || v != -5 {
		t.Fatalf("int4 -5: %d %v", v, err)
	}
	if _, err := intValue(oidInt4, formatBinary, be64bytes(5)); err == nil {
		t.Fatal("8-byte int4 accepted")
	}
}
