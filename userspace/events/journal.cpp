// SPDX-License-Identifier: Apache-2.0
#include "events/journal.h"

#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

namespace cordon::events {

namespace {

void field(std::string& out, std::string_view name, std::string_view value)
{
    out += name;
    if (value.find('\n') == std::string_view::npos) {
        out += '=';
        out += value;
    } else {
        out += '\n';
        std::uint64_t n = value.size();
        for (int i = 0; i < 8; ++i, n >>= 8)
            out += static_cast<char>(n & 0xff);
        out += value;
    }
    out += '\n';
}

/// syslog priorities: refusals and losses are warnings, operator actions notices.
int priority(const store::Record& r)
{
    if (r.kind == "gap")
        return 4;
    if (r.verdict == "deny" || r.verdict == "kill" || r.verdict == "freeze" || r.verdict == "error")
        return 4;
    if (r.kind == "action")
        return 5;
    return 6;
}

} // namespace

std::string journal_entry(const store::Record& r)
{
    std::string out;
    out.reserve(r.json.size() + 512);
    std::string message = fmt::format("{} {} {}", r.agent, r.verdict, r.hook);
    if (!r.dest.empty())
        message += fmt::format(" {} port {}", r.dest, r.port);
    else if (!r.path.empty())
        message += " " + r.path;
    if (r.pid)
        message += fmt::format(" pid {}", r.pid);
    field(out, "MESSAGE", message);
    field(out, "PRIORITY", std::to_string(priority(r)));
    field(out, "SYSLOG_IDENTIFIER", "cordond");
    field(out, "CORDON_AGENT", r.agent);
    field(out, "CORDON_KIND", r.kind);
    field(out, "CORDON_HOOK", r.hook);
    field(out, "CORDON_VERDICT", r.verdict);
    field(out, "CORDON_TIME_NS", std::to_string(r.time_ns));
    if (r.pid) {
        field(out, "CORDON_PID", std::to_string(r.pid));
        field(out, "CORDON_PPID", std::to_string(r.ppid));
        field(out, "CORDON_UID", std::to_string(r.uid));
    }
    if (!r.path.empty())
        field(out, "CORDON_PATH", r.path);
    if (!r.dest.empty()) {
        field(out, "CORDON_DEST", r.dest);
        field(out, "CORDON_PORT", std::to_string(r.port));
    }
    field(out, "CORDON_RECORD", r.json);
    return out;
}

JournalSink::JournalSink(std::filesystem::path socket) : path_(std::move(socket))
{
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    // A journald that stops reading holds the store thread a second at most per entry, then
    // the entry is counted lost: the other sinks go on (the pipeline retries after a second).
    const timeval limit{.tv_sec = 1, .tv_usec = 0};
    if (fd_ >= 0)
        ::setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &limit, sizeof(limit));
}

JournalSink::~JournalSink()
{
    if (fd_ >= 0)
        ::close(fd_);
}

int JournalSink::send(const store::Record& r)
{
    if (fd_ < 0)
        return EBADF;
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    const std::string p = path_.string();
    if (p.size() >= sizeof(sa.sun_path))
        return ENAMETOOLONG;
    std::memcpy(sa.sun_path, p.c_str(), p.size() + 1);
    const std::string entry = journal_entry(r);
    for (;;) {
        const auto n = ::sendto(fd_, entry.data(), entry.size(), MSG_NOSIGNAL,
                                reinterpret_cast<const sockaddr*>(&sa), sizeof(sa));
        if (n >= 0)
            return 0;
        if (errno != EINTR)
            return errno == EWOULDBLOCK ? EAGAIN : errno;
    }
}

} // namespace cordon::events
