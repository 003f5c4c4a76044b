package compute

import (
	"encoding/binary"
	"fmt"
	"sync"
	"testing"

	"github.com/netmesh/libnetmesh/core/causal"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// varyDaemon emits seq%4 outputs per event (0 to 3), each naming the event
// and its own index, and counts events (its state).
type varyDaemon struct{ n uint64 }

func (*varyDaemon) Name() string           { return "vary" }
func (*varyDaemon) Requirements() []string { return nil }
func (d *varyDaemon) Process(ev causal.Event) ([][]byte, error) {
	if string(ev.Payload) == "fail" {
		return nil, errUser
	}
	d.n++
	var outs [][]byte
	for k := uint64(0); k < ev.Link.Sequence%4; k++ {
		outs = append(outs, append(binary.LittleEndian.AppendUint64([]byte{byte(k)}, d.n), ev.Payload...))
	}
	return outs, nil
}
func (d *varyDaemon) Snapshot() ([]byte, error) {
	return binary.LittleEndian.AppendUint64(nil, d.n), nil
}
func (d *varyDaemon) Restore(b []byte) error {
	d.n = binary.LittleEndian.Uint64(b)
	return nil
}

// batchDeliver is what a host language does with a batch: begin, run the
// daemon on each event in order until one fails, commit what was done.
// It returns the outputs per event done and the failure, if any.
func batchDeliver(t *testing.T, rt *Runtime, origin uint64, evs []causal.Event) ([][]causal.Event, error) {
	t.Helper()
	l, err := rt.DeliverBatchBegin(origin, evs, 0, nil)
	if err != nil {
		return nil, err
	}
	var outs [][]byte
	var ends []int
	var perr error
	for _, ev := range evs {
		o, err := l.Daemon.Process(ev)
		if err != nil {
			perr = err
			break
		}
		outs = append(outs, o...)
		ends = append(ends, len(outs))
	}
	flat, err := rt.DeliverBatchCommit(nil, origin, l.Ticket, outs, ends, perr != nil)
	require.NoError(t, err)
	require.Len(t, flat, len(outs))
	per := make([][]causal.Event, len(ends))
	start := 0
	for i, e := range ends {
		per[i] = flat[start:e]
		start = e
	}
	return per, perr
}

// twinRuntimes are two ready runtimes on one network (factories counter and
// vary), each with the same daemon identity spawned as kind under cfg.
func twinRuntimes(t *testing.T, kind string, cfg DaemonConfig) (rts [2]*Runtime, hs [2]*DaemonHost, origin uint64) {
	t.Helper()
	var net *FakeNetwork
	rts[0], _, net = readyRuntime(t)
	rts[1] = secondRuntime(t, net)
	kp := newKeypair(t)
	for i := range rts {
		require.NoError(t, rts[i].RegisterFactory("vary", func() (Daemon, error) { return &varyDaemon{}, nil }))
		_, err := rts[i].Spawn(bg, kind, kp, cfg)
		require.NoError(t, err)
		var ok bool
		hs[i], ok = rts[i].LookupHost(kp.OriginHash())
		require.True(t, ok)
	}
	return rts, hs, kp.OriginHash()
}

// assertTwins checks that two hosts hold identical delivery state.
func assertTwins(t *testing.T, a, b *DaemonHost) {
	t.Helper()
	assert.Equal(t, a.ChainHead(), b.ChainHead())
	assert.Equal(t, a.Stats(), b.Stats())
	a.mu.Lock()
	b.mu.Lock()
	assert.Equal(t, a.bloom, b.bloom)
	assert.Equal(t, a.horizon.Encode(), b.horizon.Encode())
	assert.Equal(t, a.horizon.Len(), b.horizon.Len())
	assert.Equal(t, a.chain.Head(), b.chain.Head())
	b.mu.Unlock()
	a.mu.Unlock()
	sa, _ := a.Snapshot()
	sb, _ := b.Snapshot()
	require.NotNil(t, sa)
	assert.Equal(t, sa.State, sb.State)
	assert.Equal(t, sa.ChainLink, sb.ChainLink)
}

func assertSameOutputs(t *testing.T, want, got []causal.Event) {
	t.Helper()
	require.Len(t, got, len(want))
	for k := range want {
		assert.Equal(t, want[k].Link, got[k].Link)
		assert.Equal(t, want[k].Payload, got[k].Payload)
		assert.NotZero(t, got[k].ReceivedAt)
	}
}

func TestBatchMatchesSingleDelivers(t *testing.T) {
	// interval 40 > every batch: each batch crosses at most one multiple,
	// so even the snapshot count matches.
	rts, hs, o := twinRuntimes(t, "vary", DaemonConfig{AutoSnapshotInterval: 40})
	seq := uint64(0)
	for _, n := range []int{1, 5, 13, 2, 30, 1, 37, 8} {
		evs := make([]causal.Event, n)
		for i := range evs {
			seq++
			evs[i] = inputEvent(100+seq%5, seq, []byte{byte(seq), byte(seq >> 8)}) // several origins: the horizon grows
		}
		per, err := batchDeliver(t, rts[1], o, evs)
		require.NoError(t, err)
		require.Len(t, per, n)
		for i, ev := range evs {
			want, err := rts[0].Deliver(o, ev)
			require.NoError(t, err)
			assertSameOutputs(t, want, per[i])
		}
		assertTwins(t, hs[0], hs[1])
	}
	assert.Equal(t, uint64(97), hs[1].Stats().EventsProcessed)
	assert.Equal(t, uint64(2+8), hs[1].Stats().SnapshotsTaken, "automatic at 40 and 80, and assertTwins' one per round")
}

func TestBatchFailureAtEventK(t *testing.T) {
	for _, k := range []int{0, 3, 9} {
		t.Run(fmt.Sprint(k), func(t *testing.T) { batchFailureAt(t, k) })
	}
}

func batchFailureAt(t *testing.T, k int) {
	{
		rts, hs, o := twinRuntimes(t, "vary", DaemonConfig{})
		evs := make([]causal.Event, 10)
		for i := range evs {
			evs[i] = inputEvent(7+uint64(i%3), uint64(i+1), []byte{byte(i)})
		}
		evs[k].Payload = []byte("fail")
		per, err := batchDeliver(t, rts[1], o, evs)
		require.ErrorIs(t, err, errUser)
		require.Len(t, per, k, "the events before k are delivered")
		for i := range evs[:k+1] {
			want, err := rts[0].Deliver(o, evs[i])
			if i == k {
				require.ErrorIs(t, err, ErrProcessFailed)
				break
			}
			require.NoError(t, err)
			assertSameOutputs(t, want, per[i])
		}
		assertTwins(t, hs[0], hs[1])
		assert.Equal(t, uint64(1), hs[1].Stats().Errors)
		// the runtime goes on: the rest, singly on both
		for _, ev := range evs[k+1:] {
			want, err := rts[0].Deliver(o, ev)
			require.NoError(t, err)
			got, err := rts[1].Deliver(o, ev)
			require.NoError(t, err)
			assertSameOutputs(t, want, got)
		}
		assertTwins(t, hs[0], hs[1])
	}
}

func TestBatchRefusedUnlessNormal(t *testing.T) {
	rt, _, _ := readyRuntime(t)
	h, err := rt.Spawn(bg, "counter", newKeypair(t), DaemonConfig{})
	require.NoError(t, err)
	o := h.OriginHash()
	host, _ := rt.LookupHost(o)
	evs := []causal.Event{inputEvent(1, 1, []byte("a")), inputEvent(1, 2, []byte("b"))}

	_, err = rt.DeliverBatchBegin(o, nil, 0, nil)
	assert.ErrorIs(t, err, ErrInvalidArgument, "empty batch")

	require.NoError(t, host.BeginBuffering())
	head := host.ChainHead()
	_, err = rt.DeliverBatchBegin(o, evs, 0, nil)
	require.ErrorIs(t, err, ErrBatchRefused)
	assert.Equal(t, KindInternal, Kind(err))
	assert.Equal(t, 0, host.Buffered(), "nothing queued")
	assert.Equal(t, Stats{}, host.Stats())
	assert.Equal(t, head, host.ChainHead())
	assert.Zero(t, host.ls.live.Load(), "no lease left")
	// one by one they queue, and are processed in order on resume
	for _, ev := range evs {
		outs, err := rt.Deliver(o, ev)
		require.NoError(t, err)
		assert.Empty(t, outs)
	}
	res, err := host.Resume(nil)
	require.NoError(t, err)
	require.Len(t, res, 2)
	assert.Equal(t, uint64(2), counterValue(t, res[1].Outputs[0]))

	// moved: the moved error; stopped: not found
	require.NoError(t, host.BeginBuffering())
	_, err = host.Cutover(77)
	require.NoError(t, err)
	_, err = rt.DeliverBatchBegin(o, evs, 0, nil)
	var me *MovedError
	require.ErrorAs(t, err, &me)
	assert.Equal(t, uint64(77), me.Node)

	h2, err := rt.Spawn(bg, "counter", newKeypair(t), DaemonConfig{})
	require.NoError(t, err)
	errNo := assert.AnError
	_, err = rt.DeliverBatchBegin(h2.OriginHash(), evs, 0, func(Daemon) error { return errNo })
	assert.ErrorIs(t, err, errNo)
	require.NoError(t, rt.Stop(bg, h2.OriginHash()))
	_, err = rt.DeliverBatchBegin(h2.OriginHash(), evs, 0, nil)
	assert.ErrorIs(t, err, ErrDaemonNotFound)
	_, err = rt.DeliverBatchBegin(12345, evs, 0, nil)
	assert.ErrorIs(t, err, ErrDaemonNotFound)
}

func TestBatchTicketsEndOnlyTheirOwnKind(t *testing.T) {
	rt, _, net := readyRuntime(t)
	other := secondRuntime(t, net)
	a, err := rt.Spawn(bg, "counter", newKeypair(t), DaemonConfig{})
	require.NoError(t, err)
	b, err := rt.Spawn(bg, "counter", newKeypair(t), DaemonConfig{})
	require.NoError(t, err)
	oa, ob := a.OriginHash(), b.OriginHash()
	evs := []causal.Event{inputEvent(1, 1, nil), inputEvent(1, 2, nil)}

	lb, err := rt.DeliverBatchBegin(oa, evs, 0, nil)
	require.NoError(t, err)
	assert.NotZero(t, lb.Ticket&batchTicketBit)
	// a single end refuses a batch ticket
	_, err = rt.DeliverCommit(nil, oa, lb.Ticket, nil)
	assert.ErrorIs(t, err, ErrInvalidArgument)
	assert.ErrorIs(t, rt.DeliverAbort(oa, lb.Ticket), ErrInvalidArgument)
	for _, c := range []struct {
		name   string
		rt     *Runtime
		origin uint64
		ticket uint64
	}{
		{"zero", rt, oa, 0},
		{"never issued", rt, oa, lb.Ticket + 1000},
		{"single form", rt, oa, lb.Ticket &^ batchTicketBit},
		{"other daemon", rt, ob, lb.Ticket},
		{"other runtime", other, oa, lb.Ticket},
	} {
		_, err := c.rt.DeliverBatchCommit(nil, c.origin, c.ticket, nil, []int{0}, false)
		assert.ErrorIs(t, err, ErrInvalidArgument, c.name)
		assert.ErrorIs(t, c.rt.DeliverBatchAbort(c.origin, c.ticket), ErrInvalidArgument, c.name)
	}
	assert.Equal(t, Stats{}, a.mustStats(t), "the batch lease is untouched")
	outs, err := rt.DeliverBatchCommit(nil, oa, lb.Ticket, [][]byte{[]byte("x"), []byte("y")}, []int{1, 2}, false)
	require.NoError(t, err)
	require.Len(t, outs, 2)
	assert.Equal(t, uint64(2), outs[1].Link.Sequence)
	// stale
	_, err = rt.DeliverBatchCommit(nil, oa, lb.Ticket, nil, nil, false)
	assert.ErrorIs(t, err, ErrInvalidArgument)
	assert.ErrorIs(t, rt.DeliverBatchAbort(oa, lb.Ticket), ErrInvalidArgument)
	assert.Equal(t, Stats{EventsProcessed: 2, EventsEmitted: 2}, a.mustStats(t))

	// a batch end refuses a single ticket
	ls, err := rt.DeliverBegin(oa, inputEvent(1, 3, nil), nil)
	require.NoError(t, err)
	_, err = rt.DeliverBatchCommit(nil, oa, ls.Ticket, nil, []int{0}, false)
	assert.ErrorIs(t, err, ErrInvalidArgument)
	assert.ErrorIs(t, rt.DeliverBatchAbort(oa, ls.Ticket), ErrInvalidArgument)
	require.NoError(t, rt.DeliverAbort(oa, ls.Ticket))
}

func (h *DaemonHandle) mustStats(t *testing.T) Stats {
	t.Helper()
	s, err := h.Stats()
	require.NoError(t, err)
	return s
}

func TestBatchBadEndsEndTheLeaseAppendingNothing(t *testing.T) {
	rt, _, _ := readyRuntime(t)
	h, err := rt.Spawn(bg, "counter", newKeypair(t), DaemonConfig{})
	require.NoError(t, err)
	o := h.OriginHash()
	evs := []causal.Event{inputEvent(1, 1, nil), inputEvent(1, 2, nil)}
	x := []byte("x")
	cases := []struct {
		name   string
		outs   [][]byte
		ends   []int
		failed bool
	}{
		{"more done than leased", nil, []int{0, 0, 0}, false},
		{"failed past the last", nil, []int{0, 0}, true},
		{"decreasing", [][]byte{x, x}, []int{2, 1}, false},
		{"beyond the outputs", [][]byte{x}, []int{2}, false},
		{"outputs left over", [][]byte{x, x}, []int{1}, false},
		{"outputs without events", [][]byte{x}, nil, false},
	}
	for i, c := range cases {
		l, err := rt.DeliverBatchBegin(o, evs, 0, nil)
		require.NoError(t, err, c.name)
		_, err = rt.DeliverBatchCommit(nil, o, l.Ticket, c.outs, c.ends, c.failed)
		assert.ErrorIs(t, err, ErrInvalidArgument, c.name)
		assert.Equal(t, Stats{Errors: uint64(i + 1)}, h.mustStats(t), c.name)
		assert.ErrorIs(t, rt.DeliverBatchAbort(o, l.Ticket), ErrInvalidArgument, "the lease ended: "+c.name)
	}
	host, _ := rt.LookupHost(o)
	assert.Equal(t, uint64(0), host.ChainHead().Sequence, "nothing appended")
	// abort: one error, nothing observed
	l, err := rt.DeliverBatchBegin(o, evs, 0, nil)
	require.NoError(t, err)
	require.NoError(t, rt.DeliverBatchAbort(o, l.Ticket))
	assert.Equal(t, uint64(len(cases)+1), h.mustStats(t).Errors)
	host.mu.Lock()
	assert.Zero(t, host.horizon.Len())
	host.mu.Unlock()
	// zero events done, none failed: the lease just ends
	l, err = rt.DeliverBatchBegin(o, evs, 0, nil)
	require.NoError(t, err)
	outs, err := rt.DeliverBatchCommit(nil, o, l.Ticket, nil, nil, false)
	require.NoError(t, err)
	assert.Empty(t, outs)
	assert.Equal(t, uint64(len(cases)+1), h.mustStats(t).Errors)
	assert.Zero(t, h.mustStats(t).EventsProcessed)
}

func TestBatchObserversSeeEachEventDone(t *testing.T) {
	rt, _, _ := readyRuntime(t)
	h, err := rt.Spawn(bg, "echo", newKeypair(t), DaemonConfig{})
	require.NoError(t, err)
	o := h.OriginHash()
	var seen []causal.Event
	defer rt.OnDelivered(o, func(ev causal.Event) { seen = append(seen, ev) })()
	bufs := [][]byte{[]byte("a0"), []byte("b1"), []byte("c2"), []byte("d3")}
	evs := make([]causal.Event, len(bufs))
	for i, b := range bufs {
		evs[i] = inputEvent(9, uint64(i+1), b)
	}
	l, err := rt.DeliverBatchBegin(o, evs, 0, nil)
	require.NoError(t, err)
	for _, b := range bufs {
		b[0] = 'X' // borrowed by begin only
	}
	// events 0 and 1 done, 2 failed, 3 never ran
	_, err = rt.DeliverBatchCommit(nil, o, l.Ticket, [][]byte{[]byte("o")}, []int{1, 1}, true)
	require.NoError(t, err)
	require.Len(t, seen, 2)
	assert.Equal(t, []byte("a0"), seen[0].Payload)
	assert.Equal(t, []byte("b1"), seen[1].Payload)
	assert.Equal(t, causal.Link{Origin: 9, Sequence: 2}, seen[1].Link)
	assert.Equal(t, Stats{EventsProcessed: 2, EventsEmitted: 1, Errors: 1}, h.mustStats(t))
}

func TestBatchAutoSnapshotAtMostOnceAtTheEnd(t *testing.T) {
	rt, _, _ := readyRuntime(t)
	h, err := rt.Spawn(bg, "counter", newKeypair(t), DaemonConfig{AutoSnapshotInterval: 3})
	require.NoError(t, err)
	o := h.OriginHash()
	host, _ := rt.LookupHost(o)
	d := host.daemon.(*counterDaemon)
	run := func(n int) {
		evs := make([]causal.Event, n)
		for i := range evs {
			evs[i] = inputEvent(1, uint64(i+1), nil)
		}
		_, err := batchDeliver(t, rt, o, evs)
		require.NoError(t, err)
	}
	run(2) // 2: no multiple of 3 crossed
	assert.Nil(t, host.LatestSnapshot())
	run(8) // 10: crossed 3, 6, 9 — one snapshot, at the end, holding all 10
	assert.Equal(t, uint64(1), h.mustStats(t).SnapshotsTaken)
	require.NotNil(t, host.LatestSnapshot())
	assert.Equal(t, binary.LittleEndian.AppendUint64(nil, 10), host.LatestSnapshot().State)
	assert.Equal(t, uint64(10), d.n)
	run(1) // 11
	run(1) // 12: crossed
	assert.Equal(t, uint64(2), h.mustStats(t).SnapshotsTaken)
	assert.Equal(t, binary.LittleEndian.AppendUint64(nil, 12), host.LatestSnapshot().State)
}

func TestBatchHolderRefusesItsOwnThread(t *testing.T) {
	rt, _, _ := readyRuntime(t)
	h, err := rt.Spawn(bg, "counter", newKeypair(t), DaemonConfig{})
	require.NoError(t, err)
	o := h.OriginHash()
	evs := []causal.Event{inputEvent(1, 1, nil)}
	l, err := rt.DeliverBatchBegin(o, evs, 7, nil)
	require.NoError(t, err)
	assert.True(t, rt.LeaseHeldBy(o, 7))
	_, err = rt.DeliverBatchBegin(o, evs, 7, nil)
	assert.ErrorIs(t, err, ErrInvalidArgument)
	_, err = rt.DeliverBeginBy(o, inputEvent(1, 2, nil), 7, nil)
	assert.ErrorIs(t, err, ErrInvalidArgument)
	_, err = rt.DeliverBatchCommit(nil, o, l.Ticket, nil, []int{0}, false)
	require.NoError(t, err)
	assert.False(t, rt.LeaseHeldBy(o, 7))
}

func TestBatchStopWhileLeasedEndsByTicket(t *testing.T) {
	rt, _, _ := readyRuntime(t)
	d := &closeCounter{}
	h, err := rt.SpawnWithDaemon(bg, newKeypair(t), DaemonConfig{}, d, func() (Daemon, error) { return &closeCounter{}, nil })
	require.NoError(t, err)
	o := h.OriginHash()
	l, err := rt.DeliverBatchBegin(o, []causal.Event{inputEvent(1, 1, nil), inputEvent(1, 2, nil)}, 0, nil)
	require.NoError(t, err)
	require.NoError(t, rt.Stop(bg, o))
	assert.Zero(t, d.closed.Load())
	_, err = rt.DeliverBatchCommit(nil, o, l.Ticket, nil, []int{0, 0}, false)
	require.NoError(t, err)
	assert.Equal(t, int32(1), d.closed.Load(), "closed once the lease ended")
	assert.Zero(t, orphanCount())
}

func TestBatchConcurrentWithSingles(t *testing.T) {
	rt, _, _ := readyRuntime(t)
	h, err := rt.Spawn(bg, "counter", newKeypair(t), DaemonConfig{AutoSnapshotInterval: 50})
	require.NoError(t, err)
	o := h.OriginHash()
	const workers, rounds, per = 4, 30, 10
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := 0; r < rounds; r++ {
				if (w+r)%3 == 0 {
					_, err := rt.Deliver(o, inputEvent(uint64(w), uint64(r), nil))
					assert.NoError(t, err)
					continue
				}
				evs := make([]causal.Event, per)
				for i := range evs {
					evs[i] = inputEvent(uint64(w), uint64(r*per+i), nil)
				}
				l, err := rt.DeliverBatchBegin(o, evs, uint64(w+1), nil)
				if !assert.NoError(t, err) {
					return
				}
				var outs [][]byte
				var ends []int
				for _, ev := range evs {
					p, _ := l.Daemon.Process(ev)
					outs = append(outs, p...)
					ends = append(ends, len(outs))
				}
				got, err := rt.DeliverBatchCommit(nil, o, l.Ticket, outs, ends, false)
				assert.NoError(t, err)
				for i := 1; i < len(got); i++ {
					assert.Equal(t, got[i-1].Link.Sequence+1, got[i].Link.Sequence, "a batch's outputs are contiguous")
				}
			}
		}()
	}
	wg.Wait()
	s := h.mustStats(t)
	assert.Equal(t, s.EventsProcessed, s.EventsEmitted)
	host, _ := rt.LookupHost(o)
	assert.Equal(t, s.EventsProcessed, host.ChainHead().Sequence)
	assert.Equal(t, s.EventsProcessed, host.daemon.(*counterDaemon).n)
}

// BenchmarkBatchEcho64 is BenchmarkLeaseEcho64 in batches of 100 events
// (per event): one begin and one commit per 100.
func BenchmarkBatchEcho64(b *testing.B) {
	rt, done := benchRuntime(b)
	defer done()
	h, err := rt.Spawn(bg, "echo", newKeypair(b), DaemonConfig{})
	if err != nil {
		b.Fatal(err)
	}
	o := h.OriginHash()
	const n = 100
	evs := make([]causal.Event, n)
	outs := make([][]byte, n)
	ends := make([]int, n)
	for i := range evs {
		evs[i] = inputEvent(42, uint64(i+1), make([]byte, 64))
		outs[i] = evs[i].Payload
		ends[i] = i + 1
	}
	var dst []causal.Event
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i += n {
		l, err := rt.DeliverBatchBegin(o, evs, 0, nil)
		if err != nil {
			b.Fatal(err)
		}
		dst, err = rt.DeliverBatchCommit(dst[:0], o, l.Ticket, outs, ends, false)
		if err != nil || len(dst) != n {
			b.Fatal(err)
		}
	}
	reportEventsPerSec(b)
}
