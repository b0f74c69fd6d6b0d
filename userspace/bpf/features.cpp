// SPDX-License-Identifier: Apache-2.0
#include "bpf/features.h"

#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>

#include "agents/cgroup.h"
#include "bpf/skeleton.h"
#include "bpf/guard.h"
#include "common/backend.h"
#include "common/error.h"
#include "probe.skel.h"

namespace cordon::bpf {

CORDON_SKELETON_OPS(probe_bpf);

namespace {

namespace fs = std::filesystem;

std::string read_text(const fs::path& p)
{
    std::ifstream in(p);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
}

std::string trim(std::string s)
{
    while (!s.empty() && (s.back() == '\n' || s.back() == ' '))
        s.pop_back();
    return s;
}

std::string root_hint(int err)
{
    if ((err == EPERM || err == EACCES) && ::geteuid() != 0)
        return "; run cordon as root";
    return "";
}

// Loads (and optionally attaches) exactly one program of probe.bpf.c. attach_cgroup_fd >= 0
// attaches a cgroup program there; otherwise libbpf attaches by section name. Everything is
// detached and unloaded again before returning.
ProbeResult trial_program(struct bpf_program* (*pick)(probe_bpf*), int attach_cgroup_fd = -1)
{
    auto skel = Skeleton<probe_bpf>::open();
    struct bpf_program* wanted = pick(skel.get());
    struct bpf_program* prog = nullptr;
    bpf_object__for_each_program(prog, skel.object())
    {
        bpf_program__set_autoload(prog, prog == wanted);
    }
    if (int err = skel.load(); err != 0)
        return {false, "the kernel refused to load " + std::string(bpf_program__name(wanted)) +
                           ": " + errno_text(-err) + root_hint(-err)};
    struct bpf_link* link = attach_cgroup_fd >= 0
                                ? bpf_program__attach_cgroup(wanted, attach_cgroup_fd)
                                : bpf_program__attach(wanted);
    if (!link) {
        const int err = errno;
        return {false, "loaded, but the kernel refused to attach " +
                           std::string(bpf_program__name(wanted)) + ": " + errno_text(err) +
                           root_hint(err)};
    }
    bpf_link__destroy(link);
    return {true, "loaded and attached " + std::string(bpf_program__name(wanted))};
}

// Removes empty doctor-<pid> cgroups whose process is gone (a probe killed mid-way). Only
// cordon's own naming in cordon's own subtree is touched, and rmdir refuses non-empty cgroups.
void remove_stale_probe_cgroups(const agents::Cgroup2Mount& m)
{
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(m.mount_point / agents::kSubtree, ec)) {
        const std::string name = e.path().filename().string();
        if (name.rfind("doctor-", 0) != 0 || !e.is_directory(ec))
            continue;
        const std::string pid = name.substr(7);
        if (pid.empty() || pid.find_first_not_of("0123456789") != std::string::npos)
            continue;
        if (::kill(std::stoi(pid), 0) != 0 && errno == ESRCH)
            ::rmdir(e.path().c_str());
    }
}

// A throwaway cgroup in cordon's subtree, for the probes that need a non-root cgroup.
std::optional<agents::Cgroup> probe_cgroup(std::string& why)
{
    try {
        const auto mount = agents::cgroup2_mount();
        remove_stale_probe_cgroups(mount);
        return agents::Cgroup::create(mount, "doctor-" + std::to_string(::getpid()));
    } catch (const Error& e) {
        why = e.what();
        return std::nullopt;
    }
}

ProbeResult probe_cgroup_file(const char* file, const char* needs)
{
    std::string why;
    auto cg = probe_cgroup(why);
    if (!cg)
        return {false, why};
    if (fs::exists(cg->path() / file))
        return {true, std::string(file) + " present"};
    return {false, std::string(file) + " is missing (" + needs + ")"};
}

ProbeResult probe_btf()
{
    struct btf* btf = btf__load_vmlinux_btf();
    if (!btf)
        return {false, "cannot read /sys/kernel/btf/vmlinux: " + errno_text(errno) +
                           " (the kernel needs CONFIG_DEBUG_INFO_BTF=y)"};
    const auto n = btf__type_cnt(btf);
    btf__free(btf);
    return {true, "/sys/kernel/btf/vmlinux, " + std::to_string(n) + " types"};
}

ProbeResult probe_bpf_syscall()
{
    const int fd = bpf_map_create(BPF_MAP_TYPE_ARRAY, "cordon_probe", 4, 4, 1, nullptr);
    if (fd < 0) {
        const int err = errno;
        return {false, "bpf() refused: " + errno_text(err) + root_hint(err)};
    }
    ::close(fd);
    return {true, "bpf() creates maps"};
}

ProbeResult probe_ring_buffer()
{
    const int r = libbpf_probe_bpf_map_type(BPF_MAP_TYPE_RINGBUF, nullptr);
    if (r == 1)
        return {true, "BPF_MAP_TYPE_RINGBUF supported"};
    return {false, r == 0 ? "BPF_MAP_TYPE_RINGBUF not supported by this kernel"
                          : "cannot probe BPF_MAP_TYPE_RINGBUF: " + errno_text(-r) + root_hint(-r)};
}

ProbeResult probe_sock_addr()
{
    std::string why;
    auto cg = probe_cgroup(why);
    if (!cg)
        return {false, why};
    const int fd = ::open(cg->path().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return {false, "cannot open " + cg->path().string() + ": " + errno_text(errno)};
    auto r = trial_program([](probe_bpf* s) { return s->progs.probe_sock_addr_connect4; }, fd);
    ::close(fd);
    return r;
}

ProbeResult probe_tracefs()
{
    // syscall_tracepoints() mounts tracefs where nothing has (that changes no setting).
    if (syscall_tracepoints())
        return {true, "per-syscall exit tracepoints present: compat decides opens, connects and "
                      "listens there"};
    return {false, "no per-syscall exit tracepoints in tracefs (CONFIG_FTRACE_SYSCALLS, or "
                   "tracefs cannot be mounted at /sys/kernel/tracing)"};
}

ProbeResult probe_lsm_listed()
{
    const fs::path lsm = "/sys/kernel/security/lsm";
    if (!fs::exists(lsm)) {
        // securityfs is not mounted on every host; mounting it changes no policy.
        if (::mount("securityfs", "/sys/kernel/security", "securityfs", 0, nullptr) != 0 &&
            errno != EBUSY)
            return {false, "securityfs is not mounted and mounting it failed: " +
                               errno_text(errno) + root_hint(errno)};
    }
    const std::string list = trim(read_text(lsm));
    if (list.empty())
        return {false, "cannot read " + lsm.string()};
    std::istringstream items(list);
    for (std::string item; std::getline(items, item, ',');)
        if (item == "bpf")
            return {true, "active LSMs: " + list};
    return {false, "\"bpf\" is not in the active LSMs (" + list +
                       "); add it with the lsm= kernel parameter"};
}

ProbeResult probe_fmod_ret()
{
    // Every function the backend attaches to must exist (a kernel built without
    // CONFIG_SECURITY_PATH lacks security_path_*), and one must take a program.
    if (const auto missing = missing_fmod_ret_targets(); !missing.empty())
        return {false, fmt::format("this kernel has no {} (CONFIG_SECURITY_PATH and "
                                   "CONFIG_SECURITY_NETWORK provide them)",
                                   fmt::join(missing, ", "))};
    auto r = trial_program([](probe_bpf* s) { return s->progs.probe_fmod_ret_file_open; });
    if (r.ok)
        r.detail += " (fmod_ret on security_file_open; every security_* function the backend "
                    "needs is present)";
    return r;
}

ProbeResult run_probe(Probe p)
{
    switch (p) {
    case Probe::Btf:
        return probe_btf();
    case Probe::BpfSyscall:
        return probe_bpf_syscall();
    case Probe::RingBuffer:
        return probe_ring_buffer();
    case Probe::Cgroup2:
        return {true, "mounted at " + agents::cgroup2_mount().mount_point.string()};
    case Probe::CgroupKill:
        return probe_cgroup_file("cgroup.kill", "kernel 5.14 or later has it");
    case Probe::CgroupFreeze:
        return probe_cgroup_file("cgroup.freeze", "kernel 5.2 or later has it");
    case Probe::TpBtf:
        return trial_program([](probe_bpf* s) { return s->progs.probe_tp_btf_exec; });
    case Probe::SockAddr:
        return probe_sock_addr();
    case Probe::Tracefs:
        return probe_tracefs();
    case Probe::LsmListed:
        return probe_lsm_listed();
    case Probe::LsmAttach:
        return trial_program([](probe_bpf* s) { return s->progs.probe_lsm_file_open; });
    case Probe::FmodRet:
        return probe_fmod_ret();
    case Probe::Count:
        break;
    }
    return {false, "unknown probe"};
}

class KernelProbeSource final : public ProbeSource {
public:
    ProbeResult run(Probe p) override
    {
        try {
            return run_probe(p);
        } catch (const std::exception& e) {
            return {false, e.what()};
        }
    }
};

} // namespace

std::unique_ptr<ProbeSource> kernel_probe_source()
{
    return std::make_unique<KernelProbeSource>();
}

const ProbeResult& Features::get(Probe p)
{
    auto& slot = cache_.at(static_cast<size_t>(p));
    if (!slot)
        slot = source_->run(p);
    return *slot;
}

std::string_view probe_name(Probe p)
{
    switch (p) {
    case Probe::Btf: return "btf";
    case Probe::BpfSyscall: return "bpf_syscall";
    case Probe::RingBuffer: return "ring_buffer";
    case Probe::Cgroup2: return "cgroup2";
    case Probe::CgroupKill: return "cgroup_kill";
    case Probe::CgroupFreeze: return "cgroup_freeze";
    case Probe::TpBtf: return "tp_btf";
    case Probe::SockAddr: return "cgroup_sock_addr";
    case Probe::Tracefs: return "tracefs";
    case Probe::LsmListed: return "lsm_listed";
    case Probe::LsmAttach: return "lsm_attach";
    case Probe::FmodRet: return "fmod_ret";
    case Probe::Count: break;
    }
    return "?";
}

std::string_view probe_impact(Probe p)
{
    switch (p) {
    case Probe::Btf: return "CO-RE programs cannot load without kernel BTF; no backend can run";
    case Probe::BpfSyscall: return "no BPF program can load; no backend can run";
    case Probe::RingBuffer: return "decisions cannot be reported; no backend can run";
    case Probe::Cgroup2: return "agents are cgroup v2 subtrees; no backend can run";
    case Probe::CgroupKill: return "the kill switch needs cgroup.kill; no backend can run";
    case Probe::CgroupFreeze: return "agents cannot be frozen for review (kill still works)";
    case Probe::TpBtf: return "the compat backend cannot stop exec and file access";
    case Probe::SockAddr: return "network access cannot be decided; no backend can run";
    case Probe::Tracefs:
        return "compat falls back to the raw sys_exit tracepoint, which costs every syscall on "
               "the host more";
    case Probe::LsmListed: return "the lsm backend needs the BPF LSM active";
    case Probe::LsmAttach:
        return "the lsm backend is unavailable: the fmod_ret backend attaches the same programs "
               "another way";
    case Probe::FmodRet:
        return "without lsm or fmod_ret, exec/file denials fall back to SIGKILL after the fact "
               "(compat)";
    case Probe::Count: break;
    }
    return "";
}

bool probe_required_by(Probe p, cordon_backend backend)
{
    switch (p) {
    case Probe::Btf:
    case Probe::BpfSyscall:
    case Probe::RingBuffer:
    case Probe::Cgroup2:
    case Probe::CgroupKill:
    case Probe::SockAddr:
        return backend == CORDON_BACKEND_LSM || backend == CORDON_BACKEND_FMOD_RET ||
               backend == CORDON_BACKEND_COMPAT;
    case Probe::TpBtf:
        return backend == CORDON_BACKEND_COMPAT;
    case Probe::LsmListed:
    case Probe::LsmAttach:
        return backend == CORDON_BACKEND_LSM;
    case Probe::FmodRet:
        return backend == CORDON_BACKEND_FMOD_RET;
    case Probe::CgroupFreeze:
    case Probe::Tracefs:
    case Probe::Count:
        return false;
    }
    return false;
}

std::vector<Probe> backend_blockers(Features& f, cordon_backend b)
{
    std::vector<Probe> out;
    for (size_t i = 0; i < kProbeCount; ++i)
        if (probe_required_by(static_cast<Probe>(i), b) && !f.has(static_cast<Probe>(i)))
            out.push_back(static_cast<Probe>(i));
    return out;
}

std::string backend_blockers_text(Features& f, cordon_backend b)
{
    std::string out;
    for (auto p : backend_blockers(f, b))
        out += (out.empty() ? "" : "; ") + std::string(probe_name(p)) + ": " + f.get(p).detail;
    return out;
}

bool backend_usable(Features& f, cordon_backend b)
{
    return backend_blockers(f, b).empty();
}

cordon_backend choose_backend(Features& f)
{
    for (auto b : kBackendPreference)
        if (backend_usable(f, b))
            return b;
    return CORDON_BACKEND_NONE;
}

std::string_view backend_name(cordon_backend b)
{
    return cordon::backend_name(b);
}

} // namespace cordon::bpf
