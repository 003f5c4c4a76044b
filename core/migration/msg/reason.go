package msg

import (
	"fmt"
	"strconv"
)

// ReasonCode is the u16 wire code of a migration failure reason.
type ReasonCode uint16

// Failure reason codes (FORMATS §6). Only NotReady is retriable.
const (
	NotReady                ReasonCode = 0
	FactoryNotFound         ReasonCode = 1
	ComputeNotSupported     ReasonCode = 2
	StateFailed             ReasonCode = 3 // u16 len + UTF-8 text
	AlreadyMigrating        ReasonCode = 4
	IdentityTransportFailed ReasonCode = 5 // u16 len + UTF-8 text
	NotReadyTimeout         ReasonCode = 6 // u8 attempts
)

// MaxTextLen is the longest failure text the u16 length prefix can carry.
const MaxTextLen = 0xffff

var reasonKinds = [...]string{
	NotReady:                "not-ready",
	FactoryNotFound:         "factory-not-found",
	ComputeNotSupported:     "compute-not-supported",
	StateFailed:             "state-failed",
	AlreadyMigrating:        "already-migrating",
	IdentityTransportFailed: "identity-transport-failed",
	NotReadyTimeout:         "not-ready-timeout",
}

// Known reports whether c is a code this package can encode and decode.
func (c ReasonCode) Known() bool { return int(c) < len(reasonKinds) }

// HasText reports whether reasons with this code carry a text on the wire.
func (c ReasonCode) HasText() bool { return c == StateFailed || c == IdentityTransportFailed }

// Reason is why a migration failed. Text is carried only by StateFailed and
// IdentityTransportFailed, Attempts only by NotReadyTimeout; the encoder
// ignores (and the decoder leaves zero) the field a code does not carry.
type Reason struct {
	Code     ReasonCode
	Text     string
	Attempts uint8
}

// Kind is the stable symbolic name of the code ("not-ready", …), or
// "unknown" for a code outside the table.
func (r Reason) Kind() string {
	if !r.Code.Known() {
		return "unknown"
	}
	return reasonKinds[r.Code]
}

// Retriable reports whether the source may try the migration again later.
func (r Reason) Retriable() bool { return r.Code == NotReady }

func (r Reason) String() string {
	switch {
	case !r.Code.Known():
		return "unknown(" + strconv.Itoa(int(r.Code)) + ")"
	case r.Code.HasText():
		return r.Kind() + ": " + r.Text
	case r.Code == NotReadyTimeout:
		return fmt.Sprintf("%s after %d attempts", r.Kind(), r.Attempts)
	}
	return r.Kind()
}

// wireLen is the size of the reason payload after the u16 code.
func (r Reason) wireLen() int {
	switch {
	case r.Code.HasText():
		return 2 + min(len(r.Text), MaxTextLen)
	case r.Code == NotReadyTimeout:
		return 1
	}
	return 0
}
