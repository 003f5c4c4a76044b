package compute

import (
	"errors"
	"fmt"
	"strconv"
)

// Sentinels for every error a user can tell apart (BEHAVIOUR §2). Each has a
// stable symbolic kind (see Kind) that the C ABI and the bindings map 1:1.
// Errors returned by this package wrap one of them with %w, so errors.Is works.
var (
	ErrNotReady                 = errors.New("compute: runtime is not ready (call Start first)")
	ErrShuttingDown             = errors.New("compute: runtime is shutting down")
	ErrFactoryAlreadyRegistered = errors.New("compute: factory already registered")
	ErrFactoryNotFound          = errors.New("compute: factory not found")
	ErrSnapshotIdentityMismatch = errors.New("compute: snapshot identity mismatch")
	ErrDaemonNotFound           = errors.New("compute: daemon not found")
	ErrDaemonMoved              = errors.New("compute: daemon moved")
	ErrAlreadyRegistered        = errors.New("compute: identity already registered")
	ErrProcessFailed            = errors.New("compute: process failed")
	ErrRestoreFailed            = errors.New("compute: restore failed")
	ErrInvalidArgument          = errors.New("compute: invalid argument")
	ErrTimeout                  = errors.New("compute: timed out")
	ErrMigration                = errors.New("compute: migration error")
	ErrMigrationFailed          = errors.New("compute: migration failed")

	// ErrPoolFull is internal (kind "internal"): the worker pool's queue is full.
	ErrPoolFull = errors.New("compute: worker pool queue is full")

	// ErrBatchRefused (kind "internal"; the C ABI has its own status): a
	// batch lease was asked of a migrating daemon, whose events must be
	// queued one by one. Nothing changed; deliver them singly.
	ErrBatchRefused = errors.New("compute: batch refused: the daemon is migrating, deliver its events one by one")
)

// Kind strings, stable across every layer.
const (
	KindNotReady                 = "not-ready"
	KindShuttingDown             = "shutting-down"
	KindFactoryAlreadyRegistered = "factory-already-registered"
	KindFactoryNotFound          = "factory-not-found"
	KindSnapshotIdentityMismatch = "snapshot-identity-mismatch"
	KindDaemonNotFound           = "daemon-not-found"
	KindDaemonMoved              = "daemon-moved"
	KindAlreadyRegistered        = "already-registered"
	KindProcessFailed            = "process-failed"
	KindRestoreFailed            = "restore-failed"
	KindInvalidArgument          = "invalid-argument"
	KindTimeout                  = "timeout"
	KindMigration                = "migration"
	KindMigrationFailed          = "migration-failed"
	KindInternal                 = "internal"
)

var kinds = [...]struct {
	err  error
	kind string
}{
	{ErrNotReady, KindNotReady},
	{ErrShuttingDown, KindShuttingDown},
	{ErrFactoryAlreadyRegistered, KindFactoryAlreadyRegistered},
	{ErrFactoryNotFound, KindFactoryNotFound},
	{ErrSnapshotIdentityMismatch, KindSnapshotIdentityMismatch},
	{ErrDaemonNotFound, KindDaemonNotFound},
	{ErrDaemonMoved, KindDaemonMoved},
	{ErrAlreadyRegistered, KindAlreadyRegistered},
	{ErrProcessFailed, KindProcessFailed},
	{ErrRestoreFailed, KindRestoreFailed},
	{ErrInvalidArgument, KindInvalidArgument},
	{ErrTimeout, KindTimeout},
	{ErrMigration, KindMigration},
	{ErrMigrationFailed, KindMigrationFailed},
}

// Kind returns the symbolic kind of err: "" for nil, "internal" when no
// sentinel of this package is found. The outermost classification wins: a
// process-failed error wrapping a user error that itself wraps, say,
// ErrTimeout is "process-failed". The error tree is walked depth-first.
func Kind(err error) string {
	if err == nil {
		return ""
	}
	if k := kindOf(err); k != "" {
		return k
	}
	return KindInternal
}

func kindOf(err error) string {
	for err != nil {
		switch e := err.(type) {
		case *MovedError:
			return KindDaemonMoved
		case *MigrationError:
			return KindMigration
		case *MigrationFailedError:
			return KindMigrationFailed
		case *opError:
			return kindOf(e.kind)
		}
		for _, k := range kinds {
			if err == k.err {
				return k.kind
			}
		}
		switch u := err.(type) {
		case interface{ Unwrap() []error }:
			for _, inner := range u.Unwrap() {
				if k := kindOf(inner); k != "" {
					return k
				}
			}
			return ""
		case interface{ Unwrap() error }:
			err = u.Unwrap()
		default:
			return ""
		}
	}
	return ""
}

// opError classifies a cause (often the daemon's own error) under a
// sentinel: errors.Is holds for both the sentinel and the cause.
type opError struct {
	kind  error
	msg   string
	cause error
}

func (e *opError) Error() string {
	if e.cause == nil {
		return e.kind.Error() + ": " + e.msg
	}
	if e.msg == "" {
		return e.kind.Error() + ": " + e.cause.Error()
	}
	return e.kind.Error() + ": " + e.msg + ": " + e.cause.Error()
}

func (e *opError) Unwrap() []error {
	if e.cause == nil {
		return []error{e.kind}
	}
	return []error{e.kind, e.cause}
}

func wrapErr(kind error, msg string, cause error) error {
	return &opError{kind: kind, msg: msg, cause: cause}
}

// panicError is what a recovered panic in user code becomes.
type panicError struct{ value any }

func (e *panicError) Error() string { return fmt.Sprintf("panic: %v", e.value) }

func originStr(origin uint64) string { return "origin 0x" + strconv.FormatUint(origin, 16) }

// MovedError: the daemon migrated away to Node. errors.Is(err, ErrDaemonMoved).
type MovedError struct {
	Node uint64
}

func (e *MovedError) Error() string {
	return "compute: daemon moved to node 0x" + strconv.FormatUint(e.Node, 16)
}

// Is makes errors.Is(err, ErrDaemonMoved) hold.
func (e *MovedError) Is(target error) bool { return target == ErrDaemonMoved }

// Detail kinds of a local MigrationError.
const (
	MigrationDaemonNotFound    = "daemon-not-found"
	MigrationTargetUnavailable = "target-unavailable"
	MigrationNoTarget          = "no-target-available"
	MigrationStateFailed       = "state-failed"
	MigrationAlreadyMigrating  = "already-migrating"
	MigrationWrongPhase        = "wrong-phase"
	MigrationSnapshotTooLarge  = "snapshot-too-large"
	MigrationBufferFull        = "buffer-full"
	MigrationWrongPeer         = "wrong-peer"
)

// MigrationError is a local migration error. Detail is one of the
// Migration* detail kinds; Msg is free text. errors.Is(err, ErrMigration).
type MigrationError struct {
	Detail string
	Msg    string
}

func (e *MigrationError) Error() string {
	if e.Msg == "" {
		return "compute: migration error: " + e.Detail
	}
	return "compute: migration error: " + e.Detail + ": " + e.Msg
}

// Is makes errors.Is(err, ErrMigration) hold.
func (e *MigrationError) Is(target error) bool { return target == ErrMigration }

// MigrationFailureCode is the u16 reason code of a MigrationFailed message
// (FORMATS §6). The values are wire values and never change.
type MigrationFailureCode uint16

const (
	FailureNotReady                MigrationFailureCode = 0
	FailureFactoryNotFound         MigrationFailureCode = 1
	FailureComputeNotSupported     MigrationFailureCode = 2
	FailureStateFailed             MigrationFailureCode = 3 // carries Text
	FailureAlreadyMigrating        MigrationFailureCode = 4
	FailureIdentityTransportFailed MigrationFailureCode = 5 // carries Text
	FailureNotReadyTimeout         MigrationFailureCode = 6 // carries Attempts
)

var failureKinds = [...]string{
	"not-ready", "factory-not-found", "compute-not-supported", "state-failed",
	"already-migrating", "identity-transport-failed", "not-ready-timeout",
}

// Kind is the symbolic name of the code, "" for an unknown code.
func (c MigrationFailureCode) Kind() string {
	if int(c) < len(failureKinds) {
		return failureKinds[c]
	}
	return ""
}

// Valid reports whether c is a known code.
func (c MigrationFailureCode) Valid() bool { return int(c) < len(failureKinds) }

// MigrationFailureReason is why the protocol reported a migration failure.
// Text is used by StateFailed and IdentityTransportFailed, Attempts by
// NotReadyTimeout (first attempt included).
type MigrationFailureReason struct {
	Code     MigrationFailureCode
	Text     string
	Attempts uint8
}

// IsRetriable is true only for NotReady.
func (r MigrationFailureReason) IsRetriable() bool { return r.Code == FailureNotReady }

func (r MigrationFailureReason) String() string {
	k := r.Code.Kind()
	if k == "" {
		k = "unknown(" + strconv.Itoa(int(r.Code)) + ")"
	}
	switch r.Code {
	case FailureStateFailed, FailureIdentityTransportFailed:
		return k + ": " + r.Text
	case FailureNotReadyTimeout:
		return k + " after " + strconv.Itoa(int(r.Attempts)) + " attempts"
	}
	return k
}

// MigrationFailedError carries the reason the migration protocol reported.
// errors.Is(err, ErrMigrationFailed).
type MigrationFailedError struct {
	Reason MigrationFailureReason
}

func (e *MigrationFailedError) Error() string {
	return "compute: migration failed: " + e.Reason.String()
}

// Is makes errors.Is(err, ErrMigrationFailed) hold.
func (e *MigrationFailedError) Is(target error) bool { return target == ErrMigrationFailed }
