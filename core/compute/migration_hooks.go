package compute

import "github.com/netmesh/libnetmesh/core/causal"

// Host and runtime operations core/migration needs beyond the public API.
// They keep the host's invariants: every call into the daemon is serialized
// by the host lock, and no lock is held while outputs go to the sink.

// TakeQueued hands over the events queued so far (in acceptance order) and
// leaves the host Buffering, so later deliveries keep queueing. The source
// of a migration ships them to the target before cutover. Nil when the host
// is not Buffering or nothing is queued.
func (h *DaemonHost) TakeQueued() []causal.Event {
	h.mu.Lock()
	defer h.mu.Unlock()
	if HostPhase(h.phase.Load()) != PhaseBuffering {
		return nil
	}
	q := h.queue
	h.queue = nil
	return q
}

// UndoCutover reverses Cutover when the target never took the daemon over:
// Moved → Buffering with prefix (the events handed over earlier, in order)
// queued in front of anything queued since. The caller re-registers the
// host (Runtime.InsertHost) and drains it (Runtime.DrainHost).
func (h *DaemonHost) UndoCutover(prefix []causal.Event) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if HostPhase(h.phase.Load()) != PhaseMoved {
		return &MigrationError{Detail: MigrationWrongPhase, Msg: "undo cutover needs a moved daemon"}
	}
	h.queue = append(append([]causal.Event(nil), prefix...), h.queue...)
	h.movedTo.Store(0)
	h.phase.Store(uint32(PhaseBuffering))
	return nil
}

// replay processes evs in order without changing the host's phase or
// touching its queue (a Buffering migration target replaying forwarded
// events while direct deliveries wait behind them).
func (h *DaemonHost) replay(evs []causal.Event) ([]Processed, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
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
