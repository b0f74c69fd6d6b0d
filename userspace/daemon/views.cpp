// SPDX-License-Identifier: Apache-2.0
#include "daemon/views.h"

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "agents/cgroup.h"
#include "common/clock.h"
#include "daemon/actions.h"
#include "events/pipeline.h"
#include "policy/net.h"

namespace cordon::daemon {

namespace fs = std::filesystem;
using nlohmann::json;

json agent_json(control::Controller& ctl, const control::AgentRecord& r, std::uint64_t denials_seen)
{
    json a = {{"name", r.name},
              {"id", r.id},
              {"cgroup", r.cgroup.string()},
              {"cgroup_id", r.cgroup_id},
              {"key", r.key},
              {"origin", control::origin_name(r.origin)},
              {"state", r.origin == control::Origin::Template ? "template"
                        : r.cgroup_id                         ? "guarded"
                                                              : "waiting"},
              {"policy",
               {{"file", r.policy_file}, {"name", r.policy_name}, {"sha256", r.policy_sha256},
                {"id", r.policy_id}}},
              {"age_s", std::max<std::int64_t>(0, now_ms() / 1000 - r.created)},
              {"denials_seen", denials_seen},
              {"detached", r.origin == control::Origin::Run && !r.owner_pid},
              // What guards its processes: a run agent's pass through `cordon run` (seccomp,
              // capabilities dropped); an attached one's never do (docs/enforcement.md).
              {"layers", r.origin == control::Origin::Run ? "kernel,seccomp,caps" : "kernel"}};
    const auto st = ctl.guard().agent(r.key);
    const auto live = ctl.guard().live(r.key);
    if (st && live) {
        a["mode"] = st->mode == CORDON_MODE_AUDIT ? "audit" : "enforce";
        a["score"] = live->score;
        a["killed"] = cordon_agent_killed(&*st, &*live) != 0;
        a["frozen"] = cordon_agent_frozen(&*st, &*live) != 0;
        a["tier"] = ctl.tier_of(st->policy_id, *live);
        a["task_id"] = st->task_id;
        for (const auto& t : r.tasks)
            if (!t.pid)
                a["task"] = t.id;
        a["tasks"] = r.tasks.size();
        a["grants"] = r.grants.size();
        a["events_lost"] = live->events_lost;
        a["events_shed"] = live->events_shed;
    }
    if (!r.template_name.empty())
        a["template"] = r.template_name;
    if (r.origin == control::Origin::Template || !r.cgroup_id)
        return a;
    a["cgroup_frozen"] = agents::cgroup_frozen(r.cgroup);
    std::uint64_t procs = 0;
    std::error_code ec;
    for (auto it = fs::recursive_directory_iterator(r.cgroup, ec);
         !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
        if (it->path().filename() != "cgroup.procs")
            continue;
        std::ifstream in(it->path());
        for (std::string l; std::getline(in, l);)
            ++procs;
    }
    a["processes"] = procs;
    return a;
}

json task_json(control::Controller& ctl, const control::AgentRecord& r, const control::TaskRecord& t)
{
    json j = {{"id", t.id},
              {"number", t.number},
              {"begun_ms", t.begun_ms},
              {"expires_ms", t.expires_ms},
              {"overlay", t.overlay_file},
              {"grants", std::count_if(r.grants.begin(), r.grants.end(),
                                       [&](const control::GrantRecord& g) { return g.task == t.id; })}};
    if (t.pid)
        j["pid"] = *t.pid;
    if (t.pid) {
        json procs = json::array();
        for (const auto& [tgid, pt] : ctl.guard().bound_processes())
            if (pt.task_id == t.number)
                procs.push_back(tgid);
        j["processes"] = procs;
    }
    return j;
}

json grant_json(const control::GrantRecord& g)
{
    json j = {{"id", g.id},           {"kind", control::grant_kind_name(g.kind)},
              {"target", g.target},   {"created_ms", g.created_ms},
              {"expires_ms", g.expires_ms}, {"expires_ns", g.expires_ns},
              {"task", g.task},       {"reason", g.reason}};
    if (g.kind == control::GrantKind::Connect) {
        json a = json::array();
        for (const auto& c : g.cidrs)
            a.push_back(policy::cidr_text(c));
        j["addresses"] = a;
    } else {
        j["path"] = g.path;
    }
    return j;
}

json dns_json(const dns::Gateway* gateway)
{
    if (!gateway)
        return {{"enabled", false}};
    const auto st = gateway->stats();
    return {{"enabled", true}, {"port", st.port}, {"upstreams", st.upstreams},
            {"queries", st.queries}, {"allowed", st.allowed}, {"refused", st.refused},
            {"passed", st.passed}, {"failed", st.failed}, {"map_full", st.full},
            {"unattributed", st.unattributed}, {"busy", st.busy}, {"malformed", st.malformed},
            {"events_dropped", st.events_dropped}, {"bound_addresses", st.bound}};
}

json dns_bindings_json(const dns::Gateway* gateway, const control::AgentRecord& r)
{
    json out = json::array();
    if (!gateway || !r.key)
        return out;
    const std::int64_t now = monotonic_ns();
    for (const auto& b : gateway->bindings(r.key))
        out.push_back({{"name", b.name}, {"address", b.address},
                       {"rule", control::rule_source(&r, nullptr, b.rule_id)},
                       {"expires_in_ms", (b.expires_ns - now) / 1'000'000}});
    return out;
}

json store_json(const events::Pipeline* pipeline)
{
    if (!pipeline)
        return {{"enabled", false}};
    const auto s = pipeline->stats();
    json j = {{"enabled", true},
              {"received", s.received},
              {"queue_dropped", s.queue_dropped},
              {"lag_records", s.lag_records},
              {"lag_ms", s.lag_ms},
              {"store_cpu_ms", s.store_cpu_ns / 1'000'000}};
    if (!s.db_path.empty()) {
        json heads = json::object();
        for (const auto& [agent, h] : pipeline->heads())
            heads[agent] = {{"seq", h.first}, {"hash", h.second}};
        j["chain_heads"] = heads;
    }
    if (!s.db_path.empty())
        j["sqlite"] = {{"path", s.db_path},       {"stored", s.db_stored},
                       {"lost", s.db_lost},       {"write_errors", s.db_write_errors},
                       {"pruned", s.pruned},      {"last_error", s.db_error},
                       {"corrupt_moved", s.corrupt_moved}};
    if (!s.jsonl_path.empty())
        j["jsonl"] = {{"path", s.jsonl_path},
                      {"written", s.jsonl_written},
                      {"lost", s.jsonl_lost},
                      {"write_errors", s.jsonl_write_errors},
                      {"rotations", s.jsonl_rotations},
                      {"carried", s.jsonl_carried},
                      {"kept_files", s.jsonl_kept_files},
                      {"last_error", s.jsonl_error}};
    if (!s.journal_path.empty())
        j["journal"] = {{"socket", s.journal_path},
                        {"written", s.journal_written},
                        {"lost", s.journal_lost},
                        {"write_errors", s.journal_write_errors},
                        {"last_error", s.journal_error}};
    return j;
}

} // namespace cordon::daemon
