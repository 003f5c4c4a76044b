package mesh

import (
	"context"
	"encoding/binary"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/netmesh/libnetmesh/core/mesh/memnet"
	"github.com/netmesh/libnetmesh/core/mesh/wire"
)

// sealFrom builds a valid packet a would send to its peer on s.
func sealFrom(s *session, counter uint64, payload []byte) []byte {
	h := wire.Header{Subprotocol: 0x1234, StreamID: 0x1234, SessionID: s.id, EventCount: 1}
	return s.tx.Seal(nil, &h, counter, wire.AppendEvents(nil, payload))
}

func TestDroppedPacketsCounted(t *testing.T) {
	net := memnet.New(4)
	a := memNode(t, net, "a", fastCfg())
	b := memNode(t, net, "b", fastCfg())
	link(t, a, b)
	evil, err := net.Listen("evil")
	require.NoError(t, err)
	defer evil.Close()
	c := newCollector()
	b.SetSubprotocolHandler(0x1234, c.handler)

	s := a.sessionFor(b.NodeID())
	require.NotNil(t, s)
	ctr := s.txCounter.Add(10) - 10
	good := sealFrom(s, ctr, []byte("once"))
	inject := func(p []byte) {
		_, err := evil.WriteTo(p, memnet.Addr("b"))
		require.NoError(t, err)
	}
	wait := func(f func(NodeStats) uint64, want uint64) {
		t.Helper()
		require.Eventually(t, func() bool { return f(b.Stats()) == want }, 3*time.Second, time.Millisecond)
	}
	base := b.Stats()

	inject(good)
	assert.Equal(t, []byte("once"), c.next(t))

	inject(good) // replay
	wait(func(s NodeStats) uint64 { return s.DroppedReplay }, base.DroppedReplay+1)

	tampered := append([]byte(nil), sealFrom(s, ctr+1, []byte("x"))...)
	tampered[len(tampered)-20] ^= 0x40 // ciphertext
	inject(tampered)
	hdr := append([]byte(nil), sealFrom(s, ctr+2, []byte("x"))...)
	hdr[40] ^= 1 // sequence, covered by the AAD
	inject(hdr)
	wait(func(s NodeStats) uint64 { return s.DroppedAuth }, base.DroppedAuth+2)

	trunc := sealFrom(s, ctr+3, []byte("x"))
	inject(trunc[:len(trunc)-1])
	inject(trunc[:40])
	wait(func(s NodeStats) uint64 { return s.DroppedMalformed }, base.DroppedMalformed+2)

	unknown := sealFrom(s, ctr+4, []byte("x"))
	binary.LittleEndian.PutUint64(unknown[24:], binary.LittleEndian.Uint64(unknown[24:])^0xFFFF)
	inject(unknown)
	wait(func(s NodeStats) uint64 { return s.DroppedUnknownSession }, base.DroppedUnknownSession+1)

	inject([]byte("GET / HTTP/1.1\r\n\r\n"))
	inject(make([]byte, 100))
	wait(func(s NodeStats) uint64 { return s.DroppedBadMagic }, base.DroppedBadMagic+2)

	inject(sealFrom(s, ctr+5000, []byte("far"))) // beyond the forward window
	wait(func(s NodeStats) uint64 { return s.DroppedReplay }, base.DroppedReplay+2)

	// The session still works afterwards.
	require.NoError(t, a.SendSubprotocol(context.Background(), b.NodeID(), 0x1234, []byte("after")))
	assert.Equal(t, []byte("after"), c.next(t))
	select {
	case p := <-c.ch:
		t.Fatalf("unexpected delivery %q", p)
	default:
	}
}

func TestHeartbeatsKeepSessionAndAreCounted(t *testing.T) {
	net := memnet.New(5)
	a := memNode(t, net, "a", fastCfg())
	b := memNode(t, net, "b", fastCfg())
	link(t, a, b)
	require.Eventually(t, func() bool {
		return a.Stats().HeartbeatsReceived >= 3 && b.Stats().HeartbeatsReceived >= 3
	}, 5*time.Second, 5*time.Millisecond)
	st, ok := a.PeerState(b.NodeID())
	require.True(t, ok)
	assert.Equal(t, PeerHealthy, st)
}

func TestMigrationWithoutHandler(t *testing.T) {
	net := memnet.New(6)
	a := memNode(t, net, "a", fastCfg())
	b := memNode(t, net, "b", fastCfg())
	link(t, a, b)
	c := newCollector()
	a.SetSubprotocolHandler(wire.SubMigration, c.handler)
	for _, kind := range []byte{wire.MigrationTakeSnapshot, wire.MigrationSnapshotReady} {
		msg := []byte{kind}
		msg = binary.LittleEndian.AppendUint64(msg, 0xABCDEF0123456789)
		msg = append(msg, make([]byte, 8)...)
		require.NoError(t, a.SendSubprotocol(context.Background(), b.NodeID(), wire.SubMigration, msg))
		assert.Equal(t, wire.MigrationComputeNotSupported(0xABCDEF0123456789), c.next(t))
	}
	// Once a handler is installed it gets the traffic instead; nil clears it.
	hb := newCollector()
	b.SetSubprotocolHandler(wire.SubMigration, hb.handler)
	require.NoError(t, a.SendSubprotocol(context.Background(), b.NodeID(), wire.SubMigration, []byte{0, 1, 2, 3, 4, 5, 6, 7, 8}))
	assert.Equal(t, []byte{0, 1, 2, 3, 4, 5, 6, 7, 8}, hb.next(t))
	b.SetSubprotocolHandler(wire.SubMigration, nil)
	require.NoError(t, a.SendSubprotocol(context.Background(), b.NodeID(), wire.SubMigration, []byte{0, 1, 0, 0, 0, 0, 0, 0, 0}))
	assert.Equal(t, wire.MigrationComputeNotSupported(1), c.next(t))
}

func TestPayloadTooLarge(t *testing.T) {
	net := memnet.New(7)
	a := memNode(t, net, "a", fastCfg())
	b := memNode(t, net, "b", fastCfg())
	link(t, a, b)
	c := newCollector()
	b.SetSubprotocolHandler(0x0500, c.handler)
	big := make([]byte, maxMessage)
	big[len(big)-1] = 7
	require.NoError(t, a.SendSubprotocol(context.Background(), b.NodeID(), 0x0500, big))
	assert.Equal(t, big, c.next(t))
	require.ErrorIs(t, a.SendSubprotocol(context.Background(), b.NodeID(), 0x0500, make([]byte, maxMessage+1)), ErrPayloadTooLarge)
}

func TestHandlerPanicRecovered(t *testing.T) {
	net := memnet.New(8)
	a := memNode(t, net, "a", fastCfg())
	b := memNode(t, net, "b", fastCfg())
	link(t, a, b)
	c := newCollector()
	b.SetSubprotocolHandler(0x0500, func(from uint64, p []byte) {
		if p[0] == 0xFF {
			panic("boom")
		}
		c.handler(from, p)
	})
	require.NoError(t, a.SendSubprotocol(context.Background(), b.NodeID(), 0x0500, []byte{0xFF}))
	require.NoError(t, a.SendSubprotocol(context.Background(), b.NodeID(), 0x0500, []byte{1}))
	assert.Equal(t, []byte{1}, c.next(t))
}
