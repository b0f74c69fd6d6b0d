/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * probe: the smallest program of each kind cordon relies on, for `cordon doctor`. The controller
 * loads one program at a time (all others have autoload off) and attaches it, because a kernel
 * can advertise a feature and still refuse it: this host lists `bpf` among its LSMs yet refuses
 * every trampoline-based program with EPERM. No program here changes any decision: each returns
 * the value that lets everything through. Map types (the ring buffer) are probed by libbpf.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

SEC("lsm/file_open")
int BPF_PROG(probe_lsm_file_open, struct file *file, int ret)
{
	return ret; /* pass through whatever earlier LSMs decided */
}

SEC("fmod_ret/security_file_open")
int BPF_PROG(probe_fmod_ret_file_open, struct file *file, int ret)
{
	return ret; /* 0: the function runs as if nothing were attached */
}

SEC("tp_btf/sched_process_exec")
int BPF_PROG(probe_tp_btf_exec, struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
{
	return 0;
}

SEC("cgroup/connect4")
int probe_sock_addr_connect4(struct bpf_sock_addr *ctx)
{
	return 1; /* allow */
}
