// SPDX-License-Identifier: Apache-2.0
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

#include <chrono>
#include <cstring>
#include <fstream>
#include <list>
#include <deque>
#include <map>
#include <set>
#include <random>
#include <sstream>

#include <fmt/format.h>
#include <bpf/bpf.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "api/protocol.h"
#include "common/clock.h"
#include "common/backend.h"
#include "common/error.h"
#include "control/controller.h"
#include "events/format.h"
#include "events/pipeline.h"
#include "events/reader.h"
#include "daemon/metrics.h"
#include "policy/duration.h"
#include "policy/net.h"

namespace cordon::daemon {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr std::size_t kMaxClients = 256;
/// Bytes queued for one slow subscriber before its events are dropped (and counted).
constexpr std::size_t kMaxQueued = 4u << 20;
/// A request line must be complete within this long of its last bytes.
constexpr std::int64_t kLineTimeoutMs = 10'000;
/// A connection that is not a subscription or run session is closed after this long unused.
constexpr std::int64_t kIdleTimeoutMs = 60'000;
/// Bytes of unfinished request lines over all connections (8 policies of the largest size).
constexpr std::size_t kMaxBufferedBytes = 64u << 20;

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

std::int64_t now_ms()
{
    using namespace std::chrono;
    return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}


/// How long kill and freeze wait for the cgroup before they reply with an error.
constexpr std::int64_t kSettleTimeoutNs = 10'000'000'000;
/// Event records handled per pass of the loop: an agent that makes denials as fast as it can
/// must not keep the one thread from requests, kill flags and freeze marks.
constexpr std::size_t kEventsPerPass = 1024;
/// Event lines written to cordond's log per agent per second; the rest are counted and
/// summarised (subscribers and the counters still see every event).
constexpr std::uint64_t kLogLinesPerSecond = 50;
/// A ping waits at most this long for the ring buffer to be read up to it (under a flood).
constexpr std::int64_t kPingWaitNs = 200'000'000;

struct Peer {
    std::uint64_t serial = 0; ///< names the connection in a Pending
    int fd = -1;
    int pid = 0;
    unsigned uid = 0, gid = 0;
    std::string in;  ///< bytes of an unfinished request line
    std::string out; ///< bytes not yet written
    bool closing = false;            ///< close once `out` is written
    std::optional<std::string> session; ///< run agent this connection owns
    bool subscribed = false;
    std::optional<std::string> filter; ///< subscription: one agent, or every one
    std::uint64_t dropped = 0;         ///< events a slow subscriber did not take
    std::int64_t last_active_ms = 0;   ///< last bytes received
    std::optional<std::uint32_t> protected_pid; ///< a `cordon run` put in cordon_protected
    bool waiting = false; ///< a kill or freeze is under way; later lines wait for its reply
};

/// A kill or freeze whose reply waits for the cgroup (empty, or frozen): cgroup.events is
/// watched (the kernel signals POLLPRI on each change) so the daemon's one thread never blocks.
struct Pending {
    std::uint64_t peer = 0;
    api::Request request;
    std::string agent;
    std::filesystem::path cgroup;
    int events_fd = -1;
    std::int64_t received_ns = 0; ///< the request was read
    std::int64_t flagged_ns = 0;  ///< the kernel refused the agent everything from here on
    std::int64_t last_kill_ns = 0;
    json who;
};

class Server {
public:
    explicit Server(const ServerOptions& o) : opts_(o) {}
    int run();

private:
    void listen_socket();
    void accept_peer();
    void read_peer(Peer& p);
    void write_peer(Peer& p);
    void handle(Peer& p, const std::string& line);
    void handle_lines(Peer& p);
    void settle_pending();
    void answer_pings();
    void finish(Pending& w, bool ok, json reply, const std::string& error);
    json dispatch(Peer& p, const api::Request& r);
    json agent_json(const control::AgentRecord& r);
    void on_event(const events::Event& e);
    void supervise();
    void drop_peer(Peer& p);
    void reconcile();
    std::string append_action(const json& a);
    std::string refusal_for(int pid, unsigned uid, unsigned gid);
    void evict_idle();
    void expire_peers();
    json record_action(std::uint64_t asker, const json& who, const api::Request& r, bool ok,
                       const std::string& error, const json& details = json::object(),
                       const std::string& agent = "");
    json who_of(const Peer& p) const;
    void send(Peer& p, const std::string& line, bool is_event = false);

    ServerOptions opts_;
    std::unique_ptr<control::Controller> ctl_;
    std::unique_ptr<events::Reader> reader_;
    std::unique_ptr<events::Pipeline> pipeline_; ///< store and JSONL sinks (their own thread)
    std::unique_ptr<Metrics> metrics_;           ///< Prometheus endpoint (its own thread)
    /// Decisions read from the ring buffer, by (agent name, hook, verdict), for the metrics.
    std::map<std::tuple<std::string, std::uint16_t, std::uint8_t>, std::uint64_t> decided_;
    std::int64_t metrics_published_ms_ = 0;
    std::optional<std::uint64_t> kernel_drops_seen_; ///< ring buffer drops already noted
    std::map<std::pair<std::uint64_t, std::uint32_t>, std::uint64_t> agent_drops_seen_;
    void note_kernel_drops();
    bool store_full_ = false; ///< the store's queue is full: the ring buffer holds the rest
    json store_json() const;
    /// Hands the tamper guard the daemon's files: socket, registry, actions log, event store
    /// and JSONL file (again after a rotation made a new one).
    void protect_files();
    std::uint64_t protected_rotations_ = 0;
    std::string protected_moved_; ///< the corrupt store moved aside, when protect_files last ran
    void publish_metrics();
    std::list<Peer> peers_;
    int listen_fd_ = -1;
    int actions_fd_ = -1;
    std::int64_t started_ms_ = now_ms();
    std::map<std::uint32_t, std::uint64_t> denials_; ///< by agent id, from events this process read
    /// Recent trust changes by agent name (tier-change events read, operator sets), newest last.
    std::map<std::string, std::deque<json>> trust_log_;
    void note_trust(const std::string& agent, json change);
    json task_json(const control::AgentRecord& r, const control::TaskRecord& t) const;
    static json grant_json(const control::GrantRecord& g);
    /// Event lines logged this second, and those left out, by agent name.
    std::map<std::string, std::pair<std::uint64_t, std::uint64_t>> logged_;
    std::int64_t log_window_ms_ = 0;
    bool supervise_now_ = false; ///< a kill or freeze verdict was read: do not wait for the poll
    /// Pings waiting for the ring buffer to be read up to them: (connection, deadline).
    std::vector<std::pair<std::uint64_t, std::int64_t>> pings_;
    /// Kill flags already carried out, by (cgroup id, agent id): an agent attached again to the
    /// same cgroup has a fresh id, so its kill flag is carried out again.
    std::set<std::pair<std::uint64_t, std::uint32_t>> killed_handled_;
    std::uint64_t subscriber_drops_ = 0;
    std::uint64_t next_serial_ = 1;
    std::list<Pending> pending_;
    std::optional<Pending> deferred_; ///< set by dispatch: reply once the cgroup settles
    std::int64_t received_ns_ = 0;    ///< when the request being handled was read
    /// Freeze verdicts already carried out, by cgroup id: the thaw epoch they marked.
    std::map<std::uint64_t, std::uint32_t> frozen_handled_;
    int ftrace_fd_ = -1;
    bool ftrace_off_ = false;
};

void Server::listen_socket()
{
    const fs::path dir = opts_.socket.parent_path();
    std::error_code ec;
    fs::create_directories(dir, ec);
    ::chmod(dir.c_str(), 0755);
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
    if (::listen(listen_fd_, 64) != 0)
        throw Error("cannot listen on " + opts_.socket.string() + ": " + errno_text(errno));
}

void Server::accept_peer()
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
        std::string why = refusal_for(cr.pid, cr.uid, cr.gid);
        const int one = 1;
        if (why.empty() && ::setsockopt(fd, SOL_SOCKET, SO_PASSCRED, &one, sizeof(one)) != 0)
            why = "cannot ask for sender credentials: " + errno_text(errno);
        if (why.empty() && peers_.size() >= kMaxClients)
            evict_idle();
        if (!why.empty() || peers_.size() >= kMaxClients) {
            if (why.empty())
                why = fmt::format("too many connections (at most {})", kMaxClients);
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
        ++subscriber_drops_;
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

std::string Server::refusal_for(int pid, unsigned uid, unsigned gid)
{
    std::vector<std::string> cgroups;
    for (const auto& a : ctl_->agents())
        cgroups.push_back(a.cgroup.string());
    const auto where = pid > 0 ? agents::process_cgroup(ctl_->mount(), pid) : std::nullopt;
    if (!where)
        return "the sending process is gone or in another pid namespace";
    return refusal(pid, uid, gid, where->string(),
                   (ctl_->mount().mount_point / agents::kSubtree).string(), cgroups);
}

void Server::read_peer(Peer& p)
{
    char buf[65536];
    for (;;) {
        // Every chunk carries the credentials of the process that sent it (SO_PASSCRED; the
        // kernel never merges chunks of two senders into one read). Who may talk is decided per
        // chunk, not once per connection: a connection handed to, or inherited by, a process in
        // an agent or of another user is refused from its first byte on (fails closed).
        iovec iov{.iov_base = buf, .iov_len = sizeof(buf)};
        alignas(cmsghdr) char control[CMSG_SPACE(sizeof(ucred))];
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
        const cmsghdr* c = CMSG_FIRSTHDR(&msg);
        if (!c || c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_CREDENTIALS) {
            send(p, api::error_reply("permission denied: no sender credentials"));
            p.closing = true;
            return;
        }
        ucred cr{};
        std::memcpy(&cr, CMSG_DATA(c), sizeof(cr));
        if (const auto why = refusal_for(cr.pid, cr.uid, cr.gid); !why.empty()) {
            spdlog::warn("refused a request from pid {} uid {} on a connection of pid {}: {}",
                         cr.pid, cr.uid, p.pid, why);
            send(p, api::error_reply("permission denied: " + why));
            p.closing = true;
            return;
        }
        p.pid = cr.pid;
        p.uid = cr.uid;
        p.gid = cr.gid;
        p.last_active_ms = now_ms();
        received_ns_ = monotonic_ns();
        p.in.append(buf, static_cast<size_t>(n));
        handle_lines(p);
        std::size_t buffered = 0;
        for (const auto& q : peers_)
            buffered += q.in.size();
        if (buffered > kMaxBufferedBytes) {
            send(p, api::error_reply("the daemon is busy with other large requests; try again"));
            p.closing = true;
            p.in.clear();
            return;
        }
        if (p.in.size() > api::kMaxRequestBytes) {
            send(p, api::error_reply(fmt::format("request longer than {} bytes; nothing was "
                                                 "changed",
                                                 api::kMaxRequestBytes)));
            p.closing = true;
            return;
        }
    }
}

// Lines wait while a kill or freeze of this connection is under way: replies keep request order.
void Server::handle_lines(Peer& p)
{
    size_t nl;
    while (!p.waiting && !p.closing && (nl = p.in.find('\n')) != std::string::npos) {
        const std::string line = p.in.substr(0, nl);
        p.in.erase(0, nl + 1);
        handle(p, line);
    }
}

std::string Server::append_action(const json& a)
{
    if (pipeline_)
        pipeline_->push_action(a);
    const std::string line = a.dump(-1, ' ', false, json::error_handler_t::replace);
    if (actions_fd_ >= 0) {
        const std::string l = line + "\n";
        if (::write(actions_fd_, l.data(), l.size()) != static_cast<ssize_t>(l.size()))
            spdlog::error("cannot append to {}: {}", opts_.actions_log.string(), errno_text(errno));
    }
    return line;
}

void Server::protect_files()
{
    std::vector<fs::path> state = {opts_.socket, opts_.registry};
    if (actions_fd_ >= 0)
        state.push_back(opts_.actions_log);
    std::vector<fs::path> dirs = {opts_.socket.parent_path(), opts_.actions_log.parent_path()};
    if (pipeline_) {
        const auto st = pipeline_->stats();
        protected_rotations_ = st.jsonl_rotations;
        protected_moved_ = st.corrupt_moved;
        std::vector<std::string> files = {st.db_path, st.jsonl_path, st.corrupt_moved};
        if (!st.db_path.empty())
            files.insert(files.end(), {st.db_path + "-wal", st.db_path + "-shm"});
        // Rotated JSONL files keep their protection: they are the older half of the record.
        for (unsigned i = 1; !st.jsonl_path.empty() && i <= opts_.jsonl_files; ++i)
            files.push_back(st.jsonl_path + "." + std::to_string(i));
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

json Server::who_of(const Peer& p) const
{
    return {{"pid", p.pid}, {"uid", p.uid}, {"gid", p.gid}};
}

// Recorded before the reply goes out (a caller that reads the log after its reply finds it),
// and streamed to subscribers other than the asker (whose next line must be its reply).
json Server::record_action(std::uint64_t asker, const json& who, const api::Request& r, bool ok,
                           const std::string& error, const json& details, const std::string& agent)
{
    json a = {{"time_ms", now_ms()},
              {"type", "operator_action"},
              {"who", who},
              {"op", api::op_name(r.op)},
              {"result", ok ? "ok" : "error"}};
    if (r.name)
        a["name"] = *r.name;
    if (!agent.empty())
        a["agent"] = agent;
    if (r.cgroup)
        a["cgroup"] = *r.cgroup;
    if (r.policy)
        a["policy"] = {{"file", r.policy->file}, {"sha256", control::sha256_hex(r.policy->text)}};
    if (r.mode)
        a["mode"] = *r.mode;
    if (r.reason)
        a["reason"] = *r.reason;
    // What a trust, task or grant request asked for, refused ones included.
    for (auto [key, v] : {std::pair{"id", &r.id}, std::pair{"ttl", &r.ttl},
                          std::pair{"kind", &r.kind}, std::pair{"target", &r.target},
                          std::pair{"task", &r.task}})
        if (*v)
            a[key] = **v;
    for (auto [key, v] : {std::pair{"score", &r.score}, std::pair{"pid", &r.pid},
                          std::pair{"grant", &r.grant}})
        if (*v)
            a[key] = **v;
    if (!details.empty())
        a["details"] = details;
    if (!ok)
        a["error"] = error;
    spdlog::info("action: {}", append_action(a));
    for (auto& s : peers_)
        if (s.subscribed && s.serial != asker && (!s.filter || (r.name && *s.filter == *r.name)))
            send(s, json{{"v", api::kVersion}, {"action", a}}.dump(-1, ' ', false,
                                                                    json::error_handler_t::replace),
                 true);
    return a;
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
    if (r.op == api::Op::Ping) {
        // Answered after this pass has read the ring buffer: every event of an access that
        // returned before the ping was sent comes first on a subscription (docs/api.md).
        pings_.push_back({p.serial, monotonic_ns() + kPingWaitNs});
        p.waiting = true;
        return;
    }
    const std::string session = p.session.value_or("");
    try {
        json reply = dispatch(p, r);
        if (deferred_) {
            // Replied to (and recorded) when the cgroup settles: see settle_pending.
            deferred_->peer = p.serial;
            deferred_->request = r;
            deferred_->who = who_of(p);
            p.waiting = true;
            pending_.push_back(std::move(*deferred_));
            deferred_.reset();
            settle_pending();
            return;
        }
        const json details = reply.value("details", json::object());
        reply.erase("details");
        if (api::changes_state(r.op))
            record_action(p.serial, who_of(p), r, true, "", details, session);
        send(p, api::ok_reply(reply));
    } catch (const std::exception& e) {
        deferred_.reset();
        if (api::changes_state(r.op))
            record_action(p.serial, who_of(p), r, false, e.what(), json::object(), session);
        send(p, api::error_reply(e.what()));
    }
}

void Server::finish(Pending& w, bool ok, json reply, const std::string& error)
{
    if (w.events_fd >= 0)
        ::close(w.events_fd);
    w.events_fd = -1;
    Peer* asker = nullptr;
    for (auto& p : peers_)
        if (p.serial == w.peer)
            asker = &p;
    record_action(w.peer, w.who, w.request, ok, error, reply);
    if (asker) {
        send(*asker, ok ? api::ok_reply(reply) : api::error_reply(error));
        asker->waiting = false;
        handle_lines(*asker);
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
        for (auto& p : peers_)
            if (p.serial == ping.first) {
                send(p, api::ok_reply({{"daemon", {{"pid", ::getpid()},
                                                   {"version", CORDON_VERSION}}}}));
                p.waiting = false;
                handle_lines(p);
            }
        return true;
    });
}

// Kill and freeze reply once the cgroup is empty, or frozen. A kill is written again every
// 100 ms until then (a process that entered the cgroup meanwhile); after kSettleTimeoutNs the
// reply is an error, and the agent stays refused everything (its flag stays set).
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
        json reply = {{"name", w.agent},
                      {"received_ns", w.received_ns},
                      {"flagged_ns", w.flagged_ns},
                      {"settled_ns", now},
                      {"elapsed_ms", static_cast<double>(now - w.received_ns) / 1e6}};
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

policy::Context context_of(const api::Request& r)
{
    return {.home = r.home, .workspace = r.workspace, .user = r.user};
}

// Each agent's records the kernel had no room for (cordon_agent_live.events_lost) become a gap
// on that agent's own chain, so `cordon report NAME` shows what a flood pushed out; what no
// agent accounts for goes on cordond's chain. Counts of agents adopted at start are taken as
// they are (an earlier daemon saw them), not claimed as new.
void Server::note_kernel_drops()
{
    const std::string why = "the kernel's ring buffer was full (lost_events)";
    std::uint64_t attributed = 0;
    for (const auto& a : ctl_->agents()) {
        const auto live = ctl_->guard().live(a.cgroup_id);
        if (!live)
            continue;
        // An agent added since this daemon started was created with a count of 0.
        auto& seen = agent_drops_seen_[std::pair{a.cgroup_id, a.id}];
        if (live->events_lost > seen) {
            pipeline_->push_gap(live->events_lost - seen, why, a.name);
            attributed += live->events_lost - seen;
        }
        seen = live->events_lost;
    }
    const auto drops = ctl_->guard().counters()[CORDON_CNT_RINGBUF_DROPS];
    if (kernel_drops_seen_ && drops > *kernel_drops_seen_ + attributed)
        pipeline_->push_gap(drops - *kernel_drops_seen_ - attributed, why);
    kernel_drops_seen_ = drops;
}

json Server::store_json() const
{
    if (!pipeline_)
        return {{"enabled", false}};
    const auto s = pipeline_->stats();
    json j = {{"enabled", true},
              {"received", s.received},
              {"queue_dropped", s.queue_dropped},
              {"lag_records", s.lag_records},
              {"lag_ms", s.lag_ms},
              {"store_cpu_ms", s.store_cpu_ns / 1'000'000}};
    if (!s.db_path.empty()) {
        json heads = json::object();
        for (const auto& [agent, h] : pipeline_->heads())
            heads[agent] = {{"seq", h.first}, {"hash", h.second}};
        j["chain_heads"] = heads;
    }
    if (!s.db_path.empty())
        j["sqlite"] = {{"path", s.db_path},       {"stored", s.db_stored},
                       {"lost", s.db_lost},       {"write_errors", s.db_write_errors},
                       {"pruned", s.pruned},      {"last_error", s.db_error},
                       {"corrupt_moved", s.corrupt_moved}};
    if (!s.jsonl_path.empty())
        j["jsonl"] = {{"path", s.jsonl_path},
                      {"written", s.jsonl_written},
                      {"lost", s.jsonl_lost},
                      {"write_errors", s.jsonl_write_errors},
                      {"rotations", s.jsonl_rotations},
                      {"last_error", s.jsonl_error}};
    return j;
}

void Server::publish_metrics()
{
    auto& g = ctl_->guard();
    const auto c = g.counters();
    std::string t;
    const auto help = [&t](const char* name, const char* type, const char* text) {
        t += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, text, name, type);
    };
    help("cordon_decisions_total", "counter",
         "Decisions reported by the kernel and read by cordond, by agent, hook and verdict "
         "(allows only for agents with trace: all)");
    for (const auto& [k, n] : decided_) {
        const auto& [agent, hook, verdict] = k;
        t += metric_line("cordon_decisions_total",
                         {{"agent", agent},
                          {"hook", std::string(events::hook_name(hook))},
                          {"verdict", std::string(events::verdict_name(verdict))}},
                         static_cast<double>(n));
    }
    help("cordon_kernel_decisions_total", "counter",
         "Every decision the programs made, reported or not, by verdict");
    for (auto [v, i] : {std::pair{"allow", CORDON_CNT_ALLOW}, std::pair{"deny", CORDON_CNT_DENY},
                        std::pair{"audit", CORDON_CNT_AUDIT}, std::pair{"kill", CORDON_CNT_KILL},
                        std::pair{"freeze", CORDON_CNT_FREEZE}})
        t += metric_line("cordon_kernel_decisions_total", {{"verdict", v}}, static_cast<double>(c[i]));
    help("cordon_lost_events_total", "counter", "Records the ring buffer had no room for");
    t += metric_line("cordon_lost_events_total", {}, static_cast<double>(c[CORDON_CNT_RINGBUF_DROPS]));
    help("cordon_malformed_events_total", "counter", "Records that failed to decode");
    t += metric_line("cordon_malformed_events_total", {}, static_cast<double>(reader_->malformed()));
    help("cordon_unresolved_paths_total", "counter",
         "Accesses whose path the programs could not resolve (refused)");
    t += metric_line("cordon_unresolved_paths_total", {}, static_cast<double>(c[CORDON_CNT_PATH_FAILED]));
    help("cordon_subscriber_drops_total", "counter", "Events a slow subscriber did not take");
    t += metric_line("cordon_subscriber_drops_total", {}, static_cast<double>(subscriber_drops_));
    help("cordon_agent_score", "gauge", "Trust score of each agent (0-1000)");
    std::string tiers, lost_by_agent;
    for (const auto& a : ctl_->agents()) {
        const auto st = g.agent(a.cgroup_id);
        const auto live = g.live(a.cgroup_id);
        if (!st || !live)
            continue;
        t += metric_line("cordon_agent_score", {{"agent", a.name}}, live->score);
        lost_by_agent += metric_line("cordon_agent_lost_events_total", {{"agent", a.name}},
                                     static_cast<double>(live->events_lost));
        const auto tier = ctl_->tier_of(st->policy_id, *live);
        tiers += metric_line("cordon_agent_tier",
                             {{"agent", a.name},
                              {"tier", tier < a.tier_names.size() ? a.tier_names[tier]
                                                                  : std::to_string(tier)}},
                             tier);
    }
    help("cordon_agent_tier", "gauge", "The trust tier each agent is in (its index, lowest 0; the label names it)");
    t += tiers;
    help("cordon_agent_lost_events_total", "counter", "Each agent's records the ring buffer had no room for");
    t += lost_by_agent;
    if (pipeline_) {
        const auto s = pipeline_->stats();
        help("cordon_store_records_total", "counter", "Records written, by sink");
        help("cordon_store_lost_total", "counter", "Records not stored, by sink and cause");
        help("cordon_store_write_errors_total", "counter", "Failed writes, by sink");
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
        help("cordon_store_lag_records", "gauge", "Records queued for the store, not yet written");
        t += metric_line("cordon_store_lag_records", {}, static_cast<double>(s.lag_records));
        help("cordon_store_lag_seconds", "gauge", "Age of the oldest record not yet written");
        t += metric_line("cordon_store_lag_seconds", {}, static_cast<double>(s.lag_ms) / 1000.0);
    }
    // BPF program run time: the kernel counts it only while kernel.bpf_stats_enabled is 1.
    std::ifstream stats_enabled("/proc/sys/kernel/bpf_stats_enabled");
    int enabled = 0;
    if (stats_enabled >> enabled && enabled == 1) {
        help("cordon_bpf_run_seconds_total", "counter", "Time cordon's programs ran (kernel.bpf_stats_enabled=1)");
        std::string runs;
        for (const auto id : g.program_ids()) {
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
        help("cordon_bpf_runs_total", "counter", "Times cordon's programs ran (kernel.bpf_stats_enabled=1)");
        t += runs;
    }
    metrics_->publish(std::move(t));
}

json Server::agent_json(const control::AgentRecord& r)
{
    json a = {{"name", r.name},
              {"id", r.id},
              {"cgroup", r.cgroup.string()},
              {"cgroup_id", r.cgroup_id},
              {"origin", control::origin_name(r.origin)},
              {"policy",
               {{"file", r.policy_file}, {"name", r.policy_name}, {"sha256", r.policy_sha256},
                {"id", r.policy_id}}},
              {"age_s", std::max<std::int64_t>(0, now_ms() / 1000 - r.created)},
              {"denials_seen", denials_[r.id]},
              {"detached", r.origin == control::Origin::Run && !r.owner_pid}};
    const auto st = ctl_->guard().agent(r.cgroup_id);
    const auto live = ctl_->guard().live(r.cgroup_id);
    if (st && live) {
        a["mode"] = st->mode == CORDON_MODE_AUDIT ? "audit" : "enforce";
        a["score"] = live->score;
        a["killed"] = cordon_agent_killed(&*st, &*live) != 0;
        a["frozen"] = cordon_agent_frozen(&*st, &*live) != 0;
        a["tier"] = ctl_->tier_of(st->policy_id, *live);
        a["task_id"] = st->task_id;
        for (const auto& t : r.tasks)
            if (!t.pid)
                a["task"] = t.id;
        a["tasks"] = r.tasks.size();
        a["grants"] = r.grants.size();
        a["events_lost"] = live->events_lost;
    }
    a["cgroup_frozen"] = agents::cgroup_frozen(r.cgroup);
    std::uint64_t procs = 0;
    std::error_code ec;
    for (auto it = fs::recursive_directory_iterator(r.cgroup, ec);
         !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
        if (it->path().filename() != "cgroup.procs")
            continue;
        std::ifstream in(it->path());
        for (std::string l; std::getline(in, l);)
            ++procs;
    }
    a["processes"] = procs;
    return a;
}

void Server::note_trust(const std::string& agent, json change)
{
    auto& log = trust_log_[agent];
    log.push_back(std::move(change));
    while (log.size() > 32)
        log.pop_front();
}

json Server::task_json(const control::AgentRecord& r, const control::TaskRecord& t) const
{
    json j = {{"id", t.id},
              {"number", t.number},
              {"begun_ms", t.begun_ms},
              {"expires_ms", t.expires_ms},
              {"overlay", t.overlay_file},
              {"grants", std::count_if(r.grants.begin(), r.grants.end(),
                                       [&](const control::GrantRecord& g) { return g.task == t.id; })}};
    if (t.pid)
        j["pid"] = *t.pid;
    if (t.pid) {
        json procs = json::array();
        for (const auto& [tgid, pt] : ctl_->guard().bound_processes())
            if (pt.task_id == t.number)
                procs.push_back(tgid);
        j["processes"] = procs;
    }
    return j;
}

json Server::grant_json(const control::GrantRecord& g)
{
    json j = {{"id", g.id},           {"kind", control::grant_kind_name(g.kind)},
              {"target", g.target},   {"created_ms", g.created_ms},
              {"expires_ms", g.expires_ms}, {"expires_ns", g.expires_ns},
              {"task", g.task},       {"reason", g.reason}};
    if (g.kind == control::GrantKind::Connect) {
        json a = json::array();
        for (const auto& c : g.cidrs)
            a.push_back(policy::cidr_text(c));
        j["addresses"] = a;
    } else {
        j["path"] = g.path;
    }
    return j;
}

json Server::dispatch(Peer& p, const api::Request& r)
{
    auto& g = ctl_->guard();
    switch (r.op) {
    case api::Op::Ping: // answered by answer_pings
        return {{"daemon", {{"pid", ::getpid()}, {"version", CORDON_VERSION}}}};
    case api::Op::Status: {
        const auto c = g.counters();
        return {{"daemon", {{"pid", ::getpid()}, {"version", CORDON_VERSION},
                            {"uptime_s", (now_ms() - started_ms_) / 1000},
                            {"adopted_pinned_state", ctl_->adopted()}}},
                {"backend", backend_name(g.backend())},
                {"pin_dir", opts_.pin_dir.string()},
                {"programs", g.program_ids()},
                {"agents", ctl_->agents().size()},
                {"policies", g.policy_ids().size()},
                {"decisions", {{"allow", c[CORDON_CNT_ALLOW]}, {"deny", c[CORDON_CNT_DENY]},
                               {"audit", c[CORDON_CNT_AUDIT]}, {"kill", c[CORDON_CNT_KILL]},
                               {"freeze", c[CORDON_CNT_FREEZE]}}},
                {"lost_events", c[CORDON_CNT_RINGBUF_DROPS]},
                {"malformed_events", reader_->malformed()},
                {"subscriber_drops", subscriber_drops_},
                {"unresolved_paths", c[CORDON_CNT_PATH_FAILED]},
                {"task_table_full", c[CORDON_CNT_TASK_FULL]},
                {"store", store_json()}};
    }
    case api::Op::Agents: {
        json list = json::array();
        for (const auto& a : ctl_->agents())
            list.push_back(agent_json(a));
        return {{"agents", list}};
    }
    case api::Op::Attach:
    case api::Op::Run: {
        if (r.op == api::Op::Run && p.session)
            throw Error("this connection already runs agent " + *p.session);
        auto resolver = policy::system_resolver();
        std::optional<policy::Mode> mode;
        if (r.mode)
            mode = *r.mode == "audit" ? policy::Mode::Audit : policy::Mode::Enforce;
        const auto prepared = control::prepare_policy(r.policy->text, r.policy->file,
                                                      context_of(r), mode, *resolver);
        control::NewAgent na;
        na.name = r.name;
        if (r.op == api::Op::Attach) {
            if (!fs::path(*r.cgroup).is_absolute())
                throw Error("\"cgroup\" must be an absolute path (the daemon's working "
                            "directory is not the caller's)");
            na.cgroup = *r.cgroup;
        }
        else
            na.owner_pid = p.pid;
        const auto& rec = ctl_->add_agent(na, prepared);
        if (r.op == api::Op::Run) {
            // Its `cordon run` is cordon's too: its agent may not signal or trace it (lsm).
            g.protect_process(static_cast<std::uint32_t>(p.pid));
            p.protected_pid = static_cast<std::uint32_t>(p.pid);
            p.session = rec.name;
            p.subscribed = true;
            p.filter = rec.name;
        }
        json out = {{"agent", agent_json(rec)},
                    {"pin_dir", opts_.pin_dir.string()},
                    {"backend", backend_name(g.backend())},
                    {"warnings", prepared.warnings}};
        if (r.op == api::Op::Attach && g.backend() == CORDON_BACKEND_COMPAT)
            out["warnings"].push_back(
                "compat backend: the processes already in this cgroup keep their capabilities "
                "and have no seccomp layer; one running as root can switch its guard off "
                "(docs/enforcement.md)");
        return out;
    }
    case api::Op::Detach: {
        const auto* rec = ctl_->find(*r.name);
        if (!rec)
            throw Error("no agent named " + *r.name + "; `cordon agents` lists them");
        if (rec->origin == control::Origin::Run && rec->owner_pid)
            throw Error("agent " + *r.name + " belongs to a running `cordon run` (pid " +
                        std::to_string(*rec->owner_pid) + "); it ends with its command");
        ctl_->remove_agent(*r.name);
        return json::object();
    }
    case api::Op::Release: {
        if (!p.session)
            throw Error("release is for a `cordon run` connection that owns an agent");
        ctl_->release_owner(*p.session);
        const std::string name = *p.session;
        p.session.reset();
        return {{"name", name}};
    }
    case api::Op::Subscribe:
        if (r.name && !ctl_->find(*r.name))
            throw Error("no agent named " + *r.name);
        p.subscribed = true;
        p.filter = r.name;
        return json::object();
    case api::Op::Kill:
    case api::Op::Freeze: {
        const auto* rec = ctl_->find(*r.name);
        if (!rec)
            throw Error("no agent named " + *r.name + "; `cordon agents` lists them");
        Pending w;
        w.agent = rec->name;
        w.cgroup = rec->cgroup;
        w.received_ns = received_ns_;
        if (r.op == api::Op::Kill) {
            w.flagged_ns = ctl_->kill(rec->name);
            w.last_kill_ns = monotonic_ns();
            spdlog::warn("killing agent {} on request of pid {} uid {}{}", rec->name, p.pid,
                         p.uid, r.reason ? ": " + *r.reason : "");
        } else {
            ctl_->freeze(rec->name);
            w.flagged_ns = monotonic_ns();
        }
        w.events_fd = ::open((rec->cgroup / "cgroup.events").c_str(), O_RDONLY | O_CLOEXEC);
        deferred_ = std::move(w);
        return json::object();
    }
    case api::Op::Thaw: {
        ctl_->thaw(*r.name);
        frozen_handled_.erase(ctl_->find(*r.name)->cgroup_id);
        return {{"name", *r.name}};
    }
    case api::Op::Apply: {
        const auto* rec = ctl_->find(*r.name);
        if (!rec)
            throw Error("no agent named " + *r.name + "; `cordon agents` lists them");
        auto resolver = policy::system_resolver();
        std::optional<policy::Mode> mode;
        if (r.mode)
            mode = *r.mode == "audit" ? policy::Mode::Audit : policy::Mode::Enforce;
        // The agent's own context: its ${HOME} and ${WORKSPACE} mean what they meant at start.
        const auto prepared = control::prepare_policy(r.policy->text, r.policy->file,
                                                      rec->context, mode, *resolver);
        const auto prepared_ns = monotonic_ns();
        const auto a = ctl_->apply_policy(*r.name, prepared);
        const auto mode_name = [](std::uint8_t m) { return m == CORDON_MODE_AUDIT ? "audit" : "enforce"; };
        json warnings = prepared.warnings;
        if (a.old_mode != a.new_mode)
            warnings.push_back(fmt::format("the agent's mode changed from {} to {} (the new "
                                           "policy's spec.mode)",
                                           mode_name(a.old_mode), mode_name(a.new_mode)));
        json out = {{"name", *r.name},
                    {"old_policy", a.old_policy},
                    {"new_policy", a.new_policy},
                    {"mode", mode_name(a.new_mode)},
                    {"received_ns", received_ns_},
                    {"prepared_ns", prepared_ns},
                    {"loaded_ns", a.loaded_ns},
                    {"recorded_ns", a.recorded_ns},
                    {"switched_ns", a.switched_ns},
                    {"warnings", warnings}};
        out["details"] = {{"old_policy", a.old_policy}, {"new_policy", a.new_policy},
                          {"mode", mode_name(a.new_mode)}};
        return out;
    }
    case api::Op::Mode: {
        ctl_->set_mode(*r.name, *r.mode == "audit" ? CORDON_MODE_AUDIT : CORDON_MODE_ENFORCE);
        return {{"name", *r.name}, {"mode", *r.mode}};
    }
    case api::Op::Trust:
    case api::Op::TrustSet: {
        const auto* rec = ctl_->find(*r.name);
        if (!rec)
            throw Error("no agent named " + *r.name + "; `cordon agents` lists them");
        const auto before = ctl_->trust(*r.name);
        const auto t = r.op == api::Op::TrustSet
                           ? ctl_->set_score(*r.name, static_cast<std::uint32_t>(*r.score))
                           : before;
        if (r.op == api::Op::TrustSet)
            note_trust(*r.name, {{"time_ms", now_ms()}, {"cause", "operator"},
                                 {"old_score", before.score}, {"score", t.score},
                                 {"old_tier", before.tier_name}, {"new_tier", t.tier_name},
                                 {"reason", r.reason.value_or("")}});
        json changes = json::array();
        for (const auto& c : trust_log_[*r.name])
            changes.push_back(c);
        json out = {{"name", *r.name},
                    {"scoring", t.scoring},
                    {"score", t.score},
                    {"tier", t.tier_name},
                    {"tier_index", t.tier},
                    {"tiers", rec->tier_names},
                    {"recovery_per_minute", t.recovery_per_minute},
                    {"burst_count", t.live.burst_count},
                    {"recent", changes}};
        if (r.op == api::Op::TrustSet)
            out["details"] = {{"old_score", before.score}, {"score", t.score},
                              {"tier", t.tier_name}};
        return out;
    }
    case api::Op::TaskBegin: {
        const auto* rec = ctl_->find(*r.name);
        if (!rec)
            throw Error("no agent named " + *r.name + "; `cordon agents` lists them");
        control::Controller::TaskSpec spec;
        spec.id = *r.id;
        if (r.ttl) {
            std::string why;
            const auto ms = policy::parse_duration_ms(*r.ttl, why);
            if (!ms)
                throw Error("\"ttl\" " + why);
            spec.ttl_ms = *ms;
        }
        if (r.pid)
            spec.pid = static_cast<int>(*r.pid);
        json warnings = json::array();
        if (r.policy) {
            auto resolver = policy::system_resolver();
            spec.overlay = control::prepare_overlay(r.policy->text, r.policy->file, rec->context,
                                                    *resolver);
            for (const auto& w : spec.overlay->warnings)
                warnings.push_back(w);
        }
        const auto& t = ctl_->begin_task(*r.name, std::move(spec));
        json out = {{"name", *r.name}, {"task", task_json(*ctl_->find(*r.name), t)},
                    {"warnings", warnings}};
        out["details"] = {{"task", t.id}, {"number", t.number}};
        return out;
    }
    case api::Op::TaskEnd: {
        ctl_->end_task(*r.name, r.id.value_or(""));
        return {{"name", *r.name}};
    }
    case api::Op::Tasks: {
        const auto* rec = ctl_->find(*r.name);
        if (!rec)
            throw Error("no agent named " + *r.name + "; `cordon agents` lists them");
        json list = json::array();
        for (const auto& t : rec->tasks)
            list.push_back(task_json(*rec, t));
        return {{"name", *r.name}, {"tasks", list}};
    }
    case api::Op::Grant: {
        control::Controller::GrantSpec spec;
        const std::string& k = *r.kind;
        spec.kind = k == "exec"   ? control::GrantKind::Exec
                    : k == "read" ? control::GrantKind::Read
                    : k == "write" ? control::GrantKind::Write
                                   : control::GrantKind::Connect;
        spec.target = *r.target;
        std::string why;
        const auto ms = policy::parse_duration_ms(*r.ttl, why);
        if (!ms)
            throw Error("\"ttl\" " + why);
        spec.ttl_ms = *ms;
        spec.task = r.task.value_or("");
        spec.reason = r.reason.value_or("");
        spec.by = fmt::format("pid {} uid {}", p.pid, p.uid);
        auto resolver = policy::system_resolver();
        const auto& given = ctl_->grant(*r.name, spec, *resolver);
        json out = {{"name", *r.name}, {"grant", grant_json(given)},
                    {"granted_ns", monotonic_ns()}};
        out["details"] = {{"grant", given.id}, {"kind", k}, {"target", given.target},
                          {"expires_ms", given.expires_ms}};
        return out;
    }
    case api::Op::Grants: {
        const auto* rec = ctl_->find(*r.name);
        if (!rec)
            throw Error("no agent named " + *r.name + "; `cordon agents` lists them");
        json list = json::array();
        for (const auto& one : rec->grants)
            list.push_back(grant_json(one));
        return {{"name", *r.name}, {"grants", list}};
    }
    case api::Op::Revoke: {
        ctl_->revoke(*r.name, static_cast<std::uint32_t>(*r.grant));
        return {{"name", *r.name}, {"grant", *r.grant}};
    }
    }
    throw Error("unhandled op");
}

void Server::on_event(const events::Event& e)
{
    const auto& h = e.header();
    const control::AgentRecord* rec = nullptr;
    for (const auto& a : ctl_->agents())
        if (a.id == h.agent_id && a.cgroup_id == h.cgroup_id)
            rec = &a;
    const std::string name = rec ? rec->name : fmt::format("agent-{}", h.agent_id);
    const control::TaskRecord* task = nullptr;
    if (rec && h.task_id)
        for (const auto& t : rec->tasks)
            if (t.number == h.task_id)
                task = &t;
    const auto namer = [rec, task](std::uint32_t id) -> std::string {
        if (id & CORDON_RULE_GRANT) {
            if (rec)
                for (const auto& g : rec->grants)
                    if (g.id == (id & ~CORDON_RULE_GRANT))
                        return fmt::format("grant {} ({} {})", g.id, control::grant_kind_name(g.kind),
                                           g.target);
            return "";
        }
        if (id & CORDON_RULE_OVERLAY) {
            const auto i = id & CORDON_RULE_INDEX_MASK;
            return task && i < task->overlay_sources.size() ? task->overlay_sources[i] : "";
        }
        return rec && id < rec->rule_sources.size() ? rec->rule_sources[id] : "";
    };
    events::EventContext cx;
    if (task)
        cx.task = task->id;
    else if (h.task_id)
        cx.task = fmt::format("#{}", h.task_id);
    if (rec)
        cx.tiers = &rec->tier_names;
    if (h.hook == CORDON_HOOK_TRUST) {
        note_trust(name, {{"time_ms", now_ms()},
                          {"cause", events::trust_cause_name(e.body.access)},
                          {"score", e.body.port},
                          {"old_tier", rec && e.body.family < rec->tier_names.size()
                                           ? rec->tier_names[e.body.family]
                                           : std::to_string(e.body.family)},
                          {"new_tier", rec && e.body.protocol < rec->tier_names.size()
                                           ? rec->tier_names[e.body.protocol]
                                           : std::to_string(e.body.protocol)},
                          {"on_enter", events::verdict_name(h.verdict)}});
        if (h.verdict != CORDON_VERDICT_ALLOW)
            supervise_now_ = true;
    }
    if (h.verdict == CORDON_VERDICT_DENY || h.verdict == CORDON_VERDICT_KILL ||
        h.verdict == CORDON_VERDICT_FREEZE)
        ++denials_[h.agent_id];
    if (h.hook != CORDON_HOOK_PROCESS && h.hook != CORDON_HOOK_TRUST)
        ++decided_[{name, h.hook, h.verdict}];
    if (pipeline_) {
        events::Context sc{.agent = name, .rule = {}, .task = cx.task, .old_tier = {}, .new_tier = {}};
        if (h.hook == CORDON_HOOK_TRUST) {
            sc.old_tier = rec && e.body.family < rec->tier_names.size() ? rec->tier_names[e.body.family]
                                                                        : std::to_string(e.body.family);
            sc.new_tier = rec && e.body.protocol < rec->tier_names.size()
                              ? rec->tier_names[e.body.protocol]
                              : std::to_string(e.body.protocol);
        } else if (h.hook != CORDON_HOOK_PROCESS) {
            sc.rule = events::source_text(e, namer);
        }
        pipeline_->push(e, std::move(sc));
    }
    if (h.verdict == CORDON_VERDICT_KILL || h.verdict == CORDON_VERDICT_FREEZE)
        supervise_now_ = true;
    // Text is made only for a log line or a subscriber: under a flood most events need neither,
    // and the one thread must get back to requests and kill flags.
    std::string text;
    const bool reported = h.verdict != CORDON_VERDICT_ALLOW || h.hook == CORDON_HOOK_TRUST;
    if (reported) {
        if (auto& [shown, left_out] = logged_[name]; shown < kLogLinesPerSecond) {
            ++shown;
            text = events::event_line(e, namer, cx);
            spdlog::info("{}: {}", name, text);
        } else {
            ++left_out;
        }
    }
    std::string line;
    for (auto& p : peers_) {
        if (!p.subscribed || (p.filter && *p.filter != name))
            continue;
        if (line.empty()) {
            if (text.empty())
                text = events::event_line(e, namer, cx);
            line = "{\"v\":1,\"event\":" + events::event_json(e, namer, name, cx) +
                   (text.empty() ? "" : ",\"line\":" + json(text).dump(-1, ' ', false,
                                                                     json::error_handler_t::replace)) +
                   "}";
        }
        send(p, line, true);
    }
}

// Kill verdicts are carried out from the agent's kill flag in the kernel, not from events (which
// may be lost): the kernel already refuses every access of a killed agent, this empties it.
void Server::supervise()
{
    // LSM programs run from ftrace trampolines: with kernel.ftrace_enabled at 0 none of them runs.
    // An agent cannot write it (tamper protection); whoever does switches every guard off, so
    // every agent is stopped then (fails closed).
    if (ftrace_fd_ >= 0) {
        char c = '1';
        if (::pread(ftrace_fd_, &c, 1, 0) == 1 && c == '0' && !ftrace_off_) {
            ftrace_off_ = true;
            spdlog::error("kernel.ftrace_enabled is 0, so the kernel runs none of cordon's LSM "
                          "programs; killing every agent");
            for (const auto& a : ctl_->agents()) {
                try {
                    agents::kill_cgroup(a.cgroup);
                } catch (const Error& e) {
                    spdlog::error("agent {}: {}", a.name, e.what());
                }
            }
        } else if (c != '0') {
            ftrace_off_ = false;
        }
    }
    for (const auto& e : ctl_->guard().agents()) {
        // No kernel half: the kernel refuses the agent everything; it is ended too.
        const bool killed = !e.live || cordon_agent_killed(&e.agent, &*e.live);
        const bool frozen = e.live && cordon_agent_frozen(&e.agent, &*e.live);
        if (!killed && !frozen)
            continue; // the common case: no record lookup, whatever the number of agents
        const control::AgentRecord* rec = nullptr;
        for (const auto& a : ctl_->agents())
            if (a.cgroup_id == e.cgid)
                rec = &a;
        if (!rec)
            continue;
        if (killed) {
            // Emptied again whenever anything is in it: a killed agent stays killed.
            if (!killed_handled_.contains({e.cgid, e.agent.agent_id})) {
                killed_handled_.insert({e.cgid, e.agent.agent_id});
                spdlog::warn("agent {} is killed; killing every process in {}", rec->name,
                             rec->cgroup.string());
            } else if (!agents::cgroup_populated(rec->cgroup)) {
                continue;
            }
            try {
                agents::kill_cgroup(rec->cgroup);
            } catch (const Error& err) {
                spdlog::error("agent {}: {}", rec->name, err.what());
            }
            continue;
        }
        // Frozen (by the operator, or by a freeze verdict: the kernel refuses the agent
        // everything already). The cgroup is frozen, and frozen again if anyone outside cordon
        // thaws it: only `cordon thaw` ends a freeze.
        const bool by_rule = e.live->frozen_mark == e.agent.thaw_epoch + 1;
        const auto it = frozen_handled_.find(e.cgid);
        const bool first = by_rule && (it == frozen_handled_.end() || it->second != e.agent.thaw_epoch);
        if (!first && agents::cgroup_freeze_requested(rec->cgroup))
            continue;
        std::string result = "ok";
        try {
            agents::freeze_cgroup(rec->cgroup, true);
        } catch (const Error& err) {
            result = err.what();
            spdlog::error("agent {}: {}", rec->name, err.what());
        }
        if (first) {
            frozen_handled_[e.cgid] = e.agent.thaw_epoch;
            spdlog::warn("agent {} hit a freeze rule or entered a freezing trust tier; freezing "
                         "{} for review (`cordon thaw {}` resumes it)",
                         rec->name, rec->cgroup.string(), rec->name);
        } else {
            spdlog::warn("agent {} was thawed outside cordon; frozen again (`cordon thaw {}` "
                         "resumes it)",
                         rec->name, rec->name);
        }
        append_action(json{{"time_ms", now_ms()},
                           {"type", "controller_action"},
                           {"op", "freeze"},
                           {"agent", rec->name},
                           {"cause", first ? "freeze rule" : "thawed outside cordon"},
                           {"result", result}});
    }
}

// Connections that hold a slot without using it: a request line still unfinished after
// kLineTimeoutMs, or nothing at all for kIdleTimeoutMs (subscriptions and run sessions wait for
// ever, by design).
void Server::expire_peers()
{
    const auto now = now_ms();
    for (auto& p : peers_) {
        const bool waits = p.subscribed || p.session;
        if ((!p.in.empty() && now - p.last_active_ms > kLineTimeoutMs) ||
            (!waits && now - p.last_active_ms > kIdleTimeoutMs)) {
            p.closing = true;
            p.out.clear();
        }
    }
}

// At the connection limit: the longest-idle connection that is neither a subscription nor a run
// session makes room, so that idle clients cannot lock the operator out.
void Server::evict_idle()
{
    Peer* oldest = nullptr;
    for (auto& p : peers_)
        if (!p.subscribed && !p.session && (!oldest || p.last_active_ms < oldest->last_active_ms))
            oldest = &p;
    if (oldest) {
        drop_peer(*oldest);
        peers_.remove_if([oldest](const Peer& q) { return &q == oldest; });
    }
}

// What reconcile changed is an operator-visible fact: a warning, and a record in the actions log.
void Server::reconcile()
{
    for (const auto& change : ctl_->reconcile()) {
        spdlog::warn("agent {}", change);
        append_action(json{{"time_ms", now_ms()},
                           {"type", "controller_action"},
                           {"op", "reconcile"},
                           {"change", change}});
    }
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

int Server::run()
{
    if (::geteuid() != 0)
        throw Error("cordond needs root (it loads BPF programs and creates cgroups)");
    for (int sig : {SIGPIPE, SIGTSTP, SIGTTIN, SIGTTOU})
        ::signal(sig, SIG_IGN);
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGHUP);
    ::sigprocmask(SIG_BLOCK, &mask, nullptr);
    const int sfd = ::signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);

    std::error_code ec;
    fs::create_directories(opts_.registry, ec);
    ctl_ = std::make_unique<control::Controller>(control::ControllerOptions{
        .backend = opts_.backend,
        .pin_dir = opts_.pin_dir,
        .registry_dir = opts_.registry,
        .ringbuf_bytes = opts_.ringbuf_bytes});
    auto& g = ctl_->guard();
    spdlog::info("{} the {} program set in {} ({} programs), {} agents",
                 ctl_->adopted() ? "adopted" : "loaded and pinned",
                 backend_name(g.backend()), opts_.pin_dir.string(),
                 g.program_ids().size(), ctl_->agents().size());
    reconcile();
    // Earlier daemons' pids are no longer cordon's; this one is.
    for (auto pid : g.protected_processes())
        if (!fs::exists("/proc/" + std::to_string(pid)))
            g.unprotect_process(pid);
    g.protect_process(static_cast<std::uint32_t>(::getpid()));

    fs::create_directories(opts_.actions_log.parent_path(), ec);
    actions_fd_ = ::open(opts_.actions_log.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (actions_fd_ < 0)
        spdlog::error("cannot open {}: {}; operator actions go to this log only",
                      opts_.actions_log.string(), errno_text(errno));
    events::PipelineOptions po;
    if (opts_.store_enabled) {
        po.db = opts_.store.empty() ? opts_.actions_log.parent_path() / "events.db" : opts_.store;
        po.db_options.max_age_ns = opts_.store_max_age_ms * 1'000'000;
        po.db_options.max_bytes = opts_.store_max_bytes;
    }
    if (!opts_.events_jsonl.empty())
        po.jsonl = opts_.events_jsonl;
    po.jsonl_max_bytes = opts_.jsonl_max_bytes;
    po.jsonl_files = opts_.jsonl_files;
    if (po.db || po.jsonl) {
        pipeline_ = std::make_unique<events::Pipeline>(po);
        spdlog::info("storing events in {}{}{}", po.db ? po.db->string() : "",
                     po.db && po.jsonl ? " and " : "", po.jsonl ? po.jsonl->string() : "");
    } else {
        spdlog::warn("no event store (--no-store and no --events-jsonl): decisions are not kept");
    }
    if (!opts_.metrics_listen.empty()) {
        metrics_ = std::make_unique<Metrics>(opts_.metrics_listen);
        spdlog::info("metrics on http://{}/metrics", opts_.metrics_listen);
    }
    for (const auto& a : ctl_->agents())
        if (const auto live = g.live(a.cgroup_id))
            agent_drops_seen_[{a.cgroup_id, a.id}] = live->events_lost;
    kernel_drops_seen_ = g.counters()[CORDON_CNT_RINGBUF_DROPS];
    reader_ = std::make_unique<events::Reader>(g.events_fd(),
                                               [this](const events::Event& e) { on_event(e); });
    if (uses_trampolines(g.backend()))
        ftrace_fd_ = ::open("/proc/sys/kernel/ftrace_enabled", O_RDONLY | O_CLOEXEC);
    listen_socket();
    // Its socket, registry and actions log are tamper-protected (lsm): an agent that replaced
    // the socket would answer the operator's kill itself. Their directories too when they are
    // cordon's own (named "cordon", as /run/cordon and /var/lib/cordon), never a shared one
    // such as /tmp.
    protect_files();
    spdlog::info("listening on {}", opts_.socket.string());

    auto last_reconcile = now_ms();
    std::int64_t last_supervise = 0;
    bool stop = false;
    while (!stop) {
        std::vector<pollfd> fds = {{sfd, POLLIN, 0},
                                   {listen_fd_, POLLIN, 0},
                                   {reader_->fd(), static_cast<short>(store_full_ ? 0 : POLLIN), 0}};
        for (auto& p : peers_)
            fds.push_back({p.fd, static_cast<short>(POLLIN | (p.out.empty() ? 0 : POLLOUT)), 0});
        const size_t peers_end = fds.size(); // peers accepted below have no entry
        // cgroup.events of pending kills and freezes: POLLPRI when the cgroup changes.
        for (const auto& w : pending_)
            fds.push_back({w.events_fd, POLLPRI, 0});
        if (::poll(fds.data(), fds.size(), store_full_ ? 5 : reader_->more_pending() ? 0 : 20) < 0 &&
            errno != EINTR)
            throw Error("poll failed: " + errno_text(errno));
        signalfd_siginfo si{};
        if (::read(sfd, &si, sizeof(si)) == sizeof(si)) {
            spdlog::info("{}: exiting; the agents stay enforced by the pinned programs",
                         strsignal(static_cast<int>(si.ssi_signo)));
            stop = true;
        }
        if (fds[1].revents & POLLIN)
            accept_peer();
        size_t i = 3;
        for (auto& p : peers_) {
            if (i >= peers_end)
                break;
            const short rev = fds[i++].revents;
            if (rev & POLLOUT)
                write_peer(p);
            if (rev & (POLLIN | POLLHUP | POLLERR))
                read_peer(p);
        }
        settle_pending();
        // Events after requests, and a bounded number of them: requests, kill flags and freeze
        // marks never wait behind an agent's flood of denials (the rest is read on the next
        // pass, which then does not wait in poll).
        // Backpressure: no more records than the store's queue takes; the rest waits in the
        // ring buffer, which absorbs a burst (and counts what it cannot hold).
        const std::size_t budget = pipeline_ ? std::min(kEventsPerPass, pipeline_->room()) : kEventsPerPass;
        store_full_ = budget == 0;
        if (budget)
            reader_->drain(budget);
        if (pipeline_)
            pipeline_->flush();
        answer_pings();
        if (metrics_ && now_ms() - metrics_published_ms_ >= 1000) {
            publish_metrics();
            metrics_published_ms_ = now_ms();
        }
        if (now_ms() - log_window_ms_ >= 1000) {
            for (const auto& [name, counts] : logged_)
                if (counts.second > 0)
                    spdlog::warn("{}: {} more events in the last second were not logged "
                                 "(subscribers and the counters have them)",
                                 name, counts.second);
            logged_.clear();
            log_window_ms_ = now_ms();
        }
        for (auto it = peers_.begin(); it != peers_.end();) {
            if (it->closing && it->out.empty()) {
                drop_peer(*it);
                it = peers_.erase(it);
            } else {
                ++it;
            }
        }
        // Kill flags are read from the kernel every 20 ms (a read of every agent's entry), not
        // on every wake-up: a burst of requests must not cost a scan of 1,000 agents each.
        // A failure here is logged and tried again; it never ends the daemon.
        try {
            if (supervise_now_ || now_ms() - last_supervise >= 20) {
                supervise_now_ = false;
                supervise();
                last_supervise = now_ms();
            }
            if (now_ms() - last_reconcile >= 1000) {
                expire_peers();
                for (const auto& change : ctl_->expire()) {
                    spdlog::info("agent {}", change);
                    append_action(json{{"time_ms", now_ms()},
                                       {"type", "controller_action"},
                                       {"op", "expire"},
                                       {"change", change}});
                }
                reconcile();
                if (pipeline_) {
                    const auto st = pipeline_->stats();
                    if (st.jsonl_rotations != protected_rotations_ || st.corrupt_moved != protected_moved_)
                        protect_files();
                }
                // Records the kernel had no room for are a gap in the store too, not only a
                // counter: a reader of the store sees when and how many.
                if (pipeline_)
                    note_kernel_drops();
                last_reconcile = now_ms();
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
    g.unprotect_process(static_cast<std::uint32_t>(::getpid()));
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
