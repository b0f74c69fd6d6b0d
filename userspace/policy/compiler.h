// SPDX-License-Identifier: Apache-2.0
// Policy -> the exact map entries of include/cordon/abi.h. Deterministic: the same policy and
// policy id give the same bytes. Returns a complete compiled policy or errors, never half of one.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <cordon/abi.h>

#include "policy/diagnostic.h"
#include "policy/model.h"

namespace cordon::policy {

struct CompiledPolicy {
    std::uint32_t policy_id = 0;
    cordon_policy settings{};                                      ///< cordon_policies[policy_id]
    std::vector<std::pair<cordon_path_key, cordon_path_value>> paths; ///< sorted by key bytes
    std::vector<std::pair<cordon_net_key, cordon_net_value>> nets;    ///< sorted by key bytes
    std::vector<std::pair<cordon_dns_rule_key, cordon_dns_rule>> dns; ///< sorted by name
};

struct CompileResult {
    std::optional<CompiledPolicy> compiled; ///< set only when errors is empty
    Diagnostics errors;
};

/// Compiles a validated policy. Host rules contribute the addresses in NetRule::resolved (none
/// until resolve_hosts() ran); conflicts that only show after compilation (two rules for the same
/// address and ports with different actions, too many entries under one prefix) are errors that
/// name the lines involved.
CompileResult compile(const Policy& p, std::uint32_t policy_id);

/// The cordon_agents entry of a new agent running this compiled policy, whose root cgroup is at
/// cgroup level `level`: its mode is the policy's.
cordon_agent agent_for(const Policy& p, const CompiledPolicy& c, std::uint32_t agent_id,
                       std::uint32_t level);
/// The cordon_agent_live entry of a new agent: its score starts at the policy's initial trust.
cordon_agent_live live_for(const Policy& p, std::uint32_t agent_id);

/// Every byte the compiled policy writes into maps, in order; equal outputs mean equal maps.
std::vector<std::uint8_t> serialize(const CompiledPolicy& c);

/// Resolves host names to addresses. Virtual so tests need no DNS.
class Resolver {
public:
    virtual ~Resolver() = default;
    /// The host's addresses; empty with `error` set when it cannot be resolved.
    virtual std::vector<Cidr> resolve(const std::string& host, std::string& error) = 0;
};
std::unique_ptr<Resolver> system_resolver();

/// Fills NetRule::resolved for every host rule. A host that does not resolve fails closed: on an
/// allow or audit rule it allows nothing, which is reported in `warnings`; on a deny or kill rule
/// it would deny nothing, so it is an error (returned), and the policy is not applied.
Diagnostics resolve_hosts(Policy& p, Resolver& r, Diagnostics* warnings = nullptr);

} // namespace cordon::policy
