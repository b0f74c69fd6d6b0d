// SPDX-License-Identifier: Apache-2.0
#include "agents/cgroup.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>
#include <vector>

#include <spdlog/spdlog.h>

#include "common/error.h"

namespace fs = std::filesystem;

namespace cordon::agents {
namespace {

// mountinfo escapes space, tab, newline and backslash as \ooo octal.
std::string unescape_mountinfo(std::string_view s)
{
    std::string out;
    for (size_t i = 0; i < s.size(); ++i) {
        if (s[i] == '\\' && i + 3 < s.size()) {
            const auto oct = s.substr(i + 1, 3);
            if (oct.size() == 3 && oct.find_first_not_of("01234567") == std::string_view::npos) {
                out.push_back(static_cast<char>(std::stoi(std::string(oct), nullptr, 8)));
                i += 3;
                continue;
            }
        }
        out.push_back(s[i]);
    }
    return out;
}

std::uint32_t path_depth(const fs::path& p)
{
    std::uint32_t n = 0;
    for (const auto& part : p.relative_path())
        if (!part.empty() && part != ".")
            ++n;
    return n;
}

void write_file(const fs::path& file, std::string_view value)
{
    const int fd = ::open(file.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        throw Error("cannot open " + file.string() + " for writing: " + errno_text(errno));
    const ssize_t n = ::write(fd, value.data(), value.size());
    const int err = errno;
    ::close(fd);
    if (n != static_cast<ssize_t>(value.size()))
        throw Error("cannot write '" + std::string(value) + "' to " + file.string() + ": " +
                    errno_text(err));
}

bool populated(const fs::path& dir)
{
    std::ifstream in(dir / "cgroup.events");
    std::string key, value;
    while (in >> key >> value)
        if (key == "populated")
            return value != "0";
    return false; // directory gone: nothing lives there
}

void remove_tree(const fs::path& dir)
{
    std::error_code ec;
    // Children first: an agent may have made sub-cgroups (they are inside cordon's subtree).
    for (const auto& entry : fs::directory_iterator(dir, ec))
        if (entry.is_directory(ec))
            remove_tree(entry.path());
    if (::rmdir(dir.c_str()) != 0 && errno != ENOENT)
        throw Error("cannot remove cgroup " + dir.string() + ": " + errno_text(errno));
}

} // namespace

std::optional<Cgroup2Mount> find_cgroup2_mount(std::string_view mountinfo)
{
    std::istringstream in{std::string(mountinfo)};
    std::string line;
    while (std::getline(in, line)) {
        std::istringstream fields(line);
        std::vector<std::string> f;
        for (std::string w; fields >> w;)
            f.push_back(w);
        // id parent major:minor root mount-point options [optional...] - fstype source super
        size_t sep = 0;
        for (size_t i = 6; i < f.size(); ++i)
            if (f[i] == "-") {
                sep = i;
                break;
            }
        if (sep == 0 || sep + 1 >= f.size() || f[sep + 1] != "cgroup2")
            continue;
        return Cgroup2Mount{.mount_point = unescape_mountinfo(f[4]),
                            .root_level = path_depth(unescape_mountinfo(f[3]))};
    }
    return std::nullopt;
}

Cgroup2Mount cgroup2_mount()
{
    std::ifstream in("/proc/self/mountinfo");
    if (!in)
        throw Error("cannot read /proc/self/mountinfo: is /proc mounted?");
    std::stringstream text;
    text << in.rdbuf();
    auto m = find_cgroup2_mount(text.str());
    if (!m)
        throw Error("no cgroup v2 hierarchy is mounted; mount one with "
                    "`mount -t cgroup2 none /sys/fs/cgroup` (or /sys/fs/cgroup/unified on a "
                    "hybrid host)");
    return *m;
}

std::uint64_t cgroup_id(const fs::path& dir)
{
    // The cgroup id is the kernfs node id, which cgroup2 exposes as its file handle.
    alignas(struct file_handle) unsigned char buf[sizeof(struct file_handle) + sizeof(std::uint64_t)]{};
    auto* fh = reinterpret_cast<struct file_handle*>(buf);
    fh->handle_bytes = sizeof(std::uint64_t);
    int mount_id = 0;
    if (::name_to_handle_at(AT_FDCWD, dir.c_str(), fh, &mount_id, 0) != 0)
        throw Error("cannot get the cgroup id of " + dir.string() + ": " + errno_text(errno));
    std::uint64_t id = 0;
    std::memcpy(&id, fh->f_handle, sizeof(id));
    return id;
}

Cgroup Cgroup::create(const Cgroup2Mount& mount, const std::string& name)
{
    if (name.empty() || name.find('/') != std::string::npos || name == "." || name == "..")
        throw Error("invalid cgroup name '" + name + "': use letters, digits, '-', '_' or '.'");
    const fs::path subtree = mount.mount_point / kSubtree;
    if (::mkdir(subtree.c_str(), 0755) != 0 && errno != EEXIST)
        throw Error("cannot create " + subtree.string() + ": " + errno_text(errno) +
                    (errno == EACCES || errno == EPERM ? "; run as root" : ""));
    const fs::path dir = subtree / name;
    if (::mkdir(dir.c_str(), 0755) != 0)
        throw Error("cannot create cgroup " + dir.string() + ": " + errno_text(errno) +
                    (errno == EEXIST ? "; another agent already uses that name" : ""));
    const std::uint32_t level = mount.root_level + 2; // <root>/cordon/<name>
    try {
        return Cgroup(dir, cgroup_id(dir), level);
    } catch (...) {
        ::rmdir(dir.c_str());
        throw;
    }
}

std::uint32_t cgroup_level(const Cgroup2Mount& mount, const fs::path& dir)
{
    const auto rel = dir.lexically_relative(mount.mount_point);
    std::uint32_t depth = 0;
    for (const auto& part : rel)
        if (!part.empty() && part != ".")
            ++depth;
    return mount.root_level + depth;
}

bool cgroup_populated(const fs::path& dir)
{
    return populated(dir);
}

bool cgroup_frozen(const fs::path& dir)
{
    std::ifstream in(dir / "cgroup.events");
    std::string key, value;
    while (in >> key >> value)
        if (key == "frozen")
            return value == "1";
    return false;
}

bool cgroup_freeze_requested(const fs::path& dir)
{
    std::ifstream in(dir / "cgroup.freeze");
    char c = '0';
    return (in >> c) && c == '1';
}

void freeze_cgroup(const fs::path& dir, bool frozen)
{
    write_file(dir / "cgroup.freeze", frozen ? "1" : "0");
}

bool cgroup_within(const fs::path& inner, const fs::path& outer)
{
    const auto rel = inner.lexically_normal().lexically_relative(outer.lexically_normal());
    return !rel.empty() && !rel.string().starts_with("..");
}

void kill_cgroup(const fs::path& dir)
{
    write_file(dir / "cgroup.kill", "1");
}

std::optional<fs::path> process_cgroup(const Cgroup2Mount& mount, int pid)
{
    std::ifstream in("/proc/" + std::to_string(pid) + "/cgroup");
    if (!in)
        return std::nullopt;
    for (std::string line; std::getline(in, line);)
        if (line.starts_with("0::")) {
            // Relative to the mount's root, which is the reader's cgroup namespace root.
            fs::path rel = line.substr(3);
            return mount.mount_point / rel.relative_path();
        }
    return std::nullopt;
}

std::vector<fs::path> thread_cgroups(const Cgroup2Mount& mount, int pid)
{
    std::vector<fs::path> out;
    std::error_code ec;
    const fs::path tasks = "/proc/" + std::to_string(pid) + "/task";
    for (fs::directory_iterator it(tasks, ec), end; !ec && it != end; it.increment(ec)) {
        std::ifstream in(it->path() / "cgroup");
        for (std::string line; std::getline(in, line);)
            if (line.starts_with("0::"))
                out.push_back(mount.mount_point / fs::path(line.substr(3)).relative_path());
    }
    if (auto leader = process_cgroup(mount, pid))
        out.push_back(*leader);
    return out;
}

Cgroup Cgroup::adopt(const Cgroup2Mount& mount, const fs::path& dir)
{
    const fs::path subtree = mount.mount_point / kSubtree;
    const auto rel = dir.lexically_relative(subtree);
    if (rel.empty() || rel.string().starts_with("..") || rel == ".")
        throw Error(dir.string() + " is not a cgroup that cordon created (below " +
                    subtree.string() + ")");
    return Cgroup(dir, cgroup_id(dir), cgroup_level(mount, dir));
}

void Cgroup::release()
{
    path_.clear();
}

Cgroup::Cgroup(fs::path path, std::uint64_t id, std::uint32_t level)
    : path_(std::move(path)), id_(id), level_(level),
      kill_fd_(::open((path_ / "cgroup.kill").c_str(), O_WRONLY | O_CLOEXEC))
{
}

Cgroup::Cgroup(Cgroup&& other) noexcept
    : path_(std::move(other.path_)), id_(other.id_), level_(other.level_), kill_fd_(other.kill_fd_)
{
    other.path_.clear();
    other.kill_fd_ = -1;
}

Cgroup::~Cgroup()
{
    try {
        remove();
    } catch (const std::exception& e) {
        spdlog::error("{}", e.what());
    }
    if (kill_fd_ >= 0)
        ::close(kill_fd_);
}

void Cgroup::add_process(int pid) const
{
    write_file(path_ / "cgroup.procs", std::to_string(pid));
}

void Cgroup::kill() const
{
    if (kill_fd_ >= 0) {
        if (::pwrite(kill_fd_, "1", 1, 0) != 1 && errno != ENOENT && errno != ENODEV)
            throw Error("cannot write " + (path_ / "cgroup.kill").string() + ": " +
                        errno_text(errno));
        return;
    }
    // Kernels before 5.14 lack cgroup.kill: signal each listed process (all started by cordon).
    std::ifstream procs(path_ / "cgroup.procs");
    for (int pid; procs >> pid;)
        ::kill(pid, SIGKILL);
}

void Cgroup::remove()
{
    if (path_.empty() || !fs::exists(path_))
        return;
    using namespace std::chrono;
    const auto deadline = steady_clock::now() + seconds(10);
    for (;;) {
        // A process may still be joining (it raced the check): kill and retry until empty.
        if (populated(path_))
            kill();
        else {
            try {
                remove_tree(path_);
                break;
            } catch (const Error&) {
                if (steady_clock::now() > deadline)
                    throw;
            }
        }
        if (steady_clock::now() > deadline)
            throw Error("cgroup " + path_.string() + " still has processes 10 s after SIGKILL");
        std::this_thread::sleep_for(milliseconds(5));
    }
    path_.clear();
}

} // namespace cordon::agents
