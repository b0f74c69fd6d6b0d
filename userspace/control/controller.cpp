// SPDX-License-Identifier: Apache-2.0
#include "control/controller.h"

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstring>
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
                       .sha256 = sha256_hex(text), .warnings = {}, .context = ctx, .text = text,
                       .mode = {}};
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
    auto out = accept_prepared(policy::prepare_document(text, file, ctx, kind, mode, resolver),
                               text, file, ctx, overlay);
    out.text = text;
    if (mode)
        out.mode = *mode == policy::Mode::Audit ? "audit" : "enforce";
    return out;
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
    if (r.origin == Origin::Attach || r.origin == Origin::Template) {
        r.policy_text = p.text;
        r.policy_mode = p.mode;
    }
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
        if (adopted_) {
            agents_ = load_registry(*opts.registry_dir);
            for (auto& r : agents_)
                if (r.origin == Origin::Template)
                    templates_.push_back(std::move(r));
            std::erase_if(agents_, [](const AgentRecord& r) {
                return r.origin == Origin::Template;
            });
        }
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
                         [&](const AgentRecord& r) { return r.key == e.cgid; }))
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
    if (opts_.durable_dir && (r.origin == Origin::Attach || r.origin == Origin::Template))
        save_record(*opts_.durable_dir, durable_copy(r));
}

const AgentRecord* Controller::find_template(const std::string& name) const
{
    for (const auto& t : templates_)
        if (t.name == name)
            return &t;
    return nullptr;
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

// The path of a cgroup directory as the kernel's cgroup_mkdir tracepoint names it: relative to
// the cgroup2 root, with a leading '/' ("/" for the root).
std::string rel_path(const agents::Cgroup2Mount& mount, const fs::path& dir)
{
    const auto rel = dir.lexically_normal().lexically_relative(mount.mount_point);
    return rel.empty() || rel == "." ? "/" : "/" + rel.string();
}

// The cgroup level of a path below the mount, counted from its name (it need not exist).
std::uint32_t path_level(const agents::Cgroup2Mount& mount, const fs::path& dir)
{
    std::uint32_t n = 0;
    for (const auto& part : dir.lexically_normal().lexically_relative(mount.mount_point))
        if (!part.empty() && part != ".")
            ++n;
    return n;
}

// Whether s is UTF-8 with no control character and no U+FFFD (what a client puts in place of
// bytes that are not UTF-8): a path that is not would be recorded as another path.
bool plain_text(const std::string& s)
{
    for (std::size_t i = 0; i < s.size();) {
        const auto c = static_cast<unsigned char>(s[i]);
        if (c < 0x20 || c == 0x7f)
            return false;
        const std::size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
        if (n == 0 || i + n > s.size())
            return false;
        for (std::size_t k = 1; k < n; ++k)
            if ((static_cast<unsigned char>(s[i + k]) & 0xc0) != 0x80)
                return false;
        if (s.compare(i, n, "\xef\xbf\xbd") == 0)
            return false;
        i += n;
    }
    return true;
}

// A cgroup path cordon may bind an agent or a template's children to: canonical when it exists
// (else, with `wait`, as written), below the cgroup2 root, not the run agents' subtree itself
// (a cgroup inside it may be attached: nesting with a run agent is refused as any nesting is),
// not holding cordon itself; UTF-8 text, short enough for the kernel to match.
fs::path bindable_path(const agents::Cgroup2Mount& mount, const fs::path& cgroup, bool wait,
                       bool root_ok)
{
    const fs::path subtree = mount.mount_point / agents::kSubtree;
    std::error_code ec;
    fs::path dir;
    if (!cgroup.is_absolute())
        throw Error("cannot attach " + cgroup.string() + ": the path must be absolute");
    if (!plain_text(cgroup.string()))
        throw Error("cannot attach that path: it is not UTF-8 text without control characters "
                    "(a client replaces bytes that are not with U+FFFD, which would name another "
                    "cgroup)");
    if (cgroup.string().find_first_of("*?[") != std::string::npos)
        throw Error("cannot attach " + cgroup.string() +
                    ": a glob may have one '*', in its last component only");
    if (fs::exists(cgroup, ec)) {
        dir = fs::canonical(cgroup, ec);
        if (ec || !fs::is_directory(dir))
            throw Error("cannot attach " + cgroup.string() + ": " +
                        (ec ? ec.message() : "not a directory"));
        if (!agents::cgroup_within(dir, mount.mount_point) || !fs::exists(dir / "cgroup.procs"))
            throw Error("cannot attach " + dir.string() + ": not a cgroup v2 directory below " +
                        mount.mount_point.string());
    } else if (!wait) {
        throw Error("cannot attach " + cgroup.string() + ": no such cgroup; pass --wait to guard "
                    "it from the moment it is made (a service that has not started yet)");
    } else {
        dir = cgroup.lexically_normal();
        if (dir.has_filename() == false)
            dir = dir.parent_path();
        if (!agents::cgroup_within(dir, mount.mount_point))
            throw Error("cannot attach " + dir.string() + ": it is not below the cgroup v2 root " +
                        mount.mount_point.string());
    }
    if (dir == mount.mount_point && !root_ok)
        throw Error("cannot attach the root cgroup: it holds every process of the host, "
                    "cordon included");
    if (dir == subtree)
        throw Error("cannot attach " + dir.string() + ": it holds every agent that "
                    "`cordon run` starts");
    if (rel_path(mount, dir).size() > CORDON_CGROUP_PATH_MAX)
        throw Error(fmt::format("cannot attach {}: its path below the cgroup v2 root is longer "
                                "than {} bytes",
                                dir.string(), CORDON_CGROUP_PATH_MAX));
    const auto self = agents::process_cgroup(mount, static_cast<int>(::getpid()));
    if (dir != mount.mount_point && self && (*self == dir || agents::cgroup_within(*self, dir)))
        throw Error("cannot attach " + dir.string() + ": cordon itself runs in it (" +
                    self->string() + "); an agent may not contain its guard");
    return dir;
}

// Agents never nest: one process, one agent, one policy (docs/api.md). A template counts as
// its parent's matching children.
void check_no_nesting(const std::vector<AgentRecord>& existing,
                      const std::vector<AgentRecord>& templates, const fs::path& dir)
{
    for (const auto& r : existing)
        if (r.cgroup == dir || agents::cgroup_within(dir, r.cgroup) || agents::cgroup_within(r.cgroup, dir))
            throw Error("cannot guard " + dir.string() + ": it is inside or above the cgroup of " +
                        "agent " + r.name + " (" + r.cgroup.string() +
                        "); agents may not nest, detach that one first");
    for (const auto& t : templates) {
        const fs::path parent = t.cgroup.parent_path();
        const auto rel = dir.lexically_relative(parent);
        const bool below = agents::cgroup_within(dir, parent) && rel != "." &&
                           name_matches(t.cgroup.filename().string(), rel.begin()->string());
        if (below || agents::cgroup_within(parent, dir))
            throw Error("cannot guard " + dir.string() + ": it is inside or above the cgroups of "
                        "template " + t.name + " (" + t.cgroup.string() +
                        "); agents may not nest, detach that one first");
    }
}

void check_name(const std::string& name)
{
    static const std::regex kName("[A-Za-z0-9][A-Za-z0-9._@-]{0,63}");
    if (!std::regex_match(name, kName))
        throw Error("invalid agent name '" + name + "': 1 to 64 letters, digits, '.', '_', '@' "
                    "or '-', starting with a letter or digit");
}

} // namespace

bool patterns_overlap(const std::string& a, const std::string& b)
{
    const auto sa = a.find('*'), sb = b.find('*');
    if (sa == std::string::npos)
        return name_matches(b, a);
    if (sb == std::string::npos)
        return name_matches(a, b);
    const std::string pa = a.substr(0, sa), xa = a.substr(sa + 1);
    const std::string pb = b.substr(0, sb), xb = b.substr(sb + 1);
    // The longer prefix followed by the longer suffix is a name both match, if the prefixes and
    // the suffixes agree.
    const bool prefixes = pa.starts_with(pb) || pb.starts_with(pa);
    const bool suffixes = xa.ends_with(xb) || xb.ends_with(xa);
    return prefixes && suffixes;
}

bool name_matches(const std::string& pattern, const std::string& name)
{
    const auto star = pattern.find('*');
    if (star == std::string::npos)
        return name == pattern;
    const std::string prefix = pattern.substr(0, star), suffix = pattern.substr(star + 1);
    return name.size() >= prefix.size() + suffix.size() && name.starts_with(prefix) &&
           name.ends_with(suffix);
}

const AgentRecord& Controller::add_agent(const NewAgent& a, const PreparedPolicy& p)
{
    const std::string name = a.name.value_or(p.policy.name + "-" + random_suffix());
    check_name(name);
    if (find(name) || find_template(name))
        throw Error("an agent named " + name + " already exists; pick another --name");
    if (agents_.size() >= CORDON_MAX_AGENTS)
        throw Error(fmt::format("cordon guards at most {} agents at once", CORDON_MAX_AGENTS));

    const fs::path dir = a.cgroup.empty() ? mount_.mount_point / agents::kSubtree / name
                                          : bindable_path(mount_, a.cgroup, a.wait, false);
    check_no_nesting(agents_, templates_, dir);

    std::optional<agents::Cgroup> created;
    if (a.cgroup.empty())
        created.emplace(agents::Cgroup::create(mount_, name));
    AgentRecord r;
    r.name = name;
    r.cgroup = dir;
    r.origin = a.cgroup.empty() ? Origin::Run : Origin::Attach;
    r.level = created ? created->level() : path_level(mount_, dir);
    if (r.level == 0 || r.level >= CORDON_MAX_LEVEL)
        throw Error(fmt::format("cannot guard {}: it is at cgroup level {}, and agents live at "
                                "levels 1 to {}",
                                dir.string(), r.level, CORDON_MAX_LEVEL - 1));
    describe_policy(r, p);
    r.created = now_unix();
    if (a.owner_pid) {
        r.owner_pid = a.owner_pid;
        r.owner_start = process_start_time(*a.owner_pid);
    }
    r.policy_id = guard_->allocate_policy_id();
    r.id = guard_->allocate_agent_id();
    r.key = CORDON_AGENT_KEY(r.id);
    auto compiled = policy::compile(p.policy, r.policy_id);
    if (!compiled.compiled)
        throw Error("the policy did not compile: " + compiled.errors.at(0).str());
    guard_->load_policy(*compiled.compiled);
    // The record is saved before the kernel enforces, so that a restarted daemon never finds an
    // agent it has no record of.
    agents_.push_back(r);
    try {
        auto live = policy::live_for(p.policy, r.id);
        live.stamp_ns = static_cast<__u64>(monotonic_ns()); // recovery counts from now
        live.tier = tier_of(r.policy_id, live);             // the tier it starts in: no event
        auto entry = policy::agent_for(p.policy, *compiled.compiled, r.id, r.level);
        if (a.killed) { // restored killed: refused everything from its first process on
            entry.flags |= CORDON_AGENT_F_KILLED;
            agents_.back().killed = true;
        }
        guard_->add_agent(r.key, entry, live);
        // The path before the cgroup: one made after this is bound by the kernel as it is made,
        // one that exists now is bound here; either way no process enters it unguarded.
        if (created) {
            guard_->bind_cgroup(created->id(), r.key);
            agents_.back().cgroup_id = created->id();
        } else {
            guard_->bind_path(rel_path(mount_, dir), r.key);
            std::vector<std::string> ignored;
            follow_path(agents_.back(), ignored);
        }
        save(agents_.back());
    } catch (...) {
        if (!created)
            guard_->unbind_path(rel_path(mount_, dir));
        guard_->remove_agent(r.key);
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
    // A frozen attached (or template) agent is thawed once its entries are gone: detach means
    // its processes run on unguarded, and nothing of cordon's would be left to thaw them.
    const bool thaw_after = r.origin != Origin::Run && r.cgroup_id && frozen(r);
    if (r.origin == Origin::Attach)
        guard_->unbind_path(rel_path(mount_, r.cgroup));
    guard_->remove_agent(r.key);
    if (thaw_after) {
        try {
            agents::freeze_cgroup(r.cgroup, false);
            spdlog::info("agent {}: detached while frozen; its cgroup {} is thawed", r.name,
                         r.cgroup.string());
        } catch (const Error& e) {
            spdlog::error("agent {}: detached while frozen, and its cgroup {} cannot be thawed "
                          "({}); thaw it with: echo 0 > {}/cgroup.freeze",
                          r.name, r.cgroup.string(), e.what(), r.cgroup.string());
        }
    }
    // Its tasks and grants go with it (a task or grant of a removed agent gives nothing in the
    // kernel anyway: each names its agent's key).
    drop_tasks_and_grants(r);
    if (r.origin != Origin::Child) // a child's policy is its template's
        guard_->unload_policy(r.policy_id);
    agents_.erase(it);
    if (opts_.registry_dir)
        remove_record(*opts_.registry_dir, r.name);
}

void Controller::remove_agent(const std::string& name_ref)
{
    const std::string name = name_ref; // callers pass the record's own name, which forget() frees
    if (find_template(name))
        return remove_template(name);
    auto it = std::find_if(agents_.begin(), agents_.end(),
                           [&](const AgentRecord& r) { return r.name == name; });
    if (it == agents_.end())
        throw Error("no agent named " + name + "; `cordon agents` lists them");
    const bool durable = it->origin == Origin::Attach;
    forget(it);
    // Only a detach ends an attachment for good (a reboot would restore it otherwise).
    if (durable && opts_.durable_dir)
        remove_record(*opts_.durable_dir, name);
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
    auto& r = record(name);
    change_agent(r, [](cordon_agent& a) { a.flags |= CORDON_AGENT_F_KILLED; });
    const auto flagged = monotonic_ns();
    // An owned cgroup has cgroup.kill open already (no open to stall); an attached one is
    // opened now. Either way the kernel already refuses the agent everything.
    if (auto c = owned_.find(name); c != owned_.end())
        c->second.kill();
    else if (r.cgroup_id) { // a waiting agent has no cgroup to empty: its flag waits with it
        try {
            agents::kill_cgroup(r.cgroup);
        } catch (const Error&) {
            std::error_code ec;
            if (fs::exists(r.cgroup, ec)) // removed meanwhile: the flag waits for the next one
                throw;
        }
    }
    // After the kill, never before it: kept across reboots, so that the restored agent is
    // killed from its first process on.
    if (r.origin == Origin::Attach && !r.killed) {
        r.killed = true;
        try {
            save(r);
        } catch (const Error& e) {
            spdlog::error("agent {}: its kill is in force but not recorded on disk: {}", name,
                          e.what());
        }
    }
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
    const auto a = guard_->agent(r.key);
    const auto l = guard_->live(r.key);
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
    const auto a = guard_->agent(r.key);
    const auto l = guard_->live(r.key);
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
    const auto current = guard_->agent(r.key);
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
        guard_->update_agent(r.key, next); // the switch: one map write
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

void Controller::follow_path(AgentRecord& r, std::vector<std::string>& changes)
{
    std::error_code ec;
    std::optional<std::uint64_t> id;
    if (fs::exists(r.cgroup / "cgroup.procs", ec)) {
        try {
            id = agents::cgroup_id(r.cgroup);
        } catch (const Error&) {
            return; // unreadable for now: unknown, so left as it is
        }
    }
    if (!id) {
        if (r.cgroup_id) {
            r.cgroup_id = 0;
            save(r);
            changes.push_back(r.name + ": its cgroup is gone; waiting for " + r.cgroup.string() +
                              " to be made again (its state is kept)");
        }
        return;
    }
    if (*id == r.cgroup_id)
        return;
    // The kernel bound it as it was made (cgroup_guard_mkdir); binding it here is the second
    // line, for a cgroup made while the path was not yet bound, and changes nothing otherwise.
    const auto bound = guard_->cgroup_agent(*id);
    if (bound != r.key)
        guard_->bind_cgroup(*id, r.key);
    if (r.cgroup_id)
        guard_->unbind_cgroup(r.cgroup_id);
    r.cgroup_id = *id;
    save(r);
    changes.push_back(fmt::format("{}: its cgroup was made again; guarded {}", r.name,
                                      bound == r.key ? "by the kernel as it was made"
                                                     : "now (it was made unbound)"));
}

// A `policy apply` interrupted between its record and its switch (the daemon died): the record
// names a policy that is loaded, and the kernel still uses the old one. The switch is finished.
void Controller::finish_apply(AgentRecord& r, std::vector<std::string>& changes)
{
    const auto a = guard_->agent(r.key);
    if (!a || a->policy_id == r.policy_id)
        return;
    const auto settings = guard_->policy_settings(r.policy_id);
    if (!settings)
        return; // the record's policy never loaded: the kernel's stays (it is complete)
    cordon_agent next = *a;
    next.policy_id = r.policy_id;
    next.mode = settings->mode;
    guard_->update_agent(r.key, next);
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
        if (r.origin == Origin::Attach) {
            // An attached agent outlives its cgroup: it waits for its path, and only a detach
            // ends it.
            try {
                follow_path(r, changes);
            } catch (const Error& e) {
                changes.push_back(r.name + ": cannot guard its new cgroup: " + e.what());
            }
            if (guard_->agent(r.key)) {
                maintain(r, changes);
                ++i;
                continue;
            }
            why = "the kernel has no entry for it";
        }
        const bool exists = fs::exists(r.cgroup, ec);
        std::optional<std::uint64_t> id;
        if (exists && why.empty()) {
            try {
                id = agents::cgroup_id(r.cgroup);
            } catch (const Error&) {
                ++i; // unreadable for now: unknown, so left as it is (never "gone" by mistake)
                continue;
            }
        }
        if (!why.empty()) {
            // decided above
        } else if (!exists) {
            why = "its cgroup is gone";
        } else if (*id != r.cgroup_id) {
            why = "its cgroup was replaced by another";
        } else if (r.owner_pid && !owner_alive(r)) {
            why = fmt::format("its cordon run (pid {}) is gone", *r.owner_pid);
        } else if (r.origin == Origin::Run && !r.owner_pid &&
                   !agents::cgroup_populated(r.cgroup)) {
            why = "all its processes ended";
        } else if (!guard_->agent(r.key)) {
            why = "the kernel has no entry for it";
        }
        if (why.empty()) {
            maintain(r, changes);
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
    for (const auto& t : templates_)
        adopt_children(t, changes);
    remove_unused_policies();
    return changes;
}

void Controller::maintain(AgentRecord& r, std::vector<std::string>& changes)
{
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

namespace {

// A child's agent name: its template's name, '.', its cgroup's name (characters a name may not
// hold become '_'); its id instead when that is too long.
std::string child_name(const std::string& tmpl, const std::string& cgroup, std::uint32_t id)
{
    std::string n = tmpl + ".";
    for (char c : cgroup)
        n += std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-' ||
                     c == '@'
                 ? c
                 : '_';
    return n.size() <= 64 ? n : fmt::format("{}.{:x}", tmpl.substr(0, 54), id);
}

// The kernel's form of a template pattern; Error when cordon cannot match it in the kernel.
cordon_template pattern_entry(const std::string& pattern)
{
    cordon_template t{};
    const auto star = pattern.find('*');
    if (pattern.empty() || pattern == "." || pattern == "..")
        throw Error("a template needs a name pattern for the children, such as agent@*.service");
    if (!plain_text(pattern))
        throw Error("a template's pattern must be UTF-8 text without control characters");
    if (star != std::string::npos && pattern.find('*', star + 1) != std::string::npos)
        throw Error("a template's pattern may have one '*' only: " + pattern);
    if (pattern.find_first_of("?[]\\") != std::string::npos)
        throw Error("a template's pattern may use '*' only (no ?, [ ] or \\): " + pattern);
    const std::string prefix = pattern.substr(0, star);
    const std::string suffix = star == std::string::npos ? "" : pattern.substr(star + 1);
    if (prefix.size() > CORDON_PATTERN_PART || suffix.size() > CORDON_PATTERN_PART)
        throw Error(fmt::format("a template's pattern may have at most {} characters before and "
                                "after its '*': {}",
                                CORDON_PATTERN_PART, pattern));
    t.star = star != std::string::npos;
    t.prefix_len = static_cast<__u8>(prefix.size());
    t.suffix_len = static_cast<__u8>(suffix.size());
    std::memcpy(t.prefix, prefix.data(), prefix.size());
    std::memcpy(t.suffix, suffix.data(), suffix.size());
    return t;
}

} // namespace

const AgentRecord& Controller::add_template(const NewTemplate& nt, const PreparedPolicy& p)
{
    check_name(nt.name);
    if (find(nt.name) || find_template(nt.name))
        throw Error("an agent named " + nt.name + " already exists; pick another --name");
    const std::string pattern = nt.pattern.filename().string();
    auto entry = pattern_entry(pattern);
    const fs::path parent = bindable_path(mount_, nt.pattern.parent_path(), nt.wait, true);
    const std::string prel = rel_path(mount_, parent);
    if (prel.size() > CORDON_CGROUP_PARENT_MAX)
        throw Error(fmt::format("cannot guard the children of {}: its path below the cgroup v2 "
                                "root is longer than {} bytes",
                                parent.string(), CORDON_CGROUP_PARENT_MAX));
    // Nothing of cordon's may match: its run agents' subtree, its own cgroup.
    const fs::path subtree = mount_.mount_point / agents::kSubtree;
    if (parent == mount_.mount_point && name_matches(pattern, std::string(agents::kSubtree)))
        throw Error("cannot guard " + (parent / pattern).string() + ": it matches " +
                    subtree.string() + ", cordon's own subtree");
    if (const auto self = agents::process_cgroup(mount_, static_cast<int>(::getpid()));
        self && agents::cgroup_within(*self, parent) && *self != parent &&
        name_matches(pattern, self->lexically_relative(parent).begin()->string()))
        throw Error("cannot guard " + (parent / pattern).string() + ": it matches the cgroup "
                    "cordon itself runs in (" + self->string() + ")");
    for (const auto& t : templates_)
        if (t.cgroup.parent_path() == parent &&
            patterns_overlap(t.cgroup.filename().string(), pattern))
            throw Error("cannot guard " + (parent / pattern).string() + ": template " + t.name +
                        " (" + t.cgroup.string() + ") matches some of the same names; agents "
                        "may not nest, detach that one first");
    for (const auto& r : agents_)
        if (agents::cgroup_within(parent, r.cgroup) ||
            (agents::cgroup_within(r.cgroup, parent) && r.cgroup != parent &&
             name_matches(pattern, r.cgroup.lexically_relative(parent).begin()->string())))
            throw Error("cannot guard " + (parent / pattern).string() + ": agent " + r.name +
                        " (" + r.cgroup.string() + ") is inside or above it; agents may not "
                        "nest, detach that one first");
    AgentRecord r;
    r.name = nt.name;
    r.cgroup = parent / pattern;
    r.origin = Origin::Template;
    r.level = path_level(mount_, parent) + 1;
    if (r.level >= CORDON_MAX_LEVEL)
        throw Error(fmt::format("cannot guard {}: its children are at cgroup level {}, and agents "
                                "live at levels 1 to {}",
                                r.cgroup.string(), r.level, CORDON_MAX_LEVEL - 1));
    describe_policy(r, p);
    r.created = now_unix();
    r.policy_id = guard_->allocate_policy_id();
    r.id = guard_->allocate_agent_id(); // the template's id (cordon_template.template_id)
    auto compiled = policy::compile(p.policy, r.policy_id);
    if (!compiled.compiled)
        throw Error("the policy did not compile: " + compiled.errors.at(0).str());
    guard_->load_policy(*compiled.compiled);
    entry.template_id = r.id;
    entry.proto = policy::agent_for(p.policy, *compiled.compiled, 0, r.level);
    auto live = policy::live_for(p.policy, 0);
    entry.initial_score = live.score;
    entry.initial_tier = tier_of(r.policy_id, live);
    templates_.push_back(r);
    try {
        save(r);
        guard_->set_template(prel, entry);
    } catch (...) {
        templates_.pop_back();
        guard_->unload_policy(r.policy_id);
        if (opts_.registry_dir)
            remove_record(*opts_.registry_dir, r.name);
        if (opts_.durable_dir)
            remove_record(*opts_.durable_dir, r.name);
        throw;
    }
    // The kernel matches what is made from now on; what exists already is guarded here.
    std::vector<std::string> ignored;
    adopt_children(templates_.back(), ignored);
    return templates_.back();
}

AgentRecord& Controller::add_child(const AgentRecord& t, const fs::path& dir, std::uint64_t cgid,
                                   std::uint64_t key, std::uint32_t id)
{
    AgentRecord c = t;
    c.origin = Origin::Child;
    c.template_name = t.name;
    c.policy_text.clear();
    c.policy_mode.clear();
    c.id = id;
    c.key = key;
    c.cgroup = dir;
    c.cgroup_id = cgid;
    c.created = now_unix();
    c.name = child_name(t.name, dir.filename().string(), id);
    if (find(c.name))
        c.name = fmt::format("{}.{:x}", t.name.substr(0, 54), id);
    agents_.push_back(std::move(c));
    save(agents_.back());
    return agents_.back();
}

void Controller::adopt_children(const AgentRecord& t, std::vector<std::string>& changes)
{
    const fs::path parent = t.cgroup.parent_path();
    const std::string pattern = t.cgroup.filename().string();
    std::error_code ec;
    std::set<std::uint64_t> known; // cgroups with a record: one lookup each, not a scan
    for (const auto& r : agents_)
        known.insert(r.cgroup_id);
    for (const auto& e : fs::directory_iterator(parent, ec)) {
        const std::string base = e.path().filename().string();
        if (!e.is_directory(ec) || !name_matches(pattern, base) ||
            !fs::exists(e.path() / "cgroup.procs", ec))
            continue;
        if (!plain_text(base)) {
            // No record can name it (records and the API are UTF-8 text): the kernel guards it
            // as the template says; it is also frozen (fails closed) and reported, once.
            if (unnamed_.insert(e.path().string()).second) {
                try {
                    agents::freeze_cgroup(e.path(), true);
                } catch (const Error&) {
                }
                changes.push_back("template " + t.name + ": a matching cgroup's name is not "
                                  "UTF-8 text; guarded by the kernel, frozen, and not listed");
            }
            continue;
        }
        std::uint64_t cgid = 0;
        try {
            cgid = agents::cgroup_id(e.path());
        } catch (const Error&) {
            continue; // removed meanwhile
        }
        if (known.contains(cgid))
            continue;
        const auto key = guard_->cgroup_agent(cgid);
        const auto a = key ? guard_->agent(*key) : std::nullopt;
        if (a && a->policy_id != t.policy_id)
            continue; // another agent's (another template's, or one attached by hand)
        if (a) { // the kernel made it as the cgroup was made
            const auto& c = add_child(t, e.path(), cgid, *key, a->agent_id);
            changes.push_back(c.name + ": guarded from its first process (template " + t.name +
                              ", made by the kernel)");
            continue;
        }
        // Made before the template, or the kernel's tables were full: guarded now (second
        // line); if even that fails, frozen (fails closed) until an operator acts.
        guard_child_now(t, e.path(), cgid, changes);
    }
}

std::vector<std::string> Controller::adopt_templates()
{
    std::vector<std::string> changes;
    for (const auto& t : templates_)
        adopt_children(t, changes);
    return changes;
}

void Controller::guard_child_now(const AgentRecord& t, const fs::path& dir, std::uint64_t cgid,
                                 std::vector<std::string>& changes)
{
    const fs::path parent = t.cgroup.parent_path();
    try {
        const auto tmpl = guard_->template_of(rel_path(mount_, parent), t.id);
        if (!tmpl)
            throw Error("its template is not in the kernel");
        const std::uint32_t id = guard_->allocate_agent_id();
        const std::uint64_t k = CORDON_AGENT_KEY(id);
        cordon_agent ag = tmpl->proto;
        ag.agent_id = id;
        ag.flags |= CORDON_AGENT_F_CHILD;
        cordon_agent_live l{};
        l.score = tmpl->initial_score;
        l.tier = tmpl->initial_tier;
        l.agent_id = id;
        l.stamp_ns = static_cast<__u64>(monotonic_ns());
        guard_->add_agent(k, ag, l);
        try {
            guard_->bind_cgroup(cgid, k);
        } catch (...) {
            guard_->remove_agent(k);
            throw;
        }
        const auto& c = add_child(t, dir, cgid, k, id);
        changes.push_back(c.name + ": guarded now (template " + t.name + "; it was made "
                                   "before the template or unbound)");
    } catch (const Error& err) {
        try {
            agents::freeze_cgroup(dir, true);
            changes.push_back(fmt::format("template {}: cannot guard {} ({}); froze it "
                                          "(fails closed)",
                                          t.name, dir.string(), err.what()));
        } catch (const Error& f) {
            changes.push_back(fmt::format("template {}: cannot guard {} ({}), nor freeze it "
                                          "({})",
                                          t.name, dir.string(), err.what(), f.what()));
        }
    }
}

void Controller::remove_template(const std::string& name)
{
    const auto it = std::find_if(templates_.begin(), templates_.end(),
                                 [&](const AgentRecord& t) { return t.name == name; });
    const AgentRecord t = *it;
    // No new child from here on; then each child's agent ends (its processes run on unguarded,
    // as a detach leaves an attached cgroup's).
    guard_->remove_template(rel_path(mount_, t.cgroup.parent_path()), t.id);
    for (auto c = agents_.begin(); c != agents_.end();)
        if (c->origin == Origin::Child && c->template_name == name)
            forget(c), c = agents_.begin();
        else
            ++c;
    // Children the kernel made that have no record yet.
    for (const auto& e : guard_->agents())
        if ((e.agent.flags & CORDON_AGENT_F_CHILD) && e.agent.policy_id == t.policy_id)
            guard_->remove_agent(e.cgid);
    guard_->unload_policy(t.policy_id);
    templates_.erase(std::find_if(templates_.begin(), templates_.end(),
                                  [&](const AgentRecord& x) { return x.name == name; }));
    if (opts_.registry_dir)
        remove_record(*opts_.registry_dir, name);
    if (opts_.durable_dir)
        remove_record(*opts_.durable_dir, name);
}

std::vector<std::string> Controller::restore(
    const std::function<PreparedPolicy(const AgentRecord&)>& prepare)
{
    std::vector<std::string> done;
    if (!opts_.durable_dir)
        return done;
    std::vector<AgentRecord> kept;
    try {
        kept = load_registry(*opts_.durable_dir);
    } catch (const Error& e) {
        done.push_back(std::string("cannot read the kept attachments: ") + e.what());
        return done;
    }
    for (const auto& d : kept) {
        if (find(d.name) || find_template(d.name))
            continue; // still in force (a daemon restart, not a reboot)
        try {
            const auto p = prepare(d);
            if (d.origin == Origin::Template) {
                add_template({.name = d.name, .pattern = d.cgroup, .wait = true}, p);
            } else {
                add_agent({.name = d.name, .cgroup = d.cgroup, .owner_pid = {}, .wait = true,
                           .killed = d.killed},
                          p);
                if (d.killed)
                    kill(d.name); // empties the cgroup, if it exists already
            }
            done.push_back(fmt::format("{}: restored from {} ({}{})", d.name,
                                       opts_.durable_dir->string(), d.cgroup.string(),
                                       d.killed ? ", killed as it was" : ""));
        } catch (const std::exception& e) {
            done.push_back(fmt::format("{}: cannot restore ({}); it is NOT guarded: fix the cause "
                                       "and attach it again",
                                       d.name, e.what()));
        }
    }
    return done;
}

} // namespace cordon::control
