package wire

import "math"

// ReplayWindowSize is how many counters below the highest accepted one are
// still remembered.
const ReplayWindowSize = 1024

// maxForward is the largest step above the highest accepted counter (or above
// −1 before anything is accepted) that the window admits; a bigger jump needs
// a new handshake.
const maxForward = ReplayWindowSize + 1

// ReplayWindow is the receive-side anti-replay filter of FORMATS §8. With H the
// highest counter accepted so far, a counter c passes when
// H−1023 ≤ c ≤ H+1025 and c was not accepted before; before anything has been
// accepted, when c ≤ 1024. 2^64−1 never passes. The zero value is a fresh
// window. Not safe for concurrent use; the session owning it serialises access.
//
// Invariant: bits holds exactly the counters in [H−1023, H] that were
// accepted, counter c at bit c mod 1024.
type ReplayWindow struct {
	started bool
	highest uint64
	bits    [ReplayWindowSize / 64]uint64
}

// Check reports whether c would be accepted, without changing the window.
func (w *ReplayWindow) Check(c uint64) bool {
	if c == math.MaxUint64 {
		return false
	}
	if !w.started {
		return c <= ReplayWindowSize
	}
	if c > w.highest {
		return c-w.highest <= maxForward
	}
	if w.highest-c >= ReplayWindowSize {
		return false
	}
	return !w.has(c)
}

// Accept checks c and, when it passes, records it (moving the window forward
// if c is a new highest). It reports whether c was accepted.
func (w *ReplayWindow) Accept(c uint64) bool {
	if !w.Check(c) {
		return false
	}
	w.commit(c)
	return true
}

// commit records c without the range check (the reference's commit step, which
// its tests drive directly); only 2^64−1 is refused. A c far above the highest
// clears the history, one far below is ignored.
func (w *ReplayWindow) commit(c uint64) {
	if c == math.MaxUint64 {
		return
	}
	switch {
	case !w.started:
		w.started = true
		w.highest = c
	case c > w.highest:
		if c-w.highest >= ReplayWindowSize {
			w.bits = [ReplayWindowSize / 64]uint64{}
		} else {
			for x := w.highest + 1; x < c; x++ {
				w.clear(x)
			}
		}
		w.highest = c
	case w.highest-c >= ReplayWindowSize:
		return
	}
	w.set(c)
}

// Highest returns the highest accepted counter and whether any was accepted.
func (w *ReplayWindow) Highest() (uint64, bool) { return w.highest, w.started }

func (w *ReplayWindow) has(c uint64) bool {
	i := c % ReplayWindowSize
	return w.bits[i/64]&(1<<(i%64)) != 0
}

func (w *ReplayWindow) set(c uint64) {
	i := c % ReplayWindowSize
	w.bits[i/64] |= 1 << (i % 64)
}

func (w *ReplayWindow) clear(c uint64) {
	i := c % ReplayWindowSize
	w.bits[i/64] &^= 1 << (i % 64)
}
