// SPDX-License-Identifier: Apache-2.0
// libbpf's messages through spdlog, for cordon and cordond alike.
#pragma once

namespace cordon::bpf {

/// Routes libbpf's output to spdlog at debug level (libbpf's own debug output only at trace
/// level): libbpf warnings during probes are expected (a refused program is the answer), so they
/// are shown with -v only.
void log_libbpf_to_spdlog();

} // namespace cordon::bpf
