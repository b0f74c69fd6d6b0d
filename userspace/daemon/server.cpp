// SPDX-License-Identifier: Apache-2.0
// cordond's loop: the socket, its peers and their credentials, and the order of work on each
// turn. What a request means is in handlers.cpp, what it shows in views.cpp, slow work runs on
// worker threads (worker.h), and kernel state becomes action in control::Supervisor.
#include "daemon/server.h"

#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <list>
#include <map>
#include <set>
#include <sstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "agents/launcher.h"
#include "api/protocol.h"
#include "common/backend.h"
#include "common/clock.h"
#include "common/cpu_share.h"
#include "common/error.h"
#include "control/controller.h"
#include "control/supervisor.h"
#include "daemon/actions.h"
#include "daemon/caller.h"
#include "daemon/handlers.h"
#include "daemon/metrics.h"
#include "daemon/peer.h"
#include "daemon/worker.h"
#include "dns/gateway.h"
#include "events/format.h"
#include "events/json.h"
#include "events/pipeline.h"
#include "events/reader.h"

namespace cordon::daemon {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

/// Connections at once. The last kRootReserve are for root alone, and no uid holds more than
/// kPerUid, so that no caller (nor a group of callers of one uid) can lock root's kill out.
constexpr std::size_t kMaxClients = 256;
constexpr std::size_t kRootReserve = 32;
constexpr std::size_t kPerUid = 64;
/// Subscriptions (and run sessions, which are subscriptions) per uid, and over all, of which
/// the last kRootSubscriptions are root's: events cost the loop work for each.
constexpr std::size_t kSubscriptionsPerUid = 32;
constexpr std::size_t kMaxSubscriptions = 160;
constexpr std::size_t kRootSubscriptions = 32;
/// Each connection's share of one turn of the loop: one read of at most this many bytes and at
/// most kLinesPerTurn requests. A client that keeps sending cannot hold the loop from the other
/// connections, the kernel's flags, or the kill it is about to read.
constexpr std::size_t kReadPerTurn = 64u << 10;
constexpr int kLinesPerTurn = 4;
/// Requests other than kill and freeze take at most this much of a turn; the connections not
/// reached wait for the next turn, which starts where this one stopped. Kills and freezes
/// waiting first in line on any connection are taken before all of them.
constexpr std::int64_t kRequestsPerTurnNs = 2'000'000;
/// A line longer than this is never a kill or a freeze (those are a few hundred bytes).
constexpr std::size_t kUrgentLineMax = 4096;
/// How long a kill or freeze under way holds back the other requests and the records.
constexpr std::int64_t kKillFirstNs = 50'000'000;
/// Bytes queued for one slow subscriber before its events are dropped (and counted).
constexpr std::size_t kMaxQueued = 4u << 20;
/// A request line must be complete within this long of its last bytes.
constexpr std::int64_t kLineTimeoutMs = 10'000;
/// A connection that is not a subscription or run session is closed after this long unused.
constexpr std::int64_t kIdleTimeoutMs = 60'000;
/// Bytes of unfinished request lines over all connections (8 policies of the largest size).
constexpr std::size_t kMaxBufferedBytes = 64u << 20;
/// How long kill and freeze wait for the cgroup before they reply with an error.
constexpr std::int64_t kSettleTimeoutNs = 10'000'000'000;
/// Event records handled per turn: an agent that makes denials as fast as it can must not keep
/// the loop from requests, kill flags and freeze marks.
constexpr std::size_t kEventsPerTurn = 1024;
/// Event lines written to cordond's log per agent per second; the rest are counted and
/// summarised (subscribers and the counters still see every event).
constexpr std::uint64_t kLogLinesPerSecond = 50;
/// A ping waits at most this long for the ring buffer to be read up to it (under a flood).
constexpr std::int64_t kPingWaitNs = 200'000'000;
/// Worker threads for slow work: two for callers other than root, so that one hung resolver
/// does not hold every apply, and one of root's own, so that no other caller's slow requests
/// queue ahead of root's. A caller other than root has at most kSlowPerUid under way.
constexpr unsigned kWorkers = 2;
constexpr std::size_t kSlowPerUid = 4;

constexpr int kScmPidfd = 0x04; // SCM_PIDFD, Linux 6.5 (glibc 2.36 predates it)

bool in_group(int pid, unsigned gid, gid_t group)
{
    if (gid == group)
        return true;
    std::ifstream in("/proc/" + std::to_string(pid) + "/status");
    for (std::string line; std::getline(in, line);)
        if (line.starts_with("Groups:")) {
            std::istringstream g(line.substr(7));
            for (unsigned long v; g >> v;)
                if (v == group)
                    return true;
        }
    return false;
}

/// A request whose slow work runs on a worker: who asked, and what to do with the result.
struct SlowJob {
    std::uint64_t peer = 0;
    unsigned uid = 0;
    api::Request request;
    json who;
    std::string session;
    std::function<Reply(Peer*)> then;
    std::function<void()> abandon; ///< instead of `then` when it cannot run
};

class Server {
public:
    explicit Server(const ServerOptions& o) : opts_(o) {}
    int run();

private:
    void start();
    void restore_kept();
    void turn(bool& stop);
    void listen_socket();
    void accept_peers();
    std::string admission_refusal(unsigned uid);
    std::string subscription_refusal(const Peer& p) const;
    void read_peer(Peer& p);
    void shed_buffered();
    void write_peer(Peer& p);
    /// At most kLinesPerTurn requests of `p`, the second and later only before `until`.
    void handle_lines(Peer& p, std::int64_t until);
    void handle_urgent();
    bool kill_under_way() const;
    void read_records(bool kill_first);
    void raise_loop();
    void handle_requests();
    void handle(Peer& p, const std::string& line);
    void handle(Peer& p, const api::Request& r);
    static std::string take_line(Peer& p, std::size_t nl);
    void carry_out(Peer& p, const api::Request& r, Outcome out);
    void answer(std::uint64_t peer, const api::Request& r, const json& who,
                const std::string& session, bool ok, const Reply& reply, const std::string& error);
    void finish_slow(Worker& worker);
    void finish_background(const Worker::Done& d, const std::function<void()>& then);
    void background(std::function<void()> work, std::function<void()> then);
    void settle_pending();
    void finish(Pending& w, bool ok, json reply, const std::string& error);
    void answer_pings();
    void supervise();
    void on_event(const events::Event& e);
    void fan_out(const events::Event& e, const std::string& name, const std::string& text,
                 const std::function<std::string(std::uint32_t)>& namer,
                 const events::EventContext& cx);
    void every_second();
    void start_gateway();
    void record_dns();
    void note_kernel_drops();
    /// At start: adopted agents' losses since the last daemon stored them become gaps.
    void adopt_drops();
    void protect_files();
    void expire_peers();
    bool evict_idle(std::optional<unsigned> uid, bool spare_root);
    void drop_peer(Peer& p);
    std::string refusal_for(int pid, unsigned uid, unsigned gid);
    std::string sender_refusal(const ucred& cr, int pidfd, int conn, Peer* into);
    void open_sinks();
    void send(Peer& p, const std::string& line, bool is_event = false);
    Peer* peer(std::uint64_t serial);
    json record_action(std::uint64_t asker, const json& a, const std::optional<std::string>& name);
    static json who_of(const Peer& p)
    {
        return {{"pid", p.pid}, {"uid", p.uid}, {"gid", p.gid}, {"comm", p.comm},
                {"known_by", p.pinned ? "pidfd" : "pid"}};
    }

    ServerOptions opts_;
    std::unique_ptr<control::Controller> ctl_;
    std::unique_ptr<control::Supervisor> sup_;
    std::unique_ptr<events::Reader> reader_;
    std::unique_ptr<events::Pipeline> pipeline_; ///< store and JSONL sinks (their own thread)
    std::unique_ptr<Metrics> metrics_;           ///< Prometheus endpoint (its own thread)
    std::unique_ptr<dns::Gateway> gateway_;      ///< agents' DNS (its own thread)
    std::unique_ptr<ActionsLog> actions_;
    std::unique_ptr<State> state_;
    std::unique_ptr<Worker> worker_;      ///< slow work of callers other than root
    std::unique_ptr<Worker> root_worker_; ///< root's slow work
    /// The daemon's own work (unloading replaced policies): never behind a name lookup.
    std::unique_ptr<Worker> own_worker_;
    int sfd_ = -1;
    int listen_fd_ = -1;
    std::list<Peer> peers_;
    std::size_t next_peer_ = 0; ///< where handle_requests starts (modulo the peer count)
    std::uint64_t next_serial_ = 1;
    std::list<Pending> pending_;
    std::map<std::uint64_t, SlowJob> slow_;
    /// Work no caller waits for (State::background), by job id: what runs on the loop after.
    std::map<std::uint64_t, std::function<void()>> background_;
    /// Pings waiting for the ring buffer to be read up to them: (connection, deadline).
    std::vector<std::pair<std::uint64_t, std::int64_t>> pings_;
    /// Decisions read from the ring buffer, by (agent name, hook, verdict), for the metrics.
    std::map<std::tuple<std::string, std::uint16_t, std::uint8_t>, std::uint64_t> decided_;
    std::optional<std::uint64_t> kernel_drops_seen_; ///< the host-wide drop counter at start
    std::uint64_t drops_attributed_ = 0;   ///< since start: on agents' chains
    std::uint64_t drops_unattributed_ = 0; ///< since start: on cordond's chain
    struct DropsSeen {
        std::uint64_t lost = 0, shed = 0; ///< cordon_agent_live.events_lost, events_shed noted
    };
    std::map<std::pair<std::uint64_t, std::uint32_t>, DropsSeen> agent_drops_seen_;
    bool store_full_ = false; ///< the store's queue is full: the ring buffer holds the rest
    std::uint64_t protected_rotations_ = 0;
    std::string protected_moved_; ///< the corrupt store moved aside, when protect_files last ran
    /// Event lines logged this second, and those left out, by agent name.
    std::map<std::string, std::pair<std::uint64_t, std::uint64_t>> logged_;
    std::int64_t log_window_ms_ = 0;
    std::int64_t metrics_published_ms_ = 0;
    std::int64_t last_second_ms_ = 0;
    std::int64_t last_supervise_ms_ = 0;
    std::set<std::uint32_t> adopt_tried_; ///< unknown children whose events asked for adoption
    bool supervise_now_ = false; ///< a kill or freeze verdict was read: do not wait for the poll
    CpuShare share_{false}; ///< the loop's share of the CPU, once it runs real-time
    bool pidfds_ = false; ///< the kernel gives each sender's pidfd (SO_PASSPIDFD, 6.5+)
};

void Server::listen_socket()
{
    // Only the directories made here get a mode: one that exists is the operator's (a socket in
    // /tmp must never cost /tmp its sticky bit), and is used as it is.
    const fs::path dir = opts_.socket.parent_path();
    std::vector<fs::path> made;
    for (fs::path d = dir; !d.empty() && !fs::exists(d); d = d.parent_path()) {
        made.insert(made.begin(), d);
        if (d == d.parent_path())
            break;
    }
    for (const auto& d : made)
        if (::mkdir(d.c_str(), 0755) == 0 ? ::chmod(d.c_str(), 0755) != 0 : errno != EEXIST)
            throw Error("cannot create " + d.string() + " for the control socket: " +
                        errno_text(errno));
    // Another daemon on this socket: refuse to start rather than steal its socket.
    if (fs::exists(opts_.socket)) {
        const int probe = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_un sa{};
        sa.sun_family = AF_UNIX;
        std::strncpy(sa.sun_path, opts_.socket.c_str(), sizeof(sa.sun_path) - 1);
        const bool live = ::connect(probe, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) == 0;
        ::close(probe);
        if (live)
            throw Error("another cordond listens on " + opts_.socket.string() +
                        "; stop it first (systemctl stop cordond)");
        ::unlink(opts_.socket.c_str());
    }
    listen_fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    if (opts_.socket.string().size() >= sizeof(sa.sun_path))
        throw Error("socket path " + opts_.socket.string() + " is too long");
    std::strncpy(sa.sun_path, opts_.socket.c_str(), sizeof(sa.sun_path) - 1);
    // Created with no permissions for anyone but root, then opened up to group cordon.
    const mode_t old = ::umask(0177);
    const int rc = ::bind(listen_fd_, reinterpret_cast<sockaddr*>(&sa), sizeof(sa));
    ::umask(old);
    if (rc != 0)
        throw Error("cannot bind " + opts_.socket.string() + ": " + errno_text(errno));
    if (const group* g = ::getgrnam("cordon")) {
        if (::chown(opts_.socket.c_str(), 0, g->gr_gid) != 0 ||
            ::chmod(opts_.socket.c_str(), 0660) != 0)
            throw Error("cannot open " + opts_.socket.string() + " to group cordon: " +
                        errno_text(errno));
    }
    // Set on the listener too, so that no byte ever arrives without its sender's credentials.
    const int one = 1;
    if (::setsockopt(listen_fd_, SOL_SOCKET, SO_PASSCRED, &one, sizeof(one)) != 0)
        throw Error("cannot ask for sender credentials: " + errno_text(errno));
    pidfds_ = ask_sender_pidfds(listen_fd_);
    if (!pidfds_)
        spdlog::warn("this kernel gives no sender pidfds (SO_PASSPIDFD, Linux 6.5+): callers are "
                     "known by pid number and the socket they hold; without unix_diag, by the "
                     "number alone, which a process that exits right after sending can pass to "
                     "another (docs/api.md, \"Who may use the socket\")");
    if (::listen(listen_fd_, 64) != 0)
        throw Error("cannot listen on " + opts_.socket.string() + ": " + errno_text(errno));
}

// The caps on connections (see kMaxClients): empty when one more from `uid` may come in.
std::string Server::admission_refusal(unsigned uid)
{
    const auto of_uid = [&] {
        return static_cast<std::size_t>(
            std::count_if(peers_.begin(), peers_.end(), [&](const Peer& p) { return p.uid == uid; }));
    };
    if (of_uid() >= kPerUid && !evict_idle(uid, false))
        return fmt::format("uid {} holds {} connections already (at most {})", uid, kPerUid, kPerUid);
    const std::size_t room = uid == 0 ? kMaxClients : kMaxClients - kRootReserve;
    if (peers_.size() >= room && !evict_idle(std::nullopt, uid != 0))
        return fmt::format("too many connections (at most {}, the last {} kept for root)",
                           kMaxClients, kRootReserve);
    return "";
}

std::string Server::subscription_refusal(const Peer& p) const
{
    std::size_t all = 0, mine = 0;
    for (const auto& q : peers_)
        if (q.subscribed) {
            ++all;
            mine += q.uid == p.uid;
        }
    if (mine >= kSubscriptionsPerUid)
        return fmt::format("uid {} holds {} subscriptions already (at most {}); close one",
                           p.uid, mine, kSubscriptionsPerUid);
    if (all >= (p.uid == 0 ? kMaxSubscriptions : kMaxSubscriptions - kRootSubscriptions))
        return fmt::format("too many subscriptions (at most {}, the last {} kept for root)",
                           kMaxSubscriptions, kRootSubscriptions);
    return "";
}

void Server::accept_peers()
{
    for (;;) {
        const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (fd < 0)
            return;
        ucred cr{};
        socklen_t len = sizeof(cr);
        if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) != 0) {
            ::close(fd);
            continue;
        }
        std::string why = sender_refusal(cr, pidfds_ ? peer_pidfd(fd) : -1, fd, nullptr);
        const int one = 1;
        if (why.empty() && ::setsockopt(fd, SOL_SOCKET, SO_PASSCRED, &one, sizeof(one)) != 0)
            why = "cannot ask for sender credentials: " + errno_text(errno);
        if (why.empty() && pidfds_ && !ask_sender_pidfds(fd))
            why = "cannot ask for sender pidfds: " + errno_text(errno);
        if (why.empty())
            why = admission_refusal(cr.uid);
        if (!why.empty()) {
            spdlog::warn("refused a connection from pid {} uid {}: {}", cr.pid, cr.uid, why);
            const std::string line = api::error_reply("permission denied: " + why) + "\n";
            (void)!::send(fd, line.data(), line.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
            ::close(fd);
            continue;
        }
        Peer p;
        p.serial = next_serial_++;
        p.last_active_ms = now_ms();
        p.fd = fd;
        p.pid = cr.pid;
        p.uid = cr.uid;
        p.gid = cr.gid;
        peers_.push_back(std::move(p));
    }
}

void Server::send(Peer& p, const std::string& line, bool is_event)
{
    if (is_event && p.out.size() > kMaxQueued) {
        ++p.dropped;
        ++state_->subscriber_drops;
        return;
    }
    // A subscriber's queue may be full of events it has not read yet: its replies still go in
    // (a ping after a flood must be answered, not end the subscription), up to twice the limit.
    if (p.out.size() > (p.subscribed ? 2 * kMaxQueued : kMaxQueued)) {
        // A client that sends requests and never reads the replies: not worth our memory.
        p.closing = true;
        p.out.clear();
        return;
    }
    p.out += line;
    p.out += '\n';
    write_peer(p);
}

void Server::write_peer(Peer& p)
{
    while (!p.out.empty()) {
        const ssize_t n = ::send(p.fd, p.out.data(), p.out.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n <= 0) {
            if (n < 0 && (errno == EAGAIN || errno == EINTR))
                return;
            p.closing = true;
            p.out.clear();
            return;
        }
        p.out.erase(0, static_cast<size_t>(n));
    }
}

// Fails closed: a sender that cannot be held by a pidfd while it is checked (gone, or a pidfd
// the kernel should have given and did not) is refused. Takes `pidfd` (closes it). Without
// SO_PASSPIDFD (before 6.5) the number is pinned by a pidfd opened here, and tied to the
// connection `conn` by the other end of the socket, which the process with that number must
// hold: one that took a dead sender's number does not. Without unix_diag either, the number
// alone (docs/api.md says so).
std::string Server::sender_refusal(const ucred& cr, int pidfd, int conn, Peer* into)
{
    const auto gone = [&] {
        return fmt::format("the sending process (pid {}) is gone; a request is judged by the "
                           "process that sent it, never by its pid number alone",
                           cr.pid);
    };
    if (pidfd < 0 && !pidfds_) {
        pidfd = open_pidfd(cr.pid);
        // Fails closed: the other end closed (0), or not held by that number, is refused.
        const auto peer = unix_peer_inode(conn);
        if (pidfd >= 0 && peer && (*peer == 0 || !holds_socket(cr.pid, *peer))) {
            ::close(pidfd);
            return gone();
        }
    }
    if (pidfd < 0)
        return gone();
    std::string why;
    if (!pidfd_is_live(pidfd, cr.pid))
        why = gone();
    else
        why = refusal_for(cr.pid, cr.uid, cr.gid);
    std::string comm = why.empty() ? process_comm(cr.pid) : "";
    // Still the same live process after /proc was read: what was read was its.
    if (why.empty() && !pidfd_is_live(pidfd, cr.pid))
        why = gone();
    ::close(pidfd);
    if (why.empty() && into) {
        into->comm = std::move(comm);
        into->pinned = pidfds_;
    }
    return why;
}

std::string Server::refusal_for(int pid, unsigned uid, unsigned gid)
{
    std::vector<std::string> cgroups;
    for (const auto& a : ctl_->agents())
        cgroups.push_back(a.cgroup.string());
    // Every thread's cgroup, not only the leader's: a leader that exited stays a zombie where it
    // was while its threads move into an agent, and any of them may have sent the bytes.
    const auto where = pid > 0 ? agents::thread_cgroups(ctl_->mount(), pid)
                               : std::vector<fs::path>{};
    if (where.empty())
        return "the sending process is gone or in another pid namespace";
    for (const auto& w : where)
        if (auto why = refusal(pid, uid, gid, w.string(),
                               (ctl_->mount().mount_point / agents::kSubtree).string(), cgroups);
            !why.empty())
            return why;
    return "";
}

// One read per turn (kReadPerTurn bytes at most): the rest waits in the socket for the next
// turn, after every other connection had its share.
void Server::read_peer(Peer& p)
{
    // Every chunk carries the credentials of the process that sent it (SO_PASSCRED; the kernel
    // never merges chunks of two senders into one read). Who may talk is decided per chunk, not
    // once per connection: a connection handed to, or inherited by, a process in an agent or of
    // another user is refused from its first byte on (fails closed).
    std::string buf(kReadPerTurn, '\0');
    iovec iov{.iov_base = buf.data(), .iov_len = buf.size()};
    // Room for the credentials and the sender's pidfd, none for descriptors a caller passes
    // (the kernel closes those: cordond never holds a caller's file).
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(ucred)) + CMSG_SPACE(sizeof(int))];
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof(control);
    const ssize_t n = ::recvmsg(p.fd, &msg, MSG_CMSG_CLOEXEC);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
        p.closing = true;
        p.out.clear();
        return;
    }
    if (n < 0)
        return;
    std::optional<ucred> creds;
    int pidfd = -1;
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level != SOL_SOCKET)
            continue;
        if (c->cmsg_type == SCM_CREDENTIALS && c->cmsg_len >= CMSG_LEN(sizeof(ucred))) {
            creds.emplace();
            std::memcpy(&*creds, CMSG_DATA(c), sizeof(ucred));
        } else if (c->cmsg_type == kScmPidfd && c->cmsg_len >= CMSG_LEN(sizeof(int))) {
            std::memcpy(&pidfd, CMSG_DATA(c), sizeof(int));
        }
    }
    if (!creds) {
        if (pidfd >= 0)
            ::close(pidfd);
        send(p, api::error_reply("permission denied: no sender credentials"));
        p.closing = true;
        return;
    }
    const ucred cr = *creds;
    if (const auto why = sender_refusal(cr, pidfd, p.fd, &p); !why.empty()) {
        spdlog::warn("refused a request from pid {} uid {} on a connection of pid {}: {}", cr.pid,
                     cr.uid, p.pid, why);
        send(p, api::error_reply("permission denied: " + why));
        p.closing = true;
        return;
    }
    p.pid = cr.pid;
    p.uid = cr.uid;
    p.gid = cr.gid;
    p.last_active_ms = now_ms();
    p.readable_ns = monotonic_ns();
    p.in.append(buf.data(), static_cast<std::size_t>(n));
    const char* chunk = p.in.data() + p.in.size() - static_cast<std::size_t>(n);
    p.has_line = p.has_line || std::memchr(chunk, '\n', static_cast<std::size_t>(n)) != nullptr;
    if (p.in.size() > api::kMaxRequestBytes && !p.has_line) {
        send(p, api::error_reply(fmt::format("request longer than {} bytes; nothing was changed",
                                             api::kMaxRequestBytes)));
        p.closing = true;
        return;
    }
    shed_buffered();
}

// Unfinished lines of callers other than root share kMaxBufferedBytes. Over it, the connection
// holding the largest unfinished line (never root's, never the one a complete request waits
// on) is closed, and said so: no caller's memory can get another's request refused.
void Server::shed_buffered()
{
    for (;;) {
        std::size_t buffered = 0;
        Peer* largest = nullptr;
        for (auto& q : peers_) {
            if (q.uid == 0 || q.closing)
                continue;
            buffered += q.in.size();
            if (!q.has_line && (!largest || q.in.size() > largest->in.size()))
                largest = &q;
        }
        if (buffered <= kMaxBufferedBytes || !largest)
            return;
        spdlog::warn("closed the connection of pid {} uid {}: its {} unfinished bytes put callers "
                     "over {} MiB",
                     largest->pid, largest->uid, largest->in.size(), kMaxBufferedBytes >> 20);
        send(*largest, api::error_reply("the daemon holds too many unfinished requests; this one "
                                        "was the largest; nothing was changed"));
        largest->closing = true;
        largest->in.clear();
        largest->has_line = false;
    }
}

// At most kLinesPerTurn requests of a connection per turn; lines wait while a request of the
// same connection is under way, so that replies keep request order.
void Server::handle_lines(Peer& p, std::int64_t until)
{
    std::size_t nl;
    for (int n = 0; n < kLinesPerTurn && p.has_line && !p.waiting && !p.closing &&
                    (n == 0 || monotonic_ns() < until);
         ++n) {
        if ((nl = p.in.find('\n')) == std::string::npos) {
            p.has_line = false;
            break;
        }
        handle(p, take_line(p, nl));
    }
}

// Whether a kill or freeze began less than kKillFirstNs ago (see turn).
bool Server::kill_under_way() const
{
    const auto now = monotonic_ns();
    return std::any_of(pending_.begin(), pending_.end(),
                       [now](const Pending& w) { return now - w.received_ns < kKillFirstNs; });
}

// Kills and freezes first: each connection whose next line is one has it handled now, before
// any other request of the turn (a connection's own order is kept: only its first line).
void Server::handle_urgent()
{
    for (auto& p : peers_) {
        if (!p.has_line || p.waiting || p.closing)
            continue;
        const auto nl = p.in.find('\n');
        if (nl == std::string::npos || nl > kUrgentLineMax)
            continue;
        api::Request r;
        try {
            r = api::decode_request(std::string_view(p.in).substr(0, nl));
        } catch (const api::ProtocolError&) {
            continue; // answered in its turn, as any malformed line
        }
        if (r.op != api::Op::Kill && r.op != api::Op::Freeze)
            continue;
        take_line(p, nl);
        handle(p, r);
    }
}

// The connection's first line (it ends at `nl`), taken out of its buffer.
std::string Server::take_line(Peer& p, std::size_t nl)
{
    std::string line = p.in.substr(0, nl);
    p.in.erase(0, nl + 1);
    p.has_line = p.in.find('\n') != std::string::npos;
    return line;
}

// Every other request, within kRequestsPerTurnNs, starting each turn at the connection after
// the last one served so that a time-cut turn is fair to all.
void Server::handle_requests()
{
    if (peers_.empty())
        return;
    const auto until = monotonic_ns() + kRequestsPerTurnNs;
    const std::size_t n = peers_.size();
    auto it = std::next(peers_.begin(), static_cast<std::ptrdiff_t>(next_peer_ % n));
    for (std::size_t k = 0; k < n; ++k) {
        if (monotonic_ns() >= until) {
            next_peer_ += k;
            return;
        }
        handle_lines(*it, until);
        if (++it == peers_.end())
            it = peers_.begin();
    }
    next_peer_ += 1;
}

Peer* Server::peer(std::uint64_t serial)
{
    for (auto& p : peers_)
        if (p.serial == serial)
            return &p;
    return nullptr;
}

// Recorded before the reply goes out (a caller that reads the log after its reply finds it),
// and streamed to subscribers other than the asker (whose next line must be its reply).
json Server::record_action(std::uint64_t asker, const json& a, const std::optional<std::string>& name)
{
    spdlog::info("action: {}", actions_->append(a));
    for (auto& s : peers_)
        if (s.subscribed && s.serial != asker && (!s.filter || (name && *s.filter == *name)))
            send(s, json{{"v", api::kVersion}, {"action", a}}.dump(-1, ' ', false,
                                                                    json::error_handler_t::replace),
                 true);
    return a;
}

void Server::answer(std::uint64_t asker, const api::Request& r, const json& who,
                    const std::string& session, bool ok, const Reply& reply,
                    const std::string& error)
{
    if (api::changes_state(r.op))
        record_action(asker,
                      ActionsLog::operator_action(who, r, ok, error,
                                                  ok ? reply.details : json::object(), session),
                      r.name);
    if (Peer* p = peer(asker))
        send(*p, ok ? api::ok_reply(reply.fields) : api::error_reply(error));
}

void Server::handle(Peer& p, const std::string& line)
{
    api::Request r;
    try {
        r = api::decode_request(line);
    } catch (const api::ProtocolError& e) {
        send(p, api::error_reply(std::string("malformed request: ") + e.what() +
                                 "; nothing was changed"));
        return;
    }
    handle(p, r);
}

void Server::handle(Peer& p, const api::Request& r)
{
    try {
        carry_out(p, r, handler_of(r.op)(*state_, p, r));
    } catch (const std::exception& e) {
        answer(p.serial, r, who_of(p), p.session.value_or(""), false, {}, e.what());
    }
}

// What a handler returned, carried out: a reply now, or the connection waits for its turn.
void Server::carry_out(Peer& p, const api::Request& r, Outcome out)
{
    if (auto* reply = std::get_if<Reply>(&out)) {
        answer(p.serial, r, who_of(p), p.session.value_or(""), true, *reply, "");
    } else if (auto* w = std::get_if<Pending>(&out)) {
        // Replied to (and recorded) when the cgroup settles: see settle_pending.
        w->peer = p.serial;
        w->request = r;
        w->who = who_of(p);
        p.waiting = true;
        pending_.push_back(std::move(*w));
        settle_pending();
    } else if (auto* slow = std::get_if<Slow>(&out)) {
        const auto mine = std::count_if(slow_.begin(), slow_.end(),
                                        [&](const auto& j) { return j.second.uid == p.uid; });
        if (p.uid != 0 && static_cast<std::size_t>(mine) >= kSlowPerUid) {
            if (slow->abandon)
                slow->abandon(); // the handler may have reserved something for the work
            throw Error(fmt::format("uid {} has {} slow requests (policy loads, name lookups) "
                                    "under way; wait for their replies",
                                    p.uid, kSlowPerUid));
        }
        const std::uint64_t id = next_serial_++;
        slow_[id] = SlowJob{.peer = p.serial, .uid = p.uid, .request = r, .who = who_of(p),
                            .session = p.session.value_or(""), .then = std::move(slow->then),
                            .abandon = std::move(slow->abandon)};
        p.waiting = true;
        (p.uid == 0 ? root_worker_ : worker_)->submit(id, std::move(slow->work));
    } else {
        // Answered after a turn has read the ring buffer: every event of an access that
        // returned before the ping was sent comes first on a subscription (docs/api.md).
        pings_.push_back({p.serial, monotonic_ns() + kPingWaitNs});
        p.waiting = true;
    }
}

// Slow work that ended: its result is used here, on the loop, and the caller answered.
void Server::finish_slow(Worker& worker)
{
    for (const auto& d : worker.done()) {
        if (const auto bg = background_.find(d.id); bg != background_.end()) {
            const auto then = std::move(bg->second);
            background_.erase(bg);
            finish_background(d, then);
            continue;
        }
        const auto it = slow_.find(d.id);
        if (it == slow_.end())
            continue;
        SlowJob job = std::move(it->second);
        slow_.erase(it);
        Peer* p = peer(job.peer);
        try {
            // A caller that went away gets nothing done late in its name (a policy applied
            // minutes after, over a newer one): refused, and recorded so.
            if ((d.error || !p) && job.abandon)
                job.abandon();
            if (d.error)
                std::rethrow_exception(d.error);
            if (!p)
                throw Error("the caller went away before its request was ready; nothing was "
                            "changed");
            const Reply reply = job.then(p);
            answer(job.peer, job.request, job.who, job.session, true, reply, "");
        } catch (const std::exception& e) {
            answer(job.peer, job.request, job.who, job.session, false, {}, e.what());
        }
        if ((p = peer(job.peer)))
            p->waiting = false;
    }
}

void Server::finish_background(const Worker::Done& d, const std::function<void()>& then)
{
    try {
        if (d.error)
            std::rethrow_exception(d.error);
    } catch (const std::exception& e) {
        spdlog::warn("background work failed: {}; reconcile finishes it later", e.what());
    }
    try {
        then();
    } catch (const std::exception& e) {
        spdlog::error("after background work: {}", e.what());
    }
}

// Work of the daemon's own (unloading a policy an apply replaced): on a worker of its own, whose
// jobs never wait on a name server.
void Server::background(std::function<void()> work, std::function<void()> then)
{
    const std::uint64_t id = next_serial_++;
    background_[id] = std::move(then);
    own_worker_->submit(id, std::move(work));
}

void Server::finish(Pending& w, bool ok, json reply, const std::string& error)
{
    if (w.events_fd >= 0)
        ::close(w.events_fd);
    w.events_fd = -1;
    record_action(w.peer, ActionsLog::operator_action(w.who, w.request, ok, error, reply, ""),
                  w.request.name);
    if (Peer* asker = peer(w.peer)) {
        send(*asker, ok ? api::ok_reply(reply) : api::error_reply(error));
        asker->waiting = false;
    }
}

// A ping is answered once a drain emptied the ring buffer after the ping was read, or after
// kPingWaitNs under a flood that never lets it empty.
void Server::answer_pings()
{
    const auto now = monotonic_ns();
    std::erase_if(pings_, [&](const std::pair<std::uint64_t, std::int64_t>& ping) {
        if ((reader_->more_pending() || store_full_) && now < ping.second)
            return false;
        if (Peer* p = peer(ping.first)) {
            send(*p, api::ok_reply({{"daemon", {{"pid", ::getpid()}, {"version", CORDON_VERSION}}}}));
            p->waiting = false;
        }
        return true;
    });
}

// Kill and freeze reply once the cgroup is empty, or frozen. A kill is written again every
// 100 ms until then (a process that entered the cgroup meanwhile); after kSettleTimeoutNs the
// reply is an error, and the agent stays refused everything (its flag stays set). The times
// in the reply count from when the caller wrote the request (sent_ns, when it says) or else
// from when this loop first saw its bytes (received_ns): a wait for the loop shows in them.
void Server::settle_pending()
{
    for (auto it = pending_.begin(); it != pending_.end();) {
        auto& w = *it;
        const bool kill = w.request.op == api::Op::Kill;
        const auto now = monotonic_ns();
        const bool gone = !fs::exists(w.cgroup);
        const bool settled = gone || (kill ? !agents::cgroup_populated(w.cgroup)
                                           : agents::cgroup_frozen(w.cgroup));
        if (!settled && now - w.received_ns < kSettleTimeoutNs) {
            if (kill && now - w.last_kill_ns > 100'000'000) {
                try {
                    agents::kill_cgroup(w.cgroup);
                } catch (const Error&) {
                }
                w.last_kill_ns = now;
            }
            ++it;
            continue;
        }
        // A caller's clock reading later than now, or from before this daemon, is not believed.
        const bool sent_known = w.sent_ns > 0 && w.sent_ns <= w.received_ns;
        const auto from = sent_known ? w.sent_ns : w.received_ns;
        json reply = {{"name", w.agent},
                      {"received_ns", w.received_ns},
                      {"flagged_ns", w.flagged_ns},
                      {"settled_ns", now},
                      {"elapsed_ms", static_cast<double>(now - from) / 1e6},
                      {"flag_ms", static_cast<double>(w.flagged_ns - from) / 1e6}};
        if (sent_known)
            reply["sent_ns"] = w.sent_ns;
        if (settled)
            finish(w, true, reply, "");
        else
            finish(w, false, reply,
                   fmt::format("agent {} is {} (the kernel refuses it everything), but its cgroup "
                               "{} is not {} after {} s: a process may be in uninterruptible "
                               "sleep; `cordon agents` shows it, and cordon keeps trying",
                               w.agent, kill ? "killed" : "frozen", w.cgroup.string(),
                               kill ? "empty" : "frozen", kSettleTimeoutNs / 1'000'000'000));
        it = pending_.erase(it);
    }
}

// Each agent's records the kernel had no room for (cordon_agent_live.events_lost) become a gap
// on that agent's own chain, so `cordon report NAME` shows what a flood pushed out and why: the
// agent was over its share of the buffer (events_shed: its own flood), or the buffer was full.
// What no agent accounts for goes on cordond's chain. How many were already stored is kept in
// the kernel (cordon_event_share.lost_recorded), so what was lost while no cordond ran (stopped,
// killed, upgraded) becomes a gap when the next one adopts the pins.
void Server::adopt_drops()
{
    auto& shares = reader_->shares();
    const auto drops = ctl_->guard().counters()[CORDON_CNT_RINGBUF_DROPS];
    const char* why = "lost while no cordond read the kernel's event buffer (stopped or "
                      "restarted; the buffer, or the agent's share, filled)";
    std::uint64_t adopted = 0;
    for (const auto& a : ctl_->agents()) {
        const auto live = ctl_->guard().live(a.key);
        if (!live)
            continue;
        // No entry (it aged out of the LRU): what the kernel counts now, as before shares.
        const auto recorded = shares.lost_recorded(a.key);
        auto& seen = agent_drops_seen_[std::pair{a.key, a.id}];
        seen = {recorded.value_or(live->events_lost), live->events_shed};
        if (pipeline_ && recorded && live->events_lost > *recorded) {
            pipeline_->push_gap(live->events_lost - *recorded, why, a.name);
            adopted += live->events_lost - *recorded;
            seen.lost = live->events_lost;
            shares.set_lost_recorded(a.key, live->events_lost);
        }
    }
    // What no adopted agent accounts for: records of agents removed meanwhile (a template's
    // child whose cgroup went) or of processes whose agent state was missing.
    const auto host = shares.lost_recorded(CORDON_SHARE_HOST);
    if (pipeline_ && host && drops > *host + adopted)
        pipeline_->push_gap(drops - *host - adopted,
                            std::string(why) + ", of agents since removed or without state");
    kernel_drops_seen_ = drops;
    if (pipeline_)
        shares.set_lost_recorded(CORDON_SHARE_HOST, drops);
    shares.publish();
}

void Server::note_kernel_drops()
{
    std::uint64_t attributed = 0;
    auto& shares = reader_->shares();
    std::set<std::uint64_t> keys;
    for (const auto& a : ctl_->agents()) {
        keys.insert(a.key);
        const auto live = ctl_->guard().live(a.key);
        if (!live)
            continue;
        // An agent this daemon did not adopt (added since) starts from 0 (adopt_drops()).
        auto& seen = agent_drops_seen_[std::pair{a.key, a.id}];
        if (live->events_lost > seen.lost) {
            const auto lost = live->events_lost - seen.lost;
            const std::uint64_t shed_now = live->events_shed;
            const auto shed = std::min<std::uint64_t>(lost, shed_now - std::min(shed_now, seen.shed));
            if (shed)
                pipeline_->push_gap(shed, "over its share of the kernel's event buffer (its own "
                                          "records dropped; other agents' kept)", a.name);
            if (lost > shed)
                pipeline_->push_gap(lost - shed, "the kernel's ring buffer was full (lost_events)",
                                    a.name);
            attributed += lost;
        }
        seen = {live->events_lost, live->events_shed};
        shares.set_lost_recorded(a.key, live->events_lost);
    }
    shares.keep_only(keys);
    // What no agent accounts for (a record of a process whose agent state was missing) goes on
    // cordond's chain. Counted since start, not per pass: the host-wide counter is read after
    // the agents' counts, so a pass may see drops that the agents' counts show only in the next.
    const auto drops = ctl_->guard().counters()[CORDON_CNT_RINGBUF_DROPS];
    drops_attributed_ += attributed;
    if (kernel_drops_seen_ && drops > *kernel_drops_seen_ + drops_attributed_ + drops_unattributed_) {
        const auto n = drops - *kernel_drops_seen_ - drops_attributed_ - drops_unattributed_;
        pipeline_->push_gap(n, "the kernel's ring buffer was full, or the records were of "
                               "agents removed before their losses were stored (lost_events)");
        drops_unattributed_ += n;
    }
    // How many of the host-wide drops are stored as gaps, for the daemon that adopts next.
    if (kernel_drops_seen_)
        shares.set_lost_recorded(CORDON_SHARE_HOST,
                                 std::min(drops, *kernel_drops_seen_ + drops_attributed_ + drops_unattributed_));
    shares.publish();
}

void Server::protect_files()
{
    std::vector<fs::path> state = {opts_.socket, opts_.registry};
    if (actions_->open())
        state.push_back(opts_.actions_log);
    std::vector<fs::path> dirs = {opts_.socket.parent_path(), opts_.actions_log.parent_path()};
    if (pipeline_) {
        const auto st = pipeline_->stats();
        protected_rotations_ = st.jsonl_rotations + st.jsonl_kept_files;
        protected_moved_ = st.corrupt_moved;
        std::vector<std::string> files = {st.db_path, st.jsonl_path, st.corrupt_moved};
        if (!st.db_path.empty())
            files.insert(files.end(), {st.db_path + "-wal", st.db_path + "-shm"});
        // Rotated JSONL files keep their protection: they are the older half of the record.
        for (unsigned i = 1; !st.jsonl_path.empty() && i <= opts_.jsonl_files; ++i)
            files.push_back(st.jsonl_path + "." + std::to_string(i));
        // So are the records retention carried out of them (FILE.kept, FILE.carried, and one
        // older generation of each).
        if (!st.jsonl_path.empty())
            for (const char* sfx : {".kept", ".kept.1", ".carried", ".carried.1"})
                files.push_back(st.jsonl_path + sfx);
        for (const auto& f : files)
            if (!f.empty() && fs::exists(f))
                state.push_back(f);
        for (const std::string& f : {st.db_path, st.jsonl_path})
            if (!f.empty())
                dirs.push_back(fs::path(f).parent_path());
    }
    for (const auto& dir : dirs)
        if (dir.filename() == "cordon" && std::find(state.begin(), state.end(), dir) == state.end())
            state.push_back(dir);
    ctl_->guard().protect_state(state);
}

namespace {

std::string tier_name(const control::AgentRecord* rec, std::uint32_t tier)
{
    return rec && tier < rec->tier_names.size() ? rec->tier_names[tier] : std::to_string(tier);
}

} // namespace

void Server::on_event(const events::Event& e)
{
    const auto& h = e.header();
    const control::AgentRecord* rec = nullptr;
    for (const auto& a : ctl_->agents())
        if (a.id == h.agent_id)
            rec = &a;
    if (!rec && h.agent_id >= CORDON_CHILD_ID_BASE && adopt_tried_.insert(h.agent_id).second) {
        // Once per unknown child per second (every_second clears the set): a child no record
        // can name (reconcile says why) must not make each of its events a scan.
        // A template's child the kernel made since the last reconcile: its record first, so
        // that its first records carry its name.
        try {
            for (const auto& change : ctl_->adopt_templates())
                actions_->controller("reconcile", {{"change", change}});
        } catch (const std::exception& err) {
            spdlog::error("adopting a template's new agents failed: {}; the next round tries "
                          "again (the kernel guards them meanwhile)",
                          err.what());
        }
        for (const auto& a : ctl_->agents())
            if (a.id == h.agent_id)
                rec = &a;
    }
    const std::string name = rec ? rec->name : fmt::format("agent-{}", h.agent_id);
    const control::TaskRecord* task = nullptr;
    if (rec && h.task_id)
        for (const auto& t : rec->tasks)
            if (t.number == h.task_id)
                task = &t;
    const auto namer = [rec, task](std::uint32_t id) {
        return control::rule_source(rec, task, id);
    };
    events::EventContext cx;
    if (task)
        cx.task = task->id;
    else if (h.task_id)
        cx.task = fmt::format("#{}", h.task_id);
    if (rec)
        cx.tiers = &rec->tier_names;
    const bool trust = h.hook == CORDON_HOOK_TRUST;
    if (trust)
        state_->note_trust(name, {{"time_ms", now_ms()},
                                  {"cause", events::trust_cause_name(e.body.access)},
                                  {"score", e.body.port},
                                  {"old_tier", tier_name(rec, e.body.family)},
                                  {"new_tier", tier_name(rec, e.body.protocol)},
                                  {"on_enter", events::verdict_name(h.verdict)}});
    if (h.verdict == CORDON_VERDICT_DENY || h.verdict == CORDON_VERDICT_KILL ||
        h.verdict == CORDON_VERDICT_FREEZE)
        ++state_->denials[h.agent_id];
    if (h.hook != CORDON_HOOK_PROCESS && !trust)
        ++decided_[{name, h.hook, h.verdict}];
    if (pipeline_)
        pipeline_->push(e, events::record_context(e, namer, name, cx));
    if (h.verdict == CORDON_VERDICT_KILL || h.verdict == CORDON_VERDICT_FREEZE ||
        (trust && h.verdict != CORDON_VERDICT_ALLOW))
        supervise_now_ = true;
    // Text is made only for a log line or a subscriber: under a flood most events need neither,
    // and the loop must get back to requests and kill flags.
    std::string text;
    if (h.verdict != CORDON_VERDICT_ALLOW || trust) {
        if (auto& [shown, left_out] = logged_[name]; shown < kLogLinesPerSecond) {
            ++shown;
            text = events::event_line(e, namer, cx);
            spdlog::info("{}: {}", name, text);
        } else {
            ++left_out;
        }
    }
    fan_out(e, name, text, namer, cx);
}

void Server::fan_out(const events::Event& e, const std::string& name, const std::string& text,
                     const std::function<std::string(std::uint32_t)>& namer,
                     const events::EventContext& cx)
{
    std::string line;
    for (auto& p : peers_) {
        if (!p.subscribed || (p.filter && *p.filter != name))
            continue;
        if (line.empty()) {
            const std::string shown = text.empty() ? events::event_line(e, namer, cx) : text;
            line = "{\"v\":1,\"event\":" + events::event_json(e, namer, name, cx);
            if (!shown.empty()) {
                line += ",\"line\":";
                events::json_string(line, shown);
            }
            line += "}";
        }
        send(p, line, true);
    }
}

// Kill verdicts are carried out from the agent's kill flag in the kernel, not from events (which
// may be lost): the kernel already refuses every access of a killed agent, this empties it.
void Server::supervise()
{
    std::vector<control::Watched> watched;
    watched.reserve(ctl_->agents().size());
    for (const auto& a : ctl_->agents())
        watched.push_back({a.name, a.cgroup, a.key,
                           a.origin == control::Origin::Child ? a.cgroup_id : 0});
    using W = control::SupervisorAction::What;
    for (const auto& a : sup_->pass(ctl_->guard().agents(), watched)) {
        switch (a.what) {
        case W::GuardOff:
            spdlog::error("kernel.ftrace_enabled is 0, so the kernel runs none of cordon's "
                          "programs; killing agent {}",
                          a.agent);
            break;
        case W::Kill:
            spdlog::warn("agent {} is killed; killing every process in {}", a.agent,
                         a.cgroup.string());
            break;
        case W::FreezeRule:
        case W::Refreeze: {
            const bool rule = a.what == W::FreezeRule;
            spdlog::warn("agent {} {}; frozen {} (`cordon thaw {}` resumes it)", a.agent,
                         rule ? "hit a freeze rule or entered a freezing trust tier"
                              : "was thawed outside cordon",
                         rule ? "for review" : "again", a.agent);
            actions_->controller("freeze", {{"agent", a.agent},
                                            {"cause", rule ? "freeze rule" : "thawed outside cordon"},
                                            {"result", a.error.empty() ? "ok" : a.error}});
            break;
        }
        }
        if (!a.error.empty())
            spdlog::error("agent {}: {}", a.agent, a.error);
    }
}

// Connections that hold a slot without using it: a request line still unfinished after
// kLineTimeoutMs, or nothing at all for kIdleTimeoutMs (subscriptions and run sessions wait for
// ever, by design).
void Server::expire_peers()
{
    const auto now = now_ms();
    for (auto& p : peers_) {
        const bool waits = p.subscribed || p.session || p.waiting;
        if ((!p.in.empty() && !p.has_line && now - p.last_active_ms > kLineTimeoutMs) ||
            (!waits && now - p.last_active_ms > kIdleTimeoutMs)) {
            p.closing = true;
            p.out.clear();
        }
    }
}

// At a connection limit: the longest-idle connection (of `uid`, or of anyone; root's spared when
// a caller other than root knocks) that is neither a subscription, a run session nor waiting
// for a reply makes room, so that idle clients cannot lock the operator out. False when none.
bool Server::evict_idle(std::optional<unsigned> uid, bool spare_root)
{
    Peer* oldest = nullptr;
    for (auto& p : peers_)
        if (!p.subscribed && !p.session && !p.waiting && (!uid || p.uid == *uid) &&
            !(spare_root && p.uid == 0) &&
            (!oldest || p.last_active_ms < oldest->last_active_ms))
            oldest = &p;
    if (!oldest)
        return false;
    drop_peer(*oldest);
    peers_.remove_if([oldest](const Peer& q) { return &q == oldest; });
    return true;
}

void Server::drop_peer(Peer& p)
{
    if (p.protected_pid)
        ctl_->guard().unprotect_process(*p.protected_pid);
    if (p.session) {
        // The `cordon run` that owned this agent is gone without detaching it: the agent ends
        // with it, as an embedded run's would (fails closed).
        spdlog::info("the cordon run of agent {} (pid {}) went away; ending the agent",
                     *p.session, p.pid);
        try {
            if (ctl_->find(*p.session))
                ctl_->remove_agent(*p.session);
        } catch (const Error& e) {
            spdlog::error("{}", e.what());
        }
    }
    ::close(p.fd);
}

// Everything in place before the socket opens: programs, registry, supervisor, sinks, worker.
// The loop that serves requests and carries out kill flags runs above every agent process; the
// worker, store and metrics threads started after this do not inherit it (SCHED_RESET_ON_FORK),
// and their locks lend a waiting loop's priority to their holder (PiMutex). The loop also reads
// the agents' records, so it takes at most half of a CPU (CpuShare): at SCHED_FIFO with no limit,
// a flood of an agent's denials kept the dying processes of its own killed fork bomb from running
// in a 1-vCPU guest.
void Server::raise_loop()
{
    if (const auto why = agents::raise_control_priority(); why.empty())
        share_ = CpuShare(true);
    else
        spdlog::warn("{}", why);
}

// After a reboot (the pinned state is gone, the kept attachments are not): every attached path
// and template is guarded again before the units that use them start.
void Server::restore_kept()
{
    for (const auto& done : ctl_->restore([](const control::AgentRecord& d) {
             auto resolver = policy::system_resolver();
             std::optional<policy::Mode> mode;
             if (!d.policy_mode.empty())
                 mode = d.policy_mode == "audit" ? policy::Mode::Audit : policy::Mode::Enforce;
             return control::prepare_document(d.policy_text, d.policy_file, d.context, *resolver,
                                              false, mode);
         })) {
        spdlog::warn("agent {}", done);
        actions_->controller("restore", {{"change", done}});
    }
}

// The event store, the JSONL sink and the actions log, as the options say.
void Server::open_sinks()
{
    events::PipelineOptions po;
    if (opts_.store_enabled) {
        po.db = opts_.store.empty() ? opts_.actions_log.parent_path() / "events.db" : opts_.store;
        po.db_options.max_age_ns = opts_.store_max_age_ms * 1'000'000;
        po.db_options.max_bytes = opts_.store_max_bytes;
        po.db_options.page_size = opts_.store_page_size;
    }
    if (!opts_.events_jsonl.empty())
        po.jsonl = opts_.events_jsonl;
    if (!opts_.events_journal.empty())
        po.journal = opts_.events_journal;
    po.jsonl_max_bytes = opts_.jsonl_max_bytes;
    po.jsonl_files = opts_.jsonl_files;
    if (po.db || po.jsonl || po.journal) {
        pipeline_ = std::make_unique<events::Pipeline>(po);
        std::vector<std::string> sinks;
        if (po.db)
            sinks.push_back(po.db->string());
        if (po.jsonl)
            sinks.push_back(po.jsonl->string());
        if (po.journal)
            sinks.push_back("the journal (" + po.journal->string() + ")");
        spdlog::info("storing events in {}", fmt::join(sinks, " and "));
    } else {
        spdlog::warn("no event store (--no-store, no --events-jsonl, no --events-journal): "
                     "decisions are not kept");
    }
    actions_ = std::make_unique<ActionsLog>(opts_.actions_log, pipeline_.get());
}

void Server::start()
{
    if (::geteuid() != 0)
        throw Error("cordond needs root (it loads BPF programs and creates cgroups)");
    for (int sig : {SIGPIPE, SIGTSTP, SIGTTIN, SIGTTOU})
        ::signal(sig, SIG_IGN);
    sigset_t mask;
    sigemptyset(&mask);
    for (int sig : {SIGINT, SIGTERM, SIGHUP})
        sigaddset(&mask, sig);
    ::sigprocmask(SIG_BLOCK, &mask, nullptr);
    sfd_ = ::signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
    raise_loop(); // before any thread is started
    std::error_code ec;
    fs::create_directories(opts_.registry, ec);
    ctl_ = std::make_unique<control::Controller>(control::ControllerOptions{
        .backend = opts_.backend,
        .pin_dir = opts_.pin_dir,
        .registry_dir = opts_.registry,
        .ringbuf_bytes = opts_.ringbuf_bytes,
        .durable_dir = opts_.attachments.empty() ? std::nullopt
                                                 : std::optional<fs::path>(opts_.attachments)});
    auto& g = ctl_->guard();
    spdlog::info("{} the {} program set in {} ({} programs), {} agents",
                 ctl_->adopted() ? "adopted" : "loaded and pinned", backend_name(g.backend()),
                 opts_.pin_dir.string(), g.program_ids().size(), ctl_->agents().size());
    sup_ = std::make_unique<control::Supervisor>(g.backend());
    // Earlier daemons' pids are no longer cordon's; this one is.
    for (auto pid : g.protected_processes())
        if (!fs::exists("/proc/" + std::to_string(pid)))
            g.unprotect_process(pid);
    g.protect_process(static_cast<std::uint32_t>(::getpid()));
    open_sinks();
    restore_kept();
    for (const auto& change : ctl_->reconcile()) {
        spdlog::warn("agent {}", change);
        actions_->controller("reconcile", {{"change", change}});
    }
    if (!opts_.metrics_listen.empty()) {
        metrics_ = std::make_unique<Metrics>(opts_.metrics_listen, ctl_->mount());
        if (metrics_->state().listening)
            spdlog::info("metrics on http://{}/metrics", opts_.metrics_listen);
    }
    start_gateway();
    // Agents' losses are taken up by note_kernel_drops (from what the kernel says was stored);
    // the host-wide counter as it stands.
    kernel_drops_seen_ = g.counters()[CORDON_CNT_RINGBUF_DROPS];
    reader_ = std::make_unique<events::Reader>(g.events_fd(), g.event_shares_fd(),
                                               [this](const events::Event& e) { on_event(e); });
    adopt_drops();
    state_ = std::make_unique<State>(State{.opts = opts_, .ctl = *ctl_, .sup = *sup_,
                                           .reader = *reader_, .pipeline = pipeline_.get(),
                                           .started_ms = now_ms(), .denials = {},
                                           .trust_log = {}, .subscriber_drops = 0,
                                           .apply_seq = {}, .subscription_refusal = {},
                                           .background = {}, .metrics_state = {}});
    state_->gateway = gateway_.get();
    state_->subscription_refusal = [this](const Peer& p) { return subscription_refusal(p); };
    state_->metrics_state = [this]() -> json {
        if (!metrics_)
            return nullptr;
        const auto m = metrics_->state();
        return {{"listen", m.listen}, {"listening", m.listening}, {"error", m.error},
                {"served", m.served}, {"refused_inside_agents", m.refused},
                {"closed_slow", m.timed_out}};
    };
    state_->background = [this](std::function<void()> work, std::function<void()> then) {
        background(std::move(work), std::move(then));
    };
    worker_ = std::make_unique<Worker>(kWorkers);
    // Two for root: one apply whose names meet a silent resolver (up to its whole timeout)
    // leaves the other for root's next attach or apply.
    root_worker_ = std::make_unique<Worker>(2);
    own_worker_ = std::make_unique<Worker>(1);
}

// The DNS gateway: agents' DNS goes to it from now on (dns/gateway.h). No upstream is a
// warning, not a refusal to start: every query then fails (SERVFAIL), closed.
void Server::start_gateway()
{
    std::string why;
    const auto ups = dns::upstreams(opts_.dns_upstreams, opts_.resolv_conf, why);
    if (ups.empty())
        spdlog::warn("DNS gateway: {}; agents' lookups fail (SERVFAIL) until cordond is started "
                     "with --dns-upstream ADDR",
                     why);
    gateway_ = std::make_unique<dns::Gateway>(
        ctl_->guard(), dns::GatewayOptions{.upstreams = ups, .timeout_ms = opts_.dns_timeout_ms,
                                           .per_agent_inflight = 32, .max_inflight = 1024,
                                           .port = 0});
    std::string list;
    for (const auto& u : ups)
        list += (list.empty() ? "" : ", ") + u.text;
    spdlog::info("DNS gateway on 127.0.0.1:{} and [::1]:{}, forwarding to {}", gateway_->port(),
                 gateway_->port(), list.empty() ? "nothing" : list);
}

// The gateway's records into the store and the JSONL file; refusals and failures into the log.
void Server::record_dns()
{
    if (!gateway_)
        return;
    for (const auto& e : gateway_->take_events()) {
        const control::AgentRecord* rec = nullptr;
        for (const auto& a : ctl_->agents())
            if (a.key == e.agent)
                rec = &a;
        const std::string name = rec ? rec->name : fmt::format("agent-{}", e.agent_id);
        if (e.outcome != "allowed" && e.outcome != "answered")
            spdlog::info("{}: {}", name, dns::event_line(e));
        if (pipeline_)
            pipeline_->push_action(
                dns::event_json(e, name, rec ? control::rule_source(rec, nullptr, e.rule_id) : ""));
    }
}

// Once a second: idle connections, expiries, reconcile, file protection, lost-record gaps.
void Server::every_second()
{
    expire_peers();
    adopt_tried_.clear();
    for (const auto& change : ctl_->expire()) {
        spdlog::info("agent {}", change);
        actions_->controller("expire", {{"change", change}});
    }
    for (const auto& change : ctl_->reconcile()) {
        spdlog::warn("agent {}", change);
        actions_->controller("reconcile", {{"change", change}});
    }
    if (pipeline_) {
        const auto st = pipeline_->stats();
        if (st.jsonl_rotations + st.jsonl_kept_files != protected_rotations_ || st.corrupt_moved != protected_moved_)
            protect_files();
        // Records the kernel had no room for are a gap in the store too, not only a counter:
        // a reader of the store sees when and how many.
        note_kernel_drops();
    }
    for (const auto& [name, counts] : logged_)
        if (counts.second > 0)
            spdlog::warn("{}: {} more events in the last second were not logged (subscribers "
                         "and the counters have them)",
                         name, counts.second);
    logged_.clear();
}

// One turn of the loop, in this order: the kernel's kill and freeze flags first (and again
// after the requests), then slow work that ended, new connections, each connection's share of
// requests, kills and freezes waiting for their cgroup, a bounded number of events, pings.
void Server::turn(bool& stop)
{
    // Work that is ready now: no wait in poll. Records the store has no room for are not
    // (spinning on them would take the CPU from the store thread that makes room).
    bool busy = reader_->more_pending() && !store_full_;
    for (const auto& p : peers_)
        busy = busy || (!p.waiting && !p.closing && p.has_line);
    busy = busy && !kill_under_way(); // then only kills and freezes are taken: poll for them
    std::vector<pollfd> fds = {{sfd_, POLLIN, 0},
                               {listen_fd_, POLLIN, 0},
                               {reader_->fd(), static_cast<short>(store_full_ ? 0 : POLLIN), 0},
                               {worker_->fd(), POLLIN, 0},
                               {root_worker_->fd(), POLLIN, 0},
                               {own_worker_->fd(), POLLIN, 0}};
    for (auto& p : peers_)
        fds.push_back({p.fd, static_cast<short>(POLLIN | (p.out.empty() ? 0 : POLLOUT)), 0});
    const std::size_t peers_end = fds.size(); // peers accepted below have no entry
    // cgroup.events of pending kills and freezes: POLLPRI when the cgroup changes.
    for (const auto& w : pending_)
        fds.push_back({w.events_fd, POLLPRI, 0});
    share_.before_wait(); // may rest first: the loop's share of the CPU (CpuShare)
    // A kill or freeze under way is checked every millisecond, not only on POLLPRI: the kernel
    // delays a cgroup.events notification that comes within 10 ms of the one before (an agent
    // that just started, then was killed, is reported empty only that much later).
    const int timeout = busy ? 0 : !pending_.empty() ? 1 : store_full_ ? 5 : 20;
    const int polled = ::poll(fds.data(), fds.size(), timeout);
    if (polled < 0 && errno != EINTR)
        throw Error("poll failed: " + errno_text(errno));
    // Pending kills' and freezes' cgroup.events: read each one that changed, or it stays ready.
    std::size_t k = peers_end;
    for (const auto& w : pending_)
        if (k < fds.size() && fds[k++].revents)
            rearm_events(w.events_fd);
    signalfd_siginfo si{};
    if (::read(sfd_, &si, sizeof(si)) == sizeof(si)) {
        spdlog::info("{}: exiting; the agents stay enforced by the pinned programs",
                     strsignal(static_cast<int>(si.ssi_signo)));
        stop = true;
    }
    if (fds[3].revents & POLLIN)
        finish_slow(*worker_);
    if (fds[4].revents & POLLIN)
        finish_slow(*root_worker_);
    if (fds[5].revents & POLLIN)
        finish_slow(*own_worker_);
    if (fds[1].revents & POLLIN)
        accept_peers();
    std::size_t i = 6;
    for (auto& p : peers_) {
        if (i >= peers_end)
            break;
        const short rev = fds[i++].revents;
        if (rev & POLLOUT)
            write_peer(p);
        if (rev & (POLLIN | POLLHUP | POLLERR))
            read_peer(p);
    }
    handle_urgent();
    settle_pending(); // a kill's reply before the other requests of the turn
    // For the first kKillFirstNs of a kill or freeze, the other requests and the records wait:
    // the CPU they would take is what the dying processes need, and the kill's reply comes
    // sooner. Bounded, so that a cgroup that does not settle (a process in D state) holds
    // nothing back for long.
    const bool kill_first = kill_under_way();
    if (!kill_first) {
        handle_requests();
        settle_pending();
    }
    read_records(kill_first);
    if (!kill_first)
        record_dns();
    answer_pings();
    for (auto it = peers_.begin(); it != peers_.end();) {
        if (it->closing && it->out.empty()) {
            drop_peer(*it);
            it = peers_.erase(it);
        } else {
            ++it;
        }
    }
}

// A bounded number of the kernel's records, none while a kill is under way. Backpressure: no
// more than the store's queue takes; the rest waits in the ring buffer, which absorbs a burst
// (and counts what it cannot hold).
void Server::read_records(bool kill_first)
{
    const std::size_t budget = kill_first ? 0
                               : pipeline_ ? std::min(kEventsPerTurn, pipeline_->room())
                                           : kEventsPerTurn;
    store_full_ = !kill_first && budget == 0;
    if (budget)
        reader_->drain(budget);
    if (pipeline_)
        pipeline_->flush();
}

namespace {

// sd_notify("READY=1") without libsystemd: one datagram to $NOTIFY_SOCKET, when it is set.
void notify_ready()
{
    const char* path = std::getenv("NOTIFY_SOCKET");
    if (!path || !*path || std::strlen(path) >= sizeof(sockaddr_un::sun_path))
        return;
    const int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return;
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    std::memcpy(sa.sun_path, path, std::strlen(path));
    if (sa.sun_path[0] == '@')
        sa.sun_path[0] = '\0'; // an abstract socket
    const char msg[] = "READY=1";
    const auto len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + std::strlen(path));
    if (::sendto(fd, msg, sizeof(msg) - 1, 0, reinterpret_cast<sockaddr*>(&sa), len) < 0)
        spdlog::warn("cannot tell systemd that cordond is ready: {}", errno_text(errno));
    ::close(fd);
}

} // namespace

int Server::run()
{
    start();
    listen_socket();
    // Its socket, registry and actions log are tamper-protected (lsm): an agent that replaced
    // the socket would answer the operator's kill itself. Their directories too when they are
    // cordon's own (named "cordon", as /run/cordon and /var/lib/cordon), never a shared one
    // such as /tmp.
    protect_files();
    spdlog::info("listening on {}", opts_.socket.string());
    // systemd (Type=notify): units ordered after cordond start only now, when the kept
    // attachments are restored and bound, and the socket answers.
    notify_ready();
    for (bool stop = false; !stop;) {
        // Kill flags and freeze marks are read from the kernel before any request of a turn is
        // handled: every 20 ms (a batched read of every agent's entry, not one per wake-up: a
        // burst of requests must not cost a scan of 1,000 agents each), and soon after a
        // kill or freeze verdict was read. A failure is logged and tried again; it never ends
        // cordond.
        try {
            // A flood of kill verdicts (a killed storm's every access) asks for a pass per
            // turn: at most one each 2 ms then.
            const auto since = now_ms() - last_supervise_ms_;
            if ((supervise_now_ && since >= 2) || since >= 20) {
                supervise_now_ = false;
                supervise();
                last_supervise_ms_ = now_ms();
            }
        } catch (const std::exception& e) {
            spdlog::error("supervising the agents failed: {}; trying again", e.what());
        }
        turn(stop);
        try {
            if (metrics_ && now_ms() - metrics_published_ms_ >= 1000) {
                // Series of agents that are gone go with them.
                std::set<std::string> names;
                std::vector<std::string> refused{
                    (ctl_->mount().mount_point / agents::kSubtree).string()};
                for (const auto& a : ctl_->agents()) {
                    names.insert(a.name);
                    refused.push_back(a.cgroup.string());
                }
                std::erase_if(decided_, [&](const auto& kv) {
                    return !names.contains(std::get<0>(kv.first));
                });
                metrics_->publish(metrics_text({.ctl = *ctl_, .decided = decided_,
                                                .malformed = reader_->malformed(),
                                                .subscriber_drops = state_->subscriber_drops,
                                                .pipeline = pipeline_.get()}),
                                  std::move(refused));
                metrics_published_ms_ = now_ms();
            }
            if (now_ms() - last_second_ms_ >= 1000) {
                every_second();
                last_second_ms_ = now_ms();
            }
        } catch (const std::exception& e) {
            spdlog::error("supervising the agents failed: {}; trying again", e.what());
        }
    }
    for (auto& p : peers_)
        ::close(p.fd); // sessions are not ended: cordon run carries on without the daemon
    peers_.clear();
    ::close(listen_fd_);
    ::unlink(opts_.socket.c_str());
    ctl_->guard().unprotect_process(static_cast<std::uint32_t>(::getpid()));
    return 0;
}

} // namespace

std::string refusal(int pid, unsigned uid, unsigned gid, const std::string& peer_cgroup,
                    const std::string& cordon_subtree, const std::vector<std::string>& agent_cgroups)
{
    if (agents::cgroup_within(peer_cgroup, cordon_subtree))
        return "the caller runs inside cordon's agent subtree (" + peer_cgroup + ")";
    for (const auto& a : agent_cgroups)
        if (agents::cgroup_within(peer_cgroup, a))
            return "the caller runs inside agent cgroup " + a;
    if (uid == 0)
        return "";
    const group* g = ::getgrnam("cordon");
    if (g && in_group(pid, gid, g->gr_gid))
        return "";
    return fmt::format("uid {} is neither root nor a member of group cordon", uid);
}

int serve(const ServerOptions& opts)
{
    Server s(opts);
    return s.run();
}

} // namespace cordon::daemon
