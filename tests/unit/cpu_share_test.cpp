// SPDX-License-Identifier: Apache-2.0
// The real-time loop's CPU share (common/cpu_share.h) and the priority-inheriting lock
// (common/pi_mutex.h). Bounds come from the clocks themselves: a loop that used W ns of CPU with
// no wait owes at least W - kBurst in rest; no assertion depends on how fast this machine is.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>

#include "common/clock.h"
#include "common/cpu_share.h"
#include "common/pi_mutex.h"

namespace cordon {
namespace {

// Uses `ns` of this thread's CPU time.
void work_for(std::int64_t ns)
{
    const auto until = CpuShare::thread_cpu_ns() + ns;
    while (CpuShare::thread_cpu_ns() < until) {
    }
}

// Works `cpu` ns of CPU after a before_wait() that left a full burst; returns the debt that the
// clocks say the next before_wait() must find: CPU used, less the wall time the thread was not
// running (preempted by the rest of the machine), less the burst.
std::int64_t work_and_expect(std::int64_t cpu)
{
    const auto w0 = monotonic_ns();
    const auto c0 = CpuShare::thread_cpu_ns();
    work_for(cpu);
    const auto used = CpuShare::thread_cpu_ns() - c0;
    const auto wall = monotonic_ns() - w0;
    return std::max<std::int64_t>(used - (wall - used) - CpuShare::kBurst, 0);
}

constexpr std::int64_t kSlack = 500'000; // the calls around the work

TEST(CpuShare, WorkBeyondTheBurstIsOwedAsRest)
{
    CpuShare share(false); // counts, never rests
    share.before_wait();
    const auto expected = work_and_expect(CpuShare::kBurst + 5'000'000);
    share.before_wait();
    EXPECT_NEAR(share.debt(), expected, kSlack);
}

TEST(CpuShare, ALoopThatRestsPaysItsDebtAtMostOneRestAtATime)
{
    CpuShare share(true);
    share.before_wait();
    work_and_expect(CpuShare::kBurst + 10'000'000);
    const auto before = monotonic_ns();
    share.before_wait(); // rests at most kMaxRest, not the whole debt
    const auto rested = monotonic_ns() - before;
    const auto owed = share.debt(); // counted before the rest: the rest is credit next time
    if (owed == 0) {
        EXPECT_LT(rested, CpuShare::kMinRest) << "nothing owed: no rest";
    } else {
        EXPECT_GE(rested, std::clamp(owed, CpuShare::kMinRest, CpuShare::kMaxRest));
    }
    for (int i = 0; i < 20 && share.debt() > 0; ++i)
        share.before_wait();
    EXPECT_EQ(share.debt(), 0) << "rests pay the debt";
}

TEST(CpuShare, WaitingEarnsNoMoreThanTheBurst)
{
    CpuShare share(false);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    share.before_wait(); // 20 ms of waiting: credit kBurst, no more
    const auto expected = work_and_expect(CpuShare::kBurst + 3'000'000);
    share.before_wait();
    EXPECT_NEAR(share.debt(), expected, kSlack);
}

TEST(PiMutex, ExcludesOtherThreads)
{
    PiMutex m;
    std::unique_lock lk(m);
    std::atomic<bool> other_got_it{true};
    std::thread([&] { other_got_it = m.try_lock(); }).join();
    EXPECT_FALSE(other_got_it) << "a held PiMutex is held";
}

TEST(PiCondition, WakesAWaiterAndTimesOut)
{
    PiMutex m;
    PiCondition cv;
    bool ready = false;
    std::thread t([&] {
        std::lock_guard lk(m);
        ready = true;
        cv.notify_one();
    });
    {
        std::unique_lock lk(m);
        cv.wait(lk, [&] { return ready; });
        EXPECT_TRUE(ready);
    }
    t.join();
    std::unique_lock lk(m);
    const auto before = monotonic_ns();
    EXPECT_FALSE(cv.wait_for(lk, std::chrono::milliseconds(30), [] { return false; }));
    EXPECT_GE(monotonic_ns() - before, 30'000'000);
}

} // namespace
} // namespace cordon
