/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The one decision procedure shared by every hook of every backend, as inline functions: which
 * agent the current task is, and what a rule hit means for it. Its side effects (counters,
 * events, penalties, trust) are in effects.bpf.h; the maps it reads in maps.bpf.h. Hooks: none
 * here; every guard file calls it.
 *
 * Identity: an agent is a cgroup subtree: <cgroup2 root>/cordon/<agent> for the agents cordon
 * starts, or any cgroup an operator attaches (a systemd service's, a container's). The controller
 * keeps the set of cgroup levels that hold an agent in cordon_config.agent_levels, so the agent of
 * the current task is its ancestor at one of those levels: one helper call and one map lookup per
 * level in use, whatever depth the task's own cgroup has below its agent, and whatever the number
 * of agents. Agents never nest (the controller refuses it), so at most one level matches. A task
 * above every level in use pays no lookup at all.
 *
 * Procedure: agent lookup -> kill and freeze flags -> longest matching rule (or the class default)
 * -> the rule's minimum tier against the agent's tier (derived from its score) -> mode (audit
 * allows and reports) -> verdict, then event, score penalty, kill action (effects.bpf.h).
 *
 * Missing entries: a cgroup that is not in cordon_agents is not an agent and is allowed (fail
 * open for the host: cordon must never break processes it was not asked to guard). An agent whose
 * live state or policy is missing, whose path cannot be resolved, or whose decision cannot get
 * scratch memory is denied (fail closed).
 */
#pragma once

#include "maps.bpf.h"

/*
 * The agent the current task belongs to, or NULL. *key receives the agent's key (its entries in
 * cordon_agents and cordon_agent_live: CORDON_AGENT_KEY(agent_id), which outlives any one cgroup
 * of the agent), *cgroup the id of its root cgroup, *level that cgroup's level. Missing config
 * (no agents yet) means no agent: fail open for the host.
 */
static __always_inline struct cordon_agent *cordon_current_agent(__u64 *key, __u32 *level,
								 __u64 *cgroup)
{
	struct cordon_bound *b;
	struct cordon_agent *a;
	struct cordon_config *cfg;
	__u32 zero = 0;
	__u64 levels, cgid;

	cfg = bpf_map_lookup_elem(&cordon_config, &zero);
	if (!cfg)
		return NULL;
	levels = cfg->agent_levels;
#pragma clang loop unroll(full)
	for (__u32 l = 1; l < CORDON_MAX_LEVEL; l++) {
		if (!(levels & (1ull << l)))
			continue;
		cgid = bpf_get_current_ancestor_cgroup_id(l);
		if (!cgid)
			return NULL; /* the task lives above this level, and so above every deeper one */
		b = bpf_map_lookup_elem(&cordon_agent_cgroups, &cgid);
		if (!b)
			continue;
		/* A cgroup bound to an agent whose entry is gone (being removed) is no agent. */
		a = bpf_map_lookup_elem(&cordon_agents, &b->agent_key);
		if (a) {
			*key = b->agent_key;
			*cgroup = cgid;
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
	__u64 cgid;      /* the agent's key (CORDON_AGENT_KEY), which its map entries are under */
	__u64 cgroup;    /* the id of the agent's root cgroup the current task is in */
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

/*
 * Global functions: the verifier checks each of them once, on its own, instead of once per call
 * site and per path leading there. Everything with many branches that does not decide the
 * access itself (which task a process is in, trust bookkeeping, the side effects of a verdict)
 * lives in one, so that the hooks' verification cost stays what the decision needs. They look
 * up what they need by cgroup id and return scalars. Each is defined once, in decide.bpf.c or
 * effects.bpf.c, and reaches the other files through the link.
 */
__u64 cordon_task_of(__u64 cgid, __u64 agent_task);
int cordon_trust_refresh(__u64 cgid, __u32 policy_id);

/*
 * True (and *c filled) when the current task is an agent. The tier is computed once here, not
 * per verdict: a hook that decides several names (rename) would otherwise give the verifier one
 * copy of the tier loop per verdict to explore.
 */
static __always_inline bool cordon_enter(struct cordon_ctx *c)
{
	struct cordon_task *t = NULL;

	c->agent = cordon_current_agent(&c->cgid, &c->level, &c->cgroup);
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

/* The current task's agent, task, overlay and grant sets, found again; false if no agent. */
static __always_inline bool cordon_layers_of(struct cordon_layers *l)
{
	struct cordon_agent *a;
	struct cordon_task *t = NULL;
	__u64 cgroup;
	__u32 level;

	a = cordon_current_agent(&l->cgid, &level, &cgroup);
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
