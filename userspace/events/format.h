// SPDX-License-Identifier: Apache-2.0
// Turning decision records into what people and tools read: one terminal line, one JSON line.
#pragma once

#include <functional>
#include <string>
#include <string_view>

#include "events/reader.h"

namespace cordon::events {

std::string_view hook_name(std::uint16_t hook);       ///< "exec", "open", "connect4", ...
std::string_view verdict_name(std::uint8_t verdict);  ///< "allow", "deny", "audit", "kill", "freeze"
std::string object_text(const Event& e);              ///< path, or address:port/protocol

/// Names a rule id as "file:line" (or "" when unknown).
using RuleNamer = std::function<std::string(std::uint32_t rule_id)>;

/// What decided: the rule's "file:line", or the policy word or guard that decides without a rule.
std::string source_text(const Event& e, const RuleNamer& rule);
/// `deny exec /usr/bin/curl (policies/coding-agent.yaml:14) pid 4242`
std::string event_line(const Event& e, const RuleNamer& rule);
/// One JSON object, no newline.
std::string event_json(const Event& e, const RuleNamer& rule, std::string_view agent_name);

} // namespace cordon::events
