// SPDX-License-Identifier: Apache-2.0
// The `cordon` command line.
#include <sys/utsname.h>
#include <unistd.h>

#include <cstdio>
#include <exception>
#include <optional>
#include <vector>
#include <string>
#include <string_view>

#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include "agents/launcher.h"
#include "bpf/features.h"
#include "bpf/log.h"
#include "cli/commands.h"
#include "common/error.h"
#include "control/doctor.h"
#include "control/policy_cmd.h"
#include "cli/run.h"

namespace {


std::string kernel_release()
{
    struct utsname u {};
    return ::uname(&u) == 0 ? u.release : "unknown";
}

} // namespace

int main(int argc, char** argv)
{
    // The kill switch must not wait for CPU behind the agent it stops: before any argument
    // parsing, `cordon kill` and `cordon freeze` run by root move above every agent process.
    if (argc > 1 && ::geteuid() == 0 &&
        (std::string_view(argv[1]) == "kill" || std::string_view(argv[1]) == "freeze"))
        (void)cordon::agents::raise_control_priority();
    CLI::App app{"cordon: kernel-level guard for hosts that run autonomous AI agents"};
    app.set_version_flag("--version", std::string("cordon ") + CORDON_VERSION);
    app.require_subcommand(1);
    int verbosity = 0;
    app.add_flag("-v,--verbose", verbosity, "More logging (-vv includes libbpf's debug output)");

    auto* doctor = app.add_subcommand(
        "doctor", "Probe this kernel, choose the backend (lsm, fmod_ret or compat) and say what it "
                  "guarantees. Exit 0 when a backend is usable, 1 otherwise. Run as root.");
    bool json = false;
    doctor->add_flag("--json", json, "Print the report as JSON, one entry per probe");

    auto* policy = app.add_subcommand("policy", "Check and show agent policies (no kernel needed)");
    policy->require_subcommand(1);
    std::optional<std::string> user, workspace;
    const auto add_context = [&](CLI::App* cmd) {
        cmd->add_option("--user", user,
                        "User whose name and home fill ${USER} and ${HOME} (default: the user "
                        "behind sudo, else the current user)");
        cmd->add_option("--workspace", workspace,
                        "Directory for ${WORKSPACE} (default: the current directory)");
    };
    auto* check = policy->add_subcommand(
        "check", "Validate policy files; exit 0 when all are valid, 1 with every error listed "
                 "as file:line:column otherwise");
    std::vector<std::string> check_files;
    check->add_option("FILE", check_files, "Policy files")->required();
    add_context(check);
    auto* show = policy->add_subcommand(
        "show", "Print what a policy would enforce, rule by rule, with source lines, variables "
                "expanded and host names resolved");
    std::string show_file;
    bool show_json = false;
    show->add_option("FILE", show_file, "Policy file")->required();
    show->add_flag("--json", show_json, "Print JSON");
    add_context(show);

    auto* run = app.add_subcommand(
        "run", "Run CMD as an agent under a policy: the kernel decides every exec, file access "
               "and connection of CMD and all its descendants. When cordond runs, the agent is "
               "registered with it (it shows in `cordon agents`); otherwise cordon run is its "
               "controller (embedded); the first line of output says which. Exits with CMD's "
               "status (128+N if a signal ended it), or 125 if cordon could not start it. Run "
               "as root.");
    cordon::cli::RunOptions run_opts;
    std::string run_mode;
    run->add_option("--policy", run_opts.policy_file, "Policy file (see docs/policy.md)")
        ->required();
    run->add_option("--name", run_opts.name,
                    "Agent name (cgroup <cgroup2>/cordon/NAME); default: policy name + suffix");
    run->add_option("--user", run_opts.user,
                    "Run CMD as this user, with its groups and a reset environment (as sudo -u); "
                    "required for tamper resistance on the compat backend");
    run->add_option("--workspace", run_opts.workspace,
                    "Directory for ${WORKSPACE}; CMD starts there (default: current directory)");
    run->add_option("--mode", run_mode, "enforce or audit (overrides the policy's spec.mode)")
        ->check(CLI::IsMember({"enforce", "audit"}));
    run->add_option("--backend", run_opts.backend, "auto, lsm, fmod_ret or compat (default: auto)")
        ->check(CLI::IsMember({"auto", "lsm", "fmod_ret", "compat"}));
    run->add_option("--events", run_opts.events_file, "Append every event as a JSON line");
    run->add_flag("--detach", run_opts.detach,
                  "With cordond: leave the agent running under the daemon, print its name and "
                  "return");
    run->add_flag("--embedded", run_opts.embedded,
                  "Be the agent's controller even when cordond runs");
    run->add_option("CMD", run_opts.command, "Command and arguments (after --)")->required();

    auto* agents_cmd = app.add_subcommand(
        "agents", "List the agents cordond guards: name, id, cgroup, policy (file and SHA-256), "
                  "mode, trust score and tier, processes, denials, age");
    bool agents_json = false;
    agents_cmd->add_flag("--json", agents_json, "Print JSON");
    auto* status_cmd = app.add_subcommand(
        "status", "Show cordond: backend, programs, agents, decisions and lost events. Exit 3 "
                  "when the daemon is not running");
    bool status_json = false;
    status_cmd->add_flag("--json", status_json, "Print JSON");
    auto* attach_cmd = app.add_subcommand(
        "attach", "Guard an existing cgroup v2 directory (a systemd unit's, a container's) with "
                  "a policy, everything already running in it included; enforced when the "
                  "command returns. Needs cordond. Prints the agent's name");
    std::string attach_cgroup, attach_policy;
    std::optional<std::string> attach_name, attach_mode;
    attach_cmd->add_option("--cgroup", attach_cgroup, "The cgroup directory")->required();
    attach_cmd->add_option("--policy", attach_policy, "Policy file")->required();
    attach_cmd->add_option("--name", attach_name, "Agent name (default: policy name + suffix)");
    attach_cmd->add_option("--mode", attach_mode, "enforce or audit (overrides spec.mode)")
        ->check(CLI::IsMember({"enforce", "audit"}));
    auto* detach_cmd = app.add_subcommand(
        "detach", "Stop guarding an attached agent; its processes run on unguarded");
    std::string detach_name;
    detach_cmd->add_option("NAME", detach_name, "Agent name")->required();
    std::string op_name, op_reason;
    const auto add_op = [&](const char* verb, const char* what) {
        auto* c = app.add_subcommand(verb, what);
        c->add_option("NAME", op_name, "Agent name (`cordon agents` lists them)")->required();
        c->add_option("--reason", op_reason, "Why; recorded with the operator action");
        return c;
    };
    auto* kill_cmd = add_op(
        "kill", "Kill switch: from the instant the agent's kill flag is written, the kernel "
                "refuses every access of every process of the agent; cgroup.kill then ends them "
                "all, forks included. Returns when the cgroup is empty and prints how long that "
                "took. The agent stays killed until it ends (run) or is detached (attach). "
                "Needs cordond; an embedded `cordon run` is killed with Ctrl-C or SIGTERM");
    auto* freeze_cmd = add_op(
        "freeze", "Freeze an agent for review (cgroup.freeze): every access is refused from the "
                  "flag on and every process stops, keeping its state. Returns when frozen. "
                  "Needs cordond; an embedded `cordon run` freezes and thaws on SIGUSR2");
    auto* thaw_cmd = add_op("thaw", "Resume a frozen agent (by `cordon freeze` or a freeze rule)");
    auto* mode_cmd = add_op("mode", "Switch an agent between enforce and audit (one map write)");
    std::string mode_value;
    mode_cmd->add_option("MODE", mode_value, "enforce or audit")
        ->required()
        ->check(CLI::IsMember({"enforce", "audit"}));
    auto* apply = policy->add_subcommand(
        "apply", "Replace a running agent's policy atomically: compiled and loaded under a new "
                 "id, the agent switched with one map write, the old one removed once no "
                 "decision can use it. Every decision is made by the old policy or the new one; "
                 "trust score, task and kill/freeze state stay. An invalid policy changes "
                 "nothing. The agent takes the new policy's spec.mode unless --mode is given. "
                 "Needs cordond; an embedded `cordon run` applies its --policy file again on "
                 "SIGUSR1");
    std::string apply_name, apply_file, apply_reason;
    std::optional<std::string> apply_mode;
    apply->add_option("NAME", apply_name, "Agent name")->required();
    apply->add_option("FILE", apply_file, "Policy file")->required();
    apply->add_option("--mode", apply_mode, "enforce or audit (overrides spec.mode)")
        ->check(CLI::IsMember({"enforce", "audit"}));
    apply->add_option("--reason", apply_reason, "Why; recorded with the operator action");
    auto* trust_cmd = app.add_subcommand(
        "trust", "Show an agent's trust score and tier as the kernel has them now, with recent "
                 "tier changes; --set N sets the score (0-1000), recorded as an operator action");
    std::string trust_name, trust_reason;
    std::optional<int> trust_set;
    bool trust_json = false;
    trust_cmd->add_option("NAME", trust_name, "Agent name")->required();
    trust_cmd->add_option("--set", trust_set, "Set the score")->check(CLI::Range(0, 1000));
    trust_cmd->add_option("--reason", trust_reason, "Why; recorded with the operator action");
    trust_cmd->add_flag("--json", trust_json, "Print JSON");

    auto* task_cmd = app.add_subcommand(
        "task", "Tasks: a task id in every event, an optional overlay policy and grants that "
                "last only while the task does, for the whole agent or one process subtree");
    task_cmd->require_subcommand(1);
    cordon::cli::TaskBegin task_opts;
    auto* task_begin = task_cmd->add_subcommand(
        "begin", "Begin a task: in force in the kernel when the command returns. A TTL ends it "
                 "in the kernel at expiry, daemon or not. --pid binds it to that process and "
                 "everything it forks afterwards; the rest of the agent keeps the agent's policy");
    task_begin->add_option("NAME", task_opts.name, "Agent name")->required();
    task_begin->add_option("--id", task_opts.id, "Task id (1-128 letters, digits, . _ : @ -)")
        ->required();
    task_begin->add_option("--policy", task_opts.overlay,
                           "Overlay: a TaskOverlay file whose rules decide over the agent's "
                           "policy during the task (docs/policy.md)");
    task_begin->add_option("--ttl", task_opts.ttl, "End the task after this long (90s, 5m, 1h)");
    task_begin->add_option("--pid", task_opts.pid, "Bind the task to this process subtree");
    task_begin->add_option("--reason", task_opts.reason, "Why; recorded with the operator action");
    std::string task_end_name, task_end_id, task_end_reason;
    auto* task_end = task_cmd->add_subcommand(
        "end", "End a task: its overlay and its grants stop at once");
    task_end->add_option("NAME", task_end_name, "Agent name")->required();
    task_end->add_option("--id", task_end_id, "Task id (default: the agent-wide task)");
    task_end->add_option("--reason", task_end_reason, "Why; recorded with the operator action");
    std::string task_list_name;
    bool task_list_json = false;
    auto* task_list = task_cmd->add_subcommand("list", "List an agent's tasks");
    task_list->add_option("NAME", task_list_name, "Agent name")->required();
    task_list->add_flag("--json", task_list_json, "Print JSON");

    cordon::cli::GrantOptions grant_opts;
    auto* grant_cmd = app.add_subcommand(
        "grant", "Give an agent a short-lived allowance, checked by the kernel against its own "
                 "clock at every decision: it allows what it names until it expires (or its task "
                 "ends), over deny rules and defaults, never over a kill or freeze rule or tamper "
                 "protection. Prints the grant id");
    grant_cmd->add_option("NAME", grant_opts.name, "Agent name")->required();
    grant_cmd->add_option("--exec", grant_opts.exec, "Allow executing PATH (dir/: everything below)");
    grant_cmd->add_option("--read", grant_opts.read, "Allow reading PATH");
    grant_cmd->add_option("--write", grant_opts.write, "Allow writing PATH");
    grant_cmd->add_option("--connect", grant_opts.connect,
                          "Allow connecting to CIDR|HOST[:PORTS][/tcp|udp] (IPv6 with ports: "
                          "[ADDR]:PORTS; a host is resolved once, now)");
    grant_cmd->add_option("--ttl", grant_opts.ttl, "How long (1s to 24h: 90s, 5m, 1h)")->required();
    grant_cmd->add_option("--task", grant_opts.task, "Bind to this task: it ends with the task");
    grant_cmd->add_option("--reason", grant_opts.reason, "Why; recorded with the operator action");
    std::string grants_name;
    bool grants_json = false;
    auto* grants_cmd = app.add_subcommand("grants", "List an agent's live grants");
    grants_cmd->add_option("NAME", grants_name, "Agent name")->required();
    grants_cmd->add_flag("--json", grants_json, "Print JSON");
    std::string revoke_name, revoke_reason;
    std::uint32_t revoke_id = 0;
    auto* revoke_cmd = app.add_subcommand(
        "revoke", "Revoke a grant: from the next decision on it allows nothing");
    revoke_cmd->add_option("NAME", revoke_name, "Agent name")->required();
    revoke_cmd->add_option("ID", revoke_id, "Grant id (`cordon grants NAME`)")->required();
    revoke_cmd->add_option("--reason", revoke_reason, "Why; recorded with the operator action");

    cordon::cli::ExplainOptions explain_opts;
    auto* explain_cmd = app.add_subcommand(
        "explain", "Say what an agent's access would get now and why: the rule, task overlay, "
                   "grant, trust tier, kill or freeze flag or mode that decides it, read from the "
                   "maps the kernel reads (not from the policy file). Needs cordond");
    explain_cmd->add_option("NAME", explain_opts.name, "Agent name")->required();
    explain_cmd->add_option("PATH", explain_opts.path, "The file (symbolic links are resolved)");
    explain_cmd->add_option("--access", explain_opts.access, "What the agent does with PATH")
        ->check(CLI::IsMember({"read", "write", "exec"}))
        ->capture_default_str();
    explain_cmd->add_option("--connect", explain_opts.connect,
                            "Instead of PATH: a connection to ADDR:PORT[/tcp|udp] ([ADDR]:PORT "
                            "for IPv6; tcp if not said)");
    explain_cmd->add_flag("--json", explain_opts.json, "Print JSON");

    cordon::cli::TraceOptions trace_opts;
    auto* trace_cmd = app.add_subcommand(
        "trace", "Follow decisions live from cordond: one line per event (coloured on a "
                 "terminal), or JSON lines with --json. Needs cordond");
    trace_cmd->add_option("NAME", trace_opts.name, "Only this agent (default: every agent and "
                                                   "operator actions)");
    trace_cmd->add_option("--verdict", trace_opts.verdicts, "Only these verdicts: allow, deny, "
                                                            "audit, kill, freeze")
        ->delimiter(',');
    trace_cmd->add_option("--hook", trace_opts.hooks, "Only these hooks: exec, file, net (groups), "
                                                      "tamper, trust, action, or one hook name")
        ->delimiter(',');
    trace_cmd->add_flag("--json", trace_opts.json, "Print each event as one JSON line");

    cordon::cli::EventsOptions events_opts;
    auto* events_cmd = app.add_subcommand(
        "events", "Query the event store (cordond's SQLite file): decisions, exec traces, trust "
                  "changes and operator actions, oldest first. Reads the file; cordond need not "
                  "run");
    events_cmd->add_option("NAME", events_opts.name, "Only this agent");
    events_cmd->add_option("--store", events_opts.store, "The store file")->capture_default_str();
    events_cmd->add_option("--since", events_opts.since,
                           "From: a duration ago (1h), a time (2026-11-29T10:00, local; Z: UTC) "
                           "or @UNIX_SECONDS");
    events_cmd->add_option("--until", events_opts.until, "Until (same forms as --since)");
    events_cmd->add_option("--verdict", events_opts.verdicts, "Only these verdicts")->delimiter(',');
    events_cmd->add_option("--hook", events_opts.hooks,
                           "Only these hooks: exec, file, net, tamper, trust, action, or a hook name")
        ->delimiter(',');
    events_cmd->add_option("--path", events_opts.path, "Only paths matching this glob (* ? [..])");
    events_cmd->add_option("--dest", events_opts.dest, "Only destinations in this CIDR or address");
    events_cmd->add_option("--limit", events_opts.limit, "At most this many records (0: all)");
    events_cmd->add_flag("--json", events_opts.json, "Print each record's JSON (OCSF fields)");
    events_cmd->add_flag("--csv", events_opts.csv, "Print CSV with a header line");
    auto* verify_cmd = events_cmd->add_subcommand(
        "verify", "Check the store's hash chains: exit 0 when every record is as written, 1 "
                  "naming the first record edited, deleted or inserted since");
    std::optional<std::string> verify_name;
    verify_cmd->add_option("NAME", verify_name, "Only this agent's chain");
    verify_cmd->add_option("--store", events_opts.store, "The store file")->capture_default_str();

    std::string report_name;
    bool report_json = false;
    auto* report_cmd = app.add_subcommand(
        "report", "Summarise an agent's life from the event store: time span, decisions by hook "
                  "and verdict, top denied paths and destinations, tier changes, operator "
                  "actions, its process tree");
    report_cmd->add_option("NAME", report_name, "Agent name")->required();
    report_cmd->add_option("--store", events_opts.store, "The store file")->capture_default_str();
    report_cmd->add_flag("--json", report_json, "Print JSON");

    auto* teardown_cmd = app.add_subcommand(
        "teardown", "Remove everything cordond put into the kernel and bpffs: ends the agents "
                    "cordon started, unguards attached ones, unpins maps and programs. Refuses "
                    "while cordond runs");
    cordon::cli::TeardownOptions teardown_opts;
    teardown_cmd->add_option("--pin-dir", teardown_opts.pin_dir, "Pinned program set")
        ->capture_default_str();
    teardown_cmd->add_option("--registry", teardown_opts.registry, "cordond's agent registry directory")
        ->capture_default_str();

    CLI11_PARSE(app, argc, argv);

    spdlog::set_pattern("cordon: %^%l%$: %v");
    spdlog::set_level(verbosity >= 2   ? spdlog::level::trace
                      : verbosity == 1 ? spdlog::level::debug
                                       : spdlog::level::warn);
    cordon::bpf::log_libbpf_to_spdlog();

    try {
        if (doctor->parsed()) {
            cordon::bpf::Features features(cordon::bpf::kernel_probe_source());
            const auto release = kernel_release();
            std::fputs(json ? cordon::control::doctor_json(features, release).c_str()
                            : cordon::control::doctor_text(features, release).c_str(),
                       stdout);
            return cordon::control::doctor_exit_code(features);
        }
        if (run->parsed()) {
            if (!run_mode.empty())
                run_opts.mode = run_mode == "audit" ? cordon::policy::Mode::Audit
                                                    : cordon::policy::Mode::Enforce;
            return cordon::cli::run_guarded(run_opts);
        }
        if (agents_cmd->parsed())
            return cordon::cli::agents(agents_json);
        if (status_cmd->parsed())
            return cordon::cli::status(status_json);
        if (attach_cmd->parsed())
            return cordon::cli::attach(attach_cgroup, attach_policy, attach_name, attach_mode);
        if (detach_cmd->parsed())
            return cordon::cli::detach(detach_name);
        if (teardown_cmd->parsed())
            return cordon::cli::teardown(teardown_opts);
        if (trace_cmd->parsed())
            return cordon::cli::trace(trace_opts);
        if (verify_cmd->parsed())
            return cordon::cli::events_verify(events_opts.store, verify_name);
        if (events_cmd->parsed())
            return cordon::cli::events_query(events_opts);
        if (report_cmd->parsed())
            return cordon::cli::report(report_name, events_opts.store, report_json);
        for (auto [cmd, op] : {std::pair{kill_cmd, cordon::api::Op::Kill},
                               std::pair{freeze_cmd, cordon::api::Op::Freeze},
                               std::pair{thaw_cmd, cordon::api::Op::Thaw},
                               std::pair{mode_cmd, cordon::api::Op::Mode}})
            if (cmd->parsed())
                return cordon::cli::agent_op(op, op_name, op_reason, mode_value);
        if (trust_cmd->parsed())
            return cordon::cli::trust(trust_name, trust_set, trust_reason, trust_json);
        if (task_begin->parsed())
            return cordon::cli::task_begin(task_opts);
        if (task_end->parsed())
            return cordon::cli::task_end(task_end_name, task_end_id, task_end_reason);
        if (task_list->parsed())
            return cordon::cli::task_list(task_list_name, task_list_json);
        if (grant_cmd->parsed())
            return cordon::cli::grant(grant_opts);
        if (grants_cmd->parsed())
            return cordon::cli::grants(grants_name, grants_json);
        if (explain_cmd->parsed())
            return cordon::cli::explain(explain_opts);
        if (revoke_cmd->parsed())
            return cordon::cli::revoke(revoke_name, revoke_id, revoke_reason);
        if (apply->parsed())
            return cordon::cli::apply(apply_name, apply_file, apply_mode, apply_reason);
        if (check->parsed())
            return cordon::control::policy_check(check_files,
                                                 cordon::control::make_context(user, workspace));
        if (show->parsed()) {
            auto resolver = cordon::policy::system_resolver();
            return cordon::control::policy_show(
                show_file, show_json, cordon::control::make_context(user, workspace), *resolver);
        }
    } catch (const cordon::Error& e) {
        std::fprintf(stderr, "cordon: error: %s\n", e.what());
        return run->parsed() ? cordon::cli::kRunSetupFailed : 1;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "cordon: internal error: %s\n", e.what());
        return 2;
    }
    return 0;
}
