// SPDX-License-Identifier: Apache-2.0
#include "policy/duration.h"

#include <array>
#include <charconv>
#include <limits>

namespace cordon::policy {
namespace {

struct Unit {
    std::string_view name;
    std::uint64_t ms;
};

// Largest first: the order parts must be written in, and the order duration_text() writes.
constexpr std::array<Unit, 5> kUnits{{
    {"d", 86'400'000},
    {"h", 3'600'000},
    {"m", 60'000},
    {"s", 1'000},
    {"ms", 1},
}};

constexpr std::string_view kExample = "such as 500ms, 10s, 5m, 1h30m or 2d";

bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_lower(char c) { return c >= 'a' && c <= 'z'; }

} // namespace

std::optional<std::uint64_t> parse_duration_ms(std::string_view text, std::string& why)
{
    const std::string quoted = "'" + std::string(text) + "'";
    auto fail = [&](std::string msg) -> std::optional<std::uint64_t> {
        why = std::move(msg);
        return std::nullopt;
    };
    if (text.empty())
        return fail("the duration is empty; expected a whole number and a unit, " +
                    std::string(kExample));
    std::uint64_t total = 0;
    size_t next_unit = 0; // parts go from the largest unit down, each unit once
    for (size_t i = 0; i < text.size();) {
        const size_t num_start = i;
        while (i < text.size() && is_digit(text[i]))
            ++i;
        if (i == num_start) {
            if (is_lower(text[i]))
                return fail(quoted + " has a unit without a number before it; expected a whole "
                                     "number before each unit, " + std::string(kExample));
            return fail(quoted + " has '" + std::string(1, text[i]) +
                        "' where a number belongs; expected whole numbers, each followed by a "
                        "unit (ms, s, m, h or d), " + std::string(kExample));
        }
        const std::string_view digits = text.substr(num_start, i - num_start);
        const size_t unit_start = i;
        while (i < text.size() && is_lower(text[i]))
            ++i;
        const std::string_view unit = text.substr(unit_start, i - unit_start);
        if (unit.empty()) {
            if (i == text.size())
                return fail(quoted + " has no unit after " + std::string(digits) +
                            "; expected ms, s, m, h or d after each number, " +
                            std::string(kExample));
            return fail(quoted + " has '" + std::string(1, text[i]) + "' after " +
                        std::string(digits) + "; expected a unit (ms, s, m, h or d), " +
                        std::string(kExample));
        }
        size_t u = 0;
        while (u < kUnits.size() && kUnits[u].name != unit)
            ++u;
        if (u == kUnits.size())
            return fail(quoted + " has the unknown unit '" + std::string(unit) +
                        "'; expected ms, s, m, h or d, " + std::string(kExample));
        if (u < next_unit)
            return fail(quoted + " repeats a unit or puts a smaller one first; expected each "
                                 "unit once, largest first, such as 1h30m");
        next_unit = u + 1;
        std::uint64_t n = 0;
        const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), n);
        constexpr auto kMax = std::numeric_limits<std::uint64_t>::max();
        if (ec != std::errc() || end != digits.data() + digits.size() ||
            n > kMax / kUnits[u].ms || total > kMax - n * kUnits[u].ms)
            return fail(quoted + " is too long; expected a duration that fits in 64 bits of "
                                 "milliseconds (about 584 million years)");
        total += n * kUnits[u].ms;
    }
    if (total == 0)
        return fail(quoted + " is zero; expected a duration above zero, " + std::string(kExample));
    return total;
}

std::string duration_text(std::uint64_t ms)
{
    if (ms == 0)
        return "0s";
    std::string out;
    for (const auto& u : kUnits) {
        if (ms / u.ms == 0)
            continue;
        out += std::to_string(ms / u.ms);
        out += u.name;
        ms %= u.ms;
    }
    return out;
}

} // namespace cordon::policy
