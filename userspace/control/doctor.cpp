// SPDX-License-Identifier: Apache-2.0
#include "control/doctor.h"

#include <sys/socket.h>
#include <unistd.h>

#include <iterator>
#include <span>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

namespace cordon::control {

using bpf::Probe;

namespace {

// What each backend guarantees and does not, in the short lines `cordon doctor` prints (text
// and JSON print them as they are: a change here is a change of its output).
constexpr const char* kNoneLimits[] = {"nothing is enforced: fix the missing probes marked 'needed'"};

constexpr const char* kLsmGuarantees[] = {
    "exec: a denied execve() fails with EPERM; decided on the resolved file "
    "(symlinks, relative paths and /proc/self/fd change nothing)",
    "paths: only a path that reaches the agent's mount namespace root through "
    "attached mounts is trusted; detached trees, other namespaces, memfds and "
    "disconnected file handles are denied",
    "files: denied opens, creations, unlinks, renames, hard links, truncations, "
    "chmod, chown, timestamps, xattrs and ACLs fail with EPERM before any effect; "
    "a link or rename may give no name more rights, and directories above "
    "protected paths stay in place",
    "network: a denied connect() or UDP sendmsg() (IPv4 and IPv6) fails with "
    "EPERM; raw and ICMP echo sockets are refused unless the policy allows them",
    "inbound: listen() and UDP bind() outside network.inbound (default: "
    "loopback) fail with EPERM",
    "unix sockets: connecting or sending to one is a write to its path; abstract "
    "sockets follow network.unix_abstract",
    "seccomp layer: no namespaces, mount API, bpf(), perf, file handles, foreign "
    "ABIs or module loading, unless the policy reopens them; root agents lose "
    "CAP_SYS_ADMIN, CAP_SYS_RAWIO, CAP_SYS_MODULE, CAP_MKNOD, CAP_NET_ADMIN and "
    "the other capabilities docs/enforcement.md lists",
    "kill switch: every process of a killed agent, forks included, is refused "
    "from that instant; cordon kills from the kernel's flag, not from events",
    "tamper: agents cannot call bpf(), ptrace outside their agent, signal "
    "cordon, write cgroupfs or bpffs, mount, pivot_root or create user namespaces",
    "root agents: refused in the kernel whatever the policy: the capabilities "
    "cordon drops at launch, writes to /proc/sys, sysrq-trigger and other "
    "processes' /proc entries, sysfs, debugfs, tracefs and other kernel "
    "filesystems, module loading and autoload, disks and devices other than "
    "null/zero/random/terminals, clone3 into another cgroup, killing or "
    "stalling cordon (signals, SIGIO, RLIMIT_CPU, nice, affinity, OOM score), "
    "and replacing or writing cordond's socket, registry and actions log",
    "kill switch and freeze: from the flag's write every access of every "
    "process of the agent is EPERM (tracing its own processes too); the cgroup "
    "is then emptied or frozen, and frozen again if thawed outside cordon",
    "tasks: under tasks.isolation: strict (the default) no process reaches into "
    "one of another task (ptrace, process_vm_readv, /proc/PID/mem, pidfd_getfd)",
    "passed descriptors: a file received with SCM_RIGHTS or pidfd_getfd is "
    "decided as an open of its path by the receiver; refused, it is dropped",
};

constexpr const char* kLsmLimits[] = {
    "an attached agent (cordon attach) has no seccomp layer and keeps its "
    "capabilities; the kernel refuses in their place namespaces (user "
    "namespaces, CAP_SYS_ADMIN), mounts, bpf(), perf_event_open, module loading "
    "and every capability of the drop list; io_uring, 32-bit calls and file "
    "handles are decided by the same file hooks; it keeps its core-dump limit",
    "an attached agent keeps its processes' RLIMIT_RTPRIO, under which it may "
    "choose real-time scheduling: give its unit LimitRTPRIO=0 (cordon run starts "
    "agents at 0)",
    "the dynamic loader or an interpreter can run a file without execve: deny "
    "the loader in exec rules and treat interpreters as exec-capable",
    "hard links that existed before the agent started are other paths to the "
    "same file (docs/enforcement.md)",
    "a UDP socket that sends without bind() receives on a kernel-chosen port "
    "with no inbound decision",
    "seccomp refusals are EPERM to the agent and are not recorded as events",
    "root agents: a device outside the short list (GPU, /dev/kvm, /dev/fuse) "
    "cannot be allowed, and no agent may change another process's limits",
};

constexpr const char* kCompatGuarantees[] = {
    "exec: a denied program is SIGKILLed after the kernel loaded it and before "
    "its first instruction runs",
    "files: a process that opens a denied file is SIGKILLed before the open "
    "returns to user space; unresolvable paths (detached trees, memfds, other "
    "namespaces) are denied",
    "unix sockets: a connect() to a socket the agent may not write kills the "
    "whole agent before connect returns",
    "inbound: TCP and UDP bind() outside network.inbound fail with EPERM; a "
    "listen() without bind outside it kills the whole agent",
    "network: a denied connect() or UDP sendmsg() (IPv4 and IPv6) fails with "
    "EPERM; raw and ICMP echo sockets are refused unless the policy allows them",
    "seccomp layer: no namespaces, mount API, bpf(), perf, file handles, foreign "
    "ABIs, io_uring, descriptor-table sharing or module loading, unless the "
    "policy reopens them; root agents lose the capabilities docs/enforcement.md "
    "lists (CAP_SYS_ADMIN, CAP_SYS_RAWIO, CAP_MKNOD, ...)",
    "kill switch: every process of a killed agent, forks included, is refused "
    "from that instant; cordon kills from the kernel's flag, not from events",
};

constexpr const char* kCompatLimits[] = {
    "an attached agent (cordon attach) has neither the seccomp layer nor the "
    "capability drop, and compat has no hook in their place: namespaces, "
    "mounts, bpf(), perf, io_uring, 32-bit calls, file handles and module "
    "loading are open to it as to any process of its user; attach only "
    "services that run as an unprivileged user, or use lsm",
    "an attached agent keeps its processes' RLIMIT_RTPRIO, under which it may "
    "choose real-time scheduling: give its unit LimitRTPRIO=0 (cordon run starts "
    "agents at 0)",
    "the open itself happens: O_CREAT may create and O_TRUNC truncate a file "
    "before the process is killed",
    "unlink, rename, link, truncate(2), chmod, chown, timestamps and xattrs are "
    "not seen, so a file can be moved to an allowed name",
    "Unix datagrams sent with an address and no connect() are not seen",
    "threads of a process whose open is denied share its descriptors until "
    "SIGKILL lands",
    "a denied Unix connect() or unbound listen() happened: a forked child that "
    "shares the socket can use it for the ~10 ms until cordon empties the cgroup",
    "a socket passed with SCM_RIGHTS before a denied connect()/listen() stays "
    "usable by its receiver, and a thread swapping descriptors during the call "
    "can hide it from the exit hook: use lsm where agents may reach host sockets",
    "a script is decided by its interpreter, not by its own path",
    "a denied open by a process with several threads kills the whole agent "
    "(another thread could pass the descriptor on before SIGKILL lands)",
    "on a kernel with full preemption (preempt=full, PREEMPT_RT) the kernel can "
    "skip a tracepoint program while another BPF program or map call is "
    "preempted on the same CPU, and the access is not decided",
    "a UDP socket that sends without bind() receives on a kernel-chosen port",
    "a denied exec is not an error return: the caller sees its child die of "
    "SIGKILL",
    "freeze keeps state only for processes that make no open or exec before "
    "the cgroup is frozen (a refusal here is a SIGKILL)",
    "no walls between an agent's tasks: its processes may ptrace, "
    "process_vm_readv and pidfd_getfd each other across tasks; and a descriptor "
    "passed in (SCM_RIGHTS, from outside or from another task) is used as it "
    "was opened, with no decision",
    "no tamper protection: a root agent can leave its cgroup, write kernel knobs "
    "(/proc/sys: ftrace_enabled, core_pattern, modprobe), read disks and signal "
    "cordon; bpf(), mounts and module loading are refused only by the seccomp "
    "layer and the capability drop; run agents with --user",
};

// The lsm program set, attached another way: the same guarantees, and a few limits of
// attaching to the security_* functions rather than to the LSM hooks.
constexpr const char* kFmodRetGuarantees[] = {
    "the lsm backend's programs, attached as fmod_ret to the kernel's security_* "
    "functions (the BPF LSM is not active here): every guarantee below is the lsm one",
};

constexpr const char* kFmodRetLimits[] = {
    "a denial skips the whole security_* function, so other LSMs (AppArmor, SELinux) "
    "neither see nor audit an access cordon refused",
    "a kernel built with link-time optimisation can inline a security_* function into "
    "a caller, where no fmod_ret program runs; Debian, Ubuntu, RHEL and their cloud "
    "kernels are not built that way, but check yours (docs/enforcement.md)",
    "on a kernel with full preemption (preempt=full, PREEMPT_RT), a task preempted "
    "inside one of cordon's programs makes the kernel skip that program for the other "
    "tasks on its CPU (fmod_ret programs are guarded against recursion, LSM programs "
    "are not); distribution server kernels run preempt=none or voluntary",
};

/// One backend's promise. A backend that `extends` another promises its guarantees after its
/// own, and has its limits after the other's.
struct PromiseRow {
    cordon_backend backend;
    cordon_backend extends; ///< CORDON_BACKEND_NONE: nothing inherited
    std::span<const char* const> guarantees, limits;
};

// One row per backend, in enum order; NONE's is what doctor says when no backend is usable.
constexpr PromiseRow kPromises[] = {
    {CORDON_BACKEND_NONE, CORDON_BACKEND_NONE, {}, kNoneLimits},
    {CORDON_BACKEND_LSM, CORDON_BACKEND_NONE, kLsmGuarantees, kLsmLimits},
    {CORDON_BACKEND_COMPAT, CORDON_BACKEND_NONE, kCompatGuarantees, kCompatLimits},
    {CORDON_BACKEND_FMOD_RET, CORDON_BACKEND_LSM, kFmodRetGuarantees, kFmodRetLimits},
};

// A backend added to abi.h needs its row; a row out of place would give a backend another's
// promise, and a backend may only extend one that has no base of its own.
static_assert(std::size(kPromises) == CORDON_BACKEND_MAX, "every cordon_backend needs a row in kPromises");
constexpr bool promises_in_enum_order()
{
    for (std::size_t i = 0; i < std::size(kPromises); ++i)
        if (static_cast<std::size_t>(kPromises[i].backend) != i ||
            kPromises[kPromises[i].extends].extends != CORDON_BACKEND_NONE)
            return false;
    return true;
}
static_assert(promises_in_enum_order(), "kPromises[i].backend must be i");

} // namespace

BackendPromise backend_promise(cordon_backend b)
{
    const auto& row = kPromises[b < CORDON_BACKEND_MAX ? b : CORDON_BACKEND_NONE];
    BackendPromise p;
    p.guarantees.assign(row.guarantees.begin(), row.guarantees.end());
    p.limits.assign(row.limits.begin(), row.limits.end());
    if (row.extends != CORDON_BACKEND_NONE) {
        const auto& base = kPromises[row.extends];
        p.guarantees.insert(p.guarantees.end(), base.guarantees.begin(), base.guarantees.end());
        p.limits.insert(p.limits.begin(), base.limits.begin(), base.limits.end());
    }
    return p;
}

namespace {

std::vector<std::string> required_by(Probe p)
{
    std::vector<std::string> out;
    for (auto b : bpf::kBackendPreference)
        if (bpf::probe_required_by(p, b))
            out.emplace_back(bpf::backend_name(b));
    return out;
}

// Why backend b was or was not chosen, given that `chosen` was.
std::string backend_reason(bpf::Features& f, cordon_backend b, cordon_backend chosen)
{
    const auto blockers = bpf::backend_blockers(f, b);
    if (!blockers.empty()) {
        std::vector<std::string> names;
        for (auto p : blockers)
            names.emplace_back(bpf::probe_name(p));
        return fmt::format("not usable: {} missing", fmt::join(names, ", "));
    }
    if (b == chosen)
        return "chosen";
    return fmt::format("usable, not chosen: {} comes first", bpf::backend_name(chosen));
}

} // namespace

// Whether the kernel gives cordond each caller's pidfd (SO_PASSPIDFD, Linux 6.5); without it,
// the limit that comes with it, for every backend.
std::vector<std::string> limits_of_host(const BackendPromise& promise)
{
    std::vector<std::string> out(promise.limits.begin(), promise.limits.end());
    const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    const int one = 1;
    const bool pidfds = fd >= 0 && ::setsockopt(fd, SOL_SOCKET, 76 /* SO_PASSPIDFD */, &one,
                                                sizeof(one)) == 0;
    if (fd >= 0)
        ::close(fd);
    if (!pidfds)
        out.emplace_back("cordond knows its callers by pid number and the socket they hold, not "
                         "by pidfd (SO_PASSPIDFD needs Linux 6.5); without the kernel's unix_diag "
                         "as well, a process that sends a request and exits at once can leave its "
                         "number to another process before cordond reads it (docs/api.md)");
    return out;
}

std::string doctor_text(bpf::Features& f, const std::string& kernel_release)
{
    const auto backend = bpf::choose_backend(f);
    std::string out = fmt::format("cordon doctor: kernel {}\n\n", kernel_release);
    for (size_t i = 0; i < bpf::kProbeCount; ++i) {
        const auto p = static_cast<Probe>(i);
        const auto& r = f.get(p);
        const auto need = required_by(p);
        out += fmt::format("  {:<8} {:<17} {}\n", r.ok ? "ok" : "missing", bpf::probe_name(p),
                           r.detail);
        if (!r.ok)
            out += fmt::format("  {:<8} {:<17} -> {}{}\n", "", "", bpf::probe_impact(p),
                               need.empty() ? "" : fmt::format(" (needed by: {})",
                                                               fmt::join(need, ", ")));
    }
    out += "\nbackends, in order of preference:\n";
    for (auto b : bpf::kBackendPreference)
        out += fmt::format("  {:<9} {}\n", bpf::backend_name(b), backend_reason(f, b, backend));
    const auto promise = backend_promise(backend);
    out += fmt::format("\nbackend: {}\n", bpf::backend_name(backend));
    for (const auto& g : promise.guarantees)
        out += fmt::format("  guarantees: {}\n", g);
    for (const auto& l : limits_of_host(promise))
        out += fmt::format("  does not:   {}\n", l);
    return out;
}

std::string doctor_json(bpf::Features& f, const std::string& kernel_release)
{
    const auto backend = bpf::choose_backend(f);
    nlohmann::json probes = nlohmann::json::array();
    for (size_t i = 0; i < bpf::kProbeCount; ++i) {
        const auto p = static_cast<Probe>(i);
        const auto& r = f.get(p);
        probes.push_back({{"name", bpf::probe_name(p)},
                          {"ok", r.ok},
                          {"detail", r.detail},
                          {"impact", r.ok ? "" : std::string(bpf::probe_impact(p))},
                          {"required_by", required_by(p)}});
    }
    nlohmann::json backends = nlohmann::json::array();
    for (auto b : bpf::kBackendPreference)
        backends.push_back({{"name", bpf::backend_name(b)},
                            {"usable", bpf::backend_usable(f, b)},
                            {"chosen", b == backend},
                            {"why", backend_reason(f, b, backend)}});
    const auto promise = backend_promise(backend);
    const nlohmann::json doc = {{"kernel", kernel_release},
                                {"probes", probes},
                                {"backends", backends},
                                {"backend", bpf::backend_name(backend)},
                                {"guarantees", promise.guarantees},
                                {"limits", limits_of_host(promise)}};
    return doc.dump(2) + "\n";
}

int doctor_exit_code(bpf::Features& f)
{
    return bpf::choose_backend(f) == CORDON_BACKEND_NONE ? 1 : 0;
}

} // namespace cordon::control
