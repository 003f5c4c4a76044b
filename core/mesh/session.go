package mesh

import (
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/netmesh/libnetmesh/core/identity"
	"github.com/netmesh/libnetmesh/core/mesh/wire"
)

// session is one Noise session with a peer: the two directional ciphers, the
// send counter, the replay window and the reliable-delivery state.
//
// Immutable after creation: n, id, peerID, initiator, tx, rx, addr, hash.
// peerStatic and peerEntity are written once before established is set and
// only read after it.
type session struct {
	n         *Node
	id        uint64
	peerID    uint64
	initiator bool
	tx, rx    *wire.Cipher
	addr      net.Addr
	hash      [32]byte // Noise handshake hash (channel binding)

	txCounter   atomic.Uint64
	lastRecv    atomic.Int64 // unix nanos of the last authenticated packet
	lastSend    atomic.Int64
	established atomic.Bool
	dead        atomic.Bool

	peerStatic [32]byte
	peerEntity identity.EntityID
	helloDone  chan error // initiator: result of the identity exchange
	helloAck   []byte     // responder: signed HelloAck; reader goroutine only

	// rxMu serialises the replay window (reader goroutine only, but the
	// fuzz/test paths may call handlePacket concurrently).
	rxMu   sync.Mutex
	replay wire.ReplayWindow

	// inMu orders inline handler calls (see onReliable).
	inMu sync.Mutex

	// relMu guards the per-stream state.
	relMu   sync.Mutex
	send    map[uint64]*sendStream
	recv    map[uint64]*recvStream
	changed chan struct{} // closed and replaced when acks free window space
}

func newSession(n *Node, id, peerID uint64, initiator bool, txKey, rxKey [32]byte, hash [32]byte, addr net.Addr) (*session, error) {
	tx, err := wire.NewCipher(txKey)
	if err != nil {
		return nil, err
	}
	rx, err := wire.NewCipher(rxKey)
	if err != nil {
		return nil, err
	}
	s := &session{
		n: n, id: id, peerID: peerID, initiator: initiator, tx: tx, rx: rx,
		addr: addr, hash: hash,
		send:      make(map[uint64]*sendStream),
		recv:      make(map[uint64]*recvStream),
		changed:   make(chan struct{}),
		helloDone: make(chan error, 1),
	}
	now := time.Now().UnixNano()
	s.lastRecv.Store(now)
	s.lastSend.Store(now)
	return s, nil
}

// shutdown marks the session dead and abandons its unacked messages.
func (s *session) shutdown() {
	if s.dead.Swap(true) {
		return
	}
	s.relMu.Lock()
	for _, st := range s.send {
		s.n.ctr.abandoned.Add(uint64(len(st.out)))
		st.out = nil
	}
	close(s.changed)
	s.changed = make(chan struct{})
	s.relMu.Unlock()
}

var packetPool = sync.Pool{New: func() any { b := make([]byte, 0, wire.MaxPacket); return &b }}

// maxMessage is the largest subprotocol payload: one framed event per packet.
const maxMessage = wire.MaxPayload - wire.EventPrefixSize

// sendPacket seals one packet carrying events (framed) or nothing (heartbeat)
// and writes it, or hands it to the node's writer goroutine when the
// transport batches. Safe from any goroutine.
func (s *session) sendPacket(h wire.Header, events ...[]byte) error {
	pt := packetPool.Get().(*[]byte)
	defer packetPool.Put(pt)
	plain := wire.AppendEvents((*pt)[:0], events...)
	*pt = plain[:0]
	if len(plain) > wire.MaxPayload {
		return ErrPayloadTooLarge
	}
	h.SessionID = s.id
	h.EventCount = uint16(len(events))
	out := packetPool.Get().(*[]byte)
	ctr := s.txCounter.Add(1) - 1
	*out = s.tx.Seal((*out)[:0], &h, ctr, plain)
	s.lastSend.Store(time.Now().UnixNano())
	if s.n.sendq != nil {
		return s.n.enqueue(out, s.addr) // the writer returns out to the pool
	}
	err := s.n.write(*out, s.addr)
	packetPool.Put(out)
	return err
}

func (s *session) sendHeartbeat() error {
	s.n.ctr.heartbeatsSent.Add(1)
	return s.sendPacket(wire.Header{Flags: wire.FlagHeartbeat})
}
