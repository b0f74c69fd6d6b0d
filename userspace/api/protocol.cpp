// SPDX-License-Identifier: Apache-2.0
#include "api/protocol.h"

#include <array>
#include <limits>
#include <set>

namespace cordon::api {

using nlohmann::json;

namespace {

struct OpInfo {
    Op op;
    const char* name;
    bool changes;
    std::set<std::string> fields; ///< allowed besides v and op
    std::set<std::string> required;
};

const std::array<OpInfo, kOpCount>& ops()
{
    static const std::array<OpInfo, kOpCount> table = {{
        {Op::Ping, "ping", false, {}, {}},
        {Op::Status, "status", false, {}, {}},
        {Op::Agents, "agents", false, {}, {}},
        {Op::Attach, "attach", true,
         {"cgroup", "policy", "name", "user", "home", "workspace", "mode", "wait"},
         {"cgroup", "policy"}},
        {Op::Detach, "detach", true, {"name"}, {"name"}},
        {Op::Run, "run", true, {"policy", "name", "user", "home", "workspace", "mode"},
         {"policy"}},
        {Op::Release, "release", true, {}, {}},
        {Op::Subscribe, "subscribe", false, {"name"}, {}},
        {Op::Kill, "kill", true, {"name", "reason", "sent_ns"}, {"name"}},
        {Op::Freeze, "freeze", true, {"name", "reason", "sent_ns"}, {"name"}},
        {Op::Thaw, "thaw", true, {"name", "reason"}, {"name"}},
        {Op::Apply, "apply", true, {"name", "policy", "mode", "reason"}, {"name", "policy"}},
        {Op::Mode, "mode", true, {"name", "mode", "reason"}, {"name", "mode"}},
        {Op::Trust, "trust", false, {"name"}, {"name"}},
        {Op::TrustSet, "trust_set", true, {"name", "score", "reason"}, {"name", "score"}},
        {Op::TaskBegin, "task_begin", true, {"name", "id", "policy", "ttl", "pid", "reason"},
         {"name", "id"}},
        {Op::TaskEnd, "task_end", true, {"name", "id", "reason"}, {"name"}},
        {Op::Tasks, "tasks", false, {"name"}, {"name"}},
        {Op::Grant, "grant", true, {"name", "kind", "target", "ttl", "task", "reason"},
         {"name", "kind", "target", "ttl"}},
        {Op::Grants, "grants", false, {"name"}, {"name"}},
        {Op::Revoke, "revoke", true, {"name", "grant", "reason"}, {"name", "grant"}},
        {Op::Explain, "explain", false, {"name", "kind", "target"}, {"name", "kind", "target"}},
    }};
    return table;
}

// The table is indexed by Op: a row out of place, or a missing one, is found at start-up by
// the unit tests (ApiProtocol.OpTableIsIndexedByOp) and by every lookup below.
const OpInfo& info(Op op)
{
    const auto i = static_cast<std::size_t>(op);
    if (i >= kOpCount || ops()[i].op != op)
        throw ProtocolError("unknown op");
    return ops()[i];
}

std::int64_t int_field(const json& j, const char* key, std::int64_t lo, std::int64_t hi)
{
    const auto& v = j.at(key);
    if (!v.is_number_integer())
        throw ProtocolError(std::string("\"") + key + "\" must be an integer");
    const auto n = v.get<std::int64_t>();
    if (n < lo || n > hi)
        throw ProtocolError(std::string("\"") + key + "\" must be from " + std::to_string(lo) +
                            " to " + std::to_string(hi));
    return n;
}

std::string string_field(const json& j, const char* key, std::size_t max)
{
    const auto& v = j.at(key);
    if (!v.is_string())
        throw ProtocolError(std::string("\"") + key + "\" must be a string");
    auto s = v.get<std::string>();
    if (s.size() > max)
        throw ProtocolError(std::string("\"") + key + "\" is longer than " +
                            std::to_string(max) + " bytes");
    if (s.find('\0') != std::string::npos)
        throw ProtocolError(std::string("\"") + key + "\" contains a NUL byte");
    return s;
}

} // namespace

const char* op_name(Op op)
{
    return info(op).name;
}

bool changes_state(Op op)
{
    return info(op).changes;
}

Request decode_request(std::string_view line)
{
    if (line.size() > kMaxRequestBytes)
        throw ProtocolError("request longer than " + std::to_string(kMaxRequestBytes) + " bytes");
    json j = json::parse(line, nullptr, false);
    if (j.is_discarded())
        throw ProtocolError("not a JSON object (one request per line)");
    if (!j.is_object())
        throw ProtocolError("a request is a JSON object");
    if (!j.contains("v") || !j["v"].is_number_integer())
        throw ProtocolError("missing protocol version \"v\" (this daemon speaks 1)");
    if (j["v"].get<long long>() != kVersion)
        throw ProtocolError("protocol version " + j["v"].dump() + " is not supported (this daemon "
                            "speaks 1)");
    if (!j.contains("op") || !j["op"].is_string())
        throw ProtocolError("missing \"op\"");
    const auto opname = j["op"].get<std::string>();
    const OpInfo* oi = nullptr;
    for (const auto& i : ops())
        if (opname == i.name)
            oi = &i;
    if (!oi) {
        // The ops listed from the table, so that a new op is named here without another edit.
        std::string known;
        for (std::size_t i = 0; i < kOpCount; ++i)
            known += std::string(i == 0 ? "" : i + 1 == kOpCount ? " or " : ", ") + ops()[i].name;
        throw ProtocolError("unknown op \"" + opname.substr(0, 64) + "\" (expected " + known + ")");
    }
    for (const auto& [k, v] : j.items())
        if (k != "v" && k != "op" && !oi->fields.contains(k))
            throw ProtocolError("unknown field \"" + k.substr(0, 64) + "\" for op " + oi->name);
    for (const auto& k : oi->required)
        if (!j.contains(k))
            throw ProtocolError("op " + std::string(oi->name) + " needs \"" + k + "\"");

    Request r;
    r.op = oi->op;
    constexpr std::size_t kShort = 4096;
    if (j.contains("name"))
        r.name = string_field(j, "name", 64);
    if (j.contains("cgroup"))
        r.cgroup = string_field(j, "cgroup", kShort);
    for (auto [key, dst] : {std::pair{"user", &r.user}, std::pair{"home", &r.home},
                            std::pair{"workspace", &r.workspace}, std::pair{"mode", &r.mode}})
        if (j.contains(key))
            *dst = string_field(j, key, kShort);
    if (j.contains("reason"))
        r.reason = string_field(j, "reason", 1024);
    for (auto [key, dst] : {std::pair{"id", &r.id}, std::pair{"ttl", &r.ttl},
                            std::pair{"kind", &r.kind}, std::pair{"task", &r.task}})
        if (j.contains(key))
            *dst = string_field(j, key, 128);
    if (j.contains("target"))
        r.target = string_field(j, "target", kShort);
    if (j.contains("score"))
        r.score = int_field(j, "score", 0, 1000);
    if (j.contains("pid"))
        r.pid = int_field(j, "pid", 1, 0x7fffffff);
    if (j.contains("grant"))
        r.grant = int_field(j, "grant", 1, 0xffffffffll);
    if (j.contains("sent_ns"))
        r.sent_ns = int_field(j, "sent_ns", 0, std::numeric_limits<std::int64_t>::max());
    if (j.contains("wait")) {
        if (!j["wait"].is_boolean())
            throw ProtocolError("\"wait\" must be true or false");
        r.wait = j["wait"].get<bool>();
    }
    if (r.kind && *r.kind != "exec" && *r.kind != "read" && *r.kind != "write" &&
        *r.kind != "connect")
        throw ProtocolError("\"kind\" must be \"exec\", \"read\", \"write\" or \"connect\"");
    if (r.mode && *r.mode != "enforce" && *r.mode != "audit")
        throw ProtocolError("\"mode\" must be \"enforce\" or \"audit\"");
    if (j.contains("policy")) {
        const auto& p = j["policy"];
        if (!p.is_object() || p.size() != 2 || !p.contains("file") || !p.contains("text"))
            throw ProtocolError("\"policy\" must be {\"file\": NAME, \"text\": YAML}");
        r.policy = PolicyText{.file = string_field(p, "file", kShort),
                              .text = string_field(p, "text", 8u << 20)};
    }
    return r;
}

std::string encode_request(const Request& r)
{
    json j = {{"v", kVersion}, {"op", op_name(r.op)}};
    if (r.name)
        j["name"] = *r.name;
    if (r.cgroup)
        j["cgroup"] = *r.cgroup;
    if (r.wait)
        j["wait"] = *r.wait;
    if (r.policy)
        j["policy"] = {{"file", r.policy->file}, {"text", r.policy->text}};
    if (r.user)
        j["user"] = *r.user;
    if (r.home)
        j["home"] = *r.home;
    if (r.workspace)
        j["workspace"] = *r.workspace;
    if (r.mode)
        j["mode"] = *r.mode;
    if (r.reason)
        j["reason"] = *r.reason;
    for (auto [key, src] : {std::pair{"id", &r.id}, std::pair{"ttl", &r.ttl},
                            std::pair{"kind", &r.kind}, std::pair{"target", &r.target},
                            std::pair{"task", &r.task}})
        if (*src)
            j[key] = **src;
    for (auto [key, src] : {std::pair{"score", &r.score}, std::pair{"pid", &r.pid},
                            std::pair{"grant", &r.grant}, std::pair{"sent_ns", &r.sent_ns}})
        if (*src)
            j[key] = **src;
    return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string ok_reply(json fields)
{
    fields["v"] = kVersion;
    fields["ok"] = true;
    return fields.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string error_reply(const std::string& text)
{
    return json{{"v", kVersion}, {"ok", false}, {"error", text}}.dump(
        -1, ' ', false, json::error_handler_t::replace);
}

} // namespace cordon::api
