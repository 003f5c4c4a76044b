package wire

import "github.com/zeebo/xxh3"

// MaxChannelName is the longest channel name in bytes.
const MaxChannelName = 255

// ChannelHint is the header's channel hash hint: the low 16 bits of
// XXH3-64(name).
func ChannelHint(name string) uint16 {
	return uint16(xxh3.HashString(name))
}

// ChannelHash is XXH3-64(name), the value permission tokens carry.
func ChannelHash(name string) uint64 {
	return xxh3.HashString(name)
}

// ValidChannelName applies FORMATS §4: 1–255 bytes of a-z 0-9 - _ . /, no
// leading or trailing '/', no "//", and no "." or ".." segment.
func ValidChannelName(name string) bool {
	if len(name) == 0 || len(name) > MaxChannelName {
		return false
	}
	if name[0] == '/' || name[len(name)-1] == '/' {
		return false
	}
	segStart := 0
	for i := 0; i <= len(name); i++ {
		if i < len(name) {
			c := name[i]
			switch {
			case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '-', c == '_', c == '.':
				continue
			case c == '/':
			default:
				return false
			}
		}
		seg := name[segStart:i]
		if seg == "" || seg == "." || seg == ".." {
			return false
		}
		segStart = i + 1
	}
	return true
}
