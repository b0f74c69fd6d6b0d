// SPDX-License-Identifier: Apache-2.0
// The grant target grammar (policy/grant.h): what each kind of target becomes, and the message
// that refuses a bad one (its cause and what is expected).
#include <unistd.h>

#include <filesystem>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "policy/grant.h"
#include "policy/net.h"

namespace cordon::policy {
namespace {

struct PathCase {
    std::string name;
    GrantKind kind = GrantKind::Read;
    std::string text;
    std::string path; ///< expected; empty: refused
    std::string error_has = {};
};

const std::vector<PathCase> kPathCases = {
    {.name = "a file", .kind = GrantKind::Read, .text = "/etc/hosts", .path = "/etc/hosts"},
    {.name = "a program", .kind = GrantKind::Exec, .text = "/usr/bin/git", .path = "/usr/bin/git"},
    {.name = "a trailing slash covers everything below", .kind = GrantKind::Write,
     .text = "/data/", .path = "/data/"},
    {.name = "several trailing slashes are one", .text = "/data///", .path = "/data/"},
    {.name = "'..' goes up, lexically", .text = "/data/a/../b", .path = "/data/b"},
    {.name = "'..' above the root stays at the root", .text = "/../etc/hosts",
     .path = "/etc/hosts"},
    {.name = "'.' and doubled slashes go", .text = "/data/./x//y", .path = "/data/x/y"},
    {.name = "a trailing '..' names a file, not a directory", .text = "/data/a/..",
     .path = "/data"},
    {.name = "the root", .text = "/", .path = "/"},
    {.name = "the root by '..'", .text = "/..", .path = "/"},
    {.name = "a relative path is refused", .text = "relative/path", .path = "",
     .error_has = "is not absolute; expected a path such as /usr/bin/git"},
    {.name = "an empty path is refused", .text = "", .path = "", .error_has = "not absolute"},
    {.name = "a NUL byte is refused", .text = std::string("/tmp/a\0b", 8), .path = "",
     .error_has = "contains a NUL byte"},
    {.name = "a path longer than the kernel's key is refused",
     .text = "/" + std::string(CORDON_PATH_MAX, 'a'), .path = "",
     .error_has = "bytes; at most 250"},
    {.name = "the longest path the kernel's key holds",
     .text = "/" + std::string(CORDON_PATH_MAX - 1, 'a'),
     .path = "/" + std::string(CORDON_PATH_MAX - 1, 'a')},
};

TEST(GrantTarget, PathsAreAbsoluteNormalAndBounded)
{
    for (const auto& c : kPathCases) {
        const auto r = parse_grant_target(c.kind, c.text);
        if (c.path.empty()) {
            EXPECT_FALSE(r.target) << c.name;
            EXPECT_NE(r.error.find(c.error_has), std::string::npos) << c.name << ": " << r.error;
            continue;
        }
        ASSERT_TRUE(r.target) << c.name << ": " << r.error;
        EXPECT_EQ(r.target->path, c.path) << c.name;
        EXPECT_EQ(r.target->kind, c.kind) << c.name;
        EXPECT_EQ(r.target->text, c.text) << c.name;
        EXPECT_TRUE(r.error.empty()) << c.name;
    }
}

struct ConnectCase {
    std::string name;
    std::string text;
    bool ok = true;
    std::string addr = {};  ///< the one address (cidr_text), or
    std::string host = {};  ///< the host name still to resolve
    std::vector<PortRange> ports = {};
    std::uint8_t protocols = kAnyProtocol;
    std::string error_has = {};
};

const std::vector<ConnectCase> kConnectCases = {
    {.name = "an address", .text = "192.0.2.7", .addr = "192.0.2.7/32"},
    {.name = "a CIDR with a port and tcp", .text = "10.0.0.0/8:443/tcp", .addr = "10.0.0.0/8",
     .ports = {{443, 443}}, .protocols = kTcp},
    {.name = "udp", .text = "127.0.0.1:9/udp", .addr = "127.0.0.1/32", .ports = {{9, 9}},
     .protocols = kUdp},
    {.name = "a host name with a port", .text = "api.example.com:443", .host = "api.example.com",
     .ports = {{443, 443}}},
    {.name = "a host name alone", .text = "api.example.com", .host = "api.example.com"},
    {.name = "IPv6 in brackets with a range", .text = "[2001:db8::1]:8000-8999",
     .addr = "2001:db8::1/128", .ports = {{8000, 8999}}},
    {.name = "IPv6 without ports needs no brackets", .text = "2001:db8::1",
     .addr = "2001:db8::1/128"},
    {.name = "an IPv6 CIDR in brackets with a port", .text = "[2001:db8::]/32:443",
     .addr = "2001:db8::/32", .ports = {{443, 443}}},
    {.name = "a port list is merged", .text = "10.0.0.1:443,80,81-90", .addr = "10.0.0.1/32",
     .ports = {{80, 90}, {443, 443}}},
    {.name = "a port out of range", .text = "10.0.0.0/8:99999", .ok = false,
     .error_has = "has port '99999'; expected ports 1-65535"},
    {.name = "a trailing comma is an empty port", .text = "10.0.0.1:443,", .ok = false,
     .error_has = "has port ''"},
    {.name = "':' without ports", .text = "10.0.0.1:", .ok = false,
     .error_has = "has ':' and no ports"},
    {.name = "brackets with ':' and no ports", .text = "[2001:db8::1]:", .ok = false,
     .error_has = "has ':' and no ports"},
    {.name = "an unclosed bracket", .text = "[2001:db8::1:443", .ok = false,
     .error_has = "has no closing ']'"},
    {.name = "text after the bracket", .text = "[2001:db8::1]x", .ok = false,
     .error_has = "is not valid; expected CIDR|HOST"},
    {.name = "host bits set", .text = "10.0.0.1/8", .ok = false,
     .error_has = "is neither an address"},
    {.name = "neither address nor name", .text = "not a host", .ok = false,
     .error_has = "nor a host name; expected CIDR|HOST[:PORTS][/tcp|udp]"},
    {.name = "empty", .text = "", .ok = false, .error_has = "nor a host name"},
};

TEST(GrantTarget, ConnectTargetsNameAddressesPortsAndProtocols)
{
    for (const auto& c : kConnectCases) {
        const auto r = parse_grant_target(GrantKind::Connect, c.text);
        if (!c.ok) {
            EXPECT_FALSE(r.target) << c.name;
            EXPECT_NE(r.error.find(c.error_has), std::string::npos) << c.name << ": " << r.error;
            EXPECT_NE(r.error.find("'" + c.text + "'"), std::string::npos)
                << c.name << ": the message quotes the target: " << r.error;
            continue;
        }
        ASSERT_TRUE(r.target) << c.name << ": " << r.error;
        const auto& t = *r.target;
        EXPECT_EQ(t.host, c.host) << c.name;
        if (c.host.empty()) {
            ASSERT_EQ(t.cidrs.size(), 1u) << c.name;
            EXPECT_EQ(cidr_text(t.cidrs[0]), c.addr) << c.name;
        } else {
            EXPECT_TRUE(t.cidrs.empty()) << c.name << ": resolved later";
        }
        EXPECT_EQ(t.ports, c.ports) << c.name;
        EXPECT_EQ(t.protocols, c.protocols) << c.name;
        EXPECT_TRUE(t.path.empty()) << c.name;
    }
}

class OneHostResolver final : public Resolver {
public:
    std::vector<Cidr> resolve(const std::string& host, std::string& error) override
    {
        std::string why;
        if (host == "git.example.com")
            return {parse_cidr("192.0.2.10", why).value()};
        error = "Name or service not known";
        return {};
    }
};

TEST(GrantTarget, AHostNameResolvesOrNothingIsGranted)
{
    OneHostResolver resolver;
    const auto ok = prepare_grant_target(GrantKind::Connect, "git.example.com:443/tcp", resolver);
    ASSERT_TRUE(ok.target) << ok.error;
    ASSERT_EQ(ok.target->cidrs.size(), 1u);
    EXPECT_EQ(cidr_text(ok.target->cidrs[0]), "192.0.2.10/32");
    const auto bad = prepare_grant_target(GrantKind::Connect, "nowhere.invalid", resolver);
    EXPECT_FALSE(bad.target);
    EXPECT_EQ(bad.error, "grant host nowhere.invalid does not resolve (Name or service not "
                         "known); nothing was granted");
}

TEST(GrantTarget, APathThroughASymbolicLinkIsRefusedNotFollowed)
{
    namespace fs = std::filesystem;
    const fs::path dir = fs::temp_directory_path() / ("cordon-grant-" + std::to_string(::getpid()));
    fs::create_directories(dir / "real");
    fs::create_directory_symlink(dir / "real", dir / "alias");
    OneHostResolver resolver;
    const auto real = fs::canonical(dir / "real").string();
    const auto direct = prepare_grant_target(GrantKind::Read, real + "/", resolver);
    EXPECT_TRUE(direct.target) << direct.error;
    const auto missing = prepare_grant_target(GrantKind::Read, real + "/not-yet", resolver);
    EXPECT_TRUE(missing.target) << "a path that does not exist yet: " << missing.error;
    const auto alias = (fs::canonical(dir) / "alias" / "f").string();
    const auto linked = prepare_grant_target(GrantKind::Read, alias, resolver);
    EXPECT_FALSE(linked.target);
    EXPECT_NE(linked.error.find("grant path " + alias + " passes through a symbolic link (it "
                                "resolves to " + real + "/f)"),
              std::string::npos)
        << linked.error;
    fs::remove_all(dir);
}

TEST(GrantKinds, NamesGoBothWays)
{
    for (auto k : {GrantKind::Exec, GrantKind::Read, GrantKind::Write, GrantKind::Connect})
        EXPECT_EQ(grant_kind_from_name(grant_kind_name(k)), k) << grant_kind_name(k);
    EXPECT_FALSE(grant_kind_from_name("Exec"));
    EXPECT_FALSE(grant_kind_from_name(""));
}

} // namespace
} // namespace cordon::policy
