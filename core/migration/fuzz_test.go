package migration

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/netmesh/libnetmesh/core/causal"
	"github.com/netmesh/libnetmesh/core/compute"
	"github.com/netmesh/libnetmesh/core/identity"
	"github.com/netmesh/libnetmesh/core/migration/msg"
)

// FuzzHandleMessage feeds random payloads from a connected peer into a live
// engine (which has a daemon of its own and a placeholder entry for the
// seeded origin). The protocol work runs inline here, so a panic fails the
// fuzz run instead of being recovered by a lane.
func FuzzHandleMessage(f *testing.F) {
	kp, err := identity.Generate()
	require.NoError(f, err)
	o := kp.OriginHash()
	snap := (&causal.Snapshot{EntityID: kp.EntityID(), ChainLink: causal.Genesis(o), State: []byte{1, 2, 3}}).Encode()
	seeds := []*msg.Message{
		{Type: msg.TakeSnapshot, Origin: o, TargetNode: 9},
		{Type: msg.SnapshotReady, Origin: o, TotalChunks: 1, Chunk: snap},
		{Type: msg.SnapshotReady, Origin: o, ChunkIndex: 1, TotalChunks: 3, Chunk: []byte("part")},
		{Type: msg.RestoreComplete, Origin: o, Seq: 1},
		{Type: msg.ReplayComplete, Origin: o, Seq: 2},
		{Type: msg.CutoverNotify, Origin: o, TargetNode: 3},
		{Type: msg.CleanupComplete, Origin: o},
		{Type: msg.MigrationFailed, Origin: o, Reason: msg.Reason{Code: msg.StateFailed, Text: "x"}},
		{Type: msg.MigrationFailed, Origin: o, Reason: msg.Reason{Code: msg.NotReadyTimeout, Attempts: 3}},
		{Type: msg.BufferedEvents, Origin: o, Events: []causal.Event{{Payload: []byte("e")}}},
		{Type: msg.ActivateTarget, Origin: o},
		{Type: msg.ActivateAck, Origin: o, Seq: 1},
	}
	for _, m := range seeds {
		f.Add(m.Encode())
	}
	f.Add([]byte{})
	f.Add([]byte{0xff, 1, 2})
	f.Add([]byte{1, 0, 0})

	a, b := pair(f)
	spawn(f, b, "counter")
	require.NoError(f, b.rt.ExpectMigration("counter", o, compute.DaemonConfig{}))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := msg.Decode(data)
		if err != nil {
			return
		}
		b.eng.handle(a.id, m)
	})
}
