// SPDX-License-Identifier: Apache-2.0
// `cordon policy suggest`: paths folded into directories, variables written back, secrets kept
// out of allow rules, and the rendering of the policy and of its change against a base.
#include <algorithm>
#include <array>
#include <map>
#include <set>
#include <sstream>
#include <tuple>

#include <fmt/format.h>

#include "common/error.h"
#include "policy/learn.h"

namespace cordon::policy::learn {
namespace {

/// Paths no suggested allow rule may cover without a deny beside it, and accesses to them are
/// left for review: credentials and keys ("~/" is ${HOME}), and, for exec, the dynamic loader
/// (it runs any readable file without execve).
constexpr std::array kSecretFiles{
    "~/.ssh/", "~/.aws/", "~/.config/gcloud/", "~/.azure/", "~/.kube/", "~/.gnupg/",
    "~/.docker/config.json", "~/.netrc", "~/.git-credentials", "~/.config/gh/",
    "~/.cargo/credentials", "~/.cargo/credentials.toml", "~/.pypirc", "/etc/shadow",
    "/etc/gshadow", "/etc/sudoers", "/etc/sudoers.d/", "/etc/ssh/"};
constexpr std::array kSecretExecs{"/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
                                  "/usr/lib/aarch64-linux-gnu/ld-linux-aarch64.so.1",
                                  "/usr/lib64/ld-linux-x86-64.so.2"};

enum Class : std::uint8_t { kExecClass, kReadClass, kWriteClass, kClasses };

struct Node {
    std::map<std::string, Node> kids;
    std::uint64_t here = 0; ///< accesses to exactly this path
    bool fold = false;
    std::uint64_t total = 0, paths = 0;
};

struct PathOut {
    std::string path; ///< absolute; ends with '/' for a directory rule
    std::uint64_t count = 0, paths = 0;
};

struct NetKey {
    std::string host; ///< "" for an address rule
    int family = 4;
    std::array<std::uint8_t, 16> addr{};
    std::uint8_t protocol = kTcp;
    auto operator<=>(const NetKey&) const = default;
};

bool under(const std::string& path, const std::string& dir) // dir ends with '/'
{
    return path.size() >= dir.size() && path.compare(0, dir.size(), dir) == 0;
}

bool all_digits(const std::string& s)
{
    return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

std::string quoted(const std::string& s)
{
    bool plain = !s.empty() && s.find("${") == std::string::npos;
    for (char c : s)
        if (!(std::isalnum(static_cast<unsigned char>(c)) || std::strchr("/._+-@", c)))
            plain = false;
    if (plain)
        return s;
    std::string out = "\"";
    for (char c : s) {
        if (c == '"' || c == '\\')
            out += '\\';
        if (static_cast<unsigned char>(c) < 0x20)
            out += fmt::format("\\x{:02x}", static_cast<unsigned char>(c));
        else
            out += c;
    }
    return out + "\"";
}

/// For a YAML comment: one line, no control characters.
std::string sanitized(const std::string& s)
{
    std::string out;
    for (char c : s)
        out += static_cast<unsigned char>(c) < 0x20 ? '?' : c;
    return out;
}

std::string plural(std::uint64_t n, const char* one, const char* many)
{
    return fmt::format("{} {}", n, n == 1 ? one : many);
}

} // namespace

namespace {

/// A secret of the list with "~/" made `home` (which ends with '/'); "" when it names a home
/// and there is none.
std::string expand_secret(const char* raw, const std::string& home)
{
    std::string s = raw;
    if (s.rfind("~/", 0) == 0)
        return home.empty() ? std::string() : home + s.substr(2);
    return s;
}

} // namespace

std::string known_secret(Kind kind, const std::string& path, const std::string& home_dir)
{
    const std::string home = home_dir.empty() || home_dir.back() == '/' ? home_dir : home_dir + "/";
    auto check = [&](const char* raw) -> std::string {
        const std::string s = expand_secret(raw, home);
        if (!s.empty() && (s.back() == '/' ? under(path + "/", s) : path == s))
            return s;
        // A home's secrets are secrets in every home (another user's, root's, or the agent's
        // when --user was not given): "~/.ssh/" matches any ".../.ssh/...".
        if (raw[0] == '~') {
            const std::string rel = std::string(raw).substr(1); // "/.ssh/", "/.netrc"
            if (rel.back() == '/') {
                if (const auto at = (path + "/").find(rel); at != std::string::npos)
                    return path.substr(0, at + rel.size());
            } else if (path.size() > rel.size() &&
                       path.compare(path.size() - rel.size(), rel.size(), rel) == 0) {
                return path;
            }
        }
        return {};
    };
    if (kind == Kind::Exec) {
        for (const char* raw : kSecretExecs)
            if (auto m = check(raw); !m.empty())
                return m;
    } else if (kind == Kind::File) {
        for (const char* raw : kSecretFiles)
            if (auto m = check(raw); !m.empty())
                return m;
    }
    return {};
}

struct Suggester::Impl {
    SuggestOptions o;
    std::string home, ws; ///< with a trailing '/', or ""
    std::array<Node, kClasses> trees;
    std::map<NetKey, std::map<std::uint16_t, std::uint64_t>> net;
    std::map<std::string, std::uint64_t> review;      ///< text -> accesses
    std::map<std::uint32_t, std::uint64_t> base_hits; ///< base rule id -> accesses it allowed
    std::uint64_t total = 0, covered = 0, skipped = 0;
    std::map<std::string, std::uint64_t> skipped_by;

    explicit Impl(SuggestOptions opts) : o(std::move(opts))
    {
        if (o.ctx.home && !o.ctx.home->empty())
            home = *o.ctx.home + (o.ctx.home->back() == '/' ? "" : "/");
        if (o.ctx.workspace && !o.ctx.workspace->empty())
            ws = *o.ctx.workspace + (o.ctx.workspace->back() == '/' ? "" : "/");
        if (o.fold == 0)
            o.fold = 1;
    }

    std::string expand(const char* secret) const { return expand_secret(secret, home); }

    /// The known secret that `path` is, or lies under ("" none).
    std::string secret_of(Class cls, const std::string& path) const
    {
        return known_secret(cls == kExecClass ? Kind::Exec : Kind::File, path, home);
    }

    /// Written back with ${WORKSPACE} and ${HOME} for their values.
    std::string symbolic(const std::string& path) const
    {
        // The directory itself stays an exact rule: "${HOME}" is the directory, "${HOME}/"
        // everything in it.
        if (!ws.empty() && path + "/" == ws)
            return "${WORKSPACE}";
        if (!ws.empty() && under(path, ws))
            return "${WORKSPACE}/" + path.substr(ws.size());
        if (!home.empty() && path + "/" == home)
            return "${HOME}";
        if (!home.empty() && under(path, home))
            return "${HOME}/" + path.substr(home.size());
        return path;
    }

    void count_path(Class cls, const std::string& path, std::uint64_t n)
    {
        Node* node = &trees[cls];
        std::size_t i = 1;
        while (i <= path.size()) {
            const auto j = path.find('/', i);
            const auto part = path.substr(i, j == std::string::npos ? std::string::npos : j - i);
            if (!part.empty())
                node = &node->kids[part];
            if (j == std::string::npos)
                break;
            i = j + 1;
        }
        node->here += n;
    }

    /// Whether a directory may become one rule, and whether it must.
    bool foldable(const std::string& dir) const // dir ends with '/'
    {
        // Never the whole tree, and never ${HOME} or a directory above it: one access would
        // open every secret in it.
        if (dir == "/" || (!home.empty() && under(home, dir)))
            return false;
        // Nor any home: /root/, /home/, /home/NAME/ (secrets in them are not listed one by one).
        if (dir == "/root/" || dir == "/home/")
            return false;
        return !(under(dir, "/home/") && dir.find('/', 6) == dir.size() - 1);
    }
    bool forced(const std::string& dir, const Node& n) const
    {
        // Names that change from run to run: the workspace's and /tmp's files, process ids,
        // terminals.
        if ((!ws.empty() && dir == ws) || dir == "/tmp/" || dir == "/dev/pts/")
            return true;
        return dir == "/proc/" &&
               std::any_of(n.kids.begin(), n.kids.end(), [](const auto& k) { return all_digits(k.first); });
    }

    void mark(Node& n, const std::string& dir)
    {
        n.total = n.here;
        n.paths = n.here ? 1 : 0;
        for (auto& [name, kid] : n.kids) {
            mark(kid, dir + name + "/");
            n.total += kid.total;
            n.paths += kid.paths;
        }
        const std::size_t entries = n.kids.size();
        n.fold = !n.kids.empty() && foldable(dir) && (forced(dir, n) || entries >= o.fold);
    }

    void emit(const Node& n, const std::string& path, std::vector<PathOut>& out) const
    {
        if (n.fold) {
            out.push_back({path + "/", n.total, n.paths});
            return;
        }
        if (n.here)
            out.push_back({path.empty() ? "/" : path, n.here, 1});
        for (const auto& [name, kid] : n.kids)
            emit(kid, path + "/" + name, out);
    }

    std::array<std::vector<PathOut>, kClasses> fold_all()
    {
        std::array<std::vector<PathOut>, kClasses> out;
        for (int c = 0; c < kClasses; ++c) {
            mark(trees[c], "/");
            emit(trees[c], "", out[c]);
        }
        return out;
    }
};

Suggester::Suggester(SuggestOptions o) : impl_(std::make_unique<Impl>(std::move(o))) {}
Suggester::~Suggester() = default;

std::uint64_t Suggester::accesses() const
{
    return impl_->total;
}

void Suggester::skip(std::string_view why)
{
    ++impl_->skipped;
    ++impl_->skipped_by[std::string(why)];
}

namespace {

/// The base rule that refused an access, when it is a rule that names a path or an address
/// (a deliberate protection), not a class default or a rule over the whole tree.
const RuleSource* named_refusal(const Candidate& base, const Decision& d)
{
    if (lets_through(d) || d.rule_id == 0 || d.rule_id >= base.policy.rules.size())
        return nullptr;
    for (const auto* rc : {&base.policy.exec, &base.policy.files})
        for (const auto& r : rc->rules)
            if (r.id == d.rule_id && r.path == "/")
                return nullptr;
    return &base.policy.rules[d.rule_id];
}

} // namespace

void Suggester::add(const Access& a, const std::string& host)
{
    Impl& m = *impl_;
    if (a.kind == Kind::Other) {
        skip(a.hook + " (no rule kind for it here)");
        return;
    }
    ++m.total;
    // Each access bit of a file access is decided, and suggested, on its own; the access is
    // covered by the base when every bit is.
    if (a.kind == Kind::File && a.access == (kRead | kWrite)) {
        bool all = true;
        for (std::uint8_t bit : {kRead, kWrite}) {
            Access one = a;
            one.access = bit;
            all = add_bit(one, host) && all;
        }
        m.covered += all;
        return;
    }
    m.covered += add_bit(a, host);
}

bool Suggester::add_bit(const Access& a, const std::string& host)
{
    Impl& m = *impl_;
    if (m.o.base) {
        const Decision d = decide(*m.o.base, a, host);
        if (lets_through(d)) {
            ++m.base_hits[d.rule_id];
            return true;
        }
        if (const RuleSource* r = named_refusal(*m.o.base, d)) {
            ++m.review[fmt::format("{}: {} by {} line {}; not allowed", describe(a),
                                   action_name(d.action), m.o.base_file, r->pos.line)];
            return false;
        }
    }
    if (a.kind == Kind::Net) {
        NetKey k{host, a.dest.family, host.empty() ? a.dest.addr : std::array<std::uint8_t, 16>{},
                 a.protocol};
        ++m.net[k][a.port];
        return false;
    }
    const Class cls = a.kind == Kind::Exec ? kExecClass : (a.access & kWrite) ? kWriteClass : kReadClass;
    // A name with "${" in it would be expanded as a variable: it cannot be written as a rule.
    if (a.path.find("${") != std::string::npos) {
        ++m.review[fmt::format("{}: the name holds \"${{\", which a policy expands; not allowed",
                               describe(a))];
        return false;
    }
    // A rule for "/" covers the whole tree: the root directory itself is never suggested.
    if (a.path == "/") {
        ++m.review[fmt::format("{}: a rule for / would cover every file; not allowed", describe(a))];
        return false;
    }
    if (const auto s = m.secret_of(cls, a.path); !s.empty()) {
        ++m.review[fmt::format("{}: a known secret ({}); not allowed", describe(a), m.symbolic(s))];
        return false;
    }
    m.count_path(cls, a.path, 1);
    return false;
}

} // namespace cordon::policy::learn

// --- rendering ------------------------------------------------------------------------------

namespace cordon::policy::learn {
namespace {

struct RuleLine {
    std::string yaml;    ///< the flow mapping, "{path: /usr/bin/, action: allow}"
    std::string comment; ///< what it covers
};
struct Sections {
    std::vector<RuleLine> exec, files, net;
};

std::string ports_text(const std::map<std::uint16_t, std::uint64_t>& ports)
{
    std::string out;
    for (const auto& [p, n] : ports)
        out += (out.empty() ? "" : ", ") + std::to_string(p);
    return "[" + out + "]";
}

std::string covers(std::uint64_t count, std::uint64_t paths, const char* what)
{
    return paths > 1 ? fmt::format("{} of {} paths", plural(count, what, what), paths)
                     : plural(count, what, what);
}

} // namespace

namespace {

std::string indent_of(const std::string& line)
{
    return line.substr(0, line.find_first_not_of(' '));
}

std::vector<std::string> split_lines(const std::string& text)
{
    std::vector<std::string> lines;
    std::istringstream in(text);
    for (std::string l; std::getline(in, l);)
        lines.push_back(l);
    return lines;
}

} // namespace

Sections build_sections(Suggester::Impl& m)
{
    Sections s;
    auto folded = m.fold_all();
    for (const auto& p : folded[kExecClass])
        s.exec.push_back({fmt::format("{{path: {}, action: allow}}", quoted(m.symbolic(p.path))),
                          covers(p.count, p.paths, "execs")});
    // Reads and writes of the same path make one rule.
    std::map<std::string, std::array<std::uint64_t, 3>> files; // reads, writes, paths
    for (const auto& p : folded[kReadClass]) {
        auto& f = files[p.path];
        f[0] += p.count;
        f[2] = std::max(f[2], p.paths);
    }
    for (const auto& p : folded[kWriteClass]) {
        auto& f = files[p.path];
        f[1] += p.count;
        f[2] = std::max(f[2], p.paths);
    }
    for (const auto& [path, f] : files) {
        const char* access = f[0] && f[1] ? "[read, write]" : f[1] ? "[write]" : "[read]";
        std::string what = f[0] && f[1] ? fmt::format("{} reads, {} writes", f[0], f[1])
                           : f[1]       ? plural(f[1], "write", "writes")
                                        : plural(f[0], "read", "reads");
        if (f[2] > 1)
            what += fmt::format(" of {} paths", f[2]);
        s.files.push_back({fmt::format("{{path: {}, access: {}, action: allow}}",
                                       quoted(m.symbolic(path)), access),
                           what});
    }
    // A known secret under a directory allowed above stays denied, said so in the policy.
    auto guard = [&](Class cls, const auto& secrets, std::vector<PathOut>& allowed,
                     std::vector<RuleLine>& into) {
        for (const char* raw : secrets) {
            const auto secret = m.expand(raw);
            if (secret.empty())
                continue;
            const bool covered = std::any_of(allowed.begin(), allowed.end(), [&](const PathOut& p) {
                return p.path.back() == '/' && under(secret, p.path) && secret != p.path;
            });
            if (!covered)
                continue;
            if (m.o.base) {
                Access probe;
                probe.kind = cls == kExecClass ? Kind::Exec : Kind::File;
                probe.path = secret.back() == '/' ? secret + "x" : secret;
                probe.access = kRead;
                if (!lets_through(decide(*m.o.base, probe, "")))
                    continue; // the base denies it already
            }
            into.push_back({cls == kExecClass
                                ? fmt::format("{{path: {}, action: deny}}", quoted(m.symbolic(secret)))
                                : fmt::format("{{path: {}, access: [read, write], action: deny}}",
                                              quoted(m.symbolic(secret))),
                            "a known secret under a directory allowed here"});
        }
    };
    guard(kExecClass, kSecretExecs, folded[kExecClass], s.exec);
    std::vector<PathOut> file_dirs = folded[kReadClass];
    file_dirs.insert(file_dirs.end(), folded[kWriteClass].begin(), folded[kWriteClass].end());
    guard(kReadClass, kSecretFiles, file_dirs, s.files);

    for (const auto& [k, ports] : m.net) {
        std::uint64_t n = 0;
        for (const auto& [p, c] : ports)
            n += c;
        const std::string where = k.host.empty()
            ? fmt::format("cidr: {}", quoted(cidr_text(Cidr{k.family, k.addr, k.family == 4 ? 32 : 128})))
            : fmt::format("host: {}", quoted(k.host));
        const std::string port_part =
            ports.size() >= m.o.fold ? std::string() : fmt::format(", ports: {}", ports_text(ports));
        s.net.push_back({fmt::format("{{{}{}, protocol: {}, action: allow}}", where, port_part,
                                     k.protocol == kUdp ? "udp" : "tcp"),
                         fmt::format("{} to {}", plural(n, "access", "accesses"),
                                     plural(ports.size(), "port", "ports"))});
    }
    return s;
}

namespace {

void rules_block(std::string& out, const char* section, const char* default_action,
                 const std::vector<RuleLine>& rules)
{
    out += fmt::format("  {}:\n    default: {}\n", section, default_action);
    if (rules.empty()) {
        out += "    rules: []\n";
        return;
    }
    out += "    rules:\n";
    for (const auto& r : rules)
        out += fmt::format("      - {}  # {}\n", r.yaml, r.comment);
}

std::string skipped_text(const Suggester::Impl& m)
{
    if (m.skipped == 0)
        return "no record skipped";
    std::string out;
    for (const auto& [why, n] : m.skipped_by)
        out += fmt::format("{}{} {}", out.empty() ? "" : ", ", n, why);
    return fmt::format("{} skipped: {}", plural(m.skipped, "record", "records"), out);
}

/// The base policy's text with each section's new rules written in before its first rule, at
/// that rule's indentation; checked again by the caller. Throws Error when a section of the
/// base has no rule to write beside.
std::string merged_into_base(const Suggester::Impl& m, const Sections& s)
{
    const Candidate& base = *m.o.base;
    auto lines = split_lines(base.text);
    std::map<int, std::vector<std::string>, std::greater<>> inserts; // line -> new lines
    auto place = [&](const char* section, int first_line, const std::vector<RuleLine>& rules) {
        if (rules.empty())
            return;
        if (first_line <= 0 || first_line > static_cast<int>(lines.size()))
            throw Error(fmt::format("the base policy's {} section has no rule to write the new "
                                    "rules beside; add them by hand (see the change printed)",
                                    section));
        const auto& at = lines[first_line - 1];
        const auto ind = indent_of(at);
        if (at.compare(ind.size(), 2, "- ") != 0)
            throw Error(fmt::format("line {} of the base policy does not start a rule ('- '); "
                                    "add the new rules by hand",
                                    first_line));
        auto& v = inserts[first_line];
        for (const auto& r : rules)
            v.push_back(fmt::format("{}- {}  # added by cordon policy suggest: {}", ind, r.yaml,
                                    r.comment));
    };
    auto first = [](const auto& rc) { return rc.rules.empty() ? 0 : rc.rules.front().pos.line; };
    place("exec", first(base.policy.exec), s.exec);
    place("files", first(base.policy.files), s.files);
    place("network", first(base.policy.network), s.net);
    for (const auto& [line, add] : inserts)
        lines.insert(lines.begin() + (line - 1), add.begin(), add.end());
    std::string out;
    for (const auto& l : lines)
        out += l + "\n";
    return out;
}

} // namespace

std::string Suggester::policy_yaml() const
{
    Impl& m = *impl_;
    const Sections s = build_sections(m);
    if (m.o.base)
        return merged_into_base(m, s);
    std::string out = fmt::format(
        "# Suggested by `cordon policy suggest` from {} ({}).\n"
        "# It allows what the agent did and nothing else; a directory stands for its entries where\n"
        "# {} or more of them were used. Review every rule before you apply it.\n"
        "apiVersion: cordon.dev/v1\nkind: AgentPolicy\nmetadata:\n  name: {}\n"
        "  description: learned from what the agent did\nspec:\n  mode: enforce\n",
        plural(m.total, "access", "accesses"), skipped_text(m), m.o.fold, m.o.name);
    rules_block(out, "exec", "deny", s.exec);
    rules_block(out, "files", "deny", s.files);
    rules_block(out, "network", "deny", s.net);
    for (const auto& [what, n] : m.review)
        out += fmt::format("# left for review, no rule: {} ({})\n", sanitized(what),
                           plural(n, "access", "accesses"));
    return out;
}

} // namespace cordon::policy::learn

namespace cordon::policy::learn {

std::string Suggester::diff_text() const
{
    Impl& m = *impl_;
    const Sections s = build_sections(m);
    std::string out = fmt::format("# cordon policy suggest: {} ({})\n", plural(m.total, "access", "accesses"),
                                  skipped_text(m));
    if (m.o.base)
        out += fmt::format("# against {}: it allows {} of them\n", m.o.base_file, m.covered);
    auto add = [&](const char* section, const std::vector<RuleLine>& rules) {
        for (const auto& r : rules)
            out += fmt::format("+ {:<8} {}  # {}\n", section, r.yaml, r.comment);
    };
    add("exec", s.exec);
    add("files", s.files);
    add("network", s.net);
    if (m.o.base) {
        const auto lines = split_lines(m.o.base->text);
        const Policy& p = m.o.base->policy;
        auto unused = [&](const char* section, const auto& rc) {
            for (const auto& r : rc.rules) {
                if ((r.action != Action::Allow && r.action != Action::Audit) || m.base_hits.count(r.id))
                    continue;
                const int ln = r.pos.line;
                std::string text = ln > 0 && ln <= static_cast<int>(lines.size()) ? lines[ln - 1] : "";
                text.erase(0, text.find_first_not_of(" -"));
                out += fmt::format("- {:<8} line {}: {}  # never used\n", section, ln, text);
            }
        };
        unused("exec", p.exec);
        unused("files", p.files);
        unused("network", p.network);
        if (m.covered == 0 && m.total > 0)
            out += "# no recorded access was allowed by the base: with trace: decisions, allows are "
                   "not recorded, and every allow rule shows as never used (record with trace: all)\n";
    }
    for (const auto& [what, n] : m.review)
        out += fmt::format("! review   {}  ({})\n", what, plural(n, "access", "accesses"));
    return out;
}

} // namespace cordon::policy::learn
