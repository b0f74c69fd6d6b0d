/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The one decision procedure shared by every hook of every backend, as inline functions, plus the
 * maps every cordon object declares. The controller loads net_guard first and hands its map fds
 * to the other objects (bpf_map__reuse_fd), so all programs see one set of maps.
 *
 * Identity: an agent is a cgroup subtree: <cgroup2 root>/cordon/<agent> for the agents cordon
 * starts, or any cgroup an operator attaches (a systemd service's, a container's). The controller
 * keeps the set of cgroup levels that hold an agent in cordon_config.agent_levels, so the agent of
 * the current task is its ancestor at one of those levels: one helper call and one map lookup per
 * level in use, whatever depth the task's own cgroup has below its agent, and whatever the number
 * of agents. Agents never nest (the controller refuses it), so at most one level matches. A task
 * above every level in use pays no lookup at all.
 *
 * Procedure: agent lookup -> kill and freeze flags -> longest matching rule (or the class default) -> the
 * rule's minimum tier against the agent's tier (derived from its score) -> mode (audit allows and
 * reports) -> verdict, event, score penalty, kill action.
 *
 * Missing entries: a cgroup that is not in cordon_agents is not an agent and is allowed (fail
 * open for the host: cordon must never break processes it was not asked to guard). An agent whose
 * policy is missing, whose path cannot be resolved, or whose decision cannot get scratch memory
 * is denied (fail closed).
 */
#pragma once

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include <cordon/abi.h>

#define EPERM 1
#define SIGKILL 9

/*
 * v & mask, with the mask kept: clang drops a mask that an earlier comparison makes redundant,
 * and the verifier, which may not have kept that comparison's bound, then refuses the access.
 */
#define cordon_bound(v, mask)                                                                  \
	({                                                                                     \
		__u32 __v = (v);                                                               \
		asm volatile("" : "+r"(__v));                                                  \
		__v & (mask);                                                                  \
	})

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* enum cordon_backend this object was loaded as; copied into events. */
const volatile __u8 backend_id = CORDON_BACKEND_NONE;

/* What the controller says about each agent; programs only read it (see abi.h). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, CORDON_MAX_AGENTS);
	__type(key, __u64); /* cgroup id of the agent's root cgroup */
	__type(value, struct cordon_agent);
} cordon_agents SEC(".maps");

/* What the kernel says about each agent (score, kill, freeze); the controller only reads it. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, CORDON_MAX_AGENTS);
	__type(key, __u64);
	__type(value, struct cordon_agent_live);
} cordon_agent_live SEC(".maps");

/* One entry: ABI version, backend, the levels that hold agents, id counters (the controller's). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct cordon_config);
} cordon_config SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024); /* compiled policies loaded at once; one per agent at most */
	__type(key, __u32);        /* policy id */
	__type(value, struct cordon_policy);
} cordon_policies SEC(".maps");

/*
 * Path rules of every loaded policy. A policy compiles to at most 3 entries per source rule
 * (read, write and the implied directory entry) plus guard entries for the directories above
 * rule paths, which rules share; the compiler refuses a policy with more than
 * CORDON_MAX_PATH_ENTRIES entries, and 8 x 16,384 leaves room for two policies at that limit.
 */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 8 * CORDON_MAX_PATH_RULES);
	__uint(map_flags, BPF_F_NO_PREALLOC); /* required for LPM tries */
	__type(key, struct cordon_path_key);
	__type(value, struct cordon_path_value);
} cordon_path_rules SEC(".maps");

/*
 * Network prefixes: one entry per distinct CIDR, at most one per rule (or resolved address), of
 * every loaded policy: room for 8 policies at the per-policy limit (entries cost memory only
 * when used: LPM tries are not preallocated).
 */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 8 * CORDON_MAX_NET_RULES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct cordon_net_key);
	__type(value, struct cordon_net_value);
} cordon_net_rules SEC(".maps");

/* Processes of cordon itself (tgid -> 1) that agents may not signal (lsm backend). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, __u8);
} cordon_protected SEC(".maps");

/* cordon's own state files and directories (struct cordon_inode_key -> 1; lsm backend). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, struct cordon_inode_key);
	__type(value, __u8);
} cordon_state_inodes SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, CORDON_RINGBUF_BYTES);
} cordon_events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, CORDON_CNT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} cordon_counters SEC(".maps");

static __always_inline void cordon_count(__u32 counter)
{
	__u64 *v = bpf_map_lookup_elem(&cordon_counters, &counter);

	if (v)
		__sync_fetch_and_add(v, 1); /* programs may be preempted on the same CPU */
}

/*
 * The agent the current task belongs to, or NULL. *cgid receives the agent cgroup id, *level its
 * cgroup level. Missing config (no agents yet) means no agent: fail open for the host.
 */
static __always_inline struct cordon_agent *cordon_current_agent(__u64 *cgid, __u32 *level)
{
	struct cordon_agent *a;
	struct cordon_config *cfg;
	__u32 zero = 0;
	__u64 levels;

	cfg = bpf_map_lookup_elem(&cordon_config, &zero);
	if (!cfg)
		return NULL;
	levels = cfg->agent_levels;
#pragma clang loop unroll(full)
	for (__u32 l = 1; l < CORDON_MAX_LEVEL; l++) {
		if (!(levels & (1ull << l)))
			continue;
		*cgid = bpf_get_current_ancestor_cgroup_id(l);
		if (!*cgid)
			return NULL; /* the task lives above this level, and so above every deeper one */
		a = bpf_map_lookup_elem(&cordon_agents, cgid);
		if (a) {
			*level = l;
			return a;
		}
	}
	return NULL;
}

/*
 * One decision in progress. What it uses of the controller's half of the agent is copied once,
 * at its start: a policy swap (one write of the agent's entry) lands between two decisions,
 * never inside one, and the map may reuse the replaced entry's memory at once.
 */
struct cordon_ctx {
	struct cordon_agent *agent;
	struct cordon_agent_live *live; /* NULL: state missing, every access is denied */
	struct cordon_policy *policy;   /* NULL: policy missing, every access is denied */
	__u64 cgid;
	__u32 level;     /* cgroup level of the agent's root cgroup */
	__u32 tier;      /* the agent's trust tier when the decision began */
	__u64 task_id;   /* the agent's task */
	__u32 agent_id;
	__u32 thaw_epoch;
	__u32 policy_id; /* the policy this decision uses, throughout */
	__u8 mode;       /* enum cordon_mode this decision uses */
	bool stopped;    /* killed or frozen when the decision began: everything is refused */
};

static __always_inline __u32 cordon_tier(const struct cordon_agent_live *live,
					 const struct cordon_policy *policy)
{
	__u32 tier = 0;

	for (int i = 1; i < CORDON_MAX_TIERS; i++)
		if (i < policy->ntiers && live->score >= policy->tier_min_score[i])
			tier = i;
	return tier;
}

/*
 * True (and *c filled) when the current task is an agent. The tier is computed once here, not
 * per verdict: a hook that decides several names (rename) would otherwise give the verifier one
 * copy of the tier loop per verdict to explore.
 */
static __always_inline bool cordon_enter(struct cordon_ctx *c)
{
	c->agent = cordon_current_agent(&c->cgid, &c->level);
	if (!c->agent)
		return false;
	c->policy_id = c->agent->policy_id;
	c->mode = c->agent->mode;
	c->task_id = c->agent->task_id;
	c->agent_id = c->agent->agent_id;
	c->thaw_epoch = c->agent->thaw_epoch;
	c->live = bpf_map_lookup_elem(&cordon_agent_live, &c->cgid);
	c->policy = c->live ? bpf_map_lookup_elem(&cordon_policies, &c->policy_id) : NULL;
	c->tier = c->policy ? cordon_tier(c->live, c->policy) : 0;
	c->stopped = c->live && (cordon_agent_killed(c->agent, c->live) ||
				 cordon_agent_frozen(c->agent, c->live));
	return true;
}

/* What one rule (or default) says, before the agent's state is applied. */
struct cordon_rule_hit {
	__u32 rule_id;
	__u8 action;   /* enum cordon_action */
	__u8 min_tier;
};

/* Severity order for combining two decisions of one access: kill > freeze > deny > audit > allow. */
static __always_inline int cordon_severity(__u8 verdict)
{
	switch (verdict) {
	case CORDON_VERDICT_KILL:
		return 4;
	case CORDON_VERDICT_FREEZE:
		return 3;
	case CORDON_VERDICT_DENY:
		return 2;
	case CORDON_VERDICT_AUDIT:
		return 1;
	default:
		return 0;
	}
}

/*
 * The verdict for one rule hit: kill and freeze flags, tier, mode. No side effects; see
 * cordon_apply. A missing policy or agent state denies (fail closed).
 */
static __always_inline __u8 cordon_verdict(const struct cordon_ctx *c,
					   const struct cordon_rule_hit *hit)
{
	__u8 v;

	if (c->stopped || !c->policy)
		return CORDON_VERDICT_DENY;
	switch (hit->action) {
	case CORDON_ACTION_ALLOW:
		v = CORDON_VERDICT_ALLOW;
		break;
	case CORDON_ACTION_AUDIT:
		v = CORDON_VERDICT_AUDIT;
		break;
	case CORDON_ACTION_KILL:
		v = CORDON_VERDICT_KILL;
		break;
	case CORDON_ACTION_FREEZE:
		v = CORDON_VERDICT_FREEZE;
		break;
	default:
		v = CORDON_VERDICT_DENY;
	}
	/* An allow below its minimum tier denies: it never falls back to the class default. */
	if ((v == CORDON_VERDICT_ALLOW || v == CORDON_VERDICT_AUDIT) && c->tier < hit->min_tier)
		v = CORDON_VERDICT_DENY;
	if (c->mode == CORDON_MODE_AUDIT && v != CORDON_VERDICT_ALLOW)
		v = CORDON_VERDICT_AUDIT;
	return v;
}

/* True when a verdict refuses the access (deny, kill, freeze); allow and audit let it through. */
static __always_inline bool cordon_refused(__u8 verdict)
{
	return verdict == CORDON_VERDICT_DENY || verdict == CORDON_VERDICT_KILL ||
	       verdict == CORDON_VERDICT_FREEZE;
}

/*
 * Lowers the score atomically: a compare-and-swap loop, so that two denials on two CPUs both
 * count. The bound keeps the verifier happy; losing 8 races in a row needs 8 other penalties
 * landing in between, each of which lowered the score anyway.
 */
static __always_inline void cordon_penalize(struct cordon_agent_live *live, __u32 penalty)
{
	__u32 old, new;

	if (!penalty)
		return;
#pragma clang loop unroll(full)
	for (int i = 0; i < 8; i++) {
		old = *(volatile __u32 *)&live->score;
		new = old > penalty ? old - penalty : 0;
		if (old == new || __sync_val_compare_and_swap(&live->score, old, new) == old)
			return;
	}
}

/*
 * Side effects of a verdict: counters, score penalties, and for kill the agent's kill flag (from
 * this instant every hook denies every process of the agent) plus, where the hook may call
 * bpf_send_signal(), SIGKILL to the current process. cgroup sock_addr programs may not on 6.1
 * (the helper is missing from their function list there), so network kill verdicts rely on the
 * flag and the controller, which empties the cgroup when it reads the flag. A freeze verdict marks
 * the agent frozen for the thaw epoch in force (every hook refuses it from this instant); the
 * controller, polling the mark, freezes the cgroup. Both flags are carried out from kernel state,
 * so a lost event loses neither.
 */
static __always_inline void cordon_apply_ex(const struct cordon_ctx *c, __u8 verdict, bool signal)
{
	cordon_count(verdict == CORDON_VERDICT_FREEZE ? CORDON_CNT_FREEZE : verdict);
	if (!c->policy)
		return;
	if (verdict == CORDON_VERDICT_DENY) {
		cordon_penalize(c->live, c->policy->penalty_deny);
	} else if (verdict == CORDON_VERDICT_FREEZE) {
		cordon_penalize(c->live, c->policy->penalty_deny);
		c->live->frozen_mark = c->thaw_epoch + 1;
	} else if (verdict == CORDON_VERDICT_KILL) {
		cordon_penalize(c->live, c->policy->penalty_kill);
		__sync_fetch_and_or(&c->live->flags, CORDON_AGENT_F_KILLED);
		if (signal)
			bpf_send_signal(SIGKILL);
	}
}

/*
 * compat: a denial carried out at a syscall's exit, after the kernel changed an object that other
 * processes may share (a connected or listening socket that a forked child also holds). Killing
 * the caller does not take the object from them, so the whole agent is marked killed (every hook
 * refuses it from this instant) and cordon empties its cgroup. Fails closed.
 */
static __always_inline void cordon_kill_agent(const struct cordon_ctx *c)
{
	if (c->live)
		__sync_fetch_and_or(&c->live->flags, CORDON_AGENT_F_KILLED);
	bpf_send_signal(SIGKILL); /* without state, the agent is refused everything anyway */
}

static __always_inline void cordon_apply(const struct cordon_ctx *c, __u8 verdict)
{
	cordon_apply_ex(c, verdict, true);
}

static __always_inline bool cordon_should_report(const struct cordon_ctx *c, __u8 verdict)
{
	return verdict != CORDON_VERDICT_ALLOW || (c->policy && c->policy->trace_all);
}

/* Reserves an event with its header filled; NULL (and a counted drop) when the buffer is full. */
static __always_inline struct cordon_event *cordon_event_start(const struct cordon_ctx *c,
							       __u32 hook, __u8 verdict,
							       __u32 rule_id)
{
	struct cordon_event *e;
	struct task_struct *task;
	__u64 id;

	e = bpf_ringbuf_reserve(&cordon_events, sizeof(*e), 0);
	if (!e) {
		cordon_count(CORDON_CNT_RINGBUF_DROPS);
		return NULL;
	}
	task = (struct task_struct *)bpf_get_current_task();
	id = bpf_get_current_pid_tgid();
	e->h.ts_ns = bpf_ktime_get_ns();
	e->h.cgroup_id = c->cgid;
	e->h.task_id = c->task_id;
	e->h.agent_id = c->agent_id;
	e->h.pid = (__u32)id;
	e->h.tgid = id >> 32;
	e->h.ppid = BPF_CORE_READ(task, real_parent, tgid);
	e->h.uid = (__u32)bpf_get_current_uid_gid();
	e->h.rule_id = c->stopped ? 0 : rule_id; /* refused because killed or frozen, not by a rule */
	e->h.hook = hook;
	e->h.verdict = verdict;
	e->h.backend = backend_id;
	e->h.size = sizeof(*e);
	e->h._pad0 = 0;
	bpf_get_current_comm(e->h.comm, sizeof(e->h.comm));
	__builtin_memset(e->addr, 0, sizeof(e->addr));
	e->port = 0;
	e->family = 0;
	e->protocol = 0;
	e->access = 0;
	e->_pad0[0] = e->_pad0[1] = e->_pad0[2] = 0;
	e->path[0] = 0;
	return e;
}

/*
 * Tamper protection (docs/enforcement.md, "What a root agent can and cannot do"): always denied
 * for agents, in audit mode too, because audit mode must not let an agent switch its guard off.
 * The event's path field names what was attempted, in parentheses ("(bpf)"), or the resolved
 * path of the file involved.
 */
static __always_inline struct cordon_event *cordon_tamper_start(const struct cordon_ctx *c)
{
	cordon_apply(c, CORDON_VERDICT_DENY);
	return cordon_event_start(c, CORDON_HOOK_TAMPER, CORDON_VERDICT_DENY, 0);
}

/* Denies and reports; `what` is a string literal of at most CORDON_EVENT_PATH bytes. */
#define cordon_deny_tamper(c, what)                                                            \
	({                                                                                     \
		struct cordon_event *__e = cordon_tamper_start(c);                             \
		_Static_assert(sizeof(what) <= CORDON_EVENT_PATH, "tamper label too long");   \
		if (__e) {                                                                     \
			__builtin_memcpy(__e->path, what, sizeof(what));                       \
			bpf_ringbuf_submit(__e, 0);                                            \
		}                                                                              \
		CORDON_VERDICT_DENY;                                                           \
	})
