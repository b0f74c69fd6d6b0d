// SPDX-License-Identifier: Apache-2.0
// The loaded enforcement programs of one backend and typed access to their shared maps.
#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>

#include <cordon/abi.h>

#include "policy/compiler.h"

namespace cordon::bpf {

struct GuardOptions {
    cordon_backend backend = CORDON_BACKEND_COMPAT;
    std::uint32_t agent_level = 0;           ///< cgroup level of <root>/cordon/<agent>
    std::filesystem::path net_attach_cgroup; ///< where sock_addr programs attach (<root>/cordon)
};

/// The number of arguments of LSM hook `hook` ("inode_setattr") on the running kernel, read from
/// bpf_lsm_<hook> in its BTF, or `missing` when the kernel has no such hook.
unsigned lsm_hook_args(const char* hook, unsigned missing);

/// Owns the exec_guard, file_guard, net_guard and (lsm) tamper_guard skeletons. Construction opens, configures, loads and
/// attaches both (and throws Error naming the refused program and the fix); destruction detaches
/// and unloads everything, so no program, link or map outlives the Guard.
class Guard {
public:
    explicit Guard(const GuardOptions& opts);
    ~Guard();
    Guard(const Guard&) = delete;
    Guard& operator=(const Guard&) = delete;

    /// Adds or replaces the agent whose root cgroup has id cgid.
    void set_agent(std::uint64_t cgid, const cordon_agent_state& state);
    void remove_agent(std::uint64_t cgid);
    /// Reads an agent's state back (score, flags) as the kernel left it.
    std::optional<cordon_agent_state> agent(std::uint64_t cgid) const;

    /// Writes a compiled policy into the maps, whole or not at all: on any failure the entries
    /// already written are removed again and Error is thrown.
    void load_policy(const policy::CompiledPolicy& c);

    /// Marks a process of cordon itself, which agents may not signal (lsm backend).
    void protect_process(std::uint32_t tgid);
    /// Forgets a protected process (it has exited); nothing if it was not protected.
    void unprotect_process(std::uint32_t tgid);

    /// Per-CPU counters summed over CPUs, indexed by enum cordon_counter.
    std::array<std::uint64_t, CORDON_CNT_MAX> counters() const;

    /// The ring buffer's map fd, for an events::Reader.
    int events_fd() const;

    cordon_backend backend() const;

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

} // namespace cordon::bpf
