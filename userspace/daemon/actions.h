// SPDX-License-Identifier: Apache-2.0
// cordond's actions log: every operator request that changes state (refused ones included) and
// every action the controller takes on its own (reconcile, expiry, freeze verdicts), one JSON
// line each, in the file and in the event pipeline's store.
#pragma once

#include <filesystem>
#include <string>

#include <nlohmann/json.hpp>

#include "api/protocol.h"

namespace cordon::events {
class Pipeline;
}

namespace cordon::daemon {

class ActionsLog {
public:
    /// Opens (appends to) `path`; when it cannot, actions still reach the store and the log.
    ActionsLog(std::filesystem::path path, events::Pipeline* pipeline);
    ~ActionsLog();
    ActionsLog(const ActionsLog&) = delete;
    ActionsLog& operator=(const ActionsLog&) = delete;

    bool open() const { return fd_ >= 0; }
    const std::filesystem::path& path() const { return path_; }
    /// Appends one record; returns it as the line written.
    std::string append(const nlohmann::json& a);
    /// A controller action: {"type":"controller_action","op":op, ...fields}, appended.
    void controller(const std::string& op, nlohmann::json fields);
    /// The record of an operator request (not appended: the caller appends and streams it).
    static nlohmann::json operator_action(const nlohmann::json& who, const api::Request& r, bool ok,
                                          const std::string& error, const nlohmann::json& details,
                                          const std::string& agent);

private:
    std::filesystem::path path_;
    events::Pipeline* pipeline_;
    int fd_ = -1;
};

/// Wall-clock milliseconds, as the actions log and the views use them.
std::int64_t now_ms();

} // namespace cordon::daemon
