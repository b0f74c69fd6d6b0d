/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The global functions of trust and of a verdict's side effects (declared in decide.bpf.h and
 * effects.bpf.h): the kernel's own trust bookkeeping (an operator's score, recovery), the
 * penalty, freeze mark, kill flag and burst signal of a refusal, and the tier change that may
 * follow with its on_enter. No hooks: linked into guard.bpf.o and called by every guard file's
 * programs; the verifier checks each function once per program that calls it.
 *
 * Missing entries: each function looks the agent up again by cgroup id and does nothing when
 * its agent, live state or policy is gone (the agent is refused everything then: decide.bpf.h).
 */
#include "effects.bpf.h"

int cordon_tier_note(__u64 cgid, __u32 policy_id, __u32 cause);

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
	/* These run in the agent's task: its root cgroup is its ancestor at the agent's level. */
	c->cgroup = bpf_get_current_ancestor_cgroup_id(c->agent->level);
	c->agent_id = c->agent->agent_id;
	c->thaw_epoch = c->agent->thaw_epoch;
	c->task_id = c->agent->task_id;
	c->stopped = false;
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
 * An agent's share of the ring buffer: it may hold (records written, not yet read) at most half
 * of the room left, where an ordinary record's room leaves out the last eighth of the buffer,
 * kept for critical ones (cordon_event_critical). One agent that floods thus fills at most
 * about 7/24 of the buffer, N agents flooding at once 7/(8(N+2)) each, and an agent that writes
 * little always finds room. Without a share entry (the reader has not read this agent yet, or
 * the LRU dropped it) only the buffer's own size limits the agent: fails open for records.
 * Returns 1 when the record may be reserved; 0 (the loss counted on the agent) when not.
 */
__noinline int cordon_event_admit(__u64 key, __u32 critical)
{
	struct cordon_agent_live *live = bpf_map_lookup_elem(&cordon_agent_live, &key);
	struct cordon_event_share *share = bpf_map_lookup_elem(&cordon_event_shares, &key);
	__u64 ring, used, room, held, made; /* bytes */

	if (!live || !share)
		return 1;
	made = live->events_made;
	held = made > share->consumed ? made - share->consumed : 0;
	ring = bpf_ringbuf_query(&cordon_events, BPF_RB_RING_SIZE);
	used = bpf_ringbuf_query(&cordon_events, BPF_RB_AVAIL_DATA);
	room = ring > used ? ring - used : 0;
	if (!critical)
		room = room > ring / 8 ? room - ring / 8 : 0;
	if (2 * held <= room)
		return 1;
	cordon_count(CORDON_CNT_EVENTS_SHED);
	cordon_count(CORDON_CNT_RINGBUF_DROPS);
	__sync_fetch_and_add(&live->events_shed, 1);
	__sync_fetch_and_add(&live->events_lost, 1);
	return 0;
}
