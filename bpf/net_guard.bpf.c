/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * net_guard: decides outbound connections and UDP datagrams by agents against the network rules.
 *
 * Hooks (cgroup sock_addr programs, attached to <cgroup2 root>/cordon so that only processes in
 * cordon's subtree ever run them; the same on both backends):
 *   cgroup/connect4, cgroup/connect6   connect() fails with EPERM on denial.
 *   cgroup/sendmsg4, cgroup/sendmsg6   sendto()/sendmsg() on UDP fail with EPERM on denial.
 *   cgroup/sock_create                 creation of raw sockets (SOCK_RAW) and ICMP echo sockets
 *                                      ("ping" sockets, which any group in ping_group_range may
 *                                      open and whose datagrams no sendmsg hook sees) fails with
 *                                      EPERM unless network.raw_sockets allows them. Packet
 *                                      sockets (AF_PACKET) never reach this hook; the seccomp
 *                                      layer refuses them.
 * Returning 0 from a sock_addr program makes the kernel refuse with EPERM; 1 lets it through.
 * An IPv4-mapped IPv6 address (::ffff:a.b.c.d, which an IPv6 socket uses to reach IPv4) is
 * decided as the IPv4 address it is.
 *
 * Protocols: TCP and MPTCP are decided as tcp, UDP and UDP-Lite as udp; any other protocol that
 * reaches these hooks (SCTP, ...) matches no rule's protocols and is denied (fail closed).
 *
 * Lookup: longest-prefix match on (policy, family, address); the entry's slots (own rules first,
 * then those of covering prefixes) are tried in order and the first that matches the port and
 * protocol decides; none matching means the network default.
 *
 * Missing entries: a task whose cgroup is not an agent is allowed (see cordon.bpf.h).
 */
#include "cordon.bpf.h"

#define AF_INET 2
#define AF_INET6 10
#define IPPROTO_ICMP 1
#define IPPROTO_TCP 6
#define IPPROTO_UDP 17
#define IPPROTO_ICMPV6 58
#define IPPROTO_UDPLITE 136
#define IPPROTO_MPTCP 262
#define SOCK_DGRAM 2
#define SOCK_RAW 3

/* The rule protocol class of an IP protocol; 0 for protocols no rule can name. */
static __always_inline __u8 net_proto_class(__u32 protocol)
{
	switch (protocol) {
	case IPPROTO_TCP:
	case IPPROTO_MPTCP:
		return CORDON_PROTO_TCP;
	case IPPROTO_UDP:
	case IPPROTO_UDPLITE:
		return CORDON_PROTO_UDP;
	default:
		return 0;
	}
}

static __always_inline __u16 ntoh16(__u16 v)
{
	return (v >> 8) | (v << 8);
}

static __always_inline int net_decide(struct bpf_sock_addr *ctx, __u32 hook, bool v6)
{
	struct cordon_rule_hit hit = {};
	struct cordon_net_value *entry;
	struct cordon_net_key key = {};
	struct cordon_event *e;
	struct cordon_ctx c;
	__u16 port;
	__u8 proto, verdict;

	if (!cordon_enter(&c))
		return 1;
	port = ntoh16((__u16)ctx->user_port);
	proto = net_proto_class(ctx->protocol);
	key.policy_id = c.agent->policy_id;
	if (!v6) {
		key.family = 4;
		__builtin_memcpy(key.addr, &ctx->user_ip4, 4);
	} else {
		__u32 w0 = ctx->user_ip6[0], w1 = ctx->user_ip6[1], w2 = ctx->user_ip6[2];
		__u32 w3 = ctx->user_ip6[3];

		if (w0 == 0 && w1 == 0 && w2 == 0xffff0000) { /* ::ffff:0:0/96, network order */
			key.family = 4;
			__builtin_memcpy(key.addr, &w3, 4);
		} else {
			key.family = 6;
			__builtin_memcpy(key.addr, &w0, 4);
			__builtin_memcpy(key.addr + 4, &w1, 4);
			__builtin_memcpy(key.addr + 8, &w2, 4);
			__builtin_memcpy(key.addr + 12, &w3, 4);
		}
	}
	key.prefixlen = 40 + (key.family == 4 ? 32 : 128);

	hit.action = c.policy ? c.policy->net_default : CORDON_ACTION_DENY;
	hit.rule_id = c.policy ? c.policy->net_default_rule_id : 0;
	entry = bpf_map_lookup_elem(&cordon_net_rules, &key);
	if (!proto) {
		hit.action = CORDON_ACTION_DENY; /* fail closed: a protocol no rule names */
		hit.rule_id = 0;
	} else if (entry) {
		for (int i = 0; i < CORDON_NET_SLOTS; i++) {
			struct cordon_net_slot *s = &entry->slots[i];

			if (i >= entry->nslots)
				break;
			if (port >= s->port_lo && port <= s->port_hi && (s->protocols & proto)) {
				hit.action = s->action;
				hit.rule_id = s->rule_id;
				hit.min_tier = s->min_tier;
				break;
			}
		}
	}
	verdict = cordon_verdict(&c, &hit);
	cordon_apply_ex(&c, verdict, false); /* no bpf_send_signal here on 6.1 */
	if (cordon_should_report(&c, verdict)) {
		e = cordon_event_start(&c, hook, verdict, hit.rule_id);
		if (e) {
			__builtin_memcpy(e->addr, key.addr, sizeof(e->addr));
			e->port = port;
			e->family = key.family;
			e->protocol = proto;
			bpf_ringbuf_submit(e, 0);
		}
	}
	return verdict == CORDON_VERDICT_DENY || verdict == CORDON_VERDICT_KILL ? 0 : 1;
}

SEC("cgroup/connect4")
int net_guard_connect4(struct bpf_sock_addr *ctx)
{
	return net_decide(ctx, CORDON_HOOK_CONNECT4, false);
}

SEC("cgroup/connect6")
int net_guard_connect6(struct bpf_sock_addr *ctx)
{
	return net_decide(ctx, CORDON_HOOK_CONNECT6, true);
}

SEC("cgroup/sendmsg4")
int net_guard_sendmsg4(struct bpf_sock_addr *ctx)
{
	return net_decide(ctx, CORDON_HOOK_SENDMSG4, false);
}

SEC("cgroup/sendmsg6")
int net_guard_sendmsg6(struct bpf_sock_addr *ctx)
{
	return net_decide(ctx, CORDON_HOOK_SENDMSG6, true);
}

SEC("cgroup/sock_create")
int net_guard_sock_create(struct bpf_sock *sk)
{
	struct cordon_rule_hit hit = {};
	struct cordon_event *e;
	struct cordon_ctx c;
	__u32 type = sk->type, protocol = sk->protocol;
	__u8 verdict;

	if (type != SOCK_RAW &&
	    !(type == SOCK_DGRAM && (protocol == IPPROTO_ICMP || protocol == IPPROTO_ICMPV6)))
		return 1; /* ordinary sockets are decided at connect and send */
	if (!cordon_enter(&c))
		return 1;
	hit.action = c.policy ? c.policy->raw_sockets : CORDON_ACTION_DENY;
	verdict = cordon_verdict(&c, &hit);
	cordon_apply_ex(&c, verdict, false);
	if (cordon_should_report(&c, verdict)) {
		e = cordon_event_start(&c, CORDON_HOOK_SOCKET, verdict, 0);
		if (e) {
			e->family = sk->family == AF_INET6 ? 6 : 4;
			e->protocol = (__u8)protocol;
			bpf_ringbuf_submit(e, 0);
		}
	}
	return verdict == CORDON_VERDICT_DENY || verdict == CORDON_VERDICT_KILL ? 0 : 1;
}
