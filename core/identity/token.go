package identity

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"math"
	"time"

	"github.com/zeebo/xxh3"
)

// Permission token wire constants (FORMATS §7).
const (
	TokenSize       = 169
	tokenSignedSize = 105 // everything before the signature
	// MaxTokenTTL is the longest lifetime IssueToken and Delegate grant. The
	// 0.24 wire format has no cap (tokens minted elsewhere may live longer and
	// still verify); later releases cap issuing at this value.
	MaxTokenTTL = 365 * 24 * time.Hour
	// MinTokenTTL is the shortest lifetime: not_after is whole seconds.
	MinTokenTTL = time.Second
)

// Scope bits. A token's scope is their union.
const (
	ScopePublish   uint32 = 0x01
	ScopeSubscribe uint32 = 0x02
	ScopeAdmin     uint32 = 0x04
	ScopeDelegate  uint32 = 0x08
	// ScopeWildcard makes the token's actions apply to every channel,
	// whatever its channel_hash. A channel_hash of 0 is NOT a wildcard.
	ScopeWildcard uint32 = 0x10
	// scopeKnown is every bit this release issues.
	scopeKnown = ScopePublish | ScopeSubscribe | ScopeAdmin | ScopeDelegate | ScopeWildcard
)

// PermissionToken is a signed grant from Issuer to Subject of Scope on one
// channel (or all, with ScopeWildcard), live while NotBefore ≤ now < NotAfter
// (unix seconds). The issuer's ed25519 signature covers the first 105 wire
// bytes. A decoded token is untrusted until Verify succeeds.
type PermissionToken struct {
	Issuer           EntityID
	Subject          EntityID
	Scope            uint32
	ChannelHash      uint64 // ChannelHash(name)
	IssuerGeneration uint32 // issuer's credential epoch, for revocation floors
	NotBefore        uint64
	NotAfter         uint64
	DelegationDepth  uint8 // how many more times it may be re-delegated
	Nonce            uint64
	Signature        [64]byte
}

// ChannelHash is the 64-bit channel hash tokens carry: XXH3-64 (seed 0) of
// the name's bytes.
func ChannelHash(name string) uint64 { return xxh3.HashString(name) }

// TokenSpec is what an issuer chooses about a new token.
type TokenSpec struct {
	Subject          EntityID
	Scope            uint32 // non-zero, only the Scope* bits
	ChannelHash      uint64
	IssuerGeneration uint32
	DelegationDepth  uint8
	TTL              time.Duration // MinTokenTTL ..= MaxTokenTTL, truncated to whole seconds
	Now              time.Time     // becomes not_before (unix seconds, truncated)
}

// IssueToken issues a non-delegable token (depth 0, generation 0) for scope on
// channel, valid from now for ttl. Errors: ErrReadOnly, ErrTokenTTL,
// ErrTokenScope (zero or unknown bits), ErrTokenClock (now before 1970).
func IssueToken(issuer *Keypair, subject EntityID, scope uint32, channel string, ttl time.Duration, now time.Time) (*PermissionToken, error) {
	return IssueTokenWith(issuer, TokenSpec{
		Subject:     subject,
		Scope:       scope,
		ChannelHash: ChannelHash(channel),
		TTL:         ttl,
		Now:         now,
	})
}

// IssueTokenWith issues a token with every field chosen by spec; same errors
// as IssueToken. not_after = not_before + TTL, saturating at 2^64−1.
func IssueTokenWith(issuer *Keypair, spec TokenSpec) (*PermissionToken, error) {
	if spec.Scope == 0 || spec.Scope&^scopeKnown != 0 {
		return nil, fmt.Errorf("%w: cannot issue scope %#x", ErrTokenScope, spec.Scope)
	}
	ttl, err := ttlSeconds(spec.TTL)
	if err != nil {
		return nil, err
	}
	nb, err := unixSeconds(spec.Now)
	if err != nil {
		return nil, err
	}
	t := &PermissionToken{
		Subject:          spec.Subject,
		Scope:            spec.Scope,
		ChannelHash:      spec.ChannelHash,
		IssuerGeneration: spec.IssuerGeneration,
		NotBefore:        nb,
		NotAfter:         saturatingAdd(nb, ttl),
		DelegationDepth:  spec.DelegationDepth,
	}
	if err := t.sign(issuer); err != nil {
		return nil, err
	}
	return t, nil
}

// Delegate has holder (the subject of t) issue a child token to newSubject
// with scope ⊆ t.Scope, on t's channel, one delegation level lower, valid from
// now for ttl but never past t.NotAfter (so the child's window lies inside
// t's). t itself must verify at now. Errors: those of Verify, ErrTokenDelegation
// (no DELEGATE scope, depth 0, holder is not the subject, scope widened or
// zero), ErrTokenTTL, ErrReadOnly. The child carries issuer generation 0.
func (t *PermissionToken) Delegate(holder *Keypair, newSubject EntityID, scope uint32, ttl time.Duration, now time.Time) (*PermissionToken, error) {
	if err := t.Verify(now); err != nil {
		return nil, err
	}
	switch {
	case t.Scope&ScopeDelegate == 0:
		return nil, fmt.Errorf("%w: parent lacks the delegate scope", ErrTokenDelegation)
	case t.DelegationDepth == 0:
		return nil, fmt.Errorf("%w: delegation depth exhausted", ErrTokenDelegation)
	case holder == nil || holder.EntityID() != t.Subject:
		return nil, fmt.Errorf("%w: holder is not the token's subject", ErrTokenDelegation)
	case scope == 0 || scope&^t.Scope != 0:
		return nil, fmt.Errorf("%w: scope %#x is not within %#x", ErrTokenDelegation, scope, t.Scope)
	}
	secs, err := ttlSeconds(ttl)
	if err != nil {
		return nil, err
	}
	nb, _ := unixSeconds(now) // Verify succeeded, so now ≥ 1970
	child := &PermissionToken{
		Subject:         newSubject,
		Scope:           scope,
		ChannelHash:     t.ChannelHash,
		NotBefore:       nb,
		NotAfter:        min(saturatingAdd(nb, secs), t.NotAfter),
		DelegationDepth: t.DelegationDepth - 1,
	}
	if err := child.sign(holder); err != nil {
		return nil, err
	}
	return child, nil
}

// Verify checks the issuer's signature strictly (ErrTokenBadSignature) and
// then the validity window at now (see CheckTime).
func (t *PermissionToken) Verify(now time.Time) error {
	if err := t.VerifySignature(); err != nil {
		return err
	}
	return t.CheckTime(now)
}

// VerifySignature checks only the issuer's signature, strictly.
func (t *PermissionToken) VerifySignature() error {
	p := t.signedPayload()
	if !VerifyStrict(t.Issuer, p[:], t.Signature[:]) {
		return ErrTokenBadSignature
	}
	return nil
}

// CheckTime checks only the window: ErrTokenNotYetValid while now < not_before,
// ErrTokenExpired once now ≥ not_after (the boundary second is expired).
// Times are compared in whole unix seconds.
func (t *PermissionToken) CheckTime(now time.Time) error {
	n, err := unixSeconds(now)
	if err != nil || n < t.NotBefore {
		return ErrTokenNotYetValid
	}
	if n >= t.NotAfter {
		return ErrTokenExpired
	}
	return nil
}

// IsExpired reports whether now ≥ not_after; it does not look at the signature.
func (t *PermissionToken) IsExpired(now time.Time) bool {
	n, err := unixSeconds(now)
	return err == nil && n >= t.NotAfter
}

// Authorizes reports (nil) whether the token grants every bit of scope on the
// named channel: ErrTokenScope if scope is zero or not granted, ErrTokenChannel
// if the token is bound to another channel and is not a wildcard. It does not
// check the signature or the time; use Check for all three.
func (t *PermissionToken) Authorizes(scope uint32, channel string) error {
	return t.AuthorizesHash(scope, ChannelHash(channel))
}

// AuthorizesHash is Authorizes with the channel given by its hash.
func (t *PermissionToken) AuthorizesHash(scope uint32, channelHash uint64) error {
	if scope == 0 || t.Scope&scope != scope {
		return fmt.Errorf("%w: want %#x, token has %#x", ErrTokenScope, scope, t.Scope)
	}
	if t.Scope&ScopeWildcard != 0 || t.ChannelHash == channelHash {
		return nil
	}
	return ErrTokenChannel
}

// Check is Verify(now) followed by Authorizes(scope, channel).
func (t *PermissionToken) Check(now time.Time, scope uint32, channel string) error {
	if err := t.Verify(now); err != nil {
		return err
	}
	return t.Authorizes(scope, channel)
}

// Encode returns the 169-byte wire form.
func (t *PermissionToken) Encode() [TokenSize]byte {
	var b [TokenSize]byte
	p := t.signedPayload()
	copy(b[:], p[:])
	copy(b[tokenSignedSize:], t.Signature[:])
	return b
}

// DecodeToken parses exactly TokenSize bytes (else ErrTokenMalformed). Every
// field value is accepted; Verify decides whether to trust it.
func DecodeToken(b []byte) (*PermissionToken, error) {
	if len(b) != TokenSize {
		return nil, fmt.Errorf("%w: %d bytes, want %d", ErrTokenMalformed, len(b), TokenSize)
	}
	le := binary.LittleEndian
	t := new(PermissionToken)
	copy(t.Issuer[:], b[0:32])
	copy(t.Subject[:], b[32:64])
	t.Scope = le.Uint32(b[64:68])
	t.ChannelHash = le.Uint64(b[68:76])
	t.IssuerGeneration = le.Uint32(b[76:80])
	t.NotBefore = le.Uint64(b[80:88])
	t.NotAfter = le.Uint64(b[88:96])
	t.DelegationDepth = b[96]
	t.Nonce = le.Uint64(b[97:105])
	copy(t.Signature[:], b[105:169])
	return t, nil
}

// signedPayload is the first 105 wire bytes, the part the issuer signs.
func (t *PermissionToken) signedPayload() [tokenSignedSize]byte {
	var b [tokenSignedSize]byte
	le := binary.LittleEndian
	copy(b[0:32], t.Issuer[:])
	copy(b[32:64], t.Subject[:])
	le.PutUint32(b[64:68], t.Scope)
	le.PutUint64(b[68:76], t.ChannelHash)
	le.PutUint32(b[76:80], t.IssuerGeneration)
	le.PutUint64(b[80:88], t.NotBefore)
	le.PutUint64(b[88:96], t.NotAfter)
	b[96] = t.DelegationDepth
	le.PutUint64(b[97:105], t.Nonce)
	return b
}

// sign sets Issuer to kp, draws a fresh random nonce and signs.
func (t *PermissionToken) sign(kp *Keypair) error {
	if kp == nil || kp.IsReadOnly() {
		return ErrReadOnly
	}
	var n [8]byte
	if _, err := rand.Read(n[:]); err != nil {
		return fmt.Errorf("%w: nonce: %w", ErrToken, err)
	}
	t.Issuer = kp.EntityID()
	t.Nonce = binary.LittleEndian.Uint64(n[:])
	p := t.signedPayload()
	sig, err := kp.Sign(p[:])
	if err != nil {
		return err
	}
	t.Signature = sig
	return nil
}

func ttlSeconds(ttl time.Duration) (uint64, error) {
	if ttl < MinTokenTTL || ttl > MaxTokenTTL {
		return 0, fmt.Errorf("%w: %v not within %v..%v", ErrTokenTTL, ttl, MinTokenTTL, MaxTokenTTL)
	}
	return uint64(ttl / time.Second), nil
}

func unixSeconds(now time.Time) (uint64, error) {
	s := now.Unix()
	if s < 0 {
		return 0, ErrTokenClock
	}
	return uint64(s), nil
}

func saturatingAdd(a, b uint64) uint64 {
	if a > math.MaxUint64-b {
		return math.MaxUint64
	}
	return a + b
}
