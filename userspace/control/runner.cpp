// SPDX-License-Identifier: Apache-2.0
#include "control/runner.h"

#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <random>

#include <bpf/libbpf.h>
#include <fmt/format.h>

#include "agents/cgroup.h"
#include "bpf/features.h"
#include "bpf/guard.h"
#include "common/error.h"
#include "control/policy_cmd.h"
#include "events/format.h"
#include "events/reader.h"
#include "policy/compiler.h"
#include "policy/parser.h"

namespace cordon::control {
namespace {

std::string random_suffix()
{
    std::random_device rd;
    return fmt::format("{:06x}", rd() & 0xffffff);
}

cordon_backend pick_backend(const std::string& wanted)
{
    bpf::Features f(bpf::kernel_probe_source());
    const auto best = bpf::choose_backend(f);
    if (wanted == "auto") {
        if (best == CORDON_BACKEND_NONE)
            throw Error("no backend can run on this kernel; run `cordon doctor` for the reason");
        return best;
    }
    if (wanted == "lsm") {
        if (best != CORDON_BACKEND_LSM)
            throw Error("the lsm backend is not usable here (" +
                        f.get(bpf::Probe::LsmAttach).detail +
                        "); use --backend compat or auto, and see `cordon doctor`");
        return CORDON_BACKEND_LSM;
    }
    if (wanted == "compat") {
        for (size_t i = 0; i < bpf::kProbeCount; ++i) {
            const auto p = static_cast<bpf::Probe>(i);
            if (bpf::probe_required_by(p, CORDON_BACKEND_COMPAT) && !f.has(p))
                throw Error("the compat backend is not usable here: " +
                            std::string(bpf::probe_name(p)) + " " + f.get(p).detail);
        }
        return CORDON_BACKEND_COMPAT;
    }
    throw Error("unknown backend '" + wanted + "'; expected auto, lsm or compat");
}

// A process outside the agent that kills and removes the agent cgroup when cordon goes away for
// any reason (a crash, SIGKILL): it waits for EOF on a pipe whose only writer is cordon. Fail
// closed: an agent never outlives its guard.
pid_t start_guardian(const std::filesystem::path& cgroup, int& keepalive_fd)
{
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0)
        throw Error("cannot create the guardian pipe: " + errno_text(errno));
    const pid_t pid = ::fork();
    if (pid < 0)
        throw Error("cannot start the guardian: " + errno_text(errno));
    if (pid == 0) {
        ::close(fds[1]);
        ::setsid(); // not in the terminal's process group: Ctrl-C does not reach it
        ::signal(SIGINT, SIG_IGN);
        ::signal(SIGTERM, SIG_IGN);
        ::signal(SIGHUP, SIG_IGN);
        ::prctl(PR_SET_NAME, "cordon-guardian");
        char c;
        while (::read(fds[0], &c, 1) < 0 && errno == EINTR) {
        }
        // cordon is gone (or done): whatever is left of the agent dies with it.
        for (int i = 0; i < 2000 && std::filesystem::exists(cgroup); ++i) {
            std::ofstream(cgroup / "cgroup.kill") << "1";
            std::error_code ec;
            std::filesystem::remove(cgroup, ec); // succeeds once the cgroup is empty
            if (!ec)
                break;
            ::usleep(5000);
        }
        ::_exit(0);
    }
    ::close(fds[0]);
    keepalive_fd = fds[1];
    return pid;
}

struct Identity {
    uid_t uid;
    gid_t gid;
    std::string name, home, shell;
};

Identity lookup_user(const std::string& user)
{
    const passwd* pw = ::getpwnam(user.c_str());
    if (!pw)
        throw Error("unknown user '" + user + "'; expected a user from /etc/passwd");
    return {pw->pw_uid, pw->pw_gid, pw->pw_name, pw->pw_dir,
            pw->pw_shell && *pw->pw_shell ? pw->pw_shell : "/bin/sh"};
}

// In the child: join the agent, become the user, exec. Reports an errno on `err_fd` on failure.
[[noreturn]] void child_exec(const agents::Cgroup& cg, const std::optional<Identity>& who,
                             const std::optional<std::string>& workdir,
                             const std::vector<std::string>& command, int err_fd)
{
    const auto fail = [err_fd](int stage) {
        const int e[2] = {stage, errno};
        (void)!::write(err_fd, e, sizeof(e));
        ::_exit(127);
    };
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    // From here on this process is the agent: enforcement is already attached.
    {
        const int fd = ::open((cg.path() / "cgroup.procs").c_str(), O_WRONLY | O_CLOEXEC);
        if (fd < 0 || ::write(fd, "0", 1) != 1)
            fail(1);
        ::close(fd);
    }
    if (who) {
        // As `sudo -u`: the user's groups, gid, uid, and a reset environment.
        if (::initgroups(who->name.c_str(), who->gid) != 0 || ::setgid(who->gid) != 0 ||
            ::setuid(who->uid) != 0)
            fail(2);
        const char* term = std::getenv("TERM");
        const std::string keep_term = term ? term : "";
        ::clearenv();
        ::setenv("HOME", who->home.c_str(), 1);
        ::setenv("USER", who->name.c_str(), 1);
        ::setenv("LOGNAME", who->name.c_str(), 1);
        ::setenv("SHELL", who->shell.c_str(), 1);
        ::setenv("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", 1);
        if (!keep_term.empty())
            ::setenv("TERM", keep_term.c_str(), 1);
    }
    if (workdir && ::chdir(workdir->c_str()) != 0)
        fail(3);
    std::vector<char*> argv;
    for (const auto& a : command)
        argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    ::execvp(argv[0], argv.data());
    fail(4);
    ::_exit(127); // fail() does not return; this tells the compiler
}

class EventSink {
public:
    EventSink(const policy::Policy& p, std::string agent, const std::optional<std::string>& file)
        : policy_(p), agent_(std::move(agent))
    {
        if (file) {
            out_ = std::fopen(file->c_str(), "a");
            if (!out_)
                throw Error("cannot open --events file " + *file + ": " + errno_text(errno));
        }
    }
    ~EventSink()
    {
        if (out_)
            std::fclose(out_);
    }
    EventSink(const EventSink&) = delete;
    EventSink& operator=(const EventSink&) = delete;

    void operator()(const events::Event& e)
    {
        const auto namer = [this](std::uint32_t id) -> std::string {
            if (id >= policy_.rules.size())
                return "";
            const auto& r = policy_.rules[id];
            return fmt::format("{}:{}", policy_.file, r.pos.line);
        };
        if (e.header().verdict != CORDON_VERDICT_ALLOW)
            std::fprintf(stderr, "cordon: %s\n", events::event_line(e, namer).c_str());
        if (out_) {
            std::fprintf(out_, "%s\n", events::event_json(e, namer, agent_).c_str());
            std::fflush(out_);
        }
        if (e.header().verdict == CORDON_VERDICT_KILL)
            kill_requested = true;
    }

    bool kill_requested = false;

private:
    const policy::Policy& policy_;
    std::string agent_;
    FILE* out_ = nullptr;
};

int exit_status(int status)
{
    if (WIFSIGNALED(status))
        return 128 + WTERMSIG(status);
    return WEXITSTATUS(status);
}

} // namespace

int run_guarded(const RunOptions& o)
{
    if (o.command.empty())
        throw Error("no command given; expected `cordon run --policy FILE -- CMD [ARGS...]`");
    if (::geteuid() != 0)
        throw Error("cordon run needs root (it loads BPF programs and creates cgroups); run it "
                    "with sudo, and use --user to run the command unprivileged");

    // 1. The policy, whole: parse, resolve host names, compile. Nothing is touched before this.
    const auto ctx = make_context(o.user, o.workspace);
    auto parsed = policy::load_policy_file(o.policy_file, ctx);
    auto fail_policy = [](const policy::Diagnostics& errs) {
        for (const auto& d : errs)
            std::fprintf(stderr, "%s\n", d.str().c_str());
        return kRunSetupFailed;
    };
    if (!parsed.policy)
        return fail_policy(parsed.errors);
    policy::Policy& pol = *parsed.policy;
    if (o.mode)
        pol.mode = *o.mode;
    auto resolver = policy::system_resolver();
    policy::Diagnostics warnings;
    if (auto errs = policy::resolve_hosts(pol, *resolver, &warnings); !errs.empty())
        return fail_policy(errs);
    for (const auto& w : warnings)
        std::fprintf(stderr, "cordon: warning: %s\n", w.str().c_str());
    auto compiled = policy::compile(pol, 1);
    if (!compiled.compiled)
        return fail_policy(compiled.errors);

    std::optional<Identity> who;
    if (o.user)
        who = lookup_user(*o.user);

    // 2. Backend, cgroup, programs, maps: all in place before CMD exists.
    const auto backend = pick_backend(o.backend);
    const auto mount = agents::cgroup2_mount();
    const std::string name = o.name.value_or(pol.name + "-" + random_suffix());
    auto cg = agents::Cgroup::create(mount, name);
    bpf::Guard guard({.backend = backend,
                      .agent_level = cg.level(),
                      .net_attach_cgroup = mount.mount_point / agents::kSubtree});
    guard.load_policy(*compiled.compiled);
    guard.set_agent(cg.id(), policy::agent_state_for(pol, *compiled.compiled, 1));
    guard.protect_process(static_cast<std::uint32_t>(::getpid()));

    int keepalive = -1;
    const pid_t guardian = start_guardian(cg.path(), keepalive);
    guard.protect_process(static_cast<std::uint32_t>(guardian));

    EventSink sink(pol, name, o.events_file);
    events::Reader reader(guard.events_fd(), [&sink](const events::Event& e) { sink(e); });
    if (backend == CORDON_BACKEND_COMPAT && !who)
        std::fprintf(stderr, "cordon: warning: the compat backend has no tamper protection; "
                             "run the agent with --user so it cannot unload its guard\n");

    // 3. CMD, in the cgroup. Signals arrive through a signalfd so the loop sees them in order.
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGCHLD);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGHUP);
    ::sigprocmask(SIG_BLOCK, &mask, nullptr);
    const int sfd = ::signalfd(-1, &mask, SFD_CLOEXEC);
    int errpipe[2];
    if (sfd < 0 || ::pipe2(errpipe, O_CLOEXEC) != 0)
        throw Error("cannot set up signal handling: " + errno_text(errno));
    std::fflush(nullptr);
    const pid_t child = ::fork();
    if (child < 0)
        throw Error("cannot start the command: " + errno_text(errno));
    if (child == 0)
        child_exec(cg, who, o.workspace ? std::optional<std::string>(*ctx.workspace) : std::nullopt,
                   o.command, errpipe[1]);
    ::close(errpipe[1]);
    int child_err[2] = {0, 0};
    const bool exec_failed = ::read(errpipe[0], child_err, sizeof(child_err)) == sizeof(child_err);
    ::close(errpipe[0]);
    if (exec_failed) {
        static const char* stage[] = {"", "join the agent cgroup", "switch to the user",
                                      "enter the workspace", "execute"};
        std::fprintf(stderr, "cordon: cannot %s for %s: %s\n", stage[child_err[0] >= 1 && child_err[0] <= 4 ? child_err[0] : 4],
                     o.command[0].c_str(), errno_text(child_err[1]).c_str());
    }

    // 4. Until CMD ends: events, kill verdicts, signals.
    int status = 0;
    bool done = false;
    pollfd fds[2] = {{.fd = sfd, .events = POLLIN, .revents = 0},
                     {.fd = reader.fd(), .events = POLLIN, .revents = 0}};
    while (!done) {
        if (::poll(fds, 2, -1) < 0 && errno != EINTR)
            throw Error("waiting for events failed: " + errno_text(errno));
        reader.drain();
        if (sink.kill_requested) {
            cg.kill(); // the kernel already refuses every access; empty the cgroup now
            sink.kill_requested = false;
        }
        signalfd_siginfo si{};
        while (fds[0].revents && ::read(sfd, &si, sizeof(si)) == sizeof(si)) {
            if (si.ssi_signo == SIGCHLD)
                break;
            std::fprintf(stderr, "cordon: %s: stopping agent %s\n", strsignal(si.ssi_signo),
                         name.c_str());
            cg.kill();
            break;
        }
        int st = 0;
        if (::waitpid(child, &st, WNOHANG) == child) {
            status = st;
            done = true;
        }
    }

    // 5. CMD is gone: the agent ends with it. Report, then remove everything.
    cg.kill();
    reader.drain();
    const auto counters = guard.counters();
    if (counters[CORDON_CNT_RINGBUF_DROPS] > 0)
        std::fprintf(stderr, "cordon: warning: %llu events were lost because the ring buffer was "
                             "full (decisions were still enforced)\n",
                     static_cast<unsigned long long>(counters[CORDON_CNT_RINGBUF_DROPS]));
    if (reader.malformed() > 0)
        std::fprintf(stderr, "cordon: warning: %llu malformed event records were dropped\n",
                     static_cast<unsigned long long>(reader.malformed()));
    if (counters[CORDON_CNT_PATH_FAILED] > 0)
        std::fprintf(stderr, "cordon: warning: %llu accesses were denied because their path could "
                             "not be resolved\n",
                     static_cast<unsigned long long>(counters[CORDON_CNT_PATH_FAILED]));
    cg.remove();
    ::close(keepalive); // the guardian finds the cgroup gone and exits
    ::waitpid(guardian, nullptr, 0);
    ::close(sfd);
    return exec_failed ? 127 : exit_status(status);
}

} // namespace cordon::control
