package mesh

import (
	"fmt"
	"runtime/debug"
	"sync"
	"sync/atomic"
)

// maxQueuedMessages bounds the dispatch queue's message items; callbacks for
// peer-state changes are not counted (they are bounded by the peer count).
const maxQueuedMessages = 8192

// task is one unit of work for the dispatch goroutine.
type task struct {
	from    uint64
	sub     uint16
	hint    uint16
	payload []byte        // owned by the task
	fn      func()        // set for non-message work
	queued  *atomic.Int64 // a reliable stream's count (recvStream.queued), decremented once handled
}

// dispatcher is a bounded FIFO feeding the dispatch goroutine. push never
// blocks, so the reader and timer goroutines can never be stalled by a handler.
type dispatcher struct {
	mu     sync.Mutex
	q      []task
	msgs   int
	closed bool
	wake   chan struct{}
}

func (d *dispatcher) init() { d.wake = make(chan struct{}, 1) }

// push queues t; it reports false (and queues nothing) when the queue is full
// of messages or closed. Callback tasks (fn != nil) are refused only when closed.
func (d *dispatcher) push(t task) bool {
	d.mu.Lock()
	if d.closed || (t.fn == nil && d.msgs >= maxQueuedMessages) {
		d.mu.Unlock()
		return false
	}
	d.q = append(d.q, t)
	if t.fn == nil {
		d.msgs++
	}
	d.mu.Unlock()
	select {
	case d.wake <- struct{}{}:
	default:
	}
	return true
}

// hasRoom reports whether a message push would currently succeed.
func (d *dispatcher) hasRoom() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return !d.closed && d.msgs < maxQueuedMessages
}

func (d *dispatcher) close() {
	d.mu.Lock()
	d.closed = true
	d.mu.Unlock()
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// take returns the queued tasks; done is true once closed (pending tasks are dropped).
func (d *dispatcher) take(buf []task) (out []task, done bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil, true
	}
	out = append(buf[:0], d.q...)
	clear(d.q)
	d.q = d.q[:0]
	d.msgs = 0
	return out, false
}

func (n *Node) dispatchLoop() {
	defer n.wg.Done()
	var batch []task
	for {
		var done bool
		batch, done = n.disp.take(batch)
		if done {
			return
		}
		for i := range batch {
			if n.closed.Load() {
				return
			}
			n.runTask(&batch[i])
			if q := batch[i].queued; q != nil {
				q.Add(-1)
			}
			batch[i] = task{}
		}
		if len(batch) > 0 {
			continue
		}
		<-n.disp.wake
	}
}

// runTask runs one task, recovering a panic from user code.
func (n *Node) runTask(t *task) {
	defer func() {
		if r := recover(); r != nil {
			n.logf(LogError, "mesh: handler panicked", map[string]any{
				"panic": fmt.Sprint(r), "subprotocol": t.sub, "stack": string(debug.Stack()),
			})
		}
	}()
	if t.fn != nil {
		t.fn()
		return
	}
	n.deliverMessage(t.from, t.sub, t.hint, t.payload)
}
