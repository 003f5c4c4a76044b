package migration

import (
	"context"
	"math/rand/v2"

	"github.com/netmesh/libnetmesh/core/causal"
	"github.com/netmesh/libnetmesh/core/compute"
	"github.com/netmesh/libnetmesh/core/identity"
	"github.com/netmesh/libnetmesh/core/migration/msg"
)

// srcRec is the source's record of a migration. Guarded by Engine.mu; its
// host calls happen on the origin's lane (or in StartMigration before the
// record is visible to messages).
type srcRec struct {
	origin  uint64
	orch    uint64
	target  uint64
	host    *compute.DaemonHost
	shipped []causal.Event // every event taken off the host's queue, in order
	sent    bool           // the snapshot was taken (and handed to the mesh)
	cutover bool
}

// beginSource starts the source side: the daemon buffers from now on, is
// snapshotted and (with identity transport) its identity sealed for target.
// It returns the encoded snapshot. On error nothing is left behind. viaExec
// runs the snapshot through Runtime.CallUser (pool work); host-initiated
// calls run it inline.
func (e *Engine) beginSource(origin, orch, target uint64, sealID, viaExec bool) (*srcRec, []byte, uint64, error) {
	h, ok := e.rt.LookupHost(origin)
	if !ok {
		return nil, nil, 0, localErr(compute.MigrationDaemonNotFound, "origin %s is not on node %s", hexID(origin), hexID(e.self))
	}
	var key [32]byte
	if sealID {
		if key, ok = e.node.PeerStaticKey(target); !ok {
			return nil, nil, 0, localErr(compute.MigrationStateFailed,
				"identity transport needs the X25519 static key of target node %s, which is unknown (not connected?)", hexID(target))
		}
		if h.Keypair().IsReadOnly() {
			return nil, nil, 0, localErr(compute.MigrationStateFailed, "identity transport needs the daemon's secret key, which this node does not hold")
		}
	}
	s := &srcRec{origin: origin, orch: orch, target: target, host: h}
	e.mu.Lock()
	if e.src[origin] != nil {
		e.mu.Unlock()
		return nil, nil, 0, localErr(compute.MigrationAlreadyMigrating, "origin %s", hexID(origin))
	}
	e.src[origin] = s
	e.mu.Unlock()
	e.watch()
	// Everything queued from now on rides BufferedEvents, whose decoder
	// (ours and the 0.24 reference's) refuses payloads over 7000 bytes: such
	// an event is refused at Deliver time instead of being lost later.
	if err := h.BeginMigrationBuffering(compute.BufferRules{MaxPayload: msg.MaxEventPayload}); err != nil {
		e.dropSrc(s)
		return nil, nil, 0, err
	}
	var snap *causal.Snapshot
	var err error
	if viaExec {
		if cerr := e.rt.CallUser(context.Background(), func() { snap, err = h.SnapshotForMigration() }); cerr != nil && err == nil {
			err = cerr
		}
	} else {
		snap, err = h.SnapshotForMigration()
	}
	fail := func(err error) (*srcRec, []byte, uint64, error) {
		e.srcAbort(s)
		return nil, nil, 0, err
	}
	if err != nil {
		return fail(localErr(compute.MigrationStateFailed, "snapshot: %v", err))
	}
	if sealID {
		env, err := identity.SealEnvelope(h.Keypair(), key, snap.ChainLink.Bytes())
		if err != nil {
			return fail(localErr(compute.MigrationStateFailed, "sealing the identity envelope: %v", err))
		}
		snap.Envelope = &env
	}
	if n := snap.EncodedLen(); n > msg.MaxSnapshotBytes {
		return fail(localErr(compute.MigrationSnapshotTooLarge, "%d bytes (limit %d)", n, msg.MaxSnapshotBytes))
	}
	e.mu.Lock()
	s.sent = true
	e.mu.Unlock()
	return s, snap.Encode(), snap.ThroughSeq, nil
}

// dropSrc removes s from the records if it is still there.
func (e *Engine) dropSrc(s *srcRec) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.src[s.origin] != s {
		return false
	}
	delete(e.src, s.origin)
	return true
}

// srcRelease ends the source side of a migration that will not come back:
// the record is dropped and, if the daemon was cut over, its host is closed
// (the daemon's Close hook runs: a host language's finalizer). Until now the
// host had to stay open, because UndoCutover can still bring the daemon back
// while the record exists.
func (e *Engine) srcRelease(s *srcRec) {
	if !e.dropSrc(s) {
		return
	}
	e.mu.Lock()
	cut := s.cutover
	e.mu.Unlock()
	if cut {
		s.host.Close()
	}
}

// srcTake takes the events queued on the source so far (for shipping
// before cutover).
func (e *Engine) srcTake(s *srcRec) []causal.Event {
	evs := s.host.TakeQueued()
	e.mu.Lock()
	s.shipped = append(s.shipped, evs...)
	e.mu.Unlock()
	return evs
}

// srcAbort ends the source side of a failed migration: the daemon stays
// here and processes everything that was queued, in order. After a cutover
// (the target vanished before activating) the cutover is undone first.
func (e *Engine) srcAbort(s *srcRec) {
	if !e.dropSrc(s) {
		return
	}
	if s.orch != e.self {
		// A remote orchestrator passes on what the target hands back.
		e.expectHandBack(s.origin, s.orch, e.self)
	}
	e.mu.Lock()
	shipped, cut := s.shipped, s.cutover
	s.shipped = nil
	e.mu.Unlock()
	h := s.host
	if cut {
		if err := h.UndoCutover(shipped); err != nil {
			e.log(compute.LogError, "migration: cannot undo cutover", map[string]any{"origin": s.origin, "error": err.Error()})
			return
		}
		shipped = nil
		if err := e.rt.InsertHost(h); err != nil {
			e.log(compute.LogError, "migration: cannot re-register the daemon after an undone cutover", map[string]any{"origin": s.origin, "error": err.Error()})
			return
		}
	}
	var derr error
	if err := e.rt.CallUser(context.Background(), func() { derr = e.rt.DrainHost(h, shipped) }); err != nil || derr != nil {
		e.log(compute.LogWarn, "migration: draining the source queue failed", map[string]any{"origin": s.origin, "error": firstErr(err, derr)})
	}
}

// srcCutover gives the daemon up: hooks tear its subscriptions down, the
// host turns Moved(target) and is unregistered (leaving a tombstone), and
// the events queued since the last take are returned for forwarding.
func (e *Engine) srcCutover(s *srcRec) []causal.Event {
	h := s.host
	if subs := h.Subscriptions(); len(subs) > 0 {
		e.hook(func() { e.teardownSubscriptions(s.origin, subs) })
	}
	rest, err := h.Cutover(s.target)
	if err != nil {
		e.log(compute.LogError, "migration: cutover refused", map[string]any{"origin": s.origin, "error": err.Error()})
	}
	e.rt.RemoveHost(h)
	e.mu.Lock()
	s.shipped = append(s.shipped, rest...)
	s.cutover = true
	e.mu.Unlock()
	return rest
}

// onTakeSnapshot: a remote orchestrator asks this node to migrate its
// daemon. Not peer-checked (any orchestrator may drive a migration).
func (e *Engine) onTakeSnapshot(from uint64, m *msg.Message) {
	if !e.ready() {
		e.sendFailed(from, m.Origin, msg.Reason{Code: msg.NotReady})
		return
	}
	s, data, seq, err := e.beginSource(m.Origin, from, m.TargetNode, true, true)
	if err != nil {
		e.sendFailed(from, m.Origin, reasonOf(err))
		return
	}
	ctx := context.Background()
	for _, c := range msg.SplitMessages(m.Origin, seq, data) {
		if err := e.route(ctx, from, c); err != nil {
			e.srcAbort(s)
			return
		}
	}
}

// onCutoverNotify: the orchestrator says the target replayed; give the
// daemon up and forward what queued meanwhile, then confirm.
func (e *Engine) onCutoverNotify(from uint64, m *msg.Message) {
	e.mu.Lock()
	s := e.src[m.Origin]
	e.mu.Unlock()
	if s == nil {
		e.targetCutover(from, m) // the orchestrator tells the target
		return
	}
	if s.orch != from || s.cutover || m.TargetNode != s.target {
		return
	}
	rest := e.srcCutover(s)
	ctx := context.Background()
	for _, b := range batches(m.Origin, rest) {
		if err := e.route(ctx, from, b); err != nil {
			e.log(compute.LogWarn, "migration: forwarding queued events failed", map[string]any{"origin": m.Origin, "error": err.Error()})
		}
	}
	if err := e.route(ctx, from, &msg.Message{Type: msg.CleanupComplete, Origin: m.Origin}); err != nil {
		e.log(compute.LogWarn, "migration: CleanupComplete not sent", map[string]any{"origin": m.Origin, "error": err.Error()})
	}
	if from != e.self {
		// A remote orchestrator sends nothing more to the source: final.
		e.srcRelease(s)
	}
}

// srcOrchGone: the remote orchestrator vanished. Before cutover the daemon
// resumes here; after it, it belongs to the target.
func (e *Engine) srcOrchGone(s *srcRec) {
	e.mu.Lock()
	cut := s.cutover
	e.mu.Unlock()
	if cut {
		e.srcRelease(s)
		return
	}
	e.srcAbort(s)
}

// batches cuts events into BufferedEvents messages of at most
// maxBatchBytes encoded bytes each (so each fits one mesh payload; a
// single event of up to msg.MaxEventPayload always fits). Every message
// gets a fresh batch id: two batches carrying identical events are two
// batches, not a duplicate (see msg.Message.Batch). With no events it
// returns no message.
func batches(origin uint64, evs []causal.Event) []*msg.Message {
	var out []*msg.Message
	const head = 1 + 8 + 4 + msg.BatchTrailerLen
	size := head
	start := 0
	for i, ev := range evs {
		n := causal.LinkSize + 4 + len(ev.Payload) + 8
		if i > start && size+n > maxBatchBytes {
			out = append(out, newBatch(origin, evs[start:i]))
			start, size = i, head
		}
		size += n
	}
	if start < len(evs) {
		out = append(out, newBatch(origin, evs[start:]))
	}
	return out
}

// newBatch is a BufferedEvents message with a fresh non-zero batch id.
func newBatch(origin uint64, evs []causal.Event) *msg.Message {
	return &msg.Message{Type: msg.BufferedEvents, Origin: origin, Events: evs, Batch: rand.Uint64() | 1}
}

// oversized reports an event the BufferedEvents format cannot carry. The
// hosts refuse such events while migrating, so this is a last guard only.
func oversized(evs []causal.Event) bool {
	for _, ev := range evs {
		if len(ev.Payload) > msg.MaxEventPayload {
			return true
		}
	}
	return false
}

func firstErr(errs ...error) string {
	for _, err := range errs {
		if err != nil {
			return err.Error()
		}
	}
	return ""
}
