// SPDX-License-Identifier: Apache-2.0
#include "agents/seccomp.h"

#include <fcntl.h>
#include <linux/capability.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <functional>
#include <string>

#include <seccomp.h>

#include "common/error.h"

namespace cordon::agents {
namespace {

using policy::SideDoor;

struct Ctx {
    scmp_filter_ctx ctx;
    ~Ctx() { seccomp_release(ctx); }
};

void check(int rc, const std::string& what)
{
    if (rc < 0)
        throw Error("cannot build the seccomp layer (" + what + "): " + errno_text(-rc));
}

// Refuses `name` (every call, or those matching the argument comparisons) with `action`.
void refuse(scmp_filter_ctx ctx, const char* name, std::uint32_t action = SCMP_ACT_ERRNO(EPERM),
            std::initializer_list<scmp_arg_cmp> args = {})
{
    const int nr = seccomp_syscall_resolve_name(name);
    if (nr == __NR_SCMP_ERROR)
        throw Error(std::string("cannot build the seccomp layer: libseccomp does not know ") +
                    name + "; upgrade libseccomp");
    check(seccomp_rule_add_array(ctx, action, nr, static_cast<unsigned>(args.size()),
                                 args.size() ? args.begin() : nullptr),
          name);
}

// Every namespace flag of clone() and unshare(). CLONE_NEWCGROUP matters most: a new cgroup
// namespace would not move the agent, but it hides the tree the agent's cgroup sits in.
constexpr unsigned long kNamespaceFlags[] = {CLONE_NEWNS,  CLONE_NEWUSER, CLONE_NEWPID,
                                             CLONE_NEWNET, CLONE_NEWUTS,  CLONE_NEWIPC,
                                             CLONE_NEWCGROUP, 0x00000080 /* CLONE_NEWTIME */};

// Socket families an agent may open: local, IP, and netlink (glibc's getaddrinfo and ip(8) use
// it). Packet sockets join them only when network.raw_sockets allows raw sockets; every other
// family (vsock, which reaches a VM's host, Bluetooth, XDP, ...) is refused.
bool family_allowed(int family, bool raw)
{
    return family == AF_UNIX || family == AF_INET || family == AF_INET6 ||
           family == AF_NETLINK || (raw && family == AF_PACKET);
}

// The refusals of the side doors a policy leaves closed, and those closed to every agent.
void add_refusals(scmp_filter_ctx ctx, const policy::Policy& p,
                  const std::function<bool(SideDoor)>& refused)
{
    // clone3 passes its flags in memory that seccomp cannot read: answer ENOSYS so that libc
    // falls back to clone(), whose flags are checked below.
    refuse(ctx, "clone3", SCMP_ACT_ERRNO(ENOSYS));
    if (refused(SideDoor::Namespaces)) {
        refuse(ctx, "setns");
        for (unsigned long f : kNamespaceFlags) {
            refuse(ctx, "unshare", SCMP_ACT_ERRNO(EPERM), {SCMP_A0(SCMP_CMP_MASKED_EQ, f, f)});
            refuse(ctx, "clone", SCMP_ACT_ERRNO(EPERM), {SCMP_A0(SCMP_CMP_MASKED_EQ, f, f)});
        }
    }
    if (refused(SideDoor::Mount))
        for (const char* n : {"mount", "umount2", "open_tree", "move_mount", "fsopen", "fsconfig",
                              "fsmount", "fspick", "mount_setattr", "pivot_root"})
            refuse(ctx, n);
    if (refused(SideDoor::Bpf))
        refuse(ctx, "bpf");
    if (refused(SideDoor::Perf))
        refuse(ctx, "perf_event_open");
    if (refused(SideDoor::FileHandles))
        refuse(ctx, "open_by_handle_at");
    if (refused(SideDoor::IoUring))
        for (const char* n : {"io_uring_setup", "io_uring_enter", "io_uring_register"})
            refuse(ctx, n);
    if (refused(SideDoor::FdSharing)) {
        refuse(ctx, "pidfd_getfd");
        refuse(ctx, "clone", SCMP_ACT_ERRNO(EPERM),
               {SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_FILES | CLONE_THREAD, CLONE_FILES)});
    }
    for (const char* n : {"init_module", "finit_module", "delete_module", "kexec_load",
                          "kexec_file_load"})
        refuse(ctx, n);
    const bool raw = policy::raw_sockets_allowed(p);
    for (int family = 0; family < AF_MAX; ++family)
        if (!family_allowed(family, raw))
            refuse(ctx, "socket", SCMP_ACT_ERRNO(EPERM),
                   {SCMP_A0(SCMP_CMP_EQ, static_cast<scmp_datum_t>(family))});
    refuse(ctx, "socket", SCMP_ACT_ERRNO(EPERM), {SCMP_A0(SCMP_CMP_GE, AF_MAX)});
}

std::vector<sock_filter> export_program(scmp_filter_ctx ctx)
{
    const int fd = ::memfd_create("cordon-seccomp", MFD_CLOEXEC);
    if (fd < 0)
        throw Error("cannot build the seccomp layer: memfd_create: " + errno_text(errno));
    struct Closer {
        int fd;
        ~Closer() { ::close(fd); }
    } closer{fd};
    check(seccomp_export_bpf(ctx, fd), "export");
    const off_t bytes = ::lseek(fd, 0, SEEK_END);
    if (bytes <= 0 || bytes % sizeof(sock_filter) != 0)
        throw Error("cannot build the seccomp layer: libseccomp exported " +
                    std::to_string(bytes) + " bytes");
    std::vector<sock_filter> prog(static_cast<size_t>(bytes) / sizeof(sock_filter));
    if (::pread(fd, prog.data(), static_cast<size_t>(bytes), 0) != bytes)
        throw Error("cannot build the seccomp layer: reading the program: " + errno_text(errno));
    return prog;
}

} // namespace

SeccompLayer::SeccompLayer(const policy::Policy& p, cordon_backend backend)
    : no_new_privs_(p.hardening.no_new_privs)
{
    const auto& h = p.hardening;
    const bool compat = backend == CORDON_BACKEND_COMPAT;
    const auto refused = [&](SideDoor d) {
        for (const auto& info : policy::side_doors())
            if (info.door == d)
                return !h.allows(d) && (!info.compat_only || compat);
        return true;
    };
    Ctx c{seccomp_init(SCMP_ACT_ALLOW)};
    if (!c.ctx)
        throw Error("cannot build the seccomp layer: seccomp_init failed");

    // A call through a foreign ABI (int $0x80, x32) is refused before any rule: the BPF
    // programs match x86_64 numbers, and the same number means another call there. On compat it
    // stays refused whatever the policy says: compat decides opens, connects and listens at the
    // exit of x86_64 syscalls only, so a 32-bit open would not be decided at all.
    if (refused(SideDoor::ForeignAbi) || compat) {
        check(seccomp_attr_set(c.ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_ERRNO(EPERM)), "badarch");
    } else {
        check(seccomp_arch_add(c.ctx, SCMP_ARCH_X86), "ia32");
        check(seccomp_arch_add(c.ctx, SCMP_ARCH_X32), "x32");
    }
    // The filter is loaded by install() with a raw syscall, so libseccomp must not set
    // no_new_privs itself.
    check(seccomp_attr_set(c.ctx, SCMP_FLTATR_CTL_NNP, 0), "nnp");

    add_refusals(c.ctx, p, refused);
    // Export the program once, here, so that install() needs no allocation after fork.
    prog_ = export_program(c.ctx);
}

int drop_capabilities(std::uint64_t caps)
{
    __user_cap_header_struct head{.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
    __user_cap_data_struct data[2]{};
    if (::syscall(SYS_capget, &head, data) != 0)
        return errno;
    for (int cap = 0; cap < 64; ++cap) {
        if (!(caps & (std::uint64_t{1} << cap)))
            continue;
        // EINVAL: a capability this kernel does not know is one the agent cannot have.
        if (::prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 && errno != EINVAL)
            return errno;
        const std::uint32_t bit = 1u << (cap % 32);
        auto& word = data[cap / 32];
        word.effective &= ~bit;
        word.permitted &= ~bit;
        word.inheritable &= ~bit;
    }
    if (::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0 && errno != EINVAL)
        return errno;
    if (::syscall(SYS_capset, &head, data) != 0)
        return errno;
    return 0;
}

int limit_core_dumps()
{
    const rlimit one{.rlim_cur = 1, .rlim_max = 1};
    if (::setrlimit(RLIMIT_CORE, &one) != 0)
        return errno;
    // No real-time class either: the kernel lets a process without CAP_SYS_NICE (which an agent
    // never has) choose SCHED_FIFO up to RLIMIT_RTPRIO, and an agent started with a limit above
    // cordon's priority (systemd's LimitRTPRIO=, PAM limits) could take the CPU from cordon's
    // control path. The hard limit at 0 cannot be raised again without CAP_SYS_RESOURCE.
    const rlimit none{.rlim_cur = 0, .rlim_max = 0};
    return ::setrlimit(RLIMIT_RTPRIO, &none) == 0 ? 0 : errno;
}

int SeccompLayer::install() const
{
    if (no_new_privs_ && ::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
        return errno;
    sock_fprog fprog{.len = static_cast<unsigned short>(prog_.size()),
                     .filter = const_cast<sock_filter*>(prog_.data())};
    if (::syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &fprog) != 0)
        return errno;
    return 0;
}

} // namespace cordon::agents
