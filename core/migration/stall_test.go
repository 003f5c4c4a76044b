package migration

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/netmesh/libnetmesh/core/compute"
	"github.com/netmesh/libnetmesh/core/migration/msg"
)

// lossyEvents loses every BufferedEvents message it is asked to send (and
// reports success), the way a message vanishing in a buggy layer would.
type lossyEvents struct{ compute.Node }

func (l lossyEvents) SendSubprotocol(ctx context.Context, to uint64, id uint16, p []byte) error {
	if len(p) > 0 && msg.Type(p[0]) == msg.BufferedEvents {
		return nil
	}
	return l.Node.SendSubprotocol(ctx, to, id, p)
}

// A migration that cannot make progress does not hang: past its stall
// bound it fails with a typed error wrapping ErrStalled, the target rolls
// back and the daemon resumes on the source with every queued event.
func TestStalledMigrationFailsTyped(t *testing.T) {
	a, b := pair(t)
	a.eng.node = lossyEvents{a.node}
	kp := spawn(t, a, "counter")
	o := kp.OriginHash()
	deliverRange(t, a, o, 1, 3)
	require.NoError(t, b.rt.ExpectMigration("counter", o, compute.DaemonConfig{}))
	opts := DefaultOpts()
	opts.StallTimeout = 300 * time.Millisecond
	h, err := a.eng.StartMigrationWith(ctx10(t), o, a.id, b.id, opts)
	require.NoError(t, err)
	deliverRange(t, a, o, 4, 10) // queued on the source
	err = h.Wait(ctx10(t))
	require.ErrorIs(t, err, ErrStalled)
	requireDetail(t, err, compute.MigrationStateFailed)
	stillOnSource(t, a, nil, o, 11)
	require.Eventually(t, func() bool { _, ok := b.rt.LookupHost(o); return !ok }, 5*time.Second, 5*time.Millisecond)
	n, bad := count(t, a, o)
	assert.Equal(t, uint64(11), n, "nothing queued was lost")
	assert.Zero(t, bad)
	noRecords(t, a, b)
}
