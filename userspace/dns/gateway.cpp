// SPDX-License-Identifier: Apache-2.0
#include "dns/gateway.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "bpf/guard.h"
#include "common/clock.h"
#include "common/error.h"
#include "dns/diag.h"
#include "dns/message.h"
#include "policy/net.h"

namespace cordon::dns {

namespace {

constexpr std::size_t kMaxMessage = 65535;
constexpr std::size_t kMaxEvents = 65536;
constexpr std::uint32_t kMaxTtl = 86400; // a longer TTL is held for a day, then asked again
constexpr int kDatagramsPerTurn = 256;
constexpr unsigned kMaxConns = 512;
constexpr unsigned kConnsPerAgent = 16;
constexpr std::int64_t kConnIdleNs = 10'000'000'000; // a TCP connection with nothing asked
constexpr std::size_t kHostsPerAgent = 4096;         // answered addresses one agent may hold
constexpr double kQueriesPerSecond = 2000;           // per agent, sustained ...
constexpr double kQueryBurst = 4000;                 // ... and at once
constexpr unsigned kRecordsPerSecond = 20;           // refusals and failures recorded per agent

std::string addr_text(int family, const std::uint8_t* a)
{
    char buf[INET6_ADDRSTRLEN] = {};
    ::inet_ntop(family == 4 ? AF_INET : AF_INET6, a, buf, sizeof(buf));
    return buf;
}

const char* rcode_name(Rcode r)
{
    switch (r) {
    case Rcode::NoError: return "NOERROR";
    case Rcode::FormErr: return "FORMERR";
    case Rcode::ServFail: return "SERVFAIL";
    case Rcode::NxDomain: return "NXDOMAIN";
    case Rcode::Refused: return "REFUSED";
    }
    return "OTHER";
}

std::uint16_t random_id()
{
    std::uint16_t id = 0;
    if (::getrandom(&id, sizeof(id), 0) != sizeof(id))
        id = static_cast<std::uint16_t>(monotonic_ns());
    return id;
}

sockaddr_storage loopback(int family, std::uint16_t port)
{
    sockaddr_storage s{};
    if (family == AF_INET) {
        auto* in = reinterpret_cast<sockaddr_in*>(&s);
        in->sin_family = AF_INET;
        in->sin_port = htons(port);
        in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    } else {
        auto* in6 = reinterpret_cast<sockaddr_in6*>(&s);
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons(port);
        in6->sin6_addr = in6addr_loopback;
    }
    return s;
}

socklen_t len_of(const sockaddr_storage& s)
{
    return s.ss_family == AF_INET ? sizeof(sockaddr_in) : sizeof(sockaddr_in6);
}

// A socket bound to loopback:port of `family` (and type); -1 with errno when it cannot be.
int bound_socket(int family, int type, std::uint16_t port)
{
    const int fd = ::socket(family, type | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return -1;
    const int one = 1;
    if (family == AF_INET6)
        ::setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    if (type == SOCK_STREAM)
        ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    const int rcvbuf = 4 << 20;
    ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
    const auto a = loopback(family, port);
    if (::bind(fd, reinterpret_cast<const sockaddr*>(&a), len_of(a)) != 0 ||
        (type == SOCK_STREAM && ::listen(fd, 128) != 0)) {
        const int err = errno;
        ::close(fd);
        errno = err;
        return -1;
    }
    return fd;
}

std::uint16_t port_of(int fd)
{
    sockaddr_storage s{};
    socklen_t len = sizeof(s);
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&s), &len);
    return ntohs(s.ss_family == AF_INET ? reinterpret_cast<sockaddr_in*>(&s)->sin_port
                                        : reinterpret_cast<sockaddr_in6*>(&s)->sin6_port);
}

using HostKeyBytes = std::array<std::uint8_t, sizeof(cordon_dns_host_key)>;

HostKeyBytes bytes_of(const cordon_dns_host_key& k)
{
    HostKeyBytes b{};
    std::memcpy(b.data(), &k, sizeof(k));
    return b;
}

} // namespace

nlohmann::json event_json(const Event& e, const std::string& agent, const std::string& rule)
{
    return {{"dns", true},
            {"agent", agent},
            {"task_id", e.task_id},
            {"name", e.name},
            {"type", type_name(e.qtype)},
            {"transport", e.tcp ? "tcp" : "udp"},
            {"outcome", e.outcome},
            {"addresses", e.addresses},
            {"ttl", e.ttl},
            {"rcode", e.rcode},
            {"rule_id", e.rule_id},
            {"rule", rule},
            {"reason", e.reason},
            {"audit", e.audit}};
}

std::string event_line(const Event& e)
{
    std::string line = fmt::format("dns {} {} ({})", e.audit ? "would refuse" : e.outcome,
                                   e.name, type_name(e.qtype));
    if (!e.addresses.empty()) {
        line += " ->";
        for (const auto& a : e.addresses)
            line += " " + a;
        line += fmt::format(" for {}s", e.ttl);
    }
    if (!e.reason.empty())
        line += ": " + e.reason;
    return line;
}

std::optional<Upstream> parse_upstream(const std::string& text, std::string& why)
{
    std::string host = text, port = "53";
    if (text.starts_with("[")) {
        const auto close = text.find(']');
        if (close == std::string::npos) {
            why = "'" + text + "' has no closing ']'";
            return std::nullopt;
        }
        host = text.substr(1, close - 1);
        if (close + 1 < text.size()) {
            if (text[close + 1] != ':') {
                why = "expected ':PORT' after ']' in '" + text + "'";
                return std::nullopt;
            }
            port = text.substr(close + 2);
        }
    } else if (std::count(text.begin(), text.end(), ':') == 1) {
        host = text.substr(0, text.find(':'));
        port = text.substr(text.find(':') + 1);
    }
    int p = 0;
    try {
        std::size_t used = 0;
        p = std::stoi(port, &used);
        if (used != port.size())
            p = -1;
    } catch (const std::exception&) {
        p = -1;
    }
    if (p < 1 || p > 65535) {
        why = "invalid port '" + port + "' in '" + text + "'";
        return std::nullopt;
    }
    Upstream u;
    auto* in = reinterpret_cast<sockaddr_in*>(&u.addr);
    auto* in6 = reinterpret_cast<sockaddr_in6*>(&u.addr);
    if (::inet_pton(AF_INET, host.c_str(), &in->sin_addr) == 1) {
        in->sin_family = AF_INET;
        in->sin_port = htons(static_cast<std::uint16_t>(p));
        u.len = sizeof(sockaddr_in);
        u.text = host + ":" + std::to_string(p);
    } else if (::inet_pton(AF_INET6, host.c_str(), &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons(static_cast<std::uint16_t>(p));
        u.len = sizeof(sockaddr_in6);
        u.text = "[" + host + "]:" + std::to_string(p);
    } else {
        why = "'" + host + "' is not an IPv4 or IPv6 address";
        return std::nullopt;
    }
    return u;
}

std::vector<Upstream> upstreams(const std::vector<std::string>& given,
                                const std::filesystem::path& resolv_conf, std::string& why)
{
    std::vector<Upstream> out;
    for (const auto& text : given) {
        auto u = parse_upstream(text, why);
        if (!u)
            throw Error("--dns-upstream: " + why + " (expected ADDR, ADDR:PORT or [ADDR6]:PORT)");
        out.push_back(*u);
    }
    return out.empty() ? upstreams_from(resolv_conf, why) : out;
}

std::vector<Upstream> upstreams_from(const std::filesystem::path& resolv_conf, std::string& why)
{
    std::vector<Upstream> out;
    std::ifstream in(resolv_conf);
    if (!in) {
        why = "cannot read " + resolv_conf.string();
        return out;
    }
    std::string line;
    while (std::getline(in, line)) {
        std::istringstream words(line);
        std::string key, value;
        if (!(words >> key >> value) || key != "nameserver")
            continue;
        value = value.substr(0, value.find('%')); // a link-local address's zone
        std::string bad;
        if (auto u = parse_upstream(value.find(':') != std::string::npos ? "[" + value + "]" : value, bad))
            out.push_back(*u);
    }
    if (out.empty())
        why = resolv_conf.string() + " names no nameserver";
    return out;
}

struct Gateway::Impl {
    bpf::Guard& g;
    GatewayOptions o;
    SocketFinder finder;
    int ep = -1, wake = -1;
    int udp[2] = {-1, -1}, tcp[2] = {-1, -1}; // [0] IPv4, [1] IPv6
    std::uint16_t port = 0;
    std::atomic<bool> stop{false};

    mutable PiMutex mu;
    std::vector<Event> pending; ///< guarded by mu: events not yet taken
    GatewayStats stats;         ///< guarded by mu
    std::vector<Binding> bound; ///< guarded by mu: as of the last gc (each second)

    // Where an answer goes back to.
    struct Sender {
        bool tcp = false;
        int listen_fd = -1;      ///< UDP: the gateway socket it came in on
        sockaddr_storage peer{}; ///< UDP: the agent's socket
        int conn = -1;           ///< TCP: the connection
    };
    struct Query {
        Sender to;
        cordon_dns_sock who{};
        std::vector<std::uint8_t> wire; ///< the agent's query, with our id
        std::uint16_t their_id = 0, our_id = 0;
        std::string name;
        std::uint16_t qtype = 0;
        cordon_dns_rule rule{}; ///< the slots the answer's addresses get (nslots 0: none)
        std::uint16_t grace_s = 0;
        bool bind = false;  ///< a rule names it
        bool audit = false; ///< passed only because the agent is in audit mode
        bool over_tcp = false;
        std::size_t upstream = 0;
        std::int64_t deadline_ns = 0;
        std::vector<std::uint8_t> in, out;
        std::size_t out_done = 0;
    };
    std::map<int, Query> inflight; ///< by upstream socket
    std::map<std::uint64_t, unsigned> per_agent; ///< queries in flight
    // What each agent may still do: its query budget (a token bucket), its TCP connections,
    // its answered addresses, and the refusals recorded this second (the rest are counted in
    // one record per second, so a flood of refusals cannot fill the disk).
    struct Budget {
        double tokens = kQueryBurst;
        std::int64_t refilled_ns = 0;
        unsigned conns = 0;
        std::size_t hosts = 0;
        std::int64_t second = 0;
        unsigned recorded = 0;
        std::uint64_t unrecorded = 0;
        cordon_dns_sock who{};
    };
    std::map<std::uint64_t, Budget> budgets;
    struct Conn {
        cordon_dns_sock who{};
        std::vector<std::uint8_t> in, out;
        unsigned waiting = 0; ///< its queries in flight
        bool closing = false;
        std::int64_t active_ns = 0; ///< when it last sent or was answered
    };
    std::map<int, Conn> conns;
    // The answered addresses, as written into cordon_dns_hosts, with the name each slot came from.
    struct Slot {
        cordon_net_slot s{};
        std::int64_t expires_ns = 0;
        std::string name;
    };
    std::map<HostKeyBytes, std::vector<Slot>> hosts;
    std::int64_t next_gc_ns = 0;

    Impl(bpf::Guard& guard, GatewayOptions opts) : g(guard), o(std::move(opts)) {}
    ~Impl()
    {
        for (auto& [fd, q] : inflight)
            ::close(fd);
        for (auto& [fd, c] : conns)
            ::close(fd);
        for (int fd : {udp[0], udp[1], tcp[0], tcp[1], ep, wake})
            if (fd >= 0)
                ::close(fd);
    }

    void open_sockets(std::uint16_t want);
    void watch(int fd, std::uint32_t events) const
    {
        epoll_event e{.events = events, .data = {.fd = fd}};
        ::epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e);
    }
    void rewatch(int fd, std::uint32_t events) const
    {
        epoll_event e{.events = events, .data = {.fd = fd}};
        ::epoll_ctl(ep, EPOLL_CTL_MOD, fd, &e);
    }
    void run();
    void on_datagrams(int fd);
    void on_accept(int fd);
    void on_conn(int fd, std::uint32_t events);
    void flush_conn(int fd, Conn& c);
    void close_conn(int fd);
    void on_upstream(int fd, std::uint32_t events);
    void expire(std::int64_t now);
    void gc(std::int64_t now);

    std::optional<cordon_dns_sock> identify(int protocol, const sockaddr_storage& peer, int family);
    void query(std::span<const std::uint8_t> wire, Sender to, const cordon_dns_sock& who);
    bool rule_for(std::uint32_t policy_id, const std::string& name, cordon_dns_rule& out) const;
    bool forward(Query q);
    bool within_budget(std::uint64_t agent);
    void finish(int fd, Query& q, std::span<const std::uint8_t> answer);
    void fail(Query& q, Rcode rcode, const std::string& outcome, const std::string& reason);
    void reply(const Sender& to, std::vector<std::uint8_t> wire);
    bool bind_address(const Query& q, const Address& a, std::int64_t now);
    void write_host(const HostKeyBytes& key, const std::vector<Slot>& slots);
    static cordon_dns_host host_value(const std::vector<Slot>& slots)
    {
        cordon_dns_host v{};
        v.nslots = static_cast<__u32>(std::min<std::size_t>(slots.size(), CORDON_NET_SLOTS));
        for (std::size_t i = 0; i < v.nslots; ++i)
            v.slots[i] = {.slot = slots[i].s, ._pad0 = 0,
                          .expires_ns = static_cast<__u64>(slots[i].expires_ns)};
        return v;
    }
    void done(const Query& q);
    void report(Event e);
    void push_event(Event e);
    template <typename F> void count(F f)
    {
        std::lock_guard lk(mu);
        f(stats);
    }
};

void Gateway::Impl::open_sockets(std::uint16_t want)
{
    // One port for UDP and TCP on both families: bound by UDP on IPv4 first (the kernel picks
    // a free one when none is asked for), then the others on it; a taken port is tried again.
    for (int attempt = 0; attempt < 16; ++attempt) {
        udp[0] = bound_socket(AF_INET, SOCK_DGRAM, want);
        if (udp[0] < 0)
            throw Error(fmt::format("the DNS gateway cannot bind UDP 127.0.0.1:{}: {}", want,
                                    errno_text(errno)));
        port = port_of(udp[0]);
        tcp[0] = bound_socket(AF_INET, SOCK_STREAM, port);
        if (tcp[0] >= 0) {
            udp[1] = bound_socket(AF_INET6, SOCK_DGRAM, port);
            if (udp[1] >= 0)
                tcp[1] = bound_socket(AF_INET6, SOCK_STREAM, port);
            if (udp[1] < 0 && errno == EADDRNOTAVAIL)
                spdlog::warn("DNS gateway: no ::1 on this host; agents' IPv6 DNS fails closed");
            if (udp[1] < 0 && errno != EADDRNOTAVAIL && errno != EAFNOSUPPORT && !want) {
                ::close(udp[0]);
                ::close(tcp[0]);
                continue;
            }
            return;
        }
        ::close(udp[0]);
        if (want)
            throw Error(fmt::format("the DNS gateway cannot bind TCP 127.0.0.1:{}: {}", want,
                                    errno_text(errno)));
    }
    throw Error("the DNS gateway found no port free for both UDP and TCP on loopback");
}

std::optional<cordon_dns_sock> Gateway::Impl::identify(int protocol, const sockaddr_storage& peer,
                                                       int family)
{
    const auto local = loopback(family, port);
    const auto cookie = finder.cookie(protocol, peer, local);
    if (!cookie)
        return std::nullopt;
    return g.dns_sock(*cookie);
}

void Gateway::Impl::run()
{
    std::array<epoll_event, 64> evs{};
    while (!stop.load(std::memory_order_relaxed)) {
        const int n = ::epoll_wait(ep, evs.data(), static_cast<int>(evs.size()), 100);
        for (int i = 0; i < n; ++i) {
            const int fd = evs[i].data.fd;
            const auto ev = evs[i].events;
            if (fd == wake)
                continue;
            if (fd == udp[0] || fd == udp[1])
                on_datagrams(fd);
            else if (fd == tcp[0] || fd == tcp[1])
                on_accept(fd);
            else if (conns.contains(fd))
                on_conn(fd, ev);
            else if (inflight.contains(fd))
                on_upstream(fd, ev);
        }
        const auto now = monotonic_ns();
        expire(now);
        if (now >= next_gc_ns) {
            gc(now);
            next_gc_ns = now + 1'000'000'000;
        }
    }
}

// A bounded number of datagrams per turn, so that TCP connections and answers are served too.
void Gateway::Impl::on_datagrams(int fd)
{
    static thread_local std::vector<std::uint8_t> buf(kMaxMessage);
    for (int i = 0; i < kDatagramsPerTurn; ++i) {
        Sender s{.tcp = false, .listen_fd = fd, .peer = {}, .conn = -1};
        socklen_t len = sizeof(s.peer);
        const ssize_t n = ::recvfrom(fd, buf.data(), buf.size(), 0,
                                     reinterpret_cast<sockaddr*>(&s.peer), &len);
        if (n < 0)
            return;
        const auto who = identify(IPPROTO_UDP, s.peer, fd == udp[0] ? AF_INET : AF_INET6);
        std::span<const std::uint8_t> wire(buf.data(), static_cast<std::size_t>(n));
        if (!who) {
            // Not a socket the programs steered (a host process, or an entry the LRU dropped):
            // refused, it binds nothing.
            count([](auto& st) { ++st.unattributed; ++st.queries; });
            std::string why;
            if (parse(wire, why))
                reply(s, reply_with(wire, Rcode::Refused));
            continue;
        }
        query(wire, s, *who);
    }
}

void Gateway::Impl::on_accept(int fd)
{
    for (int i = 0; i < 64; ++i) {
        sockaddr_storage peer{};
        socklen_t len = sizeof(peer);
        const int c = ::accept4(fd, reinterpret_cast<sockaddr*>(&peer), &len,
                                SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (c < 0)
            return;
        const auto who = identify(IPPROTO_TCP, peer, fd == tcp[0] ? AF_INET : AF_INET6);
        if (!who || conns.size() >= kMaxConns || budgets[who->agent].conns >= kConnsPerAgent) {
            count([&](auto& s) { ++(who ? s.busy : s.unattributed); });
            ::close(c);
            continue;
        }
        ++budgets[who->agent].conns;
        conns[c] = Conn{.who = *who, .in = {}, .out = {}, .waiting = 0, .closing = false,
                        .active_ns = monotonic_ns()};
        watch(c, EPOLLIN | EPOLLRDHUP);
    }
}

void Gateway::Impl::on_conn(int fd, std::uint32_t events)
{
    auto& c = conns.at(fd);
    if (events & EPOLLOUT)
        flush_conn(fd, c);
    if (!(events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)))
        return;
    std::uint8_t buf[16384];
    const ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n <= 0) {
        if (n < 0 && errno == EAGAIN)
            return;
        close_conn(fd);
        return;
    }
    c.in.insert(c.in.end(), buf, buf + n);
    c.active_ns = monotonic_ns();
    // Each whole frame (two bytes of length, then the message) is a query.
    while (c.in.size() >= 2) {
        const std::size_t len = static_cast<std::size_t>(c.in[0] << 8 | c.in[1]);
        if (c.in.size() < 2 + len)
            break;
        std::vector<std::uint8_t> msg(c.in.begin() + 2, c.in.begin() + 2 + static_cast<long>(len));
        c.in.erase(c.in.begin(), c.in.begin() + 2 + static_cast<long>(len));
        query(msg, Sender{.tcp = true, .listen_fd = -1, .peer = {}, .conn = fd}, c.who);
        if (!conns.contains(fd))
            return;
    }
}

void Gateway::Impl::flush_conn(int fd, Conn& c)
{
    while (!c.out.empty()) {
        const ssize_t n = ::write(fd, c.out.data(), c.out.size());
        if (n <= 0)
            break;
        c.out.erase(c.out.begin(), c.out.begin() + n);
    }
    rewatch(fd, EPOLLIN | EPOLLRDHUP | (c.out.empty() ? 0u : EPOLLOUT));
}

void Gateway::Impl::close_conn(int fd)
{
    // Queries of this connection still in flight lose where to go: their answers are dropped.
    for (auto& [ufd, q] : inflight)
        if (q.to.tcp && q.to.conn == fd)
            q.to.conn = -1;
    if (auto it = conns.find(fd); it != conns.end())
        if (auto& b = budgets[it->second.who.agent]; b.conns > 0)
            --b.conns;
    ::close(fd);
    conns.erase(fd);
}

bool Gateway::Impl::rule_for(std::uint32_t policy_id, const std::string& name,
                             cordon_dns_rule& out) const
{
    // The exact name, then "*." over each name above it; every match's slots, in rule order.
    std::vector<cordon_net_slot> slots;
    if (auto r = g.dns_rule(policy_id, name))
        slots.insert(slots.end(), r->slots, r->slots + std::min<__u32>(r->nslots, CORDON_NET_SLOTS));
    for (std::size_t dot = name.find('.'); dot != std::string::npos; dot = name.find('.', dot + 1))
        if (auto r = g.dns_rule(policy_id, "*" + name.substr(dot)))
            slots.insert(slots.end(), r->slots,
                         r->slots + std::min<__u32>(r->nslots, CORDON_NET_SLOTS));
    if (slots.empty())
        return false;
    std::stable_sort(slots.begin(), slots.end(),
                     [](const auto& a, const auto& b) { return a.rule_id < b.rule_id; });
    out = {};
    out.nslots = static_cast<__u32>(std::min<std::size_t>(slots.size(), CORDON_NET_SLOTS));
    std::copy_n(slots.begin(), out.nslots, out.slots);
    return true;
}

// One more query of this agent within its budget? Over it, the query is dropped unanswered
// (its resolver tries again later) and counted: a flood spends its own budget, not the others'.
bool Gateway::Impl::within_budget(std::uint64_t agent)
{
    auto& b = budgets[agent];
    const auto now = monotonic_ns();
    if (b.refilled_ns)
        b.tokens = std::min(kQueryBurst, b.tokens + static_cast<double>(now - b.refilled_ns) *
                                                        kQueriesPerSecond / 1e9);
    b.refilled_ns = now;
    if (b.tokens < 1)
        return false;
    b.tokens -= 1;
    return true;
}

void Gateway::Impl::query(std::span<const std::uint8_t> wire, Sender to, const cordon_dns_sock& who)
{
    count([](auto& s) { ++s.queries; });
    if (!within_budget(who.agent)) {
        count([](auto& s) { ++s.busy; });
        return;
    }
    std::string why;
    const auto m = parse(wire, why);
    Query q;
    q.to = to;
    q.who = who;
    q.over_tcp = to.tcp;
    if (!m || m->response() || ((m->flags >> 11) & 0xf) != 0) {
        count([](auto& s) { ++s.malformed; });
        if (wire.size() >= 12)
            reply(to, reply_with(wire, Rcode::FormErr));
        return;
    }
    q.their_id = m->id;
    q.name = m->questions[0].name;
    q.qtype = m->questions[0].type;
    q.wire.assign(wire.begin(), wire.end());
    // The agent as it is now, not as it was when the socket was steered: a mode or policy
    // changed since (audit to enforce, an apply) applies to sockets it already has.
    const auto agent = g.agent(who.agent);
    if (!agent) { // the agent is gone: fails closed
        fail(q, Rcode::Refused, "refused", "the agent is no longer guarded");
        return;
    }
    q.who.policy_id = agent->policy_id;
    q.who.mode = agent->mode;
    const auto settings = g.policy_settings(q.who.policy_id);
    if (!settings) { // the agent's policy is gone: fails closed
        fail(q, Rcode::Refused, "refused", "the agent's policy is not loaded");
        return;
    }
    q.grace_s = settings->dns_grace_s;
    q.bind = m->questions[0].klass == kClassIn && rule_for(q.who.policy_id, q.name, q.rule);
    if (!q.bind) {
        const bool audit = q.who.mode == CORDON_MODE_AUDIT;
        if (settings->dns_unknown != CORDON_DNS_PASS && !audit) {
            fail(q, Rcode::Refused, "refused", "no host rule names it");
            return;
        }
        q.audit = settings->dns_unknown != CORDON_DNS_PASS;
    }
    unsigned& mine = per_agent[who.agent];
    if (mine >= o.per_agent_inflight || inflight.size() >= o.max_inflight) {
        count([](auto& s) { ++s.busy; });
        fail(q, Rcode::ServFail, "failed",
             mine >= o.per_agent_inflight ? "the agent has too many queries in flight"
                                          : "the gateway has too many queries in flight");
        return;
    }
    if (o.upstreams.empty()) {
        fail(q, Rcode::ServFail, "failed", "no upstream resolver");
        return;
    }
    forward(std::move(q));
}

bool Gateway::Impl::forward(Query q)
{
    const auto& up = o.upstreams[q.upstream];
    const int fd = ::socket(up.addr.ss_family, (q.over_tcp ? SOCK_STREAM : SOCK_DGRAM) |
                                                   SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0 || (::connect(fd, reinterpret_cast<const sockaddr*>(&up.addr), up.len) != 0 &&
                   errno != EINPROGRESS)) {
        const std::string why = "cannot reach " + up.text + ": " + errno_text(errno);
        if (fd >= 0)
            ::close(fd);
        if (q.upstream > 0)
            done(q); // a later attempt: the first one counted it in flight
        set_id(q.wire, q.their_id);
        fail(q, Rcode::ServFail, "failed", why);
        return false;
    }
    q.our_id = random_id();
    set_id(q.wire, q.our_id);
    q.deadline_ns = monotonic_ns() + static_cast<std::int64_t>(o.timeout_ms) * 1'000'000;
    q.in.clear();
    q.out.clear();
    q.out_done = 0;
    if (q.over_tcp) {
        q.out.push_back(static_cast<std::uint8_t>(q.wire.size() >> 8));
        q.out.push_back(static_cast<std::uint8_t>(q.wire.size() & 0xff));
        q.out.insert(q.out.end(), q.wire.begin(), q.wire.end());
        watch(fd, EPOLLIN | EPOLLOUT);
    } else {
        ::send(fd, q.wire.data(), q.wire.size(), 0);
        watch(fd, EPOLLIN);
    }
    if (q.upstream == 0)
        ++per_agent[q.who.agent];
    if (q.to.tcp && conns.contains(q.to.conn))
        ++conns[q.to.conn].waiting;
    inflight.emplace(fd, std::move(q));
    return true;
}

void Gateway::Impl::on_upstream(int fd, std::uint32_t events)
{
    auto& q = inflight.at(fd);
    if (q.over_tcp) {
        if ((events & EPOLLOUT) && q.out_done < q.out.size()) {
            const ssize_t n = ::write(fd, q.out.data() + q.out_done, q.out.size() - q.out_done);
            if (n > 0)
                q.out_done += static_cast<std::size_t>(n);
            if (q.out_done == q.out.size())
                rewatch(fd, EPOLLIN);
        }
        if (!(events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
            return;
        std::uint8_t buf[16384];
        const ssize_t n = ::read(fd, buf, sizeof(buf));
        if (n > 0)
            q.in.insert(q.in.end(), buf, buf + n);
        if (q.in.size() >= 2) {
            const std::size_t len = static_cast<std::size_t>(q.in[0] << 8 | q.in[1]);
            if (q.in.size() >= 2 + len) {
                finish(fd, q, std::span<const std::uint8_t>(q.in).subspan(2, len));
                return;
            }
        }
        if (n == 0 || (n < 0 && errno != EAGAIN))
            q.deadline_ns = 0; // closed early: failed at the next expiry check
        return;
    }
    std::vector<std::uint8_t> buf(kMaxMessage);
    for (;;) {
        const ssize_t n = ::recv(fd, buf.data(), buf.size(), 0);
        if (n < 0) {
            if (errno != EAGAIN)
                q.deadline_ns = 0; // refused (ICMP): failed at the next expiry check
            return;
        }
        std::span<const std::uint8_t> a(buf.data(), static_cast<std::size_t>(n));
        std::string why;
        const auto m = parse(a, why);
        // Only the answer to this question with this id is taken; anything else (a spoof, a
        // late answer to an earlier attempt) is ignored and the query waits on.
        if (!m || !m->response() || m->id != q.our_id || m->questions[0].name != q.name ||
            m->questions[0].type != q.qtype) {
            if (!m)
                count([](auto& s) { ++s.malformed; });
            continue;
        }
        if (m->truncated()) { // the whole answer is asked again over TCP
            Query again = std::move(q);
            inflight.erase(fd);
            ::close(fd);
            again.over_tcp = true;
            if (again.upstream == 0)
                --per_agent[again.who.agent]; // counted again by forward()
            again.upstream = 0;
            set_id(again.wire, again.their_id);
            forward(std::move(again));
            return;
        }
        finish(fd, q, a);
        return;
    }
}

void Gateway::Impl::finish(int fd, Query& q, std::span<const std::uint8_t> answer)
{
    std::string why;
    const auto m = parse(answer, why);
    Event e{.agent = q.who.agent, .agent_id = q.who.agent_id, .task_id = q.who.task_id,
            .name = q.name, .qtype = q.qtype, .tcp = q.to.tcp, .outcome = "answered",
            .addresses = {}, .ttl = 0, .rule_id = q.bind ? q.rule.slots[0].rule_id : 0,
            .rcode = {}, .reason = {}, .audit = q.audit};
    if (!m || m->id != q.our_id || m->questions[0].name != q.name ||
        m->questions[0].type != q.qtype) {
        count([](auto& s) { ++s.malformed; });
        fail(q, Rcode::ServFail, "failed",
             m ? std::string("the upstream answered another question") 
               : "the upstream's answer does not parse: " + why);
    } else {
        e.rcode = rcode_name(m->rcode());
        bool full = false;
        std::uint32_t least = 0xffffffff;
        if (q.bind && m->rcode() == Rcode::NoError) {
            const auto now = monotonic_ns();
            for (const auto& a : addresses_for(*m, q.name)) {
                if (!bind_address(q, a, now)) {
                    full = true;
                    break;
                }
                e.addresses.push_back(addr_text(a.family, a.addr.data()));
                least = std::min(least, a.ttl);
            }
        }
        if (full) {
            count([](auto& s) { ++s.full; });
            fail(q, Rcode::Refused, "full",
                 "no room for its addresses (cordon_dns_hosts holds " +
                     std::to_string(CORDON_MAX_DNS_HOSTS) + ")");
        } else {
            e.outcome = !q.bind ? "passed" : e.addresses.empty() ? "answered" : "allowed";
            e.ttl = e.addresses.empty() ? 0 : least;
            count([&](auto& s) { ++(q.bind ? s.allowed : s.passed); });
            std::vector<std::uint8_t> out(answer.begin(), answer.end());
            set_id(out, q.their_id);
            reply(q.to, std::move(out)); // only now: the addresses are in the map
            report(std::move(e));
        }
    }
    done(q);
    inflight.erase(fd);
    ::close(fd);
}

void Gateway::Impl::done(const Query& q)
{
    if (auto it = per_agent.find(q.who.agent); it != per_agent.end() && --it->second == 0)
        per_agent.erase(it);
    if (q.to.tcp)
        if (auto it = conns.find(q.to.conn); it != conns.end() && it->second.waiting)
            --it->second.waiting;
}

void Gateway::Impl::fail(Query& q, Rcode rcode, const std::string& outcome, const std::string& reason)
{
    if (outcome == "refused")
        count([](auto& s) { ++s.refused; });
    else if (outcome == "failed")
        count([](auto& s) { ++s.failed; });
    if (!q.wire.empty()) {
        std::vector<std::uint8_t> w = q.wire;
        set_id(w, q.their_id);
        reply(q.to, reply_with(w, rcode));
    }
    report(Event{.agent = q.who.agent, .agent_id = q.who.agent_id, .task_id = q.who.task_id,
                 .name = q.name, .qtype = q.qtype, .tcp = q.to.tcp, .outcome = outcome,
                 .addresses = {}, .ttl = 0, .rule_id = q.bind ? q.rule.slots[0].rule_id : 0,
                 .rcode = rcode_name(rcode), .reason = reason, .audit = false});
}

void Gateway::Impl::reply(const Sender& to, std::vector<std::uint8_t> wire)
{
    if (!to.tcp) {
        ::sendto(to.listen_fd, wire.data(), wire.size(), MSG_DONTWAIT,
                 reinterpret_cast<const sockaddr*>(&to.peer), len_of(to.peer));
        return;
    }
    auto it = conns.find(to.conn);
    if (it == conns.end())
        return;
    auto& c = it->second;
    if (c.out.size() > (1u << 20)) { // a reader that does not read: closed
        close_conn(to.conn);
        return;
    }
    c.out.push_back(static_cast<std::uint8_t>(wire.size() >> 8));
    c.out.push_back(static_cast<std::uint8_t>(wire.size() & 0xff));
    c.out.insert(c.out.end(), wire.begin(), wire.end());
    flush_conn(to.conn, c);
}

// Every slot of the rule(s) naming q.name on this address, until TTL + grace; merged with what
// other names already hold there (each slot keeps its own expiry).
bool Gateway::Impl::bind_address(const Query& q, const Address& a, std::int64_t now)
{
    cordon_dns_host_key k{};
    k.agent = q.who.agent;
    k.policy_id = q.who.policy_id;
    k.family = static_cast<__u8>(a.family);
    std::memcpy(k.addr, a.addr.data(), a.family == 4 ? 4 : 16);
    const auto key = bytes_of(k);
    const std::int64_t expires =
        now + (static_cast<std::int64_t>(std::min(a.ttl, kMaxTtl)) + q.grace_s) * 1'000'000'000;
    const bool fresh = !hosts.count(key);
    auto& budget = budgets[q.who.agent];
    if (fresh && budget.hosts >= kHostsPerAgent)
        return false; // this agent's share of the table is used up: its answer is refused
    auto slots = fresh ? std::vector<Slot>{} : hosts[key];
    std::erase_if(slots, [now](const Slot& s) { return s.expires_ns <= now; });
    for (std::uint32_t i = 0; i < q.rule.nslots; ++i) {
        const auto& want = q.rule.slots[i];
        auto same = std::find_if(slots.begin(), slots.end(), [&](const Slot& s) {
            return s.name == q.name && std::memcmp(&s.s, &want, sizeof(want)) == 0;
        });
        if (same != slots.end())
            same->expires_ns = std::max(same->expires_ns, expires);
        else
            slots.push_back(Slot{.s = want, .expires_ns = expires, .name = q.name});
    }
    if (slots.size() > CORDON_NET_SLOTS)
        return false; // more rules' ports on one address than an entry holds: refused
    std::stable_sort(slots.begin(), slots.end(),
                     [](const Slot& x, const Slot& y) { return x.s.rule_id < y.s.rule_id; });
    if (!g.set_dns_host(k, host_value(slots)))
        return false;
    hosts[key] = std::move(slots);
    budget.hosts += fresh ? 1 : 0;
    return true;
}

void Gateway::Impl::write_host(const HostKeyBytes& key, const std::vector<Slot>& slots)
{
    cordon_dns_host_key k{};
    std::memcpy(&k, key.data(), sizeof(k));
    if (slots.empty()) {
        g.remove_dns_host(k);
        return;
    }
    g.set_dns_host(k, host_value(slots));
}

// Queries whose upstream did not answer in time: the next upstream, or SERVFAIL.
void Gateway::Impl::expire(std::int64_t now)
{
    std::vector<int> late;
    for (const auto& [fd, q] : inflight)
        if (q.deadline_ns <= now)
            late.push_back(fd);
    for (int fd : late) {
        Query q = std::move(inflight.at(fd));
        inflight.erase(fd);
        ::close(fd);
        if (q.upstream + 1 < o.upstreams.size()) {
            ++q.upstream;
            set_id(q.wire, q.their_id);
            forward(std::move(q)); // on failure it answers SERVFAIL and settles the count
            continue;
        }
        done(q);
        set_id(q.wire, q.their_id);
        fail(q, Rcode::ServFail, "failed",
             fmt::format("no answer from {} within {} ms", o.upstreams[q.upstream].text,
                         o.timeout_ms));
    }
}

// Expired slots out of the map; entries with none left deleted.
void Gateway::Impl::gc(std::int64_t now)
{
    // Entries of a policy no longer loaded are gone from the kernel (unload_policy): forgotten
    // here too, never written back.
    std::map<std::uint32_t, bool> loaded;
    for (auto it = hosts.begin(); it != hosts.end();) {
        cordon_dns_host_key k{};
        std::memcpy(&k, it->first.data(), sizeof(k));
        auto [known, fresh] = loaded.try_emplace(k.policy_id, false);
        if (fresh)
            known->second = g.policy_settings(k.policy_id).has_value();
        auto& slots = it->second;
        const auto before = slots.size();
        if (!known->second)
            slots.clear();
        else
            std::erase_if(slots, [now](const Slot& s) { return s.expires_ns <= now; });
        if (slots.size() != before && known->second)
            write_host(it->first, slots);
        if (slots.empty()) {
            if (auto& b = budgets[k.agent]; b.hosts > 0)
                --b.hosts;
            it = hosts.erase(it);
        } else {
            ++it;
        }
    }
    // TCP connections that ask nothing: closed, so that held connections cannot exhaust them.
    std::vector<int> idle;
    for (const auto& [fd, c] : conns)
        if (!c.waiting && c.out.empty() && now - c.active_ns > kConnIdleNs)
            idle.push_back(fd);
    for (int fd : idle)
        close_conn(fd);
    // Refusals over an agent's share of the records this second: one record that counts them.
    for (auto it = budgets.begin(); it != budgets.end();) {
        auto& b = it->second;
        if (b.unrecorded)
            push_event(Event{.agent = it->first, .agent_id = b.who.agent_id, .task_id = 0,
                             .name = "", .qtype = 0, .tcp = false, .outcome = "suppressed",
                             .addresses = {}, .ttl = 0, .rule_id = 0, .rcode = {},
                             .reason = fmt::format("{} more refused or failed queries in the last "
                                                   "second were counted, not recorded",
                                                   b.unrecorded),
                             .audit = false});
        b.unrecorded = 0;
        b.recorded = 0;
        const bool idle_agent = !b.conns && !b.hosts && !per_agent.count(it->first) &&
                                now - b.refilled_ns > 10'000'000'000;
        it = idle_agent ? budgets.erase(it) : std::next(it);
    }
    std::vector<Binding> now_bound;
    for (const auto& [key, slots] : hosts) {
        cordon_dns_host_key k{};
        std::memcpy(&k, key.data(), sizeof(k));
        for (const auto& s : slots)
            now_bound.push_back({.agent = k.agent, .name = s.name,
                                 .address = addr_text(k.family, k.addr), .rule_id = s.s.rule_id,
                                 .expires_ns = s.expires_ns});
    }
    std::lock_guard lk(mu);
    stats.bound = hosts.size();
    bound = std::move(now_bound);
}

void Gateway::Impl::report(Event e)
{
    if (e.outcome != "allowed" && e.outcome != "answered" && e.outcome != "passed") {
        auto& b = budgets[e.agent];
        b.who.agent_id = e.agent_id;
        if (b.recorded >= kRecordsPerSecond) {
            ++b.unrecorded;
            return;
        }
        ++b.recorded;
    }
    push_event(std::move(e));
}

void Gateway::Impl::push_event(Event e)
{
    std::lock_guard lk(mu);
    if (pending.size() >= kMaxEvents) {
        ++stats.events_dropped;
        return;
    }
    pending.push_back(std::move(e));
}

Gateway::Gateway(bpf::Guard& g, GatewayOptions o)
    : impl_(std::make_unique<Impl>(g, std::move(o)))
{
    auto& d = *impl_;
    d.open_sockets(d.o.port);
    port_ = d.port;
    d.ep = ::epoll_create1(EPOLL_CLOEXEC);
    d.wake = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (d.ep < 0 || d.wake < 0)
        throw Error("the DNS gateway cannot make its epoll set: " + errno_text(errno));
    for (int fd : {d.udp[0], d.udp[1], d.tcp[0], d.tcp[1], d.wake})
        if (fd >= 0)
            d.watch(fd, EPOLLIN);
    d.stats.port = port_;
    for (const auto& u : d.o.upstreams)
        d.stats.upstreams.push_back(u.text);
    // The programs steer from this write on.
    g.set_dns_config({.state = CORDON_DNS_ON, ._pad0 = 0, .port = port_, ._pad1 = 0});
    // The thread takes no signal: a process-directed one (SIGCHLD, SIGTERM) must reach the
    // owner's signalfd, which only sees signals that every thread blocks.
    sigset_t all, old;
    sigfillset(&all);
    ::pthread_sigmask(SIG_SETMASK, &all, &old);
    thread_ = std::thread([this] { impl_->run(); });
    ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
}

Gateway::~Gateway()
{
    impl_->stop = true;
    const std::uint64_t one = 1;
    (void)!::write(impl_->wake, &one, sizeof(one));
    if (thread_.joinable())
        thread_.join();
    try {
        // Fails closed: with no gateway, agents' DNS is refused, not sent where it meant to go.
        impl_->g.set_dns_config({.state = CORDON_DNS_DOWN, ._pad0 = 0, .port = 0, ._pad1 = 0});
    } catch (const std::exception& e) {
        spdlog::warn("{}", e.what());
    }
}

std::vector<Event> Gateway::take_events()
{
    std::lock_guard lk(impl_->mu);
    return std::exchange(impl_->pending, {});
}

GatewayStats Gateway::stats() const
{
    std::lock_guard lk(impl_->mu);
    return impl_->stats;
}

std::vector<Binding> Gateway::bindings(std::uint64_t agent) const
{
    std::lock_guard lk(impl_->mu);
    std::vector<Binding> out;
    const auto now = monotonic_ns();
    for (const auto& b : impl_->bound)
        if ((!agent || b.agent == agent) && b.expires_ns > now)
            out.push_back(b);
    return out;
}

} // namespace cordon::dns
