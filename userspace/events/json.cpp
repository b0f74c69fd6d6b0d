// SPDX-License-Identifier: Apache-2.0
#include "events/json.h"

#include "events/format.h" // utf8_sequence

namespace cordon::events {

void json_string(std::string& out, std::string_view s)
{
    static constexpr char hex[] = "0123456789abcdef";
    const auto* p = reinterpret_cast<const unsigned char*>(s.data());
    const auto* end = p + s.size();
    // The common case, nothing to escape: three appends, no per-character work.
    const auto* scan = p;
    while (scan < end && *scan >= 0x20 && *scan != '"' && *scan != '\\' && *scan < 0x80)
        ++scan;
    if (scan == end) {
        out.reserve(out.size() + s.size() + 2);
        out.append(1, '"').append(s).append(1, '"');
        return;
    }
    out += '"';
    while (p < end) {
        const unsigned char c = *p;
        if (c >= 0x20 && c != '"' && c != '\\' && c < 0x80) {
            const auto* run = p;
            while (p < end && *p >= 0x20 && *p != '"' && *p != '\\' && *p < 0x80)
                ++p;
            out.append(reinterpret_cast<const char*>(run), static_cast<std::size_t>(p - run));
            continue;
        }
        if (c < 0x80) {
            out += '\\';
            switch (c) {
            case '"': out += '"'; break;
            case '\\': out += '\\'; break;
            case '\n': out += 'n'; break;
            case '\t': out += 't'; break;
            case '\r': out += 'r'; break;
            default:
                out += "u00";
                out += hex[c >> 4];
                out += hex[c & 15];
            }
            ++p;
            continue;
        }
        // A UTF-8 sequence is copied when it is well formed (shortest form, no surrogates);
        // any other byte becomes U+FFFD, so every line stays valid JSON whatever a path holds.
        const std::size_t len = utf8_sequence(p, end);
        if (len && c == 0xc2 && p[1] < 0xa0) {
            // U+0080..U+009F, the C1 controls (CSI among them): escaped, never passed on raw.
            out += "\\u00";
            out += hex[p[1] >> 4];
            out += hex[p[1] & 15];
            p += 2;
            continue;
        }
        if (len) {
            out.append(reinterpret_cast<const char*>(p), len);
            p += len;
        } else {
            out += "\\ufffd";
            ++p;
        }
    }
    out += '"';
}

} // namespace cordon::events
