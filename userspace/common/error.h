// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <string>

namespace cordon {

/// An error the user can cause or fix (bad input, missing kernel feature, no permission). Its
/// message names the cause and the fix; main() prints it and exits non-zero.
class Error : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

/// "what: strerror(err)", for messages about failed system calls.
inline std::string errno_text(int err)
{
    return std::string(strerrorname_np(err) ? strerrorname_np(err) : "E?") + " (" +
           std::strerror(err) + ")";
}

} // namespace cordon
