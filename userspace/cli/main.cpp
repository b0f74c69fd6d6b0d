// SPDX-License-Identifier: Apache-2.0
// The `cordon` command line: the verbs registered in cli/verbs.h, and how a failure exits.
#include <unistd.h>

#include <cstdio>
#include <exception>
#include <string>
#include <string_view>

#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include "agents/launcher.h"
#include "bpf/log.h"
#include "cli/verbs.h"
#include "common/error.h"

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
    cordon::cli::Chosen chosen;
    for (const auto add_verb : cordon::cli::kVerbs)
        add_verb(app, chosen);

    CLI11_PARSE(app, argc, argv);

    spdlog::set_pattern("cordon: %^%l%$: %v");
    spdlog::set_level(verbosity >= 2   ? spdlog::level::trace
                      : verbosity == 1 ? spdlog::level::debug
                                       : spdlog::level::warn);
    cordon::bpf::log_libbpf_to_spdlog();
    if (!chosen.run)
        return 0;
    try {
        return chosen.run();
    } catch (const cordon::Error& e) {
        std::fprintf(stderr, "cordon: error: %s\n", e.what());
        return chosen.failure_status;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "cordon: internal error: %s\n", e.what());
        return 2;
    }
}
