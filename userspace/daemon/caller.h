// SPDX-License-Identifier: Apache-2.0
// Who sent a request: the kernel's handle on the sending process (a pidfd), never its number
// alone. A pid read from a message names whoever holds that number when it is looked up; a
// pidfd names the process that sent, and says when it is gone.
#pragma once

#include <linux/netlink.h>
#include <linux/sock_diag.h>

#include <cstddef>
#include <optional>
#include <string>

namespace cordon::daemon {

/// Asks the kernel for each sender's pidfd on `fd` (SO_PASSPIDFD, Linux 6.5+). False when the
/// kernel has no such option: callers are then known by pid, best effort (docs/api.md).
bool ask_sender_pidfds(int fd);

/// The connecting process's pidfd (SO_PEERPIDFD, 6.5+); -1 when the kernel has none or the
/// process is gone.
int peer_pidfd(int fd);

/// A pidfd for `pid` (pidfd_open, 5.3+); -1 when there is no such process.
int open_pidfd(int pid);

/// Whether the process `pidfd` refers to is `pid` and has not exited: its number then cannot
/// have been given to another process, so what /proc/PID says was said of it.
bool pidfd_is_live(int pidfd, int pid);

/// Sends one sock_diag request (a whole netlink message of `len` bytes) and reads the kernel's
/// first answer into buf (waiting 500 ms at most): the bytes read, or -1 with errno set.
long sock_diag_exchange(const void* req, std::size_t len, char* buf, std::size_t cap);

/// sock_diag_exchange of one request body (unix_diag_req, inet_diag_req_v2), framed here.
template <typename Req> long sock_diag_ask(const Req& body, char* buf, std::size_t cap)
{
    struct {
        nlmsghdr nh;
        Req r;
    } req{};
    req.nh.nlmsg_len = sizeof(req);
    req.nh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
    req.nh.nlmsg_flags = NLM_F_REQUEST;
    req.r = body;
    return sock_diag_exchange(&req, sizeof(req), buf, cap);
}

/// The inode of the other end of connected Unix socket `fd` (sock_diag's unix_diag): 0 when
/// that end is closed; nullopt when the kernel cannot say (no unix_diag).
std::optional<unsigned long> unix_peer_inode(int fd);

/// Whether process `pid` holds socket inode `ino` open (a scan of /proc/PID/fd). Where the
/// kernel gives no sender pidfds, this is what ties a pid number to the sending connection: a
/// process that took a dead sender's number does not hold its socket.
bool holds_socket(int pid, unsigned long ino);

/// /proc/PID/comm, without its newline; "" when unreadable.
std::string process_comm(int pid);

} // namespace cordon::daemon
