// SPDX-License-Identifier: Apache-2.0
// A mutex and a condition variable with priority inheritance. cordond's loop and an embedded
// `cordon run` run at real-time priority, and they share a few locks (the event store's queue,
// the workers' queue, the metrics text) with threads that do not. With a plain mutex, a holder
// preempted by an agent's fork storm would keep the real-time loop waiting for as long as the
// storm keeps the holder off the CPU (priority inversion); with priority inheritance the kernel
// runs the holder at the waiter's priority until it unlocks.
#pragma once

#include <pthread.h>
#include <time.h>

#include <chrono>
#include <mutex>

namespace cordon {

class PiMutex {
public:
    PiMutex()
    {
        pthread_mutexattr_t a;
        pthread_mutexattr_init(&a);
        pthread_mutexattr_setprotocol(&a, PTHREAD_PRIO_INHERIT);
        pthread_mutex_init(&m_, &a);
        pthread_mutexattr_destroy(&a);
    }
    ~PiMutex() { pthread_mutex_destroy(&m_); }
    PiMutex(const PiMutex&) = delete;
    PiMutex& operator=(const PiMutex&) = delete;

    void lock() { pthread_mutex_lock(&m_); }
    void unlock() { pthread_mutex_unlock(&m_); }
    bool try_lock() { return pthread_mutex_trylock(&m_) == 0; }
    pthread_mutex_t* native() { return &m_; }

private:
    pthread_mutex_t m_;
};

/// A condition variable for PiMutex, timed on CLOCK_MONOTONIC.
class PiCondition {
public:
    PiCondition()
    {
        pthread_condattr_t a;
        pthread_condattr_init(&a);
        pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
        pthread_cond_init(&c_, &a);
        pthread_condattr_destroy(&a);
    }
    ~PiCondition() { pthread_cond_destroy(&c_); }
    PiCondition(const PiCondition&) = delete;
    PiCondition& operator=(const PiCondition&) = delete;

    void notify_one() { pthread_cond_signal(&c_); }
    void notify_all() { pthread_cond_broadcast(&c_); }

    template <class Pred>
    void wait(std::unique_lock<PiMutex>& lk, Pred ready)
    {
        while (!ready())
            pthread_cond_wait(&c_, lk.mutex()->native());
    }

    /// Waits until `ready` or `d` has passed; returns ready().
    template <class Rep, class Period, class Pred>
    bool wait_for(std::unique_lock<PiMutex>& lk, std::chrono::duration<Rep, Period> d, Pred ready)
    {
        timespec until{};
        ::clock_gettime(CLOCK_MONOTONIC, &until);
        const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(d).count();
        until.tv_sec += static_cast<time_t>(ns / 1'000'000'000);
        until.tv_nsec += static_cast<long>(ns % 1'000'000'000);
        if (until.tv_nsec >= 1'000'000'000) {
            ++until.tv_sec;
            until.tv_nsec -= 1'000'000'000;
        }
        while (!ready())
            if (pthread_cond_timedwait(&c_, lk.mutex()->native(), &until) != 0)
                return ready();
        return true;
    }

private:
    pthread_cond_t c_;
};

} // namespace cordon
