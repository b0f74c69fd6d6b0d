// SPDX-License-Identifier: Apache-2.0
// Issue 23, on the real kernel with the real cordond: an attached service stays guarded across
// restarts of its cgroup (the kernel binds it as it is made, with no daemon round trip), a
// template guards each child it matches from its first access, attachments outlive a reboot,
// and bad input is refused with a clear error that changes nothing.
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <mutex>
#include <set>
#include <thread>

#include <gtest/gtest.h>

#include "agents/cgroup.h"
#include "common/backend.h"
#include "daemon_util.h"

namespace cordon::testing {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

class AttachTest : public ::testing::TestWithParam<cordon_backend> {
protected:
    void SetUp() override
    {
        if (skip_unless_backend(GetParam()))
            GTEST_SKIP() << "the kernel cannot run the " << bpf::backend_name(GetParam())
                         << " backend; the VM tier runs it";
    }
};

// mkdir, retried while a removal of the same name is still under way.
void make_dir(const fs::path& p)
{
    for (int i = 0; i < 1000; ++i) {
        if (::mkdir(p.c_str(), 0755) == 0)
            return;
        ASSERT_EQ(errno, EEXIST) << p;
        ::usleep(1000);
    }
    FAIL() << "cannot make " << p;
}

// rmdir, retried while the cgroup still holds a process that is exiting.
void remove_dir(const fs::path& p)
{
    for (int i = 0; i < 5000; ++i) {
        if (::rmdir(p.c_str()) == 0 || errno == ENOENT)
            return;
        ASSERT_EQ(errno, EBUSY) << p;
        ::usleep(1000);
    }
    FAIL() << "cannot remove " << p;
}

// One process that enters `dir` at once and reads `file`: true when the read was refused.
bool read_refused(const fs::path& dir, const fs::path& file)
{
    return refused(wait_exit(spawn_in(dir.string(), [&] { return try_open(file); })));
}

// 1,000 restarts of an attached service, each entered at once by a process that reads the
// denied file, with gaps of 0, 1.5 s and 5 s between removal and re-creation, and cordond
// SIGKILLed for a third of the loop: no read succeeds.
TEST_P(AttachTest, ARestartLoopNeverReadsTheDeniedFile)
{
    Files f;
    Daemon d(GetParam());
    auto parent = make_test_cgroup();
    const fs::path svc = parent.path() / "svc";
    const auto r = d.attach(svc, deny_policy(f.secret), "svc", f.dir.string(), true);
    ASSERT_TRUE(r.value("ok", false)) << r.dump();
    EXPECT_EQ(r["agent"]["state"], "waiting");
    int reads = 0, rounds = 0;
    const auto round = [&](std::chrono::milliseconds gap) {
        std::this_thread::sleep_for(gap);
        make_dir(svc);
        reads += read_refused(svc, f.secret) ? 0 : 1;
        ++rounds;
        remove_dir(svc);
    };
    for (int i = 0; i < 1000; ++i) {
        if (i == 300)
            d.kill9(); // the kernel binds each new cgroup with no daemon at all
        if (i == 600)
            d.start();
        ASSERT_NO_FATAL_FAILURE(round(std::chrono::milliseconds(0)));
    }
    for (auto gap : {1500, 1500, 5000})
        ASSERT_NO_FATAL_FAILURE(round(std::chrono::milliseconds(gap)));
    EXPECT_EQ(reads, 0) << "of " << rounds << " restarts";
    EXPECT_EQ(rounds, 1003);
    EXPECT_GE(d.pinned().counters()[CORDON_CNT_CG_BOUND], 1003u);
    // The agent waits for its path, with its state: it was never forgotten.
    EXPECT_TRUE(agents_until(d, [](const json& a) {
        return a.size() == 1 && a[0]["state"] == "waiting" && a[0]["name"] == "svc";
    }));
    make_dir(svc);
    EXPECT_TRUE(agents_until(d, [](const json& a) {
        return a.size() == 1 && a[0]["state"] == "guarded";
    }));
    EXPECT_TRUE(read_refused(svc, f.secret));
    ASSERT_TRUE(d.detach("svc").value("ok", false));
    EXPECT_FALSE(read_refused(svc, f.secret)) << "a detach ends the guard";
    remove_dir(svc);
}

// 100 children of a template, made at once by four threads and entered at once: each is its
// own agent from its first access; removing one ends its agent, not its records.
TEST_P(AttachTest, ATemplateGuardsEveryChildFromItsFirstAccess)
{
    Files f;
    Daemon d(GetParam());
    auto parent = make_test_cgroup();
    // A child made before the template is guarded when it is attached.
    const fs::path early = parent.path() / "agent-early";
    make_dir(early);
    const auto r = d.attach(parent.path() / "agent-*", deny_policy(f.secret), "tpl", f.dir.string());
    ASSERT_TRUE(r.value("ok", false)) << r.dump();
    EXPECT_EQ(r["agent"]["state"], "template");
    EXPECT_TRUE(read_refused(early, f.secret));
    const fs::path stranger = parent.path() / "other";
    make_dir(stranger);
    EXPECT_FALSE(read_refused(stranger, f.secret)) << "a name the pattern does not match";
    remove_dir(stranger);

    constexpr int kThreads = 4, kEach = 25;
    std::atomic<int> reads{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t)
        threads.emplace_back([&, t] {
            for (int i = 0; i < kEach; ++i) {
                const fs::path c = parent.path() / ("agent-" + std::to_string(t * kEach + i));
                if (::mkdir(c.c_str(), 0755) != 0 || !read_refused(c, f.secret))
                    ++reads;
            }
        });
    for (auto& t : threads)
        t.join();
    EXPECT_EQ(reads.load(), 0) << "reads (or failed mkdirs) among " << kThreads * kEach;
    // Each child is listed under the template, with its own id and its own one denial.
    EXPECT_TRUE(agents_until(d, [&](const json& a) {
        std::size_t children = 0;
        for (const auto& x : a)
            children += x.value("template", "") == "tpl" && x["denials_seen"] == 1;
        return children == kThreads * kEach + 1;
    }));
    const auto list = d.call(R"({"v":1,"op":"agents"})");
    std::set<std::uint32_t> ids;
    for (const auto& a : list["agents"])
        ids.insert(a["id"].get<std::uint32_t>());
    EXPECT_EQ(ids.size(), static_cast<std::size_t>(kThreads * kEach + 1)) << "each its own id";
    ASSERT_EQ(list["templates"].size(), 1u);
    // A child runs its template's policy, which its siblings share: no apply of its own.
    const auto apply = d.call(json{{"v", 1}, {"op", "apply"}, {"name", "tpl.agent-early"},
                                   {"policy", {{"file", "x.yaml"}, {"text", deny_policy(f.open)}}}}
                                  .dump());
    EXPECT_EQ(apply.value("error", ""),
              "agent tpl.agent-early runs its template's policy (tpl), which its siblings share; "
              "to change it, detach the template and attach it again with the new policy; "
              "nothing was changed");
    EXPECT_TRUE(read_refused(early, f.secret)) << "the apply changed nothing";
    const auto kill = d.call(R"({"v":1,"op":"kill","name":"tpl"})");
    EXPECT_NE(kill.value("error", "").find("tpl is a template, not an agent"), std::string::npos)
        << kill.dump();

    // Removal ends each agent; the store keeps what they did.
    for (int i = 0; i < kThreads * kEach; ++i)
        remove_dir(parent.path() / ("agent-" + std::to_string(i)));
    EXPECT_TRUE(agents_until(d, [](const json& a) { return a.size() == 1; }));
    EXPECT_EQ(d.pinned().agents().size(), 1u) << "only agent-early's entry is left in the kernel";
    const auto [rc, out] =
        run_cordon(d, {"events", "--store", (d.dir() / "events.db").string(), "tpl.agent-7",
                       "--verdict", "deny", "--json"});
    EXPECT_EQ(rc, 0) << out;
    EXPECT_NE(out.find(f.secret.string()), std::string::npos) << out;

    ASSERT_TRUE(d.detach("tpl").value("ok", false));
    EXPECT_TRUE(d.pinned().agents().empty()) << "detaching the template ends its agents";
    EXPECT_FALSE(read_refused(early, f.secret));
    remove_dir(early);
}

// After a reboot (no pins, no /run), cordond restores what it kept on disk before any process
// enters: an attachment, a template, and a kill flag.
TEST_P(AttachTest, AttachmentsAndKillsSurviveAReboot)
{
    Files f;
    Daemon d(GetParam());
    auto parent = make_test_cgroup();
    const fs::path svc = parent.path() / "svc", doomed = parent.path() / "doomed";
    ASSERT_TRUE(d.attach(svc, deny_policy(f.secret), "svc", f.dir.string(), true).value("ok", false));
    ASSERT_TRUE(d.attach(parent.path() / "job-*", deny_policy(f.secret), "jobs", f.dir.string())
                    .value("ok", false));
    ASSERT_TRUE(d.attach(doomed, deny_policy(f.secret), "doomed", f.dir.string(), true)
                    .value("ok", false));
    ASSERT_TRUE(d.call(R"({"v":1,"op":"kill","name":"doomed"})").value("ok", false));
    EXPECT_TRUE(fs::exists(d.attachments() / "svc.json"));

    d.reboot();
    EXPECT_FALSE(bpf::Guard::pinned(d.pin_dir())) << "the reboot cleared the pins";
    d.start();
    make_dir(svc);
    EXPECT_TRUE(read_refused(svc, f.secret)) << "the attachment, restored";
    // Past a reconcile round with no child yet: the template's policy must still be loaded.
    std::this_thread::sleep_for(std::chrono::milliseconds(1500));
    make_dir(parent.path() / "job-1");
    EXPECT_TRUE(read_refused(parent.path() / "job-1", f.secret)) << "the template, restored";
    EXPECT_FALSE(read_refused(parent.path() / "job-1", f.open))
        << "decided by its policy, not refused everything for a missing one";
    make_dir(doomed);
    EXPECT_TRUE(read_refused(doomed, f.open)) << "the kill flag, restored: refused everything";
    const auto list = d.call(R"({"v":1,"op":"agents"})");
    EXPECT_EQ(list["templates"].size(), 1u);
    for (const auto& a : list["agents"]) {
        if (a["name"] == "doomed") {
            EXPECT_TRUE(a.value("killed", false)) << a.dump();
        }
    }
    for (const char* n : {"svc", "jobs", "doomed"})
        ASSERT_TRUE(d.detach(n).value("ok", false)) << n;
    std::string left;
    for (const auto& e : fs::directory_iterator(d.attachments()))
        left += e.path().filename().string() + " ";
    EXPECT_EQ(left, "") << "a detach ends an attachment for good";
    for (const auto& p : {svc, doomed, parent.path() / "job-1"})
        remove_dir(p);
}

// Each refusal names its cause, and changes nothing: no agent, no template, no kernel entry, no
// policy, no kept attachment.
TEST_P(AttachTest, BadInputIsRefusedWithACauseAndChangesNothing)
{
    Files f;
    Daemon d(GetParam());
    const fs::path root = cgroup2().mount_point;
    const auto self = agents::process_cgroup(cgroup2(), ::getpid());
    struct Case {
        fs::path cgroup;
        bool wait;
        std::string error;
    };
    std::vector<Case> cases = {
        {"/tmp/nowhere", false,
         "cannot attach /tmp/nowhere: no such cgroup; pass --wait to guard it from the moment "
         "it is made (a service that has not started yet)"},
        {"/tmp/nowhere", true,
         "cannot attach /tmp/nowhere: it is not below the cgroup v2 root " + root.string()},
        {f.dir, false,
         "cannot attach " + f.dir.string() + ": not a cgroup v2 directory below " +
             root.string()},
        {root, false,
         "cannot attach the root cgroup: it holds every process of the host, cordon included"},
        {root / "cordon", false,
         "cannot attach " + (root / "cordon").string() +
             ": it holds every agent that `cordon run` starts"},
        {root / "*", false,
         "cannot guard " + (root / "*").string() + ": it matches " + (root / "cordon").string() +
             ", cordon's own subtree"},
        {root / "cordon" / "*", false,
         "cannot attach " + (root / "cordon").string() +
             ": it holds every agent that `cordon run` starts"},
        {root / "a*b*", false, "a template's pattern may have one '*' only: a*b*"},
        {root / "a?", true,
         "cannot attach " + (root / "a?").string() +
             ": a glob may have one '*', in its last component only"},
        {root / "x*" / "y", true,
         "cannot attach " + (root / "x*" / "y").string() +
             ": a glob may have one '*', in its last component only"},
    };
    const fs::path too_long = root / std::string(250, 'a') / std::string(255, 'b') / "xyz";
    cases.push_back({too_long, true,
                     "cannot attach " + too_long.string() +
                         ": its path below the cgroup v2 root is longer than 510 bytes"});
    cases.push_back({root / "bad\xef\xbf\xbd", true,
                     "cannot attach that path: it is not UTF-8 text without control characters "
                     "(a client replaces bytes that are not with U+FFFD, which would name another "
                     "cgroup)"});
    if (self && !fs::equivalent(*self, root)) // cordond runs in the test's cgroup
        cases.push_back({*self, false,
                         "cannot attach " + self->string() + ": cordon itself runs in it (" +
                             self->string() + "); an agent may not contain its guard"});
    for (const auto& c : cases) {
        const auto r = d.attach(c.cgroup, deny_policy(f.secret), "bad", f.dir.string(), c.wait);
        EXPECT_FALSE(r.value("ok", true)) << c.cgroup;
        EXPECT_EQ(r.value("error", ""), c.error) << c.cgroup;
        const auto list = d.call(R"({"v":1,"op":"agents"})");
        EXPECT_TRUE(list["agents"].empty()) << c.cgroup;
        EXPECT_TRUE(list["templates"].empty()) << c.cgroup;
        EXPECT_TRUE(d.pinned().agents().empty()) << c.cgroup;
        EXPECT_TRUE(d.pinned().policy_ids().empty()) << c.cgroup;
        std::error_code ec;
        EXPECT_TRUE(!fs::exists(d.attachments(), ec) || fs::is_empty(d.attachments()))
            << c.cgroup;
    }
    // A path that nests with a template's children is refused too.
    auto parent = make_test_cgroup();
    ASSERT_TRUE(d.attach(parent.path() / "w-*", deny_policy(f.secret), "w", f.dir.string())
                    .value("ok", false));
    const auto nested = d.attach(parent.path() / "w-1", deny_policy(f.secret), "n",
                                 f.dir.string(), true);
    EXPECT_EQ(nested.value("error", ""),
              "cannot guard " + (parent.path() / "w-1").string() +
                  ": it is inside or above the cgroups of template w (" +
                  (parent.path() / "w-*").string() +
                  "); agents may not nest, detach that one first");
    const auto overlap = d.attach(parent.path() / "w-1*", deny_policy(f.secret), "o",
                                  f.dir.string());
    EXPECT_EQ(overlap.value("error", ""),
              "cannot guard " + (parent.path() / "w-1*").string() + ": template w (" +
                  (parent.path() / "w-*").string() +
                  ") matches some of the same names; agents may not nest, detach that one first");
    ASSERT_TRUE(d.detach("w").value("ok", false));
}

INSTANTIATE_TEST_SUITE_P(Backends, AttachTest,
                         ::testing::Values(CORDON_BACKEND_LSM, CORDON_BACKEND_FMOD_RET,
                                           CORDON_BACKEND_COMPAT),
                         [](const auto& tp) { return std::string(bpf::backend_name(tp.param)); });

} // namespace
} // namespace cordon::testing
