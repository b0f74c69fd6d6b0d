// SPDX-License-Identifier: Apache-2.0
#include "daemon/caller.h"

#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/sock_diag.h>
#include <linux/unix_diag.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>

// Linux 6.5 (glibc 2.36 predates them).
#ifndef SO_PASSPIDFD
#define SO_PASSPIDFD 76
#endif
#ifndef SO_PEERPIDFD
#define SO_PEERPIDFD 77
#endif

namespace cordon::daemon {

bool ask_sender_pidfds(int fd)
{
    const int one = 1;
    return ::setsockopt(fd, SOL_SOCKET, SO_PASSPIDFD, &one, sizeof(one)) == 0;
}

int peer_pidfd(int fd)
{
    int pidfd = -1;
    socklen_t len = sizeof(pidfd);
    if (::getsockopt(fd, SOL_SOCKET, SO_PEERPIDFD, &pidfd, &len) != 0)
        return -1;
    return pidfd;
}

int open_pidfd(int pid)
{
    if (pid <= 0)
        return -1;
    return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
}

bool pidfd_is_live(int pidfd, int pid)
{
    if (pidfd < 0 || pid <= 0)
        return false;
    // Readable once the process has exited (a zombie too): gone, whatever /proc still shows.
    pollfd p{.fd = pidfd, .events = POLLIN, .revents = 0};
    if (::poll(&p, 1, 0) != 0)
        return false;
    // The number the handle stands for in our pid namespace: -1 once reaped.
    std::ifstream in("/proc/self/fdinfo/" + std::to_string(pidfd));
    for (std::string line; std::getline(in, line);)
        if (line.starts_with("Pid:"))
            return std::stol(line.substr(4)) == pid;
    return false;
}

long sock_diag_exchange(const void* req, std::size_t len, char* buf, std::size_t cap)
{
    const int nl = ::socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
    if (nl < 0)
        return -1;
    long n = -1;
    pollfd p{.fd = nl, .events = POLLIN, .revents = 0};
    if (::send(nl, req, len, 0) == static_cast<ssize_t>(len)) {
        if (::poll(&p, 1, 500) == 1)
            n = ::recv(nl, buf, cap, 0);
        else
            errno = ETIMEDOUT;
    }
    const int e = errno;
    ::close(nl);
    errno = e;
    return n;
}

std::optional<unsigned long> unix_peer_inode(int fd)
{
    struct stat st{};
    if (::fstat(fd, &st) != 0)
        return std::nullopt;
    unix_diag_req r{};
    r.sdiag_family = AF_UNIX;
    r.udiag_states = ~0u;
    r.udiag_ino = static_cast<__u32>(st.st_ino);
    r.udiag_show = UDIAG_SHOW_PEER;
    r.udiag_cookie[0] = r.udiag_cookie[1] = ~0u;
    std::optional<unsigned long> peer;
    alignas(nlmsghdr) char buf[4096];
    if (const long n = sock_diag_ask(r, buf, sizeof(buf)); n > 0) {
        const auto* nh = reinterpret_cast<const nlmsghdr*>(buf);
        if (n > 0 && NLMSG_OK(nh, static_cast<unsigned>(n)) && nh->nlmsg_type == SOCK_DIAG_BY_FAMILY) {
            peer = 0; // answered: a closed other end has no inode (0) or no attribute
            const auto* m = reinterpret_cast<const unix_diag_msg*>(buf + NLMSG_HDRLEN);
            int len = static_cast<int>(nh->nlmsg_len - NLMSG_LENGTH(sizeof(*m)));
            for (const auto* a = reinterpret_cast<const rtattr*>(m + 1); RTA_OK(a, len);
                 a = RTA_NEXT(a, len))
                if (a->rta_type == UNIX_DIAG_PEER && RTA_PAYLOAD(a) >= 4) {
                    std::uint32_t v = 0;
                    std::memcpy(&v, RTA_DATA(a), 4);
                    peer = v;
                }
        }
    }
    return peer;
}

bool holds_socket(int pid, unsigned long ino)
{
    const std::string want = "socket:[" + std::to_string(ino) + "]";
    std::error_code ec;
    for (std::filesystem::directory_iterator f("/proc/" + std::to_string(pid) + "/fd", ec), end;
         !ec && f != end; f.increment(ec)) {
        char buf[64];
        const ssize_t n = ::readlink(f->path().c_str(), buf, sizeof(buf));
        if (n > 0 && std::string_view(buf, static_cast<std::size_t>(n)) == want)
            return true;
    }
    return false;
}

std::string process_comm(int pid)
{
    std::ifstream in("/proc/" + std::to_string(pid) + "/comm");
    std::string comm;
    std::getline(in, comm);
    return comm;
}

} // namespace cordon::daemon
