// SPDX-License-Identifier: Apache-2.0
#include "control/registry.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <sstream>

#include <cordon/abi.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "common/error.h"
#include "policy/net.h"

namespace cordon::control {

namespace fs = std::filesystem;
using nlohmann::json;

const char* origin_name(Origin o)
{
    switch (o) {
    case Origin::Run:
        return "run";
    case Origin::Attach:
        return "attach";
    case Origin::Template:
        return "template";
    case Origin::Child:
        return "child";
    }
    return "attach";
}

namespace {

Origin origin_from(const std::string& s)
{
    for (auto o : {Origin::Run, Origin::Attach, Origin::Template, Origin::Child})
        if (s == origin_name(o))
            return o;
    throw Error("unknown origin " + s);
}

} // namespace

AgentRecord durable_copy(const AgentRecord& r)
{
    AgentRecord d;
    d.name = r.name;
    d.cgroup = r.cgroup;
    d.level = r.level;
    d.policy_file = r.policy_file;
    d.policy_name = r.policy_name;
    d.policy_sha256 = r.policy_sha256;
    d.policy_text = r.policy_text;
    d.policy_mode = r.policy_mode;
    d.context = r.context;
    d.origin = r.origin;
    d.created = r.created;
    d.killed = r.killed;
    return d;
}

std::string rule_source(const AgentRecord* rec, const TaskRecord* task, std::uint32_t id)
{
    if (id & CORDON_RULE_GRANT) {
        if (rec)
            for (const auto& g : rec->grants)
                if (g.id == (id & ~CORDON_RULE_GRANT))
                    return fmt::format("grant {} ({} {})", g.id, grant_kind_name(g.kind), g.target);
        return "";
    }
    if (id & CORDON_RULE_OVERLAY) {
        const auto i = id & CORDON_RULE_INDEX_MASK;
        return task && i < task->overlay_sources.size() ? task->overlay_sources[i] : "";
    }
    return rec && id < rec->rule_sources.size() ? rec->rule_sources[id] : "";
}

namespace {

json task_json(const TaskRecord& t)
{
    json j = {{"id", t.id},           {"number", t.number},
              {"overlay_id", t.overlay_id}, {"overlay_file", t.overlay_file},
              {"overlay_name", t.overlay_name}, {"overlay_sources", t.overlay_sources},
              {"grant_set", t.grant_set}, {"begun_ms", t.begun_ms},
              {"expires_ms", t.expires_ms}, {"expires_ns", t.expires_ns}};
    if (t.pid) {
        j["pid"] = *t.pid;
        j["pid_start"] = t.pid_start;
    }
    return j;
}

TaskRecord task_from(const json& j)
{
    TaskRecord t;
    t.id = j.at("id").get<std::string>();
    t.number = j.at("number").get<std::uint64_t>();
    t.overlay_id = j.at("overlay_id").get<std::uint32_t>();
    t.overlay_file = j.at("overlay_file").get<std::string>();
    t.overlay_name = j.at("overlay_name").get<std::string>();
    t.overlay_sources = j.at("overlay_sources").get<std::vector<std::string>>();
    t.grant_set = j.at("grant_set").get<std::uint32_t>();
    t.begun_ms = j.at("begun_ms").get<std::int64_t>();
    t.expires_ms = j.at("expires_ms").get<std::int64_t>();
    t.expires_ns = j.at("expires_ns").get<std::uint64_t>();
    if (j.contains("pid")) {
        t.pid = j.at("pid").get<int>();
        t.pid_start = j.at("pid_start").get<std::uint64_t>();
    }
    return t;
}

json grant_json(const GrantRecord& g)
{
    json cidrs = json::array(), ports = json::array();
    for (const auto& c : g.cidrs)
        cidrs.push_back(policy::cidr_text(c));
    for (const auto& p : g.ports)
        ports.push_back({p.lo, p.hi});
    return {{"id", g.id},         {"kind", grant_kind_name(g.kind)},
            {"target", g.target}, {"path", g.path},
            {"cidrs", cidrs},     {"ports", ports},
            {"protocols", g.protocols}, {"task", g.task},
            {"reason", g.reason}, {"by", g.by},
            {"created_ms", g.created_ms}, {"expires_ms", g.expires_ms},
            {"expires_ns", g.expires_ns}};
}

GrantRecord grant_from(const json& j)
{
    GrantRecord g;
    g.id = j.at("id").get<std::uint32_t>();
    const auto kind = j.at("kind").get<std::string>();
    const auto k = policy::grant_kind_from_name(kind);
    if (!k)
        throw Error("unknown grant kind " + kind);
    g.kind = *k;
    g.target = j.at("target").get<std::string>();
    g.path = j.at("path").get<std::string>();
    for (const auto& c : j.at("cidrs")) {
        std::string why;
        auto cidr = policy::parse_cidr(c.get<std::string>(), why);
        if (!cidr)
            throw Error("bad grant address: " + why);
        g.cidrs.push_back(*cidr);
    }
    for (const auto& p : j.at("ports"))
        g.ports.push_back({.lo = p.at(0).get<std::uint16_t>(), .hi = p.at(1).get<std::uint16_t>()});
    g.protocols = j.at("protocols").get<std::uint8_t>();
    g.task = j.at("task").get<std::string>();
    g.reason = j.at("reason").get<std::string>();
    g.by = j.at("by").get<std::string>();
    g.created_ms = j.at("created_ms").get<std::int64_t>();
    g.expires_ms = j.at("expires_ms").get<std::int64_t>();
    g.expires_ns = j.at("expires_ns").get<std::uint64_t>();
    return g;
}

constexpr const char* kSuffix = ".json";

AgentRecord from_json(const json& a)
{
    if (a.at("version").get<int>() != 1)
        throw Error("unknown record version");
    AgentRecord r;
    r.name = a.at("name").get<std::string>();
    r.id = a.at("id").get<std::uint32_t>();
    r.cgroup = a.at("cgroup").get<std::string>();
    r.cgroup_id = a.at("cgroup_id").get<std::uint64_t>();
    r.key = a.value("key", std::uint64_t{0});
    r.template_name = a.value("template", std::string());
    r.policy_text = a.value("policy_text", std::string());
    r.policy_mode = a.value("policy_mode", std::string());
    r.killed = a.value("killed", false);
    r.level = a.at("level").get<std::uint32_t>();
    r.policy_id = a.at("policy_id").get<std::uint32_t>();
    r.policy_file = a.at("policy_file").get<std::string>();
    r.policy_name = a.at("policy_name").get<std::string>();
    r.policy_sha256 = a.at("policy_sha256").get<std::string>();
    r.rule_sources = a.at("rule_sources").get<std::vector<std::string>>();
    r.origin = origin_from(a.at("origin").get<std::string>());
    r.created = a.at("created").get<std::int64_t>();
    if (a.contains("context")) {
        const auto& c = a.at("context");
        for (auto [key, field] : {std::pair{"home", &r.context.home},
                                  std::pair{"workspace", &r.context.workspace},
                                  std::pair{"user", &r.context.user}})
            if (c.contains(key))
                *field = c.at(key).get<std::string>();
    }
    if (a.contains("owner_pid")) {
        r.owner_pid = a.at("owner_pid").get<int>();
        r.owner_start = a.at("owner_start").get<std::uint64_t>();
    }
    if (a.contains("tier_names"))
        r.tier_names = a.at("tier_names").get<std::vector<std::string>>();
    if (a.contains("grant_set"))
        r.grant_set = a.at("grant_set").get<std::uint32_t>();
    if (a.contains("tasks"))
        for (const auto& t : a.at("tasks"))
            r.tasks.push_back(task_from(t));
    if (a.contains("grants"))
        for (const auto& g : a.at("grants"))
            r.grants.push_back(grant_from(g));
    return r;
}

json to_json(const AgentRecord& r)
{
    json a = {{"version", 1},
              {"name", r.name},
              {"id", r.id},
              {"cgroup", r.cgroup.string()},
              {"cgroup_id", r.cgroup_id},
              {"key", r.key},
              {"level", r.level},
              {"policy_id", r.policy_id},
              {"policy_file", r.policy_file},
              {"policy_name", r.policy_name},
              {"policy_sha256", r.policy_sha256},
              {"rule_sources", r.rule_sources},
              {"origin", origin_name(r.origin)},
              {"created", r.created}};
    json ctx = json::object();
    for (auto [key, field] : {std::pair{"home", &r.context.home},
                              std::pair{"workspace", &r.context.workspace},
                              std::pair{"user", &r.context.user}})
        if (*field)
            ctx[key] = **field;
    a["context"] = ctx;
    if (r.owner_pid) {
        a["owner_pid"] = *r.owner_pid;
        a["owner_start"] = r.owner_start;
    }
    a["tier_names"] = r.tier_names;
    a["grant_set"] = r.grant_set;
    if (!r.template_name.empty())
        a["template"] = r.template_name;
    if (!r.policy_text.empty()) {
        a["policy_text"] = r.policy_text;
        a["policy_mode"] = r.policy_mode;
    }
    if (r.killed)
        a["killed"] = true;
    a["tasks"] = json::array();
    for (const auto& t : r.tasks)
        a["tasks"].push_back(task_json(t));
    a["grants"] = json::array();
    for (const auto& g : r.grants)
        a["grants"].push_back(grant_json(g));
    return a;
}

} // namespace

std::vector<AgentRecord> load_registry(const fs::path& dir)
{
    std::vector<AgentRecord> out;
    std::error_code ec;
    if (!fs::exists(dir, ec))
        return out;
    for (const auto& e : fs::directory_iterator(dir)) {
        const auto name = e.path().filename().string();
        if (name.starts_with(".") || !name.ends_with(kSuffix))
            continue; // a temporary file of an interrupted write: its old record stands
        try {
            std::ifstream in(e.path());
            out.push_back(from_json(json::parse(in)));
        } catch (const std::exception& ex) {
            throw Error("the agent record " + e.path().string() + " is corrupt (" + ex.what() +
                        "); the pinned maps still enforce; run `cordon teardown` to start afresh");
        }
    }
    std::sort(out.begin(), out.end(),
              [](const AgentRecord& a, const AgentRecord& b) { return a.id < b.id; });
    return out;
}

void save_record(const fs::path& dir, const AgentRecord& r)
{
    std::error_code ec;
    fs::create_directories(dir, ec);
    const std::string text = to_json(r).dump(1) + "\n";
    const fs::path file = dir / (r.name + kSuffix);
    const fs::path tmp = dir / ("." + r.name + kSuffix + ".tmp");
    const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        throw Error("cannot write " + tmp.string() + ": " + errno_text(errno));
    const bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) &&
                    ::fsync(fd) == 0;
    const int err = errno;
    ::close(fd);
    if (!ok || ::rename(tmp.c_str(), file.c_str()) != 0)
        throw Error("cannot write " + file.string() + ": " + errno_text(ok ? errno : err));
}

void remove_record(const fs::path& dir, const std::string& name)
{
    const fs::path file = dir / (name + kSuffix);
    if (::unlink(file.c_str()) != 0 && errno != ENOENT)
        throw Error("cannot remove " + file.string() + ": " + errno_text(errno));
}

std::uint64_t process_start_time(int pid)
{
    std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    // The comm (field 2) may hold spaces and parentheses: fields after the last ')' are fixed.
    const auto close = text.rfind(')');
    if (close == std::string::npos)
        return 0;
    std::istringstream fields(text.substr(close + 2));
    std::string f;
    for (int i = 3; i <= 22 && fields >> f; ++i) {
        if (i == 3 && (f == "Z" || f == "X"))
            return 0;
        if (i == 22)
            return std::stoull(f);
    }
    return 0;
}

} // namespace cordon::control
