// SPDX-License-Identifier: Apache-2.0
#include "daemon/worker.h"

#include <fcntl.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <thread>
#include <utility>

#include "common/error.h"

namespace cordon::daemon {

Worker::Worker(unsigned threads) : s_(std::make_shared<Shared>())
{
    fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (fd_ < 0)
        throw Error("cannot create the worker's eventfd: " + errno_text(errno));
    // The threads own a duplicate: the loop's descriptor may close while a job still runs.
    s_->fd = ::fcntl(fd_, F_DUPFD_CLOEXEC, 3);
    for (unsigned i = 0; i < threads; ++i)
        std::thread(loop, s_).detach();
}

Worker::~Worker()
{
    {
        std::lock_guard lock(s_->mu);
        s_->stop = true;
        s_->queue.clear();
    }
    s_->cv.notify_all();
    ::close(fd_);
}

void Worker::submit(std::uint64_t id, std::function<void()> job)
{
    {
        std::lock_guard lock(s_->mu);
        s_->queue.emplace_back(id, std::move(job));
    }
    s_->cv.notify_one();
}

std::vector<Worker::Done> Worker::done()
{
    std::uint64_t n;
    (void)!::read(fd_, &n, sizeof(n));
    std::lock_guard lock(s_->mu);
    return std::exchange(s_->done, {});
}

void Worker::loop(std::shared_ptr<Shared> s)
{
    for (;;) {
        std::pair<std::uint64_t, std::function<void()>> job;
        {
            std::unique_lock lock(s->mu);
            s->cv.wait(lock, [&] { return s->stop || !s->queue.empty(); });
            if (s->stop)
                break;
            job = std::move(s->queue.front());
            s->queue.pop_front();
        }
        std::exception_ptr error;
        try {
            job.second();
        } catch (...) {
            error = std::current_exception();
        }
        std::lock_guard lock(s->mu);
        if (s->stop)
            break;
        s->done.push_back({job.first, error});
        const std::uint64_t one = 1;
        (void)!::write(s->fd, &one, sizeof(one));
    }
}

Worker::Shared::~Shared()
{
    if (fd >= 0)
        ::close(fd); // the last of the loop and the threads to let go closes it
}

} // namespace cordon::daemon
