// SPDX-License-Identifier: Apache-2.0
// The validated in-memory form of an AgentPolicy (docs/policy.md). Produced by the parser with
// variables expanded; consumed by the compiler and by `cordon policy show`. No libbpf here.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace cordon::policy {

/// 1-based position in the policy file.
struct SourcePos {
    int line = 0;
    int column = 0;
    bool operator==(const SourcePos&) const = default;
};

enum class Action : std::uint8_t { Allow = 0, Deny = 1, Audit = 2, Kill = 3, Freeze = 4 };
enum class Mode : std::uint8_t { Enforce = 0, Audit = 1 };
/// What a policy reports beyond its decisions: nothing more, every exec (process lineage), or
/// every access allowed too (execs included).
enum class Trace : std::uint8_t { Decisions = 0, All = 1, Exec = 2 };

/// Bits of PathRule::access.
enum Access : std::uint8_t { kRead = 1, kWrite = 2 };
/// Bits of NetRule::protocols.
enum Protocol : std::uint8_t { kTcp = 1, kUdp = 2, kAnyProtocol = kTcp | kUdp };

/// What one rule id stands for, so an event can say `file:line`.
struct RuleSource {
    std::string where; ///< "exec.default", "files.rules[3]", ...
    SourcePos pos;
};

struct PathRule {
    std::uint32_t id = 0;
    SourcePos pos;         ///< position of the rule's `path` value
    std::string written;   ///< as written, before variables were expanded
    std::string path;      ///< absolute, normalized, variables expanded; ends with '/' if dir
    bool dir = false;      ///< trailing '/': the rule covers everything below
    Action action = Action::Deny;
    std::uint8_t access = kRead | kWrite; ///< files rules only
    std::optional<std::string> tier;
    SourcePos tier_pos;
    std::uint8_t tier_index = 0;
};

struct PortRange {
    std::uint16_t lo = 0;
    std::uint16_t hi = 65535;
    bool operator==(const PortRange&) const = default;
};

struct Cidr {
    int family = 4;                      ///< 4 or 6
    std::array<std::uint8_t, 16> addr{}; ///< network address, zero beyond the prefix
    int prefix = 0;
    bool operator==(const Cidr&) const = default;
};

struct NetRule {
    std::uint32_t id = 0;
    SourcePos pos;
    std::optional<Cidr> cidr;       ///< a cidr rule, or
    std::string host;               ///< a host rule, resolved by the controller
    std::vector<Cidr> resolved;     ///< host's addresses (as /32 or /128), filled by resolve()
    std::vector<PortRange> ports;   ///< sorted, merged; empty = every port
    std::uint8_t protocols = kAnyProtocol;
    Action action = Action::Deny;
    std::optional<std::string> tier;
    SourcePos tier_pos;
    std::uint8_t tier_index = 0;
};

template <typename Rule> struct RuleClass {
    Action default_action = Action::Deny;
    std::uint32_t default_rule_id = 0;
    SourcePos default_pos;
    std::vector<Rule> rules;
};

/// What entering a tier does (a tier's on_enter); values are enum cordon_tier_enter's.
enum class TierEnter : std::uint8_t { Report = 0, Freeze = 1, Kill = 2 };

struct Tier {
    std::string name;
    std::uint32_t min_score = 0;
    SourcePos pos;
    TierEnter on_enter = TierEnter::Report;
};

/// trust.penalties.burst: `denials` denials within `window_ms` cost `penalty` once per window.
struct Burst {
    std::uint32_t denials = 0;   ///< 1..65535
    std::uint32_t window_ms = 0; ///< 1 s .. 1 h
    std::uint32_t penalty = 0;   ///< 0..1000
    SourcePos pos;
};

struct Trust {
    bool scoring = false; ///< false when the policy has no trust section
    std::uint32_t initial = 1000;
    std::vector<Tier> tiers{Tier{.name = "default", .min_score = 0, .pos = {}}};
    std::uint32_t penalty_deny = 0;
    std::uint32_t penalty_kill = 0;
    std::optional<Burst> burst; ///< none: no burst signal
    std::uint32_t recovery_per_minute = 0;
};

/// Side doors that the seccomp layer closes in every process of an agent (docs/policy.md,
/// "hardening"). A policy may reopen the relaxable ones by name in spec.hardening.allow.
/// The order is the kernel's too (cordon_policy.open_doors, enum cordon_door in abi.h).
enum class SideDoor : std::uint8_t {
    Namespaces,  ///< creating or entering namespaces (unshare, clone flags, setns)
    Mount,       ///< the mount API
    Bpf,         ///< bpf()
    Perf,        ///< perf_event_open()
    FileHandles, ///< open_by_handle_at()
    ForeignAbi,  ///< the ia32 and x32 system-call tables
    IoUring,     ///< io_uring (compat backend: its opens pass no hook cordon has there)
    FdSharing,   ///< pidfd_getfd, clone(CLONE_FILES) without CLONE_THREAD (compat backend)
    Modules,     ///< module and kexec loading: never relaxable
    kCount,
};

static_assert(static_cast<unsigned>(SideDoor::Perf) == 3, "CORDON_DOOR_PERF is bit 3");

struct SideDoorInfo {
    SideDoor door;
    std::string_view name;     ///< the word in spec.hardening.allow
    std::string_view syscalls; ///< what is refused, for `policy show` and docs
    bool relaxable;
    bool compat_only;          ///< refused only when the compat backend enforces
};
/// Every side door, in SideDoor order.
std::span<const SideDoorInfo> side_doors();

/// A capability the launcher removes from every agent (all five sets, bounding included), so
/// that an agent run as root cannot use it. Names as capabilities(7) spells them.
struct DroppedCapability {
    int cap;
    std::string_view name;
    std::string_view why;
    bool kept_for_raw_sockets; ///< kept when network.raw_sockets allows raw sockets
};
/// Every capability dropped at launch (docs/enforcement.md).
std::span<const DroppedCapability> dropped_capabilities();

struct Hardening {
    bool no_new_privs = true;  ///< setuid/file capabilities do not raise privileges in the agent
    std::uint32_t reopened = 0; ///< bits (1 << SideDoor) the policy allows
    SourcePos pos;
    bool allows(SideDoor d) const { return reopened & (1u << static_cast<unsigned>(d)); }
};

/// The values ${HOME}, ${WORKSPACE} and ${USER} take in one run.
struct Context {
    std::optional<std::string> home;
    std::optional<std::string> workspace;
    std::optional<std::string> user;
};

struct Policy {
    /// A TaskOverlay (docs/policy.md, "Task overlays"): only exec, files and network rules, no
    /// defaults, no inbound, no trust; what its rules do not name, the agent's policy decides.
    bool overlay = false;
    std::string file;
    std::string api_version;
    std::string name;
    std::string description;
    Mode mode = Mode::Enforce;
    Trace trace = Trace::Decisions;
    RuleClass<PathRule> exec;
    RuleClass<PathRule> files;
    RuleClass<NetRule> network;
    /// Where an agent may listen (TCP) or bind (UDP): local addresses and ports. Without a
    /// network.inbound section: loopback only (implied rules, shown by `policy show`).
    RuleClass<NetRule> inbound;
    bool inbound_implied = true;
    /// Raw sockets, ICMP echo ("ping") sockets and packet sockets, which bypass address rules.
    Action raw_sockets = Action::Deny;
    /// Abstract-namespace Unix sockets, which have no path for files rules to name.
    Action unix_abstract = Action::Deny;
    /// network.dns.unknown: a query for a name no host rule names is forwarded (true) or
    /// refused (false, the default) by the DNS gateway.
    bool dns_pass = false;
    /// network.dns.grace: seconds an answer's addresses stay allowed after its TTL.
    std::uint16_t dns_grace_s = 5;
    Hardening hardening;
    /// spec.tasks.isolation: open lets a process reach into one of another task of the same
    /// agent (ptrace, process_vm_readv, /proc/PID/mem, pidfd_getfd); strict (the default) not.
    bool tasks_open = false;
    Trust trust;
    std::vector<RuleSource> rules; ///< index = rule id; entry 0 is unused (id 0 = none)
};

/// Whether the policy lets the agent create raw, ICMP echo and packet sockets (allow or audit).
bool raw_sockets_allowed(const Policy& p);
/// The capabilities of dropped_capabilities() that this policy's agents lose (bit = CAP_*
/// number): dropped at launch and refused again in the kernel (cordon_policy.refused_caps).
std::uint64_t refused_capabilities(const Policy& p);

std::string_view action_name(Action a);
std::string_view mode_name(Mode m);
std::string_view tier_enter_name(TierEnter e); ///< "report", "freeze" or "kill"
std::string access_names(std::uint8_t access);   ///< "read", "write" or "read, write"
std::string protocol_names(std::uint8_t protos); ///< "tcp", "udp" or "tcp, udp"
std::string cidr_text(const Cidr& c);            ///< "10.0.0.0/8", "2001:db8::/32"

} // namespace cordon::policy
