/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * net_guard: decides outbound connections and UDP datagrams by agents against the network rules,
 * and where agents may listen or bind against the inbound rules.
 *
 * Hooks (cgroup sock_addr programs, attached to <cgroup2 root>/cordon so that only processes in
 * cordon's subtree ever run them; the same on both backends):
 *   cgroup/connect4, cgroup/connect6   connect() fails with EPERM on denial.
 *   cgroup/sendmsg4, cgroup/sendmsg6   sendto()/sendmsg() on UDP fail with EPERM on denial.
 *                                      Under a DNS gateway, connects and datagrams to port 53
 *                                      are steered to it instead (dns_steer).
 *   cgroup/recvmsg4/6, getpeername4/6  a steered socket sees the address it meant to reach.
 *   cgroup/sock_create                 creation of raw sockets (SOCK_RAW) and ICMP echo sockets
 *                                      ("ping" sockets, which any group in ping_group_range may
 *                                      open and whose datagrams no sendmsg hook sees) fails with
 *                                      EPERM unless network.raw_sockets allows them. Packet
 *                                      sockets (AF_PACKET) never reach this hook; the seccomp
 *                                      layer refuses them.
 *   cgroup/bind4, cgroup/bind6         bind() of a UDP socket (and, on compat, of a TCP one):
 *                                      network.inbound decides the local address and port;
 *                                      EPERM on denial.
 *   lsm/socket_listen (lsm backend)    listen() on a TCP socket: network.inbound decides its
 *                                      local address and port (unbound: the wildcard); EPERM.
 *                                      On compat, file_guard decides listen() at its exit.
 * Returning 0 from a sock_addr program makes the kernel refuse with EPERM; 1 lets it through.
 * An IPv4-mapped IPv6 address (::ffff:a.b.c.d, which an IPv6 socket uses to reach IPv4) is
 * decided as the IPv4 address it is.
 *
 * Protocols: TCP and MPTCP are decided as tcp, UDP and UDP-Lite as udp; any other protocol that
 * reaches these hooks (SCTP, ...) matches no rule's protocols and is denied (fail closed).
 *
 * Lookup: see net.bpf.h.
 *
 * Missing entries: a task whose cgroup is not an agent is allowed (see decide.bpf.h).
 */
#include "net.bpf.h"

/*
 * The address of a sock_addr context. A program may read only its own family's fields
 * (user_ip4 in the *4 programs, user_ip6 in the *6 ones): v6 is a constant in each caller.
 */
static __always_inline void net_ctx_addr(struct bpf_sock_addr *ctx, struct cordon_net_key *key,
					 bool v6)
{
	if (v6)
		net_key_addr(key, true, 0, ctx->user_ip6[0], ctx->user_ip6[1], ctx->user_ip6[2],
			     ctx->user_ip6[3]);
	else
		net_key_addr(key, false, ctx->user_ip4, 0, 0, 0, 0);
}

#define DNS_PORT 53
#define LOOPBACK4 0x0100007f /* 127.0.0.1 in network order (this target is little-endian) */
#define LOOPBACK6_W3 0x01000000 /* the last word of ::1, network order */
#define MAPPED_W2 0xffff0000 /* the third word of ::ffff:0:0/96, network order */

/*
 * The DNS gateway (abi.h cordon_dns_config, userspace/dns/gateway.h): an agent's DNS (UDP or
 * TCP to port 53 of any address, IPv4 or IPv6) goes to the controller's resolver on loopback,
 * which answers only for names the agent's rules name and writes the answer's addresses into
 * cordon_dns_hosts before it releases the answer. The socket's entry in cordon_dns_socks says
 * whose query it is and where it meant to go (recvmsg and getpeername show that address back).
 * Returns -1 when this is not DNS under a gateway (the rules decide), else the hook's verdict:
 * 1 steered, 0 refused. Fails closed: a gateway that ran and stopped (CORDON_DNS_DOWN), or a
 * socket that cannot be recorded, refuses the query.
 */
static __always_inline int dns_steer(struct bpf_sock_addr *ctx, const struct cordon_ctx *c,
				     const struct cordon_net_key *key, __u16 port, __u8 proto,
				     __u32 hook, bool v6)
{
	struct cordon_dns_sock s = {};
	struct cordon_dns_config *cfg;
	struct cordon_event *e;
	__u32 zero = 0;
	__u64 cookie;

	if (port != DNS_PORT || !proto || c->stopped)
		return -1; /* a stopped agent is refused everything by the rules' path */
	cfg = bpf_map_lookup_elem(&cordon_dns_config, &zero);
	if (!cfg || cfg->state == CORDON_DNS_OFF)
		return -1;
	if (cfg->state == CORDON_DNS_DOWN && c->mode == CORDON_MODE_AUDIT)
		return -1; /* audit refuses nothing: the rules report it */
	if (cfg->state == CORDON_DNS_ON && cfg->port) {
		cookie = bpf_get_socket_cookie(ctx);
		s.agent = c->cgid;
		s.task_id = c->task_id;
		s.policy_id = c->policy_id;
		s.agent_id = c->agent_id;
		s.family = key->family;
		s.mode = c->mode;
		s.port = port;
		__builtin_memcpy(s.addr, key->addr, sizeof(s.addr));
		if (bpf_map_update_elem(&cordon_dns_socks, &cookie, &s, BPF_ANY) == 0) {
			if (!v6) {
				ctx->user_ip4 = LOOPBACK4;
			} else if (key->family == 4) { /* ::ffff:a.b.c.d: its IPv4 loopback */
				ctx->user_ip6[0] = 0;
				ctx->user_ip6[1] = 0;
				ctx->user_ip6[2] = MAPPED_W2;
				ctx->user_ip6[3] = LOOPBACK4;
			} else {
				ctx->user_ip6[0] = 0;
				ctx->user_ip6[1] = 0;
				ctx->user_ip6[2] = 0;
				ctx->user_ip6[3] = LOOPBACK6_W3;
			}
			ctx->user_port = (__u32)ntoh16(cfg->port);
			return 1;
		}
	}
	/* The gateway is down, or the socket could not be recorded: refused, and reported. */
	e = cordon_event_start(c, hook, CORDON_VERDICT_DENY, 0);
	if (e) {
		__builtin_memcpy(e->addr, key->addr, sizeof(e->addr));
		e->port = port;
		e->family = key->family;
		e->protocol = proto;
		bpf_ringbuf_submit(e, 0);
	}
	return 0;
}

/*
 * recvmsg and getpeername on a socket the gateway answers: the address it meant to reach, not
 * the gateway's, so that a resolver that checks where its answer came from takes it. Changes
 * nothing for any other socket or address.
 */
static __always_inline int dns_unsteer(struct bpf_sock_addr *ctx, bool v6)
{
	struct cordon_dns_config *cfg;
	struct cordon_dns_sock *s;
	__u32 zero = 0;
	__u64 cookie;

	cfg = bpf_map_lookup_elem(&cordon_dns_config, &zero);
	if (!cfg || cfg->state != CORDON_DNS_ON || ctx->user_port != (__u32)ntoh16(cfg->port))
		return 1;
	if (!v6 && ctx->user_ip4 != LOOPBACK4)
		return 1;
	if (v6 && !(ctx->user_ip6[0] == 0 && ctx->user_ip6[1] == 0 &&
		    ((ctx->user_ip6[2] == 0 && ctx->user_ip6[3] == LOOPBACK6_W3) ||
		     (ctx->user_ip6[2] == MAPPED_W2 && ctx->user_ip6[3] == LOOPBACK4))))
		return 1;
	cookie = bpf_get_socket_cookie(ctx);
	s = bpf_map_lookup_elem(&cordon_dns_socks, &cookie);
	if (!s)
		return 1;
	if (!v6) {
		if (s->family != 4)
			return 1;
		__builtin_memcpy(&ctx->user_ip4, s->addr, 4);
	} else if (s->family == 4) {
		__u32 a;

		__builtin_memcpy(&a, s->addr, 4);
		ctx->user_ip6[0] = 0;
		ctx->user_ip6[1] = 0;
		ctx->user_ip6[2] = MAPPED_W2;
		ctx->user_ip6[3] = a;
	} else {
		__u32 w[4];

		__builtin_memcpy(w, s->addr, 16);
		ctx->user_ip6[0] = w[0];
		ctx->user_ip6[1] = w[1];
		ctx->user_ip6[2] = w[2];
		ctx->user_ip6[3] = w[3];
	}
	ctx->user_port = (__u32)ntoh16(s->port);
	return 1;
}

/* Decides a sock_addr context against the outbound or the inbound rules: 1 lets it through. */
static __always_inline int net_decide(struct bpf_sock_addr *ctx, __u32 hook, bool v6, bool inbound)
{
	struct cordon_net_key key = {};
	struct cordon_ctx c;
	__u16 port = ntoh16((__u16)ctx->user_port);
	__u8 proto = net_proto_class(ctx->protocol);
	int steered;

	if (!cordon_enter(&c))
		return 1;
	net_ctx_addr(ctx, &key, v6);
	if (!inbound) {
		steered = dns_steer(ctx, &c, &key, port, proto, hook, v6);
		if (steered >= 0)
			return steered;
	}
	return !cordon_refused(net_decide_key(&c, &key, port, proto, inbound, hook));
}

/*
 * bind() of a UDP socket: it receives datagrams from anyone on that address and port, so the
 * inbound rules decide. TCP is decided at listen(), where it starts accepting connections, on
 * lsm; compat can decide listen() only at its exit, so there TCP binds are decided here too,
 * before anything happens, and only a listen() without bind is left to the exit hook.
 */
static __always_inline int net_decide_bind(struct bpf_sock_addr *ctx, bool v6)
{
	struct cordon_dns_config *cfg;
	struct cordon_ctx c;
	__u32 zero = 0;

	/* The DNS gateway's port (a live gateway's, or a stopped one's, where agents' DNS would
	 * still be sent) is never an agent's to bind, on any address or protocol: an agent that
	 * took it would answer the other agents' queries. Fails closed: EPERM, reported. */
	cfg = bpf_map_lookup_elem(&cordon_dns_config, &zero);
	if (cfg && cfg->port && ntoh16((__u16)ctx->user_port) == cfg->port && cordon_enter(&c)) {
		struct cordon_event *e = cordon_event_start(&c, CORDON_HOOK_BIND, CORDON_VERDICT_DENY, 0);

		if (e) {
			e->port = cfg->port;
			e->family = v6 ? 6 : 4;
			e->protocol = (__u8)ctx->protocol;
			bpf_ringbuf_submit(e, 0);
		}
		return 0;
	}
	if (ctx->type != SOCK_DGRAM && !(ctx->type == SOCK_STREAM && backend_id == CORDON_BACKEND_COMPAT))
		return 1;
	return net_decide(ctx, CORDON_HOOK_BIND, v6, true);
}

SEC("cgroup/connect4")
int net_guard_connect4(struct bpf_sock_addr *ctx)
{
	return net_decide(ctx, CORDON_HOOK_CONNECT4, false, false);
}

SEC("cgroup/connect6")
int net_guard_connect6(struct bpf_sock_addr *ctx)
{
	return net_decide(ctx, CORDON_HOOK_CONNECT6, true, false);
}

SEC("cgroup/sendmsg4")
int net_guard_sendmsg4(struct bpf_sock_addr *ctx)
{
	return net_decide(ctx, CORDON_HOOK_SENDMSG4, false, false);
}

SEC("cgroup/sendmsg6")
int net_guard_sendmsg6(struct bpf_sock_addr *ctx)
{
	return net_decide(ctx, CORDON_HOOK_SENDMSG6, true, false);
}

SEC("cgroup/recvmsg4")
int net_guard_recvmsg4(struct bpf_sock_addr *ctx)
{
	return dns_unsteer(ctx, false);
}

SEC("cgroup/recvmsg6")
int net_guard_recvmsg6(struct bpf_sock_addr *ctx)
{
	return dns_unsteer(ctx, true);
}

SEC("cgroup/getpeername4")
int net_guard_getpeername4(struct bpf_sock_addr *ctx)
{
	return dns_unsteer(ctx, false);
}

SEC("cgroup/getpeername6")
int net_guard_getpeername6(struct bpf_sock_addr *ctx)
{
	return dns_unsteer(ctx, true);
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
	return !cordon_refused(verdict);
}

SEC("cgroup/bind4")
int net_guard_bind4(struct bpf_sock_addr *ctx)
{
	return net_decide_bind(ctx, false);
}

SEC("cgroup/bind6")
int net_guard_bind6(struct bpf_sock_addr *ctx)
{
	return net_decide_bind(ctx, true);
}

SEC("lsm/socket_listen")
int BPF_PROG(net_guard_socket_listen, struct socket *sock, int backlog, int ret)
{
	struct cordon_ctx c;

	if (ret)
		return ret;
	if (!cordon_enter(&c))
		return 0;
	return cordon_refused(net_decide_listen(&c, BPF_CORE_READ(sock, sk))) ? -EPERM : 0;
}

#define AF_UNIX 1
#define AF_NETLINK 16
#define AF_PACKET 17

/*
 * lsm backend: sockets of address families other than inet and inet6 never reach
 * cgroup/sock_create. Unix and netlink sockets are ordinary work; a packet socket is decided by
 * network.raw_sockets, like a raw one (it sends frames that no connect or sendmsg hook sees);
 * every other family is denied (fail closed). The seccomp layer refuses the same families
 * before they get here; this keeps them refused for an agent without it.
 */
SEC("lsm/socket_create")
int BPF_PROG(net_guard_socket_create, int family, int type, int protocol, int kern, int ret)
{
	struct cordon_rule_hit hit = {};
	struct cordon_event *e;
	struct cordon_ctx c;
	__u8 verdict;

	if (ret || kern)
		return ret;
	if (family == AF_UNIX || family == AF_INET || family == AF_INET6 || family == AF_NETLINK)
		return 0;
	if (!cordon_enter(&c))
		return 0;
	hit.action = family == AF_PACKET && c.policy ? c.policy->raw_sockets : CORDON_ACTION_DENY;
	verdict = cordon_verdict(&c, &hit);
	cordon_apply(&c, verdict);
	if (cordon_should_report(&c, verdict)) {
		e = cordon_event_start(&c, CORDON_HOOK_SOCKET, verdict, 0);
		if (e) {
			e->family = 0; /* not inet: the address family is in port */
			e->port = (__u16)family;
			e->protocol = (__u8)protocol;
			bpf_ringbuf_submit(e, 0);
		}
	}
	return cordon_refused(verdict) ? -EPERM : 0;
}
