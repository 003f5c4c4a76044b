package migration

import (
	"context"
	"time"

	"github.com/netmesh/libnetmesh/core/causal"
	"github.com/netmesh/libnetmesh/core/compute"
	"github.com/netmesh/libnetmesh/core/migration/msg"
)

// Hand-back: a target that rolls back after its gate opened (it may have
// accepted direct deliveries, queued behind the replay) sends them as
// BufferedEvents to its orchestrator, which passes them to the source
// (directly when it is the source). The source queues them behind its own
// queue if it is buffering again, else processes them; outputs go to the
// output sink. Each hop accepts them only from the party it expects, once
// per content (duplicates are dropped), for handBackTTL.

const handBackTTL = 5 * time.Minute

type handback struct {
	from, to uint64 // accept from `from`; deliver here (to == self) or forward to `to`
	seen     map[uint64]struct{}
	at       time.Time
}

// expectHandBack records that events handed back for origin by from go to
// (or towards) to.
func (e *Engine) expectHandBack(origin, from, to uint64) {
	now := time.Now()
	e.mu.Lock()
	defer e.mu.Unlock()
	for o, h := range e.handback {
		if now.Sub(h.at) > handBackTTL {
			delete(e.handback, o)
		}
	}
	e.handback[origin] = &handback{from: from, to: to, seen: make(map[uint64]struct{}), at: now}
}

// takeHandBack handles m if it is a hand-back this node expects.
func (e *Engine) takeHandBack(from uint64, m *msg.Message) bool {
	e.mu.Lock()
	h := e.handback[m.Origin]
	if h == nil || h.from != from || time.Since(h.at) > handBackTTL {
		e.mu.Unlock()
		return false
	}
	sum := batchHash(m)
	_, dup := h.seen[sum]
	h.seen[sum] = struct{}{}
	to := h.to
	e.mu.Unlock()
	if dup || len(m.Events) == 0 {
		return true
	}
	if to != e.self {
		if err := e.route(context.Background(), to, m); err != nil {
			e.log(compute.LogError, "migration: events handed back by the target could not be passed to the source", map[string]any{"origin": m.Origin, "lost": len(m.Events), "error": err.Error()})
		}
		return true
	}
	var aerr error
	if err := e.rt.CallUser(context.Background(), func() { aerr = e.rt.AcceptHandedBack(m.Origin, m.Events) }); err != nil || aerr != nil {
		e.log(compute.LogError, "migration: events handed back by the target could not be given to the daemon", map[string]any{"origin": m.Origin, "lost": len(m.Events), "error": firstErr(err, aerr)})
	}
	return true
}

// handBackTo sends events a rolled-back target had accepted to its
// orchestrator (locally queued when that is this node).
func (e *Engine) handBackTo(orch, origin uint64, evs []causal.Event) {
	if len(evs) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, b := range batches(origin, evs) {
		if err := e.route(ctx, orch, b); err != nil {
			e.log(compute.LogError, "migration: rolled-back target could not hand events back", map[string]any{"origin": origin, "lost": len(b.Events), "error": err.Error()})
		}
	}
}
