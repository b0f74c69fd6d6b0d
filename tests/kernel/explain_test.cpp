// SPDX-License-Identifier: Apache-2.0
// `explain` through the real cordond on the real kernel: the verdict and the deciding layer it
// reads from the live maps, for a rule, the class default, a grant, a connection, audit mode and
// a killed agent, each checked against what the agent's processes actually get.
#include <filesystem>
#include <fstream>
#include <string>
#include <utility>

#include <gtest/gtest.h>

#include "agents/cgroup.h"
#include "common/backend.h"
#include "common/error.h"
#include "daemon_util.h"
#include "kernel_test_util.h"

namespace cordon::testing {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// Line numbers matter: the replies name "test.yaml:LINE" (Daemon::attach names the file).
std::string explain_policy(const Files& f)
{
    return "apiVersion: cordon.dev/v1\n"                                          // 1
           "kind: AgentPolicy\n"                                                  // 2
           "metadata:\n  name: ex\n"                                              // 3-4
           "spec:\n"                                                              // 5
           "  exec: {default: allow}\n"                                           // 6
           "  files:\n"                                                           // 7
           "    default: allow\n"                                                 // 8
           "    rules:\n"                                                         // 9
           "      - {path: " + f.secret.string() + ", access: read, action: deny}\n"   // 10
           "      - {path: " + f.dir.string() + "/granted, access: read, action: deny}\n" // 11
           "  network:\n"                                                         // 12
           "    default: allow\n"                                                 // 13
           "    rules:\n"                                                         // 14
           "      - {cidr: 127.0.0.2/32, ports: [9], protocol: udp, action: deny}\n"; // 15
}

json explain(const Daemon& d, const std::string& kind, const std::string& target)
{
    return call_ok(d, {{"v", 1}, {"op", "explain"}, {"name", "ex"}, {"kind", kind},
                       {"target", target}});
}

// An open from a new process of the agent: what the kernel really decides.
int open_errno_in(const agents::Cgroup& cg, const fs::path& p)
{
    const auto e = wait_exit(spawn_in(cg.path().string(), [p] { return try_open(p); }));
    return refused(e) ? EPERM : 0;
}

struct Case {
    const char* name;
    const char* before; ///< an op on the agent first ("" none): "mode_audit", "kill"
    const char* kind;
    std::string target;
    const char* verdict;
    const char* layer;
    std::string rule; ///< decided_by.rule ("" none)
};

class ExplainTest : public ::testing::TestWithParam<cordon_backend> {
protected:
    void SetUp() override
    {
        if (skip_unless_backend(GetParam()))
            GTEST_SKIP() << "the kernel cannot run this backend; the VM tier runs it";
    }
};

// The cases run in order on one agent: audit mode and the kill change it for those after.
TEST_P(ExplainTest, SaysWhatDecidesEachAccessAsTheKernelWould)
{
    Files f;
    const fs::path granted = f.dir / "granted";
    std::ofstream(granted) << "g";
    Daemon d(GetParam());
    auto cg = make_test_cgroup();
    ASSERT_TRUE(d.attach(cg.path(), explain_policy(f), "ex", f.dir.string()).value("ok", false));
    const auto g = call_ok(d, {{"v", 1}, {"op", "grant"}, {"name", "ex"}, {"kind", "read"},
                               {"target", granted.string()}, {"ttl", "5m"}});
    const std::string grant_rule = "grant " + std::to_string(g["grant"]["id"].get<int>()) +
                                   " (read " + granted.string() + ")";
    // What the processes get agrees with what explain is about to say.
    EXPECT_EQ(open_errno_in(cg, f.secret), EPERM);
    EXPECT_EQ(open_errno_in(cg, f.open), 0);
    EXPECT_EQ(open_errno_in(cg, granted), 0);

    const Case cases[] = {
        {.name = "a deny rule, by its line", .before = "", .kind = "read",
         .target = f.secret.string(), .verdict = "deny", .layer = "rule", .rule = "test.yaml:10"},
        {.name = "no rule: the files default", .before = "", .kind = "read",
         .target = f.open.string(), .verdict = "allow", .layer = "default", .rule = "test.yaml:8"},
        {.name = "a live grant over a deny rule, reported", .before = "", .kind = "read",
         .target = granted.string(), .verdict = "audit", .layer = "grant", .rule = grant_rule},
        {.name = "a write the read rule does not name", .before = "", .kind = "write",
         .target = f.secret.string(), .verdict = "allow", .layer = "default",
         .rule = "test.yaml:8"},
        {.name = "a network rule", .before = "", .kind = "connect", .target = "127.0.0.2:9/udp",
         .verdict = "deny", .layer = "rule", .rule = "test.yaml:15"},
        {.name = "the network default (tcp is not the rule's)", .before = "", .kind = "connect",
         .target = "127.0.0.2:9", .verdict = "allow", .layer = "default",
         .rule = "test.yaml:13"},
        {.name = "audit mode lets the denial through", .before = "mode_audit", .kind = "read",
         .target = f.secret.string(), .verdict = "audit", .layer = "mode",
         .rule = "test.yaml:10"},
        {.name = "a killed agent is refused everything", .before = "kill", .kind = "read",
         .target = f.open.string(), .verdict = "deny", .layer = "kill flag", .rule = ""},
        {.name = "killed: connections too", .before = "", .kind = "connect",
         .target = "127.0.0.1:80/tcp", .verdict = "deny", .layer = "kill flag", .rule = ""},
    };
    for (const auto& c : cases) {
        if (std::string(c.before) == "mode_audit")
            call_ok(d, {{"v", 1}, {"op", "mode"}, {"name", "ex"}, {"mode", "audit"}});
        if (std::string(c.before) == "kill")
            call_ok(d, {{"v", 1}, {"op", "kill"}, {"name", "ex"}});
        const auto r = explain(d, c.kind, c.target);
        EXPECT_EQ(r["verdict"], c.verdict) << c.name << ": " << r.dump();
        EXPECT_EQ(r["decided_by"]["layer"], c.layer) << c.name << ": " << r.dump();
        EXPECT_EQ(r["decided_by"]["rule"], c.rule) << c.name << ": " << r.dump();
        EXPECT_FALSE(r["why"].get<std::string>().empty()) << c.name;
    }
}

// The path looked up is the one the kernel resolves: symbolic links followed.
TEST_P(ExplainTest, LooksUpThePathTheKernelResolves)
{
    Files f;
    const fs::path link = f.dir / "link";
    fs::create_symlink(f.secret, link);
    Daemon d(GetParam());
    auto cg = make_test_cgroup();
    ASSERT_TRUE(d.attach(cg.path(), explain_policy(f), "ex", f.dir.string()).value("ok", false));
    const auto r = explain(d, "read", link.string());
    EXPECT_EQ(r["looked_up"], f.secret.string());
    EXPECT_EQ(r["decided_by"]["rule"], "test.yaml:10");
    EXPECT_EQ(r["verdict"], "deny");
    // What it cannot answer is an error, not a guess.
    for (const auto& [kind, target] : {std::pair{"read", std::string("relative/x")},
                                       std::pair{"connect", std::string("localhost:80")},
                                       std::pair{"connect", std::string("127.0.0.1:80-90")}})
        EXPECT_FALSE(d.call(json{{"v", 1}, {"op", "explain"}, {"name", "ex"}, {"kind", kind},
                                 {"target", target}}.dump())
                         .value("ok", true))
            << kind << " " << target;
}

INSTANTIATE_TEST_SUITE_P(Backends, ExplainTest,
                         ::testing::Values(CORDON_BACKEND_LSM, CORDON_BACKEND_FMOD_RET,
                                           CORDON_BACKEND_COMPAT),
                         [](const auto& tp) { return std::string(bpf::backend_name(tp.param)); });

} // namespace
} // namespace cordon::testing
