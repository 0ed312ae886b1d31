package decode

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
)

// Type OIDs of the built-in types the outbox columns may have (pg_type.dat).
const (
	oidBytea       = 17
	oidInt8        = 20
	oidInt4        = 23
	oidText        = 25
	oidJSON        = 114
	oidVarchar     = 1043
	oidTimestamp   = 1114
	oidTimestamptz = 1184
	oidUUID        = 2950
	oidJSONB       = 3802
)

func typeName(oid uint32) string {
	switch oid {
	case oidBytea:
		return "bytea"
	case oidInt8:
		return "int8"
	case oidInt4:
		return "int4"
	case oidText:
		return "text"
	case oidJSON:
		return "json"
	case oidVarchar:
		return "varchar"
	case oidTimestamp:
		return "timestamp"
	case oidTimestamptz:
		return "timestamptz"
	case oidUUID:
		return "uuid"
	case oidJSONB:
		return "jsonb"
	}
	return fmt.Sprintf("type OID %d", oid)
}

// Column value formats in TupleData.
const (
	formatNull      = 'n'
	formatUnchanged = 'u'
	formatText      = 't'
	formatBinary    = 'b'
)

// intValue decodes an int8 or int4 column.
func intValue(typ uint32, format byte, b []byte) (int64, error) {
	if format == formatText {
		return parseDecimal(b)
	}
	switch {
	case typ == oidInt8 && len(b) == 8:
		return int64(binary.BigEndian.Uint64(b)), nil
	case typ == oidInt4 && len(b) == 4:
		return int64(int32(binary.BigEndian.Uint32(b))), nil
	}
	return 0, fmt.Errorf("binary %s is %d bytes", typeName(typ), len(b))
}

var errDecimal = errors.New("not a decimal integer")

func parseDecimal(b []byte) (int64, error) {
	neg := len(b) > 0 && b[0] == '-'
	digits := b
	if neg {
		digits = b[1:]
	}
	if len(digits) == 0 || len(digits) > 19 {
		return 0, fmt.Errorf("%q: %w", b, errDecimal)
	}
	var u uint64
	for _, ch := range digits {
		if ch < '0' || ch > '9' {
			return 0, fmt.Errorf("%q: %w", b, errDecimal)
		}
		u = u*10 + uint64(ch-'0') // 19 digits cannot overflow uint64
	}
	if neg && u <= 1<<63 {
		return -int64(u-1) - 1, nil
	}
	if !neg && u <= math.MaxInt64 {
		return int64(u), nil
	}
	return 0, fmt.Errorf("%q out of int64 range", b)
}

// uuidValue decodes a uuid column: 16 bytes, or 8-4-4-4-12 hex text.
func uuidValue(format byte, b []byte) ([16]byte, error) {
	var u [16]byte
	if format == formatBinary {
		if len(b) != 16 {
			return u, fmt.Errorf("binary uuid is %d bytes, want 16", len(b))
		}
		copy(u[:], b)
		return u, nil
	}
	if len(b) != 36 || b[8] != '-' || b[13] != '-' || b[18] != '-' || b[23] != '-' {
		return u, fmt.Errorf("%q is not a uuid in 8-4-4-4-12 form", b)
	}
	j := 0
	for i := 0; i < 36; i += 2 {
		if i == 8 || i == 13 || i == 18 || i == 23 {
			i++
		}
		hi, lo := unhex(b[i]), unhex(b[i+1])
		if hi > 15 || lo > 15 {
			return u, fmt.Errorf("%q is not a uuid: bad hex digit", b)
		}
		u[j] = hi<<4 | lo
		j++
	}
	return u, nil
}

func unhex(c byte) byte {
	switch {
	case c >= '0' && c <= '9':
		return c - '0'
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10
	}
	return 0xff
}

// byteaLen returns the decoded length of a bytea column. Text comes in the
// hex form (bytea_output = hex, the default) or the legacy escape form.
func byteaLen(format byte, b []byte) (int, error) {
	if format == formatBinary {
		return len(b), nil
	}
	if len(b) >= 2 && b[0] == '\\' && b[1] == 'x' {
		if len(b)%2 != 0 {
			return 0, fmt.Errorf("hex bytea has an odd number of digits (%d)", len(b)-2)
		}
		return (len(b) - 2) / 2, nil
	}
	n := 0
	for i := 0; i < len(b); n++ {
		switch {
		case b[i] != '\\':
			i++
		case i+1 < len(b) && b[i+1] == '\\':
			i += 2
		case i+3 < len(b) && isOctal(b[i+1]) && isOctal(b[i+2]) && isOctal(b[i+3]) && b[i+1] <= '3':
			i += 4
		default:
			return 0, fmt.Errorf("escape bytea has a bad escape sequence at byte %d", i)
		}
	}
	return n, nil
}

func isOctal(c byte) bool { return c >= '0' && c <= '7' }

// byteaDecode writes the value into dst, which byteaLen sized and validated.
func byteaDecode(format byte, b, dst []byte) error {
	if format == formatBinary {
		copy(dst, b)
		return nil
	}
	if len(b) >= 2 && b[0] == '\\' && b[1] == 'x' {
		if _, err := hex.Decode(dst, b[2:]); err != nil {
			return fmt.Errorf("hex bytea: %w", err)
		}
		return nil
	}
	for i, j := 0, 0; i < len(b); j++ {
		switch {
		case b[i] != '\\':
			dst[j] = b[i]
			i++
		case b[i+1] == '\\':
			dst[j] = '\\'
			i += 2
		default:
			dst[j] = (b[i+1]-'0')<<6 | (b[i+2]-'0')<<3 | (b[i+3] - '0')
			i += 4
		}
	}
	return nil
}

// jsonText returns the JSON text of a json or jsonb column.
func jsonText(typ uint32, format byte, b []byte) ([]byte, error) {
	if format == formatBinary && typ == oidJSONB {
		// jsonb_send: a format version byte, then the text form.
		if len(b) == 0 || b[0] != 1 {
			v := -1
			if len(b) > 0 {
				v = int(b[0])
			}
			return nil, fmt.Errorf("binary jsonb version %d not supported (want 1)", v)
		}
		return b[1:], nil
	}
	return b, nil
}
