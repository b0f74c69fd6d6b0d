// SPDX-License-Identifier: Apache-2.0
#include "policy/parser.h"

#include <arpa/inet.h>
#include <sys/stat.h>

#include <algorithm>
#include <charconv>
#include <cstring>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <tuple>

#include <yaml-cpp/yaml.h>

#include <cordon/abi.h>

#include "policy/duration.h"
#include "policy/net.h"

namespace cordon::policy {
namespace {

constexpr std::string_view kApiVersion = "cordon.dev/v1";
constexpr std::string_view kPolicyKind = "AgentPolicy";
constexpr std::string_view kOverlayKind = "TaskOverlay";

// Which document kinds a caller takes.
enum class Accept { Policy, Overlay, Either };

// Why a key an AgentPolicy has is refused in a TaskOverlay (keys() reports it so).
using Refused = std::vector<std::pair<std::string_view, std::string>>;
const std::string kNoOverlayDefault =
    "an overlay has no default: what its rules do not name, the agent's policy decides; remove it";
const std::string kRefreshGone =
    "network.refresh is gone: host names are no longer resolved on a timer; the DNS gateway "
    "allows each address an agent's own lookup returns, for that answer's TTL plus "
    "network.dns.grace (docs/policy.md); remove it";

SourcePos pos_of(const YAML::Node& n)
{
    const auto m = n.Mark();
    if (m.is_null())
        return {};
    return {.line = m.line + 1, .column = m.column + 1};
}

bool is_plain_name(std::string_view s, size_t max_len)
{
    if (s.empty() || s.size() > max_len)
        return false;
    if (!std::isalnum(static_cast<unsigned char>(s[0])))
        return false;
    return std::all_of(s.begin(), s.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.';
    });
}

// Why a path is not in the form the kernel reports, or "".
std::string unnormalized(const std::string& p)
{
    if (p.find("//") != std::string::npos)
        return "contains '//'";
    size_t start = 1;
    while (start <= p.size()) {
        const size_t end = std::min(p.find('/', start), p.size());
        const std::string_view part(p.data() + start, end - start);
        if (part == "." || part == "..")
            return "contains '" + std::string(part) + "'";
        start = end + 1;
    }
    return "";
}

// Why a file is not YAML text at all (binary, not UTF-8), or "".
std::string text_problem(std::string_view t)
{
    if (auto nul = t.find('\0'); nul != std::string_view::npos)
        return "contains a NUL byte at offset " + std::to_string(nul) +
               ", so it is binary; expected a YAML text file";
    for (size_t i = 0; i < t.size();) {
        const auto c = static_cast<unsigned char>(t[i]);
        size_t len = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xe ? 3 : (c >> 3) == 0x1e ? 4 : 0;
        bool ok = len != 0 && i + len <= t.size();
        for (size_t j = 1; ok && j < len; ++j)
            ok = (static_cast<unsigned char>(t[i + j]) >> 6) == 0x2;
        if (!ok)
            return "is not UTF-8 text (bad byte at offset " + std::to_string(i) +
                   "); expected a YAML text file";
        i += len;
    }
    return "";
}

std::string quote_list(const std::vector<std::string_view>& words)
{
    std::string out;
    for (size_t i = 0; i < words.size(); ++i) {
        if (i > 0)
            out += i + 1 == words.size() ? " or " : ", ";
        out += words[i];
    }
    return out;
}

class Parser {
public:
    Parser(std::string file, const Context& ctx, Accept accept)
        : file_(std::move(file)), ctx_(ctx), accept_(accept)
    {
        p_.file = file_;
        p_.rules.push_back({.where = "none", .pos = {}}); // rule id 0 means "no rule"
    }

    ParseResult run(std::string_view text)
    {
        // YAML forbids tabs in indentation and parsers disagree on what they mean: refuse them
        // with their positions instead of guessing.
        int line = 1;
        for (size_t i = 0; i < text.size(); ++line) {
            const size_t eol = std::min(text.find('\n', i), text.size());
            for (size_t j = i; j < eol && (text[j] == ' ' || text[j] == '\t'); ++j)
                if (text[j] == '\t') {
                    error_at({line, static_cast<int>(j - i + 1)},
                             "tab in indentation; expected spaces (YAML indents with spaces only)");
                    break;
                }
            i = eol + 1;
        }
        if (!errors_.empty())
            return finish();
        YAML::Node root;
        try {
            root = YAML::Load(std::string(text));
        } catch (const YAML::Exception& e) {
            error_at({e.mark.line + 1, e.mark.column + 1},
                     "invalid YAML: " + e.msg + "; expected a YAML mapping (see docs/policy.md)");
            return finish();
        }
        if (!root || root.IsNull()) {
            error_at({}, "the policy is empty; expected a mapping with apiVersion, kind, metadata "
                         "and spec (see policies/ for examples)");
            return finish();
        }
        size_t nodes = 0;
        if (!within_budget(root, 0, nodes)) {
            error_at({}, "the policy expands to more than " + std::to_string(kMaxYamlNodes) +
                             " YAML nodes or nests deeper than " + std::to_string(kMaxYamlDepth) +
                             " levels (aliases expanding on each other?); expected a plain policy");
            return finish();
        }
        parse_root(root);
        return finish();
    }

private:
    // ---- diagnostics ------------------------------------------------------------------------
    void error_at(SourcePos p, std::string msg)
    {
        errors_.push_back({.file = file_, .line = p.line, .column = p.column,
                           .message = std::move(msg)});
    }
    void error(const YAML::Node& n, std::string msg) { error_at(pos_of(n), std::move(msg)); }

    ParseResult finish()
    {
        std::stable_sort(errors_.begin(), errors_.end(), [](const auto& a, const auto& b) {
            return std::tie(a.line, a.column) < std::tie(b.line, b.column);
        });
        if (!errors_.empty())
            return {.policy = std::nullopt, .errors = std::move(errors_)};
        return {.policy = std::move(p_), .errors = {}};
    }

    static bool within_budget(const YAML::Node& n, int depth, size_t& count)
    {
        if (++count > kMaxYamlNodes || depth > kMaxYamlDepth)
            return false;
        if (n.IsSequence() || n.IsMap()) {
            for (auto it = n.begin(); it != n.end(); ++it) {
                if (n.IsMap()) {
                    if (!within_budget(it->first, depth + 1, count) ||
                        !within_budget(it->second, depth + 1, count))
                        return false;
                } else if (!within_budget(*it, depth + 1, count)) {
                    return false;
                }
            }
        }
        return true;
    }

    // ---- shape checks -----------------------------------------------------------------------
    bool expect_map(const YAML::Node& n, const std::string& what)
    {
        if (n.IsMap())
            return true;
        error(n, what + " must be a mapping (key: value lines); found " + kind_of(n));
        return false;
    }
    bool expect_seq(const YAML::Node& n, const std::string& what)
    {
        if (n.IsSequence())
            return true;
        error(n, what + " must be a list (lines starting with '- '); found " + kind_of(n));
        return false;
    }
    std::optional<std::string> scalar(const YAML::Node& n, const std::string& what)
    {
        if (n.IsScalar())
            return n.Scalar();
        error(n, what + " must be a single value; found " + kind_of(n));
        return std::nullopt;
    }
    static std::string kind_of(const YAML::Node& n)
    {
        if (n.IsNull())
            return "nothing";
        if (n.IsScalar())
            return "'" + n.Scalar() + "'";
        if (n.IsSequence())
            return "a list";
        return "a mapping";
    }

    // Reports unknown and repeated keys; returns key -> (key node, value node).
    // `refused` keys are known to an AgentPolicy but not allowed in a TaskOverlay: they are
    // reported with why, instead of as unknown.
    std::map<std::string, std::pair<YAML::Node, YAML::Node>>
    keys(const YAML::Node& map, const std::string& where,
         const std::vector<std::string_view>& allowed, const Refused& refused = {})
    {
        std::map<std::string, std::pair<YAML::Node, YAML::Node>> out;
        for (auto it = map.begin(); it != map.end(); ++it) {
            if (!it->first.IsScalar()) {
                error(it->first, "keys in " + where + " must be plain words; found " +
                                     kind_of(it->first));
                continue;
            }
            const std::string k = it->first.Scalar();
            if (std::find(allowed.begin(), allowed.end(), k) == allowed.end()) {
                const auto no = std::find_if(refused.begin(), refused.end(),
                                             [&](const auto& r) { return r.first == k; });
                if (no != refused.end()) {
                    error(it->first, where + "." + k + " is not allowed in a TaskOverlay: " +
                                         no->second);
                    continue;
                }
                const auto hint = did_you_mean(k, allowed);
                error(it->first, "unknown key '" + k + "' in " + where + "; " +
                                     (hint.empty() ? "" : "did you mean '" + hint + "'? ") +
                                     "expected " + quote_list(allowed));
                continue;
            }
            if (auto prev = out.find(k); prev != out.end()) {
                error(it->first, "key '" + k + "' repeats line " +
                                     std::to_string(pos_of(prev->second.first).line) + " in " +
                                     where + "; expected each key once");
                continue;
            }
            out.emplace(k, std::make_pair(it->first, it->second));
        }
        return out;
    }

    template <typename Map>
    const YAML::Node* required(const Map& m, const YAML::Node& parent, const std::string& key,
                               const std::string& where, const std::string& expected)
    {
        if (auto it = m.find(key); it != m.end()) {
            if (it->second.second.IsNull()) {
                error(it->second.first, where + "." + key + " has no value; expected " + expected);
                return nullptr;
            }
            return &it->second.second;
        }
        error(parent, where + " has no '" + key + "'; expected " + expected);
        return nullptr;
    }

    template <typename Map> static const YAML::Node* optional(const Map& m, const std::string& key)
    {
        auto it = m.find(key);
        return it == m.end() ? nullptr : &it->second.second;
    }

    std::optional<std::uint32_t> number(const YAML::Node& n, const std::string& what,
                                        std::uint32_t lo, std::uint32_t hi)
    {
        auto s = scalar(n, what);
        if (!s)
            return std::nullopt;
        std::uint64_t v = 0;
        const auto [end, ec] = std::from_chars(s->data(), s->data() + s->size(), v);
        if (ec != std::errc() || end != s->data() + s->size() || s->empty()) {
            error(n, what + " must be a whole number; found '" + *s + "'; expected " +
                         std::to_string(lo) + " to " + std::to_string(hi));
            return std::nullopt;
        }
        if (v < lo || v > hi) {
            error(n, what + " is " + *s + ", out of range; expected " + std::to_string(lo) +
                         " to " + std::to_string(hi));
            return std::nullopt;
        }
        return static_cast<std::uint32_t>(v);
    }

    template <typename E>
    std::optional<E> word(const YAML::Node& n, const std::string& what,
                          const std::vector<std::pair<std::string_view, E>>& choices)
    {
        auto s = scalar(n, what);
        if (!s)
            return std::nullopt;
        std::vector<std::string_view> names;
        for (const auto& [name, value] : choices) {
            if (*s == name)
                return value;
            names.push_back(name);
        }
        const auto hint = did_you_mean(*s, names);
        error(n, "unknown " + what + " '" + *s + "'; " +
                     (hint.empty() ? "" : "did you mean '" + hint + "'? ") + "expected " +
                     quote_list(names));
        return std::nullopt;
    }

    std::optional<Action> action(const YAML::Node& n, const std::string& what)
    {
        return word<Action>(n, what, {{"allow", Action::Allow}, {"deny", Action::Deny},
                                      {"audit", Action::Audit}, {"kill", Action::Kill},
                                      {"freeze", Action::Freeze}});
    }

    std::uint32_t add_source(std::string where, SourcePos pos)
    {
        p_.rules.push_back({.where = std::move(where), .pos = pos});
        return static_cast<std::uint32_t>(p_.rules.size() - 1);
    }

    // ---- variables and paths ----------------------------------------------------------------
    std::optional<std::string> expand(const YAML::Node& n, const std::string& raw)
    {
        std::string out;
        size_t i = 0;
        bool ok = true;
        while (i < raw.size()) {
            if (raw.compare(i, 2, "${") != 0) {
                out.push_back(raw[i++]);
                continue;
            }
            const size_t close = raw.find('}', i + 2);
            if (close == std::string::npos) {
                error(n, "unterminated variable in '" + raw + "'; expected ${HOME}, "
                                                              "${WORKSPACE} or ${USER}");
                return std::nullopt;
            }
            const std::string name = raw.substr(i + 2, close - i - 2);
            const std::optional<std::string>* value = nullptr;
            const char* flag = "";
            if (name == "HOME") {
                value = &ctx_.home;
                flag = "--user (HOME is that user's home)";
            } else if (name == "WORKSPACE") {
                value = &ctx_.workspace;
                flag = "--workspace DIR";
            } else if (name == "USER") {
                value = &ctx_.user;
                flag = "--user NAME";
            }
            if (!value) {
                const auto hint = did_you_mean(name, {"HOME", "WORKSPACE", "USER"});
                error(n, "undefined variable ${" + name + "}; " +
                             (hint.empty() ? "" : "did you mean ${" + hint + "}? ") +
                             "expected ${HOME}, ${WORKSPACE} or ${USER}");
                ok = false;
            } else if (!*value) {
                error(n, "variable ${" + name + "} has no value in this run; pass " + flag);
                ok = false;
            } else {
                out += **value;
            }
            i = close + 1;
        }
        if (!ok)
            return std::nullopt;
        return out;
    }

    // Validates one rule path; fills rule.path/dir/written.
    bool path(const YAML::Node& n, PathRule& rule, const std::string& what)
    {
        auto raw = scalar(n, what);
        if (!raw)
            return false;
        rule.written = *raw;
        if (raw->empty() || ((*raw)[0] != '/' && raw->rfind("${", 0) != 0)) {
            error(n, what + " '" + *raw + "' is relative; expected an absolute path (starting "
                                         "with / or ${HOME}/${WORKSPACE})");
            return false;
        }
        auto expanded = expand(n, *raw);
        if (!expanded)
            return false;
        const std::string& p = *expanded;
        if (p.empty() || p[0] != '/') {
            error(n, what + " '" + *raw + "' expands to '" + p +
                         "', which is relative; expected an absolute path");
            return false;
        }
        if (p.find('\0') != std::string::npos) {
            error(n, what + " contains a NUL byte; expected a path");
            return false;
        }
        // Rules match the resolved path the kernel sees, which never has these.
        if (auto why = unnormalized(p); !why.empty()) {
            error(n, what + " '" + p + "' is not normalized (" + why +
                         "); expected a path without '.', '..' or repeated '/'");
            return false;
        }
        if (p.size() > CORDON_PATH_MAX) {
            error(n, what + " is " + std::to_string(p.size()) + " bytes long; expected at most " +
                         std::to_string(CORDON_PATH_MAX) + " (the kernel's rule key limit)");
            return false;
        }
        rule.path = p;
        rule.dir = p.back() == '/';
        return true;
    }

    // ---- tiers ------------------------------------------------------------------------------
    bool tier_ref(const YAML::Node& n, std::optional<std::string>& tier, Action act)
    {
        auto s = scalar(n, "tier");
        if (!s)
            return false;
        if (act != Action::Allow && act != Action::Audit) {
            error(n, "tier applies only to allow and audit rules (it is the lowest tier at "
                     "which the rule still allows); remove it from this " +
                         std::string(action_name(act)) + " rule");
            return false;
        }
        tier = *s;
        return true;
    }

    void resolve_tiers()
    {
        std::vector<std::string_view> names;
        for (const auto& t : p_.trust.tiers)
            names.push_back(t.name);
        auto resolve = [&](auto& rule) {
            if (!rule.tier)
                return;
            for (size_t i = 0; i < p_.trust.tiers.size(); ++i)
                if (p_.trust.tiers[i].name == *rule.tier) {
                    rule.tier_index = static_cast<std::uint8_t>(i);
                    return;
                }
            const auto hint = did_you_mean(*rule.tier, names);
            error_at(rule.tier_pos,
                     "unknown tier '" + *rule.tier + "'; " +
                         (hint.empty() ? "" : "did you mean '" + hint + "'? ") +
                         (p_.trust.scoring ? "expected " + quote_list(names)
                                           : std::string("this policy defines no tiers (add "
                                                         "spec.trust.tiers)")));
        };
        for (auto& r : p_.exec.rules)
            resolve(r);
        for (auto& r : p_.files.rules)
            resolve(r);
        for (auto& r : p_.network.rules)
            resolve(r);
        for (auto& r : p_.inbound.rules)
            resolve(r);
    }

    // ---- sections ---------------------------------------------------------------------------
    void parse_root(const YAML::Node& root)
    {
        if (!expect_map(root, "the policy"))
            return;
        const auto k = keys(root, "the policy", {"apiVersion", "kind", "metadata", "spec"});
        const std::string expected_api = "'" + std::string(kApiVersion) + "'";
        if (auto* n = required(k, root, "apiVersion", "the policy", expected_api)) {
            if (auto s = scalar(*n, "apiVersion"); s && *s != kApiVersion)
                error(*n, "unsupported apiVersion '" + *s + "'; expected " + expected_api);
            else if (s)
                p_.api_version = *s;
        }
        // The kind decides what spec may hold; a document of the other kind is not read further
        // (its spec would only add errors that miss the point).
        std::vector<std::string_view> kinds;
        if (accept_ != Accept::Overlay)
            kinds.push_back(kPolicyKind);
        if (accept_ != Accept::Policy)
            kinds.push_back(kOverlayKind);
        std::string expected_kind_text;
        for (auto kind : kinds)
            expected_kind_text += (expected_kind_text.empty() ? "'" : "' or '") + std::string(kind);
        expected_kind_text += "'";
        // A document of an unknown kind is read as the kind the caller asked for.
        p_.overlay = accept_ == Accept::Overlay;
        if (auto* n = required(k, root, "kind", "the policy", expected_kind_text)) {
            if (auto s = scalar(*n, "kind")) {
                if (accept_ == Accept::Overlay && *s == kPolicyKind) {
                    error(*n, "expected kind 'TaskOverlay' (a task overlay); found 'AgentPolicy'");
                    return;
                }
                if (accept_ == Accept::Policy && *s == kOverlayKind) {
                    error(*n, "expected kind 'AgentPolicy' (an agent policy); found 'TaskOverlay': "
                              "a task overlay is given with `cordon task begin --policy`");
                    return;
                }
                if (std::find(kinds.begin(), kinds.end(), *s) == kinds.end()) {
                    const auto hint = did_you_mean(*s, kinds);
                    error(*n, "unsupported kind '" + *s + "'; " +
                                  (hint.empty() ? "" : "did you mean '" + hint + "'? ") +
                                  "expected " + expected_kind_text);
                }
                if (accept_ == Accept::Either)
                    p_.overlay = *s == kOverlayKind;
            }
        }
        if (auto* n = required(k, root, "metadata", p_.overlay ? "the overlay" : "the policy",
                               "a mapping with name"))
            parse_metadata(*n);
        if (p_.overlay) {
            if (auto* n = required(k, root, "spec", "the overlay",
                                   "a mapping with exec, files or network rules"))
                parse_overlay_spec(*n);
        } else if (auto* n = required(k, root, "spec", "the policy",
                                      "a mapping with mode, exec, files and network")) {
            parse_spec(*n);
        }
    }

    void parse_metadata(const YAML::Node& n)
    {
        if (!expect_map(n, "metadata"))
            return;
        const auto k = keys(n, "metadata", {"name", "description"});
        const char* name_rule =
            "a name of 1 to 63 letters, digits, '-', '_' or '.', starting with a letter or digit";
        if (auto it = k.find("name"); it == k.end()) {
            error(n, std::string("metadata has no 'name'; expected ") + name_rule);
        } else if (auto s = scalar(it->second.second, "metadata.name")) {
            if (s->empty() || it->second.second.IsNull())
                error(it->second.first, std::string("metadata.name is empty; expected ") +
                                            name_rule);
            else if (!is_plain_name(*s, 63))
                error(it->second.second, "metadata.name '" + *s + "' is not valid; expected " +
                                             name_rule);
            else
                p_.name = *s;
        }
        if (auto* d = optional(k, "description"))
            if (auto s = scalar(*d, "metadata.description"))
                p_.description = *s;
    }

    void parse_spec(const YAML::Node& n)
    {
        if (!expect_map(n, "spec"))
            return;
        const auto k = keys(n, "spec", {"mode", "trace", "trust", "exec", "files", "network",
                                        "hardening", "tasks"});
        if (auto* m = optional(k, "mode"))
            if (auto v = word<Mode>(*m, "mode", {{"enforce", Mode::Enforce}, {"audit", Mode::Audit}}))
                p_.mode = *v;
        if (auto* t = optional(k, "trace"))
            if (auto v = word<Trace>(*t, "trace", {{"decisions", Trace::Decisions},
                                                   {"exec", Trace::Exec},
                                                   {"all", Trace::All}}))
                p_.trace = *v;
        // Trust first: rules name its tiers.
        if (auto* t = optional(k, "trust"))
            parse_trust(*t);
        if (auto* h = optional(k, "hardening"))
            parse_hardening(*h);
        if (auto* t = optional(k, "tasks"))
            parse_tasks(*t);
        // Every class states its default: a missing one is an error, never a silent allow.
        const std::string cls = "a mapping with 'default' (allow, deny, audit, kill or freeze) and 'rules'";
        if (auto* e = required(k, n, "exec", "spec", cls))
            parse_path_class(*e, "exec", p_.exec, false);
        if (auto* f = required(k, n, "files", "spec", cls))
            parse_path_class(*f, "files", p_.files, true);
        if (auto* w = required(k, n, "network", "spec", cls))
            parse_network(*w);
        resolve_tiers();
        check_limits();
    }

    // A TaskOverlay's spec: exec, files and network, each optional, each with rules only.
    void parse_overlay_spec(const YAML::Node& n)
    {
        if (!expect_map(n, "spec"))
            return;
        Refused refused;
        for (std::string_view key : {"mode", "trace", "trust", "hardening", "tasks"})
            refused.emplace_back(key, "a TaskOverlay has only exec, files and network rules "
                                      "(the agent's policy keeps its " + std::string(key) +
                                      "); remove it");
        const auto k = keys(n, "spec", {"exec", "files", "network"}, refused);
        if (auto* e = optional(k, "exec"))
            parse_path_class(*e, "exec", p_.exec, false);
        if (auto* f = optional(k, "files"))
            parse_path_class(*f, "files", p_.files, true);
        if (auto* w = optional(k, "network"))
            parse_network(*w);
        p_.inbound_implied = false; // an overlay decides no inbound access
        if (errors_.empty() && p_.exec.rules.empty() && p_.files.rules.empty() &&
            p_.network.rules.empty())
            error(n, "the overlay has no rules; expected exec, files or network rules (an "
                     "overlay decides only what its rules name)");
        check_limits();
    }

    void parse_tasks(const YAML::Node& n)
    {
        if (!expect_map(n, "spec.tasks"))
            return;
        const auto k = keys(n, "spec.tasks", {"isolation"});
        if (auto* v = optional(k, "isolation"))
            if (auto open = word<bool>(*v, "tasks.isolation", {{"strict", false}, {"open", true}}))
                p_.tasks_open = *open;
    }

    void parse_hardening(const YAML::Node& n)
    {
        if (!expect_map(n, "spec.hardening"))
            return;
        auto& h = p_.hardening;
        h.pos = pos_of(n);
        const auto k = keys(n, "spec.hardening", {"no_new_privs", "allow"});
        if (auto* v = optional(k, "no_new_privs"))
            if (auto b = word<bool>(*v, "hardening.no_new_privs", {{"true", true}, {"false", false}}))
                h.no_new_privs = *b;
        auto* a = optional(k, "allow");
        if (!a)
            return;
        std::vector<std::pair<std::string_view, SideDoor>> relaxable;
        std::vector<std::string_view> names;
        for (const auto& d : side_doors())
            if (d.relaxable) {
                relaxable.emplace_back(d.name, d.door);
                names.push_back(d.name);
            }
        const auto items =
            one_or_list(*a, "hardening.allow must be a list of " + quote_list(names));
        if (!items)
            return;
        for (const auto& item : *items) {
            if (item.IsScalar() && item.Scalar() == "modules") {
                error(item, "hardening.allow cannot reopen 'modules': an agent never loads kernel "
                            "code; expected " + quote_list(names));
                continue;
            }
            if (auto d = word<SideDoor>(item, "hardening item", relaxable))
                h.reopened |= 1u << static_cast<unsigned>(*d);
        }
    }

    void parse_trust(const YAML::Node& n)
    {
        if (!expect_map(n, "spec.trust"))
            return;
        p_.trust.scoring = true;
        const auto k = keys(n, "spec.trust", {"initial", "tiers", "penalties", "recovery"});
        if (auto* v = optional(k, "initial"))
            if (auto x = number(*v, "trust.initial", 0, 1000))
                p_.trust.initial = *x;
        if (auto* v = optional(k, "recovery"))
            if (auto x = number(*v, "trust.recovery (points per minute)", 0, 1000))
                p_.trust.recovery_per_minute = *x;
        if (auto* pen = optional(k, "penalties"); pen && expect_map(*pen, "trust.penalties")) {
            const auto pk = keys(*pen, "trust.penalties", {"deny", "kill", "burst"});
            if (auto* v = optional(pk, "deny"))
                if (auto x = number(*v, "trust.penalties.deny", 0, 1000))
                    p_.trust.penalty_deny = *x;
            if (auto* v = optional(pk, "kill"))
                if (auto x = number(*v, "trust.penalties.kill", 0, 1000))
                    p_.trust.penalty_kill = *x;
            if (auto* b = optional(pk, "burst"))
                parse_burst(*b);
        }
        auto* tiers = optional(k, "tiers");
        if (!tiers || !expect_seq(*tiers, "trust.tiers"))
            return;
        if (tiers->size() == 0) {
            error(*tiers, "trust.tiers is empty; expected 1 to " +
                              std::to_string(CORDON_MAX_TIERS) + " tiers");
            return;
        }
        if (tiers->size() > CORDON_MAX_TIERS) {
            error(*tiers, "trust.tiers has " + std::to_string(tiers->size()) +
                              " tiers; expected at most " + std::to_string(CORDON_MAX_TIERS));
            return;
        }
        p_.trust.tiers.clear();
        for (size_t i = 0; i < tiers->size(); ++i) {
            const YAML::Node t = (*tiers)[i];
            const std::string where = "trust.tiers[" + std::to_string(i) + "]";
            if (!expect_map(t, where))
                continue;
            const auto tk = keys(t, where, {"name", "min", "on_enter"});
            Tier tier{.name = "", .min_score = 0, .pos = pos_of(t)};
            if (auto* nm = required(tk, t, "name", where, "a tier name")) {
                if (auto s = scalar(*nm, where + ".name")) {
                    if (!is_plain_name(*s, 31))
                        error(*nm, "tier name '" + *s + "' is not valid; expected up to 31 "
                                                        "letters, digits, '-', '_' or '.'");
                    for (const auto& prev : p_.trust.tiers)
                        if (prev.name == *s)
                            error(*nm, "tier '" + *s + "' is defined twice (line " +
                                           std::to_string(prev.pos.line) +
                                           "); expected unique tier names");
                    tier.name = *s;
                }
            }
            if (auto* mn = required(tk, t, "min", where, "the tier's minimum score, 0 to 1000")) {
                if (auto x = number(*mn, where + ".min", 0, 1000)) {
                    tier.min_score = *x;
                    if (p_.trust.tiers.empty() && *x != 0)
                        error(*mn, "the first tier's min is " + std::to_string(*x) +
                                       "; expected 0, so that every score has a tier");
                    if (!p_.trust.tiers.empty() && *x <= p_.trust.tiers.back().min_score)
                        error(*mn, where + ".min " + std::to_string(*x) +
                                       " is not above the previous tier's " +
                                       std::to_string(p_.trust.tiers.back().min_score) +
                                       "; expected tiers from lowest to highest");
                }
            }
            if (auto* oe = optional(tk, "on_enter"))
                if (auto v = word<TierEnter>(*oe, "on_enter", {{"report", TierEnter::Report},
                                                               {"freeze", TierEnter::Freeze},
                                                               {"kill", TierEnter::Kill}}))
                    tier.on_enter = *v;
            p_.trust.tiers.push_back(tier);
        }
    }

    // trust.penalties.burst: all three keys, or no burst signal at all.
    void parse_burst(const YAML::Node& n)
    {
        const std::string where = "trust.penalties.burst";
        if (!expect_map(n, where))
            return;
        const auto k = keys(n, where, {"denials", "within", "penalty"});
        Burst b{.pos = pos_of(n)};
        bool ok = true;
        if (auto* v = required(k, n, "denials", where,
                               "the number of denials that costs the penalty, 1 to 65535")) {
            auto x = number(*v, where + ".denials", 1, 65535);
            ok &= x.has_value();
            b.denials = x.value_or(0);
        } else {
            ok = false;
        }
        if (auto* v = required(k, n, "within", where,
                               "the window the denials fall within, 1s to 1h (such as 10s)")) {
            auto w = window(*v, where + ".within");
            ok &= w.has_value();
            b.window_ms = w.value_or(0);
        } else {
            ok = false;
        }
        if (auto* v = required(k, n, "penalty", where,
                               "the score lost once per window, 0 to 1000")) {
            auto x = number(*v, where + ".penalty", 0, 1000);
            ok &= x.has_value();
            b.penalty = x.value_or(0);
        } else {
            ok = false;
        }
        if (ok)
            p_.trust.burst = b;
    }

    // A burst window: a duration from 1 s to 1 h, in ms. Longer windows would make one early
    // denial count against an agent for the rest of a long session.
    std::optional<std::uint32_t> window(const YAML::Node& n, const std::string& what)
    {
        constexpr std::uint64_t kMin = 1000, kMax = 3'600'000;
        auto s = scalar(n, what);
        if (!s)
            return std::nullopt;
        std::string why;
        const auto ms = parse_duration_ms(*s, why);
        if (!ms) {
            error(n, what + " is not a duration: " + why);
            return std::nullopt;
        }
        if (*ms < kMin || *ms > kMax) {
            error(n, what + " is " + *s + ", out of range; expected " + duration_text(kMin) +
                         " to " + duration_text(kMax));
            return std::nullopt;
        }
        return static_cast<std::uint32_t>(*ms);
    }

    void parse_default(const std::map<std::string, std::pair<YAML::Node, YAML::Node>>& k,
                       const YAML::Node& n, const std::string& cls, Action& out,
                       std::uint32_t& rule_id, SourcePos& pos)
    {
        if (auto* d = required(k, n, "default", cls, "allow, deny, audit, kill or freeze")) {
            if (auto a = action(*d, cls + ".default"))
                out = *a;
            pos = pos_of(*d);
            rule_id = add_source(cls + ".default", pos);
        }
    }

    void parse_path_class(const YAML::Node& n, const std::string& cls, RuleClass<PathRule>& out,
                          bool files)
    {
        if (!expect_map(n, cls))
            return;
        const auto k = p_.overlay ? keys(n, cls, {"rules"}, {{"default", kNoOverlayDefault}})
                                  : keys(n, cls, {"default", "rules"});
        if (!p_.overlay)
            parse_default(k, n, cls, out.default_action, out.default_rule_id, out.default_pos);
        auto* rules = optional(k, "rules");
        if (!rules || rules->IsNull() || !expect_seq(*rules, cls + ".rules"))
            return;
        std::map<std::string, std::vector<size_t>> by_path; // path -> indexes into out.rules
        for (size_t i = 0; i < rules->size(); ++i) {
            const YAML::Node r = (*rules)[i];
            const std::string where = cls + ".rules[" + std::to_string(i) + "]";
            if (!expect_map(r, where))
                continue;
            std::vector<std::string_view> allowed{"path", "action"};
            if (!p_.overlay)
                allowed.push_back("tier");
            if (files)
                allowed.push_back("access");
            const auto rk = keys(r, where, allowed, overlay_rule_refused());
            PathRule rule;
            rule.pos = pos_of(r);
            bool ok = true;
            if (auto* pn = required(rk, r, "path", where, "an absolute path")) {
                ok &= path(*pn, rule, cls + " path");
                rule.pos = pos_of(*pn);
            } else {
                ok = false;
            }
            ok &= action_and_tier(rk, r, where, rule);
            if (files) {
                if (auto* ac = optional(rk, "access"))
                    ok &= access(*ac, rule.access);
            } else {
                rule.access = 0;
            }
            rule.id = add_source(where, rule.pos);
            if (!ok)
                continue;
            // One rule per path (and access, for files): index by path to stay linear.
            auto& same_path = by_path[rule.path];
            for (size_t idx : same_path) {
                const auto& prev = out.rules[idx];
                if (files && (prev.access & rule.access) == 0)
                    continue;
                const bool same = prev.action == rule.action;
                error_at(rule.pos,
                         "rule for '" + rule.path + "'" +
                             (files ? " (" + access_names(prev.access & rule.access) + ")" : "") +
                             (same ? " repeats line " : " conflicts with line ") +
                             std::to_string(prev.pos.line) +
                             (same ? "" : " (" + std::string(action_name(prev.action)) + " vs " +
                                              std::string(action_name(rule.action)) + ")") +
                             "; expected one rule per path" + (files ? " and access" : ""));
                ok = false;
                break;
            }
            if (ok)
                same_path.push_back(out.rules.size());
            if (!ok)
                continue;
            out.rules.push_back(std::move(rule));
        }
    }

    // An overlay's rules have no tier: it has no trust section of its own.
    Refused overlay_rule_refused() const
    {
        if (!p_.overlay)
            return {};
        return {{"tier", "an overlay has no trust tiers (its rules apply at every tier); "
                         "remove it"}};
    }

    // A rule's `action` (required) and `tier` (optional, allow and audit only).
    template <typename Map, typename Rule>
    bool action_and_tier(const Map& rk, const YAML::Node& r, const std::string& where, Rule& rule)
    {
        bool ok = true;
        if (auto* an = required(rk, r, "action", where, "allow, deny, audit, kill or freeze")) {
            auto a = action(*an, "action");
            ok &= a.has_value();
            if (a)
                rule.action = *a;
        } else {
            ok = false;
        }
        if (auto* tn = optional(rk, "tier")) {
            ok &= tier_ref(*tn, rule.tier, rule.action);
            rule.tier_pos = pos_of(*tn);
        }
        return ok;
    }

    // A single value or a non-empty list of them; reports `expected` (with what was found).
    std::optional<std::vector<YAML::Node>> one_or_list(const YAML::Node& n,
                                                       const std::string& expected)
    {
        std::vector<YAML::Node> items;
        if (n.IsScalar()) {
            items.push_back(n);
        } else if (n.IsSequence() && n.size() > 0) {
            for (const auto& item : n)
                items.push_back(item);
        } else {
            error(n, expected + "; found " + kind_of(n));
            return std::nullopt;
        }
        return items;
    }

    bool access(const YAML::Node& n, std::uint8_t& out)
    {
        const auto items = one_or_list(n, "access must be a list of read and write");
        if (!items)
            return false;
        out = 0;
        bool ok = true;
        for (const auto& item : *items) {
            auto a = word<std::uint8_t>(item, "access", {{"read", kRead}, {"write", kWrite}});
            if (a)
                out |= *a;
            else
                ok = false;
        }
        return ok;
    }

    bool ports(const YAML::Node& n, std::vector<PortRange>& out)
    {
        const auto items =
            one_or_list(n, "ports must be a list of ports (443) and ranges (\"8000-8999\")");
        if (!items)
            return false;
        bool ok = true;
        for (const auto& item : *items) {
            auto s = scalar(item, "port");
            if (!s) {
                ok = false;
                continue;
            }
            auto r = parse_port_range(*s);
            if (!r) {
                error(item, "port '" + *s + "' is not valid; expected a port 1-65535 or a "
                                            "range \"low-high\" within it");
                ok = false;
                continue;
            }
            out.push_back(*r);
        }
        if (ok)
            out = merge_port_ranges(std::move(out));
        return ok;
    }

    void parse_network(const YAML::Node& n)
    {
        if (!expect_map(n, "network"))
            return;
        auto& net = p_.network;
        if (p_.overlay) {
            const std::string only = "an overlay has only rules: the agent's policy decides ";
            const auto k =
                keys(n, "network", {"rules", "refresh"},
                     {{"default", kNoOverlayDefault},
                      {"dns", only + "what its DNS gateway does; remove it"},
                      {"raw_sockets", only + "raw, ICMP echo and packet sockets; remove it"},
                      {"unix_abstract", only + "abstract Unix sockets; remove it"},
                      {"inbound", only + "where the agent may listen and bind; remove it"}});
            if (auto* r = optional(k, "refresh"))
                error(*r, kRefreshGone);
            if (auto* rules = optional(k, "rules"); rules && !rules->IsNull())
                parse_net_rules(*rules, "network.rules", net, true);
            return;
        }
        const auto k = keys(n, "network", {"default", "rules", "dns", "refresh", "raw_sockets",
                                           "unix_abstract", "inbound"});
        if (auto* r = optional(k, "refresh"))
            error(*r, kRefreshGone);
        parse_default(k, n, "network", net.default_action, net.default_rule_id, net.default_pos);
        if (auto* r = optional(k, "raw_sockets"))
            if (auto v = action(*r, "network.raw_sockets action"))
                p_.raw_sockets = *v;
        if (auto* r = optional(k, "unix_abstract"))
            if (auto v = action(*r, "network.unix_abstract action"))
                p_.unix_abstract = *v;
        if (auto* d = optional(k, "dns"))
            parse_dns(*d);
        if (auto* rules = optional(k, "rules"); rules && !rules->IsNull())
            parse_net_rules(*rules, "network.rules", net, true);
        if (auto* in = optional(k, "inbound"))
            parse_inbound(*in);
        else
            imply_inbound(pos_of(n));
    }

    // network.dns: what the DNS gateway does for this agent.
    void parse_dns(const YAML::Node& n)
    {
        if (!expect_map(n, "network.dns"))
            return;
        const auto k = keys(n, "network.dns", {"unknown", "grace"});
        if (auto* u = optional(k, "unknown"))
            if (auto v = word<bool>(*u, "network.dns.unknown", {{"refuse", false}, {"pass", true}}))
                p_.dns_pass = *v;
        if (auto* g = optional(k, "grace"))
            if (auto x = number(*g, "network.dns.grace (seconds)", 0, 300))
                p_.dns_grace_s = static_cast<std::uint16_t>(*x);
    }

    // Without network.inbound an agent may listen on loopback only.
    void imply_inbound(SourcePos pos)
    {
        auto& in = p_.inbound;
        in.default_action = Action::Deny;
        in.default_pos = pos;
        in.default_rule_id = add_source("network.inbound.default (implied)", pos);
        for (const char* c : {"127.0.0.0/8", "::1/128"}) {
            std::string why;
            NetRule r;
            r.cidr = parse_cidr(c, why);
            r.action = Action::Allow;
            r.pos = pos;
            r.id = add_source("network.inbound (implied)", pos);
            in.rules.push_back(std::move(r));
        }
        p_.inbound_implied = true;
    }

    void parse_inbound(const YAML::Node& n)
    {
        if (!expect_map(n, "network.inbound"))
            return;
        p_.inbound_implied = false;
        auto& in = p_.inbound;
        const auto k = keys(n, "network.inbound", {"default", "rules"});
        parse_default(k, n, "network.inbound", in.default_action, in.default_rule_id,
                      in.default_pos);
        if (auto* rules = optional(k, "rules"); rules && !rules->IsNull())
            parse_net_rules(*rules, "network.inbound.rules", in, false);
    }

    // Rules of network.rules (hosts allowed: remote names) or network.inbound.rules (local
    // addresses: cidr only).
    void parse_net_rules(const YAML::Node& rules, const std::string& list, RuleClass<NetRule>& out,
                         bool hosts)
    {
        if (!expect_seq(rules, list))
            return;
        for (size_t i = 0; i < rules.size(); ++i) {
            const YAML::Node r = rules[i];
            const std::string where = list + "[" + std::to_string(i) + "]";
            if (!expect_map(r, where))
                continue;
            std::vector<std::string_view> allowed{"cidr", "host", "ports", "protocol", "action"};
            if (!p_.overlay)
                allowed.push_back("tier");
            const auto rk = keys(r, where, allowed, overlay_rule_refused());
            NetRule rule;
            rule.pos = pos_of(r);
            bool ok = true;
            auto* cidr = optional(rk, "cidr");
            auto* host = optional(rk, "host");
            if (host && !hosts) {
                error(*host, where + " names a host; inbound rules name local addresses: "
                                     "expected cidr");
                ok = false;
            } else if ((cidr != nullptr) == (host != nullptr)) {
                error(r, where + (cidr ? " has both cidr and host" : " has neither cidr nor host") +
                             "; expected exactly one of them");
                ok = false;
            } else if (cidr) {
                rule.pos = pos_of(*cidr);
                if (auto s = scalar(*cidr, "cidr")) {
                    std::string why;
                    if (auto c = parse_cidr(*s, why))
                        rule.cidr = *c;
                    else {
                        error(*cidr, "invalid CIDR '" + *s + "': " + why);
                        ok = false;
                    }
                } else {
                    ok = false;
                }
            } else {
                rule.pos = pos_of(*host);
                if (auto s = scalar(*host, "host"); s && valid_host_pattern(*s)) {
                    rule.host = host_key(*s);
                } else {
                    if (s)
                        error(*host, "invalid host name '" + *s + "'; expected a DNS name such "
                                                                 "as github.com, or a wildcard "
                                                                 "such as \"*.github.io\" (use "
                                                                 "cidr: for addresses)");
                    ok = false;
                }
            }
            if (auto* pn = optional(rk, "ports"))
                ok &= ports(*pn, rule.ports);
            if (auto* pr = optional(rk, "protocol")) {
                auto v = word<std::uint8_t>(*pr, "protocol",
                                            {{"tcp", kTcp}, {"udp", kUdp}, {"any", kAnyProtocol}});
                ok &= v.has_value();
                if (v)
                    rule.protocols = *v;
            }
            ok &= action_and_tier(rk, r, where, rule);
            rule.id = add_source(where, rule.pos);
            if (ok)
                out.rules.push_back(std::move(rule));
        }
    }

    void check_limits()
    {
        const size_t paths = p_.exec.rules.size() + p_.files.rules.size();
        if (paths > CORDON_MAX_PATH_RULES)
            error_at({}, "the policy has " + std::to_string(paths) +
                             " exec and files rules; expected at most " +
                             std::to_string(CORDON_MAX_PATH_RULES));
        // Implied inbound rules (loopback) are not the author's and do not count.
        const size_t nets =
            p_.network.rules.size() + (p_.inbound_implied ? 0 : p_.inbound.rules.size());
        if (nets > CORDON_MAX_NET_RULES)
            error_at({}, "the policy has " + std::to_string(nets) +
                             " network rules; expected at most " +
                             std::to_string(CORDON_MAX_NET_RULES));
    }

    std::string file_;
    const Context& ctx_;
    Accept accept_;
    Diagnostics errors_;
    Policy p_;
};

} // namespace

std::string did_you_mean(std::string_view word, const std::vector<std::string_view>& candidates)
{
    // Optimal string alignment distance (a swap of two neighbours costs 1), case-insensitive.
    // A hint is offered when it is at most 2 and less than half the word, so that "icmp" does
    // not suggest "tcp".
    const auto lower = [](char ch) { return std::tolower(static_cast<unsigned char>(ch)); };
    std::string best;
    size_t best_d = 3;
    for (auto c : candidates) {
        const size_t n = word.size(), m = c.size();
        std::vector<std::vector<size_t>> d(n + 1, std::vector<size_t>(m + 1));
        for (size_t i = 0; i <= n; ++i)
            d[i][0] = i;
        for (size_t j = 0; j <= m; ++j)
            d[0][j] = j;
        for (size_t i = 1; i <= n; ++i)
            for (size_t j = 1; j <= m; ++j) {
                const size_t cost = lower(word[i - 1]) == lower(c[j - 1]) ? 0 : 1;
                d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
                if (i > 1 && j > 1 && lower(word[i - 1]) == lower(c[j - 2]) &&
                    lower(word[i - 2]) == lower(c[j - 1]))
                    d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
            }
        if (d[n][m] < best_d && 2 * d[n][m] < word.size()) {
            best_d = d[n][m];
            best = c;
        }
    }
    return best;
}

namespace {

ParseResult parse_as(std::string_view text, const std::string& file, const Context& ctx,
                     Accept accept)
{
    // Binary or non-UTF-8 input is refused before YAML sees it: every string cordon later prints
    // (JSON included) is then valid UTF-8.
    if (auto why = text_problem(text); !why.empty())
        return {.policy = std::nullopt,
                .errors = {{.file = file, .line = 0, .column = 0, .message = why}}};
    return Parser(file, ctx, accept).run(text);
}

ParseResult load_as(const std::string& path, const Context& ctx, Accept accept)
{
    Diagnostics errors;
    const auto text = read_policy_file(path, errors);
    if (!text)
        return ParseResult{.policy = std::nullopt, .errors = std::move(errors)};
    return parse_as(*text, path, ctx, accept);
}

} // namespace

ParseResult parse_policy(std::string_view text, const std::string& file, const Context& ctx)
{
    return parse_as(text, file, ctx, Accept::Policy);
}

ParseResult parse_overlay(std::string_view text, const std::string& file, const Context& ctx)
{
    return parse_as(text, file, ctx, Accept::Overlay);
}

ParseResult parse_document(std::string_view text, const std::string& file, const Context& ctx)
{
    return parse_as(text, file, ctx, Accept::Either);
}

std::optional<std::string> read_policy_file(const std::string& path, Diagnostics& errors)
{
    auto fail = [&](std::string msg) -> std::optional<std::string> {
        errors.push_back({.file = path, .line = 0, .column = 0, .message = std::move(msg)});
        return std::nullopt;
    };
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0)
        return fail(std::string("cannot read the policy: ") + std::strerror(errno) +
                    "; expected a path to a policy .yaml file");
    if (S_ISDIR(st.st_mode))
        return fail("is a directory; expected a policy file (for example " + path +
                    "/coding-agent.yaml)");
    if (!S_ISREG(st.st_mode))
        return fail("is not a regular file; expected a policy .yaml file");
    if (static_cast<std::uint64_t>(st.st_size) > kMaxPolicyBytes)
        return fail("the file is " + std::to_string(st.st_size) + " bytes; expected at most " +
                    std::to_string(kMaxPolicyBytes) + " (8 MiB) for a policy");
    std::ifstream in(path, std::ios::binary);
    if (!in)
        return fail(std::string("cannot open the policy: ") + std::strerror(errno));
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (text.size() > kMaxPolicyBytes)
        return fail("the file is larger than 8 MiB; expected a policy");
    return text;
}

ParseResult load_policy_file(const std::string& path, const Context& ctx)
{
    return load_as(path, ctx, Accept::Policy);
}

ParseResult load_overlay_file(const std::string& path, const Context& ctx)
{
    return load_as(path, ctx, Accept::Overlay);
}

ParseResult load_document_file(const std::string& path, const Context& ctx)
{
    return load_as(path, ctx, Accept::Either);
}

} // namespace cordon::policy
