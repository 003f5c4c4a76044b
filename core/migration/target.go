package migration

import (
	"context"
	"errors"

	"github.com/zeebo/xxh3"

	"github.com/netmesh/libnetmesh/core/causal"
	"github.com/netmesh/libnetmesh/core/compute"
	"github.com/netmesh/libnetmesh/core/identity"
	"github.com/netmesh/libnetmesh/core/migration/msg"
)

type tgtState uint8

const (
	tgtAssembling tgtState = iota
	tgtRestoring
	tgtRestored
)

// tgtRec is the target's record of a migration. Guarded by Engine.mu; host
// calls happen on the origin's lane.
type tgtRec struct {
	origin    uint64
	orch      uint64 // replies go here; BufferedEvents and ActivateTarget must come from it
	chunkFrom uint64 // SnapshotReady must come from it
	seq       uint64
	state     tgtState
	host      *compute.DaemonHost
	entry     *compute.FactoryEntry
	replayed  uint64
	applied   map[uint64]struct{} // hashes of applied BufferedEvents (duplicates are dropped)
	// gateOpen: direct deliveries are accepted (queued behind the replay).
	// It opens just before the first ReplayComplete goes out, the earliest
	// moment the source can cut over; before it they are refused, so a
	// rollback then has nothing to give back.
	gateOpen bool
	// cutSeen: the orchestrator said the source has cut over (CutoverNotify
	// naming this node). From then on this node never rolls back: losing
	// the orchestrator or a late failure report activates the daemon here.
	cutSeen bool
}

// onSnapshotReady: a chunk arrives — forwarded when this node orchestrates
// a remote source for another target, else fed to the target role.
func (e *Engine) onSnapshotReady(from uint64, m *msg.Message) {
	e.mu.Lock()
	o := e.orch[m.Origin]
	e.mu.Unlock()
	if o != nil && from != e.self {
		if from != o.source {
			return // peer check: chunks only from the recorded source
		}
		if o.target != e.self {
			e.orchForwardChunk(o, m)
			return
		}
	}
	e.targetChunk(from, m, o)
}

// targetChunk reassembles; the completed snapshot is restored at once (this
// runs on the origin's lane, i.e. on the worker pool).
func (e *Engine) targetChunk(from uint64, m *msg.Message, o *orchRec) {
	e.mu.Lock()
	t := e.tgt[m.Origin]
	switch {
	case t != nil:
		if from != t.chunkFrom || t.state != tgtAssembling {
			e.mu.Unlock()
			return // wrong sender, or a duplicate after completion
		}
	default:
		if p, ok := e.pinned[m.Origin]; ok && o == nil && from != p {
			e.mu.Unlock()
			return
		}
		t = &tgtRec{origin: m.Origin, orch: from, chunkFrom: from, seq: m.SeqThrough, applied: make(map[uint64]struct{})}
		if o != nil {
			t.orch = e.self // this node orchestrates a remote source
		}
		e.tgt[m.Origin] = t
		delete(e.activated, m.Origin)
	}
	e.mu.Unlock()
	e.watch()
	data, err := e.reasm.Add(m.Origin, m.SeqThrough, m.ChunkIndex, m.TotalChunks, m.Chunk)
	switch {
	case errors.Is(err, msg.ErrStale):
		return
	case err != nil:
		e.tgtFail(t, stateFailed("snapshot chunk refused: "+err.Error()), true)
		return
	case data == nil:
		return
	}
	e.mu.Lock()
	if e.tgt[m.Origin] != t {
		e.mu.Unlock()
		return
	}
	t.state, t.seq = tgtRestoring, m.SeqThrough
	e.mu.Unlock()
	e.restore(t, data)
}

// restore runs the target's checks in the order of BEHAVIOUR §3 and
// registers the restored daemon, Buffering, so deliveries to this node
// wait behind the replay.
func (e *Engine) restore(t *tgtRec, data []byte) {
	if !e.ready() {
		e.tgtFail(t, msg.Reason{Code: msg.NotReady}, true)
		return
	}
	entry, ok := e.rt.LookupFactoryEntry(t.origin)
	if !ok {
		e.tgtFail(t, msg.Reason{Code: msg.FactoryNotFound}, true)
		return
	}
	if _, live := e.rt.LookupHost(t.origin); live {
		e.tgtFail(t, stateFailed("the daemon already runs on the target"), true)
		return
	}
	snap, err := causal.DecodeSnapshot(data)
	if err != nil {
		e.tgtFail(t, stateFailed("snapshot: "+err.Error()), true)
		return
	}
	if identity.OriginHashOf(snap.EntityID) != t.origin {
		e.tgtFail(t, stateFailed("snapshot belongs to another daemon"), true)
		return
	}
	var kp *identity.Keypair
	switch {
	case snap.Envelope != nil:
		kp, err = identity.OpenEnvelopeWith(snap.Envelope[:], e.openKey(), snap.EntityID, snap.ChainLink.Bytes())
		if err != nil {
			e.tgtFail(t, msg.Reason{Code: msg.IdentityTransportFailed, Text: clip(err.Error())}, true)
			return
		}
	case entry.IsPlaceholder():
		e.tgtFail(t, stateFailed("placeholder entry (expect_migration) but the snapshot carries no identity envelope"), true)
		return
	default:
		kp = entry.Keypair
	}
	if kp.EntityID() != snap.EntityID {
		e.tgtFail(t, stateFailed("the target's registered identity differs from the snapshot's"), true)
		return
	}
	var h *compute.DaemonHost
	var rerr error
	if err := e.rt.CallUser(context.Background(), func() {
		d, ferr := entry.Factory()
		if ferr != nil || d == nil {
			compute.CloseUnhosted(d)
			rerr = errors.Join(errors.New("factory failed"), ferr)
			return
		}
		h, rerr = compute.RestoreHost(d, kp, snap, entry.Config)
	}); err != nil && rerr == nil {
		rerr = err
	}
	if rerr != nil {
		e.tgtFail(t, stateFailed("restore: "+rerr.Error()), true)
		return
	}
	// Direct deliveries are refused until the gate opens (see tgtRec).
	if err := h.BeginMigrationBuffering(compute.BufferRules{Refuse: true}); err != nil {
		h.Close()
		e.tgtFail(t, stateFailed(err.Error()), true)
		return
	}
	if err := e.rt.InsertHost(h); err != nil {
		h.Close()
		e.tgtFail(t, stateFailed("registering the restored daemon: "+err.Error()), true)
		return
	}
	e.mu.Lock()
	if e.tgt[t.origin] != t {
		e.mu.Unlock()
		e.rt.RemoveHost(h)
		h.Close()
		return
	}
	t.host, t.entry, t.state = h, entry, tgtRestored
	e.mu.Unlock()
	if subs := h.Subscriptions(); len(subs) > 0 {
		e.hook(func() { e.replaySubscriptions(t.origin, subs) })
	}
	e.reply(t, &msg.Message{Type: msg.RestoreComplete, Origin: t.origin, Seq: snap.ThroughSeq})
}

func (e *Engine) reply(t *tgtRec, m *msg.Message) {
	if err := e.route(context.Background(), t.orch, m); err != nil {
		e.log(compute.LogWarn, "migration: reply to orchestrator failed", map[string]any{"origin": t.origin, "type": m.Type.String(), "error": err.Error()})
	}
}

// tgtFail rolls the target back (the restored daemon, if any, is removed;
// the factory entry stays so a retry works) and, with notify, tells the
// orchestrator why. Events delivered here directly since the gate opened
// are handed back to the orchestrator, which passes them to the source
// (where the daemon lives on). Past the source's cutover (cutSeen) it
// activates instead: the daemon has nowhere else to go.
func (e *Engine) tgtFail(t *tgtRec, r msg.Reason, notify bool) {
	e.mu.Lock()
	if e.tgt[t.origin] != t {
		e.mu.Unlock()
		return
	}
	if t.cutSeen {
		e.mu.Unlock()
		e.log(compute.LogWarn, "migration: target activates instead of rolling back: the source already cut over", map[string]any{"origin": t.origin, "reason": r.String()})
		e.tgtActivate(t, false)
		return
	}
	delete(e.tgt, t.origin)
	h := t.host
	t.host = nil
	e.mu.Unlock()
	e.reasm.Forget(t.origin)
	if h != nil {
		h.Close() // later deliveries: daemon-not-found; none slips in after the take
		back := h.TakeQueued()
		e.rt.RemoveHost(h)
		e.handBackTo(t.orch, t.origin, back)
	}
	if notify {
		e.cacheFailure(t.origin, r)
		if t.orch == e.self {
			e.dispatch(e.self, &msg.Message{Type: msg.MigrationFailed, Origin: t.origin, Reason: r})
		} else {
			e.sendFailed(t.orch, t.origin, r)
		}
	}
}

// targetBuffered replays forwarded events in order, before anything
// delivered to this node directly, and reports the running count.
func (e *Engine) targetBuffered(from uint64, m *msg.Message) {
	e.mu.Lock()
	t := e.tgt[m.Origin]
	if t == nil || from != t.orch || t.state != tgtRestored {
		e.mu.Unlock()
		return
	}
	sum := batchHash(m)
	if _, dup := t.applied[sum]; dup {
		e.mu.Unlock()
		return
	}
	t.applied[sum] = struct{}{}
	h := t.host
	e.mu.Unlock()
	var rerr error
	if err := e.rt.CallUser(context.Background(), func() { rerr = e.rt.ReplayHost(h, m.Events) }); err != nil || rerr != nil {
		e.log(compute.LogWarn, "migration: replay failed", map[string]any{"origin": m.Origin, "error": firstErr(err, rerr)})
	}
	e.mu.Lock()
	t.replayed += uint64(len(m.Events))
	n := t.replayed
	e.mu.Unlock()
	// This ReplayComplete may let the source cut over, and from then on
	// callers bounced off the source deliver here at once.
	e.openGate(t)
	e.reply(t, &msg.Message{Type: msg.ReplayComplete, Origin: m.Origin, Seq: n, TargetHead: h.ChainHead()})
}

// openGate lets direct deliveries queue behind the replay (payloads up to
// what a hand-back can carry, see the package doc).
func (e *Engine) openGate(t *tgtRec) {
	e.mu.Lock()
	h, open := t.host, t.gateOpen
	t.gateOpen = true
	e.mu.Unlock()
	if !open && h != nil {
		h.SetBufferRules(compute.BufferRules{MaxPayload: msg.MaxEventPayload})
	}
}

// targetCutover: the orchestrator says the source has cut over to this
// node (CutoverNotify naming it; sent before the source's last queued
// events). Recorded as the evidence that makes this node keep the daemon.
func (e *Engine) targetCutover(from uint64, m *msg.Message) {
	e.mu.Lock()
	t := e.tgt[m.Origin]
	if t == nil || from != t.orch || m.TargetNode != e.self || t.state != tgtRestored {
		e.mu.Unlock()
		return
	}
	t.cutSeen = true
	e.mu.Unlock()
	e.openGate(t)
}

// batchHash identifies a BufferedEvents message by content, batch id
// included: a re-delivered copy hashes alike, a second batch of identical
// events does not. (A sender without batch ids, such as a 0.24 peer, gets
// content-only identity; the reference only ever sends empty batches.)
func batchHash(m *msg.Message) uint64 {
	return xxh3.Hash(m.Encode())
}

// onActivateTarget: the source cut over; drain what was delivered here
// meanwhile, drop this node's own factory entry and acknowledge.
func (e *Engine) onActivateTarget(from uint64, m *msg.Message) {
	e.mu.Lock()
	t := e.tgt[m.Origin]
	if t == nil {
		a, ok := e.activated[m.Origin]
		e.mu.Unlock()
		if ok && a.orch == from {
			_ = e.route(context.Background(), from, &msg.Message{Type: msg.ActivateAck, Origin: m.Origin, Seq: a.replayed})
		}
		return
	}
	ok := from == t.orch && t.state == tgtRestored
	e.mu.Unlock()
	if ok {
		e.tgtActivate(t, true)
	}
}

// tgtActivate makes the daemon live here: drain what was delivered
// directly, drop this node's own factory entry and, with ack, acknowledge.
func (e *Engine) tgtActivate(t *tgtRec, ack bool) {
	m := &msg.Message{Origin: t.origin}
	e.mu.Lock()
	if e.tgt[t.origin] != t {
		e.mu.Unlock()
		return
	}
	delete(e.tgt, m.Origin)
	e.activated[m.Origin] = activation{orch: t.orch, replayed: t.replayed}
	h, entry, n := t.host, t.entry, t.replayed
	e.mu.Unlock()
	var derr error
	if err := e.rt.CallUser(context.Background(), func() { derr = e.rt.DrainHost(h, nil) }); err != nil || derr != nil {
		e.log(compute.LogWarn, "migration: draining the target queue failed", map[string]any{"origin": m.Origin, "error": firstErr(err, derr)})
	}
	if entry != nil {
		e.rt.RemoveFactoryEntry(entry)
	}
	e.reasm.Forget(m.Origin)
	if ack {
		e.reply(t, &msg.Message{Type: msg.ActivateAck, Origin: m.Origin, Seq: n})
	}
}
