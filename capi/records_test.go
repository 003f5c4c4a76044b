package main

import (
	"bytes"
	"encoding/binary"
	"testing"
)

// encodeRecords is the inverse of parseRecords: [u64 LE length][bytes] per
// record.
func encodeRecords(outs [][]byte) []byte {
	var b []byte
	for _, o := range outs {
		b = binary.LittleEndian.AppendUint64(b, uint64(len(o)))
		b = append(b, o...)
	}
	return b
}

func TestParseRecords(t *testing.T) {
	outs, err := parseRecords(nil, encodeRecords([][]byte{[]byte("ab"), {}, []byte("c")}))
	if err != nil || len(outs) != 3 || string(outs[0]) != "ab" || len(outs[1]) != 0 || string(outs[2]) != "c" {
		t.Fatalf("parsed %q, %v", outs, err)
	}
	if outs, err := parseRecords(nil, nil); err != nil || len(outs) != 0 {
		t.Fatalf("empty: %q, %v", outs, err)
	}
	for name, b := range map[string][]byte{
		"truncated length": {1, 0, 0},
		"length past end":  {5, 0, 0, 0, 0, 0, 0, 0, 'x'},
		"huge length":      {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 'x'},
		"trailing bytes":   append(encodeRecords([][]byte{[]byte("a")}), 0),
	} {
		if _, err := parseRecords(nil, b); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	// views, not copies, and each capped so an append cannot reach the next
	b := encodeRecords([][]byte{[]byte("xy"), []byte("z")})
	outs, err = parseRecords(nil, b)
	if err != nil || cap(outs[0]) != 2 || &outs[0][0] != &b[8] {
		t.Fatalf("not capped views of the input: %v", err)
	}
}

// FuzzParseRecords: no panic on any input; what parses re-encodes to the
// same bytes.
func FuzzParseRecords(f *testing.F) {
	f.Add(encodeRecords([][]byte{[]byte("a"), []byte("bc")}))
	f.Add(encodeRecords([][]byte{{}}))
	f.Add([]byte{})
	f.Add([]byte{9, 0, 0, 0, 0, 0, 0, 0, 'x'})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		outs, err := parseRecords(nil, b)
		if err != nil {
			return
		}
		if got := encodeRecords(outs); !bytes.Equal(got, b) {
			t.Fatalf("re-encoded %x, parsed %x", got, b)
		}
	})
}
