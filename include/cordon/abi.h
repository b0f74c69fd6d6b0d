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

/*
 * Version of everything in this header that outlives a process: the maps cordond pins under
 * /sys/fs/bpf/cordon and their value layouts. Bump it with any change to a pinned map's key,
 * value or meaning; a daemon refuses pinned state of another version (cordon teardown clears it).
 */
#define CORDON_ABI_VERSION 10

/* Length of a task's comm, as the kernel's TASK_COMM_LEN. */
#define CORDON_COMM_LEN 16

/*
 * Upper bound on agents one controller tracks at once. The agents map is a hash keyed by cgroup
 * id; 4096 entries of 32 bytes cost ~200 KiB of kernel memory and far exceed the agents a host
 * runs at once.
 */
#define CORDON_MAX_AGENTS 4096

/*
 * Agents are cgroup subtrees, at any cgroup level below this bound (a systemd service is at level
 * 2, a container at 3 or 4, cordon's own agents at 2). The kernel finds a task's agent by looking
 * up its ancestor at each level in cordon_config.agent_levels: one lookup per level in use, so a
 * host process pays the same whether 1 or 1,000 agents exist.
 */
#define CORDON_MAX_LEVEL 16

/*
 * Event ring buffer size: 64 MiB. A decision record takes 368 bytes in the buffer (360 + the
 * ring's 8-byte header) and an exec trace record 880 (872 + 8), so it holds 182,361 decision
 * records: a burst of 100,000 (37 MB) with room to spare, about half a second of an agent that
 * makes denials as fast as two cores allow, while the reader catches up. No agent may hold more
 * than its share of it (bpf/effects.bpf.h, cordon_event_reserve), and the last eighth is kept
 * for kill, freeze, tamper and trust records. The pages are allocated
 * when the map is created and charged to cordond's memory cgroup. Must be a power of two and a
 * multiple of the page size.
 */
#define CORDON_RINGBUF_BYTES (64u << 20)

/** Which hook made a decision. Values are stable: they are stored in event logs. */
enum cordon_hook {
	CORDON_HOOK_NONE = 0,
	CORDON_HOOK_EXEC = 1,      /**< program execution (bprm_check / sched_process_exec) */
	CORDON_HOOK_FILE_OPEN = 2, /**< open of an existing or new file */
	CORDON_HOOK_CONNECT4 = 3,  /**< connect() to an IPv4 address */
	CORDON_HOOK_CONNECT6 = 4,  /**< connect() to an IPv6 address */
	CORDON_HOOK_SENDMSG4 = 5,  /**< UDP sendmsg() to an IPv4 address */
	CORDON_HOOK_SENDMSG6 = 6,  /**< UDP sendmsg() to an IPv6 address */
	CORDON_HOOK_FILE_CREATE = 7, /**< creation of a file, directory, node or symlink */
	CORDON_HOOK_FILE_UNLINK = 8, /**< unlink or rmdir */
	CORDON_HOOK_FILE_RENAME = 9, /**< rename (both names are decided as writes) */
	CORDON_HOOK_FILE_LINK = 10,  /**< hard link (both names are decided as writes) */
	CORDON_HOOK_FILE_TRUNCATE = 11, /**< truncate(2), ftruncate(2), O_TRUNC */
	CORDON_HOOK_TAMPER = 12,     /**< bpf(), ptrace, signal to cordon, cgroupfs/bpffs write, mount */
	CORDON_HOOK_SOCKET = 13,     /**< creation of a raw or ICMP echo socket */
	CORDON_HOOK_UNIX_CONNECT = 14, /**< connect() to a Unix socket (a write to its path) */
	CORDON_HOOK_UNIX_SEND = 15,  /**< a datagram to a Unix socket (a write to its path) */
	CORDON_HOOK_FILE_SETATTR = 16, /**< chmod, chown (metadata changes are writes) */
	CORDON_HOOK_LISTEN = 17,     /**< listen() on a TCP socket, by its local address and port */
	CORDON_HOOK_BIND = 18,       /**< bind() of a UDP socket, by the local address and port */
	/**
	 * Not an access: the agent's trust tier changed. The event's family holds the old tier,
	 * protocol the new one, access the cause (enum cordon_trust_cause), port the score after
	 * it; verdict is freeze or kill when the tier entered says so (on_enter), allow otherwise.
	 */
	CORDON_HOOK_TRUST = 19,
	/**
	 * Not a decision: an agent's process executed a program (policies with trace: exec or all),
	 * recorded for process lineage as a struct cordon_exec_event after the exec succeeded.
	 */
	CORDON_HOOK_PROCESS = 20,
	/** A descriptor received (SCM_RIGHTS, pidfd_getfd): decided as an open of its file with
	 *  its access mode, by the receiver's rights (lsm/file_receive). */
	CORDON_HOOK_FILE_RECEIVE = 21,
	/**
	 * A process of the agent reached into one of another task (ptrace, process_vm_readv and
	 * writev, /proc/PID/mem and the other /proc files a ptrace check guards, pidfd_getfd),
	 * refused under tasks.isolation: strict. The record's addr[0..7] holds the other process's
	 * task (u64, 0: none), addr[8..11] its tgid (u32), port the kernel's PTRACE_MODE_* bits.
	 */
	CORDON_HOOK_TASK_CROSS = 22,
	CORDON_HOOK_MAX,
};

/** What the kernel did with one access. */
enum cordon_verdict {
	CORDON_VERDICT_ALLOW = 0, /**< access allowed */
	CORDON_VERDICT_DENY = 1,  /**< access refused (-EPERM, or SIGKILL on compat exec/file) */
	CORDON_VERDICT_AUDIT = 2, /**< allowed, and reported because the rule or mode says audit */
	CORDON_VERDICT_KILL = 3,  /**< refused, the process killed and the agent marked killed */
	CORDON_VERDICT_FREEZE = 4, /**< refused, and the agent marked frozen (cordon freezes it) */
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
	/**
	 * The lsm backend's programs attached as fmod_ret to the kernel's security_* functions:
	 * denials are -EPERM from the syscall, on kernels that run trampolines but whose active LSM
	 * list lacks bpf (Ubuntu, CBL-Mariner, Flatcar).
	 */
	CORDON_BACKEND_FMOD_RET = 3,
	CORDON_BACKEND_MAX,
};

/**
 * Bits of cordon_agent.flags (set by the controller: `cordon kill`, `cordon freeze`) and of
 * cordon_agent_live.flags (set by the kernel: a kill rule). While either word has KILLED, or
 * the agent is frozen (cordon_agent_frozen), every hook refuses every access of every process
 * of the agent.
 */
enum cordon_agent_flag {
	/** Kill switch: refused everything; cordon empties the cgroup (cgroup.kill). */
	CORDON_AGENT_F_KILLED = 1u << 0,
	/** cordon_agent only: frozen by the operator; cordon freezes the cgroup (cgroup.freeze). */
	CORDON_AGENT_F_FROZEN = 1u << 1,
	/** cordon_agent only: the agent has process-bound tasks (cordon task begin --pid), so the
	 *  kernel looks up each decision's process in cordon_proc_tasks; without it, it does not. */
	CORDON_AGENT_F_PROC_TASKS = 1u << 2,
	/** cordon_agent only: made by the kernel for a cgroup that matched a template; it ends
	 *  when that cgroup is removed (an attached agent instead waits for its path). */
	CORDON_AGENT_F_CHILD = 1u << 3,
};

/** Bits of cordon_policy.open_doors (the policy's SideDoor order, userspace/policy/model.h). */
enum cordon_door {
	CORDON_DOOR_PERF = 1u << 3, /**< perf_event_open() */
};

/** Per-CPU counters in the cordon_counters map, surfaced by the controller. */
enum cordon_counter {
	CORDON_CNT_ALLOW = 0,         /**< allowed accesses by agents (not reported unless traced) */
	CORDON_CNT_DENY = 1,          /**< denials */
	CORDON_CNT_AUDIT = 2,         /**< audit verdicts */
	CORDON_CNT_KILL = 3,          /**< kill verdicts */
	CORDON_CNT_RINGBUF_DROPS = 4, /**< event records the ring buffer could not take */
	CORDON_CNT_PATH_FAILED = 5,   /**< paths that could not be resolved (decided as deny) */
	CORDON_CNT_FREEZE = 6,        /**< freeze verdicts */
	/** forks of task-bound processes that the process-task map could not take: the forking
	 *  process was killed (fails closed: no process of a task runs without the task) */
	CORDON_CNT_TASK_FULL = 7,
	/** cgroups made at an attached path and guarded by the kernel as they were made
	 *  (cgroup_guard_mkdir, bpf/cgroup_guard.bpf.c) */
	CORDON_CNT_CG_BOUND = 8,
	/** cgroups made under a template's parent that matched it: a new agent each */
	CORDON_CNT_CG_CHILD = 9,
	/** cgroups that should have been guarded as they were made but whose entries the maps
	 *  could not take (full); the controller freezes each one it finds (fails closed) */
	CORDON_CNT_CG_FAILED = 10,
	/** guarded cgroups removed: an attached agent waits, a template's agent ends */
	CORDON_CNT_CG_REMOVED = 11,
	/** records not reserved because their agent held more than its share of the ring buffer
	 *  (cordon_event_share): that agent's own loss, counted in its events_lost and events_shed;
	 *  also counted in CORDON_CNT_RINGBUF_DROPS */
	CORDON_CNT_EVENTS_SHED = 12,
	CORDON_CNT_MAX,
};

/** Bits of cordon_event.access. */
enum cordon_access {
	CORDON_ACCESS_READ = 1u << 0,
	CORDON_ACCESS_WRITE = 1u << 1,
};

/* The path an event carries when the kernel could not resolve one (see bpf/path.bpf.h). */
#define CORDON_UNRESOLVABLE "(unresolvable)"

/* Path bytes an event carries; longer paths are cut (the decision used the full key). */
#define CORDON_EVENT_PATH 256

/*
 * An agent's kernel state is split in two by who writes it, so that no write of one side can undo
 * a write of the other. A BPF hash update replaces a whole value: if the controller rewrote a
 * value that the kernel also writes (a policy swap rewriting the score), a penalty landing between
 * its read and its write would be lost, and a decision holding the old value would write into a
 * dead copy.
 */

/**
 * Value of the cordon_agents map, keyed by the agent's cgroup id (__u64): what the controller
 * says. Only the controller writes it, always whole (one map update: a decision sees the old
 * value or the new one, never a mix); programs only read it.
 */
struct cordon_agent {
	__u32 agent_id;  /**< controller-assigned id; names the agent in events */
	__u32 policy_id; /**< compiled policy this agent runs under (a swap is one write of this) */
	__u64 task_id;   /**< current task (cordon task begin); 0 = none */
	__u8 mode;       /**< enum cordon_mode: decides (the policy's spec.mode is only the start) */
	__u8 level;      /**< cgroup level of the agent's root cgroup (< CORDON_MAX_LEVEL) */
	__u16 _pad0;     /**< zero */
	__u32 flags;     /**< enum cordon_agent_flag bits the operator set */
	/**
	 * Bumped by each `cordon thaw`: a freeze verdict marks the agent frozen for the epoch in
	 * force (cordon_agent_live.frozen_mark), and a thaw ends that without writing kernel state.
	 */
	__u32 thaw_epoch;
	__u32 grant_set; /**< compiled set of the agent-wide grants (a policy id); 0 = none */
	/** `cordon trust --set`: the score to set. The kernel sets it once per score_set_seq
	 *  (cordon_agent_live.set_seq), at the agent's next decision, so that only the kernel
	 *  ever writes the score. */
	__u32 score_set;
	__u32 score_set_seq;
};
CORDON_STATIC_ASSERT(sizeof(struct cordon_agent) == 40, "cordon_agent layout changed");

/**
 * Value of the cordon_agent_live map, keyed by the agent's cgroup id: what the kernel says. The
 * controller creates it once, when the agent is added (BPF_NOEXIST, the policy's initial score),
 * and deletes it when the agent is removed; between the two only programs write it, with atomic
 * operations. No controller write can reset a score or clear a kill.
 */
struct cordon_agent_live {
	__u32 score;       /**< trust score 0..1000; lowered by penalties */
	__u32 flags;       /**< enum cordon_agent_flag bits the kernel set (KILLED: a kill rule) */
	__u32 frozen_mark; /**< a freeze verdict stores cordon_agent.thaw_epoch + 1 here */
	__u32 agent_id;    /**< the agent it was created for (cordon_agent.agent_id) */
	/** CLOCK_MONOTONIC ns from which recovery counts: set by each penalty and operator set,
	 *  advanced by the time each recovered point took (so no fraction of a point is lost). */
	__u64 stamp_ns;
	__u64 burst_start_ns; /**< start of the current burst window */
	__u32 burst_count;    /**< denials in the current burst window */
	__u32 set_seq;        /**< the last cordon_agent.score_set_seq applied */
	__u32 tier;           /**< the tier last reported (a change is an event and may act) */
	__u32 task_procs;     /**< processes of the agent that forks bound to a task (task_guard) */
	/** Records of this agent the ring buffer had no room for: cordond stores each increase as
	 *  a gap on the agent's own chain, so a flood cannot hide what it pushed out. */
	__u64 events_lost;
	/** Of events_lost, those refused because the agent held more than its share of the ring
	 *  buffer (the rest found the buffer full). */
	__u64 events_shed;
	/** Bytes of this agent's records reserved in the ring buffer so far (each record's size,
	 *  rounded up to 8, and the ring's 8-byte header): the next one's cordon_event_header.seq.
	 *  Less cordon_event_share.consumed, what it holds there now. */
	__u64 events_made;
};
CORDON_STATIC_ASSERT(sizeof(struct cordon_agent_live) == 72, "cordon_agent_live layout changed");

/**
 * Value of cordon_event_shares (key: the agent's key, as cordon_agent_live), written by the
 * reader of the ring buffer only; the programs read `consumed` to know how many of an agent's
 * records still wait in the buffer (bpf/effects.bpf.h, cordon_event_reserve).
 */
struct cordon_event_share {
	__u64 consumed;      /**< bytes read of this agent's records: the highest
				  cordon_event_header.seq read plus that record's bytes (as events_made) */
	__u64 lost_recorded; /**< events_lost already stored as gap records (adoption: the rest
				  were lost while no reader ran, and become a gap then). Under key
				  CORDON_SHARE_HOST: the host-wide CORDON_CNT_RINGBUF_DROPS so stored. */
};
/** The cordon_event_shares key of the host-wide entry (no agent key is 0). */
#define CORDON_SHARE_HOST 0
CORDON_STATIC_ASSERT(sizeof(struct cordon_event_share) == 16, "cordon_event_share layout changed");

/** Whether an agent is frozen: by the operator, or by a freeze verdict since its last thaw. */
static inline int cordon_agent_frozen(const struct cordon_agent *a, const struct cordon_agent_live *l)
{
	return (a->flags & CORDON_AGENT_F_FROZEN) || l->frozen_mark == a->thaw_epoch + 1;
}

/** Whether an agent is killed: by the operator, or by a kill rule. */
static inline int cordon_agent_killed(const struct cordon_agent *a, const struct cordon_agent_live *l)
{
	return ((a->flags | l->flags) & CORDON_AGENT_F_KILLED) != 0;
}

/** Value of the single entry of the cordon_config array: host-wide state of one program set. */
struct cordon_config {
	__u32 abi_version;  /**< CORDON_ABI_VERSION of the controller that created the maps */
	__u8 backend;       /**< enum cordon_backend the programs were loaded as */
	__u8 _pad0[3];      /**< zero */
	__u64 agent_levels; /**< bit L set: some agent's root cgroup is at level L */
	__u32 next_policy_id; /**< next fresh policy id (ids are never reused while pinned) */
	__u32 next_agent_id;  /**< next fresh agent id */
	__u64 next_task_id;   /**< next fresh task number (cordon_agent.task_id, cordon_tasks) */
	__u32 next_grant_id;  /**< next fresh grant id (cordon_grants) */
	/** bit L set: a bound path, or a template's children, is at cgroup level L: the cgroup
	 *  programs look at no cgroup made at another level (bpf/cgroup_guard.bpf.c) */
	__u32 bind_levels;
};
CORDON_STATIC_ASSERT(sizeof(struct cordon_config) == 40, "cordon_config layout changed");

/**
 * Key of the cordon_state_inodes map: a file or directory of cordon's own state (cordond's
 * socket, its registry directory, its actions log), by the kernel's device number (MAJOR << 20 |
 * MINOR) and inode number. On lsm no agent may change one, or a name directly in such a
 * directory, whatever its policy and in audit mode too (tamper protection).
 */
struct cordon_inode_key {
	__u64 ino; /**< i_ino */
	__u32 dev; /**< i_sb->s_dev */
	__u32 _pad; /**< zero */
};
CORDON_STATIC_ASSERT(sizeof(struct cordon_inode_key) == 16, "cordon_inode_key layout changed");

/** Why an agent's score (and maybe its tier) changed: cordon_event.access of a trust event. */
enum cordon_trust_cause {
	CORDON_TRUST_DENY = 1,     /**< a denial's penalty */
	CORDON_TRUST_KILL = 2,     /**< a kill rule's penalty */
	CORDON_TRUST_BURST = 3,    /**< the burst penalty (too many denials within the window) */
	CORDON_TRUST_RECOVERY = 4, /**< recovery over time */
	CORDON_TRUST_OPERATOR = 5, /**< `cordon trust --set` */
	CORDON_TRUST_CAUSE_MAX,
};

/** What entering a trust tier does (a tier's on_enter). Carried out from kernel state. */
enum cordon_tier_enter {
	CORDON_ENTER_REPORT = 0, /**< nothing beyond the tier-change event */
	CORDON_ENTER_FREEZE = 1, /**< the agent is marked frozen, as by a freeze rule */
	CORDON_ENTER_KILL = 2,   /**< the agent is marked killed, as by a kill rule */
	CORDON_ENTER_MAX,
};

/*
 * Tasks and grants. A task (cordon task begin) is a number the controller allocates, with its
 * kernel state in cordon_tasks: the agent it belongs to, its expiry on the kernel clock, its
 * overlay policy and its grant set. An agent-wide task is named by cordon_agent.task_id; a
 * process-bound one by cordon_proc_tasks, keyed by the process's tgid, which every process the
 * bound one forks inherits (task_guard_fork, bpf/exec_guard.bpf.c).
 */
#define CORDON_MAX_TASKS 16384      /* cordon_tasks entries, all agents */
#define CORDON_MAX_TASK_PROCS 32768 /* processes bound to tasks, all agents (forks included) */
/* Forked task-bound processes one agent may have at once: no agent can fill the host's table. */
#define CORDON_MAX_TASK_PROCS_PER_AGENT 2048
#define CORDON_MAX_GRANTS 16384     /* cordon_grants entries, all agents */
#define CORDON_MAX_TASKS_PER_AGENT 16  /* tasks live at once in one agent */
#define CORDON_MAX_GRANTS_PER_AGENT 64 /* grants live at once in one agent */

/*
 * Rule ids in compiled entries: an overlay's rules carry CORDON_RULE_OVERLAY | its own rule id,
 * a grant set's entries CORDON_RULE_GRANT | the grant id; events name them so.
 */
#define CORDON_RULE_OVERLAY (1u << 30)
#define CORDON_RULE_GRANT (1u << 31)
#define CORDON_RULE_INDEX_MASK ((1u << 30) - 1)

/** Value of the cordon_tasks hash, keyed by task number (__u64). Written by the controller. */
struct cordon_task {
	__u64 cgid;       /**< the agent's cgroup id: the task applies to that agent only */
	__u64 expires_ns; /**< CLOCK_MONOTONIC ns at which the task ends; 0 = no TTL */
	__u32 overlay_id; /**< compiled overlay policy; 0 = none */
	__u32 grant_set;  /**< compiled set of the task's grants; 0 = none */
	__u32 agent_id;   /**< cordon_agent.agent_id */
	__u32 _pad0;      /**< zero */
};
CORDON_STATIC_ASSERT(sizeof(struct cordon_task) == 32, "cordon_task layout changed");

/** Value of the cordon_proc_tasks hash, keyed by tgid (__u32): the task a process is bound to. */
struct cordon_proc_task {
	__u64 task_id;  /**< task number */
	/** the process's start time (task->start_time of its leader), so a reused pid is never
	 *  taken for it; 0 when the controller bound it, claimed by its first decision */
	__u64 start_ns;
	__u32 forked;  /**< 1: made by a fork (counted in cordon_agent_live.task_procs) */
	__u32 _pad0;   /**< zero */
};
CORDON_STATIC_ASSERT(sizeof(struct cordon_proc_task) == 24, "cordon_proc_task layout changed");

/** Value of the cordon_grants hash, keyed by grant id (__u32). Written by the controller. */
struct cordon_grant {
	__u64 cgid;       /**< the agent it was given to */
	__u64 expires_ns; /**< CLOCK_MONOTONIC ns at which it stops allowing */
	__u64 task_id;    /**< the task it is bound to (allows only while that task is live); 0 = none */
};
CORDON_STATIC_ASSERT(sizeof(struct cordon_grant) == 24, "cordon_grant layout changed");

/** First part of every ring-buffer record. */
struct cordon_event_header {
	__u64 ts_ns;     /**< bpf_ktime_get_ns() at the decision (CLOCK_MONOTONIC) */
	__u64 cgroup_id; /**< agent cgroup (the subtree root the process belongs to) */
	__u64 task_id;   /**< agent's task at the decision */
	__u32 agent_id;  /**< cordon_agent.agent_id */
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
	/** The agent's position: bytes of its records reserved before this one
	 *  (cordon_agent_live.events_made when it was reserved); the reader hands it back through
	 *  cordon_event_share.consumed. */
	__u64 seq;
	char comm[CORDON_COMM_LEN]; /**< task comm at the decision */
};
CORDON_STATIC_ASSERT(sizeof(struct cordon_event_header) == 80, "cordon_event_header layout changed");

/* ---- Compiled policy (written by the controller, read by the decision procedure) ---------- */

/*
 * Longest path a rule may name, in bytes. A path key's data part is policy id (4) + class (1) +
 * path bytes, and the kernel caps LPM trie data at 256 bytes, which leaves 251 bytes: a path of
 * up to 250 bytes plus the NUL that marks an exact rule. A path the kernel sees that is longer is
 * truncated to 251 bytes for lookup, which still matches every directory rule it lies below and
 * no exact rule, so matching stays correct for every rule cordon accepts.
 */
#define CORDON_PATH_KEY_BYTES 251
#define CORDON_PATH_MAX 250

/* Source limits of one policy (checked by the validator, sized into the maps). */
#define CORDON_MAX_PATH_RULES 16384 /* exec + files rules of one policy */
#define CORDON_MAX_NET_RULES 16384  /* network rules of one policy, after host resolution */
/* Compiled path entries of one policy (rules, implied directories, guard entries). */
#define CORDON_MAX_PATH_ENTRIES (4 * CORDON_MAX_PATH_RULES)
#define CORDON_MAX_TIERS 8          /* trust tiers; a u8 index, 8 keeps the table one line */
/* Port/protocol entries one network prefix carries, own and inherited (see docs/policy.md). */
#define CORDON_NET_SLOTS 8

/** What a rule (or a class default) does when it decides an access. */
enum cordon_action {
	CORDON_ACTION_ALLOW = 0, /**< allow silently (reported only with trace: all) */
	CORDON_ACTION_DENY = 1,  /**< refuse */
	CORDON_ACTION_AUDIT = 2, /**< allow and report */
	CORDON_ACTION_KILL = 3,  /**< refuse, kill the process and mark the whole agent killed */
	CORDON_ACTION_FREEZE = 4, /**< refuse and mark the whole agent frozen, for human review */
	CORDON_ACTION_MAX,
};

/** Which rule set a path key belongs to. */
enum cordon_path_class {
	CORDON_PATH_EXEC = 1,  /**< exec rules */
	CORDON_PATH_READ = 2,  /**< files rules with access: read */
	CORDON_PATH_WRITE = 3, /**< files rules with access: write (create, truncate, unlink, rename) */
	/** Every directory above (or named by) a rule's path: renaming one moves what a rule protects. */
	CORDON_PATH_GUARD = 4,
	CORDON_PATH_CLASS_MAX,
};

/** Bits of cordon_net_slot.protocols. */
enum cordon_net_proto {
	CORDON_PROTO_TCP = 1u << 0,
	CORDON_PROTO_UDP = 1u << 1,
};

/**
 * Key of the cordon_path_rules LPM trie. prefixlen counts bits from policy_id on. An exact rule's
 * path ends with its NUL (so /usr/bin/git does not match /usr/bin/gitk); a directory rule's path
 * ends with '/' and no NUL (everything below it).
 */
struct cordon_path_key {
	__u32 prefixlen;                    /**< bits of policy_id, class and path that must match */
	__u32 policy_id;                    /**< compiled policy this rule belongs to */
	__u8 path_class;                    /**< enum cordon_path_class */
	__u8 path[CORDON_PATH_KEY_BYTES];   /**< path bytes, zero-filled after the match length */
};
CORDON_STATIC_ASSERT(sizeof(struct cordon_path_key) == 260, "cordon_path_key layout changed");

/** Value of the cordon_path_rules LPM trie. */
struct cordon_path_value {
	__u32 rule_id; /**< source rule (index into the controller's rule table) */
	__u8 action;   /**< enum cordon_action */
	__u8 min_tier; /**< allow/audit apply only at this tier or above; below, the access is denied */
	__u16 _pad0;   /**< zero */
};
CORDON_STATIC_ASSERT(sizeof(struct cordon_path_value) == 8, "cordon_path_value layout changed");

/* Set in cordon_net_key.family for network.inbound rules (local addresses an agent may listen
 * or bind on), which share the trie with the outbound rules. */
#define CORDON_NET_INBOUND 0x80

/**
 * Key of the cordon_net_rules LPM trie. prefixlen counts bits from policy_id on: 40 + the CIDR
 * length. IPv4 addresses fill addr[0..3]; family keeps an IPv6 ::/0 rule from covering IPv4.
 */
struct cordon_net_key {
	__u32 prefixlen; /**< 40 + CIDR prefix length */
	__u32 policy_id; /**< compiled policy this rule belongs to */
	__u8 family;     /**< 4 or 6, | CORDON_NET_INBOUND for inbound rules */
	__u8 addr[16];   /**< network address, big-endian, zero beyond the prefix */
	__u8 _pad0[3];   /**< zero; not part of any prefix */
};
CORDON_STATIC_ASSERT(sizeof(struct cordon_net_key) == 28, "cordon_net_key layout changed");

/** One port/protocol entry of a network prefix. */
struct cordon_net_slot {
	__u16 port_lo;   /**< first port, host order; 0..65535 with port_hi 65535 = every port */
	__u16 port_hi;   /**< last port, inclusive */
	__u8 protocols;  /**< enum cordon_net_proto bits */
	__u8 action;     /**< enum cordon_action */
	__u8 min_tier;   /**< as cordon_path_value.min_tier */
	__u8 _pad0;      /**< zero */
	__u32 rule_id;   /**< source rule */
};
CORDON_STATIC_ASSERT(sizeof(struct cordon_net_slot) == 12, "cordon_net_slot layout changed");

/**
 * Value of the cordon_net_rules LPM trie: the slots that apply to addresses under this prefix,
 * in the order the kernel tries them (first match wins): this prefix's own rules, narrowest port
 * set first, then those inherited from shorter covering prefixes, longest first.
 */
struct cordon_net_value {
	struct cordon_net_slot slots[CORDON_NET_SLOTS];
	__u32 nslots; /**< used entries of slots[] */
};
CORDON_STATIC_ASSERT(sizeof(struct cordon_net_value) == 100, "cordon_net_value layout changed");

/** Value of the cordon_policies hash, keyed by policy id (__u32): class defaults and trust. */
struct cordon_policy {
	__u8 exec_default;   /**< enum cordon_action when no exec rule matches */
	__u8 file_default;   /**< enum cordon_action when no files rule matches */
	__u8 net_default;    /**< enum cordon_action when no network rule matches */
	__u8 mode;           /**< enum cordon_mode an agent starts in (cordon_agent.mode decides) */
	__u8 trace_all;      /**< 1: report allowed accesses too */
	__u8 ntiers;         /**< used entries of tier_min_score (>= 1) */
	__u16 penalty_deny;  /**< score lost per denial */
	__u16 penalty_kill;  /**< score lost per kill-rule hit */
	__u8 raw_sockets;    /**< enum cordon_action for raw, ICMP echo and packet sockets */
	__u8 unix_abstract;  /**< enum cordon_action for abstract-namespace Unix sockets */
	__u32 exec_default_rule_id; /**< rule table entry of exec.default (names its line) */
	__u32 file_default_rule_id; /**< rule table entry of files.default */
	__u32 net_default_rule_id;  /**< rule table entry of network.default */
	__u32 initial_score;        /**< score a new agent starts with (0..1000) */
	__u32 recovery_per_minute;  /**< points regained per minute, computed by the kernel */
	__u32 tier_min_score[CORDON_MAX_TIERS]; /**< ascending; tier i holds scores >= [i] */
	__u32 inbound_default_rule_id; /**< rule table entry of network.inbound.default */
	__u8 inbound_default;       /**< enum cordon_action when no inbound rule matches */
	__u8 trace_exec;            /**< 1: record every exec that succeeded (trace: exec or all) */
	/** Side doors the policy reopens (spec.hardening.allow; bit = CORDON_DOOR_*): the kernel
	 *  refuses the others for every agent, attached ones included, where a hook can tell. */
	__u8 open_doors;
	/** spec.tasks.isolation: 0 strict (a process may reach into one of another task only
	 *  if the policy says so), 1 open. */
	__u8 tasks_open;
	/** Capabilities (bit = CAP_* number) an agent may never use against the initial user
	 *  namespace, whatever it runs as: the launch-time drop list, enforced again in the kernel
	 *  (lsm backend, tamper_guard lsm/capable). */
	__u64 refused_caps;
	__u32 burst_window_ms; /**< trust.penalties.burst.within, in ms; 0 = no burst signal */
	__u16 burst_denials;   /**< denials within the window that cost burst_penalty once */
	__u16 burst_penalty;   /**< score lost when a window reaches burst_denials */
	/** enum cordon_tier_enter per tier: what happens when the agent enters that tier */
	__u8 tier_on_enter[CORDON_MAX_TIERS];
	/** network.dns.unknown: what the DNS gateway does with a query for a name no rule names
	 *  (enum cordon_dns_unknown) */
	__u8 dns_unknown;
	__u8 _pad_dns;  /**< zero */
	__u16 dns_grace_s; /**< network.dns.grace: seconds an answer's addresses outlive its TTL */
	__u32 _pad_end;    /**< zero */
};
CORDON_STATIC_ASSERT(sizeof(struct cordon_policy) == 104, "cordon_policy layout changed");

/* ---- The DNS gateway (userspace/dns/gateway.h, bpf/net_guard.bpf.c) ---- */

/** What the gateway does with a query for a name that no host rule names. */
enum cordon_dns_unknown {
	CORDON_DNS_REFUSE = 0, /**< answer REFUSED, report it (the default) */
	CORDON_DNS_PASS = 1,   /**< forward it and release the answer; its addresses allow nothing */
};

#define CORDON_DNS_NAME_MAX 256   /* a name in presentation form, NUL-padded (253 + "*." + NUL) */
#define CORDON_MAX_DNS_RULES 16384 /* host rules of all loaded policies (cordon_dns_rules) */
#define CORDON_MAX_DNS_HOSTS 65536 /* live (agent, address) entries (cordon_dns_hosts) */
#define CORDON_MAX_DNS_SOCKS 16384 /* sockets steered to the gateway (cordon_dns_socks, LRU) */

/** Key of cordon_dns_rules: a host rule's name ("github.com", or "*.github.io") in a policy. */
struct cordon_dns_rule_key {
	__u32 policy_id;
	char name[CORDON_DNS_NAME_MAX]; /**< lower case, no trailing dot, NUL-padded */
};
CORDON_STATIC_ASSERT(sizeof(struct cordon_dns_rule_key) == 260, "cordon_dns_rule_key layout changed");

/** Value of cordon_dns_rules: what an address this name answers with may be reached on, in rule
 *  order (the slots of every rule of the policy that names it, as cordon_net_value's). */
struct cordon_dns_rule {
	struct cordon_net_slot slots[CORDON_NET_SLOTS];
	__u32 nslots;
};
CORDON_STATIC_ASSERT(sizeof(struct cordon_dns_rule) == 100, "cordon_dns_rule layout changed");

/** Key of cordon_dns_hosts: an address one agent's own DNS answer gave it, under one policy. */
struct cordon_dns_host_key {
	__u64 agent;     /**< the agent's key (CORDON_AGENT_KEY) */
	__u32 policy_id; /**< the policy whose rule named the answer's name */
	__u8 family;     /**< 4 or 6 */
	__u8 _pad0[3];   /**< zero */
	__u8 addr[16];   /**< big-endian; IPv4 in addr[0..3], zero beyond */
};
CORDON_STATIC_ASSERT(sizeof(struct cordon_dns_host_key) == 32, "cordon_dns_host_key layout changed");

/** One slot of a cordon_dns_hosts entry: a rule's ports, until the answer that gave it expires. */
struct cordon_dns_slot {
	struct cordon_net_slot slot;
	__u32 _pad0;      /**< zero */
	__u64 expires_ns; /**< CLOCK_MONOTONIC (bpf_ktime_get_ns); from then on it allows nothing */
};
CORDON_STATIC_ASSERT(sizeof(struct cordon_dns_slot) == 24, "cordon_dns_slot layout changed");

/** Value of cordon_dns_hosts: tried before cordon_net_rules, first live matching slot decides. */
struct cordon_dns_host {
	struct cordon_dns_slot slots[CORDON_NET_SLOTS];
	__u32 nslots;
	__u32 _pad0;
};
CORDON_STATIC_ASSERT(sizeof(struct cordon_dns_host) == 200, "cordon_dns_host layout changed");

/** Value of cordon_dns_socks (LRU, keyed by socket cookie): a socket whose DNS the programs
 *  steered to the gateway, whose agent it is, and where it meant to go. */
struct cordon_dns_sock {
	__u64 agent;     /**< the agent's key when it was steered */
	__u64 task_id;   /**< the task of the process that steered it; 0 none */
	__u32 policy_id; /**< the agent's policy then */
	__u32 agent_id;
	__u8 family;     /**< 4 or 6: the original destination's */
	__u8 mode;       /**< enum cordon_mode then */
	__u16 port;      /**< original destination port, host order */
	__u8 addr[16];   /**< original destination, as cordon_dns_host_key.addr */
	__u32 _pad0;     /**< zero */
};
CORDON_STATIC_ASSERT(sizeof(struct cordon_dns_sock) == 48, "cordon_dns_sock layout changed");

/** The gateway's state (cordon_dns_config[0]), written by the controller. */
enum cordon_dns_state {
	CORDON_DNS_OFF = 0,   /**< no gateway: port 53 is decided by the network rules */
	CORDON_DNS_ON = 1,    /**< every agent's DNS is steered to `port` on loopback */
	CORDON_DNS_DOWN = 2,  /**< a gateway ran and stopped: DNS is refused (fails closed) */
};
struct cordon_dns_config {
	__u8 state;      /**< enum cordon_dns_state */
	__u8 _pad0;      /**< zero */
	__u16 port;      /**< the gateway's UDP and TCP port on 127.0.0.1 and ::1, host order */
	__u32 _pad1;     /**< zero */
};
CORDON_STATIC_ASSERT(sizeof(struct cordon_dns_config) == 8, "cordon_dns_config layout changed");

/** A full decision record: the header, then what was accessed. */
struct cordon_event {
	struct cordon_event_header h;
	__u8 addr[16];  /**< network hooks: destination address (IPv4 in addr[0..3]) */
	__u16 port;     /**< network hooks: destination port, host order; socket hook with
			     family 0: the AF_* number of a socket outside inet and inet6 */
	__u8 family;    /**< network hooks and raw/ICMP sockets: 4 or 6; socket hook: 0 for
			     another address family (in port) */
	__u8 protocol;  /**< network hooks: enum cordon_net_proto bit; socket hook: IP protocol */
	__u8 access;    /**< file hooks: enum cordon_access bits decided */
	__u8 _pad0[3];  /**< zero */
	char path[CORDON_EVENT_PATH]; /**< exec/file/unix hooks: resolved path, NUL-terminated;
					   an abstract Unix socket's name starts with '@' */
};
CORDON_STATIC_ASSERT(sizeof(struct cordon_event) == 360, "cordon_event layout changed");

/* Bytes of a process's argument strings an exec trace record keeps (NUL-separated). */
#define CORDON_EVENT_ARGV 256

/**
 * An exec trace record (hook CORDON_HOOK_PROCESS): what process lineage needs, with the header's
 * pid, ppid, uid and comm (the new program's).
 */
struct cordon_exec_event {
	struct cordon_event_header h;
	__u32 argv_len;  /**< bytes of argv used (at most CORDON_EVENT_ARGV) */
	__u32 argv_full; /**< the argument strings' whole length (longer than argv_len: cut) */
	char path[CORDON_EVENT_PATH]; /**< the file name the exec was given (bprm->filename) */
	char argv[CORDON_EVENT_ARGV]; /**< the argument strings, NUL-separated, cut at argv_len */
	/** The file that ran, resolved from the kernel's objects (bprm->file) as path rules are:
	 *  "" when unresolvable (a memfd, a detached mount; see bpf/path.bpf.h). */
	char file[CORDON_EVENT_PATH];
	__u64 ino;       /**< its inode number */
	__u32 dev;       /**< its device (MAJOR << 20 | MINOR, the kernel's s_dev) */
	__u32 _pad1;     /**< zero */
};
CORDON_STATIC_ASSERT(sizeof(struct cordon_exec_event) == 872, "cordon_exec_event layout changed");

/* ---- Agents bound to cgroup paths (bpf/cgroup_guard.bpf.c) ------------------------------ */

/*
 * Every agent has a key that outlives its cgroup: CORDON_AGENT_KEY(agent_id). cordon_agents,
 * cordon_agent_live, and the cgid fields of cordon_task and cordon_grant are keyed by it, and
 * cordon_agent_cgroups maps each cgroup of the agent (at most one live at a time) to it. Bit 63
 * keeps keys apart from cgroup ids, whose high half is a small generation number.
 */
#ifdef __cplusplus
#define CORDON_AGENT_KEY(agent_id) ((1ull << 63) | static_cast<__u64>(agent_id))
#else
#define CORDON_AGENT_KEY(agent_id) ((1ull << 63) | (__u64)(agent_id))
#endif
/* Agent ids the kernel gives template children come from their own range (cordon_kernel_ids):
 * the controller's ids stay below it. */
#define CORDON_CHILD_ID_BASE (1u << 31)

/* Bytes of a cgroup path as cordon_bound_paths and cordon_templates keep it: relative to the
 * cgroup2 root, with its leading '/', NUL-filled, at most CORDON_CGROUP_PATH_MAX bytes long (the
 * kernel reads at most CORDON_CGROUP_PATH_BYTES with the NUL, and ignores a longer path rather
 * than match a cut one). A template's parent is at most CORDON_CGROUP_PARENT_MAX bytes and a
 * name at most 255 (NAME_MAX), so every child's path fits: 254 + 1 + 255 = 510. */
#define CORDON_CGROUP_PATH_BYTES 512
#define CORDON_CGROUP_PATH_MAX 510
#define CORDON_CGROUP_PARENT_MAX 254
/* A template's name pattern: PREFIX*SUFFIX, each at most this long. */
#define CORDON_PATTERN_PART 48
/* Templates one parent cgroup may carry. */
#define CORDON_TEMPLATES_PER_PARENT 4

/** Key of cordon_bound_paths and cordon_templates. */
struct cordon_cgroup_path {
	char path[CORDON_CGROUP_PATH_BYTES];
};
CORDON_STATIC_ASSERT(sizeof(struct cordon_cgroup_path) == 512, "cordon_cgroup_path layout changed");

/** Value of cordon_agent_cgroups (keyed by cgroup id) and cordon_bound_paths (by path). */
struct cordon_bound {
	__u64 agent_key; /**< CORDON_AGENT_KEY of the agent */
};
CORDON_STATIC_ASSERT(sizeof(struct cordon_bound) == 8, "cordon_bound layout changed");

/** One template: children of a parent whose names match PREFIX*SUFFIX become agents. */
struct cordon_template {
	__u32 template_id; /**< the controller's id; 0 = an empty slot */
	__u8 prefix_len;
	__u8 suffix_len;
	__u8 star;         /**< 1: PREFIX*SUFFIX; 0: the name is exactly PREFIX */
	__u8 _pad0;        /**< zero */
	char prefix[CORDON_PATTERN_PART];
	char suffix[CORDON_PATTERN_PART];
	struct cordon_agent proto; /**< each child's cordon_agents entry, but for agent_id */
	__u32 initial_score;       /**< each child's first score */
	__u32 initial_tier;        /**< the tier that score gives */
};
CORDON_STATIC_ASSERT(sizeof(struct cordon_template) == 152, "cordon_template layout changed");

/** Value of cordon_templates, keyed by the parent's path. */
struct cordon_template_set {
	struct cordon_template t[CORDON_TEMPLATES_PER_PARENT];
};
CORDON_STATIC_ASSERT(sizeof(struct cordon_template_set) == 608, "cordon_template_set layout changed");
