// SPDX-License-Identifier: Apache-2.0
// The event pipeline under load: a generator agent (one process per core, each a tight loop of
// denied connect() calls, every one a reported decision) drives the real cordond with one sink
// at a time. Measured side by side in one run:
//   - throughput: generators unthrottled for kSeconds; records consumed into the sink per
//     second, cordond's CPU time per record, records lost (kernel drops, queue, sink);
//   - loss at fixed rates: generators paced at 100,000 and 200,000 records/s in total for
//     --seconds (default 60), each sink; what the kernel dropped and what the sink did not take.
// A benchmark, not a test: it asserts nothing.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string_view>
#include <fstream>
#include <sstream>
#include <thread>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "daemon_util.h"
#include <sqlite3.h>
#include "kernel_test_util.h"
#include "live_control.h"

namespace cordon::bench {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

const char* kGenPolicy =
    "apiVersion: cordon.dev/v1\nkind: AgentPolicy\nmetadata:\n  name: gen\nspec:\n"
    "  exec: {default: allow}\n  files: {default: allow}\n  network:\n    default: allow\n"
    "    rules:\n      - {cidr: 10.0.0.0/8, action: deny}\n";

std::int64_t mono_ns()
{
    return std::chrono::duration_cast<std::chrono::nanoseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

/// utime + stime of a process, ns.
std::uint64_t cpu_ns(pid_t pid)
{
    std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
    std::string s((std::istreambuf_iterator<char>(in)), {});
    const auto close = s.rfind(')');
    if (close == std::string::npos)
        return 0;
    std::istringstream f(s.substr(close + 2));
    std::string field;
    std::uint64_t ut = 0, st = 0;
    for (int i = 3; f >> field; ++i) {
        if (i == 14)
            ut = std::stoull(field);
        if (i == 15) {
            st = std::stoull(field);
            break;
        }
    }
    return (ut + st) * (1'000'000'000ull / static_cast<std::uint64_t>(::sysconf(_SC_CLK_TCK)));
}

/// A generator in the agent's cgroup: denied connects, `rate` per second (0: as fast as it
/// can), `count` of them (0: until killed). Returns its pid.
pid_t generator(const agents::Cgroup& cg, double rate, std::uint64_t count = 0)
{
    return testing::spawn_in(cg.path().string(), [rate, count] {
        sockaddr_in sa{};
        sa.sin_family = AF_INET;
        sa.sin_port = htons(9);
        ::inet_pton(AF_INET, "10.1.2.3", &sa.sin_addr);
        const int s = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        const auto start = mono_ns();
        for (std::uint64_t n = 0; count == 0 || n < count; ++n) {
            // A refused UDP connect: one reported decision, no packet, no new socket.
            (void)::connect(s, reinterpret_cast<sockaddr*>(&sa), sizeof(sa));
            if (rate > 0) {
                const auto due = start + static_cast<std::int64_t>(static_cast<double>(n + 1) * 1e9 / rate);
                while (mono_ns() < due) {
                    if (due - mono_ns() > 200'000)
                        std::this_thread::sleep_for(std::chrono::microseconds(100));
                }
            }
        }
        return 0;
    });
}

struct Sample {
    std::uint64_t stored = 0, lost_sink = 0, queue_dropped = 0, kernel_lost = 0, received = 0,
                  denied = 0;
    std::uint64_t cpu = 0;
};

Sample sample(const testing::Daemon& d, const std::string& sink)
{
    const auto st = d.call(R"({"v":1,"op":"status"})");
    Sample s;
    const auto& k = st["store"][sink];
    s.stored = k.value(sink == "sqlite" ? "stored" : "written", std::uint64_t{0});
    s.lost_sink = k.value("lost", std::uint64_t{0});
    s.queue_dropped = st["store"].value("queue_dropped", std::uint64_t{0});
    s.received = st["store"].value("received", std::uint64_t{0});
    s.kernel_lost = st.value("lost_events", std::uint64_t{0});
    s.denied = st["decisions"].value("deny", std::uint64_t{0});
    s.cpu = cpu_ns(d.pid());
    return s;
}

/// Waits (at most 2 minutes) until the pipeline is empty: the ring buffer, the queue, the sink.
Sample drained(const testing::Daemon& d, const std::string& sink, Sample after)
{
    for (int i = 0; i < 1200; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        const auto s = sample(d, sink);
        const bool idle = s.stored + s.lost_sink == after.stored + after.lost_sink &&
                          s.received == after.received;
        after = s;
        if (idle && after.stored + after.lost_sink + after.queue_dropped >= after.received)
            break;
    }
    return after;
}

struct Result {
    double seconds = 0, generated_per_s = 0, consumed_per_s = 0, cpu_ns_per_record = 0;
    std::uint64_t generated = 0, stored = 0, kernel_lost = 0, lost = 0;
};

/// One run: generators at `rate` in total (0: unthrottled) for `seconds`, then a wait for the
/// pipeline to empty.
Result run_once(const std::string& sink, double rate, int seconds, const fs::path& ws)
{
    const fs::path dir = ws / fmt::format("forensics-{}-{}", sink, static_cast<long>(rate));
    fs::create_directories(dir);
    std::vector<std::string> args = {"--ringbuf-size", "64M"};
    // Retention is left out of the figures (a 16G limit these runs never reach): it is work of
    // its own, bounded per pass (docs/forensics.md).
    if (sink == "sqlite")
        args.insert(args.end(), {"--store", (dir / "events.db").string(), "--store-max-size", "16G"});
    else
        args.insert(args.end(), {"--no-store", "--events-jsonl", (dir / "events.jsonl").string(),
                                 "--jsonl-max-size", "1G", "--jsonl-files", "1"});
    testing::Daemon d(CORDON_BACKEND_COMPAT, args);
    auto cg = testing::make_test_cgroup();
    d.attach(cg.path(), kGenPolicy, "gen", ws.string());
    const auto before = sample(d, sink);
    const auto t0 = mono_ns();
    const unsigned n = 2;
    std::vector<pid_t> gens;
    for (unsigned i = 0; i < n; ++i)
        gens.push_back(generator(cg, rate > 0 ? rate / n : 0));
    std::this_thread::sleep_for(std::chrono::seconds(seconds));
    for (auto p : gens)
        ::kill(p, SIGKILL);
    for (auto p : gens)
        ::waitpid(p, nullptr, 0);
    const auto t1 = mono_ns();
    const auto gen_end = sample(d, sink);
    const Sample after = drained(d, sink, gen_end);
    const auto t2 = mono_ns();
    Result r;
    r.seconds = static_cast<double>(t1 - t0) / 1e9;
    r.generated = gen_end.denied - before.denied;
    r.generated_per_s = static_cast<double>(r.generated) / r.seconds;
    r.stored = after.stored - before.stored;
    // Consumed rate over the whole time the pipeline worked (generation + draining).
    r.consumed_per_s = static_cast<double>(r.stored) / (static_cast<double>(t2 - t0) / 1e9);
    r.cpu_ns_per_record = r.stored ? static_cast<double>(after.cpu - before.cpu) / static_cast<double>(r.stored) : 0;
    r.kernel_lost = after.kernel_lost - before.kernel_lost;
    r.lost = (after.lost_sink - before.lost_sink) + (after.queue_dropped - before.queue_dropped);
    fs::remove_all(dir);
    return r;
}

struct Fairness {
    std::uint64_t flood_made = 0, flood_shed = 0, flood_stored = 0;
    std::uint64_t quiet_made = 0, quiet_stored = 0, quiet_lost = 0;
    double seconds = 0, stored_per_s = 0, cpu_ns_per_record = 0;
};

/// `flooders` agents, one unthrottled generator each, for `seconds`; meanwhile one quiet agent
/// makes quiet_n denied connects at quiet_rate a second. SQLite sink (the slower one, so the store is far
/// behind the flood).
Fairness fairness_once(unsigned flooders, int seconds, const fs::path& ws, int quiet_n, int quiet_rate)
{
    const fs::path dir = ws / fmt::format("fairness-{}", flooders);
    fs::create_directories(dir);
    testing::Daemon d(CORDON_BACKEND_COMPAT, {"--ringbuf-size", "64M", "--store",
                                              (dir / "events.db").string(), "--store-max-size", "16G"});
    std::vector<agents::Cgroup> cgs;
    for (unsigned i = 0; i <= flooders; ++i) {
        cgs.push_back(testing::make_test_cgroup());
        d.attach(cgs.back().path(), kGenPolicy, i == 0 ? "quiet" : fmt::format("flood{}", i), ws.string());
    }
    const auto before = sample(d, "sqlite");
    const auto t0 = mono_ns();
    std::vector<pid_t> gens;
    for (unsigned i = 1; i <= flooders; ++i)
        gens.push_back(generator(cgs[i], 0));
    std::this_thread::sleep_for(std::chrono::seconds(1)); // the store falls behind
    const pid_t quiet = generator(cgs[0], quiet_rate, static_cast<std::uint64_t>(quiet_n));
    std::this_thread::sleep_for(std::chrono::seconds(seconds - 1));
    ::waitpid(quiet, nullptr, 0);
    for (auto p : gens)
        ::kill(p, SIGKILL);
    for (auto p : gens)
        ::waitpid(p, nullptr, 0);
    const Sample after = drained(d, "sqlite", sample(d, "sqlite"));
    const auto t1 = mono_ns();
    Fairness f;
    f.seconds = static_cast<double>(t1 - t0) / 1e9;
    const auto agents = d.call(R"({"v":1,"op":"agents"})");
    for (const auto& a : agents["agents"]) {
        const bool q = a.value("name", "") == "quiet";
        const auto made = a.value("denials_seen", std::uint64_t{0}) + a.value("events_lost", std::uint64_t{0});
        (q ? f.quiet_made : f.flood_made) += made;
        (q ? f.quiet_lost : f.flood_shed) += a.value(q ? "events_lost" : "events_shed", std::uint64_t{0});
    }
    const auto st = d.call(R"({"v":1,"op":"status"})");
    const auto stored = after.stored - before.stored;
    f.stored_per_s = static_cast<double>(stored) / f.seconds;
    f.cpu_ns_per_record = stored ? static_cast<double>(after.cpu - before.cpu) / static_cast<double>(stored) : 0;
    const std::string db = st["store"]["sqlite"].value("path", (dir / "events.db").string());
    sqlite3* h = nullptr;
    if (sqlite3_open_v2(db.c_str(), &h, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK) {
        sqlite3_stmt* q = nullptr;
        if (sqlite3_prepare_v2(h, "SELECT count(*) FROM records WHERE agent = 'quiet' AND kind = 'decision'",
                               -1, &q, nullptr) == SQLITE_OK && sqlite3_step(q) == SQLITE_ROW)
            f.quiet_stored = static_cast<std::uint64_t>(sqlite3_column_int64(q, 0));
        else
            std::fprintf(stderr, "cannot count the quiet agent's records in %s: %s\n", db.c_str(), sqlite3_errmsg(h));
        sqlite3_finalize(q);
    }
    sqlite3_close(h);
    f.flood_stored = stored - f.quiet_stored;
    fs::remove_all(dir);
    return f;
}

} // namespace

void fairness(int seconds, const fs::path& ws)
{
    std::printf("\n## Fair shares of the event buffer (SQLite sink)\n\n");
    std::printf("Flooding agents: one unthrottled generator each (denied UDP connect), %d s. A quiet "
                "agent makes denied connects at a fixed rate meanwhile. \"quiet lost\" is what "
                "the kernel did not take of the quiet agent's records (target 0).\n\n", seconds);
    std::printf("| flooding agents | quiet rate | seconds | flood records | flood shed | flood stored | stored/s | "
                "cordond CPU ns/record | quiet made | quiet stored | quiet lost |\n"
                "|---|---|---|---|---|---|---|---|---|---|---|\n");
    for (auto [n, rate] : {std::pair{1u, 2000}, std::pair{10u, 2000}, std::pair{10u, 500}}) {
        const auto f = fairness_once(n, seconds, ws, rate * (seconds - 2), rate);
        std::printf("| %u | %d/s | %.1f | %llu | %llu | %llu | %.0f | %.0f | %llu | %llu | %llu |\n", n,
                    rate, f.seconds, static_cast<unsigned long long>(f.flood_made),
                    static_cast<unsigned long long>(f.flood_shed),
                    static_cast<unsigned long long>(f.flood_stored), f.stored_per_s,
                    f.cpu_ns_per_record, static_cast<unsigned long long>(f.quiet_made),
                    static_cast<unsigned long long>(f.quiet_stored),
                    static_cast<unsigned long long>(f.quiet_lost));
        std::fflush(stdout);
    }
}

void forensics(cordon_backend backend, const fs::path& ws, int seconds)
{
    if (backend != CORDON_BACKEND_COMPAT)
        std::printf("\n(the pipeline is measured on compat; the lsm backend's records are the same)\n");
    std::printf("\n## Event pipeline (cordond, one sink at a time)\n\n");
    std::printf("Generators: 2 processes in one agent, denied UDP connect() in a loop (every one a "
                "reported decision). cordond's CPU time includes its reading thread and its "
                "store thread.\n\n");
    std::printf("| sink | offered | seconds | generated/s | consumed/s | cordond CPU ns/record | "
                "kernel lost | not stored |\n|---|---|---|---|---|---|---|---|\n");
    const auto row = [](const std::string& sink, const std::string& offered, const Result& r) {
        std::printf("| %s | %s | %.1f | %.0f | %.0f | %.0f | %llu | %llu |\n", sink.c_str(),
                    offered.c_str(), r.seconds, r.generated_per_s, r.consumed_per_s,
                    r.cpu_ns_per_record, static_cast<unsigned long long>(r.kernel_lost),
                    static_cast<unsigned long long>(r.lost));
        std::fflush(stdout);
    };
    // CORDON_BENCH_SINKS=sqlite (or jsonl) measures one sink only.
    const char* only = std::getenv("CORDON_BENCH_SINKS");
    std::vector<std::string> sinks;
    for (const char* sink : {"jsonl", "sqlite"})
        if (!only || std::string_view(only).find(sink) != std::string_view::npos)
            sinks.emplace_back(sink);
    for (const auto& sink : sinks)
        row(sink, "max", run_once(sink, 0, 10, ws));
    for (double rate : {100000.0, 200000.0})
        for (const auto& sink : sinks)
            row(sink, fmt::format("{:.0f}/s", rate), run_once(sink, rate, seconds, ws));
}

} // namespace cordon::bench
