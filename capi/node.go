package main

/*
#include "capi.h"
*/
import "C"

import (
	"context"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/netmesh/libnetmesh/core/identity"
	"github.com/netmesh/libnetmesh/core/mesh"
)

// nodeObj is what a net_mesh_node handle holds.
type nodeObj struct {
	n      *mesh.Node
	onChan atomic.Pointer[chanCallback]
}

type chanCallback struct {
	fn   C.net_mesh_channel_message_fn
	life *life
}

func nodeOf(h unsafe.Pointer) (*nodeObj, error) {
	v, err := lookup(h, kindNode)
	if err != nil {
		return nil, err
	}
	return v.(*nodeObj), nil
}

func msDuration(ms C.uint32_t) time.Duration { return time.Duration(ms) * time.Millisecond }

//export net_mesh_node_new
func net_mesh_node_new(opts *C.nm_cnodeopts, out **C.net_mesh_node) (rc C.int) {
	defer guard(&rc)
	if out == nil {
		return fail(errNilOut)
	}
	cfg := mesh.Config{Logger: coreLog}
	if opts != nil {
		if opts.size < C.uint32_t(unsafe.Sizeof(C.net_mesh_node_options{})) {
			return fail(errf(statusInvalidArgument, "node options size %d is smaller than %d", uint32(opts.size), unsafe.Sizeof(C.net_mesh_node_options{})))
		}
		if opts.bind_addr != nil {
			b, err := goString("bind address", (*C.nm_cchar)(opts.bind_addr))
			if err != nil {
				return fail(err)
			}
			cfg.Bind = b
		}
		if opts.psk != nil {
			copy(cfg.PSK[:], borrow((*C.nm_cu8)(opts.psk), 32))
		}
		if opts.identity != nil {
			k, err := identityOf((*C.nm_cidentity)(opts.identity))
			if err != nil {
				return fail(err)
			}
			if k.IsReadOnly() {
				return fail(errf(statusInvalidArgument, "node identity is public-only"))
			}
			cfg.Identity = k
		}
		cfg.HeartbeatInterval = msDuration(opts.heartbeat_interval_ms)
		cfg.SessionTimeout = msDuration(opts.session_timeout_ms)
		cfg.ConnectTimeout = msDuration(opts.connect_timeout_ms)
		cfg.MembershipAckTimeout = msDuration(opts.membership_timeout_ms)
	}
	n, err := mesh.NewNode(cfg)
	if err != nil {
		if st, _, _ := statusOf(err); st == statusInternal {
			// Socket errors come back as plain net errors.
			return fail(errf(statusIO, "%v", err))
		}
		return fail(err)
	}
	*out = (*C.net_mesh_node)(mint(kindNode, &nodeObj{n: n}))
	return statusOK
}

//export net_mesh_node_addr
func net_mesh_node_addr(h *C.nm_cnode, out *C.net_mesh_bytes) (rc C.int) {
	defer guard(&rc)
	n, err := nodeOf(unsafe.Pointer(h))
	if err != nil {
		return fail(err)
	}
	if out == nil {
		return fail(errNilOut)
	}
	if err := fillBytes(out, []byte(n.n.Addr())); err != nil {
		return fail(err)
	}
	return statusOK
}

//export net_mesh_node_id
func net_mesh_node_id(h *C.nm_cnode, out *C.uint64_t) (rc C.int) {
	defer guard(&rc)
	n, err := nodeOf(unsafe.Pointer(h))
	if err != nil {
		return fail(err)
	}
	if out == nil {
		return fail(errNilOut)
	}
	*out = C.uint64_t(n.n.NodeID())
	return statusOK
}

//export net_mesh_node_public_key
func net_mesh_node_public_key(h *C.nm_cnode, out *C.uint8_t) (rc C.int) {
	defer guard(&rc)
	n, err := nodeOf(unsafe.Pointer(h))
	if err != nil {
		return fail(err)
	}
	if out == nil {
		return fail(errNilOut)
	}
	k := n.n.StaticPublicKey()
	copy(unsafe.Slice((*byte)(out), 32), k[:])
	return statusOK
}

//export net_mesh_node_connect
func net_mesh_node_connect(h *C.net_mesh_node, addr *C.nm_cchar, key *C.nm_cu8, peer C.uint64_t, timeoutMS C.uint32_t) (rc C.int) {
	defer guard(&rc)
	n, err := nodeOf(unsafe.Pointer(h))
	if err != nil {
		return fail(err)
	}
	a, err := goString("address", addr)
	if err != nil {
		return fail(err)
	}
	if key == nil {
		return fail(errf(statusInvalidArgument, "peer public key is NULL"))
	}
	var k [32]byte
	copy(k[:], borrow(key, 32))
	ctx, cancel := timeoutCtx(timeoutMS)
	defer cancel()
	if err := n.n.Connect(ctx, a, k, uint64(peer)); err != nil {
		if st, _, _ := statusOf(err); st == statusInternal {
			return fail(errf(statusIO, "%v", err))
		}
		return fail(err)
	}
	return statusOK
}

//export net_mesh_node_accept
func net_mesh_node_accept(h *C.net_mesh_node, peer C.uint64_t) (rc C.int) {
	defer guard(&rc)
	n, err := nodeOf(unsafe.Pointer(h))
	if err != nil {
		return fail(err)
	}
	n.n.Accept(uint64(peer))
	return statusOK
}

//export net_mesh_node_channel_register
func net_mesh_node_channel_register(h *C.net_mesh_node, channel *C.nm_cchar, opts *C.nm_cchanopts) (rc C.int) {
	defer guard(&rc)
	n, err := nodeOf(unsafe.Pointer(h))
	if err != nil {
		return fail(err)
	}
	ch, err := goString("channel", channel)
	if err != nil {
		return fail(err)
	}
	var cfg mesh.ChannelConfig
	if opts != nil {
		if opts.size < C.uint32_t(unsafe.Sizeof(C.net_mesh_channel_options{})) {
			return fail(errf(statusInvalidArgument, "channel options size %d is smaller than %d", uint32(opts.size), unsafe.Sizeof(C.net_mesh_channel_options{})))
		}
		cfg.RequireToken = opts.require_token != 0
		cfg.MaxSubscribers = int(opts.max_subscribers)
		if opts.trusted_issuer_count > 0 {
			if opts.trusted_issuers == nil || opts.trusted_issuer_count > 4096 {
				return fail(errf(statusInvalidArgument, "trusted issuers: NULL or more than 4096"))
			}
			raw := borrow((*C.nm_cu8)(opts.trusted_issuers), opts.trusted_issuer_count*32)
			for i := 0; i < int(opts.trusted_issuer_count); i++ {
				var id identity.EntityID
				copy(id[:], raw[32*i:])
				cfg.TrustedIssuers = append(cfg.TrustedIssuers, id)
			}
		}
	}
	if err := n.n.RegisterChannel(ch, cfg); err != nil {
		if st, _, _ := statusOf(err); st == statusInternal {
			return fail(errf(statusInvalidArgument, "%v", err))
		}
		return fail(err)
	}
	return statusOK
}

//export net_mesh_node_channel_subscribe
func net_mesh_node_channel_subscribe(h *C.net_mesh_node, publisher C.uint64_t, channel *C.nm_cchar, token *C.nm_cu8, tokenLen C.size_t, timeoutMS C.uint32_t) (rc C.int) {
	defer guard(&rc)
	n, err := nodeOf(unsafe.Pointer(h))
	if err != nil {
		return fail(err)
	}
	ch, err := goString("channel", channel)
	if err != nil {
		return fail(err)
	}
	tok, err := borrowChecked("token", token, tokenLen)
	if err != nil {
		return fail(err)
	}
	ctx, cancel := timeoutCtx(timeoutMS)
	defer cancel()
	if err := n.n.SubscribeChannel(ctx, uint64(publisher), ch, append([]byte(nil), tok...)); err != nil {
		return fail(netErr(ctx, err))
	}
	return statusOK
}

//export net_mesh_node_channel_unsubscribe
func net_mesh_node_channel_unsubscribe(h *C.net_mesh_node, publisher C.uint64_t, channel *C.nm_cchar, timeoutMS C.uint32_t) (rc C.int) {
	defer guard(&rc)
	n, err := nodeOf(unsafe.Pointer(h))
	if err != nil {
		return fail(err)
	}
	ch, err := goString("channel", channel)
	if err != nil {
		return fail(err)
	}
	ctx, cancel := timeoutCtx(timeoutMS)
	defer cancel()
	if err := n.n.UnsubscribeChannel(ctx, uint64(publisher), ch); err != nil {
		return fail(netErr(ctx, err))
	}
	return statusOK
}

// netErr: a wire call that ended with its context is a timeout; other
// unclassified network failures are IO.
func netErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return errf(statusTimeout, "%v", err)
	}
	if st, _, _ := statusOf(err); st == statusInternal {
		return errf(statusIO, "%v", err)
	}
	return err
}

//export net_mesh_node_channel_publish
func net_mesh_node_channel_publish(h *C.net_mesh_node, channel *C.nm_cchar, payload *C.nm_cu8, n C.size_t, out *C.net_mesh_publish_report) (rc C.int) {
	defer guard(&rc)
	no, err := nodeOf(unsafe.Pointer(h))
	if err != nil {
		return fail(err)
	}
	ch, err := goString("channel", channel)
	if err != nil {
		return fail(err)
	}
	p, err := borrowChecked("payload", payload, n)
	if err != nil {
		return fail(err)
	}
	rep := no.n.Publish(context.Background(), ch, p)
	if out != nil {
		out.attempted = C.uint64_t(rep.Attempted)
		out.delivered = C.uint64_t(rep.Delivered)
		out.failed = C.uint64_t(rep.Failed)
	}
	return statusOK
}

//export net_mesh_node_on_channel_message
func net_mesh_node_on_channel_message(h *C.net_mesh_node, fn C.net_mesh_channel_message_fn, ud unsafe.Pointer, finalize C.net_mesh_finalize_fn) (rc C.int) {
	defer guard(&rc)
	l := newLife(finalize, C.uintptr_t(uintptr(ud)))
	no, err := nodeOf(unsafe.Pointer(h))
	if err != nil {
		l.close()
		return fail(err)
	}
	var cb *chanCallback
	if fn != nil {
		cb = &chanCallback{fn: fn, life: l}
		no.n.OnChannelMessage(func(publisher uint64, channel string, payload []byte) {
			if !cb.life.enter() {
				return
			}
			defer cb.life.exit()
			name := append([]byte(channel), 0)
			var p *C.uint8_t
			if len(payload) > 0 {
				p = (*C.uint8_t)(unsafe.Pointer(&payload[0]))
			}
			C.nm_call_channel_message(cb.fn, cb.life.ud, C.uint64_t(publisher), (*C.char)(unsafe.Pointer(&name[0])), p, C.size_t(len(payload)))
		})
	} else {
		no.n.OnChannelMessage(nil)
		l.close()
	}
	if old := no.onChan.Swap(cb); old != nil {
		old.life.close()
	}
	return statusOK
}

//export net_mesh_node_stats_get
func net_mesh_node_stats_get(h *C.nm_cnode, out *C.net_mesh_node_stats) (rc C.int) {
	defer guard(&rc)
	n, err := nodeOf(unsafe.Pointer(h))
	if err != nil {
		return fail(err)
	}
	if out == nil {
		return fail(errNilOut)
	}
	if err := checkOutSize("node stats", out.size, 8); err != nil {
		return fail(err)
	}
	s := n.n.Stats()
	full := C.net_mesh_node_stats{size: out.size,
		packets_sent: C.uint64_t(s.PacketsSent), packets_received: C.uint64_t(s.PacketsReceived),
		bytes_sent: C.uint64_t(s.BytesSent), bytes_received: C.uint64_t(s.BytesReceived),
		handshakes_completed: C.uint64_t(s.HandshakesCompleted), heartbeats_sent: C.uint64_t(s.HeartbeatsSent),
		heartbeats_received: C.uint64_t(s.HeartbeatsReceived), retransmits: C.uint64_t(s.Retransmits),
		duplicates_suppressed: C.uint64_t(s.DuplicatesSuppressed), dropped_malformed: C.uint64_t(s.DroppedMalformed),
		dropped_auth: C.uint64_t(s.DroppedAuth), dropped_replay: C.uint64_t(s.DroppedReplay)}
	copyOut(unsafe.Pointer(out), unsafe.Pointer(&full), int(out.size), int(unsafe.Sizeof(full)))
	return statusOK
}

//export net_mesh_node_close
func net_mesh_node_close(h *C.net_mesh_node) (rc C.int) {
	defer guard(&rc)
	n, err := nodeOf(unsafe.Pointer(h))
	if err != nil {
		return fail(err)
	}
	n.close()
	return statusOK
}

func (n *nodeObj) close() {
	_ = n.n.Close()
	n.n.OnChannelMessage(nil)
	if old := n.onChan.Swap(nil); old != nil {
		old.life.close()
	}
}

//export net_mesh_node_free
func net_mesh_node_free(h *C.net_mesh_node) {
	defer guardVoid()
	if v, ok := release(unsafe.Pointer(h), kindNode); ok {
		v.(*nodeObj).close()
	}
}

//export net_mesh_token_issue
func net_mesh_token_issue(issuer *C.nm_cidentity, subject *C.nm_cu8, scope C.uint32_t, channel *C.nm_cchar, ttl C.uint64_t, out *C.net_mesh_bytes) (rc C.int) {
	defer guard(&rc)
	k, err := identityOf(issuer)
	if err != nil {
		return fail(err)
	}
	if subject == nil || out == nil {
		return fail(errf(statusInvalidArgument, "subject or output is NULL"))
	}
	ch, err := goString("channel", channel)
	if err != nil {
		return fail(err)
	}
	if uint64(ttl) > uint64(1<<62)/uint64(time.Second) {
		return fail(errf(statusInvalidArgument, "ttl %d s is too large", uint64(ttl)))
	}
	var sub identity.EntityID
	copy(sub[:], borrow(subject, 32))
	t, err := identity.IssueToken(k, sub, uint32(scope), ch, time.Duration(ttl)*time.Second, time.Now())
	if err != nil {
		if st, _, _ := statusOf(err); st == statusInternal {
			return fail(errf(statusInvalidArgument, "%v", err))
		}
		return fail(err)
	}
	b := t.Encode()
	if err := fillBytes(out, b[:]); err != nil {
		return fail(err)
	}
	return statusOK
}
