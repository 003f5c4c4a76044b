// Package compute is the compute runtime of a mesh node: user daemons
// (Daemon: process, snapshot, restore) wrapped in DaemonHosts (causal chain,
// horizon, stats, subscription ledger), the daemon and per-origin factory
// registries, and the Runtime with its Registering → Ready → ShuttingDown
// lifecycle, its worker pool and the hooks core/migration builds on. It
// reaches the network only through the Node seam (seam.go); FakeNetwork
// implements it in-process for tests.
//
// Threads. Host-initiated calls (Deliver, Snapshot, Spawn…) run user code on
// the calling goroutine: no goroutine switch on the deliver path. Work the
// network starts (migration restore, replay, subscription hooks) runs on the
// runtime's pool, and goes through CallUser so that a host executor, when
// set, runs it on the host's own thread. A host's lock serializes calls into
// its daemon; nobody holds it while waiting for a host thread (CallUser posts
// the whole locked section), and Stats, Subscriptions, LatestSnapshot, Stop
// and the phase never take it, so a host thread can always read them.
//
// Errors carry one of the sentinels in errors.go; Kind maps any error to its
// stable symbolic kind for the C ABI and the bindings.
package compute
