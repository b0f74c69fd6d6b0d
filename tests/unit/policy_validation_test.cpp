// SPDX-License-Identifier: Apache-2.0
// Every validation error, with its exact message and position (file:line:column).
#include <gtest/gtest.h>

#include "policy_test_util.h"

namespace cordon::policy::testing {
namespace {

struct ErrorCase {
    const char* name;
    std::string text;
    std::vector<std::string> want; // every error, in order
};
void PrintTo(const ErrorCase& c, std::ostream* os) { *os << c.name; }

class ValidationTest : public ::testing::TestWithParam<ErrorCase> {};

TEST_P(ValidationTest, ReportsExactlyTheseErrors)
{
    const auto r = parse(GetParam().text);
    std::vector<std::string> got;
    for (const auto& d : r.errors)
        got.push_back(d.str());
    EXPECT_EQ(got, GetParam().want);
    EXPECT_EQ(r.policy.has_value(), GetParam().want.empty());
}

const std::string kClasses =
    "  exec:\n    default: deny\n  files:\n    default: allow\n  network:\n    default: deny\n";

const ErrorCase kErrorCases[] = {
    {.name = "MinimalPolicyIsValid", .text = minimal(), .want = {}},
    {.name = "HardeningReopensNamedSideDoors",
     .text = minimal("  hardening:\n    no_new_privs: false\n    allow: [io_uring, namespaces]\n"),
     .want = {}},
    {.name = "HardeningCannotReopenModules",
     .text = minimal("  hardening:\n    allow: [modules]\n"),
     .want = {"p.yaml:7:13: hardening.allow cannot reopen 'modules': an agent never loads kernel "
              "code; expected namespaces, mount, bpf, perf, file_handles, foreign_abi, io_uring or "
              "fd_sharing"}},
    {.name = "HardeningUnknownItemWithHint",
     .text = minimal("  hardening:\n    allow: io_uringg\n"),
     .want = {"p.yaml:7:12: unknown hardening item 'io_uringg'; did you mean 'io_uring'? expected "
              "namespaces, mount, bpf, perf, file_handles, foreign_abi, io_uring or fd_sharing"}},
    {.name = "TasksIsolationOpen", .text = minimal("  tasks:\n    isolation: open\n"), .want = {}},
    {.name = "TasksIsolationUnknownWord",
     .text = minimal("  tasks:\n    isolation: loose\n"),
     .want = {"p.yaml:7:16: unknown tasks.isolation 'loose'; expected strict or open"}},
    {.name = "InboundRulesNameNoHosts",
     .text = with_spec("  exec:\n    default: deny\n  files:\n    default: allow\n  network:\n"
                       "    default: deny\n    inbound:\n      default: deny\n      rules:\n"
                       "        - {host: example.com, action: allow}\n"),
     .want = {"p.yaml:15:18: network.inbound.rules[0] names a host; inbound rules name local "
              "addresses: expected cidr"}},
    {.name = "EmptyText", .text = "",
     .want = {"p.yaml: the policy is empty; expected a mapping with apiVersion, kind, metadata and "
              "spec (see policies/ for examples)"}},
    {.name = "NotUtf8", .text = minimal("  # caf\xe9\n"),
     .want = {"p.yaml: is not UTF-8 text (bad byte at offset 77); expected a YAML text file"}},
    {.name = "NotAMapping", .text = "- a\n- b\n",
     .want = {"p.yaml:1:1: the policy must be a mapping (key: value lines); found a list"}},
    {.name = "InvalidYaml", .text = "spec: [a, b\n",
     .want = {"p.yaml:2:1: invalid YAML: end of sequence flow not found; expected a YAML mapping "
              "(see docs/policy.md)"}},
    {.name = "TabIndentation",
     .text = "apiVersion: cordon.dev/v1\nmetadata:\n\tname: t\n  \tx: 1\n",
     .want = {"p.yaml:3:1: tab in indentation; expected spaces (YAML indents with spaces only)",
              "p.yaml:4:3: tab in indentation; expected spaces (YAML indents with spaces only)"}},
    {.name = "UnknownTopKeyWithHint",
     .text = "apiVersion: cordon.dev/v1\nkind: AgentPolicy\nmetdata:\n  name: t\nspec:\n" + kClasses,
     .want = {"p.yaml:1:1: the policy has no 'metadata'; expected a mapping with name",
              "p.yaml:3:1: unknown key 'metdata' in the policy; did you mean 'metadata'? expected "
              "apiVersion, kind, metadata or spec"}},
    {.name = "WrongApiVersionAndKind",
     .text = "apiVersion: v2\nkind: Policy\nmetadata:\n  name: t\nspec:\n" + kClasses,
     .want = {"p.yaml:1:13: unsupported apiVersion 'v2'; expected 'cordon.dev/v1'",
              "p.yaml:2:7: unsupported kind 'Policy'; expected 'AgentPolicy'"}},
    {.name = "EmptyName",
     .text = "apiVersion: cordon.dev/v1\nkind: AgentPolicy\nmetadata:\n  name: \"\"\nspec:\n" + kClasses,
     .want = {"p.yaml:4:3: metadata.name is empty; expected a name of 1 to 63 letters, digits, "
              "'-', '_' or '.', starting with a letter or digit"}},
    {.name = "BadName",
     .text = "apiVersion: cordon.dev/v1\nkind: AgentPolicy\nmetadata:\n  name: a/b\nspec:\n" + kClasses,
     .want = {"p.yaml:4:9: metadata.name 'a/b' is not valid; expected a name of 1 to 63 letters, "
              "digits, '-', '_' or '.', starting with a letter or digit"}},
    {.name = "MissingClass",
     .text = with_spec("  exec:\n    default: deny\n  files:\n    default: allow\n"),
     .want = {"p.yaml:6:3: spec has no 'network'; expected a mapping with 'default' (allow, deny, "
              "audit, kill or freeze) and 'rules'"}},
    {.name = "UnknownAction",
     .text = with_spec("  exec:\n    default: alow\n  files:\n    default: allow\n"
                       "  network:\n    default: deny\n"),
     .want = {"p.yaml:7:14: unknown exec.default 'alow'; did you mean 'allow'? expected allow, "
              "deny, audit, kill or freeze"}},
    {.name = "UnknownMode",
     .text = minimal("  mode: enforcing\n"),
     .want = {"p.yaml:6:9: unknown mode 'enforcing'; expected enforce or audit"}},
    {.name = "RepeatedKey",
     .text = minimal("  mode: audit\n  mode: enforce\n"),
     .want = {"p.yaml:7:3: key 'mode' repeats line 6 in spec; expected each key once"}},
    {.name = "RelativePath",
     .text = with_spec("  exec:\n    default: deny\n    rules:\n      - {path: bin/ls, action: allow}\n"
                       "  files:\n    default: allow\n  network:\n    default: deny\n"),
     .want = {"p.yaml:9:16: exec path 'bin/ls' is relative; expected an absolute path (starting "
              "with / or ${HOME}/${WORKSPACE})"}},
    {.name = "UnnormalizedPath",
     .text = with_spec("  exec:\n    default: deny\n    rules:\n      - {path: /usr/../bin/ls, action: allow}\n"
                       "      - {path: /usr//bin/, action: allow}\n"
                       "  files:\n    default: allow\n  network:\n    default: deny\n"),
     .want = {"p.yaml:9:16: exec path '/usr/../bin/ls' is not normalized (contains '..'); "
              "expected a path without '.', '..' or repeated '/'",
              "p.yaml:10:16: exec path '/usr//bin/' is not normalized (contains '//'); expected a "
              "path without '.', '..' or repeated '/'"}},
    {.name = "UndefinedVariable",
     .text = with_spec("  exec:\n    default: deny\n  files:\n    default: allow\n    rules:\n"
                       "      - {path: \"${HOM}/x\", action: deny}\n"
                       "  network:\n    default: deny\n"),
     .want = {"p.yaml:11:16: undefined variable ${HOM}; did you mean ${HOME}? expected ${HOME}, "
              "${WORKSPACE} or ${USER}"}},
    {.name = "UnknownRuleKeyAndMissingAction",
     .text = with_spec("  exec:\n    default: deny\n    rules:\n      - {pth: /bin/ls}\n"
                       "  files:\n    default: allow\n  network:\n    default: deny\n"),
     .want = {"p.yaml:9:9: exec.rules[0] has no 'path'; expected an absolute path",
              "p.yaml:9:9: exec.rules[0] has no 'action'; expected allow, deny, audit, kill or freeze",
              "p.yaml:9:10: unknown key 'pth' in exec.rules[0]; did you mean 'path'? expected "
              "path, action or tier"}},
    {.name = "AccessOnExecRule",
     .text = with_spec("  exec:\n    default: deny\n    rules:\n"
                       "      - {path: /bin/ls, action: allow, access: [read]}\n"
                       "  files:\n    default: allow\n  network:\n    default: deny\n"),
     .want = {"p.yaml:9:40: unknown key 'access' in exec.rules[0]; expected path, action or tier"}},
    {.name = "UnknownAccess",
     .text = with_spec("  exec:\n    default: deny\n  files:\n    default: allow\n    rules:\n"
                       "      - {path: /etc/, access: [reed], action: deny}\n"
                       "  network:\n    default: deny\n"),
     .want = {"p.yaml:11:32: unknown access 'reed'; did you mean 'read'? expected read or write"}},
    {.name = "ConflictingRulesNameBothLines",
     .text = with_spec("  exec:\n    default: deny\n  files:\n    default: allow\n    rules:\n"
                       "      - {path: /etc/, access: [read, write], action: deny}\n"
                       "      - {path: /etc/, access: [write], action: allow}\n"
                       "  network:\n    default: deny\n"),
     .want = {"p.yaml:12:16: rule for '/etc/' (write) conflicts with line 11 (deny vs allow); "
              "expected one rule per path and access"}},
    {.name = "SamePathDifferentAccessIsFine",
     .text = with_spec("  exec:\n    default: deny\n  files:\n    default: allow\n    rules:\n"
                       "      - {path: /etc/, access: [read], action: allow}\n"
                       "      - {path: /etc/, access: [write], action: deny}\n"
                       "  network:\n    default: deny\n"),
     .want = {}},
    {.name = "DuplicateExecRule",
     .text = with_spec("  exec:\n    default: deny\n    rules:\n"
                       "      - {path: /bin/ls, action: allow}\n"
                       "      - {path: /bin/ls, action: allow}\n"
                       "  files:\n    default: allow\n  network:\n    default: deny\n"),
     .want = {"p.yaml:10:16: rule for '/bin/ls' repeats line 9; expected one rule per path"}},
    {.name = "InvalidCidrs",
     .text = with_spec("  exec:\n    default: deny\n  files:\n    default: allow\n"
                       "  network:\n    default: deny\n    rules:\n"
                       "      - {cidr: 10.0.0.1/8, action: allow}\n"
                       "      - {cidr: 10.0.0.0/33, action: allow}\n"
                       "      - {cidr: \"2001:db8::1/129\", action: allow}\n"
                       "      - {cidr: 300.1.1.1, action: allow}\n"),
     .want = {"p.yaml:13:16: invalid CIDR '10.0.0.1/8': host bits are set; did you mean "
              "10.0.0.0/8?",
              "p.yaml:14:16: invalid CIDR '10.0.0.0/33': prefix length '33' is not 0 to 32",
              "p.yaml:15:16: invalid CIDR '2001:db8::1/129': prefix length '129' is not 0 to 128",
              "p.yaml:16:16: invalid CIDR '300.1.1.1': '300.1.1.1' is not an IPv4 or IPv6 "
              "address; expected an address like 10.0.0.0/8 or 2001:db8::/32"}},
    {.name = "PortsOutOfRange",
     .text = with_spec("  exec:\n    default: deny\n  files:\n    default: allow\n"
                       "  network:\n    default: deny\n    rules:\n"
                       "      - {cidr: 10.0.0.0/8, ports: [0, 65536, \"9-1\", http], action: allow}\n"),
     .want = {"p.yaml:13:36: port '0' is not valid; expected a port 1-65535 or a range "
              "\"low-high\" within it",
              "p.yaml:13:39: port '65536' is not valid; expected a port 1-65535 or a range "
              "\"low-high\" within it",
              "p.yaml:13:46: port '9-1' is not valid; expected a port 1-65535 or a range "
              "\"low-high\" within it",
              "p.yaml:13:53: port 'http' is not valid; expected a port 1-65535 or a range "
              "\"low-high\" within it"}},
    {.name = "CidrAndHostTogether",
     .text = with_spec("  exec:\n    default: deny\n  files:\n    default: allow\n"
                       "  network:\n    default: deny\n    rules:\n"
                       "      - {cidr: 10.0.0.0/8, host: example.com, action: allow}\n"),
     .want = {"p.yaml:13:9: network.rules[0] has both cidr and host; expected exactly one of them"}},
    {.name = "BadHostAndProtocol",
     .text = with_spec("  exec:\n    default: deny\n  files:\n    default: allow\n"
                       "  network:\n    default: deny\n    rules:\n"
                       "      - {host: \"bad_host!\", protocol: icmp, action: allow}\n"),
     .want = {"p.yaml:13:16: invalid host name 'bad_host!'; expected a DNS name such as "
              "github.com, or a wildcard such as \"*.github.io\" (use cidr: for addresses)",
              "p.yaml:13:39: unknown protocol 'icmp'; expected tcp, udp or any"}},
    {.name = "UnknownTier",
     .text = with_spec("  trust:\n    tiers:\n      - {name: low, min: 0}\n      - {name: high, min: 500}\n"
                       "  exec:\n    default: deny\n    rules:\n"
                       "      - {path: /bin/ls, action: allow, tier: hihg}\n"
                       "  files:\n    default: allow\n  network:\n    default: deny\n"),
     .want = {"p.yaml:13:46: unknown tier 'hihg'; did you mean 'high'? expected low or high"}},
    {.name = "TierWithoutTrust",
     .text = with_spec("  exec:\n    default: deny\n    rules:\n"
                       "      - {path: /bin/ls, action: allow, tier: high}\n"
                       "  files:\n    default: allow\n  network:\n    default: deny\n"),
     .want = {"p.yaml:9:46: unknown tier 'high'; this policy defines no tiers (add "
              "spec.trust.tiers)"}},
    {.name = "TierOnDenyRule",
     .text = with_spec("  trust:\n    tiers:\n      - {name: low, min: 0}\n"
                       "  exec:\n    default: deny\n    rules:\n"
                       "      - {path: /bin/ls, action: deny, tier: low}\n"
                       "  files:\n    default: allow\n  network:\n    default: deny\n"),
     .want = {"p.yaml:12:45: tier applies only to allow and audit rules (it is the lowest tier at "
              "which the rule still allows); remove it from this deny rule"}},
    {.name = "BadTierTable",
     .text = minimal("  trust:\n    initial: 1001\n    tiers:\n      - {name: low, min: 10}\n"
                     "      - {name: mid, min: 5}\n      - {name: low, min: 900}\n"),
     .want = {"p.yaml:7:14: trust.initial is 1001, out of range; expected 0 to 1000",
              "p.yaml:9:26: the first tier's min is 10; expected 0, so that every score has a tier",
              "p.yaml:10:26: trust.tiers[1].min 5 is not above the previous tier's 10; expected "
              "tiers from lowest to highest",
              "p.yaml:11:16: tier 'low' is defined twice (line 9); expected unique tier names"}},
    {.name = "TooManyTiers",
     .text = minimal("  trust:\n    tiers: [{name: a, min: 0}, {name: b, min: 1}, {name: c, min: 2}, "
                     "{name: d, min: 3}, {name: e, min: 4}, {name: f, min: 5}, {name: g, min: 6}, "
                     "{name: h, min: 7}, {name: i, min: 8}]\n"),
     .want = {"p.yaml:7:12: trust.tiers has 9 tiers; expected at most 8"}},
    {.name = "WrongTypes",
     .text = with_spec("  exec: deny\n  files:\n    default: [allow]\n  network:\n    default: deny\n"
                       "    dns: {grace: soon}\n"),
     .want = {"p.yaml:6:9: exec must be a mapping (key: value lines); found 'deny'",
              "p.yaml:8:14: files.default must be a single value; found a list",
              "p.yaml:11:18: network.dns.grace (seconds) must be a whole number; found 'soon'; "
              "expected 0 to 300"}},
    {.name = "RefreshIsGone",
     .text = with_spec("  exec:\n    default: deny\n  files:\n    default: allow\n  network:\n"
                       "    default: deny\n    refresh: 300\n"),
     .want = {"p.yaml:12:14: network.refresh is gone: host names are no longer resolved on a "
              "timer; the DNS gateway allows each address an agent's own lookup returns, for that "
              "answer's TTL plus network.dns.grace (docs/policy.md); remove it"}},
    {.name = "DnsUnknownIsAWord",
     .text = with_spec("  exec:\n    default: deny\n  files:\n    default: allow\n  network:\n"
                       "    default: deny\n    dns: {unknown: maybe}\n"),
     .want = {"p.yaml:12:20: unknown network.dns.unknown 'maybe'; expected refuse or pass"}},
    {.name = "WildcardOnlyAsTheFirstLabel",
     .text = with_spec("  exec:\n    default: deny\n  files:\n    default: allow\n  network:\n"
                       "    default: deny\n    rules:\n      - {host: \"a.*.test\", action: allow}\n"),
     .want = {"p.yaml:13:16: invalid host name 'a.*.test'; expected a DNS name such as "
              "github.com, or a wildcard such as \"*.github.io\" (use cidr: for addresses)"}},
    {.name = "PathTooLong",
     .text = with_spec("  exec:\n    default: deny\n    rules:\n      - {path: /" + std::string(250, 'a') +
                       ", action: allow}\n  files:\n    default: allow\n  network:\n    default: deny\n"),
     .want = {"p.yaml:9:16: exec path is 251 bytes long; expected at most 250 (the kernel's rule "
              "key limit)"}},
    {.name = "BurstAndOnEnterAreValid",
     .text = minimal("  trust:\n    tiers:\n      - {name: low, min: 0, on_enter: kill}\n"
                     "      - {name: mid, min: 300, on_enter: freeze}\n"
                     "      - {name: high, min: 600, on_enter: report}\n"
                     "    penalties:\n      deny: 10\n"
                     "      burst: {denials: 5, within: 1m30s, penalty: 200}\n"),
     .want = {}},
    {.name = "BurstWithoutWithinOrPenalty",
     .text = minimal("  trust:\n    penalties: {deny: 10, burst: {denials: 5}}\n"),
     .want = {"p.yaml:7:34: trust.penalties.burst has no 'within'; expected the window the "
              "denials fall within, 1s to 1h (such as 10s)",
              "p.yaml:7:34: trust.penalties.burst has no 'penalty'; expected the score lost once "
              "per window, 0 to 1000"}},
    {.name = "BurstWithoutDenials",
     .text = minimal("  trust:\n    penalties:\n      burst: {within: 10s, penalty: 5}\n"),
     .want = {"p.yaml:8:14: trust.penalties.burst has no 'denials'; expected the number of "
              "denials that costs the penalty, 1 to 65535"}},
    {.name = "BurstOutOfRange",
     .text = minimal("  trust:\n    penalties:\n"
                     "      burst: {denials: 0, within: 2h, penalty: 1001}\n"),
     .want = {"p.yaml:8:24: trust.penalties.burst.denials is 0, out of range; expected 1 to "
              "65535",
              "p.yaml:8:35: trust.penalties.burst.within is 2h, out of range; expected 1s to 1h",
              "p.yaml:8:48: trust.penalties.burst.penalty is 1001, out of range; expected 0 to "
              "1000"}},
    {.name = "BurstTooManyDenialsAndTooShortAWindow",
     .text = minimal("  trust:\n    penalties:\n"
                     "      burst: {denials: 65536, within: 500ms, penalty: 1}\n"),
     .want = {"p.yaml:8:24: trust.penalties.burst.denials is 65536, out of range; expected 1 to "
              "65535",
              "p.yaml:8:39: trust.penalties.burst.within is 500ms, out of range; expected 1s to "
              "1h"}},
    {.name = "BurstWithinWithoutUnit",
     .text = minimal("  trust:\n    penalties:\n"
                     "      burst: {denials: 5, within: 10, penalty: 1}\n"),
     .want = {"p.yaml:8:35: trust.penalties.burst.within is not a duration: '10' has no unit "
              "after 10; expected ms, s, m, h or d after each number, such as 500ms, 10s, 5m, "
              "1h30m or 2d"}},
    {.name = "BurstMisspeltKey",
     .text = minimal("  trust:\n    penalties:\n"
                     "      burst: {denials: 5, witin: 10s, penalty: 1}\n"),
     .want = {"p.yaml:8:14: trust.penalties.burst has no 'within'; expected the window the "
              "denials fall within, 1s to 1h (such as 10s)",
              "p.yaml:8:27: unknown key 'witin' in trust.penalties.burst; did you mean 'within'? "
              "expected denials, within or penalty"}},
    {.name = "BurstIsAMapping",
     .text = minimal("  trust:\n    penalties: {burst: 5}\n"),
     .want = {"p.yaml:7:24: trust.penalties.burst must be a mapping (key: value lines); found "
              "'5'"}},
    {.name = "UnknownPenaltyKeyListsBurst",
     .text = minimal("  trust:\n    penalties: {brust: {denials: 5}}\n"),
     .want = {"p.yaml:7:17: unknown key 'brust' in trust.penalties; did you mean 'burst'? "
              "expected deny, kill or burst"}},
    {.name = "UnknownOnEnter",
     .text = minimal("  trust:\n    tiers:\n      - {name: low, min: 0, on_enter: frezee}\n"),
     .want = {"p.yaml:8:39: unknown on_enter 'frezee'; did you mean 'freeze'? expected report, "
              "freeze or kill"}},
    {.name = "OnEnterIsOneWord",
     .text = minimal("  trust:\n    tiers:\n      - {name: low, min: 0, on_enter: [kill]}\n"),
     .want = {"p.yaml:8:39: on_enter must be a single value; found a list"}},
    {.name = "TaskOverlayIsNotAnAgentPolicy",
     .text = "apiVersion: cordon.dev/v1\nkind: TaskOverlay\nmetadata:\n  name: t\nspec:\n"
             "  files:\n    rules:\n      - {path: /tmp/, action: allow}\n",
     .want = {"p.yaml:2:7: expected kind 'AgentPolicy' (an agent policy); found 'TaskOverlay': a "
              "task overlay is given with `cordon task begin --policy`"}},
};

INSTANTIATE_TEST_SUITE_P(Cases, ValidationTest, ::testing::ValuesIn(kErrorCases),
                         [](const auto& tp) { return std::string(tp.param.name); });

TEST(Validation, TasksAreWalledByDefault)
{
    const auto strict = parse(minimal());
    ASSERT_TRUE(strict.policy);
    EXPECT_FALSE(strict.policy->tasks_open);
    const auto open = parse(minimal("  tasks:\n    isolation: open\n"));
    ASSERT_TRUE(open.policy);
    EXPECT_TRUE(open.policy->tasks_open);
}

TEST(Validation, VariableWithoutValueNamesTheFlag)
{
    const auto r = parse_policy(with_spec("  exec:\n    default: deny\n    rules:\n"
                                          "      - {path: \"${WORKSPACE}/\", action: allow}\n"
                                          "  files:\n    default: allow\n  network:\n    default: deny\n"),
                                "p.yaml", Context{.home = "/h", .workspace = std::nullopt, .user = "u"});
    ASSERT_EQ(r.errors.size(), 1u);
    EXPECT_EQ(r.errors[0].str(),
              "p.yaml:9:16: variable ${WORKSPACE} has no value in this run; pass --workspace DIR");
}

TEST(Validation, ExpandsVariablesAndKeepsWhatWasWritten)
{
    const auto r = parse(with_spec("  exec:\n    default: deny\n    rules:\n"
                                   "      - {path: \"${WORKSPACE}/bin/\", action: allow}\n"
                                   "  files:\n    default: allow\n    rules:\n"
                                   "      - {path: \"${HOME}/.ssh/\", action: deny}\n"
                                   "  network:\n    default: deny\n"));
    ASSERT_TRUE(r.policy) << r.errors.at(0).str();
    EXPECT_EQ(r.policy->exec.rules.at(0).path, "/work/repo/bin/");
    EXPECT_EQ(r.policy->exec.rules.at(0).written, "${WORKSPACE}/bin/");
    EXPECT_TRUE(r.policy->exec.rules.at(0).dir);
    EXPECT_EQ(r.policy->files.rules.at(0).path, "/home/ada/.ssh/");
    EXPECT_EQ(r.policy->files.rules.at(0).access, kRead | kWrite); // default: both
}

TEST(Validation, ReportsEveryErrorInOnePass)
{
    const auto r = parse(with_spec("  mode: strict\n  exec:\n    default: maybe\n  files:\n"
                                   "    default: allow\n    rules:\n      - {path: rel, action: deny}\n"
                                   "  network:\n    default: deny\n    rules:\n"
                                   "      - {cidr: 1.2.3.4/40, action: allow}\n"));
    EXPECT_EQ(r.errors.size(), 4u);
    EXPECT_FALSE(r.policy);
}

// ---- TaskOverlay ------------------------------------------------------------------------------

std::string overlay(const std::string& spec)
{
    return "apiVersion: cordon.dev/v1\n"
           "kind: TaskOverlay\n"
           "metadata:\n"
           "  name: fix-bug\n"
           "spec:\n" +
           spec;
}

const std::string kOverlayFiles = "  files:\n    rules:\n      - {path: /tmp/, action: allow}\n";

class OverlayValidationTest : public ::testing::TestWithParam<ErrorCase> {};

TEST_P(OverlayValidationTest, ReportsExactlyTheseErrors)
{
    const auto r = parse_overlay(GetParam().text, "o.yaml", test_context());
    std::vector<std::string> got;
    for (const auto& d : r.errors)
        got.push_back(d.str());
    EXPECT_EQ(got, GetParam().want);
    EXPECT_EQ(r.policy.has_value(), GetParam().want.empty());
}

const ErrorCase kOverlayCases[] = {
    {.name = "RulesOfEveryClassAreValid",
     .text = overlay("  exec:\n    rules:\n      - {path: /usr/bin/make, action: allow}\n"
                     "  files:\n    rules:\n"
                     "      - {path: \"${WORKSPACE}/build/\", access: [write], action: allow}\n"
                     "      - {path: /etc/shadow, access: [read], action: kill}\n"
                     "  network:\n    rules:\n"
                     "      - {host: pypi.org, ports: [443], protocol: tcp, action: allow}\n"
                     "      - {cidr: 10.0.0.0/8, action: freeze}\n"),
     .want = {}},
    {.name = "OneClassIsEnough", .text = overlay(kOverlayFiles), .want = {}},
    {.name = "NoRulesAtAll",
     .text = overlay("  files:\n    rules: []\n"),
     .want = {"o.yaml:6:3: the overlay has no rules; expected exec, files or network rules (an "
              "overlay decides only what its rules name)"}},
    {.name = "DefaultIsRefusedInEveryClass",
     .text = overlay("  exec:\n    default: deny\n  files:\n    default: allow\n"
                     "    rules:\n      - {path: /tmp/, action: allow}\n"
                     "  network:\n    default: deny\n"),
     .want = {"o.yaml:7:5: exec.default is not allowed in a TaskOverlay: an overlay has no "
              "default: what its rules do not name, the agent's policy decides; remove it",
              "o.yaml:9:5: files.default is not allowed in a TaskOverlay: an overlay has no "
              "default: what its rules do not name, the agent's policy decides; remove it",
              "o.yaml:13:5: network.default is not allowed in a TaskOverlay: an overlay has no "
              "default: what its rules do not name, the agent's policy decides; remove it"}},
    {.name = "ModeTraceTrustHardeningAreRefused",
     .text = overlay("  mode: audit\n  trace: all\n  trust:\n    initial: 5\n"
                     "  hardening:\n    allow: [bpf]\n" + kOverlayFiles),
     .want = {"o.yaml:6:3: spec.mode is not allowed in a TaskOverlay: a TaskOverlay has only "
              "exec, files and network rules (the agent's policy keeps its mode); remove it",
              "o.yaml:7:3: spec.trace is not allowed in a TaskOverlay: a TaskOverlay has only "
              "exec, files and network rules (the agent's policy keeps its trace); remove it",
              "o.yaml:8:3: spec.trust is not allowed in a TaskOverlay: a TaskOverlay has only "
              "exec, files and network rules (the agent's policy keeps its trust); remove it",
              "o.yaml:10:3: spec.hardening is not allowed in a TaskOverlay: a TaskOverlay has "
              "only exec, files and network rules (the agent's policy keeps its hardening); "
              "remove it"}},
    {.name = "NetworkSettingsAreRefused",
     .text = overlay("  network:\n    dns: {unknown: pass}\n    raw_sockets: allow\n"
                     "    unix_abstract: allow\n    inbound:\n      default: allow\n"
                     "    rules:\n      - {cidr: 10.0.0.0/8, action: allow}\n"),
     .want = {"o.yaml:7:5: network.dns is not allowed in a TaskOverlay: an overlay has only "
              "rules: the agent's policy decides what its DNS gateway does; remove it",
              "o.yaml:8:5: network.raw_sockets is not allowed in a TaskOverlay: an overlay has "
              "only rules: the agent's policy decides raw, ICMP echo and packet sockets; remove "
              "it",
              "o.yaml:9:5: network.unix_abstract is not allowed in a TaskOverlay: an overlay has "
              "only rules: the agent's policy decides abstract Unix sockets; remove it",
              "o.yaml:10:5: network.inbound is not allowed in a TaskOverlay: an overlay has only "
              "rules: the agent's policy decides where the agent may listen and bind; remove it"}},
    {.name = "TierIsRefusedOnRules",
     .text = overlay("  exec:\n    rules:\n      - {path: /bin/ls, action: allow, tier: high}\n"
                     "  network:\n    rules:\n"
                     "      - {cidr: 10.0.0.0/8, action: allow, tier: high}\n"),
     .want = {"o.yaml:8:40: exec.rules[0].tier is not allowed in a TaskOverlay: an overlay has "
              "no trust tiers (its rules apply at every tier); remove it",
              "o.yaml:11:43: network.rules[0].tier is not allowed in a TaskOverlay: an overlay "
              "has no trust tiers (its rules apply at every tier); remove it"}},
    {.name = "RulesAreValidatedAsInAPolicy",
     .text = overlay("  files:\n    rules:\n      - {path: tmp/, action: alow}\n"),
     .want = {"o.yaml:8:16: files path 'tmp/' is relative; expected an absolute path (starting "
              "with / or ${HOME}/${WORKSPACE})",
              "o.yaml:8:30: unknown action 'alow'; did you mean 'allow'? expected allow, deny, "
              "audit, kill or freeze"}},
    {.name = "UnknownSpecKey",
     .text = overlay("  file:\n    rules: []\n"),
     .want = {"o.yaml:6:3: unknown key 'file' in spec; did you mean 'files'? expected exec, files "
              "or network"}},
    {.name = "AgentPolicyIsNotAnOverlay",
     .text = minimal(),
     .want = {"o.yaml:2:7: expected kind 'TaskOverlay' (a task overlay); found 'AgentPolicy'"}},
    {.name = "MisspeltKind",
     .text = "apiVersion: cordon.dev/v1\nkind: TaskOverlays\nmetadata:\n  name: t\nspec:\n" +
             kOverlayFiles,
     .want = {"o.yaml:2:7: unsupported kind 'TaskOverlays'; did you mean 'TaskOverlay'? expected "
              "'TaskOverlay'"}},
    {.name = "MissingSpec",
     .text = "apiVersion: cordon.dev/v1\nkind: TaskOverlay\nmetadata:\n  name: t\n",
     .want = {"o.yaml:1:1: the overlay has no 'spec'; expected a mapping with exec, files or "
              "network rules"}},
};

INSTANTIATE_TEST_SUITE_P(Cases, OverlayValidationTest, ::testing::ValuesIn(kOverlayCases),
                         [](const auto& tp) { return std::string(tp.param.name); });

TEST(Overlay, HasRulesWithIdsAndNoDefaultsOrInbound)
{
    const auto r = parse_overlay(overlay("  files:\n    rules:\n"
                                         "      - {path: /srv/a/, action: allow}\n"
                                         "      - {path: /srv/b, access: [read], action: deny}\n"
                                         "  network:\n    rules:\n"
                                         "      - {cidr: 10.0.0.0/8, action: allow}\n"),
                                 "o.yaml", test_context());
    ASSERT_TRUE(r.policy) << r.errors.at(0).str();
    const Policy& p = *r.policy;
    EXPECT_TRUE(p.overlay);
    EXPECT_EQ(p.name, "fix-bug");
    EXPECT_TRUE(p.inbound.rules.empty());
    EXPECT_FALSE(p.inbound_implied);
    EXPECT_EQ(p.files.default_rule_id, 0u);
    EXPECT_EQ(p.network.default_rule_id, 0u);
    ASSERT_EQ(p.files.rules.size(), 2u);
    ASSERT_EQ(p.network.rules.size(), 1u);
    // Ids index the rule table as in a policy; the controller tags them CORDON_RULE_OVERLAY.
    EXPECT_EQ(p.rules.at(p.files.rules[0].id).where, "files.rules[0]");
    EXPECT_EQ(p.rules.at(p.files.rules[1].id).pos.line, 9);
    EXPECT_EQ(p.rules.at(p.network.rules[0].id).where, "network.rules[0]");
    EXPECT_EQ(p.rules.size(), 4u); // entry 0 is "none"
}

TEST(Overlay, EitherKindParsesAsWhatItIs)
{
    const auto a = parse_document(minimal(), "p.yaml", test_context());
    ASSERT_TRUE(a.policy);
    EXPECT_FALSE(a.policy->overlay);
    const auto o = parse_document(overlay(kOverlayFiles), "o.yaml", test_context());
    ASSERT_TRUE(o.policy) << o.errors.at(0).str();
    EXPECT_TRUE(o.policy->overlay);
    const auto bad = parse_document("apiVersion: cordon.dev/v1\nkind: Policy\nmetadata:\n"
                                    "  name: t\nspec:\n" + kOverlayFiles,
                                    "x.yaml", test_context());
    ASSERT_FALSE(bad.errors.empty());
    EXPECT_EQ(bad.errors[0].str(),
              "x.yaml:2:7: unsupported kind 'Policy'; expected 'AgentPolicy' or 'TaskOverlay'");
}

} // namespace
} // namespace cordon::policy::testing
