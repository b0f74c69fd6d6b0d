// SPDX-License-Identifier: Apache-2.0
// The client side of cordond's control socket, for the cordon CLI.
#pragma once

#include <deque>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "api/protocol.h"

namespace cordon::api {

/// The socket path: $CORDON_SOCKET when set, else /run/cordon/cordon.sock.
std::string socket_path();

class Client {
public:
    /// Connects; nothing when no daemon listens there (no socket, or a stale one). Throws Error
    /// when one listens but refuses this caller (permissions), naming the fix.
    static std::optional<Client> connect(const std::string& path);

    Client(Client&& o) noexcept;
    Client& operator=(Client&&) = delete;
    Client(const Client&) = delete;
    ~Client();

    /// Sends a request and returns its reply's fields; throws Error with the daemon's message
    /// when the reply says ok: false, or when the daemon goes away.
    nlohmann::json call(const Request& r);
    /// Reads the next line (an event of a subscription), waiting at most timeout_ms (-1: for
    /// ever). Nothing on timeout; Error when the daemon closed the connection.
    std::optional<nlohmann::json> next(int timeout_ms);
    int fd() const { return fd_; }

private:
    explicit Client(int fd) : fd_(fd) {}
    std::optional<nlohmann::json> read_line(int timeout_ms);
    int fd_ = -1;
    std::string buf_;
    std::deque<nlohmann::json> held_; ///< lines that came before a reply
};

} // namespace cordon::api
