package mesh

import (
	"context"
	"crypto/rand"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flynn/noise"
	"golang.org/x/crypto/chacha20poly1305"
)

func benchCfg() Config {
	return Config{PSK: testPSK, HeartbeatInterval: time.Second, SessionTimeout: time.Minute, RetransmitInterval: 100 * time.Millisecond}
}

// BenchmarkHandshake is a full Connect over loopback UDP: Noise msg1/msg2 plus
// the identity exchange (Hello/HelloAck), i.e. two round trips.
func BenchmarkHandshake(b *testing.B) {
	x := newNode(b, benchCfg())
	y := newNode(b, benchCfg())
	y.Accept(x.NodeID())
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := x.Connect(ctx, y.Addr(), y.StaticPublicKey(), y.NodeID()); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkHandshakeFloor is the same Noise handshake in-process, no sockets.
func BenchmarkHandshakeFloor(b *testing.B) {
	static, _ := noise.DH25519.GenerateKeypair(rand.Reader)
	prol := prologue(1, 2)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		ic := noise.Config{CipherSuite: cipherSuite, Pattern: noise.HandshakeNK, Initiator: true, Prologue: prol,
			PresharedKey: testPSK[:], PeerStatic: static.Public}
		rc := noise.Config{CipherSuite: cipherSuite, Pattern: noise.HandshakeNK, Prologue: prol,
			PresharedKey: testPSK[:], StaticKeypair: static}
		hi, _ := noise.NewHandshakeState(ic)
		hr, _ := noise.NewHandshakeState(rc)
		m1, _, _, _ := hi.WriteMessage(nil, []byte{1, 2, 3, 4, 5, 6, 7, 8})
		if _, _, _, err := hr.ReadMessage(nil, m1); err != nil {
			b.Fatal(err)
		}
		m2, _, _, _ := hr.WriteMessage(nil, nil)
		if _, _, _, err := hi.ReadMessage(nil, m2); err != nil {
			b.Fatal(err)
		}
		SessionKeys(hi.ChannelBinding())
	}
}

// inFlight bounds the messages sent but not yet handled in BenchmarkThroughput1K:
// far below the receive socket buffer (4 MiB) and the dispatch queue (8192),
// so nothing is dropped, yet deep enough that batches stay full.
const inFlight = 1024

// BenchmarkThroughput1K sends 1 KiB messages between two nodes over loopback
// UDP and completes when the receiver's handler has counted every one, keeping
// at most inFlight outstanding so the socket buffers never overflow.
func BenchmarkThroughput1K(b *testing.B) {
	x := newNode(b, benchCfg())
	y := newNode(b, benchCfg())
	link(b, x, y)
	var got atomic.Int64
	done := make(chan struct{}, 1)
	target := int64(b.N)
	y.SetSubprotocolHandler(0x1234, func(uint64, []byte) {
		if got.Add(1) == target {
			done <- struct{}{}
		}
	})
	msg := make([]byte, 1024)
	ctx := context.Background()
	b.SetBytes(1024)
	b.ReportAllocs()
	b.ResetTimer()
	for i := int64(0); i < target; i++ {
		for i-got.Load() >= inFlight {
			time.Sleep(20 * time.Microsecond)
		}
		if err := x.SendSubprotocol(ctx, y.NodeID(), 0x1234, msg); err != nil {
			b.Fatal(err)
		}
	}
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		b.Fatalf("received %d of %d (loss on loopback)", got.Load(), target)
	}
}

// BenchmarkThroughput1KFloor is raw ChaCha20-Poly1305 seal+open of 1 KiB.
func BenchmarkThroughput1KFloor(b *testing.B) {
	var key [32]byte
	aead, _ := chacha20poly1305.New(key[:])
	msg := make([]byte, 1024)
	nonce := make([]byte, 12)
	ad := make([]byte, 56)
	sealed := make([]byte, 0, 1024+16)
	opened := make([]byte, 0, 1024)
	b.SetBytes(1024)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		nonce[4] = byte(i)
		sealed = aead.Seal(sealed[:0], nonce, msg, ad)
		var err error
		if opened, err = aead.Open(opened[:0], nonce, sealed, ad); err != nil {
			b.Fatal(err)
		}
	}
}
