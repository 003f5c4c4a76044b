package causal

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/netmesh/libnetmesh/core/identity"
)

// katEntity is 01 02 … 20; its origin hash was checked with Python's
// hashlib.blake2s(key=b"net-origin-v1").
var katEntity = func() (id identity.EntityID) {
	for i := range id {
		id[i] = byte(i + 1)
	}
	return id
}()

const katOrigin = uint64(0x37ca659cd385129b)

// Python-checked encodings of katSnapshot (with katLedgerHex as bindings) and
// of katSnapshot with no bindings and katEnvelope.
const (
	katSnapshotHex = "43445331020102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20" +
		"0500000000000000" + "9b1285d39c65ca370f000000000000000500000000000000887766554433221100002a36fe9c9717" +
		"05000000" + "7374617465" + "35000000" + katLedgerHex + "00"
	katSnapshotEnvHex = "43445331020102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20" +
		"0500000000000000" + "9b1285d39c65ca370f000000000000000500000000000000887766554433221100002a36fe9c9717" +
		"05000000" + "7374617465" + "00000000" + "01" + "01" +
		"0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f" +
		"303132333435363738393a3b3c3d3e3f404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f" +
		"606162636465666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e7f808182838485868788898a8b8c8d8e8f" +
		"909192939495969798999a9b9c9d9e9fa0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebf" +
		"c0c1c2c3c4c5c6c7c8c9cacbcccdcecfd0"
)

func katEnvelope() *[EnvelopeSize]byte {
	var e [EnvelopeSize]byte
	e[0] = EnvelopeVersion
	for i := 1; i < EnvelopeSize; i++ {
		e[i] = byte(i)
	}
	return &e
}

func katSnapshot(t testing.TB) *Snapshot {
	return &Snapshot{
		EntityID:   katEntity,
		ThroughSeq: 5,
		ChainLink:  Link{Origin: katOrigin, Horizon: 0x0f, Sequence: 5, Parent: 0x1122334455667788},
		CreatedAt:  1700000000000000000,
		State:      []byte("state"),
		Bindings:   mustHex(t, katLedgerHex),
	}
}

func TestSnapshotKnownAnswer(t *testing.T) {
	require.Equal(t, katOrigin, identity.OriginHashOf(katEntity))
	s := katSnapshot(t)
	enc := s.Encode()
	assert.Equal(t, katSnapshotHex, hex.EncodeToString(enc))
	assert.Equal(t, len(enc), s.EncodedLen())
	got, err := DecodeSnapshot(enc)
	require.NoError(t, err)
	assert.Equal(t, s, got)

	s.Bindings = nil
	s.Envelope = katEnvelope()
	enc = s.Encode()
	assert.Equal(t, katSnapshotEnvHex, hex.EncodeToString(enc))
	assert.Equal(t, len(enc), s.EncodedLen())
	got, err = DecodeSnapshot(enc)
	require.NoError(t, err)
	assert.Equal(t, s, got)
}

func TestSnapshotOverhead(t *testing.T) {
	s := &Snapshot{EntityID: katEntity, ChainLink: Genesis(katOrigin)}
	assert.Len(t, s.Encode(), SnapshotOverhead)
	assert.Equal(t, 94, s.EncodedLen())
	s.Envelope = katEnvelope()
	assert.Len(t, s.Encode(), 303)
	assert.Equal(t, 303, s.EncodedLen())
}

func TestDecodeSnapshotDoesNotAlias(t *testing.T) {
	enc := katSnapshot(t).Encode()
	got, err := DecodeSnapshot(enc)
	require.NoError(t, err)
	for i := range enc {
		enc[i] = 0xee
	}
	assert.Equal(t, katSnapshot(t), got)
}

// Vectors snapshot-magic-version and snapshot-no-envelope-trailer.
func TestSnapshotLayoutVectors(t *testing.T) {
	s := katSnapshot(t)
	s.Bindings = bytes.Repeat([]byte{0x55}, 42)
	s.Envelope = katEnvelope()
	enc := s.Encode()
	assert.Equal(t, "43445331", hex.EncodeToString(enc[:4]))
	assert.Equal(t, byte(SnapshotVersion), enc[4])
	assert.Equal(t, byte(2), enc[4])
	got, err := DecodeSnapshot(enc)
	require.NoError(t, err)
	assert.Equal(t, s.Bindings, got.Bindings)
	assert.Equal(t, s.Envelope, got.Envelope)

	plain := &Snapshot{EntityID: katEntity, ChainLink: Genesis(katOrigin), State: []byte("s")}
	enc = plain.Encode()
	assert.Equal(t, byte(0), enc[len(enc)-1])
	got, err = DecodeSnapshot(enc)
	require.NoError(t, err)
	assert.Nil(t, got.Envelope)
	assert.Nil(t, got.Bindings)
}

// Vector snapshot-empty-ledger: a daemon with no subscriptions stores no
// ledger bytes (bindings_len 0).
func TestSnapshotEmptyLedger(t *testing.T) {
	s := &Snapshot{EntityID: katEntity, ChainLink: Genesis(katOrigin), State: []byte("st"), Bindings: EncodeLedger(nil)}
	assert.Empty(t, s.Bindings)
	enc := s.Encode()
	assert.Equal(t, []byte{0, 0, 0, 0}, enc[offStateLen+4+2:][:4])
}

func TestDecodeSnapshotRejects(t *testing.T) {
	valid := katSnapshot(t).Encode()
	withEnv := func() []byte {
		s := katSnapshot(t)
		s.Envelope = katEnvelope()
		return s.Encode()
	}
	mutate := func(b []byte, f func([]byte) []byte) []byte {
		return f(bytes.Clone(b))
	}
	// The pre-magic (v0) layout began directly with the entity id.
	preMagic := mutate(valid, func(b []byte) []byte { return b[offEntity:] })

	cases := []struct {
		name string
		in   []byte
		is   error
	}{
		{"nil", nil, ErrMalformed},
		{"magic only", []byte("CDS1"), ErrMalformed},
		// Vector snapshot-other-rejects, "10 zero bytes".
		{"10 zero bytes", make([]byte, 10), ErrBadMagic},
		// Vector snapshot-v1-rejected.
		{"version 1", mustHex(t, "43445331"+"01"+hex.EncodeToString(make([]byte, 84))), ErrUnsupportedVersion},
		{"version 1 full length", mutate(valid, func(b []byte) []byte { b[4] = 1; return b }), ErrUnsupportedVersion},
		{"version 0xfe", mutate(valid, func(b []byte) []byte { b[4] = 0xfe; return b }), ErrUnsupportedVersion},
		{"version 3", mutate(valid, func(b []byte) []byte { b[4] = 3; return b }), ErrUnsupportedVersion},
		{"pre-magic v0 body", preMagic, ErrBadMagic},
		{"lower-case magic", mutate(valid, func(b []byte) []byte { b[0] = 'c'; return b }), ErrBadMagic},
		{"trailing 0xff", append(bytes.Clone(valid), 0xff), ErrMalformed},
		{"trailing after envelope", append(withEnv(), 0), ErrMalformed},
		// Vector snapshot-through-seq-offset.
		{"through_seq corrupted", mutate(valid, func(b []byte) []byte { b[37] = 0xff; return b }), ErrInconsistent},
		{"link sequence corrupted", mutate(valid, func(b []byte) []byte { b[offLink+16] ^= 1; return b }), ErrInconsistent},
		{"link origin corrupted", mutate(valid, func(b []byte) []byte { b[offLink] ^= 1; return b }), ErrInconsistent},
		{"entity id corrupted", mutate(valid, func(b []byte) []byte { b[offEntity] ^= 1; return b }), ErrInconsistent},
		{"flag 2", mutate(valid, func(b []byte) []byte { b[len(b)-1] = 2; return b }), ErrMalformed},
		{"flag 0xff", mutate(valid, func(b []byte) []byte { b[len(b)-1] = 0xff; return b }), ErrMalformed},
		{"flag 1 without envelope", mutate(valid, func(b []byte) []byte { b[len(b)-1] = 1; return b }), ErrMalformed},
		{"envelope version 0", mutate(withEnv(), func(b []byte) []byte { b[len(b)-EnvelopeSize] = 0; return b }), ErrBadEnvelope},
		{"envelope version 2", mutate(withEnv(), func(b []byte) []byte { b[len(b)-EnvelopeSize] = 2; return b }), ErrBadEnvelope},
		// A version-1 envelope was 208 bytes.
		{"208-byte envelope", withEnv()[:len(withEnv())-1], ErrMalformed},
		{"state_len too big", mutate(valid, func(b []byte) []byte {
			binary.LittleEndian.PutUint32(b[offStateLen:], 0xffffffff)
			return b
		}), ErrMalformed},
		{"bindings_len too big", mutate(valid, func(b []byte) []byte {
			binary.LittleEndian.PutUint32(b[offStateLen+4+5:], uint32(len(b)))
			return b
		}), ErrMalformed},
		{"no flag", valid[:len(valid)-1], ErrMalformed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, err := DecodeSnapshot(tc.in)
			require.Error(t, err)
			assert.Nil(t, s)
			assert.ErrorIs(t, err, ErrMalformed)
			assert.ErrorIs(t, err, tc.is)
		})
	}
	// Every strict prefix is a truncation.
	for _, b := range [][]byte{valid, withEnv()} {
		for n := range len(b) {
			_, err := DecodeSnapshot(b[:n])
			require.ErrorIs(t, err, ErrMalformed, "prefix %d", n)
		}
	}
}

func TestSnapshotValidate(t *testing.T) {
	s := katSnapshot(t)
	require.NoError(t, s.Validate())
	s.ThroughSeq++
	assert.ErrorIs(t, s.Validate(), ErrInconsistent)
	s = katSnapshot(t)
	s.ChainLink.Origin++
	assert.ErrorIs(t, s.Validate(), ErrInconsistent)
	s = katSnapshot(t)
	s.Envelope = katEnvelope()
	s.Envelope[0] = 9
	assert.ErrorIs(t, s.Validate(), ErrBadEnvelope)
}

func FuzzDecodeSnapshot(f *testing.F) {
	valid := katSnapshot(f)
	f.Add(valid.Encode())
	valid.Envelope = katEnvelope()
	f.Add(valid.Encode())
	f.Add((&Snapshot{EntityID: katEntity, ChainLink: Genesis(katOrigin)}).Encode())
	f.Add(mustHex(f, "43445331"+"01"+hex.EncodeToString(make([]byte, 84))))
	f.Add(make([]byte, 10))
	f.Add(append(valid.Encode(), 0xff))
	f.Add([]byte("CDS1\x02"))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := DecodeSnapshot(b)
		if err != nil {
			require.ErrorIs(t, err, ErrMalformed)
			require.Nil(t, s)
			return
		}
		require.NoError(t, s.Validate())
		require.Equal(t, len(b), s.EncodedLen())
		require.True(t, bytes.Equal(b, s.Encode()))
	})
}

func benchSnapshot() *Snapshot {
	s := &Snapshot{
		EntityID:   katEntity,
		ThroughSeq: 1000,
		ChainLink:  Link{Origin: katOrigin, Sequence: 1000, Parent: 0x1234},
		CreatedAt:  1700000000000000000,
		State:      bytes.Repeat([]byte{0xa5}, 64<<10),
		Envelope:   katEnvelope(),
	}
	s.Bindings = EncodeLedger([]Binding{{Publisher: 1, Channel: "sensors/temp", Token: make([]byte, 169)}})
	return s
}

func BenchmarkSnapshotEncode(b *testing.B) {
	s := benchSnapshot()
	b.SetBytes(int64(s.EncodedLen()))
	b.ReportAllocs()
	for b.Loop() {
		_ = s.Encode()
	}
}

func BenchmarkSnapshotDecode(b *testing.B) {
	enc := benchSnapshot().Encode()
	b.SetBytes(int64(len(enc)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeSnapshot(enc); err != nil {
			b.Fatal(err)
		}
	}
}
