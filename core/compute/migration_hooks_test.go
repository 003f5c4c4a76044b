package compute

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/netmesh/libnetmesh/core/causal"
)

// The slab queue keeps order, copies payloads (the caller's bytes are
// borrowed) across segment and chunk boundaries, keeps empty payloads nil,
// and puts UndoCutover's prefix in front.
func TestMigQueueOrderAndCopies(t *testing.T) {
	h, err := NewHost(&counterDaemon{}, newKeypair(t), DaemonConfig{})
	require.NoError(t, err)
	require.NoError(t, h.BeginMigrationBuffering(BufferRules{}))
	const n = 3*qsegLen + 7
	buf := make([]byte, 0, 9000)
	want := make([][]byte, n)
	for i := range n {
		size := i % 97
		if i%1000 == 999 {
			size = slabChunk + 1 // its own chunk
		}
		buf = buf[:0]
		for j := range size {
			buf = append(buf, byte(i+j))
		}
		want[i] = bytes.Clone(buf)
		_, err := h.Deliver(inputEvent(1, uint64(i+1), buf))
		require.NoError(t, err)
		clear(buf) // the queue must not alias the caller's bytes
	}
	assert.Equal(t, n, h.Buffered())
	first := h.TakeQueued()
	require.Len(t, first, n)
	for i, ev := range first {
		require.Equal(t, uint64(i+1), ev.Link.Sequence)
		if len(want[i]) == 0 {
			require.Nil(t, ev.Payload)
		} else {
			require.Equal(t, want[i], ev.Payload, "event %d", i)
			require.Equal(t, len(ev.Payload), cap(ev.Payload), "payload capped: appending cannot clobber a neighbour")
		}
	}
	assert.Equal(t, PhaseBuffering, h.Phase(), "TakeQueued keeps buffering")

	_, err = h.Deliver(inputEvent(1, uint64(n+2), []byte("late")))
	require.NoError(t, err)
	_, err = h.Cutover(9)
	require.NoError(t, err)
	_, err = h.Deliver(inputEvent(1, uint64(n+3), nil))
	require.ErrorIs(t, err, ErrDaemonMoved)
	require.NoError(t, h.UndoCutover([]causal.Event{inputEvent(1, uint64(n+1), nil)}))
	_, err = h.Deliver(inputEvent(1, uint64(n+3), []byte("after")))
	require.NoError(t, err)
	rest := h.TakeQueued()
	require.Len(t, rest, 2)
	assert.Equal(t, uint64(n+1), rest[0].Link.Sequence, "undo prefix first")
	assert.Equal(t, "after", string(rest[1].Payload))
}

// Admission rules: Refuse turns deliveries away (wrong-phase, nothing
// queued); MaxPayload turns oversized payloads away (buffer-full) and takes
// the rest; leaving Buffering resets the rules.
func TestMigQueueRules(t *testing.T) {
	h, err := NewHost(&counterDaemon{}, newKeypair(t), DaemonConfig{})
	require.NoError(t, err)
	require.NoError(t, h.BeginMigrationBuffering(BufferRules{Refuse: true}))
	_, err = h.Deliver(inputEvent(1, 1, nil))
	var me *MigrationError
	require.ErrorAs(t, err, &me)
	assert.Equal(t, MigrationWrongPhase, me.Detail)
	assert.Equal(t, 0, h.Buffered())

	h.SetBufferRules(BufferRules{MaxPayload: 10})
	_, err = h.Deliver(inputEvent(1, 1, make([]byte, 11)))
	require.ErrorAs(t, err, &me)
	assert.Equal(t, MigrationBufferFull, me.Detail)
	assert.Contains(t, err.Error(), "11 bytes")
	_, err = h.Deliver(inputEvent(1, 1, make([]byte, 10)))
	require.NoError(t, err)
	assert.Equal(t, 1, h.Buffered())

	res, err := h.Resume(nil)
	require.NoError(t, err)
	require.Len(t, res, 1)
	_, err = h.Deliver(inputEvent(1, 2, make([]byte, 11)))
	require.NoError(t, err, "Normal again: no migration limit")
	require.NoError(t, h.BeginBuffering())
	_, err = h.Deliver(inputEvent(1, 3, make([]byte, 11)))
	require.NoError(t, err, "plain BeginBuffering has no rules")
}

// Events handed back by a rolled-back target are queued behind a Buffering
// host's queue (rules ignored) or processed by a Normal one.
func TestAcceptHandedBack(t *testing.T) {
	net := NewFakeNetwork()
	defer net.Close()
	rt := NewRuntime(net.NewNode(), WithWorkers(1))
	require.NoError(t, rt.RegisterFactory("counter", func() (Daemon, error) { return &counterDaemon{}, nil }))
	require.NoError(t, rt.Start(bg))
	defer func() { _ = rt.Shutdown(bg) }()
	var sunk int
	rt.SetOutputSink(func(uint64, []causal.Event) { sunk++ })
	dh, err := rt.Spawn(bg, "counter", newKeypair(t), DaemonConfig{})
	require.NoError(t, err)
	o := dh.OriginHash()
	h, _ := rt.LookupHost(o)
	require.NoError(t, h.BeginMigrationBuffering(BufferRules{Refuse: true}))
	require.NoError(t, rt.AcceptHandedBack(o, []causal.Event{inputEvent(1, 1, nil)}))
	assert.Equal(t, 1, h.Buffered())
	require.NoError(t, rt.DrainHost(h, nil))
	require.NoError(t, rt.AcceptHandedBack(o, []causal.Event{inputEvent(1, 2, nil)}))
	assert.Equal(t, uint64(2), h.Stats().EventsProcessed)
	assert.Equal(t, 2, sunk)
	assert.ErrorIs(t, rt.AcceptHandedBack(o+1, nil), ErrDaemonNotFound)
}

// The migration queue is bounded by size as well as by count: events are
// refused with buffer-full once the queue would exceed MaxBufferedBytes
// (wire size), long before MaxBufferedEvents maximal payloads (~7 GB)
// could pile up; after a take the queue accepts again. Nothing accepted is
// lost.
func TestMigQueueByteBound(t *testing.T) {
	h, err := NewHost(&counterDaemon{}, newKeypair(t), DaemonConfig{})
	require.NoError(t, err)
	require.NoError(t, h.BeginMigrationBuffering(BufferRules{MaxPayload: 7000}))
	payload := make([]byte, 7000)
	per := queuedEventOverhead + len(payload)
	want := MaxBufferedBytes / per
	var refused error
	accepted := 0
	for i := range want + 10 { // without a byte bound: ~7 GB at the count cap
		if _, err := h.Deliver(inputEvent(1, uint64(i+1), payload)); err != nil {
			refused = err
			break
		}
		accepted++
	}
	require.Error(t, refused)
	var me *MigrationError
	require.ErrorAs(t, refused, &me)
	assert.Equal(t, MigrationBufferFull, me.Detail)
	assert.Equal(t, want, accepted, "filled to the byte bound exactly")
	// Small events still fit in what is left; then a take empties it.
	_, err = h.Deliver(inputEvent(1, uint64(accepted+1), nil))
	assert.Equal(t, MaxBufferedBytes-want*per >= queuedEventOverhead, err == nil)
	got := h.TakeQueued()
	assert.GreaterOrEqual(t, len(got), want)
	_, err = h.Deliver(inputEvent(1, 1, payload))
	require.NoError(t, err, "accepts again after the take")
}
