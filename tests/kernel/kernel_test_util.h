// SPDX-License-Identifier: Apache-2.0
// Helpers for kernel-tier tests: cgroups under cordon's own subtree, real child processes in
// them, and exact exit statuses. Every cgroup a test makes is removed when its owner goes.
#pragma once

#include <sys/types.h>

#include <functional>
#include <map>
#include <memory>
#include <ostream>
#include <optional>
#include <string>
#include <vector>

#include <cordon/abi.h>

#include "agents/cgroup.h"
#include "bpf/features.h"
#include "common/backend.h"
#include "bpf/guard.h"
#include "events/reader.h"
#include "policy/compiler.h"
#include "policy/model.h"

namespace cordon::testing {

/// The cgroup2 mount of this host (found in /proc/self/mountinfo).
const agents::Cgroup2Mount& cgroup2();

/// A fresh cgroup <root>/cordon/kt-<pid>-<n>, removed (with anything left in it) on destruction.
agents::Cgroup make_test_cgroup();

/// The kernel's real features, probed once per test binary.
bpf::Features& kernel_features();

/// A Guard of the given backend whose agent level matches cordon's test cgroups.
bpf::GuardOptions guard_options(cordon_backend backend);

/// The 1-based line of `text` where `marker` first occurs, or -1.
int line_containing(const std::string& text, const std::string& marker);

/// Adds an agent (enforce, score 1000, no policy loaded) on a make_test_cgroup cgroup; killed
/// sets the operator's kill switch.
void add_plain_agent(bpf::Guard& guard, std::uint64_t cgid, std::uint32_t agent_id, bool killed);
/// Adds an agent running a compiled policy, as the controller does.
void add_agent(bpf::Guard& guard, const agents::Cgroup& cg, const policy::Policy& p,
               const policy::CompiledPolicy& c);

/// Forks a child that first joins `dir` (when given) and then returns fn()'s value as its exit
/// code. Setup failures in the child exit with kChildSetupFailed.
inline constexpr int kChildSetupFailed = 99;
/// A UDP port on 127.0.0.1 that was free a moment ago (for a server the test starts).
std::uint16_t free_loopback_port();

pid_t spawn_in(const std::optional<std::string>& cgroup_dir, const std::function<int()>& fn);

struct Exit {
    bool signaled = false;
    int code = -1;   ///< exit code when !signaled
    int signal = 0;  ///< terminating signal when signaled
    bool operator==(const Exit&) const = default;
};
Exit wait_exit(pid_t pid);
inline Exit exited(int code) { return {.signaled = false, .code = code, .signal = 0}; }
inline Exit killed_by(int sig) { return {.signaled = true, .code = -1, .signal = sig}; }
std::string describe(const Exit& e);
inline void PrintTo(const Exit& e, std::ostream* os) { *os << describe(e); }

/// A loaded backend with one agent running a policy, in a fresh test cgroup.
struct TestAgent {
    TestAgent(cordon_backend backend, const std::string& policy_yaml,
              const policy::Context& ctx, std::uint32_t ringbuf_bytes = 0);
    bpf::Guard guard;
    agents::Cgroup cg;
    policy::Policy policy;
    policy::CompiledPolicy compiled;
    /// The source line of a rule id (0 for none).
    int line_of(std::uint32_t rule_id) const;
};

/// Program sets loaded once per (backend, policy) and shared by the cases of a table: loading and
/// verifying takes seconds under the VM tier's emulated CPU. clear() unloads them all.
class LoadedGuards {
public:
    TestAgent& get(cordon_backend backend, const std::string& policy_yaml,
                   const policy::Context& ctx);
    void clear() { loaded_.clear(); }

private:
    std::map<std::pair<cordon_backend, std::string>, std::unique_ptr<TestAgent>> loaded_;
};

/// One case's agent under a shared program set: a cgroup and map entry of its own, removed on
/// destruction. Events that earlier cases left in the ring buffer are discarded first.
class CaseAgent {
public:
    explicit CaseAgent(TestAgent& shared);
    ~CaseAgent();
    CaseAgent(const CaseAgent&) = delete;
    CaseAgent& operator=(const CaseAgent&) = delete;
    int line_of(std::uint32_t rule_id) const { return shared_.line_of(rule_id); }

    bpf::Guard& guard;
    agents::Cgroup cg;

private:
    TestAgent& shared_;
};

/// Skips the current test when the kernel cannot run `backend`, printing the kernel's reason.
/// Returns true when skipped.
bool skip_unless_backend(cordon_backend backend);
/// The kernel's reasons: each probe that keeps `backend` from running, with its detail.
std::string backend_probe_detail(cordon_backend backend);

/// Every event currently in the guard's ring buffer.
std::vector<events::Event> drain_events(const bpf::Guard& guard);

/// Ids of every BPF program loaded on the system now (through bpf_prog_get_next_id).
std::vector<std::uint32_t> loaded_program_ids();

} // namespace cordon::testing
