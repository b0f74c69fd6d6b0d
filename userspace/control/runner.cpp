// SPDX-License-Identifier: Apache-2.0
#include "control/runner.h"

#include <fcntl.h>
#include <grp.h>
#include <linux/close_range.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <random>

#include <bpf/libbpf.h>
#include <fmt/format.h>

#include "agents/cgroup.h"
#include "agents/seccomp.h"
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
pid_t start_guardian(const agents::Cgroup& cg, int& keepalive_fd)
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
        for (int i = 0; i < 2000 && std::filesystem::exists(cg.path()); ++i) {
            try {
                cg.kill();
            } catch (const std::exception&) {
                // removed meanwhile, or not writable: the next round finds out
            }
            std::error_code ec;
            std::filesystem::remove(cg.path(), ec); // succeeds once the cgroup is empty
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

// cordon and its guardian are never the OOM killer's choice: an agent that exhausts memory must
// not end its guard that way (that kill passes no LSM hook). Returns the value cordon had, which
// the agent gets back (restore_oom_score), or nothing when cordon lacks CAP_SYS_RESOURCE (some
// containers): then the agent's score stays as it was, and the run goes on with a warning,
// because the guardian and cordon still end the agent if either of them is killed.
std::optional<std::string> shield_from_oom()
{
    std::string previous;
    std::ifstream("/proc/self/oom_score_adj") >> previous;
    const int fd = ::open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
    const bool ok = fd >= 0 && ::write(fd, "-1000", 5) == 5;
    if (fd >= 0)
        ::close(fd);
    if (!ok || previous.empty())
        return std::nullopt;
    return previous;
}

// In the agent's first process, before its capabilities go: the OOM score cordon had, so that
// the agent is not shielded too; with CAP_SYS_RESOURCE still held, this also raises the floor
// an agent could later lower its score to. Async-signal-safe. Returns 0 or an errno.
int restore_oom_score(const std::optional<std::string>& saved)
{
    if (!saved)
        return 0;
    const std::string& value = *saved;
    const int fd = ::open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return errno;
    const bool ok = ::write(fd, value.data(), value.size()) == static_cast<ssize_t>(value.size());
    const int err = errno;
    ::close(fd);
    return ok ? 0 : err;
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

// Stages of child_exec, reported with an errno on failure.
enum ChildStage {
    kOom = 1, kCore, kJoin, kSession, kSeccomp, kCaps, kUser, kWorkdir, kFds, kExec, kStages
};
constexpr const char* kStageText[kStages] = {
    "",
    "restore its OOM score",
    "limit core dumps",
    "join the agent cgroup",
    "start a new session",
    "install the seccomp layer",
    "drop capabilities",
    "switch to the user",
    "enter the workspace",
    "mark inherited descriptors close-on-exec",
    "execute",
};

// In the child: take back cordon's OOM score, limit core dumps, join the agent, leave cordon's
// session, install the seccomp layer, drop capabilities, become the user, close every inherited
// descriptor but 0-2, exec. Reports (stage, errno) on `err_fd` on failure, and never runs the
// command then (fail closed).
[[noreturn]] void child_exec(const agents::Cgroup& cg, const agents::SeccompLayer& seccomp,
                             std::uint64_t refused_caps,
                             const std::optional<std::string>& oom_score,
                             const std::optional<Identity>& who,
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
    // cordon ignores these (run_guarded); an ignored signal would survive exec.
    for (int sig : {SIGPIPE, SIGTSTP, SIGTTIN, SIGTTOU})
        ::signal(sig, SIG_DFL);
    // Before it is an agent, whose files rules may refuse writes to /proc.
    if (int err = restore_oom_score(oom_score); err != 0) {
        errno = err;
        fail(kOom);
    }
    // A crash must not start the host's core-dump helper, which runs as root outside the agent.
    if (int err = agents::limit_core_dumps(); err != 0) {
        errno = err;
        fail(kCore);
    }
    // From here on this process is the agent: enforcement is already attached.
    {
        const int fd = ::open((cg.path() / "cgroup.procs").c_str(), O_WRONLY | O_CLOEXEC);
        if (fd < 0 || ::write(fd, "0", 1) != 1)
            fail(kJoin);
        ::close(fd);
    }
    // Its own session: no controlling terminal, so it cannot inject input into cordon's
    // terminal (TIOCSTI) or stop cordon with job-control signals.
    if (::setsid() < 0)
        fail(kSession);
    // Before the capabilities go and before the user switch: without no_new_privs, loading a
    // filter needs CAP_SYS_ADMIN. The filter leaves prctl and capset alone.
    if (int err = seccomp.install(); err != 0) {
        errno = err;
        fail(kSeccomp);
    }
    // An agent run as root keeps only the capabilities ordinary work needs (docs/enforcement.md).
    if (int err = agents::drop_capabilities(refused_caps); err != 0) {
        errno = err;
        fail(kCaps);
    }
    if (who) {
        // As `sudo -u`: the user's groups, gid, uid, and a reset environment.
        if (::initgroups(who->name.c_str(), who->gid) != 0 || ::setgid(who->gid) != 0 ||
            ::setuid(who->uid) != 0)
            fail(kUser);
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
        fail(kWorkdir);
    // Nothing of cordon's reaches the agent: not the events file, not a BPF object, not a pipe.
    if (::syscall(SYS_close_range, 3U, ~0U, CLOSE_RANGE_CLOEXEC) != 0)
        fail(kFds);
    std::vector<char*> argv;
    for (const auto& a : command)
        argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    ::execvp(argv[0], argv.data());
    fail(kExec);
    ::_exit(127); // fail() does not return; this tells the compiler
}

// cordon's lines on its stderr while an agent runs. The agent shares that stderr, so two things
// hold here: a line never blocks cordon (the agent may stop the terminal with tcflow(TCOOFF) or
// fill a pipe), and the agent cannot pass its own lines off as cordon's.
//  - A terminal or pipe is written through a second open file description (reopened through
//    /proc, so O_NONBLOCK is ours alone), a socket with MSG_DONTWAIT; a line that would block is
//    dropped and counted, and the count is reported at the end. The --events file has every
//    event regardless. A regular file never blocks and keeps the one shared offset.
//  - Every line carries a tag drawn at random for this run, printed before the agent starts.
//    An agent cannot read back what was written to a terminal, so it cannot learn the tag.
class Terminal {
public:
    Terminal() : tag_(random_suffix())
    {
        struct stat st {};
        if (::fstat(2, &st) == 0 && (S_ISCHR(st.st_mode) || S_ISFIFO(st.st_mode)))
            fd_ = ::open("/proc/self/fd/2", O_WRONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
        socket_ = S_ISSOCK(st.st_mode);
        if (fd_ < 0)
            fd_ = ::fcntl(2, F_DUPFD_CLOEXEC, 3);
    }
    ~Terminal()
    {
        if (fd_ >= 0)
            ::close(fd_);
    }
    Terminal(const Terminal&) = delete;
    Terminal& operator=(const Terminal&) = delete;

    void line(const std::string& text)
    {
        const std::string l = "cordon[" + tag_ + "]: " + text + "\n";
        const ssize_t n = socket_ ? ::send(fd_, l.data(), l.size(), MSG_DONTWAIT | MSG_NOSIGNAL)
                                  : ::write(fd_, l.data(), l.size());
        if (n != static_cast<ssize_t>(l.size()))
            ++dropped_;
    }
    const std::string& tag() const { return tag_; }
    std::uint64_t dropped() const { return dropped_; }

private:
    std::string tag_;
    int fd_ = -1;
    bool socket_ = false;
    std::uint64_t dropped_ = 0;
};

class EventSink {
public:
    EventSink(const policy::Policy& p, std::string agent, const std::optional<std::string>& file,
              Terminal& term)
        : policy_(p), agent_(std::move(agent)), term_(term)
    {
        if (file) {
            out_ = std::fopen(file->c_str(), "ae"); // close-on-exec: never the agent's
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
            term_.line(events::event_line(e, namer));
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
    Terminal& term_;
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
    // A closed reader of cordon's stderr must cost a line, not cordon's life (and the guard's).
    // The agent shares cordon's terminal and may rewrite its settings (tcsetattr) so that the
    // user's next key sends cordon a stop signal: cordon cannot be stopped from its terminal.
    for (int sig : {SIGPIPE, SIGTSTP, SIGTTIN, SIGTTOU})
        ::signal(sig, SIG_IGN);

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
    if (auto checked = policy::compile(pol, 1); !checked.compiled) // errors before any change
        return fail_policy(checked.errors);

    std::optional<Identity> who;
    if (o.user)
        who = lookup_user(*o.user);

    // 2. Backend, cgroup, programs, maps: all in place before CMD exists.
    const auto backend = pick_backend(o.backend);
    const auto mount = agents::cgroup2_mount();
    const std::string name = o.name.value_or(pol.name + "-" + random_suffix());
    auto cg = agents::Cgroup::create(mount, name);
    bpf::Guard guard({.backend = backend,
                      .net_attach_cgroup = mount.mount_point,
                      .pin_dir = std::nullopt});
    auto compiled = policy::compile(pol, guard.allocate_policy_id());
    if (!compiled.compiled)
        return fail_policy(compiled.errors);
    guard.load_policy(*compiled.compiled);
    guard.set_agent(cg.id(), policy::agent_state_for(pol, *compiled.compiled,
                                                     guard.allocate_agent_id(), cg.level()));
    guard.protect_process(static_cast<std::uint32_t>(::getpid()));
    const auto oom_score = shield_from_oom(); // the guardian inherits the shield

    int keepalive = -1;
    pid_t guardian = start_guardian(cg, keepalive);
    guard.protect_process(static_cast<std::uint32_t>(guardian));

    const agents::SeccompLayer seccomp(pol, backend);
    Terminal term;
    EventSink sink(pol, name, o.events_file, term);
    events::Reader reader(guard.events_fd(), [&sink](const events::Event& e) { sink(e); });
    if (backend == CORDON_BACKEND_COMPAT && !who)
        term.line("warning: the compat backend has no tamper protection; run the agent with "
                  "--user so it cannot unload its guard");
    if (!oom_score)
        term.line("warning: cannot shield cordon from the OOM killer (no CAP_SYS_RESOURCE); if "
                  "it or its guardian is killed, the agent is killed too");
    term.line(fmt::format("guarding agent {} on the {} backend; cordon's lines carry this tag "
                          "[{}]",
                          name, backend == CORDON_BACKEND_LSM ? "lsm" : "compat", term.tag()));

    // 3. CMD, in the cgroup. Signals arrive through a signalfd so the loop sees them in order.
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGCHLD);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGHUP);
    sigaddset(&mask, SIGQUIT); // as SIGTERM: the agent is stopped, not left behind
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
        child_exec(cg, seccomp, compiled.compiled->settings.refused_caps, oom_score, who,
                   o.workspace ? std::optional<std::string>(*ctx.workspace) : std::nullopt,
                   o.command, errpipe[1]);
    ::close(errpipe[1]);
    int child_err[2] = {0, 0};
    const bool exec_failed = ::read(errpipe[0], child_err, sizeof(child_err)) == sizeof(child_err);
    ::close(errpipe[0]);
    if (exec_failed) {
        const int st = child_err[0] >= 1 && child_err[0] < kStages ? child_err[0] : kExec;
        term.line(fmt::format("cannot {} for {}: {}", kStageText[st], o.command[0],
                              errno_text(child_err[1])));
    }

    // 4. Until CMD ends: events, kill verdicts, signals. A kill verdict is carried out from the
    // agent's kill flag in the kernel, polled here, so it does not depend on its event being
    // read: an agent that floods the ring buffer (the KILL record among those lost) still dies.
    // Nothing in this loop waits on the agent: terminal lines never block (see Terminal).
    constexpr int kKillPollMs = 10;
    int status = 0;
    bool done = false;
    bool killed = false;
    // LSM programs run from ftrace trampolines: with kernel.ftrace_enabled at 0 none of them
    // runs. An agent cannot write it (tamper protection), but whoever does switches the guard
    // off, so the agent is stopped then (fails closed).
    const int ftrace_fd = backend == CORDON_BACKEND_LSM
                              ? ::open("/proc/sys/kernel/ftrace_enabled", O_RDONLY | O_CLOEXEC)
                              : -1;
    const auto guard_switched_off = [&] {
        char c = '1';
        return ftrace_fd >= 0 && ::pread(ftrace_fd, &c, 1, 0) == 1 && c == '0';
    };
    const auto kill_if_flagged = [&] {
        if (killed)
            return;
        const auto st = guard.agent(cg.id());
        const bool off = guard_switched_off();
        if (sink.kill_requested || !st || (st->flags & CORDON_AGENT_F_KILLED) || off) {
            if (off)
                term.line(fmt::format("kernel.ftrace_enabled is 0, so the kernel runs none of "
                                      "cordon's LSM programs; stopping agent {}",
                                      name));
            cg.kill(); // the kernel already refuses every access; empty the cgroup now
            killed = true;
        }
    };
    pollfd fds[2] = {{.fd = sfd, .events = POLLIN, .revents = 0},
                     {.fd = reader.fd(), .events = POLLIN, .revents = 0}};
    while (!done) {
        if (::poll(fds, 2, kKillPollMs) < 0 && errno != EINTR)
            throw Error("waiting for events failed: " + errno_text(errno));
        kill_if_flagged();
        reader.drain();
        kill_if_flagged();
        signalfd_siginfo si{};
        while (fds[0].revents && ::read(sfd, &si, sizeof(si)) == sizeof(si)) {
            if (si.ssi_signo == SIGCHLD)
                break;
            term.line(fmt::format("{}: stopping agent {}", strsignal(si.ssi_signo), name));
            cg.kill();
            break;
        }
        int st = 0;
        if (::waitpid(child, &st, WNOHANG) == child) {
            status = st;
            done = true;
        }
        // Either of cordon and its guardian outlives the other only to end the agent.
        if (guardian > 0 && ::waitpid(guardian, &st, WNOHANG) == guardian) {
            guardian = -1;
            if (!done) {
                term.line(fmt::format("the guardian died (status {}); stopping agent {}",
                                      exit_status(st), name));
                cg.kill();
            }
        }
    }

    // 5. CMD is gone: the agent ends with it. Report, then remove everything.
    cg.kill();
    reader.drain();
    const auto counters = guard.counters();
    // The agent is gone: these lines may block again, so that none of them is lost.
    const auto report = [&](std::uint64_t n, const char* what) {
        if (n > 0)
            std::fprintf(stderr, "cordon[%s]: warning: %llu %s\n", term.tag().c_str(),
                         static_cast<unsigned long long>(n), what);
    };
    report(counters[CORDON_CNT_RINGBUF_DROPS],
           "events were lost because the ring buffer was full (decisions were still enforced)");
    report(reader.malformed(), "malformed event records were dropped");
    report(counters[CORDON_CNT_PATH_FAILED],
           "accesses were denied because their path could not be resolved");
    report(term.dropped(), "lines were not shown because the terminal did not take them in time "
                           "(the --events file has every event)");
    cg.remove();
    if (ftrace_fd >= 0)
        ::close(ftrace_fd);
    ::close(keepalive); // the guardian finds the cgroup gone and exits
    if (guardian > 0)
        ::waitpid(guardian, nullptr, 0);
    ::close(sfd);
    return exec_failed ? 127 : exit_status(status);
}

} // namespace cordon::control
