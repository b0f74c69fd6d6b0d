// SPDX-License-Identifier: Apache-2.0
// DNS messages as the gateway needs them (RFC 1035): the header, the question, and the answer
// section's A, AAAA and CNAME records; every other record is skipped by its length. Parsing is
// bounded and total: any input gives a message or a reason, never a read outside it (compression
// pointers must point backwards, so they cannot loop; names stop at 255 bytes).
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace cordon::dns {

constexpr std::uint16_t kTypeA = 1;
constexpr std::uint16_t kTypeCname = 5;
constexpr std::uint16_t kTypeAaaa = 28;
constexpr std::uint16_t kClassIn = 1;

enum class Rcode : std::uint8_t { NoError = 0, FormErr = 1, ServFail = 2, NxDomain = 3, Refused = 5 };

struct Question {
    std::string name; ///< lower case, no trailing dot ("" for the root)
    std::uint16_t type = 0;
    std::uint16_t klass = 0;
};

struct Record {
    std::string name; ///< owner, lower case, no trailing dot
    std::uint16_t type = 0;
    std::uint16_t klass = 0;
    std::uint32_t ttl = 0;
    std::string target;               ///< CNAME: the canonical name
    std::array<std::uint8_t, 16> addr{}; ///< A: 4 bytes, AAAA: 16
};

struct Message {
    std::uint16_t id = 0;
    std::uint16_t flags = 0;
    std::vector<Question> questions;
    std::vector<Record> answers; ///< A, AAAA and CNAME records of the answer section only
    bool response() const { return (flags & 0x8000) != 0; }
    bool truncated() const { return (flags & 0x0200) != 0; }
    Rcode rcode() const { return static_cast<Rcode>(flags & 0xf); }
};

/// Parses a message. Names with bytes other than letters, digits, '-' and '_' in a label are
/// refused (they could not be compared with a rule's name as the resolver reads them).
std::optional<Message> parse(std::span<const std::uint8_t> wire, std::string& why);

/// The reply to `query` (its id, RD bit and question, copied) with `rcode` and no records.
/// Needs the query to have parsed; its question section is copied byte for byte.
std::vector<std::uint8_t> reply_with(std::span<const std::uint8_t> query, Rcode rcode);

/// An address an answer gives a name, and how long it may be kept.
struct Address {
    int family = 4; ///< 4 or 6
    std::array<std::uint8_t, 16> addr{};
    std::uint32_t ttl = 0; ///< the least TTL along the CNAME chain and the record itself
};

/// The A and AAAA records of `qname` in `m`'s answer section, following CNAMEs from it (at most
/// 16 links; a loop ends the chain). Records of names off the chain are ignored.
std::vector<Address> addresses_for(const Message& m, std::string_view qname);

/// The message with another id (the first two bytes).
void set_id(std::span<std::uint8_t> wire, std::uint16_t id);

std::string type_name(std::uint16_t type); ///< "A", "AAAA", "TXT", ... or "TYPE<n>"

} // namespace cordon::dns
