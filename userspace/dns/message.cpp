// SPDX-License-Identifier: Apache-2.0
#include "dns/message.h"

#include <algorithm>
#include <cctype>
#include <cstring>

namespace cordon::dns {

namespace {

constexpr std::size_t kHeader = 12;
constexpr std::size_t kMaxName = 255; // wire bytes of a name, RFC 1035 3.1
constexpr int kMaxPointers = 64;      // more than any honest name needs (each goes backwards)
constexpr int kMaxChain = 16;         // CNAME links followed

class Reader {
public:
    explicit Reader(std::span<const std::uint8_t> w) : w_(w) {}

    bool u16(std::uint16_t& v)
    {
        if (pos_ + 2 > w_.size())
            return false;
        v = static_cast<std::uint16_t>(w_[pos_] << 8 | w_[pos_ + 1]);
        pos_ += 2;
        return true;
    }
    bool u32(std::uint32_t& v)
    {
        std::uint16_t hi = 0, lo = 0;
        if (!u16(hi) || !u16(lo))
            return false;
        v = static_cast<std::uint32_t>(hi) << 16 | lo;
        return true;
    }
    bool skip(std::size_t n)
    {
        if (n > w_.size() - pos_)
            return false;
        pos_ += n;
        return true;
    }
    std::size_t pos() const { return pos_; }
    std::span<const std::uint8_t> bytes(std::size_t n) const { return w_.subspan(pos_, n); }

    // A name at the current position (compressed or not), in presentation form, lower case.
    bool name(std::string& out, std::string& why)
    {
        out.clear();
        std::size_t at = pos_, wire = 0, resume = 0;
        bool jumped = false;
        for (int pointers = 0;;) {
            if (at >= w_.size())
                return fail(why, "a name runs past the end of the message");
            const std::uint8_t len = w_[at];
            if ((len & 0xc0) == 0xc0) {
                if (at + 1 >= w_.size())
                    return fail(why, "a compression pointer runs past the end");
                const std::size_t to = static_cast<std::size_t>(len & 0x3f) << 8 | w_[at + 1];
                // Backwards only: every jump lands before the label that made it, so no loop.
                if (to >= at || ++pointers > kMaxPointers)
                    return fail(why, "a compression pointer does not point backwards");
                if (!jumped)
                    resume = at + 2;
                jumped = true;
                at = to;
                continue;
            }
            if (len & 0xc0)
                return fail(why, "a label of an unknown kind (0x40 or 0x80)");
            wire += 1 + len;
            if (wire > kMaxName)
                return fail(why, "a name longer than 255 bytes");
            if (len == 0) {
                pos_ = jumped ? resume : at + 1;
                return true;
            }
            if (at + 1 + len > w_.size())
                return fail(why, "a label runs past the end of the message");
            if (!out.empty())
                out += '.';
            for (std::size_t i = 0; i < len; ++i) {
                const auto ch = static_cast<unsigned char>(w_[at + 1 + i]);
                if (!std::isalnum(ch) && ch != '-' && ch != '_')
                    return fail(why, "a name with a byte no host name has (0x" +
                                         hex(ch) + ")");
                out += static_cast<char>(std::tolower(ch));
            }
            at += 1 + len;
        }
    }

private:
    static bool fail(std::string& why, std::string what)
    {
        why = std::move(what);
        return false;
    }
    static std::string hex(unsigned char ch)
    {
        static const char* digits = "0123456789abcdef";
        return {digits[ch >> 4], digits[ch & 15]};
    }
    std::span<const std::uint8_t> w_;
    std::size_t pos_ = 0;
};

bool parse_record(Reader& r, Message& m, std::string& why)
{
    Record rec;
    std::uint16_t rdlen = 0;
    if (!r.name(rec.name, why))
        return false;
    if (!r.u16(rec.type) || !r.u16(rec.klass) || !r.u32(rec.ttl) || !r.u16(rdlen)) {
        why = "a record runs past the end of the message";
        return false;
    }
    const std::size_t start = r.pos();
    if (rdlen > r.bytes(SIZE_MAX).size()) {
        why = "a record's data runs past the end of the message";
        return false;
    }
    if (rec.ttl & 0x80000000u)
        rec.ttl = 0; // RFC 2181 8: a TTL with its top bit set is read as 0
    bool keep = rec.klass == kClassIn;
    if (rec.type == kTypeA || rec.type == kTypeAaaa) {
        const std::size_t n = rec.type == kTypeA ? 4 : 16;
        if (rdlen != n) {
            why = "an address record of the wrong length";
            return false;
        }
        std::memcpy(rec.addr.data(), r.bytes(n).data(), n);
    } else if (rec.type == kTypeCname) {
        if (!r.name(rec.target, why))
            return false;
        if (r.pos() - start != rdlen) {
            why = "a CNAME's name does not fill its record";
            return false;
        }
    } else {
        keep = false;
    }
    if (!r.skip(rdlen - (r.pos() - start))) {
        why = "a record's data runs past the end of the message";
        return false;
    }
    if (keep)
        m.answers.push_back(std::move(rec));
    return true;
}

} // namespace

std::optional<Message> parse(std::span<const std::uint8_t> wire, std::string& why)
{
    Reader r(wire);
    Message m;
    std::uint16_t qd = 0, an = 0, ns = 0, ar = 0;
    if (!r.u16(m.id) || !r.u16(m.flags) || !r.u16(qd) || !r.u16(an) || !r.u16(ns) || !r.u16(ar)) {
        why = "shorter than a DNS header";
        return std::nullopt;
    }
    if (qd != 1) {
        why = "a message with " + std::to_string(qd) + " questions (expected 1)";
        return std::nullopt;
    }
    Question q;
    if (!r.name(q.name, why))
        return std::nullopt;
    if (!r.u16(q.type) || !r.u16(q.klass)) {
        why = "the question runs past the end of the message";
        return std::nullopt;
    }
    m.questions.push_back(std::move(q));
    for (unsigned i = 0; i < an; ++i)
        if (!parse_record(r, m, why))
            return std::nullopt;
    (void)ns;
    (void)ar; // authority and additional sections: never read, so never trusted
    return m;
}

std::vector<std::uint8_t> reply_with(std::span<const std::uint8_t> query, Rcode rcode)
{
    // Header and question: the question ends at the first name end + 4 (the query parsed, so
    // its first name has no pointer and ends in bounds).
    std::size_t end = kHeader;
    while (end < query.size() && query[end] != 0 && (query[end] & 0xc0) == 0)
        end += 1 + query[end];
    if (end < query.size() && (query[end] & 0xc0) == 0xc0)
        end += 1; // a pointer ends the name in two bytes
    end = std::min(end + 1 + 4, query.size());
    std::vector<std::uint8_t> out(query.begin(), query.begin() + static_cast<std::ptrdiff_t>(end));
    if (out.size() < kHeader)
        out.resize(kHeader, 0);
    out[2] = static_cast<std::uint8_t>(0x80 | (out[2] & 0x79)); // QR, opcode kept, RD kept
    out[3] = static_cast<std::uint8_t>(0x80 | static_cast<std::uint8_t>(rcode)); // RA, rcode
    out[4] = 0;
    out[5] = end > kHeader ? 1 : 0;
    std::fill(out.begin() + 6, out.begin() + 12, 0); // no records
    return out;
}

std::vector<Address> addresses_for(const Message& m, std::string_view qname)
{
    std::vector<Address> out;
    std::string name(qname);
    std::uint32_t chain_ttl = 0xffffffff;
    for (int link = 0; link <= kMaxChain; ++link) {
        const Record* cname = nullptr;
        for (const auto& rec : m.answers) {
            if (rec.name != name)
                continue;
            if (rec.type == kTypeCname && !cname)
                cname = &rec;
            else if (rec.type == kTypeA || rec.type == kTypeAaaa)
                out.push_back({.family = rec.type == kTypeA ? 4 : 6, .addr = rec.addr,
                               .ttl = std::min(chain_ttl, rec.ttl)});
        }
        if (!cname || !out.empty())
            break;
        chain_ttl = std::min(chain_ttl, cname->ttl);
        name = cname->target;
    }
    return out;
}

void set_id(std::span<std::uint8_t> wire, std::uint16_t id)
{
    if (wire.size() >= 2) {
        wire[0] = static_cast<std::uint8_t>(id >> 8);
        wire[1] = static_cast<std::uint8_t>(id & 0xff);
    }
}

std::string type_name(std::uint16_t type)
{
    switch (type) {
    case kTypeA: return "A";
    case 2: return "NS";
    case kTypeCname: return "CNAME";
    case 6: return "SOA";
    case 12: return "PTR";
    case 15: return "MX";
    case 16: return "TXT";
    case kTypeAaaa: return "AAAA";
    case 33: return "SRV";
    case 64: return "SVCB";
    case 65: return "HTTPS";
    case 255: return "ANY";
    default: return "TYPE" + std::to_string(type);
    }
}

} // namespace cordon::dns
