// SPDX-License-Identifier: Apache-2.0
#include "policy/model.h"

#include <arpa/inet.h>

#include <iterator>

namespace cordon::policy {

std::string_view action_name(Action a)
{
    switch (a) {
    case Action::Allow: return "allow";
    case Action::Deny: return "deny";
    case Action::Audit: return "audit";
    case Action::Kill: return "kill";
    }
    return "?";
}

std::string_view mode_name(Mode m)
{
    return m == Mode::Audit ? "audit" : "enforce";
}

std::string access_names(std::uint8_t access)
{
    if (access == (kRead | kWrite))
        return "read, write";
    return access & kWrite ? "write" : "read";
}

std::string protocol_names(std::uint8_t protos)
{
    if (protos == kAnyProtocol)
        return "tcp, udp";
    return protos & kUdp ? "udp" : "tcp";
}

std::span<const SideDoorInfo> side_doors()
{
    static constexpr SideDoorInfo kDoors[] = {
        {SideDoor::Namespaces, "namespaces",
         "unshare, setns, clone with any CLONE_NEW* flag (clone3 answers ENOSYS)", true, false},
        {SideDoor::Mount, "mount",
         "mount, umount2, open_tree, move_mount, fsopen, fsconfig, fsmount, fspick, "
         "mount_setattr, pivot_root",
         true, false},
        {SideDoor::Bpf, "bpf", "bpf", true, false},
        {SideDoor::Perf, "perf", "perf_event_open", true, false},
        {SideDoor::FileHandles, "file_handles", "open_by_handle_at", true, false},
        {SideDoor::ForeignAbi, "foreign_abi", "every ia32 (int $0x80) and x32 system call", true,
         false},
        {SideDoor::IoUring, "io_uring", "io_uring_setup, io_uring_enter, io_uring_register", true,
         true},
        {SideDoor::FdSharing, "fd_sharing",
         "pidfd_getfd, clone with CLONE_FILES but not CLONE_THREAD", true, true},
        {SideDoor::Modules, "modules",
         "init_module, finit_module, delete_module, kexec_load, kexec_file_load", false, false},
    };
    static_assert(std::size(kDoors) == static_cast<size_t>(SideDoor::kCount));
    return kDoors;
}

std::string cidr_text(const Cidr& c)
{
    char buf[INET6_ADDRSTRLEN] = {};
    ::inet_ntop(c.family == 4 ? AF_INET : AF_INET6, c.addr.data(), buf, sizeof(buf));
    return std::string(buf) + "/" + std::to_string(c.prefix);
}

} // namespace cordon::policy
