// SPDX-License-Identifier: Apache-2.0
// Starting an agent's first process: the child side of `cordon run` (OOM score, core dumps,
// joining the cgroup, session, seccomp layer, capabilities, user, descriptors, exec), and the
// guardian that ends an embedded run's agent if cordon dies.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "agents/cgroup.h"
#include "common/priority.h"
#include "agents/seccomp.h"

namespace cordon::agents {

struct Identity {
    uid_t uid;
    gid_t gid;
    std::string name, home, shell;
};

/// The user's ids, home and shell from /etc/passwd; Error for an unknown user.
Identity lookup_user(const std::string& user);

/// Stages of child_exec, reported with an errno on failure.
enum ChildStage {
    kOom = 1, kCore, kJoin, kSession, kSeccomp, kCaps, kUser, kWorkdir, kFds, kExec, kStages
};
/// What each stage does, for "cannot <stage> for CMD: <errno>".
extern const char* const kStageText[kStages];

/// A process outside the agent that kills and removes the agent cgroup when cordon goes away
/// for any reason; cordon holds `keepalive_fd` (the guardian waits for its EOF).
pid_t start_guardian(const Cgroup& cg, int& keepalive_fd);

/// Sets this process's OOM score to -1000; returns the previous value, or nothing (with no
/// change) when the process lacks CAP_SYS_RESOURCE.
std::optional<std::string> shield_from_oom();

using cordon::raise_control_priority; // common/priority.h

/// In the agent's first process: everything up to exec (see launcher.cpp). Reports (stage,
/// errno) on `err_fd` on failure and never runs the command then (fail closed).
[[noreturn]] void child_exec(const std::filesystem::path& cgroup_dir, const SeccompLayer& seccomp,
                             std::uint64_t refused_caps,
                             const std::optional<std::string>& oom_score,
                             const std::optional<Identity>& who,
                             const std::optional<std::string>& workdir,
                             const std::vector<std::string>& command, int err_fd);

} // namespace cordon::agents
