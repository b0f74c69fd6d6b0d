// SPDX-License-Identifier: Apache-2.0
// Pins the kernel/user ABI from the C++ side: a field that moves breaks the build here.
#include <algorithm>
#include <cstddef>
#include <cstring>
#include <span>
#include <vector>

#include <gtest/gtest.h>

#include <cordon/abi.h>

#include "events/reader.h"

static_assert(sizeof(cordon_agent) == 40);
static_assert(offsetof(cordon_agent, agent_id) == 0);
static_assert(offsetof(cordon_agent, policy_id) == 4);
static_assert(offsetof(cordon_agent, task_id) == 8);
static_assert(offsetof(cordon_agent, mode) == 16);
static_assert(offsetof(cordon_agent, level) == 17);
static_assert(offsetof(cordon_agent, flags) == 20);
static_assert(offsetof(cordon_agent, thaw_epoch) == 24);
static_assert(offsetof(cordon_agent, grant_set) == 28);
static_assert(offsetof(cordon_agent, score_set) == 32);
static_assert(offsetof(cordon_agent, score_set_seq) == 36);
static_assert(sizeof(cordon_agent_live) == 72);
static_assert(offsetof(cordon_agent_live, events_lost) == 48);
static_assert(offsetof(cordon_agent_live, events_shed) == 56);
static_assert(offsetof(cordon_agent_live, events_made) == 64);
static_assert(sizeof(cordon_event_share) == 16);
static_assert(offsetof(cordon_agent_live, score) == 0);
static_assert(offsetof(cordon_agent_live, flags) == 4);
static_assert(offsetof(cordon_agent_live, frozen_mark) == 8);
static_assert(offsetof(cordon_agent_live, agent_id) == 12);
static_assert(offsetof(cordon_agent_live, stamp_ns) == 16);
static_assert(offsetof(cordon_agent_live, burst_start_ns) == 24);
static_assert(offsetof(cordon_agent_live, burst_count) == 32);
static_assert(offsetof(cordon_agent_live, set_seq) == 36);
static_assert(offsetof(cordon_agent_live, tier) == 40);
static_assert(offsetof(cordon_agent_live, task_procs) == 44);
static_assert(offsetof(cordon_agent_live, events_lost) == 48);
static_assert(sizeof(cordon_config) == 40);
static_assert(offsetof(cordon_config, backend) == 4);
static_assert(offsetof(cordon_config, agent_levels) == 8);
static_assert(offsetof(cordon_config, next_policy_id) == 16);
static_assert(offsetof(cordon_config, next_agent_id) == 20);
static_assert(offsetof(cordon_config, next_task_id) == 24);
static_assert(offsetof(cordon_config, next_grant_id) == 32);
static_assert(sizeof(cordon_inode_key) == 16);
static_assert(offsetof(cordon_inode_key, dev) == 8);

static_assert(sizeof(cordon_task) == 32);
static_assert(offsetof(cordon_task, cgid) == 0);
static_assert(offsetof(cordon_task, expires_ns) == 8);
static_assert(offsetof(cordon_task, overlay_id) == 16);
static_assert(offsetof(cordon_task, grant_set) == 20);
static_assert(offsetof(cordon_task, agent_id) == 24);
static_assert(sizeof(cordon_proc_task) == 24);
static_assert(offsetof(cordon_proc_task, task_id) == 0);
static_assert(offsetof(cordon_proc_task, start_ns) == 8);
static_assert(offsetof(cordon_proc_task, forked) == 16);
static_assert(sizeof(cordon_grant) == 24);
static_assert(offsetof(cordon_grant, cgid) == 0);
static_assert(offsetof(cordon_grant, expires_ns) == 8);
static_assert(offsetof(cordon_grant, task_id) == 16);

static_assert(sizeof(cordon_policy) == 104);
static_assert(offsetof(cordon_policy, dns_unknown) == 96);
static_assert(offsetof(cordon_policy, dns_grace_s) == 98);
static_assert(offsetof(cordon_dns_host_key, policy_id) == 8);
static_assert(offsetof(cordon_dns_host_key, addr) == 16);
static_assert(offsetof(cordon_dns_slot, expires_ns) == 16);
static_assert(offsetof(cordon_dns_host, nslots) == 192);
static_assert(offsetof(cordon_dns_sock, addr) == 28);
static_assert(offsetof(cordon_dns_config, port) == 2);
static_assert(offsetof(cordon_policy, exec_default) == 0);
static_assert(offsetof(cordon_policy, ntiers) == 5);
static_assert(offsetof(cordon_policy, penalty_deny) == 6);
static_assert(offsetof(cordon_policy, penalty_kill) == 8);
static_assert(offsetof(cordon_policy, raw_sockets) == 10);
static_assert(offsetof(cordon_policy, unix_abstract) == 11);
static_assert(offsetof(cordon_policy, exec_default_rule_id) == 12);
static_assert(offsetof(cordon_policy, initial_score) == 24);
static_assert(offsetof(cordon_policy, recovery_per_minute) == 28);
static_assert(offsetof(cordon_policy, tier_min_score) == 32);
static_assert(offsetof(cordon_policy, inbound_default_rule_id) == 64);
static_assert(offsetof(cordon_policy, inbound_default) == 68);
static_assert(offsetof(cordon_policy, refused_caps) == 72);
static_assert(offsetof(cordon_policy, burst_window_ms) == 80);
static_assert(offsetof(cordon_policy, burst_denials) == 84);
static_assert(offsetof(cordon_policy, burst_penalty) == 86);
static_assert(offsetof(cordon_policy, tier_on_enter) == 88);

static_assert(sizeof(cordon_event_header) == 80);
static_assert(offsetof(cordon_event_header, ts_ns) == 0);
static_assert(offsetof(cordon_event_header, cgroup_id) == 8);
static_assert(offsetof(cordon_event_header, task_id) == 16);
static_assert(offsetof(cordon_event_header, agent_id) == 24);
static_assert(offsetof(cordon_event_header, pid) == 28);
static_assert(offsetof(cordon_event_header, tgid) == 32);
static_assert(offsetof(cordon_event_header, ppid) == 36);
static_assert(offsetof(cordon_event_header, uid) == 40);
static_assert(offsetof(cordon_event_header, rule_id) == 44);
static_assert(offsetof(cordon_event_header, hook) == 48);
static_assert(offsetof(cordon_event_header, verdict) == 50);
static_assert(offsetof(cordon_event_header, backend) == 51);
static_assert(offsetof(cordon_event_header, size) == 52);
static_assert(offsetof(cordon_event_header, seq) == 56);
static_assert(offsetof(cordon_event_header, comm) == 64);

// Values are stored in event logs: they must never be renumbered.
static_assert(CORDON_HOOK_EXEC == 1 && CORDON_HOOK_FILE_OPEN == 2 && CORDON_HOOK_CONNECT4 == 3 &&
              CORDON_HOOK_CONNECT6 == 4 && CORDON_HOOK_SENDMSG4 == 5 && CORDON_HOOK_SENDMSG6 == 6);
static_assert(CORDON_VERDICT_ALLOW == 0 && CORDON_VERDICT_DENY == 1 && CORDON_VERDICT_AUDIT == 2 &&
              CORDON_VERDICT_KILL == 3);
static_assert(CORDON_HOOK_TRUST == 19);
static_assert(CORDON_TRUST_DENY == 1 && CORDON_TRUST_KILL == 2 && CORDON_TRUST_BURST == 3 &&
              CORDON_TRUST_RECOVERY == 4 && CORDON_TRUST_OPERATOR == 5);
static_assert(CORDON_ENTER_REPORT == 0 && CORDON_ENTER_FREEZE == 1 && CORDON_ENTER_KILL == 2);
static_assert(CORDON_CNT_TASK_FULL == 7);
// An overlay's and a grant's rule ids are tagged above every rule index.
static_assert((CORDON_RULE_OVERLAY & CORDON_RULE_INDEX_MASK) == 0 &&
              (CORDON_RULE_GRANT & CORDON_RULE_INDEX_MASK) == 0 &&
              (CORDON_RULE_OVERLAY & CORDON_RULE_GRANT) == 0);

namespace cordon {
namespace {

std::vector<std::uint8_t> record(std::uint16_t claimed_size, size_t real_size)
{
    cordon_event_header h{};
    h.size = claimed_size;
    h.hook = CORDON_HOOK_EXEC;
    std::vector<std::uint8_t> bytes(real_size);
    std::memcpy(bytes.data(), &h, std::min(real_size, sizeof(h)));
    return bytes;
}

struct DecodeCase {
    const char* name;
    std::uint16_t claimed;
    size_t real;
    bool ok;
};

class DecodeTest : public ::testing::TestWithParam<DecodeCase> {};

TEST_P(DecodeTest, AcceptsOnlyConsistentRecords)
{
    const auto bytes = record(GetParam().claimed, GetParam().real);
    const auto e = events::decode(bytes);
    EXPECT_EQ(e.has_value(), GetParam().ok);
    if (e) {
        EXPECT_EQ(e->header().hook, CORDON_HOOK_EXEC);
    }
}

const DecodeCase kDecodeCases[] = {
    {.name = "ExactHeader", .claimed = 80, .real = 80, .ok = true},
    {.name = "HeaderWithPayload", .claimed = 88, .real = 88, .ok = true},
    {.name = "ShorterThanHeader", .claimed = 80, .real = 40, .ok = false},
    {.name = "ClaimsMoreThanRecord", .claimed = 200, .real = 80, .ok = false},
    {.name = "ClaimsLessThanHeader", .claimed = 8, .real = 80, .ok = false},
};

INSTANTIATE_TEST_SUITE_P(Cases, DecodeTest, ::testing::ValuesIn(kDecodeCases),
                         [](const auto& tp) { return std::string(tp.param.name); });

} // namespace
} // namespace cordon
