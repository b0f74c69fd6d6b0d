// SPDX-License-Identifier: Apache-2.0
// The forensic event store on SQLite; see store.h for the chain design.
#include "events/store.h"


#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <set>
#include <variant>

#include <fmt/format.h>
#include <openssl/sha.h>
#include <sqlite3.h>

#include "common/error.h"
#include "events/json.h"
#include "policy/net.h"

namespace cordon::events::store {
namespace {

// Bump when the schema changes; a store written by a newer cordon is refused, not guessed at.
// 2: retention cuts are chained (a "prune" record vouches for each agent's tails row).
// 3: records retention by size keeps (`keep`, hashed when set), vouched for by the prune record
//    as a set once before the chain start.
constexpr std::int64_t kSchemaVersion = 3;

using Digest = std::array<unsigned char, SHA256_DIGEST_LENGTH>;
constexpr Digest kZero{};

constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS records(
    id INTEGER PRIMARY KEY, time_ns INTEGER NOT NULL, agent TEXT NOT NULL, seq INTEGER NOT NULL,
    kind TEXT NOT NULL, hook TEXT NOT NULL, verdict TEXT NOT NULL,
    pid INTEGER NOT NULL, ppid INTEGER NOT NULL, uid INTEGER NOT NULL,
    path TEXT NOT NULL, dest TEXT NOT NULL, port INTEGER NOT NULL, json TEXT NOT NULL,
    prev BLOB NOT NULL, hash BLOB NOT NULL, keep INTEGER NOT NULL DEFAULT 0);
-- (agent, seq) is deliberately not UNIQUE: a forged duplicate must be storable for verify to name it.
CREATE INDEX IF NOT EXISTS records_time ON records(time_ns);
CREATE INDEX IF NOT EXISTS records_agent_seq ON records(agent, seq);
-- Partial: "allow" is the bulk of decisions and nobody searches for it by verdict alone; leaving
-- it out of the index makes appends ~15% cheaper. query() adds the implied term to use it.
CREATE INDEX IF NOT EXISTS records_verdict ON records(verdict) WHERE verdict <> 'allow';
-- The hook index leaves allows out too (one index write less per allow, the bulk); a search
-- by hook alone walks the time index instead. Stores made before keep their full index.
CREATE INDEX IF NOT EXISTS records_hook ON records(hook) WHERE verdict <> 'allow';
CREATE TABLE IF NOT EXISTS heads(agent TEXT PRIMARY KEY, seq INTEGER NOT NULL, hash BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS tails(agent TEXT PRIMARY KEY, seq INTEGER NOT NULL, prev BLOB NOT NULL);
-- A new store starts at the current version; open() upgrades an older one.
INSERT OR IGNORE INTO meta(key, value) VALUES('schema_version', 3);
)sql";
static_assert(kSchemaVersion == 3, "update the INSERT above");
// Made after the upgrade to 3 (an older table has no keep column until then); load_kept()
// counts each agent's kept records through it. A set `keep` is part of its record's hash, so
// flipping it shows; before the chain start, the prune record vouches for the kept set too.
constexpr const char* kKeptIndex =
    "CREATE INDEX IF NOT EXISTS records_kept ON records(agent, seq) WHERE keep <> 0; "
    // Each agent's last prune record, found at once (retention checks it before each cut).
    "CREATE INDEX IF NOT EXISTS records_prune ON records(agent, seq) WHERE kind = 'prune'";

// Columns in the order of the canonical encoding, shared by insert, query and verify.
constexpr const char* kColumns =
    "id, time_ns, agent, seq, kind, hook, verdict, pid, ppid, uid, path, dest, port, json, prev, hash, keep";

std::string hex(const unsigned char* p, std::size_t n)
{
    static constexpr char d[] = "0123456789abcdef";
    std::string s(n * 2, '0');
    for (std::size_t i = 0; i < n; ++i) {
        s[2 * i] = d[p[i] >> 4];
        s[2 * i + 1] = d[p[i] & 15];
    }
    return s;
}

// Fixed-width little-endian integers and u32-length-prefixed strings: no field can bleed into the
// next, so moving bytes between fields (path "a" + json "bc" vs "ab" + "c") changes the hash.
void put_le(std::string& b, std::uint64_t v, int bytes)
{
    for (int i = 0; i < bytes; ++i)
        b.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
void put_str(std::string& b, std::string_view s)
{
    put_le(b, s.size(), 4);
    b.append(s);
}

/// SHA-256(prev || canonical(r, seq) [|| keep]); `buf` is reused so hashing does not allocate per
/// record. A record retention keeps has its keep tier as one byte more (the encoding before it
/// is self-delimiting, so no record without it hashes alike); every record stored before schema
/// 3 has none, so their hashes stand.
Digest chain_hash(const unsigned char* prev, const Record& r, std::int64_t seq, int keep, std::string& buf)
{
    buf.assign(reinterpret_cast<const char*>(prev), SHA256_DIGEST_LENGTH);
    put_le(buf, static_cast<std::uint64_t>(r.time_ns), 8);
    put_str(buf, r.agent);
    put_le(buf, static_cast<std::uint64_t>(seq), 8);
    put_str(buf, r.kind);
    put_str(buf, r.hook);
    put_str(buf, r.verdict);
    put_le(buf, r.pid, 4);
    put_le(buf, r.ppid, 4);
    put_le(buf, r.uid, 4);
    put_str(buf, r.path);
    put_str(buf, r.dest);
    put_le(buf, r.port, 2);
    put_str(buf, r.json);
    if (keep != 0)
        buf.push_back(static_cast<char>(keep));
    Digest d;
    SHA256(reinterpret_cast<const unsigned char*>(buf.data()), buf.size(), d.data());
    return d;
}

// The "prune" record: what a retention cut removed from an agent's chain, chained into that same
// chain, so that the tails row (where the chain now starts) is vouched for by a hashed record and a
// writer of the file cannot move the start of a chain (or empty it) and call it retention.
constexpr std::string_view kPruneKind = "prune";
/// What one size-retention pass gives back to the file system at most (incremental vacuum:
/// moving pages is the costly part): retention runs every few seconds, so a store over its
/// limit shrinks over several passes, and the store thread never stalls for long.
constexpr std::int64_t kVacuumBytes = 16 << 20;
/// The WAL between checkpoints: 40 MB instead of SQLite's 4 MB (a batch of 4096 records is
/// ~2.5 MB, and checkpointing every other batch cost a quarter of the append rate); prune()
/// truncates it. A small store gets an eighth of its limit: the WAL is disk it uses too.
constexpr std::uint64_t kWalBytes = 40 << 20, kWalMinBytes = 256 << 10;
/// The smallest store retention aims for, in pages: eight tables and indexes take one each.
constexpr std::int64_t kMinPages = 32;

std::uint32_t page_size_for(const Options& o)
{
    return o.page_size ? o.page_size : 4096;
}

/// One line, OCSF-ish (class 0: no OCSF class fits a store's own housekeeping); the facts verify
/// needs are in "unmapped".
/// The records retention kept before an agent's chain start, as a prune record vouches for them:
/// how many, and SHA-256 over each one's seq (8 bytes, little-endian) and hash, in seq order.
struct KeptSet {
    std::int64_t n = 0;
    Digest digest{};
};
KeptSet kept_set(std::string_view seq_and_hashes)
{
    KeptSet k;
    k.n = static_cast<std::int64_t>(seq_and_hashes.size() / (8 + SHA256_DIGEST_LENGTH));
    if (k.n > 0)
        SHA256(reinterpret_cast<const unsigned char*>(seq_and_hashes.data()), seq_and_hashes.size(),
               k.digest.data());
    return k;
}

std::string prune_json(std::int64_t time_ns, const std::string& agent, std::int64_t through,
                       std::int64_t n, std::string_view cause, const Digest& tail_prev,
                       const KeptSet& kept = {})
{
    std::string quoted_agent;
    json_string(quoted_agent, agent);
    const std::string kept_json =
        kept.n ? fmt::format(R"(,"kept_records":{},"kept_hash":"{}")", kept.n,
                             hex(kept.digest.data(), kept.digest.size()))
               : "";
    return fmt::format(R"({{"class_uid":0,"category_uid":0,"activity_name":"prune","time":{},)"
                       R"("actor":{{"app_name":"cordond"}},"agent":{},"unmapped":{{)"
                       R"("pruned_through_seq":{},"pruned_records":{},"cause":"{}","tail_prev":"{}"{}}}}})",
                       time_ns / 1'000'000, quoted_agent, through, n, cause,
                       hex(tail_prev.data(), tail_prev.size()), kept_json);
}

/// What a prune record vouches for: the chain now starts at through + 1, chained to tail_prev,
/// and before it only the kept records named by `kept`.
struct Vouch {
    std::int64_t through = 0;
    Digest tail_prev{};
    KeptSet kept;
};

/// The unsigned decimal after `key` in json; nullopt when absent or not a number.
std::optional<std::int64_t> json_count(std::string_view json, std::string_view key)
{
    auto t = json.find(key);
    if (t == std::string_view::npos)
        return std::nullopt;
    t += key.size();
    std::int64_t v = 0;
    std::size_t digits = 0;
    for (; t < json.size() && json[t] >= '0' && json[t] <= '9' && digits < 18; ++t, ++digits)
        v = v * 10 + (json[t] - '0');
    return digits ? std::optional(v) : std::nullopt;
}

/// The 64 hex digits after `key` in json, as a digest; nullopt when absent or malformed.
std::optional<Digest> json_digest(std::string_view json, std::string_view key)
{
    auto p = json.find(key);
    if (p == std::string_view::npos)
        return std::nullopt;
    p += key.size();
    Digest d;
    if (json.size() < p + 2 * d.size())
        return std::nullopt;
    auto nib = [](char c) {
        return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
    };
    for (std::size_t i = 0; i < d.size(); ++i) {
        const int hi = nib(json[p + 2 * i]), lo = nib(json[p + 2 * i + 1]);
        if (hi < 0 || lo < 0)
            return std::nullopt;
        d[i] = static_cast<unsigned char>(hi << 4 | lo);
    }
    return d;
}
/// Reads back what prune_json wrote. Only records of kind "prune" are read, whose JSON only the
/// daemon writes (and whose hash verify has checked first), so a key search is enough; an agent
/// name cannot fake a key since its quotes are escaped.
std::optional<Vouch> parse_prune(std::string_view json)
{
    const auto through = json_count(json, R"("pruned_through_seq":)");
    const auto prev = json_digest(json, R"("tail_prev":")");
    if (!through || !prev)
        return std::nullopt;
    Vouch v{.through = *through, .tail_prev = *prev, .kept = {}};
    // A prune record that kept nothing says nothing of it (and those of schema 2 never do).
    if (const auto n = json_count(json, R"("kept_records":)")) {
        const auto d = json_digest(json, R"("kept_hash":")");
        if (!d)
            return std::nullopt;
        v.kept = KeptSet{.n = *n, .digest = *d};
    }
    return v;
}

bool is_corruption(int rc)
{
    rc &= 0xff; // extended codes (SQLITE_CORRUPT_VTAB...) share the primary code's low byte
    return rc == SQLITE_CORRUPT || rc == SQLITE_NOTADB;
}

/// "SQLITE_FULL: database or disk is full (errno ENOSPC ...)" for messages.
std::string sqlite_text(sqlite3* db, int rc)
{
    std::string s = fmt::format("{}: {}", sqlite3_errstr(rc), db ? sqlite3_errmsg(db) : "");
    if (int e = db ? sqlite3_system_errno(db) : 0; e != 0)
        s += " (" + errno_text(e) + ")";
    return s;
}

/// Thrown inside the writer when SQLite says the file is damaged; never escapes the module.
struct Corrupt : Error {
    using Error::Error;
};

/// A statement finalized on scope exit (prepared once per call in the read-only paths).
struct Stmt {
    sqlite3_stmt* s = nullptr;
    Stmt() = default;
    Stmt(const Stmt&) = delete;
    Stmt& operator=(const Stmt&) = delete;
    ~Stmt() { sqlite3_finalize(s); }
};

std::string col_text(sqlite3_stmt* s, int i)
{
    auto p = reinterpret_cast<const char*>(sqlite3_column_text(s, i));
    return p ? std::string(p, static_cast<std::size_t>(sqlite3_column_bytes(s, i))) : std::string();
}
/// A 32-byte blob column, or nullopt when it has another size (tampered).
std::optional<Digest> col_digest(sqlite3_stmt* s, int i)
{
    auto p = static_cast<const unsigned char*>(sqlite3_column_blob(s, i));
    if (!p || sqlite3_column_bytes(s, i) != SHA256_DIGEST_LENGTH)
        return std::nullopt;
    Digest d;
    std::memcpy(d.data(), p, d.size());
    return d;
}

/// Reads one row selected with kColumns.
Row read_row(sqlite3_stmt* s, std::optional<Digest>* prev = nullptr, std::optional<Digest>* hash = nullptr)
{
    Row r;
    r.id = sqlite3_column_int64(s, 0);
    r.time_ns = sqlite3_column_int64(s, 1);
    r.agent = col_text(s, 2);
    r.seq = sqlite3_column_int64(s, 3);
    r.kind = col_text(s, 4);
    r.hook = col_text(s, 5);
    r.verdict = col_text(s, 6);
    r.pid = static_cast<std::uint32_t>(sqlite3_column_int64(s, 7));
    r.ppid = static_cast<std::uint32_t>(sqlite3_column_int64(s, 8));
    r.uid = static_cast<std::uint32_t>(sqlite3_column_int64(s, 9));
    r.path = col_text(s, 10);
    r.dest = col_text(s, 11);
    r.port = static_cast<std::uint16_t>(sqlite3_column_int64(s, 12));
    r.json = col_text(s, 13);
    auto pv = static_cast<const unsigned char*>(sqlite3_column_blob(s, 14));
    r.prev_hex = pv ? hex(pv, static_cast<std::size_t>(sqlite3_column_bytes(s, 14))) : "";
    auto hv = static_cast<const unsigned char*>(sqlite3_column_blob(s, 15));
    r.hash_hex = hv ? hex(hv, static_cast<std::size_t>(sqlite3_column_bytes(s, 15))) : "";
    r.keep = static_cast<int>(sqlite3_column_int64(s, 16));
    if (prev)
        *prev = col_digest(s, 14);
    if (hash)
        *hash = col_digest(s, 15);
    return r;
}

/// A read-only connection for query/verify; the daemon may be writing meanwhile (WAL).
struct ReadDb {
    sqlite3* db = nullptr;
    std::filesystem::path path;

    explicit ReadDb(const std::filesystem::path& p) : path(p)
    {
        std::error_code ec;
        if (!std::filesystem::exists(p, ec))
            throw Error(fmt::format("no event store at {}: is cordond running with the store enabled?",
                                    p.string()));
        int rc = sqlite3_open_v2(p.c_str(), &db, SQLITE_OPEN_READONLY, nullptr);
        if (rc != SQLITE_OK)
            fail("cannot open", rc);
        sqlite3_busy_timeout(db, 5000);
        Stmt s;
        prepare(s, "SELECT value FROM meta WHERE key = 'schema_version'");
        rc = sqlite3_step(s.s);
        if (rc != SQLITE_ROW)
            fail("cannot read", rc);
        if (auto v = sqlite3_column_int64(s.s, 0); v > kSchemaVersion)
            throw Error(fmt::format("event store {} has schema version {}, newer than this cordon "
                                    "reads ({}): use the cordon that matches cordond",
                                    p.string(), v, kSchemaVersion));
    }
    ~ReadDb() { sqlite3_close_v2(db); }
    ReadDb(const ReadDb&) = delete;
    ReadDb& operator=(const ReadDb&) = delete;

    [[noreturn]] void fail(const char* what, int rc)
    {
        throw Error(fmt::format("{} event store {}: {}", what, path.string(), sqlite_text(db, rc)));
    }
    void prepare(Stmt& s, const std::string& sql)
    {
        if (int rc = sqlite3_prepare_v2(db, sql.c_str(), -1, &s.s, nullptr); rc != SQLITE_OK)
            fail(rc == SQLITE_ERROR ? "not a cordon event store (or an unreadable one):" : "cannot read",
                 rc);
    }
};

/// A stored destination (a bare address, "" for none) lies in the queried range.
bool dest_in(const policy::Cidr& range, const std::string& dest)
{
    std::string why;
    const auto a = dest.empty() ? std::nullopt : policy::parse_cidr(dest, why);
    return a && policy::cidr_contains(range, *a); // other family or no address: not in it
}

} // namespace

std::uint32_t keep_first(const Record& r)
{
    if (r.kind == kPruneKind)
        return 0; // housekeeping: the latest prune record is the one that counts, and it is never cut
    if (r.kind == "action" || r.verdict == "kill" || r.verdict == "freeze" || r.hook == "tamper")
        return kKeepMany;
    return kKeepFirst;
}

// Apart, so that an agent filling its sum cannot make the operator's later actions unkept.
std::string keep_sum_key(const Record& r)
{
    return r.agent + (r.kind == "action" ? "\x01operator" : "\x01agent");
}

std::string keep_class(const Record& r)
{
    std::string k;
    k.reserve(r.agent.size() + r.kind.size() + r.hook.size() + r.verdict.size() + 3);
    // NUL-separated: no name holds a NUL, so no two classes share a key.
    k.append(r.agent).push_back('\0');
    k.append(r.kind).push_back('\0');
    k.append(r.hook).push_back('\0');
    k.append(r.verdict);
    return k;
}

// ---------------------------------------------------------------------------------------------
// Writer

struct Writer::Impl {
    struct Head {
        std::int64_t seq = 0;
        Digest hash{};
    };

    std::filesystem::path path;
    Options opt;
    sqlite3* db = nullptr;
    sqlite3_stmt* insert = nullptr;
    sqlite3_stmt* put_head = nullptr;
    sqlite3_stmt* get_hash = nullptr;
    sqlite3_stmt* del_prefix = nullptr;
    sqlite3_stmt* get_tail = nullptr;
    sqlite3_stmt* get_below = nullptr;
    sqlite3_stmt* last_prune = nullptr;
    std::map<std::string, Head, std::less<>> heads;
    /// keep_class() -> records of it kept so far (as stored: reloaded with the heads).
    std::map<std::string, std::uint32_t, std::less<>> kept;
    std::map<std::string, std::uint32_t, std::less<>> kept_by_agent; ///< keep_sum_key -> its sum (kKeepPerAgent)
    /// agent -> the kept set its last prune record vouches for (as committed; cleared with the
    /// heads after a failed transaction).
    std::map<std::string, Vouch, std::less<>> vouched;
    /// Agents this prune pass leaves alone: their kept records differ from what their last prune
    /// record vouches for (the file was changed), and cutting would launder that.
    std::set<std::string, std::less<>> refused;
    std::string error;
    std::optional<std::filesystem::path> moved;
    std::string buf; // canonical encoding scratch, reused across records
    std::int64_t page_bytes = 4096; ///< the store's page size (PRAGMA page_size), once open

    void close()
    {
        sqlite3_finalize(insert);
        sqlite3_finalize(put_head);
        sqlite3_finalize(get_hash);
        sqlite3_finalize(del_prefix);
        sqlite3_finalize(get_tail);
        sqlite3_finalize(get_below);
        sqlite3_finalize(last_prune);
        insert = put_head = get_hash = del_prefix = get_tail = get_below = last_prune = nullptr;
        sqlite3_close_v2(db);
        db = nullptr;
    }

    [[noreturn]] void fail(const char* what, int rc)
    {
        auto msg = fmt::format("{} event store {}: {}", what, path.string(), sqlite_text(db, rc));
        if (is_corruption(rc))
            throw Corrupt(msg);
        throw Error(msg);
    }
    void exec(const char* sql, const char* what)
    {
        if (int rc = sqlite3_exec(db, sql, nullptr, nullptr, nullptr); rc != SQLITE_OK)
            fail(what, rc);
    }
    sqlite3_stmt* prepare(const char* sql)
    {
        sqlite3_stmt* s = nullptr;
        if (int rc = sqlite3_prepare_v2(db, sql, -1, &s, nullptr); rc != SQLITE_OK)
            fail(rc == SQLITE_ERROR ? "not a cordon event store:" : "cannot prepare", rc);
        return s;
    }
    std::int64_t scalar(const char* sql, const char* what)
    {
        sqlite3_stmt* s = prepare(sql);
        const int rc = sqlite3_step(s);
        const std::int64_t v = rc == SQLITE_ROW ? sqlite3_column_int64(s, 0) : 0;
        sqlite3_finalize(s);
        if (rc != SQLITE_ROW && rc != SQLITE_DONE)
            fail(what, rc);
        return v;
    }

    /// Opens and, when new, creates the schema. Throws Corrupt when the file is damaged.
    void open()
    {
        int rc = sqlite3_open_v2(path.c_str(), &db,
                                 SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
        if (rc != SQLITE_OK)
            fail("cannot open", rc);
        sqlite3_extended_result_codes(db, 1);
        // Readers (cordon events) never block a WAL writer; this only covers a checkpointing peer.
        sqlite3_busy_timeout(db, 1000);
        // The first read of sqlite_master is where garbage shows up as SQLITE_NOTADB.
        const bool fresh = scalar("SELECT count(*) FROM sqlite_master", "cannot read") == 0;
        // auto_vacuum can only be chosen before the first table exists.
        if (fresh)
            exec(fmt::format("PRAGMA page_size = {}; PRAGMA auto_vacuum = INCREMENTAL", page_size_for(opt)).c_str(),
                 "cannot configure");
        page_bytes = std::max<std::int64_t>(512, scalar("PRAGMA page_size", "cannot read"));
        const auto wal_bytes = opt.max_bytes ? std::clamp(opt.max_bytes / 8, kWalMinBytes, kWalBytes) : kWalBytes;
        exec(fmt::format("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA cache_size = -16384; "
                         "PRAGMA wal_autocheckpoint = {}", std::max<std::uint64_t>(4, wal_bytes / page_bytes)).c_str(),
             "cannot configure");
        exec("BEGIN IMMEDIATE", "cannot create the schema of");
        try {
            exec(kSchema, "cannot create the schema of");
            exec("COMMIT", "cannot create the schema of");
        } catch (...) {
            sqlite3_exec(db, "ROLLBACK", nullptr, nullptr, nullptr);
            throw;
        }
        const auto version = scalar("SELECT value FROM meta WHERE key = 'schema_version'", "cannot read");
        if (version > kSchemaVersion)
            throw Error(fmt::format("event store {} has schema version {}, newer than this cordond "
                                    "writes ({}): upgrade cordon or move the file away",
                                    path.string(), version, kSchemaVersion));
        // The keep column first: every statement below names it.
        if (version < 3)
            add_keep_column();
        exec(kKeptIndex, "cannot create the schema of");
        insert = prepare("INSERT INTO records(time_ns, agent, seq, kind, hook, verdict, pid, ppid, "
                         "uid, path, dest, port, json, prev, hash, keep) "
                         "VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)");
        put_head = prepare("INSERT OR REPLACE INTO heads(agent, seq, hash) VALUES(?,?,?)");
        get_hash = prepare("SELECT hash FROM records WHERE agent = ?1 AND seq = ?2 ORDER BY id LIMIT 1");
        // ?3: records at or below it stay whatever their tier; ?4: the tiers cut (keep < ?4).
        // A keep outside 0..2 is an edit (one byte of it is hashed): such a record is never cut,
        // so that verify goes on naming it.
        del_prefix = prepare("DELETE FROM records WHERE agent = ?1 AND seq <= ?2 AND seq > ?3 AND keep >= 0 "
                             "AND keep < ?4");
        get_tail = prepare("SELECT seq, prev FROM tails WHERE agent = ?1");
        get_below = prepare(fmt::format("SELECT {} FROM records WHERE agent = ?1 AND seq <= ?2 ORDER BY seq, id",
                                        kColumns).c_str());
        last_prune = prepare(fmt::format("SELECT {} FROM records WHERE agent = ?1 AND kind = 'prune' "
                                         "ORDER BY seq DESC LIMIT 1", kColumns).c_str());
        load_heads();
        if (version < 2)
            upgrade_to_2();
        if (version < 3)
            exec("UPDATE meta SET value = 3 WHERE key = 'schema_version'", "cannot upgrade");
    }

    /// Schema 3: the keep column (0 for every record already stored: nothing was kept before).
    void add_keep_column()
    {
        if (scalar("SELECT count(*) FROM pragma_table_info('records') WHERE name = 'keep'", "cannot read") == 0)
            exec("ALTER TABLE records ADD COLUMN keep INTEGER NOT NULL DEFAULT 0", "cannot upgrade");
    }

    /// A version 1 store trusted its tails rows as they stood. Version 2 wants each vouched for
    /// by a prune record, so on upgrade each is vouched for as found (cause "upgrade", 0 records):
    /// a cut made before the upgrade is only as trustworthy as the file was until then.
    void upgrade_to_2()
    {
        exec("BEGIN IMMEDIATE", "cannot upgrade");
        try {
            std::map<std::string, Cut> cuts;
            sqlite3_stmt* s = prepare("SELECT agent, seq, prev FROM tails");
            int rc;
            while ((rc = sqlite3_step(s)) == SQLITE_ROW)
                cuts[col_text(s, 0)] = Cut{.through = sqlite3_column_int64(s, 1) - 1,
                                            .prev = col_digest(s, 2).value_or(kZero)};
            sqlite3_finalize(s);
            if (rc != SQLITE_DONE)
                fail("cannot upgrade", rc);
            std::map<std::string_view, Head*> touched;
            timespec ts{};
            ::clock_gettime(CLOCK_REALTIME, &ts);
            const std::int64_t now = ts.tv_sec * 1'000'000'000LL + ts.tv_nsec;
            for (const auto& [agent, c] : cuts) {
                Record r = prune_record(now, agent, c);
                r.json = prune_json(now, agent, c.through, 0, "upgrade", c.prev);
                touched.try_emplace(agent, &insert_one(r));
            }
            put_heads(touched);
            exec("UPDATE meta SET value = 2 WHERE key = 'schema_version'", "cannot upgrade");
            exec("COMMIT", "cannot upgrade");
        } catch (...) {
            sqlite3_exec(db, "ROLLBACK", nullptr, nullptr, nullptr);
            load_heads();
            throw;
        }
    }

    void load_heads()
    {
        std::map<std::string, Head, std::less<>> h;
        sqlite3_stmt* s = prepare("SELECT agent, seq, hash FROM heads");
        int rc;
        while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
            Head x;
            x.seq = sqlite3_column_int64(s, 1);
            if (auto d = col_digest(s, 2))
                x.hash = *d;
            h.emplace(col_text(s, 0), x);
        }
        sqlite3_finalize(s);
        if (rc != SQLITE_DONE)
            fail("cannot read the chain heads of", rc);
        heads = std::move(h);
        vouched.clear();
        load_kept();
    }

    /// The kept counts, from what is stored (after opening, a failed write and retention).
    void load_kept()
    {
        std::map<std::string, std::uint32_t, std::less<>> k, by_agent;
        sqlite3_stmt* s = prepare("SELECT agent, kind, hook, verdict, count(*) FROM records "
                                  "WHERE keep <> 0 GROUP BY agent, kind, hook, verdict");
        int rc;
        while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
            Record r;
            r.agent = col_text(s, 0), r.kind = col_text(s, 1), r.hook = col_text(s, 2), r.verdict = col_text(s, 3);
            k[keep_class(r)] = static_cast<std::uint32_t>(sqlite3_column_int64(s, 4));
            by_agent[keep_sum_key(r)] += static_cast<std::uint32_t>(sqlite3_column_int64(s, 4));
        }
        sqlite3_finalize(s);
        if (rc != SQLITE_DONE)
            fail("cannot read the kept records of", rc);
        kept = std::move(k);
        kept_by_agent = std::move(by_agent);
    }

    /// Whether size retention is to keep r (its agent's first records of its kind), and in
    /// which tier (Row::keep: 2 for an operator action, 1 otherwise, 0 not kept); counts it.
    int keep_next(const Record& r)
    {
        const auto cap = opt.keep ? keep_first(r) : 0;
        if (cap == 0)
            return 0;
        auto sum = kept_by_agent.find(keep_sum_key(r));
        if (sum != kept_by_agent.end() && sum->second >= kKeepPerAgent)
            return 0;
        auto it = kept.try_emplace(keep_class(r), 0).first;
        if (it->second >= cap)
            return 0;
        // A failed transaction reloads the counts (recover -> load_heads).
        ++it->second;
        if (sum == kept_by_agent.end())
            sum = kept_by_agent.emplace(keep_sum_key(r), 0).first;
        ++sum->second;
        return r.kind == "action" ? 2 : 1;
    }

    /// Renames the damaged file (and its WAL/SHM, under names SQLite pairs with it) out of the way.
    void move_aside()
    {
        close();
        auto base = path.string() + ".corrupt-" + std::to_string(std::time(nullptr));
        std::string to = base;
        for (int i = 1; std::filesystem::exists(to); ++i)
            to = base + "." + std::to_string(i); // two in one second: keep both
        if (::rename(path.c_str(), to.c_str()) != 0 && errno != ENOENT)
            throw Error(fmt::format("cannot move the corrupt event store {} aside: {}", path.string(),
                                    errno_text(errno)));
        for (const char* sfx : {"-wal", "-shm", "-journal"})
            ::rename((path.string() + sfx).c_str(), (to + sfx).c_str()); // absent is fine
        moved = to;
    }

    /// open(), moving a damaged file aside once; a second failure is the caller's Error.
    void open_or_recover()
    {
        try {
            open();
        } catch (const Corrupt&) {
            move_aside();
            open();
        }
    }

    void rollback()
    {
        // SQLite may already have rolled back by itself (SQLITE_FULL, IOERR): ROLLBACK would fail.
        if (db && !sqlite3_get_autocommit(db))
            sqlite3_exec(db, "ROLLBACK", nullptr, nullptr, nullptr);
    }

    /// After a failed transaction: realign the in-memory heads with the file, or start over on a
    /// fresh file when the failure was corruption.
    void recover(const std::map<std::string, Head, std::less<>>& before, bool corrupt)
    {
        rollback();
        try {
            if (corrupt) {
                move_aside();
                open();
            } else {
                load_heads();
            }
        } catch (const Error& e) {
            heads = before; // what was committed before this call, the best we know
            error += "; then: " + std::string(e.what());
        }
    }

    /// Chains `r` to its agent's head and inserts it (inside the caller's transaction); the
    /// in-memory head moves on, the heads row is the caller's to write (put_heads).
    Head& insert_one(const Record& r)
    {
        auto it = heads.find(r.agent);
        if (it == heads.end())
            it = heads.emplace(r.agent, Head{}).first; // zero prev: the chain's first record
        Head& h = it->second;
        const std::int64_t seq = h.seq + 1;
        const int keep = keep_next(r);
        const Digest d = chain_hash(h.hash.data(), r, seq, keep, buf);
        // Strings are bound SQLITE_STATIC: they outlive the step, and copying them costs.
        sqlite3_stmt* s = insert;
        sqlite3_bind_int64(s, 1, r.time_ns);
        sqlite3_bind_text(s, 2, r.agent.data(), static_cast<int>(r.agent.size()), SQLITE_STATIC);
        sqlite3_bind_int64(s, 3, seq);
        sqlite3_bind_text(s, 4, r.kind.data(), static_cast<int>(r.kind.size()), SQLITE_STATIC);
        sqlite3_bind_text(s, 5, r.hook.data(), static_cast<int>(r.hook.size()), SQLITE_STATIC);
        sqlite3_bind_text(s, 6, r.verdict.data(), static_cast<int>(r.verdict.size()), SQLITE_STATIC);
        sqlite3_bind_int64(s, 7, r.pid);
        sqlite3_bind_int64(s, 8, r.ppid);
        sqlite3_bind_int64(s, 9, r.uid);
        sqlite3_bind_text(s, 10, r.path.data(), static_cast<int>(r.path.size()), SQLITE_STATIC);
        sqlite3_bind_text(s, 11, r.dest.data(), static_cast<int>(r.dest.size()), SQLITE_STATIC);
        sqlite3_bind_int64(s, 12, r.port);
        sqlite3_bind_text(s, 13, r.json.data(), static_cast<int>(r.json.size()), SQLITE_STATIC);
        sqlite3_bind_blob(s, 14, h.hash.data(), SHA256_DIGEST_LENGTH, SQLITE_STATIC);
        sqlite3_bind_blob(s, 15, d.data(), SHA256_DIGEST_LENGTH, SQLITE_STATIC);
        sqlite3_bind_int(s, 16, keep);
        const int rc = sqlite3_step(s);
        sqlite3_reset(s);
        if (rc != SQLITE_DONE)
            fail("cannot append to", rc);
        h.seq = seq;
        h.hash = d;
        return h;
    }

    /// One heads row per agent touched, in the same transaction: the head always matches the
    /// stored chain.
    void put_heads(const std::map<std::string_view, Head*>& touched)
    {
        for (auto [agent, h] : touched) {
            sqlite3_bind_text(put_head, 1, agent.data(), static_cast<int>(agent.size()), SQLITE_STATIC);
            sqlite3_bind_int64(put_head, 2, h->seq);
            sqlite3_bind_blob(put_head, 3, h->hash.data(), SHA256_DIGEST_LENGTH, SQLITE_STATIC);
            const int rc = sqlite3_step(put_head);
            sqlite3_reset(put_head);
            if (rc != SQLITE_DONE)
                fail("cannot update the chain heads of", rc);
        }
    }

    void append(std::span<const Record> batch)
    {
        exec("BEGIN IMMEDIATE", "cannot write to");
        std::map<std::string_view, Head*> touched;
        for (const Record& r : batch) {
            Head& h = insert_one(r);
            touched.try_emplace(r.agent, &h);
        }
        put_heads(touched);
        exec("COMMIT", "cannot commit to");
    }

    /// What one prune pass removed from one agent's chain.
    struct Cut {
        std::int64_t through = 0; ///< last seq deleted
        Digest prev{};            ///< hash of that record as stored: the new chain start's prev
        std::int64_t n = 0;       ///< records deleted
        bool age = false, size = false;
    };

    /// Where `agent`'s chain starts now: this pass's cut if any, else its tails row, else seq 1.
    Cut start_of(const std::map<std::string, Cut>& cuts, const std::string& agent)
    {
        if (auto c = cuts.find(agent); c != cuts.end())
            return c->second;
        Cut t;
        sqlite3_bind_text(get_tail, 1, agent.data(), static_cast<int>(agent.size()), SQLITE_STATIC);
        const int rc = sqlite3_step(get_tail);
        if (rc == SQLITE_ROW) {
            t.through = sqlite3_column_int64(get_tail, 0) - 1;
            t.prev = col_digest(get_tail, 1).value_or(kZero);
        }
        sqlite3_reset(get_tail);
        if (rc != SQLITE_ROW && rc != SQLITE_DONE)
            fail("cannot prune", rc);
        return t;
    }

    /// Size retention's tiers, cut in this order: Row::keep below the tier goes.
    enum Tier { kUnkept = 1, kAgentKept = 2, kAll = 3 };

    /// The records at or below `through` of `agent`, as kept_records/kept_hash name them; with
    /// `whole`, false instead when one of them is not whole (its own hash).
    std::optional<KeptSet> below(const std::string& agent, std::int64_t through, bool whole)
    {
        std::string seq_and_hashes;
        bool ok = true;
        sqlite3_bind_text(get_below, 1, agent.data(), static_cast<int>(agent.size()), SQLITE_STATIC);
        sqlite3_bind_int64(get_below, 2, through);
        int rc;
        while ((rc = sqlite3_step(get_below)) == SQLITE_ROW) {
            std::optional<Digest> prev, hash;
            const Row r = read_row(get_below, &prev, &hash);
            if (whole && (r.keep < 0 || r.keep > 2 || !prev || !hash ||
                          chain_hash(prev->data(), r, r.seq, r.keep, buf) != *hash))
                ok = false;
            put_le(seq_and_hashes, static_cast<std::uint64_t>(r.seq), 8);
            const Digest d = hash.value_or(kZero);
            seq_and_hashes.append(reinterpret_cast<const char*>(d.data()), d.size());
        }
        sqlite3_reset(get_below);
        if (rc != SQLITE_DONE)
            fail("cannot prune", rc);
        return ok ? std::optional(kept_set(seq_and_hashes)) : std::nullopt;
    }

    /// Whether what lies before `agent`'s chain start is what its last prune record vouches for:
    /// that record whole (its own hash), the start where it says, and what lies before it the
    /// set it names, each record whole. Fails closed for the evidence: when not, the agent is
    /// left uncut (refused), since a cut would vouch for the changed file; its records stay
    /// over the limit until `cordon events verify` has been heeded.
    bool vouched_for(const std::string& agent, const Cut& start)
    {
        if (refused.contains(agent))
            return false;
        auto v = vouched.find(agent);
        if (v == vouched.end()) {
            std::optional<Vouch> last = Vouch{}; // never cut: starts at 1, nothing before
            sqlite3_bind_text(last_prune, 1, agent.data(), static_cast<int>(agent.size()), SQLITE_STATIC);
            const int rc = sqlite3_step(last_prune);
            if (rc == SQLITE_ROW) {
                std::optional<Digest> prev, hash;
                const Row r = read_row(last_prune, &prev, &hash);
                const bool whole = prev && hash && chain_hash(prev->data(), r, r.seq, r.keep, buf) == *hash;
                last = whole ? parse_prune(r.json) : std::nullopt;
            }
            sqlite3_reset(last_prune);
            if (rc != SQLITE_ROW && rc != SQLITE_DONE)
                fail("cannot prune", rc);
            if (!last) {
                refused.insert(agent);
                return false;
            }
            v = vouched.emplace(agent, *last).first;
        }
        // A tails row moved or deleted shows here (through 0 with a prune record, or another).
        bool ok = v->second.through == start.through && v->second.tail_prev == start.prev;
        if (ok && start.through > 0) {
            const auto now = below(agent, start.through, true);
            ok = now && now->n == v->second.kept.n && now->digest == v->second.kept.digest;
        }
        if (!ok)
            refused.insert(agent);
        return ok;
    }

    /// Deletes `agent`'s records with seq <= through whose keep is below `tier` (a prefix, so
    /// the rest still chains; kept ones stay before the new chain start). Those already before
    /// the start go only when kept ones are cut too (tier above kUnkept). The tail's prev is
    /// the hash of the last record cut as stored, not copied from the oldest kept one: a record
    /// an attacker removed just above the cut still shows as deleted. A cut below the chain's
    /// start (kept records only) leaves the start where it is. False: the agent is refused
    /// (vouched_for), nothing cut.
    bool cut_prefix(std::map<std::string, Cut>& cuts, const std::string& agent, std::int64_t through,
                    bool by_age, Tier tier)
    {
        const Cut start = start_of(cuts, agent);
        if (!cuts.contains(agent) && !vouched_for(agent, start))
            return false;
        Digest prev = start.prev;
        if (through > start.through) {
            sqlite3_bind_text(get_hash, 1, agent.data(), static_cast<int>(agent.size()), SQLITE_STATIC);
            sqlite3_bind_int64(get_hash, 2, through);
            const int rc = sqlite3_step(get_hash);
            // A cut record already gone (tampered) leaves a zero prev: verify will say so.
            prev = (rc == SQLITE_ROW ? col_digest(get_hash, 0) : std::nullopt).value_or(kZero);
            sqlite3_reset(get_hash);
            if (rc != SQLITE_ROW && rc != SQLITE_DONE)
                fail("cannot prune", rc);
        }
        sqlite3_bind_text(del_prefix, 1, agent.data(), static_cast<int>(agent.size()), SQLITE_STATIC);
        sqlite3_bind_int64(del_prefix, 2, through);
        sqlite3_bind_int64(del_prefix, 3, tier == kUnkept ? start.through : 0);
        sqlite3_bind_int(del_prefix, 4, tier);
        const int rc = sqlite3_step(del_prefix);
        sqlite3_reset(del_prefix);
        if (rc != SQLITE_DONE)
            fail("cannot prune", rc);
        Cut& c = cuts[agent];
        if (through > start.through) {
            c.through = through;
            c.prev = prev;
        } else {
            c.through = start.through;
            c.prev = start.prev;
        }
        c.n += sqlite3_changes(db);
        (by_age ? c.age : c.size) = true;
        return true;
    }

    /// Writes, per agent cut, the tails row and the prune record that vouches for it (and for
    /// the kept records before it), in the prune's transaction. Appended after every cut of the
    /// pass, so no pass prunes its own prune record, and a chain emptied by retention still
    /// holds one record: its prune record.
    void chain_cuts(const std::map<std::string, Cut>& cuts, std::int64_t now_ns)
    {
        sqlite3_stmt* tail = prepare("INSERT OR REPLACE INTO tails(agent, seq, prev) VALUES(?1, ?2, ?3)");
        std::map<std::string_view, Head*> touched;
        int rc = SQLITE_DONE;
        try {
            for (const auto& [agent, c] : cuts) {
                sqlite3_bind_text(tail, 1, agent.data(), static_cast<int>(agent.size()), SQLITE_STATIC);
                sqlite3_bind_int64(tail, 2, c.through + 1);
                sqlite3_bind_blob(tail, 3, c.prev.data(), SHA256_DIGEST_LENGTH, SQLITE_STATIC);
                rc = sqlite3_step(tail);
                sqlite3_reset(tail);
                if (rc != SQLITE_DONE)
                    break;
                const KeptSet kept_now = below(agent, c.through, false).value_or(KeptSet{});
                touched.try_emplace(agent, &insert_one(prune_record(now_ns, agent, c, kept_now)));
                // A failed commit clears it (recover -> load_heads).
                vouched[agent] = Vouch{.through = c.through, .tail_prev = c.prev, .kept = kept_now};
            }
        } catch (...) {
            sqlite3_finalize(tail);
            throw;
        }
        sqlite3_finalize(tail);
        if (rc != SQLITE_DONE)
            fail("cannot prune", rc);
        put_heads(touched);
    }

    static Record prune_record(std::int64_t now_ns, const std::string& agent, const Cut& c,
                               const KeptSet& kept = {})
    {
        Record r;
        r.time_ns = now_ns;
        r.agent = agent;
        r.kind = kPruneKind;
        r.hook = "prune";
        r.verdict = "ok";
        r.pid = static_cast<std::uint32_t>(::getpid());
        r.json = prune_json(now_ns, agent, c.through, c.n,
                            c.age && c.size ? "age+size" : c.age ? "age" : "size", c.prev, kept);
        return r;
    }

    /// agent -> highest seq among rows selected by `where` (bound to one int64).
    std::map<std::string, std::int64_t> cuts_where(const char* where, std::int64_t arg)
    {
        std::map<std::string, std::int64_t> cuts;
        auto sql = fmt::format("SELECT agent, max(seq) FROM records WHERE {} GROUP BY agent", where);
        sqlite3_stmt* s = prepare(sql.c_str());
        sqlite3_bind_int64(s, 1, arg);
        int rc;
        while ((rc = sqlite3_step(s)) == SQLITE_ROW)
            cuts[col_text(s, 0)] = sqlite3_column_int64(s, 1);
        sqlite3_finalize(s);
        if (rc != SQLITE_DONE)
            fail("cannot prune", rc);
        return cuts;
    }

    /// The size limit as applied: never below kMinPages pages, which the schema and a few
    /// records take whatever the limit (a limit below would have retention run forever).
    std::int64_t limit_bytes() const
    {
        return std::max(static_cast<std::int64_t>(opt.max_bytes), kMinPages * page_bytes);
    }

    std::int64_t live_bytes()
    {
        const auto pages = scalar("PRAGMA page_count", "cannot measure") -
                           scalar("PRAGMA freelist_count", "cannot measure");
        return pages * scalar("PRAGMA page_size", "cannot measure");
    }

    /// How many of each agent's oldest records to delete so that `need` go in all, taking from
    /// the agent holding the most first: the biggest are levelled down together (water filling),
    /// so an agent that floods evicts its own records and a quiet one keeps its history.
    static std::map<std::string, std::int64_t> fair_shares(std::map<std::string, std::int64_t> counts,
                                                          std::int64_t need)
    {
        std::vector<std::pair<std::int64_t, std::string>> by_count;
        for (auto& [a, n] : counts)
            by_count.emplace_back(n, a);
        std::sort(by_count.begin(), by_count.end(), std::greater<>());
        std::map<std::string, std::int64_t> take;
        std::int64_t sum = 0;
        for (std::size_t i = 0; i < by_count.size(); ++i) {
            sum += by_count[i].first;
            const std::int64_t next = i + 1 < by_count.size() ? by_count[i + 1].first : 0;
            const auto k = static_cast<std::int64_t>(i + 1);
            if (sum - k * next < need && i + 1 < by_count.size())
                continue;
            // Level the top k down to `level`: they lose sum - k * level >= need records.
            const std::int64_t level = std::max<std::int64_t>(next, std::max<std::int64_t>(0, sum - need) / k);
            for (std::size_t j = 0; j <= i; ++j)
                if (by_count[j].first > level)
                    take[by_count[j].second] = by_count[j].first - level;
            break;
        }
        return take;
    }

    /// By age: per agent, everything up to its newest too-old record. A clock step backwards
    /// may take a few newer records along; it never leaves a hole in a chain.
    /// Bounded like size cuts (kPruneMaxRecords a pass): an aged-out flood goes over passes.
    void cut_by_age(std::map<std::string, Cut>& cuts, std::int64_t now_ns)
    {
        std::int64_t budget = kPruneMaxRecords;
        sqlite3_stmt* first = prepare("SELECT min(seq) FROM records WHERE agent = ?1");
        for (const auto& [agent, through] : cuts_where("time_ns < ?1", now_ns - opt.max_age_ns)) {
            if (budget <= 0)
                break;
            sqlite3_bind_text(first, 1, agent.data(), static_cast<int>(agent.size()), SQLITE_STATIC);
            const int rc = sqlite3_step(first);
            const std::int64_t from = rc == SQLITE_ROW ? sqlite3_column_int64(first, 0) : through;
            sqlite3_reset(first);
            const std::int64_t upto = std::min(through, from + budget - 1);
            if (!cut_prefix(cuts, agent, upto, true, kAll))
                continue; // refused: left as it is (see vouched_for)
            budget -= upto - from + 1;
        }
        sqlite3_finalize(first);
    }

    /// By size, fairly: while the live pages are over 90% of the budget (the margin keeps us
    /// from pruning on every call), the agents holding the most records lose their oldest. Kept
    /// records (keep_first) are passed over; only when nothing else is left and the store is
    /// still over do they go too, the same way.
    void cut_by_size(std::map<std::string, Cut>& cuts)
    {
        const auto target = limit_bytes() / 10 * 9;
        if (live_bytes() <= limit_bytes())
            return;
        for (const Tier tier : {kUnkept, kAgentKept, kAll}) {
            sqlite3_stmt* count = prepare("SELECT agent, count(*) FROM records WHERE keep >= 0 AND keep < ?1 "
                                          "GROUP BY agent");
            sqlite3_stmt* nth = prepare("SELECT seq FROM records WHERE agent = ?1 AND keep >= 0 AND keep < ?3 "
                                        "ORDER BY seq LIMIT 1 OFFSET ?2");
            sqlite3_bind_int(count, 1, tier);
            sqlite3_bind_int(nth, 3, tier);
            Round r = Round::More;
            try {
                for (int round = 0; round < 16 && r == Round::More; ++round)
                    r = size_round(cuts, count, nth, target, tier);
            } catch (...) {
                sqlite3_finalize(count);
                sqlite3_finalize(nth);
                throw;
            }
            sqlite3_finalize(count);
            sqlite3_finalize(nth);
            // Kept records are never cut to make room while a refused agent's records hold it:
            // that would let a change to one agent's records erase another's.
            if (r != Round::Exhausted || !refused.empty())
                return;
        }
    }

    enum class Round { More, Done, Exhausted };

    /// One round of cut_by_size: estimates how many records to delete to get under `target`
    /// and cuts them, fairly. More: another round may be needed; Done: under the target or out
    /// of this pass's budget; Exhausted: nothing of this sort is left to cut.
    Round size_round(std::map<std::string, Cut>& cuts, sqlite3_stmt* count, sqlite3_stmt* nth,
                     std::int64_t target, Tier tier)
    {
        const auto live = live_bytes();
        if (live <= target)
            return Round::Done;
        std::map<std::string, std::int64_t> counts;
        std::int64_t total = 0;
        int rc;
        while ((rc = sqlite3_step(count)) == SQLITE_ROW) {
            auto agent = col_text(count, 0);
            if (refused.contains(agent))
                continue;
            total += sqlite3_column_int64(count, 1);
            counts[std::move(agent)] = sqlite3_column_int64(count, 1);
        }
        sqlite3_reset(count);
        if (rc != SQLITE_DONE)
            fail("cannot prune", rc);
        // Only this pass's prune records would be left: they are not cut (each chain keeps one).
        std::int64_t done = 0;
        for (const auto& [a, c] : cuts)
            done += c.n;
        if (total == 0)
            return Round::Exhausted; // nothing left to delete: the rest is schema and heads
        // Bounded work per pass (kPruneMaxRecords): the store thread writes nothing
        // while it prunes, and cordond must stop promptly; the next pass goes on.
        if (done >= kPruneMaxRecords)
            return Round::Done;
        // Records to delete, estimated from the mean size of one (index entries included).
        const double per = static_cast<double>(live) / static_cast<double>(total);
        const auto need = std::min<std::int64_t>(
            {total, kPruneMaxRecords - done,
             static_cast<std::int64_t>(static_cast<double>(live - target) / per) + 1});
        for (const auto& [agent, k] : fair_shares(std::move(counts), need)) {
            sqlite3_bind_text(nth, 1, agent.data(), static_cast<int>(agent.size()), SQLITE_STATIC);
            sqlite3_bind_int64(nth, 2, k - 1);
            rc = sqlite3_step(nth);
            const std::int64_t through = sqlite3_column_int64(nth, 0);
            sqlite3_reset(nth);
            if (rc != SQLITE_ROW)
                fail("cannot prune", rc == SQLITE_DONE ? SQLITE_INTERNAL : rc);
            cut_prefix(cuts, agent, through, false, tier); // refused: the next round counts without it
        }
        return Round::More;
    }

    std::int64_t prune(std::int64_t now_ns)
    {
        std::map<std::string, Cut> cuts;
        refused.clear();
        exec("BEGIN IMMEDIATE", "cannot prune");
        if (opt.max_age_ns > 0)
            cut_by_age(cuts, now_ns);
        if (opt.max_bytes > 0)
            cut_by_size(cuts);
        chain_cuts(cuts, now_ns);
        exec("COMMIT", "cannot prune");
        if (!cuts.empty())
            load_kept(); // retention by age (or a store of nothing but kept records) took some
        std::int64_t deleted = 0;
        for (const auto& [agent, c] : cuts)
            deleted += c.n;
        // Give the freed pages back to the file system and shrink the WAL those deletes grew.
        // At most kVacuumBytes a pass: moving pages is the costly part, and new records reuse
        // free pages anyway.
        if (deleted > 0)
            exec(fmt::format("PRAGMA incremental_vacuum({}); PRAGMA wal_checkpoint(TRUNCATE)",
                             std::max<std::int64_t>(1, kVacuumBytes / page_bytes)).c_str(),
                 "cannot vacuum");
        if (!refused.empty()) {
            std::string names;
            for (const auto& a : refused)
                names += (names.empty() ? "" : ", ") + a;
            error = fmt::format("retention left the records of {} uncut in event store {}: what lies "
                                "before their chain start is not what their last prune record vouches "
                                "for (the file was changed; `cordon events verify` names the record)",
                                names, path.string());
        }
        return deleted;
    }
};

Writer::Writer(std::filesystem::path path, Options o) : impl_(std::make_unique<Impl>())
{
    impl_->path = std::move(path);
    impl_->opt = o;
    const auto dir = impl_->path.parent_path();
    std::error_code ec;
    if (!dir.empty() && !std::filesystem::exists(dir, ec)) {
        // Events name files and hosts an agent touched: not for other users to read. The mode
        // is given by mkdir itself (never a chmod, which would follow a link or change a
        // directory someone else made in the meantime); parents are made as usual.
        std::filesystem::create_directories(dir.parent_path(), ec);
        const int rc = ::mkdir(dir.c_str(), 0700); // a umask can only take bits away
        const int err = errno;
        if (rc != 0 && err != EEXIST)
            throw Error(fmt::format("cannot create the event store directory {}: {}", dir.string(),
                                    errno_text(err)));
    }
    try {
        impl_->open_or_recover();
    } catch (...) {
        impl_->close();
        throw;
    }
}

Writer::~Writer()
{
    if (impl_)
        impl_->close();
}

bool Writer::append(std::span<const Record> batch)
{
    auto& m = *impl_;
    m.error.clear();
    if (batch.empty())
        return true;
    const auto before = m.heads;
    try {
        if (!m.db)
            m.open_or_recover(); // a previous recovery failed; try again
        m.append(batch);
        return true;
    } catch (const Corrupt& e) {
        m.error = e.what();
        m.recover(before, true);
    } catch (const std::exception& e) {
        m.error = e.what();
        m.recover(before, false);
    }
    return false;
}

std::int64_t Writer::prune(std::int64_t now_ns)
{
    auto& m = *impl_;
    m.error.clear();
    const auto before = m.heads;
    try {
        if (!m.db)
            m.open_or_recover();
        return m.prune(now_ns);
    } catch (const Corrupt& e) {
        m.error = e.what();
        m.recover(before, true);
    } catch (const std::exception& e) {
        m.error = e.what();
        m.recover(before, false); // the prune records moved heads: realign them
    }
    return 0;
}

bool Writer::over_limit()
{
    auto& m = *impl_;
    if (!m.db || m.opt.max_bytes == 0)
        return false;
    try {
        return m.live_bytes() > m.limit_bytes();
    } catch (const std::exception&) {
        return true; // fails towards pruning: prune() reports what is wrong
    }
}

const std::string& Writer::last_error() const { return impl_->error; }

std::optional<std::filesystem::path> Writer::corrupt_moved() const { return impl_->moved; }

std::map<std::string, std::pair<std::int64_t, std::string>> Writer::heads() const
{
    std::map<std::string, std::pair<std::int64_t, std::string>> out;
    for (const auto& [agent, h] : impl_->heads)
        out.emplace(agent, std::pair{h.seq, hex(h.hash.data(), h.hash.size())});
    return out;
}

bool Writer::exec_for_test(const std::string& sql)
{
    if (int rc = sqlite3_exec(impl_->db, sql.c_str(), nullptr, nullptr, nullptr); rc != SQLITE_OK) {
        impl_->error = sqlite_text(impl_->db, rc);
        return false;
    }
    return true;
}

// ---------------------------------------------------------------------------------------------
// Reading

std::vector<Row> query(const std::filesystem::path& path, const Filter& f)
{
    std::vector<Row> rows;
    for_each(path, f, [&](Row&& r) { rows.push_back(std::move(r)); });
    return rows;
}

std::size_t for_each(const std::filesystem::path& path, const Filter& f,
                     const std::function<void(Row&&)>& visit)
{
    // Bad input first: a typo should not wait on opening a large store.
    std::optional<policy::Cidr> cidr;
    if (f.dest_cidr) {
        std::string why;
        cidr = policy::parse_cidr(*f.dest_cidr, why, policy::HostBits::Clear);
        if (!cidr)
            throw Error(fmt::format("'{}' is not an address or CIDR range ({}); expected e.g. "
                                    "10.0.0.0/8, 2001:db8::/32 or 10.0.0.1",
                                    *f.dest_cidr, why));
    }
    ReadDb db(path);

    // Every value is bound, never spliced into the SQL.
    std::string sql = fmt::format("SELECT {} FROM records WHERE 1", kColumns);
    std::vector<std::variant<std::string, std::int64_t>> params;
    auto param = [&](auto v) {
        params.emplace_back(std::move(v));
        return fmt::format("?{}", params.size());
    };
    auto any_of = [&](const char* col, const std::vector<std::string>& vs) {
        if (vs.empty())
            return;
        sql += fmt::format(" AND {} IN (", col);
        for (std::size_t i = 0; i < vs.size(); ++i)
            sql += (i ? "," : "") + param(vs[i]);
        sql += ")";
    };
    if (f.agent)
        sql += " AND agent = " + param(*f.agent);
    if (f.since_ns)
        sql += " AND time_ns >= " + param(*f.since_ns);
    if (f.until_ns)
        sql += " AND time_ns <= " + param(*f.until_ns);
    any_of("verdict", f.verdicts);
    // Lets SQLite use the partial verdict index, which only holds the other verdicts.
    if (!f.verdicts.empty() && std::find(f.verdicts.begin(), f.verdicts.end(), "allow") == f.verdicts.end())
        sql += " AND verdict <> 'allow'";
    any_of("hook", f.hooks);
    any_of("kind", f.kinds);
    if (f.path_glob)
        sql += " AND path GLOB " + param(*f.path_glob);
    sql += " ORDER BY time_ns, id";
    // With a CIDR the filtering is ours, so the limit must be too.
    if (f.limit && !cidr)
        sql += " LIMIT " + std::to_string(f.limit);

    Stmt s;
    db.prepare(s, sql);
    for (std::size_t i = 0; i < params.size(); ++i) {
        const int idx = static_cast<int>(i + 1);
        if (auto* t = std::get_if<std::string>(&params[i]))
            sqlite3_bind_text(s.s, idx, t->data(), static_cast<int>(t->size()), SQLITE_STATIC);
        else
            sqlite3_bind_int64(s.s, idx, std::get<std::int64_t>(params[i]));
    }
    std::size_t n = 0;
    int rc;
    while ((rc = sqlite3_step(s.s)) == SQLITE_ROW) {
        Row r = read_row(s.s);
        if (cidr && !dest_in(*cidr, r.dest))
            continue;
        visit(std::move(r));
        if (++n == f.limit) // (limit 0: no limit)
            break;
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        db.fail("cannot read", rc);
    return n;
}

namespace {

/// One end of a chain as the heads or tails table records it.
struct Mark {
    std::int64_t seq;
    Digest d;
};

/// agent -> Mark from a query selecting (agent, seq, digest): the heads or the tails table.
std::map<std::string, Mark> load_marks(ReadDb& db, const char* sql)
{
    std::map<std::string, Mark> m;
    Stmt s;
    db.prepare(s, sql);
    int rc;
    while ((rc = sqlite3_step(s.s)) == SQLITE_ROW)
        m[col_text(s.s, 0)] = Mark{sqlite3_column_int64(s.s, 1), col_digest(s.s, 2).value_or(kZero)};
    if (rc != SQLITE_DONE)
        db.fail("cannot read", rc);
    return m;
}

/// verify's walk over the records, fed in (agent, seq, id) order: the state of the agent being
/// read, and in res the counts so far or the first bad record.
class ChainWalk {
public:
    ChainWalk(std::map<std::string, Mark> heads, std::map<std::string, Mark> tails,
              const std::optional<std::string>& agent)
        : heads_(std::move(heads)), tails_(std::move(tails)), agent_(agent)
    {
    }

    VerifyResult res;

    /// Checks the next record and moves the walk on; on a bad one, res says which and why.
    void row(const Row& r, const std::optional<Digest>& prev, const std::optional<Digest>& hash)
    {
        if ((!have_ || r.agent != cur_) && !start_agent(r))
            return;
        // Before the chain start (nothing of the chain proper walked yet): what retention kept.
        if (r.seq < start_seq_ && want_seq_ == start_seq_) {
            kept_row(r, prev, hash);
            return;
        }
        if (!links(r, prev, hash))
            return;
        if (r.kind == kPruneKind) {
            vouch_ = parse_prune(r.json);
            if (!vouch_) {
                bad(cur_, r.id, r.seq, "record edited (a prune record without its cut)");
                return;
            }
        }
        want_seq_ = r.seq + 1;
        want_prev_ = *hash;
        ++res.records;
        ++res.per_agent[cur_];
    }

    // The end of one agent's chain: the last row must be the head, and a chain that does not
    // start at 1 must say so in its latest prune record (tails alone is just a row anyone may
    // write). Checked at the end because that record comes after the records it cut.
    void finish()
    {
        if (!have_)
            return;
        const auto t = tails_.find(cur_);
        if (head_ && want_seq_ - 1 < head_->seq)
            bad(cur_, 0, want_seq_, fmt::format("records missing at the end (head says seq {})", head_->seq));
        else if (head_ && want_prev_ != head_->d)
            bad(cur_, 0, head_->seq, "record edited (last record's hash differs from the head)");
        else if (t != tails_.end() && !vouch_)
            bad(cur_, 0, t->second.seq,
                fmt::format("chain start moved without a prune record (records before seq {} deleted)",
                            t->second.seq));
        else if (t != tails_.end() && (vouch_->through + 1 != t->second.seq || vouch_->tail_prev != t->second.d))
            bad(cur_, 0, t->second.seq,
                fmt::format("chain start moved without a prune record (the last prune cut through seq "
                            "{}, the chain starts at seq {}: records deleted)",
                            vouch_->through, t->second.seq));
        else if (const auto k = kept_set(kept_); t == tails_.end() && k.n > 0)
            bad(cur_, 0, first_kept_, fmt::format("record inserted (seq {} before the chain's first)", first_kept_));
        else if (t != tails_.end() && (k.n != vouch_->kept.n || k.digest != vouch_->kept.digest))
            bad(cur_, 0, first_kept_ ? first_kept_ : t->second.seq,
                fmt::format("kept records before the chain start differ from what the last prune "
                            "record vouches for ({} found, {} vouched for): deleted, inserted or replaced",
                            k.n, vouch_->kept.n));
        heads_.erase(cur_);
    }

    // Heads not walked yet whose agent sorts before `upto` have no records at all: never
    // retention, which leaves at least its prune record. Checked as the walk passes them, so
    // agents stay in name order.
    void orphans_before(const std::string* upto)
    {
        for (auto it = heads_.begin(); res.ok && it != heads_.end() && (!upto || it->first < *upto);
             it = heads_.erase(it)) {
            const auto& [a, h] = *it;
            if (agent_ && a != *agent_)
                continue;
            const auto t = tails_.find(a);
            bad(a, 0, t == tails_.end() ? 1 : t->second.seq,
                fmt::format("records missing at the end (head says seq {})", h.seq));
        }
    }

private:
    void bad(const std::string& a, std::int64_t id, std::int64_t seq, std::string why)
    {
        res.ok = false;
        res.agent = a, res.id = id, res.seq = seq, res.reason = std::move(why);
    }

    /// The first record of the next agent: ends the previous chain and sets where this one
    /// must start. False when something is bad.
    bool start_agent(const Row& r)
    {
        finish();
        orphans_before(&r.agent);
        if (!res.ok)
            return false;
        cur_ = r.agent, have_ = true;
        vouch_.reset();
        kept_.clear();
        first_kept_ = 0;
        const auto t = tails_.find(cur_);
        want_seq_ = start_seq_ = t == tails_.end() ? 1 : t->second.seq;
        want_prev_ = t == tails_.end() ? kZero : t->second.d;
        const auto h = heads_.find(cur_);
        head_ = h == heads_.end() ? std::nullopt : std::optional<Mark>(h->second);
        if (!head_) {
            bad(cur_, r.id, r.seq, "record inserted (agent has no chain head: out of chain)");
            return false;
        }
        return true;
    }

    /// A record before the chain start: it must be whole (its own hash) and in seq order; the
    /// set of them is checked against the last prune record at finish().
    void kept_row(const Row& r, const std::optional<Digest>& prev, const std::optional<Digest>& hash)
    {
        if (first_kept_ && r.seq <= last_kept_) {
            bad(cur_, r.id, r.seq, fmt::format("record inserted (seq {} duplicated / out of chain)", r.seq));
            return;
        }
        if (r.keep < 0 || r.keep > 2 || !prev || !hash || chain_hash(prev->data(), r, r.seq, r.keep, buf_) != *hash) {
            bad(cur_, r.id, r.seq, "record edited (hash mismatch)");
            return;
        }
        if (!first_kept_)
            first_kept_ = r.seq;
        last_kept_ = r.seq;
        put_le(kept_, static_cast<std::uint64_t>(r.seq), 8);
        kept_.append(reinterpret_cast<const char*>(hash->data()), hash->size());
        ++res.records;
        ++res.per_agent[cur_];
    }

    /// The record is the next one of its chain: the expected seq, its own hash, linked to the
    /// previous record's. False (and res set) when not.
    bool links(const Row& r, const std::optional<Digest>& prev, const std::optional<Digest>& hash)
    {
        if (r.seq < want_seq_) {
            bad(cur_, r.id, r.seq, fmt::format("record inserted (seq {} duplicated / out of chain)", r.seq));
            return false;
        }
        if (r.seq > head_->seq) {
            bad(cur_, r.id, r.seq,
                fmt::format("record inserted (seq {} beyond the head's seq {})", r.seq, head_->seq));
            return false;
        }
        if (r.seq > want_seq_) {
            bad(cur_, r.id, want_seq_, fmt::format("record missing before seq {} (deleted)", r.seq));
            return false;
        }
        if (r.keep < 0 || r.keep > 2 || !prev || !hash || chain_hash(prev->data(), r, r.seq, r.keep, buf_) != *hash) {
            bad(cur_, r.id, r.seq, "record edited (hash mismatch)");
            return false;
        }
        if (*prev != want_prev_) {
            // This row is self-consistent but does not link: the previous one was rewritten with
            // a recomputed hash, or this one was forged in its place. Both are edits at this seq
            // or the one before; name the lower so the report is the first bad record.
            const bool first = want_seq_ == (tails_.count(cur_) ? tails_.at(cur_).seq : 1);
            bad(cur_, r.id, first ? r.seq : r.seq - 1,
                first ? "record edited (prev does not match the chain start)"
                      : fmt::format("record edited (seq {} hash does not match the prev of seq {})",
                                    r.seq - 1, r.seq));
            return false;
        }
        return true;
    }

    std::map<std::string, Mark> heads_;
    const std::map<std::string, Mark> tails_;
    const std::optional<std::string>& agent_;
    std::string cur_; ///< the agent being read
    bool have_ = false;
    std::int64_t want_seq_ = 1;
    std::int64_t start_seq_ = 1; ///< where the agent's chain proper starts (its tails row)
    Digest want_prev_{};
    std::string kept_;           ///< seq and hash of each record kept before the start
    std::int64_t first_kept_ = 0, last_kept_ = 0;
    std::optional<Mark> head_;
    std::optional<Vouch> vouch_; ///< the agent's latest prune record walked so far
    std::string buf_;
};

} // namespace

VerifyResult verify(const std::filesystem::path& path, std::optional<std::string> agent)
{
    ReadDb db(path);
    // One read transaction for the whole walk, so a concurrent append cannot make heads and
    // records disagree mid-way.
    if (int rc = sqlite3_exec(db.db, "BEGIN", nullptr, nullptr, nullptr); rc != SQLITE_OK)
        db.fail("cannot read", rc);
    auto heads = load_marks(db, "SELECT agent, seq, hash FROM heads");
    auto tails = load_marks(db, "SELECT agent, seq, prev FROM tails");
    ChainWalk walk(std::move(heads), std::move(tails), agent);

    Stmt s;
    db.prepare(s, fmt::format("SELECT {} FROM records {} ORDER BY agent, seq, id", kColumns,
                              agent ? "WHERE agent = ?1" : ""));
    if (agent)
        sqlite3_bind_text(s.s, 1, agent->data(), static_cast<int>(agent->size()), SQLITE_STATIC);
    int rc = SQLITE_DONE;
    while (walk.res.ok && (rc = sqlite3_step(s.s)) == SQLITE_ROW) {
        std::optional<Digest> prev, hash;
        const Row r = read_row(s.s, &prev, &hash);
        walk.row(r, prev, hash);
    }
    if (walk.res.ok && rc != SQLITE_DONE)
        db.fail("cannot read", rc);
    if (walk.res.ok)
        walk.finish();
    walk.orphans_before(nullptr);
    sqlite3_exec(db.db, "COMMIT", nullptr, nullptr, nullptr);
    return walk.res;
}

} // namespace cordon::events::store
