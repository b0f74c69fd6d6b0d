// SPDX-License-Identifier: Apache-2.0
#include "control/policy_cmd.h"

#include <pwd.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include "common/error.h"
#include "policy/parser.h"
#include "policy/render.h"

namespace cordon::control {
namespace {

std::string canonical_dir(const std::string& dir, const char* what)
{
    std::error_code ec;
    auto p = std::filesystem::canonical(dir, ec);
    if (ec)
        throw Error(std::string(what) + " '" + dir + "' cannot be resolved: " + ec.message() +
                    "; expected an existing directory");
    if (!std::filesystem::is_directory(p))
        throw Error(std::string(what) + " '" + dir + "' is not a directory");
    return p.string();
}

void print_errors(const policy::Diagnostics& errs)
{
    for (const auto& d : errs)
        std::fprintf(stderr, "%s\n", d.str().c_str());
}

} // namespace

policy::Context make_context(const std::optional<std::string>& user,
                             const std::optional<std::string>& workspace)
{
    policy::Context ctx;
    const passwd* pw = nullptr;
    if (user) {
        pw = ::getpwnam(user->c_str());
        if (!pw)
            throw Error("unknown user '" + *user + "'; expected a user name from /etc/passwd");
    } else if (const char* sudo_user = std::getenv("SUDO_USER"); sudo_user && *sudo_user) {
        pw = ::getpwnam(sudo_user);
    }
    if (!pw)
        pw = ::getpwuid(::getuid());
    if (pw) {
        ctx.user = pw->pw_name;
        std::error_code ec;
        // A home that does not exist on this host still expands, as written in passwd.
        auto home = std::filesystem::canonical(pw->pw_dir, ec);
        ctx.home = ec ? std::string(pw->pw_dir) : home.string();
    }
    ctx.workspace = canonical_dir(workspace.value_or(std::filesystem::current_path().string()),
                                  "workspace");
    return ctx;
}

int policy_check(const std::vector<std::string>& files, const policy::Context& ctx)
{
    int rc = 0;
    for (const auto& f : files) {
        auto parsed = policy::load_document_file(f, ctx); // an AgentPolicy or a TaskOverlay
        if (parsed.policy) {
            auto compiled = policy::compile(*parsed.policy, 1);
            parsed.errors = std::move(compiled.errors);
        }
        if (!parsed.errors.empty()) {
            print_errors(parsed.errors);
            std::fprintf(stderr, "%s: %zu error%s\n", f.c_str(), parsed.errors.size(),
                         parsed.errors.size() == 1 ? "" : "s");
            rc = 1;
            continue;
        }
        std::printf("%s: ok (%s %s)\n", f.c_str(),
                    parsed.policy->overlay ? "task overlay" : "policy", parsed.policy->name.c_str());
    }
    return rc;
}

int policy_show(const std::string& file, bool json, const policy::Context& ctx,
                policy::Resolver& resolver)
{
    auto parsed = policy::load_document_file(file, ctx);
    if (!parsed.policy) {
        print_errors(parsed.errors);
        return 1;
    }
    policy::Diagnostics warnings;
    auto errs = policy::resolve_hosts(*parsed.policy, resolver, &warnings);
    for (const auto& w : warnings)
        std::fprintf(stderr, "warning: %s\n", w.str().c_str());
    if (errs.empty())
        errs = policy::compile(*parsed.policy, 1).errors;
    if (!errs.empty()) {
        print_errors(errs);
        return 1;
    }
    const auto text = json ? policy::show_json(*parsed.policy) : policy::show_text(*parsed.policy);
    std::fputs(text.c_str(), stdout);
    return 0;
}

} // namespace cordon::control
