// SPDX-License-Identifier: Apache-2.0
// libbpf's messages through spdlog, for cordon and cordond alike.
#pragma once

#include <string>

namespace cordon::bpf {

/// Routes libbpf's output to spdlog at debug level (libbpf's own debug output only at trace
/// level): libbpf warnings during probes are expected (a refused program is the answer), so they
/// are shown with -v only.
void log_libbpf_to_spdlog();

/// The last lines of the verifier's log of the last program the kernel refused (through
/// log_libbpf_to_spdlog), joined by " | "; "" when none was seen.
std::string last_verifier_words();
/// Forgets them (before a load whose refusal should be explained by its own log).
void forget_verifier_words();

} // namespace cordon::bpf
