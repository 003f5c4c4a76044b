// Command meshpeer is a mesh node in its own OS process, driven by the
// two-process test. It binds loopback UDP, prints
//
//	READY <addr> <node id hex> <static public key hex>
//
// admits the initiator given by -accept, echoes every 0x0500 and 0x1234
// payload back to its sender, publishes channel -channel, and reads commands
// from stdin: "publish <text>" publishes and prints "PUBLISHED <attempted>
// <delivered>"; end of input closes the node and exits.
package main

import (
	"bufio"
	"context"
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/netmesh/libnetmesh/core/mesh"
)

func main() {
	pskHex := flag.String("psk", "", "pre-shared key, 64 hex digits")
	accept := flag.String("accept", "", "node id (hex) to admit")
	channel := flag.String("channel", "demo", "channel to publish")
	flag.Parse()
	if err := run(*pskHex, *accept, *channel); err != nil {
		fmt.Fprintln(os.Stderr, "meshpeer:", err)
		os.Exit(1)
	}
}

func run(pskHex, accept, channel string) error {
	var cfg mesh.Config
	psk, err := hex.DecodeString(pskHex)
	if err != nil || len(psk) != 32 {
		return fmt.Errorf("bad -psk")
	}
	copy(cfg.PSK[:], psk)
	cfg.Bind = "127.0.0.1:0"
	peer, err := strconv.ParseUint(accept, 16, 64)
	if err != nil {
		return fmt.Errorf("bad -accept: %w", err)
	}
	n, err := mesh.NewNode(cfg)
	if err != nil {
		return err
	}
	defer n.Close()
	n.Accept(peer)
	if err := n.RegisterChannel(channel, mesh.ChannelConfig{}); err != nil {
		return err
	}
	echo := func(id uint16) func(uint64, []byte) {
		return func(from uint64, p []byte) {
			// Hand off: handlers must not block the dispatch goroutine.
			go func() { _ = n.SendSubprotocol(context.Background(), from, id, p) }()
		}
	}
	n.SetSubprotocolHandler(0x0500, echo(0x0500))
	n.SetSubprotocolHandler(0x1234, echo(0x1234))
	pub := n.StaticPublicKey()
	fmt.Printf("READY %s %016x %s\n", n.Addr(), n.NodeID(), hex.EncodeToString(pub[:]))
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		if text, ok := strings.CutPrefix(sc.Text(), "publish "); ok {
			rep := n.Publish(context.Background(), channel, []byte(text))
			fmt.Printf("PUBLISHED %d %d\n", rep.Attempted, rep.Delivered)
		}
	}
	return nil
}
