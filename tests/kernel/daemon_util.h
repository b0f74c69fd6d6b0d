// SPDX-License-Identifier: Apache-2.0
// The real cordond, started by the tests on a socket, registry and pin directory of their own,
// and a client of its API. No mocks: the daemon loads, pins and enforces for real.
#pragma once

#include <sys/mman.h>
#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include <cordon/abi.h>

#include "api/client.h"
#include "common/error.h"
#include "bpf/guard.h"

#include "kernel_test_util.h"

namespace cordon::testing {

/// Denies reads of one file, allows everything else.
std::string deny_policy(const std::filesystem::path& denied, const std::string& name = "kt");

/// 0: opened; else the errno of the refused open.
int try_open(const std::filesystem::path& p);

/// Reads exactly n bytes from fd if they arrive within `timeout`; false otherwise (and on EOF).
/// For reports of a process that a freeze may stop before it writes.
bool read_within(int fd, void* buf, std::size_t n, int timeout_ms);

/// Refused as the backend refuses: EPERM (lsm), or SIGKILL (compat's file and exec denials).
bool refused(const Exit& e);

/// A directory of this test process with a file to deny (secret) and one to allow (open).
struct Files {
    std::filesystem::path dir, secret, open;
    Files();
    ~Files();
    Files(const Files&) = delete;
    Files& operator=(const Files&) = delete;
};

class Daemon {
public:
    /// Starts cordond with `backend` and waits until it answers (a first start loads programs,
    /// which takes seconds under the VM tier's emulated CPU).
    explicit Daemon(cordon_backend backend, std::vector<std::string> extra_args = {});
    /// Stops it and runs `cordon teardown` on its pins, so nothing is left behind.
    ~Daemon();
    Daemon(const Daemon&) = delete;
    Daemon& operator=(const Daemon&) = delete;

    /// SIGKILLs the daemon (no clean-up of its own); the pins stay.
    void kill9();
    /// Starts it again on the same paths; it adopts what is pinned.
    void start();
    /// SIGTERM, and waits.
    void stop();
    /// `cordon teardown` on this daemon's paths (the daemon must be stopped); its exit status.
    int teardown();

    /// A new connection; throws when the daemon does not answer.
    api::Client connect() const;
    /// One request; returns the whole reply (ok or not).
    nlohmann::json call(const std::string& line) const;
    /// Attaches `cgroup` (or a template: PARENT/PATTERN) with policy text; returns the reply (ok
    /// or not). wait: the path need not exist yet.
    nlohmann::json attach(const std::filesystem::path& cgroup, const std::string& policy_yaml,
                          const std::string& name, const std::string& workspace,
                          bool wait = false) const;
    /// The directory of kept attachments (--attachments), which a reboot does not clear.
    std::filesystem::path attachments() const { return dir_ / "attachments"; }
    /// As after a reboot: the daemon stopped, its pins and its registry (/run) gone; the kept
    /// attachments stay. start() then starts it afresh.
    void reboot();
    nlohmann::json detach(const std::string& name) const;

    /// The pinned program set, adopted by the test (maps only: it reads no events).
    bpf::Guard& pinned();

    const std::filesystem::path& socket() const { return socket_; }
    const std::filesystem::path& pin_dir() const { return pin_dir_; }
    const std::filesystem::path& registry() const { return registry_; }
    pid_t pid() const { return pid_; }
    /// The daemon's own directory (socket, actions log, event store events.db).
    const std::filesystem::path& dir() const { return dir_; }
    /// What the daemon wrote on stderr so far.
    std::string log() const;

private:
    void wait_ready();
    cordon_backend backend_;
    std::filesystem::path dir_, socket_, registry_, pin_dir_;
    std::vector<std::string> extra_args_;
    pid_t pid_ = -1;
    std::unique_ptr<bpf::Guard> pinned_;
};

/// cordon's own fields of an event record (the OCSF object of docs/forensics.md): hook,
/// verdict, rule, rule_id, task, backend, cgroup_id, tiers...
inline const nlohmann::json& cordon_fields(const nlohmann::json& record)
{
    return record.at("unmapped");
}
/// The path a record names: file.path, or process.file.path for exec decisions and traces.
inline std::string path_of(const nlohmann::json& record)
{
    if (record.contains("file"))
        return record["file"].value("path", "");
    if (record.contains("process") && record["process"].contains("file"))
        return record["process"]["file"].value("path", "");
    return "";
}

/// One subscription to an agent's events; barrier() returns every event the daemon read before.
class Subscription {
public:
    Subscription(const Daemon& d, const std::string& agent);
    /// Events up to now: a ping on this connection is answered only after the daemon drained
    /// the ring buffer, so every event of an access that already returned comes before it.
    std::vector<nlohmann::json> barrier();

private:
    api::Client client_;
};

/// Polls `agents` until pred holds for its list, for up to 30 s (the daemon reconciles each
/// second).
bool agents_until(const Daemon& d, const std::function<bool(const nlohmann::json&)>& pred);

/// The backend for tests of what is userspace's alone (the store, the metrics endpoint, the
/// control socket): compat where the kernel runs it, else lsm.
cordon_backend host_backend();

/// An API request line's object: {"v":1,"op":op,"name":name} with `extra`'s fields.
nlohmann::json request(const std::string& op, const std::string& name,
                       nlohmann::json extra = nlohmann::json::object());
/// One request that must succeed; throws cordon::Error with the reply otherwise.
nlohmann::json call_ok(const Daemon& d, const nlohmann::json& req);
/// Polls cond every 20 ms until it holds or `limit` passes; its last value.
bool eventually(const std::function<bool()>& cond,
                std::chrono::milliseconds limit = std::chrono::seconds(30));
/// A new connection to the Unix socket at `path`: its descriptor, or -1 with errno set.
int connect_unix(const std::string& path);
/// Memory shared with the processes a test forks (they write, the test reads).
template <typename T> T* shared_memory()
{
    void* p = ::mmap(nullptr, sizeof(T), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        throw Error("mmap failed");
    return new (p) T();
}
/// GET http://127.0.0.1:port/metrics; the body, or "" when nothing answers.
std::string http_metrics(int port);

/// cordon's own binary, run with CORDON_SOCKET set to the daemon's; returns (exit status, stdout).
std::pair<int, std::string> run_cordon(const Daemon& d, const std::vector<std::string>& args);

} // namespace cordon::testing
