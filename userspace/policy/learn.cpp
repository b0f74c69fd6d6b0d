// SPDX-License-Identifier: Apache-2.0
#include "policy/learn.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <sstream>
#include <tuple>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "common/error.h"
#include "policy/lookup.h"
#include "policy/net.h"
#include "policy/parser.h"

namespace cordon::policy::learn {
namespace {

using nlohmann::json;

std::string str_at(const json& j, std::initializer_list<const char*> keys)
{
    const json* cur = &j;
    for (const char* k : keys) {
        if (!cur->is_object())
            return {};
        auto it = cur->find(k);
        if (it == cur->end())
            return {};
        cur = &*it;
    }
    return cur->is_string() ? cur->get<std::string>() : std::string();
}

bool is_file_hook(std::string_view h)
{
    return h == "open" || h == "create" || h == "unlink" || h == "rename" || h == "link" ||
           h == "truncate" || h == "setattr" || h == "receive" || h == "unix_connect" ||
           h == "unix_send";
}

bool is_net_hook(std::string_view h)
{
    return h == "connect4" || h == "connect6" || h == "sendmsg4" || h == "sendmsg6";
}

std::uint8_t access_bits(std::string_view hook, std::string_view text)
{
    // A connect to a Unix socket, and every change to a name, is a write (docs/policy.md).
    if (hook != "open" && hook != "receive")
        return kWrite;
    std::uint8_t bits = 0;
    if (text.find("read") != std::string_view::npos)
        bits |= kRead;
    if (text.find("write") != std::string_view::npos)
        bits |= kWrite;
    return bits ? bits : static_cast<std::uint8_t>(kRead);
}

int severity(Action a)
{
    switch (a) {
    case Action::Allow: return 0;
    case Action::Audit: return 1;
    case Action::Deny: return 2;
    case Action::Freeze: return 3;
    case Action::Kill: return 4;
    }
    return 2;
}

bool net_fields(const json& j, Access& a, std::string& error)
{
    const std::string ip = str_at(j, {"dst_endpoint", "ip"});
    std::string why;
    auto cidr = parse_cidr(ip, why, HostBits::Refuse);
    const json* port = nullptr;
    if (auto d = j.find("dst_endpoint"); d != j.end() && d->is_object())
        if (auto p = d->find("port"); p != d->end())
            port = &*p;
    if (!cidr || cidr->prefix != (cidr->family == 4 ? 32 : 128) || !port ||
        !port->is_number_unsigned() || port->get<std::uint64_t>() > 65535) {
        error = "a network record without one destination address and port";
        return false;
    }
    a.dest = *cidr;
    a.port = static_cast<std::uint16_t>(port->get<std::uint64_t>());
    a.protocol = str_at(j, {"connection_info", "protocol_name"}) == "udp" ? kUdp : kTcp;
    return true;
}

/// As the kernel records a path: absolute, no empty, "." or ".." component, no trailing '/'
/// (but "/" itself), no NUL or newline, within the key size.
bool normal_path(const std::string& p)
{
    if (p.empty() || p.front() != '/' || p.size() > CORDON_PATH_MAX)
        return false;
    if (p == "/")
        return true;
    if (p.back() == '/' || p.find('\0') != std::string::npos || p.find('\n') != std::string::npos)
        return false;
    for (std::size_t i = 1; i <= p.size();) {
        const auto j = std::min(p.find('/', i), p.size());
        const auto part = std::string_view(p).substr(i, j - i);
        if (part.empty() || part == "." || part == "..")
            return false;
        i = j + 1;
    }
    return true;
}

} // namespace

std::optional<Access> parse_record(std::string_view text, std::string& error)
{
    error.clear();
    const json j = json::parse(text, nullptr, false);
    if (j.is_discarded() || !j.is_object()) {
        error = "not a JSON object";
        return std::nullopt;
    }
    Access a;
    a.hook = str_at(j, {"unmapped", "hook"});
    a.verdict = str_at(j, {"unmapped", "verdict"});
    a.rule = str_at(j, {"unmapped", "rule"});
    a.agent = str_at(j, {"unmapped", "agent"});
    if (auto u = j.find("unmapped"); u != j.end() && u->is_object())
        if (auto t = u->find("time_ns"); t != u->end() && t->is_number_integer())
            a.time_ns = t->get<std::int64_t>();
    // Operator actions, gaps, exec traces and trust changes are not accesses.
    if (a.hook.empty() || a.hook == "process" || a.hook == "trust")
        return std::nullopt;
    static const std::set<std::string> verdicts{"allow", "deny", "audit", "kill", "freeze"};
    if (!verdicts.count(a.verdict)) {
        error = "a decision record without a verdict (allow, deny, audit, kill or freeze)";
        return std::nullopt;
    }
    if (a.hook == "exec") {
        a.kind = Kind::Exec;
        a.path = str_at(j, {"process", "file", "path"});
    } else if (is_file_hook(a.hook)) {
        a.kind = Kind::File;
        a.path = str_at(j, {"file", "path"});
        a.access = access_bits(a.hook, str_at(j, {"unmapped", "access"}));
    } else if (is_net_hook(a.hook)) {
        a.kind = Kind::Net;
        if (!net_fields(j, a, error))
            return std::nullopt;
        return a;
    } else {
        return a; // Kind::Other: listen, bind, socket, tamper, task_cross
    }
    if (!normal_path(a.path)) {
        error = fmt::format("a {} record without a normal absolute path (the kernel records one: "
                            "no empty, '.' or '..' part, no trailing '/', at most {} bytes)",
                            a.hook, CORDON_PATH_MAX);
        return std::nullopt;
    }
    return a;
}

std::string address_text(const Cidr& c)
{
    const auto t = cidr_text(c);
    return t.substr(0, t.find('/'));
}

bool proceeded(const Access& a)
{
    return a.verdict == "allow" || a.verdict == "audit";
}

std::string describe(const Access& a)
{
    switch (a.kind) {
    case Kind::Exec: return "exec " + a.path;
    case Kind::File:
        return fmt::format("{} {} {}", a.hook,
                           a.access == (kRead | kWrite) ? "read+write"
                           : a.access & kWrite          ? "write"
                                                        : "read",
                           a.path);
    case Kind::Net:
        return fmt::format(fmt::runtime(a.dest.family == 6 ? "{} [{}]:{}/{}" : "{} {}:{}/{}"), a.hook,
                           address_text(a.dest), a.port, a.protocol == kUdp ? "udp" : "tcp");
    case Kind::Other: break;
    }
    return a.hook;
}

std::string HostNames::recorded_host(const std::string& rule)
{
    const auto colon = rule.rfind(':');
    if (colon == std::string::npos || colon + 1 >= rule.size())
        return {};
    int line = 0;
    for (char c : rule.substr(colon + 1)) {
        if (c < '0' || c > '9' || line > 1'000'000)
            return {};
        line = line * 10 + (c - '0');
    }
    const std::string file = rule.substr(0, colon);
    auto [it, fresh] = files_.try_emplace(file);
    // Only a policy file that an agent cannot have written names hosts: an absolute path (a
    // relative one would be read from wherever suggest runs), owned by root or by the caller,
    // writable by its owner only. Otherwise the connect stays an address rule.
    struct stat st {};
    if (fresh && !file.empty() && file.front() == '/' && ::stat(file.c_str(), &st) == 0 &&
        S_ISREG(st.st_mode) && (st.st_uid == 0 || st.st_uid == ::getuid()) &&
        !(st.st_mode & (S_IWGRP | S_IWOTH))) {
        auto parsed = load_document_file(file, ctx_);
        if (parsed.policy)
            for (const auto& r : parsed.policy->network.rules)
                if (!r.host.empty())
                    it->second[r.pos.line] = r.host;
    }
    auto h = it->second.find(line);
    return h == it->second.end() ? std::string() : h->second;
}

namespace {

Decision decide_path(const Candidate& c, cordon_path_class cls, const std::string& path,
                     const RuleClass<PathRule>& rc)
{
    if (auto v = lookup_path(c.compiled, cls, path))
        return {static_cast<Action>(v->action), v->rule_id};
    return {rc.default_action, 0};
}

/// A host rule of the candidate naming `host` that covers the port and protocol.
const NetRule* host_rule(const Candidate& c, const std::string& host, std::uint16_t port,
                         std::uint8_t protocol)
{
    auto same = [&](const std::string& h) {
        return h.size() == host.size() &&
               std::equal(h.begin(), h.end(), host.begin(),
                          [](char x, char y) { return std::tolower(x) == std::tolower(y); });
    };
    for (const auto& r : c.policy.network.rules) {
        if (r.host.empty() || !same(r.host) || !(r.protocols & protocol))
            continue;
        if (r.ports.empty() || std::any_of(r.ports.begin(), r.ports.end(), [&](const PortRange& p) {
                return port >= p.lo && port <= p.hi;
            }))
            return &r;
    }
    return nullptr;
}

} // namespace

Decision decide(const Candidate& c, const Access& a, const std::string& host)
{
    const Policy& p = c.policy;
    switch (a.kind) {
    case Kind::Exec: return decide_path(c, CORDON_PATH_EXEC, a.path, p.exec);
    case Kind::File: {
        Decision out{Action::Allow, 0};
        for (auto [bit, cls] : {std::pair{kRead, CORDON_PATH_READ}, {kWrite, CORDON_PATH_WRITE}}) {
            if (!(a.access & bit))
                continue;
            const auto d = decide_path(c, cls, a.path, p.files);
            if (severity(d.action) >= severity(out.action))
                out = d;
        }
        return out;
    }
    case Kind::Net: {
        // Addresses behind a name change; the name the access was allowed under does not.
        if (!host.empty())
            if (const NetRule* r = host_rule(c, host, a.port, a.protocol))
                return {r->action, r->id};
        if (auto s = lookup_net(c.compiled, a.dest.family, a.dest.addr, a.port, a.protocol))
            return {static_cast<Action>(s->action), s->rule_id};
        return {p.network.default_action, 0};
    }
    case Kind::Other: break;
    }
    return {Action::Deny, 0};
}

// --- test ------------------------------------------------------------------------------------

namespace {

std::string decision_text(const Candidate& c, const Decision& d)
{
    const auto name = std::string(action_name(d.action));
    if (d.rule_id == 0 || d.rule_id >= c.policy.rules.size())
        return name + " (default)";
    return fmt::format("{} (line {})", name, c.policy.rules[d.rule_id].pos.line);
}

} // namespace

void Tester::add(const Access& a, const std::string& host)
{
    if (a.kind == Kind::Other) {
        ++r_.not_replayable;
        ++r_.not_replayable_by_hook[a.hook];
        return;
    }
    ++r_.replayed;
    const Decision d = decide(c_, a, host);
    const bool before = proceeded(a), after = lets_through(d);
    if (before == after) {
        ++r_.unchanged;
        return;
    }
    const bool secret = after && !known_secret(a.kind, a.path, home_).empty();
    ++changes_[{before && !after, describe(a), a.verdict, decision_text(c_, d), secret}];
}

Replay Tester::result() const
{
    Replay r = r_;
    for (const auto& [k, n] : changes_) {
        const auto& [denied, what, before, after, secret] = k;
        r.changes.push_back({what, before, after, denied, secret, n});
    }
    std::stable_sort(r.changes.begin(), r.changes.end(), [](const auto& x, const auto& y) {
        return std::tie(y.newly_denied, y.count, x.what) < std::tie(x.newly_denied, x.count, y.what);
    });
    return r;
}

namespace {

template <typename Pred> std::uint64_t accesses_where(const std::vector<Replay::Change>& changes, Pred pred)
{
    std::uint64_t n = 0;
    for (const auto& c : changes)
        if (pred(c))
            n += c.count;
    return n;
}

} // namespace

std::uint64_t Replay::secrets_newly_allowed() const
{
    return accesses_where(changes, [](const Change& c) { return c.secret; });
}

std::uint64_t Replay::newly_denied() const
{
    return accesses_where(changes, [](const Change& c) { return c.newly_denied; });
}

} // namespace cordon::policy::learn
