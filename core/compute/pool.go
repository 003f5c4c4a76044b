package compute

import (
	"context"
	"runtime/debug"
	"sync"
	"sync/atomic"
)

// Log levels passed to the WithLogger function.
const (
	LogDebug = iota
	LogInfo
	LogWarn
	LogError
)

// Logger receives the library's reports; the library never prints on its own.
// It may be called from any goroutine and must not block for long.
type Logger func(level int, msg string, fields map[string]any)

// Executor runs task on a thread the host chooses (e.g. a host language's
// main thread). It must run every task it accepts exactly once, eventually.
type Executor func(task func())

// pool is the runtime's bounded worker pool: a fixed set of goroutines
// draining a bounded queue. Lifecycle new → running (start) → closed (stop);
// stop is permanent and lets queued tasks finish.
type pool struct {
	workers int
	log     func(level int, msg string, fields map[string]any)

	mu    sync.Mutex // guards state and sends on q (so stop never races a send)
	state int        // poolNew, poolRunning, poolClosed
	q     chan func()
	wg    sync.WaitGroup
}

const (
	poolNew = iota
	poolRunning
	poolClosed
)

func newPool(workers, queue int, log func(int, string, map[string]any)) *pool {
	return &pool{workers: workers, log: log, q: make(chan func(), queue)}
}

// start launches the workers once; a no-op when running or closed.
func (p *pool) start() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.state != poolNew {
		return
	}
	p.state = poolRunning
	p.wg.Add(p.workers)
	for range p.workers {
		go p.work()
	}
}

func (p *pool) work() {
	defer p.wg.Done()
	for task := range p.q {
		p.run(task)
	}
}

// run calls task, turning a panic into a report.
func (p *pool) run(task func()) {
	defer func() {
		if r := recover(); r != nil {
			p.log(LogError, "compute: worker pool task panicked", map[string]any{"panic": r, "stack": string(debug.Stack())})
		}
	}()
	task()
}

// submit queues task without blocking.
func (p *pool) submit(task func()) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch p.state {
	case poolNew:
		return ErrNotReady
	case poolClosed:
		return ErrShuttingDown
	}
	select {
	case p.q <- task:
		return nil
	default:
		return ErrPoolFull
	}
}

// stop refuses new tasks, lets queued ones finish and waits for the workers
// (or ctx; the workers then still exit after their current tasks).
func (p *pool) stop(ctx context.Context) error {
	p.mu.Lock()
	if p.state == poolRunning {
		close(p.q)
	}
	p.state = poolClosed
	p.mu.Unlock()
	done := make(chan struct{})
	go func() {
		p.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return wrapErr(ErrTimeout, "draining the worker pool", ctx.Err())
	}
}

// Submit queues task on the runtime's worker pool. It never blocks and may
// be called from any goroutine or OS thread (hooks fired from host-language
// threads use it). A panic in task is recovered and reported to the logger.
// Errors: ErrNotReady before Start, ErrShuttingDown after Shutdown,
// ErrPoolFull when the bounded queue is full.
func (r *Runtime) Submit(task func()) error {
	if task == nil {
		return wrapErr(ErrInvalidArgument, "nil task", nil)
	}
	return r.pool.submit(task)
}

// SetExecutor installs (or with nil removes) the executor through which
// CallUser runs user code.
func (r *Runtime) SetExecutor(e Executor) {
	if e == nil {
		r.exec.Store(nil)
		return
	}
	r.exec.Store(&e)
}

// CallUser runs fn, which calls user code, where the host wants it: posted to
// the executor (and waited for) when one is set, else inline. Pool work that
// calls into daemons (restore on a migration target, replay, hooks) goes
// through here, and fn itself takes whatever host lock it needs, so no
// goroutine ever holds a daemon lock while waiting for a host thread. A
// panic in fn is recovered, reported and returned as an error. If ctx ends
// first, CallUser returns ErrTimeout; fn may still run later.
func (r *Runtime) CallUser(ctx context.Context, fn func()) error {
	var perr atomic.Pointer[panicError]
	guarded := func() {
		defer func() {
			if v := recover(); v != nil {
				perr.Store(&panicError{v})
				r.log(LogError, "compute: user callback panicked", map[string]any{"panic": v, "stack": string(debug.Stack())})
			}
		}()
		fn()
	}
	ep := r.exec.Load()
	if ep == nil {
		guarded()
	} else {
		done := make(chan struct{})
		(*ep)(func() {
			defer close(done)
			guarded()
		})
		select {
		case <-done:
		case <-ctx.Done():
			return wrapErr(ErrTimeout, "waiting for the executor", ctx.Err())
		}
	}
	if p := perr.Load(); p != nil {
		return wrapErr(ErrProcessFailed, "user callback", p)
	}
	return nil
}
