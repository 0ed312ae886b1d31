package replication

import (
	"encoding/binary"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"
)

func xlogData(start, end uint64, micros int64, payload string) []byte {
	b := []byte{'w'}
	b = binary.BigEndian.AppendUint64(b, start)
	b = binary.BigEndian.AppendUint64(b, end)
	b = binary.BigEndian.AppendUint64(b, uint64(micros))
	return append(b, payload...)
}

func keepalive(end uint64, micros int64, reply byte) []byte {
	b := []byte{'k'}
	b = binary.BigEndian.AppendUint64(b, end)
	b = binary.BigEndian.AppendUint64(b, uint64(micros))
	return append(b, reply)
}

func TestParseFrame(t *testing.T) {
	y2k := time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
	cases := []struct {
		name  string
		in    []byte
		want  Frame
		error string
	}{
		{name: "xlogdata", in: xlogData(0x10, 0x20, 1_500_000, "BIC"),
			want: Frame{Kind: FrameXLogData, WALStart: 0x10, ServerWALEnd: 0x20, ServerTime: y2k.Add(1500 * time.Millisecond), Data: []byte("BIC")}},
		{name: "xlogdata without payload", in: xlogData(1, 2, 0, ""),
			want: Frame{Kind: FrameXLogData, WALStart: 1, ServerWALEnd: 2, ServerTime: y2k, Data: []byte{}}},
		{name: "keepalive asking for a reply", in: keepalive(0x1_0000_0002, -1, 1),
			want: Frame{Kind: FrameKeepalive, ServerWALEnd: 0x1_0000_0002, ServerTime: y2k.Add(-time.Microsecond), ReplyRequested: true}},
		{name: "keepalive", in: keepalive(7, 0, 0), want: Frame{Kind: FrameKeepalive, ServerWALEnd: 7, ServerTime: y2k}},
		{name: "empty", in: nil, error: "empty CopyData"},
		{name: "short xlogdata", in: xlogData(1, 2, 3, "")[:24], error: "XLogData message is 24 bytes"},
		{name: "short keepalive", in: keepalive(1, 2, 0)[:17], error: "keepalive message is 17 bytes"},
		{name: "long keepalive", in: append(keepalive(1, 2, 0), 0), error: "keepalive message is 19 bytes"},
		{name: "unknown", in: []byte("z"), error: `unknown replication message type 'z'`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseFrame(tc.in)
			if tc.error != "" {
				if err == nil || !strings.Contains(err.Error(), tc.error) {
					t.Fatalf("error %v, want %q", err, tc.error)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.Kind != tc.want.Kind || got.WALStart != tc.want.WALStart || got.ServerWALEnd != tc.want.ServerWALEnd ||
				!got.ServerTime.Equal(tc.want.ServerTime) || got.ReplyRequested != tc.want.ReplyRequested ||
				string(got.Data) != string(tc.want.Data) || (got.Data == nil) != (tc.want.Data == nil) {
				t.Fatalf("got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestParseFrameAgreesWithPglogrepl(t *testing.T) {
	in := xlogData(0xAB, 0xCD, 123_456_789, "payload")
	x, err := pglogrepl.ParseXLogData(in[1:])
	if err != nil {
		t.Fatal(err)
	}
	f, err := parseFrame(in)
	if err != nil {
		t.Fatal(err)
	}
	if f.WALStart != x.WALStart || f.ServerWALEnd != x.ServerWALEnd || !f.ServerTime.Equal(x.ServerTime) || string(f.Data) != string(x.WALData) {
		t.Fatalf("ours %+v, pglogrepl %+v", f, x)
	}
	k, err := pglogrepl.ParsePrimaryKeepaliveMessage(keepalive(9, 99, 1)[1:])
	if err != nil {
		t.Fatal(err)
	}
	f, err = parseFrame(keepalive(9, 99, 1))
	if err != nil {
		t.Fatal(err)
	}
	if f.ServerWALEnd != k.ServerWALEnd || !f.ServerTime.Equal(k.ServerTime) || f.ReplyRequested != k.ReplyRequested {
		t.Fatalf("ours %+v, pglogrepl %+v", f, k)
	}
}

func TestParseFrameDoesNotAllocate(t *testing.T) {
	in := xlogData(1, 2, 3, strings.Repeat("x", 256))
	if n := testing.AllocsPerRun(100, func() { _, _ = parseFrame(in) }); n != 0 {
		t.Fatalf("%v allocations per frame", n)
	}
}

func FuzzParseFrame(f *testing.F) {
	f.Add(xlogData(1, 2, 3, "BIC"))
	f.Add(keepalive(1, 2, 1))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, in []byte) {
		fr, err := parseFrame(in)
		if err == nil && fr.Kind == FrameXLogData && len(fr.Data) != len(in)-xlogDataHeaderLen {
			t.Fatalf("payload of %d bytes from a %d-byte message", len(fr.Data), len(in))
		}
	})
}

func TestParseServerVersion(t *testing.T) {
	for in, want := range map[string]int{
		"15.18 (Debian 15.18-0+deb12u1)": 150018,
		"17.2":                           170002,
		"18devel":                        180000,
		"16beta1":                        160000,
		"9.6.24":                         90624,
		"10.23":                          100023,
	} {
		if got, err := parseServerVersion(in); err != nil || got != want {
			t.Errorf("parseServerVersion(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "devel", "9"} {
		if _, err := parseServerVersion(in); err == nil {
			t.Errorf("parseServerVersion(%q) accepted", in)
		}
	}
}

func TestPutStatus(t *testing.T) {
	var b [statusLen]byte
	pos := pglogrepl.LSN(0x0102030405060708)
	now := time.Date(2000, 1, 1, 0, 0, 1, 0, time.UTC)
	for _, reply := range []bool{false, true} {
		putStatus(&b, pos, now, reply)
		if b[0] != 'd' || binary.BigEndian.Uint32(b[1:]) != 38 || b[5] != 'r' {
			t.Fatalf("framing % x", b[:6])
		}
		for i, name := range []string{"write", "flush", "apply"} {
			if got := pglogrepl.LSN(binary.BigEndian.Uint64(b[6+8*i:])); got != pos {
				t.Fatalf("%s position %s, want %s", name, got, pos)
			}
		}
		if got := binary.BigEndian.Uint64(b[30:]); got != 1_000_000 {
			t.Fatalf("client time %d", got)
		}
		if (b[38] == 1) != reply || b[38] > 1 {
			t.Fatalf("reply flag %d", b[38])
		}
	}
	// Zero stays zero everywhere: nothing is filled in from elsewhere.
	putStatus(&b, 0, now, false)
	if binary.BigEndian.Uint64(b[6:]) != 0 || binary.BigEndian.Uint64(b[14:]) != 0 || binary.BigEndian.Uint64(b[22:]) != 0 {
		t.Fatal("zero position changed")
	}
}

func BenchmarkParseFrame(b *testing.B) {
	in := xlogData(1, 2, 3, strings.Repeat("x", 300))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := parseFrame(in); err != nil {
			b.Fatal(err)
		}
	}
}
