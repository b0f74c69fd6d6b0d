// SPDX-License-Identifier: Apache-2.0
// One table of what cordon says about each hook (enum cordon_hook): its name, the `--hook` group
// that selects it, whether its record names an address, and its OCSF class and activity. The
// terminal line, the JSON record, the store and the CLI all read it, so a hook is described once,
// and a hook added to abi.h without a row here does not compile (hooks.cpp).
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

#include <cordon/abi.h>

namespace cordon::events {

/// The group `--hook exec|file|net` selects a hook by; None: only its own name selects it.
enum class HookGroup { None, Exec, File, Net };

/// OCSF 1.1 class and activity of a record (docs/forensics.md has the table).
struct OcsfClass {
    int class_uid;
    int activity_id;
    std::string_view class_name;
    std::string_view activity_name;
};

struct HookInfo {
    cordon_hook id;
    std::string_view name; ///< in text, JSON, the store and `--hook`
    HookGroup group;
    /// The record's object is an IP address, port and protocol (body.addr, port, protocol);
    /// unix_* and socket records name a path or a family instead.
    bool network;
    OcsfClass ocsf;
};

/// Every hook, indexed by its number.
std::span<const HookInfo> hooks();

/// The row of a hook number read from a record, or nullptr when the number is out of range (a
/// newer BPF object than this binary, or a damaged record).
const HookInfo* hook_info(std::uint16_t hook);

/// The hook called `name`, or nothing.
std::optional<cordon_hook> hook_from_name(std::string_view name);

/// The group's name as `--hook` takes it ("" for None).
std::string_view hook_group_name(HookGroup g);

} // namespace cordon::events
