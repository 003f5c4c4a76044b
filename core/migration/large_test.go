package migration

import (
	"encoding/binary"
	"errors"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/netmesh/libnetmesh/core/causal"
	"github.com/netmesh/libnetmesh/core/compute"
	"github.com/netmesh/libnetmesh/core/migration/msg"
)

// bigEv is event i with a payload of size bytes (the first 8 carry i).
func bigEv(i uint64, size int) causal.Event {
	e := ev(i)
	e.Payload = binary.LittleEndian.AppendUint64(make([]byte, 0, size), i)
	e.Payload = e.Payload[:size]
	return e
}

// An event larger than BufferedEvents can carry, delivered to the source in
// the window just before cutover (its queue is then forwarded), is refused
// at Deliver with buffer-full: the caller keeps it and delivers it after the
// migration. One of exactly 7000 bytes is accepted and arrives. Nothing the
// source accepted is lost.
func TestOversizedEventRefusedNotLost(t *testing.T) {
	a, b := pair(t)
	kp := spawn(t, a, "counter")
	o := kp.OriginHash()
	deliverRange(t, a, o, 1, 3)
	require.NoError(t, b.rt.ExpectMigration("counter", o, compute.DaemonConfig{}))
	var next atomic.Uint64
	next.Store(4)
	var refused atomic.Value
	opts := DefaultOpts()
	var once sync.Once
	opts.Progress = func(p Progress) {
		if p.Phase == PhaseCutover {
			once.Do(func() { cutoverWindow(t, a, o, &next, &refused) })
		}
	}
	migrate(t, a, b, o, opts)
	err, _ := refused.Load().(error)
	require.Error(t, err, "the oversized event is refused, not accepted")
	var me *compute.MigrationError
	require.True(t, errors.As(err, &me), "typed: %v", err)
	assert.Equal(t, compute.MigrationBufferFull, me.Detail)
	assert.Equal(t, compute.KindMigration, compute.Kind(err))

	// The caller still holds it: after the migration it goes to the target.
	_, err = b.rt.Deliver(o, bigEv(next.Load(), msg.MaxEventPayload+1))
	require.NoError(t, err)
	n, bad := count(t, b, o)
	assert.Equal(t, next.Load(), n, "every accepted event arrived")
	assert.Zero(t, bad, "in order, none twice")
	noRecords(t, a, b)
}

// cutoverWindow delivers, in the window just before the source's cutover,
// an oversized event (refused: stored in refused) and one of exactly 7000
// bytes (accepted).
func cutoverWindow(t *testing.T, a *tnode, o uint64, next *atomic.Uint64, refused *atomic.Value) {
	// Queued after the last pre-cutover batch: rides the cutover tail.
	_, err := a.rt.Deliver(o, bigEv(next.Load(), msg.MaxEventPayload+1))
	if err != nil {
		refused.Store(err)
	} else {
		next.Add(1)
	}
	_, err = a.rt.Deliver(o, bigEv(next.Load(), msg.MaxEventPayload))
	if assert.NoError(t, err) {
		next.Add(1)
	}
}
