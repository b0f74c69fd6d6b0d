// SPDX-License-Identifier: Apache-2.0
// The forensic event store on real SQLite files: searching, the tamper-evident chain, retention,
// and what happens when the file or the disk fails.
#include <malloc.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <fcntl.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <sqlite3.h>

#include "common/error.h"
#include "events/store.h"

namespace cordon::events::store {
namespace {

namespace fs = std::filesystem;
constexpr std::int64_t kSec = 1'000'000'000;

Record rec(std::int64_t t, std::string agent, std::string kind, std::string hook, std::string verdict,
           std::string path = "", std::string dest = "", std::uint16_t port = 0)
{
    Record r;
    r.time_ns = t;
    r.agent = std::move(agent);
    r.kind = std::move(kind);
    r.hook = std::move(hook);
    r.verdict = std::move(verdict);
    r.pid = 4242;
    r.ppid = 1;
    r.uid = 1000;
    r.path = std::move(path);
    r.dest = std::move(dest);
    r.port = port;
    r.json = "{\"t\":" + std::to_string(t) + ",\"agent\":\"" + r.agent + "\",\"pad\":\"" +
             std::string(300, 'x') + "\"}";
    return r;
}

/// `n` decisions per agent, interleaved, one second apart from time `t0`.
std::vector<Record> interleaved(const std::vector<std::string>& agents, int n, std::int64_t t0 = kSec)
{
    std::vector<Record> v;
    for (int i = 0; i < n; ++i)
        for (const auto& a : agents)
            v.push_back(rec(t0 + static_cast<std::int64_t>(v.size()) * kSec, a, "decision", "open",
                            i % 2 ? "allow" : "deny", "/work/f" + std::to_string(i)));
    return v;
}

class StoreTest : public ::testing::Test {
protected:
    void SetUp() override
    {
        std::string t = (fs::temp_directory_path() / "cordon-store-XXXXXX").string();
        ASSERT_NE(mkdtemp(t.data()), nullptr);
        dir = t;
        db = dir / "events.db";
    }
    void TearDown() override { fs::remove_all(dir); }

    /// Runs SQL on a separate raw connection, as an attacker with write access to the file would.
    void raw(const std::string& sql)
    {
        sqlite3* h = nullptr;
        ASSERT_EQ(sqlite3_open(db.c_str(), &h), SQLITE_OK);
        char* err = nullptr;
        const int rc = sqlite3_exec(h, sql.c_str(), nullptr, nullptr, &err);
        EXPECT_EQ(rc, SQLITE_OK) << (err ? err : "") << " in: " << sql;
        sqlite3_free(err);
        sqlite3_close(h);
    }

    /// The first column of the first row of `sql`, read on a raw connection.
    std::int64_t scalar(const std::string& sql)
    {
        sqlite3* h = nullptr;
        EXPECT_EQ(sqlite3_open(db.c_str(), &h), SQLITE_OK);
        sqlite3_stmt* st = nullptr;
        EXPECT_EQ(sqlite3_prepare_v2(h, sql.c_str(), -1, &st, nullptr), SQLITE_OK) << sql;
        const std::int64_t v = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
        sqlite3_finalize(st);
        sqlite3_close(h);
        return v;
    }

    fs::path dir, db;
};

TEST_F(StoreTest, RoundTripKeepsEveryFieldAndChainsPerAgent)
{
    const std::vector<Record> in = {
        rec(1 * kSec, "a1", "decision", "exec", "deny", "/usr/bin/curl"),
        rec(2 * kSec, "a2", "decision", "connect6", "allow", "", "2001:db8::1", 443),
        rec(3 * kSec, "a1", "action", "kill", "ok"),
    };
    {
        Writer w(db, {});
        ASSERT_TRUE(w.append(in)) << w.last_error();
        const auto h = w.heads();
        EXPECT_EQ(h.at("a1").first, 2);
        EXPECT_EQ(h.at("a2").first, 1);
    }
    const auto rows = query(db, {});
    ASSERT_EQ(rows.size(), 3u);
    for (std::size_t i = 0; i < in.size(); ++i) {
        EXPECT_EQ(rows[i].time_ns, in[i].time_ns);
        EXPECT_EQ(rows[i].agent, in[i].agent);
        EXPECT_EQ(rows[i].kind, in[i].kind);
        EXPECT_EQ(rows[i].hook, in[i].hook);
        EXPECT_EQ(rows[i].verdict, in[i].verdict);
        EXPECT_EQ(rows[i].pid, in[i].pid);
        EXPECT_EQ(rows[i].ppid, in[i].ppid);
        EXPECT_EQ(rows[i].uid, in[i].uid);
        EXPECT_EQ(rows[i].path, in[i].path);
        EXPECT_EQ(rows[i].dest, in[i].dest);
        EXPECT_EQ(rows[i].port, in[i].port);
        EXPECT_EQ(rows[i].json, in[i].json);
        EXPECT_EQ(rows[i].hash_hex.size(), 64u);
    }
    EXPECT_EQ(rows[0].seq, 1);
    EXPECT_EQ(rows[0].prev_hex, std::string(64, '0')); // first of its chain
    EXPECT_EQ(rows[1].seq, 1);
    EXPECT_EQ(rows[2].seq, 2);
    EXPECT_EQ(rows[2].prev_hex, rows[0].hash_hex); // chained to a1's previous, not to a2's
    EXPECT_TRUE(verify(db).ok);
}

TEST_F(StoreTest, ReopeningContinuesTheChain)
{
    {
        Writer w(db, {});
        ASSERT_TRUE(w.append(interleaved({"a1"}, 3)));
    }
    Writer w(db, {});
    EXPECT_EQ(w.heads().at("a1").first, 3);
    ASSERT_TRUE(w.append(interleaved({"a1"}, 2, 100 * kSec)));
    EXPECT_EQ(w.heads().at("a1").first, 5);
    const auto v = verify(db);
    EXPECT_TRUE(v.ok) << v.reason;
    EXPECT_EQ(v.records, 5u);
}

TEST_F(StoreTest, CreatesItsDirectoryPrivate)
{
    const auto nested = dir / "var" / "cordon" / "events.db";
    Writer w(nested, {});
    struct stat st {};
    ASSERT_EQ(::stat(nested.parent_path().c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0700u);
}

struct FilterCase {
    const char* name;
    Filter filter;
    std::vector<std::int64_t> want; // time_ns in seconds of the rows expected, in order
};
void PrintTo(const FilterCase& c, std::ostream* os) { *os << c.name; }

class StoreFilterTest : public StoreTest, public ::testing::WithParamInterface<FilterCase> {};

TEST_P(StoreFilterTest, SelectsExactlyTheMatchingRows)
{
    {
        Writer w(db, {});
        // Out of time order on purpose: results come back ordered by time.
        ASSERT_TRUE(w.append(std::vector<Record>{
            rec(3 * kSec, "a2", "decision", "connect6", "deny", "", "2001:db8::5", 443),
            rec(1 * kSec, "a1", "decision", "exec", "deny", "/usr/bin/curl"),
            rec(2 * kSec, "a1", "decision", "connect4", "allow", "", "10.1.2.3", 443),
            rec(4 * kSec, "a2", "process", "exec", "allow", "/bin/ls"),
            rec(5 * kSec, "a1", "trust", "trust", "audit"),
            rec(6 * kSec, "cordond", "action", "kill", "ok", "", "192.168.1.1", 22),
            rec(7 * kSec, "a1", "decision", "open", "allow", "/home/dev/.ssh/id_rsa"),
            rec(8 * kSec, "a2", "decision", "connect6", "allow", "", "2001:db9::1", 80),
        }));
    }
    std::vector<std::int64_t> got;
    for (const auto& r : query(db, GetParam().filter))
        got.push_back(r.time_ns / kSec);
    EXPECT_EQ(got, GetParam().want);
}

INSTANTIATE_TEST_SUITE_P(
    Store, StoreFilterTest,
    ::testing::Values(
        FilterCase{.name = "NoFilterReturnsAllByTime", .filter = {}, .want = {1, 2, 3, 4, 5, 6, 7, 8}},
        FilterCase{.name = "Agent", .filter = {.agent = "a2"}, .want = {3, 4, 8}},
        FilterCase{.name = "SinceIsInclusive", .filter = {.since_ns = 6 * kSec}, .want = {6, 7, 8}},
        FilterCase{.name = "UntilIsInclusive", .filter = {.until_ns = 2 * kSec}, .want = {1, 2}},
        FilterCase{.name = "SinceAndUntil",
                   .filter = {.since_ns = 3 * kSec, .until_ns = 4 * kSec},
                   .want = {3, 4}},
        FilterCase{.name = "OneVerdict", .filter = {.verdicts = {"deny"}}, .want = {1, 3}},
        FilterCase{.name = "VerdictAllowAlone", .filter = {.verdicts = {"allow"}}, .want = {2, 4, 7, 8}},
        FilterCase{.name = "AnyOfVerdicts", .filter = {.verdicts = {"deny", "audit"}}, .want = {1, 3, 5}},
        FilterCase{.name = "Hooks", .filter = {.hooks = {"exec", "connect4"}}, .want = {1, 2, 4}},
        FilterCase{.name = "Kinds", .filter = {.kinds = {"trust", "action"}}, .want = {5, 6}},
        FilterCase{.name = "PathGlob", .filter = {.path_glob = "/usr/*"}, .want = {1}},
        FilterCase{.name = "PathGlobIsCaseSensitive", .filter = {.path_glob = "/USR/*"}, .want = {}},
        FilterCase{.name = "CidrV4", .filter = {.dest_cidr = "10.0.0.0/8"}, .want = {2}},
        FilterCase{.name = "CidrV4Wide", .filter = {.dest_cidr = "0.0.0.0/0"}, .want = {2, 6}},
        FilterCase{.name = "CidrV4OddPrefix", .filter = {.dest_cidr = "192.168.1.0/31"}, .want = {6}},
        FilterCase{.name = "CidrV6", .filter = {.dest_cidr = "2001:db8::/32"}, .want = {3}},
        FilterCase{.name = "CidrV6Wider", .filter = {.dest_cidr = "2001:db8::/30"}, .want = {3, 8}},
        FilterCase{.name = "BareAddress", .filter = {.dest_cidr = "2001:db9::1"}, .want = {8}},
        FilterCase{.name = "HostBitsMeanTheRangeThatHoldsThem", .filter = {.dest_cidr = "10.9.9.9/8"}, .want = {2}},
        FilterCase{.name = "Limit", .filter = {.limit = 3}, .want = {1, 2, 3}},
        FilterCase{.name = "LimitAfterCidr",
                   .filter = {.dest_cidr = "2001:db8::/30", .limit = 1},
                   .want = {3}},
        FilterCase{.name = "Combined",
                   .filter = {.agent = "a1", .since_ns = 2 * kSec, .verdicts = {"allow"}, .kinds = {"decision"}},
                   .want = {2, 7}}),
    [](const auto& i) { return std::string(i.param.name); });

TEST_F(StoreTest, MalformedCidrIsRefusedNamingIt)
{
    {
        Writer w(db, {});
    }
    for (const std::string bad : {"10.0.0.0/33", "banana", "10.0.0.0/", "2001:db8::/129", "10.0.0/8",
                                  "10.0.0.0/8x"}) {
        try {
            query(db, Filter{.dest_cidr = bad});
            ADD_FAILURE() << bad << " accepted";
        } catch (const Error& e) {
            EXPECT_NE(std::string(e.what()).find("'" + bad + "'"), std::string::npos) << e.what();
        }
    }
}

TEST_F(StoreTest, MissingStoreSaysSo)
{
    try {
        query(dir / "nope.db", {});
        FAIL() << "no error";
    } catch (const Error& e) {
        EXPECT_EQ(std::string(e.what()), "no event store at " + (dir / "nope.db").string() +
                                             ": is cordond running with the store enabled?");
    }
    EXPECT_THROW(verify(dir / "nope.db"), Error);
}

TEST_F(StoreTest, NewerSchemaIsRefused)
{
    {
        Writer w(db, {});
    }
    raw("UPDATE meta SET value = 99 WHERE key = 'schema_version'");
    try {
        Writer w(db, {});
        FAIL() << "opened";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("schema version 99"), std::string::npos) << e.what();
    }
    EXPECT_THROW(query(db, {}), Error);
    EXPECT_TRUE(fs::exists(db)); // not ours to move aside
}

struct TamperCase {
    const char* name;
    std::string sql;    // run on a raw connection after 10 records each of a1, a2
    std::string agent;  // the first bad record named
    std::int64_t seq;
    std::string reason; // a word of the reason
};
void PrintTo(const TamperCase& c, std::ostream* os) { *os << c.name; }

class StoreTamperTest : public StoreTest, public ::testing::WithParamInterface<TamperCase> {};

// Columns without id, to copy a row into a forged one.
const std::string kCols = "time_ns, agent, seq, kind, hook, verdict, pid, ppid, uid, path, dest, port, json, prev, hash";

TEST_P(StoreTamperTest, VerifyNamesTheFirstBadRecord)
{
    {
        Writer w(db, {});
        ASSERT_TRUE(w.append(interleaved({"a1", "a2"}, 10)));
    }
    ASSERT_TRUE(verify(db).ok);
    raw(GetParam().sql);
    const auto v = verify(db);
    EXPECT_FALSE(v.ok);
    EXPECT_EQ(v.agent, GetParam().agent);
    EXPECT_EQ(v.seq, GetParam().seq);
    EXPECT_NE(v.reason.find(GetParam().reason), std::string::npos) << v.reason;
}

INSTANTIATE_TEST_SUITE_P(
    Store, StoreTamperTest,
    ::testing::Values(
        TamperCase{.name = "EditedJson",
                   .sql = "UPDATE records SET json = '{}' WHERE agent = 'a2' AND seq = 4",
                   .agent = "a2", .seq = 4, .reason = "edited"},
        TamperCase{.name = "EditedVerdict",
                   .sql = "UPDATE records SET verdict = 'allow' WHERE agent = 'a1' AND seq = 7",
                   .agent = "a1", .seq = 7, .reason = "edited"},
        TamperCase{.name = "EditedTime",
                   .sql = "UPDATE records SET time_ns = time_ns + 1 WHERE agent = 'a1' AND seq = 1",
                   .agent = "a1", .seq = 1, .reason = "edited"},
        TamperCase{.name = "EditedHashToo",
                   .sql = "UPDATE records SET hash = zeroblob(32) WHERE agent = 'a2' AND seq = 2",
                   .agent = "a2", .seq = 2, .reason = "edited"},
        TamperCase{.name = "DeletedFromTheMiddle",
                   .sql = "DELETE FROM records WHERE agent = 'a1' AND seq = 5",
                   .agent = "a1", .seq = 5, .reason = "deleted"},
        TamperCase{.name = "DeletedTheFirst",
                   .sql = "DELETE FROM records WHERE agent = 'a2' AND seq = 1",
                   .agent = "a2", .seq = 1, .reason = "deleted"},
        TamperCase{.name = "InsertedDuplicate",
                   .sql = "INSERT INTO records(" + kCols + ") SELECT " + kCols +
                          " FROM records WHERE agent = 'a2' AND seq = 3",
                   .agent = "a2", .seq = 3, .reason = "inserted"},
        TamperCase{.name = "InsertedPlausibleRow",
                   .sql = "INSERT INTO records(" + kCols + ") SELECT time_ns + 1, agent, seq, kind, "
                          "hook, 'allow', pid, ppid, uid, path, dest, port, json, prev, hash "
                          "FROM records WHERE agent = 'a1' AND seq = 6",
                   .agent = "a1", .seq = 6, .reason = "inserted"},
        TamperCase{.name = "InsertedBeyondTheHead",
                   .sql = "INSERT INTO records(" + kCols + ") SELECT time_ns + 1, agent, 11, kind, "
                          "hook, verdict, pid, ppid, uid, path, dest, port, json, hash, hash "
                          "FROM records WHERE agent = 'a1' AND seq = 10",
                   .agent = "a1", .seq = 11, .reason = "inserted"},
        TamperCase{.name = "InsertedForAnUnknownAgent",
                   .sql = "INSERT INTO records(" + kCols + ") VALUES(5, 'a0', 1, 'decision', 'exec', "
                          "'allow', 1, 1, 0, '/bin/sh', '', 0, '{}', zeroblob(32), zeroblob(32))",
                   .agent = "a0", .seq = 1, .reason = "inserted"},
        TamperCase{.name = "DeletedAtTheEnd",
                   .sql = "DELETE FROM records WHERE agent = 'a2' AND seq >= 9",
                   .agent = "a2", .seq = 9, .reason = "missing at the end (head says seq 10)"},
        TamperCase{.name = "DeletedEveryRecordOfAnAgent",
                   .sql = "DELETE FROM records WHERE agent = 'a1'",
                   .agent = "a1", .seq = 1, .reason = "missing at the end"},
        TamperCase{.name = "DeletedTheHead",
                   .sql = "DELETE FROM heads WHERE agent = 'a1'",
                   .agent = "a1", .seq = 1, .reason = "no chain head"},
        TamperCase{.name = "ForgedTailHidesNothing",
                   .sql = "DELETE FROM records WHERE agent = 'a1' AND seq <= 2; "
                          "INSERT INTO tails VALUES('a1', 3, zeroblob(32))",
                   .agent = "a1", .seq = 3, .reason = "edited"},
        TamperCase{.name = "TailMovedWithoutAPrune",
                   .sql = "INSERT INTO tails SELECT agent, 3, hash FROM records WHERE agent = 'a1' AND seq = 2; "
                          "DELETE FROM records WHERE agent = 'a1' AND seq <= 2",
                   .agent = "a1", .seq = 3, .reason = "chain start moved without a prune record"},
        TamperCase{.name = "WholeChainDeletedWithAForgedTail",
                   .sql = "INSERT INTO tails SELECT agent, 11, hash FROM records WHERE agent = 'a2' AND seq = 10; "
                          "DELETE FROM records WHERE agent = 'a2'",
                   .agent = "a2", .seq = 11, .reason = "missing at the end"}),
    [](const auto& i) { return std::string(i.param.name); });

TEST_F(StoreTest, VerifyOfOneAgentIgnoresTheOthers)
{
    {
        Writer w(db, {});
        ASSERT_TRUE(w.append(interleaved({"a1", "a2"}, 5)));
    }
    raw("DELETE FROM records WHERE agent = 'a1' AND seq = 2");
    EXPECT_FALSE(verify(db).ok);
    const auto v = verify(db, "a2");
    EXPECT_TRUE(v.ok) << v.reason;
    EXPECT_EQ(v.records, 5u);
    EXPECT_EQ(v.per_agent.count("a1"), 0u);
}

TEST_F(StoreTest, PruneByAgeKeepsTheChainVerifiable)
{
    Writer w(db, Options{.max_age_ns = 10 * kSec, .max_bytes = 0});
    ASSERT_TRUE(w.append(interleaved({"a1", "a2"}, 10))); // times 1..20 s
    ASSERT_TRUE(w.append(std::vector{rec(2 * kSec, "gone", "decision", "exec", "deny")}));
    // Older than 25 - 10 = 15 s: times 1..14 and the "gone" agent entirely. Each agent cut gets
    // a prune record, "gone" too: its chain keeps that one record.
    EXPECT_EQ(w.prune(25 * kSec), 15) << w.last_error();
    EXPECT_EQ(query(db, {}).size(), 9u);
    const auto pr = query(db, Filter{.agent = "a1", .kinds = {"prune"}});
    ASSERT_EQ(pr.size(), 1u);
    EXPECT_EQ(pr[0].seq, 11);
    EXPECT_EQ(pr[0].hook, "prune");
    EXPECT_EQ(pr[0].verdict, "ok");
    EXPECT_NE(pr[0].json.find(R"("pruned_through_seq":7,"pruned_records":7,"cause":"age")"), std::string::npos)
        << pr[0].json;
    EXPECT_EQ(query(db, Filter{.agent = "gone"}).at(0).kind, "prune");
    auto v = verify(db);
    EXPECT_TRUE(v.ok) << v.agent << " " << v.seq << " " << v.reason;
    EXPECT_EQ(v.records, 9u);
    EXPECT_EQ(w.prune(25 * kSec), 0); // nothing more to do
    EXPECT_EQ(w.last_error(), "");

    // The chain goes on from where it was, pruned or not.
    ASSERT_TRUE(w.append(interleaved({"a1", "gone"}, 2, 30 * kSec)));
    EXPECT_EQ(w.heads().at("a1").first, 13);
    EXPECT_EQ(w.heads().at("gone").first, 4);
    v = verify(db);
    EXPECT_TRUE(v.ok) << v.agent << " " << v.seq << " " << v.reason;
    EXPECT_EQ(v.per_agent.at("gone"), 3u);

    // A later cut deletes the earlier prune records; the new ones vouch for the new starts.
    // Older than 41 - 10 = 31 s: a1 seq 8..12, a2 8..11 (all it had), gone's prune record.
    EXPECT_EQ(w.prune(41 * kSec), 10) << w.last_error();
    v = verify(db);
    EXPECT_TRUE(v.ok) << v.agent << " " << v.seq << " " << v.reason;
    EXPECT_EQ(query(db, Filter{.agent = "a1"}).size(), 2u); // seq 13 and the prune record
    EXPECT_EQ(query(db, Filter{.agent = "a2"}).size(), 1u);

    // Retention does not launder tampering: removing the oldest kept record still shows.
    raw("DELETE FROM records WHERE agent = 'a1' AND seq = 13");
    v = verify(db);
    EXPECT_FALSE(v.ok);
    EXPECT_EQ(v.agent, "a1");
    EXPECT_EQ(v.seq, 13);
}

TEST_F(StoreTest, PruneBySizeShrinksTheFile)
{
    constexpr std::uint64_t kMax = 2 << 20;
    {
        Writer w(db, Options{.max_age_ns = 0, .max_bytes = 0});
        for (int i = 0; i < 5; ++i)
            ASSERT_TRUE(w.append(interleaved({"a1", "a2", "a3"}, 1000, (1 + i * 3000) * kSec)));
    }
    const auto before = fs::file_size(db);
    ASSERT_GT(before, 4 * kMax);
    Writer w(db, Options{.max_age_ns = 0, .max_bytes = kMax});
    const auto n = w.prune(100'000 * kSec);
    EXPECT_GT(n, 0) << w.last_error();
    EXPECT_LE(fs::file_size(db), kMax);
    // Three agents cut, three prune records.
    EXPECT_EQ(static_cast<std::int64_t>(query(db, {}).size()), 15'000 - n + 3);
    auto v = verify(db);
    EXPECT_TRUE(v.ok) << v.agent << " " << v.seq << " " << v.reason;
    // The oldest went first: what is left is the newest.
    EXPECT_EQ(query(db, Filter{.kinds = {"decision"}}).back().time_ns, (1 + 14'999) * kSec);

    ASSERT_TRUE(w.append(interleaved({"a1", "a2", "a3"}, 10, 20'000 * kSec)));
    EXPECT_EQ(w.heads().at("a3").first, 5011);
    v = verify(db);
    EXPECT_TRUE(v.ok) << v.agent << " " << v.seq << " " << v.reason;
}

TEST_F(StoreTest, PruneBySizeEvictsTheFloodingAgentFirst)
{
    constexpr std::uint64_t kMax = 2 << 20;
    {
        Writer w(db, Options{.max_age_ns = 0, .max_bytes = 0});
        // "quiet" writes first (its records are the oldest), then "flood" ten times as many.
        ASSERT_TRUE(w.append(interleaved({"quiet"}, 500)));
        ASSERT_TRUE(w.append(interleaved({"flood"}, 5000, 1000 * kSec)));
    }
    ASSERT_GT(fs::file_size(db), kMax);
    Writer w(db, Options{.max_age_ns = 0, .max_bytes = kMax});
    const auto n = w.prune(100'000 * kSec);
    EXPECT_GT(n, 0) << w.last_error();
    EXPECT_LE(fs::file_size(db), kMax);
    const auto quiet = query(db, Filter{.agent = "quiet"});
    ASSERT_EQ(quiet.size(), 500u); // untouched, and no prune record: nothing cut
    EXPECT_EQ(quiet.front().seq, 1);
    const auto flood = query(db, Filter{.agent = "flood", .kinds = {"decision"}});
    ASSERT_EQ(static_cast<std::int64_t>(flood.size()), 5000 - n);
    // Its first 8 denials and first 8 allows were kept (seq 1..16), then its oldest went.
    EXPECT_EQ(flood[0].seq, 1);
    EXPECT_EQ(flood[15].seq, 16);
    EXPECT_EQ(flood[16].seq, n + 17);
    EXPECT_EQ(flood.back().seq, 5000);
    const auto pr = query(db, Filter{.agent = "flood", .kinds = {"prune"}});
    ASSERT_EQ(pr.size(), 1u);
    EXPECT_NE(pr[0].json.find(R"("cause":"size")"), std::string::npos) << pr[0].json;
    const auto v = verify(db);
    EXPECT_TRUE(v.ok) << v.agent << " " << v.seq << " " << v.reason;
}

struct ShareCase {
    const char* name;
    std::vector<int> counts; // records of agents a0, a1, ...
    std::uint64_t max_bytes;
    std::vector<bool> cut;   // whether each agent lost records
};
void PrintTo(const ShareCase& c, std::ostream* os) { *os << c.name; }
class StoreShareTest : public StoreTest, public ::testing::WithParamInterface<ShareCase> {};

TEST_P(StoreShareTest, TheBiggestLoseTheirOldestFirst)
{
    const auto& c = GetParam();
    {
        Writer w(db, Options{.max_age_ns = 0, .max_bytes = 0});
        for (std::size_t i = 0; i < c.counts.size(); ++i)
            ASSERT_TRUE(w.append(interleaved({"a" + std::to_string(i)}, c.counts[i],
                                             static_cast<std::int64_t>(i + 1) * 100'000 * kSec)));
    }
    Writer w(db, Options{.max_age_ns = 0, .max_bytes = c.max_bytes});
    EXPECT_GT(w.prune(1'000'000 * kSec), 0) << w.last_error();
    for (std::size_t i = 0; i < c.counts.size(); ++i) {
        const auto a = "a" + std::to_string(i);
        const auto rows = query(db, Filter{.agent = a, .kinds = {"decision"}});
        EXPECT_EQ(static_cast<int>(rows.size()) < c.counts[i], c.cut[i]) << a << " kept " << rows.size();
        EXPECT_EQ(query(db, Filter{.agent = a, .kinds = {"prune"}}).size(), c.cut[i] ? 1u : 0u) << a;
    }
    const auto v = verify(db);
    EXPECT_TRUE(v.ok) << v.agent << " " << v.seq << " " << v.reason;
}

INSTANTIATE_TEST_SUITE_P(
    Store, StoreShareTest,
    ::testing::Values(
        ShareCase{.name = "OneFlooderPaysAlone", .counts = {300, 6000, 300}, .max_bytes = 2 << 20,
                  .cut = {false, true, false}},
        ShareCase{.name = "TwoFloodersLevelTogether", .counts = {3000, 3000, 200}, .max_bytes = 2 << 20,
                  .cut = {true, true, false}},
        // Even the smallest budget leaves every chain its prune record.
        ShareCase{.name = "TinyBudgetCutsEveryone", .counts = {500, 500}, .max_bytes = 64 << 10,
                  .cut = {true, true}}),
    [](const auto& i) { return std::string(i.param.name); });

struct RetentionTamperCase {
    const char* name;
    std::string sql;    // run after a1, a2 had seq 1..3 pruned by age (prune records at seq 11)
    std::string agent;  // "" = verify passes
    std::int64_t seq;
    std::string reason;
};
void PrintTo(const RetentionTamperCase& c, std::ostream* os) { *os << c.name; }
class StoreRetentionTamperTest : public StoreTest, public ::testing::WithParamInterface<RetentionTamperCase> {};

TEST_P(StoreRetentionTamperTest, OnlyAChainedPruneMovesTheChainStart)
{
    const auto& c = GetParam();
    {
        Writer w(db, Options{.max_age_ns = 10 * kSec, .max_bytes = 0});
        ASSERT_TRUE(w.append(interleaved({"a1", "a2"}, 10))); // a1 at 1, 3, .. 19 s; a2 at 2, .. 20 s
        ASSERT_EQ(w.prune(16 * kSec + kSec / 2), 6) << w.last_error();
    }
    ASSERT_TRUE(verify(db).ok);
    if (!c.sql.empty())
        raw(c.sql);
    const auto v = verify(db);
    if (c.agent.empty()) {
        EXPECT_TRUE(v.ok) << v.agent << " " << v.seq << " " << v.reason;
        return;
    }
    EXPECT_FALSE(v.ok);
    EXPECT_EQ(v.agent, c.agent);
    EXPECT_EQ(v.seq, c.seq);
    EXPECT_NE(v.reason.find(c.reason), std::string::npos) << v.reason;
}

// Moves a1's chain start to `seq` as the writer would have: tails names the hash of seq - 1.
std::string move_tail(int seq)
{
    return "UPDATE tails SET seq = " + std::to_string(seq) + ", prev = (SELECT hash FROM records WHERE "
           "agent = 'a1' AND seq = " + std::to_string(seq - 1) + ") WHERE agent = 'a1'; "
           "DELETE FROM records WHERE agent = 'a1' AND seq < " + std::to_string(seq) + "; ";
}

INSTANTIATE_TEST_SUITE_P(
    Store, StoreRetentionTamperTest,
    ::testing::Values(
        RetentionTamperCase{.name = "LegitimatePruneVerifies", .sql = "", .agent = "", .seq = 0, .reason = ""},
        RetentionTamperCase{.name = "TailMovedFurther", .sql = move_tail(6), .agent = "a1", .seq = 6,
                            .reason = "chain start moved without a prune record"},
        RetentionTamperCase{.name = "TailMovedBackIsADeletion",
                            .sql = "UPDATE tails SET seq = 3, prev = zeroblob(32) WHERE agent = 'a1'",
                            .agent = "a1", .seq = 3, .reason = "deleted"},
        RetentionTamperCase{.name = "TailRowDeleted", .sql = "DELETE FROM tails WHERE agent = 'a2'",
                            .agent = "a2", .seq = 1, .reason = "deleted"},
        RetentionTamperCase{.name = "WholeChainDeletedAndTailMovedPastTheHead",
                            .sql = move_tail(12) + "DELETE FROM records WHERE agent = 'a1'",
                            .agent = "a1", .seq = 12, .reason = "missing at the end"},
        RetentionTamperCase{.name = "PruneRecordEditedToMatch",
                            .sql = move_tail(6) + "UPDATE records SET json = replace(json, "
                                   "'\"pruned_through_seq\":3', '\"pruned_through_seq\":5') "
                                   "WHERE agent = 'a1' AND kind = 'prune'",
                            .agent = "a1", .seq = 11, .reason = "edited"},
        RetentionTamperCase{.name = "PruneRecordRelabelled",
                            .sql = "UPDATE records SET kind = 'decision' WHERE agent = 'a2' AND seq = 11",
                            .agent = "a2", .seq = 11, .reason = "edited"}),
    [](const auto& i) { return std::string(i.param.name); });

TEST_F(StoreTest, CorruptFileIsMovedAsideAndAFreshStoreWorks)
{
    {
        Writer w(db, {});
        ASSERT_TRUE(w.append(interleaved({"a1"}, 3)));
    }
    {
        std::ofstream f(db, std::ios::binary | std::ios::trunc);
        for (int i = 0; i < 1000; ++i)
            f << "this is not an SQLite database ";
    }
    Writer w(db, {});
    ASSERT_TRUE(w.corrupt_moved().has_value());
    EXPECT_EQ(w.corrupt_moved()->string().rfind(db.string() + ".corrupt-", 0), 0u) << *w.corrupt_moved();
    EXPECT_TRUE(fs::exists(*w.corrupt_moved()));
    EXPECT_TRUE(w.heads().empty());
    ASSERT_TRUE(w.append(interleaved({"a1"}, 2))) << w.last_error();
    EXPECT_EQ(w.heads().at("a1").first, 2);
    EXPECT_EQ(query(db, {}).size(), 2u);
    EXPECT_TRUE(verify(db).ok);
}

TEST_F(StoreTest, HealthyFileIsNotMoved)
{
    {
        Writer w(db, {});
    }
    Writer w(db, {});
    EXPECT_FALSE(w.corrupt_moved().has_value());
}

TEST_F(StoreTest, FailedAppendStoresNothingAndTheChainContinues)
{
    Writer w(db, {});
    ASSERT_TRUE(w.append(interleaved({"a1", "a2"}, 5)));
    const auto heads = w.heads();
    // The file cannot grow past its current size (SQLite clamps the limit to it): SQLITE_FULL.
    ASSERT_TRUE(w.exec_for_test("PRAGMA max_page_count = 1")) << w.last_error();
    EXPECT_FALSE(w.append(interleaved({"a1", "a3"}, 2000, 100 * kSec)));
    EXPECT_NE(w.last_error().find("full"), std::string::npos) << w.last_error();
    EXPECT_EQ(w.heads(), heads);
    EXPECT_EQ(query(db, {}).size(), 10u); // all or nothing
    EXPECT_TRUE(verify(db).ok);

    ASSERT_TRUE(w.exec_for_test("PRAGMA max_page_count = 1073741823"));
    ASSERT_TRUE(w.append(interleaved({"a1", "a3"}, 2, 100 * kSec))) << w.last_error();
    EXPECT_EQ(w.last_error(), "");
    EXPECT_EQ(w.heads().at("a1").first, 7);
    EXPECT_EQ(w.heads().at("a3").first, 2);
    const auto v = verify(db);
    EXPECT_TRUE(v.ok) << v.agent << " " << v.seq << " " << v.reason;
    EXPECT_EQ(v.records, 14u);
}

/// Runs `cordon ARGS`, output to /dev/null; returns (exit status, peak RSS in KiB).
std::pair<int, long> cordon_rss(const std::vector<std::string>& args)
{
    // The child's peak counts what it shared with this process before exec: give back what
    // earlier tests freed first, so the figure is cordon's own.
    ::malloc_trim(0);
    const pid_t p = ::fork();
    if (p == 0) {
        const int null = ::open("/dev/null", O_WRONLY);
        ::dup2(null, 1);
        std::vector<char*> argv{const_cast<char*>(CORDON_BINARY)};
        for (const auto& a : args)
            argv.push_back(const_cast<char*>(a.c_str()));
        argv.push_back(nullptr);
        ::execv(CORDON_BINARY, argv.data());
        ::_exit(127);
    }
    int status = 0;
    rusage ru{};
    ::wait4(p, &status, 0, &ru);
    return {WIFEXITED(status) ? WEXITSTATUS(status) : 128, ru.ru_maxrss};
}

/// The hostile review's flood on a small store: an agent attached by the operator reads a
/// secret (denied), then floods 40,000 denied connects; another agent makes 60 denied opens
/// meanwhile. Retention by size runs as cordond runs it (whenever the store is over its limit).
class StoreKeepTest : public StoreTest {
protected:
    static constexpr std::uint64_t kMax = 1 << 20;

    void flood(Writer& w, int n, std::int64_t t0)
    {
        std::vector<Record> batch;
        for (int i = 0; i < n; ++i) {
            batch.push_back(rec(t0 + i, "flood", "decision", "connect4", "deny", "", "10.9.0.1", 53));
            if (i % 600 == 0)
                batch.push_back(rec(t0 + i, "quiet", "decision", "open", "deny", "/etc/q" + std::to_string(i)));
            if (batch.size() >= 100) {
                ASSERT_TRUE(w.append(batch)) << w.last_error();
                batch.clear();
                if (w.over_limit()) {
                    ASSERT_GE(w.prune(t0 + i), 0) << w.last_error();
                }
                ASSERT_TRUE(w.last_error().empty()) << w.last_error();
            }
        }
        ASSERT_TRUE(w.append(batch)) << w.last_error();
    }
    void start(Writer& w)
    {
        Record attach = rec(kSec, "flood", "action", "attach", "ok");
        ASSERT_TRUE(w.append(std::vector<Record>{attach,
                                                 rec(2 * kSec, "flood", "decision", "open", "deny", "/etc/secret")}));
    }
    std::uint64_t on_disk()
    {
        std::error_code ec;
        const auto wal = fs::file_size(db.string() + "-wal", ec);
        return fs::file_size(db) + (ec ? 0 : wal);
    }
};

TEST_F(StoreKeepTest, AFloodCannotEraseTheOperatorsActionsOrAnyAgentsFirstRecords)
{
    std::uint64_t peak = 0;
    {
        Writer w(db, Options{.max_age_ns = 0, .max_bytes = kMax});
        start(w);
        for (int round = 0; round < 4; ++round) {
            flood(w, 10'000, (10 + round * 20'000) * kSec);
            peak = std::max(peak, on_disk());
        }
    }
    const auto attach = query(db, Filter{.agent = "flood", .kinds = {"action"}});
    ASSERT_EQ(attach.size(), 1u) << "the operator's attach record";
    EXPECT_EQ(attach[0].seq, 1);
    const auto secret = query(db, Filter{.agent = "flood", .path_glob = "/etc/secret"});
    ASSERT_EQ(secret.size(), 1u) << "the agent's first denied open";
    // Its first 8 denied connects, and its newest; the rest of the flood went.
    const auto connects = query(db, Filter{.agent = "flood", .hooks = {"connect4"}});
    ASSERT_GT(connects.size(), 8u);
    EXPECT_LT(connects.size(), 4000u);
    EXPECT_EQ(connects[7].seq, 10);
    EXPECT_GT(connects[8].seq, 30'000);
    EXPECT_EQ(connects.back().time_ns, (10 + 60'000) * kSec + 9'999); // the last one written
    // The quiet agent lost nothing: the flooder paid for the room.
    EXPECT_EQ(query(db, Filter{.agent = "quiet", .kinds = {"decision"}}).size(), 68u);
    EXPECT_TRUE(query(db, Filter{.agent = "quiet", .kinds = {"prune"}}).empty());
    // The size limit holds within its stated margin (docs/forensics.md: half again, for the WAL).
    EXPECT_LE(peak, kMax + kMax / 2) << "database and WAL on disk, at most";
    const auto v = verify(db);
    EXPECT_TRUE(v.ok) << v.agent << " " << v.seq << " " << v.reason;
    // The prune record names what it kept before the chain start.
    const auto pr = query(db, Filter{.agent = "flood", .kinds = {"prune"}});
    ASSERT_FALSE(pr.empty());
    EXPECT_NE(pr.back().json.find(R"("kept_records":10,)"), std::string::npos) << pr.back().json;
}

struct KeptTamperCase {
    const char* name;
    std::string sql; // after the flood: flood's seq 1..10 kept before its chain start
    std::int64_t seq; // -1: wherever the chain now starts
    std::string reason;
};
void PrintTo(const KeptTamperCase& c, std::ostream* os) { *os << c.name; }
class StoreKeptTamperTest : public StoreKeepTest, public ::testing::WithParamInterface<KeptTamperCase> {};

TEST_P(StoreKeptTamperTest, VerifyNamesAKeptRecordDeletedEditedOrForged)
{
    const auto& c = GetParam();
    {
        Writer w(db, Options{.max_age_ns = 0, .max_bytes = kMax});
        start(w);
        flood(w, 10'000, 10 * kSec);
    }
    ASSERT_TRUE(verify(db).ok);
    raw(c.sql);
    const auto v = verify(db);
    if (c.reason.empty()) {
        EXPECT_TRUE(v.ok) << v.agent << " " << v.seq << " " << v.reason;
        return;
    }
    EXPECT_FALSE(v.ok);
    EXPECT_EQ(v.agent, "flood");
    if (c.seq >= 0) {
        EXPECT_EQ(v.seq, c.seq);
    }
    EXPECT_NE(v.reason.find(c.reason), std::string::npos) << v.reason;
}

INSTANTIATE_TEST_SUITE_P(
    Store, StoreKeptTamperTest,
    ::testing::Values(
        // The flag is hashed with its record: flipping it shows.
        KeptTamperCase{.name = "KeepFlagFlipped", .sql = "UPDATE records SET keep = 0 WHERE agent = 'flood'",
                       .seq = 1, .reason = "edited"},
        KeptTamperCase{.name = "KeepOutOfRange", .sql = "UPDATE records SET keep = -254 WHERE agent = 'flood' AND seq = 1",
                       .seq = 1, .reason = "edited"},
        KeptTamperCase{.name = "KeepFlagSetOnAFloodRecord",
                       .sql = "UPDATE records SET keep = 1 WHERE agent = 'flood' AND seq = (SELECT max(seq) "
                              "FROM records WHERE agent = 'flood' AND kind = 'decision')",
                       .seq = -1, .reason = "edited"},
        KeptTamperCase{.name = "OperatorActionDeleted",
                       .sql = "DELETE FROM records WHERE agent = 'flood' AND seq = 1", .seq = 2,
                       .reason = "kept records before the chain start differ"},
        KeptTamperCase{.name = "SecretReadEdited",
                       .sql = "UPDATE records SET path = '/etc/hosts' WHERE agent = 'flood' AND seq = 2",
                       .seq = 2, .reason = "edited"},
        KeptTamperCase{.name = "ForgedBeforeTheStart",
                       .sql = "INSERT INTO records(" + kCols + ", keep) SELECT time_ns, agent, 11, kind, hook, "
                              "verdict, pid, ppid, uid, path, dest, port, json, prev, hash, 1 FROM records "
                              "WHERE agent = 'flood' AND seq = 10",
                       .seq = 11, .reason = "edited"},
        KeptTamperCase{.name = "AllKeptDeleted", .sql = "DELETE FROM records WHERE agent = 'flood' AND keep <> 0 "
                                                        "AND seq < 11",
                       .seq = -1, .reason = "10 vouched for"}),
    [](const auto& i) { return std::string(i.param.name); });

TEST_F(StoreKeepTest, KeptRecordsGoOnlyWhenNothingElseIsLeftOverTheLimit)
{
    {
        Writer w(db, Options{.max_age_ns = 0, .max_bytes = 0});
        // 4,000 kill verdicts over four hooks: each kind keeps up to kKeepMany (1,024).
        std::vector<Record> v;
        for (int i = 0; i < 4000; ++i)
            v.push_back(rec((1 + i) * kSec, "a1", "decision", "hook" + std::to_string(i % 4), "kill"));
        ASSERT_TRUE(w.append(v));
        ASSERT_EQ(query(db, Filter{.agent = "a1"}).size(), 4000u);
    }
    Writer w(db, Options{.max_age_ns = 0, .max_bytes = 512 << 10});
    while (w.over_limit())
        ASSERT_GT(w.prune(100'000 * kSec), 0) << w.last_error();
    EXPECT_LE(fs::file_size(db), 512u << 10);
    const auto rows = query(db, Filter{.agent = "a1", .kinds = {"decision"}});
    ASSERT_FALSE(rows.empty());
    EXPECT_LT(rows.size(), 1000u); // kept ones went too: nothing else was left
    EXPECT_EQ(rows.back().seq, 4000); // the newest stayed
    const auto v = verify(db);
    EXPECT_TRUE(v.ok) << v.agent << " " << v.seq << " " << v.reason;
}

// Someone who can write the file deletes a kept record, or unflags one, and waits for the
// daemon's next prune: the prune must not vouch for the changed set (which would make verify
// pass again). Retention leaves that agent alone and says why; verify goes on naming it.
TEST_F(StoreKeepTest, TheNextPruneDoesNotLaunderAKeptRecordDeletedOrUnflagged)
{
    for (const std::string sql :
         {"DELETE FROM records WHERE agent = 'flood' AND seq = 2",
          "UPDATE records SET keep = 0 WHERE agent = 'flood' AND seq = 2",
          // One byte of keep is hashed: -254 hashes as 2 would, and is refused as out of range.
          "UPDATE records SET keep = -254 WHERE agent = 'flood' AND seq = 1",
          // The tails row goes with the kept record: the agent's last prune record still says
          // where the chain starts.
          "DELETE FROM records WHERE agent = 'flood' AND seq = 2; DELETE FROM tails WHERE agent = 'flood'",
          // The last prune record itself edited: it is no longer whole, so it vouches for nothing.
          "DELETE FROM records WHERE agent = 'flood' AND seq = 2; UPDATE records SET json = replace(json, "
          "'\"cause\":\"size\"', '\"cause\":\"sizE\"') WHERE agent = 'flood' AND kind = 'prune' AND seq = "
          "(SELECT max(seq) FROM records WHERE agent = 'flood' AND kind = 'prune')"}) {
        SCOPED_TRACE(sql);
        fs::remove(db);
        fs::remove(db.string() + "-wal");
        fs::remove(db.string() + "-shm");
        {
            Writer w(db, Options{.max_age_ns = 0, .max_bytes = kMax});
            start(w);
            flood(w, 5'000, 10 * kSec);
        }
        ASSERT_TRUE(verify(db).ok);
        raw(sql);
        const auto before = verify(db);
        ASSERT_FALSE(before.ok);
        std::string error;
        {
            Writer w(db, Options{.max_age_ns = 0, .max_bytes = kMax}); // a restarted cordond
            std::vector<Record> more;
            for (int i = 0; i < 3000; ++i)
                more.push_back(rec(100'000 * kSec + i, "flood", "decision", "connect4", "deny", "", "10.9.0.1", 53));
            ASSERT_TRUE(w.append(more));
            w.prune(200'000 * kSec);
            error = w.last_error();
        }
        EXPECT_NE(error.find("left the records of flood uncut"), std::string::npos) << error;
        const auto after = verify(db);
        EXPECT_FALSE(after.ok) << "a prune vouched for the changed kept records";
        EXPECT_EQ(after.agent, "flood");
    }
}

// A small store where an agent's own kept records (a thousand tamper records, long paths) are
// more than the limit: they are cut, oldest first; the operator's action on it stays.
TEST_F(StoreKeepTest, TheOperatorsActionsAreTheLastKeptRecordsToGo)
{
    {
        Writer w(db, Options{.max_age_ns = 0, .max_bytes = 0});
        start(w);
        std::vector<Record> v;
        for (int i = 0; i < 1000; ++i)
            v.push_back(rec((10 + i) * kSec, "flood", "decision", "tamper", "deny",
                            "/sys/fs/bpf/" + std::string(240, 'p') + std::to_string(i)));
        ASSERT_TRUE(w.append(v));
    }
    Writer w(db, Options{.max_age_ns = 0, .max_bytes = 256 << 10});
    while (w.over_limit())
        ASSERT_GT(w.prune(100'000 * kSec), 0) << w.last_error();
    const auto tamper = query(db, Filter{.agent = "flood", .hooks = {"tamper"}});
    ASSERT_FALSE(tamper.empty());
    EXPECT_LT(tamper.size(), 1000u) << "the agent's own kept records went first";
    EXPECT_EQ(tamper.back().path.substr(tamper.back().path.size() - 3), "999");
    EXPECT_EQ(query(db, Filter{.agent = "flood", .kinds = {"action"}}).size(), 1u) << "the attach record";
    const auto v = verify(db);
    EXPECT_TRUE(v.ok) << v.agent << " " << v.seq << " " << v.reason;
}

// An action's kind carries the operation its caller named: however many names a caller makes
// up, one agent keeps at most kKeepPerAgent records.
TEST_F(StoreKeepTest, KindsACallerNamesCannotGrowTheKeptRecordsPastTheAgentsSum)
{
    {
        Writer w(db, Options{.max_age_ns = 0, .max_bytes = 0});
        std::vector<Record> v;
        for (int i = 0; i < 6000; ++i)
            v.push_back(rec((1 + i) * kSec, "a1", "action", "made-up-" + std::to_string(i), "error"));
        ASSERT_TRUE(w.append(v));
    }
    EXPECT_EQ(scalar("SELECT count(*) FROM records WHERE keep <> 0"), static_cast<std::int64_t>(kKeepPerAgent));
}

TEST_F(StoreKeepTest, AStoreOfSchema2IsUpgradedAndKeepsFromThen)
{
    {
        Writer w(db, Options{.max_age_ns = 0, .max_bytes = 0, .keep = false}); // as schema 2 wrote it
        ASSERT_TRUE(w.append(interleaved({"a1"}, 20)));
    }
    raw("DROP INDEX records_kept; ALTER TABLE records DROP COLUMN keep; "
        "UPDATE meta SET value = 2 WHERE key = 'schema_version'");
    {
        Writer w(db, Options{.max_age_ns = 0, .max_bytes = kMax});
        start(w);
        flood(w, 5'000, 100 * kSec);
    }
    const auto v = verify(db);
    EXPECT_TRUE(v.ok) << v.agent << " " << v.seq << " " << v.reason;
    // What came before the upgrade was never kept; the attach after it was.
    EXPECT_EQ(query(db, Filter{.agent = "a1", .kinds = {"decision"}}).size(), 20u);
    EXPECT_EQ(query(db, Filter{.agent = "flood", .kinds = {"action"}}).size(), 1u);
    EXPECT_EQ(scalar("SELECT value FROM meta WHERE key = 'schema_version'"), 3);
}

// `cordon report` and `cordon events` read a store one record at a time: over 500,000 records
// of one agent (about 250 MB had they been held in memory, as report did before) each stays
// within 64 MiB. docs/benchmarks.md has the figures at 10 million.
TEST_F(StoreTest, ReportAndEventsReadALargeStoreInBoundedMemory)
{
    {
        Writer w(db, {.max_age_ns = 0, .max_bytes = 0});
        ASSERT_TRUE(w.append(interleaved({"flood"}, 2)));
    }
    sqlite3* h = nullptr;
    ASSERT_EQ(sqlite3_open(db.c_str(), &h), SQLITE_OK);
    // Rows written straight in (no chain: report and events do not verify), each ~450 bytes.
    const char* fill = R"sql(
        WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 500000)
        INSERT INTO records(time_ns, agent, seq, kind, hook, verdict, pid, ppid, uid, path, dest,
                            port, json, prev, hash)
        SELECT 1000000000000 + x * 1000, 'flood', x + 2, 'decision', 'connect4', 'deny', 7, 1, 0,
               '', '10.0.' || (x % 200) || '.' || (x % 250), 9,
               '{"pad":"' || hex(randomblob(150)) || '"}', zeroblob(32), zeroblob(32) FROM c;)sql";
    char* err = nullptr;
    ASSERT_EQ(sqlite3_exec(h, fill, nullptr, nullptr, &err), SQLITE_OK) << (err ? err : "");
    sqlite3_close(h);
    EXPECT_EQ(for_each(db, {.agent = "flood"}, [](Row&&) {}), 500002u) << "rows visited";
    const auto [rc, rss] = cordon_rss({"report", "flood", "--store", db.string()});
    EXPECT_EQ(rc, 0);
    EXPECT_LT(rss, 64 * 1024) << "report's peak RSS in KiB";
    const auto [rc2, rss2] = cordon_rss({"events", "flood", "--store", db.string(), "--json"});
    EXPECT_EQ(rc2, 0);
    EXPECT_LT(rss2, 64 * 1024) << "events' peak RSS in KiB";
}

} // namespace
} // namespace cordon::events::store
