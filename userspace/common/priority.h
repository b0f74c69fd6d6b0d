// SPDX-License-Identifier: Apache-2.0
// The real-time priority of cordon's control path: cordond's loop, an embedded `cordon run` and
// its guardian, and `cordon kill` and `cordon freeze` run by root. Above every agent process,
// which runs SCHED_OTHER and can never raise itself (CAP_SYS_NICE is dropped at launch and
// refused by the tamper rules). Header-only: the static `cordon` front end uses it too.
#pragma once

#include <sched.h>

#include <cerrno>
#include <string>

#include "common/error.h"

namespace cordon {

/// Low among real-time priorities, so that the kernel's own threads (migration, watchdogs)
/// still come first.
inline constexpr int kControlPriority = 10;

/// Moves the calling thread to SCHED_FIFO at kControlPriority with SCHED_RESET_ON_FORK, so that
/// nothing it forks or spawns (the agent's first process, worker threads) inherits the priority.
/// A loop that runs there also reads what agents produce, so it paces itself (CpuShare). The
/// kernel's real-time throttling (kernel.sched_rt_runtime_us) leaves the rest of the host 5% of
/// each second in any case. Returns an empty string on success, else why not (no CAP_SYS_NICE,
/// RLIMIT_RTPRIO, a container's seccomp): the caller warns and goes on.
inline std::string raise_control_priority()
{
    const sched_param sp{.sched_priority = kControlPriority};
    if (::sched_setscheduler(0, SCHED_FIFO | SCHED_RESET_ON_FORK, &sp) == 0)
        return "";
    return "cannot run at real-time priority (" + errno_text(errno) +
           "): agent processes compete with cordon for CPU";
}

} // namespace cordon
