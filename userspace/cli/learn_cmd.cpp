// SPDX-License-Identifier: Apache-2.0
// `cordon policy suggest` and `cordon policy test`: policies learned from, and checked against,
// what an agent did (policy/learn.h), read from an events file or the store one record at a time.
#include "cli/learn_cmd.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>

#include <fmt/format.h>

#include "cli/commands.h"
#include "common/error.h"
#include "events/store.h"
#include "policy/parser.h"
#include "policy/pipeline.h"

namespace cordon::cli {
namespace {

namespace learn = policy::learn;

/// Hands every access record of the input to `fn`; counts what it skips. Throws Error for an
/// input that cannot be read at all.
struct Reading {
    std::uint64_t records = 0, malformed = 0, other_agents = 0, out_of_time = 0;
    std::string first_malformed;
};

Reading read_accesses(const LearnInput& in, policy::Context ctx,
                      const std::function<void(const learn::Access&, const std::string&)>& fn)
{
    Reading r;
    learn::HostNames hosts(std::move(ctx));
    std::optional<std::int64_t> since, until;
    if (in.since)
        since = parse_time("--since", *in.since);
    if (in.until)
        until = parse_time("--until", *in.until);
    auto one = [&](std::string_view json, std::uint64_t where) {
        ++r.records;
        std::string why;
        auto a = learn::parse_record(json, why);
        if (!a) {
            if (!why.empty() && r.malformed++ == 0)
                r.first_malformed = fmt::format("{} {}: {}", in.from ? "line" : "record", where, why);
            return;
        }
        if (in.agent && a->agent != *in.agent) {
            ++r.other_agents;
            return;
        }
        if ((since && a->time_ns < *since) || (until && a->time_ns > *until)) {
            ++r.out_of_time;
            return;
        }
        fn(*a, a->kind == learn::Kind::Net ? hosts.recorded_host(a->rule) : std::string());
    };
    if (in.from) {
        std::ifstream file;
        std::istream* is = &std::cin;
        if (*in.from != "-") {
            file.open(*in.from);
            if (!file)
                throw Error(fmt::format("cannot read the events file '{}': {}", *in.from,
                                        errno_text(errno)));
            is = &file;
        }
        std::string line;
        for (std::uint64_t n = 1; std::getline(*is, line); ++n)
            if (!line.empty())
                one(line, n);
        return r;
    }
    if (!in.agent)
        throw Error("name the agent whose stored records to read (NAME), or give --from FILE");
    events::store::Filter f;
    f.agent = in.agent;
    f.since_ns = since;
    f.until_ns = until;
    f.kinds = {"decision"};
    events::store::for_each(in.store, f, [&](events::store::Row&& row) { one(row.json, row.id); });
    return r;
}

void report_reading(const Reading& r)
{
    if (r.malformed)
        std::fprintf(stderr, "warning: %llu malformed records skipped (first: %s)\n",
                     static_cast<unsigned long long>(r.malformed), r.first_malformed.c_str());
    if (r.other_agents)
        std::fprintf(stderr, "note: %llu records of other agents skipped\n",
                     static_cast<unsigned long long>(r.other_agents));
}

/// A candidate or base policy: checked, host names resolved, compiled. Prints its errors and
/// throws when it is not valid.
learn::Candidate load_candidate(const std::string& file, const policy::Context& ctx)
{
    policy::Diagnostics read_errors;
    auto text = policy::read_policy_file(file, read_errors);
    auto resolver = policy::system_resolver();
    auto prepared = text ? policy::prepare_document(*text, file, ctx, policy::DocumentKind::AgentPolicy,
                                                    std::nullopt, *resolver)
                         : policy::Prepared{.policy = std::nullopt, .errors = read_errors, .warnings = {}};
    if (!prepared.policy) {
        for (const auto& d : prepared.errors)
            std::fprintf(stderr, "%s\n", d.str().c_str());
        throw Error(fmt::format("'{}' is not a valid agent policy (errors above)", file));
    }
    auto compiled = policy::compile(*prepared.policy, policy::kTrialPolicyId);
    if (!compiled.compiled)
        throw Error(fmt::format("'{}' does not compile", file));
    return {std::move(*prepared.policy), std::move(*compiled.compiled), std::move(*text)};
}

/// Writes `text` to `path` only if it is a valid policy: applied whole or not at all.
void write_checked(const std::string& path, const std::string& text, const policy::Context& ctx)
{
    const auto checked = policy::trial_compile(
        policy::check_document(text, path, ctx, policy::DocumentKind::AgentPolicy));
    if (!checked.policy) {
        for (const auto& d : checked.errors)
            std::fprintf(stderr, "%s\n", d.str().c_str());
        throw Error(fmt::format("the suggested policy does not validate (errors above); "
                                "'{}' was not written. Please report this as a bug",
                                path));
    }
    // A new file of our own beside the target (never one that is there: the directory may be
    // the agent's, and a planted link would send root's write elsewhere), then renamed over it.
    std::string tmp = path + ".XXXXXX";
    const int fd = ::mkstemp(tmp.data());
    if (fd < 0)
        throw Error(fmt::format("cannot write beside '{}': {}", path, errno_text(errno)));
    std::size_t done = 0;
    while (done < text.size()) {
        const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
        if (n <= 0) {
            const int err = errno;
            ::close(fd);
            ::unlink(tmp.c_str());
            throw Error(fmt::format("cannot write '{}': {}", tmp, errno_text(err)));
        }
        done += static_cast<std::size_t>(n);
    }
    ::fchmod(fd, 0644);
    ::close(fd);
    if (std::rename(tmp.c_str(), path.c_str()) != 0) {
        const int err = errno;
        ::unlink(tmp.c_str());
        throw Error(fmt::format("cannot write '{}': {}", path, errno_text(err)));
    }
}

} // namespace

int policy_suggest(const SuggestCli& o, const policy::Context& ctx)
{
    std::optional<learn::Candidate> base;
    if (o.base)
        base = load_candidate(*o.base, ctx);
    learn::SuggestOptions so;
    so.fold = o.fold;
    so.ctx = ctx;
    so.name = o.name.value_or(o.in.agent ? *o.in.agent + "-learned" : "learned");
    so.base = base ? &*base : nullptr;
    so.base_file = o.base.value_or("");
    learn::Suggester s(so);
    const Reading r = read_accesses(o.in, ctx, [&](const learn::Access& a, const std::string& host) {
        s.add(a, host);
    });
    report_reading(r);
    if (s.accesses() == 0)
        throw Error(fmt::format("no access was recorded{} ({} records read): nothing to learn "
                                "from. Record the agent with `trace: all` in its policy, or in "
                                "audit mode (cordon mode NAME audit)",
                                o.in.agent ? " for agent " + *o.in.agent : "", r.records));
    const std::string policy_text = s.policy_yaml();
    if (o.output) {
        write_checked(*o.output, policy_text, ctx);
        std::fprintf(stderr, "wrote %s\n", o.output->c_str());
    }
    if (o.base)
        std::fputs(s.diff_text().c_str(), stdout);
    else if (!o.output)
        std::fputs(policy_text.c_str(), stdout);
    return 0;
}

int policy_test(const std::string& file, const LearnInput& in, const policy::Context& ctx)
{
    const learn::Candidate c = load_candidate(file, ctx);
    learn::Tester t(c, ctx.home.value_or(""));
    const Reading r = read_accesses(in, ctx, [&](const learn::Access& a, const std::string& host) {
        t.add(a, host);
    });
    report_reading(r);
    const auto rep = t.result();
    std::printf("%s against %s: %llu accesses replayed, %llu unchanged, %llu change\n",
                file.c_str(), in.agent ? in.agent->c_str() : in.from->c_str(),
                static_cast<unsigned long long>(rep.replayed),
                static_cast<unsigned long long>(rep.unchanged),
                static_cast<unsigned long long>(rep.replayed - rep.unchanged));
    for (const auto& ch : rep.changes)
        std::printf("  %s %6llu  %s: %s -> %s\n",
                    ch.newly_denied ? "DENIED " : ch.secret ? "SECRET " : "allowed",
                    static_cast<unsigned long long>(ch.count), ch.what.c_str(), ch.before.c_str(),
                    ch.after.c_str());
    for (const auto& [hook, n] : rep.not_replayable_by_hook)
        std::printf("  not replayed: %llu %s records (no model of that hook here)\n",
                    static_cast<unsigned long long>(n), hook.c_str());
    std::printf("  (tiers, tasks and grants are not replayed: each access is decided as at the "
                "policy's top tier, outside any task)\n");
    if (rep.secrets_newly_allowed())
        std::printf("%llu refused accesses to known secrets would go ahead (SECRET above)\n",
                    static_cast<unsigned long long>(rep.secrets_newly_allowed()));
    if (rep.newly_denied())
        std::printf("%llu accesses that went ahead would be denied\n",
                    static_cast<unsigned long long>(rep.newly_denied()));
    // Fails closed: a candidate that breaks the work, or opens a secret, does not pass.
    if (rep.newly_denied() || rep.secrets_newly_allowed())
        return 1;
    std::printf("no access that went ahead would be denied\n");
    return 0;
}

} // namespace cordon::cli
