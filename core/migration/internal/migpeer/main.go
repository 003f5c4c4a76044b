// Command migpeer is the child process of the two-process migration test: a
// mesh node with a runtime and a migration engine, driven line by line on
// stdin, answering on stdout.
//
//	→ READY <node id hex> <addr> <x25519 pub hex>     (at start)
//	EXPECT <origin hex>            → OK
//	DELIVER <origin hex> <from> <to> → COUNT <n> <bad>
//	MIGRATE <origin hex> <target hex> → DONE | ERR <text>
//	QUIT
package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/netmesh/libnetmesh/core/causal"
	"github.com/netmesh/libnetmesh/core/compute"
	"github.com/netmesh/libnetmesh/core/mesh"
	"github.com/netmesh/libnetmesh/core/migration"
)

// counter has the same state layout as the test's counter daemon:
// [count u64][out-of-order u64].
type counter struct{ n, bad uint64 }

func (c *counter) Name() string           { return "counter" }
func (c *counter) Requirements() []string { return nil }
func (c *counter) Process(ev causal.Event) ([][]byte, error) {
	c.n++
	if len(ev.Payload) < 8 || binary.LittleEndian.Uint64(ev.Payload) != c.n {
		c.bad++
	}
	return nil, nil
}
func (c *counter) Snapshot() ([]byte, error) {
	b := make([]byte, 16)
	binary.LittleEndian.PutUint64(b, c.n)
	binary.LittleEndian.PutUint64(b[8:], c.bad)
	return b, nil
}
func (c *counter) Restore(b []byte) error {
	if len(b) < 16 {
		return errors.New("counter: short state")
	}
	c.n, c.bad = binary.LittleEndian.Uint64(b), binary.LittleEndian.Uint64(b[8:])
	return nil
}

func main() {
	accept := flag.String("accept", "", "node id (hex) allowed to connect")
	psk := flag.String("psk", "", "mesh pre-shared key (hex, 32 bytes)")
	flag.Parse()
	if err := run(*accept, *psk); err != nil {
		fmt.Fprintln(os.Stderr, "migpeer:", err)
		os.Exit(1)
	}
}

func run(accept, pskHex string) error {
	cfg := mesh.Config{HeartbeatInterval: 100 * time.Millisecond, SessionTimeout: 3 * time.Second, RetransmitInterval: 20 * time.Millisecond}
	k, err := hex.DecodeString(pskHex)
	if err != nil || len(k) != 32 {
		return fmt.Errorf("bad -psk")
	}
	copy(cfg.PSK[:], k)
	node, err := mesh.NewNode(cfg)
	if err != nil {
		return err
	}
	defer node.Close()
	peer, err := strconv.ParseUint(accept, 16, 64)
	if err != nil {
		return fmt.Errorf("bad -accept: %w", err)
	}
	node.Accept(peer)
	rt := compute.NewRuntime(node)
	eng := migration.Attach(rt, node)
	if err := rt.RegisterFactory("counter", func() (compute.Daemon, error) { return &counter{}, nil }); err != nil {
		return err
	}
	ctx := context.Background()
	if err := rt.Start(ctx); err != nil {
		return err
	}
	defer rt.Shutdown(ctx)
	pub := node.StaticPublicKey()
	fmt.Printf("READY %x %s %s\n", node.NodeID(), node.Addr(), hex.EncodeToString(pub[:]))
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		f := strings.Fields(in.Text())
		if len(f) == 0 {
			continue
		}
		arg := func(i int) uint64 {
			if i >= len(f) {
				return 0
			}
			base := 16
			if f[0] == "DELIVER" && i >= 2 {
				base = 10
			}
			v, _ := strconv.ParseUint(f[i], base, 64)
			return v
		}
		switch f[0] {
		case "EXPECT":
			reply(rt.ExpectMigration("counter", arg(1), compute.DaemonConfig{}), "OK")
		case "DELIVER":
			o := arg(1)
			var derr error
			for i := arg(2); i <= arg(3) && derr == nil; i++ {
				_, derr = rt.Deliver(o, causal.Event{Payload: binary.LittleEndian.AppendUint64(nil, i)})
			}
			if derr != nil {
				reply(derr, "")
				continue
			}
			s, err := rt.Snapshot(ctx, o)
			if err != nil {
				reply(err, "")
				continue
			}
			fmt.Printf("COUNT %d %d\n", binary.LittleEndian.Uint64(s.State), binary.LittleEndian.Uint64(s.State[8:]))
		case "MIGRATE":
			c, cancel := context.WithTimeout(ctx, 20*time.Second)
			h, err := eng.StartMigration(c, arg(1), node.NodeID(), arg(2))
			if err == nil {
				err = h.Wait(c)
			}
			cancel()
			reply(err, "DONE")
		case "QUIT":
			return nil
		default:
			fmt.Println("ERR unknown command")
		}
	}
	return in.Err()
}

func reply(err error, ok string) {
	if err != nil {
		fmt.Println("ERR", strings.ReplaceAll(err.Error(), "\n", " "))
		return
	}
	fmt.Println(ok)
}
