package causal

import (
	"encoding/binary"
	"math/bits"
)

// hashLinked returns ParentHash(l, p) — XXH3-64 (seed 0) of l's 32 wire bytes
// followed by p — for len(p) <= maxHashLinked, without first copying p next
// to the link: XXH3 reads inputs of 17..128 bytes as 16-byte pairs from both
// ends, so each 8-byte word is taken from the link (through buf, which gets
// the link and p's first bytes) or straight from p. chain_test.go checks it
// against xxh3.Hash of the concatenation for every length and many inputs.
func hashLinked(buf *[LinkSize + 8]byte, l Link, p []byte) uint64 {
	putLink(buf[:], l)
	if len(p) >= 8 {
		binary.LittleEndian.PutUint64(buf[LinkSize:], binary.LittleEndian.Uint64(p))
	} else {
		copy(buf[LinkSize:], p)
	}
	n := LinkSize + len(p) // 32..128
	acc := uint64(n) * xxPrime64_1
	if n > 32 {
		if n > 64 {
			if n > 96 {
				acc += mix16(buf, p, 48, xxKey096, xxKey104)
				acc += mix16(buf, p, n-64, xxKey112, xxKey120)
			}
			acc += mix16(buf, p, 32, xxKey064, xxKey072)
			acc += mix16(buf, p, n-48, xxKey080, xxKey088)
		}
		acc += mix16(buf, p, 16, xxKey032, xxKey040)
		acc += mix16(buf, p, n-32, xxKey048, xxKey056)
	}
	acc += mix16(buf, p, 0, xxKey000, xxKey008)
	acc += mix16(buf, p, n-16, xxKey016, xxKey024)
	acc ^= acc >> 37
	acc *= 0x165667919e3779f9
	return acc ^ acc>>32
}

// maxHashLinked is the longest payload hashLinked takes (link + payload <=
// 128 bytes: the XXH3 range it implements).
const maxHashLinked = 128 - LinkSize

// mix16 is XXH3's 16-byte mix of the input words at o and o+8.
func mix16(buf *[LinkSize + 8]byte, p []byte, o int, k0, k1 uint64) uint64 {
	hi, lo := bits.Mul64(word(buf, p, o)^k0, word(buf, p, o+8)^k1)
	return hi ^ lo
}

// word is the 8 input bytes at o: from buf below the payload, else from p.
func word(buf *[LinkSize + 8]byte, p []byte, o int) uint64 {
	if o >= LinkSize {
		return binary.LittleEndian.Uint64(p[o-LinkSize:])
	}
	return binary.LittleEndian.Uint64(buf[o:])
}

// XXH3's PRIME64_1 and its default secret's first 128 bytes as
// little-endian words (xxKeyNNN is the word at byte NNN), from the XXH3
// specification.
const xxPrime64_1 = 0x9e3779b185ebca87

const (
	xxKey000 = 0xbe4ba423396cfeb8
	xxKey008 = 0x1cad21f72c81017c
	xxKey016 = 0xdb979083e96dd4de
	xxKey024 = 0x1f67b3b7a4a44072
	xxKey032 = 0x78e5c0cc4ee679cb
	xxKey040 = 0x2172ffcc7dd05a82
	xxKey048 = 0x8e2443f7744608b8
	xxKey056 = 0x4c263a81e69035e0
	xxKey064 = 0xcb00c391bb52283c
	xxKey072 = 0xa32e531b8b65d088
	xxKey080 = 0x4ef90da297486471
	xxKey088 = 0xd8acdea946ef1938
	xxKey096 = 0x3f349ce33f76faa8
	xxKey104 = 0x1d4f0bc7c7bbdcf9
	xxKey112 = 0x3159b4cd4be0518a
	xxKey120 = 0x647378d9c97e9fc8
)
