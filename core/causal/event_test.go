package causal

import (
	"bytes"
	"encoding/hex"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestCausalFramesKnownAnswer(t *testing.T) {
	events := []Event{
		{Link: katLink, Payload: []byte("hi"), ReceivedAt: 99},
		{Link: Genesis(0xabcd)},
	}
	enc := EncodeCausalFrames(events)
	want := "22000000" + katLinkHex + "6869" +
		"20000000" + "cdab000000000000" + hex.EncodeToString(make([]byte, 24))
	assert.Equal(t, want, hex.EncodeToString(enc))

	got, err := DecodeCausalFrames(enc)
	require.NoError(t, err)
	require.Len(t, got, 2)
	assert.Equal(t, katLink, got[0].Link)
	assert.Equal(t, []byte("hi"), got[0].Payload)
	assert.Zero(t, got[0].ReceivedAt, "received_at is not on the wire")
	assert.Equal(t, Genesis(0xabcd), got[1].Link)
	assert.Empty(t, got[1].Payload)

	// Payloads are independent of the input and of each other.
	enc[4+LinkSize] = 'X'
	assert.Equal(t, []byte("hi"), got[0].Payload)
	assert.Equal(t, len(got[0].Payload), cap(got[0].Payload), "appending must not reach the next frame")
}

func TestCausalFramesEmpty(t *testing.T) {
	assert.Empty(t, EncodeCausalFrames(nil))
	got, err := DecodeCausalFrames(nil)
	require.NoError(t, err)
	assert.Empty(t, got)
}

func TestDecodeCausalFramesRejects(t *testing.T) {
	one := EncodeCausalFrames([]Event{{Link: katLink, Payload: []byte("abc")}})
	cases := map[string][]byte{
		"short length":      {0x20, 0, 0},
		"length under 32":   append([]byte{31, 0, 0, 0}, make([]byte, 31)...),
		"length zero":       {0, 0, 0, 0},
		"length past end":   one[:len(one)-1],
		"huge length":       {0xff, 0xff, 0xff, 0xff, 1, 2, 3},
		"trailing fragment": append(bytes.Clone(one), 1),
	}
	for name, in := range cases {
		got, err := DecodeCausalFrames(in)
		assert.ErrorIs(t, err, ErrMalformed, name)
		assert.Nil(t, got, name)
	}
}

func FuzzDecodeCausalFrames(f *testing.F) {
	f.Add(EncodeCausalFrames([]Event{{Link: katLink, Payload: []byte("hi")}, {Link: Genesis(1)}}))
	f.Add([]byte{})
	f.Add([]byte{0x20, 0, 0, 0})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff})
	f.Add(append([]byte{31, 0, 0, 0}, make([]byte, 31)...))
	f.Fuzz(func(t *testing.T, b []byte) {
		events, err := DecodeCausalFrames(b)
		if err != nil {
			require.ErrorIs(t, err, ErrMalformed)
			require.Nil(t, events)
			return
		}
		require.True(t, bytes.Equal(b, EncodeCausalFrames(events)))
	})
}
