// SPDX-License-Identifier: Apache-2.0
// Trust that moves in real time, tasks and grants, through the real cordond on the real kernel:
// recovery raises the tier again, the burst penalty, a tier's on_enter freeze, grants that
// expire by the kernel's clock (with or without the daemon), tasks whose overlay and grants end
// with them, and two process-bound tasks in one agent with separate allowances.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <thread>

#include <gtest/gtest.h>

#include "agents/cgroup.h"
#include "common/error.h"
#include "daemon_util.h"
#include "common/backend.h"
#include "kernel_test_util.h"

namespace cordon::testing {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using namespace std::chrono_literals;

// An open from a new process of the agent: 0 allowed; refused as the backend refuses.
Exit open_in(const agents::Cgroup& cg, const fs::path& p)
{
    return wait_exit(spawn_in(cg.path().string(), [p] { return try_open(p); }));
}

std::string trusting_policy(const std::string& name, const std::string& trust,
                            const std::string& files_rules)
{
    return "apiVersion: cordon.dev/v1\nkind: AgentPolicy\nmetadata:\n  name: " + name +
           "\nspec:\n  trust:\n" + trust + "  exec: {default: allow}\n  files:\n"
           "    default: allow\n    rules:\n" + files_rules + "  network: {default: allow}\n";
}

// The operator actions of one op about one agent, as logged lines.
std::vector<std::string> operator_actions(const Daemon& d, const std::string& op,
                                          const std::string& agent)
{
    std::vector<std::string> out;
    std::ifstream in(d.registry().parent_path() / "actions.jsonl");
    for (std::string line; std::getline(in, line);) {
        const auto a = json::parse(line, nullptr, false);
        if (!a.is_discarded() && a.value("op", "") == op && a.value("name", "") == agent)
            out.push_back(line);
    }
    return out;
}

// One cordond per backend for the whole suite (each case attaches agents of its own names and
// cgroups): a start loads every program, which takes seconds under the VM tier's emulated CPU.
class TrustTaskTest : public ::testing::TestWithParam<cordon_backend> {
protected:
    void SetUp() override
    {
        if (skip_unless_backend(GetParam()))
            GTEST_SKIP() << "the kernel cannot run this backend; the VM tier runs it";
    }
    static void TearDownTestSuite() { daemons_.clear(); }
    static Daemon& daemon(cordon_backend b)
    {
        auto& d = daemons_[b];
        if (!d)
            d = std::make_unique<Daemon>(b);
        return *d;
    }

private:
    static inline std::map<cordon_backend, std::unique_ptr<Daemon>> daemons_;
};

// A denial costs the agent its tier; the kernel credits recovery at its decisions, with no
// daemon round trip, and the tier-gated rule allows again once the score is back.
TEST_P(TrustTaskTest, RecoveryRaisesTheTierAgainAndATierGatedRuleAllowsAgain)
{
    Files f;
    Daemon& d = daemon(GetParam());
    auto cg = make_test_cgroup();
    const std::string yaml = trusting_policy(
        "rec",
        "    initial: 450\n    tiers: [{name: low, min: 0}, {name: high, min: 400}]\n"
        "    penalties: {deny: 100}\n    recovery: 1000\n",
        "      - {path: " + f.secret.string() + ", access: read, action: deny}\n"
        "      - {path: " + f.open.string() + ", access: read, action: allow, tier: high}\n");
    ASSERT_TRUE(d.attach(cg.path(), yaml, "rec", f.dir.string()).value("ok", false));
    Subscription events(d, "rec");
    EXPECT_EQ(open_in(cg, f.open), exited(0)) << "high tier: the gated rule allows";
    EXPECT_TRUE(refused(open_in(cg, f.secret)));
    const auto low = call_ok(d, request("trust", "rec"));
    EXPECT_EQ(low["tier"], "low") << low.dump();
    EXPECT_LT(low["score"].get<int>(), 400);
    // 1000 points a minute: 50 points back in about 3 s. Generous bound; no timing asserted.
    EXPECT_TRUE(eventually([&] { return call_ok(d, request("trust", "rec"))["tier"] == "high"; }))
        << "recovery brings the tier back";
    EXPECT_EQ(open_in(cg, f.open), exited(0)) << "the tier-gated rule allows again";
    bool down = false, up = false;
    for (const auto& e : events.barrier()) {
        if (cordon_fields(e)["hook"] != "trust")
            continue;
        if (cordon_fields(e)["old_tier"] == "high" && cordon_fields(e)["new_tier"] == "low" && cordon_fields(e)["cause"] == "deny")
            down = true;
        if (cordon_fields(e)["old_tier"] == "low" && cordon_fields(e)["new_tier"] == "high" && cordon_fields(e)["cause"] == "recovery")
            up = true;
    }
    EXPECT_TRUE(down) << "the tier change to low is an event naming its cause";
    EXPECT_TRUE(up) << "so is the recovery";
}

// The burst signal: N denials within the window cost the burst penalty, once.
TEST_P(TrustTaskTest, ABurstOfDenialsCostsTheBurstPenalty)
{
    Files f;
    Daemon& d = daemon(GetParam());
    auto cg = make_test_cgroup();
    const std::string yaml = trusting_policy(
        "burst",
        "    initial: 1000\n    tiers: [{name: low, min: 0}, {name: high, min: 800}]\n"
        "    penalties: {deny: 1, burst: {denials: 5, within: 60s, penalty: 300}}\n",
        "      - {path: " + f.secret.string() + ", access: read, action: deny}\n");
    ASSERT_TRUE(d.attach(cg.path(), yaml, "burst", f.dir.string()).value("ok", false));
    for (int i = 0; i < 4; ++i)
        EXPECT_TRUE(refused(open_in(cg, f.secret)));
    EXPECT_EQ(call_ok(d, request("trust", "burst"))["score"], 996) << "four denials: no burst";
    EXPECT_TRUE(refused(open_in(cg, f.secret)));
    const auto t = call_ok(d, request("trust", "burst"));
    EXPECT_EQ(t["score"], 1000 - 5 - 300) << t.dump();
    EXPECT_EQ(t["tier"], "low");
    EXPECT_TRUE(refused(open_in(cg, f.secret)));
    EXPECT_EQ(call_ok(d, request("trust", "burst"))["score"], 1000 - 6 - 300)
        << "the burst penalty is taken once per window";
}

// Entering a tier whose on_enter says freeze freezes the agent, from the kernel's mark; the
// operator's trust --set is recorded.
TEST_P(TrustTaskTest, EnteringAFreezingTierFreezesTheAgent)
{
    Files f;
    Daemon& d = daemon(GetParam());
    auto cg = make_test_cgroup();
    const std::string yaml = trusting_policy(
        "quar",
        "    initial: 600\n    tiers: [{name: quarantine, min: 0, on_enter: freeze}, "
        "{name: normal, min: 500}]\n    penalties: {deny: 200}\n",
        "      - {path: " + f.secret.string() + ", access: read, action: deny}\n");
    ASSERT_TRUE(d.attach(cg.path(), yaml, "quar", f.dir.string()).value("ok", false));
    Subscription events(d, "quar");
    auto* ticks = shared_memory<std::atomic<long>>();
    spawn_in(cg.path().string(), [&] {
        for (;;) {
            ++*ticks;
            ::usleep(1000);
        }
        return 0;
    });
    int report[2];
    ASSERT_EQ(::pipe2(report, O_CLOEXEC), 0);
    const pid_t prober = spawn_in(cg.path().string(), [&] {
        const int r = try_open(f.secret);
        (void)!::write(report[1], &r, sizeof(r));
        return r;
    });
    ::close(report[1]);
    int result = -1;
    // The prober may be frozen before it writes (see LiveControlTest's freeze rule): its exit
    // status after the thaw says what open returned.
    const bool reported = read_within(report[0], &result, sizeof(result), 10000);
    ::close(report[0]);
    if (runs_lsm_programs(GetParam()) && reported) {
        EXPECT_EQ(result, EPERM);
    }
    EXPECT_TRUE(agents_until(d, [](const json& l) {
        for (const auto& a : l)
            if (a["name"] == "quar")
                return a["frozen"] == true && a["cgroup_frozen"] == true;
        return false;
    })) << "the quarantine tier froze the agent";
    const long at_freeze = ticks->load();
    std::this_thread::sleep_for(200ms);
    EXPECT_EQ(ticks->load(), at_freeze);
    bool seen = false;
    for (const auto& e : events.barrier())
        if (cordon_fields(e)["hook"] == "trust" && cordon_fields(e)["new_tier"] == "quarantine") {
            seen = true;
            EXPECT_EQ(cordon_fields(e)["verdict"], "freeze");
            EXPECT_EQ(cordon_fields(e)["score"], 400);
        }
    EXPECT_TRUE(seen);
    // The operator raises the score and thaws: the agent runs again.
    const auto set = call_ok(d, request("trust_set", "quar", {{"score", 900}, {"reason", "reviewed"}}));
    EXPECT_EQ(set["score"], 900);
    EXPECT_EQ(set["tier"], "normal");
    ASSERT_TRUE(d.call(request("thaw", "quar").dump()).value("ok", false));
    EXPECT_TRUE(eventually([&] { return ticks->load() > at_freeze; }, 10s));
    EXPECT_EQ(wait_exit(prober), runs_lsm_programs(GetParam()) ? exited(EPERM)
                                                                 : killed_by(SIGKILL));
    EXPECT_EQ(open_in(cg, f.open), exited(0));
    const auto recorded = operator_actions(d, "trust_set", "quar");
    ASSERT_EQ(recorded.size(), 1u);
    EXPECT_NE(recorded[0].find("reviewed"), std::string::npos);
}

// A grant allows at once and refuses after its expiry, by the kernel's clock; every access it
// allows is reported with its id.
TEST_P(TrustTaskTest, AGrantAllowsUntilItExpires)
{
    Files f;
    Daemon& d = daemon(GetParam());
    auto cg = make_test_cgroup();
    ASSERT_TRUE(d.attach(cg.path(), deny_policy(f.secret), "gr", f.dir.string()).value("ok", false));
    Subscription events(d, "gr");
    EXPECT_TRUE(refused(open_in(cg, f.secret)));
    const auto g = call_ok(d, request("grant", "gr", {{"kind", "read"}, {"target", f.secret.string()},
                                                      {"ttl", "1s"}, {"reason", "one look"}}));
    const auto id = g["grant"]["id"].get<std::uint32_t>();
    EXPECT_EQ(open_in(cg, f.secret), exited(0)) << "allowed at once";
    bool named = false;
    for (const auto& e : events.barrier())
        if (cordon_fields(e)["verdict"] == "audit" && path_of(e) == f.secret.string())
            named = cordon_fields(e)["rule"].get<std::string>().starts_with("grant " + std::to_string(id));
    EXPECT_TRUE(named) << "the access the grant allowed is reported with the grant";
    EXPECT_EQ(call_ok(d, request("grants", "gr"))["grants"].size(), 1u);
    std::this_thread::sleep_for(2s);
    EXPECT_TRUE(refused(open_in(cg, f.secret))) << "refused after its expiry";
    EXPECT_TRUE(eventually([&] { return call_ok(d, request("grants", "gr"))["grants"].empty(); }))
        << "cordond removes the expired grant";
    fs::create_symlink(f.secret, f.dir / "alias");
    // Revoke: from the next decision on it allows nothing.
    const auto g2 = call_ok(d, request("grant", "gr", {{"kind", "read"}, {"target", f.secret.string()},
                                                       {"ttl", "5m"}}));
    EXPECT_EQ(open_in(cg, f.secret), exited(0));
    call_ok(d, request("revoke", "gr", {{"grant", g2["grant"]["id"]}}));
    EXPECT_TRUE(refused(open_in(cg, f.secret))) << "refused after the revoke";
    // Bad grants change nothing and say why.
    for (const json& bad : {json{{"kind", "read"}, {"target", "relative/path"}, {"ttl", "5m"}},
                            json{{"kind", "read"}, {"target", f.secret.string()}, {"ttl", "0s"}},
                            json{{"kind", "connect"}, {"target", "10.0.0.0/8:99999"}, {"ttl", "5m"}},
                            json{{"kind", "read"}, {"target", f.secret.string()}, {"ttl", "5m"},
                                 {"task", "nosuch"}},
                            // A symlink (the agent could have made it) is refused, not followed.
                            json{{"kind", "read"}, {"target", (f.dir / "alias").string()},
                                 {"ttl", "5m"}}}) {
        const auto r = d.call(request("grant", "gr", bad).dump());
        EXPECT_FALSE(r.value("ok", true)) << bad.dump();
        EXPECT_FALSE(r.value("error", "").empty());
    }
    EXPECT_TRUE(call_ok(d, request("grants", "gr"))["grants"].empty());
    // Every grant request is an operator action naming what it asked for, refused ones too.
    const auto recorded = operator_actions(d, "grant", "gr");
    ASSERT_EQ(recorded.size(), 7u);
    EXPECT_NE(recorded[6].find("symbolic link"), std::string::npos) << recorded[6];
    EXPECT_NE(recorded[0].find("one look"), std::string::npos);
    EXPECT_NE(recorded[0].find(f.secret.string()), std::string::npos);
    EXPECT_NE(recorded[2].find("relative/path"), std::string::npos);
    EXPECT_NE(recorded[2].find("\"result\":\"error\""), std::string::npos);
    EXPECT_EQ(operator_actions(d, "revoke", "gr").size(), 1u);
}

// UDP connect to 127.0.0.1:port from a new process of the agent: 0, or the errno.
Exit connect_in(const agents::Cgroup& cg, std::uint16_t port)
{
    return wait_exit(spawn_in(cg.path().string(), [port] {
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        a.sin_port = htons(port);
        const int s = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (s < 0)
            return 100;
        return ::connect(s, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0 ? 0 : errno;
    }));
}

// A connect grant allows one address and port, for its TTL, and nothing next to it; an exec
// grant lets the agent run one program its policy refuses.
TEST_P(TrustTaskTest, ConnectAndExecGrantsAllowExactlyWhatTheyName)
{
    Files f;
    Daemon& d = daemon(GetParam());
    auto cg = make_test_cgroup();
    const std::string yaml = "apiVersion: cordon.dev/v1\nkind: AgentPolicy\nmetadata:\n  name: net\n"
                             "spec:\n  exec:\n    default: allow\n    rules:\n"
                             "      - {path: /usr/bin/true, action: deny}\n"
                             "  files: {default: allow}\n  network: {default: deny}\n";
    ASSERT_TRUE(d.attach(cg.path(), yaml, "net", f.dir.string()).value("ok", false));
    EXPECT_EQ(connect_in(cg, 9), exited(EPERM));
    call_ok(d, request("grant", "net", {{"kind", "connect"}, {"target", "127.0.0.1:9/udp"},
                                        {"ttl", "2s"}}));
    EXPECT_EQ(connect_in(cg, 9), exited(0)) << "the granted address and port";
    EXPECT_EQ(connect_in(cg, 10), exited(EPERM)) << "another port";
    const auto run_true = [&] {
        return wait_exit(spawn_in(cg.path().string(), [] {
            ::execl("/usr/bin/true", "true", static_cast<char*>(nullptr));
            return errno == EPERM ? 77 : 78;
        }));
    };
    const Exit refused_exec = runs_lsm_programs(GetParam()) ? exited(77) : killed_by(SIGKILL);
    EXPECT_EQ(run_true(), refused_exec);
    call_ok(d, request("grant", "net", {{"kind", "exec"}, {"target", "/usr/bin/true"},
                                        {"ttl", "2s"}}));
    EXPECT_EQ(run_true(), exited(0)) << "the exec grant";
    std::this_thread::sleep_for(2500ms);
    EXPECT_EQ(connect_in(cg, 9), exited(EPERM)) << "expired";
    EXPECT_EQ(run_true(), refused_exec) << "expired";
}

// A grant lifts a deny, never a kill rule; an overlay may also take away what the policy allows
// (during the task only), but never lift a kill rule.
TEST_P(TrustTaskTest, GrantsAndOverlaysNeverOverrideAKillRule)
{
    Files f;
    Daemon& d = daemon(GetParam());
    auto cg = make_test_cgroup();
    const fs::path trap = f.dir / "trap";
    std::ofstream(trap) << "x";
    const std::string yaml = "apiVersion: cordon.dev/v1\nkind: AgentPolicy\nmetadata:\n  name: kr\n"
                             "spec:\n  exec: {default: allow}\n  files:\n    default: allow\n"
                             "    rules:\n      - {path: " + trap.string() +
                             ", access: read, action: kill}\n  network: {default: allow}\n";
    ASSERT_TRUE(d.attach(cg.path(), yaml, "kr", f.dir.string()).value("ok", false));
    const std::string overlay = "apiVersion: cordon.dev/v1\nkind: TaskOverlay\nmetadata:\n"
                                "  name: ov\nspec:\n  files:\n    rules:\n"
                                "      - {path: " + trap.string() + ", access: read, action: allow}\n"
                                "      - {path: " + f.open.string() + ", access: read, action: deny}\n";
    call_ok(d, request("task_begin", "kr", {{"id", "t"}, {"policy", {{"file", "ov.yaml"}, {"text", overlay}}}}));
    EXPECT_TRUE(refused(open_in(cg, f.open))) << "the overlay's deny holds during the task";
    call_ok(d, request("grant", "kr", {{"kind", "read"}, {"target", trap.string()}, {"ttl", "5m"}}));
    const auto e = open_in(cg, trap);
    EXPECT_EQ(e, killed_by(SIGKILL)) << "neither the overlay's allow nor the grant lifts a kill rule";
    EXPECT_TRUE(agents_until(d, [](const json& l) {
        for (const auto& a : l)
            if (a["name"] == "kr")
                return a["killed"] == true;
        return false;
    }))
        << "the kill rule marked the agent killed";
}

// The kernel keeps checking a grant's expiry with the daemon dead: it allows while it lasts and
// refuses after, and a restarted daemon finds it and cleans it up.
TEST_P(TrustTaskTest, AGrantSurvivesADaemonKillAndStillExpires)
{
    Files f;
    Daemon& d = daemon(GetParam());
    auto cg = make_test_cgroup();
    ASSERT_TRUE(d.attach(cg.path(), deny_policy(f.secret), "gk", f.dir.string()).value("ok", false));
    call_ok(d, request("grant", "gk", {{"kind", "read"}, {"target", f.secret.string()},
                                       {"ttl", "4s"}}));
    const auto given = std::chrono::steady_clock::now();
    d.kill9();
    EXPECT_EQ(open_in(cg, f.secret), exited(0)) << "allowed with no daemon";
    std::this_thread::sleep_until(given + 5s);
    EXPECT_TRUE(refused(open_in(cg, f.secret))) << "expired with no daemon";
    d.start();
    EXPECT_TRUE(eventually([&] { return call_ok(d, request("grants", "gk"))["grants"].empty(); }));
}

// A task's id is in its events; its overlay and its grants end with it.
TEST_P(TrustTaskTest, EndingATaskRemovesItsOverlayAndItsGrants)
{
    Files f;
    Daemon& d = daemon(GetParam());
    auto cg = make_test_cgroup();
    const fs::path other = f.dir / "other";
    std::ofstream(other) << "x";
    const std::string yaml = "apiVersion: cordon.dev/v1\nkind: AgentPolicy\nmetadata:\n  name: tk\n"
                             "spec:\n  exec: {default: allow}\n  files:\n    default: allow\n"
                             "    rules:\n      - {path: " + f.secret.string() +
                             ", access: read, action: deny}\n      - {path: " + other.string() +
                             ", access: read, action: deny}\n  network: {default: allow}\n";
    ASSERT_TRUE(d.attach(cg.path(), yaml, "tk", f.dir.string()).value("ok", false));
    Subscription events(d, "tk");
    const std::string overlay = "apiVersion: cordon.dev/v1\nkind: TaskOverlay\nmetadata:\n"
                                "  name: look\nspec:\n  files:\n    rules:\n      - {path: " +
                                f.secret.string() + ", access: read, action: allow}\n";
    call_ok(d, request("task_begin", "tk", {{"id", "call-1"}, {"ttl", "10m"},
                                            {"policy", {{"file", "look.yaml"}, {"text", overlay}}}}));
    EXPECT_EQ(open_in(cg, f.secret), exited(0)) << "the overlay allows it during the task";
    call_ok(d, request("grant", "tk", {{"kind", "read"}, {"target", other.string()},
                                       {"ttl", "10m"}, {"task", "call-1"}}));
    EXPECT_EQ(open_in(cg, other), exited(0)) << "the task's grant allows it";
    EXPECT_EQ(call_ok(d, request("tasks", "tk"))["tasks"].size(), 1u);
    bool tagged = false;
    for (const auto& e : events.barrier())
        if (path_of(e) == other.string() && cordon_fields(e)["verdict"] == "audit")
            tagged = cordon_fields(e).value("task", "") == "call-1";
    EXPECT_TRUE(tagged) << "events carry the task id";

    call_ok(d, request("task_end", "tk", {{"id", "call-1"}}));
    EXPECT_TRUE(refused(open_in(cg, f.secret))) << "the overlay ended with the task";
    EXPECT_TRUE(refused(open_in(cg, other))) << "and so did the task's grant";
    EXPECT_TRUE(call_ok(d, request("grants", "tk"))["grants"].empty());
    EXPECT_TRUE(call_ok(d, request("tasks", "tk"))["tasks"].empty());
    for (const auto& e : events.barrier())
        if (cordon_fields(e)["verdict"] != "audit" && path_of(e) == f.secret.string()) {
            EXPECT_FALSE(cordon_fields(e).contains("task")) << "no task after it ended: " << e.dump();
        }

    // A TTL ends the task in the kernel.
    call_ok(d, request("task_begin", "tk", {{"id", "short"}, {"ttl", "1s"},
                                            {"policy", {{"file", "look.yaml"}, {"text", overlay}}}}));
    EXPECT_EQ(open_in(cg, f.secret), exited(0));
    std::this_thread::sleep_for(2s);
    EXPECT_TRUE(refused(open_in(cg, f.secret))) << "the TTL ended the task";
    // Bad tasks change nothing.
    EXPECT_FALSE(d.call(request("task_begin", "tk", {{"id", "bad id"}}).dump()).value("ok", true));
    EXPECT_FALSE(d.call(request("task_begin", "tk", {{"id", "p"}, {"pid", 1}}).dump()).value("ok", true))
        << "a process outside the agent";
    // A thread's id is not a process: binding it would bind nothing now and a later process
    // that gets the number.
    int tid_pipe[2];
    ASSERT_EQ(::pipe2(tid_pipe, O_CLOEXEC), 0);
    const pid_t threaded = spawn_in(cg.path().string(), [&] {
        std::thread t([&] {
            const pid_t tid = ::gettid();
            (void)!::write(tid_pipe[1], &tid, sizeof(tid));
            ::pause();
        });
        t.join();
        return 0;
    });
    pid_t tid = 0;
    ASSERT_EQ(::read(tid_pipe[0], &tid, sizeof(tid)), static_cast<ssize_t>(sizeof(tid)));
    ::close(tid_pipe[0]);
    ::close(tid_pipe[1]);
    const auto by_tid = d.call(request("task_begin", "tk", {{"id", "thr"}, {"pid", tid}}).dump());
    EXPECT_FALSE(by_tid.value("ok", true));
    EXPECT_NE(by_tid.value("error", "").find("thread"), std::string::npos) << by_tid.dump();
    EXPECT_TRUE(call_ok(d, request("tasks", "tk"))["tasks"].empty()) << "nothing was bound";
    ::kill(threaded, SIGKILL);
    wait_exit(threaded);
    EXPECT_FALSE(d.call(request("task_begin", "tk",
                                {{"id", "x"}, {"policy", {{"file", "bad.yaml"}, {"text", "kind: nope"}}}})
                            .dump())
                     .value("ok", true));
}

// Two tool calls in one agent at once, each a process-bound task with its own grant: each
// process, and each process it forks, is allowed its own task's file and not the other's, and
// the events say which task each access belonged to.
TEST_P(TrustTaskTest, TwoProcessBoundTasksHaveSeparateAllowances)
{
    Files f;
    Daemon& d = daemon(GetParam());
    auto cg = make_test_cgroup();
    const fs::path a = f.dir / "a", b = f.dir / "b";
    std::ofstream(a) << "a";
    std::ofstream(b) << "b";
    const std::string yaml = "apiVersion: cordon.dev/v1\nkind: AgentPolicy\nmetadata:\n  name: two\n"
                             "spec:\n  exec: {default: allow}\n  files:\n    default: allow\n"
                             "    rules:\n      - {path: " + a.string() +
                             ", access: read, action: deny}\n      - {path: " + b.string() +
                             ", access: read, action: deny}\n  network: {default: allow}\n";
    ASSERT_TRUE(d.attach(cg.path(), yaml, "two", f.dir.string()).value("ok", false));
    Subscription events(d, "two");
    struct Result {
        std::atomic<int> own{-1}, child_own{-1}, other{-1}, child_other{-1};
    };
    auto* res = shared_memory<std::array<Result, 2>>();
    int go[2][2];
    const fs::path files[2] = {a, b};
    pid_t pids[2];
    for (int i = 0; i < 2; ++i) {
        ASSERT_EQ(::pipe2(go[i], O_CLOEXEC), 0);
        pids[i] = spawn_in(cg.path().string(), [&, i] {
            char c;
            if (::read(go[i][0], &c, 1) != 1)
                return 9;
            auto& r = (*res)[i];
            r.own = try_open(files[i]);
            const pid_t child = ::fork();
            if (child == 0) {
                r.child_own = try_open(files[i]);
                r.child_other = try_open(files[1 - i]);
                ::_exit(0);
            }
            int st = 0;
            ::waitpid(child, &st, 0);
            r.other = try_open(files[1 - i]);
            return 0;
        });
        ::close(go[i][0]);
    }
    const char* ids[2] = {"call-a", "call-b"};
    for (int i = 0; i < 2; ++i) {
        call_ok(d, request("task_begin", "two", {{"id", ids[i]}, {"pid", pids[i]}}));
        call_ok(d, request("grant", "two", {{"kind", "read"}, {"target", files[i].string()},
                                            {"ttl", "10m"}, {"task", ids[i]}}));
    }
    for (int i = 0; i < 2; ++i) {
        ASSERT_EQ(::write(go[i][1], "g", 1), 1);
        ::close(go[i][1]);
    }
    for (int i = 0; i < 2; ++i) {
        const auto e = wait_exit(pids[i]);
        const auto& r = (*res)[i];
        EXPECT_EQ(r.own.load(), 0) << ids[i] << " may read its own file";
        EXPECT_EQ(r.child_own.load(), 0) << "and so may the process it forked";
        // lsm: EPERM; compat: the process is killed by the refused open (the value stays -1).
        EXPECT_NE(r.child_other.load(), 0) << "its child may not read the other task's file";
        EXPECT_NE(r.other.load(), 0) << ids[i] << " may not read the other task's file";
        if (runs_lsm_programs(GetParam())) {
            EXPECT_EQ(r.other.load(), EPERM);
            EXPECT_EQ(e, exited(0));
        } else {
            EXPECT_EQ(e, killed_by(SIGKILL));
        }
    }
    int tagged = 0;
    for (const auto& e : events.barrier()) {
        if (cordon_fields(e)["verdict"] == "deny" && path_of(e) == b.string() && cordon_fields(e).value("task", "") == "call-a")
            ++tagged;
        if (cordon_fields(e)["verdict"] == "deny" && path_of(e) == a.string() && cordon_fields(e).value("task", "") == "call-b")
            ++tagged;
        if (cordon_fields(e)["verdict"] == "audit" && path_of(e) == a.string()) {
            EXPECT_EQ(cordon_fields(e).value("task", ""), "call-a") << e.dump();
        }
    }
    EXPECT_GE(tagged, 2) << "each refusal names the task of the process that made it";
    // The rest of the agent keeps the agent's policy.
    EXPECT_TRUE(refused(open_in(cg, a)));
    EXPECT_TRUE(refused(open_in(cg, b)));
}

INSTANTIATE_TEST_SUITE_P(Backends, TrustTaskTest,
                         ::testing::Values(CORDON_BACKEND_LSM, CORDON_BACKEND_FMOD_RET, CORDON_BACKEND_COMPAT),
                         [](const auto& tp) { return std::string(bpf::backend_name(tp.param)); });

} // namespace
} // namespace cordon::testing
