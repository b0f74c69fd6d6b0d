// SPDX-License-Identifier: Apache-2.0
// The controller's record of its agents: what the kernel's maps cannot say (names, where a
// policy came from, who started an agent). cordond keeps one file per agent in /run/cordon/agents/,
// each replaced atomically when its agent changes (so a change costs the same with 1 or 1,000
// agents), so that a restarted daemon knows the agents the pinned maps still enforce.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "policy/grant.h"
#include "policy/model.h"

namespace cordon::control {

/// How an agent came to be.
enum class Origin {
    Run,    ///< `cordon run`: cordon created its cgroup below <root>/cordon and removes it
    Attach, ///< `cordon attach`: a cgroup path; cordon never kills or removes its cgroup, and
            ///< the agent outlives it (waits for the path to be made again)
    Template, ///< `cordon attach --children`/a glob: no processes of its own; each matching
              ///< child cgroup, made now or later, becomes an agent of origin Child
    Child,    ///< a template's match: ends when its cgroup is removed
};

/// A task of an agent (`cordon task begin`): what the kernel's cordon_tasks entry cannot say.
struct TaskRecord {
    std::string id;            ///< the caller's task id
    std::uint64_t number = 0;  ///< kernel task number (cordon_agent.task_id, events' task_id)
    std::optional<int> pid;    ///< bound to this process and what it forks; none: the agent
    std::uint64_t pid_start = 0; ///< the bound process's start time (process_start_time)
    std::uint32_t overlay_id = 0; ///< compiled overlay; 0 = none
    std::string overlay_file;
    std::string overlay_name;
    std::vector<std::string> overlay_sources; ///< "file:line" by overlay rule id
    std::uint32_t grant_set = 0; ///< compiled set of the task's grants; 0 = none
    std::int64_t begun_ms = 0;   ///< unix ms
    std::int64_t expires_ms = 0; ///< unix ms; 0 = no TTL
    std::uint64_t expires_ns = 0; ///< CLOCK_MONOTONIC, the kernel's clock; 0 = no TTL
};

/// The grant grammar's kinds (policy/grant.h), named here too so that control's callers need
/// not change.
using GrantKind = policy::GrantKind;
using policy::grant_kind_name;

/// A just-in-time grant (`cordon grant`). Its kernel state: a cordon_grants entry and the
/// entries compiled into its agent's (or task's) grant set.
struct GrantRecord {
    std::uint32_t id = 0;
    GrantKind kind = GrantKind::Read;
    std::string target;   ///< as the caller gave it
    std::string path;     ///< exec/read/write: absolute, canonical; ends with '/' for a directory
    std::vector<policy::Cidr> cidrs;      ///< connect: the addresses (a host's, at grant time)
    std::vector<policy::PortRange> ports; ///< connect: empty = every port
    std::uint8_t protocols = policy::kAnyProtocol;
    std::string task;     ///< the task it is bound to; empty = the whole agent
    std::string reason;
    std::string by;       ///< who asked ("uid 0 pid 123")
    std::int64_t created_ms = 0; ///< unix ms
    std::int64_t expires_ms = 0; ///< unix ms
    std::uint64_t expires_ns = 0; ///< CLOCK_MONOTONIC, the kernel's clock
};

struct AgentRecord {
    std::string name;
    std::uint32_t id = 0;        ///< cordon_agent.agent_id
    std::filesystem::path cgroup; ///< absolute path of the agent's root cgroup (a template:
                                  ///< its parent and pattern, "/sys/fs/cgroup/a.slice/x@*")
    /// The agent's key in the kernel's maps (CORDON_AGENT_KEY(id)); it outlives any one cgroup.
    /// 0 for a template, which has no kernel agent.
    std::uint64_t key = 0;
    std::uint64_t cgroup_id = 0; ///< the cgroup now bound to it; 0: waiting for its path
    std::string template_name;   ///< Child: the template it matched
    std::string policy_text;     ///< Attach, Template: kept so that a reboot can restore it
    std::string policy_mode;     ///< Attach, Template: "enforce"/"audit" given over spec.mode
    bool killed = false;         ///< Attach: killed by the operator; kept across reboots
    std::uint32_t level = 0;     ///< cgroup level of `cgroup`
    std::uint32_t policy_id = 0;
    std::string policy_file;     ///< as the client named it
    std::string policy_name;     ///< metadata.name
    std::string policy_sha256;   ///< of the policy text
    std::vector<std::string> rule_sources; ///< "file:line" by rule id (entry 0 unused)
    std::vector<std::string> tier_names;   ///< the policy's trust tiers, lowest first
    policy::Context context;     ///< what the policy's variables stood for (kept by apply)
    Origin origin = Origin::Attach;
    std::int64_t created = 0;    ///< unix seconds
    /// For a run agent not detached: the `cordon run` process whose session owns it (its pid
    /// and start time, so a reused pid is not taken for it). The agent ends when it goes.
    std::optional<int> owner_pid;
    std::uint64_t owner_start = 0;
    std::uint32_t grant_set = 0;     ///< compiled set of the agent-wide grants; 0 = none
    std::vector<TaskRecord> tasks;   ///< live tasks
    std::vector<GrantRecord> grants; ///< live grants, agent-wide and per task
};

const char* origin_name(Origin o);

/// The name a compiled rule id stands for, as events and `cordon explain` print it: a grant
/// ("grant 7 (read /srv/x)"), a rule of `task`'s overlay or of the agent's policy ("file:line");
/// empty when the records do not know it.
std::string rule_source(const AgentRecord* rec, const TaskRecord* task, std::uint32_t id);

/// Reads every record of a registry directory, by name; a missing directory is an empty
/// registry. Throws Error naming the file when one is corrupt.
std::vector<AgentRecord> load_registry(const std::filesystem::path& dir);
/// Writes one agent's record through a temporary file and rename(2): readers see the old or the
/// new one, never half.
void save_record(const std::filesystem::path& dir, const AgentRecord& r);
/// Removes one agent's record; nothing if it has none.
void remove_record(const std::filesystem::path& dir, const std::string& name);
/// The record as the durable state keeps it (attachments and templates, in cordond's state
/// directory, so that they outlive a reboot): its cgroup path, policy text and kill flag; not
/// its kernel ids, tasks or grants (those end with the boot).
AgentRecord durable_copy(const AgentRecord& r);

/// A process's start time in clock ticks since boot (field 22 of /proc/PID/stat), 0 if gone or
/// dead (a zombie, whose /proc entry stays until it is reaped, counts as dead).
std::uint64_t process_start_time(int pid);

} // namespace cordon::control
