package decode

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseHeaders(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want map[string][]string
	}{
		{`{"k":"v","k2":["a","b"]}`, map[string][]string{"k": {"v"}, "k2": {"a", "b"}}},
		{` { "k" : "v" , "e" : [ ] } `, map[string][]string{"k": {"v"}, "e": {}}},
		{"{\n\t\"k\":\r\n\"v\"}", map[string][]string{"k": {"v"}}},
		{`{}`, nil},
		{` null `, nil},
		{`{"k": ""}`, map[string][]string{"k": {""}}},
		{`{"k": "a", "k": "b"}`, map[string][]string{"k": {"b"}}}, // json keeps duplicates; the last wins as in jsonb
		{`{"k": "tab\there \"q\" \\ \/ \u00e9 \ud83d\ude00 é"}`, map[string][]string{"k": {"tab\there \"q\" \\ / é 😀 é"}}},
		{`{"k": "\ud83d x \udc00"}`, map[string][]string{"k": {"\uFFFD x \uFFFD"}}},
		{`{"k": "\ud83d\u0041"}`, map[string][]string{"k": {"\uFFFDA"}}},
		{`{"X-Natsy": "ok", "Nats": "ok"}`, map[string][]string{"X-Natsy": {"ok"}, "Nats": {"ok"}}},
	} {
		in := []byte(tc.in)
		got, err := ParseHeaders(in)
		if err != nil {
			t.Errorf("%s: %v", tc.in, err)
			continue
		}
		for i := range in {
			in[i] = 'X'
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: got %#v, want %#v", tc.in, got, tc.want)
		}
	}
}

func TestParseHeadersProblems(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{``, "not a JSON object: end of input"},
		{`{`, "want a quoted header name at byte 1, got end of input"},
		{`{"k"}`, `want ':' after "k"`},
		{`{"k":}`, `value of "k" is '}' at byte 5`},
		{`{"k":true}`, `value of "k" is a boolean`},
		{`{"k":null}`, `value of "k" is null`},
		{`{"k":["a"}`, `want ',' or ']' in the array of "k"`},
		{`{"k":"v"} x`, "trailing data after the object ('x' at byte 10)"},
		{`{"k":"v"}{}`, "trailing data after the object (an object)"},
		{`{"k":"v`, "unterminated string"},
		{`{"k":"v\`, "unterminated string"},
		{`{"k":"\x"}`, `bad escape 'x' at byte 6`},
		{`{"k":"\u12"}`, `bad \u escape at byte 6`},
		{"{\"k\":\"a\tb\"}", `raw control character '\t'`},
		{`{"":"v"}`, "empty header name"},
		{`{"a:b":"v"}`, `header name "a:b" contains ':'`},
		{`{"a\u0000":"v"}`, `header name "a\x00" contains '\x00'`},
		{`{"nats-msg-id":"v"}`, "Nats- prefix is reserved"},
		{`{"k":"a\nb"}`, `value of "k" contains control character '\n'`},
		{`{"k":["ok","a\u0000"]}`, `value of "k" contains control character '\x00'`},
	} {
		got, err := ParseHeaders([]byte(tc.in))
		if err == nil {
			t.Errorf("%s: no error, got %v", tc.in, got)
			continue
		}
		if got != nil {
			t.Errorf("%s: a map with the error", tc.in)
		}
		if !strings.HasPrefix(err.Error(), "headers: ") || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %q, want %q", tc.in, err, tc.want)
		}
	}
}

// A Decoder's scratch must not leak one event's headers into the next.
func TestHeadersScratchReuse(t *testing.T) {
	d := inTx(t, outboxCols)
	vals := testRow.binaryVals()
	first := mustDecode(t, d, insertMsg(outboxOID, vals...)).Event
	vals[4] = bin([]byte("\x01{\"Only\": \"one\"}"))
	second := mustDecode(t, d, insertMsg(outboxOID, vals...)).Event
	if !reflect.DeepEqual(second.Headers, map[string][]string{"Only": {"one"}}) {
		t.Fatalf("second headers %v", second.Headers)
	}
	if !reflect.DeepEqual(first.Headers, wantEvent().Headers) {
		t.Fatalf("first headers changed to %v", first.Headers)
	}
	vals[4] = bin([]byte("\x01{\"Only\": 1}"))
	if ev := mustDecode(t, d, insertMsg(outboxOID, vals...)).Event; ev.Problem == nil || ev.Headers != nil {
		t.Fatalf("bad headers: %+v", ev)
	}
	vals[4] = bin([]byte("\x01{\"After\": \"problem\"}"))
	third := mustDecode(t, d, insertMsg(outboxOID, vals...)).Event
	if !reflect.DeepEqual(third.Headers, map[string][]string{"After": {"problem"}}) {
		t.Fatalf("headers after a problem: %v", third.Headers)
	}
}
