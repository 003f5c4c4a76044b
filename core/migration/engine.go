// Package migration moves live daemons between mesh nodes (BEHAVIOUR §3–4,
// messages of FORMATS §6 on subprotocol 0x0500).
//
// One Engine is attached to each runtime. It plays three separable roles per
// migrating daemon: orchestrator (drives the phases; owns the Handle),
// source (buffers, snapshots, seals, hands over its queue, cuts over) and
// target (reassembles, checks, restores, replays, activates). The usual case
// is orchestrator = source; messages between roles on the same node are
// routed locally, messages between nodes go through the mesh, which delivers
// 0x0500 reliably and in order per peer.
//
// Concurrency: the node's receive goroutine only decodes a message and
// queues it on a lane (a serial queue on the runtime's worker pool chosen by
// the daemon's origin), so all protocol work for one daemon runs in arrival
// order and never blocks the node. Engine state is guarded by Engine.mu,
// which is never held while sending, calling user code or notifying
// subscribers. User code (snapshot, factory, restore, replay) runs through
// Runtime.CallUser.
//
// Large events. BufferedEvents carries event payloads of at most 7000 bytes
// (msg.MaxEventPayload; the 0.24 reference decoder refuses bigger ones, so
// shipping them in that message, split or in a private message would make a
// reference peer drop them silently). Therefore a migrating daemon does not
// accept them: from the source's snapshot until its cutover, and on the
// target until it is activated, Deliver refuses a payload over 7000 bytes
// with a buffer-full *compute.MigrationError. The event was not accepted;
// the caller still holds it and delivers it again after the migration (to
// the target once the source answers daemon-moved). Smaller events are
// never refused for their size, and no accepted event is ever dropped.
//
// Direct deliveries to the target. The restored daemon on the target
// refuses deliveries (wrong-phase *compute.MigrationError) until the target
// sends its first ReplayComplete, the earliest point at which the source
// may cut over; from then on they are accepted and wait behind the replay,
// so a caller bounced off the source with daemon-moved is served at once
// (BEHAVIOUR §4). If the migration still rolls back after that, the events
// the target accepted are handed back (BufferedEvents to the orchestrator,
// passed on to the source) and processed there; they are never dropped.
// Hand-back needs a live link to the orchestrator and is understood only by
// this implementation: a 0.24 orchestrator ignores it.
//
// Losing a party after cutover. Once the source has cut over, the
// orchestrator tells the target so (a CutoverNotify naming the target, sent
// before the source's last queued events and ActivateTarget; a 0.24 node
// ignores it). A target holding that evidence never rolls back: if its
// orchestrator vanishes, or a failure report still arrives, it activates
// the daemon. Symmetrically, an orchestrating source undoes its cutover only
// when the target's session fails before ActivateAck arrives. The rules
// agree whenever one side has really crashed. The remaining window is a
// partition (both alive, link lost) after the target got the evidence and
// before the source got ActivateAck: the source undoes its cutover while
// the target activates, and the daemon runs on both until an operator or a
// later migration resolves it; events still in flight to the target at that
// moment are processed only by the source. Closing it would take a third
// party or consensus, which this protocol does not have. Likewise, when a
// remote orchestrator dies while relaying the source's last queued events,
// the events it had not forwarded are lost with it.
package migration

import (
	"context"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/netmesh/libnetmesh/core/compute"
	"github.com/netmesh/libnetmesh/core/identity"
	"github.com/netmesh/libnetmesh/core/migration/msg"
)

// numLanes is the number of serial queues; origins hash onto them.
const numLanes = 64

// maxBatchBytes bounds one BufferedEvents message (the mesh carries at most
// 8104 bytes per subprotocol payload).
const maxBatchBytes = 8000

// Option configures an Engine.
type Option func(*config)

type config struct {
	peerCheck   time.Duration
	hookTimeout time.Duration
}

// WithPeerCheckInterval sets how often the engine checks that the other
// parties of its migrations still have a session (default 250 ms). A party
// whose session failed aborts the migration (before cutover) or reverts the
// source's cutover when the target vanished before activating.
func WithPeerCheckInterval(d time.Duration) Option {
	return func(c *config) {
		if d > 0 {
			c.peerCheck = d
		}
	}
}

// WithHookTimeout bounds each channel (un)subscription of the hooks
// (default 5 s).
func WithHookTimeout(d time.Duration) Option {
	return func(c *config) {
		if d > 0 {
			c.hookTimeout = d
		}
	}
}

// Engine is the migration engine of one runtime. Safe for concurrent use.
type Engine struct {
	rt    *compute.Runtime
	node  compute.Node
	self  uint64
	cfg   config
	reasm *msg.Reassembler
	lanes [numLanes]lane

	simNotReady atomic.Bool

	warm warmer // keeps a CPU awake while a migration starts (warm.go)

	// staticKey caches the node's X25519 static key prepared for opening
	// identity envelopes (rebuilt if the node ever reports another key).
	staticKey atomic.Pointer[identity.StaticKey]

	// mu guards the role records and caches below.
	mu        sync.Mutex
	orch      map[uint64]*orchRec // migrations this node orchestrates
	src       map[uint64]*srcRec  // migrations this node is the source of
	tgt       map[uint64]*tgtRec  // migrations this node is the target of
	failures  map[uint64]msg.Reason
	pinned    map[uint64]uint64     // origin → orchestrator pinned in advance
	activated map[uint64]activation // last activation per origin (re-acks duplicates)
	handback  map[uint64]*handback  // where events a rolled-back target hands back go
	watching  bool                  // the peer watchdog goroutine runs
}

type activation struct {
	orch     uint64
	replayed uint64
}

// Attach builds the engine for rt on node (the node rt was built on) and
// installs it as rt's migration handler.
func Attach(rt *compute.Runtime, node compute.Node, opts ...Option) *Engine {
	cfg := config{peerCheck: 250 * time.Millisecond, hookTimeout: 5 * time.Second}
	for _, o := range opts {
		o(&cfg)
	}
	e := &Engine{
		rt: rt, node: node, self: node.NodeID(), cfg: cfg,
		reasm:     msg.NewReassembler(nil),
		orch:      make(map[uint64]*orchRec),
		src:       make(map[uint64]*srcRec),
		tgt:       make(map[uint64]*tgtRec),
		failures:  make(map[uint64]msg.Reason),
		pinned:    make(map[uint64]uint64),
		activated: make(map[uint64]activation),
		handback:  make(map[uint64]*handback),
	}
	for i := range e.lanes {
		e.lanes[i].e = e
	}
	rt.SetMigrationHandler(e)
	// The runtime's 0x0500 handler only forwards to HandleMigrationMessage,
	// which decodes and queues on a lane: a node that can call it on its
	// receive goroutine saves a goroutine hand-off per message.
	if in, ok := node.(inliner); ok {
		if err := in.SetHandlerInline(compute.SubprotocolMigration, true); err != nil {
			e.log(compute.LogDebug, "migration: 0x0500 stays on the node's dispatch goroutine", map[string]any{"error": err.Error()})
		}
	}
	return e
}

// inliner is implemented by nodes (core/mesh) that can call a subprotocol's
// handler on their receive goroutine.
type inliner interface {
	SetHandlerInline(id uint16, on bool) error
}

// Runtime is the runtime the engine is attached to.
func (e *Engine) Runtime() *compute.Runtime { return e.rt }

// SetSimulateNotReady makes this node answer every incoming migration with
// NotReady while on (for tests of the retry path, like the reference's
// simulate_not_ready). It does not affect the runtime itself.
func (e *Engine) SetSimulateNotReady(on bool) { e.simNotReady.Store(on) }

// PinOrchestrator makes this node, as a migration target of origin, accept
// chunks only from node (when it has no record naming another sender).
func (e *Engine) PinOrchestrator(origin, node uint64) {
	e.mu.Lock()
	e.pinned[origin] = node
	e.mu.Unlock()
}

// LastFailure is the failure reason most recently reported for origin
// (cleared by the next StartMigration of origin and by runtime shutdown).
func (e *Engine) LastFailure(origin uint64) (msg.Reason, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	r, ok := e.failures[origin]
	return r, ok
}

// Active reports whether this node holds any record (any role) for origin.
func (e *Engine) Active(origin uint64) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.orch[origin] != nil || e.src[origin] != nil || e.tgt[origin] != nil
}

// Phase is where the migration of origin stands as this node sees it, in
// whichever role it takes part; false when it takes part in none (or the
// migration ended here). The orchestrator's view wins when this node also
// orchestrates (it is the Handle's phase). Otherwise:
//
//   - source: Snapshot until its snapshot is taken, Transfer while it waits
//     for the target (it cannot tell restore from replay), Cutover once it
//     gave the daemon up and until the move is final here;
//   - target: Transfer while chunks arrive, Restore while it restores,
//     Replay once the daemon is registered and replaying, Cutover once it
//     learnt that the source cut over (until it activates).
func (e *Engine) Phase(origin uint64) (Phase, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if r := e.orch[origin]; r != nil && !r.finished {
		return r.phase, true
	}
	if s := e.src[origin]; s != nil {
		switch {
		case s.cutover:
			return PhaseCutover, true
		case s.sent:
			return PhaseTransfer, true
		}
		return PhaseSnapshot, true
	}
	if t := e.tgt[origin]; t != nil {
		switch {
		case t.state == tgtAssembling:
			return PhaseTransfer, true
		case t.state == tgtRestoring:
			return PhaseRestore, true
		case t.cutSeen:
			return PhaseCutover, true
		}
		return PhaseReplay, true
	}
	return 0, false
}

// Records is the number of records this node holds, all roles together.
func (e *Engine) Records() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.orch) + len(e.src) + len(e.tgt)
}

func (e *Engine) ready() bool { return !e.simNotReady.Load() && e.rt.IsReady() }

func (e *Engine) log(level int, m string, fields map[string]any) { e.rt.Log(level, m, fields) }

// HandleMigrationMessage implements compute.MigrationHandler: it runs on the
// node's receive goroutine, decodes and queues. Malformed payloads are
// dropped.
func (e *Engine) HandleMigrationMessage(from uint64, payload []byte) {
	m, err := msg.Decode(payload)
	if err != nil {
		e.log(compute.LogDebug, "migration: dropped malformed message", map[string]any{"from": from, "error": err.Error()})
		return
	}
	if m.Type == msg.TakeSnapshot || (m.Type == msg.SnapshotReady && m.ChunkIndex == 0) {
		e.warm.keep(warmWindow)
	}
	e.dispatch(from, m)
}

// dispatch queues m on its origin's lane.
func (e *Engine) dispatch(from uint64, m *msg.Message) {
	e.do(m.Origin, func() { e.handle(from, m) })
}

// handle runs on the origin's lane.
func (e *Engine) handle(from uint64, m *msg.Message) {
	e.mu.Lock()
	if r := e.orch[m.Origin]; r != nil && (from == r.source || from == r.target) {
		r.lastMove = time.Now() // a party spoke: progress (Opts.StallTimeout)
	}
	e.mu.Unlock()
	switch m.Type {
	case msg.TakeSnapshot:
		e.onTakeSnapshot(from, m)
	case msg.SnapshotReady:
		e.onSnapshotReady(from, m)
	case msg.RestoreComplete:
		e.onRestoreComplete(from, m)
	case msg.ReplayComplete:
		e.onReplayComplete(from, m)
	case msg.CutoverNotify:
		e.onCutoverNotify(from, m)
	case msg.CleanupComplete:
		e.onCleanupComplete(from, m)
	case msg.MigrationFailed:
		e.onMigrationFailed(from, m)
	case msg.BufferedEvents:
		e.onBufferedEvents(from, m)
	case msg.ActivateTarget:
		e.onActivateTarget(from, m)
	case msg.ActivateAck:
		e.onActivateAck(from, m)
	}
}

// route sends m to node: queued locally when node is this node, else
// encoded and sent through the mesh (reliable for 0x0500).
func (e *Engine) route(ctx context.Context, to uint64, m *msg.Message) error {
	if to == e.self {
		e.dispatch(e.self, m)
		return nil
	}
	return e.node.SendSubprotocol(ctx, to, compute.SubprotocolMigration, m.Encode())
}

// sendFailed tells node about a failure, best effort.
func (e *Engine) sendFailed(to, origin uint64, r msg.Reason) {
	if to == e.self {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := e.route(ctx, to, &msg.Message{Type: msg.MigrationFailed, Origin: origin, Reason: r}); err != nil {
		e.log(compute.LogDebug, "migration: could not send MigrationFailed", map[string]any{"to": to, "origin": origin, "error": err.Error()})
	}
}

func (e *Engine) cacheFailure(origin uint64, r msg.Reason) {
	e.mu.Lock()
	e.failures[origin] = r
	e.mu.Unlock()
}

// RuntimeShutdown is called by compute.Runtime.Shutdown: every record is
// dropped (the hosts are already gone), peers are told best effort, and the
// failure cache is cleared.
func (e *Engine) RuntimeShutdown() {
	e.mu.Lock()
	orchs := make([]*orchRec, 0, len(e.orch))
	for _, r := range e.orch {
		orchs = append(orchs, r)
	}
	type note struct{ to, origin uint64 }
	var notes []note
	var moved []*compute.DaemonHost // cut over, not in the registry: closed here
	for o, s := range e.src {
		if s.orch != e.self {
			notes = append(notes, note{s.orch, o})
		}
		if s.cutover {
			moved = append(moved, s.host)
		}
	}
	for o, t := range e.tgt {
		notes = append(notes, note{t.orch, o})
		e.reasm.Forget(o)
	}
	clear(e.src)
	clear(e.tgt)
	clear(e.failures)
	clear(e.activated)
	clear(e.handback)
	e.mu.Unlock()
	for _, h := range moved {
		h.Close()
	}
	reason := stateFailed("runtime shut down")
	for _, r := range orchs {
		e.mu.Lock()
		cut := r.phase >= PhaseCutover
		e.mu.Unlock()
		if e.finish(r, compute.ErrShuttingDown) {
			for _, p := range [2]uint64{r.source, r.target} {
				// Past cutover the target keeps the daemon: not told to fail.
				if p != e.self && !(cut && p == r.target) {
					notes = append(notes, note{p, r.origin})
				}
			}
		}
	}
	e.mu.Lock()
	clear(e.failures)
	e.mu.Unlock()
	if len(notes) == 0 {
		return
	}
	go func() {
		defer func() { _ = recover() }()
		for _, n := range notes {
			e.sendFailed(n.to, n.origin, reason)
		}
	}()
}

// lane is a serial queue on the runtime's worker pool.
type lane struct {
	e       *Engine
	mu      sync.Mutex
	jobs    []func()
	running bool
}

// do queues f on origin's lane.
func (e *Engine) do(origin uint64, f func()) {
	l := &e.lanes[(origin^origin>>32)%numLanes]
	l.mu.Lock()
	l.jobs = append(l.jobs, f)
	if l.running {
		l.mu.Unlock()
		return
	}
	l.running = true
	l.mu.Unlock()
	if err := e.rt.Submit(l.drain); err != nil {
		// Pool full, not started or shut down: keep the protocol moving.
		go l.drain()
	}
}

func (l *lane) drain() {
	for {
		l.mu.Lock()
		if len(l.jobs) == 0 {
			l.jobs = nil
			l.running = false
			l.mu.Unlock()
			return
		}
		f := l.jobs[0]
		l.jobs[0] = nil
		l.jobs = l.jobs[1:]
		l.mu.Unlock()
		l.e.runSafe(f)
	}
}

// runSafe runs f, reporting a panic instead of dying.
func (e *Engine) runSafe(f func()) {
	defer func() {
		if v := recover(); v != nil {
			e.log(compute.LogError, "migration: panic in protocol work", map[string]any{"panic": v, "stack": string(debug.Stack())})
		}
	}()
	f()
}

// watch makes sure the peer watchdog runs while records exist.
func (e *Engine) watch() {
	e.mu.Lock()
	if e.watching {
		e.mu.Unlock()
		return
	}
	e.watching = true
	e.mu.Unlock()
	go e.watchdog()
}

// watchdog aborts migrations whose peers lost their session; it exits when
// no record is left.
func (e *Engine) watchdog() {
	defer func() {
		if v := recover(); v != nil {
			e.log(compute.LogError, "migration: watchdog panicked", map[string]any{"panic": v})
			e.mu.Lock()
			e.watching = false
			e.mu.Unlock()
		}
	}()
	t := time.NewTicker(e.cfg.peerCheck)
	defer t.Stop()
	for range t.C {
		e.mu.Lock()
		if len(e.orch)+len(e.src)+len(e.tgt) == 0 {
			e.watching = false
			e.mu.Unlock()
			return
		}
		var orchs []*orchRec
		var srcs []*srcRec
		var tgts []*tgtRec
		for _, r := range e.orch {
			orchs = append(orchs, r)
		}
		for _, s := range e.src {
			srcs = append(srcs, s)
		}
		for _, x := range e.tgt {
			tgts = append(tgts, x)
		}
		e.mu.Unlock()
		for _, r := range orchs {
			e.mu.Lock()
			bound := r.opts.stallTimeout()
			stuck := !r.finished && bound > 0 && time.Since(r.lastMove) >= bound
			e.mu.Unlock()
			if stuck {
				r := r
				e.do(r.origin, func() { e.stalled(r) })
				continue
			}
			for _, p := range [2]uint64{r.source, r.target} {
				if p != e.self && !e.alive(p) {
					r, p := r, p
					e.do(r.origin, func() { e.orchPeerGone(r, p) })
					break
				}
			}
		}
		for _, s := range srcs {
			if s.orch != e.self && !e.alive(s.orch) {
				s := s
				e.do(s.origin, func() { e.srcOrchGone(s) })
			}
		}
		for _, x := range tgts {
			if (x.orch != e.self && !e.alive(x.orch)) || (x.chunkFrom != e.self && !e.alive(x.chunkFrom)) {
				x := x
				e.do(x.origin, func() { e.tgtFail(x, stateFailed("orchestrator is gone"), false) })
			}
		}
	}
}

func (e *Engine) alive(node uint64) bool {
	_, ok := e.node.PeerStaticKey(node)
	return ok
}

// openKey returns the node's static key prepared for OpenEnvelopeWith,
// derived once per key rather than once per migration.
func (e *Engine) openKey() *identity.StaticKey {
	priv := e.node.StaticPrivateKey()
	defer clear(priv[:])
	if k := e.staticKey.Load(); k != nil && k.Matches(priv) {
		return k
	}
	k := identity.NewStaticKey(priv)
	e.staticKey.Store(k)
	return k
}
