package causal

import (
	"bytes"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Python-checked encoding of katLedger.
const katLedgerHex = "02000000" +
	"8877665544332211" + "0c00" + "73656e736f72732f74656d70" + "00" +
	"0700000000000000" + "0a00" + "612e625f632d642f6532" + "01" + "0300" + "010203"

var katLedger = []Binding{
	{Publisher: 0x1122334455667788, Channel: "sensors/temp"},
	{Publisher: 7, Channel: "a.b_c-d/e2", Token: []byte{1, 2, 3}},
}

func TestLedgerKnownAnswer(t *testing.T) {
	enc := EncodeLedger(katLedger)
	assert.Equal(t, katLedgerHex, hex.EncodeToString(enc))
	got, err := DecodeLedger(enc)
	require.NoError(t, err)
	assert.Equal(t, katLedger, got)

	out, err := AppendLedger([]byte{0xaa}, katLedger)
	require.NoError(t, err)
	assert.Equal(t, append([]byte{0xaa}, enc...), out)
}

// Vector ledger-default and FORMATS §4: an empty ledger is encoded as zero
// bytes; zero bytes and a zero count both decode as empty; two bytes do not.
func TestLedgerEmpty(t *testing.T) {
	assert.Empty(t, EncodeLedger(nil))
	assert.Empty(t, EncodeLedger([]Binding{}))
	for _, in := range [][]byte{nil, {}, {0, 0, 0, 0}} {
		got, err := DecodeLedger(in)
		require.NoError(t, err)
		assert.Empty(t, got)
	}
	_, err := DecodeLedger([]byte{0, 0})
	assert.ErrorIs(t, err, ErrMalformed)
}

func TestLedgerTokens(t *testing.T) {
	in := []Binding{
		{Publisher: 1, Channel: "a", Token: []byte{}},           // flag 1, length 0
		{Publisher: 2, Channel: "b", Token: make([]byte, 169)},  // a real token's size
		{Publisher: 3, Channel: "c", Token: make([]byte, 5000)}, // any length is accepted
	}
	enc := EncodeLedger(in)
	got, err := DecodeLedger(enc)
	require.NoError(t, err)
	assert.Equal(t, in, got)
	require.NotNil(t, got[0].Token)
}

func TestEncodeLedgerRefusesInvalid(t *testing.T) {
	_, err := AppendLedger(nil, []Binding{{Channel: "../etc"}})
	assert.ErrorIs(t, err, ErrInvalidChannelName)
	_, err = AppendLedger(nil, []Binding{{Channel: "ok", Token: make([]byte, 1<<16)}})
	assert.ErrorIs(t, err, ErrTooLarge)
	assert.Panics(t, func() { EncodeLedger([]Binding{{Channel: ""}}) })
}

func TestDecodeLedgerRejects(t *testing.T) {
	cases := []struct {
		name string
		hex  string
	}{
		{"vector ledger-default: two bytes", "0000"},
		{"vector ledger-bad-flag", "0100000000000000000000000100787f"},
		{"flag 2", "01000000000000000000000001007802"},
		{"vector ledger-bad-name", "01000000000000000000000006002e2e2f65746300"},
		{"vector ledger-count: ffffffff", "ffffffff"},
		{"vector ledger-count: 1000000 and 256 zeros", "40420f00" + strings.Repeat("00", 256)},
		{"count 2 with one entry", "02000000" + "0000000000000000" + "0100" + "78" + "00" + "000000000000"},
		{"zero count then trailing", "00000000" + "00"},
		{"trailing after entry", "01000000" + "0000000000000000" + "0100" + "78" + "00" + "ff"},
		{"empty name", "01000000" + "0000000000000000" + "0000" + "00" + "0000000000000000"},
		{"name truncated", "01000000" + "0000000000000000" + "0900" + "78" + "00" + "000000000000"},
		{"flag missing", "01000000" + "0000000000000000" + "0900" + "787878787878787878"},
		{"token length truncated", "01000000" + "0000000000000000" + "0100" + "78" + "01" + "05"},
		{"token truncated", "01000000" + "0000000000000000" + "0100" + "78" + "01" + "0500" + "0102"},
		{"upper-case name", "01000000" + "0000000000000000" + "0100" + "58" + "00" + "000000000000"},
		{"invalid utf-8 name", "01000000" + "0000000000000000" + "0200" + "c328" + "00" + "000000000000"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := DecodeLedger(mustHex(t, tc.hex))
			assert.ErrorIs(t, err, ErrMalformed)
			assert.Nil(t, got)
		})
	}
	// Every strict prefix of a valid ledger (except the empty one) is refused.
	enc := mustHex(t, katLedgerHex)
	for n := 1; n < len(enc); n++ {
		_, err := DecodeLedger(enc[:n])
		require.ErrorIs(t, err, ErrMalformed, "prefix %d", n)
	}
}

// The count check uses 11 bytes per entry: 11 bytes for one entry pass it
// (and then fail on the empty name), 10 do not.
func TestDecodeLedgerCountBound(t *testing.T) {
	_, err := DecodeLedger(mustHex(t, "01000000"+"0000000000000000"+"0000"+"00"))
	assert.ErrorIs(t, err, ErrInvalidChannelName)
	_, err = DecodeLedger(mustHex(t, "01000000"+"0000000000000000"+"0000"))
	assert.ErrorIs(t, err, ErrMalformed)
	assert.NotErrorIs(t, err, ErrInvalidChannelName)
}

func TestValidateChannelName(t *testing.T) {
	valid := []string{
		"a", "sensors/temp", "a.b_c-d/e2", "x/y/z", "...", "a/.../b", ".hidden",
		"a..b", "0", "-_", strings.Repeat("a", 255),
	}
	for _, n := range valid {
		assert.NoError(t, ValidateChannelName(n), "%q", n)
	}
	invalid := []string{
		"", strings.Repeat("a", 256), "A", "a b", "a\x00", "é", "\xff",
		"/a", "a/", "/", "a//b", ".", "..", "../etc", "a/./b", "a/..", "./a",
		"a:b", "a\\b", "a*", "a>", "a+b",
	}
	for _, n := range invalid {
		assert.ErrorIs(t, ValidateChannelName(n), ErrInvalidChannelName, "%q", n)
	}
}

func FuzzDecodeLedger(f *testing.F) {
	f.Add(mustHex(f, katLedgerHex))
	f.Add([]byte{})
	f.Add([]byte{0, 0, 0, 0})
	f.Add(mustHex(f, "0100000000000000000000000100787f"))
	f.Add(mustHex(f, "01000000000000000000000006002e2e2f65746300"))
	f.Add(mustHex(f, "ffffffff"))
	f.Fuzz(func(t *testing.T, b []byte) {
		bs, err := DecodeLedger(b)
		if err != nil {
			require.ErrorIs(t, err, ErrMalformed)
			require.Nil(t, bs)
			return
		}
		enc, err := AppendLedger(nil, bs)
		require.NoError(t, err)
		if len(bs) == 0 {
			require.Empty(t, enc) // a zero count re-encodes as zero bytes
			return
		}
		require.True(t, bytes.Equal(b, enc))
	})
}

func FuzzValidateChannelName(f *testing.F) {
	for _, s := range []string{"sensors/temp", "", "/a", "a//b", "..", "a/./b", "A", strings.Repeat("z", 256)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		if ValidateChannelName(name) != nil {
			return
		}
		require.NotEmpty(t, name)
		require.LessOrEqual(t, len(name), MaxChannelNameLen)
		require.NotContains(t, name, "//")
		require.False(t, strings.HasPrefix(name, "/") || strings.HasSuffix(name, "/"))
		for _, seg := range strings.Split(name, "/") {
			require.NotContains(t, []string{".", ".."}, seg)
		}
		// A valid name survives the ledger round trip.
		bs := []Binding{{Publisher: 1, Channel: name}}
		got, err := DecodeLedger(EncodeLedger(bs))
		require.NoError(t, err)
		require.Equal(t, bs, got)
	})
}
