/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * cgroup_guard: binds a cgroup to its agent as the kernel makes it, so that no process can enter
 * an attached path or a template's child unguarded: no controller round trip, no reconcile
 * window. Loaded on every backend (tracepoints, no LSM needed).
 *
 * Hooks:
 *   tp_btf/cgroup_mkdir   runs inside cgroup_mkdir(), after the cgroup exists and before
 *                         kernfs_activate() makes its directory visible: until then no process
 *                         can be moved into it (cgroup.procs cannot be opened) and no clone3()
 *                         can name it (its directory cannot be opened). The cgroup's path
 *                         (relative to the cgroup2 root) is looked up in cordon_bound_paths, and
 *                         its parent's in cordon_templates.
 *   tp_btf/cgroup_rmdir   unbinds a removed cgroup: an attached agent keeps its key and state and
 *                         waits for its path; a template's child agent ends here.
 * cgroup v2 cannot rename a cgroup (its kernfs has no rename operation), so a path, once bound,
 * stays the cgroup's path until it is removed. cgroup v1 hierarchies (a hybrid host's) are not
 * looked at: their ids are not the ids agents are found by.
 *
 * Fails: a bound path or a matching child whose entries the maps cannot take (full) is counted
 * (CORDON_CNT_CG_FAILED); the controller finds it unbound on its next round and freezes it
 * (fails closed, docs/enforcement.md). Nothing else here can fail.
 */
#include "effects.bpf.h"

#define NAME_MAX 255

struct cgroup_scratch {
	struct cordon_cgroup_path full;
	struct cordon_cgroup_path parent;
	char part[CORDON_PATTERN_PART]; /* a prefix or suffix of the child's name, zero-padded */
};

/* One slot per CPU: cgroup_mkdir and cgroup_rmdir run under cgroup_mutex, one at a time. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct cgroup_scratch);
} cordon_cgroup_scratch SEC(".maps");

/* Whether cgrp belongs to the cgroup2 hierarchy (the one every task has a dfl_cgrp in). */
static __always_inline bool on_cgroup2(struct cgroup *cgrp)
{
	struct task_struct *task = bpf_get_current_task_btf();

	return BPF_CORE_READ(cgrp, root) == BPF_CORE_READ(task, cgroups, dfl_cgrp, root);
}

/*
 * Whether the n bytes of the child's name at name + off equal part (n <= CORDON_PATTERN_PART,
 * part zero-padded): the bytes are copied into a zeroed buffer and all CORDON_PATTERN_PART
 * compared word by word, so that the verifier sees no loop and no branch per byte.
 */
static __always_inline bool part_matches(struct cgroup_scratch *sc, const char *name, __u32 off,
					 const char *part, __u32 n)
{
	const __u64 *a = (const __u64 *)sc->part, *b = (const __u64 *)part;
	__u64 diff = 0;

	__builtin_memset(sc->part, 0, sizeof(sc->part));
	if (n > CORDON_PATTERN_PART || off > NAME_MAX)
		return false;
	if (bpf_probe_read_kernel(sc->part, n & 63, name + off))
		return false;
#pragma clang loop unroll(full)
	for (int i = 0; i < CORDON_PATTERN_PART / 8; i++)
		diff |= a[i] ^ b[i];
	return diff == 0;
}

/* Whether the child's name (len bytes at name) matches template t. */
static __always_inline bool template_matches(struct cgroup_scratch *sc,
					     const struct cordon_template *t, const char *name,
					     __u32 len)
{
	__u32 p = t->prefix_len, s = t->suffix_len;

	if (!t->template_id || p > CORDON_PATTERN_PART || s > CORDON_PATTERN_PART)
		return false;
	if (t->star ? len < p + s : len != p)
		return false;
	return part_matches(sc, name, 0, t->prefix, p) &&
	       (!t->star || part_matches(sc, name, len - s, t->suffix, s));
}

/* A new agent for a template's child: its own id, score and key; bound last. */
static __always_inline void make_child(const struct cordon_template *t, __u64 cgid)
{
	struct cordon_agent_live live = {};
	struct cordon_event_share share = {};
	struct cordon_bound bound = {};
	struct cordon_agent a;
	__u32 zero = 0, *next, id;

	next = bpf_map_lookup_elem(&cordon_kernel_ids, &zero);
	if (!next)
		goto failed;
	id = CORDON_CHILD_ID_BASE | (__sync_fetch_and_add(next, 1) & (CORDON_CHILD_ID_BASE - 1));
	bound.agent_key = CORDON_AGENT_KEY(id);
	__builtin_memcpy(&a, &t->proto, sizeof(a));
	a.agent_id = id;
	a.flags |= CORDON_AGENT_F_CHILD;
	live.score = t->initial_score;
	live.tier = t->initial_tier;
	live.agent_id = id;
	live.stamp_ns = bpf_ktime_get_ns(); /* recovery counts from now */
	if (bpf_map_update_elem(&cordon_agent_live, &bound.agent_key, &live, BPF_NOEXIST))
		goto failed;
	/* Its share of the event buffer counts from its first record (an LRU: never full). */
	bpf_map_update_elem(&cordon_event_shares, &bound.agent_key, &share, BPF_ANY);
	if (bpf_map_update_elem(&cordon_agents, &bound.agent_key, &a, BPF_NOEXIST))
		goto undo_live;
	if (bpf_map_update_elem(&cordon_agent_cgroups, &cgid, &bound, BPF_ANY))
		goto undo_agent;
	cordon_count(CORDON_CNT_CG_CHILD);
	return;
undo_agent:
	bpf_map_delete_elem(&cordon_agents, &bound.agent_key);
undo_live:
	bpf_map_delete_elem(&cordon_agent_live, &bound.agent_key);
failed:
	cordon_count(CORDON_CNT_CG_FAILED);
}

/*
 * The templates of the new cgroup's parent that may claim it. The path (len bytes) ends with
 * "/" and the cgroup's own name (its kernfs node's): the parent's path is what comes before
 * ("/" for a child of the root).
 */
static __always_inline void match_templates(struct cgroup_scratch *sc, struct cgroup *cgrp,
					    const char *path, __u32 len, __u64 cgid)
{
	const char *name = BPF_CORE_READ(cgrp, kn, name);
	struct cordon_template_set *set;
	__u32 nlen, plen;
	long n;

	n = bpf_probe_read_kernel_str(sc->parent.path, NAME_MAX + 1, name);
	if (n <= 1 || (__u32)n > len)
		return;
	nlen = (__u32)n - 1;
	plen = len - nlen - 1; /* without the '/' before the name */
	if (plen == 0)
		plen = 1;
	if (plen > CORDON_CGROUP_PARENT_MAX)
		return;
	__builtin_memset(&sc->parent, 0, sizeof(sc->parent));
	if (bpf_probe_read_kernel(sc->parent.path, plen & 0xff, path))
		return;
	set = bpf_map_lookup_elem(&cordon_templates, &sc->parent);
	if (!set)
		return;
#pragma clang loop unroll(full)
	for (__u32 k = 0; k < CORDON_TEMPLATES_PER_PARENT; k++) {
		if (template_matches(sc, &set->t[k], name, nlen)) {
			make_child(&set->t[k], cgid);
			return;
		}
	}
}

SEC("tp_btf/cgroup_mkdir")
int BPF_PROG(cgroup_guard_mkdir, struct cgroup *cgrp, const char *path)
{
	struct cgroup_scratch *sc;
	struct cordon_config *cfg;
	struct cordon_bound *b;
	__u32 zero = 0;
	__u64 cgid;
	int level;
	long len;

	if (!on_cgroup2(cgrp))
		return 0;
	/* Nothing is bound at this cgroup's level: no path to read (the common case of churn). */
	cfg = bpf_map_lookup_elem(&cordon_config, &zero);
	level = BPF_CORE_READ(cgrp, level);
	if (!cfg || level < 0 || level >= CORDON_MAX_LEVEL || !((cfg->bind_levels >> level) & 1))
		return 0;
	sc = bpf_map_lookup_elem(&cordon_cgroup_scratch, &zero);
	if (!sc)
		return 0;
	__builtin_memset(&sc->full, 0, sizeof(sc->full));
	len = bpf_probe_read_kernel_str(sc->full.path, sizeof(sc->full.path), path);
	/* len counts the NUL: a path of CORDON_CGROUP_PATH_MAX bytes reads as MAX + 1. A longer one
	 * (read cut at 511 bytes) is longer than any path cordon binds: ignored, never matched cut. */
	if (len <= 1 || len > CORDON_CGROUP_PATH_MAX + 1)
		return 0;
	len -= 1; /* without the NUL */
	cgid = BPF_CORE_READ(cgrp, kn, id);
	b = bpf_map_lookup_elem(&cordon_bound_paths, &sc->full);
	if (b) {
		struct cordon_bound v = {.agent_key = b->agent_key};

		if (bpf_map_update_elem(&cordon_agent_cgroups, &cgid, &v, BPF_ANY))
			cordon_count(CORDON_CNT_CG_FAILED);
		else
			cordon_count(CORDON_CNT_CG_BOUND);
		return 0;
	}
	match_templates(sc, cgrp, path, (__u32)len, cgid);
	return 0;
}

SEC("tp_btf/cgroup_rmdir")
int BPF_PROG(cgroup_guard_rmdir, struct cgroup *cgrp, const char *path)
{
	struct cordon_bound *b;
	struct cordon_agent *a;
	__u64 cgid, key;

	if (!on_cgroup2(cgrp))
		return 0;
	cgid = BPF_CORE_READ(cgrp, kn, id);
	b = bpf_map_lookup_elem(&cordon_agent_cgroups, &cgid);
	if (!b)
		return 0;
	key = b->agent_key;
	bpf_map_delete_elem(&cordon_agent_cgroups, &cgid);
	cordon_count(CORDON_CNT_CG_REMOVED);
	/* A template's child ends with its cgroup: its entries go now, so that churn can never fill
	 * the tables while no controller runs (the controller drops its tasks and grants). */
	a = bpf_map_lookup_elem(&cordon_agents, &key);
	if (a && (a->flags & CORDON_AGENT_F_CHILD)) {
		bpf_map_delete_elem(&cordon_agents, &key);
		bpf_map_delete_elem(&cordon_agent_live, &key);
		bpf_map_delete_elem(&cordon_event_shares, &key);
	}
	return 0;
}
