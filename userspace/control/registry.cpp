// SPDX-License-Identifier: Apache-2.0
#include "control/registry.h"

#include <fcntl.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "common/error.h"

namespace cordon::control {

namespace fs = std::filesystem;
using nlohmann::json;

const char* origin_name(Origin o)
{
    return o == Origin::Run ? "run" : "attach";
}

std::vector<AgentRecord> load_registry(const fs::path& file)
{
    std::ifstream in(file);
    if (!in)
        return {};
    std::vector<AgentRecord> out;
    try {
        const json j = json::parse(in);
        if (j.at("version").get<int>() != 1)
            throw Error("unknown registry version");
        for (const auto& a : j.at("agents")) {
            AgentRecord r;
            r.name = a.at("name").get<std::string>();
            r.id = a.at("id").get<std::uint32_t>();
            r.cgroup = a.at("cgroup").get<std::string>();
            r.cgroup_id = a.at("cgroup_id").get<std::uint64_t>();
            r.level = a.at("level").get<std::uint32_t>();
            r.policy_id = a.at("policy_id").get<std::uint32_t>();
            r.policy_file = a.at("policy_file").get<std::string>();
            r.policy_name = a.at("policy_name").get<std::string>();
            r.policy_sha256 = a.at("policy_sha256").get<std::string>();
            r.rule_sources = a.at("rule_sources").get<std::vector<std::string>>();
            r.origin = a.at("origin").get<std::string>() == "run" ? Origin::Run : Origin::Attach;
            r.created = a.at("created").get<std::int64_t>();
            if (a.contains("owner_pid")) {
                r.owner_pid = a.at("owner_pid").get<int>();
                r.owner_start = a.at("owner_start").get<std::uint64_t>();
            }
            out.push_back(std::move(r));
        }
    } catch (const std::exception& e) {
        throw Error("the agent registry " + file.string() + " is corrupt (" + e.what() +
                    "); the pinned maps still enforce; run `cordon teardown` to start afresh");
    }
    return out;
}

void save_registry(const fs::path& file, const std::vector<AgentRecord>& agents)
{
    json list = json::array();
    for (const auto& r : agents) {
        json a = {{"name", r.name},
                  {"id", r.id},
                  {"cgroup", r.cgroup.string()},
                  {"cgroup_id", r.cgroup_id},
                  {"level", r.level},
                  {"policy_id", r.policy_id},
                  {"policy_file", r.policy_file},
                  {"policy_name", r.policy_name},
                  {"policy_sha256", r.policy_sha256},
                  {"rule_sources", r.rule_sources},
                  {"origin", origin_name(r.origin)},
                  {"created", r.created}};
        if (r.owner_pid) {
            a["owner_pid"] = *r.owner_pid;
            a["owner_start"] = r.owner_start;
        }
        list.push_back(std::move(a));
    }
    const std::string text = json{{"version", 1}, {"agents", list}}.dump(1) + "\n";
    const fs::path tmp = file.string() + ".tmp";
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
    for (int i = 3; i <= 22 && fields >> f; ++i)
        if (i == 22)
            return std::stoull(f);
    return 0;
}

} // namespace cordon::control
