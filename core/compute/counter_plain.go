//go:build !race && (amd64 || arm64)

package compute

import "sync/atomic"

// hostCounter is one of a host's statistics counters. Every write happens
// under the host's mu, so a write needs no read-modify-write instruction
// with a lock prefix (two per delivery were ~5% of a C delivery): it is a
// plain add. Readers (Stats, without mu) load it atomically; on these
// 64-bit platforms an aligned 8-byte store is never torn, so a reader sees
// the value before or after an add, as with an atomic counter. Race-enabled
// builds and other platforms use counter_atomic.go, with the same methods.
type hostCounter struct{ v uint64 }

// Add adds n and returns the new value. Callers hold the host's mu.
func (c *hostCounter) Add(n uint64) uint64 {
	c.v += n
	return c.v
}

// Load reads the counter; any goroutine, no lock needed.
func (c *hostCounter) Load() uint64 { return atomic.LoadUint64(&c.v) }
