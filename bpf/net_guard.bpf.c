/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * net_guard: decides outbound connections and UDP datagrams by agents against the network rules,
 * and where agents may listen or bind against the inbound rules.
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

/* Decides a sock_addr context against the outbound or the inbound rules: 1 lets it through. */
static __always_inline int net_decide(struct bpf_sock_addr *ctx, __u32 hook, bool v6, bool inbound)
{
	struct cordon_net_key key = {};
	struct cordon_ctx c;

	if (!cordon_enter(&c))
		return 1;
	net_ctx_addr(ctx, &key, v6);
	return !cordon_refused(net_decide_key(&c, &key, ntoh16((__u16)ctx->user_port),
					      net_proto_class(ctx->protocol), inbound, hook));
}

/*
 * bind() of a UDP socket: it receives datagrams from anyone on that address and port, so the
 * inbound rules decide. TCP is decided at listen(), where it starts accepting connections, on
 * lsm; compat can decide listen() only at its exit, so there TCP binds are decided here too,
 * before anything happens, and only a listen() without bind is left to the exit hook.
 */
static __always_inline int net_decide_bind(struct bpf_sock_addr *ctx, bool v6)
{
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
