// SPDX-License-Identifier: Apache-2.0
// Reads decision records from the cordon_events ring buffer.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <set>
#include <optional>
#include <span>

#include <cordon/abi.h>

struct ring_buffer;

namespace cordon::events {

/// One decoded decision record (struct cordon_event; older, shorter records are zero-filled).
struct Event {
    cordon_event body{}; ///< the full record, header included (an exec trace's path in body.path)
    /// Exec trace records (hook CORDON_HOOK_PROCESS): the argument strings, NUL-separated.
    std::uint32_t argv_len = 0;  ///< bytes used of argv
    std::uint32_t argv_full = 0; ///< the strings' whole length in the process (more: cut)
    char argv[CORDON_EVENT_ARGV] = {};
    /// Exec trace records: the file that ran, resolved by the kernel ("" unresolvable), its
    /// inode and device (MAJOR << 20 | MINOR).
    char file[CORDON_EVENT_PATH] = {};
    std::uint64_t ino = 0;
    std::uint32_t dev = 0;
    const cordon_event_header& header() const { return body.h; }
};

/// Checks a raw record and copies it out; nullopt when it is too short or claims a size larger
/// than the record (a kernel/user ABI mismatch, which the caller counts).
std::optional<Event> decode(std::span<const std::uint8_t> record);

/// The reader's half of the kernel's per-agent shares of the ring buffer
/// (cordon_event_shares): after each read, how far it has read each agent's records, so that
/// the programs know what each agent still holds in the buffer (bpf/effects.bpf.h). Every
/// reader of the ring buffer must keep it, or the agents it reads are held to a share that
/// never drains. Also keeps, per agent, how many of its lost records were stored as gaps.
class Shares {
public:
    explicit Shares(int shares_fd) : fd_(shares_fd) {}
    /// A record of agent `key` at position `seq` (bytes), `size` bytes long, was read.
    void read(std::uint64_t key, std::uint64_t seq, std::uint32_t size);
    /// Writes what changed since the last publish (one map update per agent read). Only
    /// entries that exist are written: an agent's entry is made with the agent and removed
    /// with it, so a removed agent's records still in the buffer make none.
    void publish();
    /// Lost records of the agent already stored as gaps: nullopt when the kernel has no entry
    /// (a new agent, or one whose entry aged out of the LRU).
    std::optional<std::uint64_t> lost_recorded(std::uint64_t key);
    void set_lost_recorded(std::uint64_t key, std::uint64_t n);
    /// Forgets what is cached of agents not in `keep` (removed: their kernel entries went
    /// with them); the host-wide entry stays.
    void keep_only(const std::set<std::uint64_t>& keep);

private:
    struct Entry {
        cordon_event_share v{};
        bool dirty = false;
    };
    Entry& entry(std::uint64_t key);
    int fd_;
    std::map<std::uint64_t, Entry> cache_;
    std::uint64_t failures_ = 0; ///< map updates refused (logged once)
};

class Reader {
public:
    using Handler = std::function<void(const Event&)>;
    /// shares_fd: cordon_event_shares, written after every poll and drain (see Shares); -1
    /// only where no agent's share matters (a reader of a test's own buffer).
    Reader(int ringbuf_fd, int shares_fd, Handler handler);
    ~Reader();
    Reader(const Reader&) = delete;
    Reader& operator=(const Reader&) = delete;

    /// Waits up to timeout_ms for records and hands each to the handler; returns how many.
    int poll(int timeout_ms);
    /// Hands over what is already in the buffer without waiting: at most `budget` records, so
    /// that an agent producing records as fast as it can never holds the caller's loop (the
    /// rest stays in the buffer; more_pending() says so). Returns how many.
    int drain(std::size_t budget = SIZE_MAX);
    /// Whether the last drain stopped at its budget with records left.
    bool more_pending() const { return more_; }
    /// A descriptor that polls readable when records are waiting.
    int fd() const;
    /// Records that failed to decode.
    std::uint64_t malformed() const { return malformed_; }
    Shares& shares() { return shares_; }

private:
    static int on_record(void* self, void* data, size_t size);
    struct ring_buffer* rb_ = nullptr;
    Handler handler_;
    Shares shares_;
    std::uint64_t malformed_ = 0;
    std::size_t budget_ = SIZE_MAX; ///< records the running drain may still hand over
    int handed_ = 0;                ///< records the running drain handed over
    bool more_ = false;
};

} // namespace cordon::events
