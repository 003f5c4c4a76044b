package main

/*
#include "capi.h"
*/
import "C"

import (
	"errors"

	"github.com/netmesh/libnetmesh/core/identity"
)

// mapCoreError maps an error from core/ to a status. Unknown errors are
// NET_MESH_ERR_INTERNAL with their text.
func mapCoreError(err error) (C.int, string, uint64) {
	switch {
	case errors.Is(err, identity.ErrInvalidSeed), errors.Is(err, identity.ErrReadOnly):
		return statusInvalidArgument, "", 0
	}
	return statusInternal, "", 0
}
