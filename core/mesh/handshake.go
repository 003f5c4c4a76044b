package mesh

import (
	"context"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/flynn/noise"

	"github.com/netmesh/libnetmesh/core/identity"
	"github.com/netmesh/libnetmesh/core/mesh/wire"
)

// Handshake (FORMATS §8): Noise_NKpsk0_25519_ChaChaPoly_BLAKE2s in the routed
// form. msg1 = e(32) ‖ AEAD(initiator node id, 8 bytes) = 56 bytes; msg2 = e(32)
// ‖ AEAD(empty) = 48 bytes. Session keys come from the handshake hash, not from
// Noise's Split.
//
// Identity exchange (ours, on private subprotocol SubHello, inside the new
// session). NK authenticates only the responder's static key, so right after
// msg2 the initiator sends
//
//	Hello    = [0][entity_id 32][static_pub 32][proof 32][sig 64]   (161 bytes)
//	HelloAck = [1][entity_id 32][sig 64]                            (97 bytes)
//
// sig  = Ed25519(identity, "net-mesh-hello-v2" ‖ role u8 ‖ sender static_pub)
// proof = BLAKE2s-MAC(key = X25519(initiator static, responder static),
//
//	"net-mesh-static-proof-v1" ‖ h)
//
// with h the handshake hash and role 0 for the initiator, 1 for the responder.
// The signature is a certificate: the sender's identity (whose node id must be
// the claimed one) vouches for its static key. The session binding comes from
// the static key: the initiator's proof can only be made by a holder of its
// static private key (or of ours) and only for this h; the responder's static
// key is authenticated by NK itself, and the HelloAck travels inside the
// session. So a replayed Hello fails its proof, and a certificate is useless
// without the static private key it names. Certificates do not depend on the
// session: each node signs its two once, at start, and a verified certificate
// is cached (certCache), so a reconnect between known nodes costs no Ed25519
// operation. The responder promotes the session to
// established on a valid Hello and answers HelloAck (re-sent for every
// repeated Hello); the initiator's Connect returns once HelloAck verifies. So
// both sides know each other's static key and entity id before any user
// traffic flows. A session that is not established carries only SubHello.
const (
	msg1Len     = 32 + 8 + 16
	msg2Len     = 32 + 16
	helloLen    = 1 + 32 + 32 + 32 + 64
	helloAckLen = 1 + 32 + 64
	maxBackoff  = 2 * time.Second
)

var (
	cipherSuite    = noise.NewCipherSuite(presetDH{noise.DH25519}, noise.CipherChaChaPoly, noise.HashBLAKE2s)
	prologueLabel  = []byte("net-handshake-v1")
	kdfLabel       = []byte("net-kdf-v1")
	helloSigLabel  = []byte("net-mesh-hello-v2")
	helloProofTag  = []byte("net-mesh-static-proof-v1")
	errHelloVerify = errors.New("mesh: peer identity proof invalid")
)

// prologue is "net-handshake-v1" ‖ routing id of the initiator ‖ of the responder.
func prologue(initiator, responder uint64) []byte {
	p := make([]byte, 0, 32)
	p = append(p, prologueLabel...)
	p = binary.LittleEndian.AppendUint64(p, initiator&0xFFFFFFFF)
	return binary.LittleEndian.AppendUint64(p, responder&0xFFFFFFFF)
}

// SessionKeys derives (session_id, initiator-tx key, initiator-rx key) from the
// final handshake hash h, as FORMATS §8 prescribes.
func SessionKeys(h []byte) (sessionID uint64, initTx, initRx [32]byte) {
	prk := identity.Mac(h, kdfLabel)
	initTx = identity.Mac(prk[:], []byte("initiator-tx"))
	initRx = identity.Mac(prk[:], []byte("initiator-rx"))
	return binary.LittleEndian.Uint64(h[:8]), initTx, initRx
}

func (n *Node) noiseConfig(initiator bool, prol []byte, peerStatic []byte) noise.Config {
	c := noise.Config{
		CipherSuite: cipherSuite, Random: n.ephemeral(), Pattern: noise.HandshakeNK,
		Initiator: initiator, Prologue: prol, PresharedKey: n.cfg.PSK[:], PresharedKeyPlacement: 0,
	}
	if initiator {
		c.PeerStatic = peerStatic
	} else {
		c.StaticKeypair = n.static
	}
	return c
}

// handshakePacket wraps a Noise message in a routing header and a handshake header.
func handshakePacket(src, dest uint64, msg []byte) []byte {
	b := make([]byte, wire.RoutingHeaderSize+wire.HeaderSize+len(msg))
	rh := wire.RoutingHeader{TTL: wire.HandshakeRouteTTL, SrcID: uint32(src), DestID: dest}
	rh.MarshalTo(b)
	h := wire.Header{Flags: wire.FlagHandshake, PayloadLen: uint16(len(msg))}
	h.MarshalTo(b[wire.RoutingHeaderSize:])
	copy(b[wire.RoutingHeaderSize+wire.HeaderSize:], msg)
	return b
}

// initiation is an outstanding msg1 awaiting msg2; keyed in Node.initiates by
// the responder's routing id (low 32 bits of its node id).
type initiation struct {
	peerID     uint64
	peerStatic [32]byte
	addr       net.Addr
	mu         sync.Mutex // guards hs
	hs         *noise.HandshakeState
	done       chan *session // receives the new session once msg2 verifies
}

// Connect performs a handshake with the node peerNodeID at addr whose Noise
// static public key is peerStaticPub, then the identity exchange. It retries
// with exponential backoff (RetransmitInterval doubling to 2 s) until ctx ends
// or, when ctx has no deadline, ConnectTimeout passes. A wrong PSK or static
// key makes the responder drop msg1, so it surfaces as ErrHandshakeTimeout
// (which matches ErrHandshakeFailed); a peer proving another identity fails
// with ErrHandshakeFailed at once. A new session replaces any older one with
// that peer.
func (n *Node) Connect(ctx context.Context, addr string, peerStaticPub [32]byte, peerNodeID uint64) error {
	if n.closed.Load() {
		return ErrClosed
	}
	if peerNodeID == n.nodeID {
		return fmt.Errorf("%w: cannot connect to self", ErrInvalidConfig)
	}
	raddr, err := resolve(n.tr, addr)
	if err != nil {
		return fmt.Errorf("%w: address %q: %w", ErrInvalidConfig, addr, err)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, n.cfg.ConnectTimeout)
		defer cancel()
	}
	backoff := n.cfg.RetransmitInterval
	timer := time.NewTimer(backoff)
	defer timer.Stop()
	var s *session
	var in *initiation
	defer func() {
		n.mu.Lock()
		if in != nil && n.initiates[uint32(peerNodeID)] == in {
			delete(n.initiates, uint32(peerNodeID))
		}
		if s != nil && !s.established.Load() {
			delete(n.sessions, s.id)
		}
		n.mu.Unlock()
	}()
	for {
		if s == nil {
			var pkt []byte
			if in, pkt, err = n.initiate(peerNodeID, peerStaticPub, raddr); err != nil {
				return err
			}
			_ = n.write(pkt, raddr)
		} else if err := s.sendUnreliable(SubHello, 0, n.helloMsg(s)); err != nil {
			return fmt.Errorf("%w: %w", ErrHandshakeFailed, err)
		}
		timer.Reset(backoff)
		var doneCh chan *session
		var estab chan error
		if s == nil {
			doneCh = in.done
		} else {
			estab = s.helloDone
		}
		select {
		case s = <-doneCh:
			continue // send the hello right away
		case err := <-estab:
			if err != nil {
				return fmt.Errorf("%w: %w", ErrHandshakeFailed, err)
			}
			return nil
		case <-timer.C:
			if backoff *= 2; backoff > maxBackoff {
				backoff = maxBackoff
			}
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return fmt.Errorf("%w: peer %016x at %s", ErrHandshakeTimeout, peerNodeID, addr)
			}
			return fmt.Errorf("%w: %w", ErrHandshakeFailed, ctx.Err())
		case <-n.ctx.Done():
			return ErrClosed
		}
	}
}

// initiate builds msg1 and registers the initiation (replacing an older one).
func (n *Node) initiate(peerID uint64, peerStatic [32]byte, addr net.Addr) (*initiation, []byte, error) {
	hs, err := noise.NewHandshakeState(n.noiseConfig(true, prologue(n.nodeID, peerID), peerStatic[:]))
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrHandshakeFailed, err)
	}
	var payload [8]byte
	binary.LittleEndian.PutUint64(payload[:], n.nodeID)
	msg, _, _, err := hs.WriteMessage(nil, payload[:])
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrHandshakeFailed, err)
	}
	in := &initiation{peerID: peerID, peerStatic: peerStatic, addr: addr, hs: hs, done: make(chan *session, 1)}
	n.mu.Lock()
	n.initiates[uint32(peerID)] = in
	n.mu.Unlock()
	return in, handshakePacket(n.nodeID, peerID, msg), nil
}

// handleRouted processes a routed handshake datagram (reader goroutine).
func (n *Node) handleRouted(b []byte, from net.Addr) {
	n.ctr.handshakesReceived.Add(1)
	rh, err := wire.ParseRoutingHeader(b)
	if err != nil {
		n.ctr.dropMalformed.Add(1)
		return
	}
	inner := b[wire.RoutingHeaderSize:]
	h, err := wire.ParseHeader(inner)
	if err != nil {
		n.ctr.dropMalformed.Add(1)
		return
	}
	if h.Flags != wire.FlagHandshake || h.SessionID != 0 || len(inner) != wire.HeaderSize+int(h.PayloadLen) || rh.DestID != n.nodeID {
		n.ctr.dropHandshake.Add(1)
		return
	}
	msg := inner[wire.HeaderSize:]
	n.mu.Lock()
	in := n.initiates[rh.SrcID]
	n.mu.Unlock()
	switch {
	case in != nil && len(msg) == msg2Len:
		n.onMsg2(in, msg, from)
	case len(msg) == msg1Len:
		n.onMsg1(rh, msg, from)
	default:
		n.ctr.dropHandshake.Add(1)
	}
}

// onMsg1 answers an admitted initiator and creates a pending responder session.
func (n *Node) onMsg1(rh wire.RoutingHeader, msg []byte, from net.Addr) {
	hs, err := noise.NewHandshakeState(n.noiseConfig(false, prologue(uint64(rh.SrcID), n.nodeID), nil))
	if err != nil {
		n.ctr.dropHandshake.Add(1)
		return
	}
	payload, _, _, err := hs.ReadMessage(nil, msg)
	if err != nil || len(payload) != 8 {
		n.ctr.dropHandshake.Add(1) // wrong PSK or wrong static key
		return
	}
	peerID := binary.LittleEndian.Uint64(payload)
	n.mu.Lock()
	ok := n.admitted[peerID]
	n.mu.Unlock()
	if uint32(peerID) != rh.SrcID || !ok || peerID == n.nodeID {
		n.ctr.dropHandshake.Add(1)
		n.logf(LogDebug, "mesh: unadmitted handshake", map[string]any{"peer": peerID})
		return
	}
	msg2, _, _, err := hs.WriteMessage(nil, nil)
	if err != nil {
		n.ctr.dropHandshake.Add(1)
		return
	}
	var hash [32]byte
	copy(hash[:], hs.ChannelBinding())
	sid, initTx, initRx := SessionKeys(hash[:])
	s, err := newSession(n, sid, peerID, false, initRx, initTx, hash, from)
	if err != nil {
		n.ctr.dropHandshake.Add(1)
		return
	}
	n.mu.Lock()
	if n.sessions[sid] != nil {
		n.mu.Unlock()
		n.ctr.dropHandshake.Add(1)
		return
	}
	p := n.peerLocked(peerID)
	if old := p.pending; old != nil {
		delete(n.sessions, old.id)
		old.shutdown()
	}
	p.pending = s
	n.sessions[sid] = s
	n.mu.Unlock()
	_ = n.write(handshakePacket(n.nodeID, peerID, msg2), from)
	s.helloAck = n.helloAckMsg(s)
}

// onMsg2 completes an initiation; Connect continues with the hello.
func (n *Node) onMsg2(in *initiation, msg []byte, from net.Addr) {
	in.mu.Lock()
	hs := in.hs
	in.hs = nil // a handshake state is good for one msg2, valid or not
	in.mu.Unlock()
	if hs == nil {
		n.ctr.dropHandshake.Add(1)
		return
	}
	if _, _, _, err := hs.ReadMessage(nil, msg); err != nil {
		n.ctr.dropHandshake.Add(1)
		return
	}
	var hash [32]byte
	copy(hash[:], hs.ChannelBinding())
	sid, initTx, initRx := SessionKeys(hash[:])
	s, err := newSession(n, sid, in.peerID, true, initTx, initRx, hash, from)
	if err != nil {
		n.ctr.dropHandshake.Add(1)
		return
	}
	s.peerStatic = in.peerStatic
	n.mu.Lock()
	if n.sessions[sid] != nil || n.initiates[uint32(in.peerID)] != in {
		n.mu.Unlock()
		n.ctr.dropHandshake.Add(1)
		return
	}
	delete(n.initiates, uint32(in.peerID))
	n.sessions[sid] = s
	n.mu.Unlock()
	in.done <- s
}

func (n *Node) peerLocked(id uint64) *peer {
	p := n.peers[id]
	if p == nil {
		p = &peer{id: id}
		n.peers[id] = p
	}
	return p
}

func helloSigMsg(role byte, static []byte) []byte {
	m := make([]byte, 0, len(helloSigLabel)+1+32)
	m = append(m, helloSigLabel...)
	m = append(m, role)
	return append(m, static...)
}

// certKey identifies one verified certificate in certCache.
type certKey struct {
	role   byte
	ent    identity.EntityID
	static [32]byte
	sig    [64]byte
}

// certCacheMax bounds the verified-certificate cache; it is emptied when full.
const certCacheMax = 4096

// verifyCert checks sig as role's certificate of ent for static, consulting
// and filling the cache of certificates that verified. Only successes are
// cached, so a forged certificate is re-checked (and refused) every time.
func (n *Node) verifyCert(role byte, ent identity.EntityID, static, sig []byte) bool {
	k := certKey{role: role, ent: ent}
	copy(k.static[:], static)
	copy(k.sig[:], sig)
	n.dhMu.Lock()
	_, ok := n.certCache[k]
	n.dhMu.Unlock()
	if ok {
		return true
	}
	if !identity.VerifyStrict(ent, helloSigMsg(role, static), sig) {
		return false
	}
	n.dhMu.Lock()
	if len(n.certCache) >= certCacheMax {
		clear(n.certCache)
	}
	n.certCache[k] = struct{}{}
	n.dhMu.Unlock()
	return true
}

// staticProof is the initiator's proof of its static key for hash.
func (n *Node) staticProof(peerStatic []byte, hash [32]byte) ([32]byte, error) {
	dh, err := n.staticDH(peerStatic)
	if err != nil {
		return [32]byte{}, err
	}
	return identity.Mac(dh[:], append(append([]byte(nil), helloProofTag...), hash[:]...)), nil
}

// dhCacheMax bounds the static-static DH cache; it is emptied when full.
const dhCacheMax = 4096

// staticDH is X25519(our static, peer static), cached per peer key: it does
// not depend on the session, so reconnects to a known peer skip it.
func (n *Node) staticDH(peerStatic []byte) ([32]byte, error) {
	var k, out [32]byte
	copy(k[:], peerStatic)
	n.dhMu.Lock()
	v, ok := n.dhCache[k]
	n.dhMu.Unlock()
	if ok {
		return v, nil
	}
	dh, err := noise.DH25519.DH(n.static.Private, peerStatic)
	if err != nil {
		return out, err
	}
	copy(out[:], dh)
	n.dhMu.Lock()
	if len(n.dhCache) >= dhCacheMax {
		clear(n.dhCache)
	}
	n.dhCache[k] = out
	n.dhMu.Unlock()
	return out, nil
}

// helloMsg builds the initiator's Hello for s.
func (n *Node) helloMsg(s *session) []byte {
	ent := n.id.EntityID()
	proof, _ := n.staticProof(s.peerStatic[:], s.hash)
	b := make([]byte, 0, helloLen)
	b = append(b, 0)
	b = append(b, ent[:]...)
	b = append(b, n.static.Public...)
	b = append(b, proof[:]...)
	return append(b, n.certs[0][:]...)
}

func (n *Node) helloAckMsg(*session) []byte {
	ent := n.id.EntityID()
	b := make([]byte, 0, helloAckLen)
	b = append(b, 1)
	b = append(b, ent[:]...)
	return append(b, n.certs[1][:]...)
}

// onHello handles SubHello events on the reader goroutine.
func (n *Node) onHello(s *session, events [][]byte) {
	for _, ev := range events {
		switch {
		case !s.initiator && len(ev) == helloLen && ev[0] == 0:
			if !s.established.Load() {
				if err := n.verifyHello(s, ev); err != nil {
					n.ctr.dropHandshake.Add(1)
					n.logf(LogWarn, "mesh: bad hello", map[string]any{"peer": s.peerID, "err": err.Error()})
					continue
				}
				n.promote(s)
			}
			if s.helloAck == nil {
				s.helloAck = n.helloAckMsg(s)
			}
			_ = s.sendUnreliable(SubHello, 0, s.helloAck)
		case s.initiator && len(ev) == helloAckLen && ev[0] == 1:
			if s.established.Load() {
				continue
			}
			var ent identity.EntityID
			copy(ent[:], ev[1:33])
			err := error(nil)
			if identity.NodeIDOf(ent) != s.peerID || !n.verifyCert(1, ent, s.peerStatic[:], ev[33:]) {
				err = errHelloVerify
				n.ctr.dropHandshake.Add(1)
			} else {
				s.peerEntity = ent
				n.promote(s)
			}
			select {
			case s.helloDone <- err:
			default:
			}
		default:
			n.ctr.dropMalformed.Add(1)
		}
	}
}

func (n *Node) verifyHello(s *session, ev []byte) error {
	var ent identity.EntityID
	copy(ent[:], ev[1:33])
	static := ev[33:65]
	if identity.NodeIDOf(ent) != s.peerID {
		return fmt.Errorf("%w: entity is not node %016x", errHelloVerify, s.peerID)
	}
	proof, err := n.staticProof(static, s.hash)
	if err != nil || subtle.ConstantTimeCompare(proof[:], ev[65:97]) != 1 {
		return fmt.Errorf("%w: static key proof", errHelloVerify)
	}
	if !n.verifyCert(0, ent, static, ev[97:]) {
		return fmt.Errorf("%w: signature", errHelloVerify)
	}
	s.peerEntity = ent
	copy(s.peerStatic[:], static)
	return nil
}

// promote makes s the peer's established session; an older session is retired
// (its unacked reliable messages abandoned) but still decodes stragglers until
// the timer reaps it.
func (n *Node) promote(s *session) {
	n.mu.Lock()
	p := n.peerLocked(s.peerID)
	if p.pending == s {
		p.pending = nil
	}
	if old := p.sess; old != nil && old != s {
		old.shutdown()
	}
	p.sess = s
	p.state = PeerHealthy
	s.established.Store(true)
	cb := n.onState
	n.mu.Unlock()
	n.ctr.handshakesCompleted.Add(1)
	n.logf(LogInfo, "mesh: session established", map[string]any{"peer": s.peerID, "initiator": s.initiator})
	if cb != nil {
		id := s.peerID
		n.disp.push(task{fn: func() { cb(id, PeerHealthy) }})
	}
}
