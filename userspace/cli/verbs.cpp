// SPDX-License-Identifier: Apache-2.0
// Each verb's flags and help, and the function that carries it out (verbs.h).
#include "cli/verbs.h"

#include <sys/utsname.h>
#include <unistd.h>

#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <CLI/CLI.hpp>

#include "bpf/features.h"
#include "cli/commands.h"
#include "cli/run.h"
#include "common/priority.h"
#include "control/doctor.h"
#include "cli/learn_cmd.h"
#include "cli/policy_cmd.h"
#include "policy/compiler.h"

namespace cordon::cli {
namespace {

/// When CMD is the verb parsed, `chosen` runs `fn` (which owns the verb's option storage).
void on_parsed(CLI::App* cmd, Chosen& chosen, std::function<int()> fn)
{
    cmd->callback([&chosen, fn = std::move(fn)] { chosen.run = fn; });
}

std::string kernel_release()
{
    struct utsname u {};
    return ::uname(&u) == 0 ? u.release : "unknown";
}

struct Context {
    std::optional<std::string> user, workspace;
    void add_to(CLI::App* cmd)
    {
        cmd->add_option("--user", user,
                        "User whose name and home fill ${USER} and ${HOME} (default: the user "
                        "behind sudo, else the current user)");
        cmd->add_option("--workspace", workspace,
                        "Directory for ${WORKSPACE} (default: the current directory)");
    }
    policy::Context make() const { return make_context(user, workspace); }
    /// For records of an agent that may be gone, with its workspace.
    policy::Context make_lenient() const { return make_context(user, workspace, false); }
};

void add_policy_check(CLI::App* policy, Chosen& chosen)
{
    struct Check {
        std::vector<std::string> files;
        Context ctx;
    };
    auto o = std::make_shared<Check>();
    auto* check = policy->add_subcommand(
        "check", "Validate policy files; exit 0 when all are valid, 1 with every error listed "
                 "as file:line:column otherwise");
    check->add_option("FILE", o->files, "Policy files")->required();
    o->ctx.add_to(check);
    on_parsed(check, chosen, [o] { return policy_check(o->files, o->ctx.make()); });
}

void add_policy_show(CLI::App* policy, Chosen& chosen)
{
    struct Show {
        std::string file;
        bool json = false;
        Context ctx;
    };
    auto o = std::make_shared<Show>();
    auto* show = policy->add_subcommand(
        "show", "Print what a policy would enforce, rule by rule, with source lines, variables "
                "expanded and host names resolved");
    show->add_option("FILE", o->file, "Policy file")->required();
    show->add_flag("--json", o->json, "Print JSON");
    o->ctx.add_to(show);
    on_parsed(show, chosen, [o] {
        auto resolver = policy::system_resolver();
        return policy_show(o->file, o->json, o->ctx.make(), *resolver);
    });
}

/// Where suggest and test read records: an agent's stored records (`agent_option`: "NAME" or
/// "--against"), or an events file; with both, that agent's records in the file.
void add_learn_input(CLI::App* cmd, LearnInput& in, const char* agent_option, const char* agent_help)
{
    cmd->add_option(agent_option, in.agent, agent_help);
    cmd->add_option("--from", in.from,
                    "Read records from this events file (JSON lines: cordon run --events, "
                    "cordond --events-jsonl, cordon events --json; '-': standard input) instead "
                    "of the store; with an agent named, only its records");
    cmd->add_option("--store", in.store, "The store file")->capture_default_str();
    cmd->add_option("--since", in.since,
                    "From: a duration ago (1h), a time (2026-11-29T10:00, local; Z: UTC) or "
                    "@UNIX_SECONDS");
    cmd->add_option("--until", in.until, "Until (same forms as --since)");
}

void add_policy_suggest(CLI::App* policy, Chosen& chosen)
{
    struct Suggest {
        SuggestCli cli;
        Context ctx;
    };
    auto o = std::make_shared<Suggest>();
    auto* cmd = policy->add_subcommand(
        "suggest",
        "Write a least-privilege policy from what an agent did (its stored records, or an "
        "events file): exec, file and network rules covering every recorded access, paths "
        "folded into directories where many entries were used, ${HOME} and ${WORKSPACE} "
        "written back, host names kept where a rule named them, each rule with a comment on what "
        "it covers; known secrets are never allowed. Record the agent with `trace: all` (every "
        "access) or in audit mode (what the policy would refuse). With --base, print the change "
        "against that policy instead (+ rules to add, - rules never used, ! accesses left for "
        "review: those a rule of the base refuses)");
    add_learn_input(cmd, o->cli.in, "NAME", "The agent whose stored records to learn from");
    cmd->add_option("--base", o->cli.base, "Print the change against this policy");
    cmd->add_option("-o,--output", o->cli.output,
                    "Write the policy here (with --base: the base with the new rules in it); "
                    "written only if it validates");
    cmd->add_option("--fold", o->cli.fold,
                    "Fold a directory into one rule when at least this many entries directly "
                    "below it were used")
        ->capture_default_str()
        ->check(CLI::Range(1, 1000));
    cmd->add_option("--name", o->cli.name, "metadata.name of the policy (default: NAME-learned)");
    o->ctx.add_to(cmd);
    on_parsed(cmd, chosen, [o] { return policy_suggest(o->cli, o->ctx.make_lenient()); });
}

void add_policy_test(CLI::App* policy, Chosen& chosen)
{
    struct Test {
        std::string file;
        LearnInput in;
        Context ctx;
    };
    auto o = std::make_shared<Test>();
    auto* cmd = policy->add_subcommand(
        "test",
        "Replay an agent's recorded accesses against a candidate policy and list every access "
        "whose verdict would change, newly denied first, with counts; exit 1 if an access that "
        "went ahead would be denied, or a refused access to a known secret would go ahead. Check "
        "a policy this way before `cordon policy apply`");
    cmd->add_option("FILE", o->file, "Candidate policy")->required();
    add_learn_input(cmd, o->in, "--against", "The agent whose stored records to replay");
    o->ctx.add_to(cmd);
    on_parsed(cmd, chosen, [o] { return policy_test(o->file, o->in, o->ctx.make_lenient()); });
}

void add_policy_apply(CLI::App* policy, Chosen& chosen)
{
    struct Apply {
        std::string name, file, reason;
        std::optional<std::string> mode;
    };
    auto o = std::make_shared<Apply>();
    auto* apply = policy->add_subcommand(
        "apply", "Replace a running agent's policy atomically: compiled and loaded under a new "
                 "id, the agent switched with one map write, the old one removed once no "
                 "decision can use it. Every decision is made by the old policy or the new one; "
                 "trust score, task and kill/freeze state stay. An invalid policy changes "
                 "nothing. The agent takes the new policy's spec.mode unless --mode is given. "
                 "Needs cordond; an embedded `cordon run` applies its --policy file again on "
                 "SIGUSR1");
    apply->add_option("NAME", o->name, "Agent name")->required();
    apply->add_option("FILE", o->file, "Policy file")->required();
    apply->add_option("--mode", o->mode, "enforce or audit (overrides spec.mode)")
        ->check(CLI::IsMember({"enforce", "audit"}));
    apply->add_option("--reason", o->reason, "Why; recorded with the operator action");
    on_parsed(apply, chosen, [o] { return cli::apply(o->name, o->file, o->mode, o->reason); });
}

void add_run_options(CLI::App* run, RunOptions& o, std::string& mode)
{
    run->add_option("--policy", o.policy_file, "Policy file (see docs/policy.md)")->required();
    run->add_option("--name", o.name,
                    "Agent name (cgroup <cgroup2>/cordon/NAME); default: policy name + suffix");
    run->add_option("--user", o.user,
                    "Run CMD as this user, with its groups and a reset environment (as sudo -u); "
                    "required for tamper resistance on the compat backend");
    run->add_option("--workspace", o.workspace,
                    "Directory for ${WORKSPACE}; CMD starts there (default: current directory)");
    run->add_option("--mode", mode, "enforce or audit (overrides the policy's spec.mode)")
        ->check(CLI::IsMember({"enforce", "audit"}));
    run->add_option("--backend", o.backend, "auto, lsm, fmod_ret or compat (default: auto)")
        ->check(CLI::IsMember({"auto", "lsm", "fmod_ret", "compat"}));
    run->add_option("--events", o.events_file, "Append every event as a JSON line");
    run->add_flag("--detach", o.detach,
                  "With cordond: leave the agent running under the daemon, print its name and "
                  "return");
    run->add_flag("--embedded", o.embedded, "Be the agent's controller even when cordond runs");
    run->add_option("--dns-upstream", o.dns_upstreams,
                    "Embedded: the resolver the DNS gateway forwards the agent's lookups to "
                    "(ADDR, ADDR:PORT or [ADDR6]:PORT); default: /etc/resolv.conf's nameservers "
                    "(with cordond, its --dns-upstream decides)");
    run->add_option("CMD", o.command, "Command and arguments (after --)")->required();
}

void add_agent_op(CLI::App& app, Chosen& chosen, api::Op op, const char* verb, const char* what)
{
    struct Op {
        std::string name, reason, mode;
    };
    auto o = std::make_shared<Op>();
    auto* c = app.add_subcommand(verb, what);
    c->add_option("NAME", o->name, "Agent name (`cordon agents` lists them)")->required();
    c->add_option("--reason", o->reason, "Why; recorded with the operator action");
    if (op == api::Op::Mode)
        c->add_option("MODE", o->mode, "enforce or audit")
            ->required()
            ->check(CLI::IsMember({"enforce", "audit"}));
    on_parsed(c, chosen, [o, op] {
        // The kill switch must not wait for CPU behind the agent it stops. The static front end
        // (front.cpp) already did this for the plain forms, before any library was loaded.
        if ((op == api::Op::Kill || op == api::Op::Freeze) && ::geteuid() == 0)
            (void)raise_control_priority();
        return agent_op(op, o->name, o->reason, o->mode);
    });
}

void add_trust(CLI::App& app, Chosen& chosen)
{
    struct Trust {
        std::string name, reason;
        std::optional<int> set;
        bool json = false;
    };
    auto o = std::make_shared<Trust>();
    auto* c = app.add_subcommand(
        "trust", "Show an agent's trust score and tier as the kernel has them now, with recent "
                 "tier changes; --set N sets the score (0-1000), recorded as an operator action");
    c->add_option("NAME", o->name, "Agent name")->required();
    c->add_option("--set", o->set, "Set the score")->check(CLI::Range(0, 1000));
    c->add_option("--reason", o->reason, "Why; recorded with the operator action");
    c->add_flag("--json", o->json, "Print JSON");
    on_parsed(c, chosen, [o] { return trust(o->name, o->set, o->reason, o->json); });
}

/// A verb that takes an agent NAME and --json: agents' listings.
template <class F>
void add_listing(CLI::App* parent, Chosen& chosen, const char* verb, const char* what, F f)
{
    struct Listing {
        std::string name;
        bool json = false;
    };
    auto o = std::make_shared<Listing>();
    auto* c = parent->add_subcommand(verb, what);
    c->add_option("NAME", o->name, "Agent name")->required();
    c->add_flag("--json", o->json, "Print JSON");
    on_parsed(c, chosen, [o, f] { return f(o->name, o->json); });
}

CLI::App* add_events(CLI::App& app, EventsOptions& o)
{
    auto* c = app.add_subcommand(
        "events", "Query the event store (cordond's SQLite file): decisions, exec traces, trust "
                  "changes and operator actions, oldest first. Reads the file; cordond need not "
                  "run");
    c->add_option("NAME", o.name, "Only this agent");
    c->add_option("--store", o.store, "The store file")->capture_default_str();
    c->add_option("--since", o.since,
                  "From: a duration ago (1h), a time (2026-11-29T10:00, local; Z: UTC) or "
                  "@UNIX_SECONDS");
    c->add_option("--until", o.until, "Until (same forms as --since)");
    c->add_option("--verdict", o.verdicts, "Only these verdicts")->delimiter(',');
    c->add_option("--hook", o.hooks,
                  "Only these hooks: exec, file, net, tamper, trust, action, or a hook name")
        ->delimiter(',');
    c->add_option("--path", o.path, "Only paths matching this glob (* ? [..])");
    c->add_option("--dest", o.dest, "Only destinations in this CIDR or address");
    c->add_option("--limit", o.limit, "At most this many records (0: all)");
    c->add_flag("--json", o.json, "Print each record's JSON (OCSF fields)");
    c->add_flag("--csv", o.csv, "Print CSV with a header line");
    return c;
}

} // namespace

void add_doctor(CLI::App& app, Chosen& chosen)
{
    auto json = std::make_shared<bool>(false);
    auto* doctor = app.add_subcommand(
        "doctor", "Probe this kernel, choose the backend (lsm, fmod_ret or compat) and say what it "
                  "guarantees. Exit 0 when a backend is usable, 1 otherwise. Run as root.");
    doctor->add_flag("--json", *json, "Print the report as JSON, one entry per probe");
    on_parsed(doctor, chosen, [json] {
        bpf::Features features(bpf::kernel_probe_source());
        const auto release = kernel_release();
        std::fputs(*json ? control::doctor_json(features, release).c_str()
                         : control::doctor_text(features, release).c_str(),
                   stdout);
        return control::doctor_exit_code(features);
    });
}

void add_policy(CLI::App& app, Chosen& chosen)
{
    auto* policy = app.add_subcommand("policy", "Check, show, learn and test agent policies (no kernel needed), and apply one to a running agent");
    policy->require_subcommand(1);
    add_policy_check(policy, chosen);
    add_policy_show(policy, chosen);
    add_policy_apply(policy, chosen);
    add_policy_suggest(policy, chosen);
    add_policy_test(policy, chosen);
}

void add_run(CLI::App& app, Chosen& chosen)
{
    struct Run {
        RunOptions opts;
        std::string mode;
    };
    auto o = std::make_shared<Run>();
    auto* run = app.add_subcommand(
        "run", "Run CMD as an agent under a policy: the kernel decides every exec, file access "
               "and connection of CMD and all its descendants. When cordond runs, the agent is "
               "registered with it (it shows in `cordon agents`); otherwise cordon run is its "
               "controller (embedded); the first line of output says which. Exits with CMD's "
               "status (128+N if a signal ended it), or 125 if cordon could not start it. Run "
               "as root.");
    add_run_options(run, o->opts, o->mode);
    run->callback([&chosen, o] {
        chosen.failure_status = kRunSetupFailed;
        chosen.run = [o] {
            if (!o->mode.empty())
                o->opts.mode = o->mode == "audit" ? policy::Mode::Audit : policy::Mode::Enforce;
            return run_guarded(o->opts);
        };
    });
}

void add_agents(CLI::App& app, Chosen& chosen)
{
    auto json = std::make_shared<bool>(false);
    auto* agents_cmd = app.add_subcommand(
        "agents", "List the agents cordond guards: name, id, cgroup, policy (file and SHA-256), "
                  "mode, trust score and tier, processes, denials, age, and under each agent the "
                  "addresses its own DNS answers hold now, with the time left");
    agents_cmd->add_flag("--json", *json, "Print JSON");
    on_parsed(agents_cmd, chosen, [json] { return agents(*json); });

    auto status_json = std::make_shared<bool>(false);
    auto* status_cmd = app.add_subcommand(
        "status", "Show cordond: backend, programs, agents, decisions and lost events. Exit 3 "
                  "when the daemon is not running");
    status_cmd->add_flag("--json", *status_json, "Print JSON");
    on_parsed(status_cmd, chosen, [status_json] { return status(*status_json); });

    struct Attach {
        std::string cgroup, children, policy;
        std::optional<std::string> name, mode;
        bool wait = false;
    };
    auto a = std::make_shared<Attach>();
    auto* attach_cmd = app.add_subcommand(
        "attach", "Guard a cgroup v2 directory (a systemd unit's, a container's) with a policy, "
                  "everything already running in it included; enforced when the command "
                  "returns. The agent outlives its cgroup: when the path is made again (a "
                  "restart), the kernel guards it as it is made; only `cordon detach` ends it. "
                  "With --children or a glob, every matching child cgroup, made now or later, "
                  "is an agent of its own (a template). Kept across reboots by cordond. Needs "
                  "cordond. Prints the agent's (or template's) name");
    auto* cg = attach_cmd->add_option(
        "--cgroup", a->cgroup,
        "The cgroup directory, or PARENT/PATTERN with one '*' in its last component "
        "(quote it: '/sys/fs/cgroup/agents.slice/agent@*.service')");
    auto* ch = attach_cmd->add_option("--children", a->children,
                                      "Guard every child of this cgroup, each as its own agent "
                                      "(the same as --cgroup PARENT/'*')");
    cg->excludes(ch);
    ch->excludes(cg);
    attach_cmd->add_option("--policy", a->policy, "Policy file")->required();
    attach_cmd->add_option("--name", a->name,
                           "Agent name (default: policy name + suffix); a template's children "
                           "are named NAME.CGROUP");
    attach_cmd->add_option("--mode", a->mode, "enforce or audit (overrides spec.mode)")
        ->check(CLI::IsMember({"enforce", "audit"}));
    attach_cmd->add_flag("--wait", a->wait,
                         "The cgroup (or the template's parent) need not exist yet: guarded "
                         "from the moment it is made");
    on_parsed(attach_cmd, chosen, [a] {
        if (a->cgroup.empty() && a->children.empty())
            throw CLI::ValidationError("attach", "--cgroup or --children is required");
        const std::string target = a->children.empty()
                                       ? a->cgroup
                                       : (std::filesystem::path(a->children) / "*").string();
        return attach(target, a->policy, a->name, a->mode, a->wait);
    });

    auto name = std::make_shared<std::string>();
    auto* detach_cmd = app.add_subcommand(
        "detach", "Stop guarding an attached agent (or a template and every agent it made); "
                    "its processes run on unguarded. Ends a kept attachment for good");
    detach_cmd->add_option("NAME", *name, "Agent name")->required();
    on_parsed(detach_cmd, chosen, [name] { return detach(*name); });
}

void add_controls(CLI::App& app, Chosen& chosen)
{
    add_agent_op(
        app, chosen, api::Op::Kill, "kill",
        "Kill switch: from the instant the agent's kill flag is written, the kernel refuses "
        "every access of every process of the agent; cgroup.kill then ends them all, forks "
        "included. Returns when the cgroup is empty and prints how long that took. The agent "
        "stays killed until it ends (run) or is detached (attach). Needs cordond; an embedded "
        "`cordon run` is killed with Ctrl-C or SIGTERM");
    add_agent_op(app, chosen, api::Op::Freeze, "freeze",
                 "Freeze an agent for review (cgroup.freeze): every access is refused from the "
                 "flag on and every process stops, keeping its state. Returns when frozen. "
                 "Needs cordond; an embedded `cordon run` freezes and thaws on SIGUSR2");
    add_agent_op(app, chosen, api::Op::Thaw, "thaw",
                 "Resume a frozen agent (by `cordon freeze` or a freeze rule)");
    add_agent_op(app, chosen, api::Op::Mode, "mode",
                 "Switch an agent between enforce and audit (one map write)");
    add_trust(app, chosen);
}

void add_tasks(CLI::App& app, Chosen& chosen)
{
    auto* task_cmd = app.add_subcommand(
        "task", "Tasks: a task id in every event, an optional overlay policy and grants that "
                "last only while the task does, for the whole agent or one process subtree");
    task_cmd->require_subcommand(1);
    auto t = std::make_shared<TaskBegin>();
    auto* begin = task_cmd->add_subcommand(
        "begin", "Begin a task: in force in the kernel when the command returns. A TTL ends it "
                 "in the kernel at expiry, daemon or not. --pid binds it to that process and "
                 "everything it forks afterwards; the rest of the agent keeps the agent's policy");
    begin->add_option("NAME", t->name, "Agent name")->required();
    begin->add_option("--id", t->id, "Task id (1-128 letters, digits, . _ : @ -)")->required();
    begin->add_option("--policy", t->overlay,
                      "Overlay: a TaskOverlay file whose rules decide over the agent's policy "
                      "during the task (docs/policy.md)");
    begin->add_option("--ttl", t->ttl, "End the task after this long (90s, 5m, 1h)");
    begin->add_option("--pid", t->pid, "Bind the task to this process subtree");
    begin->add_option("--reason", t->reason, "Why; recorded with the operator action");
    on_parsed(begin, chosen, [t] { return task_begin(*t); });

    struct End {
        std::string name, id, reason;
    };
    auto e = std::make_shared<End>();
    auto* end = task_cmd->add_subcommand("end", "End a task: its overlay and its grants stop at once");
    end->add_option("NAME", e->name, "Agent name")->required();
    end->add_option("--id", e->id, "Task id (default: the agent-wide task)");
    end->add_option("--reason", e->reason, "Why; recorded with the operator action");
    on_parsed(end, chosen, [e] { return task_end(e->name, e->id, e->reason); });

    add_listing(task_cmd, chosen, "list", "List an agent's tasks", task_list);
}

void add_grants(CLI::App& app, Chosen& chosen)
{
    auto g = std::make_shared<GrantOptions>();
    auto* grant_cmd = app.add_subcommand(
        "grant", "Give an agent a short-lived allowance, checked by the kernel against its own "
                 "clock at every decision: it allows what it names until it expires (or its task "
                 "ends), over deny rules and defaults, never over a kill or freeze rule or tamper "
                 "protection. Prints the grant id");
    grant_cmd->add_option("NAME", g->name, "Agent name")->required();
    grant_cmd->add_option("--exec", g->exec, "Allow executing PATH (dir/: everything below)");
    grant_cmd->add_option("--read", g->read, "Allow reading PATH");
    grant_cmd->add_option("--write", g->write, "Allow writing PATH");
    grant_cmd->add_option("--connect", g->connect,
                          "Allow connecting to CIDR|HOST[:PORTS][/tcp|udp] (IPv6 with ports: "
                          "[ADDR]:PORTS; a host is resolved once, now)");
    grant_cmd->add_option("--ttl", g->ttl, "How long (1s to 24h: 90s, 5m, 1h)")->required();
    grant_cmd->add_option("--task", g->task, "Bind to this task: it ends with the task");
    grant_cmd->add_option("--reason", g->reason, "Why; recorded with the operator action");
    on_parsed(grant_cmd, chosen, [g] { return grant(*g); });

    add_listing(&app, chosen, "grants", "List an agent's live grants", grants);

    struct Revoke {
        std::string name, reason;
        std::uint32_t id = 0;
    };
    auto r = std::make_shared<Revoke>();
    auto* revoke_cmd = app.add_subcommand(
        "revoke", "Revoke a grant: from the next decision on it allows nothing");
    revoke_cmd->add_option("NAME", r->name, "Agent name")->required();
    revoke_cmd->add_option("ID", r->id, "Grant id (`cordon grants NAME`)")->required();
    revoke_cmd->add_option("--reason", r->reason, "Why; recorded with the operator action");
    on_parsed(revoke_cmd, chosen, [r] { return revoke(r->name, r->id, r->reason); });
}

void add_explain(CLI::App& app, Chosen& chosen)
{
    auto o = std::make_shared<ExplainOptions>();
    auto* c = app.add_subcommand(
        "explain", "Say what an agent's access would get now and why: the rule, task overlay, "
                   "grant, trust tier, kill or freeze flag or mode that decides it, read from the "
                   "maps the kernel reads (not from the policy file). Needs cordond");
    c->add_option("NAME", o->name, "Agent name")->required();
    c->add_option("PATH", o->path, "The file (symbolic links are resolved)");
    c->add_option("--access", o->access, "What the agent does with PATH")
        ->check(CLI::IsMember({"read", "write", "exec"}))
        ->capture_default_str();
    c->add_option("--connect", o->connect,
                  "Instead of PATH: a connection to ADDR:PORT[/tcp|udp] ([ADDR]:PORT for IPv6; "
                  "tcp if not said)");
    c->add_flag("--json", o->json, "Print JSON");
    on_parsed(c, chosen, [o] { return explain(*o); });
}

void add_forensics(CLI::App& app, Chosen& chosen)
{
    auto t = std::make_shared<TraceOptions>();
    auto* trace_cmd = app.add_subcommand(
        "trace", "Follow decisions live from cordond: one line per event (coloured on a "
                 "terminal), or JSON lines with --json. Needs cordond");
    trace_cmd->add_option("NAME", t->name, "Only this agent (default: every agent and operator "
                                           "actions)");
    trace_cmd->add_option("--verdict", t->verdicts, "Only these verdicts: allow, deny, audit, "
                                                    "kill, freeze")
        ->delimiter(',');
    trace_cmd->add_option("--hook", t->hooks, "Only these hooks: exec, file, net (groups), "
                                              "tamper, trust, action, or one hook name")
        ->delimiter(',');
    trace_cmd->add_flag("--json", t->json, "Print each event as one JSON line");
    on_parsed(trace_cmd, chosen, [t] { return trace(*t); });

    auto e = std::make_shared<EventsOptions>();
    auto* events_cmd = add_events(app, *e);
    auto verify_name = std::make_shared<std::optional<std::string>>();
    auto* verify_cmd = events_cmd->add_subcommand(
        "verify", "Check the store's hash chains: exit 0 when every record is as written, 1 "
                  "naming the first record edited, deleted or inserted since");
    verify_cmd->add_option("NAME", *verify_name, "Only this agent's chain");
    verify_cmd->add_option("--store", e->store, "The store file")->capture_default_str();
    on_parsed(verify_cmd, chosen, [e, verify_name] { return events_verify(e->store, *verify_name); });
    // CLI11 runs a subcommand's callback before its parent's: `events verify` stays verify.
    events_cmd->callback([&chosen, e, verify_cmd] {
        if (!verify_cmd->parsed())
            chosen.run = [e] { return events_query(*e); };
    });

    struct Report {
        std::string name;
        bool json = false;
    };
    auto r = std::make_shared<Report>();
    auto* report_cmd = app.add_subcommand(
        "report", "Summarise an agent's life from the event store: time span, decisions by hook "
                  "and verdict, top denied paths and destinations, tier changes, operator "
                  "actions, its process tree");
    report_cmd->add_option("NAME", r->name, "Agent name")->required();
    report_cmd->add_option("--store", e->store, "The store file")->capture_default_str();
    report_cmd->add_flag("--json", r->json, "Print JSON");
    on_parsed(report_cmd, chosen, [r, e] { return report(r->name, e->store, r->json); });
}

void add_teardown(CLI::App& app, Chosen& chosen)
{
    auto o = std::make_shared<TeardownOptions>();
    auto* c = app.add_subcommand(
        "teardown", "Remove everything cordond put into the kernel and bpffs: ends the agents "
                    "cordon started, unguards attached ones, unpins maps and programs. Refuses "
                    "while cordond runs");
    c->add_option("--pin-dir", o->pin_dir, "Pinned program set")->capture_default_str();
    c->add_option("--registry", o->registry, "cordond's agent registry directory")
        ->capture_default_str();
    on_parsed(c, chosen, [o] { return teardown(*o); });
}

} // namespace cordon::cli
