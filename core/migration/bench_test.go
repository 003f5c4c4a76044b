package migration

import (
	"context"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/netmesh/libnetmesh/core/compute"
	"github.com/netmesh/libnetmesh/core/identity"
	"github.com/netmesh/libnetmesh/core/migration/msg"
)

// benchMigrate measures start → complete for a daemon with size bytes of
// state, between two nodes on loopback UDP; a fresh daemon per iteration.
func benchMigrate(b *testing.B, size int) {
	padBytes.Store(int64(size - 16))
	a, t := pair(b)
	var lat []time.Duration
	b.SetBytes(int64(size))
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		kp := spawn(b, a, "padded")
		o := kp.OriginHash()
		require.NoError(b, t.rt.ExpectMigration("padded", o, compute.DaemonConfig{}))
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		b.StartTimer()
		start := time.Now()
		h, err := a.eng.StartMigration(ctx, o, a.id, t.id)
		if err == nil {
			err = h.Wait(ctx)
		}
		lat = append(lat, time.Since(start))
		b.StopTimer()
		cancel()
		require.NoError(b, err)
		require.NoError(b, t.rt.Stop(ctx, o))
		b.StartTimer()
	}
	b.StopTimer()
	reportP50(b, lat)
}

func reportP50(b *testing.B, lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
}

// benchMigrateFloor: snapshot + encode + seal + send the same bytes as
// SnapshotReady chunks over the same transport (reliable 0x0500), until the
// other side has received them all.
func benchMigrateFloor(b *testing.B, size int) {
	padBytes.Store(int64(size - 16))
	a := newTNode(b, nodeOpt{})
	t := newTNode(b, nodeOpt{noRuntime: true})
	link(b, a, t)
	var got atomic.Int64
	done := make(chan struct{}, 1)
	var want atomic.Int64
	t.node.SetSubprotocolHandler(compute.SubprotocolMigration, func(_ uint64, p []byte) {
		if got.Add(int64(len(p))) == want.Load() {
			done <- struct{}{}
		}
	})
	kp := spawn(b, a, "padded")
	host, _ := a.rt.LookupHost(kp.OriginHash())
	key, ok := a.node.PeerStaticKey(t.id)
	require.True(b, ok)
	var lat []time.Duration
	b.SetBytes(int64(size))
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		snap, err := host.SnapshotForMigration()
		require.NoError(b, err)
		env, err := identity.SealEnvelope(host.Keypair(), key, snap.ChainLink.Bytes())
		require.NoError(b, err)
		snap.Envelope = &env
		chunks := msg.SplitMessages(kp.OriginHash(), snap.ThroughSeq, snap.Encode())
		encs := make([][]byte, len(chunks))
		total := 0
		for i, c := range chunks {
			encs[i] = c.Encode()
			total += len(encs[i])
		}
		got.Store(0)
		want.Store(int64(total))
		for _, e := range encs {
			require.NoError(b, a.node.SendSubprotocol(context.Background(), t.id, compute.SubprotocolMigration, e))
		}
		select {
		case <-done:
		case <-time.After(60 * time.Second):
			b.Fatal("floor transfer stalled")
		}
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	reportP50(b, lat)
}

func BenchmarkMigrate1KiB(b *testing.B)       { benchMigrate(b, 1<<10) }
func BenchmarkMigrate1KiBFloor(b *testing.B)  { benchMigrateFloor(b, 1<<10) }
func BenchmarkMigrate64KiB(b *testing.B)      { benchMigrate(b, 64<<10) }
func BenchmarkMigrate64KiBFloor(b *testing.B) { benchMigrateFloor(b, 64<<10) }
func BenchmarkMigrate1MiB(b *testing.B)       { benchMigrate(b, 1<<20) }
func BenchmarkMigrate1MiBFloor(b *testing.B)  { benchMigrateFloor(b, 1<<20) }
func BenchmarkMigrate16MiB(b *testing.B)      { benchMigrate(b, 16<<20) }
func BenchmarkMigrate16MiBFloor(b *testing.B) { benchMigrateFloor(b, 16<<20) }

// BenchmarkDeliverDuringMigration: events delivered to a daemon whose
// migration is in flight (a stuck target keeps it buffering); the queue is
// returned to the daemon (Cancel) every 100 000 events.
func BenchmarkDeliverDuringMigration(b *testing.B) {
	a := newTNode(b, nodeOpt{})
	t := newTNode(b, nodeOpt{noRuntime: true})
	t.node.SetSubprotocolHandler(compute.SubprotocolMigration, func(uint64, []byte) {})
	link(b, a, t)
	kp := spawn(b, a, "counter")
	o := kp.OriginHash()
	ctx := context.Background()
	start := func() *Handle {
		h, err := a.eng.StartMigration(ctx, o, a.id, t.id)
		require.NoError(b, err)
		return h
	}
	h := start()
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if i > 0 && i%100_000 == 0 {
			b.StopTimer()
			require.NoError(b, h.Cancel(ctx))
			_ = h.Wait(ctx)
			require.Eventually(b, func() bool { hh, _ := a.rt.LookupHost(o); return hh.Phase() == compute.PhaseNormal }, 5*time.Second, time.Millisecond)
			h = start()
			b.StartTimer()
		}
		if _, err := a.rt.Deliver(o, ev(uint64(i+1))); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	_ = h.Cancel(ctx)
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkDeliverDuringMigrationFloor: the same deliveries outside a migration.
func BenchmarkDeliverDuringMigrationFloor(b *testing.B) {
	a := newTNode(b, nodeOpt{})
	kp := spawn(b, a, "counter")
	o := kp.OriginHash()
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if _, err := a.rt.Deliver(o, ev(uint64(i+1))); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}
