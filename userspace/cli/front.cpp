// SPDX-License-Identifier: Apache-2.0
// `cordon`: a small static front end. The kill switch must not wait for CPU behind the agent it
// stops, and a dynamically linked program loads and relocates its libraries (libbpf, SQLite,
// OpenSSL, yaml-cpp, ...) at normal priority before its first line runs: under an agent's fork
// storm that took seconds. So `cordon kill NAME` and `cordon freeze NAME` (with an optional
// --reason) are carried out here, in a static binary whose first act, when root, is to move to
// real-time priority; every other command line, help included, runs the full command line
// (cordon-cli, installed beside this file) with the same arguments.
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <exception>
#include <optional>
#include <string>
#include <string_view>

#include "cli/stop.h"
#include "common/error.h"
#include "common/priority.h"

namespace {

struct Stop {
    cordon::api::Op op;
    std::string name, reason;
};

// `kill|freeze NAME [--reason TEXT | --reason=TEXT]` in any order, and nothing else: anything
// more (help, verbosity, an unknown flag, a second name) is the full command line's to judge.
std::optional<Stop> simple_stop(int argc, char** argv)
{
    if (argc < 3)
        return std::nullopt;
    const std::string_view verb = argv[1];
    if (verb != "kill" && verb != "freeze")
        return std::nullopt;
    Stop s{verb == "kill" ? cordon::api::Op::Kill : cordon::api::Op::Freeze, "", ""};
    bool named = false, reasoned = false;
    for (int i = 2; i < argc; ++i) {
        const std::string_view a = argv[i];
        if (a == "--reason" && i + 1 < argc && !reasoned) {
            s.reason = argv[++i];
            reasoned = true;
        } else if (a.rfind("--reason=", 0) == 0 && !reasoned) {
            s.reason = std::string(a.substr(9));
            reasoned = true;
        } else if (!a.empty() && a[0] != '-' && !named) {
            s.name = std::string(a);
            named = true;
        } else {
            return std::nullopt;
        }
    }
    if (!named)
        return std::nullopt;
    return s;
}

// The full command line: cordon-cli in this executable's directory.
int run_full(char** argv)
{
    char self[4096];
    const ssize_t n = ::readlink("/proc/self/exe", self, sizeof(self) - 1);
    std::string dir = ".";
    if (n > 0) {
        dir.assign(self, static_cast<std::size_t>(n));
        dir = dir.substr(0, dir.rfind('/'));
    }
    const std::string full = dir + "/cordon-cli";
    ::execv(full.c_str(), argv);
    std::fprintf(stderr,
                 "cordon: error: cannot run %s, which carries every verb but kill and freeze: "
                 "%s; install it beside cordon (cmake --install, or the build tree's "
                 "cordon-cli)\n",
                 full.c_str(), cordon::errno_text(errno).c_str());
    return 2;
}

} // namespace

int main(int argc, char** argv)
{
    const auto stop = simple_stop(argc, argv);
    if (!stop)
        return run_full(argv);
    if (::geteuid() == 0)
        (void)cordon::raise_control_priority(); // before anything else: see the top of this file
    try {
        return cordon::cli::stop_agent(stop->op, stop->name, stop->reason);
    } catch (const cordon::Error& e) {
        std::fprintf(stderr, "cordon: error: %s\n", e.what());
        return 1;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "cordon: internal error: %s\n", e.what());
        return 2;
    }
}
