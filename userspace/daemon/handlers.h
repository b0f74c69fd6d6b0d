// SPDX-License-Identifier: Apache-2.0
// cordond's requests, one handler per op behind a table indexed by api::Op. A handler decides
// what its request means and returns it as a value: a reply now, a kill or freeze that replies
// once the cgroup settles, slow work for a worker thread with what to do with its result, or a
// ping answered once the ring buffer has been read up to it. It never reads or writes the socket.
// A new verb is one handler and one row; a row out of place fails the build.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <string>
#include <variant>

#include <nlohmann/json.hpp>

#include "api/protocol.h"
#include "control/controller.h"
#include "control/supervisor.h"
#include "daemon/peer.h"
#include "daemon/server.h"

namespace cordon::events {
class Pipeline;
class Reader;
} // namespace cordon::events

namespace cordon::dns {
class Gateway;
}

namespace cordon::daemon {

/// What the handlers share with the loop.
struct State {
    const ServerOptions& opts;
    control::Controller& ctl;
    control::Supervisor& sup;
    const events::Reader& reader;
    const events::Pipeline* pipeline;
    std::int64_t started_ms = 0;
    std::map<std::uint32_t, std::uint64_t> denials; ///< by agent id, from events read
    /// Recent trust changes by agent name (tier-change events read, operator sets), newest last.
    std::map<std::string, std::deque<nlohmann::json>> trust_log;
    std::uint64_t subscriber_drops = 0;
    /// Applies requested per agent name: a slow apply that a later one overtook is refused.
    std::map<std::string, std::uint64_t> apply_seq;
    /// Why `peer` may not hold one more subscription (empty: it may); the loop's caps.
    std::function<std::string(const Peer&)> subscription_refusal;
    /// Work for a worker thread that no caller waits for; `then` runs on the loop after it
    /// (also when it failed: the failure is logged).
    std::function<void(std::function<void()> work, std::function<void()> then)> background;
    /// The DNS gateway (null: none runs).
    dns::Gateway* gateway = nullptr;
    /// The metrics endpoint's state for status (null: none configured).
    std::function<nlohmann::json()> metrics_state;

    void note_trust(const std::string& agent, nlohmann::json change);
    /// Throws unless agent `name` is still the one with `id` (not detached or replaced while a
    /// slow request of it was being prepared).
    void same_agent(const std::string& name, std::uint32_t id) const;
    /// The agent a request names; throws the one "no agent named" error otherwise.
    const control::AgentRecord& agent(const api::Request& r) const;
};

/// A reply now: `fields` go to the caller, `details` into the actions log.
struct Reply {
    nlohmann::json fields = nlohmann::json::object();
    nlohmann::json details = nlohmann::json::object();
};
/// Slow work: `work` runs on a worker thread and must touch nothing of the loop's (it captures
/// copies, or what is safe on any thread); `then` runs on the loop with its result, given the
/// connection (null when the caller went away meanwhile). `abandon`, when set, runs on the loop
/// instead of `then` when the work failed or the caller went away (to undo what work did).
struct Slow {
    std::function<void()> work;
    std::function<Reply(Peer*)> then;
    std::function<void()> abandon;
};
/// A ping: answered once the ring buffer has been read up to it.
struct AfterDrain {};

using Outcome = std::variant<Reply, Pending, Slow, AfterDrain>;
using Handler = Outcome (*)(State&, Peer&, const api::Request&);

/// The handler of an op.
Handler handler_of(api::Op op);

} // namespace cordon::daemon
