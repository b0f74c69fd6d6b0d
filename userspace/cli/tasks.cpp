// SPDX-License-Identifier: Apache-2.0
// cordon trust, task, grant, grants, revoke: clients of cordond's API (docs/api.md).
#include <chrono>
#include <cstdio>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "api/client.h"
#include "cli/commands.h"
#include "common/error.h"
#include "policy/grant.h"

namespace cordon::cli {

using nlohmann::json;

namespace {

std::string when(std::int64_t unix_ms)
{
    if (unix_ms == 0)
        return "-";
    using namespace std::chrono;
    const auto now = duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
    const auto left = (unix_ms - now) / 1000;
    if (left <= 0)
        return "expired";
    if (left < 120)
        return fmt::format("in {}s", left);
    if (left < 7200)
        return fmt::format("in {}m", left / 60);
    return fmt::format("in {}h", left / 3600);
}

} // namespace

int trust(const std::string& name, std::optional<int> set, const std::string& reason, bool as_json)
{
    auto c = connect_or_fail();
    auto q = api::request(set ? api::Op::TrustSet : api::Op::Trust);
    q.name = name;
    if (set)
        q.score = *set;
    if (!reason.empty())
        q.reason = reason;
    const auto r = c.call(q);
    if (as_json) {
        json out = r;
        out.erase("v");
        out.erase("ok");
        std::printf("%s\n", out.dump(2).c_str());
        return 0;
    }
    std::printf("agent %s: score %u, tier %s", name.c_str(), r.at("score").get<unsigned>(),
                r.at("tier").get<std::string>().c_str());
    if (r.at("recovery_per_minute").get<unsigned>())
        std::printf(", recovering %u points a minute", r.at("recovery_per_minute").get<unsigned>());
    std::printf("\n");
    if (!r.at("scoring").get<bool>())
        std::printf("(its policy has no trust section: one tier, no scoring)\n");
    for (const auto& ch : r.at("recent")) {
        std::printf("  %s -> %s (%s), score %u%s%s\n",
                    ch.value("old_tier", "").c_str(), ch.value("new_tier", "").c_str(),
                    ch.value("cause", "").c_str(), ch.value("score", 0u),
                    ch.contains("on_enter") && ch.at("on_enter") != "allow"
                        ? (": " + ch.at("on_enter").get<std::string>()).c_str()
                        : "",
                    ch.contains("reason") && !ch.at("reason").get<std::string>().empty()
                        ? (": " + ch.at("reason").get<std::string>()).c_str()
                        : "");
    }
    return 0;
}

int task_begin(const TaskBegin& t)
{
    auto q = api::request(api::Op::TaskBegin);
    q.name = t.name;
    q.id = t.id;
    if (!t.ttl.empty())
        q.ttl = t.ttl;
    if (t.pid)
        q.pid = *t.pid;
    if (!t.reason.empty())
        q.reason = t.reason;
    if (!t.overlay.empty()) {
        const auto text = read_policy_or_report(t.overlay);
        if (!text)
            return 1;
        q.policy = api::PolicyText{.file = t.overlay, .text = *text};
    }
    auto c = connect_or_fail();
    const auto r = c.call(q);
    for (const auto& w : r.at("warnings"))
        std::fprintf(stderr, "cordon: warning: %s\n", w.get<std::string>().c_str());
    const auto& task = r.at("task");
    std::printf("agent %s is in task %s (number %llu)%s%s%s\n", t.name.c_str(), t.id.c_str(),
                static_cast<unsigned long long>(task.at("number").get<std::uint64_t>()),
                t.pid ? fmt::format(", bound to process {} and what it forks", *t.pid).c_str() : "",
                t.overlay.empty() ? "" : (", overlay " + t.overlay).c_str(),
                task.at("expires_ms").get<std::int64_t>()
                    ? (", ends " + when(task.at("expires_ms").get<std::int64_t>())).c_str()
                    : "");
    return 0;
}

int task_end(const std::string& name, const std::string& id, const std::string& reason)
{
    auto q = api::request(api::Op::TaskEnd);
    q.name = name;
    if (!id.empty())
        q.id = id;
    if (!reason.empty())
        q.reason = reason;
    auto c = connect_or_fail();
    c.call(q);
    std::printf("agent %s: task %s ended; its overlay and grants are gone\n", name.c_str(),
                id.empty() ? "(agent-wide)" : id.c_str());
    return 0;
}

int task_list(const std::string& name, bool as_json)
{
    auto q = api::request(api::Op::Tasks);
    q.name = name;
    auto c = connect_or_fail();
    const auto r = c.call(q);
    if (as_json) {
        std::printf("%s\n", r.at("tasks").dump(2).c_str());
        return 0;
    }
    std::printf("%-24s %-10s %-8s %-8s %-7s %s\n", "TASK", "NUMBER", "PID", "ENDS", "GRANTS",
                "OVERLAY");
    for (const auto& t : r.at("tasks"))
        std::printf("%-24s %-10llu %-8s %-8s %-7lld %s\n", t.at("id").get<std::string>().c_str(),
                    static_cast<unsigned long long>(t.at("number").get<std::uint64_t>()),
                    t.contains("pid") ? std::to_string(t.at("pid").get<int>()).c_str() : "agent",
                    when(t.at("expires_ms").get<std::int64_t>()).c_str(),
                    static_cast<long long>(t.at("grants").get<std::int64_t>()),
                    t.at("overlay").get<std::string>().empty()
                        ? "-"
                        : t.at("overlay").get<std::string>().c_str());
    return 0;
}

int grant(const GrantOptions& g)
{
    auto q = api::request(api::Op::Grant);
    q.name = g.name;
    int given = 0;
    using policy::GrantKind;
    for (auto [kind, target] :
         {std::pair{GrantKind::Exec, &g.exec}, std::pair{GrantKind::Read, &g.read},
          std::pair{GrantKind::Write, &g.write}, std::pair{GrantKind::Connect, &g.connect}})
        if (!target->empty()) {
            q.kind = policy::grant_kind_name(kind);
            q.target = *target;
            ++given;
        }
    if (given != 1)
        throw Error("a grant names exactly one of --exec PATH, --read PATH, --write PATH or "
                    "--connect CIDR|HOST[:PORTS][/tcp|udp]");
    q.ttl = g.ttl;
    if (!g.task.empty())
        q.task = g.task;
    if (!g.reason.empty())
        q.reason = g.reason;
    auto c = connect_or_fail();
    const auto r = c.call(q);
    const auto& gr = r.at("grant");
    std::printf("%u\n", gr.at("id").get<unsigned>());
    std::fprintf(stderr, "cordon: grant %u: agent %s may %s %s until %s%s\n",
                 gr.at("id").get<unsigned>(), g.name.c_str(), q.kind->c_str(),
                 gr.contains("path") ? gr.at("path").get<std::string>().c_str()
                                     : gr.at("addresses").dump().c_str(),
                 when(gr.at("expires_ms").get<std::int64_t>()).c_str(),
                 g.task.empty() ? "" : (" (task " + g.task + ")").c_str());
    return 0;
}

int grants(const std::string& name, bool as_json)
{
    auto q = api::request(api::Op::Grants);
    q.name = name;
    auto c = connect_or_fail();
    const auto r = c.call(q);
    if (as_json) {
        std::printf("%s\n", r.at("grants").dump(2).c_str());
        return 0;
    }
    std::printf("%-6s %-8s %-40s %-10s %-16s %s\n", "ID", "KIND", "TARGET", "ENDS", "TASK",
                "REASON");
    for (const auto& gr : r.at("grants"))
        std::printf("%-6u %-8s %-40s %-10s %-16s %s\n", gr.at("id").get<unsigned>(),
                    gr.at("kind").get<std::string>().c_str(),
                    gr.at("target").get<std::string>().c_str(),
                    when(gr.at("expires_ms").get<std::int64_t>()).c_str(),
                    gr.at("task").get<std::string>().empty()
                        ? "-"
                        : gr.at("task").get<std::string>().c_str(),
                    gr.at("reason").get<std::string>().c_str());
    return 0;
}

int revoke(const std::string& name, std::uint32_t id, const std::string& reason)
{
    auto q = api::request(api::Op::Revoke);
    q.name = name;
    q.grant = id;
    if (!reason.empty())
        q.reason = reason;
    auto c = connect_or_fail();
    c.call(q);
    std::printf("agent %s: grant %u revoked\n", name.c_str(), id);
    return 0;
}

} // namespace cordon::cli
