package main

import (
	"bytes"
	"encoding/binary"
	"testing"
)

// encodeBatchRecords is the inverse of parseBatchRecords: per event its
// output count, then [len][bytes] per output.
func encodeBatchRecords(outs [][]byte, ends []int) []byte {
	var b []byte
	start := 0
	for _, e := range ends {
		b = binary.LittleEndian.AppendUint64(b, uint64(e-start))
		for _, o := range outs[start:e] {
			b = binary.LittleEndian.AppendUint64(b, uint64(len(o)))
			b = append(b, o...)
		}
		start = e
	}
	return b
}

func TestParseBatchRecords(t *testing.T) {
	outs := [][]byte{[]byte("a"), {}, []byte("ccc"), []byte("dd")}
	ends := []int{0, 1, 3, 3, 4}
	b := encodeBatchRecords(outs, ends)
	var s batchScratch
	if err := parseBatchRecords(&s, b, uint64(len(ends))); err != nil {
		t.Fatal(err)
	}
	if len(s.outs) != len(outs) || len(s.ends) != len(ends) {
		t.Fatalf("got %d outputs, %d ends", len(s.outs), len(s.ends))
	}
	for i := range outs {
		if !bytes.Equal(s.outs[i], outs[i]) {
			t.Fatalf("output %d: %q", i, s.outs[i])
		}
	}
	for i := range ends {
		if s.ends[i] != ends[i] {
			t.Fatalf("end %d: %d", i, s.ends[i])
		}
	}
	bad := map[string]struct {
		b []byte
		n uint64
	}{
		"count truncated":   {b[:4], 1},
		"too few events":    {b, uint64(len(ends) + 1)},
		"bytes left over":   {b, uint64(len(ends) - 1)},
		"length past end":   {b[:len(b)-1], uint64(len(ends))},
		"count past end":    {binary.LittleEndian.AppendUint64(nil, 1<<40), 1},
		"huge length":       {append(binary.LittleEndian.AppendUint64(binary.LittleEndian.AppendUint64(nil, 1), 1<<63), 'x'), 1},
		"none and n_done 1": {nil, 1},
	}
	for name, c := range bad {
		var s batchScratch
		if err := parseBatchRecords(&s, c.b, c.n); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// FuzzParseBatchRecords: no panic on any input; what parses re-encodes to
// the same bytes.
func FuzzParseBatchRecords(f *testing.F) {
	f.Add(encodeBatchRecords([][]byte{[]byte("a"), []byte("bc")}, []int{1, 1, 2}), uint8(3))
	f.Add(encodeBatchRecords(nil, []int{0, 0}), uint8(2))
	f.Add([]byte{1, 0, 0, 0, 0, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0, 'x'}, uint8(1))
	f.Add([]byte{}, uint8(0))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, uint8(1))
	f.Fuzz(func(t *testing.T, b []byte, n uint8) {
		var s batchScratch
		if err := parseBatchRecords(&s, b, uint64(n)); err != nil {
			return
		}
		if len(s.ends) != int(n) {
			t.Fatalf("%d ends for %d events", len(s.ends), n)
		}
		if got := encodeBatchRecords(s.outs, s.ends); !bytes.Equal(got, b) {
			t.Fatalf("re-encoded %x, parsed %x", got, b)
		}
	})
}
