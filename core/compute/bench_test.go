package compute

import (
	"testing"

	"github.com/netmesh/libnetmesh/core/causal"
)

func benchRuntime(b *testing.B) (*Runtime, func()) {
	net := NewFakeNetwork()
	rt := NewRuntime(net.NewNode(), WithWorkers(1))
	if err := rt.RegisterFactory("echo", func() (Daemon, error) { return echoDaemon{}, nil }); err != nil {
		b.Fatal(err)
	}
	if err := rt.Start(bg); err != nil {
		b.Fatal(err)
	}
	return rt, func() {
		_ = rt.Shutdown(bg)
		net.Close()
	}
}

func reportEventsPerSec(b *testing.B) {
	if s := b.Elapsed().Seconds(); s > 0 {
		b.ReportMetric(float64(b.N)/s, "events/s")
	}
}

// BenchmarkDeliverEcho64: Runtime.Deliver of a 64-byte event into an echo
// daemon (one output): lifecycle check, registry lookup, host lock, horizon,
// process, chain append, output event.
func BenchmarkDeliverEcho64(b *testing.B) {
	rt, done := benchRuntime(b)
	defer done()
	h, err := rt.Spawn(bg, "echo", newKeypair(b), DaemonConfig{})
	if err != nil {
		b.Fatal(err)
	}
	o := h.OriginHash()
	ev := inputEvent(42, 1, make([]byte, 64))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		ev.Link.Sequence = uint64(i + 1)
		outs, err := rt.Deliver(o, ev)
		if err != nil || len(outs) != 1 {
			b.Fatal(err)
		}
	}
	reportEventsPerSec(b)
}

// BenchmarkDeliverEcho64Append is the same through DeliverAppend with a
// reused output slice (what the C ABI does when it copies outputs out).
func BenchmarkDeliverEcho64Append(b *testing.B) {
	rt, done := benchRuntime(b)
	defer done()
	h, err := rt.Spawn(bg, "echo", newKeypair(b), DaemonConfig{})
	if err != nil {
		b.Fatal(err)
	}
	o := h.OriginHash()
	ev := inputEvent(42, 1, make([]byte, 64))
	var dst []causal.Event
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		ev.Link.Sequence = uint64(i + 1)
		dst, err = rt.DeliverAppend(dst[:0], o, ev)
		if err != nil || len(dst) != 1 {
			b.Fatal(err)
		}
	}
	reportEventsPerSec(b)
}

// BenchmarkDeliverEcho64Floor is the floor: the daemon's Process called
// directly, nothing of the runtime around it.
func BenchmarkDeliverEcho64Floor(b *testing.B) {
	var d Daemon = echoDaemon{}
	ev := inputEvent(42, 1, make([]byte, 64))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		ev.Link.Sequence = uint64(i + 1)
		outs, err := d.Process(ev)
		if err != nil || len(outs) != 1 {
			b.Fatal(err)
		}
	}
	reportEventsPerSec(b)
}

// BenchmarkSpawnStop: one spawn + stop of an echo daemon (keypair made
// outside the timer).
func BenchmarkSpawnStop(b *testing.B) {
	rt, done := benchRuntime(b)
	defer done()
	kp := newKeypair(b)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		h, err := rt.Spawn(bg, "echo", kp, DaemonConfig{})
		if err != nil {
			b.Fatal(err)
		}
		if err := rt.Stop(bg, h.OriginHash()); err != nil {
			b.Fatal(err)
		}
	}
	if s := b.Elapsed().Seconds(); s > 0 {
		b.ReportMetric(float64(b.N)/s, "spawns/s")
	}
}
