package decode

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"reflect"
	"strconv"
	"testing"
	"unicode/utf8"

	"github.com/google/uuid"
)

// FuzzDecode feeds arbitrary messages to a decoder that has seen the outbox
// Relation and a Begin, so that inserts reach the tuple and value decoders.
// Besides not panicking, a decoded event must not alias its input.
func FuzzDecode(f *testing.F) {
	reordered := []col{{"payload", oidBytea}, {"x", oidText}, {"created_at", oidTimestamp}, {"subject", oidVarchar}, {"headers", oidJSON}, {"event_id", oidUUID}, {"id", oidInt4}}
	for _, seed := range [][]byte{
		beginMsg(testFinalLSN, commitTime, 7),
		commitMsg(testFinalLSN, testFinalLSN+8, commitTime),
		logicalMsg(true, 1, "cdcrelay", []byte("content")),
		logicalMsg(false, 1, "", nil),
		relationMsg(outboxOID, "bus", "outbox", outboxCols),
		relationMsg(outboxOID, "bus", "outbox", reordered),
		relationMsg(otherOID, "public", "t", outboxCols),
		insertMsg(outboxOID, testRow.binaryVals()...),
		insertMsg(outboxOID, testRow.textVals()...),
		insertMsg(otherOID, txt("1")),
		msg('U').u32(outboxOID).u8('N').b,
		[]byte("X"),
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		d := inTx(t, outboxCols)
		in := bytes.Clone(data)
		m, err := d.Decode(in)
		if err != nil {
			if m.Kind != 0 || m.Event != nil {
				t.Fatalf("error %v with a message %+v", err, m)
			}
			return
		}
		if m.Kind == KindRelation {
			// Follow a replaced layout with an insert, which it must either
			// decode or refuse cleanly.
			_, _ = d.Decode(insertMsg(outboxOID, testRow.binaryVals()...))
			_, _ = d.Decode(insertMsg(outboxOID, testRow.textVals()...))
			return
		}
		ev := m.Event
		if ev == nil {
			return
		}
		subject, payload, headers := ev.Subject, bytes.Clone(ev.Payload), ev.Headers
		for i := range in {
			in[i] ^= 0xff
		}
		if ev.Subject != subject || !bytes.Equal(ev.Payload, payload) || !reflect.DeepEqual(ev.Headers, headers) {
			t.Fatal("event aliases the input buffer")
		}
		_ = ev.EventIDString()
		_ = ev.Size()
	})
}

// FuzzParseHeaders checks the hand-written parser against encoding/json on
// valid UTF-8: whatever encoding/json reads as an object of strings and
// string arrays we must read the same, and the reverse.
func FuzzParseHeaders(f *testing.F) {
	for _, s := range []string{
		`{"k":"v","k2":["a","b"]}`, `{}`, `null`, `{"k": "\u00e9\ud83d\ude00\n"}`, `{"a":1}`, `[]`,
		`{"k":["a",{"b":"c"}]}`, `{"k":"v"} `, `{"k" "v"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := ParseHeaders(data)
		if err != nil || !utf8.Valid(data) {
			return
		}
		var ref map[string]any
		if jerr := json.Unmarshal(data, &ref); jerr != nil {
			t.Fatalf("we accepted %q, encoding/json did not: %v", data, jerr)
		}
		if len(ref) == 0 {
			if got != nil {
				t.Fatalf("%q: want a nil map, got %v", data, got)
			}
			return
		}
		want := make(map[string][]string, len(ref))
		for k, v := range ref {
			switch v := v.(type) {
			case string:
				want[k] = []string{v}
			case []any:
				want[k] = []string{}
				for _, e := range v {
					s, ok := e.(string)
					if !ok {
						t.Fatalf("%q: we accepted a non-string array element", data)
					}
					want[k] = append(want[k], s)
				}
			default:
				t.Fatalf("%q: we accepted a %T value", data, v)
			}
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%q: got %#v, encoding/json says %#v", data, got, want)
		}
	})
}

// FuzzInsertColumns builds well-formed Insert messages around arbitrary
// column values, so the fuzzer spends its time in the value decoders rather
// than in framing, and checks accepted values against the standard library.
func FuzzInsertColumns(f *testing.F) {
	r := testRow
	bv, tv := r.binaryVals(), r.textVals()
	f.Add(uint16(0), bv[0].data, bv[1].data, bv[2].data, bv[3].data, bv[4].data, bv[5].data)
	f.Add(uint16(0x3f), tv[0].data, tv[1].data, tv[2].data, tv[3].data, tv[4].data, tv[5].data)
	f.Add(uint16(0x3f|0x1c0), []byte("-1"), tv[1].data, []byte("s"), []byte(`\001a\\`), []byte(`{"a":["b"]}`), []byte("0044-03-15 12:00:00 BC"))
	f.Fuzz(func(t *testing.T, mode uint16, id, eventID, subject, payload, headers, created []byte) {
		// Bits 0-5: column i in text format; 6: int4 id; 7: json headers;
		// 8: timestamp; 9-14: column i NULL.
		cols := []col{
			{"id", pick(mode&0x40 != 0, oidInt4, oidInt8)},
			{"event_id", oidUUID},
			{"subject", oidText},
			{"payload", oidBytea},
			{"headers", pick(mode&0x80 != 0, oidJSON, oidJSONB)},
			{"created_at", pick(mode&0x100 != 0, oidTimestamp, oidTimestamptz)},
		}
		vals := make([]val, 6)
		for i, data := range [][]byte{id, eventID, subject, payload, headers, created} {
			vals[i] = val{formatBinary, data}
			if mode&(1<<i) != 0 {
				vals[i].format = formatText
			}
			if mode&(1<<(9+i)) != 0 {
				vals[i] = null()
			}
		}
		d := inTx(t, cols)
		in := insertMsg(outboxOID, vals...)
		m, err := d.Decode(in)
		if err != nil {
			return
		}
		ev := m.Event
		if vals[0].format == formatText {
			if want, err := strconv.ParseInt(string(id), 10, 64); err != nil || want != ev.ID {
				t.Fatalf("id %q: decoded %d, strconv says %d %v", id, ev.ID, want, err)
			}
		}
		if vals[1].format == formatText {
			if want, err := uuid.Parse(string(eventID)); err != nil || want != ev.EventID {
				t.Fatalf("event_id %q: decoded %x, uuid.Parse says %x %v", eventID, ev.EventID, want, err)
			}
		}
		switch {
		case vals[3].format == formatBinary:
			if !bytes.Equal(ev.Payload, payload) {
				t.Fatal("binary payload changed")
			}
		case bytes.HasPrefix(payload, []byte(`\x`)):
			if want, err := hex.DecodeString(string(payload[2:])); err != nil || !bytes.Equal(want, ev.Payload) {
				t.Fatalf("payload %q: decoded %x, encoding/hex says %x %v", payload, ev.Payload, want, err)
			}
		}
		if ev.Subject != string(subject) {
			t.Fatal("subject changed")
		}
		for i := range in {
			in[i] ^= 0xff
		}
		if ev.Subject != string(subject) {
			t.Fatal("subject aliases the input")
		}
	})
}

func pick(cond bool, a, b uint32) uint32 {
	if cond {
		return a
	}
	return b
}
