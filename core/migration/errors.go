package migration

import (
	"errors"
	"fmt"
	"strconv"

	"github.com/netmesh/libnetmesh/core/compute"
	"github.com/netmesh/libnetmesh/core/migration/msg"
)

// Sentinels of this package. Errors a caller sees are the compute package's
// typed errors (*compute.MigrationError, *compute.MigrationFailedError,
// compute.ErrNotReady, …) so every layer maps them to the same kinds.
var (
	// ErrCancelled is wrapped by the error Wait returns after Cancel.
	ErrCancelled = errors.New("migration: cancelled")
	// ErrTimedOut is wrapped by the error WaitWithTimeout returns at its deadline.
	ErrTimedOut = errors.New("migration: timed out")
	// ErrPeerGone: a party of the migration left the mesh (its session failed).
	ErrPeerGone = errors.New("migration: peer is gone")
	// ErrStalled is wrapped by the error Wait returns when the migration
	// made no progress for Opts.StallTimeout (see there).
	ErrStalled = errors.New("migration: stalled")
)

// localErr is a local *compute.MigrationError with a detail kind.
func localErr(detail, format string, args ...any) *compute.MigrationError {
	return &compute.MigrationError{Detail: detail, Msg: fmt.Sprintf(format, args...)}
}

// wrappedLocal is a *compute.MigrationError that also wraps a sentinel of
// this package, so errors.Is works for both.
type wrappedLocal struct {
	*compute.MigrationError
	cause error
}

func (w *wrappedLocal) Unwrap() []error { return []error{w.MigrationError, w.cause} }

func localErrWrap(detail string, cause error, format string, args ...any) error {
	return &wrappedLocal{MigrationError: localErr(detail, format, args...), cause: cause}
}

// failedErr turns a protocol reason into the error a caller sees.
func failedErr(r msg.Reason) error {
	return &compute.MigrationFailedError{Reason: compute.MigrationFailureReason{
		Code: compute.MigrationFailureCode(r.Code), Text: r.Text, Attempts: r.Attempts,
	}}
}

// reasonOf is the wire reason that reports err to a peer.
func reasonOf(err error) msg.Reason {
	var me *compute.MigrationError
	if errors.As(err, &me) && me.Detail == compute.MigrationAlreadyMigrating {
		return msg.Reason{Code: msg.AlreadyMigrating}
	}
	var fe *compute.MigrationFailedError
	if errors.As(err, &fe) {
		return msg.Reason{Code: msg.ReasonCode(fe.Reason.Code), Text: fe.Reason.Text, Attempts: fe.Reason.Attempts}
	}
	return stateFailed(err.Error())
}

func stateFailed(text string) msg.Reason { return msg.Reason{Code: msg.StateFailed, Text: clip(text)} }

// clip keeps a failure text within the wire's u16 length (on a rune boundary).
func clip(s string) string {
	if len(s) <= 1024 {
		return s
	}
	s = s[:1024]
	for len(s) > 0 && !utf8Start(s[len(s)-1]) {
		s = s[:len(s)-1]
	}
	if len(s) > 0 {
		s = s[:len(s)-1]
	}
	return s
}

func utf8Start(b byte) bool { return b&0xC0 != 0x80 }

func hexID(v uint64) string { return "0x" + strconv.FormatUint(v, 16) }
