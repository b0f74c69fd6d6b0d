// SPDX-License-Identifier: Apache-2.0
// cordond's request decoder and caller rules, without a daemon.
#include <gtest/gtest.h>

#include "api/protocol.h"
#include "daemon/server.h"

namespace cordon::api {
namespace {

struct Bad {
    const char* name;
    std::string line;
    const char* says; ///< part of the error
};

TEST(RequestDecoder, RefusesEverythingButTheDocumentedRequests)
{
    const Bad cases[] = {
        {.name = "NotJson", .line = "attach", .says = "not a JSON object"},
        {.name = "Array", .line = "[]", .says = "a request is a JSON object"},
        {.name = "NoVersion", .line = R"({"op":"agents"})", .says = "missing protocol version"},
        {.name = "OtherVersion", .line = R"({"v":2,"op":"agents"})", .says = "not supported"},
        {.name = "FloatVersion", .line = R"({"v":1.0,"op":"agents"})", .says = "missing protocol version"},
        {.name = "UnknownOp", .line = R"({"v":1,"op":"rm"})", .says = "unknown op"},
        {.name = "UnknownField", .line = R"({"v":1,"op":"agents","all":true})", .says = "unknown field"},
        {.name = "MissingName", .line = R"({"v":1,"op":"detach"})", .says = "needs \"name\""},
        {.name = "NameNotString", .line = R"({"v":1,"op":"detach","name":1})", .says = "must be a string"},
        {.name = "NameTooLong", .line = R"({"v":1,"op":"detach","name":")" + std::string(65, 'a') + "\"}", .says = "longer than"},
        {.name = "NulInName", .line = R"({"v":1,"op":"detach","name":"a\u0000b"})", .says = "NUL"},
        {.name = "BadMode", .line = R"({"v":1,"op":"attach","cgroup":"/x","policy":{"file":"f","text":"t"},"mode":"off"})", .says = "\"mode\""},
        {.name = "PolicyShape", .line = R"({"v":1,"op":"attach","cgroup":"/x","policy":"t"})", .says = "\"policy\" must be"},
        {.name = "TooLong", .line = std::string(kMaxRequestBytes + 1, ' '), .says = "longer than"},
        {.name = "KillWithoutName", .line = R"({"v":1,"op":"kill"})", .says = "needs \"name\""},
        {.name = "KillWithPolicy", .line = R"({"v":1,"op":"kill","name":"a","policy":{"file":"f","text":"t"}})", .says = "unknown field"},
        {.name = "ReasonTooLong", .line = R"({"v":1,"op":"freeze","name":"a","reason":")" + std::string(1025, 'r') + "\"}", .says = "longer than"},
        {.name = "ApplyWithoutPolicy", .line = R"({"v":1,"op":"apply","name":"a"})", .says = "needs \"policy\""},
        {.name = "ApplyWithCgroup", .line = R"({"v":1,"op":"apply","name":"a","cgroup":"/x","policy":{"file":"f","text":"t"}})", .says = "unknown field"},
        {.name = "ModeWithoutMode", .line = R"({"v":1,"op":"mode","name":"a"})", .says = "needs \"mode\""},
        {.name = "ModeOff", .line = R"({"v":1,"op":"mode","name":"a","mode":"off"})", .says = "\"mode\""},
        {.name = "TrustSetWithoutScore", .line = R"({"v":1,"op":"trust_set","name":"a"})", .says = "needs \"score\""},
        {.name = "ScoreTooHigh", .line = R"({"v":1,"op":"trust_set","name":"a","score":1001})", .says = "from 0 to 1000"},
        {.name = "ScoreNotInteger", .line = R"({"v":1,"op":"trust_set","name":"a","score":"9"})", .says = "must be an integer"},
        {.name = "TaskWithoutId", .line = R"({"v":1,"op":"task_begin","name":"a"})", .says = "needs \"id\""},
        {.name = "TaskPidZero", .line = R"({"v":1,"op":"task_begin","name":"a","id":"t","pid":0})", .says = "\"pid\""},
        {.name = "TaskIdTooLong", .line = R"({"v":1,"op":"task_begin","name":"a","id":")" + std::string(129, 'i') + "\"}", .says = "longer than"},
        {.name = "GrantWithoutTtl", .line = R"({"v":1,"op":"grant","name":"a","kind":"read","target":"/x"})", .says = "needs \"ttl\""},
        {.name = "GrantBadKind", .line = R"({"v":1,"op":"grant","name":"a","kind":"delete","target":"/x","ttl":"5m"})", .says = "\"kind\""},
        {.name = "GrantWithPid", .line = R"({"v":1,"op":"grant","name":"a","kind":"read","target":"/x","ttl":"5m","pid":3})", .says = "unknown field"},
        {.name = "RevokeWithoutId", .line = R"({"v":1,"op":"revoke","name":"a"})", .says = "needs \"grant\""},
        {.name = "ExplainWithoutTarget", .line = R"({"v":1,"op":"explain","name":"a","kind":"read"})", .says = "needs \"target\""},
        {.name = "ExplainBadKind", .line = R"({"v":1,"op":"explain","name":"a","kind":"open","target":"/x"})", .says = "\"kind\""},
        {.name = "ExplainWithTtl", .line = R"({"v":1,"op":"explain","name":"a","kind":"read","target":"/x","ttl":"5m"})", .says = "unknown field"},
        {.name = "RevokeNegative", .line = R"({"v":1,"op":"revoke","name":"a","grant":-1})", .says = "\"grant\""},
    };
    for (const auto& c : cases) {
        try {
            decode_request(c.line);
            ADD_FAILURE() << c.name << ": accepted";
        } catch (const ProtocolError& e) {
            EXPECT_NE(std::string(e.what()).find(c.says), std::string::npos)
                << c.name << ": " << e.what();
        }
    }
}

TEST(RequestDecoder, AcceptsAnAttachAndEncodesItBackTheSame)
{
    const auto r = decode_request(
        R"({"v":1,"op":"attach","cgroup":"/sys/fs/cgroup/a.service","name":"a","policy":{"file":"p.yaml","text":"x: 1"},"workspace":"/srv","mode":"audit"})");
    EXPECT_EQ(r.op, Op::Attach);
    EXPECT_EQ(r.cgroup, "/sys/fs/cgroup/a.service");
    EXPECT_EQ(r.policy->text, "x: 1");
    EXPECT_EQ(r.mode, "audit");
    EXPECT_TRUE(changes_state(r.op));
    const auto again = decode_request(encode_request(r));
    EXPECT_EQ(again.cgroup, r.cgroup);
    EXPECT_EQ(again.policy->file, "p.yaml");
    EXPECT_FALSE(changes_state(Op::Agents));
}

TEST(RequestDecoder, AcceptsTheLiveChangesAndRecordsThem)
{
    for (const char* op : {"kill", "freeze", "thaw"}) {
        const auto r = decode_request(std::string(R"({"v":1,"op":")") + op +
                                      R"(","name":"a","reason":"review"})");
        EXPECT_EQ(r.name, "a");
        EXPECT_EQ(r.reason, "review");
        EXPECT_TRUE(changes_state(r.op)) << op;
        EXPECT_EQ(decode_request(encode_request(r)).reason, "review");
    }
    const auto a = decode_request(
        R"({"v":1,"op":"apply","name":"a","policy":{"file":"p.yaml","text":"x"},"mode":"audit"})");
    EXPECT_EQ(a.op, Op::Apply);
    EXPECT_EQ(a.mode, "audit");
    const auto m = decode_request(R"({"v":1,"op":"mode","name":"a","mode":"enforce"})");
    EXPECT_EQ(m.op, Op::Mode);
    EXPECT_TRUE(changes_state(Op::Apply) && changes_state(Op::Mode));
}

TEST(RequestDecoder, AcceptsTrustTasksAndGrantsAndEncodesThemBack)
{
    const auto t = decode_request(
        R"({"v":1,"op":"task_begin","name":"a","id":"call-42","pid":31337,"ttl":"10m","policy":{"file":"o.yaml","text":"x"}})");
    EXPECT_EQ(t.op, Op::TaskBegin);
    EXPECT_EQ(t.id, "call-42");
    EXPECT_EQ(t.pid, 31337);
    EXPECT_EQ(t.ttl, "10m");
    const auto t2 = decode_request(encode_request(t));
    EXPECT_EQ(t2.pid, 31337);
    EXPECT_EQ(t2.policy->file, "o.yaml");
    const auto g = decode_request(
        R"({"v":1,"op":"grant","name":"a","kind":"connect","target":"api.github.com:443/tcp","ttl":"5m","task":"call-42","reason":"pr"})");
    EXPECT_EQ(g.kind, "connect");
    EXPECT_EQ(g.target, "api.github.com:443/tcp");
    EXPECT_EQ(decode_request(encode_request(g)).task, "call-42");
    const auto r = decode_request(R"({"v":1,"op":"revoke","name":"a","grant":7})");
    EXPECT_EQ(r.grant, 7);
    EXPECT_EQ(decode_request(encode_request(r)).grant, 7);
    const auto s = decode_request(R"({"v":1,"op":"trust_set","name":"a","score":0})");
    EXPECT_EQ(s.score, 0);
    EXPECT_EQ(decode_request(encode_request(s)).score, 0) << "a score of 0 survives the round trip";
    for (Op op : {Op::TrustSet, Op::TaskBegin, Op::TaskEnd, Op::Grant, Op::Revoke})
        EXPECT_TRUE(changes_state(op)) << op_name(op);
    for (Op op : {Op::Trust, Op::Tasks, Op::Grants})
        EXPECT_FALSE(changes_state(op)) << op_name(op);
}

TEST(RequestDecoder, AcceptsExplainAndEncodesItBack)
{
    const auto e = decode_request(
        R"({"v":1,"op":"explain","name":"a","kind":"connect","target":"127.0.0.1:443/tcp"})");
    EXPECT_EQ(e.op, Op::Explain);
    EXPECT_EQ(e.kind, "connect");
    EXPECT_EQ(e.target, "127.0.0.1:443/tcp");
    const auto back = decode_request(encode_request(e));
    EXPECT_EQ(back.op, Op::Explain);
    EXPECT_EQ(back.name, "a");
    EXPECT_EQ(back.target, "127.0.0.1:443/tcp");
    EXPECT_FALSE(changes_state(Op::Explain)) << "a question, not an operator action";
    try {
        decode_request(R"({"v":1,"op":"nope"})");
        FAIL() << "an unknown op is refused";
    } catch (const ProtocolError& err) {
        EXPECT_NE(std::string(err.what()).find("grants, revoke or explain"), std::string::npos)
            << "the ops named come from the table: " << err.what();
    }
}

TEST(Callers, NeverFromInsideAnAgentWhateverTheUid)
{
    const std::vector<std::string> agents = {"/cg/system.slice/a.service"};
    EXPECT_NE(daemon::refusal(1, 0, 0, "/cg/system.slice/a.service/sub", "/cg/cordon", agents), "");
    EXPECT_NE(daemon::refusal(1, 0, 0, "/cg/system.slice/a.service", "/cg/cordon", agents), "");
    EXPECT_NE(daemon::refusal(1, 0, 0, "/cg/cordon/run-1", "/cg/cordon", agents), "");
    EXPECT_EQ(daemon::refusal(1, 0, 0, "/cg/system.slice/a.service2", "/cg/cordon", agents), "");
    EXPECT_EQ(daemon::refusal(1, 0, 0, "/cg/user.slice", "/cg/cordon", agents), "");
}

} // namespace
} // namespace cordon::api

#include <sys/wait.h>
#include <unistd.h>

#include "control/registry.h"

namespace cordon::control {
namespace {

// A `cordon run` that was killed but not yet reaped is gone: its agent must not outlive it.
TEST(Owners, AZombieIsNotAlive)
{
    const pid_t child = ::fork();
    if (child == 0)
        ::_exit(0);
    for (int i = 0; i < 200 && process_start_time(child) != 0; ++i)
        ::usleep(10000); // running until it exits; then a zombie, which counts as gone
    EXPECT_EQ(process_start_time(child), 0u);
    EXPECT_NE(process_start_time(static_cast<int>(::getpid())), 0u);
    ::waitpid(child, nullptr, 0);
}

} // namespace
} // namespace cordon::control
