package compute

import (
	"context"
	"errors"
)

// Subprotocol ids used by the runtime.
const (
	SubprotocolMigration  uint16 = 0x0500
	SubprotocolMembership uint16 = 0x0A00
)

// Node is what the runtime needs from a mesh node (docs/SEAM.md, a fixed
// contract). core/mesh's *Node implements it structurally without importing
// this package.
type Node interface {
	// NodeID is this node's 64-bit id (identity.NodeIDOf of the node identity).
	NodeID() uint64
	// SetSubprotocolHandler installs h for subprotocol id, replacing any previous
	// one; h == nil removes it. h is called on the node's receive goroutine with
	// the sender's node id and the payload (owned by h); h must not block.
	SetSubprotocolHandler(id uint16, h func(from uint64, payload []byte))
	// SendSubprotocol sends one payload to node `to` on subprotocol id. Control
	// subprotocols (0x0500 migration, 0x0A00 membership) are delivered reliably
	// (acked, retransmitted, de-duplicated). An unknown/unreachable peer returns an
	// error e for which errors.As(e, &x) holds for some x implementing
	// interface{ PeerUnavailable() bool } returning true.
	SendSubprotocol(ctx context.Context, to uint64, id uint16, payload []byte) error
	// SubscribeChannel asks publisher to add this node to channel's roster
	// (token: raw 169-byte permission token or nil) and waits for the Ack.
	SubscribeChannel(ctx context.Context, publisher uint64, channel string, token []byte) error
	// UnsubscribeChannel asks publisher to drop this node from channel's roster.
	UnsubscribeChannel(ctx context.Context, publisher uint64, channel string) error
	// StaticPublicKey is this node's Noise X25519 static public key.
	StaticPublicKey() [32]byte
	// StaticPrivateKey is its private half (used to open identity envelopes).
	StaticPrivateKey() [32]byte
	// PeerStaticKey is a connected peer's X25519 static public key (known on both
	// sides of a handshake).
	PeerStaticKey(node uint64) ([32]byte, bool)
}

// IsPeerUnavailable reports whether err says the peer is unknown or
// unreachable (the seam's PeerUnavailable convention).
func IsPeerUnavailable(err error) bool {
	var pu interface{ PeerUnavailable() bool }
	return errors.As(err, &pu) && pu.PeerUnavailable()
}
