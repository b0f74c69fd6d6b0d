// SPDX-License-Identifier: Apache-2.0
// A userspace model of the kernel's lookups over a compiled policy: longest-prefix match on the
// path and network tries, then the first matching port/protocol slot. The BPF decision code does
// the same against the real maps; tests use this to pin the semantics of compiled entries, and
// `cordon policy show` can use it to explain a decision.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string_view>

#include "policy/compiler.h"

namespace cordon::policy {

/// The path entry deciding `path` for this class, or nullopt (the class default applies).
std::optional<cordon_path_value> lookup_path(const CompiledPolicy& c, cordon_path_class cls,
                                             std::string_view path);

/// The slot deciding a connection to addr:port over `protocol` (kTcp or kUdp), or nullopt.
std::optional<cordon_net_slot> lookup_net(const CompiledPolicy& c, int family,
                                          const std::array<std::uint8_t, 16>& addr,
                                          std::uint16_t port, std::uint8_t protocol);

} // namespace cordon::policy
