// SPDX-License-Identifier: Apache-2.0
// Which socket sent a datagram or made a connection, asked of the kernel (sock_diag, by the
// sender's address and port): its cookie, the key the programs record steered sockets under.
#pragma once

#include <sys/socket.h>

#include <cstdint>
#include <optional>

namespace cordon::dns {

class SocketFinder {
public:
    SocketFinder(); ///< throws Error when the kernel has no sock_diag for inet sockets
    ~SocketFinder();
    SocketFinder(const SocketFinder&) = delete;
    SocketFinder& operator=(const SocketFinder&) = delete;

    /// The cookie of the local socket whose own address is `peer` and that talks to `local`
    /// (IPPROTO_UDP or IPPROTO_TCP); none when no such socket exists (it closed, or the sender
    /// is not on this host's loopback).
    std::optional<std::uint64_t> cookie(int protocol, const sockaddr_storage& peer,
                                        const sockaddr_storage& local) const;

private:
    int fd_ = -1;
    mutable bool udp_swap_ = false, tcp_swap_ = false; ///< which way round the kernel reads ids
};

} // namespace cordon::dns
