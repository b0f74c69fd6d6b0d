// SPDX-License-Identifier: Apache-2.0
// tier_from_score: the tier a score gives, as the kernel's cordon_tier() computes it, whether
// the thresholds come from a parsed policy or from its compiled settings.
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "policy/compiler.h"
#include "policy/trust.h"
#include "policy_test_util.h"

namespace cordon::policy::testing {
namespace {

struct TierCase {
    std::string name;
    std::vector<std::uint32_t> mins; ///< each tier's minimum, lowest tier first
    std::uint32_t score = 0;
    std::uint32_t tier = 0;
};

const std::vector<TierCase> kTierCases = {
    {.name = "one tier holds every score", .mins = {0}, .score = 0, .tier = 0},
    {.name = "one tier holds the top score", .mins = {0}, .score = 1000, .tier = 0},
    {.name = "below the second minimum is tier 0", .mins = {0, 600}, .score = 599, .tier = 0},
    {.name = "the minimum itself is in the tier", .mins = {0, 600}, .score = 600, .tier = 1},
    {.name = "above the last minimum is the last tier", .mins = {0, 300, 700}, .score = 1000,
     .tier = 2},
    {.name = "between two minimums is the lower tier", .mins = {0, 300, 700}, .score = 699,
     .tier = 1},
    {.name = "score zero is tier 0", .mins = {0, 1, 2}, .score = 0, .tier = 0},
    {.name = "tier 0's own minimum is not checked, as in the kernel", .mins = {500, 800},
     .score = 100, .tier = 0},
    {.name = "eight tiers, the kernel's most", .mins = {0, 100, 200, 300, 400, 500, 600, 700},
     .score = 650, .tier = 6},
    {.name = "ill-ordered minimums: the highest one reached wins, no early stop",
     .mins = {0, 900, 100}, .score = 500, .tier = 2},
    {.name = "no tiers at all is tier 0", .mins = {}, .score = 1000, .tier = 0},
};

TEST(TierFromScore, ThresholdsGiveTheHighestTierReached)
{
    for (const auto& c : kTierCases)
        EXPECT_EQ(tier_from_score(c.mins, c.score), c.tier) << c.name;
}

TEST(TierFromScore, CompiledSettingsAndTrustSectionAgree)
{
    for (const auto& c : kTierCases) {
        if (c.mins.size() > CORDON_MAX_TIERS)
            continue;
        cordon_policy s{};
        s.ntiers = static_cast<__u8>(c.mins.size());
        Trust t;
        t.tiers.clear();
        for (std::size_t i = 0; i < c.mins.size(); ++i) {
            s.tier_min_score[i] = c.mins[i];
            t.tiers.push_back(Tier{.name = "t" + std::to_string(i), .min_score = c.mins[i],
                                   .pos = {}});
        }
        EXPECT_EQ(tier_from_score(s, c.score), c.tier) << c.name;
        EXPECT_EQ(tier_from_score(t, c.score), c.tier) << c.name;
    }
}

TEST(TierFromScore, SettingsReadOnlyTheirUsedTiers)
{
    cordon_policy s{};
    s.ntiers = 2;
    s.tier_min_score[1] = 500;
    s.tier_min_score[2] = 600; // stale: beyond ntiers
    EXPECT_EQ(tier_from_score(s, 900), 1u);
}

TEST(TierFromScore, SettingsNeverReadPastTheTable)
{
    cordon_policy s{};
    s.ntiers = 200; // more than the table holds: the kernel reads CORDON_MAX_TIERS at most
    for (std::uint32_t i = 0; i < CORDON_MAX_TIERS; ++i)
        s.tier_min_score[i] = i * 100;
    EXPECT_EQ(tier_from_score(s, 1000), CORDON_MAX_TIERS - 1);
}

TEST(TierFromScore, ANewAgentStartsInTheTierOfItsInitialScore)
{
    auto r = parse(with_spec("  trust:\n    initial: 650\n    tiers:\n      - {name: low, min: 0}\n"
                             "      - {name: mid, min: 400}\n      - {name: high, min: 700}\n"
                             "  exec:\n    default: deny\n  files:\n    default: allow\n"
                             "  network:\n    default: deny\n"));
    ASSERT_TRUE(r.policy) << r.errors.at(0).str();
    EXPECT_EQ(live_for(*r.policy, 1).tier, 1);
    const auto c = compile(*r.policy, 9).compiled.value();
    EXPECT_EQ(tier_from_score(c.settings, 650), 1u);
}

} // namespace
} // namespace cordon::policy::testing
