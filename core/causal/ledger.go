package causal

import (
	"encoding/binary"
	"fmt"
	"math"
	"strings"
)

// MaxChannelNameLen is the longest valid channel name, in bytes.
const MaxChannelNameLen = 255

// ledgerEntryMin is the size FORMATS §4 charges each entry when checking the
// count: publisher u64, name_len u16, token flag u8.
const ledgerEntryMin = 8 + 2 + 1

// Binding is one subscription-ledger entry: a daemon subscribed to channel on
// publisher, optionally with a permission token (nil = none).
type Binding struct {
	Publisher uint64
	Channel   string
	Token     []byte
}

// Validate checks what the ledger encoding needs: a valid channel name
// (ErrInvalidChannelName) and a token under 64 KiB (ErrTooLarge).
func (b Binding) Validate() error {
	if err := ValidateChannelName(b.Channel); err != nil {
		return err
	}
	if len(b.Token) > math.MaxUint16 {
		return fmt.Errorf("%w: token of %d bytes", ErrTooLarge, len(b.Token))
	}
	return nil
}

// AppendLedger appends the ledger encoding of bs to dst, after validating
// every binding. An empty ledger appends nothing (not a zero count).
func AppendLedger(dst []byte, bs []Binding) ([]byte, error) {
	if len(bs) == 0 {
		return dst, nil
	}
	if uint64(len(bs)) > math.MaxUint32 {
		return dst, fmt.Errorf("%w: %d ledger entries", ErrTooLarge, len(bs))
	}
	for _, b := range bs {
		if err := b.Validate(); err != nil {
			return dst, err
		}
	}
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(bs)))
	for _, b := range bs {
		dst = binary.LittleEndian.AppendUint64(dst, b.Publisher)
		dst = binary.LittleEndian.AppendUint16(dst, uint16(len(b.Channel)))
		dst = append(dst, b.Channel...)
		if b.Token == nil {
			dst = append(dst, 0)
			continue
		}
		dst = append(dst, 1)
		dst = binary.LittleEndian.AppendUint16(dst, uint16(len(b.Token)))
		dst = append(dst, b.Token...)
	}
	return dst, nil
}

// EncodeLedger encodes bindings; an empty ledger is zero bytes. A non-nil
// Token, even empty, is written with flag 1. The ledger only ever holds
// bindings that passed Binding.Validate, so an invalid one is a programming
// error and panics; use AppendLedger to get an error instead.
func EncodeLedger(bs []Binding) []byte {
	b, err := AppendLedger(nil, bs)
	if err != nil {
		panic(err)
	}
	return b
}

// DecodeLedger decodes ledger bytes (empty input or a zero count = empty
// ledger, returned as nil). It refuses, wrapping ErrMalformed: truncation, a
// count the remaining bytes cannot hold, invalid channel names (also wrapping
// ErrInvalidChannelName), token flags other than 0/1 and trailing bytes.
// Tokens of any length are accepted and copied; b is not retained.
func DecodeLedger(b []byte) ([]Binding, error) {
	if len(b) == 0 {
		return nil, nil
	}
	if len(b) < 4 {
		return nil, fmt.Errorf("%w: ledger count truncated", ErrMalformed)
	}
	count := binary.LittleEndian.Uint32(b)
	b = b[4:]
	if uint64(count) > uint64(len(b)/ledgerEntryMin) {
		return nil, fmt.Errorf("%w: ledger count %d exceeds %d remaining bytes", ErrMalformed, count, len(b))
	}
	var out []Binding
	if count > 0 {
		out = make([]Binding, 0, count) // bounded by len(b)/11 above
	}
	for i := range count {
		if len(b) < 10 {
			return nil, fmt.Errorf("%w: ledger entry %d truncated", ErrMalformed, i)
		}
		e := Binding{Publisher: binary.LittleEndian.Uint64(b)}
		n := int(binary.LittleEndian.Uint16(b[8:]))
		b = b[10:]
		if len(b) < n+1 {
			return nil, fmt.Errorf("%w: ledger entry %d truncated", ErrMalformed, i)
		}
		e.Channel = string(b[:n])
		if err := ValidateChannelName(e.Channel); err != nil {
			return nil, fmt.Errorf("%w: ledger entry %d: %w", ErrMalformed, i, err)
		}
		flag := b[n]
		b = b[n+1:]
		switch flag {
		case 0:
		case 1:
			if len(b) < 2 {
				return nil, fmt.Errorf("%w: ledger entry %d token truncated", ErrMalformed, i)
			}
			t := int(binary.LittleEndian.Uint16(b))
			b = b[2:]
			if len(b) < t {
				return nil, fmt.Errorf("%w: ledger entry %d token truncated", ErrMalformed, i)
			}
			e.Token = append([]byte{}, b[:t]...) // non-nil even when empty: flag 1 stays flag 1
			b = b[t:]
		default:
			return nil, fmt.Errorf("%w: ledger entry %d token flag %d", ErrMalformed, i, flag)
		}
		out = append(out, e)
	}
	if len(b) != 0 {
		return nil, fmt.Errorf("%w: %d trailing bytes after ledger", ErrMalformed, len(b))
	}
	return out, nil
}

// ValidateChannelName checks the channel-name rules of FORMATS §4: 1–255
// bytes of a-z 0-9 '-' '_' '.' '/', no leading or trailing '/', no "//", and
// no "." or ".." segment. Such a name is always valid UTF-8 (pure ASCII).
func ValidateChannelName(name string) error {
	if len(name) == 0 || len(name) > MaxChannelNameLen {
		return fmt.Errorf("%w: length %d not in 1..%d", ErrInvalidChannelName, len(name), MaxChannelNameLen)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.' || c == '/') {
			return fmt.Errorf("%w: byte %#02x at %d", ErrInvalidChannelName, c, i)
		}
	}
	// An empty segment is a leading '/', a trailing '/' or "//".
	for seg := range strings.SplitSeq(name, "/") {
		switch seg {
		case "":
			return fmt.Errorf("%w: %q has an empty segment", ErrInvalidChannelName, name)
		case ".", "..":
			return fmt.Errorf("%w: %q has a %q segment", ErrInvalidChannelName, name, seg)
		}
	}
	return nil
}
