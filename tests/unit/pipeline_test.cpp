// SPDX-License-Identifier: Apache-2.0
// The event pipeline's JSONL retention on real files: rotation by size never leaves an agent
// with nothing, and the operator's actions and each agent's first records survive a flood.
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <chrono>
#include <map>
#include <string>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "events/pipeline.h"

namespace cordon::events {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

Event denied(std::uint8_t hook, const char* path, std::uint32_t pid)
{
    Event e;
    e.body.h.hook = hook;
    e.body.h.verdict = CORDON_VERDICT_DENY;
    e.body.h.tgid = e.body.h.pid = pid;
    e.body.h.size = sizeof(cordon_event);
    std::strcpy(e.body.h.comm, "probe");
    if (path)
        std::strncpy(e.body.path, path, sizeof(e.body.path) - 1);
    return e;
}

Context in(const char* agent)
{
    return {.agent = agent, .rule = "", .task = "", .old_tier = "", .new_tier = ""};
}

class PipelineJsonlTest : public ::testing::Test {
protected:
    void SetUp() override
    {
        std::string t = (fs::temp_directory_path() / "cordon-pipeline-XXXXXX").string();
        ASSERT_NE(mkdtemp(t.data()), nullptr);
        dir = t;
        file = dir / "events.jsonl";
    }
    void TearDown() override { fs::remove_all(dir); }

    /// Every line of FILE, FILE.1.., FILE.kept and FILE.kept.1, by file.
    std::map<std::string, std::vector<json>> read_all()
    {
        std::map<std::string, std::vector<json>> out;
        for (const auto& e : fs::directory_iterator(dir)) {
            std::ifstream f(e.path());
            for (std::string line; std::getline(f, line);)
                out[e.path().filename().string()].push_back(json::parse(line));
        }
        return out;
    }
    /// A pipeline writing FILE only, rotated at `max` bytes, `files` rotated files kept.
    PipelineOptions jsonl_only(std::uint64_t max, unsigned files) const
    {
        PipelineOptions o;
        o.jsonl = file;
        o.jsonl_max_bytes = max;
        o.jsonl_files = files;
        return o;
    }
    std::uint64_t bytes()
    {
        std::uint64_t n = 0;
        for (const auto& e : fs::directory_iterator(dir))
            n += e.file_size();
        return n;
    }

    fs::path dir, file;
};

// The hostile review's flood on JSONL: it rotated the file 116 times and left no record of either
// agent. Now the attach record and the flooder's first denials are carried to FILE.kept, and so
// is every record of the agent that did not flood, exactly once in all the files.
TEST_F(PipelineJsonlTest, AFloodRotatesTheFileButCannotEraseWhatRetentionKeeps)
{
    constexpr std::uint64_t kMax = 256 << 10;
    std::uint64_t rotations = 0, carried = 0;
    {
        Pipeline p(jsonl_only(kMax, 2));
        p.push_action({{"op", "attach"}, {"agent", "flood"}, {"result", "ok"}});
        p.push(denied(CORDON_HOOK_FILE_OPEN, "/etc/secret", 7), in("flood"));
        for (int i = 0; i < 20'000; ++i) {
            p.push(denied(CORDON_HOOK_CONNECT4, nullptr, 7), in("flood"));
            if (i % 500 == 0)
                p.push(denied(CORDON_HOOK_FILE_OPEN, ("/etc/q" + std::to_string(i)).c_str(), 9), in("quiet"));
            if (i % 1000 == 999)
                p.flush();
        }
        p.flush();
        // The destructor writes what is queued; stats first, from a pipeline that has caught up.
        for (int i = 0; i < 500 && p.stats().jsonl_written < 20'042; ++i)
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        const auto st = p.stats();
        EXPECT_EQ(st.jsonl_written, 20'042u);
        EXPECT_EQ(st.jsonl_lost, 0u);
        rotations = st.jsonl_rotations;
        carried = st.jsonl_carried;
    }
    EXPECT_GT(rotations, 10u) << "the flood must have rotated the file many times";
    EXPECT_GT(carried, 0u);
    std::map<std::string, int> quiet, attach, secret, connects_kept;
    for (const auto& [name, lines] : read_all())
        for (const auto& j : lines) {
            const auto agent = j["unmapped"].value("agent", j.value("agent", std::string()));
            const std::string path = j.contains("file") ? j["file"].value("path", "") : "";
            if (agent == "quiet")
                ++quiet[path];
            else if (j.value("class_uid", 0) == 6003)
                ++attach[name];
            else if (path == "/etc/secret")
                ++secret[name];
            else if (name == "events.jsonl.kept")
                ++connects_kept[name];
        }
    EXPECT_EQ(quiet.size(), 40u) << "every record of the quiet agent";
    for (const auto& [path, n] : quiet)
        EXPECT_EQ(n, 1) << path << " is in the files once";
    EXPECT_EQ(attach, (std::map<std::string, int>{{"events.jsonl.kept", 1}}));
    EXPECT_EQ(secret, (std::map<std::string, int>{{"events.jsonl.kept", 1}}));
    EXPECT_EQ(connects_kept["events.jsonl.kept"], 8) << "the flooder's first denied connects";
    // FILE and FILE.1..2 at most kMax each, FILE.kept, FILE.carried and their .1 too.
    EXPECT_LE(bytes(), 7 * kMax);
}

/// Lines in all the files whose text holds `needle`.
int lines_with(const std::map<std::string, std::vector<json>>& files, const std::string& needle)
{
    int n = 0;
    for (const auto& [name, lines] : files)
        for (const auto& j : lines)
            n += j.dump().find(needle) != std::string::npos;
    return n;
}

// The hostile review: an agent whose long lines are carried as a quiet agent's at every
// rotation rolled FILE.kept over until its attach record and its secret read were gone.
// Reserved lines have a file of their own that carried lines cannot roll.
TEST_F(PipelineJsonlTest, CarriedLinesCannotRollTheReservedOnesAway)
{
    {
        Pipeline p(jsonl_only(256 << 10, 2));
        p.push_action({{"op", "attach"}, {"agent", "evil"}, {"result", "ok"}});
        p.push(denied(CORDON_HOOK_FILE_OPEN, "/etc/secret", 7), in("evil"));
        const std::string longpath = "/tmp/" + std::string(240, 'l');
        for (int i = 0; i < 40'000; ++i) {
            p.push(denied(CORDON_HOOK_FILE_OPEN, "/b", 9), in("busy"));
            if (i % 8 == 0)
                p.push(denied(CORDON_HOOK_FILE_OPEN, (longpath + std::to_string(i)).c_str(), 7), in("evil"));
            if (i % 1000 == 999)
                p.flush();
        }
        p.flush();
    }
    const auto files = read_all();
    EXPECT_EQ(lines_with(files, "\"operation\":\"attach\""), 1) << "the attach record, once";
    EXPECT_EQ(lines_with(files, "/etc/secret"), 1) << "the secret read, once";
    EXPECT_TRUE(files.contains("events.jsonl.carried.1")) << "carried lines rolled over meanwhile";
}

// A rotation that cannot be made (FILE.2 is a directory someone left there) is an error in
// status, and the file grows past its size rather than losing a record or overwriting FILE.1.
TEST_F(PipelineJsonlTest, ARotationThatFailsSaysSoAndLosesNothing)
{
    fs::create_directories(dir / "events.jsonl.2" / "in-the-way");
    std::string error;
    {
        Pipeline p(jsonl_only(64 << 10, 2));
        p.push_action({{"op", "attach"}, {"agent", "a"}, {"result", "ok"}});
        for (int i = 0; i < 3000; ++i) {
            p.push(denied(CORDON_HOOK_FILE_OPEN, ("/f" + std::to_string(i)).c_str(), 9), in("a"));
            if (i % 500 == 499) {
                p.flush();
                std::this_thread::sleep_for(std::chrono::milliseconds(20));
            }
        }
        p.flush();
        for (int i = 0; i < 500 && p.stats().jsonl_written < 3001; ++i)
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        const auto st = p.stats();
        EXPECT_EQ(st.jsonl_written, 3001u);
        EXPECT_EQ(st.jsonl_lost, 0u);
        error = st.jsonl_error;
    }
    EXPECT_NE(error.find("cannot"), std::string::npos) << error;
    fs::remove_all(dir / "events.jsonl.2");
    const auto files = read_all();
    EXPECT_EQ(lines_with(files, "\"operation\":\"attach\""), 1);
    for (int i : {0, 1, 1500, 2999})
        EXPECT_EQ(lines_with(files, "\"/f" + std::to_string(i) + "\""), 1) << i;
}

} // namespace
} // namespace cordon::events
