package mesh

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/netmesh/libnetmesh/core/identity"
	"github.com/netmesh/libnetmesh/core/mesh/memnet"
	"github.com/netmesh/libnetmesh/core/mesh/wire"
)

type chanMsg struct {
	pub     uint64
	channel string
	payload string
}

func chanCollector(n *Node) chan chanMsg {
	ch := make(chan chanMsg, 256)
	n.OnChannelMessage(func(pub uint64, c string, p []byte) { ch <- chanMsg{pub, c, string(p)} })
	return ch
}

func nextMsg(t *testing.T, ch chan chanMsg) chanMsg {
	t.Helper()
	select {
	case m := <-ch:
		return m
	case <-time.After(5 * time.Second):
		t.Fatal("no channel message")
		return chanMsg{}
	}
}

func requireAck(t *testing.T, err error, sentinel error, reason wire.AckReason) {
	t.Helper()
	require.ErrorIs(t, err, sentinel)
	var ae *AckError
	require.True(t, errors.As(err, &ae))
	assert.Equal(t, uint8(reason), ae.Reason)
}

func TestSubscribePublishUnsubscribe(t *testing.T) {
	net := memnet.New(11)
	pub := memNode(t, net, "pub", fastCfg())
	s1 := memNode(t, net, "s1", fastCfg())
	s2 := memNode(t, net, "s2", fastCfg())
	link(t, s1, pub)
	link(t, s2, pub)
	ctx := context.Background()
	require.NoError(t, pub.RegisterChannel("news/eu", ChannelConfig{}))
	require.ErrorIs(t, pub.RegisterChannel("Bad//name", ChannelConfig{}), ErrInvalidChannel)
	m1, m2 := chanCollector(s1), chanCollector(s2)

	require.NoError(t, s1.SubscribeChannel(ctx, pub.NodeID(), "news/eu", nil))
	require.NoError(t, s2.SubscribeChannel(ctx, pub.NodeID(), "news/eu", nil))
	require.NoError(t, s2.SubscribeChannel(ctx, pub.NodeID(), "news/eu", nil)) // idempotent
	want := []uint64{s1.NodeID(), s2.NodeID()}
	if want[0] > want[1] {
		want[0], want[1] = want[1], want[0]
	}
	assert.Equal(t, want, pub.Roster("news/eu"))

	rep := pub.Publish(ctx, "news/eu", []byte("hello"))
	assert.Equal(t, PublishReport{Attempted: 2, Delivered: 2}, rep)
	assert.Equal(t, chanMsg{pub.NodeID(), "news/eu", "hello"}, nextMsg(t, m1))
	assert.Equal(t, chanMsg{pub.NodeID(), "news/eu", "hello"}, nextMsg(t, m2))

	require.NoError(t, s1.UnsubscribeChannel(ctx, pub.NodeID(), "news/eu"))
	assert.Equal(t, []uint64{s2.NodeID()}, pub.Roster("news/eu"))
	rep = pub.Publish(ctx, "news/eu", []byte("second"))
	assert.Equal(t, PublishReport{Attempted: 1, Delivered: 1}, rep)
	assert.Equal(t, "second", nextMsg(t, m2).payload)
	select {
	case m := <-m1:
		t.Fatalf("unsubscribed node got %+v", m)
	case <-time.After(50 * time.Millisecond):
	}

	assert.Equal(t, PublishReport{}, pub.Publish(ctx, "nobody", []byte("x")))
	requireAck(t, s1.UnsubscribeChannel(ctx, pub.NodeID(), "nope"), ErrUnknownChannel, wire.ReasonUnknownChannel)
	requireAck(t, s1.SubscribeChannel(ctx, pub.NodeID(), "nope", nil), ErrUnknownChannel, wire.ReasonUnknownChannel)
	require.ErrorIs(t, s1.SubscribeChannel(ctx, pub.NodeID(), "UPPER", nil), ErrInvalidChannel)
	require.ErrorIs(t, s1.SubscribeChannel(ctx, 77, "news/eu", nil), ErrPeerUnavailable)

	// A publish to a subscriber whose session is gone counts as failed.
	require.NoError(t, s2.Close())
	require.Eventually(t, func() bool { return len(pub.Peers()) == 1 }, 10*time.Second, 10*time.Millisecond)
}

func TestTokenGatedChannel(t *testing.T) {
	net := memnet.New(12)
	pub := memNode(t, net, "pub", fastCfg())
	sub := memNode(t, net, "sub", fastCfg())
	link(t, sub, pub)
	ctx := context.Background()
	require.NoError(t, pub.RegisterChannel("secret", ChannelConfig{RequireToken: true}))
	require.NoError(t, pub.RegisterChannel("other", ChannelConfig{}))
	now := time.Now()
	issue := func(issuer *identity.Keypair, subject identity.EntityID, scope uint32, ch string, at time.Time) []byte {
		tok, err := identity.IssueToken(issuer, subject, scope, ch, time.Hour, at)
		require.NoError(t, err)
		b := tok.Encode()
		return b[:]
	}
	me := sub.Identity().EntityID()
	stranger, err := identity.Generate()
	require.NoError(t, err)

	cases := map[string][]byte{
		"missing":          nil,
		"garbage":          make([]byte, 12),
		"wrong channel":    issue(pub.Identity(), me, identity.ScopeSubscribe, "other", now),
		"expired":          issue(pub.Identity(), me, identity.ScopeSubscribe, "secret", now.Add(-2*time.Hour)),
		"not yet valid":    issue(pub.Identity(), me, identity.ScopeSubscribe, "secret", now.Add(time.Hour)),
		"publish scope":    issue(pub.Identity(), me, identity.ScopePublish, "secret", now),
		"other subject":    issue(pub.Identity(), stranger.EntityID(), identity.ScopeSubscribe, "secret", now),
		"untrusted issuer": issue(stranger, me, identity.ScopeSubscribe, "secret", now),
	}
	for name, tok := range cases {
		t.Run(name, func(t *testing.T) {
			requireAck(t, sub.SubscribeChannel(ctx, pub.NodeID(), "secret", tok), ErrUnauthorized, wire.ReasonUnauthorized)
		})
	}
	tampered := issue(pub.Identity(), me, identity.ScopeSubscribe, "secret", now)
	tampered[100] ^= 1
	requireAck(t, sub.SubscribeChannel(ctx, pub.NodeID(), "secret", tampered), ErrUnauthorized, wire.ReasonUnauthorized)
	assert.Empty(t, pub.Roster("secret"))

	require.NoError(t, sub.SubscribeChannel(ctx, pub.NodeID(), "secret", issue(pub.Identity(), me, identity.ScopeSubscribe, "secret", now)))
	assert.Equal(t, []uint64{sub.NodeID()}, pub.Roster("secret"))

	// A wildcard token from a configured trusted issuer works too.
	require.NoError(t, pub.RegisterChannel("vip", ChannelConfig{RequireToken: true, TrustedIssuers: []identity.EntityID{stranger.EntityID()}}))
	wild := issue(stranger, me, identity.ScopeSubscribe|identity.ScopeWildcard, "anything", now)
	require.NoError(t, sub.SubscribeChannel(ctx, pub.NodeID(), "vip", wild))

	m := chanCollector(sub)
	assert.Equal(t, PublishReport{Attempted: 1, Delivered: 1}, pub.Publish(ctx, "secret", []byte("s")))
	assert.Equal(t, "s", nextMsg(t, m).payload)
}

func TestAckReasonsCapacityAndRate(t *testing.T) {
	net := memnet.New(13)
	cfg := fastCfg()
	cfg.MaxChannelsPerPeer = 2
	pub := memNode(t, net, "pub", cfg)
	s1 := memNode(t, net, "s1", fastCfg())
	s2 := memNode(t, net, "s2", fastCfg())
	link(t, s1, pub)
	link(t, s2, pub)
	ctx := context.Background()
	for _, c := range []string{"a", "b", "c"} {
		require.NoError(t, pub.RegisterChannel(c, ChannelConfig{}))
	}
	require.NoError(t, pub.RegisterChannel("tiny", ChannelConfig{MaxSubscribers: 1}))

	require.NoError(t, s2.SubscribeChannel(ctx, pub.NodeID(), "tiny", nil))
	requireAck(t, s1.SubscribeChannel(ctx, pub.NodeID(), "tiny", nil), ErrTooManyChannels, wire.ReasonTooManyChannels)

	require.NoError(t, s1.SubscribeChannel(ctx, pub.NodeID(), "a", nil))
	require.NoError(t, s1.SubscribeChannel(ctx, pub.NodeID(), "b", nil))
	requireAck(t, s1.SubscribeChannel(ctx, pub.NodeID(), "c", nil), ErrTooManyChannels, wire.ReasonTooManyChannels)
	assert.Empty(t, pub.Roster("c"))

	// Rate limiting: a bucket of 3 requests that does not refill in the test.
	rcfg := fastCfg()
	rcfg.SubscribeBurst = 3
	rcfg.SubscribeRate = 1e-6
	rp := memNode(t, net, "rp", rcfg)
	link(t, s1, rp)
	require.NoError(t, rp.RegisterChannel("a", ChannelConfig{}))
	for i := 0; i < 3; i++ {
		require.NoError(t, s1.SubscribeChannel(ctx, rp.NodeID(), "a", nil))
	}
	requireAck(t, s1.SubscribeChannel(ctx, rp.NodeID(), "a", nil), ErrRateLimited, wire.ReasonRateLimited)
}

func TestMembershipAckTimeout(t *testing.T) {
	net := memnet.New(14)
	pub := memNode(t, net, "pub", fastCfg())
	cfg := fastCfg()
	cfg.MembershipAckTimeout = 200 * time.Millisecond
	sub := memNode(t, net, "sub", cfg)
	link(t, sub, pub)
	require.NoError(t, pub.RegisterChannel("a", ChannelConfig{}))
	net.SetLink("pub", "sub", memnet.LinkConfig{Down: true})
	require.ErrorIs(t, sub.SubscribeChannel(context.Background(), pub.NodeID(), "a", nil), ErrAckTimeout)
	net.ClearLink("pub", "sub")
}

func TestUnsubscribedChannelMessagesDropped(t *testing.T) {
	net := memnet.New(15)
	pub := memNode(t, net, "pub", fastCfg())
	sub := memNode(t, net, "sub", fastCfg())
	link(t, sub, pub)
	m := chanCollector(sub)
	s := pub.sessionFor(sub.NodeID())
	require.NotNil(t, s)
	ev := append([]byte{4}, "spam"...)
	require.NoError(t, s.sendUnreliable(wire.SubEvents, wire.ChannelHint("spam"), ev))
	require.Eventually(t, func() bool { return sub.Stats().DroppedUnsubscribed == 1 }, 3*time.Second, time.Millisecond)
	assert.Empty(t, m)
}
