// SPDX-License-Identifier: Apache-2.0
// The one loaded program set of a backend and typed access to its shared maps. A Guard is either
// loaded by this process (cordon run, or cordond's first start) or adopted from what a cordond
// pinned under /sys/fs/bpf/cordon, so that enforcement outlives the daemon process.
#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <cordon/abi.h>

#include "policy/compiler.h"

namespace cordon::bpf {

struct GuardOptions {
    cordon_backend backend = CORDON_BACKEND_COMPAT;
    /// Where the cgroup sock_addr programs attach: the cgroup2 mount's root, so that they see
    /// every agent, wherever its cgroup is (cordon's subtree, a systemd unit, a container).
    std::filesystem::path net_attach_cgroup;
    /// When set, maps and links are pinned here (cordond), so that the programs stay attached
    /// and the maps keep their entries after this process is gone.
    std::optional<std::filesystem::path> pin_dir;
    /// Event ring buffer size in bytes (a power of two); 0: CORDON_RINGBUF_BYTES (abi.h).
    std::uint32_t ringbuf_bytes = 0;
    /// compat: decide at the raw sys_exit tracepoint even where the per-syscall ones exist (the
    /// fallback, chosen by tests and benchmarks).
    bool compat_raw_sys_exit = false;
    /// Off only to measure what the cgroup-creation programs cost (bench/cgroup_churn.cpp):
    /// without them no cgroup made later is bound to an agent.
    bool cgroup_guard = true;
};

/// The number of arguments of kernel function `func` on the running kernel, read from its BTF,
/// or `missing` when the kernel has no such function.
unsigned btf_func_args(const std::string& func, unsigned missing);
/// The number of arguments of LSM hook `hook` ("inode_setattr") on the running kernel, read from
/// bpf_lsm_<hook> in its BTF, or `missing` when the kernel has no such hook.
unsigned lsm_hook_args(const char* hook, unsigned missing);
/// The kernel function through which the fmod_ret backend reaches LSM hook `hook`
/// ("security_file_open" for "file_open").
std::string fmod_ret_target(std::string_view hook);
/// Whether the kernel has the per-syscall exit tracepoints the compat backend prefers to the raw
/// sys_exit one (CONFIG_FTRACE_SYSCALLS, seen through tracefs, which this mounts at
/// /sys/kernel/tracing when nothing has).
bool syscall_tracepoints();
/// The security_* functions the fmod_ret backend needs that the running kernel's BTF lacks
/// (empty: all present). Hooks that only newer kernels have, and that the backend does without
/// on older ones, are not counted.
std::vector<std::string> missing_fmod_ret_targets();

/// One agent as the kernel has it: the controller's half and the kernel's (abi.h).
struct AgentEntry {
    std::uint64_t cgid = 0;
    cordon_agent agent{};
    std::optional<cordon_agent_live> live; ///< missing: the agent is refused everything
};

/// Owns the guard programs (exec_guard, file_guard, compat_exit, net_guard, tamper_guard: one
/// linked object, bpf/CMakeLists.txt) and their maps. Construction opens, configures, loads and attaches them (and throws Error naming the
/// refused program and the fix); destruction detaches and unloads everything that is not pinned,
/// so no program, link or map outlives an unpinned Guard.
class Guard {
public:
    explicit Guard(const GuardOptions& opts);
    ~Guard();
    Guard(const Guard&) = delete;
    Guard& operator=(const Guard&) = delete;

    /// Whether `pin_dir` holds a complete pinned program set (its cordon_config is pinned last).
    static bool pinned(const std::filesystem::path& pin_dir);
    /// Takes over a pinned program set. Throws Error when its ABI version or a map's layout
    /// differs from this build's, naming `cordon teardown` as the fix; nothing is changed then.
    static std::unique_ptr<Guard> adopt(const std::filesystem::path& pin_dir);
    /// Removes every pin under `pin_dir` (and leftovers of an interrupted start beside it). The
    /// programs are detached and unloaded once no process holds them any more.
    static void unpin(const std::filesystem::path& pin_dir);

    /// Adds the agent with key cgid (CORDON_AGENT_KEY: its cgroups are bound to it with
    /// bind_cgroup or bind_path; a.level says their level), with the kernel's half created once,
    /// here; after this only the kernel writes `live`. Throws Error (and changes nothing) when
    /// the key is an agent already or the map is full.
    void add_agent(std::uint64_t cgid, const cordon_agent& a, const cordon_agent_live& live);
    /// Replaces the controller's half of an agent (policy, mode, flags) with one map write.
    void update_agent(std::uint64_t cgid, const cordon_agent& a);
    /// Removes both halves, and unbinds every cgroup bound to the agent.
    void remove_agent(std::uint64_t cgid);
    /// The controller's half of an agent.
    std::optional<cordon_agent> agent(std::uint64_t cgid) const;
    /// The kernel's half (score, kill and freeze marks) as the kernel left it.
    std::optional<cordon_agent_live> live(std::uint64_t cgid) const;
    /// Binds a live cgroup to the agent with key `key` (its processes are that agent's from now
    /// on), and unbinds it. cgroup_agent: the key a cgroup is bound to.
    void bind_cgroup(std::uint64_t cgid, std::uint64_t key);
    void unbind_cgroup(std::uint64_t cgid);
    std::optional<std::uint64_t> cgroup_agent(std::uint64_t cgid) const;
    /// Every bound cgroup (cgroup id, agent key).
    std::vector<std::pair<std::uint64_t, std::uint64_t>> cgroup_bindings() const;
    /// Attached paths (relative to the cgroup2 root, "/svc"): the kernel binds a cgroup made at
    /// one to its agent as it is made (bpf/cgroup_guard.bpf.c).
    void bind_path(const std::string& rel, std::uint64_t key);
    void unbind_path(const std::string& rel);
    std::optional<std::uint64_t> path_agent(const std::string& rel) const;
    /// Templates of a parent cgroup (relative path): set_template adds or replaces (by
    /// template_id) one, whole; at most CORDON_TEMPLATES_PER_PARENT per parent.
    void set_template(const std::string& parent, const cordon_template& t);
    void remove_template(const std::string& parent, std::uint32_t template_id);
    std::optional<cordon_template> template_of(const std::string& parent,
                                               std::uint32_t template_id) const;
    /// Every agent, both halves (read in batches).
    std::vector<AgentEntry> agents() const;
    /// Returns once every decision that was in progress when it was called has ended (an RCU
    /// grace period): after a policy swap, no decision uses the old policy any more.
    void wait_for_decisions();

    /// Fresh ids, never handed out twice by this program set (the counters live in its maps, so
    /// they survive a daemon restart).
    std::uint32_t allocate_policy_id();
    std::uint32_t allocate_agent_id();
    std::uint64_t allocate_task_id();
    std::uint32_t allocate_grant_id();

    /// Tasks (abi.h): the kernel state of task number `task`, written whole.
    void set_task(std::uint64_t task, const cordon_task& t);
    /// Ends a task in the kernel: its entry and every process binding to it go.
    void remove_task(std::uint64_t task);
    std::optional<cordon_task> task(std::uint64_t task) const;
    /// Every task (number, state).
    std::vector<std::pair<std::uint64_t, cordon_task>> tasks() const;
    /// Binds a process (and, from now on, what it forks) to a task. The caller checks that the
    /// process still lives after this, so that a reused pid is never bound.
    void bind_process(std::uint32_t tgid, std::uint64_t task);
    void unbind_process(std::uint32_t tgid);
    /// Every process binding (tgid, task), forks included.
    std::vector<std::pair<std::uint32_t, cordon_proc_task>> bound_processes() const;

    /// Grants (abi.h): what grant `id` allows is compiled into a grant set (load_policy).
    void set_grant(std::uint32_t id, const cordon_grant& g);
    void remove_grant(std::uint32_t id);
    std::vector<std::pair<std::uint32_t, cordon_grant>> grants() const;
    std::optional<cordon_grant> grant(std::uint32_t id) const;

    /// The rule maps as a decision reads them: one lookup in the LPM trie, which answers with
    /// the longest prefix of `key` it holds (cordon explain replays the kernel's lookups here).
    std::optional<cordon_path_value> path_rule(const cordon_path_key& key) const;
    std::optional<cordon_net_value> net_rule(const cordon_net_key& key) const;

    /// Writes a compiled policy into the maps, whole or not at all: on any failure the entries
    /// already written are removed again and Error is thrown.
    void load_policy(const policy::CompiledPolicy& c);
    /// Removes every entry of a policy (its settings first, so no agent sees half of it). Found
    /// by scanning the rule maps, so it needs no record of what was loaded. load_policy,
    /// unload_policy and wait_for_decisions may be called from several threads at once.
    void unload_policy(std::uint32_t policy_id);
    /// Removes the rules of policies that have no settings entry (a load or an unload that a
    /// dying daemon left half done: rules go in first and out last) and are not in `keep`.
    /// Returns how many rule entries it removed. Scans the rule maps: for a start, not a loop.
    std::size_t remove_orphan_rules(const std::vector<std::uint32_t>& keep);
    /// A loaded policy's settings (trust tiers, defaults), or nothing.
    std::optional<cordon_policy> policy_settings(std::uint32_t policy_id) const;
    /// Ids of the policies that have settings in the maps.
    std::vector<std::uint32_t> policy_ids() const;

    // The DNS gateway's maps (abi.h; userspace/dns/gateway.h). Each is one map syscall, safe
    // from the gateway's thread.
    void set_dns_config(const cordon_dns_config& c);
    std::optional<cordon_dns_config> dns_config() const;
    /// The steered socket with this cookie, if the programs recorded it.
    std::optional<cordon_dns_sock> dns_sock(std::uint64_t cookie) const;
    /// The slots of host rule name `name` (host_key form, or "*.x") in policy `policy_id`.
    std::optional<cordon_dns_rule> dns_rule(std::uint32_t policy_id, std::string_view name) const;
    /// Writes an answered address; false (errno set) when the map is full or refuses it.
    bool set_dns_host(const cordon_dns_host_key& k, const cordon_dns_host& v);
    void remove_dns_host(const cordon_dns_host_key& k);
    std::optional<cordon_dns_host> dns_host(const cordon_dns_host_key& k) const;
    std::vector<std::pair<cordon_dns_host_key, cordon_dns_host>> dns_hosts() const;

    /// cordon's own state files and directories (cordond's socket, registry, actions log): on
    /// lsm no agent may change them or a name directly in such a directory. Replaces the set.
    void protect_state(const std::vector<std::filesystem::path>& paths);
    /// Marks a process of cordon itself, which agents may not signal (lsm backend).
    void protect_process(std::uint32_t tgid);
    /// Forgets a protected process (it has exited); nothing if it was not protected.
    void unprotect_process(std::uint32_t tgid);
    /// Every protected process.
    std::vector<std::uint32_t> protected_processes() const;

    /// Per-CPU counters summed over CPUs, indexed by enum cordon_counter.
    std::array<std::uint64_t, CORDON_CNT_MAX> counters() const;

    /// The ring buffer's map fd, for an events::Reader.
    int events_fd() const;
    /// cordon_event_shares: what the reader has read of each agent's records (events::Reader).
    int event_shares_fd() const;

    cordon_backend backend() const;
    /// Kernel ids of the attached programs (one per link).
    std::vector<std::uint32_t> program_ids() const;

private:
    Guard();
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

} // namespace cordon::bpf
