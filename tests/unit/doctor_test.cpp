// SPDX-License-Identifier: Apache-2.0
// doctor's decision logic with faked probe results: no kernel, no privileges.
#include <map>
#include <set>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "bpf/features.h"
#include "control/doctor.h"

namespace cordon {
namespace {

using bpf::Probe;

// A kernel described by the probes it fails; counts how often each probe runs.
class FakeProbes final : public bpf::ProbeSource {
public:
    FakeProbes(std::set<Probe> missing, std::map<Probe, int>* calls)
        : missing_(std::move(missing)), calls_(calls)
    {
    }
    bpf::ProbeResult run(Probe p) override
    {
        if (calls_)
            ++(*calls_)[p];
        if (missing_.contains(p))
            return {false, "faked missing"};
        return {true, "faked ok"};
    }

private:
    std::set<Probe> missing_;
    std::map<Probe, int>* calls_;
};

bpf::Features features(std::set<Probe> missing, std::map<Probe, int>* calls = nullptr)
{
    return bpf::Features(std::make_unique<FakeProbes>(std::move(missing), calls));
}

struct BackendCase {
    const char* name;
    std::set<Probe> missing;
    cordon_backend want;
    int want_exit;
};

class ChooseBackendTest : public ::testing::TestWithParam<BackendCase> {};

TEST_P(ChooseBackendTest, PicksTheBestUsableBackend)
{
    auto f = features(GetParam().missing);
    EXPECT_EQ(bpf::choose_backend(f), GetParam().want);
    EXPECT_EQ(control::doctor_exit_code(f), GetParam().want_exit);
}

const BackendCase kBackendCases[] = {
    {.name = "EverythingPresentIsLsm", .missing = {}, .want = CORDON_BACKEND_LSM, .want_exit = 0},
    {.name = "LsmListedButRefusedIsFmodRet", .missing = {Probe::LsmAttach},
     .want = CORDON_BACKEND_FMOD_RET, .want_exit = 0},
    {.name = "LsmNotListedIsFmodRet", .missing = {Probe::LsmListed, Probe::LsmAttach},
     .want = CORDON_BACKEND_FMOD_RET, .want_exit = 0},
    {.name = "NoTrampolinesIsCompat", .missing = {Probe::LsmAttach, Probe::FmodRet},
     .want = CORDON_BACKEND_COMPAT, .want_exit = 0},
    {.name = "NoLsmNoFmodRetIsCompat",
     .missing = {Probe::LsmListed, Probe::LsmAttach, Probe::FmodRet},
     .want = CORDON_BACKEND_COMPAT, .want_exit = 0},
    {.name = "NoFmodRetStillLsm", .missing = {Probe::FmodRet}, .want = CORDON_BACKEND_LSM,
     .want_exit = 0},
    {.name = "NoTpBtfStillLsm", .missing = {Probe::TpBtf}, .want = CORDON_BACKEND_LSM,
     .want_exit = 0},
    {.name = "NoTpBtfNoLsmIsFmodRet", .missing = {Probe::TpBtf, Probe::LsmAttach},
     .want = CORDON_BACKEND_FMOD_RET, .want_exit = 0},
    {.name = "NoTpBtfNoTrampolinesIsNone",
     .missing = {Probe::TpBtf, Probe::LsmAttach, Probe::FmodRet}, .want = CORDON_BACKEND_NONE,
     .want_exit = 1},
    {.name = "NoBtfIsNone", .missing = {Probe::Btf}, .want = CORDON_BACKEND_NONE, .want_exit = 1},
    {.name = "NoRingBufferIsNone", .missing = {Probe::RingBuffer}, .want = CORDON_BACKEND_NONE,
     .want_exit = 1},
    {.name = "NoCgroup2IsNone", .missing = {Probe::Cgroup2}, .want = CORDON_BACKEND_NONE,
     .want_exit = 1},
    {.name = "NoCgroupKillIsNone", .missing = {Probe::CgroupKill}, .want = CORDON_BACKEND_NONE,
     .want_exit = 1},
    {.name = "NoSockAddrIsNone", .missing = {Probe::SockAddr}, .want = CORDON_BACKEND_NONE,
     .want_exit = 1},
    {.name = "NoFreezeNoTracefsIsStillLsm", .missing = {Probe::CgroupFreeze, Probe::Tracefs},
     .want = CORDON_BACKEND_LSM, .want_exit = 0},
};

INSTANTIATE_TEST_SUITE_P(Cases, ChooseBackendTest, ::testing::ValuesIn(kBackendCases),
                         [](const auto& tp) { return std::string(tp.param.name); });

TEST(Features, RunsEachProbeOnce)
{
    std::map<Probe, int> calls;
    auto f = features({Probe::LsmAttach}, &calls);
    bpf::choose_backend(f);
    bpf::choose_backend(f);
    control::doctor_json(f, "test");
    for (const auto& [probe, n] : calls)
        EXPECT_EQ(n, 1) << bpf::probe_name(probe);
}

TEST(DoctorReport, JsonNamesEveryProbeAndTheBackend)
{
    auto f = features({Probe::LsmAttach, Probe::FmodRet});
    const auto doc = nlohmann::json::parse(control::doctor_json(f, "6.18-test"));
    EXPECT_EQ(doc.at("kernel"), "6.18-test");
    EXPECT_EQ(doc.at("backend"), "compat");
    ASSERT_EQ(doc.at("probes").size(), bpf::kProbeCount);
    const auto& lsm = doc["probes"][static_cast<size_t>(Probe::LsmAttach)];
    EXPECT_EQ(lsm.at("name"), "lsm_attach");
    EXPECT_EQ(lsm.at("ok"), false);
    EXPECT_EQ(lsm.at("detail"), "faked missing");
    EXPECT_EQ(lsm.at("required_by"), nlohmann::json::array({"lsm"}));
    EXPECT_FALSE(lsm.at("impact").get<std::string>().empty());
    EXPECT_FALSE(doc.at("limits").empty());
}

TEST(DoctorReport, JsonSaysWhyEachBackendWasOrWasNotChosen)
{
    auto f = features({Probe::LsmListed, Probe::LsmAttach});
    const auto doc = nlohmann::json::parse(control::doctor_json(f, "x"));
    EXPECT_EQ(doc.at("backend"), "fmod_ret");
    const auto& b = doc.at("backends");
    ASSERT_EQ(b.size(), 3u);
    EXPECT_EQ(b[0].at("name"), "lsm");
    EXPECT_EQ(b[0].at("usable"), false);
    EXPECT_EQ(b[0].at("why"), "not usable: lsm_listed, lsm_attach missing");
    EXPECT_EQ(b[1].at("name"), "fmod_ret");
    EXPECT_EQ(b[1].at("chosen"), true);
    EXPECT_EQ(b[1].at("why"), "chosen");
    EXPECT_EQ(b[2].at("name"), "compat");
    EXPECT_EQ(b[2].at("usable"), true);
    EXPECT_EQ(b[2].at("chosen"), false);
    EXPECT_EQ(b[2].at("why"), "usable, not chosen: fmod_ret comes first");
    // fmod_ret runs the lsm programs: it promises what lsm does, and says what it adds.
    const auto text = doc.at("guarantees").dump() + doc.at("limits").dump();
    EXPECT_NE(text.find("fail with EPERM before any effect"), std::string::npos) << text;
    EXPECT_NE(text.find("link-time optimisation"), std::string::npos) << text;
}

TEST(DoctorReport, TextShowsMissingProbesWithTheirImpact)
{
    auto f = features({Probe::LsmAttach, Probe::FmodRet});
    const auto text = control::doctor_text(f, "6.18-test");
    EXPECT_NE(text.find("missing  lsm_attach"), std::string::npos) << text;
    EXPECT_NE(text.find("(needed by: lsm)"), std::string::npos) << text;
    EXPECT_NE(text.find("missing  fmod_ret"), std::string::npos) << text;
    EXPECT_NE(text.find("(needed by: fmod_ret)"), std::string::npos) << text;
    EXPECT_NE(text.find("fmod_ret  not usable: fmod_ret missing"), std::string::npos) << text;
    EXPECT_NE(text.find("compat    chosen"), std::string::npos) << text;
    EXPECT_NE(text.find("backend: compat"), std::string::npos) << text;
}

TEST(DoctorReport, NoBackendSaysNothingIsEnforced)
{
    auto f = features({Probe::Btf});
    const auto text = control::doctor_text(f, "x");
    EXPECT_NE(text.find("backend: none"), std::string::npos);
    EXPECT_NE(text.find("nothing is enforced"), std::string::npos);
}

} // namespace
} // namespace cordon
