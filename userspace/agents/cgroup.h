// SPDX-License-Identifier: Apache-2.0
// cgroup v2 discovery and cordon's own subtree. An agent is the cgroup subtree
// <cgroup2 root>/cordon/<agent>; cordon creates and removes cgroups only below <root>/cordon and
// never touches any other cgroup or any process it did not start.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>
#include <string_view>

namespace cordon::agents {

/// Where the cgroup2 hierarchy is mounted, as read from /proc/self/mountinfo.
struct Cgroup2Mount {
    std::filesystem::path mount_point; ///< e.g. /sys/fs/cgroup or /sys/fs/cgroup/unified
    std::uint32_t root_level = 0;      ///< cgroup level of the mount's root (0 outside cgroupns)
};

/// Finds the cgroup2 mount in mountinfo text (the format of /proc/self/mountinfo). Pure, so unit
/// tests feed it the texts of unified and hybrid hosts.
std::optional<Cgroup2Mount> find_cgroup2_mount(std::string_view mountinfo);

/// Reads /proc/self/mountinfo; throws Error naming the fix when there is no cgroup2 mount.
Cgroup2Mount cgroup2_mount();

/// Name of cordon's subtree below the cgroup2 root.
inline constexpr std::string_view kSubtree = "cordon";

/// The cgroup id (what bpf_get_current_cgroup_id() returns) of a cgroup2 directory.
std::uint64_t cgroup_id(const std::filesystem::path& dir);

/// The kernel's cgroup level of a directory of the mount (its root is mount.root_level).
std::uint32_t cgroup_level(const Cgroup2Mount& mount, const std::filesystem::path& dir);

/// Whether any process lives in the cgroup subtree (cgroup.events "populated"); false when gone.
bool cgroup_populated(const std::filesystem::path& dir);

/// Whether cgroup directory `inner` is `outer` or lies below it (compared component by component,
/// so /a/bc is not below /a/b).
bool cgroup_within(const std::filesystem::path& inner, const std::filesystem::path& outer);

/// SIGKILLs every process of a cgroup subtree through its cgroup.kill (5.14+).
void kill_cgroup(const std::filesystem::path& dir);

/// Freezes (true) or thaws a cgroup subtree through its cgroup.freeze. Freezing completes
/// asynchronously: cgroup_frozen() says when every process has stopped.
void freeze_cgroup(const std::filesystem::path& dir, bool frozen);
/// Whether cgroup.freeze holds 1 (a freeze was asked for; it may still be completing).
bool cgroup_freeze_requested(const std::filesystem::path& dir);
/// Whether the whole subtree is frozen (cgroup.events "frozen 1"); false when gone.
bool cgroup_frozen(const std::filesystem::path& dir);

/// The cgroup2 directory a process lives in (from /proc/PID/cgroup), or nothing when it is gone.
std::optional<std::filesystem::path> process_cgroup(const Cgroup2Mount& mount, int pid);
/// The cgroup of each live thread of process `pid`, and of its leader (which may be a zombie
/// in another cgroup than its threads): where a process's requests may come from. Empty when it
/// is gone.
std::vector<std::filesystem::path> thread_cgroups(const Cgroup2Mount& mount, int pid);

/// A cgroup that cordon created below <root>/cordon. Removing it kills what is left in it (it
/// was created for processes cordon started) and removes the directory.
class Cgroup {
public:
    /// Creates <root>/cordon/<name> (and <root>/cordon when missing). Throws Error on failure,
    /// including when <name> already exists: cordon never adopts a cgroup by accident.
    static Cgroup create(const Cgroup2Mount& mount, const std::string& name);

    /// Takes back a cgroup that cordon created earlier (a restarted cordond): `dir` must lie
    /// below <root>/cordon. Throws Error otherwise, or when it is gone.
    static Cgroup adopt(const Cgroup2Mount& mount, const std::filesystem::path& dir);

    Cgroup(Cgroup&& other) noexcept;
    Cgroup& operator=(Cgroup&&) = delete;
    Cgroup(const Cgroup&) = delete;
    Cgroup& operator=(const Cgroup&) = delete;
    ~Cgroup();

    const std::filesystem::path& path() const { return path_; }
    std::uint64_t id() const { return id_; }
    /// The kernel's cgroup level (root = 0), what bpf_get_current_ancestor_cgroup_id() takes.
    std::uint32_t level() const { return level_; }

    /// Moves a process into this cgroup.
    void add_process(int pid) const;
    /// SIGKILLs every process in the subtree at once through cgroup.kill, written through a
    /// descriptor opened when the cgroup was made: a kill never waits on opening the file (an
    /// agent holding a lease on it could stall that open) and works in a forked guardian too.
    void kill() const;
    /// Kills what is left, waits until the cgroup is empty, removes it. Idempotent; throws on
    /// failure (the destructor calls it and logs instead).
    void remove();
    /// Forgets the cgroup without removing it: it outlives this object (cordond exits and its
    /// agents run on, still enforced by the pinned maps).
    void release();

private:
    Cgroup(std::filesystem::path path, std::uint64_t id, std::uint32_t level);
    std::filesystem::path path_;
    std::uint64_t id_ = 0;
    std::uint32_t level_ = 0;
    int kill_fd_ = -1; ///< cgroup.kill, or -1 on kernels before 5.14
};

} // namespace cordon::agents
