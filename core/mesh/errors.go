package mesh

import (
	"errors"
	"fmt"
)

// Sentinel errors of the mesh node. Callers match them with errors.Is; the
// membership refusals also match the typed *AckError.
var (
	// ErrClosed: the node has been closed.
	ErrClosed = errors.New("mesh: node closed")
	// ErrHandshakeFailed: a handshake did not complete (wrong PSK, wrong static
	// key, identity mismatch, or no answer).
	ErrHandshakeFailed = errors.New("mesh: handshake failed")
	// ErrHandshakeTimeout: no valid answer before the deadline. It wraps
	// ErrHandshakeFailed, so errors.Is(err, ErrHandshakeFailed) holds too.
	ErrHandshakeTimeout = fmt.Errorf("%w: timed out", ErrHandshakeFailed)
	// ErrPeerUnavailable: no established session with that node.
	ErrPeerUnavailable = errors.New("mesh: peer unavailable")
	// ErrPayloadTooLarge: a payload does not fit one packet.
	ErrPayloadTooLarge = errors.New("mesh: payload too large")
	// ErrInvalidChannel: a channel name breaks the naming rules.
	ErrInvalidChannel = errors.New("mesh: invalid channel name")
	// ErrAckTimeout: the publisher did not answer a membership request in time.
	ErrAckTimeout = errors.New("mesh: membership ack timeout")
	// ErrInvalidConfig: a Config or argument is unusable.
	ErrInvalidConfig = errors.New("mesh: invalid config")

	// Membership refusals, one per Ack reason (FORMATS §8).
	ErrUnauthorized    = errors.New("mesh: subscription unauthorized")
	ErrUnknownChannel  = errors.New("mesh: unknown channel")
	ErrRateLimited     = errors.New("mesh: subscription rate limited")
	ErrTooManyChannels = errors.New("mesh: too many channels")
)

// PeerUnavailableError is returned when a message cannot go to a node because
// there is no established session with it. It satisfies the seam's
// interface{ PeerUnavailable() bool } and matches ErrPeerUnavailable.
type PeerUnavailableError struct {
	Peer uint64
}

func (e *PeerUnavailableError) Error() string {
	return fmt.Sprintf("mesh: peer %016x unavailable", e.Peer)
}

// PeerUnavailable always reports true.
func (e *PeerUnavailableError) PeerUnavailable() bool { return true }

// Unwrap lets errors.Is(err, ErrPeerUnavailable) hold.
func (e *PeerUnavailableError) Unwrap() error { return ErrPeerUnavailable }

// AckError is a refused membership request: the publisher's Ack reason code
// and the matching sentinel (ErrUnauthorized, ErrUnknownChannel, ...).
type AckError struct {
	Reason  uint8
	Channel string
	err     error
}

func (e *AckError) Error() string {
	return fmt.Sprintf("%v (channel %q, reason %d)", e.err, e.Channel, e.Reason)
}

// Unwrap returns the reason's sentinel.
func (e *AckError) Unwrap() error { return e.err }
