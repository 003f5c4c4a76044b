package compute

import (
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestKindOfEverySentinel(t *testing.T) {
	for _, k := range kinds {
		assert.Equal(t, k.kind, Kind(k.err))
		assert.Equal(t, k.kind, Kind(fmt.Errorf("outer: %w", k.err)))
	}
	assert.Equal(t, "", Kind(nil))
	assert.Equal(t, KindInternal, Kind(errors.New("other")))
	assert.Equal(t, KindInternal, Kind(ErrPoolFull))
}

func TestKindTypedErrors(t *testing.T) {
	var moved error = &MovedError{Node: 0xabc}
	assert.True(t, errors.Is(moved, ErrDaemonMoved))
	assert.Equal(t, KindDaemonMoved, Kind(fmt.Errorf("x: %w", moved)))
	var me *MovedError
	assert.True(t, errors.As(fmt.Errorf("x: %w", moved), &me))
	assert.Equal(t, uint64(0xabc), me.Node)
	assert.Contains(t, moved.Error(), "0xabc")

	mig := &MigrationError{Detail: MigrationBufferFull, Msg: "m"}
	assert.True(t, errors.Is(mig, ErrMigration))
	assert.Equal(t, KindMigration, Kind(mig))
	assert.Equal(t, "compute: migration error: buffer-full: m", mig.Error())

	mf := &MigrationFailedError{Reason: MigrationFailureReason{Code: FailureNotReadyTimeout, Attempts: 3}}
	assert.True(t, errors.Is(mf, ErrMigrationFailed))
	assert.Equal(t, KindMigrationFailed, Kind(mf))
	assert.Equal(t, "compute: migration failed: not-ready-timeout after 3 attempts", mf.Error())
}

func TestWrappedUserErrorKeepsBothIdentities(t *testing.T) {
	err := wrapErr(ErrProcessFailed, "", fmt.Errorf("deep: %w", ErrTimeout))
	assert.True(t, errors.Is(err, ErrProcessFailed))
	assert.True(t, errors.Is(err, ErrTimeout))
	assert.Equal(t, KindProcessFailed, Kind(err), "outermost classification wins")
	assert.Equal(t, KindRestoreFailed, Kind(wrapErr(ErrRestoreFailed, "", errUser)))
}

func TestFailureReasons(t *testing.T) {
	want := []string{"not-ready", "factory-not-found", "compute-not-supported", "state-failed",
		"already-migrating", "identity-transport-failed", "not-ready-timeout"}
	for i, w := range want {
		c := MigrationFailureCode(i)
		assert.Equal(t, w, c.Kind())
		assert.True(t, c.Valid())
		assert.Equal(t, i == 0, MigrationFailureReason{Code: c}.IsRetriable())
	}
	assert.False(t, MigrationFailureCode(7).Valid())
	assert.Equal(t, "state-failed: boom", MigrationFailureReason{Code: FailureStateFailed, Text: "boom"}.String())
	assert.Equal(t, "unknown(9)", MigrationFailureReason{Code: 9}.String())
}
