// SPDX-License-Identifier: Apache-2.0
// The DNS gateway's cost (docs/benchmarks.md, "DNS gateway"), side by side in one run against a
// real dnsmasq on loopback and the real cordond:
//   - a lookup through the gateway (an agent asking any address) against the same lookup sent
//     straight to the upstream by a process in no agent: p50 and p99, and what the gateway adds;
//   - lookups per second with 32 in flight, through the gateway and straight;
//   - a connect decided by an answered address among 10,000 live ones, against one decided by a
//     cidr rule (UDP connect(): the hook's decision with no handshake around it).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "daemon_util.h"
#include "kernel_test_util.h"
#include "live_control.h"

namespace cordon::bench {

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

std::vector<std::uint8_t> query(std::uint16_t id)
{
    std::vector<std::uint8_t> q = {static_cast<std::uint8_t>(id >> 8),
                                   static_cast<std::uint8_t>(id), 1, 0, 0, 1, 0, 0, 0, 0, 0, 0};
    for (const char* label : {"allowed", "test"}) {
        q.push_back(static_cast<std::uint8_t>(std::strlen(label)));
        q.insert(q.end(), label, label + std::strlen(label));
    }
    q.insert(q.end(), {0, 0, 1, 0, 1});
    return q;
}

sockaddr_in v4(const char* ip, std::uint16_t port)
{
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    ::inet_pton(AF_INET, ip, &a.sin_addr);
    return a;
}

// Sequential lookups: each one's time in ns, written to `out` (a pipe).
void sequential(const sockaddr_in& to, int n, int out)
{
    const int fd = ::socket(AF_INET, SOCK_DGRAM, 0);
    ::connect(fd, reinterpret_cast<const sockaddr*>(&to), sizeof(to));
    timeval tv{.tv_sec = 1, .tv_usec = 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    std::vector<std::int64_t> t;
    char buf[1500];
    for (int i = 0; i < n; ++i) {
        const auto q = query(static_cast<std::uint16_t>(i));
        const auto start = Clock::now();
        ::send(fd, q.data(), q.size(), 0);
        if (::recv(fd, buf, sizeof(buf), 0) <= 0)
            break;
        t.push_back(std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - start).count());
    }
    (void)!::write(out, t.data(), t.size() * sizeof(t[0]));
    ::close(fd);
}

// Answers per second with `window` queries in flight, for `seconds`.
void windowed(const sockaddr_in& to, int window, double seconds, int out)
{
    const int fd = ::socket(AF_INET, SOCK_DGRAM, 0);
    ::connect(fd, reinterpret_cast<const sockaddr*>(&to), sizeof(to));
    timeval tv{.tv_sec = 1, .tv_usec = 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    std::uint16_t id = 0;
    for (int i = 0; i < window; ++i) {
        const auto q = query(id++);
        ::send(fd, q.data(), q.size(), 0);
    }
    std::int64_t answers = 0;
    char buf[1500];
    const auto end = Clock::now() + std::chrono::duration<double>(seconds);
    while (Clock::now() < end) {
        if (::recv(fd, buf, sizeof(buf), 0) <= 0) { // a lost one: put another in flight
            const auto q = query(id++);
            ::send(fd, q.data(), q.size(), 0);
            continue;
        }
        ++answers;
        const auto q = query(id++);
        ::send(fd, q.data(), q.size(), 0);
    }
    const double rate = static_cast<double>(answers) / seconds;
    (void)!::write(out, &rate, sizeof(rate));
    ::close(fd);
}

// UDP connect() to ip:port, n times: each one's time in ns.
void connects(const char* ip, std::uint16_t port, int n, int out)
{
    const auto to = v4(ip, port);
    std::vector<std::int64_t> t;
    for (int i = 0; i < n; ++i) {
        const int fd = ::socket(AF_INET, SOCK_DGRAM, 0);
        const auto start = Clock::now();
        const int rc = ::connect(fd, reinterpret_cast<const sockaddr*>(&to), sizeof(to));
        const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - start).count();
        ::close(fd);
        if (rc != 0)
            break; // refused: the setup is wrong, and the count says so
        t.push_back(ns);
    }
    (void)!::write(out, t.data(), t.size() * sizeof(t[0]));
}

// Runs fn in a child (in `cgroup`, or in none) and returns what it wrote.
template <typename T> std::vector<T> in_child(const std::optional<std::string>& cgroup,
                                              const std::function<void(int)>& fn)
{
    int p[2];
    if (::pipe(p) != 0)
        return {};
    const pid_t pid = testing::spawn_in(cgroup, [&] {
        ::close(p[0]);
        fn(p[1]);
        return 0;
    });
    ::close(p[1]);
    std::vector<T> out;
    T v;
    while (::read(p[0], &v, sizeof(v)) == sizeof(v))
        out.push_back(v);
    ::close(p[0]);
    testing::wait_exit(pid);
    return out;
}

double pct(std::vector<std::int64_t> v, double q)
{
    if (v.empty())
        return 0;
    std::sort(v.begin(), v.end());
    return static_cast<double>(v[std::min(v.size() - 1, static_cast<std::size_t>(q * static_cast<double>(v.size())))]) / 1000.0;
}

std::string policy(std::uint16_t port)
{
    const auto p = std::to_string(port);
    return "apiVersion: cordon.dev/v1\nkind: AgentPolicy\nmetadata:\n  name: dnsbench\nspec:\n"
           "  mode: enforce\n  exec:\n    default: allow\n  files:\n    default: allow\n"
           "  network:\n    default: deny\n    rules:\n"
           "      - {host: allowed.test, ports: [" + p + "], protocol: udp, action: allow}\n"
           "      - {cidr: 127.0.0.9/32, ports: [" + p + "], protocol: udp, action: allow}\n";
}

constexpr int kBlocks = 10;

// p50 and p99 of a lookup through the gateway and straight, interleaved in blocks.
void latency_section(const std::string& agent, const sockaddr_in& via, const sockaddr_in& direct)
{
    constexpr int kPerBlock = 300;
    std::vector<std::int64_t> through, straight;
    for (int b = 0; b < kBlocks; ++b) { // interleaved, so drift hits both alike
        auto t = in_child<std::int64_t>(agent, [&](int out) { sequential(via, kPerBlock, out); });
        through.insert(through.end(), t.begin(), t.end());
        auto s = in_child<std::int64_t>(std::nullopt, [&](int out) { sequential(direct, kPerBlock, out); });
        straight.insert(straight.end(), s.begin(), s.end());
    }
    std::printf("| lookup (UDP, A, one at a time) | n | p50 µs | p99 µs |\n|---|---|---|---|\n");
    std::printf("| straight to the upstream (no agent) | %zu | %.1f | %.1f |\n", straight.size(),
                pct(straight, 0.5), pct(straight, 0.99));
    std::printf("| through the gateway (an agent) | %zu | %.1f | %.1f |\n", through.size(),
                pct(through, 0.5), pct(through, 0.99));
    std::printf("| **added by the gateway** | | **%.1f** | **%.1f** |\n",
                pct(through, 0.5) - pct(straight, 0.5), pct(through, 0.99) - pct(straight, 0.99));
}

// Lookups per second with 32 in flight, best of three, through the gateway and straight.
void throughput_section(const std::string& agent, const sockaddr_in& via, const sockaddr_in& direct)
{
    double rate_via = 0, rate_direct = 0;
    for (int r = 0; r < 3; ++r) {
        auto a = in_child<double>(agent, [&](int out) { windowed(via, 32, 2.0, out); });
        auto s = in_child<double>(std::nullopt, [&](int out) { windowed(direct, 32, 2.0, out); });
        rate_via = std::max(rate_via, a.empty() ? 0 : a[0]);
        rate_direct = std::max(rate_direct, s.empty() ? 0 : s[0]);
    }
    std::printf("\n| lookups per second, 32 in flight, one agent (best of 3 × 2 s; the gateway "
                "holds each agent to 2,000/s sustained, 4,000 at once) | per second |\n|---|---|\n");
    std::printf("| straight to the upstream | %.0f |\n| through the gateway | %.0f (%.2f of straight) |\n",
                rate_direct, rate_via, rate_via / std::max(rate_direct, 1.0));
}

// A UDP connect() decided by an answered address among 10,000 live ones, and by a cidr rule.
void connect_section(testing::Daemon& d, const std::string& agent, const sockaddr_in& via,
                     std::uint16_t port)
{
    auto& g = d.pinned();
    const std::uint64_t key = d.call(R"({"v":1,"op":"agents"})")["agents"][0]["key"];
    const auto entry = g.agent(key);
    timespec now{};
    ::clock_gettime(CLOCK_MONOTONIC, &now);
    cordon_dns_host v{};
    v.nslots = 1;
    v.slots[0].slot = {.port_lo = port, .port_hi = port, .protocols = CORDON_PROTO_UDP,
                       .action = CORDON_ACTION_ALLOW, .min_tier = 0, ._pad0 = 0, .rule_id = 4};
    v.slots[0].expires_ns = static_cast<__u64>(now.tv_sec + 3600) * 1'000'000'000ull;
    for (std::uint32_t i = 0; i < 10000; ++i) {
        cordon_dns_host_key k{};
        k.agent = key;
        k.policy_id = entry ? entry->policy_id : 0;
        k.family = 4;
        const std::uint32_t a = htonl(0x0a000000u + i); // 10.0.x.y
        std::memcpy(k.addr, &a, 4);
        g.set_dns_host(k, v);
    }
    in_child<std::int64_t>(agent, [&](int out) { sequential(via, 1, out); }); // binds 127.0.0.2
    constexpr int kConnects = 20000;
    std::vector<std::int64_t> answered, cidr;
    for (int b = 0; b < kBlocks; ++b) {
        auto x = in_child<std::int64_t>(agent, [&](int out) { connects("127.0.0.2", port, kConnects / kBlocks, out); });
        answered.insert(answered.end(), x.begin(), x.end());
        auto y = in_child<std::int64_t>(agent, [&](int out) { connects("127.0.0.9", port, kConnects / kBlocks, out); });
        cidr.insert(cidr.end(), y.begin(), y.end());
    }
    std::printf("\n| UDP connect() allowed by (10,000 live answered addresses) | n | p50 µs | p99 µs |\n|---|---|---|---|\n");
    std::printf("| a cidr rule | %zu | %.2f | %.2f |\n", cidr.size(), pct(cidr, 0.5), pct(cidr, 0.99));
    std::printf("| an answered address | %zu | %.2f | %.2f |\n", answered.size(), pct(answered, 0.5),
                pct(answered, 0.99));
    std::printf("| **ratio (answered / cidr), p50** | | **%.3f** | |\n",
                pct(answered, 0.5) / std::max(pct(cidr, 0.5), 0.001));
}

} // namespace

void dns(cordon_backend backend, const fs::path& ws)
{
    if (::access("/usr/sbin/dnsmasq", X_OK) != 0) {
        std::printf("\n## DNS gateway: skipped (no /usr/sbin/dnsmasq; scripts/bootstrap.sh installs it)\n");
        return;
    }
    const std::uint16_t up = testing::free_loopback_port();
    std::ofstream(ws / "dns-hosts") << "127.0.0.2 allowed.test\n";
    const pid_t dnsmasq = ::fork();
    if (dnsmasq == 0) {
        const std::string port = "--port=" + std::to_string(up);
        const std::string hosts = "--addn-hosts=" + (ws / "dns-hosts").string();
        ::execl("/usr/sbin/dnsmasq", "dnsmasq", "--keep-in-foreground", port.c_str(),
                "--listen-address=127.0.0.1", "--bind-interfaces", "--no-resolv", "--no-hosts",
                hosts.c_str(), "--local-ttl=300", "--user=root", "--pid-file=", "--cache-size=1000",
                static_cast<char*>(nullptr));
        ::_exit(127);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    {
        testing::Daemon d(backend, {"--dns-upstream", "127.0.0.1:" + std::to_string(up)});
        auto cg = testing::make_test_cgroup();
        const std::uint16_t port = testing::free_loopback_port();
        d.attach(cg.path(), policy(port), "dnsbench", ws.string());
        const std::string agent = cg.path().string();
        const auto via = v4("192.0.2.1", 53), direct = v4("127.0.0.1", up);
        std::printf("\n## DNS gateway (issue 26; %s backend, dnsmasq on loopback)\n\n",
                    std::string(bpf::backend_name(backend)).c_str());
        latency_section(agent, via, direct);
        throughput_section(agent, via, direct);
        connect_section(d, agent, via, port);
    }
    ::kill(dnsmasq, SIGTERM);
    ::waitpid(dnsmasq, nullptr, 0);
}

} // namespace cordon::bench
