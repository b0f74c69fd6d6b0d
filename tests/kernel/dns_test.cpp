// SPDX-License-Identifier: Apache-2.0
// The DNS gateway on the real kernel, against a real resolver (dnsmasq, started here on loopback
// with records this test writes, TTLs of 2 seconds and CNAMEs): the real cordond steers each
// agent's DNS to its gateway, binds answers into that agent's map, and the agent's connects are
// decided by them. Every backend (compat here; lsm and fmod_ret in the VM tier).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <thread>

#include <gtest/gtest.h>

#include "common/backend.h"
#include "daemon_util.h"
#include "dns/message.h"
#include "kernel_test_util.h"

namespace cordon::testing {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr int kTtl = 2;   // dnsmasq's --local-ttl
constexpr int kGrace = 1; // the policy's network.dns.grace

// dnsmasq on 127.0.0.1:port, answering from a hosts file the test rewrites (SIGHUP re-reads it).
class Resolver {
public:
    Resolver() : dir_(fs::temp_directory_path() / ("cordon-dns-" + std::to_string(::getpid())))
    {
        fs::create_directories(dir_);
        port_ = free_loopback_port();
        set_hosts("127.0.0.2 allowed.test\n127.0.0.5 target.test\n127.0.0.6 x.wild.test\n"
                  "127.0.0.7 other.test\n127.0.0.8 y.wild.test\n");
        const std::vector<std::string> args = {
            "/usr/sbin/dnsmasq", "--keep-in-foreground", "--port=" + std::to_string(port_),
            "--listen-address=127.0.0.1", "--bind-interfaces", "--no-resolv", "--no-hosts",
            "--addn-hosts=" + (dir_ / "hosts").string(), "--local-ttl=" + std::to_string(kTtl),
            "--cname=chain.test,mid.test", "--cname=mid.test,target.test",
            "--host-record=v6.test,::1", "--txt-record=tunnel.other.test,exfiltrated",
            "--user=root", "--pid-file=", "--log-facility=" + (dir_ / "log").string()};
        pid_ = ::fork();
        if (pid_ == 0) {
            std::vector<char*> argv;
            for (const auto& a : args)
                argv.push_back(const_cast<char*>(a.c_str()));
            argv.push_back(nullptr);
            ::execv(argv[0], argv.data());
            ::_exit(127);
        }
        // Ready when it answers (from this process: outside cordon, nothing is steered).
        for (int i = 0; i < 100 && !answers(); ++i)
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    ~Resolver()
    {
        if (pid_ > 0) {
            ::kill(pid_, SIGTERM);
            ::waitpid(pid_, nullptr, 0);
        }
        std::error_code ec;
        fs::remove_all(dir_, ec);
    }
    Resolver(const Resolver&) = delete;
    Resolver& operator=(const Resolver&) = delete;

    static bool available() { return ::access("/usr/sbin/dnsmasq", X_OK) == 0; }
    std::string upstream() const { return "127.0.0.1:" + std::to_string(port_); }
    void set_hosts(const std::string& text)
    {
        std::ofstream(dir_ / "hosts") << text;
        if (pid_ > 0) {
            ::kill(pid_, SIGHUP);
            std::this_thread::sleep_for(std::chrono::milliseconds(200));
        }
    }
    bool answers() const;

private:
    fs::path dir_;
    std::uint16_t port_ = 0;
    pid_t pid_ = -1;
};

std::vector<std::uint8_t> query_bytes(const std::string& name, std::uint16_t qtype, std::uint16_t id)
{
    std::vector<std::uint8_t> q = {static_cast<std::uint8_t>(id >> 8),
                                   static_cast<std::uint8_t>(id & 0xff), 0x01, 0, 0, 1, 0, 0, 0, 0,
                                   0, 0};
    std::size_t start = 0;
    while (start <= name.size()) {
        const auto dot = std::min(name.find('.', start), name.size());
        q.push_back(static_cast<std::uint8_t>(dot - start));
        q.insert(q.end(), name.begin() + static_cast<long>(start), name.begin() + static_cast<long>(dot));
        start = dot + 1;
    }
    q.push_back(0);
    q.insert(q.end(), {static_cast<std::uint8_t>(qtype >> 8), static_cast<std::uint8_t>(qtype & 0xff), 0, 1});
    return q;
}

sockaddr_storage address(const std::string& ip, std::uint16_t port)
{
    sockaddr_storage s{};
    if (ip.find(':') == std::string::npos) {
        auto* in = reinterpret_cast<sockaddr_in*>(&s);
        in->sin_family = AF_INET;
        in->sin_port = htons(port);
        ::inet_pton(AF_INET, ip.c_str(), &in->sin_addr);
    } else {
        auto* in6 = reinterpret_cast<sockaddr_in6*>(&s);
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons(port);
        ::inet_pton(AF_INET6, ip.c_str(), &in6->sin6_addr);
    }
    return s;
}

socklen_t len_of(const sockaddr_storage& s)
{
    return s.ss_family == AF_INET ? sizeof(sockaddr_in) : sizeof(sockaddr_in6);
}

// One query to `server`:53 (UDP, or TCP), as a resolver in the agent would send it. The result:
// "RCODE a1 a2 ..." (the answer's addresses; "from-elsewhere" when a UDP answer did not come
// from the address asked), or "errno N" / "timeout".
std::string lookup(const std::string& server, const std::string& name, std::uint16_t qtype,
                   bool tcp = false, std::uint16_t port = 53)
{
    const auto to = address(server, port);
    const int fd = ::socket(to.ss_family, tcp ? SOCK_STREAM : SOCK_DGRAM, 0);
    timeval tv{.tv_sec = 3, .tv_usec = 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    const std::uint16_t id = static_cast<std::uint16_t>(std::random_device{}());
    auto q = query_bytes(name, qtype, id);
    std::vector<std::uint8_t> buf(65536);
    ssize_t n = -1;
    bool from_asked = true;
    if (tcp) {
        if (::connect(fd, reinterpret_cast<const sockaddr*>(&to), len_of(to)) != 0) {
            const int err = errno;
            ::close(fd);
            return "errno " + std::to_string(err);
        }
        std::vector<std::uint8_t> framed = {static_cast<std::uint8_t>(q.size() >> 8),
                                            static_cast<std::uint8_t>(q.size() & 0xff)};
        framed.insert(framed.end(), q.begin(), q.end());
        (void)!::write(fd, framed.data(), framed.size());
        std::size_t got = 0;
        while (got < 2 || got < 2 + static_cast<std::size_t>(buf[0] << 8 | buf[1])) {
            const ssize_t r = ::read(fd, buf.data() + got, buf.size() - got);
            if (r <= 0)
                break;
            got += static_cast<std::size_t>(r);
        }
        n = got >= 2 ? static_cast<ssize_t>(got) - 2 : -1;
        if (n >= 0)
            std::memmove(buf.data(), buf.data() + 2, static_cast<std::size_t>(n));
    } else {
        if (::sendto(fd, q.data(), q.size(), 0, reinterpret_cast<const sockaddr*>(&to), len_of(to)) < 0) {
            const int err = errno;
            ::close(fd);
            return "errno " + std::to_string(err);
        }
        sockaddr_storage from{};
        socklen_t len = sizeof(from);
        n = ::recvfrom(fd, buf.data(), buf.size(), 0, reinterpret_cast<sockaddr*>(&from), &len);
        from_asked = n < 0 || std::memcmp(&from, &to, len_of(to)) == 0;
    }
    ::close(fd);
    if (n < 0)
        return "timeout";
    std::string why;
    const auto m = dns::parse({buf.data(), static_cast<std::size_t>(n)}, why);
    if (!m || m->id != id)
        return "bad answer " + why;
    static const char* names[] = {"NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED"};
    std::string out = static_cast<unsigned>(m->rcode()) < 6 ? names[static_cast<unsigned>(m->rcode())]
                                                            : "RCODE";
    for (const auto& a : dns::addresses_for(*m, dns::Question{.name = name}.name)) {
        char text[INET6_ADDRSTRLEN] = {};
        ::inet_ntop(a.family == 4 ? AF_INET : AF_INET6, a.addr.data(), text, sizeof(text));
        out += std::string(" ") + text;
    }
    if (!from_asked)
        out += " from-elsewhere";
    return out;
}

bool Resolver::answers() const
{
    return lookup("127.0.0.1", "allowed.test", dns::kTypeA, false, port_).starts_with("NOERROR");
}

// 0 when a TCP connect to ip:port succeeds, else its errno.
int connect_to(const std::string& ip, std::uint16_t port)
{
    const auto to = address(ip, port);
    const int fd = ::socket(to.ss_family, SOCK_STREAM, 0);
    const int rc = ::connect(fd, reinterpret_cast<const sockaddr*>(&to), len_of(to));
    const int err = errno;
    ::close(fd);
    return rc == 0 ? 0 : err;
}

// `before`, then what `step` returns, in that order (the operands of + have none).
std::string then(const std::string& before, const std::function<int()>& step)
{
    const int r = step();
    return before + " " + std::to_string(r);
}

// Runs fn in a new process in the agent's cgroup; returns what it returned.
std::string in_agent(const agents::Cgroup& cg, const std::function<std::string()>& fn)
{
    int p[2];
    if (::pipe(p) != 0)
        return "pipe failed";
    const pid_t pid = spawn_in(cg.path().string(), [&] {
        ::close(p[0]);
        const auto s = fn();
        (void)!::write(p[1], s.data(), s.size());
        return 0;
    });
    ::close(p[1]);
    std::string out;
    char buf[512];
    for (ssize_t n; (n = ::read(p[0], buf, sizeof(buf))) > 0;)
        out.append(buf, static_cast<std::size_t>(n));
    ::close(p[0]);
    wait_exit(pid);
    return out;
}

// A listener on both families' loopback at `port`, for connects to land on (never accepted:
// the backlog takes them).
struct Listeners {
    int v4 = -1, v6 = -1;
    explicit Listeners(std::uint16_t port)
    {
        const int one = 1;
        v4 = ::socket(AF_INET, SOCK_STREAM, 0);
        ::setsockopt(v4, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        auto a = address("0.0.0.0", port);
        ::bind(v4, reinterpret_cast<sockaddr*>(&a), sizeof(sockaddr_in));
        ::listen(v4, 512);
        v6 = ::socket(AF_INET6, SOCK_STREAM, 0);
        ::setsockopt(v6, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
        ::setsockopt(v6, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        auto b = address("::1", port);
        ::bind(v6, reinterpret_cast<sockaddr*>(&b), sizeof(sockaddr_in6));
        ::listen(v6, 512);
    }
    ~Listeners()
    {
        ::close(v4);
        ::close(v6);
    }
};

std::string dns_policy(std::uint16_t port, const std::string& extra = "")
{
    const auto p = std::to_string(port);
    return "apiVersion: cordon.dev/v1\nkind: AgentPolicy\nmetadata:\n  name: dns\nspec:\n"
           "  mode: enforce\n  exec:\n    default: allow\n  files:\n    default: allow\n"
           "  network:\n    default: deny\n    dns: {grace: " + std::to_string(kGrace) + "}\n"
           "    rules:\n"
           "      - {host: allowed.test, ports: [" + p + "], protocol: tcp, action: allow}\n"
           "      - {host: chain.test, ports: [" + p + "], protocol: tcp, action: allow}\n"
           "      - {host: \"*.wild.test\", ports: [" + p + "], protocol: tcp, action: allow}\n"
           "      - {host: v6.test, ports: [" + p + "], protocol: tcp, action: allow}\n"
           "      - {cidr: 127.0.0.8/32, action: deny}\n" + extra;
}

// The gateway's records in the JSONL file: (name, type, outcome, addresses).
std::vector<json> dns_records(const fs::path& jsonl)
{
    std::vector<json> out;
    std::ifstream in(jsonl);
    for (std::string line; std::getline(in, line);) {
        const auto j = json::parse(line, nullptr, false);
        if (j.is_object() && j.value("class_uid", 0) == 4003)
            out.push_back(j.at("unmapped"));
    }
    return out;
}

bool has_record(const std::vector<json>& records, const std::string& name, const std::string& type,
                const std::string& outcome, const std::string& address = "")
{
    for (const auto& r : records)
        if (r.value("name", "") == name && r.value("type", "") == type &&
            r.value("outcome", "") == outcome &&
            (address.empty() ||
             std::find(r["addresses"].begin(), r["addresses"].end(), address) != r["addresses"].end()))
            return true;
    return false;
}

class DnsTest : public ::testing::TestWithParam<cordon_backend> {
protected:
    void SetUp() override
    {
        if (skip_unless_backend(GetParam()))
            GTEST_SKIP() << "the kernel cannot run this backend; the VM tier runs it";
        ASSERT_TRUE(Resolver::available())
            << "dnsmasq is missing: scripts/bootstrap.sh installs dnsmasq-base";
    }
};

// The whole path, step by step: a name is connectable only after the agent resolved it, for its
// TTL + grace, on the rule's ports, for that agent only; CNAME chains, wildcards, AAAA over TCP;
// unknown names and TXT tunnelling refused; addresses that move; the records of each.
TEST_P(DnsTest, AnAgentsOwnAnswersBindItsHostRulesUntilTheyExpire)
{
    Resolver dns;
    ASSERT_TRUE(dns.answers()) << "dnsmasq did not start";
    const auto dir = fs::temp_directory_path() / ("cordon-dnsev-" + std::to_string(::getpid()));
    fs::create_directories(dir);
    Daemon d(GetParam(), {"--dns-upstream", dns.upstream(), "--events-jsonl", (dir / "ev.jsonl").string()});
    const std::uint16_t port = free_loopback_port();
    Listeners listen(port);
    auto a = make_test_cgroup();
    auto b = make_test_cgroup();
    ASSERT_TRUE(d.attach(a.path(), dns_policy(port), "dns-a", dir.string()).value("ok", false));
    ASSERT_TRUE(d.attach(b.path(), dns_policy(port), "dns-b", dir.string()).value("ok", false));

    EXPECT_EQ(in_agent(a, [&] { return std::to_string(connect_to("127.0.0.2", port)); }), "1")
        << "not connectable before the agent resolved it";
    // Asked of any address: the answer comes back from that address.
    EXPECT_EQ(in_agent(a, [] { return lookup("192.0.2.1", "allowed.test", dns::kTypeA); }),
              "NOERROR 127.0.0.2");
    EXPECT_EQ(in_agent(a, [&] {
                  return then(std::to_string(connect_to("127.0.0.2", port)), [&] {
                      return connect_to("127.0.0.2", static_cast<std::uint16_t>(port + 1));
                  });
              }),
              "0 1")
        << "connectable on the rule's port only";
    EXPECT_EQ(in_agent(b, [&] { return std::to_string(connect_to("127.0.0.2", port)); }), "1")
        << "another agent's answer allows nothing for this one";
    // A CNAME chain, a wildcard, AAAA over TCP to an IPv6 server.
    EXPECT_EQ(in_agent(a, [&] {
                  return then(lookup("192.0.2.1", "chain.test", dns::kTypeA),
                              [&] { return connect_to("127.0.0.5", port); });
              }),
              "NOERROR 127.0.0.5 0");
    EXPECT_EQ(in_agent(a, [&] {
                  auto out = then(lookup("192.0.2.1", "x.wild.test", dns::kTypeA),
                                  [&] { return connect_to("127.0.0.6", port); });
                  return out + " " + lookup("192.0.2.1", "wild.test", dns::kTypeA);
              }),
              "NOERROR 127.0.0.6 0 REFUSED")
        << "a wildcard names the names below it, not itself";
    EXPECT_EQ(in_agent(a, [&] {
                  return then(lookup("192.0.2.1", "y.wild.test", dns::kTypeA),
                              [&] { return connect_to("127.0.0.8", port); });
              }),
              "NOERROR 127.0.0.8 1")
        << "no name opens an address a cidr rule refuses";
    // The gateway's port is never an agent's to bind (it would answer the others' queries).
    const auto gw = d.call(R"({"v":1,"op":"status"})")["dns"].value("port", 0);
    EXPECT_EQ(in_agent(a, [&] {
                  const int fd = ::socket(AF_INET, SOCK_DGRAM, 0);
                  const auto at = address("127.0.0.1", static_cast<std::uint16_t>(gw));
                  const int rc = ::bind(fd, reinterpret_cast<const sockaddr*>(&at), sizeof(sockaddr_in));
                  return std::to_string(rc == 0 ? 0 : errno);
              }),
              "1");
    EXPECT_EQ(in_agent(a, [&] {
                  return then(lookup("2001:db8::53", "v6.test", dns::kTypeAaaa, true),
                              [&] { return connect_to("::1", port); });
              }),
              "NOERROR ::1 0");
    // Names no rule names, and a TXT tunnel through one, are refused; nothing is bound.
    EXPECT_EQ(in_agent(a, [&] {
                  std::string out = lookup("192.0.2.1", "other.test", dns::kTypeA);
                  out += " " + lookup("192.0.2.1", "tunnel.other.test", 16);
                  out += " " + lookup("192.0.2.1", "tunnel.other.test", 16, true);
                  return then(out, [&] { return connect_to("127.0.0.7", port); });
              }),
              "REFUSED REFUSED REFUSED 1");
    // After TTL + grace the address allows nothing; an address that moved binds the new one.
    std::this_thread::sleep_for(std::chrono::milliseconds((kTtl + kGrace) * 1000 + 600));
    EXPECT_EQ(in_agent(a, [&] { return std::to_string(connect_to("127.0.0.2", port)); }), "1")
        << "expired";
    dns.set_hosts("127.0.0.3 allowed.test\n127.0.0.5 target.test\n127.0.0.6 x.wild.test\n");
    EXPECT_EQ(in_agent(a, [&] {
                  auto out = then(lookup("192.0.2.1", "allowed.test", dns::kTypeA),
                                  [&] { return connect_to("127.0.0.3", port); });
                  return then(out, [&] { return connect_to("127.0.0.2", port); });
              }),
              "NOERROR 127.0.0.3 0 1");
    // The gateway's view is refreshed each second.
    bool shown = false;
    json agents;
    for (int i = 0; i < 30 && !shown; ++i) {
        agents = d.call(R"({"v":1,"op":"agents"})")["agents"];
        for (const auto& ag : agents)
            for (const auto& bnd : ag.value("dns", json::array()))
                shown = shown || (ag["name"] == "dns-a" && bnd["name"] == "allowed.test" &&
                                  bnd["address"] == "127.0.0.3" && bnd["expires_in_ms"] > 0);
        if (!shown)
            std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    EXPECT_TRUE(shown) << "`cordon agents` shows the address the name holds now: " << agents.dump();
    d.stop();
    const auto records = dns_records(dir / "ev.jsonl");
    EXPECT_TRUE(has_record(records, "allowed.test", "A", "allowed", "127.0.0.2"));
    EXPECT_TRUE(has_record(records, "allowed.test", "A", "allowed", "127.0.0.3"));
    EXPECT_TRUE(has_record(records, "chain.test", "A", "allowed", "127.0.0.5"));
    EXPECT_TRUE(has_record(records, "v6.test", "AAAA", "allowed", "::1"));
    EXPECT_TRUE(has_record(records, "other.test", "A", "refused"));
    EXPECT_TRUE(has_record(records, "tunnel.other.test", "TXT", "refused"));
    EXPECT_TRUE(has_record(records, "wild.test", "A", "refused"));
    if (::testing::Test::HasFailure()) {
        for (const auto& r : records)
            std::cerr << r.dump() << "\n";
        std::cerr << d.log();
    }
    std::error_code ec;
    fs::remove_all(dir, ec);
}

// A resolver in an agent that tries again, as glibc's does (three tries).
std::string lookup_retrying(const std::string& name)
{
    std::string r;
    for (int i = 0; i < 3; ++i) {
        r = lookup("192.0.2.1", name, dns::kTypeA);
        if (r != "timeout")
            break;
    }
    return r;
}

// Floods the gateway from an agent: `n` queries as fast as the socket takes them, half for names
// no rule names, half for one that goes upstream; never waits for an answer.
int flood(int n)
{
    const int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    const auto to = address("192.0.2.1", 53);
    int sent = 0;
    for (int i = 0; i < n; ++i) {
        const auto q = query_bytes(i % 2 ? "allowed.test" : "flood" + std::to_string(i) + ".test",
                                   dns::kTypeA, static_cast<std::uint16_t>(i));
        if (::sendto(fd, q.data(), q.size(), 0, reinterpret_cast<const sockaddr*>(&to),
                     sizeof(sockaddr_in)) > 0)
            ++sent;
        char buf[512];
        while (::recv(fd, buf, sizeof(buf), 0) > 0) {
        }
    }
    ::close(fd);
    return sent > 0 ? 0 : 1;
}

// Failure is closed and bounded: under one agent's flood another agent's lookups are answered
// and an operator's kill of a third is carried out; a full map refuses the answer; an upstream
// that is down or silent gives SERVFAIL and binds nothing. Each is recorded.
TEST_P(DnsTest, FailsClosedAndStaysFairUnderAFlood)
{
    auto dns = std::make_unique<Resolver>();
    ASSERT_TRUE(dns->answers()) << "dnsmasq did not start";
    // A second upstream that never answers: tried after the first, within its timeout.
    const int silent = ::socket(AF_INET, SOCK_DGRAM, 0);
    const std::uint16_t silent_port = free_loopback_port();
    auto silent_addr = address("127.0.0.1", silent_port);
    ASSERT_EQ(::bind(silent, reinterpret_cast<sockaddr*>(&silent_addr), sizeof(sockaddr_in)), 0);
    const auto dir = fs::temp_directory_path() / ("cordon-dnsfl-" + std::to_string(::getpid()));
    fs::create_directories(dir);
    Daemon d(GetParam(), {"--dns-upstream", dns->upstream(), "--dns-upstream",
                          "127.0.0.1:" + std::to_string(silent_port), "--dns-timeout", "400",
                          "--events-jsonl", (dir / "ev.jsonl").string()});
    const std::uint16_t port = free_loopback_port();
    Listeners listen(port);
    auto a = make_test_cgroup(), b = make_test_cgroup(), c = make_test_cgroup();
    for (auto [cg, name] : {std::pair{&a, "flooder"}, {&b, "neighbour"}, {&c, "third"}})
        ASSERT_TRUE(d.attach(cg->path(), dns_policy(port), name, dir.string()).value("ok", false));

    const pid_t third = spawn_in(c.path().string(), [] {
        for (;;)
            ::pause();
        return 0;
    });
    const pid_t flooder = spawn_in(a.path().string(), [] { return flood(40000); });
    int answered = 0;
    std::string last;
    for (int i = 0; i < 20; ++i) {
        const auto r = in_agent(b, [] { return lookup_retrying("allowed.test"); });
        answered += r == "NOERROR 127.0.0.2";
        last = r;
        if (i == 10) { // the operator's kill of a third agent, in the middle of the flood
            const auto reply = d.call(R"({"v":1,"op":"kill","name":"third"})");
            EXPECT_TRUE(reply.value("ok", false)) << reply.dump();
        }
    }
    EXPECT_EQ(answered, 20) << "the neighbour's lookups under the flood (last: " << last << ")";
    EXPECT_EQ(wait_exit(third), killed_by(SIGKILL));
    EXPECT_EQ(wait_exit(flooder), exited(0));
    const auto status = d.call(R"({"v":1,"op":"status"})");
    EXPECT_GT(status["dns"].value("busy", 0u) + status["dns"].value("refused", 0u), 0u)
        << status["dns"].dump();

    // A full map: the answer is refused, and nothing is bound.
    auto& g = d.pinned();
    std::vector<cordon_dns_host_key> filler;
    // Until the kernel says full (E2BIG): the table is not preallocated, and its element cache
    // refills asynchronously, so an insert can fail with ENOMEM for a moment first.
    for (std::uint32_t i = 0, busy = 0;; ++i) {
        cordon_dns_host_key k{};
        k.agent = 1; // no agent's key
        k.family = 4;
        std::memcpy(k.addr, &i, sizeof(i));
        if (!g.set_dns_host(k, cordon_dns_host{})) {
            if (errno == E2BIG)
                break;
            ASSERT_LT(++busy, 10000u) << "filling the table: " << std::strerror(errno);
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
            --i;
            continue;
        }
        filler.push_back(k);
    }
    EXPECT_EQ(in_agent(b, [&] {
                  return then(lookup("192.0.2.1", "chain.test", dns::kTypeA),
                              [&] { return connect_to("127.0.0.5", port); });
              }),
              "REFUSED 1");
    for (const auto& k : filler)
        g.remove_dns_host(k);

    // The upstreams down (one refuses, one is silent): SERVFAIL within the timeouts, nothing bound.
    dns.reset();
    EXPECT_EQ(in_agent(b, [&] {
                  return then(lookup("192.0.2.1", "x.wild.test", dns::kTypeA),
                              [&] { return connect_to("127.0.0.6", port); });
              }),
              "SERVFAIL 1");
    d.stop();
    const auto records = dns_records(dir / "ev.jsonl");
    EXPECT_TRUE(has_record(records, "chain.test", "A", "full"));
    EXPECT_TRUE(has_record(records, "x.wild.test", "A", "failed"));
    EXPECT_TRUE(has_record(records, "flood2.test", "A", "refused"));
    EXPECT_TRUE(std::any_of(records.begin(), records.end(), [](const json& r) {
        return r.value("outcome", "") == "suppressed" && r.value("agent", "") == "flooder";
    })) << "refusals over the agent's share of records are counted in one record";
    // A stopped gateway fails closed: the programs refuse DNS until one runs again.
    EXPECT_EQ(in_agent(b, [] { return lookup("192.0.2.1", "allowed.test", dns::kTypeA); }),
              "errno 1");
    ::close(silent);
    std::error_code ec;
    fs::remove_all(dir, ec);
}

INSTANTIATE_TEST_SUITE_P(Backends, DnsTest,
                         ::testing::Values(CORDON_BACKEND_LSM, CORDON_BACKEND_FMOD_RET, CORDON_BACKEND_COMPAT),
                         [](const auto& tp) { return std::string(bpf::backend_name(tp.param)); });

} // namespace
} // namespace cordon::testing

