// SPDX-License-Identifier: Apache-2.0
// The way from text to a policy safe to apply (policy/pipeline.h): which step reports what, and
// that the two steps together are the one-call prepare_document().
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "policy/net.h"
#include "policy/pipeline.h"
#include "policy_test_util.h"

namespace cordon::policy::testing {
namespace {

class OneHostResolver final : public Resolver {
public:
    int calls = 0;
    std::vector<Cidr> resolve(const std::string& host, std::string& error) override
    {
        ++calls;
        std::string why;
        if (host == "git.example.com")
            return {parse_cidr("192.0.2.10", why).value()};
        error = "Name or service not known";
        return {};
    }
};

std::string net_rules(const std::string& rules)
{
    return with_spec("  exec:\n    default: deny\n  files:\n    default: allow\n"
                     "  network:\n    default: deny\n    rules:\n" + rules);
}

const std::string kOverlay = "apiVersion: cordon.dev/v1\nkind: TaskOverlay\nmetadata:\n"
                             "  name: ov\nspec:\n  files:\n    rules:\n"
                             "      - {path: /tmp/, action: allow}\n";

struct PipelineCase {
    std::string name;
    std::string text;
    DocumentKind kind = DocumentKind::AgentPolicy;
    std::vector<std::string> errors = {};   ///< exact diagnostics; empty: the policy is ready
    std::vector<std::string> warnings = {}; ///< exact
};

const std::vector<PipelineCase> kCases = {
    {.name = "a valid policy", .text = minimal()},
    {.name = "a valid overlay", .text = kOverlay, .kind = DocumentKind::TaskOverlay},
    {.name = "either kind takes an overlay", .text = kOverlay, .kind = DocumentKind::Either},
    {.name = "either kind takes a policy", .text = minimal(), .kind = DocumentKind::Either},
    {.name = "an overlay where a policy is expected", .text = kOverlay,
     .errors = {"p.yaml:2:7: expected kind 'AgentPolicy' (an agent policy); found 'TaskOverlay': "
                "a task overlay is given with `cordon task begin --policy`"}},
    {.name = "a resolved host",
     .text = net_rules("      - {host: git.example.com, action: allow}\n")},
    {.name = "an allow rule's host is not resolved at load (the DNS gateway binds it)",
     .text = net_rules("      - {host: nowhere.invalid, action: allow}\n")},
    {.name = "a deny rule's host that does not resolve is an error",
     .text = net_rules("      - {host: nowhere.invalid, action: deny}\n"),
     .errors = {"p.yaml:13:16: host 'nowhere.invalid' does not resolve (Name or service not "
                "known); a deny or kill rule must resolve, or it would deny nothing: fix the name "
                "or use cidr:"}},
    {.name = "a conflict only compilation finds",
     .text = net_rules("      - {cidr: 10.0.0.0/8, ports: [\"80-90\"], action: allow}\n"
                       "      - {cidr: 10.0.0.0/8, ports: [\"85-95\"], action: deny}\n"),
     .errors = {"p.yaml:14:16: rule for 10.0.0.0/8 conflicts with line 13: both cover the same "
                "ports and protocol with different actions; expected one rule per address, port "
                "and protocol"}},
    {.name = "text over the size limit is refused before parsing",
     .text = std::string(kMaxPolicyBytes + 1, '#'),
     .errors = {"p.yaml: the text is 8388609 bytes; expected at most 8388608 (8 MiB) for a "
                "policy"}},
};

std::vector<std::string> strs(const Diagnostics& ds)
{
    std::vector<std::string> out;
    for (const auto& d : ds)
        out.push_back(d.str());
    return out;
}

TEST(Pipeline, PreparesOrSaysWhyNot)
{
    for (const auto& c : kCases) {
        OneHostResolver resolver;
        const auto p = prepare_document(c.text, "p.yaml", test_context(), c.kind, std::nullopt,
                                        resolver);
        EXPECT_EQ(p.policy.has_value(), c.errors.empty()) << c.name;
        EXPECT_EQ(strs(p.errors), c.errors) << c.name;
        EXPECT_EQ(strs(p.warnings), c.warnings) << c.name;
    }
}

TEST(Pipeline, TheTwoStepsAreTheOneCall)
{
    for (const auto& c : kCases) {
        OneHostResolver once, twice;
        const auto whole = prepare_document(c.text, "p.yaml", test_context(), c.kind,
                                            std::nullopt, once);
        auto checked = check_document(c.text, "p.yaml", test_context(), c.kind);
        EXPECT_EQ(twice.calls, 0) << c.name << ": checking needs no DNS";
        const auto stepped = resolve_and_compile(std::move(checked), twice);
        EXPECT_EQ(strs(stepped.errors), strs(whole.errors)) << c.name;
        EXPECT_EQ(strs(stepped.warnings), strs(whole.warnings)) << c.name;
        EXPECT_EQ(stepped.policy.has_value(), whole.policy.has_value()) << c.name;
        EXPECT_EQ(once.calls, twice.calls) << c.name;
    }
}

TEST(Pipeline, AnInvalidDocumentIsNeverResolved)
{
    OneHostResolver resolver;
    const auto p = resolve_and_compile(
        check_document("kind: [", "p.yaml", test_context(), DocumentKind::AgentPolicy), resolver);
    EXPECT_FALSE(p.policy);
    EXPECT_FALSE(p.errors.empty());
    EXPECT_EQ(resolver.calls, 0);
}

TEST(Pipeline, TheModeGivenOverridesTheDocuments)
{
    const auto audit = check_document(minimal("  mode: enforce\n"), "p.yaml", test_context(),
                                      DocumentKind::AgentPolicy, Mode::Audit);
    ASSERT_TRUE(audit.policy);
    EXPECT_EQ(audit.policy->mode, Mode::Audit);
    const auto own = check_document(minimal("  mode: audit\n"), "p.yaml", test_context(),
                                    DocumentKind::AgentPolicy);
    ASSERT_TRUE(own.policy);
    EXPECT_EQ(own.policy->mode, Mode::Audit);
}

TEST(Pipeline, ATrialCompileLeavesHostsUnresolved)
{
    // `cordon policy check` compiles without DNS: a deny rule's host is not an error there.
    const auto p = trial_compile(check_document(
        net_rules("      - {host: nowhere.invalid, action: deny}\n"), "p.yaml", test_context(),
        DocumentKind::Either));
    ASSERT_TRUE(p.policy);
    EXPECT_TRUE(p.errors.empty());
    EXPECT_TRUE(p.policy->network.rules.at(0).resolved.empty());
}

TEST(Pipeline, AFileIsReadThenChecked)
{
    const auto shipped = check_file(std::string(CORDON_POLICIES_DIR) + "/coding-agent.yaml",
                                    test_context(), DocumentKind::Either);
    EXPECT_TRUE(shipped.policy) << (shipped.errors.empty() ? "" : shipped.errors[0].str());
    const auto dir = check_file(CORDON_POLICIES_DIR, test_context(), DocumentKind::Either);
    EXPECT_FALSE(dir.policy);
    ASSERT_EQ(dir.errors.size(), 1u);
    EXPECT_NE(dir.errors[0].message.find("is a directory"), std::string::npos);
}

} // namespace
} // namespace cordon::policy::testing
