package mesh

import "context"

// The node seam of docs/SEAM.md, copied verbatim: *Node must satisfy it
// without this package importing core/compute.
var _ interface {
	NodeID() uint64
	SetSubprotocolHandler(id uint16, h func(from uint64, payload []byte))
	SendSubprotocol(ctx context.Context, to uint64, id uint16, payload []byte) error
	SubscribeChannel(ctx context.Context, publisher uint64, channel string, token []byte) error
	UnsubscribeChannel(ctx context.Context, publisher uint64, channel string) error
	StaticPublicKey() [32]byte
	StaticPrivateKey() [32]byte
	PeerStaticKey(node uint64) ([32]byte, bool)
} = (*Node)(nil)
