// SPDX-License-Identifier: Apache-2.0
// Reads decision records from the cordon_events ring buffer.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
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
    const cordon_event_header& header() const { return body.h; }
};

/// Checks a raw record and copies it out; nullopt when it is too short or claims a size larger
/// than the record (a kernel/user ABI mismatch, which the caller counts).
std::optional<Event> decode(std::span<const std::uint8_t> record);

class Reader {
public:
    using Handler = std::function<void(const Event&)>;
    Reader(int ringbuf_fd, Handler handler);
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

private:
    static int on_record(void* self, void* data, size_t size);
    struct ring_buffer* rb_ = nullptr;
    Handler handler_;
    std::uint64_t malformed_ = 0;
    std::size_t budget_ = SIZE_MAX; ///< records the running drain may still hand over
    int handed_ = 0;                ///< records the running drain handed over
    bool more_ = false;
};

} // namespace cordon::events
