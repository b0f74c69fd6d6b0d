// SPDX-License-Identifier: Apache-2.0
// Trust tiers: which tier a score (0..1000) gives under a policy's thresholds. The kernel makes
// the same computation in cordon_tier() (bpf/cordon.bpf.h); this is userspace's one copy of it,
// for the tier an agent starts in and for what `cordon trust` and cordond report.
#pragma once

#include <cstdint>
#include <span>

#include <cordon/abi.h>

#include "policy/model.h"

namespace cordon::policy {

/// The highest tier whose minimum the score reaches, given each tier's minimum from the lowest
/// tier up (ascending, as the parser requires). Tier 0 holds every score below tier 1's minimum,
/// whatever its own minimum says, as in the kernel.
std::uint32_t tier_from_score(std::span<const std::uint32_t> min_scores, std::uint32_t score);

/// Under a compiled policy's settings (cordon_policies), reading the first ntiers minimums
/// and never more than CORDON_MAX_TIERS, as the kernel does.
std::uint32_t tier_from_score(const cordon_policy& settings, std::uint32_t score);

/// Under a parsed policy's trust section.
std::uint32_t tier_from_score(const Trust& trust, std::uint32_t score);

} // namespace cordon::policy
