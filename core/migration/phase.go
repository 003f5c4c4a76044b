package migration

import "time"

// Phase is where a migration stands, as seen by its orchestrator.
//
//	Snapshot ─▶ Transfer ─▶ Restore ─▶ Replay ─▶ Cutover ─▶ Complete
//
// Snapshot: the source is buffering the daemon's events and snapshotting it
// (also while a NotReady retry waits). Transfer: chunks are being handed to
// the mesh; with a remote source, from just before TakeSnapshot is sent
// (the orchestrator does not see the snapshot being taken, and any reply
// finds the migration in Transfer). Restore: every chunk is sent; the
// target reassembles, checks and restores. Replay: the target replays the
// events queued on the source. Cutover: the source gave the daemon up; the
// target is being activated. Complete: the target acknowledged; the record
// is then dropped. Phases only move forward within an attempt.
type Phase uint8

const (
	PhaseSnapshot Phase = iota
	PhaseTransfer
	PhaseRestore
	PhaseReplay
	PhaseCutover
	PhaseComplete
)

var phaseNames = [...]string{"Snapshot", "Transfer", "Restore", "Replay", "Cutover", "Complete"}

func (p Phase) String() string {
	if int(p) < len(phaseNames) {
		return phaseNames[p]
	}
	return "Phase(" + hexID(uint64(p)) + ")"
}

// Progress is pushed to a handle's subscribers on every phase change and
// every chunk handed to the mesh. Bytes and chunks count the snapshot of the
// current attempt (a NotReady retry starts them over). When the totals are
// known (a local source), the last Transfer report and every later one
// count the whole snapshot as moved, even if the target restored before
// StartMigrationWith's caller counted its last chunks.
type Progress struct {
	Phase       Phase
	BytesMoved  int64
	TotalBytes  int64
	ChunksMoved int
	TotalChunks int
	// Attempt is the attempt number, 1 for the first.
	Attempt int
}

// Opts are the options of StartMigrationWith. Start from DefaultOpts: the
// zero value turns identity transport off.
type Opts struct {
	// TransportIdentity seals the daemon's identity for the target (default
	// true). Off, the target needs an entry with the full keypair
	// (RegisterMigrationTargetIdentity).
	TransportIdentity bool
	// RetryNotReady is the budget for retrying a target that answers
	// NotReady: 0 means the default 30 s, a negative value turns retry off.
	RetryNotReady time.Duration
	// NoRetry turns NotReady retry off (the first NotReady is returned as is).
	NoRetry bool
	// StallTimeout bounds how long the migration may go without progress
	// (a phase change, a chunk handed to the mesh or any protocol message
	// from the source or target): past it the migration ends with a
	// state-failed *compute.MigrationError wrapping ErrStalled, as a
	// WaitWithTimeout deadline would (before cutover both nodes are told
	// and the daemon resumes on the source with everything it queued).
	// It must exceed the daemon's slowest restore. 0 means
	// DefaultStallTimeout; a negative value turns the bound off.
	StallTimeout time.Duration
	// Progress, when set, is subscribed before the migration starts, so it
	// also sees the phases StartMigrationWith goes through before it returns
	// (see Handle.Subscribe for where it runs).
	Progress func(Progress)
}

// DefaultRetryNotReady is the default NotReady retry budget.
const DefaultRetryNotReady = 30 * time.Second

// DefaultStallTimeout is the default Opts.StallTimeout.
const DefaultStallTimeout = 60 * time.Second

// stallTimeout is the no-progress bound, or 0 when off.
func (o Opts) stallTimeout() time.Duration {
	switch {
	case o.StallTimeout < 0:
		return 0
	case o.StallTimeout == 0:
		return DefaultStallTimeout
	}
	return o.StallTimeout
}

// DefaultOpts are the options StartMigration uses.
func DefaultOpts() Opts { return Opts{TransportIdentity: true, RetryNotReady: DefaultRetryNotReady} }

// retryBudget is the NotReady budget, or 0 when retry is off.
func (o Opts) retryBudget() time.Duration {
	switch {
	case o.NoRetry || o.RetryNotReady < 0:
		return 0
	case o.RetryNotReady == 0:
		return DefaultRetryNotReady
	}
	return o.RetryNotReady
}

// NotReadyBackoff is the pause before the n-th retry (n ≥ 1): 500 ms,
// doubling per retry, capped at 16 s.
func NotReadyBackoff(n int) time.Duration {
	if n < 1 {
		n = 1
	}
	shift := min(n-1, 5)
	return min(500*time.Millisecond<<shift, 16*time.Second)
}
