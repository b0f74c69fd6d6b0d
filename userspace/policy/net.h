// SPDX-License-Identifier: Apache-2.0
// Addresses, CIDRs, ports and host names of network rules.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "policy/model.h"

namespace cordon::policy {

/// What parse_cidr does with host bits set below the prefix ("10.1.2.3/8").
enum class HostBits {
    Refuse, ///< an error naming the range meant: in a policy it is most likely a typo
    Clear,  ///< the range that holds the address: a query ("events near this address") means it
};

/// "10.0.0.0/8", "2001:db8::/32", or a bare address (a /32 or /128). Host bits must be zero
/// unless `host_bits` clears them; `why` says what is wrong otherwise.
std::optional<Cidr> parse_cidr(std::string_view text, std::string& why,
                               HostBits host_bits = HostBits::Refuse);

/// True when `inner` lies within `outer` (same family, outer's prefix covers it).
bool cidr_contains(const Cidr& outer, const Cidr& inner);

/// "443" or "8000-8999", ports 1..65535.
std::optional<PortRange> parse_port_range(std::string_view text);

/// Sorts ranges and merges overlapping or adjacent ones.
std::vector<PortRange> merge_port_ranges(std::vector<PortRange> ranges);

/// A DNS name: labels of letters, digits and '-', 1-63 bytes each, 253 in all.
bool valid_host_name(std::string_view name);
/// A host rule's name: a DNS name, or "*." and a DNS name (every name below it, not itself).
bool valid_host_pattern(std::string_view name);
/// The form names are compared in: lower case, no trailing dot.
std::string host_key(std::string_view name);
/// Whether a rule's name (host_key form; "*.x" for a wildcard) names `name` (host_key form).
bool host_matches(std::string_view pattern, std::string_view name);

} // namespace cordon::policy
