// SPDX-License-Identifier: Apache-2.0
// Enforcement of a policy on the running kernel, for each backend: real processes in an agent
// cgroup exec, open, create, unlink, rename, connect and send, and each case asserts the exact
// outcome (errno or signal) and the event recorded (hook, verdict, path, source line).
// lsm: a denial is EPERM from the syscall. compat: a denied exec or open SIGKILLs the process.
#include <fcntl.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <linux/bpf.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>

#include <gtest/gtest.h>

#include "common/error.h"
#include "daemon_util.h"
#include "events/format.h"
#include "common/backend.h"
#include "kernel_test_util.h"
#include "policy/parser.h"

namespace cordon::testing {
namespace {

namespace fs = std::filesystem;

// What each case's child sees.
struct Env {
    fs::path ws;                 // workspace with the fixture files
    std::uint16_t port4 = 0;     // TCP listener on 127.0.0.1
    std::uint16_t port6 = 0;     // TCP listener on ::1
    pid_t victim = 0;            // a sleeping process outside the agent (protected on lsm)
    fs::path cordon_cgroup;      // <root>/cordon
};

// Exit code for "succeeded"; anything else is the errno of the failing call.
int result(int rc)
{
    return rc < 0 ? errno : 0;
}

int do_exec(const std::string& path)
{
    char* const argv[] = {const_cast<char*>("t"), nullptr};
    ::execv(path.c_str(), argv);
    return errno;
}

int do_open(const fs::path& p, int flags)
{
    const int fd = ::open(p.c_str(), flags | O_CLOEXEC, 0644);
    if (fd < 0)
        return errno;
    ::close(fd);
    return 0;
}

int do_connect(int family, const char* addr, std::uint16_t port, int type)
{
    const int s = ::socket(family, type | SOCK_CLOEXEC, 0);
    sockaddr_storage ss{};
    socklen_t len;
    if (family == AF_INET) {
        auto* a = reinterpret_cast<sockaddr_in*>(&ss);
        a->sin_family = AF_INET;
        a->sin_port = htons(port);
        ::inet_pton(AF_INET, addr, &a->sin_addr);
        len = sizeof(*a);
    } else {
        auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
        a->sin6_family = AF_INET6;
        a->sin6_port = htons(port);
        ::inet_pton(AF_INET6, addr, &a->sin6_addr);
        len = sizeof(*a);
    }
    const auto* sa = reinterpret_cast<const sockaddr*>(&ss);
    const int r = type == SOCK_STREAM ? ::connect(s, sa, len)
                                      : static_cast<int>(::sendto(s, "x", 1, 0, sa, len));
    return result(r);
}

enum class Expect {
    Runs,          // succeeds on both backends
    Denied,        // lsm: EPERM; compat: SIGKILL
    DeniedErrno,   // EPERM on both (network hooks are the same on both backends)
    Killed,        // a kill rule: SIGKILL on both
    LsmOnly,       // lsm: EPERM; compat has no hook that sees it (skipped, with the reason)
};

enum class Where { Agent, Grandchild, Outside };

struct Case {
    const char* name;
    Where where;
    std::function<int(const Env&)> action;
    Expect expect;
    cordon_hook event_hook;  // CORDON_HOOK_NONE: no event
    const char* event_path;  // relative to the workspace when it starts without '/'
    const char* rule_marker; // text on the policy line that must be named; nullptr: default
    bool audit_mode = false;
    cordon_hook compat_hook = CORDON_HOOK_NONE; // the compat backend records another hook
};
void PrintTo(const Case& c, std::ostream* os) { *os << c.name; }

const char* const kPolicy = R"(apiVersion: cordon.dev/v1
kind: AgentPolicy
metadata:
  name: enforcement-test
spec:
  exec:
    default: deny
    rules:
      - {path: "${WORKSPACE}/bin/", action: allow}
      - {path: "${WORKSPACE}/bin/denied", action: deny}
      - {path: "${WORKSPACE}/bin/killer", action: kill}
  files:
    default: allow
    rules:
      - {path: "${WORKSPACE}/secret", access: [read], action: deny}
      - {path: "${WORKSPACE}/ro/", access: [write], action: deny}
      - {path: "${WORKSPACE}/key", access: [read], action: kill}
  network:
    default: deny
    rules:
      - {cidr: 127.0.0.1/32, action: allow}
      - {cidr: "::1/128", action: allow}
      - {cidr: 127.0.0.3/32, action: deny}
)";

const std::string kTrue = "/usr/bin/true";

// The fixture files of the workspace.
void make_workspace(const fs::path& ws)
{
    fs::create_directories(ws / "bin");
    fs::create_directories(ws / "ro");
    fs::create_directories(ws / "mnt");
    for (const char* b : {"allowed", "denied", "killer"})
        fs::copy_file(kTrue, ws / "bin" / b);
    std::ofstream(ws / "secret") << "secret";
    std::ofstream(ws / "key") << "key";
    std::ofstream(ws / "ro" / "existing") << "ro";
    std::ofstream(ws / "plain") << "plain";
    fs::create_symlink(ws / "bin" / "denied", ws / "link-to-denied");
    fs::create_symlink(ws / "secret", ws / "link-to-secret");
}

struct Listener {
    int fd = -1;
    std::uint16_t port = 0;
    explicit Listener(int family)
    {
        fd = ::socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_storage ss{};
        socklen_t len;
        if (family == AF_INET) {
            auto* a = reinterpret_cast<sockaddr_in*>(&ss);
            a->sin_family = AF_INET;
            a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
            len = sizeof(*a);
        } else {
            auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
            a->sin6_family = AF_INET6;
            a->sin6_addr = in6addr_loopback;
            len = sizeof(*a);
        }
        if (::bind(fd, reinterpret_cast<sockaddr*>(&ss), len) == 0 && ::listen(fd, 64) == 0 &&
            ::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) == 0)
            port = ntohs(family == AF_INET ? reinterpret_cast<sockaddr_in*>(&ss)->sin_port
                                           : reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port);
    }
    ~Listener() { ::close(fd); }
};

// Exit code of a child whose grandchild died of SIGKILL.
constexpr int kGrandchildKilled = 200;

// Which controller guards the case's agent: this process (a Guard of its own, as the embedded
// `cordon run`), or a real cordond, through its API (attach, subscribe, detach).
enum class Via { Embedded, Daemon };

// One decision the kernel reported, however it reached the test.
struct Seen {
    std::uint16_t hook = 0;
    std::uint8_t verdict = 0;
    std::uint8_t backend = 0;
    std::uint64_t cgroup_id = 0;
    std::string path;
    std::uint32_t rule_id = 0;
};

// A case's agent: its cgroup, the maps that decide for it, and what the kernel reported.
class CaseRig {
public:
    virtual ~CaseRig() = default;
    virtual bpf::Guard& maps() = 0;
    virtual const agents::Cgroup& cg() const = 0;
    virtual int line_of(std::uint32_t rule_id) const = 0;
    virtual std::vector<Seen> events() = 0;
};

class EmbeddedRig : public CaseRig {
public:
    explicit EmbeddedRig(TestAgent& shared) : agent_(shared) {}
    bpf::Guard& maps() override { return agent_.guard; }
    const agents::Cgroup& cg() const override { return agent_.cg; }
    int line_of(std::uint32_t rule_id) const override { return agent_.line_of(rule_id); }
    std::vector<Seen> events() override
    {
        std::vector<Seen> out;
        for (const auto& e : drain_events(agent_.guard))
            out.push_back({.hook = e.header().hook, .verdict = e.header().verdict,
                           .backend = e.header().backend, .cgroup_id = e.header().cgroup_id,
                           .path = e.body.path, .rule_id = e.header().rule_id});
        return out;
    }

private:
    CaseAgent agent_;
};

// The case's cgroup attached to cordond with the case's policy; events arrive on a subscription.
class DaemonRig : public CaseRig {
public:
    DaemonRig(Daemon& d, const std::string& yaml, const policy::Context& ctx)
        : daemon_(d), cg_(make_test_cgroup()), name_(cg_.path().filename().string()),
          policy_(policy::parse_policy(yaml, "test.yaml", ctx).policy.value())
    {
        const auto r = d.attach(cg_.path(), yaml, name_, *ctx.workspace);
        if (!r.value("ok", false))
            throw Error("attach failed: " + r.dump());
        sub_.emplace(d, name_);
    }
    ~DaemonRig() override { daemon_.detach(name_); }
    bpf::Guard& maps() override { return daemon_.pinned(); }
    const agents::Cgroup& cg() const override { return cg_; }
    int line_of(std::uint32_t rule_id) const override
    {
        return rule_id < policy_.rules.size() ? policy_.rules[rule_id].pos.line : -1;
    }
    std::vector<Seen> events() override
    {
        std::vector<Seen> out;
        for (const auto& record : sub_->barrier()) {
            const auto& j = cordon_fields(record);
            Seen s;
            for (std::uint16_t h = 0; h < CORDON_HOOK_MAX; ++h)
                if (events::hook_name(h) == j.at("hook").get<std::string>())
                    s.hook = h;
            for (std::uint8_t v = 0; v < CORDON_VERDICT_MAX; ++v)
                if (events::verdict_name(v) == j.at("verdict").get<std::string>())
                    s.verdict = v;
            s.backend = backend_from_name(j.at("backend").get<std::string>()).value_or(CORDON_BACKEND_NONE);
            s.cgroup_id = j.at("cgroup_id").get<std::uint64_t>();
            s.path = path_of(record);
            s.rule_id = j.at("rule_id").get<std::uint32_t>();
            out.push_back(std::move(s));
        }
        return out;
    }

private:
    Daemon& daemon_;
    agents::Cgroup cg_;
    std::string name_;
    policy::Policy policy_;
    std::optional<Subscription> sub_;
};

// One loaded program set per backend and mode for the whole table (see LoadedGuards), or one
// cordond per backend; each case gets an agent of its own and a fresh workspace, always at the
// same path.
class EnforcementTest
    : public ::testing::TestWithParam<std::tuple<cordon_backend, Via, Case>> {
protected:
    static void TearDownTestSuite()
    {
        loaded_.clear();
        daemons_.clear();
    }

    static const fs::path& workspace()
    {
        static const fs::path ws = "/tmp/cordon-kt-" + std::to_string(::getpid());
        return ws;
    }

    static policy::Context context()
    {
        return {.home = "/root", .workspace = workspace().string(), .user = "root"};
    }

    static std::unique_ptr<CaseRig> rig(cordon_backend backend, Via via, const std::string& yaml)
    {
        if (via == Via::Embedded)
            return std::make_unique<EmbeddedRig>(loaded_.get(backend, yaml, context()));
        auto& d = daemons_[backend];
        if (!d)
            d = std::make_unique<Daemon>(backend);
        return std::make_unique<DaemonRig>(*d, yaml, context());
    }

private:
    static inline LoadedGuards loaded_;
    static inline std::map<cordon_backend, std::unique_ptr<Daemon>> daemons_;
};

TEST_P(EnforcementTest, DecidesAsThePolicySays)
{
    const auto& [backend, via, c] = GetParam();
    if (skip_unless_backend(backend))
        GTEST_SKIP() << "the kernel cannot run this backend: "
                     << backend_probe_detail(backend)
                     << "; the VM tier runs it";
    if (backend == CORDON_BACKEND_COMPAT && c.expect == Expect::LsmOnly)
        GTEST_SKIP() << "the compat backend has no hook that sees the resolved path of this "
                        "operation (no BPF LSM, no trampolines); documented in "
                        "docs/enforcement.md and `cordon doctor`, and covered by the lsm backend";

    Env env;
    env.ws = workspace();
    fs::remove_all(env.ws);
    make_workspace(env.ws);
    Listener l4(AF_INET), l6(AF_INET6);
    env.port4 = l4.port;
    env.port6 = l6.port;
    env.cordon_cgroup = cgroup2().mount_point / agents::kSubtree;
    env.victim = spawn_in(std::nullopt, [] {
        ::pause();
        return 0;
    });
    // Runs however the test ends (an ASSERT returns early): no process or file is left behind.
    struct Cleanup {
        const Env& env;
        ~Cleanup()
        {
            ::kill(env.victim, SIGKILL);
            wait_exit(env.victim);
            fs::remove_all(env.ws);
        }
    } cleanup{env};

    std::string yaml = kPolicy;
    if (c.audit_mode)
        yaml.replace(yaml.find("spec:\n"), 6, "spec:\n  mode: audit\n");
    {
        const auto agent = rig(backend, via, yaml);
        agent->maps().protect_process(static_cast<std::uint32_t>(env.victim));
        struct Unprotect {
            bpf::Guard& guard;
            pid_t pid;
            ~Unprotect() { guard.unprotect_process(static_cast<std::uint32_t>(pid)); }
        } unprotect{agent->maps(), env.victim};

        std::optional<std::string> dir;
        if (c.where != Where::Outside)
            dir = agent->cg().path();
        const auto body = [&]() -> int {
            if (c.where != Where::Grandchild)
                return c.action(env);
            const pid_t g = ::fork();
            if (g == 0)
                ::_exit(c.action(env));
            int st = 0;
            ::waitpid(g, &st, 0);
            if (WIFSIGNALED(st))
                return WTERMSIG(st) == SIGKILL ? kGrandchildKilled : kChildSetupFailed;
            return WEXITSTATUS(st);
        };
        const pid_t pid = spawn_in(dir, body);
        const Exit got = wait_exit(pid);

        Exit want = exited(0);
        const bool lsm = runs_lsm_programs(backend);
        switch (c.expect) {
        case Expect::Runs: want = exited(0); break;
        case Expect::DeniedErrno: want = exited(EPERM); break;
        case Expect::Killed: want = killed_by(SIGKILL); break;
        case Expect::Denied:
        case Expect::LsmOnly: want = lsm ? exited(EPERM) : killed_by(SIGKILL); break;
        }
        if (c.where == Where::Grandchild && want.signaled)
            want = exited(kGrandchildKilled);
        if (c.where == Where::Grandchild && c.expect == Expect::Killed)
            want = exited(kGrandchildKilled);
        EXPECT_EQ(got, want) << "got: " << describe(got);

        const auto events = agent->events();
        if (c.event_hook == CORDON_HOOK_NONE) {
            EXPECT_TRUE(events.empty()) << events.size() << " unexpected events, first: hook "
                                        << (events.empty() ? 0 : events[0].hook) << " "
                                        << (events.empty() ? "" : events[0].path);
        } else {
            ASSERT_FALSE(events.empty()) << "no event recorded";
            const auto& e = events[0];
            EXPECT_EQ(e.hook, backend == CORDON_BACKEND_COMPAT && c.compat_hook
                                         ? c.compat_hook
                                         : c.event_hook);
            const std::uint8_t want_verdict = c.audit_mode               ? CORDON_VERDICT_AUDIT
                                              : c.expect == Expect::Killed ? CORDON_VERDICT_KILL
                                                                           : CORDON_VERDICT_DENY;
            EXPECT_EQ(e.verdict, want_verdict);
            EXPECT_EQ(e.backend, backend);
            EXPECT_EQ(e.cgroup_id, agent->cg().id());
            if (c.event_path) {
                const std::string p = c.event_path[0] == '/' ? std::string(c.event_path)
                                                             : (env.ws / c.event_path).string();
                EXPECT_EQ(e.path, p);
            }
            if (c.rule_marker) {
                EXPECT_EQ(agent->line_of(e.rule_id), line_containing(yaml, c.rule_marker))
                    << "rule id " << e.rule_id;
            }
            if (c.expect == Expect::Killed) {
                // The agent's entries are under its key, which its cgroup is bound to.
                const auto key = agent->maps().cgroup_agent(agent->cg().id());
                ASSERT_TRUE(key.has_value());
                const auto st = agent->maps().live(*key);
                ASSERT_TRUE(st.has_value());
                EXPECT_TRUE(st->flags & CORDON_AGENT_F_KILLED) << "the kernel marked it killed";
            }
        }
    }
}

const Case kCases[] = {
    // exec
    {.name = "AllowedExecRuns", .where = Where::Agent,
     .action = [](const Env& e) { return do_exec(e.ws / "bin/allowed"); },
     .expect = Expect::Runs, .event_hook = CORDON_HOOK_NONE, .event_path = nullptr, .rule_marker = nullptr},
    {.name = "DeniedExec", .where = Where::Agent,
     .action = [](const Env& e) { return do_exec(e.ws / "bin/denied"); },
     .expect = Expect::Denied, .event_hook = CORDON_HOOK_EXEC, .event_path = "bin/denied",
     .rule_marker = "bin/denied\", action: deny"},
    {.name = "DeniedExecThroughSymlink", .where = Where::Agent,
     .action = [](const Env& e) { return do_exec(e.ws / "link-to-denied"); },
     .expect = Expect::Denied, .event_hook = CORDON_HOOK_EXEC, .event_path = "bin/denied",
     .rule_marker = "bin/denied\", action: deny"},
    {.name = "DeniedExecByRelativePath", .where = Where::Agent,
     .action = [](const Env& e) { return ::chdir((e.ws / "bin").c_str()) ? errno : do_exec("./denied"); },
     .expect = Expect::Denied, .event_hook = CORDON_HOOK_EXEC, .event_path = "bin/denied",
     .rule_marker = "bin/denied\", action: deny"},
    {.name = "DeniedExecThroughProcSelfFd", .where = Where::Agent,
     .action = [](const Env& e) {
         const int fd = ::open((e.ws / "bin/denied").c_str(), O_PATH);
         return do_exec("/proc/self/fd/" + std::to_string(fd));
     },
     .expect = Expect::Denied, .event_hook = CORDON_HOOK_EXEC, .event_path = "bin/denied",
     .rule_marker = "bin/denied\", action: deny"},
    {.name = "ExecOutsideAllowListHitsDefault", .where = Where::Agent,
     .action = [](const Env&) { return do_exec(kTrue); },
     .expect = Expect::Denied, .event_hook = CORDON_HOOK_EXEC, .event_path = "/usr/bin/true",
     .rule_marker = "default: deny\n    rules:\n      - {path: \"${WORKSPACE}/bin/\""},
    {.name = "DeniedExecByGrandchild", .where = Where::Grandchild,
     .action = [](const Env& e) { return do_exec(e.ws / "bin/denied"); },
     .expect = Expect::Denied, .event_hook = CORDON_HOOK_EXEC, .event_path = "bin/denied",
     .rule_marker = "bin/denied\", action: deny"},
    {.name = "ExecOutsideTheAgentIsUntouched", .where = Where::Outside,
     .action = [](const Env& e) { return do_exec(e.ws / "bin/denied"); },
     .expect = Expect::Runs, .event_hook = CORDON_HOOK_NONE, .event_path = nullptr, .rule_marker = nullptr},
    {.name = "KillRuleOnExecKills", .where = Where::Agent,
     .action = [](const Env& e) { return do_exec(e.ws / "bin/killer"); },
     .expect = Expect::Killed, .event_hook = CORDON_HOOK_EXEC, .event_path = "bin/killer",
     .rule_marker = "bin/killer"},
    // reading
    {.name = "ReadingAllowedFileWorks", .where = Where::Agent,
     .action = [](const Env& e) { return do_open(e.ws / "plain", O_RDONLY); },
     .expect = Expect::Runs, .event_hook = CORDON_HOOK_NONE, .event_path = nullptr, .rule_marker = nullptr},
    {.name = "ReadingDeniedFile", .where = Where::Agent,
     .action = [](const Env& e) { return do_open(e.ws / "secret", O_RDONLY); },
     .expect = Expect::Denied, .event_hook = CORDON_HOOK_FILE_OPEN, .event_path = "secret",
     .rule_marker = "/secret\""},
    {.name = "ReadingDeniedFileThroughSymlink", .where = Where::Agent,
     .action = [](const Env& e) { return do_open(e.ws / "link-to-secret", O_RDONLY); },
     .expect = Expect::Denied, .event_hook = CORDON_HOOK_FILE_OPEN, .event_path = "secret",
     .rule_marker = "/secret\""},
    {.name = "ReadingDeniedFileThroughDotDot", .where = Where::Agent,
     .action = [](const Env& e) { return do_open(e.ws / "ro/../secret", O_RDONLY); },
     .expect = Expect::Denied, .event_hook = CORDON_HOOK_FILE_OPEN, .event_path = "secret",
     .rule_marker = "/secret\""},
    {.name = "ReadingDeniedFileThroughProcSelfFd", .where = Where::Agent,
     .action = [](const Env& e) {
         const int fd = ::open((e.ws / "secret").c_str(), O_PATH);
         return do_open("/proc/self/fd/" + std::to_string(fd), O_RDONLY);
     },
     .expect = Expect::Denied, .event_hook = CORDON_HOOK_FILE_OPEN, .event_path = "secret",
     .rule_marker = "/secret\""},
    {.name = "ReadingDeniedFileOutsideTheAgentWorks", .where = Where::Outside,
     .action = [](const Env& e) { return do_open(e.ws / "secret", O_RDONLY); },
     .expect = Expect::Runs, .event_hook = CORDON_HOOK_NONE, .event_path = nullptr, .rule_marker = nullptr},
    {.name = "AuditModeAllowsAndRecords", .where = Where::Agent,
     .action = [](const Env& e) { return do_open(e.ws / "secret", O_RDONLY); },
     .expect = Expect::Runs, .event_hook = CORDON_HOOK_FILE_OPEN, .event_path = "secret",
     .rule_marker = "/secret\"", .audit_mode = true},
    {.name = "KillRuleOnReadKills", .where = Where::Agent,
     .action = [](const Env& e) { return do_open(e.ws / "key", O_RDONLY); },
     .expect = Expect::Killed, .event_hook = CORDON_HOOK_FILE_OPEN, .event_path = "key",
     .rule_marker = "/key\""},
    // writing a read-only tree
    {.name = "OpenForWriteInReadOnlyTree", .where = Where::Agent,
     .action = [](const Env& e) { return do_open(e.ws / "ro/existing", O_WRONLY); },
     .expect = Expect::Denied, .event_hook = CORDON_HOOK_FILE_OPEN, .event_path = "ro/existing",
     .rule_marker = "/ro/\""},
    {.name = "CreateInReadOnlyTree", .where = Where::Agent,
     .action = [](const Env& e) { return do_open(e.ws / "ro/new", O_WRONLY | O_CREAT); },
     .expect = Expect::Denied, .event_hook = CORDON_HOOK_FILE_CREATE, .event_path = "ro/new",
     .rule_marker = "/ro/\"", .compat_hook = CORDON_HOOK_FILE_OPEN},
    {.name = "UnlinkInReadOnlyTree", .where = Where::Agent,
     .action = [](const Env& e) { return result(::unlink((e.ws / "ro/existing").c_str())); },
     .expect = Expect::LsmOnly, .event_hook = CORDON_HOOK_FILE_UNLINK, .event_path = "ro/existing",
     .rule_marker = "/ro/\""},
    {.name = "RenameOutOfReadOnlyTree", .where = Where::Agent,
     .action = [](const Env& e) {
         return result(::rename((e.ws / "ro/existing").c_str(), (e.ws / "moved").c_str()));
     },
     .expect = Expect::LsmOnly, .event_hook = CORDON_HOOK_FILE_RENAME, .event_path = "ro/existing",
     .rule_marker = "/ro/\""},
    {.name = "HardLinkToDeniedFileIntoReadOnlyTree", .where = Where::Agent,
     .action = [](const Env& e) {
         return result(::link((e.ws / "plain").c_str(), (e.ws / "ro/alias").c_str()));
     },
     .expect = Expect::LsmOnly, .event_hook = CORDON_HOOK_FILE_LINK, .event_path = "ro/alias",
     .rule_marker = "/ro/\""},
    {.name = "TruncateInReadOnlyTree", .where = Where::Agent,
     .action = [](const Env& e) { return result(::truncate((e.ws / "ro/existing").c_str(), 0)); },
     .expect = Expect::LsmOnly, .event_hook = CORDON_HOOK_FILE_TRUNCATE, .event_path = "ro/existing",
     .rule_marker = "/ro/\""},
    // network
    {.name = "ConnectToAllowedIpv4Listener", .where = Where::Agent,
     .action = [](const Env& e) { return do_connect(AF_INET, "127.0.0.1", e.port4, SOCK_STREAM); },
     .expect = Expect::Runs, .event_hook = CORDON_HOOK_NONE, .event_path = nullptr, .rule_marker = nullptr},
    {.name = "ConnectToAllowedIpv6Listener", .where = Where::Agent,
     .action = [](const Env& e) { return do_connect(AF_INET6, "::1", e.port6, SOCK_STREAM); },
     .expect = Expect::Runs, .event_hook = CORDON_HOOK_NONE, .event_path = nullptr, .rule_marker = nullptr},
    {.name = "ConnectToDeniedIpv4", .where = Where::Agent,
     .action = [](const Env& e) { return do_connect(AF_INET, "127.0.0.3", e.port4, SOCK_STREAM); },
     .expect = Expect::DeniedErrno, .event_hook = CORDON_HOOK_CONNECT4, .event_path = nullptr,
     .rule_marker = "127.0.0.3/32"},
    {.name = "ConnectToDeniedIpv4MappedInIpv6", .where = Where::Agent,
     .action = [](const Env& e) { return do_connect(AF_INET6, "::ffff:127.0.0.3", e.port4, SOCK_STREAM); },
     .expect = Expect::DeniedErrno, .event_hook = CORDON_HOOK_CONNECT6, .event_path = nullptr,
     .rule_marker = "127.0.0.3/32"},
    {.name = "ConnectToDeniedIpv6", .where = Where::Agent,
     .action = [](const Env&) { return do_connect(AF_INET6, "2001:db8::1", 443, SOCK_STREAM); },
     .expect = Expect::DeniedErrno, .event_hook = CORDON_HOOK_CONNECT6, .event_path = nullptr,
     .rule_marker = "default: deny\n    rules:\n      - {cidr"},
    {.name = "UdpSendToDeniedIpv4", .where = Where::Agent,
     .action = [](const Env&) { return do_connect(AF_INET, "127.0.0.3", 9, SOCK_DGRAM); },
     .expect = Expect::DeniedErrno, .event_hook = CORDON_HOOK_SENDMSG4, .event_path = nullptr,
     .rule_marker = "127.0.0.3/32"},
    {.name = "UdpSendToDeniedIpv6", .where = Where::Agent,
     .action = [](const Env&) { return do_connect(AF_INET6, "2001:db8::1", 9, SOCK_DGRAM); },
     .expect = Expect::DeniedErrno, .event_hook = CORDON_HOOK_SENDMSG6, .event_path = nullptr,
     .rule_marker = nullptr},
    {.name = "UdpSendToAllowedLoopback", .where = Where::Agent,
     .action = [](const Env&) { return do_connect(AF_INET, "127.0.0.1", 9, SOCK_DGRAM); },
     .expect = Expect::Runs, .event_hook = CORDON_HOOK_NONE, .event_path = nullptr, .rule_marker = nullptr},
    {.name = "ConnectByGrandchildDenied", .where = Where::Grandchild,
     .action = [](const Env& e) { return do_connect(AF_INET, "127.0.0.3", e.port4, SOCK_STREAM); },
     .expect = Expect::DeniedErrno, .event_hook = CORDON_HOOK_CONNECT4, .event_path = nullptr,
     .rule_marker = "127.0.0.3/32"},
    {.name = "ConnectOutsideTheAgentIsUntouched", .where = Where::Outside,
     .action = [](const Env& e) { return do_connect(AF_INET, "127.0.0.1", e.port4, SOCK_STREAM); },
     .expect = Expect::Runs, .event_hook = CORDON_HOOK_NONE, .event_path = nullptr, .rule_marker = nullptr},
    // tamper protection (lsm)
    {.name = "TamperBpfSyscall", .where = Where::Agent,
     .action = [](const Env&) {
         union bpf_attr attr {};
         return result(static_cast<int>(::syscall(__NR_bpf, BPF_PROG_GET_NEXT_ID, &attr, sizeof(attr))));
     },
     .expect = Expect::LsmOnly, .event_hook = CORDON_HOOK_TAMPER, .event_path = nullptr, .rule_marker = nullptr},
    {.name = "TamperPtraceOutsideProcess", .where = Where::Agent,
     .action = [](const Env& e) { return result(static_cast<int>(::ptrace(PTRACE_ATTACH, e.victim, 0, 0))); },
     .expect = Expect::LsmOnly, .event_hook = CORDON_HOOK_TAMPER, .event_path = nullptr, .rule_marker = nullptr},
    {.name = "TamperSignalToCordon", .where = Where::Agent,
     .action = [](const Env& e) { return result(::kill(e.victim, SIGTERM)); },
     .expect = Expect::LsmOnly, .event_hook = CORDON_HOOK_TAMPER, .event_path = nullptr, .rule_marker = nullptr},
    {.name = "TamperEscapeCgroupByWritingProcs", .where = Where::Agent,
     .action = [](const Env& e) { return do_open(e.cordon_cgroup / "cgroup.procs", O_WRONLY); },
     .expect = Expect::LsmOnly, .event_hook = CORDON_HOOK_TAMPER, .event_path = nullptr, .rule_marker = nullptr},
    {.name = "TamperMount", .where = Where::Agent,
     .action = [](const Env& e) { return result(::mount("none", (e.ws / "mnt").c_str(), "tmpfs", 0, nullptr)); },
     .expect = Expect::LsmOnly, .event_hook = CORDON_HOOK_TAMPER, .event_path = nullptr, .rule_marker = nullptr},
    {.name = "TamperPivotRoot", .where = Where::Agent,
     .action = [](const Env& e) {
         return result(static_cast<int>(::syscall(SYS_pivot_root, e.ws.c_str(), (e.ws / "mnt").c_str())));
     },
     .expect = Expect::LsmOnly, .event_hook = CORDON_HOOK_TAMPER, .event_path = nullptr, .rule_marker = nullptr},
};

INSTANTIATE_TEST_SUITE_P(
    Cases, EnforcementTest,
    ::testing::Combine(::testing::Values(CORDON_BACKEND_LSM, CORDON_BACKEND_FMOD_RET, CORDON_BACKEND_COMPAT),
                       ::testing::Values(Via::Embedded, Via::Daemon), ::testing::ValuesIn(kCases)),
    [](const auto& tp) {
        return std::string(bpf::backend_name(std::get<0>(tp.param))) +
               (std::get<1>(tp.param) == Via::Daemon ? "_cordond_" : "_") +
               std::get<2>(tp.param).name;
    });

} // namespace
} // namespace cordon::testing

namespace cordon::testing {
namespace {

// Nothing the kernel decided is lost silently: with `trace: all` every decision is reported, so
// when the ring buffer overflows, the events read plus the drops counted must equal the
// decisions counted.
class RingBufferTest : public ::testing::TestWithParam<cordon_backend> {};

TEST_P(RingBufferTest, DropsAreCountedExactly)
{
    const auto backend = GetParam();
    if (skip_unless_backend(backend))
        GTEST_SKIP() << "this kernel cannot run the " << bpf::backend_name(backend)
                     << " backend; the VM tier runs it";
    char tmpl[] = "/tmp/cordon-kt-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    const fs::path ws = tmpl;
    std::ofstream(ws / "f") << "x";
    std::string yaml = kPolicy;
    yaml.replace(yaml.find("spec:\n"), 6, "spec:\n  trace: all\n");
    const policy::Context ctx{.home = "/root", .workspace = ws.string(), .user = "root"};
    {
        // A 4 MiB ring buffer (not the default 64) holds about 11,900 records: 20,000 opens
        // must overflow it.
        TestAgent agent(backend, yaml, ctx, 4u << 20);
        constexpr int kOpens = 20000;
        const pid_t pid = spawn_in(agent.cg.path().string(), [&] {
            for (int i = 0; i < kOpens; ++i)
                ::close(::open((ws / "f").c_str(), O_RDONLY | O_CLOEXEC));
            return 0;
        });
        EXPECT_EQ(wait_exit(pid), exited(0));
        const auto events = drain_events(agent.guard);
        const auto n = agent.guard.counters();
        const std::uint64_t decisions = n[CORDON_CNT_ALLOW] + n[CORDON_CNT_DENY] +
                                        n[CORDON_CNT_AUDIT] + n[CORDON_CNT_KILL] +
                                        n[CORDON_CNT_FREEZE];
        EXPECT_GE(decisions, static_cast<std::uint64_t>(kOpens));
        EXPECT_GT(n[CORDON_CNT_RINGBUF_DROPS], 0u);
        EXPECT_EQ(events.size() + n[CORDON_CNT_RINGBUF_DROPS], decisions);
    }
    fs::remove_all(ws);
}

INSTANTIATE_TEST_SUITE_P(Backends, RingBufferTest,
                         ::testing::Values(CORDON_BACKEND_LSM, CORDON_BACKEND_FMOD_RET, CORDON_BACKEND_COMPAT),
                         [](const auto& tp) { return std::string(bpf::backend_name(tp.param)); });

} // namespace
} // namespace cordon::testing
