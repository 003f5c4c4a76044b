package compute

import (
	"encoding/binary"
	"sync"
	"testing"

	"github.com/netmesh/libnetmesh/core/identity"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The lock-free host lookup (registry.last) never answers with a host the
// registry no longer holds: stop, re-spawn under the same origin, a host
// removed after it moved away and a host of another origin are all seen at
// once by the next delivery.
func TestRegistryCacheFollowsChanges(t *testing.T) {
	rt, _, _ := readyRuntime(t)
	kp := newKeypair(t)
	o := kp.OriginHash()

	_, err := rt.SpawnWithDaemon(bg, kp, DaemonConfig{}, &counterDaemon{}, func() (Daemon, error) { return &counterDaemon{}, nil })
	require.NoError(t, err)
	for i := range 3 {
		outs, err := rt.Deliver(o, inputEvent(1, uint64(i+1), nil))
		require.NoError(t, err)
		assert.Equal(t, uint64(i+1), binary.LittleEndian.Uint64(outs[0].Payload))
	}

	// Stopped: not found, although it was the last host looked up.
	require.NoError(t, rt.Stop(bg, o))
	_, err = rt.Deliver(o, inputEvent(1, 4, nil))
	assert.ErrorIs(t, err, ErrDaemonNotFound)

	// Spawned again under the same origin: the new host (count from 1).
	_, err = rt.SpawnWithDaemon(bg, kp, DaemonConfig{}, &counterDaemon{}, func() (Daemon, error) { return &counterDaemon{}, nil })
	require.NoError(t, err)
	outs, err := rt.Deliver(o, inputEvent(1, 5, nil))
	require.NoError(t, err)
	assert.Equal(t, uint64(1), binary.LittleEndian.Uint64(outs[0].Payload))

	// Another origin in between, then back: each delivery reaches its own.
	kp2 := newKeypair(t)
	_, err = rt.SpawnWithDaemon(bg, kp2, DaemonConfig{}, &counterDaemon{n: 100}, func() (Daemon, error) { return &counterDaemon{}, nil })
	require.NoError(t, err)
	outs, err = rt.Deliver(kp2.OriginHash(), inputEvent(1, 6, nil))
	require.NoError(t, err)
	assert.Equal(t, uint64(101), binary.LittleEndian.Uint64(outs[0].Payload))
	outs, err = rt.Deliver(o, inputEvent(1, 7, nil))
	require.NoError(t, err)
	assert.Equal(t, uint64(2), binary.LittleEndian.Uint64(outs[0].Payload))

	// Moved away and removed without a close: the tombstone answers.
	h, ok := rt.LookupHost(o)
	require.True(t, ok)
	require.NoError(t, h.BeginBuffering())
	_, err = h.Cutover(77)
	require.NoError(t, err)
	require.True(t, rt.RemoveHost(h))
	_, err = rt.Deliver(o, inputEvent(1, 8, nil))
	var moved *MovedError
	require.ErrorAs(t, err, &moved)
	assert.Equal(t, uint64(77), moved.Node)
}

// Concurrent deliveries to two daemons (the cache flips between them) while
// a third origin is stopped and spawned again: every delivery reaches the
// host registered for its origin.
func TestRegistryCacheConcurrent(t *testing.T) {
	rt, _, _ := readyRuntime(t)
	kps := []*identity.Keypair{newKeypair(t), newKeypair(t)}
	for i, kp := range kps {
		_, err := rt.SpawnWithDaemon(bg, kp, DaemonConfig{}, &counterDaemon{n: uint64(i) << 32}, func() (Daemon, error) { return &counterDaemon{}, nil })
		require.NoError(t, err)
	}
	churn := newKeypair(t)
	var wg sync.WaitGroup
	for i, kp := range kps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := range 2000 {
				outs, err := rt.Deliver(kp.OriginHash(), inputEvent(1, uint64(n+1), nil))
				if !assert.NoError(t, err) {
					return
				}
				v := binary.LittleEndian.Uint64(outs[0].Payload)
				if !assert.Equal(t, uint64(i)<<32|uint64(n+1), v) {
					return
				}
			}
		}()
	}
	for range 200 {
		_, err := rt.SpawnWithDaemon(bg, churn, DaemonConfig{}, &counterDaemon{}, func() (Daemon, error) { return &counterDaemon{}, nil })
		require.NoError(t, err)
		outs, err := rt.Deliver(churn.OriginHash(), inputEvent(1, 1, nil))
		require.NoError(t, err)
		assert.Equal(t, uint64(1), binary.LittleEndian.Uint64(outs[0].Payload))
		require.NoError(t, rt.Stop(bg, churn.OriginHash()))
	}
	wg.Wait()
}

// A lookup that read the map before a change and publishes its host after
// it (last stored late, with the generation it saw) must not be served.
func TestRegistryCacheLateStore(t *testing.T) {
	rt, _, _ := readyRuntime(t)
	kp := newKeypair(t)
	o := kp.OriginHash()
	_, err := rt.SpawnWithDaemon(bg, kp, DaemonConfig{}, &counterDaemon{}, func() (Daemon, error) { return &counterDaemon{}, nil })
	require.NoError(t, err)
	old := rt.reg.host(o)
	require.NotNil(t, old)
	seen := old.seen.Load()

	require.True(t, rt.RemoveHost(old)) // unregistered, not closed
	_, err = rt.SpawnWithDaemon(bg, newKeypair(t), DaemonConfig{}, &counterDaemon{}, func() (Daemon, error) { return &counterDaemon{}, nil })
	require.NoError(t, err)
	old.seen.Store(seen) // the late lookup's stores
	rt.reg.last.Store(old)

	_, err = rt.Deliver(o, inputEvent(1, 1, nil))
	assert.ErrorIs(t, err, ErrDaemonNotFound)
	assert.Nil(t, rt.reg.host(o))
}
