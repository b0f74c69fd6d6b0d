// SPDX-License-Identifier: Apache-2.0
// cordond: the one long-running controller of a host. One thread owns every BPF object and map
// (through control::Controller) and serves the control socket (docs/api.md).
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace cordon::daemon {

struct ServerOptions {
    std::filesystem::path socket = "/run/cordon/cordon.sock";
    std::filesystem::path registry = "/run/cordon/agents"; ///< one record file per agent
    std::filesystem::path pin_dir = "/sys/fs/bpf/cordon";
    std::filesystem::path actions_log = "/var/lib/cordon/actions.jsonl";
    std::string backend = "auto";
};

/// Runs until SIGTERM or SIGINT; returns the exit status. Agents stay enforced after it
/// returns (their maps and links are pinned); `cordon teardown` removes them.
int serve(const ServerOptions& opts);

/// Whether a peer may use the API: root, or a member of group `cordon` when it exists, and in
/// neither an agent's cgroup nor cordon's own subtree. Empty when allowed, else the reason.
std::string refusal(int pid, unsigned uid, unsigned gid, const std::string& peer_cgroup,
                    const std::string& cordon_subtree, const std::vector<std::string>& agent_cgroups);

} // namespace cordon::daemon
