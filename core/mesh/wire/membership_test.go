package wire

import (
	"bytes"
	"encoding/hex"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	require.NoError(t, err)
	return b
}

func TestMembershipSubscribePlain(t *testing.T) {
	// vector membership-subscribe-plain
	m := &MembershipMsg{Kind: Subscribe, Channel: "sensors/lidar", Nonce: 99}
	b := m.Encode()
	assert.Equal(t, "0063000000000000000d73656e736f72732f6c696461720000", hex.EncodeToString(b))
	got, err := DecodeMembership(b)
	require.NoError(t, err)
	assert.Equal(t, m, got)
}

func TestMembershipSubscribeLegacy(t *testing.T) {
	// vector membership-subscribe-legacy
	got, err := DecodeMembership(mustHex(t, "002a00000000000000056c61622f78"))
	require.NoError(t, err)
	assert.Equal(t, &MembershipMsg{Kind: Subscribe, Channel: "lab/x", Nonce: 42}, got)
	assert.Nil(t, got.Token)
	assert.Equal(t, "", got.QueueGroup)
}

func TestMembershipSubscribeHalfLen(t *testing.T) {
	// vector membership-subscribe-half-len
	_, err := DecodeMembership(mustHex(t, "002a00000000000000056c61622f7805"))
	assert.ErrorIs(t, err, ErrTruncated)
}

func TestMembershipAck(t *testing.T) {
	// vector membership-ack
	got, err := DecodeMembership(mustHex(t, "0207000000000000000100"))
	require.NoError(t, err)
	assert.Equal(t, &MembershipMsg{Kind: Ack, Nonce: 7, Accepted: true, Reason: ReasonOK}, got)
	_, err = DecodeMembership(mustHex(t, "020700000000000000ff00"))
	assert.ErrorIs(t, err, ErrUnknownType)

	for r := ReasonOK; r <= ReasonTooManyChannels; r++ {
		for _, acc := range []bool{false, true} {
			m := &MembershipMsg{Kind: Ack, Nonce: 0xfeedface, Accepted: acc, Reason: r}
			b := m.Encode()
			require.Len(t, b, MembershipAckSize)
			got, err := DecodeMembership(b)
			require.NoError(t, err)
			assert.Equal(t, m, got)
		}
	}
	_, err = DecodeMembership(mustHex(t, "0207000000000000000005"))
	assert.ErrorIs(t, err, ErrUnknownType, "reason 5")
	_, err = DecodeMembership(mustHex(t, "02070000000000000001"))
	assert.ErrorIs(t, err, ErrTruncated)
	assert.Nil(t, (&MembershipMsg{Kind: Ack, Reason: 5}).Encode())
}

func TestMembershipRejects(t *testing.T) {
	// vector membership-rejects
	unsub := (&MembershipMsg{Kind: Unsubscribe, Channel: "control/estop", Nonce: 42}).Encode()
	require.NotNil(t, unsub)
	ack := (&MembershipMsg{Kind: Ack, Nonce: 42, Accepted: true}).Encode()
	cases := []struct {
		in   []byte
		want error
	}{
		{mustHex(t, ""), ErrTruncated},
		{mustHex(t, "ff"), ErrUnknownType},
		{mustHex(t, "00000000"), ErrTruncated},
		{mustHex(t, "00000000000000000000"), ErrTruncated},
		{mustHex(t, "0000000000000000000a616263"), ErrOverflow},
		{mustHex(t, "00000000000000000004612f2f62"), ErrBadChannelName},
		{mustHex(t, "000100000000000000077376632f7265710000c873686f7274"), ErrOverflow},
		{mustHex(t, "000100000000000000077376632f726571000002fffe"), ErrTruncated},
		{append(append([]byte(nil), unsub...), 0xde, 0xad, 0xbe, 0xef), ErrTruncated},
		{append(append([]byte(nil), ack...), 0xaa), ErrTruncated},
	}
	for _, c := range cases {
		_, err := DecodeMembership(c.in)
		assert.ErrorIs(t, err, c.want, hex.EncodeToString(c.in))
	}
	// The unmodified messages decode.
	got, err := DecodeMembership(unsub)
	require.NoError(t, err)
	assert.Equal(t, "control/estop", got.Channel)
	assert.Equal(t, "01"+"2a00000000000000"+"0d"+hex.EncodeToString([]byte("control/estop")), hex.EncodeToString(unsub))
}

func TestMembershipSubscribeTokenAndGroup(t *testing.T) {
	tok := bytes.Repeat([]byte{0x7a}, 169)
	for _, m := range []*MembershipMsg{
		{Kind: Subscribe, Nonce: 1, Channel: "a/b", Token: tok},
		{Kind: Subscribe, Nonce: 2, Channel: "a/b", QueueGroup: "workers"},
		{Kind: Subscribe, Nonce: 3, Channel: "a/b", Token: tok, QueueGroup: "wörkers"},
		{Kind: Unsubscribe, Nonce: 4, Channel: "z"},
	} {
		b := m.Encode()
		require.NotNil(t, b)
		got, err := DecodeMembership(b)
		require.NoError(t, err)
		assert.Equal(t, m, got)
	}
	// Layout with token and group.
	b := (&MembershipMsg{Kind: Subscribe, Nonce: 1, Channel: "a", Token: []byte{9, 8}, QueueGroup: "q"}).Encode()
	assert.Equal(t, "00"+"0100000000000000"+"01"+"61"+"0200"+"0908"+"01"+"71", hex.EncodeToString(b))

	// token_len 0 + qg_len 0 = plain subscription; anything after is trailing.
	got, err := DecodeMembership(mustHex(t, "00"+"0100000000000000"+"01"+"61"+"0000"+"00"))
	require.NoError(t, err)
	assert.Equal(t, &MembershipMsg{Kind: Subscribe, Nonce: 1, Channel: "a"}, got)
	_, err = DecodeMembership(mustHex(t, "00"+"0100000000000000"+"01"+"61"+"0000"+"00"+"00"))
	assert.ErrorIs(t, err, ErrTruncated)
	// Token overflow.
	_, err = DecodeMembership(mustHex(t, "0001000000000000000161050001"))
	assert.ErrorIs(t, err, ErrOverflow)
	// Unsubscribe name rules.
	_, err = DecodeMembership(mustHex(t, "01010000000000000001"+"2f"))
	assert.ErrorIs(t, err, ErrBadChannelName)
}

func TestMembershipEncodeInvalid(t *testing.T) {
	for _, m := range []*MembershipMsg{
		{Kind: 3},
		{Kind: Subscribe, Channel: "Bad"},
		{Kind: Unsubscribe, Channel: ""},
		{Kind: Subscribe, Channel: "a", Token: make([]byte, 0x10000)},
		{Kind: Subscribe, Channel: "a", QueueGroup: string(bytes.Repeat([]byte{'g'}, 256))},
		{Kind: Subscribe, Channel: "a", QueueGroup: "\xff"},
	} {
		assert.Error(t, m.Validate())
		assert.Nil(t, m.Encode())
	}
	assert.NoError(t, (&MembershipMsg{Kind: Subscribe, Channel: "a", Token: make([]byte, 0xFFFF)}).Validate())
}
