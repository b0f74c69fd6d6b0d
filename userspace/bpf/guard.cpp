// SPDX-License-Identifier: Apache-2.0
#include "bpf/guard.h"

#include "bpf/log.h"

#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include <fmt/format.h>

#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>

#include "bpf/skeleton.h"
#include "common/backend.h"
#include "common/error.h"
#include "common/pi_mutex.h"
#include "guard.skel.h"

namespace cordon::bpf {

CORDON_SKELETON_OPS(guard_bpf);

unsigned btf_func_args(const std::string& func, unsigned missing)
{
    // The kernel's BTF is megabytes: parsed once per process, and kept (it does not change).
    static struct btf* const vmlinux = btf__load_vmlinux_btf();
    if (!vmlinux)
        return missing;
    const int id = btf__find_by_name_kind(vmlinux, func.c_str(), BTF_KIND_FUNC);
    if (id <= 0)
        return missing;
    const struct btf_type* fn = btf__type_by_id(vmlinux, static_cast<__u32>(id));
    const struct btf_type* proto = btf__type_by_id(vmlinux, fn->type);
    return proto ? btf_vlen(proto) : missing;
}

unsigned lsm_hook_args(const char* hook, unsigned missing)
{
    return btf_func_args(std::string("bpf_lsm_") + hook, missing);
}

// Hooks of the lsm set that kernels before 6.2 lack, and that the set does without there: ACLs
// are xattrs before it, and ftruncate a path_truncate.
namespace {
constexpr std::string_view kLateHooks[] = {"inode_set_acl", "inode_remove_acl", "file_truncate"};

bool late_hook(std::string_view hook)
{
    return std::ranges::find(kLateHooks, hook) != std::end(kLateHooks);
}
} // namespace

// The syscalls whose exit compat decides (compat_exit.bpf.c, COMPAT_EXIT).
constexpr const char* kCompatExitCalls[] = {"open", "openat", "openat2", "creat",
                                           "open_by_handle_at", "connect", "listen"};

bool syscall_tracepoints()
{
    // The ids live in tracefs; mount it where it belongs when nothing has (as systemd would).
    // Mounting it changes no tracing setting.
    std::error_code ec;
    std::filesystem::path events = "/sys/kernel/tracing/events";
    if (!std::filesystem::exists(events, ec) && std::filesystem::exists("/sys/kernel/debug/tracing/events", ec))
        events = "/sys/kernel/debug/tracing/events";
    if (!std::filesystem::exists(events, ec))
        ::mount("tracefs", "/sys/kernel/tracing", "tracefs", 0, nullptr);
    for (const char* call : kCompatExitCalls)
        if (!std::filesystem::exists(events / "syscalls" / (std::string("sys_exit_") + call) / "id", ec))
            return false;
    return true;
}

std::string fmod_ret_target(std::string_view hook)
{
    // The kernel calls most hooks from a security_<hook>() of the same name; these two differ.
    if (hook == "bprm_check_security")
        return "security_bprm_check";
    if (hook == "userns_create")
        return "security_create_user_ns";
    return "security_" + std::string(hook);
}

namespace {

namespace fs = std::filesystem;

// The maps the controller uses and pins (bpf/maps.bpf.h), by the names they are pinned under.
// cordon_config is last: pinned last, it marks a pinned set as complete.
enum MapIndex {
    kAgents, kLive, kPolicies, kPathRules, kNetRules, kProtected, kStateInodes, kEvents,
    kCounters, kTasks, kProcTasks, kGrants, kAgentCgroups, kBoundPaths, kTemplates,
    kKernelIds, kDnsRules, kDnsHosts, kDnsSocks, kDnsConfig, kEventShares, kConfig, kMapCount
};
constexpr const char* kSharedMaps[kMapCount] = {
    "cordon_agents",    "cordon_agent_live", "cordon_policies",     "cordon_path_rules",
    "cordon_net_rules", "cordon_protected",  "cordon_state_inodes", "cordon_events",
    "cordon_counters",  "cordon_tasks",      "cordon_proc_tasks",   "cordon_grants",
    "cordon_agent_cgroups", "cordon_bound_paths", "cordon_templates", "cordon_kernel_ids",
    "cordon_dns_rules", "cordon_dns_hosts", "cordon_dns_socks", "cordon_dns_config",
    "cordon_event_shares", "cordon_config"};
// Key and value sizes this build expects of each pinned map (0: not checked; the ring buffer has
// none). A pinned map of another layout is refused even when the recorded ABI version matches.
constexpr std::pair<std::uint32_t, std::uint32_t> kMapLayout[kMapCount] = {
    {sizeof(std::uint64_t), sizeof(cordon_agent)},
    {sizeof(std::uint64_t), sizeof(cordon_agent_live)},
    {sizeof(std::uint32_t), sizeof(cordon_policy)},
    {sizeof(cordon_path_key), sizeof(cordon_path_value)},
    {sizeof(cordon_net_key), sizeof(cordon_net_value)},
    {sizeof(std::uint32_t), sizeof(std::uint8_t)},
    {sizeof(cordon_inode_key), sizeof(std::uint8_t)},
    {0, 0},
    {sizeof(std::uint32_t), sizeof(std::uint64_t)},
    {sizeof(std::uint64_t), sizeof(cordon_task)},
    {sizeof(std::uint32_t), sizeof(cordon_proc_task)},
    {sizeof(std::uint32_t), sizeof(cordon_grant)},
    {sizeof(std::uint64_t), sizeof(cordon_bound)},
    {sizeof(cordon_cgroup_path), sizeof(cordon_bound)},
    {sizeof(cordon_cgroup_path), sizeof(cordon_template_set)},
    {sizeof(std::uint32_t), sizeof(std::uint32_t)},
    {sizeof(cordon_dns_rule_key), sizeof(cordon_dns_rule)},
    {sizeof(cordon_dns_host_key), sizeof(cordon_dns_host)},
    {sizeof(std::uint64_t), sizeof(cordon_dns_sock)},
    {sizeof(std::uint32_t), sizeof(cordon_dns_config)},
    {sizeof(std::uint64_t), sizeof(cordon_event_share)},
    {sizeof(std::uint32_t), sizeof(cordon_config)}};

// The cgroup level of a path relative to the cgroup2 root: its number of components.
std::uint32_t rel_level(const char* rel)
{
    std::uint32_t n = 0;
    for (const char* c = rel; *c; ++c)
        if (*c == '/' && c[1] && c[1] != '/')
            ++n;
    return n;
}

constexpr const char* kTeardownFix =
    "run `cordon teardown` (it stops enforcement for every agent cordond guards) and start "
    "cordond again";

std::string load_failure(const char* what, int err, cordon_backend backend)
{
    std::string msg = std::string("the kernel refused to load ") + what + " for the " +
                      std::string(backend_name(backend)) + " backend: " + errno_text(err);
    if (err == EPERM)
        msg += "; run as root, and run `cordon doctor` to see which programs this kernel allows";
    else if (const auto why = last_verifier_words(); !why.empty())
        msg += "; the verifier said: " + why; // what a bug report needs (cordond -v: all of it)
    return msg;
}

// A program of the lsm set ("lsm/<hook>"), whichever way it is attached.
bool is_lsm(struct bpf_program* p)
{
    return std::string_view(bpf_program__section_name(p)).starts_with("lsm");
}

// The hook of an lsm program: its section name after "lsm/".
std::string_view lsm_hook_of(struct bpf_program* p)
{
    return std::string_view(bpf_program__section_name(p)).substr(4);
}

// fmod_ret backend: the same lsm programs, made fmod_ret (BPF_MODIFY_RETURN) programs on the
// security_* function that calls their hook. The verifier accepts fmod_ret there whether or not
// the BPF LSM is active; the context is the same (the hook's arguments, then the return value
// so far), and a non-zero return skips the function and becomes its result, as an LSM's would.
// Throws when the kernel lacks a function (nothing is loaded yet then).
void retarget_fmod_ret(struct bpf_object* obj)
{
    struct bpf_program* p = nullptr;
    bpf_object__for_each_program(p, obj)
    {
        if (!is_lsm(p) || !bpf_program__autoload(p))
            continue;
        const std::string target = fmod_ret_target(lsm_hook_of(p));
        int err = bpf_program__set_type(p, BPF_PROG_TYPE_TRACING);
        if (!err)
            err = bpf_program__set_expected_attach_type(p, BPF_MODIFY_RETURN);
        if (!err)
            err = bpf_program__set_attach_target(p, 0, target.c_str());
        if (err)
            throw Error("the fmod_ret backend cannot use " + target + " for " +
                        bpf_program__name(p) + ": " + errno_text(-err) +
                        " (the kernel's BTF has no such function?); use --backend compat and "
                        "see `cordon doctor`");
    }
}

// Pins live on a bpffs. systemd mounts one at /sys/fs/bpf; on hosts without it (this project's
// CI machine) cordon mounts it there, as systemd would. Any other place must already be one.
void ensure_bpffs(const fs::path& dir)
{
    constexpr long kBpfFsMagic = 0xcafe4a11;
    struct statfs st {};
    if (::statfs(dir.c_str(), &st) == 0 && st.f_type == kBpfFsMagic)
        return;
    if (dir == "/sys/fs/bpf" && ::mount("bpf", "/sys/fs/bpf", "bpf", 0, "mode=0700") == 0)
        return;
    throw Error(dir.string() + " is not a bpffs, so nothing can be pinned there; mount one with "
                "`mount -t bpf bpf " + dir.string() + "`");
}

// bpffs refuses names with a dot (reserved), hence no ".tmp".
fs::path staging_dir(const fs::path& pin_dir)
{
    return pin_dir.parent_path() / (pin_dir.filename().string() + "_staging_" + std::to_string(::getpid()));
}

void remove_pins(const fs::path& dir)
{
    std::error_code ec;
    if (!fs::exists(dir, ec))
        return;
    fs::remove_all(dir, ec);
    if (ec)
        throw Error("cannot remove " + dir.string() + ": " + ec.message());
}

// Walks every key of a map; fn returns false to stop.
template <typename Key, typename Fn> void for_each_key(int fd, Fn fn)
{
    Key key{}, next{};
    const Key* prev = nullptr;
    while (bpf_map_get_next_key(fd, prev, &next) == 0) {
        key = next;
        prev = &key;
        if (!fn(key))
            return;
    }
}

// Rule keys of the policies `pick` selects, by a walk of both rule maps.
struct RuleKeys {
    std::vector<cordon_path_key> paths;
    std::vector<cordon_net_key> nets;
    std::vector<cordon_dns_rule_key> dns;
};

// A policy's entries in the rule maps (fds: path rules, net rules, DNS names, answered hosts);
// the gateway's answered hosts under it are found by scanning, as they are not its own.
RuleKeys rule_keys(const std::array<int, 4>& fds, const std::function<bool(std::uint32_t)>& pick)
{
    RuleKeys out;
    for_each_key<cordon_path_key>(fds[0], [&](const cordon_path_key& k) {
        if (pick(k.policy_id))
            out.paths.push_back(k);
        return true;
    });
    for_each_key<cordon_net_key>(fds[1], [&](const cordon_net_key& k) {
        if (pick(k.policy_id))
            out.nets.push_back(k);
        return true;
    });
    for_each_key<cordon_dns_rule_key>(fds[2], [&](const cordon_dns_rule_key& k) {
        if (pick(k.policy_id))
            out.dns.push_back(k);
        return true;
    });
    return out;
}

void delete_rule_keys(const std::array<int, 4>& fds, const RuleKeys& keys,
                      const std::function<bool(std::uint32_t)>& pick)
{
    for (const auto& k : keys.paths)
        bpf_map_delete_elem(fds[0], &k);
    for (const auto& k : keys.nets)
        bpf_map_delete_elem(fds[1], &k);
    for (const auto& k : keys.dns)
        bpf_map_delete_elem(fds[2], &k);
    std::vector<cordon_dns_host_key> hosts;
    for_each_key<cordon_dns_host_key>(fds[3], [&](const cordon_dns_host_key& k) {
        if (pick(k.policy_id))
            hosts.push_back(k);
        return true;
    });
    for (const auto& k : hosts)
        bpf_map_delete_elem(fds[3], &k);
}

// Every entry of a hash map, read in batches (a handful of syscalls for thousands of entries,
// where a key walk costs two per entry). Falls back to the walk if the kernel refuses a batch.
template <typename Key, typename Value> std::vector<std::pair<Key, Value>> all_entries(int fd)
{
    std::vector<std::pair<Key, Value>> out;
    constexpr __u32 kBatch = 256;
    std::vector<Key> keys(kBatch);
    std::vector<Value> values(kBatch);
    std::uint64_t token = 0;
    for (bool first = true;; first = false) {
        __u32 n = kBatch;
        LIBBPF_OPTS(bpf_map_batch_opts, opts);
        const int rc = bpf_map_lookup_batch(fd, first ? nullptr : &token, &token, keys.data(),
                                            values.data(), &n, &opts);
        const int err = rc ? errno : 0;
        if (rc && err != ENOENT)
            break; // ENOSPC (a bucket larger than a batch), or no batch support: walk instead
        for (__u32 i = 0; i < n; ++i)
            out.emplace_back(keys[i], values[i]);
        if (err == ENOENT)
            return out;
    }
    out.clear();
    Key key{}, next{};
    const Key* prev = nullptr;
    while (bpf_map_get_next_key(fd, prev, &next) == 0) {
        key = next;
        prev = &key;
        Value v{};
        if (bpf_map_lookup_elem(fd, &key, &v) == 0)
            out.emplace_back(key, v);
    }
    return out;
}

// Every key of a map.
template <typename Key> std::vector<Key> all_keys(int fd)
{
    std::vector<Key> out;
    for_each_key<Key>(fd, [&](const Key& k) {
        out.push_back(k);
        return true;
    });
    return out;
}

} // namespace

struct Guard::Impl {
    cordon_backend backend = CORDON_BACKEND_NONE;
    // Loaded here (not adopted): the object, and the links that keep the programs attached.
    std::optional<Skeleton<guard_bpf>> skel;
    std::vector<struct bpf_link*> links;
    std::vector<std::string> link_names; ///< the program of each link
    std::optional<fs::path> pin_dir;
    int cgroup_fd = -1;
    std::array<int, kMapCount> fds = [] {
        std::array<int, kMapCount> a{};
        a.fill(-1);
        return a;
    }();
    // An array of maps whose update makes the kernel wait for an RCU grace period (see
    // wait_for_decisions); created on first use.
    int rcu_outer = -1, rcu_inner = -1;
    // Agents per cgroup level, behind cordon_config.agent_levels; bound paths and templates'
    // children per level, behind cordon_config.bind_levels.
    std::array<std::uint32_t, CORDON_MAX_LEVEL> per_level{};
    std::array<std::uint32_t, CORDON_MAX_LEVEL> bind_level{};
    // Keys of the policies loaded by this Guard; others are found by scanning the maps.
    std::map<std::uint32_t, RuleKeys> loaded;
    // load_policy, unload_policy and wait_for_decisions may run on cordond's worker threads
    // beside its loop: this guards `loaded` and the creation of the maps to wait on. The map
    // writes themselves need no lock (each is one syscall).
    PiMutex mu;

    std::array<int, 4> rule_fds() const
    {
        return {fds[kPathRules], fds[kNetRules], fds[kDnsRules], fds[kDnsHosts]};
    }

    ~Impl()
    {
        for (auto* l : links)
            bpf_link__destroy(l);
        if (cgroup_fd >= 0)
            ::close(cgroup_fd);
        for (int fd : {rcu_outer, rcu_inner})
            if (fd >= 0)
                ::close(fd);
        for (int fd : fds)
            if (fd >= 0)
                ::close(fd);
    }

    // Attaches every program whose autoload is on; cgroup programs go to cgroup_fd.
    void attach_all(struct bpf_object* obj)
    {
        struct bpf_program* p = nullptr;
        bpf_object__for_each_program(p, obj)
        {
            if (!bpf_program__autoload(p))
                continue;
            const bool cgroup = std::string_view(bpf_program__section_name(p)).starts_with("cgroup/");
            // Retargeted programs (fmod_ret) lost their section's attach handler.
            const bool fmod = bpf_program__expected_attach_type(p) == BPF_MODIFY_RETURN;
            struct bpf_link* l = cgroup ? bpf_program__attach_cgroup(p, cgroup_fd)
                                 : fmod ? bpf_program__attach_trace(p)
                                        : bpf_program__attach(p);
            if (!l)
                throw Error(std::string("the kernel refused to attach ") +
                            bpf_program__name(p) + ": " + errno_text(errno) +
                            "; run `cordon doctor`");
            links.push_back(l);
            link_names.emplace_back(bpf_program__name(p));
        }
    }

    cordon_config config() const
    {
        cordon_config c{};
        const std::uint32_t zero = 0;
        if (bpf_map_lookup_elem(fds[kConfig], &zero, &c) != 0)
            throw Error("cannot read cordon_config: " + errno_text(errno));
        return c;
    }
    void set_config(const cordon_config& c)
    {
        const std::uint32_t zero = 0;
        if (bpf_map_update_elem(fds[kConfig], &zero, &c, BPF_ANY) != 0)
            throw Error("cannot write cordon_config: " + errno_text(errno));
    }
    // Ids start at 1 (0 means none) and are never handed out twice by one program set.
    std::uint32_t next_id(__u32 cordon_config::*counter)
    {
        auto c = config();
        const std::uint32_t id = c.*counter ? c.*counter : 1;
        c.*counter = id + 1;
        set_config(c);
        return id;
    }
    void publish_levels()
    {
        auto c = config();
        std::uint64_t mask = 0;
        std::uint32_t binds = 0;
        for (std::uint32_t l = 0; l < CORDON_MAX_LEVEL; ++l) {
            if (per_level[l] > 0)
                mask |= 1ull << l;
            if (bind_level[l] > 0)
                binds |= 1u << l;
        }
        if (c.agent_levels == mask && c.bind_levels == binds)
            return;
        c.agent_levels = mask;
        c.bind_levels = binds;
        set_config(c);
    }
    // A bound path's or a template's level, published before its entry is written and
    // withdrawn after it is removed (so the kernel never skips a level that has one).
    void bind_at(std::uint32_t level, int delta)
    {
        if (level >= CORDON_MAX_LEVEL || (delta < 0 && bind_level[level] == 0))
            return;
        bind_level[level] = static_cast<std::uint32_t>(static_cast<int>(bind_level[level]) + delta);
        publish_levels();
    }

    // Pins every map (cordon_config last) and link into a staging directory, then renames it
    // into place: a pinned set is complete or absent, even if cordond dies half-way.
    void pin(const fs::path& dir)
    {
        ensure_bpffs(dir.parent_path());
        const fs::path staging = staging_dir(dir);
        remove_pins(staging);
        std::error_code ec;
        fs::create_directories(staging / "links", ec);
        if (ec)
            throw Error("cannot create " + staging.string() + ": " + ec.message() +
                        "; is bpffs mounted at /sys/fs/bpf (`mount -t bpf bpf /sys/fs/bpf`)?");
        for (int i = 0; i < kMapCount; ++i) {
            const auto path = staging / kSharedMaps[i];
            if (bpf_obj_pin(fds[i], path.c_str()) != 0)
                throw Error("cannot pin " + path.string() + ": " + errno_text(errno));
        }
        for (size_t i = 0; i < links.size(); ++i) {
            const auto path = staging / "links" / link_names[i];
            if (bpf_link__pin(links[i], path.c_str()) != 0)
                throw Error("cannot pin " + path.string() + ": " + errno_text(errno));
        }
        remove_pins(dir); // an older, incomplete set (pinned() said no)
        if (::rename(staging.c_str(), dir.c_str()) != 0)
            throw Error("cannot move " + staging.string() + " to " + dir.string() + ": " +
                        errno_text(errno));
        pin_dir = dir;
    }
};

Guard::Guard() : impl_(std::make_unique<Impl>()) {}

namespace {

// Which programs of the one object this backend loads. lsm and fmod_ret: the lsm/ programs
// (exec, files, network, tamper). compat: the tracing programs, deciding opens, connects and
// listens at the per-syscall exit tracepoints where the kernel has them (cheaper for the rest of
// the host), else at the one sys_exit tracepoint. Every backend: the cgroup sock_addr programs,
// task_guard's fork and exit, exec_trace.
void choose_programs(guard_bpf* skel, const GuardOptions& opts)
{
    const bool lsm = runs_lsm_programs(opts.backend);
    const bool per_syscall = !lsm && !opts.compat_raw_sys_exit && syscall_tracepoints();
    struct bpf_program* p = nullptr;
    bpf_object__for_each_program(p, skel->obj)
    {
        const std::string_view sec = bpf_program__section_name(p);
        bool on = true;
        if (is_lsm(p))
            on = lsm;
        else if (sec.starts_with("tracepoint/syscalls/"))
            on = per_syscall;
        else if (sec == "tp_btf/sys_exit")
            on = !lsm && !per_syscall;
        bpf_program__set_autoload(p, on);
    }
    bpf_program__set_autoload(skel->progs.exec_guard_sched_exec, !lsm);
    bpf_program__set_autoload(skel->progs.cgroup_guard_mkdir, opts.cgroup_guard);
    bpf_program__set_autoload(skel->progs.cgroup_guard_rmdir, opts.cgroup_guard);
    if (!lsm)
        return;
    const bool fmod_ret = opts.backend == CORDON_BACKEND_FMOD_RET;
    // The number of arguments of a hook as this backend reaches it (0: the kernel lacks it).
    const auto hook_args = [fmod_ret](std::string_view hook, unsigned missing) {
        return fmod_ret ? btf_func_args(fmod_ret_target(hook), missing)
                        : lsm_hook_args(std::string(hook).c_str(), missing);
    };
    // Hooks whose arguments or existence differ between kernels, read from the kernel's BTF.
    // (security_inode_setattr took the idmap in 6.3, the inode_setattr hook only in 6.10.)
    const bool idmap = hook_args("inode_setattr", 2) == 3;
    bpf_program__set_autoload(skel->progs.file_guard_inode_setattr, !idmap);
    bpf_program__set_autoload(skel->progs.file_guard_inode_setattr_idmap, idmap);
    bpf_object__for_each_program(p, skel->obj)
    {
        if (is_lsm(p) && late_hook(lsm_hook_of(p)) && hook_args(lsm_hook_of(p), 0) == 0)
            bpf_program__set_autoload(p, false);
    }
}

// Rodata and map sizes, set between open and load.
void configure(guard_bpf* skel, const GuardOptions& opts)
{
    skel->rodata->backend_id = opts.backend;
    if (!opts.ringbuf_bytes)
        return;
    const auto n = opts.ringbuf_bytes;
    if (n < 4096 || (n & (n - 1)) != 0)
        throw Error("ring buffer size " + std::to_string(n) +
                    " is not a power of two of at least 4096 bytes (e.g. 64M)");
    if (int err = bpf_map__set_max_entries(skel->maps.cordon_events, n); err != 0)
        throw Error("cannot size the ring buffer: " + errno_text(-err));
}

// CORDON_VERIFIER_STATS=1: each loaded program's verifier statistics (instructions processed,
// states, time) on stderr when the load ends, loaded or refused, to keep an eye on verification
// cost as the programs grow. Set up between open and load.
class VerifierStats {
public:
    explicit VerifierStats(struct bpf_object* obj)
    {
        const char* v = ::getenv("CORDON_VERIFIER_STATS");
        if (!v || *v != '1')
            return;
        struct bpf_program* p = nullptr;
        bpf_object__for_each_program(p, obj)
        {
            if (!bpf_program__autoload(p))
                continue;
            auto& [name, buf] =
                stats_.emplace_back(bpf_program__name(p), std::make_unique<char[]>(kLogBytes));
            buf[0] = 0;
            bpf_program__set_log_buf(p, buf.get(), kLogBytes);
            bpf_program__set_log_level(p, 4);
        }
    }
    VerifierStats(const VerifierStats&) = delete;
    VerifierStats& operator=(const VerifierStats&) = delete;
    ~VerifierStats()
    {
        for (const auto& [name, buf] : stats_) {
            std::string log(buf.get());
            std::erase(log, '\n');
            std::fprintf(stderr, "verifier: %s: %s\n", name.c_str(), log.c_str());
        }
    }

private:
    static constexpr size_t kLogBytes = 4096; // level 4 is the statistics line only
    std::vector<std::pair<std::string, std::unique_ptr<char[]>>> stats_;
};

// CORDON_VERIFIER_STATS set (any value): the phases of a load on stderr, in ms from its start.
class LoadTimer {
public:
    LoadTimer() : on_(::getenv("CORDON_VERIFIER_STATS") != nullptr) {}
    void lap(const char* what) const
    {
        if (!on_)
            return;
        const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
            std::chrono::steady_clock::now() - start_);
        std::fprintf(stderr, "guard-timing: %s at %lld ms\n", what,
                     static_cast<long long>(ms.count()));
    }

private:
    bool on_;
    std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
};

} // namespace

Guard::Guard(const GuardOptions& opts) : impl_(std::make_unique<Impl>())
{
    auto& d = *impl_;
    d.backend = opts.backend;
    if (backend_name(opts.backend) == "none")
        throw Error("no usable backend on this kernel; run `cordon doctor` for the reason");
    const LoadTimer timer;
    // One object holds every program and every map (bpf/maps.bpf.h): open, configure (rodata,
    // sizes, which programs load), load, attach.
    auto& skel = d.skel.emplace(Skeleton<guard_bpf>::open());
    configure(skel.get(), opts);
    choose_programs(skel.get(), opts);
    // lsm and fmod_ret load the same program set; they differ only in how it is attached.
    if (opts.backend == CORDON_BACKEND_FMOD_RET)
        retarget_fmod_ret(skel.object());
    {
        const VerifierStats stats(skel.object());
        timer.lap("opened");
        forget_verifier_words(); // the probes' expected refusals are not this load's
        if (int err = skel.load(); err != 0)
            throw Error(load_failure("the guard programs", -err, opts.backend));
    }
    for (int i = 0; i < kMapCount; ++i) {
        struct bpf_map* m = bpf_object__find_map_by_name(skel.object(), kSharedMaps[i]);
        d.fds[i] = m ? ::fcntl(bpf_map__fd(m), F_DUPFD_CLOEXEC, 3) : -1;
        if (d.fds[i] < 0)
            throw Error(std::string("the guard object has no usable map ") + kSharedMaps[i]);
    }
    d.set_config({.abi_version = CORDON_ABI_VERSION,
                  .backend = static_cast<__u8>(opts.backend),
                  ._pad0 = {},
                  .agent_levels = 0,
                  .next_policy_id = 1,
                  .next_agent_id = 1,
                  .next_task_id = 1,
                  .next_grant_id = 1,
                  .bind_levels = 0});

    d.cgroup_fd = ::open(opts.net_attach_cgroup.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (d.cgroup_fd < 0)
        throw Error("cannot open cgroup " + opts.net_attach_cgroup.string() + ": " +
                    errno_text(errno));
    timer.lap("all loaded");
    d.attach_all(skel.object());
    timer.lap("attached");
    if (opts.pin_dir)
        d.pin(*opts.pin_dir);
    timer.lap("pinned");
}

Guard::~Guard() = default;

bool Guard::pinned(const fs::path& pin_dir)
{
    std::error_code ec;
    return fs::exists(pin_dir / "cordon_config", ec);
}

std::unique_ptr<Guard> Guard::adopt(const fs::path& pin_dir)
{
    std::unique_ptr<Guard> g(new Guard());
    auto& d = *g->impl_;
    for (int i = 0; i < kMapCount; ++i) {
        const auto path = pin_dir / kSharedMaps[i];
        d.fds[i] = bpf_obj_get(path.c_str());
        if (d.fds[i] < 0)
            throw Error("cannot open pinned map " + path.string() + ": " + errno_text(errno) +
                        "; the pinned state is incomplete or from another version: " +
                        kTeardownFix);
        struct bpf_map_info info {};
        __u32 len = sizeof(info);
        if (bpf_obj_get_info_by_fd(d.fds[i], &info, &len) != 0)
            throw Error("cannot inspect pinned map " + path.string() + ": " + errno_text(errno));
        const auto [key, value] = kMapLayout[i];
        if (key && (info.key_size != key || info.value_size != value))
            throw Error(fmt::format("pinned map {} has {}-byte keys and {}-byte values, this "
                                    "build expects {} and {}: it was made by another version "
                                    "of cordon; {}",
                                    path.string(), info.key_size, info.value_size, key, value,
                                    kTeardownFix));
    }
    const auto c = d.config();
    if (c.abi_version != CORDON_ABI_VERSION)
        throw Error(fmt::format("the program set pinned in {} has ABI version {}, this build "
                                "speaks version {}; {}",
                                pin_dir.string(), c.abi_version, CORDON_ABI_VERSION,
                                kTeardownFix));
    if (backend_name(c.backend) == "none")
        throw Error(fmt::format("the program set pinned in {} names no backend ({}); {}",
                                pin_dir.string(), c.backend, kTeardownFix));
    d.backend = static_cast<cordon_backend>(c.backend);
    d.pin_dir = pin_dir;
    // A template's children are counted once, by their template (their entries come and go
    // with their cgroups, made and removed by the kernel).
    for (const auto& e : g->agents())
        if (e.agent.level < CORDON_MAX_LEVEL && !(e.agent.flags & CORDON_AGENT_F_CHILD))
            ++d.per_level[e.agent.level];
    for (const auto& [parent, set] : all_entries<cordon_cgroup_path, cordon_template_set>(
             d.fds[kTemplates]))
        for (const auto& t : set.t)
            if (t.template_id && t.proto.level < CORDON_MAX_LEVEL) {
                ++d.per_level[t.proto.level];
                ++d.bind_level[t.proto.level];
            }
    for (const auto& k : all_keys<cordon_cgroup_path>(d.fds[kBoundPaths]))
        if (const auto l = rel_level(k.path); l < CORDON_MAX_LEVEL)
            ++d.bind_level[l];
    d.publish_levels();
    return g;
}

void Guard::unpin(const fs::path& pin_dir)
{
    remove_pins(pin_dir);
    std::error_code ec;
    const std::string prefix = pin_dir.filename().string() + "_staging_";
    for (const auto& e : fs::directory_iterator(pin_dir.parent_path(), ec))
        if (e.path().filename().string().starts_with(prefix))
            remove_pins(e.path());
}

void Guard::add_agent(std::uint64_t cgid, const cordon_agent& a, const cordon_agent_live& live)
{
    auto& d = *impl_;
    if (a.level == 0 || a.level >= CORDON_MAX_LEVEL)
        throw Error(fmt::format("cannot guard a cgroup at level {}: agents live at levels 1 to {}",
                                a.level, CORDON_MAX_LEVEL - 1));
    if (agent(cgid))
        throw Error("cgroup " + std::to_string(cgid) + " is an agent already");
    const auto fail = [&](const char* map, int err) {
        return Error(fmt::format("cannot write agent {} into {}: {}{}", cgid, map, errno_text(err),
                                 err == E2BIG ? fmt::format("; at most {} agents",
                                                            CORDON_MAX_AGENTS)
                                              : ""));
    };
    // The kernel's half first: an agent entry never exists without its state (and one would be
    // refused everything: fails closed). Any entry left by an earlier agent of this cgroup goes.
    if (bpf_map_update_elem(d.fds[kLive], &cgid, &live, BPF_ANY) != 0)
        throw fail("cordon_agent_live", errno);
    // Its share of the event buffer counts from its first record, as its state does (an LRU:
    // never full; without an entry the agent's records would be held to no share).
    const cordon_event_share share{};
    if (bpf_map_update_elem(d.fds[kEventShares], &cgid, &share, BPF_ANY) != 0)
        throw fail("cordon_event_shares", errno);
    // The level is published before the entry: the kernel never has an agent it does not look
    // for (fails closed for the agent). A template's child is counted by its template.
    const std::uint32_t counted = (a.flags & CORDON_AGENT_F_CHILD) ? 0 : 1;
    d.per_level[a.level] += counted;
    d.publish_levels();
    if (bpf_map_update_elem(d.fds[kAgents], &cgid, &a, BPF_NOEXIST) != 0) {
        const int err = errno;
        d.per_level[a.level] -= counted;
        d.publish_levels();
        bpf_map_delete_elem(d.fds[kLive], &cgid);
        throw fail("cordon_agents", err);
    }
}

void Guard::update_agent(std::uint64_t cgid, const cordon_agent& a)
{
    const auto old = agent(cgid);
    if (!old)
        throw Error("cgroup " + std::to_string(cgid) + " is not an agent");
    if (old->level != a.level || old->agent_id != a.agent_id)
        throw Error("an agent's id and level never change; remove it and add it again");
    // One write replaces the whole entry: a decision sees the old entry or the new one.
    if (bpf_map_update_elem(impl_->fds[kAgents], &cgid, &a, BPF_EXIST) != 0)
        throw Error("cannot update agent " + std::to_string(cgid) + ": " + errno_text(errno));
}

void Guard::remove_agent(std::uint64_t cgid)
{
    auto& d = *impl_;
    const auto old = agent(cgid);
    if (bpf_map_delete_elem(d.fds[kAgents], &cgid) != 0 && errno != ENOENT)
        throw Error("cannot remove agent " + std::to_string(cgid) + ": " + errno_text(errno));
    if (bpf_map_delete_elem(d.fds[kLive], &cgid) != 0 && errno != ENOENT)
        throw Error("cannot remove the state of agent " + std::to_string(cgid) + ": " +
                    errno_text(errno));
    bpf_map_delete_elem(d.fds[kEventShares], &cgid); // an LRU: a leftover would age out
    if (old && !(old->flags & CORDON_AGENT_F_CHILD) && old->level < CORDON_MAX_LEVEL &&
        d.per_level[old->level] > 0) {
        --d.per_level[old->level];
        d.publish_levels();
    }
    // Its cgroups are no agent any more (each is found through its entry, gone above).
    for (const auto& [id, b] : all_entries<std::uint64_t, cordon_bound>(d.fds[kAgentCgroups]))
        if (b.agent_key == cgid)
            bpf_map_delete_elem(d.fds[kAgentCgroups], &id);
}

namespace {

cordon_cgroup_path path_key(const std::string& rel)
{
    cordon_cgroup_path k{};
    if (rel.empty() || rel.front() != '/' || rel.size() >= sizeof(k.path))
        throw Error(fmt::format("cgroup path '{}' must start with '/' and be shorter than {} "
                                "bytes",
                                rel, sizeof(k.path)));
    std::memcpy(k.path, rel.data(), rel.size());
    return k;
}

} // namespace

void Guard::bind_cgroup(std::uint64_t cgid, std::uint64_t key)
{
    const cordon_bound b{.agent_key = key};
    if (bpf_map_update_elem(impl_->fds[kAgentCgroups], &cgid, &b, BPF_ANY) != 0)
        throw Error(fmt::format("cannot bind cgroup {} to its agent: {}{}", cgid,
                                errno_text(errno),
                                errno == E2BIG ? "; the table of agent cgroups is full" : ""));
}

void Guard::unbind_cgroup(std::uint64_t cgid)
{
    if (bpf_map_delete_elem(impl_->fds[kAgentCgroups], &cgid) != 0 && errno != ENOENT)
        throw Error(fmt::format("cannot unbind cgroup {}: {}", cgid, errno_text(errno)));
}

std::optional<std::uint64_t> Guard::cgroup_agent(std::uint64_t cgid) const
{
    cordon_bound b{};
    if (bpf_map_lookup_elem(impl_->fds[kAgentCgroups], &cgid, &b) != 0)
        return std::nullopt;
    return b.agent_key;
}

std::vector<std::pair<std::uint64_t, std::uint64_t>> Guard::cgroup_bindings() const
{
    std::vector<std::pair<std::uint64_t, std::uint64_t>> out;
    for (const auto& [id, b] : all_entries<std::uint64_t, cordon_bound>(impl_->fds[kAgentCgroups]))
        out.emplace_back(id, b.agent_key);
    return out;
}

void Guard::bind_path(const std::string& rel, std::uint64_t key)
{
    const auto k = path_key(rel);
    const cordon_bound b{.agent_key = key};
    cordon_bound old{};
    const bool had = bpf_map_lookup_elem(impl_->fds[kBoundPaths], &k, &old) == 0;
    if (!had)
        impl_->bind_at(rel_level(k.path), 1);
    if (bpf_map_update_elem(impl_->fds[kBoundPaths], &k, &b, BPF_ANY) != 0) {
        const int err = errno;
        if (!had)
            impl_->bind_at(rel_level(k.path), -1);
        throw Error(fmt::format("cannot bind cgroup path {}: {}", rel, errno_text(err)));
    }
}

void Guard::unbind_path(const std::string& rel)
{
    const auto k = path_key(rel);
    if (bpf_map_delete_elem(impl_->fds[kBoundPaths], &k) != 0) {
        if (errno != ENOENT)
            throw Error(fmt::format("cannot unbind cgroup path {}: {}", rel, errno_text(errno)));
        return;
    }
    impl_->bind_at(rel_level(k.path), -1);
}

std::optional<std::uint64_t> Guard::path_agent(const std::string& rel) const
{
    const auto k = path_key(rel);
    cordon_bound b{};
    if (bpf_map_lookup_elem(impl_->fds[kBoundPaths], &k, &b) != 0)
        return std::nullopt;
    return b.agent_key;
}

void Guard::set_template(const std::string& parent, const cordon_template& t)
{
    auto& d = *impl_;
    if (!t.template_id || t.proto.level == 0 || t.proto.level >= CORDON_MAX_LEVEL)
        throw Error("a template needs an id and a level of 1 to 15");
    const auto k = path_key(parent);
    cordon_template_set set{};
    const bool had = bpf_map_lookup_elem(d.fds[kTemplates], &k, &set) == 0;
    cordon_template* slot = nullptr;
    for (auto& e : set.t)
        if (e.template_id == t.template_id)
            slot = &e;
    const bool fresh = !slot;
    for (auto& e : set.t)
        if (!slot && !e.template_id)
            slot = &e;
    if (!slot)
        throw Error(fmt::format("cgroup {} has {} templates already, the most one parent may "
                                "have; detach one first",
                                parent, CORDON_TEMPLATES_PER_PARENT));
    if (!fresh && slot->proto.level != t.proto.level)
        throw Error("a template's level never changes");
    *slot = t;
    // The level first: a child the kernel makes is never at a level it does not look at.
    if (fresh) {
        ++d.per_level[t.proto.level];
        d.bind_at(t.proto.level, 1);
    }
    if (bpf_map_update_elem(d.fds[kTemplates], &k, &set, had ? BPF_EXIST : BPF_NOEXIST) != 0) {
        const int err = errno;
        if (fresh) {
            --d.per_level[t.proto.level];
            d.bind_at(t.proto.level, -1);
        }
        throw Error(fmt::format("cannot write the template of {}: {}", parent, errno_text(err)));
    }
}

void Guard::remove_template(const std::string& parent, std::uint32_t template_id)
{
    auto& d = *impl_;
    const auto k = path_key(parent);
    cordon_template_set set{};
    if (bpf_map_lookup_elem(d.fds[kTemplates], &k, &set) != 0)
        return;
    std::uint32_t level = 0;
    bool left = false;
    for (auto& e : set.t) {
        if (e.template_id == template_id) {
            level = e.proto.level;
            e = cordon_template{};
        }
        left = left || e.template_id;
    }
    if (!level)
        return;
    const int rc = left ? bpf_map_update_elem(d.fds[kTemplates], &k, &set, BPF_EXIST)
                        : bpf_map_delete_elem(d.fds[kTemplates], &k);
    if (rc != 0 && errno != ENOENT)
        throw Error(fmt::format("cannot remove the template of {}: {}", parent, errno_text(errno)));
    if (d.per_level[level] > 0)
        --d.per_level[level];
    d.bind_at(level, -1);
}

std::optional<cordon_template> Guard::template_of(const std::string& parent,
                                                  std::uint32_t template_id) const
{
    const auto k = path_key(parent);
    cordon_template_set set{};
    if (bpf_map_lookup_elem(impl_->fds[kTemplates], &k, &set) != 0)
        return std::nullopt;
    for (const auto& e : set.t)
        if (e.template_id == template_id)
            return e;
    return std::nullopt;
}

std::optional<cordon_agent> Guard::agent(std::uint64_t cgid) const
{
    cordon_agent s{};
    if (bpf_map_lookup_elem(impl_->fds[kAgents], &cgid, &s) != 0)
        return std::nullopt;
    return s;
}

std::optional<cordon_agent_live> Guard::live(std::uint64_t cgid) const
{
    cordon_agent_live s{};
    if (bpf_map_lookup_elem(impl_->fds[kLive], &cgid, &s) != 0)
        return std::nullopt;
    return s;
}

std::vector<AgentEntry> Guard::agents() const
{
    const auto ctl = all_entries<std::uint64_t, cordon_agent>(impl_->fds[kAgents]);
    const auto live = all_entries<std::uint64_t, cordon_agent_live>(impl_->fds[kLive]);
    std::map<std::uint64_t, cordon_agent_live> by_cgroup(live.begin(), live.end());
    std::vector<AgentEntry> out;
    out.reserve(ctl.size());
    for (const auto& [cgid, a] : ctl) {
        const auto it = by_cgroup.find(cgid);
        out.push_back({cgid, a, it == by_cgroup.end() ? std::nullopt : std::optional(it->second)});
    }
    return out;
}

void Guard::wait_for_decisions()
{
    auto& d = *impl_;
    std::unique_lock lk(d.mu);
    // Updating an array of maps makes the kernel wait for an RCU grace period before it returns
    // (so that no program still uses the inner map it replaced). Every cordon program runs
    // under RCU (none is sleepable), so when this returns, every decision that began before it
    // has ended.
    if (d.rcu_outer < 0) {
        d.rcu_inner = bpf_map_create(BPF_MAP_TYPE_ARRAY, "cordon_rcu_in", 4, 4, 1, nullptr);
        if (d.rcu_inner < 0)
            throw Error("cannot create a map to wait on: " + errno_text(errno));
        LIBBPF_OPTS(bpf_map_create_opts, o, .inner_map_fd = static_cast<__u32>(d.rcu_inner));
        d.rcu_outer = bpf_map_create(BPF_MAP_TYPE_ARRAY_OF_MAPS, "cordon_rcu", 4, 4, 1, &o);
        if (d.rcu_outer < 0)
            throw Error("cannot create a map to wait on: " + errno_text(errno));
    }
    const std::uint32_t zero = 0;
    const std::uint32_t inner = static_cast<std::uint32_t>(d.rcu_inner);
    const int outer = d.rcu_outer;
    lk.unlock(); // the wait itself holds no lock
    if (bpf_map_update_elem(outer, &zero, &inner, BPF_ANY) != 0)
        throw Error("cannot wait for decisions in flight: " + errno_text(errno));
}

std::uint32_t Guard::allocate_policy_id()
{
    return impl_->next_id(&cordon_config::next_policy_id);
}

std::uint64_t Guard::allocate_task_id()
{
    auto& d = *impl_;
    auto c = d.config();
    const std::uint64_t id = c.next_task_id ? c.next_task_id : 1;
    c.next_task_id = id + 1;
    d.set_config(c);
    return id;
}

std::uint32_t Guard::allocate_grant_id()
{
    return impl_->next_id(&cordon_config::next_grant_id);
}

void Guard::set_task(std::uint64_t task, const cordon_task& t)
{
    if (bpf_map_update_elem(impl_->fds[kTasks], &task, &t, BPF_ANY) != 0)
        throw Error(fmt::format("cannot write task {} into cordon_tasks: {}{}", task,
                                errno_text(errno),
                                errno == E2BIG ? fmt::format("; at most {} tasks on this host",
                                                             CORDON_MAX_TASKS)
                                               : ""));
}

void Guard::remove_task(std::uint64_t task)
{
    if (bpf_map_delete_elem(impl_->fds[kTasks], &task) != 0 && errno != ENOENT)
        throw Error(fmt::format("cannot remove task {}: {}", task, errno_text(errno)));
    // Its processes' bindings (forks included) go too; a binding of an ended task gives nothing
    // in the kernel anyway, so a failure here weakens nothing.
    for (const auto& [tgid, pt] :
         all_entries<std::uint32_t, cordon_proc_task>(impl_->fds[kProcTasks]))
        if (pt.task_id == task)
            bpf_map_delete_elem(impl_->fds[kProcTasks], &tgid);
}

std::optional<cordon_task> Guard::task(std::uint64_t task) const
{
    cordon_task t{};
    if (bpf_map_lookup_elem(impl_->fds[kTasks], &task, &t) != 0)
        return std::nullopt;
    return t;
}

std::vector<std::pair<std::uint64_t, cordon_task>> Guard::tasks() const
{
    return all_entries<std::uint64_t, cordon_task>(impl_->fds[kTasks]);
}

void Guard::bind_process(std::uint32_t tgid, std::uint64_t task)
{
    const cordon_proc_task v{.task_id = task, .start_ns = 0, .forked = 0, ._pad0 = 0};
    if (bpf_map_update_elem(impl_->fds[kProcTasks], &tgid, &v, BPF_ANY) != 0)
        throw Error(fmt::format("cannot bind process {} to task {}: {}{}", tgid, task,
                                errno_text(errno),
                                errno == E2BIG
                                    ? fmt::format("; at most {} task-bound processes on this host",
                                                  CORDON_MAX_TASK_PROCS)
                                    : ""));
}

void Guard::unbind_process(std::uint32_t tgid)
{
    bpf_map_delete_elem(impl_->fds[kProcTasks], &tgid);
}

std::vector<std::pair<std::uint32_t, cordon_proc_task>> Guard::bound_processes() const
{
    return all_entries<std::uint32_t, cordon_proc_task>(impl_->fds[kProcTasks]);
}

void Guard::set_grant(std::uint32_t id, const cordon_grant& g)
{
    if (bpf_map_update_elem(impl_->fds[kGrants], &id, &g, BPF_ANY) != 0)
        throw Error(fmt::format("cannot write grant {} into cordon_grants: {}{}", id,
                                errno_text(errno),
                                errno == E2BIG ? fmt::format("; at most {} grants on this host",
                                                             CORDON_MAX_GRANTS)
                                               : ""));
}

void Guard::remove_grant(std::uint32_t id)
{
    if (bpf_map_delete_elem(impl_->fds[kGrants], &id) != 0 && errno != ENOENT)
        throw Error(fmt::format("cannot remove grant {}: {}", id, errno_text(errno)));
}

std::vector<std::pair<std::uint32_t, cordon_grant>> Guard::grants() const
{
    return all_entries<std::uint32_t, cordon_grant>(impl_->fds[kGrants]);
}

std::optional<cordon_grant> Guard::grant(std::uint32_t id) const
{
    cordon_grant g{};
    if (bpf_map_lookup_elem(impl_->fds[kGrants], &id, &g) != 0)
        return std::nullopt;
    return g;
}

std::optional<cordon_path_value> Guard::path_rule(const cordon_path_key& key) const
{
    cordon_path_value v{};
    if (bpf_map_lookup_elem(impl_->fds[kPathRules], &key, &v) != 0)
        return std::nullopt;
    return v;
}

std::optional<cordon_net_value> Guard::net_rule(const cordon_net_key& key) const
{
    cordon_net_value v{};
    if (bpf_map_lookup_elem(impl_->fds[kNetRules], &key, &v) != 0)
        return std::nullopt;
    return v;
}

std::uint32_t Guard::allocate_agent_id()
{
    return impl_->next_id(&cordon_config::next_agent_id);
}

void Guard::load_policy(const policy::CompiledPolicy& c)
{
    auto& d = *impl_;
    std::vector<cordon_path_key> paths_done;
    std::vector<cordon_net_key> nets_done;
    std::vector<cordon_dns_rule_key> dns_done;
    const auto undo = [&] {
        for (const auto& k : paths_done)
            bpf_map_delete_elem(d.fds[kPathRules], &k);
        for (const auto& k : nets_done)
            bpf_map_delete_elem(d.fds[kNetRules], &k);
        for (const auto& k : dns_done)
            bpf_map_delete_elem(d.fds[kDnsRules], &k);
        bpf_map_delete_elem(d.fds[kPolicies], &c.policy_id);
    };
    const auto fail = [&](const std::string& what) {
        const int err = errno;
        undo();
        throw Error("cannot load the policy into the kernel (" + what + "): " + errno_text(err) +
                    (err == E2BIG || err == ENOMEM ? "; the policy exceeds the map sizes" : "") +
                    "; nothing was applied");
    };
    if (c.policy_id == 0)
        throw Error("policy id 0 is reserved; allocate one with allocate_policy_id()");
    // Rules first, the policy entry last: an agent only sees the policy once it is complete.
    for (const auto& [k, v] : c.paths) {
        if (bpf_map_update_elem(d.fds[kPathRules], &k, &v, BPF_ANY) != 0)
            fail("path rule");
        paths_done.push_back(k);
    }
    for (const auto& [k, v] : c.nets) {
        if (bpf_map_update_elem(d.fds[kNetRules], &k, &v, BPF_ANY) != 0)
            fail("network rule");
        nets_done.push_back(k);
    }
    for (const auto& [k, v] : c.dns) {
        if (bpf_map_update_elem(d.fds[kDnsRules], &k, &v, BPF_ANY) != 0)
            fail("host name");
        dns_done.push_back(k);
    }
    if (bpf_map_update_elem(d.fds[kPolicies], &c.policy_id, &c.settings, BPF_ANY) != 0)
        fail("policy settings");
    std::lock_guard lk(d.mu);
    d.loaded[c.policy_id] = {std::move(paths_done), std::move(nets_done), std::move(dns_done)};
}

void Guard::unload_policy(std::uint32_t policy_id)
{
    auto& d = *impl_;
    // Settings first: an agent still pointing at this id is then denied everything (a missing
    // policy fails closed), never decided by half a rule set.
    if (bpf_map_delete_elem(d.fds[kPolicies], &policy_id) != 0 && errno != ENOENT)
        throw Error(fmt::format("cannot remove policy {}: {}", policy_id, errno_text(errno)));
    RuleKeys keys;
    std::unique_lock lk(d.mu);
    const auto pick = [policy_id](std::uint32_t id) { return id == policy_id; };
    if (auto it = d.loaded.find(policy_id); it != d.loaded.end()) {
        keys = std::move(it->second);
        d.loaded.erase(it);
        lk.unlock();
    } else {
        lk.unlock();
        keys = rule_keys(d.rule_fds(), pick);
    }
    delete_rule_keys(d.rule_fds(), keys, pick);
}

std::size_t Guard::remove_orphan_rules(const std::vector<std::uint32_t>& keep)
{
    auto& d = *impl_;
    const auto ids = policy_ids();
    const auto orphan = [&](std::uint32_t id) {
        return std::find(ids.begin(), ids.end(), id) == ids.end() &&
               std::find(keep.begin(), keep.end(), id) == keep.end();
    };
    const auto keys = rule_keys(d.rule_fds(), orphan);
    delete_rule_keys(d.rule_fds(), keys, orphan);
    return keys.paths.size() + keys.nets.size() + keys.dns.size();
}

std::optional<cordon_policy> Guard::policy_settings(std::uint32_t policy_id) const
{
    cordon_policy p{};
    if (bpf_map_lookup_elem(impl_->fds[kPolicies], &policy_id, &p) != 0)
        return std::nullopt;
    return p;
}

std::vector<std::uint32_t> Guard::policy_ids() const
{
    return all_keys<std::uint32_t>(impl_->fds[kPolicies]);
}

void Guard::set_dns_config(const cordon_dns_config& c)
{
    const std::uint32_t zero = 0;
    if (bpf_map_update_elem(impl_->fds[kDnsConfig], &zero, &c, BPF_ANY) != 0)
        throw Error("cannot write the DNS gateway's state: " + errno_text(errno));
}

std::optional<cordon_dns_config> Guard::dns_config() const
{
    const std::uint32_t zero = 0;
    cordon_dns_config c{};
    if (bpf_map_lookup_elem(impl_->fds[kDnsConfig], &zero, &c) != 0)
        return std::nullopt;
    return c;
}

std::optional<cordon_dns_sock> Guard::dns_sock(std::uint64_t cookie) const
{
    cordon_dns_sock s{};
    if (bpf_map_lookup_elem(impl_->fds[kDnsSocks], &cookie, &s) != 0)
        return std::nullopt;
    return s;
}

std::optional<cordon_dns_rule> Guard::dns_rule(std::uint32_t policy_id, std::string_view name) const
{
    cordon_dns_rule_key k{};
    if (name.size() >= sizeof(k.name))
        return std::nullopt;
    k.policy_id = policy_id;
    std::memcpy(k.name, name.data(), name.size());
    cordon_dns_rule v{};
    if (bpf_map_lookup_elem(impl_->fds[kDnsRules], &k, &v) != 0)
        return std::nullopt;
    return v;
}

bool Guard::set_dns_host(const cordon_dns_host_key& k, const cordon_dns_host& v)
{
    // The table is not preallocated: its element cache refills asynchronously, so an insert
    // may fail with ENOMEM for a moment. A few short retries before the answer is refused
    // (fails closed: the lookup is REFUSED, outcome full); E2BIG (full) is not retried.
    for (int tries = 0;; ++tries) {
        if (bpf_map_update_elem(impl_->fds[kDnsHosts], &k, &v, BPF_ANY) == 0)
            return true;
        if (errno != ENOMEM || tries == 4)
            return false;
        ::usleep(200);
    }
}

void Guard::remove_dns_host(const cordon_dns_host_key& k)
{
    bpf_map_delete_elem(impl_->fds[kDnsHosts], &k);
}

std::optional<cordon_dns_host> Guard::dns_host(const cordon_dns_host_key& k) const
{
    cordon_dns_host v{};
    if (bpf_map_lookup_elem(impl_->fds[kDnsHosts], &k, &v) != 0)
        return std::nullopt;
    return v;
}

std::vector<std::pair<cordon_dns_host_key, cordon_dns_host>> Guard::dns_hosts() const
{
    return all_entries<cordon_dns_host_key, cordon_dns_host>(impl_->fds[kDnsHosts]);
}

void Guard::protect_state(const std::vector<fs::path>& paths)
{
    const int fd = impl_->fds[kStateInodes];
    for (const auto& k : all_keys<cordon_inode_key>(fd))
        bpf_map_delete_elem(fd, &k);
    for (const auto& p : paths) {
        struct stat st {};
        if (::stat(p.c_str(), &st) != 0)
            throw Error("cannot protect " + p.string() + ": " + errno_text(errno));
        // The kernel's own encoding of the device (MKDEV), which is not stat's.
        const cordon_inode_key k{.ino = st.st_ino,
                                 .dev = (major(st.st_dev) << 20) | minor(st.st_dev),
                                 ._pad = 0};
        const std::uint8_t one = 1;
        if (bpf_map_update_elem(fd, &k, &one, BPF_ANY) != 0)
            throw Error("cannot protect " + p.string() + ": " + errno_text(errno));
    }
}

void Guard::protect_process(std::uint32_t tgid)
{
    const std::uint8_t one = 1;
    if (bpf_map_update_elem(impl_->fds[kProtected], &tgid, &one, BPF_ANY) != 0)
        throw Error("cannot protect process " + std::to_string(tgid) + ": " + errno_text(errno));
}

void Guard::unprotect_process(std::uint32_t tgid)
{
    bpf_map_delete_elem(impl_->fds[kProtected], &tgid);
}

std::vector<std::uint32_t> Guard::protected_processes() const
{
    return all_keys<std::uint32_t>(impl_->fds[kProtected]);
}

std::array<std::uint64_t, CORDON_CNT_MAX> Guard::counters() const
{
    std::array<std::uint64_t, CORDON_CNT_MAX> sum{};
    const int ncpu = libbpf_num_possible_cpus();
    if (ncpu <= 0)
        throw Error("cannot count possible CPUs: " + errno_text(-ncpu));
    std::vector<std::uint64_t> per_cpu(static_cast<size_t>(ncpu));
    for (std::uint32_t i = 0; i < CORDON_CNT_MAX; ++i) {
        if (bpf_map_lookup_elem(impl_->fds[kCounters], &i, per_cpu.data()) != 0)
            throw Error("cannot read cordon_counters: " + errno_text(errno));
        for (auto v : per_cpu)
            sum[i] += v;
    }
    return sum;
}

int Guard::events_fd() const
{
    return impl_->fds[kEvents];
}

int Guard::event_shares_fd() const
{
    return impl_->fds[kEventShares];
}

cordon_backend Guard::backend() const
{
    return impl_->backend;
}

std::vector<std::uint32_t> Guard::program_ids() const
{
    std::vector<int> fds;
    std::vector<int> owned;
    if (!impl_->links.empty()) {
        for (auto* l : impl_->links)
            fds.push_back(bpf_link__fd(l));
    } else if (impl_->pin_dir) {
        std::error_code ec;
        for (const auto& e : fs::directory_iterator(*impl_->pin_dir / "links", ec)) {
            const int fd = bpf_obj_get(e.path().c_str());
            if (fd >= 0) {
                fds.push_back(fd);
                owned.push_back(fd);
            }
        }
    }
    std::vector<std::uint32_t> ids;
    for (int fd : fds) {
        struct bpf_link_info info {};
        __u32 len = sizeof(info);
        if (bpf_obj_get_info_by_fd(fd, &info, &len) == 0)
            ids.push_back(info.prog_id);
    }
    for (int fd : owned)
        ::close(fd);
    std::sort(ids.begin(), ids.end());
    return ids;
}

std::vector<std::string> missing_fmod_ret_targets()
{
    std::vector<std::string> missing;
    const auto check = [&missing](struct bpf_object* obj) {
        struct bpf_program* p = nullptr;
        bpf_object__for_each_program(p, obj)
        {
            if (!is_lsm(p) || late_hook(lsm_hook_of(p)))
                continue;
            const std::string target = fmod_ret_target(lsm_hook_of(p));
            if (btf_func_args(target, 0) == 0 && std::ranges::find(missing, target) == missing.end())
                missing.push_back(target);
        }
    };
    // Opening reads the object's ELF only; nothing is loaded.
    check(Skeleton<guard_bpf>::open().object());
    return missing;
}

} // namespace cordon::bpf
