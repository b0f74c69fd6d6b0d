// SPDX-License-Identifier: Apache-2.0
// cordond: runs in the foreground (as systemd expects), logs to stderr. See docs/api.md.
#include <cstdint>
#include <cstdio>
#include <cstdlib>

#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include "bpf/log.h"
#include "common/error.h"
#include "daemon/server.h"
#include "policy/duration.h"

int main(int argc, char** argv)
{
    CLI::App app{"cordond: the controller of every cordon agent on this host. Loads one program "
                 "set, pins it under --pin-dir so that agents stay enforced while cordond "
                 "restarts, and serves the control socket (docs/api.md). Runs in the "
                 "foreground; run as root."};
    app.set_version_flag("--version", std::string("cordond ") + CORDON_VERSION);
    cordon::daemon::ServerOptions o;
    std::string socket = o.socket, registry = o.registry, pin = o.pin_dir, actions = o.actions_log;
    int verbosity = 0;
    app.add_option("--socket", socket, "Control socket")->capture_default_str();
    app.add_option("--registry", registry, "Agent registry directory, a file per agent (on a tmpfs: /run)")
        ->capture_default_str();
    app.add_option("--pin-dir", pin, "Where maps and links are pinned (on bpffs)")
        ->capture_default_str();
    app.add_option("--actions-log", actions, "Operator actions, one JSON line each")
        ->capture_default_str();
    app.add_option("--backend", o.backend,
                   "auto, lsm, fmod_ret or compat, for a fresh start (an adopted set keeps its backend)")
        ->check(CLI::IsMember({"auto", "lsm", "fmod_ret", "compat"}))
        ->capture_default_str();
    std::string store, max_age = "30d", max_size = "1G", jsonl, jsonl_size = "64M";
    bool no_store = false;
    app.add_option("--store", store,
                   "Forensic event store (SQLite) [default: events.db beside --actions-log]");
    app.add_flag("--no-store", no_store, "Keep no SQLite store (JSONL and the actions log still)");
    app.add_option("--store-max-age", max_age, "Retention by age: records older go (0: keep)")
        ->capture_default_str();
    app.add_option("--store-max-size", max_size,
                   "Retention by size: past it, the agent holding the most records loses its oldest first (K, M, G; 0: no limit)")
        ->capture_default_str();
    app.add_option("--events-jsonl", jsonl,
                   "Also write every record to this JSONL file (OCSF field names), rotated");
    app.add_option("--jsonl-max-size", jsonl_size, "Rotate the JSONL file at this size (K, M, G)")
        ->capture_default_str();
    app.add_option("--jsonl-files", o.jsonl_files, "Rotated JSONL files kept (FILE.1 .. FILE.N)")
        ->capture_default_str();
    std::string ringbuf = "64M";
    app.add_option("--ringbuf-size", ringbuf,
                   "Event ring buffer, a power of two (K, M): what a burst of decisions may fill "
                   "while the reader catches up; 64M holds 186,000 records. Fresh starts only")
        ->capture_default_str();
    std::string metrics;
    bool metrics_default = false;
    app.add_flag("--metrics", metrics_default, "Serve Prometheus metrics on 127.0.0.1:9464");
    app.add_option("--metrics-listen", metrics,
                   "Serve Prometheus metrics on ADDR:PORT (http://ADDR:PORT/metrics)");
    app.add_flag("-v,--verbose", verbosity, "Debug logging");
    CLI11_PARSE(app, argc, argv);
    const auto bytes = [](const std::string& what, const std::string& v) -> std::uint64_t {
        std::size_t used = 0;
        std::uint64_t n = 0;
        try {
            n = std::stoull(v, &used);
        } catch (const std::exception&) {
            used = std::string::npos;
        }
        const std::string unit = used == std::string::npos ? "?" : v.substr(used);
        const int shift = unit.empty() ? 0 : unit == "K" ? 10 : unit == "M" ? 20 : unit == "G" ? 30 : -1;
        if (shift < 0) {
            std::fprintf(stderr, "cordond: %s '%s' is not a size (e.g. 512M, 2G)\n", what.c_str(), v.c_str());
            std::exit(1);
        }
        return n << shift;
    };
    o.store = store;
    o.store_enabled = !no_store;
    o.store_max_bytes = bytes("--store-max-size", max_size);
    o.jsonl_max_bytes = bytes("--jsonl-max-size", jsonl_size);
    o.events_jsonl = jsonl;
    const auto rb = bytes("--ringbuf-size", ringbuf);
    if (rb > (1ull << 31)) {
        std::fprintf(stderr, "cordond: --ringbuf-size %s is over 2G\n", ringbuf.c_str());
        return 1;
    }
    o.ringbuf_bytes = static_cast<std::uint32_t>(rb);
    if (max_age == "0") {
        o.store_max_age_ms = 0;
    } else if (std::string why; auto ms = cordon::policy::parse_duration_ms(max_age, why)) {
        o.store_max_age_ms = static_cast<std::int64_t>(*ms);
    } else {
        std::fprintf(stderr, "cordond: --store-max-age '%s': %s\n", max_age.c_str(), why.c_str());
        return 1;
    }
    o.metrics_listen = !metrics.empty() ? metrics : metrics_default ? "127.0.0.1:9464" : "";
    o.socket = socket;
    o.registry = registry;
    o.pin_dir = pin;
    o.actions_log = actions;

    spdlog::set_pattern("cordond: %^%l%$: %v");
    spdlog::set_level(verbosity ? spdlog::level::debug : spdlog::level::info);
    cordon::bpf::log_libbpf_to_spdlog();
    try {
        return cordon::daemon::serve(o);
    } catch (const cordon::Error& e) {
        spdlog::error("{}", e.what());
        return 1;
    } catch (const std::exception& e) {
        spdlog::critical("internal error: {}", e.what());
        return 2;
    }
}
