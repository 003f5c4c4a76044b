package mesh

import (
	"bytes"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// readDatagrams reads until want datagrams arrived, splitting coalesced reads.
func readDatagrams(t *testing.T, tr *udpTransport, want int) [][]byte {
	t.Helper()
	require.NoError(t, tr.SetReadDeadline(time.Now().Add(5*time.Second)))
	buf := make([]byte, groBufSize)
	oob := make([]byte, 128)
	var got [][]byte
	for len(got) < want {
		k, _, seg, err := tr.readBatch(buf, oob)
		require.NoError(t, err)
		if seg == 0 {
			seg = k
		}
		for off := 0; off < k; off += seg {
			got = append(got, bytes.Clone(buf[off:min(off+seg, k)]))
		}
	}
	return got
}

func TestUDPWriteBatchKeepsDatagrams(t *testing.T) {
	for _, gso := range []bool{true, false} {
		a, err := ListenUDP("127.0.0.1:0")
		require.NoError(t, err)
		b, err := ListenUDP("127.0.0.1:0")
		require.NoError(t, err)
		ta, tb := a.(*udpTransport), b.(*udpTransport)
		ta.gso.Store(gso)
		var pkts [][]byte
		// Runs of equal sizes, a shorter packet ending a run, a longer one
		// starting the next, and more packets than one GSO send may carry.
		sizes := []int{1100, 1100, 1100, 300, 1100, 1200, 1200, 7}
		for i := 0; i < 70; i++ {
			sizes = append(sizes, 900)
		}
		for i, n := range sizes {
			p := bytes.Repeat([]byte{byte(i)}, n)
			pkts = append(pkts, p)
		}
		require.NoError(t, ta.writeBatch(pkts, tb.LocalAddr()))
		got := readDatagrams(t, tb, len(pkts))
		assert.Equal(t, pkts, got, "gso=%v", gso)
		if gso && !ta.gso.Load() {
			t.Log("kernel refused UDP_SEGMENT; the fallback path was used")
		}
		require.NoError(t, a.Close())
		require.NoError(t, b.Close())
	}
}

func TestUDPWriteBatchNonUDPAddr(t *testing.T) {
	a, err := ListenUDP("127.0.0.1:0")
	require.NoError(t, err)
	defer a.Close()
	err = a.(*udpTransport).writeBatch([][]byte{{1}, {2}}, &net.IPAddr{IP: net.IPv4(127, 0, 0, 1)})
	assert.Error(t, err)
}
