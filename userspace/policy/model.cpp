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
    case Action::Freeze: return "freeze";
    }
    return "?";
}

bool raw_sockets_allowed(const Policy& p)
{
    return p.raw_sockets == Action::Allow || p.raw_sockets == Action::Audit;
}

std::uint64_t refused_capabilities(const Policy& p)
{
    const bool raw = raw_sockets_allowed(p);
    std::uint64_t mask = 0;
    for (const auto& d : dropped_capabilities())
        if (!(raw && d.kept_for_raw_sockets))
            mask |= std::uint64_t{1} << d.cap;
    return mask;
}

std::string_view mode_name(Mode m)
{
    return m == Mode::Audit ? "audit" : "enforce";
}

std::string_view tier_enter_name(TierEnter e)
{
    switch (e) {
    case TierEnter::Report: return "report";
    case TierEnter::Freeze: return "freeze";
    case TierEnter::Kill: return "kill";
    }
    return "?";
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

std::span<const DroppedCapability> dropped_capabilities()
{
    // Numbers from linux/capability.h, spelled out so that policy/ needs no kernel headers.
    static constexpr DroppedCapability kDropped[] = {
        {9, "CAP_LINUX_IMMUTABLE", "immutable and append-only file flags", false},
        {12, "CAP_NET_ADMIN", "interfaces, routes, firewall", false},
        {13, "CAP_NET_RAW", "raw and packet sockets", true},
        {16, "CAP_SYS_MODULE", "kernel modules", false},
        {17, "CAP_SYS_RAWIO", "I/O ports, /dev/mem, /proc/kcore", false},
        {19, "CAP_SYS_PTRACE", "tracing other users' processes", false},
        {20, "CAP_SYS_PACCT", "process accounting", false},
        {21, "CAP_SYS_ADMIN", "mounts, namespaces, swap, most kernel knobs", false},
        {22, "CAP_SYS_BOOT", "reboot, kexec", false},
        {23, "CAP_SYS_NICE", "real-time scheduling that starves cordon", false},
        {24, "CAP_SYS_RESOURCE", "resource limits, oom_score_adj below zero", false},
        {25, "CAP_SYS_TIME", "the system clock", false},
        {26, "CAP_SYS_TTY_CONFIG", "vhangup of terminals", false},
        {27, "CAP_MKNOD", "device nodes (raw disks)", false},
        {28, "CAP_LEASE", "leases that stall other processes' opens", false},
        {29, "CAP_AUDIT_WRITE", "the audit log", false},
        {30, "CAP_AUDIT_CONTROL", "audit rules", false},
        {31, "CAP_SETFCAP", "file capabilities", false},
        {32, "CAP_MAC_OVERRIDE", "bypassing mandatory access control", false},
        {33, "CAP_MAC_ADMIN", "mandatory access control policy", false},
        {34, "CAP_SYSLOG", "the kernel log", false},
        {35, "CAP_WAKE_ALARM", "wake-up alarms", false},
        {36, "CAP_BLOCK_SUSPEND", "blocking suspend", false},
        {37, "CAP_AUDIT_READ", "reading the audit log", false},
        {38, "CAP_PERFMON", "performance monitoring", false},
        {39, "CAP_BPF", "BPF programs and maps", false},
        {40, "CAP_CHECKPOINT_RESTORE", "checkpoint/restore", false},
    };
    return kDropped;
}

std::string cidr_text(const Cidr& c)
{
    char buf[INET6_ADDRSTRLEN] = {};
    ::inet_ntop(c.family == 4 ? AF_INET : AF_INET6, c.addr.data(), buf, sizeof(buf));
    return std::string(buf) + "/" + std::to_string(c.prefix);
}

} // namespace cordon::policy
