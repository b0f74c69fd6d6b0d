// SPDX-License-Identifier: Apache-2.0
// The stored form of records: OCSF classes and fields, JSON escaping of whatever bytes an agent
// puts in a path or an argument, and the terminal-safe form of the same text.
#include <cstring>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "events/format.h"
#include "events/journal.h"
#include "events/ocsf.h"

namespace cordon::events {
namespace {

using nlohmann::json;

struct TextCase {
    const char* name;
    std::string in;
    std::string json_out;    ///< json_string(in), quotes included
    std::string display_out; ///< display_safe(in)
};

class TextTest : public ::testing::TestWithParam<TextCase> {};

TEST_P(TextTest, EscapesWhatAnAgentCouldUseToForgeOrRepaint)
{
    const auto& c = GetParam();
    std::string j;
    json_string(j, c.in);
    EXPECT_EQ(j, c.json_out);
    EXPECT_FALSE(json::parse(j, nullptr, false).is_discarded()) << "not valid JSON: " << j;
    EXPECT_EQ(display_safe(c.in), c.display_out);
}

INSTANTIATE_TEST_SUITE_P(
    Cases, TextTest,
    ::testing::Values(
        TextCase{.name = "plain", .in = "/etc/passwd", .json_out = "\"/etc/passwd\"", .display_out = "/etc/passwd"},
        TextCase{.name = "newline_forges_a_line", .in = "/a\n2026 allow /b", .json_out = "\"/a\\n2026 allow /b\"",
                 .display_out = "/a\\n2026 allow /b"},
        TextCase{.name = "escape_repaints_a_terminal", .in = "/a\x1b[2K\r", .json_out = "\"/a\\u001b[2K\\r\"",
                 .display_out = "/a\\x1b[2K\\r"},
        TextCase{.name = "quote_and_backslash", .in = "a\"b\\c", .json_out = "\"a\\\"b\\\\c\"", .display_out = "a\"b\\\\c"},
        TextCase{.name = "utf8_kept", .in = "/tmp/caf\xc3\xa9", .json_out = "\"/tmp/caf\xc3\xa9\"",
                 .display_out = "/tmp/caf\xc3\xa9"},
        TextCase{.name = "c1_csi_escaped", .in = "/a\xc2\x9b" "31m", .json_out = "\"/a\\u009b31m\"",
                 .display_out = "/a\\xc2\\x9b31m"},
        TextCase{.name = "invalid_utf8", .in = "/a\xff\xfe", .json_out = "\"/a\\ufffd\\ufffd\"",
                 .display_out = "/a\\xff\\xfe"},
        TextCase{.name = "overlong_slash", .in = "/a\xc0\xaf", .json_out = "\"/a\\ufffd\\ufffd\"",
                 .display_out = "/a\\xc0\\xaf"}),
    [](const auto& i) { return std::string(i.param.name); });

Event denied_open(const char* path)
{
    Event e;
    e.body.h.hook = CORDON_HOOK_FILE_OPEN;
    e.body.h.verdict = CORDON_VERDICT_DENY;
    e.body.h.tgid = e.body.h.pid = 42;
    e.body.h.ppid = 7;
    e.body.h.size = sizeof(cordon_event);
    std::strcpy(e.body.h.comm, "cat");
    e.body.access = CORDON_ACCESS_READ;
    std::strncpy(e.body.path, path, sizeof(e.body.path) - 1);
    return e;
}

TEST(OcsfTest, ADeniedOpenIsAFileSystemActivityOpenThatWasBlocked)
{
    const auto r = stored_record(denied_open("/etc/shadow"), {.agent = "a", .rule = "p.yaml:3", .task = "", .old_tier = "", .new_tier = ""},
                                 1'700'000'000'123'456'789);
    const auto j = json::parse(r.json);
    EXPECT_EQ(j["class_uid"], 1001);
    EXPECT_EQ(j["activity_id"], 14);
    EXPECT_EQ(j["type_uid"], 100114);
    EXPECT_EQ(j["time"], 1'700'000'000'123);
    EXPECT_EQ(j["action_id"], 2);
    EXPECT_EQ(j["disposition"], "Blocked");
    EXPECT_EQ(j["file"]["path"], "/etc/shadow");
    EXPECT_EQ(j["actor"]["process"]["pid"], 42);
    EXPECT_EQ(j["actor"]["process"]["parent_process"]["pid"], 7);
    EXPECT_EQ(j["unmapped"]["rule"], "p.yaml:3");
    EXPECT_EQ(j["unmapped"]["access"], "read");
    EXPECT_EQ(r.kind, "decision");
    EXPECT_EQ(r.path, "/etc/shadow");
    EXPECT_EQ(r.verdict, "deny");
}

TEST(OcsfTest, AnExecTraceKeepsItsArgumentsApartAndSaysWhenTheyWereCut)
{
    Event e;
    e.body.h.hook = CORDON_HOOK_PROCESS;
    e.body.h.tgid = 5;
    e.body.h.ppid = 4;
    std::strcpy(e.body.path, "/bin/echo");
    const char args[] = "echo\0a b\0c";
    std::memcpy(e.argv, args, sizeof(args) - 1);
    e.argv_len = sizeof(args) - 1;
    e.argv_full = 300;
    const auto j = json::parse(stored_record(e, {.agent = "a", .rule = "", .task = "", .old_tier = "", .new_tier = ""}, 0).json);
    EXPECT_EQ(j["class_uid"], 1007);
    EXPECT_EQ(j["unmapped"]["argv"], json::array({"echo", "a b", "c"}));
    EXPECT_EQ(j["unmapped"]["argv_truncated"], true);
    EXPECT_EQ(j["process"]["file"]["path"], "/bin/echo");
    EXPECT_EQ(j["process"]["parent_process"]["pid"], 4);
}

// `cordon trace --json` and `cordon events --json` print one decision as one object: the live
// one differs from the stored one only in the wall-clock offset each was timed with.
TEST(OcsfTest, ALiveRecordHasTheShapeOfTheStoredOne)
{
    auto e = denied_open("/etc/shadow");
    e.body.h.ts_ns = 5'000'000'000;
    e.body.h.rule_id = 3;
    const RuleNamer rule = [](std::uint32_t) { return std::string("p.yaml:3"); };
    auto live = json::parse(event_json(e, rule, "a", {.task = "t1", .tiers = nullptr}));
    auto stored = json::parse(stored_record(e, record_context(e, rule, "a", {.task = "t1", .tiers = nullptr}), 0).json);
    EXPECT_GT(live["time"].get<std::int64_t>(), 1'600'000'000'000) << "wall-clock ms";
    EXPECT_EQ(live["unmapped"]["ts_ns"], 5'000'000'000);
    for (auto* j : {&live, &stored}) {
        j->erase("time");
        (*j)["unmapped"].erase("time_ns");
    }
    EXPECT_EQ(live, stored);
    EXPECT_EQ(live["unmapped"]["hook"], "open");
    EXPECT_EQ(live["unmapped"]["rule"], "p.yaml:3");
    EXPECT_EQ(live["unmapped"]["task"], "t1");
    EXPECT_EQ(live["file"]["path"], "/etc/shadow");
}

TEST(OcsfTest, AnEventLineShowsAnAgentsNewlineEscaped)
{
    const auto line = event_line(denied_open("/x\nallow open /y"), [](std::uint32_t) { return std::string("r"); });
    EXPECT_EQ(line.find('\n'), std::string::npos) << line;
    EXPECT_NE(line.find("/x\\nallow open /y"), std::string::npos) << line;
}

// The journal's native protocol: NAME=value lines; a value holding a newline (a path an agent
// named so) is sent length-prefixed, so it can neither end the field early nor forge another.
TEST(JournalEntry, FieldsAreLinesAndNewlinesAreLengthPrefixed)
{
    store::Record r;
    r.agent = "a";
    r.kind = "decision";
    r.hook = "open";
    r.verdict = "deny";
    r.pid = 7;
    r.path = "/x\nCORDON_VERDICT=allow";
    r.json = "{}";
    const std::string e = journal_entry(r);
    EXPECT_NE(e.find("\nCORDON_VERDICT=deny\n"), std::string::npos) << e;
    EXPECT_NE(e.find("PRIORITY=4\n"), std::string::npos);
    EXPECT_NE(e.find("SYSLOG_IDENTIFIER=cordond\n"), std::string::npos);
    const std::string path_field = std::string("CORDON_PATH\n") + static_cast<char>(r.path.size()) +
                                   std::string(7, '\0') + r.path + "\n";
    EXPECT_NE(e.find(path_field), std::string::npos);
    EXPECT_EQ(e.find("CORDON_PATH="), std::string::npos);
}

} // namespace
} // namespace cordon::events
