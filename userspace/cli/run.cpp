// SPDX-License-Identifier: Apache-2.0
#include "cli/run.h"

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
#include "control/supervisor.h"
#include "dns/gateway.h"
#include "agents/seccomp.h"
#include "bpf/features.h"
#include "bpf/guard.h"
#include "common/backend.h"
#include "common/cpu_share.h"
#include "common/error.h"
#include "cli/policy_cmd.h"
#include "events/format.h"
#include "events/reader.h"
#include "policy/compiler.h"
#include "policy/parser.h"

namespace cordon::cli {
using namespace cordon::control;
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

    /// A record of the DNS gateway: refusals and failures on the terminal, all in the file.
    void dns(const dns::Event& e)
    {
        if (e.outcome != "allowed" && e.outcome != "answered")
            term_.line(dns::event_line(e));
        if (out_) {
            std::string rule;
            if (e.rule_id && e.rule_id < policy_->rules.size())
                rule = fmt::format("{}:{}", policy_->file, policy_->rules[e.rule_id].pos.line);
            std::fprintf(out_, "%s\n", dns::event_json(e, agent_, rule).dump().c_str());
            std::fflush(out_);
        }
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

// What the supervisor did, as lines on the terminal.
void report(Terminal& term, const std::vector<SupervisorAction>& done, const std::string& how_thaw)
{
    using W = SupervisorAction::What;
    for (const auto& a : done) {
        switch (a.what) {
        case W::GuardOff:
            term.line(fmt::format("kernel.ftrace_enabled is 0, so the kernel runs none of cordon's "
                                  "programs; stopping agent {}",
                                  a.agent));
            break;
        case W::Kill:
            term.line(fmt::format("agent {} is killed; stopping every process in it", a.agent));
            break;
        case W::FreezeRule:
            term.line(fmt::format("agent {} hit a freeze rule and is frozen for review; {}",
                                  a.agent, how_thaw));
            break;
        case W::Refreeze:
            term.line(fmt::format("agent {} was thawed outside cordon; frozen again", a.agent));
            break;
        }
        if (!a.error.empty())
            term.line(fmt::format("agent {}: {}", a.agent, a.error));
    }
}

void warn_dropped_lines(const Terminal& term)
{
    if (term.dropped() > 0)
        std::fprintf(stderr, "cordon[%s]: warning: %llu lines were not shown because the terminal "
                     "did not take them in time\n",
                     term.tag().c_str(), static_cast<unsigned long long>(term.dropped()));
}

// The agent cordond made for this run, as its reply to `run` describes it.
struct DaemonAgent {
    std::string name;
    std::filesystem::path cgroup;
    std::uint64_t cgroup_id = 0;
    std::filesystem::path pin_dir;
    cordon_backend backend = CORDON_BACKEND_COMPAT;
    std::string backend_text;
};

DaemonAgent register_with_daemon(const RunOptions& o, api::Client& client, const std::string& text,
                                 const policy::Context& ctx)
{
    api::Request req = api::request(api::Op::Run);
    req.name = o.name;
    req.policy = api::PolicyText{.file = o.policy_file, .text = text};
    req.user = ctx.user;
    req.home = ctx.home;
    req.workspace = ctx.workspace;
    if (o.mode)
        req.mode = *o.mode == policy::Mode::Audit ? "audit" : "enforce";
    const auto reply = client.call(req);
    DaemonAgent d;
    d.name = reply.at("agent").at("name").get<std::string>();
    d.cgroup = reply.at("agent").at("cgroup").get<std::string>();
    d.cgroup_id = reply.at("agent").at("key").get<std::uint64_t>();
    d.pin_dir = reply.at("pin_dir").get<std::string>();
    d.backend_text = reply.at("backend").get<std::string>();
    d.backend = backend_from_name(d.backend_text).value_or(CORDON_BACKEND_COMPAT);
    for (const auto& w : reply.at("warnings"))
        std::fprintf(stderr, "cordon: warning: %s\n", w.get<std::string>().c_str());
    return d;
}

// The part of a daemon run that outlives the daemon: without it, this process carries out the
// agent's kill flag and freeze marks (and the ftrace switch) from the pinned maps, through the
// same supervisor as cordond (fails closed: a pinned set it cannot read ends the agent).
class Orphaned {
public:
    Orphaned(const DaemonAgent& d, Terminal& term) : d_(d), term_(term), sup_(d.backend) {}
    bool active() const { return active_; }
    void begin()
    {
        active_ = true;
        term_.line(fmt::format("cordond went away; agent {} stays enforced by its pinned programs "
                               "and ends with its command",
                               d_.name));
        try {
            pinned_ = bpf::Guard::adopt(d_.pin_dir);
        } catch (const Error& e) {
            term_.line(fmt::format("cannot read the pinned maps ({}); stopping agent {}", e.what(),
                                   d_.name));
            agents::kill_cgroup(d_.cgroup); // nobody would carry out its kill verdicts
        }
    }
    void supervise()
    {
        if (pinned_)
            report(term_, sup_.pass(pinned_->agents(), {{d_.name, d_.cgroup, d_.cgroup_id, 0}}),
                   "`cordon thaw` needs cordond; Ctrl-C ends it");
    }

private:
    const DaemonAgent& d_;
    Terminal& term_;
    Supervisor sup_;
    std::unique_ptr<bpf::Guard> pinned_;
    bool active_ = false;
};

// Shows what cordond streams on this connection: event lines, and every event in --events.
void show_daemon_messages(api::Client& client, Terminal& term, FILE* events_out)
{
    while (auto msg = client.next(0)) {
        if (msg->contains("line"))
            term.line(msg->at("line").get<std::string>());
        if (events_out && msg->contains("event")) {
            std::fprintf(events_out, "%s\n", msg->at("event").dump().c_str());
            std::fflush(events_out);
        }
    }
}

// Until CMD ends: the daemon's messages, signals, and (once the daemon is gone) supervision.
int wait_with_daemon(const DaemonAgent& d, api::Client& client, Terminal& term, FILE* events_out,
                     int sfd, pid_t child, bool realtime)
{
    Orphaned orphan(d, term);
    CpuShare share(realtime);
    for (;;) {
        pollfd fds[2] = {{.fd = sfd, .events = POLLIN, .revents = 0},
                         {.fd = orphan.active() ? -1 : client.fd(), .events = POLLIN, .revents = 0}};
        share.before_wait();
        const int polled = ::poll(fds, 2, orphan.active() ? 10 : 100);
        if (polled < 0 && errno != EINTR)
            throw Error("waiting for events failed: " + errno_text(errno));
        try {
            if (!orphan.active() && fds[1].revents)
                show_daemon_messages(client, term, events_out);
        } catch (const Error&) {
            orphan.begin();
        }
        orphan.supervise();
        signalfd_siginfo si{};
        if (fds[0].revents && ::read(sfd, &si, sizeof(si)) == sizeof(si) &&
            si.ssi_signo != SIGCHLD) {
            const auto sig = static_cast<int>(si.ssi_signo);
            if (sig == SIGUSR1 || sig == SIGUSR2) {
                term.line(fmt::format("{}: agent {} belongs to cordond; use `cordon policy apply "
                                      "{} FILE` or `cordon freeze|thaw {}`",
                                      strsignal(sig), d.name, d.name, d.name));
            } else {
                term.line(fmt::format("{}: stopping agent {}", strsignal(sig), d.name));
                agents::kill_cgroup(d.cgroup);
            }
        }
        int st = 0;
        if (::waitpid(child, &st, WNOHANG) == child) {
            if (orphan.active()) {
                // Without a daemon, the cgroup is emptied and removed here and the next daemon
                // forgets the agent. (With one, closing the connection tells it so.)
                try {
                    agents::kill_cgroup(d.cgroup);
                } catch (const Error&) {
                }
                for (int i = 0; i < 2000 && ::rmdir(d.cgroup.c_str()) != 0 && errno == EBUSY; ++i)
                    ::usleep(5000);
            }
            return st;
        }
    }
}

// `cordon run` with cordond: the daemon owns the agent (cgroup, maps, kill verdicts), this
// process launches CMD and shows the agent's events, which the daemon streams on this
// connection. If this process dies, the daemon ends the agent (the connection closes); if the
// daemon dies, the agent stays enforced by its pinned programs and this process ends it with CMD.
int run_through_daemon(const RunOptions& o, api::Client& client, const PreparedPolicy& prepared,
                       const std::string& text, const policy::Context& ctx,
                       const std::optional<agents::Identity>& who, bool realtime)
{
    const DaemonAgent d = register_with_daemon(o, client, text, ctx);
    const agents::SeccompLayer seccomp(prepared.policy, d.backend);
    Terminal term;
    FILE* events_out = nullptr;
    if (o.events_file) {
        events_out = std::fopen(o.events_file->c_str(), "ae");
        if (!events_out)
            throw Error("cannot open --events file " + *o.events_file + ": " + errno_text(errno));
    }
    if (d.backend == CORDON_BACKEND_COMPAT && !who)
        term.line("warning: the compat backend has no tamper protection; run the agent with "
                  "--user so it cannot unload its guard");
    term.line(fmt::format("guarding agent {} on the {} backend through cordond; cordon's lines "
                          "carry this tag [{}]",
                          d.name, d.backend_text, term.tag()));
    refuse_if_ftrace_off(d.backend); // also opens the knob while no agent runs yet
    const int sfd = signal_fd();
    bool exec_failed = false;
    const pid_t child =
        launch(o, d.cgroup, seccomp, prepared.policy, std::nullopt, who, ctx, term, exec_failed);
    if (o.detach && !exec_failed) {
        client.call(api::request(api::Op::Release));
        std::printf("%s\n", d.name.c_str());
        std::fflush(stdout);
        return 0;
    }
    const int status = wait_with_daemon(d, client, term, events_out, sfd, child, realtime);
    if (events_out)
        std::fclose(events_out);
    ::close(sfd);
    warn_dropped_lines(term);
    return exec_failed ? 127 : exit_status(status);
}

// The policy file, whole: read, parse, resolve host names, compile; nothing is touched before
// this. Prints every diagnostic and returns nothing when it is not valid.
std::optional<PreparedPolicy> prepare_run_policy(const RunOptions& o, const policy::Context& ctx,
                                                 std::string& text)
{
    policy::Diagnostics read_errors;
    const auto read = policy::read_policy_file(o.policy_file, read_errors);
    if (!read) {
        for (const auto& d : read_errors)
            std::fprintf(stderr, "%s\n", d.str().c_str());
        return std::nullopt;
    }
    text = *read;
    try {
        auto resolver = policy::system_resolver();
        auto prepared = prepare_policy(text, o.policy_file, ctx, o.mode, *resolver);
        for (const auto& w : prepared.warnings)
            std::fprintf(stderr, "cordon: warning: %s\n", w.c_str());
        return prepared;
    } catch (const Error& e) {
        std::fprintf(stderr, "%s\n", e.what());
        return std::nullopt;
    }
}

// The embedded controller's DNS gateway (dns/gateway.h): the agent's lookups go to it.
std::unique_ptr<dns::Gateway> start_gateway(bpf::Guard& g, const std::vector<std::string>& given,
                                            Terminal& term)
{
    std::string why;
    const auto ups = dns::upstreams(given, "/etc/resolv.conf", why);
    if (ups.empty())
        term.line("warning: " + why + "; the agent's lookups fail (SERVFAIL); give "
                  "--dns-upstream ADDR");
    return std::make_unique<dns::Gateway>(
        g, dns::GatewayOptions{.upstreams = ups, .timeout_ms = 2000, .per_agent_inflight = 32,
                               .max_inflight = 1024, .port = 0});
}

// An embedded run: this process is the controller, with a guardian outside the agent.
class Embedded {
public:
    Embedded(const RunOptions& o, const PreparedPolicy& prepared, const policy::Context& ctx);
    ~Embedded();
    Embedded(const Embedded&) = delete;
    Embedded& operator=(const Embedded&) = delete;
    int run(const std::optional<agents::Identity>& who, bool realtime);

private:
    void supervise();
    void operator_signal(int sig);
    bool wait_for_command(int sfd, bool signalled, pid_t child, int& status);
    void report_losses(const events::Reader& reader);

    const RunOptions& o_;
    const PreparedPolicy& prepared_;
    const policy::Context& ctx_;
    Controller ctl_;
    std::string name_;
    std::uint64_t cgroup_id_ = 0;
    std::filesystem::path cgroup_;
    Supervisor sup_;
    Terminal term_;
    std::optional<std::string> oom_score_;
    int keepalive_ = -1;
    pid_t guardian_ = -1;
    std::optional<PreparedPolicy> applied_; // the policy file as applied again (SIGUSR1)
    std::unique_ptr<EventSink> sink_;
    std::unique_ptr<dns::Gateway> gateway_; // the agent's DNS, from before CMD starts
};

Embedded::Embedded(const RunOptions& o, const PreparedPolicy& prepared, const policy::Context& ctx)
    : o_(o), prepared_(prepared), ctx_(ctx),
      ctl_({.backend = o.backend, .pin_dir = std::nullopt, .registry_dir = std::nullopt,
            .ringbuf_bytes = 0, .durable_dir = std::nullopt}),
      name_(ctl_.add_agent({.name = o.name, .cgroup = {}, .owner_pid = std::nullopt, .wait = false,
                            .killed = false},
                           prepared)
                .name),
      cgroup_id_(ctl_.find(name_)->key), cgroup_(ctl_.cgroup(name_).path()),
      sup_(ctl_.guard().backend())
{
    sink_ = std::make_unique<EventSink>(prepared.policy, name_, o.events_file, term_);
    auto& guard = ctl_.guard();
    guard.protect_process(static_cast<std::uint32_t>(::getpid()));
    oom_score_ = agents::shield_from_oom(); // the guardian inherits the shield
    guardian_ = agents::start_guardian(ctl_.cgroup(name_), keepalive_);
    guard.protect_process(static_cast<std::uint32_t>(guardian_));
    gateway_ = start_gateway(guard, o.dns_upstreams, term_);
}

Embedded::~Embedded()
{
    try {
        ctl_.remove_agent(name_);
    } catch (const Error& e) {
        std::fprintf(stderr, "cordon: %s\n", e.what());
    }
    ::close(keepalive_); // the guardian finds the cgroup gone and exits
    if (guardian_ > 0)
        ::waitpid(guardian_, nullptr, 0);
}

void Embedded::supervise()
{
    if (sink_->kill_requested)
        sup_.kill_requested(cgroup_id_);
    report(term_, sup_.pass(ctl_.guard().agents(), {{name_, cgroup_, cgroup_id_, 0}}),
           fmt::format("`kill -USR2 {}` thaws it, Ctrl-C ends it", ::getpid()));
}

// SIGUSR1: the policy file again, applied whole or not at all. SIGUSR2: freeze or thaw.
void Embedded::operator_signal(int sig)
{
    try {
        if (sig == SIGUSR1) {
            policy::Diagnostics errs;
            const auto again = policy::read_policy_file(o_.policy_file, errs);
            if (!again)
                throw Error(errs.empty() ? "cannot read " + o_.policy_file : errs[0].str());
            auto resolver = policy::system_resolver();
            auto next = prepare_policy(*again, o_.policy_file, ctx_, o_.mode, *resolver);
            const auto r = ctl_.apply_policy(name_, next);
            applied_ = std::move(next);
            sink_->set_policy(applied_->policy);
            term_.line(fmt::format("applied {} again to agent {} (policy {} -> {})",
                                   o_.policy_file, name_, r.old_policy, r.new_policy));
        } else if (ctl_.frozen(*ctl_.find(name_))) {
            ctl_.thaw(name_);
            sup_.thawed(cgroup_id_);
            term_.line(fmt::format("agent {} thawed", name_));
        } else {
            ctl_.freeze(name_);
            term_.line(fmt::format("agent {} frozen; `kill -USR2 {}` thaws it", name_, ::getpid()));
        }
    } catch (const Error& e) {
        term_.line(fmt::format("{}: {}; nothing was changed", strsignal(sig), e.what()));
    }
}

// One pass after a poll: signals (when the signalfd is readable: it blocks), then whether CMD
// (or the guardian) ended. True when CMD did.
bool Embedded::wait_for_command(int sfd, bool signalled, pid_t child, int& status)
{
    signalfd_siginfo si{};
    while (signalled && ::read(sfd, &si, sizeof(si)) == sizeof(si)) {
        if (si.ssi_signo == SIGCHLD)
            break;
        if (si.ssi_signo == SIGUSR1 || si.ssi_signo == SIGUSR2) {
            operator_signal(static_cast<int>(si.ssi_signo));
            break;
        }
        term_.line(fmt::format("{}: stopping agent {}", strsignal(si.ssi_signo), name_));
        ctl_.kill(name_); // the kill switch: refused everything from the flag on, then emptied
        break;
    }
    int st = 0;
    const bool done = ::waitpid(child, &st, WNOHANG) == child;
    if (done)
        status = st;
    // Either of cordon and its guardian outlives the other only to end the agent.
    if (guardian_ > 0 && ::waitpid(guardian_, &st, WNOHANG) == guardian_) {
        guardian_ = -1;
        if (!done) {
            term_.line(fmt::format("the guardian died (status {}); stopping agent {}",
                                   exit_status(st), name_));
            agents::kill_cgroup(cgroup_);
        }
    }
    return done;
}

void Embedded::report_losses(const events::Reader& reader)
{
    const auto counters = ctl_.guard().counters();
    // The agent is gone: these lines may block again, so that none of them is lost.
    const auto say = [&](std::uint64_t n, const char* what) {
        if (n > 0)
            std::fprintf(stderr, "cordon[%s]: warning: %llu %s\n", term_.tag().c_str(),
                         static_cast<unsigned long long>(n), what);
    };
    say(counters[CORDON_CNT_RINGBUF_DROPS],
        "events were lost because the ring buffer, or the agent's share of it, was full "
        "(decisions were still enforced)");
    say(reader.malformed(), "malformed event records were dropped");
    say(counters[CORDON_CNT_PATH_FAILED],
        "accesses were denied because their path could not be resolved");
    say(term_.dropped(), "lines were not shown because the terminal did not take them in time "
                         "(the --events file has every event)");
}

// Until CMD ends: events, kill verdicts, signals. A kill verdict is carried out from the agent's
// kill flag in the kernel, polled here, so it does not depend on its event being read: an agent
// that floods the ring buffer (the KILL record among those lost) still dies. Nothing in this
// loop waits on the agent: terminal lines never block (see Terminal).
int Embedded::run(const std::optional<agents::Identity>& who, bool realtime)
{
    const auto backend = ctl_.guard().backend();
    const agents::SeccompLayer seccomp(prepared_.policy, backend);
    events::Reader reader(ctl_.guard().events_fd(), ctl_.guard().event_shares_fd(),
                          [this](const events::Event& e) { (*sink_)(e); });
    if (backend == CORDON_BACKEND_COMPAT && !who)
        term_.line("warning: the compat backend has no tamper protection; run the agent with "
                   "--user so it cannot unload its guard");
    if (!oom_score_)
        term_.line("warning: cannot shield cordon from the OOM killer (no CAP_SYS_RESOURCE); if "
                   "it or its guardian is killed, the agent is killed too");
    term_.line(fmt::format("guarding agent {} on the {} backend (embedded: no cordond); cordon's "
                           "lines carry this tag [{}]",
                           name_, backend_name(backend), term_.tag()));
    refuse_if_ftrace_off(backend); // CMD never starts under a switched-off guard
    const int sfd = signal_fd();
    bool exec_failed = false;
    const pid_t child = launch(o_, cgroup_, seccomp, prepared_.policy, oom_score_, who, ctx_,
                               term_, exec_failed);
    constexpr int kKillPollMs = 10;
    // A bounded number per pass: an agent's flood of denials never holds this loop from
    // signals and kill or freeze flags (the rest is read on the next pass).
    constexpr std::size_t kEventsPerPass = 1024;
    int status = 0;
    pollfd fds[2] = {{.fd = sfd, .events = POLLIN, .revents = 0},
                     {.fd = reader.fd(), .events = POLLIN, .revents = 0}};
    CpuShare share(realtime);
    for (bool done = false; !done;) {
        share.before_wait();
        const int polled = ::poll(fds, 2, reader.more_pending() ? 0 : kKillPollMs);
        if (polled < 0 && errno != EINTR)
            throw Error("waiting for events failed: " + errno_text(errno));
        supervise();
        reader.drain(kEventsPerPass);
        for (const auto& e : gateway_->take_events())
            sink_->dns(e);
        supervise();
        done = wait_for_command(sfd, fds[0].revents != 0, child, status);
    }
    // CMD is gone: the agent ends with it. Report, then remove everything (the destructor).
    agents::kill_cgroup(cgroup_);
    reader.drain();
    report_losses(reader);
    ::close(sfd);
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
    const auto ctx = make_context(o.user, o.workspace);
    std::string text;
    const auto prepared = prepare_run_policy(o, ctx, text);
    if (!prepared)
        return kRunSetupFailed;
    std::optional<agents::Identity> who;
    if (o.user)
        who = agents::lookup_user(*o.user);
    // The agent never outruns its guard for CPU: this process (the loop that carries out kills,
    // and the guardian, which raises itself) runs above every agent process; CMD does not
    // inherit it. The loop reads the agent's records too, so it takes at most half of a CPU
    // (CpuShare), as cordond's loop does.
    const auto why = agents::raise_control_priority();
    const bool realtime = why.empty();
    if (!realtime)
        std::fprintf(stderr, "cordon: warning: %s\n", why.c_str());
    // With a daemon, the agent is registered with it; without one, this process is its
    // controller (embedded), guardian included.
    if (!o.embedded) {
        if (auto client = api::Client::connect(api::socket_path()))
            return run_through_daemon(o, *client, *prepared, text, ctx, who, realtime);
    }
    if (o.detach)
        throw Error("--detach needs cordond (no daemon listens on " + api::socket_path() +
                    "); start it with `systemctl start cordond` or `cordond &`");
    // Backend, cgroup, programs, maps: all in place before CMD exists.
    Embedded e(o, *prepared, ctx);
    return e.run(who, realtime);
}

} // namespace cordon::cli
