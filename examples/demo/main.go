// Command demo is `make demo`'s Go part: a counter daemon on a real mesh node
// is fed events, snapshotted, stopped and restored from its snapshot; then a
// second node joins over encrypted UDP and the counter migrates to it live —
// phases and progress printed — while events keep arriving, and it keeps
// counting there.
package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/netmesh/libnetmesh/core/causal"
	"github.com/netmesh/libnetmesh/core/compute"
	"github.com/netmesh/libnetmesh/core/identity"
	"github.com/netmesh/libnetmesh/core/mesh"
	"github.com/netmesh/libnetmesh/core/migration"
)

// counter counts the events it processes and emits the running count.
type counter struct{ n uint64 }

func (c *counter) Name() string           { return "counter" }
func (c *counter) Requirements() []string { return nil }
func (c *counter) Process(causal.Event) ([][]byte, error) {
	c.n++
	return [][]byte{binary.LittleEndian.AppendUint64(nil, c.n)}, nil
}
func (c *counter) Snapshot() ([]byte, error) { return binary.LittleEndian.AppendUint64(nil, c.n), nil }
func (c *counter) Restore(state []byte) error {
	if len(state) != 8 {
		return fmt.Errorf("counter: state must be 8 bytes, got %d", len(state))
	}
	c.n = binary.LittleEndian.Uint64(state)
	return nil
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

func run() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	var psk [32]byte
	copy(psk[:], "libnetmesh demo pre-shared key!!")
	node, err := mesh.NewNode(mesh.Config{Bind: "127.0.0.1:0", PSK: psk})
	if err != nil {
		return err
	}
	defer node.Close()
	fmt.Printf("node %#016x listening on %s\n", node.NodeID(), node.Addr())

	rt := compute.NewRuntime(node)
	if err := rt.RegisterFactory("counter", func() (compute.Daemon, error) { return &counter{}, nil }); err != nil {
		return err
	}
	if err := rt.Start(ctx); err != nil {
		return err
	}
	defer rt.Shutdown(context.Background())

	id, err := identity.Generate()
	if err != nil {
		return err
	}
	h, err := rt.Spawn(ctx, "counter", id, compute.DaemonConfig{})
	if err != nil {
		return err
	}
	fmt.Printf("spawned counter daemon origin=%#016x\n", h.OriginHash())

	feed := func(from, to uint64) error {
		for seq := from; seq <= to; seq++ {
			outs, err := rt.Deliver(h.OriginHash(), causal.Event{
				Link:    causal.Link{Origin: 0xfeed, Sequence: seq},
				Payload: []byte("tick"),
			})
			if err != nil {
				return err
			}
			for _, o := range outs {
				fmt.Printf("  event %d -> count=%d (chain seq %d, parent %#016x)\n",
					seq, binary.LittleEndian.Uint64(o.Payload), o.Link.Sequence, o.Link.Parent)
			}
		}
		return nil
	}
	if err := feed(1, 5); err != nil {
		return err
	}

	snap, err := rt.Snapshot(ctx, h.OriginHash())
	if err != nil {
		return err
	}
	raw := snap.Encode()
	st, _ := h.Stats()
	fmt.Printf("snapshot: through_seq=%d, %d bytes CDS1; stats processed=%d emitted=%d snapshots=%d\n",
		snap.ThroughSeq, len(raw), st.EventsProcessed, st.EventsEmitted, st.SnapshotsTaken)

	if err := rt.Stop(ctx, h.OriginHash()); err != nil {
		return err
	}
	_, err = rt.Deliver(h.OriginHash(), causal.Event{Payload: []byte("lost?")})
	fmt.Printf("stopped; deliver now fails with kind %q (%v), daemons=%d\n", compute.Kind(err), err, rt.DaemonCount())

	decoded, err := causal.DecodeSnapshot(raw)
	if err != nil {
		return err
	}
	h, err = rt.SpawnFromSnapshot(ctx, "counter", id, decoded, compute.DaemonConfig{})
	if err != nil {
		return err
	}
	fmt.Printf("restored from snapshot; daemons=%d\n", rt.DaemonCount())
	if err := feed(6, 8); err != nil {
		return err
	}
	return migrate(ctx, node, rt, psk, h.OriginHash(), feed)
}

// migrate brings up node B, connects A to it, and moves the counter A → B
// while events keep being delivered; then it feeds B directly.
func migrate(ctx context.Context, a *mesh.Node, rtA *compute.Runtime, psk [32]byte, origin uint64, feedA func(from, to uint64) error) error {
	b, err := mesh.NewNode(mesh.Config{Bind: "127.0.0.1:0", PSK: psk})
	if err != nil {
		return err
	}
	defer b.Close()
	rtB := compute.NewRuntime(b)
	if err := rtB.RegisterFactory("counter", func() (compute.Daemon, error) { return &counter{}, nil }); err != nil {
		return err
	}
	sink := make(chan uint64, 1024)
	rtB.SetOutputSink(func(_ uint64, outs []causal.Event) {
		for _, o := range outs {
			sink <- binary.LittleEndian.Uint64(o.Payload)
		}
	})
	if err := rtB.Start(ctx); err != nil {
		return err
	}
	defer rtB.Shutdown(context.Background())
	// B receives the daemon's identity inside the snapshot's sealed envelope.
	if err := rtB.ExpectMigration("counter", origin, compute.DaemonConfig{}); err != nil {
		return err
	}
	engA := migration.Attach(rtA, a)
	migration.Attach(rtB, b)

	b.Accept(a.NodeID())
	if err := a.Connect(ctx, b.Addr(), b.StaticPublicKey(), b.NodeID()); err != nil {
		return err
	}
	fmt.Printf("\nnode %#016x listening on %s; encrypted session A<->B up\n", b.NodeID(), b.Addr())

	opts := migration.DefaultOpts()
	var mu sync.Mutex // progress may be pushed from different pool goroutines
	last := migration.Phase(255)
	opts.Progress = func(p migration.Progress) {
		mu.Lock()
		defer mu.Unlock()
		if p.Phase != last {
			last = p.Phase
			fmt.Printf("  migration phase %-8s (%d/%d bytes, %d/%d chunks)\n",
				p.Phase, p.BytesMoved, p.TotalBytes, p.ChunksMoved, p.TotalChunks)
		}
	}
	m, err := engA.StartMigrationWith(ctx, origin, a.NodeID(), b.NodeID(), opts)
	if err != nil {
		return err
	}
	// Keep delivering to A while the daemon moves: A queues what arrives during
	// the move and B replays it; once A has cut over it answers daemon-moved.
	queued := 0
	for seq := uint64(9); ; seq++ {
		outs, err := rtA.Deliver(origin, causal.Event{Link: causal.Link{Origin: 0xfeed, Sequence: seq}, Payload: []byte("tick")})
		var moved *compute.MovedError
		if errors.As(err, &moved) {
			fmt.Printf("  deliver on A now fails: daemon-moved to node %#016x\n", moved.Node)
			break
		}
		if err != nil {
			return err
		}
		if len(outs) == 0 {
			queued++
		}
		time.Sleep(200 * time.Microsecond)
	}
	if err := m.Wait(ctx); err != nil {
		return err
	}
	fmt.Printf("migration complete; %d events delivered to A during the move were replayed on B\n", queued)
	var replayed uint64
	for len(sink) > 0 {
		replayed = <-sink
	}
	fmt.Printf("daemons: A=%d B=%d; B's count after replay = %d\n", rtA.DaemonCount(), rtB.DaemonCount(), replayed)
	for seq := uint64(1000); seq < 1003; seq++ {
		outs, err := rtB.Deliver(origin, causal.Event{Link: causal.Link{Origin: 0xfeed, Sequence: seq}, Payload: []byte("tick")})
		if err != nil {
			return err
		}
		for _, o := range outs {
			fmt.Printf("  on B: count=%d (chain seq %d)\n", binary.LittleEndian.Uint64(o.Payload), o.Link.Sequence)
		}
	}
	return nil
}
