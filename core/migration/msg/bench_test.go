package msg

import "testing"

func BenchmarkSplitReassemble1MiB(b *testing.B) {
	snap := make([]byte, 1<<20)
	for i := range snap {
		snap[i] = byte(i)
	}
	r := NewReassembler(nil)
	b.SetBytes(int64(len(snap)))
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		chunks := Split(snap)
		var got []byte
		for j, c := range chunks {
			var err error
			if got, err = r.Add(1, uint64(i), uint32(j), uint32(len(chunks)), c); err != nil {
				b.Fatal(err)
			}
		}
		if len(got) != len(snap) {
			b.Fatalf("reassembled %d bytes", len(got))
		}
	}
}

func BenchmarkEncodeDecodeSnapshotReady(b *testing.B) {
	m := &Message{Type: SnapshotReady, Origin: 1, SeqThrough: 2, TotalChunks: 1, Chunk: make([]byte, ChunkSize)}
	buf := make([]byte, 0, m.EncodedLen())
	b.SetBytes(int64(m.EncodedLen()))
	b.ReportAllocs()
	for b.Loop() {
		buf = m.AppendTo(buf[:0])
		if _, err := Decode(buf); err != nil {
			b.Fatal(err)
		}
	}
}
