// SPDX-License-Identifier: Apache-2.0
// The controller library: one shared program set (bpf::Guard) and the registry of the agents it
// guards, with the operations both cordond and an embedded `cordon run` are built from: prepare
// a policy, add an agent (a new cgroup or an existing one), remove it, reconcile with the cgroup
// tree. Not thread-safe by design: one thread owns all BPF state.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "agents/cgroup.h"
#include "bpf/guard.h"
#include "common/error.h"
#include "control/registry.h"
#include "policy/compiler.h"
#include "policy/model.h"
#include "policy/pipeline.h"

namespace cordon::control {

/// A policy that parsed, resolved and compiled (with a throwaway id): safe to apply.
struct PreparedPolicy {
    policy::Policy policy;
    std::string file;   ///< as the caller named it
    std::string sha256; ///< of the text
    std::vector<std::string> warnings;
    policy::Context context; ///< what ${HOME}, ${WORKSPACE} and ${USER} stood for
    std::string text;        ///< the policy text, kept for attachments that outlive a reboot
    std::string mode;        ///< "enforce" or "audit" given over spec.mode; empty: none
};

/// Parses, resolves host names and test-compiles policy text (policy::prepare_document). Throws
/// Error listing every diagnostic (one per line, file:line:column) when it is not valid; nothing
/// is touched.
PreparedPolicy prepare_policy(const std::string& text, const std::string& file,
                              const policy::Context& ctx, std::optional<policy::Mode> mode,
                              policy::Resolver& resolver);

/// prepare_policy and prepare_overlay: an AgentPolicy (with `mode` over its spec.mode) or a
/// TaskOverlay document.
PreparedPolicy prepare_document(const std::string& text, const std::string& file,
                                const policy::Context& ctx, policy::Resolver& resolver,
                                bool overlay, std::optional<policy::Mode> mode);

/// Parses, resolves host names and test-compiles a task overlay (kind TaskOverlay) with an
/// agent's variables. Throws Error listing every diagnostic when it is not valid.
PreparedPolicy prepare_overlay(const std::string& text, const std::string& file,
                               const policy::Context& ctx, policy::Resolver& resolver);

/// The end of policy::resolve_and_compile() (which may run on a worker thread) as the
/// controller takes it: the policy with the text's digest and the variables it was expanded
/// with, or Error listing every diagnostic. `text`, `file` and `ctx` are what it was checked from.
PreparedPolicy accept_prepared(policy::Prepared prepared, const std::string& text,
                               const std::string& file, const policy::Context& ctx, bool overlay);

/// "auto", "lsm" or "compat" -> the backend to load, or Error naming why it cannot run.
cordon_backend pick_backend(const std::string& wanted);

/// Lowercase hex SHA-256 of a string.
std::string sha256_hex(const std::string& data);

struct ControllerOptions {
    std::string backend = "auto";
    /// cordond: pin here, and adopt what is pinned here on start.
    std::optional<std::filesystem::path> pin_dir;
    /// cordond: keep the registry in this directory (a file per agent).
    std::optional<std::filesystem::path> registry_dir;
    /// Event ring buffer size in bytes; 0: CORDON_RINGBUF_BYTES.
    std::uint32_t ringbuf_bytes = 0;
    /// cordond: attachments and templates are also kept here (on disk, not /run), so that a
    /// daemon started after a reboot guards their paths again (restore()).
    std::optional<std::filesystem::path> durable_dir;
};

/// What add_agent needs besides the policy.
/// Six random hex digits: default agent names, terminal tags.
std::string random_suffix();

struct NewAgent {
    /// Default: the policy's name and a random suffix.
    std::optional<std::string> name;
    /// Attach: this existing cgroup2 directory. Empty: create <root>/cordon/<name> (run).
    std::filesystem::path cgroup;
    std::optional<int> owner_pid; ///< run sessions: the owning `cordon run` process
    /// Attach: the cgroup need not exist yet; the agent waits for it (`cordon attach --wait`).
    bool wait = false;
    bool killed = false; ///< restored after a reboot with its kill flag (restore())
};

/// `cordon attach --children PARENT` or `--cgroup PARENT/PREFIX*SUFFIX`: every matching child of
/// PARENT, made now or later, becomes an agent of its own.
struct NewTemplate {
    std::string name;              ///< the template's name, and its children's name prefix
    std::filesystem::path pattern; ///< PARENT/NAME-PATTERN (one '*', in the last component)
    bool wait = false;             ///< PARENT need not exist yet
};

/// Whether a cgroup name matches a template's pattern (at most one '*', which matches any run
/// of characters, none included), as the kernel matches it.
bool name_matches(const std::string& pattern, const std::string& name);
/// Whether some cgroup name matches both patterns.
bool patterns_overlap(const std::string& a, const std::string& b);

class Controller {
public:
    explicit Controller(const ControllerOptions& opts);
    /// cgroups that cordon created stay (with their agents) when the controller is pinned;
    /// otherwise they are killed and removed.
    ~Controller();
    Controller(const Controller&) = delete;
    Controller& operator=(const Controller&) = delete;

    /// Adds an agent, enforced when this returns. Throws Error (and changes nothing) for a bad
    /// name, a name in use, a cgroup that is not a cgroup2 directory, is the root, holds cordon
    /// itself, lies inside or above another agent, or is <root>/cordon itself.
    const AgentRecord& add_agent(const NewAgent& a, const PreparedPolicy& p);
    /// Stops guarding an agent and unloads its policy. A run agent's cgroup is killed and removed
    /// (it is cordon's); an attached cgroup and its processes are left alone. A template's name
    /// ends the template and every agent it made.
    void remove_agent(const std::string& name);
    /// Adds a template, in force in the kernel when this returns: matching children that exist
    /// are guarded now, later ones by the kernel as they are made. Throws Error (and changes
    /// nothing) for a bad pattern, a parent outside cgroup2, one whose children include cordon's
    /// subtree or cordon itself, or one inside or above an agent.
    const AgentRecord& add_template(const NewTemplate& t, const PreparedPolicy& p);
    const std::vector<AgentRecord>& templates() const { return templates_; }
    /// Records for the children the kernel made since the last look (reconcile does this too):
    /// for an event of an agent the records do not know yet. Returns what changed.
    std::vector<std::string> adopt_templates();
    const AgentRecord* find_template(const std::string& name) const;
    /// After a reboot (durable records with no registry record): each attachment and template is
    /// added again with its policy text, prepared by `prepare`. Returns what it did.
    std::vector<std::string> restore(
        const std::function<PreparedPolicy(const AgentRecord&)>& prepare);
    /// Drops a run agent's owner: it runs on under the controller (`cordon run --detach`).
    void release_owner(const std::string& name);

    /// Kill switch. Sets the operator's kill flag (from that one map write on, every hook
    /// refuses every access of every process of the agent), then writes cgroup.kill, which
    /// SIGKILLs the subtree, forks in flight included. Returns the CLOCK_MONOTONIC time of the
    /// flag write, in ns. The cgroup empties asynchronously; the agent stays killed (refused
    /// everything, emptied again if anything enters) until it is removed.
    std::int64_t kill(const std::string& name);
    /// Freeze for review: the operator's freeze flag (every access refused from that write on),
    /// then cgroup.freeze. Processes keep their state; freezing completes asynchronously.
    void freeze(const std::string& name);
    /// Thaw: clears the operator's flag and starts a new thaw epoch (which ends a freeze
    /// verdict's mark), then thaws the cgroup.
    void thaw(const std::string& name);
    /// Whether the kernel refuses the agent everything because it is frozen.
    bool frozen(const AgentRecord& r) const;

    struct Applied {
        std::uint32_t old_policy = 0, new_policy = 0;
        std::int64_t loaded_ns = 0;   ///< CLOCK_MONOTONIC: the new policy was in the maps
        std::int64_t recorded_ns = 0; ///< the registry named it (the switch comes next)
        std::int64_t switched_ns = 0; ///< CLOCK_MONOTONIC: the agent's entry named it
        std::uint8_t old_mode = 0, new_mode = 0;
    };
    /// Replaces a running agent's policy atomically: the new policy is compiled and loaded under
    /// a new id, the agent switched to it with one map write, and the old one removed once no
    /// decision in flight can still use it. A decision is made by the old policy or the new one,
    /// never by a mix or by neither. Score, task and kill/freeze state are kernel state and stay.
    /// Throws Error (and changes nothing) when the policy does not compile or load.
    Applied apply_policy(const std::string& name, const PreparedPolicy& p);

    /// apply_policy in steps, so that a daemon's loop does only the switch and the slow steps
    /// (compile and load; the grace period and unload) run on a worker thread:
    /// 1. on the loop, reserve_policy_id(): an id that reconcile leaves alone until released;
    /// 2. anywhere, load_reserved(): compiles and loads the policy under it (whole or not at
    ///    all; it touches the kernel's maps only, never the records); returns its mode;
    /// 3. on the loop, switch_policy(): the record, then the agent's entry, one map write;
    ///    the old id comes back reserved (Applied::old_policy);
    /// 4. anywhere, unload_after_decisions(old); then on the loop release_policy_id(old).
    /// A reserved id that is never switched to is unloaded and released the same way.
    std::uint32_t reserve_policy_id();
    static std::uint8_t load_reserved(bpf::Guard& g, std::uint32_t id, const PreparedPolicy& p);
    Applied switch_policy(const std::string& name, const PreparedPolicy& p, std::uint32_t id,
                          std::uint8_t mode);
    static void unload_after_decisions(bpf::Guard& g, std::uint32_t id);
    void release_policy_id(std::uint32_t id);
    /// Switches an agent between enforce and audit with one map write.
    void set_mode(const std::string& name, cordon_mode mode);

    /// An agent's trust as the kernel has it now: the score (with an operator's set not yet
    /// applied, and recovery not yet credited, counted as the kernel will count them at the
    /// agent's next decision) and the tier it gives.
    struct Trust {
        bool scoring = false;
        std::uint32_t score = 0;
        std::uint32_t tier = 0;
        std::string tier_name;
        std::uint32_t recovery_per_minute = 0;
        cordon_agent_live live{};
    };
    Trust trust(const std::string& name) const;
    /// `cordon trust --set`: the kernel sets the score at the agent's next decision (it is the
    /// only writer of the score). If the tier it gives says on_enter freeze or kill, the agent
    /// is frozen or killed now, as the kernel would at that decision. Returns the trust after.
    Trust set_score(const std::string& name, std::uint32_t score);

    struct TaskSpec {
        std::string id;
        std::optional<PreparedPolicy> overlay; ///< from prepare_overlay
        std::uint64_t ttl_ms = 0;              ///< 0: until `task end`
        std::optional<int> pid;                ///< bind to this process subtree
    };
    /// Begins a task, in force in the kernel when this returns. Throws Error (and changes
    /// nothing) for a bad or duplicate id, too many tasks, a second agent-wide task, a process
    /// that is not in the agent, or an overlay that does not load.
    const TaskRecord& begin_task(const std::string& name, TaskSpec spec);
    /// Ends a task (empty id: the agent-wide one): its overlay and its grants go with it.
    void end_task(const std::string& name, const std::string& id);

    struct GrantSpec {
        GrantKind kind = GrantKind::Read;
        std::string target; ///< PATH, or CIDR|HOST[:PORTS][/tcp|udp] for connect
        std::uint64_t ttl_ms = 0;
        std::string task;   ///< bind to this task; empty: the whole agent
        std::string reason;
        std::string by;
    };
    /// Gives a grant, in force in the kernel when this returns (and never after its expiry, by
    /// the kernel's clock). Throws Error (and changes nothing) for a bad target, a TTL outside
    /// 1 s..24 h, an unknown task, or more than CORDON_MAX_GRANTS_PER_AGENT grants.
    const GrantRecord& grant(const std::string& name, const GrantSpec& g, policy::Resolver& r);
    /// Revokes a grant: from the next decision on it allows nothing.
    void revoke(const std::string& name, std::uint32_t id);
    /// Ends expired tasks and removes expired grants (the kernel already refuses them), and
    /// unloads compiled sets nothing uses any more. Returns what changed.
    std::vector<std::string> expire();

    const AgentRecord* find(const std::string& name) const;
    const std::vector<AgentRecord>& agents() const { return agents_; }
    /// The cgroup of a run agent (cordon's own), for its launcher.
    const agents::Cgroup& cgroup(const std::string& name) const;

    /// Removes agents whose cgroup is gone or was replaced, run agents whose owner died or whose
    /// processes all ended, and policies no agent uses; an attached agent whose cgroup was made
    /// again at its path (a service restart) is guarded there. Returns what changed, and why.
    std::vector<std::string> reconcile();

    /// The trust tier an agent's score gives under a loaded policy, as the kernel computes it
    /// (policy::tier_from_score over the policy's settings in cordon_policies).
    std::uint32_t tier_of(std::uint32_t policy_id, const cordon_agent_live& live) const;

    bpf::Guard& guard() { return *guard_; }
    /// For work on another thread that may outlive this controller (a daemon that exits while a
    /// worker still loads): the Guard stays until the work ends.
    std::shared_ptr<bpf::Guard> shared_guard() const { return guard_; }
    const agents::Cgroup2Mount& mount() const { return mount_; }
    bool adopted() const { return adopted_; }

private:
    AgentRecord& record(const std::string& name);
    /// The controller's half of an agent, changed by fn and written back in one map write.
    template <typename Fn> void change_agent(const AgentRecord& r, Fn fn)
    {
        auto a = guard_->agent(r.key);
        if (!a)
            throw Error("the kernel has no entry for agent " + r.name + "; it is being removed");
        fn(*a);
        guard_->update_agent(r.key, *a);
    }
    void save(const AgentRecord& r);
    /// An attached agent's cgroup: binds the one at its path now, or notes that it waits.
    void follow_path(AgentRecord& r, std::vector<std::string>& changes);
    /// reconcile's upkeep of a live agent: an interrupted apply finished, ended tasks dropped.
    void maintain(AgentRecord& r, std::vector<std::string>& changes);
    /// A template's matching children that have no record yet: adopted when the kernel made
    /// them, guarded now when it did not (second line), frozen when neither can (fails closed).
    void adopt_children(const AgentRecord& t, std::vector<std::string>& changes);
    /// A matching child the kernel did not make an agent: one made here, else the cgroup frozen.
    void guard_child_now(const AgentRecord& t, const std::filesystem::path& dir,
                         std::uint64_t cgid, std::vector<std::string>& changes);
    AgentRecord& add_child(const AgentRecord& t, const std::filesystem::path& dir,
                           std::uint64_t cgid, std::uint64_t key, std::uint32_t id);
    void remove_template(const std::string& name);
    void finish_apply(AgentRecord& r, std::vector<std::string>& changes);
    void forget(std::vector<AgentRecord>::iterator it);
    /// Compiles an agent's grants of one task (empty: the agent-wide ones) into a new set,
    /// switches the agent or task to it with one map write, and retires the old set.
    void rebuild_grants(AgentRecord& r, const std::string& task);
    /// A compiled set no decision may use once the next grace period has passed.
    void retire(std::uint32_t policy_id);
    void collect_retired();
    /// Removes the kernel state of all of an agent's tasks and grants (not the records).
    void drop_tasks_and_grants(const AgentRecord& r);
    /// Removes a task's and its grants' kernel state (not the record).
    void drop_task_state(AgentRecord& r, const TaskRecord& t);
    /// Every compiled policy or set an agent, task or grant set names (records and kernel).
    std::vector<std::uint32_t> policies_in_use() const;
    void remove_unused_policies();
    /// Kernel tasks and grants of an agent that no record names (a daemon that died mid-way):
    /// removed, which fails closed.
    void drop_unknown_state(const AgentRecord& r, std::vector<std::string>& changes);

    ControllerOptions opts_;
    agents::Cgroup2Mount mount_;
    std::shared_ptr<bpf::Guard> guard_; ///< shared with worker threads' loads (shared_guard)
    bool adopted_ = false;
    std::vector<AgentRecord> agents_;
    std::vector<AgentRecord> templates_; ///< no kernel agent of their own; children in agents_
    std::set<std::string> unnamed_; ///< matching children whose names no record can hold
    std::map<std::string, agents::Cgroup> owned_; ///< run agents' cgroups, by name
    std::vector<std::uint32_t> retired_; ///< compiled sets to unload after a grace period
    std::set<std::uint32_t> reserved_;   ///< ids of applies under way (reconcile spares them)
    bool orphans_swept_ = false;         ///< the first reconcile removed half-loaded rules
};

} // namespace cordon::control
