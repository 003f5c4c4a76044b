// Package msg encodes and decodes the migration subprotocol (0x0500) messages,
// and cuts snapshots into SnapshotReady chunks and joins them again
// (FORMATS §6). It is a leaf: no goroutines, no I/O.
package msg

import (
	"encoding/binary"
	"fmt"
	"strconv"
	"unicode/utf8"

	"github.com/netmesh/libnetmesh/core/causal"
)

// Subprotocol is the mesh subprotocol id that carries migration messages.
const Subprotocol = 0x0500

// Type is the first byte of every migration message.
type Type uint8

// Message types (FORMATS §6).
const (
	TakeSnapshot    Type = 0
	SnapshotReady   Type = 1
	RestoreComplete Type = 2
	ReplayComplete  Type = 3
	CutoverNotify   Type = 4
	CleanupComplete Type = 5
	MigrationFailed Type = 6
	BufferedEvents  Type = 7
	ActivateTarget  Type = 8
	ActivateAck     Type = 9
)

var typeNames = [...]string{
	"TakeSnapshot", "SnapshotReady", "RestoreComplete", "ReplayComplete", "CutoverNotify",
	"CleanupComplete", "MigrationFailed", "BufferedEvents", "ActivateTarget", "ActivateAck",
}

// Known reports whether t is a message type of the 0.24 protocol.
func (t Type) Known() bool { return int(t) < len(typeNames) }

func (t Type) String() string {
	if !t.Known() {
		return "Type(" + strconv.Itoa(int(t)) + ")"
	}
	return typeNames[t]
}

// Limits of the wire format.
const (
	// MaxEvents is the largest BufferedEvents count a decoder accepts.
	MaxEvents = 1_000_000
	// MaxEventPayload is the largest buffered event payload.
	MaxEventPayload = 7000
	// eventMin is the wire size of a buffered event with an empty payload.
	eventMin = causal.LinkSize + 4 + 8
)

// Message is one migration message. Only the fields its Type carries are
// encoded; Decode leaves the others zero. Byte slices returned by Decode are
// copies and never alias the input.
type Message struct {
	Type        Type
	Origin      uint64         // the migrating daemon's origin_hash
	TargetNode  uint64         // TakeSnapshot, CutoverNotify
	SeqThrough  uint64         // SnapshotReady
	ChunkIndex  uint32         // SnapshotReady
	TotalChunks uint32         // SnapshotReady
	Chunk       []byte         // SnapshotReady (≤ ChunkSize)
	Seq         uint64         // RestoreComplete restored_seq, ReplayComplete and ActivateAck replayed_seq
	TargetHead  causal.Link    // ReplayComplete
	Reason      Reason         // MigrationFailed
	Events      []causal.Event // BufferedEvents
	// Batch (BufferedEvents, this implementation's extension) tells one
	// batch from another that carries the same events, so a receiver can
	// drop a re-delivered copy without dropping a second, identical batch.
	// Non-zero, it is encoded as a trailer after the events (BatchTrailerLen
	// bytes), which a 0.24 decoder ignores like any bytes after a complete
	// message; zero, no trailer is written.
	Batch uint64
}

// BatchTrailerLen is the length of a BufferedEvents batch trailer: the
// magic "NMB1" and the batch id (u64 LE).
const BatchTrailerLen = 4 + 8

var batchMagic = [4]byte{'N', 'M', 'B', '1'}

// EncodedLen is the length of m.Encode().
func (m *Message) EncodedLen() int {
	n := 1 + 8
	switch m.Type {
	case TakeSnapshot, CutoverNotify, RestoreComplete, ActivateAck:
		n += 8
	case SnapshotReady:
		n += 8 + 4 + 4 + 4 + len(m.Chunk)
	case ReplayComplete:
		n += 8 + causal.LinkSize
	case MigrationFailed:
		n += 2 + m.Reason.wireLen()
	case BufferedEvents:
		n += 4
		for _, e := range m.Events {
			n += eventMin + len(e.Payload)
		}
		if m.Batch != 0 {
			n += BatchTrailerLen
		}
	}
	return n
}

// Encode returns the wire form of m. It does not validate: a message that
// Validate refuses may encode to bytes Decode refuses (unknown type or code,
// oversized chunk or payload). A failure text longer than 65535 bytes is cut
// to the last whole UTF-8 character that fits, so framing is never broken;
// use MarshalBinary to get an error instead.
func (m *Message) Encode() []byte { return m.AppendTo(make([]byte, 0, m.EncodedLen())) }

// AppendTo appends the wire form of m to dst (see Encode).
func (m *Message) AppendTo(dst []byte) []byte {
	le := binary.LittleEndian
	dst = append(dst, byte(m.Type))
	dst = le.AppendUint64(dst, m.Origin)
	switch m.Type {
	case TakeSnapshot, CutoverNotify:
		dst = le.AppendUint64(dst, m.TargetNode)
	case SnapshotReady:
		dst = le.AppendUint64(dst, m.SeqThrough)
		dst = le.AppendUint32(dst, m.ChunkIndex)
		dst = le.AppendUint32(dst, m.TotalChunks)
		dst = le.AppendUint32(dst, uint32(len(m.Chunk)))
		dst = append(dst, m.Chunk...)
	case RestoreComplete, ActivateAck:
		dst = le.AppendUint64(dst, m.Seq)
	case ReplayComplete:
		dst = le.AppendUint64(dst, m.Seq)
		dst = m.TargetHead.AppendTo(dst)
	case MigrationFailed:
		dst = le.AppendUint16(dst, uint16(m.Reason.Code))
		switch {
		case m.Reason.Code.HasText():
			t := clipText(m.Reason.Text)
			dst = le.AppendUint16(dst, uint16(len(t)))
			dst = append(dst, t...)
		case m.Reason.Code == NotReadyTimeout:
			dst = append(dst, m.Reason.Attempts)
		}
	case BufferedEvents:
		dst = le.AppendUint32(dst, uint32(len(m.Events)))
		for _, e := range m.Events {
			dst = e.Link.AppendTo(dst)
			dst = le.AppendUint32(dst, uint32(len(e.Payload)))
			dst = append(dst, e.Payload...)
			dst = le.AppendUint64(dst, e.ReceivedAt)
		}
		if m.Batch != 0 {
			dst = append(dst, batchMagic[:]...)
			dst = le.AppendUint64(dst, m.Batch)
		}
	}
	return dst
}

// clipText cuts s to at most MaxTextLen bytes without splitting a character.
func clipText(s string) string {
	if len(s) <= MaxTextLen {
		return s
	}
	i := MaxTextLen
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i]
}

// Validate reports whether m encodes to bytes that Decode accepts and that
// decode back to m (up to nil versus empty slices and the fields m.Type does
// not carry). Errors wrap ErrUnencodable and the specific cause.
func (m *Message) Validate() error {
	bad := func(cause error, format string, args ...any) error {
		return fmt.Errorf("%w: %w: "+format, append([]any{ErrUnencodable, cause}, args...)...)
	}
	switch m.Type {
	case SnapshotReady:
		if err := checkChunkHeader(m.ChunkIndex, m.TotalChunks, len(m.Chunk)); err != nil {
			return fmt.Errorf("%w: %w", ErrUnencodable, err)
		}
	case MigrationFailed:
		r := m.Reason
		if !r.Code.Known() {
			return bad(ErrUnknownReason, "code %d", r.Code)
		}
		if r.Code.HasText() {
			if len(r.Text) > MaxTextLen {
				return bad(ErrTextTooLong, "%s text of %d bytes", codeName(r.Code), len(r.Text))
			}
			if !utf8.ValidString(r.Text) {
				return bad(ErrBadText, "%s", codeName(r.Code))
			}
		}
	case BufferedEvents:
		if len(m.Events) > MaxEvents {
			return bad(ErrTooManyEvents, "%d events", len(m.Events))
		}
		for i, e := range m.Events {
			if len(e.Payload) > MaxEventPayload {
				return bad(ErrEventTooLarge, "event %d payload of %d bytes", i, len(e.Payload))
			}
		}
	default:
		if !m.Type.Known() {
			return bad(ErrUnknownType, "type %d", m.Type)
		}
	}
	return nil
}

// codeName is the upstream spelling of a text-carrying reason, for messages.
func codeName(c ReasonCode) string {
	if c == StateFailed {
		return "StateFailed"
	}
	return "IdentityTransportFailed"
}

// MarshalBinary is Encode after Validate: it refuses, instead of encoding, a
// message Decode would not accept back.
func (m *Message) MarshalBinary() ([]byte, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return m.Encode(), nil
}

// checkChunkHeader holds the SnapshotReady decoder's chunk rules.
func checkChunkHeader(index, total uint32, n int) error {
	switch {
	case total == 0:
		return fmt.Errorf("%w: total_chunks is 0", ErrChunkTotal)
	case total > MaxTotalChunks:
		return fmt.Errorf("%w: total_chunks %d exceeds MAX_TOTAL_CHUNKS %d", ErrChunkTotal, total, MaxTotalChunks)
	case index >= total:
		return fmt.Errorf("%w: chunk_index %d with total_chunks %d", ErrChunkIndex, index, total)
	case n > ChunkSize:
		return fmt.Errorf("%w: %d bytes, at most %d", ErrChunkTooLarge, n, ChunkSize)
	}
	return nil
}

// reader consumes little-endian fields; the first short read sets err.
type reader struct {
	b   []byte
	err error
}

func (r *reader) take(n int, what string) []byte {
	if r.err != nil {
		return nil
	}
	if n > len(r.b) {
		r.err = fmt.Errorf("%w: %s needs %d bytes, %d left", ErrTruncated, what, n, len(r.b))
		return nil
	}
	v := r.b[:n:n]
	r.b = r.b[n:]
	return v
}

func (r *reader) u8(what string) uint8 {
	if v := r.take(1, what); v != nil {
		return v[0]
	}
	return 0
}

func (r *reader) u16(what string) uint16 {
	if v := r.take(2, what); v != nil {
		return binary.LittleEndian.Uint16(v)
	}
	return 0
}

func (r *reader) u32(what string) uint32 {
	if v := r.take(4, what); v != nil {
		return binary.LittleEndian.Uint32(v)
	}
	return 0
}

func (r *reader) u64(what string) uint64 {
	if v := r.take(8, what); v != nil {
		return binary.LittleEndian.Uint64(v)
	}
	return 0
}

// bytes copies n bytes; empty fields decode as nil.
func (r *reader) bytes(n int, what string) []byte {
	v := r.take(n, what)
	if len(v) == 0 {
		return nil
	}
	return append([]byte(nil), v...)
}

// Decode parses one migration message. Bytes after a complete message are
// ignored. Every error wraps ErrMalformed, plus ErrTruncated, ErrUnknownType,
// ErrUnknownReason, ErrBadText, ErrTooManyEvents, ErrEventTooLarge or one of
// the ErrChunk… sentinels.
func Decode(b []byte) (*Message, error) {
	if len(b) == 0 {
		return nil, fmt.Errorf("%w: empty message", ErrTruncated)
	}
	m := &Message{Type: Type(b[0])}
	if !m.Type.Known() {
		return nil, fmt.Errorf("%w: %w %d", ErrMalformed, ErrUnknownType, b[0])
	}
	r := &reader{b: b[1:]}
	m.Origin = r.u64("origin")
	switch m.Type {
	case TakeSnapshot, CutoverNotify:
		m.TargetNode = r.u64("target_node")
	case SnapshotReady:
		m.SeqThrough = r.u64("seq_through")
		m.ChunkIndex = r.u32("chunk_index")
		m.TotalChunks = r.u32("total_chunks")
		n := r.u32("chunk len")
		if r.err != nil {
			break
		}
		if err := checkChunkHeader(m.ChunkIndex, m.TotalChunks, int(n)); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
		}
		m.Chunk = r.bytes(int(n), "chunk")
	case RestoreComplete, ActivateAck:
		m.Seq = r.u64("seq")
	case ReplayComplete:
		m.Seq = r.u64("replayed_seq")
		if v := r.take(causal.LinkSize, "target_head"); v != nil {
			m.TargetHead, _ = causal.ParseLink(v)
		}
	case MigrationFailed:
		if err := decodeReason(r, &m.Reason); err != nil {
			return nil, err
		}
	case BufferedEvents:
		if err := decodeEvents(r, m); err != nil {
			return nil, err
		}
	}
	if r.err != nil {
		return nil, r.err
	}
	return m, nil
}

func decodeReason(r *reader, out *Reason) error {
	code := ReasonCode(r.u16("reason code"))
	if r.err != nil {
		return nil
	}
	if !code.Known() {
		return fmt.Errorf("%w: %w %d", ErrMalformed, ErrUnknownReason, code)
	}
	out.Code = code
	switch {
	case code.HasText():
		t := r.take(int(r.u16("reason text len")), "reason text")
		if r.err != nil {
			return nil
		}
		if !utf8.Valid(t) {
			return fmt.Errorf("%w: %w (%s)", ErrMalformed, ErrBadText, codeName(code))
		}
		out.Text = string(t)
	case code == NotReadyTimeout:
		out.Attempts = r.u8("attempts")
	}
	return nil
}

func decodeEvents(r *reader, m *Message) error {
	count := r.u32("event count")
	if r.err != nil {
		return nil
	}
	if count > MaxEvents || uint64(count) > uint64(len(r.b)/eventMin) {
		return fmt.Errorf("%w: %w: %d events in %d bytes", ErrMalformed, ErrTooManyEvents, count, len(r.b))
	}
	if count > 0 {
		m.Events = make([]causal.Event, 0, count)
	}
	for i := range count {
		v := r.take(causal.LinkSize, "event link")
		n := r.u32("event payload len")
		if r.err != nil {
			return nil
		}
		if n > MaxEventPayload {
			return fmt.Errorf("%w: %w: event %d payload of %d bytes", ErrMalformed, ErrEventTooLarge, i, n)
		}
		var e causal.Event
		e.Link, _ = causal.ParseLink(v)
		e.Payload = r.bytes(int(n), "event payload")
		e.ReceivedAt = r.u64("event received_at")
		if r.err != nil {
			return nil
		}
		m.Events = append(m.Events, e)
	}
	// An optional batch trailer; any other trailing bytes are ignored.
	if len(r.b) >= BatchTrailerLen && [4]byte(r.b[:4]) == batchMagic {
		m.Batch = binary.LittleEndian.Uint64(r.b[4:BatchTrailerLen])
		r.b = r.b[BatchTrailerLen:]
	}
	return nil
}
