// SPDX-License-Identifier: Apache-2.0
#include "events/ocsf.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cstring>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "common/backend.h"
#include "events/format.h"

namespace cordon::events {

namespace {

// OCSF 1.1 categories and classes cordon's records belong to.
constexpr int kSystemActivity = 1, kFindings = 2, kNetworkActivity = 4, kApplicationActivity = 6;
// Decision records' classes are in the hook table (events/hooks.cpp); these are the others'.
constexpr int kApiActivity = 6003;
constexpr int kDnsActivity = 4003;

std::string_view category_name(int class_uid)
{
    switch (class_uid / 1000) {
    case kSystemActivity: return "System Activity";
    case kFindings: return "Findings";
    case kNetworkActivity: return "Network Activity";
    case kApplicationActivity: return "Application Activity";
    default: return "Other";
    }
}

/// A few keys and values; the writer keeps commas right.
class Obj {
public:
    explicit Obj(std::string& out) : out_(out) { out_ += '{'; }
    void close() { out_ += '}'; }
    std::string& key(std::string_view k)
    {
        // One append per key (keys are ours: short, plain ASCII): this runs ~40 times a record.
        char buf[64];
        std::size_t n = 0;
        if (!first_)
            buf[n++] = ',';
        first_ = false;
        buf[n++] = '"';
        const std::size_t len = std::min(k.size(), sizeof(buf) - 4);
        std::memcpy(buf + n, k.data(), len);
        n += len;
        buf[n++] = '"';
        buf[n++] = ':';
        out_.append(buf, n);
        return out_;
    }
    void str(std::string_view k, std::string_view v) { json_string(key(k), v); }
    void num(std::string_view k, std::int64_t v)
    {
        const fmt::format_int f(v); // no locale, no iterator per char: this runs per record
        key(k).append(f.data(), f.size());
    }
    void boolean(std::string_view k, bool v) { key(k) += v ? "true" : "false"; }

private:
    std::string& out_;
    bool first_ = true;
};

struct Verdict {
    int action_id;   // 1 Allowed, 2 Denied
    int disposition; // 1 Allowed, 2 Blocked, 3 Quarantined, 17 Logged
    std::string_view disposition_name;
    int severity;    // 1 Informational, 2 Low, 3 Medium, 4 High
};

Verdict verdict_of(std::uint8_t v)
{
    constexpr Verdict allowed{1, 1, "Allowed", 1};
    // The kernel's byte: a value past the enum is shown as an allow, as it always was.
    if (v < CORDON_VERDICT_MAX)
        switch (static_cast<cordon_verdict>(v)) {
        case CORDON_VERDICT_ALLOW: return allowed;
        case CORDON_VERDICT_AUDIT: return {1, 17, "Logged", 2};
        case CORDON_VERDICT_DENY: return {2, 2, "Blocked", 3};
        case CORDON_VERDICT_KILL: return {2, 2, "Blocked", 4};
        case CORDON_VERDICT_FREEZE: return {2, 3, "Quarantined", 4};
        case CORDON_VERDICT_MAX: break;
        }
    return allowed;
}

std::string address_text(const cordon_event& b)
{
    char buf[INET6_ADDRSTRLEN] = {};
    ::inet_ntop(b.family == 4 ? AF_INET : AF_INET6, b.addr, buf, sizeof(buf));
    return buf;
}

void header(Obj& o, const OcsfClass& c, std::int64_t time_ns, int severity)
{
    o.num("time", time_ns / 1'000'000);
    o.num("class_uid", c.class_uid);
    o.str("class_name", c.class_name);
    o.num("category_uid", c.class_uid / 1000);
    o.str("category_name", category_name(c.class_uid));
    o.num("activity_id", c.activity_id);
    o.str("activity_name", c.activity_name);
    o.num("type_uid", static_cast<std::int64_t>(c.class_uid) * 100 + c.activity_id);
    o.num("severity_id", severity);
}

void metadata(Obj& o)
{
    o.key("metadata") += R"({"version":"1.1.0","product":{"name":"cordon","vendor_name":"cordon"}})";
}

} // namespace

OcsfClass ocsf_class(std::uint16_t hook)
{
    const HookInfo* h = hook_info(hook);
    return h ? h->ocsf : hooks()[CORDON_HOOK_NONE].ocsf;
}

namespace {

void actor(Obj& o, const cordon_event_header& h, std::string_view comm)
{
    std::string& out = o.key("actor");
    Obj actor(out);
    {
        Obj p(actor.key("process"));
        p.num("pid", h.tgid);
        p.num("tid", h.pid);
        p.str("name", comm);
        Obj(p.key("parent_process")).num("pid", h.ppid), out += '}';
        p.close();
    }
    Obj(actor.key("user")).num("uid", h.uid), out += '}';
    actor.close();
}

/// What was accessed, in the OCSF object of its class.
void object(Obj& o, const Event& e, const Context& cx, std::string_view comm, const std::string& cmd)
{
    const auto& h = e.header();
    const auto& b = e.body;
    if (h.hook == CORDON_HOOK_PROCESS) {
        std::string& out = o.key("process");
        Obj p(out);
        p.num("pid", h.tgid);
        p.str("name", comm);
        p.str("cmd_line", cmd);
        // The file that ran (resolved by the kernel); the name the exec was given when the
        // kernel could not resolve it. Both are in unmapped.
        Obj(p.key("file")).str("path", e.file[0] ? e.file : b.path), out += '}';
        Obj(p.key("parent_process")).num("pid", h.ppid), out += '}';
        p.close();
    } else if (h.hook == CORDON_HOOK_EXEC) {
        std::string& out = o.key("process");
        Obj p(out);
        Obj(p.key("file")).str("path", b.path), out += '}';
        p.close();
    } else if (is_network_hook(h.hook)) {
        Obj d(o.key("dst_endpoint"));
        d.str("ip", address_text(b));
        d.num("port", b.port);
        d.close();
        Obj ci(o.key("connection_info"));
        ci.str("protocol_name", b.protocol == CORDON_PROTO_UDP ? "udp" : "tcp");
        ci.num("protocol_ver_id", b.family == 6 ? 6 : 4);
        ci.close();
    } else if (h.hook == CORDON_HOOK_TASK_CROSS) {
        std::uint32_t other_pid = 0;
        std::memcpy(&other_pid, b.addr + 8, sizeof(other_pid));
        Obj p(o.key("process"));
        p.num("pid", other_pid);
        p.close();
    } else if (h.hook == CORDON_HOOK_TRUST) {
        Obj f(o.key("finding_info"));
        f.str("title", "trust tier changed");
        f.str("desc", fmt::format("{} -> {} ({}), score {}", cx.old_tier, cx.new_tier,
                                  trust_cause_name(b.access), b.port));
        f.close();
    } else if (b.path[0] && h.hook != CORDON_HOOK_SOCKET) {
        Obj f(o.key("file"));
        f.str("path", b.path);
        f.close();
    }
}

/// cordon's own fields (docs/forensics.md, `unmapped`).
void unmapped(Obj& o, const Event& e, const Context& cx, std::int64_t time_ns,
              const std::vector<std::string>& argv)
{
    const auto& h = e.header();
    const auto& b = e.body;
    Obj u(o.key("unmapped"));
    u.num("time_ns", time_ns);
    u.num("ts_ns", static_cast<std::int64_t>(h.ts_ns));
    u.str("agent", cx.agent);
    u.num("agent_id", h.agent_id);
    u.num("cgroup_id", static_cast<std::int64_t>(h.cgroup_id));
    u.num("task_id", static_cast<std::int64_t>(h.task_id));
    if (!cx.task.empty())
        u.str("task", cx.task);
    u.str("hook", hook_name(h.hook));
    u.str("verdict", verdict_name(h.verdict));
    if (h.hook != CORDON_HOOK_PROCESS) {
        u.str("rule", cx.rule);
        u.num("rule_id", h.rule_id);
    }
    u.str("backend", backend_name(h.backend));
    if (b.access && h.hook != CORDON_HOOK_TRUST && !is_network_hook(h.hook))
        u.str("access", b.access == 3 ? "read,write" : b.access & CORDON_ACCESS_WRITE ? "write" : "read");
    if (h.hook == CORDON_HOOK_PROCESS) {
        auto& a = u.key("argv");
        a += '[';
        for (std::size_t i = 0; i < argv.size(); ++i) {
            if (i)
                a += ',';
            json_string(a, argv[i]);
        }
        a += ']';
        u.boolean("argv_truncated", e.argv_full > e.argv_len);
        u.str("exec_name", b.path);
        u.str("exec_file", e.file);
        u.num("exec_ino", static_cast<std::int64_t>(e.ino));
        u.str("exec_dev", fmt::format("{}:{}", e.dev >> 20, e.dev & 0xfffff));
    } else if (h.hook == CORDON_HOOK_TRUST) {
        u.str("old_tier", cx.old_tier);
        u.str("new_tier", cx.new_tier);
        u.str("cause", trust_cause_name(b.access));
        u.num("score", b.port);
    } else if (h.hook == CORDON_HOOK_TASK_CROSS) {
        std::uint64_t other_task = 0;
        std::uint32_t other_pid = 0;
        std::memcpy(&other_task, b.addr, sizeof(other_task));
        std::memcpy(&other_pid, b.addr + 8, sizeof(other_pid));
        u.num("other_task_id", static_cast<std::int64_t>(other_task));
        u.num("other_pid", other_pid);
        u.num("ptrace_mode", b.port);
    } else if (h.hook == CORDON_HOOK_SOCKET) {
        u.num(b.family ? "ip_family" : "address_family", b.family ? b.family : b.port);
        u.num("ip_protocol", b.protocol);
    }
    u.close();
}

} // namespace

store::Record stored_record(const Event& e, const Context& cx, std::int64_t time_ns)
{
    const auto& h = e.header();
    const auto& b = e.body;
    store::Record r;
    r.time_ns = time_ns;
    r.agent = cx.agent;
    r.kind = h.hook == CORDON_HOOK_PROCESS ? "process" : h.hook == CORDON_HOOK_TRUST ? "trust"
                                                                                     : "decision";
    r.hook = hook_name(h.hook);
    r.verdict = verdict_name(h.verdict);
    r.pid = h.tgid;
    r.ppid = h.ppid;
    r.uid = h.uid;
    if (is_network_hook(h.hook)) {
        r.dest = address_text(b);
        r.port = b.port;
    } else if (h.hook != CORDON_HOOK_TRUST && h.hook != CORDON_HOOK_SOCKET) {
        r.path = b.path;
    }

    const auto v = verdict_of(h.verdict);
    r.json.reserve(1024);
    Obj o(r.json);
    header(o, ocsf_class(h.hook), time_ns,
           h.hook == CORDON_HOOK_TRUST && h.verdict == CORDON_VERDICT_ALLOW ? 2 : v.severity);
    if (h.hook != CORDON_HOOK_PROCESS && h.hook != CORDON_HOOK_TRUST) {
        o.num("action_id", v.action_id);
        o.str("action", v.action_id == 1 ? "Allowed" : "Denied");
        o.num("disposition_id", v.disposition);
        o.str("disposition", v.disposition_name);
    }
    const std::string_view comm(h.comm, strnlen(h.comm, sizeof(h.comm)));
    actor(o, h, comm);
    std::vector<std::string> argv;
    std::string cmd;
    if (h.hook == CORDON_HOOK_PROCESS) {
        argv = argv_strings(e);
        for (const auto& a : argv)
            cmd += (cmd.empty() ? "" : " ") + a;
    }
    object(o, e, cx, comm, cmd);
    metadata(o);
    unmapped(o, e, cx, time_ns, argv);
    o.close();
    return r;
}

store::Record stored_action(const nlohmann::json& a, std::int64_t time_ns)
{
    store::Record r;
    r.time_ns = time_ns;
    r.kind = "action";
    r.agent = a.value("agent", a.value("name", std::string()));
    if (r.agent.empty())
        r.agent = "cordond"; // the daemon's own actions (expiries, ...) chain apart
    r.hook = a.value("op", std::string());
    r.verdict = a.value("result", std::string());
    if (auto who = a.find("who"); who != a.end() && who->is_object()) {
        r.pid = who->value("pid", 0u);
        r.uid = who->value("uid", 0u);
    }
    const bool ok = r.verdict == "ok";
    // API Activity: Create for what adds, Delete for what removes, Update for the rest.
    int activity = 3;
    std::string_view activity_name = "Update";
    for (std::string_view op : {"attach", "run", "task_begin", "grant"})
        if (r.hook == op)
            activity = 1, activity_name = "Create";
    for (std::string_view op : {"detach", "task_end", "revoke"})
        if (r.hook == op)
            activity = 4, activity_name = "Delete";
    std::string& out = r.json;
    Obj o(out);
    header(o, {kApiActivity, activity, "API Activity", activity_name}, time_ns,
           r.hook == "kill" || r.hook == "freeze" ? 3 : 1);
    o.num("status_id", ok ? 1 : 2);
    o.str("status", ok ? "Success" : "Failure");
    {
        Obj api(o.key("api"));
        api.str("operation", r.hook);
        api.close();
    }
    {
        Obj actor(o.key("actor"));
        Obj(actor.key("process")).num("pid", r.pid), out += '}';
        Obj(actor.key("user")).num("uid", r.uid), out += '}';
        actor.close();
    }
    metadata(o);
    o.key("unmapped") += a.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    o.close();
    return r;
}

store::Record stored_dns(const nlohmann::json& d, std::int64_t time_ns)
{
    store::Record r;
    r.time_ns = time_ns;
    r.kind = "dns";
    r.agent = d.value("agent", std::string("cordond"));
    r.hook = "dns";
    r.verdict = d.value("outcome", std::string());
    r.path = d.value("name", std::string()); // the name asked, for `cordon events --path`
    const bool refused = r.verdict != "allowed" && r.verdict != "answered" && r.verdict != "passed";
    std::string& out = r.json;
    Obj o(out);
    // DNS Activity, Response (2): the gateway's answer to the agent.
    header(o, {kDnsActivity, 2, "DNS Activity", "Response"}, time_ns,
           refused || d.value("audit", false) ? 3 : 1);
    {
        Obj q(o.key("query"));
        q.str("hostname", d.value("name", std::string()));
        q.str("type", d.value("type", std::string()));
        q.close();
    }
    o.key("answers") += "[";
    bool first = true;
    for (const auto& a : d.value("addresses", nlohmann::json::array())) {
        if (!first)
            out += ',';
        first = false;
        Obj ans(out);
        ans.str("rdata", a.get<std::string>());
        ans.num("ttl", d.value("ttl", std::int64_t{0}));
        ans.close();
    }
    out += ']';
    o.str("rcode", d.value("rcode", std::string()));
    o.num("disposition_id", refused ? 2 : 1);
    o.str("disposition", refused ? "Blocked" : "Allowed");
    metadata(o);
    o.key("unmapped") += d.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    o.close();
    return r;
}

store::Record stored_gap(std::uint64_t lost, std::string_view why, std::int64_t time_ns,
                         std::string_view agent)
{
    store::Record r;
    r.time_ns = time_ns;
    r.kind = "gap";
    r.agent = agent;
    r.hook = "gap";
    r.verdict = "error";
    std::string& out = r.json;
    Obj o(out);
    header(o, {0, 99, "Base Event", "Other"}, time_ns, 3);
    o.str("message", fmt::format("{} records could not be stored: {}", lost, why));
    metadata(o);
    {
        Obj u(o.key("unmapped"));
        u.str("agent", agent);
        u.num("lost", static_cast<std::int64_t>(lost));
        u.str("reason", why);
        u.close();
    }
    o.close();
    return r;
}

} // namespace cordon::events
