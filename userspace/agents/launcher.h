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

/// Real-time priority of `cordon kill` and `cordon freeze` run by root (cordond's loop is not
/// real-time yet: it also reads the ring buffer, see docs/api.md): above every agent process, which runs SCHED_OTHER and can never
/// raise itself (CAP_SYS_NICE is dropped at launch and refused by the tamper rules). Low among
/// real-time priorities so that the kernel's own threads (migration, watchdogs) still come first.
inline constexpr int kControlPriority = 10;

/// Moves the calling thread to SCHED_FIFO at kControlPriority with SCHED_RESET_ON_FORK, so that
/// nothing it forks or spawns (the agent's first process, worker threads) inherits the priority.
/// The kernel's real-time throttling (kernel.sched_rt_runtime_us) still leaves the rest of the
/// host 5% of each second should cordon ever spin. Returns an empty string on success, else why
/// not (no CAP_SYS_NICE, RLIMIT_RTPRIO, a container's seccomp): the caller warns and goes on.
std::string raise_control_priority();

/// In the agent's first process: everything up to exec (see launcher.cpp). Reports (stage,
/// errno) on `err_fd` on failure and never runs the command then (fail closed).
[[noreturn]] void child_exec(const std::filesystem::path& cgroup_dir, const SeccompLayer& seccomp,
                             std::uint64_t refused_caps,
                             const std::optional<std::string>& oom_score,
                             const std::optional<Identity>& who,
                             const std::optional<std::string>& workdir,
                             const std::vector<std::string>& command, int err_fd);

} // namespace cordon::agents
