package wire

import (
	"encoding/binary"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestEventFrameRoundTrip(t *testing.T) {
	// vector event-frame-size
	evs := [][]byte{[]byte("event1"), []byte("event2"), []byte("event3")}
	b := AppendEvents(nil, evs...)
	assert.Len(t, b, 30)
	assert.Equal(t, 30, FramedLen(evs...))
	got, err := ParseEvents(b, 3)
	require.NoError(t, err)
	assert.Equal(t, evs, got)
}

func TestEventFramePrefix(t *testing.T) {
	// vector event-frame-prefix
	b := AppendEvents(nil, make([]byte, 65536))
	assert.Len(t, b, 65540)
	assert.Equal(t, uint32(65536), binary.LittleEndian.Uint32(b))
	got, err := ParseEvents(b, 1)
	require.NoError(t, err)
	assert.Len(t, got[0], 65536)
}

func TestParseEventsRejects(t *testing.T) {
	b := AppendEvents(nil, []byte("ab"), []byte(""))
	_, err := ParseEvents(b, 2)
	require.NoError(t, err)
	_, err = ParseEvents(b, 3)
	assert.ErrorIs(t, err, ErrMalformed)
	_, err = ParseEvents(b, 1)
	assert.ErrorIs(t, err, ErrMalformed, "trailing bytes")
	_, err = ParseEvents(b[:len(b)-1], 2)
	assert.ErrorIs(t, err, ErrTruncated)
	_, err = ParseEvents(b, -1)
	assert.ErrorIs(t, err, ErrMalformed)
	_, err = ParseEvents(make([]byte, 4*(MaxEvents+1)), MaxEvents+1)
	assert.ErrorIs(t, err, ErrMalformed)
	got, err := ParseEvents(make([]byte, 4*MaxEvents), MaxEvents)
	require.NoError(t, err)
	assert.Len(t, got, MaxEvents)
	_, err = ParseEvents([]byte{1}, 0)
	assert.ErrorIs(t, err, ErrMalformed)
	got, err = ParseEvents(nil, 0)
	require.NoError(t, err)
	assert.Empty(t, got)
	// A huge declared length never allocates or panics.
	_, err = ParseEvents([]byte{0xff, 0xff, 0xff, 0xff, 1, 2}, 1)
	assert.ErrorIs(t, err, ErrTruncated)
}

func TestParseEventsAliasesNoOverwrite(t *testing.T) {
	// Returned slices are capped: appending to one cannot clobber the next.
	b := AppendEvents(nil, []byte("aa"), []byte("bb"))
	got, err := ParseEvents(b, 2)
	require.NoError(t, err)
	_ = append(got[0], 'X')
	assert.Equal(t, "bb", string(got[1]))
}
