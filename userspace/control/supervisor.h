// SPDX-License-Identifier: Apache-2.0
// The one place that turns kernel state into action on an agent's cgroup: a kill flag (the
// operator's, a kill verdict's, or a missing kernel entry) empties the cgroup, a freeze mark
// freezes it (again, if anyone outside cordon thaws it), and a switched-off guard (ftrace, on the
// trampoline backends) stops every agent. cordond and the embedded `cordon run` both call it on
// every turn of their loops. It fails closed: whatever it cannot prove guarded is killed. It
// prints nothing; callers say what it did in their own words (log, actions log, terminal).
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "bpf/guard.h"

namespace cordon::control {

/// Whether kernel.ftrace_enabled is 0. The knob is opened once, on the first call (make it
/// before any agent exists): after that, no agent can keep cordon from reading it.
bool ftrace_switched_off();

/// Throws Error naming the fix when the backend's programs run from trampolines and ftrace is
/// switched off: CMD must not start unguarded until the first supervision pass.
void refuse_if_ftrace_off(cordon_backend backend);

/// An agent the supervisor watches: its name (for reports), cgroup and key (cgroup_id: the key
/// of its kernel entries). only_cgroup, when set: the cgroup at `cgroup` is acted on only while
/// it has this id (a template's child: a cgroup made again at its path is another agent).
struct Watched {
    std::string name;
    std::filesystem::path cgroup;
    std::uint64_t cgroup_id = 0;
    std::uint64_t only_cgroup = 0;
};

/// What one pass did, for the caller to report.
struct SupervisorAction {
    enum class What {
        Kill,          ///< killed (first time for this agent: its flag, a verdict or no entry)
        GuardOff,      ///< the kernel runs none of cordon's programs: every agent is killed
        FreezeRule,    ///< a freeze verdict or a freezing tier: frozen for review
        Refreeze,      ///< thawed outside cordon: frozen again
    };
    What what;
    std::string agent;
    std::filesystem::path cgroup;
    std::string error; ///< empty when the cgroup write worked
};

class Supervisor {
public:
    explicit Supervisor(cordon_backend backend);

    /// One pass over the agents cordon guards, given every entry the kernel has (Guard::agents).
    /// A watched agent without a kernel entry is not guarded at all, so it is killed (fails
    /// closed). Cheap in the common case: only flagged agents cost a cgroup access.
    std::vector<SupervisorAction> pass(const std::vector<bpf::AgentEntry>& kernel,
                                       const std::vector<Watched>& watched);
    /// A kill verdict's event was read before the flag is seen (the embedded run): kill now.
    void kill_requested(std::uint64_t cgroup_id) { requested_.insert(cgroup_id); }
    /// The operator thawed the agent: a later freeze verdict is a new one.
    void thawed(std::uint64_t cgroup_id) { frozen_handled_.erase(cgroup_id); }
    /// The agent is gone: forget what was done to it.
    void forget(std::uint64_t cgroup_id);
    /// Whether the last pass found the guard switched off (ftrace_enabled 0).
    bool guard_off() const { return guard_off_; }

private:
    void kill(const Watched& w, std::uint32_t agent_id, std::vector<SupervisorAction>& out);
    void freeze(const Watched& w, const bpf::AgentEntry& e, std::vector<SupervisorAction>& out);

    bool trampolines_;
    bool guard_off_ = false;
    std::set<std::uint64_t> requested_;
    /// Kill flags already reported, by (cgroup id, agent id): an agent attached again to the
    /// same cgroup has a fresh id, so its kill is reported (and carried out) again.
    std::set<std::pair<std::uint64_t, std::uint32_t>> killed_handled_;
    /// When each killed cgroup was last written cgroup.kill (CLOCK_MONOTONIC ns): again at most
    /// every kRekillNs, not on every pass. Each write walks every task of the cgroup, and a pass
    /// may come every few milliseconds at real-time priority while a storm dies; after the
    /// first write no task in it can fork (SIGKILL is pending), so only a process moved in from
    /// outside needs the next one.
    std::map<std::uint64_t, std::int64_t> last_kill_ns_;
    static constexpr std::int64_t kRekillNs = 100'000'000;
    /// Freeze verdicts already carried out, by cgroup id: the thaw epoch they marked.
    std::map<std::uint64_t, std::uint32_t> frozen_handled_;
};

} // namespace cordon::control
