// SPDX-License-Identifier: Apache-2.0
#include "bpf/guard.h"

#include <fcntl.h>
#include <unistd.h>

#include <string>
#include <vector>

#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>

#include "bpf/skeleton.h"
#include "common/error.h"
#include "exec_guard.skel.h"
#include "file_guard.skel.h"
#include "net_guard.skel.h"
#include "tamper_guard.skel.h"

namespace cordon::bpf {

CORDON_SKELETON_OPS(exec_guard_bpf);
CORDON_SKELETON_OPS(file_guard_bpf);
CORDON_SKELETON_OPS(net_guard_bpf);
CORDON_SKELETON_OPS(tamper_guard_bpf);

unsigned lsm_hook_args(const char* hook, unsigned missing)
{
    // The kernel's BTF is megabytes: parsed once per process, and kept (it does not change).
    static struct btf* const vmlinux = btf__load_vmlinux_btf();
    if (!vmlinux)
        return missing;
    const int id = btf__find_by_name_kind(vmlinux, (std::string("bpf_lsm_") + hook).c_str(),
                                          BTF_KIND_FUNC);
    if (id <= 0)
        return missing;
    const struct btf_type* fn = btf__type_by_id(vmlinux, static_cast<__u32>(id));
    const struct btf_type* proto = btf__type_by_id(vmlinux, fn->type);
    return proto ? btf_vlen(proto) : missing;
}

namespace {

// Maps that every object declares and that must be one map across objects.
constexpr const char* kSharedMaps[] = {"cordon_agents",    "cordon_policies", "cordon_path_rules",
                                       "cordon_net_rules", "cordon_protected", "cordon_events",
                                       "cordon_counters"};

std::string load_failure(const char* what, int err, cordon_backend backend)
{
    std::string msg = std::string("the kernel refused to load ") + what + " for the " +
                      std::string(backend == CORDON_BACKEND_LSM ? "lsm" : "compat") +
                      " backend: " + errno_text(err);
    if (err == EPERM)
        msg += "; run as root, and run `cordon doctor` to see which programs this kernel allows";
    return msg;
}

bool is_lsm(struct bpf_program* p)
{
    return std::string_view(bpf_program__section_name(p)).starts_with("lsm");
}

} // namespace

struct Guard::Impl {
    cordon_backend backend;
    Skeleton<net_guard_bpf> net = Skeleton<net_guard_bpf>::open();
    Skeleton<exec_guard_bpf> exec = Skeleton<exec_guard_bpf>::open();
    Skeleton<file_guard_bpf> file = Skeleton<file_guard_bpf>::open();
    std::optional<Skeleton<tamper_guard_bpf>> tamper;
    std::vector<struct bpf_link*> links;
    int cgroup_fd = -1;

    ~Impl()
    {
        for (auto* l : links)
            bpf_link__destroy(l);
        if (cgroup_fd >= 0)
            ::close(cgroup_fd);
    }

    // Hands net_guard's maps to another object before it loads.
    void share_maps(struct bpf_object* obj)
    {
        for (const char* name : kSharedMaps) {
            struct bpf_map* mine = bpf_object__find_map_by_name(obj, name);
            struct bpf_map* theirs = bpf_object__find_map_by_name(net.object(), name);
            if (!mine || !theirs)
                continue; // an object may not declare every map
            if (int err = bpf_map__reuse_fd(mine, bpf_map__fd(theirs)); err != 0)
                throw Error(std::string("cannot share map ") + name + ": " + errno_text(-err));
        }
    }

    template <typename Skel> void configure(Skel& s, const GuardOptions& o)
    {
        s->rodata->agent_level = o.agent_level;
        s->rodata->backend_id = o.backend;
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
            struct bpf_link* l = cgroup ? bpf_program__attach_cgroup(p, cgroup_fd)
                                        : bpf_program__attach(p);
            if (!l)
                throw Error(std::string("the kernel refused to attach ") +
                            bpf_program__name(p) + ": " + errno_text(errno) +
                            "; run `cordon doctor`");
            links.push_back(l);
        }
    }
};

Guard::Guard(const GuardOptions& opts) : impl_(std::make_unique<Impl>())
{
    auto& d = *impl_;
    d.backend = opts.backend;
    if (opts.backend != CORDON_BACKEND_LSM && opts.backend != CORDON_BACKEND_COMPAT)
        throw Error("no usable backend on this kernel; run `cordon doctor` for the reason");
    const bool lsm = opts.backend == CORDON_BACKEND_LSM;

    // Configure (rodata, autoload) between open and load.
    d.configure(d.net, opts);
    d.configure(d.exec, opts);
    d.configure(d.file, opts);
    bpf_program__set_autoload(d.exec->progs.exec_guard_bprm_check, lsm);
    bpf_program__set_autoload(d.exec->progs.exec_guard_sched_exec, !lsm);
    struct bpf_program* p = nullptr;
    bpf_object__for_each_program(p, d.file.object())
    {
        bpf_program__set_autoload(p, is_lsm(p) == lsm);
    }
    bpf_object__for_each_program(p, d.net.object())
    {
        if (is_lsm(p))
            bpf_program__set_autoload(p, lsm);
    }
    if (lsm) {
        // Hooks whose arguments or existence differ between kernels, read from the kernel's BTF.
        const bool idmap = lsm_hook_args("inode_setattr", 2) == 3;
        bpf_program__set_autoload(d.file->progs.file_guard_inode_setattr, !idmap);
        bpf_program__set_autoload(d.file->progs.file_guard_inode_setattr_idmap, idmap);
        // Hooks added in 6.2: before it, ACLs are xattrs and ftruncate is a path_truncate.
        for (auto* late : {d.file->progs.file_guard_inode_set_acl,
                           d.file->progs.file_guard_inode_remove_acl,
                           d.file->progs.file_guard_file_truncate})
            if (lsm_hook_args(bpf_program__section_name(late) + 4, 0) == 0)
                bpf_program__set_autoload(late, false);
    }
    if (lsm) {
        d.tamper.emplace(Skeleton<tamper_guard_bpf>::open());
        d.configure(*d.tamper, opts);
    }

    if (int err = d.net.load(); err != 0)
        throw Error(load_failure("net_guard", -err, opts.backend));
    d.share_maps(d.exec.object());
    if (int err = d.exec.load(); err != 0)
        throw Error(load_failure("exec_guard", -err, opts.backend));
    d.share_maps(d.file.object());
    if (int err = d.file.load(); err != 0)
        throw Error(load_failure("file_guard", -err, opts.backend));
    if (d.tamper) {
        d.share_maps(d.tamper->object());
        if (int err = d.tamper->load(); err != 0)
            throw Error(load_failure("tamper_guard", -err, opts.backend));
    }

    d.cgroup_fd = ::open(opts.net_attach_cgroup.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (d.cgroup_fd < 0)
        throw Error("cannot open cgroup " + opts.net_attach_cgroup.string() + ": " +
                    errno_text(errno));
    d.attach_all(d.net.object());
    d.attach_all(d.exec.object());
    d.attach_all(d.file.object());
    if (d.tamper)
        d.attach_all(d.tamper->object());
}

Guard::~Guard() = default;

void Guard::set_agent(std::uint64_t cgid, const cordon_agent_state& state)
{
    if (bpf_map__update_elem(impl_->net->maps.cordon_agents, &cgid, sizeof(cgid), &state,
                             sizeof(state), BPF_ANY) != 0)
        throw Error("cannot write agent " + std::to_string(cgid) + " into cordon_agents: " +
                    errno_text(errno));
}

void Guard::remove_agent(std::uint64_t cgid)
{
    if (bpf_map__delete_elem(impl_->net->maps.cordon_agents, &cgid, sizeof(cgid), 0) != 0 &&
        errno != ENOENT)
        throw Error("cannot remove agent " + std::to_string(cgid) + ": " + errno_text(errno));
}

std::optional<cordon_agent_state> Guard::agent(std::uint64_t cgid) const
{
    cordon_agent_state s{};
    if (bpf_map__lookup_elem(impl_->net->maps.cordon_agents, &cgid, sizeof(cgid), &s, sizeof(s),
                             0) != 0)
        return std::nullopt;
    return s;
}

void Guard::load_policy(const policy::CompiledPolicy& c)
{
    auto& m = impl_->net->maps;
    std::vector<cordon_path_key> paths_done;
    std::vector<cordon_net_key> nets_done;
    const auto undo = [&] {
        for (const auto& k : paths_done)
            bpf_map__delete_elem(m.cordon_path_rules, &k, sizeof(k), 0);
        for (const auto& k : nets_done)
            bpf_map__delete_elem(m.cordon_net_rules, &k, sizeof(k), 0);
        bpf_map__delete_elem(m.cordon_policies, &c.policy_id, sizeof(c.policy_id), 0);
    };
    const auto fail = [&](const std::string& what) {
        const int err = errno;
        undo();
        throw Error("cannot load the policy into the kernel (" + what + "): " + errno_text(err) +
                    (err == E2BIG || err == ENOMEM ? "; the policy exceeds the map sizes" : "") +
                    "; nothing was applied");
    };
    // Rules first, the policy entry last: an agent only sees the policy once it is complete.
    for (const auto& [k, v] : c.paths) {
        if (bpf_map__update_elem(m.cordon_path_rules, &k, sizeof(k), &v, sizeof(v), BPF_ANY) != 0)
            fail("path rule");
        paths_done.push_back(k);
    }
    for (const auto& [k, v] : c.nets) {
        if (bpf_map__update_elem(m.cordon_net_rules, &k, sizeof(k), &v, sizeof(v), BPF_ANY) != 0)
            fail("network rule");
        nets_done.push_back(k);
    }
    if (bpf_map__update_elem(m.cordon_policies, &c.policy_id, sizeof(c.policy_id), &c.settings,
                             sizeof(c.settings), BPF_ANY) != 0)
        fail("policy settings");
}

void Guard::protect_process(std::uint32_t tgid)
{
    const std::uint8_t one = 1;
    if (bpf_map__update_elem(impl_->net->maps.cordon_protected, &tgid, sizeof(tgid), &one,
                             sizeof(one), BPF_ANY) != 0)
        throw Error("cannot protect process " + std::to_string(tgid) + ": " + errno_text(errno));
}

void Guard::unprotect_process(std::uint32_t tgid)
{
    bpf_map__delete_elem(impl_->net->maps.cordon_protected, &tgid, sizeof(tgid), 0);
}

std::array<std::uint64_t, CORDON_CNT_MAX> Guard::counters() const
{
    std::array<std::uint64_t, CORDON_CNT_MAX> sum{};
    const int ncpu = libbpf_num_possible_cpus();
    if (ncpu <= 0)
        throw Error("cannot count possible CPUs: " + errno_text(-ncpu));
    std::vector<std::uint64_t> per_cpu(static_cast<size_t>(ncpu));
    for (std::uint32_t i = 0; i < CORDON_CNT_MAX; ++i) {
        if (bpf_map__lookup_elem(impl_->net->maps.cordon_counters, &i, sizeof(i), per_cpu.data(),
                                 per_cpu.size() * sizeof(std::uint64_t), 0) != 0)
            throw Error("cannot read cordon_counters: " + errno_text(errno));
        for (auto v : per_cpu)
            sum[i] += v;
    }
    return sum;
}

int Guard::events_fd() const
{
    return bpf_map__fd(impl_->net->maps.cordon_events);
}

cordon_backend Guard::backend() const
{
    return impl_->backend;
}

} // namespace cordon::bpf
