package compute

import (
	"runtime"
	"testing"
	"time"

	"github.com/netmesh/libnetmesh/core/causal"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// lendingDaemon echoes ev twice (payload, then payload reversed) from one
// buffer it overwrites on every lent call, as a C daemon's per-thread
// buffer is; Process hands over fresh copies.
type lendingDaemon struct {
	echoDaemon
	buf   []byte
	lent  int
	owned int
}

func (d *lendingDaemon) outputs(ev causal.Event, into []byte) [][]byte {
	n := len(ev.Payload)
	into = append(into[:0], ev.Payload...)
	for i := n - 1; i >= 0; i-- {
		into = append(into, ev.Payload[i])
	}
	return [][]byte{into[:n:n], into[n:]}
}

func (d *lendingDaemon) Process(ev causal.Event) ([][]byte, error) {
	d.owned++
	return d.outputs(ev, nil), nil
}

func (d *lendingDaemon) ProcessLent(link causal.Link, payload []byte, receivedAt uint64) ([][]byte, error) {
	d.lent++
	outs := d.outputs(causal.Event{Link: link, Payload: payload, ReceivedAt: receivedAt}, d.buf)
	d.buf = outs[0][:cap(outs[0])]
	return outs, nil
}

// DeliverVisit hands the visitor the same outputs (links, parent hashes,
// payloads) Deliver returns, lent by a Lender daemon, and copies nothing.
func TestDeliverVisitMatchesDeliver(t *testing.T) {
	rt, _, _ := readyRuntime(t)
	kp := newKeypair(t)
	lend := &lendingDaemon{}
	h, err := rt.SpawnWithDaemon(bg, kp, DaemonConfig{}, lend, func() (Daemon, error) { return &lendingDaemon{}, nil })
	require.NoError(t, err)
	ref, err := NewHost(&lendingDaemon{}, kp, DaemonConfig{})
	require.NoError(t, err)

	// Half of the events through DeliverVisitPinned, from a goroutine locked
	// to its thread as that requires.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	for i := range 50 {
		ev := inputEvent(7, uint64(i+1), []byte{byte(i), byte(i >> 8), 3, 4, 5}[:i%6])
		want, err := ref.Deliver(ev)
		require.NoError(t, err)
		calls := 0
		deliver := rt.DeliverVisit
		if i%2 == 1 {
			deliver = rt.DeliverVisitPinned
		}
		require.NoError(t, deliver(h.OriginHash(), &ev, func(outs []causal.Event) error {
			calls++
			require.Len(t, outs, len(want))
			for j := range outs {
				assert.Equal(t, want[j].Link, outs[j].Link, "event %d output %d", i, j)
				assert.Equal(t, string(want[j].Payload), string(outs[j].Payload))
			}
			return nil
		}))
		assert.Equal(t, 1, calls)
	}
	assert.Equal(t, 50, lend.lent)
	assert.Zero(t, lend.owned)

	// Deliver on the same daemon still gets owned copies, chained on.
	next := inputEvent(7, 51, []byte("ab"))
	want, err := ref.Deliver(next)
	require.NoError(t, err)
	got, err := rt.Deliver(h.OriginHash(), next)
	require.NoError(t, err)
	assert.Equal(t, want[1].Link, got[1].Link)
	assert.Equal(t, "ba", string(got[1].Payload))
	assert.Equal(t, 1, lend.owned)
	st, err := h.Stats()
	require.NoError(t, err)
	assert.Equal(t, Stats{EventsProcessed: 51, EventsEmitted: 102}, st)
}

// A visitor's error comes back as is; the event still counts as processed.
// A queued event (buffering host) never reaches the visitor.
func TestDeliverVisitErrorAndQueue(t *testing.T) {
	rt, _, _ := readyRuntime(t)
	h, err := rt.Spawn(bg, "echo", newKeypair(t), DaemonConfig{})
	require.NoError(t, err)
	o := h.OriginHash()
	fired := 0
	defer rt.OnDelivered(o, func(causal.Event) { fired++ })()
	boom := assert.AnError
	assert.ErrorIs(t, rt.DeliverVisit(o, new(inputEvent(1, 1, []byte("x"))), func([]causal.Event) error { return boom }), boom)
	assert.Equal(t, 1, fired)

	host, ok := rt.LookupHost(o)
	require.True(t, ok)
	require.NoError(t, host.BeginBuffering())
	require.NoError(t, rt.DeliverVisit(o, new(inputEvent(1, 2, []byte("y"))), func([]causal.Event) error {
		t.Fatal("visitor called for a queued event")
		return nil
	}))
	assert.Equal(t, 1, host.Buffered())
	assert.Equal(t, 1, fired)
	require.NoError(t, rt.Stop(bg, o))
	assert.ErrorIs(t, rt.DeliverVisit(o, new(inputEvent(1, 3, nil)), func([]causal.Event) error { return nil }), ErrDaemonNotFound)
}

// Through a runtime, ReceivedAt comes from the coarse clock: unix ns close to
// the wall clock and never decreasing; the ticker goroutine is gone after
// Shutdown (setup's goleak check) and while idle.
func TestRuntimeReceivedAtCoarseClock(t *testing.T) {
	rt, _, _ := readyRuntime(t)
	h, err := rt.Spawn(bg, "echo", newKeypair(t), DaemonConfig{})
	require.NoError(t, err)
	var prev uint64
	for i := range 2000 {
		before := time.Now().UnixNano()
		outs, err := rt.Deliver(h.OriginHash(), inputEvent(1, uint64(i+1), []byte("x")))
		require.NoError(t, err)
		got := int64(outs[0].ReceivedAt)
		assert.InDelta(t, float64(before), float64(got), float64(clockRefresh))
		assert.GreaterOrEqual(t, outs[0].ReceivedAt, prev)
		prev = outs[0].ReceivedAt
	}
	// Idle: the ticker stops by itself and the next read restarts it.
	require.Eventually(t, func() bool { return rt.clock.now.Load() == 0 }, 10*time.Second, time.Millisecond)
	outs, err := rt.Deliver(h.OriginHash(), inputEvent(1, 5000, []byte("x")))
	require.NoError(t, err)
	assert.GreaterOrEqual(t, outs[0].ReceivedAt, prev)
	assert.NotZero(t, rt.clock.now.Load())
}

// panickyLender panics in ProcessLent while panicNext is set.
type panickyLender struct {
	lendingDaemon
	panicNext bool
}

func (d *panickyLender) ProcessLent(link causal.Link, payload []byte, receivedAt uint64) ([][]byte, error) {
	if d.panicNext {
		d.panicNext = false
		panic("lender boom")
	}
	return d.lendingDaemon.ProcessLent(link, payload, receivedAt)
}

// A Lender's panic in DeliverVisit is its ProcessFailed error (counted, the
// visitor not called, observers not fired, the host usable at once); a
// visitor's panic is not swallowed, and the host is unlocked after it.
func TestDeliverVisitPanics(t *testing.T) {
	rt, _, _ := readyRuntime(t)
	d := &panickyLender{panicNext: true}
	h, err := rt.SpawnWithDaemon(bg, newKeypair(t), DaemonConfig{}, d, func() (Daemon, error) { return &panickyLender{}, nil })
	require.NoError(t, err)
	o := h.OriginHash()
	fired := 0
	defer rt.OnDelivered(o, func(causal.Event) { fired++ })()

	err = rt.DeliverVisit(o, new(inputEvent(1, 1, []byte("ab"))), func([]causal.Event) error {
		t.Fatal("visitor called after a panic")
		return nil
	})
	require.ErrorIs(t, err, ErrProcessFailed)
	assert.Contains(t, err.Error(), "lender boom")
	assert.Equal(t, 0, fired)
	st, err := h.Stats()
	require.NoError(t, err)
	assert.Equal(t, Stats{Errors: 1}, st)

	got := 0
	require.NoError(t, rt.DeliverVisit(o, new(inputEvent(1, 2, []byte("ab"))), func(outs []causal.Event) error {
		got = len(outs)
		return nil
	}))
	assert.Equal(t, 2, got)
	assert.Equal(t, 1, fired)

	// The same through DeliverVisitPinned (the caller's thread lock is left alone).
	d.panicNext = true
	func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		err = rt.DeliverVisitPinned(o, new(inputEvent(1, 2, []byte("ab"))), func([]causal.Event) error { return nil })
	}()
	require.ErrorIs(t, err, ErrProcessFailed)
	st, err = h.Stats()
	require.NoError(t, err)
	assert.Equal(t, uint64(2), st.Errors)

	assert.PanicsWithValue(t, "visitor boom", func() {
		_ = rt.DeliverVisit(o, new(inputEvent(1, 3, []byte("ab"))), func([]causal.Event) error { panic("visitor boom") })
	})
	_, err = rt.Deliver(o, inputEvent(1, 4, []byte("ab"))) // not left locked
	require.NoError(t, err)
	st, err = h.Stats()
	require.NoError(t, err)
	assert.Equal(t, uint64(3), st.EventsProcessed)
	assert.Equal(t, uint64(2), st.Errors)
}
