package main

/*
#include "capi.h"
*/
import "C"

import (
	"errors"

	"github.com/netmesh/libnetmesh/core/causal"
	"github.com/netmesh/libnetmesh/core/compute"
	"github.com/netmesh/libnetmesh/core/identity"
	"github.com/netmesh/libnetmesh/core/mesh"
)

var kindStatus = map[string]C.int{
	compute.KindNotReady:                 statusNotReady,
	compute.KindShuttingDown:             statusShuttingDown,
	compute.KindFactoryAlreadyRegistered: statusFactoryAlreadyRegistered,
	compute.KindFactoryNotFound:          statusFactoryNotFound,
	compute.KindSnapshotIdentityMismatch: statusSnapshotIdentityMismatch,
	compute.KindDaemonNotFound:           statusDaemonNotFound,
	compute.KindDaemonMoved:              statusDaemonMoved,
	compute.KindAlreadyRegistered:        statusAlreadyRegistered,
	compute.KindProcessFailed:            statusProcessFailed,
	compute.KindRestoreFailed:            statusRestoreFailed,
	compute.KindInvalidArgument:          statusInvalidArgument,
	compute.KindTimeout:                  statusTimeout,
	compute.KindMigration:                statusMigration,
	compute.KindMigrationFailed:          statusMigrationFailed,
}

// mapCoreError maps an error from core/ to a status, the migration detail
// kind and the node a moved daemon went to. compute's classification wins
// (its kinds are the contract, BEHAVIOUR §2); then the leaf packages'
// sentinels; anything else is NET_MESH_ERR_INTERNAL with its text.
func mapCoreError(err error) (C.int, string, uint64) {
	if st, ok := kindStatus[compute.Kind(err)]; ok {
		var detail string
		var moved uint64
		var me *compute.MovedError
		var mig *compute.MigrationError
		var mf *compute.MigrationFailedError
		switch {
		case errors.As(err, &me):
			moved = me.Node
		case errors.As(err, &mig):
			detail = mig.Detail
		case errors.As(err, &mf):
			detail = mf.Reason.Code.Kind()
		}
		// A failing host snapshot callback: compute reports process-failed;
		// the ABI names it for what it is.
		var ce *capiError
		if st == statusProcessFailed && errors.As(err, &ce) && ce.status == statusCallbackFailed {
			st = statusCallbackFailed
		}
		return st, detail, moved
	}
	var ce *capiError
	if errors.As(err, &ce) {
		return ce.status, "", 0
	}
	switch {
	case errors.Is(err, compute.ErrPoolFull):
		return statusQueueFull, "", 0
	case errors.Is(err, compute.ErrBatchRefused):
		return statusBatchRefused, "", 0
	case errors.Is(err, identity.ErrInvalidSeed), errors.Is(err, identity.ErrReadOnly),
		errors.Is(err, causal.ErrMalformed), errors.Is(err, causal.ErrInvalidChannelName),
		errors.Is(err, causal.ErrTooLarge), errors.Is(err, mesh.ErrInvalidChannel),
		errors.Is(err, mesh.ErrInvalidConfig), errors.Is(err, mesh.ErrPayloadTooLarge):
		return statusInvalidArgument, "", 0
	case errors.Is(err, mesh.ErrHandshakeTimeout), errors.Is(err, mesh.ErrAckTimeout):
		return statusTimeout, "", 0
	case errors.Is(err, mesh.ErrClosed), errors.Is(err, mesh.ErrHandshakeFailed),
		errors.Is(err, mesh.ErrPeerUnavailable), errors.Is(err, mesh.ErrUnauthorized),
		errors.Is(err, mesh.ErrUnknownChannel), errors.Is(err, mesh.ErrRateLimited),
		errors.Is(err, mesh.ErrTooManyChannels):
		return statusIO, "", 0
	}
	return statusInternal, "", 0
}
