/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * tamper_guard (lsm backend only): keeps agents from switching their guard off. Every hook here
 * denies with EPERM for agent processes, in audit mode too, and reports CORDON_HOOK_TAMPER:
 *   lsm/bpf                    any bpf() call (loading, detaching, reading or writing maps)
 *   lsm/ptrace_access_check    ptrace of a process outside the agent's own cgroup subtree
 *   lsm/task_kill              signals to cordon's own processes (cordon_protected)
 *   lsm/file_open              opening a cgroupfs or bpffs file for writing (escaping the agent
 *                              cgroup, freezing or killing others, pinning objects)
 *   lsm/sb_mount, lsm/move_mount   mounts, which could lay an allowed path over a denied one
 *   lsm/sb_pivotroot           a new root would shorten every path the rules match against
 *   lsm/userns_create          a user namespace, in which an unprivileged agent could make
 *                              mounts that lay an allowed name over a denied tree
 * The compat backend has no such hooks: there agents must run as an unprivileged user (--user).
 *
 * Missing entries: non-agents are never affected.
 */
#include "cordon.bpf.h"

#define FMODE_WRITE 0x2
#define CGROUP_SUPER_MAGIC 0x27e0eb
#define CGROUP2_SUPER_MAGIC 0x63677270
#define BPF_FS_MAGIC 0xcafe4a11

/* -EPERM (reported) when the current task is an agent; 0 for everyone else. */
static __always_inline int deny_if_agent(void)
{
	struct cordon_ctx c;

	if (!cordon_enter(&c))
		return 0;
	cordon_deny_tamper(&c);
	return -EPERM;
}

SEC("lsm/bpf")
int BPF_PROG(tamper_guard_bpf, int cmd, union bpf_attr *attr, unsigned int size, int ret)
{
	if (ret)
		return ret;
	return deny_if_agent();
}

/* The id of a task's ancestor cgroup at agent_level (its agent), or 0. */
static __always_inline __u64 task_agent_cgroup(struct task_struct *t)
{
	struct cgroup *cgrp = BPF_CORE_READ(t, cgroups, dfl_cgrp);
	struct cgroup *anc = NULL;

	if (!cgrp || BPF_CORE_READ(cgrp, level) < (int)agent_level)
		return 0;
	bpf_probe_read_kernel(&anc, sizeof(anc), &cgrp->ancestors[agent_level & 0xff]);
	return anc ? BPF_CORE_READ(anc, kn, id) : 0;
}

SEC("lsm/ptrace_access_check")
int BPF_PROG(tamper_guard_ptrace, struct task_struct *child, unsigned int mode, int ret)
{
	struct cordon_ctx c;

	if (ret)
		return ret;
	if (!cordon_enter(&c))
		return 0;
	if (task_agent_cgroup(child) == c.cgid)
		return 0; /* debugging its own processes is the agent's business */
	cordon_deny_tamper(&c);
	return -EPERM;
}

SEC("lsm/task_kill")
int BPF_PROG(tamper_guard_task_kill, struct task_struct *p, struct kernel_siginfo *info, int sig,
	     const struct cred *cred, int ret)
{
	__u32 tgid;

	if (ret)
		return ret;
	tgid = BPF_CORE_READ(p, tgid);
	if (!bpf_map_lookup_elem(&cordon_protected, &tgid))
		return 0;
	return deny_if_agent();
}

SEC("lsm/file_open")
int BPF_PROG(tamper_guard_file_open, struct file *file, int ret)
{
	unsigned long magic;

	if (ret)
		return ret;
	if (!(BPF_CORE_READ(file, f_mode) & FMODE_WRITE))
		return 0;
	magic = BPF_CORE_READ(file, f_path.dentry, d_sb, s_magic);
	if (magic != CGROUP2_SUPER_MAGIC && magic != CGROUP_SUPER_MAGIC && magic != BPF_FS_MAGIC)
		return 0;
	return deny_if_agent();
}

SEC("lsm/sb_mount")
int BPF_PROG(tamper_guard_sb_mount, const char *dev_name, const struct path *path,
	     const char *type, unsigned long flags, void *data, int ret)
{
	if (ret)
		return ret;
	return deny_if_agent();
}

SEC("lsm/move_mount")
int BPF_PROG(tamper_guard_move_mount, const struct path *from_path, const struct path *to_path,
	     int ret)
{
	if (ret)
		return ret;
	return deny_if_agent();
}

SEC("lsm/sb_pivotroot")
int BPF_PROG(tamper_guard_sb_pivotroot, const struct path *old_path, const struct path *new_path,
	     int ret)
{
	if (ret)
		return ret;
	return deny_if_agent();
}

SEC("lsm/userns_create")
int BPF_PROG(tamper_guard_userns_create, const struct cred *cred, int ret)
{
	if (ret)
		return ret;
	return deny_if_agent();
}
