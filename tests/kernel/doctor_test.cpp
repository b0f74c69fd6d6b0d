// SPDX-License-Identifier: Apache-2.0
// `cordon doctor` on the running kernel: the backend it picks must match what the kernel really
// accepts, and the --json report must carry one entry per probe.
#include <fcntl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "common/backend.h"
#include "common/error.h"
#include "kernel_test_util.h"

namespace cordon::testing {
namespace {

struct CommandResult {
    int status = -1;
    std::string out;
};

CommandResult run(const std::string& cmd)
{
    CommandResult r;
    FILE* p = ::popen(cmd.c_str(), "r");
    if (!p)
        return r;
    char buf[4096];
    for (size_t n; (n = std::fread(buf, 1, sizeof(buf), p)) > 0;)
        r.out.append(buf, n);
    r.status = ::pclose(p);
    return r;
}

// Whether a Guard of `backend` really refuses: a killed agent's open of /dev/null must fail with
// EPERM (lsm, fmod_ret) or die of SIGKILL (compat). An lsm program set also loads and attaches
// where the BPF LSM is not active; it is then never called, which only this shows.
bool guard_refuses(cordon_backend backend, std::string& why)
{
    try {
        bpf::Guard guard(guard_options(backend));
        auto cg = make_test_cgroup();
        add_plain_agent(guard, cg.id(), 1, true);
        const pid_t pid = spawn_in(cg.path().string(), [] {
            const int fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
            return fd < 0 ? (errno == EPERM ? 77 : 1) : 0;
        });
        const Exit e = wait_exit(pid);
        const Exit want = runs_lsm_programs(backend) ? exited(77) : killed_by(SIGKILL);
        if (e == want)
            return true;
        why += std::string(bpf::backend_name(backend)) +
               ": loaded, but a killed agent's open was not refused\n";
    } catch (const Error& e) {
        why += std::string(bpf::backend_name(backend)) + ": " + e.what() + "\n";
    }
    return false;
}

// Independent of the probe code: load the real Guard of each backend, in cordon's order of
// preference, and see it refuse; doctor must choose the first that does.
TEST(DoctorKernel, ChoosesTheFirstBackendThatRefuses)
{
    cordon_backend first = CORDON_BACKEND_NONE;
    std::string why;
    for (auto b : bpf::kBackendPreference)
        if (guard_refuses(b, why)) {
            first = b;
            break;
        }
    const auto chosen = bpf::choose_backend(kernel_features());
    EXPECT_EQ(bpf::backend_name(chosen), bpf::backend_name(first)) << why;
    // The reason doctor gives for a backend it passed over must be the kernel's.
    if (first != CORDON_BACKEND_LSM) {
        const auto& listed = kernel_features().get(bpf::Probe::LsmListed);
        const auto& lsm = kernel_features().get(bpf::Probe::LsmAttach);
        EXPECT_TRUE(!listed.ok || !lsm.ok);
        if (listed.ok)
            EXPECT_NE(lsm.detail.find("refused"), std::string::npos) << lsm.detail;
        else
            EXPECT_NE(listed.detail.find("not in the active LSMs"), std::string::npos)
                << listed.detail;
    }
    if (first == CORDON_BACKEND_COMPAT) {
        const auto& fmod = kernel_features().get(bpf::Probe::FmodRet);
        EXPECT_FALSE(fmod.ok);
        EXPECT_TRUE(fmod.detail.find("refused") != std::string::npos ||
                    fmod.detail.find("has no") != std::string::npos)
            << fmod.detail;
    }
    // The VM tier states the backend each of its boots must give.
    if (const char* want = std::getenv("CORDON_EXPECT_BACKEND")) {
        EXPECT_EQ(bpf::backend_name(chosen), want);
    }
}

TEST(DoctorKernel, JsonReportHasOneEntryPerProbeAndTheChosenBackend)
{
    const auto r = run(std::string(CORDON_BINARY) + " doctor --json");
    ASSERT_TRUE(WIFEXITED(r.status));
    EXPECT_EQ(WEXITSTATUS(r.status), 0) << r.out;
    const auto doc = nlohmann::json::parse(r.out); // throws, failing the test, if not JSON
    ASSERT_EQ(doc.at("probes").size(), bpf::kProbeCount);
    for (size_t i = 0; i < bpf::kProbeCount; ++i) {
        const auto p = static_cast<bpf::Probe>(i);
        const auto& entry = doc["probes"][i];
        EXPECT_EQ(entry.at("name"), bpf::probe_name(p));
        EXPECT_EQ(entry.at("ok"), kernel_features().has(p)) << bpf::probe_name(p);
        EXPECT_FALSE(entry.at("detail").get<std::string>().empty());
    }
    EXPECT_EQ(doc.at("backend"), bpf::backend_name(bpf::choose_backend(kernel_features())));
    EXPECT_FALSE(doc.at("guarantees").empty());
}

// Nothing outlives a Guard or a test cgroup: checked through the kernel's own id tables, not
// through our bookkeeping.
TEST(GuardLifetime, LeavesNoProgramMapOrCgroupBehind)
{
    const auto backend = bpf::choose_backend(kernel_features());
    ASSERT_NE(backend, CORDON_BACKEND_NONE);
    const auto before = loaded_program_ids();
    std::vector<std::uint32_t> ours;
    std::filesystem::path cg_path;
    {
        bpf::Guard guard(guard_options(backend));
        for (auto id : loaded_program_ids())
            if (std::find(before.begin(), before.end(), id) == before.end())
                ours.push_back(id);
        auto cg = make_test_cgroup();
        cg_path = cg.path();
        add_plain_agent(guard, cg.id(), 1, false);
        // A process that is still running when the cgroup goes.
        spawn_in(cg.path().string(), [] {
            ::pause();
            return 0;
        });
    }
    // net_guard 11 (connect, sendmsg, recvmsg, getpeername and bind, each for IPv4 and IPv6, and
    // sock_create; +2 on lsm and fmod_ret); exec_guard 1 + exec_trace 1 + task_guard's fork and
    // exit 2; file_guard: compat 7 (one per syscall tracepoint) or 1 (sys_exit, where those are
    // missing), lsm and fmod_ret 18 (file_receive among them; +3 hooks that kernels >= 6.2
    // have: two for ACLs, file_truncate); tamper_guard 34 (lsm and fmod_ret); cgroup_guard 2.
    const bool late_hooks = bpf::lsm_hook_args("inode_set_acl", 0) != 0;
    const unsigned compat = bpf::syscall_tracepoints() ? 24u : 18u;
    EXPECT_EQ(ours.size(), runs_lsm_programs(backend) ? (late_hooks ? 75u : 72u) : compat);
    EXPECT_FALSE(std::filesystem::exists(cg_path));
    // Program ids are released when the last reference goes, after an RCU grace period (for
    // LSM programs an RCU-tasks-trace one, which takes seconds under QEMU's TCG): wait up to 15 s.
    for (int i = 0; i < 1500; ++i) {
        const auto now = loaded_program_ids();
        bool any = false;
        for (auto id : ours)
            any |= std::find(now.begin(), now.end(), id) != now.end();
        if (!any)
            return;
        ::usleep(10'000);
    }
    ADD_FAILURE() << "programs still loaded 15 s after the Guard was destroyed";
}

} // namespace
} // namespace cordon::testing

namespace cordon::testing {
namespace {

// compat decides at the exit of the open-family calls. The kernel runs the call numbered by the
// low 32 bits of rax: a number with high bits set must be decided like the plain one, through
// the per-syscall tracepoints and through the raw sys_exit fallback alike.
class CompatExitTest : public ::testing::TestWithParam<bool> {};

TEST_P(CompatExitTest, HighBitsInTheSyscallNumberAreDecided)
{
    if (skip_unless_backend(CORDON_BACKEND_COMPAT))
        GTEST_SKIP() << "this kernel cannot run the compat backend";
    const bool raw = GetParam();
    if (!raw && !bpf::syscall_tracepoints())
        GTEST_SKIP() << "this kernel has no per-syscall exit tracepoints";
    const auto high_bits_open = [] {
        const long nr = static_cast<long>((1UL << 32) | SYS_openat);
        const long fd = ::syscall(nr, AT_FDCWD, "/dev/null", O_RDONLY | O_CLOEXEC);
        return fd >= 0 ? 0 : 1;
    };
    // Unguarded, the kernel runs it as openat: the trick works, or this case proves nothing.
    ASSERT_EQ(wait_exit(spawn_in(std::nullopt, high_bits_open)), exited(0));
    auto opts = guard_options(CORDON_BACKEND_COMPAT);
    opts.compat_raw_sys_exit = raw;
    bpf::Guard guard(opts);
    auto cg = make_test_cgroup();
    add_plain_agent(guard, cg.id(), 1, true); // killed: every open is refused
    EXPECT_EQ(wait_exit(spawn_in(cg.path().string(), high_bits_open)), killed_by(SIGKILL));
}

INSTANTIATE_TEST_SUITE_P(ExitHooks, CompatExitTest, ::testing::Values(false, true),
                         [](const auto& i) { return std::string(i.param ? "raw" : "per_syscall"); });

} // namespace
} // namespace cordon::testing
