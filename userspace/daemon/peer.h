// SPDX-License-Identifier: Apache-2.0
// One connection to cordond's control socket, and a kill or freeze waiting for its cgroup.
#pragma once

#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "api/protocol.h"

namespace cordon::daemon {

struct Peer {
    std::uint64_t serial = 0; ///< names the connection in a Pending or a slow job
    int fd = -1;
    int pid = 0; ///< of the last request's sender, checked through its pidfd where the kernel has one
    unsigned uid = 0, gid = 0;
    std::string comm; ///< the sender's name, read while its pidfd held it
    bool pinned = false; ///< known by a pidfd (SO_PASSPIDFD), not only by its pid number
    std::string in;  ///< bytes of unfinished (or not yet handled) request lines
    bool has_line = false; ///< `in` holds a complete line (kept so no turn rescans `in`)
    std::string out; ///< bytes not yet written
    bool closing = false;               ///< close once `out` is written
    std::optional<std::string> session; ///< run agent this connection owns
    bool subscribed = false;
    std::optional<std::string> filter; ///< subscription: one agent, or every one
    std::uint64_t dropped = 0;         ///< events a slow subscriber did not take
    std::int64_t last_active_ms = 0;   ///< last bytes received
    std::int64_t readable_ns = 0;      ///< CLOCK_MONOTONIC: the loop first saw its last bytes
    std::optional<std::uint32_t> protected_pid; ///< a `cordon run` put in cordon_protected
    /// A kill, freeze, ping or slow request is under way: later lines wait for its reply, so
    /// that replies keep request order.
    bool waiting = false;
};

/// Reads a cgroup.events file from its start, which re-arms its POLLPRI: the kernel reports the
/// file ready until it is read after each change (so a watcher that never reads it spins).
inline void rearm_events(int fd)
{
    char buf[256];
    if (fd >= 0)
        (void)!::pread(fd, buf, sizeof(buf), 0);
}

/// A kill or freeze whose reply waits for the cgroup (empty, or frozen): cgroup.events is
/// watched (the kernel signals POLLPRI on each change; rearm_events after each) so the loop
/// never blocks on it.
struct Pending {
    std::uint64_t peer = 0;
    api::Request request;
    std::string agent;
    std::filesystem::path cgroup;
    int events_fd = -1;
    std::int64_t received_ns = 0; ///< the loop saw the request's bytes
    std::int64_t sent_ns = 0;     ///< the caller wrote it (its own clock reading; 0: not given)
    std::int64_t flagged_ns = 0;  ///< the kernel refused the agent everything from here on
    std::int64_t last_kill_ns = 0;
    nlohmann::json who;
};

} // namespace cordon::daemon
