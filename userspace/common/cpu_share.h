// SPDX-License-Identifier: Apache-2.0
// A real-time loop's share of the CPU. cordond's loop and an embedded `cordon run` run at a
// real-time priority so that no agent process can keep the kill switch from the CPU. They also
// read the agent's records, and an agent can make those as fast as it can call the kernel: a loop
// that read them at real-time priority without a limit would hold the CPU (on a 1-CPU machine,
// all of it) and keep everything else from running, the agent's own killed processes included,
// which must run to die. So such a loop may use the CPU at most as long as it has left it to
// others: its own CPU time (CLOCK_THREAD_CPUTIME_ID: system calls and polls count, not only the
// code between them) against the wall time that passed. After a burst of kBurst it rests, from
// kMinRest to kMaxRest at a time, so that a request that arrives meanwhile waits at most that
// long. Half of a CPU at least stays with everything else.
#pragma once

#include <time.h>

#include <algorithm>
#include <cstdint>

#include "common/clock.h"

namespace cordon {

class CpuShare {
public:
    static constexpr std::int64_t kBurst = 2'000'000;     ///< ns of CPU with no rest first
    static constexpr std::int64_t kMinRest = 1'000'000;   ///< ns: a rest worth a context switch
    static constexpr std::int64_t kMaxRest = 3'000'000;   ///< ns of one rest
    static constexpr std::int64_t kMaxDebt = 100'000'000; ///< ns of CPU still to rest for

    /// `realtime`: whether the loop runs at a real-time priority (else it never rests).
    explicit CpuShare(bool realtime) : on_(realtime) {}

    /// Call before each wait (poll): counts the CPU the loop used since the last call against
    /// the time it left to others, and rests when it used more.
    void before_wait()
    {
        const auto wall = monotonic_ns();
        const auto cpu = thread_cpu_ns();
        const auto used = cpu - cpu_mark_;
        const auto left = (wall - wall_mark_) - used;
        credit_ = std::clamp(credit_ + left - used, -kMaxDebt, kBurst);
        wall_mark_ = wall;
        cpu_mark_ = cpu;
        if (!on_ || credit_ >= 0)
            return;
        const auto rest = std::clamp(-credit_, kMinRest, kMaxRest);
        const timespec ts{.tv_sec = 0, .tv_nsec = static_cast<long>(rest)};
        ::nanosleep(&ts, nullptr); // counted as time left to others at the next call
    }

    /// ns of CPU the loop still owes in rest (0 when it may work).
    std::int64_t debt() const { return credit_ < 0 ? -credit_ : 0; }

    static std::int64_t thread_cpu_ns()
    {
        timespec ts{};
        ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
        return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
    }

private:
    bool on_;
    std::int64_t credit_ = kBurst;
    std::int64_t wall_mark_ = monotonic_ns();
    std::int64_t cpu_mark_ = thread_cpu_ns();
};

} // namespace cordon
