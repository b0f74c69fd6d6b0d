// SPDX-License-Identifier: Apache-2.0
#include "daemon/caller.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <fstream>
#include <string>

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

std::string process_comm(int pid)
{
    std::ifstream in("/proc/" + std::to_string(pid) + "/comm");
    std::string comm;
    std::getline(in, comm);
    return comm;
}

} // namespace cordon::daemon
