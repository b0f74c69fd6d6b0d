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
	/* compiled policies loaded at once: per agent its policy and grant set, per task an
	 * overlay and a grant set, and room for a swap of each. Not preallocated (written only by
	 * the controller): a preallocated table this size took seconds to create under the VM
	 * tier's emulated CPU, at every load. */
	__uint(max_entries, 8192);
	__uint(map_flags, BPF_F_NO_PREALLOC);
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

/* Tasks (task number -> struct cordon_task), written by the controller (see abi.h). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, CORDON_MAX_TASKS);
	__uint(map_flags, BPF_F_NO_PREALLOC); /* entries cost memory only when used */
	__type(key, __u64);
	__type(value, struct cordon_task);
} cordon_tasks SEC(".maps");

/* Processes bound to a task (tgid -> struct cordon_proc_task): bound by the controller,
 * inherited at fork and removed at exit by task_guard (exec_guard.bpf.c). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, CORDON_MAX_TASK_PROCS);
	/* Not preallocated: the fork program's insert allocates (bpf_mem_alloc); a failed insert
	 * fails closed (task_guard_fork). */
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u32);
	__type(value, struct cordon_proc_task);
} cordon_proc_tasks SEC(".maps");

/* Grants (grant id -> struct cordon_grant); their paths and addresses are compiled into the
 * rule tries under a grant set's id, with CORDON_RULE_GRANT | grant id as the rule id. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, CORDON_MAX_GRANTS);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u32);
	__type(value, struct cordon_grant);
} cordon_grants SEC(".maps");

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
	__u64 task_id;   /* the task this process is in (process-bound, else the agent's); 0 none */
	__u32 agent_id;
	__u32 thaw_epoch;
	__u32 policy_id; /* the policy this decision uses, throughout */
	__u32 overlay_id;   /* the task's overlay policy; 0 none */
	__u32 task_grants;  /* the task's grant set; 0 none */
	__u32 agent_grants; /* the agent-wide grant set; 0 none */
	__u32 layers;       /* any of the three above: the overlay and grant layers apply */
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

/* The start time of the current process (its leader's), which a reused pid does not share. */
static __always_inline __u64 cordon_process_start(void)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();

	return BPF_CORE_READ(task, group_leader, start_time);
}

/*
 * Global functions: the verifier checks each of them once, on its own, instead of once per call
 * site and per path leading there. Everything with many branches that does not decide the
 * access itself (which task a process is in, trust bookkeeping, the side effects of a verdict)
 * lives in one, so that the hooks' verification cost stays what the decision needs. They look
 * up what they need by cgroup id and return scalars.
 */
__u64 cordon_task_of(__u64 cgid, __u64 agent_task);
int cordon_trust_refresh(__u64 cgid, __u32 policy_id);
int cordon_effects(__u64 cgid, __u32 policy_id, __u32 verdict);
int cordon_tier_note(__u64 cgid, __u32 policy_id, __u32 cause);

/*
 * True (and *c filled) when the current task is an agent. The tier is computed once here, not
 * per verdict: a hook that decides several names (rename) would otherwise give the verifier one
 * copy of the tier loop per verdict to explore.
 */
static __always_inline bool cordon_enter(struct cordon_ctx *c)
{
	struct cordon_task *t = NULL;

	c->agent = cordon_current_agent(&c->cgid, &c->level);
	if (!c->agent)
		return false;
	c->stopped = false;
	c->policy_id = c->agent->policy_id;
	c->mode = c->agent->mode;
	c->agent_id = c->agent->agent_id;
	c->thaw_epoch = c->agent->thaw_epoch;
	c->agent_grants = c->agent->grant_set;
	/* The task: the one the process is bound to, else the agent's; ended or expired: none.
	 * An agent with no task (the common case) costs no call. */
	c->task_id = 0;
	if (c->agent->task_id || (c->agent->flags & CORDON_AGENT_F_PROC_TASKS))
		c->task_id = cordon_task_of(c->cgid, c->agent->task_id);
	if (c->task_id)
		t = bpf_map_lookup_elem(&cordon_tasks, &c->task_id);
	c->overlay_id = t ? t->overlay_id : 0;
	c->task_grants = t ? t->grant_set : 0;
	c->layers = c->overlay_id | c->task_grants | c->agent_grants;
	c->live = bpf_map_lookup_elem(&cordon_agent_live, &c->cgid);
	c->policy = c->live ? bpf_map_lookup_elem(&cordon_policies, &c->policy_id) : NULL;
	c->tier = c->policy ? cordon_tier(c->live, c->policy) : 0;
	/* Trust bookkeeping only when there is some: recovery to credit, an operator's set to
	 * apply, or a tier to report. */
	if (c->policy && ((c->policy->recovery_per_minute && c->live->score < 1000) ||
			  c->agent->score_set_seq != c->live->set_seq || c->tier != c->live->tier)) {
		cordon_trust_refresh(c->cgid, c->policy_id);
		c->tier = cordon_tier(c->live, c->policy);
	}
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
 * Whether a grant may lift what a rule hit says at `tier`: a deny, or an allow or audit below
 * its tier. Never a kill or freeze rule or default (a grant does not override them), never
 * tamper protection (not decided by rules).
 */
static __always_inline bool cordon_grantable(__u32 tier, const struct cordon_rule_hit *hit)
{
	if (hit->action == CORDON_ACTION_DENY)
		return true;
	return (hit->action == CORDON_ACTION_ALLOW || hit->action == CORDON_ACTION_AUDIT) &&
	       tier < hit->min_tier;
}

/* A rule hit and the agent's tier in one scalar, for the global functions' arguments. */
static __always_inline __u64 cordon_hit_pack(const struct cordon_rule_hit *hit, __u32 tier)
{
	return (__u64)hit->rule_id | (__u64)hit->action << 32 | (__u64)hit->min_tier << 40 |
	       (__u64)(tier & 0xff) << 48;
}

/* The hit from cordon_hit_pack; returns the tier. */
static __always_inline __u32 cordon_hit_unpack(struct cordon_rule_hit *hit, __u64 v)
{
	hit->rule_id = (__u32)v;
	hit->action = (__u8)(v >> 32);
	hit->min_tier = (__u8)(v >> 40);
	return (__u8)(v >> 48);
}

/* What the overlay and grant layers need of the current task's agent (cordon_layers_of). */
struct cordon_layers {
	__u64 cgid;
	__u64 task_id;
	__u32 overlay_id;
	__u32 task_grants;
	__u32 agent_grants;
	__u32 _pad;
};

/*
 * Whether the grant a compiled grant-set entry names still allows, for this agent and task, by
 * the kernel clock: an expired grant never allows, whether or not the controller runs.
 */
static __always_inline bool cordon_grant_live(const struct cordon_layers *l, __u32 rule_id)
{
	__u32 id = rule_id & ~CORDON_RULE_GRANT;
	struct cordon_grant *g;

	if (!(rule_id & CORDON_RULE_GRANT))
		return false;
	g = bpf_map_lookup_elem(&cordon_grants, &id);
	if (!g || g->cgid != l->cgid)
		return false;
	if (g->task_id && g->task_id != l->task_id)
		return false; /* bound to a task this process is not in, or that ended */
	return bpf_ktime_get_ns() < g->expires_ns;
}

/* A live grant's hit: allowed and reported (audit), naming the grant. */
static __always_inline void cordon_granted(struct cordon_rule_hit *hit, __u32 rule_id)
{
	hit->rule_id = rule_id;
	hit->action = CORDON_ACTION_AUDIT;
	hit->min_tier = 0;
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
			break;
	}
	live->stamp_ns = bpf_ktime_get_ns(); /* recovery counts from the last penalty */
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
	if (!c->policy || !c->live || !cordon_refused(verdict))
		return;
	cordon_effects(c->cgid, c->policy_id, verdict); /* the kill flag before the signal */
	if (verdict == CORDON_VERDICT_KILL && signal)
		bpf_send_signal(SIGKILL);
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

/* Fills a record's header for the current task. */
static __always_inline void cordon_header_fill(struct cordon_event_header *h,
					       const struct cordon_ctx *c, __u32 hook,
					       __u8 verdict, __u32 rule_id, __u16 size)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	__u64 id = bpf_get_current_pid_tgid();

	h->ts_ns = bpf_ktime_get_ns();
	h->cgroup_id = c->cgid;
	h->task_id = c->task_id;
	h->agent_id = c->agent_id;
	h->pid = (__u32)id;
	h->tgid = id >> 32;
	h->ppid = BPF_CORE_READ(task, real_parent, tgid);
	h->uid = (__u32)bpf_get_current_uid_gid();
	h->rule_id = c->stopped ? 0 : rule_id; /* refused because killed or frozen, not by a rule */
	h->hook = hook;
	h->verdict = verdict;
	h->backend = backend_id;
	h->size = size;
	h->_pad0 = 0;
	bpf_get_current_comm(h->comm, sizeof(h->comm));
}

/* Reserves an event with its header filled; NULL (and a counted drop) when the buffer is full. */
static __always_inline struct cordon_event *cordon_event_start(const struct cordon_ctx *c,
							       __u32 hook, __u8 verdict,
							       __u32 rule_id)
{
	struct cordon_event *e;

	e = bpf_ringbuf_reserve(&cordon_events, sizeof(*e), 0);
	if (!e) {
		cordon_count(CORDON_CNT_RINGBUF_DROPS);
		if (c->live)
			__sync_fetch_and_add(&c->live->events_lost, 1);
		return NULL;
	}
	cordon_header_fill(&e->h, c, hook, verdict, rule_id, sizeof(*e));
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
 * After a score change: when the tier the score gives differs from the one last reported, one
 * CPU wins the change (compare-and-swap), reports it (old tier, new tier, cause, score) and
 * carries out the entered tier's on_enter from kernel state: a freeze marks the agent frozen and
 * a kill marks it killed, exactly as a freeze or kill rule does, so a lost event loses neither.
 * Called only from the global functions below.
 */
static __always_inline void cordon_tier_check(const struct cordon_ctx *c, __u32 cause)
{
	struct cordon_agent_live *live = c->live;
	struct cordon_policy *policy = c->policy;
	struct cordon_event *e;
	__u32 tier, old;
	__u8 on, verdict = CORDON_VERDICT_ALLOW;

	if (!live || !policy)
		return;
	tier = cordon_tier(live, policy);
	old = live->tier;
	if (old == tier || __sync_val_compare_and_swap(&live->tier, old, tier) != old)
		return;
	on = policy->tier_on_enter[tier & (CORDON_MAX_TIERS - 1)];
	if (on == CORDON_ENTER_FREEZE) {
		live->frozen_mark = c->thaw_epoch + 1;
		verdict = CORDON_VERDICT_FREEZE;
	} else if (on == CORDON_ENTER_KILL) {
		__sync_fetch_and_or(&live->flags, CORDON_AGENT_F_KILLED);
		verdict = CORDON_VERDICT_KILL;
	}
	e = cordon_event_start(c, CORDON_HOOK_TRUST, verdict, 0);
	if (e) {
		e->family = (__u8)old;
		e->protocol = (__u8)tier;
		e->access = (__u8)cause;
		e->port = (__u16)live->score;
		bpf_ringbuf_submit(e, 0);
	}
}

/* What the global functions below work on: the agent's entries, looked up again by cgroup id. */
static __always_inline bool cordon_fx_ctx(struct cordon_ctx *c, __u64 cgid, __u32 policy_id)
{
	c->cgid = cgid;
	c->agent = bpf_map_lookup_elem(&cordon_agents, &cgid);
	c->live = bpf_map_lookup_elem(&cordon_agent_live, &cgid);
	c->policy = bpf_map_lookup_elem(&cordon_policies, &policy_id);
	if (!c->agent || !c->live || !c->policy)
		return false;
	c->policy_id = policy_id;
	c->agent_id = c->agent->agent_id;
	c->thaw_epoch = c->agent->thaw_epoch;
	c->task_id = c->agent->task_id;
	c->stopped = false;
	return true;
}

/* Task number `task` if it is a live task of agent cgid (not ended, not expired). */
static __always_inline bool cordon_task_live(__u64 cgid, __u64 task)
{
	struct cordon_task *t;

	if (!task)
		return false;
	t = bpf_map_lookup_elem(&cordon_tasks, &task);
	if (!t || t->cgid != cgid)
		return false;
	/* Expired: the task is over in the kernel, whether or not the controller runs. */
	return !t->expires_ns || bpf_ktime_get_ns() < t->expires_ns;
}

/*
 * The task of the current process in agent cgid: the one it is bound to (cordon task begin
 * --pid, inherited at fork) if that is live, else the agent's own task if that is live, else 0.
 */
__noinline __u64 cordon_task_of(__u64 cgid, __u64 agent_task)
{
	struct cordon_proc_task *pt;
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	__u64 start;

	pt = bpf_map_lookup_elem(&cordon_proc_tasks, &tgid);
	if (pt) {
		start = cordon_process_start();
		/* Bound by the controller (start 0): the first decision of that process claims it. */
		if (pt->start_ns == 0)
			__sync_val_compare_and_swap(&pt->start_ns, 0, start);
		if (pt->start_ns == start && cordon_task_live(cgid, pt->task_id))
			return pt->task_id;
	}
	return cordon_task_live(cgid, agent_task) ? agent_task : 0;
}

/* The current task's agent, task, overlay and grant sets, found again; false if no agent. */
static __always_inline bool cordon_layers_of(struct cordon_layers *l)
{
	struct cordon_agent *a;
	struct cordon_task *t = NULL;
	__u32 level;

	a = cordon_current_agent(&l->cgid, &level);
	if (!a)
		return false;
	l->agent_grants = a->grant_set;
	l->task_id = 0;
	if (a->task_id || (a->flags & CORDON_AGENT_F_PROC_TASKS))
		l->task_id = cordon_task_of(l->cgid, a->task_id);
	if (l->task_id)
		t = bpf_map_lookup_elem(&cordon_tasks, &l->task_id);
	l->overlay_id = t ? t->overlay_id : 0;
	l->task_grants = t ? t->grant_set : 0;
	return true;
}

/*
 * Trust kept current by the kernel at each decision, with no controller round trip: an
 * operator's `cordon trust --set` is applied once (the kernel is the only writer of the score),
 * and recovery credits the whole points earned since stamp_ns (stamp_ns advances by the time
 * those points took, so nothing is lost to rounding; one CPU wins each interval's credit).
 */
__noinline int cordon_trust_refresh(__u64 cgid, __u32 policy_id)
{
	struct cordon_ctx c = {};
	struct cordon_agent_live *live;
	__u32 seq, set, old_seq, rpm, cause = 0;
	__u64 now, stamp, per_point, points, new_stamp;

	if (!cordon_fx_ctx(&c, cgid, policy_id))
		return 0;
	live = c.live;
	seq = c.agent->score_set_seq;
	set = c.agent->score_set;
	old_seq = live->set_seq;
	rpm = c.policy->recovery_per_minute;
	if (seq != old_seq) {
		if (__sync_val_compare_and_swap(&live->set_seq, old_seq, seq) == old_seq) {
			live->score = set > 1000 ? 1000 : set;
			live->stamp_ns = bpf_ktime_get_ns();
			cause = CORDON_TRUST_OPERATOR;
		}
	} else if (rpm && live->score < 1000) {
		now = bpf_ktime_get_ns();
		stamp = live->stamp_ns;
		per_point = 60000000000ull / rpm; /* rpm <= 1000: at least 60 ms a point */
		if (now > stamp && now - stamp >= per_point) {
			points = (now - stamp) / per_point;
			new_stamp = stamp + points * per_point;
			if (points > 1000) {
				points = 1000;
				new_stamp = now;
			}
			if (__sync_val_compare_and_swap(&live->stamp_ns, stamp, new_stamp) == stamp) {
				for (int i = 0; i < 8; i++) {
					__u32 o = *(volatile __u32 *)&live->score;
					__u32 n = o + points > 1000 ? 1000 : o + (__u32)points;

					if (o == n || __sync_val_compare_and_swap(&live->score, o, n) == o)
						break;
				}
				cause = CORDON_TRUST_RECOVERY;
			}
		}
	}
	/* No cause seen here but another tier: a policy apply changed the tiers. */
	if (cause || cordon_tier(live, c.policy) != live->tier)
		cordon_tier_note(cgid, policy_id, cause);
	return 0;
}

/*
 * The burst signal: a window opens at the first denial after the previous one closed; the
 * denial that makes the window's count reach burst_denials costs burst_penalty, once per window.
 * Returns that penalty when this denial is the one (else 0).
 */
static __always_inline __u32 cordon_burst(const struct cordon_ctx *c)
{
	struct cordon_agent_live *live = c->live;
	struct cordon_policy *p = c->policy;
	__u64 now, start;
	__u32 n;

	if (!p->burst_denials)
		return 0;
	now = bpf_ktime_get_ns();
	start = live->burst_start_ns;
	if (now - start >= (__u64)p->burst_window_ms * 1000000ull &&
	    __sync_val_compare_and_swap(&live->burst_start_ns, start, now) == start) {
		live->burst_count = 1;
		n = 1;
	} else {
		n = __sync_add_and_fetch(&live->burst_count, 1);
	}
	return n == p->burst_denials ? p->burst_penalty : 0;
}

/*
 * The side effects of a refusing verdict (deny, freeze, kill) on agent cgid: its penalty, the
 * freeze mark or the kill flag (from this instant every hook refuses every process of the agent),
 * the burst signal, and a tier change with its on_enter. All from kernel state, so a lost event
 * loses none of them.
 */
__noinline int cordon_effects(__u64 cgid, __u32 policy_id, __u32 verdict)
{
	struct cordon_ctx c = {};
	__u32 penalty, burst, cause;

	if (!cordon_fx_ctx(&c, cgid, policy_id))
		return 0;
	if (verdict == CORDON_VERDICT_KILL) {
		__sync_fetch_and_or(&c.live->flags, CORDON_AGENT_F_KILLED);
		penalty = c.policy->penalty_kill;
		cause = CORDON_TRUST_KILL;
	} else {
		if (verdict == CORDON_VERDICT_FREEZE)
			c.live->frozen_mark = c.thaw_epoch + 1;
		penalty = c.policy->penalty_deny; /* a freeze counts as a denial */
		cause = CORDON_TRUST_DENY;
	}
	burst = cordon_burst(&c);
	if (burst)
		cause = CORDON_TRUST_BURST;
	/* One penalty and one tier check: this function is verified once per program, and every
	 * copy of the tier code would be verified with it. */
	cordon_penalize(c.live, penalty + burst);
	cordon_tier_note(cgid, policy_id, cause);
	return 0;
}

/* A tier change after a score change (cordon_tier_check), as one global function. */
__noinline int cordon_tier_note(__u64 cgid, __u32 policy_id, __u32 cause)
{
	struct cordon_ctx c = {};

	if (cordon_fx_ctx(&c, cgid, policy_id))
		cordon_tier_check(&c, cause);
	return 0;
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
