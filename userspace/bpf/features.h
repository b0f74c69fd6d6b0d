// SPDX-License-Identifier: Apache-2.0
// What the running kernel can do for cordon, found by probing (loading and attaching the real
// kind of program), never by kernel version. One cached object answers every question; tests
// give it a fake ProbeSource.
#pragma once

#include <array>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <cordon/abi.h>

namespace cordon::bpf {

/// Everything `cordon doctor` checks, in the order it prints them.
enum class Probe {
    Btf,          ///< kernel BTF at /sys/kernel/btf/vmlinux (CO-RE needs it)
    BpfSyscall,   ///< bpf() works for this user
    RingBuffer,   ///< BPF_MAP_TYPE_RINGBUF
    Cgroup2,      ///< a cgroup v2 hierarchy is mounted
    CgroupKill,   ///< cgroup.kill (kill switch)
    CgroupFreeze, ///< cgroup.freeze (freeze for review)
    TpBtf,        ///< tp_btf programs load and attach (compat exec/file hooks)
    SockAddr,     ///< cgroup sock_addr programs load and attach (network hooks)
    Tracefs,      ///< tracefs mounted (informational)
    LsmListed,    ///< "bpf" in the active LSM list
    LsmAttach,    ///< an LSM program actually loads and attaches
    FmodRet,      ///< fmod_ret programs load and attach on every security_* function needed
    Count,
};
inline constexpr size_t kProbeCount = static_cast<size_t>(Probe::Count);

/// Stable machine name of a probe ("btf", "lsm_attach", ...), used in --json.
std::string_view probe_name(Probe p);

struct ProbeResult {
    bool ok = false;
    std::string detail; ///< what was found, or why it is missing (errno, file, setting)
};

/// Runs one probe against the kernel. Virtual so that tests replace the kernel with a table.
class ProbeSource {
public:
    virtual ~ProbeSource() = default;
    virtual ProbeResult run(Probe p) = 0;
};

/// The real kernel. Needs root for the BPF and cgroup probes (it says so in the detail).
std::unique_ptr<ProbeSource> kernel_probe_source();

/// Runs each probe at most once and remembers the answer.
class Features {
public:
    explicit Features(std::unique_ptr<ProbeSource> source) : source_(std::move(source)) {}
    const ProbeResult& get(Probe p);
    bool has(Probe p) { return get(p).ok; }

private:
    std::unique_ptr<ProbeSource> source_;
    std::array<std::optional<ProbeResult>, kProbeCount> cache_;
};

/// Why a probe matters, in one line for the user (what they lose when it is missing).
std::string_view probe_impact(Probe p);

/// True when the backend cannot run without this probe.
bool probe_required_by(Probe p, cordon_backend backend);

/// The backends in the order cordon prefers them: lsm, fmod_ret, compat.
inline constexpr cordon_backend kBackendPreference[] = {
    CORDON_BACKEND_LSM, CORDON_BACKEND_FMOD_RET, CORDON_BACKEND_COMPAT};

/// Whether every probe that backend `b` requires holds.
bool backend_usable(Features& f, cordon_backend b);

/// The missing probes that keep backend `b` from running (empty: it can run).
std::vector<Probe> backend_blockers(Features& f, cordon_backend b);
/// The same as one line for a person: "name: detail; name: detail" (empty: it can run).
std::string backend_blockers_text(Features& f, cordon_backend b);

/// The backend cordon uses on this kernel: the first of kBackendPreference whose every
/// requirement holds, else CORDON_BACKEND_NONE. Pure function of the probe results.
cordon_backend choose_backend(Features& f);

std::string_view backend_name(cordon_backend b);

} // namespace cordon::bpf
