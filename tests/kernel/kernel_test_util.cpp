// SPDX-License-Identifier: Apache-2.0
#include "common/backend.h"
#include "kernel_test_util.h"

#include <sys/resource.h>
#include <sys/wait.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <fstream>

#include <bpf/bpf.h>
#include <gtest/gtest.h>

#include "common/error.h"
#include "policy/compiler.h"
#include "policy/parser.h"

namespace cordon::testing {

namespace {
// The tables keep one loaded program set per backend and policy for the whole run (a load
// costs seconds under QEMU); with three backends in one process their descriptors (programs,
// links, maps: about 200 a set) pass the default soft limit of 1,024. Raised to the hard limit
// before any test runs.
const bool kRaisedNofile = [] {
    struct rlimit rl {};
    if (::getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        ::setrlimit(RLIMIT_NOFILE, &rl);
    }
    return true;
}();
} // namespace

const agents::Cgroup2Mount& cgroup2()
{
    static const agents::Cgroup2Mount m = agents::cgroup2_mount();
    return m;
}

agents::Cgroup make_test_cgroup()
{
    static std::atomic<int> n{0};
    return agents::Cgroup::create(cgroup2(), "kt-" + std::to_string(::getpid()) + "-" +
                                                 std::to_string(n++));
}

bpf::Features& kernel_features()
{
    static bpf::Features f(bpf::kernel_probe_source());
    return f;
}

bpf::GuardOptions guard_options(cordon_backend backend)
{
    // 8 MiB ring buffers, not the production 64: the tables keep many program sets loaded at
    // once, and the VM tier's guest has 1 GiB. The daemon tests run cordond's default.
    return {.backend = backend,
            .net_attach_cgroup = cgroup2().mount_point,
            .pin_dir = std::nullopt,
            .ringbuf_bytes = 8u << 20};
}

int line_containing(const std::string& text, const std::string& marker)
{
    int line = 1;
    for (size_t i = 0; i < text.size(); ++i) {
        if (text.compare(i, marker.size(), marker) == 0)
            return line;
        if (text[i] == '\n')
            ++line;
    }
    return -1;
}

void add_plain_agent(bpf::Guard& guard, std::uint64_t cgid, std::uint32_t agent_id, bool killed)
{
    cordon_agent a{};
    a.agent_id = agent_id;
    a.mode = CORDON_MODE_ENFORCE;
    a.flags = killed ? CORDON_AGENT_F_KILLED : 0;
    a.level = static_cast<__u8>(cgroup2().root_level + 2); // make_test_cgroup's cgroups
    cordon_agent_live live{};
    live.score = 1000;
    live.agent_id = agent_id;
    guard.add_agent(cgid, a, live); // keyed by its cgroup id: any key will do
    guard.bind_cgroup(cgid, cgid);
}

void add_agent(bpf::Guard& guard, const agents::Cgroup& cg, const policy::Policy& p,
               const policy::CompiledPolicy& c)
{
    const auto id = guard.allocate_agent_id();
    guard.add_agent(cg.id(), policy::agent_for(p, c, id, cg.level()), policy::live_for(p, id));
    guard.bind_cgroup(cg.id(), cg.id()); // keyed by its cgroup id: any key will do
}

std::uint16_t free_loopback_port()
{
    const int fd = ::socket(AF_INET, SOCK_DGRAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a));
    socklen_t len = sizeof(a);
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
    ::close(fd);
    return ntohs(a.sin_port);
}

pid_t spawn_in(const std::optional<std::string>& cgroup_dir, const std::function<int()>& fn)
{
    // The parent returns only once the child is in its cgroup, so that a test never races a
    // child that is still on its way in (and a cgroup is never removed under a joining child).
    // Close-on-exec: the child says "in" by closing its end (EOF), so a process that another
    // thread of the test forks and execs meanwhile (a cordond started beside the rounds of
    // DaemonTest.EnforcementOutlivesASigkilledDaemon) must not keep a copy, or the read below
    // never returns (it hung the lsm VM boot once).
    int ready[2];
    if (::pipe2(ready, O_CLOEXEC) != 0)
        return -1;
    // Everything the child needs before fn() is prepared here: another thread of the test may
    // hold the allocator's lock at the fork, and the child must not allocate until fn() runs
    // (only async-signal-safe calls between fork and fn).
    const std::string procs = cgroup_dir ? *cgroup_dir + "/cgroup.procs" : std::string();
    std::fflush(nullptr);
    const pid_t pid = ::fork();
    if (pid != 0) {
        ::close(ready[1]);
        char c;
        (void)!::read(ready[0], &c, 1);
        ::close(ready[0]);
        return pid;
    }
    ::close(ready[0]);
    if (cgroup_dir) {
        char digits[16];
        int n = 0;
        for (unsigned v = static_cast<unsigned>(::getpid()); v > 0 || n == 0; v /= 10)
            digits[n++] = static_cast<char>('0' + v % 10);
        char text[16];
        for (int i = 0; i < n; ++i)
            text[i] = digits[n - 1 - i];
        const int fd = ::open(procs.c_str(), O_WRONLY | O_CLOEXEC);
        if (fd < 0 || ::write(fd, text, static_cast<size_t>(n)) != n)
            ::_exit(kChildSetupFailed);
        ::close(fd);
    }
    ::close(ready[1]);
    ::_exit(fn());
}

Exit wait_exit(pid_t pid)
{
    int status = 0;
    if (::waitpid(pid, &status, 0) != pid)
        return {.signaled = false, .code = -2, .signal = 0};
    if (WIFSIGNALED(status))
        return killed_by(WTERMSIG(status));
    return exited(WEXITSTATUS(status));
}

std::string describe(const Exit& e)
{
    return e.signaled ? "killed by signal " + std::to_string(e.signal)
                      : "exited with " + std::to_string(e.code);
}

namespace {

policy::Policy parse_or_throw(const std::string& yaml, const policy::Context& ctx)
{
    auto r = policy::parse_policy(yaml, "test.yaml", ctx);
    if (!r.policy)
        throw Error("test policy does not parse: " + r.errors.at(0).str());
    return std::move(*r.policy);
}

} // namespace

TestAgent::TestAgent(cordon_backend backend, const std::string& policy_yaml,
                     const policy::Context& ctx, std::uint32_t ringbuf_bytes)
    : guard([&] {
          auto o = guard_options(backend);
          if (ringbuf_bytes)
              o.ringbuf_bytes = ringbuf_bytes;
          return o;
      }()), cg(make_test_cgroup()), policy(parse_or_throw(policy_yaml, ctx))
{
    auto c = policy::compile(policy, guard.allocate_policy_id());
    if (!c.compiled)
        throw Error("test policy does not compile: " + c.errors.at(0).str());
    guard.load_policy(*c.compiled);
    compiled = *c.compiled;
    add_agent(guard, cg, policy, compiled);
}

TestAgent& LoadedGuards::get(cordon_backend backend, const std::string& policy_yaml,
                             const policy::Context& ctx)
{
    auto& a = loaded_[{backend, policy_yaml}];
    if (!a)
        a = std::make_unique<TestAgent>(backend, policy_yaml, ctx);
    return *a;
}

CaseAgent::CaseAgent(TestAgent& shared) : guard(shared.guard), cg(make_test_cgroup()), shared_(shared)
{
    add_agent(guard, cg, shared.policy, shared.compiled);
    drain_events(guard);
}

CaseAgent::~CaseAgent()
{
    guard.remove_agent(cg.id());
}

int TestAgent::line_of(std::uint32_t rule_id) const
{
    return rule_id < policy.rules.size() ? policy.rules[rule_id].pos.line : -1;
}

std::string backend_probe_detail(cordon_backend backend)
{
    return bpf::backend_blockers_text(kernel_features(), backend);
}

bool skip_unless_backend(cordon_backend backend)
{
    // Every probe the backend needs, not only whether its programs load: an lsm program set
    // also loads where the BPF LSM is not active, and is never called there.
    if (bpf::backend_usable(kernel_features(), backend))
        return false;
    GTEST_LOG_(INFO) << "skipped: this kernel cannot run the " << bpf::backend_name(backend)
                     << " backend (" << backend_probe_detail(backend) << ")";
    return true;
}

std::vector<events::Event> drain_events(const bpf::Guard& guard)
{
    std::vector<events::Event> out;
    events::Reader reader(guard.events_fd(), guard.event_shares_fd(),
                          [&out](const events::Event& e) { out.push_back(e); });
    reader.drain();
    return out;
}

std::vector<std::uint32_t> loaded_program_ids()
{
    std::vector<std::uint32_t> ids;
    for (std::uint32_t id = 0; bpf_prog_get_next_id(id, &id) == 0;)
        ids.push_back(id);
    return ids;
}

} // namespace cordon::testing
