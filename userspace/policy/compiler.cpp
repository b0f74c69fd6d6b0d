// SPDX-License-Identifier: Apache-2.0
#include "policy/compiler.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <sys/socket.h>

#include <algorithm>
#include <bit>
#include <cstring>
#include <map>
#include <set>
#include <tuple>

#include "policy/net.h"
#include "policy/trust.h"

// Actions are written into the maps as their enum cordon_action values.
static_assert(static_cast<int>(cordon::policy::Action::Kill) == CORDON_ACTION_KILL);
static_assert(static_cast<int>(cordon::policy::Action::Freeze) == CORDON_ACTION_FREEZE);
// ... and tiers' on_enter as their enum cordon_tier_enter values.
static_assert(static_cast<int>(cordon::policy::TierEnter::Report) == CORDON_ENTER_REPORT);
static_assert(static_cast<int>(cordon::policy::TierEnter::Freeze) == CORDON_ENTER_FREEZE);
static_assert(static_cast<int>(cordon::policy::TierEnter::Kill) == CORDON_ENTER_KILL);

namespace cordon::policy {
namespace {

template <typename T> std::string bytes_of(const T& v)
{
    return std::string(reinterpret_cast<const char*>(&v), sizeof(v));
}

Cidr masked(Cidr c, int prefix)
{
    const int max = c.family == 4 ? 32 : 128;
    for (int bit = prefix; bit < max; ++bit)
        c.addr[bit / 8] &= static_cast<std::uint8_t>(~(0x80u >> (bit % 8)));
    c.prefix = prefix;
    return c;
}

struct SlotSource {
    cordon_net_slot slot;
    SourcePos pos;
};

using GroupKey = std::tuple<int, int, std::array<std::uint8_t, 16>>; // family, prefix, addr

class Compiler {
public:
    Compiler(const Policy& p, std::uint32_t id) : p_(p) { out_.policy_id = id; }

    CompileResult run()
    {
        settings();
        path_class(p_.exec, CORDON_PATH_EXEC, 0);
        path_class(p_.files, CORDON_PATH_READ, kRead);
        path_class(p_.files, CORDON_PATH_WRITE, kWrite);
        implied_dirs();
        guarded_ancestors(p_.exec);
        guarded_ancestors(p_.files);
        network(p_.network, 0);
        network(p_.inbound, CORDON_NET_INBOUND);
        host_names();
        std::sort(out_.nets.begin(), out_.nets.end(), [](const auto& a, const auto& b) {
            return std::memcmp(&a.first, &b.first, sizeof(a.first)) < 0;
        });
        if (path_entries_.size() > CORDON_MAX_PATH_ENTRIES)
            error_at({.line = 1, .column = 1},
                     "the policy compiles to " + std::to_string(path_entries_.size()) +
                         " path entries (rules, their directories and the directories above "
                         "them); expected at most " + std::to_string(CORDON_MAX_PATH_ENTRIES) +
                         ": use fewer or shallower path rules");
        for (const auto& [key, value] : path_entries_) {
            cordon_path_key k{};
            std::memcpy(&k, key.data(), sizeof(k));
            out_.paths.emplace_back(k, value);
        }
        if (!errors_.empty())
            return {.compiled = std::nullopt, .errors = std::move(errors_)};
        return {.compiled = std::move(out_), .errors = {}};
    }

private:
    void error_at(SourcePos pos, std::string msg)
    {
        errors_.push_back({.file = p_.file, .line = pos.line, .column = pos.column,
                           .message = std::move(msg)});
    }

    void settings()
    {
        auto& s = out_.settings;
        s.exec_default = static_cast<__u8>(p_.exec.default_action);
        s.file_default = static_cast<__u8>(p_.files.default_action);
        s.net_default = static_cast<__u8>(p_.network.default_action);
        s.raw_sockets = static_cast<__u8>(p_.raw_sockets);
        s.refused_caps = refused_capabilities(p_);
        s.open_doors = static_cast<__u8>(p_.hardening.reopened & 0xff);
        s.tasks_open = p_.tasks_open ? 1 : 0;
        s.dns_unknown = p_.dns_pass ? CORDON_DNS_PASS : CORDON_DNS_REFUSE;
        s.dns_grace_s = p_.dns_grace_s;
        s.unix_abstract = static_cast<__u8>(p_.unix_abstract);
        s.mode = p_.mode == Mode::Audit ? CORDON_MODE_AUDIT : CORDON_MODE_ENFORCE;
        s.trace_all = p_.trace == Trace::All ? 1 : 0;
        s.trace_exec = p_.trace == Trace::All || p_.trace == Trace::Exec ? 1 : 0;
        s.ntiers = static_cast<__u8>(p_.trust.tiers.size());
        s.penalty_deny = static_cast<__u16>(p_.trust.penalty_deny);
        s.penalty_kill = static_cast<__u16>(p_.trust.penalty_kill);
        s.exec_default_rule_id = p_.exec.default_rule_id;
        s.file_default_rule_id = p_.files.default_rule_id;
        s.net_default_rule_id = p_.network.default_rule_id;
        s.inbound_default = static_cast<__u8>(p_.inbound.default_action);
        s.inbound_default_rule_id = p_.inbound.default_rule_id;
        s.initial_score = p_.trust.initial;
        s.recovery_per_minute = p_.trust.recovery_per_minute;
        if (const auto& b = p_.trust.burst) {
            s.burst_window_ms = b->window_ms;
            s.burst_denials = static_cast<__u16>(b->denials);
            s.burst_penalty = static_cast<__u16>(b->penalty);
        }
        for (size_t i = 0; i < p_.trust.tiers.size() && i < CORDON_MAX_TIERS; ++i) {
            s.tier_min_score[i] = p_.trust.tiers[i].min_score;
            s.tier_on_enter[i] = static_cast<__u8>(p_.trust.tiers[i].on_enter);
        }
    }

    static cordon_path_key path_key(std::uint32_t policy_id, cordon_path_class cls,
                                    std::string_view bytes)
    {
        cordon_path_key k{};
        k.prefixlen = static_cast<__u32>((sizeof(k.policy_id) + sizeof(k.path_class) + bytes.size()) * 8);
        k.policy_id = policy_id;
        k.path_class = static_cast<__u8>(cls);
        std::memcpy(k.path, bytes.data(), bytes.size());
        return k;
    }

    void path_class(const RuleClass<PathRule>& rc, cordon_path_class cls, std::uint8_t access)
    {
        for (const auto& r : rc.rules) {
            if (access != 0 && (r.access & access) == 0)
                continue;
            // Exact rules end with the NUL the lookup key carries; directory rules end with '/'.
            const std::string bytes = r.dir ? r.path : r.path + '\0';
            const cordon_path_value v{.rule_id = r.id,
                                      .action = static_cast<__u8>(r.action),
                                      .min_tier = r.tier_index,
                                      ._pad0 = 0};
            // The parser already refused two rules for one path and access.
            path_entries_.emplace(bytes_of(path_key(out_.policy_id, cls, bytes)), v);
            if (r.dir && r.path != "/")
                implied_.push_back({cls, r.path.substr(0, r.path.size() - 1) + '\0', v});
        }
    }

    // A directory rule "/a/b/" also decides the directory "/a/b" itself (listing it, opening it),
    // unless an exact rule names that directory: the explicit rule wins.
    void implied_dirs()
    {
        for (const auto& [cls, bytes, v] : implied_)
            path_entries_.emplace(bytes_of(path_key(out_.policy_id, cls, bytes)), v);
    }

    // Renaming a directory moves everything below it: "/a" renamed takes "/a/secret/" out of
    // its rule's reach. Every directory above a rule's path, and a directory rule's own
    // directory, gets a guard entry; the kernel refuses agents a rename of a guarded directory.
    void guarded_ancestors(const RuleClass<PathRule>& rc)
    {
        for (const auto& r : rc.rules) {
            const std::string dir = r.dir ? r.path.substr(0, r.path.size() - 1) : r.path;
            for (size_t at = dir.find('/', 1); ; at = dir.find('/', at + 1)) {
                const std::string anc = at == std::string::npos ? dir : dir.substr(0, at);
                if (at == std::string::npos && !r.dir)
                    break; // a file rule's own name is decided by its write rule
                if (!anc.empty())
                    path_entries_.emplace(
                        bytes_of(path_key(out_.policy_id, CORDON_PATH_GUARD, anc + '\0')),
                        cordon_path_value{.rule_id = r.id,
                                          .action = static_cast<__u8>(Action::Deny),
                                          .min_tier = 0,
                                          ._pad0 = 0});
                if (at == std::string::npos)
                    break;
            }
        }
    }

    // One rule class into the network trie; inbound rules carry CORDON_NET_INBOUND in family.
    void network(const RuleClass<NetRule>& rc, std::uint8_t family_flag)
    {
        std::map<GroupKey, std::vector<SlotSource>> groups;
        for (const auto& r : rc.rules) {
            std::vector<Cidr> cidrs = r.cidr ? std::vector<Cidr>{*r.cidr} : r.resolved;
            const std::vector<PortRange> ports =
                r.ports.empty() ? std::vector<PortRange>{{.lo = 0, .hi = 65535}} : r.ports;
            for (const auto& c : cidrs)
                for (const auto& pr : ports)
                    groups[{c.family, c.prefix, c.addr}].push_back(
                        {.slot = {.port_lo = pr.lo, .port_hi = pr.hi, .protocols = r.protocols,
                                  .action = static_cast<__u8>(r.action), .min_tier = r.tier_index,
                                  ._pad0 = 0, .rule_id = r.id},
                         .pos = r.pos});
        }
        // Own slots: narrowest port set first, then single protocol before both, then rule order.
        for (auto& [key, slots] : groups) {
            std::stable_sort(slots.begin(), slots.end(), [](const auto& a, const auto& b) {
                const auto wa = a.slot.port_hi - a.slot.port_lo, wb = b.slot.port_hi - b.slot.port_lo;
                const auto pa = std::popcount(a.slot.protocols), pb = std::popcount(b.slot.protocols);
                return std::tie(wa, pa, a.slot.rule_id) < std::tie(wb, pb, b.slot.rule_id);
            });
            check_ambiguous(key, slots);
        }
        for (const auto& [key, own] : groups) {
            const auto& [family, prefix, addr] = key;
            std::vector<SlotSource> all = own;
            Cidr c{.family = family, .addr = addr, .prefix = prefix};
            for (int p = prefix - 1; p >= 0; --p) {
                const Cidr up = masked(c, p);
                if (auto it = groups.find({family, p, up.addr}); it != groups.end())
                    all.insert(all.end(), it->second.begin(), it->second.end());
            }
            if (all.size() > CORDON_NET_SLOTS) {
                std::set<int> lines;
                for (const auto& s : all)
                    lines.insert(s.pos.line);
                std::string list;
                for (int l : lines)
                    list += (list.empty() ? "" : ", ") + std::to_string(l);
                error_at(own.front().pos,
                         "addresses in " + cidr_text(c) + " are covered by " +
                             std::to_string(all.size()) + " port/protocol entries (lines " + list +
                             "); expected at most " + std::to_string(CORDON_NET_SLOTS) +
                             ": merge port ranges or use fewer overlapping CIDRs");
                continue;
            }
            cordon_net_key k{};
            k.prefixlen = static_cast<__u32>(40 + prefix);
            k.policy_id = out_.policy_id;
            k.family = static_cast<__u8>(family | family_flag);
            std::memcpy(k.addr, addr.data(), family == 4 ? 4 : 16);
            cordon_net_value v{};
            v.nslots = static_cast<__u32>(all.size());
            for (size_t i = 0; i < all.size(); ++i)
                v.slots[i] = all[i].slot;
            out_.nets.emplace_back(k, v);
        }
    }

    // The DNS gateway's table (cordon_dns_rules): each name a host rule names, with the slots of
    // every rule naming it in rule order (a name's answers are decided as its first matching
    // rule says). A wildcard is its own entry ("*.github.io"); the gateway tries the exact name,
    // then each wildcard above it, and takes the slots of all that match, in rule order.
    void host_names()
    {
        if (p_.overlay)
            return; // the gateway binds the agent's policy only (see resolve_hosts)
        std::map<std::string, std::vector<const NetRule*>> by_name;
        for (const auto& r : p_.network.rules)
            if (!r.host.empty())
                by_name[r.host].push_back(&r);
        for (const auto& [name, rules] : by_name) {
            cordon_dns_rule_key k{};
            k.policy_id = out_.policy_id;
            std::memcpy(k.name, name.data(), std::min(name.size(), sizeof(k.name) - 1));
            cordon_dns_rule v{};
            for (const auto* r : rules) {
                const std::vector<PortRange> ports =
                    r->ports.empty() ? std::vector<PortRange>{{.lo = 0, .hi = 65535}} : r->ports;
                for (const auto& pr : ports) {
                    if (v.nslots == CORDON_NET_SLOTS) {
                        error_at(r->pos, "host '" + name + "' is named by rules with more than " +
                                             std::to_string(CORDON_NET_SLOTS) +
                                             " port ranges in all; merge port ranges");
                        return;
                    }
                    v.slots[v.nslots++] = {.port_lo = pr.lo, .port_hi = pr.hi,
                                           .protocols = r->protocols,
                                           .action = static_cast<__u8>(r->action),
                                           .min_tier = r->tier_index, ._pad0 = 0, .rule_id = r->id};
                }
            }
            out_.dns.emplace_back(k, v);
        }
        if (out_.dns.size() > CORDON_MAX_DNS_RULES)
            error_at({.line = 1, .column = 1}, "the policy names more than " +
                                                   std::to_string(CORDON_MAX_DNS_RULES) + " hosts");
    }

    // Two entries on one prefix that overlap in ports and protocol, are equally narrow, and
    // decide differently: no order between them would be principled, so it is an error.
    void check_ambiguous(const GroupKey& key, const std::vector<SlotSource>& slots)
    {
        for (size_t i = 0; i < slots.size(); ++i)
            for (size_t j = i + 1; j < slots.size(); ++j) {
                const auto& a = slots[i].slot;
                const auto& b = slots[j].slot;
                if (a.rule_id == b.rule_id)
                    continue;
                const bool overlap = a.port_lo <= b.port_hi && b.port_lo <= a.port_hi &&
                                     (a.protocols & b.protocols) != 0;
                const bool same_rank = a.port_hi - a.port_lo == b.port_hi - b.port_lo &&
                                       std::popcount(a.protocols) == std::popcount(b.protocols);
                if (!overlap || !same_rank)
                    continue;
                if (a.action == b.action && a.min_tier == b.min_tier)
                    continue; // same decision either way
                const Cidr c{.family = std::get<0>(key), .addr = std::get<2>(key),
                             .prefix = std::get<1>(key)};
                const auto& later = slots[i].pos.line > slots[j].pos.line ? slots[i] : slots[j];
                const auto& earlier = &later == &slots[i] ? slots[j] : slots[i];
                error_at(later.pos,
                         "rule for " + cidr_text(c) + " conflicts with line " +
                             std::to_string(earlier.pos.line) +
                             ": both cover the same ports and protocol with different actions; "
                             "expected one rule per address, port and protocol");
                return;
            }
    }

    const Policy& p_;
    CompiledPolicy out_;
    Diagnostics errors_;
    std::map<std::string, cordon_path_value> path_entries_; // key bytes -> value, sorted
    std::vector<std::tuple<cordon_path_class, std::string, cordon_path_value>> implied_;
};

class SystemResolver final : public Resolver {
public:
    std::vector<Cidr> resolve(const std::string& host, std::string& error) override
    {
        addrinfo hints{};
        hints.ai_family = AF_UNSPEC;
        hints.ai_socktype = SOCK_STREAM;
        addrinfo* res = nullptr;
        if (int rc = ::getaddrinfo(host.c_str(), nullptr, &hints, &res); rc != 0) {
            error = ::gai_strerror(rc);
            return {};
        }
        std::set<std::tuple<int, std::array<std::uint8_t, 16>>> seen;
        std::vector<Cidr> out;
        for (auto* ai = res; ai; ai = ai->ai_next) {
            Cidr c;
            if (ai->ai_family == AF_INET) {
                c.family = 4;
                c.prefix = 32;
                std::memcpy(c.addr.data(),
                            &reinterpret_cast<const sockaddr_in*>(ai->ai_addr)->sin_addr, 4);
            } else if (ai->ai_family == AF_INET6) {
                c.family = 6;
                c.prefix = 128;
                std::memcpy(c.addr.data(),
                            &reinterpret_cast<const sockaddr_in6*>(ai->ai_addr)->sin6_addr, 16);
            } else {
                continue;
            }
            if (seen.insert({c.family, c.addr}).second)
                out.push_back(c);
        }
        ::freeaddrinfo(res);
        std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) {
            return std::tie(a.family, a.addr) < std::tie(b.family, b.addr);
        });
        return out;
    }
};

} // namespace

CompileResult compile(const Policy& p, std::uint32_t policy_id)
{
    return Compiler(p, policy_id).run();
}

cordon_agent agent_for(const Policy& p, const CompiledPolicy& c, std::uint32_t agent_id,
                       std::uint32_t level)
{
    cordon_agent a{};
    a.agent_id = agent_id;
    a.level = static_cast<__u8>(level);
    a.policy_id = c.policy_id;
    a.mode = p.mode == Mode::Audit ? CORDON_MODE_AUDIT : CORDON_MODE_ENFORCE;
    return a;
}

cordon_agent_live live_for(const Policy& p, std::uint32_t agent_id)
{
    cordon_agent_live l{};
    l.score = p.trust.initial;
    l.agent_id = agent_id;
    // The tier it starts in is not a change: no event, no on_enter. (stamp_ns, from which
    // recovery counts, is the caller's to set: it needs the kernel's clock.)
    l.tier = static_cast<__u8>(tier_from_score(p.trust, p.trust.initial));
    return l;
}

std::vector<std::uint8_t> serialize(const CompiledPolicy& c)
{
    std::string out = bytes_of(c.policy_id) + bytes_of(c.settings);
    for (const auto& [k, v] : c.paths)
        out += bytes_of(k) + bytes_of(v);
    for (const auto& [k, v] : c.nets)
        out += bytes_of(k) + bytes_of(v);
    for (const auto& [k, v] : c.dns)
        out += bytes_of(k) + bytes_of(v);
    return {out.begin(), out.end()};
}

std::unique_ptr<Resolver> system_resolver()
{
    return std::make_unique<SystemResolver>();
}

Diagnostics resolve_hosts(Policy& p, Resolver& r, Diagnostics* warnings)
{
    Diagnostics errs;
    for (auto& rule : p.network.rules) {
        if (rule.host.empty())
            continue;
        // An agent's policy: an allow or audit rule's addresses are the ones its own lookups
        // get, written by the DNS gateway for each answer's TTL (userspace/dns/gateway.h); a
        // wildcard names no address of its own. A deny or kill rule is also resolved here, so
        // that its addresses stay refused when the agent reaches them by number. A task
        // overlay's host rules are still resolved once, here (the gateway binds only the
        // agent's policy; docs/policy.md).
        const bool allows = rule.action == Action::Allow || rule.action == Action::Audit;
        if ((allows && !p.overlay) || rule.host.starts_with("*."))
            continue;
        std::string why;
        rule.resolved = r.resolve(rule.host, why);
        if (!rule.resolved.empty())
            continue;
        Diagnostic d{.file = p.file, .line = rule.pos.line, .column = rule.pos.column,
                     .message = "host '" + rule.host + "' does not resolve (" +
                                (why.empty() ? "no addresses" : why) + ")"};
        if (allows) {
            d.message += "; this allow rule allows nothing until it resolves";
            if (warnings)
                warnings->push_back(d);
        } else {
            d.message += "; a deny or kill rule must resolve, or it would deny nothing: fix the "
                         "name or use cidr:";
            errs.push_back(d);
        }
    }
    return errs;
}

} // namespace cordon::policy
