// SPDX-License-Identifier: Apache-2.0
#include "policy/render.h"

#include <algorithm>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "policy/duration.h"

namespace cordon::policy {
namespace {

const char* trace_name(Trace t)
{
    return t == Trace::All ? "all" : t == Trace::Exec ? "exec" : "decisions";
}

std::string ports_text(const std::vector<PortRange>& ports)
{
    if (ports.empty())
        return "all";
    std::string out;
    for (const auto& r : ports) {
        if (!out.empty())
            out += ",";
        out += r.lo == r.hi ? std::to_string(r.lo) : fmt::format("{}-{}", r.lo, r.hi);
    }
    return out;
}

std::string tier_text(const Policy& p, const std::optional<std::string>& tier)
{
    if (!tier)
        return "";
    (void)p;
    return fmt::format("  tier >= {}", *tier);
}

template <typename Rule>
std::string header(const Policy& p, const char* cls, const RuleClass<Rule>& rc)
{
    if (p.overlay)
        return fmt::format("{} (no default: what no rule names, the agent's policy decides)\n",
                           cls);
    return fmt::format("{} (default {}, line {})\n", cls, action_name(rc.default_action),
                       rc.default_pos.line);
}

std::string trust_text(const Trust& t)
{
    if (!t.scoring)
        return "trust: none (one tier, no scoring)\n";
    std::string tiers;
    for (const auto& tier : t.tiers) {
        tiers += fmt::format("{}{} >= {}", tiers.empty() ? "" : ", ", tier.name, tier.min_score);
        if (tier.on_enter != TierEnter::Report)
            tiers += fmt::format(" (on enter: {})", tier_enter_name(tier.on_enter));
    }
    const std::string burst =
        t.burst ? fmt::format(", burst {} for {} denials within {}", t.burst->penalty,
                              t.burst->denials, duration_text(t.burst->window_ms))
                : std::string();
    return fmt::format("trust: initial {}; tiers {}; penalties deny {}, kill {}{}; recovery "
                       "{}/min\n",
                       t.initial, tiers, t.penalty_deny, t.penalty_kill, burst,
                       t.recovery_per_minute);
}

std::string path_rules_text(const Policy& p, const RuleClass<PathRule>& rc, bool files)
{
    std::string out;
    for (const auto& r : rc.rules) {
        out += fmt::format("  line {:<5} {:<6} {:<40} {:<6}{}{}\n", r.pos.line,
                           action_name(r.action), r.path, r.dir ? "below" : "exact",
                           files ? "  " + access_names(r.access) : "", tier_text(p, r.tier));
        if (r.written != r.path)
            out += fmt::format("  {:<10} {:<6} (written {})\n", "", "", r.written);
    }
    return out;
}

nlohmann::json pos_json(SourcePos p)
{
    return {{"line", p.line}, {"column", p.column}};
}

nlohmann::json path_rules_json(const Policy& p, const RuleClass<PathRule>& rc, bool files)
{
    nlohmann::json rules = nlohmann::json::array();
    for (const auto& r : rc.rules) {
        nlohmann::json j = {{"id", r.id},         {"source", pos_json(r.pos)},
                            {"path", r.path},     {"written", r.written},
                            {"match", r.dir ? "below" : "exact"},
                            {"action", action_name(r.action)}};
        if (files)
            j["access"] = access_names(r.access);
        if (r.tier)
            j["tier"] = *r.tier;
        rules.push_back(j);
    }
    if (p.overlay)
        return {{"rules", rules}};
    return {{"default", action_name(rc.default_action)},
            {"default_source", pos_json(rc.default_pos)},
            {"rules", rules}};
}

nlohmann::json hardening_json(const Hardening& h)
{
    nlohmann::json doors = nlohmann::json::array();
    for (const auto& d : side_doors())
        doors.push_back({{"name", d.name},
                         {"refused", !h.allows(d.door)},
                         {"syscalls", d.syscalls},
                         {"compat_only", d.compat_only}});
    nlohmann::json caps = nlohmann::json::array();
    for (const auto& d : dropped_capabilities())
        caps.push_back({{"name", d.name}, {"why", d.why},
                        {"kept_when_raw_sockets_allowed", d.kept_for_raw_sockets}});
    return {{"no_new_privs", h.no_new_privs}, {"side_doors", doors},
            {"dropped_capabilities", caps}};
}

nlohmann::json inbound_json(const Policy& p)
{
    nlohmann::json rules = nlohmann::json::array();
    for (const auto& r : p.inbound.rules)
        rules.push_back({{"id", r.id},
                         {"source", pos_json(r.pos)},
                         {"cidr", cidr_text(*r.cidr)},
                         {"ports", ports_text(r.ports)},
                         {"protocol", protocol_names(r.protocols)},
                         {"action", action_name(r.action)}});
    return {{"default", action_name(p.inbound.default_action)},
            {"implied", p.inbound_implied},
            {"rules", rules}};
}

// The network rules, as both kinds print them below the network header.
std::string net_rules_text(const Policy& p)
{
    std::string out;
    for (const auto& r : p.network.rules) {
        std::string what = r.cidr ? cidr_text(*r.cidr) : r.host;
        out += fmt::format("  line {:<5} {:<6} {:<40} ports {}  {}{}\n", r.pos.line,
                           action_name(r.action), what, ports_text(r.ports),
                           protocol_names(r.protocols), tier_text(p, r.tier));
        if (!r.host.empty()) {
            std::string addrs;
            for (const auto& c : r.resolved)
                addrs += (addrs.empty() ? "" : ", ") + cidr_text(c);
            const bool gateway = !p.overlay && (r.action == Action::Allow ||
                                                 r.action == Action::Audit ||
                                                 r.host.starts_with("*."));
            out += fmt::format("  {:<10} {:<6} -> {}\n", "", "",
                               !addrs.empty() ? addrs
                               : gateway      ? std::string("the agent's own answers (DNS gateway)")
                                              : std::string("(not resolved)"));
        }
    }
    if (!p.overlay && std::any_of(p.network.rules.begin(), p.network.rules.end(),
                                  [](const auto& r) { return !r.host.empty(); }))
        out += fmt::format("  DNS: names no rule names are {}; answers stay allowed for their "
                           "TTL + {}s\n",
                           p.dns_pass ? "passed (their addresses allow nothing)" : "refused",
                           p.dns_grace_s);
    return out;
}

// A TaskOverlay: its rules only (it has no defaults, trust, hardening or inbound rules).
std::string overlay_text(const Policy& p)
{
    std::string out = fmt::format("task overlay {} ({}): during a task, its rules decide what "
                                  "they name; the agent's policy decides the rest\n",
                                  p.name, p.file);
    out.append("\n").append(header(p, "exec", p.exec)).append(path_rules_text(p, p.exec, false));
    out.append("\n").append(header(p, "files", p.files)).append(path_rules_text(p, p.files, true));
    out.append("\n").append(header(p, "network", p.network)).append(net_rules_text(p));
    return out;
}

nlohmann::json net_rules_json(const Policy& p)
{
    nlohmann::json net = nlohmann::json::array();
    for (const auto& r : p.network.rules) {
        nlohmann::json j = {{"id", r.id},
                            {"source", pos_json(r.pos)},
                            {"ports", ports_text(r.ports)},
                            {"protocol", protocol_names(r.protocols)},
                            {"action", action_name(r.action)}};
        if (r.cidr) {
            j["cidr"] = cidr_text(*r.cidr);
        } else {
            j["host"] = r.host;
            nlohmann::json addrs = nlohmann::json::array();
            for (const auto& c : r.resolved)
                addrs.push_back(cidr_text(c));
            j["resolved"] = addrs;
        }
        if (r.tier)
            j["tier"] = *r.tier;
        net.push_back(j);
    }
    return net;
}

nlohmann::json trust_json(const Trust& t)
{
    nlohmann::json tiers = nlohmann::json::array();
    for (const auto& tier : t.tiers)
        tiers.push_back({{"name", tier.name},
                         {"min", tier.min_score},
                         {"on_enter", tier_enter_name(tier.on_enter)}});
    nlohmann::json penalties = {{"deny", t.penalty_deny}, {"kill", t.penalty_kill}};
    if (t.burst)
        penalties["burst"] = {{"denials", t.burst->denials},
                              {"within", duration_text(t.burst->window_ms)},
                              {"within_ms", t.burst->window_ms},
                              {"penalty", t.burst->penalty}};
    return {{"scoring", t.scoring},
            {"initial", t.initial},
            {"tiers", tiers},
            {"penalties", penalties},
            {"recovery_per_minute", t.recovery_per_minute}};
}

} // namespace

std::string show_text(const Policy& p)
{
    if (p.overlay)
        return overlay_text(p);
    std::string out = fmt::format("policy {} ({}), mode {}, trace {}\n", p.name, p.file,
                                  mode_name(p.mode), trace_name(p.trace));
    out += trust_text(p.trust);
    out += fmt::format("hardening (seccomp, in every process of the agent): no_new_privs {}\n",
                       p.hardening.no_new_privs ? "on" : "off");
    for (const auto& d : side_doors())
        out += fmt::format("  {:<8} {:<13} {}{}\n", p.hardening.allows(d.door) ? "allowed" : "refused",
                           d.name, d.syscalls, d.compat_only ? " (compat backend only)" : "");
    std::string caps;
    const std::uint64_t refused = refused_capabilities(p);
    for (const auto& d : dropped_capabilities())
        if (refused & (std::uint64_t{1} << d.cap))
            caps.append(caps.empty() ? "" : ", ").append(d.name.substr(4));
    out += fmt::format("capabilities removed from every process of the agent: {}\n", caps);
    out += fmt::format("tasks: isolation {} ({})\n", p.tasks_open ? "open" : "strict",
                       p.tasks_open ? "processes of one agent may reach into each other across tasks"
                                    : "no process reaches into one of another task (lsm, fmod_ret)");
    // Appended piece by piece: GCC 12 at -O3 warns (-Wrestrict) on "\n" + std::string.
    out.append("\n").append(header(p, "exec", p.exec)).append(path_rules_text(p, p.exec, false));
    out.append("\n").append(header(p, "files", p.files)).append(path_rules_text(p, p.files, true));
    out.append("\n").append(header(p, "network", p.network));
    out += fmt::format("  raw, ICMP echo and packet sockets: {}\n", action_name(p.raw_sockets));
    out += fmt::format("  abstract Unix sockets: {}; path-named Unix sockets: as a write to "
                       "their path (files)\n",
                       action_name(p.unix_abstract));
    out += net_rules_text(p);
    out += fmt::format("\ninbound: listen (tcp) and bind (udp), default {}{}\n",
                       action_name(p.inbound.default_action),
                       p.inbound_implied ? " (implied: the policy has no network.inbound)" : "");
    for (const auto& r : p.inbound.rules)
        out += fmt::format("  line {:<5} {:<6} {:<40} ports {}  {}{}\n", r.pos.line,
                           action_name(r.action), cidr_text(*r.cidr), ports_text(r.ports),
                           protocol_names(r.protocols), tier_text(p, r.tier));
    return out;
}

std::string show_json(const Policy& p)
{
    nlohmann::json doc = {
        {"file", p.file},
        {"apiVersion", p.api_version},
        {"kind", p.overlay ? "TaskOverlay" : "AgentPolicy"},
        {"name", p.name},
        {"exec", path_rules_json(p, p.exec, false)},
        {"files", path_rules_json(p, p.files, true)},
    };
    if (p.overlay) {
        doc["network"] = {{"rules", net_rules_json(p)}};
    } else {
        doc["mode"] = mode_name(p.mode);
        doc["trace"] = trace_name(p.trace);
        doc["trust"] = trust_json(p.trust);
        doc["hardening"] = hardening_json(p.hardening);
        doc["tasks"] = {{"isolation", p.tasks_open ? "open" : "strict"}};
        doc["network"] = {{"default", action_name(p.network.default_action)},
                          {"default_source", pos_json(p.network.default_pos)},
                          {"dns", {{"unknown", p.dns_pass ? "pass" : "refuse"},
                                   {"grace_seconds", p.dns_grace_s}}},
                          {"raw_sockets", action_name(p.raw_sockets)},
                          {"unix_abstract", action_name(p.unix_abstract)},
                          {"inbound", inbound_json(p)},
                          {"rules", net_rules_json(p)}};
    }
    return doc.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
}

} // namespace cordon::policy
