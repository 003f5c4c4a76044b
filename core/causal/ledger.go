package causal

// Binding is one subscription-ledger entry: a daemon subscribed to channel on
// publisher, optionally with a permission token (nil = none).
type Binding struct {
	Publisher uint64
	Channel   string
	Token     []byte
}

// EncodeLedger encodes bindings; an empty ledger is zero bytes. TODO(causal helper).
func EncodeLedger(bs []Binding) []byte { panic("causal: EncodeLedger not implemented yet") }

// DecodeLedger decodes ledger bytes (empty input = empty ledger). TODO(causal helper).
func DecodeLedger(b []byte) ([]Binding, error) { panic("causal: DecodeLedger not implemented yet") }

// ValidateChannelName checks the channel-name rules of FORMATS §4. TODO(causal helper).
func ValidateChannelName(name string) error { panic("causal: ValidateChannelName not implemented yet") }
