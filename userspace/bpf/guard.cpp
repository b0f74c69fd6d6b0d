// SPDX-License-Identifier: Apache-2.0
#include "bpf/guard.h"

#include <fcntl.h>
#include <unistd.h>

#include <string>
#include <vector>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "bpf/skeleton.h"
#include "common/error.h"
#include "exec_guard.skel.h"
#include "net_guard.skel.h"

namespace cordon::bpf {

CORDON_SKELETON_OPS(exec_guard_bpf);
CORDON_SKELETON_OPS(net_guard_bpf);

namespace {

std::string load_failure(const char* what, int err, cordon_backend backend)
{
    std::string msg = std::string("the kernel refused to load ") + what + " for the " +
                      std::string(backend == CORDON_BACKEND_LSM ? "lsm" : "compat") +
                      " backend: " + errno_text(err);
    if (err == EPERM)
        msg += "; run as root, and run `cordon doctor` to see which programs this kernel allows";
    return msg;
}

} // namespace

struct Guard::Impl {
    cordon_backend backend;
    Skeleton<net_guard_bpf> net = Skeleton<net_guard_bpf>::open();
    Skeleton<exec_guard_bpf> exec = Skeleton<exec_guard_bpf>::open();
    std::vector<struct bpf_link*> links;
    int cgroup_fd = -1;

    ~Impl()
    {
        for (auto* l : links)
            bpf_link__destroy(l);
        if (cgroup_fd >= 0)
            ::close(cgroup_fd);
    }

    void attach(struct bpf_program* prog, bool to_cgroup)
    {
        struct bpf_link* l = to_cgroup ? bpf_program__attach_cgroup(prog, cgroup_fd)
                                       : bpf_program__attach(prog);
        if (!l)
            throw Error(std::string("the kernel refused to attach ") + bpf_program__name(prog) +
                        ": " + errno_text(errno) + "; run `cordon doctor`");
        links.push_back(l);
    }
};

Guard::Guard(const GuardOptions& opts) : impl_(std::make_unique<Impl>())
{
    auto& d = *impl_;
    d.backend = opts.backend;
    if (opts.backend != CORDON_BACKEND_LSM && opts.backend != CORDON_BACKEND_COMPAT)
        throw Error("no usable backend on this kernel; run `cordon doctor` for the reason");

    // Configure (rodata) between open and load.
    d.net->rodata->agent_level = opts.agent_level;
    d.net->rodata->backend_id = opts.backend;
    d.exec->rodata->agent_level = opts.agent_level;
    d.exec->rodata->backend_id = opts.backend;
    const bool lsm = opts.backend == CORDON_BACKEND_LSM;
    bpf_program__set_autoload(d.exec->progs.exec_guard_bprm_check, lsm);
    bpf_program__set_autoload(d.exec->progs.exec_guard_sched_exec, !lsm);

    if (int err = d.net.load(); err != 0)
        throw Error(load_failure("net_guard", -err, opts.backend));
    // One set of maps: exec_guard uses the maps net_guard created.
    const std::pair<struct bpf_map*, struct bpf_map*> shared[] = {
        {d.exec->maps.cordon_agents, d.net->maps.cordon_agents},
        {d.exec->maps.cordon_events, d.net->maps.cordon_events},
        {d.exec->maps.cordon_counters, d.net->maps.cordon_counters},
    };
    for (auto [mine, theirs] : shared)
        if (int err = bpf_map__reuse_fd(mine, bpf_map__fd(theirs)); err != 0)
            throw Error(std::string("cannot share map ") + bpf_map__name(mine) + ": " +
                        errno_text(-err));
    if (int err = d.exec.load(); err != 0)
        throw Error(load_failure("exec_guard", -err, opts.backend));

    d.cgroup_fd = ::open(opts.net_attach_cgroup.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (d.cgroup_fd < 0)
        throw Error("cannot open cgroup " + opts.net_attach_cgroup.string() + ": " +
                    errno_text(errno));
    d.attach(d.net->progs.net_guard_connect4, true);
    d.attach(d.net->progs.net_guard_connect6, true);
    d.attach(d.net->progs.net_guard_sendmsg4, true);
    d.attach(d.net->progs.net_guard_sendmsg6, true);
    d.attach(lsm ? d.exec->progs.exec_guard_bprm_check : d.exec->progs.exec_guard_sched_exec,
             false);
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
