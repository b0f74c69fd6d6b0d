// SPDX-License-Identifier: Apache-2.0
#include "dns/diag.h"

#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>

#include "common/error.h"

namespace cordon::dns {

namespace {

// An address and port as sock_diag's id holds them (network order words).
struct Ends {
    int family = AF_INET;
    std::array<__be32, 4> addr{};
    __be16 port = 0;
};

Ends ends_of(const sockaddr_storage& s, bool as_v6)
{
    Ends e;
    if (s.ss_family == AF_INET) {
        const auto* in = reinterpret_cast<const sockaddr_in*>(&s);
        e.port = in->sin_port;
        if (as_v6) { // ::ffff:a.b.c.d, as a dual-stack IPv6 socket holds it
            e.family = AF_INET6;
            e.addr[2] = htonl(0xffff);
            e.addr[3] = in->sin_addr.s_addr;
        } else {
            e.addr[0] = in->sin_addr.s_addr;
        }
    } else {
        const auto* in6 = reinterpret_cast<const sockaddr_in6*>(&s);
        e.family = AF_INET6;
        e.port = in6->sin6_port;
        std::memcpy(e.addr.data(), &in6->sin6_addr, 16);
    }
    return e;
}

} // namespace

SocketFinder::SocketFinder()
{
    fd_ = ::socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
    if (fd_ < 0)
        throw Error("cannot open a sock_diag socket (the DNS gateway finds which agent asked "
                    "with it): " + errno_text(errno));
    timeval tv{.tv_sec = 1, .tv_usec = 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
}

SocketFinder::~SocketFinder()
{
    if (fd_ >= 0)
        ::close(fd_);
}

std::optional<std::uint64_t> SocketFinder::cookie(int protocol, const sockaddr_storage& peer,
                                                  const sockaddr_storage& local) const
{
    // The kernel's lookup reads the id's source and destination one way for UDP and the other
    // for TCP; both are asked, and only an answer whose socket's own address is `peer` counts.
    for (bool as_v6 : {false, true}) {
        if (as_v6 && peer.ss_family != AF_INET)
            break;
        const Ends p = ends_of(peer, as_v6), l = ends_of(local, as_v6);
        // The order that found a socket of this protocol last time first: one round trip.
        const bool first = protocol == IPPROTO_TCP ? tcp_swap_ : udp_swap_;
        for (bool swap : {first, !first}) {
            struct {
                nlmsghdr nlh;
                inet_diag_req_v2 r;
            } req{};
            req.nlh.nlmsg_len = sizeof(req);
            req.nlh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
            req.nlh.nlmsg_flags = NLM_F_REQUEST;
            req.r.sdiag_family = static_cast<__u8>(p.family);
            req.r.sdiag_protocol = static_cast<__u8>(protocol);
            req.r.idiag_states = ~0u;
            req.r.id.idiag_cookie[0] = INET_DIAG_NOCOOKIE;
            req.r.id.idiag_cookie[1] = INET_DIAG_NOCOOKIE;
            const Ends& src = swap ? l : p;
            const Ends& dst = swap ? p : l;
            req.r.id.idiag_sport = src.port;
            req.r.id.idiag_dport = dst.port;
            std::memcpy(req.r.id.idiag_src, src.addr.data(), 16);
            std::memcpy(req.r.id.idiag_dst, dst.addr.data(), 16);
            sockaddr_nl kernel{};
            kernel.nl_family = AF_NETLINK;
            if (::sendto(fd_, &req, sizeof(req), 0, reinterpret_cast<sockaddr*>(&kernel),
                         sizeof(kernel)) < 0)
                return std::nullopt;
            alignas(nlmsghdr) char buf[8192];
            const ssize_t n = ::recv(fd_, buf, sizeof(buf), 0);
            if (n < static_cast<ssize_t>(sizeof(nlmsghdr)))
                continue;
            const auto* h = reinterpret_cast<const nlmsghdr*>(buf);
            constexpr std::size_t kHdr = (sizeof(nlmsghdr) + 3) & ~std::size_t{3};
            if (h->nlmsg_type != SOCK_DIAG_BY_FAMILY ||
                h->nlmsg_len < kHdr + sizeof(inet_diag_msg) || static_cast<ssize_t>(h->nlmsg_len) > n)
                continue; // NLMSG_ERROR: no such socket this way round
            const auto* m = reinterpret_cast<const inet_diag_msg*>(buf + kHdr);
            // The socket's own address: the sender's, or the wildcard it sent from (an
            // unconnected socket bound to no address).
            static constexpr std::array<__be32, 4> kAny{};
            if (m->id.idiag_sport != p.port ||
                (std::memcmp(m->id.idiag_src, p.addr.data(), 16) != 0 &&
                 std::memcmp(m->id.idiag_src, kAny.data(), 16) != 0))
                continue;
            (protocol == IPPROTO_TCP ? tcp_swap_ : udp_swap_) = swap;
            return static_cast<std::uint64_t>(m->id.idiag_cookie[0]) |
                   static_cast<std::uint64_t>(m->id.idiag_cookie[1]) << 32;
        }
    }
    return std::nullopt;
}

} // namespace cordon::dns
