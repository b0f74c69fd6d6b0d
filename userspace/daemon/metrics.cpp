// SPDX-License-Identifier: Apache-2.0
#include "daemon/metrics.h"

#include <httplib.h>

#include <fmt/format.h>

#include "common/error.h"

namespace cordon::daemon {

Metrics::Metrics(const std::string& listen) : http_(std::make_unique<httplib::Server>())
{
    const auto colon = listen.rfind(':');
    std::string host = colon == std::string::npos ? "" : listen.substr(0, colon);
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
        host = host.substr(1, host.size() - 2);
    int port = -1;
    try {
        std::size_t used = 0;
        if (colon != std::string::npos) {
            const std::string p = listen.substr(colon + 1);
            port = std::stoi(p, &used);
            if (used != p.size())
                port = -1;
        }
    } catch (const std::exception&) {
        port = -1;
    }
    if (host.empty() || port < 1 || port > 65535)
        throw Error("--metrics-listen '" + listen + "' is not ADDR:PORT (e.g. 127.0.0.1:9464)");
    http_->Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
        std::string body;
        {
            std::lock_guard lk(mu_);
            body = text_;
        }
        res.set_content(body, "text/plain; version=0.0.4; charset=utf-8");
    });
    if (!http_->bind_to_port(host, port))
        throw Error("cannot listen for metrics on " + listen + ": " + errno_text(errno) +
                    " (is the port in use? choose another with --metrics-listen)");
    port_ = port;
    thread_ = std::thread([this] { http_->listen_after_bind(); });
}

Metrics::~Metrics()
{
    http_->stop();
    if (thread_.joinable())
        thread_.join();
}

void Metrics::publish(std::string text)
{
    std::lock_guard lk(mu_);
    text_ = std::move(text);
}

std::string metric_line(const std::string& name,
                        std::initializer_list<std::pair<const char*, std::string>> labels,
                        double value)
{
    std::string out = name;
    if (labels.size()) {
        out += '{';
        bool first = true;
        for (const auto& [k, v] : labels) {
            if (!first)
                out += ',';
            first = false;
            out += k;
            out += "=\"";
            for (char c : v) {
                if (c == '\\' || c == '"')
                    out += '\\', out += c;
                else if (c == '\n')
                    out += "\\n";
                else
                    out += c;
            }
            out += '"';
        }
        out += '}';
    }
    out += fmt::format(" {}\n", value);
    return out;
}

} // namespace cordon::daemon
