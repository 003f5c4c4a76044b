package main

/*
#include "capi.h"
*/
import "C"

import (
	"unsafe"

	"github.com/netmesh/libnetmesh/core/identity"
)

func identityOf(h *C.nm_cidentity) (*identity.Keypair, error) {
	v, err := lookup(unsafe.Pointer(h), kindIdentity)
	if err != nil {
		return nil, err
	}
	return v.(*identity.Keypair), nil
}

func mintIdentity(k *identity.Keypair) *C.net_mesh_identity {
	return (*C.net_mesh_identity)(mint(kindIdentity, k))
}

//export net_mesh_identity_generate
func net_mesh_identity_generate(out **C.net_mesh_identity) (rc C.int) {
	defer guard(&rc)
	if out == nil {
		return fail(errNilOut)
	}
	k, err := identity.Generate()
	if err != nil {
		return fail(err)
	}
	*out = mintIdentity(k)
	return statusOK
}

//export net_mesh_identity_from_seed
func net_mesh_identity_from_seed(seed *C.nm_cu8, seedLen C.size_t, out **C.net_mesh_identity) (rc C.int) {
	defer guard(&rc)
	if out == nil {
		return fail(errNilOut)
	}
	if seed == nil {
		return fail(errf(statusInvalidArgument, "seed is NULL"))
	}
	if seedLen != identity.SeedSize {
		return fail(errf(statusInvalidArgument, "seed must be %d bytes, got %d", identity.SeedSize, uint64(seedLen)))
	}
	k, err := identity.FromSeed(borrow(seed, seedLen))
	if err != nil {
		return fail(err)
	}
	*out = mintIdentity(k)
	return statusOK
}

//export net_mesh_identity_from_entity_id
func net_mesh_identity_from_entity_id(id *C.nm_cu8, out **C.net_mesh_identity) (rc C.int) {
	defer guard(&rc)
	if out == nil {
		return fail(errNilOut)
	}
	if id == nil {
		return fail(errf(statusInvalidArgument, "entity id is NULL"))
	}
	var eid identity.EntityID
	copy(eid[:], borrow(id, 32))
	*out = mintIdentity(identity.PublicOnly(eid))
	return statusOK
}

//export net_mesh_identity_entity_id
func net_mesh_identity_entity_id(h *C.nm_cidentity, out *C.uint8_t) (rc C.int) {
	defer guard(&rc)
	k, err := identityOf(h)
	if err != nil {
		return fail(err)
	}
	if out == nil {
		return fail(errNilOut)
	}
	id := k.EntityID()
	copy(unsafe.Slice((*byte)(out), 32), id[:])
	return statusOK
}

//export net_mesh_identity_seed
func net_mesh_identity_seed(h *C.nm_cidentity, out *C.uint8_t) (rc C.int) {
	defer guard(&rc)
	k, err := identityOf(h)
	if err != nil {
		return fail(err)
	}
	if out == nil {
		return fail(errNilOut)
	}
	seed, ok := k.Seed()
	if !ok {
		return fail(errf(statusInvalidArgument, "identity is public-only: it has no seed"))
	}
	copy(unsafe.Slice((*byte)(out), 32), seed[:])
	return statusOK
}

//export net_mesh_identity_origin_hash
func net_mesh_identity_origin_hash(h *C.nm_cidentity, out *C.uint64_t) (rc C.int) {
	defer guard(&rc)
	k, err := identityOf(h)
	if err != nil {
		return fail(err)
	}
	if out == nil {
		return fail(errNilOut)
	}
	*out = C.uint64_t(k.OriginHash())
	return statusOK
}

//export net_mesh_identity_node_id
func net_mesh_identity_node_id(h *C.nm_cidentity, out *C.uint64_t) (rc C.int) {
	defer guard(&rc)
	k, err := identityOf(h)
	if err != nil {
		return fail(err)
	}
	if out == nil {
		return fail(errNilOut)
	}
	*out = C.uint64_t(k.NodeID())
	return statusOK
}

//export net_mesh_identity_free
func net_mesh_identity_free(h *C.net_mesh_identity) {
	defer guardVoid()
	release(unsafe.Pointer(h), kindIdentity)
}
