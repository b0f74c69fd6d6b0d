// SPDX-License-Identifier: Apache-2.0
// The kill switch's and policy apply's latency through the real cordond (bench/live_control.cpp).
#pragma once

#include <filesystem>

#include <cordon/abi.h>

namespace cordon::bench {

/// Blocks until the cgroup's cgroup.events says "populated 0" (POLLPRI on each change).
void wait_empty(const std::filesystem::path& cg);
/// Prints the "Kill switch and policy apply" section of docs/benchmarks.md.
void live_control(cordon_backend backend, const std::filesystem::path& ws);
/// Prints the "Just-in-time grants" section: reply to first decision, BPF time per decision.
void grants(cordon_backend backend, const std::filesystem::path& ws);
/// "A kill never waits": `cordon kill` against a bare cgroup.kill under agent load, and the kill
/// reply's time under load on cordond (bench/kill_wait.cpp).
void kill_wait(cordon_backend backend, const std::filesystem::path& ws);
/// "Cgroup churn": mkdir + rmdir per second with the cgroup-creation program loaded, against
/// none (bench/cgroup_churn.cpp).
void cgroup_churn(cordon_backend backend);
/// The event pipeline: records/s into JSONL and SQLite, CPU per record, loss at fixed rates
/// sustained for `seconds`.
void forensics(cordon_backend backend, const std::filesystem::path& ws, int seconds);
/// The store thread's steps with no kernel: OCSF formatting, the JSONL write, the SQLite
/// append, each records/s and CPU per record, for `n` records (bench/store.cpp).
void store_steps(const std::filesystem::path& ws, std::size_t n);
/// Fair shares of the event buffer: 1 and 10 agents flooding, one quiet agent (bench/forensics.cpp).
void fairness(int seconds, const std::filesystem::path& ws);
/// "DNS gateway": a lookup's added latency (p50, p99), lookups per second, and a connect
/// decided by an answered address among 10,000 against one decided by a cidr rule.
void dns(cordon_backend backend, const std::filesystem::path& ws);

} // namespace cordon::bench
