package compute

import (
	"context"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func runtimeGosched() { runtime.Gosched() }

type logRecord struct {
	level int
	msg   string
	panic any
}

type recordingLogger struct {
	mu   sync.Mutex
	recs []logRecord
}

func (l *recordingLogger) log(level int, msg string, fields map[string]any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.recs = append(l.recs, logRecord{level, msg, fields["panic"]})
}

func (l *recordingLogger) records() []logRecord {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]logRecord(nil), l.recs...)
}

func TestSubmitBeforeStartIsNotReady(t *testing.T) {
	rt, _, _ := setup(t)
	assert.ErrorIs(t, rt.Submit(func() {}), ErrNotReady)
	assert.ErrorIs(t, rt.Submit(nil), ErrInvalidArgument)
}

func TestPoolPanicRecoveredAndReported(t *testing.T) {
	lg := &recordingLogger{}
	rt, _, _ := setup(t, WithLogger(lg.log), WithWorkers(1))
	require.NoError(t, rt.Start(bg))
	done := make(chan struct{})
	require.NoError(t, rt.Submit(func() { panic("task exploded") }))
	require.NoError(t, rt.Submit(func() { close(done) }))
	<-done // the single worker survived the panic
	recs := lg.records()
	require.Len(t, recs, 1)
	assert.Equal(t, LogError, recs[0].level)
	assert.Equal(t, "task exploded", recs[0].panic)
}

func TestSubmitFromPlainGoroutineAndLockedThread(t *testing.T) {
	rt, _, _ := readyRuntime(t)
	var ran atomic.Int64
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			runtime.LockOSThread() // as a thread a host language created
			defer runtime.UnlockOSThread()
			done := make(chan struct{})
			assert.NoError(t, rt.Submit(func() {
				ran.Add(1)
				close(done)
			}))
			<-done
			wg.Done()
		}()
	}
	wg.Wait()
	assert.Equal(t, int64(8), ran.Load())
}

func TestPoolFullAndDrainOnShutdown(t *testing.T) {
	rt, _, _ := setup(t, WithWorkers(1), WithQueueSize(2))
	require.NoError(t, rt.Start(bg))
	block := make(chan struct{})
	started := make(chan struct{})
	require.NoError(t, rt.Submit(func() { close(started); <-block }))
	<-started
	var ran atomic.Int64
	require.NoError(t, rt.Submit(func() { ran.Add(1) }))
	require.NoError(t, rt.Submit(func() { ran.Add(1) }))
	assert.ErrorIs(t, rt.Submit(func() {}), ErrPoolFull)
	close(block)
	require.NoError(t, rt.Shutdown(bg))
	assert.Equal(t, int64(2), ran.Load(), "queued tasks drained by shutdown")
}

func TestShutdownDrainBoundedByContext(t *testing.T) {
	rt, _, _ := setup(t, WithWorkers(1))
	require.NoError(t, rt.Start(bg))
	block := make(chan struct{})
	started := make(chan struct{})
	require.NoError(t, rt.Submit(func() { close(started); <-block }))
	<-started
	ctx, cancel := contextWithCancel()
	cancel()
	assert.ErrorIs(t, rt.Shutdown(ctx), ErrTimeout)
	close(block)
	require.NoError(t, rt.Shutdown(bg))
}

// hostExecutor is a host-language "main thread": one locked OS thread
// running posted tasks in order.
type hostExecutor struct {
	tasks chan func()
	done  chan struct{}
	ran   atomic.Int64
}

func newHostExecutor() *hostExecutor {
	e := &hostExecutor{tasks: make(chan func(), 16), done: make(chan struct{})}
	go func() {
		runtime.LockOSThread()
		defer close(e.done)
		for task := range e.tasks {
			e.ran.Add(1)
			task()
		}
	}()
	return e
}

func (e *hostExecutor) post(task func()) { e.tasks <- task }
func (e *hostExecutor) close()           { close(e.tasks); <-e.done }

func TestCallUserThroughExecutor(t *testing.T) {
	ex := newHostExecutor()
	lg := &recordingLogger{}
	rt, _, _ := readyRuntime(t, WithExecutor(ex.post), WithLogger(lg.log))
	defer ex.close()
	h, err := rt.Spawn(bg, "counter", newKeypair(t), DaemonConfig{})
	require.NoError(t, err)
	host, _ := rt.LookupHost(h.OriginHash())
	require.NoError(t, host.BeginBuffering())
	_, err = rt.Deliver(h.OriginHash(), inputEvent(1, 1, nil))
	require.NoError(t, err)

	// Pool work replays the queue through the executor.
	result := make(chan error, 1)
	require.NoError(t, rt.Submit(func() {
		result <- rt.CallUser(bg, func() { assert.NoError(t, rt.DrainHost(host, nil)) })
	}))
	require.NoError(t, <-result)
	assert.Equal(t, int64(1), ex.ran.Load())
	assert.Equal(t, uint64(1), host.Stats().EventsProcessed)

	err = rt.CallUser(bg, func() { panic("in user code") })
	assert.ErrorIs(t, err, ErrProcessFailed)
	require.Len(t, lg.records(), 1)

	rt.SetExecutor(nil)
	ran := false
	require.NoError(t, rt.CallUser(bg, func() { ran = true }))
	assert.True(t, ran, "inline without an executor")
	assert.Equal(t, int64(2), ex.ran.Load())
}

func TestCallUserGivesUpOnContext(t *testing.T) {
	rt, _, _ := readyRuntime(t, WithExecutor(func(func()) {})) // never runs anything
	ctx, cancel := contextWithCancel()
	cancel()
	assert.ErrorIs(t, rt.CallUser(ctx, func() {}), ErrTimeout)
}

func contextWithCancel() (context.Context, context.CancelFunc) { return context.WithCancel(bg) }
