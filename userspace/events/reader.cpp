// SPDX-License-Identifier: Apache-2.0
#include "events/reader.h"

#include <cerrno>
#include <algorithm>
#include <cstring>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <spdlog/spdlog.h>

#include "common/error.h"

namespace cordon::events {

std::optional<Event> decode(std::span<const std::uint8_t> record)
{
    Event e;
    cordon_event_header h{};
    if (record.size() < sizeof(h))
        return std::nullopt;
    std::memcpy(&h, record.data(), sizeof(h));
    if (h.size < sizeof(h) || h.size > record.size())
        return std::nullopt;
    if (h.hook == CORDON_HOOK_PROCESS) {
        cordon_exec_event x{};
        if (h.size < sizeof(x))
            return std::nullopt;
        std::memcpy(&x, record.data(), sizeof(x));
        e.body.h = x.h;
        std::memcpy(e.body.path, x.path, sizeof(x.path));
        e.argv_len = std::min<std::uint32_t>(x.argv_len, sizeof(x.argv));
        e.argv_full = x.argv_full;
        std::memcpy(e.argv, x.argv, e.argv_len);
        std::memcpy(e.file, x.file, sizeof(x.file));
        e.file[sizeof(e.file) - 1] = 0;
        e.ino = x.ino;
        e.dev = x.dev;
        e.body.path[sizeof(e.body.path) - 1] = 0;
        return e;
    }
    std::memcpy(&e.body, record.data(), std::min<size_t>(h.size, sizeof(e.body)));
    e.body.path[sizeof(e.body.path) - 1] = 0; // the kernel terminates it; never trust that here
    return e;
}

Shares::Entry& Shares::entry(std::uint64_t key)
{
    auto [it, fresh] = cache_.try_emplace(key);
    if (fresh && fd_ >= 0 && bpf_map_lookup_elem(fd_, &key, &it->second.v) != 0)
        it->second.v = {}; // none yet: this reader's count starts it
    return it->second;
}

void Shares::read(std::uint64_t key, std::uint64_t seq, std::uint32_t size)
{
    if (fd_ < 0)
        return;
    auto& e = entry(key);
    const std::uint64_t end = seq + ((std::uint64_t{size} + 7) & ~std::uint64_t{7}) + 8; // as the kernel counts
    if (end > e.v.consumed) {
        e.v.consumed = end;
        e.dirty = true;
    }
}

void Shares::keep_only(const std::set<std::uint64_t>& keep)
{
    std::erase_if(cache_, [&](const auto& kv) {
        return kv.first != CORDON_SHARE_HOST && !keep.contains(kv.first);
    });
}

void Shares::publish()
{
    for (auto& [key, e] : cache_) {
        if (!e.dirty)
            continue;
        e.dirty = false;
        // A refused update leaves the agent's share as the kernel last saw it: the agent's own
        // records may be refused sooner than they should (its loss, counted), never another's.
        // BPF_EXIST: never re-make the entry of an agent removed meanwhile. The host-wide
        // entry is made by its first write.
        const auto flag = key == CORDON_SHARE_HOST ? BPF_ANY : BPF_EXIST;
        if (bpf_map_update_elem(fd_, &key, &e.v, flag) != 0 && errno != ENOENT && failures_++ == 0)
            spdlog::error("cannot write cordon_event_shares: {}; agents' shares of the event "
                          "buffer may drain late", errno_text(errno));
    }
}

std::optional<std::uint64_t> Shares::lost_recorded(std::uint64_t key)
{
    cordon_event_share v{};
    if (fd_ < 0)
        return std::nullopt;
    if (auto it = cache_.find(key); it != cache_.end())
        return it->second.v.lost_recorded;
    if (bpf_map_lookup_elem(fd_, &key, &v) != 0)
        return std::nullopt;
    return v.lost_recorded;
}

void Shares::set_lost_recorded(std::uint64_t key, std::uint64_t n)
{
    if (fd_ < 0)
        return;
    auto& e = entry(key);
    if (e.v.lost_recorded != n) {
        e.v.lost_recorded = n;
        e.dirty = true;
    }
}

Reader::Reader(int ringbuf_fd, int shares_fd, Handler handler)
    : handler_(std::move(handler)), shares_(shares_fd)
{
    rb_ = ring_buffer__new(ringbuf_fd, &Reader::on_record, this, nullptr);
    if (!rb_)
        throw Error("cannot open the event ring buffer: " + errno_text(errno));
}

Reader::~Reader()
{
    ring_buffer__free(rb_);
}

namespace {
// Returned by the record callback to end a drain at its budget: libbpf then stores the
// consumer position past the record just handled and returns this value.
constexpr int kBudgetSpent = -ECANCELED;
} // namespace

int Reader::on_record(void* self, void* data, size_t size)
{
    auto* r = static_cast<Reader*>(self);
    auto e = decode({static_cast<const std::uint8_t*>(data), size});
    if (!e) {
        ++r->malformed_;
    } else {
        if (e->header().agent_id)
            r->shares_.read(CORDON_AGENT_KEY(e->header().agent_id), e->header().seq,
                            e->header().size);
        r->handler_(*e);
    }
    ++r->handed_;
    return --r->budget_ == 0 ? kBudgetSpent : 0;
}

int Reader::poll(int timeout_ms)
{
    const int n = ring_buffer__poll(rb_, timeout_ms);
    shares_.publish();
    if (n < 0 && n != -EINTR)
        throw Error("reading the event ring buffer failed: " + errno_text(-n));
    return n < 0 ? 0 : n;
}

int Reader::fd() const
{
    return ring_buffer__epoll_fd(rb_);
}

int Reader::drain(std::size_t budget)
{
    if (budget == 0)
        return 0;
    budget_ = budget;
    handed_ = 0;
    const int n = ring_buffer__consume(rb_);
    shares_.publish();
    more_ = n == kBudgetSpent;
    budget_ = SIZE_MAX; // poll() hands over everything, as before
    if (n < 0 && n != kBudgetSpent)
        throw Error("reading the event ring buffer failed: " + errno_text(-n));
    return handed_;
}

} // namespace cordon::events
