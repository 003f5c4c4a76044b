package causal

// Chain builds a daemon's causal chain. It keeps the head link and the head's
// payload (needed for the next parent hash). Not safe for concurrent use: the
// daemon host serializes access.
type Chain struct {
	head        Link
	headPayload []byte
}

// NewChain starts a chain at genesis for origin.
func NewChain(origin uint64) *Chain { return &Chain{head: Genesis(origin)} }

// ResumeChain continues a chain from head, with headPayload standing in as
// the head's payload (after a restore this is the snapshot's state bytes).
// headPayload is copied.
func ResumeChain(head Link, headPayload []byte) *Chain {
	return &Chain{head: head, headPayload: append([]byte(nil), headPayload...)}
}

// Head returns the current head link.
func (c *Chain) Head() Link { return c.head }

// Append adds payload after the head with the given horizon encoding and
// returns the new link. payload is retained (not copied): callers pass bytes
// they no longer mutate. Sequence overflow returns ErrSequenceOverflow.
func (c *Chain) Append(payload []byte, horizon uint64) (Link, error) {
	if c.head.Sequence == ^uint64(0) {
		return Link{}, ErrSequenceOverflow
	}
	next := Link{
		Origin:   c.head.Origin,
		Horizon:  horizon,
		Sequence: c.head.Sequence + 1,
		Parent:   ParentHash(c.head, c.headPayload),
	}
	c.head = next
	c.headPayload = payload
	return next, nil
}
