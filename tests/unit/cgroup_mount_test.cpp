// SPDX-License-Identifier: Apache-2.0
// Finding the cgroup2 mount in /proc/self/mountinfo text, for the layouts hosts really have.
#include <gtest/gtest.h>

#include "agents/cgroup.h"

namespace cordon::agents {
namespace {

struct MountCase {
    const char* name;
    const char* mountinfo;
    const char* want_mount; // nullptr: none found
    std::uint32_t want_root_level;
};

class Cgroup2MountTest : public ::testing::TestWithParam<MountCase> {};

TEST_P(Cgroup2MountTest, FindsTheCgroup2Mount)
{
    const auto m = find_cgroup2_mount(GetParam().mountinfo);
    if (!GetParam().want_mount) {
        EXPECT_FALSE(m.has_value());
        return;
    }
    ASSERT_TRUE(m.has_value());
    EXPECT_EQ(m->mount_point, GetParam().want_mount);
    EXPECT_EQ(m->root_level, GetParam().want_root_level);
}

const MountCase kMountCases[] = {
    {.name = "Unified",
     .mountinfo = "22 1 0:21 / /proc rw,nosuid - proc proc rw\n"
                  "30 25 0:26 / /sys/fs/cgroup rw,nosuid,nodev shared:9 - cgroup2 cgroup2 "
                  "rw,nsdelegate\n",
     .want_mount = "/sys/fs/cgroup", .want_root_level = 0},
    {.name = "Hybrid",
     .mountinfo = "30 25 0:26 / /sys/fs/cgroup ro shared:9 - tmpfs tmpfs ro,mode=755\n"
                  "31 30 0:27 / /sys/fs/cgroup/unified rw shared:10 - cgroup2 cgroup2 rw\n"
                  "32 30 0:28 / /sys/fs/cgroup/systemd rw shared:11 - cgroup cgroup "
                  "rw,name=systemd\n",
     .want_mount = "/sys/fs/cgroup/unified", .want_root_level = 0},
    {.name = "CgroupNamespaceRootIsDeeper",
     .mountinfo = "40 39 0:26 /user.slice/session-1 /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n",
     .want_mount = "/sys/fs/cgroup", .want_root_level = 2},
    {.name = "EscapedMountPoint",
     .mountinfo = "40 39 0:26 / /mnt/cg\\040two rw - cgroup2 none rw\n",
     .want_mount = "/mnt/cg two", .want_root_level = 0},
    {.name = "OptionalFieldsBeforeSeparator",
     .mountinfo = "40 39 0:26 / /cg rw shared:1 master:2 propagate_from:3 - cgroup2 none rw\n",
     .want_mount = "/cg", .want_root_level = 0},
    {.name = "CgroupV1Only",
     .mountinfo = "32 30 0:28 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu\n",
     .want_mount = nullptr, .want_root_level = 0},
    {.name = "Empty", .mountinfo = "", .want_mount = nullptr, .want_root_level = 0},
};

INSTANTIATE_TEST_SUITE_P(Cases, Cgroup2MountTest, ::testing::ValuesIn(kMountCases),
                         [](const auto& tp) { return std::string(tp.param.name); });

} // namespace
} // namespace cordon::agents
