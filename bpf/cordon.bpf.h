/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The one decision procedure shared by every hook of every backend, as inline functions, plus the
 * maps every cordon object declares. The controller loads the first object and hands its map fds
 * to the others (bpf_map__reuse_fd), so all programs see one agents map, one ring buffer and one
 * set of counters.
 *
 * Identity: an agent is the cgroup subtree <cgroup2 root>/cordon/<agent>. All agent cgroups sit at
 * one cgroup level (agent_level, set by the controller before load), so the agent of the current
 * task is its ancestor at that level: one helper call and at most one map lookup, whatever depth
 * the task's own cgroup has below its agent. A task above that level pays no lookup at all.
 *
 * Missing entries: a cgroup that is not in cordon_agents is not an agent and is allowed (fail
 * open for the host: cordon must never break processes it was not asked to guard). Anything that
 * is an agent and cannot be decided is denied (fail closed).
 */
#pragma once

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include <cordon/abi.h>

#define EPERM 1
#define SIGKILL 9

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* cgroup level of <cgroup2 root>/cordon/<agent>; 0 until the controller sets it (no agents). */
const volatile __u32 agent_level = 0;
/* enum cordon_backend this object was loaded as; copied into events. */
const volatile __u8 backend_id = CORDON_BACKEND_NONE;

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, CORDON_MAX_AGENTS);
	__type(key, __u64); /* cgroup id of the agent's root cgroup */
	__type(value, struct cordon_agent_state);
} cordon_agents SEC(".maps");

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
		*v += 1; /* per-CPU slot: no atomic needed */
}

/* The agent the current task belongs to, or NULL. *cgid receives the agent cgroup id. */
static __always_inline struct cordon_agent_state *cordon_current_agent(__u64 *cgid)
{
	if (!agent_level)
		return NULL;
	*cgid = bpf_get_current_ancestor_cgroup_id(agent_level);
	if (!*cgid)
		return NULL; /* task lives above the agent level: host process */
	return bpf_map_lookup_elem(&cordon_agents, cgid);
}

/*
 * Decides one access by an agent. Today the procedure is the kill switch and the mode; rule
 * lookups slot in between them. Returns an enum cordon_verdict.
 */
static __always_inline __u8 cordon_decide(const struct cordon_agent_state *agent, __u32 hook,
					  __u32 *rule_id)
{
	*rule_id = 0;
	/* Kill switch first: a killed agent gets nothing, whatever the rules or mode say. */
	if (agent->flags & CORDON_AGENT_F_KILLED)
		return CORDON_VERDICT_DENY;
	return CORDON_VERDICT_ALLOW;
}

/* Reports a decision; a full ring buffer is counted, never silent. */
static __always_inline void cordon_report(const struct cordon_agent_state *agent, __u64 cgid,
					  __u32 hook, __u8 verdict, __u32 rule_id)
{
	struct cordon_event_header *e;
	struct task_struct *task;
	__u64 id;

	e = bpf_ringbuf_reserve(&cordon_events, sizeof(*e), 0);
	if (!e) {
		cordon_count(CORDON_CNT_RINGBUF_DROPS);
		return;
	}
	task = (struct task_struct *)bpf_get_current_task();
	id = bpf_get_current_pid_tgid();
	e->ts_ns = bpf_ktime_get_ns();
	e->cgroup_id = cgid;
	e->task_id = agent->task_id;
	e->agent_id = agent->agent_id;
	e->pid = (__u32)id;
	e->tgid = id >> 32;
	e->ppid = BPF_CORE_READ(task, real_parent, tgid);
	e->uid = (__u32)bpf_get_current_uid_gid();
	e->rule_id = rule_id;
	e->hook = hook;
	e->verdict = verdict;
	e->backend = backend_id;
	e->size = sizeof(*e);
	e->_pad0 = 0;
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	bpf_ringbuf_submit(e, 0);
}

/*
 * Full procedure for hooks that only need the verdict: lookup, decide, count, report.
 * Returns the verdict for the current task; CORDON_VERDICT_ALLOW for non-agents.
 */
static __always_inline __u8 cordon_check(__u32 hook)
{
	struct cordon_agent_state *agent;
	__u64 cgid = 0;
	__u32 rule_id;
	__u8 verdict;

	agent = cordon_current_agent(&cgid);
	if (!agent)
		return CORDON_VERDICT_ALLOW;
	verdict = cordon_decide(agent, hook, &rule_id);
	cordon_count(verdict);
	if (verdict != CORDON_VERDICT_ALLOW)
		cordon_report(agent, cgid, hook, verdict, rule_id);
	return verdict;
}
