// SPDX-License-Identifier: Apache-2.0
#include "events/pipeline.h"

#include <fcntl.h>
#include <unistd.h>

#include <ctime>
#include <iterator>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "common/error.h"

namespace cordon::events {

namespace fs = std::filesystem;

namespace {

std::int64_t clock_ns(clockid_t id)
{
    timespec ts{};
    ::clock_gettime(id, &ts);
    return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

/// A sink that failed is tried again after this long; meanwhile its records are counted lost
/// (a full disk must not cost a failed write per batch at a million records a second).
constexpr std::int64_t kRetryNs = 1'000'000'000;
/// An agent with no more than this many lines in a JSONL file that goes, and under half an even
/// share of it, has them all carried to FILE.kept: a quiet agent keeps its records however
/// much another one floods.
constexpr std::size_t kCarryAgent = 4096;

/// Records per SQLite transaction: large enough to amortise the commit, small enough that a
/// failed one loses little, and at most ~1/16 of a size-limited store (a transaction is WAL on
/// disk until it commits, and retention runs between two).
std::size_t db_batch(std::uint64_t max_bytes)
{
    return max_bytes ? std::clamp<std::size_t>(max_bytes / 16 / 1024, 32, 8192) : 8192;
}

} // namespace

Pipeline::Pipeline(PipelineOptions o) : opts_(std::move(o))
{
    realtime_offset_ns_ = clock_ns(CLOCK_REALTIME) - clock_ns(CLOCK_MONOTONIC);
    if (opts_.db) {
        stats_.db_path = opts_.db->string();
        // Fails open for enforcement: a store that cannot be opened (read-only or full disk)
        // must not keep cordond from starting and guarding; it is retried each second, and
        // until then every record is counted lost (status, metrics, then a gap record).
        try {
            db_ = std::make_unique<store::Writer>(*opts_.db, opts_.db_options);
        } catch (const std::exception& e) {
            stats_.db_error = e.what();
            spdlog::error("event store: {}; records are counted lost until it can be written", e.what());
        }
    }
    if (db_)
        opened_db();
    if (opts_.jsonl) {
        stats_.jsonl_path = opts_.jsonl->string();
        open_jsonl();
        if (jsonl_fd_ < 0)
            spdlog::error("cannot open the event file {}: {}; records are counted lost until it "
                          "can be written", opts_.jsonl->string(), stats_.jsonl_error);
    }
    if (opts_.journal) {
        stats_.journal_path = opts_.journal->string();
        journal_ = std::make_unique<JournalSink>(*opts_.journal);
    }
    staged_.reserve(1024);
    thread_ = std::thread([this] { run(); });
}

Pipeline::~Pipeline()
{
    flush();
    {
        std::lock_guard lk(mu_);
        stop_ = true;
    }
    cv_.notify_one();
    if (thread_.joinable())
        thread_.join();
    if (jsonl_fd_ >= 0)
        ::close(jsonl_fd_);
}

void Pipeline::push(const Event& e, Context cx)
{
    ++received_;
    staged_.push_back({e, std::move(cx), std::nullopt, clock_ns(CLOCK_MONOTONIC)});
}

void Pipeline::push_action(const nlohmann::json& action)
{
    ++received_;
    staged_.push_back({Event{}, {}, action, clock_ns(CLOCK_MONOTONIC)});
}

void Pipeline::push_gap(std::uint64_t n, const std::string& why, const std::string& agent)
{
    staged_.push_back({Event{}, {}, nlohmann::json{{"gap", n}, {"why", why}, {"agent", agent}},
                       clock_ns(CLOCK_MONOTONIC)});
}

void Pipeline::flush()
{
    if (staged_.empty())
        return;
    {
        std::lock_guard lk(mu_);
        std::size_t room = queue_.size() < opts_.queue_max ? opts_.queue_max - queue_.size() : 0;
        for (auto& it : staged_) {
            // cordond's own records (operator actions, gap counts) always go in, over the limit
            // if need be: they are few, and a gap dropped would hide what it counts. Kernel
            // records are held to the room (the drain budget already keeps them within it).
            if (it.action) {
                queue_.push_back(std::move(it));
            } else if (room > 0) {
                queue_.push_back(std::move(it));
                --room;
            } else {
                // Fails open for enforcement, closed for silence: counted, and a gap record.
                ++queue_dropped_;
            }
        }
    }
    staged_.clear();
    cv_.notify_one();
}

void Pipeline::opened_db()
{
    const auto moved = db_->corrupt_moved();
    if (moved)
        spdlog::error("event store {} was corrupt: moved aside to {}, a new one started",
                      opts_.db->string(), moved->string());
    // The store holds every agent's paths and arguments: the owner's alone, whoever made the
    // directory (SQLite gives -wal and -shm the database file's mode).
    for (const auto& f : {opts_.db->string(), opts_.db->string() + "-wal", opts_.db->string() + "-shm"}) {
        std::error_code ec;
        if (fs::exists(f, ec))
            fs::permissions(f, fs::perms::owner_read | fs::perms::owner_write, ec);
    }
    auto heads = db_->heads();
    std::lock_guard lk(mu_); // only to publish: no disk access under it
    if (moved)
        stats_.corrupt_moved = moved->string();
    heads_ = std::move(heads);
}

std::size_t Pipeline::room() const
{
    std::lock_guard lk(mu_);
    const std::size_t used = queue_.size() + staged_.size();
    return used < opts_.queue_max ? opts_.queue_max - used : 0;
}

PipelineStats Pipeline::stats() const
{
    std::lock_guard lk(mu_);
    PipelineStats s = stats_;
    s.received = received_;
    s.queue_dropped = queue_dropped_;
    s.lag_records += queue_.size();
    if (!queue_.empty())
        s.lag_ms = std::max(s.lag_ms, (clock_ns(CLOCK_MONOTONIC) - queue_.front().queued_ns) / 1'000'000);
    return s;
}

std::map<std::string, std::pair<std::int64_t, std::string>> Pipeline::heads() const
{
    std::lock_guard lk(mu_);
    return heads_;
}

void Pipeline::run()
{
    std::vector<Item> batch;
    std::uint64_t dropped_seen = 0;
    for (;;) {
        {
            std::unique_lock lk(mu_);
            cv_.wait_for(lk, std::chrono::milliseconds(200), [this] { return !queue_.empty() || stop_; });
            if (queue_.empty() && stop_)
                return;
            batch.swap(queue_);
            stats_.lag_records = batch.size();
            stats_.lag_ms = batch.empty() ? 0 : (clock_ns(CLOCK_MONOTONIC) - batch.front().queued_ns) / 1'000'000;
        }
        // Records the queue could not take are a gap in the store too.
        if (const auto d = queue_dropped_.load(); d != dropped_seen) {
            if (opts_.db) {
                db_pending_lost_ += d - dropped_seen;
                if (db_pending_why_.empty())
                    db_pending_why_ = "the store fell behind (queue full)";
            }
            dropped_seen = d;
        }
        if (!batch.empty())
            write(batch);
        batch.clear();
        const auto now = clock_ns(CLOCK_MONOTONIC);
        if (db_ && now - last_prune_ns_ >= opts_.prune_interval_ms * 1'000'000)
            prune_db();
        std::lock_guard lk(mu_);
        stats_.lag_records = 0;
        stats_.lag_ms = 0;
        stats_.store_cpu_ns = static_cast<std::uint64_t>(clock_ns(CLOCK_THREAD_CPUTIME_ID));
    }
}

void Pipeline::prune_db()
{
    const auto now = clock_ns(CLOCK_MONOTONIC);
    last_prune_ns_ = now;
    realtime_offset_ns_ = clock_ns(CLOCK_REALTIME) - now;
    const auto n = db_->prune(clock_ns(CLOCK_REALTIME));
    // A pass that hit its bound left work: the next one runs after the next batch, so
    // retention keeps up with a flood (each pass is bounded, the store thread goes on).
    if (n >= store::kPruneMaxRecords)
        last_prune_ns_ = 0;
    auto heads = db_->heads();
    const std::string error = db_->last_error();
    if (!error.empty() && error != prune_error_) // once per cause, not once per pass
        spdlog::error("event store retention: {}", error);
    prune_error_ = error;
    std::lock_guard lk(mu_);
    if (n > 0)
        stats_.pruned += static_cast<std::uint64_t>(n);
    if (!error.empty())
        stats_.db_error = error;
    heads_ = std::move(heads);
}

void Pipeline::write(std::vector<Item>& batch)
{
    std::vector<store::Record> records;
    records.reserve(batch.size() + 1);
    for (auto& it : batch) {
        if (it.action && it.action->contains("gap")) {
            records.push_back(stored_gap((*it.action)["gap"].get<std::uint64_t>(),
                                         (*it.action)["why"].get<std::string>(),
                                         it.queued_ns + realtime_offset_ns_,
                                         (*it.action)["agent"].get<std::string>()));
        } else if (it.action && it.action->contains("dns")) {
            records.push_back(stored_dns(*it.action, it.queued_ns + realtime_offset_ns_));
        } else if (it.action) {
            const auto ms = it.action->value("time_ms", std::int64_t{0});
            records.push_back(stored_action(*it.action, ms ? ms * 1'000'000 : it.queued_ns + realtime_offset_ns_));
        } else {
            records.push_back(stored_record(it.event, it.cx,
                                            static_cast<std::int64_t>(it.event.header().ts_ns) +
                                                realtime_offset_ns_));
        }
    }
    if (jsonl_fd_ >= 0 || opts_.jsonl)
        write_jsonl(records);
    if (journal_)
        write_journal(records);
    if (opts_.db)
        write_db(records);
}

void Pipeline::open_jsonl()
{
    std::error_code ec;
    fs::create_directories(opts_.jsonl->parent_path(), ec);
    jsonl_fd_ = ::open(opts_.jsonl->c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (jsonl_fd_ < 0) {
        std::lock_guard lk(mu_);
        stats_.jsonl_error = errno_text(errno);
        return;
    }
    const off_t size = ::lseek(jsonl_fd_, 0, SEEK_END);
    jsonl_size_ = size > 0 ? static_cast<std::uint64_t>(size) : 0;
    // FILE and FILE.1..N; only an empty file is known whole (lines written before this
    // cordond started are not indexed: nothing of them is carried).
    jsonl_index_.resize(opts_.jsonl_files + 1);
    if (jsonl_size_ == 0)
        jsonl_index_[0] = FileIndex{.known = true};
}

namespace {

/// Writes all of `b` to `fd` (retrying EINTR and short writes); 0 or the errno (ENOSPC for a
/// write that took nothing). `*done` says how much went, whatever the outcome.
int write_all(int fd, std::string_view b, std::size_t* done)
{
    std::size_t off = 0;
    int err = 0;
    while (off < b.size()) {
        const auto n = ::write(fd, b.data() + off, b.size() - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            err = n < 0 ? errno : ENOSPC;
            break;
        }
        off += static_cast<std::size_t>(n);
    }
    *done = off;
    return err;
}

/// Appends the lines at `spans` of the file open at `in` to `to` (made 0600; past `max_bytes`
/// it becomes `to`.1 first, one older generation). Only whole lines are copied (a span that no
/// longer holds one, the file having been cut or rewritten by hand, is skipped); a failed write
/// is cut back. Returns the lines copied and whether `to` was begun; nullopt and `error` set
/// when it could not be written.
std::optional<std::pair<std::size_t, bool>> append_lines(int in, std::vector<Pipeline::Span> spans,
                                                         const std::string& to, std::uint64_t max_bytes,
                                                         std::string& error)
{
    std::sort(spans.begin(), spans.end(), [](const auto& x, const auto& y) { return x.off < y.off; });
    spans.erase(std::unique(spans.begin(), spans.end(), [](const auto& x, const auto& y) { return x.off == y.off; }),
                spans.end());
    std::string buf;
    std::size_t lines = 0;
    for (const auto& sp : spans) {
        const auto at = buf.size();
        buf.resize(at + sp.len);
        const bool whole = ::pread(in, buf.data() + at, sp.len, static_cast<off_t>(sp.off)) ==
                               static_cast<ssize_t>(sp.len) &&
                           sp.len >= 2 && buf[at] == '{' && buf.back() == '\n';
        if (!whole)
            buf.resize(at);
        lines += whole;
    }
    if (buf.empty())
        return std::pair{std::size_t{0}, false};
    std::error_code ec;
    const auto size = fs::file_size(to, ec);
    bool begun = static_cast<bool>(ec);
    if (!ec && max_bytes && size + buf.size() > max_bytes) {
        fs::rename(to, to + ".1", ec);
        if (ec) {
            error = "cannot rotate " + to + ": " + ec.message();
            return std::nullopt;
        }
        begun = true;
    }
    const int out = ::open(to.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (out < 0) {
        error = "cannot open " + to + ": " + errno_text(errno);
        return std::nullopt;
    }
    const off_t before = ::lseek(out, 0, SEEK_END);
    std::size_t done = 0;
    const int err = write_all(out, buf, &done);
    if (err && before >= 0 && ::ftruncate(out, before) != 0) {
        // The half line stays: nothing more to do about it here; the error says so.
    }
    ::close(out);
    if (err) {
        error = "cannot write " + to + ": " + errno_text(err);
        return std::nullopt;
    }
    return std::pair{lines, begun};
}

} // namespace

bool Pipeline::carry_jsonl(FileIndex& idx, const std::string& path)
{
    if (!idx.known) {
        if (std::error_code ec; fs::exists(path, ec))
            spdlog::warn("{} was written before this cordond started (or its rotation failed): it "
                         "goes without its reserved records carried to {}.kept", path, opts_.jsonl->string());
        return true;
    }
    // Quiet agents: all their lines, when they held under half an even share of the file's
    // bytes (so long lines do not make a flooder look quiet).
    std::vector<Span> quiet;
    const std::uint64_t share = idx.bytes / (2 * std::max<std::size_t>(1, idx.agents.size()));
    // (idx.reserved is in file order: each line is in one of the two files, never both.)
    const auto reserved = [&](const Span& sp) {
        return std::binary_search(idx.reserved.begin(), idx.reserved.end(), sp,
                                  [](const Span& x, const Span& y) { return x.off < y.off; });
    };
    for (const auto& [agent, a] : idx.agents)
        if (a.bytes <= share && a.count == a.first.size())
            std::copy_if(a.first.begin(), a.first.end(), std::back_inserter(quiet),
                         [&](const Span& sp) { return !reserved(sp); });
    if (idx.reserved.empty() && quiet.empty())
        return true;
    const int in = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    std::string error;
    std::size_t lines = 0, begun = 0;
    bool ok = in >= 0;
    // Apart: reserved lines in FILE.kept, which the quiet agents' lines (FILE.carried) cannot
    // make roll over.
    const std::string base = opts_.jsonl->string();
    if (!ok) {
        error = "cannot read " + path + ": " + errno_text(errno);
    } else if (!idx.reserved_copied) {
        const auto kept = append_lines(in, idx.reserved, base + ".kept", opts_.jsonl_max_bytes, error);
        ok = kept.has_value();
        if (ok) {
            idx.reserved_copied = true; // a retry after a failed carry must not copy them again
            lines += kept->first;
            begun += kept->second;
        }
    }
    if (ok) {
        const auto carried = append_lines(in, quiet, base + ".carried", opts_.jsonl_max_bytes, error);
        ok = carried.has_value();
        if (ok) {
            lines += carried->first;
            begun += carried->second;
        }
    }
    if (in >= 0)
        ::close(in);
    std::lock_guard lk(mu_);
    stats_.jsonl_carried += lines;
    stats_.jsonl_kept_files += begun;
    if (!ok)
        stats_.jsonl_error = "cannot carry the reserved records of " + path + " (it is kept, the file grows "
                             "past its size until this works): " + error;
    return ok;
}

bool Pipeline::rotate_jsonl()
{
    // FILE -> FILE.1 -> ... -> FILE.N; the oldest goes, once what retention reserves of it is
    // carried out. A failed carry or rename keeps writing to the current file (over its size,
    // which the error in status says) rather than losing records.
    const std::string base = opts_.jsonl->string();
    const auto failed = [&](const std::string& why) {
        std::lock_guard lk(mu_);
        stats_.jsonl_error = why;
        return false;
    };
    if (opts_.jsonl_files == 0) {
        if (!carry_jsonl(jsonl_index_[0], base))
            return false;
        if (::ftruncate(jsonl_fd_, 0) != 0)
            return failed("cannot truncate " + base + ": " + errno_text(errno));
        jsonl_size_ = 0;
        jsonl_index_[0] = FileIndex{.known = true};
        return true;
    }
    const std::string oldest = base + "." + std::to_string(opts_.jsonl_files);
    if (!carry_jsonl(jsonl_index_.back(), oldest))
        return false;
    std::error_code ec;
    fs::remove(oldest, ec);
    if (ec)
        return failed("cannot remove " + oldest + ": " + ec.message());
    for (unsigned i = opts_.jsonl_files; i-- > 0;) {
        const std::string from = i ? base + "." + std::to_string(i) : base;
        if (i && !fs::exists(from, ec))
            continue;
        fs::rename(from, base + "." + std::to_string(i + 1), ec);
        if (ec) {
            // Part of the files moved: which index is whose is no longer known, so the rotated
            // files go later without their lines carried (logged then), never with others'.
            for (std::size_t k = 1; k < jsonl_index_.size(); ++k)
                jsonl_index_[k] = FileIndex{};
            return failed("cannot rotate " + from + ": " + ec.message());
        }
    }
    jsonl_index_.pop_back();
    jsonl_index_.insert(jsonl_index_.begin(), FileIndex{});
    ::close(jsonl_fd_);
    jsonl_fd_ = -1;
    open_jsonl();
    std::lock_guard lk(mu_);
    ++stats_.jsonl_rotations;
    return jsonl_fd_ >= 0;
}

void Pipeline::write_jsonl(const std::vector<store::Record>& records)
{
    const auto now = clock_ns(CLOCK_MONOTONIC);
    if (now < jsonl_retry_after_ns_ || (jsonl_fd_ < 0 && (open_jsonl(), jsonl_fd_ < 0))) {
        std::lock_guard lk(mu_);
        stats_.jsonl_lost += records.size();
        jsonl_retry_after_ns_ = std::max(jsonl_retry_after_ns_, now + kRetryNs);
        return;
    }
    std::string buf;
    buf.reserve(std::min<std::size_t>(records.size() * 700, 8u << 20));
    std::size_t lines = 0, lost = 0, written = 0;
    int err = 0;
    std::vector<std::pair<Span, const store::Record*>> placed; // lines of buf, for the index
    const auto put = [&]() {
        if (buf.empty())
            return;
        const std::uint64_t before = jsonl_size_;
        std::size_t off = 0;
        if (const int e = write_all(jsonl_fd_, buf, &off))
            err = e;
        if (off == buf.size()) {
            jsonl_size_ += off;
            written += lines;
            for (const auto& [sp, r] : placed)
                index_jsonl_line(*r, sp);
        } else {
            // No half line stays behind: the file is cut back to the last whole record.
            if (::ftruncate(jsonl_fd_, static_cast<off_t>(before)) != 0)
                jsonl_size_ += off;
            lost += lines;
        }
        buf.clear();
        placed.clear();
        lines = 0;
    };
    for (const auto& r : records) {
        if (err) {
            ++lost;
            continue;
        }
        // A rotation that failed is tried again a second later, not at every line.
        if (opts_.jsonl_max_bytes && jsonl_size_ + buf.size() + r.json.size() + 1 > opts_.jsonl_max_bytes &&
            jsonl_size_ + buf.size() > 0 && now >= rotate_retry_after_ns_) {
            put();
            rotate_failing_ = !err && jsonl_size_ > 0 && !rotate_jsonl();
            if (rotate_failing_) {
                rotate_retry_after_ns_ = now + kRetryNs;
                if (jsonl_fd_ < 0)
                    err = EBADF;
            }
            if (err) {
                ++lost;
                continue;
            }
        }
        placed.emplace_back(Span{.off = jsonl_size_ + buf.size(), .len = static_cast<std::uint32_t>(r.json.size() + 1)},
                            &r);
        buf += r.json;
        buf += '\n';
        ++lines;
        if (buf.size() >= (1u << 20))
            put();
    }
    put();
    std::lock_guard lk(mu_);
    stats_.jsonl_written += written;
    stats_.jsonl_lost += lost;
    if (err) {
        ++stats_.jsonl_write_errors;
        stats_.jsonl_error = "cannot write " + opts_.jsonl->string() + ": " + errno_text(err);
        jsonl_retry_after_ns_ = now + kRetryNs;
    } else if (written && !rotate_failing_) { // a failing rotation's error stays until one works
        stats_.jsonl_error.clear();
    }
}

void Pipeline::index_jsonl_line(const store::Record& r, Span sp)
{
    auto& idx = jsonl_index_[0];
    if (!idx.known)
        return; // a file begun before this cordond: nothing of it is carried
    ++idx.lines;
    idx.bytes += sp.len;
    auto a = idx.agents.try_emplace(r.agent).first;
    a->second.bytes += sp.len;
    if (a->second.count++ < kCarryAgent)
        a->second.first.push_back(sp);
    // The same reserve as the store's (store::keep_first), counted over this run's lines.
    if (const auto cap = store::keep_first(r)) {
        auto& sum = jsonl_kept_[store::keep_sum_key(r)]; // the store's sums, the same way
        auto k = jsonl_kept_.try_emplace(store::keep_class(r), 0).first;
        if (k->second < cap && sum < store::kKeepPerAgent) {
            ++k->second;
            ++sum;
            idx.reserved.push_back(sp);
        }
    }
}

void Pipeline::write_journal(const std::vector<store::Record>& records)
{
    const auto now = clock_ns(CLOCK_MONOTONIC);
    std::size_t written = 0, lost = 0;
    int err = 0;
    // A journald that is missing or stopped reading: the batch is counted lost and the sink
    // tried again a second later (fails open for the other sinks, closed for silence).
    if (now < journal_retry_after_ns_) {
        lost = records.size();
    } else {
        for (const auto& r : records) {
            if (err) {
                ++lost;
                continue;
            }
            const int e = journal_->send(r);
            if (e == 0) {
                ++written;
            } else {
                ++lost;
                if (e != EMSGSIZE) // one entry too large loses only itself
                    err = e;
            }
        }
    }
    std::lock_guard lk(mu_);
    stats_.journal_written += written;
    stats_.journal_lost += lost;
    if (err) {
        ++stats_.journal_write_errors;
        stats_.journal_error = "cannot send to the journal at " + opts_.journal->string() + ": " +
                               errno_text(err);
        journal_retry_after_ns_ = now + kRetryNs;
    } else if (written) {
        stats_.journal_error.clear();
    }
}

std::string Pipeline::stats_db_error() const
{
    std::lock_guard lk(mu_);
    return stats_.db_error.empty() ? "the store could not be written" : stats_.db_error;
}

void Pipeline::write_db(std::vector<store::Record>& records)
{
    const auto now = clock_ns(CLOCK_MONOTONIC);
    std::size_t stored = 0, lost = 0;
    std::string error;
    bool failed = false;
    if (!db_ && now >= db_retry_after_ns_) {
        try {
            db_ = std::make_unique<store::Writer>(*opts_.db, opts_.db_options);
            opened_db();
            spdlog::info("event store {} opened", opts_.db->string());
        } catch (const std::exception& e) {
            error = e.what();
        }
    }
    if (!db_ || now < db_retry_after_ns_) {
        // Lost while the sink waits to retry: part of the gap the next write records.
        lost = records.size();
        db_pending_lost_ += records.size();
        if (db_pending_why_.empty())
            db_pending_why_ = error.empty() ? stats_db_error() : error;
        failed = !db_;
    } else {
        const std::size_t step = db_batch(opts_.db_options.max_bytes);
        for (std::size_t at = 0; at < records.size(); at += step) {
            std::vector<store::Record> chunk;
            const auto end = std::min(records.size(), at + step);
            const std::size_t n = end - at;
            chunk.reserve(n + 1);
            if (db_pending_lost_)
                chunk.push_back(stored_gap(db_pending_lost_, db_pending_why_,
                                           records[at].time_ns));
            chunk.insert(chunk.end(), std::make_move_iterator(records.begin() + static_cast<std::ptrdiff_t>(at)),
                         std::make_move_iterator(records.begin() + static_cast<std::ptrdiff_t>(end)));
            if (db_->append(chunk)) {
                stored += n;
                db_pending_lost_ = 0;
                db_pending_why_.clear();
                // Over the size limit already: retention now, not at the next interval, so a
                // flood cannot take the store far past its limit in between.
                // (Not while retention is refusing an agent: that pass would do no better, and
                // repeating it per batch would only slow the store; the interval retries.)
                if (db_->over_limit() && prune_error_.empty())
                    prune_db();
            } else {
                // Fails open for enforcement: the records are counted lost, the chain goes on
                // from what is stored, and the next write that works records the gap.
                failed = true;
                error = db_->last_error();
                lost += records.size() - at;
                db_pending_lost_ += records.size() - at;
                if (db_pending_why_.empty())
                    db_pending_why_ = error;
                break;
            }
        }
    }
    std::lock_guard lk(mu_);
    stats_.db_stored += stored;
    stats_.db_lost += lost;
    if (failed) {
        ++stats_.db_write_errors;
        if (!error.empty())
            stats_.db_error = error; // a wait for the retry keeps the last cause
        db_retry_after_ns_ = now + kRetryNs;
        if (db_)
            if (auto moved = db_->corrupt_moved())
                stats_.corrupt_moved = moved->string();
    } else if (stored) {
        stats_.db_error.clear();
    }
}

} // namespace cordon::events
