// SPDX-License-Identifier: Apache-2.0
#include "daemon/metrics.h"

#include <httplib.h>

#include <unistd.h>

#include <fstream>

#include <bpf/bpf.h>
#include <fmt/format.h>

#include "common/error.h"
#include "control/controller.h"
#include "events/format.h"
#include "events/pipeline.h"

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


namespace {

void help(std::string& t, const char* name, const char* type, const char* text)
{
    t += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, text, name, type);
}

// Decisions read from the ring buffer, and the kernel's own counters.
void decision_series(std::string& t, const MetricsInputs& in)
{
    const auto c = in.ctl.guard().counters();
    help(t, "cordon_decisions_total", "counter",
         "Decisions reported by the kernel and read by cordond, by agent, hook and verdict "
         "(allows only for agents with trace: all)");
    for (const auto& [k, n] : in.decided) {
        const auto& [agent, hook, verdict] = k;
        t += metric_line("cordon_decisions_total",
                         {{"agent", agent},
                          {"hook", std::string(events::hook_name(hook))},
                          {"verdict", std::string(events::verdict_name(verdict))}},
                         static_cast<double>(n));
    }
    help(t, "cordon_kernel_decisions_total", "counter",
         "Every decision the programs made, reported or not, by verdict");
    for (auto [v, i] : {std::pair{"allow", CORDON_CNT_ALLOW}, std::pair{"deny", CORDON_CNT_DENY},
                        std::pair{"audit", CORDON_CNT_AUDIT}, std::pair{"kill", CORDON_CNT_KILL},
                        std::pair{"freeze", CORDON_CNT_FREEZE}})
        t += metric_line("cordon_kernel_decisions_total", {{"verdict", v}}, static_cast<double>(c[i]));
    help(t, "cordon_lost_events_total", "counter", "Records the ring buffer had no room for");
    t += metric_line("cordon_lost_events_total", {}, static_cast<double>(c[CORDON_CNT_RINGBUF_DROPS]));
    help(t, "cordon_malformed_events_total", "counter", "Records that failed to decode");
    t += metric_line("cordon_malformed_events_total", {}, static_cast<double>(in.malformed));
    help(t, "cordon_unresolved_paths_total", "counter",
         "Accesses whose path the programs could not resolve (refused)");
    t += metric_line("cordon_unresolved_paths_total", {}, static_cast<double>(c[CORDON_CNT_PATH_FAILED]));
    help(t, "cordon_subscriber_drops_total", "counter", "Events a slow subscriber did not take");
    t += metric_line("cordon_subscriber_drops_total", {}, static_cast<double>(in.subscriber_drops));
}

// Each agent's score, tier and lost records.
void agent_series(std::string& t, const MetricsInputs& in)
{
    auto& g = in.ctl.guard();
    help(t, "cordon_agent_score", "gauge", "Trust score of each agent (0-1000)");
    std::string tiers, lost_by_agent;
    for (const auto& a : in.ctl.agents()) {
        const auto st = g.agent(a.key);
        const auto live = g.live(a.key);
        if (!st || !live)
            continue;
        t += metric_line("cordon_agent_score", {{"agent", a.name}}, live->score);
        lost_by_agent += metric_line("cordon_agent_lost_events_total", {{"agent", a.name}},
                                     static_cast<double>(live->events_lost));
        const auto tier = in.ctl.tier_of(st->policy_id, *live);
        tiers += metric_line("cordon_agent_tier",
                             {{"agent", a.name},
                              {"tier", tier < a.tier_names.size() ? a.tier_names[tier]
                                                                  : std::to_string(tier)}},
                             tier);
    }
    help(t, "cordon_agent_tier", "gauge", "The trust tier each agent is in (its index, lowest 0; the label names it)");
    t += tiers;
    help(t, "cordon_agent_lost_events_total", "counter", "Each agent's records the ring buffer had no room for");
    t += lost_by_agent;
}

// The store and the JSONL sink.
void store_series(std::string& t, const events::Pipeline& pipeline)
{
    const auto s = pipeline.stats();
    help(t, "cordon_store_records_total", "counter", "Records written, by sink");
    help(t, "cordon_store_lost_total", "counter", "Records not stored, by sink and cause");
    help(t, "cordon_store_write_errors_total", "counter", "Failed writes, by sink");
    std::string rec, lost, err;
    if (!s.db_path.empty()) {
        rec += metric_line("cordon_store_records_total", {{"sink", "sqlite"}}, static_cast<double>(s.db_stored));
        lost += metric_line("cordon_store_lost_total", {{"sink", "sqlite"}, {"cause", "write"}}, static_cast<double>(s.db_lost));
        err += metric_line("cordon_store_write_errors_total", {{"sink", "sqlite"}}, static_cast<double>(s.db_write_errors));
    }
    if (!s.jsonl_path.empty()) {
        rec += metric_line("cordon_store_records_total", {{"sink", "jsonl"}}, static_cast<double>(s.jsonl_written));
        lost += metric_line("cordon_store_lost_total", {{"sink", "jsonl"}, {"cause", "write"}}, static_cast<double>(s.jsonl_lost));
        err += metric_line("cordon_store_write_errors_total", {{"sink", "jsonl"}}, static_cast<double>(s.jsonl_write_errors));
    }
    lost += metric_line("cordon_store_lost_total", {{"sink", "all"}, {"cause", "queue_full"}}, static_cast<double>(s.queue_dropped));
    t += rec + lost + err;
    help(t, "cordon_store_lag_records", "gauge", "Records queued for the store, not yet written");
    t += metric_line("cordon_store_lag_records", {}, static_cast<double>(s.lag_records));
    help(t, "cordon_store_lag_seconds", "gauge", "Age of the oldest record not yet written");
    t += metric_line("cordon_store_lag_seconds", {}, static_cast<double>(s.lag_ms) / 1000.0);
}

// BPF program run time: the kernel counts it only while kernel.bpf_stats_enabled is 1.
void program_series(std::string& t, const MetricsInputs& in)
{
    std::ifstream stats_enabled("/proc/sys/kernel/bpf_stats_enabled");
    int enabled = 0;
    if (!(stats_enabled >> enabled) || enabled != 1)
        return;
    help(t, "cordon_bpf_run_seconds_total", "counter", "Time cordon's programs ran (kernel.bpf_stats_enabled=1)");
    std::string runs;
    for (const auto id : in.ctl.guard().program_ids()) {
        const int fd = bpf_prog_get_fd_by_id(id);
        if (fd < 0)
            continue;
        bpf_prog_info info{};
        __u32 len = sizeof(info);
        if (bpf_obj_get_info_by_fd(fd, &info, &len) == 0) {
            t += metric_line("cordon_bpf_run_seconds_total", {{"program", info.name}},
                             static_cast<double>(info.run_time_ns) / 1e9);
            runs += metric_line("cordon_bpf_runs_total", {{"program", info.name}},
                                static_cast<double>(info.run_cnt));
        }
        ::close(fd);
    }
    help(t, "cordon_bpf_runs_total", "counter", "Times cordon's programs ran (kernel.bpf_stats_enabled=1)");
    t += runs;
}

} // namespace

std::string metrics_text(const MetricsInputs& in)
{
    std::string t;
    decision_series(t, in);
    agent_series(t, in);
    if (in.pipeline)
        store_series(t, *in.pipeline);
    program_series(t, in);
    return t;
}

} // namespace cordon::daemon
