// SPDX-License-Identifier: Apache-2.0
// CLOCK_MONOTONIC in nanoseconds: the clock of bpf_ktime_get_ns() and of the times cordond puts
// in its replies, so that a caller on the same host can compare them with its own.
#pragma once

#include <time.h>

#include <cstdint>

namespace cordon {

inline std::int64_t monotonic_ns()
{
    timespec ts{};
    ::clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

} // namespace cordon
