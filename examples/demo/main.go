// Command demo is `make demo`. It grows with the runtime.
package main

import (
	"fmt"

	"github.com/netmesh/libnetmesh/core/identity"
)

func main() {
	id, err := identity.Generate()
	if err != nil {
		panic(err)
	}
	fmt.Printf("identity origin_hash=%#016x node_id=%#016x\n", id.OriginHash(), id.NodeID())
}
