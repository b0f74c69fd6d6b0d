// SPDX-License-Identifier: Apache-2.0
// The real-time loop's CPU share (common/cpu_share.h) and the priority-inheriting lock
// (common/pi_mutex.h). Bounds come from the clocks themselves: a loop that used W ns of CPU with
// no wait owes at least W - kBurst in rest; no assertion depends on how fast this machine is.
#include <gtest/gtest.h>

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

TEST(CpuShare, WorkBeyondTheBurstIsOwedAsRest)
{
    CpuShare share(false); // counts, never rests
    share.before_wait();
    work_for(CpuShare::kBurst + 5'000'000);
    share.before_wait();
    EXPECT_GE(share.debt(), 5'000'000);
}

TEST(CpuShare, ALoopThatRestsPaysItsDebtAtMostOneRestAtATime)
{
    CpuShare share(true);
    share.before_wait();
    work_for(CpuShare::kBurst + 10'000'000);
    const auto before = monotonic_ns();
    share.before_wait(); // rests kMaxRest, not the whole 10 ms
    const auto rested = monotonic_ns() - before;
    EXPECT_GE(rested, CpuShare::kMaxRest);
    EXPECT_GT(share.debt(), 0) << "one rest is at most kMaxRest";
    for (int i = 0; i < 10 && share.debt() > 0; ++i)
        share.before_wait();
    EXPECT_EQ(share.debt(), 0);
}

TEST(CpuShare, WaitingEarnsNoMoreThanTheBurst)
{
    CpuShare share(false);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    share.before_wait();
    work_for(CpuShare::kBurst + 1'000'000);
    share.before_wait();
    EXPECT_GT(share.debt(), 0) << "20 ms of waiting bought only kBurst of work";
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
