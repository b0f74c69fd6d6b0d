// SPDX-License-Identifier: Apache-2.0
// libFuzzer target for cordond's request decoder, the daemon's whole surface towards its callers:
// any byte string must decode to a request or raise ProtocolError, never crash, leak or hang; a
// decoded request must encode and decode to the same request again.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "api/protocol.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
    using namespace cordon::api;
    const std::string_view line(reinterpret_cast<const char*>(data), size);
    Request r;
    try {
        r = decode_request(line);
    } catch (const ProtocolError&) {
        return 0;
    }
    const Request again = decode_request(encode_request(r));
    if (again.op != r.op || again.name != r.name || again.cgroup != r.cgroup ||
        again.mode != r.mode || again.user != r.user || again.workspace != r.workspace ||
        again.home != r.home || again.policy.has_value() != r.policy.has_value() ||
        (r.policy && (again.policy->file != r.policy->file || again.policy->text != r.policy->text)))
        __builtin_trap(); // a request that does not survive a round trip
    (void)changes_state(r.op);
    return 0;
}
