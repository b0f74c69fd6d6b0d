// SPDX-License-Identifier: Apache-2.0
// The launch-time hardening of an agent: the capabilities it loses, and the seccomp layer, a
// filter installed in its first process before its command runs, inherited by every descendant
// and impossible to remove, that refuses the side doors listed in policy::side_doors()
// (docs/policy.md, "hardening"). It is the second wall on every backend:
// what the BPF programs cannot see on a backend (compat: mounts, io_uring, ia32 opens) must not
// be reachable at all, and what they can see is refused twice.
#pragma once

#include <linux/filter.h>

#include <vector>

#include <cordon/abi.h>

#include "policy/model.h"

namespace cordon::agents {

/// Removes the capabilities in `caps` (bit = CAP_* number; policy::refused_capabilities()) from
/// the calling process's bounding, inheritable, permitted and effective sets, and clears the
/// ambient set. Async-signal-safe. Returns 0 or an errno: the caller must not run the agent then.
int drop_capabilities(std::uint64_t caps);

/// Sets RLIMIT_CORE to exactly 1 (soft and hard) in the calling process: a crash then starts
/// no core-dump helper (a `|program` core_pattern runs as root outside every cgroup, whatever
/// the limit, except for exactly 1), and without CAP_SYS_RESOURCE the limit cannot be raised
/// again. Also sets RLIMIT_RTPRIO to 0, so that the agent can never choose a real-time class
/// (cordon's control path runs at SCHED_FIFO 10). Async-signal-safe. Returns 0 or an errno.
int limit_core_dumps();

/// A compiled filter, built in the controller (where allocating and throwing are fine) and
/// installed in the child after fork with nothing but system calls.
class SeccompLayer {
public:
    /// Builds the filter for a policy on a backend; throws Error if libseccomp refuses.
    SeccompLayer(const policy::Policy& p, cordon_backend backend);

    /// In the calling process: sets no_new_privs if the policy asks, then loads the filter.
    /// Async-signal-safe. Returns 0, or an errno (the caller must not run the agent then: fail
    /// closed). Without no_new_privs the caller needs CAP_SYS_ADMIN, so call it before dropping
    /// privileges.
    int install() const;

private:
    std::vector<sock_filter> prog_;
    bool no_new_privs_ = true;
};

} // namespace cordon::agents
