package main

import (
	"sync/atomic"
	"unsafe"

	pointer "github.com/mattn/go-pointer"
)

// kind tags every handle with the C type it was minted as.
type kind uint8

const (
	kindIdentity kind = iota + 1
	kindNode
	kindRuntime
	kindDaemon
	kindTask
	kindMigration
)

func (k kind) String() string {
	switch k {
	case kindIdentity:
		return "identity"
	case kindNode:
		return "node"
	case kindRuntime:
		return "runtime"
	case kindDaemon:
		return "daemon"
	case kindTask:
		return "task"
	case kindMigration:
		return "migration"
	}
	return "unknown"
}

// Handles.
//
// A handle is the address go-pointer mints (a unique 1-byte C allocation used
// as the key of its table) with a 16-bit generation in bits 48..63. The table
// entry records the kind and the generation. A handle is valid only while its
// entry exists AND both the kind and the generation match, so:
//   - NULL, never-minted and freed handles miss the table;
//   - a freed handle whose address malloc handed out again for a new handle
//     carries the old generation and is refused;
//   - a handle of another kind is refused.
// The C side never dereferences a handle. Residual risk, documented: an
// address reused exactly 65536·k mints later with the same kind would alias.
//
// release deletes the entry under go-pointer's lock, so of two concurrent
// frees exactly one gets the object; the other sees a missing entry.

const (
	genShift = 48
	genMask  = uintptr(0xffff) << genShift
)

type entry struct {
	kind   kind
	gen    uint16
	dead   atomic.Bool // set once by the release that wins
	obj    any
	handle unsafe.Pointer // the tagged handle minted for this entry
}

// recent caches, per kind, the entry of the last successful lookup: a host
// that keeps using one runtime skips go-pointer's locked map. A hit needs the
// same tagged handle and a live entry, so it accepts exactly what the table
// would (release marks the entry dead before removing it).
var recent [256]atomic.Pointer[entry] // indexed by kind (a uint8)

var genCounter atomic.Uint32

// mint stores obj and returns its tagged handle (never NULL).
func mint(k kind, obj any) unsafe.Pointer {
	g := uint16(genCounter.Add(1))
	if g == 0 {
		g = uint16(genCounter.Add(1))
	}
	e := &entry{kind: k, gen: g, obj: obj}
	key := pointer.Save(e)
	if uintptr(key)&genMask != 0 {
		// An address space wider than 48 bits: no room for the tag; kind
		// checks still hold.
		e.gen = 0
		e.handle = key
		return key
	}
	e.handle = unsafe.Add(key, uintptr(g)<<genShift)
	return e.handle
}

// split separates a tagged handle into its table key and generation.
func split(h unsafe.Pointer) (unsafe.Pointer, uint16) {
	g := uint16(uintptr(h) >> genShift)
	return unsafe.Add(h, -(uintptr(g) << genShift)), g
}

func find(h unsafe.Pointer, k kind) (*entry, unsafe.Pointer) {
	if h == nil {
		return nil, nil
	}
	key, g := split(h)
	e, _ := pointer.Restore(key).(*entry)
	if e == nil || e.kind != k || e.gen != g || e.dead.Load() {
		return nil, nil
	}
	return e, key
}

// lookup returns the object behind a live handle of kind k. The cache hit
// is checked here, the rest in lookupSlow.
func lookup(h unsafe.Pointer, k kind) (any, error) {
	if c := recent[k].Load(); c != nil && c.handle == h && h != nil && !c.dead.Load() {
		return c.obj, nil
	}
	return lookupSlow(h, k)
}

func lookupSlow(h unsafe.Pointer, k kind) (any, error) {
	e, _ := find(h, k)
	if e == nil {
		return nil, badHandle(h, k)
	}
	recent[k].Store(e)
	return e.obj, nil
}

// release removes a handle and returns its object; ok is false for NULL,
// stale, wrong-kind or already-released handles (a no-op then).
func release(h unsafe.Pointer, k kind) (any, bool) {
	e, key := find(h, k)
	if e == nil {
		return nil, false
	}
	// Two racing releases can both pass find; only the first to claim the
	// entry frees the key.
	if !e.dead.CompareAndSwap(false, true) {
		return nil, false
	}
	recent[k].CompareAndSwap(e, nil) // do not keep a released object alive
	if c := recentRT.Load(); c != nil && c.e == e {
		recentRT.CompareAndSwap(c, nil)
	}
	pointer.Unref(key)
	return e.obj, true
}

func badHandle(h unsafe.Pointer, k kind) error {
	if h == nil {
		return errf(statusBadHandle, "%s handle is NULL", k)
	}
	return errf(statusBadHandle, "invalid %s handle (freed, stale or of another kind)", k)
}
