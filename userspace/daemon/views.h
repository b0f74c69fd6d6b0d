// SPDX-License-Identifier: Apache-2.0
// What cordond shows of its agents, tasks, grants and store: the JSON objects of its replies
// (docs/api.md), built from the controller's records and the kernel's maps.
#pragma once

#include <cstdint>

#include <nlohmann/json.hpp>

#include "control/controller.h"
#include "dns/gateway.h"

namespace cordon::events {
class Pipeline;
}

namespace cordon::daemon {

/// One agent: its records, kernel state (mode, score, flags, tier) and processes.
nlohmann::json agent_json(control::Controller& ctl, const control::AgentRecord& r,
                          std::uint64_t denials_seen);
/// One task of an agent, with the processes bound to it.
nlohmann::json task_json(control::Controller& ctl, const control::AgentRecord& r,
                         const control::TaskRecord& t);
/// One grant.
nlohmann::json grant_json(const control::GrantRecord& g);
/// The DNS gateway's counters ({"enabled": false} without one).
nlohmann::json dns_json(const dns::Gateway* gateway);
/// The addresses an agent's own answers hold now: name, address, rule, expires_in_ms.
nlohmann::json dns_bindings_json(const dns::Gateway* gateway, const control::AgentRecord& r);
/// The event store and JSONL sink ({"enabled": false} without a pipeline).
nlohmann::json store_json(const events::Pipeline* pipeline);

} // namespace cordon::daemon
