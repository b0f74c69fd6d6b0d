// SPDX-License-Identifier: Apache-2.0
// exec_guard on the running kernel, for each backend: real execs by children and grandchildren
// inside and outside an agent cgroup. The lsm backend is skipped where the kernel refuses LSM
// programs (this host); the VM tier runs it on a kernel whose BPF LSM is active.
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <gtest/gtest.h>

#include "kernel_test_util.h"

namespace cordon::testing {
namespace {

enum class Where { Outside, LiveAgent, KilledAgent, KilledAgentSubCgroup, KilledAgentGrandchild };
enum class Outcome { Runs, Denied };

struct ExecCase {
    const char* name;
    Where where;
    Outcome want;
};

void PrintTo(const ExecCase& c, std::ostream* os) { *os << c.name; }

// Exit code of a child whose execve() returned with errno e.
constexpr int exec_failed(int e) { return 100 + e; }
// Exit code of a child whose grandchild died of SIGKILL.
constexpr int kGrandchildKilled = 50;

int exec_true()
{
    char* const argv[] = {const_cast<char*>("true"), nullptr};
    ::execv("/bin/true", argv);
    return exec_failed(errno);
}

// Forks a grandchild that execs, and reports its outcome as this process's exit code.
int exec_true_in_grandchild()
{
    const pid_t pid = ::fork();
    if (pid == 0)
        ::_exit(exec_true());
    int status = 0;
    if (::waitpid(pid, &status, 0) != pid)
        return kChildSetupFailed;
    if (WIFSIGNALED(status))
        return WTERMSIG(status) == SIGKILL ? kGrandchildKilled : kChildSetupFailed;
    return WEXITSTATUS(status);
}

Exit expected(cordon_backend backend, const ExecCase& c)
{
    if (c.want == Outcome::Runs)
        return exited(0);
    if (c.where == Where::KilledAgentGrandchild)
        return exited(backend == CORDON_BACKEND_LSM ? exec_failed(EPERM) : kGrandchildKilled);
    return backend == CORDON_BACKEND_LSM ? exited(exec_failed(EPERM)) : killed_by(SIGKILL);
}

class ExecGuardTest : public ::testing::TestWithParam<std::tuple<cordon_backend, ExecCase>> {};

TEST_P(ExecGuardTest, DecidesAsTheAgentStateSays)
{
    const auto& [backend, c] = GetParam();
    if (backend == CORDON_BACKEND_LSM && !kernel_features().has(bpf::Probe::LsmAttach))
        GTEST_SKIP() << "this kernel runs no BPF LSM programs ("
                     << kernel_features().get(bpf::Probe::LsmAttach).detail
                     << "); the VM tier covers the lsm backend";
    if (backend == CORDON_BACKEND_COMPAT && !kernel_features().has(bpf::Probe::TpBtf))
        GTEST_SKIP() << "this kernel runs no tp_btf programs ("
                     << kernel_features().get(bpf::Probe::TpBtf).detail << ")";

    bpf::Guard guard(guard_options(backend));
    auto cg = make_test_cgroup();
    constexpr std::uint32_t kAgentId = 11;
    const bool killed = c.where != Where::Outside && c.where != Where::LiveAgent;
    guard.set_agent(cg.id(), agent_state(kAgentId, killed));

    std::optional<std::string> dir;
    if (c.where != Where::Outside)
        dir = cg.path();
    std::optional<std::filesystem::path> sub;
    if (c.where == Where::KilledAgentSubCgroup) {
        // A cgroup the agent made below its own: still the same agent.
        sub = cg.path() / "nested";
        ASSERT_EQ(::mkdir(sub->c_str(), 0755), 0) << std::strerror(errno);
        dir = sub->string();
    }
    const pid_t pid = spawn_in(dir, c.where == Where::KilledAgentGrandchild
                                        ? std::function<int()>(exec_true_in_grandchild)
                                        : std::function<int()>(exec_true));
    const Exit got = wait_exit(pid);
    EXPECT_EQ(got, expected(backend, c)) << "got: " << describe(got);

    const auto events = drain_events(guard);
    if (c.want == Outcome::Runs) {
        EXPECT_TRUE(events.empty()) << events.size() << " unexpected events";
        return;
    }
    ASSERT_EQ(events.size(), 1u);
    const auto& h = events[0].header;
    EXPECT_EQ(h.hook, CORDON_HOOK_EXEC);
    EXPECT_EQ(h.verdict, CORDON_VERDICT_DENY);
    EXPECT_EQ(h.agent_id, kAgentId);
    EXPECT_EQ(h.cgroup_id, cg.id()); // the agent root, even from a nested cgroup
    EXPECT_EQ(h.backend, backend);
    if (c.where == Where::KilledAgentGrandchild) {
        EXPECT_EQ(h.ppid, static_cast<std::uint32_t>(pid));
    } else {
        EXPECT_EQ(h.tgid, static_cast<std::uint32_t>(pid));
    }
}

const ExecCase kExecCases[] = {
    {.name = "OutsideAnyAgentRuns", .where = Where::Outside, .want = Outcome::Runs},
    {.name = "LiveAgentRuns", .where = Where::LiveAgent, .want = Outcome::Runs},
    {.name = "KilledAgentIsDenied", .where = Where::KilledAgent, .want = Outcome::Denied},
    {.name = "KilledAgentNestedCgroupIsDenied", .where = Where::KilledAgentSubCgroup,
     .want = Outcome::Denied},
    {.name = "KilledAgentGrandchildIsDenied", .where = Where::KilledAgentGrandchild,
     .want = Outcome::Denied},
};

INSTANTIATE_TEST_SUITE_P(
    Cases, ExecGuardTest,
    ::testing::Combine(::testing::Values(CORDON_BACKEND_LSM, CORDON_BACKEND_COMPAT),
                       ::testing::ValuesIn(kExecCases)),
    [](const auto& tp) {
        return std::string(bpf::backend_name(std::get<0>(tp.param))) + "_" +
               std::get<1>(tp.param).name;
    });

} // namespace
} // namespace cordon::testing
