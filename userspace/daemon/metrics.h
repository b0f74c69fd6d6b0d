// SPDX-License-Identifier: Apache-2.0
// cordond's Prometheus endpoint (opt-in: --metrics-listen). It serves the text the daemon's
// thread last published, from a thread of its own (cpp-httplib), so a scraper never touches a
// BPF map or waits on the daemon, and the daemon never waits on a scraper.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <tuple>
#include <mutex>
#include <string>
#include <thread>

#include "common/pi_mutex.h"

namespace httplib {
class Server;
}
namespace cordon::control {
class Controller;
}
namespace cordon::events {
class Pipeline;
}

namespace cordon::daemon {

class Metrics {
public:
    /// Listens on "ADDR:PORT" (IPv4, or [IPv6]:PORT). Throws cordon::Error naming the address
    /// and the cause when it cannot.
    explicit Metrics(const std::string& listen);
    ~Metrics();
    Metrics(const Metrics&) = delete;
    Metrics& operator=(const Metrics&) = delete;
    /// Replaces what GET /metrics returns (Prometheus text format 0.0.4).
    void publish(std::string text);
    int port() const { return port_; }

private:
    std::unique_ptr<httplib::Server> http_;
    std::thread thread_;
    PiMutex mu_;
    std::string text_;
    int port_ = 0;
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
