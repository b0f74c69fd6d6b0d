// SPDX-License-Identifier: Apache-2.0
// `cordon explain`: what an agent's access would get now, and which layer decides it. The
// kernel's decision procedure (bpf/cordon.bpf.h: cordon_verdict, cordon_grantable,
// cordon_grant_live; bpf/path.bpf.h: cordon_path_lookup, cordon_path_layers; bpf/net.bpf.h:
// net_decide_key, cordon_net_layers) replayed step by step against the maps the kernel reads,
// never against the policy file: what it says is what the programs would decide.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "control/controller.h"
#include "control/registry.h"
#include "policy/grant.h"
#include "policy/model.h"

namespace cordon::control {

/// One access to explain.
struct ExplainQuery {
    policy::GrantKind kind = policy::GrantKind::Read;
    std::string target;    ///< as the caller gave it
    std::string looked_up; ///< exec/read/write: the resolved path; connect: "ADDR:PORT/proto"
    std::vector<std::string> notes; ///< what the replay cannot see as the kernel would
    policy::Cidr addr;     ///< connect: one address (IPv4-mapped IPv6 already made IPv4)
    std::uint16_t port = 0;
    std::uint8_t protocol = policy::kTcp;
};

/// The grammar, pure: a path must be absolute (cordond's working directory is not the
/// caller's); a connect target is ADDR:PORT[/tcp|udp] ([ADDR]:PORT for IPv6), one address and
/// one port, no host name (a name may resolve differently at the agent's connect). Throws Error.
ExplainQuery parse_explain(policy::GrantKind kind, std::string_view target);

/// Resolves a path query's symbolic links, as the kernel sees the file it decides (touches the
/// filesystem, which may wait: run it off the daemon's loop). Nothing for connect.
void resolve_explain_path(ExplainQuery& q);

/// The verdict the kernel would give the agent's access now, and why:
/// {name, access, target, looked_up, verdict, decided_by: {layer, rule, min_tier, agent_tier},
/// why, notes}. Throws Error when the kernel has no entry for the agent.
nlohmann::json explain(Controller& ctl, const AgentRecord& rec, const ExplainQuery& q);

} // namespace cordon::control
