// SPDX-License-Identifier: Apache-2.0
// cordond's Prometheus endpoint (opt-in: --metrics-listen). A small HTTP/1.0 server on a thread
// of its own serves the text the daemon's thread last published, so a scraper never touches a
// BPF map or waits on the daemon, and the daemon never waits on a scraper.
//
// Who may scrape: a connection whose client socket was made by a process inside an agent (or in
// cordon's subtree), or is held now by a process with a thread there, is closed unanswered, on
// every backend: the socket's cgroup, which the kernel records when the socket is made, is asked
// of the kernel (sock_diag) for each connection, and so are its holders' cgroups (/proc). Peers
// on other hosts are not local sockets and are served (the address chosen decides who can reach
// it). Bounded: at most kMaxConnections at once and kPerUid of one local user (the oldest goes
// for a new one), and kScrapeMs per connection from accept to the last byte. The port is bound
// without SO_REUSEPORT, so no other process can share it; if it is taken, cordond runs on and
// tries again each second (status says so).
#pragma once

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "agents/cgroup.h"
#include "common/pi_mutex.h"

namespace cordon::control {
class Controller;
}
namespace cordon::events {
class Pipeline;
}

namespace cordon::daemon {

class Metrics {
public:
    static constexpr std::size_t kMaxConnections = 16;
    static constexpr std::size_t kPerUid = 4; ///< connections of one local uid at once
    static constexpr std::size_t kMaxHead = 4096; ///< request head bytes
    static constexpr int kScrapeMs = 2000;

    /// What the endpoint is doing, for `cordon status`.
    struct State {
        std::string listen;
        bool listening = false;
        std::string error;           ///< why it is not listening (it tries again each second)
        std::uint64_t served = 0;    ///< scrapes answered
        std::uint64_t refused = 0;   ///< connections from inside an agent, closed unanswered
        std::uint64_t timed_out = 0; ///< connections closed at kScrapeMs or to make room
    };

    /// Serves "ADDR:PORT" (IPv4, or [IPv6]:PORT). Throws cordon::Error when the text is not an
    /// address and port; a port in use is not an error (see State). `mount`: the cgroup2 mount.
    Metrics(const std::string& listen, agents::Cgroup2Mount mount);
    ~Metrics();
    Metrics(const Metrics&) = delete;
    Metrics& operator=(const Metrics&) = delete;
    /// Replaces what GET /metrics returns (Prometheus text format 0.0.4), and the cgroups whose
    /// processes may not scrape (every agent's, and cordon's subtree).
    void publish(std::string text, std::vector<std::string> refused_cgroups);
    State state() const;

private:
    struct Conn;
    void serve();
    bool try_listen();
    void accept_all();
    bool peer_refused(int fd, long& uid);
    void turn(Conn& c);

    std::string host_;
    agents::Cgroup2Mount mount_;
    bool published_ = false; ///< until the daemon first published, every client is refused
    int port_ = 0;
    int listen_fd_ = -1;
    int wake_fd_ = -1;
    std::atomic<bool> stop_{false};
    std::vector<Conn> conns_;
    std::thread thread_;
    mutable PiMutex mu_;
    std::string text_;
    std::vector<std::string> refused_cgroups_;
    State state_;
};

/// "name{k="v",...} value\n" with label values escaped as the text format wants.
std::string metric_line(const std::string& name,
                        std::initializer_list<std::pair<const char*, std::string>> labels,
                        double value);

/// What the metrics text is made of.
struct MetricsInputs {
    control::Controller& ctl;
    /// Decisions read from the ring buffer, by (agent name, hook, verdict).
    const std::map<std::tuple<std::string, std::uint16_t, std::uint8_t>, std::uint64_t>& decided;
    std::uint64_t malformed = 0;
    std::uint64_t subscriber_drops = 0;
    const events::Pipeline* pipeline = nullptr;
};
/// Every series, in the Prometheus text format.
std::string metrics_text(const MetricsInputs& in);

} // namespace cordon::daemon
