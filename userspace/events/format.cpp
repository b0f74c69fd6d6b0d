// SPDX-License-Identifier: Apache-2.0
#include "events/format.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <ctime>

#include <fmt/format.h>

#include "events/ocsf.h"
#include "policy/model.h"

namespace cordon::events {

std::string_view hook_name(std::uint16_t hook)
{
    const HookInfo* h = hook_info(hook);
    return h ? h->name : "unknown";
}

std::string_view verdict_name(std::uint8_t verdict)
{
    // The kernel's byte: only a value past the enum is unknown; -Wswitch checks the rest.
    if (verdict < CORDON_VERDICT_MAX)
        switch (static_cast<cordon_verdict>(verdict)) {
        case CORDON_VERDICT_ALLOW: return "allow";
        case CORDON_VERDICT_DENY: return "deny";
        case CORDON_VERDICT_AUDIT: return "audit";
        case CORDON_VERDICT_KILL: return "kill";
        case CORDON_VERDICT_FREEZE: return "freeze";
        case CORDON_VERDICT_MAX: break;
        }
    return "unknown";
}

std::string_view trust_cause_name(std::uint8_t cause)
{
    if (cause == 0)
        return "policy"; // no cause seen: a policy apply changed the tiers
    if (cause < CORDON_TRUST_CAUSE_MAX)
        switch (static_cast<cordon_trust_cause>(cause)) {
        case CORDON_TRUST_DENY: return "deny";
        case CORDON_TRUST_KILL: return "kill";
        case CORDON_TRUST_BURST: return "burst";
        case CORDON_TRUST_RECOVERY: return "recovery";
        case CORDON_TRUST_OPERATOR: return "operator";
        case CORDON_TRUST_CAUSE_MAX: break;
        }
    return "unknown";
}

bool is_network_hook(std::uint16_t hook)
{
    const HookInfo* h = hook_info(hook);
    return h && h->network;
}

namespace {

std::string tier_text(std::uint32_t tier, const EventContext& cx)
{
    if (cx.tiers && tier < cx.tiers->size())
        return (*cx.tiers)[tier];
    return std::to_string(tier);
}

std::string address(const cordon_event& b)
{
    char buf[INET6_ADDRSTRLEN] = {};
    ::inet_ntop(b.family == 4 ? AF_INET : AF_INET6, b.addr, buf, sizeof(buf));
    return buf;
}

} // namespace

std::string object_text(const Event& e)
{
    const auto& b = e.body;
    if (is_network_hook(e.header().hook))
        return fmt::format(fmt::runtime(b.family == 6 ? "[{}]:{}/{}" : "{}:{}/{}"), address(b),
                           b.port, b.protocol == CORDON_PROTO_UDP ? "udp" : "tcp");
    if (e.header().hook == CORDON_HOOK_SOCKET)
        return b.family ? fmt::format("raw/icmp ipv{} protocol {}", b.family, b.protocol)
                        : fmt::format("socket family {} protocol {}", b.port, b.protocol);
    if (e.header().hook == CORDON_HOOK_TASK_CROSS) {
        std::uint64_t task = 0;
        std::uint32_t pid = 0;
        std::memcpy(&task, b.addr, sizeof(task));
        std::memcpy(&pid, b.addr + 8, sizeof(pid));
        return task ? fmt::format("pid {} of task {}", pid, task)
                    : fmt::format("pid {} (in no task)", pid);
    }
    if (e.header().hook == CORDON_HOOK_TAMPER) {
        // "(capability 21)" from the kernel: named here, where the table is.
        int cap = -1;
        if (std::sscanf(b.path, "(capability %d)", &cap) == 1)
            for (const auto& d : policy::dropped_capabilities())
                if (d.cap == cap)
                    return fmt::format("(capability {} {})", cap, d.name);
    }
    if (b.path[0])
        return b.path;
    return "";
}

std::string source_text(const Event& e, const RuleNamer& rule)
{
    const auto& h = e.header();
    if (h.rule_id)
        if (auto src = rule(h.rule_id); !src.empty())
            return src;
    if (h.rule_id & CORDON_RULE_GRANT)
        return fmt::format("grant {}", h.rule_id & ~CORDON_RULE_GRANT);
    if (h.rule_id & CORDON_RULE_OVERLAY)
        return fmt::format("task overlay rule {}", h.rule_id & CORDON_RULE_INDEX_MASK);
    if (h.hook == CORDON_HOOK_TRUST)
        return "trust";
    // Decisions that no rule line makes.
    if (h.hook == CORDON_HOOK_TAMPER)
        return "tamper protection";
    if (h.hook == CORDON_HOOK_TASK_CROSS)
        return "tasks.isolation: strict";
    if (h.hook == CORDON_HOOK_SOCKET)
        return e.body.family || e.body.port == 17 /* AF_PACKET */
                   ? "network.raw_sockets"
                   : "address family never allowed";
    if (e.body.path[0] == '@')
        return "network.unix_abstract";
    if (std::string_view(e.body.path) == CORDON_UNRESOLVABLE)
        return "path not resolvable in the agent's mount namespace";
    return "agent killed or frozen";
}

std::size_t utf8_sequence(const unsigned char* p, const unsigned char* end)
{
    const unsigned char c = *p;
    const int n = c >= 0xc2 && c <= 0xdf ? 1 : c >= 0xe0 && c <= 0xef ? 2 : c >= 0xf0 && c <= 0xf4 ? 3 : 0;
    bool ok = n > 0 && end - p > n;
    for (int i = 1; ok && i <= n; ++i)
        ok = (p[i] & 0xc0) == 0x80;
    // Shortest form only, no surrogates, nothing past U+10FFFF.
    if (ok && c == 0xe0)
        ok = p[1] >= 0xa0;
    if (ok && c == 0xed)
        ok = p[1] < 0xa0;
    if (ok && c == 0xf0)
        ok = p[1] >= 0x90;
    if (ok && c == 0xf4)
        ok = p[1] < 0x90;
    return ok ? static_cast<std::size_t>(n + 1) : 0;
}

std::string display_safe(std::string_view s)
{
    std::string out;
    out.reserve(s.size());
    const auto* p = reinterpret_cast<const unsigned char*>(s.data());
    const auto* end = p + s.size();
    while (p < end) {
        const unsigned char c = *p;
        if (c >= 0x20 && c < 0x7f && c != '\\') {
            out += static_cast<char>(c);
            ++p;
            continue;
        }
        if (c == '\\') {
            out += "\\\\";
            ++p;
            continue;
        }
        if (c == '\n' || c == '\t' || c == '\r') {
            out += c == '\n' ? "\\n" : c == '\t' ? "\\t" : "\\r";
            ++p;
            continue;
        }
        // A well-formed UTF-8 sequence (no C1 controls) is kept; any other byte is shown as \xNN.
        const std::size_t len = utf8_sequence(p, end);
        const bool ok = len > 0 && !(c == 0xc2 && p[1] < 0xa0); // U+0080..U+009F: C1 controls
        if (ok) {
            out.append(reinterpret_cast<const char*>(p), len);
            p += len;
        } else {
            out += fmt::format("\\x{:02x}", c);
            ++p;
        }
    }
    return out;
}

std::vector<std::string> argv_strings(const Event& e)
{
    std::vector<std::string> out;
    const std::string_view all(e.argv, std::min<std::size_t>(e.argv_len, sizeof(e.argv)));
    for (std::size_t at = 0; at < all.size();) {
        const auto end = all.find('\0', at);
        out.emplace_back(all.substr(at, end == std::string_view::npos ? all.npos : end - at));
        if (end == std::string_view::npos)
            break;
        at = end + 1;
    }
    return out;
}

std::string event_line(const Event& e, const RuleNamer& rule, const EventContext& cx)
{
    const auto& h = e.header();
    const std::string task = cx.task.empty() ? "" : " task " + cx.task;
    if (h.hook == CORDON_HOOK_PROCESS) {
        std::string args;
        for (const auto& a : argv_strings(e))
            args += (args.empty() ? "" : " ") + display_safe(a);
        // The name given, and the file that ran when it is another (a symlink, a relative name).
        const std::string ran = e.file[0] && std::string_view(e.file) != e.body.path
                                    ? fmt::format(" ({})", display_safe(e.file))
                                    : "";
        return fmt::format("process {}{} [{}{}] pid {} parent {} uid {}{}", display_safe(e.body.path),
                           ran, args, e.argv_full > e.argv_len ? " ..." : "", h.tgid, h.ppid,
                           h.uid, task);
    }
    if (h.hook == CORDON_HOOK_TRUST)
        return fmt::format("trust tier {} -> {} ({}) score {}{}{}", tier_text(e.body.family, cx),
                           tier_text(e.body.protocol, cx), trust_cause_name(e.body.access),
                           e.body.port,
                           h.verdict == CORDON_VERDICT_FREEZE ? ": agent frozen"
                           : h.verdict == CORDON_VERDICT_KILL ? ": agent killed"
                                                              : "",
                           task);
    std::string what = std::string(hook_name(h.hook));
    if (h.hook == CORDON_HOOK_FILE_OPEN)
        what += e.body.access == (CORDON_ACCESS_READ | CORDON_ACCESS_WRITE) ? " read+write"
                : e.body.access & CORDON_ACCESS_WRITE                      ? " write"
                                                                           : " read";
    const std::string src = source_text(e, rule);
    std::string obj = display_safe(object_text(e));
    return fmt::format("{} {}{}{} ({}) pid {}{}", verdict_name(h.verdict), what,
                       obj.empty() ? "" : " ", obj, src, h.tgid, task);
}

Context record_context(const Event& e, const RuleNamer& rule, std::string_view agent_name,
                       const EventContext& cx)
{
    const auto& h = e.header();
    Context c{.agent = std::string(agent_name), .rule = {}, .task = cx.task, .old_tier = {}, .new_tier = {}};
    if (h.hook == CORDON_HOOK_TRUST) {
        c.old_tier = tier_text(e.body.family, cx);
        c.new_tier = tier_text(e.body.protocol, cx);
    } else if (h.hook != CORDON_HOOK_PROCESS) {
        c.rule = source_text(e, rule);
    }
    return c;
}

std::string event_json(const Event& e, const RuleNamer& rule, std::string_view agent_name,
                       const EventContext& cx)
{
    // The record's ts_ns is CLOCK_MONOTONIC; the record's time is wall-clock, as when stored.
    timespec real{}, mono{};
    ::clock_gettime(CLOCK_REALTIME, &real);
    ::clock_gettime(CLOCK_MONOTONIC, &mono);
    const std::int64_t offset = (real.tv_sec - mono.tv_sec) * 1'000'000'000LL + (real.tv_nsec - mono.tv_nsec);
    return stored_record(e, record_context(e, rule, agent_name, cx),
                         static_cast<std::int64_t>(e.header().ts_ns) + offset)
        .json;
}

} // namespace cordon::events
