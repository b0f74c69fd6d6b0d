// SPDX-License-Identifier: Apache-2.0
#include "policy/pipeline.h"

#include <utility>

#include "policy/parser.h"

namespace cordon::policy {

Prepared check_document(std::string_view text, const std::string& file, const Context& ctx,
                        DocumentKind kind, std::optional<Mode> mode)
{
    Prepared out;
    // Text that comes over cordond's socket has not been through read_policy_file's limit.
    if (text.size() > kMaxPolicyBytes) {
        out.errors.push_back({.file = file, .line = 0, .column = 0,
                              .message = "the text is " + std::to_string(text.size()) +
                                         " bytes; expected at most " +
                                         std::to_string(kMaxPolicyBytes) +
                                         " (8 MiB) for a policy"});
        return out;
    }
    auto parsed = kind == DocumentKind::AgentPolicy ? parse_policy(text, file, ctx)
                  : kind == DocumentKind::TaskOverlay ? parse_overlay(text, file, ctx)
                                                      : parse_document(text, file, ctx);
    out.policy = std::move(parsed.policy);
    out.errors = std::move(parsed.errors);
    if (out.policy && mode)
        out.policy->mode = *mode;
    return out;
}

Prepared check_file(const std::string& path, const Context& ctx, DocumentKind kind)
{
    Prepared out;
    const auto text = read_policy_file(path, out.errors);
    if (!text)
        return out;
    return check_document(*text, path, ctx, kind);
}

Prepared trial_compile(Prepared checked)
{
    if (!checked.policy)
        return checked;
    if (auto c = compile(*checked.policy, kTrialPolicyId); !c.compiled) {
        checked.policy.reset();
        checked.errors = std::move(c.errors);
    }
    return checked;
}

Prepared resolve_and_compile(Prepared checked, Resolver& resolver)
{
    if (!checked.policy)
        return checked;
    if (auto errs = resolve_hosts(*checked.policy, resolver, &checked.warnings); !errs.empty()) {
        checked.policy.reset();
        checked.errors = std::move(errs);
        return checked;
    }
    return trial_compile(std::move(checked));
}

Prepared prepare_document(std::string_view text, const std::string& file, const Context& ctx,
                          DocumentKind kind, std::optional<Mode> mode, Resolver& resolver)
{
    return resolve_and_compile(check_document(text, file, ctx, kind, mode), resolver);
}

} // namespace cordon::policy
