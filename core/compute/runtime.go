package compute

import (
	"context"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/netmesh/libnetmesh/core/causal"
	"github.com/netmesh/libnetmesh/core/identity"
)

// State is the runtime lifecycle.
//
//	Registering ──Start──▶ Ready ──Shutdown──▶ ShuttingDown
//	     └───────────────Shutdown──────────────────▲
//
// Registering accepts factories and migration entries; Ready also spawns,
// delivers and migrates; ShuttingDown is final and refuses everything.
type State uint32

const (
	StateRegistering State = iota
	StateReady
	StateShuttingDown
)

func (s State) String() string {
	switch s {
	case StateRegistering:
		return "registering"
	case StateReady:
		return "ready"
	case StateShuttingDown:
		return "shutting-down"
	}
	return "unknown"
}

// MigrationHandler receives migration (0x0500) messages on the node's
// receive goroutine; it must not block (hand work to Runtime.Submit). It is
// implemented by core/migration and attached with SetMigrationHandler.
type MigrationHandler interface {
	HandleMigrationMessage(from uint64, payload []byte)
}

// Option configures a Runtime.
type Option func(*options)

type options struct {
	logger  Logger
	exec    Executor
	workers int
	queue   int
}

// WithLogger sets where the runtime reports problems (panics in pool work,
// failed hooks). Without it reports are dropped.
func WithLogger(l Logger) Option { return func(o *options) { o.logger = l } }

// WithExecutor sets the executor CallUser posts user code to.
func WithExecutor(e Executor) Option { return func(o *options) { o.exec = e } }

// WithWorkers sets the pool's goroutine count (default GOMAXPROCS).
func WithWorkers(n int) Option { return func(o *options) { o.workers = n } }

// WithQueueSize sets the pool's queue bound (default 1024).
func WithQueueSize(n int) Option { return func(o *options) { o.queue = n } }

// Runtime is a node's compute runtime: the kind → factory table, the daemon
// and per-origin factory registries, the lifecycle gate and the worker pool.
// All methods are safe for concurrent use.
//
// Race fences (BEHAVIOUR §2): Start installs the 0x0500 handler before it
// publishes Ready; Shutdown publishes ShuttingDown before it sweeps, and
// every operation that inserts re-checks the state after inserting and rolls
// back, so nothing registered survives a shutdown.
type Runtime struct {
	_     [64]byte      // the fields read per delivery share no line with a neighbour object
	state atomic.Uint32 // first, next to reg's lock-free lookup words
	// obs is the observers' copy-on-write map (written under observers'
	// mutex), on the line a delivery reads anyway: every delivery checks it
	// with one atomic load.
	obs   atomic.Pointer[map[uint64][]observer]
	reg   registry
	node  Node
	pool  *pool
	exec  atomic.Pointer[Executor]
	clock coarseClock // output timestamps of registered hosts

	logger   Logger
	dispatch func(from uint64, payload []byte) // installed on the node; built once
	migH     atomic.Pointer[migrationHandlerBox]
	sink     atomic.Pointer[func(origin uint64, outs []causal.Event)]

	kinds struct {
		sync.RWMutex
		m map[string]Factory
	}

	// observers serializes the writers of obs.
	observers struct {
		sync.Mutex
		next uint64
	}

	// Test-only stalls, run (when set) between Start's handler install and
	// its Ready CAS, and between Spawn's readiness check and its inserts.
	testStartStall func()
	testSpawnStall func()
}

type migrationHandlerBox struct{ h MigrationHandler }

type observer struct {
	id uint64
	fn func(causal.Event)
}

// NewRuntime builds a runtime on node, in Registering. It never shuts the
// node down.
func NewRuntime(node Node, opts ...Option) *Runtime {
	o := options{workers: runtime.GOMAXPROCS(0), queue: 1024}
	for _, opt := range opts {
		opt(&o)
	}
	if o.workers < 1 {
		o.workers = 1
	}
	if o.queue < 1 {
		o.queue = 1
	}
	r := &Runtime{node: node, logger: o.logger}
	r.reg.init()
	r.kinds.m = make(map[string]Factory)
	r.pool = newPool(o.workers, o.queue, r.log)
	r.SetExecutor(o.exec)
	r.dispatch = r.handleMigration
	return r
}

// Log reports through the logger set with WithLogger (for core/migration).
func (r *Runtime) Log(level int, msg string, fields map[string]any) { r.log(level, msg, fields) }

func (r *Runtime) log(level int, msg string, fields map[string]any) {
	if r.logger == nil {
		return
	}
	defer func() { _ = recover() }() // a panicking logger must not take us down
	r.logger(level, msg, fields)
}

// Node is the node the runtime was built on.
func (r *Runtime) Node() Node { return r.node }

// State is the current lifecycle state.
func (r *Runtime) State() State { return State(r.state.Load()) }

// IsReady reports State() == StateReady.
func (r *Runtime) IsReady() bool { return r.State() == StateReady }

func (r *Runtime) requireReady() error {
	switch State(r.state.Load()) {
	case StateReady:
		return nil
	case StateRegistering:
		return ErrNotReady
	}
	return ErrShuttingDown
}

// RegisterFactory registers kind. Allowed in Registering and Ready; a
// duplicate kind gives ErrFactoryAlreadyRegistered (atomically: of many
// concurrent callers exactly one wins); ShuttingDown gives ErrShuttingDown.
func (r *Runtime) RegisterFactory(kind string, f Factory) error {
	if f == nil {
		return wrapErr(ErrInvalidArgument, "nil factory", nil)
	}
	if r.State() == StateShuttingDown {
		return ErrShuttingDown
	}
	r.kinds.Lock()
	defer r.kinds.Unlock()
	if _, ok := r.kinds.m[kind]; ok {
		return wrapErr(ErrFactoryAlreadyRegistered, "kind "+quote(kind), nil)
	}
	r.kinds.m[kind] = f
	return nil
}

// KindFactory looks up the factory registered for kind.
func (r *Runtime) KindFactory(kind string) (Factory, error) {
	r.kinds.RLock()
	f, ok := r.kinds.m[kind]
	r.kinds.RUnlock()
	if !ok {
		return nil, wrapErr(ErrFactoryNotFound, "kind "+quote(kind), nil)
	}
	return f, nil
}

// Start moves Registering → Ready. It starts the worker pool and installs
// the 0x0500 dispatcher on the node before publishing Ready, so whoever
// sees Ready can rely on both. Idempotent; if a concurrent Shutdown wins,
// Start removes the dispatcher again and returns ErrShuttingDown.
func (r *Runtime) Start(ctx context.Context) error {
	for {
		switch State(r.state.Load()) {
		case StateReady:
			return nil
		case StateShuttingDown:
			return ErrShuttingDown
		}
		r.pool.start()
		r.node.SetSubprotocolHandler(SubprotocolMigration, r.dispatch)
		if r.testStartStall != nil {
			r.testStartStall()
		}
		if r.state.CompareAndSwap(uint32(StateRegistering), uint32(StateReady)) {
			return nil
		}
		if r.State() == StateShuttingDown {
			r.node.SetSubprotocolHandler(SubprotocolMigration, nil)
			return ErrShuttingDown
		}
		// Another Start won; loop to report Ready.
	}
}

// Shutdown moves to ShuttingDown (first, so new work is refused at once),
// then stops every daemon, drops every factory entry, tombstone and the
// migration engine's cached state, removes the 0x0500 dispatcher and drains
// the worker pool (bounded by ctx: ErrTimeout). Idempotent. The node is
// left running.
func (r *Runtime) Shutdown(ctx context.Context) error {
	r.state.Store(uint32(StateShuttingDown))
	for _, h := range r.reg.clear() {
		h.Close() // no registry lock held: a Close hook may call back in
	}
	if b := r.migH.Load(); b != nil {
		if s, ok := b.h.(interface{ RuntimeShutdown() }); ok {
			s.RuntimeShutdown()
		}
	}
	r.node.SetSubprotocolHandler(SubprotocolMigration, nil)
	r.clock.close()
	return r.pool.stop(ctx)
}

// SetMigrationHandler attaches the migration engine (core/migration): the
// runtime's 0x0500 dispatcher forwards every message to h. With no handler
// attached, migration messages are dropped (the peer's timeout applies):
// the runtime does not answer for an engine it does not have. If h also
// implements interface{ RuntimeShutdown() }, Shutdown calls it so the engine
// can drop its records and cached failures.
func (r *Runtime) SetMigrationHandler(h MigrationHandler) {
	if h == nil {
		r.migH.Store(nil)
		return
	}
	r.migH.Store(&migrationHandlerBox{h: h})
}

func (r *Runtime) handleMigration(from uint64, payload []byte) {
	if b := r.migH.Load(); b != nil {
		b.h.HandleMigrationMessage(from, payload)
	}
}

// DaemonHandle refers to a spawned daemon by origin. Dropping it does not
// stop the daemon.
type DaemonHandle struct {
	rt     *Runtime
	origin uint64
	id     identity.EntityID
}

// OriginHash is the daemon's origin hash.
func (d *DaemonHandle) OriginHash() uint64 { return d.origin }

// EntityID is the daemon's entity id.
func (d *DaemonHandle) EntityID() identity.EntityID { return d.id }

// Stats reads the daemon's counters (never waits for a call in progress).
func (d *DaemonHandle) Stats() (Stats, error) {
	h := d.rt.reg.host(d.origin)
	if h == nil {
		return Stats{}, d.rt.missing(d.origin)
	}
	return h.Stats(), nil
}

// Snapshot snapshots the daemon; nil for a stateless daemon.
func (d *DaemonHandle) Snapshot(ctx context.Context) (*causal.Snapshot, error) {
	h := d.rt.reg.host(d.origin)
	if h == nil {
		return nil, d.rt.missing(d.origin)
	}
	return h.Snapshot()
}

// LatestSnapshot is the daemon's latest automatic snapshot, nil if none.
func (d *DaemonHandle) LatestSnapshot() (*causal.Snapshot, error) {
	h := d.rt.reg.host(d.origin)
	if h == nil {
		return nil, d.rt.missing(d.origin)
	}
	return h.LatestSnapshot(), nil
}

// missing is the error for an origin with no host: *MovedError when the
// daemon migrated away, else ErrDaemonNotFound.
func (r *Runtime) missing(origin uint64) error {
	if node, ok := r.reg.movedTo(origin); ok {
		return &MovedError{Node: node}
	}
	return wrapErr(ErrDaemonNotFound, originStr(origin), nil)
}

// Spawn builds a daemon of kind under identity kp (the factory runs exactly
// once) and registers it: the per-origin factory entry first, then the
// host. Needs Ready. Unknown kind → ErrFactoryNotFound; an origin already in
// use (live daemon or any factory entry, placeholders included) →
// ErrAlreadyRegistered with nothing changed; a Shutdown racing in → rolled
// back, ErrShuttingDown.
func (r *Runtime) Spawn(ctx context.Context, kind string, kp *identity.Keypair, cfg DaemonConfig) (*DaemonHandle, error) {
	if err := r.requireReady(); err != nil {
		return nil, err
	}
	if r.testSpawnStall != nil {
		r.testSpawnStall()
	}
	f, err := r.KindFactory(kind)
	if err != nil {
		return nil, err
	}
	if kp == nil {
		return nil, wrapErr(ErrInvalidArgument, "nil keypair", nil)
	}
	if r.reg.inUse(kp.OriginHash()) {
		return nil, r.alreadyRegistered(kp.OriginHash())
	}
	d, err := build(f)
	if err != nil {
		return nil, err
	}
	return r.register(&FactoryEntry{Kind: kind, Factory: f, Origin: kp.OriginHash(), Keypair: kp, Config: cfg}, d, func() (*DaemonHost, error) {
		return NewHost(d, kp, cfg)
	})
}

// SpawnWithDaemon is Spawn with a daemon the caller built (a host language);
// kindFactory is kept, re-callable, for rebuilding it on a migration target.
func (r *Runtime) SpawnWithDaemon(ctx context.Context, kp *identity.Keypair, cfg DaemonConfig, d Daemon, kindFactory Factory) (*DaemonHandle, error) {
	if err := r.requireReady(); err != nil {
		return nil, err
	}
	if r.testSpawnStall != nil {
		r.testSpawnStall()
	}
	if kp == nil || d == nil || kindFactory == nil {
		return nil, wrapErr(ErrInvalidArgument, "nil keypair, daemon or factory", nil)
	}
	return r.register(&FactoryEntry{Factory: kindFactory, Origin: kp.OriginHash(), Keypair: kp, Config: cfg}, d, func() (*DaemonHost, error) {
		return NewHost(d, kp, cfg)
	})
}

// SpawnFromSnapshot builds a daemon of kind and restores it from snap. Needs
// Ready; the kind is looked up first (ErrFactoryNotFound), then snap's full
// entity id is compared with kp (ErrSnapshotIdentityMismatch, no side
// effects); a failing restore (ErrRestoreFailed, bad ledger bytes included)
// rolls back.
func (r *Runtime) SpawnFromSnapshot(ctx context.Context, kind string, kp *identity.Keypair, snap *causal.Snapshot, cfg DaemonConfig) (*DaemonHandle, error) {
	if err := r.requireReady(); err != nil {
		return nil, err
	}
	f, err := r.KindFactory(kind)
	if err != nil {
		return nil, err
	}
	if err := checkSnapshotIdentity(kp, snap); err != nil {
		return nil, err
	}
	if r.reg.inUse(kp.OriginHash()) {
		return nil, r.alreadyRegistered(kp.OriginHash())
	}
	d, err := build(f)
	if err != nil {
		return nil, err
	}
	return r.register(&FactoryEntry{Kind: kind, Factory: f, Origin: kp.OriginHash(), Keypair: kp, Config: cfg}, d, func() (*DaemonHost, error) {
		return RestoreHost(d, kp, snap, cfg)
	})
}

// SpawnFromSnapshotWithDaemon is SpawnFromSnapshot with a caller-built
// daemon and a re-callable kindFactory.
func (r *Runtime) SpawnFromSnapshotWithDaemon(ctx context.Context, kp *identity.Keypair, snap *causal.Snapshot, cfg DaemonConfig, d Daemon, kindFactory Factory) (*DaemonHandle, error) {
	if err := r.requireReady(); err != nil {
		return nil, err
	}
	if err := checkSnapshotIdentity(kp, snap); err != nil {
		return nil, err
	}
	if d == nil || kindFactory == nil {
		return nil, wrapErr(ErrInvalidArgument, "nil daemon or factory", nil)
	}
	return r.register(&FactoryEntry{Factory: kindFactory, Origin: kp.OriginHash(), Keypair: kp, Config: cfg}, d, func() (*DaemonHost, error) {
		return RestoreHost(d, kp, snap, cfg)
	})
}

func checkSnapshotIdentity(kp *identity.Keypair, snap *causal.Snapshot) error {
	if kp == nil || snap == nil {
		return wrapErr(ErrInvalidArgument, "nil keypair or snapshot", nil)
	}
	if snap.EntityID != kp.EntityID() {
		return wrapErr(ErrSnapshotIdentityMismatch, "snapshot of "+originStr(identity.OriginHashOf(snap.EntityID))+
			", identity "+originStr(kp.OriginHash()), nil)
	}
	return nil
}

// build calls a factory once, turning a panic, an error or a nil daemon
// into ErrProcessFailed.
func build(f Factory) (d Daemon, err error) {
	defer func() {
		if v := recover(); v != nil {
			d, err = nil, wrapErr(ErrProcessFailed, "factory", &panicError{v})
		}
	}()
	d, err = f()
	if err != nil {
		return nil, wrapErr(ErrProcessFailed, "factory", err)
	}
	if d == nil {
		return nil, wrapErr(ErrProcessFailed, "factory returned no daemon", nil)
	}
	return d, nil
}

func (r *Runtime) alreadyRegistered(origin uint64) error {
	return wrapErr(ErrAlreadyRegistered, originStr(origin), nil)
}

// register inserts entry, then the host mk builds from d (user code:
// restore runs with no registry lock held), then fences against a racing
// Shutdown. Every rollback removes exactly what this call inserted. d is
// owned by the call: on error it has been closed (Closer), once — by mk's
// constructor when that failed, else here.
func (r *Runtime) register(entry *FactoryEntry, d Daemon, mk func() (*DaemonHost, error)) (*DaemonHandle, error) {
	if !r.reg.insertFactory(entry) {
		closeUnhosted(d)
		return nil, r.alreadyRegistered(entry.Origin)
	}
	h, err := mk()
	if err != nil {
		r.reg.removeFactory(entry)
		return nil, err
	}
	h.clock.Store(&r.clock)
	if !r.reg.insertHost(h) {
		r.reg.removeFactory(entry)
		h.Close()
		return nil, r.alreadyRegistered(entry.Origin)
	}
	if r.State() == StateShuttingDown {
		r.reg.removeHost(h)
		r.reg.removeFactory(entry)
		h.Close()
		return nil, ErrShuttingDown
	}
	return &DaemonHandle{rt: r, origin: h.origin, id: h.EntityID()}, nil
}

// Stop stops a daemon and drops its factory entry. Registering →
// ErrNotReady; unknown origin → ErrDaemonNotFound (or *MovedError if it
// migrated away), except during ShuttingDown where it succeeds. It does not
// wait for a call in progress; later calls fail with ErrDaemonNotFound.
func (r *Runtime) Stop(ctx context.Context, origin uint64) error {
	if r.State() == StateRegistering {
		return ErrNotReady
	}
	if h, ok := r.reg.removeOrigin(origin); ok {
		h.Close() // no registry lock held: a Close hook may call back in
		return nil
	}
	if r.State() == StateShuttingDown {
		return nil
	}
	return r.missing(origin)
}

// Snapshot snapshots a daemon; nil for a stateless one. Needs Ready.
func (r *Runtime) Snapshot(ctx context.Context, origin uint64) (*causal.Snapshot, error) {
	if err := r.requireReady(); err != nil {
		return nil, err
	}
	h := r.reg.host(origin)
	if h == nil {
		return nil, r.missing(origin)
	}
	return h.Snapshot()
}

// Deliver runs ev through the daemon at origin and returns its wrapped
// outputs (nil when none, or when the daemon is mid-migration and ev was
// queued). Needs Ready. After a successful processing it fires the origin's
// observers with ev, outside any lock. A daemon that moved away gives
// *MovedError. ev.Payload is borrowed for the call.
func (r *Runtime) Deliver(origin uint64, ev causal.Event) ([]causal.Event, error) {
	return r.DeliverAppend(nil, origin, ev)
}

// DeliverAppend is Deliver appending the outputs to dst (lets a caller that
// copies them out reuse one slice: no allocation of its own per event).
func (r *Runtime) DeliverAppend(dst []causal.Event, origin uint64, ev causal.Event) ([]causal.Event, error) {
	if State(r.state.Load()) != StateReady {
		return dst, r.requireReady()
	}
	h := r.reg.host(origin)
	if h == nil {
		return dst, r.missing(origin)
	}
	out, processed, err := h.deliverAppend(dst, &ev)
	if processed {
		r.fireObserversOf(origin, &ev)
	}
	return out, err
}

// DeliverVisit is Deliver handing the outputs to visit instead of returning
// them: visit runs once per processed event (with an empty slice when there
// are no outputs; not at all when ev was queued or refused), on the calling
// goroutine, while the daemon's host is locked — it must not call back into
// the runtime for the same daemon. The slice and the payloads are valid only
// during visit (a Lender daemon lends them from a per-thread buffer, and the
// goroutine is locked to its thread meanwhile): copy what must outlive it.
// visit's error is returned as is (the event counts as processed; observers
// fire). *ev is only read, during the call (by pointer: the hot path of the
// C ABI).
func (r *Runtime) DeliverVisit(origin uint64, ev *causal.Event, visit func(outs []causal.Event) error) error {
	return r.deliverVisit(origin, ev, visit, false)
}

// DeliverVisitPinned is DeliverVisit for a caller whose goroutine cannot
// leave its OS thread during the call — a Go function called from C (a cgo
// export: the runtime keeps a callback on the C thread that made it) or one
// after runtime.LockOSThread. The runtime then skips locking the goroutine
// to its thread around a Lender's lent outputs. Calling it from a goroutine
// that may move is a misuse: lent outputs could be overwritten while visit
// reads them.
func (r *Runtime) DeliverVisitPinned(origin uint64, ev *causal.Event, visit func(outs []causal.Event) error) error {
	return r.deliverVisit(origin, ev, visit, true)
}

func (r *Runtime) deliverVisit(origin uint64, ev *causal.Event, visit func(outs []causal.Event) error, pinned bool) error {
	if State(r.state.Load()) != StateReady {
		return r.requireReady()
	}
	h := r.reg.cached(origin) // registry.host with its hit inlined
	if h == nil {
		if h = r.reg.hostSlow(origin); h == nil {
			return r.missing(origin)
		}
	}
	processed, err := h.deliverVisit(ev, visit, pinned)
	if processed && r.obs.Load() != nil {
		r.fireObserversOf(origin, ev)
	}
	return err
}

// OnDelivered registers fn to run after every successful processing of an
// event by the daemon at origin (also for queued events processed later),
// with the input event, outside any lock, on the delivering goroutine. Keep
// it cheap. The returned cancel removes it and is idempotent.
func (r *Runtime) OnDelivered(origin uint64, fn func(causal.Event)) (cancel func()) {
	o := &r.observers
	o.Lock()
	o.next++
	id := o.next
	r.updateObservers(func(m map[uint64][]observer) {
		m[origin] = append(append([]observer(nil), m[origin]...), observer{id: id, fn: fn})
	})
	o.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			o.Lock()
			defer o.Unlock()
			r.updateObservers(func(m map[uint64][]observer) {
				var keep []observer
				for _, ob := range m[origin] {
					if ob.id != id {
						keep = append(keep, ob)
					}
				}
				if len(keep) == 0 {
					delete(m, origin)
				} else {
					m[origin] = keep
				}
			})
		})
	}
}

// updateObservers copies the observer map, edits the copy and publishes it.
// Callers hold r.observers' mutex.
func (r *Runtime) updateObservers(edit func(map[uint64][]observer)) {
	old := r.obs.Load()
	m := make(map[uint64][]observer)
	if old != nil {
		for k, v := range *old {
			m[k] = v
		}
	}
	edit(m)
	if len(m) == 0 {
		r.obs.Store(nil)
		return
	}
	r.obs.Store(&m)
}

func (r *Runtime) fireObservers(origin uint64, ev causal.Event) { r.fireObserversOf(origin, &ev) }

// fireObserversOf is fireObservers without copying ev when nobody observes.
func (r *Runtime) fireObserversOf(origin uint64, ev *causal.Event) {
	if m := r.obs.Load(); m != nil {
		for _, ob := range (*m)[origin] {
			ob.fn(*ev)
		}
	}
}

// SetOutputSink sets (nil clears) where outputs produced with no caller
// waiting go (queued events processed after a failed migration, replay on a
// migration target): sink(origin, outputs), called outside any lock.
func (r *Runtime) SetOutputSink(sink func(origin uint64, outs []causal.Event)) {
	if sink == nil {
		r.sink.Store(nil)
		return
	}
	r.sink.Store(&sink)
}

// DrainHost (for core/migration) runs h.Resume(prefix): prefix, then h's
// queue, in order, back to Normal. Outputs go to the output sink and
// observers fire for each processed event; per-event errors are reported
// to the logger. Call it through CallUser when an executor may be set.
func (r *Runtime) DrainHost(h *DaemonHost, prefix []causal.Event) error {
	res, err := h.Resume(prefix)
	if err != nil {
		return err
	}
	sp := r.sink.Load()
	for _, p := range res {
		if p.Err != nil {
			r.log(LogWarn, "compute: queued event failed", map[string]any{"origin": h.origin, "seq": p.Input.Link.Sequence, "error": p.Err.Error()})
			continue
		}
		if sp != nil && len(p.Outputs) > 0 {
			(*sp)(h.origin, p.Outputs)
		}
		r.fireObservers(h.origin, p.Input)
	}
	return nil
}

// DaemonCount is the number of live daemons.
func (r *Runtime) DaemonCount() int { return r.reg.count() }

// Subscriptions is a copy of the daemon's subscription ledger.
func (r *Runtime) Subscriptions(origin uint64) ([]causal.Binding, error) {
	h := r.reg.host(origin)
	if h == nil {
		return nil, r.missing(origin)
	}
	return h.Subscriptions(), nil
}

// SubscribeChannel subscribes the daemon at origin to channel on publisher
// (token: a raw permission token or nil). Needs Ready and the daemon; the
// node's wire call goes first and the ledger records the binding only if it
// succeeded. A failed wire call is ErrTimeout when ctx ended, else
// ErrProcessFailed wrapping the node's error.
func (r *Runtime) SubscribeChannel(ctx context.Context, origin, publisher uint64, channel string, token []byte) error {
	h, err := r.channelHost(origin, channel, token)
	if err != nil {
		return err
	}
	if err := r.node.SubscribeChannel(ctx, publisher, channel, token); err != nil {
		return wireErr("subscribe "+quote(channel), ctx, err)
	}
	return h.RecordSubscription(publisher, channel, token)
}

// UnsubscribeChannel is the reverse of SubscribeChannel: wire call first,
// then the ledger.
func (r *Runtime) UnsubscribeChannel(ctx context.Context, origin, publisher uint64, channel string) error {
	h, err := r.channelHost(origin, channel, nil)
	if err != nil {
		return err
	}
	if err := r.node.UnsubscribeChannel(ctx, publisher, channel); err != nil {
		return wireErr("unsubscribe "+quote(channel), ctx, err)
	}
	h.ForgetSubscription(publisher, channel)
	return nil
}

func (r *Runtime) channelHost(origin uint64, channel string, token []byte) (*DaemonHost, error) {
	if err := r.requireReady(); err != nil {
		return nil, err
	}
	if err := (causal.Binding{Channel: channel, Token: token}).Validate(); err != nil {
		return nil, wrapErr(ErrInvalidArgument, "subscription", err)
	}
	h := r.reg.host(origin)
	if h == nil {
		return nil, r.missing(origin)
	}
	return h, nil
}

func wireErr(what string, ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return wrapErr(ErrTimeout, what, err)
	}
	return wrapErr(ErrProcessFailed, what, err)
}

// ExpectMigration registers a placeholder factory entry (no keypair) so this
// node can receive the daemon at origin; its identity arrives in the
// snapshot's envelope. Allowed in Registering and Ready.
func (r *Runtime) ExpectMigration(kind string, origin uint64, cfg DaemonConfig) error {
	return r.addTargetEntry(kind, origin, nil, cfg)
}

// RegisterMigrationTargetIdentity registers a factory entry with the full
// keypair, for migrations that carry no envelope.
func (r *Runtime) RegisterMigrationTargetIdentity(kind string, kp *identity.Keypair, cfg DaemonConfig) error {
	if kp == nil {
		return wrapErr(ErrInvalidArgument, "nil keypair", nil)
	}
	return r.addTargetEntry(kind, kp.OriginHash(), kp, cfg)
}

func (r *Runtime) addTargetEntry(kind string, origin uint64, kp *identity.Keypair, cfg DaemonConfig) error {
	if r.State() == StateShuttingDown {
		return ErrShuttingDown
	}
	f, err := r.KindFactory(kind)
	if err != nil {
		return err
	}
	e := &FactoryEntry{Kind: kind, Factory: f, Origin: origin, Keypair: kp, Config: cfg}
	if !r.reg.insertFactory(e) {
		return r.alreadyRegistered(origin)
	}
	if r.State() == StateShuttingDown {
		r.reg.removeFactory(e)
		return ErrShuttingDown
	}
	return nil
}

// Hooks for core/migration. They bypass the lifecycle checks of the public
// operations (the migration engine applies its own) but keep the shutdown
// fence.

// LookupHost returns the live host at origin.
func (r *Runtime) LookupHost(origin uint64) (*DaemonHost, bool) {
	h := r.reg.host(origin)
	return h, h != nil
}

// LookupFactoryEntry returns origin's factory entry.
func (r *Runtime) LookupFactoryEntry(origin uint64) (*FactoryEntry, bool) {
	e := r.reg.factory(origin)
	return e, e != nil
}

// RemoveFactoryEntry removes e if it is still origin's entry.
func (r *Runtime) RemoveFactoryEntry(e *FactoryEntry) bool { return r.reg.removeFactory(e) }

// RemoveHost unregisters h without stopping semantics: the factory entry
// stays, h is not closed, and a host in PhaseMoved leaves a tombstone so
// Deliver keeps answering *MovedError. False if h is no longer registered.
func (r *Runtime) RemoveHost(h *DaemonHost) bool { return r.reg.removeHost(h) }

// InsertHost registers a restored host (e.g. on a migration target).
// ErrAlreadyRegistered if the origin has a live host; ErrShuttingDown (and
// nothing registered) if the runtime is or goes shutting down.
func (r *Runtime) InsertHost(h *DaemonHost) error {
	if h == nil {
		return wrapErr(ErrInvalidArgument, "nil host", nil)
	}
	if r.State() == StateShuttingDown {
		return ErrShuttingDown
	}
	h.clock.Store(&r.clock)
	if !r.reg.insertHost(h) {
		return r.alreadyRegistered(h.origin)
	}
	if r.State() == StateShuttingDown {
		r.reg.removeHost(h)
		h.Close()
		return ErrShuttingDown
	}
	return nil
}

func quote(s string) string { return "\"" + s + "\"" }
