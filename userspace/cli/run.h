// SPDX-License-Identifier: Apache-2.0
// `cordon run`: the terminal side of one guarded command. With cordond, a client of its API; without
// one, an embedded controller (control::Controller and control::Supervisor) with its guardian.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "policy/model.h"

namespace cordon::cli {

struct RunOptions {
    std::string policy_file;
    std::optional<std::string> name;      ///< agent name; default: policy name + random suffix
    std::optional<std::string> user;      ///< run CMD as this user (as `sudo -u`)
    std::optional<std::string> workspace; ///< ${WORKSPACE} and CMD's working directory
    std::optional<policy::Mode> mode;     ///< overrides spec.mode
    std::string backend = "auto";         ///< auto | lsm | fmod_ret | compat
    std::optional<std::string> events_file; ///< every event as a JSON line
    bool embedded = false; ///< be the controller even when cordond runs
    bool detach = false;   ///< (cordond) leave the agent running under the daemon and return
    /// embedded: the DNS gateway's upstream resolvers (ADDR[:PORT]); empty: /etc/resolv.conf's
    std::vector<std::string> dns_upstreams;
    std::vector<std::string> command;
};

/// Exit status `cordon run` uses when cordon itself fails before CMD starts.
inline constexpr int kRunSetupFailed = 125;

/// Guards one command. When cordond answers on its socket (and not `embedded`), the agent is
/// registered with it: the daemon creates the cgroup and enforces, this process launches CMD,
/// shows its events and ends the agent with CMD (or leaves it to the daemon with `detach`).
/// Otherwise this process is the controller (embedded): it creates the agent cgroup, loads and
/// attaches the backend, writes the compiled policy, and only then starts CMD in the cgroup. Reports decisions, kills the agent on
/// a kill verdict, and removes everything it created when CMD ends or on SIGINT/SIGTERM. A
/// guardian process outside the agent kills and removes the agent if cordon itself dies.
/// Returns CMD's exit status, 128+signal if CMD was killed, or kRunSetupFailed.
int run_guarded(const RunOptions& opts);

} // namespace cordon::cli
