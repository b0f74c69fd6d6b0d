// SPDX-License-Identifier: Apache-2.0
// cordond on the real kernel: attach and detach, a SIGKILL of the daemon while an agent works,
// who may use the API, one program set for many agents, and teardown. Every test starts the
// real daemon on a socket, registry and pin directory of its own.
#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <functional>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include <gtest/gtest.h>

#include "common/error.h"
#include "daemon_util.h"
#include "common/backend.h"
#include "kernel_test_util.h"

namespace cordon::testing {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

class DaemonTest : public ::testing::TestWithParam<cordon_backend> {
protected:
    void SetUp() override
    {
        if (skip_unless_backend(GetParam()))
            GTEST_SKIP() << "the kernel cannot run this backend; the VM tier runs it";
    }
};

TEST_P(DaemonTest, AttachEnforcesOnARunningProcessAndDetachReleasesIt)
{
    Files f;
    Daemon d(GetParam());
    auto cg = make_test_cgroup();
    // Already running when attached: it opens the secret each time the test asks.
    int ask[2], answer[2];
    ASSERT_EQ(::pipe(ask), 0);
    ASSERT_EQ(::pipe(answer), 0);
    const pid_t worker = spawn_in(cg.path().string(), [&] {
        ::close(ask[1]); // so that the test closing its end ends this loop
        ::close(answer[0]);
        for (char c; ::read(ask[0], &c, 1) == 1;) {
            // A child per attempt: on compat a denial kills the process that asked.
            const pid_t p = ::fork();
            if (p == 0)
                ::_exit(try_open(f.secret));
            const Exit e = wait_exit(p);
            const char r = e == exited(0) ? 'y' : refused(e) ? 'n' : '?';
            (void)!::write(answer[1], &r, 1);
        }
        return 0;
    });
    const auto attempt = [&] {
        char c = 'x', r = 0;
        EXPECT_EQ(::write(ask[1], &c, 1), 1);
        EXPECT_EQ(::read(answer[0], &r, 1), 1);
        return r;
    };
    EXPECT_EQ(attempt(), 'y') << "before attach";
    const auto reply = d.attach(cg.path(), deny_policy(f.secret), "attached", f.dir.string());
    ASSERT_TRUE(reply.value("ok", false)) << reply.dump();
    EXPECT_EQ(reply["agent"]["processes"], 1);
    EXPECT_EQ(attempt(), 'n') << "right after attach returned";
    EXPECT_EQ(attempt(), 'n');
    const auto agents = d.call(R"({"v":1,"op":"agents"})");
    ASSERT_EQ(agents["agents"].size(), 1u);
    EXPECT_EQ(agents["agents"][0]["name"], "attached");
    EXPECT_EQ(agents["agents"][0]["cgroup"], cg.path().string());
    EXPECT_EQ(agents["agents"][0]["origin"], "attach");
    EXPECT_EQ(agents["agents"][0]["policy"]["sha256"].get<std::string>().size(), 64u);
    ASSERT_TRUE(d.detach("attached").value("ok", false));
    EXPECT_EQ(attempt(), 'y') << "after detach";
    EXPECT_TRUE(fs::exists(cg.path())) << "detach must leave an attached cgroup alone";
    ::close(ask[1]);
    EXPECT_EQ(wait_exit(worker), exited(0)) << "detach must leave its processes alone";
    ::close(ask[0]);
    ::close(answer[0]);
    ::close(answer[1]);
}

// The agent loops on a denied and an allowed open while the daemon is SIGKILLed and started
// again: every attempt is counted, and no denied one succeeds at any moment.
TEST_P(DaemonTest, EnforcementOutlivesASigkilledDaemon)
{
    Files f;
    Daemon d(GetParam());
    auto cg = make_test_cgroup();
    ASSERT_TRUE(d.attach(cg.path(), deny_policy(f.secret), "survivor", f.dir.string())
                    .value("ok", false));
    int denied_ok = 0, denied_refused = 0, allowed_ok = 0, allowed_failed = 0;
    const auto round = [&] {
        const Exit a = wait_exit(spawn_in(cg.path().string(), [&] { return try_open(f.secret); }));
        const Exit b = wait_exit(spawn_in(cg.path().string(), [&] { return try_open(f.open); }));
        (refused(a) ? denied_refused : denied_ok)++;
        (b == exited(0) ? allowed_ok : allowed_failed)++;
    };
    for (int i = 0; i < 20; ++i)
        round();
    d.kill9();
    for (int i = 0; i < 20; ++i)
        round(); // no daemon at all
    std::thread restart([&] { d.start(); });
    for (int i = 0; i < 20; ++i)
        round(); // while it starts and adopts the pins
    restart.join();
    for (int i = 0; i < 20; ++i)
        round();
    EXPECT_EQ(denied_ok, 0);
    EXPECT_EQ(denied_refused, 80);
    EXPECT_EQ(allowed_ok, 80);
    EXPECT_EQ(allowed_failed, 0);
    const auto agents = d.call(R"({"v":1,"op":"agents"})");
    ASSERT_EQ(agents["agents"].size(), 1u) << agents.dump();
    EXPECT_EQ(agents["agents"][0]["name"], "survivor");
    EXPECT_TRUE(d.call(R"({"v":1,"op":"status"})")["daemon"]["adopted_pinned_state"].get<bool>());
    ASSERT_TRUE(d.detach("survivor").value("ok", false));
}

// An attached agent outlives its cgroup, and a daemon restart: it waits for its path, with its
// kernel entry and policy kept; only a detach ends it.
TEST_P(DaemonTest, AnAttachedAgentWhoseCgroupIsGoneWaitsAcrossARestart)
{
    Files f;
    Daemon d(GetParam());
    fs::path gone;
    {
        auto cg = make_test_cgroup();
        gone = cg.path();
        ASSERT_TRUE(d.attach(cg.path(), deny_policy(f.secret), "ephemeral", f.dir.string())
                        .value("ok", false));
        d.kill9();
    } // the cgroup is removed while no daemon runs
    d.start();
    const auto agents = d.call(R"({"v":1,"op":"agents"})")["agents"];
    ASSERT_EQ(agents.size(), 1u);
    EXPECT_EQ(agents[0]["state"], "waiting");
    EXPECT_EQ(d.pinned().agents().size(), 1u) << "its kernel entry stays";
    ASSERT_TRUE(d.detach("ephemeral").value("ok", false));
    EXPECT_TRUE(d.pinned().agents().empty()) << "the kernel entry goes with the detach";
    EXPECT_TRUE(d.pinned().policy_ids().empty()) << "and its policy";
    EXPECT_FALSE(d.pinned().path_agent("/" + gone.lexically_relative(cgroup2().mount_point)
                                                 .string())
                     .has_value())
        << "and its path";
}

// Who may use the API: never a process inside an agent, whatever its uid; not a user outside
// root and group cordon; malformed requests change nothing.
TEST_P(DaemonTest, RefusesCallersInsideAnAgentAndStrangers)
{
    Files f;
    Daemon d(GetParam());
    auto cg = make_test_cgroup();
    ASSERT_TRUE(d.attach(cg.path(), deny_policy(f.secret), "caller", f.dir.string())
                    .value("ok", false));
    const std::string sock = d.socket().string();
    // Connects and sends a ping: 0 when the daemon answered ok, 1 when it refused in its reply,
    // or the connect errno (EPERM: refused by the kernel; EACCES: by the socket's mode).
    const auto probe = [sock](std::optional<uid_t> uid) {
        return [sock, uid]() -> int {
            if (uid && ::setuid(*uid) != 0)
                return 98;
            const int fd = connect_unix(sock);
            if (fd < 0)
                return errno;
            // A refusal may close the connection before the ping is written (EPIPE): that is a
            // refusal too; only an ok reply counts as being let in.
            ::signal(SIGPIPE, SIG_IGN);
            const char ping[] = "{\"v\":1,\"op\":\"ping\"}\n";
            (void)!::write(fd, ping, sizeof(ping) - 1);
            char buf[512] = {};
            const ssize_t n = ::read(fd, buf, sizeof(buf) - 1);
            return n > 0 && std::strstr(buf, "\"ok\":true") ? 0 : 1;
        };
    };
    const bool lsm = runs_lsm_programs(GetParam());
    // Root inside the agent: the kernel refuses the connect on lsm, the daemon everywhere.
    EXPECT_EQ(wait_exit(spawn_in(cg.path().string(), probe(std::nullopt))),
              exited(lsm ? EPERM : 1));
    // An unprivileged user inside the agent: the socket's mode already refuses it.
    EXPECT_EQ(wait_exit(spawn_in(cg.path().string(), probe(65534))), exited(EACCES));
    // A stranger outside every agent, with the socket opened to all: the daemon refuses it.
    ASSERT_EQ(::chmod(sock.c_str(), 0666), 0);
    EXPECT_EQ(wait_exit(spawn_in(std::nullopt, probe(65534))), exited(1));
    ASSERT_EQ(::chmod(sock.c_str(), 0600), 0);
    // Root outside every agent may.
    EXPECT_EQ(wait_exit(spawn_in(std::nullopt, probe(std::nullopt))), exited(0));

    // A connection made outside and then used from inside the agent (inherited across fork,
    // or passed): every request is judged by the process that sent it.
    {
        auto c = d.connect();
        const int fd = c.fd();
        const Exit e = wait_exit(spawn_in(cg.path().string(), [fd] {
            ::signal(SIGPIPE, SIG_IGN);
            const char req[] = "{\"v\":1,\"op\":\"detach\",\"name\":\"caller\"}\n";
            (void)!::write(fd, req, sizeof(req) - 1);
            char buf[512] = {};
            const ssize_t n = ::read(fd, buf, sizeof(buf) - 1);
            return n > 0 && std::strstr(buf, "\"ok\":true") ? 0 : 1;
        }));
        EXPECT_EQ(e, exited(1)) << "a request sent from inside the agent must be refused";
    }
    for (const std::string& bad :
         {std::string("not json"), std::string("[1,2]"), std::string(R"({"op":"agents"})"),
          std::string(R"({"v":2,"op":"agents"})"), std::string(R"({"v":1,"op":"explode"})"),
          std::string(R"({"v":1,"op":"detach"})"),
          std::string(R"({"v":1,"op":"detach","name":"caller","extra":1})"),
          std::string(R"({"v":1,"op":"detach","name":7})"),
          std::string(R"({"v":1,"op":"attach","cgroup":"/","policy":{"file":"x","text":"x"}})")}) {
        const auto r = d.call(bad);
        EXPECT_FALSE(r.value("ok", true)) << bad;
        EXPECT_FALSE(r.value("error", std::string()).empty()) << bad;
    }
    // Longer than any request may be: an error reply, then the connection is closed.
    {
        auto c = d.connect();
        const std::string huge(api::kMaxRequestBytes + 4096, 'x');
        size_t sent = 0;
        while (sent < huge.size()) {
            const ssize_t n = ::send(c.fd(), huge.data() + sent, huge.size() - sent, MSG_NOSIGNAL);
            if (n <= 0)
                break;
            sent += static_cast<size_t>(n);
        }
        bool refused_it = false;
        try {
            const auto r = c.next(10000);
            refused_it = r && !r->value("ok", true);
        } catch (const Error&) {
            refused_it = true; // closed
        }
        EXPECT_TRUE(refused_it);
    }
    const auto agents = d.call(R"({"v":1,"op":"agents"})");
    ASSERT_EQ(agents["agents"].size(), 1u) << "bad requests must change nothing";
    EXPECT_EQ(wait_exit(spawn_in(cg.path().string(), [&] { return try_open(f.secret); })),
              lsm ? exited(EPERM) : killed_by(SIGKILL));
}

TEST_P(DaemonTest, ManyAgentsShareOneProgramSetAndTeardownLeavesNothing)
{
    Files f;
    const auto before = loaded_program_ids();
    std::vector<std::uint32_t> ours;
    {
        Daemon d(GetParam());
        for (auto id : loaded_program_ids())
            if (std::find(before.begin(), before.end(), id) == before.end())
                ours.push_back(id);
        const auto programs = d.call(R"({"v":1,"op":"status"})")["programs"]
                                  .get<std::vector<std::uint32_t>>();
        EXPECT_EQ(programs.size(), ours.size());
        auto a = make_test_cgroup();
        auto b = make_test_cgroup();
        ASSERT_TRUE(d.attach(a.path(), deny_policy(f.secret, "one"), "one", f.dir.string())
                        .value("ok", false));
        ASSERT_TRUE(d.attach(b.path(), deny_policy(f.open, "two"), "two", f.dir.string())
                        .value("ok", false));
        // Different policies, one program set: no program was loaded for either agent.
        std::vector<std::uint32_t> now;
        for (auto id : loaded_program_ids())
            if (std::find(before.begin(), before.end(), id) == before.end())
                now.push_back(id);
        EXPECT_EQ(now, ours);
        EXPECT_EQ(d.call(R"({"v":1,"op":"status"})")["programs"].get<std::vector<std::uint32_t>>(),
                  programs);
        EXPECT_EQ(d.pinned().policy_ids().size(), 2u);
        // Each decides by its own policy.
        const bool lsm = runs_lsm_programs(GetParam());
        const Exit no = lsm ? exited(EPERM) : killed_by(SIGKILL);
        EXPECT_EQ(wait_exit(spawn_in(a.path().string(), [&] { return try_open(f.secret); })), no);
        EXPECT_EQ(wait_exit(spawn_in(a.path().string(), [&] { return try_open(f.open); })),
                  exited(0));
        EXPECT_EQ(wait_exit(spawn_in(b.path().string(), [&] { return try_open(f.secret); })),
                  exited(0));
        EXPECT_EQ(wait_exit(spawn_in(b.path().string(), [&] { return try_open(f.open); })), no);
        // Agents never nest.
        const auto nested = d.attach(a.path(), deny_policy(f.secret), "again", f.dir.string());
        EXPECT_FALSE(nested.value("ok", true));
        d.stop();
        EXPECT_EQ(d.teardown(), 0);
        EXPECT_FALSE(fs::exists(d.pin_dir())) << "teardown must remove the pins";
    }
    using namespace std::chrono;
    std::vector<std::uint32_t> left;
    for (auto deadline = steady_clock::now() + seconds(15); steady_clock::now() < deadline;
         std::this_thread::sleep_for(milliseconds(100))) {
        left.clear();
        const auto now = loaded_program_ids();
        for (auto id : ours)
            if (std::find(now.begin(), now.end(), id) != now.end())
                left.push_back(id);
        if (left.empty())
            break;
    }
    EXPECT_TRUE(left.empty()) << left.size() << " of cordond's programs are still loaded";
}

// `cordon run` with a daemon: the agent is the daemon's (listed, decided by its program set),
// the command's status comes back as embedded, and the agent ends with its `cordon run`.
TEST_P(DaemonTest, RunRegistersWithTheDaemonAndEndsWithIt)
{
    Files f;
    Daemon d(GetParam());
    std::ofstream(f.dir / "p.yaml") << deny_policy(f.secret, "run");
    const std::string policy = (f.dir / "p.yaml").string();
    const auto [status, out] = run_cordon(
        d, {"run", "--policy", policy, "--name", "ran", "--", "/bin/sh", "-c",
            "cat " + f.secret.string() + " >/dev/null 2>&1; echo denied=$?; cat " +
                f.open.string()});
    EXPECT_EQ(status, 0);
    EXPECT_EQ(out, std::string("denied=") + (runs_lsm_programs(GetParam()) ? "1" : "137") + "\no");
    EXPECT_TRUE(agents_until(d, [](const json& a) { return a.empty(); }))
        << "the agent ends with its command";

    // --detach: it runs on under the daemon, which removes it once its processes are gone.
    const auto [dstatus, name] =
        run_cordon(d, {"run", "--detach", "--policy", policy, "--name", "bg", "--", "/bin/sh",
                       "-c", "exec sleep 60 >/dev/null"}); // not holding run_cordon's pipe
    EXPECT_EQ(dstatus, 0);
    EXPECT_EQ(name, "bg\n");
    const auto cgroup = cgroup2().mount_point / agents::kSubtree / "bg";
    EXPECT_TRUE(agents_until(d, [](const json& a) {
        return a.size() == 1 && a[0]["name"] == "bg" && a[0]["detached"] == true &&
               a[0]["processes"] == 1;
    }));
    agents::kill_cgroup(cgroup);
    EXPECT_TRUE(agents_until(d, [](const json& a) { return a.empty(); }));
    EXPECT_FALSE(fs::exists(cgroup));

    // A `cordon run` that is killed takes its agent with it (fails closed).
    std::fflush(nullptr);
    const pid_t client = ::fork();
    if (client == 0) {
        ::setenv("CORDON_SOCKET", d.socket().c_str(), 1);
        ::execl(CORDON_BINARY, "cordon", "run", "--policy", policy.c_str(), "--name", "fg", "--",
                "sleep", "60", nullptr);
        ::_exit(127);
    }
    EXPECT_TRUE(agents_until(d, [](const json& a) { return a.size() == 1 && a[0]["processes"] == 1; }));
    ::kill(client, SIGKILL);
    wait_exit(client);
    EXPECT_TRUE(agents_until(d, [](const json& a) { return a.empty(); }));
    EXPECT_FALSE(fs::exists(cgroup2().mount_point / agents::kSubtree / "fg"));
}

// A policy whose one rule kills the agent when it reads `key`.
std::string kill_policy(const fs::path& key)
{
    return "apiVersion: cordon.dev/v1\nkind: AgentPolicy\nmetadata:\n  name: killer\n"
           "spec:\n  exec: {default: allow}\n  files:\n    default: allow\n    rules:\n"
           "      - {path: " + key.string() + ", access: read, action: kill}\n"
           "  network: {default: allow}\n";
}

// A kill rule ends every process of the agent, not only the one that hit it; also when the same
// cgroup is attached again after an earlier kill.
TEST_P(DaemonTest, AKillRuleEndsTheWholeAgentEachTimeItIsAttached)
{
    Files f;
    Daemon d(GetParam());
    auto cg = make_test_cgroup();
    for (const char* name : {"first", "second"}) {
        ASSERT_TRUE(d.attach(cg.path(), kill_policy(f.secret), name, f.dir.string())
                        .value("ok", false));
        const pid_t sleeper = spawn_in(cg.path().string(), [] {
            ::pause();
            return 0;
        });
        const Exit hit = wait_exit(spawn_in(cg.path().string(), [&] { return try_open(f.secret); }));
        EXPECT_EQ(hit, killed_by(SIGKILL)) << name;
        EXPECT_EQ(wait_exit(sleeper), killed_by(SIGKILL)) << name << ": the rest of the agent";
        ASSERT_TRUE(d.detach(name).value("ok", false));
    }
}

// cordond is gone while a `cordon run` agent hits a kill rule: the `cordon run` carries the kill
// out itself, from the pinned maps, as an embedded run does.
TEST_P(DaemonTest, ARunCarriesOutAKillVerdictWhileTheDaemonIsDown)
{
    Files f;
    Daemon d(GetParam());
    std::ofstream(f.dir / "p.yaml") << kill_policy(f.secret);
    const auto trigger = f.dir / "go";
    std::fflush(nullptr);
    const pid_t client = ::fork();
    if (client == 0) {
        ::setenv("CORDON_SOCKET", d.socket().c_str(), 1);
        // After the kill rule, a loop of shell builtins: no hook sees it (on lsm every later
        // access is refused, so an exec would end the shell by itself), only cgroup.kill ends it.
        const std::string script = "while [ ! -e " + trigger.string() + " ]; do sleep 0.05; done; cat " +
                                   f.secret.string() + " >/dev/null 2>&1; i=0; while [ $i -lt 3000000 ]; "
                                   "do i=$((i+1)); done";
        ::execl(CORDON_BINARY, "cordon", "run", "--policy", (f.dir / "p.yaml").c_str(), "--name",
                "doomed", "--", "/bin/sh", "-c", script.c_str(), nullptr);
        ::_exit(127);
    }
    // Running: the shell, and now and then its sleep.
    ASSERT_TRUE(agents_until(d, [](const json& a) { return a.size() == 1 && a[0]["processes"] >= 1; }));
    d.kill9();
    std::this_thread::sleep_for(std::chrono::milliseconds(300)); // the client notices
    std::ofstream(trigger) << "";
    // Killed (137) before the loop ends on its own; without the kill it exits 0.
    EXPECT_EQ(wait_exit(client), exited(128 + SIGKILL));
    d.start();
}

// 1,000 agents, each with a policy of its own, loaded at once in one program set: each is decided
// by its own policy and no other.
TEST_P(DaemonTest, AThousandAgentsWithDifferentPolicies)
{
    constexpr int kAgents = 1000;
    Files f;
    Daemon d(GetParam());
    const auto programs = d.call(R"({"v":1,"op":"status"})")["programs"];
    std::vector<agents::Cgroup> cgs;
    for (int i = 0; i < kAgents; ++i) {
        cgs.push_back(make_test_cgroup());
        std::ofstream(f.dir / ("f" + std::to_string(i))) << i;
        const auto r = d.attach(cgs.back().path(), deny_policy(f.dir / ("f" + std::to_string(i)),
                                                               "p" + std::to_string(i)),
                                "a" + std::to_string(i), f.dir.string());
        ASSERT_TRUE(r.value("ok", false)) << i << ": " << r.dump();
    }
    const auto st = d.call(R"({"v":1,"op":"status"})");
    EXPECT_EQ(st["agents"], kAgents);
    EXPECT_EQ(st["policies"], kAgents);
    EXPECT_EQ(st["programs"], programs) << "one program set whatever the number of agents";
    const Exit no = runs_lsm_programs(GetParam()) ? exited(EPERM) : killed_by(SIGKILL);
    for (int i : {0, 1, 499, 998, 999}) {
        const auto mine = f.dir / ("f" + std::to_string(i));
        const auto other = f.dir / ("f" + std::to_string((i + 1) % kAgents));
        EXPECT_EQ(wait_exit(spawn_in(cgs[i].path().string(), [&] { return try_open(mine); })), no)
            << "agent " << i;
        EXPECT_EQ(wait_exit(spawn_in(cgs[i].path().string(), [&] { return try_open(other); })),
                  exited(0))
            << "agent " << i;
    }
    EXPECT_EQ(try_open(f.dir / "f0"), 0) << "a process in no agent is decided by none";
}

// A systemd service that restarts gets a new cgroup at the same path: the guard follows it.
TEST_P(DaemonTest, AnAttachedServiceStaysGuardedAcrossARestart)
{
    Files f;
    Daemon d(GetParam());
    auto cg = make_test_cgroup();
    const auto path = cg.path();
    ASSERT_TRUE(d.attach(path, deny_policy(f.secret), "svc", f.dir.string()).value("ok", false));
    const auto old_id = cg.id();
    ASSERT_EQ(::rmdir(path.c_str()), 0);
    ASSERT_EQ(::mkdir(path.c_str(), 0755), 0);
    const auto new_id = agents::cgroup_id(path);
    ASSERT_NE(new_id, old_id);
    EXPECT_TRUE(agents_until(d, [&](const json& a) {
        return a.size() == 1 && a[0]["cgroup_id"] == new_id;
    }));
    const Exit no = runs_lsm_programs(GetParam()) ? exited(EPERM) : killed_by(SIGKILL);
    EXPECT_EQ(wait_exit(spawn_in(path.string(), [&] { return try_open(f.secret); })), no);
    EXPECT_FALSE(d.pinned().cgroup_agent(old_id).has_value()) << "the old cgroup is unbound";
    EXPECT_TRUE(d.pinned().cgroup_agent(new_id).has_value()) << "the new one is bound";
    ASSERT_TRUE(d.detach("svc").value("ok", false));
    EXPECT_FALSE(d.pinned().cgroup_agent(new_id).has_value()) << "a detach unbinds it";
}

INSTANTIATE_TEST_SUITE_P(Backends, DaemonTest,
                         ::testing::Values(CORDON_BACKEND_LSM, CORDON_BACKEND_FMOD_RET, CORDON_BACKEND_COMPAT),
                         [](const auto& tp) { return std::string(bpf::backend_name(tp.param)); });

} // namespace
} // namespace cordon::testing
