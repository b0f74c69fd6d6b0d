// SPDX-License-Identifier: Apache-2.0
// Turning decision records into what people and tools read: one terminal line, one JSON line.
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "events/hooks.h"
#include "events/reader.h"

namespace cordon::events {

std::string_view hook_name(std::uint16_t hook);       ///< "exec", "open", "connect4", ... (events/hooks)
/// The record names an IP address and port (events/hooks: HookInfo::network).
bool is_network_hook(std::uint16_t hook);
std::string_view verdict_name(std::uint8_t verdict);  ///< "allow", "deny", "audit", "kill", "freeze"
std::string object_text(const Event& e);              ///< path, or address:port/protocol

/// Names a rule id as "file:line" (or "" when unknown).
using RuleNamer = std::function<std::string(std::uint32_t rule_id)>;

/// What the caller knows beyond the record: the task's id for its number, the tier names.
struct EventContext {
    std::string task;                            ///< the task id of h.task_id ("" unknown)
    const std::vector<std::string>* tiers = nullptr; ///< tier names by index
};

/// What decided: the rule's "file:line", or the policy word or guard that decides without a rule.
std::string source_text(const Event& e, const RuleNamer& rule);
/// "deny", "kill", "burst", "recovery", "operator", "policy" (a trust event's cause).
std::string_view trust_cause_name(std::uint8_t cause);
/// Bytes of the well-formed UTF-8 sequence of 2 to 4 bytes at p (shortest form, no surrogates,
/// at most U+10FFFF, within [p, end)), or 0 when there is none (ASCII or a malformed byte).
std::size_t utf8_sequence(const unsigned char* p, const unsigned char* end);
/// Text an agent chose (a path, an argument), made safe to print on a terminal or in a log line:
/// control characters (newline, escape, ...), backslash and bytes that are not UTF-8 become
/// \n, \xNN and the like, so that no name can forge a line or repaint a terminal.
std::string display_safe(std::string_view s);
/// An exec trace record's argument strings (the last one cut when the record was).
std::vector<std::string> argv_strings(const Event& e);
/// `deny exec /usr/bin/curl (policies/coding-agent.yaml:14) pid 4242`; a trust event:
/// `trust tier standard -> restricted (deny) score 350`
std::string event_line(const Event& e, const RuleNamer& rule, const EventContext& cx = {});
struct Context;
/// What a record is stored and sent with beyond its bytes: the agent's name, the rule's
/// source_text (none for exec traces and trust changes), the task, the tier names.
Context record_context(const Event& e, const RuleNamer& rule, std::string_view agent_name,
                       const EventContext& cx = {});
/// The record as one JSON object, no newline: the same object the store keeps (events/ocsf.h,
/// docs/forensics.md), timed now by the wall clock.
std::string event_json(const Event& e, const RuleNamer& rule, std::string_view agent_name,
                       const EventContext& cx = {});

} // namespace cordon::events
