// SPDX-License-Identifier: Apache-2.0
#include "agents/launcher.h"

#include <fcntl.h>
#include <sched.h>
#include <grp.h>
#include <linux/close_range.h>
#include <pwd.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>

#include "common/error.h"

namespace cordon::agents {

namespace {

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

} // namespace

// A process outside the agent that kills and removes the agent cgroup when cordon goes away for
// any reason (a crash, SIGKILL): it waits for EOF on a pipe whose only writer is cordon. Fail
// closed: an agent never outlives its guard.
pid_t start_guardian(const Cgroup& cg, int& keepalive_fd)
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
        // Above every agent process, as cordon (the fork reset it): when cordon dies under an
        // agent's fork storm, its guardian must still get the CPU to end the storm. It sleeps
        // in read() and usleep(), so it never holds the CPU.
        (void)raise_control_priority();
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

Identity lookup_user(const std::string& user)
{
    const passwd* pw = ::getpwnam(user.c_str());
    if (!pw)
        throw Error("unknown user '" + user + "'; expected a user from /etc/passwd");
    return {pw->pw_uid, pw->pw_gid, pw->pw_name, pw->pw_dir,
            pw->pw_shell && *pw->pw_shell ? pw->pw_shell : "/bin/sh"};
}

const char* const kStageText[kStages] = {
    "",
    "restore its OOM score",
    "limit core dumps and real-time priority",
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
[[noreturn]] void child_exec(const std::filesystem::path& cgroup_dir, const SeccompLayer& seccomp,
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
    if (int err = limit_core_dumps(); err != 0) {
        errno = err;
        fail(kCore);
    }
    // From here on this process is the agent: enforcement is already attached.
    {
        const int fd = ::open((cgroup_dir / "cgroup.procs").c_str(), O_WRONLY | O_CLOEXEC);
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
    if (int err = drop_capabilities(refused_caps); err != 0) {
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


} // namespace cordon::agents
