/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Benchmark only (cordon_bench tracepoints; never loaded by cordon): the two ways a kernel
 * without trampolines can see the end of the open-family, connect and listen syscalls, each
 * doing what the compat backend's first stage does for a process in no agent (one config
 * lookup), so that their host-wide cost can be compared in one run:
 *   tp_btf/sys_exit                         one program on every syscall exit; it filters on
 *                                           the syscall number (what compat uses today)
 *   tracepoint/syscalls/sys_exit_<call>     one program per call, through tracefs; the kernel
 *                                           filters on the number before calling it
 */
#include "vmlinux.h"
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} cmp_config SEC(".maps");

static __always_inline int first_stage(void)
{
	__u32 zero = 0;
	__u64 *levels = bpf_map_lookup_elem(&cmp_config, &zero);

	/* No agent levels in use: a process in no agent stops here, as in compat. */
	if (levels && *levels)
		return (int)bpf_get_current_cgroup_id();
	return 0;
}

SEC("tp_btf/sys_exit")
int BPF_PROG(cmp_raw_sys_exit, struct pt_regs *regs, long ret)
{
	long nr;

	if (ret < 0)
		return 0;
	nr = BPF_CORE_READ(regs, orig_ax);
	if (nr != 257 && nr != 2 && nr != 85 && nr != 437 && nr != 304 && nr != 42 && nr != 50)
		return 0;
	return first_stage();
}

#define PER_CALL(call)                                                                             \
	SEC("tracepoint/syscalls/sys_exit_" #call)                                                 \
	int cmp_tp_##call(struct trace_event_raw_sys_exit *ctx)                                    \
	{                                                                                          \
		if (ctx->ret < 0)                                                                  \
			return 0;                                                                  \
		return first_stage();                                                              \
	}

PER_CALL(open)
PER_CALL(openat)
PER_CALL(openat2)
PER_CALL(creat)
PER_CALL(open_by_handle_at)
PER_CALL(connect)
PER_CALL(listen)
