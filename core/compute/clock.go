package compute

import (
	"sync"
	"sync/atomic"
	"time"
)

// coarseClock serves a runtime's output timestamps (ReceivedAt, unix ns).
// Reading the clock costs ~25 ns on a virtual machine, a tenth of a C
// delivery, so while deliveries keep arriving a ticker goroutine stores the
// wall clock every coarseTick and a delivery reads that value with one
// atomic load. The ticker starts at the first delivery that finds it
// stopped (that delivery reads the real clock), stops itself after
// coarseIdle without deliveries, and stops for good at close (Shutdown),
// so an idle runtime has no goroutine and no wake-ups.
//
// A stamp is at most one tick (plus scheduling delay) behind the real
// clock. The host keeps its stamps non-decreasing on top of this (see
// DaemonHost.stampLocked).
type coarseClock struct {
	_    [64]byte     // now and used on a cache line of their own
	now  atomic.Int64 // last tick's unix ns; 0 while the ticker is stopped
	used atomic.Bool  // a delivery read now since the ticker last looked
	_    [64]byte

	mu      sync.Mutex // guards running, closed, stop and the ticker's exit
	running bool
	closed  bool
	stop    chan struct{}
	done    chan struct{}
}

const (
	coarseTick = time.Millisecond
	coarseIdle = 100 // ticks without a delivery before the ticker stops
)

// read returns the current coarse time. The common path is two atomic loads
// (the store to used happens once per tick at most).
func (c *coarseClock) read() uint64 {
	if v := c.now.Load(); v != 0 {
		if !c.used.Load() {
			c.used.Store(true)
		}
		return uint64(v)
	}
	return c.slow()
}

// slow reads the real clock and starts the ticker if it is stopped.
func (c *coarseClock) slow() uint64 {
	t := time.Now().UnixNano()
	c.mu.Lock()
	if !c.running && !c.closed {
		c.running = true
		c.stop = make(chan struct{})
		c.done = make(chan struct{})
		c.used.Store(true)
		c.now.Store(t)
		go c.tick(c.stop, c.done)
	}
	c.mu.Unlock()
	return uint64(t)
}

func (c *coarseClock) tick(stop, done chan struct{}) {
	defer close(done)
	t := time.NewTicker(coarseTick)
	defer t.Stop()
	idle := 0
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		c.now.Store(time.Now().UnixNano())
		if c.used.Swap(false) {
			idle = 0
			continue
		}
		if idle++; idle < coarseIdle {
			continue
		}
		c.mu.Lock()
		select {
		case <-stop: // close got here first and waits for done
		default:
			c.now.Store(0)
			c.running = false
		}
		c.mu.Unlock()
		return
	}
}

// close stops the ticker for good and waits for it to exit; later reads
// use the real clock. Idempotent.
func (c *coarseClock) close() {
	c.mu.Lock()
	c.closed = true
	var done chan struct{}
	if c.running {
		c.running = false
		close(c.stop)
		done = c.done
	}
	c.mu.Unlock()
	if done != nil {
		<-done
	}
	c.now.Store(0) // after the ticker's last store
}
