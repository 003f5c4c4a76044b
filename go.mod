module github.com/netmesh/libnetmesh

go 1.26.0

require (
	filippo.io/edwards25519 v1.2.0
	github.com/flynn/noise v1.1.0
	github.com/mattn/go-pointer v0.0.1
	github.com/stretchr/testify v1.12.1
	github.com/zeebo/xxh3 v1.1.0
	go.uber.org/goleak v1.3.0
	golang.org/x/crypto v0.59.0
)

require (
	github.com/klauspost/cpuid/v2 v2.2.10 // indirect
	go.yaml.in/yaml/v3 v3.0.5 // indirect
	golang.org/x/sys v0.50.0 // indirect
)
