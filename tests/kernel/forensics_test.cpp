// SPDX-License-Identifier: Apache-2.0
// Forensics end to end on the real kernel: real decisions and exec traces of a real agent go
// through the real cordond into its JSONL file and SQLite store; `cordon events` filters them,
// `cordon events verify` catches a stored record edited, deleted or inserted, `cordon report`
// rebuilds the process tree, the JSONL file rotates, a full filesystem (a real tmpfs) loses
// records countably without touching enforcement, and `cordon trace` filters live.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <thread>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <sqlite3.h>

#include "daemon_util.h"
#include "events/store.h"
#include "common/backend.h"
#include "kernel_test_util.h"

namespace cordon::testing {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

std::string forensic_policy(const fs::path& secret, const std::string& name)
{
    return "apiVersion: cordon.dev/v1\nkind: AgentPolicy\nmetadata:\n  name: " + name +
           "\nspec:\n  trace: exec\n  exec: {default: allow}\n  files:\n    default: allow\n"
           "    rules:\n      - {path: " + secret.string() + ", access: read, action: deny}\n"
           "  network:\n    default: allow\n    rules:\n"
           "      - {cidr: 10.0.0.0/8, action: deny}\n";
}

/// connect() to addr:9 from the calling process; 0 or the errno.
int try_connect(const char* addr)
{
    const int s = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s < 0)
        return errno;
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(9);
    ::inet_pton(AF_INET, addr, &sa.sin_addr);
    const int r = ::connect(s, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) == 0 ? 0 : errno;
    ::close(s);
    return r;
}

json store_status(const Daemon& d)
{
    return d.call(R"({"v":1,"op":"status"})").value("store", json::object());
}

/// Waits until the store (and the JSONL file, when on) took at least n records.
bool stored_at_least(const Daemon& d, std::uint64_t n)
{
    for (int i = 0; i < 200; ++i) {
        const auto s = store_status(d);
        const bool db = !s.contains("sqlite") || s["sqlite"].value("stored", 0u) >= n;
        const bool jl = !s.contains("jsonl") || s["jsonl"].value("written", 0u) >= n;
        if (db && jl)
            return true;
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return false;
}

std::vector<json> json_lines(const std::string& text)
{
    std::vector<json> out;
    std::istringstream in(text);
    for (std::string l; std::getline(in, l);)
        if (!l.empty())
            out.push_back(json::parse(l));
    return out;
}

/// The agent's work: a denied open, an exec with arguments, a denied and an allowed connect.
void agent_work(const agents::Cgroup& cg, const Files& f)
{
    const pid_t w = spawn_in(cg.path().string(), [&] {
        pid_t p = ::fork();
        if (p == 0)
            ::_exit(try_open(f.secret));
        const Exit open = wait_exit(p);
        if (!refused(open))
            return 1;
        p = ::fork();
        if (p == 0) {
            ::execl("/bin/true", "true", "forensic-arg", "second arg", nullptr);
            ::_exit(127);
        }
        if (!(wait_exit(p) == exited(0)))
            return 2;
        if (try_connect("10.1.2.3") != EPERM)
            return 3;
        return 0;
    });
    ASSERT_EQ(wait_exit(w), exited(0)) << "the agent's accesses were not decided as expected";
}

std::pair<int, std::string> cordon_cli(const Daemon& d, std::vector<std::string> args)
{
    return run_cordon(d, args);
}

void sql(const fs::path& db, const std::string& statement)
{
    sqlite3* h = nullptr;
    ASSERT_EQ(sqlite3_open(db.c_str(), &h), SQLITE_OK);
    char* err = nullptr;
    EXPECT_EQ(sqlite3_exec(h, statement.c_str(), nullptr, nullptr, &err), SQLITE_OK)
        << statement << ": " << (err ? err : "");
    sqlite3_free(err);
    sqlite3_close(h);
}

class ForensicsTest : public ::testing::TestWithParam<cordon_backend> {
protected:
    void SetUp() override
    {
        if (skip_unless_backend(GetParam()))
            GTEST_SKIP() << "the kernel cannot run this backend; the VM tier runs it";
    }
};

TEST_P(ForensicsTest, DecisionsAndExecsReachJsonlAndSqliteAndEachFilterSelects)
{
    Files f;
    Daemon d(GetParam(), {"--events-jsonl", "EVENTS"});
    auto cg = make_test_cgroup();
    ASSERT_TRUE(d.attach(cg.path(), forensic_policy(f.secret, "ft"), "ft", f.dir.string())
                    .value("ok", false));
    agent_work(cg, f);
    // attach + denied open + exec trace of true + denied connect
    ASSERT_TRUE(stored_at_least(d, 4)) << store_status(d).dump();
    const fs::path db = d.dir() / "events.db";

    // JSONL: OCSF classes and fields.
    std::ifstream in("EVENTS");
    std::stringstream all;
    all << in.rdbuf();
    bool open_seen = false, exec_seen = false, connect_seen = false;
    for (const auto& j : json_lines(all.str())) {
        if (j["unmapped"].value("agent", "") != "ft")
            continue;
        const auto hook = j["unmapped"].value("hook", "");
        if (hook == "open") {
            open_seen = true;
            EXPECT_EQ(j["class_uid"], 1001);
            EXPECT_EQ(j["activity_id"], 14);
            EXPECT_EQ(j["action_id"], 2);
            EXPECT_EQ(j["file"]["path"], f.secret.string());
        } else if (hook == "process") {
            exec_seen = true;
            EXPECT_EQ(j["class_uid"], 1007);
            // The file that ran, resolved by the kernel (/bin is a link to usr/bin on Debian
            // 12), its inode and device; and the name the exec was given.
            struct stat st{};
            ASSERT_EQ(::stat("/bin/true", &st), 0);
            EXPECT_EQ(j["process"]["file"]["path"], fs::canonical("/bin/true").string());
            EXPECT_EQ(j["unmapped"]["exec_file"], fs::canonical("/bin/true").string());
            EXPECT_EQ(j["unmapped"]["exec_name"], "/bin/true");
            EXPECT_EQ(j["unmapped"]["exec_ino"].get<std::uint64_t>(), st.st_ino);
            EXPECT_EQ(j["unmapped"]["exec_dev"], fmt::format("{}:{}", major(st.st_dev), minor(st.st_dev)));
            EXPECT_EQ(j["process"]["cmd_line"], "true forensic-arg second arg");
            EXPECT_EQ(j["unmapped"]["argv"], json::array({"true", "forensic-arg", "second arg"}));
            EXPECT_GT(j["process"]["parent_process"]["pid"].get<int>(), 0);
        } else if (hook == "connect4") {
            connect_seen = true;
            EXPECT_EQ(j["class_uid"], 4001);
            EXPECT_EQ(j["dst_endpoint"]["ip"], "10.1.2.3");
            EXPECT_EQ(j["dst_endpoint"]["port"], 9);
        }
    }
    EXPECT_TRUE(open_seen && exec_seen && connect_seen) << all.str();

    // Each query filter, through the CLI.
    const auto count = [&](std::vector<std::string> args) {
        args.insert(args.begin(), {"events", "--store", db.string()});
        args.push_back("--json");
        const auto [rc, out] = cordon_cli(d, args);
        EXPECT_EQ(rc, 0) << out;
        return json_lines(out).size();
    };
    EXPECT_EQ(count({"ft", "--verdict", "deny"}), 2u);
    EXPECT_EQ(count({"ft", "--hook", "file"}), 1u);
    EXPECT_EQ(count({"ft", "--hook", "exec"}), 1u);
    EXPECT_EQ(count({"ft", "--hook", "net", "--verdict", "deny"}), 1u);
    EXPECT_EQ(count({"ft", "--hook", "action"}), 1u) << "the attach";
    EXPECT_EQ(count({"ft", "--path", "*" + f.secret.filename().string()}), 1u);
    EXPECT_EQ(count({"ft", "--dest", "10.0.0.0/8"}), 1u);
    EXPECT_EQ(count({"ft", "--dest", "192.168.0.0/16"}), 0u);
    EXPECT_EQ(count({"ft", "--since", "1h", "--verdict", "deny"}), 2u);
    EXPECT_EQ(count({"ft", "--until", "2000-01-01"}), 0u);
    EXPECT_EQ(count({"nobody"}), 0u);
    const auto [csv_rc, csv] = cordon_cli(d, {"events", "--store", db.string(), "ft", "--csv", "--verdict", "deny"});
    EXPECT_EQ(csv_rc, 0);
    EXPECT_EQ(csv.rfind("time,agent,kind,hook,verdict,", 0), 0u) << csv;
    EXPECT_EQ(std::count(csv.begin(), csv.end(), '\n'), 3) << csv;
    const auto [bad_rc, bad] = cordon_cli(d, {"events", "--store", db.string(), "--dest", "10.0.0.0/99"});
    EXPECT_NE(bad_rc, 0) << "a malformed CIDR is refused";

    // The report: counts, top denials, the exec under its parent.
    const auto [rep_rc, rep] = cordon_cli(d, {"report", "ft", "--store", db.string(), "--json"});
    ASSERT_EQ(rep_rc, 0) << rep;
    const auto r = json::parse(rep);
    EXPECT_EQ(r["top_denied_paths"][0]["what"], f.secret.string());
    EXPECT_EQ(r["top_denied_destinations"][0]["what"], "10.1.2.3:9");
    ASSERT_EQ(r["processes"].size(), 1u);
    EXPECT_EQ(r["processes"][0]["cmd"], "true forensic-arg second arg");
    EXPECT_EQ(r["operator_actions"][0]["op"], "attach");

    // Tamper evidence: each kind of tampering on a copy, named by verify.
    const auto [ok_rc, ok] = cordon_cli(d, {"events", "verify", "--store", db.string()});
    EXPECT_EQ(ok_rc, 0) << ok;
    struct Case {
        const char* name;
        const char* statement;
        const char* word;
    };
    for (const Case& c : {
             Case{.name = "edited",
                  .statement = "UPDATE records SET verdict='allow' WHERE agent='ft' AND verdict='deny' AND hook='open'",
                  .word = "edit"},
             Case{.name = "deleted",
                  .statement = "DELETE FROM records WHERE agent='ft' AND seq=2",
                  .word = "delet"},
             Case{.name = "inserted",
                  .statement = "INSERT INTO records(time_ns,agent,seq,kind,hook,verdict,pid,ppid,uid,path,dest,port,json,prev,hash) "
                               "SELECT time_ns,agent,seq,kind,hook,'allow',pid,ppid,uid,'/innocent',dest,port,json,prev,hash "
                               "FROM records WHERE agent='ft' AND seq=2",
                  .word = "insert"},
         }) {
        const fs::path copy = d.dir() / (std::string(c.name) + ".db");
        sql(db, "VACUUM INTO '" + copy.string() + "'");
        sql(copy, c.statement);
        const auto [rc, out] = cordon_cli(d, {"events", "verify", "--store", copy.string()});
        EXPECT_EQ(rc, 1) << c.name << ": " << out;
        EXPECT_NE(out.find("agent ft"), std::string::npos) << c.name << ": " << out;
        EXPECT_NE(out.find(c.word), std::string::npos) << c.name << ": " << out;
    }
    fs::remove("EVENTS");
}

INSTANTIATE_TEST_SUITE_P(Backends, ForensicsTest,
                         ::testing::Values(CORDON_BACKEND_LSM, CORDON_BACKEND_FMOD_RET, CORDON_BACKEND_COMPAT),
                         [](const auto& i) { return std::string(bpf::backend_name(i.param)); });

/// A real, small filesystem of the test's own (a tmpfs under /tmp), unmounted and removed after.
struct Tmpfs {
    fs::path dir;
    bool ok = false;
    Tmpfs(const std::string& name, const char* options)
        : dir(fs::temp_directory_path() / (name + "-" + std::to_string(::getpid())))
    {
        fs::create_directories(dir);
        ok = ::mount("tmpfs", dir.c_str(), "tmpfs", 0, options) == 0;
    }
    ~Tmpfs()
    {
        ::umount2(dir.c_str(), MNT_DETACH);
        std::error_code ec;
        fs::remove_all(dir, ec);
    }
    Tmpfs(const Tmpfs&) = delete;
    Tmpfs& operator=(const Tmpfs&) = delete;
    bool mounted() const { return ok; }
};

/// n denied connects from one agent process; true when every one was refused with EPERM.
bool denied_connects(const agents::Cgroup& cg, int n, const char* addr = "10.1.2.3")
{
    const pid_t w = spawn_in(cg.path().string(), [&] {
        for (int i = 0; i < n; ++i)
            if (try_connect(addr) != EPERM)
                return 1;
        return 0;
    });
    return wait_exit(w) == exited(0);
}

TEST(ForensicsHostTest, TheJsonlFileRotatesBySizeAndKeepsTheNewestFiles)
{
    Files f;
    const fs::path dir = fs::temp_directory_path() / ("cordon-rot-" + std::to_string(::getpid()));
    fs::create_directories(dir);
    const fs::path file = dir / "ev.jsonl";
    Daemon d(host_backend(), {"--no-store", "--events-jsonl", file.string(), "--jsonl-max-size",
                              "16K", "--jsonl-files", "2"});
    auto cg = make_test_cgroup();
    ASSERT_TRUE(d.attach(cg.path(), forensic_policy(f.secret, "rot"), "rot", f.dir.string()).value("ok", false));
    ASSERT_TRUE(denied_connects(cg, 200));
    ASSERT_TRUE(stored_at_least(d, 201)) << store_status(d).dump();
    const auto s = store_status(d);
    EXPECT_GE(s["jsonl"]["rotations"].get<int>(), 2);
    EXPECT_EQ(s["jsonl"]["lost"], 0);
    EXPECT_FALSE(s.contains("sqlite"));
    for (const auto& p : {file, fs::path(file.string() + ".1"), fs::path(file.string() + ".2")}) {
        ASSERT_TRUE(fs::exists(p)) << p;
        EXPECT_LE(fs::file_size(p), 16u * 1024) << p;
        std::ifstream in(p);
        for (std::string l; std::getline(in, l);)
            EXPECT_FALSE(json::parse(l, nullptr, false).is_discarded()) << p << ": a line is not whole JSON";
    }
    EXPECT_FALSE(fs::exists(file.string() + ".3")) << "only --jsonl-files rotated files are kept";
    fs::remove_all(dir);
}

TEST(ForensicsHostTest, AFullFilesystemLosesRecordsCountablyNeverEnforcementAndStoringResumes)
{
    Files f;
    const Tmpfs fs_("cordon-full", "size=512k,mode=0700");
    ASSERT_TRUE(fs_.mounted()) << strerror(errno);
    const fs::path& dir = fs_.dir;
    const fs::path db = dir / "events.db";
    Daemon d(host_backend(), {"--store", db.string(), "--events-jsonl", (dir / "ev.jsonl").string()});
    auto cg = make_test_cgroup();
    ASSERT_TRUE(d.attach(cg.path(), forensic_policy(f.secret, "full"), "full", f.dir.string()).value("ok", false));
    // ~1 KB a record in each sink: 5,000 fill 512 KiB many times over.
    ASSERT_TRUE(denied_connects(cg, 5000)) << "enforcement must not depend on the disk";
    json s;
    for (int i = 0; i < 100; ++i) {
        s = store_status(d);
        if (s["sqlite"].value("lost", 0u) > 0 && s["jsonl"].value("lost", 0u) > 0 && s.value("lag_records", 1u) == 0)
            break;
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    EXPECT_GT(s["sqlite"]["lost"].get<std::uint64_t>(), 0u) << s.dump();
    EXPECT_GT(s["sqlite"]["write_errors"].get<std::uint64_t>(), 0u) << s.dump();
    EXPECT_NE(s["sqlite"]["last_error"].get<std::string>(), "") << s.dump();
    EXPECT_GT(s["jsonl"]["lost"].get<std::uint64_t>(), 0u) << s.dump();
    EXPECT_NE(s["jsonl"]["last_error"].get<std::string>().find("ENOSPC"), std::string::npos) << s.dump();
    // Every record is accounted for: stored or counted lost.
    const auto received = s["received"].get<std::uint64_t>();
    EXPECT_EQ(s["sqlite"]["stored"].get<std::uint64_t>() + s["sqlite"]["lost"].get<std::uint64_t>() +
                  s["queue_dropped"].get<std::uint64_t>(),
              received) << s.dump();
    EXPECT_EQ(try_open(f.secret), 0) << "the test itself is no agent";

    // The disk recovers: storing resumes, and a gap record says how many were lost.
    ASSERT_EQ(::mount(nullptr, dir.c_str(), nullptr, MS_REMOUNT, "size=64m,mode=0700"), 0) << strerror(errno);
    std::error_code ec;
    fs::remove(dir / "ev.jsonl", ec); // what an operator freeing space would do
    std::this_thread::sleep_for(std::chrono::milliseconds(1200)); // past the retry pause
    const auto before = s["sqlite"]["stored"].get<std::uint64_t>();
    ASSERT_TRUE(denied_connects(cg, 10));
    bool resumed = false;
    for (int i = 0; i < 100 && !resumed; ++i) {
        s = store_status(d);
        resumed = s["sqlite"]["stored"].get<std::uint64_t>() >= before + 10 && s["sqlite"]["last_error"] == "";
        if (!resumed)
            std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    EXPECT_TRUE(resumed) << s.dump();
    events::store::Filter gap;
    gap.kinds = {"gap"};
    const auto gaps = events::store::query(db, gap);
    ASSERT_GE(gaps.size(), 1u);
    EXPECT_NE(gaps.back().json.find("could not be stored"), std::string::npos) << gaps.back().json;
    const auto [rc, out] = run_cordon(d, {"events", "verify", "--store", db.string()});
    EXPECT_EQ(rc, 0) << "the chain goes on over the gap: " << out;
}

// A store on a read-only filesystem keeps cordond from nothing: it starts, guards, counts what it
// cannot store, and stores again (after a gap record) once the filesystem is writable.
TEST(ForensicsHostTest, AReadOnlyStoreNeverKeepsCordondFromStartingAndIsRetried)
{
    Files f;
    const Tmpfs fs_("cordon-ro", "size=16m,mode=0700");
    ASSERT_TRUE(fs_.mounted()) << strerror(errno);
    const fs::path& dir = fs_.dir;
    ASSERT_EQ(::mount(nullptr, dir.c_str(), nullptr, MS_REMOUNT | MS_RDONLY, "size=16m,mode=0700"), 0) << strerror(errno);
    const fs::path db = dir / "events.db";
    Daemon d(host_backend(), {"--store", db.string()});
    auto cg = make_test_cgroup();
    ASSERT_TRUE(d.attach(cg.path(), forensic_policy(f.secret, "ro"), "ro", f.dir.string()).value("ok", false))
        << "cordond guards with its store unwritable";
    ASSERT_TRUE(denied_connects(cg, 3));
    json s;
    for (int i = 0; i < 50; ++i) {
        s = store_status(d);
        if (s["sqlite"].value("lost", 0u) >= 4)
            break;
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    EXPECT_GE(s["sqlite"]["lost"].get<std::uint64_t>(), 4u) << "the attach and 3 denials: " << s.dump();
    EXPECT_NE(s["sqlite"]["last_error"].get<std::string>(), "") << s.dump();
    ASSERT_EQ(::mount(nullptr, dir.c_str(), nullptr, MS_REMOUNT, "size=16m,mode=0700"), 0) << strerror(errno);
    std::this_thread::sleep_for(std::chrono::milliseconds(1200)); // past the retry pause
    ASSERT_TRUE(denied_connects(cg, 3));
    for (int i = 0; i < 50; ++i) {
        s = store_status(d);
        if (s["sqlite"].value("stored", 0u) >= 3 && s["sqlite"]["last_error"] == "")
            break;
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    EXPECT_GE(s["sqlite"]["stored"].get<std::uint64_t>(), 3u) << s.dump();
    events::store::Filter gap;
    gap.kinds = {"gap"};
    const auto gaps = events::store::query(db, gap);
    ASSERT_EQ(gaps.size(), 1u);
    EXPECT_GE(json::parse(gaps[0].json)["unmapped"]["lost"].get<std::uint64_t>(), 4u) << gaps[0].json;
}

// The default ring buffer (64 MiB) holds a burst of 50,000 records of one agent while cordond
// does not read at all (SIGSTOP); once it reads again, the store takes every one (backpressure,
// no drops). One agent may hold about 53,000 (its share: bpf/effects.bpf.h).
TEST(ForensicsHostTest, ABurstOf50000RecordsWaitsInTheRingBufferAndIsStoredWhole)
{
    Files f;
    Daemon d(host_backend());
    auto cg = make_test_cgroup();
    ASSERT_TRUE(d.attach(cg.path(), forensic_policy(f.secret, "burst"), "burst", f.dir.string()).value("ok", false));
    ASSERT_EQ(::kill(d.pid(), SIGSTOP), 0);
    const bool denied = denied_connects(cg, 50000);
    ASSERT_EQ(::kill(d.pid(), SIGCONT), 0);
    ASSERT_TRUE(denied);
    json st;
    for (int i = 0; i < 600; ++i) {
        st = d.call(R"({"v":1,"op":"status"})");
        if (st["store"]["sqlite"].value("stored", 0u) >= 50001)
            break;
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    EXPECT_EQ(st["lost_events"], 0) << "the kernel dropped records: " << st.dump();
    EXPECT_EQ(st["store"]["queue_dropped"], 0) << st.dump();
    EXPECT_EQ(st["store"]["sqlite"]["lost"], 0) << st.dump();
    EXPECT_EQ(st["store"]["sqlite"]["stored"], 50001) << "the attach and 50,000 denials: " << st.dump();
}

// What the kernel had no room for is not only a counter: it is a gap on the flooding agent's own
// chain, so its report shows how many of its records are missing.
TEST(ForensicsHostTest, RecordsTheKernelDroppedAreAGapOnTheAgentsOwnChain)
{
    Files f;
    Daemon d(host_backend(), {"--ringbuf-size", "4M"});
    auto cg = make_test_cgroup();
    ASSERT_TRUE(d.attach(cg.path(), forensic_policy(f.secret, "flood"), "flood", f.dir.string()).value("ok", false));
    ASSERT_EQ(::kill(d.pid(), SIGSTOP), 0);
    // A 4 MiB buffer holds about 11,900 records: 30,000 overflow it.
    const bool denied = denied_connects(cg, 30000);
    ASSERT_EQ(::kill(d.pid(), SIGCONT), 0);
    ASSERT_TRUE(denied);
    const fs::path db = d.dir() / "events.db";
    std::vector<events::store::Row> gaps;
    std::uint64_t lost = 0;
    for (int i = 0; i < 100 && gaps.empty(); ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        const auto agents = d.call(R"({"v":1,"op":"agents"})")["agents"];
        lost = agents.at(0).value("events_lost", std::uint64_t{0});
        events::store::Filter g;
        g.kinds = {"gap"};
        g.agent = "flood";
        gaps = events::store::query(db, g);
    }
    EXPECT_GT(lost, 0u);
    ASSERT_EQ(gaps.size(), 1u);
    const auto j = json::parse(gaps[0].json);
    EXPECT_EQ(j["unmapped"]["lost"].get<std::uint64_t>(), lost) << gaps[0].json;
    const auto [rc, out] = run_cordon(d, {"report", "flood", "--store", db.string()});
    EXPECT_EQ(rc, 0) << out;
    // Alone, the agent is held to its share of the buffer before the buffer fills.
    EXPECT_NE(out.find(std::to_string(lost) + " (over its share of the kernel's event buffer"),
              std::string::npos) << out;
}

/// Processes in cg making denied connects as fast as they can for `seconds`.
std::vector<pid_t> flood(const agents::Cgroup& cg, int procs, double seconds)
{
    std::vector<pid_t> out;
    for (int i = 0; i < procs; ++i)
        out.push_back(spawn_in(cg.path().string(), [seconds] {
            const auto end = std::chrono::steady_clock::now() +
                             std::chrono::duration<double>(seconds);
            while (std::chrono::steady_clock::now() < end)
                for (int k = 0; k < 256; ++k)
                    if (try_connect("10.1.2.3") != EPERM)
                        return 1;
            return 0;
        }));
    return out;
}

/// One number from the store, read-only while cordond writes (indexed: a flood stores millions).
std::uint64_t sql_number(const fs::path& db, const std::string& query)
{
    sqlite3* h = nullptr;
    std::uint64_t n = 0;
    if (sqlite3_open_v2(db.c_str(), &h, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK) {
        sqlite3_busy_timeout(h, 5000);
        sqlite3_stmt* st = nullptr;
        if (sqlite3_prepare_v2(h, query.c_str(), -1, &st, nullptr) == SQLITE_OK &&
            sqlite3_step(st) == SQLITE_ROW)
            n = static_cast<std::uint64_t>(sqlite3_column_int64(st, 0));
        sqlite3_finalize(st);
    }
    sqlite3_close(h);
    return n;
}

std::uint64_t count(const fs::path& db, const std::string& agent, const std::string& where)
{
    return sql_number(db, "SELECT count(*) FROM records WHERE agent = '" + agent + "' AND " + where);
}

/// Sum of the gap records on `agent`'s chain whose reason contains `why` ("" any).
std::uint64_t gap_total(const fs::path& db, const std::string& agent, const std::string& why = "")
{
    return sql_number(db, "SELECT coalesce(sum(json_extract(json, '$.unmapped.lost')), 0) FROM "
                          "records WHERE agent = '" + agent + "' AND kind = 'gap' AND "
                          "instr(json_extract(json, '$.unmapped.reason'), '" + why + "') > 0");
}

std::string quiet_policy(const Files& f, const fs::path& doom)
{
    return "apiVersion: cordon.dev/v1\nkind: AgentPolicy\nmetadata:\n  name: quiet\nspec:\n"
           "  exec: {default: allow}\n  files:\n    default: allow\n    rules:\n"
           "      - {path: " + f.secret.string() + ", access: read, action: deny}\n"
           "      - {path: " + doom.string() + ", access: read, action: kill}\n"
           "  network: {default: allow, rules: []}\n";
}

// Issue 27: one agent floods denied connects at full speed (far more than the store takes)
// while another makes 10,000 denied opens and then trips a kill rule, and the operator kills
// the flooder mid-flood. Every one of the quiet agent's records, its kill record and the
// operator's record are stored; the flooder's losses are a gap on its own chain, as many as the
// kernel counted, with the reason.
TEST(ForensicsHostTest, AFloodingAgentLosesOnlyItsOwnRecords)
{
    Files f;
    const fs::path doom = f.dir / "doom";
    std::ofstream(doom) << "x";
    // Retention is not what this test is about: a flood on a slow machine passes 1 GB.
    Daemon d(host_backend(), {"--store-max-size", "16G"});
    auto loud = make_test_cgroup();
    auto quiet = make_test_cgroup();
    ASSERT_TRUE(d.attach(loud.path(), forensic_policy(f.secret, "loud"), "loud", f.dir.string()).value("ok", false));
    const auto attached = d.attach(quiet.path(), quiet_policy(f, doom), "quiet", f.dir.string());
    ASSERT_TRUE(attached.value("ok", false)) << attached.dump();
    const auto flooders = flood(loud, 2, 120); // until the operator kills the agent
    // The flood outruns the store until the flooder is held to its share.
    json st;
    for (int i = 0; i < 400; ++i) {
        st = d.call(R"({"v":1,"op":"status"})");
        if (st.value("shed_events", std::uint64_t{0}) > 0)
            break;
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    EXPECT_GT(st.value("shed_events", std::uint64_t{0}), 0u)
        << "the flood never went over its share: nothing was tested " << st.dump();
    // Each open in a process of its own: compat refuses it with SIGKILL, lsm with EPERM.
    const pid_t q = spawn_in(quiet.path().string(), [&] {
        for (int i = 0; i < 10000; ++i) {
            const pid_t c = ::fork();
            if (c == 0)
                ::_exit(try_open(f.secret));
            if (c < 0 || !refused(wait_exit(c)))
                return 1;
        }
        (void)try_open(doom); // killed here
        return 2;
    });
    const Exit qe = wait_exit(q);
    ASSERT_TRUE(d.call(R"({"v":1,"op":"kill","name":"loud"})").value("ok", false));
    for (pid_t p : flooders)
        wait_exit(p);
    EXPECT_EQ(qe, killed_by(SIGKILL)) << "the quiet agent's kill rule";

    // Until the store has caught up with everything the kernel took, and cordond has noted the
    // flooder's last losses (once a second): minutes behind a flood on a loaded machine. Each
    // count below scans the flooder's rows, so it is made once, at the end.
    const fs::path db = d.dir() / "events.db";
    std::uint64_t lost = 0, settled = 0;
    for (int i = 0; i < 600 && settled < 3; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(500));
        st = d.call(R"({"v":1,"op":"status"})");
        const auto& store = st["store"];
        const bool idle = store.value("lag_records", 1u) == 0 &&
                          store["sqlite"].value("stored", 0u) + store.value("queue_dropped", 0u) >=
                              store.value("received", 0u);
        const auto agents = d.call(R"({"v":1,"op":"agents"})");
        std::uint64_t now = 0;
        for (const auto& a : agents["agents"])
            if (a.value("name", "") == "loud")
                now = a.value("events_lost", std::uint64_t{0});
        settled = idle && now == lost ? settled + 1 : 0;
        lost = now;
    }
    EXPECT_EQ(settled, 3u) << "the store never caught up: " << st.dump();
    EXPECT_EQ(count(db, "quiet", "kind = 'decision' AND verdict = 'deny'"), 10000u)
        << "the quiet agent lost records to another agent's flood: " << st.dump();
    EXPECT_EQ(count(db, "quiet", "verdict = 'kill'"), 1u);
    EXPECT_EQ(count(db, "loud", "kind = 'action' AND hook = 'kill'"), 1u);
    EXPECT_EQ(gap_total(db, "quiet"), 0u);
    // The flooder's loss, on its own chain, as the kernel counted it.
    const auto gaps = gap_total(db, "loud");
    EXPECT_GT(lost, 0u);
    EXPECT_EQ(gaps, lost);
    EXPECT_GT(gap_total(db, "loud", "over its share"), 0u);
    const auto v = events::store::verify(db);
    EXPECT_TRUE(v.ok) << v.agent << " " << v.reason;
}

/// Every JSONL line in `dir` (events.jsonl, its rotated files and FILE.kept*), with its file.
std::vector<std::pair<std::string, json>> all_jsonl(const fs::path& dir)
{
    std::vector<std::pair<std::string, json>> out;
    for (const auto& e : fs::directory_iterator(dir)) {
        const auto name = e.path().filename().string();
        if (name.rfind("events.jsonl", 0) != 0)
            continue;
        std::ifstream in(e.path());
        for (std::string l; std::getline(in, l);)
            out.emplace_back(name, json::parse(l));
    }
    return out;
}

/// Waits until the store has written all it received and no more agent losses come in.
json settled_status(const Daemon& d)
{
    json st;
    int settled = 0;
    std::uint64_t last = ~0ull;
    for (int i = 0; i < 600 && settled < 3; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(500));
        st = d.call(R"({"v":1,"op":"status"})");
        const auto& store = st["store"];
        const auto written = store["sqlite"].value("stored", 0u) + store.value("queue_dropped", 0u);
        const bool idle = store.value("lag_records", 1u) == 0 && written >= store.value("received", 0u) &&
                          store["jsonl"].value("written", 0u) >= store.value("received", 0u);
        settled = idle && written == last ? settled + 1 : 0;
        last = written;
    }
    EXPECT_EQ(settled, 3) << "the store never caught up: " << st.dump();
    return st;
}

// Issue 27, the hostile review's flood against both sinks: an attached agent reads a secret
// (denied), then makes 80,000 denied connects through a 3 MB store and 1 MB JSONL files
// (before: the attach and secret-read records were cut out of SQLite, the JSONL file rotated
// 116 times leaving no record of either agent, and the store reached 26 MB). Another agent's
// 200 denied opens meanwhile. Now both sinks keep the attach and the secret read, every record
// of the other agent, and the store stays within its limit and margin.
TEST(ForensicsHostTest, TheReviewsFloodErasesNeitherTheOperatorsRecordsNorAnotherAgentsInEitherSink)
{
    Files f;
    const fs::path doom = f.dir / "doom";
    std::ofstream(doom) << "x";
    constexpr std::uint64_t kMax = 3 << 20;
    const fs::path jdir = fs::temp_directory_path() / ("cordon-review-flood-" + std::to_string(::getpid()));
    fs::remove_all(jdir);
    fs::create_directories(jdir);
    struct Cleanup {
        fs::path p;
        ~Cleanup() { std::error_code ec; fs::remove_all(p, ec); }
    } cleanup{jdir};
    Daemon d(host_backend(), {"--store-max-size", "3M", "--events-jsonl", (jdir / "events.jsonl").string(),
                              "--jsonl-max-size", "1M", "--jsonl-files", "2"});
    auto loud = make_test_cgroup();
    auto quiet = make_test_cgroup();
    ASSERT_TRUE(d.attach(loud.path(), forensic_policy(f.secret, "loud"), "loud", f.dir.string()).value("ok", false));
    ASSERT_TRUE(d.attach(quiet.path(), quiet_policy(f, doom), "quiet", f.dir.string()).value("ok", false));
    const pid_t flooder = spawn_in(loud.path().string(), [&] {
        const pid_t c = ::fork(); // compat refuses the read with SIGKILL, lsm with EPERM
        if (c == 0)
            ::_exit(try_open(f.secret));
        if (c < 0 || !refused(wait_exit(c)))
            return 1;
        for (int i = 0; i < 80'000; ++i)
            if (try_connect("10.1.2.3") != EPERM)
                return 2;
        return 0;
    });
    const pid_t q = spawn_in(quiet.path().string(), [&] {
        for (int i = 0; i < 200; ++i) {
            const pid_t c = ::fork();
            if (c == 0)
                ::_exit(try_open(f.secret));
            if (c < 0 || !refused(wait_exit(c)))
                return 1;
        }
        return 0;
    });
    // The store's size on disk (database and WAL), sampled while the flood goes on.
    const fs::path db = d.dir() / "events.db";
    std::uint64_t peak = 0, peak_db = 0, peak_wal = 0;
    auto sample = [&] {
        std::error_code ec, ec2;
        const std::uint64_t a = fs::file_size(db, ec), b = fs::file_size(db.string() + "-wal", ec2);
        peak_db = std::max(peak_db, ec ? 0 : a);
        peak_wal = std::max(peak_wal, ec2 ? 0 : b);
        peak = std::max(peak, (ec ? 0 : a) + (ec2 ? 0 : b));
    };
    int status = 0;
    while (::waitpid(flooder, &status, WNOHANG) == 0) {
        sample();
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "the flooder's accesses: " << status;
    ASSERT_EQ(wait_exit(q), exited(0)) << "the quiet agent's opens were not refused";
    const auto st = settled_status(d);
    sample();

    EXPECT_EQ(count(db, "loud", "kind = 'action' AND hook = 'attach'"), 1u) << "the operator's attach record";
    EXPECT_EQ(count(db, "loud", "kind = 'decision' AND path = '" + f.secret.string() + "'"), 1u)
        << "the flooder's secret read";
    EXPECT_EQ(count(db, "quiet", "kind = 'decision' AND verdict = 'deny'"), 200u) << st.dump();
    EXPECT_EQ(count(db, "quiet", "kind = 'action' AND hook = 'attach'"), 1u);
    EXPECT_LT(count(db, "loud", "hook = 'connect4'"), 10'000u) << "retention did not run";
    EXPECT_GT(st["store"]["sqlite"].value("pruned", 0u), 0u);
    // The limit, within the margin docs/forensics.md states: half again, for the WAL (an
    // eighth, a batch, and the pages of one retention pass until its checkpoint).
    EXPECT_LE(peak, kMax + kMax / 2) << "database and WAL, at their largest";
    std::cout << "store on disk at its largest: " << peak << " bytes (limit " << kMax << ") db " << peak_db << " wal " << peak_wal << "\n";
    const auto v = events::store::verify(db);
    EXPECT_TRUE(v.ok) << v.agent << " " << v.seq << " " << v.reason;

    std::map<std::string, int> quiet_denied, attach, secret;
    std::uint64_t bytes = 0;
    for (const auto& e : fs::directory_iterator(jdir))
        bytes += e.file_size();
    for (const auto& [file, j] : all_jsonl(jdir)) {
        const auto& u = j.value("unmapped", json::object());
        // Decisions name the agent "agent", operator actions as the request did ("name").
        const auto agent = u.value("agent", u.value("name", std::string()));
        const std::string path = j.contains("file") ? j["file"].value("path", "") : "";
        if (agent == "quiet" && path == f.secret.string())
            ++quiet_denied[file];
        if (agent == "loud" && u.value("op", "") == "attach")
            ++attach[file];
        if (agent == "loud" && path == f.secret.string())
            ++secret[file];
    }
    int quiet_total = 0;
    for (const auto& [file, n] : quiet_denied)
        quiet_total += n;
    EXPECT_EQ(quiet_total, 200) << "each of the quiet agent's denials, once";
    EXPECT_EQ(attach.size(), 1u) << "the attach record, once";
    EXPECT_EQ(secret.size(), 1u) << "the secret read, once";
    EXPECT_GT(st["store"]["jsonl"].value("rotations", 0u), 10u) << st.dump();
    // FILE, FILE.1, FILE.2, FILE.kept, FILE.carried and one older generation of each: 1 MB
    // each at most.
    EXPECT_LE(bytes, 7u << 20);
}

// cordond SIGKILLed while an agent floods, and started again on the same pins: what the kernel
// counted as lost while no cordond read the buffer becomes a gap on the agent's chain.
TEST(ForensicsHostTest, LossesWhileCordondWasDownAreAGapWhenItIsBack)
{
    Files f;
    auto cg = make_test_cgroup();
    Daemon d(host_backend(), {"--ringbuf-size", "4M"});
    const fs::path db = d.dir() / "events.db";
    ASSERT_TRUE(d.attach(cg.path(), forensic_policy(f.secret, "down"), "down", f.dir.string()).value("ok", false));
    ASSERT_TRUE(denied_connects(cg, 100));
    ASSERT_TRUE(stored_at_least(d, 101));
    const auto lost_at_kill =
        d.call(R"({"v":1,"op":"agents"})")["agents"].at(0).value("events_lost", std::uint64_t{0});
    d.kill9(); // no shutdown: the pins stay, the buffer is not read
    // A 4 MiB buffer holds about 11,400 records, of which one agent may have a third.
    ASSERT_TRUE(denied_connects(cg, 30000));
    d.start();
    std::uint64_t lost_after = 0;
    for (int i = 0; i < 200; ++i) {
        const auto agents = d.call(R"({"v":1,"op":"agents"})")["agents"];
        lost_after = agents.empty() ? 0 : agents.at(0).value("events_lost", std::uint64_t{0});
        if (gap_total(db, "down", "no cordond read") > 0)
            break;
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    EXPECT_GT(lost_after, lost_at_kill + 10000) << "the buffer never overflowed while cordond was down";
    EXPECT_EQ(gap_total(db, "down", "no cordond read"), lost_after - lost_at_kill);
    EXPECT_EQ(gap_total(db, "down"), lost_after);
}

/// Output of a shell command (stdout), or "" when it cannot run.
std::string command_output(const std::string& cmd)
{
    std::string out;
    if (FILE* p = ::popen(cmd.c_str(), "r")) {
        char buf[4096];
        while (const auto n = std::fread(buf, 1, sizeof(buf), p))
            out.append(buf, n);
        ::pclose(p);
    }
    return out;
}

/// A systemd-journald of the test's own: a journal namespace (its socket and files apart from
/// the system journal's), stopped and removed at the end.
struct JournalNamespace {
    std::string name = "cordon-kt-" + std::to_string(::getpid());
    fs::path socket = fs::path("/run/systemd") / ("journal." + name) / "socket";
    pid_t pid = -1;
    JournalNamespace()
    {
        pid = ::fork();
        if (pid == 0) {
            const int null = ::open("/dev/null", O_WRONLY);
            ::dup2(null, 1);
            ::dup2(null, 2);
            ::execl("/lib/systemd/systemd-journald", "systemd-journald", name.c_str(), nullptr);
            ::_exit(127);
        }
        for (int i = 0; i < 100 && !fs::exists(socket); ++i)
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    void stop()
    {
        if (pid > 0) {
            ::kill(pid, SIGTERM);
            ::waitpid(pid, nullptr, 0);
            pid = -1;
        }
    }
    ~JournalNamespace()
    {
        stop();
        std::error_code ec;
        fs::remove_all(socket.parent_path(), ec);
        std::string id;
        std::ifstream("/etc/machine-id") >> id;
        for (const char* root : {"/var/log/journal", "/run/log/journal"})
            if (!id.empty())
                fs::remove_all(fs::path(root) / (id + "." + name), ec);
    }
};

/// The store status once its journal counter `what` reached n (or after 5 s).
json journal_until(const Daemon& d, const char* what, unsigned n)
{
    json st;
    for (int i = 0; i < 100; ++i) {
        st = store_status(d);
        if (st["journal"].value(what, 0u) >= n)
            break;
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return st;
}

// The journal sink (--events-journal): a real systemd-journald (a journal namespace the test
// starts) takes each record as one structured entry, which journalctl reads back by field; a
// journald that went away loses records countably, never the daemon's work.
TEST(ForensicsHostTest, TheJournalSinkSendsStructuredRecordsAJournalReadsBack)
{
    JournalNamespace journal;
    ASSERT_TRUE(fs::exists(journal.socket))
        << "systemd-journald did not start (scripts/bootstrap.sh installs systemd)";
    Files f;
    Daemon d(host_backend(), {"--no-store", "--events-journal", "--journal-socket", journal.socket.string()});
    auto cg = make_test_cgroup();
    ASSERT_TRUE(d.attach(cg.path(), forensic_policy(f.secret, "jt"), "jt", f.dir.string()).value("ok", false));
    agent_work(cg, f);
    json st = journal_until(d, "written", 4);
    ASSERT_GE(st["journal"].value("written", 0u), 4u) << st.dump();
    EXPECT_EQ(st["journal"]["lost"], 0) << st.dump();
    std::vector<json> entries;
    for (int i = 0; i < 50 && entries.size() < 4; ++i) {
        entries = json_lines(command_output("journalctl --namespace=" + journal.name +
                                            " -o json --no-pager CORDON_AGENT=jt 2>/dev/null"));
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    bool open_seen = false, attach_seen = false, exec_seen = false;
    for (const auto& e : entries) {
        EXPECT_EQ(e["SYSLOG_IDENTIFIER"], "cordond");
        const auto record = json::parse(e.value("CORDON_RECORD", "{}"));
        EXPECT_EQ(record["unmapped"].value(e["CORDON_KIND"] == "action" ? "name" : "agent", ""), "jt")
            << e.dump();
        if (e["CORDON_HOOK"] == "open") {
            open_seen = true;
            EXPECT_EQ(e["CORDON_VERDICT"], "deny");
            EXPECT_EQ(e["CORDON_PATH"], f.secret.string());
            EXPECT_EQ(e["PRIORITY"], "4");
            EXPECT_EQ(record["file"]["path"], f.secret.string());
        } else if (e["CORDON_KIND"] == "action" && e["CORDON_HOOK"] == "attach") {
            attach_seen = true;
        } else if (e["CORDON_KIND"] == "process") {
            exec_seen = true;
            EXPECT_EQ(record["unmapped"]["exec_name"], "/bin/true");
        }
    }
    EXPECT_TRUE(open_seen && attach_seen && exec_seen) << entries.size() << " entries";

    journal.stop(); // gone: records are counted lost, cordond goes on
    ASSERT_TRUE(denied_connects(cg, 3));
    st = journal_until(d, "lost", 3);
    EXPECT_GE(st["journal"].value("lost", 0u), 3u) << st.dump();
    EXPECT_NE(st["journal"].value("last_error", "").find(journal.socket.string()), std::string::npos) << st.dump();
}

TEST(ForensicsHostTest, PrometheusMetricsCountDecisionsAndTheStore)
{
    Files f;
    const int port = 20000 + ::getpid() % 20000;
    Daemon d(host_backend(), {"--metrics-listen", "127.0.0.1:" + std::to_string(port)});
    auto cg = make_test_cgroup();
    ASSERT_TRUE(d.attach(cg.path(), forensic_policy(f.secret, "met"), "met", f.dir.string()).value("ok", false));
    ASSERT_TRUE(denied_connects(cg, 3));
    ASSERT_TRUE(stored_at_least(d, 4));
    std::string m;
    for (int i = 0; i < 50; ++i) { // published once a second
        m = http_metrics(port);
        if (m.find(R"(cordon_decisions_total{agent="met",hook="connect4",verdict="deny"} 3)") != std::string::npos &&
            m.find(R"(cordon_store_records_total{sink="sqlite"} 4)") != std::string::npos)
            break;
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    EXPECT_NE(m.find(R"(cordon_decisions_total{agent="met",hook="connect4",verdict="deny"} 3)"), std::string::npos) << m;
    EXPECT_NE(m.find(R"(cordon_store_records_total{sink="sqlite"} 4)"), std::string::npos) << m;
    EXPECT_NE(m.find("# TYPE cordon_lost_events_total counter\ncordon_lost_events_total 0\n"), std::string::npos) << m;
    EXPECT_NE(m.find(R"(cordon_agent_score{agent="met"} )"), std::string::npos) << m;
    EXPECT_NE(m.find(R"(cordon_store_lost_total{sink="sqlite",cause="write"} 0)"), std::string::npos) << m;
}

TEST(ForensicsHostTest, TraceShowsOnlyTheVerdictsAndHooksAskedFor)
{
    Files f;
    Daemon d(host_backend());
    auto cg = make_test_cgroup();
    ASSERT_TRUE(d.attach(cg.path(), forensic_policy(f.secret, "tr"), "tr", f.dir.string()).value("ok", false));
    int out[2];
    ASSERT_EQ(::pipe(out), 0);
    const pid_t tracer = ::fork();
    if (tracer == 0) {
        ::dup2(out[1], 1);
        ::close(out[0]);
        ::close(out[1]);
        ::setenv("CORDON_SOCKET", d.socket().c_str(), 1);
        ::execl(CORDON_BINARY, "cordon", "trace", "tr", "--verdict", "deny", "--hook", "net", "--json", nullptr);
        ::_exit(127);
    }
    ::close(out[1]);
    std::this_thread::sleep_for(std::chrono::milliseconds(500)); // subscribed
    agent_work(cg, f);                                             // open deny, exec, connect deny
    ASSERT_TRUE(denied_connects(cg, 1, "10.9.9.9"));               // the last one
    std::string text;
    std::vector<json> lines;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(15);
    while (std::chrono::steady_clock::now() < deadline &&
           text.find("10.9.9.9") == std::string::npos) {
        pollfd p{.fd = out[0], .events = POLLIN, .revents = 0};
        if (::poll(&p, 1, 200) == 1) {
            char buf[4096];
            const auto n = ::read(out[0], buf, sizeof(buf));
            if (n <= 0)
                break;
            text.append(buf, static_cast<std::size_t>(n));
        }
    }
    ::kill(tracer, SIGTERM);
    ::waitpid(tracer, nullptr, 0);
    ::close(out[0]);
    lines = json_lines(text);
    ASSERT_EQ(lines.size(), 2u) << text;
    for (const auto& l : lines) {
        EXPECT_EQ(l["unmapped"]["verdict"], "deny") << l.dump();
        EXPECT_EQ(l["unmapped"]["hook"], "connect4") << l.dump();
    }
    EXPECT_EQ(lines[0]["dst_endpoint"]["ip"], "10.1.2.3");
    EXPECT_EQ(lines[1]["dst_endpoint"]["ip"], "10.9.9.9");
}

} // namespace
} // namespace cordon::testing
