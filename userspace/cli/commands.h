// SPDX-License-Identifier: Apache-2.0
// cordon's daemon verbs: thin clients of cordond's API (docs/api.md), and teardown.
#pragma once

#include <optional>
#include <string>

namespace cordon::cli {

int agents(bool json);
int status(bool json);
int attach(const std::string& cgroup, const std::string& policy_file,
           const std::optional<std::string>& name, const std::optional<std::string>& mode);
int detach(const std::string& name);

struct TeardownOptions {
    std::string pin_dir = "/sys/fs/bpf/cordon";
    std::string registry = "/run/cordon/agents";
};
/// Removes everything cordond put into the kernel and bpffs: ends the agents it started (they
/// would run unguarded), unpins its maps and links, removes its registry. Refuses while cordond
/// runs.
int teardown(const TeardownOptions& o);

} // namespace cordon::cli
