package mesh

import (
	"encoding/binary"
	"errors"
	"net"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"
)

// Batched UDP I/O for Linux loopback and NICs: UDP generic segmentation
// offload (UDP_SEGMENT) on send and generic receive offload (UDP_GRO) on
// receive. Each datagram on the wire is still one packet with its own header
// and tag; the kernel just carries a run of equal-sized datagrams through its
// stack as one buffer, which is where the per-datagram cost of sendto goes.
// Where the kernel refuses either option the transport falls back to one
// datagram per system call, silently.

const (
	solUDP        = 17  // SOL_UDP
	optUDPSegment = 103 // UDP_SEGMENT
	optUDPGRO     = 104 // UDP_GRO
	// gsoMaxSegments and gsoMaxBytes keep a send within the kernel's limits
	// (UDP_MAX_SEGMENTS is 64 on older kernels; one IPv4 datagram < 64 KiB).
	gsoMaxSegments = 64
	gsoMaxBytes    = 65000
	groBufSize     = 64 << 10
)

// batchWriter is implemented by transports that can send several datagrams to
// one address in one call. The node then sends through a writer goroutine.
type batchWriter interface {
	writeBatch(pkts [][]byte, to net.Addr) error
}

// batchReader is implemented by transports that may return several datagrams
// from one read: readBatch fills buf and returns its length, the source, and
// the segment size (every segment seg bytes except a shorter last one; 0 = one
// datagram).
type batchReader interface {
	readBatch(buf, oob []byte) (n int, from net.Addr, seg int, err error)
}

// udpTransport is the UDP socket of a node.
type udpTransport struct {
	*net.UDPConn
	gso atomic.Bool // UDP_SEGMENT still believed to work
	gro bool        // UDP_GRO enabled on the socket
	big []byte      // writeBatch scratch (writer goroutine only)
}

func newUDPTransport(c *net.UDPConn) *udpTransport {
	t := &udpTransport{UDPConn: c, big: make([]byte, 0, gsoMaxBytes)}
	t.gso.Store(true)
	if sc, err := c.SyscallConn(); err == nil {
		_ = sc.Control(func(fd uintptr) {
			t.gro = syscall.SetsockoptInt(int(fd), solUDP, optUDPGRO, 1) == nil
		})
	}
	return t
}

// gsoControl is the UDP_SEGMENT control message for segments of size seg.
func gsoControl(b []byte, seg int) []byte {
	b = b[:syscall.CmsgSpace(2)]
	clear(b)
	h := (*syscall.Cmsghdr)(unsafe.Pointer(&b[0]))
	h.Level = solUDP
	h.Type = optUDPSegment
	h.SetLen(syscall.CmsgLen(2))
	binary.NativeEndian.PutUint16(b[syscall.CmsgLen(0):], uint16(seg))
	return b
}

// writeBatch sends pkts to `to`, coalescing runs of equal-sized packets (the
// last of a run may be shorter) into one GSO send. Called by the node's
// writer goroutine only (it reuses scratch buffers).
func (t *udpTransport) writeBatch(pkts [][]byte, to net.Addr) error {
	ua, ok := to.(*net.UDPAddr)
	if !ok || !t.gso.Load() || len(pkts) == 1 {
		return t.writeEach(pkts, to)
	}
	var firstErr error
	var oob [64]byte
	big := t.big
	for i := 0; i < len(pkts); {
		seg := len(pkts[i])
		j := i
		big = big[:0]
		for j < len(pkts) && j-i < gsoMaxSegments && len(big)+len(pkts[j]) <= gsoMaxBytes && len(pkts[j]) <= seg {
			big = append(big, pkts[j]...)
			j++
			if len(pkts[j-1]) < seg {
				break // a shorter packet ends the run
			}
		}
		var err error
		if j-i == 1 {
			_, err = t.WriteToUDP(big, ua)
		} else if _, _, err = t.WriteMsgUDP(big, gsoControl(oob[:], seg), ua); err != nil && !isTransient(err) {
			// The kernel or route refuses segmentation offload: stop using it.
			t.gso.Store(false)
			err = t.writeEach(pkts[i:j], to)
		}
		if err != nil && firstErr == nil {
			firstErr = err
		}
		i = j
	}
	return firstErr
}

func (t *udpTransport) writeEach(pkts [][]byte, to net.Addr) error {
	var firstErr error
	for _, p := range pkts {
		if _, err := t.WriteTo(p, to); err != nil && firstErr == nil {
			firstErr = err
		}
	}
	return firstErr
}

func isTransient(err error) bool {
	return errors.Is(err, syscall.ENOBUFS) || errors.Is(err, syscall.EAGAIN) || errors.Is(err, net.ErrClosed)
}

// readBatch reads one (possibly coalesced) datagram.
func (t *udpTransport) readBatch(buf, oob []byte) (int, net.Addr, int, error) {
	n, oobn, _, from, err := t.ReadMsgUDP(buf, oob)
	if err != nil {
		return 0, nil, 0, err
	}
	seg := 0
	if t.gro && oobn > 0 {
		if msgs, perr := syscall.ParseSocketControlMessage(oob[:oobn]); perr == nil {
			for _, m := range msgs {
				if m.Header.Level != solUDP || m.Header.Type != optUDPGRO {
					continue
				}
				switch {
				case len(m.Data) >= 4: // the kernel passes an int
					seg = int(binary.NativeEndian.Uint32(m.Data))
				case len(m.Data) >= 2:
					seg = int(binary.NativeEndian.Uint16(m.Data))
				}
			}
		}
	}
	if seg >= n {
		seg = 0
	}
	return n, from, seg, nil
}

// sendQueueLen bounds the packets sealed but not yet handed to the socket;
// senders block (like a full socket buffer) while it is full.
const sendQueueLen = 1024

// writerBatch is the most packets the writer hands to the transport at once.
const writerBatch = 128

// outPacket is a sealed packet waiting for the writer goroutine.
type outPacket struct {
	buf *[]byte // from packetPool; the writer puts it back
	to  net.Addr
}

// directIdle is how long the socket must have been idle (no write finished
// more recently) for a sender to write its packet itself instead of queueing
// it. Latency-bound traffic (one message, then a round trip) skips the hand-off
// to the writer goroutine; back-to-back traffic keeps going through the writer,
// which batches it (GSO) and overlaps the socket work with sealing.
const directIdle = 50 * time.Microsecond

// enqueue sends a sealed packet, counting it as sent: written directly by the
// caller when nothing is queued, no write is in progress and the socket has
// been idle for directIdle; otherwise handed to the writer goroutine. buf
// belongs to enqueue (returned to packetPool) in every case.
//
// Ordering: n.pending counts packets queued or held by the writer until they
// are written, and every write (direct or batched) holds n.wmu, so a direct
// write under wmu with pending == 0 never overtakes an earlier packet.
func (n *Node) enqueue(buf *[]byte, to net.Addr) error {
	size := uint64(len(*buf))
	if n.pending.Load() == 0 && nanotime()-n.lastWrite.Load() >= int64(directIdle) && n.wmu.TryLock() {
		if n.pending.Load() == 0 {
			if n.ctx.Err() != nil {
				n.wmu.Unlock()
				packetPool.Put(buf)
				return ErrClosed
			}
			_, err := n.tr.WriteTo(*buf, to)
			n.lastWrite.Store(nanotime())
			n.wmu.Unlock()
			packetPool.Put(buf)
			// Like a queued packet: counted as sent, a write error only logged.
			n.ctr.packetsSent.Add(1)
			n.ctr.bytesSent.Add(size)
			if err != nil && !n.closed.Load() {
				n.logf(LogDebug, "mesh: write error", map[string]any{"err": err.Error()})
			}
			return nil
		}
		n.wmu.Unlock()
	}
	n.pending.Add(1)
	select {
	case n.sendq <- outPacket{buf: buf, to: to}:
		n.ctr.packetsSent.Add(1)
		n.ctr.bytesSent.Add(size)
		return nil
	case <-n.ctx.Done():
		n.pending.Add(-1)
		packetPool.Put(buf)
		return ErrClosed
	}
}

// nanotime is a monotonic clock reading in nanoseconds.
func nanotime() int64 { return int64(time.Since(clockBase)) }

var clockBase = time.Now()

// writerLoop drains sendq: it takes whatever is queued (up to writerBatch)
// and writes runs of packets to the same address in one batch, so sealing on
// the senders' goroutines overlaps with the socket work here. It exits when
// the node closes; packets still queued are dropped.
func (n *Node) writerLoop() {
	defer n.wg.Done()
	bw := n.tr.(batchWriter)
	batch := make([]outPacket, 0, writerBatch)
	pkts := make([][]byte, 0, writerBatch)
	for {
		select {
		case p := <-n.sendq:
			batch = append(batch[:0], p)
		case <-n.ctx.Done():
			return
		}
		n.wmu.Lock() // waits for a direct write in progress
	fill:
		for len(batch) < writerBatch {
			select {
			case p := <-n.sendq:
				batch = append(batch, p)
			default:
				break fill
			}
		}
		for i := 0; i < len(batch); {
			to := batch[i].to
			pkts = pkts[:0]
			j := i
			for ; j < len(batch) && batch[j].to == to; j++ {
				pkts = append(pkts, *batch[j].buf)
			}
			if err := bw.writeBatch(pkts, to); err != nil && !n.closed.Load() {
				n.logf(LogDebug, "mesh: write error", map[string]any{"err": err.Error()})
			}
			i = j
		}
		n.lastWrite.Store(nanotime())
		n.pending.Add(-int64(len(batch)))
		n.wmu.Unlock()
		for i := range batch {
			packetPool.Put(batch[i].buf)
			batch[i] = outPacket{}
		}
		clear(pkts)
	}
}
