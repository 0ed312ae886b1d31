package decode

import (
	"encoding/binary"
	"fmt"
	"math"
	"time"
)

// pgEpochUnix is 2000-01-01 00:00:00 UTC, PostgreSQL's timestamp epoch.
const pgEpochUnix = 946684800

// pgTime converts microseconds since the PostgreSQL epoch. The infinities
// (int64 extremes) have no time.Time and come back as zero.
func pgTime(us int64) time.Time {
	if us == math.MaxInt64 || us == math.MinInt64 {
		return time.Time{}
	}
	sec, rem := us/1e6, us%1e6
	if rem < 0 {
		sec, rem = sec-1, rem+1e6
	}
	return time.Unix(pgEpochUnix+sec, rem*1e3).UTC()
}

// timeValue decodes a timestamptz or timestamp column; a timestamp without
// time zone is read as UTC.
func timeValue(format byte, b []byte) (time.Time, error) {
	if format == formatBinary {
		if len(b) != 8 {
			return time.Time{}, fmt.Errorf("binary timestamp is %d bytes, want 8", len(b))
		}
		return pgTime(int64(binary.BigEndian.Uint64(b))), nil
	}
	t, ok := parseISOTime(b)
	if !ok {
		return time.Time{}, fmt.Errorf("%q is not an ISO timestamp (the replication connection must use DateStyle ISO)", b)
	}
	return t, nil
}

// parseISOTime parses what timestamp(tz)_out prints with DateStyle ISO:
// "2026-11-24 10:09:00.123456+05:30", years beyond 9999, a " BC" suffix,
// offsets of hours, minutes and (for historical zones) seconds, and the
// infinities (zero time).
func parseISOTime(b []byte) (time.Time, bool) {
	if string(b) == "infinity" || string(b) == "-infinity" {
		return time.Time{}, true
	}
	p := 0
	num := func(min, max int) (int, bool) {
		start, v := p, 0
		for p < len(b) && p-start < max && b[p] >= '0' && b[p] <= '9' {
			v = v*10 + int(b[p]-'0')
			p++
		}
		return v, p-start >= min
	}
	sep := func(c byte) bool {
		if p < len(b) && b[p] == c {
			p++
			return true
		}
		return false
	}
	year, ok1 := num(4, 9)
	ok2 := sep('-')
	month, ok3 := num(2, 2)
	ok4 := sep('-')
	day, ok5 := num(2, 2)
	ok6 := sep(' ') || sep('T')
	hour, ok7 := num(2, 2)
	ok8 := sep(':')
	minute, ok9 := num(2, 2)
	ok10 := sep(':')
	sec, ok11 := num(2, 2)
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6 && ok7 && ok8 && ok9 && ok10 && ok11) {
		return time.Time{}, false
	}
	nsec := 0
	if sep('.') {
		start := p
		frac, ok := num(1, 9)
		if !ok {
			return time.Time{}, false
		}
		for i := p - start; i < 9; i++ {
			frac *= 10
		}
		nsec = frac
	}
	offset := 0
	if p < len(b) && (b[p] == '+' || b[p] == '-') {
		sign := 1
		if b[p] == '-' {
			sign = -1
		}
		p++
		h, ok := num(2, 2)
		if !ok {
			return time.Time{}, false
		}
		offset = h * 3600
		if sep(':') {
			m, ok := num(2, 2)
			if !ok {
				return time.Time{}, false
			}
			offset += m * 60
			if sep(':') {
				s, ok := num(2, 2)
				if !ok {
					return time.Time{}, false
				}
				offset += s
			}
		}
		offset *= sign
	}
	if len(b)-p == 3 && string(b[p:]) == " BC" {
		year = 1 - year // 1 BC is year 0 in time.Date's proleptic calendar
		p += 3
	}
	if p != len(b) || month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || minute > 59 || sec > 59 {
		return time.Time{}, false
	}
	t := time.Date(year, time.Month(month), day, hour, minute, sec, nsec, time.UTC)
	return t.Add(-time.Duration(offset) * time.Second), true
}
