/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The side effects of a verdict, as inline functions every hook calls after decide.bpf.h:
 * per-CPU counters, the event record, and for a refusal the penalty, kill flag, freeze mark and
 * SIGKILL (the bookkeeping itself is the global cordon_effects, in effects.bpf.c, with trust
 * recovery and tier changes). Also the tamper-protection verdict, which no rule decides. Hooks:
 * none here.
 *
 * Missing entries: an agent without its live state or policy gets no penalty and no flag (it is
 * refused everything already: decide.bpf.h); a full ring buffer, or an agent over its share of
 * it, loses the event, never the decision, and counts the loss (CORDON_CNT_RINGBUF_DROPS, and
 * per agent events_lost).
 */
#pragma once

#include "decide.bpf.h"

static __always_inline void cordon_count(__u32 counter)
{
	__u64 *v = bpf_map_lookup_elem(&cordon_counters, &counter);

	if (v)
		__sync_fetch_and_add(v, 1); /* programs may be preempted on the same CPU */
}

/* Global (effects.bpf.c): penalty, freeze mark or kill flag, burst and tier change of a
 * refusing verdict on agent cgid. */
int cordon_effects(__u64 cgid, __u32 policy_id, __u32 verdict);

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
	h->cgroup_id = c->cgroup;
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
	h->_pad0 = 0; /* h->seq: set by cordon_event_reserve */
	bpf_get_current_comm(h->comm, sizeof(h->comm));
}

/* Records kept even when the buffer is in its last eighth: what an agent was stopped for, tamper
 * attempts and trust changes (what a flood must never be able to push out). */
static __always_inline bool cordon_event_critical(__u32 hook, __u8 verdict)
{
	return verdict == CORDON_VERDICT_KILL || verdict == CORDON_VERDICT_FREEZE ||
	       hook == CORDON_HOOK_TAMPER || hook == CORDON_HOOK_TRUST;
}

/*
 * Global (effects.bpf.c): whether agent `key` may reserve one more record now (its share of
 * the ring buffer, below); counts the loss on the agent when not. A function of its own, so
 * that its work adds nothing to the stack of the hooks that call it.
 */
int cordon_event_admit(__u64 key, __u32 critical);

/* What a record takes in the ring buffer: its size and the ring's 8-byte header. */
#define CORDON_RB_BYTES(size) ((((size) + 7) & ~7ull) + 8)

/*
 * Reserves `size` bytes of the ring buffer for a record of agent c, if the agent is within its
 * share (cordon_event_admit): a flood costs the flooder its records, never another agent its
 * own. Returns NULL when refused or full, having counted the loss on the agent (events_lost,
 * and events_shed when over its share), which cordond stores as a gap on that agent's chain.
 * Fails open for the access (a record is never a reason to refuse), closed for silence (every
 * loss is counted). Writes the agent's position into the record's header (seq: the bytes of
 * its records reserved before this one); the caller fills the rest of it.
 */
/* cordon_event_reserve's `critical`: a trust record is reserved with no share check. Tier
 * changes are few (each needs a penalty or minutes of recovery), and they are made inside the
 * global cordon_effects, where one more global call passes 6.1's combined stack limit. */
#define CORDON_EVENT_UNSHARED 2

static __always_inline void *cordon_event_reserve(const struct cordon_ctx *c, __u64 size,
						  __u32 critical)
{
	struct cordon_event_header *e;

	if (c->live && critical != CORDON_EVENT_UNSHARED && !cordon_event_admit(c->cgid, critical))
		return NULL;
	/* (the record's own size is not weighed: at most one record over the share) */
	e = bpf_ringbuf_reserve(&cordon_events, size, 0);
	if (!e) {
		cordon_count(CORDON_CNT_RINGBUF_DROPS);
		if (c->live)
			__sync_fetch_and_add(&c->live->events_lost, 1);
		return NULL;
	}
	e->seq = c->live ? __sync_fetch_and_add(&c->live->events_made, CORDON_RB_BYTES(size)) : 0;
	return e;
}

/* Reserves an event with its header filled; NULL (and a counted loss) when the agent is over
 * its share or the buffer is full (cordon_event_reserve). */
static __always_inline struct cordon_event *cordon_event_start(const struct cordon_ctx *c,
							       __u32 hook, __u8 verdict,
							       __u32 rule_id)
{
	struct cordon_event *e;

	e = cordon_event_reserve(c, sizeof(*e),
				 hook == CORDON_HOOK_TRUST ? CORDON_EVENT_UNSHARED
							   : cordon_event_critical(hook, verdict));
	if (!e)
		return NULL;
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
