package migration

import (
	"context"
	"runtime/debug"

	"github.com/netmesh/libnetmesh/core/causal"
	"github.com/netmesh/libnetmesh/core/compute"
)

// hook runs f on the runtime's worker pool. Submit works from any goroutine
// or OS thread; when the pool cannot take it (full or stopped), f runs on a
// goroutine of its own so the hook is not lost.
func (e *Engine) hook(f func()) {
	safe := func() {
		defer func() {
			if v := recover(); v != nil {
				e.log(compute.LogError, "migration: hook panicked", map[string]any{"panic": v, "stack": string(debug.Stack())})
			}
		}()
		f()
	}
	if err := e.rt.Submit(safe); err != nil {
		go safe()
	}
}

// replaySubscriptions re-sends a restored daemon's channel subscriptions so
// the publishers' rosters gain this node. A failure is only logged.
func (e *Engine) replaySubscriptions(origin uint64, subs []causal.Binding) {
	for _, b := range subs {
		ctx, cancel := context.WithTimeout(context.Background(), e.cfg.hookTimeout)
		err := e.node.SubscribeChannel(ctx, b.Publisher, b.Channel, b.Token)
		cancel()
		if err != nil {
			e.log(compute.LogWarn, "migration: re-subscribing after restore failed", map[string]any{
				"origin": origin, "publisher": b.Publisher, "channel": b.Channel, "error": err.Error()})
		}
	}
}

// teardownSubscriptions unsubscribes a departing daemon's channels so the
// publishers' rosters drop this node. A failure is only logged.
func (e *Engine) teardownSubscriptions(origin uint64, subs []causal.Binding) {
	for _, b := range subs {
		ctx, cancel := context.WithTimeout(context.Background(), e.cfg.hookTimeout)
		err := e.node.UnsubscribeChannel(ctx, b.Publisher, b.Channel)
		cancel()
		if err != nil {
			e.log(compute.LogWarn, "migration: unsubscribing at cutover failed", map[string]any{
				"origin": origin, "publisher": b.Publisher, "channel": b.Channel, "error": err.Error()})
		}
	}
}
