package compute

import (
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/netmesh/libnetmesh/core/causal"
	"github.com/netmesh/libnetmesh/core/identity"
)

// HostPhase is a host's migration state.
//
//	Normal ──BeginBuffering──▶ Buffering ──Cutover(node)──▶ Moved(node)
//	   ▲                           │
//	   └───────────Resume──────────┘
//
// Normal processes events. Buffering accepts events into an ordered queue
// and returns no outputs (the daemon is being snapshotted and moved).
// Moved refuses every event with *MovedError. Resume drains the queue in
// order (after an optional prefix, e.g. events forwarded from the source)
// and returns to Normal.
type HostPhase uint32

const (
	PhaseNormal HostPhase = iota
	PhaseBuffering
	PhaseMoved
)

func (p HostPhase) String() string {
	switch p {
	case PhaseNormal:
		return "normal"
	case PhaseBuffering:
		return "buffering"
	case PhaseMoved:
		return "moved"
	}
	return "unknown"
}

// MaxBufferedEvents bounds a host's migration queue (the BufferedEvents
// message's own limit). Beyond it Deliver fails with a buffer-full
// *MigrationError.
const MaxBufferedEvents = 1_000_000

// DaemonHost wraps one daemon with its keypair, causal chain, horizon,
// stats and subscription ledger.
//
// Concurrency: mu serializes every call into the daemon and guards the
// chain, horizon and queue. Stats, the latest auto-snapshot, the phase and
// the ledger are readable without mu, so a host-language thread never waits
// behind a daemon call (which may itself be waiting for that thread) just to
// read them.
type DaemonHost struct {
	_ [64]byte // per-delivery fields share no line with a neighbour object

	// The fields a delivery touches come first, packed into three cache
	// lines (a host-driven delivery runs cold between host-language code,
	// where every line it touches costs a miss). Line 1: lookup and lock.
	origin uint64                      // immutable
	seen   atomic.Uint64               // a registry generation it was registered at (registry.host)
	closed atomic.Bool                 // readable without mu
	phase  atomic.Uint32               // readable without mu, written under mu
	mu     sync.Mutex                  // see above
	daemon Daemon                      // under mu
	chain  *causal.Chain               // under mu
	clock  atomic.Pointer[coarseClock] // the runtime's clock once registered

	// Line 2 (under mu, except leaseGone): input horizon and output stamps.
	horizon causal.Horizon
	bloom   uint64 // == horizon.Encode(), kept incrementally
	// lastStamp is the latest output ReceivedAt: stamps never go
	// backwards, whatever the clock does.
	lastStamp uint64
	cfg       DaemonConfig // immutable
	// hlen is horizon.Len() when bloom was last extended, truncated: the
	// horizon only grows, by at most one origin per observation, so the
	// low 16 bits still show every change.
	hlen       uint16
	leaseEvSet bool        // see leaseEv
	leaseGone  atomic.Bool // see leaseState (lease.go)

	// Line 3: stats (readable without mu, written under mu) and the live
	// host-driven delivery lease (lease.go).
	stats struct{ processed, emitted, errors, snapshots hostCounter }
	ls    leaseState

	lender    Lender // daemon as a Lender, nil if it is not one
	leaseWord uint64 // the daemon's LeaseWord, if it is a LeaseWorder (immutable)
	// scratch (under mu) holds the outputs handed to a DeliverVisit visitor.
	scratch []causal.Event
	// closeDone is set (under mu) once the daemon's Close hook has run.
	closeDone bool
	// leaseEv (under mu, by the lease holder) is a lease's input, kept for
	// observers when there were any at its begin (leaseEvSet).
	leaseEv causal.Event

	// Immutable after construction.
	kp   *identity.Keypair
	name string
	reqs []string

	movedTo atomic.Uint64 // readable without mu, written under mu
	latest  atomic.Pointer[causal.Snapshot]

	ledger struct {
		sync.Mutex
		b []causal.Binding
	}

	mq migQueue // migration queue and its admission rules (migration_hooks.go), under mu
	// batch (under mu, by the lease holder) is the live batch lease's
	// events (batch.go); nil until the host's first batch.
	batch *batchState
	_     [64]byte
}

// Lender is optionally implemented by a Daemon that can lend its outputs
// instead of handing them over (a host language whose outputs live in a
// per-thread buffer). ProcessLent is Process of the event (link, payload,
// receivedAt), except that the returned payloads only stay valid until the
// next ProcessLent call on the same OS thread. (The event comes in parts:
// a 64-byte Event is copied through memory, the parts travel in registers.) The host uses it only for Runtime.DeliverVisit, with the goroutine
// locked to its thread from the call until the visitor has consumed the
// outputs; no other user code runs in between.
type Lender interface {
	ProcessLent(link causal.Link, payload []byte, receivedAt uint64) ([][]byte, error)
}

// Closer is optionally implemented by a Daemon that holds resources to
// release when its host is closed (stopped, shut down, rolled back or
// handed away after a migration). See DaemonHost.Close.
type Closer interface{ Close() }

// Processed is the result of one event processed outside a caller's Deliver
// (queue drain or replay).
type Processed struct {
	Input   causal.Event
	Outputs []causal.Event
	Err     error
}

// NewHost wraps a fresh daemon for identity kp with a chain at genesis.
func NewHost(d Daemon, kp *identity.Keypair, cfg DaemonConfig) (*DaemonHost, error) {
	if d == nil || kp == nil {
		if d != nil {
			closeUnhosted(d)
		}
		return nil, wrapErr(ErrInvalidArgument, "nil daemon or keypair", nil)
	}
	return newHost(d, kp, kp.OriginHash(), cfg, causal.NewChain(kp.OriginHash())), nil
}

func newHost(d Daemon, kp *identity.Keypair, origin uint64, cfg DaemonConfig, chain *causal.Chain) *DaemonHost {
	h := &DaemonHost{origin: origin, kp: kp, cfg: cfg, daemon: d, chain: chain}
	h.name, h.reqs = callDescribe(d)
	h.lender, _ = d.(Lender)
	if w, ok := d.(LeaseWorder); ok {
		h.leaseWord = callLeaseWord(w)
	}
	return h
}

// RestoreHost wraps daemon d restored from snap: the chain resumes from
// snap.ChainLink with the state standing in as head payload, the horizon is
// empty, stats are zero and the ledger comes from snap.Bindings. The full
// 32-byte entity id must match kp (ErrSnapshotIdentityMismatch). A bad
// ledger or a failing Restore gives ErrRestoreFailed. d is owned by the
// call: on error its Close hook (if any) has run.
func RestoreHost(d Daemon, kp *identity.Keypair, snap *causal.Snapshot, cfg DaemonConfig) (_ *DaemonHost, err error) {
	defer func() {
		if err != nil && d != nil {
			closeUnhosted(d)
		}
	}()
	if d == nil || kp == nil || snap == nil {
		return nil, wrapErr(ErrInvalidArgument, "nil daemon, keypair or snapshot", nil)
	}
	if snap.EntityID != kp.EntityID() {
		return nil, wrapErr(ErrSnapshotIdentityMismatch, "snapshot entity id differs from the identity", nil)
	}
	origin := kp.OriginHash()
	if snap.ChainLink.Origin != origin || snap.ThroughSeq != snap.ChainLink.Sequence {
		return nil, wrapErr(ErrInvalidArgument, "snapshot chain link does not match its entity or through_seq", nil)
	}
	var ledger []causal.Binding
	if len(snap.Bindings) > 0 {
		var err error
		if ledger, err = causal.DecodeLedger(snap.Bindings); err != nil {
			return nil, wrapErr(ErrRestoreFailed, "subscription ledger", err)
		}
	}
	if err := callRestore(d, snap.State); err != nil {
		return nil, wrapErr(ErrRestoreFailed, "", err)
	}
	h := newHost(d, kp, origin, cfg, causal.ResumeChain(snap.ChainLink, snap.State))
	h.ledger.b = ledger
	return h, nil
}

// Origin is the daemon's origin hash.
func (h *DaemonHost) Origin() uint64 { return h.origin }

// Keypair is the daemon's identity.
func (h *DaemonHost) Keypair() *identity.Keypair { return h.kp }

// EntityID is the daemon's 32-byte entity id.
func (h *DaemonHost) EntityID() identity.EntityID { return h.kp.EntityID() }

// Config is the host's configuration.
func (h *DaemonHost) Config() DaemonConfig { return h.cfg }

// Name is the daemon's name, read once at construction.
func (h *DaemonHost) Name() string { return h.name }

// Requirements is the daemon's capability filter, read once at construction.
func (h *DaemonHost) Requirements() []string { return append([]string(nil), h.reqs...) }

// Stats reads the counters without waiting for the daemon. The four values
// are read one by one, not as one atomic unit.
func (h *DaemonHost) Stats() Stats {
	return Stats{
		EventsProcessed: h.stats.processed.Load(),
		EventsEmitted:   h.stats.emitted.Load(),
		Errors:          h.stats.errors.Load(),
		SnapshotsTaken:  h.stats.snapshots.Load(),
	}
}

// LatestSnapshot is the latest automatic snapshot (DaemonConfig
// AutoSnapshotInterval), nil if none was taken.
func (h *DaemonHost) LatestSnapshot() *causal.Snapshot { return h.latest.Load() }

// Phase is the host's migration phase.
func (h *DaemonHost) Phase() HostPhase { return HostPhase(h.phase.Load()) }

// MovedTo is the node the daemon moved to, if it did.
func (h *DaemonHost) MovedTo() (uint64, bool) {
	if h.Phase() != PhaseMoved {
		return 0, false
	}
	return h.movedTo.Load(), true
}

// ChainHead is the current head of the daemon's causal chain.
func (h *DaemonHost) ChainHead() causal.Link {
	h.mu.Lock()
	defer h.unlock()
	return h.chain.Head()
}

// Close marks the host stopped: later calls fail with ErrDaemonNotFound. It
// does not wait for a call in progress.
//
// If the daemon implements Closer, its Close runs exactly once, never
// concurrently with another call into the daemon and never under a lock of
// the host or the runtime: right here, on the caller's goroutine, when the
// daemon is idle; otherwise as soon as the call in progress returns, on that
// call's goroutine (or, rarely, on a helper goroutine waiting for it). The
// runtime closes hosts only after releasing its own locks, so a hook may call
// back into the Runtime (a call to its own daemon finds it gone). A panic in
// the hook is recovered.
func (h *DaemonHost) Close() {
	if h.closed.Swap(true) {
		return
	}
	if _, ok := h.daemon.(Closer); !ok {
		return
	}
	if h.mu.TryLock() {
		h.unlock()
		return
	}
	go func() {
		h.mu.Lock()
		h.unlock()
	}()
}

// unlock releases mu and then, when the host was closed and the hook has not
// run yet, runs the daemon's Close hook. Every mu holder that can overlap
// Close releases through it. The hook runs after mu is released; that is
// still exclusive, because every path that calls into the daemon checks
// closed under mu first.
func (h *DaemonHost) unlock() {
	var c Closer
	if h.closed.Load() && !h.closeDone {
		h.closeDone = true
		c, _ = h.daemon.(Closer)
	}
	h.mu.Unlock()
	if c != nil {
		callClose(c)
	}
}

// closeUnhosted runs the Close hook of a daemon handed to the runtime that
// never got a host (a failed spawn or restore): ownership passed with the
// call, so nobody else will.
func closeUnhosted(d Daemon) {
	if c, ok := d.(Closer); ok {
		callClose(c)
	}
}

// CloseUnhosted is closeUnhosted for core/migration: a daemon a migration
// target built that never became a host.
func CloseUnhosted(d Daemon) {
	if d != nil {
		closeUnhosted(d)
	}
}

// notFound is the error for a call on a closed host. A host closed after it
// moved away (the source closes it once the move is final) keeps answering
// *MovedError: a caller that looked it up just before it was unregistered
// must still learn where the daemon went.
func (h *DaemonHost) notFound() error {
	if node, ok := h.MovedTo(); ok {
		return &MovedError{Node: node}
	}
	return wrapErr(ErrDaemonNotFound, originStr(h.origin), nil)
}

// Deliver runs ev through the daemon (BEHAVIOUR §1) and returns the wrapped
// outputs, nil when there are none or the host is buffering.
func (h *DaemonHost) Deliver(ev causal.Event) ([]causal.Event, error) {
	out, _, err := h.deliverAppend(nil, &ev)
	return out, err
}

// deliverAppend is the hot path; processed is false when ev was queued. ev
// is passed by pointer down the path (read only): copying the 64-byte event
// at every call costs more than the calls.
func (h *DaemonHost) deliverAppend(dst []causal.Event, ev *causal.Event) (_ []causal.Event, processed bool, err error) {
	h.mu.Lock()
	defer h.unlock()
	if h.closed.Load() || HostPhase(h.phase.Load()) != PhaseNormal {
		if queued, err := h.admitLocked(ev); err != nil || queued {
			return dst, false, err
		}
	}
	return h.processVisitLocked(dst, ev, nil, nil)
}

// deliverVisit is deliverAppend handing the outputs to visit while mu is
// held (see Runtime.DeliverVisit). processed is true when the daemon
// processed ev, even if visit then failed.
func (h *DaemonHost) deliverVisit(ev *causal.Event, visit func([]causal.Event) error, pinned bool) (processed bool, err error) {
	h.mu.Lock()
	st := visitState{pinned: pinned}
	defer h.endVisit(&st, &err)
	if h.closed.Load() || HostPhase(h.phase.Load()) != PhaseNormal {
		if queued, err := h.admitLocked(ev); err != nil || queued {
			return false, err
		}
	}
	var outs []causal.Event
	outs, processed, err = h.processVisitLocked(h.scratch[:0], ev, visit, &st)
	if cap(outs) > 16 {
		h.scratch = nil // a burst of outputs: do not keep its payloads alive
	} else {
		for i := range outs {
			outs[i].Payload = nil // nor the payloads of the common case
		}
		h.scratch = outs
	}
	return processed, err
}

// visitState is what deliverVisit's epilogue undoes or reports.
type visitState struct {
	pinned   bool // the caller's goroutine cannot leave its thread anyway
	locked   bool // the goroutine was locked to its thread for a lent call
	inDaemon bool // a Lender's ProcessLent is running
}

// endVisit is deliverVisit's single deferred call (one defer instead of
// three on the C ABI's path): a panic of a Lender daemon becomes its
// ProcessFailed error exactly as callProcess makes it (counted, host
// usable); a panic anywhere else is not recovered here. Then the thread is
// released and the host unlocked.
func (h *DaemonHost) endVisit(st *visitState, err *error) {
	if st.inDaemon {
		if r := recover(); r != nil {
			h.stats.errors.Add(1)
			*err = wrapErr(ErrProcessFailed, "", &panicError{r})
		}
	}
	if st.locked {
		runtime.UnlockOSThread()
	}
	if h.closed.Load() {
		h.unlock() // may run the Close hook
	} else {
		h.mu.Unlock() // unlock's common case without the call
	}
}

// admitLocked is the phase gate of a delivery: a closed or moved host
// refuses ev; a buffering one queues it (queued reports that; err is then
// the queue's refusal, if any). The delivery paths call it only when the
// host is closed or not Normal (the common case is checked inline).
func (h *DaemonHost) admitLocked(ev *causal.Event) (queued bool, err error) {
	if h.closed.Load() {
		return false, h.notFound()
	}
	switch HostPhase(h.phase.Load()) {
	case PhaseNormal:
		return false, nil
	case PhaseBuffering:
		return true, h.enqueueLocked(*ev)
	}
	return false, &MovedError{Node: h.movedTo.Load()}
}

// processLocked runs ev through the daemon and appends the wrapped outputs
// to dst. The daemon's returned slice itself is not retained (only its
// elements, as the output payloads), so a daemon may reuse it between calls.
// The chain hashes each payload as it is appended and keeps no reference.
func (h *DaemonHost) processLocked(dst []causal.Event, ev causal.Event) ([]causal.Event, error) {
	dst, _, err := h.processVisitLocked(dst, &ev, nil, nil)
	return dst, err
}

// processVisitLocked is processLocked with an optional visitor. With visit set, the outputs are handed to it before anything else can run
// user code (the auto-snapshot comes after), and a Lender daemon lends them
// (st is then deliverVisit's state, which undoes the thread lock and
// recovers a panic of the daemon): they are valid only during visit.
// processed reports that the daemon processed ev (err may still be the
// visitor's).
func (h *DaemonHost) processVisitLocked(dst []causal.Event, ev *causal.Event, visit func([]causal.Event) error, st *visitState) (_ []causal.Event, processed bool, err error) {
	h.observeLocked(ev.Link.Origin, ev.Link.Sequence)
	var outs [][]byte
	if st != nil && h.lender != nil {
		// The lent outputs live in this thread's buffer until the next
		// lent call on it: stay on the thread until visit is done.
		if !st.pinned {
			runtime.LockOSThread()
			st.locked = true
		}
		st.inDaemon = true
		outs, err = h.lender.ProcessLent(ev.Link, ev.Payload, ev.ReceivedAt)
		st.inDaemon = false
	} else {
		outs, err = callProcess(h.daemon, *ev)
	}
	if err != nil {
		h.stats.errors.Add(1)
		return dst, false, wrapErr(ErrProcessFailed, "", err)
	}
	n := h.stats.processed.Add(1)
	if len(outs) > 0 {
		if dst, err = h.appendOutputsLocked(dst, outs); err != nil {
			return dst, false, err
		}
	}
	if visit != nil {
		err = visit(dst)
	}
	h.autoSnapshotLocked(n)
	return dst, true, err
}

// observeLocked records an input event in the horizon (the first step of
// every processing, deliver's and a lease's).
func (h *DaemonHost) observeLocked(origin, seq uint64) {
	h.horizon.Observe(origin, seq)
	if n := uint16(h.horizon.Len()); n != h.hlen {
		h.hlen = n
		h.bloom |= causal.BloomBits(origin)
	}
}

// autoSnapshotLocked takes the periodic snapshot after the n-th processed
// event. A failing auto-snapshot keeps the previous one; the event itself
// was processed fine, so it is not reported to the caller.
func (h *DaemonHost) autoSnapshotLocked(n uint64) {
	if iv := h.cfg.AutoSnapshotInterval; iv > 0 && n%iv == 0 {
		if s, err := h.snapshotLocked(false); err == nil && s != nil {
			h.latest.Store(s)
		}
	}
}

// appendOutputsLocked appends the daemon's outputs to the chain and dst (the
// step deliver and a lease's commit share), counting them; on a chain error
// it counts what was emitted before it and the error.
func (h *DaemonHost) appendOutputsLocked(dst []causal.Event, outs [][]byte) ([]causal.Event, error) {
	hz := h.bloom
	now := h.stampLocked()
	dst = slices.Grow(dst, len(outs))
	for i, p := range outs {
		link, err := h.chain.Append(p, hz)
		if err != nil {
			h.stats.emitted.Add(uint64(i))
			h.stats.errors.Add(1)
			return dst, err
		}
		// Written in place: a composite literal built on the stack
		// and then copied stalls on store forwarding.
		dst = dst[:len(dst)+1]
		e := &dst[len(dst)-1]
		e.Link = link
		e.Payload = p
		e.ReceivedAt = now
	}
	h.stats.emitted.Add(uint64(len(outs)))
	return dst, nil
}

// stampLocked is the ReceivedAt of outputs made now: the runtime's coarse
// clock once the host is registered, else the anchored clock below; never
// below the previous stamp.
func (h *DaemonHost) stampLocked() uint64 {
	var t uint64
	if c := h.clock.Load(); c != nil {
		t = c.read()
	} else {
		t = unixNano()
	}
	if t < h.lastStamp {
		t = h.lastStamp
	}
	h.lastStamp = t
	return t
}

// Output timestamps (ReceivedAt, unix nanoseconds) come from one monotonic
// clock read added to a wall-clock anchor: time.Now reads both clocks and
// costs about twice as much on the delivery path. The anchor is refreshed
// from time.Now every clockRefresh, so a step of the wall clock shows up
// within that period; between refreshes stamps never go backwards.
const clockRefresh = time.Second

type clockAnchor struct {
	at   time.Time // carries the monotonic reading
	wall int64     // at.UnixNano()
}

var anchor atomic.Pointer[clockAnchor]

func unixNano() uint64 {
	if a := anchor.Load(); a != nil {
		if d := time.Since(a.at); d >= 0 && d < clockRefresh {
			return uint64(a.wall + int64(d))
		}
	}
	t := time.Now()
	anchor.Store(&clockAnchor{at: t, wall: t.UnixNano()})
	return uint64(t.UnixNano())
}

// enqueueLocked queues ev (payload copied) under the queue's admission rules.
func (h *DaemonHost) enqueueLocked(ev causal.Event) error { return h.mq.push(h.origin, ev) }

// Snapshot takes a snapshot (through_seq = chain head sequence, bindings =
// ledger bytes, created_at = now) and counts it; nil, nil for a stateless
// daemon.
func (h *DaemonHost) Snapshot() (*causal.Snapshot, error) { return h.snapshot(false) }

// SnapshotForMigration is Snapshot, except that a stateless daemon gets a
// snapshot with empty state (stateless daemons migrate too).
func (h *DaemonHost) SnapshotForMigration() (*causal.Snapshot, error) { return h.snapshot(true) }

func (h *DaemonHost) snapshot(always bool) (*causal.Snapshot, error) {
	h.mu.Lock()
	defer h.unlock()
	if h.closed.Load() {
		return nil, h.notFound()
	}
	return h.snapshotLocked(always)
}

func (h *DaemonHost) snapshotLocked(always bool) (*causal.Snapshot, error) {
	state, err := callSnapshot(h.daemon)
	if err != nil {
		return nil, wrapErr(ErrProcessFailed, "snapshot", err)
	}
	if state == nil {
		if !always {
			return nil, nil
		}
		state = []byte{}
	}
	bindings, err := h.ledgerBytes()
	if err != nil {
		return nil, wrapErr(ErrProcessFailed, "subscription ledger", err)
	}
	head := h.chain.Head()
	s := &causal.Snapshot{
		EntityID:   h.kp.EntityID(),
		ThroughSeq: head.Sequence,
		ChainLink:  head,
		CreatedAt:  uint64(time.Now().UnixNano()),
		State:      state,
		Bindings:   bindings,
	}
	h.stats.snapshots.Add(1)
	return s, nil
}

// Subscriptions is a copy of the subscription ledger, in subscription order.
func (h *DaemonHost) Subscriptions() []causal.Binding {
	h.ledger.Lock()
	defer h.ledger.Unlock()
	out := make([]causal.Binding, len(h.ledger.b))
	for i, b := range h.ledger.b {
		out[i] = causal.Binding{Publisher: b.Publisher, Channel: b.Channel, Token: append([]byte(nil), b.Token...)}
	}
	return out
}

// RecordSubscription adds (publisher, channel) to the ledger or replaces its
// token. token is copied; nil means none. A binding the ledger encoding
// cannot hold (bad channel name, token of 64 KiB or more) is refused with
// ErrInvalidArgument.
func (h *DaemonHost) RecordSubscription(publisher uint64, channel string, token []byte) error {
	if err := (causal.Binding{Publisher: publisher, Channel: channel, Token: token}).Validate(); err != nil {
		return wrapErr(ErrInvalidArgument, "subscription", err)
	}
	if token != nil {
		token = append([]byte{}, token...)
	}
	h.ledger.Lock()
	defer h.ledger.Unlock()
	for i := range h.ledger.b {
		if b := &h.ledger.b[i]; b.Publisher == publisher && b.Channel == channel {
			b.Token = token
			return nil
		}
	}
	h.ledger.b = append(h.ledger.b, causal.Binding{Publisher: publisher, Channel: channel, Token: token})
	return nil
}

// ForgetSubscription removes (publisher, channel); false if it was absent.
func (h *DaemonHost) ForgetSubscription(publisher uint64, channel string) bool {
	h.ledger.Lock()
	defer h.ledger.Unlock()
	for i, b := range h.ledger.b {
		if b.Publisher == publisher && b.Channel == channel {
			h.ledger.b = append(h.ledger.b[:i], h.ledger.b[i+1:]...)
			return true
		}
	}
	return false
}

// ledgerBytes encodes the ledger; an empty ledger adds no bytes.
func (h *DaemonHost) ledgerBytes() ([]byte, error) {
	h.ledger.Lock()
	defer h.ledger.Unlock()
	return causal.AppendLedger(nil, h.ledger.b)
}

// BeginBuffering switches Normal → Buffering: from now on events are queued
// (no outputs) until Cutover or Resume. It waits for a call in progress, so
// a snapshot taken after it sees every event processed before it.
func (h *DaemonHost) BeginBuffering() error {
	return h.BeginMigrationBuffering(BufferRules{})
}

// Buffered is the number of queued events.
func (h *DaemonHost) Buffered() int {
	h.mu.Lock()
	defer h.unlock()
	return h.mq.len()
}

// Cutover switches Buffering → Moved(node) and hands over the queued events
// (in acceptance order) for forwarding to node. Afterwards Deliver fails with
// *MovedError{Node: node}.
func (h *DaemonHost) Cutover(node uint64) ([]causal.Event, error) {
	h.mu.Lock()
	defer h.unlock()
	if HostPhase(h.phase.Load()) != PhaseBuffering {
		return nil, &MigrationError{Detail: MigrationWrongPhase, Msg: "cutover needs a buffering daemon"}
	}
	q := h.mq.takeAll()
	h.movedTo.Store(node)
	h.phase.Store(uint32(PhaseMoved))
	return q, nil
}

// Resume processes prefix, then the queued events, in order, and returns to
// Normal; deliveries arriving meanwhile wait behind it. Used when a
// migration fails before cutover (source) and to replay forwarded events
// on a target. Valid from Normal or Buffering.
func (h *DaemonHost) Resume(prefix []causal.Event) ([]Processed, error) {
	h.mu.Lock()
	defer h.unlock()
	if h.closed.Load() {
		return nil, h.notFound()
	}
	if HostPhase(h.phase.Load()) == PhaseMoved {
		return nil, &MigrationError{Detail: MigrationWrongPhase, Msg: "daemon already moved"}
	}
	q := h.mq.takeAll()
	res := make([]Processed, 0, len(prefix)+len(q))
	for _, list := range [2][]causal.Event{prefix, q} {
		for _, ev := range list {
			outs, err := h.processLocked(nil, ev)
			res = append(res, Processed{Input: ev, Outputs: outs, Err: err})
		}
	}
	h.phase.Store(uint32(PhaseNormal))
	return res, nil
}

// User-code calls; a panic becomes an error so the host stays usable.

func callProcess(d Daemon, ev causal.Event) (outs [][]byte, err error) {
	defer func() {
		if r := recover(); r != nil {
			outs, err = nil, &panicError{r}
		}
	}()
	return d.Process(ev)
}

func callSnapshot(d Daemon) (state []byte, err error) {
	defer func() {
		if r := recover(); r != nil {
			state, err = nil, &panicError{r}
		}
	}()
	return d.Snapshot()
}

func callRestore(d Daemon, state []byte) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = &panicError{r}
		}
	}()
	return d.Restore(state)
}

func callClose(c Closer) {
	defer func() { _ = recover() }()
	c.Close()
}

func callLeaseWord(w LeaseWorder) (word uint64) {
	defer func() {
		if r := recover(); r != nil {
			word = 0
		}
	}()
	return w.LeaseWord()
}

func callDescribe(d Daemon) (name string, reqs []string) {
	defer func() {
		if r := recover(); r != nil {
			name, reqs = "", nil
		}
	}()
	return d.Name(), append([]string(nil), d.Requirements()...)
}
