// SPDX-License-Identifier: Apache-2.0
#include "api/client.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <utility>

#include "common/error.h"

namespace cordon::api {

std::string socket_path()
{
    const char* env = std::getenv("CORDON_SOCKET");
    return env && *env ? env : kDefaultSocket;
}

std::optional<Client> Client::connect(const std::string& path)
{
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    if (path.size() >= sizeof(sa.sun_path))
        throw Error("socket path " + path + " is too long");
    std::memcpy(sa.sun_path, path.c_str(), path.size() + 1);
    const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        throw Error("cannot create a socket: " + errno_text(errno));
    if (::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) != 0) {
        const int err = errno;
        ::close(fd);
        if (err == ENOENT || err == ECONNREFUSED || err == ENOTDIR)
            return std::nullopt;
        throw Error("cannot reach cordond at " + path + ": " + errno_text(err) +
                    (err == EACCES || err == EPERM
                         ? "; run as root or as a member of group cordon (and not inside an agent)"
                         : ""));
    }
    return Client(fd);
}

Client::Client(Client&& o) noexcept
    : fd_(std::exchange(o.fd_, -1)), buf_(std::move(o.buf_)), held_(std::move(o.held_))
{
}

Client::~Client()
{
    if (fd_ >= 0)
        ::close(fd_);
}

nlohmann::json Client::call(const Request& r)
{
    const std::string line = encode_request(r) + "\n";
    for (size_t off = 0; off < line.size();) {
        const ssize_t n = ::send(fd_, line.data() + off, line.size() - off, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            throw Error("cordond closed the connection: " + errno_text(errno));
        }
        off += static_cast<size_t>(n);
    }
    // A subscribed connection (a run session) may get events and action records before the
    // reply: they are kept, in order, for next().
    std::optional<nlohmann::json> reply;
    for (;;) {
        reply = read_line(-1);
        if (!reply)
            throw Error("cordond sent no reply");
        if (reply->contains("ok"))
            break;
        held_.push_back(std::move(*reply));
    }
    if (!reply->value("ok", false))
        throw Error(reply->value("error", std::string("cordond refused the request")));
    return *reply;
}

std::optional<nlohmann::json> Client::next(int timeout_ms)
{
    if (!held_.empty()) {
        auto j = std::move(held_.front());
        held_.pop_front();
        return j;
    }
    return read_line(timeout_ms);
}

std::optional<nlohmann::json> Client::read_line(int timeout_ms)
{
    for (;;) {
        if (const auto nl = buf_.find('\n'); nl != std::string::npos) {
            const std::string line = buf_.substr(0, nl);
            buf_.erase(0, nl + 1);
            auto j = nlohmann::json::parse(line, nullptr, false);
            if (j.is_discarded() || !j.is_object())
                throw Error("cordond sent a malformed line");
            return j;
        }
        pollfd p{.fd = fd_, .events = POLLIN, .revents = 0};
        const int r = ::poll(&p, 1, timeout_ms);
        if (r < 0 && errno == EINTR)
            continue;
        if (r == 0)
            return std::nullopt;
        char chunk[65536];
        const ssize_t n = ::recv(fd_, chunk, sizeof(chunk), 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            throw Error("cordond closed the connection");
        buf_.append(chunk, static_cast<size_t>(n));
    }
}

} // namespace cordon::api
