// SPDX-License-Identifier: Apache-2.0
// cordon's daemon verbs: thin clients of cordond's API (docs/api.md), and teardown.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "api/protocol.h"
#include "cli/stop.h"

namespace cordon::api {
class Client;
}

namespace cordon::cli {

// connect_or_fail() (a connection to cordond, or Error saying how to start it): cli/stop.h.
/// The policy file's text; nothing (and its diagnostics on stderr) when it cannot be read.
std::optional<std::string> read_policy_or_report(const std::string& file);

/// `cordon trust NAME [--json] [--set N --reason TEXT]`.
int trust(const std::string& name, std::optional<int> set, const std::string& reason, bool json);

struct TaskBegin {
    std::string name, id, overlay, ttl, reason;
    std::optional<int> pid;
};
int task_begin(const TaskBegin& t);
int task_end(const std::string& name, const std::string& id, const std::string& reason);
int task_list(const std::string& name, bool json);

struct GrantOptions {
    std::string name, exec, read, write, connect, ttl, task, reason;
};
int grant(const GrantOptions& g);
int grants(const std::string& name, bool json);
int revoke(const std::string& name, std::uint32_t id, const std::string& reason);

int agents(bool json);
int status(bool json);
int attach(const std::string& cgroup, const std::string& policy_file,
           const std::optional<std::string>& name, const std::optional<std::string>& mode,
           bool wait);
int detach(const std::string& name);
/// `cordon explain NAME PATH [--access read|write|exec]` or `NAME --connect ADDR:PORT[/proto]`.
struct ExplainOptions {
    std::string name, path, access = "read", connect;
    bool json = false;
};
int explain(const ExplainOptions& o);
/// kill, freeze, thaw, mode: one request about one agent; prints what happened.
int agent_op(api::Op op, const std::string& name, const std::string& reason,
             const std::string& mode);
/// `cordon policy apply NAME FILE`.
int apply(const std::string& name, const std::string& file, const std::optional<std::string>& mode,
          const std::string& reason);

/// `cordon trace [NAME] [--verdict ...] [--hook ...] [--json]`: live, from cordond.
struct TraceOptions {
    std::optional<std::string> name;
    std::vector<std::string> verdicts, hooks;
    bool json = false;
};
int trace(const TraceOptions& o);

/// A time option's value in ns since the epoch: "1h" (that long ago), "2026-11-29T10:00:00"
/// (local time; a trailing Z: UTC) or "@SECONDS". Throws Error naming `what` and the forms.
std::int64_t parse_time(const std::string& what, const std::string& text);

/// `cordon events [NAME] ...`: a query of the event store.
struct EventsOptions {
    std::optional<std::string> name;
    std::string store = "/var/lib/cordon/events.db";
    std::optional<std::string> since, until, path, dest;
    std::vector<std::string> verdicts, hooks;
    bool json = false, csv = false;
    std::size_t limit = 0;
};
int events_query(const EventsOptions& o);
/// `cordon events verify [NAME]`: exit 0 intact, 1 tampered (the first bad record named).
int events_verify(const std::string& store, const std::optional<std::string>& name);
/// `cordon report NAME [--json]`.
int report(const std::string& name, const std::string& store, bool json);

struct TeardownOptions {
    std::string pin_dir = "/sys/fs/bpf/cordon";
    std::string registry = "/run/cordon/agents";
};
/// Removes everything cordond put into the kernel and bpffs: ends the agents it started (they
/// would run unguarded), unpins its maps and links, removes its registry. Refuses while cordond
/// runs.
int teardown(const TeardownOptions& o);

} // namespace cordon::cli
