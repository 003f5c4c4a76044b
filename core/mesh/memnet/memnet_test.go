package memnet

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// Same seed, same send order: the same packets survive, duplicated alike.
func TestMemnetDeterministic(t *testing.T) {
	run := func() []int {
		net := New(99)
		net.SetDefault(LinkConfig{Loss: 0.3, Duplicate: 0.3})
		a, _ := net.Listen("a")
		b, _ := net.Listen("b")
		defer a.Close()
		defer b.Close()
		for i := 0; i < 50; i++ {
			_, _ = a.WriteTo([]byte{byte(i)}, Addr("b"))
		}
		var out []int
		buf := make([]byte, 8)
		for {
			done := make(chan struct{})
			var k int
			go func() { k, _, _ = b.ReadFrom(buf); close(done) }()
			select {
			case <-done:
				out = append(out, int(buf[0]))
				_ = k
				continue
			case <-time.After(20 * time.Millisecond):
			}
			b.Close()
			<-done
			return out
		}
	}
	x, y := run(), run()
	assert.Equal(t, x, y)
	assert.Less(t, len(x), 65)
	assert.NotEqual(t, 50, len(x))
}

func TestDelayAndAddrInUse(t *testing.T) {
	n := New(1)
	a, err := n.Listen("a")
	require.NoError(t, err)
	defer a.Close()
	_, err = n.Listen("a")
	require.ErrorIs(t, err, ErrAddrInUse)
	b, err := n.Listen("")
	require.NoError(t, err)
	defer b.Close()
	n.SetLink("a", b.LocalAddr().String(), LinkConfig{Delay: 30 * time.Millisecond})
	start := time.Now()
	_, err = a.WriteTo([]byte("x"), b.LocalAddr())
	require.NoError(t, err)
	buf := make([]byte, 4)
	k, from, err := b.ReadFrom(buf)
	require.NoError(t, err)
	assert.Equal(t, "x", string(buf[:k]))
	assert.Equal(t, "a", from.String())
	assert.GreaterOrEqual(t, time.Since(start), 30*time.Millisecond)
	require.NoError(t, b.Close())
	_, _, err = b.ReadFrom(buf)
	require.ErrorIs(t, err, ErrClosed)
}
