package decode

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"strconv"
	"time"
)

// A test-only pgoutput encoder: enough to hand-build every message the
// decoder reads, valid or deliberately broken.

type enc struct{ b []byte }

func msg(typ byte) *enc { return &enc{b: []byte{typ}} }

func (e *enc) u8(v byte) *enc     { e.b = append(e.b, v); return e }
func (e *enc) u16(v uint16) *enc  { e.b = binary.BigEndian.AppendUint16(e.b, v); return e }
func (e *enc) u32(v uint32) *enc  { e.b = binary.BigEndian.AppendUint32(e.b, v); return e }
func (e *enc) u64(v uint64) *enc  { e.b = binary.BigEndian.AppendUint64(e.b, v); return e }
func (e *enc) cstr(s string) *enc { e.b = append(append(e.b, s...), 0); return e }
func (e *enc) raw(b []byte) *enc  { e.b = append(e.b, b...); return e }

type col struct {
	name string
	typ  uint32
}

func relationMsg(oid uint32, ns, name string, cols []col) []byte {
	e := msg('R').u32(oid).cstr(ns).cstr(name).u8('d').u16(uint16(len(cols)))
	for i, c := range cols {
		flags := byte(0)
		if i == 0 {
			flags = 1
		}
		e.u8(flags).cstr(c.name).u32(c.typ).u32(0xffffffff)
	}
	return e.b
}

// val is one TupleData column.
type val struct {
	format byte
	data   []byte
}

func txt(s string) val    { return val{formatText, []byte(s)} }
func bin(b []byte) val    { return val{formatBinary, b} }
func null() val           { return val{format: formatNull} }
func unchangedToast() val { return val{format: formatUnchanged} }

func tuple(e *enc, vals []val) *enc {
	e.u16(uint16(len(vals)))
	for _, v := range vals {
		e.u8(v.format)
		if v.format == formatText || v.format == formatBinary {
			e.u32(uint32(len(v.data))).raw(v.data)
		}
	}
	return e
}

func insertMsg(oid uint32, vals ...val) []byte {
	return tuple(msg('I').u32(oid).u8('N'), vals).b
}

func beginMsg(final uint64, ts time.Time, xid uint32) []byte {
	return msg('B').u64(final).u64(uint64(pgMicros(ts))).u32(xid).b
}

func commitMsg(commit, end uint64, ts time.Time) []byte {
	return msg('C').u8(0).u64(commit).u64(end).u64(uint64(pgMicros(ts))).b
}

func logicalMsg(transactional bool, lsn uint64, prefix string, content []byte) []byte {
	flags := byte(0)
	if transactional {
		flags = 1
	}
	return msg('M').u8(flags).u64(lsn).cstr(prefix).u32(uint32(len(content))).raw(content).b
}

func pgMicros(t time.Time) int64 {
	return t.UnixMicro() - pgEpochUnix*1e6
}

func be64bytes(v int64) []byte { return binary.BigEndian.AppendUint64(nil, uint64(v)) }
func be32bytes(v int32) []byte { return binary.BigEndian.AppendUint32(nil, uint32(v)) }

// The migrated outbox layout, plus the columns the relay ignores.
const (
	oidBool      = 16
	outboxOID    = 16400
	otherOID     = 16500
	unknownOID   = 99999
	testFinalLSN = 0x16B3748
)

var outboxCols = []col{
	{"id", oidInt8},
	{"event_id", oidUUID},
	{"subject", oidText},
	{"payload", oidBytea},
	{"headers", oidJSONB},
	{"created_at", oidTimestamptz},
	{"published_to_nats", oidBool},
	{"published_at", oidTimestamptz},
}

// row is one outbox row the tests encode in either format.
type row struct {
	id        int64
	eventID   [16]byte
	subject   string
	payload   []byte
	headers   string // JSON text; "" is NULL
	createdAt time.Time
}

var testRow = row{
	id:        42,
	eventID:   [16]byte{0x01, 0x93, 0x5e, 0x7a, 0x4b, 0x2c, 0x7d, 0x11, 0x8a, 0x0b, 0xc3, 0xd4, 0xe5, 0xf6, 0x07, 0x18},
	subject:   "orders.created",
	payload:   []byte("{\"order\":1}\x00\xff\\"),
	headers:   `{"Trace-Id": "abc", "Tags": ["a", "b"]}`,
	createdAt: time.Date(2026, 11, 24, 10, 9, 0, 123456000, time.UTC),
}

const testEventID = "01935e7a-4b2c-7d11-8a0b-c3d4e5f60718"

// binaryVals encodes r as pgoutput does with binary 'true', in outboxCols order.
func (r row) binaryVals() []val {
	h := null()
	if r.headers != "" {
		h = bin(append([]byte{1}, r.headers...))
	}
	return []val{
		bin(be64bytes(r.id)),
		bin(r.eventID[:]),
		bin([]byte(r.subject)),
		bin(r.payload),
		h,
		bin(be64bytes(pgMicros(r.createdAt))),
		bin([]byte{0}),
		null(),
	}
}

// textVals encodes r as pgoutput does in text mode, in outboxCols order.
func (r row) textVals() []val {
	h := null()
	if r.headers != "" {
		h = txt(r.headers)
	}
	return []val{
		txt(fmtInt(r.id)),
		txt(fmtUUID(r.eventID)),
		txt(r.subject),
		txt(`\x` + hex.EncodeToString(r.payload)),
		h,
		txt(r.createdAt.Format("2006-01-02 15:04:05.999999-07")),
		txt("f"),
		null(),
	}
}

func fmtInt(v int64) string { return strconv.FormatInt(v, 10) }

// fmtUUID formats independently of Event.EventIDString, which is under test.
func fmtUUID(u [16]byte) string {
	return fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
}
