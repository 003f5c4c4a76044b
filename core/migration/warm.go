package migration

import (
	"runtime"
	"sync/atomic"
	"time"
)

// Keeping a CPU awake while a migration starts.
//
// A small migration is latency-bound: a chain of one-way messages, each
// handled by a goroutine the network wakes. On an otherwise idle machine
// every such wake-up first brings a halted CPU back (on this class of VM,
// tens of microseconds each: a 1 KiB migration measured 0.45–0.48 ms p50 on
// an idle machine against 0.38–0.39 ms with one core kept busy by an
// unrelated loop). So for a short window after a node starts a migration,
// or first hears of one, the engine keeps one goroutine yielding: a P that
// keeps scheduling polls the network between yields and never halts its CPU.
//
// Bounded: one spinner per engine, alive only until warmWindow after the
// last trigger; triggers are the start of an orchestration and the first
// message a source (TakeSnapshot) or target (chunk 0 of SnapshotReady) gets,
// never every chunk, so a large transfer spins at most one window on each
// node. The spinner only yields, runs no user code and cannot panic. 1 ms
// covers a small migration; a longer window measured slower on average (the
// spinner then competes with the next migration's work on a 2-core VM):
// BenchmarkMigrate1KiB p50 0.46–0.47 ms without, 0.383–0.385 ms with 1 ms.
const warmWindow = time.Millisecond

var warmBase = time.Now()

func warmNow() int64 { return int64(time.Since(warmBase)) }

type warmer struct {
	until   atomic.Int64 // warmNow() deadline
	running atomic.Bool
	spins   atomic.Uint64 // spinner goroutines started (tests)
}

// keep extends the warm window to at least d from now and makes sure the
// spinner runs.
func (w *warmer) keep(d time.Duration) {
	dl := warmNow() + int64(d)
	for {
		cur := w.until.Load()
		if cur >= dl || w.until.CompareAndSwap(cur, dl) {
			break
		}
	}
	if w.running.CompareAndSwap(false, true) {
		w.spins.Add(1)
		go w.spin()
	}
}

func (w *warmer) spin() {
	for {
		for range 32 {
			runtime.Gosched()
		}
		if warmNow() < w.until.Load() {
			continue
		}
		w.running.Store(false)
		// A keep between the deadline check and the store saw running and
		// started nothing: take the window over again.
		if warmNow() < w.until.Load() && w.running.CompareAndSwap(false, true) {
			continue
		}
		return
	}
}
