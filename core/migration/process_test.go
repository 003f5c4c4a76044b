package migration

import (
	"bufio"
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A counter migrates from this process to a child process (migpeer, built
// here) and back, its state intact and still counting in order.
func TestTwoProcessesRoundTrip(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "migpeer")
	build := exec.Command("go", "build", "-o", bin, "./internal/migpeer")
	out, err := build.CombinedOutput()
	require.NoError(t, err, "%s", out)

	a := newTNode(t, nodeOpt{})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	child := exec.CommandContext(ctx, bin, "-accept", strconv.FormatUint(a.id, 16), "-psk", hex.EncodeToString(testPSK[:]))
	stdin, err := child.StdinPipe()
	require.NoError(t, err)
	stdout, err := child.StdoutPipe()
	require.NoError(t, err)
	var stderr strings.Builder
	child.Stderr = &stderr
	require.NoError(t, child.Start())
	defer func() {
		_, _ = io.WriteString(stdin, "QUIT\n")
		_ = stdin.Close()
		_ = child.Wait()
		if t.Failed() {
			t.Logf("child stderr: %s", stderr.String())
		}
	}()
	lines := bufio.NewScanner(stdout)
	next := func() []string {
		t.Helper()
		require.True(t, lines.Scan(), "child ended: %s", stderr.String())
		return strings.Fields(lines.Text())
	}
	send := func(format string, args ...any) []string {
		t.Helper()
		_, err := fmt.Fprintf(stdin, format+"\n", args...)
		require.NoError(t, err)
		return next()
	}

	ready := next()
	require.Len(t, ready, 4)
	require.Equal(t, "READY", ready[0])
	childID, err := strconv.ParseUint(ready[1], 16, 64)
	require.NoError(t, err)
	pubb, err := hex.DecodeString(ready[3])
	require.NoError(t, err)
	var pub [32]byte
	copy(pub[:], pubb)
	cctx, ccancel := context.WithTimeout(ctx, 5*time.Second)
	require.NoError(t, a.node.Connect(cctx, ready[2], pub, childID))
	ccancel()

	kp := spawn(t, a, "counter")
	o := kp.OriginHash()
	deliverRange(t, a, o, 1, 5)
	require.Equal(t, []string{"OK"}, send("EXPECT %x", o))

	h, err := a.eng.StartMigration(ctx, o, a.id, childID)
	require.NoError(t, err)
	require.NoError(t, h.Wait(ctx))
	assert.Equal(t, 0, a.rt.DaemonCount())

	assert.Equal(t, []string{"COUNT", "10", "0"}, send("DELIVER %x 6 10", o))
	assert.Equal(t, []string{"DONE"}, send("MIGRATE %x %x", o, a.id))

	n, bad := count(t, a, o)
	assert.Equal(t, uint64(10), n)
	assert.Zero(t, bad)
	deliverRange(t, a, o, 11, 11)
	n, _ = count(t, a, o)
	assert.Equal(t, uint64(11), n)
	_, ok := a.rt.LookupHost(o)
	assert.True(t, ok)
}
