// SPDX-License-Identifier: Apache-2.0
#include "policy/lookup.h"

#include <algorithm>
#include <cstring>

namespace cordon::policy {
namespace {

// True when the first `bits` bits of a and b agree.
bool prefix_equal(const std::uint8_t* a, const std::uint8_t* b, std::uint32_t bits)
{
    const std::uint32_t whole = bits / 8;
    if (std::memcmp(a, b, whole) != 0)
        return false;
    if (bits % 8 == 0)
        return true;
    const auto mask = static_cast<std::uint8_t>(0xff00u >> (bits % 8));
    return (a[whole] & mask) == (b[whole] & mask);
}

template <typename Key, typename Value>
const Value* longest_match(const std::vector<std::pair<Key, Value>>& entries, const Key& probe)
{
    const Value* best = nullptr;
    std::uint32_t best_len = 0;
    const auto* probe_data = reinterpret_cast<const std::uint8_t*>(&probe) + sizeof(probe.prefixlen);
    for (const auto& [k, v] : entries) {
        const auto* data = reinterpret_cast<const std::uint8_t*>(&k) + sizeof(k.prefixlen);
        if (k.prefixlen > probe.prefixlen || (best && k.prefixlen <= best_len))
            continue;
        if (prefix_equal(data, probe_data, k.prefixlen)) {
            best = &v;
            best_len = k.prefixlen;
        }
    }
    return best;
}

} // namespace

std::optional<cordon_path_value> lookup_path(const CompiledPolicy& c, cordon_path_class cls,
                                             std::string_view path)
{
    cordon_path_key probe{};
    // As the kernel builds it: the path, its NUL, truncated to the key size.
    const size_t n = std::min(path.size() + 1, sizeof(probe.path));
    std::memcpy(probe.path, path.data(), std::min(path.size(), n));
    probe.policy_id = c.policy_id;
    probe.path_class = static_cast<__u8>(cls);
    probe.prefixlen = static_cast<__u32>((sizeof(probe.policy_id) + sizeof(probe.path_class) + n) * 8);
    if (const auto* v = longest_match(c.paths, probe))
        return *v;
    return std::nullopt;
}

std::optional<cordon_net_slot> lookup_net(const CompiledPolicy& c, int family,
                                          const std::array<std::uint8_t, 16>& addr,
                                          std::uint16_t port, std::uint8_t protocol)
{
    cordon_net_key probe{};
    probe.policy_id = c.policy_id;
    probe.family = static_cast<__u8>(family);
    const bool v4 = (family & ~CORDON_NET_INBOUND) == 4;
    std::memcpy(probe.addr, addr.data(), v4 ? 4 : 16);
    probe.prefixlen = 40 + (v4 ? 32 : 128);
    const auto* v = longest_match(c.nets, probe);
    if (!v)
        return std::nullopt;
    for (std::uint32_t i = 0; i < v->nslots && i < CORDON_NET_SLOTS; ++i) {
        const auto& s = v->slots[i];
        if (port >= s.port_lo && port <= s.port_hi && (s.protocols & protocol))
            return s;
    }
    return std::nullopt;
}

} // namespace cordon::policy
