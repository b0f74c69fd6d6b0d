// SPDX-License-Identifier: Apache-2.0
// libFuzzer target for the grant target grammar (policy/grant.h), the text cordond takes from
// any client allowed on its socket. The first byte picks the kind, the rest is the target. Any
// input must give a target or a message, never both, never a crash; a target must be what the
// kernel can match (checked below) and must compile or be refused by the compiler with a
// reason. Seeded with tests/fuzz/grants.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "policy/compiler.h"
#include "policy/grant.h"
#include "policy/net.h"
#include "policy/pipeline.h"

namespace {

using namespace cordon::policy;

void check(bool ok)
{
    if (!ok)
        __builtin_trap();
}

// Normal: absolute, bounded, no NUL, no empty, "." or ".." component; parsing it again gives
// it back (so what the operator is shown is what is granted).
void check_path(const GrantTarget& t)
{
    const std::string& p = t.path;
    check(!p.empty() && p[0] == '/' && p.size() <= CORDON_PATH_MAX);
    check(p.find('\0') == std::string::npos && p.find("//") == std::string::npos);
    const std::string inner = p + (p.back() == '/' ? "" : "/");
    check(inner.find("/./") == std::string::npos && inner.find("/../") == std::string::npos);
    const auto again = parse_grant_target(t.kind, p);
    check(again.target && again.target->path == p);
}

void check_connect(const GrantTarget& t)
{
    check(t.path.empty());
    check(t.host.empty() ? t.cidrs.size() == 1 : t.cidrs.empty() && valid_host_name(t.host));
    check(t.protocols == kAnyProtocol || t.protocols == kTcp || t.protocols == kUdp);
    for (std::size_t i = 0; i < t.ports.size(); ++i) {
        check(t.ports[i].lo >= 1 && t.ports[i].lo <= t.ports[i].hi);
        if (i)
            check(t.ports[i - 1].hi + 1 < t.ports[i].lo); // sorted and merged
    }
}

// A one-rule grant set, as the controller builds one (control/tasks.cpp, grant_policy).
void check_compiles(const GrantTarget& t)
{
    Policy p;
    p.name = "grants";
    p.overlay = true;
    if (t.kind == GrantKind::Connect) {
        NetRule r{};
        r.id = CORDON_RULE_GRANT | 1;
        r.host = t.text;
        r.resolved = t.cidrs;
        if (!t.host.empty()) // what a resolver could return for it
            r.resolved = {Cidr{.family = 4, .addr = {192, 0, 2, 1}, .prefix = 32}};
        r.ports = t.ports;
        r.protocols = t.protocols;
        r.action = Action::Allow;
        p.network.rules.push_back(std::move(r));
    } else {
        PathRule r{};
        r.id = CORDON_RULE_GRANT | 1;
        r.path = t.path;
        r.written = t.text;
        r.dir = t.path.size() > 1 && t.path.back() == '/';
        r.action = Action::Allow;
        (t.kind == GrantKind::Exec ? p.exec : p.files).rules.push_back(std::move(r));
    }
    // Not always compiled: the compiler's own limits still apply (more than
    // CORDON_NET_SLOTS disjoint port ranges on one address is refused there,
    // and Controller::grant reports it), but never without a reason.
    const auto c = compile(p, kTrialPolicyId);
    check(c.compiled.has_value() || !c.errors.empty());
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
    if (size == 0)
        return 0;
    static constexpr GrantKind kKinds[] = {GrantKind::Exec, GrantKind::Read, GrantKind::Write,
                                           GrantKind::Connect};
    const GrantKind kind = kKinds[data[0] % 4];
    const std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);
    const auto r = parse_grant_target(kind, text);
    check(r.target.has_value() != !r.error.empty());
    if (!r.target)
        return 0;
    check(r.target->kind == kind && r.target->text == text);
    if (kind == GrantKind::Connect)
        check_connect(*r.target);
    else
        check_path(*r.target);
    check_compiles(*r.target);
    return 0;
}
