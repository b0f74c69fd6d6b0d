/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * exec_guard: decides program execution by agents.
 *
 * Hooks:
 *   lsm/bprm_check_security   (lsm backend)    a denial makes execve() fail with EPERM.
 *   tp_btf/sched_process_exec (compat backend) the new image is loaded but has not run; a denial
 *                             sends SIGKILL, which is delivered before its first instruction.
 * The controller autoloads only the program of the chosen backend.
 *
 * Missing entries: a task whose cgroup is not an agent is allowed (see cordon.bpf.h).
 */
#include "cordon.bpf.h"

SEC("lsm/bprm_check_security")
int BPF_PROG(exec_guard_bprm_check, struct linux_binprm *bprm, int ret)
{
	if (ret)
		return ret; /* an earlier LSM already denied */
	if (cordon_check(CORDON_HOOK_EXEC) != CORDON_VERDICT_ALLOW)
		return -EPERM;
	return 0;
}

SEC("tp_btf/sched_process_exec")
int BPF_PROG(exec_guard_sched_exec, struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
{
	if (cordon_check(CORDON_HOOK_EXEC) != CORDON_VERDICT_ALLOW)
		bpf_send_signal(SIGKILL);
	return 0;
}
