/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The kernel/user ABI of cordon: every struct and enum that crosses the boundary between the BPF
 * programs (bpf/) and the C++ controller (userspace/). Plain C, fixed-width fields, explicit
 * padding, no pointers or bitfields. Sizes are pinned here (for C and C++ alike) and with
 * static_assert(sizeof/offsetof) in tests/unit/abi_test.cpp, so a change that moves a field
 * breaks the build on both sides instead of corrupting a map.
 */
#pragma once

#ifndef __VMLINUX_H__ /* BPF side gets __u32 and friends from vmlinux.h */
#include <linux/types.h>
#endif

#ifdef __cplusplus
#define CORDON_STATIC_ASSERT(cond, msg) static_assert(cond, msg)
#else
#define CORDON_STATIC_ASSERT(cond, msg) _Static_assert(cond, msg)
#endif

/* Length of a task's comm, as the kernel's TASK_COMM_LEN. */
#define CORDON_COMM_LEN 16

/*
 * Upper bound on agents one controller tracks at once. The agents map is a hash keyed by cgroup
 * id; 4096 entries of 32 bytes cost ~200 KiB of kernel memory and far exceed the agents a host
 * runs at once.
 */
#define CORDON_MAX_AGENTS 4096

/*
 * Event ring buffer size: 4 MiB holds ~58,000 header-sized records, several seconds of a
 * misbehaving agent at machine speed, so the reader can fall behind briefly without losing
 * events. Must be a power of two and a multiple of the page size.
 */
#define CORDON_RINGBUF_BYTES (4u << 20)

/** Which hook made a decision. Values are stable: they are stored in event logs. */
enum cordon_hook {
	CORDON_HOOK_NONE = 0,
	CORDON_HOOK_EXEC = 1,      /**< program execution (bprm_check / sched_process_exec) */
	CORDON_HOOK_FILE_OPEN = 2, /**< open of an existing or new file */
	CORDON_HOOK_CONNECT4 = 3,  /**< connect() to an IPv4 address */
	CORDON_HOOK_CONNECT6 = 4,  /**< connect() to an IPv6 address */
	CORDON_HOOK_SENDMSG4 = 5,  /**< UDP sendmsg() to an IPv4 address */
	CORDON_HOOK_SENDMSG6 = 6,  /**< UDP sendmsg() to an IPv6 address */
	CORDON_HOOK_MAX,
};

/** What the kernel did with one access. */
enum cordon_verdict {
	CORDON_VERDICT_ALLOW = 0, /**< access allowed */
	CORDON_VERDICT_DENY = 1,  /**< access refused (-EPERM, or SIGKILL on compat exec/file) */
	CORDON_VERDICT_AUDIT = 2, /**< allowed, and reported because the rule or mode says audit */
	CORDON_VERDICT_KILL = 3,  /**< refused, the process killed and the agent marked killed */
	CORDON_VERDICT_MAX,
};

/** How an agent's decisions are applied. */
enum cordon_mode {
	CORDON_MODE_ENFORCE = 0, /**< deny and kill verdicts are applied */
	CORDON_MODE_AUDIT = 1,   /**< everything is allowed; would-be denials are reported as audit */
	CORDON_MODE_MAX,
};

/** Which set of kernel programs enforces. */
enum cordon_backend {
	CORDON_BACKEND_NONE = 0,
	CORDON_BACKEND_LSM = 1,    /**< BPF LSM hooks: denials are -EPERM from the syscall */
	CORDON_BACKEND_COMPAT = 2, /**< tracing hooks: exec/file denials are SIGKILL */
	CORDON_BACKEND_MAX,
};

/** Bits of cordon_agent_state.flags. */
enum cordon_agent_flag {
	/** Kill switch: every hook denies every access by every process of the agent. */
	CORDON_AGENT_F_KILLED = 1u << 0,
};

/** Per-CPU counters in the cordon_counters map, surfaced by the controller. */
enum cordon_counter {
	CORDON_CNT_ALLOW = 0,         /**< allowed accesses by agents (not reported unless traced) */
	CORDON_CNT_DENY = 1,          /**< denials */
	CORDON_CNT_AUDIT = 2,         /**< audit verdicts */
	CORDON_CNT_KILL = 3,          /**< kill verdicts */
	CORDON_CNT_RINGBUF_DROPS = 4, /**< event records the ring buffer could not take */
	CORDON_CNT_MAX,
};

/** Value of the cordon_agents map, keyed by the agent's cgroup id (__u64). */
struct cordon_agent_state {
	__u32 agent_id;  /**< controller-assigned id; names the agent in events */
	__u32 policy_id; /**< compiled policy this agent runs under */
	__u64 task_id;   /**< current task (cordon task begin); 0 = none */
	__u32 score;     /**< trust score 0..1000; the kernel lowers it on denials */
	__u8 tier;       /**< current trust tier index (0 = lowest) */
	__u8 mode;       /**< enum cordon_mode */
	__u16 _pad0;     /**< zero */
	__u32 flags;     /**< enum cordon_agent_flag bits */
	__u32 _pad1;     /**< zero */
};
CORDON_STATIC_ASSERT(sizeof(struct cordon_agent_state) == 32, "cordon_agent_state layout changed");

/** First part of every ring-buffer record. */
struct cordon_event_header {
	__u64 ts_ns;     /**< bpf_ktime_get_ns() at the decision (CLOCK_MONOTONIC) */
	__u64 cgroup_id; /**< agent cgroup (the subtree root the process belongs to) */
	__u64 task_id;   /**< agent's task at the decision */
	__u32 agent_id;  /**< cordon_agent_state.agent_id */
	__u32 pid;       /**< thread id (kernel pid) */
	__u32 tgid;      /**< process id (kernel tgid) */
	__u32 ppid;      /**< parent's tgid */
	__u32 uid;       /**< real uid */
	__u32 rule_id;   /**< compiled rule that decided; 0 = the class default */
	__u16 hook;      /**< enum cordon_hook */
	__u8 verdict;    /**< enum cordon_verdict */
	__u8 backend;    /**< enum cordon_backend */
	__u16 size;      /**< whole record size in bytes, header included */
	__u16 _pad0;     /**< zero */
	char comm[CORDON_COMM_LEN]; /**< task comm at the decision */
};
CORDON_STATIC_ASSERT(sizeof(struct cordon_event_header) == 72, "cordon_event_header layout changed");
