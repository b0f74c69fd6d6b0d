// SPDX-License-Identifier: Apache-2.0
#include "policy/model.h"

#include <arpa/inet.h>

namespace cordon::policy {

std::string_view action_name(Action a)
{
    switch (a) {
    case Action::Allow: return "allow";
    case Action::Deny: return "deny";
    case Action::Audit: return "audit";
    case Action::Kill: return "kill";
    }
    return "?";
}

std::string_view mode_name(Mode m)
{
    return m == Mode::Audit ? "audit" : "enforce";
}

std::string access_names(std::uint8_t access)
{
    if (access == (kRead | kWrite))
        return "read, write";
    return access & kWrite ? "write" : "read";
}

std::string protocol_names(std::uint8_t protos)
{
    if (protos == kAnyProtocol)
        return "tcp, udp";
    return protos & kUdp ? "udp" : "tcp";
}

std::string cidr_text(const Cidr& c)
{
    char buf[INET6_ADDRSTRLEN] = {};
    ::inet_ntop(c.family == 4 ? AF_INET : AF_INET6, c.addr.data(), buf, sizeof(buf));
    return std::string(buf) + "/" + std::to_string(c.prefix);
}

} // namespace cordon::policy
