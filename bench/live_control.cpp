// SPDX-License-Identifier: Apache-2.0
// The kill switch and policy apply through the real cordond, measured from the caller's side.
//
// Kill: agents of 1, 100 and 1,000 processes (one of them a "hammer" that tries a UDP connect
// in a loop and notes when the kernel first refuses it), killed through `cordon kill`'s API call,
// beside a bare cgroup.kill of a cgroup of the same shape in the same run (order alternating).
//   (a) the call to the first refusal the hammer sees: the kernel refuses the agent everything
//   (b) the call to its reply, which comes when the cgroup is empty; bare: the write of
//       cgroup.kill to cgroup.events saying "populated 0"
// Apply: an agent whose hammer is allowed by one policy and refused by the other; each apply
// swaps them. Measured: the new policy loaded (compilation done) to the first decision by it,
// as the hammer sees it; and the phases of the call. Then a 10,000-rule policy's compilation.
#include "live_control.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
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
#include "bpf/introspect.h"
#include "common/clock.h"
#include "common/error.h"
#include "daemon_util.h"
#include "kernel_test_util.h"

namespace cordon::bench {

namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using namespace std::chrono_literals;

constexpr int kRuns = 20;


// What the hammer shares with the benchmark.
struct Hammer {
    std::atomic<int> want{-1};              ///< 1: note the first success, 0: the first refusal
    std::atomic<std::int64_t> first_ns{0};  ///< when it saw `want` (0: not yet)
    std::atomic<long> tries{0};
    std::atomic<std::uint16_t> port{0};     ///< when set: the port it connects to instead
};

Hammer* new_hammer()
{
    void* p = ::mmap(nullptr, sizeof(Hammer), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                     -1, 0);
    if (p == MAP_FAILED)
        throw Error("mmap failed");
    return new (p) Hammer();
}

// UDP connects to a local port in a loop (a refused connect is EPERM on both backends).
[[noreturn]] void hammer_loop(Hammer* h, std::uint16_t port)
{
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    for (;;) {
        a.sin_port = htons(h->port.load() ? h->port.load() : port);
        const int s = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        const bool ok = s >= 0 && ::connect(s, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0;
        const std::int64_t t = monotonic_ns();
        if (s >= 0)
            ::close(s);
        h->tries++;
        if (h->want.load() == (ok ? 1 : 0) && h->first_ns.load() == 0)
            h->first_ns = t;
    }
}

std::size_t procs_in(const fs::path& cg)
{
    std::ifstream in(cg / "cgroup.procs");
    std::size_t n = 0;
    for (std::string l; std::getline(in, l);)
        ++n;
    return n;
}

// n processes in cg: the hammer and n-1 that sleep.
void populate(const fs::path& cg, int n, Hammer* h, std::uint16_t port)
{
    testing::spawn_in(cg.string(), [&]() -> int {
        for (int i = 1; i < n; ++i)
            if (::fork() == 0)
                for (;;)
                    ::pause();
        hammer_loop(h, port);
    });
    const auto deadline = std::chrono::steady_clock::now() + 60s;
    while (procs_in(cg) < static_cast<std::size_t>(n) && std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(1ms);
    if (procs_in(cg) < static_cast<std::size_t>(n))
        throw Error("could not start the agent's processes");
    while (h->tries.load() < 10)
        std::this_thread::sleep_for(100us);
}


struct Stats {
    std::vector<double> v;
    double median() const
    {
        auto s = v;
        std::sort(s.begin(), s.end());
        return s.empty() ? 0 : s[s.size() / 2];
    }
    double max() const { return v.empty() ? 0 : *std::max_element(v.begin(), v.end()); }
};

std::string policy(const std::string& name, const std::string& network_default,
                   int extra_rules = 0)
{
    std::string y = "apiVersion: cordon.dev/v1\nkind: AgentPolicy\nmetadata:\n  name: " + name +
                    "\nspec:\n  exec: {default: allow}\n  files:\n    default: allow\n";
    if (extra_rules > 0) {
        y += "    rules:\n";
        for (int i = 0; i < extra_rules; ++i)
            y += fmt::format("      - {{path: /srv/bench/d{}/, access: [write], action: deny}}\n",
                             i);
    }
    return y + "  network: {default: " + network_default + "}\n";
}

json call(const testing::Daemon& d, const json& request)
{
    const auto r = d.call(request.dump());
    if (!r.value("ok", false))
        throw Error("cordond refused " + request.value("op", "") + ": " + r.dump());
    return r;
}

} // namespace

// Blocks until cgroup.events says "populated 0" (POLLPRI on each change).
void wait_empty(const fs::path& cg)
{
    const int fd = ::open((cg / "cgroup.events").c_str(), O_RDONLY | O_CLOEXEC);
    while (agents::cgroup_populated(cg)) {
        pollfd p{.fd = fd, .events = POLLPRI, .revents = 0};
        ::poll(&p, 1, 100);
    }
    ::close(fd);
}

namespace {

// A UDP port to connect to (nothing needs to listen: connect only sets the peer).
constexpr std::uint16_t kPort = 9;

// One size's kill measures, over its runs.
struct KillStats {
    Stats a, b, bare, seen, daemon_ms, flag;
};

void print_kill_header(cordon_backend backend)
{
    std::printf("\n## Kill switch and policy apply (cordond)\n\n");
    std::printf("Backend %s. %d runs per size; the daemon's kill and a bare cgroup.kill of a "
                "cgroup of the same shape alternate within each run. Every agent has one "
                "process that tries a UDP connect in a loop (the hammer) and n-1 that sleep. The "
                "kill requests go over one open connection, as an orchestrator's would.\n\n",
                std::string(bpf::backend_name(backend)).c_str(), kRuns);
    std::printf("| processes | (a) call to the kill flag's write: median / max (target < 100 "
                "us) | the hammer's first refusal after the call: median (runs that saw one) | "
                "(b) call to empty cgroup: median / max | bare cgroup.kill to empty: median / "
                "max | (b) / bare (medians; target <= 1.10) | inside cordond: request read to "
                "flag written, median | inside cordond: request read to empty, median "
                "|\n|---|---|---|---|---|---|---|---|\n");
}

// One kill of an agent of n processes: through cordond on its turn, else a bare cgroup.kill.
void kill_once(const testing::Daemon& d, api::Client& operator_conn, const fs::path& ws, int n,
               int run, bool daemon_turn, KillStats& s)
{
    auto cg = testing::make_test_cgroup();
    auto* h = new_hammer();
    const std::string name = fmt::format("kill-{}-{}", n, run);
    if (daemon_turn)
        call(d, {{"v", 1}, {"op", "attach"}, {"name", name},
                 {"cgroup", cg.path().string()},
                 {"policy", {{"file", "b.yaml"}, {"text", policy("b", "allow")}}},
                 {"workspace", ws.string()}});
    populate(cg.path(), n, h, kPort);
    h->want = 0;
    const std::int64_t t0 = monotonic_ns();
    if (daemon_turn) {
        auto q = api::request(api::Op::Kill);
        q.name = name;
        const auto r = operator_conn.call(q); // one connection, as an orchestrator
        const std::int64_t t1 = monotonic_ns();
        s.b.v.push_back(static_cast<double>(t1 - t0) / 1e6);
        // (a): from the call to the flag's map write, after which every decision
        // refuses the agent (both CLOCK_MONOTONIC). The hammer's own first refusal
        // confirms it when the hammer ran before cgroup.kill ended it.
        s.a.v.push_back(static_cast<double>(r["flagged_ns"].get<std::int64_t>() - t0) /
                        1e3);
        if (const auto first = h->first_ns.load(); first > 0)
            s.seen.v.push_back(static_cast<double>(first - t0) / 1e3);
        s.flag.v.push_back(static_cast<double>(r["flagged_ns"].get<std::int64_t>() -
                                               r["received_ns"].get<std::int64_t>()) /
                           1e3);
        s.daemon_ms.v.push_back(static_cast<double>(r["settled_ns"].get<std::int64_t>() -
                                                    r["received_ns"].get<std::int64_t>()) /
                                1e6);
        call(d, {{"v", 1}, {"op", "detach"}, {"name", name}});
    } else {
        agents::kill_cgroup(cg.path());
        wait_empty(cg.path());
        s.bare.v.push_back(static_cast<double>(monotonic_ns() - t0) / 1e6);
    }
    ::munmap(h, sizeof(Hammer));
}

// The kill table's row for agents of n processes.
void kill_row(const testing::Daemon& d, api::Client& operator_conn, const fs::path& ws, int n)
{
    KillStats s;
    for (int run = 0; run < kRuns; ++run) {
        for (int turn = 0; turn < 2; ++turn) {
            const bool daemon_turn = (turn == 0) == (run % 2 == 0);
            kill_once(d, operator_conn, ws, n, run, daemon_turn, s);
        }
    }
    std::printf("| %d | %.1f us / %.1f us | %.1f us (%zu of %d) | %.2f ms / %.2f ms | "
                "%.2f ms / %.2f ms | %.3f | %.1f us | %.2f ms |\n",
                n, s.a.median(), s.a.max(), s.seen.median(), s.seen.v.size(), kRuns, s.b.median(),
                s.b.max(), s.bare.median(), s.bare.max(), s.b.median() / s.bare.median(),
                s.flag.median(), s.daemon_ms.median());
    std::fflush(stdout);
}

// Apply: the hammer is allowed by "open" and refused by "closed"; each apply swaps them.
void swap_applies(const testing::Daemon& d, Hammer* h)
{
    Stats switch_us, call_ms, prepare_us, load_us, record_us, wait_ms;
    for (int run = 0; run < 2 * kRuns; ++run) {
        const bool closing = run % 2 == 0;
        h->first_ns = 0;
        h->want = closing ? 0 : 1;
        const std::int64_t t0 = monotonic_ns();
        const auto r = call(d, {{"v", 1}, {"op", "apply"}, {"name", "swap"},
                                {"policy", {{"file", closing ? "closed.yaml" : "open.yaml"},
                                            {"text", policy(closing ? "closed" : "open",
                                                            closing ? "deny" : "allow")}}}});
        const std::int64_t t1 = monotonic_ns();
        while (h->first_ns.load() == 0)
            std::this_thread::sleep_for(10us);
        const auto loaded = r["loaded_ns"].get<std::int64_t>();
        const auto recorded = r["recorded_ns"].get<std::int64_t>();
        switch_us.v.push_back(static_cast<double>(h->first_ns.load() - recorded) / 1e3);
        record_us.v.push_back(static_cast<double>(recorded - loaded) / 1e3);
        call_ms.v.push_back(static_cast<double>(t1 - t0) / 1e6);
        prepare_us.v.push_back(static_cast<double>(r["prepared_ns"].get<std::int64_t>() -
                                                   r["received_ns"].get<std::int64_t>()) / 1e3);
        load_us.v.push_back(static_cast<double>(loaded - r["prepared_ns"].get<std::int64_t>()) /
                            1e3);
        wait_ms.v.push_back(static_cast<double>(t1 - r["switched_ns"].get<std::int64_t>()) / 1e6);
    }
    std::printf("\nPolicy apply, %d applies alternating between a policy that allows the "
                "hammer's connect and one that refuses it (3 rules each):\n\n",
                2 * kRuns);
    std::printf("| phase | median | max |\n|---|---|---|\n");
    std::printf("| new policy compiled, loaded and recorded to the first decision by it, as "
                "the hammer saw it (target < 100 us) | %.1f us | %.1f us |\n",
                switch_us.median(), switch_us.max());
    std::printf("| parse, resolve and test-compile (before anything changes) | %.1f us | %.1f us "
                "|\n", prepare_us.median(), prepare_us.max());
    std::printf("| compile under the new id and load into the maps | %.1f us | %.1f us |\n",
                load_us.median(), load_us.max());
    std::printf("| save the agent's record (registry file, fsync, rename) before the switch | "
                "%.1f us | %.1f us |\n",
                record_us.median(), record_us.max());
    std::printf("| switch to the reply: wait for decisions in flight (RCU grace period), unload "
                "the old policy | %.2f ms | %.2f ms |\n",
                wait_ms.median(), wait_ms.max());
    std::printf("| the whole call, as the caller sees it | %.2f ms | %.2f ms |\n",
                call_ms.median(), call_ms.max());
}

// A 10,000-rule policy: its compilation, reported apart.
void big_applies(const testing::Daemon& d)
{
    Stats big_prepare, big_load, big_call;
    for (int run = 0; run < 5; ++run) {
        const std::int64_t t0 = monotonic_ns();
        const auto r = call(d, {{"v", 1}, {"op", "apply"}, {"name", "swap"},
                                {"policy", {{"file", "big.yaml"},
                                            {"text", policy("big", "allow", 10000)}}}});
        big_call.v.push_back(static_cast<double>(monotonic_ns() - t0) / 1e6);
        big_prepare.v.push_back(static_cast<double>(r["prepared_ns"].get<std::int64_t>() -
                                                    r["received_ns"].get<std::int64_t>()) / 1e6);
        big_load.v.push_back(static_cast<double>(r["loaded_ns"].get<std::int64_t>() -
                                                 r["prepared_ns"].get<std::int64_t>()) / 1e6);
    }
    std::printf("\nA 10,000-rule policy (5 applies): parse, resolve and test-compile %.1f ms "
                "(median), compile and load into the maps %.1f ms, whole call %.1f ms.\n",
                big_prepare.median(), big_load.median(), big_call.median());
}

} // namespace

void live_control(cordon_backend backend, const fs::path& ws)
{
    testing::Daemon d(backend);
    print_kill_header(backend);
    auto operator_conn = d.connect();
    for (const int n : {1, 100, 1000})
        kill_row(d, operator_conn, ws, n);

    auto cg = testing::make_test_cgroup();
    auto* h = new_hammer();
    call(d, {{"v", 1}, {"op", "attach"}, {"name", "swap"}, {"cgroup", cg.path().string()},
             {"policy", {{"file", "open.yaml"}, {"text", policy("open", "allow")}}},
             {"workspace", ws.string()}});
    populate(cg.path(), 1, h, kPort);
    swap_applies(d, h);
    big_applies(d);
    call(d, {{"v", 1}, {"op", "detach"}, {"name", "swap"}});
    agents::kill_cgroup(cg.path());
}

namespace {

// Total run time and runs of the connect4 programs (kernel.bpf_stats_enabled).
std::pair<std::uint64_t, std::uint64_t> connect_prog_stats()
{
    std::uint64_t ns = 0, runs = 0;
    for (const auto& o : bpf::loaded_cordon_objects())
        if (!o.is_map && o.name.starts_with("net_guard_conne")) {
            ns += o.run_ns;
            runs += o.run_cnt;
        }
    return {ns, runs};
}

// The request for a connect grant to `target` on agent "jit", for an hour.
auto grant_request(const std::string& target)
{
    auto q = api::request(api::Op::Grant);
    q.name = "jit";
    q.kind = "connect";
    q.target = target;
    q.ttl = "1h";
    return q;
}

// The grant round trips' times, over 2 * kRuns grant-and-revoke runs.
struct GrantTimes {
    Stats after_reply, after_in_force, call_us;
};

// Grants the hammer's connect and waits for its first allowed connect, then revokes the grant
// and waits for the hammer to be refused again; 2 * kRuns times.
GrantTimes time_grants(api::Client& conn, Hammer* h)
{
    GrantTimes g;
    for (int run = 0; run < 2 * kRuns; ++run) {
        h->first_ns = 0;
        h->want = 1;
        const auto q = grant_request(fmt::format("127.0.0.1:{}/udp", kPort));
        const std::int64_t t0 = monotonic_ns();
        const auto r = conn.call(q);
        const std::int64_t t1 = monotonic_ns();
        while (h->first_ns.load() == 0)
            std::this_thread::sleep_for(1us);
        const auto first = h->first_ns.load();
        g.after_reply.v.push_back(static_cast<double>(first - t1) / 1e3);
        g.after_in_force.v.push_back(static_cast<double>(first - r["granted_ns"].get<std::int64_t>()) /
                                     1e3);
        g.call_us.v.push_back(static_cast<double>(t1 - t0) / 1e3);
        // Revoked, and the hammer refused again, before the next run.
        h->first_ns = 0;
        h->want = 0;
        auto rv = api::request(api::Op::Revoke);
        rv.name = "jit";
        rv.grant = r["grant"]["id"].get<std::int64_t>();
        conn.call(rv);
        while (h->first_ns.load() == 0)
            std::this_thread::sleep_for(1us);
    }
    return g;
}

void print_grant_times(cordon_backend backend, const GrantTimes& g)
{
    std::printf("\n## Just-in-time grants (cordond)\n\n");
    std::printf("Backend %s. An agent whose policy refuses a UDP connect that its one process "
                "(the hammer) tries in a loop; %d times: `grant --connect 127.0.0.1:9/udp` over "
                "one open connection, then the time of the hammer's first allowed connect, then "
                "a revoke. A negative time is a decision the grant allowed before the reply "
                "reached the caller (it is in force before cordond replies).\n\n",
                std::string(bpf::backend_name(backend)).c_str(), 2 * kRuns);
    std::printf("| measure | median | max |\n|---|---|---|\n");
    std::printf("| API reply received to the first decision that used the grant (target < 100 "
                "us) | %.1f us | %.1f us |\n",
                g.after_reply.median(), g.after_reply.max());
    std::printf("| grant in force (cordond's granted_ns) to that decision | %.1f us | %.1f us |\n",
                g.after_in_force.median(), g.after_in_force.max());
    std::printf("| the whole grant call, as the caller sees it | %.1f us | %.1f us |\n",
                g.call_us.median(), g.call_us.max());
    const auto within = std::count_if(g.after_reply.v.begin(), g.after_reply.v.end(),
                                      [](double us) { return us < 100; });
    std::printf("\nIn %ld of %zu runs the first decision that used the grant came less than "
                "100 us after the reply (or before it).\n",
                static_cast<long>(within), g.after_reply.v.size());
}

// Average BPF run time of the connect programs over the hammer's next 200,000 connects, those
// decided as `want` says; bpf_stats_enabled is on meanwhile, then back to `old_stats`.
double ns_per_decision(Hammer* h, int want, const std::string& old_stats)
{
    std::ofstream("/proc/sys/kernel/bpf_stats_enabled") << "1";
    h->first_ns = 0;
    h->want = want;
    const auto [ns0, runs0] = connect_prog_stats();
    const long tries0 = h->tries.load();
    while (h->tries.load() - tries0 < 200000)
        std::this_thread::sleep_for(1ms);
    const auto [ns1, runs1] = connect_prog_stats();
    std::ofstream("/proc/sys/kernel/bpf_stats_enabled") << old_stats;
    return runs1 > runs0 ? static_cast<double>(ns1 - ns0) / static_cast<double>(runs1 - runs0)
                         : 0.0;
}

// BPF run time per decision: 0 grants, then 63 live grants (none for the hammer's address,
// so every decision consults the grant set and is still refused), then a 64th that allows it.
void grant_run_time(api::Client& conn, Hammer* h)
{
    std::string old_stats;
    std::ifstream("/proc/sys/kernel/bpf_stats_enabled") >> old_stats;
    const double none = ns_per_decision(h, 0, old_stats);
    h->port = 7;
    const double none_allowed = ns_per_decision(h, 1, old_stats);
    h->port = 0;
    for (int i = 0; i + 1 < CORDON_MAX_GRANTS_PER_AGENT; ++i)
        conn.call(grant_request(fmt::format("10.{}.{}.0/24:443/tcp", i / 16, i % 16)));
    const double with64 = ns_per_decision(h, 0, old_stats);
    h->port = 7;
    const double with64_allowed = ns_per_decision(h, 1, old_stats);
    h->port = 0;
    conn.call(grant_request(fmt::format("127.0.0.1:{}/udp", kPort)));
    const double allowed = ns_per_decision(h, 1, old_stats);
    std::printf("\nAverage BPF run time of the connect4 program per decision "
                "(kernel.bpf_stats_enabled, 200,000 decisions each):\n\n");
    std::printf("| live grants on the agent | decision | average ns |\n|---|---|---|\n");
    std::printf("| 0 | allowed by a policy rule | %.0f |\n", none_allowed);
    std::printf("| 63 (other addresses) | allowed by a policy rule: grants are not consulted | "
                "%.0f |\n", with64_allowed);
    std::printf("| 0 | refused by the policy (and reported) | %.0f |\n", none);
    std::printf("| 63 (other addresses) | refused: the grant set is consulted, nothing matches "
                "(and reported) | %.0f |\n", with64);
    std::printf("| 64 (the 64th for this address) | allowed by the grant (and reported) | %.0f |\n",
                allowed);
}

} // namespace

void grants(cordon_backend backend, const fs::path& ws)
{
    testing::Daemon d(backend);
    auto cg = testing::make_test_cgroup();
    auto* h = new_hammer();
    // network default deny: the hammer's UDP connect to 127.0.0.1:9 is refused (EPERM on both
    // backends) until a grant allows it; port 7 is allowed by a rule.
    const std::string yaml =
        "apiVersion: cordon.dev/v1\nkind: AgentPolicy\nmetadata:\n  name: jit\nspec:\n"
        "  exec: {default: allow}\n  files: {default: allow}\n  network:\n    default: deny\n"
        "    rules:\n      - {cidr: 127.0.0.1/32, ports: [7], protocol: udp, action: allow}\n";
    call(d, {{"v", 1}, {"op", "attach"}, {"name", "jit"}, {"cgroup", cg.path().string()},
             {"policy", {{"file", "deny.yaml"}, {"text", yaml}}}, {"workspace", ws.string()}});
    populate(cg.path(), 1, h, kPort);
    auto conn = d.connect();
    print_grant_times(backend, time_grants(conn, h));
    grant_run_time(conn, h);
    call(d, {{"v", 1}, {"op", "detach"}, {"name", "jit"}});
    agents::kill_cgroup(cg.path());
    ::munmap(h, sizeof(Hammer));
}

} // namespace cordon::bench
