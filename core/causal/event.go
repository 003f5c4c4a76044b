package causal

// Event is a causal event: its link, payload and arrival time (unix ns).
type Event struct {
	Link       Link
	Payload    []byte
	ReceivedAt uint64
}
