package mesh

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/netmesh/libnetmesh/core/mesh/memnet"
	"github.com/netmesh/libnetmesh/core/mesh/wire"
)

func totalCount(s NodeStats) uint64 {
	return s.PacketsReceived + s.HandshakesReceived + s.DroppedMalformed + s.DroppedBadMagic +
		s.DroppedAuth + s.DroppedReplay + s.DroppedUnknownSession + s.DroppedUnestablished
}

// FuzzHandlePacket feeds arbitrary datagrams into a live node's receive path:
// no panic, and every datagram is accounted for by a counter.
func FuzzHandlePacket(f *testing.F) {
	net := memnet.New(20)
	a := memNode(f, net, "a", fastCfg())
	b := memNode(f, net, "b", fastCfg())
	link(f, a, b)
	s := a.sessionFor(b.NodeID())
	require.NotNil(f, s)

	f.Add(sealFrom(s, 1<<20, []byte("x"))) // valid but outside the replay window
	f.Add(sealFrom(s, s.txCounter.Add(1)-1, []byte("valid")))
	hb := wire.Header{Flags: wire.FlagHeartbeat, SessionID: s.id}
	f.Add(s.tx.Seal(nil, &hb, s.txCounter.Add(1)-1, nil))
	f.Add(handshakePacket(a.NodeID(), b.NodeID(), make([]byte, msg1Len)))
	f.Add(handshakePacket(a.NodeID(), b.NodeID(), make([]byte, msg2Len)))
	hh := wire.Header{Flags: wire.FlagHandshake}
	direct := hh.Bytes()
	f.Add(direct[:])
	f.Add([]byte{})
	f.Add([]byte{0x45, 0x4E})
	f.Add([]byte{0x52, 0x54, 16})
	f.Add(make([]byte, 200))

	scratch := make([]byte, 0, 64<<10)
	f.Fuzz(func(t *testing.T, pkt []byte) {
		before := totalCount(b.Stats())
		b.handlePacket(pkt, memnet.Addr("fuzz"), scratch)
		after := totalCount(b.Stats())
		if after == before {
			t.Fatalf("datagram of %d bytes not counted", len(pkt))
		}
	})
}

// FuzzHello feeds arbitrary hello events to a pending responder session and an
// initiator session; only a genuine hello may establish a session.
func FuzzHello(f *testing.F) {
	net := memnet.New(21)
	a := memNode(f, net, "a", fastCfg())
	b := memNode(f, net, "b", fastCfg())
	link(f, a, b)
	s := b.sessionFor(a.NodeID())
	require.NotNil(f, s)
	f.Add(a.helloMsg(a.sessionFor(b.NodeID())))
	f.Add(b.helloAckMsg(s))
	f.Add(make([]byte, helloLen))
	f.Add(make([]byte, helloAckLen))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, ev []byte) {
		pending, err := newSession(b, 1, a.NodeID(), false, [32]byte{}, [32]byte{}, [32]byte{9}, memnet.Addr("a"))
		require.NoError(t, err)
		b.onHello(pending, [][]byte{ev})
		if pending.established.Load() {
			t.Fatal("forged hello established a session")
		}
		init, err := newSession(b, 2, a.NodeID(), true, [32]byte{}, [32]byte{}, [32]byte{9}, memnet.Addr("a"))
		require.NoError(t, err)
		b.onHello(init, [][]byte{ev})
		if init.established.Load() {
			t.Fatal("forged hello ack established a session")
		}
	})
}

// FuzzChannelEvent checks the channel-message framing decoder and that an
// encoded message round-trips.
func FuzzChannelEvent(f *testing.F) {
	n := newNode(f, fastCfg())
	n.subs[subKey{1, "news"}] = true
	f.Add("news", []byte("payload"), []byte{4, 'n', 'e', 'w', 's', 1})
	f.Add("a/b", []byte{}, []byte{0})
	f.Add("x", []byte("y"), []byte{200, 'x'})
	f.Fuzz(func(t *testing.T, name string, payload, raw []byte) {
		got := make(chan string, 1)
		n.onChannel = func(_ uint64, c string, p []byte) { got <- c + "|" + string(p) }
		n.onChannelEvent(1, 0, raw)
		n.onChannelEvent(1, wire.ChannelHint(string(raw)), raw)
		select {
		case <-got:
		default:
		}
		if name != "news" || len(payload) > 1000 {
			return
		}
		ev := append(append([]byte{byte(len(name))}, name...), payload...)
		if !n.onChannelEvent(1, wire.ChannelHint(name), ev) {
			t.Fatal("valid channel event rejected")
		}
		if m := <-got; m != name+"|"+string(payload) {
			t.Fatalf("round trip: %q", m)
		}
	})
}
