// SPDX-License-Identifier: Apache-2.0
// Trust, tasks and grants of the controller (docs/api.md, docs/policy.md). The kernel decides
// with them on its own clock: a TTL or a grant's expiry takes effect whether or not this process
// runs; what is here keeps the records, compiles overlays and grant sets, and cleans up.
#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <regex>
#include <set>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "common/clock.h"
#include "common/error.h"
#include "control/controller.h"
#include "policy/grant.h"
#include "policy/parser.h"

namespace cordon::control {

namespace {

std::int64_t now_unix_ms()
{
    using namespace std::chrono;
    return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

constexpr std::uint64_t kMinGrantTtlMs = 1000;
constexpr std::uint64_t kMaxTtlMs = 24ull * 3600 * 1000;

// Every rule id of a policy gets `flag` (an overlay's rules name themselves so in events).
void mark_rules(policy::Policy& p, std::uint32_t flag)
{
    for (auto* rc : {&p.exec, &p.files})
        for (auto& r : rc->rules)
            r.id |= flag;
    for (auto* rc : {&p.network, &p.inbound})
        for (auto& r : rc->rules)
            r.id |= flag;
}

// The grants of one set as a policy whose every rule allows, named CORDON_RULE_GRANT | id.
// Longest-lived first: where two grants compile to the same entry, the one that lasts wins.
policy::Policy grant_policy(std::vector<const GrantRecord*> grants)
{
    std::stable_sort(grants.begin(), grants.end(), [](const auto* a, const auto* b) {
        return a->expires_ns > b->expires_ns;
    });
    policy::Policy p;
    p.name = "grants";
    p.overlay = true;
    for (const auto* g : grants) {
        const std::uint32_t id = CORDON_RULE_GRANT | g->id;
        if (g->kind == GrantKind::Connect) {
            policy::NetRule r;
            r.id = id;
            r.host = g->target;
            r.resolved = g->cidrs;
            r.ports = g->ports;
            r.protocols = g->protocols;
            r.action = policy::Action::Allow;
            p.network.rules.push_back(std::move(r));
            continue;
        }
        policy::PathRule r;
        r.id = id;
        r.path = g->path;
        r.written = g->target;
        r.dir = g->path.size() > 1 && g->path.back() == '/';
        r.action = policy::Action::Allow;
        if (g->kind == GrantKind::Exec) {
            p.exec.rules.push_back(std::move(r));
        } else {
            r.access = g->kind == GrantKind::Read ? policy::kRead : policy::kWrite;
            p.files.rules.push_back(std::move(r));
        }
    }
    return p;
}

// The thread group (process) a thread id belongs to, from /proc/ID/status; 0 if gone.
int thread_group_of(int tid)
{
    std::ifstream in("/proc/" + std::to_string(tid) + "/status");
    for (std::string line; std::getline(in, line);)
        if (line.starts_with("Tgid:"))
            return std::atoi(line.c_str() + 5);
    return 0;
}

void check_task_id(const std::string& id)
{
    static const std::regex kId("[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}");
    if (!std::regex_match(id, kId))
        throw Error("invalid task id '" + id + "': 1 to 128 letters, digits, '.', '_', ':', "
                    "'@' or '-', starting with a letter or digit");
}

} // namespace

PreparedPolicy prepare_overlay(const std::string& text, const std::string& file,
                               const policy::Context& ctx, policy::Resolver& resolver)
{
    return prepare_document(text, file, ctx, resolver, true, std::nullopt);
}

// ---- trust ---------------------------------------------------------------------------------

Controller::Trust Controller::trust(const std::string& name) const
{
    const auto* r = find(name);
    if (!r)
        throw Error("no agent named " + name + "; `cordon agents` lists them");
    const auto a = guard_->agent(r->key);
    const auto l = guard_->live(r->key);
    const auto p = guard_->policy_settings(r->policy_id);
    if (!a || !l || !p)
        throw Error("the kernel has no state for agent " + name + "; it is being removed");
    Trust t;
    t.live = *l;
    t.scoring = p->ntiers > 1 || p->penalty_deny || p->penalty_kill || p->recovery_per_minute ||
                p->burst_denials || p->initial_score != 1000;
    t.recovery_per_minute = p->recovery_per_minute;
    cordon_agent_live now = *l;
    // What the kernel will compute at the agent's next decision (cordon_trust_refresh).
    if (a->score_set_seq != l->set_seq) {
        now.score = std::min<std::uint32_t>(a->score_set, 1000);
    } else if (p->recovery_per_minute && l->score < 1000) {
        const std::uint64_t per_point = 60'000'000'000ull / p->recovery_per_minute;
        const auto clock = static_cast<std::uint64_t>(monotonic_ns());
        if (clock > l->stamp_ns) {
            const std::uint64_t points = std::min<std::uint64_t>((clock - l->stamp_ns) / per_point, 1000);
            now.score = static_cast<std::uint32_t>(std::min<std::uint64_t>(l->score + points, 1000));
        }
    }
    t.score = now.score;
    t.tier = tier_of(r->policy_id, now);
    t.tier_name = t.tier < r->tier_names.size() ? r->tier_names[t.tier] : std::to_string(t.tier);
    return t;
}

Controller::Trust Controller::set_score(const std::string& name, std::uint32_t score)
{
    if (score > 1000)
        throw Error(fmt::format("score {} is out of range; expected 0 to 1000", score));
    const auto& r = record(name);
    const auto before = trust(name);
    change_agent(r, [score](cordon_agent& a) {
        a.score_set = score;
        ++a.score_set_seq;
    });
    auto after = trust(name);
    const auto p = guard_->policy_settings(r.policy_id);
    if (p && after.tier != before.tier) {
        const auto on = p->tier_on_enter[after.tier % CORDON_MAX_TIERS];
        if (on == CORDON_ENTER_KILL)
            kill(name);
        else if (on == CORDON_ENTER_FREEZE)
            freeze(name);
    }
    return after;
}

// ---- tasks ---------------------------------------------------------------------------------

namespace {

// What stops a task before anything changes: a bad or duplicate id, a second agent-wide task,
// too many tasks, a TTL out of range.
void check_new_task(const std::string& name, const AgentRecord& r, const Controller::TaskSpec& spec)
{
    check_task_id(spec.id);
    for (const auto& t : r.tasks) {
        if (t.id == spec.id)
            throw Error("agent " + name + " has a task " + spec.id + " already; end it first "
                        "(`cordon task end " + name + " --id " + spec.id + "`)");
        if (!spec.pid && !t.pid)
            throw Error("agent " + name + " is in task " + t.id + " already; end it first, or "
                        "bind the new task to one process with --pid");
    }
    if (r.tasks.size() >= CORDON_MAX_TASKS_PER_AGENT)
        throw Error(fmt::format("agent {} has {} tasks; at most {} at once", name,
                                r.tasks.size(), CORDON_MAX_TASKS_PER_AGENT));
    if (spec.ttl_ms && (spec.ttl_ms < kMinGrantTtlMs || spec.ttl_ms > kMaxTtlMs))
        throw Error("a task's --ttl must be from 1s to 24h");
}

// A task binds a live process (not a thread) of its own agent that no task binds yet. Returns
// the process's start time, which later tells it from another process that reuses its pid.
std::uint64_t check_task_process(bpf::Guard& guard, const agents::Cgroup2Mount& mount,
                                 const std::string& name, const AgentRecord& r, int pid)
{
    if (pid <= 0)
        throw Error(fmt::format("--pid {} is not a process id", pid));
    const std::uint64_t pid_start = process_start_time(pid);
    const auto cg = agents::process_cgroup(mount, pid);
    if (!pid_start || !cg)
        throw Error(fmt::format("process {} does not exist", pid));
    // A thread id has a /proc entry too, but the kernel binds processes (by tgid): a
    // thread's id would bind nothing now and whatever process gets that number later.
    if (const auto tgid = thread_group_of(pid); tgid != pid)
        throw Error(fmt::format("{} is a thread of process {}, not a process; bind the "
                                "process (--pid {})",
                                pid, tgid, tgid));
    if (*cg != r.cgroup && !agents::cgroup_within(*cg, r.cgroup))
        throw Error(fmt::format("process {} is not in agent {} (its cgroup is {}); a task "
                                "binds a process of its own agent",
                                pid, name, cg->string()));
    for (const auto& [tgid, pt] : guard.bound_processes())
        if (tgid == static_cast<std::uint32_t>(pid))
            throw Error(fmt::format("process {} is bound to a task already", pid));
    return pid_start;
}

// The task's record: its kernel number, its expiry, and its overlay compiled and loaded (whole
// or not at all). Nothing names the task in the kernel yet.
TaskRecord make_task(bpf::Guard& guard, Controller::TaskSpec& spec, std::uint64_t pid_start)
{
    TaskRecord t;
    t.id = spec.id;
    t.pid = spec.pid;
    t.pid_start = pid_start;
    t.number = guard.allocate_task_id();
    t.begun_ms = now_unix_ms();
    if (spec.ttl_ms) {
        t.expires_ns = static_cast<std::uint64_t>(monotonic_ns()) + spec.ttl_ms * 1'000'000ull;
        t.expires_ms = t.begun_ms + static_cast<std::int64_t>(spec.ttl_ms);
    }
    if (spec.overlay) {
        auto& ov = spec.overlay->policy;
        mark_rules(ov, CORDON_RULE_OVERLAY);
        t.overlay_id = guard.allocate_policy_id();
        auto compiled = policy::compile(ov, t.overlay_id);
        if (!compiled.compiled)
            throw Error("the overlay did not compile; nothing was changed: " +
                        compiled.errors.at(0).str());
        guard.load_policy(*compiled.compiled); // whole or not at all
        t.overlay_file = spec.overlay->file;
        t.overlay_name = ov.name;
        for (const auto& rule : ov.rules)
            t.overlay_sources.push_back(
                rule.pos.line ? fmt::format("{}:{}", spec.overlay->file, rule.pos.line) : "");
    }
    return t;
}

} // namespace

const TaskRecord& Controller::begin_task(const std::string& name, TaskSpec spec)
{
    AgentRecord& r = record(name);
    check_new_task(name, r, spec);
    const auto current = guard_->agent(r.key);
    if (!current)
        throw Error("the kernel has no entry for agent " + name + "; it is being removed");
    const std::uint64_t pid_start =
        spec.pid ? check_task_process(*guard_, mount_, name, r, *spec.pid) : 0;
    const TaskRecord t = make_task(*guard_, spec, pid_start);
    // The kernel's task first, then what names it (the agent, or the process): a decision never
    // meets a task number without its state.
    try {
        guard_->set_task(t.number, cordon_task{.cgid = r.key,
                                               .expires_ns = t.expires_ns,
                                               .overlay_id = t.overlay_id,
                                               .grant_set = 0,
                                               .agent_id = r.id,
                                               ._pad0 = 0});
        if (spec.pid) {
            // The flag first: from it on the kernel looks the agent's processes up.
            change_agent(r, [](cordon_agent& a) { a.flags |= CORDON_AGENT_F_PROC_TASKS; });
            guard_->bind_process(static_cast<std::uint32_t>(*spec.pid), t.number);
            // Still the same process after the binding: its pid was not reused in between (a
            // process that exits after this point takes its binding with it, at exit).
            if (process_start_time(*spec.pid) != pid_start)
                throw Error(fmt::format("process {} exited while its task began", *spec.pid));
        } else {
            change_agent(r, [&](cordon_agent& a) { a.task_id = t.number; });
        }
        r.tasks.push_back(t);
        save(r);
    } catch (...) {
        if (!r.tasks.empty() && r.tasks.back().number == t.number)
            r.tasks.pop_back();
        if (!spec.pid && guard_->agent(r.key) &&
            guard_->agent(r.key)->task_id == t.number)
            change_agent(r, [&](cordon_agent& a) { a.task_id = current->task_id; });
        guard_->remove_task(t.number);
        if (t.overlay_id)
            retire(t.overlay_id);
        throw;
    }
    return r.tasks.back();
}

void Controller::drop_task_state(AgentRecord& r, const TaskRecord& t)
{
    if (!t.pid) {
        if (const auto a = guard_->agent(r.key); a && a->task_id == t.number)
            change_agent(r, [](cordon_agent& next) { next.task_id = 0; });
    }
    guard_->remove_task(t.number); // from here the kernel gives its processes nothing of it
    // The last process-bound task gone (r.tasks no longer holds t): no lookups any more.
    if (t.pid && std::none_of(r.tasks.begin(), r.tasks.end(),
                              [](const TaskRecord& x) { return x.pid.has_value(); }))
        if (const auto a = guard_->agent(r.key);
            a && (a->flags & CORDON_AGENT_F_PROC_TASKS))
            change_agent(r, [](cordon_agent& next) {
                next.flags &= ~static_cast<__u32>(CORDON_AGENT_F_PROC_TASKS);
            });
    for (auto it = r.grants.begin(); it != r.grants.end();) {
        if (it->task == t.id) {
            guard_->remove_grant(it->id);
            it = r.grants.erase(it);
        } else {
            ++it;
        }
    }
    retire(t.overlay_id);
    retire(t.grant_set);
}

void Controller::drop_tasks_and_grants(const AgentRecord& r)
{
    for (const auto& t : r.tasks) {
        guard_->remove_task(t.number);
        retire(t.overlay_id);
        retire(t.grant_set);
    }
    for (const auto& g : r.grants)
        guard_->remove_grant(g.id);
    retire(r.grant_set);
}

void Controller::end_task(const std::string& name, const std::string& id)
{
    AgentRecord& r = record(name);
    auto it = std::find_if(r.tasks.begin(), r.tasks.end(), [&](const TaskRecord& t) {
        return id.empty() ? !t.pid : t.id == id;
    });
    if (it == r.tasks.end())
        throw Error(id.empty() ? "agent " + name + " has no agent-wide task; name one with --id"
                               : "agent " + name + " has no task " + id +
                                     "; `cordon task list " + name + "` lists them");
    const TaskRecord t = *it;
    r.tasks.erase(it);
    drop_task_state(r, t);
    save(r);
}

// ---- grants --------------------------------------------------------------------------------

const GrantRecord& Controller::grant(const std::string& name, const GrantSpec& spec,
                                     policy::Resolver& resolver)
{
    AgentRecord& r = record(name);
    if (r.grants.size() >= CORDON_MAX_GRANTS_PER_AGENT)
        throw Error(fmt::format("agent {} has {} grants; at most {} at once (revoke one, or let "
                                "one expire)",
                                name, r.grants.size(), CORDON_MAX_GRANTS_PER_AGENT));
    if (spec.ttl_ms < kMinGrantTtlMs || spec.ttl_ms > kMaxTtlMs)
        throw Error("a grant's --ttl must be from 1s to 24h");
    GrantRecord g;
    g.kind = spec.kind;
    g.target = spec.target;
    g.task = spec.task;
    g.reason = spec.reason;
    g.by = spec.by;
    auto target = policy::prepare_grant_target(spec.kind, spec.target, resolver);
    if (!target.target)
        throw Error(target.error);
    g.path = std::move(target.target->path);
    // A path is kept, listed and reported as the kernel compares it ("/a/../b" is "/b"): what
    // the operator reads back is what the grant allows.
    if (spec.kind != policy::GrantKind::Connect)
        g.target = g.path;
    g.cidrs = std::move(target.target->cidrs);
    g.ports = std::move(target.target->ports);
    g.protocols = target.target->protocols;
    std::uint64_t task_number = 0;
    if (!spec.task.empty()) {
        const auto t = std::find_if(r.tasks.begin(), r.tasks.end(),
                                    [&](const TaskRecord& x) { return x.id == spec.task; });
        if (t == r.tasks.end())
            throw Error("agent " + name + " has no task " + spec.task +
                        "; a grant binds to a live task");
        task_number = t->number;
    }
    g.id = guard_->allocate_grant_id();
    g.created_ms = now_unix_ms();
    g.expires_ns = static_cast<std::uint64_t>(monotonic_ns()) + spec.ttl_ms * 1'000'000ull;
    g.expires_ms = g.created_ms + static_cast<std::int64_t>(spec.ttl_ms);
    // The grant's entry before the set that names it: the kernel never meets a grant id without
    // its expiry (and a missing entry never allows: fails closed).
    guard_->set_grant(g.id, cordon_grant{.cgid = r.key, .expires_ns = g.expires_ns,
                                         .task_id = task_number});
    r.grants.push_back(g);
    try {
        rebuild_grants(r, g.task);
        save(r);
    } catch (...) {
        r.grants.pop_back();
        try {
            rebuild_grants(r, g.task);
        } catch (const Error& e) {
            spdlog::error("agent {}: cannot restore its grants: {}", name, e.what());
        }
        guard_->remove_grant(g.id);
        throw;
    }
    return *std::find_if(r.grants.begin(), r.grants.end(),
                         [&](const GrantRecord& x) { return x.id == g.id; });
}

void Controller::revoke(const std::string& name, std::uint32_t id)
{
    AgentRecord& r = record(name);
    const auto it = std::find_if(r.grants.begin(), r.grants.end(),
                                 [&](const GrantRecord& g) { return g.id == id; });
    if (it == r.grants.end())
        throw Error(fmt::format("agent {} has no grant {}; `cordon grants {}` lists them", name,
                                id, name));
    const std::string task = it->task;
    r.grants.erase(it);
    // The grant's entry goes first: from that write on it allows nothing, whatever the set says.
    guard_->remove_grant(id);
    rebuild_grants(r, task);
    save(r);
}

void Controller::rebuild_grants(AgentRecord& r, const std::string& task)
{
    std::vector<const GrantRecord*> set;
    for (const auto& g : r.grants)
        if (g.task == task)
            set.push_back(&g);
    std::uint32_t next = 0;
    if (!set.empty()) {
        next = guard_->allocate_policy_id();
        auto compiled = policy::compile(grant_policy(set), next);
        if (!compiled.compiled)
            throw Error("the grants do not compile together: " +
                        compiled.errors.at(0).message +
                        "; nothing was changed (too many grants for one address?)");
        guard_->load_policy(*compiled.compiled);
    }
    std::uint32_t old = 0;
    try {
        if (task.empty()) {
            old = r.grant_set;
            change_agent(r, [next](cordon_agent& a) { a.grant_set = next; });
            r.grant_set = next;
        } else {
            auto t = std::find_if(r.tasks.begin(), r.tasks.end(),
                                  [&](const TaskRecord& x) { return x.id == task; });
            if (t == r.tasks.end())
                throw Error("agent " + r.name + " has no task " + task);
            auto kt = guard_->task(t->number);
            if (!kt)
                throw Error("task " + task + " of agent " + r.name + " has ended");
            old = t->grant_set;
            kt->grant_set = next;
            guard_->set_task(t->number, *kt); // one write: the task's set switches
            t->grant_set = next;
        }
    } catch (...) {
        if (next)
            guard_->unload_policy(next);
        throw;
    }
    retire(old);
}

// ---- housekeeping --------------------------------------------------------------------------

void Controller::retire(std::uint32_t policy_id)
{
    if (policy_id)
        retired_.push_back(policy_id);
}

void Controller::collect_retired()
{
    if (retired_.empty())
        return;
    // Decisions that began before the switch may still hold a retired set: it goes once they
    // have all ended. If the wait fails, they stay loaded and unused until the next call.
    try {
        guard_->wait_for_decisions();
    } catch (const Error& e) {
        spdlog::warn("compiled sets stay loaded until the next pass: {}", e.what());
        return;
    }
    for (auto id : retired_)
        guard_->unload_policy(id);
    retired_.clear();
}

std::vector<std::string> Controller::expire()
{
    std::vector<std::string> changes;
    const auto now = static_cast<std::uint64_t>(monotonic_ns());
    for (auto& r : agents_) {
        bool changed = false;
        for (auto it = r.tasks.begin(); it != r.tasks.end();) {
            if (it->expires_ns && now >= it->expires_ns) {
                const TaskRecord t = *it;
                it = r.tasks.erase(it);
                try {
                    drop_task_state(r, t);
                    changes.push_back(r.name + ": task " + t.id + " expired");
                } catch (const Error& e) {
                    changes.push_back(r.name + ": task " + t.id + " expired (the kernel ended "
                                      "it), cleanup failed: " + e.what());
                }
                changed = true;
            } else {
                ++it;
            }
        }
        std::set<std::string> sets;
        for (auto it = r.grants.begin(); it != r.grants.end();) {
            if (now >= it->expires_ns) {
                changes.push_back(fmt::format("{}: grant {} ({} {}) expired", r.name, it->id,
                                              grant_kind_name(it->kind), it->target));
                guard_->remove_grant(it->id);
                sets.insert(it->task);
                it = r.grants.erase(it);
                changed = true;
            } else {
                ++it;
            }
        }
        for (const auto& task : sets) {
            try {
                rebuild_grants(r, task);
            } catch (const Error& e) {
                changes.push_back(r.name + ": cannot recompile its grants (expired ones allow "
                                  "nothing already): " + e.what());
            }
        }
        if (changed) {
            try {
                save(r);
            } catch (const Error& e) {
                changes.push_back(r.name + ": cannot save its record: " + e.what());
            }
        }
    }
    collect_retired();
    return changes;
}

std::vector<std::uint32_t> Controller::policies_in_use() const
{
    std::set<std::uint32_t> ids;
    for (const auto& r : agents_) {
        ids.insert(r.policy_id);
        ids.insert(r.grant_set);
        for (const auto& t : r.tasks) {
            ids.insert(t.overlay_id);
            ids.insert(t.grant_set);
        }
    }
    for (const auto& e : guard_->agents()) {
        ids.insert(e.agent.policy_id);
        ids.insert(e.agent.grant_set);
    }
    for (const auto& t : templates_) // the policy each child the kernel makes will run
        ids.insert(t.policy_id);
    for (const auto& [number, t] : guard_->tasks()) {
        ids.insert(t.overlay_id);
        ids.insert(t.grant_set);
    }
    ids.insert(reserved_.begin(), reserved_.end()); // applies under way
    ids.erase(0);
    return {ids.begin(), ids.end()};
}

void Controller::drop_unknown_state(const AgentRecord& r, std::vector<std::string>& changes)
{
    for (const auto& [number, t] : guard_->tasks())
        if (t.cgid == r.key &&
            std::none_of(r.tasks.begin(), r.tasks.end(),
                         [&](const TaskRecord& x) { return x.number == number; })) {
            guard_->remove_task(number);
            changes.push_back(fmt::format("{}: removed kernel task {} that no record names",
                                          r.name, number));
        }
    for (const auto& [id, g] : guard_->grants())
        if (g.cgid == r.key &&
            std::none_of(r.grants.begin(), r.grants.end(),
                         [&](const GrantRecord& x) { return x.id == id; })) {
            guard_->remove_grant(id);
            changes.push_back(fmt::format("{}: removed kernel grant {} that no record names",
                                          r.name, id));
        }
}

} // namespace cordon::control
