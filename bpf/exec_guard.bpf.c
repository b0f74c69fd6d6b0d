/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * exec_guard: decides program execution by agents against the exec rules, on the resolved path
 * of the file being executed (bprm->file), so a symlink or a relative name changes nothing.
 *
 * Hooks:
 *   lsm/bprm_check_security   (lsm backend)    a denial makes execve() fail with EPERM. It runs
 *                             for the script and again for its interpreter.
 *   tp_btf/sched_process_exec (compat backend) the new image is loaded but has not run; a denial
 *                             sends SIGKILL, which is delivered before its first instruction. It
 *                             sees the final file (a script's interpreter, not the script).
 * The controller autoloads only the program of the chosen backend.
 *
 * Missing entries: a task whose cgroup is not an agent is allowed (see cordon.bpf.h).
 */
#include "path.bpf.h"

SEC("lsm/bprm_check_security")
int BPF_PROG(exec_guard_bprm_check, struct linux_binprm *bprm, int ret)
{
	struct cordon_ctx c;
	struct file *file;
	__u8 v;

	if (ret)
		return ret; /* an earlier LSM already denied */
	if (!cordon_enter(&c))
		return 0;
	file = BPF_CORE_READ(bprm, file);
	v = cordon_check_path(&c, CORDON_HOOK_EXEC, BPF_CORE_READ(file, f_path.dentry),
			      BPF_CORE_READ(file, f_path.mnt), 0);
	return cordon_refused(v) ? -EPERM : 0;
}

SEC("tp_btf/sched_process_exec")
int BPF_PROG(exec_guard_sched_exec, struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
{
	struct cordon_ctx c;
	struct file *file;
	__u8 v;

	if (!cordon_enter(&c))
		return 0;
	file = BPF_CORE_READ(bprm, file);
	v = cordon_check_path(&c, CORDON_HOOK_EXEC, BPF_CORE_READ(file, f_path.dentry),
			      BPF_CORE_READ(file, f_path.mnt), 0);
	if (v == CORDON_VERDICT_DENY || v == CORDON_VERDICT_FREEZE)
		bpf_send_signal(SIGKILL); /* kill verdicts already sent it */
	return 0;
}
