// Package memnet is an in-memory datagram network for tests: each Conn is a
// socket with a name, and every directed link between two names can drop,
// delay, reorder and duplicate packets. All random choices come from one
// math/rand/v2 generator seeded by the caller, so a run with the same seed and
// the same send order makes the same choices. Link settings can change at any
// time.
package memnet

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"sync"
	"time"
)

// ErrClosed is returned by a closed Conn.
var ErrClosed = errors.New("memnet: closed")

// ErrAddrInUse is returned by Listen for a taken name.
var ErrAddrInUse = errors.New("memnet: address in use")

// Addr is a memnet address; any name is valid.
type Addr string

// Network returns "mem".
func (Addr) Network() string { return "mem" }

func (a Addr) String() string { return string(a) }

// LinkConfig describes one direction of a link. Probabilities are in [0, 1].
type LinkConfig struct {
	Loss      float64       // probability a packet is dropped
	Duplicate float64       // probability a packet is delivered twice
	Reorder   float64       // probability a packet is held back by ReorderDelay
	Delay     time.Duration // fixed one-way delay
	Jitter    time.Duration // extra uniform random delay in [0, Jitter)
	// ReorderDelay is how long a reordered packet is held (default 5 ms).
	ReorderDelay time.Duration
	// Down drops everything (a partition).
	Down bool
}

// Network is a set of Conns and the links between them. Safe for concurrent use.
type Network struct {
	mu      sync.Mutex
	rng     *rand.Rand
	conns   map[Addr]*Conn
	links   map[[2]Addr]LinkConfig
	deflt   LinkConfig
	nextID  int
	inboxes int
}

// New creates a network whose random choices are seeded by seed.
func New(seed uint64) *Network {
	return &Network{
		rng:     rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		conns:   make(map[Addr]*Conn),
		links:   make(map[[2]Addr]LinkConfig),
		inboxes: 4096,
	}
}

// SetDefault sets the behaviour of every link without its own config.
func (n *Network) SetDefault(c LinkConfig) {
	n.mu.Lock()
	n.deflt = c
	n.mu.Unlock()
}

// SetLink sets the behaviour of packets sent from `from` to `to`.
func (n *Network) SetLink(from, to string, c LinkConfig) {
	n.mu.Lock()
	n.links[[2]Addr{Addr(from), Addr(to)}] = c
	n.mu.Unlock()
}

// ClearLink makes the link from → to use the default again.
func (n *Network) ClearLink(from, to string) {
	n.mu.Lock()
	delete(n.links, [2]Addr{Addr(from), Addr(to)})
	n.mu.Unlock()
}

// Listen opens a Conn named name; "" picks a fresh name "mem-N".
func (n *Network) Listen(name string) (*Conn, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if name == "" {
		for {
			n.nextID++
			name = fmt.Sprintf("mem-%d", n.nextID)
			if _, ok := n.conns[Addr(name)]; !ok {
				break
			}
		}
	}
	a := Addr(name)
	if _, ok := n.conns[a]; ok {
		return nil, fmt.Errorf("%w: %s", ErrAddrInUse, name)
	}
	c := &Conn{net: n, addr: a, inbox: make(chan packet, n.inboxes), done: make(chan struct{})}
	n.conns[a] = c
	return c, nil
}

type packet struct {
	b    []byte
	from Addr
}

// Conn is one endpoint. It implements the mesh Transport interface.
type Conn struct {
	net   *Network
	addr  Addr
	inbox chan packet
	once  sync.Once
	done  chan struct{}
}

// LocalAddr returns the Conn's name.
func (c *Conn) LocalAddr() net.Addr { return c.addr }

// ResolveAddr turns a name into an Addr.
func (c *Conn) ResolveAddr(s string) (net.Addr, error) { return Addr(s), nil }

// Close releases the name and wakes a blocked ReadFrom.
func (c *Conn) Close() error {
	c.once.Do(func() {
		close(c.done)
		c.net.mu.Lock()
		if c.net.conns[c.addr] == c {
			delete(c.net.conns, c.addr)
		}
		c.net.mu.Unlock()
	})
	return nil
}

// ReadFrom blocks for the next packet.
func (c *Conn) ReadFrom(b []byte) (int, net.Addr, error) {
	select {
	case <-c.done:
		return 0, nil, ErrClosed
	case p := <-c.inbox:
		return copy(b, p.b), p.from, nil
	}
}

// WriteTo sends a copy of b through the link to addr. Like UDP it never
// reports loss; a packet to an unknown name vanishes.
func (c *Conn) WriteTo(b []byte, addr net.Addr) (int, error) {
	select {
	case <-c.done:
		return 0, ErrClosed
	default:
	}
	to := Addr(addr.String())
	n := c.net
	n.mu.Lock()
	cfg, ok := n.links[[2]Addr{c.addr, to}]
	if !ok {
		cfg = n.deflt
	}
	copies := 1
	if cfg.Down || (cfg.Loss > 0 && n.rng.Float64() < cfg.Loss) {
		copies = 0
	} else if cfg.Duplicate > 0 && n.rng.Float64() < cfg.Duplicate {
		copies = 2
	}
	delays := [2]time.Duration{}
	for i := 0; i < copies; i++ {
		d := cfg.Delay
		if cfg.Jitter > 0 {
			d += time.Duration(n.rng.Int64N(int64(cfg.Jitter)))
		}
		if cfg.Reorder > 0 && n.rng.Float64() < cfg.Reorder {
			rd := cfg.ReorderDelay
			if rd <= 0 {
				rd = 5 * time.Millisecond
			}
			d += rd
		}
		delays[i] = d
	}
	n.mu.Unlock()
	p := packet{b: append([]byte(nil), b...), from: c.addr}
	for i := 0; i < copies; i++ {
		if delays[i] <= 0 {
			n.deliver(to, p)
			continue
		}
		time.AfterFunc(delays[i], func() { n.deliver(to, p) })
	}
	return len(b), nil
}

// deliver puts p in to's inbox; a full inbox drops it, as a full UDP buffer would.
func (n *Network) deliver(to Addr, p packet) {
	n.mu.Lock()
	dst := n.conns[to]
	n.mu.Unlock()
	if dst == nil {
		return
	}
	select {
	case dst.inbox <- p:
	default:
	}
}
