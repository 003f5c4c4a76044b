package msg

import (
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/netmesh/libnetmesh/core/causal"
)

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	require.NoError(t, err)
	return b
}

// vectors.json migration-reason-codes.
func TestReasonCodesVector(t *testing.T) {
	want := map[ReasonCode]uint16{
		NotReady: 0, FactoryNotFound: 1, ComputeNotSupported: 2, StateFailed: 3,
		AlreadyMigrating: 4, IdentityTransportFailed: 5, NotReadyTimeout: 6,
	}
	for c, n := range want {
		assert.Equal(t, n, uint16(c))
		assert.Equal(t, c == NotReady, Reason{Code: c}.Retriable(), "retriable %v", c)
		// The code is what goes on the wire, right after type and origin.
		b := (&Message{Type: MigrationFailed, Reason: Reason{Code: c}}).Encode()
		assert.Equal(t, []byte{byte(n), 0}, b[9:11])
	}
	assert.False(t, Reason{Code: 7}.Code.Known())
}

func TestReasonKindAndString(t *testing.T) {
	cases := []struct {
		r          Reason
		kind, text string
	}{
		{Reason{Code: NotReady}, "not-ready", "not-ready"},
		{Reason{Code: FactoryNotFound}, "factory-not-found", "factory-not-found"},
		{Reason{Code: ComputeNotSupported}, "compute-not-supported", "compute-not-supported"},
		{Reason{Code: StateFailed, Text: "boom"}, "state-failed", "state-failed: boom"},
		{Reason{Code: AlreadyMigrating}, "already-migrating", "already-migrating"},
		{Reason{Code: IdentityTransportFailed, Text: "no key"}, "identity-transport-failed", "identity-transport-failed: no key"},
		{Reason{Code: NotReadyTimeout, Attempts: 3}, "not-ready-timeout", "not-ready-timeout after 3 attempts"},
		{Reason{Code: 99}, "unknown", "unknown(99)"},
	}
	for _, c := range cases {
		assert.Equal(t, c.kind, c.r.Kind())
		assert.Equal(t, c.text, c.r.String())
	}
}

// vectors.json migration-unknown-reason.
func TestDecodeUnknownReasonVector(t *testing.T) {
	_, err := Decode(unhex(t, "06efbe000000000000ffff"))
	require.ErrorIs(t, err, ErrUnknownReason)
	require.ErrorIs(t, err, ErrMalformed)
	assert.Contains(t, err.Error(), "unknown MigrationFailureReason code")
}

// vectors.json migration-snapshotready-total0, -index, -totalmax.
func TestDecodeSnapshotReadyVectors(t *testing.T) {
	cases := []struct {
		id, hex, mention string
		err              error
	}{
		{"total0", "01aaaa0000000000000100000000000000000000000000000000000000", "total_chunks", ErrChunkTotal},
		{"index", "01aaaa0000000000000100000000000000050000000300000000000000", "chunk_index", ErrChunkIndex},
		{"totalmax", "01aaaa000000000000010000000000000000000000ffffffff00000000", "MAX_TOTAL_CHUNKS", ErrChunkTotal},
	}
	for _, c := range cases {
		t.Run(c.id, func(t *testing.T) {
			_, err := Decode(unhex(t, c.hex))
			require.ErrorIs(t, err, c.err)
			require.ErrorIs(t, err, ErrMalformed)
			assert.Contains(t, err.Error(), c.mention)
		})
	}
	// Same fields with a valid header do decode: the refusals are the header's.
	m, err := Decode(unhex(t, "01aaaa0000000000000100000000000000020000000300000000000000"))
	require.NoError(t, err)
	assert.Equal(t, &Message{Type: SnapshotReady, Origin: 0xaaaa, SeqThrough: 1, ChunkIndex: 2, TotalChunks: 3}, m)
}

// vectors.json migration-oversized-reason.
func TestEncodeOversizedReasonVector(t *testing.T) {
	for _, code := range []ReasonCode{StateFailed, IdentityTransportFailed} {
		m := &Message{Type: MigrationFailed, Origin: 1, Reason: Reason{Code: code, Text: strings.Repeat("x", 65536)}}
		_, err := m.MarshalBinary()
		require.ErrorIs(t, err, ErrUnencodable)
		require.ErrorIs(t, err, ErrTextTooLong)
		assert.Contains(t, err.Error(), codeName(code))

		// Encode never breaks framing: it cuts the text to what fits.
		got, err := Decode(m.Encode())
		require.NoError(t, err)
		assert.Equal(t, strings.Repeat("x", 65535), got.Reason.Text)

		m.Reason.Text = strings.Repeat("x", 65535)
		b, err := m.MarshalBinary()
		require.NoError(t, err)
		got, err = Decode(b)
		require.NoError(t, err)
		assert.Equal(t, m, got)
	}
}

func TestEncodeClipsAtCharacterBoundary(t *testing.T) {
	// 65534 ASCII bytes then a 3-byte character: only the ASCII fits.
	text := strings.Repeat("a", 65534) + "€"
	m := &Message{Type: MigrationFailed, Reason: Reason{Code: StateFailed, Text: text}}
	got, err := Decode(m.Encode())
	require.NoError(t, err)
	assert.Equal(t, text[:65534], got.Reason.Text)
}

// Every message type with every field it carries; the exact bytes are the
// FORMATS §6 layout written out by hand.
func TestEncodeLayout(t *testing.T) {
	link := causal.Link{Origin: 0x11, Horizon: 0x22, Sequence: 0x33, Parent: 0x44}
	linkHex := "1100000000000000" + "2200000000000000" + "3300000000000000" + "4400000000000000"
	const origin = "efbeadde00000000" // 0xdeadbeef
	cases := []struct {
		m   Message
		hex string
	}{
		{Message{Type: TakeSnapshot, Origin: 0xdeadbeef, TargetNode: 0x0102030405060708}, "00" + origin + "0807060504030201"},
		{Message{Type: SnapshotReady, Origin: 0xdeadbeef, SeqThrough: 10, ChunkIndex: 1, TotalChunks: 2, Chunk: []byte{0xaa, 0xbb}},
			"01" + origin + "0a00000000000000" + "01000000" + "02000000" + "02000000" + "aabb"},
		{Message{Type: RestoreComplete, Origin: 0xdeadbeef, Seq: 5}, "02" + origin + "0500000000000000"},
		{Message{Type: ReplayComplete, Origin: 0xdeadbeef, Seq: 6, TargetHead: link}, "03" + origin + "0600000000000000" + linkHex},
		{Message{Type: CutoverNotify, Origin: 0xdeadbeef, TargetNode: 9}, "04" + origin + "0900000000000000"},
		{Message{Type: CleanupComplete, Origin: 0xdeadbeef}, "05" + origin},
		{Message{Type: MigrationFailed, Origin: 0xdeadbeef, Reason: Reason{Code: NotReady}}, "06" + origin + "0000"},
		{Message{Type: MigrationFailed, Origin: 0xdeadbeef, Reason: Reason{Code: FactoryNotFound}}, "06" + origin + "0100"},
		{Message{Type: MigrationFailed, Origin: 0xdeadbeef, Reason: Reason{Code: ComputeNotSupported}}, "06" + origin + "0200"},
		{Message{Type: MigrationFailed, Origin: 0xdeadbeef, Reason: Reason{Code: StateFailed, Text: "ab"}}, "06" + origin + "0300" + "0200" + "6162"},
		{Message{Type: MigrationFailed, Origin: 0xdeadbeef, Reason: Reason{Code: AlreadyMigrating}}, "06" + origin + "0400"},
		{Message{Type: MigrationFailed, Origin: 0xdeadbeef, Reason: Reason{Code: IdentityTransportFailed, Text: "é"}}, "06" + origin + "0500" + "0200" + "c3a9"},
		{Message{Type: MigrationFailed, Origin: 0xdeadbeef, Reason: Reason{Code: NotReadyTimeout, Attempts: 7}}, "06" + origin + "0600" + "07"},
		{Message{Type: BufferedEvents, Origin: 0xdeadbeef, Events: []causal.Event{
			{Link: link, Payload: []byte{1, 2, 3}, ReceivedAt: 0x1234},
			{Link: link, ReceivedAt: 1},
		}}, "07" + origin + "02000000" +
			linkHex + "03000000" + "010203" + "3412000000000000" +
			linkHex + "00000000" + "0100000000000000"},
		{Message{Type: BufferedEvents, Origin: 0xdeadbeef}, "07" + origin + "00000000"},
		{Message{Type: ActivateTarget, Origin: 0xdeadbeef}, "08" + origin},
		{Message{Type: ActivateAck, Origin: 0xdeadbeef, Seq: 0xffffffffffffffff}, "09" + origin + "ffffffffffffffff"},
	}
	for _, c := range cases {
		t.Run(c.m.Type.String(), func(t *testing.T) {
			m := c.m
			require.NoError(t, m.Validate())
			b := m.Encode()
			assert.Equal(t, c.hex, hex.EncodeToString(b))
			assert.Len(t, b, m.EncodedLen())
			assert.Equal(t, append([]byte("prefix"), b...), m.AppendTo([]byte("prefix")))

			got, err := Decode(b)
			require.NoError(t, err)
			assert.Equal(t, &m, got)

			// Trailing bytes are ignored.
			got, err = Decode(append(b, 0xff, 0x00))
			require.NoError(t, err)
			assert.Equal(t, &m, got)

			// Every strict prefix is refused as truncated (a cut event list
			// may instead be refused earlier, by its count).
			for n := range len(b) {
				_, err := Decode(b[:n])
				require.ErrorIs(t, err, ErrMalformed, "prefix of %d bytes", n)
				if m.Type == BufferedEvents && n >= 13 {
					require.True(t, errors.Is(err, ErrTruncated) || errors.Is(err, ErrTooManyEvents), "prefix of %d bytes: %v", n, err)
				} else {
					require.ErrorIs(t, err, ErrTruncated, "prefix of %d bytes", n)
				}
			}
		})
	}
}

func TestEncodeIgnoresFieldsTheTypeDoesNotCarry(t *testing.T) {
	m := &Message{Type: CleanupComplete, Origin: 3, TargetNode: 4, Seq: 5, Chunk: []byte{1},
		Reason: Reason{Code: StateFailed, Text: "x"}, Events: []causal.Event{{}}}
	got, err := Decode(m.Encode())
	require.NoError(t, err)
	assert.Equal(t, &Message{Type: CleanupComplete, Origin: 3}, got)

	// Text and attempts travel only with the codes that carry them.
	m = &Message{Type: MigrationFailed, Reason: Reason{Code: NotReady, Text: "dropped", Attempts: 4}}
	got, err = Decode(m.Encode())
	require.NoError(t, err)
	assert.Equal(t, Reason{Code: NotReady}, got.Reason)
}

func TestDecodeCopiesInput(t *testing.T) {
	m := &Message{Type: SnapshotReady, TotalChunks: 1, Chunk: []byte{1, 2, 3}}
	b := m.Encode()
	got, err := Decode(b)
	require.NoError(t, err)
	for i := range b {
		b[i] = 0
	}
	assert.Equal(t, []byte{1, 2, 3}, got.Chunk)

	m = &Message{Type: BufferedEvents, Events: []causal.Event{{Payload: []byte{9}}}}
	b = m.Encode()
	got, err = Decode(b)
	require.NoError(t, err)
	for i := range b {
		b[i] = 0
	}
	assert.Equal(t, []byte{9}, got.Events[0].Payload)
}

func TestDecodeRejects(t *testing.T) {
	origin := "0100000000000000"
	link := strings.Repeat("00", 32)
	cases := []struct {
		name, hex string
		err       error
	}{
		{"empty", "", ErrTruncated},
		{"unknown type 10", "0a" + origin, ErrUnknownType},
		{"unknown type 255", "ff" + origin + "0000000000000000", ErrUnknownType},
		{"unknown reason 7", "06" + origin + "0700", ErrUnknownReason},
		{"state-failed text not utf-8", "06" + origin + "0300" + "0200" + "c328", ErrBadText},
		{"identity text not utf-8", "06" + origin + "0500" + "0100" + "ff", ErrBadText},
		{"state-failed text truncated", "06" + origin + "0300" + "0500" + "6162", ErrTruncated},
		{"not-ready-timeout without attempts", "06" + origin + "0600", ErrTruncated},
		{"chunk over 7000", "01" + origin + "0100000000000000" + "00000000" + "01000000" + "591b0000", ErrChunkTooLarge},
		{"chunk len beyond input", "01" + origin + "0100000000000000" + "00000000" + "01000000" + "05000000" + "0102", ErrTruncated},
		{"events over 1e6", "07" + origin + "41420f00", ErrTooManyEvents},
		{"events over remaining/44", "07" + origin + "02000000" + link + "00000000" + "0000000000000000" + "000000", ErrTooManyEvents},
		{"event count 1 without bytes", "07" + origin + "01000000", ErrTooManyEvents},
		{"event payload over 7000", "07" + origin + "01000000" + link + "591b0000" + "0000000000000000", ErrEventTooLarge},
		{"event payload beyond input", "07" + origin + "01000000" + link + "09000000" + "0000000000000000", ErrTruncated},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Decode(unhex(t, c.hex))
			require.ErrorIs(t, err, c.err)
			require.ErrorIs(t, err, ErrMalformed)
		})
	}
	// Boundaries that are accepted: a 7000-byte chunk, a 7000-byte payload,
	// exactly remaining/44 events.
	ok := []*Message{
		{Type: SnapshotReady, TotalChunks: 1, Chunk: make([]byte, ChunkSize)},
		{Type: BufferedEvents, Events: []causal.Event{{Payload: make([]byte, MaxEventPayload)}}},
		{Type: BufferedEvents, Events: make([]causal.Event, 3)},
	}
	for _, m := range ok {
		got, err := Decode(m.Encode())
		require.NoError(t, err)
		assert.Equal(t, m, got)
	}
}

func TestValidateRejects(t *testing.T) {
	cases := []struct {
		name string
		m    Message
		err  error
	}{
		{"unknown type", Message{Type: 10}, ErrUnknownType},
		{"unknown reason", Message{Type: MigrationFailed, Reason: Reason{Code: 7}}, ErrUnknownReason},
		{"text not utf-8", Message{Type: MigrationFailed, Reason: Reason{Code: StateFailed, Text: "\xff"}}, ErrBadText},
		{"chunk total 0", Message{Type: SnapshotReady}, ErrChunkTotal},
		{"chunk index", Message{Type: SnapshotReady, ChunkIndex: 2, TotalChunks: 2}, ErrChunkIndex},
		{"chunk too large", Message{Type: SnapshotReady, TotalChunks: 1, Chunk: make([]byte, ChunkSize+1)}, ErrChunkTooLarge},
		{"total too large", Message{Type: SnapshotReady, TotalChunks: MaxTotalChunks + 1}, ErrChunkTotal},
		{"payload too large", Message{Type: BufferedEvents, Events: []causal.Event{{Payload: make([]byte, MaxEventPayload+1)}}}, ErrEventTooLarge},
		{"too many events", Message{Type: BufferedEvents, Events: make([]causal.Event, MaxEvents+1)}, ErrTooManyEvents},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.m.Validate()
			require.ErrorIs(t, err, ErrUnencodable)
			require.ErrorIs(t, err, c.err)
			_, err = c.m.MarshalBinary()
			require.ErrorIs(t, err, c.err)
			// And the decoder refuses what Encode wrote anyway.
			_, err = Decode(c.m.Encode())
			require.ErrorIs(t, err, c.err)
		})
	}
}

func TestTypeString(t *testing.T) {
	assert.Equal(t, "SnapshotReady", SnapshotReady.String())
	assert.Equal(t, "ActivateAck", ActivateAck.String())
	assert.Equal(t, "Type(10)", Type(10).String())
}

// A BufferedEvents batch id rides a trailer: it round-trips, a message
// without it decodes with Batch 0, other trailing bytes are still ignored,
// and the events before it decode the same either way (what a 0.24
// decoder, which ignores trailing bytes, sees).
func TestBufferedEventsBatchTrailer(t *testing.T) {
	evs := []causal.Event{{Link: causal.Link{Origin: 1, Sequence: 2}, Payload: []byte("ab"), ReceivedAt: 3}}
	for _, m := range []*Message{
		{Type: BufferedEvents, Origin: 9, Events: evs, Batch: 0xabcdef},
		{Type: BufferedEvents, Origin: 9, Batch: 1},
	} {
		b := m.Encode()
		require.Len(t, b, m.EncodedLen())
		got, err := Decode(b)
		require.NoError(t, err)
		assert.Equal(t, m.Batch, got.Batch)
		assert.Equal(t, len(m.Events), len(got.Events))
		plain := *m
		plain.Batch = 0
		pb := plain.Encode()
		assert.Equal(t, pb, b[:len(b)-BatchTrailerLen], "the trailer only appends")
		got, err = Decode(append(pb, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13))
		require.NoError(t, err)
		assert.Zero(t, got.Batch, "other trailing bytes are not a batch id")
	}
}
