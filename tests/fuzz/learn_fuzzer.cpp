// SPDX-License-Identifier: Apache-2.0
// libFuzzer target for the records `cordon policy suggest` and `cordon policy test` read (an
// events file is whatever a file holds): each line goes to parse_record(), every access to a
// Suggester and a Tester. Any input must give an access or a reason, never both, never a crash;
// the suggested policy must always be a valid policy, and it must let through every access it
// was made from, unless that access was left for review. Seeded with tests/fuzz/learn.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "policy/learn.h"
#include "policy/pipeline.h"

namespace {

using namespace cordon::policy;

void check(bool ok)
{
    if (!ok)
        __builtin_trap();
}

const Context kCtx{.home = "/home/ada", .workspace = "/home/ada/repo", .user = "ada"};

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    learn::SuggestOptions o;
    o.ctx = kCtx;
    o.fold = size ? 1 + data[0] % 5 : 4;
    learn::Suggester s(o);
    std::vector<learn::Access> seen;
    std::size_t start = 0;
    while (start <= text.size() && seen.size() < 64) {
        auto end = text.find('\n', start);
        if (end == std::string_view::npos)
            end = text.size();
        std::string why;
        auto a = learn::parse_record(text.substr(start, end - start), why);
        check(!(a && !why.empty()));
        if (a) {
            s.add(*a, "");
            seen.push_back(*a);
        }
        start = end + 1;
    }
    if (s.accesses() == 0)
        return 0;
    const auto yaml = s.policy_yaml();
    (void)s.diff_text();
    auto checked = trial_compile(check_document(yaml, "suggested.yaml", kCtx, DocumentKind::AgentPolicy));
    check(checked.policy.has_value());
    auto compiled = compile(*checked.policy, kTrialPolicyId);
    check(compiled.compiled.has_value());
    const learn::Candidate c{*checked.policy, *compiled.compiled, yaml};
    learn::Tester t(c);
    for (const auto& a : seen)
        t.add(a, "");
    // What was not allowed is what was left for review: the diff names each of those.
    const auto r = t.result();
    const auto diff = s.diff_text();
    for (const auto& ch : r.changes)
        if (ch.newly_denied)
            check(diff.find("! review   " + ch.what) != std::string::npos);
    return 0;
}
