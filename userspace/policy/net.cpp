// SPDX-License-Identifier: Apache-2.0
#include "policy/net.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstring>
#include <tuple>

namespace cordon::policy {
namespace {

bool parse_uint(std::string_view s, unsigned long max, unsigned long& out)
{
    if (s.empty() || s.size() > 6)
        return false;
    const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
    return ec == std::errc() && end == s.data() + s.size() && out <= max;
}

} // namespace

std::optional<Cidr> parse_cidr(std::string_view text, std::string& why, HostBits host_bits)
{
    const auto slash = text.find('/');
    const std::string addr(text.substr(0, slash));
    Cidr c;
    if (::inet_pton(AF_INET, addr.c_str(), c.addr.data()) == 1) {
        c.family = 4;
    } else if (::inet_pton(AF_INET6, addr.c_str(), c.addr.data()) == 1) {
        c.family = 6;
    } else {
        why = "'" + addr + "' is not an IPv4 or IPv6 address; expected an address like 10.0.0.0/8 "
                           "or 2001:db8::/32";
        return std::nullopt;
    }
    const unsigned long max = c.family == 4 ? 32 : 128;
    unsigned long prefix = max;
    if (slash != std::string_view::npos &&
        !parse_uint(text.substr(slash + 1), max, prefix)) {
        why = "prefix length '" + std::string(text.substr(slash + 1)) + "' is not 0 to " +
              std::to_string(max);
        return std::nullopt;
    }
    c.prefix = static_cast<int>(prefix);
    Cidr masked = c;
    for (int bit = c.prefix; bit < static_cast<int>(max); ++bit)
        masked.addr[bit / 8] &= static_cast<std::uint8_t>(~(0x80u >> (bit % 8)));
    if (host_bits == HostBits::Clear)
        return masked;
    if (masked.addr != c.addr) {
        why = "host bits are set; did you mean " + cidr_text(masked) + "?";
        return std::nullopt;
    }
    return c;
}

bool cidr_contains(const Cidr& outer, const Cidr& inner)
{
    if (outer.family != inner.family || outer.prefix > inner.prefix)
        return false;
    for (int bit = 0; bit < outer.prefix; ++bit) {
        const auto mask = static_cast<std::uint8_t>(0x80u >> (bit % 8));
        if ((outer.addr[bit / 8] & mask) != (inner.addr[bit / 8] & mask))
            return false;
    }
    return true;
}

std::optional<PortRange> parse_port_range(std::string_view text)
{
    const auto dash = text.find('-');
    unsigned long lo = 0, hi = 0;
    if (dash == std::string_view::npos) {
        if (!parse_uint(text, 65535, lo) || lo == 0)
            return std::nullopt;
        hi = lo;
    } else if (!parse_uint(text.substr(0, dash), 65535, lo) ||
               !parse_uint(text.substr(dash + 1), 65535, hi) || lo == 0 || lo > hi) {
        return std::nullopt;
    }
    return PortRange{.lo = static_cast<std::uint16_t>(lo), .hi = static_cast<std::uint16_t>(hi)};
}

std::vector<PortRange> merge_port_ranges(std::vector<PortRange> r)
{
    std::sort(r.begin(), r.end(),
              [](const auto& a, const auto& b) { return std::tie(a.lo, a.hi) < std::tie(b.lo, b.hi); });
    std::vector<PortRange> out;
    for (const auto& x : r) {
        if (!out.empty() && static_cast<unsigned>(x.lo) <= static_cast<unsigned>(out.back().hi) + 1)
            out.back().hi = std::max(out.back().hi, x.hi);
        else
            out.push_back(x);
    }
    return out;
}

bool valid_host_name(std::string_view name)
{
    if (name.empty() || name.size() > 253)
        return false;
    if (name.back() == '.')
        name.remove_suffix(1);
    bool has_alpha = false;
    size_t start = 0;
    while (start <= name.size()) {
        const size_t end = std::min(name.find('.', start), name.size());
        const auto label = name.substr(start, end - start);
        if (label.empty() || label.size() > 63 || label.front() == '-' || label.back() == '-')
            return false;
        for (char ch : label) {
            if (!std::isalnum(static_cast<unsigned char>(ch)) && ch != '-')
                return false;
            has_alpha |= std::isalpha(static_cast<unsigned char>(ch)) != 0;
        }
        start = end + 1;
    }
    return has_alpha; // all-digit names are addresses: those belong in cidr:
}

bool valid_host_pattern(std::string_view name)
{
    if (name.starts_with("*."))
        name.remove_prefix(2);
    return valid_host_name(name);
}

std::string host_key(std::string_view name)
{
    std::string out(name);
    if (!out.empty() && out.back() == '.')
        out.pop_back();
    for (auto& ch : out)
        ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    return out;
}

bool host_matches(std::string_view pattern, std::string_view name)
{
    if (!pattern.starts_with("*."))
        return pattern == name;
    const auto suffix = pattern.substr(1); // ".github.io"
    return name.size() > suffix.size() && name.ends_with(suffix);
}

} // namespace cordon::policy
