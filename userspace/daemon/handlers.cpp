// SPDX-License-Identifier: Apache-2.0
#include "daemon/handlers.h"

#include <fcntl.h>
#include <unistd.h>

#include <array>
#include <filesystem>
#include <memory>
#include <mutex>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "common/backend.h"
#include "common/clock.h"
#include "common/error.h"
#include "common/pi_mutex.h"
#include "control/explain.h"
#include "daemon/actions.h"
#include "daemon/views.h"
#include "events/reader.h"
#include "policy/duration.h"
#include "policy/grant.h"

namespace cordon::daemon {

namespace fs = std::filesystem;
using nlohmann::json;

void State::note_trust(const std::string& agent, json change)
{
    auto& log = trust_log[agent];
    log.push_back(std::move(change));
    while (log.size() > 32)
        log.pop_front();
}

void State::same_agent(const std::string& name, std::uint32_t id) const
{
    const auto* rec = ctl.find(name);
    if (!rec || rec->id != id)
        throw Error("agent " + name + " was detached or replaced meanwhile; nothing was changed");
}

const control::AgentRecord& State::agent(const api::Request& r) const
{
    const auto* rec = r.name ? ctl.find(*r.name) : nullptr;
    if (!rec && r.name && ctl.find_template(*r.name))
        throw Error(*r.name + " is a template, not an agent: name one of its agents (" + *r.name +
                    ".CGROUP, `cordon agents` lists them); `cordon detach " + *r.name +
                    "` ends the template and its agents");
    if (!rec)
        throw Error("no agent named " + r.name.value_or("") + "; `cordon agents` lists them");
    return *rec;
}

namespace {

std::optional<policy::Mode> mode_of(const api::Request& r)
{
    if (!r.mode)
        return std::nullopt;
    return *r.mode == "audit" ? policy::Mode::Audit : policy::Mode::Enforce;
}

const char* mode_name(std::uint8_t m)
{
    return m == CORDON_MODE_AUDIT ? "audit" : "enforce";
}

// Resolves through the system resolver on a worker thread and remembers every answer; on the
// loop, it answers only from what it remembered, so the loop never waits on a name server. A
// host it was not asked on the worker fails closed (resolves to nothing, with the reason).
class Remembered : public policy::Resolver {
public:
    std::vector<policy::Cidr> resolve(const std::string& host, std::string& error) override
    {
        std::lock_guard lock(mu_);
        if (replay_) {
            const auto it = seen_.find(host);
            if (it == seen_.end()) {
                error = "not resolved ahead of time";
                return {};
            }
            error = it->second.second;
            return it->second.first;
        }
        if (!system_)
            system_ = policy::system_resolver();
        auto got = system_->resolve(host, error);
        seen_[host] = {got, error};
        return got;
    }
    void replay()
    {
        std::lock_guard lock(mu_);
        replay_ = true;
    }

private:
    PiMutex mu_;
    bool replay_ = false;
    std::unique_ptr<policy::Resolver> system_;
    std::map<std::string, std::pair<std::vector<policy::Cidr>, std::string>> seen_;
};

// A policy prepared (parsed, names resolved, test-compiled) on a worker: `then` gets it.
template <typename Then>
Slow prepare_then(const api::PolicyText& text, policy::Context ctx,
                  std::optional<policy::Mode> mode, bool overlay, Then then)
{
    auto result = std::make_shared<std::optional<control::PreparedPolicy>>();
    return Slow{.work =
                    [result, text, ctx, mode, overlay] {
                        auto resolver = policy::system_resolver();
                        result->emplace(control::prepare_document(text.text, text.file, ctx,
                                                                  *resolver, overlay, mode));
                    },
                .then = [result, then](Peer* p) mutable { return then(**result, p); },
                .abandon = {}};
}

Outcome ping(State&, Peer&, const api::Request&)
{
    return AfterDrain{};
}

Outcome status(State& s, Peer&, const api::Request&)
{
    auto& g = s.ctl.guard();
    const auto c = g.counters();
    return Reply{.fields = {
                     {"daemon", {{"pid", ::getpid()}, {"version", CORDON_VERSION},
                                 {"uptime_s", (now_ms() - s.started_ms) / 1000},
                                 {"adopted_pinned_state", s.ctl.adopted()}}},
                     {"backend", backend_name(g.backend())},
                     {"pin_dir", s.opts.pin_dir.string()},
                     {"programs", g.program_ids()},
                     {"agents", s.ctl.agents().size()},
                     {"policies", g.policy_ids().size()},
                     {"decisions", {{"allow", c[CORDON_CNT_ALLOW]}, {"deny", c[CORDON_CNT_DENY]},
                                    {"audit", c[CORDON_CNT_AUDIT]}, {"kill", c[CORDON_CNT_KILL]},
                                    {"freeze", c[CORDON_CNT_FREEZE]}}},
                     {"lost_events", c[CORDON_CNT_RINGBUF_DROPS]},
                     // Of lost_events: refused because their agent was over its share of the
                     // buffer (that agent's loss; bpf/effects.bpf.h).
                     {"shed_events", c[CORDON_CNT_EVENTS_SHED]},
                     {"malformed_events", s.reader.malformed()},
                     {"subscriber_drops", s.subscriber_drops},
                     {"unresolved_paths", c[CORDON_CNT_PATH_FAILED]},
                     {"task_table_full", c[CORDON_CNT_TASK_FULL]},
                     // Cgroups the kernel bound as they were made (issue 23); failed: the
                     // tables were full, and cordond freezes each such cgroup it finds.
                     {"cgroups", {{"bound", c[CORDON_CNT_CG_BOUND]},
                                  {"children_made", c[CORDON_CNT_CG_CHILD]},
                                  {"failed", c[CORDON_CNT_CG_FAILED]},
                                  {"removed", c[CORDON_CNT_CG_REMOVED]}}},
                     {"store", store_json(s.pipeline)},
                     {"dns", dns_json(s.gateway)},
                     {"metrics", s.metrics_state ? s.metrics_state() : nlohmann::json(nullptr)}}};
}

Outcome agents_list(State& s, Peer&, const api::Request&)
{
    json list = json::array();
    for (const auto& a : s.ctl.agents()) {
        list.push_back(agent_json(s.ctl, a, s.denials[a.id]));
        list.back()["dns"] = dns_bindings_json(s.gateway, a);
    }
    json templates = json::array();
    for (const auto& t : s.ctl.templates())
        templates.push_back(agent_json(s.ctl, t, 0));
    return Reply{.fields = {{"agents", list}, {"templates", templates}}};
}

// What an attached agent lacks beside a run agent on this backend (docs/enforcement.md).
std::vector<std::string> attached_warnings(cordon_backend b)
{
    if (b == CORDON_BACKEND_COMPAT)
        return {"compat backend: an attached agent's processes never pass through `cordon run`: "
                "they keep their capabilities and have no seccomp layer, and the compat backend "
                "has no LSM hook to refuse namespaces, mounts, bpf(), perf or module loading in "
                "their place; one running as root can switch its guard off "
                "(docs/enforcement.md, `cordon doctor`)"};
    return {"an attached agent's processes keep their capabilities and have no seccomp layer; "
            "the kernel's hooks refuse what they can for it (docs/enforcement.md lists what "
            "that leaves open, `cordon doctor` too)"};
}

// attach and run: the policy is prepared off the loop, the agent added on it.
Outcome add(State& s, Peer& asker, const api::Request& r)
{
    const bool run = r.op == api::Op::Run;
    if (run && asker.session)
        throw Error("this connection already runs agent " + *asker.session);
    if (run && s.subscription_refusal)
        if (const auto why = s.subscription_refusal(asker); !why.empty())
            throw Error(why);
    if (!run && !fs::path(*r.cgroup).is_absolute())
        throw Error("\"cgroup\" must be an absolute path (the daemon's working directory is not "
                    "the caller's)");
    const policy::Context ctx{.home = r.home, .workspace = r.workspace, .user = r.user};
    return prepare_then(
        *r.policy, ctx, mode_of(r), false,
        [&s, r, run](const control::PreparedPolicy& prepared, Peer* caller) -> Reply {
            if (!caller)
                throw Error("the caller went away before its policy was ready; nothing was added");
            Peer& p = *caller;
            // Checked again now: runs read in one turn all passed the check at arrival.
            if (run && !p.subscribed && s.subscription_refusal)
                if (const auto why = s.subscription_refusal(p); !why.empty())
                    throw Error(why);
            auto& g = s.ctl.guard();
            const bool glob = !run && fs::path(*r.cgroup).filename().string().find('*') !=
                                          std::string::npos;
            if (glob) {
                const auto& t = s.ctl.add_template(
                    {.name = r.name.value_or(prepared.policy.name + "-" + control::random_suffix()),
                     .pattern = *r.cgroup,
                     .wait = r.wait.value_or(false)},
                    prepared);
                json out = {{"agent", agent_json(s.ctl, t, 0)},
                            {"pin_dir", s.opts.pin_dir.string()},
                            {"backend", backend_name(g.backend())},
                            {"warnings", prepared.warnings}};
                for (const auto& w : attached_warnings(g.backend()))
                    out["warnings"].push_back(w);
                return Reply{.fields = out};
            }
            control::NewAgent na;
            na.name = r.name;
            if (run)
                na.owner_pid = p.pid;
            else
                na.cgroup = *r.cgroup;
            na.wait = r.wait.value_or(false);
            const auto& rec = s.ctl.add_agent(na, prepared);
            if (run) {
                // Its `cordon run` is cordon's too: its agent may not signal or trace it (lsm).
                g.protect_process(static_cast<std::uint32_t>(p.pid));
                p.protected_pid = static_cast<std::uint32_t>(p.pid);
                p.session = rec.name;
                p.subscribed = true;
                p.filter = rec.name;
            }
            json out = {{"agent", agent_json(s.ctl, rec, 0)},
                        {"pin_dir", s.opts.pin_dir.string()},
                        {"backend", backend_name(g.backend())},
                        {"warnings", prepared.warnings}};
            if (!run)
                for (const auto& w : attached_warnings(g.backend()))
                    out["warnings"].push_back(w);
            return Reply{.fields = out};
        });
}

Outcome detach(State& s, Peer&, const api::Request& r)
{
    if (const auto* t = r.name ? s.ctl.find_template(*r.name) : nullptr) {
        // The template and every agent it made: their processes run on unguarded.
        std::vector<std::uint64_t> keys;
        for (const auto& a : s.ctl.agents())
            if (a.template_name == t->name)
                keys.push_back(a.key);
        s.ctl.remove_agent(t->name);
        for (auto k : keys)
            s.sup.forget(k);
        return Reply{.fields = {{"children", keys.size()}}};
    }
    const auto& rec = s.agent(r);
    if (rec.origin == control::Origin::Run && rec.owner_pid)
        throw Error("agent " + rec.name + " belongs to a running `cordon run` (pid " +
                    std::to_string(*rec.owner_pid) + "); it ends with its command");
    const auto cgid = rec.key;
    s.ctl.remove_agent(rec.name);
    s.sup.forget(cgid);
    return Reply{};
}

Outcome release(State& s, Peer& p, const api::Request&)
{
    if (!p.session)
        throw Error("release is for a `cordon run` connection that owns an agent");
    s.ctl.release_owner(*p.session);
    const std::string name = *p.session;
    p.session.reset();
    return Reply{.fields = {{"name", name}}};
}

Outcome subscribe(State& s, Peer& p, const api::Request& r)
{
    if (r.name)
        (void)s.agent(r);
    if (!p.subscribed && s.subscription_refusal)
        if (const auto why = s.subscription_refusal(p); !why.empty())
            throw Error(why);
    p.subscribed = true;
    p.filter = r.name;
    return Reply{};
}

// kill and freeze: the kernel refuses the agent everything from the flag on; the reply waits
// for the cgroup to be empty (or frozen).
Outcome stop(State& s, Peer& p, const api::Request& r)
{
    const auto& rec = s.agent(r);
    Pending w;
    w.agent = rec.name;
    w.cgroup = rec.cgroup;
    w.received_ns = p.readable_ns;
    w.sent_ns = r.sent_ns.value_or(0);
    if (r.op == api::Op::Kill) {
        w.flagged_ns = s.ctl.kill(rec.name);
        w.last_kill_ns = monotonic_ns();
        spdlog::warn("killing agent {} on request of pid {} uid {}{}", rec.name, p.pid, p.uid,
                     r.reason ? ": " + *r.reason : "");
    } else {
        s.ctl.freeze(rec.name);
        w.flagged_ns = monotonic_ns();
    }
    w.events_fd = ::open((rec.cgroup / "cgroup.events").c_str(), O_RDONLY | O_CLOEXEC);
    // Read once now: until a read, the kernel reports the file ready on every poll, and the
    // loop would spin at real-time priority while the dying agent needs the CPU.
    rearm_events(w.events_fd);
    return w;
}

Outcome thaw(State& s, Peer&, const api::Request& r)
{
    const auto& rec = s.agent(r);
    s.ctl.thaw(rec.name);
    s.sup.thawed(rec.key);
    return Reply{.fields = {{"name", rec.name}}};
}

// A reserved policy id that will not be switched to: unloaded on a worker when something was
// loaded under it (no agent ever used it, so no grace period), then released.
void discard_policy(State& s, std::uint32_t id, bool loaded)
{
    if (!loaded) {
        s.ctl.release_policy_id(id);
        return;
    }
    s.background([g = s.ctl.shared_guard(), id] { g->unload_policy(id); },
                 [&s, id] { s.ctl.release_policy_id(id); });
}

Reply applied_reply(const std::string& name, const control::Controller::Applied& a,
                    const control::PreparedPolicy& prepared, std::int64_t received_ns,
                    std::int64_t prepared_ns)
{
    json warnings = prepared.warnings;
    if (a.old_mode != a.new_mode)
        warnings.push_back(fmt::format("the agent's mode changed from {} to {} (the new policy's "
                                       "spec.mode)",
                                       mode_name(a.old_mode), mode_name(a.new_mode)));
    const json details = {{"old_policy", a.old_policy}, {"new_policy", a.new_policy},
                          {"mode", mode_name(a.new_mode)}};
    return Reply{.fields = {{"name", name},
                            {"old_policy", a.old_policy},
                            {"new_policy", a.new_policy},
                            {"mode", mode_name(a.new_mode)},
                            {"received_ns", received_ns},
                            {"prepared_ns", prepared_ns},
                            {"loaded_ns", a.loaded_ns},
                            {"recorded_ns", a.recorded_ns},
                            {"switched_ns", a.switched_ns},
                            {"warnings", warnings}},
                 .details = details};
}

// An apply: parse, resolve, compile and load run on a worker under an id reserved here; the
// loop only switches the agent (one map write), and a worker unloads the old policy once no
// decision can hold it. A 10,000-rule policy costs the loop microseconds, not a second.
Outcome apply(State& s, Peer&, const api::Request& r)
{
    const auto& rec = s.agent(r);
    if (rec.origin == control::Origin::Child)
        throw Error("agent " + rec.name + " runs its template's policy (" + rec.template_name +
                    "), which its siblings share; to change it, detach the template and attach "
                    "it again with the new policy; nothing was changed");
    const auto received_ns = monotonic_ns();
    // Applies of one agent take effect in the order they arrived: one that a later apply
    // overtook while its policy was being prepared changes nothing.
    const auto seq = ++s.apply_seq[rec.name];
    struct Staged {
        std::optional<control::PreparedPolicy> prepared;
        std::int64_t prepared_ns = 0;
        std::uint8_t mode = 0;
        bool started = false; ///< the work began (a refused request's never does)
        bool loaded = false;
    };
    auto st = std::make_shared<Staged>();
    const auto id = s.ctl.reserve_policy_id();
    Slow slow;
    // The agent's own context: its ${HOME} and ${WORKSPACE} mean what they meant at start.
    slow.work = [st, id, text = *r.policy, ctx = rec.context, mode = mode_of(r),
                 g = s.ctl.shared_guard()] {
        st->started = true;
        auto resolver = policy::system_resolver();
        st->prepared.emplace(
            control::prepare_document(text.text, text.file, ctx, *resolver, false, mode));
        st->prepared_ns = monotonic_ns();
        st->mode = control::Controller::load_reserved(*g, id, *st->prepared);
        st->loaded = true;
    };
    slow.abandon = [&s, st, id, name = rec.name, seq] {
        // Refused before it began (too many slow requests of its uid): it never counted as the
        // latest apply, so an earlier one still under way may still take effect.
        if (!st->started && s.apply_seq[name] == seq)
            --s.apply_seq[name];
        discard_policy(s, id, st->loaded);
    };
    slow.then = [&s, st, id, name = rec.name, agent_id = rec.id, seq, received_ns](Peer*) {
        control::Controller::Applied a;
        try {
            s.same_agent(name, agent_id);
            if (s.apply_seq[name] != seq)
                throw Error("a later apply of agent " + name + " came first; this one changed "
                            "nothing");
            a = s.ctl.switch_policy(name, *st->prepared, id, st->mode);
        } catch (...) {
            discard_policy(s, id, true);
            throw;
        }
        s.ctl.release_policy_id(id); // the record names it now
        s.background(
            [g = s.ctl.shared_guard(), old = a.old_policy] {
                control::Controller::unload_after_decisions(*g, old);
            },
            [&s, old = a.old_policy] { s.ctl.release_policy_id(old); });
        return applied_reply(name, a, *st->prepared, received_ns, st->prepared_ns);
    };
    return slow;
}

Outcome mode(State& s, Peer&, const api::Request& r)
{
    const auto& rec = s.agent(r);
    s.ctl.set_mode(rec.name, mode_of(r) == policy::Mode::Audit ? CORDON_MODE_AUDIT
                                                               : CORDON_MODE_ENFORCE);
    return Reply{.fields = {{"name", rec.name}, {"mode", *r.mode}}};
}

Outcome trust(State& s, Peer&, const api::Request& r)
{
    const auto& rec = s.agent(r);
    const bool set = r.op == api::Op::TrustSet;
    const auto before = s.ctl.trust(rec.name);
    const auto t = set ? s.ctl.set_score(rec.name, static_cast<std::uint32_t>(*r.score)) : before;
    if (set)
        s.note_trust(rec.name, {{"time_ms", now_ms()}, {"cause", "operator"},
                                {"old_score", before.score}, {"score", t.score},
                                {"old_tier", before.tier_name}, {"new_tier", t.tier_name},
                                {"reason", r.reason.value_or("")}});
    json changes = json::array();
    for (const auto& c : s.trust_log[rec.name])
        changes.push_back(c);
    Reply out{.fields = {{"name", rec.name},
                         {"scoring", t.scoring},
                         {"score", t.score},
                         {"tier", t.tier_name},
                         {"tier_index", t.tier},
                         {"tiers", rec.tier_names},
                         {"recovery_per_minute", t.recovery_per_minute},
                         {"burst_count", t.live.burst_count},
                         {"recent", changes}}};
    if (set)
        out.details = {{"old_score", before.score}, {"score", t.score}, {"tier", t.tier_name}};
    return out;
}

std::uint64_t ttl_ms(const std::string& text)
{
    std::string why;
    const auto ms = policy::parse_duration_ms(text, why);
    if (!ms)
        throw Error("\"ttl\" " + why);
    return *ms;
}

Reply begin_task(State& s, const std::string& name, control::Controller::TaskSpec spec)
{
    json warnings = json::array();
    if (spec.overlay)
        for (const auto& w : spec.overlay->warnings)
            warnings.push_back(w);
    const auto& t = s.ctl.begin_task(name, std::move(spec));
    return Reply{.fields = {{"name", name},
                            {"task", task_json(s.ctl, *s.ctl.find(name), t)},
                            {"warnings", warnings}},
                 .details = {{"task", t.id}, {"number", t.number}}};
}

Outcome task_begin(State& s, Peer&, const api::Request& r)
{
    const auto& rec = s.agent(r);
    control::Controller::TaskSpec spec;
    spec.id = *r.id;
    if (r.ttl)
        spec.ttl_ms = ttl_ms(*r.ttl);
    if (r.pid)
        spec.pid = static_cast<int>(*r.pid);
    if (!r.policy)
        return begin_task(s, rec.name, std::move(spec));
    return prepare_then(*r.policy, rec.context, std::nullopt, true,
                        [&s, name = rec.name, id = rec.id, spec](
                            const control::PreparedPolicy& overlay, Peer*) mutable {
                            s.same_agent(name, id);
                            spec.overlay = overlay;
                            return begin_task(s, name, std::move(spec));
                        });
}

Outcome task_end(State& s, Peer&, const api::Request& r)
{
    const auto& rec = s.agent(r);
    s.ctl.end_task(rec.name, r.id.value_or(""));
    return Reply{.fields = {{"name", rec.name}}};
}

Outcome tasks(State& s, Peer&, const api::Request& r)
{
    const auto& rec = s.agent(r);
    json list = json::array();
    for (const auto& t : rec.tasks)
        list.push_back(task_json(s.ctl, rec, t));
    return Reply{.fields = {{"name", rec.name}, {"tasks", list}}};
}

Reply give_grant(State& s, const std::string& name, const control::Controller::GrantSpec& spec,
                 policy::Resolver& resolver)
{
    const auto& given = s.ctl.grant(name, spec, resolver);
    return Reply{.fields = {{"name", name},
                            {"grant", grant_json(given)},
                            {"granted_ns", monotonic_ns()}},
                 .details = {{"grant", given.id},
                             {"kind", control::grant_kind_name(given.kind)},
                             {"target", given.target},
                             {"expires_ms", given.expires_ms}}};
}

// A connect grant's host is resolved on a worker; the grant is given on the loop from that answer.
Outcome grant(State& s, Peer& p, const api::Request& r)
{
    const auto& rec = s.agent(r);
    control::Controller::GrantSpec spec;
    spec.kind = policy::grant_kind_from_name(*r.kind).value_or(policy::GrantKind::Read);
    spec.target = *r.target;
    spec.ttl_ms = ttl_ms(*r.ttl);
    spec.task = r.task.value_or("");
    spec.reason = r.reason.value_or("");
    spec.by = fmt::format("pid {} uid {}", p.pid, p.uid);
    auto names = std::make_shared<Remembered>();
    if (spec.kind != control::GrantKind::Connect)
        return give_grant(s, rec.name, spec, *names);
    return Slow{.work = [names, target = spec.target] {
                    // The grammar and the lookup, as Controller::grant will run them; the
                    // answers are what it gets on the loop (a refusal is its to give).
                    (void)policy::prepare_grant_target(policy::GrantKind::Connect, target, *names);
                },
                .then = [&s, names, name = rec.name, id = rec.id, spec](Peer*) {
                    s.same_agent(name, id);
                    names->replay();
                    return give_grant(s, name, spec, *names);
                },
                .abandon = {}};
}

Outcome grants(State& s, Peer&, const api::Request& r)
{
    const auto& rec = s.agent(r);
    json list = json::array();
    for (const auto& one : rec.grants)
        list.push_back(grant_json(one));
    return Reply{.fields = {{"name", rec.name}, {"grants", list}}};
}

Outcome revoke(State& s, Peer&, const api::Request& r)
{
    const auto& rec = s.agent(r);
    s.ctl.revoke(rec.name, static_cast<std::uint32_t>(*r.grant));
    return Reply{.fields = {{"name", rec.name}, {"grant", *r.grant}}};
}

// A path's symbolic links are resolved on a worker (a stat may wait on a slow filesystem); the
// maps are read on the loop, which owns them.
Outcome explain(State& s, Peer&, const api::Request& r)
{
    const auto& rec = s.agent(r);
    const auto kind = policy::grant_kind_from_name(*r.kind).value_or(policy::GrantKind::Read);
    auto q = std::make_shared<control::ExplainQuery>(control::parse_explain(kind, *r.target));
    if (kind == policy::GrantKind::Connect)
        return Reply{.fields = control::explain(s.ctl, rec, *q)};
    return Slow{.work = [q] { control::resolve_explain_path(*q); },
                .then = [&s, q, name = rec.name](Peer*) {
                    const auto* now = s.ctl.find(name);
                    if (!now)
                        throw Error("agent " + name + " was removed meanwhile");
                    return Reply{.fields = control::explain(s.ctl, *now, *q)};
                },
                .abandon = {}};
}

struct Row {
    api::Op op;
    Handler fn;
};

// One row per op, in the enum's order: handler_of indexes it by op.
constexpr std::array<Row, api::kOpCount> kHandlers = {{
    {api::Op::Ping, ping},
    {api::Op::Status, status},
    {api::Op::Agents, agents_list},
    {api::Op::Attach, add},
    {api::Op::Detach, detach},
    {api::Op::Run, add},
    {api::Op::Release, release},
    {api::Op::Subscribe, subscribe},
    {api::Op::Kill, stop},
    {api::Op::Freeze, stop},
    {api::Op::Thaw, thaw},
    {api::Op::Apply, apply},
    {api::Op::Mode, mode},
    {api::Op::Trust, trust},
    {api::Op::TrustSet, trust},
    {api::Op::TaskBegin, task_begin},
    {api::Op::TaskEnd, task_end},
    {api::Op::Tasks, tasks},
    {api::Op::Grant, grant},
    {api::Op::Grants, grants},
    {api::Op::Revoke, revoke},
    {api::Op::Explain, explain},
}};

constexpr bool rows_in_order()
{
    for (std::size_t i = 0; i < kHandlers.size(); ++i)
        if (static_cast<std::size_t>(kHandlers[i].op) != i || !kHandlers[i].fn)
            return false;
    return true;
}
static_assert(rows_in_order(), "kHandlers needs exactly one row per api::Op, in the enum's order");

} // namespace

Handler handler_of(api::Op op)
{
    return kHandlers.at(static_cast<std::size_t>(op)).fn;
}

} // namespace cordon::daemon
