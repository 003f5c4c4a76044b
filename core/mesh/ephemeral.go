package mesh

import (
	"crypto/rand"
	"io"

	"github.com/flynn/noise"
)

// Ephemeral keys are generated ahead of time by a node goroutine, so that the
// X25519 base-point multiplication of each handshake message that carries an
// "e" token runs off the handshake's critical path (on an otherwise idle core).
//
// flynn/noise always draws its ephemeral key from the suite's GenerateKeypair
// with Config.Random as the source. presetDH wraps DH25519 and recognises a
// *presetKey source: it hands out that key (once) instead of generating one.
// Every other source, and a preset key already used, falls back to DH25519.
// The suite's name and bytes on the wire are those of plain DH25519.

// ephemeralPoolSize is how many keys a node keeps ready (one per concurrent
// handshake is enough; two cover a Connect racing an incoming msg1).
const ephemeralPoolSize = 2

type presetDH struct{ noise.DHFunc }

func (d presetDH) GenerateKeypair(rng io.Reader) (noise.DHKey, error) {
	if p, ok := rng.(*presetKey); ok && p.key.Private != nil {
		k := p.key
		p.key = noise.DHKey{}
		return k, nil
	}
	return d.DHFunc.GenerateKeypair(rng)
}

// presetKey is an io.Reader for noise.Config.Random that carries a
// pre-generated ephemeral key. Reads are served by crypto/rand.
type presetKey struct{ key noise.DHKey }

func (*presetKey) Read(b []byte) (int, error) { return rand.Read(b) }

// ephemeral returns a randomness source carrying a fresh ephemeral key: one
// from the pool when ready, otherwise none (the suite then generates inline).
// Each pooled key is handed out exactly once.
func (n *Node) ephemeral() io.Reader {
	select {
	case k := <-n.ephPool:
		select {
		case n.ephWake <- struct{}{}:
		default:
		}
		return &presetKey{key: k}
	default:
		return rand.Reader
	}
}

// keygenLoop keeps ephPool full until the node closes.
func (n *Node) keygenLoop() {
	defer n.wg.Done()
	for {
		for len(n.ephPool) < cap(n.ephPool) {
			k, err := noise.DH25519.GenerateKeypair(rand.Reader)
			if err != nil {
				n.logf(LogError, "mesh: ephemeral keygen", map[string]any{"err": err.Error()})
				break
			}
			select {
			case n.ephPool <- k:
			case <-n.ctx.Done():
				return
			}
		}
		select {
		case <-n.ephWake:
		case <-n.ctx.Done():
			return
		}
	}
}
