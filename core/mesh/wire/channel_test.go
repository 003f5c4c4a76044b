package wire

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/zeebo/xxh3"
)

func TestValidChannelName(t *testing.T) {
	for _, ok := range []string{"a", "sensors/lidar", "lab/x", "a-b_c.d/e", "x..y", ".hidden/a", "a/...", strings.Repeat("z", 255), "0/9"} {
		assert.True(t, ValidChannelName(ok), ok)
	}
	for _, bad := range []string{"", "/a", "a/", "a//b", ".", "..", "a/./b", "a/../b", "a/..", "./a", "A", "a b", "a\x00", "é", "a*", strings.Repeat("z", 256), "/"} {
		assert.False(t, ValidChannelName(bad), bad)
	}
}

func TestChannelHint(t *testing.T) {
	for _, n := range []string{"sensors/lidar", "a", "control/estop"} {
		assert.Equal(t, uint16(xxh3.HashString(n)&0xffff), ChannelHint(n))
		assert.Equal(t, xxh3.HashString(n), ChannelHash(n))
	}
	assert.Equal(t, ChannelHint("x"), ChannelHint("x"))
}
