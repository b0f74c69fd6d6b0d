// SPDX-License-Identifier: Apache-2.0
// Whether a kill waits: through the real cordond, measured from the operator's side.
//
// 1. `cordon kill NAME` (the real CLI, started as a new process) from the command to an empty
//    cgroup, beside a bare `sh -c 'echo 1 > cgroup.kill'` of an agent of the same shape, in one
//    run, order alternating: an idle agent (1 process), a fork storm (an unprivileged user forking
//    as fast as it can, bounded by RLIMIT_NPROC 1,500), and 100 CPU-bound threads.
// 2. The kill request's reply time, send to reply on an open connection (p50, p99 of 50), for a
//    one-process agent: idle; while 10 other clients flood cordond with requests; while another
//    client applies 10,000-rule policies in a loop; and while another applies a policy whose
//    host names never resolve (cordond's resolver points at a socket that never answers).
// The section runs in a child with a mount namespace of its own, where /etc/resolv.conf names
// that socket: cordond, started there, inherits it; the host's resolver is untouched.
#include "live_control.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "agents/cgroup.h"
#include "common/clock.h"
#include "common/error.h"
#include "daemon_util.h"
#include "kernel_test_util.h"

namespace cordon::bench {

namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using namespace std::chrono_literals;

constexpr int kStormLimit = 1500;
constexpr unsigned kNobody = 65534;

enum class Shape { Idle, Storm, Threads };

const char* shape_name(Shape s)
{
    switch (s) {
    case Shape::Idle: return "idle (1 process)";
    case Shape::Storm: return "fork storm (1,500 processes, uid nobody)";
    case Shape::Threads: return "100 CPU-bound threads";
    }
    return "";
}

// Threads, not processes: the CPU-bound shape is one process of 101 threads.
std::size_t threads_in(const fs::path& cg)
{
    std::ifstream in(cg / "cgroup.threads");
    std::size_t n = 0;
    for (std::string l; std::getline(in, l);)
        ++n;
    return n;
}

// The agent's processes, started in cg; returns once the shape is reached (or 10 s passed).
void populate(const fs::path& cg, Shape shape)
{
    testing::spawn_in(cg.string(), [shape]() -> int {
        if (shape == Shape::Storm) {
            const rlimit lim{kStormLimit, kStormLimit};
            if (::setrlimit(RLIMIT_NPROC, &lim) != 0 || ::setgroups(0, nullptr) != 0 ||
                ::setgid(kNobody) != 0 || ::setuid(kNobody) != 0)
                return 1;
            for (;;)
                if (::fork() < 0)
                    ::sched_yield();
        }
        if (shape == Shape::Threads)
            for (int i = 0; i < 100; ++i)
                std::thread([] {
                    std::atomic<unsigned long> x{0};
                    for (;;)
                        x.fetch_add(1, std::memory_order_relaxed);
                }).detach();
        for (;;)
            ::pause();
    });
    const std::size_t want = shape == Shape::Storm ? kStormLimit * 9 / 10
                             : shape == Shape::Threads ? 101 : 1;
    const auto end = std::chrono::steady_clock::now() + 10s;
    while (threads_in(cg) < want && std::chrono::steady_clock::now() < end)
        std::this_thread::sleep_for(5ms);
}


// Runs argv as a new process with CORDON_SOCKET set; returns its pid.
pid_t start(const std::vector<std::string>& argv, const fs::path& socket)
{
    std::vector<char*> a;
    for (const auto& s : argv)
        a.push_back(const_cast<char*>(s.c_str()));
    a.push_back(nullptr);
    std::fflush(nullptr);
    const pid_t pid = ::fork();
    if (pid == 0) {
        ::setenv("CORDON_SOCKET", socket.c_str(), 1);
        const int null = ::open("/dev/null", O_WRONLY);
        ::dup2(null, 1);
        ::execv(a[0], a.data());
        ::_exit(127);
    }
    return pid;
}

double median(std::vector<double> v)
{
    std::sort(v.begin(), v.end());
    return v.empty() ? 0 : v[v.size() / 2];
}

double percentile(std::vector<double> v, double q)
{
    std::sort(v.begin(), v.end());
    return v.empty() ? 0 : v[std::min(v.size() - 1, static_cast<std::size_t>(q * v.size()))];
}

std::string policy(const std::string& name, int rules, const std::string& host = "")
{
    std::string y = "apiVersion: cordon.dev/v1\nkind: AgentPolicy\nmetadata:\n  name: " + name +
                    "\nspec:\n  exec: {default: allow}\n  files:\n    default: allow\n";
    if (rules > 0) {
        y += "    rules:\n";
        for (int i = 0; i < rules; ++i)
            y += fmt::format("      - {{path: /srv/bench/{}/d{}/, access: [write], action: deny}}\n",
                             name, i);
    }
    y += "  network:\n    default: allow\n";
    if (!host.empty())
        y += "    rules:\n      - {host: " + host + ", ports: [443], action: allow}\n";
    return y;
}

void attach(const testing::Daemon& d, const std::string& name, const fs::path& cg,
            const std::string& text)
{
    call_ok(d, {{"v", 1}, {"op", "attach"}, {"name", name}, {"cgroup", cg.string()},
                {"policy", {{"file", name + ".yaml"}, {"text", text}}}});
}

// Part 1: `cordon kill` from the command to an empty cgroup, against a bare cgroup.kill.
void command_to_empty(const testing::Daemon& d, int runs)
{
    std::printf("| agent | `cordon kill`: command to empty, median / max | bare `cgroup.kill` "
                "(sh): median / max | ratio of medians (target <= 1.10 under the storm) |\n"
                "|---|---|---|---|\n");
    for (const Shape shape : {Shape::Idle, Shape::Storm, Shape::Threads}) {
        std::vector<double> ours, bare;
        for (int run = 0; run < runs; ++run)
            for (int turn = 0; turn < 2; ++turn) {
                const bool daemon_turn = (turn == 0) == (run % 2 == 0);
                auto cg = testing::make_test_cgroup();
                const std::string name = fmt::format("kw-{}-{}", static_cast<int>(shape), run);
                if (daemon_turn)
                    attach(d, name, cg.path(), policy(name, 0));
                populate(cg.path(), shape);
                const auto t0 = monotonic_ns();
                const pid_t pid =
                    daemon_turn ? start({CORDON_BINARY, "kill", name}, d.socket())
                                : start({"/bin/sh", "-c", "echo 1 > " + (cg.path() / "cgroup.kill").string()},
                                        d.socket());
                wait_empty(cg.path());
                (daemon_turn ? ours : bare).push_back(static_cast<double>(monotonic_ns() - t0) / 1e6);
                ::waitpid(pid, nullptr, 0);
                if (daemon_turn)
                    call_ok(d, {{"v", 1}, {"op", "detach"}, {"name", name}});
            }
        std::printf("| %s | %.1f ms / %.1f ms | %.1f ms / %.1f ms | %.2f |\n", shape_name(shape),
                    median(ours), *std::max_element(ours.begin(), ours.end()), median(bare),
                    *std::max_element(bare.begin(), bare.end()), median(ours) / median(bare));
        std::fflush(stdout);
    }
}

// Load for part 2, on threads of their own until `stop`: 10 flooding clients, or one client
// applying policies in a loop.
std::vector<std::thread> load(const testing::Daemon& d, const std::string& kind,
                              std::atomic<bool>& stop, std::atomic<long>& done)
{
    std::vector<std::thread> threads;
    if (kind == "flood") {
        for (int i = 0; i < 10; ++i)
            threads.emplace_back([&d, &stop, &done] {
                auto c = d.connect();
                const std::string line = "{\"v\":1,\"op\":\"agents\"}\n";
                std::string batch;
                for (int k = 0; k < 50; ++k)
                    batch += line;
                while (!stop) {
                    if (::send(c.fd(), batch.data(), batch.size(), MSG_NOSIGNAL) < 0)
                        return;
                    for (int k = 0; k < 50 && c.next(10000); ++k)
                        ++done;
                }
            });
    } else if (kind == "apply" || kind == "unresolvable") {
        threads.emplace_back([&d, &stop, &done, kind] {
            const bool names = kind == "unresolvable";
            auto c = d.connect();
            for (int i = 0; !stop; ++i) {
                const std::string text = names ? policy(fmt::format("u{}", i % 2), 0,
                                                        fmt::format("never-{}.cordon.invalid", i))
                                               : policy(fmt::format("big{}", i % 2), 10000);
                const std::string line =
                    json{{"v", 1}, {"op", "apply"}, {"name", "load"},
                         {"policy", {{"file", "load.yaml"}, {"text", text}}}}
                        .dump() +
                    "\n";
                // An apply whose names never resolve waits for the resolver's whole timeout.
                if (::send(c.fd(), line.data(), line.size(), MSG_NOSIGNAL) < 0)
                    return;
                while (!stop && !c.next(200)) {
                }
                ++done;
            }
        });
    }
    return threads;
}

// Part 2: the reply to 50 kills of a one-process agent, under each kind of load. The agents are
// attached before the load starts: what is measured is the kill, not an attach queued behind it.
void reply_times(const testing::Daemon& d, int kills)
{
    auto load_cg = testing::make_test_cgroup();
    attach(d, "load", load_cg.path(), policy("load", 0));
    std::printf("\n| while | kill reply p50 | p99 | max | `elapsed_ms` in the reply (from "
                "`sent_ns`), p99 | `flag_ms` (sent to the kill flag's write), p99 | load requests "
                "done meanwhile |\n|---|---|---|---|---|---|---|\n");
    auto op = d.connect();
    for (const std::string kind : {"idle", "flood", "apply", "unresolvable"}) {
        std::vector<agents::Cgroup> targets;
        for (int i = 0; i < kills; ++i) {
            targets.push_back(testing::make_test_cgroup());
            attach(d, fmt::format("kr-{}-{}", kind, i), targets.back().path(),
                   policy(fmt::format("kr-{}-{}", kind, i), 0));
            populate(targets.back().path(), Shape::Idle);
        }
        std::atomic<bool> stop{false};
        std::atomic<long> done{0};
        auto threads = load(d, kind, stop, done);
        std::vector<double> client, reported, flagged;
        std::string failure;
        try {
            std::this_thread::sleep_for(kind == "idle" ? 0ms : 500ms);
            for (int i = 0; i < kills; ++i) {
                auto q = api::request(api::Op::Kill);
                q.name = fmt::format("kr-{}-{}", kind, i);
                q.sent_ns = monotonic_ns();
                const auto r = op.call(q);
                client.push_back(static_cast<double>(monotonic_ns() - *q.sent_ns) / 1e6);
                reported.push_back(r.at("elapsed_ms").get<double>());
                flagged.push_back(r.at("flag_ms").get<double>());
            }
        } catch (const std::exception& e) {
            failure = e.what();
        }
        stop = true;
        for (auto& t : threads)
            t.join();
        if (!failure.empty())
            throw Error("kills under load '" + kind + "': " + failure);
        for (int i = 0; i < kills; ++i)
            call_ok(d, {{"v", 1}, {"op", "detach"}, {"name", fmt::format("kr-{}-{}", kind, i)}});
        std::printf("| %s | %.2f ms | %.2f ms | %.2f ms | %.2f ms | %.2f ms | %ld |\n",
                    kind.c_str(), percentile(client, 0.5), percentile(client, 0.99),
                    *std::max_element(client.begin(), client.end()), percentile(reported, 0.99),
                    percentile(flagged, 0.99), done.load());
        std::fflush(stdout);
    }
    call_ok(d, {{"v", 1}, {"op", "detach"}, {"name", "load"}});
}

// A socket that takes DNS queries and never answers, named by a private /etc/resolv.conf.
int blackhole_resolver(const fs::path& ws)
{
    const int s = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(53);
    a.sin_addr.s_addr = htonl(0x7f00004d); // 127.0.0.77
    if (s < 0 || ::bind(s, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0)
        throw Error("cannot bind the silent resolver on 127.0.0.77:53: " + errno_text(errno));
    const fs::path conf = ws / "resolv.conf";
    std::ofstream(conf) << "nameserver 127.0.0.77\noptions timeout:20 attempts:1\n";
    if (::unshare(CLONE_NEWNS) != 0 ||
        ::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0 ||
        ::mount(conf.c_str(), "/etc/resolv.conf", nullptr, MS_BIND, nullptr) != 0)
        throw Error("cannot give the benchmark its own resolv.conf: " + errno_text(errno));
    return s;
}

} // namespace

void kill_wait(cordon_backend backend, const fs::path& ws)
{
    const char* r = std::getenv("CORDON_BENCH_KILL_RUNS");
    const int runs = r ? std::max(1, std::atoi(r)) : 5;
    std::printf("\n## A kill never waits (cordond, backend %s)\n\n",
                std::string(bpf::backend_name(backend)).c_str());
    std::fflush(stdout);
    const pid_t child = ::fork();
    if (child == 0) {
        try {
            const int silent = blackhole_resolver(ws);
            testing::Daemon d(backend);
            std::printf("%d runs per agent shape, `cordon kill` and the bare write alternating "
                        "within each run.\n\n", runs);
            command_to_empty(d, runs);
            reply_times(d, 50);
            ::close(silent);
        } catch (const std::exception& e) {
            std::fprintf(stderr, "kill_wait: %s\n", e.what());
            std::fflush(nullptr);
            ::_exit(1);
        }
        std::fflush(nullptr);
        ::_exit(0);
    }
    int st = 0;
    ::waitpid(child, &st, 0);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        throw Error("the kill-wait benchmark failed (see above)");
}

} // namespace cordon::bench
