// SPDX-License-Identifier: Apache-2.0
// cordond's control protocol (docs/api.md): one JSON object per line each way, version 1. The
// decoder is the daemon's whole attack surface towards its callers: it accepts exactly the
// documented requests and turns everything else into a ProtocolError (fuzzed in tests/fuzz).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace cordon::api {

inline constexpr int kVersion = 1;
/// Longest request line: a policy of the largest accepted size (8 MiB) plus its envelope.
inline constexpr std::size_t kMaxRequestBytes = (8u << 20) + (64u << 10);
/// Default socket path.
inline constexpr const char* kDefaultSocket = "/run/cordon/cordon.sock";

enum class Op {
    Ping, Status, Agents, Attach, Detach, Run, Release, Subscribe, Kill, Freeze, Thaw, Apply, Mode,
    Trust, TrustSet, TaskBegin, TaskEnd, Tasks, Grant, Grants, Revoke, Explain,
    Count ///< not an op: the number of ops, for tables indexed by Op
};
inline constexpr std::size_t kOpCount = static_cast<std::size_t>(Op::Count);
const char* op_name(Op op);
/// Whether a request changes state (and is recorded as an operator action).
bool changes_state(Op op);

struct PolicyText {
    std::string file; ///< the name diagnostics use
    std::string text;
};

struct Request {
    Op op = Op::Ping;
    std::optional<std::string> name;     ///< agent name (attach, run: wanted; the others: which)
    /// attach: a cgroup directory, or PARENT/PATTERN with one '*' in the last component (a
    /// template: every matching child of PARENT, made now or later, is an agent of its own)
    std::optional<std::string> cgroup;
    std::optional<bool> wait;            ///< attach: the path need not exist yet
    std::optional<PolicyText> policy;    ///< attach, run, apply
    std::optional<std::string> user, home, workspace; ///< policy variables (attach, run)
    std::optional<std::string> mode;     ///< "enforce" | "audit" (attach, run, apply, mode)
    std::optional<std::string> reason;   ///< every op that changes state: recorded with it
    std::optional<std::int64_t> score;   ///< trust_set: 0..1000
    std::optional<std::string> id;       ///< task_begin, task_end: the task id
    std::optional<std::string> ttl;      ///< task_begin, grant: a duration ("90s", "5m", "1h")
    std::optional<std::int64_t> pid;     ///< task_begin: bind the task to this process subtree
    std::optional<std::string> kind;     ///< grant, explain: exec | read | write | connect
    /// grant: PATH, or CIDR|HOST[:PORTS][/tcp|udp]; explain: PATH, or ADDR:PORT[/tcp|udp]
    std::optional<std::string> target;
    std::optional<std::string> task;     ///< grant: bind the grant to this task
    std::optional<std::int64_t> grant;   ///< revoke: the grant id
    /// kill, freeze: the caller's CLOCK_MONOTONIC when it wrote the request (same host), so that
    /// the reply can say how long the request waited before cordond read it.
    std::optional<std::int64_t> sent_ns;
};

/// A request with only its op set.
inline Request request(Op op)
{
    Request r;
    r.op = op;
    return r;
}

class ProtocolError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

/// Decodes one request line; throws ProtocolError naming what is wrong.
Request decode_request(std::string_view line);
/// The request as a line (no newline), for clients.
std::string encode_request(const Request& r);

/// {"v":1,"ok":true, ...fields}
std::string ok_reply(nlohmann::json fields = nlohmann::json::object());
/// {"v":1,"ok":false,"error":text}
std::string error_reply(const std::string& text);

} // namespace cordon::api
