package migration

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/netmesh/libnetmesh/core/causal"
	"github.com/netmesh/libnetmesh/core/compute"
	"github.com/netmesh/libnetmesh/core/mesh"
)

// trio: A and B (runtimes) and a publisher P with channel "news/today";
// A and B are linked, and both connect to P.
func trio(t *testing.T) (a, b, p *tnode) {
	a, b = pair(t)
	p = newTNode(t, nodeOpt{noRuntime: true})
	require.NoError(t, p.node.RegisterChannel("news/today", mesh.ChannelConfig{}))
	link(t, a, p)
	link(t, b, p)
	return a, b, p
}

// Subscribing through the runtime records the ledger entry; unsubscribing
// removes it.
func TestChannelLedgerFollowsSubscriptions(t *testing.T) {
	a, _, p := trio(t)
	kp := spawn(t, a, "counter")
	o := kp.OriginHash()
	ctx := ctx10(t)
	require.NoError(t, a.rt.SubscribeChannel(ctx, o, p.id, "news/today", nil))
	subs, err := a.rt.Subscriptions(o)
	require.NoError(t, err)
	require.Equal(t, []causal.Binding{{Publisher: p.id, Channel: "news/today"}}, subs)
	assert.Equal(t, []uint64{a.id}, p.node.Roster("news/today"))
	require.NoError(t, a.rt.UnsubscribeChannel(ctx, o, p.id, "news/today"))
	subs, err = a.rt.Subscriptions(o)
	require.NoError(t, err)
	assert.Empty(t, subs)
}

// The ledger rides the snapshot to the target; after the migration the
// publisher's roster gains B and drops A within 2 s.
func TestChannelLedgerMigratesAndRostersFollow(t *testing.T) {
	a, b, p := trio(t)
	kp := spawn(t, a, "counter")
	o := kp.OriginHash()
	require.NoError(t, a.rt.SubscribeChannel(ctx10(t), o, p.id, "news/today", nil))
	require.NoError(t, b.rt.ExpectMigration("counter", o, compute.DaemonConfig{}))
	snap, err := a.rt.Snapshot(context.Background(), o)
	require.NoError(t, err)
	require.NotEmpty(t, snap.Bindings)

	migrate(t, a, b, o, DefaultOpts())
	subs, err := b.rt.Subscriptions(o)
	require.NoError(t, err)
	assert.Equal(t, []causal.Binding{{Publisher: p.id, Channel: "news/today"}}, subs)
	require.Eventually(t, func() bool {
		r := p.node.Roster("news/today")
		return slices.Contains(r, b.id) && !slices.Contains(r, a.id)
	}, 2*time.Second, 10*time.Millisecond)
}

// A failing subscription in the hooks is only logged; the others still go
// out (the first publisher does not have the channel).
func TestChannelHookFailureOnlyLogged(t *testing.T) {
	a, b, p := trio(t)
	kp := spawn(t, a, "counter")
	o := kp.OriginHash()
	require.NoError(t, a.rt.SubscribeChannel(ctx10(t), o, p.id, "news/today", nil))
	h, _ := a.rt.LookupHost(o)
	// A binding whose publisher will refuse it (no such channel there).
	require.NoError(t, h.RecordSubscription(p.id, "no/such", nil))
	require.NoError(t, h.RecordSubscription(p.id, "news/today", nil))
	require.NoError(t, b.rt.ExpectMigration("counter", o, compute.DaemonConfig{}))
	migrate(t, a, b, o, DefaultOpts())
	require.Eventually(t, func() bool { return slices.Contains(p.node.Roster("news/today"), b.id) }, 2*time.Second, 10*time.Millisecond)
}

// An empty ledger adds no bytes to the snapshot.
func TestEmptyLedgerAddsNoBytes(t *testing.T) {
	a := newTNode(t, nodeOpt{})
	kp := spawn(t, a, "counter")
	s, err := a.rt.Snapshot(context.Background(), kp.OriginHash())
	require.NoError(t, err)
	assert.Empty(t, s.Bindings)
	assert.Equal(t, causal.SnapshotOverhead+len(s.State), len(s.Encode()))
}
