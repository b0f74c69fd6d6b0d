// SPDX-License-Identifier: Apache-2.0
// The forensic event store: every decision, exec trace, trust change and operator action of the
// daemon, kept in one SQLite file so that `cordon events` can search the past and `cordon verify`
// can prove nobody edited it.
//
// Tamper evidence is a hash chain per agent: record n stores prev = hash(n-1) and
// hash = SHA-256(prev || canonical(record n)). The `heads` table holds the last (seq, hash) of each
// agent so truncation at the end shows; the `tails` table holds where retention started the chain,
// and a "prune" record chained into that agent's chain vouches for it, so moving a chain's start
// without such a record shows too. The chain is not keyed:
// it proves consistency against an attacker who edits rows, not against one who rewrites the whole
// chain; for that the daemon logs heads() elsewhere (journal, remote syslog) from time to time.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

namespace cordon::events::store {

/// One stored record: a kernel decision, an exec trace, a trust change, an operator action, or a gap marker.
struct Record {
    std::int64_t time_ns = 0; ///< CLOCK_REALTIME, ns
    std::string agent;        ///< agent name ("cordond" for gap markers)
    std::string kind;         ///< "decision" | "process" | "trust" | "action" | "gap"
    std::string hook;         ///< exec, open, connect4, ... ; action: the op (kill, apply, ...); process: "exec"
    std::string verdict;      ///< allow|deny|audit|kill|freeze ; action: "ok"|"error"
    std::uint32_t pid = 0, ppid = 0, uid = 0;
    std::string path;         ///< file or exec path ("" none)
    std::string dest;         ///< destination IP address text, "10.0.0.1" or "2001:db8::1" ("" none)
    std::uint16_t port = 0;
    std::string json;         ///< the full record as one JSON object, one line (opaque to the store)
};
/// A record as read back.
struct Row : Record {
    std::int64_t id = 0;  ///< SQLite rowid: insertion order
    std::int64_t seq = 0; ///< position in its agent's chain, from 1
    std::string prev_hex, hash_hex;
    /// Whether size retention keeps it (hashed with it): 0 no, 1 one of its agent's first of
    /// a kind or a kill/freeze/tamper record, 2 an operator action (cut last of all).
    int keep = 0;
};

/// Records one retention pass deletes at most (a few hundred ms of work): a store far over its
/// limits shrinks over several passes, and the store thread never stalls for long. A pass that
/// deleted this many should be followed by another soon.
constexpr std::int64_t kPruneMaxRecords = 100'000;

/// Retention by size keeps, of each agent, its first records of each kind (kind, hook, verdict):
/// however much an agent writes, what it did first, what the operator did to it and every kill,
/// freeze and tamper record stay (up to these counts). Only when nothing but kept records is
/// left over the size limit are those cut too, oldest first, from the agents keeping the most:
/// first those the agent caused, the operator's actions last of all. Retention by age takes
/// kept records like any other.
constexpr std::uint32_t kKeepFirst = 8;   ///< of each ordinary kind, per agent
constexpr std::uint32_t kKeepMany = 1024; ///< operator actions, kill, freeze and tamper, per agent and kind
/// Records kept per agent in all: kinds are few, but an action's kind carries the operation a
/// caller named, so the sum is bounded too.
constexpr std::uint32_t kKeepPerAgent = 4096;
/// How many records of r's kind retention by size keeps for r's agent (0: never kept).
std::uint32_t keep_first(const Record& r);
/// The kind keep_first() counts r under: agent, kind, hook and verdict.
std::string keep_class(const Record& r);
/// The per-agent sum (kKeepPerAgent) r counts in: its agent's own records, or the operator's
/// actions on it, apart.
std::string keep_sum_key(const Record& r);

struct Options {
    std::int64_t max_age_ns = 30LL * 24 * 3600 * 1'000'000'000; ///< retention by age (0 = none)
    std::uint64_t max_bytes = 1ULL << 30; ///< retention by size of the database (0 = none)
    /// A new store's page size in bytes (a power of two, 512..65536); an existing store keeps
    /// its own. 64 KiB takes a third less CPU per record than 4 KiB under a flood (fewer WAL
    /// frames and syscalls; docs/benchmarks.md), but every commit writes whole pages, ~5 of
    /// them for a batch of one record (320 KB against 20 KB): not the default, for a quiet
    /// host's disk. Retention never aims below 32 pages.
    std::uint32_t page_size = 4096;
    /// Size retention keeps each agent's first records (keep_first). Off only in tests that
    /// make a store as schema 2 wrote it, every record unkept.
    bool keep = true;
};

/// The daemon's side: appends batches and applies retention. Used by one thread only (the store
/// thread), so it holds one connection without locking of its own.
class Writer {
public:
    /// Opens or creates the database at `path` (parent directory created 0700). A file that is not
    /// a database or is corrupt is moved aside to "<path>.corrupt-<unix seconds>" (with its
    /// -wal/-shm) and a new one created; corrupt_moved() names the moved file. Throws cordon::Error
    /// when even a new database cannot be created, or when the file is a newer schema or not a
    /// cordon store (those are left alone: they are not ours to move).
    Writer(std::filesystem::path path, Options o);
    ~Writer();
    Writer(const Writer&) = delete;
    Writer& operator=(const Writer&) = delete;

    /// Stores the batch in one transaction, chaining each record to its agent's previous record.
    /// All or nothing: on failure the transaction is rolled back, the chain heads are reloaded from
    /// what is stored, last_error() is set and false returned. A corrupt database is moved aside and
    /// a fresh one opened, so the next call can succeed.
    bool append(std::span<const Record> batch);
    /// Deletes records older than max_age and, while the database is over max_bytes, the oldest
    /// records of the agents holding the most (a flooding agent evicts its own first). Each
    /// agent cut gets, in the same transaction, a `tails` row and a record of kind "prune" in its
    /// own chain that vouches for it (so a chain never empties through retention); then vacuums
    /// and truncates the WAL. Returns the number of records deleted (prune records not counted);
    /// 0 with last_error() set on failure (never throws).
    std::int64_t prune(std::int64_t now_ns);
    /// The database's live pages are over max_bytes: prune() now rather than at its interval
    /// (a flood fills a small store between two intervals many times over). Cheap: header reads.
    bool over_limit();
    const std::string& last_error() const;
    std::optional<std::filesystem::path> corrupt_moved() const;
    /// Chain heads: agent -> (seq, hash hex), for the daemon to log periodically.
    std::map<std::string, std::pair<std::int64_t, std::string>> heads() const;

    /// Test hook: runs SQL on the writer's own connection (e.g. PRAGMA max_page_count to force
    /// SQLITE_FULL). Returns false and sets last_error() on failure.
    bool exec_for_test(const std::string& sql);

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

struct Filter {
    // The {} let callers name only the fields they set (designated initializers, no warnings).
    std::optional<std::string> agent{};
    std::optional<std::int64_t> since_ns{}, until_ns{};    ///< time_ns >= since, <= until
    std::vector<std::string> verdicts{}, hooks{}, kinds{}; ///< any of (empty = all)
    std::optional<std::string> path_glob{};                ///< SQLite GLOB on path
    std::optional<std::string> dest_cidr{}; ///< "10.0.0.0/8", "2001:db8::/32" or a bare address
    std::size_t limit = 0;                ///< 0 = no limit
};
/// Reads the database read-only, so it works while the daemon writes. Rows ordered by time_ns
/// then id. Throws cordon::Error for a missing or unreadable store and for bad filter input
/// (a malformed CIDR, named in the message).
std::vector<Row> query(const std::filesystem::path& db, const Filter& f);
/// As query(), one row at a time in bounded memory: visit gets each row in order. Returns how
/// many rows it was given.
std::size_t for_each(const std::filesystem::path& db, const Filter& f,
                     const std::function<void(Row&&)>& visit);

struct VerifyResult {
    bool ok = true;
    std::uint64_t records = 0; ///< records checked
    std::map<std::string, std::uint64_t> per_agent;
    /// The first bad record, when !ok (lowest seq of the first agent in name order). For deletions,
    /// seq is the first missing seq and id the row found after the gap (0 at the end).
    std::string agent;
    std::int64_t id = 0, seq = 0;
    /// names the tampering: "edited", "deleted", "inserted", "missing at the end", "chain start
    /// moved without a prune record"
    std::string reason;
};
/// Walks every chain (or only `agent`'s) read-only. Throws cordon::Error like query().
VerifyResult verify(const std::filesystem::path& db, std::optional<std::string> agent = {});

} // namespace cordon::events::store
