package wire

import (
	"encoding/binary"
	"fmt"
	"unicode/utf8"
)

// MembershipKind is the first byte of a membership (0x0A00) message.
type MembershipKind uint8

const (
	Subscribe   MembershipKind = 0
	Unsubscribe MembershipKind = 1
	Ack         MembershipKind = 2
)

// AckReason explains an Ack; ReasonOK accompanies an accepted subscription.
type AckReason uint8

const (
	ReasonOK              AckReason = 0
	ReasonUnauthorized    AckReason = 1
	ReasonUnknownChannel  AckReason = 2
	ReasonRateLimited     AckReason = 3
	ReasonTooManyChannels AckReason = 4
)

// MembershipAckSize is the exact size of an Ack.
const MembershipAckSize = 11

// Limits of the membership fields.
const (
	MaxQueueGroup = 255
	MaxTokenLen   = 0xFFFF
)

// MembershipMsg is one membership message. Channel is used by Subscribe and
// Unsubscribe; Token (nil or empty = none) and QueueGroup ("" = broadcast) by
// Subscribe only; Accepted and Reason by Ack only.
type MembershipMsg struct {
	Kind       MembershipKind
	Nonce      uint64
	Channel    string
	Token      []byte
	QueueGroup string
	Accepted   bool
	Reason     AckReason
}

// Validate reports whether m can be encoded: a known kind and reason, a valid
// channel name, a token of at most 65535 bytes and a UTF-8 queue group of at
// most 255 bytes.
func (m *MembershipMsg) Validate() error {
	switch m.Kind {
	case Subscribe:
		if len(m.Token) > MaxTokenLen {
			return fmt.Errorf("%w: token %d bytes", ErrInvalid, len(m.Token))
		}
		if len(m.QueueGroup) > MaxQueueGroup || !utf8.ValidString(m.QueueGroup) {
			return fmt.Errorf("%w: queue group", ErrInvalid)
		}
		fallthrough
	case Unsubscribe:
		if !ValidChannelName(m.Channel) {
			return fmt.Errorf("%w: %q", ErrBadChannelName, m.Channel)
		}
	case Ack:
		if m.Reason > ReasonTooManyChannels {
			return fmt.Errorf("%w: ack reason %d", ErrInvalid, m.Reason)
		}
	default:
		return fmt.Errorf("%w: membership kind %d", ErrInvalid, m.Kind)
	}
	return nil
}

// Encode returns the wire form, or nil when Validate fails. Subscribe always
// carries token_len (0 without a token) and a queue-group field only when
// QueueGroup is set.
func (m *MembershipMsg) Encode() []byte {
	if m.Validate() != nil {
		return nil
	}
	le := binary.LittleEndian
	switch m.Kind {
	case Ack:
		b := make([]byte, 0, MembershipAckSize)
		b = append(b, byte(Ack))
		b = le.AppendUint64(b, m.Nonce)
		acc := byte(0)
		if m.Accepted {
			acc = 1
		}
		return append(b, acc, byte(m.Reason))
	case Unsubscribe:
		b := make([]byte, 0, 10+len(m.Channel))
		b = append(b, byte(Unsubscribe))
		b = le.AppendUint64(b, m.Nonce)
		b = append(b, byte(len(m.Channel)))
		return append(b, m.Channel...)
	default: // Subscribe
		n := 12 + len(m.Channel) + len(m.Token)
		if m.QueueGroup != "" {
			n += 1 + len(m.QueueGroup)
		}
		b := make([]byte, 0, n)
		b = append(b, byte(Subscribe))
		b = le.AppendUint64(b, m.Nonce)
		b = append(b, byte(len(m.Channel)))
		b = append(b, m.Channel...)
		b = le.AppendUint16(b, uint16(len(m.Token)))
		b = append(b, m.Token...)
		if m.QueueGroup != "" {
			b = append(b, byte(len(m.QueueGroup)))
			b = append(b, m.QueueGroup...)
		}
		return b
	}
}

// DecodeMembership decodes one membership message (FORMATS §8). Error classes
// follow 0.24: ErrTruncated for short input, an empty name, a lone byte after
// the name, a non-UTF-8 queue group and trailing bytes; ErrOverflow for a
// length past the end; ErrUnknownType for an unknown tag, accepted byte or
// reason; ErrBadChannelName for an invalid name. Token and Channel do not
// alias b.
func DecodeMembership(b []byte) (*MembershipMsg, error) {
	if len(b) == 0 {
		return nil, fmt.Errorf("%w: empty membership message", ErrTruncated)
	}
	kind := MembershipKind(b[0])
	if kind > Ack {
		return nil, fmt.Errorf("%w: membership tag 0x%02x", ErrUnknownType, b[0])
	}
	if len(b) < 9 {
		return nil, fmt.Errorf("%w: membership nonce", ErrTruncated)
	}
	m := &MembershipMsg{Kind: kind, Nonce: binary.LittleEndian.Uint64(b[1:9])}
	rest := b[9:]
	if kind == Ack {
		if len(rest) < 2 {
			return nil, fmt.Errorf("%w: ack", ErrTruncated)
		}
		if len(rest) > 2 {
			return nil, fmt.Errorf("%w: %d trailing bytes after ack", ErrTruncated, len(rest)-2)
		}
		switch rest[0] {
		case 0:
		case 1:
			m.Accepted = true
		default:
			return nil, fmt.Errorf("%w: ack accepted byte 0x%02x", ErrUnknownType, rest[0])
		}
		if rest[1] > byte(ReasonTooManyChannels) {
			return nil, fmt.Errorf("%w: ack reason 0x%02x", ErrUnknownType, rest[1])
		}
		m.Reason = AckReason(rest[1])
		return m, nil
	}
	name, rest, err := readName(rest)
	if err != nil {
		return nil, err
	}
	m.Channel = name
	if kind == Unsubscribe {
		if len(rest) != 0 {
			return nil, fmt.Errorf("%w: %d trailing bytes after unsubscribe", ErrTruncated, len(rest))
		}
		return m, nil
	}
	// Subscribe: optional token_len+token, then optional qg_len+group.
	if len(rest) == 0 {
		return m, nil
	}
	if len(rest) < 2 {
		return nil, fmt.Errorf("%w: token length", ErrTruncated)
	}
	tl := int(binary.LittleEndian.Uint16(rest))
	rest = rest[2:]
	if tl > len(rest) {
		return nil, fmt.Errorf("%w: token length %d, %d bytes left", ErrOverflow, tl, len(rest))
	}
	if tl > 0 {
		m.Token = append([]byte(nil), rest[:tl]...)
	}
	rest = rest[tl:]
	if len(rest) == 0 {
		return m, nil
	}
	ql := int(rest[0])
	rest = rest[1:]
	if ql > len(rest) {
		return nil, fmt.Errorf("%w: queue group length %d, %d bytes left", ErrOverflow, ql, len(rest))
	}
	qg := rest[:ql]
	rest = rest[ql:]
	if !utf8.Valid(qg) {
		return nil, fmt.Errorf("%w: queue group is not utf-8", ErrTruncated)
	}
	if len(rest) != 0 {
		return nil, fmt.Errorf("%w: %d trailing bytes after subscribe", ErrTruncated, len(rest))
	}
	m.QueueGroup = string(qg)
	return m, nil
}

// readName reads [u8 len][name] and checks the channel-name rules.
func readName(b []byte) (string, []byte, error) {
	if len(b) < 1 {
		return "", nil, fmt.Errorf("%w: channel name length", ErrTruncated)
	}
	n := int(b[0])
	b = b[1:]
	if n == 0 {
		return "", nil, fmt.Errorf("%w: empty channel name", ErrTruncated)
	}
	if n > len(b) {
		return "", nil, fmt.Errorf("%w: channel name length %d, %d bytes left", ErrOverflow, n, len(b))
	}
	name := string(b[:n])
	if !ValidChannelName(name) {
		return "", nil, fmt.Errorf("%w: %q", ErrBadChannelName, name)
	}
	return name, b[n:], nil
}
