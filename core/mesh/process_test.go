package mesh

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

// TestTwoProcesses runs a node in a child OS process (internal/meshpeer) and
// talks to it over loopback UDP: handshake, reliable echo both ways, and a
// channel subscription with a publish.
func TestTwoProcesses(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "meshpeer")
	build := exec.Command("go", "build", "-o", bin, "./internal/meshpeer")
	out, err := build.CombinedOutput()
	require.NoError(t, err, string(out))

	cfg := fastCfg()
	cfg.HeartbeatInterval = time.Second
	cfg.SessionTimeout = 30 * time.Second
	a := newNode(t, cfg)
	cmd := exec.Command(bin, "-psk", hex.EncodeToString(testPSK[:]), "-accept", fmt.Sprintf("%016x", a.NodeID()), "-channel", "demo")
	stdin, err := cmd.StdinPipe()
	require.NoError(t, err)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	defer func() {
		_ = stdin.Close()
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			assert.NoError(t, err)
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
			t.Error("child did not exit")
		}
	}()
	lines := make(chan string, 16)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		_, _ = io.Copy(io.Discard, stdout)
	}()
	next := func() string {
		select {
		case l := <-lines:
			return l
		case <-time.After(20 * time.Second):
			t.Fatal("child said nothing")
			return ""
		}
	}
	f := strings.Fields(next())
	require.Len(t, f, 4)
	require.Equal(t, "READY", f[0])
	peerID, err := strconv.ParseUint(f[2], 16, 64)
	require.NoError(t, err)
	pubBytes, err := hex.DecodeString(f[3])
	require.NoError(t, err)
	var peerStatic [32]byte
	copy(peerStatic[:], pubBytes)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, a.Connect(ctx, f[1], peerStatic, peerID))

	c := newCollector()
	a.SetSubprotocolHandler(0x0500, c.handler)
	a.SetSubprotocolHandler(0x1234, c.handler)
	for i := 0; i < 20; i++ {
		msg := []byte(fmt.Sprintf("ping %d", i))
		require.NoError(t, a.SendSubprotocol(ctx, peerID, 0x0500, msg))
		assert.Equal(t, msg, c.next(t))
	}
	require.NoError(t, a.SendSubprotocol(ctx, peerID, 0x1234, []byte("plain")))
	assert.Equal(t, []byte("plain"), c.next(t))

	msgs := make(chan string, 4)
	a.OnChannelMessage(func(pub uint64, ch string, p []byte) {
		if pub == peerID && ch == "demo" {
			msgs <- string(p)
		}
	})
	require.NoError(t, a.SubscribeChannel(ctx, peerID, "demo", nil))
	_, err = io.WriteString(stdin, "publish hi there\n")
	require.NoError(t, err)
	assert.Equal(t, "PUBLISHED 1 1", next())
	select {
	case m := <-msgs:
		assert.Equal(t, "hi there", m)
	case <-time.After(10 * time.Second):
		t.Fatal("no channel message from child")
	}
}
