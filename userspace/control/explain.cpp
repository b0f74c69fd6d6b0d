// SPDX-License-Identifier: Apache-2.0
#include "control/explain.h"

#include <arpa/inet.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <filesystem>
#include <functional>
#include <optional>
#include <utility>

#include <fmt/format.h>

#include "common/clock.h"
#include "common/error.h"
#include "events/format.h"

namespace cordon::control {

namespace fs = std::filesystem;
using nlohmann::json;
using policy::GrantKind;

namespace {

// CORDON_PATH_DEPTH of bpf/path.bpf.h (kernel-private, not in abi.h): a path with more names
// than this is unresolvable to the kernel, and denied.
constexpr std::size_t kKernelPathDepth = 64;

// cordon_rule_hit, and which layer put it there.
struct Hit {
    std::uint32_t rule_id = 0;
    std::uint8_t action = CORDON_ACTION_DENY;
    std::uint8_t min_tier = 0;
    std::string layer = "default";
    std::string under; ///< mode: the layer whose refusal audit mode lets through
};

Hit hit(std::uint32_t rule_id, std::uint8_t action, std::uint8_t min_tier, std::string layer)
{
    Hit h;
    h.rule_id = rule_id;
    h.action = action;
    h.min_tier = min_tier;
    h.layer = std::move(layer);
    return h;
}

// What a decision copies at its start (cordon_enter), for the agent-wide task.
struct Entry {
    std::uint64_t cgid = 0;
    cordon_agent agent{};
    std::optional<cordon_agent_live> live;
    std::optional<cordon_policy> policy;
    std::uint32_t tier = 0;
    std::uint64_t task_id = 0;
    cordon_task task{};
    const TaskRecord* task_rec = nullptr;
};

// A lookup of one compiled set (the policy, an overlay, a grant set) for this access.
using Finder = std::function<std::optional<Hit>(std::uint32_t set)>;

std::optional<Hit> find_path(const bpf::Guard& g, std::uint32_t set, std::uint8_t cls,
                             const std::string& path)
{
    // As cordon_path_rule builds the key: the path and its NUL, cut to the key's size.
    cordon_path_key key{};
    const std::size_t n = std::min(path.size() + 1, sizeof(key.path));
    std::memcpy(key.path, path.data(), std::min(path.size(), n));
    key.policy_id = set;
    key.path_class = cls;
    key.prefixlen = static_cast<__u32>((sizeof(key.policy_id) + sizeof(key.path_class) + n) * 8);
    const auto v = g.path_rule(key);
    if (!v)
        return std::nullopt;
    return hit(v->rule_id, v->action, v->min_tier, "");
}

std::optional<Hit> find_net(const bpf::Guard& g, std::uint32_t set, const ExplainQuery& q)
{
    // As net_find: the longest prefix, then its first slot that takes the port and protocol.
    cordon_net_key key{};
    key.policy_id = set;
    key.family = static_cast<__u8>(q.addr.family);
    key.prefixlen = 40 + (q.addr.family == 4 ? 32 : 128);
    std::memcpy(key.addr, q.addr.addr.data(), sizeof(key.addr));
    const auto v = g.net_rule(key);
    for (std::uint32_t i = 0; v && i < v->nslots && i < CORDON_NET_SLOTS; ++i) {
        const auto& s = v->slots[i];
        if (q.port >= s.port_lo && q.port <= s.port_hi && (s.protocols & q.protocol))
            return hit(s.rule_id, s.action, s.min_tier, "");
    }
    return std::nullopt;
}

// As net_find_answered: an address the agent's own DNS answer gave a host rule of its policy,
// while that answer lives (the gateway's table), before the compiled prefixes.
std::optional<Hit> find_answered(const bpf::Guard& g, std::uint64_t agent, std::uint32_t set,
                                 const ExplainQuery& q, std::uint64_t now)
{
    cordon_dns_host_key k{};
    k.agent = agent;
    k.policy_id = set;
    k.family = static_cast<__u8>(q.addr.family);
    std::memcpy(k.addr, q.addr.addr.data(), sizeof(k.addr));
    const auto v = g.dns_host(k);
    for (std::uint32_t i = 0; v && i < v->nslots && i < CORDON_NET_SLOTS; ++i) {
        const auto& s = v->slots[i];
        if (s.expires_ns > now && q.port >= s.slot.port_lo && q.port <= s.slot.port_hi &&
            (s.slot.protocols & q.protocol))
            return hit(s.slot.rule_id, s.slot.action, s.slot.min_tier, "");
    }
    return std::nullopt;
}

std::uint8_t path_class(GrantKind k)
{
    switch (k) {
    case GrantKind::Exec: return CORDON_PATH_EXEC;
    case GrantKind::Read: return CORDON_PATH_READ;
    case GrantKind::Write: return CORDON_PATH_WRITE;
    case GrantKind::Connect: break;
    }
    return CORDON_PATH_CLASS_MAX;
}

// The agent's entry and its agent-wide task, as cordon_enter and cordon_task_of find them.
Entry enter(Controller& ctl, const AgentRecord& rec, std::uint64_t now, ExplainQuery& q)
{
    auto& g = ctl.guard();
    Entry e;
    e.cgid = rec.key;
    const auto a = g.agent(e.cgid);
    if (!a)
        throw Error("the kernel has no entry for agent " + rec.name + "; it is being removed");
    e.agent = *a;
    e.live = g.live(e.cgid);
    if (e.live)
        e.policy = g.policy_settings(a->policy_id);
    // The tier the kernel computes at the agent's next decision (pending set, recovery).
    e.tier = e.policy ? ctl.trust(rec.name).tier : 0;
    if (a->task_id) {
        const auto t = g.task(a->task_id);
        if (t && t->cgid == e.cgid && (!t->expires_ns || now < t->expires_ns)) {
            e.task_id = a->task_id;
            e.task = *t;
        }
    }
    for (const auto& t : rec.tasks)
        if (e.task_id && t.number == e.task_id)
            e.task_rec = &t;
    if (a->flags & CORDON_AGENT_F_PROC_TASKS)
        q.notes.push_back("the agent has process-bound tasks: a process bound to one decides with "
                          "that task's overlay and grants; this is the answer for a process bound "
                          "to none");
    return e;
}

// The policy's rule, else the class default (cordon_path_lookup, net_decide_key).
Hit policy_hit(const Entry& e, const ExplainQuery& q, const Finder& find)
{
    if (auto h = find(e.agent.policy_id)) {
        h->layer = "rule";
        return *h;
    }
    Hit h;
    if (!e.policy)
        return h; // missing settings: denied (fail closed)
    if (q.kind == GrantKind::Connect) {
        h.action = e.policy->net_default;
        h.rule_id = e.policy->net_default_rule_id;
    } else if (q.kind == GrantKind::Exec) {
        h.action = e.policy->exec_default;
        h.rule_id = e.policy->exec_default_rule_id;
    } else {
        h.action = e.policy->file_default;
        h.rule_id = e.policy->file_default_rule_id;
    }
    return h;
}

// cordon_grantable: a deny, or an allow or audit below its tier; never kill or freeze.
bool grantable(std::uint32_t tier, const Hit& h)
{
    if (h.action == CORDON_ACTION_DENY)
        return true;
    return (h.action == CORDON_ACTION_ALLOW || h.action == CORDON_ACTION_AUDIT) &&
           tier < h.min_tier;
}

// cordon_grant_live, by the kernel's clock.
bool grant_live(const bpf::Guard& g, const Entry& e, std::uint32_t rule_id, std::uint64_t now)
{
    if (!(rule_id & CORDON_RULE_GRANT))
        return false;
    const auto gr = g.grant(rule_id & ~CORDON_RULE_GRANT);
    return gr && gr->cgid == e.cgid && (!gr->task_id || gr->task_id == e.task_id) &&
           now < gr->expires_ns;
}

// The task's overlay over the policy's hit, then a live grant over a refusal
// (cordon_path_layers, cordon_net_layers).
Hit layered(const bpf::Guard& g, const Entry& e, Hit h, const Finder& find, std::uint64_t now)
{
    if (e.task.overlay_id && h.action != CORDON_ACTION_KILL && h.action != CORDON_ACTION_FREEZE)
        if (auto o = find(e.task.overlay_id)) {
            h = *o;
            h.layer = "overlay";
        }
    if (!grantable(e.tier, h))
        return h;
    for (const auto set : {e.task.grant_set, e.agent.grant_set}) {
        const auto o = set ? find(set) : std::nullopt;
        if (o && grant_live(g, e, o->rule_id, now))
            return hit(o->rule_id, CORDON_ACTION_AUDIT, 0, "grant"); // cordon_granted
    }
    return h;
}

// cordon_verdict, naming the layer that changed the rule's word (stop, tier, mode).
std::uint8_t verdict_of(const Entry& e, Hit& h)
{
    if (e.live && cordon_agent_killed(&e.agent, &*e.live)) {
        h.layer = "kill flag";
        return CORDON_VERDICT_DENY;
    }
    if (e.live && cordon_agent_frozen(&e.agent, &*e.live)) {
        h.layer = "freeze";
        return CORDON_VERDICT_DENY;
    }
    if (!e.policy)
        return CORDON_VERDICT_DENY;
    std::uint8_t v = CORDON_VERDICT_DENY;
    if (h.action == CORDON_ACTION_ALLOW)
        v = CORDON_VERDICT_ALLOW;
    else if (h.action == CORDON_ACTION_AUDIT)
        v = CORDON_VERDICT_AUDIT;
    else if (h.action == CORDON_ACTION_KILL)
        v = CORDON_VERDICT_KILL;
    else if (h.action == CORDON_ACTION_FREEZE)
        v = CORDON_VERDICT_FREEZE;
    if ((v == CORDON_VERDICT_ALLOW || v == CORDON_VERDICT_AUDIT) && e.tier < h.min_tier) {
        v = CORDON_VERDICT_DENY;
        h.layer = "tier";
    }
    if (e.agent.mode == CORDON_MODE_AUDIT && v != CORDON_VERDICT_ALLOW) {
        v = CORDON_VERDICT_AUDIT;
        h.under = h.layer;
        h.layer = "mode";
    }
    return v;
}

std::string tier_name(const AgentRecord& rec, std::uint32_t tier)
{
    return tier < rec.tier_names.size() ? rec.tier_names[tier] : std::to_string(tier);
}

std::string why(const AgentRecord& rec, const Entry& e, const Hit& h, const std::string& rule)
{
    const std::string said =
        fmt::format("{} says {}", rule.empty() ? "its entry" : rule,
                    policy::action_name(static_cast<policy::Action>(h.action)));
    if (h.layer == "kill flag")
        return "agent " + rec.name + " is killed (by an operator or a kill rule): the kernel "
               "refuses it everything";
    if (h.layer == "freeze")
        return "agent " + rec.name + " is frozen (by an operator or a freeze rule): the kernel "
               "refuses it everything until it is thawed";
    if (!e.policy)
        return "the kernel has no policy or trust state for agent " + rec.name +
               ": every access is denied (fail closed)";
    if (h.layer == "unresolvable")
        return fmt::format("the path has more than {} names: the kernel cannot resolve it and "
                           "denies the access", kKernelPathDepth);
    if (h.layer == "rule")
        return "the longest matching rule, " + said;
    if (h.layer == "default")
        return "no rule matches; the class default, " + said;
    if (h.layer == "overlay")
        return "the overlay of task " + (e.task_rec ? e.task_rec->id : "?") + " decides: " + said;
    if (h.layer == "grant")
        return rule + " lifts the refusal until it expires; each use is reported as audit";
    if (h.layer == "tier")
        return fmt::format("{}, but only from tier {}; the agent is at tier {}", said,
                           tier_name(rec, h.min_tier), tier_name(rec, e.tier));
    Hit beneath = h;
    beneath.layer = h.under;
    return "the agent is in audit mode, so it is let through and reported; enforced: " +
           why(rec, e, beneath, rule);
}

} // namespace

ExplainQuery parse_explain(GrantKind kind, std::string_view target)
{
    // The grant grammar: an explain target is what a grant could name, narrowed to one access.
    auto parsed = policy::parse_grant_target(kind, target);
    if (!parsed.target)
        throw Error(parsed.error);
    const auto& t = *parsed.target;
    ExplainQuery q;
    q.kind = kind;
    q.target = std::string(target);
    if (kind != GrantKind::Connect) {
        q.looked_up = t.path;
        while (q.looked_up.size() > 1 && q.looked_up.back() == '/')
            q.looked_up.pop_back();
        return q;
    }
    const bool one_address = t.host.empty() && t.cidrs.size() == 1 &&
                             t.cidrs[0].prefix == (t.cidrs[0].family == 4 ? 32 : 128);
    if (!one_address || t.ports.size() != 1 || t.ports[0].lo != t.ports[0].hi)
        throw Error("explain --connect takes one address and one port: ADDR:PORT[/tcp|udp] "
                    "([ADDR]:PORT for IPv6; a host name may resolve differently when the agent "
                    "connects, so give the address)");
    q.addr = t.cidrs[0];
    q.port = t.ports[0].lo;
    // A connect without /udp is a TCP connection, as most are.
    q.protocol = t.protocols == policy::kUdp ? policy::kUdp : policy::kTcp;
    // ::ffff:a.b.c.d is decided as the IPv4 address it is (net_key_addr).
    static constexpr std::uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (q.addr.family == 6 && std::memcmp(q.addr.addr.data(), kMapped, 12) == 0) {
        std::array<std::uint8_t, 16> v4{};
        std::memcpy(v4.data(), q.addr.addr.data() + 12, 4);
        q.addr = policy::Cidr{.family = 4, .addr = v4, .prefix = 32};
    }
    char text[INET6_ADDRSTRLEN] = {};
    const bool v4 = q.addr.family == 4;
    ::inet_ntop(v4 ? AF_INET : AF_INET6, q.addr.addr.data(), text, sizeof(text));
    const char* proto = q.protocol == policy::kUdp ? "udp" : "tcp";
    q.looked_up = v4 ? fmt::format("{}:{}/{}", text, q.port, proto)
                     : fmt::format("[{}]:{}/{}", text, q.port, proto);
    return q;
}

void resolve_explain_path(ExplainQuery& q)
{
    if (q.kind == GrantKind::Connect)
        return;
    std::error_code ec;
    const auto resolved = fs::weakly_canonical(fs::path(q.looked_up), ec);
    if (ec)
        throw Error("cannot resolve " + q.looked_up + ": " + ec.message());
    if (!fs::exists(resolved, ec))
        q.notes.push_back("the path does not exist (as cordond sees it): this is the decision "
                          "for a file made at that name");
    q.looked_up = resolved.string();
    q.notes.push_back("resolved in cordond's mount namespace: an agent in another one (a "
                      "container) reaches files by its own root");
}

json explain(Controller& ctl, const AgentRecord& rec, const ExplainQuery& q)
{
    const auto now = static_cast<std::uint64_t>(monotonic_ns());
    ExplainQuery out = q;
    const Entry e = enter(ctl, rec, now, out);
    auto& g = ctl.guard();
    const auto cls = path_class(q.kind);
    const Finder find = [&](std::uint32_t set) -> std::optional<Hit> {
        if (q.kind != GrantKind::Connect)
            return find_path(g, set, cls, q.looked_up);
        // As net_decide_key: a cidr rule that refuses decides; then the agent's own answers.
        auto cidr = find_net(g, set, q);
        const bool refuses = cidr && cidr->action != CORDON_ACTION_ALLOW &&
                             cidr->action != CORDON_ACTION_AUDIT;
        if (set == e.agent.policy_id && !refuses)
            if (auto answered = find_answered(g, e.cgid, set, q, now)) {
                out.notes.push_back("decided by an address the agent's own DNS answer gave this "
                                    "rule's host, until that answer expires");
                return answered;
            }
        return cidr;
    };
    const auto depth = std::count(q.looked_up.begin(), q.looked_up.end(), '/');
    Hit h;
    if (q.kind != GrantKind::Connect && static_cast<std::size_t>(depth) > kKernelPathDepth)
        h.layer = "unresolvable"; // cordon_unresolvable: denied, no layers
    else
        h = layered(g, e, policy_hit(e, q, find), find, now);
    const auto v = verdict_of(e, h);
    // A stopped agent or an unresolvable path is refused before any rule is consulted.
    const bool no_rule = h.layer == "kill flag" || h.layer == "freeze" || h.layer == "unresolvable";
    const auto rule = no_rule ? std::string() : rule_source(&rec, e.task_rec, h.rule_id);
    return {{"name", rec.name},
            {"access", policy::grant_kind_name(q.kind)},
            {"target", q.target},
            {"looked_up", q.looked_up},
            {"verdict", events::verdict_name(v)},
            {"decided_by", {{"layer", h.layer},
                            {"rule", rule},
                            {"min_tier", tier_name(rec, h.min_tier)},
                            {"agent_tier", tier_name(rec, e.tier)}}},
            {"task", e.task_rec ? e.task_rec->id : ""},
            {"why", why(rec, e, h, rule)},
            {"notes", out.notes}};
}

} // namespace cordon::control
