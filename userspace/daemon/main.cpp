// SPDX-License-Identifier: Apache-2.0
// cordond: runs in the foreground (as systemd expects), logs to stderr. See docs/api.md.
#include <cstdio>

#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include "bpf/log.h"
#include "common/error.h"
#include "daemon/server.h"

int main(int argc, char** argv)
{
    CLI::App app{"cordond: the controller of every cordon agent on this host. Loads one program "
                 "set, pins it under --pin-dir so that agents stay enforced while cordond "
                 "restarts, and serves the control socket (docs/api.md). Runs in the "
                 "foreground; run as root."};
    app.set_version_flag("--version", std::string("cordond ") + CORDON_VERSION);
    cordon::daemon::ServerOptions o;
    std::string socket = o.socket, registry = o.registry, pin = o.pin_dir, actions = o.actions_log;
    int verbosity = 0;
    app.add_option("--socket", socket, "Control socket")->capture_default_str();
    app.add_option("--registry", registry, "Agent registry directory, a file per agent (on a tmpfs: /run)")
        ->capture_default_str();
    app.add_option("--pin-dir", pin, "Where maps and links are pinned (on bpffs)")
        ->capture_default_str();
    app.add_option("--actions-log", actions, "Operator actions, one JSON line each")
        ->capture_default_str();
    app.add_option("--backend", o.backend,
                   "auto, lsm or compat, for a fresh start (an adopted set keeps its backend)")
        ->check(CLI::IsMember({"auto", "lsm", "compat"}))
        ->capture_default_str();
    app.add_flag("-v,--verbose", verbosity, "Debug logging");
    CLI11_PARSE(app, argc, argv);
    o.socket = socket;
    o.registry = registry;
    o.pin_dir = pin;
    o.actions_log = actions;

    spdlog::set_pattern("cordond: %^%l%$: %v");
    spdlog::set_level(verbosity ? spdlog::level::debug : spdlog::level::info);
    cordon::bpf::log_libbpf_to_spdlog();
    try {
        return cordon::daemon::serve(o);
    } catch (const cordon::Error& e) {
        spdlog::error("{}", e.what());
        return 1;
    } catch (const std::exception& e) {
        spdlog::critical("internal error: {}", e.what());
        return 2;
    }
}
