// SPDX-License-Identifier: Apache-2.0
// The one event pipeline of cordond: what its thread reads from the ring buffer (and the
// operator actions it records) goes, through a bounded queue, to a store thread that writes the
// sinks: JSONL files rotated by size and count, the SQLite store, and the journal. The daemon's thread only
// copies records into the queue, so a slow, full or broken disk never delays a request, a kill
// or the reading of the ring buffer: what cannot be queued or written is counted (stats()) and
// noted in the store by a gap record once writing works again.
#pragma once

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/pi_mutex.h"
#include "events/journal.h"
#include "events/ocsf.h"
#include "events/reader.h"
#include "events/store.h"

namespace cordon::events {

struct PipelineOptions {
    std::optional<std::filesystem::path> db;    ///< the SQLite store; none: off
    store::Options db_options;
    std::optional<std::filesystem::path> jsonl; ///< the JSONL file; none: off
    /// The journal sink (events/journal.h): the journal's socket; none: off.
    std::optional<std::filesystem::path> journal;
    std::uint64_t jsonl_max_bytes = 64ull << 20; ///< rotate when the file would pass this
    unsigned jsonl_files = 5;                    ///< rotated files kept (FILE.1 .. FILE.N)
    /// Records queued for the store thread before new ones are dropped (and counted). At most
    /// ~800 bytes each: 65,536 bound the queue near 50 MB, and hold 65 ms at 1,000,000/s.
    std::size_t queue_max = 65536;
    /// How often retention runs: often, so that each pass has little to do (a pass deletes at
    /// most 100,000 records; store.cpp).
    std::int64_t prune_interval_ms = 5'000;
};

/// Counters; all but the strings are monotonic since the daemon started.
struct PipelineStats {
    std::uint64_t received = 0;       ///< records handed to the pipeline
    std::uint64_t queue_dropped = 0;  ///< not queued: the store thread was that far behind
    std::uint64_t db_stored = 0, db_lost = 0, db_write_errors = 0;
    std::uint64_t jsonl_written = 0, jsonl_lost = 0, jsonl_write_errors = 0, jsonl_rotations = 0;
    /// Lines of the oldest JSONL file carried to FILE.kept or FILE.carried before it went; those
    /// files begun (anew, or after one rolled over).
    std::uint64_t jsonl_carried = 0, jsonl_kept_files = 0;
    std::uint64_t journal_written = 0, journal_lost = 0, journal_write_errors = 0;
    std::uint64_t pruned = 0;
    std::uint64_t lag_records = 0;    ///< queued, not yet written (now)
    std::int64_t lag_ms = 0;          ///< age of the oldest queued record (now)
    std::uint64_t store_cpu_ns = 0;   ///< CPU time of the store thread
    std::string db_error, jsonl_error, journal_error; ///< each sink's last error ("" none since)
    std::string corrupt_moved;        ///< where a corrupt database was moved aside ("" never)
    std::string db_path, jsonl_path, journal_path;
};

class Pipeline {
public:
    /// Opens the sinks and starts the store thread. A sink that cannot be opened is logged,
    /// shown in stats() and retried each second; it never keeps cordond from starting.
    explicit Pipeline(PipelineOptions o);
    ~Pipeline(); ///< writes what is queued, then stops the thread
    Pipeline(const Pipeline&) = delete;
    Pipeline& operator=(const Pipeline&) = delete;

    /// Daemon thread: stages a kernel record; flush() hands staged records over.
    void push(const Event& e, Context cx);
    /// Daemon thread: stages an operator action (the actions log's object).
    void push_action(const nlohmann::json& action);
    /// Daemon thread: records that `n` records never reached the pipeline (the kernel's ring
    /// buffer was full): a gap record in each sink.
    void push_gap(std::uint64_t n, const std::string& why, const std::string& agent = "cordond");
    /// Daemon thread: hands staged records to the store thread (one lock per call).
    void flush();
    /// Daemon thread: records the queue can take now. The daemon reads no more than this from
    /// the ring buffer, so a burst waits there (64 MiB, abi.h) rather than being dropped here;
    /// only when the kernel's buffer is full too is anything lost (and counted by the kernel).
    std::size_t room() const;
    PipelineStats stats() const;
    /// Chain heads of the store (agent -> seq, hash), as last written.
    std::map<std::string, std::pair<std::int64_t, std::string>> heads() const;

private:
    struct Item {
        Event event;
        Context cx;
        std::optional<nlohmann::json> action;
        std::int64_t queued_ns = 0; ///< CLOCK_MONOTONIC when staged (for lag)
    };
    void run();
    void write(std::vector<Item>& batch);
    void prune_db(); ///< store thread: one retention pass, and the heads it leaves
    void write_jsonl(const std::vector<store::Record>& records);
    void write_journal(const std::vector<store::Record>& records);
    void write_db(std::vector<store::Record>& records);
    bool rotate_jsonl();

public:
    /// Where each line of a JSONL file of this run is, by agent: what retention carries to
    /// FILE.kept when the file goes (see carry_jsonl).
    struct Span {
        std::uint64_t off = 0;
        std::uint32_t len = 0;
    };

private:
    struct AgentLines {
        std::uint64_t count = 0, bytes = 0;
        std::vector<Span> first{}; ///< the first kCarryAgent lines
    };
    struct FileIndex {
        bool known = false;       ///< written by this cordond (else: not indexed, nothing carried)
        std::uint64_t lines = 0, bytes = 0;
        std::map<std::string, AgentLines, std::less<>> agents{};
        std::vector<Span> reserved{}; ///< lines retention keeps whatever their agent wrote
        bool reserved_copied = false; ///< to FILE.kept already (a carry retried after a failure)
    };
    /// Store thread: a line now in the current JSONL file, for carry_jsonl.
    void index_jsonl_line(const store::Record& r, Span sp);
    /// Store thread: the file at `path` is about to go; copies its reserved lines to FILE.kept
    /// and its quiet agents' lines to FILE.carried. False (and the error in stats) when they
    /// could not be copied: the file must not go yet.
    bool carry_jsonl(FileIndex& idx, const std::string& path);
    std::string stats_db_error() const;
    /// Store thread (or the constructor), after the store opened: notes a corrupt file moved
    /// aside, makes the files 0600, publishes the chain heads.
    void opened_db();
    void open_jsonl();

    PipelineOptions opts_;
    std::vector<Item> staged_; ///< daemon thread only
    mutable PiMutex mu_;
    PiCondition cv_;
    std::vector<Item> queue_;  ///< guarded by mu_
    bool stop_ = false;        ///< guarded by mu_
    std::atomic<std::uint64_t> received_{0}, queue_dropped_{0};
    // Store thread's sinks.
    std::unique_ptr<store::Writer> db_;
    int jsonl_fd_ = -1;
    std::unique_ptr<JournalSink> journal_;
    std::int64_t journal_retry_after_ns_ = 0;
    std::uint64_t jsonl_size_ = 0;
    std::vector<FileIndex> jsonl_index_; ///< [0] the current file, [i] FILE.i

    /// store::keep_class -> lines reserved so far this run (JSONL's kept counts), and
    /// store::keep_sum_key -> its sum (store::kKeepPerAgent)
    std::map<std::string, std::uint32_t, std::less<>> jsonl_kept_;
    std::uint64_t db_pending_lost_ = 0; ///< lost since the last successful write: a gap record
    std::string db_pending_why_;
    std::int64_t db_retry_after_ns_ = 0;
    std::int64_t jsonl_retry_after_ns_ = 0;
    std::int64_t rotate_retry_after_ns_ = 0; ///< a failed rotation waits this long to be retried
    bool rotate_failing_ = false;             ///< the last rotation tried failed
    std::int64_t last_prune_ns_ = 0;
    std::string prune_error_; ///< the last retention pass's error, logged when it changes
    std::int64_t realtime_offset_ns_ = 0; ///< CLOCK_REALTIME - CLOCK_MONOTONIC
    PipelineStats stats_;                  ///< guarded by mu_ (store thread's part)
    std::map<std::string, std::pair<std::int64_t, std::string>> heads_; ///< guarded by mu_
    std::thread thread_;
};

} // namespace cordon::events
