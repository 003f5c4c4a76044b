package compute

import (
	"strconv"

	"github.com/netmesh/libnetmesh/core/causal"
)

// Host and runtime operations core/migration needs beyond the public API.
// They keep the host's invariants: every call into the daemon is serialized
// by the host lock, and no lock is held while outputs go to the sink.

// BufferRules are the admission rules of a Buffering host's queue. The zero
// value accepts every event (up to MaxBufferedEvents).
type BufferRules struct {
	// Refuse turns every delivery away with a wrong-phase *MigrationError
	// (a migration target before it may accept events: nothing is taken
	// that a rollback would have to drop).
	Refuse bool
	// MaxPayload > 0 turns away, with a buffer-full *MigrationError,
	// payloads larger than it (events that could not be shipped to the
	// other node). The caller keeps such an event and knows it.
	MaxPayload int
}

// BeginMigrationBuffering is BeginBuffering with admission rules, applied
// atomically with the switch to Buffering. The rules last until the host
// leaves Buffering (Cutover, Resume) or SetBufferRules changes them.
func (h *DaemonHost) BeginMigrationBuffering(rules BufferRules) error {
	h.mu.Lock()
	defer h.unlock()
	if h.closed.Load() {
		return h.notFound()
	}
	switch HostPhase(h.phase.Load()) {
	case PhaseBuffering:
		return &MigrationError{Detail: MigrationAlreadyMigrating, Msg: originStr(h.origin)}
	case PhaseMoved:
		return &MigrationError{Detail: MigrationWrongPhase, Msg: "daemon already moved"}
	}
	h.mq.rules = rules
	h.phase.Store(uint32(PhaseBuffering))
	return nil
}

// SetBufferRules replaces the admission rules of a Buffering host (no-op
// otherwise). Events already queued stay queued.
func (h *DaemonHost) SetBufferRules(rules BufferRules) {
	h.mu.Lock()
	defer h.unlock()
	if HostPhase(h.phase.Load()) == PhaseBuffering {
		h.mq.rules = rules
	}
}

// TakeQueued hands over the events queued so far (in acceptance order) and
// leaves the host Buffering with its rules, so later deliveries keep
// queueing. The source of a migration ships them to the target before
// cutover; a target rolling back hands them back. Nil when the host is not
// Buffering or nothing is queued.
func (h *DaemonHost) TakeQueued() []causal.Event {
	h.mu.Lock()
	defer h.unlock()
	if HostPhase(h.phase.Load()) != PhaseBuffering {
		return nil
	}
	return h.mq.take()
}

// UndoCutover reverses Cutover when the target never took the daemon over:
// Moved → Buffering with prefix (the events handed over earlier, in order)
// queued in front of anything queued since, no admission rules. The caller
// re-registers the host (Runtime.InsertHost) and drains it
// (Runtime.DrainHost).
func (h *DaemonHost) UndoCutover(prefix []causal.Event) error {
	h.mu.Lock()
	defer h.unlock()
	if HostPhase(h.phase.Load()) != PhaseMoved {
		return &MigrationError{Detail: MigrationWrongPhase, Msg: "undo cutover needs a moved daemon"}
	}
	rest := h.mq.takeAll()
	h.mq.head = append(append([]causal.Event(nil), prefix...), rest...)
	for _, ev := range h.mq.head {
		h.mq.bytes += queuedEventOverhead + len(ev.Payload)
	}
	h.movedTo.Store(0)
	h.phase.Store(uint32(PhaseBuffering))
	return nil
}

// replay processes evs in order without changing the host's phase or
// touching its queue (a Buffering migration target replaying forwarded
// events while direct deliveries wait behind them).
func (h *DaemonHost) replay(evs []causal.Event) ([]Processed, error) {
	h.mu.Lock()
	defer h.unlock()
	if h.closed.Load() {
		return nil, h.notFound()
	}
	if HostPhase(h.phase.Load()) == PhaseMoved {
		return nil, &MigrationError{Detail: MigrationWrongPhase, Msg: "daemon already moved"}
	}
	res := make([]Processed, 0, len(evs))
	for _, ev := range evs {
		outs, err := h.processLocked(nil, ev)
		res = append(res, Processed{Input: ev, Outputs: outs, Err: err})
	}
	return res, nil
}

// ReplayHost (for core/migration) processes evs on h in order, keeping h's
// phase and queue: outputs go to the output sink, observers fire for each
// processed event, per-event errors are logged. Call it through CallUser.
func (r *Runtime) ReplayHost(h *DaemonHost, evs []causal.Event) error {
	res, err := h.replay(evs)
	if err != nil {
		return err
	}
	r.publish(h, res)
	return nil
}

// AcceptHandedBack (for core/migration) gives the daemon at origin events a
// migration target had accepted before the migration rolled back: queued
// (ignoring the admission rules) when the host is Buffering, processed in
// order when it is Normal (outputs to the sink). A host that moved away or
// is gone returns the error and takes nothing. Call it through CallUser.
func (r *Runtime) AcceptHandedBack(origin uint64, evs []causal.Event) error {
	h := r.reg.host(origin)
	if h == nil {
		return r.missing(origin)
	}
	res, err := h.acceptHandedBack(evs)
	if err != nil {
		return err
	}
	r.publish(h, res)
	return nil
}

func (h *DaemonHost) acceptHandedBack(evs []causal.Event) ([]Processed, error) {
	h.mu.Lock()
	defer h.unlock()
	if h.closed.Load() {
		return nil, h.notFound()
	}
	switch HostPhase(h.phase.Load()) {
	case PhaseMoved:
		return nil, &MovedError{Node: h.movedTo.Load()}
	case PhaseBuffering:
		for _, ev := range evs {
			h.mq.store(ev)
		}
		return nil, nil
	}
	res := make([]Processed, 0, len(evs))
	for _, ev := range evs {
		outs, err := h.processLocked(nil, ev)
		res = append(res, Processed{Input: ev, Outputs: outs, Err: err})
	}
	return res, nil
}

// publish sends processed results to the sink and observers (no lock held).
func (r *Runtime) publish(h *DaemonHost, res []Processed) {
	sp := r.sink.Load()
	for _, p := range res {
		if p.Err != nil {
			r.log(LogWarn, "compute: replayed event failed", map[string]any{"origin": h.origin, "seq": p.Input.Link.Sequence, "error": p.Err.Error()})
			continue
		}
		if sp != nil && len(p.Outputs) > 0 {
			(*sp)(h.origin, p.Outputs)
		}
		r.fireObservers(h.origin, p.Input)
	}
}

// migQueue is a host's migration queue: the events accepted while
// Buffering, in acceptance order, guarded by the host lock.
//
// Layout (the delivery hot path during a migration): each event's link,
// timestamp and payload position go into fixed-size segments of
// pointer-free records, and its payload bytes are copied into large byte
// chunks (a slab). Queueing an event is two copies and, amortized, no
// allocation; nothing is ever re-copied as the queue grows, and the GC
// does not scan the records. Events are rebuilt as causal.Event values
// (payloads are capped sub-slices of the slab) only when taken.
type migQueue struct {
	rules BufferRules
	head  []causal.Event // events put back in front of the records (UndoCutover)
	segs  [][]qrec       // full segments, then the one being filled
	slab  [][]byte       // payload chunks; the last one is being filled
	n     int            // records in segs
	bytes int            // queued size in BufferedEvents wire bytes (head included)
}

// MaxBufferedBytes bounds a host's migration queue by size, as well as by
// count (MaxBufferedEvents): an event is refused with buffer-full once the
// queued events would take more than this many bytes in BufferedEvents
// form (payload plus queuedEventOverhead each). A full-count queue of
// maximal payloads would otherwise hold ~7 GB on the source (and again on
// the target while it is shipped).
const MaxBufferedBytes = 128 << 20

// queuedEventOverhead is a queued event's size besides its payload, as
// BufferedEvents carries it (link, payload length, received_at).
const queuedEventOverhead = causal.LinkSize + 4 + 8

type qrec struct {
	link       causal.Link
	recv       uint64
	chunk, off uint32 // payload position in the slab
	size       uint32
}

const (
	qsegLen   = 1024     // records per segment
	slabChunk = 64 << 10 // bytes per payload chunk (larger payloads get their own)
)

func (q *migQueue) len() int { return len(q.head) + q.n }

// push applies the admission rules and queues ev (its payload is copied:
// the caller's bytes are borrowed for the call only).
func (q *migQueue) push(origin uint64, ev causal.Event) error {
	if q.rules.Refuse {
		return &MigrationError{Detail: MigrationWrongPhase,
			Msg: originStr(origin) + " is still arriving on this node (its migration has not reached cutover); deliver to the source"}
	}
	if m := q.rules.MaxPayload; m > 0 && len(ev.Payload) > m {
		return &MigrationError{Detail: MigrationBufferFull,
			Msg: originStr(origin) + ": an event payload of " + strconv.Itoa(len(ev.Payload)) +
				" bytes cannot be carried by a migration (at most " + strconv.Itoa(m) + "); it was not accepted, deliver it again once the migration ends"}
	}
	if q.len() >= MaxBufferedEvents {
		return &MigrationError{Detail: MigrationBufferFull, Msg: originStr(origin) + ": " + strconv.Itoa(MaxBufferedEvents) + " events are queued"}
	}
	if q.bytes+queuedEventOverhead+len(ev.Payload) > MaxBufferedBytes {
		return &MigrationError{Detail: MigrationBufferFull, Msg: originStr(origin) + ": its migration queue holds " + strconv.Itoa(q.bytes) + " bytes (at most " + strconv.Itoa(MaxBufferedBytes) + ")"}
	}
	q.store(ev)
	return nil
}

// store queues ev without any rule.
func (q *migQueue) store(ev causal.Event) {
	r := qrec{link: ev.Link, recv: ev.ReceivedAt, size: uint32(len(ev.Payload))}
	if len(ev.Payload) > 0 {
		r.chunk, r.off = q.copyPayload(ev.Payload)
	}
	s := q.n / qsegLen
	if s == len(q.segs) {
		q.segs = append(q.segs, make([]qrec, 0, qsegLen))
	}
	q.segs[s] = append(q.segs[s], r)
	q.n++
	q.bytes += queuedEventOverhead + len(ev.Payload)
}

func (q *migQueue) copyPayload(p []byte) (chunk, off uint32) {
	if k := len(q.slab) - 1; k >= 0 && cap(q.slab[k])-len(q.slab[k]) >= len(p) {
		off = uint32(len(q.slab[k]))
		q.slab[k] = append(q.slab[k], p...)
		return uint32(k), off
	}
	c := make([]byte, 0, max(slabChunk, len(p)))
	q.slab = append(q.slab, append(c, p...))
	return uint32(len(q.slab) - 1), 0
}

// take returns every queued event in order and empties the queue, keeping
// the rules and the first segment's storage for reuse.
func (q *migQueue) take() []causal.Event {
	total := q.len()
	if total == 0 {
		return nil
	}
	out := make([]causal.Event, 0, total)
	out = append(out, q.head...)
	for _, seg := range q.segs {
		for i := range seg {
			r := &seg[i]
			var p []byte
			if r.size > 0 {
				end := r.off + r.size
				p = q.slab[r.chunk][r.off:end:end]
			}
			out = append(out, causal.Event{Link: r.link, Payload: p, ReceivedAt: r.recv})
		}
	}
	q.head, q.slab, q.n, q.bytes = nil, nil, 0, 0
	if len(q.segs) > 0 {
		q.segs = append(q.segs[:0], q.segs[0][:0])
	}
	return out
}

// takeAll is take for a host leaving Buffering: the rules are reset too.
func (q *migQueue) takeAll() []causal.Event {
	q.rules = BufferRules{}
	return q.take()
}
