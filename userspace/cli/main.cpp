// SPDX-License-Identifier: Apache-2.0
// cordon-cli, the full `cordon` command line (behind the static front end, front.cpp): the verbs
// registered in cli/verbs.h, and how a failure exits.
#include <cstdio>
#include <exception>
#include <string>

#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include "bpf/log.h"
#include "cli/verbs.h"
#include "common/error.h"

int main(int argc, char** argv)
{
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
