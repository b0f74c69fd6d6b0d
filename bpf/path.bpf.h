/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Resolved paths for path rules, built in the kernel from the dentry and mount of the object
 * actually opened or executed, never from a string in user memory: a symlink, a relative path,
 * "..", or /proc/self/fd/N all arrive here as the real file. bpf_d_path() would do this, but the
 * kernel allows it only in a few LSM hooks, and the compat backend's tracepoints are not among
 * them; one walker serves both backends.
 *
 * The walk goes from the dentry to the root of its mount namespace, crossing mount points, and
 * writes the path root-first into the rule key. Only the first CORDON_PATH_KEY_BYTES bytes are
 * kept: enough to decide every rule cordon accepts (see abi.h).
 *
 * A path is trusted only when the walk reaches the root mount of the current task's mount
 * namespace through connected dentries and attached mounts. Anything else is unresolvable and
 * denied for agents (fail closed), and counted in CORDON_CNT_PATH_FAILED:
 *   - a detached mount (open_tree(OPEN_TREE_CLONE), a lazily unmounted tree): its top mount is
 *     its own parent but is not the namespace root, so "/x" inside it is not the real "/x";
 *   - a mount of another namespace (reached through /proc/PID/root) or a kernel-internal one
 *     (memfd, which would otherwise let a file with no name be executed);
 *   - a disconnected dentry (open_by_handle_at after eviction): its own parent, but not the
 *     root of its mount, so the walk cannot know the directories above it;
 *   - a path deeper than CORDON_PATH_DEPTH components.
 * Pipes and sockets reopened through /proc/self/fd have no name in any tree and give nothing the
 * process did not already hold; they are not path-decided (see cordon_pathless).
 *
 * Scratch memory: per-CPU slots, each claimed with a compare-and-swap on its own busy flag,
 * because a BPF program can be preempted by another task's program on the same CPU and release
 * out of order. When all slots are busy the decision fails closed.
 */
#pragma once

#include "effects.bpf.h"

#define PIPEFS_MAGIC 0x50495045
#define SOCKFS_MAGIC 0x534F434B

/* Slot i of this CPU if it was free (now claimed), else NULL. */
static __always_inline struct cordon_scratch *cordon_scratch_claim(__u32 i)
{
	struct cordon_scratch *s = bpf_map_lookup_elem(&cordon_scratch, &i);

	if (s && __sync_val_compare_and_swap(&s->busy, 0, 1) == 0) {
		s->slot = i;
		return s;
	}
	return NULL;
}

/*
 * A free slot of this CPU, claimed; NULL when every slot is in use. Written out rather than as
 * a loop: 6.1's verifier takes the rolled loop for an infinite one. Four slots: a task's program,
 * one preempting it, a softirq's and one spare (CORDON_SCRATCH_SLOTS).
 */
static __always_inline struct cordon_scratch *cordon_scratch_get(void)
{
	struct cordon_scratch *s;

	_Static_assert(CORDON_SCRATCH_SLOTS == 4, "cordon_scratch_get claims four slots");
	if ((s = cordon_scratch_claim(0)) || (s = cordon_scratch_claim(1)) ||
	    (s = cordon_scratch_claim(2)))
		return s;
	return cordon_scratch_claim(3);
}

static __always_inline void cordon_scratch_put(struct cordon_scratch *s)
{
	__sync_lock_test_and_set(&s->busy, 0);
}

/* bpf_loop() context: the scratch slot holding the walk state. */
struct cordon_walk {
	struct cordon_scratch *s;
};

/* One step from the leaf towards the root: record a name, or cross a mount point. */
static long cordon_walk_up(__u32 i, void *arg)
{
	struct cordon_scratch *s = ((struct cordon_walk *)arg)->s;
	struct dentry *dentry = (void *)s->dentry, *mnt_root, *parent;
	struct mount *mnt = (void *)s->mnt, *mnt_parent;
	__u32 n = s->n;

	mnt_root = BPF_CORE_READ(mnt, mnt.mnt_root);
	parent = BPF_CORE_READ(dentry, d_parent);
	if (dentry == mnt_root || dentry == parent) {
		if (dentry != mnt_root)
			return 1; /* disconnected dentry: unresolvable */
		mnt_parent = BPF_CORE_READ(mnt, mnt_parent);
		if (mnt == mnt_parent) {
			/* The top of a tree: trusted only if it is this namespace's root. */
			s->done = (__u64)mnt == s->ns_root;
			return 1;
		}
		s->dentry = (__u64)BPF_CORE_READ(mnt, mnt_mountpoint);
		s->mnt = (__u64)mnt_parent;
		return 0;
	}
	if (n >= CORDON_PATH_DEPTH)
		return 1; /* too deep: not done */
	s->names[n & (CORDON_PATH_DEPTH - 1)] = (__u64)BPF_CORE_READ(dentry, d_name.name);
	s->n = n + 1;
	s->dentry = (__u64)parent;
	return 0;
}

/* Writes component j (counted from the root) as "/name". */
static long cordon_walk_write(__u32 j, void *arg)
{
	struct cordon_scratch *s = ((struct cordon_walk *)arg)->s;
	__u32 off = s->off, n = s->n;
	long r;

	if (j >= n || off >= CORDON_PATH_KEY_BYTES)
		return 1;
	s->key.path[off & 0xff] = '/';
	off++;
	if (off >= CORDON_PATH_KEY_BYTES) {
		s->off = off;
		return 1;
	}
	r = bpf_probe_read_kernel_str(&s->key.path[off & 0xff], 256,
				      (void *)s->names[(n - 1 - j) & (CORDON_PATH_DEPTH - 1)]);
	if (r > 1)
		off += r - 1;
	s->off = off;
	return 0;
}

/*
 * Writes the path of (dentry, vfsmount) into s->key.path and sets s->len. Returns 0, or -1 when
 * the path is unresolvable (see the top of this file).
 */
static __always_inline int cordon_resolve(struct cordon_scratch *s, struct dentry *dentry,
					  struct vfsmount *vfsmnt)
{
	struct cordon_walk w = { .s = s };
	__u32 off;

	struct task_struct *task = (struct task_struct *)bpf_get_current_task();

	s->ns_root = (__u64)BPF_CORE_READ(task, nsproxy, mnt_ns, root);
	if (!s->ns_root)
		return -1; /* an exiting task has no namespace: nothing to resolve against */
	s->dentry = (__u64)dentry;
	s->mnt = (__u64)((void *)vfsmnt - bpf_core_field_offset(struct mount, mnt));
	s->n = 0;
	s->off = 0;
	s->done = 0;
	/* Each step records a name or crosses a mount; twice the depth bounds both. */
	bpf_loop(2 * CORDON_PATH_DEPTH, cordon_walk_up, &w, 0);
	if (!s->done)
		return -1;
	bpf_loop(CORDON_PATH_DEPTH, cordon_walk_write, &w, 0);
	off = s->off;
	if (s->n == 0) {
		s->key.path[0] = '/';
		off = 1;
	}
	if (off < CORDON_PATH_KEY_BYTES)
		s->key.path[off & 0xff] = 0;
	s->len = off;
	return 0;
}

/*
 * Pipes and sockets: reopening one through /proc/self/fd/N (bash's <(...) and >(...)) reaches an
 * object the process already holds, which has no name in any directory tree.
 */
static __always_inline bool cordon_pathless(struct dentry *dentry)
{
	unsigned long magic = BPF_CORE_READ(dentry, d_sb, s_magic);

	return magic == PIPEFS_MAGIC || magic == SOCKFS_MAGIC;
}

/* The entry of compiled set `policy_id` for the first `bytes` bytes of the path in s, if any. */
static __always_inline bool cordon_path_find(struct cordon_scratch *s, __u32 policy_id, __u8 cls,
					     __u32 bytes, struct cordon_rule_hit *hit)
{
	struct cordon_path_value *v;

	s->key.policy_id = policy_id;
	s->key.path_class = cls;
	s->key.prefixlen = (sizeof(s->key.policy_id) + sizeof(s->key.path_class) + bytes) * 8;
	v = bpf_map_lookup_elem(&cordon_path_rules, &s->key);
	if (!v)
		return false;
	hit->rule_id = v->rule_id;
	hit->action = v->action;
	hit->min_tier = v->min_tier;
	return true;
}

__u64 cordon_path_layers(__u32 slot, __u32 cls_bytes, __u64 hit_in, __u32 layers);

/*
 * The rule for the first `bytes` bytes of the path in s (already resolved) in one class, in the
 * order docs/policy.md states: the agent's policy (its rule, or the class default); over it, a
 * rule of the task's overlay, unless the policy's rule is a kill or freeze rule; then, if that
 * refuses, a live grant of the task or of the agent (reported as audit, naming the grant). The
 * overlay and grants are consulted in a global function (cordon_path_layers), and only for an
 * agent that has a task or grants: verified once, and free for every other agent.
 */
static __always_inline void cordon_path_lookup(const struct cordon_ctx *c, struct cordon_scratch *s,
					       __u8 cls, __u32 bytes, struct cordon_rule_hit *hit)
{
	if (bytes > CORDON_PATH_KEY_BYTES)
		bytes = CORDON_PATH_KEY_BYTES;
	if (!cordon_path_find(s, c->policy_id, cls, bytes, hit)) {
		hit->min_tier = 0;
		if (!c->policy || cls == CORDON_PATH_GUARD) {
			hit->rule_id = 0;
			hit->action = cls == CORDON_PATH_GUARD ? CORDON_ACTION_ALLOW : CORDON_ACTION_DENY;
		} else if (cls == CORDON_PATH_EXEC) {
			hit->rule_id = c->policy->exec_default_rule_id;
			hit->action = c->policy->exec_default;
		} else {
			hit->rule_id = c->policy->file_default_rule_id;
			hit->action = c->policy->file_default;
		}
	}
	/*
	 * Called whether or not the agent has an overlay or grants (it returns at once when it has
	 * none): a branch here would double what the verifier explores after every lookup.
	 */
	cordon_hit_unpack(hit, cordon_path_layers(s->slot, (__u32)cls << 16 | bytes,
						  cordon_hit_pack(hit, c->tier), c->layers));
}

/* The rule for the path in s (exact: with the NUL that marks the end for exact rules). */
static __always_inline void cordon_path_rule(const struct cordon_ctx *c, struct cordon_scratch *s,
					     __u8 cls, struct cordon_rule_hit *hit)
{
	cordon_path_lookup(c, s, cls, s->len + 1, hit);
}

/* No scratch memory to decide in: denied (fail closed) and counted. */
static __always_inline __u8 cordon_no_scratch(const struct cordon_ctx *c)
{
	cordon_count(CORDON_CNT_PATH_FAILED);
	cordon_apply(c, CORDON_VERDICT_DENY);
	return CORDON_VERDICT_DENY;
}

/* The path in s could not be resolved: counted, and named so in the event; the caller denies. */
static __always_inline void cordon_unresolvable(struct cordon_scratch *s, struct cordon_rule_hit *hit)
{
	cordon_count(CORDON_CNT_PATH_FAILED);
	__builtin_memcpy(s->key.path, CORDON_UNRESOLVABLE, sizeof(CORDON_UNRESOLVABLE));
	hit->action = CORDON_ACTION_DENY; /* fail closed */
	hit->rule_id = 0;
	hit->min_tier = 0;
}

/* Applies a path decision, reports it with the path in s, releases s. Returns the verdict. */
static __always_inline __u8 cordon_path_done(const struct cordon_ctx *c, __u32 hook,
					     struct cordon_scratch *s, __u8 verdict, __u32 rule_id,
					     __u8 access)
{
	struct cordon_event *e;

	cordon_apply(c, verdict);
	if (cordon_should_report(c, verdict)) {
		e = cordon_event_start(c, hook, verdict, rule_id);
		if (e) {
			e->access = access;
			bpf_probe_read_kernel_str(e->path, CORDON_PATH_KEY_BYTES, s->key.path);
			bpf_ringbuf_submit(e, 0);
		}
	}
	cordon_scratch_put(s);
	return verdict;
}

/* Tamper protection's denial of a file object, reported with its resolved path. */
static __always_inline __u8 cordon_deny_tamper_path(const struct cordon_ctx *c,
						    struct dentry *dentry, struct vfsmount *mnt)
{
	struct cordon_rule_hit hit = {};
	struct cordon_scratch *s = cordon_scratch_get();

	if (!s)
		return cordon_no_scratch(c);
	if (cordon_resolve(s, dentry, mnt) < 0)
		cordon_unresolvable(s, &hit);
	return cordon_path_done(c, CORDON_HOOK_TAMPER, s, CORDON_VERDICT_DENY, 0, 0);
}

/*
 * Decides an access to (dentry, mnt) by an agent: exec (access 0) or file access bits. Reports
 * the decision with its path and applies the side effects. Returns the verdict.
 */
static __always_inline __u8 cordon_check_path(const struct cordon_ctx *c, __u32 hook,
					      struct dentry *dentry, struct vfsmount *mnt,
					      __u8 access)
{
	struct cordon_rule_hit hit = {}, other = {};
	struct cordon_scratch *s;
	__u8 verdict, v2;

	if (cordon_pathless(dentry))
		return CORDON_VERDICT_ALLOW;
	s = cordon_scratch_get();
	if (!s)
		return cordon_no_scratch(c);
	if (cordon_resolve(s, dentry, mnt) < 0) {
		cordon_unresolvable(s, &hit);
		verdict = cordon_verdict(c, &hit);
	} else if (access == 0) {
		cordon_path_rule(c, s, CORDON_PATH_EXEC, &hit);
		verdict = cordon_verdict(c, &hit);
	} else {
		/* Each access is decided on its own; the more severe verdict wins. */
		verdict = CORDON_VERDICT_ALLOW;
		if (access & CORDON_ACCESS_READ) {
			cordon_path_rule(c, s, CORDON_PATH_READ, &hit);
			verdict = cordon_verdict(c, &hit);
		}
		if (access & CORDON_ACCESS_WRITE) {
			cordon_path_rule(c, s, CORDON_PATH_WRITE, &other);
			v2 = cordon_verdict(c, &other);
			if (!(access & CORDON_ACCESS_READ) ||
			    cordon_severity(v2) > cordon_severity(verdict)) {
				verdict = v2;
				hit = other;
			}
		}
	}
	return cordon_path_done(c, hook, s, verdict, hit.rule_id, access);
}

/*
 * Decides a connection or datagram to the Unix socket `other`. A path-named socket is decided as
 * a write to its path (the socket file actually bound, resolved like any other file), so that
 * the files rules that protect a path also protect the service listening there. An abstract
 * socket has no path: network.unix_abstract decides it, and the event names it "@name". An
 * unnamed socket (socketpair) can only be reached by a process that was handed it: allowed.
 */
static __always_inline __u8 cordon_check_unix(const struct cordon_ctx *c, __u32 hook,
					      struct sock *other)
{
	struct unix_sock *u = (struct unix_sock *)other;
	struct dentry *dentry = BPF_CORE_READ(u, path.dentry);
	struct unix_address *addr;
	struct cordon_rule_hit hit = {};
	struct cordon_event *e;
	__u8 verdict;
	__u32 n;
	int len;

	if (dentry)
		return cordon_check_path(c, hook, dentry, BPF_CORE_READ(u, path.mnt),
					 CORDON_ACCESS_WRITE);
	addr = BPF_CORE_READ(u, addr);
	if (!addr)
		return CORDON_VERDICT_ALLOW;
	hit.action = c->policy ? c->policy->unix_abstract : CORDON_ACTION_DENY;
	verdict = cordon_verdict(c, &hit);
	cordon_apply(c, verdict);
	if (cordon_should_report(c, verdict)) {
		e = cordon_event_start(c, hook, verdict, 0);
		if (e) {
			/* name[0] is a sockaddr_un: family, then '\0' and the name */
			len = BPF_CORE_READ(addr, len) - (int)sizeof(__u16);
			n = len > 0 && len < CORDON_EVENT_PATH ? (__u32)len : 1;
			n &= CORDON_EVENT_PATH - 1;
			bpf_probe_read_kernel(e->path, n, (void *)addr->name + sizeof(__u16));
			e->path[0] = '@';
			e->path[n] = 0;
			bpf_ringbuf_submit(e, 0);
		}
	}
	return verdict;
}

/*
 * Rights: bit (class - 1) for the object itself and bit (class + 2) for a directory's contents,
 * set when the rule that decides that class lets the agent through at its tier. Mode and the
 * kill flag are left out on purpose: they are the same for both names of a link or rename, and
 * the final verdict applies them.
 */
struct cordon_rights_walk {
	struct cordon_ctx c;       /* copied: the callback reads it from this frame */
	struct cordon_scratch *s;
	__u32 dir;                 /* also decide the contents of a directory */
	__u32 rights;
	__u32 grant_rule;          /* a rule that grants one of the rights, for the report */
};

/* bpf_loop() step i: class i % 3 + 1, as an object (i < 3) or as a directory's contents. */
static long cordon_rights_step(__u32 i, void *arg)
{
	struct cordon_rights_walk *w = arg;
	struct cordon_scratch *s = w->s;
	struct cordon_rule_hit hit = {};
	__u32 len = s->len, bytes = len + 1;
	bool contents = i >= 3;

	if (contents && !w->dir)
		return 1;
	if (contents && len > 1 && len < CORDON_PATH_KEY_BYTES)
		s->key.path[cordon_bound(len, 0xff)] = '/'; /* "/a/b" -> "/a/b/" (without the NUL) */
	else if (contents)
		bytes = len; /* "/" itself, or a path cut at the key size */
	cordon_path_lookup(&w->c, s, (__u8)(i % 3 + 1), bytes, &hit);
	if (contents && len < CORDON_PATH_KEY_BYTES)
		s->key.path[cordon_bound(len, 0xff)] = 0;
	if ((hit.action == CORDON_ACTION_ALLOW || hit.action == CORDON_ACTION_AUDIT) &&
	    hit.min_tier <= w->c.tier) {
		w->rights |= 1u << (i & 7);
		w->grant_rule = hit.rule_id;
	}
	return 0;
}

/* The rights the resolved path in s grants (see cordon_rights_walk). */
static __always_inline __u32 cordon_rights(const struct cordon_ctx *c, struct cordon_scratch *s,
					   bool dir, __u32 *grant_rule)
{
	struct cordon_rights_walk w = { .c = *c, .s = s, .dir = dir };

	bpf_loop(6, cordon_rights_step, &w, 0);
	*grant_rule = w.grant_rule;
	return w.rights;
}

static __always_inline bool cordon_is_dir(struct dentry *dentry)
{
	return (BPF_CORE_READ(dentry, d_inode, i_mode) & 0170000) == 0040000; /* S_ISDIR */
}

/*
 * Decides giving an object a second name (link) or a new one (rename): a name may never grant a
 * right (exec, read, write) that the object's current name does not, for the object itself and,
 * for a directory, for its contents. Renaming a guarded directory (one at or above a rule's path)
 * is refused outright: it would carry what the rule protects to a name no rule covers. Both names
 * are also decided as writes by the caller. Reports a denial with the new name (or, for a guarded
 * directory, the old one) and the rule involved.
 */
static __always_inline __u8 cordon_check_rename(const struct cordon_ctx *c, __u32 hook,
						struct dentry *old_dentry, struct vfsmount *old_mnt,
						struct dentry *new_dentry, struct vfsmount *new_mnt)
{
	struct cordon_rule_hit hit = {};
	struct cordon_scratch *s;
	__u32 old_rights, new_rights, grant = 0;
	bool dir = cordon_is_dir(old_dentry);

	s = cordon_scratch_get();
	if (!s)
		return cordon_no_scratch(c);
	if (cordon_resolve(s, old_dentry, old_mnt) < 0)
		goto unresolvable;
	old_rights = cordon_rights(c, s, dir, &grant);
	if (dir) {
		cordon_path_rule(c, s, CORDON_PATH_GUARD, &hit);
		if (hit.action == CORDON_ACTION_DENY)
			goto deny; /* reported with the old name and the rule it would carry away */
	}
	if (cordon_resolve(s, new_dentry, new_mnt) < 0)
		goto unresolvable;
	new_rights = cordon_rights(c, s, dir, &grant);
	if (!(new_rights & ~old_rights)) {
		cordon_scratch_put(s);
		return CORDON_VERDICT_ALLOW;
	}
	/* Reported with the new name and a rule that grants it a right the old name lacks. */
	hit.rule_id = grant;
	goto deny;
unresolvable:
	cordon_unresolvable(s, &hit);
deny:
	hit.action = CORDON_ACTION_DENY;
	hit.min_tier = 0;
	return cordon_path_done(c, hook, s, cordon_verdict(c, &hit), hit.rule_id,
				CORDON_ACCESS_WRITE);
}

/*
 * The mounts of a filesystem, as the kernel links them: a list_head through mount.mnt_instance
 * up to 6.11, a NULL-terminated chain through mount.mnt_next_for_sb since (commit "fs: use
 * a singly linked list for sb->s_mounts"). CO-RE picks the layout the running kernel has.
 */
struct super_block___listhead {
	struct list_head s_mounts;
} __attribute__((preserve_access_index));
struct mount___listhead {
	struct list_head mnt_instance;
} __attribute__((preserve_access_index));
struct super_block___chain {
	struct mount *s_mounts;
} __attribute__((preserve_access_index));
struct mount___chain {
	struct mount *mnt_next_for_sb;
} __attribute__((preserve_access_index));

/* The first mount of dentry's filesystem, or NULL; *end is what marks the end of the list. */
static __always_inline struct mount *cordon_sb_first_mount(struct dentry *dentry, void **end)
{
	struct super_block *sb = BPF_CORE_READ(dentry, d_sb);
	void *pos;

	if (bpf_core_field_exists(struct mount___chain, mnt_next_for_sb)) {
		*end = NULL;
		return BPF_CORE_READ((struct super_block___chain *)sb, s_mounts);
	}
	*end = (void *)sb + bpf_core_field_offset(struct super_block___listhead, s_mounts);
	pos = BPF_CORE_READ((struct super_block___listhead *)sb, s_mounts.next);
	if (!pos || pos == *end)
		return NULL;
	return pos - bpf_core_field_offset(struct mount___listhead, mnt_instance);
}

static __always_inline struct mount *cordon_sb_next_mount(struct mount *m, void *end)
{
	void *pos;

	if (bpf_core_field_exists(struct mount___chain, mnt_next_for_sb))
		return BPF_CORE_READ((struct mount___chain *)m, mnt_next_for_sb);
	pos = BPF_CORE_READ((struct mount___listhead *)m, mnt_instance.next);
	if (!pos || pos == end)
		return NULL;
	return pos - bpf_core_field_offset(struct mount___listhead, mnt_instance);
}

/* Decides a write by one name of the file: through mount m. 1: named (verdict set), 0: not. */
static __always_inline int cordon_name_write(const struct cordon_ctx *c, struct cordon_scratch *s,
					     struct dentry *dentry, struct mount *m,
					     struct cordon_rule_hit *hit, __u8 *verdict)
{
	if (!m || cordon_resolve(s, dentry, (void *)m + bpf_core_field_offset(struct mount, mnt)) < 0)
		return 0;
	cordon_path_rule(c, s, CORDON_PATH_WRITE, hit);
	*verdict = cordon_verdict(c, hit);
	return 1;
}

/*
 * Decides a write to a file that a hook hands over without its mount (utimensat, setxattr,
 * removexattr, ACLs: the kernel passes only the dentry there). The file is decided by every
 * name it has through the first CORDON_NAME_MOUNTS mounts of its filesystem that are attached in
 * the agent's namespace: denied if any name denies, and unresolvable (denied, counted) if it has
 * none there. A filesystem mounted more often than that (bind mounts) is decided by the names
 * found; the agent cannot add mounts (tamper protection, seccomp layer).
 */
#define CORDON_NAME_MOUNTS 4
static __always_inline __u8 cordon_check_inode_write(const struct cordon_ctx *c, __u32 hook,
						     struct dentry *dentry)
{
	struct cordon_rule_hit hit = {};
	struct cordon_scratch *s;
	struct mount *m;
	void *end = NULL;
	__u8 verdict = CORDON_VERDICT_ALLOW;
	int named = 0;

	if (cordon_pathless(dentry))
		return CORDON_VERDICT_ALLOW;
	s = cordon_scratch_get();
	if (!s)
		return cordon_no_scratch(c);
	/* Written out, not a loop: see cordon_scratch_get. Stops at the first name that denies. */
	_Static_assert(CORDON_NAME_MOUNTS == 4, "cordon_check_inode_write tries four mounts");
	m = cordon_sb_first_mount(dentry, &end);
	named += cordon_name_write(c, s, dentry, m, &hit, &verdict);
	if (m && !cordon_refused(verdict)) {
		m = cordon_sb_next_mount(m, end);
		named += cordon_name_write(c, s, dentry, m, &hit, &verdict);
	}
	if (m && !cordon_refused(verdict)) {
		m = cordon_sb_next_mount(m, end);
		named += cordon_name_write(c, s, dentry, m, &hit, &verdict);
	}
	if (m && !cordon_refused(verdict)) {
		m = cordon_sb_next_mount(m, end);
		named += cordon_name_write(c, s, dentry, m, &hit, &verdict);
	}
	if (!named) {
		cordon_unresolvable(s, &hit); /* no name in the agent's namespace */
		verdict = cordon_verdict(c, &hit);
	}
	return cordon_path_done(c, hook, s, verdict, hit.rule_id, CORDON_ACCESS_WRITE);
}

#define FMODE_READ 0x1
#define FMODE_WRITE 0x2
#define O_TRUNC 01000

/* What an open file was opened for (read, write; O_TRUNC writes), for the files rules. */
static __always_inline __u8 cordon_open_access(struct file *file)
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
