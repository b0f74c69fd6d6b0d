// SPDX-License-Identifier: Apache-2.0
#include "control/controller.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <random>
#include <regex>

#include <fmt/format.h>
#include <openssl/evp.h>
#include <spdlog/spdlog.h>

#include "bpf/features.h"
#include "common/backend.h"
#include "common/clock.h"
#include "common/error.h"
#include "policy/parser.h"
#include "policy/pipeline.h"
#include "policy/trust.h"

namespace cordon::control {

namespace fs = std::filesystem;

std::string sha256_hex(const std::string& data)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    if (EVP_Digest(data.data(), data.size(), md, &len, EVP_sha256(), nullptr) != 1)
        throw Error("SHA-256 failed (OpenSSL)");
    std::string out;
    for (unsigned i = 0; i < len; ++i)
        out += fmt::format("{:02x}", md[i]);
    return out;
}

PreparedPolicy accept_prepared(policy::Prepared prepared, const std::string& text,
                               const std::string& file, const policy::Context& ctx, bool overlay)
{
    if (!prepared.policy) {
        std::string msg = fmt::format("the {} is not valid; nothing was changed:",
                                      overlay ? "task overlay" : "policy");
        for (const auto& d : prepared.errors)
            msg += "\n" + d.str();
        throw Error(msg);
    }
    PreparedPolicy out{.policy = std::move(*prepared.policy), .file = file,
                       .sha256 = sha256_hex(text), .warnings = {}, .context = ctx};
    for (const auto& w : prepared.warnings)
        out.warnings.push_back(w.str());
    return out;
}

PreparedPolicy prepare_document(const std::string& text, const std::string& file,
                                const policy::Context& ctx, policy::Resolver& resolver,
                                bool overlay, std::optional<policy::Mode> mode)
{
    const auto kind =
        overlay ? policy::DocumentKind::TaskOverlay : policy::DocumentKind::AgentPolicy;
    return accept_prepared(policy::prepare_document(text, file, ctx, kind, mode, resolver), text,
                           file, ctx, overlay);
}

PreparedPolicy prepare_policy(const std::string& text, const std::string& file,
                              const policy::Context& ctx, std::optional<policy::Mode> mode,
                              policy::Resolver& resolver)
{
    return prepare_document(text, file, ctx, resolver, false, mode);
}

cordon_backend pick_backend(const std::string& wanted)
{
    bpf::Features f(bpf::kernel_probe_source());
    const auto best = bpf::choose_backend(f);
    if (wanted == "auto") {
        if (best == CORDON_BACKEND_NONE)
            throw Error("no backend can run on this kernel; run `cordon doctor` for the reason");
        return best;
    }
    const auto b = backend_from_name(wanted);
    if (!b)
        throw Error("unknown backend '" + wanted + "'; expected auto, lsm, fmod_ret or compat");
    if (const auto why = bpf::backend_blockers_text(f, *b); !why.empty()) {
        throw Error(fmt::format("the {} backend is not usable here ({}); use --backend auto "
                                "(here: {}), and see `cordon doctor`",
                                wanted, why, bpf::backend_name(best)));
    }
    return *b;
}

std::string random_suffix()
{
    std::random_device rd;
    return fmt::format("{:06x}", rd() & 0xffffff);
}

namespace {

std::int64_t now_unix()
{
    using namespace std::chrono;
    return duration_cast<seconds>(system_clock::now().time_since_epoch()).count();
}


// What a record keeps of a policy: where it came from and the source line of each rule.
void describe_policy(AgentRecord& r, const PreparedPolicy& p)
{
    r.policy_file = p.file;
    r.policy_name = p.policy.name;
    r.policy_sha256 = p.sha256;
    r.context = p.context;
    r.rule_sources.clear();
    r.tier_names.clear();
    for (const auto& t : p.policy.trust.tiers)
        r.tier_names.push_back(t.name);
    for (const auto& rule : p.policy.rules)
        r.rule_sources.push_back(rule.pos.line ? fmt::format("{}:{}", p.file, rule.pos.line) : "");
}

bool owner_alive(const AgentRecord& r)
{
    return r.owner_pid && process_start_time(*r.owner_pid) == r.owner_start;
}

} // namespace

Controller::Controller(const ControllerOptions& opts) : opts_(opts), mount_(agents::cgroup2_mount())
{
    if (opts.pin_dir && bpf::Guard::pinned(*opts.pin_dir)) {
        guard_ = bpf::Guard::adopt(*opts.pin_dir);
        adopted_ = true;
    } else {
        guard_ = std::make_unique<bpf::Guard>(bpf::GuardOptions{
            .backend = pick_backend(opts.backend),
            .net_attach_cgroup = mount_.mount_point,
            .pin_dir = opts.pin_dir,
            .ringbuf_bytes = opts.ringbuf_bytes});
    }
    if (opts.registry_dir) {
        if (adopted_)
            agents_ = load_registry(*opts.registry_dir);
        else // records of a set that is gone (torn down): nothing enforces them any more
            for (const auto& r : load_registry(*opts.registry_dir))
                remove_record(*opts.registry_dir, r.name);
    }
    // cgroups that cordon made, taken back so that they can be killed and removed later.
    // Only the very cgroup the record names (same id): a cgroup made since under the same name
    // (another cordon run's) is never killed or removed on this record's behalf.
    for (const auto& r : agents_)
        if (r.origin == Origin::Run && fs::exists(r.cgroup)) {
            try {
                if (agents::cgroup_id(r.cgroup) == r.cgroup_id)
                    owned_.emplace(r.name, agents::Cgroup::adopt(mount_, r.cgroup));
            } catch (const Error& e) {
                spdlog::warn("agent {}: {}", r.name, e.what());
            }
        }
    // Kernel entries with no record (a registry removed by hand) stay enforced: their policy
    // is kept, and `cordon teardown` is the way to clear them.
    for (const auto& e : guard_->agents())
        if (std::none_of(agents_.begin(), agents_.end(),
                         [&](const AgentRecord& r) { return r.cgroup_id == e.cgid; }))
            spdlog::warn("the kernel guards cgroup id {} (policy {}) with no record of it in the "
                         "registry; it stays enforced until `cordon teardown`",
                         e.cgid, e.agent.policy_id);
}

Controller::~Controller()
{
    if (opts_.pin_dir)
        for (auto& [name, cg] : owned_)
            cg.release(); // the agents outlive this process, still enforced by the pinned maps
}

void Controller::save(const AgentRecord& r)
{
    if (opts_.registry_dir)
        save_record(*opts_.registry_dir, r);
}

const AgentRecord* Controller::find(const std::string& name) const
{
    for (const auto& r : agents_)
        if (r.name == name)
            return &r;
    return nullptr;
}

const agents::Cgroup& Controller::cgroup(const std::string& name) const
{
    const auto it = owned_.find(name);
    if (it == owned_.end())
        throw Error("agent " + name + " has no cgroup of cordon's own");
    return it->second;
}

namespace {

// `cordon attach`'s cgroup, canonical, once it is known to be one cordon may guard: a cgroup v2
// directory that is not the root, not the run agents' subtree, and not cordon's own.
fs::path attachable_cgroup(const agents::Cgroup2Mount& mount, const fs::path& cgroup)
{
    const fs::path subtree = mount.mount_point / agents::kSubtree;
    std::error_code ec;
    const fs::path dir = fs::canonical(cgroup, ec);
    if (ec || !fs::is_directory(dir))
        throw Error("cannot attach " + cgroup.string() + ": " +
                    (ec ? ec.message() : "not a directory"));
    if (!agents::cgroup_within(dir, mount.mount_point) || !fs::exists(dir / "cgroup.procs"))
        throw Error("cannot attach " + dir.string() + ": not a cgroup v2 directory below " +
                    mount.mount_point.string());
    if (dir == mount.mount_point)
        throw Error("cannot attach the root cgroup: it holds every process of the host, "
                    "cordon included");
    if (dir == subtree)
        throw Error("cannot attach " + dir.string() + ": it holds every agent that "
                    "`cordon run` starts");
    const auto self = agents::process_cgroup(mount, static_cast<int>(::getpid()));
    if (self && (*self == dir || agents::cgroup_within(*self, dir)))
        throw Error("cannot attach " + dir.string() + ": cordon itself runs in it (" +
                    self->string() + "); an agent may not contain its guard");
    return dir;
}

// Agents never nest: one process, one agent, one policy (docs/api.md).
void check_no_nesting(const std::vector<AgentRecord>& existing, const fs::path& dir)
{
    for (const auto& r : existing)
        if (r.cgroup == dir || agents::cgroup_within(dir, r.cgroup) || agents::cgroup_within(r.cgroup, dir))
            throw Error("cannot guard " + dir.string() + ": it is inside or above the cgroup of " +
                        "agent " + r.name + " (" + r.cgroup.string() +
                        "); agents may not nest, detach that one first");
}

} // namespace

const AgentRecord& Controller::add_agent(const NewAgent& a, const PreparedPolicy& p)
{
    static const std::regex kName("[A-Za-z0-9][A-Za-z0-9._-]{0,63}");
    const std::string name = a.name.value_or(p.policy.name + "-" + random_suffix());
    if (!std::regex_match(name, kName))
        throw Error("invalid agent name '" + name +
                    "': 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit");
    if (find(name))
        throw Error("an agent named " + name + " already exists; pick another --name");
    if (agents_.size() >= CORDON_MAX_AGENTS)
        throw Error(fmt::format("cordon guards at most {} agents at once", CORDON_MAX_AGENTS));

    const fs::path dir = a.cgroup.empty() ? mount_.mount_point / agents::kSubtree / name
                                          : attachable_cgroup(mount_, a.cgroup);
    check_no_nesting(agents_, dir);

    std::optional<agents::Cgroup> created;
    if (a.cgroup.empty())
        created.emplace(agents::Cgroup::create(mount_, name));
    AgentRecord r;
    r.name = name;
    r.cgroup = dir;
    r.cgroup_id = created ? created->id() : agents::cgroup_id(dir);
    r.level = created ? created->level() : agents::cgroup_level(mount_, dir);
    if (r.level == 0 || r.level >= CORDON_MAX_LEVEL)
        throw Error(fmt::format("cannot guard {}: it is at cgroup level {}, and agents live at "
                                "levels 1 to {}",
                                dir.string(), r.level, CORDON_MAX_LEVEL - 1));
    describe_policy(r, p);
    r.origin = a.cgroup.empty() ? Origin::Run : Origin::Attach;
    r.created = now_unix();
    if (a.owner_pid) {
        r.owner_pid = a.owner_pid;
        r.owner_start = process_start_time(*a.owner_pid);
    }
    r.policy_id = guard_->allocate_policy_id();
    r.id = guard_->allocate_agent_id();
    auto compiled = policy::compile(p.policy, r.policy_id);
    if (!compiled.compiled)
        throw Error("the policy did not compile: " + compiled.errors.at(0).str());
    guard_->load_policy(*compiled.compiled);
    // The record is saved before the kernel enforces, so that a restarted daemon never finds an
    // agent it has no record of.
    agents_.push_back(r);
    try {
        save(r);
        auto live = policy::live_for(p.policy, r.id);
        live.stamp_ns = static_cast<__u64>(monotonic_ns()); // recovery counts from now
        live.tier = tier_of(r.policy_id, live);             // the tier it starts in: no event
        guard_->add_agent(r.cgroup_id,
                          policy::agent_for(p.policy, *compiled.compiled, r.id, r.level), live);
    } catch (...) {
        agents_.pop_back();
        guard_->unload_policy(r.policy_id);
        if (opts_.registry_dir)
            remove_record(*opts_.registry_dir, r.name);
        throw;
    }
    if (created)
        owned_.emplace(r.name, std::move(*created));
    return agents_.back();
}

void Controller::forget(std::vector<AgentRecord>::iterator it)
{
    const AgentRecord r = *it;
    // A run agent is killed while still enforced, then its entries go. If its cgroup cannot be
    // emptied, Error is thrown and nothing else changes: its processes stay guarded (fails
    // closed), and the next reconcile tries again.
    if (auto c = owned_.find(r.name); c != owned_.end()) {
        std::uint64_t now_id = 0;
        try {
            now_id = agents::cgroup_id(r.cgroup);
        } catch (const Error&) {
        }
        if (now_id == r.cgroup_id)
            c->second.remove();
        else
            c->second.release(); // gone, or another cgroup under that name now: not ours
        owned_.erase(c);
    }
    guard_->remove_agent(r.cgroup_id);
    // Its tasks and grants go with it (a task or grant of a removed agent gives nothing in the
    // kernel anyway: each names its agent's cgroup).
    drop_tasks_and_grants(r);
    guard_->unload_policy(r.policy_id);
    agents_.erase(it);
    if (opts_.registry_dir)
        remove_record(*opts_.registry_dir, r.name);
}

void Controller::remove_agent(const std::string& name)
{
    auto it = std::find_if(agents_.begin(), agents_.end(),
                           [&](const AgentRecord& r) { return r.name == name; });
    if (it == agents_.end())
        throw Error("no agent named " + name + "; `cordon agents` lists them");
    forget(it);
}

void Controller::release_owner(const std::string& name)
{
    for (auto& r : agents_)
        if (r.name == name) {
            r.owner_pid.reset();
            r.owner_start = 0;
            save(r);
            return;
        }
    throw Error("no agent named " + name);
}

AgentRecord& Controller::record(const std::string& name)
{
    for (auto& r : agents_)
        if (r.name == name)
            return r;
    throw Error("no agent named " + name + "; `cordon agents` lists them");
}

std::int64_t Controller::kill(const std::string& name)
{
    const auto& r = record(name);
    change_agent(r, [](cordon_agent& a) { a.flags |= CORDON_AGENT_F_KILLED; });
    const auto flagged = monotonic_ns();
    // An owned cgroup has cgroup.kill open already (no open to stall); an attached one is
    // opened now. Either way the kernel already refuses the agent everything.
    if (auto c = owned_.find(name); c != owned_.end())
        c->second.kill();
    else
        agents::kill_cgroup(r.cgroup);
    return flagged;
}

void Controller::freeze(const std::string& name)
{
    const auto& r = record(name);
    change_agent(r, [](cordon_agent& a) { a.flags |= CORDON_AGENT_F_FROZEN; });
    agents::freeze_cgroup(r.cgroup, true);
}

void Controller::thaw(const std::string& name)
{
    const auto& r = record(name);
    const auto a = guard_->agent(r.cgroup_id);
    const auto l = guard_->live(r.cgroup_id);
    if (a && l && cordon_agent_killed(&*a, &*l))
        throw Error("agent " + name + " was killed; it stays stopped until it is detached");
    change_agent(r, [](cordon_agent& next) {
        next.flags &= ~static_cast<__u32>(CORDON_AGENT_F_FROZEN);
        ++next.thaw_epoch; // ends a freeze verdict's mark without writing the kernel's half
    });
    agents::freeze_cgroup(r.cgroup, false);
}

bool Controller::frozen(const AgentRecord& r) const
{
    const auto a = guard_->agent(r.cgroup_id);
    const auto l = guard_->live(r.cgroup_id);
    return a && l && cordon_agent_frozen(&*a, &*l);
}

Controller::Applied Controller::apply_policy(const std::string& name, const PreparedPolicy& p)
{
    record(name); // an unknown agent is refused before anything is loaded
    const auto id = reserve_policy_id();
    Applied out;
    bool loaded = false;
    try {
        const auto mode = load_reserved(*guard_, id, p); // loads whole or not at all
        loaded = true;
        out = switch_policy(name, p, id, mode);
    } catch (...) {
        if (loaded) // never used by any agent: no decision can hold it
            try {
                guard_->unload_policy(id);
            } catch (const Error& e) {
                spdlog::warn("agent {}: policy {} stays loaded until the next reconcile: {}",
                             name, id, e.what());
            }
        release_policy_id(id);
        throw;
    }
    release_policy_id(id);
    // Decisions that began before the switch may still hold the old policy: it goes only when
    // they have all ended. If the wait fails the old policy stays loaded, unused, and reconcile
    // removes it later (never a decision by a half-removed policy).
    try {
        unload_after_decisions(*guard_, out.old_policy);
    } catch (const Error& e) {
        spdlog::warn("agent {}: the old policy {} stays loaded until the next reconcile: {}", name,
                     out.old_policy, e.what());
    }
    release_policy_id(out.old_policy);
    return out;
}

std::uint32_t Controller::reserve_policy_id()
{
    const auto id = guard_->allocate_policy_id();
    reserved_.insert(id);
    return id;
}

std::uint8_t Controller::load_reserved(bpf::Guard& g, std::uint32_t id, const PreparedPolicy& p)
{
    auto compiled = policy::compile(p.policy, id);
    if (!compiled.compiled)
        throw Error("the policy did not compile; nothing was changed: " +
                    compiled.errors.at(0).str());
    g.load_policy(*compiled.compiled); // whole or not at all
    return compiled.compiled->settings.mode;
}

Controller::Applied Controller::switch_policy(const std::string& name, const PreparedPolicy& p,
                                              std::uint32_t id, std::uint8_t mode)
{
    AgentRecord& r = record(name);
    const auto current = guard_->agent(r.cgroup_id);
    if (!current)
        throw Error("the kernel has no entry for agent " + name + "; it is being removed");
    Applied out;
    out.old_policy = r.policy_id;
    out.new_policy = id;
    out.old_mode = current->mode;
    out.loaded_ns = monotonic_ns();
    // The record first: a daemon that dies between the two finds the record naming a loaded
    // policy the kernel does not use yet, and reconcile finishes the switch.
    const AgentRecord before = r;
    r.policy_id = id;
    describe_policy(r, p);
    cordon_agent next = *current;
    next.policy_id = id;
    next.mode = mode;
    out.new_mode = next.mode;
    try {
        save(r);
        out.recorded_ns = monotonic_ns();
        guard_->update_agent(r.cgroup_id, next); // the switch: one map write
        out.switched_ns = monotonic_ns();
    } catch (...) {
        r = before;
        try {
            save(r);
        } catch (const Error& e) {
            spdlog::error("agent {}: cannot restore its record: {}", name, e.what());
        }
        throw;
    }
    reserved_.insert(out.old_policy); // until its unload: no reconcile removes it meanwhile
    return out;
}

void Controller::unload_after_decisions(bpf::Guard& g, std::uint32_t id)
{
    g.wait_for_decisions();
    g.unload_policy(id);
}

void Controller::release_policy_id(std::uint32_t id)
{
    reserved_.erase(id);
}

void Controller::set_mode(const std::string& name, cordon_mode mode)
{
    change_agent(record(name), [mode](cordon_agent& a) { a.mode = static_cast<__u8>(mode); });
}

std::uint32_t Controller::tier_of(std::uint32_t policy_id, const cordon_agent_live& live) const
{
    // A policy already gone (the agent is being removed) has one tier left: the lowest.
    const auto p = guard_->policy_settings(policy_id);
    return p ? policy::tier_from_score(*p, live.score) : 0;
}

void Controller::repoint(AgentRecord& r, std::uint64_t new_id)
{
    // The state moves with the agent (score, mode, kill and freeze marks); a missing entry
    // starts afresh.
    cordon_agent a{};
    a.agent_id = r.id;
    a.policy_id = r.policy_id;
    a.level = static_cast<__u8>(r.level);
    const auto p = guard_->policy_settings(r.policy_id);
    a.mode = p ? p->mode : static_cast<__u8>(CORDON_MODE_ENFORCE);
    cordon_agent_live l{};
    l.score = p ? p->initial_score : 0;
    l.agent_id = r.id;
    l.stamp_ns = static_cast<__u64>(monotonic_ns());
    if (const auto old = guard_->agent(r.cgroup_id))
        a = *old;
    if (const auto old = guard_->live(r.cgroup_id))
        l = *old;
    // Tasks and grants were given to the processes of the old cgroup: they end with it.
    drop_tasks_and_grants(r);
    r.tasks.clear();
    r.grants.clear();
    r.grant_set = 0;
    a.task_id = 0;
    a.grant_set = 0;
    a.flags &= ~static_cast<__u32>(CORDON_AGENT_F_PROC_TASKS);
    guard_->add_agent(new_id, a, l);
    guard_->remove_agent(r.cgroup_id);
    r.cgroup_id = new_id;
    save(r);
}

// A `policy apply` interrupted between its record and its switch (the daemon died): the record
// names a policy that is loaded, and the kernel still uses the old one. The switch is finished.
void Controller::finish_apply(AgentRecord& r, std::vector<std::string>& changes)
{
    const auto a = guard_->agent(r.cgroup_id);
    if (!a || a->policy_id == r.policy_id)
        return;
    const auto settings = guard_->policy_settings(r.policy_id);
    if (!settings)
        return; // the record's policy never loaded: the kernel's stays (it is complete)
    cordon_agent next = *a;
    next.policy_id = r.policy_id;
    next.mode = settings->mode;
    guard_->update_agent(r.cgroup_id, next);
    changes.push_back(fmt::format("{}: finished an interrupted policy apply (policy {} -> {})",
                                  r.name, a->policy_id, r.policy_id));
}

std::vector<std::string> Controller::reconcile()
{
    std::vector<std::string> changes;
    for (size_t i = 0; i < agents_.size();) {
        auto& r = agents_[i];
        std::string why;
        std::error_code ec;
        const bool exists = fs::exists(r.cgroup, ec);
        std::optional<std::uint64_t> id;
        if (exists) {
            try {
                id = agents::cgroup_id(r.cgroup);
            } catch (const Error&) {
                ++i; // unreadable for now: unknown, so left as it is (never "gone" by mistake)
                continue;
            }
        }
        if (exists && *id != r.cgroup_id && r.origin == Origin::Attach) {
            // A service restart makes a new cgroup at the same path: the agent is the unit, so
            // the guard follows it there.
            try {
                repoint(r, *id);
                changes.push_back(r.name + ": its cgroup was made again (a restart); guarding the "
                                           "new one");
            } catch (const Error& e) {
                changes.push_back(r.name + ": cannot guard its new cgroup: " + e.what());
            }
            ++i;
            continue;
        }
        if (!exists)
            why = "its cgroup is gone";
        else if (*id != r.cgroup_id)
            why = "its cgroup was replaced by another";
        else if (r.owner_pid && !owner_alive(r))
            why = fmt::format("its cordon run (pid {}) is gone", *r.owner_pid);
        else if (r.origin == Origin::Run && !r.owner_pid && !agents::cgroup_populated(r.cgroup))
            why = "all its processes ended";
        else if (!guard_->agent(r.cgroup_id))
            why = "the kernel has no entry for it";
        if (why.empty()) {
            finish_apply(r, changes);
            // Tasks the kernel no longer has (ended while no daemon ran to see it) are over.
            const auto before = r.tasks.size();
            std::erase_if(r.tasks, [&](const TaskRecord& t) {
                if (guard_->task(t.number))
                    return false;
                std::erase_if(r.grants, [&](const GrantRecord& g) { return g.task == t.id; });
                retire(t.overlay_id);
                retire(t.grant_set);
                changes.push_back(r.name + ": task " + t.id + " is no longer in the kernel; ended");
                return true;
            });
            if (r.tasks.size() != before)
                save(r);
            drop_unknown_state(r, changes);
            ++i;
            continue;
        }
        try {
            const std::string name = r.name;
            forget(agents_.begin() + static_cast<std::ptrdiff_t>(i));
            changes.push_back(name + ": removed, " + why);
        } catch (const Error& e) {
            changes.push_back(r.name + ": " + why + ", but it cannot be ended yet (" + e.what() +
                              "); it stays guarded");
            ++i;
        }
    }
    remove_unused_policies();
    return changes;
}

// Policies that no agent uses (a daemon that died between load and record); a policy a kernel
// entry still names stays (fails closed: never an agent with half a policy). Once per start also
// the rules whose policy has no settings, left by a daemon that died while a worker loaded or
// unloaded them: they decide nothing (no agent can name a policy without settings), but they
// fill the maps.
void Controller::remove_unused_policies()
{
    collect_retired();
    const auto used = policies_in_use();
    for (auto pid : guard_->policy_ids())
        if (!std::binary_search(used.begin(), used.end(), pid))
            guard_->unload_policy(pid);
    if (!orphans_swept_) {
        orphans_swept_ = true;
        if (const auto n = guard_->remove_orphan_rules(used))
            spdlog::warn("removed {} rules of policies that a stopped daemon left half loaded or "
                         "half unloaded",
                         n);
    }
}

} // namespace cordon::control
