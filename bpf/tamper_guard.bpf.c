/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * tamper_guard (lsm backend only): keeps agents, root agents included, from switching their guard
 * off or reaching around it through the kernel itself. Every hook here denies with EPERM for
 * agent processes, in audit mode too, whatever the policy says, and reports CORDON_HOOK_TAMPER
 * with what was attempted (docs/enforcement.md, "What a root agent can and cannot do"):
 *
 *   lsm/bpf                     any bpf() call (loading, detaching, reading or writing maps)
 *   lsm/ptrace_access_check     ptrace, /proc/PID/mem, process_vm_* of a process outside the
 *                               agent's own cgroup subtree
 *   lsm/task_kill               signals to cordon's own processes (cordon_protected)
 *   lsm/file_send_sigiotask     SIGIO/SIGURG (any signal chosen with F_SETSIG) to cordon's own
 *                               processes, whoever triggers it: that signal passes no task_kill
 *   lsm/task_setnice, task_setioprio, task_setscheduler, task_movememory
 *                               changing how a process outside the agent is scheduled or where
 *                               its memory lives (stalling the guard)
 *   lsm/task_prlimit            changing another process's resource limits (RLIMIT_CPU ends a
 *                               process with SIGKILL, again past task_kill)
 *   lsm/task_alloc              clone3(CLONE_INTO_CGROUP): a child born outside the agent
 *   lsm/capable                 a capability of the policy's refused_caps, checked against the
 *                               initial user namespace (the launch-time drop list, enforced
 *                               again for agents cordon did not start)
 *   lsm/kernel_read_file, lsm/kernel_load_data, lsm/kernel_module_request
 *                               loading modules, firmware, kexec images or policies, and the
 *                               module autoload that runs kernel.modprobe as root
 *   lsm/file_open               a write-open of a kernel knob: procfs (except the agent's own
 *                               processes' entries), sysfs, debugfs, tracefs, securityfs,
 *                               configfs, cgroupfs, bpffs, binfmt_misc, pstore, efivarfs, ...;
 *                               any open of a block device or of a character device other than
 *                               null, zero, full, random, urandom, serial lines and
 *                               pseudo-terminals
 *   lsm/path_mknod, path_mkdir, path_symlink, path_link, path_unlink, path_rmdir, path_rename,
 *   path_chmod, path_chown, path_truncate   the same kernel filesystems' names and modes, and
 *                               names in devtmpfs (the host's /dev)
 *   lsm/file_lock               locks and leases on kernel files (a lease on cgroup.kill
 *                               stalls whoever opens it next)
 *   lsm/file_ioctl              terminal ioctls that inject input or drive consoles
 *   lsm/key_alloc, lsm/key_permission   kernel keyrings (shared with processes outside the
 *                               agent; request_key(2) runs /sbin/request-key as root)
 *   lsm/sb_mount, lsm/move_mount   mounts, which could lay an allowed path over a denied one
 *   lsm/sb_pivotroot            a new root would shorten every path the rules match against
 *   lsm/userns_create           a user namespace, in which an unprivileged agent could make
 *                               mounts that lay an allowed name over a denied tree
 *   lsm/perf_event_open         perf events (kernel addresses, other processes' samples),
 *                               unless the policy reopens them (hardening.allow: perf): the
 *                               seccomp layer's refusal, for agents that never passed
 *                               through `cordon run` (attached ones)
 * The compat backend has no such hooks: there agents must run as an unprivileged user (--user),
 * and the launch-time capability drop and seccomp layer are the only walls.
 *
 * Missing entries: non-agents are never affected, except that no SIGIO ever reaches a protected
 * process. An agent whose policy is missing is refused every capability (fail closed).
 */
#include "path.bpf.h"

#define FMODE_WRITE 0x2
#define S_IFMT 00170000
#define S_IFBLK 0060000
#define S_IFCHR 0020000
#define CAP_OPT_NOAUDIT (1 << 1)
#define CLONE_INTO_CGROUP 0x200000000ULL
#define LSM_PRLIMIT_WRITE 2

#define PROC_SUPER_MAGIC 0x9fa0

/*
 * Filesystems whose files are the kernel's own knobs and objects. An agent reads them (sysfs,
 * procfs) but never writes, creates, removes or renames anything in them; procfs entries of the
 * agent's own processes are the one exception (proc_entry_of_agent).
 */
static __always_inline bool kernel_object_fs(unsigned long magic)
{
	switch (magic) {
	case PROC_SUPER_MAGIC:
	case 0x62656572: /* sysfs */
	case 0x27e0eb:   /* cgroup v1 */
	case 0x63677270: /* cgroup v2 */
	case 0xcafe4a11: /* bpffs */
	case 0x64626720: /* debugfs */
	case 0x74726163: /* tracefs */
	case 0x73636673: /* securityfs */
	case 0x62656570: /* configfs */
	case 0x42494e4d: /* binfmt_misc: an interpreter registered there runs for every exec */
	case 0x6165676c: /* pstore */
	case 0xde5e81e4: /* efivarfs */
	case 0xf97cff8c: /* selinuxfs */
	case 0x43415d53: /* smackfs */
	case 0x65735543: /* fusectl */
	case 0xabba1974: /* xenfs: hypercalls */
	case 0x07655821: /* resctrl: moving tasks between resource groups */
	case 0x6e667364: /* nfsd */
	case 0x67596969: /* rpc_pipefs: answers to kernel upcalls */
		return true;
	}
	return false;
}

/*
 * Character devices an agent may open: null, zero, full, random, urandom (1:3,5,7,8,9), serial
 * lines (4:64 and up), /dev/tty and /dev/ptmx (5:0, 5:2) and pseudo-terminals (136-143). Every
 * other device is refused: raw memory and ports, virtual consoles (an agent that opens one as
 * its controlling terminal may switch the screen to a fake login), the console, input
 * injection, watchdogs; block devices always are: reading a disk reads every file around the
 * rules.
 */
static __always_inline bool device_allowed(__u32 rdev)
{
	__u32 major = rdev >> 20, minor = rdev & 0xfffff;

	if (major == 1)
		return minor == 3 || minor == 5 || minor == 7 || minor == 8 || minor == 9;
	if (major == 4)
		return minor >= 64;
	if (major == 5)
		return minor == 0 || minor == 2;
	return major >= 136 && major <= 143;
}

/* devtmpfs, the kernel's /dev: its names are what every process on the host opens. */
static __always_inline bool devtmpfs(struct super_block *sb)
{
	char name[9] = {};

	bpf_probe_read_kernel_str(name, sizeof(name), BPF_CORE_READ(sb, s_type, name));
	return name[0] == 'd' && name[1] == 'e' && name[2] == 'v' && name[3] == 't' &&
	       name[4] == 'm' && name[5] == 'p' && name[6] == 'f' && name[7] == 's' && !name[8];
}

/* -EPERM (reported as `what`) when the current task is an agent; 0 for everyone else. */
#define deny_if_agent(what)                                                                    \
	({                                                                                     \
		struct cordon_ctx __c;                                                         \
		int __r = 0;                                                                   \
		if (cordon_enter(&__c)) {                                                      \
			(void)cordon_deny_tamper(&__c, what);                                  \
			__r = -EPERM;                                                          \
		}                                                                              \
		__r;                                                                           \
	})

SEC("lsm/bpf")
int BPF_PROG(tamper_guard_bpf, int cmd, union bpf_attr *attr, unsigned int size, int ret)
{
	if (ret)
		return ret;
	return deny_if_agent("(bpf)");
}

/* The id of a task's ancestor cgroup at `level` (its agent's, when it is in one), or 0. */
static __always_inline __u64 task_agent_cgroup(struct task_struct *t, __u32 level)
{
	struct cgroup *cgrp = BPF_CORE_READ(t, cgroups, dfl_cgrp);
	struct cgroup *anc = NULL;

	if (!cgrp || BPF_CORE_READ(cgrp, level) < (int)level)
		return 0;
	bpf_probe_read_kernel(&anc, sizeof(anc), &cgrp->ancestors[level & (CORDON_MAX_LEVEL - 1)]);
	return anc ? BPF_CORE_READ(anc, kn, id) : 0;
}

/* -EPERM (reported as `what`) when an agent acts on a task outside its own cgroup subtree. */
#define deny_outside_agent(task, what)                                                         \
	({                                                                                     \
		struct cordon_ctx __c;                                                         \
		int __r = 0;                                                                   \
		if (cordon_enter(&__c) && task_agent_cgroup(task, __c.level) != __c.cgroup) {               \
			(void)cordon_deny_tamper(&__c, what);                                  \
			__r = -EPERM;                                                          \
		}                                                                              \
		__r;                                                                           \
	})

#define PTRACE_MODE_NOAUDIT 0x04

/* The task process `t` of agent cgid is in (as cordon_task_of, for another process than the
 * current one): its bound task if live and the binding is its (same start time; 0: bound by
 * the controller, not yet claimed), else the agent's task if live, else 0. */
static __always_inline __u64 task_of_process(struct task_struct *t, __u64 cgid, __u64 agent_task)
{
	__u32 tgid = BPF_CORE_READ(t, tgid);
	struct cordon_proc_task *pt = bpf_map_lookup_elem(&cordon_proc_tasks, &tgid);

	if (pt && (pt->start_ns == 0 || pt->start_ns == BPF_CORE_READ(t, group_leader, start_time)) &&
	    cordon_task_live(cgid, pt->task_id))
		return pt->task_id;
	return cordon_task_live(cgid, agent_task) ? agent_task : 0;
}

/*
 * The wall between an agent's tasks (tasks.isolation: strict): a process may not reach into one
 * of another task, nor one outside every task into one in a task, or back. ptrace attach,
 * process_vm_readv/writev, /proc/PID/mem, pidfd_getfd and the /proc files a ptrace check guards
 * all ask this hook. Checks with PTRACE_MODE_NOAUDIT (ps reading /proc/PID/stat) are refused
 * without a record. Fails closed: a task that cannot be told apart is not its own.
 */
static __always_inline int task_wall(struct cordon_ctx *c, struct task_struct *child,
				     unsigned int mode)
{
	struct cordon_event *e;
	__u64 other;
	__u32 tgid;

	if (!c->policy || c->policy->tasks_open)
		return 0;
	if (!c->agent->task_id && !(c->agent->flags & CORDON_AGENT_F_PROC_TASKS))
		return 0; /* no task at all: every process is in the same (none) */
	other = task_of_process(child, c->cgid, c->agent->task_id);
	if (other == c->task_id)
		return 0;
	if (mode & PTRACE_MODE_NOAUDIT)
		return -EPERM; /* asked in passing (ps): refused, and neither counted nor recorded */
	cordon_apply(c, CORDON_VERDICT_DENY);
	e = cordon_event_start(c, CORDON_HOOK_TASK_CROSS, CORDON_VERDICT_DENY, 0);
	if (e) {
		tgid = BPF_CORE_READ(child, tgid);
		__builtin_memcpy(e->addr, &other, sizeof(other));
		__builtin_memcpy(e->addr + 8, &tgid, sizeof(tgid));
		e->port = (__u16)mode;
		__builtin_memcpy(e->path, "(another task's process)", sizeof("(another task's process)"));
		bpf_ringbuf_submit(e, 0);
	}
	return -EPERM;
}

SEC("lsm/ptrace_access_check")
int BPF_PROG(tamper_guard_ptrace, struct task_struct *child, unsigned int mode, int ret)
{
	struct cordon_ctx c;

	if (ret)
		return ret;
	if (!cordon_enter(&c))
		return 0;
	/*
	 * Debugging its own processes is the agent's business (within one task, unless the policy
	 * opens the tasks to each other), unless it is killed or frozen: then no process may reach
	 * into a sibling before the cgroup is emptied or frozen.
	 */
	if (!c.stopped && task_agent_cgroup(child, c.level) == c.cgroup)
		return task_wall(&c, child, mode);
	(void)cordon_deny_tamper(&c, "(ptrace)");
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
	return deny_if_agent("(signal to cordon)");
}

/*
 * fcntl(F_SETOWN) + F_SETSIG can turn I/O readiness into any signal for any process. The signal
 * is sent from whatever context makes the descriptor ready (another process writing to a pipe, a
 * softirq receiving a packet), so the decision cannot rest on who the current task is: cordon's
 * processes never use SIGIO, and none reaches them (fails closed for everyone).
 */
SEC("lsm/file_send_sigiotask")
int BPF_PROG(tamper_guard_sigio, struct task_struct *tsk, struct fown_struct *fown, int sig,
	     int ret)
{
	__u32 tgid;

	if (ret)
		return ret;
	tgid = BPF_CORE_READ(tsk, tgid);
	if (!bpf_map_lookup_elem(&cordon_protected, &tgid))
		return 0;
	(void)deny_if_agent("(sigio to cordon)");
	return -EPERM;
}

SEC("lsm/task_setnice")
int BPF_PROG(tamper_guard_setnice, struct task_struct *p, int nice, int ret)
{
	if (ret)
		return ret;
	return deny_outside_agent(p, "(nice of another process)");
}

SEC("lsm/task_setioprio")
int BPF_PROG(tamper_guard_setioprio, struct task_struct *p, int ioprio, int ret)
{
	if (ret)
		return ret;
	return deny_outside_agent(p, "(ioprio of another process)");
}

SEC("lsm/task_setscheduler")
int BPF_PROG(tamper_guard_setscheduler, struct task_struct *p, int ret)
{
	if (ret)
		return ret;
	return deny_outside_agent(p, "(scheduling of another process)");
}

SEC("lsm/task_movememory")
int BPF_PROG(tamper_guard_movememory, struct task_struct *p, int ret)
{
	if (ret)
		return ret;
	return deny_outside_agent(p, "(memory of another process)");
}

/*
 * The hook names the target by its credentials only, so an agent may change no other process's
 * limits, its own children's included (fails closed); reading them, and setting its own, is
 * allowed (the kernel does not call this hook for a process's own limits).
 */
SEC("lsm/task_prlimit")
int BPF_PROG(tamper_guard_prlimit, const struct cred *cred, const struct cred *tcred,
	     unsigned int flags, int ret)
{
	if (ret)
		return ret;
	if (!(flags & LSM_PRLIMIT_WRITE))
		return 0;
	return deny_if_agent("(limits of another process)");
}

SEC("lsm/task_alloc")
int BPF_PROG(tamper_guard_task_alloc, struct task_struct *task, unsigned long clone_flags,
	     int ret)
{
	if (ret)
		return ret;
	if (!(clone_flags & CLONE_INTO_CGROUP))
		return 0;
	return deny_if_agent("(clone into another cgroup)");
}

/*
 * A capability checked against a user namespace the agent made itself gives power over that
 * namespace only; against the initial one (level 0) it is power over the host. Checks the
 * kernel makes only to choose a behaviour (CAP_OPT_NOAUDIT) are refused without a report or a
 * penalty, so that probing kernels do not flood the log or lower a root agent's score.
 */
SEC("lsm/capable")
int BPF_PROG(tamper_guard_capable, const struct cred *cred, struct user_namespace *ns, int cap,
	     unsigned int opts, int ret)
{
	struct cordon_event *e;
	struct cordon_ctx c;
	__u64 refused;

	if (ret)
		return ret;
	if (cap < 0 || cap > 63 || BPF_CORE_READ(ns, level) != 0)
		return 0;
	if (!cordon_enter(&c))
		return 0;
	refused = c.policy ? c.policy->refused_caps : ~0ULL; /* missing policy: fail closed */
	if (!((refused >> cap) & 1))
		return 0;
	if (opts & CAP_OPT_NOAUDIT) {
		cordon_count(CORDON_VERDICT_DENY);
		return -EPERM;
	}
	e = cordon_tamper_start(&c);
	if (e) {
		__builtin_memcpy(e->path, "(capability NN)", sizeof("(capability NN)"));
		e->path[12] = '0' + (__u32)cap / 10;
		e->path[13] = '0' + (__u32)cap % 10;
		bpf_ringbuf_submit(e, 0);
	}
	return -EPERM;
}

SEC("lsm/kernel_read_file")
int BPF_PROG(tamper_guard_kernel_read_file, struct file *file, int id, bool contents, int ret)
{
	if (ret)
		return ret;
	return deny_if_agent("(kernel file load)");
}

SEC("lsm/kernel_load_data")
int BPF_PROG(tamper_guard_kernel_load_data, int id, bool contents, int ret)
{
	if (ret)
		return ret;
	return deny_if_agent("(kernel data load)");
}

SEC("lsm/kernel_module_request")
int BPF_PROG(tamper_guard_module_request, char *kmod_name, int ret)
{
	if (ret)
		return ret;
	return deny_if_agent("(module autoload)");
}

/*
 * Whether a procfs inode is an entry of a process of the agent (/proc/self/..., /proc/PID/...
 * of its own processes): the task of the entry's pid, looked up the way the kernel's
 * pid_task() does. Kernel-wide entries (/proc/sys, /proc/sysrq-trigger, ...) have no pid.
 */
static __always_inline bool proc_entry_of_agent(const struct cordon_ctx *c, struct inode *inode)
{
	struct proc_inode *pi = (void *)inode - bpf_core_field_offset(struct proc_inode, vfs_inode);
	struct pid *pid = BPF_CORE_READ(pi, pid);
	struct hlist_node *first;

	if (!pid)
		return false;
	first = BPF_CORE_READ(pid, tasks[PIDTYPE_PID].first);
	if (!first)
		return false; /* the process is gone */
	return task_agent_cgroup((void *)first - bpf_core_field_offset(struct task_struct,
								      pid_links),
				 c->level) == c->cgroup;
}

/* Whether an inode is one of cordon's own state files or directories (cordon_state_inodes). */
static __always_inline bool state_inode(struct inode *inode)
{
	struct cordon_inode_key k = {};

	if (!inode)
		return false;
	k.ino = BPF_CORE_READ(inode, i_ino);
	k.dev = BPF_CORE_READ(inode, i_sb, s_dev);
	return bpf_map_lookup_elem(&cordon_state_inodes, &k) != NULL;
}

/* cordon's state, or a name directly in one of its state directories (a negative dentry too). */
static __always_inline bool state_dentry(struct dentry *dentry)
{
	return state_inode(BPF_CORE_READ(dentry, d_inode)) ||
	       state_inode(BPF_CORE_READ(dentry, d_parent, d_inode));
}

SEC("lsm/file_open")
int BPF_PROG(tamper_guard_file_open, struct file *file, int ret)
{
	struct inode *inode = BPF_CORE_READ(file, f_inode);
	__u32 fmt = BPF_CORE_READ(inode, i_mode) & S_IFMT;
	struct cordon_ctx c;
	unsigned long magic;

	if (ret)
		return ret;
	if (fmt == S_IFBLK || (fmt == S_IFCHR && !device_allowed(BPF_CORE_READ(inode, i_rdev)))) {
		if (!cordon_enter(&c))
			return 0;
	} else {
		if (!(BPF_CORE_READ(file, f_mode) & FMODE_WRITE))
			return 0;
		magic = BPF_CORE_READ(inode, i_sb, s_magic);
		if (!kernel_object_fs(magic)) {
			/* cordond's actions log and registry: an agent may not rewrite or erase them */
			if (!cordon_enter(&c) || !state_dentry(BPF_CORE_READ(file, f_path.dentry)))
				return 0;
		} else {
			if (!cordon_enter(&c))
				return 0;
			if (magic == PROC_SUPER_MAGIC && proc_entry_of_agent(&c, inode))
				return 0;
		}
	}
	cordon_deny_tamper_path(&c, BPF_CORE_READ(file, f_path.dentry),
				BPF_CORE_READ(file, f_path.mnt));
	return -EPERM;
}

/*
 * -EPERM when an agent changes a name or mode in a kernel filesystem or in devtmpfs (a regular
 * file put in place of /dev/null is read and written by every process on the host), or one of
 * cordon's own state files or a name in its state directories (an agent that replaced cordond's
 * socket would answer the operator's kill itself). Reported with its path.
 */
static __always_inline int kernel_fs_change(struct dentry *dentry, struct vfsmount *mnt)
{
	struct super_block *sb = BPF_CORE_READ(dentry, d_sb);
	unsigned long magic = BPF_CORE_READ(sb, s_magic);
	bool kernel_fs = kernel_object_fs(magic);
	struct cordon_ctx c;

	if (!cordon_enter(&c))
		return 0;
	/* devtmpfs is a tmpfs, or a ramfs on kernels without tmpfs; cordon's own state (its socket,
	 * registry and actions log) may lie on any filesystem */
	if (!kernel_fs && !((magic == 0x01021994 || magic == 0x858458f6) && devtmpfs(sb)) &&
	    !state_dentry(dentry))
		return 0;
	cordon_deny_tamper_path(&c, dentry, mnt);
	return -EPERM;
}

SEC("lsm/path_mknod")
int BPF_PROG(tamper_guard_path_mknod, const struct path *dir, struct dentry *dentry,
	     umode_t mode, unsigned int dev, int ret)
{
	return ret ? ret : kernel_fs_change(dentry, BPF_CORE_READ(dir, mnt));
}

SEC("lsm/path_mkdir")
int BPF_PROG(tamper_guard_path_mkdir, const struct path *dir, struct dentry *dentry,
	     umode_t mode, int ret)
{
	return ret ? ret : kernel_fs_change(dentry, BPF_CORE_READ(dir, mnt));
}

SEC("lsm/path_symlink")
int BPF_PROG(tamper_guard_path_symlink, const struct path *dir, struct dentry *dentry,
	     const char *old_name, int ret)
{
	return ret ? ret : kernel_fs_change(dentry, BPF_CORE_READ(dir, mnt));
}

SEC("lsm/path_unlink")
int BPF_PROG(tamper_guard_path_unlink, const struct path *dir, struct dentry *dentry, int ret)
{
	return ret ? ret : kernel_fs_change(dentry, BPF_CORE_READ(dir, mnt));
}

SEC("lsm/path_rmdir")
int BPF_PROG(tamper_guard_path_rmdir, const struct path *dir, struct dentry *dentry, int ret)
{
	return ret ? ret : kernel_fs_change(dentry, BPF_CORE_READ(dir, mnt));
}

SEC("lsm/path_link")
int BPF_PROG(tamper_guard_path_link, struct dentry *old_dentry, const struct path *new_dir,
	     struct dentry *new_dentry, int ret)
{
	return ret ? ret : kernel_fs_change(new_dentry, BPF_CORE_READ(new_dir, mnt));
}

SEC("lsm/path_rename")
int BPF_PROG(tamper_guard_path_rename, const struct path *old_dir, struct dentry *old_dentry,
	     const struct path *new_dir, struct dentry *new_dentry, unsigned int flags, int ret)
{
	if (ret)
		return ret;
	/* Both ends: a rename cannot cross filesystems, but checking both costs nothing. */
	if (kernel_fs_change(old_dentry, BPF_CORE_READ(old_dir, mnt)))
		return -EPERM;
	return kernel_fs_change(new_dentry, BPF_CORE_READ(new_dir, mnt));
}

SEC("lsm/path_chmod")
int BPF_PROG(tamper_guard_path_chmod, const struct path *path, umode_t mode, int ret)
{
	return ret ? ret : kernel_fs_change(BPF_CORE_READ(path, dentry), BPF_CORE_READ(path, mnt));
}

SEC("lsm/path_chown")
int BPF_PROG(tamper_guard_path_chown, const struct path *path, unsigned long uid,
	     unsigned long gid, int ret)
{
	return ret ? ret : kernel_fs_change(BPF_CORE_READ(path, dentry), BPF_CORE_READ(path, mnt));
}

SEC("lsm/path_truncate")
int BPF_PROG(tamper_guard_path_truncate, const struct path *path, int ret)
{
	return ret ? ret : kernel_fs_change(BPF_CORE_READ(path, dentry), BPF_CORE_READ(path, mnt));
}

/*
 * Locks and leases on kernel files: a read lease on a cgroup's cgroup.kill makes the next
 * write-open of it (cordon killing an agent) wait for lease-break-time.
 */
SEC("lsm/file_lock")
int BPF_PROG(tamper_guard_file_lock, struct file *file, unsigned int cmd, int ret)
{
	struct cordon_ctx c;

	if (ret)
		return ret;
	if (!kernel_object_fs(BPF_CORE_READ(file, f_inode, i_sb, s_magic)) || !cordon_enter(&c))
		return 0;
	cordon_deny_tamper_path(&c, BPF_CORE_READ(file, f_path.dentry),
				BPF_CORE_READ(file, f_path.mnt));
	return -EPERM;
}

#define TIOCSTI 0x5412
#define TIOCLINUX 0x541c
#define TIOCCONS 0x541d
#define TIOCSETD 0x5423

/*
 * Terminal ioctls that reach beyond the agent's own output: pushing input (TIOCSTI, TIOCLINUX
 * paste), redirecting the console, changing the line discipline (which loads modules), and
 * every virtual-console (0x56xx) and keyboard/display (0x4bxx) request.
 */
SEC("lsm/file_ioctl")
int BPF_PROG(tamper_guard_file_ioctl, struct file *file, unsigned int cmd, unsigned long arg,
	     int ret)
{
	__u32 type = cmd >> 8 & 0xff;

	if (ret)
		return ret;
	if (cmd != TIOCSTI && cmd != TIOCLINUX && cmd != TIOCCONS && cmd != TIOCSETD &&
	    type != 0x56 && type != 0x4b)
		return 0;
	if ((BPF_CORE_READ(file, f_inode, i_mode) & S_IFMT) != S_IFCHR)
		return 0;
	return deny_if_agent("(terminal ioctl)");
}

/*
 * Kernel keyrings are shared beyond the agent (root's user keyring, the session keyring it
 * inherited), and request_key(2) makes the kernel run /sbin/request-key as root outside every
 * cgroup. Agents use no keyring at all.
 */
/*
 * cordond's control socket: an agent may not connect to a listening Unix socket of a cordon
 * process, whatever name it reaches it by (a bind mount, /proc/PID/root, a hard link to the
 * socket file): the listener is recognised by the process that called listen(), which the kernel
 * records in the socket's peer pid. The daemon refuses such callers too (SO_PEERCRED), on every
 * backend; this makes it hold for an agent running as root.
 */
SEC("lsm/unix_stream_connect")
int BPF_PROG(tamper_guard_unix_stream_connect, struct sock *sock, struct sock *other,
	     struct sock *newsk, int ret)
{
	__u32 owner;

	if (ret)
		return ret;
	owner = BPF_CORE_READ(other, sk_peer_pid, numbers[0].nr);
	if (!owner || !bpf_map_lookup_elem(&cordon_protected, &owner))
		return 0;
	return deny_if_agent("(cordon's control socket)");
}

SEC("lsm/key_alloc")
int BPF_PROG(tamper_guard_key_alloc, struct key *key, const struct cred *cred,
	     unsigned long flags, int ret)
{
	if (ret)
		return ret;
	return deny_if_agent("(keyring)");
}

SEC("lsm/key_permission")
int BPF_PROG(tamper_guard_key_permission, void *key_ref, const struct cred *cred,
	     unsigned int need_perm, int ret)
{
	if (ret)
		return ret;
	return deny_if_agent("(keyring)");
}

SEC("lsm/sb_mount")
int BPF_PROG(tamper_guard_sb_mount, const char *dev_name, const struct path *path,
	     const char *type, unsigned long flags, void *data, int ret)
{
	if (ret)
		return ret;
	return deny_if_agent("(mount)");
}

SEC("lsm/move_mount")
int BPF_PROG(tamper_guard_move_mount, const struct path *from_path, const struct path *to_path,
	     int ret)
{
	if (ret)
		return ret;
	return deny_if_agent("(move_mount)");
}

SEC("lsm/sb_pivotroot")
int BPF_PROG(tamper_guard_sb_pivotroot, const struct path *old_path, const struct path *new_path,
	     int ret)
{
	if (ret)
		return ret;
	return deny_if_agent("(pivot_root)");
}

SEC("lsm/userns_create")
int BPF_PROG(tamper_guard_userns_create, const struct cred *cred, int ret)
{
	if (ret)
		return ret;
	return deny_if_agent("(user namespace)");
}

SEC("lsm/perf_event_open")
int BPF_PROG(tamper_guard_perf_event_open, struct perf_event_attr *attr, int type, int ret)
{
	struct cordon_ctx c;

	if (ret)
		return ret;
	if (!cordon_enter(&c))
		return 0;
	/* A missing policy reopens nothing (fails closed). */
	if (c.policy && (c.policy->open_doors & CORDON_DOOR_PERF))
		return 0;
	(void)cordon_deny_tamper(&c, "(perf_event_open)");
	return -EPERM;
}
