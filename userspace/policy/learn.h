// SPDX-License-Identifier: Apache-2.0
// Policies learned from what an agent did: `cordon policy suggest` (the least-privilege policy
// that covers every recorded access, or the change against a base policy) and `cordon policy
// test` (every recorded access whose verdict a candidate policy would change). Pure: the caller
// reads the records (an events file or the store) and hands them over one at a time, so memory
// grows with the distinct paths and addresses seen, not with the records.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "policy/compiler.h"
#include "policy/model.h"

namespace cordon::policy::learn {

enum class Kind : std::uint8_t { Exec, File, Net, Other };

/// One access as a decision record tells it.
struct Access {
    Kind kind = Kind::Other;
    std::string hook;          ///< as recorded: exec, open, create, connect4, sendmsg6, ...
    std::string verdict;       ///< allow | deny | audit | kill | freeze
    std::string rule;          ///< the deciding rule as recorded ("FILE:LINE", "exec.default")
    std::string path;          ///< Exec and File: the path the kernel decided
    std::uint8_t access = 0;   ///< File: kRead | kWrite
    Cidr dest{};               ///< Net: one address (/32 or /128)
    std::uint16_t port = 0;    ///< Net
    std::uint8_t protocol = 0; ///< Net: kTcp or kUdp
    std::string agent;
    std::int64_t time_ns = 0;  ///< when (CLOCK_REALTIME); 0 when the record has none
};

/// Reads one JSON record (a line of an events file, `cordon events --json`, or a stored
/// record). Returns nullopt with `error` empty for a record that is not an access decision
/// (exec traces, trust changes, operator actions, gaps), and nullopt with `error` set for one
/// that is malformed. Never throws.
std::optional<Access> parse_record(std::string_view json, std::string& error);

/// Whether the access went ahead when it was recorded: allow, or audit (an audit rule, or any
/// would-be refusal in audit mode).
bool proceeded(const Access& a);

/// What a policy decides for an access (the userspace model of the kernel's lookup: longest
/// prefix, class defaults; tiers, tasks and grants are not modelled).
struct Decision {
    Action action = Action::Deny;
    std::uint32_t rule_id = 0; ///< 0: the class default
};

/// A policy checked, compiled and ready for decide(). Host rules whose names do not resolve
/// here still match connects that were allowed by a rule naming the same host when they were
/// recorded (see recorded_host()).
struct Candidate {
    Policy policy;
    CompiledPolicy compiled;
    std::string text; ///< the file's text (rules are shown by their source line)
};

/// The host name of the rule that decided a recorded connect ("FILE:LINE" naming a `host:` rule
/// of FILE, which is read once and cached), or "". Files that cannot be read give "".
class HostNames {
public:
    explicit HostNames(Context ctx) : ctx_(std::move(ctx)) {}
    std::string recorded_host(const std::string& rule);

private:
    Context ctx_;
    std::map<std::string, std::map<int, std::string>> files_; ///< file -> line -> host
};

/// The decision `c` makes for `a`; `host` is the name the access was recorded under ("": none).
Decision decide(const Candidate& c, const Access& a, const std::string& host);

/// Whether a decision lets the access go ahead (allow or audit).
inline bool lets_through(const Decision& d)
{
    return d.action == Action::Allow || d.action == Action::Audit;
}

struct SuggestOptions {
    /// A directory becomes one rule when at least this many distinct entries directly below
    /// it were used (1: every parent directory; 0 is treated as 1).
    std::size_t fold = 4;
    Context ctx;            ///< ${HOME} and ${WORKSPACE} are written back for their values
    std::string name = "suggested"; ///< metadata.name of the suggested policy
    const Candidate* base = nullptr;
    std::string base_file;  ///< as given, for the diff's header
};

/// Accumulates accesses; renders the suggested policy or the change against the base.
class Suggester {
public:
    explicit Suggester(SuggestOptions o);
    ~Suggester();
    Suggester(const Suggester&) = delete;
    Suggester& operator=(const Suggester&) = delete;

    /// Counts one access. Records that are not accesses are counted as skipped.
    void add(const Access& a, const std::string& host);
    void skip(std::string_view why);

    /// The whole suggested policy, as YAML with a comment on each rule (no base), or the base's
    /// text with the rules to add written into its rule lists (with a base). Deterministic.
    std::string policy_yaml() const;
    /// The change against the base, for review: rules to add, base rules never used, accesses
    /// left for review (a base rule refused them, or they touch a known secret). Deterministic.
    std::string diff_text() const;
    std::uint64_t accesses() const;

    struct Impl; ///< opaque: the counts, and the rendering's helpers (learn_suggest.cpp)

private:
    bool add_bit(const Access& a, const std::string& host); ///< true: the base allows it
    std::unique_ptr<Impl> impl_;
};

/// Counts of one replay (`cordon policy test`).
struct Replay {
    struct Change {
        std::string what;   ///< "open write /home/u/.npm/x", "connect4 10.0.0.1:443/tcp"
        std::string before; ///< recorded verdict
        std::string after;  ///< the candidate's action and rule ("deny (default)", "allow (line 40)")
        bool newly_denied = false;
        bool secret = false; ///< newly allowed, and a known secret
        std::uint64_t count = 0;
    };
    std::uint64_t replayed = 0, unchanged = 0, not_replayable = 0;
    std::map<std::string, std::uint64_t> not_replayable_by_hook;
    std::vector<Change> changes; ///< newly denied first, then by count, then by text
    std::uint64_t newly_denied() const;
    std::uint64_t secrets_newly_allowed() const;
};

/// The known secret (credentials, keys; for exec the dynamic loader) that `path` is or lies
/// under, as the path of the secret; "" when none. `home` is ${HOME}; a home's secrets are
/// recognised under every home (".../.ssh/...").
std::string known_secret(Kind kind, const std::string& path, const std::string& home);

class Tester {
public:
    /// `home`: ${HOME}, for recognising known secrets that the candidate would newly allow.
    explicit Tester(const Candidate& c, std::string home = {}) : c_(c), home_(std::move(home)) {}
    void add(const Access& a, const std::string& host);
    Replay result() const;

private:
    const Candidate& c_;
    std::string home_;
    Replay r_;
    std::map<std::tuple<bool, std::string, std::string, std::string, bool>, std::uint64_t> changes_;
};

/// An address without its prefix length ("10.0.0.1", "2001:db8::1").
std::string address_text(const Cidr& c);

/// The one-line text of an access ("open read /etc/passwd", "connect4 10.0.0.1:443/tcp").
std::string describe(const Access& a);

} // namespace cordon::policy::learn
