// SPDX-License-Identifier: Apache-2.0
// The control plane under attack (issue 24), on the real cordond and the real kernel: a request
// whose sender's pid is reused before cordond reads it, the metrics endpoint (inside an agent,
// slow connections, a held port, a shared port, series of detached agents), the socket's parent
// directory, detach of a frozen agent, grant paths with "..", and the walls the kernel keeps
// between an agent's tasks and around descriptors passed into an agent (lsm and fmod_ret).
//
// Each test says what the old behaviour was: the exploit a hostile review showed against it.
#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <thread>

#include <gtest/gtest.h>

#include "common/error.h"
#include "daemon_util.h"
#include "kernel_test_util.h"

namespace cordon::testing {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using namespace std::chrono_literals;

// Whether this kernel hands out sender pidfds (SO_PASSPIDFD, Linux 6.5).
bool kernel_has_sender_pidfds()
{
    const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    const int one = 1;
    const bool ok = ::setsockopt(fd, SOL_SOCKET, 76 /* SO_PASSPIDFD */, &one, sizeof(one)) == 0;
    ::close(fd);
    return ok;
}

// A process outside every agent that holds pid number `want` (clone3 with set_tid, root only),
// pausing until killed; -1 when the number could not be taken.
pid_t take_pid(pid_t want)
{
    clone_args args{};
    args.exit_signal = SIGCHLD;
    pid_t tid = want;
    args.set_tid = reinterpret_cast<std::uint64_t>(&tid);
    args.set_tid_size = 1;
    const long r = ::syscall(SYS_clone3, &args, sizeof(args));
    if (r == 0) {
        for (;;)
            ::pause();
    }
    return static_cast<pid_t>(r);
}

std::string policy_yaml(const fs::path& secret, const std::string& name, const std::string& spec_extra = "")
{
    return "apiVersion: cordon.dev/v1\nkind: AgentPolicy\nmetadata:\n  name: " + name +
           "\nspec:\n" + spec_extra + "  exec: {default: allow}\n  files:\n    default: allow\n"
           "    rules:\n      - {path: " + secret.string() + ", access: read, action: deny}\n"
           "  network:\n    default: allow\n    rules:\n"
           "      - {cidr: 10.66.0.0/16, action: deny}\n";
}

std::string file_text(const fs::path& p)
{
    std::ifstream in(p);
    return {std::istreambuf_iterator<char>(in), {}};
}

class ControlPlaneTest : public ::testing::TestWithParam<cordon_backend> {
protected:
    void SetUp() override
    {
        if (skip_unless_backend(GetParam()))
            GTEST_SKIP() << "the kernel cannot run this backend; the VM tier runs it";
    }
};

// Old behaviour: the request was judged by the sender's pid number, looked up in /proc when
// cordond read it. A process in the agent sent `detach` and exited while cordond was stopped; a
// process outside took its pid; cordond detached the agent and blamed that process.
TEST_P(ControlPlaneTest, ARequestWhosePidIsReusedBeforeItIsReadIsRefused)
{
    // lsm and fmod_ret: the kernel refuses the connect itself. compat: cordond, by the sender's
    // pidfd (6.5+), or before 6.5 because the process with that number does not hold the
    // connection's socket.
    const bool lsm = runs_lsm_programs(GetParam());
    std::cout << "sender pidfds (SO_PASSPIDFD): " << (kernel_has_sender_pidfds() ? "yes" : "no")
              << "\n";
    Files f;
    Daemon d(GetParam());
    auto cg = make_test_cgroup();
    ASSERT_TRUE(d.attach(cg.path(), policy_yaml(f.secret, "reuse"), "reuse", f.dir.string())
                    .value("ok", false));
    const std::string sock = d.socket().string();
    ASSERT_EQ(::kill(d.pid(), SIGSTOP), 0); // the window: the request waits unread
    const pid_t sender = spawn_in(cg.path().string(), [sock] {
        const int fd = connect_unix(sock);
        if (fd < 0)
            return errno;
        const char req[] = "{\"v\":1,\"op\":\"detach\",\"name\":\"reuse\"}\n";
        return ::write(fd, req, sizeof(req) - 1) == sizeof(req) - 1 ? 0 : 98;
    });
    const Exit sent = wait_exit(sender);
    const pid_t impostor = take_pid(sender);
    ::kill(d.pid(), SIGCONT);
    ASSERT_EQ(impostor, sender) << "the test could not take the sender's pid: " << std::strerror(errno);
    // lsm and fmod_ret: the kernel refuses the connect itself; compat: cordond, by the pidfd.
    EXPECT_EQ(sent, exited(lsm ? EPERM : 0));
    if (!lsm) {
        EXPECT_TRUE(eventually([&] { return d.log().find("is gone") != std::string::npos; }, 10s))
            << d.log();
    }
    std::this_thread::sleep_for(300ms);
    const auto agents = d.call(R"({"v":1,"op":"agents"})");
    ::kill(impostor, SIGKILL);
    ::waitpid(impostor, nullptr, 0);
    ASSERT_EQ(agents["agents"].size(), 1u) << "the agent must stay attached: " << agents.dump();
    EXPECT_EQ(file_text(d.dir() / "actions.jsonl").find("\"op\":\"detach\""), std::string::npos)
        << "no detach was carried out, and none is blamed on the process that took the pid";
}

// Old behaviour: detach removed the agent's entries and left its cgroup frozen, with nothing of
// cordon's left to thaw it.
TEST_P(ControlPlaneTest, DetachingAFrozenAgentThawsIt)
{
    Files f;
    Daemon d(GetParam());
    auto cg = make_test_cgroup();
    ASSERT_TRUE(d.attach(cg.path(), policy_yaml(f.secret, "frz"), "frz", f.dir.string())
                    .value("ok", false));
    auto* ticks = shared_memory<std::atomic<std::uint64_t>>();
    const pid_t worker = spawn_in(cg.path().string(), [ticks] {
        for (;;) {
            ++*ticks;
            std::this_thread::sleep_for(5ms);
        }
        return 0;
    });
    ASSERT_TRUE(eventually([&] { return ticks->load() > 0; }));
    call_ok(d, request("freeze", "frz"));
    const auto events = cg.path() / "cgroup.events";
    ASSERT_NE(file_text(events).find("frozen 1"), std::string::npos);
    call_ok(d, request("detach", "frz"));
    EXPECT_TRUE(eventually([&] { return file_text(events).find("frozen 0") != std::string::npos; }, 10s))
        << "a detached agent's cgroup is thawed";
    const auto before = ticks->load();
    EXPECT_TRUE(eventually([&] { return ticks->load() > before; }, 10s)) << "and its processes run";
    ::kill(worker, SIGKILL);
    wait_exit(worker);
}

INSTANTIATE_TEST_SUITE_P(Backends, ControlPlaneTest,
                         ::testing::Values(CORDON_BACKEND_LSM, CORDON_BACKEND_FMOD_RET, CORDON_BACKEND_COMPAT),
                         [](const auto& tp) { return std::string(bpf::backend_name(tp.param)); });

int free_port()
{
    return 20000 + (::getpid() * 7 + static_cast<int>(::time(nullptr))) % 20000;
}

// A listening socket on 127.0.0.1:port with SO_REUSEPORT, as a squatter would make it; -1 when
// the bind fails (errno set).
int squat(int port)
{
    const int s = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    const int one = 1;
    ::setsockopt(s, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(static_cast<std::uint16_t>(port));
    ::inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    if (::bind(s, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) != 0 || ::listen(s, 8) != 0) {
        const int e = errno;
        ::close(s);
        errno = e;
        return -1;
    }
    return s;
}

// A connection to 127.0.0.1:port that sends nothing (a slow scraper); -1 if refused.
int idle_connection(int port)
{
    const int s = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(static_cast<std::uint16_t>(port));
    ::inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    if (::connect(s, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) != 0) {
        ::close(s);
        return -1;
    }
    return s;
}

json metrics_status(const Daemon& d)
{
    return d.call(R"({"v":1,"op":"status"})").value("metrics", json());
}

// Old behaviour: a process inside an agent (uid nobody) read every agent's scores and decisions,
// and a dozen connections that sent nothing made every scrape time out.
TEST(ControlPlaneHostTest, MetricsAreRefusedInsideAgentsAndSlowScrapersCannotStarveThem)
{
    Files f;
    const int port = free_port();
    Daemon d(host_backend(), {"--metrics-listen", "127.0.0.1:" + std::to_string(port)});
    auto cg = make_test_cgroup();
    ASSERT_TRUE(d.attach(cg.path(), policy_yaml(f.secret, "met"), "met", f.dir.string()).value("ok", false));
    ASSERT_TRUE(eventually([&] { return http_metrics(port).find("agent=\"met\"") != std::string::npos; }, 10s));
    for (const std::optional<uid_t> uid : {std::optional<uid_t>(), std::optional<uid_t>(65534)}) {
        const Exit e = wait_exit(spawn_in(cg.path().string(), [port, uid] {
            if (uid && ::setuid(*uid) != 0)
                return 98;
            return http_metrics(port).empty() ? 0 : 1;
        }));
        EXPECT_EQ(e, exited(0)) << "a scrape from inside the agent (uid " << (uid ? *uid : 0)
                                << ") is closed unanswered\n" << d.log();
    }
    // A socket made outside and carried in (inherited here; an attach or SCM_RIGHTS alike): its
    // holders' cgroups are looked at too.
    const int carried = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    const Exit e = wait_exit(spawn_in(cg.path().string(), [port, carried] {
        sockaddr_in sa{};
        sa.sin_family = AF_INET;
        sa.sin_port = htons(static_cast<std::uint16_t>(port));
        ::inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
        if (::connect(carried, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) != 0)
            return 2;
        const std::string req = "GET /metrics HTTP/1.0\r\n\r\n";
        (void)!::write(carried, req.data(), req.size());
        char buf[256];
        return ::read(carried, buf, sizeof(buf)) > 0 ? 1 : 0;
    }));
    ::close(carried);
    EXPECT_EQ(e, exited(0)) << "a socket made outside and used inside the agent gets nothing\n"
                            << d.log();
    EXPECT_GE(metrics_status(d).value("refused_inside_agents", 0), 3);
    std::vector<int> slow;
    for (int i = 0; i < 40; ++i)
        if (const int s = idle_connection(port); s >= 0)
            slow.push_back(s);
    EXPECT_NE(http_metrics(port).find("agent=\"met\""), std::string::npos)
        << "a scrape is answered while 40 connections send nothing";
    EXPECT_GE(metrics_status(d).value("closed_slow", 0), 24) << metrics_status(d).dump();
    for (const int s : slow)
        ::close(s);
}

// Old behaviour: an agent process holding the port while cordond restarted made cordond exit
// (EADDRINUSE); a root process sharing the port (the HTTP library set SO_REUSEPORT) answered
// most scrapes with its own numbers; a detached agent's series stayed for ever.
TEST(ControlPlaneHostTest, AHeldMetricsPortNeverStopsCordondAndNoOneSharesIt)
{
    Files f;
    const int port = free_port() + 1;
    const int held = squat(port);
    ASSERT_GE(held, 0) << std::strerror(errno);
    Daemon d(host_backend(), {"--metrics-listen", "127.0.0.1:" + std::to_string(port)});
    auto m = metrics_status(d);
    EXPECT_FALSE(m.value("listening", true)) << m.dump();
    EXPECT_NE(m.value("error", "").find("another process holds the port"), std::string::npos) << m.dump();
    ::close(held);
    EXPECT_TRUE(eventually([&] { return metrics_status(d).value("listening", false); }, 10s))
        << "cordond takes the port once it is free";
    const int second = squat(port);
    EXPECT_EQ(second, -1) << "no other socket may share the port";
    EXPECT_EQ(errno, EADDRINUSE);
    if (second >= 0)
        ::close(second);
    // Series of a detached agent go with it.
    auto cg = make_test_cgroup();
    ASSERT_TRUE(d.attach(cg.path(), policy_yaml(f.secret, "gone"), "gone", f.dir.string()).value("ok", false));
    wait_exit(spawn_in(cg.path().string(), [] { // a denied connect: a decision series
        const int s = ::socket(AF_INET, SOCK_DGRAM, 0);
        sockaddr_in sa{};
        sa.sin_family = AF_INET;
        sa.sin_port = htons(9);
        ::inet_pton(AF_INET, "10.66.1.1", &sa.sin_addr);
        return ::connect(s, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) == 0 ? 1 : 0;
    }));
    EXPECT_TRUE(eventually([&] {
        return http_metrics(port).find("cordon_decisions_total{agent=\"gone\"") != std::string::npos;
    }, 10s));
    call_ok(d, request("detach", "gone"));
    EXPECT_TRUE(eventually([&] {
        const auto t = http_metrics(port);
        return !t.empty() && t.find("agent=\"gone\"") == std::string::npos;
    }, 10s)) << http_metrics(port);
}

// Found by review: a process whose leader thread exited (a zombie, left where it was) while its
// other threads moved into an agent was judged by the leader's cgroup, and its request from
// inside the agent was carried out.
TEST(ControlPlaneHostTest, AProcessWithAThreadInsideAnAgentIsRefused)
{
    Files f;
    Daemon d(host_backend());
    auto cg = make_test_cgroup();
    ASSERT_TRUE(d.attach(cg.path(), policy_yaml(f.secret, "zl"), "zl", f.dir.string()).value("ok", false));
    const std::string procs = (cg.path() / "cgroup.procs").string();
    auto conn = d.connect();
    const int fd = ::dup(conn.fd());
    auto* verdict = shared_memory<std::atomic<int>>();
    verdict->store(-1);
    const pid_t p = ::fork();
    if (p == 0) {
        std::thread([fd, procs, verdict] {
            std::this_thread::sleep_for(100ms); // the leader has exited
            std::ofstream(procs) << ::syscall(SYS_gettid) << std::flush;
            const char req[] = "{\"v\":1,\"op\":\"mode\",\"name\":\"zl\",\"mode\":\"audit\"}\n";
            (void)!::write(fd, req, sizeof(req) - 1);
            char buf[512] = {};
            const ssize_t n = ::read(fd, buf, sizeof(buf) - 1);
            verdict->store(n > 0 && std::strstr(buf, "\"ok\":true") ? 0 : 1);
            ::_exit(0);
        }).detach();
        ::syscall(SYS_exit, 0); // this thread only, with no unwinding through the test body
        ::_exit(97);
    }
    ::close(fd);
    EXPECT_TRUE(eventually([&] { return verdict->load() >= 0; }, 10s));
    ::waitpid(p, nullptr, 0);
    EXPECT_EQ(verdict->load(), 1) << "the request of a thread inside the agent is refused";
    const auto agents = d.call(R"({"v":1,"op":"agents"})");
    EXPECT_EQ(agents["agents"][0].value("mode", ""), "enforce") << agents.dump();
}

// Old behaviour: cordond chmodded its socket's parent directory to 0755 whatever it was: with
// --socket /tmp/cordon.sock, /tmp lost its sticky bit for the whole host.
TEST(ControlPlaneHostTest, TheSocketDirectoryKeepsItsMode)
{
    Daemon d(host_backend());
    d.stop();
    ASSERT_EQ(::chmod(d.dir().c_str(), 01777), 0);
    d.start();
    struct stat st{};
    ASSERT_EQ(::stat(d.dir().c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 07777, 01777u) << "a directory cordond did not make keeps its mode";
    ::chmod(d.dir().c_str(), 0755);
}

// Old behaviour: a grant of "/dir/sub/../secret" allowed /dir/secret but was listed and
// reported as typed.
TEST(ControlPlaneHostTest, AGrantPathIsKeptListedAndReportedResolved)
{
    Files f;
    Daemon d(host_backend());
    auto cg = make_test_cgroup();
    ASSERT_TRUE(d.attach(cg.path(), policy_yaml(f.secret, "dots"), "dots", f.dir.string()).value("ok", false));
    fs::create_directories(f.dir / "sub");
    const std::string typed = (f.dir / "sub" / ".." / f.secret.filename()).string();
    const auto g = call_ok(d, request("grant", "dots", {{"kind", "read"}, {"target", typed}, {"ttl", "5m"}}));
    EXPECT_EQ(g["grant"]["target"], f.secret.string());
    EXPECT_EQ(call_ok(d, request("grants", "dots"))["grants"][0]["target"], f.secret.string());
    const auto log = file_text(d.dir() / "actions.jsonl");
    EXPECT_NE(log.find("\"target\":\"" + f.secret.string() + "\""), std::string::npos) << log;
    EXPECT_EQ(wait_exit(spawn_in(cg.path().string(), [&] { return try_open(f.secret); })), exited(0))
        << "and it allows what it says";
}

class TaskWallTest : public ::testing::TestWithParam<cordon_backend> {
protected:
    void SetUp() override
    {
        if (skip_unless_backend(GetParam()))
            GTEST_SKIP() << "the kernel cannot run this backend; the VM tier runs it";
    }
};

volatile char g_secret_bytes[64] = "bytes of the task's process";

struct Crossing {
    std::atomic<int> ptrace_attach{-1}, vm_read{-1}, proc_mem{-1}, getfd{-1};
};

// In the agent, outside every task: forks `target` (which the test binds to a task, and which
// holds `held` open at fd 100), waits for `go`, then reaches into it four ways. 0 or the errno.
int reach_into(int go_fd, int pid_pipe, const fs::path& held, Crossing* out)
{
    const pid_t target = ::fork();
    if (target == 0) { // says its pid once it holds the file at 100
        const int fd = ::open(held.c_str(), O_RDONLY | O_CLOEXEC);
        ::dup2(fd, 100);
        const pid_t self = ::getpid();
        (void)!::write(pid_pipe, &self, sizeof(self));
        for (;;)
            ::pause();
    }
    char c;
    if (::read(go_fd, &c, 1) != 1)
        return 9;
    out->ptrace_attach = ::ptrace(PTRACE_ATTACH, target, nullptr, nullptr) == 0 ? 0 : errno;
    if (out->ptrace_attach == 0) {
        ::waitpid(target, nullptr, __WALL);
        ::ptrace(PTRACE_DETACH, target, nullptr, nullptr);
    }
    char buf[16];
    iovec local{.iov_base = buf, .iov_len = sizeof(buf)};
    iovec remote{.iov_base = const_cast<char*>(g_secret_bytes), .iov_len = sizeof(buf)};
    out->vm_read = ::process_vm_readv(target, &local, 1, &remote, 1, 0) == sizeof(buf) ? 0 : errno;
    const int mem = ::open(("/proc/" + std::to_string(target) + "/mem").c_str(), O_RDONLY | O_CLOEXEC);
    out->proc_mem = mem >= 0 ? 0 : errno;
    if (mem >= 0)
        ::close(mem);
    const int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, target, 0));
    const int got = pidfd < 0 ? -1 : static_cast<int>(::syscall(SYS_pidfd_getfd, pidfd, 100, 0));
    out->getfd = got >= 0 ? 0 : errno;
    ::kill(target, SIGKILL);
    ::waitpid(target, nullptr, 0);
    return 0;
}

// Old behaviour (docs/api.md said so): a process of the agent outside a task read what the
// task's grant allowed through the task's process: ptrace, process_vm_readv, /proc/PID/mem,
// pidfd_getfd all worked across the task boundary. Under tasks.isolation: open they still do.
TEST_P(TaskWallTest, EachWayIntoAnotherTasksProcessIsRefusedAndRecorded)
{
    Files f;
    Daemon d(GetParam());
    for (const bool open : {true, false}) {
        SCOPED_TRACE(open ? "tasks.isolation: open" : "tasks.isolation: strict (the default)");
        const std::string name = open ? "open" : "strict";
        auto cg = make_test_cgroup();
        ASSERT_TRUE(d.attach(cg.path(),
                             policy_yaml(f.secret, name, open ? "  tasks: {isolation: open}\n" : ""),
                             name, f.dir.string())
                        .value("ok", false));
        Subscription events(d, name);
        auto* out = shared_memory<Crossing>();
        int go[2], pids[2];
        ASSERT_EQ(::pipe2(go, O_CLOEXEC), 0);
        ASSERT_EQ(::pipe2(pids, O_CLOEXEC), 0);
        const fs::path held = f.open;
        const pid_t prober = spawn_in(cg.path().string(), [&] { return reach_into(go[0], pids[1], held, out); });
        pid_t target = 0;
        ASSERT_EQ(::read(pids[0], &target, sizeof(target)), static_cast<ssize_t>(sizeof(target)));
        call_ok(d, request("task_begin", name, {{"id", "inner"}, {"pid", target}}));
        ASSERT_EQ(::write(go[1], "g", 1), 1);
        EXPECT_EQ(wait_exit(prober), exited(0));
        const int want = open ? 0 : EPERM;
        EXPECT_EQ(out->ptrace_attach.load(), want) << "ptrace(PTRACE_ATTACH)";
        EXPECT_EQ(out->vm_read.load(), want) << "process_vm_readv";
        // The kernel turns a refused ptrace check on /proc/PID/mem into EACCES (mm_access).
        EXPECT_EQ(out->proc_mem.load(), open ? 0 : EACCES) << "open /proc/PID/mem";
        EXPECT_EQ(out->getfd.load(), want) << "pidfd_getfd";
        int recorded = 0;
        for (const auto& e : events.barrier())
            if (cordon_fields(e)["hook"] == "task_cross") {
                ++recorded;
                EXPECT_EQ(cordon_fields(e)["verdict"], "deny");
                EXPECT_EQ(cordon_fields(e).value("other_pid", 0), target) << e.dump();
                EXPECT_NE(cordon_fields(e).value("other_task_id", 0), 0) << e.dump();
                EXPECT_EQ(cordon_fields(e).value("task_id", -1), 0) << "the prober is in no task";
            }
        if (open)
            EXPECT_EQ(recorded, 0);
        else
            EXPECT_GE(recorded, 4) << "each refused crossing is recorded, naming both tasks";
        ::close(go[0]);
        ::close(go[1]);
        ::close(pids[0]);
        ::close(pids[1]);
        call_ok(d, request("detach", name));
    }
}

// Receives one descriptor on `sock`: 0 when it arrived, else EPERM when the kernel dropped it
// (MSG_CTRUNC, no descriptor), 97 on other failures.
int receive_one(int sock)
{
    char byte;
    iovec iov{.iov_base = &byte, .iov_len = 1};
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))];
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof(control);
    if (::recvmsg(sock, &msg, MSG_CMSG_CLOEXEC) != 1)
        return 97;
    const cmsghdr* c = CMSG_FIRSTHDR(&msg);
    if (c && c->cmsg_type == SCM_RIGHTS)
        return 0;
    return (msg.msg_flags & MSG_CTRUNC) ? EPERM : 96;
}

void send_one(int sock, int fd)
{
    char byte = 'x';
    iovec iov{.iov_base = &byte, .iov_len = 1};
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof(control);
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    std::memcpy(CMSG_DATA(c), &fd, sizeof(int));
    (void)!::sendmsg(sock, &msg, 0);
}

// Old behaviour: a descriptor passed into an agent (SCM_RIGHTS) was used without any decision:
// a process outside the agent, or a task's process with a grant, handed over a file the
// receiver may not open.
TEST_P(TaskWallTest, ADeniedFilePassedInIsNotReceived)
{
    Files f;
    Daemon d(GetParam());
    auto cg = make_test_cgroup();
    ASSERT_TRUE(d.attach(cg.path(), policy_yaml(f.secret, "rx"), "rx", f.dir.string()).value("ok", false));
    Subscription events(d, "rx");
    // From outside the agent: the secret is refused, the open file is received.
    int sv[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    const pid_t receiver = spawn_in(cg.path().string(), [&] {
        const int a = receive_one(sv[1]);
        const int b = receive_one(sv[1]);
        return (a == EPERM ? 0 : 1) + (b == 0 ? 0 : 2); // 1: the secret arrived; 2: the open file did not
    });
    const int secret = ::open(f.secret.c_str(), O_RDONLY | O_CLOEXEC);
    const int open_file = ::open(f.open.c_str(), O_RDONLY | O_CLOEXEC);
    send_one(sv[0], secret);
    send_one(sv[0], open_file);
    EXPECT_EQ(wait_exit(receiver), exited(0)) << "the secret is not received, the open file is";
    ::close(secret);
    ::close(open_file);
    ::close(sv[0]);
    ::close(sv[1]);
    // From a task whose grant allows the secret, to a process of the agent in no task.
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    int go[2], pids[2];
    ASSERT_EQ(::pipe2(go, O_CLOEXEC), 0);
    ASSERT_EQ(::pipe2(pids, O_CLOEXEC), 0);
    const fs::path secret_path = f.secret;
    const pid_t outer = spawn_in(cg.path().string(), [&] {
        const pid_t inner = ::fork();
        if (inner == 0) { // bound to the task: opens the secret under its grant, passes it on
            char c;
            if (::read(go[0], &c, 1) != 1)
                ::_exit(9);
            const int fd = ::open(secret_path.c_str(), O_RDONLY | O_CLOEXEC);
            if (fd < 0)
                ::_exit(8);
            send_one(sv[0], fd);
            ::_exit(0);
        }
        (void)!::write(pids[1], &inner, sizeof(inner));
        const int r = receive_one(sv[1]);
        int st = 0;
        ::waitpid(inner, &st, 0);
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
            return 20 + (WIFEXITED(st) ? WEXITSTATUS(st) : 9);
        return r == EPERM ? 0 : 30 + (r == 0 ? 0 : 1);
    });
    pid_t inner = 0;
    ASSERT_EQ(::read(pids[0], &inner, sizeof(inner)), static_cast<ssize_t>(sizeof(inner)));
    call_ok(d, request("task_begin", "rx", {{"id", "holder"}, {"pid", inner}}));
    call_ok(d, request("grant", "rx", {{"kind", "read"}, {"target", f.secret.string()},
                                       {"ttl", "5m"}, {"task", "holder"}}));
    ASSERT_EQ(::write(go[1], "g", 1), 1);
    EXPECT_EQ(wait_exit(outer), exited(0))
        << "the task's process may open it; the process outside the task may not receive it";
    int refused_receives = 0;
    for (const auto& e : events.barrier())
        if (cordon_fields(e)["hook"] == "receive" && cordon_fields(e)["verdict"] == "deny" &&
            path_of(e) == f.secret.string())
            ++refused_receives;
    EXPECT_EQ(refused_receives, 2) << "each refused receive is recorded with the file's path";
    for (int fd : {go[0], go[1], pids[0], pids[1], sv[0], sv[1]})
        ::close(fd);
}

INSTANTIATE_TEST_SUITE_P(Backends, TaskWallTest,
                         ::testing::Values(CORDON_BACKEND_LSM, CORDON_BACKEND_FMOD_RET),
                         [](const auto& tp) { return std::string(bpf::backend_name(tp.param)); });

} // namespace
} // namespace cordon::testing
