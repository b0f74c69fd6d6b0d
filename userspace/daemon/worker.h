// SPDX-License-Identifier: Apache-2.0
// Slow work off cordond's loop: name resolution (which may wait on an unresponsive resolver for
// many seconds), large policy parses and compiles. A job is a function that touches no state
// of the loop (it gets copies) and leaves its result in its own closure; the loop learns that it
// ended through an eventfd and carries on with it there. The kill switch, freeze marks and the
// kernel's flags never wait behind a job.
#pragma once

#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <vector>

#include "common/pi_mutex.h"

namespace cordon::daemon {

class Worker {
public:
    /// Starts `threads` threads (at normal priority: they inherit no real-time class).
    explicit Worker(unsigned threads);
    /// Does not wait for a job under way (a resolver may hang for its whole timeout): the
    /// threads finish it on their own and exit, and the result is dropped.
    ~Worker();
    Worker(const Worker&) = delete;
    Worker& operator=(const Worker&) = delete;

    /// Queues `job` under `id`. An exception it throws is kept for done() to hand back.
    void submit(std::uint64_t id, std::function<void()> job);
    /// Readable when jobs have ended.
    int fd() const { return fd_; }
    struct Done {
        std::uint64_t id;
        std::exception_ptr error; ///< what the job threw, or null
    };
    /// The jobs that ended since the last call.
    std::vector<Done> done();

private:
    struct Shared {
        ~Shared();
        PiMutex mu;
        PiCondition cv;
        std::deque<std::pair<std::uint64_t, std::function<void()>>> queue;
        std::vector<Done> done;
        bool stop = false;
        int fd = -1;
    };
    static void loop(std::shared_ptr<Shared> s);
    std::shared_ptr<Shared> s_;
    int fd_ = -1;
};

} // namespace cordon::daemon
