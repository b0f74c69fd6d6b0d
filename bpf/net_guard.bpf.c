/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * net_guard: decides outbound connections and UDP datagrams by agents.
 *
 * Hooks (cgroup sock_addr programs, attached to <cgroup2 root>/cordon so that only agent
 * processes ever run them; the same on both backends):
 *   cgroup/connect4, cgroup/connect6   connect() fails with EPERM on denial.
 *   cgroup/sendmsg4, cgroup/sendmsg6   sendto()/sendmsg() on UDP fail with EPERM on denial.
 * Returning 0 from a sock_addr program makes the kernel refuse with EPERM; 1 lets it through.
 *
 * Missing entries: a task whose cgroup is not an agent is allowed (see cordon.bpf.h).
 */
#include "cordon.bpf.h"

static __always_inline int net_verdict(__u32 hook)
{
	return cordon_check(hook) == CORDON_VERDICT_ALLOW ? 1 : 0;
}

SEC("cgroup/connect4")
int net_guard_connect4(struct bpf_sock_addr *ctx)
{
	return net_verdict(CORDON_HOOK_CONNECT4);
}

SEC("cgroup/connect6")
int net_guard_connect6(struct bpf_sock_addr *ctx)
{
	return net_verdict(CORDON_HOOK_CONNECT6);
}

SEC("cgroup/sendmsg4")
int net_guard_sendmsg4(struct bpf_sock_addr *ctx)
{
	return net_verdict(CORDON_HOOK_SENDMSG4);
}

SEC("cgroup/sendmsg6")
int net_guard_sendmsg6(struct bpf_sock_addr *ctx)
{
	return net_verdict(CORDON_HOOK_SENDMSG6);
}
