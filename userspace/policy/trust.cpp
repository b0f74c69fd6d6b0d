// SPDX-License-Identifier: Apache-2.0
#include "policy/trust.h"

#include <algorithm>
#include <array>

namespace cordon::policy {

std::uint32_t tier_from_score(std::span<const std::uint32_t> min_scores, std::uint32_t score)
{
    // From tier 1 up and without stopping early, like cordon_tier(): the two must agree on
    // every input, ill-ordered thresholds included, or the tier cordond reports would not be
    // the one the kernel decides with.
    std::uint32_t tier = 0;
    for (std::size_t i = 1; i < min_scores.size(); ++i)
        if (score >= min_scores[i])
            tier = static_cast<std::uint32_t>(i);
    return tier;
}

std::uint32_t tier_from_score(const cordon_policy& settings, std::uint32_t score)
{
    const std::size_t n = std::min<std::size_t>(settings.ntiers, CORDON_MAX_TIERS);
    return tier_from_score(std::span<const std::uint32_t>(settings.tier_min_score, n), score);
}

std::uint32_t tier_from_score(const Trust& trust, std::uint32_t score)
{
    // The parser allows at most CORDON_MAX_TIERS tiers; a longer list (built by hand) counts
    // only as far as the kernel's table reaches, as its compiled settings would.
    std::array<std::uint32_t, CORDON_MAX_TIERS> mins{};
    const std::size_t n = std::min<std::size_t>(trust.tiers.size(), CORDON_MAX_TIERS);
    for (std::size_t i = 0; i < n; ++i)
        mins[i] = trust.tiers[i].min_score;
    return tier_from_score(std::span<const std::uint32_t>(mins.data(), n), score);
}

} // namespace cordon::policy
