// SPDX-License-Identifier: Apache-2.0
// cordon's objects as the kernel lists them (its program and map id tables), independent of any
// bookkeeping of ours: for leak checks and for the benchmark's run-time statistics.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace cordon::bpf {

struct LoadedObject {
    bool is_map = false;
    std::string name;           ///< kernel name (at most 15 characters)
    std::uint64_t run_ns = 0;   ///< programs: total run time (kernel.bpf_stats_enabled)
    std::uint64_t run_cnt = 0;  ///< programs: runs counted while stats were enabled
};

/// Every loaded program named like cordon's guards and every map named cordon_*.
std::vector<LoadedObject> loaded_cordon_objects();

} // namespace cordon::bpf
