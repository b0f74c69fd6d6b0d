// SPDX-License-Identifier: Apache-2.0
// The grammar of a grant's target (`cordon grant --exec|--read|--write PATH` and
// `--connect CIDR|HOST[:PORTS][/tcp|udp]`, docs/api.md): text -> a typed target, or one message
// naming what is wrong and what is expected. The grammar itself is pure (fuzzed in
// tests/fuzz/grant_fuzzer.cpp); what needs the host (symbolic links on a path, DNS for a host
// name) is a separate step, so a caller can run it where waiting is allowed.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "policy/compiler.h"
#include "policy/model.h"

namespace cordon::policy {

enum class GrantKind : std::uint8_t { Exec, Read, Write, Connect };

/// "exec", "read", "write", "connect": in records, requests and events.
const char* grant_kind_name(GrantKind k);
/// The kind of a name grant_kind_name() gives; none for anything else.
std::optional<GrantKind> grant_kind_from_name(std::string_view name);

/// A grant's target as rules name it.
struct GrantTarget {
    GrantKind kind = GrantKind::Read;
    std::string text; ///< as the caller gave it (messages quote it)
    /// exec/read/write: absolute and lexically normal ("." and ".." gone, one '/' between
    /// names), at most CORDON_PATH_MAX bytes; ends with '/' for "everything below".
    std::string path;
    /// connect: the address given, or (when host is set) the host's addresses once resolved.
    std::vector<Cidr> cidrs;
    std::string host;             ///< connect: a host name still to resolve; empty for an address
    std::vector<PortRange> ports; ///< connect: merged; empty = every port
    std::uint8_t protocols = kAnyProtocol;
};

/// A target, or why there is none ("... ; expected ...").
struct GrantParse {
    std::optional<GrantTarget> target;
    std::string error; ///< set only when target is not
};

/// The grammar, pure: no files, no DNS.
GrantParse parse_grant_target(GrantKind kind, std::string_view text);

/// A path target's symbolic links: rules match the path the kernel resolves, so a grant must
/// name a resolved path. Returns the message refusing a path that resolves elsewhere (or cannot
/// be resolved), empty when it is its own resolution.
std::string check_grant_path(const GrantTarget& t);

/// A connect target's host name, resolved into cidrs with `resolver`. Returns the message when
/// it does not resolve, empty otherwise (and for a target without a host name).
std::string resolve_grant_host(GrantTarget& t, Resolver& resolver);

/// parse_grant_target(), then check_grant_path() or resolve_grant_host(): a target ready to
/// compile, or the first reason it is not.
GrantParse prepare_grant_target(GrantKind kind, std::string_view text, Resolver& resolver);

} // namespace cordon::policy
