/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * file_guard: decides file access by agents against the files rules (read and write classes),
 * on the resolved path of the object itself.
 *
 * lsm backend (denial = -EPERM from the syscall, before any effect):
 *   lsm/file_open          read and/or write by the open mode (opens for exec are exec_guard's)
 *   lsm/file_receive       a descriptor received (SCM_RIGHTS, pidfd_getfd): as an open of its
 *                          file with its access mode, by the receiver
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
 * compat backend: the same files rules, decided after the open-family syscalls, connect and
 * listen return (compat_exit.bpf.c).
 *
 * Missing entries: a task whose cgroup is not an agent is allowed (see decide.bpf.h).
 */
#include "path.bpf.h"
#include "net.bpf.h"

#define FMODE_EXEC 0x20

static __always_inline int file_verdict_errno(__u8 v)
{
	return cordon_refused(v) ? -EPERM : 0;
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
	access = cordon_open_access(file);
	if (!access)
		return 0; /* no read or write (O_PATH never gets here): nothing to decide */
	return file_verdict_errno(cordon_check_path(&c, CORDON_HOOK_FILE_OPEN,
						    BPF_CORE_READ(file, f_path.dentry),
						    BPF_CORE_READ(file, f_path.mnt), access));
}

#define MNT_INTERNAL 0x4000
#define S_IFMT 00170000
#define S_IFSOCK 0140000
#define S_IFIFO 0010000

/*
 * A descriptor an agent process receives (SCM_RIGHTS from inside or outside the agent,
 * pidfd_getfd) is decided as an open of its file by the receiver, with the access it was opened
 * for: a file the agent may not open does not reach it by being passed. Objects with no name in
 * any tree (pipes, sockets, anonymous inodes such as eventfd or pidfds, memfds: kernel-internal
 * mounts) carry no path to decide and are received as before. Refused: the receive fails with
 * EPERM (recvmsg drops the descriptor and sets MSG_CTRUNC; pidfd_getfd returns EPERM).
 */
SEC("lsm/file_receive")
int BPF_PROG(file_guard_file_receive, struct file *file, int ret)
{
	struct cordon_ctx c;
	struct vfsmount *mnt;
	__u32 type;
	__u8 access;

	if (ret)
		return ret;
	if (!cordon_enter(&c))
		return 0;
	mnt = BPF_CORE_READ(file, f_path.mnt);
	if (BPF_CORE_READ(mnt, mnt_flags) & MNT_INTERNAL)
		return 0;
	type = BPF_CORE_READ(file, f_inode, i_mode) & S_IFMT;
	if (type == S_IFSOCK || type == S_IFIFO)
		return 0;
	access = cordon_open_access(file);
	if (!access)
		return 0; /* O_PATH: reopening it is an open, decided by path */
	return file_verdict_errno(cordon_check_path(&c, CORDON_HOOK_FILE_RECEIVE,
						    BPF_CORE_READ(file, f_path.dentry), mnt, access));
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
