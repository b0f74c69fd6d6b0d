/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The global functions of the decision (declared in decide.bpf.h, path.bpf.h and net.bpf.h):
 * which task the current process is in, and the task's overlay and the grants over a path or
 * network rule hit. No hooks: linked into guard.bpf.o and called by every guard file's
 * programs; the verifier checks each function once per program that calls it.
 *
 * Missing entries: a process bound to no live task is in its agent's task, or in none; a
 * missing task, overlay or grant leaves the hit as the policy decided it; an expired grant
 * never allows (checked against the kernel clock).
 */
#include "path.bpf.h"
#include "net.bpf.h"

/* The start time of the current process (its leader's), which a reused pid does not share. */
static __always_inline __u64 cordon_process_start(void)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();

	return BPF_CORE_READ(task, group_leader, start_time);
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

/*
 * Global (verified once per program): the overlay and grants over a path hit, for the agent of
 * the current task, which it finds again (cordon_layers). `slot` is the scratch slot holding the
 * resolved path; cls_bytes is class << 16 | bytes; hit_in as cordon_hit_pack. Returns the hit.
 */
__noinline __u64 cordon_path_layers(__u32 slot, __u32 cls_bytes, __u64 hit_in, __u32 layers)
{
	struct cordon_scratch *s;
	struct cordon_rule_hit hit = {}, o = {};
	struct cordon_layers l = {};
	__u32 tier = cordon_hit_unpack(&hit, hit_in);
	__u32 bytes = cls_bytes & 0xffff;
	__u8 cls = (__u8)(cls_bytes >> 16);

	if (!layers)
		return hit_in; /* no task overlay or grants: the common case */
	s = bpf_map_lookup_elem(&cordon_scratch, &slot);
	if (!s || !cordon_layers_of(&l))
		return hit_in;
	if (bytes > CORDON_PATH_KEY_BYTES)
		bytes = CORDON_PATH_KEY_BYTES;
	if (cls == CORDON_PATH_GUARD) {
		/* A directory above an overlay's rule is guarded as one above the policy's (a guard
		 * entry's action is deny; no entry gives allow). */
		if (hit.action == CORDON_ACTION_ALLOW && l.overlay_id &&
		    cordon_path_find(s, l.overlay_id, cls, bytes, &o))
			hit = o;
		return cordon_hit_pack(&hit, tier);
	}
	if (l.overlay_id && hit.action != CORDON_ACTION_KILL && hit.action != CORDON_ACTION_FREEZE &&
	    cordon_path_find(s, l.overlay_id, cls, bytes, &o))
		hit = o;
	if (cordon_grantable(tier, &hit)) {
		if (l.task_grants && cordon_path_find(s, l.task_grants, cls, bytes, &o) &&
		    cordon_grant_live(&l, o.rule_id))
			cordon_granted(&hit, o.rule_id);
		else if (l.agent_grants && cordon_path_find(s, l.agent_grants, cls, bytes, &o) &&
			 cordon_grant_live(&l, o.rule_id))
			cordon_granted(&hit, o.rule_id);
	}
	return cordon_hit_pack(&hit, tier);
}

/*
 * Global (verified once per program): the overlay and grants over an outbound network hit, for
 * the agent of the current task. The address in two halves (IPv4 in the first 4 bytes of hi),
 * meta = family | proto << 8 | port << 16, hit_in as cordon_hit_pack. Returns the hit.
 */
__noinline __u64 cordon_net_layers(__u64 hi, __u64 lo, __u32 meta, __u64 hit_in, __u32 layers)
{
	struct cordon_net_key key = {};
	struct cordon_rule_hit hit = {}, o = {};
	struct cordon_layers l = {};
	__u32 tier = cordon_hit_unpack(&hit, hit_in);
	__u16 port = (__u16)(meta >> 16);
	__u8 proto = (__u8)(meta >> 8);

	if (!layers || !cordon_layers_of(&l))
		return hit_in; /* no task overlay or grants (or inbound): the common case */
	key.family = (__u8)meta;
	key.prefixlen = 40 + (key.family == 4 ? 32 : 128);
	__builtin_memcpy(key.addr, &hi, 8);
	__builtin_memcpy(key.addr + 8, &lo, 8);
	if (l.overlay_id && hit.action != CORDON_ACTION_KILL && hit.action != CORDON_ACTION_FREEZE &&
	    net_find(&key, l.overlay_id, port, proto, &o))
		hit = o;
	if (cordon_grantable(tier, &hit)) {
		if (l.task_grants && net_find(&key, l.task_grants, port, proto, &o) &&
		    cordon_grant_live(&l, o.rule_id))
			cordon_granted(&hit, o.rule_id);
		else if (l.agent_grants && net_find(&key, l.agent_grants, port, proto, &o) &&
			 cordon_grant_live(&l, o.rule_id))
			cordon_granted(&hit, o.rule_id);
	}
	return cordon_hit_pack(&hit, tier);
}
