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
    // As the store thread works: batches of 8,192, each formatted, then written by each sink;
    // memory is reused from batch to batch as there.
    constexpr std::size_t kBatch = 8192;
    const events::Context cx{.agent = "gen", .rule = "bench.yaml:7", .task = "", .old_tier = "", .new_tier = ""};
    const fs::path jsonl = ws / "store-bench.jsonl", db = ws / "store-bench.db", db4k = ws / "store-bench-4k.db";
    const int fd = ::open(jsonl.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    std::pair<std::int64_t, std::int64_t> fmt_t{}, jsonl_t{}, db_t{}, db4k_t{};
    const auto add = [](auto& sum, auto t) { sum.first += t.first, sum.second += t.second; };
    std::size_t bytes = 0;
    {
        // The default page size (4 KiB) and the largest (`cordond --store-page-size 65536`).
        events::store::Writer w(db, {.max_age_ns = 0, .max_bytes = 0, .page_size = 65536});
        events::store::Writer w4k(db4k, {.max_age_ns = 0, .max_bytes = 0, .page_size = 4096});
        std::vector<events::store::Record> records;
        std::string buf;
        for (std::size_t at = 0; at < n; at += kBatch) {
            const std::size_t m = std::min(kBatch, n - at);
            records.clear();
            add(fmt_t, timed([&] {
                    for (std::size_t i = 0; i < m; ++i)
                        records.push_back(events::stored_record(denied_connect(static_cast<std::uint32_t>(at + i)), cx,
                                                                1'700'000'000'000'000'000 + static_cast<std::int64_t>(at + i)));
                }));
            for (const auto& r : records)
                bytes += r.json.size();
            add(jsonl_t, timed([&] {
                    for (const auto& r : records) {
                        buf += r.json;
                        buf += '\n';
                        if (buf.size() >= (1u << 20)) {
                            if (::write(fd, buf.data(), buf.size()) < 0)
                                std::perror("write");
                            buf.clear();
                        }
                    }
                }));
            add(db_t, timed([&] { w.append(records); }));
            add(db4k_t, timed([&] { w4k.append(records); }));
        }
    }
    ::close(fd);
    row("OCSF formatting (stored_record)", n, fmt_t);
    std::printf("| (mean JSON record: %zu bytes) | | | |\n", bytes / n);
    row("JSONL write (1 MiB buffered writes)", n, jsonl_t);
    std::error_code ec;
    row("SQLite append, 4 KiB pages, the default (8,192 a transaction: hash, 5 indexes, WAL)", n, db4k_t);
    std::printf("| (database: %.0f bytes/record) | | | |\n",
                static_cast<double>(fs::file_size(db4k, ec)) / static_cast<double>(n));
    row("SQLite append, 64 KiB pages (--store-page-size 65536)", n, db_t);
    std::printf("| (database: %.0f bytes/record) | | | |\n",
                static_cast<double>(fs::file_size(db, ec)) / static_cast<double>(n));
    fs::remove(jsonl, ec);
    for (const auto& d : {db, db4k})
        for (const char* f : {"", "-wal", "-shm"})
            fs::remove(d.string() + f, ec);
}

} // namespace cordon::bench
