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
#include "events/journal.h"
#include "policy/duration.h"

namespace {

/// The command line as typed, before it becomes ServerOptions (sizes and durations are text).
struct Flags {
    cordon::daemon::ServerOptions o;
    std::string socket = o.socket, registry = o.registry, pin = o.pin_dir, actions = o.actions_log;
    std::string attachments = o.attachments;
    int verbosity = 0;
    std::string store, max_age = "30d", max_size = "1G", jsonl, jsonl_size = "64M";
    bool no_store = false;
    bool journal = false;
    std::string journal_socket = cordon::events::kJournalSocket;
    std::string ringbuf = "64M";
    std::string metrics;
    bool metrics_default = false;
};

void add_options(CLI::App& app, Flags& f)
{
    app.add_option("--socket", f.socket, "Control socket")->capture_default_str();
    app.add_option("--registry", f.registry, "Agent registry directory, a file per agent (on a tmpfs: /run)")
        ->capture_default_str();
    app.add_option("--pin-dir", f.pin, "Where maps and links are pinned (on bpffs)")
        ->capture_default_str();
    app.add_option("--actions-log", f.actions, "Operator actions, one JSON line each")
        ->capture_default_str();
    app.add_option("--attachments", f.attachments,
                   "Attachments and templates kept on disk, restored after a reboot (empty: none)")
        ->capture_default_str();
    app.add_option("--backend", f.o.backend,
                   "auto, lsm, fmod_ret or compat, for a fresh start (an adopted set keeps its backend)")
        ->check(CLI::IsMember({"auto", "lsm", "fmod_ret", "compat"}))
        ->capture_default_str();
    app.add_option("--store", f.store,
                   "Forensic event store (SQLite) [default: events.db beside --actions-log]");
    app.add_flag("--no-store", f.no_store, "Keep no SQLite store (JSONL and the actions log still)");
    app.add_option("--store-max-age", f.max_age, "Retention by age: records older go (0: keep)")
        ->capture_default_str();
    app.add_option("--store-max-size", f.max_size,
                   "Retention by size: past it, the agent holding the most records loses its oldest first; each agent's "
                   "first records of each kind, operator actions, kills, freezes and tamper records stay (K, M, G; 0: no limit)")
        ->capture_default_str();
    app.add_option("--store-page-size", f.o.store_page_size,
                   "Page size of a new store, bytes (65536: a third less CPU per record under trace: all, "
                   "but each commit writes whole pages: docs/forensics.md)")
        ->check(CLI::IsMember({512, 1024, 2048, 4096, 8192, 16384, 32768, 65536}))
        ->capture_default_str();
    app.add_option("--events-jsonl", f.jsonl,
                   "Also write every record to this JSONL file (OCSF field names), rotated");
    app.add_option("--jsonl-max-size", f.jsonl_size, "Rotate the JSONL file at this size (K, M, G)")
        ->capture_default_str();
    app.add_option("--jsonl-files", f.o.jsonl_files, "Rotated JSONL files kept (FILE.1 .. FILE.N); what retention keeps of the oldest goes to FILE.kept and FILE.carried")
        ->capture_default_str();
    app.add_flag("--events-journal", f.journal,
                 "Also send every record to systemd-journald (structured CORDON_* fields, the "
                 "OCSF record in CORDON_RECORD)");
    app.add_option("--journal-socket", f.journal_socket,
                   "The journal's socket (a journal namespace NAME: /run/systemd/journal.NAME/socket)")
        ->capture_default_str();
    app.add_option("--ringbuf-size", f.ringbuf,
                   "Event ring buffer, a power of two (K, M): what a burst of decisions may fill "
                   "while the reader catches up; 64M holds 182,000 records, each agent at most its share. Fresh starts only")
        ->capture_default_str();
    app.add_flag("--metrics", f.metrics_default, "Serve Prometheus metrics on 127.0.0.1:9464");
    app.add_option("--metrics-listen", f.metrics,
                   "Serve Prometheus metrics on ADDR:PORT (http://ADDR:PORT/metrics; a numeric "
                   "address). Refused to processes inside agents; a port held by another "
                   "process is retried each second (cordon status)");
    app.add_option("--dns-upstream", f.o.dns_upstreams,
                   "Resolver the DNS gateway forwards agents' queries to (ADDR, ADDR:PORT or "
                   "[ADDR6]:PORT; repeat for fallbacks); default: the nameservers of "
                   "/etc/resolv.conf");
    app.add_option("--dns-timeout", f.o.dns_timeout_ms,
                   "Milliseconds the DNS gateway waits for each upstream before the next, then "
                   "answers SERVFAIL")
        ->capture_default_str()
        ->check(CLI::Range(100, 30000));
    app.add_flag("-v,--verbose", f.verbosity, "Debug logging");
}

/// "512M" -> bytes; a bad size ends cordond with a message naming the flag.
std::uint64_t size_or_exit(const std::string& what, const std::string& v)
{
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
}

/// Converts the flags into f.o; false (after saying why on stderr) when one is out of range.
bool fill_options(Flags& f)
{
    f.o.store = f.store;
    f.o.store_enabled = !f.no_store;
    f.o.store_max_bytes = size_or_exit("--store-max-size", f.max_size);
    f.o.jsonl_max_bytes = size_or_exit("--jsonl-max-size", f.jsonl_size);
    f.o.events_jsonl = f.jsonl;
    if (f.journal)
        f.o.events_journal = f.journal_socket;
    const auto rb = size_or_exit("--ringbuf-size", f.ringbuf);
    if (rb > (1ull << 31)) {
        std::fprintf(stderr, "cordond: --ringbuf-size %s is over 2G\n", f.ringbuf.c_str());
        return false;
    }
    f.o.ringbuf_bytes = static_cast<std::uint32_t>(rb);
    if (f.max_age == "0") {
        f.o.store_max_age_ms = 0;
    } else if (std::string why; auto ms = cordon::policy::parse_duration_ms(f.max_age, why)) {
        f.o.store_max_age_ms = static_cast<std::int64_t>(*ms);
    } else {
        std::fprintf(stderr, "cordond: --store-max-age '%s': %s\n", f.max_age.c_str(), why.c_str());
        return false;
    }
    f.o.metrics_listen = !f.metrics.empty() ? f.metrics : f.metrics_default ? "127.0.0.1:9464" : "";
    f.o.socket = f.socket;
    f.o.registry = f.registry;
    f.o.pin_dir = f.pin;
    f.o.actions_log = f.actions;
    f.o.attachments = f.attachments;
    return true;
}

/// Serves until told to stop; no exception escapes.
int serve_logged(const cordon::daemon::ServerOptions& o, int verbosity)
{
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

} // namespace

int main(int argc, char** argv)
{
    CLI::App app{"cordond: the controller of every cordon agent on this host. Loads one program "
                 "set, pins it under --pin-dir so that agents stay enforced while cordond "
                 "restarts, and serves the control socket (docs/api.md). Runs in the "
                 "foreground; run as root."};
    app.set_version_flag("--version", std::string("cordond ") + CORDON_VERSION);
    Flags f;
    add_options(app, f);
    CLI11_PARSE(app, argc, argv);
    if (!fill_options(f))
        return 1;
    return serve_logged(f.o, f.verbosity);
}
