// SPDX-License-Identifier: Apache-2.0
#include "daemon_util.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <poll.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

#include "common/error.h"

namespace cordon::testing {

namespace fs = std::filesystem;
using nlohmann::json;

std::string deny_policy(const fs::path& denied, const std::string& name)
{
    return "apiVersion: cordon.dev/v1\nkind: AgentPolicy\nmetadata:\n  name: " + name +
           "\nspec:\n  exec: {default: allow}\n  files:\n    default: allow\n    rules:\n"
           "      - {path: " + denied.string() + ", access: read, action: deny}\n"
           "  network: {default: allow}\n";
}

int try_open(const fs::path& p)
{
    const int fd = ::open(p.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        ::close(fd);
        return 0;
    }
    return errno;
}

bool read_within(int fd, void* buf, std::size_t n, int timeout_ms)
{
    pollfd p{.fd = fd, .events = POLLIN, .revents = 0};
    if (::poll(&p, 1, timeout_ms) != 1)
        return false;
    return ::read(fd, buf, n) == static_cast<ssize_t>(n);
}

bool refused(const Exit& e)
{
    return e == exited(EPERM) || e == killed_by(SIGKILL);
}

Files::Files()
    : dir(fs::temp_directory_path() / ("cordon-dt-" + std::to_string(::getpid()))),
      secret(dir / "secret"), open(dir / "open")
{
    fs::create_directories(dir);
    std::ofstream(secret) << "s";
    std::ofstream(open) << "o";
}

Files::~Files()
{
    std::error_code ec;
    fs::remove_all(dir, ec);
}

bool agents_until(const Daemon& d, const std::function<bool(const json&)>& pred)
{
    using namespace std::chrono;
    for (auto end = steady_clock::now() + seconds(30); steady_clock::now() < end;
         std::this_thread::sleep_for(milliseconds(50)))
        if (pred(d.call(R"({"v":1,"op":"agents"})")["agents"]))
            return true;
    return false;
}

Daemon::Daemon(cordon_backend backend, std::vector<std::string> extra_args)
    : backend_(backend), extra_args_(std::move(extra_args))
{
    static std::atomic<int> n{0};
    const std::string tag = "kt-" + std::to_string(::getpid()) + "-" + std::to_string(n++);
    dir_ = fs::temp_directory_path() / ("cordond-" + tag);
    fs::create_directories(dir_);
    socket_ = dir_ / "cordon.sock";
    registry_ = dir_ / "agents";
    pin_dir_ = fs::path("/sys/fs/bpf") / ("cordon-" + tag);
    start();
}

Daemon::~Daemon()
{
    pinned_.reset();
    stop();
    teardown();
    std::error_code ec;
    fs::remove_all(dir_, ec);
}

void Daemon::start()
{
    // Built before the fork: a test may start the daemon from one thread while another forks,
    // and the child may not allocate (only async-signal-safe calls before exec).
    const std::string log = (dir_ / "cordond.log").string();
    const std::string actions = (dir_ / "actions.jsonl").string();
    const std::string attachments = (dir_ / "attachments").string();
    std::vector<const char*> argv = {"cordond", "--socket", socket_.c_str(), "--registry",
                                     registry_.c_str(), "--pin-dir", pin_dir_.c_str(),
                                     "--actions-log", actions.c_str(), "--attachments",
                                     attachments.c_str(), "--backend",
                                     backend_name(backend_).data()};
    for (const auto& a : extra_args_)
        argv.push_back(a.c_str());
    argv.push_back(nullptr);
    std::fflush(nullptr);
    pid_ = ::fork();
    if (pid_ == 0) {
        const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
        if (fd >= 0) {
            ::dup2(fd, 1);
            ::dup2(fd, 2);
        }
        ::execv(CORDOND_BINARY, const_cast<char* const*>(argv.data()));
        ::_exit(127);
    }
    wait_ready();
}

void Daemon::wait_ready()
{
    using namespace std::chrono;
    const auto deadline = steady_clock::now() + seconds(120);
    while (steady_clock::now() < deadline) {
        int st = 0;
        if (::waitpid(pid_, &st, WNOHANG) == pid_) {
            pid_ = -1;
            throw Error("cordond exited during start: " + log());
        }
        if (auto c = api::Client::connect(socket_.string())) {
            try {
                // A bounded wait: a daemon that accepts and never answers fails the test with
                // its log instead of hanging it.
                const std::string ping = "{\"v\":1,\"op\":\"ping\"}\n";
                if (::send(c->fd(), ping.data(), ping.size(), MSG_NOSIGNAL) ==
                        static_cast<ssize_t>(ping.size()) &&
                    c->next(2000))
                    return;
            } catch (const Error&) {
            }
        }
        std::this_thread::sleep_for(milliseconds(20));
    }
    throw Error("cordond did not answer within 120 s: " + log());
}

void Daemon::kill9()
{
    if (pid_ > 0) {
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, nullptr, 0);
        pid_ = -1;
    }
}

void Daemon::stop()
{
    if (pid_ > 0) {
        ::kill(pid_, SIGTERM);
        ::waitpid(pid_, nullptr, 0);
        pid_ = -1;
    }
}

int Daemon::teardown()
{
    pinned_.reset();
    return run_cordon(*this, {"teardown", "--pin-dir", pin_dir_.string(), "--registry",
                              registry_.string()})
        .first;
}

api::Client Daemon::connect() const
{
    auto c = api::Client::connect(socket_.string());
    if (!c)
        throw Error("cordond does not answer on " + socket_.string());
    return std::move(*c);
}

json Daemon::call(const std::string& line) const
{
    auto c = connect();
    const std::string l = line + "\n";
    if (::send(c.fd(), l.data(), l.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(l.size()))
        throw Error("send failed");
    auto reply = c.next(10000);
    if (!reply)
        throw Error("no reply to " + line.substr(0, 80));
    return *reply;
}

json Daemon::attach(const fs::path& cgroup, const std::string& yaml, const std::string& name,
                    const std::string& workspace, bool wait) const
{
    json q = {{"v", 1},
              {"op", "attach"},
              {"cgroup", cgroup.string()},
              {"name", name},
              {"policy", {{"file", "test.yaml"}, {"text", yaml}}},
              {"user", "root"},
              {"home", "/root"},
              {"workspace", workspace}};
    if (wait)
        q["wait"] = true;
    return call(q.dump());
}

void Daemon::reboot()
{
    pinned_.reset();
    stop();
    bpf::Guard::unpin(pin_dir_);
    std::error_code ec;
    fs::remove_all(registry_, ec);
}

json Daemon::detach(const std::string& name) const
{
    return call(json{{"v", 1}, {"op", "detach"}, {"name", name}}.dump());
}

bpf::Guard& Daemon::pinned()
{
    if (!pinned_)
        pinned_ = bpf::Guard::adopt(pin_dir_);
    return *pinned_;
}

std::string Daemon::log() const
{
    std::ifstream in(dir_ / "cordond.log");
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
}

Subscription::Subscription(const Daemon& d, const std::string& agent) : client_(d.connect())
{
    auto r = api::request(api::Op::Subscribe);
    r.name = agent;
    client_.call(r);
}

std::vector<json> Subscription::barrier()
{
    const std::string ping = "{\"v\":1,\"op\":\"ping\"}\n";
    if (::send(client_.fd(), ping.data(), ping.size(), MSG_NOSIGNAL) !=
        static_cast<ssize_t>(ping.size()))
        throw Error("send failed");
    std::vector<json> events;
    for (;;) {
        auto m = client_.next(10000);
        if (!m)
            throw Error("the daemon did not answer the barrier");
        if (m->contains("event"))
            events.push_back(m->at("event"));
        else if (m->contains("ok"))
            return events;
    }
}

std::pair<int, std::string> run_cordon(const Daemon& d, const std::vector<std::string>& args)
{
    int out[2]; // close-on-exec: read to EOF, so no process forked meanwhile may keep a copy
    if (::pipe2(out, O_CLOEXEC) != 0)
        return {-1, ""};
    std::fflush(nullptr);
    const pid_t pid = ::fork();
    if (pid == 0) {
        ::dup2(out[1], 1);
        ::close(out[0]);
        ::close(out[1]);
        ::setenv("CORDON_SOCKET", d.socket().c_str(), 1);
        std::vector<char*> argv{const_cast<char*>("cordon")};
        for (const auto& a : args)
            argv.push_back(const_cast<char*>(a.c_str()));
        argv.push_back(nullptr);
        ::execv(CORDON_BINARY, argv.data());
        ::_exit(127);
    }
    ::close(out[1]);
    std::string text;
    char buf[4096];
    for (ssize_t n; (n = ::read(out[0], buf, sizeof(buf))) > 0;)
        text.append(buf, static_cast<size_t>(n));
    ::close(out[0]);
    int st = 0;
    ::waitpid(pid, &st, 0);
    return {WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st), text};
}

cordon_backend host_backend()
{
    return skip_unless_backend(CORDON_BACKEND_COMPAT) ? CORDON_BACKEND_LSM : CORDON_BACKEND_COMPAT;
}

json request(const std::string& op, const std::string& name, json extra)
{
    extra["v"] = 1;
    extra["op"] = op;
    extra["name"] = name;
    return extra;
}

json call_ok(const Daemon& d, const json& req)
{
    const auto r = d.call(req.dump());
    if (!r.value("ok", false))
        throw Error("request " + req.dump() + " failed: " + r.dump());
    return r;
}

bool eventually(const std::function<bool()>& cond, std::chrono::milliseconds limit)
{
    const auto end = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < end) {
        if (cond())
            return true;
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return cond();
}

int connect_unix(const std::string& path)
{
    const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    std::strncpy(sa.sun_path, path.c_str(), sizeof(sa.sun_path) - 1);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) != 0) {
        const int e = errno;
        ::close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

std::string http_metrics(int port)
{
    const int s = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(static_cast<std::uint16_t>(port));
    ::inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    std::string text;
    if (::connect(s, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) == 0) {
        const std::string req = "GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
        (void)!::write(s, req.data(), req.size());
        char buf[4096];
        for (ssize_t n; (n = ::read(s, buf, sizeof(buf))) > 0;)
            text.append(buf, static_cast<std::size_t>(n));
    }
    ::close(s);
    const auto body = text.find("\r\n\r\n");
    return body == std::string::npos ? "" : text.substr(body + 4);
}

} // namespace cordon::testing
