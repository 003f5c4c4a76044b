//go:build race || !(amd64 || arm64)

package compute

import "sync/atomic"

// hostCounter is one of a host's statistics counters (see counter_plain.go):
// an atomic counter here, so the race detector sees every access ordered,
// and platforms where a plain 8-byte store may tear stay correct.
type hostCounter struct{ atomic.Uint64 }
