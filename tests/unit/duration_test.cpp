// SPDX-License-Identifier: Apache-2.0
// Durations as written in policies (trust.penalties.burst.within) and on the command line (--ttl).
#include <cstdint>
#include <limits>
#include <string>

#include <gtest/gtest.h>

#include "policy/duration.h"

namespace cordon::policy {
namespace {

struct ParseCase {
    const char* name;
    std::string text;
    std::uint64_t want_ms; // 0: refused
    std::string why;       // the reason, when refused
};
void PrintTo(const ParseCase& c, std::ostream* os) { *os << c.name; }

class DurationParseTest : public ::testing::TestWithParam<ParseCase> {};

TEST_P(DurationParseTest, ParsesOrSaysWhy)
{
    std::string why;
    const auto ms = parse_duration_ms(GetParam().text, why);
    if (GetParam().want_ms == 0) {
        EXPECT_FALSE(ms.has_value()) << *ms;
        EXPECT_EQ(why, GetParam().why);
    } else {
        ASSERT_TRUE(ms.has_value()) << why;
        EXPECT_EQ(*ms, GetParam().want_ms);
    }
}

const ParseCase kParseCases[] = {
    {.name = "Milliseconds", .text = "500ms", .want_ms = 500, .why = ""},
    {.name = "Seconds", .text = "10s", .want_ms = 10'000, .why = ""},
    {.name = "Minutes", .text = "5m", .want_ms = 300'000, .why = ""},
    {.name = "Hours", .text = "1h", .want_ms = 3'600'000, .why = ""},
    {.name = "Days", .text = "2d", .want_ms = 172'800'000, .why = ""},
    {.name = "HoursAndMinutes", .text = "1h30m", .want_ms = 5'400'000, .why = ""},
    {.name = "EveryUnit", .text = "1d2h3m4s5ms", .want_ms = 93'784'005, .why = ""},
    {.name = "LeadingZeros", .text = "010s", .want_ms = 10'000, .why = ""},
    {.name = "ZeroPartsBesideOthers", .text = "0h5m", .want_ms = 300'000, .why = ""},
    {.name = "Empty", .text = "", .want_ms = 0,
     .why = "the duration is empty; expected a whole number and a unit, such as 500ms, 10s, 5m, "
            "1h30m or 2d"},
    {.name = "BareNumber", .text = "10", .want_ms = 0,
     .why = "'10' has no unit after 10; expected ms, s, m, h or d after each number, such as "
            "500ms, 10s, 5m, 1h30m or 2d"},
    {.name = "TrailingNumber", .text = "1h30", .want_ms = 0,
     .why = "'1h30' has no unit after 30; expected ms, s, m, h or d after each number, such as "
            "500ms, 10s, 5m, 1h30m or 2d"},
    {.name = "UnknownUnit", .text = "10sec", .want_ms = 0,
     .why = "'10sec' has the unknown unit 'sec'; expected ms, s, m, h or d, such as 500ms, 10s, "
            "5m, 1h30m or 2d"},
    {.name = "UpperCaseUnit", .text = "10S", .want_ms = 0,
     .why = "'10S' has 'S' after 10; expected a unit (ms, s, m, h or d), such as 500ms, 10s, 5m, "
            "1h30m or 2d"},
    {.name = "UnitWithoutNumber", .text = "h", .want_ms = 0,
     .why = "'h' has a unit without a number before it; expected a whole number before each "
            "unit, such as 500ms, 10s, 5m, 1h30m or 2d"},
    {.name = "Fraction", .text = "1.5h", .want_ms = 0,
     .why = "'1.5h' has '.' after 1; expected a unit (ms, s, m, h or d), such as 500ms, 10s, 5m, "
            "1h30m or 2d"},
    {.name = "Negative", .text = "-5s", .want_ms = 0,
     .why = "'-5s' has '-' where a number belongs; expected whole numbers, each followed by a "
            "unit (ms, s, m, h or d), such as 500ms, 10s, 5m, 1h30m or 2d"},
    {.name = "Space", .text = "1h 30m", .want_ms = 0,
     .why = "'1h 30m' has ' ' where a number belongs; expected whole numbers, each followed by a "
            "unit (ms, s, m, h or d), such as 500ms, 10s, 5m, 1h30m or 2d"},
    {.name = "SmallerUnitFirst", .text = "30m1h", .want_ms = 0,
     .why = "'30m1h' repeats a unit or puts a smaller one first; expected each unit once, largest "
            "first, such as 1h30m"},
    {.name = "RepeatedUnit", .text = "1m1m", .want_ms = 0,
     .why = "'1m1m' repeats a unit or puts a smaller one first; expected each unit once, largest "
            "first, such as 1h30m"},
    {.name = "Zero", .text = "0s", .want_ms = 0,
     .why = "'0s' is zero; expected a duration above zero, such as 500ms, 10s, 5m, 1h30m or 2d"},
    {.name = "NumberOverflows", .text = "99999999999999999999ms", .want_ms = 0,
     .why = "'99999999999999999999ms' is too long; expected a duration that fits in 64 bits of "
            "milliseconds (about 584 million years)"},
    {.name = "ProductOverflows", .text = "213503982335d", .want_ms = 0,
     .why = "'213503982335d' is too long; expected a duration that fits in 64 bits of "
            "milliseconds (about 584 million years)"},
    {.name = "SumOverflows", .text = "213503982334d23h59m59s999ms", .want_ms = 0,
     .why = "'213503982334d23h59m59s999ms' is too long; expected a duration that fits in 64 bits "
            "of milliseconds (about 584 million years)"},
};

INSTANTIATE_TEST_SUITE_P(Cases, DurationParseTest, ::testing::ValuesIn(kParseCases),
                         [](const auto& tp) { return std::string(tp.param.name); });

struct TextCase {
    const char* name;
    std::uint64_t ms;
    std::string want;
};
void PrintTo(const TextCase& c, std::ostream* os) { *os << c.name; }

class DurationTextTest : public ::testing::TestWithParam<TextCase> {};

TEST_P(DurationTextTest, WritesTheShortestFormAndReadsItBack)
{
    EXPECT_EQ(duration_text(GetParam().ms), GetParam().want);
    if (GetParam().ms == 0)
        return;
    std::string why;
    EXPECT_EQ(parse_duration_ms(GetParam().want, why), GetParam().ms) << why;
}

const TextCase kTextCases[] = {
    {.name = "Zero", .ms = 0, .want = "0s"},
    {.name = "Milliseconds", .ms = 500, .want = "500ms"},
    {.name = "Seconds", .ms = 10'000, .want = "10s"},
    {.name = "SecondsAndMilliseconds", .ms = 1'500, .want = "1s500ms"},
    {.name = "HourAndAHalf", .ms = 5'400'000, .want = "1h30m"},
    {.name = "Day", .ms = 86'400'000, .want = "1d"},
    {.name = "EveryUnit", .ms = 93'784'005, .want = "1d2h3m4s5ms"},
    {.name = "Largest", .ms = std::numeric_limits<std::uint64_t>::max(),
     .want = "213503982334d14h25m51s615ms"},
};

INSTANTIATE_TEST_SUITE_P(Cases, DurationTextTest, ::testing::ValuesIn(kTextCases),
                         [](const auto& tp) { return std::string(tp.param.name); });

} // namespace
} // namespace cordon::policy
