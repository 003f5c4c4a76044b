package compute

import (
	"slices"

	"github.com/netmesh/libnetmesh/core/causal"
)

// Batched host-driven delivery: one lease for many events to one daemon.
// DeliverBatchBegin checks and leases the host once for n events; the host
// runs its daemon on them in order; DeliverBatchCommit then does, for each
// event done and in order, exactly what a single lease's begin and commit
// do (observe the event in the horizon, append its outputs, count), so the
// chain, horizon, stats and outputs equal those of n single deliveries.
//
// What differs from n single deliveries, by design:
//   - A batch is only granted in the Normal phase. A buffering (migrating)
//     host would queue the events instead: the batch is refused with
//     ErrBatchRefused and nothing changes; the caller delivers one by one
//     (that path queues correctly).
//   - The automatic snapshot (AutoSnapshotInterval) is taken at most once,
//     at the end of the batch, if the processed count crossed a multiple of
//     the interval during it: a snapshot taken in the middle would hold
//     the daemon's state after later events (the host ran them all first).
//   - Observers fire for each event done, in order, after the lease ended
//     (single deliveries fire between events).
//
// Batch tickets carry batchTicketBit: single commits and aborts refuse them
// and batch ends refuse single tickets, so a lease always ends the way it
// began. Everything else (liveness, self-lease check, orphans, a freed
// runtime's AbortOrphanLease) is the single lease's machinery.

// batchTicketBit marks a batch lease's ticket (single tickets never reach it:
// they come from blocks of ticketBlock counted from 1).
const batchTicketBit = 1 << 63

// batchState is what a host keeps of a live batch lease (under mu, by the
// lease holder): the events' links, observed at commit, and their copies
// for the observers registered at begin.
type batchState struct {
	links []causal.Link
	evs   []causal.Event // nil unless observers were registered at begin
}

// DeliverBatchBegin leases the daemon at origin for evs (borrowed for the
// call: links are copied, payloads only when observers of origin are
// registered). Needs Ready. Checks as DeliverBeginBy (thread, check); then a
// closed host gives its not-found (or moved) error, a moved one *MovedError,
// a buffering one ErrBatchRefused — all with nothing changed. Nothing is
// observed yet: each event is observed by the commit, in order. An empty
// evs is ErrInvalidArgument. The caller must end a granted lease with
// DeliverBatchCommit or DeliverBatchAbort.
func (r *Runtime) DeliverBatchBegin(origin uint64, evs []causal.Event, thread uint64, check func(Daemon) error) (Lease, error) {
	if State(r.state.Load()) != StateReady {
		return Lease{}, r.requireReady()
	}
	if len(evs) == 0 {
		return Lease{}, wrapErr(ErrInvalidArgument, "empty batch", nil)
	}
	h, err := r.lockForLease(origin, thread, check)
	if err != nil {
		return Lease{}, err
	}
	if err := h.batchGateLocked(); err != nil {
		h.unlock()
		return Lease{}, err
	}
	b := h.batch
	if b == nil {
		b = &batchState{}
		h.batch = b
	}
	b.links = slices.Grow(b.links[:0], len(evs))
	for i := range evs {
		b.links = append(b.links, evs[i].Link)
	}
	if cap(b.links) > 4096 && len(evs) < cap(b.links)/4 {
		b.links = slices.Clip(b.links) // do not keep a huge batch's buffer forever
	}
	b.evs = nil
	if m := r.obs.Load(); m != nil && len((*m)[origin]) > 0 {
		b.evs = make([]causal.Event, len(evs))
		for i := range evs {
			b.evs[i] = evs[i]
			b.evs[i].Payload = slices.Clone(evs[i].Payload)
		}
	}
	t := h.grantLeaseLocked(r, thread, batchTicketBit)
	return Lease{Ticket: t, Daemon: h.daemon, Word: h.leaseWord}, nil
}

// batchGateLocked is a batch's phase gate: only a Normal, open host leases
// a batch.
func (h *DaemonHost) batchGateLocked() error {
	if h.closed.Load() {
		return h.notFound()
	}
	switch HostPhase(h.phase.Load()) {
	case PhaseNormal:
		return nil
	case PhaseMoved:
		return &MovedError{Node: h.movedTo.Load()}
	}
	return wrapErr(ErrBatchRefused, originStr(h.origin), nil)
}

// DeliverBatchCommit ends batch lease ticket: the host ran the daemon on the
// first len(ends) events of the batch, in order; event i's outputs are
// outs[ends[i-1]:ends[i]] (ends[-1] = 0; borrowed for the call). For each of
// them, in order, the event is observed in the horizon, its outputs are
// appended to the chain and counted — as a single lease's begin and commit
// would — and the wrapped outputs are appended to dst (Payload = the outs
// element itself). failed reports that the daemon failed on the next event
// (index len(ends)): it is observed and counted as an error, as an aborted
// single lease. Then the automatic snapshot if due (see above), the release
// of the lease, and the observers for each event done.
//
// A bad ticket is ErrInvalidArgument with nothing changed. ends that do not
// fit the batch (more events than leased, a failed event beyond the last,
// decreasing, or not ending at len(outs)) end the lease as
// DeliverBatchAbort does and give ErrInvalidArgument: nothing appended.
func (r *Runtime) DeliverBatchCommit(dst []causal.Event, origin, ticket uint64, outs [][]byte, ends []int, failed bool) ([]causal.Event, error) {
	h, err := r.takeBatchLease(origin, ticket)
	if err != nil {
		return dst, err
	}
	b := h.batch
	if err := checkEnds(ends, len(outs), len(b.links), failed); err != nil {
		h.abortLeaseLocked()
		return dst, err
	}
	p0 := h.stats.processed.Load()
	start := 0
	var cerr error
	done := 0
	for i, end := range ends {
		l := &b.links[i]
		h.observeLocked(l.Origin, l.Sequence)
		h.stats.processed.Add(1)
		if end > start {
			if dst, cerr = h.appendOutputsLocked(dst, outs[start:end]); cerr != nil {
				done = i + 1 // processed, as a single commit whose chain append failed
				break
			}
		}
		start = end
		done = i + 1
	}
	if cerr == nil && failed {
		l := &b.links[len(ends)]
		h.observeLocked(l.Origin, l.Sequence)
		h.stats.errors.Add(1)
	}
	if iv := h.cfg.AutoSnapshotInterval; iv > 0 {
		if p1 := h.stats.processed.Load(); p1/iv != p0/iv {
			h.autoSnapshotLocked(p1 / iv * iv)
		}
	}
	evs := b.evs
	b.evs = nil
	h.endLeaseLocked()
	h.unlock()
	if evs != nil {
		for i := range evs[:done] {
			r.fireObserversOf(origin, &evs[i])
		}
	}
	return dst, cerr
}

// checkEnds validates a commit's per-event output ends against a batch of n.
func checkEnds(ends []int, nOuts, n int, failed bool) error {
	switch {
	case len(ends) > n:
		return wrapErr(ErrInvalidArgument, "batch commit: more events done than leased", nil)
	case failed && len(ends) == n:
		return wrapErr(ErrInvalidArgument, "batch commit: a failed event past the last one", nil)
	}
	prev := 0
	for _, e := range ends {
		if e < prev || e > nOuts {
			return wrapErr(ErrInvalidArgument, "batch commit: output ends out of order or range", nil)
		}
		prev = e
	}
	if prev != nOuts {
		return wrapErr(ErrInvalidArgument, "batch commit: outputs left over past the last event", nil)
	}
	return nil
}

// DeliverBatchAbort ends batch lease ticket when the host cannot report
// what it did (or did nothing): nothing is observed or appended, one error
// is counted (as a single abort), the lease is released. A bad ticket is
// ErrInvalidArgument with nothing changed.
func (r *Runtime) DeliverBatchAbort(origin, ticket uint64) error {
	h, err := r.takeBatchLease(origin, ticket)
	if err != nil {
		return err
	}
	h.abortLeaseLocked()
	return nil
}

// takeBatchLease is takeLease for batch tickets.
func (r *Runtime) takeBatchLease(origin, ticket uint64) (*DaemonHost, error) {
	if ticket&batchTicketBit == 0 {
		return nil, errBadTicket("is not a batch ticket")
	}
	return r.takeAnyLease(origin, ticket)
}
