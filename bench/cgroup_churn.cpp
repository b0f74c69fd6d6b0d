// SPDX-License-Identifier: Apache-2.0
// What the cgroup-creation program (bpf/cgroup_guard.bpf.c) costs a host with container churn:
// mkdir + rmdir of a cgroup, per second, with no cordon loaded and with the program set loaded
// holding 0, 10 and 1,000 attached paths and templates (half each), measured side by side in one
// run, repetitions interleaved. The churned cgroups match nothing (the host's own churn); one
// more row churns children that a template matches (each mkdir makes an agent, each rmdir ends
// it), for information.
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "agents/cgroup.h"
#include "bpf/guard.h"
#include "common/error.h"
#include "kernel_test_util.h"
#include "live_control.h"

namespace cordon::bench {

namespace {

namespace fs = std::filesystem;

constexpr int kReps = 7;
constexpr int kPairs = 3000; // mkdir + rmdir pairs per sample

double median_of(std::vector<double> v)
{
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}

// mkdir + rmdir pairs per second of `name`'s children in `parent`.
double churn(const fs::path& parent, const std::string& name)
{
    const auto start = std::chrono::steady_clock::now();
    for (int i = 0; i < kPairs; ++i) {
        const fs::path c = parent / (name + std::to_string(i));
        if (::mkdir(c.c_str(), 0755) != 0 || ::rmdir(c.c_str()) != 0)
            throw Error("churn: cannot make and remove " + c.string() + ": " + errno_text(errno));
    }
    const std::chrono::duration<double> took = std::chrono::steady_clock::now() - start;
    return kPairs / took.count();
}

std::string rel_of(const fs::path& p)
{
    return "/" + p.lexically_relative(testing::cgroup2().mount_point).string();
}

// n bindings: n/2 attached paths and n/2 templates (each on a parent of its own), none of which
// the churned names match.
void bind(bpf::Guard& g, const fs::path& base, int from, int to)
{
    for (int i = from; i < to; ++i) {
        if (i % 2 == 0) {
            g.bind_path(rel_of(base / fmt::format("svc-{}", i)), CORDON_AGENT_KEY(1'000'000 + i));
        } else {
            cordon_template t{};
            t.template_id = static_cast<__u32>(10'000 + i);
            t.proto.level = static_cast<__u8>(testing::cgroup2().root_level + 4);
            t.star = 1;
            t.prefix_len = 6;
            std::memcpy(t.prefix, "agent@", 6);
            g.set_template(rel_of(base / fmt::format("parent-{}", i)), t);
        }
    }
}

} // namespace

void cgroup_churn(cordon_backend backend)
{
    auto base = testing::make_test_cgroup(); // holds the churn and names every binding
    const fs::path parent = base.path() / "churn";
    ::mkdir(parent.c_str(), 0755);
    enum Config { kAbsent, kWithout, kZero, kTen, kThousand, kMatching, kConfigs };
    std::vector<std::vector<double>> rates(kConfigs);
    for (int rep = 0; rep < kReps; ++rep) {
        rates[kAbsent].push_back(churn(parent, "c"));
        {
            // The backend's own cost (compat's syscall-exit tracepoints tax every syscall):
            // the same set without the two cgroup programs.
            auto o = testing::guard_options(backend);
            o.cgroup_guard = false;
            bpf::Guard without(o);
            rates[kWithout].push_back(churn(parent, "c"));
        }
        std::optional<bpf::Guard> g;
        g.emplace(testing::guard_options(backend));
        rates[kZero].push_back(churn(parent, "c"));
        bind(*g, base.path(), 0, 10);
        rates[kTen].push_back(churn(parent, "c"));
        bind(*g, base.path(), 10, 1000);
        rates[kThousand].push_back(churn(parent, "c"));
        // A template on the churned parent: each child is an agent for its short life.
        cordon_template t{};
        t.template_id = 1;
        t.proto.level = static_cast<__u8>(testing::cgroup2().root_level + 4);
        t.star = 1;
        t.prefix_len = 1;
        t.prefix[0] = 'm';
        t.initial_score = 1000;
        g->set_template(rel_of(parent), t);
        rates[kMatching].push_back(churn(parent, "m"));
        g.reset();
        // The next rep starts unloaded again: absent and loaded alternate through the run.
    }
    ::rmdir(parent.c_str());
    const double absent = median_of(rates[kAbsent]);
    const double without = median_of(rates[kWithout]);
    std::printf("\n## Cgroup churn with cordon loaded (issue 23)\n\n");
    std::printf("`sudo build/bench/cordon_bench churn`, %s backend: mkdir + rmdir of a cgroup "
                "(%d pairs per sample, %d repetitions interleaved, medians). The churned "
                "cgroups match no binding but the last row's. The cgroup programs' own cost is "
                "the last column: against the same program set loaded without them. Target: "
                "<= 1.05.\n\n",
                bpf::backend_name(backend).data(), kPairs, kReps);
    std::printf("| configuration | pairs/s | cost per pair against absent | against loaded "
                "without the cgroup programs |\n|---|---|---|---|\n");
    const char* names[kConfigs] = {"absent (no cordon)",
                                   "loaded without the cgroup programs",
                                   "loaded, 0 paths or templates",
                                   "loaded, 10 (5 paths, 5 templates)",
                                   "loaded, 1,000 (500 paths, 500 templates)",
                                   "loaded, 1,000, each child matched by a template (an agent "
                                   "made and ended per pair)"};
    for (int c = 0; c < kConfigs; ++c) {
        const double r = median_of(rates[c]);
        const double own = without / r;
        std::string verdict;
        if (c > kWithout && c != kMatching)
            verdict = own <= 1.05 ? " (<= 1.05: met)" : " (<= 1.05: missed)";
        std::printf("| %s | %.0f | %.3f | %s |\n", names[c], r, absent / r,
                    c <= kWithout ? "-" : fmt::format("{:.3f}{}", own, verdict).c_str());
    }
}

} // namespace cordon::bench
