/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * compat_exit: the compat backend's decisions at syscall exit (no BPF LSM, no trampolines): the
 * files rules for opens (file_guard.bpf.c decides them before the call on lsm), the peer of a
 * Unix connect, and the inbound rules for a listen. Hooks: one program per
 * tracepoint/syscalls/sys_exit_{open,openat,openat2,creat,open_by_handle_at,connect,listen},
 * or, where the kernel lacks those, one tp_btf/sys_exit program that filters on the number
 * itself; the controller loads one kind (userspace/bpf/guard.cpp). Syscall numbers and
 * registers: syscalls.bpf.h (x86_64 only).
 *
 *   opens                  after open(), openat(), openat2(), creat() and open_by_handle_at()
 *                          succeed, the file behind the new descriptor is decided and a denial
 *                          SIGKILLs the process before the syscall returns to user space. The
 *                          open itself has happened: O_CREAT may have created the file and
 *                          O_TRUNC truncated it. unlink, rename, link, truncate(2) and io_uring
 *                          opens are not seen (docs/enforcement.md).
 *   connect                after connect() on a Unix socket succeeds, the peer is decided as
 *                          above. The connection exists by then and a forked child may share
 *                          the socket, so a denial kills the whole agent (cordon_kill_agent).
 *                          Datagrams sent with an address and no connect() are not seen
 *                          (docs/enforcement.md).
 *   listen                 after listen() succeeds, the socket's local address and port are
 *                          decided by the inbound rules (net.bpf.h); a denial kills the whole
 *                          agent, as for connect. (net_guard refuses TCP binds outside the
 *                          rules beforehand, so only a listen without bind gets here.)
 *
 * Missing entries: a task whose cgroup is not an agent is allowed (see decide.bpf.h). For an
 * agent, a descriptor this hook cannot find again (closed or swapped by another thread during
 * the call) fails closed: the process, or for sockets the whole agent, is killed.
 */
#include "path.bpf.h"
#include "net.bpf.h"
#include "syscalls.bpf.h"

/* The file behind descriptor fd of the current task, or NULL. */
static __always_inline struct file *current_fd_file(long fd)
{
	struct files_struct *files;
	struct file **fd_array;
	struct file *file = NULL;
	struct fdtable *fdt;

	files = BPF_CORE_READ((struct task_struct *)bpf_get_current_task(), files);
	fdt = BPF_CORE_READ(files, fdt);
	if (fd < 0 || fd >= BPF_CORE_READ(fdt, max_fds))
		return NULL;
	fd_array = BPF_CORE_READ(fdt, fd);
	bpf_probe_read_kernel(&file, sizeof(file), &fd_array[fd]);
	return file;
}

#define AF_UNIX 1

#define S_IFMT 0170000
#define S_IFSOCK 0140000
#define TCP_LISTEN 10

/*
 * compat: the socket behind descriptor fd after a connect() or listen() on it succeeded, or NULL
 * when the descriptor no longer holds a socket: another thread of the agent swapped or closed it
 * during the call (dup2 onto the number), so this hook cannot see the socket the call used. The
 * caller fails closed on NULL. A swap to another socket of the same kind is not detectable here
 * (docs/enforcement.md).
 */
static __always_inline struct sock *compat_fd_sock(long fd)
{
	struct file *file = current_fd_file(fd);
	struct socket *sock;

	if (!file || (BPF_CORE_READ(file, f_inode, i_mode) & S_IFMT) != S_IFSOCK)
		return NULL;
	sock = BPF_CORE_READ(file, private_data);
	return BPF_CORE_READ(sock, sk);
}

/* compat: a connect() that succeeded; on a Unix socket, its peer is decided. */
static __always_inline void compat_unix_connect(struct cordon_ctx *c, long fd)
{
	struct sock *sk = compat_fd_sock(fd), *peer;

	if (!sk) {
		cordon_count(CORDON_CNT_PATH_FAILED);
		cordon_kill_agent(c); /* fail closed: the connected socket cannot be found */
		return;
	}
	if (BPF_CORE_READ(sk, __sk_common.skc_family) != AF_UNIX)
		return; /* inet: decided before the call by the cgroup connect hooks */
	peer = BPF_CORE_READ((struct unix_sock *)sk, peer);
	if (!peer) {
		/* A successful Unix connect always leaves a peer: the descriptor was swapped. */
		cordon_count(CORDON_CNT_PATH_FAILED);
		cordon_kill_agent(c);
		return;
	}
	if (cordon_check_unix(c, CORDON_HOOK_UNIX_CONNECT, peer) == CORDON_VERDICT_DENY)
		cordon_kill_agent(c); /* the connection exists: see cordon_kill_agent */
}

/*
 * compat: a listen() that succeeded is decided by the inbound rules on the socket's address (now
 * bound: an unbound socket was given the wildcard address and a port); a denial kills the agent
 * before the caller can accept anything (a child sharing the socket could: cordon_kill_agent).
 * A descriptor that no longer holds a listening socket was swapped during the call: fail closed.
 */
static __always_inline void compat_listen(struct cordon_ctx *c, long fd)
{
	struct sock *sk = compat_fd_sock(fd);
	__u16 family;

	if (sk) {
		family = BPF_CORE_READ(sk, __sk_common.skc_family);
		if (family == AF_UNIX)
			return; /* reaching a Unix socket is decided at connect */
		if (BPF_CORE_READ(sk, __sk_common.skc_state) == TCP_LISTEN) {
			if (cordon_refused(net_decide_listen(c, sk)))
				cordon_kill_agent(c); /* the socket listens: see cordon_kill_agent */
			return;
		}
	}
	cordon_count(CORDON_CNT_PATH_FAILED);
	cordon_kill_agent(c);
}

/*
 * compat: the end of a syscall that may have opened a file, connected or listened (nr), with its
 * return value and, for connect and listen, its first argument (the socket's descriptor).
 */
static __always_inline int compat_sys_exit(long nr, long ret, long fd_arg)
{
	struct cordon_ctx c;
	struct file *file;
	__u8 v, access;

	if (ret < 0)
		return 0;
	if (!cordon_enter(&c))
		return 0;
	if (nr == CORDON_NR_connect) {
		compat_unix_connect(&c, fd_arg);
		return 0;
	}
	if (nr == CORDON_NR_listen) {
		compat_listen(&c, fd_arg);
		return 0;
	}
	file = current_fd_file(ret);
	if (!file) {
		/* Another thread closed it already; the open happened: fail closed. */
		cordon_count(CORDON_CNT_PATH_FAILED);
		bpf_send_signal(SIGKILL);
		return 0;
	}
	access = cordon_open_access(file);
	if (!access)
		return 0; /* O_PATH: names the file without opening it; a later reopen is decided */
	v = cordon_check_path(&c, CORDON_HOOK_FILE_OPEN, BPF_CORE_READ(file, f_path.dentry),
			      BPF_CORE_READ(file, f_path.mnt), access);
	if (v == CORDON_VERDICT_DENY || v == CORDON_VERDICT_FREEZE) {
		/* The descriptor exists until SIGKILL lands. Another thread of the process could
		 * pass it on (SCM_RIGHTS) or fork with it in that instant, and the receiver would
		 * keep the file: where the opener has other threads, the whole agent is killed
		 * (fails closed). A single-threaded opener shares its descriptor table with no one
		 * (the seccomp layer refuses CLONE_FILES and pidfd_getfd on compat). */
		if (BPF_CORE_READ((struct task_struct *)bpf_get_current_task(), signal, nr_threads) > 1)
			cordon_kill_agent(&c);
		else
			bpf_send_signal(SIGKILL); /* kill verdicts already sent it */
	}
	return 0;
}

/*
 * compat, where the kernel has the per-syscall tracepoints (CONFIG_FTRACE_SYSCALLS, reached
 * through tracefs): one program per call. The kernel filters on the syscall number before any
 * program runs, so the rest of the host's syscalls pay less than with sys_exit below
 * (docs/benchmarks.md). The exit record has no arguments: connect and listen read the socket's
 * descriptor from the task's saved registers. The programs keep their file_guard_ names: links
 * are pinned by program name (guard.cpp), so a new name would be a new ABI version.
 */
#define COMPAT_EXIT(call, nr)                                                                      \
	SEC("tracepoint/syscalls/sys_exit_" #call)                                                 \
	int file_guard_exit_##call(struct trace_event_raw_sys_exit *ctx)                           \
	{                                                                                          \
		return compat_sys_exit(nr, ctx->ret, 0);                                           \
	}
COMPAT_EXIT(open, CORDON_NR_open)
COMPAT_EXIT(openat, CORDON_NR_openat)
COMPAT_EXIT(openat2, CORDON_NR_openat2)
COMPAT_EXIT(creat, CORDON_NR_creat)
COMPAT_EXIT(open_by_handle_at, CORDON_NR_open_by_handle_at)

#define COMPAT_EXIT_FD(call, nr)                                                                   \
	SEC("tracepoint/syscalls/sys_exit_" #call)                                                 \
	int file_guard_exit_##call(struct trace_event_raw_sys_exit *ctx)                           \
	{                                                                                          \
		struct pt_regs *regs = (struct pt_regs *)bpf_task_pt_regs(                        \
			(struct task_struct *)bpf_get_current_task_btf());                         \
                                                                                                   \
		return compat_sys_exit(nr, ctx->ret, CORDON_SYSCALL_ARG1(regs));                \
	}
COMPAT_EXIT_FD(connect, CORDON_NR_connect)
COMPAT_EXIT_FD(listen, CORDON_NR_listen)

/*
 * compat, where the per-syscall tracepoints are missing: one program on every syscall exit of
 * every process on the host, which filters on the number itself.
 */
SEC("tp_btf/sys_exit")
int BPF_PROG(file_guard_sys_exit, struct pt_regs *regs, long ret)
{
	long nr;

	/* Cheap filter first: this runs on every syscall of every process on the host. */
	if (ret < 0)
		return 0;
	/* The number as the kernel runs it (CORDON_SYSCALL_NR: a number with high bits set must
	 * not open without a decision). */
	nr = CORDON_SYSCALL_NR(regs);
	if (nr != CORDON_NR_openat && nr != CORDON_NR_open && nr != CORDON_NR_creat &&
	    nr != CORDON_NR_openat2 && nr != CORDON_NR_open_by_handle_at && nr != CORDON_NR_connect &&
	    nr != CORDON_NR_listen)
		return 0;
	return compat_sys_exit(nr, ret, CORDON_SYSCALL_ARG1(regs));
}
