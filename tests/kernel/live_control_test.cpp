// SPDX-License-Identifier: Apache-2.0
// Changing a running agent through the real cordond: the kill switch (a fork bomb included),
// freeze and thaw, a freeze rule, an atomic policy swap under a process that hammers an access
// whose verdict differs between the two policies, and the mode switch. Each on the real kernel,
// with real processes, and each operator action checked in the daemon's actions log.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <sstream>
#include <thread>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "agents/cgroup.h"
#include "common/clock.h"
#include "common/error.h"
#include "daemon_util.h"
#include "common/backend.h"
#include "kernel_test_util.h"

namespace cordon::testing {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using namespace std::chrono_literals;


std::string policy_text(const std::string& name, const std::string& files_rules,
                        const std::string& extra = "")
{
    return "apiVersion: cordon.dev/v1\nkind: AgentPolicy\nmetadata:\n  name: " + name +
           "\nspec:\n" + extra + "  exec: {default: allow}\n  files:\n    default: allow\n"
           "    rules:\n" + files_rules + "  network: {default: allow}\n";
}

// The operator actions the daemon recorded for an op, in order.
std::vector<json> actions(const Daemon& d, const std::string& op)
{
    std::vector<json> out;
    std::ifstream in(d.registry().parent_path() / "actions.jsonl");
    for (std::string line; std::getline(in, line);) {
        const auto a = json::parse(line, nullptr, false);
        if (!a.is_discarded() && a.value("op", "") == op && a.value("type", "") == "operator_action")
            out.push_back(a);
    }
    return out;
}

// Processes of this host whose comm is `comm` and that are not zombies.
int living_with_comm(const std::string& comm)
{
    int n = 0;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator("/proc", ec)) {
        std::ifstream in(e.path() / "stat");
        std::string stat;
        if (!std::getline(in, stat))
            continue;
        const auto open = stat.find('('), close = stat.rfind(')');
        if (open == std::string::npos || close == std::string::npos || close + 2 >= stat.size())
            continue;
        if (stat.substr(open + 1, close - open - 1) == comm && stat[close + 2] != 'Z')
            ++n;
    }
    return n;
}

// Processes of a cgroup that are not zombies.
int living_in(const fs::path& cgroup)
{
    std::ifstream procs(cgroup / "cgroup.procs");
    int n = 0;
    for (std::string pid; std::getline(procs, pid);) {
        std::ifstream st("/proc/" + pid + "/stat");
        std::string line;
        std::getline(st, line);
        const auto close = line.rfind(')');
        if (close != std::string::npos && close + 2 < line.size() && line[close + 2] != 'Z' &&
            line[close + 2] != 'X')
            ++n;
    }
    return n;
}

// Polls cond for up to 10 s.
bool wait_until_true(const std::function<bool()>& cond)
{
    const auto end = std::chrono::steady_clock::now() + 10s;
    while (std::chrono::steady_clock::now() < end) {
        if (cond())
            return true;
        std::this_thread::sleep_for(10ms);
    }
    return cond();
}

// A process in `cgroup` that sleeps until it is killed.
pid_t spawn_sleeper(const fs::path& cgroup)
{
    return spawn_in(cgroup.string(), [] {
        for (;;)
            ::pause();
        return 0;
    });
}

const json& only_agent(const json& agents)
{
    if (agents.size() != 1)
        throw Error("expected one agent, got " + agents.dump());
    return agents[0];
}

class LiveControlTest : public ::testing::TestWithParam<cordon_backend> {
protected:
    void SetUp() override
    {
        if (skip_unless_backend(GetParam()))
            GTEST_SKIP() << "the kernel cannot run this backend; the VM tier runs it";
    }
};

// Cases of the lsm backend's tamper protection. compat has none by design: there agents run as
// another user (--user), cordond's files are root's, and no hook sees ptrace
// (docs/enforcement.md).
class LsmLiveControlTest : public LiveControlTest {};

// A fork bomb churns inside the agent (a few hundred processes that fork without end, each also
// trying to move itself into another cgroup) when the kill switch is thrown: the call returns
// with the cgroup empty, no process of the bomb is alive anywhere, nothing reached the other
// cgroup, and the kernel keeps refusing the agent afterwards.
TEST_P(LiveControlTest, KillEndsAForkBombWithNoSurvivor)
{
    Files f;
    Daemon d(GetParam());
    auto cg = make_test_cgroup();
    auto outside = make_test_cgroup(); // where the bomb tries to escape to
    const std::string comm = "kbomb" + std::to_string(::getpid() % 100000);
    struct Counts {
        std::atomic<int> live{0};
        std::atomic<long> births{0};
    };
    auto* counts = shared_memory<Counts>();
    const auto escape_to = (outside.path() / "cgroup.procs").string();
    const bool compat = GetParam() == CORDON_BACKEND_COMPAT;
    ASSERT_TRUE(d.attach(cg.path(), policy_text("bomb", "      - {path: " + f.secret.string() +
                                                             ", access: read, action: deny}\n"),
                         "bomb", f.dir.string())
                    .value("ok", false));
    spawn_in(cg.path().string(), [&] {
        ::prctl(PR_SET_NAME, comm.c_str());
        ::signal(SIGCHLD, SIG_IGN); // no zombies: the children are reaped by the kernel
        if (::setgid(65534) != 0 || ::setuid(65534) != 0)
            return 1;
        counts->live++;
        for (unsigned i = 0;; ++i) {
            if (counts->live.load() < 300) {
                const pid_t c = ::fork();
                if (c == 0) {
                    counts->live++;
                    counts->births++;
                    continue;
                }
            } else if (i % 8 == 7) {
                counts->live--; // churn: make room for a new birth
                ::_exit(0);
            }
            // The agent tries to leave its cgroup (refused: cgroup.procs is root's). Not on
            // compat, whose guard kills a process that opens a cgroupfs file for writing: the
            // bomb would die out (uncounted) before the kill switch is thrown.
            const int fd = compat ? -1 : ::open(escape_to.c_str(), O_WRONLY | O_CLOEXEC);
            if (fd >= 0) {
                const std::string me = std::to_string(::getpid());
                (void)!::write(fd, me.data(), me.size());
                ::close(fd);
            }
            ::usleep(200);
        }
    });
    // A few hundred processes forking without end (fewer under the VM tier's emulated CPU,
    // where a fork of this binary takes tens of milliseconds).
    const auto deadline = std::chrono::steady_clock::now() + 120s;
    int living = 0;
    for (;;) {
        living = living_in(cg.path());
        if ((counts->births.load() >= 200 && living >= 50) ||
            std::chrono::steady_clock::now() > deadline)
            break;
        std::this_thread::sleep_for(10ms);
    }
    ASSERT_GE(counts->births.load(), 200) << "the bomb did not get going";
    if (living < 50) {
        // What became of the bomb's processes: their states, and how the dead ones ended.
        std::ifstream procs(cg.path() / "cgroup.procs");
        std::map<char, int> states;
        std::string sample;
        for (std::string pid; std::getline(procs, pid);) {
            std::ifstream st("/proc/" + pid + "/stat");
            std::string line;
            std::getline(st, line);
            const auto close = line.rfind(')');
            if (close == std::string::npos || close + 2 >= line.size())
                continue;
            ++states[line[close + 2]];
            if (line[close + 2] == 'Z' && sample.size() < 200)
                sample += " " + line.substr(line.rfind(' ') + 1);
        }
        std::string summary;
        for (const auto& [state, n] : states)
            summary += fmt::format(" {}:{}", state, n);
        FAIL() << "the bomb did not get going: " << living << " living, " << counts->live.load()
               << " counted; states in the cgroup" << summary << "; exit codes of zombies"
               << sample << "\nstatus: " << d.call(R"({"v":1,"op":"status"})").dump()
               << "\ncordond's log:\n" << d.log();
    }

    const auto reply = d.call(request("kill", "bomb", {{"reason", "fork bomb"}}).dump());
    ASSERT_TRUE(reply.value("ok", false)) << reply.dump();
    EXPECT_GE(reply["flagged_ns"].get<std::int64_t>(), reply["received_ns"].get<std::int64_t>());
    EXPECT_GE(reply["settled_ns"].get<std::int64_t>(), reply["flagged_ns"].get<std::int64_t>());
    std::fprintf(stderr, "kill: flag written %.1f us after the request arrived; cgroup empty "
                         "after %.2f ms (%ld births)\n",
                 static_cast<double>(reply["flagged_ns"].get<std::int64_t>() -
                                     reply["received_ns"].get<std::int64_t>()) / 1e3,
                 reply["elapsed_ms"].get<double>(), counts->births.load());
    EXPECT_FALSE(agents::cgroup_populated(cg.path())) << "the call returned with the cgroup empty";
    EXPECT_EQ(living_with_comm(comm), 0) << "no process of the bomb survives, anywhere";
    EXPECT_FALSE(agents::cgroup_populated(outside.path())) << "nothing escaped";

    const auto a = only_agent(d.call(R"({"v":1,"op":"agents"})")["agents"]);
    EXPECT_EQ(a["killed"], true);
    const auto st = d.pinned().agent(a["key"].get<std::uint64_t>());
    ASSERT_TRUE(st.has_value());
    EXPECT_TRUE(st->flags & CORDON_AGENT_F_KILLED) << "the operator's kill flag is set";
    // Refused everything afterwards: a process that joins the cgroup cannot even read a file
    // its policy allows (it may be killed first: the daemon empties a killed agent's cgroup).
    EXPECT_TRUE(refused(wait_exit(spawn_in(cg.path().string(), [&] { return try_open(f.open); }))));

    const auto recorded = actions(d, "kill");
    ASSERT_EQ(recorded.size(), 1u);
    EXPECT_EQ(recorded[0]["result"], "ok");
    EXPECT_EQ(recorded[0]["reason"], "fork bomb");
    EXPECT_EQ(recorded[0]["who"]["uid"], 0);
    EXPECT_TRUE(recorded[0]["details"].contains("elapsed_ms"));
    EXPECT_FALSE(d.call(request("kill", "nosuch").dump()).value("ok", true)) << "unknown agent";
}

// Freeze stops every process and keeps it; the agent shows frozen; thaw resumes it; a frozen
// agent can be killed.
TEST_P(LiveControlTest, FreezeStopsTheAgentThawResumesItAndKillEndsAFrozenOne)
{
    Files f;
    Daemon d(GetParam());
    auto cg = make_test_cgroup();
    auto* ticks = shared_memory<std::atomic<long>>();
    ASSERT_TRUE(d.attach(cg.path(), deny_policy(f.secret), "frz", f.dir.string()).value("ok", false));
    for (int i = 0; i < 3; ++i)
        spawn_in(cg.path().string(), [&] {
            for (;;) {
                ++*ticks;
                ::usleep(1000);
            }
            return 0;
        });
    std::this_thread::sleep_for(50ms);
    const auto frozen = d.call(request("freeze", "frz").dump());
    ASSERT_TRUE(frozen.value("ok", false)) << frozen.dump();
    EXPECT_TRUE(agents::cgroup_frozen(cg.path())) << "the call returns once frozen";
    const auto a = only_agent(d.call(R"({"v":1,"op":"agents"})")["agents"]);
    EXPECT_EQ(a["frozen"], true);
    EXPECT_EQ(a["cgroup_frozen"], true);
    EXPECT_EQ(a["processes"], 3) << "frozen, not killed";
    const long at_freeze = ticks->load();
    std::this_thread::sleep_for(200ms);
    EXPECT_EQ(ticks->load(), at_freeze) << "no process runs while frozen";
    // Thawed behind cordon's back (systemd, a container runtime, an admin script): frozen again.
    std::ofstream(cg.path() / "cgroup.freeze") << "0" << std::flush;
    EXPECT_TRUE(wait_until_true([&] { return agents::cgroup_freeze_requested(cg.path()) &&
                                             agents::cgroup_frozen(cg.path()); }))
        << "only `cordon thaw` ends a freeze";

    ASSERT_TRUE(d.call(request("thaw", "frz").dump()).value("ok", false));
    EXPECT_TRUE(agents_until(d, [](const json& l) { return l.size() == 1 && l[0]["frozen"] == false; }));
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (ticks->load() == at_freeze && std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(10ms);
    EXPECT_GT(ticks->load(), at_freeze) << "thawed processes run again, with their state";
    EXPECT_EQ(wait_exit(spawn_in(cg.path().string(), [&] { return try_open(f.open); })), exited(0))
        << "after thaw the policy decides again";

    ASSERT_TRUE(d.call(request("freeze", "frz").dump()).value("ok", false));
    const auto killed = d.call(request("kill", "frz").dump());
    ASSERT_TRUE(killed.value("ok", false)) << killed.dump();
    EXPECT_FALSE(agents::cgroup_populated(cg.path())) << "kill works on a frozen agent";
    EXPECT_FALSE(d.call(request("thaw", "frz").dump()).value("ok", true))
        << "a killed agent is not thawed";
    EXPECT_EQ(actions(d, "freeze").size(), 2u);
    ASSERT_EQ(actions(d, "thaw").size(), 2u);
    EXPECT_EQ(actions(d, "thaw")[1]["result"], "error");
}

// A freeze rule: the access is refused, the event names the rule, and the whole agent is frozen
// (its other processes stop); thaw resumes it.
TEST_P(LiveControlTest, AFreezeRuleRefusesAndFreezesTheWholeAgent)
{
    Files f;
    Daemon d(GetParam());
    auto cg = make_test_cgroup();
    auto* ticks = shared_memory<std::atomic<long>>();
    const std::string yaml = policy_text(
        "fr", "      - {path: " + f.secret.string() + ", access: read, action: freeze}\n");
    ASSERT_TRUE(d.attach(cg.path(), yaml, "fr", f.dir.string()).value("ok", false));
    Subscription events(d, "fr");
    spawn_in(cg.path().string(), [&] {
        for (;;) {
            ++*ticks;
            ::usleep(1000);
        }
        return 0;
    });
    // The prober reports through a pipe: on lsm it may be frozen before it exits (cordond
    // freezes the cgroup as soon as it reads the verdict), so it is reaped after the thaw.
    int report[2];
    ASSERT_EQ(::pipe2(report, O_CLOEXEC), 0);
    const pid_t prober = spawn_in(cg.path().string(), [&] {
        const int r = try_open(f.secret);
        (void)!::write(report[1], &r, sizeof(r));
        return r;
    });
    ::close(report[1]);
    int result = -1;
    // On lsm the prober may be frozen before it writes (cordond freezes the cgroup as soon as it
    // reads the verdict, and a frozen process stops at its syscall's return): then its exit
    // status after the thaw says what open returned.
    const bool reported = read_within(report[0], &result, sizeof(result), 10000);
    ::close(report[0]);
    if (runs_lsm_programs(GetParam())) {
        if (reported) {
            EXPECT_EQ(result, EPERM);
        }
    } else {
        EXPECT_FALSE(reported) << "compat kills the process before open returns";
        EXPECT_EQ(wait_exit(prober), killed_by(SIGKILL));
    }
    EXPECT_TRUE(agents_until(d, [](const json& l) {
        return l.size() == 1 && l[0]["frozen"] == true && l[0]["cgroup_frozen"] == true;
    }));
    const long at_freeze = ticks->load();
    std::this_thread::sleep_for(200ms);
    EXPECT_EQ(ticks->load(), at_freeze) << "the agent's other process is stopped too";
    bool seen = false;
    for (const auto& e : events.barrier())
        if (cordon_fields(e)["verdict"] == "freeze") {
            seen = true;
            EXPECT_EQ(path_of(e), f.secret.string());
            EXPECT_EQ(cordon_fields(e)["rule"], "test.yaml:" + std::to_string(line_containing(yaml, "freeze")));
        }
    EXPECT_TRUE(seen) << "an event says which rule froze the agent";

    ASSERT_TRUE(d.call(request("thaw", "fr").dump()).value("ok", false));
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (ticks->load() == at_freeze && std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(10ms);
    EXPECT_GT(ticks->load(), at_freeze);
    if (runs_lsm_programs(GetParam())) {
        EXPECT_EQ(wait_exit(prober), exited(EPERM)) << "it ends once thawed";
    }
    EXPECT_EQ(wait_exit(spawn_in(cg.path().string(), [&] { return try_open(f.open); })), exited(0))
        << "after thaw the agent is allowed what its policy allows";
}

// A freeze rule is carried out from the kernel's mark, not from its event: with cordond stopped
// (SIGSTOP) the agent overflows its share of the ring buffer (trace: all), then hits the freeze
// rule; once cordond runs again it freezes the agent. The freeze record itself is not among
// those lost: critical records keep the buffer's last eighth (docs/forensics.md).
TEST_P(LiveControlTest, AFreezeRuleIsCarriedOutAndRecordedAfterTheAgentsFlood)
{
    Files f;
    Daemon d(GetParam(), {"--ringbuf-size", "4M"});
    auto cg = make_test_cgroup();
    const std::string yaml = policy_text(
        "lost", "      - {path: " + f.secret.string() + ", access: read, action: freeze}\n",
        "  trace: all\n");
    ASSERT_TRUE(d.attach(cg.path(), yaml, "lost", f.dir.string()).value("ok", false));
    Subscription events(d, "lost");
    ASSERT_EQ(::kill(d.pid(), SIGSTOP), 0);
    // A 4 MiB ring buffer holds about 11,900 records: 20,000 reported opens overflow it.
    EXPECT_EQ(wait_exit(spawn_in(cg.path().string(), [&] {
                  for (int i = 0; i < 20000; ++i)
                      if (try_open(f.open) != 0)
                          return 1;
                  return try_open(f.secret) == 0 ? 2 : 0;
              })),
              runs_lsm_programs(GetParam()) ? exited(0) : killed_by(SIGKILL));
    const pid_t sleeper = spawn_sleeper(cg.path());
    ASSERT_EQ(::kill(d.pid(), SIGCONT), 0);
    EXPECT_TRUE(agents_until(d, [](const json& l) {
        return l.size() == 1 && l[0]["frozen"] == true && l[0]["cgroup_frozen"] == true;
    }));
    EXPECT_GT(d.call(R"({"v":1,"op":"status"})")["shed_events"].get<std::uint64_t>(), 0u);
    bool frozen_seen = false;
    for (const auto& e : events.barrier())
        frozen_seen = frozen_seen || cordon_fields(e)["verdict"] == "freeze";
    EXPECT_TRUE(frozen_seen) << "the freeze record was lost with the agent's flood";
    ASSERT_TRUE(d.call(request("kill", "lost").dump()).value("ok", false));
    EXPECT_EQ(wait_exit(sleeper), killed_by(SIGKILL));
}

// Once marked frozen, an agent may not reach into its own processes either (ptrace), for the
// moments before its cgroup is frozen: cordond is stopped here, so only the kernel's mark holds.
TEST_P(LsmLiveControlTest, AFrozenAgentCannotTraceItsOwnProcesses)
{
    Files f;
    Daemon d(GetParam());
    auto cg = make_test_cgroup();
    ASSERT_TRUE(d.attach(cg.path(),
                         policy_text("pt", "      - {path: " + f.secret.string() +
                                               ", access: read, action: freeze}\n"),
                         "pt", f.dir.string())
                    .value("ok", false));
    const pid_t sibling = spawn_sleeper(cg.path());
    const auto trace = [&] {
        return wait_exit(spawn_in(cg.path().string(), [&] {
            if (::ptrace(PTRACE_ATTACH, sibling, nullptr, nullptr) != 0)
                return errno;
            ::waitpid(sibling, nullptr, __WALL);
            ::ptrace(PTRACE_DETACH, sibling, nullptr, nullptr);
            return 0;
        }));
    };
    EXPECT_EQ(trace(), exited(0)) << "an agent may debug its own processes";
    ASSERT_EQ(::kill(d.pid(), SIGSTOP), 0);
    EXPECT_EQ(wait_exit(spawn_in(cg.path().string(), [&] { return try_open(f.secret); })),
              exited(EPERM));
    EXPECT_EQ(trace(), exited(EPERM)) << "not once it is marked frozen";
    ASSERT_EQ(::kill(d.pid(), SIGCONT), 0);
    ASSERT_TRUE(d.call(request("kill", "pt").dump()).value("ok", false));
    EXPECT_EQ(wait_exit(sibling), killed_by(SIGKILL));
}

// A root agent whose policy lets it write anywhere, in audit mode even, may not touch cordond's
// own state: replace its socket (then the agent itself would answer the operator's kill),
// rewrite or erase its actions log, or write its registry. The kill that follows is the real one.
TEST_P(LsmLiveControlTest, ARootAgentCannotReplaceCordondsSocketOrEraseItsRecords)
{
    Files f;
    Daemon d(GetParam());
    auto cg = make_test_cgroup();
    const auto attached = d.call(json{{"v", 1}, {"op", "attach"}, {"name", "tamper"},
                                      {"cgroup", cg.path().string()}, {"mode", "audit"},
                                      {"policy", {{"file", "p.yaml"},
                                                  {"text", policy_text("tamper", "")}}},
                                      {"workspace", f.dir.string()}}
                                     .dump());
    ASSERT_TRUE(attached.value("ok", false)) << attached.dump();
    const fs::path sock = d.socket(), log = d.registry().parent_path() / "actions.jsonl";
    const fs::path record = d.registry() / "tamper.json";
    const auto in_agent = [&](const std::function<int()>& fn) {
        return wait_exit(spawn_in(cg.path().string(), fn));
    };
    const auto open_errno = [](const fs::path& p, int flags) {
        const int fd = ::open(p.c_str(), flags | O_CLOEXEC, 0600);
        if (fd < 0)
            return errno;
        ::close(fd);
        return 0;
    };
    // Outside any agent the same opens work (append only: nothing is lost).
    ASSERT_EQ(open_errno(log, O_WRONLY | O_APPEND), 0);
    ASSERT_EQ(open_errno(record, O_RDONLY), 0);
    EXPECT_EQ(in_agent([&] { return ::unlink(sock.c_str()) == 0 ? 0 : errno; }), exited(EPERM));
    EXPECT_EQ(in_agent([&] {
                  return ::rename(sock.c_str(), (f.dir / "moved").c_str()) == 0 ? 0 : errno;
              }),
              exited(EPERM));
    EXPECT_EQ(in_agent([&] { return open_errno(log, O_WRONLY | O_TRUNC); }), exited(EPERM));
    EXPECT_EQ(in_agent([&] { return ::unlink(log.c_str()) == 0 ? 0 : errno; }), exited(EPERM));
    EXPECT_EQ(in_agent([&] { return open_errno(record, O_WRONLY); }), exited(EPERM));
    EXPECT_EQ(in_agent([&] { return open_errno(d.registry() / "forged.json", O_WRONLY | O_CREAT); }),
              exited(EPERM));
    EXPECT_EQ(in_agent([&] { return ::unlink(record.c_str()) == 0 ? 0 : errno; }), exited(EPERM));
    EXPECT_EQ(in_agent([&] { return ::rmdir(d.registry().c_str()) == 0 ? 0 : errno; }),
              exited(EPERM));
    // Nothing replaced the daemon: the kill is carried out by cordond itself.
    const pid_t worker = spawn_sleeper(cg.path());
    ASSERT_TRUE(d.call(request("kill", "tamper").dump()).value("ok", false));
    EXPECT_EQ(wait_exit(worker), killed_by(SIGKILL));
    EXPECT_FALSE(agents::cgroup_populated(cg.path()));
    EXPECT_EQ(actions(d, "kill").size(), 1u) << "the log still holds its actions";
}

// An agent that makes denials as fast as it can (two processes sending to a refused address)
// must not stall cordond's one thread: status answers, and a kill of another agent is carried
// out, while the flood goes on (what the daemon cannot read in time is counted as lost).
TEST_P(LiveControlTest, AFloodOfDenialsDoesNotStallTheDaemon)
{
    Files f;
    Daemon d(GetParam());
    auto flood_cg = make_test_cgroup();
    auto victim_cg = make_test_cgroup();
    const std::string deny_net = "apiVersion: cordon.dev/v1\nkind: AgentPolicy\nmetadata:\n"
                                 "  name: flood\nspec:\n  exec: {default: allow}\n"
                                 "  files: {default: allow}\n  network: {default: deny}\n";
    ASSERT_TRUE(d.attach(flood_cg.path(), deny_net, "flood", f.dir.string()).value("ok", false));
    ASSERT_TRUE(d.attach(victim_cg.path(), deny_policy(f.secret), "victim", f.dir.string())
                    .value("ok", false));
    const pid_t victim = spawn_sleeper(victim_cg.path());
    for (int i = 0; i < 2; ++i)
        spawn_in(flood_cg.path().string(), [] {
            const int s = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
            sockaddr_in a{};
            a.sin_family = AF_INET;
            a.sin_port = htons(9);
            a.sin_addr.s_addr = htonl(0x0a000001); // 10.0.0.1: refused by network.default
            for (;;)
                (void)::sendto(s, "x", 1, 0, reinterpret_cast<sockaddr*>(&a), sizeof(a));
            return 0;
        });
    std::this_thread::sleep_for(1s);
    // Each call fails the test if no reply comes within 10 s.
    EXPECT_GT(d.call(R"({"v":1,"op":"status"})")["decisions"]["deny"].get<std::uint64_t>(), 1000u);
    const auto killed = d.call(request("kill", "victim").dump());
    EXPECT_TRUE(killed.value("ok", false)) << killed.dump();
    EXPECT_EQ(wait_exit(victim), killed_by(SIGKILL));
    EXPECT_TRUE(d.call(request("kill", "flood").dump()).value("ok", false));
    EXPECT_LT(d.log().size(), 1u << 20) << "event lines in cordond's log are rate-limited";
}

// A process hammers one file whose verdict differs between two policies (audited by rule in the
// old one, denied by rule in the new one; trace: all, so that a decision by neither, the class
// default, would be reported too). Every decision is one policy's; every attempt that began
// after apply returned is the new one's; the trust score survives the swap.
TEST_P(LiveControlTest, PolicyApplySwitchesAtomically)
{
    Files f;
    Daemon d(GetParam());
    auto cg = make_test_cgroup();
    const std::string trust = "  trace: all\n  trust:\n    initial: 1000\n"
                              "    tiers: [{name: low, min: 0}]\n"
                              "    penalties: {deny: 1, kill: 1000}\n";
    const std::string old_yaml = policy_text(
        "old", "      - {path: " + f.secret.string() + ", access: read, action: audit}\n"
               "      - {path: " + f.dir.string() + "/q, access: read, action: deny}\n", trust);
    const std::string new_yaml = policy_text(
        "new", "      - {path: /nonexistent/a, access: read, action: deny}\n"
               "      - {path: /nonexistent/b, access: read, action: deny}\n"
               "      - {path: " + f.secret.string() + ", access: read, action: deny}\n", trust);
    std::ofstream(f.dir / "q") << "q";
    ASSERT_TRUE(d.attach(cg.path(), old_yaml, "sw", f.dir.string()).value("ok", false));
    Subscription events(d, "sw");
    // Two denials under the old policy: the score the swap must keep.
    for (int i = 0; i < 2; ++i)
        EXPECT_TRUE(refused(wait_exit(spawn_in(cg.path().string(), [&] { return try_open(f.dir / "q"); }))));
    const auto before = only_agent(d.call(R"({"v":1,"op":"agents"})")["agents"]);
    ASSERT_EQ(before["score"], 998);

    // The hammer: one attempt per child on compat (a denial kills the caller there).
    constexpr int kMax = 200000;
    struct Log {
        std::atomic<int> n{0};
        std::atomic<bool> stop{false};
        std::int64_t start_ns[kMax];
        std::int64_t end_ns[kMax]; ///< the open happened within [start_ns, end_ns]
        std::uint8_t allowed[kMax];
    };
    auto* log = shared_memory<Log>();
    const bool compat = GetParam() == CORDON_BACKEND_COMPAT;
    const pid_t hammer = spawn_in(cg.path().string(), [&] {
        while (!log->stop.load() && log->n.load() < kMax) {
            const std::int64_t t = monotonic_ns();
            bool ok;
            if (compat) {
                const pid_t c = ::fork();
                if (c == 0)
                    ::_exit(try_open(f.secret));
                ok = wait_exit(c) == exited(0);
            } else {
                ok = try_open(f.secret) == 0;
            }
            const std::int64_t done = monotonic_ns();
            const int i = log->n++;
            log->start_ns[i] = t;
            log->end_ns[i] = done;
            log->allowed[i] = ok;
            ::usleep(100);
        }
        return 0;
    });
    // At least 300 ms, and enough attempts on each side however slow the CPU (on compat each
    // one forks: tens of milliseconds under the VM tier's emulated CPU on a busy host).
    const auto attempts_past = [&](int n) {
        std::this_thread::sleep_for(300ms);
        for (int i = 0; i < 600 && log->n.load() < n; ++i)
            std::this_thread::sleep_for(50ms);
    };
    attempts_past(13);
    const std::int64_t call_ns = monotonic_ns();
    const auto reply = d.call(json{{"v", 1}, {"op", "apply"}, {"name", "sw"},
                                   {"policy", {{"file", "new.yaml"}, {"text", new_yaml}}}}
                                  .dump());
    const std::int64_t returned_ns = monotonic_ns();
    ASSERT_TRUE(reply.value("ok", false)) << reply.dump();
    attempts_past(log->n.load() + 13);
    log->stop = true;
    EXPECT_EQ(wait_exit(hammer), exited(0));
    std::fprintf(stderr, "apply: switch %.1f us after the new policy was loaded; call %.2f ms\n",
                 static_cast<double>(reply["switched_ns"].get<std::int64_t>() -
                                     reply["recorded_ns"].get<std::int64_t>()) / 1e3,
                 static_cast<double>(returned_ns - call_ns) / 1e6);

    int before_call = 0, after_return = 0, refused_count = 0;
    for (int i = 0; i < log->n.load(); ++i) {
        if (!log->allowed[i])
            ++refused_count;
        // Judged by when the open itself may have happened: on compat an attempt forks a child
        // first, which can take longer than the apply under the VM tier's emulated CPU.
        if (log->end_ns[i] < call_ns) {
            ++before_call;
            EXPECT_TRUE(log->allowed[i]) << "attempt " << i << " ended before the call";
        } else if (log->start_ns[i] > returned_ns) {
            ++after_return;
            EXPECT_FALSE(log->allowed[i]) << "attempt " << i << " began after apply returned";
        }
    }
    EXPECT_GT(before_call, 10);
    EXPECT_GT(after_return, 10);

    // Every decision on the file, as the kernel reported it: one policy's rule, never a mix.
    const auto seen = events.barrier();
    std::set<std::pair<std::string, std::uint32_t>> kinds;
    int decisions = 0;
    for (const auto& e : seen) {
        if (path_of(e) != f.secret.string())
            continue;
        ++decisions;
        kinds.insert({cordon_fields(e)["verdict"].get<std::string>(), cordon_fields(e)["rule_id"].get<std::uint32_t>()});
    }
    EXPECT_GE(decisions, before_call + after_return - 1);
    ASSERT_EQ(kinds.size(), 2u) << "every decision was the old policy's or the new one's";
    EXPECT_EQ(kinds.begin()->first, "audit");
    EXPECT_EQ(std::next(kinds.begin())->first, "deny");
    EXPECT_NE(kinds.begin()->second, std::next(kinds.begin())->second);
    const auto status = d.call(R"({"v":1,"op":"status"})");
    EXPECT_EQ(status["lost_events"], 0) << "every decision was seen";
    EXPECT_EQ(status["policies"], 1) << "the old policy is gone";

    const auto after = only_agent(d.call(R"({"v":1,"op":"agents"})")["agents"]);
    EXPECT_EQ(after["policy"]["id"], reply["new_policy"]);
    EXPECT_EQ(after["policy"]["file"], "new.yaml");
    EXPECT_EQ(after["score"], 998 - refused_count) << "the score survived the swap, exactly";
    ASSERT_EQ(actions(d, "apply").size(), 1u);
    EXPECT_EQ(actions(d, "apply")[0]["policy"]["file"], "new.yaml");
}

// An invalid policy is an error and changes nothing: same policy id, same verdicts.
TEST_P(LiveControlTest, AnInvalidPolicyChangesNothing)
{
    Files f;
    Daemon d(GetParam());
    auto cg = make_test_cgroup();
    ASSERT_TRUE(d.attach(cg.path(), deny_policy(f.secret), "inv", f.dir.string()).value("ok", false));
    const auto before = only_agent(d.call(R"({"v":1,"op":"agents"})")["agents"]);
    for (const std::string& bad :
         {std::string("not: [valid"),
          policy_text("bad", "      - {path: relative/path, access: read, action: deny}\n"),
          policy_text("bad", "      - {path: /a, access: read, action: deny}\n"
                             "      - {path: /a, access: read, action: allow}\n")}) {
        const auto r = d.call(json{{"v", 1}, {"op", "apply"}, {"name", "inv"},
                                   {"policy", {{"file", "bad.yaml"}, {"text", bad}}}}
                                  .dump());
        EXPECT_FALSE(r.value("ok", true)) << bad;
        EXPECT_NE(r.value("error", "").find("nothing was changed"), std::string::npos) << r.dump();
    }
    const auto after = only_agent(d.call(R"({"v":1,"op":"agents"})")["agents"]);
    EXPECT_EQ(after["policy"], before["policy"]);
    EXPECT_EQ(d.call(R"({"v":1,"op":"status"})")["policies"], 1);
    EXPECT_TRUE(refused(wait_exit(spawn_in(cg.path().string(), [&] { return try_open(f.secret); }))));
    EXPECT_EQ(wait_exit(spawn_in(cg.path().string(), [&] { return try_open(f.open); })), exited(0));
    EXPECT_EQ(actions(d, "apply").size(), 3u) << "refused applies are recorded too";
    EXPECT_FALSE(d.call(json{{"v", 1}, {"op", "apply"}, {"name", "nosuch"},
                             {"policy", {{"file", "p.yaml"}, {"text", deny_policy(f.secret)}}}}
                            .dump())
                     .value("ok", true));
}

// Audit lets a denied access through and reports it; enforce refuses it again.
TEST_P(LiveControlTest, ModeSwitchesBetweenEnforceAndAudit)
{
    Files f;
    Daemon d(GetParam());
    auto cg = make_test_cgroup();
    ASSERT_TRUE(d.attach(cg.path(), deny_policy(f.secret), "md", f.dir.string()).value("ok", false));
    Subscription events(d, "md");
    const auto probe = [&] {
        return wait_exit(spawn_in(cg.path().string(), [&] { return try_open(f.secret); }));
    };
    EXPECT_TRUE(refused(probe()));
    ASSERT_TRUE(d.call(request("mode", "md", {{"mode", "audit"}}).dump()).value("ok", false));
    EXPECT_EQ(only_agent(d.call(R"({"v":1,"op":"agents"})")["agents"])["mode"], "audit");
    EXPECT_EQ(probe(), exited(0)) << "audit mode lets it through";
    ASSERT_TRUE(d.call(request("mode", "md", {{"mode", "enforce"}}).dump()).value("ok", false));
    EXPECT_TRUE(refused(probe()));
    std::vector<std::string> verdicts;
    for (const auto& e : events.barrier())
        verdicts.push_back(cordon_fields(e)["verdict"]);
    EXPECT_EQ(verdicts, (std::vector<std::string>{"deny", "audit", "deny"}));
    EXPECT_EQ(actions(d, "mode").size(), 2u);
    EXPECT_FALSE(d.call(request("mode", "md", {{"mode", "off"}}).dump()).value("ok", true));
}

INSTANTIATE_TEST_SUITE_P(Lsm, LsmLiveControlTest, ::testing::Values(CORDON_BACKEND_LSM, CORDON_BACKEND_FMOD_RET),
                         [](const auto& tp) { return std::string(bpf::backend_name(tp.param)); });

INSTANTIATE_TEST_SUITE_P(Backends, LiveControlTest,
                         ::testing::Values(CORDON_BACKEND_LSM, CORDON_BACKEND_FMOD_RET, CORDON_BACKEND_COMPAT),
                         [](const auto& tp) { return std::string(bpf::backend_name(tp.param)); });

} // namespace
} // namespace cordon::testing
