// SPDX-License-Identifier: Apache-2.0
// cordon's daemon verbs: thin clients of cordond's API (docs/api.md), and teardown.
#pragma once

#include <optional>
#include <string>

#include "api/protocol.h"

namespace cordon::cli {

int agents(bool json);
int status(bool json);
int attach(const std::string& cgroup, const std::string& policy_file,
           const std::optional<std::string>& name, const std::optional<std::string>& mode);
int detach(const std::string& name);
/// kill, freeze, thaw, mode: one request about one agent; prints what happened.
int agent_op(api::Op op, const std::string& name, const std::string& reason,
             const std::string& mode);
/// `cordon policy apply NAME FILE`.
int apply(const std::string& name, const std::string& file, const std::optional<std::string>& mode,
          const std::string& reason);

struct TeardownOptions {
    std::string pin_dir = "/sys/fs/bpf/cordon";
    std::string registry = "/run/cordon/agents";
};
/// Removes everything cordond put into the kernel and bpffs: ends the agents it started (they
/// would run unguarded), unpins its maps and links, removes its registry. Refuses while cordond
/// runs.
int teardown(const TeardownOptions& o);

} // namespace cordon::cli
