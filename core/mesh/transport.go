package mesh

import (
	"fmt"
	"net"
)

// Transport is the datagram socket a node runs on: the subset of
// net.PacketConn it needs. WriteTo must be safe to call from several
// goroutines at once; ReadFrom is only called by the node's reader goroutine
// and must return an error once Close has been called.
type Transport interface {
	WriteTo(b []byte, addr net.Addr) (int, error)
	ReadFrom(b []byte) (int, net.Addr, error)
	LocalAddr() net.Addr
	Close() error
}

// AddrResolver is implemented by transports whose addresses are not UDP
// addresses (memnet); Connect uses it to turn an address string into a
// net.Addr. Transports without it get net.ResolveUDPAddr.
type AddrResolver interface {
	ResolveAddr(addr string) (net.Addr, error)
}

// ListenUDP binds a UDP socket for a node ("127.0.0.1:0" picks a free port).
// The transport batches datagrams with the kernel's UDP segmentation offloads
// where available (udp.go).
func ListenUDP(bind string) (Transport, error) {
	ua, err := net.ResolveUDPAddr("udp", bind)
	if err != nil {
		return nil, fmt.Errorf("%w: bind %q: %w", ErrInvalidConfig, bind, err)
	}
	c, err := net.ListenUDP("udp", ua)
	if err != nil {
		return nil, fmt.Errorf("mesh: listen udp %q: %w", bind, err)
	}
	// Bigger socket buffers absorb bursts of reliable traffic; failure is harmless.
	_ = c.SetReadBuffer(4 << 20)
	_ = c.SetWriteBuffer(4 << 20)
	return newUDPTransport(c), nil
}

func resolve(t Transport, addr string) (net.Addr, error) {
	if r, ok := t.(AddrResolver); ok {
		return r.ResolveAddr(addr)
	}
	return net.ResolveUDPAddr("udp", addr)
}
