// SPDX-License-Identifier: Apache-2.0
// net_guard on the running kernel: real sockets from real processes inside and outside an agent
// cgroup, against listeners on loopback.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>

#include <gtest/gtest.h>

#include "kernel_test_util.h"

namespace cordon::testing {
namespace {

enum class Where { Outside, LiveAgent, KilledAgent };

struct NetCase {
    const char* name;
    int family;      // AF_INET or AF_INET6
    int type;        // SOCK_STREAM: connect(); SOCK_DGRAM: sendto()
    Where where;
    int want_errno;  // 0 = the access succeeds
    cordon_hook want_event; // CORDON_HOOK_NONE = no event expected
};

// A socket bound to loopback on an ephemeral port; TCP ones listen.
struct Listener {
    int fd = -1;
    sockaddr_storage addr{};
    socklen_t len = 0;
    Listener(int family, int type)
    {
        fd = ::socket(family, type | SOCK_CLOEXEC, 0);
        if (family == AF_INET) {
            auto* a = reinterpret_cast<sockaddr_in*>(&addr);
            a->sin_family = AF_INET;
            a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
            len = sizeof(*a);
        } else {
            auto* a = reinterpret_cast<sockaddr_in6*>(&addr);
            a->sin6_family = AF_INET6;
            a->sin6_addr = in6addr_loopback;
            len = sizeof(*a);
        }
        if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), len) != 0 ||
            ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0 ||
            (type == SOCK_STREAM && ::listen(fd, 16) != 0)) {
            ::close(fd);
            fd = -1;
        }
    }
    ~Listener()
    {
        if (fd >= 0)
            ::close(fd);
    }
};

// Runs in the child: 0 when the access worked, else its errno.
int try_access(const NetCase& c, const Listener& l)
{
    const int s = ::socket(c.family, c.type | SOCK_CLOEXEC, 0);
    if (s < 0)
        return kChildSetupFailed;
    const auto* to = reinterpret_cast<const sockaddr*>(&l.addr);
    const int r = c.type == SOCK_STREAM ? ::connect(s, to, l.len)
                                        : static_cast<int>(::sendto(s, "x", 1, 0, to, l.len));
    return r < 0 ? errno : 0;
}

void PrintTo(const NetCase& c, std::ostream* os) { *os << c.name; }

class NetGuardTest : public ::testing::TestWithParam<NetCase> {};

TEST_P(NetGuardTest, DecidesAsTheAgentStateSays)
{
    const NetCase& c = GetParam();
    const auto backend = bpf::choose_backend(kernel_features());
    ASSERT_NE(backend, CORDON_BACKEND_NONE) << "no backend: run `cordon doctor`";
    bpf::Guard guard(guard_options(backend));
    auto cg = make_test_cgroup();
    constexpr std::uint32_t kAgentId = 7;
    guard.set_agent(cg.id(), agent_state(kAgentId, c.where == Where::KilledAgent));

    Listener listener(c.family, c.type);
    ASSERT_GE(listener.fd, 0) << "cannot bind a loopback listener: " << std::strerror(errno);
    const auto dir = c.where == Where::Outside ? std::nullopt
                                               : std::optional<std::string>(cg.path());
    const pid_t pid = spawn_in(dir, [&] { return try_access(c, listener); });
    EXPECT_EQ(wait_exit(pid), exited(c.want_errno));

    const auto events = drain_events(guard);
    if (c.want_event == CORDON_HOOK_NONE) {
        EXPECT_TRUE(events.empty()) << events.size() << " unexpected events";
        return;
    }
    ASSERT_EQ(events.size(), 1u);
    const auto& h = events[0].header;
    EXPECT_EQ(h.hook, c.want_event);
    EXPECT_EQ(h.verdict, CORDON_VERDICT_DENY);
    EXPECT_EQ(h.tgid, static_cast<std::uint32_t>(pid));
    EXPECT_EQ(h.ppid, static_cast<std::uint32_t>(::getpid()));
    EXPECT_EQ(h.agent_id, kAgentId);
    EXPECT_EQ(h.cgroup_id, cg.id());
    EXPECT_EQ(h.backend, backend);
    EXPECT_EQ(guard.counters()[CORDON_CNT_DENY], 1u);
    EXPECT_EQ(guard.counters()[CORDON_CNT_RINGBUF_DROPS], 0u);
}

const NetCase kNetCases[] = {
    {.name = "Connect4FromKilledAgentFailsWithEperm", .family = AF_INET, .type = SOCK_STREAM,
     .where = Where::KilledAgent, .want_errno = EPERM, .want_event = CORDON_HOOK_CONNECT4},
    {.name = "Connect6FromKilledAgentFailsWithEperm", .family = AF_INET6, .type = SOCK_STREAM,
     .where = Where::KilledAgent, .want_errno = EPERM, .want_event = CORDON_HOOK_CONNECT6},
    {.name = "Sendmsg4FromKilledAgentFailsWithEperm", .family = AF_INET, .type = SOCK_DGRAM,
     .where = Where::KilledAgent, .want_errno = EPERM, .want_event = CORDON_HOOK_SENDMSG4},
    {.name = "Sendmsg6FromKilledAgentFailsWithEperm", .family = AF_INET6, .type = SOCK_DGRAM,
     .where = Where::KilledAgent, .want_errno = EPERM, .want_event = CORDON_HOOK_SENDMSG6},
    {.name = "Connect4FromLiveAgentReachesListener", .family = AF_INET, .type = SOCK_STREAM,
     .where = Where::LiveAgent, .want_errno = 0, .want_event = CORDON_HOOK_NONE},
    {.name = "Connect4FromOutsideReachesListener", .family = AF_INET, .type = SOCK_STREAM,
     .where = Where::Outside, .want_errno = 0, .want_event = CORDON_HOOK_NONE},
    {.name = "Connect6FromOutsideReachesListener", .family = AF_INET6, .type = SOCK_STREAM,
     .where = Where::Outside, .want_errno = 0, .want_event = CORDON_HOOK_NONE},
    {.name = "Sendmsg4FromOutsideIsSent", .family = AF_INET, .type = SOCK_DGRAM,
     .where = Where::Outside, .want_errno = 0, .want_event = CORDON_HOOK_NONE},
};

INSTANTIATE_TEST_SUITE_P(Cases, NetGuardTest, ::testing::ValuesIn(kNetCases),
                         [](const auto& tp) { return std::string(tp.param.name); });

} // namespace
} // namespace cordon::testing
