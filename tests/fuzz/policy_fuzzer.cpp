// SPDX-License-Identifier: Apache-2.0
// libFuzzer target for the policy parser and compiler: any byte string must give either a
// policy (or task overlay) or positioned errors, never a crash, leak or hang. Seeded with
// policies/ and policies/overlays/.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "policy/compiler.h"
#include "policy/lookup.h"
#include "policy/parser.h"
#include "policy/pipeline.h"
#include "policy/render.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
    using namespace cordon::policy;
    if (size > kMaxPolicyBytes)
        return 0; // load_policy_file refuses these before parsing
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    const Context ctx{.home = "/home/fuzz", .workspace = "/work", .user = "fuzz"};
    auto parsed = parse_document(text, "fuzz.yaml", ctx); // AgentPolicy or TaskOverlay
    if (!parsed.policy) {
        if (parsed.errors.empty())
            __builtin_trap(); // no policy and no reason: a bug
        for (const auto& e : parsed.errors)
            (void)e.str();
        return 0;
    }
    auto compiled = compile(*parsed.policy, kTrialPolicyId);
    if (compiled.compiled) {
        (void)serialize(*compiled.compiled);
        (void)lookup_path(*compiled.compiled, CORDON_PATH_READ, "/home/fuzz/.ssh/id_rsa");
        (void)lookup_net(*compiled.compiled, 4, {127, 0, 0, 1}, 443, kTcp);
    } else if (compiled.errors.empty()) {
        __builtin_trap();
    }
    (void)show_text(*parsed.policy);
    (void)show_json(*parsed.policy);
    return 0;
}
