// SPDX-License-Identifier: Apache-2.0
#include "cli/policy_cmd.h"

#include <pwd.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include "common/error.h"
#include "policy/pipeline.h"
#include "policy/render.h"

namespace cordon::cli {
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
                             const std::optional<std::string>& workspace, bool workspace_must_exist)
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
    const auto ws = workspace.value_or(std::filesystem::current_path().string());
    // A finished agent's workspace may be gone: its records still name paths under it.
    if (!workspace_must_exist && !std::filesystem::exists(ws)) {
        if (ws.empty() || ws.front() != '/')
            throw Error("workspace '" + ws + "' does not exist; give it as an absolute path");
        ctx.workspace = std::filesystem::path(ws).lexically_normal().string();
        if (ctx.workspace->size() > 1 && ctx.workspace->back() == '/')
            ctx.workspace->pop_back();
        return ctx;
    }
    ctx.workspace = canonical_dir(ws, "workspace");
    return ctx;
}

int policy_check(const std::vector<std::string>& files, const policy::Context& ctx)
{
    int rc = 0;
    for (const auto& f : files) {
        // Host names stay unresolved: a check needs no network, and says nothing about DNS.
        const auto checked = policy::trial_compile(
            policy::check_file(f, ctx, policy::DocumentKind::Either));
        if (!checked.policy) {
            print_errors(checked.errors);
            std::fprintf(stderr, "%s: %zu error%s\n", f.c_str(), checked.errors.size(),
                         checked.errors.size() == 1 ? "" : "s");
            rc = 1;
            continue;
        }
        std::printf("%s: ok (%s %s)\n", f.c_str(),
                    checked.policy->overlay ? "task overlay" : "policy",
                    checked.policy->name.c_str());
    }
    return rc;
}

int policy_show(const std::string& file, bool json, const policy::Context& ctx,
                policy::Resolver& resolver)
{
    auto checked = policy::check_file(file, ctx, policy::DocumentKind::Either);
    if (!checked.policy) {
        print_errors(checked.errors);
        return 1;
    }
    const auto prepared = policy::resolve_and_compile(std::move(checked), resolver);
    for (const auto& w : prepared.warnings)
        std::fprintf(stderr, "warning: %s\n", w.str().c_str());
    if (!prepared.policy) {
        print_errors(prepared.errors);
        return 1;
    }
    const auto& p = *prepared.policy;
    const auto text = json ? policy::show_json(p) : policy::show_text(p);
    std::fputs(text.c_str(), stdout);
    return 0;
}

} // namespace cordon::cli
