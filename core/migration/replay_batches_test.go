package migration

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/netmesh/libnetmesh/core/causal"
	"github.com/netmesh/libnetmesh/core/compute"
	"github.com/netmesh/libnetmesh/core/mesh/memnet"
	"github.com/netmesh/libnetmesh/core/mesh/wire"
)

// tally counts the events it processes and the payload bytes it saw; its
// Restore waits for gate (closed by the test once the source has queued).
type tally struct {
	n, bytes uint64
	gate     <-chan struct{}
}

func (d *tally) Name() string           { return "tally" }
func (d *tally) Requirements() []string { return nil }
func (d *tally) Process(ev causal.Event) ([][]byte, error) {
	d.n++
	d.bytes += uint64(len(ev.Payload))
	return nil, nil
}
func (d *tally) Snapshot() ([]byte, error) {
	return binary.LittleEndian.AppendUint64(binary.LittleEndian.AppendUint64(nil, d.n), d.bytes), nil
}
func (d *tally) Restore(b []byte) error {
	if d.gate != nil {
		<-d.gate
	}
	if len(b) != 16 {
		return errors.New("tally: bad state")
	}
	d.n, d.bytes = binary.LittleEndian.Uint64(b), binary.LittleEndian.Uint64(b[8:])
	return nil
}

// queuedReplay migrates a tally daemon from a to b while its restore on b
// is held back, delivering count events of size bytes to a meanwhile (all
// alike when same, as a binding feeding one buffer does); then every one
// of them must have been processed on b exactly once.
func queuedReplay(t *testing.T, a, b *tnode, count, size int, same bool) {
	t.Helper()
	gate := make(chan struct{})
	kind := fmt.Sprintf("tally-%d-%d-%v", count, size, same)
	require.NoError(t, a.rt.RegisterFactory(kind, func() (compute.Daemon, error) { return &tally{}, nil }))
	require.NoError(t, b.rt.RegisterFactory(kind, func() (compute.Daemon, error) { return &tally{gate: gate}, nil }))
	kp := spawn(t, a, kind)
	o := kp.OriginHash()
	require.NoError(t, b.rt.ExpectMigration(kind, o, compute.DaemonConfig{}))
	h, err := a.eng.StartMigration(ctx10(t), o, a.id, b.id)
	require.NoError(t, err)
	payload := make([]byte, size)
	for i := range count {
		e := causal.Event{Link: causal.Link{Origin: 0xfeed, Sequence: 1}, Payload: payload, ReceivedAt: 1}
		if !same {
			e.Link.Sequence, e.ReceivedAt = uint64(i+1), uint64(i+1)
		}
		_, err := a.rt.Deliver(o, e)
		require.NoError(t, err, "event %d queued on the source", i)
	}
	close(gate)
	require.NoError(t, h.Wait(ctx10(t)), "phase %v", h.Progress().Phase)
	s, err := b.rt.Snapshot(context.Background(), o)
	require.NoError(t, err)
	assert.Equal(t, uint64(count), binary.LittleEndian.Uint64(s.State), "events replayed on the target")
	assert.Equal(t, uint64(count*size), binary.LittleEndian.Uint64(s.State[8:]), "payload bytes replayed")
	noRecords(t, a, b)
}

var replayCases = []struct{ count, size int }{
	{1, 0}, {1, 7000}, {200, 0}, {200, 64}, {1000, 0}, {1000, 64}, {300, 1000}, {100, 7000}, {5000, 64},
}

// Events queued on the source while the target restores slowly are all
// replayed, however many batches they take, alike or not (a batch equal to
// an earlier one is not a duplicate). Loopback UDP.
func TestQueuedEventsReplayAcrossBatches(t *testing.T) {
	a, b := pair(t)
	for _, c := range replayCases {
		for _, same := range []bool{true, false} {
			t.Run(fmt.Sprintf("%dx%dB/same=%v", c.count, c.size, same), func(t *testing.T) {
				queuedReplay(t, a, b, c.count, c.size, same)
			})
		}
	}
}

// The same on memnet.
func TestQueuedEventsReplayAcrossBatchesMemnet(t *testing.T) {
	a, b := memPair(t, memnet.New(7))
	for _, c := range replayCases {
		t.Run(fmt.Sprintf("%dx%dB", c.count, c.size), func(t *testing.T) {
			queuedReplay(t, a, b, c.count, c.size, true)
		})
	}
}

// Every batch fits one mesh subprotocol payload, whatever the mix of event
// sizes, keeps the events in order, and no two batches share an id.
func TestBatchesFitOnePacket(t *testing.T) {
	limit := wire.MaxPayload - wire.EventPrefixSize
	for _, sizes := range [][]int{{0}, {64}, {1000}, {7000}, {7000, 0, 6999, 1, 3500, 3500, 64}} {
		var evs []causal.Event
		for i := range 3000 {
			evs = append(evs, causal.Event{Link: causal.Link{Sequence: uint64(i)}, Payload: make([]byte, sizes[i%len(sizes)])})
		}
		seen := map[uint64]bool{}
		next := uint64(0)
		for _, b := range batches(1, evs) {
			require.LessOrEqual(t, b.EncodedLen(), limit)
			require.NotZero(t, b.Batch)
			require.False(t, seen[b.Batch])
			seen[b.Batch] = true
			for _, e := range b.Events {
				require.Equal(t, next, e.Link.Sequence)
				next++
			}
		}
		require.Equal(t, uint64(len(evs)), next)
	}
}
