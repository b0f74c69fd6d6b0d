/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The network decision, shared by net_guard (sock_addr, sock_create, listen) and file_guard
 * (compat: listen() at its syscall exit): longest-prefix match on (policy, family, address) in
 * cordon_net_rules, outbound rules or inbound ones (family | CORDON_NET_INBOUND); the entry's
 * slots (own rules first, then those of covering prefixes) are tried in order and the first
 * that matches the port and protocol decides; none matching means the class default.
 */
#pragma once

#include "effects.bpf.h"

#define AF_INET 2
#define AF_INET6 10
#define IPPROTO_ICMP 1
#define IPPROTO_TCP 6
#define IPPROTO_UDP 17
#define IPPROTO_ICMPV6 58
#define IPPROTO_UDPLITE 136
#define IPPROTO_MPTCP 262
#define SOCK_STREAM 1
#define SOCK_DGRAM 2
#define SOCK_RAW 3

static __always_inline __u16 ntoh16(__u16 v)
{
	return (v >> 8) | (v << 8);
}

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

/*
 * Fills key->family and key->addr from an IPv4 address or the four words of an IPv6 one (network
 * order). An IPv4-mapped IPv6 address (::ffff:a.b.c.d) is decided as the IPv4 address it is.
 */
static __always_inline void net_key_addr(struct cordon_net_key *key, bool v6, __u32 ip4,
					 __u32 w0, __u32 w1, __u32 w2, __u32 w3)
{
	if (!v6) {
		key->family = 4;
		__builtin_memcpy(key->addr, &ip4, 4);
	} else if (w0 == 0 && w1 == 0 && w2 == 0xffff0000) { /* ::ffff:0:0/96, network order */
		key->family = 4;
		__builtin_memcpy(key->addr, &w3, 4);
	} else {
		key->family = 6;
		__builtin_memcpy(key->addr, &w0, 4);
		__builtin_memcpy(key->addr + 4, &w1, 4);
		__builtin_memcpy(key->addr + 8, &w2, 4);
		__builtin_memcpy(key->addr + 12, &w3, 4);
	}
}

/*
 * The first slot of compiled set `policy_id` under the key's address that matches port and
 * protocol, if any.
 */
static __always_inline bool net_find(struct cordon_net_key *key, __u32 policy_id, __u16 port,
				     __u8 proto, struct cordon_rule_hit *hit)
{
	struct cordon_net_value *entry;

	key->policy_id = policy_id;
	entry = bpf_map_lookup_elem(&cordon_net_rules, key);
	if (!entry)
		return false;
	for (int i = 0; i < CORDON_NET_SLOTS; i++) {
		struct cordon_net_slot *s = &entry->slots[i];

		if (i >= entry->nslots)
			break;
		if (port >= s->port_lo && port <= s->port_hi && (s->protocols & proto)) {
			hit->action = s->action;
			hit->rule_id = s->rule_id;
			hit->min_tier = s->min_tier;
			return true;
		}
	}
	return false;
}

/*
 * The first live slot that an agent's own DNS answers gave this address (cordon_dns_hosts, the
 * gateway's entries for (agent, policy, address)) and that matches port and protocol, if any.
 * An expired slot allows nothing: a connection made while it was live is not cut, the next
 * connect or datagram is decided again.
 */
static __always_inline bool net_find_answered(const struct cordon_ctx *c,
					      const struct cordon_net_key *key, __u16 port,
					      __u8 proto, struct cordon_rule_hit *hit)
{
	struct cordon_dns_host_key k = {};
	struct cordon_dns_host *entry;
	__u64 now;

	k.agent = c->cgid;
	k.policy_id = c->policy_id;
	k.family = key->family;
	__builtin_memcpy(k.addr, key->addr, sizeof(k.addr));
	entry = bpf_map_lookup_elem(&cordon_dns_hosts, &k);
	if (!entry)
		return false;
	now = bpf_ktime_get_ns();
	for (int i = 0; i < CORDON_NET_SLOTS; i++) {
		struct cordon_dns_slot *s = &entry->slots[i];

		if (i >= entry->nslots)
			break;
		if (s->expires_ns > now && port >= s->slot.port_lo && port <= s->slot.port_hi &&
		    (s->slot.protocols & proto)) {
			hit->action = s->slot.action;
			hit->rule_id = s->slot.rule_id;
			hit->min_tier = s->slot.min_tier;
			return true;
		}
	}
	return false;
}

/*
 * Global (decide.bpf.c; verified once per program): the overlay and grants over an outbound network hit, for
 * the agent of the current task. The address in two halves (IPv4 in the first 4 bytes of hi),
 * meta = family | proto << 8 | port << 16, hit_in as cordon_hit_pack. Returns the hit.
 */
__u64 cordon_net_layers(__u64 hi, __u64 lo, __u32 meta, __u64 hit_in, __u32 layers);

/*
 * Decides (key's address, port, proto) for an agent, outbound or inbound, reports it with
 * `hook`, and applies the side effects (no signal: see cordon_apply_ex). Returns the verdict.
 * Outbound, a task's overlay and grants apply as for paths (cordon_path_lookup).
 */
static __always_inline __u8 net_decide_key(const struct cordon_ctx *c, struct cordon_net_key *key,
					   __u16 port, __u8 proto, bool inbound, __u32 hook)
{
	struct cordon_rule_hit hit = {};
	struct cordon_event *e;
	__u8 family = key->family, verdict;
	__u64 hi, lo;

	key->prefixlen = 40 + (family == 4 ? 32 : 128);
	if (inbound) {
		key->family |= CORDON_NET_INBOUND;
		hit.action = c->policy ? c->policy->inbound_default : CORDON_ACTION_DENY;
		hit.rule_id = c->policy ? c->policy->inbound_default_rule_id : 0;
	} else {
		hit.action = c->policy ? c->policy->net_default : CORDON_ACTION_DENY;
		hit.rule_id = c->policy ? c->policy->net_default_rule_id : 0;
	}
	if (!proto) {
		hit.action = CORDON_ACTION_DENY; /* fail closed: a protocol no rule names */
		hit.rule_id = 0;
	} else {
		/* The compiled prefixes first: a cidr rule that refuses this address decides, so that
		 * no name (a wildcard's, a CNAME's, a rebinding resolver's) opens an address the
		 * policy refuses by number. Otherwise an address the agent's own answer gave a host
		 * rule is that rule's; then the prefix's allow, or the default. */
		struct cordon_rule_hit cidr = hit;
		bool found = net_find(key, c->policy_id, port, proto, &cidr);

		if (found && cidr.action != CORDON_ACTION_ALLOW && cidr.action != CORDON_ACTION_AUDIT)
			hit = cidr;
		else if (inbound || !net_find_answered(c, key, port, proto, &hit))
			hit = cidr;
		/* Called whether or not there are layers (see cordon_path_lookup). */
		__builtin_memcpy(&hi, key->addr, 8);
		__builtin_memcpy(&lo, key->addr + 8, 8);
		cordon_hit_unpack(&hit, cordon_net_layers(hi, lo,
							  family | (__u32)proto << 8 |
								  (__u32)port << 16,
							  cordon_hit_pack(&hit, c->tier),
							  inbound ? 0 : c->layers));
	}
	verdict = cordon_verdict(c, &hit);
	cordon_apply_ex(c, verdict, false); /* no bpf_send_signal in sock_addr programs on 6.1 */
	if (cordon_should_report(c, verdict)) {
		e = cordon_event_start(c, hook, verdict, hit.rule_id);
		if (e) {
			__builtin_memcpy(e->addr, key->addr, sizeof(e->addr));
			e->port = port;
			e->family = family;
			e->protocol = proto;
			bpf_ringbuf_submit(e, 0);
		}
	}
	return verdict;
}

/*
 * listen() on an inet socket: decided by the inbound rules on its local address and port. A
 * socket that was never bound listens on every address: it is decided as the wildcard address,
 * port 0 (the kernel picks the port after this hook).
 */
static __always_inline __u8 net_decide_listen(const struct cordon_ctx *c, struct sock *sk)
{
	struct cordon_net_key key = {};
	__u16 family = BPF_CORE_READ(sk, __sk_common.skc_family);
	__u32 w[4] = {};

	if (family != AF_INET && family != AF_INET6)
		return CORDON_VERDICT_ALLOW; /* Unix sockets: reaching them is decided at connect */
	if (family == AF_INET6)
		BPF_CORE_READ_INTO(&w, sk, __sk_common.skc_v6_rcv_saddr.in6_u.u6_addr32);
	net_key_addr(&key, family == AF_INET6, BPF_CORE_READ(sk, __sk_common.skc_rcv_saddr), w[0],
		     w[1], w[2], w[3]);
	return net_decide_key(c, &key, BPF_CORE_READ(sk, __sk_common.skc_num),
			      net_proto_class(BPF_CORE_READ(sk, sk_protocol)), true,
			      CORDON_HOOK_LISTEN);
}
