package compute

import (
	"encoding/binary"
	"errors"
	"sync/atomic"
	"testing"

	"github.com/netmesh/libnetmesh/core/causal"
	"github.com/netmesh/libnetmesh/core/identity"
	"github.com/stretchr/testify/require"
)

// echoDaemon returns its input payload; stateless.
type echoDaemon struct{}

func (echoDaemon) Name() string                              { return "echo" }
func (echoDaemon) Requirements() []string                    { return nil }
func (echoDaemon) Process(ev causal.Event) ([][]byte, error) { return [][]byte{ev.Payload}, nil }
func (echoDaemon) Snapshot() ([]byte, error)                 { return nil, nil }
func (echoDaemon) Restore([]byte) error                      { return nil }

// counterDaemon counts events and emits the count (u64 LE); its state is
// the count.
type counterDaemon struct{ n uint64 }

func (*counterDaemon) Name() string           { return "counter" }
func (*counterDaemon) Requirements() []string { return []string{"cpu"} }
func (c *counterDaemon) Process(causal.Event) ([][]byte, error) {
	c.n++
	return [][]byte{binary.LittleEndian.AppendUint64(nil, c.n)}, nil
}
func (c *counterDaemon) Snapshot() ([]byte, error) {
	return binary.LittleEndian.AppendUint64(nil, c.n), nil
}
func (c *counterDaemon) Restore(state []byte) error {
	if len(state) != 8 {
		return errBadState
	}
	c.n = binary.LittleEndian.Uint64(state)
	return nil
}

var (
	errBadState = errors.New("counter: bad state")
	errUser     = errors.New("user: rejected")
)

// scriptDaemon runs fn for each event.
type scriptDaemon struct {
	fn      func(ev causal.Event) ([][]byte, error)
	restore func([]byte) error
}

func (*scriptDaemon) Name() string                                { return "script" }
func (*scriptDaemon) Requirements() []string                      { return nil }
func (s *scriptDaemon) Process(ev causal.Event) ([][]byte, error) { return s.fn(ev) }
func (*scriptDaemon) Snapshot() ([]byte, error)                   { return nil, nil }
func (s *scriptDaemon) Restore(b []byte) error {
	if s.restore != nil {
		return s.restore(b)
	}
	return nil
}

func counterValue(t *testing.T, ev causal.Event) uint64 {
	t.Helper()
	require.Len(t, ev.Payload, 8)
	return binary.LittleEndian.Uint64(ev.Payload)
}

func newKeypair(t testing.TB) *identity.Keypair {
	t.Helper()
	kp, err := identity.Generate()
	require.NoError(t, err)
	return kp
}

func inputEvent(origin, seq uint64, payload []byte) causal.Event {
	return causal.Event{Link: causal.Link{Origin: origin, Sequence: seq}, Payload: payload, ReceivedAt: 1}
}

// countingFactory counts its calls.
func countingFactory(calls *atomic.Int64, mk func() Daemon) Factory {
	return func() (Daemon, error) {
		calls.Add(1)
		return mk(), nil
	}
}
