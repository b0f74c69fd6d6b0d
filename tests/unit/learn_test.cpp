// SPDX-License-Identifier: Apache-2.0
// cordon policy suggest and test (policy/learn.h): record parsing, folding, variables,
// determinism, the secret rule, the diff against a base, and the replay.
#include <algorithm>
#include <random>

#include <gtest/gtest.h>

#include "policy/learn.h"
#include "policy/pipeline.h"
#include "policy_test_util.h"

namespace cordon::policy::learn {
namespace {

using policy::testing::test_context;

std::string exec_rec(const std::string& path, const std::string& verdict = "allow")
{
    return R"({"process":{"file":{"path":")" + path + R"("}},"unmapped":{"hook":"exec","verdict":")" +
           verdict + R"(","rule":"p.yaml:7","agent":"a","time_ns":5}})";
}
std::string open_rec(const std::string& path, const std::string& access, const std::string& verdict = "allow")
{
    return R"({"file":{"path":")" + path + R"("},"unmapped":{"hook":"open","verdict":")" + verdict +
           R"(","rule":"p.yaml:9","agent":"a","access":")" + access + R"("}})";
}
std::string connect_rec(const std::string& ip, int port, const std::string& verdict = "allow")
{
    return R"({"dst_endpoint":{"ip":")" + ip + R"(","port":)" + std::to_string(port) +
           R"(},"connection_info":{"protocol_name":"tcp"},"unmapped":{"hook":"connect4","verdict":")" +
           verdict + R"(","rule":"p.yaml:11","agent":"a"}})";
}

Access parsed(const std::string& json)
{
    std::string why;
    auto a = parse_record(json, why);
    EXPECT_TRUE(a) << why;
    return a.value_or(Access{});
}

std::string suggest(const std::vector<std::string>& records, std::size_t fold = 4,
                    const Candidate* base = nullptr)
{
    SuggestOptions o;
    o.fold = fold;
    o.ctx = test_context(); // home /home/ada, workspace /work/repo
    o.name = "t";
    o.base = base;
    o.base_file = "base.yaml";
    Suggester s(o);
    for (const auto& r : records)
        s.add(parsed(r), "");
    return base ? s.diff_text() : s.policy_yaml();
}

Candidate candidate(const std::string& text)
{
    auto checked = trial_compile(check_document(text, "base.yaml", test_context(), DocumentKind::AgentPolicy));
    EXPECT_TRUE(checked.policy) << (checked.errors.empty() ? "" : checked.errors.front().str());
    auto c = compile(*checked.policy, kTrialPolicyId);
    return {*checked.policy, *c.compiled, text};
}

TEST(LearnParse, ReadsExecFileAndNetworkRecords)
{
    auto e = parsed(exec_rec("/usr/bin/git"));
    EXPECT_EQ(e.kind, Kind::Exec);
    EXPECT_EQ(e.path, "/usr/bin/git");
    EXPECT_EQ(e.time_ns, 5);
    auto f = parsed(open_rec("/etc/passwd", "read,write"));
    EXPECT_EQ(f.kind, Kind::File);
    EXPECT_EQ(f.access, kRead | kWrite);
    auto n = parsed(connect_rec("10.1.2.3", 443));
    EXPECT_EQ(n.kind, Kind::Net);
    EXPECT_EQ(n.port, 443);
    EXPECT_EQ(describe(n), "connect4 10.1.2.3:443/tcp");
}

TEST(LearnParse, NonAccessRecordsAreSkippedAndMalformedOnesNamed)
{
    std::string why;
    EXPECT_FALSE(parse_record(R"({"unmapped":{"hook":"process","verdict":"allow"}})", why));
    EXPECT_TRUE(why.empty());
    EXPECT_FALSE(parse_record(R"({"kind":"action","op":"kill"})", why));
    EXPECT_TRUE(why.empty());
    for (const char* bad : {"", "[]", "{", R"({"unmapped":{"hook":"exec","verdict":"maybe"}})",
                            R"({"unmapped":{"hook":"open","verdict":"allow"}})",
                            R"({"file":{"path":"rel/x"},"unmapped":{"hook":"open","verdict":"allow"}})",
                            R"({"dst_endpoint":{"ip":"10.0.0.0/8","port":1},"unmapped":{"hook":"connect4","verdict":"allow"}})",
                            R"({"dst_endpoint":{"ip":"10.0.0.1","port":70000},"unmapped":{"hook":"connect4","verdict":"allow"}})"}) {
        EXPECT_FALSE(parse_record(bad, why)) << bad;
        EXPECT_FALSE(why.empty()) << bad;
    }
}

TEST(LearnSuggest, FoldsADirectoryAtTheThresholdAndNotBelowIt)
{
    std::vector<std::string> three, four;
    for (int i = 0; i < 4; ++i) {
        const auto r = open_rec("/opt/tool/lib" + std::to_string(i) + ".so", "read");
        four.push_back(r);
        if (i < 3)
            three.push_back(r);
    }
    const auto folded = suggest(four);
    EXPECT_NE(folded.find("{path: /opt/tool/, access: [read], action: allow}  # 4 reads of 4 paths"),
              std::string::npos)
        << folded;
    const auto exact = suggest(three);
    EXPECT_EQ(exact.find("/opt/tool/,"), std::string::npos) << exact;
    EXPECT_NE(exact.find("{path: /opt/tool/lib0.so, access: [read], action: allow}  # 1 read"),
              std::string::npos)
        << exact;
    EXPECT_NE(suggest(three, 3).find("/opt/tool/,"), std::string::npos);
}

TEST(LearnSuggest, WritesVariablesBackAndFoldsTheWorkspaceAndTmp)
{
    const auto y = suggest({open_rec("/work/repo/src/a.c", "write"), open_rec("/home/ada/.npm/x", "write"),
                            open_rec("/tmp/tmp.123", "read"), exec_rec("/work/repo/build/t")});
    EXPECT_NE(y.find(R"({path: "${WORKSPACE}/", access: [write], action: allow})"), std::string::npos) << y;
    EXPECT_NE(y.find(R"({path: "${WORKSPACE}/", action: allow})"), std::string::npos) << y;
    EXPECT_NE(y.find(R"({path: "${HOME}/.npm/x", access: [write], action: allow})"), std::string::npos) << y;
    EXPECT_NE(y.find("{path: /tmp/, access: [read], action: allow}"), std::string::npos) << y;
    // The suggestion is a valid policy.
    auto checked = trial_compile(check_document(y, "s.yaml", test_context(), DocumentKind::AgentPolicy));
    EXPECT_TRUE(checked.policy) << (checked.errors.empty() ? "" : checked.errors.front().str());
}

TEST(LearnSuggest, NeverFoldsHomeOrTheRootAndKeepsSecretsOut)
{
    std::vector<std::string> recs;
    for (const char* f : {".bashrc", ".profile", ".gitconfig", ".viminfo", ".npmrc"})
        recs.push_back(open_rec(std::string("/home/ada/") + f, "read"));
    for (const char* f : {"/a", "/b", "/c", "/d"})
        recs.push_back(open_rec(f, "read"));
    recs.push_back(open_rec("/home/ada/.ssh/id_ed25519", "read"));
    for (const char* f : {"passwd", "group", "hosts", "resolv.conf"})
        recs.push_back(open_rec(std::string("/etc/") + f, "read"));
    const auto whole = suggest(recs, 1);
    const auto y = whole.substr(0, whole.find("# left for review")); // the rules
    EXPECT_NE(whole.find("# left for review, no rule: open read /home/ada/.ssh/id_ed25519"), std::string::npos)
        << whole;
    EXPECT_EQ(y.find(R"("${HOME}/",)"), std::string::npos) << y;
    EXPECT_EQ(y.find("{path: /, "), std::string::npos) << y;
    EXPECT_EQ(y.find("/home/", 0), std::string::npos) << y;
    EXPECT_EQ(y.find("id_ed25519"), std::string::npos) << y; // never an allow rule
    EXPECT_NE(y.find("{path: /etc/, access: [read], action: allow}"), std::string::npos) << y;
    EXPECT_NE(y.find("{path: /etc/shadow, access: [read, write], action: deny}"), std::string::npos) << y;
    EXPECT_NE(y.find("{path: /etc/ssh/, access: [read, write], action: deny}"), std::string::npos) << y;
    // The secret shows in the change for review.
    SuggestOptions o;
    o.ctx = test_context();
    Suggester s(o);
    s.add(parsed(open_rec("/home/ada/.ssh/id_ed25519", "read")), "");
    EXPECT_NE(s.diff_text().find(R"(! review   open read /home/ada/.ssh/id_ed25519: a known secret (${HOME}/.ssh/); not allowed  (1 access))"),
              std::string::npos)
        << s.diff_text();
}

// Review findings: the home directory read as a whole, secrets in other homes, a name with
// "${" in it.
TEST(LearnSuggest, TheHomeItselfOtherHomesAndVariableLikeNamesAllowNothingMore)
{
    std::vector<std::string> recs{open_rec("/home/ada", "read"), open_rec("/root/.ssh/id_rsa", "read"),
                                  open_rec("/home/bob/.aws/credentials", "read"),
                                  open_rec("/var/tmp/a${HOME}b", "write")};
    for (const char* f : {"a", "b", "c", "d"})
        recs.push_back(open_rec(std::string("/home/bob/") + f, "read"));
    const auto whole = suggest(recs, 1);
    const auto y = whole.substr(0, whole.find("# left for review"));
    EXPECT_NE(y.find(R"({path: "${HOME}", access: [read], action: allow})"), std::string::npos) << y;
    EXPECT_EQ(y.find(R"("${HOME}/")"), std::string::npos) << y;
    EXPECT_EQ(y.find("/root"), std::string::npos) << y;
    EXPECT_EQ(y.find("/home/bob/,"), std::string::npos) << y; // another home is never folded
    EXPECT_EQ(y.find(".aws"), std::string::npos) << y;
    EXPECT_EQ(y.find("/var/tmp"), std::string::npos) << y;
    EXPECT_NE(whole.find("open read /root/.ssh/id_rsa: a known secret"), std::string::npos) << whole;
    EXPECT_NE(whole.find("open read /home/bob/.aws/credentials: a known secret"), std::string::npos) << whole;
}

TEST(LearnSuggest, OutputDoesNotDependOnRecordOrder)
{
    std::vector<std::string> recs;
    for (int i = 0; i < 30; ++i)
        recs.push_back(open_rec("/srv/d" + std::to_string(i % 7) + "/f" + std::to_string(i), i % 2 ? "read" : "write"));
    for (int i = 0; i < 5; ++i)
        recs.push_back(connect_rec("10.0.0." + std::to_string(i), 80 + i));
    const auto first = suggest(recs);
    std::mt19937 rng(42);
    for (int round = 0; round < 5; ++round) {
        std::shuffle(recs.begin(), recs.end(), rng);
        EXPECT_EQ(suggest(recs), first);
    }
}

TEST(LearnSuggest, FoldsManyPortsOfOneAddressIntoEveryPort)
{
    std::vector<std::string> recs;
    for (int p : {8000, 8001, 8002, 8003})
        recs.push_back(connect_rec("127.0.0.1", p));
    recs.push_back(connect_rec("10.9.9.9", 443));
    const auto y = suggest(recs);
    EXPECT_NE(y.find("{cidr: 127.0.0.1/32, protocol: tcp, action: allow}  # 4 accesses to 4 ports"), std::string::npos) << y;
    EXPECT_NE(y.find("{cidr: 10.9.9.9/32, ports: [443], protocol: tcp, action: allow}"), std::string::npos) << y;
}

const char* kBase = R"(apiVersion: cordon.dev/v1
kind: AgentPolicy
metadata:
  name: base
spec:
  exec:
    default: deny
    rules:
      - {path: /usr/bin/, action: allow}
      - {path: /opt/unused/, action: allow}
  files:
    default: allow
    rules:
      - {path: /, access: [write], action: deny}
      - {path: "${HOME}/.ssh/", access: [read, write], action: deny}
  network:
    default: deny
    rules:
      - {cidr: 127.0.0.0/8, action: allow}
)";

TEST(LearnSuggest, DiffAgainstABaseListsAdditionsUnusedRulesAndReviews)
{
    const Candidate base = candidate(kBase);
    const auto d = suggest({exec_rec("/usr/bin/git"), open_rec("/home/ada/.npm/log", "write"),
                            open_rec("/home/ada/.ssh/config", "read"), open_rec("/etc/passwd", "read"),
                            connect_rec("127.0.0.1", 5432), connect_rec("10.0.0.7", 443)},
                           4, &base);
    EXPECT_NE(d.find("# against base.yaml: it allows 3 of them"), std::string::npos) << d;
    EXPECT_NE(d.find(R"(+ files    {path: "${HOME}/.npm/log", access: [write], action: allow}  # 1 write)"), std::string::npos) << d;
    EXPECT_NE(d.find("+ network  {cidr: 10.0.0.7/32, ports: [443], protocol: tcp, action: allow}"), std::string::npos) << d;
    EXPECT_NE(d.find("- exec     line 10: {path: /opt/unused/, action: allow}  # never used"), std::string::npos) << d;
    EXPECT_EQ(d.find("line 9:"), std::string::npos) << d; // /usr/bin/ was used
    EXPECT_NE(d.find("! review   open read /home/ada/.ssh/config: deny by base.yaml line 15; not allowed  (1 access)"),
              std::string::npos)
        << d;
    EXPECT_EQ(d.find("+ files    {path: \"${HOME}/.ssh"), std::string::npos) << d;
}

TEST(LearnSuggest, WrittenIntoTheBaseTheResultIsAValidPolicy)
{
    const Candidate base = candidate(kBase);
    SuggestOptions o;
    o.ctx = test_context();
    o.base = &base;
    Suggester s(o);
    s.add(parsed(open_rec("/home/ada/.npm/log", "write")), "");
    s.add(parsed(exec_rec("/home/ada/.nvm/versions/node/v20/bin/node")), "");
    const auto merged = s.policy_yaml();
    EXPECT_NE(merged.find(R"(      - {path: "${HOME}/.npm/log", access: [write], action: allow}  # added by cordon policy suggest: 1 write)"),
              std::string::npos)
        << merged;
    const Candidate c = candidate(merged);
    Tester t(c);
    t.add(parsed(open_rec("/home/ada/.npm/log", "write")), "");
    t.add(parsed(exec_rec("/home/ada/.nvm/versions/node/v20/bin/node")), "");
    EXPECT_EQ(t.result().newly_denied(), 0u);
}

TEST(LearnTest, NamesEveryAccessWhoseVerdictChangesNewlyDeniedFirst)
{
    const Candidate c = candidate(kBase);
    Tester t(c);
    for (int i = 0; i < 3; ++i)
        t.add(parsed(exec_rec("/opt/x/run")), "");          // allowed then, denied now
    t.add(parsed(exec_rec("/usr/bin/ls", "deny")), "");      // denied then, allowed now
    t.add(parsed(open_rec("/etc/passwd", "read")), "");      // unchanged
    t.add(parsed(open_rec("/etc/motd", "write", "audit")), ""); // went ahead in audit mode
    t.add(parsed(R"({"unmapped":{"hook":"bind","verdict":"allow"}})"), "");
    const Replay r = t.result();
    EXPECT_EQ(r.replayed, 6u);
    EXPECT_EQ(r.unchanged, 1u);
    EXPECT_EQ(r.not_replayable, 1u);
    ASSERT_EQ(r.changes.size(), 3u);
    EXPECT_TRUE(r.changes[0].newly_denied);
    EXPECT_EQ(r.changes[0].what, "exec /opt/x/run");
    EXPECT_EQ(r.changes[0].count, 3u);
    EXPECT_EQ(r.changes[0].after, "deny (default)");
    EXPECT_TRUE(r.changes[1].newly_denied);
    EXPECT_EQ(r.changes[1].what, "open write /etc/motd");
    EXPECT_EQ(r.changes[1].after, "deny (line 14)");
    EXPECT_FALSE(r.changes[2].newly_denied);
    EXPECT_EQ(r.newly_denied(), 4u);
}

TEST(LearnTest, FlagsAKnownSecretThatTheCandidateNewlyAllows)
{
    std::string text = kBase;
    text.replace(text.find("\"${HOME}/.ssh/\", access: [read, write], action: deny"),
                 std::string("\"${HOME}/.ssh/\", access: [read, write], action: deny").size(),
                 "\"${HOME}/.ssh/\", access: [read, write], action: allow");
    const Candidate c = candidate(text);
    Tester t(c, "/home/ada");
    t.add(parsed(open_rec("/home/ada/.ssh/id_rsa", "read", "deny")), "");
    t.add(parsed(exec_rec("/usr/bin/ls", "deny")), "");
    const Replay r = t.result();
    ASSERT_EQ(r.changes.size(), 2u);
    EXPECT_EQ(r.secrets_newly_allowed(), 1u);
    EXPECT_EQ(r.newly_denied(), 0u);
    const auto& secret = r.changes[0].what == "open read /home/ada/.ssh/id_rsa" ? r.changes[0] : r.changes[1];
    EXPECT_TRUE(secret.secret);
    EXPECT_EQ(known_secret(Kind::File, "/root/.aws/credentials", "/home/ada"), "/root/.aws/");
    EXPECT_EQ(known_secret(Kind::File, "/home/ada/.awsx", "/home/ada"), "");
    EXPECT_EQ(known_secret(Kind::Exec, "/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2", ""),
              "/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2");
}

TEST(LearnTest, AHostRuleStillMatchesWhenTheNameDoesNotResolveHere)
{
    std::string text = kBase;
    text += "      - {host: registry.example.org, ports: [443], protocol: tcp, action: allow}\n";
    const Candidate c = candidate(text);
    Tester t(c);
    t.add(parsed(connect_rec("10.0.0.7", 443)), "registry.example.org");
    t.add(parsed(connect_rec("10.0.0.7", 443)), "");
    const Replay r = t.result();
    EXPECT_EQ(r.unchanged, 1u);
    ASSERT_EQ(r.changes.size(), 1u);
    EXPECT_EQ(r.changes[0].count, 1u);
}

} // namespace
} // namespace cordon::policy::learn
