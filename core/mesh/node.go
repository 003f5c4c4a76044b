// Package mesh is the Net mesh node: a datagram socket, Noise sessions with
// peers, sealed packets with replay protection, heartbeats and a failure
// detector, subprotocol dispatch with reliable control traffic, and channel
// membership with permission tokens. Bytes follow FORMATS §7–8 (Net mesh
// 0.24); the codecs live in core/mesh/wire.
//
// Goroutines per node: one reads the transport (decrypts, replay-checks,
// acknowledges), one runs timers (heartbeats, retransmission, failure
// detection), one dispatches to handlers and callbacks, and one keeps a couple
// of Noise ephemeral keys ready for the next handshakes. User code only ever
// runs on the dispatch goroutine, so a slow handler delays other handlers but
// never the socket or the timers.
package mesh

import (
	"context"
	"crypto/rand"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flynn/noise"

	"github.com/netmesh/libnetmesh/core/identity"
)

// Log levels passed to Config.Logger.
const (
	LogDebug = iota
	LogInfo
	LogWarn
	LogError
)

// Defaults for the zero values of Config.
const (
	DefaultHeartbeatInterval    = 5 * time.Second
	DefaultSessionTimeout       = 30 * time.Second
	DefaultRetransmitInterval   = 200 * time.Millisecond
	DefaultConnectTimeout       = 10 * time.Second
	DefaultMembershipAckTimeout = 5 * time.Second
	DefaultMaxChannelsPerPeer   = 1024
	DefaultSubscribeBurst       = 64
	DefaultSubscribeRate        = 32 // refills per second
)

// Config builds a Node. Zero values take the defaults above.
type Config struct {
	// Identity is the node's ed25519 identity (its node id derives from it);
	// nil generates one. It must hold its secret.
	Identity *identity.Keypair
	// Bind is the UDP address to bind when Transport is nil ("127.0.0.1:0").
	Bind string
	// PSK is the mesh's pre-shared key, mixed into every handshake.
	PSK [32]byte
	// HeartbeatInterval between heartbeats on an idle session.
	HeartbeatInterval time.Duration
	// SessionTimeout of silence after which a peer is failed; it is suspected
	// after half of it.
	SessionTimeout time.Duration
	// Transport to run on; nil binds UDP at Bind. The node owns it and closes it.
	Transport Transport
	// Logger receives diagnostics; nil discards them. Called from node
	// goroutines: it must not block.
	Logger func(level int, msg string, fields map[string]any)
	// RetransmitInterval is the first retransmission timeout of reliable
	// messages and handshake attempts; it doubles per try up to 8×.
	RetransmitInterval time.Duration
	// ConnectTimeout bounds Connect when its context has no deadline.
	ConnectTimeout time.Duration
	// MembershipAckTimeout bounds SubscribeChannel/UnsubscribeChannel (5 s).
	MembershipAckTimeout time.Duration
	// MaxChannelsPerPeer caps how many of our channels one peer may join.
	MaxChannelsPerPeer int
	// SubscribeBurst and SubscribeRate are the per-peer token bucket for
	// membership requests; an empty bucket answers RateLimited.
	SubscribeBurst int
	SubscribeRate  float64
}

func (c *Config) normalize() {
	if c.HeartbeatInterval <= 0 {
		c.HeartbeatInterval = DefaultHeartbeatInterval
	}
	if c.SessionTimeout <= 0 {
		c.SessionTimeout = DefaultSessionTimeout
	}
	if c.RetransmitInterval <= 0 {
		c.RetransmitInterval = DefaultRetransmitInterval
	}
	if c.ConnectTimeout <= 0 {
		c.ConnectTimeout = DefaultConnectTimeout
	}
	if c.MembershipAckTimeout <= 0 {
		c.MembershipAckTimeout = DefaultMembershipAckTimeout
	}
	if c.MaxChannelsPerPeer <= 0 {
		c.MaxChannelsPerPeer = DefaultMaxChannelsPerPeer
	}
	if c.SubscribeBurst <= 0 {
		c.SubscribeBurst = DefaultSubscribeBurst
	}
	if c.SubscribeRate <= 0 {
		c.SubscribeRate = DefaultSubscribeRate
	}
	if c.Bind == "" {
		c.Bind = "127.0.0.1:0"
	}
}

// PeerState is a peer's liveness as seen by the failure detector.
//
//	(connect) → Healthy ⇄ Suspected → Failed (session dropped, peer forgotten)
//
// Suspected after SessionTimeout/2 of silence, Failed after SessionTimeout.
type PeerState int

const (
	PeerHealthy PeerState = iota
	PeerSuspected
	PeerFailed
)

func (s PeerState) String() string {
	switch s {
	case PeerHealthy:
		return "healthy"
	case PeerSuspected:
		return "suspected"
	case PeerFailed:
		return "failed"
	}
	return fmt.Sprintf("PeerState(%d)", int(s))
}

// Node is one mesh node. All methods are safe for concurrent use.
type Node struct {
	cfg    Config
	id     *identity.Keypair
	nodeID uint64
	static noise.DHKey
	tr     Transport
	ctr    counters

	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup
	disp   dispatcher
	closed atomic.Bool

	sendq chan outPacket // to writerLoop; nil unless the transport batches
	// wmu is held by every write of a batching transport (writer goroutine
	// or a sender writing directly); pending counts packets queued or held
	// by the writer, not yet written; lastWrite is when the last write ended
	// (nanotime). See enqueue.
	wmu       sync.Mutex
	pending   atomic.Int64
	lastWrite atomic.Int64
	ephPool   chan noise.DHKey // pre-generated ephemeral keys (ephemeral.go)

	// ackMu guards the sessions owing a delayed ack and the timer that
	// flushes them (reliable.go, owesAck).
	ackMu    sync.Mutex
	ackOwed  []*session
	ackTimer *time.Timer
	ackDelay time.Duration // min(ackDelay, RetransmitInterval/4), set once
	ephWake  chan struct{}

	certs [2][64]byte // our hello certificates, by role (handshake.go)

	dhMu      sync.Mutex
	dhCache   map[[32]byte][32]byte // see staticDH
	certCache map[certKey]struct{}  // see verifyCert

	// mu guards everything below.
	mu        sync.Mutex
	peers     map[uint64]*peer    // by node id
	sessions  map[uint64]*session // by session id, established or pending
	admitted  map[uint64]bool     // initiators Accept()ed
	initiates map[uint32]*initiation
	handlers  map[uint16]func(from uint64, payload []byte)
	inline    map[uint16]bool                  // handlers called on the reader (SetHandlerInline)
	channels  map[string]*channel              // channels we publish
	subs      map[subKey]bool                  // channels we subscribed to
	waiters   map[uint64]chan membershipAnswer // membership nonce → waiter
	buckets   map[uint64]*bucket               // membership rate limit per peer
	onState   func(peer uint64, state PeerState)
	onChannel func(publisher uint64, channel string, payload []byte)
}

// peer is a node we have (or had) a session with. Guarded by Node.mu.
type peer struct {
	id      uint64
	sess    *session // established session used for sending; nil while none
	pending *session // responder session awaiting the initiator's hello
	state   PeerState
}

// NewNode binds the transport and starts the node's goroutines.
func NewNode(cfg Config) (*Node, error) {
	cfg.normalize()
	id := cfg.Identity
	if id == nil {
		var err error
		if id, err = identity.Generate(); err != nil {
			return nil, fmt.Errorf("mesh: %w", err)
		}
	}
	if id.IsReadOnly() {
		return nil, fmt.Errorf("%w: identity has no secret key", ErrInvalidConfig)
	}
	static, err := noise.DH25519.GenerateKeypair(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("mesh: static key: %w", err)
	}
	var certs [2][64]byte
	for role := range certs {
		if certs[role], err = id.Sign(helloSigMsg(byte(role), static.Public)); err != nil {
			return nil, fmt.Errorf("mesh: hello certificate: %w", err)
		}
	}
	tr := cfg.Transport
	if tr == nil {
		if tr, err = ListenUDP(cfg.Bind); err != nil {
			return nil, err
		}
	}
	n := &Node{
		cfg: cfg, id: id, nodeID: id.NodeID(), static: static, tr: tr, certs: certs,
		peers:     make(map[uint64]*peer),
		sessions:  make(map[uint64]*session),
		admitted:  make(map[uint64]bool),
		initiates: make(map[uint32]*initiation),
		handlers:  make(map[uint16]func(uint64, []byte)),
		inline:    make(map[uint16]bool),
		channels:  make(map[string]*channel),
		subs:      make(map[subKey]bool),
		waiters:   make(map[uint64]chan membershipAnswer),
		buckets:   make(map[uint64]*bucket),
		dhCache:   make(map[[32]byte][32]byte),
		certCache: make(map[certKey]struct{}),
		ephPool:   make(chan noise.DHKey, ephemeralPoolSize),
		ephWake:   make(chan struct{}, 1),
	}
	n.ackDelay = min(ackDelay, cfg.RetransmitInterval/4)
	n.ctx, n.cancel = context.WithCancel(context.Background())
	n.disp.init()
	if _, ok := tr.(batchWriter); ok {
		n.sendq = make(chan outPacket, sendQueueLen)
		n.wg.Add(1)
		go n.writerLoop()
	}
	n.wg.Add(4)
	go n.keygenLoop()
	go n.readLoop()
	go n.timerLoop()
	go n.dispatchLoop()
	return n, nil
}

// Close stops the node's goroutines, drops every session and closes the
// transport. It waits for a running handler to return. Idempotent.
func (n *Node) Close() error {
	if n.closed.Swap(true) {
		return nil
	}
	n.cancel()
	err := n.tr.Close()
	n.disp.close()
	n.wg.Wait()
	n.ackMu.Lock()
	if n.ackTimer != nil {
		n.ackTimer.Stop()
	}
	n.ackOwed = nil
	n.ackMu.Unlock()
	n.mu.Lock()
	for _, s := range n.sessions {
		s.shutdown()
	}
	n.sessions = map[uint64]*session{}
	n.peers = map[uint64]*peer{}
	n.mu.Unlock()
	return err
}

// NodeID is identity.NodeIDOf of the node's identity.
func (n *Node) NodeID() uint64 { return n.nodeID }

// Identity returns the node's identity.
func (n *Node) Identity() *identity.Keypair { return n.id }

// Addr is the bound transport address ("127.0.0.1:40123" for UDP).
func (n *Node) Addr() string { return n.tr.LocalAddr().String() }

// StaticPublicKey is the node's Noise X25519 static public key (fresh per node).
func (n *Node) StaticPublicKey() (k [32]byte) {
	copy(k[:], n.static.Public)
	return k
}

// StaticPrivateKey is its private half.
func (n *Node) StaticPrivateKey() (k [32]byte) {
	copy(k[:], n.static.Private)
	return k
}

// PeerStaticKey is an established peer's X25519 static public key, known on
// both sides of a handshake (the initiator proves its key in the hello).
func (n *Node) PeerStaticKey(node uint64) ([32]byte, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if p := n.peers[node]; p != nil && p.sess != nil {
		return p.sess.peerStatic, true
	}
	return [32]byte{}, false
}

// PeerEntityID is an established peer's identity public key, proven by its
// signature over the session's handshake hash.
func (n *Node) PeerEntityID(node uint64) (identity.EntityID, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if p := n.peers[node]; p != nil && p.sess != nil {
		return p.sess.peerEntity, true
	}
	return identity.EntityID{}, false
}

// Peers lists the node ids with an established session.
func (n *Node) Peers() []uint64 {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := make([]uint64, 0, len(n.peers))
	for id, p := range n.peers {
		if p.sess != nil {
			out = append(out, id)
		}
	}
	return out
}

// PeerState reports a peer's liveness; ok is false for an unknown peer.
func (n *Node) PeerState(node uint64) (PeerState, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if p := n.peers[node]; p != nil && p.sess != nil {
		return p.state, true
	}
	return PeerFailed, false
}

// OnPeerStateChange installs the liveness callback (nil removes it). It runs
// on the dispatch goroutine for each transition, including Healthy when a
// session is established.
func (n *Node) OnPeerStateChange(f func(peer uint64, state PeerState)) {
	n.mu.Lock()
	n.onState = f
	n.mu.Unlock()
}

// Accept admits handshakes from initiator peerNodeID, now and later.
func (n *Node) Accept(peerNodeID uint64) {
	n.mu.Lock()
	n.admitted[peerNodeID] = true
	n.mu.Unlock()
}

func (n *Node) logf(level int, msg string, fields map[string]any) {
	if f := n.cfg.Logger; f != nil {
		f(level, msg, fields)
	}
}

// write sends one datagram and counts it.
func (n *Node) write(b []byte, to net.Addr) error {
	if _, err := n.tr.WriteTo(b, to); err != nil {
		return fmt.Errorf("mesh: write: %w", err)
	}
	n.ctr.packetsSent.Add(1)
	n.ctr.bytesSent.Add(uint64(len(b)))
	return nil
}

// readLoop is the only reader of the transport. It exits when Close closes
// the transport.
func (n *Node) readLoop() {
	defer n.wg.Done()
	br, batched := n.tr.(batchReader)
	buf := make([]byte, groBufSize)
	oob := make([]byte, 128)
	scratch := make([]byte, 0, 64<<10)
	for {
		var (
			k, seg int
			from   net.Addr
			err    error
		)
		if batched {
			k, from, seg, err = br.readBatch(buf, oob)
		} else {
			k, from, err = n.tr.ReadFrom(buf)
		}
		if err != nil {
			if n.closed.Load() {
				return
			}
			n.logf(LogWarn, "mesh: read error", map[string]any{"err": err.Error()})
			if isPermanent(err) {
				return
			}
			continue
		}
		if seg == 0 {
			n.handlePacket(buf[:k], from, scratch)
			continue
		}
		// A coalesced read: datagrams of seg bytes, the last possibly shorter.
		for off := 0; off < k; off += seg {
			n.handlePacket(buf[off:min(off+seg, k)], from, scratch)
		}
	}
}

func isPermanent(err error) bool {
	ne, ok := err.(net.Error)
	return !ok || !ne.Timeout()
}

// timerLoop drives heartbeats, retransmissions and the failure detector.
func (n *Node) timerLoop() {
	defer n.wg.Done()
	tick := n.cfg.RetransmitInterval / 2
	if hb := n.cfg.HeartbeatInterval / 4; hb < tick {
		tick = hb
	}
	if tick < time.Millisecond {
		tick = time.Millisecond
	}
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		select {
		case <-n.ctx.Done():
			return
		case now := <-t.C:
			n.onTick(now)
		}
	}
}
