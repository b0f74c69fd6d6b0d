// SPDX-License-Identifier: Apache-2.0
// A real-time loop's share of the CPU. cordond's loop and an embedded `cordon run` run at a
// real-time priority so that no agent process can keep the kill switch from the CPU. They also
// read the agent's records, and an agent can make those as fast as it can call the kernel: a loop
// that read them at real-time priority without a limit would hold the CPU (on a 1-CPU machine,
// all of it) and keep everything else from running, the agent's own killed processes included,
// which must run to die. So such a loop may work at most as long as it has waited: after a burst
// of kBurst it rests, at most kMaxRest at a time, so that a request that arrives meanwhile waits
// at most that long. Half of a CPU at least stays with everything else.
#pragma once

#include <time.h>

#include <algorithm>
#include <cstdint>

#include "common/clock.h"

namespace cordon {

class CpuShare {
public:
    static constexpr std::int64_t kBurst = 2'000'000;     ///< ns of work with no rest first
    static constexpr std::int64_t kMaxRest = 3'000'000;   ///< ns of one rest
    static constexpr std::int64_t kMaxDebt = 100'000'000; ///< ns of work still to rest for

    /// `realtime`: whether the loop runs at a real-time priority (else it never rests).
    explicit CpuShare(bool realtime) : on_(realtime) {}

    /// Call when the loop is about to wait: counts the work since the last call, and rests when
    /// the loop has worked longer than it waited.
    void before_wait()
    {
        const auto now = monotonic_ns();
        credit_ = std::max(credit_ - (now - mark_), -kMaxDebt);
        mark_ = now;
        if (!on_ || credit_ >= 0)
            return;
        const auto rest = std::min(-credit_, kMaxRest);
        const timespec ts{.tv_sec = 0, .tv_nsec = static_cast<long>(rest)};
        ::nanosleep(&ts, nullptr);
        after_wait();
    }

    /// Call when the wait ended: the time waited (or rested) is credit for later work.
    void after_wait()
    {
        const auto now = monotonic_ns();
        credit_ = std::min(credit_ + (now - mark_), kBurst);
        mark_ = now;
    }

    /// ns the loop still owes in rest (0 when it may work).
    std::int64_t debt() const { return credit_ < 0 ? -credit_ : 0; }

private:
    bool on_;
    std::int64_t credit_ = kBurst;
    std::int64_t mark_ = monotonic_ns();
};

} // namespace cordon
