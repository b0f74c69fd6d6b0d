// SPDX-License-Identifier: Apache-2.0
// The hook table: names are an interface (JSON, the store, --hook), so each is pinned here, and a
// number from the kernel past the table is named "unknown" rather than taken for a hook.
#include <set>

#include <gtest/gtest.h>

#include "events/format.h"
#include "events/hooks.h"
#include "events/ocsf.h"

namespace cordon::events {
namespace {

struct HookCase {
    cordon_hook hook;
    std::string_view name;
    HookGroup group;
    bool network;
    int class_uid, activity_id;
};

class HookTableTest : public ::testing::TestWithParam<HookCase> {};

TEST_P(HookTableTest, NamesGroupsAndClassesEachHook)
{
    const auto& c = GetParam();
    EXPECT_EQ(hook_name(c.hook), c.name);
    EXPECT_EQ(hook_from_name(c.name), c.hook);
    EXPECT_EQ(hook_info(c.hook)->group, c.group);
    EXPECT_EQ(is_network_hook(c.hook), c.network);
    EXPECT_EQ(ocsf_class(c.hook).class_uid, c.class_uid);
    EXPECT_EQ(ocsf_class(c.hook).activity_id, c.activity_id);
}

using enum HookGroup;
INSTANTIATE_TEST_SUITE_P(
    Hooks, HookTableTest,
    ::testing::Values(HookCase{CORDON_HOOK_EXEC, "exec", Exec, false, 1007, 1},
                      HookCase{CORDON_HOOK_PROCESS, "process", Exec, false, 1007, 1},
                      HookCase{CORDON_HOOK_FILE_OPEN, "open", File, false, 1001, 14},
                      HookCase{CORDON_HOOK_FILE_SETATTR, "setattr", File, false, 1001, 6},
                      HookCase{CORDON_HOOK_CONNECT6, "connect6", Net, true, 4001, 1},
                      HookCase{CORDON_HOOK_SENDMSG4, "sendmsg4", Net, true, 4001, 6},
                      HookCase{CORDON_HOOK_BIND, "bind", Net, true, 4001, 7},
                      HookCase{CORDON_HOOK_SOCKET, "socket", Net, false, 4001, 1},
                      HookCase{CORDON_HOOK_UNIX_SEND, "unix_send", Net, false, 4001, 6},
                      HookCase{CORDON_HOOK_TAMPER, "tamper", None, false, 1007, 99},
                      HookCase{CORDON_HOOK_TRUST, "trust", None, false, 2004, 1}),
    [](const auto& i) { return std::string(i.param.name); });

TEST(HookTableTest, EveryHookHasItsOwnName)
{
    std::set<std::string_view> names;
    for (const auto& h : hooks())
        EXPECT_TRUE(names.insert(h.name).second) << h.name;
    EXPECT_EQ(names.size(), static_cast<std::size_t>(CORDON_HOOK_MAX));
}

TEST(HookTableTest, ANumberPastTheTableIsUnknownNotAHook)
{
    EXPECT_EQ(hook_info(CORDON_HOOK_MAX), nullptr);
    EXPECT_EQ(hook_name(CORDON_HOOK_MAX), "unknown");
    EXPECT_EQ(hook_name(0xffff), "unknown");
    EXPECT_FALSE(is_network_hook(0xffff));
    EXPECT_EQ(ocsf_class(0xffff).class_uid, 0);
    EXPECT_EQ(verdict_name(CORDON_VERDICT_MAX), "unknown");
    EXPECT_EQ(verdict_name(CORDON_VERDICT_FREEZE), "freeze");
    EXPECT_EQ(trust_cause_name(0), "policy");
    EXPECT_EQ(trust_cause_name(CORDON_TRUST_OPERATOR), "operator");
    EXPECT_EQ(trust_cause_name(CORDON_TRUST_CAUSE_MAX), "unknown");
}

} // namespace
} // namespace cordon::events
