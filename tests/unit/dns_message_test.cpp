// SPDX-License-Identifier: Apache-2.0
// The DNS gateway's message parser and what it takes from an answer: exact results on crafted
// messages, hostile ones included (the fuzzer covers the rest, tests/fuzz/dns_fuzzer.cpp).
#include <cstdint>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "dns/gateway.h"
#include "dns/message.h"
#include "policy/net.h"

namespace cordon::dns {
namespace {

using Bytes = std::vector<std::uint8_t>;

Bytes name(const std::string& n)
{
    Bytes out;
    std::size_t start = 0;
    while (start < n.size()) {
        const auto dot = std::min(n.find('.', start), n.size());
        out.push_back(static_cast<std::uint8_t>(dot - start));
        out.insert(out.end(), n.begin() + static_cast<long>(start), n.begin() + static_cast<long>(dot));
        start = dot + 1;
    }
    out.push_back(0);
    return out;
}

void u16(Bytes& b, unsigned v)
{
    b.push_back(static_cast<std::uint8_t>(v >> 8));
    b.push_back(static_cast<std::uint8_t>(v & 0xff));
}

void u32(Bytes& b, std::uint32_t v)
{
    u16(b, v >> 16);
    u16(b, v & 0xffff);
}

Bytes header(unsigned id, unsigned flags, unsigned qd, unsigned an)
{
    Bytes b;
    for (unsigned v : {id, flags, qd, an, 0u, 0u})
        u16(b, v);
    return b;
}

void question(Bytes& b, const std::string& n, unsigned type)
{
    const auto nb = name(n);
    b.insert(b.end(), nb.begin(), nb.end());
    u16(b, type);
    u16(b, kClassIn);
}

// A record: owner bytes (a name or a pointer), type, TTL, data.
void record(Bytes& b, const Bytes& owner, unsigned type, std::uint32_t ttl, const Bytes& data)
{
    b.insert(b.end(), owner.begin(), owner.end());
    u16(b, type);
    u16(b, kClassIn);
    u32(b, ttl);
    u16(b, static_cast<unsigned>(data.size()));
    b.insert(b.end(), data.begin(), data.end());
}

const Bytes kQname = {0xc0, 0x0c}; // a pointer to the question's name

std::optional<Message> parsed(const Bytes& b)
{
    std::string why;
    return parse(b, why);
}

std::string why_not(const Bytes& b)
{
    std::string why;
    EXPECT_FALSE(parse(b, why).has_value());
    return why;
}

TEST(DnsMessage, ParsesAQueryInLowerCase)
{
    auto b = header(0x1234, 0x0100, 1, 0);
    question(b, "GitHub.COM", kTypeAaaa);
    const auto m = parsed(b).value();
    EXPECT_EQ(m.id, 0x1234);
    EXPECT_FALSE(m.response());
    EXPECT_EQ(m.questions[0].name, "github.com");
    EXPECT_EQ(m.questions[0].type, kTypeAaaa);
}

// An answer for an allowed name that carries records of another name (a poisoning attempt, or
// a resolver's extras): only the question's name and its CNAME chain give addresses.
TEST(DnsMessage, AddressesComeOnlyFromTheQuestionsChain)
{
    auto b = header(7, 0x8180, 1, 4);
    question(b, "allowed.test", kTypeA);
    record(b, kQname, kTypeCname, 300, name("mid.test"));
    record(b, name("mid.test"), kTypeA, 60, {10, 0, 0, 1});
    record(b, name("evil.test"), kTypeA, 60, {6, 6, 6, 6});
    record(b, name("mid.test"), kTypeAaaa, 30, Bytes(16, 1));
    const auto m = parsed(b).value();
    const auto got = addresses_for(m, "allowed.test");
    ASSERT_EQ(got.size(), 2u);
    EXPECT_EQ(got[0].family, 4);
    EXPECT_EQ(got[0].addr[0], 10);
    EXPECT_EQ(got[0].ttl, 60u) << "the least TTL along the chain";
    EXPECT_EQ(got[1].family, 6);
    EXPECT_EQ(got[1].ttl, 30u);
    EXPECT_TRUE(addresses_for(m, "evil.test").size() == 1) << "a question for it would take it";
}

TEST(DnsMessage, ACnameLoopEndsTheChain)
{
    auto b = header(7, 0x8180, 1, 2);
    question(b, "a.test", kTypeA);
    record(b, kQname, kTypeCname, 60, name("b.test"));
    record(b, name("b.test"), kTypeCname, 60, name("a.test"));
    EXPECT_TRUE(addresses_for(parsed(b).value(), "a.test").empty());
}

TEST(DnsMessage, HostileMessagesAreRefusedWithAReason)
{
    auto fwd = header(1, 0x8180, 1, 1);
    question(fwd, "a.test", kTypeA);
    record(fwd, {0xc0, 0x40}, kTypeA, 1, {1, 2, 3, 4}); // points forwards, past itself
    EXPECT_EQ(why_not(fwd), "a compression pointer does not point backwards");

    auto self = header(1, 0x0100, 1, 0);
    self.insert(self.end(), {0xc0, 0x0c}); // the question's name points at itself
    u16(self, 1);
    u16(self, 1);
    EXPECT_EQ(why_not(self), "a compression pointer does not point backwards");

    auto longname = header(1, 0x0100, 1, 0);
    std::string n;
    for (int i = 0; i < 5; ++i)
        n += std::string(60, 'a') + ".";
    question(longname, n + "test", kTypeA);
    EXPECT_EQ(why_not(longname), "a name longer than 255 bytes");

    auto two = header(1, 0x0100, 2, 0);
    question(two, "a.test", kTypeA);
    question(two, "b.test", kTypeA);
    EXPECT_EQ(why_not(two), "a message with 2 questions (expected 1)");

    auto odd = header(1, 0x0100, 1, 0);
    question(odd, "a.test", kTypeA);
    odd[13] = '.'; // a label byte no host name has
    EXPECT_EQ(why_not(odd), "a name with a byte no host name has (0x2e)");

    auto shortrr = header(1, 0x8180, 1, 1);
    question(shortrr, "a.test", kTypeA);
    record(shortrr, kQname, kTypeA, 1, {1, 2, 3}); // an A record of 3 bytes
    EXPECT_EQ(why_not(shortrr), "an address record of the wrong length");

    auto cut = header(1, 0x8180, 1, 2); // says two answers, has one
    question(cut, "a.test", kTypeA);
    record(cut, kQname, kTypeA, 1, {1, 2, 3, 4});
    EXPECT_EQ(why_not(cut), "a name runs past the end of the message");
    EXPECT_EQ(why_not(Bytes{1, 2, 3}), "shorter than a DNS header");
}

TEST(DnsMessage, ATtlWithItsTopBitSetIsZero)
{
    auto b = header(1, 0x8180, 1, 1);
    question(b, "a.test", kTypeA);
    record(b, kQname, kTypeA, 0x80000001u, {1, 2, 3, 4});
    EXPECT_EQ(addresses_for(parsed(b).value(), "a.test").at(0).ttl, 0u);
}

TEST(DnsMessage, AReplyKeepsTheIdAndQuestionAndSaysItsCode)
{
    auto q = header(0xbeef, 0x0100, 1, 0);
    question(q, "other.test", 16);
    const auto r = reply_with(q, Rcode::Refused);
    const auto m = parsed(r).value();
    EXPECT_EQ(m.id, 0xbeef);
    EXPECT_TRUE(m.response());
    EXPECT_EQ(m.rcode(), Rcode::Refused);
    EXPECT_EQ(m.questions[0].name, "other.test");
    EXPECT_EQ(m.questions[0].type, 16);
    EXPECT_TRUE(m.answers.empty());
}

TEST(DnsMessage, HostRulesNameExactlyOrEverythingBelowAWildcard)
{
    using policy::host_matches;
    EXPECT_TRUE(host_matches("github.com", "github.com"));
    EXPECT_FALSE(host_matches("github.com", "api.github.com"));
    EXPECT_TRUE(host_matches("*.github.io", "x.github.io"));
    EXPECT_TRUE(host_matches("*.github.io", "a.b.github.io"));
    EXPECT_FALSE(host_matches("*.github.io", "github.io"));
    EXPECT_FALSE(host_matches("*.github.io", "evilgithub.io"));
    EXPECT_EQ(policy::host_key("GitHub.COM."), "github.com");
    EXPECT_TRUE(policy::valid_host_pattern("*.github.io"));
    EXPECT_FALSE(policy::valid_host_pattern("a.*.io"));
    EXPECT_FALSE(policy::valid_host_pattern("*"));
}

TEST(DnsGateway, UpstreamsAreAddressesWithAnOptionalPort)
{
    std::string why;
    EXPECT_EQ(parse_upstream("127.0.0.1", why).value().text, "127.0.0.1:53");
    EXPECT_EQ(parse_upstream("10.0.0.2:5353", why).value().text, "10.0.0.2:5353");
    EXPECT_EQ(parse_upstream("[::1]:5353", why).value().text, "[::1]:5353");
    EXPECT_EQ(parse_upstream("2001:db8::1", why).value().text, "[2001:db8::1]:53");
    EXPECT_FALSE(parse_upstream("resolver.example:53", why));
    EXPECT_EQ(why, "'resolver.example' is not an IPv4 or IPv6 address");
    EXPECT_FALSE(parse_upstream("127.0.0.1:99999", why));
    EXPECT_EQ(why, "invalid port '99999' in '127.0.0.1:99999'");
}

} // namespace
} // namespace cordon::dns
