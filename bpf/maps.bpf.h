/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Every map of the guard programs, and their one runtime knob; no hooks, no decisions.
 *
 * Each guard file includes this header, so each compiled file carries these definitions; they
 * are __weak, and identical by construction, so `bpftool gen object` (libbpf's static linker)
 * keeps one of each in guard.bpf.o and points every program's references at it: one map per
 * name for the whole program set, with nothing to share by hand at load time. (Two strong
 * definitions of one name would be a link error; definitions that differ would be refused.)
 *
 * The controller pins the cordon_ maps under /sys/fs/bpf/cordon by these names
 * (userspace/bpf/guard.cpp, kSharedMaps); renaming one, or changing its key, value or meaning,
 * needs a new CORDON_ABI_VERSION (abi.h). cordon_scratch is per-CPU working memory and is not
 * pinned.
 *
 * Missing entries are decided where the maps are read (decide.bpf.h): no agent entry means not
 * an agent (fail open for the host); an agent without its live state or policy is refused
 * everything (fail closed).
 */
#pragma once

#include "cordon.bpf.h"

/* enum cordon_backend this object was loaded as (set between open and load); copied into
 * events, and read by the network hooks whose duty differs on compat. */
const volatile __u8 backend_id __weak = CORDON_BACKEND_NONE;

/* What the controller says about each agent; programs only read it (see abi.h). Sized by
 * CORDON_MAX_AGENTS (abi.h: far more agents than a host runs at once). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, CORDON_MAX_AGENTS);
	__type(key, __u64); /* cgroup id of the agent's root cgroup */
	__type(value, struct cordon_agent);
} cordon_agents SEC(".maps") __weak;

/* What the kernel says about each agent (score, kill, freeze); the controller only reads it.
 * One entry per agent, so the same size as cordon_agents. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, CORDON_MAX_AGENTS);
	__type(key, __u64);
	__type(value, struct cordon_agent_live);
} cordon_agent_live SEC(".maps") __weak;

/* Each live cgroup of an agent -> its key (cordon_agents, cordon_agent_live): written by the
 * controller when it adds or binds an agent, and by cgroup_guard_mkdir as a bound path or a
 * template's child is made, before any process can enter it. Preallocated, so that an insert
 * fails only when the table is full; room for twice the agents (a cgroup being replaced and
 * its successor). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 2 * CORDON_MAX_AGENTS);
	__type(key, __u64); /* cgroup id */
	__type(value, struct cordon_bound);
} cordon_agent_cgroups SEC(".maps") __weak;

/* Attached paths (relative to the cgroup2 root) -> the agent that waits for them. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, CORDON_MAX_AGENTS);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct cordon_cgroup_path);
	__type(value, struct cordon_bound);
} cordon_bound_paths SEC(".maps") __weak;

/* Template parents (relative paths) -> the templates whose matching children become agents. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct cordon_cgroup_path);
	__type(value, struct cordon_template_set);
} cordon_templates SEC(".maps") __weak;

/* The kernel's own counter: the next template child's agent id (CORDON_CHILD_ID_BASE + n). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} cordon_kernel_ids SEC(".maps") __weak;

/* One entry: ABI version, backend, the levels that hold agents, id counters (the controller's).
 * Pinned last, so its presence marks a pinned set as complete. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct cordon_config);
} cordon_config SEC(".maps") __weak;

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
} cordon_policies SEC(".maps") __weak;

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
} cordon_path_rules SEC(".maps") __weak;

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
} cordon_net_rules SEC(".maps") __weak;

/* Processes of cordon itself (tgid -> 1) that agents may not signal (lsm backend): cordond, and
 * each `cordon run` with its guardian; 64 leaves room for dozens of embedded runs at once. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, __u8);
} cordon_protected SEC(".maps") __weak;

/* cordon's own state files and directories (struct cordon_inode_key -> 1; lsm backend):
 * cordond's socket, registry directory and actions log, and its directories; 64 is several
 * times what one cordond lists. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, struct cordon_inode_key);
	__type(value, __u8);
} cordon_state_inodes SEC(".maps") __weak;

/* Tasks (task number -> struct cordon_task), written by the controller (see abi.h). Sized by
 * CORDON_MAX_TASKS: the per-agent limit times many agents. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, CORDON_MAX_TASKS);
	__uint(map_flags, BPF_F_NO_PREALLOC); /* entries cost memory only when used */
	__type(key, __u64);
	__type(value, struct cordon_task);
} cordon_tasks SEC(".maps") __weak;

/* Processes bound to a task (tgid -> struct cordon_proc_task): bound by the controller,
 * inherited at fork and removed at exit by task_guard (exec_guard.bpf.c). Sized by
 * CORDON_MAX_TASK_PROCS; each agent may hold at most CORDON_MAX_TASK_PROCS_PER_AGENT of them,
 * so no agent can fill it for the others. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, CORDON_MAX_TASK_PROCS);
	/* Not preallocated: the fork program's insert allocates (bpf_mem_alloc); a failed insert
	 * fails closed (task_guard_fork). */
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u32);
	__type(value, struct cordon_proc_task);
} cordon_proc_tasks SEC(".maps") __weak;

/* Grants (grant id -> struct cordon_grant); their paths and addresses are compiled into the
 * rule tries under a grant set's id, with CORDON_RULE_GRANT | grant id as the rule id. Sized by
 * CORDON_MAX_GRANTS: the per-agent limit times many agents. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, CORDON_MAX_GRANTS);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u32);
	__type(value, struct cordon_grant);
} cordon_grants SEC(".maps") __weak;

/* What the reader of cordon_events has read of each agent's records (struct
 * cordon_event_share), written by the reader only. An LRU: an entry the kernel's own removal of
 * a template child leaves behind ages out. A missing entry lets the agent's records through
 * subject only to the buffer's reserve (fails open for records, as before shares existed); the
 * reader writes it again with the next record it reads of that agent. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 2 * CORDON_MAX_AGENTS);
	__type(key, __u64);
	__type(value, struct cordon_event_share);
} cordon_event_shares SEC(".maps") __weak;

/* Decision, trace and trust events. CORDON_RINGBUF_BYTES (abi.h: 64 MiB, about 186,000
 * decision records) unless the controller sets another size between open and load. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, CORDON_RINGBUF_BYTES);
} cordon_events SEC(".maps") __weak;

/* The DNS gateway (abi.h, userspace/dns/gateway.h). cordon_dns_rules is the controller's
 * alone (host rule names by policy; no program reads it); the programs read cordon_dns_hosts
 * (an agent's answered addresses, tried before cordon_net_rules) and cordon_dns_config, and
 * write cordon_dns_socks (each socket they steer to the gateway: whose it is, where it meant to
 * go). An LRU: a socket's entry lives as long as it keeps being used; an agent that makes many
 * sockets can push another's least recently used one out, whose next answer then cannot be
 * attributed and is refused (fails closed; the query is simply retried on a new socket). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, CORDON_MAX_DNS_RULES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct cordon_dns_rule_key);
	__type(value, struct cordon_dns_rule);
} cordon_dns_rules SEC(".maps") __weak;

/* Not preallocated: a program set that binds few names costs little kernel memory (a full table
 * is about 20 MB; only the controller writes it). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, CORDON_MAX_DNS_HOSTS);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct cordon_dns_host_key);
	__type(value, struct cordon_dns_host);
} cordon_dns_hosts SEC(".maps") __weak;

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, CORDON_MAX_DNS_SOCKS);
	__type(key, __u64); /* socket cookie */
	__type(value, struct cordon_dns_sock);
} cordon_dns_socks SEC(".maps") __weak;

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct cordon_dns_config);
} cordon_dns_config SEC(".maps") __weak;

/* Per-CPU counters (enum cordon_counter): one slot each, CORDON_CNT_MAX slots. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, CORDON_CNT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} cordon_counters SEC(".maps") __weak;

/* The path walker's per-CPU scratch memory (not pinned, not ABI). */
#define CORDON_PATH_DEPTH 64 /* components; a power of two (used as a mask) */
#define CORDON_SCRATCH_SLOTS 4 /* nesting depth on one CPU: task, softirq, preemption, spare */

struct cordon_scratch {
	struct cordon_path_key key;
	char spill[264]; /* a component copy may run past key.path before the length check */
	__u64 names[CORDON_PATH_DEPTH];
	__u32 len; /* path bytes written to key.path (without the NUL) */
	/*
	 * Walk state lives here, not on the stack: the verifier does not track values in map
	 * memory, so every bpf_loop() iteration looks the same to it and verification stays small.
	 */
	__u64 dentry;
	__u64 mnt;
	__u64 ns_root; /* root mount of the current task's mount namespace */
	__u32 n;    /* components collected, leaf first */
	__u32 off;  /* bytes written to key.path */
	__u32 done; /* reached the namespace root through attached mounts */
	__u32 busy; /* slot claimed (cmpxchg 0 -> 1) */
	__u32 slot; /* this slot's index, for the global functions that look it up again */
	__u32 _pad;
};

/*
 * Working memory of the path walker (path.bpf.h): CORDON_SCRATCH_SLOTS slots per CPU, each
 * claimed with a compare-and-swap. One set for every program of the linked object; a decision
 * that finds every slot of its CPU busy is denied (fail closed) and counted.
 */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, CORDON_SCRATCH_SLOTS);
	__type(key, __u32);
	__type(value, struct cordon_scratch);
} cordon_scratch SEC(".maps") __weak;
