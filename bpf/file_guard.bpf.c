/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * file_guard: decides file access by agents against the files rules (read and write classes),
 * on the resolved path of the object itself.
 *
 * lsm backend (denial = -EPERM from the syscall, before any effect):
 *   lsm/file_open          read and/or write by the open mode (opens for exec are exec_guard's)
 *   lsm/path_mknod         creation through open(O_CREAT), mknod           -> write
 *   lsm/path_mkdir, lsm/path_symlink                                       -> write
 *   lsm/path_unlink, lsm/path_rmdir                                        -> write
 *   lsm/path_rename        both the old and the new name                   -> write, and the
 *                          new name may grant no right the old one lacks; a directory at or
 *                          above a rule's path may not be renamed (cordon_check_rename)
 *   lsm/path_link          both the existing and the new name              -> write, and the
 *                          new name may grant no right the old one lacks
 *   lsm/path_chmod, lsm/path_chown                                         -> write
 *   lsm/file_ioctl         file flags (chattr: FS_IOC_SETFLAGS, FS_IOC_FSSETXATTR) -> write
 *   lsm/inode_setattr (timestamps, mode, owner), lsm/inode_setxattr, inode_removexattr,
 *   inode_set_acl, inode_remove_acl (6.2+)  -> write, decided by every name the file has
 *                          through its filesystem's mounts (cordon_check_inode_write)
 *   lsm/path_truncate      truncate(2), O_TRUNC, and before 6.2 ftruncate(2) -> write
 *   lsm/file_truncate      ftruncate(2) from 6.2 on                        -> write
 *   lsm/unix_stream_connect, lsm/unix_may_send   connect() to, or a datagram for, a Unix
 *                          socket: a write to the socket's path (abstract sockets: the policy's
 *                          network.unix_abstract)
 * compat backend:
 *   tp_btf/sys_exit        after open(), openat(), openat2(), creat() and open_by_handle_at()
 *                          succeed, the file behind the new descriptor is decided and a denial
 *                          SIGKILLs the process before the syscall returns to user space. The
 *                          open itself has happened: O_CREAT may have created the file and
 *                          O_TRUNC truncated it. unlink, rename, link, truncate(2) and io_uring
 *                          opens are not seen (docs/enforcement.md).
 *   tp_btf/sys_exit        after connect() on a Unix socket succeeds, the peer is decided as
 *                          above. The connection exists by then and a forked child may share
 *                          the socket, so a denial kills the whole agent (cordon_kill_agent).
 *                          Datagrams sent with an address and no connect() are not seen
 *                          (docs/enforcement.md).
 *   tp_btf/sys_exit        after listen() succeeds, the socket's local address and port are
 *                          decided by the inbound rules (net.bpf.h); a denial kills the whole
 *                          agent, as for connect. (net_guard refuses TCP binds outside the
 *                          rules beforehand, so only a listen without bind gets here.)
 *
 * Missing entries: a task whose cgroup is not an agent is allowed (see cordon.bpf.h).
 */
#include "path.bpf.h"
#include "net.bpf.h"

#define FMODE_READ 0x1
#define FMODE_WRITE 0x2
#define FMODE_EXEC 0x20
#define O_TRUNC 01000

static __always_inline int file_verdict_errno(__u8 v)
{
	return cordon_refused(v) ? -EPERM : 0;
}

static __always_inline __u8 open_access(struct file *file)
{
	__u32 mode = BPF_CORE_READ(file, f_mode);
	__u32 flags = BPF_CORE_READ(file, f_flags);
	__u8 access = 0;

	if (mode & FMODE_READ)
		access |= CORDON_ACCESS_READ;
	if ((mode & FMODE_WRITE) || (flags & O_TRUNC))
		access |= CORDON_ACCESS_WRITE;
	return access;
}

SEC("lsm/file_open")
int BPF_PROG(file_guard_file_open, struct file *file, int ret)
{
	struct cordon_ctx c;
	__u8 access;

	if (ret)
		return ret;
	if (!cordon_enter(&c))
		return 0;
	if (BPF_CORE_READ(file, f_mode) & FMODE_EXEC)
		return 0; /* execution is decided by exec_guard on the same file */
	access = open_access(file);
	if (!access)
		return 0; /* no read or write (O_PATH never gets here): nothing to decide */
	return file_verdict_errno(cordon_check_path(&c, CORDON_HOOK_FILE_OPEN,
						    BPF_CORE_READ(file, f_path.dentry),
						    BPF_CORE_READ(file, f_path.mnt), access));
}

static __always_inline int write_in_dir(__u32 hook, const struct path *dir, struct dentry *dentry)
{
	struct cordon_ctx c;

	if (!cordon_enter(&c))
		return 0;
	return file_verdict_errno(
		cordon_check_path(&c, hook, dentry, BPF_CORE_READ(dir, mnt), CORDON_ACCESS_WRITE));
}

SEC("lsm/path_mknod")
int BPF_PROG(file_guard_path_mknod, const struct path *dir, struct dentry *dentry, umode_t mode,
	     unsigned int dev, int ret)
{
	if (ret)
		return ret;
	return write_in_dir(CORDON_HOOK_FILE_CREATE, dir, dentry);
}

SEC("lsm/path_mkdir")
int BPF_PROG(file_guard_path_mkdir, const struct path *dir, struct dentry *dentry, umode_t mode,
	     int ret)
{
	if (ret)
		return ret;
	return write_in_dir(CORDON_HOOK_FILE_CREATE, dir, dentry);
}

SEC("lsm/path_symlink")
int BPF_PROG(file_guard_path_symlink, const struct path *dir, struct dentry *dentry,
	     const char *old_name, int ret)
{
	if (ret)
		return ret;
	return write_in_dir(CORDON_HOOK_FILE_CREATE, dir, dentry);
}

SEC("lsm/path_unlink")
int BPF_PROG(file_guard_path_unlink, const struct path *dir, struct dentry *dentry, int ret)
{
	if (ret)
		return ret;
	return write_in_dir(CORDON_HOOK_FILE_UNLINK, dir, dentry);
}

SEC("lsm/path_rmdir")
int BPF_PROG(file_guard_path_rmdir, const struct path *dir, struct dentry *dentry, int ret)
{
	if (ret)
		return ret;
	return write_in_dir(CORDON_HOOK_FILE_UNLINK, dir, dentry);
}

#define RENAME_EXCHANGE (1 << 1)

/*
 * Both names of a rename are writes, the object may gain no right by its new name, and a guarded
 * directory stays where it is (cordon_check_rename). One program, so that the write check, the
 * most direct reason, is the one reported: programs on one hook run in an order the kernel
 * chooses.
 */
SEC("lsm/path_rename")
int BPF_PROG(file_guard_path_rename, const struct path *old_dir, struct dentry *old_dentry,
	     const struct path *new_dir, struct dentry *new_dentry, unsigned int flags, int ret)
{
	struct vfsmount *old_mnt, *new_mnt;
	struct cordon_ctx c;

	if (ret)
		return ret;
	if (!cordon_enter(&c))
		return 0;
	old_mnt = BPF_CORE_READ(old_dir, mnt);
	new_mnt = BPF_CORE_READ(new_dir, mnt);
	if (file_verdict_errno(cordon_check_path(&c, CORDON_HOOK_FILE_RENAME, old_dentry, old_mnt,
						 CORDON_ACCESS_WRITE)) ||
	    file_verdict_errno(cordon_check_path(&c, CORDON_HOOK_FILE_RENAME, new_dentry, new_mnt,
						 CORDON_ACCESS_WRITE)) ||
	    file_verdict_errno(cordon_check_rename(&c, CORDON_HOOK_FILE_RENAME, old_dentry,
						   old_mnt, new_dentry, new_mnt)))
		return -EPERM;
	/* An exchange moves the other object too. */
	if (flags & RENAME_EXCHANGE)
		return file_verdict_errno(cordon_check_rename(&c, CORDON_HOOK_FILE_RENAME,
							      new_dentry, new_mnt, old_dentry,
							      old_mnt));
	return 0;
}

/* Both names of a hard link are writes, and the new name may grant no right the old lacks. */
SEC("lsm/path_link")
int BPF_PROG(file_guard_path_link, struct dentry *old_dentry, const struct path *new_dir,
	     struct dentry *new_dentry, int ret)
{
	struct cordon_ctx c;
	struct vfsmount *mnt;

	if (ret)
		return ret;
	if (!cordon_enter(&c))
		return 0;
	/* A hard link stays on one mount, so the new directory's mount is the old name's too. */
	mnt = BPF_CORE_READ(new_dir, mnt);
	if (file_verdict_errno(cordon_check_path(&c, CORDON_HOOK_FILE_LINK, old_dentry, mnt,
						 CORDON_ACCESS_WRITE)) ||
	    file_verdict_errno(cordon_check_path(&c, CORDON_HOOK_FILE_LINK, new_dentry, mnt,
						 CORDON_ACCESS_WRITE)))
		return -EPERM;
	return file_verdict_errno(
		cordon_check_rename(&c, CORDON_HOOK_FILE_LINK, old_dentry, mnt, new_dentry, mnt));
}

/* Metadata changes are writes: chmod (making a denied file executable, readable), chown. */
static __always_inline int setattr_write(const struct path *path)
{
	struct cordon_ctx c;

	if (!cordon_enter(&c))
		return 0;
	return file_verdict_errno(cordon_check_path(&c, CORDON_HOOK_FILE_SETATTR,
						    BPF_CORE_READ(path, dentry),
						    BPF_CORE_READ(path, mnt), CORDON_ACCESS_WRITE));
}

SEC("lsm/path_chmod")
int BPF_PROG(file_guard_path_chmod, const struct path *path, umode_t mode, int ret)
{
	if (ret)
		return ret;
	return setattr_write(path);
}

SEC("lsm/path_chown")
int BPF_PROG(file_guard_path_chown, const struct path *path, unsigned long uid, unsigned long gid,
	     int ret)
{
	if (ret)
		return ret;
	return setattr_write(path);
}

static __always_inline int truncate_write(const struct path *path)
{
	struct cordon_ctx c;

	if (!cordon_enter(&c))
		return 0;
	return file_verdict_errno(cordon_check_path(&c, CORDON_HOOK_FILE_TRUNCATE,
						    BPF_CORE_READ(path, dentry),
						    BPF_CORE_READ(path, mnt), CORDON_ACCESS_WRITE));
}

SEC("lsm/path_truncate")
int BPF_PROG(file_guard_path_truncate, const struct path *path, int ret)
{
	return ret ? ret : truncate_write(path);
}

/*
 * From 6.2 on, ftruncate(2) is checked here and no longer by path_truncate: a descriptor opened
 * for writing before the rules applied (inherited, passed over a socket) must still not shorten
 * a write-denied file. Loaded only where the kernel has the hook.
 */
SEC("lsm/file_truncate")
int BPF_PROG(file_guard_file_truncate, struct file *file, int ret)
{
	return ret ? ret : truncate_write(&file->f_path);
}

#define FS_IOC_SETFLAGS 0x40086602
#define FS_IOC32_SETFLAGS 0x40046602
#define FS_IOC_FSSETXATTR 0x401c5820

/*
 * chattr: immutable, append-only and the other inode flags (FS_IOC_SETFLAGS, FS_IOC_FSSETXATTR)
 * are metadata writes that no path or inode hook sees: decided as a write of the file.
 */
SEC("lsm/file_ioctl")
int BPF_PROG(file_guard_file_ioctl, struct file *file, unsigned int cmd, unsigned long arg,
	     int ret)
{
	struct cordon_ctx c;

	if (ret)
		return ret;
	if (cmd != FS_IOC_SETFLAGS && cmd != FS_IOC32_SETFLAGS && cmd != FS_IOC_FSSETXATTR)
		return 0;
	if (!cordon_enter(&c))
		return 0;
	return file_verdict_errno(cordon_check_path(&c, CORDON_HOOK_FILE_SETATTR,
						    BPF_CORE_READ(file, f_path.dentry),
						    BPF_CORE_READ(file, f_path.mnt),
						    CORDON_ACCESS_WRITE));
}

SEC("lsm/unix_stream_connect")
int BPF_PROG(file_guard_unix_stream_connect, struct sock *sock, struct sock *other,
	     struct sock *newsk, int ret)
{
	struct cordon_ctx c;

	if (ret)
		return ret;
	if (!cordon_enter(&c))
		return 0;
	return file_verdict_errno(cordon_check_unix(&c, CORDON_HOOK_UNIX_CONNECT, other));
}

SEC("lsm/unix_may_send")
int BPF_PROG(file_guard_unix_may_send, struct socket *sock, struct socket *other, int ret)
{
	struct cordon_ctx c;

	if (ret)
		return ret;
	if (!cordon_enter(&c))
		return 0;
	return file_verdict_errno(
		cordon_check_unix(&c, CORDON_HOOK_UNIX_SEND, BPF_CORE_READ(other, sk)));
}

#define ATTR_MODE (1 << 0)
#define ATTR_UID (1 << 1)
#define ATTR_GID (1 << 2)
#define ATTR_ATIME (1 << 4)
#define ATTR_MTIME (1 << 5)
#define ATTR_ATIME_SET (1 << 7)
#define ATTR_MTIME_SET (1 << 8)
#define ATTR_TIMES_SET (1 << 16)
#define ATTR_DECIDED                                                                       \
	(ATTR_MODE | ATTR_UID | ATTR_GID | ATTR_ATIME | ATTR_MTIME | ATTR_ATIME_SET |      \
	 ATTR_MTIME_SET | ATTR_TIMES_SET)

/* A write to a file handed over without its mount, for agents. */
static __always_inline int inode_write(struct dentry *dentry)
{
	struct cordon_ctx c;

	if (!cordon_enter(&c))
		return 0;
	return file_verdict_errno(cordon_check_inode_write(&c, CORDON_HOOK_FILE_SETATTR, dentry));
}

/*
 * Timestamps (utimensat, futimens), and mode and owner however they are changed: a write of the
 * file. The hook has no mount; cordon_check_inode_write decides by the file's names.
 */
static __always_inline int inode_setattr_write(struct dentry *dentry, struct iattr *attr)
{
	if (!(BPF_CORE_READ(attr, ia_valid) & ATTR_DECIDED))
		return 0; /* size alone (truncate: path_truncate) or clearing setuid bits on write */
	return inode_write(dentry);
}

/*
 * inode_setattr takes (dentry, attr) up to 6.2 and (idmap, dentry, attr) since: one program for
 * each, and the controller loads the one that matches the kernel's BTF.
 */
SEC("lsm/inode_setattr")
int BPF_PROG(file_guard_inode_setattr, struct dentry *dentry, struct iattr *attr, int ret)
{
	if (ret)
		return ret;
	return inode_setattr_write(dentry, attr);
}

SEC("lsm/inode_setattr")
int BPF_PROG(file_guard_inode_setattr_idmap, void *idmap, struct dentry *dentry,
	     struct iattr *attr, int ret)
{
	if (ret)
		return ret;
	return inode_setattr_write(dentry, attr);
}

/* Extended attributes (and, up to 6.1, POSIX ACLs, which are xattrs there): writes. */
SEC("lsm/inode_setxattr")
int BPF_PROG(file_guard_inode_setxattr, void *idmap, struct dentry *dentry, const char *name,
	     const void *value, size_t size, int flags, int ret)
{
	if (ret)
		return ret;
	return inode_write(dentry);
}

SEC("lsm/inode_removexattr")
int BPF_PROG(file_guard_inode_removexattr, void *idmap, struct dentry *dentry, const char *name,
	     int ret)
{
	if (ret)
		return ret;
	return inode_write(dentry);
}

/* POSIX ACLs since 6.2 (no longer through setxattr); loaded only where the kernel has them. */
SEC("lsm/inode_set_acl")
int BPF_PROG(file_guard_inode_set_acl, void *idmap, struct dentry *dentry, const char *acl_name,
	     void *kacl, int ret)
{
	if (ret)
		return ret;
	return inode_write(dentry);
}

SEC("lsm/inode_remove_acl")
int BPF_PROG(file_guard_inode_remove_acl, void *idmap, struct dentry *dentry,
	     const char *acl_name, int ret)
{
	if (ret)
		return ret;
	return inode_write(dentry);
}

/* x86_64 syscall numbers of the calls that return a new descriptor for a named file, connect and
 * listen. */
#define NR_connect 42
#define NR_listen 50
#define NR_open 2
#define NR_creat 85
#define NR_openat 257
#define NR_open_by_handle_at 304
#define NR_openat2 437

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
	if (nr == NR_connect) {
		compat_unix_connect(&c, fd_arg);
		return 0;
	}
	if (nr == NR_listen) {
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
	access = open_access(file);
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
 * descriptor from the task's saved registers.
 */
#define COMPAT_EXIT(call, nr)                                                                      \
	SEC("tracepoint/syscalls/sys_exit_" #call)                                                 \
	int file_guard_exit_##call(struct trace_event_raw_sys_exit *ctx)                           \
	{                                                                                          \
		return compat_sys_exit(nr, ctx->ret, 0);                                           \
	}
COMPAT_EXIT(open, NR_open)
COMPAT_EXIT(openat, NR_openat)
COMPAT_EXIT(openat2, NR_openat2)
COMPAT_EXIT(creat, NR_creat)
COMPAT_EXIT(open_by_handle_at, NR_open_by_handle_at)

#define COMPAT_EXIT_FD(call, nr)                                                                   \
	SEC("tracepoint/syscalls/sys_exit_" #call)                                                 \
	int file_guard_exit_##call(struct trace_event_raw_sys_exit *ctx)                           \
	{                                                                                          \
		struct pt_regs *regs = (struct pt_regs *)bpf_task_pt_regs(                        \
			(struct task_struct *)bpf_get_current_task_btf());                         \
                                                                                                   \
		return compat_sys_exit(nr, ctx->ret, BPF_CORE_READ(regs, di));                     \
	}
COMPAT_EXIT_FD(connect, NR_connect)
COMPAT_EXIT_FD(listen, NR_listen)

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
	/* The kernel runs the call numbered by the low 32 bits (do_syscall_64 takes an int):
	 * compare those, or a number with high bits set would open without a decision. */
	nr = (int)BPF_CORE_READ(regs, orig_ax);
	if (nr != NR_openat && nr != NR_open && nr != NR_creat && nr != NR_openat2 &&
	    nr != NR_open_by_handle_at && nr != NR_connect && nr != NR_listen)
		return 0;
	return compat_sys_exit(nr, ret, BPF_CORE_READ(regs, di));
}
