// SPDX-License-Identifier: Apache-2.0
// `cordon policy suggest` and `cordon policy test` (cli/learn_cmd.cpp).
#pragma once

#include <cstddef>
#include <optional>
#include <string>

#include "policy/learn.h"
#include "policy/model.h"

namespace cordon::cli {

/// Where the records come from: an agent's stored records, or an events file (JSON lines).
struct LearnInput {
    std::optional<std::string> agent; ///< NAME: the store's records of this agent
    std::string store = "/var/lib/cordon/events.db";
    std::optional<std::string> from;  ///< an events file ("-": standard input)
    std::optional<std::string> since, until;
};

struct SuggestCli {
    LearnInput in;
    std::optional<std::string> base, output, name;
    std::size_t fold = 4;
};

/// Without a base: prints (or writes to --output) the least-privilege policy. With a base:
/// prints the change against it, and writes the base with the new rules to --output.
int policy_suggest(const SuggestCli& o, const policy::Context& ctx);

/// Replays the input's accesses against the policy in `file`; prints each access whose
/// verdict changes, newly denied first; returns 1 if any access that went ahead would be denied.
int policy_test(const std::string& file, const LearnInput& in, const policy::Context& ctx);

} // namespace cordon::cli
