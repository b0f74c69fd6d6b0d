// SPDX-License-Identifier: Apache-2.0
// cordon's verbs as registrations: each adds its subcommands, flags and help to the command line
// and, when parsed, names the function that carries it out. main() is the list of them.
#pragma once

#include <functional>

namespace CLI {
class App;
}

namespace cordon::cli {

/// What the parsed command line asks for, set by the verb that CLI11 parsed.
struct Chosen {
    std::function<int()> run;
    /// Exit status when the verb fails with cordon::Error (`cordon run` uses kRunSetupFailed).
    int failure_status = 1;
};

using Registration = void (*)(CLI::App& app, Chosen& chosen);

void add_doctor(CLI::App& app, Chosen& chosen);
void add_policy(CLI::App& app, Chosen& chosen); ///< policy check | show | apply
void add_run(CLI::App& app, Chosen& chosen);
void add_agents(CLI::App& app, Chosen& chosen);  ///< agents, status, attach, detach
void add_controls(CLI::App& app, Chosen& chosen); ///< kill, freeze, thaw, mode, trust
void add_tasks(CLI::App& app, Chosen& chosen);   ///< task begin | end | list
void add_grants(CLI::App& app, Chosen& chosen);  ///< grant, grants, revoke
void add_explain(CLI::App& app, Chosen& chosen);
void add_forensics(CLI::App& app, Chosen& chosen); ///< trace, events [verify], report
void add_teardown(CLI::App& app, Chosen& chosen);

/// Every verb, in the order `cordon --help` lists them.
inline constexpr Registration kVerbs[] = {
    add_doctor, add_policy, add_run,   add_agents,    add_controls,
    add_tasks,  add_grants, add_explain, add_forensics, add_teardown,
};

} // namespace cordon::cli
