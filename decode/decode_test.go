package decode

import (
	"bytes"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"

	"github.com/cdcrelay/cdcrelay/flow"
)

var commitTime = time.Date(2026, 11, 24, 10, 9, 1, 500000000, time.UTC)

func mustDecode(tb testing.TB, d *Decoder, b []byte) Message {
	tb.Helper()
	m, err := d.Decode(b)
	if err != nil {
		tb.Fatalf("decode %q: %v", b[:1], err)
	}
	return m
}

// inTx returns a decoder that has seen the outbox Relation (cols) and a Begin.
func inTx(tb testing.TB, cols []col) *Decoder {
	tb.Helper()
	d := New(Table{})
	mustDecode(tb, d, relationMsg(outboxOID, "bus", "outbox", cols))
	mustDecode(tb, d, beginMsg(testFinalLSN, commitTime, 7))
	return d
}

func wantEvent() *flow.Event {
	return &flow.Event{
		ID:        testRow.id,
		EventID:   testRow.eventID,
		Subject:   testRow.subject,
		Payload:   testRow.payload,
		Headers:   map[string][]string{"Trace-Id": {"abc"}, "Tags": {"a", "b"}},
		CreatedAt: testRow.createdAt,
		CommitLSN: testFinalLSN,
	}
}

func checkEvent(t *testing.T, got, want *flow.Event) {
	t.Helper()
	if got == nil {
		t.Fatal("no event")
	}
	if got.ID != want.ID || got.EventID != want.EventID || got.Subject != want.Subject ||
		!bytes.Equal(got.Payload, want.Payload) || !got.CreatedAt.Equal(want.CreatedAt) ||
		got.CommitLSN != want.CommitLSN || !reflect.DeepEqual(got.Headers, want.Headers) {
		t.Fatalf("event\n got %+v\nwant %+v", *got, *want)
	}
	if (got.Problem == nil) != (want.Problem == nil) {
		t.Fatalf("problem %v, want %v", got.Problem, want.Problem)
	}
}

func TestTransaction(t *testing.T) {
	for _, tc := range []struct {
		name string
		vals []val
	}{
		{"binary", testRow.binaryVals()},
		{"text", testRow.textVals()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := New(Table{Schema: "bus", Name: "outbox"})
			if m := mustDecode(t, d, relationMsg(outboxOID, "bus", "outbox", outboxCols)); m.Kind != KindRelation {
				t.Fatalf("relation kind %v", m.Kind)
			}
			b := mustDecode(t, d, beginMsg(testFinalLSN, commitTime, 7))
			if b.Kind != KindBegin || b.FinalLSN != testFinalLSN || b.Xid != 7 || !b.CommitTime.Equal(commitTime) {
				t.Fatalf("begin %+v", b)
			}
			m := mustDecode(t, d, insertMsg(outboxOID, tc.vals...))
			if m.Kind != KindInsert {
				t.Fatalf("insert kind %v", m.Kind)
			}
			checkEvent(t, m.Event, wantEvent())
			c := mustDecode(t, d, commitMsg(testFinalLSN, testFinalLSN+0x30, commitTime))
			if c.Kind != KindCommit || c.CommitLSN != testFinalLSN || c.EndLSN != testFinalLSN+0x30 || !c.CommitTime.Equal(commitTime) {
				t.Fatalf("commit %+v", c)
			}
		})
	}
}

// The caller reuses its receive buffer: nothing returned may alias it.
func TestEventIsOwned(t *testing.T) {
	for name, vals := range map[string][]val{"binary": testRow.binaryVals(), "text": testRow.textVals()} {
		t.Run(name, func(t *testing.T) {
			d := inTx(t, outboxCols)
			in := insertMsg(outboxOID, vals...)
			ev := mustDecode(t, d, in).Event
			for i := range in {
				in[i] = 'X'
			}
			checkEvent(t, ev, wantEvent())
			// Appending to one header's values must not clobber another's.
			_ = append(ev.Headers["Trace-Id"], "zzz")
			_ = append(ev.Payload, 'Z')
			checkEvent(t, ev, wantEvent())

			lm := logicalMsg(true, 5, "cdcrelay", []byte("hb"))
			m := mustDecode(t, d, lm)
			for i := range lm {
				lm[i] = 'X'
			}
			if m.Prefix != "cdcrelay" || string(m.Content) != "hb" {
				t.Fatalf("message aliases its input: %q %q", m.Prefix, m.Content)
			}
		})
	}
}

// Poller-era outboxes: other column order, extra columns, int4 id, varchar
// subject, json headers, timestamp without time zone, no published_* columns.
func TestReorderedAndExtraColumns(t *testing.T) {
	cols := []col{
		{"tenant", oidText},
		{"payload", oidBytea},
		{"created_at", oidTimestamp},
		{"subject", oidVarchar},
		{"retries", oidInt4},
		{"headers", oidJSON},
		{"event_id", oidUUID},
		{"id", oidInt4},
	}
	r := testRow
	cases := map[string][]val{
		"binary": {
			bin([]byte("acme")),
			bin(r.payload),
			bin(be64bytes(pgMicros(r.createdAt))),
			bin([]byte(r.subject)),
			bin(be32bytes(3)),
			bin([]byte(r.headers)), // json's binary form is its text
			bin(r.eventID[:]),
			bin(be32bytes(int32(r.id))),
		},
		"text": {
			txt("acme"),
			txt(`\x` + strings.ToUpper(fmtHex(r.payload))),
			txt("2026-11-24 10:09:00.123456"),
			txt(r.subject),
			txt("3"),
			txt(r.headers),
			txt(strings.ToUpper(testEventID)),
			txt("42"),
		},
	}
	for name, vals := range cases {
		t.Run(name, func(t *testing.T) {
			d := inTx(t, cols)
			checkEvent(t, mustDecode(t, d, insertMsg(outboxOID, vals...)).Event, wantEvent())
		})
	}
}

func fmtHex(b []byte) string {
	const digits = "0123456789abcdef"
	var s []byte
	for _, c := range b {
		s = append(s, digits[c>>4], digits[c&15])
	}
	return string(s)
}

func TestOptionalColumns(t *testing.T) {
	minimal := []col{{"id", oidInt8}, {"event_id", oidUUID}, {"subject", oidText}, {"payload", oidBytea}}
	d := inTx(t, minimal)
	ev := mustDecode(t, d, insertMsg(outboxOID, testRow.binaryVals()[:4]...)).Event
	if ev.Headers != nil || !ev.CreatedAt.IsZero() || ev.Problem != nil {
		t.Fatalf("absent optional columns: %+v", ev)
	}

	d = inTx(t, outboxCols)
	vals := testRow.binaryVals()
	vals[4], vals[5] = null(), null()
	ev = mustDecode(t, d, insertMsg(outboxOID, vals...)).Event
	if ev.Headers != nil || !ev.CreatedAt.IsZero() || ev.Problem != nil {
		t.Fatalf("NULL optional columns: %+v", ev)
	}

	// Empty payload and subject are the relay's to judge, not the decoder's.
	vals = testRow.textVals()
	vals[2], vals[3] = txt(""), txt(`\x`)
	ev = mustDecode(t, d, insertMsg(outboxOID, vals...)).Event
	if ev.Subject != "" || ev.Payload == nil || len(ev.Payload) != 0 {
		t.Fatalf("empty subject/payload: %+v", ev)
	}
}

func TestLegacyEscapeBytea(t *testing.T) {
	d := inTx(t, outboxCols)
	vals := testRow.textVals()
	// bytea_output = escape: printable bytes as-is, backslash doubled, the rest octal.
	vals[3] = txt(`{"order":1}\000\377\\`)
	checkEvent(t, mustDecode(t, d, insertMsg(outboxOID, vals...)).Event, wantEvent())
}

func TestRelationReplacedMidStream(t *testing.T) {
	d := inTx(t, outboxCols)
	mustDecode(t, d, insertMsg(outboxOID, testRow.binaryVals()...))

	// ALTER TABLE ... ADD COLUMN: the walsender sends a new Relation for the OID.
	cols := append([]col{{"shard", oidInt4}}, outboxCols...)
	mustDecode(t, d, relationMsg(outboxOID, "bus", "outbox", cols))
	vals := append([]val{bin(be32bytes(9))}, testRow.binaryVals()...)
	checkEvent(t, mustDecode(t, d, insertMsg(outboxOID, vals...)).Event, wantEvent())
	if _, err := d.Decode(insertMsg(outboxOID, testRow.binaryVals()...)); err == nil ||
		!strings.Contains(err.Error(), "tuple has 8 columns, its Relation message 9") {
		t.Fatalf("old layout after replacement: %v", err)
	}

	// Renamed away: the OID is no longer the outbox.
	mustDecode(t, d, relationMsg(outboxOID, "bus", "outbox_old", outboxCols))
	if m := mustDecode(t, d, insertMsg(outboxOID, testRow.binaryVals()...)); m.Kind != KindSkip {
		t.Fatalf("insert into renamed table: %v", m.Kind)
	}

	// A broken replacement must not leave the old layout behind.
	mustDecode(t, d, relationMsg(outboxOID, "bus", "outbox", outboxCols))
	if _, err := d.Decode(relationMsg(outboxOID, "bus", "outbox", outboxCols[1:])); err == nil {
		t.Fatal("relation without id accepted")
	}
	if _, err := d.Decode(insertMsg(outboxOID, testRow.binaryVals()...)); err == nil ||
		!strings.Contains(err.Error(), "relation OID 16400 was not described") {
		t.Fatalf("insert after a broken relation: %v", err)
	}
}

func TestSkipped(t *testing.T) {
	d := inTx(t, outboxCols)
	mustDecode(t, d, relationMsg(otherOID, "public", "orders", []col{{"id", oidInt8}}))
	// Same table name, other schema: not the outbox.
	mustDecode(t, d, relationMsg(otherOID+1, "public", "outbox", outboxCols))
	for name, b := range map[string][]byte{
		"insert into other table":  insertMsg(otherOID, txt("1")),
		"outbox in another schema": insertMsg(otherOID+1, testRow.binaryVals()...),
		"update":                   msg('U').u32(outboxOID).u8('N').b,
		"delete":                   msg('D').u32(outboxOID).u8('K').b,
		"truncate":                 msg('T').u32(1).u8(0).u32(outboxOID).b,
		"type":                     msg('Y').u32(70000).cstr("public").cstr("mood").b,
		"origin":                   msg('O').u64(1).cstr("node1").b,
	} {
		if m, err := d.Decode(b); err != nil || m.Kind != KindSkip {
			t.Errorf("%s: kind %v, err %v", name, m.Kind, err)
		}
	}
}

func TestCustomTable(t *testing.T) {
	d := New(Table{Schema: "events", Name: "out"})
	mustDecode(t, d, relationMsg(outboxOID, "bus", "outbox", outboxCols))
	mustDecode(t, d, relationMsg(otherOID, "events", "out", outboxCols))
	mustDecode(t, d, beginMsg(testFinalLSN, commitTime, 7))
	if m := mustDecode(t, d, insertMsg(outboxOID, testRow.binaryVals()...)); m.Kind != KindSkip {
		t.Fatalf("bus.outbox with a custom table: %v", m.Kind)
	}
	if m := mustDecode(t, d, insertMsg(otherOID, testRow.binaryVals()...)); m.Kind != KindInsert {
		t.Fatalf("events.out: %v", m.Kind)
	}
}

func TestLogicalMessage(t *testing.T) {
	d := New(Table{})
	m := mustDecode(t, d, logicalMsg(false, 0xABCDEF, "cdcrelay", []byte(`{"t":1}`)))
	want := Message{Kind: KindMessage, MessageLSN: 0xABCDEF, Prefix: "cdcrelay", Content: []byte(`{"t":1}`)}
	if !reflect.DeepEqual(m, want) {
		t.Fatalf("got %+v\nwant %+v", m, want)
	}
	mustDecode(t, d, beginMsg(testFinalLSN, commitTime, 7))
	m = mustDecode(t, d, logicalMsg(true, testFinalLSN-8, "", nil))
	if !m.Transactional || m.Prefix != "" || len(m.Content) != 0 || m.MessageLSN != pglogrepl.LSN(testFinalLSN-8) {
		t.Fatalf("transactional message: %+v", m)
	}
}

func TestHeaderProblems(t *testing.T) {
	for _, tc := range []struct{ headers, want string }{
		{`"just a string"`, "not a JSON object: a string"},
		{`[1]`, "not a JSON object: an array"},
		{`{"n": 1}`, `value of "n" is a number`},
		{`{"o": {"a": "b"}}`, `value of "o" is an object`},
		{`{"a": ["x", 2]}`, `array of "a" holds a number`},
		{`{"Nats-Msg-Id": "x"}`, "Nats- prefix is reserved"},
		{`{"X": "a\r\nNats-Msg-Id: y"}`, `value of "X" contains control character '\r'`},
		{`{"bad name": "x"}`, `header name "bad name" contains ' '`},
		{`{"a": "b"`, "want ',' or '}'"},
	} {
		d := inTx(t, outboxCols)
		vals := testRow.binaryVals()
		vals[4] = bin(append([]byte{1}, tc.headers...))
		m, err := d.Decode(insertMsg(outboxOID, vals...))
		if err != nil {
			t.Errorf("%s: a content problem became a decode error: %v", tc.headers, err)
			continue
		}
		if p := m.Event.Problem; p == nil || !strings.HasPrefix(p.Error(), "headers: ") || !strings.Contains(p.Error(), tc.want) {
			t.Errorf("%s: problem %v, want %q", tc.headers, p, tc.want)
		}
		if m.Event.ID != testRow.id || m.Event.Subject != testRow.subject || m.Event.Headers != nil {
			t.Errorf("%s: event with a problem still carries the row: %+v", tc.headers, m.Event)
		}
	}
	d := inTx(t, outboxCols)
	vals := testRow.binaryVals()
	vals[4] = unchangedToast()
	if m := mustDecode(t, d, insertMsg(outboxOID, vals...)); m.Event.Problem == nil {
		t.Error("unchanged-toast headers: no problem")
	}
}

// An empty payload with a "Status" header would be stored and never
// delivered: nats.go's consumers take such a message for a status message
// from the server. It is a problem (a dead letter), with the headers kept
// for the record; a payload, or any other name ("status" too: nats.go
// matches exactly), is fine. Found by review.
func TestStatusHeaderWithoutPayload(t *testing.T) {
	for _, tc := range []struct {
		payload, headers string
		problem          bool
	}{
		{"", `{"Status": "100"}`, true},
		{"", `{"Status": "shipped"}`, true},
		{"x", `{"Status": "shipped"}`, false},
		{"", `{"status": "shipped"}`, false},
		{"", `{"Description": "x"}`, false},
		{"", ``, false},
	} {
		r := testRow
		r.payload, r.headers = []byte(tc.payload), tc.headers
		for name, vals := range map[string][]val{"binary": r.binaryVals(), "text": r.textVals()} {
			m := mustDecode(t, inTx(t, outboxCols), insertMsg(outboxOID, vals...))
			if got := m.Event.Problem; (got != nil) != tc.problem || (got != nil && !strings.Contains(got.Error(), `"Status" header`)) {
				t.Errorf("%s, payload %q, headers %s: problem %v, want one: %v", name, tc.payload, tc.headers, got, tc.problem)
			}
			if tc.problem && m.Event.Headers["Status"] == nil {
				t.Errorf("%s, headers %s: the dead letter would lose its headers", name, tc.headers)
			}
		}
	}
}

func TestEventMethods(t *testing.T) {
	ev := wantEvent()
	if got := ev.EventIDString(); got != testEventID {
		t.Fatalf("EventIDString = %s, want %s", got, testEventID)
	}
	want := len(testRow.payload) + len(testRow.subject) + len("Trace-Id") + len("abc") + len("Tags") + 2
	if got := ev.Size(); got != want {
		t.Fatalf("Size = %d, want %d", got, want)
	}
}
