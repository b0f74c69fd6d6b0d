// SPDX-License-Identifier: Apache-2.0
// Overhead of cordon on the three hot operations an agent makes: open+close, connect to a local
// listener, fork+exec of /bin/true. Each is measured in four configurations, interleaved in one
// run so that machine noise hits all of them alike:
//   absent    no cordon programs loaded
//   loaded    cordon loaded (the backend this kernel runs), the process in no agent
//   agent     the process is an agent whose policy has 1,000 path and 1,000 network rules
//   agent + seccomp   the same agent with the seccomp layer cordon run installs
// Prints medians over the repetitions and their ratios to "absent" as Markdown, plus each
// program's average run time from the kernel's BPF statistics (kernel.bpf_stats_enabled).
// A benchmark, not a test: it asserts nothing. Run as root: bench/run.sh.
#include <arpa/inet.h>
#include <fcntl.h>
#include <sched.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/mount.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fmt/format.h>

#include "agents/cgroup.h"
#include "agents/seccomp.h"
#include "bpf/features.h"
#include "bpf/guard.h"
#include "bpf/introspect.h"
#include "common/backend.h"
#include "common/error.h"
#include "daemon_util.h"
#include "kernel_test_util.h"
#include "live_control.h"
#include "policy/compiler.h"
#include "policy/parser.h"
#include "bpf/skeleton.h"
#include "tp_compare.skel.h"

namespace fs = std::filesystem;
using namespace cordon;

namespace cordon::bpf {
CORDON_SKELETON_OPS(tp_compare_bpf);
}

namespace {

constexpr int kReps = 11;
// Operations per sample, scaled by CORDON_BENCH_OPS_SCALE (percent).
int ops_scaled(int n)
{
    static const int pct = [] {
        const char* v = std::getenv("CORDON_BENCH_OPS_SCALE");
        return v && *v ? std::max(1, std::atoi(v)) : 100;
    }();
    return std::max(1, n * pct / 100);
}
const int kOpens = ops_scaled(20000);
const int kConnects = ops_scaled(2000);
const int kExecs = ops_scaled(300);

double now_ns()
{
    return std::chrono::duration<double, std::nano>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

double bench_open(const fs::path& file)
{
    const double t0 = now_ns();
    for (int i = 0; i < kOpens; ++i)
        ::close(::open(file.c_str(), O_RDONLY | O_CLOEXEC));
    return (now_ns() - t0) / kOpens;
}

double bench_connect(std::uint16_t port)
{
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    const double t0 = now_ns();
    for (int i = 0; i < kConnects; ++i) {
        const int s = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (::connect(s, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0)
            std::perror("connect");
        ::close(s);
    }
    return (now_ns() - t0) / kConnects;
}

double bench_exec()
{
    const double t0 = now_ns();
    for (int i = 0; i < kExecs; ++i) {
        const pid_t p = ::fork();
        if (p == 0) {
            char* const argv[] = {const_cast<char*>("true"), nullptr};
            ::execv("/bin/true", argv);
            ::_exit(127);
        }
        ::waitpid(p, nullptr, 0);
    }
    return (now_ns() - t0) / kExecs;
}

// getppid(): a syscall no cordon hook decides, to show what a syscall-exit hook costs the host.
double bench_plain_syscall()
{
    const int n = ops_scaled(200000);
    const double t0 = now_ns();
    for (int i = 0; i < n; ++i)
        (void)::syscall(SYS_getppid);
    return (now_ns() - t0) / n;
}

// Runs one measurement in a child (which joins `cgroup` and installs `seccomp` first, if
// given); returns ns per op. op: 0 open+close, 1 connect, 2 fork+exec, 3 getppid.
double measure(const std::optional<fs::path>& cgroup, int op, const fs::path& file,
               std::uint16_t port, const agents::SeccompLayer* seccomp = nullptr)
{
    int p[2];
    if (::pipe(p) != 0)
        return -1;
    const pid_t pid = ::fork();
    if (pid == 0) {
        // Same CPU for every measurement; the listener's accept thread runs on the other one.
        cpu_set_t one;
        CPU_ZERO(&one);
        CPU_SET(1, &one);
        ::sched_setaffinity(0, sizeof(one), &one);
        if (cgroup)
            std::ofstream(*cgroup / "cgroup.procs") << ::getpid() << std::flush;
        if (seccomp && seccomp->install() != 0)
            ::_exit(1);
        // One unmeasured pass first: under QEMU's TCG, loading and unloading programs rewrites
        // kernel text, which throws away translated code; the first pass after that pays for
        // translating it again, whichever configuration it measures.
        const auto once = [&] {
            return op == 0   ? bench_open(file)
                   : op == 1 ? bench_connect(port)
                   : op == 2 ? bench_exec()
                             : bench_plain_syscall();
        };
        (void)once();
        const double r = once();
        (void)!::write(p[1], &r, sizeof(r));
        ::_exit(0);
    }
    double r = -1;
    (void)!::read(p[0], &r, sizeof(r));
    ::waitpid(pid, nullptr, 0);
    ::close(p[0]);
    ::close(p[1]);
    return r;
}

double median(std::vector<double> v)
{
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}

// A policy of about 4n rules (n = 500: 1,000 path and 1,000 network rules).
std::string bench_policy(const fs::path& ws, int n = 500)
{
    std::string y = "apiVersion: cordon.dev/v1\nkind: AgentPolicy\nmetadata:\n  name: bench\n"
                    "spec:\n  exec:\n    default: deny\n    rules:\n"
                    "      - {path: /usr/bin/, action: allow}\n";
    for (int i = 0; i < n - 1; ++i)
        y += fmt::format("      - {{path: /opt/bench/tool{}, action: allow}}\n", i);
    y += "  files:\n    default: allow\n    rules:\n";
    y += fmt::format("      - {{path: \"{}/\", access: [read, write], action: allow}}\n", ws.string());
    for (int i = 0; i < n; ++i)
        y += fmt::format("      - {{path: /srv/bench/dir{}/, access: [write], action: deny}}\n", i);
    y += "  network:\n    default: deny\n    rules:\n"
         "      - {cidr: 127.0.0.0/8, action: allow}\n";
    for (int i = 0; i < 2 * n - 1; ++i)
        y += fmt::format("      - {{cidr: 10.{}.{}.0/24, ports: [443], protocol: tcp, action: allow}}\n",
                         i / 256, i % 256);
    return y;
}

struct ProgStat {
    std::uint64_t run_ns = 0, runs = 0;
};

std::map<std::string, ProgStat> prog_stats()
{
    std::map<std::string, ProgStat> out;
    for (const auto& o : bpf::loaded_cordon_objects())
        if (!o.is_map) {
            out[o.name].run_ns += o.run_ns;
            out[o.name].runs += o.run_cnt;
        }
    return out;
}

// The backends to measure: CORDON_BENCH_BACKENDS ("lsm,fmod_ret"), else the one this kernel
// runs. Each must be usable here.
std::vector<cordon_backend> bench_backends(bpf::Features& f, cordon_backend chosen)
{
    std::vector<cordon_backend> out;
    const char* env = std::getenv("CORDON_BENCH_BACKENDS");
    if (!env || !*env)
        return {chosen};
    std::string list = env;
    for (size_t pos = 0; pos <= list.size();) {
        const size_t comma = std::min(list.find(',', pos), list.size());
        const std::string name = list.substr(pos, comma - pos);
        pos = comma + 1;
        const auto b = backend_from_name(name);
        if (!b || !bpf::backend_usable(f, *b))
            throw Error("CORDON_BENCH_BACKENDS: backend '" + name + "' cannot run here");
        out.push_back(*b);
    }
    return out;
}

// Attaching and detaching programs leaves work to the kernel (RCU callbacks, freeing
// trampolines) that would otherwise land in the next measurement; on a one-CPU guest it can
// double it. CORDON_BENCH_SETTLE_MS (default 1000).
void settle()
{
    static const int ms = [] {
        const char* v = std::getenv("CORDON_BENCH_SETTLE_MS");
        return v && *v ? std::atoi(v) : 1000;
    }();
    std::this_thread::sleep_for(std::chrono::milliseconds(ms));
}

int env_int(const char* name, int fallback)
{
    const char* v = std::getenv(name);
    return v && *v ? std::atoi(v) : fallback;
}

// Where the decision for each measured operation is made, per backend: the program whose
// average run time is the per-decision cost.
const char* const kHookProgs[][3] = {
    /* lsm, fmod_ret */ {"file_guard_file", "exec_guard_bprm", "net_guard_conne"},
    /* compat */ {"file_guard_exit", "exec_guard_sche", "net_guard_conne"},
};
// compat where the per-syscall tracepoints are missing decides opens in this program instead.
constexpr const char* kCompatRawOpen = "file_guard_sys_";

// Every backend of `backends` side by side in one run: per repetition, the operations without
// cordon, then for each backend loaded (the process in no agent) and as an agent with 1,000 path
// and 1,000 network rules. Ratios are of medians to "absent" in the same run.
void backends_section(const std::vector<cordon_backend>& backends, const fs::path& ws,
                      const fs::path& file, std::uint16_t port, const agents::Cgroup2Mount& mount,
                      const agents::Cgroup& cg, int reps)
{
    const policy::Context ctx{.home = "/root", .workspace = ws.string(), .user = "root"};
    auto parsed = policy::parse_policy(bench_policy(ws), "bench.yaml", ctx);
    const char* ops[] = {"open+close", "connect (loopback)", "fork+exec /bin/true"};
    std::vector<double> absent[3];
    std::map<cordon_backend, std::array<std::vector<double>, 6>> got; // [op*2 + agent]
    std::map<cordon_backend, std::map<std::string, ProgStat>> stats;
    std::string old_stats;
    std::ifstream("/proc/sys/kernel/bpf_stats_enabled") >> old_stats;
    for (int rep = 0; rep < reps; ++rep) {
        for (int op = 0; op < 3; ++op)
            absent[op].push_back(measure(std::nullopt, op, file, port));
        for (auto b : backends) {
            std::optional<bpf::Guard> guard;
            guard.emplace(bpf::GuardOptions{.backend = b, .net_attach_cgroup = mount.mount_point,
                                            .pin_dir = std::nullopt});
            auto compiled = policy::compile(*parsed.policy, guard->allocate_policy_id());
            guard->load_policy(*compiled.compiled);
            testing::add_agent(*guard, cg, *parsed.policy, *compiled.compiled);
            settle();
            for (int op = 0; op < 3; ++op)
                got[b][op * 2].push_back(measure(std::nullopt, op, file, port));
            std::ofstream("/proc/sys/kernel/bpf_stats_enabled") << "1";
            for (int op = 0; op < 3; ++op)
                got[b][op * 2 + 1].push_back(measure(cg.path(), op, file, port));
            std::ofstream("/proc/sys/kernel/bpf_stats_enabled") << old_stats;
            for (const auto& [n, st] : prog_stats()) {
                stats[b][n].run_ns += st.run_ns;
                stats[b][n].runs += st.runs;
            }
            guard->remove_agent(cg.id());
            guard.reset();
            settle();
        }
    }
    const double agent_target[] = {1.10, 1.10, 1.05};
    for (auto b : backends) {
        std::printf("\n### %s backend\n\n", std::string(bpf::backend_name(b)).c_str());
        std::printf("| operation | absent | loaded, not an agent | agent, 1,000+1,000 rules | "
                    "ratio loaded (target) | ratio agent (target) |\n|---|---|---|---|---|---|\n");
        for (int op = 0; op < 3; ++op) {
            const double m0 = median(absent[op]), m1 = median(got[b][op * 2]),
                         m2 = median(got[b][op * 2 + 1]);
            std::printf("| %s | %.0f ns | %.0f ns | %.0f ns | %.3f (<= 1.03: %s) | %.3f (<= "
                        "%.2f: %s) |\n",
                        ops[op], m0, m1, m2, m1 / m0, m1 / m0 <= 1.03 ? "met" : "missed",
                        m2 / m0, agent_target[op], m2 / m0 <= agent_target[op] ? "met" : "missed");
        }
        std::printf("\nBPF program run time while the agent ran (kernel.bpf_stats_enabled):\n\n");
        std::printf("| program | runs | average ns |\n|---|---|---|\n");
        for (const auto& [n, st] : stats[b])
            if (st.runs)
                std::printf("| %s | %llu | %.0f |\n", n.c_str(),
                            static_cast<unsigned long long>(st.runs),
                            static_cast<double>(st.run_ns) / static_cast<double>(st.runs));
    }
}

// Decision cost as rules grow: the average run time of the program that decides each operation,
// for an agent whose policy has 10, 1,000 and 10,000 path rules (half exec, half files) and as
// many network rules.
void rules_section(const std::vector<cordon_backend>& backends, const fs::path& ws,
                   const fs::path& file, std::uint16_t port, const agents::Cgroup2Mount& mount,
                   const agents::Cgroup& cg)
{
    const policy::Context ctx{.home = "/root", .workspace = ws.string(), .user = "root"};
    const int sizes[] = {10, 1000, 10000};
    std::string old_stats;
    std::ifstream("/proc/sys/kernel/bpf_stats_enabled") >> old_stats;
    std::printf("\nAverage BPF run time per decision (ns), by rules in the agent's policy (path "
                "rules + as many network rules):\n\n");
    std::printf("| backend | decision (program) | 10 + 10 | 1,000 + 1,000 | 10,000 + 10,000 "
                "|\n|---|---|---|---|---|\n");
    for (auto b : backends) {
        const auto& progs = kHookProgs[b == CORDON_BACKEND_COMPAT ? 1 : 0];
        double avg[3][3] = {};
        for (int k = 0; k < 3; ++k) {
            auto parsed =
                policy::parse_policy(bench_policy(ws, std::max(1, sizes[k] / 2)), "bench.yaml", ctx);
            bpf::Guard guard({.backend = b, .net_attach_cgroup = mount.mount_point,
                              .pin_dir = std::nullopt});
            auto compiled = policy::compile(*parsed.policy, guard.allocate_policy_id());
            if (!compiled.compiled)
                throw Error("the benchmark policy of " + std::to_string(sizes[k]) +
                            " rules does not compile");
            guard.load_policy(*compiled.compiled);
            testing::add_agent(guard, cg, *parsed.policy, *compiled.compiled);
            std::ofstream("/proc/sys/kernel/bpf_stats_enabled") << "1";
            for (int op = 0; op < 3; ++op)
                measure(cg.path(), op, file, port);
            std::ofstream("/proc/sys/kernel/bpf_stats_enabled") << old_stats;
            const auto st = prog_stats();
            for (int op = 0; op < 3; ++op)
                for (const auto& [n, v] : st)
                    if ((n.starts_with(progs[op]) || (op == 0 && n.starts_with(kCompatRawOpen))) &&
                        v.runs)
                        avg[op][k] = static_cast<double>(v.run_ns) / static_cast<double>(v.runs);
            guard.remove_agent(cg.id());
        }
        const char* what[] = {"open", "exec", "connect"};
        for (int op = 0; op < 3; ++op)
            std::printf("| %s | %s (%s) | %.0f | %.0f | %.0f |\n",
                        std::string(bpf::backend_name(b)).c_str(), what[op], progs[op],
                        avg[op][0], avg[op][1], avg[op][2]);
    }
}

// compat on a kernel without trampolines: the raw sys_exit tracepoint (one program on every
// syscall exit, filtering on the number) against the per-syscall tracepoints
// (syscalls/sys_exit_open* and co. through tracefs), each doing compat's first stage for a
// process in no agent. Interleaved per repetition; ratios of medians to "absent".
void tracepoints_section(const fs::path& file, int reps)
{
    // libbpf finds the per-syscall tracepoints' ids in tracefs; mounting it changes nothing else.
    if (!fs::exists("/sys/kernel/tracing/events") && !fs::exists("/sys/kernel/debug/tracing/events"))
        if (::mount("tracefs", "/sys/kernel/tracing", "tracefs", 0, nullptr) != 0)
            throw Error("cannot mount tracefs on /sys/kernel/tracing: " + errno_text(errno));
    const char* configs[] = {"absent", "raw tp_btf/sys_exit", "syscalls/sys_exit_* (7 calls)"};
    std::vector<double> open_ns[3], plain_ns[3];
    const auto sample = [&](int k) {
        open_ns[k].push_back(measure(std::nullopt, 0, file, 0));
        plain_ns[k].push_back(measure(std::nullopt, 3, file, 0));
    };
    for (int rep = 0; rep < reps; ++rep) {
        sample(0);
        for (int k = 1; k <= 2; ++k) {
            auto skel = bpf::Skeleton<tp_compare_bpf>::open();
            struct bpf_program* p = nullptr;
            bpf_object__for_each_program(p, skel.object())
            {
                const bool raw = std::string_view(bpf_program__name(p)) == "cmp_raw_sys_exit";
                bpf_program__set_autoload(p, raw == (k == 1));
            }
            if (int err = skel.load(); err != 0)
                throw Error("cannot load tp_compare: " + errno_text(-err));
            std::vector<struct bpf_link*> links;
            bpf_object__for_each_program(p, skel.object())
            {
                if (!bpf_program__autoload(p))
                    continue;
                struct bpf_link* l = bpf_program__attach(p);
                if (!l)
                    throw Error(std::string("cannot attach ") + bpf_program__name(p) + ": " +
                                errno_text(errno));
                links.push_back(l);
            }
            sample(k);
            for (auto* l : links)
                bpf_link__destroy(l);
        }
    }
    std::printf("\n## compat: raw sys_exit against the per-syscall tracepoints (%d repetitions, "
                "medians)\n\n",
                reps);
    std::printf("| operation | %s | %s | %s | ratio raw | ratio per-syscall |\n|---|---|---|---|---|---|\n",
                configs[0], configs[1], configs[2]);
    const auto row = [](const char* what, std::vector<double>* v) {
        const double m0 = median(v[0]), m1 = median(v[1]), m2 = median(v[2]);
        std::printf("| %s | %.0f ns | %.0f ns | %.0f ns | %.3f | %.3f |\n", what, m0, m1, m2,
                    m1 / m0, m2 / m0);
    };
    row("open+close (decided)", open_ns);
    row("getppid (not decided)", plain_ns);
}

} // namespace

// cordond: what a process in no agent pays with 1 and with 100 agents guarded by one daemon
// (one program set), beside no cordon at all, interleaved per repetition; and how long an attach
// takes, from the call to the reply (the agent is enforced when the reply arrives).
void daemon_scale(cordon_backend backend, const fs::path& ws, const fs::path& file,
                  std::uint16_t port)
{
    const char* ops[] = {"open+close", "connect (loopback)", "fork+exec /bin/true"};
    std::vector<double> samples[3][3]; // [op][absent, 1 agent, 100 agents]
    std::vector<double> attach_us;
    // 100 rules each: 100 agents at 2,000 rules would not fit the shared maps (131,072 path
    // entries over all policies; docs/api.md), and a process in no agent never looks at them.
    const std::string policy = bench_policy(ws, 25);
    for (int rep = 0; rep < kReps; ++rep) {
        for (int op = 0; op < 3; ++op)
            samples[op][0].push_back(measure(std::nullopt, op, file, port));
        testing::Daemon d(backend);
        std::vector<agents::Cgroup> cgs;
        const auto attach = [&](int i) {
            cgs.push_back(testing::make_test_cgroup());
            const double t0 = now_ns();
            const auto r = d.attach(cgs.back().path(), policy, "bench-" + std::to_string(i),
                                    ws.string());
            attach_us.push_back((now_ns() - t0) / 1000.0);
            if (!r.value("ok", false))
                throw Error("attach failed: " + r.dump());
        };
        attach(0);
        for (int op = 0; op < 3; ++op)
            samples[op][1].push_back(measure(std::nullopt, op, file, port));
        for (int i = 1; i < 100; ++i)
            attach(i);
        for (int op = 0; op < 3; ++op)
            samples[op][2].push_back(measure(std::nullopt, op, file, port));
        for (int i = 0; i < 100; ++i)
            d.detach("bench-" + std::to_string(i));
    }
    std::printf("\n## cordond: a process in no agent, with 1 and with 100 agents\n\n");
    std::printf("One cordond (one program set); each agent's policy has 100 rules. %d "
                "repetitions, interleaved; medians.\n\n", kReps);
    std::printf("| operation | absent | 1 agent | 100 agents | ratio 1 agent | ratio 100 agents "
                "| 100 agents / 1 agent |\n|---|---|---|---|---|---|---|\n");
    for (int op = 0; op < 3; ++op) {
        const double m0 = median(samples[op][0]), m1 = median(samples[op][1]),
                     m2 = median(samples[op][2]);
        std::printf("| %s | %.0f ns | %.0f ns | %.0f ns | %.3f | %.3f | %.3f |\n", ops[op], m0,
                    m1, m2, m1 / m0, m2 / m0, m2 / m1);
    }
    std::sort(attach_us.begin(), attach_us.end());
    std::printf("\nAttach latency (the call to its reply, 100-rule policy, %zu attaches with 0 "
                "to 99 agents already guarded): median %.0f us, 90th percentile %.0f us, max "
                "%.0f us.\n",
                attach_us.size(), median(attach_us),
                attach_us[attach_us.size() * 9 / 10], attach_us.back());
}

namespace {

// A listener that accepts and closes, so the connect loop never fills the backlog: its socket
// and its port on 127.0.0.1. Its accept thread runs on CPU 0, away from the measured one.
std::pair<int, std::uint16_t> start_listener()
{
    const int ls = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t alen = sizeof(a);
    ::bind(ls, reinterpret_cast<sockaddr*>(&a), sizeof(a));
    ::listen(ls, 4096);
    ::getsockname(ls, reinterpret_cast<sockaddr*>(&a), &alen);
    const std::uint16_t port = ntohs(a.sin_port);
    std::thread([ls] {
        cpu_set_t zero;
        CPU_ZERO(&zero);
        CPU_SET(0, &zero);
        ::sched_setaffinity(0, sizeof(zero), &zero);
        for (;;) {
            const int c = ::accept(ls, nullptr, nullptr);
            if (c < 0)
                return;
            ::close(c);
        }
    }).detach();
    return {ls, port};
}

// The enforcement section's measures, over its repetitions.
struct Enforcement {
    std::vector<double> samples[3][4]; // [op][config]
    std::map<std::string, ProgStat> stats;
};

// What one enforcement repetition needs: the machine, the agent's policy and cgroup.
struct EnforcementSetup {
    cordon_backend backend;
    const policy::Policy& agent_policy;
    const agents::Cgroup2Mount& mount;
    const agents::Cgroup& cg;
    const fs::path& file;
    std::uint16_t port;
    const agents::SeccompLayer& seccomp;
    const std::string& old_stats; ///< kernel.bpf_stats_enabled as found
};

// One repetition: each operation without cordon, with the programs loaded, in the agent
// (BPF run time counted) and in the agent under the seccomp layer.
void enforcement_rep(const EnforcementSetup& s, Enforcement& e)
{
    for (int op = 0; op < 3; ++op)
        e.samples[op][0].push_back(measure(std::nullopt, op, s.file, s.port));
    bpf::Guard guard({.backend = s.backend,
                      .net_attach_cgroup = s.mount.mount_point,
                      .pin_dir = std::nullopt});
    auto compiled = policy::compile(s.agent_policy, guard.allocate_policy_id());
    guard.load_policy(*compiled.compiled);
    testing::add_agent(guard, s.cg, s.agent_policy, *compiled.compiled);
    for (int op = 0; op < 3; ++op)
        e.samples[op][1].push_back(measure(std::nullopt, op, s.file, s.port));
    std::ofstream("/proc/sys/kernel/bpf_stats_enabled") << "1";
    for (int op = 0; op < 3; ++op)
        e.samples[op][2].push_back(measure(s.cg.path(), op, s.file, s.port));
    std::ofstream("/proc/sys/kernel/bpf_stats_enabled") << s.old_stats;
    for (int op = 0; op < 3; ++op)
        e.samples[op][3].push_back(measure(s.cg.path(), op, s.file, s.port, &s.seccomp));
    for (const auto& [n, st] : prog_stats()) {
        e.stats[n].run_ns += st.run_ns;
        e.stats[n].runs += st.runs;
    }
}

void print_enforcement(cordon_backend backend, const Enforcement& e)
{
    const char* ops[] = {"open+close", "connect (loopback)", "fork+exec /bin/true"};
    const char* configs[] = {"absent", "loaded, not an agent", "agent, 1,000+1,000 rules",
                             "agent + seccomp layer"};
    std::printf("Backend: %s; %d repetitions; medians per operation.\n\n",
                std::string(bpf::backend_name(backend)).c_str(), kReps);
    std::printf("| operation | %s | %s | %s | %s | ratio loaded (target) | ratio agent (target) "
                "| ratio agent + seccomp | seccomp layer's cost |\n",
                configs[0], configs[1], configs[2], configs[3]);
    std::printf("|---|---|---|---|---|---|---|---|---|\n");
    const double agent_target[] = {1.10, 1.10, 1.05};
    for (int op = 0; op < 3; ++op) {
        const double m0 = median(e.samples[op][0]), m1 = median(e.samples[op][1]),
                     m2 = median(e.samples[op][2]), m3 = median(e.samples[op][3]);
        std::printf("| %s | %.0f ns | %.0f ns | %.0f ns | %.0f ns | %.3f (<= 1.03: %s) | %.3f (<= "
                    "%.2f: %s) | %.3f | %.3f |\n",
                    ops[op], m0, m1, m2, m3, m1 / m0, m1 / m0 <= 1.03 ? "met" : "missed", m2 / m0,
                    agent_target[op], m2 / m0 <= agent_target[op] ? "met" : "missed", m3 / m0,
                    m3 / m2);
    }
    std::printf("\nBPF program run time while the agent ran (kernel.bpf_stats_enabled):\n\n");
    std::printf("| program | runs | average ns |\n|---|---|---|\n");
    for (const auto& [n, s] : e.stats)
        if (s.runs)
            std::printf("| %s | %llu | %.0f |\n", n.c_str(),
                        static_cast<unsigned long long>(s.runs),
                        static_cast<double>(s.run_ns) / static_cast<double>(s.runs));
}

} // namespace

int main(int argc, char** argv)
{
    // Sections: store, enforcement, backends, rules, daemon, live, grants, killwait, churn, dns,
    // forensics, fairness
    // (default: all of
    // them, in that order). CORDON_BENCH_SECONDS: how long forensics holds each fixed rate
    // (default 60). CORDON_BENCH_BACKENDS (backends, rules): the backends to measure side by side
    // ("lsm,fmod_ret"; default: the one this kernel runs). CORDON_BENCH_REPS (backends):
    // repetitions (default 11). CORDON_BENCH_OPS_SCALE: operations per sample in percent
    // (default 100; the VM uses less under TCG).
    std::set<std::string> sections(argv + 1, argv + argc);
    const auto wanted = [&](const char* s) { return sections.empty() || sections.contains(s); };
    // The store's steps need no kernel: alone, they run before (and without) any setup.
    if (wanted("store")) {
        char stmpl[] = "/tmp/cordon-bench-store-XXXXXX";
        const fs::path sws = ::mkdtemp(stmpl);
        bench::store_steps(sws, static_cast<std::size_t>(env_int("CORDON_BENCH_STORE_RECORDS", 400'000)));
        fs::remove_all(sws);
        if (sections.size() == 1)
            return 0;
    }
    // The probes' expected refusals (an LSM program on a kernel without the BPF LSM) are noise here.
    libbpf_set_print([](enum libbpf_print_level, const char*, va_list) { return 0; });
    bpf::Features features(bpf::kernel_probe_source());
    const auto backend = bpf::choose_backend(features);
    if (backend == CORDON_BACKEND_NONE) {
        std::fprintf(stderr, "no backend on this kernel; see cordon doctor\n");
        return 1;
    }
    char tmpl[] = "/tmp/cordon-bench-XXXXXX";
    const fs::path ws = ::mkdtemp(tmpl);
    const fs::path file = ws / "file";
    std::ofstream(file) << "data";
    const auto [ls, port] = start_listener();

    const policy::Context ctx{.home = "/root", .workspace = ws.string(), .user = "root"};
    auto parsed = policy::parse_policy(bench_policy(ws), "bench.yaml", ctx);
    const auto mount = agents::cgroup2_mount();
    auto cg = agents::Cgroup::create(mount, "bench-" + std::to_string(::getpid()));

    const agents::SeccompLayer seccomp(*parsed.policy, backend);
    std::string old_stats;
    std::ifstream("/proc/sys/kernel/bpf_stats_enabled") >> old_stats;
    Enforcement enforcement;
    const EnforcementSetup setup{backend, *parsed.policy, mount, cg, file, port, seccomp, old_stats};
    for (int rep = 0; rep < kReps && wanted("enforcement"); ++rep)
        enforcement_rep(setup, enforcement);
    if (wanted("enforcement"))
        print_enforcement(backend, enforcement);
    if (wanted("backends") || wanted("rules")) {
        const auto list = bench_backends(features, backend);
        if (wanted("backends")) {
            const int reps = env_int("CORDON_BENCH_REPS", kReps);
            std::printf("\n## Every backend side by side (%d repetitions, medians)\n", reps);
            backends_section(list, ws, file, port, mount, cg, reps);
        }
        if (wanted("rules"))
            rules_section(list, ws, file, port, mount, cg);
    }
    if (sections.contains("tracepoints")) // not by default: it mounts tracefs
        tracepoints_section(file, env_int("CORDON_BENCH_REPS", kReps));
    if (wanted("daemon"))
        daemon_scale(backend, ws, file, port);
    if (wanted("live"))
        bench::live_control(backend, ws);
    if (wanted("grants"))
        bench::grants(backend, ws);
    if (wanted("killwait"))
        bench::kill_wait(backend, ws);
    if (wanted("churn"))
        bench::cgroup_churn(backend);
    if (wanted("dns"))
        bench::dns(backend, ws);
    if (wanted("forensics")) {
        const char* secs = std::getenv("CORDON_BENCH_SECONDS");
        bench::forensics(backend, ws, secs ? std::atoi(secs) : 60);
    }
    if (wanted("fairness"))
        bench::fairness(10, ws);
    ::close(ls);
    fs::remove_all(ws);
    return 0;
}
