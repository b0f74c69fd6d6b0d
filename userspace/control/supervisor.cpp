// SPDX-License-Identifier: Apache-2.0
#include "control/supervisor.h"

#include <fcntl.h>
#include <unistd.h>

#include <unordered_map>

#include "agents/cgroup.h"
#include "common/backend.h"
#include "common/clock.h"
#include "common/error.h"

namespace cordon::control {

bool ftrace_switched_off()
{
    // LSM and fmod_ret programs run from ftrace trampolines: with kernel.ftrace_enabled at 0
    // none of them runs. An agent cannot write the knob (tamper protection); whoever does
    // switches every guard off.
    static const int fd = ::open("/proc/sys/kernel/ftrace_enabled", O_RDONLY | O_CLOEXEC);
    char c = '1';
    return fd >= 0 && ::pread(fd, &c, 1, 0) == 1 && c == '0';
}

void refuse_if_ftrace_off(cordon_backend backend)
{
    if (uses_trampolines(backend) && ftrace_switched_off())
        throw Error("kernel.ftrace_enabled is 0, so the " + std::string(backend_name(backend)) +
                    " backend's programs are never called; set it to 1 (sysctl "
                    "kernel.ftrace_enabled=1) or use --backend compat");
}

Supervisor::Supervisor(cordon_backend backend) : trampolines_(uses_trampolines(backend))
{
    if (trampolines_)
        (void)ftrace_switched_off(); // opens the knob now, before any agent runs
}

void Supervisor::forget(std::uint64_t cgroup_id)
{
    requested_.erase(cgroup_id);
    frozen_handled_.erase(cgroup_id);
    std::erase_if(killed_handled_, [&](const auto& k) { return k.first == cgroup_id; });
    last_kill_ns_.erase(cgroup_id);
}

std::vector<SupervisorAction> Supervisor::pass(const std::vector<bpf::AgentEntry>& kernel,
                                               const std::vector<Watched>& watched)
{
    std::vector<SupervisorAction> out;
    const bool was_off = guard_off_;
    guard_off_ = trampolines_ && ftrace_switched_off();
    // Only the entries that need action are indexed: the common case is none.
    std::unordered_map<std::uint64_t, const bpf::AgentEntry*> flagged;
    std::unordered_map<std::uint64_t, std::uint32_t> present;
    for (const auto& e : kernel) {
        present.emplace(e.cgid, e.agent.agent_id);
        const bool killed = !e.live || cordon_agent_killed(&e.agent, &*e.live);
        if (killed || cordon_agent_frozen(&e.agent, &*e.live))
            flagged.emplace(e.cgid, &e);
    }
    for (const auto& w : watched) {
        const auto p = present.find(w.cgroup_id);
        const auto f = flagged.find(w.cgroup_id);
        if (guard_off_) {
            if (!was_off)
                out.push_back({SupervisorAction::What::GuardOff, w.name, w.cgroup, {}});
            kill(w, p == present.end() ? 0 : p->second, out);
        } else if (p == present.end() || requested_.contains(w.cgroup_id) ||
                   (f != flagged.end() &&
                    (!f->second->live || cordon_agent_killed(&f->second->agent, &*f->second->live)))) {
            kill(w, p == present.end() ? 0 : p->second, out);
        } else if (f != flagged.end()) {
            freeze(w, *f->second, out);
        }
    }
    return out;
}

// Emptied again whenever anything is in it: a killed agent stays killed.
void Supervisor::kill(const Watched& w, std::uint32_t agent_id, std::vector<SupervisorAction>& out)
{
    // A cgroup that is gone holds nothing to kill (reconcile forgets its agent).
    std::error_code ec;
    if (!std::filesystem::exists(w.cgroup, ec))
        return;
    if (w.only_cgroup) {
        try {
            if (agents::cgroup_id(w.cgroup) != w.only_cgroup)
                return; // another agent's cgroup now (reconcile ends this one)
        } catch (const Error&) {
            return; // gone meanwhile
        }
    }
    const bool first = killed_handled_.insert({w.cgroup_id, agent_id}).second;
    const auto now = monotonic_ns();
    auto& last = last_kill_ns_[w.cgroup_id];
    if (!first && (now - last < kRekillNs || !agents::cgroup_populated(w.cgroup)))
        return;
    std::string error;
    try {
        agents::kill_cgroup(w.cgroup);
        last = now;
    } catch (const Error& e) {
        error = e.what();
    }
    if (first || !error.empty())
        out.push_back({SupervisorAction::What::Kill, w.name, w.cgroup, error});
}

// Frozen by the operator or by a freeze verdict (the kernel refuses the agent everything
// already): the cgroup is frozen, and frozen again if anyone outside cordon thaws it; only the
// operator's thaw ends a freeze.
void Supervisor::freeze(const Watched& w, const bpf::AgentEntry& e,
                        std::vector<SupervisorAction>& out)
{
    std::error_code ec;
    if (!std::filesystem::exists(w.cgroup, ec))
        return; // waiting for its path: frozen when it is made (the kernel refuses it already)
    const bool by_rule = e.live->frozen_mark == e.agent.thaw_epoch + 1;
    const auto it = frozen_handled_.find(w.cgroup_id);
    const bool first =
        by_rule && (it == frozen_handled_.end() || it->second != e.agent.thaw_epoch);
    if (!first && agents::cgroup_freeze_requested(w.cgroup))
        return;
    std::string error;
    try {
        agents::freeze_cgroup(w.cgroup, true);
    } catch (const Error& err) {
        error = err.what();
    }
    if (first)
        frozen_handled_[w.cgroup_id] = e.agent.thaw_epoch;
    out.push_back({first ? SupervisorAction::What::FreezeRule : SupervisorAction::What::Refreeze,
                   w.name, w.cgroup, error});
}

} // namespace cordon::control
