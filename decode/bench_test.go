package decode

import (
	"bytes"
	"testing"
)

// benchRow has the payload size and header the relay's throughput target is
// stated for.
func benchRow() row {
	r := testRow
	r.payload = bytes.Repeat([]byte("x"), 256)
	r.headers = `{"Trace-Id": "4bf92f3577b34da6a3ce929d0e0e4736"}`
	return r
}

func benchmarkInsert(b *testing.B, vals []val) {
	d := inTx(b, outboxCols)
	in := insertMsg(outboxOID, vals...)
	b.SetBytes(int64(len(in)))
	b.ReportAllocs()
	for b.Loop() {
		m, err := d.Decode(in)
		if err != nil || m.Event.Problem != nil {
			b.Fatal(err, m.Event.Problem)
		}
	}
}

func BenchmarkDecodeInsertBinary(b *testing.B) { benchmarkInsert(b, benchRow().binaryVals()) }

func BenchmarkDecodeInsertText(b *testing.B) { benchmarkInsert(b, benchRow().textVals()) }

func BenchmarkDecodeBeginCommit(b *testing.B) {
	d := New(Table{})
	begin := beginMsg(testFinalLSN, commitTime, 7)
	commit := commitMsg(testFinalLSN, testFinalLSN+8, commitTime)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := d.Decode(begin); err != nil {
			b.Fatal(err)
		}
		if _, err := d.Decode(commit); err != nil {
			b.Fatal(err)
		}
	}
}
