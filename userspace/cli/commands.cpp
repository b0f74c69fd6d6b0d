// SPDX-License-Identifier: Apache-2.0
#include "cli/commands.h"
#include "cli/stop.h"

#include <unistd.h>

#include <cassert>
#include <cstdio>
#include <filesystem>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "agents/cgroup.h"
#include "api/client.h"
#include "common/clock.h"
#include "bpf/guard.h"
#include "common/error.h"
#include "cli/policy_cmd.h"
#include "control/registry.h"
#include "policy/parser.h"

namespace cordon::cli {

using nlohmann::json;

// The policy file's text; nothing (and its diagnostics on stderr) when it cannot be read.
std::optional<std::string> read_policy_or_report(const std::string& file)
{
    policy::Diagnostics errs;
    auto text = policy::read_policy_file(file, errs);
    if (!text)
        for (const auto& d : errs)
            std::fprintf(stderr, "%s\n", d.str().c_str());
    return text;
}

namespace {

std::string age(std::int64_t s)
{
    if (s < 120)
        return fmt::format("{}s", s);
    if (s < 7200)
        return fmt::format("{}m", s / 60);
    return fmt::format("{}h", s / 3600);
}

} // namespace

namespace {

void agent_row(const json& a, const char* indent)
{
    const std::string name = indent + a.at("name").get<std::string>();
    const std::string state = a.value("state", std::string("guarded"));
    std::printf("%-32s %10u %-8s %-8s %-7s %5u %4u %5llu %7llu %5s  %-22s %-40s %s (sha256 "
                "%.12s)%s\n",
                name.c_str(), a.at("id").get<unsigned>(), a.at("origin").get<std::string>().c_str(),
                state.c_str(), a.value("mode", std::string("-")).c_str(), a.value("score", 0u),
                a.value("tier", 0u),
                static_cast<unsigned long long>(a.value("processes", std::uint64_t{0})),
                static_cast<unsigned long long>(a.at("denials_seen").get<std::uint64_t>()),
                age(a.at("age_s").get<std::int64_t>()).c_str(),
                a.value("layers", std::string("-")).c_str(),
                a.at("cgroup").get<std::string>().c_str(),
                a.at("policy").at("file").get<std::string>().c_str(),
                a.at("policy").at("sha256").get<std::string>().c_str(),
                a.value("killed", false)   ? " KILLED"
                : a.value("frozen", false) ? " FROZEN"
                                           : "");
    // The addresses its own DNS answers hold now (the gateway's table).
    for (const auto& b : a.value("dns", json::array()))
        std::printf("%s  %s -> %s  (%s, %llds left)\n", indent,
                    b.value("name", std::string()).c_str(), b.value("address", std::string()).c_str(),
                    b.value("rule", std::string()).c_str(),
                    static_cast<long long>(b.value("expires_in_ms", std::int64_t{0}) / 1000));
}

} // namespace

int agents(bool as_json)
{
    auto c = connect_or_fail();
    const auto r = c.call(api::request(api::Op::Agents));
    const json templates = r.value("templates", json::array());
    if (as_json) {
        std::printf("%s\n", json{{"agents", r.at("agents")}, {"templates", templates}}
                                .dump(2)
                                .c_str());
        return 0;
    }
    std::printf("%-32s %10s %-8s %-8s %-7s %5s %4s %5s %7s %5s  %-22s %-40s %s\n", "NAME", "ID",
                "ORIGIN", "STATE", "MODE", "SCORE", "TIER", "PROCS", "DENIALS", "AGE", "LAYERS",
                "CGROUP", "POLICY");
    for (const auto& a : r.at("agents"))
        if (!a.contains("template"))
            agent_row(a, "");
    // Each template, with the agents it made below it.
    for (const auto& t : templates) {
        agent_row(t, "");
        for (const auto& a : r.at("agents"))
            if (a.value("template", std::string()) == t.at("name").get<std::string>())
                agent_row(a, "  ");
    }
    return 0;
}

int status(bool as_json)
{
    auto c = api::Client::connect(api::socket_path());
    if (!c) {
        if (as_json)
            std::printf("%s\n", json{{"daemon", nullptr}}.dump(2).c_str());
        else
            std::printf("cordond: not running (no daemon on %s); `cordon run` works embedded\n",
                        api::socket_path().c_str());
        return 3; // as systemctl status: not running
    }
    const auto r = c->call(api::request(api::Op::Status));
    if (as_json) {
        std::printf("%s\n", r.dump(2).c_str());
        return 0;
    }
    const auto& d = r.at("daemon");
    std::printf("cordond:   running, pid %d, version %s, up %s%s\n", d.at("pid").get<int>(),
                d.at("version").get<std::string>().c_str(),
                age(d.at("uptime_s").get<std::int64_t>()).c_str(),
                d.at("adopted_pinned_state").get<bool>() ? " (adopted the pinned program set)"
                                                         : "");
    std::printf("backend:   %s\n", r.at("backend").get<std::string>().c_str());
    std::printf("programs:  %zu attached, pinned in %s\n", r.at("programs").size(),
                r.at("pin_dir").get<std::string>().c_str());
    const auto u = [](const nlohmann::json& j, const char* k) {
        return static_cast<unsigned long long>(j.value(k, std::uint64_t{0}));
    };
    if (r.contains("cgroups")) {
        const auto& g = r.at("cgroups");
        std::printf("cgroups:   %llu bound as made, %llu template agents made, %llu removed, "
                    "%llu FAILED (tables full: frozen by cordond)\n",
                    u(g, "bound"), u(g, "children_made"), u(g, "removed"), u(g, "failed"));
    }
    std::printf("agents:    %zu (%zu policies loaded)\n", r.at("agents").get<std::size_t>(),
                r.at("policies").get<std::size_t>());
    const auto& dec = r.at("decisions");
    std::printf("decisions: %llu denied, %llu audited, %llu killed\n",
                static_cast<unsigned long long>(dec.at("deny").get<std::uint64_t>()),
                static_cast<unsigned long long>(dec.at("audit").get<std::uint64_t>()),
                static_cast<unsigned long long>(dec.at("kill").get<std::uint64_t>()));
    std::printf("lost:      %llu events (ring buffer full; decisions were still enforced), %llu "
                "to slow subscribers, %llu malformed\n",
                static_cast<unsigned long long>(r.at("lost_events").get<std::uint64_t>()),
                static_cast<unsigned long long>(r.at("subscriber_drops").get<std::uint64_t>()),
                static_cast<unsigned long long>(r.at("malformed_events").get<std::uint64_t>()));
    if (const auto full = r.value("task_table_full", std::uint64_t{0}); full > 0)
        std::printf("tasks:     %llu forks of task-bound processes found the host's table full "
                    "(the forking agent was killed)\n",
                    static_cast<unsigned long long>(full));
    const auto st = r.value("store", nlohmann::json::object());
    if (!st.value("enabled", false)) {
        std::printf("store:     none (cordond runs with --no-store and no --events-jsonl)\n");
        return 0;
    }
    for (const char* sink : {"sqlite", "jsonl"}) {
        if (!st.contains(sink))
            continue;
        const auto& k = st[sink];
        std::printf("store:     %s %s: %llu records, %llu NOT stored (%llu write errors)%s%s\n",
                    sink, k.value("path", "").c_str(), u(k, std::string(sink) == "sqlite" ? "stored" : "written"),
                    u(k, "lost"), u(k, "write_errors"),
                    k.value("last_error", "").empty() ? "" : "; last error: ",
                    k.value("last_error", "").c_str());
        if (!k.value("corrupt_moved", "").empty())
            std::printf("           a corrupt database was moved aside to %s\n",
                        k.value("corrupt_moved", "").c_str());
    }
    std::printf("           queue: %llu behind (%lld ms), %llu dropped\n", u(st, "lag_records"),
                static_cast<long long>(st.value("lag_ms", std::int64_t{0})), u(st, "queue_dropped"));
    return 0;
}

int attach(const std::string& cgroup, const std::string& policy_file,
           const std::optional<std::string>& name, const std::optional<std::string>& mode,
           bool wait)
{
    const auto text = read_policy_or_report(policy_file);
    if (!text)
        return 1;
    const auto ctx = make_context(std::nullopt, std::nullopt);
    auto c = connect_or_fail();
    std::error_code ec;
    const auto abs = std::filesystem::absolute(cgroup, ec);
    auto q = api::request(api::Op::Attach);
    q.name = name;
    q.cgroup = ec ? cgroup : abs.string();
    q.policy = api::PolicyText{.file = policy_file, .text = *text};
    q.user = ctx.user;
    q.home = ctx.home;
    q.workspace = ctx.workspace;
    q.mode = mode;
    if (wait)
        q.wait = true;
    const auto r = c.call(q);
    for (const auto& w : r.at("warnings"))
        std::fprintf(stderr, "cordon: warning: %s\n", w.get<std::string>().c_str());
    const auto& a = r.at("agent");
    std::printf("%s\n", a.at("name").get<std::string>().c_str());
    const auto state = a.value("state", std::string("guarded"));
    if (state == "template") {
        std::fprintf(stderr, "cordon: guarding every cgroup that matches %s, now and later, as "
                             "agents %s.* on the %s backend\n",
                     a.at("cgroup").get<std::string>().c_str(),
                     a.at("name").get<std::string>().c_str(),
                     r.at("backend").get<std::string>().c_str());
        return 0;
    }
    if (state == "waiting") {
        std::fprintf(stderr, "cordon: agent %s waits for %s: guarded from the moment it is made, "
                             "on the %s backend\n",
                     a.at("name").get<std::string>().c_str(),
                     a.at("cgroup").get<std::string>().c_str(),
                     r.at("backend").get<std::string>().c_str());
        return 0;
    }
    std::fprintf(stderr, "cordon: guarding %s (%llu processes) as agent %s on the %s backend\n",
                 a.at("cgroup").get<std::string>().c_str(),
                 static_cast<unsigned long long>(a.at("processes").get<std::uint64_t>()),
                 a.at("name").get<std::string>().c_str(), r.at("backend").get<std::string>().c_str());
    return 0;
}

int detach(const std::string& name)
{
    auto c = connect_or_fail();
    c.call([&] { auto q = api::request(api::Op::Detach); q.name = name; return q; }());
    std::fprintf(stderr, "cordon: agent %s is no longer guarded\n", name.c_str());
    return 0;
}

int explain(const ExplainOptions& o)
{
    if (o.path.empty() == o.connect.empty())
        throw Error("explain names one access: PATH [--access read|write|exec], or --connect "
                    "ADDR:PORT[/tcp|udp]");
    auto q = api::request(api::Op::Explain);
    q.name = o.name;
    q.kind = o.connect.empty() ? o.access : "connect";
    // Absolute here: cordond's working directory is not this one.
    q.target = o.connect.empty() ? std::filesystem::absolute(o.path).lexically_normal().string()
                                 : o.connect;
    auto c = connect_or_fail();
    auto r = c.call(q);
    if (o.json) {
        r.erase("v");
        r.erase("ok");
        std::printf("%s\n", r.dump(2).c_str());
        return 0;
    }
    const auto& by = r.at("decided_by");
    const auto rule = by.at("rule").get<std::string>();
    std::printf("%s: %s %s %s (%s%s%s)\n  %s\n", r.at("verdict").get<std::string>().c_str(),
                o.name.c_str(), r.at("access").get<std::string>().c_str(),
                r.at("looked_up").get<std::string>().c_str(),
                by.at("layer").get<std::string>().c_str(), rule.empty() ? "" : ": ",
                rule.c_str(), r.at("why").get<std::string>().c_str());
    for (const auto& n : r.at("notes"))
        std::printf("  note: %s\n", n.get<std::string>().c_str());
    return 0;
}

int agent_op(api::Op op, const std::string& name, const std::string& reason,
             const std::string& mode)
{
    // Already above every agent process when root: the front end (or main) raised kill and
    // freeze before parsing.
    if (op == api::Op::Kill || op == api::Op::Freeze)
        return stop_agent(op, name, reason);
    auto c = connect_or_fail();
    auto q = api::request(op);
    q.name = name;
    if (!reason.empty())
        q.reason = reason;
    if (op == api::Op::Mode)
        q.mode = mode;
    c.call(q);
    // Only thaw and mode remain here (verbs.cpp's add_controls): a chain, not a switch.
    if (op == api::Op::Thaw)
        std::printf("thawed agent %s\n", name.c_str());
    else
        std::printf("agent %s is in %s mode\n", name.c_str(), mode.c_str());
    return 0;
}

int apply(const std::string& name, const std::string& file, const std::optional<std::string>& mode,
          const std::string& reason)
{
    const auto text = read_policy_or_report(file);
    if (!text)
        return 1;
    auto c = connect_or_fail();
    auto q = api::request(api::Op::Apply);
    q.name = name;
    q.policy = api::PolicyText{.file = file, .text = *text};
    q.mode = mode;
    if (!reason.empty())
        q.reason = reason;
    const auto r = c.call(q);
    for (const auto& w : r.at("warnings"))
        std::fprintf(stderr, "cordon: warning: %s\n", w.get<std::string>().c_str());
    std::printf("applied %s to agent %s (policy %u -> %u, %s mode); the switch took %.1f us\n",
                file.c_str(), name.c_str(), r.at("old_policy").get<unsigned>(),
                r.at("new_policy").get<unsigned>(), r.at("mode").get<std::string>().c_str(),
                static_cast<double>(r.at("switched_ns").get<std::int64_t>() -
                                    r.at("recorded_ns").get<std::int64_t>()) / 1e3);
    return 0;
}

int teardown(const TeardownOptions& o)
{
    if (::geteuid() != 0)
        throw Error("cordon teardown needs root");
    if (api::Client::connect(api::socket_path()))
        throw Error("cordond is running; stop it first (systemctl stop cordond), then run "
                    "`cordon teardown` again");
    const auto mount = agents::cgroup2_mount();
    std::vector<control::AgentRecord> records;
    try {
        records = control::load_registry(o.registry);
    } catch (const Error& e) {
        std::fprintf(stderr, "cordon: warning: %s\n", e.what());
    }
    for (const auto& r : records) {
        if (r.origin != control::Origin::Run) {
            std::fprintf(stderr, "cordon: %s (%s) is no longer guarded; its processes run on\n",
                         r.name.c_str(), r.cgroup.c_str());
            continue;
        }
        // Started by cordon and about to lose its guard: it ends (fails closed).
        try {
            auto cg = agents::Cgroup::adopt(mount, r.cgroup);
            cg.remove();
            std::fprintf(stderr, "cordon: ended agent %s and removed %s\n", r.name.c_str(),
                         r.cgroup.c_str());
        } catch (const Error& e) {
            std::fprintf(stderr, "cordon: agent %s: %s\n", r.name.c_str(), e.what());
        }
    }
    bpf::Guard::unpin(o.pin_dir);
    std::error_code ec;
    std::filesystem::remove_all(o.registry, ec);
    std::fprintf(stderr, "cordon: removed %s; cordon's programs are detached and unloaded once no "
                 "process holds them\n",
                 o.pin_dir.c_str());
    return 0;
}

} // namespace cordon::cli
