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
#include "agents/launcher.h"
#include "api/client.h"
#include "control/controller.h"
#include "agents/seccomp.h"
#include "bpf/features.h"
#include "bpf/guard.h"
#include "common/backend.h"
#include "common/error.h"
#include "control/policy_cmd.h"
#include "events/format.h"
#include "events/reader.h"
#include "policy/compiler.h"
#include "policy/parser.h"

namespace cordon::control {
namespace {

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
        : policy_(&p), agent_(std::move(agent)), term_(term)
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
            if (id >= policy_->rules.size())
                return "";
            const auto& r = policy_->rules[id];
            return fmt::format("{}:{}", policy_->file, r.pos.line);
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

    /// After a policy apply: rules are named from the new policy.
    void set_policy(const policy::Policy& p) { policy_ = &p; }

    bool kill_requested = false;

private:
    const policy::Policy* policy_;
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

// LSM programs run from ftrace trampolines: with kernel.ftrace_enabled at 0 none of them runs.
// An agent cannot write it (tamper protection), but whoever does switches the guard off, so the
// agent is stopped then (fails closed). The knob is opened once, before any agent exists.
bool ftrace_switched_off()
{
    static const int fd = ::open("/proc/sys/kernel/ftrace_enabled", O_RDONLY | O_CLOEXEC);
    char c = '1';
    return fd >= 0 && ::pread(fd, &c, 1, 0) == 1 && c == '0';
}

// Trampolines that ftrace no longer calls guard nothing: refuse to start CMD rather than run it
// unguarded until the first poll.
void refuse_if_ftrace_off(cordon_backend backend)
{
    if (ftrace_switched_off() && uses_trampolines(backend))
        throw Error("kernel.ftrace_enabled is 0, so the " + std::string(backend_name(backend)) +
                    " backend's programs are never called; set it to 1 (sysctl "
                    "kernel.ftrace_enabled=1) or use --backend compat");
}

// Blocks SIGCHLD and the stop signals and returns a signalfd for them: the loops see them in
// order with everything else.
int signal_fd()
{
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGCHLD);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGHUP);
    sigaddset(&mask, SIGQUIT); // as SIGTERM: the agent is stopped, not left behind
    sigaddset(&mask, SIGUSR1); // embedded: apply the policy file again
    sigaddset(&mask, SIGUSR2); // embedded: freeze, or thaw
    ::sigprocmask(SIG_BLOCK, &mask, nullptr);
    const int sfd = ::signalfd(-1, &mask, SFD_CLOEXEC);
    if (sfd < 0)
        throw Error("cannot set up signal handling: " + errno_text(errno));
    return sfd;
}

// Forks CMD into the agent cgroup; returns its pid, and whether it got as far as exec.
pid_t launch(const RunOptions& o, const std::filesystem::path& cgroup_dir,
             const agents::SeccompLayer& seccomp, const policy::Policy& pol,
             const std::optional<std::string>& oom_score,
             const std::optional<agents::Identity>& who, const policy::Context& ctx,
             Terminal& term, bool& exec_failed)
{
    int errpipe[2];
    if (::pipe2(errpipe, O_CLOEXEC) != 0)
        throw Error("cannot start the command: " + errno_text(errno));
    std::fflush(nullptr);
    const pid_t child = ::fork();
    if (child < 0)
        throw Error("cannot start the command: " + errno_text(errno));
    if (child == 0)
        agents::child_exec(cgroup_dir, seccomp, policy::refused_capabilities(pol), oom_score, who,
                           o.workspace ? std::optional<std::string>(*ctx.workspace)
                                       : std::nullopt,
                           o.command, errpipe[1]);
    ::close(errpipe[1]);
    int child_err[2] = {0, 0};
    exec_failed = ::read(errpipe[0], child_err, sizeof(child_err)) == sizeof(child_err);
    ::close(errpipe[0]);
    if (exec_failed) {
        const int st = child_err[0] >= 1 && child_err[0] < agents::kStages ? child_err[0]
                                                                            : agents::kExec;
        term.line(fmt::format("cannot {} for {}: {}", agents::kStageText[st], o.command[0],
                              errno_text(child_err[1])));
    }
    return child;
}

// `cordon run` with cordond: the daemon owns the agent (cgroup, maps, kill verdicts), this
// process launches CMD and shows the agent's events, which the daemon streams on this
// connection. If this process dies, the daemon ends the agent (the connection closes); if the
// daemon dies, the agent stays enforced by its pinned programs and this process ends it with CMD.
int run_through_daemon(const RunOptions& o, api::Client& client, const PreparedPolicy& prepared,
                       const std::string& text, const policy::Context& ctx,
                       const std::optional<agents::Identity>& who)
{
    const policy::Policy& pol = prepared.policy;
    api::Request req = api::request(api::Op::Run);
    req.name = o.name;
    req.policy = api::PolicyText{.file = o.policy_file, .text = text};
    req.user = ctx.user;
    req.home = ctx.home;
    req.workspace = ctx.workspace;
    if (o.mode)
        req.mode = *o.mode == policy::Mode::Audit ? "audit" : "enforce";
    const auto reply = client.call(req);
    const std::string name = reply.at("agent").at("name").get<std::string>();
    const std::filesystem::path cgroup = reply.at("agent").at("cgroup").get<std::string>();
    const std::string backend_text = reply.at("backend").get<std::string>();
    const std::uint64_t cgroup_id = reply.at("agent").at("cgroup_id").get<std::uint64_t>();
    const std::filesystem::path pin_dir = reply.at("pin_dir").get<std::string>();
    const auto backend = backend_from_name(backend_text).value_or(CORDON_BACKEND_COMPAT);
    for (const auto& w : reply.at("warnings"))
        std::fprintf(stderr, "cordon: warning: %s\n", w.get<std::string>().c_str());

    const agents::SeccompLayer seccomp(pol, backend);
    Terminal term;
    FILE* events_out = nullptr;
    if (o.events_file) {
        events_out = std::fopen(o.events_file->c_str(), "ae");
        if (!events_out)
            throw Error("cannot open --events file " + *o.events_file + ": " + errno_text(errno));
    }
    if (backend == CORDON_BACKEND_COMPAT && !who)
        term.line("warning: the compat backend has no tamper protection; run the agent with "
                  "--user so it cannot unload its guard");
    term.line(fmt::format("guarding agent {} on the {} backend through cordond; cordon's lines "
                          "carry this tag [{}]",
                          name, backend_text, term.tag()));
    refuse_if_ftrace_off(backend); // also opens the knob while no agent runs yet
    const int sfd = signal_fd();
    bool exec_failed = false;
    const pid_t child = launch(o, cgroup, seccomp, pol, std::nullopt, who, ctx, term, exec_failed);
    if (o.detach && !exec_failed) {
        client.call(api::request(api::Op::Release));
        std::printf("%s\n", name.c_str());
        std::fflush(stdout);
        return 0;
    }

    bool daemon_gone = false;
    // Without the daemon, this process carries out the agent's kill flag (and, on lsm, the
    // ftrace switch), reading the pinned maps, as an embedded run does: fails closed.
    std::unique_ptr<bpf::Guard> pinned;
    bool killed = false;
    const auto kill_if_flagged = [&] {
        if (!pinned || killed)
            return;
        const auto a = pinned->agent(cgroup_id);
        const auto l = pinned->live(cgroup_id);
        const bool off = uses_trampolines(backend) && ftrace_switched_off();
        if (!a || !l || cordon_agent_killed(&*a, &*l) || off) {
            term.line(fmt::format("{}; stopping agent {}",
                                  off ? "kernel.ftrace_enabled is 0" : "the agent hit a kill rule",
                                  name));
            agents::kill_cgroup(cgroup);
            killed = true;
        }
    };
    int status = 0;
    for (bool done = false; !done;) {
        pollfd fds[2] = {{.fd = sfd, .events = POLLIN, .revents = 0},
                         {.fd = daemon_gone ? -1 : client.fd(), .events = POLLIN, .revents = 0}};
        if (::poll(fds, 2, daemon_gone ? 10 : 100) < 0 && errno != EINTR)
            throw Error("waiting for events failed: " + errno_text(errno));
        try {
            while (!daemon_gone && fds[1].revents) {
                auto msg = client.next(0);
                if (!msg)
                    break;
                if (msg->contains("line"))
                    term.line(msg->at("line").get<std::string>());
                if (events_out && msg->contains("event")) {
                    std::fprintf(events_out, "%s\n", msg->at("event").dump().c_str());
                    std::fflush(events_out);
                }
            }
        } catch (const Error&) {
            daemon_gone = true;
            term.line(fmt::format("cordond went away; agent {} stays enforced by its pinned "
                                  "programs and ends with its command",
                                  name));
            try {
                pinned = bpf::Guard::adopt(pin_dir);
            } catch (const Error& e) {
                term.line(fmt::format("cannot read the pinned maps ({}); stopping agent {}",
                                      e.what(), name));
                agents::kill_cgroup(cgroup); // nobody would carry out its kill verdicts
                killed = true;
            }
        }
        kill_if_flagged();
        signalfd_siginfo si{};
        if (fds[0].revents && ::read(sfd, &si, sizeof(si)) == sizeof(si) &&
            si.ssi_signo != SIGCHLD) {
            if (si.ssi_signo == SIGUSR1 || si.ssi_signo == SIGUSR2) {
                term.line(fmt::format("{}: agent {} belongs to cordond; use `cordon policy apply "
                                      "{} FILE` or `cordon freeze|thaw {}`",
                                      strsignal(static_cast<int>(si.ssi_signo)), name, name,
                                      name));
            } else {
                term.line(fmt::format("{}: stopping agent {}",
                                      strsignal(static_cast<int>(si.ssi_signo)), name));
                agents::kill_cgroup(cgroup);
            }
        }
        int st = 0;
        if (::waitpid(child, &st, WNOHANG) == child) {
            status = st;
            done = true;
        }
    }
    // CMD is gone: the agent ends with it. Closing the connection tells the daemon so; without
    // a daemon, the cgroup is emptied and removed here and the next daemon forgets the agent.
    if (daemon_gone) {
        try {
            agents::kill_cgroup(cgroup);
        } catch (const Error&) {
        }
        for (int i = 0; i < 2000 && ::rmdir(cgroup.c_str()) != 0 && errno == EBUSY; ++i)
            ::usleep(5000);
    }
    if (events_out)
        std::fclose(events_out);
    ::close(sfd);
    if (term.dropped() > 0)
        std::fprintf(stderr, "cordon[%s]: warning: %llu lines were not shown because the terminal "
                     "did not take them in time\n",
                     term.tag().c_str(), static_cast<unsigned long long>(term.dropped()));
    return exec_failed ? 127 : exit_status(status);
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

    // 1. The policy, whole: read, parse, resolve host names, compile. Nothing is touched before
    // this.
    const auto ctx = make_context(o.user, o.workspace);
    policy::Diagnostics read_errors;
    const auto text = policy::read_policy_file(o.policy_file, read_errors);
    if (!text) {
        for (const auto& d : read_errors)
            std::fprintf(stderr, "%s\n", d.str().c_str());
        return kRunSetupFailed;
    }
    std::optional<PreparedPolicy> prepared;
    try {
        auto resolver = policy::system_resolver();
        prepared.emplace(prepare_policy(*text, o.policy_file, ctx, o.mode, *resolver));
    } catch (const Error& e) {
        std::fprintf(stderr, "%s\n", e.what());
        return kRunSetupFailed;
    }
    for (const auto& w : prepared->warnings)
        std::fprintf(stderr, "cordon: warning: %s\n", w.c_str());
    const policy::Policy& pol = prepared->policy;

    std::optional<agents::Identity> who;
    if (o.user)
        who = agents::lookup_user(*o.user);

    // With a daemon, the agent is registered with it; without one, this process is its
    // controller (embedded), guardian included.
    if (!o.embedded) {
        if (auto client = api::Client::connect(api::socket_path()))
            return run_through_daemon(o, *client, *prepared, *text, ctx, who);
    }
    if (o.detach)
        throw Error("--detach needs cordond (no daemon listens on " + api::socket_path() +
                    "); start it with `systemctl start cordond` or `cordond &`");

    // 2. Backend, cgroup, programs, maps: all in place before CMD exists.
    Controller ctl({.backend = o.backend, .pin_dir = std::nullopt, .registry_dir = std::nullopt});
    auto& guard = ctl.guard();
    const auto backend = guard.backend();
    const std::string name =
        ctl.add_agent({.name = o.name, .cgroup = {}, .owner_pid = std::nullopt}, *prepared).name;
    const agents::Cgroup& cg = ctl.cgroup(name);
    guard.protect_process(static_cast<std::uint32_t>(::getpid()));
    const auto oom_score = agents::shield_from_oom(); // the guardian inherits the shield

    int keepalive = -1;
    pid_t guardian = agents::start_guardian(cg, keepalive);
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
    term.line(fmt::format("guarding agent {} on the {} backend (embedded: no cordond); cordon's "
                          "lines carry this tag "
                          "[{}]",
                          name, backend_name(backend), term.tag()));

    // 3. CMD, in the cgroup. Signals arrive through a signalfd so the loop sees them in order.
    refuse_if_ftrace_off(backend); // also opens the knob while no agent runs yet
    const int sfd = signal_fd();
    bool exec_failed = false;
    const pid_t child = launch(o, cg.path(), seccomp, pol, oom_score, who, ctx, term, exec_failed);

    // 4. Until CMD ends: events, kill verdicts, signals. A kill verdict is carried out from the
    // agent's kill flag in the kernel, polled here, so it does not depend on its event being
    // read: an agent that floods the ring buffer (the KILL record among those lost) still dies.
    // Nothing in this loop waits on the agent: terminal lines never block (see Terminal).
    constexpr int kKillPollMs = 10;
    constexpr std::size_t kEventsPerPass = 1024;
    int status = 0;
    bool done = false;
    bool killed = false;
    std::uint32_t frozen_epoch = ~0u; // thaw epoch whose freeze verdict was carried out
    std::optional<PreparedPolicy> applied; // the policy file as applied again (SIGUSR1)
    const auto guard_switched_off = [&] {
        return uses_trampolines(backend) && ftrace_switched_off();
    };
    const auto kill_if_flagged = [&] {
        if (killed)
            return;
        const auto a = guard.agent(cg.id());
        const auto l = guard.live(cg.id());
        const bool off = guard_switched_off();
        if (sink.kill_requested || !a || !l || cordon_agent_killed(&*a, &*l) || off) {
            if (off)
                term.line(fmt::format("kernel.ftrace_enabled is 0, so the kernel runs none of "
                                      "cordon's LSM programs; stopping agent {}",
                                      name));
            cg.kill(); // the kernel already refuses every access; empty the cgroup now
            killed = true;
        } else if (cordon_agent_frozen(&*a, &*l)) {
            // Frozen: the kernel refuses the agent everything already; stop it too, and again
            // if anyone outside cordon thaws its cgroup (only SIGUSR2 here ends a freeze).
            const bool by_rule = l->frozen_mark == a->thaw_epoch + 1;
            if (by_rule && frozen_epoch != a->thaw_epoch) {
                frozen_epoch = a->thaw_epoch;
                agents::freeze_cgroup(cg.path(), true);
                term.line(fmt::format("agent {} hit a freeze rule and is frozen for review; "
                                      "`kill -USR2 {}` thaws it, Ctrl-C ends it",
                                      name, ::getpid()));
            } else if (!agents::cgroup_freeze_requested(cg.path())) {
                agents::freeze_cgroup(cg.path(), true);
                term.line(fmt::format("agent {} was thawed outside cordon; frozen again", name));
            }
        }
    };
    // SIGUSR1: the policy file again, applied whole or not at all. SIGUSR2: freeze or thaw.
    const auto operator_signal = [&](int sig) {
        try {
            if (sig == SIGUSR1) {
                policy::Diagnostics errs;
                const auto again = policy::read_policy_file(o.policy_file, errs);
                if (!again)
                    throw Error(errs.empty() ? "cannot read " + o.policy_file : errs[0].str());
                auto resolver = policy::system_resolver();
                auto next = prepare_policy(*again, o.policy_file, ctx, o.mode, *resolver);
                const auto r = ctl.apply_policy(name, next);
                applied = std::move(next);
                sink.set_policy(applied->policy);
                term.line(fmt::format("applied {} again to agent {} (policy {} -> {})",
                                      o.policy_file, name, r.old_policy, r.new_policy));
            } else if (ctl.frozen(*ctl.find(name))) {
                ctl.thaw(name);
                term.line(fmt::format("agent {} thawed", name));
            } else {
                ctl.freeze(name);
                term.line(fmt::format("agent {} frozen; `kill -USR2 {}` thaws it", name,
                                      ::getpid()));
            }
        } catch (const Error& e) {
            term.line(fmt::format("{}: {}; nothing was changed", strsignal(sig), e.what()));
        }
    };
    pollfd fds[2] = {{.fd = sfd, .events = POLLIN, .revents = 0},
                     {.fd = reader.fd(), .events = POLLIN, .revents = 0}};
    while (!done) {
        if (::poll(fds, 2, reader.more_pending() ? 0 : kKillPollMs) < 0 && errno != EINTR)
            throw Error("waiting for events failed: " + errno_text(errno));
        kill_if_flagged();
        // A bounded number per pass: an agent's flood of denials never holds this loop from
        // signals and kill or freeze flags (the rest is read on the next pass).
        reader.drain(kEventsPerPass);
        kill_if_flagged();
        signalfd_siginfo si{};
        while (fds[0].revents && ::read(sfd, &si, sizeof(si)) == sizeof(si)) {
            if (si.ssi_signo == SIGCHLD)
                break;
            if (si.ssi_signo == SIGUSR1 || si.ssi_signo == SIGUSR2) {
                operator_signal(static_cast<int>(si.ssi_signo));
                break;
            }
            term.line(fmt::format("{}: stopping agent {}", strsignal(si.ssi_signo), name));
            ctl.kill(name); // the kill switch: refused everything from the flag on, then emptied
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
    ctl.remove_agent(name);
    ::close(keepalive); // the guardian finds the cgroup gone and exits
    if (guardian > 0)
        ::waitpid(guardian, nullptr, 0);
    ::close(sfd);
    return exec_failed ? 127 : exit_status(status);
}

} // namespace cordon::control
