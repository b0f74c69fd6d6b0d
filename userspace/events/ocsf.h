// SPDX-License-Identifier: Apache-2.0
// The stored form of a record: one JSON object with field names aligned to OCSF 1.1 (the class
// of each hook and the mapping of each field: docs/forensics.md), and the columns the store
// indexes. Made on the store thread, so the daemon's thread only copies the record.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include <nlohmann/json_fwd.hpp>

#include "events/hooks.h"
#include "events/json.h" // json_string, which stored records are written with
#include "events/reader.h"
#include "events/store.h"

namespace cordon::events {

/// What the daemon knows about a decision record beyond its bytes, resolved on its thread.
struct Context {
    std::string agent;          ///< agent name
    std::string rule;           ///< source_text(): "file:line", a policy word, or a guard
    std::string task;           ///< the task's id ("" none)
    std::string old_tier, new_tier; ///< trust records: tier names
};

/// OCSF class of a hook (events/hooks); Base Event, Other for a number out of range.
OcsfClass ocsf_class(std::uint16_t hook);

/// A kernel record (decision, exec trace or trust change) as stored. time_ns is CLOCK_REALTIME.
store::Record stored_record(const Event& e, const Context& cx, std::int64_t time_ns);
/// An operator action (the object the actions log records) as stored.
store::Record stored_action(const nlohmann::json& action, std::int64_t time_ns);
/// A DNS gateway record ({"dns": true, agent, task_id, name, type, outcome, addresses, ttl,
/// rcode, rule, reason, audit, transport}) as an OCSF DNS Activity object.
store::Record stored_dns(const nlohmann::json& dns, std::int64_t time_ns);
/// A marker for records that could not be stored: `lost` of them, for `why`, before time_ns, on
/// the chain of `agent` (the agent whose records they were, or "cordond" when not known).
store::Record stored_gap(std::uint64_t lost, std::string_view why, std::int64_t time_ns,
                         std::string_view agent = "cordond");

} // namespace cordon::events
