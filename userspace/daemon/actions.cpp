// SPDX-License-Identifier: Apache-2.0
#include "daemon/actions.h"

#include <fcntl.h>
#include <unistd.h>

#include <chrono>

#include <spdlog/spdlog.h>

#include "common/error.h"
#include "control/controller.h"
#include "events/pipeline.h"

namespace cordon::daemon {

using nlohmann::json;

std::int64_t now_ms()
{
    using namespace std::chrono;
    return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

ActionsLog::ActionsLog(std::filesystem::path path, events::Pipeline* pipeline)
    : path_(std::move(path)), pipeline_(pipeline)
{
    std::error_code ec;
    std::filesystem::create_directories(path_.parent_path(), ec);
    fd_ = ::open(path_.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (fd_ < 0)
        spdlog::error("cannot open {}: {}; operator actions go to this log only", path_.string(),
                      errno_text(errno));
}

ActionsLog::~ActionsLog()
{
    if (fd_ >= 0)
        ::close(fd_);
}

std::string ActionsLog::append(const json& a)
{
    if (pipeline_)
        pipeline_->push_action(a);
    const std::string line = a.dump(-1, ' ', false, json::error_handler_t::replace);
    if (fd_ >= 0) {
        const std::string l = line + "\n";
        if (::write(fd_, l.data(), l.size()) != static_cast<ssize_t>(l.size()))
            spdlog::error("cannot append to {}: {}", path_.string(), errno_text(errno));
    }
    return line;
}

void ActionsLog::controller(const std::string& op, json fields)
{
    fields["time_ms"] = now_ms();
    fields["type"] = "controller_action";
    fields["op"] = op;
    append(fields);
}

json ActionsLog::operator_action(const json& who, const api::Request& r, bool ok,
                                 const std::string& error, const json& details,
                                 const std::string& agent)
{
    json a = {{"time_ms", now_ms()},
              {"type", "operator_action"},
              {"who", who},
              {"op", api::op_name(r.op)},
              {"result", ok ? "ok" : "error"}};
    if (r.name)
        a["name"] = *r.name;
    if (!agent.empty())
        a["agent"] = agent;
    if (r.cgroup)
        a["cgroup"] = *r.cgroup;
    if (r.policy)
        a["policy"] = {{"file", r.policy->file}, {"sha256", control::sha256_hex(r.policy->text)}};
    if (r.mode)
        a["mode"] = *r.mode;
    if (r.reason)
        a["reason"] = *r.reason;
    // What a trust, task or grant request asked for, refused ones included.
    for (auto [key, v] : {std::pair{"id", &r.id}, std::pair{"ttl", &r.ttl},
                          std::pair{"kind", &r.kind}, std::pair{"target", &r.target},
                          std::pair{"task", &r.task}})
        if (*v)
            a[key] = **v;
    for (auto [key, v] : {std::pair{"score", &r.score}, std::pair{"pid", &r.pid},
                          std::pair{"grant", &r.grant}})
        if (*v)
            a[key] = **v;
    if (!details.empty())
        a["details"] = details;
    if (!ok)
        a["error"] = error;
    return a;
}

} // namespace cordon::daemon
