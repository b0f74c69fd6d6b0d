// SPDX-License-Identifier: Apache-2.0
// Template patterns as the controller matches them (the kernel matches the same PREFIX*SUFFIX in
// bpf/cgroup_guard.bpf.c), overlap between two templates of one parent, and the records of
// attachments as kept across a reboot.
#include <unistd.h>

#include <filesystem>

#include <gtest/gtest.h>

#include "control/controller.h"
#include "control/registry.h"

namespace cordon::control {
namespace {

TEST(TemplatePattern, OneStarMatchesAnyRunIncludingNone)
{
    EXPECT_TRUE(name_matches("agent@*.service", "agent@1.service"));
    EXPECT_TRUE(name_matches("agent@*.service", "agent@.service"));
    EXPECT_FALSE(name_matches("agent@*.service", "agent@1.scope"));
    EXPECT_FALSE(name_matches("agent@*.service", "agent.service"));
    EXPECT_FALSE(name_matches("ab*ba", "aba")) << "prefix and suffix may not share a byte";
    EXPECT_TRUE(name_matches("*", "anything"));
    EXPECT_TRUE(name_matches("exact", "exact"));
    EXPECT_FALSE(name_matches("exact", "exactly"));
}

TEST(TemplatePattern, OverlapIsFoundWheneverSomeNameMatchesBoth)
{
    EXPECT_TRUE(patterns_overlap("agent@*.service", "*"));
    EXPECT_TRUE(patterns_overlap("agent@*", "*.service"));
    EXPECT_TRUE(patterns_overlap("a*", "ab*"));
    EXPECT_TRUE(patterns_overlap("x", "x*"));
    EXPECT_FALSE(patterns_overlap("agent@*.service", "worker@*.service"));
    EXPECT_FALSE(patterns_overlap("a*.service", "a*.scope"));
    EXPECT_FALSE(patterns_overlap("x", "y*"));
}

TEST(DurableRecord, KeepsWhatARebootNeedsAndNothingOfTheBoot)
{
    AgentRecord r;
    r.name = "svc";
    r.id = 7;
    r.key = CORDON_AGENT_KEY(7);
    r.cgroup = "/sys/fs/cgroup/system.slice/svc.service";
    r.cgroup_id = 1234;
    r.origin = Origin::Attach;
    r.policy_text = "text";
    r.policy_mode = "audit";
    r.killed = true;
    TaskRecord t;
    t.id = "t";
    r.tasks.push_back(t);
    const auto d = durable_copy(r);
    EXPECT_EQ(d.name, "svc");
    EXPECT_EQ(d.cgroup, r.cgroup);
    EXPECT_EQ(d.policy_text, "text");
    EXPECT_EQ(d.policy_mode, "audit");
    EXPECT_TRUE(d.killed);
    EXPECT_EQ(d.key, 0u) << "kernel ids end with the boot";
    EXPECT_EQ(d.cgroup_id, 0u);
    EXPECT_TRUE(d.tasks.empty()) << "tasks end with the boot";

    const auto dir = std::filesystem::temp_directory_path() /
                     ("cordon-durable-" + std::to_string(::getpid()));
    save_record(dir, d);
    const auto back = load_registry(dir);
    std::filesystem::remove_all(dir);
    ASSERT_EQ(back.size(), 1u);
    EXPECT_EQ(back[0].origin, Origin::Attach);
    EXPECT_EQ(back[0].policy_text, "text");
    EXPECT_TRUE(back[0].killed);
}

} // namespace
} // namespace cordon::control
