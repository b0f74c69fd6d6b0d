// SPDX-License-Identifier: Apache-2.0
// libFuzzer target for the DNS gateway's message parser (userspace/dns/message.cpp), which reads
// what agents send and what the upstream answers: any byte string must parse to a message or a
// reason, never crash, read out of bounds or hang (compression loops, oversized names, counts
// past the end); what the gateway derives from a parsed message must hold its invariants.
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

#include "dns/message.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
    using namespace cordon::dns;
    const std::span<const std::uint8_t> wire(data, size);
    std::string why;
    const auto m = parse(wire, why);
    if (!m) {
        if (why.empty())
            __builtin_trap(); // a refusal names its reason
        return 0;
    }
    if (m->questions.size() != 1 || m->questions[0].name.size() > 253)
        __builtin_trap();
    for (const auto& a : addresses_for(*m, m->questions[0].name)) {
        if (a.family != 4 && a.family != 6)
            __builtin_trap();
        bool known = false; // every address comes from a record of the answer, its TTL no longer
        for (const auto& r : m->answers)
            known = known || (r.addr == a.addr && a.ttl <= r.ttl);
        if (!known)
            __builtin_trap();
    }
    const auto reply = reply_with(wire, Rcode::Refused);
    if (reply.size() < 12 || reply.size() > size + 12 || (reply[3] & 0xf) != 5)
        __builtin_trap();
    return 0;
}
