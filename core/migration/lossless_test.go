package migration

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/netmesh/libnetmesh/core/causal"
	"github.com/netmesh/libnetmesh/core/compute"
)

// One goroutine delivers events continuously (at least 10 000) while the
// daemon migrates: to A until A answers daemon-moved (naming B), then to B.
// Afterwards B's counter equals the number delivered, none lost, none
// twice, in order; every output reached a caller or B's output sink.
func TestLosslessDuringMigration(t *testing.T) {
	a, b := pair(t)
	kp := spawn(t, a, "emitter")
	o := kp.OriginHash()
	require.NoError(t, b.rt.ExpectMigration("emitter", o, compute.DaemonConfig{}))

	const min = 10_000
	var migDone atomic.Bool
	started := make(chan struct{})
	type result struct {
		total, toB, outs uint64
		refused          uint64 // buffer-full answers (retried)
		started          bool
		err              error
	}
	resc := make(chan result, 1)
	go func() {
		var r result
		onB := false
		for i := uint64(1); i <= min || !migDone.Load(); i++ {
			if i == 1000 && !r.started {
				r.started = true
				close(started)
			}
			var outs []causal.Event
			var err error
			if !onB {
				outs, err = a.rt.Deliver(o, ev(i))
				var moved *compute.MovedError
				if errors.As(err, &moved) {
					if moved.Node != b.id {
						r.err = err
						break
					}
					onB = true
				}
			}
			if onB {
				outs, err = b.rt.Deliver(o, ev(i))
			}
			// buffer-full is backpressure: the event was not accepted (on
			// the source while it moves, on the target while it replays);
			// a producer waits and offers the same event again. With one
			// CPU (-cpu 1) an unthrottled loop outruns the move and fills
			// the queue.
			var full *compute.MigrationError
			if errors.As(err, &full) && full.Detail == compute.MigrationBufferFull {
				r.refused++
				time.Sleep(200 * time.Microsecond)
				i--
				continue
			}
			if onB {
				r.toB++
			}
			if err != nil {
				r.err = err
				break
			}
			r.outs += uint64(len(outs))
			r.total = i
		}
		resc <- r
	}()
	<-started
	h, err := a.eng.StartMigration(ctx10(t), o, a.id, b.id)
	require.NoError(t, err)
	require.NoError(t, h.Wait(ctx10(t)))
	migDone.Store(true)
	r := <-resc
	require.NoError(t, r.err)
	t.Logf("%d events, %d to B after cutover, %d buffer-full answers retried", r.total, r.toB, r.refused)
	require.Greater(t, r.toB, uint64(0), "the producer switched to B after cutover")
	n, bad := count(t, b, o)
	assert.Equal(t, r.total, n, "none lost, none twice")
	assert.Zero(t, bad, "in order")
	assert.Equal(t, r.total, r.outs+uint64(b.sinkCount()), "queued events' outputs went to the sink")
	assert.Zero(t, a.sinkCount())
	st, ok := b.rt.LookupHost(o)
	require.True(t, ok)
	assert.Equal(t, compute.PhaseNormal, st.Phase())
	noRecords(t, a, b)
}

// A stateless daemon migrates (empty state) and keeps working.
func TestStatelessDaemonMigrates(t *testing.T) {
	a, b := pair(t)
	kp := spawn(t, a, "stateless")
	o := kp.OriginHash()
	s, err := a.rt.Snapshot(context.Background(), o)
	require.NoError(t, err)
	require.Nil(t, s, "stateless: no snapshot outside a migration")
	require.NoError(t, b.rt.ExpectMigration("stateless", o, compute.DaemonConfig{}))
	migrate(t, a, b, o, DefaultOpts())
	outs, err := b.rt.Deliver(o, ev(1))
	require.NoError(t, err)
	require.Len(t, outs, 1)
	assert.Equal(t, "ok", string(outs[0].Payload))
}

// dupNode sends every payload twice: every protocol message arrives
// duplicated at the application (the mesh de-duplicates only its own
// retransmissions).
type dupNode struct{ compute.Node }

func (d dupNode) SendSubprotocol(ctx context.Context, to uint64, id uint16, p []byte) error {
	if err := d.Node.SendSubprotocol(ctx, to, id, p); err != nil {
		return err
	}
	return d.Node.SendSubprotocol(ctx, to, id, p)
}

// Every receiver is idempotent: with every message duplicated, events
// queued during the migration are replayed exactly once.
func TestDuplicatedMessagesAreHarmless(t *testing.T) {
	a, b := pair(t)
	a.eng.node = dupNode{a.node}
	b.eng.node = dupNode{b.node}
	kp := spawn(t, a, "counter")
	o := kp.OriginHash()
	deliverRange(t, a, o, 1, 10)
	require.NoError(t, b.rt.ExpectMigration("counter", o, compute.DaemonConfig{}))
	opts := DefaultOpts()
	var next atomic.Uint64
	next.Store(11)
	opts.Progress = func(p Progress) {
		// Queue a few events in each buffering phase.
		if p.Phase >= PhaseTransfer && p.Phase <= PhaseReplay {
			for range 3 {
				i := next.Add(1) - 1
				_, err := a.rt.Deliver(o, ev(i))
				assert.NoError(t, err)
			}
		}
	}
	migrate(t, a, b, o, opts)
	n, bad := count(t, b, o)
	assert.Equal(t, next.Load()-1, n)
	assert.Zero(t, bad)
	noRecords(t, a, b)
}
