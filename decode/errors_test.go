package decode

import (
	"strings"
	"testing"
)

func TestDecodeErrors(t *testing.T) {
	withVal := func(i int, v val) []byte {
		vals := testRow.binaryVals()
		vals[i] = v
		return insertMsg(outboxOID, vals...)
	}
	withText := func(i int, s string) []byte {
		vals := testRow.textVals()
		vals[i] = txt(s)
		return insertMsg(outboxOID, vals...)
	}
	validInsert := insertMsg(outboxOID, testRow.binaryVals()...)
	for _, tc := range []struct {
		name string
		msg  []byte
		want []string // all must appear in the error
	}{
		{"empty", nil, []string{"empty message"}},
		{"unknown type", []byte("X123"), []string{"unknown message type 'X' (0x58)"}},
		{"streaming type", []byte{'S', 0, 0, 0, 1, 0}, []string{"unknown message type 'S'"}},
		{"begin trailing", append(beginMsg(1, commitTime, 1), 0), []string{"begin:", "1 unexpected trailing bytes"}},
		{"begin inside tx", beginMsg(2, commitTime, 8), []string{"begin of xid 8", "inside the transaction"}},
		{"commit LSN mismatch", commitMsg(testFinalLSN+1, testFinalLSN+2, commitTime), []string{"commit LSN 0/16B3749 differs from the begin's final LSN 0/16B3748"}},
		{"message length", msg('M').u8(0).u64(1).cstr("p").u32(10).raw([]byte("abc")).b, []string{"message:", "content length 10 exceeds the 3 bytes left"}},
		{"message prefix", msg('M').u8(0).u64(1).raw([]byte("pfx")).b, []string{"message:", "prefix at offset 10 has no terminating NUL"}},

		{"insert unknown relation", insertMsg(unknownOID, txt("1")), []string{"insert:", "relation OID 99999 was not described by a Relation message"}},
		{"insert trailing", append(validInsert, 1, 2), []string{"insert: into bus.outbox:", "2 unexpected trailing bytes"}},
		{"insert tuple tag", append(msg('I').u32(outboxOID).u8('K').b, validInsert[6:]...), []string{"tuple tag 'K', want 'N'"}},
		{"insert column count", insertMsg(outboxOID, testRow.binaryVals()[:7]...), []string{"tuple has 7 columns, its Relation message 8"}},
		{"insert value format", withVal(2, val{format: 'x'}), []string{`column 2 "subject": unknown value format 'x'`}},
		{"insert value length", append(msg('I').u32(outboxOID).u8('N').u16(8).u8('b').u32(1000).b, 1, 2, 3), []string{`column 0 "id": value length 1000 exceeds the 3 bytes left`}},
		{"insert negative length", msg('I').u32(outboxOID).u8('N').u16(8).u8('t').u32(0xffffffff).b, []string{`column 0 "id": value length 4294967295 exceeds the 0 bytes left`}},
		{"insert ignored column truncated", validInsert[:len(validInsert)-1], []string{`column 7 "published_at": column format truncated`}},
		{"NULL id", withVal(0, null()), []string{`column "id" is NULL`}},
		{"NULL event_id", withVal(1, null()), []string{`column "event_id" is NULL`}},
		{"NULL subject", withVal(2, null()), []string{`column "subject" is NULL`}},
		{"NULL payload", withVal(3, null()), []string{`column "payload" is NULL`}},
		{"unchanged payload", withVal(3, unchangedToast()), []string{`column "payload" is an unchanged TOAST value`}},
		{"binary id length", withVal(0, bin([]byte{1, 2, 3})), []string{`column "id": binary int8 is 3 bytes`}},
		{"text id", withText(0, "12a"), []string{`column "id": "12a": not a decimal integer`}},
		{"text id overflow", withText(0, "9223372036854775808"), []string{`column "id": "9223372036854775808" out of int64 range`}},
		{"binary uuid", withVal(1, bin([]byte{1, 2})), []string{`column "event_id": binary uuid is 2 bytes, want 16`}},
		{"text uuid", withText(1, "01935e7a-4b2c-7d11-8a0b-c3d4e5f6071g"), []string{`column "event_id"`, "bad hex digit"}},
		{"text uuid form", withText(1, "01935e7a4b2c7d118a0bc3d4e5f60718"), []string{`column "event_id"`, "not a uuid in 8-4-4-4-12 form"}},
		{"hex bytea odd", withText(3, `\x123`), []string{`column "payload": hex bytea has an odd number of digits (3)`}},
		{"hex bytea digit", withText(3, `\x1g`), []string{`column "payload": hex bytea: encoding/hex: invalid byte: U+0067 'g'`}},
		{"escape bytea", withText(3, `ab\9`), []string{`column "payload": escape bytea has a bad escape sequence at byte 2`}},
		{"jsonb version", withVal(4, bin([]byte{2, '{', '}'})), []string{`column "headers": binary jsonb version 2 not supported`}},
		{"jsonb empty", withVal(4, bin(nil)), []string{`column "headers": binary jsonb version -1`}},
		{"binary timestamp", withVal(5, bin([]byte{1})), []string{`column "created_at": binary timestamp is 1 bytes, want 8`}},
		{"text timestamp", withText(5, "11/24/2026 10:09:00 UTC"), []string{`column "created_at"`, "not an ISO timestamp", "DateStyle ISO"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := inTx(t, outboxCols)
			_, err := d.Decode(tc.msg)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Fatalf("error %q does not say %q", err, w)
				}
			}
		})
	}
}

func TestTransactionOrderErrors(t *testing.T) {
	d := New(Table{})
	mustDecode(t, d, relationMsg(outboxOID, "bus", "outbox", outboxCols))
	if _, err := d.Decode(insertMsg(outboxOID, testRow.binaryVals()...)); err == nil || !strings.Contains(err.Error(), "outside a transaction") {
		t.Fatalf("insert before begin: %v", err)
	}
	if _, err := d.Decode(commitMsg(1, 2, commitTime)); err == nil || !strings.Contains(err.Error(), "without a begin") {
		t.Fatalf("commit before begin: %v", err)
	}
}

func TestRelationErrors(t *testing.T) {
	replace := func(name string, c col) []col {
		out := make([]col, 0, len(outboxCols))
		for _, o := range outboxCols {
			if o.name == name {
				if c.name == "" {
					continue
				}
				o = c
			}
			out = append(out, o)
		}
		return out
	}
	for _, tc := range []struct {
		name string
		msg  []byte
		want []string
	}{
		{"missing id", relationMsg(outboxOID, "bus", "outbox", replace("id", col{})), []string{`required column "id" is missing`, "apply cdcrelay's migrations"}},
		{"missing event_id", relationMsg(outboxOID, "bus", "outbox", replace("event_id", col{})), []string{`outbox bus.outbox: required column "event_id" is missing`, "cdcrelay's migrations"}},
		{"missing subject", relationMsg(outboxOID, "bus", "outbox", replace("subject", col{})), []string{`"subject" is missing`}},
		{"missing payload", relationMsg(outboxOID, "bus", "outbox", replace("payload", col{})), []string{`"payload" is missing`}},
		{"text payload", relationMsg(outboxOID, "bus", "outbox", replace("payload", col{"payload", oidText})), []string{`column "payload" has type text, want bytea`, "cdcrelay's migrations"}},
		{"bigserial uuid", relationMsg(outboxOID, "bus", "outbox", replace("event_id", col{"event_id", oidInt8})), []string{`column "event_id" has type int8, want uuid`}},
		{"numeric id", relationMsg(outboxOID, "bus", "outbox", replace("id", col{"id", 1700})), []string{`column "id" has type type OID 1700, want int8 or int4`}},
		{"text headers", relationMsg(outboxOID, "bus", "outbox", replace("headers", col{"headers", oidText})), []string{`column "headers" has type text, want jsonb or json`}},
		{"date created_at", relationMsg(outboxOID, "bus", "outbox", replace("created_at", col{"created_at", 1082})), []string{`column "created_at" has type type OID 1082, want timestamptz or timestamp`}},
		{"column count", msg('R').u32(1).cstr("bus").cstr("outbox").u8('d').u16(100).u8(0).cstr("id").u32(20).u32(0).b, []string{"relation: bus.outbox (OID 1): 100 columns cannot fit in the 12 bytes left"}},
		{"column truncated", relationMsg(outboxOID, "public", "t", outboxCols[:2])[:40], []string{"relation: public.t (OID 16400): column 1: column type OID truncated: need 4 bytes at offset 39, 1 left"}},
		{"name without NUL", msg('R').u32(1).raw([]byte("bus")).b, []string{"relation: namespace at offset 5 has no terminating NUL"}},
		{"trailing", append(relationMsg(outboxOID, "public", "t", outboxCols), 9), []string{"relation: public.t (OID 16400): 1 unexpected trailing bytes"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(Table{}).Decode(tc.msg)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Fatalf("error %q does not say %q", err, w)
				}
			}
		})
	}
}

// Every proper prefix of every parsed message is an error naming its
// message, never a panic or a silently short event.
func TestTruncatedEverywhere(t *testing.T) {
	for name, full := range map[string][]byte{
		"begin":         beginMsg(testFinalLSN, commitTime, 7),
		"commit":        commitMsg(testFinalLSN, testFinalLSN+8, commitTime),
		"message":       logicalMsg(true, 1, "cdcrelay", []byte("content")),
		"relation":      relationMsg(outboxOID, "bus", "outbox", outboxCols),
		"insert binary": insertMsg(outboxOID, testRow.binaryVals()...),
		"insert text":   insertMsg(outboxOID, testRow.textVals()...),
	} {
		t.Run(name, func(t *testing.T) {
			for n := 1; n < len(full); n++ {
				d := inTx(t, outboxCols)
				if full[0] == 'B' {
					d = New(Table{})
				}
				_, err := d.Decode(full[:n])
				if err == nil {
					t.Fatalf("prefix of %d/%d bytes decoded", n, len(full))
				}
				if prefix := strings.Fields(name)[0] + ":"; !strings.HasPrefix(err.Error(), prefix) {
					t.Fatalf("prefix %d: error %q does not start with %q", n, err, prefix)
				}
			}
		})
	}
}
