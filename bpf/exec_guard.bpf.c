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
 * Missing entries: a task whose cgroup is not an agent is allowed (see decide.bpf.h).
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

/* The exec trace's resolved file: the path of bprm->file as path rules see it (path.bpf.h), its
 * inode and device. "" when no scratch slot is free or the path is unresolvable. */
static __always_inline void cordon_exec_file(struct cordon_exec_event *e, struct linux_binprm *bprm)
{
	struct file *f = BPF_CORE_READ(bprm, file);
	struct cordon_scratch *s;
	struct inode *inode;

	e->file[0] = 0;
	e->ino = 0;
	e->dev = 0;
	e->_pad1 = 0;
	if (!f)
		return;
	inode = BPF_CORE_READ(f, f_inode);
	e->ino = BPF_CORE_READ(inode, i_ino);
	e->dev = BPF_CORE_READ(inode, i_sb, s_dev);
	s = cordon_scratch_get();
	if (!s)
		return;
	if (cordon_resolve(s, BPF_CORE_READ(f, f_path.dentry), BPF_CORE_READ(f, f_path.mnt)) == 0 &&
	    bpf_probe_read_kernel_str(e->file, CORDON_PATH_KEY_BYTES, s->key.path) < 0)
		e->file[0] = 0;
	cordon_scratch_put(s);
}

/*
 * exec_trace: with trace: exec (or all), every exec an agent's process completes is recorded for
 * process lineage: pid, parent, uid, the file name the exec was given, the file that ran
 * (resolved from the kernel's objects, with its inode and device: a name given through a symlink,
 * a relative path or /proc/self/fd arrives as the real file) and the first CORDON_EVENT_ARGV
 * bytes of its argument strings. It runs after the exec succeeded, in the new program's context,
 * whose memory holds the new arguments. Loaded on every backend; it decides nothing. A record
 * the agent's share of the ring buffer cannot take is lost (counted as a lost event), never the
 * exec.
 */
SEC("tp_btf/sched_process_exec")
int BPF_PROG(exec_trace, struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
{
	struct cordon_exec_event *e;
	struct cordon_ctx c;
	unsigned long start, end;
	__u32 len;

	if (!cordon_enter(&c) || !c.policy || !c.policy->trace_exec)
		return 0;
	e = cordon_event_reserve(&c, sizeof(*e), false);
	if (!e)
		return 0;
	cordon_header_fill(&e->h, &c, CORDON_HOOK_PROCESS, CORDON_VERDICT_ALLOW, 0, sizeof(*e));
	if (bpf_probe_read_kernel_str(e->path, sizeof(e->path), BPF_CORE_READ(bprm, filename)) < 0)
		e->path[0] = 0;
	cordon_exec_file(e, bprm);
	start = BPF_CORE_READ(p, mm, arg_start);
	end = BPF_CORE_READ(p, mm, arg_end);
	len = end > start ? end - start : 0;
	e->argv_full = len;
	if (len > CORDON_EVENT_ARGV)
		len = CORDON_EVENT_ARGV;
	barrier_var(len);
	if (len > CORDON_EVENT_ARGV || bpf_probe_read_user(e->argv, len, (void *)start))
		len = 0;
	e->argv_len = len;
	bpf_ringbuf_submit(e, 0);
	return 0;
}

/*
 * task_guard: a process bound to a task (cordon task begin --pid) hands the binding to every
 * process it forks, before the child runs its first instruction, and the binding goes when the
 * process's last thread exits. Loaded on every backend (tracepoints, no LSM needed).
 */
SEC("tp_btf/sched_process_fork")
int BPF_PROG(task_guard_fork, struct task_struct *parent, struct task_struct *child)
{
	struct cordon_proc_task *pt, v = {};
	struct cordon_agent_live *live = NULL;
	struct cordon_ctx c;
	__u32 ptgid = parent->tgid, ctgid = child->tgid;
	__u64 start;

	if (ptgid == ctgid)
		return 0; /* a thread: its process's binding covers it */
	pt = bpf_map_lookup_elem(&cordon_proc_tasks, &ptgid);
	if (!pt)
		return 0;
	start = BPF_CORE_READ(parent, group_leader, start_time);
	if (pt->start_ns && pt->start_ns != start)
		return 0; /* a stale entry of a process that had this pid before */
	v.task_id = pt->task_id;
	v.start_ns = child->start_time;
	v.forked = 1;
	if (cordon_enter(&c))
		live = c.live;
	/*
	 * Fails closed: when the agent has its share of the table (no agent can fill the host's
	 * table for the others) or the table is full, the child cannot carry its task. The forking
	 * process is killed and its agent marked killed (cordon empties the cgroup), so no process
	 * of a task runs outside it.
	 */
	if (live && __sync_add_and_fetch(&live->task_procs, 1) > CORDON_MAX_TASK_PROCS_PER_AGENT)
		goto full;
	if (bpf_map_update_elem(&cordon_proc_tasks, &ctgid, &v, BPF_ANY))
		goto full;
	return 0;
full:
	cordon_count(CORDON_CNT_TASK_FULL);
	if (live)
		__sync_fetch_and_sub(&live->task_procs, 1);
	if (live)
		cordon_kill_agent(&c);
	else
		bpf_send_signal(SIGKILL);
	return 0;
}

SEC("tp_btf/sched_process_exit")
int BPF_PROG(task_guard_exit, struct task_struct *p)
{
	struct cordon_agent_live *live;
	struct cordon_proc_task *pt;
	__u32 tgid = p->tgid, forked;
	__u64 cgid, cgroup;
	__u32 level;

	/* signal->live is the count of live threads, already lowered for this one. */
	if (BPF_CORE_READ(p, signal, live.counter) != 0)
		return 0;
	pt = bpf_map_lookup_elem(&cordon_proc_tasks, &tgid);
	if (!pt)
		return 0;
	forked = pt->forked;
	if (bpf_map_delete_elem(&cordon_proc_tasks, &tgid) || !forked)
		return 0;
	/* The process still belongs to its cgroup here (cgroup_exit comes later in do_exit). */
	if (!cordon_current_agent(&cgid, &level, &cgroup))
		return 0;
	live = bpf_map_lookup_elem(&cordon_agent_live, &cgid);
	if (live)
		__sync_fetch_and_sub(&live->task_procs, 1);
	return 0;
}
