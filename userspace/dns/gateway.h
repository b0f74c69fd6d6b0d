// SPDX-License-Identifier: Apache-2.0
// The DNS gateway: the controller's resolver for its agents (docs/policy.md, "Host names").
//
// The programs steer every agent's DNS (UDP and TCP to port 53 of any address) to this
// gateway's port on 127.0.0.1 and ::1 (bpf/net_guard.bpf.c, dns_steer), recording each steered
// socket: whose it is, under which policy, and where it meant to go. For each query the gateway
//   1. finds the sending socket (sock_diag, by its address and port) and the programs' record of
//      it: a sender the programs did not steer is refused;
//   2. looks the name up in the agent's policy's host rules (cordon_dns_rules: the exact name,
//      then each "*." wildcard above it); a name no rule names is refused (network.dns.unknown:
//      refuse) or passed without binding anything (pass, and in audit mode, where it is
//      reported as what enforce would refuse);
//   3. forwards it to the upstream resolver (the host's, from resolv.conf, or --dns-upstream)
//      over the transport the agent used, with an id of its own;
//   4. writes the answer's A and AAAA addresses (CNAME chains followed from the question) into
//      cordon_dns_hosts for that agent and policy, with the rule's ports and action, until the
//      answer's TTL plus network.dns.grace has passed, and only then releases the answer.
// Fails closed: no upstream, an upstream that does not answer within the timeout, an answer
// that does not parse or does not match the question: SERVFAIL and nothing bound; an address
// the map has no room for: REFUSED, counted and reported. When the gateway stops, the
// programs refuse DNS (CORDON_DNS_DOWN) until a gateway runs again.
//
// One thread of its own: a query flood never delays the controller's loop (kill, freeze and
// apply), and each agent may have a bounded number of queries in flight, so one agent's flood
// meets its own limit first.
#pragma once

#include <sys/socket.h>

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/pi_mutex.h"

namespace cordon::bpf {
class Guard;
}

namespace cordon::dns {

struct Upstream {
    sockaddr_storage addr{};
    socklen_t len = 0;
    std::string text; ///< "127.0.0.1:53", "[::1]:5353"
};

/// "ADDR", "ADDR:PORT" or "[ADDR6]:PORT"; port 53 when none is given.
std::optional<Upstream> parse_upstream(const std::string& text, std::string& why);
/// The upstreams given (--dns-upstream), else resolv_conf's nameservers; empty with `why` when
/// there are none. Throws Error naming a given one that is not an address.
std::vector<Upstream> upstreams(const std::vector<std::string>& given,
                                const std::filesystem::path& resolv_conf, std::string& why);
/// The nameservers of a resolv.conf; empty with `why` when it names none.
std::vector<Upstream> upstreams_from(const std::filesystem::path& resolv_conf, std::string& why);

struct GatewayOptions {
    std::vector<Upstream> upstreams; ///< tried in order on timeout; none: every query SERVFAIL
    int timeout_ms = 2000;           ///< per upstream attempt
    unsigned per_agent_inflight = 32;
    unsigned max_inflight = 1024;
    std::uint16_t port = 0; ///< 0: any free port
};

/// One query's outcome, for the event stream (`dns` records).
struct Event {
    std::uint64_t agent = 0; ///< agent key
    std::uint32_t agent_id = 0;
    std::uint64_t task_id = 0;
    std::string name;
    std::uint16_t qtype = 0;
    bool tcp = false;
    /// "allowed" (answer bound and released), "refused" (no rule names it), "passed" (unknown,
    /// passed by policy or audit), "failed" (upstream down, slow or bad: SERVFAIL), "full" (the
    /// map had no room: REFUSED), "answered" (a rule names it, the answer has no address)
    std::string outcome;
    std::vector<std::string> addresses; ///< bound ("1.2.3.4", "2001:db8::1")
    std::uint32_t ttl = 0;              ///< the least TTL of the bound addresses
    std::uint32_t rule_id = 0;          ///< the first rule that names it (0: none)
    std::string rcode;                  ///< the upstream's answer code ("NOERROR", "NXDOMAIN")
    std::string reason;                 ///< why it failed or was refused
    bool audit = false;                 ///< audit mode: enforce would have refused it
};

/// The record of an event as the store and the JSONL sink take it (events/ocsf.h stored_dns),
/// for agent `agent` with the rule's source ("policy.yaml:12", "" none).
nlohmann::json event_json(const Event& e, const std::string& agent, const std::string& rule);
/// One line for a terminal or the log: "dns refused evil.example (TXT): no host rule names it".
std::string event_line(const Event& e);

struct GatewayStats {
    std::uint64_t queries = 0, allowed = 0, refused = 0, passed = 0, failed = 0, full = 0;
    std::uint64_t unattributed = 0; ///< senders the programs had not steered (refused)
    std::uint64_t busy = 0;         ///< over an agent's or the gateway's in-flight limit
    std::uint64_t malformed = 0;    ///< queries or answers that did not parse
    std::uint64_t events_dropped = 0;
    std::uint64_t bound = 0; ///< live (agent, address) entries now
    std::uint16_t port = 0;
    std::vector<std::string> upstreams;
};

/// An address an agent's answer bound, as `cordon agents` shows it.
struct Binding {
    std::uint64_t agent = 0;
    std::string name;
    std::string address;
    std::uint32_t rule_id = 0;
    std::int64_t expires_ns = 0; ///< CLOCK_MONOTONIC
};

class Gateway {
public:
    /// Binds the gateway's sockets (127.0.0.1 and ::1; ::1 is skipped when the host has no
    /// IPv6, and then IPv6 DNS fails closed), writes CORDON_DNS_ON, starts the thread. Throws
    /// Error when it cannot bind or write the state.
    Gateway(bpf::Guard& g, GatewayOptions o);
    /// Stops the thread and writes CORDON_DNS_DOWN: the programs refuse DNS from then on.
    ~Gateway();
    Gateway(const Gateway&) = delete;
    Gateway& operator=(const Gateway&) = delete;

    std::uint16_t port() const { return port_; }
    /// Owner's thread: the events since the last call (at most 65,536 are kept; the rest are
    /// counted in events_dropped).
    std::vector<Event> take_events();
    GatewayStats stats() const;
    /// The addresses bound now (all agents, or one).
    std::vector<Binding> bindings(std::uint64_t agent = 0) const;

    struct Impl;

private:
    std::unique_ptr<Impl> impl_;
    std::uint16_t port_ = 0;
    std::thread thread_;
};

} // namespace cordon::dns
