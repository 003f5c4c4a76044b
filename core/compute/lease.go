package compute

import (
	"fmt"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/netmesh/libnetmesh/core/causal"
)

// Host-driven delivery: a host language calls its daemon itself instead of
// being called back. DeliverBegin does everything Deliver does before the
// daemon's Process and returns with the host locked under a lease; the host
// runs its daemon, then DeliverCommit (the outputs) or DeliverAbort (a
// failure) does the rest and releases the lease.
//
// Concurrency: a lease IS the host's mutex, held from DeliverBegin until
// DeliverCommit/DeliverAbort, possibly released from another goroutine (Go
// mutexes allow it). Everything else that touches the host waits for it as it
// waits for a running Process. Tickets are unique for the process's lifetime.
// The live ticket sits on its host (leaseState.live); the commit or abort
// that swaps it to 0 owns the lease, so of concurrent or repeated ends
// exactly one wins, and a stale, reused, foreign or forged ticket matches no
// host and changes nothing. A commit finds the host through the registry's
// lock-free lookup. A host that leaves its registry (stopped, unregistered,
// shut down) while leased is entered in the orphans table by ticket, so its
// lease still ends (also without its runtime: AbortOrphanLease).

// Lease is a granted delivery: the ticket to commit or abort, and the daemon
// the host is to run. Ticket 0 means the event was queued (the host is
// migrating): nothing to run, nothing to commit.
type Lease struct {
	Ticket uint64
	Daemon Daemon
	// Word is the daemon's LeaseWord (0 if it is no LeaseWorder), read
	// once when its host was made.
	Word uint64
}

// LeaseWorder is optionally implemented by a Daemon run through leases: its
// LeaseWord (constant for the daemon's life) comes back in every Lease of
// its host, so the caller need not touch the daemon object per delivery
// (e.g. the C ABI's daemon user_data).
type LeaseWorder interface{ LeaseWord() uint64 }

// leaseState is the live lease of a host (its hot words; the host's
// leaseGone and leaseEv belong to it too).
//
// leaseGone is set once the host left a registry (sticky): from then on a
// live lease is also entered in orphans.
type leaseState struct {
	// live is the live lease's ticket (0: none): stored by DeliverBeginBy
	// under mu, swapped back to 0 by the one end that wins (takeLease).
	live atomic.Uint64
	// by is the runtime that granted the live lease (written under mu
	// before live, so it is stable while live holds the ticket).
	by atomic.Pointer[Runtime]
	// holder is the caller-chosen id of the thread that began the live
	// lease (0: not given), meaningful only while live is nonzero. It is
	// written, before live, by DeliverBeginBy under mu only when it
	// changes (a thread delivering again stores nothing), and read without
	// mu after live: only the holding thread can find its own id there
	// while a lease is live, so a stale read never refuses anyone else.
	holder atomic.Uint64
	// next (under mu) is the next ticket of the host's current block
	// (0: take a new block).
	next uint64
}

// Tickets are handed out in blocks of ticketBlock: a host takes a block
// from leaseSeq (one shared atomic add per ticketBlock leases) and hands
// out its tickets in order. Blocks are disjoint and block 0 is never
// taken, so a ticket is never 0 and never issued twice in the process.
const ticketBlock = 1 << 10

// nextTicketLocked issues the host's next ticket (under mu).
func (h *DaemonHost) nextTicketLocked() uint64 {
	t := h.ls.next
	if t == 0 {
		t = leaseSeq.Add(1) * ticketBlock
	}
	h.ls.next = t + 1
	if h.ls.next%ticketBlock == 0 {
		h.ls.next = 0
	}
	return t
}

// endLeaseLocked resets what the lease holder kept (under mu, once live is 0).
func (h *DaemonHost) endLeaseLocked() {
	if h.leaseEvSet {
		h.leaseEvSet, h.leaseEv = false, causal.Event{} // the input's copy is not kept alive
	}
}

// abortLeaseLocked ends a taken lease of either kind as a failed process
// (nothing observed or appended, one error counted) and unlocks: every
// abort ends here (single, batch, a bad batch commit, an orphan's).
func (h *DaemonHost) abortLeaseLocked() {
	h.endLeaseLocked()
	if h.batch != nil {
		h.batch.evs = nil // a batch's copies for its observers
	}
	h.stats.errors.Add(1)
	h.unlock()
}

type leaseRef struct {
	rt *Runtime
	h  *DaemonHost
}

var (
	leaseSeq atomic.Uint64 // last ticket block taken
	// orphans maps the live tickets of hosts that left their registry to
	// the host and the runtime that granted the lease. An entry exists only
	// while its ticket is live: it is added under the lock only if the
	// host's live still holds it, and whoever ends such a lease removes it.
	orphans struct {
		sync.Mutex
		m map[uint64]leaseRef
	}
)

// orphanLease enters h's lease t in orphans if t is still live.
func orphanLease(h *DaemonHost, t uint64) {
	orphans.Lock()
	if h.ls.live.Load() == t {
		if orphans.m == nil {
			orphans.m = make(map[uint64]leaseRef)
		}
		orphans.m[t] = leaseRef{rt: h.ls.by.Load(), h: h}
	}
	orphans.Unlock()
}

// leaving is called by a registry before h leaves it (the lookup may still
// find h until then). With DeliverBeginBy's store of live before its load
// of leaseGone, at least one of the two sees the other: a lease begun on a host
// that is leaving is always entered in orphans.
func (h *DaemonHost) leaving() {
	h.leaseGone.Store(true)
	if t := h.ls.live.Load(); t != 0 {
		orphanLease(h, t)
	}
}

func errSelfLease(origin uint64) error {
	return wrapErr(ErrInvalidArgument, fmt.Sprintf("a daemon cannot be delivered to (or snapshotted) by the thread "+
		"holding its own lease (origin %#018x, e.g. from inside its own process); it would wait for itself", origin), nil)
}

// LeaseHeldBy reports whether thread (nonzero, as given to DeliverBeginBy)
// holds the live lease of origin's host on r. Calls for origin from that
// thread would wait on themselves.
func (r *Runtime) LeaseHeldBy(origin, thread uint64) bool {
	h := r.reg.host(origin)
	return thread != 0 && h != nil && h.ls.live.Load() != 0 && h.ls.holder.Load() == thread
}

func errBadTicket(why string) error {
	return wrapErr(ErrInvalidArgument, "delivery ticket "+why, nil)
}

// DeliverBegin is the first half of Deliver. Needs Ready. It looks up the
// daemon, locks its host, runs check(daemon) (a non-nil error is returned as
// is, nothing changed), applies the phase gate — a buffering host queues ev
// and returns a zero Lease (nil error); a moved or stopped one refuses it —
// observes ev in the horizon and returns the lease with the host still
// locked. ev.Payload is borrowed for the call (copied when observers of
// origin are registered). The caller must end a granted lease with
// DeliverCommit or DeliverAbort, and must not call into the runtime for the
// same daemon from the same goroutine in between (it would wait on itself).
func (r *Runtime) DeliverBegin(origin uint64, ev causal.Event, check func(Daemon) error) (Lease, error) {
	return r.DeliverBeginBy(origin, ev, 0, check)
}

// DeliverBeginBy is DeliverBegin for a caller that names its thread: thread
// (nonzero: any id unique to the calling thread while it lives) is recorded
// in the lease, and a begin by a thread that already holds origin's lease is
// refused with ErrInvalidArgument instead of waiting on itself forever.
// thread 0 records nothing and checks nothing.
func (r *Runtime) DeliverBeginBy(origin uint64, ev causal.Event, thread uint64, check func(Daemon) error) (Lease, error) {
	return r.DeliverBeginByRef(origin, &ev, thread, check)
}

// DeliverBeginByRef is DeliverBeginBy with the event passed by pointer
// (read during the call, never retained): a caller that assembles the event
// field by field spares the 64-byte copy, which would read those fresh
// stores back in wider loads than they were written with (a store
// forwarding stall).
func (r *Runtime) DeliverBeginByRef(origin uint64, ev *causal.Event, thread uint64, check func(Daemon) error) (Lease, error) {
	if State(r.state.Load()) != StateReady {
		return Lease{}, r.requireReady()
	}
	h, err := r.lockForLease(origin, thread, check)
	if err != nil {
		return Lease{}, err
	}
	if h.closed.Load() || HostPhase(h.phase.Load()) != PhaseNormal {
		if queued, err := h.admitLocked(ev); err != nil || queued {
			h.unlock()
			return Lease{}, err
		}
	}
	h.observeLocked(ev.Link.Origin, ev.Link.Sequence)
	// The input is kept for the observers registered now; one registered
	// during the lease does not see this delivery (it began before).
	if m := r.obs.Load(); m != nil && len((*m)[origin]) > 0 {
		h.leaseEv = *ev
		h.leaseEv.Payload = slices.Clone(ev.Payload)
		h.leaseEvSet = true
	}
	t := h.grantLeaseLocked(r, thread, 0)
	return Lease{Ticket: t, Daemon: h.daemon, Word: h.leaseWord}, nil
}

// lockForLease is the first step of every begin (single or batch): find
// origin's host, refuse a begin by the thread already holding its lease
// (it would wait on itself), lock the host and run check on its daemon (a
// non-nil error is returned as is, the host unlocked again). On success the
// host is returned locked.
func (r *Runtime) lockForLease(origin, thread uint64, check func(Daemon) error) (*DaemonHost, error) {
	h := r.reg.cached(origin)
	if h == nil {
		if h = r.reg.hostSlow(origin); h == nil {
			return nil, r.missing(origin)
		}
	}
	if thread != 0 && h.ls.live.Load() != 0 && h.ls.holder.Load() == thread {
		return nil, errSelfLease(origin)
	}
	h.mu.Lock()
	if check != nil {
		if err := check(h.daemon); err != nil {
			h.unlock()
			return nil, err
		}
	}
	return h, nil
}

// grantLeaseLocked makes the host's next ticket (with bits or'ed in) its
// live lease, granted by r to thread, and returns it; mu stays locked.
func (h *DaemonHost) grantLeaseLocked(r *Runtime, thread, bits uint64) uint64 {
	t := h.nextTicketLocked() | bits
	if h.ls.by.Load() != r {
		h.ls.by.Store(r)
	}
	if h.ls.holder.Load() != thread {
		h.ls.holder.Store(thread)
	}
	h.ls.live.Store(t)
	if h.leaseGone.Load() {
		orphanLease(h, t)
	}
	return t
}

// takeLease claims the live lease ticket of origin's host on r: the swap
// of the host's live ticket to 0 decides, so of concurrent or repeated calls
// exactly one wins. Anything else is ErrInvalidArgument with nothing changed.
func (r *Runtime) takeLease(origin, ticket uint64) (*DaemonHost, error) {
	if ticket&batchTicketBit != 0 {
		return nil, errBadTicket("belongs to a batch (end it with the batch's commit or abort)")
	}
	return r.takeAnyLease(origin, ticket)
}

// takeAnyLease is takeLease for a ticket of either kind.
func (r *Runtime) takeAnyLease(origin, ticket uint64) (*DaemonHost, error) {
	if ticket == 0 {
		return nil, errBadTicket("is 0")
	}
	h := r.reg.cached(origin)
	if h == nil {
		h = r.reg.hostSlow(origin)
	}
	if h != nil && h.ls.live.Load() == ticket && h.ls.by.Load() == r {
		if !h.ls.live.CompareAndSwap(ticket, 0) {
			return nil, errNotLive // another end won
		}
		if h.leaseGone.Load() {
			orphans.Lock()
			delete(orphans.m, ticket)
			orphans.Unlock()
		}
		return h, nil
	}
	return r.takeOrphan(origin, ticket)
}

var errNotLive = errBadTicket("is not live (already committed or aborted, or never issued)")

// takeOrphan is takeLease for a host no longer in r's registry.
func (r *Runtime) takeOrphan(origin, ticket uint64) (*DaemonHost, error) {
	orphans.Lock()
	ref, ok := orphans.m[ticket]
	won := ok && ref.rt == r && ref.h.origin == origin && ref.h.ls.live.CompareAndSwap(ticket, 0)
	if won {
		delete(orphans.m, ticket)
	}
	orphans.Unlock()
	switch {
	case won:
		return ref.h, nil
	case !ok:
		return nil, errNotLive
	case ref.rt != r:
		return nil, errBadTicket("belongs to another runtime")
	case ref.h.origin != origin:
		return nil, errBadTicket("belongs to another daemon")
	}
	return nil, errNotLive
}

// DeliverCommit is the second half of Deliver: outs are the payloads the
// daemon returned for the leased event (borrowed for the call; the chain
// keeps no reference). It appends each to the chain, counts, takes the
// automatic snapshot if due, releases the lease and fires the observers,
// and appends the wrapped outputs to dst (Payload = outs[i] itself).
// A bad ticket is ErrInvalidArgument with nothing changed.
func (r *Runtime) DeliverCommit(dst []causal.Event, origin, ticket uint64, outs [][]byte) ([]causal.Event, error) {
	h, err := r.takeLease(origin, ticket)
	if err != nil {
		return dst, err
	}
	var ev causal.Event
	fire := h.leaseEvSet
	if fire {
		ev = h.leaseEv
		h.endLeaseLocked()
	}
	dst, err = h.commitLocked(dst, outs)
	if h.closed.Load() {
		h.unlock() // may run the Close hook
	} else {
		h.mu.Unlock() // unlock's common case without the call
	}
	if err == nil && fire {
		r.fireObserversOf(origin, &ev)
	}
	return dst, err
}

// DeliverAbort ends a lease whose Process failed in the host: the failure
// counts as an error of the daemon (as a failed Process does) and the lease
// is released. A bad ticket is ErrInvalidArgument with nothing changed.
func (r *Runtime) DeliverAbort(origin, ticket uint64) error {
	h, err := r.takeLease(origin, ticket)
	if err != nil {
		return err
	}
	h.abortLeaseLocked()
	return nil
}

// AbortOrphanLease ends lease ticket if its runtime is shutting down and
// its host has left the registry (Shutdown drops every host before it
// returns), without knowing the runtime: the C ABI calls it when a commit or
// abort comes with a runtime handle already freed (e.g. from inside the
// daemon's own code), so the host is not left locked and its Close hook
// still runs. The lease counts as a failed process. A live runtime's ticket
// is left alone (false).
func AbortOrphanLease(ticket uint64) bool {
	orphans.Lock()
	ref, ok := orphans.m[ticket]
	ok = ok && ref.rt.State() == StateShuttingDown && ref.h.ls.live.CompareAndSwap(ticket, 0)
	if ok {
		delete(orphans.m, ticket)
	}
	orphans.Unlock()
	if !ok {
		return false
	}
	ref.h.abortLeaseLocked()
	return true
}

// commitLocked is processVisitLocked after the daemon returned outs.
func (h *DaemonHost) commitLocked(dst []causal.Event, outs [][]byte) ([]causal.Event, error) {
	n := h.stats.processed.Add(1)
	if len(outs) > 0 {
		var err error
		if dst, err = h.appendOutputsLocked(dst, outs); err != nil {
			return dst, err
		}
	}
	if h.cfg.AutoSnapshotInterval > 0 {
		h.autoSnapshotLocked(n)
	}
	return dst, nil
}
