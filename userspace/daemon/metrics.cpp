// SPDX-License-Identifier: Apache-2.0
#include "daemon/metrics.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <ctime>
#include <fstream>
#include <algorithm>
#include <optional>

#include <spdlog/spdlog.h>

#include <bpf/bpf.h>
#include <fmt/format.h>

#include "agents/cgroup.h"
#include "common/error.h"
#include "daemon/caller.h"
#include "control/controller.h"
#include "events/format.h"
#include "events/pipeline.h"

namespace cordon::daemon {

namespace {

constexpr int kInetDiagCgroupId = 21; // INET_DIAG_CGROUP_ID, Linux 5.9

std::int64_t mono_ms()
{
    timespec ts{};
    ::clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<std::int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1'000'000;
}

// An address as sock_diag wants it: the family, and the address in 16 bytes (IPv4-mapped IPv6
// addresses become IPv4: the client's socket is an IPv4 one then).
struct DiagAddr {
    int family = 0;
    std::uint32_t words[4] = {};
    std::uint16_t port = 0; // network order
};

DiagAddr diag_addr(const sockaddr_storage& ss)
{
    DiagAddr a;
    if (ss.ss_family == AF_INET) {
        const auto& in = reinterpret_cast<const sockaddr_in&>(ss);
        a.family = AF_INET;
        std::memcpy(a.words, &in.sin_addr, 4);
        a.port = in.sin_port;
    } else if (ss.ss_family == AF_INET6) {
        const auto& in6 = reinterpret_cast<const sockaddr_in6&>(ss);
        a.port = in6.sin6_port;
        if (IN6_IS_ADDR_V4MAPPED(&in6.sin6_addr)) {
            a.family = AF_INET;
            std::memcpy(a.words, in6.sin6_addr.s6_addr + 12, 4);
        } else {
            a.family = AF_INET6;
            std::memcpy(a.words, &in6.sin6_addr, 16);
        }
    }
    return a;
}

// What the kernel says of a local TCP socket (sock_diag).
struct ClientSocket {
    std::uint64_t cgroup = 0; ///< the cgroup that made it
    std::uint32_t inode = 0;
    std::uint32_t uid = 0;
};

// The local TCP socket with this source and destination; nullopt when there is no such local
// socket (a peer on another host). Throws cordon::Error when the kernel cannot be asked, or
// gives no cgroup.
std::optional<ClientSocket> client_socket(const DiagAddr& src, const DiagAddr& dst)
{
    inet_diag_req_v2 r{};
    r.sdiag_family = static_cast<__u8>(src.family);
    r.sdiag_protocol = IPPROTO_TCP;
    r.idiag_states = ~0u;
    r.id.idiag_sport = src.port;
    r.id.idiag_dport = dst.port;
    std::memcpy(r.id.idiag_src, src.words, sizeof(src.words));
    std::memcpy(r.id.idiag_dst, dst.words, sizeof(dst.words));
    r.id.idiag_cookie[0] = r.id.idiag_cookie[1] = INET_DIAG_NOCOOKIE;
    std::optional<ClientSocket> out;
    std::string err;
    alignas(nlmsghdr) char buf[8192];
    const long n = sock_diag_ask(r, buf, sizeof(buf));
    if (n < 0) {
        err = "cannot ask sock_diag: " + errno_text(errno);
    } else {
        const auto* nh = reinterpret_cast<const nlmsghdr*>(buf);
        if (!NLMSG_OK(nh, static_cast<unsigned>(n))) {
            err = "no answer from sock_diag";
        } else if (nh->nlmsg_type == NLMSG_ERROR) {
            const auto* e = reinterpret_cast<const nlmsgerr*>(buf + NLMSG_HDRLEN);
            if (e->error != -ENOENT)
                err = "sock_diag: " + errno_text(-e->error);
        } else {
            const auto* m = reinterpret_cast<const inet_diag_msg*>(buf + NLMSG_HDRLEN);
            int len = static_cast<int>(nh->nlmsg_len - NLMSG_LENGTH(sizeof(*m)));
            for (const auto* a = reinterpret_cast<const rtattr*>(m + 1); RTA_OK(a, len);
                 a = RTA_NEXT(a, len))
                if (a->rta_type == kInetDiagCgroupId && RTA_PAYLOAD(a) >= 8) {
                    out.emplace();
                    std::memcpy(&out->cgroup, RTA_DATA(a), 8);
                    out->inode = m->idiag_inode;
                    out->uid = m->idiag_uid;
                }
            if (!out)
                err = "sock_diag gives no socket cgroup (Linux 5.9+)";
        }
    }
    if (!err.empty())
        throw Error(err);
    return out;
}

// Whether `a` is an address of this host (loopback, or an interface's): a client there has a
// socket here, which sock_diag must find.
bool local_address(const DiagAddr& a)
{
    if (a.family == AF_INET && (ntohl(a.words[0]) >> 24) == 127)
        return true;
    if (a.family == AF_INET6 && IN6_IS_ADDR_LOOPBACK(reinterpret_cast<const in6_addr*>(a.words)))
        return true;
    ifaddrs* list = nullptr;
    if (::getifaddrs(&list) != 0)
        return true; // cannot tell: treated as local, so a missing socket is refused
    bool found = false;
    for (const ifaddrs* i = list; i && !found; i = i->ifa_next) {
        if (!i->ifa_addr || i->ifa_addr->sa_family != a.family)
            continue;
        if (a.family == AF_INET)
            found = std::memcmp(&reinterpret_cast<const sockaddr_in*>(i->ifa_addr)->sin_addr,
                                a.words, 4) == 0;
        else
            found = std::memcmp(&reinterpret_cast<const sockaddr_in6*>(i->ifa_addr)->sin6_addr,
                                a.words, 16) == 0;
    }
    ::freeifaddrs(list);
    return found;
}

// Whether cgroup `id` exists now (its file handle opens). A socket made in a cgroup that was
// removed since cannot be placed, and is refused.
bool cgroup_exists(const std::filesystem::path& mount, std::uint64_t id)
{
    const int mfd = ::open(mount.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (mfd < 0)
        return false;
    struct {
        file_handle fh;
        std::uint64_t id;
    } h{};
    h.fh.handle_bytes = sizeof(std::uint64_t);
    h.fh.handle_type = 0xfe; // FILEID_KERNFS
    h.id = id;
    const int fd = ::open_by_handle_at(mfd, &h.fh, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    ::close(mfd);
    if (fd >= 0)
        ::close(fd);
    return fd >= 0;
}

// The processes that hold socket `inode` open (a scan of /proc/*/fd).
std::vector<int> socket_holders(std::uint32_t inode)
{
    namespace fs = std::filesystem;
    const std::string want = "socket:[" + std::to_string(inode) + "]";
    std::vector<int> out;
    std::error_code ec;
    for (fs::directory_iterator p("/proc", ec), end; !ec && p != end; p.increment(ec)) {
        const auto name = p->path().filename().string();
        if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos)
            continue;
        std::error_code fec;
        for (fs::directory_iterator f(p->path() / "fd", fec), fend; !fec && f != fend;
             f.increment(fec)) {
            char buf[64];
            const ssize_t n = ::readlink(f->path().c_str(), buf, sizeof(buf));
            if (n > 0 && std::string_view(buf, static_cast<std::size_t>(n)) == want) {
                out.push_back(std::stoi(name));
                break;
            }
        }
    }
    return out;
}

constexpr std::size_t kMaxCgroupsWalked = 20000;

// Whether cgroup `id` is one of the cgroups at or below `roots` (a walk of their directories,
// comparing each one's id; a file handle of a cgroup does not give its path on every kernel).
// nullopt when the walk was cut at kMaxCgroupsWalked directories.
std::optional<bool> cgroup_within(const std::vector<std::string>& roots, std::uint64_t id)
{
    namespace fs = std::filesystem;
    std::size_t walked = 0;
    const auto is = [&](const fs::path& dir) {
        try {
            return agents::cgroup_id(dir) == id;
        } catch (const Error&) {
            return false; // removed meanwhile
        }
    };
    for (const auto& root : roots) {
        std::error_code ec;
        if (!fs::is_directory(root, ec))
            continue;
        if (is(root))
            return true;
        for (fs::recursive_directory_iterator it(root, fs::directory_options::skip_permission_denied, ec), end;
             !ec && it != end; it.increment(ec)) {
            if (!it->is_directory(ec) || it->is_symlink(ec))
                continue;
            if (++walked > kMaxCgroupsWalked)
                return std::nullopt;
            if (is(it->path()))
                return true;
        }
    }
    return false;
}

} // namespace

struct Metrics::Conn {
    int fd = -1;
    long uid = -1; ///< the client socket's owner; -1: a client on another host
    std::int64_t deadline_ms = 0;
    std::string in;
    std::string out;
    bool answered = false;
};

Metrics::Metrics(const std::string& listen, agents::Cgroup2Mount mount) : mount_(std::move(mount))
{
    const auto colon = listen.rfind(':');
    std::string host = colon == std::string::npos ? "" : listen.substr(0, colon);
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
        host = host.substr(1, host.size() - 2);
    int port = -1;
    try {
        std::size_t used = 0;
        if (colon != std::string::npos) {
            const std::string p = listen.substr(colon + 1);
            port = std::stoi(p, &used);
            if (used != p.size())
                port = -1;
        }
    } catch (const std::exception&) {
        port = -1;
    }
    in_addr a4{};
    in6_addr a6{};
    if (host.empty() || port < 1 || port > 65535 ||
        (::inet_pton(AF_INET, host.c_str(), &a4) != 1 &&
         ::inet_pton(AF_INET6, host.c_str(), &a6) != 1))
        throw Error("--metrics-listen '" + listen +
                    "' is not ADDR:PORT with a numeric address (e.g. 127.0.0.1:9464 or [::1]:9464)");
    host_ = host;
    port_ = port;
    state_.listen = listen;
    wake_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (wake_fd_ < 0)
        throw Error("cannot make the metrics thread's wake-up: " + errno_text(errno));
    try_listen(); // the first try here, so that status is true from the start
    thread_ = std::thread([this] { serve(); });
}

Metrics::~Metrics()
{
    stop_ = true;
    const std::uint64_t one = 1;
    (void)!::write(wake_fd_, &one, sizeof(one));
    if (thread_.joinable())
        thread_.join();
    for (auto& c : conns_)
        ::close(c.fd);
    if (listen_fd_ >= 0)
        ::close(listen_fd_);
    ::close(wake_fd_);
}

// No SO_REUSEPORT (another process could share the port and answer scrapes); SO_REUSEADDR only,
// which on Linux never lets two sockets listen on one port.
bool Metrics::try_listen()
{
    sockaddr_storage ss{};
    socklen_t len = 0;
    auto* in = reinterpret_cast<sockaddr_in*>(&ss);
    auto* in6 = reinterpret_cast<sockaddr_in6*>(&ss);
    if (::inet_pton(AF_INET, host_.c_str(), &in->sin_addr) == 1) {
        in->sin_family = AF_INET;
        in->sin_port = htons(static_cast<std::uint16_t>(port_));
        len = sizeof(*in);
    } else {
        ::inet_pton(AF_INET6, host_.c_str(), &in6->sin6_addr);
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons(static_cast<std::uint16_t>(port_));
        len = sizeof(*in6);
    }
    const int fd = ::socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    const int one = 1;
    std::string err;
    if (fd < 0)
        err = "cannot make a socket: " + errno_text(errno);
    else if (::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
             ::bind(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0 || ::listen(fd, 64) != 0)
        err = fmt::format("cannot listen on {}: {}{}", state_.listen, errno_text(errno),
                          errno == EADDRINUSE ? " (another process holds the port; cordond "
                                                "tries again each second)"
                                              : "");
    std::lock_guard lk(mu_);
    if (!err.empty()) {
        if (fd >= 0)
            ::close(fd);
        if (err != state_.error)
            spdlog::error("metrics: {}", err);
        state_.error = err;
        return false;
    }
    listen_fd_ = fd;
    if (!state_.error.empty())
        spdlog::info("metrics: listening on {} now", state_.listen);
    state_.error.clear();
    state_.listening = true;
    return true;
}

void Metrics::serve()
{
    std::int64_t last_try = mono_ms();
    while (!stop_) {
        if (listen_fd_ < 0 && mono_ms() - last_try >= 1000) {
            last_try = mono_ms();
            try_listen();
        }
        std::vector<pollfd> fds{{.fd = wake_fd_, .events = POLLIN, .revents = 0}};
        if (listen_fd_ >= 0)
            fds.push_back({.fd = listen_fd_, .events = POLLIN, .revents = 0});
        for (const auto& c : conns_)
            fds.push_back({.fd = c.fd,
                           .events = static_cast<short>(c.answered ? POLLOUT : POLLIN),
                           .revents = 0});
        ::poll(fds.data(), fds.size(), 200);
        if (listen_fd_ >= 0 && (fds[1].revents & POLLIN))
            accept_all();
        const auto now = mono_ms();
        for (auto& c : conns_)
            if (now >= c.deadline_ms) {
                {
                    std::lock_guard lk(mu_);
                    ++state_.timed_out;
                }
                ::close(c.fd);
                c.fd = -1;
            } else {
                turn(c);
            }
        std::erase_if(conns_, [](const Conn& c) { return c.fd < 0; });
    }
}

void Metrics::accept_all()
{
    for (;;) {
        const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (fd < 0)
            return;
        long uid = -1;
        if (peer_refused(fd, uid)) {
            {
                std::lock_guard lk(mu_);
                ++state_.refused; // counted before the client can see the close
            }
            ::close(fd);
            continue;
        }
        // Room: one uid's (or the remote clients') oldest connection goes when it holds its
        // share, else the oldest of all; so one local user's flood costs only its own.
        const auto mine = std::count_if(conns_.begin(), conns_.end(),
                                        [uid](const Conn& c) { return c.uid == uid; });
        auto victim = conns_.end();
        if (static_cast<std::size_t>(mine) >= (uid < 0 ? kMaxConnections / 2 : kPerUid))
            victim = std::find_if(conns_.begin(), conns_.end(),
                                  [uid](const Conn& c) { return c.uid == uid; });
        else if (conns_.size() >= kMaxConnections)
            victim = conns_.begin();
        if (victim != conns_.end()) {
            {
                std::lock_guard lk(mu_);
                ++state_.timed_out;
            }
            ::close(victim->fd);
            conns_.erase(victim);
        }
        conns_.push_back(Conn{.fd = fd, .uid = uid, .deadline_ms = mono_ms() + kScrapeMs,
                              .in = {}, .out = {}, .answered = false});
    }
}

// Fails closed: a local client whose socket cannot be placed (its cgroup unreadable or gone,
// or a holder's) is refused; so is every client until the daemon first published. A client is
// refused when the cgroup that made its socket, or the cgroup of any thread of a process that
// holds the socket now, is an agent's or in cordon's subtree (a socket made outside and then
// carried in, by an attach or by descriptor passing, is caught by its holders). `uid` receives
// the socket's owner, or -1 for a client on another host.
bool Metrics::peer_refused(int fd, long& uid)
{
    uid = -1;
    sockaddr_storage peer{}, self{};
    socklen_t pl = sizeof(peer), sl = sizeof(self);
    if (::getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &pl) != 0 ||
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&self), &sl) != 0)
        return true;
    std::vector<std::string> roots;
    bool published = false;
    {
        std::lock_guard lk(mu_);
        roots = refused_cgroups_;
        published = published_;
    }
    if (!published)
        return true;
    std::optional<ClientSocket> sock;
    const auto client = diag_addr(peer);
    try {
        sock = client_socket(client, diag_addr(self));
    } catch (const Error& e) {
        spdlog::warn("metrics: refused a scrape whose client cannot be told: {}", e.what());
        return true;
    }
    if (!sock && local_address(client)) {
        spdlog::warn("metrics: refused a scrape from an address of this host whose socket the "
                     "kernel does not show (sock_diag; if every local scrape is refused, the "
                     "kernel's tcp_diag module is missing: modprobe tcp_diag)");
        return true;
    }
    if (!sock)
        return false; // a client on another host
    uid = sock->uid;
    if (!cgroup_exists(mount_.mount_point, sock->cgroup)) {
        spdlog::warn("metrics: refused a scrape whose socket was made in a cgroup that is gone");
        return true;
    }
    const auto inside = cgroup_within(roots, sock->cgroup);
    if (!inside) {
        spdlog::warn("metrics: refused a scrape: more than {} cgroups below the agents to search "
                     "for its client's", kMaxCgroupsWalked);
        return true;
    }
    if (*inside) {
        spdlog::warn("metrics: refused a scrape from a socket made inside an agent (cgroup id {})",
                     sock->cgroup);
        return true;
    }
    for (const int pid : socket_holders(sock->inode))
        for (const auto& where : agents::thread_cgroups(mount_, pid))
            for (const auto& root : roots)
                if (agents::cgroup_within(where, root)) {
                    spdlog::warn("metrics: refused a scrape on a socket held inside {} (pid {})",
                                 where.string(), pid);
                    return true;
                }
    return false;
}

// Reads the request head (up to 4 KiB), then writes the answer; closes when done.
void Metrics::turn(Conn& c)
{
    if (!c.answered) {
        char buf[1024];
        const ssize_t n = ::recv(c.fd, buf, sizeof(buf), MSG_DONTWAIT);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
            ::close(c.fd);
            c.fd = -1;
            return;
        }
        if (n > 0)
            c.in.append(buf, static_cast<std::size_t>(n));
        if (c.in.size() > kMaxHead) {
            ::close(c.fd);
            c.fd = -1;
            return;
        }
        if (c.in.find("\r\n\r\n") == std::string::npos && c.in.find("\n\n") == std::string::npos)
            return;
        std::string body;
        const bool ok = c.in.starts_with("GET /metrics ") || c.in.starts_with("GET /metrics?");
        {
            std::lock_guard lk(mu_);
            if (ok) {
                body = text_;
                ++state_.served;
            }
        }
        if (!ok)
            body = "not found; cordond serves GET /metrics\n";
        c.out = fmt::format("HTTP/1.0 {}\r\nContent-Type: text/plain; version=0.0.4; "
                            "charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                            ok ? "200 OK" : "404 Not Found", body.size()) +
                body;
        c.answered = true;
    }
    while (!c.out.empty()) {
        const ssize_t n = ::send(c.fd, c.out.data(), c.out.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return;
        if (n <= 0)
            break;
        c.out.erase(0, static_cast<std::size_t>(n));
    }
    ::close(c.fd);
    c.fd = -1;
}

void Metrics::publish(std::string text, std::vector<std::string> refused_cgroups)
{
    std::lock_guard lk(mu_);
    text_ = std::move(text);
    refused_cgroups_ = std::move(refused_cgroups);
    published_ = true;
}

Metrics::State Metrics::state() const
{
    std::lock_guard lk(mu_);
    return state_;
}

std::string metric_line(const std::string& name,
                        std::initializer_list<std::pair<const char*, std::string>> labels,
                        double value)
{
    std::string out = name;
    if (labels.size()) {
        out += '{';
        bool first = true;
        for (const auto& [k, v] : labels) {
            if (!first)
                out += ',';
            first = false;
            out += k;
            out += "=\"";
            for (char c : v) {
                if (c == '\\' || c == '"')
                    out += '\\', out += c;
                else if (c == '\n')
                    out += "\\n";
                else
                    out += c;
            }
            out += '"';
        }
        out += '}';
    }
    out += fmt::format(" {}\n", value);
    return out;
}


namespace {

void help(std::string& t, const char* name, const char* type, const char* text)
{
    t += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, text, name, type);
}

// Decisions read from the ring buffer, and the kernel's own counters.
void decision_series(std::string& t, const MetricsInputs& in)
{
    const auto c = in.ctl.guard().counters();
    help(t, "cordon_decisions_total", "counter",
         "Decisions reported by the kernel and read by cordond, by agent, hook and verdict "
         "(allows only for agents with trace: all)");
    for (const auto& [k, n] : in.decided) {
        const auto& [agent, hook, verdict] = k;
        t += metric_line("cordon_decisions_total",
                         {{"agent", agent},
                          {"hook", std::string(events::hook_name(hook))},
                          {"verdict", std::string(events::verdict_name(verdict))}},
                         static_cast<double>(n));
    }
    help(t, "cordon_kernel_decisions_total", "counter",
         "Every decision the programs made, reported or not, by verdict");
    for (auto [v, i] : {std::pair{"allow", CORDON_CNT_ALLOW}, std::pair{"deny", CORDON_CNT_DENY},
                        std::pair{"audit", CORDON_CNT_AUDIT}, std::pair{"kill", CORDON_CNT_KILL},
                        std::pair{"freeze", CORDON_CNT_FREEZE}})
        t += metric_line("cordon_kernel_decisions_total", {{"verdict", v}}, static_cast<double>(c[i]));
    help(t, "cordon_lost_events_total", "counter", "Records the ring buffer had no room for");
    t += metric_line("cordon_lost_events_total", {}, static_cast<double>(c[CORDON_CNT_RINGBUF_DROPS]));
    help(t, "cordon_malformed_events_total", "counter", "Records that failed to decode");
    t += metric_line("cordon_malformed_events_total", {}, static_cast<double>(in.malformed));
    help(t, "cordon_unresolved_paths_total", "counter",
         "Accesses whose path the programs could not resolve (refused)");
    t += metric_line("cordon_unresolved_paths_total", {}, static_cast<double>(c[CORDON_CNT_PATH_FAILED]));
    help(t, "cordon_subscriber_drops_total", "counter", "Events a slow subscriber did not take");
    t += metric_line("cordon_subscriber_drops_total", {}, static_cast<double>(in.subscriber_drops));
}

// Each agent's score, tier and lost records.
void agent_series(std::string& t, const MetricsInputs& in)
{
    auto& g = in.ctl.guard();
    help(t, "cordon_agent_score", "gauge", "Trust score of each agent (0-1000)");
    std::string tiers, lost_by_agent;
    for (const auto& a : in.ctl.agents()) {
        const auto st = g.agent(a.key);
        const auto live = g.live(a.key);
        if (!st || !live)
            continue;
        t += metric_line("cordon_agent_score", {{"agent", a.name}}, live->score);
        lost_by_agent += metric_line("cordon_agent_lost_events_total", {{"agent", a.name}},
                                     static_cast<double>(live->events_lost));
        const auto tier = in.ctl.tier_of(st->policy_id, *live);
        tiers += metric_line("cordon_agent_tier",
                             {{"agent", a.name},
                              {"tier", tier < a.tier_names.size() ? a.tier_names[tier]
                                                                  : std::to_string(tier)}},
                             tier);
    }
    help(t, "cordon_agent_tier", "gauge", "The trust tier each agent is in (its index, lowest 0; the label names it)");
    t += tiers;
    help(t, "cordon_agent_lost_events_total", "counter", "Each agent's records the ring buffer had no room for");
    t += lost_by_agent;
}

// The store and the JSONL sink.
void store_series(std::string& t, const events::Pipeline& pipeline)
{
    const auto s = pipeline.stats();
    help(t, "cordon_store_records_total", "counter", "Records written, by sink");
    help(t, "cordon_store_lost_total", "counter", "Records not stored, by sink and cause");
    help(t, "cordon_store_write_errors_total", "counter", "Failed writes, by sink");
    std::string rec, lost, err;
    if (!s.db_path.empty()) {
        rec += metric_line("cordon_store_records_total", {{"sink", "sqlite"}}, static_cast<double>(s.db_stored));
        lost += metric_line("cordon_store_lost_total", {{"sink", "sqlite"}, {"cause", "write"}}, static_cast<double>(s.db_lost));
        err += metric_line("cordon_store_write_errors_total", {{"sink", "sqlite"}}, static_cast<double>(s.db_write_errors));
    }
    if (!s.jsonl_path.empty()) {
        rec += metric_line("cordon_store_records_total", {{"sink", "jsonl"}}, static_cast<double>(s.jsonl_written));
        lost += metric_line("cordon_store_lost_total", {{"sink", "jsonl"}, {"cause", "write"}}, static_cast<double>(s.jsonl_lost));
        err += metric_line("cordon_store_write_errors_total", {{"sink", "jsonl"}}, static_cast<double>(s.jsonl_write_errors));
    }
    lost += metric_line("cordon_store_lost_total", {{"sink", "all"}, {"cause", "queue_full"}}, static_cast<double>(s.queue_dropped));
    t += rec + lost + err;
    help(t, "cordon_store_lag_records", "gauge", "Records queued for the store, not yet written");
    t += metric_line("cordon_store_lag_records", {}, static_cast<double>(s.lag_records));
    help(t, "cordon_store_lag_seconds", "gauge", "Age of the oldest record not yet written");
    t += metric_line("cordon_store_lag_seconds", {}, static_cast<double>(s.lag_ms) / 1000.0);
}

// BPF program run time: the kernel counts it only while kernel.bpf_stats_enabled is 1.
void program_series(std::string& t, const MetricsInputs& in)
{
    std::ifstream stats_enabled("/proc/sys/kernel/bpf_stats_enabled");
    int enabled = 0;
    if (!(stats_enabled >> enabled) || enabled != 1)
        return;
    help(t, "cordon_bpf_run_seconds_total", "counter", "Time cordon's programs ran (kernel.bpf_stats_enabled=1)");
    std::string runs;
    for (const auto id : in.ctl.guard().program_ids()) {
        const int fd = bpf_prog_get_fd_by_id(id);
        if (fd < 0)
            continue;
        bpf_prog_info info{};
        __u32 len = sizeof(info);
        if (bpf_obj_get_info_by_fd(fd, &info, &len) == 0) {
            t += metric_line("cordon_bpf_run_seconds_total", {{"program", info.name}},
                             static_cast<double>(info.run_time_ns) / 1e9);
            runs += metric_line("cordon_bpf_runs_total", {{"program", info.name}},
                                static_cast<double>(info.run_cnt));
        }
        ::close(fd);
    }
    help(t, "cordon_bpf_runs_total", "counter", "Times cordon's programs ran (kernel.bpf_stats_enabled=1)");
    t += runs;
}

} // namespace

std::string metrics_text(const MetricsInputs& in)
{
    std::string t;
    decision_series(t, in);
    agent_series(t, in);
    if (in.pipeline)
        store_series(t, *in.pipeline);
    program_series(t, in);
    return t;
}

} // namespace cordon::daemon
