package compute

import (
	"context"
	"crypto/ecdh"
	"crypto/rand"
	"encoding/binary"
	"strconv"
	"sync"

	"github.com/netmesh/libnetmesh/core/identity"
)

// FakeNetwork connects FakeNodes in-process, for tests of this and other
// packages: subprotocol payloads are handed to the receiver's own receive
// goroutine (in send order per receiver), channel (un)subscriptions edit a
// roster kept per publisher. Close stops every receive goroutine.
type FakeNetwork struct {
	mu      sync.Mutex
	nodes   map[uint64]*FakeNode
	rosters map[uint64]map[string][]uint64 // publisher → channel → subscribers
	drop    func(from, to uint64, id uint16, payload []byte) bool
	closed  bool
}

// FakePeerUnavailableError is what a FakeNode returns for an unknown or
// unreachable peer; it satisfies the seam's PeerUnavailable convention.
type FakePeerUnavailableError struct{ Node uint64 }

func (e *FakePeerUnavailableError) Error() string {
	return "fake node: peer 0x" + strconv.FormatUint(e.Node, 16) + " unavailable"
}

// PeerUnavailable is always true.
func (e *FakePeerUnavailableError) PeerUnavailable() bool { return true }

// NewFakeNetwork returns an empty network.
func NewFakeNetwork() *FakeNetwork {
	return &FakeNetwork{nodes: make(map[uint64]*FakeNode), rosters: make(map[uint64]map[string][]uint64)}
}

// NewNode adds a node with a fresh identity and X25519 static key.
func (n *FakeNetwork) NewNode() *FakeNode {
	kp, err := identity.Generate()
	if err != nil {
		panic("compute: fake node identity: " + err.Error())
	}
	priv, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		panic("compute: fake node static key: " + err.Error())
	}
	f := &FakeNode{net: n, id: kp.NodeID(), handlers: make(map[uint16]func(uint64, []byte))}
	copy(f.priv[:], priv.Bytes())
	copy(f.pub[:], priv.PublicKey().Bytes())
	f.cond = sync.NewCond(&f.mu)
	n.mu.Lock()
	defer n.mu.Unlock()
	n.nodes[f.id] = f
	f.wg.Add(1)
	go f.receive()
	return f
}

// SetDrop installs a filter; a payload for which it returns true is
// silently lost (nil restores lossless delivery).
func (n *FakeNetwork) SetDrop(drop func(from, to uint64, id uint16, payload []byte) bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.drop = drop
}

// Roster is the subscribers publisher holds for channel, in subscription order.
func (n *FakeNetwork) Roster(publisher uint64, channel string) []uint64 {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]uint64(nil), n.rosters[publisher][channel]...)
}

// Close stops every node's receive goroutine and waits for them.
func (n *FakeNetwork) Close() {
	n.mu.Lock()
	nodes := make([]*FakeNode, 0, len(n.nodes))
	for _, f := range n.nodes {
		nodes = append(nodes, f)
	}
	n.closed = true
	n.mu.Unlock()
	for _, f := range nodes {
		f.Close()
	}
}

func (n *FakeNetwork) lookup(id uint64) *FakeNode {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.nodes[id]
}

// FakeNode implements Node in-process.
type FakeNode struct {
	net  *FakeNetwork
	id   uint64
	priv [32]byte
	pub  [32]byte

	mu          sync.Mutex
	cond        *sync.Cond
	handlers    map[uint16]func(uint64, []byte)
	inbox       []fakeMsg
	closed      bool
	sendErr     error
	channelErr  error
	unreachable bool
	wg          sync.WaitGroup
}

type fakeMsg struct {
	from    uint64
	id      uint16
	payload []byte
}

// NodeID is the node's id.
func (f *FakeNode) NodeID() uint64 { return f.id }

// StaticPublicKey is the node's X25519 public key.
func (f *FakeNode) StaticPublicKey() [32]byte { return f.pub }

// StaticPrivateKey is the node's X25519 private key.
func (f *FakeNode) StaticPrivateKey() [32]byte { return f.priv }

// PeerStaticKey knows every node of the network except unreachable ones.
func (f *FakeNode) PeerStaticKey(node uint64) ([32]byte, bool) {
	p := f.net.lookup(node)
	if p == nil || p.isUnreachable() {
		return [32]byte{}, false
	}
	return p.pub, true
}

// SetSubprotocolHandler installs (nil removes) the handler for id.
func (f *FakeNode) SetSubprotocolHandler(id uint16, h func(from uint64, payload []byte)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if h == nil {
		delete(f.handlers, id)
		return
	}
	f.handlers[id] = h
}

// HasHandler reports whether a handler is installed for id.
func (f *FakeNode) HasHandler(id uint16) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.handlers[id] != nil
}

// FailSends makes every SendSubprotocol fail with a PeerUnavailable error
// (on) or work again (off).
func (f *FakeNode) FailSends(on bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sendErr = nil
	if on {
		f.sendErr = &FakePeerUnavailableError{}
	}
}

// FailChannels makes Subscribe/UnsubscribeChannel fail with err (nil: work).
func (f *FakeNode) FailChannels(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.channelErr = err
}

// SetUnreachable makes other nodes treat this one as unavailable.
func (f *FakeNode) SetUnreachable(on bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.unreachable = on
}

func (f *FakeNode) isUnreachable() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.unreachable || f.closed
}

// SendSubprotocol copies payload and queues it for the peer's receive
// goroutine. Unknown or unreachable peers give *FakePeerUnavailableError.
func (f *FakeNode) SendSubprotocol(ctx context.Context, to uint64, id uint16, payload []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	f.mu.Lock()
	sendErr := f.sendErr
	f.mu.Unlock()
	if sendErr != nil {
		return &FakePeerUnavailableError{Node: to}
	}
	p := f.net.lookup(to)
	if p == nil || p.isUnreachable() {
		return &FakePeerUnavailableError{Node: to}
	}
	f.net.mu.Lock()
	drop := f.net.drop
	f.net.mu.Unlock()
	if drop != nil && drop(f.id, to, id, payload) {
		return nil
	}
	p.enqueue(fakeMsg{from: f.id, id: id, payload: append([]byte(nil), payload...)})
	return nil
}

func (f *FakeNode) enqueue(m fakeMsg) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return
	}
	f.inbox = append(f.inbox, m)
	f.cond.Signal()
}

// receive is the node's receive goroutine: handlers run here one at a time.
// Like the real mesh, with no 0x0500 handler it answers TakeSnapshot and
// SnapshotReady with MigrationFailed ComputeNotSupported.
func (f *FakeNode) receive() {
	defer f.wg.Done()
	for {
		f.mu.Lock()
		for len(f.inbox) == 0 && !f.closed {
			f.cond.Wait()
		}
		if f.closed {
			f.mu.Unlock()
			return
		}
		m := f.inbox[0]
		f.inbox = f.inbox[1:]
		h := f.handlers[m.id]
		f.mu.Unlock()
		if h != nil {
			f.safeCall(h, m)
			continue
		}
		if m.id == SubprotocolMigration && len(m.payload) >= 9 && (m.payload[0] == 0 || m.payload[0] == 1) {
			reply := make([]byte, 0, 11)
			reply = append(reply, 6)
			reply = append(reply, m.payload[1:9]...)
			reply = binary.LittleEndian.AppendUint16(reply, uint16(FailureComputeNotSupported))
			_ = f.SendSubprotocol(context.Background(), m.from, SubprotocolMigration, reply)
		}
	}
}

func (f *FakeNode) safeCall(h func(uint64, []byte), m fakeMsg) {
	defer func() { _ = recover() }()
	h(m.from, m.payload)
}

// SubscribeChannel adds this node to publisher's roster for channel.
func (f *FakeNode) SubscribeChannel(ctx context.Context, publisher uint64, channel string, token []byte) error {
	return f.editRoster(ctx, publisher, channel, true)
}

// UnsubscribeChannel drops this node from publisher's roster for channel.
func (f *FakeNode) UnsubscribeChannel(ctx context.Context, publisher uint64, channel string) error {
	return f.editRoster(ctx, publisher, channel, false)
}

func (f *FakeNode) editRoster(ctx context.Context, publisher uint64, channel string, add bool) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	f.mu.Lock()
	cerr := f.channelErr
	f.mu.Unlock()
	if cerr != nil {
		return cerr
	}
	if p := f.net.lookup(publisher); p == nil || p.isUnreachable() {
		return &FakePeerUnavailableError{Node: publisher}
	}
	n := f.net
	n.mu.Lock()
	defer n.mu.Unlock()
	chans := n.rosters[publisher]
	if chans == nil {
		chans = make(map[string][]uint64)
		n.rosters[publisher] = chans
	}
	var kept []uint64
	for _, s := range chans[channel] {
		if s != f.id {
			kept = append(kept, s)
		}
	}
	if add {
		kept = append(kept, f.id)
	}
	chans[channel] = kept
	return nil
}

// Close stops the receive goroutine (queued payloads are dropped) and
// makes the node unreachable.
func (f *FakeNode) Close() {
	f.mu.Lock()
	f.closed = true
	f.inbox = nil
	f.cond.Broadcast()
	f.mu.Unlock()
	f.wg.Wait()
}

var _ Node = (*FakeNode)(nil)
