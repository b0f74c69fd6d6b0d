// SPDX-License-Identifier: Apache-2.0
// The store thread's work, step by step, with no kernel and no daemon: the same denied-connect
// records the pipeline makes (OCSF formatting), then the SQLite store's append (chain hash,
// indexes, WAL) and the JSONL sink's write, each timed on its own thread's CPU clock, side by
// side in one run. Where the store thread's CPU per record goes, and what each sink alone can
// take on this machine: the ceiling the pipeline's figures (bench/forensics.cpp) run under.
// A benchmark, not a test: it asserts nothing.
#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <string>
#include <vector>

#include "events/ocsf.h"
#include "events/store.h"
#include "live_control.h"

namespace cordon::bench {

namespace fs = std::filesystem;

namespace {

std::int64_t clock_of(clockid_t id)
{
    timespec ts{};
    ::clock_gettime(id, &ts);
    return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

/// Wall and this thread's CPU time of `f`, ns.
template <typename F>
std::pair<std::int64_t, std::int64_t> timed(F&& f)
{
    const auto w0 = clock_of(CLOCK_MONOTONIC), c0 = clock_of(CLOCK_THREAD_CPUTIME_ID);
    f();
    return {clock_of(CLOCK_MONOTONIC) - w0, clock_of(CLOCK_THREAD_CPUTIME_ID) - c0};
}

events::Event denied_connect(std::uint32_t i)
{
    events::Event e;
    auto& h = e.body.h;
    h.hook = CORDON_HOOK_CONNECT4;
    h.verdict = CORDON_VERDICT_DENY;
    h.tgid = h.pid = 4000 + i % 2;
    h.ppid = 1;
    h.size = sizeof(cordon_event);
    h.ts_ns = 1'000'000'000ull + i;
    std::strcpy(h.comm, "gen");
    e.body.family = 4;
    e.body.protocol = CORDON_PROTO_UDP;
    e.body.port = 9;
    const unsigned char addr[] = {10, 1, 2, 3}; // as the generators connect to
    std::memcpy(e.body.addr, addr, sizeof(addr));
    return e;
}

void row(const char* step, std::size_t n, std::pair<std::int64_t, std::int64_t> t)
{
    std::printf("| %s | %zu | %.0f | %.0f |\n", step, n,
                static_cast<double>(n) * 1e9 / static_cast<double>(t.first),
                static_cast<double>(t.second) / static_cast<double>(n));
}

} // namespace

void store_steps(const fs::path& ws, std::size_t n)
{
    std::printf("\n## The store thread's steps, one at a time (%zu denied connects)\n\n", n);
    std::printf("| step | records | records/s | CPU ns/record |\n|---|---|---|---|\n");
    std::vector<events::store::Record> records;
    records.reserve(n);
    const events::Context cx{.agent = "gen", .rule = "bench.yaml:7", .task = "", .old_tier = "", .new_tier = ""};
    row("OCSF formatting (stored_record)", n, timed([&] {
            for (std::uint32_t i = 0; i < n; ++i)
                records.push_back(events::stored_record(denied_connect(i), cx, 1'700'000'000'000'000'000 + i));
        }));
    std::size_t bytes = 0;
    for (const auto& r : records)
        bytes += r.json.size();
    std::printf("| (mean JSON record: %zu bytes) | | | |\n", bytes / n);

    const fs::path jsonl = ws / "store-bench.jsonl";
    row("JSONL write (1 MiB buffered writes)", n, timed([&] {
            const int fd = ::open(jsonl.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
            std::string buf;
            for (const auto& r : records) {
                buf += r.json;
                buf += '\n';
                if (buf.size() >= (1u << 20)) {
                    if (::write(fd, buf.data(), buf.size()) < 0)
                        break;
                    buf.clear();
                }
            }
            if (!buf.empty() && ::write(fd, buf.data(), buf.size()) < 0)
                std::perror("write");
            ::close(fd);
        }));
    fs::remove(jsonl);

    const fs::path db = ws / "store-bench.db";
    {
        events::store::Writer w(db, {.max_age_ns = 0, .max_bytes = 0});
        row("SQLite append (8,192 a transaction: hash, 4 indexes, WAL)", n, timed([&] {
                for (std::size_t at = 0; at < n; at += 8192)
                    w.append(std::span(records).subspan(at, std::min<std::size_t>(8192, n - at)));
            }));
    }
    std::error_code ec;
    std::printf("| (database: %.0f bytes/record) | | | |\n",
                static_cast<double>(fs::file_size(db, ec)) / static_cast<double>(n));
    for (const char* f : {"", "-wal", "-shm"})
        fs::remove(db.string() + f, ec);
}

} // namespace cordon::bench
