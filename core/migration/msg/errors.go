package msg

import (
	"errors"
	"fmt"
)

// Decoding errors. Every error Decode returns wraps ErrMalformed; the more
// specific sentinels below say why.
var (
	// ErrMalformed is the common cause of every decoding failure.
	ErrMalformed = errors.New("msg: malformed migration message")
	// ErrTruncated: the bytes end before the message does.
	ErrTruncated = fmt.Errorf("%w: truncated", ErrMalformed)
	// ErrUnknownType: the first byte is not a known message type.
	ErrUnknownType = errors.New("msg: unknown migration message type")
	// ErrUnknownReason: a MigrationFailed carries an unknown reason code.
	ErrUnknownReason = errors.New("msg: unknown MigrationFailureReason code")
	// ErrBadText: a failure text is not UTF-8.
	ErrBadText = errors.New("msg: failure text is not UTF-8")
	// ErrTooManyEvents: a BufferedEvents count above 1 000 000 or above what
	// the remaining bytes can hold.
	ErrTooManyEvents = errors.New("msg: buffered event count out of range")
	// ErrEventTooLarge: a buffered event payload over 7000 bytes.
	ErrEventTooLarge = errors.New("msg: buffered event payload too large")
)

// Chunk errors, returned by Decode (also wrapping ErrMalformed) and by
// Reassembler.Add.
var (
	// ErrChunk is the common cause of every chunk refusal below.
	ErrChunk = errors.New("msg: bad snapshot chunk")
	// ErrChunkTotal: total_chunks is 0 or above MAX_TOTAL_CHUNKS (700 000).
	ErrChunkTotal = fmt.Errorf("%w: total_chunks out of range", ErrChunk)
	// ErrChunkIndex: chunk_index ≥ total_chunks.
	ErrChunkIndex = fmt.Errorf("%w: chunk_index out of range", ErrChunk)
	// ErrChunkTooLarge: a chunk longer than 7000 bytes.
	ErrChunkTooLarge = fmt.Errorf("%w: chunk too large", ErrChunk)
	// ErrChunkEmpty: a zero-byte chunk (refused by the reassembler only).
	ErrChunkEmpty = fmt.Errorf("%w: empty chunk", ErrChunk)
	// ErrChunkTotalMismatch: total_chunks differs from the one the open
	// reassembly for that (origin, seq_through) started with.
	ErrChunkTotalMismatch = fmt.Errorf("%w: total_chunks mismatch", ErrChunk)
)

var (
	// ErrStale: a chunk's seq_through is older than the newest seen for its
	// origin.
	ErrStale = errors.New("msg: stale seq_through")
	// ErrTooLarge: a chunk would push a pending snapshot past MaxSnapshotBytes.
	ErrTooLarge = errors.New("msg: pending snapshot exceeds 64 MiB")
	// ErrChunk0: chunk 0 is not the start of a CDS1 v2 snapshot of the
	// migrating origin. The engine reports it as a StateFailed reason.
	ErrChunk0 = errors.New("msg: chunk 0 is not a CDS1 v2 snapshot of this origin")
	// ErrUnencodable: a message cannot be encoded into bytes that Decode
	// accepts (MarshalBinary, Validate). Wraps the specific cause.
	ErrUnencodable = errors.New("msg: message cannot be encoded")
	// ErrTextTooLong: a failure text longer than 65535 bytes.
	ErrTextTooLong = errors.New("msg: failure text longer than 65535 bytes")
)
