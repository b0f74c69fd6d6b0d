// SPDX-License-Identifier: Apache-2.0
// Policy files as a new user hands them over: the shipped ones must pass; malformed ones must
// each give one clear error, and `cordon policy check` must exit non-zero on them.
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "policy_test_util.h"

namespace cordon::policy::testing {
namespace {

namespace fs = std::filesystem;

TEST(ShippedPolicies, EveryPolicyInPoliciesDirChecksAndCompiles)
{
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(CORDON_POLICIES_DIR)) {
        if (e.path().extension() != ".yaml")
            continue;
        names.push_back(e.path().filename());
        auto r = load_policy_file(e.path(), test_context());
        ASSERT_TRUE(r.policy) << r.errors.at(0).str();
        auto c = compile(*r.policy, 1);
        EXPECT_TRUE(c.compiled) << c.errors.at(0).str();
    }
    std::sort(names.begin(), names.end());
    EXPECT_EQ(names, (std::vector<std::string>{"browsing-agent.yaml", "coding-agent.yaml",
                                               "quarantine.yaml", "readonly-analyst.yaml"}));
}

TEST(ShippedPolicies, EveryOverlayInPoliciesOverlaysChecksAndCompiles)
{
    int n = 0;
    for (const auto& e : fs::directory_iterator(fs::path(CORDON_POLICIES_DIR) / "overlays")) {
        if (e.path().extension() != ".yaml")
            continue;
        ++n;
        auto r = load_overlay_file(e.path(), test_context());
        ASSERT_TRUE(r.policy) << r.errors.at(0).str();
        EXPECT_TRUE(r.policy->overlay);
        auto c = compile(*r.policy, 1);
        EXPECT_TRUE(c.compiled) << c.errors.at(0).str();
    }
    EXPECT_GE(n, 1);
}

class TempDir {
public:
    TempDir()
    {
        char tmpl[] = "/tmp/cordon-policy-test-XXXXXX";
        path_ = ::mkdtemp(tmpl);
    }
    ~TempDir() { fs::remove_all(path_); }
    fs::path file(const std::string& name, const std::string& content) const
    {
        std::ofstream(path_ / name, std::ios::binary) << content;
        return path_ / name;
    }
    const fs::path& path() const { return path_; }

private:
    fs::path path_;
};

std::string yaml_bomb()
{
    std::string s = "a: &a [\"x\", \"x\", \"x\", \"x\", \"x\", \"x\", \"x\", \"x\", \"x\", \"x\"]\n";
    for (char c = 'b'; c <= 'j'; ++c) {
        const char prev = static_cast<char>(c - 1);
        s += std::string(1, c) + ": &" + c + " [";
        for (int i = 0; i < 10; ++i)
            s += std::string(i ? ", " : "") + "*" + prev;
        s += "]\n";
    }
    return s;
}

struct BadFileCase {
    const char* name;
    std::function<fs::path(const TempDir&)> make;
    std::string want_substring;
};
void PrintTo(const BadFileCase& c, std::ostream* os) { *os << c.name; }

class BadFileTest : public ::testing::TestWithParam<BadFileCase> {};

TEST_P(BadFileTest, GivesOneClearErrorAndCheckFails)
{
    TempDir dir;
    const fs::path p = GetParam().make(dir);
    const auto r = load_policy_file(p, test_context());
    EXPECT_FALSE(r.policy);
    ASSERT_EQ(r.errors.size(), 1u) << (r.errors.empty() ? "" : r.errors[1].str());
    EXPECT_NE(r.errors[0].str().find(GetParam().want_substring), std::string::npos)
        << r.errors[0].str();
    EXPECT_EQ(r.errors[0].file, p.string());

    // The CLI says the same and exits 1.
    const std::string cmd = std::string(CORDON_BINARY) + " policy check '" + p.string() +
                            "' --workspace /tmp 2>&1";
    FILE* out = ::popen(cmd.c_str(), "r");
    ASSERT_NE(out, nullptr);
    std::string text;
    char buf[4096];
    for (size_t n; (n = std::fread(buf, 1, sizeof(buf), out)) > 0;)
        text.append(buf, n);
    const int status = ::pclose(out);
    ASSERT_TRUE(WIFEXITED(status)) << text;
    EXPECT_EQ(WEXITSTATUS(status), 1) << text;
    EXPECT_NE(text.find(GetParam().want_substring), std::string::npos) << text;
}

const BadFileCase kBadFiles[] = {
    {.name = "EmptyFile", .make = [](const TempDir& d) { return d.file("empty.yaml", ""); },
     .want_substring = "the policy is empty; expected a mapping"},
    {.name = "TabsForIndentation",
     .make = [](const TempDir& d) { return d.file("tabs.yaml", minimal().replace(minimal().find("  name"), 2, "\t")); },
     .want_substring = ":4:1: tab in indentation; expected spaces"},
    {.name = "YamlAliasBomb", .make = [](const TempDir& d) { return d.file("bomb.yaml", yaml_bomb()); },
     .want_substring = "expands to more than 2000000 YAML nodes"},
    {.name = "FiftyMegabytes",
     .make = [](const TempDir& d) { return d.file("big.yaml", minimal() + "#" + std::string(50u << 20, 'x') + "\n"); },
     .want_substring = "bytes; expected at most 8388608 (8 MiB) for a policy"},
    {.name = "BinaryGarbage",
     .make = [](const TempDir& d) {
         std::string g;
         for (int i = 0; i < 4096; ++i)
             g.push_back(static_cast<char>((i * 7919 + 13) & 0xff));
         return d.file("garbage.yaml", g);
     },
     .want_substring = "so it is binary; expected a YAML text file"},
    {.name = "Latin1NotUtf8",
     .make = [](const TempDir& d) { return d.file("latin1.yaml", minimal("  # caf\xe9\n")); },
     .want_substring = "is not UTF-8 text"},
    {.name = "DirectoryGivenAsFile", .make = [](const TempDir& d) { return d.path(); },
     .want_substring = "is a directory; expected a policy file"},
    {.name = "MissingFile", .make = [](const TempDir& d) { return d.path() / "nope.yaml"; },
     .want_substring = "cannot read the policy: No such file or directory"},
    {.name = "DeepNesting",
     .make = [](const TempDir& d) { return d.file("deep.yaml", std::string(200, '[') + std::string(200, ']')); },
     .want_substring = "nests deeper than 32 levels"},
};

INSTANTIATE_TEST_SUITE_P(Cases, BadFileTest, ::testing::ValuesIn(kBadFiles),
                         [](const auto& tp) { return std::string(tp.param.name); });

TEST(PolicyCheckCli, ExitsZeroOnValidFilesAndListsEveryError)
{
    TempDir dir;
    const auto good = dir.file("good.yaml", minimal());
    const auto bad = dir.file("bad.yaml", minimal("  mode: loud\n  trace: some\n"));
    const auto run = [](const std::string& args, std::string& text) {
        FILE* out = ::popen((std::string(CORDON_BINARY) + " policy check " + args + " 2>&1").c_str(), "r");
        char buf[4096];
        for (size_t n; (n = std::fread(buf, 1, sizeof(buf), out)) > 0;)
            text.append(buf, n);
        return WEXITSTATUS(::pclose(out));
    };
    std::string text;
    EXPECT_EQ(run(good.string(), text), 0) << text;
    text.clear();
    EXPECT_EQ(run(good.string() + " " + bad.string(), text), 1) << text;
    EXPECT_NE(text.find(bad.string() + ":6:9: unknown mode 'loud'"), std::string::npos) << text;
    EXPECT_NE(text.find(bad.string() + ":7:10: unknown trace 'some'"), std::string::npos) << text;
    EXPECT_NE(text.find(bad.string() + ": 2 errors"), std::string::npos) << text;
}

} // namespace
} // namespace cordon::policy::testing
