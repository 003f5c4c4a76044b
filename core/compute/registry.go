package compute

import (
	"sync"
	"sync/atomic"

	"github.com/netmesh/libnetmesh/core/identity"
)

// FactoryEntry is the per-origin factory registration that lets this node
// (re)build a daemon by origin hash: on spawn, and as a migration target.
// Keypair is nil for a placeholder (ExpectMigration): the identity then
// arrives in the snapshot's envelope. Entries are immutable once registered.
type FactoryEntry struct {
	Kind    string
	Factory Factory
	Origin  uint64
	Keypair *identity.Keypair
	Config  DaemonConfig
}

// IsPlaceholder reports whether the entry has no keypair.
func (e *FactoryEntry) IsPlaceholder() bool { return e.Keypair == nil }

// registry maps origin hashes (the full 64 bits; colliding low halves are
// distinct keys) to live hosts, to factory entries, and to the node a daemon
// moved to after it left (a tombstone answering daemon-moved). Removals
// take the exact pointer they expect, so a rollback never drops an entry
// somebody else registered for the same origin. A host is told it is
// leaving (DaemonHost.leaving, for its lease) before it leaves hosts.
//
// Host lookups are served without the lock when they hit last, the host of
// the latest locked lookup: gen changes (under mu) with every change of the
// hosts map, and a host's seen holds a gen at which it was the map's entry
// for its origin. While gen still equals that value nothing changed since,
// so the host still is the entry. A stale seen only causes a miss.
//
// It lives inside its Runtime, right after the runtime's state: a delivery
// reads state, gen and last from one cache line.
type registry struct {
	gen       atomic.Uint64 // from regGen, bumped under mu when hosts changes
	last      atomic.Pointer[DaemonHost]
	hosts     map[uint64]*DaemonHost
	factories map[uint64]*FactoryEntry
	moved     map[uint64]uint64
	mu        sync.RWMutex
}

// regGen hands out registry generations, unique across registries: a seen
// value one registry stored can never match another registry's gen.
var regGen atomic.Uint64

// changedLocked marks a change of the hosts map. Callers hold mu.
func (r *registry) changedLocked() {
	r.gen.Store(regGen.Add(1))
	r.last.Store(nil) // do not keep a removed host alive
}

// init prepares a zero registry.
func (r *registry) init() {
	r.hosts = make(map[uint64]*DaemonHost)
	r.factories = make(map[uint64]*FactoryEntry)
	r.moved = make(map[uint64]uint64)
	r.gen.Store(regGen.Add(1))
}

// host is origin's live host, nil if none.
func (r *registry) host(origin uint64) *DaemonHost {
	if h := r.cached(origin); h != nil {
		return h
	}
	return r.hostSlow(origin)
}

// cached is host's lock-free hit (nil on a miss); small enough to inline
// into the delivery path, which then calls hostSlow itself.
func (r *registry) cached(origin uint64) *DaemonHost {
	if h := r.last.Load(); h != nil && h.origin == origin && h.seen.Load() == r.gen.Load() {
		return h
	}
	return nil
}

func (r *registry) hostSlow(origin uint64) *DaemonHost {
	r.mu.RLock()
	h := r.hosts[origin]
	g := r.gen.Load()
	r.mu.RUnlock()
	if h != nil {
		if h.seen.Load() != g {
			h.seen.Store(g)
		}
		if r.last.Load() != h {
			r.last.Store(h)
		}
	}
	return h
}

// movedTo returns the tombstone for origin.
func (r *registry) movedTo(origin uint64) (uint64, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	n, ok := r.moved[origin]
	return n, ok
}

func (r *registry) count() int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return len(r.hosts)
}

// inUse reports whether origin has a host or a factory entry.
func (r *registry) inUse(origin uint64) bool {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.hosts[origin] != nil || r.factories[origin] != nil
}

// insertHost adds h unless its origin already has a host.
func (r *registry) insertHost(h *DaemonHost) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.hosts[h.origin] != nil {
		return false
	}
	r.hosts[h.origin] = h
	r.changedLocked()
	delete(r.moved, h.origin)
	return true
}

// removeHost removes h if it is still the host for its origin. A host that
// moved away leaves a tombstone naming its new node.
func (r *registry) removeHost(h *DaemonHost) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.hosts[h.origin] != h {
		return false
	}
	h.leaving()
	delete(r.hosts, h.origin)
	r.changedLocked()
	if node, ok := h.MovedTo(); ok {
		r.moved[h.origin] = node
	}
	return true
}

func (r *registry) factory(origin uint64) *FactoryEntry {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.factories[origin]
}

// insertFactory adds e unless its origin already has an entry.
func (r *registry) insertFactory(e *FactoryEntry) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.factories[e.Origin] != nil {
		return false
	}
	r.factories[e.Origin] = e
	return true
}

// removeFactory removes e if it is still the entry for its origin.
func (r *registry) removeFactory(e *FactoryEntry) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.factories[e.Origin] != e {
		return false
	}
	delete(r.factories, e.Origin)
	return true
}

// removeOrigin removes origin's host and factory entry. The caller closes
// the host, after the registry lock is released: a daemon's Close hook (a
// host language's finalizer) may call back into the runtime.
func (r *registry) removeOrigin(origin uint64) (*DaemonHost, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	h := r.hosts[origin]
	if h == nil {
		return nil, false
	}
	h.leaving()
	delete(r.hosts, origin)
	r.changedLocked()
	delete(r.factories, origin)
	return h, true
}

// clear drops every host, entry and tombstone and returns the hosts, for
// the caller to close once the lock is released (see removeOrigin).
func (r *registry) clear() []*DaemonHost {
	r.mu.Lock()
	defer r.mu.Unlock()
	hs := make([]*DaemonHost, 0, len(r.hosts))
	for _, h := range r.hosts {
		h.leaving()
		hs = append(hs, h)
	}
	clear(r.hosts)
	r.changedLocked()
	clear(r.factories)
	clear(r.moved)
	return hs
}
