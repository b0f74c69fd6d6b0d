// SPDX-License-Identifier: Apache-2.0
#include "policy/grant.h"

#include <algorithm>
#include <array>
#include <filesystem>
#include <utility>

#include <cordon/abi.h>

#include "policy/net.h"

namespace cordon::policy {

namespace fs = std::filesystem;

namespace {

constexpr std::array kKinds{std::pair{GrantKind::Exec, "exec"}, std::pair{GrantKind::Read, "read"},
                            std::pair{GrantKind::Write, "write"},
                            std::pair{GrantKind::Connect, "connect"}};

constexpr const char* kConnectExpected =
    "expected CIDR|HOST[:PORTS][/tcp|udp], such as 10.0.0.0/8:443/tcp, api.example.com:443, "
    "[2001:db8::1]:8000-8999 or 192.0.2.7";

GrantParse fail(std::string why)
{
    return {.target = std::nullopt, .error = std::move(why)};
}

// An absolute path as rules name it, without looking at the filesystem: "." and ".." resolved
// lexically, a trailing '/' kept for "everything below".
GrantParse parse_path(GrantKind kind, const std::string& target)
{
    if (target.empty() || target[0] != '/')
        return fail("grant path '" + target + "' is not absolute; expected a path such as "
                    "/usr/bin/git or /data/ (a trailing '/' covers everything below)");
    // The kernel compares C strings: a NUL would end the path early, so the grant would not
    // name what the operator typed.
    if (target.find('\0') != std::string::npos)
        return fail("grant path '" + target.substr(0, target.find('\0')) +
                    "...' contains a NUL byte; expected a path such as /usr/bin/git");
    const bool dir = target.size() > 1 && target.back() == '/';
    std::string out = fs::path(target).lexically_normal().string();
    while (out.size() > 1 && out.back() == '/')
        out.pop_back();
    if (dir || (target == "/"))
        out += out == "/" ? "" : "/";
    if (out.size() > CORDON_PATH_MAX)
        return fail("grant path " + out + " is " + std::to_string(out.size()) +
                    " bytes; at most " + std::to_string(CORDON_PATH_MAX));
    GrantTarget t;
    t.kind = kind;
    t.text = target;
    t.path = std::move(out);
    return {.target = std::move(t), .error = {}};
}

// Takes a trailing /tcp or /udp off `t` (the last one given wins).
std::uint8_t take_protocol(std::string& t)
{
    std::uint8_t protocols = kAnyProtocol;
    for (auto [suffix, proto] : {std::pair{"/tcp", kTcp}, std::pair{"/udp", kUdp}})
        if (t.size() > 4 && t.ends_with(suffix)) {
            protocols = proto;
            t.resize(t.size() - 4);
        }
    return protocols;
}

// Splits ADDR[:PORTS] (an IPv6 address with ports in brackets: [2001:db8::1]:443, or
// [2001:db8::]/32:443) into the address and the port list text. Returns an error or empty.
std::string split_address(const std::string& target, const std::string& t, std::string& addr,
                          std::string& ports)
{
    addr = t;
    if (!t.empty() && t[0] == '[') {
        const auto close = t.find(']');
        if (close == std::string::npos)
            return "grant target '" + target + "' has no closing ']'; " + kConnectExpected;
        addr = t.substr(1, close - 1);
        std::string rest = t.substr(close + 1);
        if (rest.starts_with("/")) {
            const auto colon = rest.find(':');
            addr += rest.substr(0, colon);
            rest = colon == std::string::npos ? "" : rest.substr(colon);
        }
        if (!rest.empty() && rest[0] != ':')
            return "grant target '" + target + "' is not valid; " + kConnectExpected;
        ports = rest.empty() ? "" : rest.substr(1);
        if (!rest.empty() && ports.empty())
            return "grant target '" + target + "' has ':' and no ports; " + kConnectExpected;
    } else if (std::count(t.begin(), t.end(), ':') == 1) {
        const auto colon = t.find(':');
        addr = t.substr(0, colon);
        ports = t.substr(colon + 1);
        if (ports.empty())
            return "grant target '" + target + "' has ':' and no ports; " + kConnectExpected;
    }
    return {};
}

// "443", "8000-8999" or a comma-separated list of those, merged. Returns an error or empty.
std::string parse_ports(const std::string& target, const std::string& ports,
                        std::vector<PortRange>& out)
{
    std::vector<PortRange> ranges;
    for (std::size_t at = 0; at <= ports.size();) {
        const auto comma = ports.find(',', at);
        const auto item =
            ports.substr(at, comma == std::string::npos ? std::string::npos : comma - at);
        const auto r = parse_port_range(item);
        if (!r)
            return "grant target '" + target + "' has port '" + item +
                   "'; expected ports 1-65535 such as 443, 8000-8999 or 80,443";
        ranges.push_back(*r);
        if (comma == std::string::npos)
            break;
        at = comma + 1;
    }
    out = merge_port_ranges(ranges);
    return {};
}

// CIDR|HOST[:PORTS][/tcp|udp]; a host name is kept for resolve_grant_host().
GrantParse parse_connect(const std::string& target)
{
    GrantTarget g;
    g.kind = GrantKind::Connect;
    g.text = target;
    std::string t = target;
    g.protocols = take_protocol(t);
    std::string addr, ports;
    if (auto err = split_address(target, t, addr, ports); !err.empty())
        return fail(std::move(err));
    if (!ports.empty())
        if (auto err = parse_ports(target, ports, g.ports); !err.empty())
            return fail(std::move(err));
    std::string why;
    if (auto c = parse_cidr(addr, why)) {
        g.cidrs = {*c};
        return {.target = std::move(g), .error = {}};
    }
    if (!valid_host_name(addr))
        return fail("grant target '" + target + "': '" + addr + "' is neither an address (" +
                    why + ") nor a host name; " + kConnectExpected);
    g.host = addr;
    return {.target = std::move(g), .error = {}};
}

} // namespace

const char* grant_kind_name(GrantKind k)
{
    for (const auto& [kind, name] : kKinds)
        if (kind == k)
            return name;
    return "?";
}

std::optional<GrantKind> grant_kind_from_name(std::string_view name)
{
    for (const auto& [kind, text] : kKinds)
        if (name == text)
            return kind;
    return std::nullopt;
}

GrantParse parse_grant_target(GrantKind kind, std::string_view text)
{
    const std::string target(text);
    return kind == GrantKind::Connect ? parse_connect(target) : parse_path(kind, target);
}

std::string check_grant_path(const GrantTarget& t)
{
    if (t.kind == GrantKind::Connect)
        return {};
    std::string bare = t.path;
    while (bare.size() > 1 && bare.back() == '/')
        bare.pop_back();
    // A symlink on the way is refused, not followed: one the agent made would turn the grant
    // into another path than the one the operator read (cordond resolves in its own mount
    // namespace, too).
    std::error_code ec;
    const fs::path resolved = fs::weakly_canonical(fs::path(bare), ec);
    if (ec)
        return "cannot resolve grant path " + t.text + ": " + ec.message();
    if (resolved.string() != bare)
        return "grant path " + t.text + " passes through a symbolic link (it resolves to " +
               resolved.string() + "); grant the resolved path itself, if that is what you " +
               "mean to allow";
    return {};
}

std::string resolve_grant_host(GrantTarget& t, Resolver& resolver)
{
    if (t.kind != GrantKind::Connect || t.host.empty())
        return {};
    std::string err;
    t.cidrs = resolver.resolve(t.host, err);
    if (t.cidrs.empty())
        return "grant host " + t.host + " does not resolve (" + err + "); nothing was granted";
    return {};
}

GrantParse prepare_grant_target(GrantKind kind, std::string_view text, Resolver& resolver)
{
    auto parsed = parse_grant_target(kind, text);
    if (!parsed.target)
        return parsed;
    auto err = kind == GrantKind::Connect ? resolve_grant_host(*parsed.target, resolver)
                                          : check_grant_path(*parsed.target);
    if (!err.empty())
        return fail(std::move(err));
    return parsed;
}

} // namespace cordon::policy
