package compute

import "github.com/netmesh/libnetmesh/core/causal"

// Daemon is user code run by a DaemonHost. The host serializes every call
// into one daemon (never two at once); different daemons run concurrently.
//
// Process returns the daemon's output payloads for ev, in order. ev.Payload
// is borrowed for the call: a daemon that keeps it must copy it. The
// returned payloads are owned by the runtime from then on (the last one
// stays referenced by the causal chain until the next output), so the
// daemon must not mutate them afterwards.
//
// Snapshot returns the daemon's state; nil, nil means stateless. Restore
// receives state from an earlier Snapshot (empty for a stateless daemon
// that migrated); it must accept what Snapshot produced.
type Daemon interface {
	Name() string
	// Requirements is a capability filter; empty means runs anywhere.
	Requirements() []string
	Process(ev causal.Event) ([][]byte, error)
	Snapshot() ([]byte, error)
	Restore(state []byte) error
}

// Factory builds a fresh daemon instance. It may be called again on a
// migration target, so it must be re-callable and safe for concurrent use.
type Factory func() (Daemon, error)

// DaemonConfig configures a daemon host.
type DaemonConfig struct {
	// AutoSnapshotInterval takes a snapshot every N processed events and keeps
	// it as the host's latest snapshot (DaemonHost.LatestSnapshot). 0 = off.
	AutoSnapshotInterval uint64
}

// Stats are a daemon's counters; all reset on restore.
type Stats struct {
	EventsProcessed uint64
	EventsEmitted   uint64
	Errors          uint64
	SnapshotsTaken  uint64
}
