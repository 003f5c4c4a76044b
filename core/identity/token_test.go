package identity

import (
	"errors"
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var tokenNow = time.Unix(1_700_000_000, 0)

type tokenFixture struct {
	issuer, alice, bob *Keypair
}

func newTokenFixture(t testing.TB) tokenFixture {
	t.Helper()
	mk := func(b byte) *Keypair {
		s := fill32(b)
		kp, err := FromSeed(s[:])
		require.NoError(t, err)
		return kp
	}
	return tokenFixture{issuer: mk(0x11), alice: mk(0x22), bob: mk(0x33)}
}

func (f tokenFixture) issue(t testing.TB, spec TokenSpec) *PermissionToken {
	t.Helper()
	if spec.Now.IsZero() {
		spec.Now = tokenNow
	}
	if spec.TTL == 0 {
		spec.TTL = time.Hour
	}
	if spec.Subject == (EntityID{}) {
		spec.Subject = f.alice.EntityID()
	}
	tok, err := IssueTokenWith(f.issuer, spec)
	require.NoError(t, err)
	return tok
}

// resign re-signs a token after a test edits its fields.
func resign(t testing.TB, tok *PermissionToken, kp *Keypair) {
	t.Helper()
	require.NoError(t, tok.sign(kp))
}

// vectors.json token-size.
func TestTokenVectorSize(t *testing.T) {
	f := newTokenFixture(t)
	tok := f.issue(t, TokenSpec{Scope: ScopePublish, ChannelHash: 0, TTL: 3600 * time.Second})
	b := tok.Encode()
	assert.Len(t, b[:], 169)
	assert.Equal(t, 169, TokenSize)

	_, err := DecodeToken(append(b[:], 0))
	assert.ErrorIs(t, err, ErrTokenMalformed, "+1 byte")
	_, err = DecodeToken(b[:168])
	assert.ErrorIs(t, err, ErrTokenMalformed, "-1 byte")
	_, err = DecodeToken(nil)
	assert.ErrorIs(t, err, ErrTokenMalformed)
	assert.ErrorIs(t, err, ErrToken)
}

// vectors.json token-roundtrip.
func TestTokenVectorRoundTrip(t *testing.T) {
	f := newTokenFixture(t)
	tok := f.issue(t, TokenSpec{Scope: ScopePublish | ScopeSubscribe, ChannelHash: 0xbeef, TTL: 3600 * time.Second, DelegationDepth: 3})
	b := tok.Encode()
	parsed, err := DecodeToken(b[:])
	require.NoError(t, err)
	assert.Equal(t, uint64(0xbeef), parsed.ChannelHash)
	assert.Equal(t, uint8(3), parsed.DelegationDepth)
	assert.Equal(t, uint32(3), parsed.Scope)
	require.NoError(t, parsed.Verify(tokenNow))
	assert.Equal(t, tok, parsed)
	assert.Equal(t, b, parsed.Encode())
}

// vectors.json token-ttl-zero.
func TestTokenVectorTTLZero(t *testing.T) {
	f := newTokenFixture(t)
	_, err := IssueToken(f.issuer, f.alice.EntityID(), ScopePublish, "c", 0, tokenNow)
	assert.ErrorIs(t, err, ErrTokenTTL)
}

// vectors.json token-ttl-huge. 0.24 saturates not_after at 2^64−1 for any
// TTL; this library caps issuing at MaxTokenTTL (as later releases do) but
// keeps the saturating add and accepts such tokens minted elsewhere.
func TestTokenVectorTTLHuge(t *testing.T) {
	assert.Equal(t, uint64(math.MaxUint64), saturatingAdd(uint64(tokenNow.Unix()), math.MaxUint64))
	assert.Equal(t, uint64(math.MaxUint64), saturatingAdd(math.MaxUint64-10, 3600))
	assert.Equal(t, uint64(7), saturatingAdd(3, 4))

	f := newTokenFixture(t)
	_, err := IssueToken(f.issuer, f.alice.EntityID(), ScopePublish, "c", time.Duration(math.MaxInt64), tokenNow)
	assert.ErrorIs(t, err, ErrTokenTTL, "longest representable TTL is above the cap")

	// A never-expiring token as a 0.24 peer would mint it.
	tok := f.issue(t, TokenSpec{Scope: ScopePublish})
	tok.NotAfter = saturatingAdd(tok.NotBefore, math.MaxUint64)
	resign(t, tok, f.issuer)
	b := tok.Encode()
	parsed, err := DecodeToken(b[:])
	require.NoError(t, err)
	assert.Equal(t, uint64(18446744073709551615), parsed.NotAfter)
	require.NoError(t, parsed.Verify(tokenNow))
	require.NoError(t, parsed.Verify(time.Unix(1<<62, 0)))
	assert.False(t, parsed.IsExpired(time.Unix(1<<62, 0)))
}

// vectors.json token-expiry-boundary.
func TestTokenVectorExpiryBoundary(t *testing.T) {
	f := newTokenFixture(t)
	tok := f.issue(t, TokenSpec{Scope: ScopePublish})
	tok.NotAfter = uint64(tokenNow.Unix())
	resign(t, tok, f.issuer)
	assert.True(t, tok.IsExpired(tokenNow))
	assert.ErrorIs(t, tok.Verify(tokenNow), ErrTokenExpired)

	tok = f.issue(t, TokenSpec{Scope: ScopePublish, TTL: 10 * time.Second})
	end := tokenNow.Add(10 * time.Second)
	require.NoError(t, tok.Verify(tokenNow), "first second")
	require.NoError(t, tok.Verify(end.Add(-time.Nanosecond)), "last instant")
	assert.ErrorIs(t, tok.Verify(end), ErrTokenExpired, "now == not_after")
	assert.ErrorIs(t, tok.Verify(end.Add(time.Hour)), ErrTokenExpired)
	assert.False(t, tok.IsExpired(end.Add(-time.Second)))
	assert.True(t, tok.IsExpired(end))
	assert.ErrorIs(t, tok.Verify(tokenNow.Add(-time.Second)), ErrTokenNotYetValid)
	assert.ErrorIs(t, tok.Verify(time.Unix(-5, 0)), ErrTokenNotYetValid, "before 1970")
	assert.False(t, tok.IsExpired(time.Unix(-5, 0)))
}

func TestIssueToken(t *testing.T) {
	f := newTokenFixture(t)
	tok, err := IssueToken(f.issuer, f.alice.EntityID(), ScopeSubscribe, "sensors/temp", 90*time.Second, tokenNow.Add(300*time.Millisecond))
	require.NoError(t, err)
	assert.Equal(t, f.issuer.EntityID(), tok.Issuer)
	assert.Equal(t, f.alice.EntityID(), tok.Subject)
	assert.Equal(t, ScopeSubscribe, tok.Scope)
	assert.Equal(t, ChannelHash("sensors/temp"), tok.ChannelHash)
	assert.Equal(t, uint64(tokenNow.Unix()), tok.NotBefore, "whole seconds")
	assert.Equal(t, uint64(tokenNow.Unix())+90, tok.NotAfter)
	assert.Zero(t, tok.DelegationDepth)
	assert.Zero(t, tok.IssuerGeneration)
	require.NoError(t, tok.Verify(tokenNow))

	again, err := IssueToken(f.issuer, f.alice.EntityID(), ScopeSubscribe, "sensors/temp", 90*time.Second, tokenNow)
	require.NoError(t, err)
	assert.NotEqual(t, tok.Nonce, again.Nonce, "fresh nonce per token")

	_, err = IssueToken(PublicOnly(f.issuer.EntityID()), f.alice.EntityID(), ScopePublish, "c", time.Hour, tokenNow)
	assert.ErrorIs(t, err, ErrReadOnly)
	_, err = IssueToken(nil, f.alice.EntityID(), ScopePublish, "c", time.Hour, tokenNow)
	assert.ErrorIs(t, err, ErrReadOnly)
	_, err = IssueToken(f.issuer, f.alice.EntityID(), ScopePublish, "c", time.Hour, time.Unix(-1, 0))
	assert.ErrorIs(t, err, ErrTokenClock)
	for _, s := range []uint32{0, 0x20, 0x8000_0000, ScopePublish | 0x40} {
		_, err = IssueToken(f.issuer, f.alice.EntityID(), s, "c", time.Hour, tokenNow)
		assert.ErrorIs(t, err, ErrTokenScope, "scope %#x", s)
	}
}

func TestTokenTTLBounds(t *testing.T) {
	f := newTokenFixture(t)
	cases := []struct {
		ttl  time.Duration
		ok   bool
		secs uint64
	}{
		{0, false, 0},
		{-time.Second, false, 0},
		{999 * time.Millisecond, false, 0},
		{time.Second, true, 1},
		{1500 * time.Millisecond, true, 1},
		{MaxTokenTTL, true, 365 * 24 * 3600},
		{MaxTokenTTL + time.Nanosecond, false, 0},
		{MaxTokenTTL + time.Second, false, 0},
	}
	for _, c := range cases {
		tok, err := IssueToken(f.issuer, f.alice.EntityID(), ScopePublish, "c", c.ttl, tokenNow)
		if !c.ok {
			assert.ErrorIs(t, err, ErrTokenTTL, "%v", c.ttl)
			continue
		}
		require.NoError(t, err, "%v", c.ttl)
		assert.Equal(t, c.secs, tok.NotAfter-tok.NotBefore, "%v", c.ttl)
	}
}

func TestChannelHash(t *testing.T) {
	// XXH3-64 of the empty input with seed 0 (the XXH3 reference value).
	assert.Equal(t, uint64(0x2D06800538D394C2), ChannelHash(""))
	assert.Equal(t, ChannelHash("sensors/temp"), ChannelHash("sensors/temp"))
	assert.NotEqual(t, ChannelHash("sensors/temp"), ChannelHash("sensors/temq"))
}

func TestTokenAuthorizes(t *testing.T) {
	f := newTokenFixture(t)
	tok, err := IssueToken(f.issuer, f.alice.EntityID(), ScopePublish|ScopeSubscribe, "sensors/temp", time.Hour, tokenNow)
	require.NoError(t, err)

	require.NoError(t, tok.Authorizes(ScopePublish, "sensors/temp"))
	require.NoError(t, tok.Authorizes(ScopeSubscribe, "sensors/temp"))
	require.NoError(t, tok.Authorizes(ScopePublish|ScopeSubscribe, "sensors/temp"))
	require.NoError(t, tok.AuthorizesHash(ScopePublish, ChannelHash("sensors/temp")))

	assert.ErrorIs(t, tok.Authorizes(ScopePublish, "sensors/humidity"), ErrTokenChannel, "wrong channel")
	assert.ErrorIs(t, tok.Authorizes(ScopeAdmin, "sensors/temp"), ErrTokenScope, "wrong scope")
	assert.ErrorIs(t, tok.Authorizes(ScopePublish|ScopeAdmin, "sensors/temp"), ErrTokenScope, "partly granted")
	assert.ErrorIs(t, tok.Authorizes(0, "sensors/temp"), ErrTokenScope, "empty request")
	assert.ErrorIs(t, tok.Authorizes(ScopeWildcard, "sensors/temp"), ErrTokenScope)

	// Channel hash 0 is not a wildcard.
	zero := f.issue(t, TokenSpec{Scope: ScopePublish, ChannelHash: 0})
	assert.ErrorIs(t, zero.Authorizes(ScopePublish, "anything"), ErrTokenChannel)

	wild, err := IssueToken(f.issuer, f.alice.EntityID(), ScopePublish|ScopeWildcard, "", time.Hour, tokenNow)
	require.NoError(t, err)
	require.NoError(t, wild.Authorizes(ScopePublish, "a"))
	require.NoError(t, wild.Authorizes(ScopePublish, "b/c"))
	assert.ErrorIs(t, wild.Authorizes(ScopeSubscribe, "a"), ErrTokenScope)

	require.NoError(t, tok.Check(tokenNow, ScopePublish, "sensors/temp"))
	assert.ErrorIs(t, tok.Check(tokenNow.Add(2*time.Hour), ScopePublish, "sensors/temp"), ErrTokenExpired)
	assert.ErrorIs(t, tok.Check(tokenNow, ScopePublish, "x"), ErrTokenChannel)
}

// Flipping any bit of an encoded token breaks its signature; the issuer
// region may also become an invalid key, which fails the same way.
func TestTokenTamperEveryByte(t *testing.T) {
	f := newTokenFixture(t)
	tok, err := IssueToken(f.issuer, f.alice.EntityID(), ScopePublish, "c", time.Hour, tokenNow)
	require.NoError(t, err)
	b := tok.Encode()
	for i := range TokenSize {
		for _, mask := range []byte{0x01, 0x80} {
			bad := b
			bad[i] ^= mask
			parsed, err := DecodeToken(bad[:])
			require.NoError(t, err)
			require.ErrorIs(t, parsed.Verify(tokenNow), ErrTokenBadSignature, "byte %d mask %#x", i, mask)
		}
	}
	// A token re-signed by someone other than its issuer field.
	forged := *tok
	forged.Scope |= ScopeAdmin
	resign(t, &forged, f.alice)
	forged.Issuer = f.issuer.EntityID()
	assert.ErrorIs(t, forged.Verify(tokenNow), ErrTokenBadSignature)

	// Small-order issuer with the trivial forgery is refused.
	var torsion EntityID = EntityID(mustHex32(t, torsionHex[0]))
	triv := *tok
	triv.Issuer = torsion
	triv.Signature = [64]byte{}
	copy(triv.Signature[:32], torsion[:])
	assert.ErrorIs(t, triv.Verify(tokenNow), ErrTokenBadSignature)
}

func TestTokenDelegation(t *testing.T) {
	f := newTokenFixture(t)
	carol, err := FromSeed(make([]byte, 32))
	require.NoError(t, err)
	root := f.issue(t, TokenSpec{
		Scope:           ScopePublish | ScopeSubscribe | ScopeDelegate,
		ChannelHash:     ChannelHash("jobs"),
		DelegationDepth: 2,
		TTL:             time.Hour,
	})
	later := tokenNow.Add(10 * time.Minute)

	child, err := root.Delegate(f.alice, f.bob.EntityID(), ScopePublish|ScopeDelegate, 24*time.Hour, later)
	require.NoError(t, err)
	assert.Equal(t, f.alice.EntityID(), child.Issuer)
	assert.Equal(t, f.bob.EntityID(), child.Subject)
	assert.Equal(t, ScopePublish|ScopeDelegate, child.Scope)
	assert.Equal(t, root.ChannelHash, child.ChannelHash)
	assert.Equal(t, uint8(1), child.DelegationDepth)
	assert.Equal(t, uint64(later.Unix()), child.NotBefore)
	assert.Equal(t, root.NotAfter, child.NotAfter, "clamped to the parent's window")
	require.NoError(t, child.Check(later, ScopePublish, "jobs"))
	assert.ErrorIs(t, child.Authorizes(ScopeSubscribe, "jobs"), ErrTokenScope)

	short, err := root.Delegate(f.alice, f.bob.EntityID(), ScopePublish, time.Minute, later)
	require.NoError(t, err)
	assert.Equal(t, uint64(later.Unix())+60, short.NotAfter, "shorter than the parent stays as asked")

	grandchild, err := child.Delegate(f.bob, carol.EntityID(), ScopePublish|ScopeDelegate, time.Minute, later)
	require.NoError(t, err)
	assert.Zero(t, grandchild.DelegationDepth)
	_, err = grandchild.Delegate(carol, f.alice.EntityID(), ScopePublish, time.Minute, later)
	assert.ErrorIs(t, err, ErrTokenDelegation, "depth exhausted")

	_, err = short.Delegate(f.bob, carol.EntityID(), ScopePublish, time.Minute, later)
	assert.ErrorIs(t, err, ErrTokenDelegation, "no delegate scope")

	_, err = root.Delegate(f.bob, carol.EntityID(), ScopePublish, time.Minute, later)
	assert.ErrorIs(t, err, ErrTokenDelegation, "holder is not the subject")
	_, err = root.Delegate(nil, carol.EntityID(), ScopePublish, time.Minute, later)
	assert.ErrorIs(t, err, ErrTokenDelegation)

	_, err = root.Delegate(f.alice, carol.EntityID(), ScopePublish|ScopeAdmin, time.Minute, later)
	assert.ErrorIs(t, err, ErrTokenDelegation, "scope widened")
	_, err = root.Delegate(f.alice, carol.EntityID(), ScopePublish|ScopeWildcard, time.Minute, later)
	assert.ErrorIs(t, err, ErrTokenDelegation, "wildcard widened")
	_, err = root.Delegate(f.alice, carol.EntityID(), 0, time.Minute, later)
	assert.ErrorIs(t, err, ErrTokenDelegation, "empty scope")

	_, err = root.Delegate(f.alice, carol.EntityID(), ScopePublish, 0, later)
	assert.ErrorIs(t, err, ErrTokenTTL)
	_, err = root.Delegate(f.alice, carol.EntityID(), ScopePublish, MaxTokenTTL+time.Second, later)
	assert.ErrorIs(t, err, ErrTokenTTL)

	_, err = root.Delegate(f.alice, carol.EntityID(), ScopePublish, time.Minute, tokenNow.Add(time.Hour))
	assert.ErrorIs(t, err, ErrTokenExpired, "parent expired")
	_, err = root.Delegate(f.alice, carol.EntityID(), ScopePublish, time.Minute, tokenNow.Add(-time.Second))
	assert.ErrorIs(t, err, ErrTokenNotYetValid, "parent not yet valid")

	_, err = root.Delegate(PublicOnly(f.alice.EntityID()), carol.EntityID(), ScopePublish, time.Minute, later)
	assert.ErrorIs(t, err, ErrReadOnly)

	tampered := *root
	tampered.DelegationDepth = 9
	_, err = tampered.Delegate(f.alice, carol.EntityID(), ScopePublish, time.Minute, later)
	assert.ErrorIs(t, err, ErrTokenBadSignature)
}

func TestTokenSentinelsWrapErrToken(t *testing.T) {
	all := []error{ErrTokenMalformed, ErrTokenTTL, ErrTokenClock, ErrTokenBadSignature, ErrTokenExpired,
		ErrTokenNotYetValid, ErrTokenScope, ErrTokenChannel, ErrTokenDelegation}
	for i, a := range all {
		assert.ErrorIs(t, a, ErrToken)
		assert.False(t, errors.Is(a, ErrEnvelope))
		for j, c := range all {
			if i != j {
				assert.False(t, errors.Is(a, c), "%v is not %v", a, c)
			}
		}
	}
}

func FuzzDecodeToken(f *testing.F) {
	fx := newTokenFixture(f)
	tok := fx.issue(f, TokenSpec{Scope: ScopePublish | ScopeDelegate, ChannelHash: 0xbeef, DelegationDepth: 3})
	b := tok.Encode()
	f.Add(b[:])
	f.Add(b[:168])
	f.Add(append(append([]byte{}, b[:]...), 0))
	f.Add([]byte{})
	f.Add(make([]byte, TokenSize))
	f.Fuzz(func(t *testing.T, in []byte) {
		parsed, err := DecodeToken(in)
		if err != nil {
			require.ErrorIs(t, err, ErrTokenMalformed)
			require.NotEqual(t, TokenSize, len(in))
			return
		}
		enc := parsed.Encode()
		require.Equal(t, in, enc[:])
		err = parsed.Verify(tokenNow)
		if string(in) == string(b[:]) {
			require.NoError(t, err)
		} else if err == nil {
			// Only a correctly signed token verifies; here the only signer is fx.issuer.
			require.Equal(t, fx.issuer.EntityID(), parsed.Issuer)
		}
		_ = parsed.Authorizes(ScopePublish, "c")
		_, _ = parsed.Delegate(fx.alice, fx.bob.EntityID(), ScopePublish, time.Minute, tokenNow)
	})
}
