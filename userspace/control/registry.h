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

#include "policy/model.h"

namespace cordon::control {

/// How an agent came to be.
enum class Origin {
    Run,    ///< `cordon run`: cordon created its cgroup below <root>/cordon and removes it
    Attach, ///< `cordon attach`: an existing cgroup; cordon never kills or removes it
};

struct AgentRecord {
    std::string name;
    std::uint32_t id = 0;        ///< cordon_agent.agent_id
    std::filesystem::path cgroup; ///< absolute path of the agent's root cgroup
    std::uint64_t cgroup_id = 0;
    std::uint32_t level = 0;     ///< cgroup level of `cgroup`
    std::uint32_t policy_id = 0;
    std::string policy_file;     ///< as the client named it
    std::string policy_name;     ///< metadata.name
    std::string policy_sha256;   ///< of the policy text
    std::vector<std::string> rule_sources; ///< "file:line" by rule id (entry 0 unused)
    policy::Context context;     ///< what the policy's variables stood for (kept by apply)
    Origin origin = Origin::Attach;
    std::int64_t created = 0;    ///< unix seconds
    /// For a run agent not detached: the `cordon run` process whose session owns it (its pid
    /// and start time, so a reused pid is not taken for it). The agent ends when it goes.
    std::optional<int> owner_pid;
    std::uint64_t owner_start = 0;
};

const char* origin_name(Origin o);

/// Reads every record of a registry directory, by name; a missing directory is an empty
/// registry. Throws Error naming the file when one is corrupt.
std::vector<AgentRecord> load_registry(const std::filesystem::path& dir);
/// Writes one agent's record through a temporary file and rename(2): readers see the old or the
/// new one, never half.
void save_record(const std::filesystem::path& dir, const AgentRecord& r);
/// Removes one agent's record; nothing if it has none.
void remove_record(const std::filesystem::path& dir, const std::string& name);

/// A process's start time in clock ticks since boot (field 22 of /proc/PID/stat), 0 if gone or
/// dead (a zombie, whose /proc entry stays until it is reaped, counts as dead).
std::uint64_t process_start_time(int pid);

} // namespace cordon::control
