package compute

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/netmesh/libnetmesh/core/causal"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// leaseDeliver is what a host language does: begin, run the daemon itself,
// commit (or abort when it fails).
func leaseDeliver(t *testing.T, rt *Runtime, origin uint64, ev causal.Event) ([]causal.Event, error) {
	t.Helper()
	l, err := rt.DeliverBegin(origin, ev, nil)
	if err != nil || l.Ticket == 0 {
		return nil, err
	}
	outs, perr := l.Daemon.Process(ev)
	if perr != nil {
		require.NoError(t, rt.DeliverAbort(origin, l.Ticket))
		return nil, perr
	}
	return rt.DeliverCommit(nil, origin, l.Ticket, outs)
}

// secondRuntime is a ready runtime on net beside readyRuntime's (one leak
// check for both, run after both are shut down).
func secondRuntime(t *testing.T, net *FakeNetwork) *Runtime {
	t.Helper()
	rt := NewRuntime(net.NewNode())
	t.Cleanup(func() { assert.NoError(t, rt.Shutdown(bg)) })
	require.NoError(t, rt.RegisterFactory("counter", func() (Daemon, error) { return &counterDaemon{}, nil }))
	require.NoError(t, rt.Start(bg))
	return rt
}

type closeCounter struct {
	counterDaemon
	closed atomic.Int32
}

func (c *closeCounter) Close() { c.closed.Add(1) }

func TestLeaseMatchesDeliver(t *testing.T) {
	rts, hs, o := twinRuntimes(t, "counter", DaemonConfig{AutoSnapshotInterval: 3})
	for i := uint64(1); i <= 10; i++ {
		ev := inputEvent(100+i%3, i, []byte{byte(i)}) // several origins: the horizon grows
		want, err := rts[0].Deliver(o, ev)
		require.NoError(t, err)
		got, err := leaseDeliver(t, rts[1], o, ev)
		require.NoError(t, err)
		assertSameOutputs(t, want, got)
	}
	assert.Equal(t, hs[0].ChainHead(), hs[1].ChainHead())
	assert.Equal(t, hs[0].Stats(), hs[1].Stats())
	require.NotNil(t, hs[1].LatestSnapshot())
	assert.Equal(t, hs[0].LatestSnapshot().State, hs[1].LatestSnapshot().State)
	assert.Equal(t, hs[0].LatestSnapshot().ChainLink, hs[1].LatestSnapshot().ChainLink)
	assert.Equal(t, hs[0].bloom, hs[1].bloom)
}

func TestLeaseNoOutputsAndManyOutputs(t *testing.T) {
	rt, _, _ := readyRuntime(t)
	h, err := rt.Spawn(bg, "echo", newKeypair(t), DaemonConfig{})
	require.NoError(t, err)
	o := h.OriginHash()
	l, err := rt.DeliverBegin(o, inputEvent(1, 1, []byte("x")), nil)
	require.NoError(t, err)
	outs, err := rt.DeliverCommit(nil, o, l.Ticket, nil)
	require.NoError(t, err)
	assert.Empty(t, outs)
	l, err = rt.DeliverBegin(o, inputEvent(1, 2, []byte("y")), nil)
	require.NoError(t, err)
	outs, err = rt.DeliverCommit(nil, o, l.Ticket, [][]byte{[]byte("a"), nil, []byte("ccc")})
	require.NoError(t, err)
	require.Len(t, outs, 3)
	for i, e := range outs {
		assert.Equal(t, uint64(i+1), e.Link.Sequence)
		assert.Equal(t, o, e.Link.Origin)
	}
	assert.NotEqual(t, outs[0].Link.Parent, outs[1].Link.Parent)
	s, err := h.Stats()
	require.NoError(t, err)
	assert.Equal(t, Stats{EventsProcessed: 2, EventsEmitted: 3}, s)
}

func TestLeaseBufferingQueuesWithTicketZero(t *testing.T) {
	rt, _, _ := readyRuntime(t)
	h, err := rt.Spawn(bg, "counter", newKeypair(t), DaemonConfig{})
	require.NoError(t, err)
	host, _ := rt.LookupHost(h.OriginHash())
	require.NoError(t, host.BeginBuffering())
	l, err := rt.DeliverBegin(h.OriginHash(), inputEvent(1, 1, []byte("q")), nil)
	require.NoError(t, err)
	assert.Zero(t, l.Ticket)
	assert.Nil(t, l.Daemon)
	assert.Equal(t, 1, host.Buffered(), "queued, and the host is not left locked")
	q, err := host.Cutover(0xbeef)
	require.NoError(t, err)
	require.Len(t, q, 1)
	assert.Equal(t, []byte("q"), q[0].Payload)

	_, err = rt.DeliverBegin(h.OriginHash(), inputEvent(1, 2, nil), nil)
	var moved *MovedError
	require.ErrorAs(t, err, &moved)
	assert.Equal(t, uint64(0xbeef), moved.Node)
	assert.Equal(t, 0, host.Buffered(), "not locked after a refusal")
}

func TestLeaseRefusals(t *testing.T) {
	rt, _, _ := setup(t)
	_, err := rt.DeliverBegin(1, inputEvent(1, 1, nil), nil)
	assert.ErrorIs(t, err, ErrNotReady)
	require.NoError(t, rt.RegisterFactory("counter", func() (Daemon, error) { return &counterDaemon{}, nil }))
	require.NoError(t, rt.Start(bg))
	_, err = rt.DeliverBegin(1, inputEvent(1, 1, nil), nil)
	assert.ErrorIs(t, err, ErrDaemonNotFound)

	h, err := rt.Spawn(bg, "counter", newKeypair(t), DaemonConfig{})
	require.NoError(t, err)
	errNo := errors.New("not this kind of daemon")
	_, err = rt.DeliverBegin(h.OriginHash(), inputEvent(1, 1, nil), func(Daemon) error { return errNo })
	assert.ErrorIs(t, err, errNo)
	outs, err := rt.Deliver(h.OriginHash(), inputEvent(1, 1, nil)) // not left locked
	require.NoError(t, err)
	assert.Equal(t, uint64(1), counterValue(t, outs[0]))
}

func TestLeaseHolderRefusesItsOwnThread(t *testing.T) {
	rt, _, _ := readyRuntime(t)
	h, err := rt.Spawn(bg, "counter", newKeypair(t), DaemonConfig{})
	require.NoError(t, err)
	o := h.OriginHash()
	assert.False(t, rt.LeaseHeldBy(o, 7))
	l, err := rt.DeliverBeginBy(o, inputEvent(1, 1, nil), 7, nil)
	require.NoError(t, err)
	assert.True(t, rt.LeaseHeldBy(o, 7))
	assert.False(t, rt.LeaseHeldBy(o, 8), "another thread does not hold it")
	assert.False(t, rt.LeaseHeldBy(o, 0), "0 names no thread")
	assert.False(t, rt.LeaseHeldBy(o+1, 7), "another daemon")
	_, err = rt.DeliverBeginBy(o, inputEvent(1, 2, nil), 7, nil)
	assert.ErrorIs(t, err, ErrInvalidArgument, "the holder's own begin is refused, not a wait")
	// another thread waits for the lease instead
	done := make(chan error, 1)
	go func() {
		l2, err := rt.DeliverBeginBy(o, inputEvent(1, 3, nil), 8, nil)
		if err == nil {
			assert.True(t, rt.LeaseHeldBy(o, 8))
			_, err = rt.DeliverCommit(nil, o, l2.Ticket, nil)
		}
		done <- err
	}()
	outs, err := l.Daemon.Process(inputEvent(1, 1, nil))
	require.NoError(t, err)
	_, err = rt.DeliverCommit(nil, o, l.Ticket, outs)
	require.NoError(t, err)
	require.NoError(t, <-done)
	assert.False(t, rt.LeaseHeldBy(o, 7))
	assert.False(t, rt.LeaseHeldBy(o, 8))
	// abort clears the holder too
	l, err = rt.DeliverBeginBy(o, inputEvent(1, 4, nil), 7, nil)
	require.NoError(t, err)
	require.NoError(t, rt.DeliverAbort(o, l.Ticket))
	assert.False(t, rt.LeaseHeldBy(o, 7))
	s, _ := h.Stats()
	assert.Equal(t, Stats{EventsProcessed: 2, EventsEmitted: 1, Errors: 1}, s)
}

func TestLeaseAbortCountsAndReleases(t *testing.T) {
	rt, _, _ := readyRuntime(t)
	h, err := rt.Spawn(bg, "counter", newKeypair(t), DaemonConfig{})
	require.NoError(t, err)
	o := h.OriginHash()
	fired := 0
	defer rt.OnDelivered(o, func(causal.Event) { fired++ })()
	l, err := rt.DeliverBegin(o, inputEvent(1, 1, nil), nil)
	require.NoError(t, err)
	require.NoError(t, rt.DeliverAbort(o, l.Ticket))
	s, _ := h.Stats()
	assert.Equal(t, Stats{Errors: 1}, s)
	assert.Equal(t, 0, fired)
	assert.ErrorIs(t, rt.DeliverAbort(o, l.Ticket), ErrInvalidArgument, "an aborted ticket is dead")
	_, err = rt.DeliverCommit(nil, o, l.Ticket, nil)
	assert.ErrorIs(t, err, ErrInvalidArgument)
	outs, err := rt.Deliver(o, inputEvent(1, 2, nil))
	require.NoError(t, err)
	assert.Equal(t, uint64(1), counterValue(t, outs[0]))
	assert.Equal(t, uint64(1), outs[0].Link.Sequence, "abort appended nothing")
	assert.Equal(t, 1, fired)
}

func TestLeaseBadTicketsChangeNothing(t *testing.T) {
	rt, _, net := readyRuntime(t)
	other := secondRuntime(t, net)
	a, err := rt.Spawn(bg, "counter", newKeypair(t), DaemonConfig{})
	require.NoError(t, err)
	b, err := rt.Spawn(bg, "counter", newKeypair(t), DaemonConfig{})
	require.NoError(t, err)
	oa, ob := a.OriginHash(), b.OriginHash()

	la, err := rt.DeliverBegin(oa, inputEvent(1, 1, nil), nil)
	require.NoError(t, err)
	bad := []struct {
		name   string
		rt     *Runtime
		origin uint64
		ticket uint64
	}{
		{"zero", rt, oa, 0},
		{"never issued", rt, oa, la.Ticket + 1000},
		{"other daemon", rt, ob, la.Ticket},
		{"other runtime", other, oa, la.Ticket},
	}
	for _, c := range bad {
		_, err := c.rt.DeliverCommit(nil, c.origin, c.ticket, [][]byte{[]byte("x")})
		assert.ErrorIs(t, err, ErrInvalidArgument, c.name)
		assert.Equal(t, KindInvalidArgument, Kind(err), c.name)
		assert.ErrorIs(t, c.rt.DeliverAbort(c.origin, c.ticket), ErrInvalidArgument, c.name)
	}
	// b is not affected by a's lease; a's lease is still live.
	_, err = rt.Deliver(ob, inputEvent(1, 1, nil))
	require.NoError(t, err)
	sa, _ := a.Stats()
	assert.Equal(t, Stats{}, sa)
	outs, err := rt.DeliverCommit(nil, oa, la.Ticket, [][]byte{[]byte("ok")})
	require.NoError(t, err)
	require.Len(t, outs, 1)
	assert.Equal(t, uint64(1), outs[0].Link.Sequence)
	// Stale: committed once, never twice.
	_, err = rt.DeliverCommit(nil, oa, la.Ticket, nil)
	assert.ErrorIs(t, err, ErrInvalidArgument)
	sa, _ = a.Stats()
	assert.Equal(t, Stats{EventsProcessed: 1, EventsEmitted: 1}, sa)
}

func TestLeaseConcurrentDeliverWaits(t *testing.T) {
	rt, _, _ := readyRuntime(t)
	h, err := rt.Spawn(bg, "counter", newKeypair(t), DaemonConfig{})
	require.NoError(t, err)
	o := h.OriginHash()
	l, err := rt.DeliverBegin(o, inputEvent(1, 1, nil), nil)
	require.NoError(t, err)
	started := make(chan struct{})
	var wg sync.WaitGroup
	var waited []causal.Event
	var werr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		close(started)
		waited, werr = rt.Deliver(o, inputEvent(1, 2, nil))
	}()
	<-started
	// The leased daemon runs here while the other delivery waits for the
	// host; the race detector checks they never overlap.
	outs, err := l.Daemon.Process(inputEvent(1, 1, nil))
	require.NoError(t, err)
	got, err := rt.DeliverCommit(nil, o, l.Ticket, outs)
	require.NoError(t, err)
	wg.Wait()
	require.NoError(t, werr)
	assert.Equal(t, uint64(1), counterValue(t, got[0]))
	assert.Equal(t, uint64(1), got[0].Link.Sequence)
	assert.Equal(t, uint64(2), counterValue(t, waited[0]))
	assert.Equal(t, uint64(2), waited[0].Link.Sequence)
}

func TestLeaseManyGoroutinesOneAndManyDaemons(t *testing.T) {
	rt, _, _ := readyRuntime(t)
	var origins []uint64
	for range 3 {
		h, err := rt.Spawn(bg, "counter", newKeypair(t), DaemonConfig{})
		require.NoError(t, err)
		origins = append(origins, h.OriginHash())
	}
	const per = 200
	var wg sync.WaitGroup
	for g := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			o := origins[g%3]
			for i := range per {
				var err error
				if i%2 == 0 {
					_, err = leaseDeliver(t, rt, o, inputEvent(uint64(g), uint64(i), nil))
				} else {
					_, err = rt.Deliver(o, inputEvent(uint64(g), uint64(i), nil))
				}
				assert.NoError(t, err)
			}
		}()
	}
	wg.Wait()
	for _, o := range origins {
		host, _ := rt.LookupHost(o)
		assert.Equal(t, Stats{EventsProcessed: 2 * per, EventsEmitted: 2 * per}, host.Stats())
		assert.Equal(t, uint64(2*per), host.ChainHead().Sequence)
	}
}

func TestLeaseStopWhileLeasedClosesAfterCommit(t *testing.T) {
	rt, _, _ := setup(t)
	d := &closeCounter{}
	require.NoError(t, rt.Start(bg))
	h, err := rt.SpawnWithDaemon(bg, newKeypair(t), DaemonConfig{}, d, func() (Daemon, error) { return &closeCounter{}, nil })
	require.NoError(t, err)
	o := h.OriginHash()
	l, err := rt.DeliverBegin(o, inputEvent(1, 1, nil), nil)
	require.NoError(t, err)
	require.NoError(t, rt.Stop(bg, o))
	assert.Zero(t, d.closed.Load(), "the Close hook never runs during a lease")
	outs, err := l.Daemon.Process(inputEvent(1, 1, nil))
	require.NoError(t, err)
	got, err := rt.DeliverCommit(nil, o, l.Ticket, outs)
	require.NoError(t, err, "a host stopped while leased is still committed by its ticket")
	assert.Len(t, got, 1)
	assert.Equal(t, int32(1), d.closed.Load())
	_, err = rt.DeliverBegin(o, inputEvent(1, 2, nil), nil)
	assert.ErrorIs(t, err, ErrDaemonNotFound)
}

func TestAbortOrphanLeaseOnlyForShutDownRuntimes(t *testing.T) {
	rt, _, _ := setup(t)
	require.NoError(t, rt.Start(bg))
	d := &closeCounter{}
	h, err := rt.SpawnWithDaemon(bg, newKeypair(t), DaemonConfig{}, d, func() (Daemon, error) { return &closeCounter{}, nil })
	require.NoError(t, err)
	o := h.OriginHash()
	l, err := rt.DeliverBegin(o, inputEvent(1, 1, nil), nil)
	require.NoError(t, err)
	assert.False(t, AbortOrphanLease(l.Ticket), "a live runtime's lease is not an orphan")
	assert.False(t, AbortOrphanLease(l.Ticket+1000))
	require.NoError(t, rt.Shutdown(bg))
	assert.Zero(t, d.closed.Load())
	assert.True(t, AbortOrphanLease(l.Ticket))
	assert.Equal(t, int32(1), d.closed.Load(), "closed once the lease ended")
	assert.False(t, AbortOrphanLease(l.Ticket), "ended once")
	host, _ := rt.LookupHost(o)
	assert.Nil(t, host)
}

func TestLeaseObserversGetACopy(t *testing.T) {
	rt, _, _ := readyRuntime(t)
	h, err := rt.Spawn(bg, "echo", newKeypair(t), DaemonConfig{})
	require.NoError(t, err)
	o := h.OriginHash()
	var seen []causal.Event
	defer rt.OnDelivered(o, func(ev causal.Event) { seen = append(seen, ev) })()
	buf := []byte("abc")
	l, err := rt.DeliverBegin(o, inputEvent(9, 4, buf), nil)
	require.NoError(t, err)
	buf[0] = 'X' // the caller's buffer was only borrowed by begin
	_, err = rt.DeliverCommit(nil, o, l.Ticket, nil)
	require.NoError(t, err)
	require.Len(t, seen, 1)
	assert.Equal(t, []byte("abc"), seen[0].Payload)
	assert.Equal(t, causal.Link{Origin: 9, Sequence: 4}, seen[0].Link)
}

// orphanCount is the number of entries in the orphans table.
func orphanCount() int {
	orphans.Lock()
	defer orphans.Unlock()
	return len(orphans.m)
}

func TestLeaseOfStoppedHostEndsByTicketBesideItsSuccessor(t *testing.T) {
	rt, _, _ := readyRuntime(t)
	kp := newKeypair(t)
	h, err := rt.Spawn(bg, "counter", kp, DaemonConfig{})
	require.NoError(t, err)
	o := h.OriginHash()
	old, ok := rt.LookupHost(o)
	require.True(t, ok)
	l, err := rt.DeliverBegin(o, inputEvent(1, 1, nil), nil)
	require.NoError(t, err)
	require.NoError(t, rt.Stop(bg, o))
	// the same origin again: a new host, its own leases
	_, err = rt.Spawn(bg, "counter", kp, DaemonConfig{})
	require.NoError(t, err)
	cur, ok := rt.LookupHost(o)
	require.True(t, ok)
	require.NotSame(t, old, cur)
	l2, err := rt.DeliverBegin(o, inputEvent(1, 1, nil), nil)
	require.NoError(t, err)
	assert.NotEqual(t, l.Ticket, l2.Ticket)

	// each ticket ends its own host's lease, once
	_, err = rt.DeliverCommit(nil, o, l.Ticket, [][]byte{[]byte("old")})
	require.NoError(t, err)
	assert.Equal(t, Stats{EventsProcessed: 1, EventsEmitted: 1}, old.Stats())
	assert.Equal(t, Stats{}, cur.Stats(), "the successor's lease is untouched")
	assert.ErrorIs(t, rt.DeliverAbort(o, l.Ticket), ErrInvalidArgument)
	require.NoError(t, rt.DeliverAbort(o, l2.Ticket))
	assert.Equal(t, Stats{Errors: 1}, cur.Stats())
	assert.Equal(t, Stats{EventsProcessed: 1, EventsEmitted: 1}, old.Stats())
	assert.Zero(t, orphanCount(), "no entry outlives its lease")
}

func TestLeaseEndsRaceExactlyOneWins(t *testing.T) {
	rt, _, _ := readyRuntime(t)
	for round := range 200 {
		h, err := rt.Spawn(bg, "counter", newKeypair(t), DaemonConfig{})
		require.NoError(t, err)
		o := h.OriginHash()
		host, _ := rt.LookupHost(o)
		l, err := rt.DeliverBegin(o, inputEvent(1, 1, nil), nil)
		require.NoError(t, err)
		var wins atomic.Int32
		var wg sync.WaitGroup
		for g := range 4 {
			wg.Go(func() {
				var err error
				if g%2 == 0 {
					_, err = rt.DeliverCommit(nil, o, l.Ticket, [][]byte{[]byte("x")})
				} else {
					err = rt.DeliverAbort(o, l.Ticket)
				}
				if err == nil {
					wins.Add(1)
				} else {
					assert.ErrorIs(t, err, ErrInvalidArgument)
				}
			})
		}
		if round%2 == 1 { // half the rounds: the host leaves the registry meanwhile
			wg.Go(func() { assert.NoError(t, rt.Stop(bg, o)) })
		}
		wg.Wait()
		require.Equal(t, int32(1), wins.Load(), "round %d", round)
		s := host.Stats()
		assert.Equal(t, uint64(1), s.EventsProcessed+s.Errors, "round %d: ended once", round)
		require.True(t, host.mu.TryLock(), "round %d: released", round)
		host.mu.Unlock()
		if round%2 == 0 {
			require.NoError(t, rt.Stop(bg, o))
		}
	}
	assert.Zero(t, orphanCount())
}

// A begin racing the host's removal: whatever the order, a granted lease
// ends by its ticket and leaves no table entry behind.
func TestLeaseBeginRacingStop(t *testing.T) {
	rt, _, _ := readyRuntime(t)
	granted := 0
	for round := range 300 {
		h, err := rt.Spawn(bg, "counter", newKeypair(t), DaemonConfig{})
		require.NoError(t, err)
		o := h.OriginHash()
		var l Lease
		var berr error
		var wg sync.WaitGroup
		wg.Go(func() { l, berr = rt.DeliverBegin(o, inputEvent(1, 1, nil), nil) })
		wg.Go(func() { assert.NoError(t, rt.Stop(bg, o)) })
		wg.Wait()
		if berr != nil {
			assert.ErrorIs(t, berr, ErrDaemonNotFound, "round %d", round)
			continue
		}
		granted++
		_, err = rt.DeliverCommit(nil, o, l.Ticket, nil)
		require.NoError(t, err, "round %d: a lease granted beside a stop still commits", round)
	}
	t.Logf("%d of 300 begins granted", granted)
	assert.Zero(t, orphanCount())
}

func TestLeaseOfHostSharedByTwoRuntimes(t *testing.T) {
	rt, _, net := readyRuntime(t)
	other := secondRuntime(t, net)
	h, err := rt.Spawn(bg, "counter", newKeypair(t), DaemonConfig{})
	require.NoError(t, err)
	o := h.OriginHash()
	host, _ := rt.LookupHost(o)
	require.NoError(t, other.InsertHost(host))
	l, err := rt.DeliverBegin(o, inputEvent(1, 1, nil), nil)
	require.NoError(t, err)
	_, err = other.DeliverCommit(nil, o, l.Ticket, nil)
	assert.ErrorIs(t, err, ErrInvalidArgument, "granted by rt, not by other")
	assert.ErrorIs(t, other.DeliverAbort(o, l.Ticket), ErrInvalidArgument)
	_, err = rt.DeliverCommit(nil, o, l.Ticket, nil)
	require.NoError(t, err)
	assert.Equal(t, Stats{EventsProcessed: 1}, host.Stats())
	require.True(t, other.RemoveHost(host))
}

func TestAbortOrphanLeaseLeavesNoEntry(t *testing.T) {
	rt, _, _ := readyRuntime(t)
	var tickets []uint64
	for range 3 {
		h, err := rt.Spawn(bg, "counter", newKeypair(t), DaemonConfig{})
		require.NoError(t, err)
		l, err := rt.DeliverBegin(h.OriginHash(), inputEvent(1, 1, nil), nil)
		require.NoError(t, err)
		tickets = append(tickets, l.Ticket)
	}
	require.NoError(t, rt.Shutdown(bg))
	assert.Equal(t, 3, orphanCount())
	for _, tk := range tickets {
		assert.True(t, AbortOrphanLease(tk))
	}
	assert.Zero(t, orphanCount())
}

type wordDaemon struct {
	echoDaemon
	word  uint64
	panic bool
}

func (w *wordDaemon) LeaseWord() uint64 {
	if w.panic {
		panic("no word")
	}
	return w.word
}

func TestLeaseCarriesTheDaemonsWord(t *testing.T) {
	rt, _, _ := readyRuntime(t)
	for _, c := range []struct {
		d    Daemon
		want uint64
	}{
		{&wordDaemon{word: 0xfeed}, 0xfeed},
		{&wordDaemon{word: 7, panic: true}, 0}, // a panic in LeaseWord is 0
		{echoDaemon{}, 0},                      // not a LeaseWorder
	} {
		h, err := rt.SpawnWithDaemon(bg, newKeypair(t), DaemonConfig{}, c.d, func() (Daemon, error) { return echoDaemon{}, nil })
		require.NoError(t, err)
		for seq := uint64(1); seq <= 2; seq++ {
			l, err := rt.DeliverBegin(h.OriginHash(), inputEvent(1, seq, nil), nil)
			require.NoError(t, err)
			assert.Equal(t, c.want, l.Word)
			assert.Equal(t, c.d, l.Daemon)
			require.NoError(t, rt.DeliverAbort(h.OriginHash(), l.Ticket))
		}
	}
}

// BenchmarkLeaseEcho64: host-driven delivery of a 64-byte event whose one
// output is the host's own (DeliverBegin + DeliverCommit, the daemon not
// called by the runtime), next to BenchmarkDeliverEcho64Append.
func BenchmarkLeaseEcho64(b *testing.B) {
	rt, done := benchRuntime(b)
	defer done()
	h, err := rt.Spawn(bg, "echo", newKeypair(b), DaemonConfig{})
	if err != nil {
		b.Fatal(err)
	}
	o := h.OriginHash()
	ev := inputEvent(42, 1, make([]byte, 64))
	outs := [][]byte{ev.Payload}
	var dst []causal.Event
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		ev.Link.Sequence = uint64(i + 1)
		l, err := rt.DeliverBegin(o, ev, nil)
		if err != nil || l.Ticket == 0 {
			b.Fatal(err)
		}
		dst, err = rt.DeliverCommit(dst[:0], o, l.Ticket, outs)
		if err != nil || len(dst) != 1 {
			b.Fatal(err)
		}
	}
	reportEventsPerSec(b)
}
