// SPDX-License-Identifier: Apache-2.0
// Durations as people write them: "500ms", "10s", "5m", "1h30m", "2d". Used by the policy
// language (trust.penalties.burst.within) and by the CLI (--ttl).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace cordon::policy {

/// Parses one or more `<integer><unit>` parts (unit ms, s, m, h or d), largest unit first and
/// each unit once, into milliseconds. Refuses empty text, a number without a unit, an unknown
/// unit, fractions and signs, a total of zero and one that does not fit in 64 bits; `why` then
/// says what is wrong and what is expected.
std::optional<std::uint64_t> parse_duration_ms(std::string_view text, std::string& why);

/// The shortest text parse_duration_ms() reads back as `ms`: "1h30m", "10s", "500ms"; "0s" for 0.
std::string duration_text(std::uint64_t ms);

} // namespace cordon::policy
