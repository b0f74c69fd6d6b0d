// SPDX-License-Identifier: Apache-2.0
// Names and properties of the backends (enum cordon_backend), in one place for every part of
// cordon that prints, parses or branches on one.
#pragma once

#include <optional>
#include <string_view>

#include <cordon/abi.h>

namespace cordon {

/// "lsm", "fmod_ret", "compat", or "none".
constexpr std::string_view backend_name(cordon_backend b)
{
    switch (b) {
    case CORDON_BACKEND_LSM: return "lsm";
    case CORDON_BACKEND_FMOD_RET: return "fmod_ret";
    case CORDON_BACKEND_COMPAT: return "compat";
    case CORDON_BACKEND_NONE:
    case CORDON_BACKEND_MAX: break;
    }
    return "none";
}
/// A backend number read from a record or a map: out of range is "none", as no backend.
constexpr std::string_view backend_name(unsigned b)
{
    return b < CORDON_BACKEND_MAX ? backend_name(static_cast<cordon_backend>(b)) : "none";
}

/// The backend called `name`, or nothing.
constexpr std::optional<cordon_backend> backend_from_name(std::string_view name)
{
    for (auto b : {CORDON_BACKEND_LSM, CORDON_BACKEND_FMOD_RET, CORDON_BACKEND_COMPAT})
        if (backend_name(b) == name)
            return b;
    return std::nullopt;
}

/// The backend runs the lsm program set (whether as BPF LSM or as fmod_ret programs): exec and
/// file denials are EPERM before any effect, unlink/rename/link/truncate are seen, and the
/// tamper programs are loaded.
constexpr bool runs_lsm_programs(cordon_backend b)
{
    return b == CORDON_BACKEND_LSM || b == CORDON_BACKEND_FMOD_RET;
}

/// The backend's programs are called through BPF trampolines, which stop being called when
/// kernel.ftrace_enabled is switched off.
constexpr bool uses_trampolines(cordon_backend b)
{
    return runs_lsm_programs(b);
}

} // namespace cordon
