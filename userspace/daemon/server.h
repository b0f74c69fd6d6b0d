// SPDX-License-Identifier: Apache-2.0
// cordond: the one long-running controller of a host. One thread owns every BPF object and map
// (through control::Controller) and serves the control socket (docs/api.md).
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace cordon::daemon {

struct ServerOptions {
    std::filesystem::path socket = "/run/cordon/cordon.sock";
    std::filesystem::path registry = "/run/cordon/agents"; ///< one record file per agent
    std::filesystem::path pin_dir = "/sys/fs/bpf/cordon";
    std::filesystem::path actions_log = "/var/lib/cordon/actions.jsonl";
    /// Attachments and templates, kept across reboots (a file each); empty: not kept.
    std::filesystem::path attachments = "/var/lib/cordon/attachments";
    std::string backend = "auto";
    /// The forensic store (SQLite); empty: events.db beside the actions log. store_enabled
    /// false: none (the actions log and the JSONL file, if any, still are written).
    std::filesystem::path store;
    bool store_enabled = true;
    std::int64_t store_max_age_ms = 30LL * 24 * 3600 * 1000; ///< retention by age (0: none)
    std::uint64_t store_max_bytes = 1ull << 30;              ///< retention by size (0: none)
    std::uint32_t store_page_size = 4096;                    ///< a new store's page size
    std::filesystem::path events_jsonl;        ///< JSONL sink (OCSF fields); empty: none
    std::filesystem::path events_journal;      ///< the journal's socket; empty: no journal sink
    std::uint64_t jsonl_max_bytes = 64ull << 20; ///< rotate at this size
    unsigned jsonl_files = 5;                  ///< rotated files kept
    std::string metrics_listen;                ///< Prometheus endpoint ADDR:PORT; empty: none
    std::uint32_t ringbuf_bytes = 0;           ///< event ring buffer; 0: CORDON_RINGBUF_BYTES
    /// The DNS gateway's upstream resolvers (ADDR[:PORT]); empty: resolv_conf's nameservers.
    std::vector<std::string> dns_upstreams;
    std::filesystem::path resolv_conf = "/etc/resolv.conf";
    int dns_timeout_ms = 2000; ///< per upstream attempt, then SERVFAIL
};

/// Runs until SIGTERM or SIGINT; returns the exit status. Agents stay enforced after it
/// returns (their maps and links are pinned); `cordon teardown` removes them.
int serve(const ServerOptions& opts);

/// Whether a peer may use the API: root, or a member of group `cordon` when it exists, and in
/// neither an agent's cgroup nor cordon's own subtree. Empty when allowed, else the reason.
std::string refusal(int pid, unsigned uid, unsigned gid, const std::string& peer_cgroup,
                    const std::string& cordon_subtree, const std::vector<std::string>& agent_cgroups);

} // namespace cordon::daemon
